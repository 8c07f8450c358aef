#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine (as root):
#
#   sudo ./scripts/run-demo.sh
#
# Sets up and builds atca-ft, then shows what an operator sees:
#
# 1. atca-ftd on the shipped example configuration: atca-ftctl status
#    (tables and JSON), a reload rejected because the file is broken (the
#    daemon keeps running on the old one), a good reload, a clean stop;
# 2. atca-ftd on a simulated shelf (tests/lab/atca-lab: two shelf managers,
#    three blades): blades, sensors and the SEL seen through the shelf
#    manager, a temperature alarm and an uncorrectable ECC error arriving as
#    events, blade 2 fenced (its payload really powered off, M1 confirmed)
#    and brought back, and the active shelf manager killed (switchover);
# 3. FT failover end to end (scripts/demo.py, on a 2-blade lab of its own):
#    a counter guest protected by the checkpoint engine (primary on blade 1,
#    backup on blade 2) and a restart-protected libvirt guest on blade 1,
#    SNMP traps to the lab's NMS; blade 1 loses power: the timeline from
#    the power loss to the IPMI event, the fault, the fence, the promotion,
#    the guest's counter going on and the other guest restarted on blade 2
#    (ms, from atca-ftd's monotonic log stamps), the counter's continuity,
#    the NMS's notifications; then blade 1 is repaired and the guest
#    protected again (backup on blade 1, synchronised from its template).
#    Any step missing its timeout fails the demo (exit status non-zero);
#    without /dev/kvm this part is skipped (a SKIP line).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ "$(id -u)" -eq 0 ] || { echo "run-demo.sh: run as root (sudo $0)" >&2; exit 1; }
scripts/setup.sh

FTD=$top/build/src/daemon/atca-ftd
CTL=$top/build/src/cli/atca-ftctl
LAB="$top/tests/lab/atca-lab --name dm$(($$ % 1000))"
demo=$(mktemp -d /tmp/atca-ft-demo.XXXXXX)
pid=
lab_up=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	[ -z "$lab_up" ] || $LAB down >/dev/null 2>&1 || true
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

# ---- part 2: the simulated shelf -------------------------------------------
unset ATCA_FT_IPC # the lab's daemons use the default IPC name
lab_ctl() { $LAB exec 1 "$CTL" "$@"; }
wait_for() { # wait_for SECONDS JQ-FILTER: until an event matches
	local t=$1 f=$2
	for _ in $(seq $((t * 10))); do
		lab_ctl events --json -n 50 2>/dev/null |
			jq -e "[.events[] | select($f)] | length > 0" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "(not seen within $t s)"
}

say "A simulated shelf: two shelf managers, three blades; atca-ftd on blade 1"
lab_up=yes
run $LAB up --blades 3 --shelf-managers 2
ATCA_FTD=$FTD $LAB ftd start 1
for _ in $(seq 100); do
	lab_ctl blades --json 2>/dev/null | jq -e '[.blades[] | select(.mstate == "M4" and
		.ipmc_state == "ONLINE")] | length == 3' >/dev/null 2>&1 && break
	sleep 0.1
done

say "atca-ftctl blades: hot-swap states, IPMC sessions and health, through the shelf manager"
run lab_ctl blades

say "atca-ftctl sensors 2"
run lab_ctl sensors 2

say "Blade 2 overheats (CPU temperature above upper critical)"
run $LAB inject temp-cr 2
wait_for 5 '.kind == "sensor.threshold" and .blade == 2 and .detail.state == "upper-critical"'
run lab_ctl events 2 -n 4
run lab_ctl blades
$LAB repair temp-cr 2 >/dev/null

say "Blade 3 reports an uncorrectable ECC error (a SEL record from its IPMC)"
run $LAB inject ecc 3
wait_for 5 '.kind == "sel.record" and .detail.meaning == "uncorrectable-ecc"'
run lab_ctl sel 3
$LAB repair ecc 3 >/dev/null

say "Fence blade 2: its payload is deactivated through the shelf manager; the command returns once M1 is confirmed"
run lab_ctl fence 2 --yes
$LAB status | sed -n '/^BLADE/,/^2 /p'

say "Unfence blade 2: activated again, M4 confirmed"
run lab_ctl unfence 2 --yes

say "The active shelf manager dies: both monitoring paths move to the standby"
run $LAB inject shmc a
wait_for 10 '.kind == "shmc.switchover" and .source == "shelf"'
lab_ctl events -n 40 | grep -E "^ID|shmc.switchover"
run lab_ctl blades
$LAB repair shmc a >/dev/null

say "The shelf lab is removed (processes, namespaces, files)"
run $LAB down
lab_up=

# ---- part 3: FT failover, end to end ---------------------------------------
# scripts/demo.py: a lab of its own, removed by itself whatever happens (also
# on failure or Ctrl-C); it exits non-zero if any step misses its timeout,
# and 0 with a SKIP line where there is no /dev/kvm.
say "Part 3: a blade with an FT-protected guest loses power (scripts/demo.py)"
rc=0
run python3 scripts/demo.py --lab "ft$(($$ % 1000))" || rc=$?
if [ "$rc" -ne 0 ]; then
	printf '\n\033[1m>>> run-demo.sh: the FT failover demo FAILED (exit %d)\033[0m\n' "$rc" >&2
	exit "$rc"
fi
say "Demo finished"
