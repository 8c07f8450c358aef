#!/usr/bin/env bash
# The shelf lab's own tests (tests/lab/selftest.py): 2 and 3 blades, every
# fault kind, two labs side by side, nothing left behind.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/lab/selftest.py"
