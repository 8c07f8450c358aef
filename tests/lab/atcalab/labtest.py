"""Helpers for tests that drive a lab: results (ok/check/skip), the atca-lab
command, atca-ftctl inside a blade, polling, and looking into a blade from
the host. One object per lab:

    t = LabTest("soak1", top_srcdir, top_builddir)
    t.lab_cmd("up", "--blades", 3)
    t.eventually("three daemons", lambda: t.ctl_json(1, "pairs")["cluster"]["daemons"]
                 == [1, 2, 3], timeout=20)
    t.check(cond, "what was expected")
    ...
    t.lab_cmd("down", check_rc=False)
    sys.exit(t.exit_code())

Every failed check is kept in t.fails; skip() exits 77 with a visible reason.
"""

import json
import os
import re
import subprocess
import sys
import time

from . import blade as blademod
from .state import Lab
from .util import LabError

# what a poll may raise while the lab changes under it (a blade powered
# off, a daemon restarting, a half-written reply)
TRANSIENT = (LabError, KeyError, ValueError, IndexError, TypeError, OSError,
             subprocess.TimeoutExpired)


class LabTest:
    def __init__(self, name, top=None, build=None, quiet=False):
        self.name = name
        self.top = top or os.environ.get("top_srcdir") or os.path.abspath(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
        self.build = build or os.environ.get("top_builddir") or os.path.join(self.top, "build")
        self.atca_lab = os.path.join(self.top, "tests", "lab", "atca-lab")
        self.ftd = os.path.join(self.build, "src", "daemon", "atca-ftd")
        self.ftctl = os.path.join(self.build, "src", "cli", "atca-ftctl")
        self.engine = os.path.join(self.build, "src", "vmft-bridge", "atca-vmft")
        self.fails = []
        self.quiet = quiet

    # ------------------------------------------------------------ results

    def ok(self, msg):
        if not self.quiet:
            print("ok   " + msg, flush=True)

    def check(self, cond, msg):
        if cond:
            self.ok(msg)
        else:
            print("FAIL " + msg, flush=True)
            self.fails.append(msg)
        return bool(cond)

    @staticmethod
    def skip(why):
        print("SKIP " + why, flush=True)
        sys.exit(77)

    def exit_code(self):
        return 1 if self.fails else 0

    # ------------------------------------------------------------ the lab

    def lab(self):
        return Lab.load(self.name)

    def lab_cmd(self, *args, check_rc=True, timeout=120):
        """atca-lab --name NAME ARGS...; LabError if it fails (check_rc)."""
        r = subprocess.run([self.atca_lab, "--name", self.name] + [str(a) for a in args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        if check_rc and r.returncode != 0:
            raise LabError("atca-lab %s: %s%s" % (" ".join(map(str, args)), r.stdout.strip(),
                                                  r.stderr.strip()))
        return r

    def ctl(self, slot, *args, timeout=30):
        """atca-ftctl in blade slot: (rc, stdout, stderr); rc -1 if the blade
        is powered off."""
        try:
            r = blademod.run_in(self.lab(), slot, [self.ftctl] + [str(a) for a in args],
                                check=False, timeout=timeout)
        except LabError as e:
            return -1, "", str(e)
        return r.returncode, r.stdout, r.stderr

    def ctl_json(self, slot, *args, timeout=30):
        """atca-ftctl --json ... in blade slot, parsed; {"error": ...} else."""
        try:
            rc, out, err = self.ctl(slot, "--json", *args, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": "atca-ftctl timed out"}
        try:
            doc = json.loads(out)
            return doc if isinstance(doc, dict) else {"error": "not an object", "doc": doc}
        except ValueError:
            return {"error": ("rc %d: %s %s" % (rc, out, err)).strip()[-300:]}

    # ------------------------------------------------------------ polling

    @staticmethod
    def wait(fn, timeout, step=0.2):
        """fn()'s first true value within timeout s, else None (exceptions
        of a changing lab count as false)."""
        end = time.monotonic() + timeout
        while True:
            try:
                v = fn()
            except TRANSIENT:
                v = None
            if v:
                return v
            if time.monotonic() >= end:
                return None
            time.sleep(max(0.0, min(step, end - time.monotonic())))

    def eventually(self, msg, fn, timeout=20.0, step=0.2):
        t0 = time.monotonic()
        v = self.wait(fn, timeout, step)
        if v:
            self.ok("%s (%.2f s)" % (msg, time.monotonic() - t0))
        else:
            self.check(False, "%s (not within %.0f s)" % (msg, timeout))
        return v

    # ------------------------------------------------------------ blades

    def powered(self, slot, lab=None):
        lab = lab or self.lab()
        b = lab.blade(slot)
        return b.get("power") != "off" and bool(b.get("holder")) and \
            os.path.exists("/proc/%d" % b["holder"])

    def holder(self, slot, lab=None):
        try:
            return blademod.holder_of(lab or self.lab(), slot)
        except LabError:
            return None

    def in_blade(self, slot, path, lab=None):
        """A path inside blade slot's mount namespace, seen from the host
        (None if the blade is off)."""
        h = self.holder(slot, lab)
        return None if h is None else "/proc/%d/root%s" % (h, path)

    def var_path(self, slot, *parts):
        """A path under the blade's private /var (its overlay's upper dir,
        there even while the blade is off)."""
        return os.path.join(self.lab().blade_dir(slot), "var.upper", *parts)

    def procs(self, slot, lab=None):
        """(pid, comm, state, argv) of each process in the blade's PID
        namespace."""
        h = self.holder(slot, lab)
        if h is None:
            return []
        try:
            want = os.readlink("/proc/%d/ns/pid" % h)
        except OSError:
            return []
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                if os.readlink("/proc/%s/ns/pid" % d) != want:
                    continue
                with open("/proc/%s/comm" % d) as f:
                    comm = f.read().strip()
                with open("/proc/%s/stat" % d) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = f.read().decode(errors="replace").split("\0")
            except (OSError, IndexError):
                continue
            out.append((int(d), comm, state, argv))
        return out

    def daemon_pid(self, slot, name="atca-ftd"):
        lab = self.lab()
        return blademod.daemon_pid(lab, slot, name)

    def log_path(self, slot):
        """atca-ftd's log file of the blade (its /var/log/atca-ft)."""
        return self.var_path(slot, "log", "atca-ft", "atca-ftd.log")

    def log_lines(self, slot, pattern=None, since=0):
        """Lines of the blade's atca-ftd log from byte offset since that
        match pattern (a regex), and the offset of the end."""
        path = self.log_path(slot)
        try:
            with open(path, "rb") as f:
                f.seek(since)
                data = f.read()
        except OSError:
            return [], since
        end = since + len(data)
        text = data.decode(errors="replace")
        lines = text.split("\n")[:-1]
        if pattern:
            rx = re.compile(pattern)
            lines = [ln for ln in lines if rx.search(ln)]
        return lines, end

    def log_size(self, slot):
        try:
            return os.stat(self.log_path(slot)).st_size
        except OSError:
            return 0


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return "(%s)\n" % e


def have_tools(*tools):
    """The first of tools that is not installed, or None."""
    for tool in tools:
        if subprocess.run(["sh", "-c", "command -v " + tool], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode:
            return tool
    return None
