/*
 * Benchmark of the vmft page scan (src/vmft-bridge/vft_scan.c): the guest's
 * pause per epoch is dominated by one vft_scan_run over all of its RAM.
 *
 *   bench_vft_scan [--mib 256] [--threads 2] [--runs 50] [--dirty-pages K] [--anon]
 *
 * RAM is a /dev/shm file mapped MAP_SHARED, as QEMU's memory backend is
 * (--anon: anonymous memory). Every run dirties K random pages (fewer
 * distinct ones when K is large) and times one scan. Prints "key value"
 * lines, then a one-line summary. For comparison: the bandwidth of one thread
 * hashing RAM with XXH3 (the SSE2 build and, when the library has it, the
 * run-time dispatched one), and of memcmp against a shadow copy (the
 * alternative to hashing, at twice the memory traffic and RAM size). Last,
 * what the thread hand-offs cost: a tiny scan with and without workers, and
 * the wake-up latency of a condvar waiter, asleep or spinning.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "vft_scan.h"

#define PAGE 4096u

extern XXH64_hash_t XXH3_64bits_dispatch(const void *data, size_t len) __attribute__((weak));

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The q-quantile of n sorted values (nearest rank). */
static uint64_t quantile(const uint64_t *v, size_t n, double q)
{
	size_t i = (size_t)(q * (double)n + 0.999999);

	return v[i == 0 ? 0 : (i > n ? n : i) - 1];
}

static uint8_t *map_ram(size_t size, int anon)
{
	char path[64];
	void *p;
	int fd;

	if (anon) {
		p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	snprintf(path, sizeof(path), "/dev/shm/bench_vft_scan.%ld", (long)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return NULL;
	unlink(path);
	if (ftruncate(fd, (off_t)size) < 0) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

/* Best of 3 passes of one thread hashing every page of ram: GB/s. */
static double hash_bw(XXH64_hash_t (*fn)(const void *, size_t), const uint8_t *ram, size_t size)
{
	uint64_t best = UINT64_MAX, acc = 0;

	for (int r = 0; r < 3; r++) {
		uint64_t t0 = mono_ns(), t;

		for (size_t off = 0; off < size; off += PAGE)
			acc += fn(ram + off, PAGE);
		t = mono_ns() - t0;
		if (t < best)
			best = t;
	}
	__asm__ __volatile__("" : : "r"(acc));
	return (double)size / (double)best;
}

/* Best of 3 passes of one thread comparing every page with a shadow copy. */
static double memcmp_bw(const uint8_t *ram, const uint8_t *shadow, size_t size)
{
	uint64_t best = UINT64_MAX, diff = 0;

	for (int r = 0; r < 3; r++) {
		uint64_t t0 = mono_ns(), t;

		for (size_t off = 0; off < size; off += PAGE)
			diff += memcmp(ram + off, shadow + off, PAGE) != 0;
		t = mono_ns() - t0;
		if (t < best)
			best = t;
	}
	__asm__ __volatile__("" : : "r"(diff));
	return (double)size / (double)best;
}

/* Median scan time (us) of a 512 KiB RAM (~20 us of hashing), which the
 * calling thread scans alone before a worker can join: compared with one
 * thread, the cost of the hand-offs to the scan. idle_us > 0 sleeps before
 * each scan so that the workers are asleep on their condvar (the state they
 * are in at the start of an epoch). */
static double tiny_scan_us(const uint8_t *ram, unsigned threads, unsigned idle_us)
{
	struct vft_scan *s;
	struct vft_scan_result r;
	uint64_t t[200];

	if (vft_scan_init(&s, ram, 128 * PAGE, threads) != 0)
		return -1;
	vft_scan_run(s, &r);
	for (int i = 0; i < 200; i++) {
		if (idle_us)
			usleep(idle_us);
		vft_scan_run(s, &r);
		t[i] = r.scan_ns;
	}
	vft_scan_fini(s);
	qsort(t, 200, sizeof(t[0]), cmp_u64);
	return (double)quantile(t, 200, 0.5) / 1e3;
}

/* The latency of the hand-off primitive itself: the time from a condvar
 * broadcast (mutex + generation counter, as vft_scan does) to the waiter
 * running, with the waiter asleep (spin = 0) or spinning on the counter. */
struct wake {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic uint64_t gen;
	_Atomic uint64_t woke_ns;
	int spin;
};

static void *wake_waiter(void *arg)
{
	struct wake *w = arg;
	uint64_t seen = 0;

	for (;;) {
		if (w->spin) {
			while (atomic_load(&w->gen) == seen)
				;
		} else {
			pthread_mutex_lock(&w->mu);
			while (atomic_load(&w->gen) == seen)
				pthread_cond_wait(&w->cv, &w->mu);
			pthread_mutex_unlock(&w->mu);
		}
		atomic_store(&w->woke_ns, mono_ns());
		seen = atomic_load(&w->gen);
		if (seen == UINT64_MAX)
			return NULL;
	}
}

static double wake_us(int spin)
{
	struct wake w = {.spin = spin};
	pthread_t tid;
	uint64_t t[100];

	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	if (pthread_create(&tid, NULL, wake_waiter, &w) != 0)
		return -1;
	for (int i = 0; i < 100; i++) {
		uint64_t t0;

		usleep(1000);
		atomic_store(&w.woke_ns, 0);
		pthread_mutex_lock(&w.mu);
		t0 = mono_ns();
		atomic_store(&w.gen, i == 99 ? UINT64_MAX : (uint64_t)i + 1);
		pthread_cond_broadcast(&w.cv);
		pthread_mutex_unlock(&w.mu);
		while (atomic_load(&w.woke_ns) == 0)
			;
		t[i] = atomic_load(&w.woke_ns) - t0;
	}
	pthread_join(tid, NULL);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	qsort(t, 100, sizeof(t[0]), cmp_u64);
	return (double)quantile(t, 100, 0.5) / 1e3;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_vft_scan [--mib N] [--threads N] [--runs N] "
	                "[--dirty-pages K] [--anon]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"mib", required_argument, NULL, 'm'},
	                                     {"threads", required_argument, NULL, 't'},
	                                     {"runs", required_argument, NULL, 'r'},
	                                     {"dirty-pages", required_argument, NULL, 'd'},
	                                     {"anon", no_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	unsigned long mib = 256, threads = 2, runs = 50, dirty = 0;
	int anon = 0, c, rc;
	uint64_t seed = 0x9e3779b97f4a7c15u, npages, *t, *changed, first_ns, fix = 0;
	size_t size;
	uint8_t *ram, *shadow, *mark;
	struct vft_scan *s;
	struct vft_scan_result res;
	double med_ms, p99_ms, bw, sse2_bw, disp_bw = 0, cmp_bw;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			mib = strtoul(optarg, NULL, 10);
			break;
		case 't':
			threads = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			runs = strtoul(optarg, NULL, 10);
			break;
		case 'd':
			dirty = strtoul(optarg, NULL, 10);
			break;
		case 'a':
			anon = 1;
			break;
		default:
			usage();
		}
	}
	if (mib == 0 || runs == 0 || optind != argc)
		usage();
	size = (size_t)mib << 20;
	npages = size / PAGE;
	ram = map_ram(size, anon);
	t = calloc(runs, sizeof(*t));
	changed = calloc(runs, sizeof(*changed));
	mark = calloc(npages, 1);
	if (ram == NULL || t == NULL || changed == NULL || mark == NULL) {
		fprintf(stderr, "bench_vft_scan: out of memory\n");
		return 1;
	}
	/* every page different, as a guest's pages mostly are */
	for (size_t off = 0; off < size; off += 8)
		*(uint64_t *)(ram + off) = rnd(&seed);

	rc = vft_scan_init(&s, ram, size, (unsigned)threads);
	if (rc < 0) {
		fprintf(stderr, "bench_vft_scan: vft_scan_init: %s\n", strerror(-rc));
		return 1;
	}
	rc = vft_scan_run(s, &res);
	if (rc < 0 || res.n_pages != npages) {
		fprintf(stderr, "bench_vft_scan: first scan: %s\n", rc < 0 ? strerror(-rc) : "");
		return 1;
	}
	first_ns = res.scan_ns;
	for (unsigned long r = 0; r < runs; r++) {
		uint64_t distinct = 0;

		memset(mark, 0, npages);
		for (unsigned long k = 0; k < dirty; k++) {
			uint64_t p = rnd(&seed) % npages;

			((uint64_t *)(ram + p * PAGE))[rnd(&seed) % (PAGE / 8)] ^= ++fix;
			distinct += !mark[p];
			mark[p] = 1;
		}
		rc = vft_scan_run(s, &res);
		if (rc < 0) {
			fprintf(stderr, "bench_vft_scan: scan: %s\n", strerror(-rc));
			return 1;
		}
		if (res.n_pages != distinct)
			fprintf(stderr, "bench_vft_scan: run %lu: %llu pages found, %llu dirtied\n",
			        r, (unsigned long long)res.n_pages, (unsigned long long)distinct);
		t[r] = res.scan_ns;
		changed[r] = res.n_pages;
	}
	vft_scan_fini(s);
	qsort(t, runs, sizeof(*t), cmp_u64);
	qsort(changed, runs, sizeof(*changed), cmp_u64);
	med_ms = (double)quantile(t, runs, 0.5) / 1e6;
	p99_ms = (double)quantile(t, runs, 0.99) / 1e6;
	bw = (double)size / (med_ms * 1e6);

	sse2_bw = hash_bw(XXH3_64bits, ram, size);
	if (XXH3_64bits_dispatch != NULL)
		disp_bw = hash_bw(XXH3_64bits_dispatch, ram, size);
	shadow = map_ram(size, 1);
	if (shadow == NULL) {
		fprintf(stderr, "bench_vft_scan: no memory for the shadow copy\n");
		return 1;
	}
	memcpy(shadow, ram, size);
	cmp_bw = memcmp_bw(ram, shadow, size);
	munmap(shadow, size);

	printf("ram_mib %lu\n", mib);
	printf("ram_kind %s\n", anon ? "anonymous" : "shm-file");
	printf("threads %lu\n", threads);
	printf("runs %lu\n", runs);
	printf("dirty_pages %lu\n", dirty);
	printf("changed_pages_median %llu\n", (unsigned long long)quantile(changed, runs, 0.5));
	printf("first_scan_ms %.2f\n", (double)first_ns / 1e6);
	printf("scan_min_ms %.2f\n", (double)t[0] / 1e6);
	printf("scan_median_ms %.2f\n", med_ms);
	printf("scan_p99_ms %.2f\n", p99_ms);
	printf("scan_gbps %.2f\n", bw);
	printf("xxh3_sse2_1t_gbps %.2f\n", sse2_bw);
	if (disp_bw > 0)
		printf("xxh3_dispatch_1t_gbps %.2f\n", disp_bw);
	printf("memcmp_shadow_1t_gbps %.2f\n", cmp_bw);
	printf("tiny_scan_1t_us %.1f\n", tiny_scan_us(ram, 1, 0));
	printf("tiny_scan_us %.1f\n", tiny_scan_us(ram, (unsigned)threads, 0));
	printf("tiny_scan_idle_us %.1f\n", tiny_scan_us(ram, (unsigned)threads, 2000));
	printf("wake_sleeping_us %.1f\n", wake_us(0));
	printf("wake_spinning_us %.1f\n", wake_us(1));
	printf("summary: %lu MiB, %lu thread(s), %lu dirty pages: scan median %.2f ms, p99 %.2f ms "
	       "(%.2f GB/s); 1-thread XXH3 %.2f GB/s, memcmp vs shadow %.2f GB/s\n",
	       mib, threads, dirty, med_ms, p99_ms, bw, disp_bw > 0 ? disp_bw : sse2_bw, cmp_bw);
	munmap(ram, size);
	free(t);
	free(changed);
	free(mark);
	return 0;
}
