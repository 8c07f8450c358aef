#!/usr/bin/env bash
# Lab start-up/teardown times: atca-lab up --blades N and down, ROUNDS times;
# writes bench/results/lab.md (median, p90, max).   bench/lab_updown.sh [N] [ROUNDS]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-3}; rounds=${2:-10}; name=bench$$
name=${name:0:8}
lab=$top/tests/lab/atca-lab
ups=(); downs=()
for i in $(seq "$rounds"); do
	t0=$(date +%s.%N); "$lab" --name "$name" up --blades "$n" --shelf-managers 2 >/dev/null
	t1=$(date +%s.%N); "$lab" --name "$name" down >/dev/null; t2=$(date +%s.%N)
	ups+=("$(echo "$t1 - $t0" | bc)"); downs+=("$(echo "$t2 - $t1" | bc)")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f | %.2f | %.2f", a[int((NR+1)/2)], a[int(NR*0.9+0.5)], a[NR]}'; }
out=$top/bench/results/lab.md
{
	echo "# Shelf lab start-up and teardown"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) CPUs, Linux $(uname -r), $(. /etc/os-release; echo "$PRETTY_NAME")."
	echo "\`atca-lab up --blades $n --shelf-managers 2\` (returns when every blade is in the"
	echo "corosync membership and every libvirtd answers) and \`atca-lab down\`, $rounds rounds, seconds."
	echo
	echo "| step | median | p90 | max |"
	echo "|---|---|---|---|"
	echo "| up | $(stats "${ups[@]}") |"
	echo "| down | $(stats "${downs[@]}") |"
} | tee "$out"
