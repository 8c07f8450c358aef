/*
 * recovery: turns raised faults into plans (rcv_plan.h) and carries them out
 * (rcv_exec.h) through libvirt (rcv_virt.h), the shelf manager's fencing and
 * the operator notification hooks; keeps the cluster view (membership,
 * quorum, where each VM runs, the pairs) that the planner decides on and
 * shares it with the other daemons over CPG (rcv_msg.h).
 *
 * The daemon owns the I/O this module does not: corosync (membership comes
 * in through rcv_membership(), messages through rcv_deliver(), go out
 * through hooks.send) and the shelf manager (hooks.fence).
 */
#ifndef RCV_H
#define RCV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "af_module.h"

struct rcv;
struct af_fault;

typedef void (*rcv_fence_done_fn)(void *cookie, int rc, const char *msg);

struct rcv_hooks {
	/* Powers blade off through the shelf manager; done(cookie, 0, ..)
	 * once confirmed off. Returns 0 or -errno (then done is not called). */
	int (*fence)(void *opaque, int blade, rcv_fence_done_fn done, void *cookie);
	void (*fence_forget)(void *opaque, void *cookie);
	/* Sends a cluster message to every daemon (CPG, totally ordered). */
	int (*send)(void *opaque, const void *buf, size_t len);
	/* Tells the operator (log, SNMP). kind: "recovery-started" (a plan's
	 * first action), "recovery-succeeded", "recovery-failed" (text "plan
	 * N (TARGET) ...", TARGET "vm NAME", "blade N" or "shelf"; a plan of
	 * notify steps only has none of the three), "recovery-notify" (a notify
	 * step: "plan N: ..."), "quorum-lost", "journal-failed" (the recovery
	 * journal cannot be written: new plans are refused; text says why),
	 * "journal-ok" (it can again). */
	void (*notify)(void *opaque, const char *kind, const char *text);
	/* The checkpoint engine of a VM it protects on this blade (a VM with
	 * protection ft and a disk is no libvirt domain: its engine runs its
	 * QEMU). engine_order: "promote" (force: its old primary is confirmed
	 * off), "start" (boot it here from its disk, as primary), "quit";
	 * done(cookie, ..) later. 0 or -errno (then done is not called).
	 * engine_state: what the engine here last said ("protected",
	 * "standby", ...); -errno when none runs here. Optional. */
	int (*engine_order)(void *opaque, const char *vm, const char *order, bool force,
	                    rcv_fence_done_fn done, void *cookie);
	void (*engine_forget)(void *opaque, void *cookie);
	int (*engine_state)(void *opaque, const char *vm, char *state, size_t len);
	/* vm's primary runs on the partner blade and no engine of it runs
	 * here: a backup engine should (a blade back from a repair). The hook
	 * decides (vmft.restart_backup, a quit by order, a start in
	 * progress). Optional. */
	void (*engine_backup_wanted)(void *opaque, const char *vm);
};

/* Creates the module: it plans and shows, but acts only after
 * rcv_start(). env is copied; env->cfg must stay valid until the next
 * rcv_reconfigure() or rcv_fini(). Returns 0 or -errno. */
int rcv_init(struct rcv **out, const struct af_module_env *env);
/* Makes it act for blade local (1..16): opens the journal (in
 * cfg->daemon.state_dir; unfinished plans resume), the libvirt executor,
 * and uses hooks. Needs env->loop. Returns 0 or -errno. */
int rcv_start(struct rcv *m, int local, const struct rcv_hooks *hooks, void *hooks_opaque);
int rcv_reconfigure(struct rcv *m, const struct af_config *cfg);
void rcv_fini(struct rcv *m);

/* Inputs. */
void rcv_fault_raised(struct rcv *m, const struct af_fault *f);
void rcv_fault_cleared(struct rcv *m, const struct af_fault *f);
/* An open fault gained a cause: evidence of the blade's own (a SEL record,
 * a sensor) that joined a fault raised when it left the membership makes
 * the plan for it finish its fence even after a restart. */
void rcv_fault_updated(struct rcv *m, const struct af_fault *f);
/* Every event the daemon accepted (hot-swap states tell which blades are
 * off; VM lifecycle events count restarts). */
void rcv_event(struct rcv *m, const struct af_event *ev);
/* corosync: quorum, blades in the membership, blades whose daemon is in
 * the CPG group (arrays indexed by slot, AF_MAX_BLADES + 1 long). */
void rcv_membership(struct rcv *m, bool quorate, const bool *nodes, const bool *daemons);
void rcv_deliver(struct rcv *m, uint32_t from_slot, const void *buf, size_t len);

/* Operator actions. 0 (the plan's id in *id) or -errno with err set. */
int rcv_failover(struct rcv *m, const char *target, uint64_t *id, char *err, size_t errlen);
int rcv_maintenance(struct rcv *m, int blade, bool on, uint64_t *id, char *err, size_t errlen);

/* Views for atca-ftctl. */
json_object *rcv_pairs_json(struct rcv *m);
json_object *rcv_vms_json(struct rcv *m);
json_object *rcv_plans_json(struct rcv *m, unsigned count);

void rcv_describe(const struct rcv *m, struct af_module_status *st);
/* Whether the recovery journal cannot be written (new plans are refused):
 * then *rc is the error (-errno), *since_ns when it began (CLOCK_MONOTONIC),
 * *refused the plans refused since; path (may be NULL) the journal's. */
bool rcv_journal_outage(const struct rcv *m, int *rc, uint64_t *since_ns, uint64_t *refused,
                        const char **path);

#endif
