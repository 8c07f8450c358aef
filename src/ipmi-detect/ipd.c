#include "config.h"

#define AF_LOG_SS AF_SS_IPMI
#include "ipd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_log.h"

struct ipd {
	struct af_module_env env;
};

int ipd_init(struct ipd **out, const struct af_module_env *env)
{
	struct ipd *m;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	af_info("ipmi-detect: initialised (sensor and SEL monitoring not implemented yet)");
	*out = m;
	return 0;
}

int ipd_reconfigure(struct ipd *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	m->env.cfg = cfg;
	return 0;
}

void ipd_describe(const struct ipd *m, struct af_module_status *st)
{
	st->name = "ipmi-detect";
	st->state = m ? "disabled" : "stopped";
	snprintf(st->detail, sizeof(st->detail), "sensor and SEL monitoring not implemented yet");
}

void ipd_fini(struct ipd *m)
{
	if (m == NULL)
		return;
	af_info("ipmi-detect: stopped");
	free(m);
}
