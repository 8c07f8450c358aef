/*
 * vft_tmpl: the two-slot template directory of one VM. Every check compares
 * the template (its info, what a copy gives back, its files) with a source
 * image kept in memory, and the content id with one computed here from
 * hashes made independently of the module.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <xxhash.h>

#include "check_util.h"
#include "vft_store.h"
#include "vft_tmpl.h"

#define PAGE 4096u
#define NPAGES 64u
#define RAM ((uint64_t)NPAGES * PAGE)
#define NBLOCKS 11u
#define DISK (10u * 4096u + 512u) /* the last block is short */
#define CFG 0x1234abcd5678ef00ull
#define META_LEN(np, nb) (96u + 8u * ((np) + (nb)) + 8u)

/* What a template made from it must hold. */
struct image {
	uint8_t *ram;
	uint64_t ram_size;
	uint8_t disk[DISK];
	int disk_fd; /* the disk as a file: the source of a refresh */
};

/* Every 8 bytes of a page tell which version (tag) and page they are. */
static void fill(uint8_t *p, size_t len, uint64_t tag, uint64_t idx)
{
	for (size_t i = 0; i < len / 8; i++) {
		uint64_t v = (tag << 40) ^ (idx << 20) ^ i ^ 0xa5a5000000000000ull;

		memcpy(p + i * 8, &v, 8);
	}
}

static void set_page(struct image *img, uint64_t pfn, uint64_t tag)
{
	if (tag == 0)
		memset(img->ram + pfn * PAGE, 0, PAGE);
	else
		fill(img->ram + pfn * PAGE, PAGE, tag, pfn);
}

static size_t block_len(uint64_t b)
{
	return b == NBLOCKS - 1 ? DISK - b * PAGE : PAGE;
}

static void set_block(struct image *img, uint64_t b, uint64_t tag)
{
	if (tag == 0)
		memset(img->disk + b * PAGE, 0, block_len(b));
	else
		fill(img->disk + b * PAGE, block_len(b), tag, b);
}

static void sync_disk(struct image *img)
{
	ck_assert_int_eq(pwrite(img->disk_fd, img->disk, DISK, 0), (ssize_t)DISK);
}

/* npages pages, pages 10 and 20 zero; disk blocks 1, 4, 5 and 7 zero. */
static struct image *image_new(const char *dir, uint64_t npages)
{
	struct image *img = calloc(1, sizeof(*img));
	char path[512];

	ck_assert_ptr_nonnull(img);
	img->ram_size = npages * PAGE;
	img->ram = calloc(1, img->ram_size);
	ck_assert_ptr_nonnull(img->ram);
	for (uint64_t i = 0; i < npages; i++)
		set_page(img, i, i == 10 || i == 20 ? 0 : 1);
	for (uint64_t b = 0; b < NBLOCKS; b++)
		set_block(img, b, b == 1 || b == 4 || b == 5 || b == 7 ? 0 : 1);
	snprintf(path, sizeof(path), "%s/source.disk", dir);
	img->disk_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(img->disk_fd, 0);
	sync_disk(img);
	return img;
}

static struct image *image_dup(const struct image *img)
{
	struct image *c = malloc(sizeof(*c));

	ck_assert_ptr_nonnull(c);
	memcpy(c, img, sizeof(*c));
	c->ram = malloc(img->ram_size);
	ck_assert_ptr_nonnull(c->ram);
	memcpy(c->ram, img->ram, img->ram_size);
	c->disk_fd = -1;
	return c;
}

static void image_free(struct image *img)
{
	if (img->disk_fd >= 0)
		close(img->disk_fd);
	free(img->ram);
	free(img);
}

static uint64_t nonzero_units(const struct image *img)
{
	uint64_t n = 0;
	static const uint8_t zero[PAGE];

	for (uint64_t i = 0; i < img->ram_size / PAGE; i++)
		n += memcmp(img->ram + i * PAGE, zero, PAGE) != 0;
	for (uint64_t b = 0; b < NBLOCKS; b++)
		n += memcmp(img->disk + b * PAGE, zero, block_len(b)) != 0;
	return n;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* The content id from hashes made here: once through the module's
 * vft_tmpl_content_id, once as the header defines it, which must agree. */
static uint64_t expected_id(const struct image *img, bool with_disk)
{
	uint64_t np = img->ram_size / PAGE, nb = with_disk ? NBLOCKS : 0;
	uint64_t *ph = malloc(np * 8), bh[NBLOCKS], id;
	uint8_t *flat = malloc(16 + 8 * (np + nb));

	ck_assert_ptr_nonnull(ph);
	ck_assert_ptr_nonnull(flat);
	put64(flat, img->ram_size);
	put64(flat + 8, with_disk ? DISK : 0);
	for (uint64_t i = 0; i < np; i++) {
		ph[i] = XXH3_64bits(img->ram + i * PAGE, PAGE);
		ck_assert_uint_eq(vft_tmpl_hash(img->ram + i * PAGE, PAGE), ph[i]);
		put64(flat + 16 + 8 * i, ph[i]);
	}
	for (uint64_t b = 0; b < nb; b++) {
		bh[b] = XXH3_64bits(img->disk + b * PAGE, block_len(b));
		put64(flat + 16 + 8 * (np + b), bh[b]);
	}
	id = vft_tmpl_content_id(img->ram_size, with_disk ? DISK : 0, ph, with_disk ? bh : NULL);
	ck_assert_uint_eq(id, XXH3_64bits(flat, 16 + 8 * (np + nb)));
	free(ph);
	free(flat);
	return id;
}

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	path_in(path, sizeof(path), dir, name);
	return stat(path, &st) == 0;
}

static uint8_t *read_all(const char *dir, const char *name, size_t *len)
{
	char path[512];
	struct stat st;
	uint8_t *buf;
	int fd;

	path_in(path, sizeof(path), dir, name);
	fd = open(path, O_RDONLY);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	buf = malloc(*len + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, *len, 0), (ssize_t)*len);
	close(fd);
	return buf;
}

static void write_all(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[512];
	int fd;

	path_in(path, sizeof(path), dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void flip_byte(const char *dir, const char *name, off_t off)
{
	char path[512];
	uint8_t b;
	int fd;

	path_in(path, sizeof(path), dir, name);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static struct vft_tmpl *open_ok(const char *dir, uint64_t ram, uint64_t disk, uint64_t cfg,
                                char *why, size_t whylen)
{
	struct vft_tmpl *t = NULL;
	char err[256] = "x", w[512];
	int rc = vft_tmpl_open(&t, dir, ram, disk, cfg, why ? why : w, why ? whylen : sizeof(w),
	                       err, sizeof(err));

	ck_assert_msg(rc == 0, "open %s: %d %s", dir, rc, err);
	ck_assert_str_eq(err, "");
	ck_assert_ptr_nonnull(t);
	return t;
}

static struct vft_tmpl_source source_of(const struct image *img, bool with_disk)
{
	struct vft_tmpl_source src = {.ram = img->ram,
	                              .ram_fd = -1,
	                              .disk_fd = with_disk ? img->disk_fd : -1,
	                              .epoch = 7,
	                              .source = "primary"};
	return src;
}

static struct vft_tmpl_info refresh_ok(struct vft_tmpl *t, const struct image *img)
{
	struct vft_tmpl_source src = source_of(img, true);
	struct vft_tmpl_info info;
	char err[256] = "x";
	int rc = vft_tmpl_refresh(t, &src, &info, err, sizeof(err));

	ck_assert_msg(rc == 0, "refresh: %d %s", rc, err);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(info.id, expected_id(img, true));
	return info;
}

static int refresh_rc(struct vft_tmpl *t, const struct vft_tmpl_source *src, char *err,
                      size_t errlen)
{
	struct vft_tmpl_info info;

	return vft_tmpl_refresh(t, src, &info, err, errlen);
}

/* Copies the active template (pinned) into fresh files and compares them
 * with img; the RAM destination starts as garbage, as the header allows. */
static void check_copy_pinned(struct vft_tmpl *t, const char *dir, const struct vft_tmpl_pin *pin,
                              const struct image *img)
{
	char path[512], err[256] = "x";
	uint8_t *got, junk[PAGE];
	size_t len;
	int fd, dfd;

	memset(junk, 0xee, sizeof(junk));
	path_in(path, sizeof(path), dir, "dst.ram");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	for (uint64_t off = 0; off < img->ram_size; off += PAGE)
		ck_assert_int_eq(pwrite(fd, junk, PAGE, (off_t)off), (ssize_t)PAGE);
	path_in(path, sizeof(path), dir, "dst.disk");
	dfd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(ftruncate(dfd, DISK), 0);
	ck_assert_msg(vft_tmpl_copy(t, pin, fd, dfd, err, sizeof(err)) == 0, "copy: %s", err);
	ck_assert_str_eq(err, "");
	close(fd);
	close(dfd);
	got = read_all(dir, "dst.ram", &len);
	ck_assert_uint_eq(len, img->ram_size);
	for (uint64_t i = 0; i < img->ram_size / PAGE; i++)
		ck_assert_msg(memcmp(got + i * PAGE, img->ram + i * PAGE, PAGE) == 0,
		              "page %llu differs", (unsigned long long)i);
	free(got);
	got = read_all(dir, "dst.disk", &len);
	ck_assert_uint_eq(len, DISK);
	ck_assert_msg(pin->n_blocks == 0 || memcmp(got, img->disk, DISK) == 0, "disk differs");
	free(got);
	unlink(path);
	path_in(path, sizeof(path), dir, "dst.ram");
	unlink(path);
}

static void check_copy(struct vft_tmpl *t, const char *dir, const struct image *img)
{
	struct vft_tmpl_pin pin;

	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_uint_eq(pin.n_pages, img->ram_size / PAGE);
	ck_assert_uint_eq(pin.n_blocks, NBLOCKS);
	check_copy_pinned(t, dir, &pin, img);
	vft_tmpl_unpin(t, &pin);
	ck_assert_ptr_null(pin.page_hashes);
}

/* Checks the files of a slot themselves, not through a copy. */
static void check_slot_files(const char *dir, unsigned slot, const struct image *img)
{
	char name[16];
	uint8_t *got;
	size_t len;

	snprintf(name, sizeof(name), "ram.%u", slot);
	got = read_all(dir, name, &len);
	ck_assert_uint_eq(len, img->ram_size);
	ck_assert(memcmp(got, img->ram, len) == 0);
	free(got);
	snprintf(name, sizeof(name), "disk.%u", slot);
	got = read_all(dir, name, &len);
	ck_assert_uint_eq(len, DISK);
	ck_assert(memcmp(got, img->disk, DISK) == 0);
	free(got);
}

static void check_active(struct vft_tmpl *t, unsigned slot, uint64_t seq)
{
	struct vft_tmpl_info info;

	ck_assert_int_eq(vft_tmpl_info(t, &info), 0);
	ck_assert_uint_eq(info.slot, slot);
	ck_assert_uint_eq(info.seq, seq);
}

/* ---- invalid inputs -------------------------------------------------------------------- */

START_TEST(test_bad_args)
{
	char *dir = make_temp_dir();
	char path[512], err[256], why[256];
	struct vft_tmpl *t = (struct vft_tmpl *)1;
	struct vft_tmpl_info info[2];
	struct vft_tmpl_pin pin;
	unsigned n, damaged;
	struct stat st;

	ck_assert_int_eq(vft_tmpl_open(NULL, dir, RAM, DISK, CFG, NULL, 0, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_int_eq(vft_tmpl_open(&t, "", RAM, DISK, CFG, NULL, 0, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(t);
	ck_assert_str_ne(err, "");
	ck_assert_int_eq(vft_tmpl_open(&t, dir, RAM + 1, DISK, CFG, NULL, 0, NULL, 0), -EINVAL);

	/* a template directory that is a file, or under one */
	path_in(path, sizeof(path), dir, "file");
	write_file(path, "x", 0600);
	err[0] = '\0';
	ck_assert_int_eq(
	        vft_tmpl_open(&t, path, RAM, DISK, CFG, why, sizeof(why), err, sizeof(err)),
	        -ENOTDIR);
	ck_assert_ptr_null(t);
	ck_assert_ptr_nonnull(strstr(err, "file"));
	path_in(path, sizeof(path), dir, "file/t");
	ck_assert_int_eq(vft_tmpl_open(&t, path, RAM, DISK, CFG, NULL, 0, err, sizeof(err)),
	                 -ENOTDIR);
	ck_assert_int_eq(vft_tmpl_scan_dir(path, info, &n, &damaged), -ENOTDIR);
	path_in(path, sizeof(path), dir, "missing");
	ck_assert_int_eq(vft_tmpl_scan_dir(path, info, &n, &damaged), -ENOENT);
	ck_assert_uint_eq(n, 0);
	ck_assert(!exists(dir, "missing"));

	/* mkdir -p, 0700, empty: nothing to pin, verify or invalidate */
	path_in(path, sizeof(path), dir, "a/b/");
	t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
	ck_assert_str_eq(why, "");
	path_in(path, sizeof(path), dir, "a/b");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(vft_tmpl_info(t, info), -ENOENT);
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), -ENOENT);
	ck_assert_ptr_null(pin.page_hashes);
	ck_assert_int_eq(vft_tmpl_verify(t, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(vft_tmpl_invalidate(t, 2), -EINVAL);
	ck_assert_int_eq(vft_tmpl_copy(t, &pin, 1, -1, err, sizeof(err)), -EINVAL);

	/* refresh without a source, with a short source file, a disk without size */
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl_source src = source_of(img, true);

	src.ram = NULL;
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -EINVAL);
	src.ram_fd = img->disk_fd; /* DISK bytes: less than RAM */
	err[0] = '\0';
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "bytes"));
	ck_assert_int_eq(vft_tmpl_info(t, info), -ENOENT);
	vft_tmpl_close(t);
	t = open_ok(path, RAM, 0, CFG, NULL, 0);
	src = source_of(img, true);
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -EINVAL);
	vft_tmpl_close(t);
	/* opened by a tool (no machine): read-only */
	t = open_ok(path, 0, 0, 0, NULL, 0);
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_tmpl_scan_dir(path, info, &n, &damaged), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(damaged, 0);
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

struct damage {
	const char *what;
	off_t len;       /* truncate to this, 0: keep */
	off_t flip;      /* xor a byte here, -1: none */
	bool resum;      /* recompute the checksum after the flip */
	const char *why; /* expected in the reason */
};

static void damage_meta(const char *dir, const uint8_t *meta, size_t len, const struct damage *d)
{
	uint8_t *m = malloc(len);

	ck_assert_ptr_nonnull(m);
	memcpy(m, meta, len);
	if (d->flip >= 0)
		m[d->flip] ^= 0x01;
	if (d->resum)
		put64(m + len - 8, XXH3_64bits(m, len - 8));
	write_all(dir, "meta.0", m, d->len ? (size_t)d->len : len);
	free(m);
}

START_TEST(test_damaged_metas)
{
	static const struct damage cases[] = {
	        {"truncated", META_LEN(NPAGES, NBLOCKS) - 100, -1, false, "bytes"},
	        {"page hash flipped", 0, 96 + 8 * 3 + 2, false, "checksum mismatch"},
	        {"block hash flipped", 0, 96 + 8 * (NPAGES + 2), false, "checksum mismatch"},
	        {"magic", 0, 3, false, "bad magic"},
	        {"version", 0, 8, false, "version 0, not 1"},
	        {"hash changed, checksum redone", 0, 96 + 8 * 5, true, "content id mismatch"},
	        {"ram_size changed, checksum redone", 0, 32 + 2, true, "bytes"},
	        {"tiny", 50, -1, false, "too short"},
	};
	char *dir = make_temp_dir(), why[512], path[512];
	struct vft_tmpl_info info, scan[2];
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl *t;
	struct vft_tmpl_pin pin;
	unsigned n, damaged;
	uint8_t *meta;
	size_t len;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	info = refresh_ok(t, img);
	vft_tmpl_close(t);

	/* the format of the header */
	meta = read_all(path, "meta.0", &len);
	ck_assert_uint_eq(len, META_LEN(NPAGES, NBLOCKS));
	ck_assert(memcmp(meta, "VFTTMPL1", 8) == 0);
	ck_assert_uint_eq(get64(meta + 8), 1);
	ck_assert_uint_eq(get64(meta + 16), 1);
	ck_assert_uint_eq(get64(meta + 24), info.id);
	ck_assert_uint_eq(get64(meta + 32), RAM);
	ck_assert_uint_eq(get64(meta + 40), DISK);
	ck_assert_uint_eq(get64(meta + 48), CFG);
	ck_assert_uint_eq(get64(meta + 64), 7);
	ck_assert_str_eq((const char *)meta + 80, "primary");
	ck_assert_uint_eq(get64(meta + 96), XXH3_64bits(img->ram, PAGE));
	ck_assert_uint_eq(get64(meta + len - 8), XXH3_64bits(meta, len - 8));

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		damage_meta(path, meta, len, &cases[i]);
		t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
		ck_assert_msg(strncmp(why, "meta.0: ", 8) == 0 && strstr(why, cases[i].why),
		              "%s: why '%s'", cases[i].what, why);
		ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
		vft_tmpl_close(t);
		ck_assert_int_eq(vft_tmpl_scan_dir(path, scan, &n, &damaged), 0);
		ck_assert_uint_eq(n, 0);
		ck_assert_uint_eq(damaged, 1);
	}

	/* sound, but made for another machine */
	write_all(path, "meta.0", meta, len);
	t = open_ok(path, RAM, DISK, CFG + 1, why, sizeof(why));
	ck_assert_msg(strstr(why, "meta.0: made for machine 1234abcd5678ef00"), "%s", why);
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
	vft_tmpl_close(t);
	t = open_ok(path, 2 * RAM, DISK, CFG, why, sizeof(why));
	ck_assert_msg(strstr(why, "meta.0: made for 262144 bytes of RAM"), "%s", why);
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
	vft_tmpl_close(t);
	/* any machine for a tool, and for a scan */
	t = open_ok(path, 0, 0, 0, why, sizeof(why));
	ck_assert_str_eq(why, "");
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_uint_eq(pin.n_blocks, NBLOCKS);
	vft_tmpl_unpin(t, &pin);
	ck_assert_int_eq(vft_tmpl_verify(t, NULL, 0), 0);
	vft_tmpl_close(t);
	ck_assert_int_eq(vft_tmpl_scan_dir(path, scan, &n, &damaged), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(damaged, 0);
	ck_assert_uint_eq(scan[0].id, expected_id(img, true));

	/* a sound meta without its RAM image */
	ck_assert_int_eq(truncate(scan[0].ram_path, RAM - 1), 0);
	t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
	ck_assert_msg(strstr(why, "meta.0: ram.0 missing or shorter"), "%s", why);
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
	vft_tmpl_close(t);

	free(meta);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- refresh, copy, reopen ------------------------------------------------------------- */

START_TEST(test_refresh_copy)
{
	char *dir = make_temp_dir(), path[512], why[256], want[600];
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl_info info, again, scan[2];
	uint64_t before = (uint64_t)time(NULL);
	unsigned n, damaged;
	struct vft_tmpl *t;
	struct stat st;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 0);
	ck_assert_uint_eq(info.seq, 1);
	ck_assert_uint_eq(info.ram_size, RAM);
	ck_assert_uint_eq(info.disk_size, DISK);
	ck_assert_uint_eq(info.config_hash, CFG);
	ck_assert_uint_eq(info.source_epoch, 7);
	ck_assert_str_eq(info.source, "primary");
	ck_assert(info.created >= before && info.created <= (uint64_t)time(NULL));
	/* an empty slot: every page and block but the zero ones (holes) */
	ck_assert_uint_eq(info.pages_written, nonzero_units(img));
	ck_assert_uint_eq(info.pages_written, NPAGES - 2 + NBLOCKS - 4);
	snprintf(want, sizeof(want), "%s/ram.0", path);
	ck_assert_str_eq(info.ram_path, want);
	snprintf(want, sizeof(want), "%s/disk.0", path);
	ck_assert_str_eq(info.disk_path, want);
	ck_assert_int_eq(vft_tmpl_info(t, &again), 0);
	ck_assert_mem_eq(&again, &info, sizeof(info));
	check_copy(t, dir, img);
	check_slot_files(path, 0, img);
	ck_assert_int_eq(vft_tmpl_verify(t, NULL, 0), 0);
	ck_assert_int_eq(stat(info.disk_path, &st), 0);
	ck_assert_int_lt(st.st_blocks * 512, DISK);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	vft_tmpl_close(t);

	t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
	ck_assert_str_eq(why, "");
	ck_assert_int_eq(vft_tmpl_info(t, &again), 0);
	ck_assert_uint_eq(again.id, info.id);
	ck_assert_uint_eq(again.seq, 1);
	ck_assert_uint_eq(again.created, info.created);
	ck_assert_uint_eq(again.pages_written, info.pages_written);
	ck_assert_str_eq(again.disk_path, info.disk_path);
	check_copy(t, dir, img);
	vft_tmpl_close(t);

	ck_assert_int_eq(vft_tmpl_scan_dir(path, scan, &n, &damaged), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(damaged, 0);
	ck_assert_uint_eq(scan[0].id, info.id);
	ck_assert_str_eq(scan[0].ram_path, info.ram_path);
	ck_assert_str_eq(scan[0].disk_path, info.disk_path);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_refresh_slots)
{
	char *dir = make_temp_dir(), path[512];
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl_info info, scan[2];
	struct vft_tmpl *t;
	unsigned n, damaged;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	ck_assert_uint_eq(refresh_ok(t, img).slot, 0);

	/* the other slot, empty: everything written */
	set_page(img, 3, 2);
	set_page(img, 9, 2);
	set_page(img, 40, 2);
	set_block(img, 2, 2);
	sync_disk(img);
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 1);
	ck_assert_uint_eq(info.seq, 2);
	ck_assert_uint_eq(info.pages_written, nonzero_units(img));
	check_copy(t, dir, img);

	/* back to slot 0: only what differs from what slot 0 holds (the first
	 * image) is written. Page 40 is back to its first content. */
	set_page(img, 9, 3);
	set_page(img, 30, 3);
	set_page(img, 10, 3); /* was zero */
	set_page(img, 40, 1);
	set_block(img, 0, 0);  /* becomes a hole */
	set_block(img, 4, 3);  /* was a hole */
	set_block(img, 10, 3); /* the short one */
	sync_disk(img);
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 0);
	ck_assert_uint_eq(info.seq, 3);
	ck_assert_uint_eq(info.pages_written, 4 + 4); /* pages 3 9 10 30, blocks 0 2 4 10 */
	check_copy(t, dir, img);
	check_slot_files(path, 0, img);
	ck_assert_int_eq(vft_tmpl_verify(t, NULL, 0), 0);

	/* nothing changed: nothing written (slot 1 holds the second image) */
	struct image *same = image_dup(img);

	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 1);
	ck_assert_uint_eq(info.seq, 4);
	ck_assert_uint_eq(info.pages_written, 4 + 3); /* pages 9 10 30 40, blocks 0 4 10 */
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 0);
	ck_assert_uint_eq(info.pages_written, 0);
	check_copy(t, dir, same);
	image_free(same);

	/* ram.1 cut behind the template's back: its old table is not trusted */
	char ram1[600];

	snprintf(ram1, sizeof(ram1), "%s/ram.1", path);
	ck_assert_int_eq(truncate(ram1, 0), 0);
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 1);
	ck_assert_uint_eq(info.pages_written, NPAGES - 1); /* page 20 is zero, the disk as it was */
	check_slot_files(path, 1, img);
	vft_tmpl_close(t);

	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	check_active(t, 1, 6);
	vft_tmpl_close(t);
	ck_assert_int_eq(vft_tmpl_scan_dir(path, scan, &n, &damaged), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(scan[0].seq + scan[1].seq, 11);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- damage ---------------------------------------------------------------------------- */

START_TEST(test_corrupt_invalidate)
{
	char *dir = make_temp_dir(), path[512], err[256], why[256];
	struct image *img = image_new(dir, NPAGES), *first;
	struct vft_tmpl_pin pin;
	struct vft_tmpl_info info;
	struct vft_tmpl *t;
	int fd;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	refresh_ok(t, img);
	first = image_dup(img);
	set_page(img, 1, 2);
	sync_disk(img);
	refresh_ok(t, img);

	flip_byte(path, "ram.1", 5 * PAGE + 100);
	err[0] = '\0';
	ck_assert_int_eq(vft_tmpl_verify(t, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "ram.1: page 5 ") && strstr(err, "1 bad pages, 0 bad blocks"),
	              "%s", err);
	flip_byte(path, "disk.1", 3 * PAGE + 7);
	flip_byte(path, "ram.1", 60 * PAGE);
	ck_assert_int_eq(vft_tmpl_verify(t, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "ram.1: page 5 ") && strstr(err, "2 bad pages, 1 bad blocks"),
	              "%s", err);
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	path_in(path, sizeof(path), dir, "dst");
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	err[0] = '\0';
	ck_assert_int_eq(vft_tmpl_copy(t, &pin, fd, -1, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "page 5 "), "%s", err);
	close(fd);
	vft_tmpl_unpin(t, &pin);

	/* the other slot takes over, then nothing */
	ck_assert_int_eq(vft_tmpl_invalidate(t, 1), 0);
	path_in(path, sizeof(path), dir, "t");
	ck_assert(!exists(path, "meta.1"));
	check_active(t, 0, 1);
	ck_assert_int_eq(vft_tmpl_verify(t, NULL, 0), 0);
	check_copy(t, dir, first);
	flip_byte(path, "disk.0", 9 * PAGE);
	ck_assert_int_eq(vft_tmpl_verify(t, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "disk.0: block 9 ") && strstr(err, "0 bad pages, 1 bad blocks"),
	              "%s", err);
	ck_assert_int_eq(vft_tmpl_invalidate(t, 0), 0);
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), -ENOENT);
	ck_assert_int_eq(vft_tmpl_invalidate(t, 0), 0);
	vft_tmpl_close(t);
	t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
	ck_assert_str_eq(why, "");
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);

	/* a damaged slot's old tables are not trusted: everything rewritten */
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 0);
	ck_assert_uint_eq(info.seq, 1);
	ck_assert_uint_eq(info.pages_written, nonzero_units(img));
	check_copy(t, dir, img);
	vft_tmpl_close(t);
	image_free(first);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- pins ------------------------------------------------------------------------------ */

START_TEST(test_pin_blocks_refresh)
{
	char *dir = make_temp_dir(), path[512], err[256];
	struct image *img = image_new(dir, NPAGES), *first;
	struct vft_tmpl_pin pin, pin2;
	struct vft_tmpl *t;
	uint64_t h5;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	refresh_ok(t, img);
	first = image_dup(img);
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_uint_eq(pin.info.slot, 0);
	h5 = pin.page_hashes[5];
	ck_assert_uint_eq(h5, XXH3_64bits(img->ram + 5 * PAGE, PAGE));

	/* slot 1 is free: fine; then slot 0 would be next, and it is pinned */
	set_page(img, 5, 2);
	refresh_ok(t, img);
	check_active(t, 1, 2);
	set_page(img, 6, 2);
	err[0] = '\0';
	struct vft_tmpl_source src = source_of(img, true);

	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err, "pinned"));
	check_active(t, 1, 2);
	ck_assert_int_eq(vft_tmpl_remove_all(t), -EBUSY);
	/* the pin still holds the first template, tables and files */
	ck_assert_uint_eq(pin.page_hashes[5], h5);
	check_copy_pinned(t, dir, &pin, first);
	vft_tmpl_unpin(t, &pin);
	vft_tmpl_unpin(t, &pin); /* twice: harmless */

	refresh_ok(t, img);
	check_active(t, 0, 3);
	check_copy(t, dir, img);

	/* invalidated while pinned: the pin's tables stay until unpinned */
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_int_eq(vft_tmpl_pin(t, &pin2), 0);
	ck_assert_int_eq(vft_tmpl_invalidate(t, 0), 0);
	check_active(t, 1, 2);
	check_copy_pinned(t, dir, &pin, img);
	vft_tmpl_unpin(t, &pin);
	ck_assert_uint_eq(pin2.page_hashes[6], XXH3_64bits(img->ram + 6 * PAGE, PAGE));
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -EBUSY);
	vft_tmpl_unpin(t, &pin2);
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), 0);
	check_active(t, 0, 3);
	check_copy(t, dir, img);
	vft_tmpl_close(t);
	image_free(first);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- cancel and crashes ---------------------------------------------------------------- */

struct canceller {
	volatile bool flag;
	unsigned delay_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *c = arg;
	struct timespec ts = {0, (long)c->delay_ms * 1000000L};

	nanosleep(&ts, NULL);
	c->flag = true;
	return NULL;
}

START_TEST(test_cancel_and_crash)
{
	char *dir = make_temp_dir(), path[512], err[256], why[256];
	struct image *img = image_new(dir, NPAGES);
	struct canceller c = {false, 100};
	struct vft_tmpl_info scan[2], info;
	struct vft_tmpl_source src;
	struct vft_tmpl *t;
	unsigned n, damaged;
	pthread_t th;
	uint64_t t0;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	refresh_ok(t, img);
	set_page(img, 2, 2);
	refresh_ok(t, img);

	/* cancelled before it starts: nothing touched */
	c.flag = true;
	src = source_of(img, true);
	src.cancel = &c.flag;
	err[0] = '\0';
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -ECANCELED);
	ck_assert_str_eq(err, "cancelled");
	check_active(t, 1, 2);
	ck_assert_int_eq(vft_tmpl_scan_dir(path, scan, &n, &damaged), 0);
	ck_assert_uint_eq(n, 2);

	/* cancelled while throttled, half-way: slot 0 is gone, slot 1 stays */
	c.flag = false;
	src.rate_bps = 64 * 1024;
	set_page(img, 3, 2);
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_later, &c), 0);
	t0 = (uint64_t)time(NULL);
	ck_assert_int_eq(refresh_rc(t, &src, err, sizeof(err)), -ECANCELED);
	ck_assert_uint_le((uint64_t)time(NULL) - t0, 2);
	pthread_join(th, NULL);
	check_active(t, 1, 2);
	ck_assert(!exists(path, "meta.0"));
	ck_assert_int_eq(vft_tmpl_verify(t, NULL, 0), 0);
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 0);
	ck_assert_uint_eq(info.seq, 3);
	ck_assert_uint_eq(info.pages_written, nonzero_units(img));
	check_copy(t, dir, img);
	vft_tmpl_close(t);

	/* a crash while slot 1 was rewritten: its meta gone, its RAM half new,
	 * a meta.1.tmp never renamed */
	path_in(why, sizeof(why), path, "meta.1");
	ck_assert_int_eq(unlink(why), 0);
	flip_byte(path, "ram.1", 0);
	write_all(path, "meta.1.tmp", (const uint8_t *)"VFTTMPL1 half", 13);
	t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
	ck_assert_str_eq(why, "");
	ck_assert(!exists(path, "meta.1.tmp"));
	check_active(t, 0, 3);
	check_copy(t, dir, img);
	set_page(img, 4, 2);
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 1);
	ck_assert_uint_eq(info.seq, 4);
	ck_assert_uint_eq(info.pages_written, nonzero_units(img));
	check_copy(t, dir, img);
	check_slot_files(path, 1, img);
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- sources --------------------------------------------------------------------------- */

START_TEST(test_refresh_from_fd)
{
	char *dir = make_temp_dir(), path[512], err[256];
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl_info info, mem_info;
	struct vft_tmpl_source src;
	struct vft_tmpl *t;
	int fd;

	write_all(dir, "source.ram", img->ram, RAM);
	path_in(path, sizeof(path), dir, "source.ram");
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	src = source_of(img, true);
	src.ram = NULL;
	src.ram_fd = fd;
	src.source = "backup-with-a-long-name";
	src.epoch = 99;
	ck_assert_msg(vft_tmpl_refresh(t, &src, &info, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.id, expected_id(img, true));
	ck_assert_str_eq(info.source, "backup-with-a-l");
	ck_assert_uint_eq(info.source_epoch, 99);
	check_copy(t, dir, img);
	vft_tmpl_close(t);
	close(fd);

	path_in(path, sizeof(path), dir, "t2");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	mem_info = refresh_ok(t, img);
	ck_assert_uint_eq(mem_info.id, info.id);
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

struct scribbler {
	volatile uint8_t *ram;
	uint64_t size;
	atomic_bool stop;
};

static void *scribble(void *arg)
{
	struct scribbler *s = arg;
	uint64_t x = 88172645463325252ull;

	while (!atomic_load(&s->stop)) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s->ram[x % s->size] = (uint8_t)x;
	}
	return NULL;
}

/* The guest keeps writing while its RAM is copied: the template still
 * matches its own tables, as it holds exactly what was hashed. */
START_TEST(test_source_changing)
{
	char *dir = make_temp_dir(), path[512], err[256];
	struct image *img = image_new(dir, 1024);
	struct scribbler s = {img->ram, img->ram_size, false};
	struct vft_tmpl_source src = source_of(img, true);
	struct vft_tmpl_info info;
	struct vft_tmpl *t;
	pthread_t th;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, img->ram_size, DISK, CFG, NULL, 0);
	src.rate_bps = 40u << 20;
	ck_assert_int_eq(pthread_create(&th, NULL, scribble, &s), 0);
	ck_assert_msg(vft_tmpl_refresh(t, &src, &info, err, sizeof(err)) == 0, "%s", err);
	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	ck_assert_msg(vft_tmpl_verify(t, err, sizeof(err)) == 0, "%s", err);
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_rate_limit)
{
	char *dir = make_temp_dir(), path[512], err[256];
	struct image *img = image_new(dir, 1024); /* 4 MiB */
	struct vft_tmpl_source src = source_of(img, false);
	struct vft_tmpl_info info;
	struct timespec a, b;
	struct vft_tmpl *t;
	double s;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, img->ram_size, 0, CFG, NULL, 0);
	src.rate_bps = 8u << 20;
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_msg(vft_tmpl_refresh(t, &src, &info, err, sizeof(err)) == 0, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	ck_assert_msg(s >= 0.35, "4 MiB at 8 MiB/s in %.3f s", s);
	ck_assert_uint_eq(info.id, expected_id(img, false));
	ck_assert_uint_eq(info.disk_size, 0);
	ck_assert_str_eq(info.disk_path, "");
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- machines -------------------------------------------------------------------------- */

static void check_no_disk(const char *path, uint64_t disk, uint64_t cfg, const struct image *img)
{
	struct vft_tmpl *t = open_ok(path, cfg ? RAM : 0, disk, cfg, NULL, 0);
	struct vft_tmpl_pin pin;

	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_uint_eq(pin.n_blocks, 0);
	ck_assert_ptr_null(pin.block_hashes);
	ck_assert_str_eq(pin.info.disk_path, "");
	ck_assert_uint_eq(pin.info.disk_size, DISK);
	check_copy_pinned(t, path, &pin, img);
	vft_tmpl_unpin(t, &pin);
	ck_assert_int_eq(vft_tmpl_verify(t, NULL, 0), 0);
	vft_tmpl_close(t);
}

START_TEST(test_disk_mismatch)
{
	char *dir = make_temp_dir(), path[512], name[16];
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl_info info;
	struct vft_tmpl *t;
	struct vft_tmpl_pin pin;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	refresh_ok(t, img);
	vft_tmpl_close(t);
	check_no_disk(path, DISK + 4096, CFG, img);
	check_no_disk(path, 0, CFG, img);
	check_no_disk(path, DISK - 1, 0, img); /* a tool that names a size */

	/* a template without disk base: made with no disk source */
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	struct vft_tmpl_source src = source_of(img, false);
	char err[256];

	ck_assert_msg(vft_tmpl_refresh(t, &src, &info, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(info.disk_size, 0);
	ck_assert_uint_eq(info.id, expected_id(img, false));
	snprintf(name, sizeof(name), "disk.%u", info.slot);
	ck_assert(!exists(path, name));
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_uint_eq(pin.n_blocks, 0);
	vft_tmpl_unpin(t, &pin);
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- a sync built on a template ends where a full sync ends ------------------------- */

/* One full epoch into a store of its own: every page of guest (full), or,
 * on a template, a copy of the template and only the pages whose hash
 * differs from it (what the primary sends). The committed RAM file. */
static uint8_t *sync_into(const char *dir, const struct image *guest, struct vft_tmpl *t,
                          bool sink_path, uint64_t *sent)
{
	struct vft_store *st = NULL;
	struct vft_store_info info;
	struct vft_tmpl_pin pin = {0};
	char err[256], sdir[512];
	uint8_t *ram;
	size_t len;
	int ram_fd, disk_fd;

	snprintf(sdir, sizeof(sdir), "%s/store-%s", dir,
	         t ? (sink_path ? "sink" : "tmpl") : "full");
	ck_assert_int_eq(vft_store_open(&st, sdir, NULL, guest->ram_size, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_store_begin(st, 9, 1, true, 0), 0);
	if (t != NULL) {
		ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
		ck_assert_int_eq(vft_store_stage_fds(st, &ram_fd, &disk_fd), 0);
		ck_assert_msg(vft_tmpl_copy(t, &pin, ram_fd, -1, err, sizeof(err)) == 0, "%s", err);
	}
	*sent = 0;
	for (uint64_t p = 0; p < guest->ram_size / PAGE; p++) {
		const uint8_t *page = guest->ram + p * PAGE;

		if (t != NULL && vft_tmpl_hash(page, PAGE) == pin.page_hashes[p])
			continue;
		ck_assert_int_eq(vft_store_put_pages(st, 1, &p, page), 0);
		(*sent)++;
	}
	if (t != NULL)
		vft_tmpl_unpin(t, &pin);
	ck_assert_int_eq(vft_store_put_devstate(st, "d", 1), 0);
	ck_assert_int_eq(vft_store_commit(st), 0);
	vft_store_info(st, &info);
	ram = read_all(sdir, strrchr(info.ram_path, '/') + 1, &len);
	ck_assert_uint_eq(len, guest->ram_size);
	vft_store_close(st);
	return ram;
}

START_TEST(test_template_sync_equals_full)
{
	char *dir = make_temp_dir();
	struct image *guest = image_new(dir, NPAGES), *old = image_dup(guest);
	struct vft_tmpl *t = open_ok(dir, RAM, DISK, CFG, NULL, 0);
	uint8_t *full, *tmpl;
	uint64_t sent_full, sent_tmpl;
	char err[256];

	/* the template is the guest as it was; 9 pages changed since (3 to
	 * zero, 10 from zero, 17..59 to another content) */
	old->disk_fd = guest->disk_fd;
	refresh_ok(t, old);
	for (uint64_t p = 3; p < 60; p += 7)
		set_page(guest, p, p == 3 ? 0 : 5);
	set_page(guest, 10, 6);
	full = sync_into(dir, guest, NULL, false, &sent_full);
	tmpl = sync_into(dir, guest, t, false, &sent_tmpl);
	ck_assert_uint_eq(sent_full, NPAGES);
	ck_assert_uint_eq(sent_tmpl, 9);
	for (uint64_t p = 0; p < NPAGES; p++) {
		ck_assert_uint_eq(XXH3_64bits(tmpl + p * PAGE, PAGE),
		                  XXH3_64bits(full + p * PAGE, PAGE));
		ck_assert_int_eq(memcmp(full + p * PAGE, guest->ram + p * PAGE, PAGE), 0);
	}
	free(full);
	free(tmpl);
	/* a damaged template is found by its hash before it is used: the
	 * caller syncs in full instead */
	{
		struct vft_tmpl_info info;
		struct vft_tmpl_pin pin;
		char name[16];
		int fd;

		ck_assert_int_eq(vft_tmpl_info(t, &info), 0);
		snprintf(name, sizeof(name), "ram.%u", info.slot);
		flip_byte(dir, name, 5 * PAGE + 9);
		ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
		path_in(err, sizeof(err), dir, "scratch");
		fd = open(err, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(vft_tmpl_copy(t, &pin, fd, -1, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "page 5"));
		close(fd);
		vft_tmpl_unpin(t, &pin);
	}
	vft_tmpl_close(t);
	old->disk_fd = -1;
	image_free(old);
	image_free(guest);
	remove_temp_dir(dir);
}
END_TEST

/* The sink of a copy beside the primary's pages: chunks in order, checked
 * before they reach it; a damaged chunk never does. */
struct sink_rec {
	uint8_t *ram, *disk;
	uint64_t calls;
	int fail_at; /* the sink's own error at this call, 0 = never */
};

static int record_sink(void *arg, bool disk, uint64_t off, const uint8_t *buf, size_t len)
{
	struct sink_rec *r = arg;

	if (++r->calls == (uint64_t)r->fail_at)
		return -ENOSPC;
	memcpy((disk ? r->disk : r->ram) + off, buf, len);
	return 0;
}

START_TEST(test_copy_to_sink)
{
	char *dir = make_temp_dir();
	struct image *img = image_new(dir, 600); /* 3 chunks of RAM */
	struct vft_tmpl *t = open_ok(dir, 600 * PAGE, DISK, CFG, NULL, 0);
	struct sink_rec r = {0};
	struct vft_tmpl_pin pin;
	volatile bool cancel = false;
	char err[256];

	refresh_ok(t, img);
	r.ram = calloc(1, img->ram_size);
	r.disk = calloc(1, DISK);
	ck_assert_ptr_nonnull(r.ram);
	ck_assert_ptr_nonnull(r.disk);
	ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
	ck_assert_int_eq(vft_tmpl_copy_to(t, NULL, true, record_sink, &r, NULL, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_int_eq(vft_tmpl_copy_to(t, &pin, true, NULL, &r, NULL, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_int_eq(vft_tmpl_copy_to(t, &pin, true, record_sink, &r, NULL, err, sizeof(err)),
	                 0);
	ck_assert_uint_eq(r.calls, 4); /* 3 RAM chunks, 1 disk chunk */
	ck_assert_int_eq(memcmp(r.ram, img->ram, img->ram_size), 0);
	ck_assert_int_eq(memcmp(r.disk, img->disk, DISK), 0);
	/* the sink's error stops the copy */
	r.calls = 0;
	r.fail_at = 2;
	ck_assert_int_eq(vft_tmpl_copy_to(t, &pin, false, record_sink, &r, NULL, err, sizeof(err)),
	                 -ENOSPC);
	ck_assert_uint_eq(r.calls, 2);
	/* so does cancel */
	r.calls = 0;
	r.fail_at = 0;
	cancel = true;
	ck_assert_int_eq(
	        vft_tmpl_copy_to(t, &pin, false, record_sink, &r, &cancel, err, sizeof(err)),
	        -ECANCELED);
	ck_assert_uint_eq(r.calls, 1);
	vft_tmpl_unpin(t, &pin);
	/* a damaged page in the second chunk: the first reaches the sink, the
	 * damaged one does not */
	{
		struct vft_tmpl_info info;
		char name[16];

		ck_assert_int_eq(vft_tmpl_info(t, &info), 0);
		snprintf(name, sizeof(name), "ram.%u", info.slot);
		flip_byte(dir, name, 300 * PAGE + 1);
		ck_assert_int_eq(vft_tmpl_pin(t, &pin), 0);
		r.calls = 0;
		ck_assert_int_eq(
		        vft_tmpl_copy_to(t, &pin, true, record_sink, &r, NULL, err, sizeof(err)),
		        -EBADMSG);
		ck_assert_uint_eq(r.calls, 1);
		ck_assert_ptr_nonnull(strstr(err, "page 300"));
		vft_tmpl_unpin(t, &pin);
	}
	free(r.ram);
	free(r.disk);
	vft_tmpl_close(t);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_remove_all)
{
	char *dir = make_temp_dir(), path[512], why[256];
	struct image *img = image_new(dir, NPAGES);
	struct vft_tmpl_info info, scan[2];
	struct vft_tmpl *t;
	unsigned n, damaged;
	struct dirent *e;
	DIR *d;

	path_in(path, sizeof(path), dir, "t");
	t = open_ok(path, RAM, DISK, CFG, NULL, 0);
	refresh_ok(t, img);
	refresh_ok(t, img);
	ck_assert_int_eq(vft_tmpl_remove_all(t), 0);
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		ck_assert_msg(e->d_name[0] == '.', "%s left", e->d_name);
	closedir(d);
	/* and it can start again */
	info = refresh_ok(t, img);
	ck_assert_uint_eq(info.slot, 0);
	ck_assert_uint_eq(info.seq, 1);
	ck_assert_int_eq(vft_tmpl_remove_all(t), 0);
	vft_tmpl_close(t);
	t = open_ok(path, RAM, DISK, CFG, why, sizeof(why));
	ck_assert_str_eq(why, "");
	ck_assert_int_eq(vft_tmpl_info(t, &info), -ENOENT);
	vft_tmpl_close(t);
	ck_assert_int_eq(vft_tmpl_scan_dir(path, scan, &n, &damaged), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(damaged, 0);
	image_free(img);
	remove_temp_dir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vft_tmpl");

	add_tcase(s, test_bad_args, 10);
	add_tcase(s, test_damaged_metas, 20);
	add_tcase(s, test_refresh_copy, 10);
	add_tcase(s, test_refresh_slots, 10);
	add_tcase(s, test_corrupt_invalidate, 10);
	add_tcase(s, test_pin_blocks_refresh, 10);
	add_tcase(s, test_cancel_and_crash, 10);
	add_tcase(s, test_refresh_from_fd, 10);
	add_tcase(s, test_source_changing, 20);
	add_tcase(s, test_rate_limit, 20);
	add_tcase(s, test_disk_mismatch, 10);
	add_tcase(s, test_remove_all, 10);
	add_tcase(s, test_template_sync_equals_full, 10);
	add_tcase(s, test_copy_to_sink, 10);
	return run_suite(s);
}
