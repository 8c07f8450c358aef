/*
 * recovery planner: see rcv_plan.h. Each recovery class has one function;
 * the safety rules live in takeover(), the only place that starts VMs
 * away from their blade.
 */
#include "config.h"

#include "rcv_plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "af_util.h"

const char *const rcv_step_names[RCV_STEP_COUNT] = {
        [RCV_STEP_WAIT_QUORUM] = "wait-quorum", [RCV_STEP_FENCE] = "fence",
        [RCV_STEP_STOP_VM] = "stop-vm",         [RCV_STEP_RESTART_VM] = "restart-vm",
        [RCV_STEP_START_VM] = "start-vm",       [RCV_STEP_PROMOTE] = "promote",
        [RCV_STEP_MIGRATE] = "migrate",         [RCV_STEP_NOTIFY] = "notify",
        [RCV_STEP_RELEASE] = "release",
};

void rcv_timeouts_default(struct rcv_timeouts *t)
{
	t->quorum_ms = 30000;
	t->fence_ms = 30000;
	t->stop_ms = 10000;
	t->start_ms = 60000;
	t->promote_ms = 5000;
	t->migrate_ms = 120000;
}

void rcv_cluster_from_config(const struct af_config *cfg, struct rcv_cluster *c)
{
	memset(c, 0, sizeof(*c));
	c->quorate = true;
	for (unsigned i = 0; i < cfg->n_blades; i++) {
		uint32_t s = cfg->blades[i].slot;

		if (s == 0 || s > AF_MAX_BLADES)
			continue;
		c->blades[s].member = true;
		c->partner[s] = af_cfg_partner(cfg, s);
	}
	for (unsigned i = 0; i < cfg->n_vms && c->n_vms < RCV_MAX_VMS; i++) {
		struct rcv_vm_state *v = &c->vms[c->n_vms++];

		af_strlcpy(v->name, cfg->vms[i].name, sizeof(v->name));
		v->blade = (int)cfg->vms[i].blade;
		v->protection = (enum af_protection)cfg->vms[i].protection;
		v->backup_in_sync = v->protection == AF_PROT_FT;
		v->max_restarts = cfg->vms[i].max_restarts;
		v->running = true;
	}
}

/* ---- building a plan --------------------------------------------------------------- */

static void add(struct rcv_plan *p, enum rcv_step_kind kind, int blade, const char *vm,
                uint32_t timeout_ms, const char *fmt, ...) AF_PRINTF(6, 7);
static void add(struct rcv_plan *p, enum rcv_step_kind kind, int blade, const char *vm,
                uint32_t timeout_ms, const char *fmt, ...)
{
	struct rcv_step *s;
	va_list ap;

	if (p->n_steps == RCV_MAX_STEPS)
		return; /* RCV_MAX_VMS bounds a plan well below this */
	s = &p->steps[p->n_steps++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->blade = blade;
	af_strlcpy(s->vm, vm ? vm : "", sizeof(s->vm));
	s->timeout_ms = timeout_ms;
	s->on_fail_escalate = RCV_STEP_NOTIFY;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
}

static const struct rcv_vm_state *vm_by_name(const struct rcv_cluster *c, const char *name)
{
	for (unsigned i = 0; i < c->n_vms; i++) {
		if (strcmp(c->vms[i].name, name) == 0)
			return &c->vms[i];
	}
	return NULL;
}

/* The blade that takes over from blade n: its partner, if it is a member
 * and healthy; 0 if there is none (then nobody takes over). */
static int takeover_blade(const struct rcv_cluster *c, int n)
{
	uint32_t p = n > 0 && n <= AF_MAX_BLADES ? c->partner[n] : 0;

	if (p == 0 || p > AF_MAX_BLADES || (int)p == n)
		return 0;
	if (!c->blades[p].member || c->blades[p].faulty || c->blades[p].off ||
	    c->blades[p].hypervisor_down)
		return 0;
	return (int)p;
}

/* Everything of blade n moves to its partner: fence (or stop each VM, or
 * rely on the blade being off), then promote or start each VM there. */
static void takeover(const struct rcv_cluster *c, const struct af_fault *f,
                     const struct rcv_timeouts *t, bool fence, struct rcv_plan *p)
{
	int n = f->blade, target = takeover_blade(c, n);
	unsigned promoted = 0, started = 0, left = 0, released = 0;

	p->owner = target ? target : n;
	if (!c->quorate)
		add(p, RCV_STEP_WAIT_QUORUM, 0, NULL, t->quorum_ms,
		    "no takeover without quorum: this side may be the minority");
	if (fence) {
		add(p, RCV_STEP_FENCE, n, NULL, t->fence_ms,
		    "blade %d must be confirmed off before its VMs run elsewhere", n);
	} else if (!c->blades[n].off) {
		/* not fenced: each VM must be confirmed gone from the blade;
		 * if that cannot be confirmed, the blade is fenced */
		for (unsigned i = 0; i < c->n_vms; i++) {
			if (c->vms[i].blade != n || c->vms[i].protection == AF_PROT_NONE)
				continue;
			add(p, RCV_STEP_STOP_VM, n, c->vms[i].name, t->stop_ms,
			    "%s must not run on blade %d any more", c->vms[i].name, n);
			p->steps[p->n_steps - 1].on_fail_escalate = RCV_STEP_FENCE;
		}
	}
	if (target == 0) {
		add(p, RCV_STEP_NOTIFY, n, NULL, 0,
		    "no partner of blade %d can take over: its VMs stay down", n);
		snprintf(p->summary, sizeof(p->summary), "%sno takeover (no healthy partner)",
		         fence ? "fence, " : "");
		return;
	}
	for (unsigned i = 0; i < c->n_vms; i++) {
		const struct rcv_vm_state *v = &c->vms[i];

		if (v->blade != n)
			continue;
		if (v->protection == AF_PROT_NONE) {
			left++;
			add(p, RCV_STEP_NOTIFY, n, v->name, 0, "%s is not protected: left down",
			    v->name);
		} else if (v->protection == AF_PROT_FT && v->backup_in_sync) {
			promoted++;
			add(p, RCV_STEP_PROMOTE, target, v->name, t->promote_ms,
			    "the hot backup of %s on blade %d takes over", v->name, target);
		} else {
			started++;
			add(p, RCV_STEP_START_VM, target, v->name, t->start_ms,
			    v->protection == AF_PROT_FT
			            ? "no backup in sync: %s starts from its disk"
			            : "%s restarts on the partner",
			    v->name);
		}
	}
	/* The VMs the partner runs had their hot backups on blade n: with n
	 * confirmed off, no backup can be promoted behind their back, so what
	 * their primaries hold for output commit (serial, network frames)
	 * goes out now instead of waiting for a backup that is not coming. */
	for (unsigned i = 0; (fence || c->blades[n].off) && i < c->n_vms; i++) {
		const struct rcv_vm_state *v = &c->vms[i];

		if (v->blade == target && v->protection == AF_PROT_FT && ++released)
			add(p, RCV_STEP_RELEASE, target, v->name, t->promote_ms,
			    "the backup of %s on blade %d is gone: its primary releases its held "
			    "output and runs unprotected",
			    v->name, n);
	}
	if (promoted + started + left == 0)
		add(p, RCV_STEP_NOTIFY, n, NULL, 0, "blade %d ran no VMs", n);
	snprintf(p->summary, sizeof(p->summary),
	         "%s blade %d; on blade %d: %u promoted, %u started%s; %u left down",
	         fence              ? "fence"
	         : c->blades[n].off ? "blade off:"
	                            : "stop the VMs of",
	         n, target, promoted, started, released ? ", backups gone: output released" : "",
	         left);
}

/* A guest failed: restart it in place while it has restarts left, then
 * move it to the partner, from its disk: never promote its backup, which
 * would replay the same guest bug. */
static void restart_vm(const struct rcv_cluster *c, const struct af_fault *f,
                       const struct rcv_timeouts *t, struct rcv_plan *p)
{
	const struct rcv_vm_state *v = vm_by_name(c, f->vm);
	int target;

	if (v == NULL) {
		p->owner = f->blade;
		add(p, RCV_STEP_NOTIFY, f->blade, f->vm, 0, "%s is not a configured VM", f->vm);
		snprintf(p->summary, sizeof(p->summary), "unknown VM: notify");
		return;
	}
	p->owner = v->blade;
	if (v->running && f->blade > 0 && v->blade != f->blade &&
	    (c->blades[f->blade].off || !c->blades[f->blade].member)) {
		/* a late report of a copy that is gone (a fenced blade's daemon
		 * telling of its QEMU killed): restarting would touch the copy
		 * that runs. Only then: a live blade's report of its own guest
		 * beats another blade's report, which may be stale */
		add(p, RCV_STEP_NOTIFY, f->blade, v->name, 0, "%s runs on blade %d now", v->name,
		    v->blade);
		snprintf(p->summary, sizeof(p->summary), "runs elsewhere: notify");
		return;
	}
	if (v->protection == AF_PROT_NONE) {
		add(p, RCV_STEP_NOTIFY, v->blade, v->name, 0, "%s is not protected", v->name);
		snprintf(p->summary, sizeof(p->summary), "unprotected: notify");
		return;
	}
	if (v->restarts_recent < v->max_restarts && !c->blades[v->blade].hypervisor_down) {
		add(p, RCV_STEP_RESTART_VM, v->blade, v->name, t->start_ms,
		    "restart %u of %u in its window", v->restarts_recent + 1, v->max_restarts);
		snprintf(p->summary, sizeof(p->summary), "restart %s on blade %d", v->name,
		         v->blade);
		return;
	}
	target = takeover_blade(c, v->blade);
	if (target == 0) {
		add(p, RCV_STEP_NOTIFY, v->blade, v->name, 0,
		    "%s failed %u times and no partner can take it: left down", v->name,
		    v->restarts_recent);
		snprintf(p->summary, sizeof(p->summary), "restarts exhausted, no partner: notify");
		return;
	}
	if (!c->quorate)
		add(p, RCV_STEP_WAIT_QUORUM, 0, NULL, t->quorum_ms, "no move without quorum");
	add(p, RCV_STEP_STOP_VM, v->blade, v->name, t->stop_ms, "%s must not run on blade %d",
	    v->name, v->blade);
	if (c->blades[v->blade].hypervisor_down) {
		/* its libvirt is dead: the VM cannot be confirmed stopped through
		 * it, so the partner carries the move out and fences the blade
		 * instead (a blade must not fence itself half-way through its
		 * own plan) */
		p->owner = target;
		p->steps[p->n_steps - 1].on_fail_escalate = RCV_STEP_FENCE;
	}
	if (c->blades[v->blade].hypervisor_down)
		add(p, RCV_STEP_START_VM, target, v->name, t->start_ms,
		    "hypervisor of blade %d down: %s moves to blade %d (from its disk)", v->blade,
		    v->name, target);
	else
		add(p, RCV_STEP_START_VM, target, v->name, t->start_ms,
		    "restarts exhausted: %s moves to blade %d (from its disk)", v->name, target);
	snprintf(p->summary, sizeof(p->summary), "move %s to blade %d", v->name, target);
}

/* A predicted failure: move the VMs away while the partner is healthy. */
static void migrate_away(const struct rcv_cluster *c, const struct af_fault *f,
                         const struct rcv_timeouts *t, struct rcv_plan *p)
{
	int n = f->blade, target = takeover_blade(c, n);
	unsigned moved = 0;

	p->owner = n;
	if (target == 0) {
		add(p, RCV_STEP_NOTIFY, n, NULL, 0, "no healthy partner of blade %d to move to", n);
		snprintf(p->summary, sizeof(p->summary), "no healthy partner: notify");
		return;
	}
	for (unsigned i = 0; i < c->n_vms; i++) {
		const struct rcv_vm_state *v = &c->vms[i];

		if (v->blade != n || v->protection == AF_PROT_NONE)
			continue;
		moved++;
		add(p, RCV_STEP_MIGRATE, target, v->name, t->migrate_ms,
		    "%s leaves blade %d before it fails", v->name, n);
	}
	if (moved == 0)
		add(p, RCV_STEP_NOTIFY, n, NULL, 0, "blade %d runs no protected VM", n);
	snprintf(p->summary, sizeof(p->summary), "migrate %u VMs to blade %d", moved, target);
}

int rcv_plan_fault(const struct rcv_cluster *c, const struct af_fault *f,
                   const struct rcv_timeouts *t, struct rcv_plan *out)
{
	if (c == NULL || f == NULL || t == NULL || out == NULL ||
	    (unsigned)f->rclass >= AF_RC_COUNT || (unsigned)f->scope >= AF_SCOPE_COUNT ||
	    f->blade < 0 || f->blade > AF_MAX_BLADES)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->fault_id = f->id;
	out->rclass = f->rclass;
	out->membership_only = f->membership_only;
	/* the shelf's own faults have no VMs to move: only people can act */
	if (f->scope == AF_SCOPE_SHELF || f->rclass == AF_RC_NOTIFY_ONLY ||
	    (f->blade == 0 && f->scope != AF_SCOPE_VM)) {
		out->owner = f->blade;
		add(out, RCV_STEP_NOTIFY, f->blade, f->scope == AF_SCOPE_VM ? f->vm : NULL, 0, "%s",
		    f->rule[0] ? f->rule : "fault");
		snprintf(out->summary, sizeof(out->summary), "notify");
		return 0;
	}
	switch (f->rclass) {
	case AF_RC_RESTART_VM:
		restart_vm(c, f, t, out);
		break;
	case AF_RC_MIGRATE_AWAY:
		migrate_away(c, f, t, out);
		break;
	case AF_RC_FAILOVER:
		takeover(c, f, t, false, out);
		break;
	case AF_RC_FENCE_AND_FAILOVER:
		takeover(c, f, t, true, out);
		break;
	default:
		break;
	}
	return 0;
}

static void switch_one(const struct rcv_cluster *c, const struct rcv_vm_state *v, int target,
                       const struct rcv_timeouts *t, struct rcv_plan *p)
{
	if (v->running) {
		add(p, RCV_STEP_MIGRATE, target, v->name, t->migrate_ms,
		    "operator switchover: %s moves live from blade %d", v->name, v->blade);
		return;
	}
	add(p, RCV_STEP_STOP_VM, v->blade, v->name, t->stop_ms,
	    "%s must be confirmed stopped on blade %d", v->name, v->blade);
	p->steps[p->n_steps - 1].on_fail_escalate = RCV_STEP_NOTIFY;
	add(p, RCV_STEP_START_VM, target, v->name, t->start_ms,
	    "operator switchover: %s starts on blade %d", v->name, target);
	(void)c;
}

int rcv_plan_switchover(const struct rcv_cluster *c, int blade, const char *vm, bool evacuate,
                        const struct rcv_timeouts *t, struct rcv_plan *out)
{
	const struct rcv_vm_state *v = NULL;
	unsigned moved = 0;
	int target;

	if (c == NULL || t == NULL || out == NULL)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->rclass = AF_RC_MIGRATE_AWAY;
	if (vm != NULL && vm[0] != '\0') {
		v = vm_by_name(c, vm);
		if (v == NULL)
			return -ENOENT;
		blade = v->blade;
	}
	if (blade <= 0 || blade > AF_MAX_BLADES)
		return -EINVAL;
	out->owner = blade;
	target = takeover_blade(c, blade);
	if (target == 0) {
		add(out, RCV_STEP_NOTIFY, blade, v ? v->name : NULL, 0,
		    "no healthy partner of blade %d: nothing moves", blade);
		snprintf(out->summary, sizeof(out->summary),
		         "switchover refused: no healthy partner");
		return 0;
	}
	if (!c->quorate)
		add(out, RCV_STEP_WAIT_QUORUM, 0, NULL, t->quorum_ms, "no move without quorum");
	for (unsigned i = 0; i < c->n_vms; i++) {
		if (v != NULL ? &c->vms[i] != v : c->vms[i].blade != blade)
			continue;
		switch_one(c, &c->vms[i], target, t, out);
		moved++;
	}
	if (moved == 0)
		add(out, RCV_STEP_NOTIFY, blade, NULL, 0, "blade %d runs no VM", blade);
	if (v != NULL)
		snprintf(out->summary, sizeof(out->summary), "switch %s over to blade %d", v->name,
		         target);
	else
		snprintf(out->summary, sizeof(out->summary), "%s blade %d: %u VMs to blade %d",
		         evacuate ? "evacuate" : "switch over", blade, moved, target);
	return 0;
}

int rcv_plan_resume(const struct rcv_cluster *c, int blade, const char *vm,
                    const struct rcv_timeouts *t, struct rcv_plan *out)
{
	const struct rcv_vm_state *v;
	const struct rcv_blade_state *b;

	if (c == NULL || t == NULL || out == NULL || vm == NULL || blade <= 0 ||
	    blade > AF_MAX_BLADES)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	v = vm_by_name(c, vm);
	if (v == NULL)
		return -ENOENT;
	/* a VM that runs (anywhere) was taken over while this blade was in
	 * the minority: one copy is enough */
	if (v->running)
		return -EEXIST;
	/* from its disk, never a promotion: the stop was ours, not a fault,
	 * and a backup elsewhere has had no primary since */
	out->rclass = AF_RC_RESTART_VM;
	out->owner = blade;
	b = &c->blades[blade];
	if (b->faulty || b->off || b->hypervisor_down) {
		add(out, RCV_STEP_NOTIFY, blade, v->name, 0,
		    "%s was stopped for a lost quorum; blade %d cannot run it now", v->name, blade);
		snprintf(out->summary, sizeof(out->summary), "%s stays stopped: blade %d unhealthy",
		         v->name, blade);
		return 0;
	}
	if (!c->quorate)
		add(out, RCV_STEP_WAIT_QUORUM, 0, NULL, t->quorum_ms, "no start without quorum");
	add(out, RCV_STEP_START_VM, blade, v->name, t->start_ms,
	    "stopped for a lost quorum; quorum is back and it runs nowhere");
	snprintf(out->summary, sizeof(out->summary),
	         "start %s again on blade %d (stopped for a lost quorum)", v->name, blade);
	return 0;
}
