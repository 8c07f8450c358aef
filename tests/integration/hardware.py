#!/usr/bin/env python3
"""atca-ftd's hardware awareness on the shelf lab (run as root; exit 77 =
skipped with a reason).

A 2-blade lab with two shelf managers; atca-ftd runs on blade 1 and watches
the shelf. Every check waits for the event inside atca-ftd (atca-ftctl
events --json), not for the lab:

- sensors of both blades read, hot-swap states and the address table known;
- each event kind: threshold (temperature, voltage), processor IERR and
  thermal trip, memory correctable/uncorrectable ECC, power unit, watchdog,
  hot-swap transitions with the previous state, an OEM record and a record
  of unknown sensor type (delivered, not fatal);
- an IPMC that stops answering (M7, CC 0x83): ipmc.unreachable, and
  ipmc.reachable by itself after the repair;
- SEL clear: sel.cleared, and the next record is still seen;
- shelf-manager switchover: the active one killed, shmc.switchover from
  both the monitoring and the shelf-manager client, sensors still read;
- fence: M4 -> M1 confirmed, the blade's processes really gone; fence again
  (already fenced) succeeds at once; unfence: M4 confirmed, the blade back;
- an IPMC without FRU activation (CC 0xC1): fence falls back to chassis
  power and succeeds, unfence powers it back on;
- fencing a blade the shelf manager lost (M7) fails, with exit status 1;
- atca-ftctl blades/sensors/sel/events/fence with and without --json.
"""

import json
import os
import re
import subprocess
import sys
import time

TOP = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("top_builddir") or os.path.join(TOP, "build")
sys.path.insert(0, os.path.join(TOP, "tests", "lab"))
from atcalab import lab as labmod  # noqa: E402
from atcalab.state import Lab  # noqa: E402
from atcalab.util import LabError  # noqa: E402

LAB = "hw%d" % (os.getpid() % 100)
ATCA_LAB = os.path.join(TOP, "tests", "lab", "atca-lab")
FTD = os.path.join(BUILD, "src", "daemon", "atca-ftd")
CTL = os.path.join(BUILD, "src", "cli", "atca-ftctl")
FAILS = []


def ok(msg):
    print("ok   " + msg, flush=True)


def check(cond, msg):
    if cond:
        ok(msg)
    else:
        print("FAIL " + msg, flush=True)
        FAILS.append(msg)
    return cond


def skip(why):
    print("SKIP " + why, flush=True)
    sys.exit(77)


def lab_cmd(*args, check_rc=True, timeout=120):
    r = subprocess.run([ATCA_LAB, "--name", LAB] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if check_rc and r.returncode != 0:
        raise LabError("atca-lab %s: %s%s" % (" ".join(map(str, args)), r.stdout, r.stderr))
    return r


def ctl(*args, blade=1, timeout=60):
    """atca-ftctl inside a blade: (exit status, stdout, stderr)."""
    r = subprocess.run([ATCA_LAB, "--name", LAB, "exec", str(blade), CTL] +
                       [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def ctl_json(*args, blade=1):
    rc, out, err = ctl("--json", *args, blade=blade)
    try:
        return rc, json.loads(out)
    except ValueError:
        return rc, {"error": "not JSON: %r %r" % (out[:200], err[:200])}


class Events:
    """Reads atca-ftd's events; remembers the last id seen so a check looks
    only at what came after the action it checks."""

    def __init__(self):
        self.last = 0

    def mark(self):
        rc, doc = ctl_json("events", "-n", "1")
        evs = doc.get("events", []) if rc == 0 else []
        self.last = evs[-1]["id"] if evs else self.last

    def new(self):
        rc, doc = ctl_json("events", "-n", "512")
        if rc != 0:
            return []
        return [e for e in doc.get("events", []) if e["id"] > self.last]

    def wait(self, msg, pred, timeout=15.0):
        """Waits for an event matching pred; returns it or None."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            for e in self.new():
                if pred(e):
                    ok("%s (%.2f s)" % (msg, time.monotonic() - t0))
                    return e
            time.sleep(0.1)
        check(False, "%s (not within %.0f s)" % (msg, timeout))
        return None


def ev(kind, blade=None, **detail):
    def pred(e):
        if e["kind"] != kind or (blade is not None and e["blade"] != blade):
            return False
        for k, v in detail.items():
            got = e["detail"].get(k.rstrip("_"))
            if v.startswith("~"):
                if got is None or not re.search(v[1:], got):
                    return False
            elif got != v:
                return False
        return True
    return pred


def eventually(msg, fn, timeout=15.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if fn():
                ok("%s (%.2f s)" % (msg, time.monotonic() - t0))
                return True
        except (LabError, KeyError, ValueError, IndexError):
            pass
        time.sleep(0.1)
    return check(False, "%s (not within %.0f s)" % (msg, timeout))


def lab_blade(slot):
    st = json.loads(lab_cmd("status", "--json").stdout)
    return st.get("blades", {}).get(str(slot), {})


def blade_doc(slot):
    rc, doc = ctl_json("blades")
    for b in doc.get("blades", []):
        if b["slot"] == slot:
            return b
    return {}


def sel_add(*data):
    """A raw system-event record in both shelf managers' SELs."""
    lab_cmd("console", "--shmc", "all",
            "sel_add 0x20 0x02 " + " ".join("0x%02x" % d for d in data))


def sel_event(gen, stype, num, etype, d1, d2=0xFF, d3=0xFF):
    # evm rev 0x04, sensor type, number, event dir/type, data 1-3
    ts = [0, 0, 0, 0]
    sel_add(*(ts + [gen, 0x00, 0x04, stype, num, etype, d1, d2, d3]))


def start_daemon(lab):
    """atca-ftd on blade 1, with the lab's configuration and short intervals;
    the lab runs it (and restarts it when a hook powers blade 1 back on)."""
    with open(lab.path("atca-ftd.conf"), "a") as f:
        f.write("detection {\n    sensor_interval: 250ms\n    sel_interval: 100ms\n"
                "    ipmc_timeout: 500ms\n    ipmc_retry_max: 1s\n    fence_timeout: 10s\n}\n"
                # the faults injected here must be planned, not acted on:
                # recovery has its own test (recovery.py)
                "recovery {\n    mode: dry-run\n}\n")
    os.environ["ATCA_FTD"] = FTD
    lab_cmd("ftd", "start", 1, timeout=30)
    eventually("atca-ftd answers on blade 1", lambda: ctl("version")[0] == 0, 15)


FATAL_B2 = (r"fault (raise|update absorbed): fault=\d+ layer=hardware severity=fatal "
            r'target="blade 2" class=fence-and-failover')


def daemon_log_count(pattern):
    """How many lines of atca-ftd's output (blade 1) match pattern."""
    lab = Lab.load(LAB)
    try:
        with open(os.path.join(lab.blade_dir(1), "atca-ftd.out"), errors="replace") as f:
            return sum(1 for line in f if re.search(pattern, line))
    except OSError:
        return 0


def daemon_log_has(pattern):
    return daemon_log_count(pattern) > 0


def dump_daemon_output(lab):
    """The end of atca-ftd's output, so a CI failure can be understood from the
    test log alone (the lab directory goes away with the lab)."""
    path = os.path.join(lab.blade_dir(1), "atca-ftd.out")
    try:
        with open(path, errors="replace") as f:
            tail = f.readlines()[-60:]
    except OSError as e:
        print("(no atca-ftd output: %s)" % e)
        return
    print("--- last lines of %s" % path)
    sys.stdout.write("".join(tail))
    print("--- the failure model's lines")
    with open(path, errors="replace") as f:
        sys.stdout.write("".join(l for l in f if "[fm]" in l)[-20000:])
    print("---")


def main():
    if os.geteuid() != 0:
        skip("needs root (network namespaces, ipmi_sim)")
    for tool in ("ipmi_sim", "ipmitool", "corosync"):
        if subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL).returncode:
            skip("%s is not installed" % tool)
    if not os.access(FTD, os.X_OK) or not os.access(CTL, os.X_OK):
        skip("build atca-ftd and atca-ftctl first (%s)" % BUILD)
    t0 = time.monotonic()
    try:
        lab_cmd("up", "--blades", 2, "--shelf-managers", 2, timeout=180)
        ok("lab %s up (%.1f s)" % (LAB, time.monotonic() - t0))
        lab = Lab.load(LAB)
        start_daemon(lab)
        run_checks()
    finally:
        if FAILS and "lab" in locals():
            dump_daemon_output(lab)
        r = lab_cmd("down", check_rc=False, timeout=120)
        check(r.returncode == 0, "lab %s down" % LAB)
        left = labmod.leftovers(LAB) if hasattr(labmod, "leftovers") else []
        check(not left, "nothing left behind %s" % (left or ""))
    print("hardware: %d failures (%.0f s)" % (len(FAILS), time.monotonic() - t0))
    return 1 if FAILS else 0


def run_checks():
    evs = Events()

    # ---- discovery and readings
    eventually("both blades M4, IPMCs online, sensors read",
               lambda: all(blade_doc(s).get("mstate") == "M4" and
                           blade_doc(s).get("ipmc_state") == "ONLINE" and
                           blade_doc(s).get("sensors", 0) >= 7 for s in (1, 2)), 20)
    rc, doc = ctl_json("blades")
    sm = doc.get("shelf_manager", {})
    check(sm.get("connected") and sm.get("picmg") and sm.get("address_table_entries") == 2,
          "shelf manager: connected, PICMG %s, address table of %s"
          % (sm.get("picmg"), sm.get("address_table_entries")))
    b2 = blade_doc(2)
    check(b2.get("in_address_table") and b2.get("hw_addr") == "0x42",
          "blade 2 in the address table at hardware address %s" % b2.get("hw_addr"))
    check(any(f.get("id") == 0 for f in b2.get("frus", [])), "blade 2's FRU 0 known")
    rc, out, _ = ctl("sensors", "2")
    check(rc == 0 and "CPU Temp" in out and "12V Rail" in out and "Hot Swap" in out,
          "atca-ftctl sensors 2 lists the blade's sensors")
    rc, out, _ = ctl("blades")
    check(rc == 0 and re.search(r"^2\s+0x84\s+blade2\s+M4\s+ok", out, re.M),
          "atca-ftctl blades: blade 2 M4 ok")

    # ---- thresholds
    evs.mark()
    lab_cmd("inject", "temp-cr", 2)
    evs.wait("temperature upper-critical: sensor event",
             ev("sensor.threshold", 2, state="upper-critical", type="temperature"))
    evs.wait("temperature upper-critical: SEL record",
             ev("sel.record", 2, meaning="upper-critical-going-high"))
    # the readings repeat while the sensor is bad: 2 of 3 raise the fault
    eventually("the failure model raises thr-critical for blade 2 (migrate-away)",
               lambda: daemon_log_has(r'fault raise: .*severity=degraded target="blade 2" '
                                      r"class=migrate-away .*rule=thr-critical"), 5)
    check(daemon_log_has(r"recovery: plan for fault \d+ \(dry run, not carried out\)"),
          "the planner logs the plan it made for it (dry run)")
    evs.mark()
    lab_cmd("repair", "temp-cr", 2)
    evs.wait("temperature back to ok", ev("sensor.threshold", 2, state="ok"))
    # ... and go on for a while once it is ok again: 3 ok readings clear it
    eventually("... and clears it with hysteresis once the sensor is ok",
               lambda: daemon_log_has(r"fault clear hysteresis: .*rule=thr-critical"), 5)
    evs.mark()
    lab_cmd("inject", "volt-nc", 2)
    evs.wait("12 V lower-non-critical", ev("sensor.threshold", 2, state="lower-non-critical"))
    lab_cmd("repair", "volt-nc", 2)

    # ---- processor, memory, power unit, watchdog, OEM, unknown
    evs.mark()
    lab_cmd("inject", "ecc", 2)
    evs.wait("uncorrectable ECC: SEL record", ev("sel.record", 2, meaning="uncorrectable-ecc"))
    evs.wait("uncorrectable ECC: sensor offsets",
             ev("sensor.discrete", 2, offsets="~uncorrectable-ecc"))
    lab_cmd("repair", "ecc", 2)
    evs.mark()
    lab_cmd("inject", "ierr", 2)
    evs.wait("processor IERR", ev("sel.record", 2, meaning="ierr"))
    lab_cmd("repair", "ierr", 2)
    evs.mark()
    sel_event(0x84, 0x07, 0x03, 0x6F, 0x01)  # processor thermal trip
    sel_event(0x84, 0x0C, 0x04, 0x6F, 0x00)  # memory correctable ECC
    sel_event(0x84, 0x09, 0x05, 0x6F, 0x04)  # power unit: AC lost
    sel_event(0x84, 0x23, 0x06, 0x6F, 0x01)  # watchdog 2: hard reset
    sel_event(0x84, 0x9A, 0x30, 0x6F, 0x02)  # a sensor type nobody knows
    evs.wait("processor thermal trip", ev("sel.record", 2, meaning="thermal-trip"))
    evs.wait("memory correctable ECC", ev("sel.record", 2, meaning="correctable-ecc"))
    evs.wait("power unit AC lost", ev("sel.record", 2, meaning="ac-lost"))
    evs.wait("watchdog hard reset", ev("sel.record", 2, meaning="hard-reset"))
    evs.wait("a record of unknown sensor type delivered as unknown",
             ev("sel.record", 2, meaning="unknown"))
    evs.mark()
    lab_cmd("console", "--shmc", "all", "sel_add 0x20 0xe0 " + " ".join(["0x11"] * 13))
    evs.wait("an OEM record (type 0xE0) delivered as oem", ev("sel.record", None, meaning="oem"))
    rc, out, _ = ctl("sel", "2")
    check(rc == 0 and "thermal-trip" in out and "uncorrectable-ecc" in out,
          "atca-ftctl sel 2 shows the decoded records")

    # ---- hot-swap and an unreachable IPMC
    fatal_before = daemon_log_count(FATAL_B2)
    evs.mark()
    lab_cmd("inject", "m7", 2)
    # ipmi-detect hands the SEL record to the shelf-manager client: no
    # wait for OpenIPMI's own SEL rescan
    evs.wait("hot-swap M4 -> M7 (shelf-manager client)",
             ev("hotswap", 2, from_="M4", to="M7"), 3)
    evs.wait("hot-swap M7 in the SEL", ev("sel.record", 2, state="M7"))
    evs.wait("IPMC 0x84 unreachable", ev("ipmc.unreachable", 2), 10)
    # the earlier ECC error's fault may still be open: then M7 joins it
    eventually("the failure model has M7 in a fatal fence-and-failover fault of blade 2",
               lambda: daemon_log_count(FATAL_B2) > fatal_before, 5)
    check(blade_doc(2).get("health") in ("lost", "unreachable"),
          "blade 2 health %s" % blade_doc(2).get("health"))
    evs.mark()
    rc, doc = ctl_json("fence", "2", "--yes")
    check(rc == 1 and not doc.get("ok") and "M7" in doc.get("message", ""),
          "fencing a blade in M7 fails: %s" % doc.get("message"))
    lab_cmd("repair", "m7", 2)
    evs.wait("IPMC 0x84 reachable again by itself", ev("ipmc.reachable", 2), 10)
    evs.wait("hot-swap M7 -> M4", ev("hotswap", 2, to="M4"))

    # ---- SEL clear
    evs.mark()
    lab_cmd("ipmitool", "--shmc", "a", "sel", "clear")
    lab_cmd("ipmitool", "--shmc", "b", "sel", "clear")
    evs.wait("SEL cleared", ev("sel.cleared"))
    evs.mark()
    sel_event(0x84, 0x07, 0x03, 0x6F, 0x00)
    evs.wait("the first record after the clear is seen", ev("sel.record", 2, meaning="ierr"))

    # ---- fence and unfence
    evs.mark()
    t = time.monotonic()
    rc, doc = ctl_json("fence", "2", "--yes")
    check(rc == 0 and doc.get("ok") and doc.get("state_after") == "M1" and
          doc.get("method") == "hot-swap",
          "fence blade 2: M1 confirmed by %s in %.0f ms (CLI %.0f ms)"
          % (doc.get("method"), doc.get("elapsed_ms", -1), (time.monotonic() - t) * 1000))
    evs.wait("fence event", ev("fence", 2, action="fence", result="ok"))
    evs.wait("hot-swap M6 -> M1", ev("hotswap", 2, from_="M6", to="M1"))
    check(not daemon_log_has(r"rule=hs-unplanned"),
          "our own fence is a requested deactivation: no hs-unplanned fault")
    check(daemon_log_has(r"kind=hotswap .*from=M6 to=M1 .*cause=requested"),
          "the shelf-manager client marks the fence's transitions cause=requested")
    eventually("blade 2's processes are gone (the lab says power off)",
               lambda: lab_blade(2).get("power") == "off", 10)
    rc, doc = ctl_json("fence", "2", "--yes")
    check(rc == 0 and doc.get("method") == "none" and "already fenced" in doc.get("message", ""),
          "fencing it again: %s" % doc.get("message"))
    rc, out, err = ctl("fence", "2")
    check(rc == 2 and "without --yes" in err, "fence without --yes and no terminal is refused")
    rc, out, _ = ctl("blades")
    check(re.search(r"^2\s+0x84\s+blade2\s+M1\s+off", out, re.M) is not None,
          "atca-ftctl blades: blade 2 M1 off")
    evs.mark()
    rc, doc = ctl_json("unfence", "2", "--yes")
    check(rc == 0 and doc.get("ok") and doc.get("state_after") == "M4",
          "unfence blade 2: M4 confirmed in %.0f ms" % doc.get("elapsed_ms", -1))
    evs.wait("hot-swap back to M4", ev("hotswap", 2, to="M4"))

    # ---- no FRU activation on the IPMC: chassis power
    lab_cmd("inject", "picmg", 2)
    rc, doc = ctl_json("fence", "2", "--yes")
    check(rc == 0 and doc.get("ok") and doc.get("method") == "chassis",
          "fence without FRU activation: %s" % doc.get("message"))
    rc, doc = ctl_json("unfence", "2", "--yes")
    check(rc == 0 and doc.get("ok") and doc.get("method") == "chassis",
          "unfence without FRU activation: %s" % doc.get("message"))
    lab_cmd("repair", "picmg", 2)
    eventually("blade 2 M4 again", lambda: blade_doc(2).get("mstate") == "M4", 15)

    # ---- shelf-manager switchover
    evs.mark()
    lab_cmd("inject", "shmc", "a")
    evs.wait("switchover seen by the monitoring", ev("shmc.switchover", None, to="~:623$"), 20)
    evs.wait("switchover seen by the shelf-manager client",
             lambda e: e["kind"] == "shmc.switchover" and e["source"] == "shelf", 30)
    evs.mark()
    lab_cmd("inject", "temp-nc", 2)
    evs.wait("sensors still read through shelf manager B",
             ev("sensor.threshold", 2, state="upper-non-critical"), 15)
    lab_cmd("repair", "temp-nc", 2)
    lab_cmd("repair", "shmc", "a")
    rc, doc = ctl_json("fence", "2", "--yes")
    check(rc == 0 and doc.get("ok"), "fence through shelf manager B: %s" % doc.get("message"))
    rc, doc = ctl_json("unfence", "2", "--yes")
    check(rc == 0 and doc.get("ok"), "unfence through shelf manager B: %s" % doc.get("message"))
    rc, out, _ = ctl("status")
    check(rc == 0 and "ipmi-detect" in out and "shelfmgr" in out, "atca-ftctl status")


if __name__ == "__main__":
    sys.exit(main())
