"""Bringing a lab up and down, and describing it; the hook the shelf
managers run when they switch a blade's payload power."""

import glob
import os
import shutil
import signal
import sys
import time

from . import blade, net, shelf, util
from .state import FileLock, GlobalLock, Lab, free_index, lab_dir
from .util import LabError

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SHELF = os.path.join(HERE, "shelf.ini")
ATCA_LAB = os.path.join(HERE, "atca-lab")
CONSOLE_PORT = 9000
RMCP_PORT = 623
REQUIRED = ["ip", "unshare", "nsenter", "ipmi_sim", "sdrcomp", "ipmitool", "corosync",
            "corosync-quorumtool", "libvirtd", "virsh", "snmptrapd", "gcc"]
PLUGIN = "atca_picmg.so"
GOING_DOWN = "going-down"  # in the lab directory while "down" runs: hooks do nothing


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


def plugin_config(lab, which):
    """(path, options) of the FRU activation plugin for shelf manager which."""
    hook = [sys.executable, ATCA_LAB, "--name", lab.name, "hook", "--shmc", which]
    return (lab.path(PLUGIN), shelf.plugin_options({
        "hs": lab.state["hotswap_sensor"], "hook": hook,
        "hooklog": lab.path("shmc-" + which, "hook.log")}))


def start_shmc(lab, which):
    """One ipmi_sim instance with a fresh state directory. It enters only the
    shelf's network namespace (not "ip netns exec", which also makes a mount
    namespace): the hooks it runs see the host's mounts, like any command."""
    d = lab.path("shmc-" + which)
    st = os.path.join(d, "state")
    shutil.rmtree(st, ignore_errors=True)  # SEL and SDRs would persist otherwise
    os.makedirs(st)
    shelf.build_plugin(lab.path(PLUGIN))  # again if the source changed since
    pid = util.spawn(["nsenter", "--net=/run/netns/" + lab.ns("shelf"), "ipmi_sim", "-c",
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
    readings; bring it to the hardware state the lab has recorded. Hot-swap
    states go through the plugin (picmg_set), so that its FRU state and the
    sensor agree. Transient states (M2, M3, M5, M6) are not recorded: a
    blade left in M2 comes back in M1."""
    hw = lab.state.get("hw", {})
    cmds = []
    for slot, st in sorted(hw.items()):
        a = shelf.blade_addr(int(slot))
        for sensor, raw in sorted(st.get("readings", {}).items()):
            cmds.append("sensor_set_value 0x%02x 0 %s %d 0" % (a, sensor, raw))
        for sensor, bits in sorted(st.get("bits", {}).items()):
            cmds += ["sensor_set_bit 0x%02x 0 %s %d 1 0" % (a, sensor, b) for b in bits]
        if st.get("mstate", 4) != 4 or st.get("locked"):
            cmds.append(hotswap_cmd(lab, int(slot), st.get("mstate", 4), quiet=True,
                                    lock=st.get("locked")))
        if st.get("picmg_unsupported"):
            cmds.append("picmg_unsupported 0x%02x on" % a)
        if st.get("ipmc_disabled"):
            cmds.append("mc_disable 0x%02x" % a)
    if cmds:
        console_send(lab, which, cmds)


def hotswap_cmd(lab, slot, m, quiet=False, cause=None, lock=None):
    """The console command that puts a blade's FRU in M-state m: the plugin's
    picmg_set (lock: True/False sets/clears the Locked bit), or for labs made
    before the plugin existed, the bare sensor."""
    a = shelf.blade_addr(slot)
    if not lab.state.get("plugin"):
        return "sensor_set_bit_clr_rest 0x%02x 0 %d %d %d" % (
            a, lab.state["hotswap_sensor"], m, 0 if quiet else 1)
    return "picmg_set 0x%02x %d%s%s%s" % (
        a, m, " quiet" if quiet else "", "" if cause is None else " cause=%d" % cause,
        "" if lock is None else " locked" if lock else " unlocked")


def console_query(lab, which, cmd):
    """One console command on one shelf manager; its output lines."""
    con = shelf.Console(lab.shmc_addr(which), CONSOLE_PORT)
    try:
        return con.command(cmd)
    finally:
        con.close()


def picmg_states(lab, which=None):
    """The plugin's view of every blade: {slot: {"mstate": 4, "power": "on",
    "locked": 0, ...}} from one shelf manager (default: the first running)."""
    which = which or (shmc_running(lab) or [None])[0]
    if which is None:
        raise LabError("no shelf manager is running")
    out = {}
    for ln in console_query(lab, which, "picmg_state"):
        parts = ln.split()
        if len(parts) < 2 or not parts[0].startswith("0x") or not parts[1].startswith("M"):
            continue
        info = {"mstate": int(parts[1][1:])}
        for kv in parts[2:]:
            k, _, v = kv.partition("=")
            info[k] = int(v) if v.isdigit() else v
        out[(int(parts[0], 16) - 0x80) // 2] = info
    return out


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
    # Every daemon drives every blade's libvirtd (a takeover starts the VMs
    # on the partner): through the socket in the blade's private /run, which
    # the host's /tmp shows to every blade; live migration streams over the
    # management network.
    blades = "".join(
        "blade {\n    slot: %d\n    host: blade%d\n    libvirt_uri: %s\n"
        "    migration_uri: tcp://%s\n    replication_address: %s\n}\n"
        % (s, s, blade.libvirt_uri(lab, s), lab.blade_mgmt(s), lab.blade_repl(s))
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

def addr_slot(lab, target):
    """A blade given as 0x84, blade2 or 2: its slot."""
    t = str(target)
    if t.lower().startswith("0x"):
        try:
            a = int(t, 16)
        except ValueError:
            a = -1
        if a < 0x82 or a % 2 or (a - 0x80) // 2 > lab.blades:
            raise LabError("no blade IPMC %s in lab '%s' (0x82..0x%02x)"
                           % (t, lab.name, shelf.blade_addr(lab.blades)))
        return (a - 0x80) // 2
    t = t[5:] if t.startswith("blade") else t
    if not t.isdigit() or not 1 <= int(t) <= lab.blades:
        raise LabError("no blade '%s' in lab '%s' (1..%d)" % (target, lab.name, lab.blades))
    return int(t)


def shelf_only(lab):
    return bool(lab.state.get("shelf_only"))


def set_links(lab, slot, up, which=("m", "r")):
    for w in which:
        net.set_port(lab, lab.bridge_port("b%d%s" % (slot, w)), up)


def payload_off(lab, slot):
    """Everything running in the blade dies at once and its links go down;
    remembers whether atca-ftd ran, for payload_on."""
    b = lab.blade(slot)
    if not shelf_only(lab) and util.alive(b.get("holder")):
        had_ftd = bool(blade.daemon_pid(lab, slot, "atca-ftd"))
        blade.power_off(lab, slot)
        set_links(lab, slot, False)
        b["ftd_before"] = had_ftd
    b["power"] = "off"
    b["daemons"] = {}


def payload_on(lab, slot):
    """Links up, the blade's holder, corosync, libvirtd (and atca-ftd if it
    ran before the power went)."""
    b = lab.blade(slot)
    if not shelf_only(lab) and not util.alive(b.get("holder")):
        set_links(lab, slot, True)
        bring_up_blade(lab, slot, b.pop("ftd_before", False))
    b["power"] = "on"


def hook(name, target, action, shmc=None, seq=None):
    """Run by a shelf manager's plugin (double-forked) when it switches a
    blade's payload power: makes the blade as dead or alive as its payload
    power, records it, and tells the other shelf manager(s) the new M-state
    (quietly: no SEL records) so that both agree. Hooks of one blade run one
    at a time, and one that was overtaken by a later one (seq: the plugin's
    CLOCK_REALTIME in ns) does nothing. Returns a line for the hook log."""
    if action not in ("off", "on", "reset"):
        raise LabError("hook: the action is off, on or reset")
    t0 = time.monotonic()
    lab = Lab.load(name)
    slot = addr_slot(lab, target)
    seq = seq if seq is not None else time.time_ns()
    # register first, then look for "down": down waits for registered hooks
    reg = lab.path("hook.%d" % os.getpid())
    util.write(reg, "blade %d %s\n" % (slot, action))
    try:
        if os.path.exists(lab.path(GOING_DOWN)):
            return "blade %d: %s ignored, the lab is going down" % (slot, action)
        with FileLock(lab.path("hook-b%d.lock" % slot)):
            lab.sync()
            hw = lab.state.setdefault("hw", {}).setdefault(str(slot), {})
            if seq <= hw.get("hook_seq", 0):
                return "blade %d: %s ignored (seq %d overtaken by %d)" % (
                    slot, action, seq, hw["hook_seq"])
            hw["hook_seq"] = seq
            b = lab.blade(slot)
            if action == "off":
                payload_off(lab, slot)
                hw.update({"mstate": 1, "locked": True})
                lab.save()
                tell = hotswap_cmd(lab, slot, 1, quiet=True, lock=True)
            elif action == "on":
                hw["mstate"] = 4
                hw.pop("locked", None)
                lab.save()
                tell = hotswap_cmd(lab, slot, 4, quiet=True, lock=False)
            else:
                tell = None
            if tell:
                for w in shmc_running(lab):
                    if w != shmc:
                        try:
                            console_send(lab, w, [tell])
                        except (LabError, OSError) as e:
                            util.log("telling shelf manager %s: %s" % (w.upper(), e))
            if action == "on":
                payload_on(lab, slot)
            elif action == "reset" and b.get("power") == "on":
                payload_off(lab, slot)
                payload_on(lab, slot)
            lab.save()
        return "blade %d: payload %s in %.2f s, %.0f ms after %s" % (
            slot, action, time.monotonic() - t0, (time.time_ns() - seq) / 1e6,
            "shelf manager %s decided" % shmc.upper() if shmc else "the request")
    finally:
        try:
            os.unlink(reg)
        except OSError:
            pass


def wait_hooks(lab, timeout=15):
    """Waits for running hooks (registered as DIR/hook.PID) to finish;
    kills what is left after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        pids = []
        for f in glob.glob(lab.path("hook.[0-9]*")):
            pid = int(f.rsplit(".", 1)[1])
            if util.alive(pid):
                pids.append(pid)
            else:
                try:
                    os.unlink(f)
                except OSError:
                    pass
        if not pids:
            return
        if time.monotonic() > deadline:
            for pid in pids:
                util.kill(pid, signal.SIGKILL, wait=1)
            return
        time.sleep(0.05)


def bring_up_blade(lab, slot, with_ftd):
    blade.start_holder(lab, slot)
    blade.start_corosync(lab, slot)
    blade.start_libvirtd(lab, slot)
    if with_ftd:
        start_ftd(lab, slot)


def wait_blades_ready(lab, slots, timeout=30):
    if shelf_only(lab):
        return
    want = sorted("blade%d" % s for s in range(1, lab.blades + 1)
                  if lab.blade(s).get("power") == "on")
    for s in slots:
        util.wait_until("corosync membership of blade %d" % s,
                        lambda s=s: (blade.quorum(lab, s) or (False, []))[1] == want,
                        timeout=timeout, interval=0.1)
        util.wait_until("libvirtd of blade %d" % s, lambda s=s: blade.libvirt_ok(lab, s),
                        timeout=timeout, interval=0.1)


def up(name, n_blades, managers=None, shelf_file=None, with_ftd=False, only_shelf=False):
    """Builds a lab. only_shelf: the shelf managers and the NMS, no blade
    payloads (no namespaces, corosync, libvirtd): for benchmarks of what
    talks to the shelf; the blades' hot-swap states and payload power are
    still simulated."""
    check_host()
    if only_shelf and with_ftd:
        raise LabError("--shelf-only has no blades to run atca-ftd in")
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
                          "faults": {}, "shelf_only": only_shelf, "plugin": True,
                          "run_netns_existed": os.path.isdir("/run/netns")})
        lab.save()
    try:
        shelf.build_plugin(lab.path(PLUGIN))
        net.create_fabric(lab)
        for ns in ("shelf", "nms"):
            net.add_ns(lab.ns(ns))
        net.attach(lab, lab.ns("shelf"), lab.bridge_port("sh"), "mgmt0", net.BR_MGMT,
                   [lab.shmc_addr(w) for w in lab.state["shmc_names"]])
        net.attach(lab, lab.ns("nms"), lab.bridge_port("nm"), "mgmt0", net.BR_MGMT,
                   [lab.nms_addr()])
        for w in lab.state["shmc_names"]:
            shelf.generate(desc, n_blades, lab.path("shmc-" + w), lab.shmc_addr(w), RMCP_PORT,
                           CONSOLE_PORT, "%s-%s" % (name, w), plugin=plugin_config(lab, w))
        if only_shelf:
            lab.state["blade"] = {str(s): {"power": "on"} for s in range(1, n_blades + 1)}
        else:
            for s in range(1, n_blades + 1):
                blade.prepare(lab, s)
                blade.create_ns(lab, s)
        write_ftd_config(lab)
        for w in lab.state["shmc_names"]:
            start_shmc(lab, w)
        start_nms(lab)
        if not only_shelf:
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
    """Removes everything a lab started, by its records; safe to repeat.
    The shelf managers go first (no new hooks), then running hooks are
    waited for, then everything recorded is killed."""
    try:
        lab = Lab.load(name)
    except LabError:
        if not os.path.exists(lab_dir(name)):
            raise
        lab = None
    if lab is not None:
        util.write(lab.path(GOING_DOWN), "")
        for s in lab.state.get("shmc", {}).values():
            util.kill(s.get("pid"), signal.SIGTERM, wait=2)
        wait_hooks(lab)
        lab = Lab.load(name)  # what the hooks recorded meanwhile
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
