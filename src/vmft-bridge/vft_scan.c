#include "config.h"

#include "vft_scan.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <xxhash.h>

/*
 * Design (measured on a 2-core AMD EPYC VM, see bench/bench_vft_scan.c):
 *
 * A scan is two phases over `threads` workers, the calling thread being
 * worker 0 (so threads=1 never hands off):
 *  1. every worker hashes its slice (a contiguous run of whole 64-page
 *     chunks, so each word of the `unknown` bitmap and each cache line of
 *     `hash_of` belongs to one worker: no locking, no false sharing) and
 *     writes the pfns of the changed pages to cand[], starting at its slice's
 *     first page (a slice cannot hold more changed pages than pages, so the
 *     lists never overlap). Worker 0's pages go to offset 0 of the result
 *     anyway, so it copies them at once, from L1, while the staging area has
 *     room;
 *  2. the caller sums the counts, grows the staging area once, compacts the
 *     pfns into the result, and the rest of the copies (every other worker's
 *     pages) are split evenly over all workers, straight into their final
 *     place.
 * Copying in phase 1 into per-worker buffers and concatenating them was the
 * alternative: it writes every changed page twice and reads it once more,
 * where phase 2 only reads it again from RAM.
 */

#define PAGE 4096u
#define CHUNK 64u     /* pages: one word of the unknown bitmap */
#define INIT_CAP 256u /* pages: one vft_scan_copy_range batch */
#define MAX_THREADS 64u
#define SPIN_NS 50000      /* how long a hand-off is awaited before sleeping */
#define MIN_SPLIT_COPY 64u /* fewer deferred copies are not worth a hand-off */

enum scan_op { OP_HASH, OP_COPY, OP_EXIT };

typedef XXH64_hash_t (*hash_fn)(const void *data, size_t len);

/* libxxhash built with its x86 dispatcher (Debian, Ubuntu) exports this: it
 * picks the AVX2 or AVX-512 kernel at run time, 1.5x the bandwidth of the
 * SSE2-only XXH3_64bits on the same CPU (an inlined XXH3_64bits is SSE2
 * too, and no faster). Weak, so a library without it still links; the hash
 * values are the same either way. */
extern XXH64_hash_t XXH3_64bits_dispatch(const void *data, size_t len) __attribute__((weak));

/* One worker's slice and results, on its own cache lines. */
struct worker {
	struct vft_scan *s;
	pthread_t tid;
	uint64_t first, end; /* slice: pages [first, end) */
	uint64_t n_changed;  /* phase 1: changed pages, pfns at cand[first..] */
	uint64_t n_direct;   /* of those, copied already (worker 0 only) */
	uint64_t copy_lo;    /* phase 2: result slots [copy_lo, copy_hi) */
	uint64_t copy_hi;
} __attribute__((aligned(64)));

struct vft_scan {
	const uint8_t *ram;
	uint64_t npages;
	unsigned threads;
	unsigned started; /* worker threads running (threads - 1 once init is done) */
	hash_fn hash;
	uint64_t *hash_of; /* per page: hash of the content last reported */
	uint64_t *unknown; /* bitmap: the page's hash_of means nothing */
	uint64_t *cand;    /* phase 1: changed pfns, per slice */
	uint64_t *pfn;     /* the result's pfns (npages entries, never grows) */
	uint8_t *data;     /* the result's pages, mmap'd: mremap grows it in place */
	uint64_t cap;      /* pages data holds */
	struct worker *w;  /* threads entries; w[0] is the caller */

	pthread_mutex_t mu;
	pthread_cond_t go_cv;   /* gen moved */
	pthread_cond_t done_cv; /* pending reached 0 */
	enum scan_op op;        /* written before gen moves, read after */
	_Atomic uint64_t gen __attribute__((aligned(64)));
	_Atomic unsigned pending __attribute__((aligned(64)));
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline bool test_bit(const uint64_t *map, uint64_t i)
{
	return (map[i / 64] >> (i % 64)) & 1;
}

/* Spins up to SPIN_NS for *v to differ from old: a scan's hand-offs follow
 * each other within microseconds, and sleeping on a condvar costs a futex
 * wake-up, tens of microseconds on a loaded VM. */
static bool spin_while_eq_u64(_Atomic uint64_t *v, uint64_t old)
{
	uint64_t t0 = 0;

	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(v, memory_order_acquire) != old)
			return true;
		cpu_relax();
		if (i % 256 == 0) {
			uint64_t t = mono_ns();

			if (t0 == 0)
				t0 = t;
			else if (t - t0 > SPIN_NS)
				return false;
		}
	}
}

static bool spin_while_nonzero(_Atomic unsigned *v)
{
	uint64_t t0 = 0;

	for (unsigned i = 1;; i++) {
		if (atomic_load_explicit(v, memory_order_acquire) == 0)
			return true;
		cpu_relax();
		if (i % 256 == 0) {
			uint64_t t = mono_ns();

			if (t0 == 0)
				t0 = t;
			else if (t - t0 > SPIN_NS)
				return false;
		}
	}
}

/* Phase 1 on one slice. Worker 0 (direct) copies its changed pages to the
 * result as long as the staging area has room; the others copy in phase 2. */
static void hash_slice(struct vft_scan *s, struct worker *w, bool direct)
{
	const uint8_t *ram = s->ram;
	const hash_fn hash = s->hash;
	uint64_t *hash_of = s->hash_of, *unknown = s->unknown, *cand = s->cand + w->first;
	uint8_t *data = s->data;
	uint64_t room = direct ? s->cap : 0, n = 0, nd = 0;

	for (uint64_t i = w->first; i < w->end; i++) {
		const uint8_t *p = ram + i * PAGE;
		uint64_t h = hash(p, PAGE);

		if (h == hash_of[i] && !test_bit(unknown, i))
			continue;
		hash_of[i] = h;
		unknown[i / 64] &= ~(UINT64_C(1) << (i % 64));
		cand[n] = i;
		if (nd == n && nd < room) {
			memcpy(data + nd * PAGE, p, PAGE);
			nd++;
		}
		n++;
	}
	w->n_changed = n;
	w->n_direct = nd;
}

/* Phase 2: fills result slots [copy_lo, copy_hi) from RAM. */
static void copy_slots(struct vft_scan *s, const struct worker *w)
{
	for (uint64_t i = w->copy_lo; i < w->copy_hi; i++)
		memcpy(s->data + i * PAGE, s->ram + s->pfn[i] * PAGE, PAGE);
}

static void do_op(struct vft_scan *s, struct worker *w, enum scan_op op)
{
	if (op == OP_HASH)
		hash_slice(s, w, w == &s->w[0]);
	else if (op == OP_COPY)
		copy_slots(s, w);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct vft_scan *s = w->s;
	uint64_t seen = 0;

	for (;;) {
		enum scan_op op;

		if (!spin_while_eq_u64(&s->gen, seen)) {
			pthread_mutex_lock(&s->mu);
			while (atomic_load_explicit(&s->gen, memory_order_acquire) == seen)
				pthread_cond_wait(&s->go_cv, &s->mu);
			pthread_mutex_unlock(&s->mu);
		}
		seen = atomic_load_explicit(&s->gen, memory_order_acquire);
		op = s->op;
		if (op == OP_EXIT)
			return NULL;
		do_op(s, w, op);
		/* the caller checks pending under mu before it sleeps, so a
		 * signal sent under mu is never lost */
		if (atomic_fetch_sub_explicit(&s->pending, 1, memory_order_acq_rel) == 1) {
			pthread_mutex_lock(&s->mu);
			pthread_cond_signal(&s->done_cv);
			pthread_mutex_unlock(&s->mu);
		}
	}
}

/* Runs op on every worker, the caller doing worker 0's share, and returns
 * when all are done. */
static void run_op(struct vft_scan *s, enum scan_op op)
{
	if (s->started > 0) {
		pthread_mutex_lock(&s->mu);
		s->op = op;
		atomic_store_explicit(&s->pending, s->started, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
		pthread_cond_broadcast(&s->go_cv);
		pthread_mutex_unlock(&s->mu);
	}
	do_op(s, &s->w[0], op);
	if (s->started > 0 && !spin_while_nonzero(&s->pending)) {
		pthread_mutex_lock(&s->mu);
		while (atomic_load_explicit(&s->pending, memory_order_acquire) != 0)
			pthread_cond_wait(&s->done_cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
	}
}

/* Makes the staging area hold at least need pages, doubling so that steady
 * state does not reallocate. */
static int grow(struct vft_scan *s, uint64_t need)
{
	uint64_t cap = s->cap * 2;
	void *p;

	if (need <= s->cap)
		return 0;
	if (cap < need)
		cap = need;
	if (cap > s->npages)
		cap = s->npages;
	p = mremap(s->data, s->cap * PAGE, cap * PAGE, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return -ENOMEM;
	s->data = p;
	s->cap = cap;
	return 0;
}

static void *alloc_array(uint64_t n)
{
	void *p = NULL;

	if (posix_memalign(&p, 64, n * sizeof(uint64_t)) != 0)
		return NULL;
	return p;
}

void vft_scan_reset(struct vft_scan *s)
{
	if (s != NULL)
		memset(s->unknown, 0xff, (s->npages + 63) / 64 * sizeof(uint64_t));
}

uint64_t vft_scan_npages(const struct vft_scan *s)
{
	return s != NULL ? s->npages : 0;
}

void vft_scan_fini(struct vft_scan *s)
{
	if (s == NULL)
		return;
	if (s->started > 0) {
		pthread_mutex_lock(&s->mu);
		s->op = OP_EXIT;
		atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
		pthread_cond_broadcast(&s->go_cv);
		pthread_mutex_unlock(&s->mu);
		for (unsigned i = 1; i <= s->started; i++)
			pthread_join(s->w[i].tid, NULL);
	}
	pthread_cond_destroy(&s->done_cv);
	pthread_cond_destroy(&s->go_cv);
	pthread_mutex_destroy(&s->mu);
	if (s->data != NULL)
		munmap(s->data, s->cap * PAGE);
	free(s->w);
	free(s->pfn);
	free(s->cand);
	free(s->unknown);
	free(s->hash_of);
	free(s);
}

/* Starts workers 1..threads-1 with every signal blocked: signals are the
 * business of the daemon's own threads. */
static int start_workers(struct vft_scan *s)
{
	sigset_t all, old;
	int rc = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 1; i < s->threads; i++) {
		rc = pthread_create(&s->w[i].tid, NULL, worker_main, &s->w[i]);
		if (rc != 0)
			break;
		s->started = i;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (unsigned i = 1; i <= s->started; i++) {
		char name[16];

		snprintf(name, sizeof(name), "vft-scan/%u", i);
		pthread_setname_np(s->w[i].tid, name);
	}
	return rc == 0 ? 0 : -rc;
}

int vft_scan_init(struct vft_scan **out, const void *ram, uint64_t size, unsigned threads)
{
	struct vft_scan *s;
	uint64_t nchunks;
	int rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (ram == NULL || size == 0 || size % PAGE != 0 || threads == 0 || threads > MAX_THREADS)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	s->ram = ram;
	s->npages = size / PAGE;
	s->threads = threads;
	s->hash = XXH3_64bits_dispatch != NULL ? XXH3_64bits_dispatch : XXH3_64bits;
	if (pthread_mutex_init(&s->mu, NULL) != 0) {
		free(s);
		return -ENOMEM;
	}
	if (pthread_cond_init(&s->go_cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -ENOMEM;
	}
	if (pthread_cond_init(&s->done_cv, NULL) != 0) {
		pthread_cond_destroy(&s->go_cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return -ENOMEM;
	}
	s->hash_of = alloc_array(s->npages);
	s->unknown = alloc_array((s->npages + 63) / 64);
	s->cand = alloc_array(s->npages);
	s->pfn = alloc_array(s->npages);
	s->w = aligned_alloc(64, threads * sizeof(*s->w));
	s->cap = s->npages < INIT_CAP ? s->npages : INIT_CAP;
	s->data = mmap(NULL, s->cap * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
	               0);
	if (s->data == MAP_FAILED)
		s->data = NULL;
	if (s->hash_of == NULL || s->unknown == NULL || s->cand == NULL || s->pfn == NULL ||
	    s->w == NULL || s->data == NULL) {
		vft_scan_fini(s);
		return -ENOMEM;
	}
	memset(s->hash_of, 0, s->npages * sizeof(uint64_t));
	vft_scan_reset(s);
	memset(s->w, 0, threads * sizeof(*s->w));
	nchunks = (s->npages + CHUNK - 1) / CHUNK;
	for (unsigned i = 0; i < threads; i++) {
		uint64_t first = nchunks * i / threads * CHUNK,
		         end = nchunks * (i + 1) / threads * CHUNK;

		s->w[i].s = s;
		s->w[i].first = first < s->npages ? first : s->npages;
		s->w[i].end = end < s->npages ? end : s->npages;
	}
	/* the dispatcher picks its kernel on the first call: here, not racing
	 * in the workers */
	s->hash(s->data, PAGE);
	rc = start_workers(s);
	if (rc < 0) {
		vft_scan_fini(s);
		return rc;
	}
	*out = s;
	return 0;
}

int vft_scan_run(struct vft_scan *s, struct vft_scan_result *res)
{
	uint64_t t0 = mono_ns(), total = 0, off = 0, direct, deferred;
	unsigned n;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (s == NULL || res == NULL)
		return -EINVAL;
	n = s->threads;
	run_op(s, OP_HASH);
	for (unsigned i = 0; i < n; i++)
		total += s->w[i].n_changed;
	if (grow(s, total) < 0) {
		/* the hashes are already those of pages nobody got: forget them
		 * so that the next scan reports these pages again */
		for (unsigned i = 0; i < n; i++)
			for (uint64_t j = 0; j < s->w[i].n_changed; j++) {
				uint64_t p = s->cand[s->w[i].first + j];

				s->unknown[p / 64] |= UINT64_C(1) << (p % 64);
			}
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; off += s->w[i].n_changed, i++)
		memcpy(s->pfn + off, s->cand + s->w[i].first, s->w[i].n_changed * sizeof(uint64_t));
	direct = s->w[0].n_direct;
	deferred = total - direct;
	if (deferred >= MIN_SPLIT_COPY && s->started > 0) {
		for (unsigned i = 0; i < n; i++) {
			s->w[i].copy_lo = direct + deferred * i / n;
			s->w[i].copy_hi = direct + deferred * (i + 1) / n;
		}
		run_op(s, OP_COPY);
	} else {
		s->w[0].copy_lo = direct;
		s->w[0].copy_hi = total;
		copy_slots(s, &s->w[0]);
	}
	res->n_pages = total;
	res->pfn = s->pfn;
	res->data = s->data;
	res->scan_ns = mono_ns() - t0;
	return 0;
}

int vft_scan_copy_range(struct vft_scan *s, uint64_t first, uint64_t count,
                        struct vft_scan_result *res)
{
	uint64_t t0 = mono_ns();

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (s == NULL || res == NULL || first > s->npages || count > s->npages - first)
		return -EINVAL;
	if (grow(s, count) < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t p = first + i;
		uint8_t *dst = s->data + i * PAGE;

		memcpy(dst, s->ram + p * PAGE, PAGE);
		/* the copy is what the backup gets: RAM may already differ */
		s->hash_of[p] = s->hash(dst, PAGE);
		s->unknown[p / 64] &= ~(UINT64_C(1) << (p % 64));
		s->pfn[i] = p;
	}
	res->n_pages = count;
	res->pfn = s->pfn;
	res->data = s->data;
	res->scan_ns = mono_ns() - t0;
	return 0;
}
