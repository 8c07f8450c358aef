/*
 * The actions behind plan steps: fencing through the daemon's shelf-manager
 * hook, VMs through libvirt (rcv_virt.h), notification through the hook.
 *
 * Every action is idempotent, because a step begun before a crash runs again
 * after the restart: starting a VM that runs is success, stopping one that
 * does not run is success, fencing a blade that is off is success.
 *
 * The one check made here rather than in the planner, because only the
 * latest view can make it: a VM is never started on one blade while another
 * live blade reports it running (the second copy this product must never
 * make). Fencing or stopping it first is the plan's job; if the view still
 * shows it running, the step fails.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "af_log.h"
#include "af_util.h"
#include "rcv_int.h"

static struct rcv_act *act_new(struct rcv *m, const struct rcv_run *r, unsigned i, bool fence)
{
	struct rcv_act *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->m = m;
	a->run = r->id;
	a->step = i;
	a->is_fence = fence;
	a->kind = fence ? RCV_STEP_FENCE : r->plan.steps[i].kind;
	a->blade = r->plan.steps[i].blade;
	af_strlcpy(a->vm, r->plan.steps[i].vm, sizeof(a->vm));
	a->next = m->acts;
	m->acts = a;
	return a;
}

static bool act_unlink(struct rcv *m, struct rcv_act *a)
{
	for (struct rcv_act **p = &m->acts; *p != NULL; p = &(*p)->next) {
		if (*p == a) {
			*p = a->next;
			return true;
		}
	}
	return false;
}

/* The view learns what an action proved at once: the next step must not
 * wait for (or be refused by) a listing that is 500 ms old. */
static void learn(struct rcv *m, const struct rcv_act *a)
{
	switch (a->kind) {
	case RCV_STEP_FENCE:
		m->off[a->blade] = true;
		break;
	case RCV_STEP_STOP_VM:
		rcv_view_vm_state(m, a->blade, a->vm, "shutoff");
		break;
	case RCV_STEP_MIGRATE:
		rcv_view_vm_state(m, a->from, a->vm, "shutoff");
		rcv_view_vm_state(m, a->blade, a->vm, "running");
		break;
	case RCV_STEP_RESTART_VM:
	case RCV_STEP_START_VM:
	case RCV_STEP_PROMOTE:
		rcv_view_vm_state(m, a->blade, a->vm, "running");
		break;
	default:
		break;
	}
}

static void act_done(void *opaque, int rc, const char *msg)
{
	struct rcv_act *a = opaque;
	struct rcv *m = a->m;

	if (!act_unlink(m, a))
		return; /* cancelled */
	if (rc == 0)
		learn(m, a);
	/* the shelf-manager session broke mid-fence (a switchover to the
	 * standby): the fence is tried again, it has not failed */
	if (a->is_fence && (rc == -ECONNRESET || rc == -ENOTCONN))
		rc = -EAGAIN;
	rcv_exec_step_done(&m->exec, a->run, a->step, rc, msg, af_mono_ns());
	free(a);
	rcv_schedule(m);
}

static const char *domain_of(const struct rcv *m, const char *vm)
{
	int i = rcv_vm_index(m, vm);
	const struct af_cfg_vm *v;

	if (i < 0)
		return vm;
	v = &m->env.cfg->vms[i];
	return v->domain[0] ? v->domain : v->name;
}

/* Another live blade says vm runs there: starting it here would make two. */
/* Whether r fenced blade b itself, in this process: its payload is
 * confirmed off, whatever the shelf manager's hot-swap events say yet
 * (they can lag behind the IPMC's own sensor, or arrive again from the
 * other manager's SEL) and whatever b reported before it went. A fence
 * done before a restart is not counted: the blade may be back since. */
static bool fenced_by(const struct rcv_run *r, int b)
{
	for (unsigned k = 0; k < r->plan.n_steps; k++) {
		if (r->plan.steps[k].kind == RCV_STEP_FENCE && r->plan.steps[k].blade == b &&
		    r->st[k] == RCV_ST_DONE && r->t_start[k] != 0)
			return true;
	}
	return false;
}

/* The blade that still reports vm running, other than here and than a
 * blade known off; 0 if none. */
static int running_elsewhere(const struct rcv *m, const struct rcv_run *r, const char *vm, int here)
{
	int i = rcv_vm_index(m, vm);
	int on = i >= 0 ? m->vms[i].running_on : 0;

	if (on == 0 || on == here || m->off[on] || fenced_by(r, on))
		return 0;
	return on;
}

/* A VM whose checkpoint engine runs its QEMU: its steps are orders to the
 * engine on the step's blade, which only that blade's daemon can give (the
 * engine's control socket is local). Promotion is the FT path: the backup
 * goes on from its last committed epoch; forced when the old primary's blade
 * is confirmed off (its link may not have dropped yet). */
static int act_engine(struct rcv *m, const struct rcv_run *r, unsigned i, enum rcv_step_kind kind)
{
	const struct rcv_step *s = &r->plan.steps[i];
	const char *order = kind == RCV_STEP_PROMOTE                                   ? "promote"
	                    : kind == RCV_STEP_START_VM || kind == RCV_STEP_RESTART_VM ? "start"
	                    : kind == RCV_STEP_STOP_VM                                 ? "quit"
	                    : kind == RCV_STEP_RELEASE                                 ? "release"
	                                                                               : NULL;
	int vi = rcv_vm_index(m, s->vm), from, other, rc;
	bool force = false;
	struct rcv_act *a;
	char msg[160];

	if (kind == RCV_STEP_STOP_VM && m->off[s->blade]) {
		rcv_exec_step_done(&m->exec, r->id, i, 0, "its blade is off", af_mono_ns());
		return 0;
	}
	if (order == NULL || m->hooks.engine_order == NULL) {
		snprintf(msg, sizeof(msg), "%s: no checkpoint-engine way to %s it", s->vm,
		         rcv_step_names[kind]);
		rcv_exec_step_done(&m->exec, r->id, i, -ENOTSUP, msg, af_mono_ns());
		return 0;
	}
	if (s->blade != m->local) {
		snprintf(msg, sizeof(msg),
		         "the engine of %s on blade %d takes orders from that "
		         "blade's daemon only",
		         s->vm, s->blade);
		rcv_exec_step_done(&m->exec, r->id, i, -EXDEV, msg, af_mono_ns());
		return 0;
	}
	if (kind != RCV_STEP_STOP_VM && kind != RCV_STEP_RELEASE) {
		other = running_elsewhere(m, r, s->vm, s->blade);
		if (other != 0) {
			snprintf(msg, sizeof(msg), "refused: blade %d still reports %s running",
			         other, s->vm);
			rcv_exec_step_done(&m->exec, r->id, i, -EEXIST, msg, af_mono_ns());
			return 0;
		}
	}
	/* a takeover planned where the backup's state was unknown (by
	 * another blade) says start; the backup here is ready: promote it,
	 * the guest loses nothing. Never after a guest fault (restart-vm):
	 * the backup would replay it. */
	if (kind == RCV_STEP_START_VM && vi >= 0 &&
	    (r->plan.rclass == AF_RC_FAILOVER || r->plan.rclass == AF_RC_FENCE_AND_FAILOVER) &&
	    rcv_view_backup_ready(m, &m->env.cfg->vms[vi])) {
		af_notice("recovery: plan %llu: the hot backup of %s is on this blade: promoted "
		          "instead of started from its disk",
		          (unsigned long long)r->id, s->vm);
		order = "promote";
	}
	if (strcmp(order, "promote") == 0 && vi >= 0) {
		from = m->vms[vi].running_on ? m->vms[vi].running_on : m->vms[vi].last_blade;
		force = from > 0 && from != s->blade && m->off[from];
	}
	a = act_new(m, r, i, false);
	if (a == NULL)
		return -ENOMEM;
	a->is_engine = true;
	af_notice("recovery: plan %llu: order %s%s to the engine of %s on blade %d",
	          (unsigned long long)r->id, order, force ? " (force: old primary off)" : "", s->vm,
	          s->blade);
	rc = m->hooks.engine_order(m->hooks_opaque, s->vm, order, force, act_done, a);
	if (rc < 0) {
		act_unlink(m, a);
		free(a);
	}
	return rc;
}

/* A plan that does something (not only tell the operator, which its
 * fault's own notification did): its start and success are notified. */
static bool plan_acts(const struct rcv_plan *p)
{
	for (unsigned i = 0; i < p->n_steps; i++)
		if (p->steps[i].kind != RCV_STEP_NOTIFY && p->steps[i].kind != RCV_STEP_WAIT_QUORUM)
			return true;
	return false;
}

/* What a plan is about, as the SNMP notifications name it: the blade it
 * fences, else its one VM, else the blade it acts on first (the one whose
 * VMs stop, restart or leave), "shelf" if none. */
static void plan_target(const struct rcv_plan *p, char *buf, size_t len)
{
	const char *vm = NULL;
	bool several = false;
	int blade = 0, dest = 0;

	for (unsigned i = 0; i < p->n_steps; i++) {
		const struct rcv_step *s = &p->steps[i];

		if (s->kind == RCV_STEP_FENCE && s->blade > 0) {
			snprintf(buf, len, "blade %d", s->blade);
			return;
		}
		if (s->vm[0] != '\0' && s->kind != RCV_STEP_RELEASE) {
			several |= vm != NULL && strcmp(vm, s->vm) != 0;
			if (vm == NULL)
				vm = s->vm;
		}
		if (s->blade <= 0)
			continue;
		if (blade == 0 && (s->kind == RCV_STEP_STOP_VM || s->kind == RCV_STEP_RESTART_VM ||
		                   s->kind == RCV_STEP_NOTIFY))
			blade = s->blade;
		if (dest == 0)
			dest = s->blade;
	}
	if (vm != NULL && !several)
		snprintf(buf, len, "vm %s", vm);
	else if (blade > 0 || dest > 0)
		snprintf(buf, len, "blade %d", blade > 0 ? blade : dest);
	else
		snprintf(buf, len, "shelf");
}

/* The first action of a run (not a retry, not an escalation, no earlier
 * step acted): the plan starts. After a daemon restart the plan resumes at
 * its first unfinished step, and starts again (said so). */
static void maybe_started(struct rcv *m, const struct rcv_run *r, unsigned i)
{
	char text[320], target[AF_VM_NAME_MAX + 16];
	bool resumed = false;

	if (m->hooks.notify == NULL || r->t_first[i] != r->t_start[i] || !plan_acts(&r->plan))
		return;
	for (unsigned k = 0; k < i; k++) {
		if (r->t_first[k] != 0)
			return;
		/* done before this process started (a WAIT_QUORUM step done
		 * now has its times) */
		resumed |= r->st[k] == RCV_ST_DONE && r->t_start[k] == 0;
	}
	plan_target(&r->plan, target, sizeof(target));
	snprintf(text, sizeof(text), "plan %llu (%s) started%s: %s", (unsigned long long)r->id,
	         target, resumed ? " again after a restart" : "", r->plan.summary);
	m->hooks.notify(m->hooks_opaque, "recovery-started", text);
}

/* Whether fencing blade in step i of r would act on stale evidence:
 * - a plan made without quorum (it waits for quorum first) acts on what a
 *   minority saw. By the time it may act, the blade it would fence can be
 *   back in the quorate membership (its daemon may not have joined the
 *   group yet) with no fatal fault of it open here: the partition healed,
 *   or this blade was the one cut off, was fenced itself and resumed the
 *   plan from its journal after its repair. Fencing it then would kill a
 *   healthy blade and whatever runs there, the VMs it took over included;
 *   the members that see a fault of it plan their own fence;
 * - a plan resumed from the journal acts on what an earlier run of this
 *   daemon saw. When that was only the blade leaving the membership, it
 *   waited for quorum (rcv_exec) and the evidence is checked again: a
 *   healthy member now carried on meanwhile (the soak: a blade cut off
 *   planned, 4 ms before it heard of its lost quorum, to fence its partner,
 *   was fenced itself, and after its repair fenced the healthy partner).
 *   Other evidence (a SEL record, a sensor) is not questioned: a daemon
 *   killed mid-fence of a blade with a fatal CPU error must finish that
 *   fence although the blade is a member and the new failure model has
 *   not seen the error again (the old run consumed its SEL record);
 * - a plan resumed from the journal or made without quorum that would
 *   fence this very blade: it runs, so it was restarted or repaired since,
 *   or it is back in the quorate membership whose other members see and
 *   plan for a fault that persists (a blade cut off with a fault of its own
 *   planned its own fence, waited for quorum, was fenced by its partner
 *   meanwhile, and after its repair resumed that plan and fenced itself
 *   again). */
static bool stale_fence(const struct rcv *m, const struct rcv_run *r, int blade)
{
	bool minority = false, healthy_member;

	for (unsigned k = 0; k < r->plan.n_steps; k++)
		minority |= r->plan.steps[k].kind == RCV_STEP_WAIT_QUORUM;
	if (blade <= 0 || blade > AF_MAX_BLADES)
		return false;
	if ((r->from_journal || minority) && blade == m->local)
		return true;
	healthy_member = m->node[blade] && !m->off[blade] && m->faulty[blade] == 0;
	if ((minority || (r->from_journal && r->plan.membership_only)) && healthy_member)
		return true;
	return false;
}

static int act(void *opaque, const struct rcv_run *r, unsigned i, enum rcv_step_kind kind)
{
	struct rcv *m = opaque;
	const struct rcv_step *s = &r->plan.steps[i];
	const char *dom = s->vm[0] ? domain_of(m, s->vm) : NULL;
	int vi = s->vm[0] ? rcv_vm_index(m, s->vm) : -1;
	struct rcv_act *a;
	int rc, other;

	maybe_started(m, r, i);
	rcv_view_run_msg(m, r, false);
	if (kind == RCV_STEP_NOTIFY) {
		char text[200];

		snprintf(text, sizeof(text), "plan %llu: %s", (unsigned long long)r->id, s->why);
		if (m->hooks.notify != NULL)
			m->hooks.notify(m->hooks_opaque, "recovery-notify", text);
		rcv_exec_step_done(&m->exec, r->id, i, 0, "operator notified", af_mono_ns());
		return 0;
	}
	if (kind == RCV_STEP_FENCE) {
		if (stale_fence(m, r, s->blade)) {
			char msg[96];

			if (s->blade == m->local)
				snprintf(
				        msg, sizeof(msg),
				        "not fenced: blade %d is this one, running again (a plan from "
				        "before its restart)",
				        s->blade);
			else
				snprintf(
				        msg, sizeof(msg),
				        "not fenced: blade %d is back, a healthy member (planned %s)",
				        s->blade,
				        r->from_journal ? "before this daemon's restart"
				                        : "without quorum");
			rcv_exec_step_done(&m->exec, r->id, i, -ESTALE, msg, af_mono_ns());
			return 0;
		}
		if (m->hooks.fence == NULL)
			return -ENOTSUP;
		a = act_new(m, r, i, true);
		if (a == NULL)
			return -ENOMEM;
		rc = m->hooks.fence(m->hooks_opaque, s->blade, act_done, a);
		if (rc < 0) {
			act_unlink(m, a);
			free(a);
		}
		/* no shelf-manager session yet (a daemon just started, a switchover
		 * in progress): not a failure, try again within the step's time */
		return rc == -ENOTCONN ? -EAGAIN : rc;
	}
	if (vi >= 0 && af_cfg_vm_has_engine(&m->env.cfg->vms[vi]))
		return act_engine(m, r, i, kind);
	if (kind == RCV_STEP_RELEASE) {
		/* a libvirt domain holds no output */
		rcv_exec_step_done(&m->exec, r->id, i, 0, "no held output", af_mono_ns());
		return 0;
	}
	if (m->virt == NULL || dom == NULL)
		return -ENOTSUP;
	if (kind == RCV_STEP_STOP_VM && m->off[s->blade]) {
		rcv_exec_step_done(&m->exec, r->id, i, 0, "its blade is off", af_mono_ns());
		return 0;
	}
	if (kind == RCV_STEP_START_VM || kind == RCV_STEP_PROMOTE) {
		other = running_elsewhere(m, r, s->vm, s->blade);
		if (other != 0) {
			char msg[96];

			snprintf(msg, sizeof(msg), "refused: blade %d still reports %s running",
			         other, s->vm);
			rcv_exec_step_done(&m->exec, r->id, i, -EEXIST, msg, af_mono_ns());
			return 0;
		}
	}
	a = act_new(m, r, i, false);
	if (a == NULL)
		return -ENOMEM;
	switch (kind) {
	case RCV_STEP_STOP_VM:
		rc = rcv_virt_stop(m->virt, s->blade, dom, s->timeout_ms, act_done, a);
		break;
	case RCV_STEP_RESTART_VM:
		if (vi >= 0) {
			struct rcv_vm_view *v = &m->vms[vi];

			if (v->n_restarts == RCV_RESTART_MEMORY) {
				memmove(v->restarts, v->restarts + 1,
				        sizeof(v->restarts[0]) * (RCV_RESTART_MEMORY - 1));
				v->n_restarts--;
			}
			v->restarts[v->n_restarts++] = af_mono_ns();
		}
		rc = rcv_virt_restart(m->virt, s->blade, dom, s->timeout_ms, act_done, a);
		break;
	case RCV_STEP_PROMOTE:
		/* a hot backup without an engine (a libvirt domain): none is
		 * kept, the VM starts from its disk */
		af_notice(
		        "recovery: plan %llu: %s has no checkpoint engine, it starts from its disk",
		        (unsigned long long)r->id, s->vm);
		/* fall through */
	case RCV_STEP_START_VM:
		rc = rcv_virt_start(m->virt, s->blade, dom,
		                    vi >= 0 ? m->env.cfg->vms[vi].definition : NULL, s->timeout_ms,
		                    act_done, a);
		break;
	case RCV_STEP_MIGRATE: {
		int from = vi >= 0 ? (m->vms[vi].running_on ? m->vms[vi].running_on
		                                            : m->vms[vi].last_blade)
		                   : 0;
		const struct af_cfg_blade *b = af_cfg_blade_by_slot(m->env.cfg, (uint32_t)s->blade);

		a->from = from;
		if (from == s->blade) {
			act_unlink(m, a);
			free(a);
			rcv_exec_step_done(&m->exec, r->id, i, 0, "already there", af_mono_ns());
			return 0;
		}
		rc = from ? rcv_virt_migrate(m->virt, from, s->blade, dom,
		                             b && b->migration_uri[0] ? b->migration_uri : NULL,
		                             s->timeout_ms, act_done, a)
		          : -ENOENT;
		break;
	}
	default:
		rc = -ENOTSUP;
		break;
	}
	if (rc < 0) {
		act_unlink(m, a);
		free(a);
	}
	return rc;
}

static void cancel(void *opaque, const struct rcv_run *r, unsigned i)
{
	struct rcv *m = opaque;

	for (struct rcv_act *a = m->acts; a != NULL; a = a->next) {
		if (a->run != r->id || a->step != i)
			continue;
		act_unlink(m, a);
		if (a->is_fence && m->hooks.fence_forget != NULL)
			m->hooks.fence_forget(m->hooks_opaque, a);
		else if (a->is_engine && m->hooks.engine_forget != NULL)
			m->hooks.engine_forget(m->hooks_opaque, a);
		else if (m->virt != NULL)
			rcv_virt_forget(m->virt, a);
		free(a);
		return;
	}
}

static bool quorate(void *opaque)
{
	const struct rcv *m = opaque;

	return m->quorate;
}

static void ended(void *opaque, const struct rcv_run *r)
{
	struct rcv *m = opaque;
	char text[400], target[AF_VM_NAME_MAX + 16];
	bool ok = r->state == RCV_RUN_DONE;

	plan_target(&r->plan, target, sizeof(target));
	if (ok || r->cur >= r->plan.n_steps)
		snprintf(text, sizeof(text), "plan %llu (%s) %s: %s", (unsigned long long)r->id,
		         target, ok ? "succeeded" : "FAILED", r->plan.summary);
	else
		snprintf(text, sizeof(text), "plan %llu (%s) FAILED: %s; step %u (%s%s%s): %s",
		         (unsigned long long)r->id, target, r->plan.summary, r->cur + 1,
		         rcv_step_names[r->plan.steps[r->cur].kind],
		         r->plan.steps[r->cur].vm[0] ? " " : "", r->plan.steps[r->cur].vm,
		         r->msg[r->cur][0] ? r->msg[r->cur] : "no reason given");
	/* a plan that only told the operator neither started nor succeeds */
	if (m->hooks.notify != NULL && (!ok || plan_acts(&r->plan)))
		m->hooks.notify(m->hooks_opaque, ok ? "recovery-succeeded" : "recovery-failed",
		                text);
	rcv_view_run_msg(m, r, false);
	if (r->state == RCV_RUN_DONE) {
		for (unsigned i = 0; i < m->n_pairs; i++) {
			struct rcv_pair *p = &m->pairs[i];

			if (p->fsm.state == RCV_PAIR_TAKEOVER_A ||
			    p->fsm.state == RCV_PAIR_TAKEOVER_B)
				rcv_pair_fire(p, RCV_PE_TAKEOVER_DONE);
		}
	}
	if (m->journal != NULL && m->journal->records > 256 && m->exec.n_runs == 0 &&
	    !m->exec.journal_down && rcv_journal_compact(m->journal) < 0)
		af_warn("recovery: journal compaction failed: it keeps growing until the next one");
	rcv_view_broadcast(m, true);
}

const struct rcv_exec_ops rcv_exec_ops = {
        .act = act,
        .cancel = cancel,
        .quorate = quorate,
        .ended = ended,
        .journal_down = rcv_journal_down,
};

void rcv_acts_drop(struct rcv *m)
{
	while (m->acts != NULL) {
		struct rcv_act *a = m->acts;

		m->acts = a->next;
		if (a->is_fence && m->hooks.fence_forget != NULL)
			m->hooks.fence_forget(m->hooks_opaque, a);
		else if (a->is_engine && m->hooks.engine_forget != NULL)
			m->hooks.engine_forget(m->hooks_opaque, a);
		else if (m->virt != NULL)
			rcv_virt_forget(m->virt, a);
		free(a);
	}
}
