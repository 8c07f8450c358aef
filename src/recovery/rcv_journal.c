/*
 * recovery journal: see rcv_journal.h.
 *
 *   rcvj1 12 plan id=5 fault=7 class=fence-and-failover owner=4 steps=fence:3:-:30000:notify,... *3f2a91c0
 *   rcvj1 13 step id=5 n=0 state=started *...
 *   rcvj1 14 finish id=5 *...
 *   rcvj1 15 mark pad=......... *...   (rcv_journal_probe: ignored at replay)
 */
#include "config.h"

#include "rcv_journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_util.h"

#define LINE_MAX_LEN 16384

const char *const rcv_step_state_names[RCV_ST_COUNT] = {
        [RCV_ST_PENDING] = "pending",
        [RCV_ST_STARTED] = "started",
        [RCV_ST_DONE] = "done",
        [RCV_ST_FAILED] = "failed",
};

static uint32_t checksum(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)s[i]) * 16777619u;
	return h;
}

static struct rcv_jplan *find(struct rcv_journal *j, uint64_t id)
{
	for (unsigned i = 0; i < j->n_plans; i++) {
		if (j->plans[i].id == id)
			return &j->plans[i];
	}
	return NULL;
}

static void drop(struct rcv_journal *j, struct rcv_jplan *p)
{
	unsigned i = (unsigned)(p - j->plans);

	memmove(&j->plans[i], &j->plans[i + 1], (j->n_plans - i - 1) * sizeof(j->plans[0]));
	j->n_plans--;
}

/* ---- encoding ------------------------------------------------------------------------ */

static int encode_plan(char *buf, size_t len, uint64_t id, const struct rcv_plan *p)
{
	size_t pos;
	int n = snprintf(buf, len, "plan id=%llu fault=%llu class=%s owner=%d evidence=%s steps=",
	                 (unsigned long long)id, (unsigned long long)p->fault_id,
	                 af_rclass_names[p->rclass], p->owner,
	                 p->membership_only ? "membership" : "events");

	if (n < 0 || (size_t)n >= len)
		return -EMSGSIZE;
	pos = (size_t)n;
	for (unsigned i = 0; i < p->n_steps; i++) {
		const struct rcv_step *s = &p->steps[i];

		n = snprintf(buf + pos, len - pos, "%s%s:%d:%s:%u:%s", i ? "," : "",
		             rcv_step_names[s->kind], s->blade, s->vm[0] ? s->vm : "-",
		             s->timeout_ms, rcv_step_names[s->on_fail_escalate]);
		if (n < 0 || (size_t)n >= len - pos)
			return -EMSGSIZE;
		pos += (size_t)n;
	}
	return (int)pos;
}

static int parse_kind(const char *s)
{
	return af_enum_parse(rcv_step_names, RCV_STEP_COUNT, s);
}

static int decode_steps(char *s, struct rcv_plan *p)
{
	char *save = NULL;

	for (char *step = strtok_r(s, ",", &save); step; step = strtok_r(NULL, ",", &save)) {
		char *f[5], *save2 = NULL;
		struct rcv_step *st;
		uint64_t v;
		int k, e, nf = 0;

		for (char *t = strtok_r(step, ":", &save2); t && nf < 5;
		     t = strtok_r(NULL, ":", &save2))
			f[nf++] = t;
		if (nf != 5 || p->n_steps == RCV_MAX_STEPS)
			return -EINVAL;
		st = &p->steps[p->n_steps];
		memset(st, 0, sizeof(*st));
		k = parse_kind(f[0]);
		e = parse_kind(f[4]);
		if (k < 0 || e < 0 || af_parse_u64(f[1], 0, AF_MAX_BLADES, &v) < 0)
			return -EINVAL;
		st->kind = (enum rcv_step_kind)k;
		st->on_fail_escalate = (enum rcv_step_kind)e;
		st->blade = (int)v;
		if (strcmp(f[2], "-") != 0 &&
		    af_strlcpy(st->vm, f[2], sizeof(st->vm)) >= sizeof(st->vm))
			return -EINVAL;
		if (af_parse_u64(f[3], 0, UINT32_MAX, &v) < 0)
			return -EINVAL;
		st->timeout_ms = (uint32_t)v;
		p->n_steps++;
	}
	return 0;
}

static const char *val(char **kv, int n, const char *key)
{
	size_t kl = strlen(key);

	for (int i = 0; i < n; i++) {
		if (strncmp(kv[i], key, kl) == 0 && kv[i][kl] == '=')
			return kv[i] + kl + 1;
	}
	return NULL;
}

/* Applies one verified record ("TYPE key=value..."). */
static int apply(struct rcv_journal *j, char *rec)
{
	char *kv[16], *save = NULL, *type = strtok_r(rec, " ", &save);
	const char *v;
	uint64_t id, x;
	int n = 0;
	struct rcv_jplan *p;

	if (type == NULL)
		return -EINVAL;
	if (strcmp(type, "mark") == 0)
		return 0;
	for (char *t = strtok_r(NULL, " ", &save); t && n < 16; t = strtok_r(NULL, " ", &save))
		kv[n++] = t;
	if ((v = val(kv, n, "id")) == NULL || af_parse_u64(v, 1, UINT64_MAX, &id) < 0)
		return -EINVAL;
	p = find(j, id);
	if (strcmp(type, "plan") == 0) {
		struct rcv_plan plan;
		int rc;
		char steps[LINE_MAX_LEN];

		memset(&plan, 0, sizeof(plan));
		if ((v = val(kv, n, "fault")) == NULL || af_parse_u64(v, 0, UINT64_MAX, &x) < 0)
			return -EINVAL;
		plan.fault_id = x;
		if ((v = val(kv, n, "class")) == NULL ||
		    (rc = af_enum_parse(af_rclass_names, AF_RC_COUNT, v)) < 0)
			return -EINVAL;
		plan.rclass = (enum af_recovery_class)rc;
		if ((v = val(kv, n, "owner")) == NULL || af_parse_u64(v, 0, AF_MAX_BLADES, &x) < 0)
			return -EINVAL;
		plan.owner = (int)x;
		/* absent in a journal written before plans carried it: events,
		 * which a resumed plan does not question (the old behaviour) */
		if ((v = val(kv, n, "evidence")) != NULL) {
			if (strcmp(v, "membership") == 0)
				plan.membership_only = true;
			else if (strcmp(v, "events") != 0)
				return -EINVAL;
		}
		if ((v = val(kv, n, "steps")) == NULL ||
		    af_strlcpy(steps, v, sizeof(steps)) >= sizeof(steps) ||
		    decode_steps(steps, &plan) < 0)
			return -EINVAL;
		if (p != NULL || j->n_plans == RCV_JOURNAL_MAX_PLANS)
			return -EEXIST;
		p = &j->plans[j->n_plans++];
		memset(p, 0, sizeof(*p));
		p->id = id;
		p->plan = plan;
		return 0;
	}
	if (p == NULL)
		return 0; /* a plan compacted away: nothing to update */
	if (strcmp(type, "step") == 0) {
		int st;

		if ((v = val(kv, n, "n")) == NULL ||
		    af_parse_u64(v, 0, RCV_MAX_STEPS - 1, &x) < 0 || x >= p->plan.n_steps ||
		    (v = val(kv, n, "state")) == NULL ||
		    (st = af_enum_parse(rcv_step_state_names, RCV_ST_COUNT, v)) < 0)
			return -EINVAL;
		p->state[x] = (uint8_t)st;
		return 0;
	}
	if (strcmp(type, "finish") == 0) {
		drop(j, p);
		return 0;
	}
	if (strcmp(type, "evidence") == 0) {
		if ((v = val(kv, n, "evidence")) == NULL)
			return -EINVAL;
		if (strcmp(v, "membership") == 0)
			p->plan.membership_only = true;
		else if (strcmp(v, "events") == 0)
			p->plan.membership_only = false;
		else
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

/* ---- appending ------------------------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int format_line(char *line, size_t len, uint64_t seq, const char *rec)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "rcvj1 %llu ", (unsigned long long)seq);
	size_t hl = (size_t)n, rl = strlen(rec);
	uint32_t c;

	if (hl + rl + 12 >= len)
		return -EMSGSIZE;
	memcpy(line, head, hl);
	memcpy(line + hl, rec, rl);
	c = checksum(line, hl + rl);
	n = snprintf(line + hl + rl, len - hl - rl, " *%08x\n", c);
	return (int)(hl + rl) + n;
}

/* Cuts off whatever a failed append left after the last good record. */
static int cut_tail(struct rcv_journal *j)
{
	while (ftruncate(j->fd, j->size) < 0) {
		if (errno != EINTR) {
			j->torn = true;
			return -errno;
		}
	}
	j->torn = false;
	return 0;
}

static int append(struct rcv_journal *j, const char *rec)
{
	char line[LINE_MAX_LEN];
	int n, rc;

	if (j->fd < 0)
		return -EBADF;
	n = format_line(line, sizeof(line), j->seq + 1, rec);
	if (n < 0)
		return n;
	/* a fragment left by an earlier failure would prefix this record */
	if (j->torn && (rc = cut_tail(j)) < 0)
		return rc;
	rc = write_all(j->fd, line, (size_t)n);
	if (rc == 0 && fdatasync(j->fd) < 0)
		rc = -errno;
	if (rc < 0) {
		/* part of the line, or all of it unflushed: not a record. The
		 * error that counts is the write's, not the cut's. */
		(void)cut_tail(j);
		return rc;
	}
	j->size += n;
	j->seq++;
	j->records++;
	return 0;
}

int rcv_journal_probe(struct rcv_journal *j)
{
	char rec[RCV_JOURNAL_PROBE_BYTES];
	size_t n = strlen("mark pad=");

	if (j == NULL)
		return -EINVAL;
	memcpy(rec, "mark pad=", n);
	memset(rec + n, '.', sizeof(rec) - n - 1);
	rec[sizeof(rec) - 1] = '\0';
	return append(j, rec);
}

int rcv_journal_plan(struct rcv_journal *j, uint64_t id, const struct rcv_plan *p)
{
	char rec[LINE_MAX_LEN];
	int rc;

	if (j == NULL || p == NULL || id == 0 || find(j, id) != NULL)
		return -EINVAL;
	if (j->n_plans == RCV_JOURNAL_MAX_PLANS)
		return -EBUSY;
	rc = encode_plan(rec, sizeof(rec), id, p);
	if (rc < 0)
		return rc;
	rc = append(j, rec);
	if (rc < 0)
		return rc;
	memset(&j->plans[j->n_plans], 0, sizeof(j->plans[0]));
	j->plans[j->n_plans].id = id;
	j->plans[j->n_plans].plan = *p;
	j->n_plans++;
	return 0;
}

int rcv_journal_step(struct rcv_journal *j, uint64_t id, unsigned step, enum rcv_step_state st)
{
	struct rcv_jplan *p = j ? find(j, id) : NULL;
	char rec[128];
	int rc;

	if (p == NULL || step >= p->plan.n_steps || (unsigned)st >= RCV_ST_COUNT)
		return -EINVAL;
	snprintf(rec, sizeof(rec), "step id=%llu n=%u state=%s", (unsigned long long)id, step,
	         rcv_step_state_names[st]);
	rc = append(j, rec);
	if (rc == 0)
		p->state[step] = (uint8_t)st;
	return rc;
}

int rcv_journal_evidence(struct rcv_journal *j, uint64_t id, bool membership_only)
{
	struct rcv_jplan *p = j ? find(j, id) : NULL;
	char rec[96];
	int rc;

	if (p == NULL)
		return -EINVAL;
	snprintf(rec, sizeof(rec), "evidence id=%llu evidence=%s", (unsigned long long)id,
	         membership_only ? "membership" : "events");
	rc = append(j, rec);
	if (rc == 0)
		p->plan.membership_only = membership_only;
	return rc;
}

int rcv_journal_finish(struct rcv_journal *j, uint64_t id)
{
	struct rcv_jplan *p = j ? find(j, id) : NULL;
	char rec[64];
	int rc;

	if (p == NULL)
		return -EINVAL;
	snprintf(rec, sizeof(rec), "finish id=%llu", (unsigned long long)id);
	rc = append(j, rec);
	if (rc == 0)
		drop(j, p);
	return rc;
}

/* ---- replay, compaction ------------------------------------------------------------------ */

/* Returns the end of the last complete line (a torn tail starts there). */
static size_t replay(struct rcv_journal *j, char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		char *line = buf + pos, *star, *end, *rec;
		unsigned long long seq;
		uint32_t want;

		if (nl == NULL) {
			j->bad_lines++; /* a torn last write */
			return pos;
		}
		*nl = '\0';
		pos = (size_t)(nl - buf) + 1;
		star = strrchr(line, '*');
		if (strncmp(line, "rcvj1 ", 6) != 0 || star == NULL || star == line ||
		    star[-1] != ' ' || strlen(star + 1) != 8) {
			j->bad_lines++;
			continue;
		}
		want = (uint32_t)strtoul(star + 1, &end, 16);
		if (*end != '\0' || checksum(line, (size_t)(star - 1 - line)) != want) {
			j->bad_lines++;
			continue;
		}
		star[-1] = '\0';
		seq = strtoull(line + 6, &rec, 10);
		/* a sign, or a number no journal reaches (compaction and the
		 * plan ids count on from it, and would wrap), is damage */
		if (*rec != ' ' || seq <= j->seq || line[6] < '0' || line[6] > '9' ||
		    seq > UINT64_MAX / 2) {
			j->bad_lines++;
			continue;
		}
		j->seq = seq;
		if (apply(j, rec + 1) < 0)
			j->bad_lines++;
	}
	return pos;
}

int rcv_journal_open(struct rcv_journal *j, const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0, good;
	int rc;

	if (j == NULL || path == NULL)
		return -EINVAL;
	memset(j, 0, sizeof(*j));
	j->fd = -1;
	if (af_strlcpy(j->path, path, sizeof(j->path)) >= sizeof(j->path))
		return -ENAMETOOLONG;
	j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0)
		return -errno;
	if (fstat(j->fd, &st) < 0) {
		rc = -errno;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto fail;
	}
	if (st.st_size > 64 * 1024 * 1024) {
		rc = -EFBIG;
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = pread(j->fd, buf + len, (size_t)st.st_size - len, (off_t)len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	good = replay(j, buf, len);
	free(buf);
	j->size = (off_t)len;
	if (j->bad_lines == 0)
		return 0;
	/* a torn tail would glue itself to the next record: start afresh */
	rc = rcv_journal_compact(j);
	if (rc == 0)
		return 0;
	/* no room for a rewrite (a full disk is a likely reason for the torn
	 * tail): cutting the tail off needs none, and damaged complete lines
	 * are skipped at every replay anyway */
	j->open_compact_rc = rc;
	j->size = (off_t)good;
	rc = cut_tail(j);
	if (rc == 0)
		return 0;
fail:
	close(j->fd);
	j->fd = -1;
	return rc;
}

int rcv_journal_compact(struct rcv_journal *j)
{
	char tmp[600], line[LINE_MAX_LEN], rec[LINE_MAX_LEN];
	uint64_t seq = j->seq;
	off_t size = 0;
	int fd, rc = 0, dfd;
	char *slash;

	snprintf(tmp, sizeof(tmp), "%s.new", j->path);
	/* opened for appending: after the rename it is the journal, so that no
	 * open() can fail (EMFILE) between the rename and the next record */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (unsigned i = 0; i < j->n_plans && rc == 0; i++) {
		const struct rcv_jplan *p = &j->plans[i];
		int n;

		rc = encode_plan(rec, sizeof(rec), p->id, &p->plan);
		if (rc < 0)
			break;
		n = format_line(line, sizeof(line), ++seq, rec);
		rc = n < 0 ? n : write_all(fd, line, (size_t)n);
		for (unsigned s = 0; rc == 0 && s < p->plan.n_steps; s++) {
			if (p->state[s] == RCV_ST_PENDING)
				continue;
			snprintf(rec, sizeof(rec), "step id=%llu n=%u state=%s",
			         (unsigned long long)p->id, s, rcv_step_state_names[p->state[s]]);
			n = format_line(line, sizeof(line), ++seq, rec);
			rc = n < 0 ? n : write_all(fd, line, (size_t)n);
		}
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && (size = lseek(fd, 0, SEEK_END)) < 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, j->path) < 0)
		rc = -errno;
	if (rc < 0) {
		/* the old journal is untouched and stays in use */
		close(fd);
		unlink(tmp);
		return rc;
	}
	/* the rename itself must survive a crash */
	af_strlcpy(tmp, j->path, sizeof(tmp));
	slash = strrchr(tmp, '/');
	if (slash != NULL) {
		*slash = '\0';
		dfd = open(slash == tmp ? "/" : tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->size = size;
	j->torn = false;
	j->seq = seq;
	j->records = 0;
	return 0;
}

void rcv_journal_close(struct rcv_journal *j)
{
	if (j != NULL && j->fd >= 0) {
		close(j->fd);
		j->fd = -1;
	}
}
