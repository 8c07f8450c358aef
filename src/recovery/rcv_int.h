/*
 * recovery module internals shared by rcv.c (faults, membership, the module),
 * rcv_act.c (the actions of plan steps) and rcv_view.c (what is known of
 * the cluster: VM placement, peers' states, messages, JSON views).
 */
#ifndef RCV_INT_H
#define RCV_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>
#include <qb/qbloop.h>

#include "af_module.h"
#include "rcv.h"
#include "rcv_exec.h"
#include "rcv_journal.h"
#include "rcv_msg.h"
#include "rcv_pair.h"
#include "rcv_plan.h"
#include "rcv_virt.h"

#define RCV_RESTART_MEMORY 16
#define RCV_REMOTE_RUNS 32

/* What this daemon knows of one configured VM. */
struct rcv_vm_view {
	int running_on;      /* slot whose libvirt reports it running; 0 none known */
	char state[16];      /* as last reported by that blade ("" unknown) */
	int last_blade;      /* where it last ran (its home blade at first) */
	unsigned n_restarts; /* restarts in place, newest last */
	uint64_t restarts[RCV_RESTART_MEMORY];
	/* what an action of ours proved on a blade, trusted over that blade's
	 * reports for RCV_LEARN_NS (a report may have been made before it) */
	int learned_blade;
	bool learned_live;
	uint64_t learned_ns;
	/* this daemon stopped it when its blade lost quorum: it starts it
	 * again once quorum is back, unless another blade runs it by then */
	bool quorum_stopped;
};
#define RCV_LEARN_NS (3 * 1000000000ULL)

/* A peer's (or our own) last STATE message. */
struct rcv_peer {
	bool valid;
	uint64_t rx_ns;
	uint64_t seq;
	struct rcv_msg_state st;
};

/* A plan another daemon carries out, as its messages tell. */
struct rcv_remote_run {
	bool used;
	uint32_t origin;
	uint64_t id;
	char summary[160];
	unsigned step, n_steps;
	char state[16];
	uint64_t rx_ns;
	uint64_t end_ns;      /* when it was reported done or failed */
	unsigned n_migrating; /* the VMs it live-migrates */
	char migrating[8][AF_VM_NAME_MAX];
};
/* how long after a live migration two reports of one VM are the migration's */
#define RCV_MIGRATION_GRACE_NS (5 * 1000000000ULL)

/* One action in flight: the cookie handed to libvirt / the fencer. */
struct rcv_act {
	struct rcv *m;
	uint64_t run;
	unsigned step;
	bool is_fence;
	bool is_engine; /* carried out by a checkpoint engine (vmft-bridge) */
	enum rcv_step_kind kind;
	int blade, from; /* where it acts (from: a migration's source) */
	char vm[AF_VM_NAME_MAX];
	struct rcv_act *next;
};

#define RCV_REFUSED_MAX 16

struct rcv {
	struct af_module_env env;
	int local;
	struct rcv_hooks hooks;
	void *hooks_opaque;
	struct rcv_timeouts timeouts;
	uint64_t plans; /* made */

	struct rcv_virt *virt;
	struct rcv_journal *journal;
	bool journal_ok;
	qb_loop_timer_handle journal_timer; /* retries a journal that failed */
	bool journal_timer_on;
	unsigned journal_retries; /* failed retries in this outage */
	/* open faults whose plan the journal refused: planned again (in
	 * order) once it can be written, unless cleared meanwhile */
	unsigned n_refused;
	struct af_fault refused[RCV_REFUSED_MAX];
	struct rcv_exec exec;
	bool exec_ok;
	qb_loop_timer_handle exec_timer;
	bool exec_timer_on;
	uint64_t exec_timer_at;
	qb_loop_timer_handle state_timer;
	bool state_timer_on;
	struct rcv_act *acts;

	/* membership */
	bool quorate, ever_quorate;
	uint64_t quorum_back_ns; /* quorum came back with quorum_stopped VMs; 0: none */
	bool node[AF_MAX_BLADES + 1];
	bool daemon[AF_MAX_BLADES + 1];
	bool off[AF_MAX_BLADES + 1];
	unsigned faulty[AF_MAX_BLADES + 1]; /* open fatal hardware/hypervisor faults */
	bool maint[AF_MAX_BLADES + 1];      /* this daemon's own view of maintenance */
	unsigned n_pairs;
	struct rcv_pair pairs[AF_MAX_PAIRS];

	/* the cluster view */
	struct rcv_vm_view vms[AF_MAX_VMS];
	struct rcv_peer peers[AF_MAX_BLADES + 1];
	struct rcv_remote_run remote[RCV_REMOTE_RUNS];
	bool libvirt_up;
	bool list_pending;
	uint64_t tx_seq, rx_ok, rx_bad, tx_fail;
	uint64_t last_seq[AF_MAX_BLADES + 1];
	char last_state_sent[4096];
	uint64_t last_state_ns;
	unsigned n_local_faults;
	char local_faults[RCV_MSG_MAX_FAULTS][96];
};

/* rcv.c */
void rcv_schedule(struct rcv *m);
/* rcv_exec_ops.journal_down: says so loudly, retries every
 * RCV_JOURNAL_RETRY_MS until the journal can be written again. */
#define RCV_JOURNAL_RETRY_MS 2000
void rcv_journal_down(void *opaque, int rc);
int rcv_vm_index(const struct rcv *m, const char *name);
/* Whether this blade holds a hot backup of v that can take over: its
 * checkpoint engine here is a backup with a committed epoch. Only the
 * backup's own daemon knows; it is the one that carries a takeover out. */
bool rcv_view_backup_ready(const struct rcv *m, const struct af_cfg_vm *v);
int rcv_vm_by_domain(const struct rcv *m, const char *domain);
unsigned rcv_restarts_recent(const struct rcv_vm_view *v, uint64_t window_ms, uint64_t now);
void rcv_plan_requested(struct rcv *m, uint32_t from, const struct rcv_plan *p);
void rcv_build_cluster(const struct rcv *m, struct rcv_cluster *c, uint64_t now);
/* Starts again the VMs stopped for a lost quorum once quorum is back and
 * every member's daemon has reported (or RCV_RESUME_SETTLE_NS passed). */
#define RCV_RESUME_SETTLE_NS (3 * 1000000000ULL)
void rcv_quorum_resume(struct rcv *m, uint64_t now);

/* rcv_act.c */
extern const struct rcv_exec_ops rcv_exec_ops;
void rcv_acts_drop(struct rcv *m);

/* rcv_view.c */
void rcv_view_init(struct rcv *m);
void rcv_view_local_list(struct rcv *m, const struct rcv_virt_dom *d, unsigned n);
void rcv_view_broadcast(struct rcv *m, bool force);
void rcv_view_deliver(struct rcv *m, uint32_t from, const void *buf, size_t len);
void rcv_view_run_msg(struct rcv *m, const struct rcv_run *r, bool plan);
void rcv_view_daemons_changed(struct rcv *m);
void rcv_view_request(struct rcv *m, const struct rcv_plan *p);
/* What an action just proved, before the next list says it. */
void rcv_view_vm_state(struct rcv *m, int blade, const char *vm, const char *state);
/* Recomputes where each VM runs (membership or power changed). */
void rcv_view_refresh(struct rcv *m);
void rcv_view_fault(struct rcv *m, const struct af_fault *f, bool open);

#endif
