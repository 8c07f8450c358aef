#include "config.h"

#define AF_LOG_SS AF_SS_MAIN
#include "af_fsm.h"

#include <errno.h>
#include <stdio.h>

#include "af_util.h"

static const char *name_of(const char *const *names, size_t n, int v)
{
	const char *s = af_enum_name(names, n, v);
	return s ? s : "?";
}

void af_fsm_init(struct af_fsm *m, const struct af_fsm_def *def, int initial, const char *instance)
{
	m->def = def;
	m->state = initial;
	af_strlcpy(m->instance, instance ? instance : "", sizeof(m->instance));
}

int af_fsm_step(struct af_fsm *m, int event, char *msg, size_t len, int *prio)
{
	const struct af_fsm_def *d = m->def;

	for (size_t i = 0; i < d->n_rows; i++) {
		if (d->rows[i].from != m->state || d->rows[i].event != event)
			continue;
		snprintf(msg, len, "fsm %s %s: %s --%s--> %s", d->name, m->instance,
		         name_of(d->states, d->n_states, m->state),
		         name_of(d->events, d->n_events, event),
		         name_of(d->states, d->n_states, d->rows[i].to));
		*prio = LOG_INFO;
		m->state = d->rows[i].to;
		return m->state;
	}
	snprintf(msg, len, "fsm %s %s: %s ignores %s", d->name, m->instance,
	         name_of(d->states, d->n_states, m->state), name_of(d->events, d->n_events, event));
	*prio = LOG_DEBUG;
	return -1;
}

int af_fsm_fire(struct af_fsm *m, int event)
{
	char msg[256];
	int prio, rc = af_fsm_step(m, event, msg, sizeof(msg), &prio);

	af_log(m->def->ss, prio, "%s", msg);
	return rc;
}

bool af_fsm_has(const struct af_fsm *m, int event)
{
	for (size_t i = 0; i < m->def->n_rows; i++) {
		if (m->def->rows[i].from == m->state && m->def->rows[i].event == event)
			return true;
	}
	return false;
}

const char *af_fsm_state_name(const struct af_fsm *m)
{
	return name_of(m->def->states, m->def->n_states, m->state);
}

int af_fsm_check(const struct af_fsm_def *def)
{
	for (size_t i = 0; i < def->n_rows; i++) {
		const struct af_fsm_row *r = &def->rows[i];

		if (r->from < 0 || (size_t)r->from >= def->n_states || r->to < 0 ||
		    (size_t)r->to >= def->n_states || r->event < 0 ||
		    (size_t)r->event >= def->n_events)
			return -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (def->rows[j].from == r->from && def->rows[j].event == r->event)
				return -EINVAL;
		}
	}
	return 0;
}
