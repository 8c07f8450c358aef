/*
 * recovery journal: every plan and every step's progress is appended to a
 * file and flushed to disk before the step acts, so that a daemon that
 * crashes or restarts in the middle of a recovery neither repeats a
 * finished step nor forgets the plan.
 *
 * One record per line, "rcvj1 SEQ TYPE key=value... *CHECKSUM": a line
 * whose checksum does not match (a write torn by a crash, a damaged disk)
 * is skipped and counted, never trusted. Compaction rewrites the journal
 * with the unfinished plans only, atomically (write, fsync, rename).
 *
 * A record that cannot be written whole and flushed (ENOSPC, EDQUOT, EIO)
 * is cut off again (ftruncate to the end of the last good record), so the
 * next record never glues itself to a fragment; the caller is told and
 * decides (recovery refuses new plans until rcv_journal_probe() succeeds).
 */
#ifndef RCV_JOURNAL_H
#define RCV_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rcv_plan.h"

enum rcv_step_state {
	RCV_ST_PENDING = 0,
	RCV_ST_STARTED, /* begun: after a restart it may or may not have happened */
	RCV_ST_DONE,
	RCV_ST_FAILED,
	RCV_ST_COUNT
};
extern const char *const rcv_step_state_names[RCV_ST_COUNT];

#define RCV_JOURNAL_MAX_PLANS 64

struct rcv_jplan {
	uint64_t id;
	struct rcv_plan plan;
	uint8_t state[RCV_MAX_STEPS]; /* enum rcv_step_state */
	bool finished;
};

struct rcv_journal {
	int fd;
	char path[512];
	uint64_t seq;
	unsigned n_plans; /* unfinished plans (replayed, then kept up to date) */
	struct rcv_jplan plans[RCV_JOURNAL_MAX_PLANS];
	unsigned bad_lines;  /* skipped at replay: torn or damaged */
	uint64_t records;    /* appended since the last compaction */
	off_t size;          /* end of the last complete record */
	bool torn;           /* a failed write left bytes beyond size that are not cut yet */
	int open_compact_rc; /* a torn journal could not be compacted at open (cut instead) */
};

/* Opens (creating it 0600 if needed) and replays the journal. Unfinished
 * plans are in j->plans afterwards. Returns 0 or -errno. */
int rcv_journal_open(struct rcv_journal *j, const char *path);
void rcv_journal_close(struct rcv_journal *j);

/* Each returns once the record is on disk (fdatasync): 0, -EINVAL (unknown
 * plan or step, an id used twice), -EMSGSIZE (a record too long), -EBUSY
 * (RCV_JOURNAL_MAX_PLANS unfinished plans), or the write's error (-ENOSPC,
 * -EDQUOT, -EIO, ...: nothing of the record stays in the file). */
int rcv_journal_plan(struct rcv_journal *j, uint64_t id, const struct rcv_plan *p);
int rcv_journal_step(struct rcv_journal *j, uint64_t id, unsigned step, enum rcv_step_state st);
int rcv_journal_finish(struct rcv_journal *j, uint64_t id);
/* What plan id rests on changed (evidence of a blade's own fault joined a
 * fault raised when it left the membership). */
int rcv_journal_evidence(struct rcv_journal *j, uint64_t id, bool membership_only);

/* Rewrites the journal with the unfinished plans only, atomically: if any
 * part fails the old journal stays as it was, and in use. */
int rcv_journal_compact(struct rcv_journal *j);

/* Whether the journal can be written again: appends (and flushes) a mark
 * record of RCV_JOURNAL_PROBE_BYTES, as large as a usual plan record, that
 * replay ignores. 0 or -errno (the mark is cut off again on failure). */
#define RCV_JOURNAL_PROBE_BYTES 1024
int rcv_journal_probe(struct rcv_journal *j);

#endif
