# Shared helpers of the shell tests. Each test sources this file, makes its
# own temp dir with tl_tmpdir, starts processes with tl_spawn (their PIDs are
# recorded) and relies on the EXIT trap to kill exactly those PIDs and remove
# exactly that temp dir.

set -u
: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"

ATCA_FTD=$top_builddir/src/daemon/atca-ftd
ATCA_FTCTL=$top_builddir/src/cli/atca-ftctl

TL_PIDS=()
TL_TMP=
TL_FAILS=0
TL_NAME=$(basename "$0" .sh)

tl_cleanup() {
	local pid
	for pid in "${TL_PIDS[@]}"; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	# libqb rings of our processes that died without cleaning up (crash
	# tests, SIGKILL): the blackbox and the IPC connections, by PID
	for pid in "${TL_PIDS[@]}" ${TL_SHM_PIDS[@]+"${TL_SHM_PIDS[@]}"}; do
		[ -n "$pid" ] || continue
		rm -rf /dev/shm/qb-*-"$pid"-blackbox-* /dev/shm/qb-"$pid"-* 2>/dev/null
	done
	if [ -n "$TL_TMP" ] && [ -d "$TL_TMP" ]; then
		rm -rf -- "$TL_TMP"
	fi
}
trap tl_cleanup EXIT

tl_skip() {
	echo "SKIP: $TL_NAME: $*"
	exit 77
}

tl_tmpdir() {
	TL_TMP=$(mktemp -d "/tmp/atca-ft-$TL_NAME.XXXXXX")
	chmod 755 "$TL_TMP"
}

tl_ok() { echo "ok   $*"; }
tl_fail() {
	echo "FAIL $*"
	TL_FAILS=$((TL_FAILS + 1))
}

# tl_check DESCRIPTION COMMAND...: passes if the command succeeds.
tl_check() {
	local what=$1
	shift
	if "$@" >/dev/null; then tl_ok "$what"; else tl_fail "$what"; fi
}

# tl_expect_rc RC DESCRIPTION COMMAND...: passes if the command exits RC.
tl_expect_rc() {
	local want=$1 what=$2 rc
	shift 2
	"$@" >"$TL_TMP/last.out" 2>"$TL_TMP/last.err"
	rc=$?
	if [ "$rc" -eq "$want" ]; then
		tl_ok "$what (exit $rc)"
	else
		tl_fail "$what: exit $rc, expected $want"
		sed 's/^/    | /' "$TL_TMP/last.out" "$TL_TMP/last.err"
	fi
}

# Runs a command in the background, recording its PID for cleanup.
tl_spawn() {
	"$@" &
	TL_PIDS+=($!)
	TL_LAST_PID=$!
}

# tl_wait_for SECONDS COMMAND...: polls until the command succeeds.
tl_wait_for() {
	local limit=$1 i
	shift
	for i in $(seq $((limit * 20))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	return 1
}

tl_wait_gone() {
	local pid=$1 limit=$2 i
	for i in $(seq $((limit * 20))); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

# Writes a daemon configuration for this test into $TL_TMP/atca-ftd.conf.
# $1: extra blade sections; $2: extra daemon keys.
tl_write_config() {
	local blades=${1:-} daemon_extra=${2:-}
	cat >"$TL_TMP/atca-ftd.conf" <<CONF
daemon {
    state_dir: $TL_TMP/state
    pidfile: $TL_TMP/atca-ftd.pid
    ipc_name: $TL_IPC
    failure_rules: $TL_TMP/failure-model.rules
$daemon_extra}
shelf {
    credentials: $TL_TMP/shelf.cred
    manager {
        address: 127.0.0.1
        port: 9001
    }
}
blade {
    slot: 1
    host: blade1
}
$blades
vm {
    name: web
    blade: 1
    protection: restart
}
logging {
    to_syslog: no
    to_logfile: yes
    logfile: $TL_TMP/atca-ftd.log
    level: debug
}
CONF
}

tl_setup_daemon_files() {
	TL_IPC="atca-ft-test-$$"
	printf 'username: admin\npassword: secret\n' >"$TL_TMP/shelf.cred"
	chmod 600 "$TL_TMP/shelf.cred"
	tl_write_config
}

# True if any libqb IPC endpoint (abstract socket or /dev/shm file) of the
# service name is left.
tl_ipc_leftovers() {
	local name=$1
	grep -q "@qb-$name" /proc/net/unix 2>/dev/null && return 0
	ls /dev/shm 2>/dev/null | grep -q -- "qb-.*$name" && return 0
	return 1
}

tl_finish() {
	if [ "$TL_FAILS" -ne 0 ]; then
		echo "$TL_NAME: $TL_FAILS check(s) failed"
		exit 1
	fi
	echo "$TL_NAME: all checks passed"
	exit 0
}
