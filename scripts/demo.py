#!/usr/bin/env python3
"""End-to-end FT failover demo on the shelf lab (run as root; part 3 of
scripts/run-demo.sh, runnable alone: sudo scripts/demo.py).

A 2-blade lab, atca-ftd on both blades, an SNMP v2c trap receiver
(snmptrapd) in the lab's NMS namespace. On the primary blade (1 by default):
the counter guest fg1 protected by the checkpoint/replay engine
(protection ft, backup on the partner) and the guest rg1 run by libvirt
(protection restart). The primary blade loses power (atca-lab inject
power); the demo prints the timeline of the failover as atca-ftd's logs on
the survivor show it (every line has "@<CLOCK_MONOTONIC seconds>", the clock
of time.monotonic() here: the blades are namespaces of this host), proves
that fg1's console counter went on from the committed epoch (never back,
never twice), lists the notifications the NMS received, repairs the blade
and waits until fg1 is protected again (a backup on the repaired blade,
synchronised from its template when it has one), then takes the lab down.

Every wait has a timeout; a step that does not happen in time prints what
was expected and the demo exits 1 (after cleaning up). Timeouts can be
changed for a try: ATCA_DEMO_TIMEOUT_<STEP>=seconds (the step names are in
TIMEOUTS below), or all of them scaled by ATCA_DEMO_TIMEOUT_SCALE. Without
/dev/kvm it prints a SKIP line and exits 0. ATCA_DEMO_VERBOSE=1 also prints
the survivor's log lines behind the timeline. Interrupted (Ctrl-C, SIGTERM,
SIGHUP), it removes its lab before it exits.

It reuses the lab tests' helpers: tests/integration/vmft.py (the counter
guest's console, atca-ftctl in a blade), tests/integration/snmp.py (its
snmptrapd and notification parser) and bench/recovery_bench.py (the
survivor's timestamped log lines).
"""

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BUILD = os.environ.get("top_builddir") or os.path.join(TOP, "build")
os.environ.setdefault("top_srcdir", TOP)
os.environ.setdefault("top_builddir", BUILD)
sys.path.insert(0, os.path.join(TOP, "tests", "lab"))
from atcalab import faults  # noqa: E402
from atcalab import lab as labmod  # noqa: E402
from atcalab import util as labutil  # noqa: E402
from atcalab.state import Lab  # noqa: E402
from atcalab.util import LabError  # noqa: E402

ATCA_LAB = os.path.join(TOP, "tests", "lab", "atca-lab")
FTD = os.path.join(BUILD, "src", "daemon", "atca-ftd")
CTL = os.path.join(BUILD, "src", "cli", "atca-ftctl")
ENGINE = os.path.join(BUILD, "src", "vmft-bridge", "atca-vmft")
FT_VM, RS_VM = "fg1", "rg1"
TRAP_PORT = 1162

# seconds each step may take (ATCA_DEMO_TIMEOUT_<NAME> overrides one)
TIMEOUTS = {
    "LAB_UP": 120,        # atca-lab up --blades 2
    "DAEMONS": 30,        # atca-ftd answers on both blades, sees both in its group
    "GUEST_BOOT": 60,     # fg1 prints its first counter (SeaBIOS takes 3-4 s)
    "PROTECTED": 60,      # primary "protected", backup "standby"
    "CLUSTER_VIEW": 20,   # the partner knows where fg1 and rg1 run
    "TEMPLATE": 30,       # the primary blade made its template of fg1
    "FAILOVER": 20,       # power lost -> fg1 promoted, rg1 started on the partner
    "OUTPUT": 10,         # fg1's console output resumes after the promotion
    "MEMBERSHIP": 20,     # corosync drops the dead blade (before the repair)
    "NOTIFY": 10,         # the NMS received the failover's notifications
    "REPAIR": 60,         # the repaired blade is back, its atca-ftd answers
    "AUTO_BACKUP": 15,    # the repaired blade's atca-ftd starts a backup engine by itself
    "REPROTECT": 90,      # a backup on the repaired blade in standby, primary protected
    "LAB_DOWN": 120,
}

SCALE = float(os.environ.get("ATCA_DEMO_TIMEOUT_SCALE", "1"))
NOTIF_NAMES = {
    1: "atcaFtFaultRaised", 2: "atcaFtFaultCleared", 3: "atcaFtRecoveryStarted",
    4: "atcaFtRecoverySucceeded", 5: "atcaFtRecoveryFailed", 6: "atcaFtHotSwapChange",
    7: "atcaFtPairProtectionLost", 8: "atcaFtPairProtectionRestored",
    9: "atcaFtShelfManagerSwitchover", 10: "atcaFtReplicationStalled",
}
LAYERS = {0: "unknown", 1: "hardware", 2: "hypervisor", 3: "vm", 4: "cluster"}
SEVERITIES = {0: "unknown", 1: "info", 2: "warning", 3: "minor", 4: "major", 5: "critical",
              6: "predictive", 7: "degraded", 8: "fatal"}
TTY = not os.environ.get("NO_COLOR")  # bold headings, as run-demo.sh's say()


class DemoFail(Exception):
    pass


def timeout(name):
    v = os.environ.get("ATCA_DEMO_TIMEOUT_" + name)
    return float(v) if v else TIMEOUTS[name] * SCALE


def bold(s):
    return "\033[1m%s\033[0m" % s if TTY else s


def say(s):
    print("\n" + bold(">>> " + s), flush=True)


def note(s):
    print(s, flush=True)


def load(name, path):
    """A test or benchmark script of the repository as a module."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOP, path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Demo:
    def __init__(self, name, prim):
        self.name = name
        self.prim, self.back = prim, 3 - prim
        self.lab_up = False
        self.v = load("vmft_lab", "tests/integration/vmft.py")
        self.snmp = load("snmp_lab", "tests/integration/snmp.py")
        self.bench = load("recovery_bench", "bench/recovery_bench.py")
        self.v.LAB = self.snmp.LAB = self.bench.LAB = name
        self.v.VM, self.v.NET, self.v.ENGINE = FT_VM, False, ENGINE
        self.v.conf_path = lambda: self.lab().path("atca-ftd.conf")
        # only the v2c trap receiver of snmp.py's four
        self.snmp.TARGETS = {TRAP_PORT: ("v2c trap", "TRAP2, SNMP v2c, community public")}
        self.snmp.ok = lambda msg: note("    " + msg)
        self.watch = None

    # ------------------------------------------------------------ helpers

    def lab(self):
        return Lab.load(self.name)

    def lab_argv(self, *args):
        return [ATCA_LAB, "--name", self.name] + [str(a) for a in args]

    def shown(self, argv):
        return " ".join(os.path.relpath(a, TOP) if a.startswith(TOP + "/") else a
                        for a in argv)

    def run(self, argv, tmo=60, show=True, check=True, shown=None):
        """A command, shown as '$ command', its output printed."""
        if show:
            note("$ " + (shown or self.shown(argv)))
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, timeout=tmo)
        except subprocess.TimeoutExpired:
            raise DemoFail("'%s' did not finish within %.0f s" % (self.shown(argv), tmo))
        if show and r.stdout:
            sys.stdout.write(r.stdout)
            sys.stdout.flush()
        if check and r.returncode != 0:
            raise DemoFail("'%s' failed (exit %d)%s" % (
                self.shown(argv), r.returncode, "" if show else ": " + r.stdout.strip()[-500:]))
        return r

    def lab_cmd(self, *args, tmo=60, show=True):
        return self.run(self.lab_argv(*args), tmo=tmo, show=show)

    def ctl_show(self, slot, *args):
        """atca-ftctl in a blade, as an operator there would type it."""
        argv = self.lab_argv("exec", slot, CTL, *args)
        return self.run(argv, shown=self.shown(self.lab_argv("exec", slot)) + " atca-ftctl " +
                        " ".join(map(str, args)))

    def ctl_json(self, slot, *args):
        try:
            return self.v.ftctl_json(slot, *[str(a) for a in args])
        except (LabError, subprocess.TimeoutExpired, OSError) as e:
            return {"error": str(e)}

    def vm_status(self, slot):
        return self.ctl_json(slot, "vm", "status", FT_VM)

    def wait(self, step, what, fn, step_s=0.1, last=None):
        """Until fn() is true; else DemoFail naming what was expected."""
        tmo = timeout(step)
        t0 = time.monotonic()
        while True:
            try:
                r = fn()
            except (LabError, KeyError, ValueError, IndexError, TypeError, OSError,
                    subprocess.TimeoutExpired):
                r = None
            if r:
                return r
            if time.monotonic() - t0 > tmo:
                seen = ""
                if last is not None:
                    try:
                        seen = "\n    last seen: %s" % (last(),)
                    except Exception as e:  # noqa: BLE001 -- diagnostics only
                        seen = "\n    last seen: (%s)" % e
                raise DemoFail("step %s: expected %s within %.1f s (ATCA_DEMO_TIMEOUT_%s)%s" % (
                    step, what, tmo, step, seen))
            # the last look is at the deadline, not a step after it
            time.sleep(max(0.005, min(step_s, t0 + tmo - time.monotonic())))

    def log_path(self, slot):
        return os.path.join(self.lab().blade_dir(slot), "atca-ftd.out")

    # ------------------------------------------------------------ the steps

    def up(self):
        say("A 2-blade lab: shelf manager, blades %d and %d (corosync, libvirtd), an NMS"
            % (self.prim, self.back))
        if os.path.exists(labmod.lab_dir(self.name)):
            raise DemoFail("a lab named %s exists already (not this demo's: left alone); "
                           "choose another with --lab" % self.name)
        self.lab_up = True
        self.lab_cmd("up", "--blades", 2, tmo=timeout("LAB_UP"))
        lab = self.lab()
        self.tmp = lab.path("demo")
        os.makedirs(self.tmp, exist_ok=True)
        self.snmp.TMP = self.tmp

    def configure(self):
        lab = self.lab()
        say("atca-ftd.conf: %s protected by the checkpoint engine (primary on blade %d, "
            "backup on blade %d), %s restart-protected on blade %d, traps to the NMS"
            % (FT_VM, self.prim, self.back, RS_VM, self.prim))
        path = lab.path("atca-ftd.conf")
        text = open(path).read()
        # the lab's own snmp section (to its snmptrapd on port 162) gives way
        # to one v2c trap target: our snmptrapd, with snmp.py's log format
        text, n = re.subn(r"(?ms)^snmp \{\n.*?^\}\n", "", text)
        if n != 1:
            raise DemoFail("no snmp section in %s" % path)
        os.makedirs(lab.path("shared", "console"), exist_ok=True)
        # the replication link's key, the same for both engines (0600)
        key = lab.path("vmft.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        os.chmod(key, 0o600)
        added = """snmp {
    target {
        address: %(nms)s
        port: %(port)d
        community: public
    }
}
detection {
    sensor_interval: 1s
    sel_interval: 100ms
    hypervisor_interval: 500ms
    fence_timeout: 20s
}
recovery {
    mode: act
    start_timeout: 30s
}
vmft {
    engine: %(engine)s
    state_dir: /dev/shm/atca-vmft
    disk_dir: /var/lib/atca-ft/vmft
    template_dir: /var/lib/atca-ft/vmft-templates
    console_dir: /var/lib/libvirt/images/console
    epoch: 100ms
    heartbeat_timeout: 500ms
    ack_timeout: 2s
    template_interval: 30s
    key_file: %(key)s
}
vm {
    name: %(ft)s
    blade: %(prim)d
    protection: ft
    memory: 64MiB
    disk: /var/lib/libvirt/images/%(ft)s.img
    disk_bus: ide
}
vm {
    name: %(rs)s
    blade: %(prim)d
    protection: restart
    definition: /var/lib/libvirt/images/%(rs)s.xml
}
""" % dict(nms=lab.nms_addr(), port=TRAP_PORT, engine=ENGINE, key=key, ft=FT_VM, rs=RS_VM,
           prim=self.prim)
        with open(path, "w") as f:
            f.write(text + added)
        note("$ cat >>%s <<'EOF'   (its snmp section, to the lab's own snmptrapd, removed)"
             % path)
        sys.stdout.write(added)
        note("EOF")
        r = subprocess.run([FTD, "--check-config=" + path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        if r.returncode:
            raise DemoFail("the configuration is refused:\n" + r.stdout)
        note("(atca-ftd --check-config: valid)")

    def start(self):
        lab = self.lab()
        say("The NMS: snmptrapd in namespace %s on %s:%d (v2c traps)"
            % (lab.ns("nms"), lab.nms_addr(), TRAP_PORT))
        self.snmp.start_trapd(lab)
        say("The guests: %s's image (counter, disk), %s as a libvirt domain on blade %d"
            % (FT_VM, RS_VM, self.prim))
        self.v.guestmod.make_image(lab, FT_VM, pps=500, disk=True, net=False, disk_pio=True,
                                   io_every=10)
        note("%s: %s (the seed of its disk; each blade keeps its own copy)" % (
            FT_VM, lab.path("shared", FT_VM + ".img")))
        self.lab_cmd("guest", "start", self.prim, RS_VM, "--memory", 64, tmo=60)
        say("atca-ftd on both blades")
        os.environ["ATCA_FTD"] = FTD  # the power hooks restart it on a repaired blade
        self.lab_cmd("ftd", "start", 1, 2, tmo=30)
        for s in (1, 2):
            self.wait("DAEMONS", "atca-ftd answering on blade %d" % s,
                      lambda s=s: self.v.ftctl(s, "version").returncode == 0, step_s=0.2)
        for s in (1, 2):
            self.wait("DAEMONS", "blade %d's atca-ftd seeing both daemons in its group" % s,
                      lambda s=s: self.ctl_json(s, "pairs")["cluster"]["daemons"] == [1, 2],
                      step_s=0.2, last=lambda s=s: self.ctl_json(s, "pairs").get("cluster"))
        say("The checkpoint engines, started through atca-ftd: the primary boots %s on "
            "blade %d, the backup on blade %d waits for it" % (FT_VM, self.prim, self.back))
        self.ctl_show(self.prim, "--yes", "vm", "start", FT_VM, "primary")
        self.ctl_show(self.back, "--yes", "vm", "start", FT_VM, "backup")
        t0 = time.monotonic()
        self.wait("GUEST_BOOT", "%s's first counter line in its console" % FT_VM,
                  lambda: self.v.counters(self.v.console_text()), step_s=0.2)
        note("%s counts (first console line after %.1f s)" % (FT_VM, time.monotonic() - t0))
        self.wait("PROTECTED", "blade %d: primary 'protected', blade %d: backup 'standby'"
                  % (self.prim, self.back), self.protected, step_s=0.2,
                  last=lambda: (self.vm_status(self.prim).get("state"),
                                self.vm_status(self.back).get("state")))
        note("protected %.1f s after the engines started" % (time.monotonic() - t0))

    def protected(self, prim=None, back=None):
        prim, back = prim or self.prim, back or self.back
        p, b = self.vm_status(prim), self.vm_status(back)
        return (p.get("role") == "primary" and p.get("state") == "protected" and
                p.get("acked_epoch", 0) >= 3 and b.get("role") == "backup" and
                b.get("state") == "standby") and (p, b)

    def knows(self):
        """The partner knows where both guests run (the daemons' STATE)."""
        vms = {x["name"]: x for x in self.ctl_json(self.back, "vms").get("vms", [])}
        return (vms.get(FT_VM, {}).get("running_on") == self.prim and
                vms.get(RS_VM, {}).get("running_on") == self.prim)

    def show_protected(self):
        self.wait("CLUSTER_VIEW", "blade %d's atca-ftd seeing %s and %s run on blade %d" % (
            self.back, FT_VM, RS_VM, self.prim), self.knows, step_s=0.2,
            last=lambda: self.ctl_json(self.back, "vms").get("vms"))
        say("Protection established")
        self.ctl_show(self.prim, "pairs")
        self.ctl_show(self.prim, "vms")
        self.ctl_show(self.prim, "vm", "status", FT_VM)
        self.ctl_show(self.back, "vm", "status", FT_VM)
        # the blade that will fail keeps a template of the guest (continuous
        # templating, made once the guest is protected): its re-protection
        # after the repair sends only what changed
        tpl = self.wait("TEMPLATE", "a template of %s on blade %d" % (FT_VM, self.prim),
                        lambda: (lambda t: t if t.get("id") and not t.get("refreshing") else
                                 None)(self.vm_status(self.prim).get("template", {})),
                        step_s=0.3, last=lambda: self.vm_status(self.prim).get("template"))
        note("template %s of %s kept on blade %d (from epoch %s)" % (
            tpl.get("id"), FT_VM, self.prim, tpl.get("source_epoch")))

    # ------------------------------------------------------------ the failure

    def fail(self):
        say("Blade %d loses power (every process of the blade killed at once, hot-swap "
            "M4->M6->M1 on the shelf)" % self.prim)
        lab = self.lab()
        console = self.v.console_path()
        traps = os.path.join(self.tmp, "traps.log")
        self.watch = Watch(console, traps, self.v.blademod.holder_of(lab, self.prim))
        self.watch.start()
        time.sleep(0.3)
        note("$ %s inject power %d" % (self.shown(self.lab_argv()), self.prim))
        # in-process, as bench/recovery_bench.py does: t0 is the moment the
        # blade's processes die, not an interpreter's start-up before it
        self.t0 = time.monotonic()
        note(faults.inject(lab, "power", self.prim))
        lab.save()
        self.t_inject = time.monotonic()
        # the console as it was when the blade's holder died (PID 1 of its
        # PID namespace: every process of the blade, the primary engine and
        # its QEMU among them, was dead by then): all the output released
        # before the failure
        self.wait("FAILOVER", "blade %d's processes dead" % self.prim,
                  lambda: self.watch.base is not None, step_s=0.01)
        self.before = self.v.counters(self.watch.base_text)
        back = self.back

        def done():
            st = self.vm_status(back)
            vms = {x["name"]: x for x in self.ctl_json(back, "vms").get("vms", [])}
            return (st.get("role") == "primary" and
                    vms.get(RS_VM, {}).get("running_on") == back and st)
        self.wait("FAILOVER", "blade %d: %s promoted (engine role primary) and %s running "
                  "there" % (back, FT_VM, RS_VM), done, step_s=0.25,
                  last=lambda: (self.vm_status(back).get("role"),
                                self.vm_status(back).get("state"),
                                self.ctl_json(back, "vms").get("vms")))
        self.wait("OUTPUT", "%s's console counter going on after the promotion" % FT_VM,
                  lambda: self.watch.resumed is not None and
                  len(self.v.counters(self.v.console_text())) > len(self.before) + 20,
                  step_s=0.1)
        # corosync drops the dead blade ~2 s after the power went (the
        # timeline's last line; and a blade repaired before that would look
        # like the old member that left)
        S, V = self.back, self.prim
        self.wait("MEMBERSHIP", "corosync on blade %d dropping blade %d" % (S, V),
                  lambda: self.ctl_json(S, "pairs")["cluster"]["nodes"] == [S], step_s=0.25,
                  last=lambda: self.ctl_json(S, "pairs").get("cluster"))

    def timeline(self):
        lab = self.lab()
        S, V = self.back, self.prim
        lines = self.bench.log_lines(lab, S, self.t0 - 0.001)
        src = "blade%d atca-ftd log" % S

        def find(pattern):
            for t, text in lines:
                m = re.search(pattern, text)
                if m:
                    return t, m
            return None, None
        rows = []  # (step, monotonic time, source, detail, required)

        def row(step, t, source, detail="", required=True):
            rows.append((step, t, source, detail or "", required))
        row("power lost (inject power %d)" % V, self.t0, "demo: time.monotonic()",
            "blade dead after %.0f ms; links down, M6 and M1 in the SEL after %.0f ms" % (
                (self.watch.t_dead - self.t0) * 1e3, (self.t_inject - self.t0) * 1e3))
        t, m = find(r"engine of vm %s: primary-lost" % FT_VM)
        row("(backup engine: primary lost)", t, src,
            "lab only: the killed engine's TCP link closed (hardware: %s of silence)" %
            "vmft.heartbeat_timeout 500 ms", required=False)
        t, m = find(r"^event .*src=(ipmi|shelf) blade=%d kind=(sel\.record|hotswap|"
                    r"sensor\.discrete) " % V)
        hs = find(r"^event .*blade=%d kind=hotswap .*from=(M\d) to=(M\d)" % V)[1]
        row("IPMI event seen by atca-ftd", t, src, m and "%s %s%s" % (
            m.group(1), m.group(2), hs and ": hot-swap %s->%s" % (hs.group(1), hs.group(2))))
        t, m = find(r'fault raise: .*target="(blade|host) %d"' % V)
        row("fault classified (failure model raise)", t, src,
            m and " ".join(re.findall(r"(?:layer|severity|class|rule)=\S+", m.string)))
        t, m = find(r"recovery: plan (\d+) for fault \d+ started")
        row("recovery plan started", t, src, m and "plan %s" % m.group(1))
        t, m = find(r"step \d+ fence blade %d: done in [0-9.]+ ms: (.*)" % V)
        row("blade %d fenced (M1 confirmed)" % V, t, src, m and m.group(1)[:60])
        t, m = find(r"step \d+ promote blade %d vm %s: done in [0-9.]+ ms: (.*)" % (S, FT_VM))
        me = m and re.search(r"from epoch (\d+) \(promoted in ([0-9.]+) ms\)", m.group(1))
        row("backup promoted", t, src, me and "from epoch %s, QEMU resumed in %s ms" % (
            me.group(1), me.group(2)))
        row("FT guest running (counter resumes)", self.watch.resumed,
            "%s console (5 ms poll)" % FT_VM,
            "first line C %s" % self.watch.first_after if self.watch.first_after else "")
        t, m = find(r"step \d+ start-vm blade %d vm %s: done in [0-9.]+ ms: (.*)" % (S, RS_VM))
        row("restart guest %s started on blade %d" % (RS_VM, S), t, src, m and m.group(1))
        t, m = find(r"recovery: plan \d+ done in ([0-9.]+) ms")
        row("recovery plan done", t, src, required=False)
        t, m = find(r"^event .*blade=%d kind=node\.leave" % V)
        row("(for comparison: corosync says blade %d left)" % V, t, src, required=False)
        self.rows = rows
        if os.environ.get("ATCA_DEMO_VERBOSE"):
            say("blade %d's atca-ftd log from the power loss on (ATCA_DEMO_VERBOSE)" % S)
            end = max(r[1] for r in rows if r[1] is not None) + 0.05
            for t, text in lines:
                if t <= end and not text.startswith("IPC "):
                    note("%9.1f  %s" % ((t - self.t0) * 1e3, text[:200]))
        say("Timeline of the failover (ms after the power loss; times from atca-ftd's "
            "CLOCK_MONOTONIC log stamps)")
        w = max(len(r[0]) for r in rows)
        ws = max(len(r[2]) for r in rows)
        note("%-*s  %8s  %-*s  %s" % (w, "STEP", "+MS", ws, "SOURCE", "DETAIL"))
        for step, t, source, detail, _ in rows:
            note("%-*s  %8s  %-*s  %s" % (w, step, "%.1f" % ((t - self.t0) * 1e3)
                                           if t is not None else "-", ws, source,
                                           detail if t is not None else "NOT SEEN"))
        # the plan's own steps and their durations, as atca-ftctl shows them
        say("The plan, as atca-ftctl shows it on blade %d" % S)
        self.ctl_show(S, "plans", "-n", "1")
        need = [r[0] for r in rows if r[1] is None and r[4]]
        if need:
            self.dump_log(S)
            raise DemoFail("the failover's timeline lacks: %s" % "; ".join(need))
        # never two live copies: nothing of blade V's runs elsewhere before
        # blade V is confirmed off
        t_fence = rows[5][1]
        early = [r[0] for r in rows[6:9] if r[1] < t_fence]
        if early:
            raise DemoFail("before the fence was confirmed: %s" % "; ".join(early))
        note("fence confirmed before the promotion and before %s started: never two live "
             "copies" % RS_VM)

    def counters_check(self):
        say("%s's console counter: released output before the failure, then the promoted "
            "guest" % FT_VM)
        vals = self.v.counters(self.v.console_text())
        before = self.before
        last = before[-1] if before else None
        after = vals[len(before):]
        back = [(a, b) for a, b in zip(vals, vals[1:]) if b <= a]
        note("last counter released before the failure: C %s (%d lines)" % (last, len(before)))
        note("first counter after the promotion:         C %s" % (after[0] if after else "-"))
        note("now:                                       C %s (%d lines)" % (
            vals[-1] if vals else "-", len(vals)))
        text = self.v.console_text()
        note("around the failover: %s | power lost, promoted | %s" % (
            ", ".join("C %d" % c for c in before[-3:]), ", ".join("C %d" % c for c in after[:3])))
        if back:
            raise DemoFail("the counter went back or repeated: %s" % back[:3])
        if "MISMATCH" in text:
            raise DemoFail("the guest's self-check failed (MISMATCH in its console)")
        if not after or after[0] <= (last or -1):
            raise DemoFail("no counter after the promotion beyond C %s" % last)
        note("strictly increasing, no value twice, self-check intact: the guest went on from "
             "the committed epoch%s" % (
                 "" if not self.promote_epoch() else " (epoch %s)" % self.promote_epoch()))

    def promote_epoch(self):
        for _, text in self.bench.log_lines(self.lab(), self.back, self.t0):
            m = re.search(r"vm %s: done.*from epoch (\d+)" % FT_VM, text)
            if m:
                return m.group(1)
        return None

    def notifications(self):
        say("What the NMS received (snmptrapd in %s; ms after the power loss)" %
            self.lab().ns("nms"))
        V = self.prim

        def have(kind, pred=lambda n: True):
            return any(n.kind == kind and pred(n) for n in self.snmp.notifs())
        try:
            self.wait("NOTIFY", "atcaFtFaultRaised, atcaFtRecoveryStarted/Succeeded and "
                      "atcaFtHotSwapChange of blade %d at the NMS" % V,
                      lambda: have(1) and have(3) and have(4) and
                      have(6, lambda n: n.obj(8) == V), step_s=0.2)
        finally:
            self.print_notifs()

    def print_notifs(self):
        got = self.snmp.notifs()
        seen = self.watch.trap_times if self.watch else {}
        note("%9s  %-8s %-30s %s" % ("+MS", "FROM", "NOTIFICATION", "KEY VALUES"))
        for n in got:
            t = seen.get(n.seq)
            rel = "%9.0f" % ((t - self.t0) * 1e3) if t is not None else "%9s" % "(before)"
            note("%s  %-8s %-30s %s" % (rel, n.obj(15) or "?", NOTIF_NAMES.get(n.kind, n.kind),
                                         describe(n)))

    # ------------------------------------------------------------ repair

    def repair(self):
        V, S = self.prim, self.back
        say("Repair: blade %d's power comes back (M1->M2->M3->M4, its holder, corosync, "
            "libvirtd and atca-ftd start)" % V)
        self.t_repair = time.monotonic()
        self.lab_cmd("repair", "power", V, tmo=timeout("REPAIR"))
        self.wait("REPAIR", "atca-ftd answering on the repaired blade %d" % V,
                  lambda: self.v.ftctl(V, "version").returncode == 0, step_s=0.2)
        self.wait("REPAIR", "both daemons in blade %d's group again" % S,
                  lambda: self.ctl_json(S, "pairs")["cluster"]["daemons"] == [1, 2],
                  step_s=0.2, last=lambda: self.ctl_json(S, "pairs").get("cluster"))
        note("blade %d back, its atca-ftd in the group %.1f s after the repair" % (
            V, time.monotonic() - self.t_repair))
        # the repaired blade's daemon is new: it sees the primary on the
        # partner and no engine of its own, and starts the backup itself
        self.wait("AUTO_BACKUP", "atca-ftd on blade %d starting the backup engine of %s by "
                  "itself" % (V, FT_VM), lambda: self.vm_status(V).get("role") == "backup",
                  step_s=0.2, last=lambda: self.vm_status(V))
        note("atca-ftd on blade %d started the backup engine of %s by itself, %.1f s after "
             "the repair" % (V, FT_VM, time.monotonic() - self.t_repair))
        good = self.wait("REPROTECT", "blade %d: primary 'protected', blade %d: backup "
                         "'standby'" % (S, V), lambda: self.protected(S, V), step_s=0.2,
                         last=lambda: (self.vm_status(S).get("state"),
                                       self.vm_status(V).get("state")))
        p, _ = good
        ls = p.get("last_sync", {})
        say("%s protected again: primary on blade %d, backup on the repaired blade %d" % (
            FT_VM, S, V))
        note("re-protected %.1f s after the repair; last sync: %s pages sent%s, %.0f ms" % (
            time.monotonic() - self.t_repair, ls.get("pages_sent", "?"),
            (", %s from template %s" % (ls.get("pages_from_template"), ls.get("template"))
             if ls.get("template") else " (no template: full sync)"), ls.get("ms", 0)))
        self.ctl_show(S, "vm", "status", FT_VM)
        self.ctl_show(V, "vm", "status", FT_VM)
        self.ctl_show(S, "vms")
        vals = self.v.counters(self.v.console_text())
        back = [(a, b) for a, b in zip(vals, vals[1:]) if b <= a]
        if back:
            raise DemoFail("the counter went back after the re-protection: %s" % back[:3])
        note("%s's counter: C %d now, never went back (%d lines)" % (FT_VM, vals[-1], len(vals)))
        time.sleep(0.5)
        say("What the NMS received since the repair (ms after the power loss)")
        self.print_notifs_since(self.t_repair)

    def print_notifs_since(self, t):
        seen = self.watch.trap_times
        for n in self.snmp.notifs():
            tn = seen.get(n.seq)
            if tn is not None and tn >= t:
                note("%9.0f  %-8s %-30s %s" % ((tn - self.t0) * 1e3, n.obj(15) or "?",
                                               NOTIF_NAMES.get(n.kind, n.kind), describe(n)))

    def dump_log(self, slot, n=60):
        """The recovery, failure-model, cluster and vmft lines of a blade's
        atca-ftd (and its events), without the IPC chatter."""
        try:
            with open(self.log_path(slot), errors="replace") as f:
                lines = [ln for ln in f if re.search(r"\[(recovery|fm|cluster|vmft)\]|event ",
                                                     ln) and "] debug:" not in ln]
        except OSError:
            return
        note("---- blade %d: atca-ftd's recovery, fm, cluster, vmft lines (last %d) ----" % (
            slot, n))
        sys.stdout.write("".join(ln[:240] + ("\n" if len(ln) > 240 else "")
                                 for ln in lines[-n:]))

    def diagnostics(self):
        if not self.lab_up or not os.path.exists(labmod.lab_dir(self.name)):
            return
        try:
            lab = self.lab()
            for s in (1, 2):
                self.dump_log(s, 30)
                try:
                    holder = self.v.blademod.holder_of(lab, s)
                except LabError:
                    continue  # powered off
                path = "/proc/%d/root/dev/shm/atca-vmft/%s/engine.log" % (holder, FT_VM)
                if os.path.exists(path):
                    note("---- blade %d: the engine's log (last 10) ----\n%s" % (
                        s, self.v.tail(path, 10).rstrip()))
        except Exception as e:  # noqa: BLE001 -- diagnostics only
            note("(diagnostics: %s)" % e)

    def cleanup(self):
        """Everything this demo started goes, whatever happened."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        problems = []
        if self.watch:
            self.watch.stop()
        try:
            self.snmp.stop_trapd()
        except Exception as e:  # noqa: BLE001
            problems.append("snmptrapd: %s" % e)
        if self.lab_up:
            say("The lab is removed (processes, namespaces, files)")
            r = self.run(self.lab_argv("down"), tmo=timeout("LAB_DOWN"), check=False)
            if r.returncode:
                problems.append("atca-lab down exited %d" % r.returncode)
            left = labmod.leftovers(self.name)
            if left:
                problems.append("left behind: %s" % left)
            else:
                note("nothing of lab %s left" % self.name)
        return problems


def describe(n):
    """The key values of a notification (snmp.py's Notif)."""
    k = n.kind
    if k in (1, 2):
        return "fault %s %s %s/%s %s" % (n.obj(1), n.obj(5), LAYERS.get(n.obj(2), n.obj(2)),
                                         SEVERITIES.get(n.obj(3), n.obj(3)), n.obj(4))
    if k in (3, 4, 5):
        return "plan %s %s: %s" % (n.obj(7), n.obj(4), n.obj(6))
    if k == 6:
        return "blade %s M%d -> M%d" % (n.obj(8), n.obj(10) - 1, n.obj(9) - 1)
    if k in (7, 8):
        return "pair %s vm %s: %s" % (n.obj(11), n.obj(12), n.obj(6))
    if k == 9:
        return "now %s" % n.obj(13)
    if k == 10:
        return "vm %s epoch %s" % (n.obj(12), n.obj(14))
    return str(n)


class Watch(threading.Thread):
    """Polls every 5 ms: the failing blade's holder (when it is dead, the
    console's size is what was released before the failure), fg1's console
    (when it grows again after that: the promoted guest's first released
    line) and the NMS's log (when each notification arrived)."""

    def __init__(self, console, traps, holder):
        super().__init__(daemon=True)
        self.console, self.traps, self.holder = console, traps, holder
        self.base = self.base_text = self.t_dead = None
        self.resumed = None
        self.first_after = None
        self.trap_times = {}
        self.halt = threading.Event()

    @staticmethod
    def size(path):
        try:
            return os.stat(path).st_size
        except OSError:
            return 0

    def run(self):
        nlines = 0
        while not self.halt.is_set():
            now = time.monotonic()
            if self.base is None and not labutil.alive(self.holder):
                try:
                    with open(self.console, "rb") as f:
                        data = f.read()
                except OSError:
                    data = b""
                self.base_text = data.decode("ascii", "replace")
                self.t_dead, self.base = now, len(data)
            elif self.resumed is None and self.base is not None:
                if self.size(self.console) > self.base:
                    with open(self.console, "rb") as f:
                        f.seek(self.base)
                        new = f.read().decode("ascii", "replace")
                    for ln in new.split("\n")[:-1]:
                        ln = ln.strip("\r")
                        if ln.startswith("C ") and ln[2:].isdigit():
                            self.first_after = int(ln[2:])
                            self.resumed = now
                            break
            try:
                with open(self.traps, errors="replace") as f:
                    n = sum(1 for ln in f if ln.startswith("NOTIFY "))
            except OSError:
                n = 0
            for i in range(nlines, n):
                self.trap_times[i] = now
            nlines = n
            time.sleep(0.005)

    def stop(self):
        self.halt.set()


def preflight():
    if os.geteuid() != 0:
        sys.exit("demo.py: run as root")
    for path in (FTD, CTL, ENGINE):
        if not os.access(path, os.X_OK):
            sys.exit("demo.py: %s is not built (cd build && make)" % path)
    if not os.path.exists("/dev/kvm"):
        print("SKIP FT failover demo: no /dev/kvm (the checkpoint engine's guest needs KVM)",
              flush=True)
        sys.exit(0)
    for tool in ("qemu-system-x86_64", "snmptrapd", "ipmi_sim", "corosync", "libvirtd"):
        if subprocess.run(["sh", "-c", "command -v " + tool],
                          stdout=subprocess.DEVNULL).returncode:
            sys.exit("demo.py: %s is not installed (scripts/setup.sh)" % tool)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lab", default="ft%d" % (os.getpid() % 1000),
                    help="the lab's name (default ftPID)")
    ap.add_argument("--primary", type=int, choices=(1, 2), default=1,
                    help="the FT primary's blade (the one that loses power)")
    a = ap.parse_args()
    preflight()
    t_all = time.monotonic()

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    d = Demo(a.lab, a.primary)
    rc, why = 0, ""
    try:
        d.up()
        d.configure()
        d.start()
        d.show_protected()
        d.fail()
        d.timeline()
        d.counters_check()
        d.notifications()
        d.repair()
    except DemoFail as e:
        print("\n" + bold("FAILED: %s" % e), flush=True)
        d.diagnostics()
        rc, why = 1, str(e).split("\n")[0]
    except KeyboardInterrupt:
        print("\n" + bold("INTERRUPTED: cleaning up"), flush=True)
        rc, why = 130, "interrupted"
    except Exception:  # noqa: BLE001 -- reported, then cleaned up
        traceback.print_exc()
        print("\n" + bold("FAILED: unexpected error (above)"), flush=True)
        d.diagnostics()
        rc, why = 1, "unexpected error"
    finally:
        problems = d.cleanup()
    if problems:
        print(bold("FAILED: cleanup: %s" % "; ".join(problems)), flush=True)
        rc, why = rc or 1, why or "cleanup"
    if rc == 0:
        print("\nFT failover demo finished in %.0f s" % (time.monotonic() - t_all), flush=True)
    else:
        print("\n" + bold("FT failover demo FAILED after %.0f s: %s" % (
            time.monotonic() - t_all, why)), flush=True)
    if rc == 130:
        # interrupted and cleaned up: die of SIGINT, so that a calling shell
        # stops too
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    return rc


if __name__ == "__main__":
    sys.exit(main())
