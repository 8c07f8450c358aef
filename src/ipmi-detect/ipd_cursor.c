/*
 * Reading a SEL incrementally.
 *
 * A poll costs one Get SEL Info while nothing changed. New records are read
 * by following the "next record ID" each Get SEL Entry returns, starting
 * from the last record actually processed: IDs are never guessed or walked
 * (a walk from an ID that does not exist visits every ID up to 0xFFFE).
 *
 * - first poll ever: position at the last record; history is not news;
 * - the erase timestamp changed (any deletion moves it) or there are fewer
 *   records (controllers that do not keep the timestamp): if the last record
 *   processed went too, the SEL was cleared: read from the start;
 * - the last record processed vanished otherwise (a circular SEL overwrote
 *   it), or its id now names another record: resynchronise from the first
 *   record, skipping what is older than the last record processed;
 * - the overflow flag appears: report it (new events are being dropped);
 * - a SEL taken over from the other shelf manager (a switchover) starts
 *   after the other's last record processed, by timestamp: the two logs
 *   hold the same events under other ids, and history is not news;
 * - at most IPD_SEL_BATCH records per poll: a burst never starves sensors;
 * - a transport error before anything was delivered leaves the cursor as it
 *   was (the news of a clear or an overflow comes with the next poll).
 *
 * The cursor survives restarts (ipd_cursor_save/load), so events logged
 * while atca-ftd was down are still delivered.
 */
#include "config.h"

#include "ipd_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "af_util.h"

struct sel_info {
	uint16_t entries;
	uint32_t add_ts, erase_ts;
	bool overflow;
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* <0 transport error, 0 ok, >0 completion code */
static int get_info(struct ipd_transport *t, uint8_t addr, struct sel_info *info)
{
	uint8_t rsp[32];
	int n = t->ops->cmd(t, addr, IPD_NETFN_STORAGE, IPD_CMD_GET_SEL_INFO, NULL, 0, rsp,
	                    sizeof(rsp));

	if (n < 0)
		return n;
	if (n < 1)
		return -EPROTO;
	if (rsp[0] != IPD_CC_OK)
		return rsp[0];
	if (n < 15)
		return -EPROTO;
	info->entries = (uint16_t)(rsp[2] | rsp[3] << 8);
	info->add_ts = le32(rsp + 6);
	info->erase_ts = le32(rsp + 10);
	info->overflow = (rsp[14] & 0x80) != 0;
	return 0;
}

static int get_entry(struct ipd_transport *t, uint8_t addr, uint16_t id, uint16_t *next,
                     struct ipd_sel_rec *rec)
{
	/* reservation 0: whole-record reads need none */
	uint8_t req[6] = {0, 0, (uint8_t)(id & 0xFF), (uint8_t)(id >> 8), 0, 0xFF};
	uint8_t rsp[32];
	int n = t->ops->cmd(t, addr, IPD_NETFN_STORAGE, IPD_CMD_GET_SEL_ENTRY, req, sizeof(req),
	                    rsp, sizeof(rsp));

	if (n < 0)
		return n;
	if (n < 1)
		return -EPROTO;
	if (rsp[0] != IPD_CC_OK)
		return rsp[0];
	if (n != 19 || ipd_sel_decode(rsp + 3, 16, rec) < 0)
		return -EPROTO;
	*next = (uint16_t)(rsp[1] | rsp[2] << 8);
	return 0;
}

static int as_error(int rc)
{
	return rc < 0 ? rc : -EPROTO; /* an unexpected completion code */
}

/* Is the record we processed last still in the SEL? 1 yes, 0 gone (or its
 * id now names another record: a cleared SEL numbers from 1 again), <0
 * transport error. *next: its successor. */
static int last_still_there(const struct ipd_sel_cursor *c, struct ipd_transport *t, uint8_t addr,
                            uint16_t *next)
{
	struct ipd_sel_rec rec;
	int rc = get_entry(t, addr, c->last_id, next, &rec);

	if (rc == IPD_CC_NOT_PRESENT || (rc == 0 && rec.timestamp != c->last_ts))
		return 0;
	if (rc != 0)
		return as_error(rc);
	return 1;
}

void ipd_sel_adopt(struct ipd_sel_cursor *c, uint32_t after_ts)
{
	memset(c, 0, sizeof(*c));
	c->positioned = true;
	c->adopt = true;
	c->adopt_ts = after_ts;
	c->next_id = IPD_SEL_LAST;
}

int ipd_sel_poll(struct ipd_sel_cursor *cur, struct ipd_transport *t, uint8_t addr,
                 const struct ipd_sel_sink *sink)
{
	/* Work on a copy: it replaces *cur only once something was delivered
	 * or the poll completed, so a transport error leaves the cursor (and
	 * the clear / overflow news, reported again next time) as it was. */
	struct ipd_sel_cursor cc = *cur, *c = &cc;
	struct sel_info info;
	struct ipd_sel_rec rec;
	bool skip_old = false, resynced = false, cleared = false, overflow, told = false;
	bool adopt = false;
	unsigned entries_before = c->entries, reads = 0, max_reads;
	uint16_t id, next, delivered[IPD_SEL_BATCH];
	int n = 0, rc;

	rc = get_info(t, addr, &info);
	if (rc != 0)
		return as_error(rc);

	if (c->adopt) {
		adopt = true;
		c->adopt = false;
		c->erase_ts = info.erase_ts;
		c->entries = info.entries;
		c->overflow = info.overflow;
		overflow = false;
		if (info.entries == 0) {
			c->add_ts = info.add_ts;
			goto done;
		}
		id = IPD_SEL_FIRST;
		goto walk;
	}

	if (!c->positioned) {
		memset(c, 0, sizeof(*c));
		if (info.entries > 0) {
			rc = get_entry(t, addr, IPD_SEL_LAST, &next, &rec);
			if (rc != 0)
				return as_error(rc);
			c->have_last = true;
			c->last_id = rec.id;
			c->last_ts = rec.timestamp;
			c->next_id = IPD_SEL_LAST;
		}
		c->positioned = true;
		c->add_ts = info.add_ts;
		c->erase_ts = info.erase_ts;
		c->entries = info.entries;
		c->overflow = info.overflow;
		*cur = cc;
		return 0;
	}

	/* A clear moves the erase timestamp (so does deleting any record) or,
	 * on controllers that do not keep it, leaves fewer records. It was a
	 * clear if the last record we processed went with it. */
	if (info.erase_ts != c->erase_ts || info.entries < c->entries) {
		if (!c->have_last || info.entries == 0) {
			cleared = true;
		} else {
			rc = last_still_there(c, t, addr, &next);
			if (rc < 0)
				return rc;
			cleared = rc == 0;
		}
		if (cleared)
			c->have_last = false;
		c->erase_ts = info.erase_ts;
	}
	overflow = info.overflow && !c->overflow;
	c->overflow = info.overflow;
	c->entries = info.entries;
	/* SEL timestamps have a resolution of one second: a record added in
	 * the second of the last addition we caught up with leaves the
	 * addition timestamp unchanged. More records give it away; otherwise,
	 * for two seconds after catching up, look at the last record's
	 * successor anyway (one Get SEL Entry per poll). */
	if (info.add_ts == c->add_ts && info.entries <= entries_before && !cleared &&
	    !(c->caught_up_ns != 0 && af_mono_ns() - c->caught_up_ns < 2 * AF_NS_PER_S))
		goto done;

	if (!c->have_last) {
		id = IPD_SEL_FIRST;
		if (info.entries == 0) {
			c->add_ts = info.add_ts;
			goto done;
		}
	} else if (c->next_id != IPD_SEL_LAST) {
		id = c->next_id;
	} else {
		/* we were at the end: the last record now names its successor */
		rc = last_still_there(c, t, addr, &next);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			if (sink->resync)
				sink->resync(sink->opaque, c->last_id);
			id = IPD_SEL_FIRST;
			skip_old = resynced = true;
		} else {
			id = next == c->last_id ? IPD_SEL_LAST : next;
		}
	}

	/* A chain of "next" ids that loops (a broken or hostile controller)
	 * must not keep this worker reading forever: one walk reads at most
	 * every record the SEL claims to have, plus a batch that arrived
	 * meanwhile, and never delivers a record twice. */
walk:
	max_reads = info.entries + IPD_SEL_BATCH + 2;
	while (id != IPD_SEL_LAST && n < IPD_SEL_BATCH) {
		if (++reads > max_reads)
			goto looped;
		rc = get_entry(t, addr, id, &next, &rec);
		if (rc == IPD_CC_NOT_PRESENT && !resynced) {
			/* the successor we were told about is gone too */
			if (sink->resync)
				sink->resync(sink->opaque, id);
			id = IPD_SEL_FIRST;
			skip_old = resynced = true;
			continue;
		}
		if (rc != 0) {
			if (n == 0)
				return as_error(rc);
			break; /* what was delivered stays delivered */
		}
		if (next == rec.id)
			next = IPD_SEL_LAST; /* a record naming itself: read it once */
		if (adopt && rec.timestamp <= c->adopt_ts) {
			/* delivered from the other shelf manager's SEL */
			c->have_last = true;
			c->last_id = rec.id;
			c->last_ts = rec.timestamp;
			c->next_id = next;
			id = next;
			continue;
		}
		if (skip_old && c->have_last &&
		    (rec.timestamp < c->last_ts || rec.id == c->last_id)) {
			id = next;
			continue;
		}
		for (int i = 0; i < n; i++) {
			if (delivered[i] == rec.id)
				goto looped;
		}
		skip_old = false;
		if (!told) {
			told = true;
			if (cleared && sink->cleared)
				sink->cleared(sink->opaque, entries_before);
			if (overflow && sink->overflow)
				sink->overflow(sink->opaque, info.entries);
		}
		if (sink->record)
			sink->record(sink->opaque, &rec);
		c->have_last = true;
		c->last_id = rec.id;
		c->last_ts = rec.timestamp;
		c->next_id = next;
		delivered[n++] = rec.id;
		id = next;
	}
	if (id == IPD_SEL_LAST) {
		/* caught up; else the next poll goes on */
		if (n > 0 || info.add_ts != c->add_ts)
			c->caught_up_ns = af_mono_ns();
		c->add_ts = info.add_ts;
	}
done:
	if (!told) {
		if (cleared && sink->cleared)
			sink->cleared(sink->opaque, entries_before);
		if (overflow && sink->overflow)
			sink->overflow(sink->opaque, info.entries);
	}
	*cur = cc;
	return n;

looped:
	/* what was delivered stays delivered; the walk goes on from the
	 * end next time */
	if (n == 0)
		return -EPROTO;
	cc.next_id = IPD_SEL_LAST;
	*cur = cc;
	return n;
}

int ipd_cursor_save(const char *path, const struct ipd_sel_cursor *c)
{
	char tmp[512], buf[256];
	int fd, len, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	len = snprintf(buf, sizeof(buf),
	               "atca-ft-sel-cursor 1\npositioned %d\nhave_last %d\nlast_id %u\nlast_ts %u\n"
	               "next_id %u\nadd_ts %u\nerase_ts %u\nentries %u\noverflow %d\n",
	               c->positioned, c->have_last, c->last_id, c->last_ts, c->next_id, c->add_ts,
	               c->erase_ts, c->entries, c->overflow);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	errno = 0;
	if (write(fd, buf, (size_t)len) != len || fsync(fd) < 0)
		rc = errno ? -errno : -EIO; /* a short write sets no errno */
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int ipd_cursor_load(const char *path, struct ipd_sel_cursor *c)
{
	unsigned v[9];
	int pos, have, ovf, n;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return -errno;
	n = fscanf(
	        f,
	        "atca-ft-sel-cursor 1 positioned %d have_last %d last_id %u last_ts %u next_id %u "
	        "add_ts %u erase_ts %u entries %u overflow %d",
	        &pos, &have, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &ovf);
	fclose(f);
	if (n != 9 || v[0] > 0xFFFF || v[2] > 0xFFFF || v[5] > 0xFFFF)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	c->positioned = pos != 0;
	c->have_last = have != 0;
	c->last_id = (uint16_t)v[0];
	c->last_ts = v[1];
	c->next_id = (uint16_t)v[2];
	c->add_ts = v[3];
	c->erase_ts = v[4];
	c->entries = (uint16_t)v[5];
	c->overflow = ovf != 0;
	return 0;
}
