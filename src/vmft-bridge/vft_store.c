/*
 * vmft backup store: see vft_store.h.
 *
 * Every integer is little-endian, whatever the host: a store survives a
 * rebuild and can be inspected from anywhere.
 *
 * state:
 *    0  "VFTSTAT1"
 *    8  u32 version (2), u32 zero
 *   16  u64 gen, u64 epoch, u64 session, u64 ram_size, u64 devstate_len,
 *       u64 disk_size
 *   64  devstate_len bytes of device state
 *    .  u64 XXH3-64 of every byte before it
 *
 * redo:
 *    0  "VFTREDO2"
 *    8  u64 gen, u64 epoch, u64 session, u64 n_pages, u64 devstate_len,
 *       u64 events_len, u64 n_events
 *   64  n_pages records {u64 pfn, 4096 bytes of page}, in the order received
 *       (a page sent twice is applied twice: the last one wins)
 *    .  events_len bytes: n_events event records (vft_proto.h) in their order;
 *       the disk writes among them are applied in that order
 *    .  devstate_len bytes of device state
 *    .  trailer {u64 XXH3-64, "VFTREDOZ"}
 * The checksum covers the records, the events, the device state and then
 * the header, in that order: records are hashed as they are staged (no
 * second pass over them before the commit), the header's counts are known
 * only at commit.
 *
 * The disk (optional): disk_dir/disk.<gen> is the disk of generation <gen>,
 * next to ram.<gen> in the same role. disk_dir is persistent storage while
 * dir is usually tmpfs: when state is gone (the blade rebooted), the newest
 * disk.* is kept as the blade's latest copy of the guest's disk, and new
 * generations are numbered above it.
 *
 * Nothing here logs but vft_store_open(): the other calls run on the
 * engine's receiver thread, which reports through the caller's return codes.
 */
#include "config.h"

#include "vft_store.h"

#include "vft_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#define AF_LOG_SS AF_SS_VMFT
#include "af_log.h"
#include "af_util.h"

#define PAGE_SIZE_ 4096u
#define MAX_DEVSTATE (64u << 20) /* bytes: a device state beyond this is a bug */

#define STATE_MAGIC "VFTSTAT1"
#define STATE_VERSION 2u
#define STATE_HDR 64u

#define REDO_MAGIC "VFTREDO2"
#define REDO_END_MAGIC "VFTREDOZ"
#define REDO_HDR 64u
#define REDO_REC (8u + PAGE_SIZE_)
#define REDO_TRAILER 16u

/* Records read back per pread when a redo is verified or applied, and
 * records written per pwritev when an epoch is staged (IOV_MAX is 1024). */
#define CHUNK_RECS 64u
#define STAGE_BATCH 256u
/* iobuf holds CHUNK_RECS page records or one event record as a payload */
#define IOBUF_SIZE                                                                                 \
	(CHUNK_RECS * REDO_REC > 8 + VFT_EV_HDR + VFT_EV_DATA_MAX                                  \
	         ? CHUNK_RECS * REDO_REC                                                           \
	         : 8 + VFT_EV_HDR + VFT_EV_DATA_MAX)

/* dir + "/ram." + 20 digits + NUL must fit vft_store_info.ram_path. */
#define DIR_MAX (sizeof(((struct vft_store_info *)0)->ram_path) - 32)

enum stage { ST_NONE = 0, ST_FULL, ST_INCR };

struct vft_store {
	char dir[DIR_MAX];
	int dir_fd;
	uint64_t ram_size;
	uint64_t n_ram_pages;

	/* the disk, if the store has one */
	char disk_dir[DIR_MAX];
	int disk_dir_fd;   /* -1: no disk */
	uint64_t disk_top; /* highest disk.<gen> present: new generations go above */
	uint64_t kept_gen; /* nothing committed: the latest disk kept (0: none) */

	/* the committed epoch */
	uint64_t gen, epoch, session;
	int ram_fd;  /* ram.<gen>, -1 while gen is 0 */
	int disk_fd; /* disk.<gen>, -1 while gen is 0 or without disk */
	uint64_t disk_size;
	uint8_t *devstate;
	size_t devstate_len, devstate_cap;

	/* the staged epoch */
	enum stage stage;
	uint64_t st_session, st_epoch;
	uint64_t st_gen; /* FULL: the new generation */
	int st_fd;       /* FULL: ram.<st_gen>; INCR: redo.tmp */
	int st_disk_fd;  /* FULL: disk.<st_gen> */
	uint64_t st_disk_size;
	uint64_t st_off;   /* INCR: where the next record goes */
	uint64_t st_pages; /* INCR: records written */
	uint64_t st_events_len, st_n_events;
	bool st_events;  /* events staged: no page may follow */
	uint8_t *st_dev; /* swapped with devstate on commit: no copy */
	size_t st_dev_len, st_dev_cap;

	XXH3_state_t *hash; /* the staged redo's running checksum */
	int apply_fd;       /* where event_apply writes */
	uint8_t *iobuf;     /* CHUNK_RECS records */
	int crash_point;
	bool dead; /* a commit stopped half-way: only close is left */
};

struct state_hdr {
	uint64_t gen, epoch, session, ram_size, devstate_len, disk_size;
};

struct redo_hdr {
	uint64_t gen, epoch, session, n_pages, devstate_len, events_len, n_events;
};

/* ---- helpers --------------------------------------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static AF_PRINTF(3, 4) void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Writes iov[0..cnt) at off; iov is consumed (a short write advances it). */
static int pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev(fd, iov, cnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Sizes are checked against fstat before reading: an early end of file means
 * the file changed under us, an I/O error rather than corruption. */
static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int unlink_at(struct vft_store *s, const char *name)
{
	if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static void ram_name(char *buf, size_t len, uint64_t gen)
{
	snprintf(buf, len, "ram.%llu", (unsigned long long)gen);
}

static void disk_name(char *buf, size_t len, uint64_t gen)
{
	snprintf(buf, len, "disk.%llu", (unsigned long long)gen);
}

static bool has_disk(const struct vft_store *s)
{
	return s->disk_dir_fd >= 0;
}

static int fd_sync(int fd)
{
	return fd < 0 || fsync(fd) == 0 ? 0 : -errno;
}

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 65536;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	if (n > MAX_DEVSTATE)
		n = MAX_DEVSTATE;
	p = realloc(*buf, n);
	if (p == NULL)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/* Makes the committed device state dev[0..len) (taking the buffer). */
static void set_devstate(struct vft_store *s, uint8_t **dev, size_t *len, size_t *cap)
{
	uint8_t *old = s->devstate;
	size_t old_cap = s->devstate_cap;

	s->devstate = *dev;
	s->devstate_len = *len;
	s->devstate_cap = *cap;
	*dev = old;
	*len = 0;
	*cap = old_cap;
}

/* ---- state ------------------------------------------------------------------------------ */

/* Writes state.tmp and syncs it; state.tmp is removed on failure. */
static int state_write_tmp(struct vft_store *s, uint64_t gen, uint64_t epoch, uint64_t session,
                           const uint8_t *dev, size_t dev_len, uint64_t disk_size)
{
	uint8_t hdr[STATE_HDR], sum[8];
	int fd, rc;

	memcpy(hdr, STATE_MAGIC, 8);
	put_le32(hdr + 8, STATE_VERSION);
	put_le32(hdr + 12, 0);
	put_le64(hdr + 16, gen);
	put_le64(hdr + 24, epoch);
	put_le64(hdr + 32, session);
	put_le64(hdr + 40, s->ram_size);
	put_le64(hdr + 48, dev_len);
	put_le64(hdr + 56, disk_size);
	if (XXH3_64bits_reset(s->hash) != XXH_OK ||
	    XXH3_64bits_update(s->hash, hdr, STATE_HDR) != XXH_OK ||
	    XXH3_64bits_update(s->hash, dev, dev_len) != XXH_OK)
		return -EINVAL;
	put_le64(sum, XXH3_64bits_digest(s->hash));

	fd = openat(s->dir_fd, "state.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if ((rc = pwrite_all(fd, hdr, STATE_HDR, 0)) < 0 ||
	    (rc = pwrite_all(fd, dev, dev_len, STATE_HDR)) < 0 ||
	    (rc = pwrite_all(fd, sum, sizeof(sum), STATE_HDR + dev_len)) < 0)
		goto fail;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto fail;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlink_at(s, "state.tmp");
	return rc;
}

/* Replaces state by state.tmp. Past the rename the new state is the
 * committed one even if the directory's sync then fails. */
static int state_install(struct vft_store *s, bool *renamed)
{
	*renamed = false;
	if (renameat(s->dir_fd, "state.tmp", s->dir_fd, "state") < 0)
		return -errno;
	*renamed = true;
	if (fsync(s->dir_fd) < 0)
		return -errno;
	return 0;
}

/* Reads state: 0 and *dev (malloc'd), -ENOENT when there is none, 1 when it
 * is corrupt (why says why), or -errno. */
static int state_read(struct vft_store *s, struct state_hdr *h, uint8_t **dev, char *why,
                      size_t whylen)
{
	uint8_t hdr[STATE_HDR], sum[8];
	struct stat st;
	uint8_t *buf = NULL;
	int fd, rc;

	*dev = NULL;
	fd = openat(s->dir_fd, "state", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	rc = 1;
	if ((uint64_t)st.st_size < STATE_HDR + 8) {
		set_err(why, whylen, "%lld bytes, too short", (long long)st.st_size);
		goto out;
	}
	if ((rc = pread_all(fd, hdr, STATE_HDR, 0)) < 0)
		goto out;
	rc = 1;
	if (memcmp(hdr, STATE_MAGIC, 8) != 0) {
		set_err(why, whylen, "bad magic");
		goto out;
	}
	if (get_le32(hdr + 8) != STATE_VERSION) {
		set_err(why, whylen, "version %u, not %u", get_le32(hdr + 8), STATE_VERSION);
		goto out;
	}
	h->gen = get_le64(hdr + 16);
	h->epoch = get_le64(hdr + 24);
	h->session = get_le64(hdr + 32);
	h->ram_size = get_le64(hdr + 40);
	h->devstate_len = get_le64(hdr + 48);
	h->disk_size = get_le64(hdr + 56);
	if (h->devstate_len > MAX_DEVSTATE ||
	    (uint64_t)st.st_size != STATE_HDR + h->devstate_len + 8) {
		set_err(why, whylen, "%lld bytes for a device state of %llu", (long long)st.st_size,
		        (unsigned long long)h->devstate_len);
		goto out;
	}
	buf = malloc(h->devstate_len ? h->devstate_len : 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = pread_all(fd, buf, h->devstate_len, STATE_HDR)) < 0 ||
	    (rc = pread_all(fd, sum, 8, STATE_HDR + h->devstate_len)) < 0)
		goto out;
	rc = 1;
	if (XXH3_64bits_reset(s->hash) != XXH_OK ||
	    XXH3_64bits_update(s->hash, hdr, STATE_HDR) != XXH_OK ||
	    XXH3_64bits_update(s->hash, buf, h->devstate_len) != XXH_OK) {
		rc = -EINVAL;
		goto out;
	}
	if (XXH3_64bits_digest(s->hash) != get_le64(sum)) {
		set_err(why, whylen, "checksum mismatch");
		goto out;
	}
	/* Checksummed but impossible: a bug wrote it; trust nothing in it. */
	if (h->gen == 0 || h->epoch == 0 || h->ram_size == 0 || h->ram_size % PAGE_SIZE_) {
		set_err(why, whylen, "gen %llu epoch %llu ram_size %llu",
		        (unsigned long long)h->gen, (unsigned long long)h->epoch,
		        (unsigned long long)h->ram_size);
		goto out;
	}
	*dev = buf;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	close(fd);
	return rc;
}

/* ---- redo ------------------------------------------------------------------------------- */

static void redo_hdr_encode(uint8_t out[REDO_HDR], const struct redo_hdr *h)
{
	memcpy(out, REDO_MAGIC, 8);
	put_le64(out + 8, h->gen);
	put_le64(out + 16, h->epoch);
	put_le64(out + 24, h->session);
	put_le64(out + 32, h->n_pages);
	put_le64(out + 40, h->devstate_len);
	put_le64(out + 48, h->events_len);
	put_le64(out + 56, h->n_events);
}

/* Reads the events of a redo (events_len bytes at off) one record at a time
 * into s->iobuf. For each: fn(s, ev) if fn is set. Returns 0, 1 when a
 * record is malformed (why says why), or -errno. */
static int events_walk(struct vft_store *s, int fd, uint64_t off, uint64_t events_len,
                       uint64_t n_events, int (*fn)(struct vft_store *, const struct vft_event *),
                       char *why, size_t whylen)
{
	uint64_t pos = 0, n = 0;
	int rc;

	while (pos < events_len) {
		struct vft_event ev;
		uint8_t head[8 + VFT_EV_HDR];
		size_t p = 0, len;
		uint32_t cnt;
		uint64_t next;

		if (events_len - pos < VFT_EV_HDR)
			goto bad;
		memset(head, 0, 8);
		head[0] = 1;
		if ((rc = pread_all(fd, head + 8, VFT_EV_HDR, off + pos)) < 0)
			return rc;
		/* the record alone, as a one-record EVENTS payload */
		memcpy(s->iobuf, head, sizeof(head));
		p = (size_t)head[8 + 12] | (size_t)head[8 + 13] << 8 | (size_t)head[8 + 14] << 16 |
		    (size_t)head[8 + 15] << 24;
		if (p > VFT_EV_DATA_MAX || p > events_len - pos - VFT_EV_HDR)
			goto bad;
		if ((rc = pread_all(fd, s->iobuf + sizeof(head), p, off + pos + VFT_EV_HDR)) < 0)
			return rc;
		if (vft_events_decode(s->iobuf, sizeof(head) + p, s->disk_size, 0, &cnt, &next, why,
		                      whylen) < 0)
			return 1;
		len = sizeof(head) + p;
		p = 8;
		if (vft_events_next(s->iobuf, len, &p, &ev) != 1)
			goto bad;
		if (fn != NULL && (rc = fn(s, &ev)) != 0)
			return rc;
		pos += VFT_EV_HDR + ev.len;
		n++;
	}
	if (n != n_events)
		goto bad;
	return 0;
bad:
	set_err(why, whylen, "malformed event record at byte %llu of %llu", (unsigned long long)pos,
	        (unsigned long long)events_len);
	return 1;
}

static int events_hash(struct vft_store *s, const struct vft_event *ev)
{
	uint8_t head[VFT_EV_HDR];

	vft_event_encode_head(head, ev);
	if (XXH3_64bits_update(s->hash, head, VFT_EV_HDR) != XXH_OK ||
	    XXH3_64bits_update(s->hash, ev->data, ev->len) != XXH_OK)
		return -EINVAL;
	return 0;
}

static int events_verify(struct vft_store *s, int fd, uint64_t off, const struct redo_hdr *h,
                         char *why, size_t whylen)
{
	return events_walk(s, fd, off, h->events_len, h->n_events, events_hash, why, whylen);
}

/* Checks a redo from end to end: 0 with *h and *dev (malloc'd), 1 when it is
 * incomplete or corrupt (why says why), or -errno. */
static int redo_verify(struct vft_store *s, int fd, struct redo_hdr *h, uint8_t **dev, char *why,
                       size_t whylen)
{
	uint8_t hdr[REDO_HDR], trl[REDO_TRAILER];
	uint8_t *buf = NULL;
	struct stat st;
	uint64_t size, off;
	int rc;

	*dev = NULL;
	if (fstat(fd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	if (size < REDO_HDR + REDO_TRAILER) {
		set_err(why, whylen, "%llu bytes, truncated", (unsigned long long)size);
		return 1;
	}
	if ((rc = pread_all(fd, hdr, REDO_HDR, 0)) < 0)
		return rc;
	if (memcmp(hdr, REDO_MAGIC, 8) != 0) {
		set_err(why, whylen, "bad magic");
		return 1;
	}
	h->gen = get_le64(hdr + 8);
	h->epoch = get_le64(hdr + 16);
	h->session = get_le64(hdr + 24);
	h->n_pages = get_le64(hdr + 32);
	h->devstate_len = get_le64(hdr + 40);
	h->events_len = get_le64(hdr + 48);
	h->n_events = get_le64(hdr + 56);
	if (h->devstate_len > MAX_DEVSTATE || h->events_len > size ||
	    h->n_pages > (size - REDO_HDR - REDO_TRAILER) / REDO_REC ||
	    size != REDO_HDR + h->n_pages * REDO_REC + h->events_len + h->devstate_len +
	                    REDO_TRAILER) {
		set_err(why, whylen,
		        "%llu bytes for %llu pages, %llu bytes of events and a device state of "
		        "%llu",
		        (unsigned long long)size, (unsigned long long)h->n_pages,
		        (unsigned long long)h->events_len, (unsigned long long)h->devstate_len);
		return 1;
	}
	if (h->events_len > 0 && !has_disk(s)) {
		set_err(why, whylen, "events for a store without disk");
		return 1;
	}
	if (XXH3_64bits_reset(s->hash) != XXH_OK)
		return -EINVAL;
	off = REDO_HDR;
	for (uint64_t done = 0; done < h->n_pages;) {
		uint64_t n = h->n_pages - done < CHUNK_RECS ? h->n_pages - done : CHUNK_RECS;

		if ((rc = pread_all(fd, s->iobuf, n * REDO_REC, off)) < 0)
			return rc;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t pfn = get_le64(s->iobuf + i * REDO_REC);

			if (pfn >= s->n_ram_pages) {
				set_err(why, whylen, "page %llu beyond the RAM",
				        (unsigned long long)pfn);
				return 1;
			}
		}
		if (XXH3_64bits_update(s->hash, s->iobuf, n * REDO_REC) != XXH_OK)
			return -EINVAL;
		done += n;
		off += n * REDO_REC;
	}
	if ((rc = events_verify(s, fd, off, h, why, whylen)) != 0)
		return rc;
	off += h->events_len;
	buf = malloc(h->devstate_len ? h->devstate_len : 1);
	if (buf == NULL)
		return -ENOMEM;
	if ((rc = pread_all(fd, buf, h->devstate_len, off)) < 0 ||
	    (rc = pread_all(fd, trl, REDO_TRAILER, off + h->devstate_len)) < 0)
		goto fail;
	if (XXH3_64bits_update(s->hash, buf, h->devstate_len) != XXH_OK ||
	    XXH3_64bits_update(s->hash, hdr, REDO_HDR) != XXH_OK) {
		rc = -EINVAL;
		goto fail;
	}
	rc = 1;
	if (memcmp(trl + 8, REDO_END_MAGIC, 8) != 0) {
		set_err(why, whylen, "bad trailer");
		goto fail;
	}
	if (get_le64(trl) != XXH3_64bits_digest(s->hash)) {
		set_err(why, whylen, "checksum mismatch");
		goto fail;
	}
	*dev = buf;
	return 0;
fail:
	free(buf);
	return rc;
}

/* A disk write of the log goes to the disk being brought to the epoch. */
static int event_apply(struct vft_store *s, const struct vft_event *ev)
{
	if (ev->kind != VFT_EV_DISK_WRITE)
		return 0;
	return pwrite_all(s->apply_fd, ev->data, ev->len, ev->arg);
}

/* Writes the page records of the redo open as fd into ram.<gen>, then its
 * disk writes into disk.<gen>, in order. Idempotent: a crash half-way is
 * repaired by applying it again (each write lands where it landed before,
 * and the last one to a sector still wins). */
static int redo_apply(struct vft_store *s, int fd, const struct redo_hdr *h)
{
	uint64_t off = REDO_HDR, n_pages = h->n_pages;
	char why[160];
	int rc;

	for (uint64_t done = 0; done < n_pages;) {
		uint64_t n = n_pages - done < CHUNK_RECS ? n_pages - done : CHUNK_RECS;

		if ((rc = pread_all(fd, s->iobuf, n * REDO_REC, off)) < 0)
			return rc;
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *rec = s->iobuf + i * REDO_REC;
			uint64_t pfn = get_le64(rec);

			if (pfn >= s->n_ram_pages)
				return -ERANGE;
			if ((rc = pwrite_all(s->ram_fd, rec + 8, PAGE_SIZE_, pfn * PAGE_SIZE_)) < 0)
				return rc;
		}
		done += n;
		off += n * REDO_REC;
	}
	if (h->events_len == 0)
		return 0;
	s->apply_fd = s->disk_fd;
	rc = events_walk(s, fd, off, h->events_len, h->n_events, event_apply, why, sizeof(why));
	return rc > 0 ? -EIO : rc; /* verified before: a bad record now is the disk's fault */
}

/* ---- open and recovery ----------------------------------------------------------------- */

static int mkdir_p(const char *dir)
{
	char path[DIR_MAX];
	struct stat st;

	if (af_strlcpy(path, dir, sizeof(path)) >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		/* mkdir may say EACCES or EROFS for a directory that exists. */
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			int e = errno;

			if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
				return -e;
		}
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Forgets the committed epoch: state first, so that no moment leaves a state
 * naming a RAM file that is gone. */
static int discard_committed(struct vft_store *s)
{
	int rc = unlink_at(s, "state");

	if (s->ram_fd >= 0)
		close(s->ram_fd);
	if (s->disk_fd >= 0)
		close(s->disk_fd);
	s->ram_fd = s->disk_fd = -1;
	s->gen = s->epoch = s->session = 0;
	s->devstate_len = 0;
	s->disk_size = 0;
	return rc;
}

/* "disk.<n>" -> n, 0 for any other name. */
static uint64_t disk_gen_of(const char *name)
{
	char *end;
	unsigned long long g;

	if (strncmp(name, "disk.", 5) != 0 || name[5] < '1' || name[5] > '9')
		return 0;
	errno = 0;
	g = strtoull(name + 5, &end, 10);
	return errno == 0 && *end == '\0' ? g : 0;
}

/* Highest disk.<n> in the open directory dfd (0: none). */
static int disk_highest(int dfd, uint64_t *top)
{
	struct dirent *e;
	DIR *d;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	*top = 0;
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		int rc = -errno;

		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		uint64_t g = disk_gen_of(e->d_name);

		if (g > *top)
			*top = g;
	}
	closedir(d);
	return 0;
}

/* Removes every disk.* but the committed generation's or, with nothing
 * committed, the newest (the blade's latest copy of the guest's disk), and
 * any seed left half-copied. */
static int remove_stale_disk(struct vft_store *s, char *err, size_t errlen)
{
	struct dirent *e;
	uint64_t keep;
	DIR *d;
	int fd, rc;

	if (!has_disk(s))
		return 0;
	if ((rc = disk_highest(s->disk_dir_fd, &s->disk_top)) < 0) {
		set_err(err, errlen, "cannot list %s: %s", s->disk_dir, strerror(-rc));
		return rc;
	}
	keep = s->gen ? s->gen : s->disk_top;
	s->kept_gen = s->gen ? 0 : s->disk_top;
	if (s->gen > s->disk_top)
		s->disk_top = s->gen;
	fd = openat(s->disk_dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		set_err(err, errlen, "cannot list %s: %s", s->disk_dir, strerror(-rc));
		return rc;
	}
	rc = 0;
	while ((e = readdir(d)) != NULL) {
		uint64_t g = disk_gen_of(e->d_name);
		bool tmp = strncmp(e->d_name, "disk.", 5) == 0 && strstr(e->d_name, ".tmp") != NULL;

		if ((g == 0 && !tmp) || g == keep)
			continue;
		if (unlinkat(s->disk_dir_fd, e->d_name, 0) < 0 && errno != ENOENT) {
			rc = -errno;
			set_err(err, errlen, "cannot remove %s/%s: %s", s->disk_dir, e->d_name,
			        strerror(errno));
			break;
		}
		af_info("vmft store %s: removed %s (not the %s disk)", s->disk_dir, e->d_name,
		        s->gen ? "committed" : "latest");
	}
	closedir(d);
	if (rc == 0 && fsync(s->disk_dir_fd) < 0)
		rc = -errno;
	return rc;
}

/* Opens disk.<gen> of a readable state, or says why it does not match. */
static int open_committed_disk(struct vft_store *s, uint64_t gen, uint64_t size, char *why,
                               size_t whylen)
{
	char name[32];
	struct stat st;
	int fd;

	if (!has_disk(s) || size == 0) {
		if (has_disk(s) != (size != 0)) {
			set_err(why, whylen, "the committed epoch %s a disk, the store %s",
			        size ? "has" : "has no", has_disk(s) ? "has" : "has none");
			return 1;
		}
		return 0;
	}
	disk_name(name, sizeof(name), gen);
	fd = openat(s->disk_dir_fd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		set_err(why, whylen, "%s/%s is missing", s->disk_dir, name);
		return 1;
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		set_err(why, whylen, "%s/%s is %lld bytes, not %llu", s->disk_dir, name,
		        (long long)st.st_size, (unsigned long long)size);
		close(fd);
		return 1;
	}
	s->disk_fd = fd;
	s->disk_size = size;
	return 0;
}

/* Removes every ram.* but the committed generation's. */
static int remove_stale_ram(struct vft_store *s, char *err, size_t errlen)
{
	char keep[32];
	struct dirent *e;
	DIR *d;
	int fd, rc = 0;

	keep[0] = '\0';
	if (s->gen)
		ram_name(keep, sizeof(keep), s->gen);
	fd = openat(s->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		set_err(err, errlen, "cannot list %s: %s", s->dir, strerror(-rc));
		return rc;
	}
	while ((errno = 0, e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "ram.", 4) != 0 || strcmp(e->d_name, keep) == 0)
			continue;
		if (unlinkat(s->dir_fd, e->d_name, 0) < 0 && errno != ENOENT) {
			rc = -errno;
			set_err(err, errlen, "cannot remove %s/%s: %s", s->dir, e->d_name,
			        strerror(errno));
			break;
		}
		af_info("vmft store %s: removed %s (not the committed generation)", s->dir,
		        e->d_name);
	}
	if (rc == 0 && errno != 0) {
		rc = -errno;
		set_err(err, errlen, "cannot list %s: %s", s->dir, strerror(errno));
	}
	closedir(d);
	return rc;
}

/* Opens ram.<gen> of a readable state, or says why it does not match. */
static int open_committed_ram(struct vft_store *s, uint64_t gen, char *why, size_t whylen)
{
	char name[32];
	struct stat st;
	int fd;

	ram_name(name, sizeof(name), gen);
	fd = openat(s->dir_fd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		set_err(why, whylen, "%s is missing", name);
		return 1;
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size != s->ram_size) {
		set_err(why, whylen, "%s is %lld bytes, not %llu", name, (long long)st.st_size,
		        (unsigned long long)s->ram_size);
		close(fd);
		return 1;
	}
	s->ram_fd = fd;
	return 0;
}

/* A complete redo that follows the committed epoch is re-applied (the crash
 * came after its commit's point of no return); any other is dropped. */
static int recover_redo(struct vft_store *s, char *err, size_t errlen)
{
	char why[160];
	struct redo_hdr h = {0};
	uint8_t *dev = NULL;
	size_t dev_len, dev_cap;
	bool renamed;
	int fd, rc;

	fd = openat(s->dir_fd, "redo", O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open %s/redo: %s", s->dir, strerror(-rc));
		return rc;
	}
	if (s->gen == 0) {
		af_warn("vmft store %s: redo discarded: nothing committed to apply it to", s->dir);
		goto drop;
	}
	rc = redo_verify(s, fd, &h, &dev, why, sizeof(why));
	if (rc < 0) {
		set_err(err, errlen, "cannot read %s/redo: %s", s->dir, strerror(-rc));
		goto out;
	}
	if (rc > 0) {
		af_warn("vmft store %s: redo discarded: %s", s->dir, why);
		goto drop;
	}
	if (h.gen == s->gen && h.session == s->session && h.epoch == s->epoch) {
		/* the crash came between the state's rename and the redo's unlink */
		af_info("vmft store %s: redo of epoch %llu already applied", s->dir,
		        (unsigned long long)h.epoch);
		goto drop;
	}
	if (h.gen != s->gen || h.session != s->session || h.epoch != s->epoch + 1) {
		af_warn("vmft store %s: redo of gen %llu session %llu epoch %llu discarded: the "
		        "committed epoch is gen %llu session %llu epoch %llu",
		        s->dir, (unsigned long long)h.gen, (unsigned long long)h.session,
		        (unsigned long long)h.epoch, (unsigned long long)s->gen,
		        (unsigned long long)s->session, (unsigned long long)s->epoch);
		goto drop;
	}
	if ((rc = redo_apply(s, fd, &h)) == 0 && (rc = fd_sync(s->ram_fd)) == 0)
		rc = fd_sync(s->disk_fd);
	if (rc == 0 && (rc = state_write_tmp(s, s->gen, h.epoch, h.session, dev, h.devstate_len,
	                                     s->disk_size)) == 0)
		rc = state_install(s, &renamed);
	if (rc < 0) {
		set_err(err, errlen, "cannot re-apply %s/redo: %s", s->dir, strerror(-rc));
		goto out;
	}
	dev_len = h.devstate_len;
	dev_cap = h.devstate_len;
	set_devstate(s, &dev, &dev_len, &dev_cap);
	s->epoch = h.epoch;
	af_info("vmft store %s: redo of epoch %llu re-applied (%llu pages, %llu events)", s->dir,
	        (unsigned long long)h.epoch, (unsigned long long)h.n_pages,
	        (unsigned long long)h.n_events);
drop:
	rc = unlink_at(s, "redo");
	if (rc < 0)
		set_err(err, errlen, "cannot remove %s/redo: %s", s->dir, strerror(-rc));
out:
	free(dev);
	close(fd);
	return rc;
}

static int recover(struct vft_store *s, char *err, size_t errlen)
{
	char why[160];
	struct state_hdr h = {0};
	uint8_t *dev = NULL;
	size_t dev_len, dev_cap;
	int rc;

	/* incomplete by definition: their commit never reached its rename */
	if ((rc = unlink_at(s, "redo.tmp")) < 0 || (rc = unlink_at(s, "state.tmp")) < 0) {
		set_err(err, errlen, "cannot clean %s: %s", s->dir, strerror(-rc));
		return rc;
	}
	rc = state_read(s, &h, &dev, why, sizeof(why));
	if (rc < 0 && rc != -ENOENT) {
		set_err(err, errlen, "cannot read %s/state: %s", s->dir, strerror(-rc));
		return rc;
	}
	if (rc > 0) {
		af_err("vmft store %s: state corrupt (%s): nothing committed", s->dir, why);
	} else if (rc == 0 && h.ram_size != s->ram_size) {
		af_warn("vmft store %s: committed image of %llu bytes discarded: the VM has %llu",
		        s->dir, (unsigned long long)h.ram_size, (unsigned long long)s->ram_size);
		rc = 1;
	} else if (rc == 0) {
		rc = open_committed_ram(s, h.gen, why, sizeof(why));
		if (rc < 0) {
			set_err(err, errlen, "cannot open %s/ram.%llu: %s", s->dir,
			        (unsigned long long)h.gen, strerror(-rc));
			free(dev);
			return rc;
		}
		if (rc == 0) {
			rc = open_committed_disk(s, h.gen, h.disk_size, why, sizeof(why));
			if (rc < 0) {
				set_err(err, errlen, "cannot open %s/disk.%llu: %s", s->disk_dir,
				        (unsigned long long)h.gen, strerror(-rc));
				free(dev);
				return rc;
			}
		}
		if (rc > 0)
			af_err("vmft store %s: %s: nothing committed", s->dir, why);
	}
	if (rc == 0) {
		s->gen = h.gen;
		s->epoch = h.epoch;
		s->session = h.session;
		dev_len = h.devstate_len;
		dev_cap = h.devstate_len;
		set_devstate(s, &dev, &dev_len, &dev_cap);
	} else if (rc > 0 && (rc = discard_committed(s)) < 0) {
		set_err(err, errlen, "cannot remove %s/state: %s", s->dir, strerror(-rc));
		free(dev);
		return rc;
	}
	free(dev);
	if ((rc = recover_redo(s, err, errlen)) < 0 ||
	    (rc = remove_stale_ram(s, err, errlen)) < 0 ||
	    (rc = remove_stale_disk(s, err, errlen)) < 0)
		return rc;
	if (fsync(s->dir_fd) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot sync %s: %s", s->dir, strerror(-rc));
		return rc;
	}
	if (s->gen)
		af_info("vmft store %s: committed gen %llu epoch %llu session %llu%s", s->dir,
		        (unsigned long long)s->gen, (unsigned long long)s->epoch,
		        (unsigned long long)s->session, has_disk(s) ? " with its disk" : "");
	return 0;
}

/* Creates dir (mode 0700) if needed and opens it for the *at calls. */
static int open_dir(const char *dir, int *fd, char *err, size_t errlen)
{
	int rc = mkdir_p(dir);

	if (rc < 0) {
		set_err(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	*fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open %s: %s", dir, strerror(-rc));
		return rc;
	}
	return 0;
}

int vft_store_open(struct vft_store **out, const char *dir, const char *disk_dir, uint64_t ram_size,
                   char *err, size_t errlen)
{
	struct vft_store *s;
	size_t len;
	int rc;

	set_err(err, errlen, "%s", "");
	if (out != NULL)
		*out = NULL;
	if (out == NULL || dir == NULL || dir[0] == '\0') {
		set_err(err, errlen, "no store directory");
		return -EINVAL;
	}
	if (ram_size == 0 || ram_size % PAGE_SIZE_ != 0) {
		set_err(err, errlen, "RAM size %llu is not a positive multiple of %u",
		        (unsigned long long)ram_size, PAGE_SIZE_);
		return -EINVAL;
	}
	len = strlen(dir);
	if (len >= DIR_MAX) {
		set_err(err, errlen, "store directory name too long");
		return -ENAMETOOLONG;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->dir_fd = s->ram_fd = s->st_fd = -1;
	s->disk_dir_fd = s->disk_fd = s->st_disk_fd = -1;
	memcpy(s->dir, dir, len + 1);
	while (len > 1 && s->dir[len - 1] == '/')
		s->dir[--len] = '\0'; /* ram_path reads "dir/ram.N" */
	s->ram_size = ram_size;
	s->n_ram_pages = ram_size / PAGE_SIZE_;
	s->hash = XXH3_createState();
	s->iobuf = malloc(IOBUF_SIZE);
	if (s->hash == NULL || s->iobuf == NULL) {
		rc = -ENOMEM;
		set_err(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = open_dir(s->dir, &s->dir_fd, err, errlen)) < 0)
		goto fail;
	if (disk_dir != NULL && disk_dir[0] != '\0') {
		if (af_strlcpy(s->disk_dir, disk_dir, sizeof(s->disk_dir)) >= sizeof(s->disk_dir)) {
			rc = -ENAMETOOLONG;
			set_err(err, errlen, "disk directory name too long");
			goto fail;
		}
		if ((rc = open_dir(s->disk_dir, &s->disk_dir_fd, err, errlen)) < 0)
			goto fail;
	}
	if ((rc = recover(s, err, errlen)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	vft_store_close(s);
	return rc;
}

/* ---- staging ---------------------------------------------------------------------------- */

/* Drops the staged epoch; its file is removed unless a crash is simulated. */
static void stage_discard(struct vft_store *s, bool remove)
{
	char name[32];

	if (s->st_fd >= 0)
		close(s->st_fd);
	if (s->st_disk_fd >= 0)
		close(s->st_disk_fd);
	s->st_fd = s->st_disk_fd = -1;
	if (remove && s->stage == ST_FULL) {
		ram_name(name, sizeof(name), s->st_gen);
		unlink_at(s, name);
		if (has_disk(s)) {
			disk_name(name, sizeof(name), s->st_gen);
			if (unlinkat(s->disk_dir_fd, name, 0) < 0 && errno != ENOENT)
				s->dead = true; /* open removes it */
		}
	} else if (remove && s->stage == ST_INCR) {
		unlink_at(s, "redo.tmp");
	}
	s->stage = ST_NONE;
	s->st_dev_len = 0;
	s->st_events = false;
	s->st_events_len = s->st_n_events = 0;
}

/* The commit stops as a killed process would: files stay as they are. */
static int crashed(struct vft_store *s)
{
	stage_discard(s, false);
	s->dead = true;
	s->crash_point = 0;
	return -EINTR;
}

static bool crash_here(const struct vft_store *s, int point)
{
	return s->crash_point == point;
}

void vft_store_close(struct vft_store *s)
{
	if (s == NULL)
		return;
	stage_discard(s, !s->dead && s->dir_fd >= 0);
	if (s->ram_fd >= 0)
		close(s->ram_fd);
	if (s->disk_fd >= 0)
		close(s->disk_fd);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	if (s->disk_dir_fd >= 0)
		close(s->disk_dir_fd);
	XXH3_freeState(s->hash);
	free(s->iobuf);
	free(s->devstate);
	free(s->st_dev);
	free(s);
}

void vft_store_info(const struct vft_store *s, struct vft_store_info *info)
{
	memset(info, 0, sizeof(*info));
	info->gen = s->gen;
	info->epoch = s->epoch;
	info->session = s->session;
	info->ram_size = s->ram_size;
	info->devstate_len = s->devstate_len;
	if (s->gen)
		snprintf(info->ram_path, sizeof(info->ram_path), "%s/ram.%llu", s->dir,
		         (unsigned long long)s->gen);
	info->disk_size = s->disk_size;
	if (s->gen && s->disk_fd >= 0)
		snprintf(info->disk_path, sizeof(info->disk_path), "%s/disk.%llu", s->disk_dir,
		         (unsigned long long)s->gen);
}

const void *vft_store_devstate(const struct vft_store *s, size_t *len)
{
	*len = s->devstate_len;
	return s->devstate;
}

/* The new generation's disk, sized and empty (sparse): the full sync writes
 * what is not zero. */
static int create_disk(struct vft_store *s, uint64_t gen, uint64_t size)
{
	char name[32];
	int fd;

	disk_name(name, sizeof(name), gen);
	fd = openat(s->disk_dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)size) < 0) {
		int rc = -errno;

		close(fd);
		unlinkat(s->disk_dir_fd, name, 0);
		return rc;
	}
	return fd;
}

/* The new generation's file: a prepared base renamed into place (checked
 * for its size), or a new sparse file of that size. */
static int new_gen_file(int dfd, const char *base, const char *name, uint64_t size)
{
	struct stat st;
	int fd, rc;

	if (base != NULL && renameat(dfd, base, dfd, name) < 0)
		return -errno;
	fd = openat(dfd, name, O_RDWR | O_CLOEXEC | (base ? 0 : O_CREAT | O_TRUNC), 0600);
	if (fd < 0)
		return -errno;
	if (base != NULL ? fstat(fd, &st) < 0 || (uint64_t)st.st_size != size
	                 : ftruncate(fd, (off_t)size) < 0) {
		rc = base != NULL ? -EINVAL : -errno;
		close(fd);
		unlinkat(dfd, name, 0);
		return rc;
	}
	return fd;
}

static int begin_incr(struct vft_store *s, uint64_t session, uint64_t epoch, uint64_t disk_size)
{
	int fd;

	if (s->gen == 0)
		return -ENOENT;
	if (session != s->session)
		return -ESTALE;
	/* recovery re-applies a redo only to the epoch before it */
	if (epoch != s->epoch + 1)
		return -EINVAL;
	if (disk_size != s->disk_size)
		return -EINVAL;
	fd = openat(s->dir_fd, "redo.tmp", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (XXH3_64bits_reset(s->hash) != XXH_OK) {
		close(fd);
		unlink_at(s, "redo.tmp");
		return -EINVAL;
	}
	s->st_off = REDO_HDR;
	s->st_pages = 0;
	s->stage = ST_INCR;
	return fd;
}

static int begin_full(struct vft_store *s, uint64_t disk_size, const char *ram_base,
                      const char *disk_base)
{
	char name[32];
	int fd;

	if ((disk_size != 0) != has_disk(s) || disk_size % 512 != 0)
		return -EINVAL;
	s->st_gen = (s->gen > s->disk_top ? s->gen : s->disk_top) + 1;
	ram_name(name, sizeof(name), s->st_gen);
	fd = new_gen_file(s->dir_fd, ram_base, name, s->ram_size);
	if (fd < 0)
		return fd;
	if (has_disk(s)) {
		char dname[32];

		disk_name(dname, sizeof(dname), s->st_gen);
		s->st_disk_fd = disk_base
		                        ? new_gen_file(s->disk_dir_fd, disk_base, dname, disk_size)
		                        : create_disk(s, s->st_gen, disk_size);
		if (s->st_disk_fd < 0) {
			int rc = s->st_disk_fd;

			s->st_disk_fd = -1;
			close(fd);
			unlink_at(s, name);
			return rc;
		}
		s->disk_top = s->st_gen;
	}
	s->st_disk_size = disk_size;
	s->stage = ST_FULL;
	return fd;
}

int vft_store_begin_from(struct vft_store *s, uint64_t session, uint64_t epoch, bool full,
                         uint64_t disk_size, const char *ram_base, const char *disk_base)
{
	int fd;

	if (s->dead)
		return -EIO;
	stage_discard(s, true);
	if (epoch == 0 || (!full && (ram_base || disk_base)))
		return -EINVAL;
	fd = full ? begin_full(s, disk_size, ram_base, disk_base)
	          : begin_incr(s, session, epoch, disk_size);
	if (fd < 0)
		return fd;
	s->st_fd = fd;
	s->st_session = session;
	s->st_epoch = epoch;
	return 0;
}

int vft_store_begin(struct vft_store *s, uint64_t session, uint64_t epoch, bool full,
                    uint64_t disk_size)
{
	return vft_store_begin_from(s, session, epoch, full, disk_size, NULL, NULL);
}

int vft_store_stage_fds(struct vft_store *s, int *ram_fd, int *disk_fd)
{
	if (s->dead || s->stage != ST_FULL)
		return -EINVAL;
	*ram_fd = s->st_fd;
	*disk_fd = s->st_disk_fd;
	return 0;
}

/* FULL: straight into the new RAM file, a run of consecutive pages at once. */
static int put_full(struct vft_store *s, uint32_t count, const uint64_t *pfns, const uint8_t *pages)
{
	int rc;

	for (uint32_t i = 0; i < count;) {
		uint32_t n = 1;

		while (i + n < count && pfns[i + n] == pfns[i] + n)
			n++;
		rc = pwrite_all(s->st_fd, pages + (size_t)i * PAGE_SIZE_, (size_t)n * PAGE_SIZE_,
		                pfns[i] * PAGE_SIZE_);
		if (rc < 0)
			return rc;
		i += n;
	}
	return 0;
}

/* INCR: appended to redo.tmp as {pfn, page} records, hashed on the way. */
static int put_incr(struct vft_store *s, uint32_t count, const uint64_t *pfns, const uint8_t *pages)
{
	uint8_t le[STAGE_BATCH][8];
	struct iovec iov[2 * STAGE_BATCH];
	int rc;

	for (uint32_t i = 0; i < count;) {
		uint32_t n = count - i < STAGE_BATCH ? count - i : STAGE_BATCH;

		for (uint32_t k = 0; k < n; k++) {
			const uint8_t *page = pages + (size_t)(i + k) * PAGE_SIZE_;

			put_le64(le[k], pfns[i + k]);
			iov[2 * k].iov_base = le[k];
			iov[2 * k].iov_len = 8;
			iov[2 * k + 1].iov_base = (void *)page;
			iov[2 * k + 1].iov_len = PAGE_SIZE_;
			if (XXH3_64bits_update(s->hash, le[k], 8) != XXH_OK ||
			    XXH3_64bits_update(s->hash, page, PAGE_SIZE_) != XXH_OK)
				return -EINVAL;
		}
		if ((rc = pwritev_all(s->st_fd, iov, (int)(2 * n), s->st_off)) < 0)
			return rc;
		s->st_off += (uint64_t)n * REDO_REC;
		s->st_pages += n;
		i += n;
	}
	return 0;
}

int vft_store_put_pages(struct vft_store *s, uint32_t count, const uint64_t *pfns,
                        const void *pages)
{
	int rc;

	if (s->dead)
		return -EIO;
	if (s->stage == ST_NONE || s->st_events || (count > 0 && (pfns == NULL || pages == NULL)))
		return -EINVAL;
	/* all checked first: a refused batch leaves the staging as it was */
	for (uint32_t i = 0; i < count; i++) {
		if (pfns[i] >= s->n_ram_pages)
			return -ERANGE;
	}
	rc = s->stage == ST_FULL ? put_full(s, count, pfns, pages)
	                         : put_incr(s, count, pfns, pages);
	if (rc < 0)
		stage_discard(s, true); /* part of the batch may be written */
	return rc;
}

int vft_store_put_devstate(struct vft_store *s, const void *buf, size_t len)
{
	int rc;

	if (s->dead)
		return -EIO;
	if (s->stage == ST_NONE || (len > 0 && buf == NULL))
		return -EINVAL;
	if (len > MAX_DEVSTATE - s->st_dev_len)
		return -EFBIG;
	if ((rc = grow(&s->st_dev, &s->st_dev_cap, s->st_dev_len + len)) < 0)
		return rc;
	memcpy(s->st_dev + s->st_dev_len, buf, len);
	s->st_dev_len += len;
	return 0;
}

int vft_store_put_disk(struct vft_store *s, uint64_t offset, const void *data, size_t len)
{
	int rc;

	if (s->dead)
		return -EIO;
	if (s->stage != ST_FULL || s->st_disk_fd < 0 || s->st_events || (len > 0 && data == NULL))
		return -EINVAL;
	if (offset % 512 != 0 || len % 512 != 0 || offset > s->st_disk_size ||
	    s->st_disk_size - offset < len)
		return -ERANGE;
	rc = pwrite_all(s->st_disk_fd, data, len, offset);
	if (rc < 0)
		stage_discard(s, true);
	return rc;
}

int vft_store_put_events(struct vft_store *s, const void *payload, size_t len)
{
	uint64_t disk_size = s->stage == ST_FULL ? s->st_disk_size : s->disk_size;
	uint32_t count;
	uint64_t next;
	size_t pos = 8;
	struct vft_event ev;
	int rc = 0;

	if (s->dead)
		return -EIO;
	if (s->stage == ST_NONE || payload == NULL)
		return -EINVAL;
	/* the receiver checked it against the HELLO; the store checks it
	 * against the disk it writes */
	if (vft_events_decode(payload, len, disk_size, 0, &count, &next, NULL, 0) < 0)
		return -EBADMSG;
	if (s->stage == ST_FULL) {
		/* straight onto the new disk, in order, after its content */
		s->apply_fd = s->st_disk_fd;
		while (rc == 0 && vft_events_next(payload, len, &pos, &ev) == 1)
			rc = s->apply_fd >= 0 ? event_apply(s, &ev) : 0;
	} else {
		struct iovec iov = {.iov_base = (uint8_t *)payload + 8, .iov_len = len - 8};

		if (XXH3_64bits_update(s->hash, iov.iov_base, iov.iov_len) != XXH_OK)
			rc = -EINVAL;
		if (rc == 0)
			rc = pwritev_all(s->st_fd, &iov, 1, s->st_off);
		if (rc == 0)
			s->st_off += len - 8;
	}
	if (rc < 0) {
		stage_discard(s, true);
		return rc;
	}
	s->st_events = true;
	s->st_events_len += len - 8;
	s->st_n_events += count;
	return 0;
}

/* The staged epoch becomes the committed one in memory. */
static void adopt_stage(struct vft_store *s)
{
	s->epoch = s->st_epoch;
	s->session = s->st_session;
	set_devstate(s, &s->st_dev, &s->st_dev_len, &s->st_dev_cap);
}

/* Point of no return: state.tmp renamed to state naming ram.<gen+1>. */
static int commit_full(struct vft_store *s)
{
	char name[32];
	bool renamed;
	int rc;

	if ((rc = fd_sync(s->st_fd)) < 0 || (rc = fd_sync(s->st_disk_fd)) < 0 ||
	    (has_disk(s) && (rc = fd_sync(s->disk_dir_fd)) < 0))
		goto fail;
	if (crash_here(s, 1) || crash_here(s, 2))
		return crashed(s);
	if ((rc = state_write_tmp(s, s->st_gen, s->st_epoch, s->st_session, s->st_dev,
	                          s->st_dev_len, s->st_disk_size)) < 0)
		goto fail;
	if (crash_here(s, 3))
		return crashed(s);
	if ((rc = state_install(s, &renamed)) < 0) {
		if (!renamed) {
			unlink_at(s, "state.tmp");
			goto fail;
		}
		/* the new state is in place but maybe not durable: reopen decides */
		stage_discard(s, false);
		s->dead = true;
		return rc;
	}
	if (crash_here(s, 4))
		return crashed(s);
	/* The new generation is committed: the old RAM file and disk are
	 * garbage, and a failure to remove them is repaired by the next open. */
	if (s->gen) {
		ram_name(name, sizeof(name), s->gen);
		unlink_at(s, name);
	}
	if (has_disk(s) && (s->gen || s->kept_gen)) {
		/* the old generation's, or the latest copy an empty store kept */
		disk_name(name, sizeof(name), s->gen ? s->gen : s->kept_gen);
		unlinkat(s->disk_dir_fd, name, 0);
		s->kept_gen = 0;
	}
	if (s->ram_fd >= 0)
		close(s->ram_fd);
	if (s->disk_fd >= 0)
		close(s->disk_fd);
	s->ram_fd = s->st_fd;
	s->disk_fd = s->st_disk_fd;
	s->disk_size = s->st_disk_size;
	s->st_fd = s->st_disk_fd = -1;
	s->gen = s->st_gen;
	adopt_stage(s);
	s->stage = ST_NONE;
	return 0;
fail:
	stage_discard(s, true);
	return rc;
}

/* Point of no return: redo.tmp renamed to redo. */
static int commit_incr(struct vft_store *s)
{
	struct redo_hdr h = {
	        .gen = s->gen,
	        .epoch = s->st_epoch,
	        .session = s->st_session,
	        .n_pages = s->st_pages,
	        .devstate_len = s->st_dev_len,
	        .events_len = s->st_events_len,
	        .n_events = s->st_n_events,
	};
	uint8_t hdr[REDO_HDR], trl[REDO_TRAILER];
	bool renamed;
	int rc;

	redo_hdr_encode(hdr, &h);
	if (XXH3_64bits_update(s->hash, s->st_dev, s->st_dev_len) != XXH_OK ||
	    XXH3_64bits_update(s->hash, hdr, REDO_HDR) != XXH_OK) {
		rc = -EINVAL;
		goto fail;
	}
	put_le64(trl, XXH3_64bits_digest(s->hash));
	memcpy(trl + 8, REDO_END_MAGIC, 8);
	if ((rc = pwrite_all(s->st_fd, s->st_dev, s->st_dev_len, s->st_off)) < 0 ||
	    (rc = pwrite_all(s->st_fd, trl, REDO_TRAILER, s->st_off + s->st_dev_len)) < 0 ||
	    (rc = pwrite_all(s->st_fd, hdr, REDO_HDR, 0)) < 0)
		goto fail;
	if (fsync(s->st_fd) < 0) {
		rc = -errno;
		goto fail;
	}
	if (crash_here(s, 1))
		return crashed(s);
	if (renameat(s->dir_fd, "redo.tmp", s->dir_fd, "redo") < 0) {
		rc = -errno;
		goto fail;
	}
	if (fsync(s->dir_fd) < 0) {
		rc = -errno;
		/* nothing applied yet: taking the redo back keeps the old epoch */
		if (unlink_at(s, "redo") < 0)
			goto dead;
		goto fail;
	}
	if (crash_here(s, 2))
		return crashed(s);
	/* Past the point of no return: a failure from here on leaves a redo
	 * that the next open re-applies, so the store is only fit for close. */
	if ((rc = redo_apply(s, s->st_fd, &h)) < 0)
		goto dead;
	if ((rc = fd_sync(s->ram_fd)) < 0 || (h.events_len > 0 && (rc = fd_sync(s->disk_fd)) < 0))
		goto dead;
	if (crash_here(s, 3))
		return crashed(s);
	if ((rc = state_write_tmp(s, s->gen, s->st_epoch, s->st_session, s->st_dev, s->st_dev_len,
	                          s->disk_size)) < 0 ||
	    (rc = state_install(s, &renamed)) < 0)
		goto dead;
	if (crash_here(s, 4))
		return crashed(s);
	/* A redo left behind (epoch == committed) is dropped by the next open. */
	unlink_at(s, "redo");
	close(s->st_fd);
	s->st_fd = -1;
	adopt_stage(s);
	s->stage = ST_NONE;
	return 0;
fail:
	stage_discard(s, true);
	return rc;
dead:
	stage_discard(s, false);
	s->dead = true;
	return rc;
}

int vft_store_commit(struct vft_store *s)
{
	if (s->dead)
		return -EIO;
	if (s->stage == ST_NONE)
		return -EINVAL;
	return s->stage == ST_FULL ? commit_full(s) : commit_incr(s);
}

void vft_store_abort(struct vft_store *s)
{
	if (!s->dead)
		stage_discard(s, true);
}

void vft_store_test_crash_after(struct vft_store *s, int point)
{
	s->crash_point = point;
}

int vft_store_release(struct vft_store *s)
{
	int rc;

	stage_discard(s, !s->dead);
	/* state first: from here on no open calls these files an epoch */
	if ((rc = unlink_at(s, "state")) < 0 || (rc = unlink_at(s, "redo")) < 0)
		return rc;
	if (fsync(s->dir_fd) < 0)
		return -errno;
	if (s->ram_fd >= 0)
		close(s->ram_fd);
	if (s->disk_fd >= 0)
		close(s->disk_fd);
	s->ram_fd = s->disk_fd = -1;
	s->gen = s->epoch = s->session = 0;
	s->dead = true; /* only close is left */
	return 0;
}

int vft_store_forget(const char *dir)
{
	char path[DIR_MAX + 16];
	int dfd;

	if (snprintf(path, sizeof(path), "%s/state", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	snprintf(path, sizeof(path), "%s/redo", dir);
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	fsync(dfd);
	close(dfd);
	return 0;
}

int vft_store_latest_disk(const char *disk_dir, char *path, size_t n, uint64_t *gen)
{
	uint64_t top;
	int dfd, rc;

	dfd = open(disk_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = disk_highest(dfd, &top);
	close(dfd);
	if (rc < 0)
		return rc;
	if (top == 0)
		return -ENOENT;
	if ((size_t)snprintf(path, n, "%s/disk.%llu", disk_dir, (unsigned long long)top) >= n)
		return -ENAMETOOLONG;
	if (gen != NULL)
		*gen = top;
	return 0;
}

bool vft_store_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

int vft_store_seed_disk(const char *disk_dir, const char *image, char *path, size_t n, char *err,
                        size_t errlen)
{
	char tmp[DIR_MAX + 32];
	uint8_t *buf = NULL;
	struct stat st;
	int in = -1, out = -1, rc;
	uint64_t off = 0;

	if ((rc = mkdir_p(disk_dir)) < 0) {
		set_err(err, errlen, "cannot create %s: %s", disk_dir, strerror(-rc));
		return rc;
	}
	if ((size_t)snprintf(path, n, "%s/disk.1", disk_dir) >= n ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/disk.1.tmp", disk_dir) >= sizeof(tmp)) {
		set_err(err, errlen, "disk directory name too long");
		return -ENAMETOOLONG;
	}
	in = open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot read the disk image %s: %s", image, strerror(-rc));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size % 512 != 0) {
		rc = -EINVAL;
		set_err(err, errlen, "disk image %s: %lld bytes, not a whole number of sectors",
		        image, (long long)st.st_size);
		goto out;
	}
	buf = malloc(1u << 20);
	out = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (buf == NULL || out < 0 || ftruncate(out, st.st_size) < 0) {
		rc = buf == NULL ? -ENOMEM : -errno;
		set_err(err, errlen, "cannot create %s: %s", tmp, strerror(-rc));
		goto out;
	}
	/* zero blocks stay holes: a mostly empty image costs what it holds */
	while (off < (uint64_t)st.st_size) {
		size_t len = (uint64_t)st.st_size - off < (1u << 20) ? (size_t)(st.st_size - off)
		                                                     : (1u << 20);

		if ((rc = pread_all(in, buf, len, off)) < 0 ||
		    (!vft_store_all_zero(buf, len) && (rc = pwrite_all(out, buf, len, off)) < 0)) {
			set_err(err, errlen, "copying %s to %s: %s", image, tmp, strerror(-rc));
			goto out;
		}
		off += len;
	}
	if (fsync(out) < 0 || rename(tmp, path) < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot install %s: %s", path, strerror(-rc));
		goto out;
	}
	rc = 0;
	{
		int dfd = open(disk_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	}
out:
	if (rc < 0 && out >= 0)
		unlink(tmp);
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	free(buf);
	return rc;
}
