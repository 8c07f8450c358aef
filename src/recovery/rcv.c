#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include "rcv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_log.h"
#include "rcv_plan.h"

struct rcv {
	struct af_module_env env;
	struct rcv_timeouts timeouts;
	uint64_t plans;
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
	rcv_timeouts_default(&m->timeouts);
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

void rcv_fault_raised(struct rcv *m, const struct af_fault *f)
{
	struct rcv_cluster *c;
	struct rcv_plan *p;

	if (m == NULL || f == NULL)
		return;
	c = calloc(1, sizeof(*c));
	p = calloc(1, sizeof(*p));
	if (c == NULL || p == NULL)
		goto out;
	rcv_cluster_from_config(m->env.cfg, c);
	m->timeouts.fence_ms = (uint32_t)m->env.cfg->detection.fence_timeout_ms;
	if (rcv_plan_fault(c, f, &m->timeouts, p) < 0)
		goto out;
	m->plans++;
	af_notice("recovery: plan for fault %llu (dry run, not carried out): %s",
	          (unsigned long long)f->id, p->summary);
	for (unsigned i = 0; i < p->n_steps; i++)
		af_notice("recovery:   %u. %s blade %d%s%s: %s", i + 1,
		          rcv_step_names[p->steps[i].kind], p->steps[i].blade,
		          p->steps[i].vm[0] ? " vm " : "", p->steps[i].vm, p->steps[i].why);
out:
	free(c);
	free(p);
}

void rcv_describe(const struct rcv *m, struct af_module_status *st)
{
	st->name = "recovery";
	st->state = m ? "dry-run" : "stopped";
	if (m == NULL) {
		st->detail[0] = '\0';
		return;
	}
	snprintf(
	        st->detail, sizeof(st->detail),
	        "%llu plans made and logged; executors not implemented yet: nothing is carried out",
	        (unsigned long long)m->plans);
}

void rcv_fini(struct rcv *m)
{
	if (m == NULL)
		return;
	af_info("recovery: stopped");
	free(m);
}
