#!/usr/bin/env python3
"""A stranger on the replication network, for tests/integration/vmft.py:
speaks the vmft protocol (v4, atca-vmft(8)) without the pair's key.

  vmft_stranger.py primary ADDR PORT [noauth]
      connects to a backup engine as a primary would: HELLO (announcing
      authentication, or not with noauth), then, if the backup sends its
      AUTH, answers with a proof and a frame MAC made with a key of its own.
      Prints one JSON line: what the backup sent (frame types, bytes) and
      whether it closed the connection.

  vmft_stranger.py backup ADDR PORT SECONDS
      listens where the backup engine would and, for each primary that
      connects within SECONDS, reads its HELLO, answers with an AUTH made
      with a key of its own and counts every byte the primary sends after
      its HELLO (a primary must send none: nothing of the guest before the
      backup proved the key). Prints one JSON line.

Frame checksums (XXH3-64) are right, so what refuses the stranger is the
authentication, not the checksum layer.
"""

import ctypes
import json
import os
import socket
import struct
import sys
import time

MAGIC, VERSION, HDR = 0x31544656, 4, 48
HELLO, WELCOME, AUTH, PING = 1, 2, 13, 8
NAMES = {1: "HELLO", 2: "WELCOME", 3: "EPOCH_BEGIN", 4: "PAGES", 5: "DEVSTATE",
         6: "EPOCH_END", 7: "ACK", 8: "PING", 9: "BYE", 10: "DISK", 11: "EVENTS",
         12: "TMPL", 13: "AUTH"}

_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH3_64bits.restype = ctypes.c_uint64
_xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def frame(ftype, seq, payload=b"", epoch=0, tag=None):
    head = struct.pack("<IHHIIQ", MAGIC, VERSION, ftype, len(payload), seq, epoch)
    check = _xxh.XXH3_64bits(head + payload, len(head) + len(payload))
    return head + struct.pack("<Q", check) + (tag if tag is not None else bytes(16)) + payload


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    head = recv_exact(s, HDR)
    if head is None:
        return None
    _, _, ftype, length, _, _ = struct.unpack("<IHHIIQ", head[:24])
    payload = recv_exact(s, length) if length else b""
    if payload is None:
        return None
    return ftype, payload


def hello(auth, vm="fg1"):
    nonce = os.urandom(32) if auth else bytes(32)
    flags = 1 | (2 if auth else 0)
    return struct.pack("<QQQII", 0x5eed, 64 << 20, 0, 4096, flags) + \
        vm.encode().ljust(64, b"\0") + struct.pack("<Q", 1 << 20) + nonce, nonce


def as_primary(addr, port, auth):
    out = {"got": [], "closed": False, "bytes": 0}
    s = socket.create_connection((addr, port), 3)
    s.settimeout(3)
    payload, nonce = hello(auth)
    s.sendall(frame(HELLO, 0, payload))
    try:
        f = read_frame(s)
        if f is not None:
            out["got"].append(NAMES.get(f[0], str(f[0])))
            out["bytes"] += HDR + len(f[1])
            if f[0] == AUTH:
                # a proof and a tag made with a key the backup does not hold
                s.sendall(frame(AUTH, 1, nonce + os.urandom(32), tag=os.urandom(16)))
        while f is not None:
            f = read_frame(s)
            if f is not None:
                out["got"].append(NAMES.get(f[0], str(f[0])))
                out["bytes"] += HDR + len(f[1])
        out["closed"] = True
    except socket.timeout:
        out["closed"] = False
    except OSError as e:  # reset: closed too
        out["closed"] = True
        out["error"] = str(e)
    return out


def as_backup(addr, port, seconds):
    out = {"connections": 0, "hellos": 0, "after_hello": 0, "frames_after_hello": []}
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(4)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ls.settimeout(max(0.1, end - time.monotonic()))
        try:
            c, _ = ls.accept()
        except socket.timeout:
            break
        out["connections"] += 1
        c.settimeout(3)
        try:
            f = read_frame(c)
            if f is None or f[0] != HELLO:
                continue
            out["hellos"] += 1
            c.sendall(frame(AUTH, 0, os.urandom(64)))
            while True:
                data = c.recv(65536)
                if not data:
                    break
                out["after_hello"] += len(data)
                if len(data) >= 8:
                    out["frames_after_hello"].append(
                        NAMES.get(struct.unpack("<H", data[6:8])[0], "?"))
        except OSError:
            pass
        finally:
            c.close()
    ls.close()
    return out


def main():
    role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "primary":
        r = as_primary(addr, port, not (len(sys.argv) > 4 and sys.argv[4] == "noauth"))
    else:
        r = as_backup(addr, port, float(sys.argv[4]))
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
