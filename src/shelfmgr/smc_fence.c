/*
 * Fencing and unfencing one blade, as a table-driven state machine that does
 * no I/O: the caller feeds it replies and timer expiries and carries out the
 * one action it returns (send a request, wait, or finish). That keeps the
 * safety-critical part testable with canned replies.
 *
 * Fence: read the blade's hot-swap state (already M1/M0: fenced, done), set
 * the activation lock so the blade cannot come back by itself, deactivate
 * its payload FRU (PICMG Set FRU Activation) and poll until M1 or M0 is
 * confirmed. If the IPMC does not implement the hot-swap commands, fall
 * back to Chassis Control power down and poll Get Chassis Status. Success
 * means confirmed; anything else is a failure the caller must not treat as
 * fenced. Unfence walks the other way: clear the lock (M1 -> M2), activate,
 * confirm M4 (or chassis power on).
 */
#include "config.h"

#include "smc_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "af_util.h"

static const char *const fstate_names[SMC_F_COUNT] = {
        [SMC_F_IDLE] = "IDLE",
        [SMC_F_CHECK] = "CHECK",
        [SMC_F_LOCK] = "LOCK",
        [SMC_F_DEACTIVATE] = "DEACTIVATE",
        [SMC_F_WAIT_INACTIVE] = "WAIT_INACTIVE",
        [SMC_F_POWER_OFF] = "POWER_OFF",
        [SMC_F_WAIT_OFF] = "WAIT_POWER_OFF",
        [SMC_F_UCHECK] = "UNFENCE_CHECK",
        [SMC_F_UNLOCK] = "UNLOCK",
        [SMC_F_WAIT_M2] = "WAIT_M2",
        [SMC_F_ACTIVATE] = "ACTIVATE",
        [SMC_F_WAIT_ACTIVE] = "WAIT_ACTIVE",
        [SMC_F_POWER_ON] = "POWER_ON",
        [SMC_F_WAIT_ON] = "WAIT_POWER_ON",
        [SMC_F_DONE] = "DONE",
        [SMC_F_FAILED] = "FAILED",
};

static const char *const fevent_names[SMC_FE_COUNT] = {
        [SMC_FE_START_FENCE] = "fence",
        [SMC_FE_START_UNFENCE] = "unfence",
        [SMC_FE_OK] = "ok",
        [SMC_FE_UNSUPPORTED] = "unsupported",
        [SMC_FE_REFUSED] = "refused",
        [SMC_FE_NO_ANSWER] = "no-answer",
        [SMC_FE_INACTIVE] = "inactive",
        [SMC_FE_M2] = "m2",
        [SMC_FE_ACTIVE] = "active",
        [SMC_FE_MOVING] = "moving",
        [SMC_FE_LOST] = "lost",
        [SMC_FE_POWERED_OFF] = "powered-off",
        [SMC_FE_POWERED_ON] = "powered-on",
        [SMC_FE_DEADLINE] = "deadline",
        [SMC_FE_ABSENT] = "absent",
};

/* Events a state has no row for change nothing: e.g. "moving" while waiting
 * for M1 just means "poll again". */
static const struct af_fsm_row frows[] = {
        /* fence */
        {SMC_F_IDLE, SMC_FE_START_FENCE, SMC_F_CHECK},
        {SMC_F_CHECK, SMC_FE_INACTIVE, SMC_F_DONE},
        {SMC_F_CHECK, SMC_FE_POWERED_OFF, SMC_F_DONE},
        {SMC_F_CHECK, SMC_FE_ACTIVE, SMC_F_LOCK},
        {SMC_F_CHECK, SMC_FE_M2, SMC_F_LOCK},
        {SMC_F_CHECK, SMC_FE_MOVING, SMC_F_LOCK},
        {SMC_F_CHECK, SMC_FE_POWERED_ON, SMC_F_POWER_OFF},
        {SMC_F_CHECK, SMC_FE_UNSUPPORTED, SMC_F_POWER_OFF},
        {SMC_F_CHECK, SMC_FE_REFUSED, SMC_F_POWER_OFF},
        {SMC_F_CHECK, SMC_FE_LOST, SMC_F_FAILED},
        {SMC_F_CHECK, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_CHECK, SMC_FE_DEADLINE, SMC_F_FAILED},
        /* pulled out (the shelf manager says M0): nothing left to power */
        {SMC_F_CHECK, SMC_FE_ABSENT, SMC_F_DONE},
        {SMC_F_WAIT_INACTIVE, SMC_FE_ABSENT, SMC_F_DONE},
        {SMC_F_WAIT_OFF, SMC_FE_ABSENT, SMC_F_DONE},
        /* the lock is best effort: many IPMCs do not implement the policy */
        {SMC_F_LOCK, SMC_FE_OK, SMC_F_DEACTIVATE},
        {SMC_F_LOCK, SMC_FE_UNSUPPORTED, SMC_F_DEACTIVATE},
        {SMC_F_LOCK, SMC_FE_REFUSED, SMC_F_DEACTIVATE},
        {SMC_F_LOCK, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_DEACTIVATE, SMC_FE_OK, SMC_F_WAIT_INACTIVE},
        {SMC_F_DEACTIVATE, SMC_FE_UNSUPPORTED, SMC_F_POWER_OFF},
        {SMC_F_DEACTIVATE, SMC_FE_REFUSED, SMC_F_POWER_OFF},
        {SMC_F_DEACTIVATE, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_WAIT_INACTIVE, SMC_FE_INACTIVE, SMC_F_DONE},
        {SMC_F_WAIT_INACTIVE, SMC_FE_DEADLINE, SMC_F_FAILED},
        {SMC_F_POWER_OFF, SMC_FE_OK, SMC_F_WAIT_OFF},
        {SMC_F_POWER_OFF, SMC_FE_UNSUPPORTED, SMC_F_FAILED},
        {SMC_F_POWER_OFF, SMC_FE_REFUSED, SMC_F_FAILED},
        {SMC_F_POWER_OFF, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_WAIT_OFF, SMC_FE_POWERED_OFF, SMC_F_DONE},
        {SMC_F_WAIT_OFF, SMC_FE_DEADLINE, SMC_F_FAILED},
        /* unfence */
        {SMC_F_IDLE, SMC_FE_START_UNFENCE, SMC_F_UCHECK},
        {SMC_F_UCHECK, SMC_FE_ACTIVE, SMC_F_DONE},
        {SMC_F_UCHECK, SMC_FE_POWERED_ON, SMC_F_DONE},
        {SMC_F_UCHECK, SMC_FE_INACTIVE, SMC_F_UNLOCK},
        {SMC_F_UCHECK, SMC_FE_M2, SMC_F_ACTIVATE},
        {SMC_F_UCHECK, SMC_FE_MOVING, SMC_F_WAIT_ACTIVE},
        {SMC_F_UCHECK, SMC_FE_POWERED_OFF, SMC_F_POWER_ON},
        {SMC_F_UCHECK, SMC_FE_UNSUPPORTED, SMC_F_POWER_ON},
        {SMC_F_UCHECK, SMC_FE_REFUSED, SMC_F_POWER_ON},
        {SMC_F_UCHECK, SMC_FE_LOST, SMC_F_FAILED},
        {SMC_F_UCHECK, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_UCHECK, SMC_FE_DEADLINE, SMC_F_FAILED},
        {SMC_F_UNLOCK, SMC_FE_OK, SMC_F_WAIT_M2},
        {SMC_F_UNLOCK, SMC_FE_UNSUPPORTED, SMC_F_ACTIVATE},
        {SMC_F_UNLOCK, SMC_FE_REFUSED, SMC_F_ACTIVATE},
        {SMC_F_UNLOCK, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_WAIT_M2, SMC_FE_M2, SMC_F_ACTIVATE},
        {SMC_F_WAIT_M2, SMC_FE_ACTIVE, SMC_F_DONE},
        {SMC_F_WAIT_M2, SMC_FE_MOVING, SMC_F_WAIT_ACTIVE},
        {SMC_F_WAIT_M2, SMC_FE_DEADLINE, SMC_F_FAILED},
        {SMC_F_ACTIVATE, SMC_FE_OK, SMC_F_WAIT_ACTIVE},
        {SMC_F_ACTIVATE, SMC_FE_UNSUPPORTED, SMC_F_POWER_ON},
        {SMC_F_ACTIVATE, SMC_FE_REFUSED, SMC_F_FAILED},
        {SMC_F_ACTIVATE, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_WAIT_ACTIVE, SMC_FE_ACTIVE, SMC_F_DONE},
        {SMC_F_WAIT_ACTIVE, SMC_FE_DEADLINE, SMC_F_FAILED},
        {SMC_F_POWER_ON, SMC_FE_OK, SMC_F_WAIT_ON},
        {SMC_F_POWER_ON, SMC_FE_UNSUPPORTED, SMC_F_FAILED},
        {SMC_F_POWER_ON, SMC_FE_REFUSED, SMC_F_FAILED},
        {SMC_F_POWER_ON, SMC_FE_NO_ANSWER, SMC_F_FAILED},
        {SMC_F_WAIT_ON, SMC_FE_POWERED_ON, SMC_F_DONE},
        {SMC_F_WAIT_ON, SMC_FE_DEADLINE, SMC_F_FAILED},
};

const struct af_fsm_def smc_fence_fsm = {
        .name = "fence",
        .ss = AF_SS_SHELF,
        .states = fstate_names,
        .n_states = SMC_F_COUNT,
        .events = fevent_names,
        .n_events = SMC_FE_COUNT,
        .rows = frows,
        .n_rows = AF_ARRAY_SIZE(frows),
};

/* ---- what each state sends ----------------------------------------------- */

static void send(struct smc_action *a, uint8_t netfn, uint8_t cmd, const uint8_t *data, size_t len)
{
	memset(a, 0, sizeof(*a));
	a->type = SMC_ACT_SEND;
	a->netfn = netfn;
	a->cmd = cmd;
	if (len > 0)
		memcpy(a->data, data, len);
	a->len = len;
}

static void read_state(struct smc_fop *op, struct smc_action *a)
{
	uint8_t num = (uint8_t)op->hs_sensor;

	if (op->hs_sensor >= 0 && !op->chassis_path)
		send(a, SMC_NETFN_SE, SMC_CMD_GET_SENSOR_READING, &num, 1);
	else
		send(a, SMC_NETFN_CHASSIS, SMC_CMD_CHASSIS_STATUS, NULL, 0);
}

static void finish(struct smc_fop *op, struct smc_action *a)
{
	memset(a, 0, sizeof(*a));
	a->type = SMC_ACT_DONE;
	if (op->fsm.state == SMC_F_DONE)
		op->result = 0;
	else if (op->result == 0)
		op->result = -EIO;
}

/* The action on entering (or staying in) a state. */
static void act(struct smc_fop *op, bool entered, struct smc_action *a)
{
	uint8_t d[4] = {SMC_PICMG_ID, op->fru_id, 0, 0};

	switch (op->fsm.state) {
	case SMC_F_LOCK:
	case SMC_F_UNLOCK:
		d[2] = SMC_POLICY_LOCKED; /* mask: the lock bit only */
		d[3] = op->fsm.state == SMC_F_LOCK ? SMC_POLICY_LOCKED : 0;
		send(a, SMC_NETFN_PICMG, SMC_CMD_SET_ACTIVATION_POLICY, d, 4);
		return;
	case SMC_F_DEACTIVATE:
	case SMC_F_ACTIVATE:
		d[2] = op->fsm.state == SMC_F_ACTIVATE ? 1 : 0;
		af_strlcpy(op->method, "hot-swap", sizeof(op->method));
		send(a, SMC_NETFN_PICMG, SMC_CMD_SET_ACTIVATION, d, 3);
		return;
	case SMC_F_POWER_OFF:
	case SMC_F_POWER_ON:
		op->chassis_path = true;
		af_strlcpy(op->method, "chassis", sizeof(op->method));
		d[0] = op->fsm.state == SMC_F_POWER_ON ? SMC_CHASSIS_POWER_UP
		                                       : SMC_CHASSIS_POWER_DOWN;
		send(a, SMC_NETFN_CHASSIS, SMC_CMD_CHASSIS_CONTROL, d, 1);
		return;
	case SMC_F_CHECK:
	case SMC_F_UCHECK:
	case SMC_F_WAIT_INACTIVE:
	case SMC_F_WAIT_M2:
	case SMC_F_WAIT_ACTIVE:
	case SMC_F_WAIT_OFF:
	case SMC_F_WAIT_ON:
		/* just entered (a command was accepted, or the operation
		 * starts): look at once; then poll at a steady pace, also
		 * after a reading that said nothing usable */
		if (entered) {
			read_state(op, a);
			return;
		}
		memset(a, 0, sizeof(*a));
		a->type = SMC_ACT_WAIT;
		a->wait_ms = SMC_FENCE_POLL_MS;
		return;
	case SMC_F_DONE:
	case SMC_F_FAILED:
	default:
		finish(op, a);
		return;
	}
}

static void fire(struct smc_fop *op, enum smc_fevent e, struct smc_action *a)
{
	int before = op->fsm.state;
	int to = af_fsm_fire(&op->fsm, e);

	act(op, to >= 0 && to != before, a);
}

static void fail(struct smc_fop *op, int err, const char *fmt, ...) AF_PRINTF(3, 4);
static void fail(struct smc_fop *op, int err, const char *fmt, ...)
{
	va_list ap;

	op->result = err;
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
}

/* ---- classification of replies ---------------------------------------------- */

static bool is_poll_state(int s)
{
	return s == SMC_F_CHECK || s == SMC_F_UCHECK || s == SMC_F_WAIT_INACTIVE ||
	       s == SMC_F_WAIT_M2 || s == SMC_F_WAIT_ACTIVE || s == SMC_F_WAIT_OFF ||
	       s == SMC_F_WAIT_ON;
}

static enum smc_fevent cc_event(uint8_t cc)
{
	switch (cc) {
	case 0x00:
		return SMC_FE_OK;
	case 0xC1:
	case 0xC2:
	case 0xCC:
		return SMC_FE_UNSUPPORTED;
	case 0x83:
	case 0xC3:
	case 0xD3:
		return SMC_FE_NO_ANSWER;
	default:
		return SMC_FE_REFUSED;
	}
}

static enum smc_fevent mstate_event(int m)
{
	switch (m) {
	case 0:
	case 1:
		return SMC_FE_INACTIVE;
	case 2:
		return SMC_FE_M2;
	case 4:
		return SMC_FE_ACTIVE;
	case 7:
		return SMC_FE_LOST;
	default:
		return SMC_FE_MOVING;
	}
}

/* A reply to a state read. Returns the event, or -1 for "nothing learnt"
 * (a bad or unavailable reading while polling: poll again). */
static int classify_read(struct smc_fop *op, const uint8_t *rsp, size_t len)
{
	int m, rc;
	bool on;

	if (op->hs_sensor >= 0 && !op->chassis_path) {
		rc = smc_parse_hotswap(rsp, len, &m);
		if (rc == 0) {
			if (op->mstate_first < 0)
				op->mstate_first = m;
			op->mstate_last = m;
			return mstate_event(m);
		}
	} else {
		rc = smc_parse_chassis_power(rsp, len, &on);
		if (rc == 0) {
			op->power_known = true;
			op->power_on = on;
			return on ? SMC_FE_POWERED_ON : SMC_FE_POWERED_OFF;
		}
	}
	if (rc > 0) {
		op->last_cc = (uint8_t)rc;
		return cc_event((uint8_t)rc);
	}
	return -1;
}

/* ---- the interface ------------------------------------------------------------ */

void smc_fop_start(struct smc_fop *op, enum smc_fop_kind kind, const char *instance, uint8_t fru_id,
                   int hs_sensor, uint64_t now_ns, uint64_t timeout_ms, struct smc_action *act_out)
{
	memset(op, 0, sizeof(*op));
	af_fsm_init(&op->fsm, &smc_fence_fsm, SMC_F_IDLE, instance);
	op->kind = kind;
	op->fru_id = fru_id;
	op->hs_sensor = hs_sensor;
	op->start_ns = now_ns;
	op->deadline_ns = now_ns + timeout_ms * AF_NS_PER_MS;
	op->mstate_first = op->mstate_last = -1;
	op->shelf_mstate = -1;
	af_strlcpy(op->method, "none", sizeof(op->method));
	fire(op, kind == SMC_FENCE ? SMC_FE_START_FENCE : SMC_FE_START_UNFENCE, act_out);
}

bool smc_fop_finished(const struct smc_fop *op)
{
	return op->fsm.state == SMC_F_DONE || op->fsm.state == SMC_F_FAILED;
}

void smc_fop_shelf_state(struct smc_fop *op, int mstate)
{
	op->shelf_mstate = mstate;
}

/* A fence in a state that polls, of a board the shelf manager reports not
 * installed: done. Returns whether it was. */
static bool absent(struct smc_fop *op, struct smc_action *a)
{
	if (op->kind != SMC_FENCE || op->shelf_mstate != 0 || !af_fsm_has(&op->fsm, SMC_FE_ABSENT))
		return false;
	op->result = 0;
	op->mstate_last = 0;
	snprintf(op->message, sizeof(op->message), "%s",
	         "already fenced (M0: the shelf manager reports the board not installed)");
	fire(op, SMC_FE_ABSENT, a);
	return true;
}

static void deadline(struct smc_fop *op, struct smc_action *a)
{
	const char *want = op->fsm.state == SMC_F_CHECK || op->fsm.state == SMC_F_UCHECK
	                           ? "the blade's state"
	                   : op->fsm.state == SMC_F_WAIT_INACTIVE ? "M1"
	                   : op->fsm.state == SMC_F_WAIT_M2       ? "M2"
	                   : op->fsm.state == SMC_F_WAIT_ACTIVE   ? "M4"
	                   : op->fsm.state == SMC_F_WAIT_OFF      ? "power off"
	                                                          : "power on";
	char detail[64];

	snprintf(detail, sizeof(detail), "%s not confirmed (last seen %s)", want,
	         op->chassis_path
	                 ? (op->power_known ? (op->power_on ? "power on" : "power off") : "nothing")
	                 : smc_mstate_name(op->mstate_last));
	fail(op, -ETIMEDOUT, "timed out: %s", detail);
	fire(op, SMC_FE_DEADLINE, a);
}

void smc_fop_reply(struct smc_fop *op, int err, const uint8_t *rsp, size_t len, uint64_t now_ns,
                   struct smc_action *a)
{
	int s = op->fsm.state, ev;
	char detail[96];

	if (smc_fop_finished(op)) {
		finish(op, a);
		return;
	}
	op->commands++;
	if (absent(op, a))
		return;
	if (is_poll_state(s)) {
		op->polls++;
		ev = err < 0 ? SMC_FE_NO_ANSWER : classify_read(op, rsp, len);
		/* the shelf manager lost the IPMC (M7): a board being pulled
		 * out goes on to M0, so ask again for a while before failing */
		if (s == SMC_F_CHECK && op->kind == SMC_FENCE && op->shelf_mstate == 7 &&
		    ev == SMC_FE_NO_ANSWER &&
		    now_ns < op->start_ns + SMC_FENCE_ABSENT_GRACE_MS * AF_NS_PER_MS &&
		    now_ns < op->deadline_ns)
			ev = -1;
		/* while waiting, a missed poll is not a verdict: the deadline is */
		if (s != SMC_F_CHECK && s != SMC_F_UCHECK &&
		    (ev < 0 || ev == SMC_FE_NO_ANSWER || ev == SMC_FE_UNSUPPORTED ||
		     ev == SMC_FE_REFUSED))
			ev = -1;
	} else if (err < 0) {
		ev = SMC_FE_NO_ANSWER;
	} else if (len < 1) {
		ev = SMC_FE_REFUSED;
	} else {
		op->last_cc = rsp[0];
		ev = cc_event(rsp[0]);
	}
	if (ev == SMC_FE_NO_ANSWER) {
		if (err < 0)
			snprintf(detail, sizeof(detail), "no answer (%s)", strerror(-err));
		else
			snprintf(detail, sizeof(detail), "no answer (CC 0x%02x: %s)", op->last_cc,
			         smc_cc_text(op->last_cc));
		fail(op, -EHOSTUNREACH, "the IPMC is unreachable: %s", detail);
	} else if (ev == SMC_FE_LOST) {
		fail(op, -EHOSTUNREACH, "%s",
		     "the shelf manager reports M7 (communication lost): the blade's state cannot "
		     "be confirmed");
	} else if (ev == SMC_FE_UNSUPPORTED || ev == SMC_FE_REFUSED) {
		snprintf(detail, sizeof(detail), "%s: CC 0x%02x (%s)", fstate_names[s], op->last_cc,
		         smc_cc_text(op->last_cc));
		/* remembered in case the fallback fails too */
		fail(op, ev == SMC_FE_UNSUPPORTED ? -EOPNOTSUPP : -EPERM, "%s", detail);
	}
	if (ev < 0 || !af_fsm_has(&op->fsm, ev) || af_fsm_fire(&op->fsm, ev) < 0) {
		/* nothing changes: keep polling, unless time is up */
		if (is_poll_state(op->fsm.state) && now_ns >= op->deadline_ns) {
			deadline(op, a);
			return;
		}
		act(op, false, a);
		return;
	}
	if (op->fsm.state == SMC_F_DONE) {
		op->result = 0;
		if (s == SMC_F_CHECK || s == SMC_F_UCHECK)
			snprintf(op->message, sizeof(op->message), "already %s (%s)",
			         op->kind == SMC_FENCE ? "fenced" : "active",
			         op->chassis_path || op->hs_sensor < 0
			                 ? (op->power_on ? "power on" : "power off")
			                 : smc_mstate_name(op->mstate_last));
		else
			snprintf(op->message, sizeof(op->message), "%s confirmed by %s",
			         op->chassis_path
			                 ? (op->kind == SMC_FENCE ? "power off" : "power on")
			                 : smc_mstate_name(op->mstate_last),
			         op->chassis_path ? "Get Chassis Status" : "the hot-swap sensor");
	}
	act(op, op->fsm.state != s, a);
}

void smc_fop_timer(struct smc_fop *op, uint64_t now_ns, struct smc_action *a)
{
	if (smc_fop_finished(op)) {
		finish(op, a);
		return;
	}
	if (absent(op, a))
		return;
	if (now_ns >= op->deadline_ns) {
		deadline(op, a);
		return;
	}
	read_state(op, a);
}
