#!/usr/bin/env python3
"""QEMU's own COLO (x-colo) on this host, for comparison with atca-vmft.

  bench/colo_bench.py [--mem 256,1024] [--pps 1000,20000] [--delay-ms 100]
                      [--checkpoints 50] [--failovers 5]
                      [--transport tcp,tcp-nodelay] [--timeout 60]

The counter guest (tests/lab/guest: prints "C n" every 10 ms, dirties PPS
pages/s, here without disk I/O and without NIC) runs in a primary QEMU; a
secondary QEMU on the same host receives it by migration with x-colo and then
gets a checkpoint every x-checkpoint-delay ms. No block replication and no
colo-compare/filter objects: the guest never writes its disk and has no NIC,
and migration/colo.c only calls replication_*_all() and the filter notifiers,
which do nothing when none exist; checkpoints come from the timer only. Each
side has its own copy of the disk image: COLO keeps the primary's disks active
while the secondary activates its own, so one shared image would clash on
QEMU's image lock.

colo-pause: how long the primary guest is stopped per checkpoint, from the
  primary's QMP events: colo_do_checkpoint_transaction() stops it with
  vm_stop_force_state(RUN_STATE_COLO) (STOP) and restarts it with vm_start()
  (RESUME) once the secondary reports 'vmstate-loaded'; QEMU stamps both
  with the wall clock in microseconds. The first 3 checkpoints are skipped.
  Cross-check serial_gap_*: the gap between the guest's "C n" lines around a
  pause minus the 10 ms period (only pauses with a line on both sides before
  the neighbouring pauses; at high dirty rates the guest itself prints late,
  so it reads above the pause). x-checkpoint-delay counts start to start
  (colo_checkpoint_notify re-arms the timer when it fires), so the guest only
  runs delay - pause per period: stopped_pct. pps_measured is the guest's own
  count; it falls short of pps when the guest is stopped most of the time
  (after a stop it catches up at most 100 ms worth of pages).
colo-failover: SIGKILL the primary at a random phase of the checkpoint
  cycle, then x-colo-lost-heartbeat on the secondary. p*_ms: that order ->
  the secondary's RESUME event following its MIGRATION 'completed' event (a
  checkpoint the secondary was loading when the primary died may still end
  in its own RESUME after the order); query-status is then 'running' with
  COLO mode 'none'. serial_*: the order -> the first "C n" line arriving
  after that RESUME. Each repetition sets COLO up from scratch, at the first
  --pps value. (strace: most of it is the secondary's main thread unmapping
  its RAM-sized COLO cache before vm_start, ~55 ms per GiB.)

Transports: 'tcp' is QEMU's own -incoming tcp:127.0.0.1:PORT / migrate
tcp:... Its sockets keep Nagle on, and COLO's small control messages then
wait for the peer's delayed ACK (with -trace colo_*: 'vmstate-size' and
'vmstate-loaded' each arrive ~40 ms after they were sent). 'tcp-nodelay' is
the same loopback TCP, but connected by this script with TCP_NODELAY on both
ends and handed over as fd: (getfd + migrate fd:NAME on the primary,
-incoming fd:N on the secondary). 'unix' is a UNIX socket.

p99 is nearest-rank: with n <= 100 it is the maximum. JSON lines on stdout,
progress on stderr. If COLO cannot be brought up: {"kind":"colo-error",
"reason":...} and exit 3.
"""

import argparse
import json
import math
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
GUEST_SRC = os.path.join(TOP, "tests", "lab", "guest")
sys.path.insert(0, GUEST_SRC)
import mkguest  # noqa: E402  (the lab's image tool; atcalab itself wants a lab)

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")
PERIOD_MS = 10.0   # the guest's print period
DISK_LBA = 2047    # as tests/lab/atcalab/guest.py (a 1 MiB image)
WARM = 3           # checkpoints skipped: the first ones carry the boot's pages
T0 = time.monotonic()


class ColoError(Exception):
    pass


def log(msg):
    print("[%7.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj), flush=True)


def pct(vals, p):
    """Nearest-rank percentile."""
    s = sorted(vals)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def summary(vals, prefix=""):
    r = lambda v: round(v, 2)  # noqa: E731
    return {prefix + "n": len(vals), prefix + "p50_ms": r(pct(vals, 50)),
            prefix + "p99_ms": r(pct(vals, 99)), prefix + "max_ms": r(max(vals)),
            prefix + "min_ms": r(min(vals)), prefix + "mean_ms": r(sum(vals) / len(vals))}


class Ctx:
    """What this run started or created, undone by cleanup()."""

    def __init__(self, args):
        self.args = args
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix="colo-bench-")
        # guest RAM on tmpfs, as atca-vmft has it (memory-backend-file, share=on)
        self.shm = tempfile.mkdtemp(prefix="colo-bench-", dir="/dev/shm")
        self.kvm = os.access("/dev/kvm", os.R_OK | os.W_OK)
        self.binary = None
        self.seq = 0

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.shm, ignore_errors=True)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode:
        raise ColoError("%s: %s" % (" ".join(cmd), r.stdout.strip()))


def build_image(ctx, path, pps):
    """tests/lab/atcalab/guest.py build_binary + make_image, disk and net off."""
    if ctx.binary is None:
        obj, elf = os.path.join(ctx.dir, "guest.o"), os.path.join(ctx.dir, "guest.elf")
        ctx.binary = os.path.join(ctx.dir, "guest.bin")
        run(["as", "--64", "-I", GUEST_SRC, "-o", obj, os.path.join(GUEST_SRC, "guest.S")])
        run(["ld", "-nostdlib", "-T", os.path.join(GUEST_SRC, "guest.ld"), "-o", elf, obj])
        run(["objcopy", "-O", "binary", elf, ctx.binary])
    img = bytearray(open(ctx.binary, "rb").read())
    p = mkguest.read_params(img)
    p.update(pps=pps, period_us=int(PERIOD_MS * 1000), disk_lba=DISK_LBA, flags=mkguest.F_STATS)
    img += bytes(max(1 << 20, (DISK_LBA + 1) * 512) - len(img))
    mkguest.write_params(img, p)
    with open(path, "wb") as f:
        f.write(img)


def connect_unix(path, proc, timeout):
    """QEMU creates its server sockets a moment after it starts."""
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return s
        except OSError:
            s.close()
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ColoError("QEMU socket %s did not open (QEMU exit status %s)"
                                % (path, proc.poll()))
            time.sleep(0.02)


class Qmp:
    """QMP client; a reader thread files events apart from replies, each event
    with QEMU's timestamp in seconds as "t"."""

    def __init__(self, path, proc, timeout):
        self.sock = connect_unix(path, proc, timeout)
        self.rfile = self.sock.makefile("rb")
        self.rfile.readline()  # greeting
        self.events, self.closed, self.timeout = [], False, timeout
        self.cv = threading.Condition()
        self.replies = queue.Queue()
        threading.Thread(target=self._reader, daemon=True).start()
        self.cmd("qmp_capabilities")

    def _reader(self):
        try:
            for line in self.rfile:
                msg = json.loads(line)
                if "event" not in msg:
                    self.replies.put(msg)
                    continue
                ts = msg["timestamp"]
                msg["t"] = ts["seconds"] + ts["microseconds"] / 1e6
                with self.cv:
                    self.events.append(msg)
                    self.cv.notify_all()
        except (OSError, ValueError):
            pass
        with self.cv:
            self.closed = True
            self.cv.notify_all()
        self.replies.put(None)

    def cmd(self, execute, fds=(), **args):
        msg = {"execute": execute, **({"arguments": args} if args else {})}
        data = json.dumps(msg).encode() + b"\n"
        if fds:
            socket.send_fds(self.sock, [data], list(fds))
        else:
            self.sock.sendall(data)
        try:
            r = self.replies.get(timeout=self.timeout)
        except queue.Empty:
            raise ColoError("QMP %s: no reply in %ss" % (execute, self.timeout))
        if r is None:
            raise ColoError("QMP %s: QEMU closed the monitor" % execute)
        if "error" in r:
            raise ColoError("QMP %s %s: %s" % (execute, json.dumps(args), r["error"].get("desc")))
        return r["return"]

    def wait_event(self, pred, timeout, what):
        """(index, event) of the first event with pred(index, event)."""
        deadline = time.monotonic() + timeout
        i = 0
        with self.cv:
            while True:
                while i < len(self.events):  # each event is tested once
                    if pred(i, self.events[i]):
                        return i, self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise ColoError("timed out waiting for %s" % what)
                self.cv.wait(left)


class Serial:
    """The guest's serial port (socket chardev): complete lines, each with the
    wall-clock time it arrived (the clock of QMP timestamps)."""

    def __init__(self, path, proc, timeout):
        self.sock = connect_unix(path, proc, timeout)
        self.lines = []
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        buf = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            now = time.time()
            *done, buf = (buf + data).split(b"\n")
            self.lines += [(now, ln.decode(errors="replace").strip()) for ln in done]

    def counters(self, since=0.0):
        return [(t, int(ln[2:])) for t, ln in list(self.lines)
                if t >= since and ln.startswith("C ") and ln[2:].isdigit()]


class Side:
    """One QEMU with atca-vmft's command line (build_argv in vft_eng_qemu.c):
    pc, KVM, memory-backend-file share=on, IDE raw cache=none, serial on a
    socket chardev; the secondary adds -incoming and a trace of its flushes."""

    def __init__(self, ctx, name, mem, img, incoming=None, pass_fds=()):
        self.name = name
        path = lambda ext: os.path.join(ctx.dir, name + ext)  # noqa: E731
        self.log_path, self.trace_path = path(".log"), path(".trace")
        self.ram_path = os.path.join(ctx.shm, name + ".ram")
        self.argv = [
            QEMU, "-name", "colo-%s,debug-threads=on" % name,
            "-machine", "pc,accel=%s,memory-backend=mem" % ("kvm" if ctx.kvm else "tcg"),
            "-object", "memory-backend-file,id=mem,size=%dM,mem-path=%s,share=on"
            % (mem, self.ram_path),
            "-m", "%dM" % mem, "-smp", "1", "-nodefaults", "-display", "none",
            "-drive", "file=%s,format=raw,if=ide,cache=none" % img,
            "-chardev", "socket,id=ser0,path=%s,server=on,wait=off" % path(".ser"),
            "-serial", "chardev:ser0",
            "-qmp", "unix:%s,server=on,wait=off" % path(".qmp")]
        if incoming:
            # -msg timestamp=on makes trace lines PID@wall-clock:...
            self.argv += ["-trace", "enable=colo_flush_ram_cache_begin", "-D", self.trace_path,
                          "-msg", "timestamp=on", "-incoming", incoming]
        # own session: a Ctrl-C reaches this script only, which kills by PID
        with open(self.log_path, "w") as lf:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=subprocess.STDOUT, pass_fds=pass_fds,
                                         start_new_session=True)
        ctx.procs.append(self.proc)
        self.qmp = Qmp(path(".qmp"), self.proc, ctx.args.timeout)
        self.serial = Serial(path(".ser"), self.proc, ctx.args.timeout)

    def log_tail(self):
        with open(self.log_path) as f:
            return " | ".join([ln for ln in f.read().splitlines()
                               if "host doesn't support requested feature" not in ln][-5:])

    def flushed_pages(self, t0, t1):
        """dirty_pages of colo_flush_ram_cache_begin between t0 and t1."""
        with open(self.trace_path) as f:
            m = re.findall(r"\d+@([\d.]+):colo_flush_ram_cache_begin dirty_pages (\d+)", f.read())
        return [int(n) for t, n in m if t0 <= float(t) <= t1]

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for s in (self.qmp.sock, self.serial.sock):
            s.close()
        try:  # on tmpfs a dead guest's RAM would stay in memory
            os.unlink(self.ram_path)
        except FileNotFoundError:
            pass


class Pair:
    """A primary and a secondary QEMU, brought into COLO."""

    def __init__(self, ctx, mem, pps, transport):
        self.ctx = ctx
        ctx.seq += 1
        tag = str(ctx.seq)
        imgs = [os.path.join(ctx.dir, "%s%s.img" % (s, tag)) for s in ("pri", "sec")]
        build_image(ctx, imgs[0], pps)
        shutil.copyfile(imgs[0], imgs[1])
        fds, socks = (), []
        if transport == "tcp":
            with socket.socket() as s:  # a free port
                s.bind(("127.0.0.1", 0))
                incoming = uri = "tcp:127.0.0.1:%d" % s.getsockname()[1]
        elif transport == "unix":
            incoming = uri = "unix:" + os.path.join(ctx.dir, "mig%s.sock" % tag)
        else:  # tcp-nodelay
            with socket.socket() as ls:
                ls.bind(("127.0.0.1", 0))
                ls.listen(1)
                cli = socket.create_connection(ls.getsockname())
                srv = ls.accept()[0]
            socks = [cli, srv]
            for s in socks:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fds, incoming, uri = (srv.fileno(),), "fd:%d" % srv.fileno(), "fd:mig"
        self.qmp_seq = []
        try:
            self.sec = Side(ctx, "sec" + tag, mem, imgs[1], incoming=incoming, pass_fds=fds)
            self.pri = Side(ctx, "pri" + tag, mem, imgs[0])
            if socks:
                self.q(self.pri, "getfd", fds=[cli.fileno()], fdname="mig")
        finally:
            for s in socks:  # QEMU holds its own copies
                s.close()
        try:
            self._bring_up(ctx.args, uri)
        except ColoError as e:
            raise ColoError("%s [primary log: %s] [secondary log: %s]"
                            % (e, self.pri.log_tail(), self.sec.log_tail()))

    def q(self, side, execute, fds=(), **args):
        self.qmp_seq.append({"on": side.name.rstrip("0123456789"), "execute": execute,
                             **({"arguments": args} if args else {})})
        return side.qmp.cmd(execute, fds=fds, **args)

    def _bring_up(self, a, uri):
        deadline = time.monotonic() + a.timeout
        while not self.pri.serial.counters():  # protect a guest that already counts
            if self.pri.proc.poll() is not None or time.monotonic() > deadline:
                raise ColoError("primary guest printed no 'C n' line")
            time.sleep(0.05)
        colo = [{"capability": "x-colo", "state": True}]
        # events: the secondary's MIGRATION 'completed' marks the failover
        self.q(self.sec, "migrate-set-capabilities",
               capabilities=colo + [{"capability": "events", "state": True}])
        self.q(self.pri, "migrate-set-capabilities", capabilities=colo)
        # max-bandwidth: the first full copy is not held to the 32 MiB/s default
        self.q(self.pri, "migrate-set-parameters", **{"x-checkpoint-delay": a.delay_ms,
                                                      "max-bandwidth": 1 << 40})
        self.q(self.pri, "migrate", uri=uri)
        while True:
            st = self.pri.qmp.cmd("query-migrate")
            if st.get("status") == "colo":
                break
            dead = [s.name for s in (self.pri, self.sec) if s.proc.poll() is not None]
            if st.get("status") in ("failed", "cancelled") or dead:
                raise ColoError("migration %s%s: %s" % (st.get("status"),
                                " (%s exited)" % ",".join(dead) if dead else "",
                                st.get("error-desc", "")))
            if time.monotonic() > deadline:
                raise ColoError("no COLO in %ss (migration %s)" % (a.timeout, st.get("status")))
            time.sleep(0.05)
        self.colo_at = time.time()
        # the secondary switches once it has loaded the first full copy
        while self.sec.qmp.cmd("query-colo-status")["mode"] != "secondary":
            if self.sec.proc.poll() is not None or time.monotonic() > deadline:
                raise ColoError("secondary did not enter COLO mode in %ss" % a.timeout)
            time.sleep(0.05)

    def wait_resumes(self, n, timeout):
        """Until the primary has resumed n times since COLO began."""
        count = [0]

        def pred(_i, e):
            count[0] += e["event"] == "RESUME" and e["t"] >= self.colo_at
            return count[0] >= n
        self.pri.qmp.wait_event(pred, timeout, "%d COLO checkpoints" % n)

    def kill(self):
        for s in (self.pri, self.sec):
            s.kill()
        self.ctx.procs = [p for p in self.ctx.procs if p.poll() is None]


def measure_pause(ctx, mem, pps, transport):
    a = ctx.args
    pair = Pair(ctx, mem, pps, transport)
    try:
        pair.wait_resumes(WARM + a.checkpoints + 1,
                          a.timeout + a.checkpoints * (a.delay_ms / 1000.0 + 1))
        ev = [e for e in list(pair.pri.qmp.events)
              if e["event"] in ("STOP", "RESUME") and e["t"] >= pair.colo_at]
        pauses = [(x["t"], y["t"]) for x, y in zip(ev, ev[1:])
                  if x["event"] == "STOP" and y["event"] == "RESUME"]
        pauses = pauses[WARM:WARM + a.checkpoints]
        ms = [(e - s) * 1000 for s, e in pauses]
        periods = [(y[0] - x[0]) * 1000 for x, y in zip(pauses, pauses[1:])]
        lines = [t for t, _ in pair.pri.serial.counters(since=pauses[0][0] - 1)]
        gaps = []
        for k, (s, e) in enumerate(pauses):
            lo = pauses[k - 1][1] if k else s - 1
            hi = pauses[k + 1][0] if k + 1 < len(pauses) else e + 1
            before = [t for t in lines if lo <= t <= s]
            after = [t for t in lines if e <= t <= hi]
            if before and after:
                gaps.append(max(0.0, (after[0] - before[-1]) * 1000 - PERIOD_MS))
        # the guest's own count of pages dirtied ("S t=.. dirtied=..")
        st = [dict(re.findall(r"(\w+)=(\d+)", ln)) for _, ln in pair.pri.serial.lines
              if ln.startswith("S ")]
        pps_meas = None
        if len(st) >= 2 and int(st[-1]["t"]) > int(st[0]["t"]):
            pps_meas = round((int(st[-1]["dirtied"]) - int(st[0]["dirtied"]))
                             / (int(st[-1]["t"]) - int(st[0]["t"])))
        res = {"kind": "colo-pause", "transport": transport, "mem_mib": mem, "pps": pps,
               "pps_measured": pps_meas, "delay_ms": a.delay_ms, **summary(ms),
               "period_p50_ms": round(pct(periods, 50), 2),
               "stopped_pct": round(100 * sum(ms[:-1]) / sum(periods), 1)}
        if gaps:
            res.update(summary(gaps, "serial_gap_"))
        # query-migrate has no RAM counters in COLO state; the secondary's
        # trace gives the pages it flushes per checkpoint (sent + its own)
        flush = pair.sec.flushed_pages(pauses[0][0], pauses[-1][1])
        if flush:
            res.update(svm_flush_pages_p50=pct(flush, 50), svm_flush_pages_max=max(flush))
        res.update(loadavg=round(os.getloadavg()[0], 2), accel="kvm" if ctx.kvm else "tcg",
                   method="primary QMP STOP->RESUME event timestamps")
        return res, pair
    finally:
        pair.kill()


def measure_failover(ctx, mem, pps, transport, rep):
    a = ctx.args
    pair = Pair(ctx, mem, pps, transport)
    pri, sec = pair.pri, pair.sec
    try:
        pair.wait_resumes(WARM, a.timeout)
        time.sleep(random.uniform(0, a.delay_ms / 1000.0 * 1.5))  # random phase
        os.kill(pri.proc.pid, signal.SIGKILL)
        t_kill = time.time()
        pri.proc.wait()
        t_order = time.time()
        sec.qmp.cmd("x-colo-lost-heartbeat")
        t_reply = time.time()
        done, _ = sec.qmp.wait_event(
            lambda i, e: e["event"] == "MIGRATION" and e["data"]["status"] == "completed",
            a.timeout, "the secondary's MIGRATION 'completed' event")
        _, ev = sec.qmp.wait_event(lambda i, e: i > done and e["event"] == "RESUME",
                                   a.timeout, "the secondary's RESUME after failover")
        deadline = time.monotonic() + a.timeout
        while True:
            st, cs = sec.qmp.cmd("query-status"), sec.qmp.cmd("query-colo-status")
            if st["status"] == "running" and cs["mode"] == "none":
                t_status = time.time()
                break
            if time.monotonic() > deadline:
                raise ColoError("secondary not running after failover: %s %s" % (st, cs))
            time.sleep(0.002)
        while len(sec.serial.counters(since=ev["t"])) < 2:
            if time.monotonic() > deadline:
                raise ColoError("secondary guest printed nothing after failover")
            time.sleep(0.005)
        (t1, c1), (_, c2) = sec.serial.counters(since=ev["t"])[:2]
        if c2 <= c1:
            raise ColoError("secondary guest counter did not advance (%d -> %d)" % (c1, c2))

        def stopped(side):  # in a checkpoint when the primary died?
            last = [e["event"] for e in list(side.qmp.events)
                    if e["event"] in ("STOP", "RESUME") and e["t"] < t_order]
            return bool(last) and last[-1] == "STOP"
        seen = []  # the secondary's events around the failover, ms from the order
        for e in list(sec.qmp.events):
            if e["t"] >= t_kill - 0.5:
                tag = e.get("data", {}).get("reason") or e.get("data", {}).get("status")
                seen.append([e["event"] + ("(%s)" % tag if tag else ""),
                             round((e["t"] - t_order) * 1000, 2)])
        ms = lambda t: round((t - t_order) * 1000, 2)  # noqa: E731
        return {"rep": rep, "running_ms": ms(ev["t"]), "serial_ms": ms(t1),
                "reply_ms": ms(t_reply), "status_seen_ms": ms(t_status),
                "pvm_stopped": stopped(pri), "svm_stopped": stopped(sec), "sec_events": seen}
    finally:
        pair.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    ap.add_argument("--mem", action="append", type=ints,
                    help="guest MiB, repeatable or comma list (default 256,1024)")
    ap.add_argument("--pps", type=ints, default=[1000, 20000],
                    help="guest dirty pages/s, comma list (default 1000,20000; "
                         "failovers use the first)")
    ap.add_argument("--delay-ms", type=int, default=100, help="x-checkpoint-delay (100)")
    ap.add_argument("--checkpoints", type=int, default=50, help="pauses measured per set (50)")
    ap.add_argument("--failovers", type=int, default=5,
                    help="failovers per memory size and transport (5)")
    ap.add_argument("--transport", default="tcp,tcp-nodelay",
                    help="comma list of tcp, tcp-nodelay, unix (default tcp,tcp-nodelay)")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per wait (60)")
    ap.add_argument("--seed", type=int, help="for the kill phase")
    a = ap.parse_args()
    a.mem = [m for ms in (a.mem or [[256, 1024]]) for m in ms]
    a.transport = a.transport.split(",")
    if set(a.transport) - {"tcp", "tcp-nodelay", "unix"} or not (a.mem and a.pps):
        ap.error("bad --transport, --mem or --pps")
    random.seed(a.seed)

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)
    ctx = Ctx(a)
    shown = False
    try:
        ver = subprocess.run([QEMU, "--version"], stdout=subprocess.PIPE, text=True)
        log(ver.stdout.splitlines()[0] + ("" if ctx.kvm else "  (no /dev/kvm: TCG)"))
        for tr in a.transport:
            for mem in a.mem:
                for pps in a.pps:
                    log("pause: %s, %d MiB, %d pages/s, delay %d ms, %d checkpoints"
                        % (tr, mem, pps, a.delay_ms, a.checkpoints))
                    res, pair = measure_pause(ctx, mem, pps, tr)
                    if not shown:
                        shown = True
                        log("primary:   " + " ".join(pair.pri.argv))
                        log("secondary: " + " ".join(pair.sec.argv))
                        for q in pair.qmp_seq:
                            log("QMP " + json.dumps(q))
                    log("  p50 %.1f ms, p99 %.1f ms, stopped %.1f%% (serial gap p50 %s ms)"
                        % (res["p50_ms"], res["p99_ms"], res["stopped_pct"],
                           res.get("serial_gap_p50_ms")))
                    emit(res)
                runs = []
                for rep in range(a.failovers):
                    r = measure_failover(ctx, mem, a.pps[0], tr, rep)
                    log("failover %s %d MiB #%d: running %.1f ms, serial %.1f ms%s"
                        % (tr, mem, rep, r["running_ms"], r["serial_ms"],
                           " (secondary was in a checkpoint)" if r["svm_stopped"] else ""))
                    runs.append(r)
                if runs:
                    emit({"kind": "colo-failover", "transport": tr, "mem_mib": mem,
                          "pps": a.pps[0], "delay_ms": a.delay_ms,
                          **summary([r["running_ms"] for r in runs]),
                          **summary([r["serial_ms"] for r in runs], "serial_"),
                          "loadavg": round(os.getloadavg()[0], 2),
                          "method": "x-colo-lost-heartbeat sent -> the secondary's RESUME "
                                    "(QMP timestamp) after MIGRATION completed; serial_*: "
                                    "-> first 'C n' line after it",
                          "runs": runs})
    except ColoError as e:
        emit({"kind": "colo-error", "reason": str(e)})
        log("COLO error: %s" % e)
        return 3
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        ctx.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
