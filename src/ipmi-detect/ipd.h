/*
 * ipmi-detect: sensor and SEL monitoring of the blade IPMCs and the shelf manager
 * over RMCP+ (FreeIPMI). Observations become events for the failure model.
 */
#ifndef IPD_H
#define IPD_H

#include "af_module.h"

struct ipd;

/* Creates the module. env is copied; env->cfg must stay valid until the next
 * ipd_reconfigure() or ipd_fini(). Returns 0 or -errno. */
int ipd_init(struct ipd **out, const struct af_module_env *env);

/* Switches to a new configuration (already validated). Returns 0 or -errno;
 * on error the module keeps running on the previous configuration. */
int ipd_reconfigure(struct ipd *m, const struct af_config *cfg);

void ipd_describe(const struct ipd *m, struct af_module_status *st);

void ipd_fini(struct ipd *m);

#endif
