"""Fault injection: each kind produces what real hardware or software would
show, and has a matching repair. The lab records the simulated hardware
state (sensor readings, asserted bits, hot-swap state, disabled IPMCs) so
that a restarted shelf manager comes back agreeing with it.

  kind          target   what happens
  temp-nc|cr|nr BLADE    CPU temperature above upper non-critical / critical /
                         non-recoverable: threshold events in the SEL
  volt-nc|cr|nr BLADE    12 V rail below lower non-critical / critical /
                         non-recoverable
  ecc           BLADE    memory ECC uncorrectable (sensor state + SEL record)
  ierr          BLADE    processor IERR (sensor state + SEL record)
  m7            BLADE    the shelf manager loses the IPMC: hot-swap M7, bridged
                         commands fail with CC 0x83; the payload keeps running
  extraction    BLADE    surprise extraction: power and links gone at once,
                         hot-swap M7 then M0 (not installed), IPMC gone
  power         BLADE    blade power loss: every process of the blade killed at
                         once, links down, unrequested hot-swap M4->M6->M1
  hypervisor    BLADE    libvirtd killed (--what qemu: every QEMU; all: both)
  vm            GUEST    one QEMU killed (the guest crashes)
  partition     BLADE    the blade's management link down (--link repl|all)
  corosync      BLADE    corosync killed
  picmg         BLADE    the IPMC answers every FRU activation command
                         (policy, Set FRU Activation, FRU Control) with
                         CC 0xC1, like an IPMC without them: managers must
                         fall back to Chassis Control
  shmc          [a|b]    a shelf manager (default: a, the active one) killed

Hot-swap states are set through the shelf managers' FRU activation plugin
(console "picmg_set"), so that its state and the sensor always agree. In a
--shelf-only lab the blades have no payload processes: power and extraction
only change the hot-swap states, and the kinds that need a running blade
(hypervisor, vm, partition, corosync) are refused.
"""

import signal
import time

from . import blade, guest, lab as labmod, shelf, util
from .util import LabError

KINDS = ["temp-nc", "temp-cr", "temp-nr", "volt-nc", "volt-cr", "volt-nr", "ecc", "ierr",
         "m7", "extraction", "power", "hypervisor", "vm", "partition", "corosync", "picmg",
         "shmc"]
NEED_PAYLOAD = ("hypervisor", "vm", "partition", "corosync")
# hot-swap causes (PICMG 3.0 event data 2, high nibble)
CAUSE_NORMAL, CAUSE_LOST, CAUSE_EXTRACTION, CAUSE_UNEXPECTED = 0, 4, 6, 9


def _desc(lab):
    return shelf.ShelfDescription(lab.state["shelf_file"])


def _hw(lab, slot):
    return lab.state.setdefault("hw", {}).setdefault(str(slot), {})


def _slot(lab, target):
    if target is None:
        raise LabError("this fault needs a blade (e.g. blade2 or 2)")
    return labmod.addr_slot(lab, target)


def _addr(slot):
    return "0x%02x" % shelf.blade_addr(slot)


def _set_reading(lab, slot, sensor, raw):
    labmod.console_all(lab, ["sensor_set_value %s 0 %d %d 1" % (_addr(slot), sensor.number, raw)])
    readings = _hw(lab, slot).setdefault("readings", {})
    if raw == sensor.nominal:
        readings.pop(str(sensor.number), None)
    else:
        readings[str(sensor.number)] = raw


def _set_bit(lab, slot, sensor, bit, on):
    labmod.console_all(lab, ["sensor_set_bit %s 0 %d %d %d 1"
                             % (_addr(slot), sensor.number, bit, 1 if on else 0)])
    bits = _hw(lab, slot).setdefault("bits", {})
    cur = set(bits.get(str(sensor.number), []))
    cur = cur | {bit} if on else cur - {bit}
    if cur:
        bits[str(sensor.number)] = sorted(cur)
    else:
        bits.pop(str(sensor.number), None)


def _hotswap(lab, slot, states, cause):
    """Walks the blade's FRU through states, with SEL events, on every shelf
    manager; reaching M4 also clears the activation lock."""
    labmod.console_all(lab, [labmod.hotswap_cmd(lab, slot, m, cause=cause,
                                                lock=False if m == 4 else None)
                             for m in states])
    hw = _hw(lab, slot)
    hw["mstate"] = states[-1]
    if states[-1] == 4:
        hw.pop("locked", None)


def _ipmc(lab, slot, enabled):
    labmod.console_all(lab, ["mc_%s %s" % ("enable" if enabled else "disable", _addr(slot))])
    _hw(lab, slot)["ipmc_disabled"] = not enabled


def _links(lab, slot, up, which=("m", "r")):
    if not labmod.shelf_only(lab):
        labmod.set_links(lab, slot, up, which)


def _threshold(kind):
    level = kind.split("-")[1]
    if kind.startswith("temp"):
        return "CPU Temp", {"nc": "unc", "cr": "uc", "nr": "unr"}[level], +1
    return "12V Rail", {"nc": "lnc", "cr": "lc", "nr": "lnr"}[level], -1


def inject(lab, kind, target=None, what="libvirtd", link="mgmt"):
    """Injects a fault; returns a one-line description of what was done."""
    if kind not in KINDS:
        raise LabError("unknown fault '%s' (one of: %s)" % (kind, ", ".join(KINDS)))
    if kind in NEED_PAYLOAD and labmod.shelf_only(lab):
        raise LabError("'%s' needs blade payloads: lab '%s' is --shelf-only" % (kind, lab.name))
    lab.sync()  # hooks may have changed the blades meanwhile
    key = "%s:%s" % (kind, target or "")
    t0 = time.time()
    if kind == "partition":
        key += ":" + link
    try:
        done = _apply(lab, kind, target, what, link)
    except LabError as e:
        if "ipmi_sim console" not in str(e):
            raise
        # the command may have been carried out before the console lost
        # its prompt (a loaded machine): kept as a fault, so that a repair
        # undoes it (the soak once left a blade in M7 this way)
        lab.state.setdefault("faults", {})[key] = {"kind": kind, "target": target, "at": t0,
                                                   "what": what, "link": link,
                                                   "uncertain": str(e)}
        lab.save()
        raise
    lab.state.setdefault("faults", {})[key] = {"kind": kind, "target": target, "at": t0,
                                               "what": what, "link": link}
    lab.save()
    return done


def _apply(lab, kind, target, what, link):
    """Carries fault kind out; returns what was done."""
    if kind.startswith(("temp-", "volt-")):
        slot = _slot(lab, target)
        name, th, sign = _threshold(kind)
        s = _desc(lab).blade_sensor(name)
        raw = s.th[th] + sign
        _set_reading(lab, slot, s, raw)
        done = "%s of blade %d set to raw %d (beyond %s)" % (name, slot, raw, th)
    elif kind in ("ecc", "ierr"):
        slot = _slot(lab, target)
        s = _desc(lab).blade_sensor("Memory ECC" if kind == "ecc" else "CPU Status")
        _set_bit(lab, slot, s, 1 if kind == "ecc" else 0, True)
        done = "%s asserted on blade %d" % ("uncorrectable ECC" if kind == "ecc" else "IERR", slot)
    elif kind == "m7":
        slot = _slot(lab, target)
        _hotswap(lab, slot, [7], CAUSE_LOST)
        _ipmc(lab, slot, False)
        done = "blade %d: hot-swap M7, IPMC unreachable" % slot
    elif kind == "extraction":
        slot = _slot(lab, target)
        labmod.payload_off(lab, slot)
        _hotswap(lab, slot, [7, 0], CAUSE_EXTRACTION)
        _ipmc(lab, slot, False)
        done = "blade %d pulled out: power and links gone, hot-swap M7 then M0" % slot
    elif kind == "power":
        slot = _slot(lab, target)
        labmod.payload_off(lab, slot)
        _hotswap(lab, slot, [6, 1], CAUSE_UNEXPECTED)
        done = "blade %d lost power: %s, hot-swap M4->M6->M1" % (
            slot, "no payload (shelf only)" if labmod.shelf_only(lab)
            else "all its processes killed")
    elif kind == "picmg":
        slot = _slot(lab, target)
        labmod.console_all(lab, ["picmg_unsupported %s on" % _addr(slot)])
        _hw(lab, slot)["picmg_unsupported"] = True
        done = "blade %d: the IPMC answers FRU activation commands with CC 0xC1" % slot
    elif kind == "hypervisor":
        slot = _slot(lab, target)
        if what not in ("libvirtd", "qemu", "all"):
            raise LabError("--what: libvirtd, qemu or all")
        if what in ("libvirtd", "all"):
            blade.stop_daemon(lab, slot, "libvirtd", signal.SIGKILL)
        if what in ("qemu", "all"):
            for pid in guest.qemu_pids(lab, slot):
                util.kill(pid, signal.SIGKILL)
        done = "blade %d: %s killed" % (slot, what if what != "all" else "libvirtd and every QEMU")
    elif kind == "vm":
        g = lab.state.get("guests", {}).get(target)
        if g is None:
            raise LabError("no guest '%s' (atca-lab guest list)" % target)
        pids = guest.qemu_pids(lab, g["blade"], target)
        if not pids:
            raise LabError("guest %s has no running QEMU" % target)
        for pid in pids:
            util.kill(pid, signal.SIGKILL)
        done = "QEMU of guest %s (blade %d) killed" % (target, g["blade"])
    elif kind == "partition":
        slot = _slot(lab, target)
        which = {"mgmt": ("m",), "repl": ("r",), "all": ("m", "r")}.get(link)
        if which is None:
            raise LabError("--link: mgmt, repl or all")
        _links(lab, slot, False, which)
        done = "blade %d cut off (%s link down)" % (slot, link)
    elif kind == "corosync":
        slot = _slot(lab, target)
        blade.stop_daemon(lab, slot, "corosync", signal.SIGKILL)
        done = "corosync of blade %d killed" % slot
    else:  # shmc
        which = (target or "a").lower()
        if which not in lab.state.get("shmc", {}):
            raise LabError("no shelf manager '%s' (a%s)" % (which, " or b" if
                                                            len(lab.state["shmc"]) > 1 else ""))
        util.kill(lab.state["shmc"][which]["pid"], signal.SIGKILL)
        done = "shelf manager %s killed" % which.upper()
    return done


def repair(lab, kind, target=None, what="libvirtd", link="mgmt"):
    if kind not in KINDS:
        raise LabError("unknown fault '%s' (one of: %s)" % (kind, ", ".join(KINDS)))
    if kind in NEED_PAYLOAD and labmod.shelf_only(lab):
        raise LabError("'%s' needs blade payloads: lab '%s' is --shelf-only" % (kind, lab.name))
    lab.sync()
    key = "%s:%s" % (kind, target or "")
    if kind == "partition":
        key += ":" + link
    f = lab.state.get("faults", {}).get(key, {})
    what = f.get("what", what)
    if kind.startswith(("temp-", "volt-")):
        slot = _slot(lab, target)
        name = _threshold(kind)[0]
        s = _desc(lab).blade_sensor(name)
        _set_reading(lab, slot, s, s.nominal)
        done = "%s of blade %d back to nominal" % (name, slot)
    elif kind in ("ecc", "ierr"):
        slot = _slot(lab, target)
        s = _desc(lab).blade_sensor("Memory ECC" if kind == "ecc" else "CPU Status")
        _set_bit(lab, slot, s, 1 if kind == "ecc" else 0, False)
        done = "%s cleared on blade %d" % (kind, slot)
    elif kind == "m7":
        slot = _slot(lab, target)
        _ipmc(lab, slot, True)
        _hotswap(lab, slot, [4], CAUSE_LOST)
        done = "blade %d: IPMC back, hot-swap M4" % slot
    elif kind in ("extraction", "power"):
        slot = _slot(lab, target)
        if kind == "extraction":
            _ipmc(lab, slot, True)
            # inserted, activation requested and done
            _hotswap(lab, slot, [1, 2, 3, 4], CAUSE_NORMAL)
        else:
            _hotswap(lab, slot, [2, 3, 4], CAUSE_NORMAL)
        labmod.payload_on(lab, slot)
        done = "blade %d back: hot-swap M4%s" % (
            slot, "" if labmod.shelf_only(lab) else ", holder, corosync and libvirtd restarted")
    elif kind == "picmg":
        slot = _slot(lab, target)
        labmod.console_all(lab, ["picmg_unsupported %s off" % _addr(slot)])
        _hw(lab, slot).pop("picmg_unsupported", None)
        done = "blade %d: the IPMC implements FRU activation again" % slot
    elif kind == "hypervisor":
        slot = _slot(lab, target)
        if what in ("libvirtd", "all") and not blade.daemon_pid(lab, slot, "libvirtd"):
            blade.start_libvirtd(lab, slot)
            util.wait_until("libvirtd of blade %d" % slot, lambda: blade.libvirt_ok(lab, slot))
        done = "blade %d: libvirtd running" % slot
    elif kind == "vm":
        g = lab.state.get("guests", {}).get(target)
        if g is None:
            raise LabError("no guest '%s'" % target)
        guest.virsh(lab, g["blade"], "start", target)
        done = "guest %s started again on blade %d" % (target, g["blade"])
    elif kind == "partition":
        slot = _slot(lab, target)
        which = {"mgmt": ("m",), "repl": ("r",), "all": ("m", "r")}[link]
        _links(lab, slot, True, which)
        done = "blade %d reconnected (%s)" % (slot, link)
    elif kind == "corosync":
        slot = _slot(lab, target)
        if not blade.daemon_pid(lab, slot, "corosync"):
            blade.start_corosync(lab, slot)
        done = "corosync of blade %d restarted" % slot
    else:
        which = (target or "a").lower()
        if util.alive(lab.state.get("shmc", {}).get(which, {}).get("pid")):
            done = "shelf manager %s is running" % which.upper()
        else:
            labmod.start_shmc(lab, which)
            done = "shelf manager %s restarted (hardware state replayed)" % which.upper()
    lab.state.get("faults", {}).pop(key, None)
    lab.save()
    return done
