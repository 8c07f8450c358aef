#!/usr/bin/env python3
"""Build / patch / show the counter-guest disk image.

  mkguest.py build guest.bin guest.img [options]   # flat binary -> image
  mkguest.py patch guest.img [options]             # change parameters in place
  mkguest.py show  guest.img                       # print parameter block

Parameter block: image byte offset 512 (sector 1, guest-physical 0x7E00),
little-endian except the IPv4 addresses (the 4 address bytes in order,
i.e. network byte order); 0 in a field marked "0 ->" means that default:
  0x00 char[8] magic "PGPARAM1"
  0x08 u32 pps          pages dirtied per second (0 = off)
  0x0C u32 period_us    print period in microseconds (0 -> 10000)
  0x10 u32 flags        bit0 disk, bit1 net, bit2 'S' stats lines,
                        bit3 disk_pio (force ATA PIO instead of bus-master DMA)
  0x14 u32 disk_lba     LBA28 sector that receives the counter
  0x18 u32 region_base  dirty region base, bytes (>= 2 MiB)
  0x1C u32 region_pages dirty region size in 4 KiB pages
  0x20 u32 nic_base     NE2000 I/O base (0x300)
  0x24 u32 check_iters  counter iterations between TSC checks (0 -> 1024)
  0x28 u64 inject_at    debug: flip bit 40 of the RAM counter once the
                        counter reaches this value (0 = never)
  0x30 u32 disk_drive   0 primary master, 1 primary slave
  0x34 u32 io_every     do disk/net I/O every N periods (0 -> 1)
  0x38 u8[4] net_src_ip IPv4 source of the UDP datagrams (0 -> 10.0.0.2)
  0x3C u8[4] net_dst_ip IPv4 destination (0 -> 255.255.255.255)
  0x40 u16 net_src_port UDP source port (0 -> 7777)
  0x42 u16 net_dst_port UDP destination port (0 -> 7777)
  0x44 u32 disk_sectors sectors written per I/O cycle (0 -> 1): the record,
                        plus disk_sectors-1 (at most 255) filler sectors
                        rotating through LBA 1024..disk_lba-1
The IPv4 header checksum is not a parameter: the guest computes it at boot.
"""
import argparse
import ipaddress
import os
import struct
import sys

PARAM_OFF = 512
MAGIC = b"PGPARAM1"
FIELDS = [  # name, offset, struct fmt
    ("pps", 0x08, "<I"),
    ("period_us", 0x0C, "<I"),
    ("flags", 0x10, "<I"),
    ("disk_lba", 0x14, "<I"),
    ("region_base", 0x18, "<I"),
    ("region_pages", 0x1C, "<I"),
    ("nic_base", 0x20, "<I"),
    ("check_iters", 0x24, "<I"),
    ("inject_at", 0x28, "<Q"),
    ("disk_drive", 0x30, "<I"),
    ("io_every", 0x34, "<I"),
    ("net_src_ip", 0x38, ">I"),   # big-endian: the address bytes in order
    ("net_dst_ip", 0x3C, ">I"),
    ("net_src_port", 0x40, "<H"),
    ("net_dst_port", 0x42, "<H"),
    ("disk_sectors", 0x44, "<I"),
]
IP_FIELDS = ("net_src_ip", "net_dst_ip")
F_DISK, F_NET, F_STATS, F_DISK_PIO = 1, 2, 4, 8
FLAGS = (("disk", F_DISK), ("net", F_NET), ("stats", F_STATS), ("disk_pio", F_DISK_PIO))


def read_params(img):
    blk = img[PARAM_OFF:PARAM_OFF + 512]
    if blk[:8] != MAGIC:
        sys.exit("no PGPARAM1 block at offset 512")
    return {n: struct.unpack_from(f, blk, o)[0] for n, o, f in FIELDS}


def write_params(img, p):
    for n, o, f in FIELDS:
        struct.pack_into(f, img, PARAM_OFF + o, p[n])


def apply_args(p, a):
    for n, _, _ in FIELDS:
        v = getattr(a, n, None)
        if v is not None:
            p[n] = v
    for flag, bit in FLAGS:
        v = getattr(a, flag)
        if v is True:
            p["flags"] |= bit
        elif v is False:
            p["flags"] &= ~bit
    if p["disk_lba"] >= 1 << 28:
        sys.exit("disk_lba must fit LBA28")
    if p["disk_sectors"] > 256:
        sys.exit("disk_sectors: at most 256 (the record + 255 filler sectors)")
    return p


def show(p, out=sys.stdout):
    for n, o, _ in FIELDS:
        v = p[n]
        extra = ""
        if n == "flags":
            extra = "  (" + ",".join(s for s, b in FLAGS if v & b) + ")"
        if n in ("region_base", "nic_base"):
            extra = "  (0x%x)" % v
        if n in IP_FIELDS:
            extra = "  (%s)" % ip_str(v)
        print("  %-13s @0x%03x = %d%s" % (n, PARAM_OFF + o, v, extra), file=out)


def auto_int(s):
    return int(s, 0)


def ip_int(s):
    """An IPv4 address as the u32 the block stores: "10.0.0.2", or a number."""
    if isinstance(s, int):
        return s
    try:
        return int(ipaddress.IPv4Address(s))
    except ValueError:
        return int(s, 0)


def ip_str(v):
    return str(ipaddress.IPv4Address(v)) if v else "default"


def add_opts(ap):
    ap.add_argument("--pps", type=auto_int, help="pages dirtied per second")
    ap.add_argument("--period-us", dest="period_us", type=auto_int)
    ap.add_argument("--flags", type=auto_int, help="raw flags word")
    ap.add_argument("--disk-lba", dest="disk_lba", type=auto_int)
    ap.add_argument("--disk-drive", dest="disk_drive", type=auto_int, choices=(0, 1))
    ap.add_argument("--region-base", dest="region_base", type=auto_int)
    ap.add_argument("--region-pages", dest="region_pages", type=auto_int)
    ap.add_argument("--nic-base", dest="nic_base", type=auto_int)
    ap.add_argument("--check-iters", dest="check_iters", type=auto_int)
    ap.add_argument("--inject-at", dest="inject_at", type=auto_int)
    ap.add_argument("--io-every", dest="io_every", type=auto_int)
    ap.add_argument("--disk-sectors", dest="disk_sectors", type=auto_int,
                    help="sectors written per I/O cycle (record + filler, <= 256)")
    ap.add_argument("--net-src-ip", dest="net_src_ip", type=ip_int)
    ap.add_argument("--net-dst-ip", dest="net_dst_ip", type=ip_int)
    ap.add_argument("--net-src-port", dest="net_src_port", type=auto_int)
    ap.add_argument("--net-dst-port", dest="net_dst_port", type=auto_int)
    for flag, _ in FLAGS:
        opt = flag.replace("_", "-")
        g = ap.add_mutually_exclusive_group()
        g.add_argument("--" + opt, dest=flag, action="store_true", default=None)
        g.add_argument("--no-" + opt, dest=flag, action="store_false")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("bin")
    b.add_argument("img")
    b.add_argument("--size", type=auto_int, default=1 << 20,
                   help="minimum image size in bytes (default 1 MiB)")
    add_opts(b)
    pt = sub.add_parser("patch")
    pt.add_argument("img")
    add_opts(pt)
    s = sub.add_parser("show")
    s.add_argument("img")
    a = ap.parse_args()

    if a.cmd == "build":
        img = bytearray(open(a.bin, "rb").read())
        if len(img) < 1024 or img[510:512] != b"\x55\xaa":
            sys.exit("%s: not a counter-guest binary (no boot signature)" % a.bin)
        p = apply_args(read_params(img), a)
        size = max(a.size, len(img), (p["disk_lba"] + 1) * 512)
        size = (size + 511) // 512 * 512
        img += bytes(size - len(img))
        write_params(img, p)
        tmp = a.img + ".tmp"
        with open(tmp, "wb") as f:
            f.write(img)
        os.replace(tmp, a.img)
        print("%s: %d bytes (code %d bytes)" % (a.img, size, os.path.getsize(a.bin)))
        show(p)
    elif a.cmd == "patch":
        with open(a.img, "r+b") as f:
            f.seek(0)
            head = bytearray(f.read(1024))
            p = apply_args(read_params(head), a)
            write_params(head, p)
            f.seek(PARAM_OFF)
            f.write(head[PARAM_OFF:PARAM_OFF + 512])
            f.seek(0, 2)
            if f.tell() < (p["disk_lba"] + 1) * 512:
                f.truncate((p["disk_lba"] + 1) * 512)
        show(p)
    else:
        show(read_params(open(a.img, "rb").read(1024)))


if __name__ == "__main__":
    main()
