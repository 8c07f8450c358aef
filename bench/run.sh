#!/usr/bin/env bash
# Foundation benchmark: starts a private atca-ftd on the shipped example
# configuration (with private paths), measures config load and IPC latency,
# and writes bench/results/foundation.md with the machine description.
#
#   bench/run.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
rounds=${2:-2000}
make -C "$build" -s bench/bench_foundation
tmp=$(mktemp -d /tmp/atca-ft-bench.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf -- "$tmp"
}
trap cleanup EXIT
printf 'username: admin\npassword: secret\n' >"$tmp/shelf.cred"
chmod 600 "$tmp/shelf.cred"
ipc=atca-ft-bench-$$
sed -e "s|/etc/atca-ft/shelf.cred|$tmp/shelf.cred|" \
    -e "s|state_dir: /var/lib/atca-ft|state_dir: $tmp/state|" \
    -e "s|pidfile: /run/atca-ftd.pid|pidfile: $tmp/pid|" \
    -e "s|ipc_name: atca-ft$|ipc_name: $ipc|" \
    -e "s|to_syslog: yes|to_syslog: no|" \
    "$top/etc/atca-ftd.conf.example" >"$tmp/atca-ftd.conf"
"$build/src/daemon/atca-ftd" -f -c "$tmp/atca-ftd.conf" 2>/dev/null &
pid=$!
for _ in $(seq 100); do "$build/src/cli/atca-ftctl" -s "$ipc" version >/dev/null 2>&1 && break; sleep 0.05; done

out=$top/bench/results/foundation.md
mkdir -p "$(dirname "$out")"
{
	echo "# Foundation benchmark"
	echo
	echo "$(date -u +%Y-%m-%d), atca-ft $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'),"
	echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
	echo "$(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
	echo "Daemon and client on the same machine, example configuration, $rounds rounds"
	echo "(connect+status: rounds/4). Times in microseconds."
	echo
	"$build/bench/bench_foundation" "$ipc" "$tmp/atca-ftd.conf" "$rounds"
	echo
	rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
	fds=$(ls /proc/$pid/fd | wc -l)
	echo "atca-ftd after the run: RSS ${rss} KiB, ${fds} open file descriptors."
} | tee "$out"
