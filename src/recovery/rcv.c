#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include "rcv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_log.h"

struct rcv {
	struct af_module_env env;
};

int rcv_init(struct rcv **out, const struct af_module_env *env)
{
	struct rcv *m;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	af_info("recovery: initialised (planner only: executors not implemented yet)");
	*out = m;
	return 0;
}

int rcv_reconfigure(struct rcv *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	m->env.cfg = cfg;
	return 0;
}

void rcv_describe(const struct rcv *m, struct af_module_status *st)
{
	st->name = "recovery";
	st->state = m ? "disabled" : "stopped";
	snprintf(st->detail, sizeof(st->detail),
	         "planner ready (atca-ftctl simulate --config); executors not implemented yet");
}

void rcv_fini(struct rcv *m)
{
	if (m == NULL)
		return;
	af_info("recovery: stopped");
	free(m);
}
