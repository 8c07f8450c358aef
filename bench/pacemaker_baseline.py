#!/usr/bin/env python3
"""Pacemaker baseline (issue 11, part 2): what a careful operator gets from
Pacemaker + corosync for the fault atca-ft's restart path handles, a blade
power loss with a VM on that blade, on the same shelf lab; then atca-ft's
restart path measured the same way in the same invocation (root).

  bench/pacemaker_baseline.py [--runs 8] [--ft-runs 5] [--no-write]

Pacemaker phase: a 2-blade lab (the lab's corosync: knet, token 1000 ms,
token_coefficient 0, two_node), Pacemaker 2.1 started in each blade's
namespaces (its own /run, /var, /dev/shm, network: the lab's blades), a
stonith:fence_atca device (agents/fence_atca, fencing through the shelf
manager) and the counter guest as ocf:heartbeat:VirtualDomain. Each run
powers off the blade that runs the guest (atca-lab's "inject power": every
process of the blade killed at once, hot-swap M4->M6->M1) and reads the
survivor's corosync and Pacemaker logs (wall-clock, ms) and the guest's
serial output (a thread stamps every byte as it lands in the file):

  (a) detection  t0 -> the survivor's controller has the node lost
                 (corosync: t0 -> "Members left")
      decide     -> fencing requested (DC election when the DC died, CIB
                 query, scheduler)
  (b) fence      request -> the fencer reports the off action OK
                 (fence_atca: shelf manager confirms M1)
      start      VirtualDomain start on the survivor, begun -> confirmed
  (c) total      t0 -> the start confirmed
  (d) resume     t0 -> the first counter line of the restarted guest
      gap        last counter line of the dead guest -> first of the new
                 one: the interruption as the guest's output shows it

Runs alternate between "the victim is the DC" and "the victim is not the
DC" (the guest is moved with crm_resource --move beforehand when needed),
so both blades are killed in both roles. Between runs the victim is powered
on again with fence_atca -o on, and Pacemaker is started on it.

atca-ft phase: bench/recovery_bench.py's setup and timeline (atca-ftd on
both blades, restart protection), with the same serial-output stamps.

Prints every run and writes bench/results/pacemaker-baseline.md.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(TOP, "tests", "lab"))
sys.path.insert(0, HERE)
from atcalab import blade as blademod  # noqa: E402
from atcalab import faults  # noqa: E402
from atcalab import guest as guestmod  # noqa: E402
from atcalab import util as labutil  # noqa: E402
from atcalab.state import Lab  # noqa: E402
import recovery_bench as rb  # noqa: E402

ATCA_LAB = os.path.join(TOP, "tests", "lab", "atca-lab")
AGENT = os.path.join(TOP, "agents", "fence_atca")
RESULTS = os.path.join(TOP, "bench", "results")
PM_LAB = "pm%d" % (os.getpid() % 100)
FT_LAB = "pf%d" % (os.getpid() % 100)
VM = "bv"
MEM_MB = 64
PCMK_LOG = os.path.join("var.upper", "log", "pacemaker", "pacemaker.log")
CORO_LOG = os.path.join("log-corosync", "corosync.log")
IMAGES = "/var/lib/libvirt/images"

# ---------------------------------------------------------------- settings
# (name, value, why): one table drives the CIB and the results file.

CLUSTER_PROPS = [
    ("stonith-enabled", "true", "no takeover without fencing (atca-ft's rule too)"),
    ("stonith-action", "off", "a fenced blade stays off until someone powers it on, as after "
     "atca-ft's fence; `reboot` would also wait for the blade to come back (M4) before the "
     "fence counts as done"),
    ("stonith-timeout", "60s", "default; above fence_atca's power_timeout (20 s) + ipmitool "
     "retries"),
    ("concurrent-fencing", "false", "default (one node to fence)"),
    ("startup-fencing", "true", "default"),
    ("priority-fencing-delay", "0", "default: no delay (see the caveats: a 2-node cluster "
     "would often set one, which adds to exactly this fault)"),
    ("no-quorum-policy", "stop", "default; corosync's two_node keeps the survivor quorate"),
    ("cluster-recheck-interval", "2min", "default 15min; only re-runs the scheduler for "
     "time-based rules and failure-timeout expiry, not on the node-loss path"),
    ("dc-deadtime", "20s", "default; waited for only at cluster start-up, not when the DC dies"),
    ("transition-delay", "0s", "default"),
    ("symmetric-cluster", "true", "default: any blade may run the guest"),
]
RSC_DEFAULTS = [
    ("resource-stickiness", "100", "the guest stays where it is when the fenced blade returns "
     "(no fail-back, no second interruption)"),
    ("migration-threshold", "3", "3 local failures before the guest is moved away"),
    ("failure-timeout", "10min", "failures forgotten after 10 min (checked at the recheck "
     "interval)"),
]


def fence_params(lab):
    return [
        ("ip", lab.shmc_addr("a"), "the shelf manager (RMCP+ 623)"),
        ("credentials", lab.path("shelf.cred"), "atca-ft's credentials file (mode 0600, root)"),
        ("pcmk_host_map", "blade1:1;blade2:2", "node name -> slot (the agent's plug)"),
        ("pcmk_host_check", "static-list", "the map is the list (implied by pcmk_host_map)"),
        ("power_timeout", "20", "agent default: wait up to 20 s for M1 after deactivating"),
        ("ipmi_timeout", "1", "agent default (ipmitool -N)"),
        ("ipmi_retries", "1", "agent default (ipmitool -R)"),
        ("method", "auto", "PICMG FRU activation, Chassis Control if the IPMC lacks it"),
        ("pcmk_delay_max", "0", "no random fencing delay (see the caveats)"),
    ]


FENCE_OPS = [("monitor", "60s", "20s")]
VM_PARAMS = [
    ("config", IMAGES + "/bv.xml", "the domain XML on the shared storage"),
    ("hypervisor", "qemu:///system", "the blade's own libvirtd"),
    ("force_stop", "true", "the counter guest has no ACPI: a graceful stop would wait for the "
     "whole stop timeout (only planned moves stop it; a fenced blade's guest is never stopped)"),
]
VM_META = [("allow-migrate", "false", "restart path, as atca-ft's `protection: restart`")]
VM_OPS = [("start", "0", "90s"), ("stop", "0", "90s"), ("monitor", "10s", "30s")]


def nv(prefix, pairs):
    return "".join('<nvpair id="%s-%s" name="%s" value="%s"/>' % (prefix, n, n, v)
                   for n, v, _ in pairs)


def ops_xml(rid, ops):
    return "<operations>%s</operations>" % "".join(
        '<op id="%s-%s-%s" name="%s" interval="%s" timeout="%s"/>' % (rid, o, i, o, i, t)
        for o, i, t in ops)


def fence_xml(lab):
    return ('<primitive id="shelf-fence" class="stonith" type="fence_atca">'
            '<instance_attributes id="shelf-fence-ia">%s</instance_attributes>%s</primitive>'
            % (nv("shelf-fence", fence_params(lab)), ops_xml("shelf-fence", FENCE_OPS)))


def vm_xml():
    return ('<primitive id="%s" class="ocf" provider="heartbeat" type="VirtualDomain">'
            '<instance_attributes id="%s-ia">%s</instance_attributes>'
            '<meta_attributes id="%s-ma">%s</meta_attributes>%s</primitive>'
            % (VM, VM, nv(VM, VM_PARAMS), VM, nv(VM + "-meta", VM_META), ops_xml(VM, VM_OPS)))


# ---------------------------------------------------------------- helpers

def log(msg):
    print(msg, flush=True)


def lab_cmd(name, *args, timeout=180, check=True):
    r = subprocess.run([ATCA_LAB, "--name", name] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    if check and r.returncode:
        raise RuntimeError("atca-lab %s: %s%s" % (" ".join(map(str, args)), r.stdout, r.stderr))
    return r


def wait(what, fn, timeout=60, interval=0.1):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 (anything transient: retry until timeout)
            last = e
        time.sleep(interval)
    raise RuntimeError("timed out (%d s): %s%s" % (timeout, what,
                                                  " (last error: %s)" % last if last else ""))


def pct(vals, p):
    return rb.pct([v for v in vals if v is not None], p)


def in_blade(name, slot, cmd, timeout=30, check=False):
    return blademod.run_in(Lab.load(name), slot, cmd, check=check, timeout=timeout)


class SerialWatch(threading.Thread):
    """Stamps (wall clock) every chunk appended to the guest's serial file:
    every QEMU that runs the guest, on any blade, appends to the same file
    on the shared storage."""

    def __init__(self, path, interval=0.002):
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.chunks = []
        self.lock = threading.Lock()
        self.stopped = threading.Event()

    def run(self):
        f, ino = None, None
        while not self.stopped.is_set():
            try:
                st = os.stat(self.path)
                if f is None or st.st_ino != ino:
                    if f:
                        f.close()
                    f, ino = open(self.path, "rb"), st.st_ino
                data = f.read()
                if data:
                    t = time.time()
                    with self.lock:
                        self.chunks.append((t, data))
            except OSError:
                pass
            time.sleep(self.interval)
        if f:
            f.close()

    def stop(self):
        self.stopped.set()
        self.join(2)

    def lines(self, since=0.0):
        """[(time the line's newline arrived, text)] of chunks from since on."""
        with self.lock:
            chunks = [c for c in self.chunks if c[0] >= since]
        out, buf = [], b""
        for t, d in chunks:
            buf += d
            while b"\n" in buf:
                ln, buf = buf.split(b"\n", 1)
                out.append((t, ln.decode(errors="replace").strip()))
        return out

    def trim(self, before):
        with self.lock:
            self.chunks = [c for c in self.chunks if c[0] >= before]

    def flowing(self, within=0.2):
        """A counter line arrived in the last `within` seconds."""
        now = time.time()
        return any(t >= now - within and is_counter(ln) for t, ln in self.lines(now - 1.0))

    def interruption(self, t0):
        """(last counter line of the old guest, BOOT line, first counter line
        of the new one) as (time, counter) / time, or None if not resumed."""
        ls = self.lines(t0 - 5.0)
        # a guest killed in the middle of a line leaves it unfinished: the new
        # guest's BOOT line is then appended to it
        boot = next((i for i, (t, ln) in enumerate(ls) if t >= t0 and "BOOT counter-guest" in ln),
                    None)
        if boot is None:
            return None
        before = [(t, int(ln[2:])) for t, ln in ls[:boot] if is_counter(ln)]
        after = [(t, int(ln[2:])) for t, ln in ls[boot + 1:] if is_counter(ln)]
        if not before or not after:
            return None
        return before[-1], ls[boot][0], after[0]


def is_counter(ln):
    return ln.startswith("C ") and ln[2:].strip().isdigit()


# ---------------------------------------------------------------- logs

TS = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)\.(\d{1,6}) ")
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec"
                                         .split())}


def log_ts(line, year):
    """Wall-clock seconds of a corosync / Pacemaker log line (local time,
    millisecond stamps), or None."""
    m = TS.match(line)
    if not m:
        return None
    frac = m.group(6)
    d = datetime.datetime(year, MONTHS[m.group(1)], int(m.group(2)), int(m.group(3)),
                          int(m.group(4)), int(m.group(5)), int(frac.ljust(6, "0")))
    return d.timestamp()


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def log_lines(path, offset):
    year = datetime.date.today().year
    out = []
    try:
        with open(path, errors="replace") as f:
            f.seek(offset)
            for ln in f:
                t = log_ts(ln, year)
                if t is not None:
                    out.append((t, ln.rstrip("\n")))
    except OSError:
        pass
    return out


def first(lines, pattern, after=0.0):
    rx = re.compile(pattern)
    for t, ln in lines:
        if t >= after and rx.search(ln):
            return t
    return None


def pcmk_timeline(pl, cl, victim, survivor, t0):
    v, s = victim, survivor
    marks = {
        "corosync": first(cl, r"A new membership \(.*\) was formed\. Members left:.*\b%d\b" % v),
        "lost": first(pl, r"pacemaker-controld.*Node blade%d state is now lost" % v),
        "dc_left": first(pl, r"pacemaker-controld.*Unset DC \(was blade%d\)" % v),
        "fence_req": first(pl, r"pacemaker-controld.*Requesting fencing \(\w+\) of node blade%d"
                           % v),
        "fenced": first(pl, r"pacemaker-fenced.*Operation '\w+' targeting blade%d .*: OK" % v),
        "start_begin": first(pl, r"pacemaker-controld.*Initiating start operation %s_start_0 "
                             r"(locally )?on blade%d" % (VM, s)),
        "start_done": first(pl, r"pacemaker-controld.*\(%s_start_0 on blade%d\) confirmed: ok"
                            % (VM, s)),
    }
    need = ("corosync", "lost", "fence_req", "fenced", "start_begin", "start_done")
    missing = [k for k in need if marks[k] is None]
    if missing:
        raise RuntimeError("incomplete Pacemaker timeline: no %s" % ", ".join(missing))
    ms = lambda a, b: (b - a) * 1000.0  # noqa: E731
    return {"corosync": ms(t0, marks["corosync"]), "detection": ms(t0, marks["lost"]),
            "decide": ms(marks["lost"], marks["fence_req"]),
            "fence": ms(marks["fence_req"], marks["fenced"]),
            "fenced_at": ms(t0, marks["fenced"]),
            "to_start": ms(marks["fenced"], marks["start_begin"]),
            "start": ms(marks["start_begin"], marks["start_done"]),
            "total": ms(t0, marks["start_done"]),
            "dc": marks["dc_left"] is not None}


def add_guest_view(r, watch, t0):
    (tb, cb), tboot, (ta, ca) = watch.interruption(t0)
    r.update({"boot": (tboot - t0) * 1000.0, "resume": (ta - t0) * 1000.0,
              "boot_wait": (tboot - t0) * 1000.0 - r["total"],
              "gap": (ta - tb) * 1000.0, "last_before": (tb - t0) * 1000.0,
              "counter_before": cb, "counter_after": ca})


# ---------------------------------------------------------------- Pacemaker

def pcmk_env(debug):
    env = dict(os.environ, PCMK_logfacility="none",
               PCMK_logfile="/var/log/pacemaker/pacemaker.log")
    if debug:
        env["PCMK_debug"] = "pacemaker-controld"
    return env


def start_pacemaker(name, slot, debug=False):
    """fence_atca into the blade's /usr/sbin (a read-only overlay in the
    blade's own mount namespace: the fencer looks for fence_* there and
    nowhere else), then pacemakerd, recorded as a blade daemon so that a
    power loss and atca-lab down take it with them."""
    lab = Lab.load(name)
    agents = lab.path("pcmk-agents")
    blademod.run_in(lab, slot, ["mount", "-t", "overlay", "pcmk-agents-b%d" % slot, "-o",
                                "lowerdir=%s:/usr/sbin" % agents, "/usr/sbin"], timeout=10)
    blademod.start_daemon(lab, slot, "pacemakerd", ["/usr/sbin/pacemakerd"],
                          env=pcmk_env(debug))
    lab.save()


def crm_state(name, slot):
    """{dc, online: set of slots, vm: [slots where bv is active], role, failed}."""
    p = in_blade(name, slot, ["crm_mon", "-1", "--output-as=xml"], timeout=15)
    root = ET.fromstring(p.stdout)
    dc = root.find("./summary/current_dc")
    st = {"dc": None, "online": set(), "vm": [], "role": None, "failed": False,
          "stonith": []}
    if dc is not None and dc.get("present") == "true":
        st["dc"] = int(dc.get("name")[5:])
    for n in root.findall("./nodes/node"):
        if n.get("online") == "true":
            st["online"].add(int(n.get("name")[5:]))
    for r in root.iter("resource"):
        where = [int(n.get("name")[5:]) for n in r.findall("node")]
        if r.get("id") == VM:
            st["vm"], st["role"] = where, r.get("role")
            st["failed"] = r.get("failed") == "true"
        elif r.get("id") == "shelf-fence" and r.get("role") == "Started":
            st["stonith"] = where
    return st


def controller_state(name, slot, node):
    p = in_blade(name, slot, ["crmadmin", "-S", "blade%d" % node], timeout=15)
    m = re.search(r"in state (S_\w+)", p.stdout + p.stderr)
    return m.group(1) if m else None


def settled(name, slot, both=(1, 2)):
    """Both blades online, the DC idle, every other controller joined
    (S_NOT_DC: crm_mon shows a blade whose controller has only just started
    as online before its join is done), the guest Started on one blade."""
    st = crm_state(name, slot)
    if st["online"] != set(both) or st["dc"] is None or st["role"] != "Started" \
            or len(st["vm"]) != 1 or st["failed"]:
        return None
    for n in both:
        if controller_state(name, slot, n) != ("S_IDLE" if n == st["dc"] else "S_NOT_DC"):
            return None
    return st


def setup_pacemaker(debug):
    lab_cmd(PM_LAB, "up", "--blades", 2)
    lab = Lab.load(PM_LAB)
    os.makedirs(lab.path("pcmk-agents"))
    shutil.copy(AGENT, lab.path("pcmk-agents", "fence_atca"))
    os.chmod(lab.path("pcmk-agents", "fence_atca"), 0o755)
    for s in (1, 2):
        start_pacemaker(PM_LAB, s, debug)
    t = time.monotonic()
    st = wait("Pacemaker DC and both nodes online",
              lambda: (lambda x: x if x["dc"] and x["online"] == {1, 2} else None)(
                  crm_state(PM_LAB, 1)), timeout=60, interval=0.5)
    log("pacemaker: DC blade%d after %.1f s (dc-deadtime 20 s at a cold start)"
        % (st["dc"], time.monotonic() - t))
    for n, v, _ in CLUSTER_PROPS:
        in_blade(PM_LAB, 1, ["crm_attribute", "--type", "crm_config", "--name", n,
                             "--update", v], check=True)
    for n, v, _ in RSC_DEFAULTS:
        in_blade(PM_LAB, 1, ["crm_attribute", "--type", "rsc_defaults", "--name", n,
                             "--update", v], check=True)
    in_blade(PM_LAB, 1, ["cibadmin", "--create", "-o", "resources", "--xml-text",
                         fence_xml(lab)], check=True)
    wait("shelf-fence started", lambda: crm_state(PM_LAB, 1)["stonith"], timeout=60)
    guestmod.make_image(lab, VM)
    labutil.write(lab.path("shared", VM + ".xml"), guestmod.domain_xml(lab, VM, MEM_MB, False))
    in_blade(PM_LAB, 1, ["cibadmin", "--create", "-o", "resources", "--xml-text", vm_xml()],
             check=True)
    return wait("bv started", lambda: settled(PM_LAB, 1), timeout=90, interval=0.3)


def place_vm(want_dc, watch):
    """Puts the guest on the DC (want_dc) or on the other blade; returns
    (victim, survivor, dc)."""
    st = wait("cluster settled", lambda: settled(PM_LAB, 1 if Lab.load(PM_LAB).blade(1)
                                                  .get("power") == "on" else 2), 90, 0.3)
    dc, on = st["dc"], st["vm"][0]
    target = dc if want_dc else 3 - dc
    if on != target:
        in_blade(PM_LAB, dc, ["crm_resource", "--move", "--resource", VM, "--node",
                              "blade%d" % target], check=True)
        wait("bv moved to blade%d" % target,
             lambda: (lambda x: x and x["vm"] == [target])(settled(PM_LAB, dc)), 90, 0.3)
        in_blade(PM_LAB, dc, ["crm_resource", "--clear", "--resource", VM], check=True)
        wait("cluster settled", lambda: (lambda x: x and x["vm"] == [target])(
            settled(PM_LAB, dc)), 60, 0.3)
    wait("guest output flowing", watch.flowing, 30)
    return target, 3 - target, dc


def pcmk_run(i, want_dc, watch):
    victim, survivor, dc = place_vm(want_dc, watch)
    time.sleep(1.0)  # as recovery_bench: steady state before the power goes
    lab = Lab.load(PM_LAB)
    pl_path = os.path.join(lab.blade_dir(survivor), PCMK_LOG)
    cl_path = os.path.join(lab.blade_dir(survivor), CORO_LOG)
    pl_off, cl_off = log_size(pl_path), log_size(cl_path)
    watch.trim(time.time() - 10)
    t0 = time.time()
    faults.inject(lab, "power", victim)
    lab.save()
    wait("the guest's counter on blade%d" % survivor, lambda: watch.interruption(t0), 90)
    wait("start of bv confirmed", lambda: first(log_lines(pl_path, pl_off),
                                                r"\(%s_start_0 on blade%d\) confirmed: ok"
                                                % (VM, survivor)), 30)
    r = pcmk_timeline(log_lines(pl_path, pl_off), log_lines(cl_path, cl_off), victim,
                      survivor, t0)
    add_guest_view(r, watch, t0)
    r.update({"victim": victim, "survivor": survivor})
    if r["dc"] != (victim == dc):
        raise RuntimeError("DC bookkeeping: log says victim was DC=%s, crm_mon said DC=blade%d"
                           % (r["dc"], dc))
    log("pacemaker run %2d: blade%d off (%s) -> bv on blade%d: detection %.0f ms (corosync "
        "%.0f), decide %.0f, fence %.0f (confirmed at %.0f), start %.0f, total %.0f; counter "
        "resumes at %.0f ms, gap %.0f ms"
        % (i + 1, victim, "DC" if r["dc"] else "not DC", survivor, r["detection"],
           r["corosync"], r["decide"], r["fence"], r["fenced_at"], r["start"], r["total"],
           r["resume"], r["gap"]))
    # the operator powers the blade on again (the fence left it off)
    p = subprocess.run([AGENT, "-a", lab.shmc_addr("a"), "--credentials",
                        lab.path("shelf.cred"), "-o", "on", "-n", str(victim), "-q"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
    if p.returncode:
        raise RuntimeError("fence_atca -o on %d: %s" % (victim, p.stderr.strip()))
    wait("blade%d powered" % victim, lambda: Lab.load(PM_LAB).blade(victim).get("power") == "on"
         and labutil.alive(Lab.load(PM_LAB).blade(victim).get("holder")), 30)
    wait("blade%d in the corosync membership" % victim,
         lambda: (blademod.quorum(Lab.load(PM_LAB), victim) or (0, []))[1]
         == ["blade1", "blade2"], 30)
    start_pacemaker(PM_LAB, victim, DEBUG)
    wait("blade%d back in Pacemaker" % victim, lambda: settled(PM_LAB, survivor), 90, 0.3)
    return r


# ---------------------------------------------------------------- atca-ft

def ft_runs(n):
    """recovery_bench's loop (its lab setup, timeline and unfence), plus the
    guest's view from its serial output."""
    rb.LAB = FT_LAB
    os.environ["ATCA_FTD"] = rb.FTD
    rb.lab_cmd("up", "--blades", 2)
    lab = Lab.load(FT_LAB)
    with open(lab.path("atca-ftd.conf"), "a") as f:
        f.write("detection {\n    sel_interval: 100ms\n    sensor_interval: 1s\n"
                "    hypervisor_interval: 500ms\n    fence_timeout: 20s\n}\n"
                "vm {\n    name: bv\n    blade: 2\n    protection: restart\n"
                "    definition: /var/lib/libvirt/images/bv.xml\n}\n")
    rb.lab_cmd("guest", "start", 2, VM, "--memory", MEM_MB)
    watch = SerialWatch(lab.path("shared", VM + ".serial"))
    watch.start()
    rows = []
    try:
        rb.lab_cmd("ftd", "start", 1, 2)
        for s in (1, 2):
            wait("daemon %d" % s, lambda s=s: rb.ctl(s, "version")[0] == 0, 30)
        time.sleep(5)  # as recovery_bench: every IPMC read once
        for i in range(n):
            lab = Lab.load(FT_LAB)
            victim = rb.running_on(lab, VM)[0]
            survivor = 3 - victim
            wait("group", lambda: rb.cluster(survivor)["daemons"] == [1, 2], 60)
            wait("guest output flowing", watch.flowing, 30)
            time.sleep(1.0)
            watch.trim(time.time() - 10)
            t0m = time.clock_gettime(time.CLOCK_MONOTONIC)
            t0 = time.time()
            faults.inject(lab, "power", victim)
            lab.save()
            wait("bv on %d" % survivor, lambda: rb.running_on(Lab.load(FT_LAB), VM) ==
                 [survivor], 90)
            wait("the guest's counter on blade%d" % survivor, lambda: watch.interruption(t0), 60)
            wait("membership", lambda: rb.cluster(survivor)["nodes"] == [survivor], 30)
            time.sleep(0.3)
            r = rb.timeline(Lab.load(FT_LAB), survivor, victim, t0m)
            r["fenced_at"] = r["detection"] + r["classification"] + r["plan"] + r["fence"]
            add_guest_view(r, watch, t0)
            r.update({"victim": victim, "survivor": survivor})
            rows.append(r)
            log("atca-ft   run %2d: blade%d off -> bv on blade%d: detection %.0f ms, "
                "classification %.0f, plan %.1f, fence %.0f (confirmed at %.0f), start %.0f, "
                "total %.0f; counter resumes at %.0f ms, gap %.0f ms (corosync node.leave at "
                "%s ms)" % (i + 1, victim, survivor, r["detection"], r["classification"],
                            r["plan"], r["fence"], r["fenced_at"], r["start"], r["total"],
                            r["resume"], r["gap"],
                            "%.0f" % r["corosync"] if r["corosync"] else "-"))
            rc, _ = rb.ctl(survivor, "unfence", victim, "--yes", timeout=90)
            if rc:
                raise RuntimeError("unfence %d failed" % victim)
            wait("blade %d powered" % victim,
                 lambda: Lab.load(FT_LAB).blade(victim).get("power") != "off", 30)
            rb.lab_cmd("ftd", "start", victim)
            wait("daemon back", lambda: rb.ctl(victim, "version")[0] == 0, 30)
    finally:
        watch.stop()
    return rows


# ---------------------------------------------------------------- report

def machine():
    cpu = "?"
    try:
        for ln in open("/proc/cpuinfo"):
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    osname = "?"
    try:
        for ln in open("/etc/os-release"):
            if ln.startswith("PRETTY_NAME="):
                osname = ln.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%s (%s), %d CPUs (%s), %.0f GiB RAM, Linux %s, %s" % (
        platform.node(), platform.machine(), os.cpu_count(), cpu, mem, platform.release(), osname)


def versions():
    out = []
    for pkg in ("pacemaker", "corosync", "resource-agents", "libvirt-daemon", "qemu-system-x86",
                "ipmitool", "openipmi"):
        p = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        out.append("%s %s" % (pkg, p.stdout.strip() or "?"))
    return ", ".join(out)


def git_rev():
    p = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return p.stdout.strip() or "?"


def stats_row(label, vals):
    v = [x for x in vals if x is not None]
    if not v:
        return "| %s | - | - | - | - |" % label
    return "| %s | %.0f | %.0f | %.0f | %.0f |" % (label, pct(v, 50), pct(v, 99), min(v), max(v))


def report(pm, ft, args, elapsed):
    o = ["# Pacemaker baseline: blade power loss -> VM restarted on the partner", "",
         "Measured by `bench/pacemaker_baseline.py --runs %d --ft-runs %d` on %s, %s; atca-ft %s."
         % (args.runs, args.ft_runs, machine(), time.strftime("%Y-%m-%d"), git_rev()),
         "Versions: %s." % versions(),
         "Whole run (both labs, set-up and teardown included): %.0f s." % elapsed, "",
         "Same fault, same lab, same guest for both: a 2-blade shelf lab (`tests/lab/atca-lab`), "
         "corosync 3 knet with the lab's `token: 1000`, `token_coefficient: 0`, `two_node: 1` "
         "(consensus 1200 ms by default), one shelf manager; the 64 MiB counter guest under %s, "
         "which prints `C <counter>` on its serial port every 10 ms; `atca-lab inject power` on "
         "the blade that runs it (every process of the blade killed at once, links down, "
         "hot-swap M4->M6->M1 with SEL records). Both managers restart the guest from its disk "
         "on the survivor (atca-ft: `protection: restart`, the path bench/recovery_bench.py "
         "measures; no checkpoint replica)." % ("KVM" if os.path.exists("/dev/kvm") else "TCG"),
         "",
         "Pacemaker runs alternate between \"the blade that dies is the DC\" and \"it is not\", "
         "so that each blade dies in both roles (the guest is moved beforehand with "
         "`crm_resource --move` / `--clear` when the next run needs it on the other blade); "
         "after each run the dead blade is powered on with `fence_atca -o on` and Pacemaker is "
         "started on it again, the guest stays where it is (stickiness), and the next run "
         "waits until the DC is S_IDLE and the other controller S_NOT_DC (joined). "
         "The atca-ft runs "
         "are recovery_bench.py's loop: alternate blades, `atca-ftctl unfence` after each.",
         ""]
    keys = [("detection", "(a) node loss noticed"), ("fenced_at", "(b) fence confirmed"),
            ("total", "(c) VM start done on the survivor"),
            ("resume", "(d) guest counter output resumes"),
            ("gap", "guest output gap (last line -> first line)"),
            ("boot_wait", "of which: start done -> guest's BOOT line")]
    if ft:
        o += ["## Side by side (ms from the power loss, t0; same invocation)", "",
              "p99 over %d and %d runs is the maximum." % (len(pm), len(ft)), "",
              "| milestone | atca-ft median | Pacemaker median | ratio | atca-ft p99 | "
              "Pacemaker p99 | ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
        for k, label in keys:
            a = [r[k] for r in ft]
            b = [r[k] for r in pm]
            o.append("| %s | %.0f | %.0f | %.1fx | %.0f | %.0f | %.1fx |" % (
                label, pct(a, 50), pct(b, 50), pct(b, 50) / pct(a, 50), pct(a, 99), pct(b, 99),
                pct(b, 99) / pct(a, 99)))
        o += ["", "(a) atca-ft: the first shelf event about the blade inside atca-ftd (SEL/"
              "hot-swap, polled every 100 ms); Pacemaker: the survivor's controller logs the "
              "node lost (corosync membership). (b) atca-ft: its fence step done; Pacemaker: "
              "the fencer's off operation OK. (c) atca-ft: its start-vm step done (libvirt "
              "define + start); Pacemaker: VirtualDomain's start confirmed. (d) and the gap: "
              "from the guest's serial file, stamped by a thread polling it every 2 ms.", ""]
    o += ["## Pacemaker phases (ms)", "",
          "| phase | median | p99 | min | max |", "|---|---:|---:|---:|---:|"]
    pk = [("corosync", "corosync: t0 -> `Members left`"),
          ("detection", "(a) detection: t0 -> controller has the node lost"),
          ("decide", "decide: -> fencing requested"),
          ("fence", "fence: request -> off confirmed"),
          ("fenced_at", "(b) t0 -> fence confirmed"),
          ("to_start", "fence confirmed -> start begun"),
          ("start", "start: VirtualDomain start"),
          ("total", "(c) total: t0 -> start confirmed"),
          ("boot_wait", "start confirmed -> guest's BOOT line (QEMU + SeaBIOS)"),
          ("boot", "t0 -> guest's BOOT line"),
          ("resume", "(d) t0 -> counter resumes"),
          ("gap", "output gap")]
    for k, label in pk:
        o.append(stats_row(label, [r[k] for r in pm]))
    slow = [r for r in pm if r["decide"] >= 900]
    o += ["", "`decide` took a second or more in %d of %d runs (the controller's `sleep(1)`, "
          "see below)." % (len(slow), len(pm))]
    for dc in (True, False):
        sub = [r for r in pm if r["dc"] == dc]
        if sub:
            o += ["", "Victim %s the DC (%d runs): decide median %.0f ms, total median %.0f ms, "
                  "counter resumes median %.0f ms." % ("was" if dc else "was not", len(sub),
                                                       pct([r["decide"] for r in sub], 50),
                                                       pct([r["total"] for r in sub], 50),
                                                       pct([r["resume"] for r in sub], 50))]
    o += ["", "Per run (ms):", "",
          "| run | victim | DC? | corosync | detection | decide | fence | fenced at | "
          "start | total | BOOT | resume | gap | counter before -> after |",
          "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for i, r in enumerate(pm):
        o.append("| %d | blade%d | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f "
                 "| %.0f | %.0f | %d -> %d |" % (
                     i + 1, r["victim"], "yes" if r["dc"] else "no", r["corosync"],
                     r["detection"], r["decide"], r["fence"], r["fenced_at"], r["start"],
                     r["total"], r["boot"], r["resume"], r["gap"], r["counter_before"],
                     r["counter_after"]))
    if ft:
        o += ["", "## atca-ft restart path in the same invocation (ms)", "",
              "| phase | median | p99 | min | max |", "|---|---:|---:|---:|---:|"]
        for k, label in [("detection", "(a) detection"), ("classification", "classification"),
                         ("plan", "plan"), ("fence", "fence"), ("fenced_at",
                                                                "(b) t0 -> fence confirmed"),
                         ("start", "start"), ("total", "(c) total"),
                         ("boot_wait", "start done -> guest's BOOT line (QEMU + SeaBIOS)"),
                         ("boot", "t0 -> guest's BOOT line"), ("resume", "(d) counter resumes"),
                         ("gap", "output gap"), ("corosync", "corosync node.leave")]:
            o.append(stats_row(label, [r[k] for r in ft]))
        o += ["", "| run | victim | detection | fence | fenced at | start | total | BOOT | "
              "resume | gap |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for i, r in enumerate(ft):
            o.append("| %d | blade%d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |"
                     % (i + 1, r["victim"], r["detection"], r["fence"], r["fenced_at"],
                        r["start"], r["total"], r["boot"], r["resume"], r["gap"]))
    o += ["", "## Pacemaker configuration", "",
          "Pacemaker runs in each blade's namespaces (`pacemakerd` started with "
          "`nsenter` into the blade, like the lab's corosync and libvirtd; its CIB and log in "
          "the blade's private /var, IPC in its own network namespace and /dev/shm). "
          "fence_atca is made visible to the fencer as /usr/sbin/fence_atca by a read-only "
          "overlay mount inside the blade's mount namespace only. Logging: "
          "PCMK_logfile=/var/log/pacemaker/pacemaker.log, PCMK_logfacility=none.", "",
          "Cluster properties (`crm_attribute --type crm_config`):", "",
          "| property | value | why |", "|---|---|---|"]
    o += ["| %s | %s | %s |" % s for s in CLUSTER_PROPS]
    o += ["", "Resource defaults (`rsc_defaults`):", "", "| meta | value | why |", "|---|---|---|"]
    o += ["| %s | %s | %s |" % s for s in RSC_DEFAULTS]
    o += ["", "Fencing device `shelf-fence` (`stonith:fence_atca`, one device for the shelf), "
          "op monitor interval=60s timeout=20s:", "", "| parameter | value | why |",
          "|---|---|---|"]
    o += ["| %s | %s | %s |" % (n, "10.77.K.2" if n == "ip" else
                                "/tmp/atca-lab-NAME/shelf.cred" if n == "credentials" else v, w)
          for n, v, w in fence_params(Lab("x", 1))]
    o += ["", "Guest `bv` (`ocf:heartbeat:VirtualDomain`), ops start timeout=90s, stop "
          "timeout=90s, monitor interval=10s timeout=30s (the agent's advertised values; the "
          "monitor finds a guest that dies on a running blade, a dead blade is found by "
          "membership, so the interval is not on this path):", "",
          "| parameter | value | why |", "|---|---|---|"]
    o += ["| %s | %s | %s |" % s for s in VM_PARAMS + VM_META]
    o += ["", "## Reproduce", "", "```sh", "sudo bench/pacemaker_baseline.py   # --runs 8 "
          "--ft-runs 5; about %.0f min; writes this file" % (elapsed / 60.0),
          "sudo bench/pacemaker_join_race.py  # the join-window case below, about 1 min",
          "```", "", "Needs the packages pacemaker, pacemaker-cli-utils and resource-agents "
          "(VirtualDomain) besides the lab's; `--keep-logs DIR` keeps every blade's "
          "pacemaker.log, corosync.log and the scheduler's inputs; `--pcmk-debug` turns on "
          "the controller's debug log.", ""]
    o += NOTES
    return "\n".join(o) + "\n"


NOTES = [
    "## Where Pacemaker's time goes, and caveats", "",
    "- Detection is corosync's: token (1000 ms) + consensus (1200 ms) after the last token "
    "the dead blade passed on. Pacemaker cannot know earlier; its controller has the node "
    "lost in the same millisecond as corosync's new membership. atca-ft hears the shelf "
    "manager (SEL / hot-swap M6, M1) ~100 ms after the power goes and does not wait for "
    "membership at all.",
    "- `decide` is either a few tens of ms or just over a second. The second is Pacemaker's "
    "own: when the controller's CIB query for the scheduler returns while CIB updates caused "
    "by the node loss (transient attributes deleted, node state) are still pending, "
    "`do_pe_invoke_callback` (daemons/controld/controld_schedulerd.c) logs \"Re-asking for "
    "the CIB: N other peer updates still pending\" at debug level and calls `sleep(1)` in the "
    "controller's main loop before asking again (seen with PCMK_debug=pacemaker-controld, "
    "`--pcmk-debug`). Whether it hits is a race, in both the DC and the non-DC case; when "
    "the DC died the survivor also elects itself DC and runs a join first (a few ms here).",
    "- The fence itself is quick for this fault: the blade is already in M1, fence_atca "
    "reads the hot-swap state and confirms at once (one ipmitool session through the shelf "
    "manager per step). `stonith-action=reboot` (Pacemaker's default) would add the power-on "
    "and the blade's activation before the fence is reported done.",
    "- VirtualDomain's start runs several `virsh` commands (status check, undefine check, "
    "`virsh create`, status loop) from a shell agent through pacemaker-execd: slower than "
    "atca-ftd's own libvirt define + start. The guest's BOOT line follows the start by the "
    "same QEMU/SeaBIOS boot time in both cases.",
    "- Best case for Pacemaker: no fencing delay. A careful 2-node Pacemaker set-up usually "
    "sets `pcmk_delay_max`/`pcmk_delay_base` or `priority-fencing-delay` so that both "
    "survivors of a network split do not fence each other; with `priority-fencing-delay` the "
    "delay applies exactly when the blade running the (higher-priority) guest is lost, and a "
    "random `pcmk_delay_max` applies to every fence. Either adds its delay to (b), (c), (d) "
    "here. atca-ft needs no such delay: the shelf manager, not membership, says the blade "
    "is off.",
    "- A blade's libvirtd takes about 1.3 s longer for its first guest start than for the "
    "later ones (seen with both managers). atca-ft's run 1 always lands on such a blade "
    "(the max of its `start`); Pacemaker's run 1 does unless the initial placement put the "
    "guest on the other blade and it was moved before run 1. The medians are not affected.",
    "- Same guest, same restart: after both managers the guest boots afresh (its counter "
    "starts again from 0: the first line after the gap shows a few million, 10 ms of "
    "counting, where the last one before it showed billions); only atca-ft's "
    "checkpoint/replay protection (bench/vmft_bench.py) "
    "keeps the guest's state.",
    "- Found while building this benchmark, reproduced by `bench/pacemaker_join_race.py`: "
    "when the blade that runs the guest fails within about a second of Pacemaker being "
    "started on the other blade (after that blade's own fence and power-on: its controller "
    "still S_PENDING, its CIB the stale one from before its fence), the other blade waits "
    "dc-deadtime (20 s) for a DC, elects itself, marks the failed blade \"expected down\" "
    "(join_make_offer() in daemons/controld/controld_join_dc.c: \"any node that dies at the "
    "same time as the old DC and is not running resource (still) won't be fenced\") and, as "
    "its stale CIB shows nothing running there, starts the guest without fencing: the "
    "guest's start was confirmed 21.7 s after a power loss, never fenced. With corosync "
    "killed instead (the guest's QEMU still running on the failed blade) it started a "
    "second copy, which only QEMU's image lock on the lab's shared storage (one host file "
    "system) refused. The benchmark waits for every controller to have joined (S_NOT_DC) "
    "before each run, so its runs stay out of this window.",
    "- The log stamps are wall-clock milliseconds from corosync's and Pacemaker's own logs "
    "(the blades share the host's clock); t0 is taken by this script just before the "
    "injection kills the blade.",
]


DEBUG = False


def keep_logs(dest, name=None):
    try:
        lab = Lab.load(name or PM_LAB)
    except Exception:  # noqa: BLE001 (no lab: nothing to keep)
        return
    os.makedirs(dest, exist_ok=True)
    for s in (1, 2):
        for rel, name in ((PCMK_LOG, "pacemaker"), (CORO_LOG, "corosync"),
                          ("atca-ftd.out", "atca-ftd")):
            src = os.path.join(lab.blade_dir(s), rel)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(dest, "blade%d-%s.log" % (s, name)))
        # the scheduler's inputs (crm_simulate -x FILE -S shows its decisions)
        pe = os.path.join(lab.blade_dir(s), "var.upper", "lib", "pacemaker", "pengine")
        if os.path.isdir(pe):
            shutil.copytree(pe, os.path.join(dest, "blade%d-pengine" % s), dirs_exist_ok=True)


def main():
    global DEBUG
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8, help="Pacemaker runs (default 8)")
    ap.add_argument("--ft-runs", type=int, default=5,
                    help="atca-ft restart-path runs in the same invocation (0: none)")
    ap.add_argument("--no-write", action="store_true", help="do not write the results file")
    ap.add_argument("--keep-logs", metavar="DIR",
                    help="copy every blade's pacemaker.log and corosync.log to DIR before the "
                    "Pacemaker lab goes down")
    ap.add_argument("--pcmk-debug", action="store_true",
                    help="PCMK_debug=pacemaker-controld (diagnosis; slows the controller)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    if a.runs < 0 or a.ft_runs < 0 or a.runs + a.ft_runs == 0:
        sys.exit("--runs and --ft-runs: 0 or more, not both 0")
    if a.runs == 0:
        a.no_write = True  # the atca-ft phase alone (diagnosis): no results file
    for tool in ("pacemakerd", "crm_mon", "cibadmin", "crm_resource", "crmadmin"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            sys.exit("%s not found: apt-get install pacemaker pacemaker-cli-utils" % tool)
    if not os.path.exists("/usr/lib/ocf/resource.d/heartbeat/VirtualDomain"):
        sys.exit("ocf:heartbeat:VirtualDomain not found: apt-get install resource-agents")
    DEBUG = a.pcmk_debug
    t_all = time.monotonic()
    pm, ft = [], []
    watch = None
    try:
        if a.runs:
            setup_pacemaker(DEBUG)
            watch = SerialWatch(Lab.load(PM_LAB).path("shared", VM + ".serial"))
            watch.start()
        for i in range(a.runs):
            pm.append(pcmk_run(i, i % 2 == 0, watch))
    except Exception:
        try:
            lab = Lab.load(PM_LAB)
            for s in (1, 2):
                path = os.path.join(lab.blade_dir(s), PCMK_LOG)
                keep = [ln for _, ln in log_lines(path, max(0, log_size(path) - 200000))
                        if re.search(r"(notice|warning|error|crit):", ln)]
                print("--- blade %d pacemaker.log (last notices)\n%s"
                      % (s, "\n".join(keep[-40:])))
        except Exception:  # noqa: BLE001
            pass
        raise
    finally:
        if watch:
            watch.stop()
        if a.keep_logs:
            keep_logs(a.keep_logs)
        lab_cmd(PM_LAB, "down", check=False)
    if a.ft_runs > 0:
        try:
            ft = ft_runs(a.ft_runs)
        finally:
            if a.keep_logs:
                keep_logs(os.path.join(a.keep_logs, "atca-ft"), FT_LAB)
            rb.lab_cmd("down", check=False)
    elapsed = time.monotonic() - t_all
    if not pm:
        print("(%.0f s)" % elapsed)
        return
    text = report(pm, ft, a, elapsed)
    print(text)
    if not a.no_write:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "pacemaker-baseline.md"), "w") as f:
            f.write(text)
    print("(%.0f s)" % elapsed)


if __name__ == "__main__":
    main()
