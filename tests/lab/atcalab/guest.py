"""Test guests: the counter guest (tests/lab/guest), built from source with
as/ld, run as libvirt domains on the blades.

The guest boots from a raw disk image, enters long mode, drops to ring 3
and counts, in RAM and in a register, checking they agree. Every period
(10 ms by default) it prints "C <counter>" on its serial port; optionally it
dirties a number of pages per second, writes the counter to a disk sector
and sends it in an Ethernet frame. Images, serial logs and packet captures
live in the lab's shared storage (/var/lib/libvirt/images in every blade,
DIR/shared on the host), so any blade can start any guest.
"""

import os
import re
import shutil
import struct
import sys
import uuid
import xml.sax.saxutils

from . import blade, util
from .util import LabError

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(HERE, "guest")
SHARED_IN_BLADE = "/var/lib/libvirt/images"
COUNTER_GPA = 0x1008  # u64 RAM counter (after the magic "PGSTAT01" at 0x1000)
DISK_LBA = 2047       # sector receiving the counter: "PGDISK01", counter, period, tsc
NET_ETHERTYPE = 0x88B5

sys.path.insert(0, SRC)
import mkguest  # noqa: E402  (the image tool lives next to the sources)


def build_binary(outdir):
    """as + ld + objcopy: the flat guest binary (cached per lab)."""
    os.makedirs(outdir, exist_ok=True)
    binary = os.path.join(outdir, "guest.bin")
    if os.path.exists(binary):
        return binary
    for tool in ("as", "ld", "objcopy"):
        if shutil.which(tool) is None:
            raise LabError("%s not found (Debian package binutils)" % tool)
    obj, elf = os.path.join(outdir, "guest.o"), os.path.join(outdir, "guest.elf")
    util.run(["as", "--64", "-I", SRC, "-o", obj, os.path.join(SRC, "guest.S")])
    util.run(["ld", "-nostdlib", "-T", os.path.join(SRC, "guest.ld"), "-o", elf, obj])
    util.run(["objcopy", "-O", "binary", elf, binary])
    return binary


def make_image(lab, name, pps=1000, period_us=10000, disk=False, net=False, stats=True):
    if not re.match(r"^[a-z][a-z0-9-]{0,30}$", name):
        raise LabError("guest name '%s': lower-case letters, digits and '-'" % name)
    img = bytearray(open(build_binary(lab.path("guest-build")), "rb").read())
    p = mkguest.read_params(img)
    p.update(pps=pps, period_us=period_us, disk_lba=DISK_LBA)
    p["flags"] = (mkguest.F_DISK if disk else 0) | (mkguest.F_NET if net else 0) | \
        (mkguest.F_STATS if stats else 0)
    size = max(1 << 20, (DISK_LBA + 1) * 512)
    img += bytes(size - len(img))
    mkguest.write_params(img, p)
    path = lab.path("shared", name + ".img")
    with open(path + ".tmp", "wb") as f:
        f.write(img)
    os.replace(path + ".tmp", path)
    return path


def domain_xml(lab, name, memory_mb, net):
    kvm = lab.state.get("kvm", False)
    q = xml.sax.saxutils.quoteattr
    img = "%s/%s.img" % (SHARED_IN_BLADE, name)
    serial = "%s/%s.serial" % (SHARED_IN_BLADE, name)
    extra = ""
    if net:
        # The NE2000 (ISA) is not a libvirt NIC model: pass it straight to
        # QEMU, on a user-mode network, with every frame dumped to a pcap.
        pcap = "%s/%s.pcap" % (SHARED_IN_BLADE, name)
        extra = """  <qemu:commandline>
    <qemu:arg value='-netdev'/><qemu:arg value='user,id=n0,restrict=on'/>
    <qemu:arg value='-device'/><qemu:arg value='ne2k_isa,netdev=n0,iobase=0x300,irq=9'/>
    <qemu:arg value='-object'/><qemu:arg value=%s/>
  </qemu:commandline>
""" % q("filter-dump,id=d0,netdev=n0,file=" + pcap)
    # A fixed UUID per name, as a definition kept on shared storage has: a
    # guest defined on several blades is one domain to libvirt (a migration
    # onto a blade where it is defined but shut off updates that definition).
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, "atca-lab-guest:" + name))
    return """<domain type='%s' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='MiB'>%d</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <!-- cache none: libvirt calls a live migration safe only so, on
           storage it does not know to be shared (the lab's bind mount) -->
      <driver name='qemu' type='raw' cache='none'/>
      <source file=%s/>
      <target dev='hda' bus='ide'/>
    </disk>
    <serial type='file'>
      <source path=%s append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
%s</domain>
""" % ("kvm" if kvm else "qemu", name, uid, memory_mb, q(img), q(serial), extra)


def virsh(lab, slot, *args, check=True, timeout=60):
    blade.holder_of(lab, slot)  # a powered-off blade has no libvirtd
    return util.run(["virsh", "-q", "-c", blade.libvirt_uri(lab, slot)] + list(args),
                    check=check, timeout=timeout)


def start(lab, slot, name, memory_mb=128, pps=1000, period_us=10000, disk=False, net=False):
    if not lab.state.get("kvm"):
        util.log("note: no KVM (no /dev/kvm, or $ATCA_LAB_TCG set): guest %s runs under TCG "
                 "(software emulation)" % name)
    make_image(lab, name, pps=pps, period_us=period_us, disk=disk, net=net)
    for suffix in (".serial", ".pcap"):
        try:
            os.unlink(lab.path("shared", name + suffix))
        except FileNotFoundError:
            pass
    xmlfile = lab.path("shared", name + ".xml")
    util.write(xmlfile, domain_xml(lab, name, memory_mb, net))
    virsh(lab, slot, "define", xmlfile)  # read by virsh, on the host
    virsh(lab, slot, "start", name)
    lab.state.setdefault("guests", {})[name] = {"blade": slot, "memory_mb": memory_mb,
                                                "pps": pps, "disk": disk, "net": net}


def stop(lab, name):
    g = lab.state.get("guests", {}).pop(name, None)
    if g is None:
        raise LabError("no guest '%s'" % name)
    if util.alive(lab.blade(g["blade"]).get("holder")):
        virsh(lab, g["blade"], "destroy", name, check=False)
        virsh(lab, g["blade"], "undefine", name, check=False)


def state(lab, name):
    """libvirt's 'state (reason)' of the guest on its blade."""
    g = lab.state.get("guests", {}).get(name)
    if g is None:
        raise LabError("no guest '%s'" % name)
    p = virsh(lab, g["blade"], "domstate", "--reason", name, check=False)
    return p.stdout.strip() if p.returncode == 0 else "unknown"


def serial_lines(lab, name):
    """Complete lines of the guest's serial output: a line QEMU is still
    writing ("C 12" of "C 1234") would read as a smaller counter."""
    try:
        with open(lab.path("shared", name + ".serial"), errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines.pop()
    return lines


def counters(lab, name):
    """The C values printed so far, in order."""
    out = []
    for ln in serial_lines(lab, name):
        if ln.startswith("C ") and ln[2:].strip().isdigit():
            out.append(int(ln[2:]))
    return out


def disk_counter(lab, name):
    """(magic, counter) of the disk sector the guest writes, or None."""
    try:
        with open(lab.path("shared", name + ".img"), "rb") as f:
            f.seek(DISK_LBA * 512)
            blk = f.read(16)
    except FileNotFoundError:
        return None
    if len(blk) < 16:
        return None
    return blk[:8], struct.unpack("<Q", blk[8:16])[0]


def net_counters(lab, name):
    """Counters carried by the guest's frames in its packet capture."""
    try:
        data = open(lab.path("shared", name + ".pcap"), "rb").read()
    except FileNotFoundError:
        return []
    out, i = [], 24  # pcap global header
    while i + 16 <= len(data):
        incl = struct.unpack_from("<I", data, i + 8)[0]
        frame = data[i + 16:i + 16 + incl]
        i += 16 + incl
        if len(frame) >= 30 and struct.unpack(">H", frame[12:14])[0] == NET_ETHERTYPE \
                and frame[14:22] == b"PGCTCN01":
            out.append(struct.unpack("<Q", frame[22:30])[0])
    return out


def qemu_pids(lab, slot, name=None):
    """Host PIDs of the QEMU processes in a blade (of one domain, or all)."""
    holder = blade.holder_of(lab, slot)
    try:
        pidns = os.readlink("/proc/%d/ns/pid" % holder)
    except OSError:
        return []
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % d) != pidns:
                continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if not argv or not os.path.basename(argv[0]).startswith(b"qemu-system"):
            continue
        if name is None or ("guest=%s," % name).encode() in b" ".join(argv):
            out.append(int(d))
    return out
