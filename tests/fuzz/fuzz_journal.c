/*
 * libFuzzer target: the recovery journal (src/recovery/rcv_journal.c) as
 * atca-ftd replays it at start, to finish the recovery plans a crash or a
 * restart interrupted. The input is the journal file; it is opened
 * (replayed: line checks, checksums, sequence numbers, plan/step/finish
 * records), compacted if any line was bad, then opened again.
 *
 * A per-line checksum is a wall mutation does not climb: a line ending in
 * " *00000000" gets its checksum computed here (FNV-1a 32, as the journal
 * writes it), so the record after it stays under test; any other value is
 * verified as is.
 *
 * Checked: opening succeeds on any content; what is replayed is a set of at
 * most RCV_JOURNAL_MAX_PLANS unfinished plans with distinct non-zero ids,
 * steps of known kinds, blades in range, step states known and only for
 * steps the plan has; compaction writes exactly these plans back (opening
 * the compacted journal gives the same plans, steps, states and no bad
 * line); appending to a replayed journal works (a new plan, then finish).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rcv_journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static char path[64], path_new[80];

static void cleanup(void)
{
	unlink(path);
	unlink(path_new);
}

static uint32_t fnv(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static void check_plans(const struct rcv_journal *j)
{
	expect(j->n_plans <= RCV_JOURNAL_MAX_PLANS);
	for (unsigned i = 0; i < j->n_plans; i++) {
		const struct rcv_jplan *p = &j->plans[i];

		expect(p->id != 0);
		for (unsigned k = 0; k < i; k++)
			expect(j->plans[k].id != p->id);
		expect((unsigned)p->plan.rclass < AF_RC_COUNT);
		expect(p->plan.n_steps <= RCV_MAX_STEPS);
		expect(p->plan.owner >= 0 && p->plan.owner <= AF_MAX_BLADES);
		for (unsigned s = 0; s < RCV_MAX_STEPS; s++) {
			expect(p->state[s] < RCV_ST_COUNT);
			expect(s < p->plan.n_steps || p->state[s] == RCV_ST_PENDING);
		}
		for (unsigned s = 0; s < p->plan.n_steps; s++) {
			const struct rcv_step *st = &p->plan.steps[s];

			expect((unsigned)st->kind < RCV_STEP_COUNT &&
			       (unsigned)st->on_fail_escalate < RCV_STEP_COUNT);
			expect(st->blade >= 0 && st->blade <= AF_MAX_BLADES);
			expect(memchr(st->vm, '\0', sizeof(st->vm)) != NULL);
		}
	}
}

static bool same_plans(const struct rcv_journal *a, const struct rcv_journal *b)
{
	if (a->n_plans != b->n_plans)
		return false;
	for (unsigned i = 0; i < a->n_plans; i++) {
		const struct rcv_jplan *p = &a->plans[i], *q = &b->plans[i];

		if (p->id != q->id || p->plan.fault_id != q->plan.fault_id ||
		    p->plan.rclass != q->plan.rclass || p->plan.owner != q->plan.owner ||
		    p->plan.n_steps != q->plan.n_steps ||
		    memcmp(p->state, q->state, sizeof(p->state)) != 0)
			return false;
		for (unsigned s = 0; s < p->plan.n_steps; s++) {
			const struct rcv_step *x = &p->plan.steps[s], *y = &q->plan.steps[s];

			if (x->kind != y->kind || x->blade != y->blade ||
			    strcmp(x->vm, y->vm) != 0 || x->timeout_ms != y->timeout_ms ||
			    x->on_fail_escalate != y->on_fail_escalate)
				return false;
		}
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rcv_journal j, back;
	char *buf;
	int fd;

	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/dev/shm/fuzz-journal-%d", (int)getpid());
		snprintf(path_new, sizeof(path_new), "%s.new", path);
		atexit(cleanup);
	}
	/* checksums left as *00000000 are computed */
	buf = malloc(size + 1);
	expect(buf != NULL);
	memcpy(buf, data, size);
	buf[size] = '\0';
	for (size_t i = 0; i < size;) {
		char *nl = memchr(buf + i, '\n', size - i);
		size_t end = nl ? (size_t)(nl - buf) : size;
		static const char zero[] = " *00000000";

		if (end - i >= sizeof(zero) - 1 &&
		    memcmp(buf + end - (sizeof(zero) - 1), zero, sizeof(zero) - 1) == 0) {
			char hex[9];

			snprintf(hex, sizeof(hex), "%08x",
			         fnv(buf + i, end - (sizeof(zero) - 1) - i));
			memcpy(buf + end - 8, hex, 8);
		}
		i = end + 1;
	}
	unlink(path_new);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	expect(fd >= 0);
	expect(write(fd, buf, size) == (ssize_t)size);
	close(fd);
	free(buf);

	expect(rcv_journal_open(&j, path) == 0);
	check_plans(&j);
	/* what was replayed (and compacted if a line was bad) is what a second
	 * start replays, with nothing bad left */
	expect(rcv_journal_compact(&j) == 0);
	expect(rcv_journal_open(&back, path) == 0);
	expect(back.bad_lines == 0);
	expect(same_plans(&j, &back));
	rcv_journal_close(&back);
	/* and it can be written to */
	if (j.n_plans < RCV_JOURNAL_MAX_PLANS) {
		struct rcv_plan p;
		uint64_t id = 1;

		memset(&p, 0, sizeof(p));
		p.rclass = (enum af_recovery_class)0;
		p.owner = 1;
		p.n_steps = 1;
		p.steps[0].blade = 2;
		for (unsigned i = 0; i < j.n_plans; i++)
			if (j.plans[i].id >= id)
				id = j.plans[i].id + 1;
		if (id != 0) {
			expect(rcv_journal_plan(&j, id, &p) == 0);
			expect(rcv_journal_step(&j, id, 0, RCV_ST_DONE) == 0);
			expect(rcv_journal_finish(&j, id) == 0);
		}
	}
	rcv_journal_close(&j);
	return 0;
}
