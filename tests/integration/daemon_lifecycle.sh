#!/usr/bin/env bash
# atca-ftd end to end without hardware: start, talk to it with atca-ftctl,
# reload a bad then a good configuration, abuse the IPC, daemon mode,
# pidfile exclusion, blackbox dumps, and a clean stop leaving nothing behind.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

command -v jq >/dev/null || tl_skip "jq is not installed (apt-get install jq)"
[ -x "$ATCA_FTD" ] || tl_skip "$ATCA_FTD not built"
tl_tmpdir
tl_setup_daemon_files
CONF=$TL_TMP/atca-ftd.conf
ctl() { "$ATCA_FTCTL" -s "$TL_IPC" "$@"; }

# --- --check-config ---------------------------------------------------------
tl_expect_rc 0 "check-config accepts a valid file" "$ATCA_FTD" --check-config="$CONF"
tl_expect_rc 0 "check-config FILE (without '=') works too" "$ATCA_FTD" --check-config "$CONF"
tl_check "check-config prints the effective configuration" \
	grep -q "ipmc: 0x82" "$TL_TMP/last.out"
tl_check "check-config reports the file is valid" grep -q "configuration is valid" "$TL_TMP/last.err"
printf 'blade {\n    slot: 1\n    hots: b1\n}\n' >"$TL_TMP/bad.conf"
tl_expect_rc 1 "check-config rejects a bad file" "$ATCA_FTD" --check-config="$TL_TMP/bad.conf"
tl_check "with file:line errors" grep -q "bad.conf:3: unknown key 'hots' in section 'blade' (did you mean 'host'?)" "$TL_TMP/last.err"
tl_expect_rc 0 "atca-ftctl config check FILE validates locally" "$ATCA_FTCTL" config check "$CONF"
tl_expect_rc 6 "atca-ftctl config check on a bad FILE exits 6" "$ATCA_FTCTL" config check "$TL_TMP/bad.conf"
tl_expect_rc 2 "atca-ftctl rejects an unknown command" "$ATCA_FTCTL" frobnicate
tl_expect_rc 3 "atca-ftctl without a daemon exits 3" ctl status
tl_expect_rc 3 "atca-ftctl --json without a daemon exits 3" ctl --json status
tl_check "... and still prints a JSON error document" jq -e '.exit_code == 3' "$TL_TMP/last.out"

# --- foreground daemon -------------------------------------------------------
tl_spawn "$ATCA_FTD" -f -c "$CONF" 2>>"$TL_TMP/daemon.stderr"
DPID=$TL_LAST_PID
tl_check "daemon answers status" tl_wait_for 10 ctl status
tl_expect_rc 0 "status --json" ctl status --json
cp "$TL_TMP/last.out" "$TL_TMP/status.json"
tl_check "status JSON: version and pid" jq -e ".daemon.pid == $DPID and (.daemon.version | length > 0)" "$TL_TMP/status.json"
tl_check "status JSON: blade 1 at IPMC 0x82" jq -e '.blades[0].slot == 1 and .blades[0].ipmc == "0x82"' "$TL_TMP/status.json"
tl_check "status JSON: generation 1, no reload yet" jq -e '.daemon.config_generation == 1 and .daemon.last_reload == null' "$TL_TMP/status.json"
tl_check "status JSON: every module reports" jq -e '[.modules[].name] | index("ipc") != null and index("cluster") != null and index("snmp-notifier") != null and length == 8' "$TL_TMP/status.json"
tl_check "pidfile holds the daemon's pid" test "$(cat "$TL_TMP/atca-ftd.pid")" = "$DPID"
tl_expect_rc 0 "human status" ctl status
tl_check "human status shows the blade table" grep -q "^SLOT  IPMC  HOST" "$TL_TMP/last.out"
tl_expect_rc 0 "version" ctl version
tl_check "version names both programs" grep -q "^atca-ftd .*pid $DPID" "$TL_TMP/last.out"
tl_expect_rc 0 "daemon-side config check" ctl config check
tl_check "log file has monotonic stamps and subsystem tags" grep -q "\[main\] notice: @[0-9]*\.[0-9]\{6\} atca-ftd .* started" "$TL_TMP/atca-ftd.log"

# --- a second instance is refused ----------------------------------------------
tl_expect_rc 1 "second instance with the same pidfile" "$ATCA_FTD" -f -c "$CONF"
tl_check "... says who is running" grep -q "another atca-ftd is running (pid $DPID" "$TL_TMP/last.err"
tl_expect_rc 1 "... in daemon mode too, with the reason on the terminal" "$ATCA_FTD" -c "$CONF"
tl_check "... (daemon mode) says who is running" grep -q "another atca-ftd is running (pid $DPID" "$TL_TMP/last.err"
sed "s|pidfile: .*|pidfile: $TL_TMP/other.pid|; s|state_dir: .*|state_dir: $TL_TMP/other-state|" "$CONF" >"$TL_TMP/same-ipc.conf"
tl_expect_rc 1 "second instance with the same IPC name exits 1 (no crash)" "$ATCA_FTD" -f -c "$TL_TMP/same-ipc.conf"
tl_check "... saying the IPC service cannot start" grep -q "cannot start IPC service" "$TL_TMP/last.err"
tl_check "... leaving no pidfile" test ! -e "$TL_TMP/other.pid"
tl_check "the first daemon is unharmed" ctl status

# --- reload: bad file keeps the old configuration -----------------------------
cp "$CONF" "$TL_TMP/good.conf"
printf 'blade {\n    slot: 1\n    host: blade1\n    bogus: 1\n}\n' >"$CONF"
kill -HUP "$DPID"
tl_check "reload rejected is visible in status" tl_wait_for 5 sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.last_reload.ok == false'"
tl_check "daemon still runs after a bad SIGHUP" kill -0 "$DPID"
ctl --json status >"$TL_TMP/status.json"
tl_check "old configuration still active (generation 1, 1 VM)" jq -e '.daemon.config_generation == 1 and (.vms | length) == 1' "$TL_TMP/status.json"
tl_check "the rejection carries file:line" jq -e '.daemon.last_reload.errors[0] | test("atca-ftd.conf:4: unknown key .bogus.")' "$TL_TMP/status.json"
tl_check "the log says why" grep -q "reload rejected" "$TL_TMP/atca-ftd.log"
tl_expect_rc 6 "atca-ftctl reload with the bad file exits 6" ctl reload
tl_expect_rc 6 "daemon-side config check of the bad file exits 6" ctl config check

# --- reload: a log file that cannot be opened is rejected too ------------------
sed "s|^    logfile: .*|    logfile: /nonexistent-dir/atca-ftd.log|" "$TL_TMP/good.conf" >"$CONF"
kill -HUP "$DPID"
tl_check "reload with an unopenable log file is rejected" tl_wait_for 5 sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.last_reload.errors[0] | test(\"cannot open the log file /nonexistent-dir\")'"
tl_check "... and logging goes on in the old file" grep -q "reload rejected: cannot open the log file" "$TL_TMP/atca-ftd.log"
tl_expect_rc 1 "start-up with an unopenable log file fails" "$ATCA_FTD" -f -c "$CONF"

# --- reload: good file is applied ----------------------------------------------
cp "$TL_TMP/good.conf" "$CONF"
tl_write_config "$(printf 'blade {\n    slot: 2\n    host: blade2\n}\n')"
kill -HUP "$DPID"
tl_check "good reload applied" tl_wait_for 5 sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.config_generation == 2 and .daemon.last_reload.ok'"
ctl --json status >"$TL_TMP/status.json"
tl_check "new blade and derived pair visible" jq -e '(.blades | length) == 2 and .pairs[0].derived and .blades[1].partner == 1' "$TL_TMP/status.json"
tl_expect_rc 0 "atca-ftctl reload with a good file" ctl reload
tl_check "generation 3 after atca-ftctl reload" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.config_generation == 3'"

# --- failure-model rules: a bad file is refused whole, the rules in force stay ---
printf 'raise x hotswap to=M7 => hardware fatal\nraise y nosuch => vm fatal restart-vm\n' \
	>"$TL_TMP/failure-model.rules"
tl_expect_rc 6 "reload with a bad rules file is refused (exit 6)" ctl reload
tl_check "... with file:line for each error" grep -q "failure-model.rules:1: raise NAME KIND" "$TL_TMP/last.out" "$TL_TMP/last.err"
tl_check "... the second one too" grep -q "failure-model.rules:2: 'nosuch': not an event kind" "$TL_TMP/last.out" "$TL_TMP/last.err"
tl_check "... the configuration stays at generation 3" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.config_generation == 3'"
tl_check "... and the log says the rules in force stay" grep -q "refused: the rules in force stay" "$TL_TMP/atca-ftd.log"
tl_expect_rc 1 "check-config also checks the rules file" "$ATCA_FTD" --check-config="$CONF"
tl_check "... naming the line" grep -q "failure-model.rules:2:" "$TL_TMP/last.err"
cp "$top_srcdir/etc/failure-model.rules" "$TL_TMP/failure-model.rules"
tl_expect_rc 0 "reload with the shipped rules file" ctl reload
tl_check "... the model runs with them" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"failure-model\") | .detail | test(\"^2[0-9] rules\")'"
rm -f "$TL_TMP/failure-model.rules"

# --- malformed IPC does not harm the daemon ------------------------------------
tl_expect_rc 0 "malformed and oversized IPC requests are rejected; client limit" "$top_builddir/tests/ipc_abuse" "$TL_IPC" 32
cat "$TL_TMP/last.out" | sed 's/^/    /'
tl_check "daemon alive after the abuse" kill -0 "$DPID"
tl_check "rejections were logged" grep -q "rejected IPC request" "$TL_TMP/atca-ftd.log"

# --- blackbox on SIGUSR1 ------------------------------------------------------
kill -USR1 "$DPID"
tl_check "SIGUSR1 writes the blackbox" tl_wait_for 5 test -s "$TL_TMP/state/atca-ftd.manual.blackbox"
if command -v qb-blackbox >/dev/null; then
	qb-blackbox "$TL_TMP/state/atca-ftd.manual.blackbox" >"$TL_TMP/bb.txt" 2>&1
	tl_check "qb-blackbox reads it, debug messages included" grep -q "IPC status from pid" "$TL_TMP/bb.txt"
fi

# --- SIGTERM: clean stop ------------------------------------------------------
kill -TERM "$DPID"
wait "$DPID"
rc=$?
tl_check "SIGTERM stops with exit 0 (got $rc)" test "$rc" -eq 0
tl_check "no pidfile left" test ! -e "$TL_TMP/atca-ftd.pid"
tl_check "no IPC socket or shm file left" sh -c "! (grep -q '@qb-$TL_IPC' /proc/net/unix || ls /dev/shm | grep -q -- '$TL_IPC')"
tl_check "no blackbox or connection ring left in /dev/shm" sh -c "! ls /dev/shm | grep -E -q -- '-$DPID-blackbox|^qb-$DPID-'"
tl_check "stop is logged" grep -q "atca-ftd stopped" "$TL_TMP/atca-ftd.log"

# --- daemon mode ---------------------------------------------------------------
tl_expect_rc 1 "daemon mode with a bad config fails in the foreground" "$ATCA_FTD" -c "$TL_TMP/bad.conf"
tl_check "... with its file:line error" grep -q "bad.conf:3: unknown key 'hots'" "$TL_TMP/last.err"
tl_expect_rc 0 "daemon mode returns once the daemon is ready" "$ATCA_FTD" -c "$CONF"
BGPID=$(cat "$TL_TMP/atca-ftd.pid" 2>/dev/null)
TL_PIDS+=("$BGPID")
tl_check "the background daemon answers at once" ctl status
tl_check "it is not a session leader" test "$(ps -o sid= -p "$BGPID" | tr -d ' ')" != "$BGPID"
kill -TERM "$BGPID"
tl_check "background daemon stops on SIGTERM" tl_wait_gone "$BGPID" 10
tl_check "no pidfile left (daemon mode)" test ! -e "$TL_TMP/atca-ftd.pid"

# a relative -c keeps working after the daemon's chdir("/"), reloads included
tl_expect_rc 0 "daemon mode with a relative configuration path" sh -c "cd '$TL_TMP' && '$ATCA_FTD' -c atca-ftd.conf"
BGPID=$(cat "$TL_TMP/atca-ftd.pid" 2>/dev/null)
TL_PIDS+=("$BGPID")
kill -HUP "$BGPID"
tl_check "... and it reloads from the same file" tl_wait_for 5 sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.daemon.config_generation == 2 and .daemon.last_reload.ok'"
kill -TERM "$BGPID"
tl_check "stopped" tl_wait_gone "$BGPID" 10

# --- a crash dumps the blackbox and leaves a startable system -----------------
tl_spawn "$ATCA_FTD" -f -c "$CONF" 2>>"$TL_TMP/daemon.stderr"
CPID=$TL_LAST_PID
tl_check "restarted" tl_wait_for 10 ctl status
kill -SEGV "$CPID"
wait "$CPID" 2>/dev/null
tl_check "fatal signal writes the crash blackbox" test -s "$TL_TMP/state/atca-ftd.blackbox"
tl_check "... and removes its ring from /dev/shm" sh -c "! ls /dev/shm | grep -q -- '-$CPID-blackbox'"
tl_spawn "$ATCA_FTD" -f -c "$CONF" 2>>"$TL_TMP/daemon.stderr"
tl_check "starts again over the stale pidfile" tl_wait_for 10 ctl status
kill -TERM "$TL_LAST_PID"
wait "$TL_LAST_PID"

tl_finish
