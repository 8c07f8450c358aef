#!/usr/bin/env python3
"""Hardware-awareness benchmarks of atca-ftd on the shelf lab (root).

  bench/hw_bench.py latency [--count 60]     injection -> event inside atca-ftd
  bench/hw_bench.py fence   [--count 20]     fence request -> confirmed M1
  bench/hw_bench.py watch   [--seconds 3600] cost of watching a 16-blade shelf

Each mode starts a --shelf-only lab (ipmi_sim with the FRU activation
plugin, no blade payloads) and runs atca-ftd on the host as an observer with
its own IPC name, state directory and pidfile; everything is removed at the
end. Latencies are measured on CLOCK_MONOTONIC: taken just before the
injection is written to the simulator's console, and the moment atca-ftd
received the event (rx_mono_ns in `atca-ftctl events --json`), so how often
this script polls does not change the numbers. Results are printed and
written to bench/results/hardware-<mode>.md.
"""

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("top_builddir") or os.path.join(TOP, "build")
sys.path.insert(0, os.path.join(TOP, "tests", "lab"))
from atcalab import shelf  # noqa: E402
from atcalab.state import Lab  # noqa: E402

ATCA_LAB = os.path.join(TOP, "tests", "lab", "atca-lab")
FTD = os.path.join(BUILD, "src", "daemon", "atca-ftd")
CTL = os.path.join(BUILD, "src", "cli", "atca-ftctl")
RESULTS = os.path.join(TOP, "bench", "results")


def mono():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Bench:
    def __init__(self, blades, shelf_file=None, sensor="1s", sel="100ms"):
        self.name = "hb%d" % (os.getpid() % 1000)
        self.tmp = tempfile.mkdtemp(prefix="atca-ft-bench-")
        self.ipc = "atca-ft-bench-%d" % os.getpid()
        self.proc = None
        args = [ATCA_LAB, "--name", self.name, "up", "--shelf-only", "--blades", str(blades)]
        if shelf_file:
            args += ["--shelf", shelf_file]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        self.lab = Lab.load(self.name)
        self.blades = blades
        cred = os.path.join(self.tmp, "shelf.cred")
        with open(cred, "w") as f:
            f.write("username: %s\npassword: %s\n" % (shelf.USER, shelf.PASSWORD))
        os.chmod(cred, 0o600)
        conf = os.path.join(self.tmp, "atca-ftd.conf")
        with open(conf, "w") as f:
            f.write("daemon {\n    state_dir: %s/state\n    pidfile: %s/atca-ftd.pid\n"
                    "    ipc_name: %s\n}\n" % (self.tmp, self.tmp, self.ipc))
            f.write("shelf {\n    name: %s\n    credentials: %s\n    manager {\n"
                    "        address: %s\n        port: 623\n    }\n}\n"
                    % (self.name, cred, self.lab.shmc_addr("a")))
            for s in range(1, blades + 1):
                f.write("blade {\n    slot: %d\n    host: bench-blade%d\n}\n" % (s, s))
            f.write("detection {\n    sensor_interval: %s\n    sel_interval: %s\n"
                    "    fence_timeout: 10s\n}\n" % (sensor, sel))
            f.write("logging {\n    to_syslog: no\n    to_stderr: no\n    to_logfile: yes\n"
                    "    logfile: %s/atca-ftd.log\n    level: info\n}\n" % self.tmp)
        self.proc = subprocess.Popen([FTD, "-f", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while self.ctl("version")[0] != 0:
            if time.monotonic() > deadline:
                raise SystemExit("atca-ftd did not start: see %s/atca-ftd.log" % self.tmp)
            time.sleep(0.1)
        self.console = shelf.Console(self.lab.shmc_addr("a"), 9000)

    def ctl(self, *args, timeout=60):
        r = subprocess.run([CTL, "-s", self.ipc] + [str(a) for a in args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        return r.returncode, r.stdout

    def events_after(self, last_id):
        rc, out = self.ctl("--json", "events", "-n", "512")
        if rc != 0:
            return []
        return [e for e in json.loads(out)["events"] if e["id"] > last_id]

    def last_id(self):
        rc, out = self.ctl("--json", "events", "-n", "1")
        evs = json.loads(out)["events"] if rc == 0 else []
        return evs[-1]["id"] if evs else 0

    def wait_blades(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc, out = self.ctl("--json", "blades")
            if rc == 0:
                bl = json.loads(out)["blades"]
                if all(b.get("mstate") == "M4" and b.get("ipmc_state") == "ONLINE" and
                       b.get("sensors", 0) > 0 for b in bl):
                    return
            time.sleep(0.2)
        raise SystemExit("the blades did not all come online")

    def close(self):
        try:
            self.console.close()
        except Exception:
            pass
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run([ATCA_LAB, "--name", self.name, "down"], stdout=subprocess.DEVNULL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def header(title, extra):
    return ["# %s" % title, "",
            "%s, %d CPUs, Linux %s. %s" % (time.strftime("%Y-%m-%d", time.gmtime()),
                                            os.cpu_count(), platform.release(), extra), ""]


def write(mode, lines):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "hardware-%s.md" % mode)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("written to %s" % os.path.relpath(path, TOP))


# ---------------------------------------------------------------- latency

def measure(b, n, inject, matchers, gap=0.25):
    """n injections; for each matcher name, the latencies (ms) from the
    injection to the first event it accepts."""
    lat = {k: [] for k in matchers}
    missed = {k: 0 for k in matchers}
    for i in range(n):
        last = b.last_id()
        t0 = mono()
        inject(i)
        found = {}
        deadline = time.monotonic() + 5
        while len(found) < len(matchers) and time.monotonic() < deadline:
            for e in b.events_after(last):
                for k, pred in matchers.items():
                    if k not in found and pred(e, i):
                        found[k] = e["rx_mono_ns"] / 1e9 - t0
            time.sleep(0.02)
        for k in matchers:
            if k in found:
                lat[k].append(found[k] * 1000)
            else:
                missed[k] += 1
        # a random gap, so injections fall anywhere in the polling periods
        time.sleep(gap + random.uniform(0, 1.0))
    return lat, missed


def cmd_latency(count):
    b = Bench(2)
    rows = []
    try:
        b.wait_blades()
        hs = b.lab.state.get("hotswap_sensor", 0)

        def sel_inject(i):
            b.console.command("sel_add 0x20 0x02 0x00 0x00 0x00 0x00 0x84 0x00 0x04 0x0c 0x04 "
                              "0x6f 0x01 0x%02x 0x%02x" % (i & 0xFF, (i >> 8) & 0xFF))

        lat, missed = measure(b, count, sel_inject, {
            "SEL record (ECC) -> sel.record":
                lambda e, i: e["kind"] == "sel.record" and
                e["detail"].get("data") == "0x01%02x%02x" % (i & 0xFF, (i >> 8) & 0xFF)})
        rows.append((lat, missed))

        temp = 1  # CPU Temp, nominal raw 45, critical 85

        def thr_inject(i):
            raw = 90 if i % 2 == 0 else 45
            b.console.command("sensor_set_value 0x84 0 %d %d 1" % (temp, raw))

        def thr_sel(e, i):
            return (e["kind"] == "sel.record" and e["blade"] == 2 and
                    e["detail"].get("sensor_type") == "temperature" and
                    e["detail"].get("dir") == ("assert" if i % 2 == 0 else "deassert"))

        def thr_sensor(e, i):
            return (e["kind"] == "sensor.threshold" and e["blade"] == 2 and
                    e["detail"].get("previous") is not None and
                    (e["detail"].get("state") != "ok") == (i % 2 == 0))

        lat, missed = measure(b, count, thr_inject, {
            "threshold crossing -> sel.record (SEL path)": thr_sel,
            "threshold crossing -> sensor.threshold (sensor path, 1 s interval)": thr_sensor})
        rows.append((lat, missed))

        def hs_inject(i):
            b.console.command("picmg_set 0x84 %d" % (5 if i % 2 == 0 else 4))

        want = lambda i: "M5" if i % 2 == 0 else "M4"  # noqa: E731
        lat, missed = measure(b, count, hs_inject, {
            "hot-swap transition -> sel.record (ipmi-detect)":
                lambda e, i: e["kind"] == "sel.record" and e["detail"].get("state") == want(i),
            "hot-swap transition -> hotswap (shelfmgr)":
                lambda e, i: e["kind"] == "hotswap" and e["detail"].get("to") == want(i)})
        rows.append((lat, missed))
    finally:
        b.close()
    lines = header("Injection to event inside atca-ftd",
                   "SEL interval 100 ms, sensor interval 1 s, %d injections of each kind, "
                   "atca-ftd on the host watching a --shelf-only lab (2 blades, one shelf "
                   "manager). Milliseconds from writing the injection to the simulator's "
                   "console to the event's arrival in atca-ftd (rx_mono_ns)." % count)
    lines += ["| path | n | p50 | p90 | p99 | max | missed |", "|---|---|---|---|---|---|---|"]
    for lat, missed in rows:
        for k, v in lat.items():
            lines.append("| %s | %d | %.1f | %.1f | %.1f | %.1f | %d |"
                         % (k, len(v), pct(v, 50), pct(v, 90), pct(v, 99),
                            max(v) if v else float("nan"), missed[k]))
    lines += ["", "Target: p99 <= SEL interval + 20 ms = 120 ms on the SEL paths."]
    write("latency", lines)


# ---------------------------------------------------------------- fence

def cmd_fence(count):
    b = Bench(2)
    results = {}
    try:
        b.wait_blades()
        for delay in (300, 0):
            b.console.command("picmg_delay %d %d" % (delay, delay))
            wall, daemon = {"fence": [], "unfence": []}, {"fence": [], "unfence": []}
            for i in range(count):
                for action in ("fence", "unfence"):
                    t0 = mono()
                    rc, out = b.ctl("--json", action, "2", "--yes")
                    t1 = mono()
                    doc = json.loads(out)
                    if rc != 0 or not doc.get("ok"):
                        raise SystemExit("%s failed: %s" % (action, out))
                    wall[action].append((t1 - t0) * 1000)
                    daemon[action].append(doc["elapsed_ms"])
                    time.sleep(0.3)
            results[delay] = (wall, daemon)
    finally:
        b.close()
    lines = header("Fence and unfence through the shelf manager",
                   "%d fence/unfence cycles of one blade per setting; `atca-ftctl fence 2 "
                   "--yes` answers once M1 is confirmed by the hot-swap sensor (unfence: M4). "
                   "The lab's FRU activation plugin holds M6 (payload shutdown) and M3 for a "
                   "configurable time, like real payloads; 0 ms shows atca-ftd's own cost."
                   % count)
    lines += ["| simulated M6/M3 time | action | measured by | n | p50 ms | p99 ms | max ms |",
              "|---|---|---|---|---|---|---|"]
    for delay, (wall, daemon) in results.items():
        for action in ("fence", "unfence"):
            for what, v in (("daemon (request to confirmation)", daemon[action]),
                            ("atca-ftctl (command wall time)", wall[action])):
                lines.append("| %d ms | %s | %s | %d | %.1f | %.1f | %.1f |"
                             % (delay, action, what, len(v), pct(v, 50), pct(v, 99), max(v)))
    write("fence", lines)


# ---------------------------------------------------------------- watch

SHELF_16x10 = os.path.join(TOP, "bench", "shelf-10-sensors.ini")


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cmd_watch(seconds, warmup=30):
    b = Bench(16, SHELF_16x10)
    samples = []
    try:
        b.wait_blades(120)
        rc, out = b.ctl("--json", "sensors")
        n_sensors = len(json.loads(out)["sensors"])
        time.sleep(warmup)
        pid = b.proc.pid
        t0, c0, r0 = mono(), proc_cpu(pid), proc_rss_kb(pid)
        e0 = b.last_id()
        samples.append((0, r0, 0.0))
        step = min(60, max(5, seconds // 20))
        while mono() - t0 < seconds:
            time.sleep(min(step, seconds - (mono() - t0)) if seconds > mono() - t0 else 0)
            t, c = mono() - t0, proc_cpu(pid)
            samples.append((t, proc_rss_kb(pid), (c - c0) / t * 100 if t > 0 else 0))
        t1, c1, r1 = mono(), proc_cpu(pid), proc_rss_kb(pid)
        e1 = b.last_id()
        if b.proc.poll() is not None:
            raise SystemExit("atca-ftd died during the run")
    finally:
        b.close()
    dur = t1 - t0
    lines = header("Cost of watching a full shelf",
                   "16 blades, each with a hot-swap sensor and 10 more (%d sensors read in "
                   "all, the shelf manager's included), sensor interval 1 s, SEL interval "
                   "100 ms; atca-ftd on the host, %d s measured after %d s of warm-up."
                   % (n_sensors, int(dur), warmup))
    lines += ["| measure | value |", "|---|---|",
              "| CPU (user+system) of atca-ftd | %.2f %% of one core |" % ((c1 - c0) / dur * 100),
              "| RSS at start of measurement | %d KiB |" % r0,
              "| RSS at end | %d KiB |" % r1,
              "| RSS max of samples | %d KiB |" % max(s[1] for s in samples),
              "| events during the run | %d |" % (e1 - e0), "",
              "Samples (s, RSS KiB, CPU % since start):", ""]
    lines += ["    %6.0f  %7d  %5.2f" % s for s in samples]
    lines += ["", "Target: under 2 % of one core, no growth of memory."]
    write("watch", lines)


def main():
    if os.geteuid() != 0:
        raise SystemExit("run as root (network namespaces, ipmi_sim)")
    for p in (FTD, CTL):
        if not os.access(p, os.X_OK):
            raise SystemExit("build first: %s missing" % p)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("latency")
    p.add_argument("--count", type=int, default=60)
    p = sub.add_parser("fence")
    p.add_argument("--count", type=int, default=20)
    p = sub.add_parser("watch")
    p.add_argument("--seconds", type=int, default=3600)
    a = ap.parse_args()
    if a.mode == "latency":
        cmd_latency(a.count)
    elif a.mode == "fence":
        cmd_fence(a.count)
    else:
        cmd_watch(a.seconds)


if __name__ == "__main__":
    main()
