/*
 * failure-model rules: the table that maps events to faults, read from a
 * text file (atca-ft-failure-model(7) documents the format) or from the
 * built-in defaults, which are the installed failure-model.rules.
 *
 * A rules set is an immutable value once loaded: the model keeps a pointer
 * and a reload swaps in a new set only if it loaded without error.
 */
#ifndef FM_RULES_H
#define FM_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "af_event.h"
#include "af_fault.h"

#define FM_RULE_NAME_MAX 32
#define FM_MAX_RULES 128
#define FM_MAX_CLEARS 64
#define FM_MAX_CONDS 8
#define FM_MAX_VALS 8
#define FM_MAX_CLEAR_NAMES 8
#define FM_RATE_MAX 64     /* rate=N/WINDOW: N at most this */
#define FM_DEBOUNCE_MAX 16 /* debounce=N/M: M at most this */

/* What a condition looks at. */
enum fm_key_kind {
	FM_KEY_DETAIL = 0, /* an event detail (key=value) */
	FM_KEY_ENTITY,     /* the event's entity */
	FM_KEY_SOURCE,     /* the event's source (ipmi, shelf, cluster, ...) */
	FM_KEY_MSTATE,     /* blade.mstate: M0..M7, unknown */
	FM_KEY_IPMC,       /* blade.ipmc: reachable, unreachable, unknown */
	FM_KEY_MEMBER,     /* blade.member: member, lost, unknown */
	FM_KEY_POWER,      /* blade.power: on, lost, unknown */
	FM_KEY_SENSORS,    /* blade.sensors: ok, non-critical, critical, non-recoverable */
	FM_KEY_HYPERVISOR, /* blade.hypervisor: up, down, unknown */
	FM_KEY_VM_FAILURES /* host.vm_failures: a number */
};

enum fm_op { FM_OP_EQ = 0, FM_OP_NE, FM_OP_GE, FM_OP_LE, FM_OP_GT, FM_OP_LT };

struct fm_cond {
	enum fm_key_kind what;
	enum fm_op op;
	const char *key; /* FM_KEY_DETAIL: the detail key */
	unsigned n_vals; /* EQ/NE: any of these values; a value ending in '*' is a prefix */
	const char *vals[FM_MAX_VALS];
	bool is_prefix[FM_MAX_VALS];     /* the value was written with a final '*' */
	uint8_t prefix_len[FM_MAX_VALS]; /* its length without the '*' */
	long long num;                   /* GE/LE/GT/LT */
};

struct fm_rule {
	char name[FM_RULE_NAME_MAX];
	int line;
	enum af_ev_kind kind;
	unsigned n_conds;
	struct fm_cond conds[FM_MAX_CONDS];
	enum af_layer layer;
	enum af_severity severity;
	enum af_recovery_class rclass;
	enum af_scope scope;
	unsigned debounce_n, debounce_m; /* 1/1: no debounce */
	bool level;                      /* clears when its source stops matching */
	unsigned hysteresis;             /* non-matching events before a level fault clears */
	unsigned rate_n;                 /* 0: no rate condition */
	uint64_t rate_ms;
	uint64_t hold_ms; /* wait this long for correlation before raising */
	uint64_t flap_ms; /* at most one raise per this window (0: no damping) */
	unsigned esc_n;   /* 0: no escalation */
	uint64_t esc_ms;
	enum af_severity esc_severity;
	enum af_recovery_class esc_rclass;
	uint64_t ttl_ms; /* clears by itself this long after the last matching event */
};

struct fm_clear {
	int line;
	unsigned n_names; /* rule names; a name ending in '*' is a prefix */
	char names[FM_MAX_CLEAR_NAMES][FM_RULE_NAME_MAX];
	enum af_ev_kind kind;
	unsigned n_conds;
	struct fm_cond conds[FM_MAX_CONDS];
};

/* Model parameters ("set NAME VALUE"). */
struct fm_params {
	uint64_t
	        subsume_ms; /* a fatal blade fault absorbs the blade's symptoms this long after it clears */
	uint64_t vm_group_ms; /* VM failures this close together count as one host's */
	uint64_t history_ms;  /* flapping and escalation memory of a cleared fault */
	unsigned max_faults;  /* open and remembered faults, at most */
	unsigned max_sources; /* tracked event sources (sensors, VMs, ...), at most */
};

struct fm_rules {
	unsigned n_rules, n_clears;
	struct fm_rule rules[FM_MAX_RULES];
	struct fm_clear clears[FM_MAX_CLEARS];
	struct fm_params params;
	char origin[256]; /* the file, or "built-in" */
	/* every string the conditions point at */
	char *pool;
	size_t pool_len, pool_cap;
};

/* Error sink: one call per problem, "file:line: message". */
typedef void (*fm_rules_err_fn)(void *opaque, const char *msg);

/* Parses rules text. All errors are reported (through err, if not NULL) in
 * one pass; on any error nothing is returned and the result is -EINVAL.
 * origin names the text in messages ("failure-model.rules"). */
int fm_rules_parse(const char *text, size_t len, const char *origin, struct fm_rules **out,
                   fm_rules_err_fn err, void *opaque);
/* Reads a file; errors as above, -errno if it cannot be read. */
int fm_rules_load(const char *path, struct fm_rules **out, fm_rules_err_fn err, void *opaque);
/* The built-in defaults (the installed failure-model.rules). */
int fm_rules_default(struct fm_rules **out);
extern const char fm_default_rules[];

void fm_rules_free(struct fm_rules *r);

/* Condition evaluation needs values the model keeps (blade state); the
 * model hands them over through this view. */
struct fm_blade_view {
	const char *mstate, *ipmc, *member, *power, *sensors, *hypervisor;
	long long vm_failures;
};

bool fm_cond_match(const struct fm_cond *c, const struct af_event *ev,
                   const struct fm_blade_view *bv);
/* All conditions of a rule (kind included). */
bool fm_rule_match(const struct fm_rule *r, const struct af_event *ev,
                   const struct fm_blade_view *bv);
bool fm_clear_match(const struct fm_clear *c, const struct af_event *ev,
                    const struct fm_blade_view *bv);
/* Does a clear statement name this rule? */
bool fm_clear_names(const struct fm_clear *c, const char *rule);

/* The rules set as text that fm_rules_parse() reads back to the same set
 * (for "atca-ftctl simulate --print-rules" and the tests). malloc'd. */
char *fm_rules_format(const struct fm_rules *r);

#endif
