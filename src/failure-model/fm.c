#include "config.h"

#define AF_LOG_SS AF_SS_FM
#include "fm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_log.h"

struct fm {
	const struct af_config *cfg;
	struct fm_ops ops;
	void *opaque;
	uint64_t events_seen;
	uint64_t events_rejected;
};

int fm_init(struct fm **out, const struct af_config *cfg, const struct fm_ops *ops, void *opaque)
{
	struct fm *m;

	if (out == NULL || cfg == NULL || ops == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->cfg = cfg;
	m->ops = *ops;
	m->opaque = opaque;
	af_info("failure-model: initialised (no classification rules yet: events are counted)");
	*out = m;
	return 0;
}

int fm_reconfigure(struct fm *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	m->cfg = cfg;
	return 0;
}

int fm_event(struct fm *m, const struct af_event *ev)
{
	if (m == NULL || ev == NULL)
		return -EINVAL;
	if ((unsigned)ev->source >= AF_SRC_COUNT || (unsigned)ev->kind >= AF_EV_KIND_COUNT ||
	    ev->blade < 0 || ev->blade > AF_MAX_BLADES || ev->n_detail > AF_EV_DETAIL_MAX) {
		m->events_rejected++;
		af_warn("failure-model: rejected malformed event (source %d kind %d blade %d)",
		        (int)ev->source, (int)ev->kind, ev->blade);
		return -EINVAL;
	}
	m->events_seen++;
	return 0;
}

void fm_describe(const struct fm *m, struct af_module_status *st)
{
	st->name = "failure-model";
	if (m == NULL) {
		st->state = "stopped";
		st->detail[0] = '\0';
		return;
	}
	st->state = "counting";
	snprintf(st->detail, sizeof(st->detail),
	         "%llu events seen, %llu rejected; classification rules not implemented yet",
	         (unsigned long long)m->events_seen, (unsigned long long)m->events_rejected);
}

void fm_fini(struct fm *m)
{
	if (m == NULL)
		return;
	af_info("failure-model: stopped after %llu events", (unsigned long long)m->events_seen);
	free(m);
}
