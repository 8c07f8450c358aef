#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_log.h"

struct vft {
	struct af_module_env env;
};

int vft_init(struct vft **out, const struct af_module_env *env)
{
	struct vft *m;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	af_info("vmft-bridge: initialised (checkpoint/replay engine not implemented yet)");
	*out = m;
	return 0;
}

int vft_reconfigure(struct vft *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	m->env.cfg = cfg;
	return 0;
}

void vft_describe(const struct vft *m, struct af_module_status *st)
{
	st->name = "vmft-bridge";
	st->state = m ? "disabled" : "stopped";
	snprintf(st->detail, sizeof(st->detail), "checkpoint/replay engine not implemented yet");
}

void vft_fini(struct vft *m)
{
	if (m == NULL)
		return;
	af_info("vmft-bridge: stopped");
	free(m);
}
