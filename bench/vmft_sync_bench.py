#!/usr/bin/env python3
"""Benchmark of templated synchronisation (FVMM) and zero-copy transmission
of the checkpoint/replay engine on the shelf lab (run as root, /dev/kvm).

    bench/vmft_sync_bench.py [--mem 256,1024] [--diff 5,30] [--runs 5]
                             [--links 1gbit,raw] [--epochs 200]
                             [--out bench/results/vmft-sync.md]

The guest: the counter guest, its RAM above its own working area (the
dirty region ends at 96 MiB) filled with pseudo-random data by the bench,
written into the primary's RAM file, as a guest with a full page cache and
heap would have it (an empty guest would flatter QEMU's pre-copy, which
sends zero pages as a flag).

For each guest size and link (1gbit: tc tbf at 1 Gbit/s on the primary
blade's replication port, the ATCA base interface's speed; raw: the lab's
veth as it is), in one run on the same guest:

  full sync       the backup engine restarted on a blade without template:
                  every page crosses (RUNS times)
  templated sync  the backup makes a template from its committed epoch, the
                  bench rewrites DIFF % of the guest's pages (in the filled
                  area), the backup engine restarts and is synchronised on
                  its template (RUNS times per DIFF)
  QEMU pre-copy   a plain QEMU pair with the same guest, memory and fill,
                  source on blade 1, destination on blade 2 (-incoming on the
                  replication address), migrate with unlimited bandwidth:
                  QEMU's own total-time (RUNS times)

The sync time is the engine's own (status last_sync.ms): from the start of
the session (connect, handshake, template hashes) to the acknowledgement of
the full epoch, i.e. until the guest is protected.

Zero-copy: on the raw link with the largest guest at a high dirty rate, the
engine's page-batch sends per mode (the control socket's zerocopy switch):
sender CPU time per GiB of page batches and the epoch transfer time (the
sender's send time per epoch, p50/p99), over EPOCHS epochs each.
"""

import argparse
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
QEMU = "/usr/bin/qemu-system-x86_64"
FILL_FROM = 96 << 20  # the counter guest's dirty region ends here
PAGE = 4096


def load(name, path):
    os.environ.setdefault("top_srcdir", TOP)
    spec = importlib.util.spec_from_file_location(name, os.path.join(TOP, *path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def log(msg):
    print("[sync-bench] " + msg, flush=True)


def pct(v, p):
    v = sorted(v)
    if not v:
        return 0.0
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Bench:
    def __init__(self, v, args):
        self.v = v
        self.args = args
        self.rng = random.Random(9)
        self.rows = []  # dicts: mem, link, kind, diff, runs [ms], pages
        self.zc = []

    # ---- the engine pair -------------------------------------------------------------------

    def conf(self):
        """The lab test's configuration, templates only by order, refreshed
        at full speed (a template of the committed epoch is the setup of a
        measurement, not part of it)."""
        v = self.v
        v.TEMPLATE_S = 0
        v.write_conf()
        text = open(v.conf_path()).read().replace(
            "template_interval: 0s", "template_interval: 0s\n    template_rate: 16GiB")
        with open(v.conf_path(), "w") as f:
            f.write(text)

    def protect(self, mem, pps):
        v = self.v
        lab = v.Lab.load(v.LAB)
        v.stop_engines()
        v.clean_state((1, 2))
        self.drop_templates(1)
        self.drop_templates(2)
        v.MEM_MB = mem
        v.guestmod.make_image(lab, v.VM, pps=pps)
        self.conf()
        v.start_engine(2, "backup")
        v.start_engine(1, "primary")
        v.wait_for("guest output", lambda: v.counters(v.console_text()), timeout=60)
        v.wait_protected(1, timeout=120)
        self.fill(mem)

    def drop_templates(self, slot):
        import shutil
        shutil.rmtree(self.v.in_blade(slot, "/var/lib/atca-ft/vmft-templates/" + self.v.VM),
                      ignore_errors=True)

    def ram_file(self):
        return self.v.in_blade(1, self.v.status(1)["ram_path"])

    def fill(self, mem):
        with open(self.ram_file(), "r+b") as f:
            f.seek(FILL_FROM)
            for _ in range((mem << 20) // (1 << 20) - FILL_FROM // (1 << 20)):
                f.write(self.rng.randbytes(1 << 20))

    def mutate(self, mem, percent):
        """percent % of all the guest's pages, in the filled area, rewritten."""
        npages = (mem << 20) // PAGE
        first = FILL_FROM // PAGE
        pick = self.rng.sample(range(first, npages), npages * percent // 100)
        with open(self.ram_file(), "r+b") as f:
            for p in sorted(pick):
                f.seek(p * PAGE)
                f.write(self.rng.randbytes(PAGE))

    def resync(self):
        """The backup engine restarted: the primary's next full sync."""
        v = self.v
        syncs = v.status(1).get("full_syncs", 0)
        v.stop_one(2)
        v.start_engine(2, "backup")
        st = v.resynced(1, syncs, timeout=180)
        return st["last_sync"]

    def full_syncs(self, mem, link):
        ms, pages, ph = [], [], []
        for _ in range(self.args.runs):
            self.drop_templates(2)
            ls = self.resync()
            ms.append(ls["ms"])
            pages.append(ls["pages_sent"])
            ph.append(phases(ls))
        self.rows.append(dict(mem=mem, link=link, kind="full sync", diff=None, ms=ms,
                              pages=statistics.median(pages), phases=ph))
        log("%d MiB %s full sync: median %.0f ms (%d pages)" % (
            mem, link, statistics.median(ms), statistics.median(pages)))

    def make_template(self):
        v = self.v
        n = v.status(2).get("template", {}).get("refreshes", 0)
        r = v.ctl(2, "template")
        if not r.get("ok"):
            raise RuntimeError("template: %s" % r)
        v.wait_for("template", lambda: v.status(2).get("template", {}).get("refreshes", 0) > n,
                   timeout=120)

    def templated(self, mem, link, diff):
        ms, pages, saved, ph = [], [], [], []
        for _ in range(self.args.runs):
            self.make_template()
            self.mutate(mem, diff)
            ls = self.resync()
            if not ls.get("template"):
                raise RuntimeError("the sync was not templated: %s" % ls)
            ms.append(ls["ms"])
            pages.append(ls["pages_sent"])
            saved.append(ls["pages_from_template"])
            ph.append(phases(ls))
        self.rows.append(dict(mem=mem, link=link, kind="templated", diff=diff, ms=ms,
                              pages=statistics.median(pages), phases=ph))
        log("%d MiB %s templated %d%%: median %.0f ms (%d pages sent, %d from template)" % (
            mem, link, diff, statistics.median(ms), statistics.median(pages),
            statistics.median(saved)))

    def frozen_ok(self, what):
        return self.v.frozen_check(1, 2, what)

    # ---- the link ------------------------------------------------------------------------

    def shape(self, link):
        lab = self.v.Lab.load(self.v.LAB)
        self.v.blademod.run_in(lab, 1, ["tc", "qdisc", "del", "dev", "repl0", "root"],
                               check=False)
        if link != "raw":
            self.v.blademod.run_in(lab, 1, ["tc", "qdisc", "add", "dev", "repl0", "root", "tbf",
                                            "rate", link, "burst", "1mb", "latency", "50ms"])

    # ---- QEMU's pre-copy -------------------------------------------------------------------

    def precopy(self, mem, link, colo):
        v = self.v
        lab = v.Lab.load(v.LAB)
        img = "/var/lib/libvirt/images/%s.img" % v.VM
        dst_addr = lab.blade_repl(2)
        ms, down, sent = [], [], []
        for i in range(self.args.runs):
            procs = []
            try:
                argv = lambda side: [  # noqa: E731
                    QEMU, "-machine", "pc,accel=kvm,memory-backend=mem", "-object",
                    "memory-backend-file,id=mem,size=%dM,mem-path=/dev/shm/precopy-%s.ram,"
                    "share=on" % (mem, side), "-m", "%dM" % mem, "-smp", "1", "-nodefaults",
                    "-display", "none", "-drive",
                    "file=%s,format=raw,if=ide,cache=none,file.locking=off" % img,
                    "-serial", "null", "-qmp",
                    "unix:/tmp/precopy-%s.qmp,server=on,wait=off" % side]
                dst = subprocess.Popen(
                    v.blademod.nsenter_cmd(v.blademod.holder_of(lab, 2), argv("dst") + [
                        "-incoming", "tcp:%s:4444" % dst_addr]),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
                procs.append(dst)
                src = subprocess.Popen(
                    v.blademod.nsenter_cmd(v.blademod.holder_of(lab, 1), argv("src")),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True)
                procs.append(src)
                q = colo.Qmp(v.in_blade(1, "/tmp/precopy-src.qmp"), src, 30)
                time.sleep(1.5)  # the guest boots and runs
                ram = v.in_blade(1, "/dev/shm/precopy-src.ram")
                with open(ram, "r+b") as f:
                    f.seek(FILL_FROM)
                    for _ in range(mem - FILL_FROM // (1 << 20)):
                        f.write(self.rng.randbytes(1 << 20))
                q.cmd("migrate-set-parameters", **{"max-bandwidth": 1 << 40})
                q.cmd("migrate", uri="tcp:%s:4444" % dst_addr)
                while True:
                    st = q.cmd("query-migrate")
                    if st.get("status") in ("completed", "failed", "cancelled"):
                        break
                    time.sleep(0.01)
                if st["status"] != "completed":
                    raise RuntimeError("pre-copy %s" % st)
                ms.append(st["total-time"])
                down.append(st.get("downtime", 0))
                sent.append(st.get("ram", {}).get("transferred", 0))
            finally:
                for p in procs:
                    subprocess.run(["pkill", "-9", "-s", str(p.pid)], check=False)
                    p.wait()
                for side, slot in (("src", 1), ("dst", 2)):
                    for f in ("/dev/shm/precopy-%s.ram" % side, "/tmp/precopy-%s.qmp" % side):
                        try:
                            os.unlink(v.in_blade(slot, f))
                        except OSError:
                            pass
        self.rows.append(dict(mem=mem, link=link, kind="QEMU pre-copy", diff=None, ms=ms,
                              pages=statistics.median(sent) / PAGE,
                              downtime=statistics.median(down)))
        log("%d MiB %s QEMU pre-copy: median %.0f ms (downtime %.0f ms, %.0f MiB)" % (
            mem, link, statistics.median(ms), statistics.median(down),
            statistics.median(sent) / 2**20))

    # ---- zero-copy -------------------------------------------------------------------------

    def zerocopy(self, mem):
        v = self.v
        for on in (True, False, True, False):
            v.ctl(1, "zerocopy", on=on)
            time.sleep(1)
            t0 = v.status(1)["transmission"]
            e0 = v.status(1)["epoch"]
            v.wait_for("epochs", lambda: v.status(1)["epoch"] >= e0 + self.args.epochs,
                       timeout=self.args.epochs * 2 + 30, step=0.2)
            t1 = v.status(1)["transmission"]
            s = v.ctl(1, "samples", timeout=10)
            n = min(self.args.epochs, len(s["send_ms"]))
            gib = (t1["page_bytes"] - t0["page_bytes"]) / 2**30
            self.zc.append(dict(on=on, mem=mem, gib=gib,
                                cpu_per_gib=(t1["cpu_ms"] - t0["cpu_ms"]) / gib if gib else 0,
                                send=s["send_ms"][-n:],
                                bytes=s["bytes"][-n:],
                                zc=t1["zc_sends"] - t0["zc_sends"],
                                copied=t1["zc_copied"] - t0["zc_copied"]))
            z = self.zc[-1]
            log("zero-copy %s: %.2f GiB, %.0f ms CPU/GiB, transfer p50 %.2f ms p99 %.2f ms, "
                "%d zc sends (%d copied by the kernel)" % (
                    "on" if on else "off", gib, z["cpu_per_gib"], pct(z["send"], 50),
                    pct(z["send"], 99), z["zc"], z["copied"]))
        return self.frozen_ok("after the zero-copy runs")


def phases(ls):
    rest = ls["ms"] - ls.get("handshake_ms", 0) - ls.get("ram_ms", 0) - ls.get("disk_ms", 0)
    return (ls.get("handshake_ms", 0), ls.get("ram_ms", 0), ls.get("disk_ms", 0), rest)


def machine():
    cpu = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return "%s, %d CPUs, kernel %s, %s" % (cpu, os.cpu_count(), platform.release(),
                                           subprocess.run([QEMU, "--version"],
                                                          capture_output=True,
                                                          text=True).stdout.splitlines()[0])


def report(b, args):
    out = ["# Templated synchronisation and zero-copy transmission (issue 9)", "",
           "Measured by `bench/vmft_sync_bench.py` on %s, %s." % (
               machine(), time.strftime("%Y-%m-%d")), "",
           "Guest: the counter guest, RAM above 96 MiB filled with pseudo-random data "
           "(the guest's own dirty region, 32..96 MiB, at %d pages/s). Sync time: the "
           "engine's own, from the session's start to the acknowledgement of the full "
           "epoch (the guest protected); QEMU pre-copy: QEMU's total-time of a plain "
           "live migration of the same guest between the same blades, unlimited "
           "bandwidth. %d runs each: median and p99 (p99 of %d runs is their maximum)."
           % (args.pps, args.runs, args.runs), "",
           "| RAM | link | sync | pages sent | median ms | p99 ms | vs pre-copy | "
           "handshake / RAM / disk / rest ms |",
           "|---|---|---|---|---|---|---|---|"]
    for r in b.rows:
        pre = [x for x in b.rows if x["mem"] == r["mem"] and x["link"] == r["link"] and
               x["kind"] == "QEMU pre-copy"]
        ratio = ""
        if pre and r["kind"] != "QEMU pre-copy":
            ratio = "%.1fx faster" % (statistics.median(pre[0]["ms"]) / statistics.median(r["ms"]))
        kind = r["kind"] + (" %d %% differ" % r["diff"] if r["diff"] is not None else "")
        ph = ""
        if r.get("phases"):
            ph = " / ".join("%.0f" % statistics.median(x[i] for x in r["phases"])
                            for i in range(4))
        out.append("| %d MiB | %s | %s | %d | %.0f | %.0f | %s | %s |" % (
            r["mem"], r["link"], kind, r["pages"], statistics.median(r["ms"]),
            pct(r["ms"], 99), ratio, ph))
    if b.zc:
        out += ["", "Zero-copy (raw link, %d MiB guest at %d pages/s, %d epochs per run, two "
                "runs per mode): CPU time of the sender per GiB of page batches, and the "
                "epoch transfer time (the sender, from an epoch's BEGIN to its END on the wire)."
                % (b.zc[0]["mem"], args.zc_pps, args.epochs), "",
                "| MSG_ZEROCOPY | GiB sent | sender CPU ms/GiB | transfer p50 ms | "
                "transfer p99 ms | bytes/epoch p50 | kernel-copied sends |",
                "|---|---|---|---|---|---|---|"]
        for z in b.zc:
            out.append("| %s | %.2f | %.0f | %.2f | %.2f | %d | %d of %d |" % (
                "on" if z["on"] else "off", z["gib"], z["cpu_per_gib"], pct(z["send"], 50),
                pct(z["send"], 99), pct(z["bytes"], 50), z["copied"], z["zc"]))
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mem", default="256,1024")
    ap.add_argument("--diff", default="5,30")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--links", default="1gbit,raw")
    ap.add_argument("--pps", type=int, default=100)
    ap.add_argument("--zc-pps", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--out", default=os.path.join(TOP, "bench", "results", "vmft-sync.md"))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("vmft_sync_bench: run as root (lab namespaces, QEMU)")
    if not os.path.exists("/dev/kvm"):
        sys.exit("vmft_sync_bench: no /dev/kvm")
    v = load("vmft_lab", ("tests", "integration", "vmft.py"))
    colo = load("colo", ("bench", "colo_bench.py"))
    v.LAB = "vs%d" % (os.getpid() % 100)
    v.NET = v.DISK = False
    b = Bench(v, args)
    mems = [int(x) for x in args.mem.split(",") if x]
    diffs = [int(x) for x in args.diff.split(",") if x]
    v.lab_cmd("up", "--blades", "2", timeout=180)
    try:
        for mem in mems:
            b.protect(mem, args.pps)
            for link in [x for x in args.links.split(",") if x]:
                b.shape(link)
                b.full_syncs(mem, link)
                for d in diffs:
                    b.templated(mem, link, d)
                b.frozen_ok("%d MiB, %s, after the templated syncs" % (mem, link))
                b.precopy(mem, link, colo)
            b.shape("raw")
        if args.epochs:
            b.protect(max(mems), args.zc_pps)
            b.zerocopy(max(mems))
    finally:
        v.stop_engines()
        v.lab_cmd("down", check_rc=False, timeout=120)
    text = report(b, args)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    print(text)
    if v.FAILS:
        log("%d check(s) failed" % len(v.FAILS))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
