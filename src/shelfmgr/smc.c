#include "config.h"

#define AF_LOG_SS AF_SS_SHELF
#include "smc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_log.h"

struct smc {
	struct af_module_env env;
};

int smc_init(struct smc **out, const struct af_module_env *env)
{
	struct smc *m;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	af_info("shelfmgr: initialised (hot-swap tracking and fencing not implemented yet)");
	*out = m;
	return 0;
}

int smc_reconfigure(struct smc *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	m->env.cfg = cfg;
	return 0;
}

void smc_describe(const struct smc *m, struct af_module_status *st)
{
	st->name = "shelfmgr";
	st->state = m ? "disabled" : "stopped";
	snprintf(st->detail, sizeof(st->detail),
	         "hot-swap tracking and fencing not implemented yet");
}

void smc_fini(struct smc *m)
{
	if (m == NULL)
		return;
	af_info("shelfmgr: stopped");
	free(m);
}
