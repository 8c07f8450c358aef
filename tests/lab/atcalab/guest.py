"""Test guests: the counter guest (tests/lab/guest), built from source with
as/ld, run as libvirt domains on the blades.

The guest boots from a raw disk image, enters long mode, drops to ring 3
and counts, in RAM and in a register, checking they agree. Every period
(10 ms by default) it prints "C <counter>" on its serial port; optionally it
dirties a number of pages per second, and every io_every periods:

- disk: reads back the record sector (DISK_LBA) and compares it with its
  RAM copy of the record it last wrote ("DMISMATCH want <n> got <m>" on a
  difference: resumed from a checkpoint whose disk is older or newer than
  its RAM), then writes a new record: "PGDISK01", counter, period, TSC,
  write sequence number (disk_record() reads it). At boot it prints
  "D <counter>" (or "D none") from the record it finds. disk_sectors > 1
  adds that many - 1 filler sectors per cycle (LBA 1024..DISK_LBA-1) as a
  load for benchmarks; the S lines show disk_bytes and write latencies.
- net: sends one UDP/IPv4 broadcast datagram (to net_dst_ip:net_port,
  from net_src_ip:net_port) with "PGNET002", counter, send sequence number
  and TSC (parse_udp_counters() reads them from the pcap).

Images, serial logs and packet captures live in the lab's shared storage
(/var/lib/libvirt/images in every blade, DIR/shared on the host), so any
blade can start any guest.
"""

import ipaddress
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
DISK_LBA = 2047       # the record: "PGDISK01", counter, period, tsc, write seq (u64 LE)
DISK_MAGIC = b"PGDISK01"
NET_MAGIC = b"PGNET002"  # UDP payload: magic, counter, send seq, tsc (u64 LE)
NET_PORT = 7777

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


def make_image(lab, name, pps=1000, period_us=10000, disk=False, net=False, stats=True,
               net_src_ip="10.0.0.2", net_dst_ip="255.255.255.255", net_port=NET_PORT,
               disk_sectors=1, io_every=1, disk_pio=False):
    """The guest's image in the shared storage. net_port is both UDP ports;
    disk_sectors (1..256) the sectors written per I/O cycle (the record and
    disk_sectors - 1 filler sectors); disk and net I/O every io_every
    periods; disk_pio: ATA PIO instead of bus-master DMA."""
    if not re.match(r"^[a-z][a-z0-9-]{0,30}$", name):
        raise LabError("guest name '%s': lower-case letters, digits and '-'" % name)
    if not 1 <= disk_sectors <= 256:
        raise LabError("disk_sectors %d: 1 to 256" % disk_sectors)
    if not 0 < net_port < 65536:
        raise LabError("net_port %d: 1 to 65535" % net_port)
    try:
        src, dst = int(ipaddress.IPv4Address(net_src_ip)), int(ipaddress.IPv4Address(net_dst_ip))
    except ValueError as e:
        raise LabError("guest %s: %s" % (name, e))
    img = bytearray(open(build_binary(lab.path("guest-build")), "rb").read())
    p = mkguest.read_params(img)
    p.update(pps=pps, period_us=period_us, disk_lba=DISK_LBA, net_src_ip=src, net_dst_ip=dst,
             net_src_port=net_port, net_dst_port=net_port, disk_sectors=disk_sectors,
             io_every=io_every)
    p["flags"] = (mkguest.F_DISK if disk else 0) | (mkguest.F_NET if net else 0) | \
        (mkguest.F_STATS if stats else 0) | (mkguest.F_DISK_PIO if disk_pio else 0)
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
    """(magic, counter) of the disk sector the guest writes, or None (see
    also disk_record)."""
    try:
        with open(lab.path("shared", name + ".img"), "rb") as f:
            f.seek(DISK_LBA * 512)
            blk = f.read(16)
    except FileNotFoundError:
        return None
    if len(blk) < 16:
        return None
    return blk[:8], struct.unpack("<Q", blk[8:16])[0]


def disk_record(image_path):
    """(counter, seq) of the record at DISK_LBA of a disk image, or None
    when there is no valid record (no file, too short, wrong magic)."""
    try:
        with open(image_path, "rb") as f:
            f.seek(DISK_LBA * 512)
            blk = f.read(40)
    except FileNotFoundError:
        return None
    if len(blk) < 40 or blk[:8] != DISK_MAGIC:
        return None
    counter, seq = struct.unpack_from("<Q", blk, 8)[0], struct.unpack_from("<Q", blk, 32)[0]
    return counter, seq


def pcap_frames(pcap_path):
    """The frames of a pcap file (QEMU's filter-dump: Ethernet), in order;
    a record QEMU is still writing is left out."""
    try:
        data = open(pcap_path, "rb").read()
    except FileNotFoundError:
        return []
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):  # micro/nanosecond
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        return []
    if struct.unpack_from(order + "I", data, 20)[0] != 1:  # LINKTYPE_ETHERNET
        return []
    out, i = [], 24
    while i + 16 <= len(data):
        incl = struct.unpack_from(order + "I", data, i + 8)[0]
        if i + 16 + incl > len(data):
            break
        out.append(data[i + 16:i + 16 + incl])
        i += 16 + incl
    return out


def ip_checksum_ok(hdr):
    s = sum(struct.unpack("!%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def parse_udp_counters(pcap_path, port=None):
    """(seq, counter) of every valid PGNET002 datagram in a pcap, in capture
    order: IPv4 with a correct header checksum, not fragmented, UDP (to
    port, if given), payload starting with the magic. Anything else is
    ignored."""
    out = []
    for fr in pcap_frames(pcap_path):
        if len(fr) < 14 + 20 or fr[12:14] != b"\x08\x00":
            continue
        ip = fr[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[0] >> 4 != 4 or ihl < 20 or len(ip) < ihl + 8 or ip[9] != 17:
            continue
        total = struct.unpack_from("!H", ip, 2)[0]
        if total < ihl + 8 or total > len(ip) or not ip_checksum_ok(ip[:ihl]):
            continue
        if struct.unpack_from("!H", ip, 6)[0] & 0x3FFF:  # a fragment
            continue
        udp = ip[ihl:total]
        dport, ulen = struct.unpack_from("!2xHH", udp)
        if port is not None and dport != port:
            continue
        payload = udp[8:ulen]
        if ulen < 8 + 32 or ulen > len(udp) or payload[:8] != NET_MAGIC:
            continue
        counter, seq = struct.unpack_from("<QQ", payload, 8)
        out.append((seq, counter))
    return out


def net_counters(lab, name):
    """Counters carried by the guest's datagrams in its packet capture."""
    return [c for _, c in parse_udp_counters(lab.path("shared", name + ".pcap"))]


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
