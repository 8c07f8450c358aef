/*
 * ipmi-detect: the module. It creates one worker per target (the shelf
 * manager, every blade IPMC), carries their events and log lines to the
 * main loop (a queue, and a pipe the qb_loop watches), and keeps what they
 * learnt for atca-ftctl.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_IPMI
#include "ipd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "af_log.h"
#include "ipd_int.h"

static const struct ipd_transport_factory freeipmi_factory = {
        .open_lan = ipd_freeipmi_open_lan,
        .open_inband = ipd_freeipmi_open_inband,
};

/* ---- the queue (any thread) ------------------------------------------------ */

static void queue_push(struct ipd *m, const struct ipd_queued *q)
{
	bool wake;

	pthread_mutex_lock(&m->lock);
	if (m->qlen == IPD_QUEUE_MAX) {
		m->dropped++;
		pthread_mutex_unlock(&m->lock);
		return;
	}
	m->queue[(m->qhead + m->qlen) % IPD_QUEUE_MAX] = *q;
	wake = m->qlen++ == 0;
	pthread_mutex_unlock(&m->lock);
	if (wake && m->pipe[1] >= 0) {
		char b = 1;
		/* non-blocking: a full pipe already means "wake up" */
		if (write(m->pipe[1], &b, 1) < 0 && errno != EAGAIN) {
			pthread_mutex_lock(&m->lock);
			m->dropped++;
			pthread_mutex_unlock(&m->lock);
		}
	}
}

void ipd_post_event(struct ipd *m, const struct af_event *ev)
{
	struct ipd_queued q;

	q.is_log = false;
	q.prio = 0;
	q.log[0] = '\0';
	q.ev = *ev;
	queue_push(m, &q);
}

void ipd_post_log(struct ipd *m, int prio, const char *fmt, ...)
{
	struct ipd_queued q;
	va_list ap;

	q.is_log = true;
	q.prio = prio;
	va_start(ap, fmt);
	vsnprintf(q.log, sizeof(q.log), fmt, ap);
	va_end(ap);
	/* only the text and priority matter for a log line */
	memset(&q.ev, 0, sizeof(q.ev));
	queue_push(m, &q);
}

static void remember_sel(struct ipd *m, const struct af_event *ev)
{
	pthread_mutex_lock(&m->lock);
	m->sel_ring[(m->sel_head + m->sel_len) % IPD_SEL_RING] = *ev;
	if (m->sel_len < IPD_SEL_RING)
		m->sel_len++;
	else
		m->sel_head = (m->sel_head + 1) % IPD_SEL_RING;
	pthread_mutex_unlock(&m->lock);
}

/* The main loop's side: drain the pipe, then the queue. */
static int32_t dispatch(int32_t fd, int32_t revents, void *data)
{
	struct ipd *m = data;
	struct ipd_queued *batch;
	char buf[64];
	unsigned n = 0;
	uint64_t dropped;

	(void)revents;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	batch = malloc(sizeof(*batch) * 64);
	if (batch == NULL)
		return 0;
	for (;;) {
		pthread_mutex_lock(&m->lock);
		n = 0;
		while (m->qlen > 0 && n < 64) {
			batch[n++] = m->queue[m->qhead];
			m->qhead = (m->qhead + 1) % IPD_QUEUE_MAX;
			m->qlen--;
		}
		pthread_mutex_unlock(&m->lock);
		if (n == 0)
			break;
		for (unsigned i = 0; i < n; i++) {
			if (batch[i].is_log) {
				af_log(AF_SS_IPMI, batch[i].prio, "%s", batch[i].log);
				continue;
			}
			if (batch[i].ev.kind == AF_EV_SEL_RECORD)
				remember_sel(m, &batch[i].ev);
			m->events_posted++;
			if (m->env.event_sink != NULL)
				m->env.event_sink(m->env.sink_opaque, &batch[i].ev);
		}
	}
	free(batch);
	pthread_mutex_lock(&m->lock); /* workers count under the lock */
	dropped = m->dropped;
	m->dropped = 0;
	pthread_mutex_unlock(&m->lock);
	if (dropped)
		af_warn("ipmi-detect: %llu observations dropped (queue full)",
		        (unsigned long long)dropped);
	return 0;
}

/* ---- helpers shared with the workers ------------------------------------- */

bool ipd_stopping(struct ipd *m)
{
	bool s;

	pthread_mutex_lock(&m->lock);
	s = m->stop;
	pthread_mutex_unlock(&m->lock);
	return s;
}

bool ipd_wait(struct ipd *m, uint64_t deadline_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline_ns / AF_NS_PER_S),
	                      .tv_nsec = (long)(deadline_ns % AF_NS_PER_S)};
	bool s;

	pthread_mutex_lock(&m->lock);
	while (!m->stop && af_mono_ns() < deadline_ns) {
		if (pthread_cond_timedwait(&m->wake, &m->lock, &ts) == ETIMEDOUT)
			break;
	}
	s = m->stop;
	pthread_mutex_unlock(&m->lock);
	return s;
}

int ipd_slot_of_addr(const struct ipd *m, uint8_t addr)
{
	const struct af_config *cfg = m->env.cfg;

	for (unsigned i = 0; i < cfg->n_blades; i++) {
		if (cfg->blades[i].ipmc == addr)
			return (int)cfg->blades[i].slot;
	}
	return 0;
}

void ipd_learn_names(struct ipd *m, const struct ipd_target *tg)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < tg->n_sensors; i++) {
		const struct ipd_sensor *s = &tg->sensors[i];
		unsigned j;

		for (j = 0; j < m->n_names; j++) {
			if (m->names[j].owner == s->owner && m->names[j].number == s->number)
				break;
		}
		if (j == m->n_names) {
			if (m->n_names == AF_ARRAY_SIZE(m->names))
				continue;
			m->n_names++;
		}
		m->names[j].owner = s->owner;
		m->names[j].number = s->number;
		af_strlcpy(m->names[j].name, s->name, sizeof(m->names[j].name));
	}
	pthread_mutex_unlock(&m->lock);
}

void ipd_name_of(struct ipd *m, uint8_t owner, uint8_t number, char *out, size_t len)
{
	out[0] = '\0';
	pthread_mutex_lock(&m->lock);
	for (unsigned j = 0; j < m->n_names; j++) {
		if (m->names[j].owner == owner && m->names[j].number == number) {
			af_strlcpy(out, m->names[j].name, len);
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
}

/* ---- lifecycle --------------------------------------------------------------- */

static int make_dir(const char *dir)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int start_workers(struct ipd *m)
{
	const struct af_config *cfg = m->env.cfg;
	int rc;

	m->idle_reason[0] = '\0';
	if (m->env.loop == NULL) {
		snprintf(m->idle_reason, sizeof(m->idle_reason), "no main loop");
		return 0;
	}
	if (!cfg->shelf.cred_loaded) {
		snprintf(m->idle_reason, sizeof(m->idle_reason), "no shelf credentials loaded");
		af_warn("ipmi-detect: idle: %s", m->idle_reason);
		return 0;
	}
	rc = make_dir(cfg->daemon.state_dir);
	if (rc < 0)
		af_warn("ipmi-detect: state directory %s: %s (no SDR cache, no SEL position)",
		        cfg->daemon.state_dir, strerror(-rc));
	m->n_targets = 1 + cfg->n_blades;
	m->targets = calloc(m->n_targets, sizeof(*m->targets));
	if (m->targets == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < m->n_targets; i++) {
		struct ipd_target *tg = &m->targets[i];
		char inst[32];

		tg->mod = m;
		if (i == 0) {
			tg->kind = IPD_TARGET_SHMC;
			tg->addr = IPD_SHMC_ADDR;
			tg->slot = 0;
			snprintf(inst, sizeof(inst), "shelf-manager");
		} else {
			const struct af_cfg_blade *b = &cfg->blades[i - 1];

			tg->kind = IPD_TARGET_BLADE;
			tg->addr = (uint8_t)b->ipmc;
			tg->slot = (int)b->slot;
			af_strlcpy(tg->inband, b->inband_device, sizeof(tg->inband));
			snprintf(inst, sizeof(inst), "0x%02x", tg->addr);
		}
		af_fsm_init(&tg->fsm, &ipd_target_fsm, IPD_T_CONNECTING, inst);
		tg->view.slot = tg->slot;
		tg->view.addr = tg->addr;
		af_strlcpy(tg->view.state, af_fsm_state_name(&tg->fsm), sizeof(tg->view.state));
		tg->view.since_ns = af_mono_ns();
	}
	for (unsigned i = 0; i < m->n_targets; i++) {
		rc = pthread_create(&m->targets[i].thread, NULL, ipd_worker, &m->targets[i]);
		if (rc != 0) {
			af_err("ipmi-detect: cannot start a worker: %s", strerror(rc));
			return -rc;
		}
		m->targets[i].started = true;
	}
	af_info("ipmi-detect: watching the shelf manager and %u IPMCs (sensors every %llu ms, "
	        "SEL every %llu ms)",
	        cfg->n_blades, (unsigned long long)cfg->detection.sensor_interval_ms,
	        (unsigned long long)cfg->detection.sel_interval_ms);
	return 0;
}

static void stop_workers(struct ipd *m)
{
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_broadcast(&m->wake);
	pthread_mutex_unlock(&m->lock);
	for (unsigned i = 0; i < m->n_targets; i++) {
		if (m->targets[i].started)
			pthread_join(m->targets[i].thread, NULL);
	}
	free(m->targets);
	m->targets = NULL;
	m->n_targets = 0;
	pthread_mutex_lock(&m->lock);
	m->stop = false;
	pthread_mutex_unlock(&m->lock);
	/* what the workers posted before stopping still goes out */
	if (m->pipe[0] >= 0)
		dispatch(m->pipe[0], POLLIN, m);
}

int ipd_init_with(struct ipd **out, const struct af_module_env *env,
                  const struct ipd_transport_factory *factory)
{
	struct ipd *m;
	int rc;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = af_calloc_resident(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	m->factory = factory ? *factory : freeipmi_factory;
	m->pipe[0] = m->pipe[1] = -1;
	atomic_init(&m->active_shmc, -1);
	atomic_init(&m->shmc_gen, 0);
	pthread_mutex_init(&m->lock, NULL);
	{
		pthread_condattr_t ca;

		/* workers wait on CLOCK_MONOTONIC deadlines */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&m->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	m->queue = af_calloc_resident(IPD_QUEUE_MAX, sizeof(*m->queue));
	if (m->queue == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	if (env->loop != NULL) {
		if (pipe2(m->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
			rc = -errno;
			goto fail;
		}
		rc = qb_loop_poll_add(env->loop, QB_LOOP_HIGH, m->pipe[0], POLLIN, m, dispatch);
		if (rc < 0)
			goto fail;
	}
	rc = start_workers(m);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	ipd_fini(m);
	return rc;
}

int ipd_init(struct ipd **out, const struct af_module_env *env)
{
	return ipd_init_with(out, env, NULL);
}

int ipd_reconfigure(struct ipd *m, const struct af_config *cfg)
{
	const struct af_config *old;
	int rc;

	if (m == NULL || cfg == NULL)
		return -EINVAL;
	old = m->env.cfg;
	stop_workers(m);
	m->env.cfg = cfg;
	pthread_mutex_lock(&m->lock);
	m->n_names = 0;
	pthread_mutex_unlock(&m->lock);
	atomic_store(&m->active_shmc, -1);
	rc = start_workers(m);
	if (rc < 0) {
		/* as promised: the previous configuration goes on */
		stop_workers(m);
		m->env.cfg = old;
		atomic_store(&m->active_shmc, -1);
		if (start_workers(m) < 0)
			stop_workers(m);
	}
	return rc;
}

void ipd_describe(const struct ipd *cm, struct af_module_status *st)
{
	struct ipd *m = (struct ipd *)cm; /* the lock is not part of the value */
	unsigned online = 0;
	uint64_t switchovers;

	st->name = "ipmi-detect";
	if (m == NULL) {
		st->state = "stopped";
		st->detail[0] = '\0';
		return;
	}
	if (m->idle_reason[0]) {
		st->state = "idle";
		snprintf(st->detail, sizeof(st->detail), "%s", m->idle_reason);
		return;
	}
	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->n_targets; i++)
		online += strcmp(m->targets[i].view.state, "ONLINE") == 0;
	switchovers = m->switchovers;
	pthread_mutex_unlock(&m->lock);
	st->state = online == m->n_targets ? "running" : "degraded";
	snprintf(st->detail, sizeof(st->detail),
	         "%u of %u controllers online, %llu events, %llu shelf-manager switchovers", online,
	         m->n_targets, (unsigned long long)m->events_posted,
	         (unsigned long long)switchovers);
}

void ipd_fini(struct ipd *m)
{
	if (m == NULL)
		return;
	stop_workers(m);
	if (m->pipe[0] >= 0) {
		if (m->env.loop != NULL)
			qb_loop_poll_del(m->env.loop, m->pipe[0]);
		close(m->pipe[0]);
		close(m->pipe[1]);
	}
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m->queue);
	af_info("ipmi-detect: stopped");
	free(m);
}

/* ---- views ------------------------------------------------------------------ */

unsigned ipd_sensor_views(struct ipd *m, int slot, struct ipd_sensor_view *out, unsigned max)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->n_targets; i++) {
		const struct ipd_target *tg = &m->targets[i];

		if (slot >= 0 && tg->slot != slot)
			continue;
		for (unsigned j = 0; j < tg->n_sview && n < max; j++)
			out[n++] = tg->sview[j];
	}
	pthread_mutex_unlock(&m->lock);
	return n;
}

unsigned ipd_target_views(struct ipd *m, struct ipd_target_view *out, unsigned max)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->n_targets && n < max; i++)
		out[n++] = m->targets[i].view;
	pthread_mutex_unlock(&m->lock);
	return n;
}

unsigned ipd_sel_recent(struct ipd *m, int slot, struct af_event *out, unsigned max)
{
	unsigned n = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned i = 0; i < m->sel_len; i++) {
		const struct af_event *ev = &m->sel_ring[(m->sel_head + i) % IPD_SEL_RING];

		if (slot >= 0 && ev->blade != slot)
			continue;
		if (n == max) { /* keep the newest: shift */
			memmove(out, out + 1, sizeof(*out) * (max - 1));
			n--;
		}
		out[n++] = *ev;
	}
	pthread_mutex_unlock(&m->lock);
	return n;
}

void ipd_shmc(struct ipd *m, struct ipd_shmc_view *out)
{
	const struct af_config *cfg = m->env.cfg;
	int idx = atomic_load(&m->active_shmc);

	memset(out, 0, sizeof(*out));
	out->active = idx;
	pthread_mutex_lock(&m->lock);
	out->switchovers = m->switchovers;
	pthread_mutex_unlock(&m->lock);
	if (idx >= 0 && (unsigned)idx < cfg->shelf.n_managers) {
		af_strlcpy(out->address, cfg->shelf.managers[idx].address, sizeof(out->address));
		out->port = cfg->shelf.managers[idx].port;
	}
}
