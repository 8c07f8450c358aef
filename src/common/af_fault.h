/*
 * Faults: what the failure model concludes from events. A fault has a layer
 * (which part of the stack failed), a severity, a scope and target (what is
 * affected), the events that caused it, and the recovery class the planner
 * must carry out. Like events, faults are fixed-size values.
 */
#ifndef AF_FAULT_H
#define AF_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "af_util.h"

#define AF_FAULT_CAUSES_MAX 16
#define AF_VM_NAME_MAX 64
#define AF_FAULT_ENTITY_MAX 64

enum af_layer { AF_LAYER_HARDWARE = 0, AF_LAYER_HYPERVISOR, AF_LAYER_VM, AF_LAYER_COUNT };

/* Ordered: a higher value is worse, so escalation is a comparison. */
enum af_severity { AF_SEV_PREDICTIVE = 0, AF_SEV_DEGRADED, AF_SEV_FATAL, AF_SEV_COUNT };

enum af_scope { AF_SCOPE_SHELF = 0, AF_SCOPE_BLADE, AF_SCOPE_HOST, AF_SCOPE_VM, AF_SCOPE_COUNT };

enum af_recovery_class {
	AF_RC_NOTIFY_ONLY = 0,
	AF_RC_RESTART_VM,
	AF_RC_MIGRATE_AWAY,
	AF_RC_FAILOVER,
	AF_RC_FENCE_AND_FAILOVER,
	AF_RC_COUNT
};

struct af_fault {
	uint64_t id;
	enum af_layer layer;
	enum af_severity severity;
	enum af_scope scope;
	int blade;               /* blade/host scope, and the blade a VM runs on */
	char vm[AF_VM_NAME_MAX]; /* VM scope */
	enum af_recovery_class rclass;
	char rule[32];                    /* the failure-model rule that raised it */
	char entity[AF_FAULT_ENTITY_MAX]; /* what it is about: sensor, FRU, VM ("" none) */
	uint64_t raised_ns;               /* CLOCK_MONOTONIC */
	uint64_t cleared_ns;              /* 0 while the fault is open */
	unsigned n_causes;
	uint64_t causes[AF_FAULT_CAUSES_MAX]; /* event ids, oldest first */
	unsigned causes_dropped;              /* causes beyond the array, counted */
	/* raised by the blade leaving the membership (a node.leave rule): the
	 * evidence lapses once the blade is a member again, unlike a SEL record
	 * or a sensor reading, which stays true after it was read */
	bool membership_only;
};

extern const char *const af_layer_names[AF_LAYER_COUNT];
extern const char *const af_severity_names[AF_SEV_COUNT];
extern const char *const af_scope_names[AF_SCOPE_COUNT];
extern const char *const af_rclass_names[AF_RC_COUNT];

/* Adds an event id, keeping the ids sorted and each once; once the array is
 * full the oldest causes are kept (they explain the fault) and the newest
 * ones are only counted. */
void af_fault_add_cause(struct af_fault *f, uint64_t event_id);

/* "shelf", "blade 3", "host 3", "vm web1". */
int af_fault_target(const struct af_fault *f, char *buf, size_t len);

/* One-line text form for logs: id, layer, severity, target, class, causes. */
int af_fault_format(const struct af_fault *f, char *buf, size_t len);

#endif
