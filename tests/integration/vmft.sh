#!/usr/bin/env bash
# The checkpoint/replay engine on the shelf lab: tests/integration/vmft.py
# (a protected counter guest; its primary killed 50 times at random moments
# -- QEMU, engine, whole blade -- and the backup promoted: the guest goes on
# from the last committed epoch, its released output never goes back).
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/integration/vmft.py"
