/*
 * What every module gets from the daemon and reports back. I/O modules
 * register their file descriptors and timers on env->loop (OpenIPMI
 * included, through smc_os.c); pure modules (failure model, planner) get no
 * loop at all. The one exception, ipmi-detect, runs FreeIPMI's blocking
 * calls in one worker thread per controller; the workers hand everything to
 * the loop through a queue and a pipe and never log themselves.
 */
#ifndef AF_MODULE_H
#define AF_MODULE_H

#include <qb/qbloop.h>

#include "af_config.h"
#include "af_event.h"

typedef void (*af_event_sink_fn)(void *opaque, struct af_event *ev);

struct af_module_env {
	qb_loop_t *loop;             /* NULL for pure modules */
	const struct af_config *cfg; /* valid until the next reconfigure */
	af_event_sink_fn event_sink; /* where observations go */
	void *sink_opaque;
};

/* A module's one-line health, shown by "atca-ftctl status". */
struct af_module_status {
	const char *name;
	const char *state; /* "running", "disabled", "degraded", ... */
	char detail[160];
};

#endif
