/*
 * failure-model: the layered failure model (hardware / hypervisor / VM).
 * Pure code: events in, faults out through fm_ops. It does no I/O and reads
 * no clock of its own (time comes from the events), so it runs the same in
 * the daemon, in unit tests and in "atca-ftctl simulate".
 */
#ifndef FM_H
#define FM_H

#include "af_config.h"
#include "af_event.h"
#include "af_fault.h"
#include "af_module.h"

struct fm;

struct fm_ops {
	/* A fault was raised, changed or cleared (f->cleared_ns != 0). */
	void (*fault)(void *opaque, const struct af_fault *f);
};

int fm_init(struct fm **out, const struct af_config *cfg, const struct fm_ops *ops, void *opaque);
int fm_reconfigure(struct fm *m, const struct af_config *cfg);

/* Feeds one event. Returns the number of faults reported through ops, or
 * -EINVAL for an event that is not well formed (it is then ignored). */
int fm_event(struct fm *m, const struct af_event *ev);

void fm_describe(const struct fm *m, struct af_module_status *st);
void fm_fini(struct fm *m);

#endif
