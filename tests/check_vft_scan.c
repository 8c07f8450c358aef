/*
 * src/vmft-bridge/vft_scan: the page scanner of the primary's epochs. What
 * must be refused comes first, then what a scan reports (every page at first
 * and after a reset, nothing when nothing changed, exactly the changed pages
 * in order with their content), for thread counts that do not divide the
 * page count, the live copy of a full sync, staging that cannot grow, and
 * a random run against a naive model (a shadow copy of what was reported).
 * The "guest RAM" is a small MAP_SHARED mapping so that valgrind stays fast.
 */
#include "config.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "check_util.h"
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include "vft_scan.h"

#define PG 4096u

static uint64_t rnd_state = 0x243f6a8885a308d3u;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/* A shared mapping of npages pages (at least one) of random content. */
static uint8_t *ram_new(uint64_t npages)
{
	size_t size = (npages ? npages : 1) * PG;
	uint8_t *ram = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(ram, MAP_FAILED);
	for (size_t i = 0; i < size / 8; i++)
		((uint64_t *)ram)[i] = rnd();
	return ram;
}

static void ram_free(uint8_t *ram, uint64_t npages)
{
	munmap(ram, (npages ? npages : 1) * PG);
}

/* Checks that res holds exactly pfns want[0..n) in order, with their
 * content in ram. */
static void assert_result(const struct vft_scan_result *res, const uint8_t *ram,
                          const uint64_t *want, uint64_t n)
{
	ck_assert_uint_eq(res->n_pages, n);
	if (n == 0)
		return;
	ck_assert_ptr_nonnull(res->pfn);
	ck_assert_ptr_nonnull(res->data);
	for (uint64_t i = 0; i < n; i++) {
		ck_assert_uint_eq(res->pfn[i], want[i]);
		ck_assert_msg(memcmp(res->data + i * PG, ram + want[i] * PG, PG) == 0,
		              "page %llu (pfn %llu): data differs from RAM", (unsigned long long)i,
		              (unsigned long long)want[i]);
	}
}

/* Checks that res holds every page of ram, in order. */
static void assert_all(const struct vft_scan_result *res, const uint8_t *ram, uint64_t npages)
{
	ck_assert_uint_eq(res->n_pages, npages);
	for (uint64_t i = 0; i < npages; i++)
		ck_assert_uint_eq(res->pfn[i], i);
	ck_assert(memcmp(res->data, ram, npages * PG) == 0);
}

static void scan_ok(struct vft_scan *s, struct vft_scan_result *res)
{
	ck_assert_int_eq(vft_scan_run(s, res), 0);
}

START_TEST(test_init_rejects)
{
	uint8_t *ram = ram_new(4);
	struct vft_scan *s = (struct vft_scan *)&s;

	ck_assert_int_eq(vft_scan_init(NULL, ram, 4 * PG, 1), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, NULL, 4 * PG, 1), -EINVAL);
	ck_assert_ptr_null(s);
	ck_assert_int_eq(vft_scan_init(&s, ram, 0, 1), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, 4 * PG - 1, 1), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, 4 * PG + 1, 1), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, 100, 1), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, 4 * PG, 0), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, 4 * PG, 65), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, 4 * PG, 1000), -EINVAL);
	ck_assert_ptr_null(s);
	/* the bounds themselves are valid */
	ck_assert_int_eq(vft_scan_init(&s, ram, PG, 64), 0);
	ck_assert_uint_eq(vft_scan_npages(s), 1);
	vft_scan_fini(s);
	ram_free(ram, 4);
}
END_TEST

START_TEST(test_calls_reject)
{
	uint8_t *ram = ram_new(8);
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_int_eq(vft_scan_init(&s, ram, 8 * PG, 2), 0);
	ck_assert_int_eq(vft_scan_run(NULL, &res), -EINVAL);
	ck_assert_int_eq(vft_scan_run(s, NULL), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(NULL, 0, 1, &res), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(s, 0, 1, NULL), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(s, 9, 0, &res), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(s, 0, 9, &res), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(s, 7, 2, &res), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(s, 1, UINT64_MAX, &res), -EINVAL);
	ck_assert_int_eq(vft_scan_copy_range(s, UINT64_MAX, 2, &res), -EINVAL);
	{
		uint64_t base[8] = {0};

		ck_assert_int_eq(vft_scan_copy_range_diff(NULL, 0, 1, base, &res), -EINVAL);
		ck_assert_int_eq(vft_scan_copy_range_diff(s, 0, 1, base, NULL), -EINVAL);
		ck_assert_int_eq(vft_scan_copy_range_diff(s, 7, 2, base, &res), -EINVAL);
		ck_assert_int_eq(vft_scan_copy_range_diff(s, UINT64_MAX, 2, base, &res), -EINVAL);
	}
	ck_assert_uint_eq(res.n_pages, 0);
	/* refused calls changed nothing: the first scan still sees everything */
	scan_ok(s, &res);
	assert_all(&res, ram, 8);
	/* an empty range at either end is fine */
	ck_assert_int_eq(vft_scan_copy_range(s, 8, 0, &res), 0);
	ck_assert_uint_eq(res.n_pages, 0);
	ck_assert_int_eq(vft_scan_copy_range(s, 0, 0, &res), 0);
	ck_assert_uint_eq(res.n_pages, 0);
	ck_assert_uint_eq(vft_scan_npages(NULL), 0);
	vft_scan_reset(NULL);
	vft_scan_fini(NULL);
	vft_scan_fini(s);
	ram_free(ram, 8);
}
END_TEST

START_TEST(test_first_then_nothing)
{
	const uint64_t n = 300; /* more than the initial staging */
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 2), 0);
	ck_assert_uint_eq(vft_scan_npages(s), n);
	scan_ok(s, &res);
	assert_all(&res, ram, n);
	ck_assert_uint_gt(res.scan_ns, 0);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

/* Pages of identical content (all zero, the common case in a guest) are
 * still each reported once, then never again. */
START_TEST(test_zero_pages)
{
	const uint64_t n = 70;
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;

	memset(ram, 0, n * PG);
	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 3), 0);
	scan_ok(s, &res);
	assert_all(&res, ram, n);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

START_TEST(test_changed_pages_in_order)
{
	const uint64_t n = 200;
	const uint64_t want[] = {0, 77, n - 1};
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 2), 0);
	scan_ok(s, &res);
	/* one byte each: the first byte of page 0, the last of the last page,
	 * one in the middle of page 77 (written in reverse order) */
	ram[n * PG - 1] ^= 1;
	ram[77 * PG + 1234] ^= 0x80;
	ram[0] ^= 0xff;
	scan_ok(s, &res);
	assert_result(&res, ram, want, 3);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	/* a change undone before the scan is no change */
	ram[5 * PG] ^= 1;
	ram[5 * PG] ^= 1;
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

/* Every thread count with page counts that do not divide, fewer pages than
 * threads, slices of unequal length: the changed pages of every slice
 * border and every slice must come out once, in order. */
START_TEST(test_thread_counts)
{
	static const unsigned threads[] = {1, 2, 3, 7};
	static const uint64_t pages[] = {1, 2, 5, 63, 64, 65, 129, 191, 449};

	for (size_t ti = 0; ti < sizeof(threads) / sizeof(threads[0]); ti++) {
		for (size_t pi = 0; pi < sizeof(pages) / sizeof(pages[0]); pi++) {
			uint64_t n = pages[pi], want[449], nw = 0;
			uint8_t *ram = ram_new(n);
			struct vft_scan *s;
			struct vft_scan_result res;

			ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, threads[ti]), 0);
			scan_ok(s, &res);
			assert_all(&res, ram, n);
			/* every 3rd page, and the pages around 64-page chunks */
			for (uint64_t p = 0; p < n; p++) {
				if (p % 3 == 1 || p % 64 == 0 || p % 64 == 63) {
					ram[p * PG + (p * 37) % PG]++;
					want[nw++] = p;
				}
			}
			scan_ok(s, &res);
			assert_result(&res, ram, want, nw);
			scan_ok(s, &res);
			ck_assert_uint_eq(res.n_pages, 0);
			/* all of them */
			for (uint64_t p = 0; p < n; p++)
				ram[p * PG + 100]++;
			scan_ok(s, &res);
			assert_all(&res, ram, n);
			vft_scan_fini(s);
			ram_free(ram, n);
		}
	}
}
END_TEST

START_TEST(test_copy_range)
{
	const uint64_t n = 600, batch = 256;
	const uint64_t want[] = {3, 256, 599};
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 2), 0);
	/* a full sync, as the engine does it */
	for (uint64_t first = 0; first < n; first += batch) {
		uint64_t cnt = n - first < batch ? n - first : batch, pfns[256];

		ck_assert_int_eq(vft_scan_copy_range(s, first, cnt, &res), 0);
		for (uint64_t i = 0; i < cnt; i++)
			pfns[i] = first + i;
		assert_result(&res, ram, pfns, cnt);
	}
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	ram[3 * PG + 17]++;
	ram[256 * PG]++;
	ram[599 * PG + PG - 1]++;
	scan_ok(s, &res);
	assert_result(&res, ram, want, 3);

	/* a page changed after its live copy is reported by the next scan,
	 * the others of the range are not */
	ck_assert_int_eq(vft_scan_copy_range(s, 10, 20, &res), 0);
	ck_assert_uint_eq(res.n_pages, 20);
	ram[12 * PG + 5] ^= 0x55;
	scan_ok(s, &res);
	{
		const uint64_t w12[] = {12};

		assert_result(&res, ram, w12, 1);
	}
	/* one big range: more pages than the staging held so far */
	ck_assert_int_eq(vft_scan_copy_range(s, 0, n, &res), 0);
	assert_all(&res, ram, n);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

/* A live copy against a template: only pages whose hash differs from the
 * base are reported, and the next scan reports only what changed after. */
START_TEST(test_copy_range_diff)
{
	const uint64_t n = 300;
	uint8_t *ram = ram_new(n);
	uint64_t *base = calloc(n, sizeof(uint64_t)), differ[300], nd = 0, seen = 0;
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_ptr_nonnull(base);
	for (uint64_t p = 0; p < n; p++) {
		base[p] = XXH3_64bits(ram + p * PG, PG);
		if (p % 7 == 3 || p == n - 1) {
			base[p] ^= 1; /* the template held something else there */
			differ[nd++] = p;
		}
	}
	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 2), 0);
	for (uint64_t first = 0; first < n; first += 256) {
		uint64_t cnt = n - first < 256 ? n - first : 256;

		ck_assert_int_eq(vft_scan_copy_range_diff(s, first, cnt, base, &res), 0);
		for (uint64_t i = 0; i < res.n_pages; i++) {
			ck_assert_uint_eq(res.pfn[i], differ[seen + i]);
			ck_assert_int_eq(memcmp(res.data + i * PG, ram + res.pfn[i] * PG, PG), 0);
		}
		seen += res.n_pages;
	}
	ck_assert_uint_eq(seen, nd);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	ram[5 * PG + 1]++;
	scan_ok(s, &res);
	{
		const uint64_t w5[] = {5};

		assert_result(&res, ram, w5, 1);
	}
	/* NULL base: every page */
	ck_assert_int_eq(vft_scan_copy_range_diff(s, 0, 10, NULL, &res), 0);
	ck_assert_uint_eq(res.n_pages, 10);
	vft_scan_fini(s);
	free(base);
	ram_free(ram, n);
}
END_TEST

/* Two result buffers: the result before a flip survives the next scan. */
START_TEST(test_flip_keeps_result)
{
	const uint64_t n = 64;
	uint8_t *ram = ram_new(n), keep[PG];
	struct vft_scan *s;
	struct vft_scan_result a, b;

	ck_assert_int_eq(vft_scan_flip(NULL), -EINVAL);
	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 2), 0);
	scan_ok(s, &a);
	ck_assert_uint_eq(a.n_pages, n);
	ram[7 * PG] ^= 0xff;
	ram[9 * PG] ^= 0xff;
	scan_ok(s, &a); /* pages 7 and 9 */
	ck_assert_uint_eq(a.n_pages, 2);
	memcpy(keep, a.data, PG);
	ck_assert_int_eq(vft_scan_flip(s), 0);
	ram[7 * PG] ^= 0x0f;
	ram[30 * PG] ^= 0x0f;
	scan_ok(s, &b);
	ck_assert_uint_eq(b.n_pages, 2);
	ck_assert_ptr_ne(b.data, a.data);
	/* a is intact: what was staged before the flip */
	ck_assert_uint_eq(a.pfn[0], 7);
	ck_assert_uint_eq(a.pfn[1], 9);
	ck_assert_int_eq(memcmp(a.data, keep, PG), 0);
	ck_assert_uint_eq(b.pfn[0], 7);
	ck_assert_uint_eq(b.pfn[1], 30);
	/* flipping back reuses the first buffer */
	ck_assert_int_eq(vft_scan_flip(s), 0);
	ram[1 * PG] ^= 1;
	scan_ok(s, &a);
	ck_assert_uint_eq(a.n_pages, 1);
	ck_assert_int_eq(memcmp(a.data, ram + PG, PG), 0);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

/* The copy's hash is remembered, not RAM's: a page copied, then changed,
 * then copied again is not reported; a page whose copy came from an older
 * content than RAM's now is. */
START_TEST(test_copy_range_remembers_copy)
{
	const uint64_t n = 130;
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;
	const uint64_t w[] = {64};

	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 3), 0);
	ck_assert_int_eq(vft_scan_copy_range(s, 0, n, &res), 0);
	ram[64 * PG]++;
	ram[65 * PG]++;
	ck_assert_int_eq(vft_scan_copy_range(s, 65, 1, &res), 0);
	ck_assert_uint_eq(res.pfn[0], 65);
	ck_assert(memcmp(res.data, ram + 65 * PG, PG) == 0);
	scan_ok(s, &res);
	assert_result(&res, ram, w, 1);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

START_TEST(test_reset)
{
	const uint64_t n = 100;
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 7), 0);
	scan_ok(s, &res);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	vft_scan_reset(s);
	scan_ok(s, &res);
	assert_all(&res, ram, n);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	/* a reset after a live copy forgets the copy too */
	ck_assert_int_eq(vft_scan_copy_range(s, 0, 10, &res), 0);
	vft_scan_reset(s);
	scan_ok(s, &res);
	assert_all(&res, ram, n);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

/* Address space for a limit: what the process maps now. */
static rlim_t mapped_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long pages = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	return (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
}

/* Staging that cannot grow: -ENOMEM, and the pages of that scan are not
 * lost: the next scan that can grow reports them. */
START_TEST(test_enomem)
{
	const uint64_t n = 4096; /* 16 MiB: 15 MiB more than the initial staging */
	uint8_t *ram = ram_new(n);
	struct vft_scan *s;
	struct vft_scan_result res;
	struct rlimit old, lim;
	void *probe;
	int rc_scan, rc_copy;

#ifdef __SANITIZE_THREAD__
	/* TSan's runtime allocates as threads run: the limit would kill it */
	ram_free(ram, n);
	return;
#endif
	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, 2), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
	lim = old;
	lim.rlim_cur = mapped_bytes() + (2u << 20);
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
	/* valgrind does not apply the limit to its client's mappings */
	probe = mmap(NULL, 8u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rc_scan = vft_scan_run(s, &res);
	rc_copy = vft_scan_copy_range(s, 0, n, &res);
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
	if (probe == MAP_FAILED) {
		ck_assert_int_eq(rc_scan, -ENOMEM);
		ck_assert_int_eq(rc_copy, -ENOMEM);
		ck_assert_uint_eq(res.n_pages, 0);
	} else {
		munmap(probe, 8u << 20);
		vft_scan_reset(s);
	}
	scan_ok(s, &res);
	assert_all(&res, ram, n);
	scan_ok(s, &res);
	ck_assert_uint_eq(res.n_pages, 0);
	vft_scan_fini(s);
	ram_free(ram, n);
}
END_TEST

/* The model: shadow holds what was last reported (or live-copied) of each
 * page, known whether it holds anything. A scan must report exactly the
 * pages not known or differing from their shadow. */
static void model_run(unsigned threads, uint64_t n, int rounds)
{
	uint8_t *ram = ram_new(n), *shadow = calloc(n, PG), *known = calloc(n, 1);
	uint64_t *want = calloc(n, sizeof(uint64_t));
	struct vft_scan *s;
	struct vft_scan_result res;

	ck_assert_ptr_nonnull(shadow);
	ck_assert_ptr_nonnull(known);
	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(vft_scan_init(&s, ram, n * PG, threads), 0);
	for (int r = 0; r < rounds; r++) {
		uint64_t nw = 0, op = rnd() % 16;

		if (op == 0) {
			vft_scan_reset(s);
			memset(known, 0, n);
		} else if (op <= 3) {
			uint64_t first = rnd() % (n + 1), cnt = rnd() % (n - first + 1);

			ck_assert_int_eq(vft_scan_copy_range(s, first, cnt, &res), 0);
			ck_assert_uint_eq(res.n_pages, cnt);
			for (uint64_t i = 0; i < cnt; i++) {
				ck_assert_uint_eq(res.pfn[i], first + i);
				memcpy(shadow + (first + i) * PG, res.data + i * PG, PG);
				known[first + i] = 1;
			}
			ck_assert(memcmp(shadow + first * PG, ram + first * PG, cnt * PG) == 0);
		}
		/* writes: few, many (bursts that make staging grow), or
		 * writes undone (the page's content comes back) */
		switch (rnd() % 4) {
		case 0:
			break;
		case 1:
			for (uint64_t k = rnd() % 8; k > 0; k--)
				ram[rnd() % (n * PG)]++;
			break;
		case 2:
			for (uint64_t k = rnd() % n; k > 0; k--)
				((uint64_t *)ram)[rnd() % (n * PG / 8)] = rnd();
			break;
		default: {
			uint64_t p = rnd() % n;

			ram[p * PG + 9] ^= 0x10;
			ram[p * PG + 9] ^= 0x10;
			break;
		}
		}
		for (uint64_t p = 0; p < n; p++)
			if (!known[p] || memcmp(shadow + p * PG, ram + p * PG, PG) != 0)
				want[nw++] = p;
		scan_ok(s, &res);
		assert_result(&res, ram, want, nw);
		for (uint64_t i = 0; i < nw; i++) {
			memcpy(shadow + want[i] * PG, ram + want[i] * PG, PG);
			known[want[i]] = 1;
		}
	}
	vft_scan_fini(s);
	free(want);
	free(known);
	free(shadow);
	ram_free(ram, n);
}

START_TEST(test_model_random)
{
	model_run(3, 333, 100);
}
END_TEST

START_TEST(test_model_random_2threads)
{
	model_run(2, 200, 100);
}
END_TEST

/* Enough RAM for a scan to outlast the workers' wake-up: they claim chunks
 * and stage pages, which are then moved into the result. */
START_TEST(test_model_random_big)
{
	model_run(3, 2600, 12);
}
END_TEST

START_TEST(test_model_random_1thread)
{
	model_run(1, 150, 50);
}
END_TEST

static Suite *scan_suite(void)
{
	Suite *s = suite_create("vft_scan");

	add_tcase(s, test_init_rejects, 10);
	add_tcase(s, test_calls_reject, 10);
	add_tcase(s, test_first_then_nothing, 10);
	add_tcase(s, test_zero_pages, 10);
	add_tcase(s, test_changed_pages_in_order, 10);
	add_tcase(s, test_thread_counts, 60);
	add_tcase(s, test_copy_range, 30);
	add_tcase(s, test_copy_range_remembers_copy, 10);
	add_tcase(s, test_copy_range_diff, 10);
	add_tcase(s, test_flip_keeps_result, 10);
	add_tcase(s, test_reset, 10);
	add_tcase(s, test_enomem, 30);
	add_tcase(s, test_model_random, 60);
	add_tcase(s, test_model_random_2threads, 60);
	add_tcase(s, test_model_random_1thread, 60);
	add_tcase(s, test_model_random_big, 60);
	return s;
}

int main(void)
{
	return run_suite(scan_suite());
}
