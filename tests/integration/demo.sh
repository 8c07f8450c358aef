#!/usr/bin/env bash
# The FT failover demo of the README's main command (scripts/demo.py: blade
# power loss, fence, promotion, the counter going on, SNMP notifications,
# repair and re-protection) must run green end to end. Skipped (77) without
# root or /dev/kvm, never passed silently.
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
export PYTHONDONTWRITEBYTECODE=1
[ "$(id -u)" -eq 0 ] || { echo "SKIP: demo: needs root (the shelf lab)"; exit 77; }
[ -c /dev/kvm ] || { echo "SKIP: demo: no /dev/kvm (the FT guest needs KVM)"; exit 77; }
exec python3 "$top_srcdir/scripts/demo.py" --lab "dt$(($$ % 1000))"
