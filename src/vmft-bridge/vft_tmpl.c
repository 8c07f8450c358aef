/*
 * vmft templates: see vft_tmpl.h.
 *
 * The tables of both slots stay in memory from open (or the refresh that
 * made them) to close: a sync pins them for minutes, and a refresh compares
 * the slot it rewrites with what that slot held, without reading it back.
 *
 * A disk whose size is not a multiple of 4 KiB ends with a short block: it
 * is hashed over the bytes that exist, here as on the primary, so n_blocks
 * rounds up (disk images are only guaranteed whole sectors).
 *
 * RAM images are sparse like disk bases: a refresh into a slot whose old
 * content is unknown starts from an empty file and writes only the pages
 * that are not zero. A copy still writes every RAM page, as the header
 * promises nothing about the destination of the RAM image.
 */
#include "config.h"

#include "vft_tmpl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "af_util.h"

#define META_MAGIC "VFTTMPL1"
#define META_VERSION 1u
#define META_HDR 96u
#define META_SUM 8u
#define UNIT 4096u /* VFT_TMPL_PAGE == VFT_TMPL_BLOCK */
/* Large reads and writes: a copy is on the critical path of a sync. */
#define CHUNK (1u << 20)
#define CHUNK_UNITS (CHUNK / UNIT)
/* A throttled refresh looks at *cancel at least this often. */
#define THROTTLE_SLICE_NS 100000000ull

/* dir + "/disk.N" + NUL must fit vft_tmpl_info.ram_path. */
#define DIR_MAX (sizeof(((struct vft_tmpl_info *)0)->ram_path) - 32)

struct slot {
	bool valid;   /* its meta is on disk and matched the machine */
	bool disk_ok; /* its disk base is offered */
	unsigned pins;
	struct vft_tmpl_info info;
	uint64_t *pages;  /* ram_size / UNIT */
	uint64_t *blocks; /* count_blocks(disk_size), NULL when 0 */
};

/* What open was told about the machine; 0 = accept any (tools). */
struct expect {
	uint64_t ram_size, disk_size, config_hash;
};

struct vft_tmpl {
	char dir[DIR_MAX];
	int dir_fd;
	struct expect exp;
	pthread_mutex_t lock; /* guards slot[], active and refreshing */
	struct slot slot[2];
	int active;     /* -1: none */
	int refreshing; /* the slot a refresh rewrites, -1: none */
};

enum unit_op { OP_SKIP = 0, OP_WRITE, OP_PUNCH };

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

/* Appends one reason to why, "; " between reasons: the caller logs one line. */
static void add_why(char *why, size_t whylen, const char *reason)
{
	size_t len;

	if (why == NULL || whylen == 0)
		return;
	len = strnlen(why, whylen - 1);
	snprintf(why + len, whylen - len, "%s%s", len ? "; " : "", reason);
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

/* Sizes are checked before reading: an early end of file means the file
 * changed under us, an I/O error rather than damage. */
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

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static uint64_t count_blocks(uint64_t disk_size)
{
	return disk_size / UNIT + (disk_size % UNIT != 0);
}

static size_t min_size(uint64_t a, size_t b)
{
	return a < b ? (size_t)a : b;
}

static void slot_file(char *buf, size_t len, const char *kind, unsigned slot)
{
	snprintf(buf, len, "%s.%u", kind, slot);
}

static int unlink_name(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int sync_dir(int dfd)
{
	return fsync(dfd) < 0 ? -errno : 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int mkdir_p(const char *dir)
{
	char path[DIR_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
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

/* The directory's name without trailing slashes, for the paths in info. */
static int copy_dir_name(char *out, const char *dir)
{
	size_t len = strlen(dir);

	if (len >= DIR_MAX)
		return -ENAMETOOLONG;
	memcpy(out, dir, len + 1);
	while (len > 1 && out[len - 1] == '/')
		out[--len] = '\0';
	return 0;
}

static void slot_free_tables(struct slot *s)
{
	free(s->pages);
	free(s->blocks);
	s->pages = s->blocks = NULL;
}

static void recompute_active(struct vft_tmpl *t)
{
	t->active = -1;
	for (int i = 0; i < 2; i++)
		if (t->slot[i].valid &&
		    (t->active < 0 || t->slot[i].info.seq > t->slot[t->active].info.seq))
			t->active = i;
}

/* ---- hashes ---------------------------------------------------------------------------- */

uint64_t vft_tmpl_hash(const void *p, size_t len)
{
	return XXH3_64bits(p, len);
}

/* Feeds n hashes to st as little-endian bytes, whatever the host. */
static void hash_le64s(XXH3_state_t *st, const uint64_t *v, uint64_t n)
{
	uint8_t buf[2048];

	while (n > 0) {
		size_t k = min_size(n, sizeof(buf) / 8);

		for (size_t i = 0; i < k; i++)
			put_le64(buf + 8 * i, v[i]);
		XXH3_64bits_update(st, buf, 8 * k);
		v += k;
		n -= k;
	}
}

uint64_t vft_tmpl_content_id(uint64_t ram_size, uint64_t disk_size, const uint64_t *page_hashes,
                             const uint64_t *block_hashes)
{
	XXH3_state_t st;
	uint8_t sizes[16];

	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	put_le64(sizes, ram_size);
	put_le64(sizes + 8, disk_size);
	XXH3_64bits_update(&st, sizes, sizeof(sizes));
	if (page_hashes != NULL)
		hash_le64s(&st, page_hashes, ram_size / UNIT);
	if (block_hashes != NULL)
		hash_le64s(&st, block_hashes, count_blocks(disk_size));
	return XXH3_64bits_digest(&st);
}

/* ---- meta ------------------------------------------------------------------------------ */

static uint64_t meta_size(uint64_t ram_size, uint64_t disk_size)
{
	return META_HDR + 8 * (ram_size / UNIT + count_blocks(disk_size)) + META_SUM;
}

/* A malloc'd meta of *len bytes, NULL when out of memory. */
static uint8_t *meta_encode(const struct vft_tmpl_info *in, const uint64_t *pages,
                            const uint64_t *blocks, size_t *len)
{
	uint64_t np = in->ram_size / UNIT, nb = count_blocks(in->disk_size);
	uint8_t *b, *p;

	*len = (size_t)meta_size(in->ram_size, in->disk_size);
	b = calloc(1, *len);
	if (b == NULL)
		return NULL;
	memcpy(b, META_MAGIC, 8);
	put_le32(b + 8, META_VERSION);
	put_le64(b + 16, in->seq);
	put_le64(b + 24, in->id);
	put_le64(b + 32, in->ram_size);
	put_le64(b + 40, in->disk_size);
	put_le64(b + 48, in->config_hash);
	put_le64(b + 56, in->created);
	put_le64(b + 64, in->source_epoch);
	put_le64(b + 72, in->pages_written);
	memcpy(b + 80, in->source, strnlen(in->source, sizeof(in->source) - 1));
	p = b + META_HDR;
	for (uint64_t i = 0; i < np; i++, p += 8)
		put_le64(p, pages[i]);
	for (uint64_t i = 0; i < nb; i++, p += 8)
		put_le64(p, blocks[i]);
	put_le64(p, XXH3_64bits(b, (size_t)(p - b)));
	return b;
}

static void meta_decode_header(const uint8_t *b, struct vft_tmpl_info *info)
{
	info->seq = get_le64(b + 16);
	info->id = get_le64(b + 24);
	info->ram_size = get_le64(b + 32);
	info->disk_size = get_le64(b + 40);
	info->config_hash = get_le64(b + 48);
	info->created = get_le64(b + 56);
	info->source_epoch = get_le64(b + 64);
	info->pages_written = get_le64(b + 72);
	memcpy(info->source, b + 80, sizeof(info->source) - 1);
	info->source[sizeof(info->source) - 1] = '\0';
}

static int meta_decode_tables(const uint8_t *b, struct slot *s)
{
	uint64_t np = s->info.ram_size / UNIT, nb = count_blocks(s->info.disk_size);
	const uint8_t *p = b + META_HDR;

	s->pages = malloc(np * 8);
	s->blocks = nb ? malloc(nb * 8) : NULL;
	if (s->pages == NULL || (nb && s->blocks == NULL)) {
		slot_free_tables(s);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < np; i++, p += 8)
		s->pages[i] = get_le64(p);
	for (uint64_t i = 0; i < nb; i++, p += 8)
		s->blocks[i] = get_le64(p);
	return 0;
}

/* Checks a meta of len bytes and decodes it into s: 0, 1 when it is damaged
 * (reason says why) or -ENOMEM. */
static int meta_decode(const uint8_t *b, uint64_t len, struct slot *s, char *reason, size_t rlen)
{
	uint64_t need;
	int rc;

	if (len < META_HDR + META_SUM) {
		set_err(reason, rlen, "%llu bytes, too short", (unsigned long long)len);
		return 1;
	}
	if (memcmp(b, META_MAGIC, 8) != 0) {
		set_err(reason, rlen, "bad magic");
		return 1;
	}
	if (get_le32(b + 8) != META_VERSION) {
		set_err(reason, rlen, "version %u, not %u", get_le32(b + 8), META_VERSION);
		return 1;
	}
	meta_decode_header(b, &s->info);
	need = meta_size(s->info.ram_size, s->info.disk_size);
	if (len != need) {
		set_err(reason, rlen, "%llu bytes, %llu expected", (unsigned long long)len,
		        (unsigned long long)need);
		return 1;
	}
	if (XXH3_64bits(b, (size_t)len - META_SUM) != get_le64(b + len - META_SUM)) {
		set_err(reason, rlen, "checksum mismatch");
		return 1;
	}
	/* Checksummed but impossible: a bug wrote it; trust nothing in it. */
	if (s->info.seq == 0 || s->info.ram_size == 0 || s->info.ram_size % UNIT != 0) {
		set_err(reason, rlen, "seq %llu, RAM size %llu", (unsigned long long)s->info.seq,
		        (unsigned long long)s->info.ram_size);
		return 1;
	}
	if ((rc = meta_decode_tables(b, s)) < 0)
		return rc;
	if (vft_tmpl_content_id(s->info.ram_size, s->info.disk_size, s->pages, s->blocks) !=
	    s->info.id) {
		slot_free_tables(s);
		set_err(reason, rlen, "content id mismatch");
		return 1;
	}
	return 0;
}

/* Reads a whole file: 0 with *buf malloc'd, or -errno. */
static int read_whole(int dfd, const char *name, uint8_t **buf, uint64_t *len)
{
	struct stat st;
	int fd, rc;

	*buf = NULL;
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	*len = (uint64_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	if (*buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = pread_all(fd, *buf, *len, 0);
	if (rc < 0) {
		free(*buf);
		*buf = NULL;
	}
out:
	close(fd);
	return rc;
}

/* Writes meta.N atomically. The directory must be synced before the slot
 * is called valid: without that a crash could bring back the old meta
 * (removed durably before the rewrite) over the new content. */
static int meta_write(int dfd, unsigned slot, const uint8_t *buf, size_t len)
{
	char tmp[32], name[32];
	int fd, rc;

	slot_file(name, sizeof(name), "meta", slot);
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = pwrite_all(fd, buf, len, 0);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink_name(dfd, tmp);
		return rc;
	}
	if ((rc = sync_dir(dfd)) < 0)
		unlink_name(dfd, name);
	return rc;
}

/* ---- loading a slot -------------------------------------------------------------------- */

static bool tools_mode(const struct expect *e)
{
	return e->ram_size == 0 && e->config_hash == 0;
}

static int check_machine(const struct slot *s, const struct expect *e, char *reason, size_t rlen)
{
	if (e->ram_size && s->info.ram_size != e->ram_size) {
		set_err(reason, rlen, "made for %llu bytes of RAM, not %llu",
		        (unsigned long long)s->info.ram_size, (unsigned long long)e->ram_size);
		return 1;
	}
	if (e->config_hash && s->info.config_hash != e->config_hash) {
		set_err(reason, rlen, "made for machine %016llx, not %016llx",
		        (unsigned long long)s->info.config_hash,
		        (unsigned long long)e->config_hash);
		return 1;
	}
	return 0;
}

/* Is name a regular file of at least size bytes? */
static bool file_holds(int dfd, const char *name, uint64_t size)
{
	struct stat st;

	return fstatat(dfd, name, &st, 0) == 0 && S_ISREG(st.st_mode) &&
	       (uint64_t)st.st_size >= size;
}

static bool disk_usable(const struct slot *s, const struct expect *e)
{
	if (s->info.disk_size == 0)
		return false;
	if (tools_mode(e) && e->disk_size == 0)
		return true;
	return s->info.disk_size == e->disk_size;
}

/* The images of a decoded meta: its RAM must be there, its disk base is
 * offered only when it is there and fits the machine. */
static int check_files(int dfd, const char *dir, unsigned n, struct slot *s, const struct expect *e,
                       char *reason, size_t rlen)
{
	char name[16];

	slot_file(name, sizeof(name), "ram", n);
	if (!file_holds(dfd, name, s->info.ram_size)) {
		set_err(reason, rlen, "%s missing or shorter than %llu bytes", name,
		        (unsigned long long)s->info.ram_size);
		return 1;
	}
	snprintf(s->info.ram_path, sizeof(s->info.ram_path), "%s/%s", dir, name);
	slot_file(name, sizeof(name), "disk", n);
	s->disk_ok = disk_usable(s, e) && file_holds(dfd, name, s->info.disk_size);
	if (s->disk_ok)
		snprintf(s->info.disk_path, sizeof(s->info.disk_path), "%s/%s", dir, name);
	return 0;
}

/* Loads slot n into s: 0 valid, 1 refused (why: one line), -ENOENT when it
 * has no meta, or -ENOMEM. */
static int load_slot(int dfd, const char *dir, unsigned n, const struct expect *e, struct slot *s,
                     char *why, size_t whylen)
{
	char name[16], reason[200];
	uint8_t *buf;
	uint64_t len = 0;
	int rc;

	memset(s, 0, sizeof(*s));
	slot_file(name, sizeof(name), "meta", n);
	rc = read_whole(dfd, name, &buf, &len);
	if (rc == -ENOENT || rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		set_err(why, whylen, "%s: %s", name, strerror(-rc));
		return 1;
	}
	rc = meta_decode(buf, len, s, reason, sizeof(reason));
	free(buf);
	if (rc == 0)
		rc = check_machine(s, e, reason, sizeof(reason));
	if (rc == 0)
		rc = check_files(dfd, dir, n, s, e, reason, sizeof(reason));
	if (rc != 0) {
		slot_free_tables(s);
		memset(s, 0, sizeof(*s));
		if (rc > 0)
			set_err(why, whylen, "%s: %s", name, reason);
		return rc;
	}
	s->info.slot = n;
	s->valid = true;
	return 0;
}

/* ---- open, close, info, pin ------------------------------------------------------------ */

static int open_dir(struct vft_tmpl *t, char *err, size_t errlen)
{
	int rc = mkdir_p(t->dir);

	if (rc < 0) {
		set_err(err, errlen, "cannot create %s: %s", t->dir, strerror(-rc));
		return rc;
	}
	t->dir_fd = open(t->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->dir_fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open %s: %s", t->dir, strerror(-rc));
		return rc;
	}
	return 0;
}

static int load_slots(struct vft_tmpl *t, char *why, size_t whylen, char *err, size_t errlen)
{
	char reason[400];

	for (unsigned n = 0; n < 2; n++) {
		int rc = load_slot(t->dir_fd, t->dir, n, &t->exp, &t->slot[n], reason,
		                   sizeof(reason));

		if (rc == 1)
			add_why(why, whylen, reason);
		else if (rc < 0 && rc != -ENOENT) {
			set_err(err, errlen, "loading meta.%u: %s", n, strerror(-rc));
			return rc;
		}
	}
	recompute_active(t);
	return 0;
}

int vft_tmpl_open(struct vft_tmpl **out, const char *dir, uint64_t ram_size, uint64_t disk_size,
                  uint64_t config_hash, char *why, size_t whylen, char *err, size_t errlen)
{
	struct vft_tmpl *t;
	int rc;

	set_err(err, errlen, "%s", "");
	set_err(why, whylen, "%s", "");
	if (out != NULL)
		*out = NULL;
	if (out == NULL || dir == NULL || dir[0] == '\0') {
		set_err(err, errlen, "no template directory");
		return -EINVAL;
	}
	if (ram_size % UNIT != 0) {
		set_err(err, errlen, "RAM size %llu is not a multiple of %u",
		        (unsigned long long)ram_size, UNIT);
		return -EINVAL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	t->dir_fd = -1;
	t->active = t->refreshing = -1;
	t->exp = (struct expect){ram_size, disk_size, config_hash};
	pthread_mutex_init(&t->lock, NULL);
	if ((rc = copy_dir_name(t->dir, dir)) < 0) {
		set_err(err, errlen, "template directory name too long");
		goto fail;
	}
	if ((rc = open_dir(t, err, errlen)) < 0)
		goto fail;
	/* A refresh that died before its rename; a tool must not race a
	 * running refresh's rename, so only the owner cleans up. */
	if (!tools_mode(&t->exp)) {
		unlink_name(t->dir_fd, "meta.0.tmp");
		unlink_name(t->dir_fd, "meta.1.tmp");
	}
	if ((rc = load_slots(t, why, whylen, err, errlen)) < 0)
		goto fail;
	*out = t;
	return 0;
fail:
	vft_tmpl_close(t);
	return rc;
}

void vft_tmpl_close(struct vft_tmpl *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < 2; i++)
		slot_free_tables(&t->slot[i]);
	if (t->dir_fd >= 0)
		close(t->dir_fd);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int vft_tmpl_info(struct vft_tmpl *t, struct vft_tmpl_info *info)
{
	int rc = -ENOENT;

	if (t == NULL || info == NULL)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (t->active >= 0) {
		*info = t->slot[t->active].info;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int vft_tmpl_pin(struct vft_tmpl *t, struct vft_tmpl_pin *pin)
{
	struct slot *s;

	if (t == NULL || pin == NULL)
		return -EINVAL;
	memset(pin, 0, sizeof(*pin));
	pthread_mutex_lock(&t->lock);
	if (t->active < 0) {
		pthread_mutex_unlock(&t->lock);
		return -ENOENT;
	}
	s = &t->slot[t->active];
	s->pins++;
	pin->info = s->info;
	pin->page_hashes = s->pages;
	pin->n_pages = s->info.ram_size / UNIT;
	if (s->disk_ok) {
		pin->block_hashes = s->blocks;
		pin->n_blocks = count_blocks(s->info.disk_size);
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void vft_tmpl_unpin(struct vft_tmpl *t, struct vft_tmpl_pin *pin)
{
	struct slot *s;

	/* the page table is never NULL in a pin: an unpinned one is zeroed */
	if (t == NULL || pin == NULL || pin->page_hashes == NULL || pin->info.slot > 1)
		return;
	pthread_mutex_lock(&t->lock);
	s = &t->slot[pin->info.slot];
	if (s->pins > 0)
		s->pins--;
	/* invalidated while pinned: its tables were kept for this pin */
	if (s->pins == 0 && !s->valid)
		slot_free_tables(s);
	pthread_mutex_unlock(&t->lock);
	memset(pin, 0, sizeof(*pin));
}

/* ---- copy and verify ------------------------------------------------------------------- */

/* Writes the units of buf[0..len) (at off in fd) that op[] says, one call
 * per run of units with the same op. *done counts the units changed. */
static int apply_ops(int fd, const uint8_t *buf, uint64_t off, size_t len, const uint8_t *op,
                     size_t n, uint64_t *done)
{
	for (size_t i = 0, j; i < n; i = j) {
		size_t b = i * UNIT, e;
		int rc = 0;

		for (j = i + 1; j < n && op[j] == op[i]; j++)
			;
		if (op[i] == OP_SKIP)
			continue;
		e = min_size(len, j * UNIT);
		if (op[i] == OP_WRITE)
			rc = pwrite_all(fd, buf + b, e - b, off + b);
		else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(off + b),
		                   (off_t)(e - b)) < 0)
			rc = pwrite_all(fd, buf + b, e - b, off + b); /* the new content is zeros */
		if (rc < 0)
			return rc;
		if (done != NULL)
			*done += j - i;
	}
	return 0;
}

/* Writes buf[0..len) to fd at off, all-zero units left as holes. */
static int write_sparse(int fd, const uint8_t *buf, uint64_t off, size_t len)
{
	uint8_t op[CHUNK_UNITS];
	size_t n = (len + UNIT - 1) / UNIT;

	for (size_t i = 0; i < n; i++)
		op[i] = all_zero(buf + i * UNIT, min_size(len - i * UNIT, UNIT)) ? OP_SKIP
		                                                                 : OP_WRITE;
	return apply_ops(fd, buf, off, len, op, n, NULL);
}

struct check {
	const uint64_t *hashes;
	uint64_t size;
	int dst_fd; /* -1: verify only (or the sink) */
	bool sparse;
	uint64_t bad, first;
	vft_tmpl_sink sink; /* instead of dst_fd when not NULL */
	void *arg;
	bool disk;
	const volatile bool *cancel;
};

/* Reads size bytes of src_fd, checks every unit against its hash and,
 * until one is bad (the copy is then thrown away), writes them to dst_fd. */
static int check_file(int src_fd, struct check *c, uint8_t *buf, bool *stop_writing)
{
	for (uint64_t off = 0; off < c->size;) {
		size_t len = min_size(c->size - off, CHUNK);
		int rc = pread_all(src_fd, buf, len, off);

		if (rc < 0)
			return rc;
		for (size_t b = 0; b < len; b += UNIT) {
			uint64_t idx = (off + b) / UNIT;

			if (vft_tmpl_hash(buf + b, min_size(len - b, UNIT)) != c->hashes[idx]) {
				if (c->bad++ == 0)
					c->first = idx;
				*stop_writing = true;
			}
		}
		if (c->sink != NULL && *stop_writing)
			return 0; /* a sync has no use for the rest: it falls back */
		if (c->sink != NULL) {
			rc = c->sink(c->arg, c->disk, off, buf, len);
			if (rc < 0)
				return rc;
		} else if (c->dst_fd >= 0 && !*stop_writing) {
			rc = c->sparse ? write_sparse(c->dst_fd, buf, off, len)
			               : pwrite_all(c->dst_fd, buf, len, off);
			if (rc < 0)
				return rc;
		}
		if (c->cancel != NULL && *c->cancel)
			return -ECANCELED;
		off += len;
	}
	return 0;
}

static int check_image(int dfd, const char *kind, unsigned slot, struct check *c, uint8_t *buf,
                       bool *stop_writing, char *err, size_t errlen)
{
	char name[16];
	int fd, rc;

	slot_file(name, sizeof(name), kind, slot);
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		set_err(err, errlen, "cannot open %s: %s", name, strerror(-rc));
		return rc;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	rc = check_file(fd, c, buf, stop_writing);
	if (rc < 0)
		set_err(err, errlen, "checking %s: %s", name, strerror(-rc));
	close(fd);
	return rc;
}

static int report_bad(const struct check *ram, const struct check *disk, unsigned slot, char *err,
                      size_t errlen)
{
	if (ram->bad == 0 && disk->bad == 0)
		return 0;
	set_err(err, errlen,
	        "%s.%u: %s %llu does not match its hash (%llu bad pages, %llu bad blocks)",
	        ram->bad ? "ram" : "disk", slot, ram->bad ? "page" : "block",
	        (unsigned long long)(ram->bad ? ram->first : disk->first),
	        (unsigned long long)ram->bad, (unsigned long long)disk->bad);
	return -EBADMSG;
}

/* Checks (and copies, when a destination is given) the images of a pin. A
 * bad unit does not stop the check: err tells how damaged the slot is. */
static int check_pinned(struct vft_tmpl *t, const struct vft_tmpl_pin *pin, int dst_fd,
                        int dst_disk_fd, bool with_disk, char *err, size_t errlen)
{
	struct check ram = {
	        .hashes = pin->page_hashes, .size = pin->info.ram_size, .dst_fd = dst_fd};
	struct check disk = {.hashes = pin->block_hashes,
	                     .size = pin->info.disk_size,
	                     .dst_fd = dst_disk_fd,
	                     .sparse = true};
	bool stop_writing = false;
	uint8_t *buf = malloc(CHUNK);
	int rc;

	if (buf == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = check_image(t->dir_fd, "ram", pin->info.slot, &ram, buf, &stop_writing, err, errlen);
	if (rc == 0 && with_disk && pin->n_blocks > 0)
		rc = check_image(t->dir_fd, "disk", pin->info.slot, &disk, buf, &stop_writing, err,
		                 errlen);
	if (rc == 0)
		rc = report_bad(&ram, &disk, pin->info.slot, err, errlen);
	free(buf);
	return rc;
}

int vft_tmpl_copy(struct vft_tmpl *t, const struct vft_tmpl_pin *pin, int dst_fd, int dst_disk_fd,
                  char *err, size_t errlen)
{
	set_err(err, errlen, "%s", "");
	if (t == NULL || pin == NULL || pin->page_hashes == NULL || pin->info.slot > 1 ||
	    dst_fd < 0) {
		set_err(err, errlen, "no pinned template or no destination");
		return -EINVAL;
	}
	return check_pinned(t, pin, dst_fd, dst_disk_fd, dst_disk_fd >= 0, err, errlen);
}

int vft_tmpl_copy_to(struct vft_tmpl *t, const struct vft_tmpl_pin *pin, bool with_disk,
                     vft_tmpl_sink sink, void *arg, const volatile bool *cancel, char *err,
                     size_t errlen)
{
	struct check ram = {.hashes = pin ? pin->page_hashes : NULL,
	                    .dst_fd = -1,
	                    .sink = sink,
	                    .arg = arg,
	                    .cancel = cancel};
	struct check disk = ram;
	bool stop_writing = false;
	uint8_t *buf;
	int rc;

	set_err(err, errlen, "%s", "");
	if (t == NULL || pin == NULL || pin->page_hashes == NULL || pin->info.slot > 1 ||
	    sink == NULL) {
		set_err(err, errlen, "no pinned template or no sink");
		return -EINVAL;
	}
	ram.size = pin->info.ram_size;
	disk.hashes = pin->block_hashes;
	disk.size = pin->info.disk_size;
	disk.disk = true;
	buf = malloc(CHUNK);
	if (buf == NULL) {
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = check_image(t->dir_fd, "ram", pin->info.slot, &ram, buf, &stop_writing, err, errlen);
	if (rc == 0 && !stop_writing && with_disk && pin->n_blocks > 0)
		rc = check_image(t->dir_fd, "disk", pin->info.slot, &disk, buf, &stop_writing, err,
		                 errlen);
	if (rc == 0)
		rc = report_bad(&ram, &disk, pin->info.slot, err, errlen);
	free(buf);
	return rc;
}

int vft_tmpl_verify(struct vft_tmpl *t, char *err, size_t errlen)
{
	struct vft_tmpl_pin pin;
	int rc;

	set_err(err, errlen, "%s", "");
	if ((rc = vft_tmpl_pin(t, &pin)) < 0) {
		set_err(err, errlen, "no template");
		return rc;
	}
	rc = check_pinned(t, &pin, -1, -1, true, err, errlen);
	vft_tmpl_unpin(t, &pin);
	return rc;
}

/* ---- invalidate and remove ------------------------------------------------------------- */

int vft_tmpl_invalidate(struct vft_tmpl *t, unsigned slot)
{
	struct slot *s;
	char name[16];
	int rc;

	if (t == NULL || slot > 1)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	/* a refresh is rewriting it: its meta is gone already */
	if (t->refreshing == (int)slot) {
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	s = &t->slot[slot];
	s->valid = s->disk_ok = false;
	if (s->pins == 0)
		slot_free_tables(s);
	recompute_active(t);
	slot_file(name, sizeof(name), "meta", slot);
	rc = unlink_name(t->dir_fd, name);
	if (rc == 0)
		rc = sync_dir(t->dir_fd);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

static int remove_files(int dfd)
{
	static const char *const metas[] = {"meta.0", "meta.1", "meta.0.tmp", "meta.1.tmp"};
	static const char *const images[] = {"ram.0", "ram.1", "disk.0", "disk.1"};
	int rc;

	for (size_t i = 0; i < AF_ARRAY_SIZE(metas); i++)
		if ((rc = unlink_name(dfd, metas[i])) < 0)
			return rc;
	/* no meta may outlive the images it describes */
	if ((rc = sync_dir(dfd)) < 0)
		return rc;
	for (size_t i = 0; i < AF_ARRAY_SIZE(images); i++)
		if ((rc = unlink_name(dfd, images[i])) < 0)
			return rc;
	return sync_dir(dfd);
}

int vft_tmpl_remove_all(struct vft_tmpl *t)
{
	int rc;

	if (t == NULL)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (t->refreshing >= 0 || t->slot[0].pins || t->slot[1].pins) {
		pthread_mutex_unlock(&t->lock);
		return -EBUSY;
	}
	for (int i = 0; i < 2; i++) {
		slot_free_tables(&t->slot[i]);
		memset(&t->slot[i], 0, sizeof(t->slot[i]));
	}
	t->active = -1;
	rc = remove_files(t->dir_fd);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* ---- refresh --------------------------------------------------------------------------- */

struct refresh {
	struct vft_tmpl *t;
	const struct vft_tmpl_source *src;
	unsigned slot;
	uint64_t seq;
	uint64_t disk_size;               /* 0: no disk base */
	uint64_t *old_pages, *old_blocks; /* NULL: the slot's content is unknown */
	uint64_t *pages, *blocks;
	uint8_t *buf;
	uint64_t start_ns, read, written;
	char *err;
	size_t errlen;
};

static bool cancelled(const struct vft_tmpl_source *src)
{
	return src->cancel != NULL && *src->cancel;
}

/* A source file shorter than the machine would end the refresh half-way. */
static int check_source_file(int fd, const char *what, uint64_t size, char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) < 0) {
		int rc = -errno;

		set_err(err, errlen, "source %s: %s", what, strerror(-rc));
		return rc;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < size) {
		set_err(err, errlen, "source %s has %lld bytes, %llu needed", what,
		        (long long)st.st_size, (unsigned long long)size);
		return -EINVAL;
	}
	return 0;
}

static int refresh_check_args(const struct vft_tmpl *t, const struct vft_tmpl_source *src,
                              char *err, size_t errlen)
{
	int rc;

	if (t == NULL || src == NULL || (src->ram == NULL && src->ram_fd < 0)) {
		set_err(err, errlen, "no template or no RAM source");
		return -EINVAL;
	}
	if (t->exp.ram_size == 0) {
		set_err(err, errlen, "templates opened without a RAM size cannot be refreshed");
		return -EINVAL;
	}
	if (src->disk_fd >= 0 && t->exp.disk_size == 0) {
		set_err(err, errlen, "a disk source but no disk size");
		return -EINVAL;
	}
	if (src->ram == NULL &&
	    (rc = check_source_file(src->ram_fd, "RAM", t->exp.ram_size, err, errlen)) < 0)
		return rc;
	if (src->disk_fd >= 0 &&
	    (rc = check_source_file(src->disk_fd, "disk", t->exp.disk_size, err, errlen)) < 0)
		return rc;
	if (cancelled(src)) {
		set_err(err, errlen, "cancelled");
		return -ECANCELED;
	}
	return 0;
}

/* Takes the inactive slot for the refresh, with its old tables when they
 * describe what its files hold. Called with the lock held. */
static int refresh_take_slot(struct refresh *r)
{
	struct vft_tmpl *t = r->t;
	struct slot *s;

	if (t->refreshing >= 0) {
		set_err(r->err, r->errlen, "a refresh is already running");
		return -EBUSY;
	}
	r->slot = t->active < 0 ? 0 : 1 - (unsigned)t->active;
	s = &t->slot[r->slot];
	if (s->pins > 0) {
		set_err(r->err, r->errlen, "slot %u is pinned by a sync", r->slot);
		return -EBUSY;
	}
	r->seq = 1;
	for (int i = 0; i < 2; i++)
		if (t->slot[i].valid && t->slot[i].info.seq >= r->seq)
			r->seq = t->slot[i].info.seq + 1;
	if (s->valid && s->info.ram_size == t->exp.ram_size) {
		r->old_pages = s->pages;
		s->pages = NULL;
	}
	if (s->valid && s->disk_ok && r->disk_size && s->info.disk_size == r->disk_size) {
		r->old_blocks = s->blocks;
		s->blocks = NULL;
	}
	slot_free_tables(s);
	memset(s, 0, sizeof(*s));
	t->refreshing = (int)r->slot;
	return 0;
}

static int refresh_begin(struct refresh *r)
{
	uint64_t nb = count_blocks(r->disk_size);
	int rc;

	r->pages = malloc(r->t->exp.ram_size / UNIT * 8);
	r->blocks = nb ? malloc(nb * 8) : NULL;
	r->buf = malloc(CHUNK);
	if (r->pages == NULL || (nb && r->blocks == NULL) || r->buf == NULL) {
		set_err(r->err, r->errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&r->t->lock);
	rc = refresh_take_slot(r);
	pthread_mutex_unlock(&r->t->lock);
	return rc;
}

/* Sleeps until the bytes read fit the rate, waking to look at *cancel. */
static int throttle(const struct refresh *r)
{
	uint64_t rate = r->src->rate_bps;
	double due;

	if (rate == 0)
		return 0;
	due = (double)r->read * 1e9 / (double)rate;
	for (;;) {
		uint64_t elapsed = mono_ns() - r->start_ns, wait;
		struct timespec ts;

		if ((double)elapsed >= due)
			return 0;
		if (cancelled(r->src))
			return -ECANCELED;
		wait = (uint64_t)(due - (double)elapsed);
		if (wait > THROTTLE_SLICE_NS)
			wait = THROTTLE_SLICE_NS;
		ts.tv_sec = (time_t)(wait / 1000000000ull);
		ts.tv_nsec = (long)(wait % 1000000000ull);
		nanosleep(&ts, NULL);
	}
}

/* Hashes the units of the chunk in r->buf and writes those the slot does
 * not hold yet: a unit equal to the old one is left alone, a zero unit
 * becomes a hole (already one when the file was emptied). */
static int refresh_chunk(struct refresh *r, int fd, uint64_t off, size_t len, const uint64_t *old,
                         uint64_t *hashes)
{
	uint8_t op[CHUNK_UNITS];
	size_t n = (len + UNIT - 1) / UNIT;

	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = r->buf + i * UNIT;
		size_t ulen = min_size(len - i * UNIT, UNIT);
		uint64_t idx = off / UNIT + i, h = vft_tmpl_hash(p, ulen);

		hashes[idx] = h;
		if (old != NULL && old[idx] == h)
			op[i] = OP_SKIP;
		else if (all_zero(p, ulen))
			op[i] = old != NULL ? OP_PUNCH : OP_SKIP;
		else
			op[i] = OP_WRITE;
	}
	return apply_ops(fd, r->buf, off, len, op, n, &r->written);
}

/* Reads one chunk of the source into r->buf: what is hashed and written
 * is this copy, whatever the source does meanwhile. */
static int read_source(struct refresh *r, const uint8_t *mem, int src_fd, uint64_t off, size_t len)
{
	if (mem != NULL) {
		memcpy(r->buf, mem + off, len);
		return 0;
	}
	return pread_all(src_fd, r->buf, len, off);
}

static int refresh_loop(struct refresh *r, int fd, const uint8_t *mem, int src_fd, uint64_t size,
                        const uint64_t *old, uint64_t *hashes)
{
	for (uint64_t off = 0; off < size;) {
		size_t len = min_size(size - off, CHUNK);
		int rc;

		if (cancelled(r->src))
			return -ECANCELED;
		if ((rc = read_source(r, mem, src_fd, off, len)) < 0 ||
		    (rc = refresh_chunk(r, fd, off, len, old, hashes)) < 0)
			return rc;
		r->read += len;
		off += len;
		if ((rc = throttle(r)) < 0)
			return rc;
	}
	return 0;
}

/* Rewrites ram.N or disk.N of the slot from the source. */
static int refresh_image(struct refresh *r, const char *kind, const uint8_t *mem, int src_fd,
                         uint64_t size, const uint64_t *old, uint64_t *hashes)
{
	char name[16];
	struct stat st;
	int fd, rc;

	slot_file(name, sizeof(name), kind, r->slot);
	fd = openat(r->t->dir_fd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* removed or cut behind our back: the old table no longer says what
	 * the file holds */
	if ((uint64_t)st.st_size < size)
		old = NULL;
	/* unknown old content: start from holes, write only what is not zero */
	if ((old == NULL && ftruncate(fd, 0) < 0) || ftruncate(fd, (off_t)size) < 0) {
		rc = -errno;
		goto out;
	}
	rc = refresh_loop(r, fd, mem, src_fd, size, old, hashes);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0 && rc != -ECANCELED)
		set_err(r->err, r->errlen, "writing %s: %s", name, strerror(-rc));
	return rc;
}

static int refresh_write(struct refresh *r)
{
	char name[16];
	int rc, dfd = r->t->dir_fd;

	/* from here on no crash leaves a meta describing what is rewritten */
	slot_file(name, sizeof(name), "meta", r->slot);
	if ((rc = unlink_name(dfd, name)) < 0 || (rc = sync_dir(dfd)) < 0) {
		set_err(r->err, r->errlen, "removing %s: %s", name, strerror(-rc));
		return rc;
	}
	r->start_ns = mono_ns();
	rc = refresh_image(r, "ram", r->src->ram, r->src->ram_fd, r->t->exp.ram_size, r->old_pages,
	                   r->pages);
	if (rc == 0 && r->disk_size)
		rc = refresh_image(r, "disk", NULL, r->src->disk_fd, r->disk_size, r->old_blocks,
		                   r->blocks);
	if (rc == 0 && r->disk_size == 0) {
		/* a stale disk base would only hold space */
		slot_file(name, sizeof(name), "disk", r->slot);
		unlink_name(dfd, name);
	}
	if (rc == -ECANCELED)
		set_err(r->err, r->errlen, "cancelled");
	return rc;
}

static void refresh_fill_info(const struct refresh *r, struct vft_tmpl_info *in)
{
	const struct vft_tmpl *t = r->t;

	memset(in, 0, sizeof(*in));
	in->slot = r->slot;
	in->seq = r->seq;
	in->ram_size = t->exp.ram_size;
	in->disk_size = r->disk_size;
	in->id = vft_tmpl_content_id(in->ram_size, in->disk_size, r->pages, r->blocks);
	in->config_hash = t->exp.config_hash;
	in->created = (uint64_t)time(NULL);
	in->source_epoch = r->src->epoch;
	in->pages_written = r->written;
	snprintf(in->source, sizeof(in->source), "%s", r->src->source ? r->src->source : "");
	snprintf(in->ram_path, sizeof(in->ram_path), "%s/ram.%u", t->dir, r->slot);
	if (r->disk_size)
		snprintf(in->disk_path, sizeof(in->disk_path), "%s/disk.%u", t->dir, r->slot);
}

/* Writes the meta, then makes the slot the active template. */
static int refresh_commit(struct refresh *r, struct vft_tmpl_info *info)
{
	struct vft_tmpl_info in;
	struct slot *s;
	uint8_t *meta;
	size_t len;
	int rc;

	refresh_fill_info(r, &in);
	meta = meta_encode(&in, r->pages, r->blocks, &len);
	if (meta == NULL) {
		set_err(r->err, r->errlen, "out of memory");
		return -ENOMEM;
	}
	rc = meta_write(r->t->dir_fd, r->slot, meta, len);
	free(meta);
	if (rc < 0) {
		set_err(r->err, r->errlen, "writing meta.%u: %s", r->slot, strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&r->t->lock);
	s = &r->t->slot[r->slot];
	s->info = in;
	s->pages = r->pages;
	s->blocks = r->blocks;
	r->pages = r->blocks = NULL;
	s->valid = true;
	s->disk_ok = r->disk_size > 0;
	recompute_active(r->t);
	pthread_mutex_unlock(&r->t->lock);
	if (info != NULL)
		*info = in;
	return 0;
}

static void refresh_end(struct refresh *r, bool took_slot)
{
	if (took_slot) {
		pthread_mutex_lock(&r->t->lock);
		r->t->refreshing = -1;
		pthread_mutex_unlock(&r->t->lock);
	}
	free(r->old_pages);
	free(r->old_blocks);
	free(r->pages);
	free(r->blocks);
	free(r->buf);
}

int vft_tmpl_refresh(struct vft_tmpl *t, const struct vft_tmpl_source *src,
                     struct vft_tmpl_info *info, char *err, size_t errlen)
{
	struct refresh r = {.t = t, .src = src, .err = err, .errlen = errlen};
	int rc;

	set_err(err, errlen, "%s", "");
	if ((rc = refresh_check_args(t, src, err, errlen)) < 0)
		return rc;
	r.disk_size = src->disk_fd >= 0 ? t->exp.disk_size : 0;
	if ((rc = refresh_begin(&r)) < 0) {
		refresh_end(&r, false);
		return rc;
	}
	rc = refresh_write(&r);
	if (rc == 0)
		rc = refresh_commit(&r, info);
	refresh_end(&r, true);
	return rc;
}

/* ---- scan ------------------------------------------------------------------------------ */

int vft_tmpl_scan_dir(const char *dir, struct vft_tmpl_info out[2], unsigned *n, unsigned *damaged)
{
	const struct expect any = {0, 0, 0};
	char name[DIR_MAX];
	int dfd, rc = 0;

	if (dir == NULL || out == NULL || n == NULL)
		return -EINVAL;
	*n = 0;
	if (damaged != NULL)
		*damaged = 0;
	if ((rc = copy_dir_name(name, dir)) < 0)
		return rc;
	dfd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	for (unsigned i = 0; i < 2 && rc == 0; i++) {
		struct slot s;
		int lr = load_slot(dfd, name, i, &any, &s, NULL, 0);

		if (lr == 0) {
			out[(*n)++] = s.info;
			slot_free_tables(&s);
		} else if (lr == 1 && damaged != NULL)
			(*damaged)++;
		else if (lr < 0 && lr != -ENOENT)
			rc = lr;
	}
	close(dfd);
	return rc;
}
