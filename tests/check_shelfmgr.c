/*
 * src/shelfmgr: PICMG reply parsers (bad replies first), the fence/unfence
 * state machine against scripted blades (every path: already off, hot-swap,
 * chassis fallback, unreachable, M7, stuck, refused), the OpenIPMI seam on a
 * real qb_loop, and the module's refusals. Fencing against a real shelf
 * manager is tested on the lab (tests/integration/hardware.sh).
 */
#include "config.h"

#include <errno.h>
#include <qb/qbloop.h>

#include "smc.h"
#include "smc_int.h"
#include "smc_state.h"

#define MODULE_PREFIX smc
#define MODULE_NAME "shelfmgr"
#include "check_module_contract.h"

/* ---- parsers ------------------------------------------------------------------ */

START_TEST(test_parse_bad_replies)
{
	struct smc_picmg_props p;
	struct smc_addr_info a;
	int m;
	bool on;
	const uint8_t cc_only[] = {0xC1};
	const uint8_t short_props[] = {0x00, 0x00, 0x22};
	const uint8_t wrong_id[] = {0x00, 0x05, 0x22, 0x00, 0x00};
	const uint8_t odd_ipmb[] = {0x00, 0x00, 0x41, 0x83, 0xFF, 0x00, 0x01, 0x00};
	const uint8_t two_states[] = {0x00, 0x00, 0x00, 0x12};
	const uint8_t no_state[] = {0x00, 0x00, 0x00, 0x00};
	const uint8_t unavailable[] = {0x00, 0x00, 0x20, 0x10};
	const uint8_t short_hs[] = {0x00, 0x00, 0x00};

	ck_assert_int_eq(smc_parse_properties(NULL, 0, &p), -EPROTO);
	ck_assert_int_eq(smc_parse_properties(cc_only, 1, &p), 0xC1);
	ck_assert_int_eq(smc_parse_properties(short_props, sizeof(short_props), &p), -EPROTO);
	ck_assert_int_eq(smc_parse_properties(wrong_id, sizeof(wrong_id), &p), -EPROTO);
	ck_assert_int_eq(smc_parse_address_info(odd_ipmb, sizeof(odd_ipmb), &a), -EPROTO);
	ck_assert_int_eq(smc_parse_address_info(odd_ipmb, 5, &a), -EPROTO);
	ck_assert_int_eq(smc_parse_hotswap(two_states, sizeof(two_states), &m), -EPROTO);
	ck_assert_int_eq(smc_parse_hotswap(no_state, sizeof(no_state), &m), -EPROTO);
	ck_assert_int_eq(smc_parse_hotswap(unavailable, sizeof(unavailable), &m), -EAGAIN);
	ck_assert_int_eq(smc_parse_hotswap(short_hs, sizeof(short_hs), &m), -EPROTO);
	ck_assert_int_eq(smc_parse_hotswap(cc_only, 1, &m), 0xC1);
	ck_assert_int_eq(smc_parse_chassis_power(short_hs, 1, &on), -EPROTO);
	ck_assert_int_eq(smc_parse_chassis_power(cc_only, 1, &on), 0xC1);
}
END_TEST

START_TEST(test_parse_good_replies)
{
	const uint8_t props[] = {0x00, 0x00, 0x22, 0x03, 0x00};
	const uint8_t addr[] = {0x00, 0x00, 0x42, 0x84, 0xFF, 0x00, 0x02, 0x00};
	const uint8_t m6[] = {0x00, 0x00, 0x00, 0x40, 0x80};
	const uint8_t off[] = {0x00, 0x60, 0x00, 0x00};
	struct smc_picmg_props p;
	struct smc_addr_info a;
	int m = -1;
	bool on = true;

	ck_assert_int_eq(smc_parse_properties(props, sizeof(props), &p), 0);
	ck_assert_uint_eq(p.ext_major, 2);
	ck_assert_uint_eq(p.ext_minor, 2);
	ck_assert_uint_eq(p.max_fru_id, 3);
	ck_assert_int_eq(smc_parse_address_info(addr, sizeof(addr), &a), 0);
	ck_assert_uint_eq(a.ipmb_addr, 0x84);
	ck_assert_uint_eq(a.hw_addr, 0x42);
	ck_assert_uint_eq(a.site_number, 2);
	ck_assert_int_eq(smc_parse_hotswap(m6, sizeof(m6), &m), 0);
	ck_assert_int_eq(m, 6);
	ck_assert_int_eq(smc_parse_chassis_power(off, sizeof(off), &on), 0);
	ck_assert(!on);
	ck_assert_str_eq(smc_mstate_name(7), "M7");
	ck_assert_str_eq(smc_mstate_name(9), "M?");
	ck_assert_str_eq(smc_mstate_text(1), "inactive");
	ck_assert_str_eq(smc_cc_text(0x83), "IPMB NAK (the IPMC does not answer)");
}
END_TEST

START_TEST(test_fence_fsm_table)
{
	/* every state that waits for a reading ends at the deadline: a fence
	 * never hangs on a blade whose answers say nothing usable */
	static const int polling[] = {SMC_F_CHECK,   SMC_F_UCHECK,      SMC_F_WAIT_INACTIVE,
	                              SMC_F_WAIT_M2, SMC_F_WAIT_ACTIVE, SMC_F_WAIT_OFF,
	                              SMC_F_WAIT_ON};

	ck_assert_int_eq(af_fsm_check(&smc_fence_fsm), 0);
	for (unsigned i = 0; i < sizeof(polling) / sizeof(polling[0]); i++) {
		struct af_fsm f;

		af_fsm_init(&f, &smc_fence_fsm, polling[i], "test");
		ck_assert_msg(af_fsm_has(&f, SMC_FE_DEADLINE), "state %d has no deadline",
		              polling[i]);
	}
}
END_TEST

/* ---- a scripted blade ------------------------------------------------------------ */

enum blade_kind {
	B_NORMAL,        /* PICMG hot-swap works, M4 -> M6 -> M1 over a few polls */
	B_NO_PICMG,      /* PICMG commands answer CC 0xC1: chassis control works */
	B_NOTHING,       /* neither PICMG nor chassis control */
	B_SILENT,        /* nothing answers (timeouts) */
	B_NAK,           /* the shelf manager NAKs the bridged request (CC 0x83) */
	B_STUCK,         /* accepts deactivation, stays in M6 */
	B_NO_POLICY,     /* FRU activation policy unsupported, the rest works */
	B_LOCKED,        /* refuses activation (CC 0xD5) */
	B_GARBAGE_POLLS, /* answers some polls with nonsense */
	B_UNAVAILABLE,   /* the hot-swap reading is always "unavailable" */
};

struct blade {
	enum blade_kind kind;
	int m;       /* M-state */
	bool locked; /* activation policy */
	bool power;  /* chassis power */
	int settle;  /* polls until a transition completes */
	unsigned sent, polls;
};

static size_t answer(struct blade *b, const struct smc_action *a, uint8_t *rsp)
{
	b->sent++;
	if (b->kind == B_NAK) {
		rsp[0] = 0x83;
		return 1;
	}
	if (a->netfn == SMC_NETFN_SE && a->cmd == SMC_CMD_GET_SENSOR_READING) {
		b->polls++;
		if (b->kind == B_NO_PICMG || b->kind == B_NOTHING) {
			rsp[0] = 0xCB; /* no hot-swap sensor reading */
			return 1;
		}
		if (b->kind == B_GARBAGE_POLLS && b->polls % 2 == 0) {
			rsp[0] = 0x00;
			return 2; /* too short */
		}
		if (b->kind == B_UNAVAILABLE) {
			rsp[0] = 0;
			rsp[1] = 0;
			rsp[2] = 0x20; /* reading unavailable */
			rsp[3] = 0;
			return 4;
		}
		if (b->settle > 0 && --b->settle == 0)
			b->m = b->m == 6 ? 1 : b->m == 3 ? 4 : b->m;
		rsp[0] = 0;
		rsp[1] = 0;
		rsp[2] = 0;
		rsp[3] = (uint8_t)(1u << b->m);
		rsp[4] = 0x80;
		return 5;
	}
	if (a->netfn == SMC_NETFN_PICMG) {
		if (b->kind == B_NO_PICMG || b->kind == B_NOTHING) {
			rsp[0] = 0xC1;
			return 1;
		}
		rsp[1] = SMC_PICMG_ID;
		if (a->cmd == SMC_CMD_SET_ACTIVATION_POLICY) {
			if (b->kind == B_NO_POLICY) {
				rsp[0] = 0xC1;
				return 1;
			}
			b->locked = a->data[3] & SMC_POLICY_LOCKED;
			if (!b->locked && b->m == 1)
				b->m = 2;
			rsp[0] = 0;
			return 2;
		}
		if (a->cmd == SMC_CMD_SET_ACTIVATION) {
			if (a->data[2] == 0) { /* deactivate */
				if (b->m == 4) {
					b->m = 6;
					b->settle = b->kind == B_STUCK ? 1000000 : 3;
				}
			} else {
				if (b->kind == B_LOCKED) {
					rsp[0] = 0xD5;
					return 1;
				}
				if (b->m == 2 || (b->m == 1 && b->kind == B_NO_POLICY)) {
					b->m = 3;
					b->settle = 3;
				}
			}
			rsp[0] = 0;
			return 2;
		}
		rsp[0] = 0xC1;
		return 1;
	}
	if (a->netfn == SMC_NETFN_CHASSIS && a->cmd == SMC_CMD_CHASSIS_CONTROL) {
		if (b->kind == B_NOTHING) {
			rsp[0] = 0xC1;
			return 1;
		}
		b->power = a->data[0] == SMC_CHASSIS_POWER_UP;
		rsp[0] = 0;
		return 1;
	}
	if (a->netfn == SMC_NETFN_CHASSIS && a->cmd == SMC_CMD_CHASSIS_STATUS) {
		b->polls++;
		if (b->kind == B_NOTHING) {
			rsp[0] = 0xC1;
			return 1;
		}
		rsp[0] = 0;
		rsp[1] = b->power ? 1 : 0;
		rsp[2] = 0;
		rsp[3] = 0;
		return 4;
	}
	rsp[0] = 0xC1;
	return 1;
}

struct outcome {
	int result;
	char method[16];
	char message[160];
	int before, after;
	unsigned commands;
	uint64_t elapsed_ms;
};

/* Runs one operation to its end on fake time: every request takes 1 ms. */
static struct outcome run_op(struct blade *b, enum smc_fop_kind kind, int hs_sensor,
                             uint64_t timeout_ms)
{
	struct smc_fop op;
	struct smc_action act;
	struct outcome o;
	uint64_t now = 1000 * AF_NS_PER_MS, start = now;
	unsigned guard = 0;

	smc_fop_start(&op, kind, "test", 0, hs_sensor, now, timeout_ms, &act);
	while (act.type != SMC_ACT_DONE) {
		ck_assert_uint_lt(++guard, 100000);
		if (act.type == SMC_ACT_SEND) {
			uint8_t rsp[32] = {0};
			size_t len;

			now += AF_NS_PER_MS;
			if (b->kind == B_SILENT) {
				smc_fop_reply(&op, -ETIMEDOUT, NULL, 0, now, &act);
				continue;
			}
			len = answer(b, &act, rsp);
			smc_fop_reply(&op, 0, rsp, len, now, &act);
		} else {
			now += act.wait_ms * AF_NS_PER_MS;
			smc_fop_timer(&op, now, &act);
		}
	}
	ck_assert(smc_fop_finished(&op));
	o.result = op.result;
	af_strlcpy(o.method, op.method, sizeof(o.method));
	af_strlcpy(o.message, op.message, sizeof(o.message));
	o.before = op.mstate_first;
	o.after = op.mstate_last;
	o.commands = op.commands;
	o.elapsed_ms = (now - start) / AF_NS_PER_MS;
	return o;
}

START_TEST(test_fence_unreachable)
{
	struct blade b = {.kind = B_SILENT, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	/* a blade we cannot reach is never "fenced" */
	ck_assert_int_eq(o.result, -EHOSTUNREACH);
	ck_assert_ptr_nonnull(strstr(o.message, "unreachable"));

	b = (struct blade){.kind = B_NAK, .m = 4, .power = true};
	o = run_op(&b, SMC_FENCE, 0, 5000);
	ck_assert_int_eq(o.result, -EHOSTUNREACH);
	ck_assert_ptr_nonnull(strstr(o.message, "CC 0x83"));
}
END_TEST

START_TEST(test_fence_m7_cannot_confirm)
{
	struct blade b = {.kind = B_NORMAL, .m = 7, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	ck_assert_int_eq(o.result, -EHOSTUNREACH);
	ck_assert_ptr_nonnull(strstr(o.message, "M7"));
	ck_assert_uint_eq(b.sent, 1); /* nothing but the state read */
}
END_TEST

/* run_op with the shelf manager's own view of the payload: shelf0 at the
 * start, shelf1 from at_ms on (-1: never). */
static struct outcome run_op_shelf(struct blade *b, enum smc_fop_kind kind, int shelf0,
                                   uint64_t at_ms, int shelf1, uint64_t timeout_ms)
{
	struct smc_fop op;
	struct smc_action act;
	struct outcome o;
	uint64_t now = 1000 * AF_NS_PER_MS, start = now;
	unsigned guard = 0;

	smc_fop_start(&op, kind, "test", 0, 0, now, timeout_ms, &act);
	smc_fop_shelf_state(&op, shelf0);
	while (act.type != SMC_ACT_DONE) {
		ck_assert_uint_lt(++guard, 100000);
		if (shelf1 >= 0 && now - start >= at_ms * AF_NS_PER_MS)
			smc_fop_shelf_state(&op, shelf1);
		if (act.type == SMC_ACT_SEND) {
			uint8_t rsp[32] = {0};
			size_t len;

			now += AF_NS_PER_MS;
			len = answer(b, &act, rsp);
			smc_fop_reply(&op, 0, rsp, len, now, &act);
		} else {
			now += act.wait_ms * AF_NS_PER_MS;
			smc_fop_timer(&op, now, &act);
		}
	}
	o.result = op.result;
	af_strlcpy(o.method, op.method, sizeof(o.method));
	af_strlcpy(o.message, op.message, sizeof(o.message));
	o.commands = op.commands;
	o.elapsed_ms = (now - start) / AF_NS_PER_MS;
	return o;
}

/* A board pulled out: its IPMC is gone with it, and the shelf manager
 * reports M7, then M0 (not installed). M0 is fenced; M7 alone never is
 * (the soak found a primary's blade pulled out left its VM down: the fence
 * failed at the IPMC's first NAK). */
START_TEST(test_fence_pulled_out)
{
	struct blade b = {.kind = B_NAK, .m = 4, .power = true};
	struct outcome o;

	/* present (M4) by the shelf manager's account: unreachable, at once */
	o = run_op_shelf(&b, SMC_FENCE, 4, 0, -1, 5000);
	ck_assert_int_eq(o.result, -EHOSTUNREACH);
	ck_assert_uint_eq(o.commands, 1);
	/* M7 and it stays so: asked again for the grace time, then failed */
	b = (struct blade){.kind = B_NAK, .m = 4, .power = true};
	o = run_op_shelf(&b, SMC_FENCE, 7, 0, -1, 5000);
	ck_assert_int_eq(o.result, -EHOSTUNREACH);
	ck_assert_uint_ge(o.elapsed_ms, SMC_FENCE_ABSENT_GRACE_MS);
	ck_assert_uint_lt(o.elapsed_ms, SMC_FENCE_ABSENT_GRACE_MS + 2 * SMC_FENCE_POLL_MS + 2);
	/* ... unless the fence's own deadline comes first */
	b = (struct blade){.kind = B_NAK, .m = 4, .power = true};
	o = run_op_shelf(&b, SMC_FENCE, 7, 0, -1, 500);
	ck_assert_int_lt(o.result, 0);
	ck_assert_uint_lt(o.elapsed_ms, 500 + 2 * SMC_FENCE_POLL_MS + 2);
	/* M7, then M0 300 ms later: fenced */
	b = (struct blade){.kind = B_NAK, .m = 4, .power = true};
	o = run_op_shelf(&b, SMC_FENCE, 7, 300, 0, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert_str_eq(o.method, "none");
	ck_assert_ptr_nonnull(strstr(o.message, "not installed"));
	ck_assert_uint_ge(o.elapsed_ms, 300);
	ck_assert_uint_lt(o.elapsed_ms, 300 + 2 * SMC_FENCE_POLL_MS + 2);
	/* M0 from the start */
	b = (struct blade){.kind = B_NAK, .m = 4, .power = true};
	o = run_op_shelf(&b, SMC_FENCE, 0, 0, -1, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert_uint_le(o.elapsed_ms, 1);
	/* pulled out while the fence waits for M1 */
	b = (struct blade){.kind = B_STUCK, .m = 4, .power = true};
	o = run_op_shelf(&b, SMC_FENCE, 4, 400, 0, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert_ptr_nonnull(strstr(o.message, "not installed"));
	/* an unfence is not helped by a board that is not there */
	b = (struct blade){.kind = B_NAK, .m = 4, .power = true};
	o = run_op_shelf(&b, SMC_UNFENCE, 0, 0, -1, 5000);
	ck_assert_int_eq(o.result, -EHOSTUNREACH);
}
END_TEST

START_TEST(test_fence_stuck_times_out)
{
	struct blade b = {.kind = B_STUCK, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 2000);

	ck_assert_int_eq(o.result, -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(o.message, "M1 not confirmed (last seen M6)"));
	ck_assert_uint_ge(o.elapsed_ms, 2000);
	ck_assert_uint_lt(o.elapsed_ms, 2000 + 2 * SMC_FENCE_POLL_MS);
}
END_TEST

START_TEST(test_fence_nothing_supported)
{
	struct blade b = {.kind = B_NOTHING, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	ck_assert_int_eq(o.result, -EOPNOTSUPP);
	ck_assert_str_eq(o.method, "chassis");
}
END_TEST

START_TEST(test_fence_hotswap)
{
	struct blade b = {.kind = B_NORMAL, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	ck_assert_int_eq(o.result, 0);
	ck_assert_str_eq(o.method, "hot-swap");
	ck_assert_int_eq(o.before, 4);
	ck_assert_int_eq(o.after, 1);
	ck_assert_int_eq(b.m, 1);
	ck_assert(b.locked); /* it cannot come back by itself */
	ck_assert_ptr_nonnull(strstr(o.message, "M1 confirmed"));
}
END_TEST

START_TEST(test_fence_already_off)
{
	struct blade b = {.kind = B_NORMAL, .m = 1, .power = false};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	ck_assert_int_eq(o.result, 0);
	ck_assert_str_eq(o.method, "none");
	ck_assert_uint_eq(b.sent, 1);
	ck_assert_ptr_nonnull(strstr(o.message, "already fenced"));

	b = (struct blade){.kind = B_NORMAL, .m = 0};
	o = run_op(&b, SMC_FENCE, 0, 5000);
	ck_assert_int_eq(o.result, 0);

	/* no hot-swap sensor known: chassis status says off */
	b = (struct blade){.kind = B_NO_PICMG, .m = 1, .power = false};
	o = run_op(&b, SMC_FENCE, -1, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert_ptr_nonnull(strstr(o.message, "power off"));
}
END_TEST

START_TEST(test_fence_chassis_fallback)
{
	struct blade b = {.kind = B_NO_PICMG, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	ck_assert_int_eq(o.result, 0);
	ck_assert_str_eq(o.method, "chassis");
	ck_assert(!b.power);
	ck_assert_ptr_nonnull(strstr(o.message, "Get Chassis Status"));
	/* and back */
	o = run_op(&b, SMC_UNFENCE, 0, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert(b.power);
}
END_TEST

START_TEST(test_fence_policy_unsupported)
{
	struct blade b = {.kind = B_NO_POLICY, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(b.m, 1);
	o = run_op(&b, SMC_UNFENCE, 0, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(b.m, 4);
}
END_TEST

START_TEST(test_fence_garbage_polls)
{
	struct blade b = {.kind = B_GARBAGE_POLLS, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 5000);

	/* bad readings while waiting are skipped, not fatal */
	ck_assert_int_eq(o.result, 0);
	ck_assert_int_eq(b.m, 1);
}
END_TEST

/* A reading that never says anything usable: the first check polls at the
 * poll pace, not back to back, and the operation ends at its deadline
 * without touching the blade. */
START_TEST(test_fence_unusable_readings)
{
	struct blade b = {.kind = B_UNAVAILABLE, .m = 4, .power = true};
	struct outcome o = run_op(&b, SMC_FENCE, 0, 2000);

	ck_assert_int_lt(o.result, 0);
	ck_assert_uint_le(b.polls, 2000 / SMC_FENCE_POLL_MS + 2);
	ck_assert_uint_ge(o.elapsed_ms, 2000);
	ck_assert_int_eq(b.m, 4);
	b = (struct blade){.kind = B_UNAVAILABLE, .m = 1, .power = false};
	o = run_op(&b, SMC_UNFENCE, 0, 2000);
	ck_assert_int_lt(o.result, 0);
	ck_assert_uint_le(b.polls, 2000 / SMC_FENCE_POLL_MS + 2);
}
END_TEST

START_TEST(test_unfence_paths)
{
	struct blade b = {.kind = B_NORMAL, .m = 1, .locked = true};
	struct outcome o = run_op(&b, SMC_UNFENCE, 0, 5000);

	ck_assert_int_eq(o.result, 0);
	ck_assert_str_eq(o.method, "hot-swap");
	ck_assert_int_eq(b.m, 4);
	ck_assert(!b.locked);
	ck_assert_ptr_nonnull(strstr(o.message, "M4 confirmed"));

	/* already active */
	o = run_op(&b, SMC_UNFENCE, 0, 5000);
	ck_assert_int_eq(o.result, 0);
	ck_assert_ptr_nonnull(strstr(o.message, "already active"));

	/* refused activation is a failure, never a chassis power-on behind the
	 * shelf manager's back */
	b = (struct blade){.kind = B_LOCKED, .m = 2};
	o = run_op(&b, SMC_UNFENCE, 0, 5000);
	ck_assert_int_eq(o.result, -EPERM);
	ck_assert_ptr_nonnull(strstr(o.message, "0xd5"));
}
END_TEST

/* ---- the OpenIPMI seam and the module ------------------------------------------ */

static void stop_loop(void *data)
{
	qb_loop_stop(data);
}

static void run_loop(qb_loop_t *loop, uint64_t ms)
{
	qb_loop_timer_handle h;

	ck_assert_int_eq(
	        qb_loop_timer_add(loop, QB_LOOP_LOW, ms * AF_NS_PER_MS, loop, stop_loop, &h), 0);
	qb_loop_run(loop);
}

static int fired;
static void on_timer(void *cb_data, os_hnd_timer_id_t *id)
{
	(void)id;
	(*(int *)cb_data)++;
}

START_TEST(test_os_handler_timers)
{
	qb_loop_t *loop = qb_loop_create();
	struct smc_os *os = NULL;
	os_hnd_timer_id_t *t1, *t2;
	struct timeval tv = {0, 20000};
	int count = 0;

	ck_assert_int_eq(smc_os_new(&os, loop), 0);
	ck_assert_int_eq(os->h.alloc_timer(&os->h, &t1), 0);
	ck_assert_int_eq(os->h.alloc_timer(&os->h, &t2), 0);
	/* stopping a timer that is not running: ESRCH */
	ck_assert_int_eq(os->h.stop_timer(&os->h, t1), ESRCH);
	ck_assert_int_eq(os->h.start_timer(&os->h, t1, &tv, on_timer, &count), 0);
	ck_assert_int_eq(os->h.start_timer(&os->h, t1, &tv, on_timer, &count), EBUSY);
	ck_assert_int_eq(os->h.start_timer(&os->h, t2, &tv, on_timer, &fired), 0);
	ck_assert_int_eq(os->h.stop_timer(&os->h, t2), 0);
	run_loop(loop, 100);
	ck_assert_int_eq(count, 1);
	ck_assert_int_eq(fired, 0);
	ck_assert_int_eq(os->h.stop_timer(&os->h, t1), ESRCH);
	ck_assert_int_eq(os->h.free_timer(&os->h, t1), 0);
	ck_assert_int_eq(os->h.free_timer(&os->h, t2), 0);
	ck_assert_int_eq(os->n_timers, 0);
	smc_os_put(os);
	qb_loop_destroy(loop);
}
END_TEST

static struct af_config *shelf_config(unsigned port)
{
	struct af_config *cfg = tiny_config();

	snprintf(cfg->shelf.managers[0].address, sizeof(cfg->shelf.managers[0].address),
	         "127.0.0.1");
	cfg->shelf.managers[0].port = port;
	cfg->shelf.cred_loaded = true;
	snprintf(cfg->shelf.cred.username, sizeof(cfg->shelf.cred.username), "admin");
	snprintf(cfg->shelf.cred.password, sizeof(cfg->shelf.cred.password), "secret");
	cfg->detection.ipmc_timeout_ms = 100;
	return cfg;
}

static int done_calls;
static void fence_done(void *opaque, const struct smc_fence_result *r)
{
	(void)opaque;
	(void)r;
	done_calls++;
}

START_TEST(test_module_refusals)
{
	struct af_config *cfg = tiny_config();
	struct af_module_env env = {.cfg = cfg};
	struct af_module_status st;
	struct smc_shelf_view sv;
	struct smc_blade_view bv;
	struct smc *m = NULL;

	ck_assert_int_eq(af_init("check_shelfmgr"), 0);
	/* no loop: idle, and says why */
	ck_assert_int_eq(smc_init(&m, &env), 0);
	smc_describe(m, &st);
	ck_assert_str_eq(st.state, "idle");
	ck_assert_int_eq(smc_fence(m, 1, false, NULL, NULL), -EINVAL);
	ck_assert_int_eq(smc_fence(m, 9, false, fence_done, NULL), -ENOENT);
	ck_assert_int_eq(smc_fence(m, 1, false, fence_done, NULL), -ENOTCONN);
	smc_shelf(m, &sv);
	ck_assert(!sv.enabled);
	ck_assert(smc_blade(m, 1, &bv));
	ck_assert_int_eq(bv.mstate, -1);
	ck_assert(!smc_blade(m, 2, &bv));
	smc_fini(m);
	af_cfg_free(cfg);
	ck_assert_int_eq(done_calls, 0);
	af_fini();
}
END_TEST

/* Hot-swap records ipmi-detect delivered first: OpenIPMI's late copy of the
 * same record (same id, FRU and state) is recognised for a minute; a
 * different state, FRU or id is not; the memory is a ring. */
START_TEST(test_sel_seen)
{
	struct smc_blade b;
	const uint64_t t0 = 5 * AF_NS_PER_S;

	memset(&b, 0, sizeof(b));
	ck_assert(!smc_sel_seen_has(&b, 0, 0, 0, t0));
	smc_sel_seen_add(&b, 0x14, 0, 5, t0);
	ck_assert(smc_sel_seen_has(&b, 0x14, 0, 5, t0 + AF_NS_PER_S));
	ck_assert(!smc_sel_seen_has(&b, 0x14, 0, 6, t0));
	ck_assert(!smc_sel_seen_has(&b, 0x14, 1, 5, t0));
	ck_assert(!smc_sel_seen_has(&b, 0x15, 0, 5, t0));
	/* ids come round after a SEL clear: old memories expire */
	ck_assert(!smc_sel_seen_has(&b, 0x14, 0, 5, t0 + 61 * AF_NS_PER_S));
	for (unsigned i = 0; i < SMC_SEL_SEEN; i++)
		smc_sel_seen_add(&b, 0x100 + i, 0, 4, t0);
	ck_assert(!smc_sel_seen_has(&b, 0x14, 0, 5, t0));
	ck_assert(smc_sel_seen_has(&b, 0x100, 0, 4, t0));
	smc_sel_seen_add(&b, 0x200, 0, 4, t0);
	ck_assert(!smc_sel_seen_has(&b, 0x100, 0, 4, t0));
	ck_assert(smc_sel_seen_has(&b, 0x200, 0, 4, t0));
	/* a FRU id above 127 is kept whole */
	smc_sel_seen_add(&b, 0x300, 200, 1, t0);
	ck_assert(smc_sel_seen_has(&b, 0x300, 200, 1, t0));
}
END_TEST

/* Records handed over before the shelf is known, or out of range, change
 * nothing. */
START_TEST(test_hotswap_sel_refused)
{
	struct af_config *cfg = tiny_config();
	struct af_module_env env = {.cfg = cfg};
	struct smc_blade_view bv;
	struct smc *m = NULL;

	ck_assert_int_eq(af_init("check_shelfmgr"), 0);
	smc_hotswap_sel(NULL, 1, 0, 4, 7, 1, -1);
	ck_assert_int_eq(smc_init(&m, &env), 0);
	smc_hotswap_sel(m, 1, 0, 4, 7, 1, 2);
	smc_hotswap_sel(m, 1, 0, 4, 9, 1, -1);
	smc_hotswap_sel(m, 1, -1, 4, 7, 1, -1);
	smc_hotswap_sel(m, 1, 0, 4, 7, 0x10000, -1);
	smc_hotswap_sel(m, 99, 0, 4, 7, 1, -1);
	smc_hotswap_observed(m, 1, 7);
	ck_assert(smc_blade(m, 1, &bv));
	ck_assert_int_eq(bv.mstate, -1);
	smc_fini(m);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

START_TEST(test_module_cipher_17_refused)
{
	struct af_config *cfg = shelf_config(9);
	qb_loop_t *loop = qb_loop_create();
	struct af_module_env env = {.cfg = cfg, .loop = loop};
	struct af_module_status st;
	struct smc *m = NULL;

	ck_assert_int_eq(af_init("check_shelfmgr"), 0);
	cfg->shelf.cipher_suite = 17;
	ck_assert_int_eq(smc_init(&m, &env), 0);
	smc_describe(m, &st);
	/* never a weaker suite than configured */
	ck_assert_str_eq(st.state, "idle");
	ck_assert_ptr_nonnull(strstr(st.detail, "cipher suite 17"));
	smc_fini(m);
	af_cfg_free(cfg);
	qb_loop_destroy(loop);
	af_fini();
}
END_TEST

/* A shelf manager that does not answer: OpenIPMI's sockets and timers run on
 * the qb_loop, nothing connects, fencing is refused, and everything is
 * released at the end (valgrind checks that), twice in a row. */
START_TEST(test_module_no_shelf_manager)
{
	for (int round = 0; round < 2; round++) {
		struct af_config *cfg = shelf_config(9); /* discard port: nobody */
		qb_loop_t *loop = qb_loop_create();
		struct af_module_env env = {.cfg = cfg, .loop = loop};
		struct af_module_status st;
		struct smc *m = NULL;

		ck_assert_int_eq(af_init("check_shelfmgr"), 0);
		ck_assert_int_eq(smc_init(&m, &env), 0);
		run_loop(loop, 300);
		smc_describe(m, &st);
		ck_assert_str_eq(st.state, "degraded");
		ck_assert_int_eq(smc_fence(m, 1, false, fence_done, NULL), -ENOTCONN);
		smc_fini(m);
		af_cfg_free(cfg);
		qb_loop_destroy(loop);
		af_fini();
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("shelfmgr");

	add_tcase(s, test_parse_bad_replies, 10);
	add_tcase(s, test_parse_good_replies, 10);
	add_tcase(s, test_fence_fsm_table, 10);
	add_tcase(s, test_fence_unreachable, 10);
	add_tcase(s, test_fence_pulled_out, 10);
	add_tcase(s, test_fence_m7_cannot_confirm, 10);
	add_tcase(s, test_fence_stuck_times_out, 10);
	add_tcase(s, test_fence_nothing_supported, 10);
	add_tcase(s, test_fence_hotswap, 10);
	add_tcase(s, test_fence_already_off, 10);
	add_tcase(s, test_fence_chassis_fallback, 10);
	add_tcase(s, test_fence_policy_unsupported, 10);
	add_tcase(s, test_fence_garbage_polls, 10);
	add_tcase(s, test_fence_unusable_readings, 10);
	add_tcase(s, test_unfence_paths, 10);
	add_tcase(s, test_os_handler_timers, 10);
	add_tcase(s, test_module_refusals, 10);
	add_tcase(s, test_sel_seen, 10);
	add_tcase(s, test_hotswap_sel_refused, 10);
	add_tcase(s, test_module_cipher_17_refused, 10);
	add_tcase(s, test_module_no_shelf_manager, 20);
	add_module_contract_tests(s);
	return run_suite(s);
}
