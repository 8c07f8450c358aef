#!/usr/bin/env bash
# Every man page renders with man -l without a single warning, and groff
# with every warning enabled (-ww: undefined macros too) has nothing to say.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v man >/dev/null || tl_skip "man-db is not installed"
command -v groff >/dev/null || command -v nroff >/dev/null || tl_skip "groff is not installed"
tl_tmpdir
for page in "$top_srcdir"/man/*.[0-9]; do
	name=$(basename "$page")
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=all -E UTF-8 -l "$page" >"$TL_TMP/out" 2>"$TL_TMP/err"
	rc=$?
	groff -man -ww -z -Tutf8 "$page" 2>>"$TL_TMP/err"
	if [ "$rc" -ne 0 ] || [ -s "$TL_TMP/err" ]; then
		tl_fail "$name renders with warnings (exit $rc)"
		sed 's/^/    | /' "$TL_TMP/err"
	elif grep -nE '^.+\.SH |^\.SH .*\.SH' "$page" >"$TL_TMP/stray"; then
		tl_fail "$name has a section heading glued to other text"
		sed 's/^/    | /' "$TL_TMP/stray"
	elif [ "$(wc -l <"$TL_TMP/out")" -lt 20 ]; then
		tl_fail "$name renders almost nothing"
	else
		tl_ok "$name renders cleanly ($(wc -l <"$TL_TMP/out") lines)"
	fi
done
tl_finish
