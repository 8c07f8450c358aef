#!/usr/bin/env bash
# atca-ftd's hardware awareness on the shelf lab: tests/integration/hardware.py
# (every event kind, an unreachable IPMC, SEL clear, shelf-manager
# switchover, fence and unfence with and without FRU activation).
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/integration/hardware.py"
