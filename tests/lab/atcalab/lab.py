"""Bringing a lab up and down, and describing it."""

import os
import shutil
import signal
import time

from . import blade, net, shelf, util
from .state import GlobalLock, Lab, free_index, lab_dir
from .util import LabError

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SHELF = os.path.join(HERE, "shelf.ini")
CONSOLE_PORT = 9000
RMCP_PORT = 623
REQUIRED = ["ip", "unshare", "nsenter", "ipmi_sim", "sdrcomp", "ipmitool", "corosync",
            "corosync-quorumtool", "libvirtd", "virsh", "snmptrapd"]


def check_host():
    if os.geteuid() != 0:
        raise LabError("the lab needs root (namespaces, mounts, bridges)")
    missing = [c for c in REQUIRED if shutil.which(c) is None]
    if missing:
        raise LabError("missing programs: %s (scripts/setup.sh installs them)" % " ".join(missing))


# ---------------------------------------------------------------- shelf managers

def ipmitool(lab, which="a", *args, check=True, timeout=20):
    return util.run(["ipmitool", "-I", "lanplus", "-C", "3", "-N", "1", "-R", "2",
                     "-H", lab.shmc_addr(which), "-p", str(RMCP_PORT), "-U", shelf.USER,
                     "-P", shelf.PASSWORD] + list(args), check=check, timeout=timeout)


def start_shmc(lab, which):
    """One ipmi_sim instance with a fresh state directory."""
    d = lab.path("shmc-" + which)
    st = os.path.join(d, "state")
    shutil.rmtree(st, ignore_errors=True)  # SEL and SDRs would persist otherwise
    os.makedirs(st)
    pid = util.spawn(["ip", "netns", "exec", lab.ns("shelf"), "ipmi_sim", "-c",
                      os.path.join(d, "lan.conf"), "-f", os.path.join(d, "shelf.emu"),
                      "-s", st, "-n"], os.path.join(d, "ipmi_sim.log"))
    lab.state.setdefault("shmc", {})[which] = {"pid": pid, "addr": lab.shmc_addr(which)}

    def answers():
        if not util.alive(pid):
            raise LabError("ipmi_sim %s exited: %s" % (which, tail(os.path.join(d, "ipmi_sim.log"))))
        # the SEL clock starts near the host's uptime: set it, which also
        # proves that RMCP+ sessions work
        return ipmitool(lab, which, "sel", "time", "set", "now", check=False,
                        timeout=10).returncode == 0
    util.wait_until("shelf manager %s" % which.upper(), answers, timeout=15, interval=0.05)
    replay_hardware(lab, which)
    return pid


def tail(path, n=3):
    try:
        return " | ".join(open(path).read().strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


def shmc_running(lab):
    return [w for w, s in sorted(lab.state.get("shmc", {}).items()) if util.alive(s.get("pid"))]


def console_send(lab, which, cmds):
    """Runs console commands on one shelf manager, in one session."""
    con = shelf.Console(lab.shmc_addr(which), CONSOLE_PORT)
    try:
        for c in cmds:
            con.command(c)
    finally:
        con.close()


def console_all(lab, cmds):
    """Sends console commands to every running shelf manager: the instances
    share nothing, so each must be told every change of the hardware."""
    running = shmc_running(lab)
    if not running:
        raise LabError("no shelf manager is running")
    for which in running:
        console_send(lab, which, cmds)


def replay_hardware(lab, which):
    """A (re)started simulator begins with every blade in M4 and nominal
    readings; bring it to the hardware state the lab has recorded."""
    hw = lab.state.get("hw", {})
    cmds = []
    for slot, st in sorted(hw.items()):
        a = shelf.blade_addr(int(slot))
        for sensor, raw in sorted(st.get("readings", {}).items()):
            cmds.append("sensor_set_value 0x%02x 0 %s %d 0" % (a, sensor, raw))
        for sensor, bits in sorted(st.get("bits", {}).items()):
            cmds += ["sensor_set_bit 0x%02x 0 %s %d 1 0" % (a, sensor, b) for b in bits]
        if st.get("mstate", 4) != 4:
            cmds.append("sensor_set_bit_clr_rest 0x%02x 0 %d %d 0"
                        % (a, lab.state["hotswap_sensor"], st["mstate"]))
        if st.get("ipmc_disabled"):
            cmds.append("mc_disable 0x%02x" % a)
    if cmds:
        console_send(lab, which, cmds)


# ---------------------------------------------------------------- NMS

def start_nms(lab):
    d = lab.path("nms")
    os.makedirs(os.path.join(d, "persist"), exist_ok=True)
    util.write(os.path.join(d, "snmptrapd.conf"),
               "# atca-lab NMS: accept and log every notification\n"
               "disableAuthorization yes\ndoNotRetainNotificationLogs yes\n")
    env = dict(os.environ, SNMP_PERSISTENT_DIR=os.path.join(d, "persist"), MIBS="")
    traps = os.path.join(d, "traps.log")
    open(traps, "a").close()
    pid = util.spawn(["ip", "netns", "exec", lab.ns("nms"), "snmptrapd", "-f", "-C", "-c",
                      os.path.join(d, "snmptrapd.conf"), "-m", "", "-On", "-Lf", traps,
                      "udp:%s:162" % lab.nms_addr()], os.path.join(d, "snmptrapd.out"), env=env)
    lab.state["nms"] = {"pid": pid, "addr": lab.nms_addr(), "port": 162, "traps": traps}
    util.wait_until("snmptrapd", lambda: "NET-SNMP version" in open(traps).read()
                    or not util.alive(pid), timeout=10)
    if not util.alive(pid):
        raise LabError("snmptrapd exited: %s" % tail(os.path.join(d, "snmptrapd.out")))


# ---------------------------------------------------------------- atca-ftd files

def write_ftd_config(lab):
    """An atca-ftd.conf describing this lab, shared by all blades."""
    cred = lab.path("shelf.cred")
    util.write(cred, "username: %s\npassword: %s\n" % (shelf.USER, shelf.PASSWORD), 0o600)
    mgrs = "".join("    manager {\n        address: %s\n        port: %d\n    }\n"
                   % (lab.shmc_addr(w), RMCP_PORT) for w in sorted(lab.state["shmc_names"]))
    blades = "".join("blade {\n    slot: %d\n    host: blade%d\n}\n" % (s, s)
                     for s in range(1, lab.blades + 1))
    util.write(lab.path("atca-ftd.conf"), """# generated by atca-lab for lab '%s'
daemon {
    state_dir: /var/lib/atca-ft
    pidfile: /run/atca-ftd.pid
}
shelf {
    name: %s
    credentials: %s
%s}
%ssnmp {
    target {
        address: %s
        port: 162
        community: public
    }
}
logging {
    to_syslog: no
    to_logfile: yes
    logfile: /var/log/atca-ft/atca-ftd.log
    level: debug
}
""" % (lab.name, lab.name, cred, mgrs, blades, lab.nms_addr()))


def ftd_binary():
    cand = os.environ.get("ATCA_FTD")
    if cand:
        return cand
    repo_build = os.path.join(os.path.dirname(os.path.dirname(HERE)), "build", "src", "daemon",
                              "atca-ftd")
    if os.access(repo_build, os.X_OK):
        return repo_build
    found = shutil.which("atca-ftd")
    if found:
        return found
    raise LabError("atca-ftd not found (build it, or set $ATCA_FTD)")


def start_ftd(lab, slot):
    os.makedirs(os.path.join(lab.blade_dir(slot), "var.upper", "log", "atca-ft"), exist_ok=True)
    return blade.start_daemon(lab, slot, "atca-ftd",
                              [ftd_binary(), "-f", "-c", lab.path("atca-ftd.conf")])


# ---------------------------------------------------------------- up / down

def bring_up_blade(lab, slot, with_ftd):
    blade.start_holder(lab, slot)
    blade.start_corosync(lab, slot)
    blade.start_libvirtd(lab, slot)
    if with_ftd:
        start_ftd(lab, slot)


def wait_blades_ready(lab, slots, timeout=30):
    want = sorted("blade%d" % s for s in range(1, lab.blades + 1)
                  if lab.blade(s).get("power") == "on")
    for s in slots:
        util.wait_until("corosync membership of blade %d" % s,
                        lambda s=s: (blade.quorum(lab, s) or (False, []))[1] == want,
                        timeout=timeout, interval=0.1)
        util.wait_until("libvirtd of blade %d" % s, lambda s=s: blade.libvirt_ok(lab, s),
                        timeout=timeout, interval=0.1)


def up(name, n_blades, managers=None, shelf_file=None, with_ftd=False):
    check_host()
    if not 1 <= n_blades <= 16:
        raise LabError("--blades must be 1 to 16")
    desc = shelf.ShelfDescription(shelf_file or DEFAULT_SHELF)
    managers = managers or desc.managers
    if managers not in (1, 2):
        raise LabError("shelf managers: 1 or 2")
    t0 = time.monotonic()
    with GlobalLock():
        if os.path.exists(lab_dir(name)):
            raise LabError("lab '%s' exists already (%s): atca-lab down --name %s"
                           % (name, lab_dir(name), name))
        lab = Lab(name, free_index())
        os.makedirs(lab.path("shared"))
        lab.state.update({"blades": n_blades, "shelf_file": desc.path, "created": time.time(),
                          "shmc_names": ["a", "b"][:managers], "hw": {},
                          "hotswap_sensor": desc.hotswap().number,
                          # $ATCA_LAB_TCG=1 forces the software fallback
                          "kvm": os.path.exists("/dev/kvm") and not os.environ.get("ATCA_LAB_TCG"),
                          "faults": {},
                          "run_netns_existed": os.path.isdir("/run/netns")})
        lab.save()
    try:
        net.create_fabric(lab)
        for ns in ("shelf", "nms"):
            net.add_ns(lab.ns(ns))
        net.attach(lab, lab.ns("shelf"), lab.bridge_port("sh"), "mgmt0", net.BR_MGMT,
                   [lab.shmc_addr(w) for w in lab.state["shmc_names"]])
        net.attach(lab, lab.ns("nms"), lab.bridge_port("nm"), "mgmt0", net.BR_MGMT,
                   [lab.nms_addr()])
        for w in lab.state["shmc_names"]:
            shelf.generate(desc, n_blades, lab.path("shmc-" + w), lab.shmc_addr(w), RMCP_PORT,
                           CONSOLE_PORT, "%s-%s" % (name, w))
        for s in range(1, n_blades + 1):
            blade.prepare(lab, s)
            blade.create_ns(lab, s)
        write_ftd_config(lab)
        for w in lab.state["shmc_names"]:
            start_shmc(lab, w)
        start_nms(lab)
        for s in range(1, n_blades + 1):
            bring_up_blade(lab, s, with_ftd)
            lab.save()
        wait_blades_ready(lab, range(1, n_blades + 1))
    except BaseException:
        lab.save()
        util.log("bringing lab '%s' up failed: removing what was started" % name)
        down(name)
        raise
    lab.state["up_seconds"] = round(time.monotonic() - t0, 2)
    lab.save()
    return lab


def down(name):
    """Removes everything a lab started, by its records; safe to repeat."""
    try:
        lab = Lab.load(name)
    except LabError:
        if not os.path.exists(lab_dir(name)):
            raise
        lab = None
    if lab is not None:
        for slot in range(1, lab.blades + 1):
            b = lab.state.get("blade", {}).get(str(slot))
            if b:
                for d in b.get("daemons", {}).values():
                    util.kill(d["pid"], signal.SIGTERM, wait=3)
                blade.power_off(lab, slot)
        for s in lab.state.get("shmc", {}).values():
            util.kill(s.get("pid"), signal.SIGTERM, wait=2)
        if lab.state.get("nms"):
            util.kill(lab.state["nms"].get("pid"), signal.SIGTERM, wait=2)
        for slot in range(1, lab.blades + 1):
            net.del_ns(lab.blade_ns(slot))
        for ns in ("shelf", "nms"):
            net.del_ns(lab.ns(ns))
        net.destroy_fabric(lab)
    with GlobalLock():
        shutil.rmtree(lab_dir(name), ignore_errors=True)
        # "ip netns add" created /run/netns (a self bind mount) if it was not
        # there; remove it once no namespace at all is left in it.
        if lab is not None and not lab.state.get("run_netns_existed", True):
            try:
                if os.path.isdir("/run/netns") and not os.listdir("/run/netns"):
                    util.run(["umount", "/run/netns"], check=False)
                    os.rmdir("/run/netns")
            except OSError:
                pass


def leftovers(name):
    """What of a lab still exists (for tests of down): a list of strings."""
    out = []
    p = util.run(["ip", "netns", "list"], check=False)
    out += ["netns " + ln.split()[0] for ln in p.stdout.splitlines()
            if ln.split() and ln.split()[0].startswith(name + "-")]
    p = util.run(["ip", "-o", "link"], check=False)
    for ln in p.stdout.splitlines():
        if ln.split(":")[1].strip().split("@")[0] == name + "h":
            out.append("link %sh" % name)
    if os.path.exists(lab_dir(name)):
        out.append("dir " + lab_dir(name))
    me = os.getpid()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(lab_dir(name) + "/" in a for a in argv):
            out.append("process %s (%s)" % (d, " ".join(argv)[:60]))
    with open("/proc/self/mountinfo") as f:
        out += ["mount " + ln.split()[4] for ln in f if lab_dir(name) in ln]
    return out
