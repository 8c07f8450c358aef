#!/usr/bin/env bash
# Builds the libFuzzer targets (clang) and runs each one for a bounded time
# on a scratch copy of its corpus, so the committed corpus is never changed
# behind your back. tests/fuzz/README.md describes the targets.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [BUILD_DIR] [TARGET...]
#
# CI runs FUZZ_SECONDS (scripts/run-tests.sh: 10) per target, about 140 s for
# the 14 targets. For a long campaign, run e.g. 3600 (one target: add its
# name, e.g. `tests/fuzz/run.sh 3600 build qmp`) with KEEP=DIR to keep what
# was found, then merge it into the committed corpus (only the inputs that
# add coverage are copied):
#   KEEP=/tmp/found tests/fuzz/run.sh 3600 build qmp
#   build/tests/fuzz/fuzz_qmp -merge=1 tests/fuzz/corpus/qmp /tmp/found/qmp
# A crash leaves its input in BUILD_DIR/fuzz-artifacts/ and fails the run;
# turn it into a regression test (a unit test in tests/check_*.c with the
# input, and the input in the corpus) before fixing it.
set -u
secs=${1:-14}
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-$top/build}
shift $(($# > 2 ? 2 : $#))
all="config ipc event ipmi fm rcvmsg vftproto qmp nbd tmpl engctl cred journal store"
targets=${*:-$all}

make -C "$build" -s fuzz || { echo "fuzz: cannot build the targets (is clang installed?)"; exit 1; }
art="$build/fuzz-artifacts"
mkdir -p "$art"
fail=0
for t in $targets; do
	work=$(mktemp -d "/tmp/atca-ft-fuzz-$t.XXXXXX")
	cp -r "$top/tests/fuzz/corpus/$t/." "$work/"
	echo "fuzz_$t: $secs s on $(ls "$work" | wc -l) seed inputs"
	if ! "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/$t-" "$work" >"$work.log" 2>&1; then
		echo "fuzz_$t: FAILED; last lines of the log:"
		tail -40 "$work.log"
		ls -l "$art"
		fail=1
	else
		grep -E "stat::number_of_executed_units|stat::new_units_added" "$work.log" | sed 's/^/    /'
	fi
	if [ -n "${KEEP:-}" ]; then
		mkdir -p "$KEEP/$t"
		cp -r "$work/." "$KEEP/$t/"
	fi
	rm -rf -- "$work" "$work.log"
done
exit $fail
