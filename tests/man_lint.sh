#!/usr/bin/env bash
# Every man page renders with man -l without a single warning, groff with
# every warning enabled (-ww: undefined macros too) has nothing to say,
# mandoc -Tlint finds nothing at level warning, and each page has an
# EXAMPLES section.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

command -v man >/dev/null || tl_skip "man-db is not installed"
command -v groff >/dev/null || command -v nroff >/dev/null || tl_skip "groff is not installed"
MANDOC=$(command -v mandoc)
[ -n "$MANDOC" ] || echo "note: mandoc is not installed: mandoc -Tlint not run (package mandoc)"
tl_tmpdir
for page in "$top_srcdir"/man/*.[0-9]; do
	name=$(basename "$page")
	LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings=all -E UTF-8 -l "$page" >"$TL_TMP/out" 2>"$TL_TMP/err"
	rc=$?
	groff -man -ww -z -Tutf8 "$page" 2>>"$TL_TMP/err"
	if [ -n "$MANDOC" ]; then
		# mandoc exits 2 for a warning; what it says is what counts
		mandoc -Tlint -W warning "$page" >>"$TL_TMP/err" 2>&1
	fi
	if [ "$rc" -ne 0 ] || [ -s "$TL_TMP/err" ]; then
		tl_fail "$name renders with warnings (exit $rc)"
		sed 's/^/    | /' "$TL_TMP/err"
	elif grep -nE '^.+\.SH |^\.SH .*\.SH' "$page" >"$TL_TMP/stray"; then
		tl_fail "$name has a section heading glued to other text"
		sed 's/^/    | /' "$TL_TMP/stray"
	elif ! grep -q '^\.SH EXAMPLES\?$' "$page"; then
		tl_fail "$name has no EXAMPLES section"
	elif [ "$(wc -l <"$TL_TMP/out")" -lt 20 ]; then
		tl_fail "$name renders almost nothing"
	else
		tl_ok "$name renders and lints cleanly ($(wc -l <"$TL_TMP/out") lines)"
	fi
done
tl_finish
