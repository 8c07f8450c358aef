#!/usr/bin/env python3
"""Tests of the lab itself (run as root; exit 77 = skipped with a reason).

  selftest.py [--quick]

- a 2-blade lab: corosync quorate everywhere, every sensor of every blade
  seen through the shelf manager by ipmitool and by FreeIPMI's ipmi-sensors,
  the PICMG address table, a clean "down";
- a 3-blade lab with two shelf managers: up in under 30 s, a counter guest
  printing, writing its disk and sending frames, then every fault kind
  injected and repaired, each checked where a real one would show: SEL
  records, sensor states, hot-swap states, bridged IPMI failing, CPG
  membership, libvirt lifecycle events;
- a second lab running beside it without interference;
- FRU activation through the shelf manager's plugin (plugin/atca_picmg.c),
  checked with ipmitool: deactivation walks M4 -> M5 -> M6 -> M1 (hot-swap
  sensor and SEL, with the previous state in the events) and the blade's
  processes really die; policy and activation bring it back to M4 and into
  the corosync membership; chassis power off/status/on on an IPMC; an IPMC
  without FRU activation (CC 0xC1); two shelf managers agreeing after a
  fence, also across a restart of one of them;
- a 16-blade --shelf-only lab: up, fence one blade, down;
- after "down", no process, namespace, link, mount or directory left.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from atcalab import blade, guest, lab as labmod, util  # noqa: E402
from atcalab.faults import inject, repair  # noqa: E402
from atcalab.state import Lab  # noqa: E402
from atcalab.util import LabError  # noqa: E402

FAILS = []
TIMES = {}


def ok(msg):
    print("ok   " + msg, flush=True)


def check(cond, msg):
    if cond:
        ok(msg)
    else:
        print("FAIL " + msg, flush=True)
        FAILS.append(msg)
    return cond


def eventually(msg, fn, timeout=15.0):
    t0 = time.monotonic()
    while True:
        try:
            if fn():
                dt = time.monotonic() - t0
                ok("%s (%.2f s)" % (msg, dt))
                return dt
        except LabError:
            pass
        if time.monotonic() - t0 > timeout:
            check(False, "%s (not within %.0f s)" % (msg, timeout))
            return None
        time.sleep(0.05)


def sel(lab, which="a"):
    return labmod.ipmitool(lab, which, "sel", "elist", check=False).stdout


def sel_has(lab, pattern, which="a"):
    return re.search(pattern, sel(lab, which)) is not None


def ipmi(lab, *args, which="a"):
    """ipmitool through a shelf manager: (returncode, stdout + stderr)."""
    p = labmod.ipmitool(lab, which, *args, check=False)
    return p.returncode, p.stdout + p.stderr


def hotswap(lab, addr, which="a"):
    """The M-state in the IPMC's hot-swap sensor (Get Sensor Reading), or None."""
    rc, out = ipmi(lab, "-t", "0x%02x" % addr, "raw", "0x04", "0x2d",
                   str(lab.state["hotswap_sensor"]), which=which)
    b = [int(x, 16) for x in out.split()] if rc == 0 else []
    bits = (b[2] | (b[3] << 8 if len(b) > 3 else 0)) if len(b) > 2 else 0
    return bits.bit_length() - 1 if bits else None


def plugin_state(lab, slot, which="a"):
    return labmod.picmg_states(lab, which).get(slot, {})


def hs_events(lab, sname, which="a"):
    """[(record id, M-state)] of a blade's hot-swap transitions in the SEL."""
    return [(int(m.group(1), 16), int(m.group(2))) for m in re.finditer(
        r"^\s*([0-9a-f]+) \|.*%s Hot Swap \| Transition to M(\d)" % sname, sel(lab, which), re.M)]


def event_data(lab, rec, which="a"):
    out = labmod.ipmitool(lab, which, "-v", "sel", "get", str(rec), check=False).stdout
    m = re.search(r"Event Data \(RAW\)\s*:\s*([0-9a-f]{6})", out)
    return bytes.fromhex(m.group(1)) if m else None


def members(lab, slot):
    q = blade.quorum(lab, slot)
    return q[1] if q else None


def quorate(lab, slot):
    q = blade.quorum(lab, slot)
    return bool(q and q[0])


def all_members(n):
    return ["blade%d" % s for s in range(1, n + 1)]


def skip(reason):
    print("SKIP: lab selftest: " + reason)
    sys.exit(77)


# ---------------------------------------------------------------- 2 blades

def test_two_blades(name):
    t0 = time.monotonic()
    os.environ["ATCA_LAB_TCG"] = "1"
    try:
        lab = labmod.up(name, 2)
    finally:
        del os.environ["ATCA_LAB_TCG"]
    TIMES["up 2 blades"] = time.monotonic() - t0
    ok("up --blades 2 in %.1f s" % TIMES["up 2 blades"])
    for s in (1, 2):
        check(members(lab, s) == all_members(2) and quorate(lab, s),
              "blade %d: corosync quorate with blade1, blade2" % s)
        check(blade.run_in(lab, s, ["hostname"]).stdout.strip() == "blade%d" % s,
              "blade %d: its own host name" % s)
        check(blade.libvirt_ok(lab, s), "blade %d: its own libvirtd answers" % s)
    sdr = labmod.ipmitool(lab, "a", "sdr", "list").stdout
    for s in (1, 2):
        for sensor in ("Hot Swap", "CPU Temp", "12V Rail", "CPU Status", "Memory ECC",
                       "Power Unit", "Watchdog"):
            check(re.search(r"^S%d %s\s*\|.*\|\s*ok" % (s, sensor), sdr, re.M) is not None,
                  "ipmitool sees S%d %s through the shelf manager" % (s, sensor))
        bridged = labmod.ipmitool(lab, "a", "-t", "0x%02x" % (0x80 + 2 * s), "sensor", "list").stdout
        check("CPU Temp" in bridged and "75.000" in bridged,
              "ipmitool bridged to 0x%02x reads the IPMC's own sensors and thresholds"
              % (0x80 + 2 * s))
        info = labmod.ipmitool(lab, "a", "-t", "0x%02x" % (0x80 + 2 * s), "picmg", "addrinfo").stdout
        check(re.search(r"Site ID\s*:\s*0x0%d" % s, info) is not None,
              "PICMG address info of slot %d" % s)
    check(re.search(r"^Fan Tray Speed\s*\|\s*6000 RPM", sdr, re.M) is not None,
          "the shelf's fan tray")
    # the NMS receives a trap sent from a blade over the management network
    blade.run_in(lab, 1, ["snmptrap", "-v", "2c", "-c", "public", "%s:162" % lab.nms_addr(),
                          "", "1.3.6.1.4.1.99999.0.1", "1.3.6.1.4.1.99999.1.1", "s",
                          "lab-selftest"])
    eventually("the NMS logs a trap sent from blade 1",
               lambda: "lab-selftest" in open(lab.state["nms"]["traps"]).read(), 10)
    # without /dev/kvm the guests run under TCG (forced here)
    check(not lab.state["kvm"], "ATCA_LAB_TCG=1: the lab uses TCG")
    guest.start(lab, 2, "tcg", pps=100)
    lab.save()
    eventually("a guest under TCG boots and counts", lambda: len(guest.counters(lab, "tcg")) > 20, 30)
    check("-accel tcg" in open("/proc/%d/cmdline" % guest.qemu_pids(lab, 2, "tcg")[0]).read()
          .replace("\0", " "), "... with QEMU's TCG accelerator")
    # the path fencing uses, for real (kills the guest above)
    test_fru_activation(lab)
    fru = labmod.ipmitool(lab, "a", "-v", "fru", "print", "254").stdout
    check("FRU_PICMG_ADDRESS_TABLE" in fru and "HWAddr: 0x42 (0x84) SiteNum: 2" in fru,
          "FRU 254 holds the PICMG address table with every slot")
    cache = tempfile.mkdtemp(prefix="atca-lab-sdrcache.")
    try:
        p = util.run(["ipmi-sensors", "-h", lab.shmc_addr("a"), "-u", "admin", "-p", "secret",
                      "-D", "LAN_2_0", "-l", "ADMIN", "-W", "opensesspriv", "-b",
                      "--quiet-cache", "--sdr-cache-recreate", "--sdr-cache-directory", cache],
                     check=False)
        for s in (1, 2):
            check(re.search(r"S%d CPU Temp\s*\|\s*Temperature\s*\|\s*45\.00" % s, p.stdout) is not None
                  and "S%d 12V Rail" % s in p.stdout,
                  "FreeIPMI ipmi-sensors reads blade %d's sensors through the bridge" % s)
    finally:
        shutil.rmtree(cache)
    labmod.down(name)
    check(labmod.leftovers(name) == [], "down of the 2-blade lab leaves nothing")


# ---------------------------------------------------------------- FRU activation

def test_fru_activation(lab):
    """Fencing and unfencing blade 2 through the shelf manager, for real."""
    lab.sync()
    holder, qemu = lab.blade(2)["holder"], guest.qemu_pids(lab, 2, "tcg")
    rc, out = ipmi(lab, "-t", "0x84", "picmg", "policy", "get", "0")
    check(rc == 0 and "activation not locked" in out, "policy get: not locked")
    before = len(hs_events(lab, "S2"))
    t0 = time.monotonic()
    rc, out = ipmi(lab, "-t", "0x84", "picmg", "deactivate", "0")
    check(rc == 0, "picmg deactivate accepted")
    if eventually("deactivate: the hot-swap sensor reaches M1",
                  lambda: hotswap(lab, 0x84) == 1, 5) is not None:
        TIMES["deactivate -> M1"] = time.monotonic() - t0
    if eventually("deactivate: blade 2's processes die (holder, corosync, libvirtd, QEMU)",
                  lambda: not util.alive(holder) and not any(util.alive(p) for p in qemu),
                  5) is not None:
        TIMES["deactivate -> blade dead"] = time.monotonic() - t0

    def hook_latency():
        m = re.findall(r"payload off in [0-9.]+ s, (\d+) ms after",
                       open(lab.path("shmc-a", "hook.log")).read())
        return int(m[-1]) / 1000.0 if m else None
    if eventually("the hook logs what it did", hook_latency, 5) is not None:
        TIMES["hook off latency"] = hook_latency()
    ev = hs_events(lab, "S2")[before:]
    check([m for _, m in ev] == [5, 6, 1], "SEL: M4 -> M5 -> M6 -> M1 (%s)"
          % " ".join("M%d" % m for _, m in ev))
    ed = event_data(lab, ev[-1][0]) if ev else None
    check(ed is not None and ed[0] == 0xA1 and ed[1] & 0x0F == 6,
          "the M1 event carries M6 as the previous state (event data %s)"
          % (ed.hex() if ed else None))
    eventually("the hook records blade 2 powered off, M1, locked",
               lambda: lab.sync() or (lab.blade(2)["power"] == "off" and
                                      lab.state["hw"]["2"].get("mstate") == 1 and
                                      lab.state["hw"]["2"].get("locked")), 5)
    st = plugin_state(lab, 2)
    check(st.get("power") == "off" and st.get("locked") == 1, "plugin: payload off, locked")
    rc, out = ipmi(lab, "-t", "0x84", "picmg", "deactivate", "0")
    check(rc == 0 and hotswap(lab, 0x84) == 1, "deactivating a blade in M1: success, stays M1")
    rc, out = ipmi(lab, "-t", "0x84", "raw", "0x2c", "0x0c", "0", "0", "1")
    check(rc != 0 and "rsp=0xd5" in out, "activate while locked in M1: CC 0xD5")
    rc, out = ipmi(lab, "-t", "0x84", "raw", "0x2c", "0x0c", "0", "1", "0")
    check(rc != 0 and "rsp=0xcc" in out, "FRU 1 (no such FRU): CC 0xCC")
    rc, out = ipmi(lab, "-t", "0x84", "picmg", "policy", "set", "0", "1", "0")
    check(rc == 0 and hotswap(lab, 0x84) == 2, "policy: clearing Locked moves M1 -> M2")
    t0 = time.monotonic()
    rc, out = ipmi(lab, "-t", "0x84", "picmg", "activate", "0")
    check(rc == 0, "picmg activate accepted")
    if eventually("activate: M2 -> M3 -> M4", lambda: hotswap(lab, 0x84) == 4, 5) is not None:
        TIMES["activate -> M4"] = time.monotonic() - t0
    check([m for _, m in hs_events(lab, "S2")[before:]][-3:] == [2, 3, 4], "SEL: M2, M3, M4")
    # blade 2's new corosync has joined blade 1 (blade 1 may not even have
    # noticed that the old one died)
    if eventually("activate: blade 2's corosync back in the membership",
                  lambda: lab.sync() or (util.alive(lab.blade(2).get("holder"))
                                         and members(lab, 2) == all_members(2)),
                  20) is not None:
        TIMES["activate -> corosync member"] = time.monotonic() - t0
    # chassis control on an IPMC: the fallback when FRU activation is missing
    rc, out = ipmi(lab, "-t", "0x82", "chassis", "power", "status")
    check(rc == 0 and "is on" in out, "chassis power status on the IPMC: on")
    lab.sync()
    holder = lab.blade(1)["holder"]
    rc, out = ipmi(lab, "-t", "0x82", "chassis", "power", "off")
    check(rc == 0, "chassis power off accepted")
    eventually("chassis power off: status off, M1, blade 1's processes gone",
               lambda: "is off" in ipmi(lab, "-t", "0x82", "chassis", "power", "status")[1]
               and hotswap(lab, 0x82) == 1 and not util.alive(holder), 5)
    rc, out = ipmi(lab, "-t", "0x82", "chassis", "power", "on")
    check(rc == 0, "chassis power on accepted")
    eventually("chassis power on: status on, M4",
               lambda: "is on" in ipmi(lab, "-t", "0x82", "chassis", "power", "status")[1]
               and hotswap(lab, 0x82) == 4, 5)
    # an IPMC without FRU activation
    inject(lab, "picmg", "1")
    rc, out = ipmi(lab, "-t", "0x82", "picmg", "policy", "get", "0")
    check(rc != 0 and "0xc1" in out.lower(), "picmg fault: policy get answers CC 0xC1")
    rc, out = ipmi(lab, "-t", "0x82", "raw", "0x2c", "0x0c", "0", "0", "0")
    check(rc != 0 and "rsp=0xc1" in out, "picmg fault: Set FRU Activation answers CC 0xC1")
    rc, out = ipmi(lab, "-t", "0x82", "chassis", "power", "status")
    check(rc == 0 and "is on" in out, "picmg fault: chassis power status still works")
    repair(lab, "picmg", "1")
    rc, out = ipmi(lab, "-t", "0x82", "picmg", "policy", "get", "0")
    check(rc == 0, "picmg repaired: policy get works again")
    eventually("chassis power on: blade 1's corosync back",
               lambda: lab.sync() or (util.alive(lab.blade(1).get("holder"))
                                      and members(lab, 1) == all_members(2)), 20)


def test_fence_two_managers(lab):
    """A fence through shelf manager A: B agrees (the hook tells it)."""
    lab.sync()
    holder = lab.blade(3)["holder"]
    rc, out = ipmi(lab, "-t", "0x86", "picmg", "policy", "set", "0", "1", "1")
    check(rc == 0, "fence via A: lock blade 3")
    rc, out = ipmi(lab, "-t", "0x86", "picmg", "deactivate", "0")
    eventually("fence via A: A and B both show blade 3 in M1, locked, payload off",
               lambda: all(plugin_state(lab, 3, w).get("mstate") == 1 and
                           plugin_state(lab, 3, w).get("locked") == 1 and
                           plugin_state(lab, 3, w).get("power") == "off" for w in "ab"), 5)
    check(hotswap(lab, 0x86, "b") == 1, "B's hot-swap sensor of blade 3: M1")
    eventually("fence: blade 3's processes are gone", lambda: not util.alive(holder), 5)


def test_unfence_two_managers(lab):
    """After A's restart: still fenced; the unfence brings both to M4."""
    st = plugin_state(lab, 3, "a")
    check(st.get("mstate") == 1 and st.get("locked") == 1 and hotswap(lab, 0x86) == 1,
          "A restarted: blade 3 still M1 and locked (replayed through the plugin)")
    rc, out = ipmi(lab, "-t", "0x86", "picmg", "policy", "set", "0", "1", "0")
    rc2, out = ipmi(lab, "-t", "0x86", "picmg", "activate", "0")
    check(rc == 0 and rc2 == 0, "unfence via A: unlock, activate")
    eventually("unfence: A and B both show blade 3 in M4",
               lambda: all(plugin_state(lab, 3, w).get("mstate") == 4 for w in "ab"), 5)
    eventually("unfence: blade 3 back in the membership",
               lambda: lab.sync() or (members(lab, 3) == all_members(3) and
                                      members(lab, 1) == all_members(3)), 20)


# ---------------------------------------------------------------- shelf only

def test_shelf_only(name):
    t0 = time.monotonic()
    lab = labmod.up(name, 16, only_shelf=True)
    TIMES["up --shelf-only 16"] = time.monotonic() - t0
    ok("up --blades 16 --shelf-only in %.1f s" % TIMES["up --shelf-only 16"])
    check(not any(ns.startswith(name + "-b") for ns in
                  util.run(["ip", "netns", "list"]).stdout.split()),
          "shelf only: no blade namespaces")
    st = labmod.picmg_states(lab)
    check(sorted(st) == list(range(1, 17)) and all(v["mstate"] == 4 for v in st.values()),
          "the plugin sees 16 blade IPMCs in M4 (0x82..0xa0)")
    check(hotswap(lab, 0xA0) == 4, "ipmitool reads slot 16's hot-swap sensor (0xa0)")
    rc, out = ipmi(lab, "-t", "0xa0", "picmg", "deactivate", "0")
    eventually("shelf only: slot 16 deactivates to M1, the hook records it",
               lambda: hotswap(lab, 0xA0) == 1 and (lab.sync() or
                                                    lab.blade(16)["power"] == "off"), 5)
    try:
        inject(lab, "corosync", "3")
        check(False, "shelf only: payload faults refused")
    except LabError:
        ok("shelf only: payload faults refused")
    labmod.down(name)
    check(labmod.leftovers(name) == [], "down of the shelf-only lab leaves nothing")


# ---------------------------------------------------------------- 3 blades + faults

class LibvirtEvents:
    """virsh event --loop on a blade, collected into a file."""

    def __init__(self, lab, slot, path):
        self.path = path
        self.f = open(path, "w")
        self.p = subprocess.Popen(["virsh", "-c", blade.libvirt_uri(lab, slot), "event",
                                   "--all", "--loop"], stdout=self.f, stderr=subprocess.STDOUT)
        time.sleep(0.3)

    def text(self):
        self.f.flush()
        return open(self.path).read()

    def stop(self):
        self.p.terminate()
        self.p.wait()
        self.f.close()


def test_faults(lab):
    n = 3
    # --- the guest: serial, disk, network
    guest.start(lab, 1, "probe", pps=2000, disk=True, net=True)
    lab.save()
    eventually("guest boots (BOOT line)", lambda: any(ln.startswith("BOOT")
                                                     for ln in guest.serial_lines(lab, "probe")), 30)
    eventually("guest prints its counter (C lines)", lambda: len(guest.counters(lab, "probe")) > 50)
    c = guest.counters(lab, "probe")
    check(all(b > a for a, b in zip(c, c[1:])), "the counter only goes up (%d lines)" % len(c))
    check(not any(ln.startswith("MISMATCH") for ln in guest.serial_lines(lab, "probe")),
          "RAM and register counters agree")
    d1 = guest.disk_counter(lab, "probe")
    time.sleep(0.3)
    d2 = guest.disk_counter(lab, "probe")
    check(d1 and d2 and d1[0] == b"PGDISK01" and d2[1] > d1[1], "the guest writes its counter to disk")
    eventually("the guest sends its counter in Ethernet frames",
               lambda: len(guest.net_counters(lab, "probe")) > 10)

    # --- threshold and discrete sensors: SEL on both shelf managers, state
    for kind, pat in (("temp-nc", r"S2 CPU Temp \| Upper Non-critical going high \| Asserted"),
                      ("temp-cr", r"S2 CPU Temp \| Upper Critical going high \| Asserted"),
                      ("temp-nr", r"S2 CPU Temp \| Upper Non-recoverable going high \| Asserted"),
                      ("volt-nc", r"S3 12V Rail \| Lower Non-critical going low\s*\| Asserted"),
                      ("volt-cr", r"S3 12V Rail \| Lower Critical going low\s*\| Asserted"),
                      ("volt-nr", r"S3 12V Rail \| Lower Non-recoverable going low\s*\| Asserted"),
                      ("ecc", r"S1 Memory ECC \| Uncorrectable ECC \| Asserted"),
                      ("ierr", r"S1 CPU Status \| IERR \| Asserted")):
        target = {"temp": "2", "volt": "3"}.get(kind[:4], "1")
        inject(lab, kind, target)
        check(sel_has(lab, pat) and sel_has(lab, pat, "b"),
              "%s: SEL record on both shelf managers" % kind)
        if kind.startswith("temp"):
            st = labmod.ipmitool(lab, "a", "-t", "0x84", "sensor", "get", "CPU Temp").stdout
            want = {"nc": "Upper Non-Critical", "cr": "Upper Critical",
                    "nr": "Upper Non-Recoverable"}[kind[5:]]
            check(re.search(r"Status\s*:\s*%s" % want, st) is not None,
                  "%s: sensor state %s" % (kind, want))
        repair(lab, kind, target)
    check(sel_has(lab, r"S2 CPU Temp \| Upper Non-critical going high \| Deasserted"),
          "repair deasserts the thresholds")
    st = labmod.ipmitool(lab, "a", "-t", "0x82", "sensor", "get", "Memory ECC").stdout
    check("Uncorrectable" not in st, "repair clears the ECC state")

    # --- M7: IPMC lost
    inject(lab, "m7", "3")
    check(sel_has(lab, r"S3 Hot Swap \| Transition to M7 \| Asserted"), "m7: hot-swap M7 in the SEL")
    p = labmod.ipmitool(lab, "a", "-t", "0x86", "mc", "info", check=False)
    check(p.returncode != 0 and "0x83" in p.stderr + p.stdout, "m7: bridged commands fail with 0x83")
    check(quorate(lab, 3), "m7: the blade itself keeps running")
    repair(lab, "m7", "3")
    check(labmod.ipmitool(lab, "a", "-t", "0x86", "mc", "info", check=False).returncode == 0,
          "m7 repaired: the IPMC answers again")

    # --- VM crash: libvirt event
    ev = LibvirtEvents(lab, 1, lab.path("events-b1.txt"))
    t0 = time.monotonic()
    inject(lab, "vm", "probe")
    TIMES["vm crash -> libvirt event"] = eventually(
        "vm: libvirt lifecycle event 'Stopped Failed'",
        lambda: "'probe': Stopped Failed" in ev.text() or "Stopped Crashed" in ev.text(), 10)
    check("crashed" in guest.state(lab, "probe"), "vm: domain shut off (crashed)")
    repair(lab, "vm", "probe")
    eventually("vm repaired: the domain runs again", lambda: "running" in guest.state(lab, "probe"))
    ev.stop()

    # --- hypervisor: libvirtd killed
    inject(lab, "hypervisor", "1")
    check(not blade.libvirt_ok(lab, 1), "hypervisor: libvirtd of blade 1 is gone")
    check(guest.qemu_pids(lab, 1, "probe") != [], "hypervisor (libvirtd only): the QEMU survives")
    repair(lab, "hypervisor", "1")
    check(blade.libvirt_ok(lab, 1), "hypervisor repaired: libvirtd answers")
    inject(lab, "hypervisor", "1", what="all")
    check(guest.qemu_pids(lab, 1) == [] and not blade.libvirt_ok(lab, 1),
          "hypervisor --what all: libvirtd and every QEMU gone")
    repair(lab, "hypervisor", "1", what="all")
    repair(lab, "vm", "probe")

    # --- corosync crash: membership
    t0 = time.monotonic()
    inject(lab, "corosync", "2")
    TIMES["corosync crash -> membership"] = eventually(
        "corosync: the others drop blade2 from the membership",
        lambda: members(lab, 1) == ["blade1", "blade3"], 10)
    repair(lab, "corosync", "2")
    eventually("corosync repaired: 3 members again", lambda: members(lab, 1) == all_members(n), 15)

    # --- partition
    inject(lab, "partition", "3")
    eventually("partition: blades 1-2 continue without blade3",
               lambda: members(lab, 1) == ["blade1", "blade2"], 10)
    eventually("partition: blade3 alone is not quorate",
               lambda: members(lab, 3) == ["blade3"] and not quorate(lab, 3), 10)
    repair(lab, "partition", "3")
    eventually("partition repaired", lambda: members(lab, 3) == all_members(n), 15)

    # --- power loss
    ev = LibvirtEvents(lab, 2, lab.path("events-b2.txt"))
    ev.stop()
    holder = lab.blade(2)["holder"]
    inject(lab, "power", "2")
    check(not util.alive(holder) and lab.blade(2)["power"] == "off",
          "power: every process of blade 2 is gone at once")
    check(sel_has(lab, r"S2 Hot Swap \| Transition to M6") and
          sel_has(lab, r"S2 Hot Swap \| Transition to M1"), "power: unrequested M4->M6->M1 in the SEL")
    TIMES["power loss -> membership"] = eventually(
        "power: the others drop blade2", lambda: members(lab, 1) == ["blade1", "blade3"], 10)
    repair(lab, "power", "2")
    check(sel_has(lab, r"S2 Hot Swap \| Transition to M4"), "power repaired: M4 again")
    eventually("power repaired: blade2 rejoins", lambda: members(lab, 1) == all_members(n), 15)

    # --- surprise extraction
    inject(lab, "extraction", "3")
    check(sel_has(lab, r"S3 Hot Swap \| Transition to M7") and
          sel_has(lab, r"S3 Hot Swap \| Transition to M0"), "extraction: M7 then M0 in the SEL")
    check(labmod.ipmitool(lab, "a", "-t", "0x86", "mc", "info", check=False).returncode != 0,
          "extraction: the IPMC is gone")
    eventually("extraction: the others drop blade3", lambda: members(lab, 1) == ["blade1", "blade2"])
    repair(lab, "extraction", "3")
    eventually("extraction repaired: blade3 back", lambda: members(lab, 1) == all_members(n), 15)

    # --- fencing through shelf manager A, B kept in agreement
    test_fence_two_managers(lab)

    # --- shelf manager crash: the standby answers; state replayed on restart
    #     (blade 3 fenced meanwhile)
    inject(lab, "temp-cr", "1")
    inject(lab, "shmc", "a")
    # one try with a 1 s timeout (the lab's usual retries take 6 s to fail)
    check(util.run(["ipmitool", "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H",
                    lab.shmc_addr("a"), "-U", "admin", "-P", "secret", "mc", "info"],
                   check=False, timeout=15).returncode != 0,
          "shmc: shelf manager A no longer answers")
    check(labmod.ipmitool(lab, "b", "sdr", "list", check=False).returncode == 0,
          "shmc: shelf manager B still answers")
    repair(lab, "shmc", "a")
    st = labmod.ipmitool(lab, "a", "-t", "0x82", "sensor", "get", "CPU Temp").stdout
    check(re.search(r"Status\s*:\s*Upper Critical", st) is not None,
          "shmc repaired: the restarted shelf manager shows the injected temperature")
    test_unfence_two_managers(lab)
    repair(lab, "temp-cr", "1")
    check(lab.state.get("faults") == {}, "no fault left recorded")


def test_concurrent(lab_b_name):
    """A second lab beside the first: its own subnets, shelf and SEL."""
    t0 = time.monotonic()
    lab2 = labmod.up(lab_b_name, 1)
    ok("a second lab up beside the first in %.1f s" % (time.monotonic() - t0))
    check(lab2.index != Lab.load(LAB3).index, "the labs use different subnets")
    lab3 = Lab.load(LAB3)
    before = sel(lab3).count("Uncorrectable ECC")
    inject(lab2, "ecc", "1")
    check(sel_has(lab2, r"S1 Memory ECC \| Uncorrectable ECC") and
          sel(lab3).count("Uncorrectable ECC") == before,
          "an injection in one lab shows only in that lab's shelf")
    check(members(lab3, 1) == all_members(3) and members(lab2, 1) == ["blade1"],
          "each lab's corosync sees only its own blades")
    labmod.down(lab_b_name)
    check(labmod.leftovers(lab_b_name) == [], "the second lab's down leaves nothing")


def main():
    global LAB3
    if os.geteuid() != 0:
        skip("needs root (namespaces, bridges, mounts)")
    try:
        labmod.check_host()
    except LabError as e:
        skip(str(e))
    tag = "%04x" % (os.getpid() & 0xFFFF)
    lab2, LAB3, labc, labs = "lt2" + tag, "lt3" + tag, "ltc" + tag, "lts" + tag
    netns_before = os.path.isdir("/run/netns")
    try:
        test_two_blades(lab2)
        t0 = time.monotonic()
        lab = labmod.up(LAB3, 3, managers=2)
        TIMES["up 3 blades"] = time.monotonic() - t0
        check(TIMES["up 3 blades"] < 30, "up --blades 3 --shelf-managers 2 in %.1f s (< 30 s)"
              % TIMES["up 3 blades"])
        for s in (1, 2, 3):
            check(members(lab, s) == all_members(3) and quorate(lab, s),
                  "blade %d: quorate, 3 members" % s)
        test_faults(lab)
        test_concurrent(labc)
        t0 = time.monotonic()
        labmod.down(LAB3)
        TIMES["down 3 blades"] = time.monotonic() - t0
        check(labmod.leftovers(LAB3) == [], "down of the 3-blade lab leaves nothing (%.1f s)"
              % TIMES["down 3 blades"])
        test_shelf_only(labs)
    except LabError as e:
        check(False, "lab error: %s" % e)
    finally:
        for name in (lab2, LAB3, labc, labs):
            if os.path.exists("/tmp/atca-lab-" + name):
                try:
                    labmod.down(name)
                except LabError as e:
                    print("cleanup of %s: %s" % (name, e))
    if not netns_before:
        # a lab of a test running beside this one (make -j2 check) may have
        # been made while ours held /run/netns, and then leaves it, empty:
        # what must not stay is a namespace
        left = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        check(not left, "/run/netns removed again, or left empty by a lab beside this "
              "test (%s)" % (", ".join(left) or "nothing in it"))
    print("timings: " + ", ".join("%s %.2f s" % (k, v) for k, v in TIMES.items() if v is not None))
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        return 1
    print("lab selftest: all checks passed")
    return 0


LAB3 = None
if __name__ == "__main__":
    sys.exit(main())
