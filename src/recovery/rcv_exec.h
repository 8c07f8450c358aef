/*
 * The plan runner: carries plans out step by step, journaling every step
 * before it acts and after it ends, so that a daemon restarted in the middle
 * of a recovery resumes each plan at its first unfinished step.
 *
 * Pure logic, like the planner: the actions themselves (fence, libvirt,
 * promotion) are behind an ops struct and report back through
 * rcv_exec_step_done(); time comes in through rcv_exec_tick(). The unit tests
 * run it with fake actions and a fake clock.
 *
 * Step rules (DESIGN.md section 4):
 *  - steps run one at a time, in order; each has a deadline;
 *  - a step that starts, promotes or migrates a VM away from its blade (a
 *    takeover step) runs only while the cluster is quorate: without quorum it
 *    waits, and fails at the quorum deadline;
 *  - a failed stop-vm escalates to fencing its blade (the VM must be proven
 *    gone before it runs elsewhere); a failed fence fails the plan: nothing
 *    after it runs, whatever it was;
 *  - a failed restart, start, promote or migrate fails the plan and the
 *    operator is told.
 */
#ifndef RCV_EXEC_H
#define RCV_EXEC_H

#include <stdbool.h>
#include <stdint.h>

#include "rcv_journal.h"
#include "rcv_plan.h"

#define RCV_EXEC_MAX_RUNS 32
#define RCV_EXEC_HISTORY 32
#define RCV_EXEC_RETRY_NS (200 * 1000000ULL) /* act() said -EAGAIN: again after this */

enum rcv_run_state {
	RCV_RUN_RUNNING = 0,
	RCV_RUN_WAITING, /* a takeover step waits for quorum */
	RCV_RUN_DONE,
	RCV_RUN_FAILED,
	RCV_RUN_STATE_COUNT
};
extern const char *const rcv_run_state_names[RCV_RUN_STATE_COUNT];

struct rcv_run {
	uint64_t id;
	struct rcv_plan plan;
	enum rcv_run_state state;
	unsigned cur;                    /* the step in progress (or next) */
	uint8_t st[RCV_MAX_STEPS];       /* enum rcv_step_state */
	uint64_t t_start[RCV_MAX_STEPS]; /* CLOCK_MONOTONIC ns, 0 = not yet */
	uint64_t t_end[RCV_MAX_STEPS];
	uint64_t t_first[RCV_MAX_STEPS]; /* first attempt (a step may be retried) */
	char msg[RCV_MAX_STEPS][96];     /* what the action said */
	uint64_t deadline_ns;            /* of the current step (or of the quorum wait) */
	uint64_t started_ns, ended_ns;
	bool resumed;      /* replayed from the journal, not advanced yet */
	bool from_journal; /* made by an earlier run of the daemon */
	bool requested;    /* handed over by another blade: its fault id is that daemon's */
	bool escalated;    /* the current stop-vm failed: fencing instead */
};

struct rcv_exec;
struct rcv_exec_ops {
	/* Starts step i of run r; reports with rcv_exec_step_done() later (or
	 * from inside this call). Returns 0, -EAGAIN if it cannot start yet
	 * (tried again every RCV_EXEC_RETRY_NS within the step's timeout), or
	 * -errno if it could not start (the step has then failed). For a stop-vm that escalated, kind is
	 * RCV_STEP_FENCE of the step's blade. */
	int (*act)(void *opaque, const struct rcv_run *r, unsigned i, enum rcv_step_kind kind);
	/* The step's deadline passed: drop its completion. */
	void (*cancel)(void *opaque, const struct rcv_run *r, unsigned i);
	bool (*quorate)(void *opaque);
	/* A run ended (state DONE or FAILED). */
	void (*ended)(void *opaque, const struct rcv_run *r);
	/* The journal could not be written (rc -errno): from now on new plans
	 * are refused until rcv_exec_journal_retry() succeeds. Called once per
	 * outage. Optional. */
	void (*journal_down)(void *opaque, int rc);
};

struct rcv_exec {
	const struct rcv_exec_ops *ops;
	void *opaque;
	struct rcv_journal *journal; /* may be NULL (simulation) */
	uint64_t next_id;
	uint32_t fence_timeout_ms; /* for a stop-vm escalated to a fence */
	unsigned n_runs;
	struct rcv_run *runs[RCV_EXEC_MAX_RUNS]; /* active */
	unsigned hist_head, hist_len;
	struct rcv_run *hist[RCV_EXEC_HISTORY]; /* finished, newest last */
	uint64_t n_done, n_failed, journal_errors;
	/* the journal failed: new plans are refused (plans in progress go on:
	 * stopping a fence or a takeover half-way is worse than a journal
	 * that misses their progress, which is written again on recovery) */
	bool journal_down;
	int journal_rc;                /* what the last failure was (-errno) */
	uint64_t journal_down_ns;      /* when the outage began */
	uint64_t refused, refused_now; /* plans refused: ever, in this outage */
};

/* journal may be NULL. Unfinished plans in the journal are resumed (their
 * finished steps are not run again) at the first rcv_exec_tick(). */
int rcv_exec_init(struct rcv_exec *x, const struct rcv_exec_ops *ops, void *opaque,
                  struct rcv_journal *journal, uint64_t now_ns);
void rcv_exec_fini(struct rcv_exec *x);

/* Journals the plan, then starts it. *id (may be NULL) gets its id.
 * -EBUSY when RCV_EXEC_MAX_RUNS plans are in progress; the journal's error
 * (-ENOSPC, -EIO, ...) when it cannot record it, or has failed and not been
 * retried successfully since (then nothing is done: an action we could not
 * journal could be repeated after a crash). */
int rcv_exec_start(struct rcv_exec *x, const struct rcv_plan *p, uint64_t now_ns, uint64_t *id);

/* After a journal failure: probes the journal (rcv_journal_probe), then
 * writes what it missed (the steps of the plans in progress, the ends of
 * the plans that finished meanwhile). 0 when it is healthy again (new
 * plans are accepted), -errno otherwise; 0 at once when it never failed. */
int rcv_exec_journal_retry(struct rcv_exec *x);

/* The action of step i of run id ended: rc 0 or -errno, msg says what
 * happened; -EAGAIN: interrupted, to be tried again within the step's
 * timeout. Late or unknown completions are ignored (returns -ENOENT). */
int rcv_exec_step_done(struct rcv_exec *x, uint64_t id, unsigned i, int rc, const char *msg,
                       uint64_t now_ns);

/* Run id rests on more than the membership now (a fault of the blade's own
 * joined the one raised when it left): a restart no longer questions its
 * fence. Journaled. 0, -ENOENT for a run not in progress. */
int rcv_exec_evidence_found(struct rcv_exec *x, uint64_t id, uint64_t now_ns);

/* Deadlines and quorum waits. Call at rcv_exec_next_deadline() and when
 * quorum changes. */
void rcv_exec_tick(struct rcv_exec *x, uint64_t now_ns);
/* 0 if nothing is waiting for time. */
uint64_t rcv_exec_next_deadline(const struct rcv_exec *x);

/* Lookups for status. */
const struct rcv_run *rcv_exec_find(const struct rcv_exec *x, uint64_t id);
/* A plan in progress that acts on this VM (or on this blade when vm is
 * NULL): so that one fault is not planned twice. */
const struct rcv_run *rcv_exec_busy(const struct rcv_exec *x, int blade, const char *vm);

#endif
