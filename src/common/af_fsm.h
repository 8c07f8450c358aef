/*
 * Table-driven state machines. A machine is a table of (from, event, to)
 * rows with names for states and events; every transition is logged by name
 * with the machine's instance, so a timeline shows exactly what each state
 * machine did and why. An event with no row for the current state changes
 * nothing and is logged at debug level.
 */
#ifndef AF_FSM_H
#define AF_FSM_H

#include <stdbool.h>
#include <stddef.h>

#include "af_log.h"

struct af_fsm_row {
	int from;
	int event;
	int to;
};

struct af_fsm_def {
	const char *name; /* "ipmc", "pair", ... */
	enum af_subsys ss;
	const char *const *states;
	size_t n_states;
	const char *const *events;
	size_t n_events;
	const struct af_fsm_row *rows;
	size_t n_rows;
};

struct af_fsm {
	const struct af_fsm_def *def;
	int state;
	char instance[48]; /* "0x84", "blade 2+3", ... */
};

void af_fsm_init(struct af_fsm *m, const struct af_fsm_def *def, int initial, const char *instance);

/* Applies event: returns the new state, or -1 (state unchanged) when the
 * table has no row for it. */
int af_fsm_fire(struct af_fsm *m, int event);

/* The same without logging, for threads that must not call qb_log: the
 * transition line (or "" when ignored) goes to msg, prio to *prio. */
int af_fsm_step(struct af_fsm *m, int event, char *msg, size_t len, int *prio);

/* Whether event has a row in the current state: pollers use it to skip
 * the debug line of every "nothing changed" reading. */
bool af_fsm_has(const struct af_fsm *m, int event);

const char *af_fsm_state_name(const struct af_fsm *m);

/* Checks a table: every row names known states and events and no (from,
 * event) pair appears twice. Returns 0 or -EINVAL (for unit tests). */
int af_fsm_check(const struct af_fsm_def *def);

#endif
