#!/usr/bin/env python3
"""The lab network's receiver of the counter guest's UDP datagrams: run in a
lab namespace (ip netns exec NS udp_sink.py PORT OUT), it appends one line
"seq counter monotonic_ns" per valid PGNET002 datagram to OUT, so the test
can check that nothing a failover took back ever reached the network (the
send sequence never goes backwards)."""

import socket
import struct
import sys
import time


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(("0.0.0.0", port))
    with open(out, "a", buffering=1) as f:
        while True:
            data = s.recv(2048)
            if len(data) < 32 or data[:8] != b"PGNET002":
                continue
            counter, seq = struct.unpack_from("<QQ", data, 8)
            f.write("%d %d %d\n" % (seq, counter, time.monotonic_ns()))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
