/*
 * The plan runner: see rcv_exec.h.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include "rcv_exec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "af_log.h"
#include "af_util.h"

const char *const rcv_run_state_names[RCV_RUN_STATE_COUNT] = {"running", "waiting-quorum", "done",
                                                              "failed"};

static bool takeover_step(enum rcv_step_kind k)
{
	return k == RCV_STEP_START_VM || k == RCV_STEP_PROMOTE || k == RCV_STEP_MIGRATE ||
	       k == RCV_STEP_WAIT_QUORUM;
}

/* A fence resumed from the journal whose only evidence was the blade
 * leaving the membership first waits for quorum: only a quorate daemon
 * knows the membership well enough to tell whether that still holds (a
 * daemon just started may not have heard of any member yet). */
static bool needs_quorum(const struct rcv_run *r, const struct rcv_step *s)
{
	return takeover_step(s->kind) ||
	       (s->kind == RCV_STEP_FENCE && r->from_journal && r->plan.membership_only);
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void journal_failed(struct rcv_exec *x, int rc, uint64_t now_ns)
{
	x->journal_errors++;
	x->journal_rc = rc;
	if (x->journal_down)
		return;
	x->journal_down = true;
	x->journal_down_ns = now_ns;
	x->refused_now = 0;
	if (x->ops->journal_down != NULL)
		x->ops->journal_down(x->opaque, rc);
}

static void journal_step(struct rcv_exec *x, struct rcv_run *r, unsigned i, enum rcv_step_state st,
                         uint64_t now)
{
	int rc;

	r->st[i] = (uint8_t)st;
	if (x->journal == NULL)
		return;
	/* while the journal is down its plan records are stale: the retry
	 * writes this step's state once it can */
	rc = x->journal_down ? x->journal_rc : rcv_journal_step(x->journal, r->id, i, st);
	if (rc < 0) {
		af_err("recovery: plan %llu: step %u could not be journaled (%s: %s): a restart "
		       "could repeat it",
		       (unsigned long long)r->id, i + 1, rcv_step_state_names[st], strerror(-rc));
		journal_failed(x, rc, now);
	}
}

static void archive(struct rcv_exec *x, struct rcv_run *r)
{
	unsigned slot;

	if (x->hist_len < RCV_EXEC_HISTORY) {
		slot = (x->hist_head + x->hist_len++) % RCV_EXEC_HISTORY;
	} else {
		slot = x->hist_head;
		x->hist_head = (x->hist_head + 1) % RCV_EXEC_HISTORY;
		free(x->hist[slot]);
	}
	x->hist[slot] = r;
}

static void end_run(struct rcv_exec *x, struct rcv_run *r, bool ok, uint64_t now)
{
	r->state = ok ? RCV_RUN_DONE : RCV_RUN_FAILED;
	r->ended_ns = now;
	if (ok)
		x->n_done++;
	else
		x->n_failed++;
	if (x->journal != NULL && !x->journal_down) {
		int rc = rcv_journal_finish(x->journal, r->id);

		if (rc < 0) {
			af_err("recovery: plan %llu: its end could not be journaled (%s)",
			       (unsigned long long)r->id, strerror(-rc));
			journal_failed(x, rc, now);
		}
	}
	if (ok)
		af_notice("recovery: plan %llu done in %.1f ms: %s", (unsigned long long)r->id,
		          ms(now - r->started_ns), r->plan.summary);
	else
		af_err("recovery: plan %llu FAILED at step %u (%s) after %.1f ms: %s",
		       (unsigned long long)r->id, r->cur + 1,
		       r->cur < r->plan.n_steps ? rcv_step_names[r->plan.steps[r->cur].kind] : "-",
		       ms(now - r->started_ns), r->cur < r->plan.n_steps ? r->msg[r->cur] : "");
	for (unsigned i = 0; i < x->n_runs; i++) {
		if (x->runs[i] == r) {
			x->runs[i] = x->runs[--x->n_runs];
			break;
		}
	}
	if (x->ops->ended != NULL)
		x->ops->ended(x->opaque, r);
	archive(x, r);
}

/* Runs steps from r->cur on until one is asynchronous, waits or the run
 * ends. Completions that arrive from inside act() are handled by the loop
 * (r->st moves to DONE/FAILED before act returns). */
static void advance(struct rcv_exec *x, struct rcv_run *r, uint64_t now)
{
	r->resumed = false;
	for (;;) {
		const struct rcv_step *s;
		enum rcv_step_kind kind;
		int rc;

		if (r->cur >= r->plan.n_steps) {
			end_run(x, r, true, now);
			return;
		}
		s = &r->plan.steps[r->cur];
		if (r->st[r->cur] == RCV_ST_DONE) {
			r->cur++;
			continue;
		}
		if (r->st[r->cur] == RCV_ST_FAILED) {
			end_run(x, r, false, now);
			return;
		}
		if (r->st[r->cur] == RCV_ST_STARTED)
			return; /* in progress */
		if (needs_quorum(r, s) && !x->ops->quorate(x->opaque)) {
			if (r->state != RCV_RUN_WAITING) {
				r->state = RCV_RUN_WAITING;
				r->deadline_ns =
				        now + (uint64_t)(s->timeout_ms ? s->timeout_ms : 30000) *
				                      1000000ULL;
				af_warn("recovery: plan %llu step %u (%s%s%s) waits for quorum: %s",
				        (unsigned long long)r->id, r->cur + 1,
				        rcv_step_names[s->kind], s->vm[0] ? " " : "", s->vm,
				        takeover_step(s->kind)
				                ? "no takeover without it"
				                : "the membership that made the plan must be checked");
			}
			return;
		}
		r->state = RCV_RUN_RUNNING;
		if (s->kind == RCV_STEP_WAIT_QUORUM) {
			af_notice("recovery: plan %llu step %u: quorate", (unsigned long long)r->id,
			          r->cur + 1);
			r->t_start[r->cur] = r->t_end[r->cur] = now;
			journal_step(x, r, r->cur, RCV_ST_DONE, now);
			r->cur++;
			continue;
		}
		kind = r->escalated ? RCV_STEP_FENCE : s->kind;
		r->t_start[r->cur] = now;
		if (r->t_first[r->cur] == 0)
			r->t_first[r->cur] = now;
		r->t_end[r->cur] = 0;
		r->msg[r->cur][0] = '\0';
		r->deadline_ns =
		        now +
		        (uint64_t)(r->escalated ? x->fence_timeout_ms : s->timeout_ms) * 1000000ULL;
		if (s->timeout_ms == 0)
			r->deadline_ns = now + 10000000000ULL; /* notify: 10 s is plenty */
		journal_step(x, r, r->cur, RCV_ST_STARTED, now);
		af_notice("recovery: plan %llu step %u/%u %s blade %d%s%s: begin (timeout %u ms)%s",
		          (unsigned long long)r->id, r->cur + 1, r->plan.n_steps,
		          rcv_step_names[kind], s->blade, s->vm[0] ? " vm " : "", s->vm,
		          s->timeout_ms,
		          r->escalated ? " [escalated: the VM could not be stopped]" : "");
		rc = x->ops->act(x->opaque, r, r->cur, kind);
		if (rc == -EAGAIN &&
		    now < r->t_first[r->cur] + (uint64_t)s->timeout_ms * 1000000ULL) {
			/* not possible yet (no shelf-manager session just after a
			 * start): the same step again shortly, within its budget */
			r->st[r->cur] = RCV_ST_PENDING;
			r->deadline_ns = now + RCV_EXEC_RETRY_NS;
			return;
		}
		if (rc < 0) {
			char m[96];

			snprintf(m, sizeof(m), "could not start: %s", strerror(-rc));
			rcv_exec_step_done(x, r->id, r->cur, rc, m, now);
			return; /* step_done advanced (or ended) the run */
		}
		if (r->st[r->cur] == RCV_ST_STARTED)
			return; /* asynchronous: wait for rcv_exec_step_done */
		/* it completed inside act(): rcv_exec_step_done has moved on */
		return;
	}
}

static struct rcv_run *find_active(const struct rcv_exec *x, uint64_t id)
{
	for (unsigned i = 0; i < x->n_runs; i++) {
		if (x->runs[i]->id == id)
			return x->runs[i];
	}
	return NULL;
}

int rcv_exec_init(struct rcv_exec *x, const struct rcv_exec_ops *ops, void *opaque,
                  struct rcv_journal *journal, uint64_t now_ns)
{
	if (x == NULL || ops == NULL || ops->act == NULL || ops->quorate == NULL)
		return -EINVAL;
	memset(x, 0, sizeof(*x));
	x->ops = ops;
	x->opaque = opaque;
	x->journal = journal;
	x->next_id = 1;
	x->fence_timeout_ms = 30000;
	if (journal == NULL)
		return 0;
	if (journal->seq + 1 > x->next_id)
		x->next_id = journal->seq + 1;
	for (unsigned i = 0; i < journal->n_plans && x->n_runs < RCV_EXEC_MAX_RUNS; i++) {
		const struct rcv_jplan *jp = &journal->plans[i];
		struct rcv_run *r = calloc(1, sizeof(*r));

		if (r == NULL)
			return -ENOMEM;
		r->id = jp->id;
		r->plan = jp->plan;
		memcpy(r->st, jp->state, sizeof(r->st));
		r->started_ns = now_ns;
		r->resumed = r->from_journal = true;
		r->state = RCV_RUN_RUNNING;
		/* a step that was begun may or may not have acted: every action
		 * is idempotent (a running VM is not started twice, a stopped one
		 * is not stopped twice, an off blade stays off), so it runs again */
		for (unsigned k = 0; k < r->plan.n_steps; k++) {
			if (r->st[k] == RCV_ST_STARTED)
				r->st[k] = RCV_ST_PENDING;
			if (r->st[k] == RCV_ST_DONE)
				r->cur = k + 1;
		}
		if (r->plan.summary[0] == '\0')
			snprintf(r->plan.summary, sizeof(r->plan.summary), "%s (resumed)",
			         af_rclass_names[r->plan.rclass]);
		if (jp->id >= x->next_id)
			x->next_id = jp->id + 1;
		x->runs[x->n_runs++] = r;
		af_notice("recovery: plan %llu resumed from the journal at step %u of %u",
		          (unsigned long long)r->id, r->cur + 1, r->plan.n_steps);
	}
	return 0;
}

int rcv_exec_journal_retry(struct rcv_exec *x)
{
	struct rcv_journal *j;
	int rc;

	if (x == NULL)
		return -EINVAL;
	j = x->journal;
	if (!x->journal_down || j == NULL)
		return 0;
	rc = rcv_journal_probe(j);
	if (rc < 0)
		goto fail;
	/* plans that ended while it was down: their ends */
	for (unsigned i = 0; i < j->n_plans;) {
		if (find_active(x, j->plans[i].id) != NULL) {
			i++;
			continue;
		}
		rc = rcv_journal_finish(j, j->plans[i].id); /* drops plans[i] */
		if (rc < 0)
			goto fail;
	}
	/* the steps of plans in progress that it missed */
	for (unsigned i = 0; i < j->n_plans; i++) {
		struct rcv_jplan *jp = &j->plans[i];
		const struct rcv_run *r = find_active(x, jp->id);

		if (r != NULL && r->plan.membership_only != jp->plan.membership_only) {
			rc = rcv_journal_evidence(j, jp->id, r->plan.membership_only);
			if (rc < 0)
				goto fail;
		}
		for (unsigned k = 0; r != NULL && k < jp->plan.n_steps; k++) {
			if (r->st[k] == jp->state[k] || r->st[k] == RCV_ST_PENDING)
				continue;
			rc = rcv_journal_step(j, jp->id, k, (enum rcv_step_state)r->st[k]);
			if (rc < 0)
				goto fail;
		}
	}
	x->journal_down = false;
	x->journal_rc = 0;
	return 0;
fail:
	x->journal_errors++;
	x->journal_rc = rc;
	return rc;
}

void rcv_exec_fini(struct rcv_exec *x)
{
	if (x == NULL)
		return;
	for (unsigned i = 0; i < x->n_runs; i++)
		free(x->runs[i]);
	for (unsigned i = 0; i < x->hist_len; i++)
		free(x->hist[(x->hist_head + i) % RCV_EXEC_HISTORY]);
	x->n_runs = 0;
	x->hist_len = 0;
}

int rcv_exec_start(struct rcv_exec *x, const struct rcv_plan *p, uint64_t now_ns, uint64_t *id)
{
	struct rcv_run *r;

	if (x == NULL || p == NULL || p->n_steps == 0 || p->n_steps > RCV_MAX_STEPS)
		return -EINVAL;
	if (x->n_runs >= RCV_EXEC_MAX_RUNS)
		return -EBUSY;
	if (x->journal_down) {
		x->refused++;
		x->refused_now++;
		af_err("recovery: plan for fault %llu REFUSED: the journal cannot be written "
		       "(%s) since %.1f s; new plans resume once it can",
		       (unsigned long long)p->fault_id, strerror(-x->journal_rc),
		       (double)(now_ns - x->journal_down_ns) / 1e9);
		return x->journal_rc;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return -ENOMEM;
	r->id = x->next_id++;
	r->plan = *p;
	r->started_ns = now_ns;
	r->state = RCV_RUN_RUNNING;
	if (x->journal != NULL) {
		int rc = rcv_journal_plan(x->journal, r->id, p);

		if (rc < 0) {
			x->next_id--;
			x->refused++;
			af_err("recovery: plan for fault %llu REFUSED: the journal cannot record it "
			       "(%s)",
			       (unsigned long long)p->fault_id, strerror(-rc));
			free(r);
			/* a plan too large (EMSGSIZE) or a full table (EBUSY) is
			 * this plan's problem, not the journal's */
			if (rc != -EINVAL && rc != -EMSGSIZE && rc != -EBUSY) {
				journal_failed(x, rc, now_ns);
				x->refused_now++;
			}
			return rc;
		}
	}
	x->runs[x->n_runs++] = r;
	if (id != NULL)
		*id = r->id;
	af_notice("recovery: plan %llu for fault %llu started: %s (%u steps)",
	          (unsigned long long)r->id, (unsigned long long)p->fault_id, p->summary,
	          p->n_steps);
	advance(x, r, now_ns);
	return 0;
}

int rcv_exec_step_done(struct rcv_exec *x, uint64_t id, unsigned i, int rc, const char *msg,
                       uint64_t now_ns)
{
	struct rcv_run *r = x ? find_active(x, id) : NULL;
	const struct rcv_step *s;

	if (r == NULL || i != r->cur || r->st[i] != RCV_ST_STARTED)
		return -ENOENT;
	s = &r->plan.steps[i];
	af_strlcpy(r->msg[i], msg ? msg : "", sizeof(r->msg[i]));
	if (rc == -EAGAIN && now_ns < r->t_first[i] + (uint64_t)(r->escalated ? x->fence_timeout_ms
	                                                                      : s->timeout_ms) *
	                                                      1000000ULL) {
		/* interrupted, not refused (a shelf-manager session lost mid-way):
		 * the same action again shortly, within the step's budget */
		af_warn("recovery: plan %llu step %u interrupted (%s): trying again",
		        (unsigned long long)id, i + 1, r->msg[i]);
		r->st[i] = RCV_ST_PENDING;
		r->deadline_ns = now_ns + RCV_EXEC_RETRY_NS;
		return 0;
	}
	r->t_end[i] = now_ns;
	if (rc == 0) {
		af_notice("recovery: plan %llu step %u %s blade %d%s%s: done in %.1f ms%s%s",
		          (unsigned long long)id, i + 1,
		          rcv_step_names[r->escalated ? RCV_STEP_FENCE : s->kind], s->blade,
		          s->vm[0] ? " vm " : "", s->vm, ms(now_ns - r->t_start[i]),
		          r->msg[i][0] ? ": " : "", r->msg[i]);
		r->escalated = false;
		journal_step(x, r, i, RCV_ST_DONE, now_ns);
		r->cur++;
		advance(x, r, now_ns);
		return 0;
	}
	af_err("recovery: plan %llu step %u %s blade %d%s%s: FAILED after %.1f ms: %s",
	       (unsigned long long)id, i + 1,
	       rcv_step_names[r->escalated ? RCV_STEP_FENCE : s->kind], s->blade,
	       s->vm[0] ? " vm " : "", s->vm, ms(now_ns - r->t_start[i]), r->msg[i]);
	if (s->kind == RCV_STEP_STOP_VM && s->on_fail_escalate == RCV_STEP_FENCE && !r->escalated) {
		/* not proven gone: the blade itself goes off instead */
		r->escalated = true;
		r->st[i] = RCV_ST_PENDING;
		r->t_start[i] = 0;
		advance(x, r, now_ns);
		return 0;
	}
	journal_step(x, r, i, RCV_ST_FAILED, now_ns);
	end_run(x, r, false, now_ns);
	return 0;
}

int rcv_exec_evidence_found(struct rcv_exec *x, uint64_t id, uint64_t now_ns)
{
	struct rcv_run *r = x ? find_active(x, id) : NULL;
	int rc;

	if (r == NULL)
		return -ENOENT;
	if (!r->plan.membership_only)
		return 0;
	r->plan.membership_only = false;
	af_notice("recovery: plan %llu: the blade's own fault confirms it: a restart finishes its "
	          "fence",
	          (unsigned long long)id);
	if (x->journal == NULL || x->journal_down)
		return 0; /* the retry writes it */
	rc = rcv_journal_evidence(x->journal, id, false);
	if (rc < 0) {
		af_err("recovery: plan %llu: its evidence could not be journaled (%s)",
		       (unsigned long long)id, strerror(-rc));
		journal_failed(x, rc, now_ns);
	}
	return 0;
}

void rcv_exec_tick(struct rcv_exec *x, uint64_t now_ns)
{
	bool again = true;

	/* a step's end can end its run and reorder x->runs: rescan */
	while (again) {
		again = false;
		for (unsigned k = 0; k < x->n_runs; k++) {
			struct rcv_run *r = x->runs[k];
			unsigned n = x->n_runs;

			if (r->state == RCV_RUN_WAITING) {
				if (x->ops->quorate(x->opaque)) {
					r->state = RCV_RUN_RUNNING;
					advance(x, r, now_ns);
				} else if (now_ns >= r->deadline_ns) {
					af_strlcpy(r->msg[r->cur], "no quorum before the deadline",
					           sizeof(r->msg[r->cur]));
					journal_step(x, r, r->cur, RCV_ST_FAILED, now_ns);
					end_run(x, r, false, now_ns);
				}
			} else if (r->resumed ||
			           (r->st[r->cur] != RCV_ST_STARTED && now_ns >= r->deadline_ns)) {
				advance(x, r, now_ns);
			} else if (now_ns >= r->deadline_ns) {
				if (x->ops->cancel != NULL)
					x->ops->cancel(x->opaque, r, r->cur);
				rcv_exec_step_done(x, r->id, r->cur, -ETIMEDOUT,
				                   "no answer before the step's timeout", now_ns);
			}
			if (x->n_runs != n || k >= x->n_runs || x->runs[k] != r) {
				again = true;
				break;
			}
		}
	}
}

uint64_t rcv_exec_next_deadline(const struct rcv_exec *x)
{
	uint64_t next = 0;

	for (unsigned k = 0; k < x->n_runs; k++) {
		const struct rcv_run *r = x->runs[k];
		uint64_t d = r->resumed ? 1 : r->deadline_ns;

		if (d != 0 && (next == 0 || d < next))
			next = d;
	}
	return next;
}

const struct rcv_run *rcv_exec_find(const struct rcv_exec *x, uint64_t id)
{
	const struct rcv_run *r = find_active(x, id);

	for (unsigned i = 0; r == NULL && i < x->hist_len; i++) {
		const struct rcv_run *h = x->hist[(x->hist_head + i) % RCV_EXEC_HISTORY];

		if (h->id == id)
			r = h;
	}
	return r;
}

const struct rcv_run *rcv_exec_busy(const struct rcv_exec *x, int blade, const char *vm)
{
	for (unsigned k = 0; k < x->n_runs; k++) {
		const struct rcv_run *r = x->runs[k];

		for (unsigned i = 0; i < r->plan.n_steps; i++) {
			const struct rcv_step *s = &r->plan.steps[i];

			if (vm != NULL && strcmp(s->vm, vm) == 0)
				return r;
			if (vm == NULL && s->blade == blade && s->kind == RCV_STEP_FENCE)
				return r;
		}
	}
	return NULL;
}
