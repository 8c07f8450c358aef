"""Small helpers shared by the lab: running commands, waiting, killing by PID."""

import os
import signal
import subprocess
import sys
import time


class LabError(Exception):
    """A failure the user should see as one clear line (no traceback)."""


VERBOSE = False


def log(msg):
    print("atca-lab: " + msg, file=sys.stderr, flush=True)


def debug(msg):
    if VERBOSE:
        log(msg)


def run(cmd, check=True, capture=True, input=None, timeout=60, env=None):
    """Runs cmd (a list); returns CompletedProcess. Raises LabError on failure."""
    debug("run: " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, input=input, capture_output=capture, text=True,
                           timeout=timeout, env=env)
    except FileNotFoundError:
        raise LabError("%s: command not found (is its Debian package installed?)" % cmd[0])
    except subprocess.TimeoutExpired:
        raise LabError("%s: timed out after %s s" % (" ".join(cmd), timeout))
    if check and p.returncode != 0:
        err = (p.stderr or p.stdout or "").strip().splitlines()
        raise LabError("%s failed (exit %d)%s" % (" ".join(cmd), p.returncode,
                                                   ": " + err[-1] if err else ""))
    return p


def spawn(cmd, logfile, env=None, preexec=None):
    """Starts a long-running process detached from our session; returns its PID.

    Its output goes to logfile. It does not become a child we must reap: the
    double fork makes init its parent, so the lab tool can exit while the
    process runs, and a later "atca-lab down" kills it by PID."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setsid()
            pid2 = os.fork()
            if pid2 != 0:
                os.write(w, str(pid2).encode())
                os._exit(0)
            fd = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.closerange(3, 65536)
            if preexec:
                preexec()
            os.execvpe(cmd[0], cmd, env if env is not None else os.environ)
        except BaseException as e:  # noqa: B902 - report anything in the child
            try:
                os.write(2, ("spawn %s: %s\n" % (cmd[0], e)).encode())
            finally:
                os._exit(127)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 64)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    if not data:
        raise LabError("cannot start %s" % cmd[0])
    debug("spawned %s as pid %s" % (" ".join(cmd), data.decode()))
    return int(data)


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def kill(pid, sig=signal.SIGTERM, wait=5.0):
    """Sends sig to pid and waits for it to go; SIGKILL after wait seconds."""
    if not alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def wait_until(what, fn, timeout=10.0, interval=0.05):
    """Polls fn() until it returns something true; raises LabError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except LabError as e:
            last = e
        if time.monotonic() > deadline:
            raise LabError("timed out after %.0f s waiting for %s%s" % (
                timeout, what, " (%s)" % last if last else ""))
        time.sleep(interval)


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def direct_children(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                if int(f.read().split(") ")[-1].split()[1]) == pid:
                    out.append(int(d))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(out)
