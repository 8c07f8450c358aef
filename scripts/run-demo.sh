#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine (as root):
#
#   sudo ./scripts/run-demo.sh
#
# Sets up and builds atca-ft, then runs atca-ftd on the shipped example
# configuration and shows what an operator sees: atca-ftctl status (tables
# and JSON), a configuration reload that is rejected because the file is
# broken (the daemon keeps running on the old one), a good reload, and a
# clean stop. The simulated shelf with failover end to end replaces this
# once the lab and the recovery paths exist.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" -eq 0 ] || { echo "run-demo.sh: run as root (sudo $0)" >&2; exit 1; }
scripts/setup.sh

FTD=$top/build/src/daemon/atca-ftd
CTL=$top/build/src/cli/atca-ftctl
demo=$(mktemp -d /tmp/atca-ft-demo.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf -- "$demo"
}
trap cleanup EXIT
say() { printf '\n\033[1m>>> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# A private copy of the example, so the demo can break it without touching
# the repository; state, pidfile and IPC name are the example's own.
conf=$demo/atca-ftd.conf
sed -e "s|state_dir: /var/lib/atca-ft|state_dir: $demo/state|" \
    -e "s|pidfile: /run/atca-ftd.pid|pidfile: $demo/atca-ftd.pid|" \
    -e "s|ipc_name: atca-ft$|ipc_name: atca-ft-demo|" \
    -e "s|to_logfile: no|to_logfile: yes|" \
    -e "s|logfile: /var/log/atca-ft/atca-ftd.log|logfile: $demo/atca-ftd.log|" \
    etc/atca-ftd.conf.example >"$conf"
export ATCA_FT_IPC=atca-ft-demo

say "Validate the example configuration (effective configuration, first lines)"
run "$FTD" --check-config="$conf" | head -25

say "Start atca-ftd in the background (returns once the daemon is ready)"
run "$FTD" -c "$conf"
pid=$(cat "$demo/atca-ftd.pid")
echo "atca-ftd runs as pid $pid"

say "atca-ftctl version"
run "$CTL" version

say "atca-ftctl status"
run "$CTL" status

say "atca-ftctl status --json (daemon part)"
"$CTL" status --json | jq '.daemon'

say "Break the configuration and send SIGHUP: the reload is rejected"
cp "$conf" "$demo/good.conf"
printf 'vm {\n    name: broken\n    blade: 9\n}\n' >>"$conf"
run kill -HUP "$pid"
sleep 0.3
run "$CTL" status | sed -n '1,6p'
kill -0 "$pid" && echo "atca-ftd is still running, on configuration generation 1"

say "Fix it and reload through atca-ftctl"
cp "$demo/good.conf" "$conf"
run "$CTL" reload

say "The log: every line has a subsystem tag and a monotonic timestamp"
grep -E "reload|generation|started" "$demo/atca-ftd.log" | tail -6

say "Stop with SIGTERM: nothing is left behind"
run kill -TERM "$pid"
for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "atca-ftd did not stop" >&2; exit 1; fi
[ ! -e "$demo/atca-ftd.pid" ] && echo "pidfile removed"
grep -q "@qb-atca-ft-demo" /proc/net/unix && { echo "IPC socket left behind" >&2; exit 1; }
echo "IPC socket removed"
pid=
say "Demo finished"
