#!/usr/bin/env python3
"""Pacemaker on the shelf lab: a blade fails while the other blade's
Pacemaker has only just started (root). Companion of
bench/pacemaker_baseline.py (same lab set-up and Pacemaker configuration).

  bench/pacemaker_join_race.py [--fault corosync|power] [--delay 1.1]

1. Blade X runs the guest and loses power; Pacemaker fences it and restarts
   the guest on blade Y (the failover pacemaker_baseline.py measures).
2. X is powered on again (fence_atca -o on) and Pacemaker is started on it.
   X's CIB on disk is the one from before its power loss: the guest on X,
   nothing on Y.
3. DELAY seconds later, before X's controller has finished joining Y (it is
   still S_PENDING, its CIB not yet synchronised from Y's), Y fails:
   --fault corosync (default): corosync killed on Y; Pacemaker on Y goes
   with it but the guest's QEMU keeps running there, as after a corosync
   crash; --fault power: Y loses power.

Then X waits dc-deadtime (20 s) for a DC, elects itself and decides from
its stale CIB. The controller marks Y "expected down" (join_make_offer() in
daemons/controld/controld_join_dc.c: a node that is lost and whose expected
state is unknown is set to down; "this plus an active resource is what
causes it to be fenced [...] any node that dies at the same time as the old
DC and is not running resource (still) won't be fenced"), the stale CIB
shows no resource active on Y, so the scheduler starts the guest on X
without fencing Y. With --fault corosync the guest is still running on Y:
only QEMU's image lock on the lab's shared storage (one host file system)
stops the second copy; storage whose locks do not reach across hosts would
not.

Prints a timeline (from X's Pacemaker log) and the guest's state on both
blades each second; the lab is removed at the end (--keep-logs DIR keeps the
logs and the scheduler's inputs).
"""

import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pacemaker_baseline as pb  # noqa: E402
from atcalab import blade as blademod  # noqa: E402
from atcalab import faults  # noqa: E402
from atcalab import util as labutil  # noqa: E402
from atcalab.state import Lab  # noqa: E402

pb.PM_LAB = "pj%d" % (os.getpid() % 100)


def domstate(slot):
    lab = Lab.load(pb.PM_LAB)
    if lab.blade(slot).get("power") != "on":
        return "(blade off)"
    p = labutil.run(["virsh", "-q", "-c", blademod.libvirt_uri(lab, slot), "domstate",
                     pb.VM], check=False)
    return p.stdout.strip() or "not defined"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fault", choices=("corosync", "power"), default="corosync")
    ap.add_argument("--delay", type=float, default=1.1,
                    help="seconds from starting Pacemaker on X to the fault on Y (default 1.1)")
    ap.add_argument("--keep-logs", metavar="DIR")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root")
    watch = None
    try:
        pb.setup_pacemaker(False)
        watch = pb.SerialWatch(Lab.load(pb.PM_LAB).path("shared", pb.VM + ".serial"))
        watch.start()
        x, y, _ = pb.place_vm(True, watch)
        lab = Lab.load(pb.PM_LAB)
        faults.inject(lab, "power", x)
        lab.save()
        pb.wait("the guest on blade%d" % y,
                lambda: pb.crm_state(pb.PM_LAB, y)["vm"] == [y]
                and pb.controller_state(pb.PM_LAB, y, y) == "S_IDLE", 60, 0.3)
        print("blade%d lost power and was fenced; the guest runs on blade%d" % (x, y), flush=True)
        subprocess.run([pb.AGENT, "-a", lab.shmc_addr("a"), "--credentials",
                        lab.path("shelf.cred"), "-o", "on", "-n", str(x), "-q"], check=True)
        pb.wait("blade%d powered" % x, lambda: Lab.load(pb.PM_LAB).blade(x).get("power") == "on",
                30)
        pb.wait("blade%d in the corosync membership" % x,
                lambda: (blademod.quorum(Lab.load(pb.PM_LAB), x) or (0, []))[1]
                == ["blade1", "blade2"], 30)
        pb.start_pacemaker(pb.PM_LAB, x)
        ts = time.time()
        time.sleep(max(0.0, a.delay))
        t0 = time.time()
        lab = Lab.load(pb.PM_LAB)
        faults.inject(lab, a.fault, y)
        lab.save()
        st = pb.controller_state(pb.PM_LAB, x, x)
        print("t0: %s fault on blade%d, %.2f s after Pacemaker was started on blade%d, whose "
              "controller is %s" % (a.fault, y, t0 - ts, x, st), flush=True)
        if st != "S_PENDING":
            print("the window was missed (blade%d had joined already): try a smaller --delay"
                  % x)
        for i in range(45):
            time.sleep(1)
            print("t0+%2d s: guest on blade1: %s, on blade2: %s; blade%d's controller %s"
                  % (i + 1, domstate(1), domstate(2), x, pb.controller_state(pb.PM_LAB, x, x)),
                  flush=True)
            if i >= 25 and pb.controller_state(pb.PM_LAB, x, x) == "S_IDLE":
                break
        lines = [ln for ln in pb.log_lines(os.path.join(Lab.load(pb.PM_LAB).blade_dir(x),
                                                        pb.PCMK_LOG), 0) if ln[0] >= t0 - 0.5]
        print("\nblade%d's Pacemaker log after t0:" % x)
        for what, pat in (("dc-deadtime expired", r"I_DC_TIMEOUT"),
                          ("became DC", r"Set DC to blade%d" % x),
                          ("blade%d expected down" % y, r"Node blade%d.*expected state is now "
                           r"down" % y),
                          ("fencing requested", r"Requesting fencing"),
                          ("fencing done", r"Operation '\w+' targeting"),
                          ("start of the guest on blade%d" % x,
                           r"Initiating start operation %s_start_0" % pb.VM),
                          ("start confirmed ok", r"%s_start_0 on blade%d\) confirmed: ok"
                           % (pb.VM, x)),
                          ("start failed", r"Result of start operation for %s.*: error" % pb.VM)):
            t = pb.first(lines, pat)
            print("  %-36s %s" % (what, "t0 + %.3f s" % (t - t0) if t else "never"))
        for t, ln in lines:
            if "Actions:" in ln or "will be fenced" in ln or "Failed to get" in ln:
                print("  t0 + %6.3f s %s" % (t - t0, ln.split(")", 1)[1].strip()[:150]))
        print("\nfinal: guest on blade1: %s, on blade2: %s" % (domstate(1), domstate(2)))
    finally:
        if watch:
            watch.stop()
        if a.keep_logs:
            pb.keep_logs(a.keep_logs)
        pb.lab_cmd(pb.PM_LAB, "down", check=False)


if __name__ == "__main__":
    main()
