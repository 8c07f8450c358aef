#!/usr/bin/env bash
# atca-ftd's SNMP notifications on the shelf lab, end to end:
# tests/integration/snmp.py (v2c and v3 authPriv traps and informs to
# snmptrapd in the lab's NMS namespace: fault raised and cleared, recovery
# started and succeeded, hot-swap changes, the rate limit of a flapping
# sensor, shelf-manager switchover, pair protection lost and restored and
# replication stalled from checkpoint engines (with /dev/kvm), informs
# acknowledged).
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/integration/snmp.py"
