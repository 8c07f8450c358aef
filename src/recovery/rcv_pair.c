/*
 * The pair state machine: see rcv_pair.h. A lost side is always taken over
 * by the other (TAKEOVER_*), which then runs alone until the lost side is
 * back and its backups are rebuilt (SYNCING -> PROTECTED).
 */
#include "config.h"

#include "rcv_pair.h"

#include <errno.h>
#include <stdio.h>

#include "af_util.h"

static const char *const state_names[RCV_PAIR_STATE_COUNT] = {
        [RCV_PAIR_FORMING] = "FORMING",       [RCV_PAIR_PROTECTED] = "PROTECTED",
        [RCV_PAIR_SYNCING] = "SYNCING",       [RCV_PAIR_TAKEOVER_A] = "TAKEOVER_A",
        [RCV_PAIR_TAKEOVER_B] = "TAKEOVER_B", [RCV_PAIR_ALONE_A] = "ALONE_A",
        [RCV_PAIR_ALONE_B] = "ALONE_B",       [RCV_PAIR_MAINT_A] = "MAINT_A",
        [RCV_PAIR_MAINT_B] = "MAINT_B",       [RCV_PAIR_DOWN] = "DOWN",
};

static const char *const event_names[RCV_PE_COUNT] = {
        [RCV_PE_A_UP] = "a-up",
        [RCV_PE_A_DOWN] = "a-down",
        [RCV_PE_B_UP] = "b-up",
        [RCV_PE_B_DOWN] = "b-down",
        [RCV_PE_BOTH_UP] = "both-up",
        [RCV_PE_TAKEOVER_DONE] = "takeover-done",
        [RCV_PE_SYNC_DONE] = "sync-done",
        [RCV_PE_MAINT_A] = "maintenance-a",
        [RCV_PE_MAINT_B] = "maintenance-b",
        [RCV_PE_MAINT_OFF] = "maintenance-off",
};

static const struct af_fsm_row rows[] = {
        {RCV_PAIR_FORMING, RCV_PE_BOTH_UP, RCV_PAIR_SYNCING},
        {RCV_PAIR_FORMING, RCV_PE_A_UP, RCV_PAIR_ALONE_A},
        {RCV_PAIR_FORMING, RCV_PE_B_UP, RCV_PAIR_ALONE_B},

        {RCV_PAIR_PROTECTED, RCV_PE_A_DOWN, RCV_PAIR_TAKEOVER_B},
        {RCV_PAIR_PROTECTED, RCV_PE_B_DOWN, RCV_PAIR_TAKEOVER_A},
        {RCV_PAIR_PROTECTED, RCV_PE_MAINT_A, RCV_PAIR_MAINT_A},
        {RCV_PAIR_PROTECTED, RCV_PE_MAINT_B, RCV_PAIR_MAINT_B},

        {RCV_PAIR_SYNCING, RCV_PE_SYNC_DONE, RCV_PAIR_PROTECTED},
        {RCV_PAIR_SYNCING, RCV_PE_A_DOWN, RCV_PAIR_TAKEOVER_B},
        {RCV_PAIR_SYNCING, RCV_PE_B_DOWN, RCV_PAIR_TAKEOVER_A},
        {RCV_PAIR_SYNCING, RCV_PE_MAINT_A, RCV_PAIR_MAINT_A},
        {RCV_PAIR_SYNCING, RCV_PE_MAINT_B, RCV_PAIR_MAINT_B},

        {RCV_PAIR_TAKEOVER_A, RCV_PE_TAKEOVER_DONE, RCV_PAIR_ALONE_A},
        {RCV_PAIR_TAKEOVER_A, RCV_PE_A_DOWN, RCV_PAIR_DOWN},
        {RCV_PAIR_TAKEOVER_B, RCV_PE_TAKEOVER_DONE, RCV_PAIR_ALONE_B},
        {RCV_PAIR_TAKEOVER_B, RCV_PE_B_DOWN, RCV_PAIR_DOWN},

        {RCV_PAIR_ALONE_A, RCV_PE_B_UP, RCV_PAIR_SYNCING},
        {RCV_PAIR_ALONE_A, RCV_PE_A_DOWN, RCV_PAIR_DOWN},
        {RCV_PAIR_ALONE_B, RCV_PE_A_UP, RCV_PAIR_SYNCING},
        {RCV_PAIR_ALONE_B, RCV_PE_B_DOWN, RCV_PAIR_DOWN},

        /* the side in maintenance may go down (that is what it is for) */
        {RCV_PAIR_MAINT_A, RCV_PE_MAINT_OFF, RCV_PAIR_SYNCING},
        {RCV_PAIR_MAINT_A, RCV_PE_B_DOWN, RCV_PAIR_DOWN},
        {RCV_PAIR_MAINT_B, RCV_PE_MAINT_OFF, RCV_PAIR_SYNCING},
        {RCV_PAIR_MAINT_B, RCV_PE_A_DOWN, RCV_PAIR_DOWN},

        {RCV_PAIR_DOWN, RCV_PE_A_UP, RCV_PAIR_ALONE_A},
        {RCV_PAIR_DOWN, RCV_PE_B_UP, RCV_PAIR_ALONE_B},
};

const struct af_fsm_def rcv_pair_fsm = {
        .name = "pair",
        .ss = AF_SS_RECOVERY,
        .states = state_names,
        .n_states = RCV_PAIR_STATE_COUNT,
        .events = event_names,
        .n_events = RCV_PE_COUNT,
        .rows = rows,
        .n_rows = AF_ARRAY_SIZE(rows),
};

void rcv_pair_init(struct rcv_pair *p, uint32_t a, uint32_t b)
{
	char name[32];

	p->a = a < b ? a : b;
	p->b = a < b ? b : a;
	snprintf(name, sizeof(name), "blades %u+%u", p->a, p->b);
	af_fsm_init(&p->fsm, &rcv_pair_fsm, RCV_PAIR_FORMING, name);
}

int rcv_pair_fire(struct rcv_pair *p, enum rcv_pair_event ev)
{
	if ((unsigned)ev >= RCV_PE_COUNT)
		return -EINVAL;
	return af_fsm_fire(&p->fsm, (int)ev);
}

int rcv_pair_side(struct rcv_pair *p, uint32_t slot, bool up)
{
	if (slot == p->a)
		return rcv_pair_fire(p, up ? RCV_PE_A_UP : RCV_PE_A_DOWN);
	if (slot == p->b)
		return rcv_pair_fire(p, up ? RCV_PE_B_UP : RCV_PE_B_DOWN);
	return -EINVAL;
}

bool rcv_pair_protected(const struct rcv_pair *p)
{
	return p->fsm.state == RCV_PAIR_PROTECTED;
}

uint32_t rcv_pair_runs_all(const struct rcv_pair *p)
{
	switch (p->fsm.state) {
	case RCV_PAIR_TAKEOVER_A:
	case RCV_PAIR_ALONE_A:
	case RCV_PAIR_MAINT_B:
		return p->a;
	case RCV_PAIR_TAKEOVER_B:
	case RCV_PAIR_ALONE_B:
	case RCV_PAIR_MAINT_A:
		return p->b;
	default:
		return 0;
	}
}
