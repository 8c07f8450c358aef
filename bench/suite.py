#!/usr/bin/env python3
"""The benchmark suite as one command (issue 11, part 2), on the shelf lab (root).

    sudo bench/suite.py [--quick] [--only PART,...] [--runs-scale X]

Runs every part below in one invocation, each on its own lab (named
suNNN<letter>), and writes bench/results/suite.md (median and p99 of every
measure, ratios against Pacemaker where there is a baseline, the machine)
and bench/results/suite.png (gnuplot). Default: about 10 minutes; --quick:
about 5 minutes, fewer runs. A part that fails is reported as FAILED with its
reason, the others still run; every lab, process and temporary directory a
part started is removed when it ends (also on Ctrl-C / SIGTERM).

Parts (the scripts whose functions they reuse):

  detect-shelf   injection -> event inside atca-ftd for the shelf's fault
                 kinds (atca-lab inject temp-cr, volt-cr, ecc, m7,
                 extraction, power) on a --shelf-only lab, atca-ftd on the
                 host (bench/hw_bench.py's Bench; rx_mono_ns of
                 `atca-ftctl events --json`)
  payload        a 2-blade lab, atca-ftd on both blades, a restart-protected
                 counter guest: hypervisor kill (libvirtd) -> hypervisor.down
                 with recovery in dry-run; then in act mode the VM crash ->
                 vm.lifecycle and the restart in place, and the predictive
                 migration (temp-cr on the guest's blade -> live migration),
                 each with the guest's output gap (its serial file, stamped)
  power          blade power loss: node loss detected (shelf vs corosync),
                 fenced, the guest restarted on the partner, its output gap
                 (bench/pacemaker_baseline.py's ft_runs, recovery_bench.py's
                 timeline)
  pacemaker      the same fault under Pacemaker + corosync in the same
                 invocation (bench/pacemaker_baseline.py's setup_pacemaker,
                 pcmk_run)
  ft             FT promotion by atca-ftd after a blade power loss: the
                 checkpoint engine's backup continues the guest; its released
                 console output's gap (scripts/demo.py's Demo: set-up, failure,
                 repair and re-protection, alternating blades)
  checkpoint     pause per epoch and replication bandwidth
                 (bench/vmft_bench.py's Bench.steady)
  sync           initial synchronisation: full, templated (5 % changed),
                 QEMU's pre-copy of the same guest over a 1 Gbit/s link
                 (bench/vmft_sync_bench.py's Bench)

p99 over n runs is the value at rank round(0.99 (n - 1)): with fewer than 50
runs it is the maximum. The longer runs of each subject are the scripts
themselves (bench/hw_bench.py latency --count 60, recovery_bench.py --runs 20,
pacemaker_baseline.py, vmft_bench.py, vmft_sync_bench.py).
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, ".."))
BUILD = os.environ.get("top_builddir") or os.path.join(TOP, "build")
os.environ.setdefault("top_srcdir", TOP)
os.environ.setdefault("top_builddir", BUILD)
sys.path.insert(0, os.path.join(TOP, "tests", "lab"))
sys.path.insert(0, HERE)
from atcalab import faults  # noqa: E402
from atcalab.state import Lab, existing_labs  # noqa: E402
import hw_bench as hb  # noqa: E402
import recovery_bench as rb  # noqa: E402
import pacemaker_baseline as pb  # noqa: E402

ATCA_LAB = os.path.join(TOP, "tests", "lab", "atca-lab")
RESULTS = os.path.join(TOP, "bench", "results")
FTD = os.path.join(BUILD, "src", "daemon", "atca-ftd")
CTL = os.path.join(BUILD, "src", "cli", "atca-ftctl")
PREFIX = "su%d" % (os.getpid() % 1000)
STAMP = re.compile(r"@(\d+\.\d+) (.*)")

PROFILES = {
    # runs per measure; quick: a few minutes in all
    "quick": dict(shelf=4, hyper=3, crash=3, migrate=2, power=3, pcmk=2, ft=2,
                  epochs=50, ck_mem=[256], sync_runs=2, precopy=True),
    "full": dict(shelf=12, hyper=6, crash=5, migrate=4, power=5, pcmk=6, ft=5,
                 epochs=150, ck_mem=[256, 1024], sync_runs=3, precopy=True),
}
PARTS = ["detect-shelf", "payload", "power", "pacemaker", "ft", "checkpoint", "sync"]


def log(msg):
    # the real stdout: parts may redirect sys.stdout into their log
    print("[suite %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.__stdout__, flush=True)


def pct(vals, p):
    v = sorted(x for x in vals if x is not None)
    if not v:
        return None
    return v[min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))]


def mono():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def wait(what, fn, timeout=60, interval=0.1):
    return pb.wait(what, fn, timeout, interval)


def load(name, rel):
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOP, rel))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def lab_down(name):
    subprocess.run([ATCA_LAB, "--name", name, "down"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=180)


# A measure: {"label", "unit", "vals": [...], "base": [...] or None, "note"}

def measure(label, vals, unit="ms", base=None, base_label=None, note=""):
    return {"label": label, "unit": unit, "vals": [v for v in vals if v is not None],
            "base": base, "base_label": base_label, "note": note}


class Part:
    def __init__(self, key, title):
        self.key, self.title = key, title
        self.status, self.reason = "not run", ""
        self.measures = []
        self.notes = []
        self.extra = {}
        self.seconds = 0.0


# ================================================================ detect-shelf

def _d(e):
    return e.get("detail") or {}


def shelf_pred(kind):
    def thr(stype):
        return lambda e: e["blade"] == 2 and (
            (e["kind"] == "sel.record" and _d(e).get("sensor_type") == stype and
             _d(e).get("dir") == "assert") or
            (e["kind"] == "sensor.threshold" and _d(e).get("previous") is not None and
             _d(e).get("state") not in (None, "ok")))

    def hs(states):
        return lambda e: e["blade"] == 2 and (
            (e["kind"] == "hotswap" and _d(e).get("to") in states) or
            (e["kind"] == "sel.record" and _d(e).get("state") in states) or
            e["kind"] == "ipmc.unreachable")
    return {
        "temp-cr": thr("temperature"),
        "volt-cr": thr("voltage"),
        "ecc": lambda e: e["blade"] == 2 and (
            (e["kind"] == "sel.record" and _d(e).get("sensor_type") == "memory" and
             _d(e).get("dir", "assert") == "assert") or
            (e["kind"] == "sensor.discrete" and "memory" in json.dumps(_d(e)).lower())),
        "m7": hs(("M7",)),
        "extraction": hs(("M7", "M0")),
        "power": hs(("M6", "M1")),
    }[kind]


SHELF_KINDS = [("temp-cr", "threshold: CPU temperature above upper critical"),
               ("volt-cr", "threshold: 12 V below lower critical"),
               ("ecc", "SEL: uncorrectable memory ECC"),
               ("m7", "IPMC lost (hot-swap M7, IPMC unreachable)"),
               ("extraction", "hot-swap: surprise extraction (M7, M0)"),
               ("power", "hot-swap: blade power loss (M6, M1), shelf only")]


def part_detect_shelf(P, prof):
    n = prof["shelf"]
    b = hb.Bench(2)
    try:
        b.wait_blades()
        # the injections go through faults.inject, which opens the
        # simulator's console itself (one client at a time)
        b.console.close()
        for kind, label in SHELF_KINDS:
            pred = shelf_pred(kind)
            lat, via, missed = [], {}, 0
            for i in range(n):
                last = b.last_id()
                t0 = hb.mono()
                faults.inject(Lab.load(b.name), kind, "2")
                found = None
                deadline = time.monotonic() + 5
                while found is None and time.monotonic() < deadline:
                    for e in b.events_after(last):
                        if pred(e):
                            found = e
                            break
                    if found is None:
                        time.sleep(0.01)
                if found is None:
                    missed += 1
                else:
                    lat.append((found["rx_mono_ns"] / 1e9 - t0) * 1000)
                    via[found["kind"]] = via.get(found["kind"], 0) + 1
                faults.repair(Lab.load(b.name), kind, "2")
                # the repair's own events (and the 1 s sensor path) settle;
                # a random gap puts the next injection anywhere in the polls
                time.sleep(1.2 + random.uniform(0, 0.5))
            note = "first seen as %s" % ", ".join("%s x%d" % kv for kv in sorted(via.items()))
            if missed:
                note += "; %d of %d not seen within 5 s" % (missed, n)
            P.measures.append(measure("%s (`%s`)" % (label, kind), lat, note=note))
            log("detect-shelf %s: median %s ms (n=%d, %s)"
                % (kind, fmt(pct(lat, 50)), len(lat), note))
    finally:
        b.close()
    P.notes.append("`picmg` (an IPMC without FRU activation) raises no event of its own: it "
                   "shows only when a fence falls back to Chassis Control "
                   "(bench/results/hardware-fence.md); not measured here.")
    P.notes.append("atca-ftd on the host watches a --shelf-only lab (2 blades), SEL read every "
                   "100 ms, sensors every 1 s; t0 is taken just before `faults.inject` "
                   "(as `atca-lab inject` does it: console commands to the simulator), the "
                   "event's arrival is its rx_mono_ns.")


# ================================================================ payload lab

class SerialStamps(pb.SerialWatch):
    """pb.SerialWatch plus the biggest gap between counter lines."""

    def max_gap(self, t_from, t_to):
        ls = [(t, int(ln[2:])) for t, ln in self.lines(t_from - 3.0) if pb.is_counter(ln)]
        best = None
        for (ta, ca), (tb, cb) in zip(ls, ls[1:]):
            if tb < t_from or ta > t_to:
                continue
            if best is None or tb - ta > best[0]:
                best = (tb - ta, ta, tb, ca, cb)
        return best


def log_lines(lab, slot, since):
    try:
        return rb.log_lines(lab, slot, since)
    except OSError:
        return []


def first_in(lab, slots, since, pattern):
    best = None
    for s in slots:
        t = rb.first(log_lines(lab, s, since), pattern)
        if t is not None and (best is None or t < best):
            best = t
    return best


def payload_conf(lab, mode):
    path = lab.path("atca-ftd.conf")
    base = open(path).read().split("# --- suite\n")[0]
    with open(path, "w") as f:
        f.write(base + "# --- suite\n"
                "detection {\n    sel_interval: 100ms\n    sensor_interval: 1s\n"
                "    hypervisor_interval: 500ms\n    fence_timeout: 20s\n}\n"
                "recovery {\n    mode: %s\n    start_timeout: 30s\n    stop_timeout: 10s\n"
                "    migrate_unsafe: yes\n    migrate_timeout: 60s\n}\n"
                "vm {\n    name: bv\n    blade: 2\n    protection: restart\n"
                "    max_restarts: 100\n    definition: /var/lib/libvirt/images/bv.xml\n}\n"
                % mode)


def part_payload(P, prof):
    name = PREFIX + "p"
    rb.LAB = name
    os.environ["ATCA_FTD"] = FTD
    watch = None
    hyper, crash, mig = [], [], []
    errors = []
    try:
        rb.lab_cmd("up", "--blades", 2)
        lab = Lab.load(name)
        payload_conf(lab, "dry-run")
        rb.lab_cmd("guest", "start", 2, "bv", "--memory", 64)
        watch = SerialStamps(lab.path("shared", "bv.serial"))
        watch.start()

        def daemons():
            rb.lab_cmd("ftd", "start", 1, 2)
            for s in (1, 2):
                wait("daemon %d" % s, lambda s=s: rb.ctl(s, "version")[0] == 0, 30)
            for s in (1, 2):
                wait("group", lambda s=s: rb.cluster(s)["daemons"] == [1, 2], 60)
            time.sleep(3)  # every IPMC's sensors and SEL read once

        daemons()

        def phase(what, fn):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 -- the other phases still run
                traceback.print_exc()
                errors.append(RuntimeError("%s: %s" % (what, str(e).split("\n")[0])))

        def hyper_runs():
            # recovery in dry-run: detection only
            for i in range(prof["hyper"]):
                lab = Lab.load(name)
                t0 = mono()
                faults.inject(lab, "hypervisor", 2)
                lab.save()
                t = wait("hypervisor.down", lambda: first_in(
                    Lab.load(name), (1, 2), t0, r"^event .*blade=2 kind=hypervisor\.down"),
                    20, 0.05)
                hyper.append((t - t0) * 1000)
                log("payload: libvirtd killed -> hypervisor.down %.0f ms" % hyper[-1])
                faults.repair(Lab.load(name), "hypervisor", 2)
                try:
                    # atca-ftd reconnects by itself (often before repair returns)
                    wait("hypervisor.up", lambda: first_in(
                        Lab.load(name), (1, 2), t, r"^event .*blade=2 kind=hypervisor\.up"),
                        45, 0.1)
                except RuntimeError:
                    P.notes.append("after libvirtd's restart %d, atca-ftd had not reconnected "
                                   "(no hypervisor.up) within 45 s: %d hypervisor runs of %d"
                                   % (i + 1, len(hyper), prof["hyper"]))
                    break
                time.sleep(1.0 + random.uniform(0, 0.5))
        phase("hypervisor kill", hyper_runs)

        def act_mode():
            rb.lab_cmd("ftd", "stop", 1, 2)
            payload_conf(Lab.load(name), "act")
            daemons()
            wait("blade 1 knows bv on blade 2",
                 lambda: any(v["name"] == "bv" and v.get("running_on") == 2 for v in
                             json.loads(rb.ctl(1, "--json", "vms")[1]).get("vms", [])), 30, 0.3)
        phase("restart the daemons in act mode", act_mode)

        def crash_runs():
            # ---- VM crash: restart in place
            for i in range(prof["crash"]):
                lab = Lab.load(name)
                where = rb.running_on(lab, "bv")[0]
                wait("guest output", watch.flowing, 30)
                time.sleep(0.5)
                watch.trim(time.time() - 20)
                t0w, t0 = time.time(), mono()
                faults.inject(lab, "vm", "bv")
                lab.save()
                pat_done = r"step \d+ restart-vm blade %d vm bv: done" % where
                wait("restart in place", lambda: first_in(Lab.load(name), (where,), t0, pat_done),
                     60, 0.1)
                wait("the guest's counter again", lambda: watch.interruption(t0w), 60)
                lab = Lab.load(name)
                det = first_in(lab, (1, 2), t0, r"^event .*kind=vm\.lifecycle .*bv")
                done = first_in(lab, (where,), t0, pat_done)
                r = {"detection": (det - t0) * 1000 if det else None,
                     "total": (done - t0) * 1000}
                pb.add_guest_view(r, watch, t0w)
                crash.append(r)
                log("payload: VM crash -> vm.lifecycle %s ms, restarted in place %.0f ms, output "
                    "gap %.0f ms" % ("%.0f" % r["detection"] if det else "-", r["total"], r["gap"]))
                time.sleep(1.0)
        phase("VM crash", crash_runs)

        def migrate_runs():
            # ---- predictive: temp-cr on the guest's blade -> live migration
            for i in range(prof["migrate"]):
                lab = Lab.load(name)
                victim = rb.running_on(lab, "bv")[0]
                other = 3 - victim
                wait("guest output", watch.flowing, 30)
                watch.trim(time.time() - 20)
                t0w, t0 = time.time(), mono()
                faults.inject(lab, "temp-cr", victim)
                lab.save()
                wait("bv on blade %d" % other,
                     lambda: rb.running_on(Lab.load(name), "bv") == [other], 90, 0.2)
                time.sleep(1.0)
                t1w = time.time()
                lab = Lab.load(name)
                det = first_in(lab, (1, 2), t0, r"^event .*blade=%d kind=(sel\.record|"
                                                r"sensor\.threshold) " % victim)
                done = first_in(lab, (1, 2), t0, r"step \d+ migrate blade \d+ vm bv: done")
                g = watch.max_gap(t0w, t1w)
                r = {"detection": (det - t0) * 1000 if det else None,
                     "total": (done - t0) * 1000 if done else None,
                     "gap": g[0] * 1000 if g else None,
                     "monotonic": bool(g and g[4] > g[3])}
                mig.append(r)
                log("payload: temp-cr on blade %d -> bv live-migrated to blade %d: detection "
                    "%s ms, migration done %s ms, largest output gap %s ms (counter %s)"
                    % (victim, other, fmt(r["detection"]), fmt(r["total"]), fmt(r["gap"]),
                       "went on" if r["monotonic"] else "RESTARTED?"))
                faults.repair(Lab.load(name), "temp-cr", victim)
                time.sleep(4)  # the fault clears (hysteresis) before the next one
        phase("predictive migration", migrate_runs)
    except Exception as e:  # noqa: BLE001
        errors.append(e)
        traceback.print_exc()
    finally:
        if watch:
            watch.stop()
        rb.lab_cmd("down", check=False)
    P.measures.append(measure("hypervisor kill (libvirtd SIGKILL) -> `hypervisor.down`", hyper,
                              note="recovery in dry-run; the killed libvirtd's socket "
                              "closes, so the loss is seen at "
                              "once (a hung libvirtd would take the keepalive, "
                              "hypervisor_interval 500 ms); not measured here"))
    P.extra["crash"], P.extra["migrate"] = crash, mig
    P.measures.append(measure("VM crash (QEMU SIGKILL) -> `vm.lifecycle`",
                              [r["detection"] for r in crash],
                              note="libvirt's lifecycle event"))
    P.measures.append(measure("predictive: temp-cr -> first shelf event",
                              [r["detection"] for r in mig]))
    if errors:
        raise errors[0]


# ================================================================ power (atca-ft restart)

def part_power(P, prof):
    pb.FT_LAB = PREFIX + "f"
    try:
        rows = pb.ft_runs(prof["power"])
    finally:
        rb.LAB = pb.FT_LAB
        rb.lab_cmd("down", check=False)
    P.extra["rows"] = rows


# ================================================================ Pacemaker

def pcmk_file_baseline():
    """Medians from the last results file, as a labelled fallback."""
    path = os.path.join(RESULTS, "pacemaker-baseline.md")
    try:
        text = open(path).read()
    except OSError:
        return None
    m = re.search(r"Measured by `([^`]*)` on .*?, (\d{4}-\d\d-\d\d); atca-ft", text)
    vals = {}
    for key, label in (("detection", r"\(a\) node loss noticed"),
                       ("fenced_at", r"\(b\) fence confirmed"),
                       ("total", r"\(c\) VM start done"),
                       ("gap", r"guest output gap")):
        mm = re.search(r"^\| %s[^|]*\| (\d+) \| (\d+) \| [^|]* \| (\d+) \| (\d+) \|" % label,
                       text, re.M)
        if mm:
            vals[key] = (float(mm.group(2)), float(mm.group(4)))  # Pacemaker median, p99
    return {"date": m.group(2) if m else "?", "cmd": m.group(1) if m else "?", "vals": vals}


def part_pacemaker(P, prof):
    for tool in ("pacemakerd", "crm_mon", "cibadmin", "crm_resource", "crmadmin"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            raise RuntimeError("%s not installed (apt-get install pacemaker "
                               "pacemaker-cli-utils)" % tool)
    pb.PM_LAB = PREFIX + "m"
    rows = []
    watch = None
    try:
        pb.setup_pacemaker(False)
        watch = pb.SerialWatch(Lab.load(pb.PM_LAB).path("shared", pb.VM + ".serial"))
        watch.start()
        for i in range(prof["pcmk"]):
            rows.append(pb.pcmk_run(i, i % 2 == 0, watch))
            P.extra["rows"] = rows
    finally:
        if watch:
            watch.stop()
        pb.lab_cmd(pb.PM_LAB, "down", check=False)
    P.extra["rows"] = rows


# ================================================================ FT promotion

def part_ft(P, prof):
    demo = load("suite_demo", "scripts/demo.py")
    out = open(os.path.join(P.extra["logdir"], "ft-demo.log"), "w")
    name = PREFIX + "t"
    rows = []
    d = None
    watch = None
    try:
        with contextlib.redirect_stdout(out):
            d = demo.Demo(name, 1)
            d.up()
            d.configure()
            d.start()
            watch = SerialStamps(d.v.console_path())
            watch.start()
            for i in range(prof["ft"]):
                d.wait("CLUSTER_VIEW", "the partner knowing where the guests run", d.knows,
                       step_s=0.2)
                wait("console output flowing", lambda: watch.flowing(0.5), 30)
                time.sleep(1.0)
                if d.watch:
                    d.watch.stop()
                watch.trim(time.time() - 20)
                t0w, t0m = time.time(), time.monotonic()
                d.fail()  # takes its own t0 (monotonic) just before the injection
                lab = d.lab()
                prom = first_in(lab, (d.back,), d.t0, r"vm %s: done" % demo.FT_VM)
                t_end = time.time()
                g = watch.max_gap(t0w, t_end)
                vals = d.v.counters(d.v.console_text())
                ok = all(b > a for a, b in zip(vals, vals[1:]))
                r = {"promoted": (prom - d.t0) * 1000 if prom else None,
                     "gap": g[0] * 1000 if g else None,
                     # from the injection (d.t0, monotonic) to the first released line
                     "resume": (g[2] - (t0w + d.t0 - t0m)) * 1000 if g else None,
                     "monotonic": ok, "from": d.prim, "to": d.back}
                rows.append(r)
                P.extra["rows"] = rows
                print("suite: run %d: %s" % (i + 1, r), flush=True)
                log("ft: blade %d off -> %s promoted on blade %d at %s ms; released output gap "
                    "%s ms (counter %s)" % (r["from"], demo.FT_VM, r["to"], r["promoted"],
                                           r["gap"], "strictly increasing" if ok else
                                           "WENT BACK"))
                if i + 1 < prof["ft"]:
                    d.repair()
                    d.prim, d.back = d.back, d.prim
    except BaseException as e:
        with contextlib.redirect_stdout(out):
            if d is not None:
                d.diagnostics()
        if isinstance(e, demo.DemoFail):
            raise RuntimeError("demo step failed: %s (log: %s)" % (str(e).split("\n")[0],
                                                                   out.name))
        raise
    finally:
        if watch:
            watch.stop()
        with contextlib.redirect_stdout(out):
            if d is not None:
                problems = d.cleanup()
                if problems:
                    print("cleanup problems: %s" % problems)
        out.close()
    P.extra["rows"] = rows


# ================================================================ checkpoint

def part_checkpoint(P, prof):
    vb = load("suite_vmft_bench", "bench/vmft_bench.py")
    v = vb.load_vmft()
    v.LAB = PREFIX + "c"
    args = types.SimpleNamespace(epochs=prof["epochs"], failovers=0, failover_mem=256,
                                 mem=",".join(map(str, prof["ck_mem"])), pps="1000,20000")
    threads = min(os.cpu_count() or 1, 8)
    scan = {m: vb.scan_bound(m, threads, 2000) for m in prof["ck_mem"]}
    b = vb.Bench(v, args)
    v.lab_cmd("up", "--blades", "2", timeout=180)
    try:
        for mem in prof["ck_mem"]:
            bound = mem * 1048576 / (scan[mem][1] * 1e9) * 1e3
            for pps in (1000, 20000):
                if mem > 256 and pps != 1000:
                    continue
                with contextlib.redirect_stderr(io.StringIO()):
                    b.steady(mem, pps, bound)
                r = b.rows[-1]
                log("checkpoint %d MiB %d pps: pause p50 %.1f p99 %.1f ms, %.1f MB/s"
                    % (mem, pps, r["pause_p50"], r["pause_p99"], r["bw_mbs"]))
    finally:
        v.stop_engines()
        v.lab_cmd("down", check_rc=False, timeout=120)
    P.extra["rows"] = b.rows
    P.extra["scan"] = scan
    if v.FAILS:
        raise RuntimeError("%d check(s) failed: %s" % (len(v.FAILS), v.FAILS[0]))


# ================================================================ sync

def part_sync(P, prof):
    sb = load("suite_sync_bench", "bench/vmft_sync_bench.py")
    v = sb.load("suite_vmft_lab2", ("tests", "integration", "vmft.py"))
    colo = sb.load("suite_colo", ("bench", "colo_bench.py"))
    v.LAB = PREFIX + "s"
    v.NET = v.DISK = False
    args = types.SimpleNamespace(runs=prof["sync_runs"], epochs=0)
    b = sb.Bench(v, args)
    mem, link = 256, "1gbit"
    v.lab_cmd("up", "--blades", "2", timeout=180)
    try:
        b.protect(mem, 100)
        b.shape(link)
        b.full_syncs(mem, link)
        b.templated(mem, link, 5)
        if not b.frozen_ok("suite: after the templated syncs"):
            raise RuntimeError("the backup is not identical to the primary after the syncs")
        if prof["precopy"]:
            b.precopy(mem, link, colo)
        b.shape("raw")
    finally:
        v.stop_engines()
        v.lab_cmd("down", check_rc=False, timeout=120)
    P.extra["rows"] = b.rows
    if v.FAILS:
        raise RuntimeError("%d check(s) failed: %s" % (len(v.FAILS), v.FAILS[0]))


# ================================================================ report

def fmt(x, unit="ms"):
    if x is None:
        return "-"
    if unit == "ms":
        return "%.0f" % x if x >= 10 else "%.1f" % x
    return "%.1f" % x


def ratio(b, a):
    if a is None or b is None or a <= 0:
        return "-"
    return "%.1fx" % (b / a)


def stat_row(label, vals, unit="ms", extra=""):
    v = [x for x in vals if x is not None]
    return "| %s | %d | %s | %s | %s | %s |%s" % (
        label, len(v), fmt(pct(v, 50), unit), fmt(pct(v, 99), unit),
        fmt(min(v) if v else None, unit), fmt(max(v) if v else None, unit), extra)


def failed_line(P):
    return "**FAILED** (%s)" % (P.reason or "?") if P.status == "FAILED" else ""


def report(parts, args, elapsed, plotdata):
    o = ["# Benchmark suite", "",
         "`bench/suite.py%s` on %s; atca-ft %s; %s UTC. Whole run (every lab set up and "
         "removed): %.0f s (%.1f min)." % (" --quick" if args.quick else "",
                                            pb.machine(), pb.git_rev(),
                                            time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                            elapsed, elapsed / 60.0),
         "Versions: %s." % pb.versions(), "",
         "Every number is measured in this invocation unless it says otherwise; p99 over n "
         "runs is the value at rank round(0.99 (n-1)), i.e. the maximum for n < 50. "
         "ms unless stated.", "",
         "| part | status | time s |", "|---|---|---:|"]
    for P in parts:
        o.append("| %s | %s | %.0f |" % (P.title, P.status if P.status != "FAILED" else
                                         "FAILED: %s" % P.reason, P.seconds))
    o.append("")
    byk = {P.key: P for P in parts}

    # ---- side by side
    pw = byk.get("power")
    pm = byk.get("pacemaker")
    ft_rows = (pw.extra.get("rows") if pw else None) or []
    pm_rows = (pm.extra.get("rows") if pm else None) or []
    o += ["## atca-ft and Pacemaker side by side: blade power loss", "",
          "The fault of bench/pacemaker_baseline.py (`atca-lab inject power` on the blade "
          "running the 64 MiB counter guest, restart protection; ms after the power went)."]
    fileb = None
    if not pm_rows:
        fileb = pcmk_file_baseline()
        if fileb:
            o += ["", "**Pacemaker numbers not measured in this run** (%s): taken from "
                  "bench/results/pacemaker-baseline.md, run on %s (`%s`)." % (
                      (pm.reason if pm and pm.status == "FAILED" else "part not run"),
                      fileb["date"], fileb["cmd"])]
    o += ["", "| milestone | atca-ft n | atca-ft median | atca-ft p99 | Pacemaker n | "
          "Pacemaker median | Pacemaker p99 | ratio (median) | ratio (p99) |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for k, label in (("detection", "node loss noticed"), ("fenced_at", "blade fenced, confirmed"),
                     ("total", "VM started on the survivor"),
                     ("gap", "guest output gap (restart: includes its boot)")):
        a = [r.get(k) for r in ft_rows]
        a = [x for x in a if x is not None]
        if pm_rows:
            b = [r.get(k) for r in pm_rows if r.get(k) is not None]
            bm, bp, bn = pct(b, 50), pct(b, 99), str(len(b))
        elif fileb and k in fileb["vals"]:
            bm, bp = fileb["vals"][k]
            bn = "file"
        else:
            bm = bp = None
            bn = "0"
        o.append("| %s | %d | %s | %s | %s | %s | %s | %s | %s |" % (
            label, len(a), fmt(pct(a, 50)), fmt(pct(a, 99)), bn, fmt(bm), fmt(bp),
            ratio(bm, pct(a, 50)), ratio(bp, pct(a, 99))))
        plotdata.setdefault("pcmk", []).append((label, pct(a, 50), pct(a, 99), bm, bp))
    ftp = byk.get("ft")
    ftr = (ftp.extra.get("rows") if ftp else None) or []
    if ftr:
        g = [r["gap"] for r in ftr if r.get("gap") is not None]
        bm = (pct([r["gap"] for r in pm_rows], 50) if pm_rows else
              (fileb["vals"].get("gap", (None, None))[0] if fileb else None))
        bp = (pct([r["gap"] for r in pm_rows], 99) if pm_rows else
              (fileb["vals"].get("gap", (None, None))[1] if fileb else None))
        o.append("| guest output gap, atca-ft FT promotion (no reboot) | %d | %s | %s | %s | %s "
                 "| %s | %s | %s |" % (len(g), fmt(pct(g, 50)), fmt(pct(g, 99)),
                                      str(len(pm_rows)) if pm_rows else "file" if fileb else "0",
                                      fmt(bm), fmt(bp), ratio(bm, pct(g, 50)),
                                      ratio(bp, pct(g, 99))))
    co = [r.get("corosync") for r in ft_rows if r.get("corosync") is not None]
    if co:
        o += ["", "corosync alone (token 1000 ms) reports the node gone after %s ms median "
              "(%s p99) in the same atca-ft runs: what a membership-only manager waits for."
              % (fmt(pct(co, 50)), fmt(pct(co, 99)))]
    for P in (pw, pm):
        if P and P.status == "FAILED":
            o += ["", "%s: %s" % (P.title, failed_line(P))]
    o.append("")

    # ---- detection
    o += ["## Detection latency per fault kind", "",
          "| fault (atca-lab inject kind) -> event in atca-ftd | n | median | p99 | min | max "
          "| note |", "|---|---:|---:|---:|---:|---:|---|"]
    det = plotdata.setdefault("detect", [])
    ds = byk.get("detect-shelf")
    for m in (ds.measures if ds else []):
        o.append(stat_row(m["label"], m["vals"], extra=" %s |" % m["note"]))
        det.append((m["label"].split(" (`")[-1].rstrip("`)"), pct(m["vals"], 50),
                    pct(m["vals"], 99)))
    if ds and ds.status == "FAILED":
        o.append("| shelf kinds | - | - | - | - | - | %s |" % failed_line(ds))
    pl = byk.get("payload")
    for m in (pl.measures if pl else []):
        if m["label"].startswith("predictive"):
            continue
        o.append(stat_row(m["label"], m["vals"], extra=" %s |" % m["note"]))
        det.append(("hypervisor" if "hypervisor" in m["label"] else "vm", pct(m["vals"], 50),
                    pct(m["vals"], 99)))
    if pl and pl.status == "FAILED":
        o.append("| hypervisor, vm | - | - | - | - | - | %s |" % failed_line(pl))
    if ft_rows:
        d = [r["detection"] for r in ft_rows]
        o.append(stat_row("node loss (blade power, full lab) -> first shelf event", d,
                          extra=" corosync: %s ms median |" % fmt(pct(co, 50))))
        det.append(("node loss", pct(d, 50), pct(d, 99)))
        if co:
            det.append(("(corosync)", pct(co, 50), pct(co, 99)))
    elif pw and pw.status == "FAILED":
        o.append("| node loss | - | - | - | - | - | %s |" % failed_line(pw))
    for P in (ds, pl):
        if P:
            o += [""] + ["- " + n for n in P.notes]
    o.append("")

    # ---- interruption
    o += ["## Service interruption per recovery path (the guest's view)", "",
          "The gap is measured on the guest's own output: the time between the last counter "
          "line before the fault and the first one after it, as they land in its serial file "
          "(the restart paths) or its released console output (FT: output is released per "
          "acknowledged epoch, every 100 ms, so the normal spacing there is already ~100 ms).",
          "", "| recovery path | n | gap median | gap p99 | min | max | recovery done (median) "
          "| note |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    intr = plotdata.setdefault("interrupt", [])
    if ftr:
        g = [r["gap"] for r in ftr]
        bad = sum(1 for r in ftr if not r["monotonic"])
        o.append(stat_row("FT promotion (checkpoint engine, blade power loss)", g,
                          extra=" %s | promoted by atca-ftd; counter %s |" % (
                              fmt(pct([r["promoted"] for r in ftr], 50)),
                              "strictly increasing in every run" if not bad else
                              "WENT BACK in %d runs" % bad)))
        intr.append(("FT promotion", pct(g, 50), pct(g, 99)))
    if ftp and ftp.status == "FAILED":
        o.append("| FT promotion | %d | - | - | - | - | - | %s |" % (len(ftr), failed_line(ftp)))
    crash = (pl.extra.get("crash") if pl else None) or []
    if crash:
        g = [r["gap"] for r in crash]
        o.append(stat_row("restart in place (VM crash)", g, extra=" %s | includes the guest's "
                          "boot (BOOT line %s ms after the crash, median) |" % (
                              fmt(pct([r["total"] for r in crash], 50)),
                              fmt(pct([r["boot"] for r in crash], 50)))))
        intr.append(("restart in place", pct(g, 50), pct(g, 99)))
    if ft_rows:
        g = [r["gap"] for r in ft_rows]
        o.append(stat_row("restart on partner (blade power loss)", g, extra=" %s | includes "
                          "the guest's boot |" % fmt(pct([r["total"] for r in ft_rows], 50))))
        intr.append(("restart on partner", pct(g, 50), pct(g, 99)))
    mig = (pl.extra.get("migrate") if pl else None) or []
    if mig:
        g = [r["gap"] for r in mig]
        bad = sum(1 for r in mig if not r["monotonic"])
        o.append(stat_row("predictive live migration (temp-cr)", g, extra=" %s | largest gap "
                          "between counter lines during the migration; counter %s |" % (
                              fmt(pct([r["total"] for r in mig], 50)),
                              "went on in every run" if not bad else
                              "restarted in %d runs" % bad)))
        intr.append(("live migration", pct(g, 50), pct(g, 99)))
    if pm_rows:
        g = [r["gap"] for r in pm_rows]
        o.append(stat_row("Pacemaker: restart on partner (blade power loss)", g,
                          extra=" %s | baseline, same invocation |" %
                          fmt(pct([r["total"] for r in pm_rows], 50))))
        intr.append(("Pacemaker restart", pct(g, 50), pct(g, 99)))
    if pl and pl.status == "FAILED":
        o.append("| restart in place, live migration | - | - | - | - | - | - | %s |"
                 % failed_line(pl))
    o.append("")

    # ---- checkpoint
    ck = byk.get("checkpoint")
    o += ["## Checkpoint cost (atca-vmft)", ""]
    if ck and ck.extra.get("rows"):
        o += ["Engine's own per-epoch samples, epoch 100 ms, over %d epochs per row; scan "
              "bound = RAM / bench_vft_scan's bandwidth on this machine." % args_prof["epochs"], "",
              "| RAM MiB | dirty pages/s | epochs | pause p50 | pause p99 | scan p50 | bound | "
              "p50/bound | replication MB/s | bytes/epoch p50 | start -> protected s |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in ck.extra["rows"]:
            o.append("| %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.1f | %d | %.1f |" % (
                r["mem"], r["pps"], r["n"], r["pause_p50"], r["pause_p99"], r["scan_p50"],
                r["bound_ms"], r["ratio"], r["bw_mbs"], r["bytes_p50"], r["sync_s"]))
            plotdata.setdefault("pause", []).append(("%d MiB %dk pps" % (r["mem"], r["pps"] // 1000)
                                                     if r["pps"] >= 1000 else str(r["mem"]),
                                                     r["pause_p50"], r["pause_p99"]))
        o.append("")
    if ck and ck.status == "FAILED":
        o += [failed_line(ck), ""]
    sy = byk.get("sync")
    o += ["## Initial synchronisation (256 MiB guest, 1 Gbit/s replication link)", ""]
    if sy and sy.extra.get("rows"):
        rows = sy.extra["rows"]
        pre = next((r for r in rows if r["kind"] == "QEMU pre-copy"), None)
        pm_ = pct(pre["ms"], 50) if pre else None
        o += ["| synchronisation | n | median | p99 | pages sent (median) | QEMU pre-copy / this "
              "(median) |", "|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            label = r["kind"] + (" %d %% changed" % r["diff"] if r.get("diff") else "")
            o.append("| %s | %d | %s | %s | %d | %s |" % (
                label, len(r["ms"]), fmt(pct(r["ms"], 50)), fmt(pct(r["ms"], 99)),
                r["pages"], ratio(pm_, pct(r["ms"], 50)) if r is not pre else "-"))
        o += ["", "Engine: start of the session to the acknowledgement of the full epoch "
              "(status last_sync.ms); QEMU: its migration's total-time, same guest and fill, "
              "same link. The backup is checked byte-identical (frozen check) afterwards.", ""]
    if sy and sy.status == "FAILED":
        o += [failed_line(sy), ""]

    # ---- per-run detail
    o += ["## Per run", ""]
    if ft_rows:
        o += ["atca-ft, blade power loss (ms): " + "; ".join(
            "det %.0f, fenced %.0f, started %.0f, gap %.0f" % (r["detection"], r["fenced_at"],
                                                               r["total"], r["gap"])
            for r in ft_rows), ""]
    if pm_rows:
        o += ["Pacemaker, blade power loss (ms): " + "; ".join(
            "det %.0f, fenced %.0f, started %.0f, gap %.0f%s" % (
                r["detection"], r["fenced_at"], r["total"], r["gap"], " (DC)" if r["dc"] else "")
            for r in pm_rows), ""]
    if ftr:
        o += ["FT promotion (ms): " + "; ".join(
            "blade %d -> %d: promoted %s, gap %s" % (r["from"], r["to"], fmt(r["promoted"]),
                                                     fmt(r["gap"])) for r in ftr), ""]
    if crash:
        o += ["Restart in place (ms): " + "; ".join(
            "det %s, restarted %.0f, gap %.0f" % (fmt(r["detection"]), r["total"], r["gap"])
            for r in crash), ""]
    if mig:
        o += ["Live migration (ms): " + "; ".join(
            "det %s, migrated %s, gap %s" % (fmt(r["detection"]), fmt(r["total"]), fmt(r["gap"]))
            for r in mig), ""]
    o += ["## Reproduce", "", "```sh",
          "sudo bench/suite.py            # the default, about 10 min (569 s on a 2-CPU machine)",
          "sudo bench/suite.py --quick    # a few minutes, fewer runs",
          "sudo bench/suite.py --only power,pacemaker   # some parts",
          "```", "", "The longer runs of each subject are the scripts the suite takes its "
          "functions from: `bench/hw_bench.py latency` (60 injections of each SEL kind), "
          "`bench/recovery_bench.py --runs 20`, `bench/pacemaker_baseline.py` (8 + 5 runs), "
          "`bench/vmft_bench.py` (1 GiB, failovers, epoch sweep, COLO), "
          "`bench/vmft_sync_bench.py` (both sizes and links, zero-copy). The plot: "
          "bench/results/suite.png (gnuplot). Logs of the parts (the FT part's demo "
          "output, tracebacks on stdout) are kept in %s only when a part fails." % args.logdir,
          ""]
    return "\n".join(o) + "\n"


args_prof = {}


def plot(plotdata, png):
    gp = shutil.which("gnuplot")
    if not gp:
        return "gnuplot not installed (apt-get install gnuplot-nox): no plot"
    tmp = tempfile.mkdtemp(prefix="atca-ft-suite-plot-")
    try:
        panels = []
        for key, title in (("detect", "Detection latency per fault kind (ms)"),
                           ("interrupt", "Guest output gap per recovery path (ms)")):
            rows = [r for r in plotdata.get(key, []) if r[1] is not None]
            if not rows:
                continue
            path = os.path.join(tmp, key + ".dat")
            with open(path, "w") as f:
                for label, med, p99 in rows:
                    f.write('"%s" %f %f\n' % (label, med, p99 if p99 is not None else med))
            panels.append((path, title, False))
        rows = [r for r in plotdata.get("pcmk", []) if r[1] is not None and r[3] is not None]
        if rows:
            path = os.path.join(tmp, "pcmk.dat")
            with open(path, "w") as f:
                for label, a, ap, b, bp in rows:
                    f.write('"%s" %f %f %f %f\n' % (label.split(" (")[0], a, ap or a, b, bp or b))
            panels.append((path, "Blade power loss: atca-ft vs Pacemaker (ms, median, p99 bar)",
                           True))
        if not panels:
            return "nothing to plot"
        script = ["set terminal pngcairo size 1200,%d font 'sans,9'" % (380 * len(panels))
                  if subprocess.run([gp, "-e", "set terminal pngcairo"],
                                    stderr=subprocess.DEVNULL).returncode == 0
                  else "set terminal png size 1200,%d" % (380 * len(panels)),
                  "set output '%s'" % png, "set multiplot layout %d,1" % len(panels),
                  "set logscale y", "set grid ytics", "set style fill solid 0.6 border -1",
                  "set boxwidth 0.4", "set xtics rotate by -20 scale 0", "set key top left",
                  "set bmargin 5", "set yrange [1:*]"]
        for path, title, two in panels:
            with open(path) as f:
                nrows = sum(1 for _ in f)
            script.append("set xrange [-0.7:%f]" % (nrows - 0.3))
            script.append("set title \"%s\"" % title)
            if two:
                script.append(
                    "plot '%s' using ($0-0.2):2:xtic(1) with boxes title 'atca-ft median', "
                    "'' using ($0-0.2):2:2:3 with yerrorbars lc rgb 'black' pt 0 notitle, "
                    "'' using ($0+0.2):4 with boxes title 'Pacemaker median', "
                    "'' using ($0+0.2):4:4:5 with yerrorbars lc rgb 'black' pt 0 notitle"
                    % path)
            else:
                script.append(
                    "plot '%s' using 0:2:xtic(1) with boxes title 'median', "
                    "'' using 0:2:2:3 with yerrorbars lc rgb 'black' pt 0 title 'p99'" % path)
        script.append("unset multiplot")
        sp = os.path.join(tmp, "suite.gp")
        with open(sp, "w") as f:
            f.write("\n".join(script) + "\n")
        r = subprocess.run([gp, sp], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        if r.returncode:
            return "gnuplot failed: %s" % r.stdout.strip()[-300:]
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ================================================================ main

def leftover_labs():
    return [n for n in existing_labs() if n.startswith(PREFIX) or
            n in ("hb%d" % (os.getpid() % 1000),)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs: a few minutes")
    ap.add_argument("--only", help="comma-separated parts: " + ",".join(PARTS))
    ap.add_argument("--runs-scale", type=float, default=1.0,
                    help="multiply every run count (e.g. 2 for a longer run)")
    ap.add_argument("--out", default=os.path.join(RESULTS, "suite.md"))
    ap.add_argument("--png", default=os.path.join(RESULTS, "suite.png"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/suite.py: run as root (the lab: namespaces, QEMU, ipmi_sim)")
    for p in (FTD, CTL):
        if not os.access(p, os.X_OK):
            sys.exit("build first: %s missing" % p)
    prof = dict(PROFILES["quick" if a.quick else "full"])
    for k, v in prof.items():
        if isinstance(v, int) and not isinstance(v, bool) and k != "epochs":
            prof[k] = max(1, int(round(v * a.runs_scale)))
    args_prof.update(prof)
    only = [x for x in (a.only or ",".join(PARTS)).split(",") if x]
    bad = [x for x in only if x not in PARTS]
    if bad:
        sys.exit("unknown part(s) %s: %s" % (bad, ",".join(PARTS)))
    a.logdir = tempfile.mkdtemp(prefix="atca-ft-suite-")
    kvm = os.path.exists("/dev/kvm")

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    titles = {"detect-shelf": "detection, shelf fault kinds", "payload":
              "hypervisor kill, VM crash (restart in place), predictive migration",
              "power": "atca-ft: blade power loss (restart on partner)",
              "pacemaker": "Pacemaker baseline: blade power loss",
              "ft": "FT promotion (checkpoint engine)", "checkpoint": "checkpoint pause, bandwidth",
              "sync": "initial synchronisation"}
    funcs = {"detect-shelf": part_detect_shelf, "payload": part_payload, "power": part_power,
             "pacemaker": part_pacemaker, "ft": part_ft, "checkpoint": part_checkpoint,
             "sync": part_sync}
    parts = [Part(k, titles[k]) for k in PARTS if k in only]
    t_all = time.monotonic()
    interrupted = False
    log("profile %s: %s; logs in %s" % ("quick" if a.quick else "full", prof, a.logdir))
    for P in parts:
        if interrupted:
            P.status, P.reason = "FAILED", "interrupted"
            continue
        if P.key in ("ft", "checkpoint", "sync") and not kvm:
            P.status, P.reason = "FAILED", "no /dev/kvm (the checkpoint engine needs KVM)"
            continue
        P.extra["logdir"] = a.logdir
        log("---- %s" % P.title)
        t0 = time.monotonic()
        try:
            funcs[P.key](P, prof)
            P.status = "ok"
        except KeyboardInterrupt:
            P.status, P.reason = "FAILED", "interrupted"
            interrupted = True
        except BaseException as e:  # noqa: BLE001 -- reported in the table, the rest go on
            traceback.print_exc()
            P.status = "FAILED"
            P.reason = ("%s: %s" % (type(e).__name__, str(e).strip().split("\n")[0]))[:300]
        P.seconds = time.monotonic() - t0
        log("%s: %s%s (%.0f s)" % (P.key, P.status, " - " + P.reason if P.reason else "",
                                   P.seconds))
        for n in leftover_labs():
            log("removing leftover lab %s" % n)
            lab_down(n)
    elapsed = time.monotonic() - t_all
    plotdata = {}
    text = report(parts, a, elapsed, plotdata)
    perr = plot(plotdata, a.png)
    if perr:
        text += "\n(%s)\n" % perr
        log(perr)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    log("written %s%s; %.0f s" % (os.path.relpath(a.out, TOP),
                                  "" if perr else " and " + os.path.relpath(a.png, TOP), elapsed))
    failed = [P.key for P in parts if P.status != "ok"]
    if failed:
        log("FAILED parts: %s (logs kept in %s)" % (", ".join(failed), a.logdir))
    else:
        shutil.rmtree(a.logdir, ignore_errors=True)
    return 130 if interrupted else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
