/*
 * recovery: the module. Faults in, plans out, plans carried out; the
 * membership and the cluster view the planner decides on.
 *
 * Who carries a plan out: every daemon watches the whole shelf, so a
 * hardware fault (or a blade leaving the membership) is raised on every
 * blade at once, and only the plan's owner (the partner that takes over)
 * acts on it. A fault only the blade itself can see (a VM that crashed, its
 * hypervisor losing its VMs) is carried out by that blade's daemon, which
 * drives the partner's libvirt for the takeover steps. Either way the
 * executor announces the plan and its progress to the others.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include "rcv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "af_log.h"
#include "af_util.h"
#include "rcv_int.h"

static void exec_timer_fire(void *data);

static void timeouts_from_config(struct rcv *m)
{
	const struct af_cfg_recovery *r = &m->env.cfg->recovery;

	rcv_timeouts_default(&m->timeouts);
	m->timeouts.fence_ms = (uint32_t)m->env.cfg->detection.fence_timeout_ms;
	if (r->quorum_timeout_ms)
		m->timeouts.quorum_ms = (uint32_t)r->quorum_timeout_ms;
	if (r->stop_timeout_ms)
		m->timeouts.stop_ms = (uint32_t)r->stop_timeout_ms;
	if (r->start_timeout_ms)
		m->timeouts.start_ms = (uint32_t)r->start_timeout_ms;
	if (r->migrate_timeout_ms)
		m->timeouts.migrate_ms = (uint32_t)r->migrate_timeout_ms;
	if (r->promote_timeout_ms)
		m->timeouts.promote_ms = (uint32_t)r->promote_timeout_ms;
	m->exec.fence_timeout_ms = m->timeouts.fence_ms;
}

static void pairs_from_config(struct rcv *m)
{
	const struct af_config *cfg = m->env.cfg;

	m->n_pairs = 0;
	for (unsigned i = 0; i < cfg->n_pairs && i < AF_MAX_PAIRS; i++) {
		uint32_t a = cfg->pairs[i].blades[0], b = cfg->pairs[i].blades[1];

		rcv_pair_init(&m->pairs[m->n_pairs++], a < b ? a : b, a < b ? b : a);
	}
}

int rcv_vm_index(const struct rcv *m, const char *name)
{
	for (unsigned i = 0; i < m->env.cfg->n_vms; i++) {
		if (strcmp(m->env.cfg->vms[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

int rcv_vm_by_domain(const struct rcv *m, const char *domain)
{
	for (unsigned i = 0; i < m->env.cfg->n_vms; i++) {
		const struct af_cfg_vm *v = &m->env.cfg->vms[i];

		if (strcmp(v->domain[0] ? v->domain : v->name, domain) == 0)
			return (int)i;
	}
	return -1;
}

unsigned rcv_restarts_recent(const struct rcv_vm_view *v, uint64_t window_ms, uint64_t now)
{
	unsigned n = 0;

	for (unsigned i = 0; i < v->n_restarts; i++) {
		if (now - v->restarts[i] <= window_ms * 1000000ULL)
			n++;
	}
	return n;
}

/* The cluster as this daemon sees it now, for the planner. A blade in
 * maintenance is no takeover target; a VM runs where a blade's libvirt
 * said it runs, else where it last ran. */
void rcv_build_cluster(const struct rcv *m, struct rcv_cluster *c, uint64_t now)
{
	const struct af_config *cfg = m->env.cfg;

	rcv_cluster_from_config(cfg, c);
	c->quorate = m->quorate;
	c->local = m->local;
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		bool maint = m->maint[s] || (m->peers[s].valid && m->peers[s].st.maintenance);

		c->blades[s].member = m->node[s];
		c->blades[s].off = m->off[s];
		c->blades[s].faulty = m->faulty[s] > 0 || maint;
		c->blades[s].hypervisor_down =
		        s == m->local ? !m->libvirt_up && m->virt != NULL
		                      : m->peers[s].valid && !m->peers[s].st.libvirt_up;
	}
	for (unsigned i = 0; i < c->n_vms && i < cfg->n_vms; i++) {
		const struct rcv_vm_view *v = &m->vms[i];

		c->vms[i].blade = v->running_on ? v->running_on : v->last_blade;
		c->vms[i].running = v->running_on != 0;
		c->vms[i].restarts_recent =
		        rcv_restarts_recent(v, cfg->vms[i].restart_window_ms, now);
		c->vms[i].backup_in_sync = rcv_view_backup_ready(m, &cfg->vms[i]);
	}
}

/* ---- the runner's timer ------------------------------------------------------------------ */

void rcv_schedule(struct rcv *m)
{
	uint64_t at, now;

	if (m->env.loop == NULL || !m->exec_ok)
		return;
	at = rcv_exec_next_deadline(&m->exec);
	if (m->exec_timer_on && (at == 0 || at != m->exec_timer_at)) {
		qb_loop_timer_del(m->env.loop, m->exec_timer);
		m->exec_timer_on = false;
	}
	if (at == 0 || m->exec_timer_on)
		return;
	now = af_mono_ns();
	if (qb_loop_timer_add(m->env.loop, QB_LOOP_HIGH, at > now ? at - now : 0, m,
	                      exec_timer_fire, &m->exec_timer) == 0) {
		m->exec_timer_on = true;
		m->exec_timer_at = at;
	} else {
		af_err("recovery: cannot arm the step timer: deadlines wait for the next event");
	}
}

static void exec_timer_fire(void *data)
{
	struct rcv *m = data;

	m->exec_timer_on = false;
	rcv_exec_tick(&m->exec, af_mono_ns());
	rcv_schedule(m);
}

/* ---- faults ------------------------------------------------------------------------------- */

/* Evidence only the blade itself has (its own libvirt): its daemon acts. */
static bool local_evidence(const struct af_fault *f)
{
	return f->layer == AF_LAYER_VM || f->scope == AF_SCOPE_VM ||
	       (f->layer == AF_LAYER_HYPERVISOR && f->rclass != AF_RC_FENCE_AND_FAILOVER);
}

static bool fatal_for_blade(const struct af_fault *f)
{
	return f->severity == AF_SEV_FATAL && f->layer != AF_LAYER_VM &&
	       f->scope != AF_SCOPE_SHELF && f->blade > 0 && f->blade <= AF_MAX_BLADES;
}

/* The daemon that carries a plan out; if that blade has no daemon in the
 * group, the lowest-numbered daemon that has one does, so a notification
 * is never lost. */
static int executor_of(const struct rcv *m, const struct af_fault *f, const struct rcv_plan *p)
{
	int e = local_evidence(f) ? f->blade : p->owner;

	if (e > 0 && e <= AF_MAX_BLADES && (m->daemon[e] || e == m->local))
		return e;
	if (p->n_steps == 1 && p->steps[0].kind == RCV_STEP_NOTIFY) {
		for (int s = 1; s <= AF_MAX_BLADES; s++) {
			if (m->daemon[s])
				return s;
		}
		return m->local;
	}
	return e;
}

static void log_plan(const struct rcv_plan *p, const char *how)
{
	af_notice("recovery: plan for fault %llu (%s): %s", (unsigned long long)p->fault_id, how,
	          p->summary);
	for (unsigned i = 0; i < p->n_steps; i++)
		af_notice("recovery:   %u. %s blade %d%s%s: %s", i + 1,
		          rcv_step_names[p->steps[i].kind], p->steps[i].blade,
		          p->steps[i].vm[0] ? " vm " : "", p->steps[i].vm, p->steps[i].why);
}

/* One fault is one plan: a plan in progress on the same VMs or fencing the
 * same blade already handles it. */
static const struct rcv_run *already(const struct rcv *m, const struct rcv_plan *p)
{
	for (unsigned i = 0; i < p->n_steps; i++) {
		const struct rcv_step *s = &p->steps[i];
		const struct rcv_run *r = NULL;

		if (s->kind == RCV_STEP_FENCE)
			r = rcv_exec_busy(&m->exec, s->blade, NULL);
		else if (s->vm[0] && s->kind != RCV_STEP_NOTIFY)
			r = rcv_exec_busy(&m->exec, s->blade, s->vm);
		if (r != NULL)
			return r;
	}
	return NULL;
}

static bool fences(const struct rcv_plan *p, int blade)
{
	for (unsigned i = 0; i < p->n_steps; i++) {
		if (p->steps[i].kind == RCV_STEP_FENCE && p->steps[i].blade == blade)
			return true;
	}
	return false;
}

/* A plan in progress fences a blade on the membership alone, and p would
 * fence it on other evidence (a SEL record read after the blade left):
 * that evidence is the run's too. */
static void share_evidence(struct rcv *m, const struct rcv_run *busy, const struct rcv_plan *p)
{
	if (!busy->plan.membership_only || p->membership_only)
		return;
	for (unsigned i = 0; i < p->n_steps; i++) {
		if (p->steps[i].kind == RCV_STEP_FENCE && fences(&busy->plan, p->steps[i].blade)) {
			(void)rcv_exec_evidence_found(&m->exec, busy->id, af_mono_ns());
			return;
		}
	}
}

static int run_plan(struct rcv *m, const struct rcv_plan *p, uint64_t *id)
{
	const struct rcv_run *busy = already(m, p);
	uint64_t rid = 0;
	int rc;

	if (busy != NULL) {
		share_evidence(m, busy, p);
		af_notice("recovery: fault %llu is already handled by plan %llu (%s)",
		          (unsigned long long)p->fault_id, (unsigned long long)busy->id,
		          busy->plan.summary);
		if (id != NULL)
			*id = busy->id;
		return -EALREADY;
	}
	rc = rcv_exec_start(&m->exec, p, af_mono_ns(), &rid);
	if (rc < 0) {
		af_err("recovery: plan for fault %llu not started: %s",
		       (unsigned long long)p->fault_id, strerror(-rc));
		return rc;
	}
	if (id != NULL)
		*id = rid;
	if (rcv_exec_find(&m->exec, rid) != NULL)
		rcv_view_run_msg(m, rcv_exec_find(&m->exec, rid), true);
	rcv_schedule(m);
	return 0;
}

static void refused_forget(struct rcv *m, uint64_t fault_id)
{
	for (unsigned i = 0; i < m->n_refused; i++) {
		if (m->refused[i].id == fault_id) {
			memmove(&m->refused[i], &m->refused[i + 1],
			        (m->n_refused - i - 1) * sizeof(m->refused[0]));
			m->n_refused--;
			return;
		}
	}
}

/* The journal refused f's plan: remembered, to be planned again. */
static void refused_keep(struct rcv *m, const struct af_fault *f)
{
	refused_forget(m, f->id);
	if (m->n_refused == RCV_REFUSED_MAX) {
		af_err("recovery: fault %llu: %u refused faults are already waiting for the "
		       "journal: this one will not be planned again by itself",
		       (unsigned long long)f->id, RCV_REFUSED_MAX);
		return;
	}
	m->refused[m->n_refused++] = *f;
}

/* Plans f and carries the plan out if it is this blade's to. */
static void plan_fault(struct rcv *m, const struct af_fault *f)
{
	struct rcv_cluster *c;
	struct rcv_plan *p;
	int who;

	c = calloc(1, sizeof(*c));
	p = calloc(1, sizeof(*p));
	if (c == NULL || p == NULL)
		goto out;
	rcv_build_cluster(m, c, af_mono_ns());
	/* the planner must not pick the failing blade's own partner state from
	 * before this fault: it is counted above */
	if (rcv_plan_fault(c, f, &m->timeouts, p) < 0)
		goto out;
	m->plans++;
	who = executor_of(m, f, p);
	if (m->env.cfg->recovery.mode == AF_RCV_DRY_RUN || !m->exec_ok) {
		log_plan(p, "dry run, not carried out");
		goto out;
	}
	if (who != m->local || m->local == 0) {
		char how[64];

		snprintf(how, sizeof(how), "blade %d carries it out", who);
		log_plan(p, how);
		goto out;
	}
	if (p->owner != m->local && p->owner > 0 && m->daemon[p->owner]) {
		/* only this blade saw it, but the partner takes over: a blade
		 * must not fence itself half-way through its own plan */
		log_plan(p, "handed to the partner");
		rcv_view_request(m, p);
		goto out;
	}
	log_plan(p, "this blade carries it out");
	if (run_plan(m, p, NULL) < 0 && m->exec.journal_down)
		refused_keep(m, f);
out:
	free(c);
	free(p);
}

void rcv_fault_raised(struct rcv *m, const struct af_fault *f)
{
	if (m == NULL || f == NULL)
		return;
	if (fatal_for_blade(f))
		m->faulty[f->blade]++;
	rcv_view_fault(m, f, true);
	plan_fault(m, f);
}

void rcv_fault_updated(struct rcv *m, const struct af_fault *f)
{
	if (m == NULL || f == NULL || f->membership_only)
		return;
	/* fault ids are this process's own: a run resumed from the journal or
	 * handed over by another blade numbers its fault elsewhere, and the
	 * same number here is another fault */
	for (unsigned i = 0; i < m->exec.n_runs; i++) {
		const struct rcv_run *r = m->exec.runs[i];

		if (r->plan.fault_id == f->id && r->plan.membership_only && !r->from_journal &&
		    !r->requested && fences(&r->plan, f->blade))
			(void)rcv_exec_evidence_found(&m->exec, r->id, af_mono_ns());
	}
}

void rcv_fault_cleared(struct rcv *m, const struct af_fault *f)
{
	if (m == NULL || f == NULL)
		return;
	if (fatal_for_blade(f) && m->faulty[f->blade] > 0)
		m->faulty[f->blade]--;
	refused_forget(m, f->id);
	rcv_view_fault(m, f, false);
}

/* Another blade hands us a plan (its own evidence, our takeover). */
void rcv_plan_requested(struct rcv *m, uint32_t from, const struct rcv_plan *p)
{
	uint64_t id = 0;

	if (!m->exec_ok || m->env.cfg->recovery.mode == AF_RCV_DRY_RUN) {
		log_plan(p, "requested by another blade; dry run");
		return;
	}
	af_notice("recovery: blade %u asks this blade to carry out its plan for fault %llu", from,
	          (unsigned long long)p->fault_id);
	log_plan(p, "requested by another blade");
	if (run_plan(m, p, &id) < 0)
		return;
	for (unsigned i = 0; i < m->exec.n_runs; i++) {
		if (m->exec.runs[i]->id == id)
			m->exec.runs[i]->requested = true;
	}
}

void rcv_deliver(struct rcv *m, uint32_t from_slot, const void *buf, size_t len)
{
	if (m == NULL || buf == NULL)
		return;
	rcv_view_deliver(m, from_slot, buf, len);
}

/* ---- membership and events ------------------------------------------------------------- */

static void pair_sides(struct rcv *m)
{
	for (unsigned i = 0; i < m->n_pairs; i++) {
		struct rcv_pair *p = &m->pairs[i];
		bool a = m->node[p->a] && !m->off[p->a], b = m->node[p->b] && !m->off[p->b];

		rcv_pair_side(p, p->a, a);
		rcv_pair_side(p, p->b, b);
		/* no engine yet: with both sides up there are no backups to build */
		if (p->fsm.state == RCV_PAIR_SYNCING)
			rcv_pair_fire(p, RCV_PE_SYNC_DONE);
	}
}

static void stop_local_vms(struct rcv *m, const char *why);
static bool quorum_stopped_any(const struct rcv *m);

void rcv_membership(struct rcv *m, bool quorate, const bool *nodes, const bool *daemons)
{
	bool was = m->quorate, joined = false;

	if (m == NULL || nodes == NULL || daemons == NULL)
		return;
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		if (daemons[s] && !m->daemon[s] && s != m->local)
			joined = true;
		/* what a blade said before it left is stale once it is back: its
		 * new daemon reports afresh */
		if (m->node[s] && !nodes[s] && s != m->local && m->peers[s].valid) {
			af_debug("recovery: blade %d left the membership: its last state is stale",
			         s);
			m->peers[s].valid = false;
		}
		m->node[s] = nodes[s];
		m->daemon[s] = daemons[s];
	}
	m->quorate = quorate;
	if (quorate)
		m->ever_quorate = true;
	if (!quorate)
		m->quorum_back_ns = 0;
	else if (!was && quorum_stopped_any(m))
		m->quorum_back_ns = af_mono_ns();
	rcv_view_refresh(m);
	pair_sides(m);
	if (was && !quorate && m->ever_quorate && m->local != 0) {
		if (m->env.cfg->recovery.no_quorum_policy == AF_NOQ_STOP)
			stop_local_vms(m, "quorum lost (no_quorum_policy stop): this blade may be "
			                  "the minority, its VMs may be taken over elsewhere");
		else
			af_warn("recovery: quorum lost (no_quorum_policy wait): VMs keep running, "
			        "no recovery starts until quorum is back");
	}
	if (m->exec_ok) {
		rcv_exec_tick(&m->exec, af_mono_ns());
		rcv_schedule(m);
	}
	if (joined)
		rcv_view_daemons_changed(m);
	rcv_quorum_resume(m, af_mono_ns());
}

static bool quorum_stopped_any(const struct rcv *m)
{
	for (unsigned i = 0; i < m->env.cfg->n_vms; i++)
		if (m->vms[i].quorum_stopped)
			return true;
	return false;
}

/* Every member's daemon has sent its state since quorum came back: the
 * view knows whether the majority took our VMs over meanwhile. */
static bool members_reported(const struct rcv *m, uint64_t since)
{
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		if (s == m->local || !m->node[s] || !m->daemon[s])
			continue;
		if (!m->peers[s].valid || m->peers[s].rx_ns < since)
			return false;
	}
	return true;
}

void rcv_quorum_resume(struct rcv *m, uint64_t now)
{
	const struct af_config *cfg;
	struct rcv_cluster *c;
	struct rcv_plan *p;

	if (m == NULL || m->quorum_back_ns == 0 || !m->quorate || !m->exec_ok || m->local == 0)
		return;
	if (!members_reported(m, m->quorum_back_ns) &&
	    now - m->quorum_back_ns < RCV_RESUME_SETTLE_NS)
		return;
	m->quorum_back_ns = 0;
	cfg = m->env.cfg;
	c = calloc(1, sizeof(*c));
	p = calloc(1, sizeof(*p));
	if (c == NULL || p == NULL) {
		af_err("recovery: out of memory: the VMs stopped for the lost quorum stay stopped");
		goto out;
	}
	rcv_build_cluster(m, c, now);
	for (unsigned i = 0; i < cfg->n_vms; i++) {
		int rc;

		if (!m->vms[i].quorum_stopped)
			continue;
		m->vms[i].quorum_stopped = false;
		rc = rcv_plan_resume(c, m->local, cfg->vms[i].name, &m->timeouts, p);
		if (rc == -EEXIST) {
			af_notice(
			        "recovery: %s, stopped here when quorum was lost, runs on blade %d "
			        "now: not started again",
			        cfg->vms[i].name, m->vms[i].running_on);
			continue;
		}
		if (rc < 0) {
			af_err("recovery: %s stays stopped: %s", cfg->vms[i].name, strerror(-rc));
			continue;
		}
		af_notice("recovery: quorum is back: %s", p->summary);
		log_plan(p, "quorum back");
		run_plan(m, p, NULL);
	}
out:
	free(c);
	free(p);
}

static void stop_done(void *opaque, int rc, const char *msg)
{
	const char *name = opaque;

	if (rc < 0)
		af_err("recovery: %s could not be stopped: %s", name, msg ? msg : strerror(-rc));
	else
		af_notice("recovery: %s stopped (%s)", name, msg ? msg : "ok");
}

static void stop_local_vms(struct rcv *m, const char *why)
{
	const struct af_config *cfg = m->env.cfg;

	af_warn("recovery: %s", why);
	if (m->hooks.notify != NULL)
		m->hooks.notify(m->hooks_opaque, "quorum-lost", why);
	for (unsigned i = 0; i < cfg->n_vms; i++) {
		const struct af_cfg_vm *v = &cfg->vms[i];
		bool engine = af_cfg_vm_has_engine(v);
		int rc = -ENOTSUP;

		if (m->vms[i].running_on != m->local || (!engine && m->virt == NULL))
			continue;
		af_warn("recovery: stopping %s on this blade: no quorum", v->name);
		/* a VM its checkpoint engine runs is no libvirt domain: the
		 * engine is told to quit (its QEMU with it) */
		if (!engine)
			rc = rcv_virt_stop(m->virt, m->local, v->domain[0] ? v->domain : v->name,
			                   m->timeouts.stop_ms, stop_done, (void *)v->name);
		else if (m->hooks.engine_order != NULL)
			rc = m->hooks.engine_order(m->hooks_opaque, v->name, "quit", false,
			                           stop_done, (void *)v->name);
		if (rc < 0)
			af_err("recovery: cannot stop %s: %s", v->name, strerror(-rc));
		else
			m->vms[i].quorum_stopped = true;
	}
}

static int mstate_of(const char *s)
{
	return s != NULL && s[0] == 'M' && s[1] >= '0' && s[1] <= '7' && s[2] == '\0' ? s[1] - '0'
	                                                                              : -1;
}

void rcv_event(struct rcv *m, const struct af_event *ev)
{
	if (m == NULL || ev == NULL || ev->blade <= 0 || ev->blade > AF_MAX_BLADES)
		return;
	if (ev->kind == AF_EV_HOTSWAP) {
		int to = mstate_of(af_event_get(ev, "to"));
		int from = mstate_of(af_event_get(ev, "from"));
		bool off = to == 0 || to == 1;

		/* M4->M5, M4->M6, M5->M6 while the payload is known off: a
		 * deactivation reported late (the shelf manager's events after
		 * the IPMC's own sensor confirmed a fence's M1), not a blade on
		 * again. Any other way into M5/M6 (from M1 after a reconnect,
		 * from M3, no from at all) says the blade went on meanwhile */
		if (m->off[ev->blade] && (to == 5 || to == 6) && from >= 4 && from <= 6) {
			af_info("recovery: blade %d M%d->M%d ignored: its payload is known off, "
			        "this is a deactivation reported late",
			        ev->blade, from, to);
			return;
		}
		if (to >= 0 && off != m->off[ev->blade]) {
			m->off[ev->blade] = off;
			/* placement ignores an off blade's report; the report itself
			 * is kept (a replayed SEL history also passes through M1) and
			 * dropped only when the blade leaves the membership */
			rcv_view_refresh(m);
			af_info("recovery: blade %d payload %s (%s)", ev->blade, off ? "off" : "on",
			        af_event_get(ev, "to"));
			pair_sides(m);
		}
	}
}

/* ---- operator actions ------------------------------------------------------------------ */

/* The switchover plan of an operator action (vm, or every VM of blade),
 * carried out by this daemon; NULL with *rc and err set when there is none. */
static struct rcv_plan *switch_plan(struct rcv *m, int blade, const char *vm, bool evacuate,
                                    int *rc, char *err, size_t errlen)
{
	struct rcv_cluster *c = NULL;
	struct rcv_plan *p = NULL;

	if (!m->exec_ok || m->local == 0) {
		snprintf(err, errlen, "this daemon carries no plan out (%s)",
		         m->local == 0 ? "observer" : "recovery not running");
		*rc = -EPERM;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	p = calloc(1, sizeof(*p));
	if (c == NULL || p == NULL) {
		*rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rcv_build_cluster(m, c, af_mono_ns());
	*rc = rcv_plan_switchover(c, blade, vm, evacuate, &m->timeouts, p);
	if (*rc < 0) {
		snprintf(err, errlen, "%s: %s", vm ? vm : "blade", strerror(-*rc));
		goto fail;
	}
	p->owner = m->local; /* this daemon carries it out */
	free(c);
	return p;
fail:
	free(c);
	free(p);
	return NULL;
}

/* The plan is only "tell the operator": nothing can move. */
static bool refused(const struct rcv_plan *p, char *err, size_t errlen)
{
	if (p->n_steps != 1 || p->steps[0].kind != RCV_STEP_NOTIFY ||
	    strstr(p->steps[0].why, "runs no VM") != NULL)
		return false;
	snprintf(err, errlen, "%s", p->steps[0].why);
	return true;
}

int rcv_failover(struct rcv *m, const char *target, uint64_t *id, char *err, size_t errlen)
{
	const struct af_cfg_blade *b = NULL;
	struct rcv_plan *p;
	int vi, rc, blade = 0;
	char *end;
	unsigned long n;

	if (m == NULL || target == NULL || err == NULL)
		return -EINVAL;
	vi = rcv_vm_index(m, target);
	if (vi < 0) {
		n = strtoul(target, &end, 10);
		b = (*end == '\0' && n > 0) ? af_cfg_blade_by_slot(m->env.cfg, (uint32_t)n)
		                            : af_cfg_blade_by_host(m->env.cfg, target);
		if (b == NULL) {
			snprintf(err, errlen, "'%s' is neither a configured VM nor a blade",
			         target);
			return -ENOENT;
		}
		blade = (int)b->slot;
	}
	p = switch_plan(m, blade, vi >= 0 ? target : NULL, false, &rc, err, errlen);
	if (p == NULL)
		return rc;
	if (refused(p, err, errlen)) {
		free(p);
		return -EHOSTUNREACH;
	}
	af_notice("recovery: operator switchover of %s", target);
	log_plan(p, "operator request");
	rc = run_plan(m, p, id);
	if (rc < 0)
		snprintf(err, errlen, "%s",
		         rc == -EALREADY ? "a plan for it is already in progress" : strerror(-rc));
	free(p);
	return rc;
}

static void pairs_maintenance(struct rcv *m, int blade, bool on)
{
	for (unsigned i = 0; i < m->n_pairs; i++) {
		struct rcv_pair *pr = &m->pairs[i];

		if (pr->a != (uint32_t)blade && pr->b != (uint32_t)blade)
			continue;
		rcv_pair_fire(pr, !on                        ? RCV_PE_MAINT_OFF
		                  : pr->a == (uint32_t)blade ? RCV_PE_MAINT_A
		                                             : RCV_PE_MAINT_B);
	}
}

int rcv_maintenance(struct rcv *m, int blade, bool on, uint64_t *id, char *err, size_t errlen)
{
	struct rcv_plan *p;
	int rc = 0;

	if (m == NULL || err == NULL || blade <= 0 || blade > AF_MAX_BLADES)
		return -EINVAL;
	if (id != NULL)
		*id = 0;
	if (!on) {
		m->maint[blade] = false;
		pairs_maintenance(m, blade, false);
		af_notice("recovery: blade %d leaves maintenance: it may run VMs again (they move "
		          "back only by 'atca-ftctl failover')",
		          blade);
		rcv_view_broadcast(m, true);
		return 0;
	}
	p = switch_plan(m, blade, NULL, true, &rc, err, errlen);
	if (p == NULL)
		return rc;
	if (refused(p, err, errlen)) {
		free(p);
		return -EHOSTUNREACH;
	}
	m->maint[blade] = true;
	pairs_maintenance(m, blade, true);
	af_notice("recovery: blade %d enters maintenance: evacuating", blade);
	log_plan(p, "maintenance");
	rc = run_plan(m, p, id);
	if (rc < 0)
		snprintf(err, errlen, "%s", strerror(-rc));
	rcv_view_broadcast(m, true);
	free(p);
	return rc;
}

/* ---- the module ------------------------------------------------------------------------ */

static void virt_lifecycle(void *opaque, int blade, const char *domain, const char *event)
{
	struct rcv *m = opaque;
	int vi = rcv_vm_by_domain(m, domain);
	struct af_event ev;

	af_event_init(&ev, AF_SRC_VM, AF_EV_VM_LIFECYCLE, blade,
	              vi >= 0 ? m->env.cfg->vms[vi].name : domain);
	af_event_set(&ev, "event", "%s", event);
	af_event_set(&ev, "domain", "%s", domain);
	if (vi < 0)
		af_event_set(&ev, "configured", "no");
	if (m->env.event_sink != NULL)
		m->env.event_sink(m->env.sink_opaque, &ev);
	rcv_view_broadcast(m, false); /* a fresh list follows */
}

static void virt_conn(void *opaque, int blade, bool up, const char *why)
{
	struct rcv *m = opaque;
	struct af_event ev;

	m->libvirt_up = up;
	af_event_init(&ev, AF_SRC_HYPERVISOR, up ? AF_EV_HYPERVISOR_UP : AF_EV_HYPERVISOR_DOWN,
	              blade, "libvirt");
	if (why != NULL && why[0])
		af_event_set(&ev, "why", "%.60s", why);
	if (m->env.event_sink != NULL)
		m->env.event_sink(m->env.sink_opaque, &ev);
	rcv_view_broadcast(m, true);
}

static const struct rcv_virt_ops virt_ops = {.lifecycle = virt_lifecycle, .conn = virt_conn};

static void journal_timer_fire(void *data);

/* The next try at the journal, RCV_JOURNAL_RETRY_MS from now. */
static void arm_journal_retry(struct rcv *m)
{
	if (qb_loop_timer_add(m->env.loop, QB_LOOP_LOW, RCV_JOURNAL_RETRY_MS * 1000000ULL, m,
	                      journal_timer_fire, &m->journal_timer) == 0)
		m->journal_timer_on = true;
	else
		af_err("recovery: cannot arm the journal retry timer: new plans stay refused "
		       "until a restart");
}

static void journal_timer_fire(void *data)
{
	struct rcv *m = data;
	const char *path = m->journal ? m->journal->path : "?";
	uint64_t refused = m->exec.refused_now;
	char text[640];
	int rc;

	m->journal_timer_on = false;
	rc = rcv_exec_journal_retry(&m->exec);
	if (rc < 0) {
		/* once a minute at warning level: the outage was said loudly */
		if (++m->journal_retries % (60000 / RCV_JOURNAL_RETRY_MS) == 0)
			af_warn("recovery: journal %s still cannot be written (%s): new plans are "
			        "still refused (%llu so far)",
			        path, strerror(-rc), (unsigned long long)refused);
		arm_journal_retry(m);
		return;
	}
	snprintf(text, sizeof(text),
	         "recovery journal %s can be written again after %.1f s: new plans are accepted "
	         "(plans refused meanwhile: %llu)",
	         path, (double)(af_mono_ns() - m->exec.journal_down_ns) / 1e9,
	         (unsigned long long)refused);
	af_notice("recovery: %s", text);
	m->journal_retries = 0;
	if (m->hooks.notify != NULL)
		m->hooks.notify(m->hooks_opaque, "journal-ok", text);
	/* the faults still open whose plans it refused: planned now, against
	 * the cluster as it is now */
	while (m->n_refused > 0 && !m->exec.journal_down) {
		struct af_fault f = m->refused[0];

		refused_forget(m, f.id);
		af_notice("recovery: fault %llu, whose plan the journal refused, is planned again",
		          (unsigned long long)f.id);
		plan_fault(m, &f);
	}
	rcv_view_broadcast(m, true);
}

void rcv_journal_down(void *opaque, int rc)
{
	struct rcv *m = opaque;
	const char *path = m->journal ? m->journal->path : "?";
	char text[640];

	snprintf(text, sizeof(text),
	         "recovery journal %s cannot be written (%s): new recovery plans are REFUSED "
	         "until it can (retried every %u s); plans in progress go on",
	         path, strerror(-rc), RCV_JOURNAL_RETRY_MS / 1000);
	af_err("recovery: %s", text);
	if (m->hooks.notify != NULL)
		m->hooks.notify(m->hooks_opaque, "journal-failed", text);
	m->journal_retries = 0;
	if (!m->journal_timer_on && m->env.loop != NULL)
		arm_journal_retry(m);
}

static int open_journal(struct rcv *m)
{
	char path[AF_CFG_PATH_MAX + 32];
	int rc;

	m->journal = af_calloc_resident(1, sizeof(*m->journal));
	if (m->journal == NULL)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/recovery.journal", m->env.cfg->daemon.state_dir);
	rc = rcv_journal_open(m->journal, path);
	if (rc < 0) {
		af_err("recovery: journal %s: %s: no plan will be carried out", path,
		       strerror(-rc));
		free(m->journal);
		m->journal = NULL;
		return rc;
	}
	m->journal_ok = true;
	if (m->journal->bad_lines)
		af_warn("recovery: journal %s: %u damaged records skipped", path,
		        m->journal->bad_lines);
	if (m->journal->open_compact_rc < 0)
		af_warn("recovery: journal %s: cannot be rewritten (%s): its torn tail was cut off "
		        "instead",
		        path, strerror(-m->journal->open_compact_rc));
	af_info("recovery: journal %s: %u unfinished plans", path, m->journal->n_plans);
	return 0;
}

int rcv_init(struct rcv **out, const struct af_module_env *env)
{
	struct rcv *m;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = af_calloc_resident(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	pairs_from_config(m);
	rcv_view_init(m);
	timeouts_from_config(m);
	*out = m;
	return 0;
}

int rcv_start(struct rcv *m, int local, const struct rcv_hooks *hooks, void *hooks_opaque)
{
	int rc;

	if (m == NULL || local <= 0 || local > AF_MAX_BLADES || m->env.loop == NULL || m->exec_ok)
		return -EINVAL;
	m->local = local;
	if (hooks != NULL)
		m->hooks = *hooks;
	m->hooks_opaque = hooks_opaque;
	rc = open_journal(m);
	if (rc < 0)
		return rc;
	rc = rcv_exec_init(&m->exec, &rcv_exec_ops, m, m->journal, af_mono_ns());
	if (rc < 0)
		return rc;
	m->exec_ok = true;
	timeouts_from_config(m);
	rc = rcv_virt_init(&m->virt, m->env.loop, m->env.cfg, local, &virt_ops, m);
	if (rc < 0) {
		af_err("recovery: libvirt executor: %s", strerror(-rc));
		return rc;
	}
	rcv_view_init(m); /* starts the state timer, now that there is a blade */
	rcv_schedule(m);
	af_notice("recovery: acting for blade %d (%s, no_quorum_policy %s, %u unfinished plans "
	          "resumed)",
	          local, af_rcv_mode_names[m->env.cfg->recovery.mode],
	          af_no_quorum_names[m->env.cfg->recovery.no_quorum_policy], m->exec.n_runs);
	return 0;
}

int rcv_reconfigure(struct rcv *m, const struct af_config *cfg)
{
	const struct af_config *prev;
	struct rcv_vm_view *old;
	int rc;

	if (m == NULL || cfg == NULL)
		return -EINVAL;
	if (m->virt != NULL) {
		rc = rcv_virt_reconfigure(m->virt, cfg);
		if (rc < 0)
			return rc;
	}
	old = malloc(sizeof(m->vms));
	if (old == NULL)
		return -ENOMEM;
	memcpy(old, m->vms, sizeof(m->vms));
	prev = m->env.cfg;
	if (cfg->n_vms != prev->n_vms)
		af_notice("recovery: %u VMs configured (was %u)", cfg->n_vms, prev->n_vms);
	if (cfg->recovery.mode != prev->recovery.mode)
		af_log(AF_SS_RECOVERY,
		       cfg->recovery.mode == AF_RCV_DRY_RUN ? LOG_WARNING : LOG_NOTICE,
		       "recovery: mode %s (was %s)%s", af_rcv_mode_names[cfg->recovery.mode],
		       af_rcv_mode_names[prev->recovery.mode],
		       cfg->recovery.mode == AF_RCV_DRY_RUN
		               ? ": plans are made and logged, none is carried out"
		               : ": plans are carried out");
	m->env.cfg = cfg;
	pairs_from_config(m);
	pair_sides(m);
	rcv_view_init(m);
	/* what is known of a VM (where it runs, its restarts) survives a reload
	 * under its name */
	for (unsigned i = 0; i < cfg->n_vms; i++) {
		for (unsigned k = 0; k < prev->n_vms; k++) {
			if (strcmp(cfg->vms[i].name, prev->vms[k].name) == 0)
				m->vms[i] = old[k];
		}
	}
	free(old);
	timeouts_from_config(m);
	return 0;
}

void rcv_describe(const struct rcv *m, struct af_module_status *st)
{
	st->name = "recovery";
	if (m == NULL) {
		st->state = "stopped";
		st->detail[0] = '\0';
		return;
	}
	if (m->exec_ok && m->exec.journal_down) {
		st->state = "degraded";
		snprintf(st->detail, sizeof(st->detail),
		         "journal cannot be written (%s) for %.0f s: new plans REFUSED (%llu); "
		         "%u in progress",
		         strerror(-m->exec.journal_rc),
		         (double)(af_mono_ns() - m->exec.journal_down_ns) / 1e9,
		         (unsigned long long)m->exec.refused_now, m->exec.n_runs);
		return;
	}
	if (m->env.cfg->recovery.mode == AF_RCV_DRY_RUN || !m->exec_ok) {
		st->state = m->local == 0 ? "observer" : "dry-run";
		snprintf(st->detail, sizeof(st->detail),
		         "%llu plans made and logged, none carried out",
		         (unsigned long long)m->plans);
		return;
	}
	st->state = m->quorate ? "running" : "waiting";
	snprintf(st->detail, sizeof(st->detail),
	         "%s; %u plans in progress, %llu done, %llu failed; libvirt %s",
	         m->quorate ? "quorate" : "NOT quorate: no takeover", m->exec.n_runs,
	         (unsigned long long)m->exec.n_done, (unsigned long long)m->exec.n_failed,
	         m->libvirt_up ? "connected" : "not connected");
}

bool rcv_journal_outage(const struct rcv *m, int *rc, uint64_t *since_ns, uint64_t *refused,
                        const char **path)
{
	if (m == NULL || !m->exec_ok || !m->exec.journal_down)
		return false;
	*rc = m->exec.journal_rc;
	*since_ns = m->exec.journal_down_ns;
	*refused = m->exec.refused_now;
	if (path != NULL)
		*path = m->journal ? m->journal->path : "";
	return true;
}

void rcv_fini(struct rcv *m)
{
	if (m == NULL)
		return;
	if (m->exec_timer_on)
		qb_loop_timer_del(m->env.loop, m->exec_timer);
	if (m->state_timer_on)
		qb_loop_timer_del(m->env.loop, m->state_timer);
	if (m->journal_timer_on)
		qb_loop_timer_del(m->env.loop, m->journal_timer);
	rcv_acts_drop(m);
	rcv_virt_fini(m->virt);
	if (m->exec_ok)
		rcv_exec_fini(&m->exec);
	if (m->journal != NULL) {
		rcv_journal_close(m->journal);
		free(m->journal);
	}
	af_info("recovery: stopped");
	free(m);
}
