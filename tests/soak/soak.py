#!/usr/bin/env python3
"""Randomized fault soak on the shelf lab (run as root; exit 77 = skipped
with a reason, 1 = an invariant was violated). Issue 12, item 1.

A 3-blade lab with two shelf managers, atca-ftd on every blade in act mode:
the counter guest fg1 protected by the checkpoint engine (primary on blade 1,
backup on its partner blade 2, disk and NIC through the engine, its UDP
datagrams received on the NMS host) and the counter guest rg1, a libvirt
domain protected by restart (on blade 2). Blade 3 is the third vote.

Then, step after step, a scenario drawn from a weighted menu with
random.Random(seed) -- every fault kind the lab offers, and the overlapping
ones: a second fault during a recovery, a partition during a fence, the
shelf manager down during a blade loss, atca-ftd SIGKILLed during an FT
promotion -- is injected; the soak waits for the cluster to settle, repairs
what it broke (a few mild faults stay open until a later repair step) and
waits until everything is protected again. A monitor thread watches all the
time, and after every step the invariants are checked and counted:

  single-copy     never two running copies of a VM (rg1: libvirt of every
                  blade, its QEMU when libvirtd is dead; fg1: engines in
                  role primary with a running guest)
  availability    every protected VM runs somewhere within its recovery
                  budget whenever quorum and capacity allow (BUDGETS)
  counter         fg1's released console counter never goes back, never
                  repeats, the guest's self-check never fails, no reboot
  udp-sequence    fg1's datagrams on the network: the send sequence never
                  goes back (no released output rolled back)
  journal         every blade's recovery journal parses (checksums, sequence;
                  only a torn last line allowed), no plan left unfinished
                  and no plan active after the settle
  healed          after the repair, fg1 protected again (primary protected,
                  backup standby), rg1 running once, three daemons
  leaks           atca-ftd's fd count back to its baseline, RSS growth
                  bounded and not a steady climb, one atca-ftd / at most one
                  engine and one fg1 QEMU per blade, no zombies; after the
                  run nothing of the lab left

The same --seed gives the same sequence of scenarios, targets and delays
while the lab takes the same injections (timing of the lab itself still
varies). See tests/soak/README.md.
"""

import argparse
import datetime
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

TOP = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("top_builddir") or os.path.join(TOP, "build")
sys.path.insert(0, os.path.join(TOP, "tests", "lab"))
from atcalab import blade as blademod  # noqa: E402
from atcalab import guest as guestmod  # noqa: E402
from atcalab import lab as labmod  # noqa: E402
from atcalab.labtest import LabTest, tail, have_tools  # noqa: E402
from atcalab.util import LabError  # noqa: E402

FT, RS = "fg1", "rg1"
PAIR = (1, 2)          # fg1's pair (blade 3 is the witness: the third vote)
UDP_PORT = 7777
GUEST_HOST = 200       # fg1's address on the management network: .200

# Recovery budgets, seconds from the injection of the fault that took the
# VM down to the VM running again (one copy). They include detection (SEL
# poll 100 ms, corosync token 1 s + consensus), the fence through the shelf
# manager (0.3 s payload shutdown, longer with the slowed shelf of the
# fence scenarios), and the promotion or the libvirt start; generous, since
# the whole lab shares 2 CPUs. An overlapping scenario adds its EXTRA (a
# restarted atca-ftd resumes its plan from the journal; a fence goes through
# the second shelf manager after its session to the first one times out).
BUDGETS = {FT: 10.0, RS: 30.0}
EXTRA = {"ftd-kill": 20.0, "shmc-during-loss": 15.0, "partition-during-fence": 15.0,
         "second-fault": 10.0, "picmg-fence": 10.0}
SETTLE_S = 45.0        # bound of the settle after an injection
DEATH_GRACE = 2.0      # a blade the shelf switched off dies this late in the lab
SETTLE_MIN_S = 5.0     # ... and its least (detection: sensors every 500 ms, debounce)
HEAL_S = 150.0         # bound of the re-protection after a repair
FD_SLACK = 6           # atca-ftd fds above its baseline
RSS_SLACK_KB = 8 * 1024  # atca-ftd RSS growth over its life
TREND_KB = 1024        # heap growth in the second half of a daemon's life
INVARIANTS = ["single-copy", "availability", "counter", "udp-sequence", "journal", "healed",
              "leaks"]

PROFILES = {"short": dict(duration=100.0), "long": dict(duration=7200.0)}

RUNNING_STATES = ("booting", "syncing", "protected", "unprotected")
LINGER = ("temp-nc", "volt-nc", "picmg", "shmc")  # may stay open to a later step


def now():
    return time.monotonic()


class Violation(Exception):
    pass


# ---------------------------------------------------------------- the monitor


class Monitor(threading.Thread):
    """Polls the lab every POLL s: running copies of each VM (never two),
    fg1's console and datagrams (never back). Keeps per-VM down intervals
    for the availability check."""

    POLL = 0.4

    def __init__(self, soak):
        super().__init__(daemon=True)
        self.s = soak
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.samples = []          # (t, {vm: copies}) of the current window
        self.copy_viol = []        # (t, vm, where)
        self.suspect = []          # (t, vm, where, {slot: holder}) to be judged
        self.died = {}             # holder pid -> when first seen gone
        self.excused = []          # (t, vm, where): a copy on a blade switched off
        self.out_viol = []         # (t, invariant, what)
        self.console_off = 0
        self.last_c = None
        self.boots = 0
        self.partial = ""
        self.sink_off = 0
        self.last_seq = None
        self.udp_count = 0
        self.c_count = 0
        self.polls = 0
        self.allow_reboot = False
        self.reboot_credit = 0     # boots the soak caused (fg1 started by hand)
        self.udp_reset_ok = False

    # -- copies

    def ft_engines(self, lab):
        """{slot: status} of fg1's engines answering on their control socket."""
        out = {}
        for s in range(1, lab.blades + 1):
            st = engine_status(self.s.t, s, lab)
            if st:
                out[s] = st
        return out

    def rs_running(self, lab):
        out = []
        for s in range(1, lab.blades + 1):
            if not self.s.t.powered(s, lab):
                continue
            r = subprocess.run(["virsh", "-q", "-c", blademod.libvirt_uri(lab, s), "domstate",
                                RS], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, timeout=20)
            if r.returncode == 0:
                if r.stdout.strip() == "running":
                    out.append(s)
                continue
            # libvirtd dead: its QEMUs may still run
            if any(c.startswith("qemu-system") and st not in ("Z", "X") and
                   any("guest=%s," % RS in a for a in argv)
                   for _, c, st, argv in self.s.t.procs(s, lab)):
                out.append(s)
        return out

    def poll_copies(self):
        t0 = now()
        lab = self.s.t.lab()
        eng = self.ft_engines(lab)
        ft = sorted(s for s, st in eng.items()
                    if st.get("role") == "primary" and st.get("state") in RUNNING_STATES)
        rs = self.rs_running(lab)
        t = now()
        with self.lock:
            self.samples.append((t, {FT: ft, RS: rs}))
            for vm, where in ((FT, ft), (RS, rs)):
                if len(where) > 1:
                    # two copies must be seen on two polls in a row: a
                    # single sample may straddle a handover
                    prev = self.samples[-2][1][vm] if len(self.samples) > 1 else []
                    if len(prev) > 1:
                        holders = {w: lab.blade(w).get("holder") for w in where}
                        self.suspect.append((t0, vm, where, holders))
            # when the blades of suspected copies lose their payload
            for _, _, _, holders in self.suspect:
                for h in holders.values():
                    if h and h not in self.died and not os.path.exists("/proc/%d" % h):
                        self.died[h] = t
            # a copy on a blade whose payload the shelf switched off within
            # DEATH_GRACE s does not count (the lab kills a blade's
            # processes after its shelf manager reports M1)
            keep = []
            for item in self.suspect:
                ts, vm, where, holders = item
                if t - ts < DEATH_GRACE + self.POLL:
                    keep.append(item)
                    continue
                live = [w for w in where if not (holders[w] in self.died and
                                                 self.died[holders[w]] - ts <= DEATH_GRACE)]
                if len(live) > 1:
                    self.copy_viol.append((ts, vm, where))
                else:
                    self.excused.append((ts, vm, where))
            self.suspect = keep

    # -- output

    def poll_output(self):
        path = self.s.t.lab().path("shared", "console", FT + ".console")
        try:
            with open(path, "rb") as f:
                f.seek(self.console_off)
                data = f.read()
        except OSError:
            data = b""
        self.console_off += len(data)
        text = self.partial + data.decode("ascii", "replace")
        lines = text.split("\n")
        self.partial = lines.pop()
        for ln in lines:
            ln = ln.strip("\r")
            if ln.startswith("BOOT"):
                self.boots += 1
                if self.reboot_credit > 0:
                    # the soak itself started fg1 again from its disk
                    self.reboot_credit -= 1
                    self.udp_reset_ok = True
                elif self.boots > 1 and not self.allow_reboot:
                    self.out_viol.append((now(), "counter", "fg1 booted again (%d boots): "
                                          "its committed state was lost" % self.boots))
                self.last_c = None
            elif "MISMATCH" in ln:
                self.out_viol.append((now(), "counter", "guest self-check: %s" % ln))
            elif ln.startswith("C ") and ln[2:].isdigit():
                c = int(ln[2:])
                self.c_count += 1
                if self.last_c is not None and c <= self.last_c:
                    self.out_viol.append((now(), "counter", "console counter went %s: C %d "
                                          "after C %d" % ("back" if c < self.last_c
                                                          else "twice", c, self.last_c)))
                self.last_c = c
        # datagrams
        try:
            with open(self.s.sink_out) as f:
                f.seek(self.sink_off)
                data = f.read()
        except OSError:
            data = ""
        cut = data.rfind("\n") + 1
        self.sink_off += cut
        for ln in data[:cut].splitlines():
            try:
                seq = int(ln.split()[0])
            except (ValueError, IndexError):
                continue
            self.udp_count += 1
            if self.last_seq is not None and seq <= self.last_seq:
                if seq <= 2 and (self.allow_reboot or self.udp_reset_ok):
                    self.udp_reset_ok = False  # started again from its disk: from 1
                else:
                    self.out_viol.append((now(), "udp-sequence",
                                          "datagram sequence went back: %d after %d"
                                          % (seq, self.last_seq)))
            self.last_seq = seq

    def run(self):
        while not self.halt.is_set():
            t0 = now()
            try:
                self.poll_copies()
                self.poll_output()
                self.polls += 1
            except Exception as e:  # noqa: BLE001 -- the lab changes under the poll
                if not isinstance(e, (LabError, OSError, subprocess.TimeoutExpired, KeyError,
                                      ValueError)):
                    traceback.print_exc()
            self.halt.wait(max(0.05, self.POLL - (now() - t0)))

    def window(self):
        with self.lock:
            s, self.samples = self.samples, self.samples[-1:]
            cv, self.copy_viol = self.copy_viol, []
            ov, self.out_viol = self.out_viol, []
        return s, cv, ov


def engine_status(t, slot, lab=None, timeout=1.0):
    path = t.in_blade(slot, "/dev/shm/atca-vmft/%s/ctl.sock" % FT, lab)
    if path is None or not os.path.exists(path):
        return None
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(b'{"cmd": "status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            d = s.recv(65536)
            if not d:
                break
            buf += d
        s.close()
        return json.loads(buf)
    except (OSError, ValueError):
        return None


def down_intervals(samples, vm, t_end):
    """[(t_down, t_up or None)] of a VM in the samples (up = one copy)."""
    out, down = [], None
    for t, copies in samples:
        up = len(copies[vm]) == 1
        if not up and down is None:
            down = t
        elif up and down is not None:
            out.append((down, t))
            down = None
    if down is not None:
        out.append((down, None))
    return out


# ---------------------------------------------------------------- journal


def check_journal(path):
    """(problems, unfinished plan ids) of a recovery journal file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], []
    except OSError as e:
        return ["cannot read: %s" % e], []
    problems, plans, seq = [], {}, 0
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn last write (allowed)
    for i, raw in enumerate(lines):
        ln = raw.decode(errors="replace")
        m = re.match(r"^(rcvj1 (\d+) (.*)) \*([0-9a-f]{8})$", ln)
        if not m:
            problems.append("line %d malformed: %r" % (i + 1, ln[:80]))
            continue
        h = 2166136261
        for b in m.group(1).encode():
            h = ((h ^ b) * 16777619) & 0xFFFFFFFF
        if h != int(m.group(4), 16):
            problems.append("line %d: bad checksum" % (i + 1))
            continue
        sq = int(m.group(2))
        if sq <= seq:
            problems.append("line %d: sequence %d after %d" % (i + 1, sq, seq))
        seq = sq
        rec = m.group(3)
        k = rec.split(" ", 1)[0]
        if k == "mark":
            continue  # a probe of the journal's writability: ignored at replay
        if k not in ("plan", "step", "finish"):
            problems.append("line %d: unknown record %r" % (i + 1, rec[:60]))
            continue
        mid = re.search(r"\bid=(\d+)", rec)
        if not mid:
            problems.append("line %d: no id: %r" % (i + 1, rec[:60]))
            continue
        pid = int(mid.group(1))
        if k == "plan":
            plans[pid] = False
        elif k == "finish":
            plans[pid] = True
        elif k == "step":
            plans.setdefault(pid, False)
    return problems, sorted(p for p, done in plans.items() if not done)


# ---------------------------------------------------------------- the soak


class Soak:
    def __init__(self, a):
        self.a = a
        self.t = LabTest(a.lab, TOP, BUILD)
        self.rng = random.Random(a.seed)
        self.step = 0
        self.lab_up = False
        self.sink = None
        self.sink_out = None
        self.mon = None
        self.viol = []              # (step, invariant, what)
        self.checked = {k: 0 for k in INVARIANTS}
        self.failed = {k: 0 for k in INVARIANTS}
        self.kinds = {}             # fault kind -> injections
        self.scen = {}              # scenario -> times
        self.outages = {FT: [], RS: []}
        self.leak = {}              # (slot, pid) -> [(step, rss_kb, fds)]
        self.lingering = []         # (kind, target) left open
        self.manual = []            # what the soak had to do by hand
        self.harness = []           # (step, error) of the lab itself
        self.by_design = []         # (step, what) expected losses of state
        self.asan = {}              # (slot, pid) -> built with AddressSanitizer
        self.pidns = set()
        self.t_start = None
        self.log_lines = []
        self.slowed = False

    # ------------------------------------------------------------ output

    def say(self, msg):
        line = "[%7.1f] %s" % (now() - (self.t_start or now()), msg)
        print(line, flush=True)
        self.log_lines.append(line)

    def violation(self, inv, what, diag=True):
        self.failed[inv] += 1
        self.viol.append((self.step, inv, what))
        self.say("VIOLATION step %d [%s] seed %d: %s" % (self.step, inv, self.a.seed, what))
        if diag:
            self.diagnostics()
            self.keep_logs()
        if self.a.stop_on_violation:
            raise Violation(what)

    def count(self, inv, good, what):
        self.checked[inv] += 1
        if not good:
            self.violation(inv, what)
        return good

    def keep_logs(self):
        """Every blade's atca-ftd log and the shelf managers' hook logs, as
        they are at a violation: REPORT.diag/stepN/ (the lab's own files go
        with it at the end)."""
        if not self.a.report:
            return
        import shutil
        dest = os.path.join(self.a.report + ".diag", "step%d" % self.step)
        os.makedirs(dest, exist_ok=True)
        lab = self.t.lab()
        for s in range(1, lab.blades + 1):
            for src, name in ((self.t.log_path(s), "blade%d-atca-ftd.log" % s),
                              (os.path.join(lab.blade_dir(s), "atca-ftd.out"),
                               "blade%d-atca-ftd.out" % s)):
                try:
                    shutil.copyfile(src, os.path.join(dest, name))
                except OSError:
                    pass
        for w in ("a", "b"):
            try:
                shutil.copyfile(lab.path("shmc-" + w, "hook.log"),
                                os.path.join(dest, "shmc-%s-hook.log" % w))
            except OSError:
                pass

    def diagnostics(self):
        lab = self.t.lab()
        for s in range(1, lab.blades + 1):
            lines, _ = self.t.log_lines(s, r"\[(recovery|fm|cluster|vmft)\]|fence|promot")
            lines = [ln for ln in lines if "] debug:" not in ln]
            print("---- blade %d atca-ftd (last 25 recovery/fm/cluster/vmft lines) ----" % s)
            sys.stdout.write("".join(ln[:220] + "\n" for ln in lines[-25:]))
            p = self.t.in_blade(s, "/dev/shm/atca-vmft/%s/engine.log" % FT, lab)
            if p and os.path.exists(p):
                print("---- blade %d engine.log (last 8) ----" % s)
                sys.stdout.write(tail(p, 8))
        sys.stdout.flush()

    # ------------------------------------------------------------ setup

    def lab_cmd(self, *args, **kw):
        return self.t.lab_cmd(*args, **kw)

    def setup(self):
        # the power hooks restart it; $ATCA_FTD, when set, runs it through a
        # wrapper (a heap profiler, say: README.md, Debugging a run)
        os.environ.setdefault("ATCA_FTD", self.t.ftd)
        if os.path.exists(labmod.lab_dir(self.a.lab)):
            raise LabError("a lab named %s exists already (not this run's: left alone)"
                           % self.a.lab)
        self.lab_up = True
        self.say("lab %s: 3 blades, 2 shelf managers" % self.a.lab)
        self.lab_cmd("up", "--blades", 3, "--shelf-managers", 2, timeout=180)
        lab = self.t.lab()
        self.write_conf(lab)
        guestmod.make_image(lab, FT, pps=500, disk=True, net=True, disk_pio=True, io_every=10,
                            net_src_ip=lab.mgmt(GUEST_HOST), net_dst_ip="255.255.255.255",
                            net_port=UDP_PORT)
        self.sink_out = lab.path("soak-udp.txt")
        self.sink = subprocess.Popen(["ip", "netns", "exec", lab.ns("nms"), sys.executable,
                                      os.path.join(TOP, "tests", "integration", "udp_sink.py"),
                                      str(UDP_PORT), self.sink_out])
        self.lab_cmd("guest", "start", 2, RS, "--memory", 64, timeout=90)
        self.lab_cmd("ftd", "start", 1, 2, 3, timeout=60)
        for s in (1, 2, 3):
            self.need("atca-ftd answering on blade %d" % s,
                      lambda s=s: self.t.ctl(s, "version")[0] == 0, 30)
        self.need("every daemon in the group",
                  lambda: all(self.daemons(s) == [1, 2, 3] for s in (1, 2, 3)), 40)
        self.t.ctl(1, "--yes", "vm", "start", FT, "primary")
        self.t.ctl(2, "--yes", "vm", "start", FT, "backup")
        self.need("fg1 protected (primary blade 1, backup blade 2)", self.ft_protected, 90)
        self.need("rg1 running", lambda: len(self.mon_rs()) == 1, 30)
        self.need("the daemons know where fg1 and rg1 run", self.views_agree, 30)
        for s in (1, 2, 3):
            try:
                self.pidns.add(os.readlink("/proc/%d/ns/pid" % self.t.holder(s)))
            except (OSError, TypeError):
                pass
        self.mon = Monitor(self)
        self.mon.start()
        time.sleep(2)
        self.say("set up: fg1 protected on blades 1+2, rg1 on blade 2")

    def need(self, what, fn, timeout):
        t0 = now()
        if not self.t.wait(fn, timeout, 0.3):
            raise LabError("setup: %s: not within %.0f s" % (what, timeout))
        self.say("%s (%.1f s)" % (what, now() - t0))

    def write_conf(self, lab):
        """The lab's atca-ftd.conf plus the soak's sections. The replication
        link's key (vmft.key_file) where this atca-ftd knows the key."""
        path = lab.path("atca-ftd.conf")
        base = open(path).read()
        key = lab.path("vmft.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        for keyline in ("    key_file: %s\n" % key, ""):
            with open(path, "w") as f:
                f.write(base)
            self.append_conf(lab, path, keyline)
            r = subprocess.run([self.t.ftd, "--check-config=" + path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, timeout=30)
            if r.returncode == 0:
                return
            if not keyline or "key_file" not in r.stdout:
                break
        raise LabError("configuration refused:\n" + r.stdout)

    def append_conf(self, lab, path, keyline):
        os.makedirs(lab.path("shared", "console"), exist_ok=True)
        with open(path, "a") as f:
            f.write("""detection {
    sensor_interval: 500ms
    sel_interval: 100ms
    ipmc_timeout: 500ms
    ipmc_retry_max: 2s
    hypervisor_interval: 500ms
    fence_timeout: 20s
}
recovery {
    mode: act
    start_timeout: 30s
    stop_timeout: 10s
    migrate_unsafe: yes
    migrate_timeout: 60s
    quorum_timeout: 20s
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
    template_interval: 60s
%(keyline)s}
vm {
    name: %(ft)s
    blade: 1
    protection: ft
    memory: 64MiB
    disk: /var/lib/libvirt/images/%(ft)s.img
    disk_bus: ide
    nic: ne2k_isa,iobase=0x300,irq=9
    net_interface: mgmt0
    ip: %(ip)s
}
vm {
    name: %(rs)s
    blade: 2
    protection: restart
    max_restarts: 100
    restart_window: 1min
    definition: /var/lib/libvirt/images/%(rs)s.xml
}
""" % dict(engine=self.t.engine, ft=FT, rs=RS, ip=lab.mgmt(GUEST_HOST), keyline=keyline))

    # ------------------------------------------------------------ views

    def daemons(self, s):
        return self.t.ctl_json(s, "pairs", timeout=10).get("cluster", {}).get("daemons")

    def engines(self):
        lab = self.t.lab()
        return {s: st for s in range(1, 4) for st in [engine_status(self.t, s, lab)] if st}

    def ft_where(self):
        """(primary slot, backup slot) of fg1, None where there is none."""
        eng = self.engines()
        p = [s for s, st in eng.items() if st.get("role") == "primary" and
             st.get("state") in RUNNING_STATES]
        b = [s for s, st in eng.items() if st.get("role") == "backup"]
        return (p[0] if len(p) == 1 else None), (b[0] if len(b) == 1 else None)

    def ft_protected(self):
        eng = self.engines()
        p = [(s, st) for s, st in eng.items() if st.get("role") == "primary"]
        b = [(s, st) for s, st in eng.items() if st.get("role") == "backup"]
        return (len(p) == 1 and len(b) == 1 and p[0][1].get("state") == "protected" and
                p[0][1].get("acked_epoch", p[0][1].get("epochs_acked", 0)) >= 3 and
                b[0][1].get("state") == "standby" and {p[0][0], b[0][0]} == set(PAIR))

    def mon_rs(self):
        if self.mon:
            return self.mon.rs_running(self.t.lab())
        return Monitor(self).rs_running(self.t.lab())

    def views_agree(self):
        p, _ = self.ft_where()
        r = self.mon_rs()
        if p is None or len(r) != 1:
            return False
        for s in self.alive_daemons():
            vms = {v["name"]: v for v in self.t.ctl_json(s, "vms", timeout=10).get("vms", [])}
            if vms.get(FT, {}).get("running_on") != p or vms.get(RS, {}).get("running_on") != r[0]:
                return False
        return True

    def alive_daemons(self):
        lab = self.t.lab()
        return [s for s in range(1, 4) if self.t.powered(s, lab) and
                blademod.daemon_pid(lab, s, "atca-ftd")]

    def healthy_blade(self, exclude=()):
        for s in self.alive_daemons():
            if s not in exclude:
                return s
        return None

    # ------------------------------------------------------------ faults

    def inject(self, kind, target=None, **kw):
        args = ["inject", kind] + ([target] if target is not None else [])
        for k, v in kw.items():
            args += ["--" + k, v]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        r = self.lab_cmd(*args, check_rc=False, timeout=60)
        self.say("  inject %s %s%s: %s" % (kind, target or "", "".join(" --%s %s" % i for i in
                                                                     kw.items()),
                                           (r.stdout + r.stderr).strip()[:150]))
        return r.returncode == 0

    def inject_ft_vm(self):
        """fg1's QEMU killed on its primary's blade (the lab's 'vm' kind
        covers libvirt guests only)."""
        p, _ = self.ft_where()
        self.kinds["vm"] = self.kinds.get("vm", 0) + 1
        if p is not None:
            self.qemu_of_ft_killed(p)
        if p is None:
            self.say("  inject vm fg1: no primary running")
            return False
        pids = [pid for pid, c, st, argv in self.t.procs(p)
                if c.startswith("qemu-system") and st not in ("Z", "X") and
                any(FT in a for a in argv)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.say("  inject vm fg1: QEMU %s on blade %d killed" % (pids, p))
        return bool(pids)

    def slow_shelf(self, ms):
        self.lab_cmd("console", "--shmc", "all", "picmg_delay", ms, check_rc=False, timeout=30)
        self.slowed = ms > 0

    def wait_log(self, slots, pattern, offsets, timeout):
        """A new line matching pattern in the log of one of slots; the slot."""
        def seen():
            for s in slots:
                lines, _ = self.t.log_lines(s, pattern, offsets.get(s, 0))
                if lines:
                    return s
            return None
        return self.t.wait(seen, timeout, 0.05)

    def offsets(self):
        return {s: self.t.log_size(s) for s in (1, 2, 3)}

    # ------------------------------------------------------------ scenarios

    def roles(self):
        p, b = self.ft_where()
        r = self.mon_rs()
        return p, b, (r[0] if len(r) == 1 else None)

    def menu(self):
        """(weight, name, function) of every scenario."""
        m = []
        for kind in ("temp-nc", "temp-cr", "temp-nr", "volt-nc", "volt-cr", "volt-nr", "ecc",
                     "ierr", "m7", "extraction", "power", "hypervisor", "partition",
                     "corosync", "picmg"):
            w = 3 if kind in ("power", "partition", "ecc", "hypervisor", "corosync") else 2
            m.append((w, kind, lambda kind=kind: self.sc_single(kind)))
        m.append((3, "vm", self.sc_vm))
        m.append((2, "shmc", self.sc_shmc))
        m.append((4, "second-fault", self.sc_second_fault))
        m.append((4, "partition-during-fence", self.sc_partition_during_fence))
        m.append((4, "shmc-during-loss", self.sc_shmc_during_loss))
        m.append((4, "ftd-kill", self.sc_ftd_kill))
        m.append((2, "picmg-fence", self.sc_picmg_fence))
        m.append((2, "repair", self.sc_repair))
        return m

    def pick(self):
        m = self.menu()
        total = sum(w for w, _, _ in m)
        x = self.rng.uniform(0, total)
        for w, name, fn in m:
            x -= w
            if x <= 0:
                return name, fn
        return m[-1][1], m[-1][2]

    def target(self):
        return self.rng.choice([1, 2, 3])

    def qemu_of_ft_killed(self, slot):
        """fg1's QEMU is killed on its primary's blade: a VM-layer fault,
        which by design (DESIGN.md, section 3) restarts fg1 from its disk
        rather than promoting a backup that could replay a guest bug: its
        counter starts again, which the counter check then allows."""
        if self.ft_where()[0] == slot:
            self.mon.allow_reboot = True
            self.by_design.append((self.step, "fg1's QEMU killed on its primary's blade %d: "
                                   "restarted from its disk (VM-layer fault)" % slot))

    def sc_single(self, kind):
        slot = self.target()
        kw = {}
        if kind == "hypervisor":
            kw["what"] = self.rng.choice(["libvirtd", "qemu", "all"])
            if kw["what"] != "libvirtd":
                self.qemu_of_ft_killed(slot)
        ok = self.inject(kind, slot, **kw)
        return {"faults": ["%s %d" % (kind, slot)], "lost": [slot] if ok and kind in
                ("power", "extraction") else [], "ok": ok}

    def sc_vm(self):
        if self.rng.random() < 0.6:
            ok = self.inject("vm", RS)
            return {"faults": ["vm rg1"], "lost": [], "ok": ok}
        ok = self.inject_ft_vm()
        return {"faults": ["vm fg1"], "lost": [], "ok": ok}

    def sc_shmc(self):
        which = self.rng.choice(["a", "b"])
        if self.a.no_shmc_switchover:
            which = "b"  # the standby: no switchover (the draw stays the seed's)
        if any(k == "shmc" for k, _ in self.lingering):
            which = [w for w in "ab" if ("shmc", w) in self.lingering][0]
            return {"faults": [], "ok": True, "lost": [], "note": "shmc %s already down" % which}
        ok = self.inject("shmc", which)
        return {"faults": ["shmc %s" % which], "lost": [], "ok": ok}

    def sc_second_fault(self):
        """A blade of the pair loses power; during its recovery (as soon as a
        plan begins, plus a random delay) a second fault that leaves
        quorum and capacity."""
        victim = self.rng.choice(PAIR)
        survivor = 3 - victim
        second = self.rng.choice(["vm-rg1", "corosync-3", "partition-3", "temp-nc-s", "ecc-3",
                                  "m7-3", "shmc-b", "volt-nc-s", "ierr-3"])
        delay = self.rng.uniform(0.0, 1.5)
        if self.a.no_quorum_loss and second in ("corosync-3", "partition-3", "ecc-3",
                                                "ierr-3", "m7-3"):
            # blade 3 out of the membership (or fenced: M7 is hs-lost) beside
            # the victim: the survivor alone, without quorum (the draw stays
            # the seed's)
            second = {"corosync-3": "temp-nc-3", "partition-3": "volt-nc-3",
                      "ecc-3": "temp-cr-3", "ierr-3": "temp-cr-3", "m7-3": "temp-nc-3"}[second]
        off = self.offsets()
        self.inject("power", victim)
        self.wait_log([survivor], r"plan \d+ step \d+/\d+ \S+ .*: begin", off, 10)
        time.sleep(delay)
        kind, _, tgt = second.rpartition("-")
        if kind == "vm":
            self.inject("vm", RS)
        elif tgt == "s":
            self.inject(kind, survivor)
        elif kind == "shmc":
            self.inject("shmc", "b")
        else:
            self.inject(kind, 3)
        return {"faults": ["power %d" % victim, "%s %s (+%.2f s)" % (
            kind, survivor if tgt == "s" else tgt, delay)], "lost": [victim], "ok": True,
            "extra": EXTRA["second-fault"]}

    def sc_partition_during_fence(self):
        victim = self.rng.choice(PAIR)
        partner = 3 - victim
        kind = self.rng.choice(["ecc", "ierr", "temp-nr", "volt-nr"])
        who = self.rng.choice([victim, 3])
        if who == 3 and self.a.no_quorum_loss:
            who = victim  # the draw is made all the same: the sequence stays the seed's
        self.slow_shelf(1500)
        off = self.offsets()
        self.inject(kind, victim)
        s = self.wait_log([partner], r"step \d+/\d+ fence blade %d: begin" % victim, off, 20)
        if s is None:
            self.say("  (no fence of blade %d began within 20 s)" % victim)
        self.inject("partition", who)
        return {"faults": ["%s %d" % (kind, victim), "partition %d during the fence" % who],
                "lost": [victim], "ok": True, "extra": EXTRA["partition-during-fence"]}

    def sc_shmc_during_loss(self):
        victim = self.rng.choice([1, 2, 3])
        delay = self.rng.uniform(0.0, 1.0)
        self.inject("power", victim)
        time.sleep(delay)
        if ("shmc", "a") in self.lingering or ("shmc", "b") in self.lingering:
            self.say("  (a shelf manager is down already: no second one killed)")
            return {"faults": ["power %d" % victim], "lost": [victim], "ok": True}
        which = "b" if self.a.no_shmc_switchover else "a"
        self.inject("shmc", which)
        return {"faults": ["power %d" % victim, "shmc %s (+%.2f s)" % (which, delay)],
                "lost": [victim], "ok": True, "extra": EXTRA["shmc-during-loss"]}

    def sc_ftd_kill(self):
        """fg1's primary blade loses power; atca-ftd on the survivor is
        SIGKILLed once its promotion step begins, then started again."""
        p, b, r = self.roles()
        victim = p or 1
        survivor = 3 - victim
        off = self.offsets()
        # killed as its fence begins (the promotion is then the restarted
        # daemon's, from the journal) or as its promotion begins
        at = self.rng.choice(["fence", "promote", "promote"])
        extra_delay = self.rng.uniform(0.0, 0.15)
        pid = self.t.daemon_pid(survivor)
        self.inject("power", victim)
        pat = (r"step \d+/\d+ fence blade %d: begin" % victim if at == "fence" else
               r"step \d+/\d+ promote blade %d vm %s: begin" % (survivor, FT))
        s = self.wait_log([survivor], pat, off, 20)
        time.sleep(extra_delay)
        if pid:
            os.kill(pid, signal.SIGKILL)
        self.kinds["ftd-kill"] = self.kinds.get("ftd-kill", 0) + 1
        self.say("  atca-ftd on blade %d (pid %s) SIGKILLed %s+%.2f s" % (
            survivor, pid, ("as its %s began " % at) if s else "(no %s seen) " % at,
            extra_delay))
        time.sleep(0.3)
        self.lab_cmd("ftd", "stop", survivor, check_rc=False)
        self.lab_cmd("ftd", "start", survivor, check_rc=False)
        return {"faults": ["power %d" % victim, "atca-ftd on %d killed during the promotion"
                           % survivor], "lost": [victim], "ok": True,
                "extra": EXTRA["ftd-kill"]}

    def sc_picmg_fence(self):
        victim = self.rng.choice(PAIR)
        self.inject("picmg", victim)
        self.inject(self.rng.choice(["ecc", "ierr"]), victim)
        return {"faults": ["picmg %d" % victim, "hardware fault on %d (fence by chassis "
                           "control)" % victim], "lost": [victim], "ok": True,
                "extra": EXTRA["picmg-fence"]}

    def sc_repair(self):
        done = [("%s %s" % lf) for lf in self.lingering]
        self.repair_all(include_lingering=True)
        return {"faults": [], "lost": [], "ok": True, "repair": done}

    # ------------------------------------------------------------ conditions

    def conditions(self):
        """(quorum, capacity) now, from the lab's state: a majority of blades
        powered, with corosync and their management link; a healthy blade
        of fg1's pair; a shelf manager to fence through."""
        lab = self.t.lab()
        faults = lab.state.get("faults", {})
        cut = {int(f["target"]) for f in faults.values()
               if f["kind"] == "partition" and str(f.get("target", "")).isdigit()}
        up = [s for s in range(1, 4) if self.t.powered(s, lab) and s not in cut and
              blademod.daemon_pid(lab, s, "corosync")]
        shm = [w for w, v in lab.state.get("shmc", {}).items()
               if v.get("pid") and os.path.exists("/proc/%d" % v["pid"])]
        return len(up) >= 2, (any(s in up for s in PAIR) and bool(shm))

    # ------------------------------------------------------------ a step

    def one_step(self):
        self.step += 1
        name, fn = self.pick()
        self.scen[name] = self.scen.get(name, 0) + 1
        self.mon.window()  # a fresh window
        self.mon.allow_reboot = False
        q0, c0 = self.conditions()
        self.say("step %d: %s" % (self.step, name))
        t_inj = now()
        info = fn() or {}
        # settle: no active plan anywhere, both VMs up or a bounded wait
        t_set = now()
        conds = []

        def settled():
            q, c = self.conditions()
            conds.append((now(), q, c))
            if now() - t_set < SETTLE_MIN_S:
                return False
            plans = [self.t.ctl_json(s, "plans", timeout=10).get("active")
                     for s in self.alive_daemons()]
            return all(p == [] for p in plans) and len(self.mon_rs()) == 1 and \
                self.ft_where()[0] is not None
        ok = self.t.wait(settled, SETTLE_S, 0.5)
        self.say("  settled in %.1f s%s" % (now() - t_set, "" if ok else " (not: bound reached)"))
        self.check_after(t_inj, info, conds, q0 and c0)
        self.repair_all(include_lingering=False, lost=info.get("lost", []))
        self.heal()
        self.check_journal_leaks()

    def check_after(self, t_inj, info, conds, precond):
        samples, cv, ov = self.mon.window()
        # single copy
        self.count("single-copy", not cv, "two running copies: %s" % [
            (round(t - t_inj, 2), vm, w) for t, vm, w in cv[:3]])
        for t, inv, what in ov:
            self.count(inv, False, "%s (+%.1f s)" % (what, t - t_inj))
        self.checked["counter"] += 1
        self.checked["udp-sequence"] += 1
        # availability: conditions all along the settle?
        allowed = precond and all(q and c for _, q, c in conds)
        extra = info.get("extra", 0.0)
        for vm in (FT, RS):
            iv = down_intervals(samples, vm, now())
            worst = 0.0
            for d, u in iv:
                worst = max(worst, (u or now()) - d)
            self.outages[vm].append(round(worst, 2))
            if not allowed:
                if worst:
                    self.say("  %s down %.1f s (quorum or capacity lost: not counted)" % (
                        vm, worst))
                continue
            budget = BUDGETS[vm] + extra
            self.count("availability", worst <= budget,
                       "%s down %.1f s, budget %.0f s (intervals %s)" % (
                           vm, worst, budget, [(round(d - t_inj, 1),
                                                round(u - t_inj, 1) if u else None)
                                               for d, u in iv]))
            if worst:
                self.say("  %s down %.1f s (budget %.0f s)" % (vm, worst, budget))
        self.mon.allow_reboot = self.mon.allow_reboot or not allowed

    # ------------------------------------------------------------ repair / heal

    def repair_all(self, include_lingering, lost=()):
        lab = self.t.lab()
        faults = dict(lab.state.get("faults", {}))
        keep = []
        for key, f in faults.items():
            kind, tgt = f["kind"], f.get("target")
            if not include_lingering and kind in LINGER and self.rng.random() < 0.5:
                keep.append((kind, tgt))
                continue
            args = ["repair", kind] + ([tgt] if tgt else [])
            if kind == "partition":
                args += ["--link", f.get("link", "mgmt")]
            if kind == "hypervisor":
                args += ["--what", f.get("what", "libvirtd")]
            if kind == "vm":
                # nothing to repair: the manager restarts a crashed VM (a
                # 'repair vm' would start a second copy by hand)
                lab2 = self.t.lab()
                lab2.state.get("faults", {}).pop(key, None)
                lab2.save()
                continue
            for attempt in range(3):
                r = self.lab_cmd(*args, check_rc=False, timeout=120)
                self.say("  repair %s %s: %s" % (kind, tgt or "",
                                                 (r.stdout + r.stderr).strip()[:120]))
                # the shelf manager's console can lose its prompt on a
                # loaded machine: a repair left undone fails the heal (the
                # blade fenced again for the fault still there: seed
                # 942394263, step 39), so it is asked again
                if r.returncode == 0 or "ipmi_sim console" not in r.stdout + r.stderr:
                    break
                time.sleep(2)
        self.lingering = keep
        if keep:
            self.say("  left open: %s" % keep)
        if self.slowed:
            self.slow_shelf(0)

    def heal(self):
        """Everything back: fenced blades unfenced, daemons running, fg1
        protected, rg1 running once."""
        t0 = now()
        deadline = t0 + HEAL_S
        lab = self.t.lab()
        labmod.wait_hooks(lab) if hasattr(labmod, "wait_hooks") else None
        # fenced (or still off) blades: unfenced through a daemon
        for s in range(1, 4):
            lab = self.t.lab()
            if self.t.powered(s, lab):
                continue
            by = self.healthy_blade(exclude=(s,))
            done = False
            if by is not None:
                # only once the others' membership has dropped it
                self.t.wait(lambda: s not in (self.t.ctl_json(by, "pairs", timeout=10)
                                              .get("cluster", {}).get("nodes") or [s]), 20)
                for _ in range(4):
                    rc, out, err = self.t.ctl(by, "unfence", s, "--yes", timeout=90)
                    if rc == 0:
                        done = True
                        break
                    time.sleep(2)
                self.say("  unfence %d by blade %d: %s" % (s, by, "done" if done else
                                                          (err or out).strip()[:150]))
            if not done:
                r = self.lab_cmd("repair", "power", s, check_rc=False, timeout=120)
                self.manual.append((self.step, "blade %d brought back by repair power" % s))
                self.say("  repair power %d: %s" % (s, (r.stdout + r.stderr).strip()[:120]))
            self.t.wait(lambda: self.t.powered(s), 30)
        # daemons of every powered blade
        for s in range(1, 4):
            lab = self.t.lab()
            if not self.t.powered(s, lab):
                continue
            if not blademod.daemon_pid(lab, s, "corosync"):
                self.lab_cmd("repair", "corosync", s, check_rc=False)
            if not blademod.daemon_pid(lab, s, "libvirtd"):
                self.lab_cmd("repair", "hypervisor", s, check_rc=False)
            if not self.t.wait(lambda: blademod.daemon_pid(self.t.lab(), s, "atca-ftd"), 8):
                self.lab_cmd("ftd", "start", s, check_rc=False)
                self.say("  atca-ftd started on blade %d" % s)
        # wait: group, fg1 protected, rg1 once, no active plans
        kicked = set()

        def healthy():
            if now() - t0 > 20 and "unfence" not in kicked:
                lab = self.t.lab()
                off = [s for s in range(1, 4) if not self.t.powered(s, lab)]
                by = self.healthy_blade(exclude=off)
                if off and by is not None:
                    kicked.add("unfence")
                    for s in off:
                        rc, out, err = self.t.ctl(by, "unfence", s, "--yes", timeout=90)
                        self.manual.append((self.step, "blade %d off again during the heal: "
                                            "unfenced by blade %d (rc %d)" % (s, by, rc)))
                        self.say("  blade %d off again during the heal: unfence by blade %d: "
                                 "rc %d" % (s, by, rc))
                    return False
            d = [self.daemons(s) for s in (1, 2, 3)]
            if any(x != [1, 2, 3] for x in d):
                return False
            if len(self.mon_rs()) != 1:
                if not self.mon_rs() and now() - t0 > 60 and "rs" not in kicked:
                    kicked.add("rs")
                    self.start_rs()
                return False
            if not self.ft_protected():
                p, b = self.ft_where()
                if now() - t0 > 60 and p is not None and b is None and "backup" not in kicked:
                    other = 3 - p if p in PAIR else None
                    if other:
                        kicked.add("backup")
                        self.t.ctl(other, "--yes", "vm", "start", FT, "backup")
                        self.manual.append((self.step, "backup of fg1 started by hand on "
                                            "blade %d" % other))
                        self.say("  fg1 without a backup after 60 s: started one on blade %d"
                                 % other)
                if p is None and now() - t0 > 40 and "primary" not in kicked and \
                        self.mon.allow_reboot:
                    kicked.add("primary")
                    self.restart_ft()
                return False
            return all(self.t.ctl_json(s, "plans", timeout=10).get("active") == []
                       for s in (1, 2, 3))
        good = self.t.wait(healthy, max(5, deadline - now()), 0.5)
        self.count("healed", bool(good) and not kicked,
                   "not healed by itself within %.0f s%s: daemons %s, fg1 %s, rg1 %s" % (
                       HEAL_S, " (done by hand: %s)" % ", ".join(sorted(kicked))
                       if kicked else "", [self.daemons(s) for s in (1, 2, 3)],
                       {s: (st.get("role"), st.get("state")) for s, st in
                        self.engines().items()}, self.mon_rs()))
        if good:
            self.say("  healed in %.1f s: fg1 primary on %s, rg1 on %s" % (
                now() - t0, self.ft_where()[0], self.mon_rs()))
            # and fg1's released output flows (nothing held for good)
            c0, u0 = self.mon.c_count, self.mon.udp_count
            flowing = self.t.wait(lambda: self.mon.c_count > c0 + 5 and
                                  self.mon.udp_count > u0, 20, 0.2)
            self.count("healed", bool(flowing), "fg1 protected but its released output does "
                       "not flow: %d console lines, %d datagrams in 20 s" % (
                           self.mon.c_count - c0, self.mon.udp_count - u0))
        else:
            self.restore_hard()

    def restart_ft(self):
        """fg1 lost for good (quorum or capacity were lost): started again
        from its disk on a pair blade (a reboot the counter check allows)."""
        for s in PAIR:
            if engine_status(self.t, s):
                self.t.ctl(s, "--yes", "vm", "quit", FT)
        # not drawn from the seed's generator: the heal's path depends on
        # timing, the scenarios drawn after it must not
        lab = self.t.lab()
        prim = next((s for s in PAIR if self.t.powered(s, lab)), PAIR[0])
        self.mon.allow_reboot = True
        self.mon.reboot_credit += 1
        self.t.ctl(prim, "--yes", "vm", "start", FT, "primary")
        self.t.ctl(3 - prim, "--yes", "vm", "start", FT, "backup")
        self.manual.append((self.step, "fg1 started again from its disk on blade %d" % prim))
        self.say("  fg1 had no primary: started again on blade %d (a reboot)" % prim)

    def start_rs(self):
        """rg1 left down by the manager: started by hand where it ran last."""
        lab = self.t.lab()
        for s in [lab.state.get("guests", {}).get(RS, {}).get("blade", 2)] + list(PAIR):
            if not self.t.powered(s, lab):
                continue
            r = subprocess.run(["virsh", "-q", "-c", blademod.libvirt_uri(lab, s), "start", RS],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=60)
            self.say("  rg1 down: virsh start on blade %d: %s" % (s, r.stdout.strip()[:100]))
            if r.returncode == 0:
                self.manual.append((self.step, "rg1 started by hand on blade %d" % s))
                return

    def restore_hard(self):
        """After a failed heal: what can be put right by hand, so that the
        next steps test something (counted as manual interventions)."""
        if not self.mon_rs():
            self.start_rs()
        p, b = self.ft_where()
        if p is None:
            self.restart_ft()
        elif b is None and p in PAIR:
            self.t.ctl(3 - p, "--yes", "vm", "start", FT, "backup")
            self.manual.append((self.step, "backup of fg1 started by hand"))
        self.t.wait(self.ft_protected, 60, 0.5)

    # ------------------------------------------------------------ journal, leaks

    def check_journal_leaks(self):
        lab = self.t.lab()
        probs = []
        for s in (1, 2, 3):
            path = self.t.var_path(s, "lib", "atca-ft", "recovery.journal")
            bad, unfinished = check_journal(path)
            probs += ["blade %d: %s" % (s, b) for b in bad]
            if unfinished:
                # a running daemon has them active; after the heal none is
                active = self.t.ctl_json(s, "plans", timeout=10).get("active")
                if active:
                    probs.append("blade %d: plans %s unfinished, active %s" % (
                        s, unfinished, [a.get("id") for a in active if isinstance(a, dict)]))
        self.count("journal", not probs, "; ".join(probs[:5]))
        # leaks
        problems = []
        for s in (1, 2, 3):
            if not self.t.powered(s, lab):
                continue
            procs = self.t.procs(s, lab)
            ftd = [p for p in procs if p[1] == "atca-ftd" and p[2] not in ("Z", "X")]
            eng = [p for p in procs if p[1] == "atca-vmft" and p[2] not in ("Z", "X")]
            qemu = [p for p in procs if p[1].startswith("qemu-system") and
                    p[2] not in ("Z", "X") and any("atca-vmft" in a or "/" + FT in a or
                                                   FT + "." in a for a in p[3])]
            zomb = [p for p in procs if p[2] == "Z"]
            if len(ftd) != 1:
                problems.append("blade %d: %d atca-ftd processes" % (s, len(ftd)))
            if len(eng) > 1:
                problems.append("blade %d: %d atca-vmft engines" % (s, len(eng)))
            if len(qemu) > 1:
                problems.append("blade %d: %d QEMUs of fg1" % (s, len(qemu)))
            if zomb:
                # a zombie lingering across a settle: give it a moment
                time.sleep(1)
                still = [p for p in self.t.procs(s, lab) if p[2] == "Z" and
                         p[0] in {z[0] for z in zomb}]
                if still:
                    problems.append("blade %d: zombies %s" % (
                        s, [(p[0], p[1]) for p in still]))
            if len(ftd) == 1:
                pid = ftd[0][0]
                try:
                    with open("/proc/%d/status" % pid) as f:
                        st = f.read()
                    rss, anon, shm = (int(re.search(r"%s:\s+(\d+)" % k, st).group(1))
                                      for k in ("VmRSS", "RssAnon", "RssShmem"))
                    fds = len(os.listdir("/proc/%d/fd" % pid))
                except (OSError, AttributeError):
                    continue
                hist = self.leak.setdefault((s, pid), [])
                hist.append((self.step, rss, fds, anon, shm))
                if (s, pid) not in self.asan:
                    try:
                        with open("/proc/%d/maps" % pid) as f:
                            self.asan[(s, pid)] = "libasan" in f.read()
                    except OSError:
                        self.asan[(s, pid)] = False
                # baseline: the second sample of this daemon's life (the
                # first step warms it up: sessions, caches)
                if len(hist) >= 3:
                    _, rss0, fd0, _, _ = hist[1]
                    if fds > fd0 + FD_SLACK:
                        problems.append("blade %d atca-ftd %d: %d fds, baseline %d" % (
                            s, pid, fds, fd0))
                    # under AddressSanitizer the quarantine of freed
                    # memory makes RSS grow by design: fds only
                    if rss > rss0 + RSS_SLACK_KB and not self.asan.get((s, pid)):
                        problems.append("blade %d atca-ftd %d: RSS %d kB, baseline %d kB" % (
                            s, pid, rss, rss0))
        self.count("leaks", not problems, "; ".join(problems))

    def leak_trend(self):
        """At the end: no daemon whose heap (RssAnon: not the blackbox ring
        in /dev/shm, RssShmem, that fills up to its size) still climbs in
        the second half of its life: rising at 3 of 4 samples or more, and
        by more than TREND_KB."""
        bad = []
        for (s, pid), hist in self.leak.items():
            anon = [h[3] for h in hist[1:]]
            if len(anon) < 8 or self.asan.get((s, pid)):
                continue
            half = anon[len(anon) // 2:]
            ups = sum(1 for a, b in zip(half, half[1:]) if b > a)
            if ups * 4 >= 3 * (len(half) - 1) and half[-1] - half[0] > TREND_KB:
                bad.append("blade %d atca-ftd %d: heap (RssAnon) still climbing over the last "
                           "%d samples: %d -> %d kB (whole life %d -> %d kB)" % (
                               s, pid, len(half), half[0], half[-1], anon[0], anon[-1]))
        self.count("leaks", not bad, "; ".join(bad))

    # ------------------------------------------------------------ the run

    def run(self):
        self.t_start = now()
        self.setup()
        t_steps = now()
        errors = 0
        while True:
            if self.a.steps and self.step >= self.a.steps:
                break
            if not self.a.steps and now() - t_steps >= self.a.duration:
                break
            try:
                self.one_step()
                errors = 0
            except (LabError, subprocess.TimeoutExpired, OSError) as e:
                # the lab misbehaved (a command timed out...): said, the
                # cluster healed, and on, unless it keeps happening
                errors += 1
                traceback.print_exc()
                self.harness.append((self.step, str(e).split("\n")[0][:200]))
                self.say("  HARNESS ERROR at step %d: %s" % (self.step, e))
                if errors >= 3:
                    raise
                self.repair_all(include_lingering=True)
                self.heal()
        self.leak_trend()

    def finish(self, outcome):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if self.mon:
            self.mon.halt.set()
            self.mon.join(5)
        if self.sink and self.sink.poll() is None:
            self.sink.terminate()
            try:
                self.sink.wait(5)
            except subprocess.TimeoutExpired:
                self.sink.kill()
        left = []
        if self.lab_up:
            r = self.lab_cmd("down", check_rc=False, timeout=180)
            if r.returncode:
                left.append("atca-lab down exited %d: %s" % (r.returncode, r.stderr[-300:]))
            left += labmod.leftovers(self.a.lab)
            # nothing of the blades' PID namespaces survives
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    if os.readlink("/proc/%s/ns/pid" % d) in self.pidns:
                        left.append("process %s in a blade's PID namespace" % d)
                except OSError:
                    pass
            self.checked["leaks"] += 1
            if left:
                self.failed["leaks"] += 1
                self.viol.append((self.step, "leaks", "left after down: %s" % left[:5]))
                self.say("VIOLATION [leaks]: left after down: %s" % left[:5])
        self.write_report(outcome)
        return left

    def write_report(self, outcome):
        dur = now() - (self.t_start or now())
        mon = self.mon
        cmd = "sudo top_srcdir=$PWD top_builddir=$PWD/build tests/soak/soak.py --seed %d %s" % (
            self.a.seed, ("--steps %d" % self.a.steps) if self.a.steps else
            "--duration %.0f" % self.a.duration)
        if self.a.no_quorum_loss:
            cmd += " --no-quorum-loss"
        if self.a.no_shmc_switchover:
            cmd += " --no-shmc-switchover"
        r = ["# atca-ft fault soak: %s" % (self.a.profile or "custom"), "",
             "| | |", "|---|---|",
             "| date | %s |" % datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
             "| seed | %d |" % self.a.seed,
             "| reproduce | `%s` |" % cmd,
             "| outcome | %s |" % outcome,
             "| duration | %.0f s (%.1f min) |" % (dur, dur / 60),
             "| steps | %d |" % self.step,
             "| violations | %d |" % len(self.viol),
             "| monitor polls | %d (every %.1f s) |" % (mon.polls if mon else 0, Monitor.POLL),
             "| fg1 console lines checked | %d |" % (mon.c_count if mon else 0),
             "| fg1 datagrams checked | %d |" % (mon.udp_count if mon else 0),
             "| two copies seen, one on a blade switched off within %.0f s (not counted) | "
             "%d |" % (DEATH_GRACE, len(mon.excused) if mon else 0),
             "", "## Scenarios", "", "| scenario | steps |", "|---|---|"]
        r += ["| %s | %d |" % kv for kv in sorted(self.scen.items())]
        r += ["", "## Faults injected by kind", "", "| kind | injections |", "|---|---|"]
        r += ["| %s | %d |" % kv for kv in sorted(self.kinds.items())]
        r += ["", "## Invariants", "", "| invariant | checked | violated |", "|---|---|---|"]
        r += ["| %s | %d | %d |" % (k, self.checked[k], self.failed[k]) for k in INVARIANTS]
        r += ["", "## Outages (s, per step, the longest down interval of each VM)", ""]
        for vm in (FT, RS):
            o = sorted(self.outages[vm])
            nz = [x for x in o if x > 0]
            r.append("- %s: budget %.0f s; %d steps with an outage; max %.1f s; median of "
                     "those %.1f s" % (vm, BUDGETS[vm], len(nz), o[-1] if o else 0,
                                       nz[len(nz) // 2] if nz else 0))
        r += ["", "## atca-ftd memory and fds (per daemon process: first, last, max sample)",
              "", "RssAnon is the heap, RssShmem mostly the log blackbox ring in /dev/shm.", "",
              "| blade | pid | samples | RSS kB | RssAnon kB | RssShmem kB | fds |",
              "|---|---|---|---|---|---|---|"]

        def flm(h, i):
            return "%d / %d / %d" % (h[0][i], h[-1][i], max(x[i] for x in h))
        for (s, pid), h in sorted(self.leak.items()):
            r.append("| %d | %d%s | %d | %s | %s | %s | %s |" % (
                s, pid, " (ASan: RSS not judged)" if self.asan.get((s, pid)) else "", len(h),
                flm(h, 1), flm(h, 3), flm(h, 4), flm(h, 2)))
        r += ["", "## Violations", ""]
        r += ["- step %d [%s]: %s" % v for v in self.viol] or ["none"]
        r += ["", "## Restarts from disk by design (not violations)", ""]
        r += ["- step %d: %s" % h for h in self.by_design] or ["none"]
        r += ["", "## Harness errors (the lab, not atca-ft)", ""]
        r += ["- step %d: %s" % h for h in self.harness] or ["none"]
        r += ["", "## Done by hand (not violations by themselves)", ""]
        r += ["- step %d: %s" % m for m in self.manual] or ["nothing"]
        r += ["", "## Step log", "", "```"] + self.log_lines + ["```", ""]
        text = "\n".join(r)
        if self.a.report:
            os.makedirs(os.path.dirname(os.path.abspath(self.a.report)), exist_ok=True)
            with open(self.a.report, "w") as f:
                f.write(text)
            print("report: %s" % self.a.report, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--profile", choices=sorted(PROFILES), default=None)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--duration", type=float, default=None, help="seconds of steps")
    ap.add_argument("--report", default=None, help="markdown report file")
    ap.add_argument("--lab", default="soak%d" % (os.getpid() % 1000))
    ap.add_argument("--stop-on-violation", action="store_true")
    ap.add_argument("--no-shmc-switchover", action="store_true",
                    help="kill shelf manager B (the standby), never A (the switchover to B "
                    "replays B's SEL history as news: see README, known gaps)")
    ap.add_argument("--no-quorum-loss", action="store_true",
                    help="never partition blade 3 during a fence (the survivor would lose "
                    "quorum: see README, known gaps)")
    a = ap.parse_args()
    if not a.lab.startswith("soak"):
        ap.error("--lab: names start with 'soak'")
    if a.seed is None:
        a.seed = random.SystemRandom().randrange(1, 1 << 31)
    if a.duration is None:
        a.duration = PROFILES[a.profile or "short"]["duration"]
    if os.geteuid() != 0:
        LabTest.skip("soak: needs root (the shelf lab)")
    if not os.path.exists("/dev/kvm"):
        LabTest.skip("soak: no /dev/kvm (the FT guest needs KVM)")
    missing = have_tools("ipmi_sim", "ipmitool", "corosync", "libvirtd", "virsh",
                         "qemu-system-x86_64")
    if missing:
        LabTest.skip("soak: %s is not installed" % missing)
    s = Soak(a)
    for p in (s.t.ftd, s.t.ftctl, s.t.engine):
        if not os.access(p, os.X_OK):
            LabTest.skip("soak: %s not built" % p)
    print("soak: seed %d, %s, lab %s" % (a.seed, ("%d steps" % a.steps) if a.steps else
                                         "%.0f s of steps" % a.duration, a.lab), flush=True)

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    outcome = "completed"
    rc = 0
    try:
        s.run()
    except Violation as e:
        outcome = "stopped at the first violation (step %d)" % s.step
    except KeyboardInterrupt:
        outcome = "interrupted at step %d" % s.step
        rc = 130
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        outcome = "harness error at step %d: %s" % (s.step, str(e).split("\n")[0][:200])
        try:
            s.diagnostics()
        except Exception:  # noqa: BLE001
            pass
        rc = 2
    finally:
        s.finish(outcome)
    print("soak: seed %d, %d steps, %d violations, %s (%.0f s)" % (
        a.seed, s.step, len(s.viol), outcome, now() - (s.t_start or now())), flush=True)
    if s.viol:
        return 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
