/*
 * vft_store: the backup's committed image and the atomic commit of the next
 * epoch. Every check compares the store (info, RAM file, device state) with
 * an image kept in memory; crashes are simulated at each step of a commit
 * and the reopened store must hold exactly the old or the new epoch.
 */
#include "config.h"

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "check_util.h"
#include "vft_proto.h"
#include "vft_store.h"

#define PAGE 4096u
#define NPAGES 64u
#define RAM ((uint64_t)NPAGES * PAGE)
#define DEV_MAX 12000u

/* What the store must hold. */
struct image {
	uint64_t gen, epoch, session;
	uint8_t ram[RAM];
	uint8_t dev[DEV_MAX];
	size_t dev_len;
};

static struct image *image_new(void)
{
	struct image *img = calloc(1, sizeof(*img));

	ck_assert_ptr_nonnull(img);
	return img;
}

/* Every 8 bytes of a page tell which epoch (tag) and page they come from. */
static void fill_page(uint8_t *p, uint64_t tag, uint64_t pfn)
{
	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t v = (tag << 40) ^ (pfn << 20) ^ i ^ 0x5a5a000000000000ull;

		memcpy(p + (size_t)i * 8, &v, 8);
	}
}

static struct vft_store *open_ok(const char *dir, uint64_t ram_size)
{
	struct vft_store *s = NULL;
	char err[256] = "x";
	int rc = vft_store_open(&s, dir, NULL, ram_size, err, sizeof(err));

	ck_assert_msg(rc == 0, "open %s: %d %s", dir, rc, err);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* Begins an epoch and stages n pages (tagged tag, batches of varying sizes)
 * and dev_len bytes of device state (in chunks); next becomes what the
 * store must hold once it is committed. */
static void stage(struct vft_store *s, struct image *next, bool full, uint64_t session,
                  uint64_t epoch, const uint64_t *pfns, uint32_t n, uint64_t tag, size_t dev_len)
{
	uint8_t *pages = malloc((size_t)n * PAGE + 1);

	ck_assert_ptr_nonnull(pages);
	ck_assert(dev_len <= DEV_MAX);
	ck_assert_int_eq(vft_store_begin(s, session, epoch, full, 0), 0);
	if (full) {
		memset(next->ram, 0, RAM);
		next->gen++;
	}
	next->epoch = epoch;
	next->session = session;
	for (uint32_t i = 0; i < n; i++) {
		fill_page(pages + (size_t)i * PAGE, tag * 1000 + i, pfns[i]);
		memcpy(next->ram + pfns[i] * PAGE, pages + (size_t)i * PAGE, PAGE);
	}
	for (uint32_t i = 0, b; i < n; i += b) {
		b = 1 + (i % 7);
		if (b > n - i)
			b = n - i;
		ck_assert_int_eq(vft_store_put_pages(s, b, pfns + i, pages + (size_t)i * PAGE), 0);
	}
	for (size_t k = 0; k < dev_len; k++)
		next->dev[k] = (uint8_t)(tag * 31 + k * 7 + (k >> 8));
	next->dev_len = dev_len;
	for (size_t k = 0, c; k < dev_len; k += c) {
		c = dev_len - k < 1000 ? dev_len - k : 1000;
		ck_assert_int_eq(vft_store_put_devstate(s, next->dev + k, c), 0);
	}
	free(pages);
}

/* n pages: all of them in order (n == NPAGES) or a mix with repeats. */
static void pick_pfns(uint64_t *pfns, uint32_t n, unsigned seed)
{
	for (uint32_t i = 0; i < n; i++)
		pfns[i] = n == NPAGES ? i : (i * 7 + seed * 13 + (i * i) % 5) % NPAGES;
}

static void commit_epoch(struct vft_store *s, struct image *img, bool full, uint64_t session,
                         uint64_t epoch, uint32_t n, uint64_t tag, size_t dev_len)
{
	uint64_t pfns[3 * NPAGES];

	ck_assert(n <= 3 * NPAGES);
	pick_pfns(pfns, n, (unsigned)tag);
	stage(s, img, full, session, epoch, pfns, n, tag, dev_len);
	ck_assert_int_eq(vft_store_commit(s), 0);
}

static void check_image(struct vft_store *s, const char *dir, const struct image *img)
{
	struct vft_store_info info;
	char path[512];
	const void *dev;
	size_t dev_len;

	vft_store_info(s, &info);
	ck_assert_uint_eq(info.gen, img->gen);
	ck_assert_uint_eq(info.epoch, img->epoch);
	ck_assert_uint_eq(info.session, img->session);
	ck_assert_uint_eq(info.ram_size, RAM);
	ck_assert_uint_eq(info.devstate_len, img->dev_len);
	dev = vft_store_devstate(s, &dev_len);
	ck_assert_uint_eq(dev_len, img->dev_len);
	ck_assert(dev_len == 0 || memcmp(dev, img->dev, dev_len) == 0);
	if (img->gen == 0) {
		ck_assert_str_eq(info.ram_path, "");
		return;
	}
	snprintf(path, sizeof(path), "%s/ram.%llu", dir, (unsigned long long)img->gen);
	ck_assert_str_eq(info.ram_path, path);

	uint8_t *ram = malloc(RAM + 1);
	int fd = open(path, O_RDONLY);

	ck_assert_ptr_nonnull(ram);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, ram, RAM + 1), (ssize_t)RAM);
	close(fd);
	for (uint64_t off = 0; off < RAM; off += PAGE)
		ck_assert_msg(memcmp(ram + off, img->ram + off, PAGE) == 0,
		              "page %llu of ram.%llu differs (epoch %llu)",
		              (unsigned long long)(off / PAGE), (unsigned long long)img->gen,
		              (unsigned long long)img->epoch);
	free(ram);
}

/* After open only state and ram.<gen> are left (nothing at all for gen 0). */
static void check_dir_clean(const char *dir, uint64_t gen)
{
	char keep[64];
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	snprintf(keep, sizeof(keep), "ram.%llu", (unsigned long long)gen);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		ck_assert_msg(gen != 0 && (strcmp(e->d_name, "state") == 0 ||
		                           strcmp(e->d_name, keep) == 0),
		              "%s/%s left over (gen %llu)", dir, e->d_name,
		              (unsigned long long)gen);
		n++;
	}
	closedir(d);
	ck_assert_int_eq(n, gen ? 2 : 0);
}

static bool exists(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static void path_in(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
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

static off_t file_size(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	path_in(path, sizeof(path), dir, name);
	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

static void truncate_file(const char *dir, const char *name, off_t len)
{
	char path[512];

	path_in(path, sizeof(path), dir, name);
	ck_assert_int_eq(truncate(path, len), 0);
}

static void copy_file(const char *dir, const char *from, const char *to)
{
	char a[512], b[512], buf[65536];
	int in, out;
	ssize_t n;

	path_in(a, sizeof(a), dir, from);
	path_in(b, sizeof(b), dir, to);
	in = open(a, O_RDONLY);
	out = open(b, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(in, 0);
	ck_assert_int_ge(out, 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		ck_assert_int_eq(write(out, buf, (size_t)n), n);
	ck_assert_int_eq(n, 0);
	close(in);
	close(out);
}

/* A store at epoch 2: a FULL epoch 1 then an INCR epoch 2 of session 5. */
static struct vft_store *store_at_epoch2(const char *dir, struct image *img)
{
	struct vft_store *s;

	remove_tree(dir, 1); /* from scratch: generation 1 */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	memset(img, 0, sizeof(*img));
	s = open_ok(dir, RAM);

	commit_epoch(s, img, true, 5, 1, NPAGES, 1, 3000);
	commit_epoch(s, img, false, 5, 2, 9, 2, 500);
	check_image(s, dir, img);
	return s;
}

/* Commits INCR epoch 3 with a crash after point 2: the redo is left. */
static void leave_redo(struct vft_store *s, struct image *next)
{
	uint64_t pfns[5] = {3, 4, 60, 3, 0};

	stage(s, next, false, 5, 3, pfns, 5, 3, 777);
	vft_store_test_crash_after(s, 2);
	ck_assert_int_eq(vft_store_commit(s), -EINTR);
	vft_store_close(s);
}

/* ---- invalid inputs -------------------------------------------------------------------- */

START_TEST(test_open_refuses_bad_args)
{
	char *dir = make_temp_dir();
	struct vft_store *s = (struct vft_store *)1;
	char err[256], path[512], longdir[5000];
	struct stat st;

	err[0] = '\0';
	ck_assert_int_eq(vft_store_open(&s, NULL, NULL, RAM, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_str_ne(err, "");
	ck_assert_int_eq(vft_store_open(&s, "", NULL, RAM, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_store_open(NULL, dir, NULL, RAM, err, sizeof(err)), -EINVAL);
	err[0] = '\0';
	ck_assert_int_eq(vft_store_open(&s, dir, NULL, 0, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_eq(strstr(err, "RAM size"), err);
	ck_assert_int_eq(vft_store_open(&s, dir, NULL, RAM + 1, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_store_open(&s, dir, NULL, 4095, NULL, 0), -EINVAL);
	ck_assert_ptr_null(s);

	/* a directory under a regular file cannot be made */
	path_in(path, sizeof(path), dir, "file");
	write_file(path, "x", 0600);
	path_in(path, sizeof(path), dir, "file/store");
	err[0] = '\0';
	ck_assert_int_eq(vft_store_open(&s, path, NULL, RAM, err, sizeof(err)), -ENOTDIR);
	ck_assert_ptr_nonnull(strstr(err, "file/store"));
	path_in(path, sizeof(path), dir, "file");
	ck_assert_int_eq(vft_store_open(&s, path, NULL, RAM, err, sizeof(err)), -ENOTDIR);
	ck_assert_ptr_null(s);

	memset(longdir, 'a', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = '\0';
	ck_assert_int_eq(vft_store_open(&s, longdir, NULL, RAM, err, sizeof(err)), -ENAMETOOLONG);

	/* mkdir -p, mode 0700, and a trailing slash does not leak into ram_path */
	path_in(path, sizeof(path), dir, "a/b/");
	s = open_ok(path, RAM);
	path_in(path, sizeof(path), dir, "a/b");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	struct image *img = image_new();

	commit_epoch(s, img, true, 1, 1, 3, 1, 0);
	check_image(s, path, img);
	path_in(path, sizeof(path), dir, "a/b/ram.1");
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_put_before_begin)
{
	char *dir = make_temp_dir();
	struct vft_store *s = open_ok(dir, RAM);
	uint8_t page[PAGE] = {0};
	uint64_t pfn = 1;
	struct image *img = image_new();

	check_image(s, dir, img);
	check_dir_clean(dir, 0);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), -EINVAL);
	ck_assert_int_eq(vft_store_put_devstate(s, "abc", 3), -EINVAL);
	ck_assert_int_eq(vft_store_commit(s), -EINVAL);
	vft_store_abort(s); /* nothing staged: harmless */

	/* an aborted epoch is gone, files included */
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, 0), 0);
	ck_assert(exists(dir, "ram.1"));
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), 0);
	ck_assert_int_eq(vft_store_put_pages(s, 0, NULL, NULL), 0);
	ck_assert_int_eq(vft_store_put_pages(s, 1, NULL, page), -EINVAL);
	ck_assert_int_eq(vft_store_put_devstate(s, NULL, 3), -EINVAL);
	vft_store_abort(s);
	ck_assert(!exists(dir, "ram.1"));
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), -EINVAL);
	ck_assert_int_eq(vft_store_commit(s), -EINVAL);
	check_image(s, dir, img);

	/* epoch 0 is "none" */
	ck_assert_int_eq(vft_store_begin(s, 1, 0, true, 0), -EINVAL);
	ck_assert_int_eq(vft_store_commit(s), -EINVAL);

	/* begin discards what is staged: INCR's redo.tmp, FULL's pages */
	commit_epoch(s, img, true, 1, 1, NPAGES, 1, 100);
	ck_assert_int_eq(vft_store_begin(s, 1, 2, false, 0), 0);
	ck_assert(exists(dir, "redo.tmp"));
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), 0);
	ck_assert_int_eq(vft_store_begin(s, 1, 2, true, 0), 0);
	ck_assert(!exists(dir, "redo.tmp"));
	ck_assert(exists(dir, "ram.2"));
	memset(page, 0xee, sizeof(page));
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), 0);
	ck_assert_int_eq(vft_store_put_devstate(s, "junk", 4), 0);
	{
		struct image *next = image_new();
		uint64_t pfns[2] = {5, 6};

		memcpy(next, img, sizeof(*img));
		stage(s, next, true, 2, 2, pfns, 2, 9, 10); /* page 1 of the discarded one: 0 */
		ck_assert_int_eq(vft_store_commit(s), 0);
		check_image(s, dir, next);
		free(next);
	}
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

/* A full sync built on a base (a template's copy): the staged files are
 * there to be filled before the pages arrive, and the commit keeps both. */
START_TEST(test_stage_fds_base)
{
	char *dir = make_temp_dir();
	struct vft_store *s = open_ok(dir, RAM);
	struct image *img = image_new();
	uint8_t page[PAGE];
	uint64_t pfn = 5;
	int ram_fd = -2, disk_fd = -2;

	/* nothing staged, or an incremental epoch: no files to fill */
	ck_assert_int_eq(vft_store_stage_fds(s, &ram_fd, &disk_fd), -EINVAL);
	commit_epoch(s, img, true, 1, 1, NPAGES, 1, 100);
	ck_assert_int_eq(vft_store_begin(s, 1, 2, false, 0), 0);
	ck_assert_int_eq(vft_store_stage_fds(s, &ram_fd, &disk_fd), -EINVAL);
	vft_store_abort(s);

	ck_assert_int_eq(vft_store_begin(s, 2, 7, true, 0), 0);
	ck_assert_int_eq(vft_store_stage_fds(s, &ram_fd, &disk_fd), 0);
	ck_assert_int_ge(ram_fd, 0);
	ck_assert_int_eq(disk_fd, -1); /* a store without disk */
	memset(img->ram, 0, sizeof(img->ram));
	fill_page(img->ram + 3 * PAGE, 77, 3); /* the base's page */
	ck_assert_int_eq(pwrite(ram_fd, img->ram + 3 * PAGE, PAGE, 3 * PAGE), PAGE);
	fill_page(page, 78, pfn); /* the primary's */
	memcpy(img->ram + pfn * PAGE, page, PAGE);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), 0);
	ck_assert_int_eq(vft_store_put_devstate(s, "dev", 3), 0);
	ck_assert_int_eq(vft_store_commit(s), 0);
	img->gen = 2;
	img->epoch = 7;
	img->session = 2;
	memcpy(img->dev, "dev", 3);
	img->dev_len = 3;
	check_image(s, dir, img);

	/* a prepared base renamed into place: refused when missing, of the
	 * wrong size (then gone), for an incremental epoch */
	{
		char path[512];
		int fd;

		ck_assert_int_eq(vft_store_begin_from(s, 3, 8, true, 0, "base.ram", NULL), -ENOENT);
		snprintf(path, sizeof(path), "%s/base.ram", dir);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, RAM - PAGE), 0);
		close(fd);
		ck_assert_int_eq(vft_store_begin_from(s, 3, 8, true, 0, "base.ram", NULL), -EINVAL);
		ck_assert(!exists(dir, "base.ram"));
		ck_assert_int_eq(vft_store_begin_from(s, 2, 8, false, 0, "base.ram", NULL),
		                 -EINVAL);
		check_image(s, dir, img);
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(ftruncate(fd, RAM), 0);
		fill_page(page, 79, 9);
		ck_assert_int_eq(pwrite(fd, page, PAGE, 9 * PAGE), PAGE);
		close(fd);
		ck_assert_int_eq(vft_store_begin_from(s, 3, 8, true, 0, "base.ram", NULL), 0);
		ck_assert(!exists(dir, "base.ram"));
		ck_assert_int_eq(vft_store_put_devstate(s, "dev", 3), 0);
		ck_assert_int_eq(vft_store_commit(s), 0);
		memset(img->ram, 0, sizeof(img->ram));
		memcpy(img->ram + 9 * PAGE, page, PAGE);
		img->gen = 3;
		img->epoch = 8;
		img->session = 3;
		check_image(s, dir, img);
	}
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_pfn_out_of_range)
{
	char *dir = make_temp_dir();
	struct vft_store *s = open_ok(dir, RAM);
	struct image *img = image_new();
	uint8_t bad_pages[2 * PAGE], page[PAGE];
	uint64_t bad[2] = {2, NPAGES}, huge = UINT64_MAX / PAGE + 5, one = 1, three = 3;

	memset(bad_pages, 0x11, sizeof(bad_pages));
	memset(page, 0x77, sizeof(page));
	/* a refused batch writes nothing (page 2 stays zero) and the epoch goes on */
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, 0), 0);
	ck_assert_int_eq(vft_store_put_pages(s, 2, bad, bad_pages), -ERANGE);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &huge, bad_pages), -ERANGE);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &one, page), 0);
	ck_assert_int_eq(vft_store_commit(s), 0);
	img->gen = img->epoch = img->session = 1;
	memset(img->ram + PAGE, 0x77, PAGE);
	check_image(s, dir, img);

	ck_assert_int_eq(vft_store_begin(s, 1, 2, false, 0), 0);
	ck_assert_int_eq(vft_store_put_pages(s, 2, bad, bad_pages), -ERANGE);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &huge, bad_pages), -ERANGE);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &three, page), 0);
	ck_assert_int_eq(vft_store_commit(s), 0);
	img->epoch = 2;
	memset(img->ram + 3 * PAGE, 0x77, PAGE);
	check_image(s, dir, img);
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_incr_needs_committed_epoch)
{
	char *dir = make_temp_dir();
	struct vft_store *s = open_ok(dir, RAM);
	struct image *img = image_new();

	ck_assert_int_eq(vft_store_begin(s, 1, 1, false, 0), -ENOENT);
	ck_assert_int_eq(vft_store_begin(s, 1, 2, false, 0), -ENOENT);
	ck_assert(!exists(dir, "redo.tmp"));
	commit_epoch(s, img, true, 7, 10, NPAGES, 1, 64);
	ck_assert_int_eq(vft_store_begin(s, 8, 11, false, 0), -ESTALE);
	ck_assert_int_eq(vft_store_begin(s, 6, 11, false, 0), -ESTALE);
	/* recovery re-applies a redo only to the epoch before it */
	ck_assert_int_eq(vft_store_begin(s, 7, 12, false, 0), -EINVAL);
	ck_assert_int_eq(vft_store_begin(s, 7, 10, false, 0), -EINVAL);
	ck_assert_int_eq(vft_store_commit(s), -EINVAL);
	ck_assert(!exists(dir, "redo.tmp"));
	/* a new session starts with a FULL epoch, any number */
	commit_epoch(s, img, true, 8, 3, 10, 2, 64);
	ck_assert_int_eq(vft_store_begin(s, 7, 4, false, 0), -ESTALE);
	commit_epoch(s, img, false, 8, 4, 2, 3, 64);
	check_image(s, dir, img);
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_devstate_too_big)
{
	char *dir = make_temp_dir();
	struct vft_store *s = open_ok(dir, RAM);
	struct image *img = image_new();
	static const char one[1];
	const size_t max = 64u << 20;

	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, 0), 0);
	/* refused before a byte is read */
	ck_assert_int_eq(vft_store_put_devstate(s, one, max + 1), -EFBIG);
	ck_assert_int_eq(vft_store_put_devstate(s, one, SIZE_MAX), -EFBIG);
	ck_assert_int_eq(vft_store_put_devstate(s, one, 1), 0);
	ck_assert_int_eq(vft_store_put_devstate(s, one, max), -EFBIG);
	ck_assert_int_eq(vft_store_commit(s), 0);
	img->gen = 1;
	img->epoch = 1;
	img->session = 1;
	img->dev_len = 1;
	check_image(s, dir, img);
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_corrupt_state)
{
	char *dir = make_temp_dir();
	struct vft_store *s;
	struct image *img = image_new(), *none = image_new(), *next = image_new();

	/* a flipped byte anywhere: nothing committed, everything removed */
	static const off_t where[] = {0, 9, 20, 50, 56, 60, -1};
	for (unsigned i = 0; i < AF_ARRAY_SIZE(where); i++) {
		memset(img, 0, sizeof(*img));
		s = open_ok(dir, RAM);
		commit_epoch(s, img, true, 1, 1, NPAGES, 1, 100);
		vft_store_close(s);
		flip_byte(dir, "state", where[i] >= 0 ? where[i] : file_size(dir, "state") - 1);
		s = open_ok(dir, RAM);
		check_image(s, dir, none);
		check_dir_clean(dir, 0);
		vft_store_close(s);
	}

	/* too short, too long, empty */
	static const off_t sizes[] = {0, 10, 55, 63, 100, 200};
	for (unsigned i = 0; i < AF_ARRAY_SIZE(sizes); i++) {
		memset(img, 0, sizeof(*img));
		s = open_ok(dir, RAM);
		commit_epoch(s, img, true, 1, 1, NPAGES, 1, 100);
		vft_store_close(s);
		truncate_file(dir, "state", sizes[i]);
		s = open_ok(dir, RAM);
		check_image(s, dir, none);
		check_dir_clean(dir, 0);
		vft_store_close(s);
	}

	/* a complete redo cannot apply to a state that is gone */
	memset(img, 0, sizeof(*img));
	s = store_at_epoch2(dir, img);
	memcpy(next, img, sizeof(*img));
	leave_redo(s, next);
	ck_assert(exists(dir, "redo"));
	flip_byte(dir, "state", 30);
	s = open_ok(dir, RAM);
	check_image(s, dir, none);
	check_dir_clean(dir, 0);
	vft_store_close(s);

	/* the committed RAM file missing or of the wrong size */
	memset(img, 0, sizeof(*img));
	s = store_at_epoch2(dir, img);
	vft_store_close(s);
	truncate_file(dir, "ram.1", RAM - PAGE);
	s = open_ok(dir, RAM);
	check_image(s, dir, none);
	check_dir_clean(dir, 0);
	vft_store_close(s);

	memset(img, 0, sizeof(*img));
	s = store_at_epoch2(dir, img);
	vft_store_close(s);
	{
		char path[512];

		path_in(path, sizeof(path), dir, "ram.1");
		ck_assert_int_eq(unlink(path), 0);
	}
	s = open_ok(dir, RAM);
	check_image(s, dir, none);
	check_dir_clean(dir, 0);
	vft_store_close(s);

	/* a VM of another size: the image is discarded, redo included */
	memset(img, 0, sizeof(*img));
	s = store_at_epoch2(dir, img);
	memcpy(next, img, sizeof(*img));
	leave_redo(s, next);
	{
		char err[256] = "x";

		ck_assert_int_eq(vft_store_open(&s, dir, NULL, 2 * RAM, err, sizeof(err)), 0);
		ck_assert_str_eq(err, "");
	}
	{
		struct vft_store_info info;

		vft_store_info(s, &info);
		ck_assert_uint_eq(info.gen, 0);
		ck_assert_uint_eq(info.ram_size, 2 * RAM);
		ck_assert_uint_eq(info.devstate_len, 0);
	}
	check_dir_clean(dir, 0);
	vft_store_close(s);

	free(img);
	free(none);
	free(next);
	remove_temp_dir(dir);
}
END_TEST

/* A redo that is incomplete, corrupt or not the next epoch is dropped and
 * the committed epoch stays as it is. */
START_TEST(test_bad_redo)
{
	char *dir = make_temp_dir();
	struct vft_store *s;
	struct image *img = image_new(), *next = image_new();
	off_t size;

	/* truncated by one byte, by the trailer, to the header only */
	static const off_t cut[] = {1, 16, 17, 4104 + 1};
	for (unsigned i = 0; i < AF_ARRAY_SIZE(cut); i++) {
		memset(img, 0, sizeof(*img));
		s = store_at_epoch2(dir, img);
		memcpy(next, img, sizeof(*img));
		leave_redo(s, next);
		size = file_size(dir, "redo");
		truncate_file(dir, "redo", size - cut[i]);
		s = open_ok(dir, RAM);
		check_image(s, dir, img);
		check_dir_clean(dir, img->gen);
		vft_store_close(s);
		remove_tree(dir, 1);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
	}
	for (unsigned i = 0; i < 2; i++) {
		memset(img, 0, sizeof(*img));
		s = store_at_epoch2(dir, img);
		memcpy(next, img, sizeof(*img));
		leave_redo(s, next);
		truncate_file(dir, "redo", i == 0 ? 0 : 47);
		s = open_ok(dir, RAM);
		check_image(s, dir, img);
		check_dir_clean(dir, img->gen);
		vft_store_close(s);
	}

	/* a flipped byte: header, a pfn, a page, the device state, the trailer */
	static const off_t flip[] = {0, 9, 20, 33, 41, 48, 60, 4104 + 48 + 100, -20, -9, -1};
	for (unsigned i = 0; i < AF_ARRAY_SIZE(flip); i++) {
		memset(img, 0, sizeof(*img));
		s = store_at_epoch2(dir, img);
		memcpy(next, img, sizeof(*img));
		leave_redo(s, next);
		size = file_size(dir, "redo");
		flip_byte(dir, "redo", flip[i] >= 0 ? flip[i] : size + flip[i]);
		s = open_ok(dir, RAM);
		check_image(s, dir, img);
		check_dir_clean(dir, img->gen);
		vft_store_close(s);
	}

	/* a valid redo of an older epoch of the same generation and session */
	memset(img, 0, sizeof(*img));
	s = store_at_epoch2(dir, img);
	memcpy(next, img, sizeof(*img));
	leave_redo(s, next);
	copy_file(dir, "redo", "redo.epoch3");
	s = open_ok(dir, RAM); /* applies epoch 3 */
	check_image(s, dir, next);
	memcpy(img, next, sizeof(*img));
	commit_epoch(s, img, false, 5, 4, 6, 4, 10);
	vft_store_close(s);
	copy_file(dir, "redo.epoch3", "redo");
	{
		char path[512];

		path_in(path, sizeof(path), dir, "redo.epoch3");
		ck_assert_int_eq(unlink(path), 0);
	}
	s = open_ok(dir, RAM);
	check_image(s, dir, img);
	check_dir_clean(dir, img->gen);

	/* the same redo (epoch 3 of gen 1) in front of gen 2 epoch 2 */
	vft_store_close(s);
	memset(img, 0, sizeof(*img));
	remove_tree(dir, 1);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	s = store_at_epoch2(dir, img);
	memcpy(next, img, sizeof(*img));
	leave_redo(s, next);
	copy_file(dir, "redo", "redo.gen1");
	s = open_ok(dir, RAM);
	commit_epoch(s, next, true, 5, 2, NPAGES, 8, 40); /* gen 2, epoch 2, session 5 */
	vft_store_close(s);
	copy_file(dir, "redo.gen1", "redo");
	{
		char path[512];

		path_in(path, sizeof(path), dir, "redo.gen1");
		ck_assert_int_eq(unlink(path), 0);
	}
	s = open_ok(dir, RAM);
	check_image(s, dir, next);
	check_dir_clean(dir, 2);
	vft_store_close(s);

	/* garbage: discarded, also with nothing committed */
	memcpy(img, next, sizeof(*img));
	{
		char path[512];

		path_in(path, sizeof(path), dir, "redo");
		write_file(path,
		           "not a redo at all, but long enough to have a header and a trailer\n",
		           0600);
		s = open_ok(dir, RAM);
		check_image(s, dir, img);
		check_dir_clean(dir, img->gen);
		vft_store_close(s);
		path_in(path, sizeof(path), dir, "state");
		ck_assert_int_eq(unlink(path), 0);
		path_in(path, sizeof(path), dir, "redo");
		write_file(path, "x", 0600);
		s = open_ok(dir, RAM);
		memset(img, 0, sizeof(*img));
		check_image(s, dir, img);
		check_dir_clean(dir, 0);
		vft_store_close(s);
	}
	free(img);
	free(next);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_leftovers_removed)
{
	char *dir = make_temp_dir();
	struct vft_store *s;
	struct image *img = image_new();
	static const char *const junk[] = {"ram.3",   "ram.0",     "ram.junk",
	                                   "ram.1.x", "state.tmp", "redo.tmp"};
	char path[512];

	s = store_at_epoch2(dir, img);
	vft_store_close(s);
	for (unsigned i = 0; i < AF_ARRAY_SIZE(junk); i++) {
		path_in(path, sizeof(path), dir, junk[i]);
		write_file(path, "junk", 0600);
	}
	path_in(path, sizeof(path), dir, "other");
	write_file(path, "not ours", 0600);
	s = open_ok(dir, RAM);
	check_image(s, dir, img);
	ck_assert(exists(dir, "other"));
	ck_assert_int_eq(unlink(path), 0);
	check_dir_clean(dir, 1);
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- commits ---------------------------------------------------------------------------- */

START_TEST(test_full_then_incr)
{
	char *dir = make_temp_dir();
	struct vft_store *s = open_ok(dir, RAM);
	struct image *img = image_new();
	struct vft_store_info a, b;

	check_image(s, dir, img);
	/* a full sync where some pages never come: they are zero */
	commit_epoch(s, img, true, 42, 1, 40, 1, 4000);
	check_image(s, dir, img);
	check_dir_clean(dir, 1);
	for (uint64_t e = 2; e <= 8; e++) {
		/* 0 pages, 1 page, many with repeats (the last one wins) */
		uint32_t n = e == 2 ? 0 : e == 3 ? 1 : (uint32_t)(e * 17 % (3 * NPAGES));

		commit_epoch(s, img, false, 42, e, n, e, e == 4 ? 0 : (size_t)(e * 1111));
		check_image(s, dir, img);
		check_dir_clean(dir, 1);
	}
	vft_store_info(s, &a);
	vft_store_close(s);
	s = open_ok(dir, RAM);
	vft_store_info(s, &b);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	check_image(s, dir, img);

	/* a second full sync: a new generation, the old file is gone */
	commit_epoch(s, img, true, 43, 100, NPAGES, 20, 12000);
	ck_assert_uint_eq(img->gen, 2);
	check_image(s, dir, img);
	check_dir_clean(dir, 2);
	commit_epoch(s, img, false, 43, 101, 30, 21, 1);
	check_image(s, dir, img);
	vft_store_close(s);
	s = open_ok(dir, RAM);
	check_image(s, dir, img);
	check_dir_clean(dir, 2);
	vft_store_close(s);
	free(img);
	remove_temp_dir(dir);
}
END_TEST

/* ---- crashes ------------------------------------------------------------------------------ */

static void crash_case(bool full, int point)
{
	char *dir = make_temp_dir();
	struct image *old = image_new(), *next = image_new();
	struct vft_store *s = store_at_epoch2(dir, old);
	uint64_t pfns[3 * NPAGES], pfn = 0;
	uint8_t page[PAGE] = {0};
	const struct image *want;
	uint32_t n = full ? NPAGES - 3 : 20;

	memcpy(next, old, sizeof(*old));
	pick_pfns(pfns, n, 77);
	if (full)
		stage(s, next, true, 6, 3, pfns, n, 77, 2500); /* a new session */
	else
		stage(s, next, false, 5, 3, pfns, n, 77, 2500);
	vft_store_test_crash_after(s, point);
	ck_assert_int_eq(vft_store_commit(s), -EINTR);
	/* only close is left */
	ck_assert_int_eq(vft_store_begin(s, 5, 3, false, 0), -EIO);
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), -EIO);
	ck_assert_int_eq(vft_store_put_devstate(s, page, 1), -EIO);
	ck_assert_int_eq(vft_store_commit(s), -EIO);
	vft_store_abort(s);
	vft_store_close(s);

	want = (full ? point == 4 : point >= 2) ? next : old;
	s = open_ok(dir, RAM);
	check_image(s, dir, want);
	check_dir_clean(dir, want->gen);

	/* the recovered store goes on as usual */
	memcpy(old, want, sizeof(*old));
	commit_epoch(s, old, false, old->session, old->epoch + 1, 7, 90, 33);
	check_image(s, dir, old);
	vft_store_close(s);
	s = open_ok(dir, RAM);
	check_image(s, dir, old);
	check_dir_clean(dir, old->gen);
	vft_store_close(s);
	free(old);
	free(next);
	remove_temp_dir(dir);
}

START_TEST(test_crash_full)
{
	for (int p = 1; p <= 4; p++)
		crash_case(true, p);
}
END_TEST

START_TEST(test_crash_incr)
{
	for (int p = 1; p <= 4; p++)
		crash_case(false, p);
}
END_TEST

/* A crash during the first full sync leaves nothing committed (or the new
 * generation 1 after the state's rename). */
START_TEST(test_crash_first_full)
{
	for (int p = 1; p <= 4; p++) {
		char *dir = make_temp_dir();
		struct image *none = image_new(), *next = image_new();
		struct vft_store *s = open_ok(dir, RAM);
		uint64_t pfns[NPAGES];

		pick_pfns(pfns, NPAGES, 0);
		stage(s, next, true, 1, 1, pfns, NPAGES, 1, 10);
		vft_store_test_crash_after(s, p);
		ck_assert_int_eq(vft_store_commit(s), -EINTR);
		vft_store_close(s);
		s = open_ok(dir, RAM);
		check_image(s, dir, p == 4 ? next : none);
		check_dir_clean(dir, p == 4 ? 1 : 0);
		vft_store_close(s);
		free(none);
		free(next);
		remove_temp_dir(dir);
	}
}
END_TEST

/* Random epochs, aborts, reopens and crashes against the image in memory
 * (VFT_STORE_SEED=N replays another sequence). */
/* ---- the disk ---- */

#define DISK (64u * 1024)

struct dimage {
	uint8_t d[DISK];
};

static void write_bin(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static struct vft_store *open_disk_ok(const char *dir, const char *ddir)
{
	struct vft_store *s = NULL;
	char err[256] = "x";
	int rc = vft_store_open(&s, dir, ddir, RAM, err, sizeof(err));

	ck_assert_msg(rc == 0, "open %s: %d %s", dir, rc, err);
	return s;
}

/* EVENTS payload of n disk writes: write i puts byte tag+i on sectors
 * [sec[i], sec[i] + cnt[i]); img follows them in order. */
static size_t disk_events(uint8_t *buf, uint64_t seq, uint32_t n, const uint32_t *sec,
                          const uint32_t *cnt, uint8_t tag, struct dimage *img)
{
	size_t len = 8;

	memset(buf, 0, 8);
	buf[0] = (uint8_t)n;
	for (uint32_t i = 0; i < n; i++) {
		struct vft_event ev = {.seq = seq + i,
		                       .kind = VFT_EV_DISK_WRITE,
		                       .len = cnt[i] * 512,
		                       .arg = (uint64_t)sec[i] * 512};

		vft_event_encode_head(buf + len, &ev);
		memset(buf + len + VFT_EV_HDR, tag + (int)i, ev.len);
		if (img)
			memset(img->d + ev.arg, tag + (int)i, ev.len);
		len += VFT_EV_HDR + ev.len;
	}
	return len;
}

static void check_disk(struct vft_store *s, const struct dimage *img)
{
	struct vft_store_info info;
	uint8_t *got;
	size_t len;

	vft_store_info(s, &info);
	ck_assert_uint_eq(info.disk_size, DISK);
	ck_assert_str_ne(info.disk_path, "");
	got = (uint8_t *)slurp(info.disk_path);
	ck_assert_ptr_nonnull(got);
	{
		struct stat st;

		ck_assert_int_eq(stat(info.disk_path, &st), 0);
		len = (size_t)st.st_size;
	}
	ck_assert_uint_eq(len, DISK);
	ck_assert_msg(memcmp(got, img->d, DISK) == 0, "disk %s differs", info.disk_path);
	free(got);
}

/* a full sync of the disk: content (with a zero hole), then writes that
 * land on it and beside it, in order */
static void full_with_disk(struct vft_store *s, struct dimage *img, uint64_t session,
                           uint64_t epoch)
{
	static uint8_t ev[65536];
	uint8_t content[8192], dev[100];
	const uint32_t sec[] = {2, 3, 100};
	const uint32_t cnt[] = {2, 1, 4};
	uint64_t pfn = 1;
	uint8_t page[PAGE];
	size_t len;

	memset(img, 0, sizeof(*img));
	memset(content, 0x11, sizeof(content));
	ck_assert_int_eq(vft_store_begin(s, session, epoch, true, DISK), 0);
	memset(page, 0x42, sizeof(page));
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), 0);
	ck_assert_int_eq(vft_store_put_disk(s, 0, content, sizeof(content)), 0);
	memcpy(img->d, content, sizeof(content));
	ck_assert_int_eq(vft_store_put_disk(s, 32768, content, 512), 0);
	memcpy(img->d + 32768, content, 512);
	len = disk_events(ev, 1, 3, sec, cnt, 0xa0, img);
	ck_assert_int_eq(vft_store_put_events(s, ev, len), 0);
	memset(dev, 7, sizeof(dev));
	ck_assert_int_eq(vft_store_put_devstate(s, dev, sizeof(dev)), 0);
}

START_TEST(test_disk_refused)
{
	static uint8_t ev[65536];
	char *dir = make_temp_dir(), ddir[300];
	struct vft_store *s;
	struct dimage img;
	const uint32_t sec[] = {DISK / 512 - 1}, cnt[] = {2}, ok_sec[] = {0}, ok_cnt[] = {1};
	uint64_t pfn = 0;
	uint8_t page[PAGE] = {0};
	size_t len;

	snprintf(ddir, sizeof(ddir), "%s/disks", dir);
	s = open_disk_ok(dir, ddir);
	/* a store with a disk needs one in a full sync, and whole sectors */
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, 0), -EINVAL);
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, DISK + 100), -EINVAL);
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, DISK), 0);
	ck_assert_int_eq(vft_store_put_disk(s, 100, page, 512), -ERANGE);
	ck_assert_int_eq(vft_store_put_disk(s, DISK - 512, page, 1024), -ERANGE);
	ck_assert_int_eq(vft_store_put_disk(s, 0, page, 100), -ERANGE);
	/* a write beyond the disk, a malformed payload */
	len = disk_events(ev, 1, 1, sec, cnt, 1, NULL);
	ck_assert_int_eq(vft_store_put_events(s, ev, len), -EBADMSG);
	ck_assert_int_eq(vft_store_put_events(s, ev, 20), -EBADMSG);
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, DISK), 0);
	len = disk_events(ev, 1, 1, ok_sec, ok_cnt, 1, NULL);
	ck_assert_int_eq(vft_store_put_events(s, ev, len), 0);
	/* nothing after the log but the device state */
	ck_assert_int_eq(vft_store_put_pages(s, 1, &pfn, page), -EINVAL);
	ck_assert_int_eq(vft_store_put_disk(s, 0, page, 512), -EINVAL);
	vft_store_abort(s);
	full_with_disk(s, &img, 1, 1);
	ck_assert_int_eq(vft_store_commit(s), 0);
	/* an incremental epoch: no DISK, the committed disk's size */
	ck_assert_int_eq(vft_store_begin(s, 1, 2, false, DISK * 2), -EINVAL);
	ck_assert_int_eq(vft_store_begin(s, 1, 2, false, DISK), 0);
	ck_assert_int_eq(vft_store_put_disk(s, 0, page, 512), -EINVAL);
	vft_store_abort(s);
	check_disk(s, &img);
	vft_store_close(s);
	/* a store without a disk takes no disk */
	s = open_ok(dir, RAM);
	ck_assert_int_eq(vft_store_begin(s, 1, 1, true, DISK), -EINVAL);
	vft_store_close(s);
	remove_temp_dir(dir);
}
END_TEST

/* Full sync then incremental epochs with disk writes; a crash at each step
 * of each commit reopens as the old or the new epoch, disk included. */
START_TEST(test_disk_commits_and_crashes)
{
	static uint8_t ev[1 << 20];
	char *dir = make_temp_dir(), ddir[300];
	struct vft_store *s;
	struct vft_store_info info;
	struct dimage img, next;
	uint8_t dev[64];
	uint64_t epoch = 1;

	snprintf(ddir, sizeof(ddir), "%s/disks", dir);
	s = open_disk_ok(dir, ddir);
	full_with_disk(s, &img, 9, epoch);
	ck_assert_int_eq(vft_store_commit(s), 0);
	check_disk(s, &img);
	memset(dev, 3, sizeof(dev));
	for (int point = 0; point <= 4; point++) {
		const uint32_t sec[] = {5, 0, 6, 127}, cnt[] = {3, 1, 1, 1};
		size_t len;
		bool crashed;

		next = img;
		ck_assert_int_eq(vft_store_begin(s, 9, epoch + 1, false, DISK), 0);
		len = disk_events(ev, 100 + 4 * (uint64_t)point, 4, sec, cnt,
		                  (uint8_t)(0x30 + 16 * point), &next);
		ck_assert_int_eq(vft_store_put_events(s, ev, len), 0);
		ck_assert_int_eq(vft_store_put_devstate(s, dev, sizeof(dev)), 0);
		vft_store_test_crash_after(s, point);
		crashed = point > 0;
		ck_assert_int_eq(vft_store_commit(s), crashed ? -EINTR : 0);
		vft_store_close(s);
		s = open_disk_ok(dir, ddir);
		vft_store_info(s, &info);
		/* past the redo's rename (step 2) the epoch is committed */
		if (!crashed || point >= 2) {
			ck_assert_uint_eq(info.epoch, epoch + 1);
			img = next;
			epoch++;
		} else {
			ck_assert_uint_eq(info.epoch, epoch);
		}
		check_disk(s, &img);
	}
	/* a crash in a second full sync keeps the old generation and its disk */
	for (int point = 1; point <= 4; point++) {
		struct dimage fresh;
		uint64_t gen;

		vft_store_info(s, &info);
		gen = info.gen;
		full_with_disk(s, &fresh, 10 + (uint64_t)point, 50 + (uint64_t)point);
		vft_store_test_crash_after(s, point);
		ck_assert_int_eq(vft_store_commit(s), -EINTR);
		vft_store_close(s);
		s = open_disk_ok(dir, ddir);
		vft_store_info(s, &info);
		if (point >= 4) {
			ck_assert_uint_gt(info.gen, gen);
			img = fresh;
		} else {
			ck_assert_uint_eq(info.gen, gen);
		}
		check_disk(s, &img);
	}
	vft_store_close(s);
	remove_temp_dir(dir);
}
END_TEST

/* Promotion hands the files to the guest; what a reopened store, a cold
 * start and a seed see afterwards. */
START_TEST(test_disk_release_latest_seed)
{
	char *dir = make_temp_dir(), ddir[300], path[600], image[400], err[256];
	struct vft_store *s;
	struct vft_store_info info;
	struct dimage img;
	uint64_t gen, g2;
	uint8_t *got;

	snprintf(ddir, sizeof(ddir), "%s/disks", dir);
	ck_assert_int_eq(vft_store_latest_disk(ddir, path, sizeof(path), &gen), -ENOENT);
	s = open_disk_ok(dir, ddir);
	full_with_disk(s, &img, 1, 1);
	ck_assert_int_eq(vft_store_commit(s), 0);
	vft_store_info(s, &info);
	gen = info.gen;
	ck_assert_int_eq(vft_store_release(s), 0);
	vft_store_close(s);
	/* no epoch any more, but the blade's latest disk stays */
	snprintf(path, sizeof(path), "%s/state", dir);
	ck_assert_int_ne(access(path, F_OK), 0);
	s = open_disk_ok(dir, ddir);
	vft_store_info(s, &info);
	ck_assert_uint_eq(info.epoch, 0);
	ck_assert_int_eq(vft_store_latest_disk(ddir, path, sizeof(path), &g2), 0);
	ck_assert_uint_eq(g2, gen);
	/* the next full sync numbers its generation above it, then drops it */
	full_with_disk(s, &img, 2, 1);
	ck_assert_int_eq(vft_store_commit(s), 0);
	vft_store_info(s, &info);
	ck_assert_uint_gt(info.gen, gen);
	snprintf(path, sizeof(path), "%s/disk.%llu", ddir, (unsigned long long)gen);
	ck_assert_int_ne(access(path, F_OK), 0);
	check_disk(s, &img);
	vft_store_close(s);
	/* forget: a cold primary makes the epoch go */
	ck_assert_int_eq(vft_store_forget(dir), 0);
	s = open_disk_ok(dir, ddir);
	vft_store_info(s, &info);
	ck_assert_uint_eq(info.epoch, 0);
	vft_store_close(s);
	/* seeding: an image of whole sectors is copied, anything else refused */
	snprintf(image, sizeof(image), "%s/seed.img", dir);
	memset(img.d, 0, sizeof(img.d));
	memset(img.d + 4096, 0x99, 512);
	write_bin(image, img.d, DISK);
	{
		char sd[400];

		snprintf(sd, sizeof(sd), "%s/seeded", dir);
		ck_assert_int_eq(
		        vft_store_seed_disk(sd, image, path, sizeof(path), err, sizeof(err)), 0);
		got = (uint8_t *)slurp(path);
		ck_assert_ptr_nonnull(got);
		ck_assert_int_eq(memcmp(got, img.d, DISK), 0);
		free(got);
		write_bin(image, "short", 5);
		ck_assert_int_eq(
		        vft_store_seed_disk(sd, image, path, sizeof(path), err, sizeof(err)),
		        -EINVAL);
		ck_assert_int_eq(vft_store_seed_disk(sd, "/nonexistent/x", path, sizeof(path), err,
		                                     sizeof(err)),
		                 -ENOENT);
	}
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_random)
{
	char *dir = make_temp_dir();
	struct image *img = image_new(), *next = image_new();
	struct vft_store *s = open_ok(dir, RAM);
	const char *env = getenv("VFT_STORE_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 0) : 20240611u;
	uint64_t session = 1;

	srand(seed);
	for (int it = 0; it < 200; it++) {
		bool full = img->gen == 0 || rand() % 6 == 0;
		uint64_t pfns[3 * NPAGES], epoch;
		uint32_t n;
		size_t dev_len = (size_t)(rand() % (int)DEV_MAX);
		int crash = rand() % 2 ? 1 + rand() % 4 : 0;

		uint64_t sess = img->gen ? img->session : session;

		if (full && rand() % 3 == 0)
			sess = ++session;
		epoch = full ? img->epoch + 1 + (uint64_t)(rand() % 3) : img->epoch + 1;
		if (full && rand() % 2 == 0) {
			n = NPAGES;
			pick_pfns(pfns, n, 0);
		} else {
			n = (uint32_t)(rand() % (full ? (int)(3 * NPAGES) : 24));
			for (uint32_t i = 0; i < n; i++)
				pfns[i] = (uint64_t)(rand() % (int)NPAGES);
		}
		memcpy(next, img, sizeof(*img));
		stage(s, next, full, sess, epoch, pfns, n, (uint64_t)it + 1, dev_len);
		if (rand() % 10 == 0) {
			vft_store_abort(s);
			check_image(s, dir, img);
			continue;
		}
		if (crash) {
			vft_store_test_crash_after(s, crash);
			ck_assert_int_eq(vft_store_commit(s), -EINTR);
			vft_store_close(s);
			if (full ? crash == 4 : crash >= 2)
				memcpy(img, next, sizeof(*img));
			s = open_ok(dir, RAM);
			check_dir_clean(dir, img->gen);
		} else {
			ck_assert_int_eq(vft_store_commit(s), 0);
			memcpy(img, next, sizeof(*img));
			if (rand() % 5 == 0) {
				vft_store_close(s);
				s = open_ok(dir, RAM);
				check_dir_clean(dir, img->gen);
			}
		}
		check_image(s, dir, img);
	}
	vft_store_close(s);
	free(img);
	free(next);
	remove_temp_dir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vft_store");

	add_tcase(s, test_open_refuses_bad_args, 10);
	add_tcase(s, test_put_before_begin, 10);
	add_tcase(s, test_stage_fds_base, 10);
	add_tcase(s, test_pfn_out_of_range, 10);
	add_tcase(s, test_incr_needs_committed_epoch, 10);
	add_tcase(s, test_devstate_too_big, 10);
	add_tcase(s, test_corrupt_state, 30);
	add_tcase(s, test_bad_redo, 30);
	add_tcase(s, test_leftovers_removed, 10);
	add_tcase(s, test_full_then_incr, 20);
	add_tcase(s, test_crash_full, 20);
	add_tcase(s, test_crash_incr, 20);
	add_tcase(s, test_crash_first_full, 20);
	add_tcase(s, test_disk_refused, 20);
	add_tcase(s, test_disk_commits_and_crashes, 30);
	add_tcase(s, test_disk_release_latest_seed, 20);
	add_tcase(s, test_random, 120);
	return run_suite(s);
}
