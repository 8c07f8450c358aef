#!/usr/bin/env bash
# IPMI session security (no lab needed): the configuration refuses cipher
# suite 0 (and anything but 3 and 17) with file:line; against a private
# ipmi_sim that speaks only IPMI 1.5 (authentication type "none" allowed,
# which ipmitool proves), neither the shelf-manager session (OpenIPMI) nor
# the detection sessions (FreeIPMI) fall back to it: no session at all; the
# same simulator with RMCP+ enabled is used at once (so the refusal is the
# daemon's, not a broken setup).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

command -v jq >/dev/null || tl_skip "jq is not installed"
[ -x "$ATCA_FTD" ] || tl_skip "$ATCA_FTD not built"
tl_tmpdir
tl_setup_daemon_files
CONF=$TL_TMP/atca-ftd.conf
ctl() { "$ATCA_FTCTL" -s "$TL_IPC" "$@"; }
module() { ctl --json status | jq -r ".modules[] | select(.name == \"$1\") | .state + \": \" + .detail"; }

# ---- configuration ----------------------------------------------------------------
for c in 0 1 2 16; do
	sed "s|^    credentials: .*|&\n    cipher_suite: $c|" "$CONF" >"$TL_TMP/c$c.conf"
	tl_expect_rc 1 "cipher_suite $c is refused" "$ATCA_FTD" --check-config="$TL_TMP/c$c.conf"
	LINE=$(grep -n "cipher_suite" "$TL_TMP/c$c.conf" | cut -d: -f1)
	tl_check "... at its file:line ($LINE)" grep -q "c$c.conf:$LINE: cipher suite $c" "$TL_TMP/last.err"
done
tl_check "... suite 0 with the reason" grep -q "cipher suite 0 has no authentication or encryption and is never allowed" <(
	"$ATCA_FTD" --check-config="$TL_TMP/c0.conf" 2>&1)
for c in 3 17; do
	sed "s|^    credentials: .*|&\n    cipher_suite: $c|" "$CONF" >"$TL_TMP/c$c.conf"
	tl_expect_rc 0 "cipher_suite $c is accepted" "$ATCA_FTD" --check-config="$TL_TMP/c$c.conf"
done

# ---- sessions against a shelf manager that offers IPMI 1.5 only ----------------------
command -v ipmi_sim >/dev/null || { echo "     (ipmi_sim missing: session checks skipped)"; tl_finish; }
PORT=$((30000 + ($$ % 10000) * 2))
SIM=$TL_TMP/sim
mkdir -p "$SIM/state"
# without a GUID ipmi_sim has no RMCP+: IPMI 1.5 only, "none" allowed
cat >"$SIM/lan15.conf" <<LAN
name "ipmi15"
set_working_mc 0x20
startlan 1
  addr 127.0.0.1 $PORT
  priv_limit admin
  allowed_auths_callback none md2 md5 straight
  allowed_auths_user none md2 md5 straight
  allowed_auths_operator none md2 md5 straight
  allowed_auths_admin none md2 md5 straight
endlan
user 2 true "admin" "secret" admin 10 none md2 md5 straight
LAN
sed 's|^endlan|  guid a123456789abcdefa123456789abcd02\nendlan|' "$SIM/lan15.conf" >"$SIM/lan20.conf"
cat >"$SIM/shelf.emu" <<'EMU'
mc_setbmc 0x20
mc_add 0x20 0x00 no-device-sdrs 0x01 0x01 0x00 0x3f 0x000157 0x0001
mc_enable 0x20
mc_add 0x82 0x01 no-device-sdrs 0x01 0x01 0x00 0x3f 0x000157 0x0101
mc_enable 0x82
EMU
sed "s|port: 9001|port: $PORT|" "$CONF" >"$TL_TMP/sim.conf"

run_against() { # LAN_CONF: simulator and daemon, both left running
	rm -rf "$SIM/state"/*
	tl_spawn ipmi_sim -c "$SIM/$1" -f "$SIM/shelf.emu" -s "$SIM/state" -n >>"$SIM/sim.log" 2>&1
	SIM_PID=$TL_LAST_PID
	sleep 0.5
	: >"$TL_TMP/atca-ftd.log"
	tl_spawn "$ATCA_FTD" -f -c "$TL_TMP/sim.conf" 2>>"$TL_TMP/daemon.stderr"
	DPID=$TL_LAST_PID
	tl_check "daemon answers" tl_wait_for 10 ctl status
}
stop_both() {
	kill -TERM "$DPID" "$SIM_PID" 2>/dev/null
	wait "$DPID" "$SIM_PID" 2>/dev/null
}

run_against lan15.conf
if command -v ipmitool >/dev/null; then
	tl_check "the simulator grants an unauthenticated IPMI 1.5 session (ipmitool -I lan -A NONE)" \
		timeout 10 ipmitool -I lan -A NONE -H 127.0.0.1 -p "$PORT" -U admin -P secret mc info
	tl_check "... and has no RMCP+ (ipmitool -I lanplus fails)" sh -c \
		"! timeout 10 ipmitool -I lanplus -C 3 -H 127.0.0.1 -p $PORT -U admin -P secret mc info 2>/dev/null"
fi
sleep 5
tl_check "detection (FreeIPMI) refuses it: RMCP+ only" grep -q "RMCP+ session to 127.0.0.1:$PORT: ipmi 2.0 unavailable" "$TL_TMP/atca-ftd.log"
tl_check "... and never opens a session" sh -c "! grep -q 'shelf manager 127.0.0.1:$PORT is now in use' '$TL_TMP/atca-ftd.log'"
tl_check "... status: no controller online" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"ipmi-detect\") | .detail | test(\"^0 of [0-9]+ controllers online\")'"
tl_check "the shelf-manager session (OpenIPMI) is not opened either" sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"shelfmgr\") | .state != \"running\" and (.detail | test(\"no shelf-manager session\"))'"
echo "     shelfmgr    $(module shelfmgr)"
echo "     ipmi-detect $(module ipmi-detect)"
stop_both

run_against lan20.conf
tl_check "with RMCP+ on, detection opens its session at once" tl_wait_for 10 grep -q "shelf manager 127.0.0.1:$PORT is now in use" "$TL_TMP/atca-ftd.log"
tl_check "... and so does the shelf-manager session" tl_wait_for 10 sh -c "'$ATCA_FTCTL' -s '$TL_IPC' --json status | jq -e '.modules[] | select(.name == \"shelfmgr\") | .state == \"running\"'"
tl_check "... with cipher suite 3" grep -q "RMCP+, cipher suite 3" "$TL_TMP/atca-ftd.log"
stop_both
tl_finish
