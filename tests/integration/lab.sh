#!/usr/bin/env bash
# The shelf lab's own tests (tests/lab/selftest.py): 2 and 3 blades, every
# fault kind, two labs side by side, FRU activation through the shelf
# manager's plugin (fencing that really powers blades off and on), a 16-blade
# shelf-only lab, nothing left behind.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/lab/selftest.py"
