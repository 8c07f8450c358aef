#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (as root):
#
#   sudo ./scripts/run-tests.sh
#
# set-up and build (warnings are errors), source formatting, unit and
# integration tests, the unit tests under valgrind, the same suite built with
# AddressSanitizer + UBSan, a bounded fuzzing run, and make distcheck.
# Stops at the first failing step.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
FUZZ_SECONDS=${FUZZ_SECONDS:-10} # per fuzz target: 14 targets, about 140 s (CI stays under 30 min)
declare -a summary=()

step() {
	local name=$1 t0 t1
	shift
	echo
	echo "=== $name"
	t0=$(date +%s)
	if ! "$@"; then
		echo "=== FAILED: $name"
		printf '%s\n' "${summary[@]}"
		exit 1
	fi
	t1=$(date +%s)
	summary+=("ok  $(printf '%-34s' "$name") $((t1 - t0)) s")
}

# make check prints the log of every failing test
check_in() {
	make -C "$1" -j"$(nproc)" check VERBOSE=1 -s
}

format_check() {
	local files
	files=$(find src tests -name '*.[ch]' | sort)
	clang-format --dry-run --Werror $files
}

step "set-up and build" scripts/setup.sh
step "source formatting" format_check
step "unit and integration tests" check_in build
step "unit tests under valgrind" make -C build -s check-valgrind
step "build with ASan + UBSan" scripts/setup.sh --asan --no-packages
# the soak's short profile runs in the main build; under ASan (slower
# daemons, only fds judged) 45 s of it
step "tests under ASan + UBSan" env SOAK_DURATION=45 make -C build-asan -j"$(nproc)" check VERBOSE=1 -s
step "fuzzing (${FUZZ_SECONDS} s per target)" tests/fuzz/run.sh "$FUZZ_SECONDS" "$top/build"
step "make distcheck" make -C build -s distcheck

echo
echo "=== all steps passed"
printf '%s\n' "${summary[@]}"
