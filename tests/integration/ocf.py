#!/usr/bin/env python3
"""The OCF resource agent agents/ocf/atca-ft-vm against real engines on the
shelf lab (run as root; exit 77 = skipped with a reason).

Two blades with atca-ftd (recovery in dry-run, vmft.restart_backup off: the
VM is Pacemaker's), the counter guest fg1 (tests/integration/vmft.py's
helpers, loaded as a module). The agent is installed for the test only,
into /usr/lib/ocf/resource.d/atca-ft/ (crm_resource 2.1 finds agents there
and nowhere else), and runs inside the blades as Pacemaker would run it:

- ocf-tester on blade 2, no primary anywhere: start (a backup engine),
  probes, monitor, notify, promote (a cold start: the guest boots on blade
  2), demote (the primary stops, a backup starts), stop, repeated;
- crm_resource --validate: the agent's exit codes for a good VM, an unknown
  VM (5) and a bad name (6);
- crm_resource --force-* as a cluster would drive a promotable clone:
  blade 1 started and promoted (cold start; the guest's console counter
  runs), blade 2 started (its backup synchronised: depth 10 passes),
  depths 10 and 20 on the primary, a promotion of blade 2 refused while
  blade 1's primary is connected, a switchover (demote blade 1, promote
  blade 2: the guest goes on, its counter never goes back), a failover
  (blade 2, the primary, loses power -- as a fenced node does -- and blade 1
  is promoted from its committed epoch), a monitor and a stop with atca-ftd
  down (the engine found and stopped by its process), a stop that leaves no
  engine and no QEMU.

Everything started is stopped by PID at the end, the lab taken down, the
agent removed.
"""

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

TOP = os.environ.get("top_srcdir") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT_SRC = os.path.join(TOP, "agents", "ocf", "atca-ft-vm")
OCF_ROOT = "/usr/lib/ocf"
PROVIDER_DIR = os.path.join(OCF_ROOT, "resource.d", "atca-ft")
INSTALLED = os.path.join(PROVIDER_DIR, "atca-ft-vm")
FAILS = []
CLEANUP = {"created_dir": False, "installed": False, "tmp": None}


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
    print("SKIP ocf: " + why, flush=True)
    sys.exit(77)


def load_vmft():
    """The engine lab test's helpers (lab, guest, atca-ftd) as a module."""
    os.environ.setdefault("top_srcdir", TOP)
    spec = importlib.util.spec_from_file_location(
        "vmft_lab", os.path.join(TOP, "tests", "integration", "vmft.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def preflight():
    if os.geteuid() != 0:
        skip("needs root (namespaces, QEMU, /usr/lib/ocf)")
    if not os.path.exists(os.path.join(OCF_ROOT, "lib", "heartbeat", "ocf-shellfuncs")):
        skip("resource-agents is not installed (no %s/lib/heartbeat/ocf-shellfuncs)" % OCF_ROOT)
    for tool, pkg in (("ocf-tester", "resource-agents"), ("crm_resource", "pacemaker-cli-utils")):
        if shutil.which(tool) is None:
            skip("%s is not installed (package %s)" % (tool, pkg))
    if os.path.exists(INSTALLED):
        skip("%s exists (an installed atca-ft): not replacing it for a test" % INSTALLED)


def install_agent():
    tmp = tempfile.mkdtemp(prefix="atca-ft-ocf.")
    CLEANUP["tmp"] = tmp
    os.chmod(tmp, 0o755)  # ocf-tester runs meta-data as nobody
    copy = os.path.join(tmp, "atca-ft-vm")
    shutil.copy(AGENT_SRC, copy)
    os.chmod(copy, 0o755)
    if not os.path.isdir(PROVIDER_DIR):
        os.makedirs(PROVIDER_DIR)
        CLEANUP["created_dir"] = True
    shutil.copy(AGENT_SRC, INSTALLED)
    os.chmod(INSTALLED, 0o755)
    CLEANUP["installed"] = True
    return copy


def uninstall_agent():
    if CLEANUP["installed"]:
        try:
            os.unlink(INSTALLED)
        except FileNotFoundError:
            pass
    if CLEANUP["created_dir"]:
        try:
            os.rmdir(PROVIDER_DIR)
        except OSError as e:
            print("note: %s not removed: %s" % (PROVIDER_DIR, e), flush=True)
    if CLEANUP["tmp"]:
        shutil.rmtree(CLEANUP["tmp"], ignore_errors=True)


class Ocf:
    """The agent inside the lab's blades."""

    def __init__(self, v):
        self.v = v

    def run(self, slot, cmd, timeout=180):
        lab = self.v.Lab.load(self.v.LAB)
        return self.v.blademod.run_in(lab, slot, cmd, check=False, timeout=timeout)

    def crm(self, slot, op, *opts, timeout_s=120):
        """crm_resource OP for fg1 on blade slot: (exit code, output)."""
        cmd = ["crm_resource", op, "--timeout=%ds" % timeout_s, "--class", "ocf",
               "--provider", "atca-ft", "--agent", "atca-ft-vm",
               "--option", "vm=" + self.v.VM, "--option", "ctl=" + self.v.CTL]
        for o in opts:
            cmd += ["--option", o]
        r = self.run(slot, cmd, timeout=timeout_s + 30)
        return r.returncode, (r.stdout + r.stderr).strip()

    def expect(self, slot, op, want, what, *opts, timeout_s=120):
        rc, out = self.crm(slot, op, *opts, timeout_s=timeout_s)
        if not check(rc == want, "blade %d: %s: crm_resource %s exits %d%s" % (
                slot, what, op, rc, "" if rc == want else " (expected %d)" % want)):
            print("\n".join("    | " + ln for ln in out.splitlines()[-15:]), flush=True)
        return rc


def engine_state(v, slot):
    st = v.ftctl_json(slot, "vm", "status", v.VM)
    return st.get("role"), st.get("state"), st


def wait_standby(v, slot, timeout=180):
    """The backup engine on blade slot synchronised: in standby."""
    try:
        v.wait_for("blade %d's backup in standby" % slot,
                   lambda: engine_state(v, slot)[1] == "standby", timeout=timeout, step=0.5)
        ok("blade %d: the backup is synchronised (standby)" % slot)
        return True
    except v.LabError:
        role, state, st = engine_state(v, slot)
        check(False, "blade %d: backup not in standby after %d s (%s %s, link %s)" % (
            slot, timeout, role, state, st.get("link")))
        return False


def counter_goes_on(v, before, what):
    """The guest's released console counter grows past `before` values and
    never went back or repeated."""
    try:
        v.wait_for("output of the guest (%s)" % what,
                   lambda: len(v.counters(v.console_text())) > len(before) + 5, timeout=30)
    except v.LabError:
        check(False, "%s: the guest's console counter goes on" % what)
        return
    vals = v.counters(v.console_text())
    check(all(b > a for a, b in zip(vals, vals[1:])),
          "%s: the guest's console counter goes on, strictly increasing (%d values, last %d)"
          % (what, len(vals), vals[-1] if vals else -1))


def ctl_plain(v, slot, *args):
    """atca-ftctl without --yes (standard input not a terminal)."""
    lab = v.Lab.load(v.LAB)
    return v.blademod.run_in(lab, slot, [v.CTL] + list(args), check=False, timeout=30)


def cli_protection(v):
    """atca-ftctl vm unprotect / protect / release on blade 2's primary."""
    r = v.ftctl(2, "vm", "unprotect", v.VM)
    check(r.returncode == 0, "atca-ftctl vm unprotect exits %d" % r.returncode)
    try:
        v.wait_for("primary unprotected", lambda: engine_state(v, 2)[1] == "unprotected",
                   timeout=10, step=0.2)
        ok("blade 2: the primary is unprotected")
    except v.LabError:
        check(False, "blade 2: unprotected after vm unprotect (%s)" % (engine_state(v, 2)[1],))
    r = v.ftctl(2, "vm", "protect", v.VM)
    check(r.returncode == 0, "atca-ftctl vm protect exits %d" % r.returncode)
    try:
        v.wait_for("primary protected again",
                   lambda: engine_state(v, 2)[1] == "protected", timeout=60, step=0.2)
        ok("blade 2: protected again after vm protect")
    except v.LabError:
        check(False, "blade 2: protected after vm protect (%s)" % (engine_state(v, 2)[1],))
        v.dump_diagnostics()
    wait_standby(v, 1)
    r = v.ftctl(2, "vm", "release", v.VM)
    check(r.returncode == 0 and "nothing done" in r.stdout,
          "atca-ftctl vm release of a protected guest: nothing done, its output stays held "
          "(exit %d: %s)" % (r.returncode, r.stdout.strip()))
    check(engine_state(v, 2)[1] == "protected", "blade 2: still protected after vm release")
    r = v.ftctl(2, "vm", "frobnicate", v.VM)
    check(r.returncode == 2, "atca-ftctl vm frobnicate: usage error, exit %d" % r.returncode)
    r = v.ftctl(2, "vm", "status", "nosuchvm")
    check(r.returncode == 2, "atca-ftctl vm status of an unknown VM exits %d (2)" % r.returncode)


def cli_quit(v, o):
    """atca-ftctl vm quit: refused without --yes, then the engine stops
    and atca-ftd does not start it again."""
    o.expect(1, "--force-start", 0, "start a backup engine again")
    r = ctl_plain(v, 1, "vm", "quit", v.VM)
    check(r.returncode == 2 and v.engine_pid(1) is not None,
          "atca-ftctl vm quit without --yes: refused (exit %d), the engine runs" % r.returncode)
    r = v.ftctl(1, "vm", "quit", v.VM)
    check(r.returncode == 0, "atca-ftctl vm quit --yes exits %d" % r.returncode)
    try:
        v.wait_for("engine gone", lambda: v.engine_pid(1) is None, timeout=15, step=0.2)
        time.sleep(3)
        check(v.engine_pid(1) is None, "blade 1: the engine quit and was not started again")
    except v.LabError:
        check(False, "blade 1: the engine is still there 15 s after vm quit")
    o.expect(1, "--force-check", 7, "after vm quit, nothing runs")


def ocf_tester(v, o, agent_copy):
    """ocf-tester on blade 2 with no primary anywhere: every promote is a
    cold start of the guest on blade 2, every demote stops it."""
    r = o.run(2, ["env", "OCF_ROOT=" + OCF_ROOT, "ocf-tester", "-n", "ocftest",
                  "-o", "vm=" + v.VM, "-o", "ctl=" + v.CTL, agent_copy], timeout=600)
    out = (r.stdout + r.stderr).strip()
    if not check(r.returncode == 0 and "passed all tests" in out,
                 "ocf-tester against real engines on blade 2: exit %d" % r.returncode):
        print("\n".join("    | " + ln for ln in out.splitlines()[-30:]), flush=True)
    check(v.engine_pid(2) is None and not v.qemu_pids_of(2),
          "after ocf-tester: no engine and no QEMU left on blade 2")


def scenario(v, o):
    # ---- validate-all
    o.expect(1, "--validate", 0, "validate-all")
    cmd_unknown = ["crm_resource", "--validate", "--class", "ocf", "--provider", "atca-ft",
                   "--agent", "atca-ft-vm", "--option", "vm=nosuchvm", "--option",
                   "ctl=" + v.CTL]
    r = o.run(1, cmd_unknown, timeout=60)
    check(r.returncode == 5, "blade 1: validate-all of a VM atca-ftd does not know exits %d "
          "(expected 5)" % r.returncode)
    r = o.run(1, cmd_unknown[:-3] + ["vm=bad name", "--option", "ctl=" + v.CTL], timeout=60)
    check(r.returncode == 6, "blade 1: validate-all of an invalid VM name exits %d (expected 6)"
          % r.returncode)

    # ---- blade 1: start, cold-start promote
    o.expect(1, "--force-check", 7, "nothing runs yet")
    o.expect(1, "--force-start", 0, "start (a backup engine)")
    role, state, _ = engine_state(v, 1)
    check(role == "backup", "blade 1: atca-ftctl vm status: %s %s" % (role, state))
    o.expect(1, "--force-check", 0, "unpromoted backup")
    o.expect(1, "--force-promote", 0, "promote with nothing committed (cold start)")
    o.expect(1, "--force-check", 8, "promoted")
    v.wait_for("guest output", lambda: v.counters(v.console_text()), timeout=90)
    ok("blade 1: the guest runs (console counter at %d)" % v.counters(v.console_text())[-1])

    # ---- blade 2: start; the primary synchronises it
    o.expect(2, "--force-start", 0, "start (a backup engine for blade 1's primary)")
    wait_standby(v, 2)
    o.expect(2, "--force-check=10", 0, "backup in standby, commits fresh (depth 10)")
    o.expect(2, "--force-check=20", 0, "backup in standby (depth 20)")
    o.expect(1, "--force-check=10", 8, "primary, depth 10")
    o.expect(1, "--force-check=20", 8, "primary, depth 20 (QEMU, disk attached)")
    o.expect(1, "--force-check=20", 8, "primary, depth 20 with progress_timeout=30",
             "progress_timeout=30")

    # ---- no promotion while the primary is connected
    t0 = time.monotonic()
    o.expect(2, "--force-promote", 1, "promote while blade 1's primary is connected: refused",
             "link_timeout=2")
    check(time.monotonic() - t0 < 30, "... refused after %.1f s" % (time.monotonic() - t0))
    o.expect(2, "--force-check", 0, "still the backup")
    o.expect(1, "--force-check", 8, "blade 1 still the primary")

    # ---- switchover: demote blade 1, promote blade 2
    before = v.counters(v.console_text())
    o.expect(1, "--force-demote", 0, "demote (the primary stops, a backup starts)")
    o.expect(1, "--force-check", 0, "a backup now")
    t0 = time.monotonic()
    o.expect(2, "--force-promote", 0, "promote the orphaned backup")
    ok("switchover: blade 2 promoted %.1f s after blade 1's demote" % (time.monotonic() - t0))
    o.expect(2, "--force-check", 8, "promoted")
    counter_goes_on(v, before, "switchover")
    wait_standby(v, 1)
    o.expect(1, "--force-check=10", 0, "blade 1's backup synchronised by blade 2's primary")
    cli_protection(v)

    # ---- failover: blade 2 (the primary) loses power, as a fenced node does
    before = v.counters(v.console_text())
    v.lab_cmd("inject", "power", "blade2")
    t0 = time.monotonic()
    o.expect(1, "--force-promote", 0, "promote after blade 2 lost power")
    ok("failover: blade 1 promoted %.1f s after blade 2's power loss" % (time.monotonic() - t0))
    o.expect(1, "--force-check", 8, "promoted")
    counter_goes_on(v, before, "failover")
    _, _, st = engine_state(v, 1)
    check(st.get("role") == "primary", "blade 1: primary from epoch %s" % st.get("epoch"))

    # ---- atca-ftd down: monitor and stop find the engine by its process
    v.stop_ftd(1)
    o.expect(1, "--force-check", 1, "atca-ftd down while the engine runs: failed, not stopped")
    o.expect(1, "--force-stop", 0, "stop with atca-ftd down")
    check(v.engine_pid(1) is None and not v.qemu_pids_of(1),
          "blade 1: no engine and no QEMU left after the stop")
    o.expect(1, "--force-check", 7, "atca-ftd down, nothing runs")
    v.start_ftd(1)
    o.expect(1, "--force-check", 7, "atca-ftd back, nothing runs")
    o.expect(1, "--force-stop", 0, "stop of a stopped instance")
    cli_quit(v, o)


def cleanup(v, o):
    lab = None
    try:
        lab = v.Lab.load(v.LAB)
    except Exception:  # noqa: BLE001 -- the lab may not have come up
        pass
    for slot in (1, 2):
        if lab is None:
            break
        try:
            v.blademod.holder_of(lab, slot)
        except v.LabError:
            continue
        try:
            o.crm(slot, "--force-stop", timeout_s=60)
        except v.LabError:
            pass
        pid = v.engine_pid(slot)
        if pid:
            v.labutil.kill(pid, signal.SIGKILL)
    for slot in list(v.DAEMONS):
        v.stop_ftd(slot)


def main():
    preflight()
    v = load_vmft()
    for path, what in ((v.ENGINE, "atca-vmft"), (v.FTD, "atca-ftd"), (v.CTL, "atca-ftctl")):
        if not os.access(path, os.X_OK):
            skip("%s not built (%s)" % (what, path))
    v.LAB = os.environ.get("OCF_LAB") or "oc%d" % (os.getpid() % 100)
    v.NET = False  # the guest's NIC needs vmft.py's UDP sink: not the point here
    o = Ocf(v)
    agent_copy = install_agent()
    lab_up = False
    try:
        v.lab_cmd("up", "--blades", "2", timeout=180)
        lab_up = True
        lab = v.Lab.load(v.LAB)
        v.guestmod.make_image(lab, v.VM, pps=500, disk=v.DISK, net=False, disk_pio=True)
        v.write_conf("dry-run")
        # the VM is Pacemaker's: atca-ftd must not start backups by itself
        conf = v.conf_path()
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("vmft {\n", "vmft {\n    restart_backup: no\n", 1))
        v.start_ftd(1)
        v.start_ftd(2)
        ocf_tester(v, o, agent_copy)
        v.clean_state((1, 2))
        scenario(v, o)
    except Exception as e:  # noqa: BLE001 -- reported, then cleaned up
        check(False, "unexpected: %s: %s" % (type(e).__name__, e))
        if lab_up:
            v.dump_diagnostics()
    finally:
        if FAILS and lab_up:
            v.dump_diagnostics()
        if lab_up:
            cleanup(v, o)
            if not os.environ.get("OCF_KEEP_LAB"):
                v.lab_cmd("down", check_rc=False, timeout=120)
        uninstall_agent()
    if FAILS:
        print("ocf: %d check(s) failed" % len(FAILS))
        return 1
    print("ocf: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
