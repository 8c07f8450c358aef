/*
 * recovery planner: a fault and what is known of the cluster in, a plan of
 * ordered steps out. Pure code (no I/O, no clock), so the daemon, the unit
 * tests and "atca-ftctl simulate" run the same decisions.
 *
 * Safety rules the planner never breaks (DESIGN.md section 4):
 *  - no takeover of a blade's VMs without quorum and without the blade
 *    fenced or known off (M0/M1), or each VM confirmed stopped on it;
 *  - a guest-software fault (restart-vm) never promotes a backup: the
 *    backup would replay the same bug;
 *  - no partner able to take over means no takeover (the VMs stay down and
 *    the operator is told), never a second copy somewhere else.
 */
#ifndef RCV_PLAN_H
#define RCV_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "af_config.h"
#include "af_fault.h"

#define RCV_MAX_STEPS 64
#define RCV_MAX_VMS 64

enum rcv_step_kind {
	RCV_STEP_WAIT_QUORUM = 0, /* go on only once the cluster is quorate */
	RCV_STEP_FENCE,           /* power the blade off through the shelf manager, confirmed */
	RCV_STEP_STOP_VM,         /* destroy the VM where it runs and confirm it is gone */
	RCV_STEP_RESTART_VM,      /* restart the VM where it is */
	RCV_STEP_START_VM,        /* start the VM on another blade (from its disk) */
	RCV_STEP_PROMOTE,         /* promote the VM's hot backup on the partner */
	RCV_STEP_MIGRATE,         /* live-migrate the VM to the partner */
	RCV_STEP_NOTIFY,          /* tell the operator (log, SNMP trap) */
	RCV_STEP_RELEASE, /* ft: the backup is gone for good: the primary's held output goes */
	RCV_STEP_COUNT
};
extern const char *const rcv_step_names[RCV_STEP_COUNT];

struct rcv_step {
	enum rcv_step_kind kind;
	int blade;               /* where the action happens (the blade fenced, the VM's blade) */
	char vm[AF_VM_NAME_MAX]; /* "" for blade steps */
	uint32_t timeout_ms;     /* past this, the step has failed */
	enum rcv_step_kind on_fail_escalate; /* STOP_VM failing: FENCE; else NOTIFY */
	char why[96];
};

struct rcv_plan {
	uint64_t fault_id;
	enum af_recovery_class rclass;
	int owner; /* the blade whose daemon carries the plan out (the partner on takeover) */
	/* the fault's only evidence was the blade leaving the membership: a
	 * daemon that resumes the plan after a restart checks it still holds */
	bool membership_only;
	unsigned n_steps;
	struct rcv_step steps[RCV_MAX_STEPS];
	char summary[160];
};

/* What the planner needs to know about the cluster. */
struct rcv_vm_state {
	char name[AF_VM_NAME_MAX];
	int blade; /* where it runs (or last ran) */
	enum af_protection protection;
	bool backup_in_sync;      /* ft: the partner's backup is committed and current */
	unsigned restarts_recent; /* restarts in place within its restart window */
	unsigned max_restarts;
	bool running; /* known to run on blade now */
};

struct rcv_blade_state {
	bool member;          /* in the corosync membership */
	bool faulty;          /* has an open hardware or hypervisor fault of its own */
	bool off;             /* payload known off (M0/M1, or fenced) */
	bool hypervisor_down; /* its libvirt does not answer: nothing restarts there */
};

struct rcv_cluster {
	bool quorate;
	int local; /* this daemon's blade, 0 observer */
	struct rcv_blade_state blades[AF_MAX_BLADES + 1];
	uint32_t partner[AF_MAX_BLADES + 1]; /* 0: none */
	unsigned n_vms;
	struct rcv_vm_state vms[RCV_MAX_VMS];
};

struct rcv_timeouts {
	uint32_t quorum_ms, fence_ms, stop_ms, start_ms, promote_ms, migrate_ms;
};

/* The cluster as the configuration describes it: every blade a member and
 * healthy, every VM on its home blade with no restarts yet. */
void rcv_cluster_from_config(const struct af_config *cfg, struct rcv_cluster *c);
void rcv_timeouts_default(struct rcv_timeouts *t);

/* The plan for a fault that was raised (or escalated). Returns 0, or
 * -EINVAL for a fault it cannot read. A plan always has at least one step
 * (at worst a NOTIFY saying why nothing else is safe). */
int rcv_plan_fault(const struct rcv_cluster *c, const struct af_fault *f,
                   const struct rcv_timeouts *t, struct rcv_plan *out);

/* An operator's switchover: vm (or, when vm is NULL or "", every VM of
 * blade) moves to the partner while both are healthy: a running VM is
 * live-migrated, a stopped one is confirmed stopped and started there.
 * evacuate marks it a maintenance evacuation in the summary. Returns 0,
 * -ENOENT for an unknown VM, -EINVAL for bad arguments. */
int rcv_plan_switchover(const struct rcv_cluster *c, int blade, const char *vm, bool evacuate,
                        const struct rcv_timeouts *t, struct rcv_plan *out);

/* A VM that the daemon of blade stopped when its blade lost quorum
 * (no_quorum_policy stop), now that quorum is back: start it again there,
 * from its disk (a restart-vm plan: never a promotion). Returns 0 with the
 * plan (a NOTIFY only when the blade cannot run it), -EEXIST when the VM
 * runs somewhere (taken over meanwhile: nothing to do), -ENOENT for an
 * unknown VM, -EINVAL for bad arguments. */
int rcv_plan_resume(const struct rcv_cluster *c, int blade, const char *vm,
                    const struct rcv_timeouts *t, struct rcv_plan *out);
#endif
