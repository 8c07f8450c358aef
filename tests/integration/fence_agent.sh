#!/usr/bin/env bash
# fence_atca, the STONITH agent (agents/fence_atca): metadata valid against
# the fence-agents format and accepted by Pacemaker's tools, bad options
# refused, the password never on ipmitool's command line, then against a
# shelf lab (shelf managers only, two of them, two blades): monitor, list,
# status, off confirmed by the lab (M1, payload off), off again at once, on
# (M4), reboot, stdin mode as Pacemaker's fencer uses it, the Chassis Control
# fallback for an IPMC without FRU activation, a blade in M7 that cannot be
# fenced, and the redundant shelf manager taking over.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/lib.sh"

AGENT=$top_srcdir/agents/fence_atca
LAB=$top_srcdir/tests/lab/atca-lab
export PYTHONDONTWRITEBYTECODE=1

[ "$(id -u)" -eq 0 ] || tl_skip "needs root (the shelf lab creates network namespaces)"
command -v python3 >/dev/null || tl_skip "python3 is not installed"
command -v ipmitool >/dev/null || tl_skip "ipmitool is not installed (apt-get install ipmitool)"
command -v ipmi_sim >/dev/null || tl_skip "ipmi_sim is not installed (apt-get install openipmi)"
[ -x "$AGENT" ] || tl_skip "$AGENT is missing or not executable"

LAB_NAME=
SBIN_AGENT=
fa_cleanup() {
	if [ -n "$SBIN_AGENT" ]; then
		rm -f "$SBIN_AGENT"
	fi
	if [ -n "$LAB_NAME" ]; then
		"$LAB" --name "$LAB_NAME" down >/dev/null 2>&1 ||
			echo "WARNING: 'atca-lab --name $LAB_NAME down' failed"
	fi
	tl_cleanup
}
trap fa_cleanup EXIT
tl_tmpdir

# --- metadata -----------------------------------------------------------------
tl_expect_rc 0 "metadata" "$AGENT" -o metadata
cp "$TL_TMP/last.out" "$TL_TMP/meta.xml"
printf 'action=metadata\n' | "$AGENT" >"$TL_TMP/meta-stdin.xml" 2>&1
tl_check "metadata through standard input is the same" cmp -s "$TL_TMP/meta.xml" "$TL_TMP/meta-stdin.xml"

# The fence-agents metadata format (its lib/metadata.rng), written out here.
cat >"$TL_TMP/metadata.rng" <<'RNG'
<grammar xmlns="http://relaxng.org/ns/structure/1.0">
  <define name="bool"><choice><value>0</value><value>1</value></choice></define>
  <define name="param">
    <element name="parameter">
      <attribute name="name"/>
      <attribute name="unique"><ref name="bool"/></attribute>
      <attribute name="required"><ref name="bool"/></attribute>
      <optional><attribute name="deprecated"><ref name="bool"/></attribute></optional>
      <optional><attribute name="obsoletes"/></optional>
      <element name="getopt"><attribute name="mixed"/></element>
      <element name="content">
        <choice>
          <attribute name="type">
            <choice><value>boolean</value><value>string</value><value>second</value><value>integer</value></choice>
          </attribute>
          <group>
            <attribute name="type"><value>select</value></attribute>
            <zeroOrMore><element name="option"><attribute name="value"/></element></zeroOrMore>
          </group>
        </choice>
        <optional><attribute name="default"/></optional>
      </element>
      <oneOrMore><element name="shortdesc"><attribute name="lang"/><text/></element></oneOrMore>
    </element>
  </define>
  <start>
    <element name="resource-agent">
      <attribute name="name"/>
      <attribute name="shortdesc"/>
      <zeroOrMore><element name="symlink"><attribute name="name"/><attribute name="shortdesc"/></element></zeroOrMore>
      <element name="longdesc"><text/></element>
      <element name="vendor-url"><text/></element>
      <element name="parameters"><oneOrMore><ref name="param"/></oneOrMore></element>
      <element name="actions">
        <oneOrMore>
          <element name="action">
            <attribute name="name"/>
            <optional><attribute name="on_target"><ref name="bool"/></attribute></optional>
            <optional><attribute name="automatic"><ref name="bool"/></attribute></optional>
          </element>
        </oneOrMore>
      </element>
    </element>
  </start>
</grammar>
RNG
if command -v xmllint >/dev/null; then
	tl_check "metadata is well-formed XML (xmllint)" xmllint --noout "$TL_TMP/meta.xml"
	tl_expect_rc 0 "metadata follows the fence-agents schema (xmllint --relaxng)" \
		xmllint --noout --relaxng "$TL_TMP/metadata.rng" "$TL_TMP/meta.xml"
else
	echo "note: xmllint is not installed (libxml2-utils): schema check skipped, python3 checks only"
fi
cat >"$TL_TMP/meta_check.py" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
fail = []
def need(cond, what):
    if not cond:
        fail.append(what)
need(root.tag == "resource-agent" and root.get("name") == "fence_atca", "resource-agent name")
need(root.get("shortdesc"), "shortdesc attribute")
need((root.findtext("longdesc") or "").strip(), "longdesc")
need((root.findtext("vendor-url") or "").strip(), "vendor-url")
params = {p.get("name"): p for p in root.iter("parameter")}
for name in ("action", "ip", "ipaddr", "ipport", "username", "login", "password", "passwd",
             "password_script", "passwd_script", "plug", "port", "cipher", "method", "ipmc",
             "credentials", "shelf_manager2", "power_timeout", "power_wait", "delay",
             "verbose", "debug_file", "version", "help"):
    need(name in params, "parameter " + name)
for p in params.values():
    need(p.find("getopt") is not None and p.find("content") is not None
         and p.find("shortdesc") is not None, "getopt/content/shortdesc of " + p.get("name"))
need(params.get("ip") is not None and params["ip"].get("obsoletes") == "ipaddr", "ip obsoletes ipaddr")
need(params.get("ipaddr") is not None and params["ipaddr"].get("deprecated") == "1", "ipaddr deprecated")
need(params.get("plug") is not None and params["plug"].get("obsoletes") == "port", "plug obsoletes port")
c = params.get("cipher")
need(c is not None and c.find("content").get("default") == "3"
     and "0" not in [o.get("value") for o in c.iter("option")], "cipher: default 3, no 0")
actions = [a.get("name") for a in root.iter("action")]
for a in ("on", "off", "reboot", "status", "list", "monitor", "metadata", "validate-all"):
    need(a in actions, "action " + a)
if fail:
    print("missing or wrong: " + ", ".join(fail))
    sys.exit(1)
PY
tl_expect_rc 0 "metadata has every element, parameter and action it must (python3)" \
	python3 "$TL_TMP/meta_check.py" "$TL_TMP/meta.xml"
tl_expect_rc 0 "--help" "$AGENT" --help
tl_check "--help lists --shelf-manager2 and --credentials" grep -q -- "--credentials" "$TL_TMP/last.out"
tl_expect_rc 0 "--version" "$AGENT" --version

# --- bad options: exit 1 with a message, without touching any device ------------
printf 'username: admin\npassword: secret\n' >"$TL_TMP/shelf.cred"
chmod 644 "$TL_TMP/shelf.cred"
COMMON=(-a 192.0.2.1 -l admin -p secret)
tl_expect_rc 1 "cipher 0 is refused" "$AGENT" "${COMMON[@]}" -C 0 -o status -n 2
tl_check "... saying why" grep -q "cipher=0 is refused" "$TL_TMP/last.err"
tl_expect_rc 1 "cipher 0 on standard input too" sh -c "printf 'action=status\nip=192.0.2.1\nport=2\ncipher=0\n' | '$AGENT'"
tl_check "... saying why" grep -q "cipher=0 is refused" "$TL_TMP/last.err"
tl_expect_rc 1 "cipher 1 is not supported either" "$AGENT" "${COMMON[@]}" -C 1 -o status -n 2
tl_expect_rc 1 "a world-readable credentials file is refused" \
	"$AGENT" -a 192.0.2.1 --credentials "$TL_TMP/shelf.cred" -o status -n 2
tl_check "... as atca-ftd refuses it" grep -q "mode 0644 is too open.*chmod 600" "$TL_TMP/last.err"
tl_check "... without quoting it" sh -c "! grep -q secret '$TL_TMP/last.err'"
tl_expect_rc 1 "an unknown action" "$AGENT" "${COMMON[@]}" -o frobnicate -n 2
tl_check "... is named" grep -q "unknown action 'frobnicate'" "$TL_TMP/last.err"
tl_expect_rc 1 "off without a plug" "$AGENT" "${COMMON[@]}" -o off
tl_check "... asks for the blade" grep -q "needs the blade" "$TL_TMP/last.err"
tl_expect_rc 1 "a node name as plug" "$AGENT" "${COMMON[@]}" -o off -n node1
tl_check "... points at pcmk_host_map" grep -q "pcmk_host_map" "$TL_TMP/last.err"
tl_expect_rc 1 "slot 17" "$AGENT" "${COMMON[@]}" -o off -n 17
tl_expect_rc 1 "an unknown command-line option" "$AGENT" "${COMMON[@]}" --frobnicate
tl_expect_rc 1 "password and credentials together" \
	"$AGENT" "${COMMON[@]}" --credentials "$TL_TMP/shelf.cred" -o status -n 2
tl_expect_rc 1 "validate-all rejects cipher 0" sh -c "printf 'action=validate-all\nip=192.0.2.1\ncipher=0\n' | '$AGENT'"
tl_expect_rc 0 "validate-all accepts a good configuration (and ignores an unknown key)" \
	sh -c "printf 'action=validate-all\nip=192.0.2.1\nlogin=admin\npasswd=secret\nfrobnicate=1\n' | '$AGENT'"

# --- the password never reaches ipmitool's command line ------------------------
cat >"$TL_TMP/fake-ipmitool" <<FAKE
#!/bin/sh
printf '%s\n' "\$*" >>"$TL_TMP/fake.argv"
printf '%s\n' "\${IPMI_PASSWORD:-}" >>"$TL_TMP/fake.env"
echo "Error: Unable to establish IPMI v2 / RMCP+ session" >&2
exit 1
FAKE
chmod 755 "$TL_TMP/fake-ipmitool"
chmod 600 "$TL_TMP/shelf.cred"
printf 'action=status\nip=192.0.2.1\nlogin=admin\npasswd=Pw-On-Stdin\nport=2\nipmitool_path=%s\n' \
	"$TL_TMP/fake-ipmitool" >"$TL_TMP/stdin.txt"
tl_expect_rc 1 "a shelf manager that does not answer is a failure" sh -c "'$AGENT' <'$TL_TMP/stdin.txt'"
tl_check "... said so" grep -q "no shelf manager answers" "$TL_TMP/last.err"
"$AGENT" -a 192.0.2.1 --credentials "$TL_TMP/shelf.cred" -o status -n 2 \
	--ipmitool-path "$TL_TMP/fake-ipmitool" >/dev/null 2>&1
tl_check "ipmitool was run with -E and -C 3" grep -q -- "-I lanplus -C 3 .*-E" "$TL_TMP/fake.argv"
tl_check "no password on its command line" sh -c "! grep -q -e Pw-On-Stdin -e secret '$TL_TMP/fake.argv'"
tl_check "the password reached it through IPMI_PASSWORD" \
	sh -c "grep -qx Pw-On-Stdin '$TL_TMP/fake.env' && grep -qx secret '$TL_TMP/fake.env'"

# --- against a shelf lab ----------------------------------------------------------
for n in 1 2 3 4 5 6 7 8 9; do
	if [ ! -e "/tmp/atca-lab-fa$n" ] && ! "$LAB" list 2>/dev/null | grep -q "^fa$n "; then
		LAB_NAME=fa$n
		break
	fi
done
[ -n "$LAB_NAME" ] || tl_skip "no free lab name among fa1..fa9"
if ! "$LAB" --name "$LAB_NAME" up --shelf-only --blades 2 --shelf-managers 2 >"$TL_TMP/up.log" 2>&1; then
	sed 's/^/    | /' "$TL_TMP/up.log"
	tl_fail "atca-lab up --shelf-only --blades 2 --shelf-managers 2"
	tl_finish
fi
eval "$("$LAB" --name "$LAB_NAME" env)"
SHMC_A=$ATCA_LAB_SHMC
SHMC_B=${SHMC_A%.*}.3
tl_ok "lab $LAB_NAME up (shelf managers $SHMC_A and $SHMC_B)"
FA=("$AGENT" -a "$SHMC_A" --shelf-manager2 "$SHMC_B" -l admin -p secret)

# blade_is SLOT HOTSWAP POWER: what the lab says about the blade
# The lab records power changes from a hook the IPMC runs after it answers, so
# the record may trail the agent's confirmation by a moment: wait for it.
blade_is() { tl_wait_for 5 blade_is_now "$@"; }
blade_is_now() {
	"$LAB" --name "$LAB_NAME" status --json |
		python3 -c 'import json, sys
b = json.load(sys.stdin)["blades"][sys.argv[1]]
sys.exit(0 if (b["hotswap"], b["power"]) == (sys.argv[2], sys.argv[3]) else 1)' "$@"
}
# secs FILE: the "after X s" the agent reported
secs() { grep -o 'after [0-9.]* s' "$1" | head -1 | tr -dc '0-9.'; }

tl_expect_rc 0 "monitor" "${FA[@]}" -o monitor
tl_expect_rc 0 "list" "${FA[@]}" -o list
tl_check "list shows blade 1 at 0x82" grep -qx "1,0x82" "$TL_TMP/last.out"
tl_check "list shows blade 2 at 0x84" grep -qx "2,0x84" "$TL_TMP/last.out"
tl_check "list shows nothing else" test "$(wc -l <"$TL_TMP/last.out")" -eq 2
tl_expect_rc 0 "list-status" "${FA[@]}" -o list-status
tl_check "list-status: both on" sh -c "grep -qx 1,0x82,ON '$TL_TMP/last.out' && grep -qx 2,0x84,ON '$TL_TMP/last.out'"
tl_expect_rc 0 "status of blade 2: on" "${FA[@]}" -o status -n 2
tl_check "... printed as Status: ON" grep -qx "Status: ON" "$TL_TMP/last.out"

t0=$(date +%s.%N)
tl_expect_rc 0 "off blade 2" "${FA[@]}" -o off -n 2
t1=$(date +%s.%N)
OFF_S=$(secs "$TL_TMP/last.out")
OFF_WALL=$(python3 -c "print(round($t1 - $t0, 2))")
tl_check "... confirmed by the hot-swap sensor" grep -q "M1 confirmed by the hot-swap sensor" "$TL_TMP/last.out"
tl_check "the lab has blade 2 in M1, powered off" blade_is 2 M1 off
tl_check "blade 1 untouched" blade_is 1 M4 on
tl_expect_rc 2 "status of blade 2: off" "${FA[@]}" -o status -n 2
t0=$(date +%s%N)
tl_expect_rc 0 "off again succeeds" "${FA[@]}" -o off -n 2
t1=$(date +%s%N)
tl_check "... at once, already off ($(((t1 - t0) / 1000000)) ms)" \
	sh -c "grep -q 'already off (M1' '$TL_TMP/last.out' && [ $(((t1 - t0) / 1000000)) -lt 3000 ]"
t0=$(date +%s.%N)
tl_expect_rc 0 "on blade 2 (given by its IPMC address)" "${FA[@]}" -o on -n 0x84
t1=$(date +%s.%N)
ON_S=$(secs "$TL_TMP/last.out")
ON_WALL=$(python3 -c "print(round($t1 - $t0, 2))")
tl_check "... M4 confirmed" grep -q "M4 confirmed by the hot-swap sensor" "$TL_TMP/last.out"
tl_check "the lab has blade 2 in M4, powered on" blade_is 2 M4 on
tl_expect_rc 0 "reboot blade 2" "${FA[@]}" -o reboot -n 2
tl_check "... off then on, each confirmed" \
	sh -c "grep -q 'Powered OFF.*M1 confirmed' '$TL_TMP/last.out' && grep -q 'Powered ON.*M4 confirmed' '$TL_TMP/last.out'"
tl_check "the lab has blade 2 in M4 again" blade_is 2 M4 on
tl_check "the shelf manager's SEL saw the reboot's deactivation" \
	sh -c "'$LAB' --name '$LAB_NAME' ipmitool sel list 2>/dev/null | grep -c 'Transition to M1' | grep -q '^[2-9]'"

# --- standard input, as Pacemaker's fencer runs it -----------------------------
stdin_run() { printf '%b' "$1" | "$AGENT"; }
BASE="ip=$SHMC_A\nipport=623\nlogin=admin\npasswd=secret\nnodename=blade2\nagent=fence_atca\n"
tl_expect_rc 0 "stdin: status (port, login, passwd, nodename)" stdin_run "action=status\n${BASE}port=2\n"
tl_expect_rc 0 "stdin: off (option=, plug=, a comment line)" stdin_run "# from stonith-ng\noption=off\n${BASE}plug=2\n"
tl_check "... blade 2 off" blade_is 2 M1 off
tl_expect_rc 2 "stdin: status off" stdin_run "action=status\n${BASE}port=2\n"
tl_expect_rc 0 "stdin: on with a 0600 credentials file" \
	stdin_run "action=on\nipaddr=$SHMC_A\ncredentials=$TL_TMP/shelf.cred\nport=2\nverbose=1\ndebug_file=$TL_TMP/debug.log\n"
tl_check "... blade 2 on" blade_is 2 M4 on
tl_check "verbose shows the ipmitool commands" grep -q "running: .*ipmitool -I lanplus -C 3 .*-E -t 0x84 raw 0x2c 0x0c 0x00 0x00 0x01" "$TL_TMP/last.err"
tl_check "... and the debug file has them too" grep -q "raw 0x2c 0x0a 0x00 0x00 0x01 0x00" "$TL_TMP/debug.log"
tl_check "... never the password" sh -c "! grep -q secret '$TL_TMP/last.err' '$TL_TMP/debug.log'"

# --- an IPMC without FRU activation: Chassis Control ----------------------------
"$LAB" --name "$LAB_NAME" inject picmg 2 >/dev/null
tl_expect_rc 0 "off with the PICMG commands unsupported (CC 0xC1)" "${FA[@]}" -o off -n 2
tl_check "... through Chassis Control, confirmed by Get Chassis Status" \
	grep -q "power off confirmed by Get Chassis Status" "$TL_TMP/last.out"
tl_check "the lab has blade 2 powered off" blade_is 2 M1 off
tl_expect_rc 2 "status: off" "${FA[@]}" -o status -n 2
tl_expect_rc 2 "status with method=chassis: off" "${FA[@]}" -o status -n 2 -m chassis
tl_expect_rc 1 "method=hotswap cannot switch it" "${FA[@]}" -o on -n 2 -m hotswap
tl_check "... and says why" grep -q "CC 0xc1" "$TL_TMP/last.err"
tl_expect_rc 0 "on through Chassis Control" "${FA[@]}" -o on -n 2
tl_check "... confirmed by Get Chassis Status" grep -q "power on confirmed by Get Chassis Status" "$TL_TMP/last.out"
"$LAB" --name "$LAB_NAME" repair picmg 2 >/dev/null
tl_check "blade 2 back in M4 with FRU activation" tl_wait_for 5 blade_is 2 M4 on

# --- M7: the shelf manager lost the IPMC --------------------------------------------
"$LAB" --name "$LAB_NAME" inject m7 2 >/dev/null
tl_expect_rc 1 "off of a blade in M7 fails" "${FA[@]}" -o off -n 2
tl_check "... because it cannot be confirmed" grep -q "cannot be confirmed" "$TL_TMP/last.err"
tl_expect_rc 1 "status of a blade in M7 is an error" "${FA[@]}" -o status -n 2
tl_expect_rc 0 "list-status still answers" "${FA[@]}" -o list-status
tl_check "... blade 2 UNKNOWN" grep -qx "2,0x84,UNKNOWN" "$TL_TMP/last.out"
"$LAB" --name "$LAB_NAME" repair m7 2 >/dev/null
tl_check "blade 2 back in M4" tl_wait_for 5 blade_is 2 M4 on

# --- the redundant shelf manager ------------------------------------------------------
"$LAB" --name "$LAB_NAME" inject shmc a >/dev/null
tl_expect_rc 0 "with shelf manager A dead, monitor still succeeds through B" "${FA[@]}" -o monitor
tl_check "... warning that A does not answer" grep -q "$SHMC_A" "$TL_TMP/last.err"
tl_expect_rc 0 "off through B" "${FA[@]}" -o off -n 1
tl_check "the lab has blade 1 off" blade_is 1 M1 off
tl_expect_rc 1 "without shelf_manager2, A alone fails" "$AGENT" -a "$SHMC_A" -l admin -p secret -o status -n 1
tl_expect_rc 0 "on through B" "${FA[@]}" -o on -n 1
tl_check "the lab has blade 1 on" blade_is 1 M4 on

# --- Pacemaker's view of the agent ---------------------------------------------------
if ! command -v stonith_admin >/dev/null; then
	echo "SKIP (part): Pacemaker checks: stonith_admin is not installed (apt-get install pacemaker-cli-utils)"
elif [ -e /usr/sbin/fence_atca ]; then
	echo "SKIP (part): Pacemaker checks: /usr/sbin/fence_atca already exists (an installed copy is not replaced)"
else
	SBIN_AGENT=/usr/sbin/fence_atca
	install -m 0755 "$AGENT" "$SBIN_AGENT"
	tl_expect_rc 0 "stonith_admin --metadata -a fence_atca" stonith_admin --metadata -a fence_atca
	tl_check "... Pacemaker sees the plug parameter" grep -q 'parameter name="plug"' "$TL_TMP/last.out"
	tl_check "... and the actions" grep -q 'action name="validate-all"' "$TL_TMP/last.out"
	if command -v crm_resource >/dev/null; then
		tl_expect_rc 0 "crm_resource --show-metadata stonith:fence_atca" \
			crm_resource --show-metadata stonith:fence_atca
	fi
	tl_expect_rc 0 "stonith_admin --validate accepts a good configuration" \
		stonith_admin --validate -a fence_atca -o ip="$SHMC_B" -o username=admin -o password=secret
	tl_check "stonith_admin --validate rejects cipher 0" \
		sh -c "! stonith_admin --validate -a fence_atca -o ip='$SHMC_B' -o cipher=0"
	rm -f "$SBIN_AGENT"
	SBIN_AGENT=
fi

echo "measured: off -> M1 confirmed ${OFF_S:-?} s (agent run ${OFF_WALL:-?} s); on -> M4 confirmed ${ON_S:-?} s (agent run ${ON_WALL:-?} s)"
"$LAB" --name "$LAB_NAME" down >"$TL_TMP/down.log" 2>&1
rc=$?
LAB_NAME_DONE=$LAB_NAME
LAB_NAME=
tl_check "lab $LAB_NAME_DONE down" test "$rc" -eq 0
tl_check "no lab directory left" test ! -e "/tmp/atca-lab-$LAB_NAME_DONE"
tl_finish
