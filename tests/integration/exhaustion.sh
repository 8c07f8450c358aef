#!/usr/bin/env bash
# atca-ftd under resource exhaustion (no lab needed):
#  1. file descriptors: the daemon under a low RLIMIT_NOFILE, flooded with
#     IPC clients (tests/ipc_flood) and with connections that never send
#     their credentials (from another user): it refuses or waits, says so
#     once, does not spin, keeps answering, and accepts again once they go;
#  2. a full disk under the recovery journal: its state directory on a tiny
#     tmpfs in a private mount namespace, a fault raised by stopping a
#     private ipmi_sim: the plan is refused, loudly (log, status, NOTIFY),
#     the daemon keeps running, the journal holds no fragment; once space is
#     back it says so, the next fault's plan is journaled and carried out,
#     and the journal replays clean after a restart.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

# part 2 mounts a tmpfs: do it all in a private mount namespace, which
# disappears (with the mount) when the last of our processes ends
if [ "${EXH_IN_NS:-}" != 1 ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null &&
	unshare -m --propagation private true 2>/dev/null; then
	EXH_IN_NS=1 exec unshare -m --propagation private "$BASH" "$0" "$@"
fi

command -v jq >/dev/null || tl_skip "jq is not installed"
command -v prlimit >/dev/null || tl_skip "prlimit (util-linux) is not installed"
[ -x "$ATCA_FTD" ] || tl_skip "$ATCA_FTD not built"
FLOOD=$top_builddir/tests/ipc_flood
[ -x "$FLOOD" ] || tl_skip "$FLOOD not built"
tl_tmpdir
STATE=$TL_TMP/state
trap 'umount -l "$STATE" 2>/dev/null; tl_cleanup' EXIT
tl_setup_daemon_files
CONF=$TL_TMP/atca-ftd.conf
ctl() { "$ATCA_FTCTL" -s "$TL_IPC" "$@"; }
# CPU time (clock ticks) a process has used
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
log_count() { grep -c -- "$1" "$TL_TMP/atca-ftd.log"; }

# ---- 1. file descriptors --------------------------------------------------------
tl_write_config "" "    ipc_max_clients: 1000
"
tl_spawn prlimit --nofile=64:64 "$ATCA_FTD" -f -c "$CONF" 2>>"$TL_TMP/daemon.stderr"
tl_check "daemon under RLIMIT_NOFILE 64 answers" tl_wait_for 10 ctl status
DPID=$(cat "$TL_TMP/atca-ftd.pid")
TL_PIDS+=("$DPID")
BASE_FDS=$(ls "/proc/$DPID/fd" | wc -l)
echo "     $BASE_FDS descriptors open at rest"

# authorised clients, as many as they can: the last ones are refused (EMFILE)
T0=$(cpu_ticks "$DPID")
"$FLOOD" "$TL_IPC" 200 3000 >"$TL_TMP/flood.out" 2>&1 &
FLOOD_PID=$!
TL_PIDS+=("$FLOOD_PID")
tl_check "the flood got its answers" tl_wait_for 10 grep -q "held connections answered" "$TL_TMP/flood.out"
sed 's/^/     /' "$TL_TMP/flood.out"
read -r _ HELD _ REFUSED _ ERR _ <"$TL_TMP/flood.out"
tl_check "some clients held ($HELD), the rest refused ($REFUSED) with EMFILE ($ERR)" \
	test "$HELD" -gt 0 -a "$REFUSED" -gt 0 -a "$ERR" -eq 24
tl_check "every held connection answered its status request" grep -q "^$HELD held connections answered" "$TL_TMP/flood.out"
# a new client now is refused at once (EMFILE), not left hanging
tl_expect_rc 1 "while they are held, a new client is refused at once" timeout 10 "$ATCA_FTCTL" -s "$TL_IPC" status
tl_check "the refusals say why" grep -q "refused IPC connection from uid 0: file descriptors nearly exhausted" "$TL_TMP/atca-ftd.log"
wait "$FLOOD_PID"
tl_check "flood released" grep -q released "$TL_TMP/flood.out"
T1=$(cpu_ticks "$DPID")
echo "     daemon CPU during the flood: $((T1 - T0)) ticks"
tl_check "no spinning: under 1 s of CPU ($((T1 - T0)) ticks)" test $((T1 - T0)) -lt 100

# connections that never send their credentials (libqb keeps them open):
# from another user if we can, to show a non-member cannot starve the daemon
RAW=$TL_TMP/raw_connect.py
cat >"$RAW" <<'PY'
import socket, sys, time
name, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
held = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(("\0" + name).ljust(108, "\0"))  # libqb's abstract socket
        held.append(s)
    except OSError:
        s.close()
print("connected", len(held), flush=True)
time.sleep(hold)
PY
PY=$(command -v /usr/bin/python3 || command -v python3)
if [ -n "$PY" ]; then
	AS=()
	if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && getent passwd nobody >/dev/null; then
		AS=(setpriv --reuid=nobody --regid="$(id -gn nobody)" --clear-groups)
	fi
	LINES0=$(wc -l <"$TL_TMP/atca-ftd.log")
	T0=$(cpu_ticks "$DPID")
	"${AS[@]}" "$PY" "$RAW" "$TL_IPC" 150 4 >"$TL_TMP/raw.out" 2>&1 &
	RAW_PID=$!
	TL_PIDS+=("$RAW_PID")
	tl_check "silent connections made" tl_wait_for 10 grep -q connected "$TL_TMP/raw.out"
	sleep 2
	tl_check "the daemon stops accepting and says so" grep -q "IPC: file descriptors nearly exhausted" "$TL_TMP/atca-ftd.log"
	FDS=$(ls "/proc/$DPID/fd" | wc -l)
	tl_check "it kept descriptors for its own work ($FDS of 64 open)" test "$FDS" -le 56
	wait "$RAW_PID"
	T1=$(cpu_ticks "$DPID")
	LINES=$(($(wc -l <"$TL_TMP/atca-ftd.log") - LINES0))
	echo "     daemon CPU: $((T1 - T0)) ticks, $LINES log lines during 4 s of silent connections"
	tl_check "no spinning ($((T1 - T0)) ticks)" test $((T1 - T0)) -lt 100
	tl_check "no log flood ($LINES lines)" test "$LINES" -lt 200
	tl_check "accepting again once they are gone" tl_wait_for 10 grep -q "IPC: accepting connections again" "$TL_TMP/atca-ftd.log"
	tl_check "answers again" tl_wait_for 10 ctl status
	tl_check "descriptors back to rest" tl_wait_for 5 sh -c "test \$(ls /proc/$DPID/fd | wc -l) -le $((BASE_FDS + 2))"
	tl_check "the waits are counted in the ipc module's status" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"ipc\") | .detail | test(\"[1-9][0-9]* descriptor waits\")'"
else
	echo "     (python3 missing: silent connections not tried)"
fi
kill -TERM "$DPID"
tl_check "daemon stops cleanly" tl_wait_gone "$DPID" 10
tl_check "no crash blackbox" test ! -e "$STATE/atca-ftd.blackbox"

# ---- 2. a full disk under the journal ---------------------------------------------
if [ "${EXH_IN_NS:-}" != 1 ]; then
	echo "     (not root or no mount namespace: the full-disk part is skipped)"
	tl_finish
fi
command -v ipmi_sim >/dev/null || { echo "     (ipmi_sim missing: the full-disk part is skipped)"; tl_finish; }

rm -rf "$STATE"
mkdir -m 700 "$STATE"
mount -t tmpfs -o size=256k,mode=0700 atca-ft-test "$STATE" || tl_skip "cannot mount a tmpfs"
PORT=$((20000 + ($$ % 10000) * 2))
SIM=$TL_TMP/sim
mkdir -p "$SIM/state"
cat >"$SIM/lan.conf" <<LAN
name "exhaustion"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 $PORT
  priv_limit admin
  allowed_auths_callback md5
  allowed_auths_user md5
  allowed_auths_operator md5
  allowed_auths_admin md5
  guid a123456789abcdefa123456789abcd01
endlan
user 2 true "admin" "secret" admin 10 md5
LAN
cat >"$SIM/shelf.emu" <<'EMU'
mc_setbmc 0x20
mc_add 0x20 0x00 no-device-sdrs 0x01 0x01 0x00 0x3f 0x000157 0x0001
mc_enable 0x20
mc_add 0x82 0x01 no-device-sdrs 0x01 0x01 0x00 0x3f 0x000157 0x0101
mc_enable 0x82
EMU
start_sim() {
	rm -rf "$SIM/state"/*
	tl_spawn ipmi_sim -c "$SIM/lan.conf" -f "$SIM/shelf.emu" -s "$SIM/state" -n >>"$SIM/sim.log" 2>&1
	SIM_PID=$TL_LAST_PID
	# listening before the daemon looks: an unanswered first session
	# would raise a fault (and journal a plan) of its own
	if command -v ss >/dev/null; then
		tl_wait_for 10 sh -c "ss -Hlun 'sport = :$PORT' | grep -q ." || echo "     (ipmi_sim not listening yet)"
	else
		sleep 1
	fi
}
stop_sim() {
	kill -TERM "$SIM_PID" 2>/dev/null
	wait "$SIM_PID" 2>/dev/null
}
sed -e "s|port: 9001|port: $PORT|" \
	-e "s|^    host: blade1|    host: blade1\n    libvirt_uri: test:///default|" \
	-e "s|^    failure_rules: .*|    local_blade: 1|" "$CONF" >"$TL_TMP/disk.conf"
# the NMS: every datagram the notifier sends, kept raw
TRAPS=$TL_TMP/traps.bin
if [ -n "$PY" ]; then
	printf 'snmp {\n    target {\n        address: 127.0.0.1\n        port: %d\n        version: 2c\n        community: public\n    }\n}\n' \
		$((PORT + 1)) >>"$TL_TMP/disk.conf"
	tl_spawn "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536) + b"\n")
' $((PORT + 1)) "$TRAPS"
fi
: >"$TL_TMP/atca-ftd.log"
# full before the daemon starts: the journal (created empty) has no page
# of its own, so its first record needs one (tmpfs counts whole pages)
dd if=/dev/zero of="$STATE/fill" bs=4k >/dev/null 2>&1
tl_check "the tmpfs is full" sh -c "! dd if=/dev/zero of='$STATE/one-more' bs=4k count=1 2>/dev/null"
rm -f "$STATE/one-more"
start_sim
tl_spawn "$ATCA_FTD" -f -c "$TL_TMP/disk.conf" 2>>"$TL_TMP/daemon.stderr"
DPID=$TL_LAST_PID
tl_check "daemon with its state on a full 256 KiB tmpfs starts and answers" tl_wait_for 10 ctl status
tl_check "it talks to the shelf manager" tl_wait_for 15 grep -q "shelf manager 127.0.0.1:$PORT is now in use" "$TL_TMP/atca-ftd.log"

stop_sim # the shelf manager goes away: fault ipmc-lost, a notify plan
tl_check "the plan is refused" tl_wait_for 20 grep -q "recovery: plan for fault [0-9]* REFUSED: the journal cannot record it (No space left on device)" "$TL_TMP/atca-ftd.log"
tl_check "... said loudly, at error level" grep -q "error: .*recovery journal .* cannot be written (No space left on device): new recovery plans are REFUSED" "$TL_TMP/atca-ftd.log"
tl_check "... and to the operator (NOTIFY journal-failed)" grep -q "NOTIFY journal-failed: recovery journal" "$TL_TMP/atca-ftd.log"
tl_check "status shows recovery degraded, new plans refused" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"recovery\") | .state == \"degraded\" and (.detail | test(\"journal cannot be written .No space left on device.*new plans REFUSED\"))'"
tl_check "the daemon keeps running" ctl status
tl_check "atca-ftctl faults lists it as an open fault" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json faults | jq -e '.open[] | select(.rule == \"recovery-journal\") | .detail | test(\"cannot be written .No space left on device.: new plans refused\")'"
tl_check "... in the human view too" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' faults | grep -q 'recovery-journal'"
tl_check "no fragment in the journal" test ! -s "$STATE/recovery.journal"
if [ -n "$PY" ]; then
	tl_check "the NMS got a fault notification (recovery-journal raised)" tl_wait_for 5 grep -a -q "recovery journal .* cannot be written" "$TRAPS"
fi

rm -f "$STATE/fill" # space is back
tl_check "it says the journal works again" tl_wait_for 10 grep -q "recovery journal .* can be written again after .* s: new plans are accepted (plans refused meanwhile: [1-9]" "$TL_TMP/atca-ftd.log"
tl_check "... and so does the status" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"recovery\") | .state != \"degraded\"'"
tl_check "NOTIFY journal-ok" grep -q "NOTIFY journal-ok:" "$TL_TMP/atca-ftd.log"
tl_check "the fault whose plan was refused, still open, is planned again" grep -q "recovery: fault [0-9]*, whose plan the journal refused, is planned again" "$TL_TMP/atca-ftd.log"
tl_check "... and its plan carried out" tl_wait_for 10 grep -q "recovery: plan [0-9]* done in" "$TL_TMP/atca-ftd.log"
tl_check "... and the fault is gone from atca-ftctl faults" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json faults | jq -e '[.open[] | select(.rule == \"recovery-journal\")] | length == 0'"
if [ -n "$PY" ]; then
	tl_check "... and the NMS got it too (cleared)" tl_wait_for 5 grep -a -q "can be written again" "$TRAPS"
fi

start_sim # the fault clears; stopping it again raises a new one
tl_check "the shelf manager is back, the fault clears" tl_wait_for 20 grep -q "fault clear.*rule=ipmc-lost" "$TL_TMP/atca-ftd.log"
DONE=$(log_count "recovery: plan [0-9]* done in")
stop_sim
tl_check "the next fault's plan is journaled and carried out" tl_wait_for 20 sh -c "test \$(grep -c 'recovery: plan [0-9]* done in' '$TL_TMP/atca-ftd.log') -gt $DONE"
tl_check "the journal holds it" grep -q "^rcvj1 [0-9]* plan id=" "$STATE/recovery.journal"
tl_check "every line of the journal is a whole record" sh -c "! grep -v -E '^rcvj1 [0-9]+ [a-z]+ .* [*][0-9a-f]{8}\$' '$STATE/recovery.journal'"
kill -TERM "$DPID"
tl_check "daemon stops cleanly" tl_wait_gone "$DPID" 10
tl_spawn "$ATCA_FTD" -f -c "$TL_TMP/disk.conf" 2>>"$TL_TMP/daemon.stderr"
DPID=$TL_LAST_PID
tl_check "restarted" tl_wait_for 10 ctl status
tl_check "the journal replays: no plan to resume" tl_wait_for 5 grep -q "recovery: journal .*recovery.journal: 0 unfinished plans" "$TL_TMP/atca-ftd.log"
tl_check "... and nothing damaged in it" test "$(log_count 'damaged records skipped')" -eq 0
tl_check "no temporary file left in the state directory" sh -c "! ls '$STATE' | grep -E '\\.(new|tmp)\$'"
kill -TERM "$DPID"
tl_check "stopped" tl_wait_gone "$DPID" 10
tl_finish
