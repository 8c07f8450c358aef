/*
 * The pair state machine (DESIGN.md: symmetric pairs). Two blades, A (the
 * lower slot) and B, protect each other: in PROTECTED each runs its VMs and
 * keeps the hot backups of the other's; when one side is lost the other
 * takes its VMs over and runs everything unprotected until the lost side
 * is back and the backups are rebuilt. A table with named states, every
 * transition logged with the pair's name. Pure: events in, state out.
 */
#ifndef RCV_PAIR_H
#define RCV_PAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "af_fsm.h"

enum rcv_pair_state {
	RCV_PAIR_FORMING = 0, /* not yet heard from both sides */
	RCV_PAIR_PROTECTED,   /* both up, every backup in sync */
	RCV_PAIR_SYNCING,     /* both up, backups being (re)built: not yet protected */
	RCV_PAIR_TAKEOVER_A,  /* B lost: A is taking B's VMs over */
	RCV_PAIR_TAKEOVER_B,  /* A lost: B is taking A's VMs over */
	RCV_PAIR_ALONE_A,     /* B down: A runs everything, unprotected */
	RCV_PAIR_ALONE_B,     /* A down: B runs everything, unprotected */
	RCV_PAIR_MAINT_A,     /* A evacuated for maintenance: B runs everything */
	RCV_PAIR_MAINT_B,     /* B evacuated for maintenance: A runs everything */
	RCV_PAIR_DOWN,        /* both sides down: nothing runs */
	RCV_PAIR_STATE_COUNT
};

enum rcv_pair_event {
	RCV_PE_A_UP = 0,
	RCV_PE_A_DOWN,
	RCV_PE_B_UP,
	RCV_PE_B_DOWN,
	RCV_PE_BOTH_UP,
	RCV_PE_TAKEOVER_DONE,
	RCV_PE_SYNC_DONE,
	RCV_PE_MAINT_A,
	RCV_PE_MAINT_B,
	RCV_PE_MAINT_OFF,
	RCV_PE_COUNT
};

extern const struct af_fsm_def rcv_pair_fsm;

struct rcv_pair {
	uint32_t a, b; /* slots, a < b */
	struct af_fsm fsm;
};

void rcv_pair_init(struct rcv_pair *p, uint32_t a, uint32_t b);
/* A side came up or went down (membership, a fatal fault, a fence):
 * returns the new state, -1 if nothing changed, -EINVAL for a slot that is
 * not in the pair. */
int rcv_pair_side(struct rcv_pair *p, uint32_t slot, bool up);
int rcv_pair_fire(struct rcv_pair *p, enum rcv_pair_event ev);

/* Every VM of the pair has a backup in sync. */
bool rcv_pair_protected(const struct rcv_pair *p);
/* The slot that runs every VM of the pair (0: both run their own, or
 * nobody runs anything). */
uint32_t rcv_pair_runs_all(const struct rcv_pair *p);

#endif
