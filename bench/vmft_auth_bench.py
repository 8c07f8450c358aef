#!/usr/bin/env python3
"""What the replication link's authentication costs (run as root):

  bench/vmft_auth_bench.py [--mem MIB] [--epochs N] [--rounds N]
                           [--out bench/results/vmft-auth.md]

1. On this CPU (bench/vft_auth_micro.c, built here with cc): the candidate
   frame MACs (HMAC-SHA256, BLAKE2b, KMAC128, Poly1305, AES-256-GCM and
   ChaCha20-Poly1305 as MACs) on a 1-page and a full 256-page PAGES frame,
   then the engine's own code: the handshake's crypto, and the checksum + MAC
   of a PAGES frame sealed and verified.
2. On the shelf lab (tests/integration/vmft.py's helpers, lab name
   VMFT_LAB, default authb): the counter guest protected with
   vmft.authenticate yes and no, alternately, --rounds times each: the full
   syncs of a guest whose RAM above 96 MiB is random (its handshake phase,
   RAM copy, time to the first acknowledgement; the backup restarted each time),
   then --epochs epochs: the guest's pause, the sender's time per epoch,
   bytes per epoch, and the CPU the primary spent on MACs.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("top_builddir") or os.path.join(TOP, "build")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def pct(v, p):
    if not v:
        return float("nan")
    s = sorted(v)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def micro():
    exe = "/tmp/vft_auth_micro.%d" % os.getpid()
    src = [os.path.join(TOP, "bench", "vft_auth_micro.c"),
           os.path.join(TOP, "src", "vmft-bridge", "vft_auth.c"),
           os.path.join(TOP, "src", "vmft-bridge", "vft_proto.c")]
    subprocess.run(["cc", "-O2", "-I", BUILD, "-I", os.path.join(TOP, "src", "vmft-bridge")] +
                   src + ["-o", exe, "-lcrypto", "-lxxhash"], check=True)
    try:
        return subprocess.run([exe], stdout=subprocess.PIPE, text=True, check=True).stdout
    finally:
        os.unlink(exe)


def load_vmft():
    import importlib.util
    os.environ.setdefault("top_srcdir", TOP)
    os.environ.setdefault("VMFT_LAB", "authb")
    spec = importlib.util.spec_from_file_location(
        "vmft_lab", os.path.join(TOP, "tests", "integration", "vmft.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


FILL_FROM = 96 << 20


def one_run(v, auth, epochs, resyncs):
    v.stop_engines()
    v.clean_state((1, 2))
    v.write_conf()
    conf = v.conf_path()
    text = open(conf).read()
    # no template (every run a plain full sync), and the switch under test
    text = text.replace("vmft {\n", "vmft {\n    templates: no\n    authenticate: %s\n"
                        % ("yes" if auth else "no"), 1)
    open(conf, "w").write(text)
    v.start_engine(2, "backup")
    v.start_engine(1, "primary")
    v.wait_for("guest output", lambda: v.counters(v.console_text()), timeout=60)
    st = v.wait_protected(1, timeout=120)
    # RAM above 96 MiB filled with random data (as bench/vmft_sync_bench.py):
    # the full syncs then carry real pages, every one of them MACed
    ram = v.in_blade(1, v.status(1)["ram_path"])
    rng = random.Random(7)
    with open(ram, "r+b") as f:
        f.seek(FILL_FROM)
        for _ in range(((v.MEM_MB << 20) - FILL_FROM) >> 20):
            f.write(rng.randbytes(1 << 20))
    syncs = []
    for _ in range(resyncs):
        n = v.status(1).get("full_syncs", 0)
        v.stop_one(2)
        v.start_engine(2, "backup")
        syncs.append(v.resynced(1, n, timeout=180)["last_sync"])
    st = v.wait_protected(1, timeout=120)
    e0 = st.get("epoch", 0)
    c0 = st.get("transmission", {})
    b0 = v.status(2)
    v.wait_for("%d epochs" % epochs, lambda: v.status(1).get("epoch", 0) >= e0 + epochs,
               timeout=epochs * 2.0 + 30, step=0.2)
    st = v.status(1)
    c1 = st.get("transmission", {})
    b1 = v.status(2)
    rx_bytes = b1.get("bytes_total", 0) - b0.get("bytes_total", 0)
    rx_mac = (b1.get("transmission", {}).get("rx_mac_cpu_ms", 0) -
              b0.get("transmission", {}).get("rx_mac_cpu_ms", 0))
    s = v.ctl(1, "samples", timeout=10)
    n = min(epochs, len(s["pause_ms"]))
    pause, send, nbytes = s["pause_ms"][-n:], s["send_ms"][-n:], s["bytes"][-n:]
    page_bytes = c1.get("page_bytes", 0) - c0.get("page_bytes", 0)
    mac_ms = c1.get("mac_cpu_ms", 0) - c0.get("mac_cpu_ms", 0)
    return {"auth": auth, "authenticated": c1.get("authenticated"),
            "sync_ms": statistics.median(x.get("ms", 0) for x in syncs),
            "hs_ms": statistics.median(x.get("handshake_ms", 0) for x in syncs),
            "ram_ms": statistics.median(x.get("ram_ms", 0) for x in syncs),
            "pages": statistics.median(x.get("pages_sent", 0) for x in syncs),
            "pause_p50": pct(pause, 50), "pause_p99": pct(pause, 99),
            "send_p50": pct(send, 50), "send_p99": pct(send, 99),
            "bytes_p50": pct(nbytes, 50), "n": n,
            "mac_ms_per_gib": mac_ms / (page_bytes / float(1 << 30)) if page_bytes else 0,
            "rx_mac_ms_per_gib": rx_mac / (rx_bytes / float(1 << 30)) if rx_bytes else 0,
            "mac_ms_syncs": c0.get("mac_cpu_ms", 0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mem", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--resyncs", type=int, default=3)
    ap.add_argument("--pps", type=int, default=20000)
    ap.add_argument("--out", default=os.path.join(TOP, "bench", "results", "vmft-auth.md"))
    ap.add_argument("--micro-only", action="store_true")
    args = ap.parse_args()
    m = micro()
    log(m)
    runs = []
    v = None
    if not args.micro_only:
        if os.geteuid() != 0:
            sys.exit("needs root (the shelf lab)")
        v = load_vmft()
        v.NET = False
        v.lab_cmd("up", "--blades", "2", timeout=180)
        try:
            lab = v.Lab.load(v.LAB)
            v.MEM_MB = args.mem
            v.guestmod.make_image(lab, v.VM, pps=args.pps, disk=v.DISK, net=False,
                                  disk_pio=True)
            for r in range(args.rounds):
                for auth in (True, False):
                    row = one_run(v, auth, args.epochs, args.resyncs)
                    log("round %d auth %s: %s" % (r + 1, auth, row))
                    runs.append(row)
        finally:
            v.stop_engines()
            v.lab_cmd("down", check_rc=False, timeout=180)
    with open(args.out, "w") as f:
        f.write(report(args, m, runs))
    log("wrote " + args.out)


def report(args, m, runs):
    out = ["# The replication link's authentication: what it costs", "",
           "`bench/vmft_auth_bench.py` (%s, %s; load average %s at the end)." % (
               time.strftime("%Y-%m-%d"), os.uname().machine,
               " ".join("%.1f" % x for x in os.getloadavg())), ""]
    out += ["## On this CPU", "", "```", m.strip(), "```", ""]
    if runs:
        out += ["## On the lab: %d MiB guest, counter guest at %d pages/s, %d epochs per run"
                % (args.mem, args.pps, args.epochs), "",
                "Each run: the guest's RAM above 96 MiB filled with random data, then "
                "--resyncs full syncs (backup engine restarted, templates off; medians "
                "below), then the epochs.", "",
                "| authenticate | full sync (ms) | its handshake (ms) | RAM copy (ms) | pages "
                "| pause p50 / p99 (ms) | send p50 / p99 (ms) | bytes/epoch p50 | MAC CPU "
                "(ms per GiB of pages) | backup MAC CPU (ms per GiB received) |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in runs:
            out.append("| %s | %.0f | %.1f | %.0f | %d | %.1f / %.1f | %.1f / %.1f | %.0f | %.0f "
                       "| %.0f |"
                       % ("yes" if r["auth"] else "no", r["sync_ms"], r["hs_ms"], r["ram_ms"],
                          r["pages"], r["pause_p50"], r["pause_p99"], r["send_p50"],
                          r["send_p99"], r["bytes_p50"], r["mac_ms_per_gib"],
                          r["rx_mac_ms_per_gib"]))
        for auth in (True, False):
            rs = [r for r in runs if r["auth"] == auth]
            if rs:
                out.append("")
                out.append("authenticate %s, medians over %d runs: handshake %.1f ms, full "
                           "sync %.0f ms, pause p50 %.1f ms, send p50 %.1f ms" % (
                               "yes" if auth else "no", len(rs),
                               statistics.median(r["hs_ms"] for r in rs),
                               statistics.median(r["sync_ms"] for r in rs),
                               statistics.median(r["pause_p50"] for r in rs),
                               statistics.median(r["send_p50"] for r in rs)))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
