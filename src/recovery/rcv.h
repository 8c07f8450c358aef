/*
 * recovery: the planner that turns faults into ordered recovery steps, and the
 * executors that carry them out (libvirt, fencing, promotion, migration).
 */
#ifndef RCV_H
#define RCV_H

#include "af_module.h"

struct rcv;

/* Creates the module. env is copied; env->cfg must stay valid until the next
 * rcv_reconfigure() or rcv_fini(). Returns 0 or -errno. */
int rcv_init(struct rcv **out, const struct af_module_env *env);

/* Switches to a new configuration (already validated). Returns 0 or -errno;
 * on error the module keeps running on the previous configuration. */
int rcv_reconfigure(struct rcv *m, const struct af_config *cfg);

/* A fault was raised: the planner makes its plan against the cluster as
 * the configuration describes it and logs it. Until the executors exist
 * the plan is only logged ("dry run"), never carried out. */
struct af_fault;
void rcv_fault_raised(struct rcv *m, const struct af_fault *f);

void rcv_describe(const struct rcv *m, struct af_module_status *st);

void rcv_fini(struct rcv *m);

#endif
