/*
 * failure-model: the layered failure model (hardware / hypervisor / VM).
 * Pure code: events in, faults out through fm_ops. It does no I/O and reads
 * no clock of its own (time comes from the events and from fm_tick()), so it
 * runs the same in the daemon, in unit tests and in "atca-ftctl simulate".
 *
 * atca-ft-failure-model(7) describes the model; fm_rules.h the rules.
 */
#ifndef FM_H
#define FM_H

#include "af_config.h"
#include "af_event.h"
#include "af_fault.h"
#include "af_module.h"

struct fm;
struct fm_rules;

enum fm_fault_op { FM_OP_RAISE = 0, FM_OP_UPDATE, FM_OP_CLEAR };
extern const char *const fm_fault_op_names[3];

/* Why a fault was updated or cleared. */
enum fm_why {
	FM_WHY_NONE = 0,
	FM_WHY_CAUSE,      /* update: one more event of the same fault */
	FM_WHY_ABSORBED,   /* update: a symptom of this fault joined it */
	FM_WHY_RULE,       /* clear: a clear statement matched */
	FM_WHY_HYSTERESIS, /* clear: its source stopped matching (level rule) */
	FM_WHY_TTL,        /* clear: nothing new for the rule's ttl */
	FM_WHY_MERGED,     /* clear: absorbed by a fault that explains it (merged_into) */
	FM_WHY_COUNT
};
extern const char *const fm_why_names[FM_WHY_COUNT];

struct fm_report {
	enum fm_fault_op op;
	enum fm_why why;
	const struct af_fault *fault;
	uint64_t now_ns;      /* model time of the report */
	uint64_t merged_into; /* FM_WHY_MERGED: the fault that absorbed this one */
	bool escalated;       /* raised or updated with the escalated severity/class */
	uint64_t event_id;    /* the event that led to the report, 0 for a timer */
};

struct fm_ops {
	void (*fault)(void *opaque, const struct fm_report *r);
	/* An event the model ignored (stale, duplicate, no room), with why.
	 * Optional. */
	void (*ignored)(void *opaque, const struct af_event *ev, const char *why);
};

/* Starts with the built-in rules. cfg may be NULL (the simulator). */
int fm_init(struct fm **out, const struct af_config *cfg, const struct fm_ops *ops, void *opaque);
/* Starts with these rules (taken over, freed on error too; NULL: the
 * built-in ones); their max_faults and max_sources size the tables. */
int fm_init_rules(struct fm **out, const struct af_config *cfg, struct fm_rules *rules,
                  const struct fm_ops *ops, void *opaque);
int fm_reconfigure(struct fm *m, const struct af_config *cfg);
/* Replaces the rules (the model takes ownership). Open faults stay open and
 * follow the new rule of the same name, if any. */
int fm_set_rules(struct fm *m, struct fm_rules *rules);
const struct fm_rules *fm_get_rules(const struct fm *m);

/* Feeds one event. Timers due before it fire first, at their own times.
 * Returns the number of reports made, or -EINVAL for an event that is not
 * well formed (it is then ignored). */
int fm_event(struct fm *m, const struct af_event *ev);
/* Time passes without events: fires what is due up to now_ns. */
int fm_tick(struct fm *m, uint64_t now_ns);
/* The next time fm_tick() has something to do, 0 if nothing is pending. */
uint64_t fm_next_deadline(const struct fm *m);
/* When the last pending hold will be decided, 0 if none is pending (the
 * simulator runs time on to there at the end of a file). */
uint64_t fm_hold_horizon(const struct fm *m);

/* Open faults, for status views: calls fn for each. */
void fm_foreach_open(const struct fm *m, void (*fn)(void *arg, const struct af_fault *f),
                     void *arg);

void fm_describe(const struct fm *m, struct af_module_status *st);
void fm_fini(struct fm *m);

#endif
