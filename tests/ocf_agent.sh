#!/usr/bin/env bash
# The OCF resource agent agents/ocf/atca-ft-vm against a stand-in for
# atca-ftctl (tests/ocf/fake-atca-ftctl: no daemon, no engine, no lab; its
# "engines" are real processes named atca-vmft that the agent finds and
# stops as it would real ones). Its meta-data validates against the OCF
# schemas, ocf-tester passes, and every action returns the OCF code it
# should: validation errors, the roles and states of the engine, the
# monitor depths, hot promotion, refused promotion while the primary is
# connected, cold start, demote, stop when atca-ftd is down, a stop that
# needs SIGKILL, promotion scores. The agent against real engines is
# tests/integration/ocf.sh.
# shellcheck source=tests/lib.sh
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

AGENT=$top_srcdir/agents/ocf/atca-ft-vm
FAKE=$top_srcdir/tests/ocf/fake-atca-ftctl
: "${OCF_ROOT:=/usr/lib/ocf}"
export OCF_ROOT
[ -r "$OCF_ROOT/lib/heartbeat/ocf-shellfuncs" ] ||
	tl_skip "resource-agents is not installed ($OCF_ROOT/lib/heartbeat/ocf-shellfuncs)"
tl_tmpdir

# a VM name no real engine on this machine has
VMNAME=ocft$$
export FAKE_ATCA_FTCTL_DIR=$TL_TMP/fake FAKE_ATCA_FTCTL_VMS=$VMNAME
mkdir -p "$FAKE_ATCA_FTCTL_DIR/$VMNAME"
# ocf-tester runs meta-data as nobody: a copy nobody can read
install -m 755 "$AGENT" "$TL_TMP/atca-ft-vm"
RA=$TL_TMP/atca-ft-vm

# ra ACTION [NAME=VALUE...]: runs the agent with the stand-in; output in
# $TL_TMP/ra.out, exit code in RA_RC.
ra() {
	local action=$1
	shift
	: >"$TL_TMP/ha.log"
	env OCF_RESKEY_vm="$VMNAME" OCF_RESKEY_ctl="$FAKE" OCF_RESOURCE_INSTANCE=ocftest \
		HA_RSCTMP="$TL_TMP/rsc" HA_LOGFACILITY=none HA_LOGFILE="$TL_TMP/ha.log" \
		"$@" "$RA" "$action" >"$TL_TMP/ra.out" 2>&1
	RA_RC=$?
	# what it logged (ocf_log) after what it printed (ocf_exit_reason)
	cat "$TL_TMP/ha.log" >>"$TL_TMP/ra.out"
}

# gone PID: exited (a zombie counts as gone)
gone() {
	! kill -0 "$1" 2>/dev/null || grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null
}

# expect RC DESCRIPTION ACTION [NAME=VALUE...]
expect() {
	local want=$1 what=$2
	shift 2
	ra "$@"
	if [ "$RA_RC" -eq "$want" ]; then
		tl_ok "$what: $1 exits $RA_RC"
	else
		tl_fail "$what: $1 exits $RA_RC, expected $want"
		sed 's/^/    | /' "$TL_TMP/ra.out"
	fi
}

# expect_log PATTERN DESCRIPTION: the last run said so
expect_log() {
	if grep -q -- "$1" "$TL_TMP/ra.out"; then
		tl_ok "$2"
	else
		tl_fail "$2: no '$1' in the agent's output"
		sed 's/^/    | /' "$TL_TMP/ra.out"
	fi
}

fake_set() { echo "$2" >"$FAKE_ATCA_FTCTL_DIR/$VMNAME/$1"; }
fake_clear() { rm -f "$FAKE_ATCA_FTCTL_DIR/$VMNAME/$1"; }
engine_pid() { cat "$FAKE_ATCA_FTCTL_DIR/$VMNAME/engine.pid" 2>/dev/null; }
# every engine the stand-in started is ours to stop at the end
track_engine() {
	local p
	p=$(engine_pid)
	[ -n "$p" ] && TL_PIDS+=("$p")
}

# ---- meta-data -------------------------------------------------------------
"$RA" meta-data >"$TL_TMP/meta.xml" 2>"$TL_TMP/meta.err"
rc=$?
if [ "$rc" -eq 0 ] && [ ! -s "$TL_TMP/meta.err" ] && grep -q '<resource-agent name="atca-ft-vm"' "$TL_TMP/meta.xml"; then
	tl_ok "meta-data exits 0"
else
	tl_fail "meta-data: exit $rc"
	sed 's/^/    | /' "$TL_TMP/meta.err"
fi
if command -v xmllint >/dev/null && [ -r /usr/share/resource-agents/metadata.rng ]; then
	tl_check "meta-data validates against resource-agents' metadata.rng (OCF 1.1)" \
		sh -c "xmllint --noout --relaxng /usr/share/resource-agents/metadata.rng - <'$TL_TMP/meta.xml' 2>&1"
	tl_check "meta-data validates against ra-api-1.dtd (as ocf-tester checks it)" \
		sh -c "cd /usr/share/resource-agents && xmllint --noout --valid - <'$TL_TMP/meta.xml' 2>&1"
else
	echo "note: xmllint or /usr/share/resource-agents/metadata.rng missing: schemas not checked"
fi
for a in start stop promote demote notify monitor validate-all meta-data; do
	grep -q "<action name=\"$a\"" "$TL_TMP/meta.xml" || tl_fail "meta-data lacks the $a action"
done
grep -q 'role="Promoted"' "$TL_TMP/meta.xml" && grep -q 'role="Unpromoted"' "$TL_TMP/meta.xml" &&
	tl_ok "meta-data: every action, and a monitor per role (Promoted, Unpromoted)"
expect 3 "an unknown action" reload

# ---- validate-all ----------------------------------------------------------------
expect 0 "validate-all with the stand-in" validate-all
expect 6 "no vm" validate-all OCF_RESKEY_vm=
expect 6 "vm with a space" validate-all "OCF_RESKEY_vm=bad name"
expect 6 "vm starting with a dot" validate-all OCF_RESKEY_vm=.x
expect 5 "ctl missing" validate-all OCF_RESKEY_ctl=/nonexistent/atca-ftctl
expect 6 "max_commit_age not a number" validate-all OCF_RESKEY_max_commit_age=10s
expect 6 "cold_start not a boolean" validate-all OCF_RESKEY_cold_start=maybe
expect 6 "config not absolute" validate-all OCF_RESKEY_config=atca-ftd.conf
expect 5 "config missing" validate-all OCF_RESKEY_config=/nonexistent/atca-ftd.conf
echo invalid >"$TL_TMP/bad.conf"
expect 5 "config that atca-ftctl config check refuses" validate-all OCF_RESKEY_config="$TL_TMP/bad.conf"
echo ok >"$TL_TMP/good.conf"
expect 0 "config that atca-ftctl config check accepts" validate-all OCF_RESKEY_config="$TL_TMP/good.conf"
expect 5 "a VM the local atca-ftd does not know" validate-all FAKE_ATCA_FTCTL_VMS=other
expect 6 "a clone that is not promotable" validate-all OCF_RESKEY_CRM_meta_clone_max=2
expect 6 "promoted-max 2" validate-all OCF_RESKEY_CRM_meta_clone_max=2 \
	OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_promoted_max=2
expect 6 "clone-node-max 2" validate-all OCF_RESKEY_CRM_meta_clone_max=2 \
	OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_clone_node_max=2
expect 0 "a promotable clone, promoted-max 1" validate-all OCF_RESKEY_CRM_meta_clone_max=2 \
	OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_promoted_max=1 \
	OCF_RESKEY_CRM_meta_clone_node_max=1

# ---- ocf-tester ---------------------------------------------------------------------
if command -v ocf-tester >/dev/null; then
	(
		export HA_RSCTMP=$TL_TMP/rsc HA_LOGFACILITY=none HA_LOGFILE=$TL_TMP/ha.log
		ocf-tester -n ocftest -o vm="$VMNAME" -o ctl="$FAKE" "$RA"
	) >"$TL_TMP/tester.out" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ] && grep -q 'passed all tests' "$TL_TMP/tester.out"; then
		tl_ok "ocf-tester passes (start, probe, monitor, cold-start promote, demote, stop, notify)"
	else
		tl_fail "ocf-tester: exit $rc"
		sed 's/^/    | /' "$TL_TMP/tester.out"
	fi
else
	echo "note: ocf-tester is not installed (package resource-agents): not run"
fi
ra stop

# ---- roles and states ---------------------------------------------------------------
expect 7 "no engine: monitor" monitor
expect 7 "no engine: probe" monitor OCF_RESKEY_CRM_meta_interval=0
expect 7 "probe with atca-ftctl missing and no engine" monitor OCF_RESKEY_CRM_meta_interval=0 \
	OCF_RESKEY_ctl=/nonexistent/atca-ftctl
expect 0 "no engine: stop" stop
expect 0 "start" start
track_engine
expect_log "engine started as backup" "start starts a backup engine"
expect 0 "started: start again" start
expect 0 "backup waiting: monitor" monitor
expect 0 "backup: demote (nothing to do)" demote
expect 1 "probe with atca-ftctl missing while an engine runs (failed: to be stopped)" monitor \
	OCF_RESKEY_CRM_meta_interval=0 OCF_RESKEY_ctl=/nonexistent/atca-ftctl
touch "$FAKE_ATCA_FTCTL_DIR/daemon-down"
expect 1 "atca-ftd down, an engine runs: monitor" monitor
rm -f "$FAKE_ATCA_FTCTL_DIR/daemon-down"
expect 0 "notify" notify OCF_RESKEY_CRM_meta_notify_type=pre OCF_RESKEY_CRM_meta_notify_operation=promote \
	OCF_RESKEY_CRM_meta_notify_promote_uname=blade2
expect_log "pre-promote: promoted on blade2" "notify logs pre-promote"

# hot promotion: a backup with a committed epoch and its primary gone
ra stop
fake_set committed 42
expect 0 "backup with epoch 42 committed: start" start
track_engine
expect 0 "backup orphaned: monitor" monitor
expect 0 "backup orphaned: monitor depth 10" monitor OCF_CHECK_LEVEL=10
expect 0 "promote the orphaned backup" promote
expect_log "promoting the backup (committed epoch 42)" "promote orders atca-ftctl vm promote"
expect 8 "primary: monitor" monitor
expect 0 "primary: promote again" promote
expect_log "already the primary" "a second promote does nothing"
expect 8 "primary: monitor depth 10 (unprotected is logged, not failed)" monitor OCF_CHECK_LEVEL=10
expect_log "runs unprotected" "depth 10 warns that the guest is unprotected"
expect 8 "primary: monitor depth 20" monitor OCF_CHECK_LEVEL=20
expect 0 "primary: start (the guest keeps running)" start
fake_set progress frozen
expect 8 "guest without progress: depth 20, first look" monitor OCF_CHECK_LEVEL=20 \
	OCF_RESKEY_progress_timeout=1
sleep 2.2
expect 9 "guest without progress for more than progress_timeout: depth 20" monitor \
	OCF_CHECK_LEVEL=20 OCF_RESKEY_progress_timeout=1
expect 8 "... at depth 0 it still runs" monitor
fake_clear progress
expect 8 "guest making progress again: depth 20" monitor OCF_CHECK_LEVEL=20 \
	OCF_RESKEY_progress_timeout=1
expect 0 "demote the primary" demote
track_engine
expect_log "the primary engine stops, the guest here with it" "demote stops the primary engine"
expect 0 "demoted: a backup again" monitor
expect 0 "demoted: stop" stop
expect 7 "stopped" monitor

# a primary still connected: no promotion without force
fake_set committed 7
fake_set peer primary
expect 0 "backup of a connected primary: start" start
track_engine
expect 0 "backup in standby: depth 10" monitor OCF_CHECK_LEVEL=10
fake_set commit_age 20000
expect 1 "backup whose last commit is 20 s old: depth 10" monitor OCF_CHECK_LEVEL=10
expect 0 "... depth 0 does not look" monitor
fake_set commit_age 40
t0=$SECONDS
expect 1 "promote while the primary is connected" promote OCF_RESKEY_link_timeout=1
expect_log "still connected" "... refused: the primary is alive"
[ $((SECONDS - t0)) -le 5 ] || tl_fail "the refused promotion took $((SECONDS - t0)) s (link_timeout 1)"
expect 0 "... the backup is still a backup" monitor
expect 0 "promote with force_promote=true" promote OCF_RESKEY_link_timeout=1 \
	OCF_RESKEY_force_promote=true
expect 8 "... promoted" monitor
fake_clear peer
ra stop

# cold start refused when not allowed
fake_set committed 0
expect 0 "backup with nothing committed: start" start
track_engine
expect 1 "promote with cold_start=false" promote OCF_RESKEY_cold_start=false
expect 0 "promote with cold_start=true (a cold start)" promote
track_engine
expect_log "cold start" "... the engine restarts as primary"
expect 8 "... primary" monitor

# failed engines
echo "primary failed $(date +%s)" >"$FAKE_ATCA_FTCTL_DIR/$VMNAME/status"
expect 9 "primary failed: monitor" monitor
expect 1 "primary failed: promote" promote
expect 0 "primary failed: demote (stop, start as backup)" demote
track_engine
echo "backup failed $(date +%s)" >"$FAKE_ATCA_FTCTL_DIR/$VMNAME/status"
expect 1 "backup failed: monitor" monitor
expect 0 "backup failed: start (starts it again)" start
track_engine
expect 0 "... a backup again" monitor

# stop with atca-ftd down: the engine process is found and stopped all the same
pid=$(engine_pid)
touch "$FAKE_ATCA_FTCTL_DIR/daemon-down"
expect 0 "atca-ftd down: stop" stop
if [ -n "$pid" ] && gone "$pid"; then
	tl_ok "... the engine process (pid $pid) is gone"
else
	tl_fail "... the engine process (pid $pid) is still there"
fi
expect 7 "atca-ftd down, no engine: monitor" monitor
expect 1 "atca-ftd down: start" start
rm -f "$FAKE_ATCA_FTCTL_DIR/daemon-down"

# atca-ftctl vm quit, where atca-ftctl has it
expect 0 "start" start
track_engine
expect 0 "stop through atca-ftctl vm quit" stop FAKE_ATCA_FTCTL_QUIT=1
expect_log "ordered to quit" "... the engine was ordered to quit"

# an engine that ignores SIGTERM: SIGKILL before the stop's timeout
mkdir -p "$TL_TMP/stubborn"
cat >"$TL_TMP/stubborn/atca-vmft" <<'EOF'
#!/bin/sh
echo $$ >"$2"
trap '' TERM
while :; do sleep 1; done
EOF
chmod 755 "$TL_TMP/stubborn/atca-vmft"
rm -f "$FAKE_ATCA_FTCTL_DIR/$VMNAME/engine.pid"
# not a child of this shell (bash would report its SIGKILL)
("$TL_TMP/stubborn/atca-vmft" -p "$FAKE_ATCA_FTCTL_DIR/$VMNAME/engine.pid" -v "$VMNAME" -r backup \
	</dev/null >/dev/null 2>&1 &)
echo "backup waiting $(date +%s)" >"$FAKE_ATCA_FTCTL_DIR/$VMNAME/status"
tl_wait_for 5 test -s "$FAKE_ATCA_FTCTL_DIR/$VMNAME/engine.pid"
track_engine
pid=$(engine_pid)
t0=$SECONDS
expect 0 "stop an engine that ignores SIGTERM (timeout 9 s)" stop OCF_RESKEY_CRM_meta_timeout=9000
if gone "$pid"; then
	tl_ok "... killed after $((SECONDS - t0)) s"
else
	tl_fail "... pid $pid still runs"
fi

# ---- promotion scores ---------------------------------------------------------------
mkdir -p "$TL_TMP/sbin"
for t in crm_master crm_attribute; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$t" "$TL_TMP/scores" >"$TL_TMP/sbin/$t"
	chmod 755 "$TL_TMP/sbin/$t"
done
SC=(OCF_RESKEY_CRM_meta_promotable=true OCF_RESKEY_CRM_meta_clone_max=2 HA_SBIN_DIR="$TL_TMP/sbin"
	PATH="$TL_TMP/sbin:$PATH")
score_is() {
	local want=$1 what=$2 last
	last=$(tail -n 1 "$TL_TMP/scores" 2>/dev/null)
	case $last in
	*"$want") tl_ok "promotion score: $what ($last)" ;;
	*) tl_fail "promotion score: $what: '$last', expected ...$want" ;;
	esac
}
fake_set committed 0
expect 0 "promotable clone: start" start "${SC[@]}"
track_engine
score_is "-v 5" "a backup with nothing committed may cold start"
ra monitor "${SC[@]}" OCF_RESKEY_cold_start=false
score_is "-D" "... not with cold_start=false"
ra promote "${SC[@]}"
track_engine
score_is "-v 1000" "the primary keeps its role"
ra demote "${SC[@]}"
track_engine
fake_set committed 9
ra monitor "${SC[@]}"
score_is "-v 100" "a backup with a committed epoch is the one to promote"
ra stop "${SC[@]}"
score_is "-D" "a stopped instance has none"

ra stop
tl_finish
