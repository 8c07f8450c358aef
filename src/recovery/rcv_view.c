/*
 * The cluster view: where each VM runs (from every blade's own libvirt, as
 * its STATE messages tell), the plans the other daemons carry out, and the
 * JSON views of atca-ftctl.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include <errno.h>
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "af_log.h"
#include "af_util.h"
#include "rcv_int.h"

#define STATE_HEARTBEAT_NS (5 * 1000000000ULL)

static const char *dom_state_name(int st)
{
	switch (st) {
	case VIR_DOMAIN_RUNNING:
		return "running";
	case VIR_DOMAIN_BLOCKED:
		return "blocked";
	case VIR_DOMAIN_PAUSED:
		return "paused";
	case VIR_DOMAIN_SHUTDOWN:
		return "shutdown";
	case VIR_DOMAIN_SHUTOFF:
		return "shutoff";
	case VIR_DOMAIN_CRASHED:
		return "crashed";
	case VIR_DOMAIN_PMSUSPENDED:
		return "suspended";
	default:
		return "unknown";
	}
}

static bool live_state(const char *s)
{
	/* a paused or blocked QEMU still holds the guest: it counts as a copy */
	return strcmp(s, "running") == 0 || strcmp(s, "paused") == 0 || strcmp(s, "blocked") == 0 ||
	       strcmp(s, "shutdown") == 0;
}

/* Two blades report one VM: during a live migration the destination's
 * paused copy is expected; two running copies are the failure this product
 * exists to prevent, logged as critical every time they are seen. */
static bool plan_migrates(const struct rcv_plan *p, const char *vm)
{
	for (unsigned i = 0; i < p->n_steps; i++) {
		if (p->steps[i].kind == RCV_STEP_MIGRATE && strcmp(p->steps[i].vm, vm) == 0)
			return true;
	}
	return false;
}

/* A live migration of vm is under way here or on another blade, or ended
 * a moment ago (the blades' listings lag behind it). */
static bool migration_of(const struct rcv *m, const char *vm, uint64_t now)
{
	for (unsigned i = 0; m->exec_ok && i < m->exec.n_runs; i++) {
		if (plan_migrates(&m->exec.runs[i]->plan, vm))
			return true;
	}
	for (unsigned k = 0; m->exec_ok && k < m->exec.hist_len; k++) {
		const struct rcv_run *r = m->exec.hist[(m->exec.hist_head + k) % RCV_EXEC_HISTORY];

		if (now - r->ended_ns < RCV_MIGRATION_GRACE_NS && plan_migrates(&r->plan, vm))
			return true;
	}
	for (unsigned i = 0; i < RCV_REMOTE_RUNS; i++) {
		const struct rcv_remote_run *r = &m->remote[i];

		if (!r->used || (r->end_ns != 0 && now - r->end_ns >= RCV_MIGRATION_GRACE_NS))
			continue;
		for (unsigned k = 0; k < r->n_migrating; k++) {
			if (strcmp(r->migrating[k], vm) == 0)
				return true;
		}
	}
	return false;
}

static void two_copies(const struct rcv *m, const char *vm, int a, const char *sa, int b,
                       const char *sb, uint64_t now)
{
	bool migrating =
	        strcmp(sa, "paused") == 0 || strcmp(sb, "paused") == 0 || migration_of(m, vm, now);

	af_log(AF_LOG_SS, migrating ? LOG_INFO : LOG_CRIT,
	       "recovery: VM %s reported %s on blade %d and %s on blade %d%s", vm, sa, a, sb, b,
	       migrating ? " (a live migration)" : ": TWO COPIES");
}

/* Recomputes where each VM runs from every usable STATE. Two blades that
 * both report one VM live is the failure this product exists to prevent:
 * it is logged as critical every time it is seen. */
static void placement(struct rcv *m)
{
	const struct af_config *cfg = m->env.cfg;
	uint64_t now = af_mono_ns();

	for (unsigned i = 0; i < cfg->n_vms; i++) {
		struct rcv_vm_view *v = &m->vms[i];
		int on = 0;

		v->state[0] = '\0';
		for (int s = 1; s <= AF_MAX_BLADES; s++) {
			const struct rcv_peer *p = &m->peers[s];

			if (!p->valid || m->off[s] || (s != m->local && !m->node[s]))
				continue;
			for (unsigned k = 0; k < p->st.n_vms; k++) {
				bool live;

				if (strcmp(p->st.vms[k].name, cfg->vms[i].name) != 0)
					continue;
				live = live_state(p->st.vms[k].state);
				if (v->learned_blade == s && now - v->learned_ns < RCV_LEARN_NS)
					live = v->learned_live;
				if (!live) {
					if (on == 0)
						af_strlcpy(v->state, p->st.vms[k].state,
						           sizeof(v->state));
					continue;
				}
				if (on != 0 && on != s)
					two_copies(m, cfg->vms[i].name, on, v->state, s,
					           p->st.vms[k].state, now);
				on = s;
				af_strlcpy(v->state, p->st.vms[k].state, sizeof(v->state));
			}
		}
		if (on != v->running_on)
			af_info("recovery: VM %s %s%d", cfg->vms[i].name,
			        on ? "runs on blade " : "no longer runs anywhere; last blade ",
			        on              ? on
			        : v->running_on ? v->running_on
			                        : v->last_blade);
		v->running_on = on;
		if (on != 0)
			v->last_blade = on;
	}
}

static void list_done(void *opaque, int rc, const struct rcv_virt_dom *d, unsigned n)
{
	struct rcv *m = opaque;

	m->list_pending = false;
	if (rc < 0)
		return; /* the connection callback says why */
	rcv_view_local_list(m, d, n);
}

static bool engine_state(const struct rcv *m, const struct af_cfg_vm *v, char *state, size_t len);

/* A checkpointed VM whose primary runs on the partner blade needs its
 * backup here: after a repair this blade's daemon is a new one, which never
 * saw the old backup engine die. Only when acting (not a dry run), quorate,
 * this blade not in maintenance, and no plan in progress. */
static void backups_wanted(struct rcv *m)
{
	const struct af_config *cfg = m->env.cfg;
	char state[16];

	if (m->hooks.engine_backup_wanted == NULL || !m->exec_ok || !m->quorate ||
	    cfg->recovery.mode == AF_RCV_DRY_RUN || m->maint[m->local] || m->exec.n_runs != 0)
		return;
	for (unsigned i = 0; i < cfg->n_vms; i++) {
		const struct af_cfg_vm *v = &cfg->vms[i];
		int home = (int)v->blade, partner = (int)af_cfg_partner(cfg, v->blade);
		int on = m->vms[i].running_on;

		if (!af_cfg_vm_has_engine(v) || partner == 0 || on == 0 || on == m->local ||
		    (m->local != home && m->local != partner) || (on != home && on != partner) ||
		    engine_state(m, v, state, sizeof(state)))
			continue;
		m->hooks.engine_backup_wanted(m->hooks_opaque, v->name);
	}
}

static void state_timer_fire(void *data)
{
	struct rcv *m = data;
	uint64_t ms = m->env.cfg->detection.hypervisor_interval_ms;

	m->state_timer_on = false;
	backups_wanted(m);
	rcv_quorum_resume(m, af_mono_ns());
	if (m->virt != NULL && !m->list_pending &&
	    rcv_virt_list(m->virt, m->local, list_done, m) == 0)
		m->list_pending = true;
	if (m->virt != NULL && !m->libvirt_up)
		rcv_view_broadcast(m, false);
	if (qb_loop_timer_add(m->env.loop, QB_LOOP_LOW, (ms ? ms : 1000) * 1000000ULL, m,
	                      state_timer_fire, &m->state_timer) == 0)
		m->state_timer_on = true;
}

void rcv_view_init(struct rcv *m)
{
	const struct af_config *cfg = m->env.cfg;

	memset(m->vms, 0, sizeof(m->vms));
	for (unsigned i = 0; i < cfg->n_vms; i++)
		m->vms[i].last_blade = (int)cfg->vms[i].blade;
	placement(m);
	if (!m->state_timer_on && m->local != 0 && m->env.loop != NULL &&
	    qb_loop_timer_add(m->env.loop, QB_LOOP_LOW, 0, m, state_timer_fire, &m->state_timer) ==
	            0)
		m->state_timer_on = true;
}

void rcv_view_refresh(struct rcv *m)
{
	placement(m);
}

void rcv_view_vm_state(struct rcv *m, int blade, const char *vm, const char *state)
{
	struct rcv_msg_state *st;
	unsigned k;
	int vi;

	if (blade <= 0 || blade > AF_MAX_BLADES || vm == NULL || vm[0] == '\0')
		return;
	st = &m->peers[blade].st;
	for (k = 0; k < st->n_vms && strcmp(st->vms[k].name, vm) != 0; k++)
		;
	if (k == st->n_vms) {
		if (k == RCV_MAX_VMS)
			return;
		st->n_vms++;
		af_strlcpy(st->vms[k].name, vm, sizeof(st->vms[k].name));
	}
	af_strlcpy(st->vms[k].state, state, sizeof(st->vms[k].state));
	m->peers[blade].valid = true;
	vi = rcv_vm_index(m, vm);
	if (vi >= 0) {
		m->vms[vi].learned_blade = blade;
		m->vms[vi].learned_live = live_state(state);
		m->vms[vi].learned_ns = af_mono_ns();
	}
	placement(m);
}

/* What the engine of v on this blade last said; false: no engine here. */
static bool engine_state(const struct rcv *m, const struct af_cfg_vm *v, char *state, size_t len)
{
	return af_cfg_vm_has_engine(v) && m->hooks.engine_state != NULL &&
	       m->hooks.engine_state(m->hooks_opaque, v->name, state, len) == 0;
}

bool rcv_view_backup_ready(const struct rcv *m, const struct af_cfg_vm *v)
{
	char state[16];

	return engine_state(m, v, state, sizeof(state)) &&
	       (strcmp(state, "standby") == 0 || strcmp(state, "orphaned") == 0);
}

/* What the engine of v here says, as a libvirt state for the cluster: a
 * primary engine holds the guest (running; paused while it promotes); a
 * backup holds no live copy and is not listed. NULL: not listed. */
static const char *engine_vm_state(const struct rcv *m, const struct af_cfg_vm *v)
{
	static const char *const primary[] = {"booting", "unprotected", "syncing", "protected"};
	char state[16];

	if (!engine_state(m, v, state, sizeof(state)))
		return NULL;
	for (size_t k = 0; k < AF_ARRAY_SIZE(primary); k++)
		if (strcmp(state, primary[k]) == 0)
			return "running";
	return strcmp(state, "promoting") == 0 ? "paused" : NULL;
}

void rcv_view_local_list(struct rcv *m, const struct rcv_virt_dom *d, unsigned n)
{
	struct rcv_peer *me = &m->peers[m->local];
	struct rcv_msg_state *st = &me->st;

	st->n_vms = 0;
	for (unsigned i = 0; i < n && st->n_vms < RCV_MAX_VMS; i++) {
		int vi = rcv_vm_by_domain(m, d[i].name);

		if (vi < 0)
			continue; /* not ours to manage */
		af_strlcpy(st->vms[st->n_vms].name, m->env.cfg->vms[vi].name,
		           sizeof(st->vms[0].name));
		af_strlcpy(st->vms[st->n_vms].state, dom_state_name(d[i].state),
		           sizeof(st->vms[0].state));
		st->n_vms++;
	}
	/* the engines' guests are no libvirt domains: their engines say */
	for (unsigned vi = 0; vi < m->env.cfg->n_vms && st->n_vms < RCV_MAX_VMS; vi++) {
		const char *es = engine_vm_state(m, &m->env.cfg->vms[vi]);

		if (es == NULL)
			continue;
		af_strlcpy(st->vms[st->n_vms].name, m->env.cfg->vms[vi].name,
		           sizeof(st->vms[0].name));
		af_strlcpy(st->vms[st->n_vms].state, es, sizeof(st->vms[0].state));
		st->n_vms++;
	}
	me->valid = true;
	me->rx_ns = af_mono_ns();
	placement(m);
	rcv_view_broadcast(m, false);
}

static void fill_state(struct rcv *m, struct rcv_msg_state *st)
{
	st->libvirt_up = m->libvirt_up;
	st->maintenance = m->maint[m->local];
	st->quorate = m->quorate;
	st->n_runs = 0;
	for (unsigned i = 0; m->exec_ok && i < m->exec.n_runs && i < RCV_MSG_MAX_RUNS; i++) {
		const struct rcv_run *r = m->exec.runs[i];
		struct rcv_msg_run *o = &st->runs[st->n_runs++];

		o->id = r->id;
		af_strlcpy(o->state, rcv_run_state_names[r->state], sizeof(o->state));
		o->step = r->cur;
		o->n_steps = r->plan.n_steps;
		af_strlcpy(o->summary, r->plan.summary, sizeof(o->summary));
	}
	st->n_faults = m->n_local_faults;
	memcpy(st->faults, m->local_faults, sizeof(st->faults));
}

/* Encodes msg as this blade's next message (the sequence is taken only
 * when it is sent). */
static int encode_next(struct rcv *m, struct rcv_msg *msg, char *buf, size_t len)
{
	int n;

	msg->sender = (uint32_t)m->local;
	msg->seq = m->tx_seq + 1;
	n = rcv_msg_encode(msg, buf, len);
	if (n < 0)
		af_err("recovery: cannot encode a %s message: %s", rcv_msg_type_names[msg->type],
		       strerror(-n));
	return n;
}

static int send_bytes(struct rcv *m, const char *buf, int n)
{
	if (m->hooks.send(m->hooks_opaque, buf, (size_t)n) < 0) {
		m->tx_fail++;
		return -EAGAIN;
	}
	m->tx_seq++;
	return n;
}

static int send_msg(struct rcv *m, struct rcv_msg *msg, char *buf, size_t len)
{
	int n;

	if (m->hooks.send == NULL || m->local == 0)
		return -ENOTCONN;
	n = encode_next(m, msg, buf, len);
	return n < 0 ? n : send_bytes(m, buf, n);
}

void rcv_view_broadcast(struct rcv *m, bool force)
{
	struct rcv_msg *msg;
	char *buf;
	uint64_t now = af_mono_ns();
	size_t body;
	int n;

	if (m->local == 0 || m->hooks.send == NULL)
		return;
	msg = calloc(1, sizeof(*msg));
	buf = malloc(RCV_MSG_MAX);
	if (msg == NULL || buf == NULL)
		goto out;
	msg->type = RCV_MSG_STATE;
	msg->u.state = m->peers[m->local].st;
	fill_state(m, &msg->u.state);
	m->peers[m->local].st = msg->u.state;
	/* encoded once: its body (the header's sequence always changes) is
	 * compared with the last one sent, and the same bytes are sent */
	n = encode_next(m, msg, buf, RCV_MSG_MAX);
	if (n < 0)
		goto out;
	body = (size_t)n - RCV_MSG_HDR;
	if (!force && now - m->last_state_ns < STATE_HEARTBEAT_NS &&
	    body < sizeof(m->last_state_sent) &&
	    memcmp(m->last_state_sent, buf + RCV_MSG_HDR, body) == 0 &&
	    m->last_state_sent[body] == '\0')
		goto out;
	if (send_bytes(m, buf, n) > 0) {
		if (body >= sizeof(m->last_state_sent))
			body = 0;
		memcpy(m->last_state_sent, buf + RCV_MSG_HDR, body);
		m->last_state_sent[body] = '\0';
		m->last_state_ns = now;
	}
out:
	free(msg);
	free(buf);
}

void rcv_view_daemons_changed(struct rcv *m)
{
	/* a daemon (re)joined: it knows nothing yet */
	rcv_view_broadcast(m, true);
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		if (!m->daemon[s] && s != m->local && m->peers[s].valid && !m->node[s])
			m->peers[s].valid = false;
	}
}

void rcv_view_run_msg(struct rcv *m, const struct rcv_run *r, bool plan)
{
	struct rcv_msg *msg = calloc(1, sizeof(*msg));
	char *buf = malloc(RCV_MSG_MAX);

	if (msg == NULL || buf == NULL)
		goto out;
	if (plan) {
		msg->type = RCV_MSG_PLAN;
		msg->u.plan.id = r->id;
		msg->u.plan.plan = r->plan;
	} else {
		struct rcv_msg_progress *p = &msg->u.progress;
		unsigned cur = r->cur < r->plan.n_steps ? r->cur : r->plan.n_steps - 1;

		msg->type = RCV_MSG_PROGRESS;
		p->id = r->id;
		p->step = cur;
		af_strlcpy(p->step_state,
		           r->st[cur] == RCV_ST_DONE     ? "done"
		           : r->st[cur] == RCV_ST_FAILED ? "failed"
		                                         : "started",
		           sizeof(p->step_state));
		af_strlcpy(p->run_state, rcv_run_state_names[r->state], sizeof(p->run_state));
		af_strlcpy(p->msg, r->msg[cur], sizeof(p->msg));
	}
	(void)send_msg(m, msg, buf, RCV_MSG_MAX);
out:
	free(msg);
	free(buf);
}

void rcv_view_request(struct rcv *m, const struct rcv_plan *p)
{
	struct rcv_msg *msg = calloc(1, sizeof(*msg));
	char *buf = malloc(RCV_MSG_MAX);

	if (msg == NULL || buf == NULL)
		goto out;
	msg->type = RCV_MSG_PLAN;
	msg->u.plan.id = p->fault_id ? p->fault_id : 1;
	msg->u.plan.plan = *p;
	if (send_msg(m, msg, buf, RCV_MSG_MAX) < 0)
		af_err("recovery: plan for fault %llu could not be handed to blade %d: not carried "
		       "out",
		       (unsigned long long)p->fault_id, p->owner);
out:
	free(msg);
	free(buf);
}

static struct rcv_remote_run *remote_slot(struct rcv *m, uint32_t origin, uint64_t id)
{
	struct rcv_remote_run *oldest = &m->remote[0];

	for (unsigned i = 0; i < RCV_REMOTE_RUNS; i++) {
		struct rcv_remote_run *r = &m->remote[i];

		if (r->used && r->origin == origin && r->id == id)
			return r;
	}
	for (unsigned i = 0; i < RCV_REMOTE_RUNS; i++) {
		if (!m->remote[i].used)
			return &m->remote[i];
		if (m->remote[i].rx_ns < oldest->rx_ns)
			oldest = &m->remote[i];
	}
	return oldest;
}

void rcv_view_deliver(struct rcv *m, uint32_t from, const void *buf, size_t len)
{
	struct rcv_msg *msg = calloc(1, sizeof(*msg));
	struct rcv_remote_run *rr;
	char why[160];
	int rc;

	if (msg == NULL)
		return;
	rc = rcv_msg_decode(buf, len, from, msg, why, sizeof(why));
	if (rc < 0) {
		m->rx_bad++;
		af_warn("recovery: cluster message of %zu bytes from node %u dropped: %s", len,
		        from, why);
		goto out;
	}
	if (msg->sender == (uint32_t)m->local)
		goto out; /* our own, back through CPG */
	if (msg->seq != 0 && msg->seq == m->last_seq[msg->sender]) {
		af_debug("recovery: duplicate message %llu from blade %u dropped",
		         (unsigned long long)msg->seq, msg->sender);
		goto out;
	}
	m->last_seq[msg->sender] = msg->seq;
	m->rx_ok++;
	switch (msg->type) {
	case RCV_MSG_STATE:
		af_debug("recovery: state of blade %u (seq %llu): %u VMs, libvirt %s%s",
		         msg->sender, (unsigned long long)msg->seq, msg->u.state.n_vms,
		         msg->u.state.libvirt_up ? "up" : "down",
		         m->node[msg->sender] ? "" : " (not yet in the membership)");
		m->peers[msg->sender].valid = true;
		m->peers[msg->sender].rx_ns = af_mono_ns();
		m->peers[msg->sender].seq = msg->seq;
		m->peers[msg->sender].st = msg->u.state;
		placement(m);
		break;
	case RCV_MSG_PLAN:
		if (msg->u.plan.plan.owner != (int)msg->sender) {
			/* a request: the owner carries it out */
			if (msg->u.plan.plan.owner == m->local)
				rcv_plan_requested(m, msg->sender, &msg->u.plan.plan);
			break;
		}
		rr = remote_slot(m, msg->sender, msg->u.plan.id);
		memset(rr, 0, sizeof(*rr));
		rr->used = true;
		rr->origin = msg->sender;
		rr->id = msg->u.plan.id;
		af_strlcpy(rr->summary, msg->u.plan.plan.summary, sizeof(rr->summary));
		rr->n_steps = msg->u.plan.plan.n_steps;
		af_strlcpy(rr->state, "running", sizeof(rr->state));
		rr->rx_ns = af_mono_ns();
		for (unsigned i = 0; i < msg->u.plan.plan.n_steps && rr->n_migrating < 8; i++) {
			const struct rcv_step *st = &msg->u.plan.plan.steps[i];

			if (st->kind == RCV_STEP_MIGRATE)
				af_strlcpy(rr->migrating[rr->n_migrating++], st->vm,
				           sizeof(rr->migrating[0]));
		}
		af_notice("recovery: blade %u carries out plan %llu: %s", msg->sender,
		          (unsigned long long)rr->id, rr->summary);
		break;
	default:
		rr = remote_slot(m, msg->sender, msg->u.progress.id);
		if (!rr->used || rr->id != msg->u.progress.id || rr->origin != msg->sender) {
			memset(rr, 0, sizeof(*rr));
			rr->used = true;
			rr->origin = msg->sender;
			rr->id = msg->u.progress.id;
		}
		rr->step = msg->u.progress.step;
		af_strlcpy(rr->state, msg->u.progress.run_state, sizeof(rr->state));
		rr->rx_ns = af_mono_ns();
		if (rr->end_ns == 0 &&
		    (strcmp(rr->state, "done") == 0 || strcmp(rr->state, "failed") == 0))
			rr->end_ns = rr->rx_ns;
		af_info("recovery: blade %u plan %llu step %u %s (%s)%s%s", msg->sender,
		        (unsigned long long)rr->id, rr->step + 1, msg->u.progress.step_state,
		        rr->state, msg->u.progress.msg[0] ? ": " : "", msg->u.progress.msg);
		break;
	}
out:
	free(msg);
}

void rcv_view_fault(struct rcv *m, const struct af_fault *f, bool open)
{
	char line[96], target[64];
	unsigned i;

	af_fault_target(f, target, sizeof(target));
	snprintf(line, sizeof(line), "%llu %s %s", (unsigned long long)f->id, f->rule, target);
	for (i = 0; i < m->n_local_faults; i++) {
		if (strtoull(m->local_faults[i], NULL, 10) == f->id)
			break;
	}
	if (open && i == m->n_local_faults && i < RCV_MSG_MAX_FAULTS)
		af_strlcpy(m->local_faults[m->n_local_faults++], line, sizeof(line));
	if (!open && i < m->n_local_faults) {
		memmove(m->local_faults[i], m->local_faults[i + 1],
		        sizeof(m->local_faults[0]) * (m->n_local_faults - i - 1));
		m->n_local_faults--;
	}
}

/* ---- JSON views -------------------------------------------------------------------------- */

json_object *rcv_pairs_json(struct rcv *m)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; m != NULL && i < m->n_pairs; i++) {
		const struct rcv_pair *p = &m->pairs[i];
		json_object *o = json_object_new_object();
		char name[32];
		bool derived = false;

		for (unsigned k = 0; k < m->env.cfg->n_pairs; k++) {
			const struct af_cfg_pair *c = &m->env.cfg->pairs[k];

			if ((c->blades[0] == p->a && c->blades[1] == p->b) ||
			    (c->blades[0] == p->b && c->blades[1] == p->a))
				derived = c->derived;
		}
		snprintf(name, sizeof(name), "%u+%u", p->a, p->b);
		json_object_object_add(o, "name", json_object_new_string(name));
		json_object_object_add(o, "a", json_object_new_int((int)p->a));
		json_object_object_add(o, "b", json_object_new_int((int)p->b));
		json_object_object_add(o, "state",
		                       json_object_new_string(af_fsm_state_name(&p->fsm)));
		json_object_object_add(o, "protected",
		                       json_object_new_boolean(rcv_pair_protected(p)));
		json_object_object_add(o, "runs_all",
		                       json_object_new_int((int)rcv_pair_runs_all(p)));
		json_object_object_add(o, "derived", json_object_new_boolean(derived));
		json_object_object_add(o, "a_member", json_object_new_boolean(m->node[p->a]));
		json_object_object_add(o, "b_member", json_object_new_boolean(m->node[p->b]));
		json_object_object_add(o, "a_maintenance", json_object_new_boolean(m->maint[p->a]));
		json_object_object_add(o, "b_maintenance", json_object_new_boolean(m->maint[p->b]));
		json_object_array_add(a, o);
	}
	return a;
}

json_object *rcv_vms_json(struct rcv *m)
{
	json_object *a = json_object_new_array();
	uint64_t now = af_mono_ns();

	for (unsigned i = 0; m != NULL && i < m->env.cfg->n_vms; i++) {
		const struct af_cfg_vm *c = &m->env.cfg->vms[i];
		const struct rcv_vm_view *v = &m->vms[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(c->name));
		json_object_object_add(o, "domain",
		                       json_object_new_string(c->domain[0] ? c->domain : c->name));
		json_object_object_add(o, "home", json_object_new_int((int)c->blade));
		json_object_object_add(o, "protection",
		                       json_object_new_string(af_protection_names[c->protection]));
		json_object_object_add(o, "running_on",
		                       v->running_on ? json_object_new_int(v->running_on) : NULL);
		json_object_object_add(o, "last_blade", json_object_new_int(v->last_blade));
		json_object_object_add(o, "state",
		                       json_object_new_string(v->state[0] ? v->state : "unknown"));
		json_object_object_add(o, "restarts_recent",
		                       json_object_new_int((int)rcv_restarts_recent(
		                               v, c->restart_window_ms, now)));
		json_object_object_add(o, "max_restarts",
		                       json_object_new_int((int)c->max_restarts));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *run_json(const struct rcv_run *r, uint64_t now)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "id", json_object_new_int64((int64_t)r->id));
	json_object_object_add(o, "fault", json_object_new_int64((int64_t)r->plan.fault_id));
	json_object_object_add(o, "class", json_object_new_string(af_rclass_names[r->plan.rclass]));
	json_object_object_add(
	        o, "evidence",
	        json_object_new_string(r->plan.membership_only ? "membership" : "events"));
	json_object_object_add(o, "summary", json_object_new_string(r->plan.summary));
	json_object_object_add(o, "state", json_object_new_string(rcv_run_state_names[r->state]));
	json_object_object_add(o, "step", json_object_new_int((int)r->cur));
	json_object_object_add(o, "n_steps", json_object_new_int((int)r->plan.n_steps));
	json_object_object_add(o, "age_ms",
	                       json_object_new_double((double)(now - r->started_ns) / 1e6));
	json_object_object_add(
	        o, "elapsed_ms",
	        json_object_new_double((double)((r->ended_ns ? r->ended_ns : now) - r->started_ns) /
	                               1e6));
	for (unsigned i = 0; i < r->plan.n_steps; i++) {
		const struct rcv_step *s = &r->plan.steps[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "kind", json_object_new_string(rcv_step_names[s->kind]));
		json_object_object_add(j, "blade", json_object_new_int(s->blade));
		json_object_object_add(j, "vm", s->vm[0] ? json_object_new_string(s->vm) : NULL);
		json_object_object_add(j, "state",
		                       json_object_new_string(rcv_step_state_names[r->st[i]]));
		json_object_object_add(
		        j, "ms",
		        r->t_end[i] && r->t_start[i]
		                ? json_object_new_double((double)(r->t_end[i] - r->t_start[i]) /
		                                         1e6)
		                : NULL);
		json_object_object_add(j, "why", json_object_new_string(s->why));
		json_object_object_add(j, "result", json_object_new_string(r->msg[i]));
		json_object_array_add(a, j);
	}
	json_object_object_add(o, "steps", a);
	return o;
}

json_object *rcv_plans_json(struct rcv *m, unsigned count)
{
	json_object *o = json_object_new_object(), *act = json_object_new_array(),
	            *rec = json_object_new_array(), *rem = json_object_new_array();
	uint64_t now = af_mono_ns();

	if (count == 0)
		count = 10;
	for (unsigned i = 0; m != NULL && m->exec_ok && i < m->exec.n_runs; i++)
		json_object_array_add(act, run_json(m->exec.runs[i], now));
	for (unsigned k = 0; m != NULL && m->exec_ok && k < m->exec.hist_len && k < count; k++) {
		unsigned idx = (m->exec.hist_head + m->exec.hist_len - 1 - k) % RCV_EXEC_HISTORY;

		json_object_array_add(rec, run_json(m->exec.hist[idx], now));
	}
	for (unsigned i = 0; m != NULL && i < RCV_REMOTE_RUNS; i++) {
		const struct rcv_remote_run *r = &m->remote[i];
		json_object *j;

		if (!r->used)
			continue;
		j = json_object_new_object();
		json_object_object_add(j, "blade", json_object_new_int((int)r->origin));
		json_object_object_add(j, "id", json_object_new_int64((int64_t)r->id));
		json_object_object_add(j, "summary", json_object_new_string(r->summary));
		json_object_object_add(j, "state", json_object_new_string(r->state));
		json_object_object_add(j, "step", json_object_new_int((int)r->step));
		json_object_object_add(j, "n_steps", json_object_new_int((int)r->n_steps));
		json_object_object_add(j, "age_ms",
		                       json_object_new_double((double)(now - r->rx_ns) / 1e6));
		json_object_array_add(rem, j);
	}
	json_object_object_add(o, "active", act);
	json_object_object_add(o, "recent", rec);
	json_object_object_add(o, "remote", rem);
	json_object_object_add(
	        o, "mode",
	        json_object_new_string(m ? af_rcv_mode_names[m->env.cfg->recovery.mode]
	                                 : "stopped"));
	json_object_object_add(o, "quorate", json_object_new_boolean(m && m->quorate));
	return o;
}
