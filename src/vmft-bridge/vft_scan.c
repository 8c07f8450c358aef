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
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * How a scan runs (numbers: bench/bench_vft_scan.c on a 2-vCPU EPYC VM).
 *
 * RAM is cut into chunks of CHUNK pages. The calling thread (worker 0, so
 * threads=1 never hands off) claims chunks from the front, the worker threads
 * claim them from the back, until they meet: who is late (a worker waking
 * up, 10 to 150 us on the VM, or a thread the kernel preempts) does less,
 * instead of every thread waiting for the slowest of fixed slices (with
 * fixed slices, 2 threads were 10-25% slower on the loaded VM). Worker 0
 * never waits for a worker that has not started: see check_in().
 *
 * A changed page is copied right after it is hashed, while it is in L1 and
 * its TLB entry is hot: reading it again later, after the scan moved on,
 * cost ~0.6 us a page on the VM (cache and TLB misses) against ~0.16 us for
 * the hot copy. Worker 0 always knows where its pages go in the result (the
 * front chunks are all its own, in order), so it copies them to their final
 * place. The other workers cannot know their pages' offsets before worker 0
 * is done, so they copy theirs to their own staging and, after the scan, all
 * threads move the staged chunks to their place in the result: sequential
 * reads of staging, ~0.27 us a page (re-reading the pages from RAM instead
 * made a 20000-page scan of 256 MiB 2.5 ms slower). Copies use non-temporal stores: the
 * result is bigger than the caches when it matters, and they halve the cost
 * of writing it (no read for ownership).
 *
 * Every chunk holds whole words of the unknown bitmap and whole cache lines
 * of hash_of, so threads share nothing they write while hashing.
 */

#define PAGE 4096u
#define CHUNK 256u    /* pages: ~50 us of hashing, a multiple of 64 bits */
#define INIT_CAP 256u /* pages: one vft_scan_copy_range batch */
#define MAX_THREADS 64u
#define SPIN_NS 50000      /* how long a hand-off is awaited before sleeping */
#define MIN_SPLIT_COPY 64u /* fewer staged pages are not worth a hand-off */
#define NO_CHUNK UINT64_MAX
#define TEAM_CLOSED (UINT64_C(1) << 31)
#define TEAM_ACTIVE (TEAM_CLOSED - 1)

enum scan_op { OP_HASH, OP_MOVE, OP_EXIT };

typedef XXH64_hash_t (*hash_fn)(const void *data, size_t len);

/* libxxhash built with its x86 dispatcher (Debian, Ubuntu) exports this: it
 * picks the AVX2 or AVX-512 kernel at run time, 1.5x to 4x the bandwidth of
 * the SSE2-only XXH3_64bits on the same CPU (an inlined XXH3_64bits is SSE2
 * too, and no faster). Weak, so a library without it still links; the hash
 * values are the same either way. */
extern XXH64_hash_t XXH3_64bits_dispatch(const void *data, size_t len) __attribute__((weak));

/* What a scan found in one chunk claimed by a worker other than worker 0. */
struct chunk {
	uint32_t n;     /* changed pages, pfns at cand[chunk * CHUNK..] */
	uint32_t owner; /* the worker whose staging holds their content */
	uint64_t src;   /* where in that staging (pages) */
	uint64_t dst;   /* where in the result (pages), set after the scan */
};

/* A worker thread's state, on its own cache lines. */
struct worker {
	struct vft_scan *s;
	pthread_t tid;
	uint32_t idx;
	bool nomem;      /* staging could not grow: this scan fails */
	uint8_t *stage;  /* mmap'd, kept across scans */
	uint64_t cap;    /* pages stage holds */
	uint64_t staged; /* pages staged by this scan */
} __attribute__((aligned(64)));

struct vft_scan {
	const uint8_t *ram;
	uint64_t npages, nchunks;
	unsigned threads;
	unsigned started; /* worker threads running (threads - 1 once init is done) */
	bool sync_ok;     /* mu, go_cv, done_cv exist */
	hash_fn hash;
	bool vzeroupper;      /* hash may leave AVX upper state dirty */
	uint64_t *hash_of;    /* per page: hash of the content last reported */
	uint64_t *unknown;    /* bitmap: the page's hash_of means nothing */
	uint64_t *cand;       /* changed pfns of the workers' chunks, per chunk */
	struct chunk *chunks; /* per chunk */
	uint64_t *pfn;        /* the result's pfns (npages entries, never grows) */
	uint8_t *data;        /* the result's pages, mmap'd: mremap grows it */
	uint64_t cap;         /* pages data holds */
	/* the other result buffer (vft_scan_flip): NULL until first flipped */
	uint64_t *alt_pfn;
	uint8_t *alt_data;
	uint64_t alt_cap;
	uint64_t n_front; /* pages worker 0 put in the result */
	uint64_t meet;    /* chunks [0, meet) were worker 0's */
	struct worker *w; /* threads entries; w[0] is the caller */

	pthread_mutex_t mu;
	pthread_cond_t go_cv;   /* gen moved */
	pthread_cond_t done_cv; /* the team closed and is empty */
	_Atomic int op;         /* written before gen moves, read after */
	_Atomic uint64_t gen __attribute__((aligned(64)));
	/* who works on the current op: gen's low 32 bits << 32 | TEAM_CLOSED |
	 * workers checked in */
	_Atomic uint64_t team __attribute__((aligned(64)));
	/* chunks not claimed yet: [front, back), packed as back << 32 | front */
	_Atomic uint64_t claim __attribute__((aligned(64)));
	_Atomic uint64_t next_move; /* OP_MOVE: next chunk to move */
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

static inline void set_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] |= UINT64_C(1) << (i % 64);
}

static inline void clear_bit(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

/* Copies one page to a page-aligned buffer, bypassing the caches. */
static inline void copy_page_nt(uint8_t *dst, const uint8_t *src)
{
#ifdef __SSE2__
	__m128i *d = (__m128i *)(void *)dst;
	const __m128i *s = (const __m128i *)(const void *)src;

	for (unsigned i = 0; i < PAGE / 16; i += 4) {
		__m128i a = _mm_loadu_si128(s + i), b = _mm_loadu_si128(s + i + 1);
		__m128i c = _mm_loadu_si128(s + i + 2), e = _mm_loadu_si128(s + i + 3);

		_mm_stream_si128(d + i, a);
		_mm_stream_si128(d + i + 1, b);
		_mm_stream_si128(d + i + 2, c);
		_mm_stream_si128(d + i + 3, e);
	}
#else
	memcpy(dst, src, PAGE);
#endif
}

/* The dispatcher's AVX-512 kernel returns with the upper halves of the
 * vector registers dirty: legacy SSE code that runs next in the thread
 * (copy_page_nt, the caller's double arithmetic) then runs at less than half
 * speed, until a vzeroupper. */
static inline void clean_upper(const struct vft_scan *s)
{
#if defined(__x86_64__) || defined(__i386__)
	if (s->vzeroupper)
		__asm__ __volatile__("vzeroupper");
#else
	(void)s;
#endif
}

/* Non-temporal stores are not ordered by the atomics that publish them. */
static inline void nt_fence(void)
{
#ifdef __SSE2__
	_mm_sfence();
#endif
}

/* Spins up to SPIN_NS until ((*v & mask) == x) == eq; false: time to sleep.
 * A scan's hand-offs follow each other within microseconds, and a thread
 * asleep on a condvar needs a futex wake-up: a few us on bare metal, 10 to
 * 150 us on the VM, whose idle vCPUs halt. */
static bool spin_until(_Atomic uint64_t *v, uint64_t mask, uint64_t x, bool eq)
{
	uint64_t t0 = 0;

	for (unsigned i = 1;; i++) {
		if (((atomic_load_explicit(v, memory_order_acquire) & mask) == x) == eq)
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

/* Claims the next chunk from the front (worker 0) or the back (the others). */
static uint64_t claim_chunk(struct vft_scan *s, bool front)
{
	uint64_t c = atomic_load_explicit(&s->claim, memory_order_relaxed), next;

	do {
		uint64_t f = c & UINT32_MAX, b = c >> 32;

		if (f >= b)
			return NO_CHUNK;
		next = front ? (b << 32 | (f + 1)) : ((b - 1) << 32 | f);
	} while (!atomic_compare_exchange_weak_explicit(&s->claim, &c, next, memory_order_relaxed,
	                                                memory_order_relaxed));
	return front ? (c & UINT32_MAX) : (c >> 32) - 1;
}

/* Grows an mmap'd page buffer to hold at least need pages, doubling so that
 * steady state does not allocate. */
static int grow_buf(uint8_t **buf, uint64_t *cap, uint64_t need, uint64_t max)
{
	uint64_t n = *cap * 2;
	void *p;

	if (need <= *cap)
		return 0;
	if (n < need)
		n = need;
	if (n < INIT_CAP)
		n = INIT_CAP;
	if (n > max)
		n = max;
	if (*buf == NULL)
		p = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		         0);
	else
		p = mremap(*buf, *cap * PAGE, n * PAGE, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/* Worker 0's part of a scan: chunks from the front, changed pages straight
 * to the result (only worker 0 touches data and pfn until the scan is over,
 * so it may grow data). */
static void hash_front(struct vft_scan *s, struct worker *w)
{
	const uint8_t *ram = s->ram;
	const hash_fn hash = s->hash;
	uint64_t *hash_of = s->hash_of, *unknown = s->unknown, *pfn = s->pfn;
	uint64_t n = 0, c, last = 0;

	while ((c = claim_chunk(s, true)) != NO_CHUNK) {
		uint64_t end = (c + 1) * CHUNK < s->npages ? (c + 1) * CHUNK : s->npages;

		for (uint64_t i = c * CHUNK; i < end; i++) {
			const uint8_t *p = ram + i * PAGE;
			uint64_t h = hash(p, PAGE);

			if (h == hash_of[i] && !test_bit(unknown, i))
				continue;
			hash_of[i] = h;
			clear_bit(unknown, i);
			pfn[n] = i;
			clean_upper(s);
			if (!w->nomem && grow_buf(&s->data, &s->cap, n + 1, s->npages) < 0)
				w->nomem = true;
			if (!w->nomem)
				copy_page_nt(s->data + n * PAGE, p);
			n++;
		}
		last = c + 1;
	}
	s->n_front = n;
	s->meet = last;
}

/* Another worker's part: chunks from the back, changed pages to its
 * staging. */
static void hash_back(struct vft_scan *s, struct worker *w)
{
	const uint8_t *ram = s->ram;
	const hash_fn hash = s->hash;
	uint64_t *hash_of = s->hash_of, *unknown = s->unknown;
	uint64_t c;

	w->staged = 0;
	while ((c = claim_chunk(s, false)) != NO_CHUNK) {
		uint64_t end = (c + 1) * CHUNK < s->npages ? (c + 1) * CHUNK : s->npages;
		uint64_t *cand = s->cand + c * CHUNK;
		uint32_t n = 0;

		s->chunks[c].owner = w->idx;
		s->chunks[c].src = w->staged;
		for (uint64_t i = c * CHUNK; i < end; i++) {
			const uint8_t *p = ram + i * PAGE;
			uint64_t h = hash(p, PAGE);

			if (h == hash_of[i] && !test_bit(unknown, i))
				continue;
			hash_of[i] = h;
			clear_bit(unknown, i);
			cand[n++] = i;
			clean_upper(s);
			if (!w->nomem && grow_buf(&w->stage, &w->cap, w->staged + 1, s->npages) < 0)
				w->nomem = true;
			if (!w->nomem)
				copy_page_nt(w->stage + w->staged++ * PAGE, p);
		}
		s->chunks[c].n = n;
	}
}

/* After the scan: moves staged chunks to their place in the result. */
static void move_staged(struct vft_scan *s)
{
	uint64_t c;

	while ((c = atomic_fetch_add_explicit(&s->next_move, 1, memory_order_relaxed)) <
	       s->nchunks) {
		const struct chunk *ch = &s->chunks[c];
		const uint8_t *src = s->w[ch->owner].stage + ch->src * PAGE;

		memcpy(s->pfn + ch->dst, s->cand + c * CHUNK, ch->n * sizeof(uint64_t));
		for (uint32_t j = 0; j < ch->n; j++)
			copy_page_nt(s->data + (ch->dst + j) * PAGE, src + (uint64_t)j * PAGE);
	}
}

static void do_op(struct vft_scan *s, struct worker *w, enum scan_op op)
{
	if (op == OP_HASH && w->idx == 0)
		hash_front(s, w);
	else if (op == OP_HASH)
		hash_back(s, w);
	else if (op == OP_MOVE)
		move_staged(s);
	clean_upper(s);
	nt_fence();
}

/* A worker joins an op only if it checks in before worker 0 closes the team
 * (worker 0 closes it when no work is left to claim): worker 0 then waits
 * for the workers that joined to finish their last claim, never for one
 * still waking up. A worker that wakes too late, even ops later, finds the
 * team closed or of another op, and goes back to sleep. */
static bool check_in(struct vft_scan *s, uint64_t seq)
{
	uint64_t t = atomic_load_explicit(&s->team, memory_order_relaxed);

	do {
		if (t >> 32 != (seq & UINT32_MAX) || (t & TEAM_CLOSED))
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&s->team, &t, t + 1, memory_order_acquire,
	                                                memory_order_relaxed));
	return true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct vft_scan *s = w->s;
	uint64_t seen = 0;

	for (;;) {
		enum scan_op op;
		uint64_t t;

		if (!spin_until(&s->gen, UINT64_MAX, seen, false)) {
			pthread_mutex_lock(&s->mu);
			while (atomic_load_explicit(&s->gen, memory_order_acquire) == seen)
				pthread_cond_wait(&s->go_cv, &s->mu);
			pthread_mutex_unlock(&s->mu);
		}
		seen = atomic_load_explicit(&s->gen, memory_order_acquire);
		op = atomic_load_explicit(&s->op, memory_order_relaxed);
		if (op == OP_EXIT)
			return NULL;
		if (!check_in(s, seen))
			continue;
		do_op(s, w, op);
		t = atomic_fetch_sub_explicit(&s->team, 1, memory_order_release) - 1;
		/* worker 0 looks at the team under mu before it sleeps, so a
		 * signal sent under mu is never lost */
		if ((t & TEAM_CLOSED) && (t & TEAM_ACTIVE) == 0) {
			pthread_mutex_lock(&s->mu);
			pthread_cond_signal(&s->done_cv);
			pthread_mutex_unlock(&s->mu);
		}
	}
}

/* Runs op with the caller as worker 0 and whichever workers join in time;
 * returns when the op is done. */
static void run_op(struct vft_scan *s, enum scan_op op)
{
	uint64_t seq, t;

	if (s->started > 0) {
		pthread_mutex_lock(&s->mu);
		seq = atomic_load_explicit(&s->gen, memory_order_relaxed) + 1;
		atomic_store_explicit(&s->op, op, memory_order_relaxed);
		atomic_store_explicit(&s->team, (seq & UINT32_MAX) << 32, memory_order_relaxed);
		atomic_store_explicit(&s->gen, seq, memory_order_release);
		pthread_cond_broadcast(&s->go_cv);
		pthread_mutex_unlock(&s->mu);
	}
	do_op(s, &s->w[0], op);
	if (s->started == 0)
		return;
	t = atomic_fetch_or_explicit(&s->team, TEAM_CLOSED, memory_order_acq_rel);
	if ((t & TEAM_ACTIVE) == 0 || spin_until(&s->team, TEAM_ACTIVE, 0, true))
		return;
	pthread_mutex_lock(&s->mu);
	while (atomic_load_explicit(&s->team, memory_order_acquire) & TEAM_ACTIVE)
		pthread_cond_wait(&s->done_cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

static void *alloc_array(uint64_t n, size_t elem)
{
	void *p = NULL;

	if (n > SIZE_MAX / elem || posix_memalign(&p, 64, n * elem) != 0)
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
		atomic_store_explicit(&s->op, OP_EXIT, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
		pthread_cond_broadcast(&s->go_cv);
		pthread_mutex_unlock(&s->mu);
		for (unsigned i = 1; i <= s->started; i++)
			pthread_join(s->w[i].tid, NULL);
	}
	if (s->sync_ok) {
		pthread_cond_destroy(&s->done_cv);
		pthread_cond_destroy(&s->go_cv);
		pthread_mutex_destroy(&s->mu);
	}
	for (unsigned i = 0; s->w != NULL && i < s->threads; i++)
		if (s->w[i].stage != NULL)
			munmap(s->w[i].stage, s->w[i].cap * PAGE);
	if (s->data != NULL)
		munmap(s->data, s->cap * PAGE);
	if (s->alt_data != NULL)
		munmap(s->alt_data, s->alt_cap * PAGE);
	free(s->alt_pfn);
	free(s->w);
	free(s->pfn);
	free(s->chunks);
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
	pthread_attr_t attr;
	int rc;

	rc = pthread_attr_init(&attr);
	if (rc != 0)
		return -rc;
	/* the workers need little stack; 64 of them at the default 8 MiB
	 * would be half a GiB of address space */
	pthread_attr_setstacksize(&attr, 256 * 1024);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 1; i < s->threads; i++) {
		rc = pthread_create(&s->w[i].tid, &attr, worker_main, &s->w[i]);
		if (rc != 0)
			break;
		s->started = i;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	for (unsigned i = 1; i <= s->started; i++) {
		char name[16];

		snprintf(name, sizeof(name), "vft-scan/%u", i);
		pthread_setname_np(s->w[i].tid, name);
	}
	return rc == 0 ? 0 : -rc;
}

/* The parts of init that can fail for want of memory; vft_scan_fini frees
 * what was made. */
static int alloc_state(struct vft_scan *s)
{
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		return -ENOMEM;
	if (pthread_cond_init(&s->go_cv, NULL) != 0) {
		pthread_mutex_destroy(&s->mu);
		return -ENOMEM;
	}
	if (pthread_cond_init(&s->done_cv, NULL) != 0) {
		pthread_cond_destroy(&s->go_cv);
		pthread_mutex_destroy(&s->mu);
		return -ENOMEM;
	}
	s->sync_ok = true;
	s->hash_of = alloc_array(s->npages, sizeof(uint64_t));
	s->unknown = alloc_array((s->npages + 63) / 64, sizeof(uint64_t));
	s->cand = alloc_array(s->npages, sizeof(uint64_t));
	s->chunks = alloc_array(s->nchunks, sizeof(struct chunk));
	s->pfn = alloc_array(s->npages, sizeof(uint64_t));
	s->w = aligned_alloc(64, s->threads * sizeof(*s->w));
	if (s->w != NULL)
		memset(s->w, 0, s->threads * sizeof(*s->w));
	if (s->hash_of == NULL || s->unknown == NULL || s->cand == NULL || s->chunks == NULL ||
	    s->pfn == NULL || s->w == NULL || grow_buf(&s->data, &s->cap, 1, s->npages) < 0)
		return -ENOMEM;
	return 0;
}

int vft_scan_init(struct vft_scan **out, const void *ram, uint64_t size, unsigned threads)
{
	struct vft_scan *s;
	int rc;

	if (out == NULL)
		return -EINVAL;
	*out = NULL;
	if (ram == NULL || size == 0 || size % PAGE != 0 || threads == 0 || threads > MAX_THREADS ||
	    size / PAGE / CHUNK >= UINT32_MAX)
		return -EINVAL;
	/* aligned: the atomics have cache lines of their own */
	s = aligned_alloc(_Alignof(struct vft_scan), sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->ram = ram;
	s->npages = size / PAGE;
	s->nchunks = (s->npages + CHUNK - 1) / CHUNK;
	s->threads = threads;
	s->hash = XXH3_64bits_dispatch != NULL ? XXH3_64bits_dispatch : XXH3_64bits;
#if defined(__x86_64__) || defined(__i386__)
	s->vzeroupper = XXH3_64bits_dispatch != NULL && __builtin_cpu_supports("avx");
#endif
	rc = alloc_state(s);
	if (rc < 0) {
		vft_scan_fini(s);
		return rc;
	}
	memset(s->hash_of, 0, s->npages * sizeof(uint64_t));
	vft_scan_reset(s);
	for (unsigned i = 0; i < threads; i++) {
		s->w[i].s = s;
		s->w[i].idx = i;
	}
	/* the dispatcher picks its kernel on the first call: here, not racing
	 * in the workers */
	s->hash(s->data, PAGE);
	clean_upper(s);
	rc = start_workers(s);
	if (rc < 0) {
		vft_scan_fini(s);
		return rc;
	}
	*out = s;
	return 0;
}

int vft_scan_flip(struct vft_scan *s)
{
	uint64_t *pfn;
	uint8_t *data;
	uint64_t cap;

	if (s == NULL)
		return -EINVAL;
	if (s->alt_pfn == NULL) {
		s->alt_pfn = alloc_array(s->npages, sizeof(uint64_t));
		if (s->alt_pfn == NULL || grow_buf(&s->alt_data, &s->alt_cap, 1, s->npages) < 0)
			return -ENOMEM;
	}
	pfn = s->pfn;
	data = s->data;
	cap = s->cap;
	s->pfn = s->alt_pfn;
	s->data = s->alt_data;
	s->cap = s->alt_cap;
	s->alt_pfn = pfn;
	s->alt_data = data;
	s->alt_cap = cap;
	return 0;
}

/* A scan that could not copy everything: the hashes it stored are those of
 * pages nobody got, so it forgets them and the next scan reports these pages
 * again. */
static int scan_failed(struct vft_scan *s)
{
	for (uint64_t i = 0; i < s->n_front; i++)
		set_bit(s->unknown, s->pfn[i]);
	for (uint64_t c = s->meet; c < s->nchunks; c++)
		for (uint32_t j = 0; j < s->chunks[c].n; j++)
			set_bit(s->unknown, s->cand[c * CHUNK + j]);
	return -ENOMEM;
}

int vft_scan_run(struct vft_scan *s, struct vft_scan_result *res)
{
	uint64_t t0 = mono_ns(), total, staged = 0;
	bool nomem = false;

	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (s == NULL || res == NULL)
		return -EINVAL;
	for (unsigned i = 0; i < s->threads; i++)
		s->w[i].nomem = false;
	atomic_store_explicit(&s->claim, s->nchunks << 32, memory_order_relaxed);
	run_op(s, OP_HASH);
	total = s->n_front;
	for (uint64_t c = s->meet; c < s->nchunks; c++) {
		s->chunks[c].dst = total;
		total += s->chunks[c].n;
	}
	staged = total - s->n_front;
	for (unsigned i = 0; i < s->threads; i++)
		nomem |= s->w[i].nomem;
	if (nomem || grow_buf(&s->data, &s->cap, total, s->npages) < 0)
		return scan_failed(s);
	if (staged > 0) {
		atomic_store_explicit(&s->next_move, s->meet, memory_order_relaxed);
		if (staged >= MIN_SPLIT_COPY)
			run_op(s, OP_MOVE);
		else
			do_op(s, &s->w[0], OP_MOVE);
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
	if (grow_buf(&s->data, &s->cap, count, s->npages) < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t p = first + i;
		uint8_t *dst = s->data + i * PAGE;

		/* a cached copy: the hash reads it right back. The copy is what
		 * the backup gets, RAM may already differ. */
		memcpy(dst, s->ram + p * PAGE, PAGE);
		s->hash_of[p] = s->hash(dst, PAGE);
		clear_bit(s->unknown, p);
		s->pfn[i] = p;
	}
	clean_upper(s);
	res->n_pages = count;
	res->pfn = s->pfn;
	res->data = s->data;
	res->scan_ns = mono_ns() - t0;
	return 0;
}

int vft_scan_copy_range_diff(struct vft_scan *s, uint64_t first, uint64_t count,
                             const uint64_t *base, struct vft_scan_result *res)
{
	uint64_t t0 = mono_ns(), n = 0;

	if (base == NULL)
		return vft_scan_copy_range(s, first, count, res);
	if (res != NULL)
		memset(res, 0, sizeof(*res));
	if (s == NULL || res == NULL || first > s->npages || count > s->npages - first)
		return -EINVAL;
	if (grow_buf(&s->data, &s->cap, count, s->npages) < 0)
		return -ENOMEM;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t p = first + i, h = s->hash(s->ram + p * PAGE, PAGE);
		uint8_t *dst;

		/* equal to the base: the backup's copy has exactly the content
		 * hashed, whatever RAM holds by now; no copy needed */
		if (h == base[p]) {
			s->hash_of[p] = h;
			clear_bit(s->unknown, p);
			continue;
		}
		dst = s->data + n * PAGE;
		memcpy(dst, s->ram + p * PAGE, PAGE);
		s->hash_of[p] = s->hash(dst, PAGE);
		clear_bit(s->unknown, p);
		s->pfn[n++] = p;
	}
	clean_upper(s);
	res->n_pages = n;
	res->pfn = s->pfn;
	res->data = s->data;
	res->scan_ns = mono_ns() - t0;
	return 0;
}
