#!/usr/bin/env bash
# IPC access control with real users: only root (and the daemon's own user)
# by default; members of daemon.ipc_group once it is configured.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

[ "$(id -u)" -eq 0 ] || tl_skip "needs root to run atca-ftctl as another user"
command -v setpriv >/dev/null || tl_skip "setpriv (util-linux) is not installed"
getent passwd nobody >/dev/null || tl_skip "no 'nobody' user"
NOGROUP=$(id -gn nobody)
tl_tmpdir
tl_setup_daemon_files
CONF=$TL_TMP/atca-ftd.conf
as_nobody() { setpriv --reuid=nobody --regid="$NOGROUP" --clear-groups "$ATCA_FTCTL" -s "$TL_IPC" "$@"; }

tl_spawn "$ATCA_FTD" -f -c "$CONF" 2>>"$TL_TMP/daemon.stderr"
DPID=$TL_LAST_PID
tl_check "daemon answers root" tl_wait_for 10 "$ATCA_FTCTL" -s "$TL_IPC" status
tl_expect_rc 4 "another user is refused (exit 4)" as_nobody status
tl_check "... with a clear message" grep -q "permission denied" "$TL_TMP/last.err"
tl_check "the refusal is logged" grep -q "refused IPC connection from uid $(id -u nobody)" "$TL_TMP/atca-ftd.log"
tl_check "daemon unharmed" "$ATCA_FTCTL" -s "$TL_IPC" status
# libqb listens on an abstract socket: no file, so no file mode that could
# let anyone in; what decides is the peer's credentials (SO_PEERCRED)
tl_check "the socket is abstract: nothing in the file system" grep -q " @$TL_IPC" /proc/net/unix
tl_check "... and the refusal used the peer's uid, not a file mode" grep -q "refused IPC connection from uid $(id -u nobody) gid $(id -g nobody)" "$TL_TMP/atca-ftd.log"
tl_check "a refused user leaves no connection ring in /dev/shm" sh -c "! ls /dev/shm | grep -q -- 'qb-.*$TL_IPC'"

tl_write_config "" "    ipc_group: $NOGROUP
"
kill -HUP "$DPID"
tl_check "reload with ipc_group applied" tl_wait_for 5 sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.config_generation == 2'"
tl_expect_rc 0 "a member of ipc_group may use atca-ftctl" as_nobody status
tl_expect_rc 0 "... and --json" as_nobody --json status
# membership is the user's (NSS), not the process's current gid
tl_expect_rc 0 "membership counts even with another current gid" setpriv --reuid=nobody --regid=daemon --clear-groups "$ATCA_FTCTL" -s "$TL_IPC" status
if getent passwd daemon >/dev/null && ! id -nG daemon | tr ' ' '\n' | grep -qx "$NOGROUP"; then
	tl_expect_rc 4 "a user outside the group is still refused" setpriv --reuid=daemon --regid=daemon --clear-groups "$ATCA_FTCTL" -s "$TL_IPC" status
fi

kill -TERM "$DPID"
wait "$DPID"
tl_check "stopped cleanly" test ! -e "$TL_TMP/atca-ftd.pid"
tl_finish
