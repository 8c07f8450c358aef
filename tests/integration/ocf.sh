#!/usr/bin/env bash
# The OCF resource agent agents/ocf/atca-ft-vm against real engines on the
# shelf lab: tests/integration/ocf.py (ocf-tester on a blade, then
# crm_resource --force-* on both blades as Pacemaker drives a promotable
# clone: start, cold-start promote, synchronised backup, refused promotion,
# switchover, failover after a power loss, atca-ftd down). Needs root,
# resource-agents (ocf-tester) and pacemaker-cli-utils (crm_resource);
# installs the agent in /usr/lib/ocf/resource.d/atca-ft/ for its duration.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export top_srcdir
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$top_srcdir/tests/integration/ocf.py"
