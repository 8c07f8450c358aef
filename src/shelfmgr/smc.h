/*
 * shelfmgr: client of the ATCA shelf manager (OpenIPMI): hot-swap states of every
 * FRU, shelf-manager redundancy, and fencing through FRU deactivation.
 */
#ifndef SMC_H
#define SMC_H

#include "af_module.h"

struct smc;

/* Creates the module. env is copied; env->cfg must stay valid until the next
 * smc_reconfigure() or smc_fini(). Returns 0 or -errno. */
int smc_init(struct smc **out, const struct af_module_env *env);

/* Switches to a new configuration (already validated). Returns 0 or -errno;
 * on error the module keeps running on the previous configuration. */
int smc_reconfigure(struct smc *m, const struct af_config *cfg);

void smc_describe(const struct smc *m, struct af_module_status *st);

void smc_fini(struct smc *m);

#endif
