#!/usr/bin/env bash
# Every atca-ftctl command against a running atca-ftd (no shelf: the blades
# do not answer), in text and JSON, with its exit codes; the commands that
# need the shelf lab or a checkpoint engine are exercised there, and this
# test checks that each command "atca-ftctl help" lists has its test
# somewhere. Also: run-time log levels (atca-ftctl log), SIGUSR2 and a real
# logrotate run, the bash completion, and the default configuration that
# "make install" puts in place (it starts and acts on nothing).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

command -v jq >/dev/null || tl_skip "jq is not installed (apt-get install jq)"
[ -x "$ATCA_FTD" ] || tl_skip "$ATCA_FTD not built"
tl_tmpdir
tl_setup_daemon_files
tl_write_config "blade {
    slot: 2
    host: blade2
}
vm {
    name: db
    blade: 2
    protection: restart
}" ""
CONF=$TL_TMP/atca-ftd.conf
ctl() { "$ATCA_FTCTL" -s "$TL_IPC" "$@"; }
# json_ok DESCRIPTION JQ-FILTER: the last command's output is JSON and the
# filter holds
json_ok() {
	if jq -e "$2" "$TL_TMP/last.out" >/dev/null 2>&1; then
		tl_ok "$1"
	else
		tl_fail "$1"
		sed 's/^/    | /' "$TL_TMP/last.out" | head -20
	fi
}

tl_spawn "$ATCA_FTD" -f -c "$CONF" 2>>"$TL_TMP/daemon.stderr"
DPID=$TL_LAST_PID
tl_wait_for 10 ctl status || tl_fail "the daemon answers"

# --- the commands "help" lists ----------------------------------------------
tl_expect_rc 0 "help" ctl help
COMMANDS=$(sed -n 's/^  \([a-z][a-z]*\)\( .*\)\{0,1\}$/\1/p' "$TL_TMP/last.out" |
	sed -n '1,/^help$/p' | sort -u)
tl_check "help lists the commands" test "$(echo "$COMMANDS" | wc -l)" -ge 20
# where each command is exercised beyond this file: test file and pattern
declare -A ELSEWHERE=(
	[blades]='tests/integration/hardware.py:"blades"'
	[sensors]='tests/integration/hardware.py:"sensors"'
	[sel]='tests/integration/hardware.py:"sel"'
	[events]='tests/integration/hardware.py:"events"'
	[fence]='tests/integration/hardware.py:"fence"'
	[unfence]='tests/integration/hardware.py:"unfence"'
	[pairs]='tests/integration/recovery.py:"pairs"'
	[vms]='tests/integration/recovery.py:"vms"'
	[faults]='tests/integration/vmft.py:"faults"'
	[plans]='tests/integration/recovery.py:"plans"'
	[failover]='tests/integration/recovery.py:"failover"'
	[maintenance]='tests/integration/recovery.py:"maintenance"'
	[vm]='tests/integration/ocf.py:"vm", "unprotect"'
	[template]='tests/integration/vmft.py:"template", "create"'
	[simulate]='tests/scenarios.sh:simulate'
	[config]='tests/integration/daemon_lifecycle.sh:config check'
	[reload]='tests/integration/daemon_lifecycle.sh:ctl reload'
	[status]='tests/integration/daemon_lifecycle.sh:ctl status'
	[version]='tests/integration/daemon_lifecycle.sh:ctl version'
	[log]='tests/integration/cli.sh:ctl log level'
	[help]='tests/integration/cli.sh:ctl help'
)
missing=
for c in $COMMANDS; do
	spec=${ELSEWHERE[$c]-}
	if [ -z "$spec" ] || ! grep -qF -- "${spec#*:}" "$top_srcdir/${spec%%:*}"; then
		missing="$missing $c"
	fi
done
if [ -z "$missing" ]; then
	tl_ok "every command of help has a test ($(echo $COMMANDS | wc -w) commands)"
else
	tl_fail "commands without a test:$missing"
fi

# --- listings: text and JSON, exit 0 -----------------------------------------
for c in status blades sensors sel events pairs vms faults plans; do
	tl_expect_rc 0 "$c" ctl "$c"
	tl_check "$c: text output" test -s "$TL_TMP/last.out"
	tl_expect_rc 0 "$c --json" ctl --json "$c"
	json_ok "$c --json: a JSON object" 'type == "object"'
done
tl_expect_rc 0 "sensors of blade 2" ctl sensors 2
tl_expect_rc 0 "sel -n 5 of blade 1" ctl -n 5 sel 1
tl_expect_rc 0 "events by host name" ctl events blade2
tl_expect_rc 2 "sensors of a blade that does not exist" ctl sensors 9
tl_expect_rc 2 "sensors of two blades: usage" ctl sensors 1 2
tl_expect_rc 2 "pairs takes no argument" ctl pairs 1
ctl --json vms >"$TL_TMP/last.out"
json_ok "vms: web and db, restart-protected" '[.vms[].name] | sort == ["db", "web"]'
ctl --json status >"$TL_TMP/last.out"
json_ok "status: the SNMP notifier is a module" '[.modules[].name] | index("snmp-notifier") != null'
tl_expect_rc 0 "version" ctl version
tl_expect_rc 0 "--version" ctl --version
tl_expect_rc 0 "version --json" ctl --json version
json_ok "version --json names both" '."atca-ftctl".version != null and ."atca-ftd".pid != null'
tl_expect_rc 0 "config check (the daemon's file)" ctl config check
tl_expect_rc 0 "config check FILE --json" ctl --json config check "$CONF"
json_ok "config check --json: valid, 2 blades, 2 VMs" '.valid and .blades == 2 and .vms == 2'
tl_expect_rc 0 "reload" ctl reload
tl_expect_rc 0 "reload --json" ctl --json reload
json_ok "reload --json: ok, generation 3" '.ok and .generation == 3'

# --- actions: confirmation, unknown targets, no shelf ----------------------------
tl_expect_rc 2 "fence without --yes (no terminal to ask on)" ctl fence 2
tl_check "... says so" grep -q "refusing to .* without --yes" "$TL_TMP/last.err"
tl_expect_rc 2 "fence of a blade that does not exist" ctl --yes fence 9
tl_expect_rc 1 "fence with no shelf manager to reach: failed" ctl --yes --timeout 20 fence 2
tl_expect_rc 1 "unfence likewise" ctl --yes --timeout 20 unfence 2
tl_expect_rc 2 "failover without --yes" ctl failover web
tl_expect_rc 2 "failover of an unknown VM" ctl --yes failover nosuchvm
tl_expect_rc 2 "maintenance without on|off" ctl maintenance 1
tl_expect_rc 0 "maintenance off (nothing to release)" ctl maintenance 2 off
tl_expect_rc 2 "vm frobnicate: usage" ctl vm frobnicate web
tl_expect_rc 2 "vm start without a role" ctl vm start web
tl_expect_rc 2 "vm quit without --yes" ctl vm quit web
tl_expect_rc 2 "vm promote without --yes" ctl vm promote web
# (web is restart-protected: no checkpoint engine, an unknown target)
for sub in status protect unprotect release; do
	tl_expect_rc 2 "vm $sub of a VM without an engine" ctl vm "$sub" web
done
tl_expect_rc 2 "vm quit --yes of a VM without an engine" ctl --yes vm quit web
tl_expect_rc 2 "vm status --json of a VM without an engine" ctl --json vm status web
json_ok "... with the reason" '.error | test("not a protected vm")'
tl_expect_rc 0 "template list (none kept here)" ctl -c "$CONF" template list
tl_expect_rc 1 "template verify of a VM without templates: failed" ctl -c "$CONF" template verify web
tl_expect_rc 1 "template delete of a VM without templates: failed" ctl -c "$CONF" --yes template delete web
tl_expect_rc 2 "simulate without a file" ctl simulate
tl_expect_rc 2 "an unknown command" ctl frobnicate
tl_expect_rc 2 "an unknown option" ctl --frobnicate status

# --- log levels at run time ---------------------------------------------------------
tl_expect_rc 0 "log" ctl log
tl_check "log: the daemon's level and its source" grep -q "^daemon: debug (config)" "$TL_TMP/last.out"
tl_check "log: a table of subsystems" grep -q "^SUBSYSTEM  *LEVEL  *SOURCE" "$TL_TMP/last.out"
tl_expect_rc 0 "log --json" ctl --json log
json_ok "log --json: 11 subsystems, daemon level debug" '.level == "debug" and (.subsystems | length) == 11'
tl_expect_rc 0 "log level notice (the daemon)" ctl log level notice
tl_check "... now notice, set at run time" grep -q "^daemon: notice (runtime)" "$TL_TMP/last.out"
tl_expect_rc 0 "log level debug ipmi" ctl log level debug ipmi
tl_expect_rc 0 "log ipmi" ctl log ipmi
tl_check "... ipmi debug (runtime), one line" test "$(grep -c . "$TL_TMP/last.out")" -eq 2
tl_check "... ipmi debug (runtime)" grep -qE "^ipmi +debug +runtime" "$TL_TMP/last.out"
: >"$TL_TMP/atca-ftd.log.mark"
size0=$(stat -c %s "$TL_TMP/atca-ftd.log")
ctl sensors >/dev/null
ctl reload >/dev/null
tl_check "the log notes who set what" grep -q "log level of ipmi set to debug" "$TL_TMP/atca-ftd.log"
tl_expect_rc 0 "log --json after a reload" ctl --json log
json_ok "a reload keeps the run-time levels" \
	'.level == "notice" and .source == "runtime" and (.subsystems[] | select(.name == "ipmi") | .source == "runtime" and .level == "debug")'
tl_check "info messages of main are no longer written" \
	sh -c "tail -c +$((size0 + 1)) '$TL_TMP/atca-ftd.log' | grep -v '\[ipmi\]' | grep -qv ' info: '"
tl_expect_rc 2 "log level loud: usage" ctl log level loud
tl_expect_rc 2 "log level debug nosuch: usage" ctl log level debug nosuch
tl_expect_rc 2 "log reset nosuch: usage" ctl log reset nosuch
tl_expect_rc 2 "log level without a level" ctl log level
tl_expect_rc 0 "log reset ipmi" ctl log reset ipmi
tl_expect_rc 0 "log reset" ctl --json log reset
json_ok "back to the configuration's levels" \
	'.level == "debug" and .source == "config" and ([.subsystems[].source] | index("runtime") == null)'

# --- SIGUSR2 and logrotate --------------------------------------------------------
mv "$TL_TMP/atca-ftd.log" "$TL_TMP/atca-ftd.log.1"
kill -USR2 "$DPID"
tl_check "SIGUSR2: a new log file" tl_wait_for 5 grep -q "log file reopened" "$TL_TMP/atca-ftd.log"
tl_check "... the daemon still answers" ctl status
if command -v logrotate >/dev/null; then
	sed -e "s|@localstatedir@/log/atca-ft|$TL_TMP|" -e "s|@runstatedir@|$TL_TMP|" \
		-e 's/create 0640 root adm/create 0640 root root/' \
		"$top_srcdir/etc/atca-ftd.logrotate.in" >"$TL_TMP/logrotate.conf"
	rm -f "$TL_TMP/atca-ftd.log.1"
	ctl status >/dev/null
	tl_expect_rc 0 "logrotate -f with the shipped configuration" \
		logrotate -f -s "$TL_TMP/logrotate.state" "$TL_TMP/logrotate.conf"
	tl_check "... rotated the log (atca-ftd.log.1)" test -s "$TL_TMP/atca-ftd.log.1"
	tl_check "... and the daemon writes the new one" \
		tl_wait_for 5 grep -q "log file reopened" "$TL_TMP/atca-ftd.log"
else
	echo "note: logrotate is not installed: the shipped logrotate file is not run"
fi

# --- bash completion ----------------------------------------------------------------
COMPLETION=$top_srcdir/agents/bash-completion/atca-ftctl
# complete WORDS...: what the completion offers for the last word
complete_words() {
	(
		PATH=$(dirname "$ATCA_FTCTL"):$PATH
		# shellcheck source=agents/bash-completion/atca-ftctl
		. "$COMPLETION"
		COMP_WORDS=(atca-ftctl "$@")
		COMP_CWORD=$#
		COMP_LINE="atca-ftctl $*"
		COMP_POINT=${#COMP_LINE}
		_atca_ftctl atca-ftctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' '
	)
}
expect_completion() {
	local want=$1 got
	shift
	got=$(complete_words "$@")
	got=${got% }
	if [ "$got" = "$want" ]; then
		tl_ok "completion of 'atca-ftctl $*': $want"
	else
		tl_fail "completion of 'atca-ftctl $*': '$got', expected '$want'"
	fi
}
expect_completion "failover faults fence" f
expect_completion "maintenance" ma
expect_completion "--json" --js
expect_completion "quit" vm q
expect_completion "db web" -s "$TL_IPC" vm status ""
expect_completion "1 2" --ipc "$TL_IPC" fence ""
expect_completion "off on" -s "$TL_IPC" maintenance 1 ""
expect_completion "debug" log level d
expect_completion "snmp" log level debug sn
expect_completion "primary" vm start web p
# without a daemon: from the configuration file
expect_completion "db web" -s nosuchipc -c "$CONF" template verify ""

# --- the default configuration --------------------------------------------------------
DEF=$TL_TMP/default.conf
sed "/^recovery {/i daemon {\n    state_dir: $TL_TMP/def-state\n    pidfile: $TL_TMP/def.pid\n    ipc_name: $TL_IPC-def\n}\nlogging {\n    to_syslog: no\n    to_logfile: yes\n    logfile: $TL_TMP/def.log\n}" \
	"$top_srcdir/etc/atca-ftd.conf.default" >"$DEF"
sed -i "s|/etc/atca-ft/shelf.cred|$TL_TMP/shelf.cred|" "$DEF"
tl_expect_rc 0 "the default configuration is valid" "$ATCA_FTD" --check-config="$DEF"
tl_check "... and only observes (no blade is this host)" grep -q "only observe" "$TL_TMP/last.err"
tl_spawn "$ATCA_FTD" -f -c "$DEF" 2>>"$TL_TMP/def.stderr"
DEFPID=$TL_LAST_PID
tl_check "atca-ftd starts with the default configuration" \
	tl_wait_for 10 "$ATCA_FTCTL" -s "$TL_IPC-def" status
"$ATCA_FTCTL" -s "$TL_IPC-def" --json status >"$TL_TMP/last.out"
json_ok "... an observer with no VM" '(.vms | length) == 0'
json_ok "... whose recovery carries nothing out" \
	'.modules[] | select(.name == "recovery") | .state == "observer" or .state == "dry-run"'
tl_check "... says so in the log" grep -q "observer role" "$TL_TMP/def.log"
sleep 2
tl_check "... and still runs 2 s later" kill -0 "$DEFPID"
kill -TERM "$DEFPID"
tl_check "... stops on SIGTERM" tl_wait_gone "$DEFPID" 10

kill -TERM "$DPID"
tl_check "the daemon stops" tl_wait_gone "$DPID" 10
tl_check "no IPC endpoint left" sh -c "! grep -q '@qb-$TL_IPC' /proc/net/unix"
tl_finish
