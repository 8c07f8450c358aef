#!/usr/bin/env bash
# Golden failure-model scenarios: every NAME.events is replayed by
# "atca-ftctl simulate" (with NAME.rules and NAME.conf when there are: the
# configuration adds the recovery plans to the output) and its output
# must be exactly NAME.expected, its warnings and errors exactly NAME.stderr
# (none when the file is absent), its exit status 1 when it has errors, else 0.
#
#   tests/scenarios.sh                 check every scenario
#   tests/scenarios.sh NAME...         check these
#   tests/scenarios.sh --show NAME     print what the model says now (to write .expected;
#                          read it line by line before you trust it)
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

DIR="$top_srcdir/tests/scenarios"
CTL="${top_builddir:-$top_srcdir}/src/cli/atca-ftctl"
[ -x "$CTL" ] || tl_skip "build atca-ftctl first ($CTL)"
tl_tmpdir

run_one() { # NAME -> $TL_TMP/out, $TL_TMP/err, $rc
	local name=$1 rules=()
	[ -f "$DIR/$name.rules" ] && rules=(--rules "$name.rules")
	# with a configuration, the recovery plans are printed too
	[ -f "$DIR/$name.conf" ] && rules+=(--config "$name.conf")
	(cd "$DIR" && "$CTL" simulate "${rules[@]}" "$name.events") >"$TL_TMP/out" 2>"$TL_TMP/err"
	rc=$?
}

if [ "${1:-}" = "--show" ]; then
	shift
	for name in "$@"; do
		run_one "$name"
		cat "$TL_TMP/out"
		sed 's/^/stderr: /' "$TL_TMP/err"
		echo "exit: $rc"
	done
	exit 0
fi

if [ $# -gt 0 ]; then
	names=("$@")
else
	names=()
	for f in "$DIR"/*.events; do names+=("$(basename "$f" .events)"); done
fi
[ ${#names[@]} -gt 0 ] || tl_fail "no scenarios in $DIR"
for name in "${names[@]}"; do
	if [ ! -f "$DIR/$name.expected" ]; then
		tl_fail "$name: no $name.expected"
		continue
	fi
	run_one "$name"
	want_rc=0
	[ -f "$DIR/$name.stderr" ] && grep -q ': error: ' "$DIR/$name.stderr" && want_rc=1
	problems=""
	diff -u "$DIR/$name.expected" "$TL_TMP/out" >"$TL_TMP/diff" || problems="output differs"
	if [ -f "$DIR/$name.stderr" ]; then
		diff -u "$DIR/$name.stderr" "$TL_TMP/err" >>"$TL_TMP/diff" || problems="$problems stderr differs"
	elif [ -s "$TL_TMP/err" ]; then
		problems="$problems unexpected stderr"
		sed 's/^/+ /' "$TL_TMP/err" >>"$TL_TMP/diff"
	fi
	[ "$rc" -eq "$want_rc" ] || problems="$problems exit $rc (want $want_rc)"
	if [ -z "$problems" ]; then
		tl_ok "$name"
	else
		tl_fail "$name:$problems"
		sed 's/^/    | /' "$TL_TMP/diff"
	fi
done
echo "scenarios: ${#names[@]}"
tl_finish
