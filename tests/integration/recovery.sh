#!/usr/bin/env bash
# Recovery on the shelf lab: tests/integration/recovery.py (VM crash restart
# and escalation, predictive migration, hypervisor kill, power loss with the
# daemon killed mid-fence, shelf manager down during a fence, switchover,
# maintenance, and a network partition of 3 blades: one copy of every VM).
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/integration/recovery.py"
