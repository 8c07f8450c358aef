#!/usr/bin/env bash
# agents/snmp/ATCA-FT-MIB.txt: net-snmp parses it without an error or a
# warning, every notification and object has the OID the notifier in
# atca-ftd uses, each notification carries the objects it should, the
# enumerations cover the failure model's layer and severity names, and
# snmptrapd, given the MIB, decodes a v2c trap and an SNMPv3 authPriv
# inform as atca-ftd sends them (numeric OIDs) into names.
#
# The MIB imports from SNMPv2-SMI, SNMPv2-TC and SNMPv2-CONF. Debian ships
# them only in non-free (snmp-mibs-downloader). When they are installed the
# checks run against them, exactly as an operator would load the MIB
# (snmptranslate -m +ATCA-FT-MIB). Otherwise they run against minimal
# stand-ins of those three modules written below (the OIDs, types and
# macro names the MIB uses, nothing more) and say so.
# shellcheck source=tests/lib.sh
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"

MIB_DIR=$top_srcdir/agents/snmp
MIB=$MIB_DIR/ATCA-FT-MIB.txt

command -v snmptranslate >/dev/null || tl_skip "snmptranslate is not installed (package snmp)"
[ -r "$MIB" ] || tl_skip "$MIB is missing"
tl_tmpdir
export SNMP_PERSISTENT_DIR=$TL_TMP/persist
# (net-snmp says "Created directory" on stderr when it makes this one itself)
mkdir -p "$SNMP_PERSISTENT_DIR/cert_indexes"
unset SNMPCONFPATH

# The three SMIv2 base modules, reduced to what ATCA-FT-MIB needs.
write_standins() {
	local d=$1
	mkdir -p "$d"
	cat >"$d/SNMPv2-SMI.txt" <<'EOF'
SNMPv2-SMI DEFINITIONS ::= BEGIN
-- Minimal stand-in for RFC 2578's module, for tests/mib_lint.sh only.
org            OBJECT IDENTIFIER ::= { iso 3 }
dod            OBJECT IDENTIFIER ::= { org 6 }
internet       OBJECT IDENTIFIER ::= { dod 1 }
mgmt           OBJECT IDENTIFIER ::= { internet 2 }
mib-2          OBJECT IDENTIFIER ::= { mgmt 1 }
private        OBJECT IDENTIFIER ::= { internet 4 }
enterprises    OBJECT IDENTIFIER ::= { private 1 }
snmpV2         OBJECT IDENTIFIER ::= { internet 6 }
snmpModules    OBJECT IDENTIFIER ::= { snmpV2 3 }

MODULE-IDENTITY MACRO ::=
BEGIN
    TYPE NOTATION ::= "LAST-UPDATED" value(Update ExtUTCTime)
    VALUE NOTATION ::= value(VALUE OBJECT IDENTIFIER)
END

OBJECT-TYPE MACRO ::=
BEGIN
    TYPE NOTATION ::= "SYNTAX" Syntax
    VALUE NOTATION ::= value(VALUE ObjectName)
END

NOTIFICATION-TYPE MACRO ::=
BEGIN
    TYPE NOTATION ::= ObjectsPart
    VALUE NOTATION ::= value(VALUE NotificationName)
END

Integer32 ::= INTEGER (-2147483648..2147483647)
Unsigned32 ::= [APPLICATION 2] IMPLICIT INTEGER (0..4294967295)
Counter64 ::= [APPLICATION 6] IMPLICIT INTEGER (0..18446744073709551615)
END
EOF
	cat >"$d/SNMPv2-TC.txt" <<'EOF'
SNMPv2-TC DEFINITIONS ::= BEGIN
-- Minimal stand-in for RFC 2579's module, for tests/mib_lint.sh only.
TEXTUAL-CONVENTION MACRO ::=
BEGIN
    TYPE NOTATION ::= DisplayPart "STATUS" Status
    VALUE NOTATION ::= value(VALUE Syntax)
END

DisplayString ::= TEXTUAL-CONVENTION
    DISPLAY-HINT "255a"
    STATUS       current
    DESCRIPTION  "NVT ASCII text, at most 255 characters."
    SYNTAX       OCTET STRING (SIZE (0..255))
END
EOF
	cat >"$d/SNMPv2-CONF.txt" <<'EOF'
SNMPv2-CONF DEFINITIONS ::= BEGIN
-- Minimal stand-in for RFC 2580's module, for tests/mib_lint.sh only.
OBJECT-GROUP MACRO ::=
BEGIN
    TYPE NOTATION ::= ObjectsPart "STATUS" Status
    VALUE NOTATION ::= value(VALUE OBJECT IDENTIFIER)
END

NOTIFICATION-GROUP MACRO ::=
BEGIN
    TYPE NOTATION ::= NotificationsPart "STATUS" Status
    VALUE NOTATION ::= value(VALUE OBJECT IDENTIFIER)
END

MODULE-COMPLIANCE MACRO ::=
BEGIN
    TYPE NOTATION ::= "STATUS" Status
    VALUE NOTATION ::= value(VALUE OBJECT IDENTIFIER)
END
END
EOF
}

# The real base modules, where net-snmp looks by default?
if snmptranslate -M "+$MIB_DIR" -m SNMPv2-SMI:SNMPv2-TC:SNMPv2-CONF -IR -On enterprises \
	>"$TL_TMP/base.out" 2>"$TL_TMP/base.err" &&
	[ "$(cat "$TL_TMP/base.out")" = ".1.3.6.1.4.1" ] && [ ! -s "$TL_TMP/base.err" ]; then
	MODE=standard
	# exactly how an operator adds the MIB to net-snmp's default list
	TR=(snmptranslate -M "+$MIB_DIR" -m +ATCA-FT-MIB)
	tl_ok "standard SMIv2 modules found: checking against them"
else
	MODE=standin
	write_standins "$TL_TMP/standin"
	TR=(snmptranslate -M "$TL_TMP/standin:$MIB_DIR" -m ATCA-FT-MIB)
	echo "note: SNMPv2-SMI, SNMPv2-TC and SNMPv2-CONF are not installed (Debian:" \
		"snmp-mibs-downloader, non-free): checking against minimal stand-ins"
fi

# The diagnostics net-snmp printed about this MIB. In standard mode net-snmp
# also loads its default list of modules, and complains about those of them
# that this machine lacks: not our business.
diagnostics() {
	if [ "$MODE" = standard ]; then
		grep -e 'ATCA-FT-MIB' -e 'Cannot find module (SNMPv2-\(SMI\|TC\|CONF\))' "$1"
	else
		cat "$1"
	fi
}

# ---- the file itself ---------------------------------------------------------
if LC_ALL=C grep -n '[^ -~]' "$MIB" >"$TL_TMP/nonascii"; then
	tl_fail "ATCA-FT-MIB.txt has characters that are not printable ASCII (tabs included)"
	sed 's/^/    | /' "$TL_TMP/nonascii"
else
	tl_ok "ATCA-FT-MIB.txt is printable ASCII, without tabs"
fi

# ---- the whole tree ----------------------------------------------------------
"${TR[@]}" -Tp -IR atcaFtMIB >"$TL_TMP/tree" 2>"$TL_TMP/tree.err"
rc=$?
diagnostics "$TL_TMP/tree.err" >"$TL_TMP/tree.diag"
if [ "$rc" -ne 0 ] || [ -s "$TL_TMP/tree.diag" ] || ! grep -q 'atcaFtMIB(42)' "$TL_TMP/tree"; then
	tl_fail "snmptranslate -Tp -IR atcaFtMIB: exit $rc, with diagnostics"
	sed 's/^/    | /' "$TL_TMP/tree.diag"
else
	tl_ok "snmptranslate -Tp -IR atcaFtMIB prints the tree ($(wc -l <"$TL_TMP/tree") lines), no error or warning"
fi

oid_of() {
	"${TR[@]}" -On "ATCA-FT-MIB::$1" 2>"$TL_TMP/oid.err"
}
got=$(oid_of atcaFtFaultRaised)
diag=$(diagnostics "$TL_TMP/oid.err")
if [ "$got" = ".1.3.6.1.4.1.99999.42.0.1" ] && [ -z "$diag" ]; then
	tl_ok "ATCA-FT-MIB::atcaFtFaultRaised = $got"
else
	tl_fail "ATCA-FT-MIB::atcaFtFaultRaised = '$got' (expected .1.3.6.1.4.1.99999.42.0.1)${diag:+, with diagnostics}"
	[ -z "$diag" ] || printf '%s\n' "$diag" | sed 's/^/    | /'
fi

# ---- every OID: the layout atca-ftd's notifier is written against -----------
LAYOUT="
atcaFtMIB 42
atcaFtNotifications 42.0
atcaFtObjects 42.1
atcaFtConformance 42.2
atcaFtFaultRaised 42.0.1
atcaFtFaultCleared 42.0.2
atcaFtRecoveryStarted 42.0.3
atcaFtRecoverySucceeded 42.0.4
atcaFtRecoveryFailed 42.0.5
atcaFtHotSwapChange 42.0.6
atcaFtPairProtectionLost 42.0.7
atcaFtPairProtectionRestored 42.0.8
atcaFtShelfManagerSwitchover 42.0.9
atcaFtReplicationStalled 42.0.10
atcaFtFaultId 42.1.1
atcaFtFaultLayer 42.1.2
atcaFtFaultSeverity 42.1.3
atcaFtTarget 42.1.4
atcaFtFaultName 42.1.5
atcaFtDescription 42.1.6
atcaFtPlanId 42.1.7
atcaFtBladeSlot 42.1.8
atcaFtHotSwapState 42.1.9
atcaFtPreviousHotSwapState 42.1.10
atcaFtPairName 42.1.11
atcaFtVmName 42.1.12
atcaFtShelfManager 42.1.13
atcaFtEpoch 42.1.14
atcaFtNodeName 42.1.15"
bad=0
n=0
while read -r name tail; do
	[ -n "$name" ] || continue
	n=$((n + 1))
	got=$(oid_of "$name")
	if [ "$got" != ".1.3.6.1.4.1.99999.$tail" ]; then
		tl_fail "$name = '$got', expected .1.3.6.1.4.1.99999.$tail"
		bad=$((bad + 1))
	fi
done <<<"$LAYOUT"
[ "$bad" -eq 0 ] && tl_ok "all $n names have the OIDs of the notifier's layout (1.3.6.1.4.1.99999.42...)"

# ---- what each notification carries -----------------------------------------
FAULT="atcaFtFaultId, atcaFtFaultLayer, atcaFtFaultSeverity, atcaFtFaultName, atcaFtTarget, atcaFtDescription, atcaFtNodeName"
RECOVERY="atcaFtPlanId, atcaFtTarget, atcaFtDescription, atcaFtNodeName"
PAIR="atcaFtPairName, atcaFtVmName, atcaFtDescription, atcaFtNodeName"
NOTIFS="
atcaFtFaultRaised|$FAULT
atcaFtFaultCleared|$FAULT
atcaFtRecoveryStarted|$RECOVERY
atcaFtRecoverySucceeded|$RECOVERY
atcaFtRecoveryFailed|$RECOVERY
atcaFtHotSwapChange|atcaFtBladeSlot, atcaFtPreviousHotSwapState, atcaFtHotSwapState, atcaFtNodeName
atcaFtPairProtectionLost|$PAIR
atcaFtPairProtectionRestored|$PAIR
atcaFtShelfManagerSwitchover|atcaFtShelfManager, atcaFtNodeName
atcaFtReplicationStalled|atcaFtVmName, atcaFtEpoch, atcaFtNodeName"
bad=0
while IFS='|' read -r name want; do
	[ -n "$name" ] || continue
	got=$("${TR[@]}" -Td "ATCA-FT-MIB::$name" 2>/dev/null |
		sed -n 's/^  OBJECTS[[:space:]]*{ *\(.*[^ ]\) *}.*/\1/p')
	if [ "$got" != "$want" ]; then
		tl_fail "$name carries {$got}, expected {$want}"
		bad=$((bad + 1))
	fi
done <<<"$NOTIFS"
[ "$bad" -eq 0 ] && tl_ok "each of the 10 notifications carries exactly its OBJECTS, in order"

# ---- the objects: accessible-for-notify, with their types ---------------------
OBJECTS="
atcaFtFaultId Unsigned32
atcaFtFaultLayer INTEGER
atcaFtFaultSeverity INTEGER
atcaFtTarget DisplayString
atcaFtFaultName DisplayString
atcaFtDescription DisplayString
atcaFtPlanId Unsigned32
atcaFtBladeSlot Unsigned32
atcaFtHotSwapState INTEGER
atcaFtPreviousHotSwapState INTEGER
atcaFtPairName DisplayString
atcaFtVmName DisplayString
atcaFtShelfManager DisplayString
atcaFtEpoch Counter64
atcaFtNodeName DisplayString"
bad=0
while read -r name type; do
	[ -n "$name" ] || continue
	"${TR[@]}" -Td "ATCA-FT-MIB::$name" >"$TL_TMP/td" 2>/dev/null
	syntax=$(sed -n 's/^  SYNTAX[[:space:]]*//p' "$TL_TMP/td")
	case $type in
	DisplayString) ok_type=$(grep -c 'DISPLAY-HINT[[:space:]]*"255a"' "$TL_TMP/td") ;;
	*) case $syntax in "$type"*) ok_type=1 ;; *) ok_type=0 ;; esac ;;
	esac
	if ! grep -q 'MAX-ACCESS[[:space:]]*accessible-for-notify' "$TL_TMP/td" || [ "$ok_type" -eq 0 ]; then
		tl_fail "$name: SYNTAX '$syntax' (want $type), $(grep MAX-ACCESS "$TL_TMP/td")"
		bad=$((bad + 1))
	fi
done <<<"$OBJECTS"
[ "$bad" -eq 0 ] && tl_ok "the 15 objects are accessible-for-notify with the agreed types"

enum_of() {
	"${TR[@]}" -Td "ATCA-FT-MIB::$1" 2>/dev/null | sed -n 's/^  SYNTAX[[:space:]]*INTEGER {\(.*\)}.*/\1/p'
}
check_enum() {
	local name=$1 want=$2 got
	got=$(enum_of "$name" | tr -d ' ')
	if [ "$got" = "$want" ]; then
		tl_ok "$name values: $got"
	else
		tl_fail "$name values: '$got', expected '$want'"
	fi
}
check_enum atcaFtFaultLayer "unknown(0),hardware(1),hypervisor(2),vm(3),cluster(4)"
check_enum atcaFtFaultSeverity "unknown(0),info(1),warning(2),minor(3),major(4),critical(5),predictive(6),degraded(7),fatal(8)"
check_enum atcaFtHotSwapState "unknown(0),m0(1),m1(2),m2(3),m3(4),m4(5),m5(6),m6(7),m7(8)"
check_enum atcaFtPreviousHotSwapState "unknown(0),m0(1),m1(2),m2(3),m3(4),m4(5),m5(6),m6(7),m7(8)"

# Every layer and severity name of the failure model (src/common/af_fault.c)
# has its value in the MIB: a new one in C needs one here too.
FAULT_C=$top_srcdir/src/common/af_fault.c
if [ -r "$FAULT_C" ]; then
	for kind in layer:atcaFtFaultLayer severity:atcaFtFaultSeverity; do
		arr=${kind%%:*}
		obj=${kind#*:}
		names=$(sed -n "/af_${arr}_names\[/,/};/s/.*\] = \"\([a-z-]*\)\".*/\1/p" "$FAULT_C")
		values=$(enum_of "$obj")
		missing=
		for nm in $names; do
			case ",$(echo "$values" | tr -d ' ')," in
			*",$nm("*) ;;
			*) missing="$missing $nm" ;;
			esac
		done
		if [ -z "$names" ]; then
			tl_fail "no af_${arr}_names found in src/common/af_fault.c"
		elif [ -n "$missing" ]; then
			tl_fail "$obj lacks the failure model's ${arr}(s):$missing"
		else
			tl_ok "$obj covers every $arr of the failure model ($(printf '%s' "$names" | tr '\n' ','))"
		fi
	done
fi

# ---- snmptrapd decodes what atca-ftd sends -------------------------------------
if ! command -v snmptrapd >/dev/null || ! command -v snmptrap >/dev/null ||
	! command -v snmpinform >/dev/null; then
	echo "note: snmptrapd/snmptrap/snmpinform not installed: trap decoding not checked"
	tl_finish
fi
if [ "$MODE" = standard ]; then
	TRAPD_MIBS=(-M "+$MIB_DIR" -m +ATCA-FT-MIB)
else
	TRAPD_MIBS=(-M "$TL_TMP/standin:$MIB_DIR" -m ATCA-FT-MIB)
fi
# the same lines as man/atca-ft-mib.7's EXAMPLES
cat >"$TL_TMP/snmptrapd.conf" <<'EOF'
authCommunity log public
createUser atcaft SHA-256 "auth pass phrase" AES "priv pass phrase"
authUser log atcaft priv
EOF
port=
for _ in 1 2 3 4 5; do
	p=$((20000 + (RANDOM % 20000)))
	: >"$TL_TMP/traps.log"
	tl_spawn snmptrapd -f -C -c "$TL_TMP/snmptrapd.conf" "${TRAPD_MIBS[@]}" \
		-Lf "$TL_TMP/traps.log" "udp:127.0.0.1:$p" 2>"$TL_TMP/trapd.err"
	if tl_wait_for 5 grep -q 'NET-SNMP version' "$TL_TMP/traps.log" &&
		kill -0 "$TL_LAST_PID" 2>/dev/null; then
		port=$p
		TRAPD_PID=$TL_LAST_PID
		break
	fi
	kill "$TL_LAST_PID" 2>/dev/null
	tl_wait_gone "$TL_LAST_PID" 5
done
if [ -z "$port" ]; then
	tl_fail "snmptrapd did not start"
	sed 's/^/    | /' "$TL_TMP/trapd.err" "$TL_TMP/traps.log"
	tl_finish
fi
E=.1.3.6.1.4.1.99999.42
# numeric OIDs and no MIB at all on the sending side, as atca-ftd sends them
snmptrap -v 2c -c public -m '' -M '' "127.0.0.1:$port" '' "$E.0.1" \
	"$E.1.1" u 7 "$E.1.2" i 1 "$E.1.3" i 5 "$E.1.5" s ecc-uncorr \
	"$E.1.4" s "blade 2" "$E.1.6" s "uncorrectable ECC error" "$E.1.15" s blade1 \
	>"$TL_TMP/send.out" 2>&1 || tl_fail "snmptrap v2c failed: $(cat "$TL_TMP/send.out")"
snmpinform -v 3 -u atcaft -l authPriv -a SHA-256 -A "auth pass phrase" -x AES \
	-X "priv pass phrase" -t 2 -r 2 -m '' -M '' "127.0.0.1:$port" '' "$E.0.10" \
	"$E.1.12" s fg1 "$E.1.14" C 4242 "$E.1.15" s blade1 \
	>"$TL_TMP/send.out" 2>&1 || tl_fail "snmpinform v3 authPriv was not acknowledged: $(cat "$TL_TMP/send.out")"
if tl_wait_for 5 grep -q 'atcaFtReplicationStalled' "$TL_TMP/traps.log" &&
	grep -q 'ATCA-FT-MIB::atcaFtFaultLayer = INTEGER: hardware(1)' "$TL_TMP/traps.log" &&
	grep -q 'ATCA-FT-MIB::atcaFtFaultSeverity = INTEGER: critical(5)' "$TL_TMP/traps.log" &&
	grep -q 'OID: ATCA-FT-MIB::atcaFtFaultRaised' "$TL_TMP/traps.log"; then
	tl_ok "snmptrapd with the MIB decodes a v2c atcaFtFaultRaised trap into names"
else
	tl_fail "snmptrapd did not decode the v2c trap"
	sed 's/^/    | /' "$TL_TMP/traps.log"
fi
if grep -q 'ATCA-FT-MIB::atcaFtEpoch = Counter64: 4242' "$TL_TMP/traps.log"; then
	tl_ok "snmptrapd decodes an SNMPv3 authPriv (SHA-256, AES) atcaFtReplicationStalled inform"
else
	tl_fail "snmptrapd did not decode the v3 inform"
	sed 's/^/    | /' "$TL_TMP/traps.log"
fi
kill "$TRAPD_PID" 2>/dev/null
tl_wait_gone "$TRAPD_PID" 5
tl_finish
