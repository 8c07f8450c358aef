#!/usr/bin/env bash
# Failure-model throughput benchmark: builds bench/bench_fm and writes
# bench/results/failure-model.md with the machine description.
#
#   bench/fm.sh [BUILD_DIR] [EVENTS_PER_RUN] [RUNS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
per_run=${2:-2000000}
runs=${3:-11}
make -C "$build" -s bench/bench_fm
out=$top/bench/results/failure-model.md
{
	echo "# Failure-model throughput"
	echo
	echo "$(date -u +%Y-%m-%d), atca-ft $(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'),"
	echo "$(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), Linux $(uname -r)."
	echo "One model, one core, the built-in rules; a realistic mix from a 16-blade shelf"
	echo "(85 % threshold readings, 5 % discrete readings, 4 % SEL records, 2 % VM"
	echo "lifecycle, 1 % each engine health, hot-swap, IPMC and membership events), 20 000"
	echo "events per second of shelf time so that windows, holds and ttls act."
	echo "$runs runs of $per_run events on the same model (its memory after the first run and"
	echo "after the last shows it does not grow with history)."
	echo
	taskset -c 0 "$build/bench/bench_fm" "$per_run" "$runs"
	echo
	echo "Target: at least 1 M events/s; memory bounded by the tables, not by history."
} >"$out"
cat "$out"
