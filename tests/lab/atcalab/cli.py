"""atca-lab: a simulated ATCA shelf on one Linux machine.

usage: atca-lab [--name NAME] [-v] COMMAND ...

  up [--blades N] [--shelf-managers 1|2] [--shelf FILE] [--ftd] [--shelf-only]
                          build the lab and start everything; returns when
                          every blade is in the corosync membership and every
                          libvirtd answers. --shelf-only: shelf managers and
                          NMS only, no blade payloads (benchmarks)
  down                    stop and remove everything the lab started
  status [--json]         what runs, addresses, injected faults
  list                    the labs on this machine
  env                     shell variables to reach the lab (eval "$(atca-lab env)")
  exec BLADE CMD...       run CMD inside a blade (its network, mounts, host name)
  ipmitool [--shmc a|b] ARGS...
                          ipmitool against the lab's shelf manager (RMCP+, -C 3)
  inject KIND [TARGET] [--what libvirtd|qemu|all] [--link mgmt|repl|all]
  repair KIND [TARGET] [...]
                          inject / repair a fault (atca-lab kinds: the list)
  kinds                   the fault kinds and what each does
  guest start BLADE NAME [--memory MB] [--pps N] [--period-us US] [--disk] [--net]
  guest stop NAME | guest list | guest serial NAME [-n LINES]
  ftd start|stop [BLADE...]
                          atca-ftd in blades (the lab writes DIR/atca-ftd.conf)
  console [--shmc a|b|all] CMD...
                          an ipmi_sim console command (e.g. picmg_state,
                          picmg_delay 1000); prints its output
  hook [--shmc a|b] [--seq NS] BLADE off|on|reset
                          what a shelf manager runs when it switches a blade's
                          payload power (BLADE may be 0x84): the blade's
                          processes die or start, the other shelf manager is
                          told the new M-state

BLADE is "blade2" or "2". The lab name (default $ATCA_LAB_NAME or "lab")
prefixes every namespace, interface and directory, so labs can run side by
side. Everything lives in /tmp/atca-lab-NAME.
"""

import argparse
import json
import os
import sys

from . import blade, faults, guest, lab as labmod, shelf, util
from .state import Lab, existing_labs
from .util import LabError

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build")


def _slot(lab, s):
    return faults._slot(lab, s)


def cmd_up(a):
    lab = labmod.up(a.name, a.blades, a.shelf_managers, a.shelf, a.ftd, a.shelf_only)
    print("lab '%s' up in %.1f s: %d blades%s, %d shelf manager(s), NMS at %s"
          % (lab.name, lab.state["up_seconds"], lab.blades,
             " (shelf only: no payloads)" if a.shelf_only else "",
             len(lab.state["shmc_names"]), lab.nms_addr()))
    print("  %s" % lab.dir)
    if not lab.state.get("kvm"):
        print("  note: no KVM (no /dev/kvm, or $ATCA_LAB_TCG set): guests run under TCG")
    print("  atca-lab --name %s status   |   eval \"$(atca-lab --name %s env)\""
          % (lab.name, lab.name))


def cmd_down(a):
    labmod.down(a.name)
    left = labmod.leftovers(a.name)
    if left:
        raise LabError("lab '%s' removed, but these are left: %s" % (a.name, ", ".join(left)))
    print("lab '%s' removed" % a.name)


def describe(lab):
    try:
        live = labmod.picmg_states(lab)
    except (LabError, OSError):
        live = {}
    out = {"name": lab.name, "dir": lab.dir, "index": lab.index, "kvm": lab.state.get("kvm"),
           "shelf_only": labmod.shelf_only(lab),
           "up_seconds": lab.state.get("up_seconds"), "host_address": lab.host_addr(),
           "shelf_managers": {}, "blades": {}, "guests": {}, "faults": sorted(lab.state.get("faults", {})),
           "nms": dict(lab.state.get("nms", {}), running=util.alive(lab.state.get("nms", {}).get("pid")))}
    for w, s in sorted(lab.state.get("shmc", {}).items()):
        out["shelf_managers"][w] = {"address": s["addr"], "port": labmod.RMCP_PORT,
                                    "console": labmod.CONSOLE_PORT, "pid": s["pid"],
                                    "running": util.alive(s["pid"])}
    for slot in range(1, lab.blades + 1):
        b = lab.blade(slot)
        hw = lab.state.get("hw", {}).get(str(slot), {})
        st = live.get(slot)
        # the plugin's live view if a shelf manager answers, else the record
        info = {"ipmc": "0x%02x" % shelf.blade_addr(slot), "mgmt": lab.blade_mgmt(slot),
                "repl": lab.blade_repl(slot), "power": b.get("power"),
                "hotswap": "M%d" % (st["mstate"] if st else hw.get("mstate", 4)),
                "locked": bool(st["locked"] if st else hw.get("locked")),
                "picmg_unsupported": bool(st["unsupported"] if st
                                          else hw.get("picmg_unsupported")),
                "ipmc_reachable": not hw.get("ipmc_disabled"),
                "holder": b.get("holder"), "libvirt_uri": blade.libvirt_uri(lab, slot),
                "daemons": {}}
        for name in ("corosync", "libvirtd", "atca-ftd"):
            pid = blade.daemon_pid(lab, slot, name)
            if pid:
                info["daemons"][name] = pid
        if b.get("power") == "on" and "corosync" in info["daemons"]:
            q = blade.quorum(lab, slot)
            info["quorum"] = {"quorate": q[0], "members": q[1]} if q else None
        out["blades"][str(slot)] = info
    for name, g in sorted(lab.state.get("guests", {}).items()):
        try:
            st = guest.state(lab, name)
        except LabError:
            st = "unknown (blade off)"
        out["guests"][name] = dict(g, state=st, last=(guest.counters(lab, name) or [None])[-1])
    return out


def cmd_status(a):
    lab = Lab.load(a.name)
    d = describe(lab)
    if a.json:
        print(json.dumps(d, indent=2, sort_keys=True))
        return
    print("lab %s (%s), management %s/24 (host %s), up in %ss%s%s" % (
        d["name"], d["dir"], lab.mgmt(0), d["host_address"], d["up_seconds"],
        "" if d["kvm"] else ", no /dev/kvm: guests use TCG",
        ", SHELF ONLY (no blade payloads)" if d["shelf_only"] else ""))
    for w, s in d["shelf_managers"].items():
        print("shelf manager %s  %s:%d  console %s:%d  %s" % (w.upper(), s["address"], s["port"],
              s["address"], s["console"], "running" if s["running"] else "DOWN"))
    n = d["nms"]
    print("NMS (snmptrapd)  %s:%s  %s  traps in %s" % (n.get("addr"), n.get("port"),
          "running" if n.get("running") else "DOWN", n.get("traps")))
    print("\nBLADE  IPMC  MGMT          POWER  HOTSWAP  IPMC-LINK  COROSYNC            DAEMONS")
    for slot, b in d["blades"].items():
        q = b.get("quorum")
        qs = ("quorate %d" % len(q["members"]) if q["quorate"] else "NOT quorate %d" % len(q["members"])) \
            if q else "-"
        hs = b["hotswap"] + ("L" if b["locked"] else "") + ("!" if b["picmg_unsupported"] else "")
        print("%-5s  %s  %-12s  %-5s  %-7s  %-9s  %-18s  %s" % (
            slot, b["ipmc"], b["mgmt"], b["power"], hs,
            "ok" if b["ipmc_reachable"] else "LOST", qs, " ".join(sorted(b["daemons"]))))
    print("(HOTSWAP: L = activation locked, ! = FRU activation commands unsupported)")
    if d["guests"]:
        print("\nGUEST  BLADE  STATE  LAST COUNTER")
        for name, g in d["guests"].items():
            print("%s  %s  %s  %s" % (name, g["blade"], g["state"], g["last"]))
    print("\nfaults: %s" % (", ".join(d["faults"]) or "none"))


def cmd_list(a):
    for name in existing_labs():
        try:
            lab = Lab.load(name)
            print("%-8s %2d blades  %s  %s" % (name, lab.blades, lab.mgmt(0) + "/24", lab.dir))
        except LabError as e:
            print("%-8s (broken: %s)" % (name, e))


def cmd_env(a):
    lab = Lab.load(a.name)
    print("export ATCA_LAB_NAME=%s" % lab.name)
    print("export ATCA_LAB_DIR=%s" % lab.dir)
    print("export ATCA_LAB_SHMC=%s" % lab.shmc_addr("a"))
    print("export ATCA_LAB_IPMITOOL='ipmitool -I lanplus -C 3 -H %s -U %s -P %s'"
          % (lab.shmc_addr("a"), shelf.USER, shelf.PASSWORD))
    print("export ATCA_LAB_NMS_TRAPS=%s" % lab.state["nms"]["traps"])
    print("export ATCA_LAB_FTD_CONF=%s" % lab.path("atca-ftd.conf"))
    for slot in range(1, lab.blades + 1):
        print("export ATCA_LAB_VIRSH_%d='virsh -c %s'" % (slot, blade.libvirt_uri(lab, slot)))


def cmd_exec(a):
    lab = Lab.load(a.name)
    slot = _slot(lab, a.blade)
    holder = blade.holder_of(lab, slot)
    if not a.cmd:
        raise LabError("exec needs a command")
    env = dict(os.environ)
    extra = [os.path.join(BUILD, "src", "daemon"), os.path.join(BUILD, "src", "cli")]
    env["PATH"] = ":".join([p for p in extra if os.path.isdir(p)] + [env.get("PATH", "")])
    argv = blade.nsenter_cmd(holder, a.cmd)
    os.execvpe(argv[0], argv, env)


def cmd_ipmitool(a):
    lab = Lab.load(a.name)
    p = labmod.ipmitool(lab, a.shmc, *a.args, check=False, timeout=60)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    return p.returncode


def cmd_fault(a, fn):
    lab = Lab.load(a.name)
    print(fn(lab, a.kind, a.target, what=a.what, link=a.link))


def cmd_kinds(a):
    doc = faults.__doc__
    print(doc[doc.index("  kind"):].rstrip())


def cmd_guest(a):
    lab = Lab.load(a.name)
    if a.gcmd == "start":
        guest.start(lab, _slot(lab, a.blade), a.gname, memory_mb=a.memory, pps=a.pps,
                    period_us=a.period_us, disk=a.disk, net=a.net)
        lab.save()
        print("guest %s started on blade %s; serial log %s" % (
            a.gname, a.blade, lab.path("shared", a.gname + ".serial")))
    elif a.gcmd == "stop":
        guest.stop(lab, a.gname)
        lab.save()
        print("guest %s stopped" % a.gname)
    elif a.gcmd == "list":
        for name, g in sorted(lab.state.get("guests", {}).items()):
            try:
                st = guest.state(lab, name)
            except LabError:
                st = "unknown (blade off)"
            print("%-12s blade %-2d %-22s last C %s" % (name, g["blade"], st,
                                                     (guest.counters(lab, name) or ["-"])[-1]))
    else:
        for ln in guest.serial_lines(lab, a.gname)[-a.lines:]:
            print(ln)


def cmd_ftd(a):
    lab = Lab.load(a.name)
    slots = [_slot(lab, b) for b in a.blades] or list(range(1, lab.blades + 1))
    for s in slots:
        if a.action == "start":
            if not blade.daemon_pid(lab, s, "atca-ftd"):
                labmod.start_ftd(lab, s)
        else:
            blade.stop_daemon(lab, s, "atca-ftd")
        lab.save()
    print("atca-ftd %s on blade%s %s" % ("started" if a.action == "start" else "stopped",
                                        "s" if len(slots) > 1 else "", " ".join(map(str, slots))))


def cmd_console(a):
    lab = Lab.load(a.name)
    if not a.args:
        raise LabError("console needs a command (e.g. picmg_state)")
    which = labmod.shmc_running(lab) if a.shmc == "all" else [a.shmc]
    for w in which:
        for ln in labmod.console_query(lab, w, " ".join(a.args)):
            print(("%s: " % w.upper() if len(which) > 1 else "") + ln)


def cmd_hook(a):
    print(labmod.hook(a.name, a.blade, a.action, a.shmc, a.seq), flush=True)


def parser():
    ap = argparse.ArgumentParser(prog="atca-lab", description="A simulated ATCA shelf.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--name", default=os.environ.get("ATCA_LAB_NAME", "lab"))
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up")
    p.add_argument("--blades", type=int, default=2)
    p.add_argument("--shelf-managers", type=int, choices=(1, 2))
    p.add_argument("--shelf", help="shelf description (default tests/lab/shelf.ini)")
    p.add_argument("--ftd", action="store_true", help="also start atca-ftd in every blade")
    p.add_argument("--shelf-only", action="store_true",
                   help="shelf managers and NMS only: no blade namespaces or daemons")
    sub.add_parser("down")
    p = sub.add_parser("status")
    p.add_argument("--json", action="store_true")
    sub.add_parser("list")
    sub.add_parser("env")
    sub.add_parser("kinds")
    p = sub.add_parser("exec")
    p.add_argument("blade")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p = sub.add_parser("ipmitool")
    p.add_argument("--shmc", default="a", choices=("a", "b"))
    p.add_argument("args", nargs=argparse.REMAINDER)
    for name in ("inject", "repair"):
        p = sub.add_parser(name)
        p.add_argument("kind")
        p.add_argument("target", nargs="?")
        p.add_argument("--what", default="libvirtd")
        p.add_argument("--link", default="mgmt")
    p = sub.add_parser("guest")
    g = p.add_subparsers(dest="gcmd", required=True)
    q = g.add_parser("start")
    q.add_argument("blade")
    q.add_argument("gname", metavar="NAME")
    q.add_argument("--memory", type=int, default=128)
    q.add_argument("--pps", type=int, default=1000)
    q.add_argument("--period-us", type=int, default=10000)
    q.add_argument("--disk", action="store_true")
    q.add_argument("--net", action="store_true")
    q = g.add_parser("stop")
    q.add_argument("gname", metavar="NAME")
    g.add_parser("list")
    q = g.add_parser("serial")
    q.add_argument("gname", metavar="NAME")
    q.add_argument("-n", "--lines", type=int, default=20)
    p = sub.add_parser("ftd")
    p.add_argument("action", choices=("start", "stop"))
    p.add_argument("blades", nargs="*")
    p = sub.add_parser("console")
    p.add_argument("--shmc", default="a", choices=("a", "b", "all"))
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("hook")
    p.add_argument("--shmc", choices=("a", "b"))
    p.add_argument("--seq", type=int)
    p.add_argument("blade")
    p.add_argument("action", choices=("off", "on", "reset"))
    return ap


def split_passthrough(argv):
    """exec and ipmitool hand everything after their own arguments to
    another program, options included: cut it off before argparse sees it."""
    for i, tok in enumerate(argv):
        if tok == "exec" and i + 1 < len(argv):
            return argv[:i + 2], argv[i + 2:]
        if tok == "ipmitool":
            j = i + 1
            if j + 1 < len(argv) and argv[j] == "--shmc":
                j += 2
            return argv[:j], argv[j:]
        if not tok.startswith("-") and (i == 0 or argv[i - 1] != "--name"):
            break  # the first command word is not a pass-through command
    return argv, None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, rest = split_passthrough(argv)
    a = parser().parse_args(argv)
    if rest is not None:
        if a.command == "exec":
            a.cmd = rest
        else:
            a.args = rest
    util.VERBOSE = a.verbose
    handlers = {
        "up": cmd_up, "down": cmd_down, "status": cmd_status, "list": cmd_list,
        "env": cmd_env, "exec": cmd_exec, "ipmitool": cmd_ipmitool, "kinds": cmd_kinds,
        "inject": lambda x: cmd_fault(x, faults.inject),
        "repair": lambda x: cmd_fault(x, faults.repair),
        "guest": cmd_guest, "ftd": cmd_ftd, "console": cmd_console, "hook": cmd_hook,
    }
    try:
        if a.command not in ("list", "kinds"):
            from .state import check_name
            check_name(a.name)
        rc = handlers[a.command](a)
        return rc or 0
    except LabError as e:
        print("atca-lab: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
