/*
 * atca-vmft: output commit. What the guest writes to its serial port is held
 * and released to the console file only once the epoch it belongs to is
 * acknowledged by the backup (or at once while nothing protects the guest):
 * output the world has seen is never taken back by a failover.
 */
#include "config.h"

#include "vft_eng_output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void eng_ring_add(struct eng_ring *r, double v)
{
	r->v[r->next] = v;
	r->next = (r->next + 1) % ENG_SAMPLES;
	if (r->n < ENG_SAMPLES)
		r->n++;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double eng_ring_pct(const struct eng_ring *r, double pct)
{
	double tmp[ENG_SAMPLES];
	size_t idx;

	if (r->n == 0)
		return 0;
	memcpy(tmp, r->v, sizeof(double) * r->n);
	qsort(tmp, r->n, sizeof(double), cmp_double);
	idx = (size_t)(pct / 100.0 * (double)(r->n - 1) + 0.5);
	return tmp[idx < r->n ? idx : r->n - 1];
}

void eng_output_init(struct eng_output *o, size_t limit)
{
	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->lock, NULL);
	o->limit = limit;
	o->console_fd = -1;
	o->hold = true;
}

void eng_output_fini(struct eng_output *o)
{
	free(o->buf);
	o->buf = NULL;
	if (o->console_fd >= 0)
		close(o->console_fd);
	pthread_mutex_destroy(&o->lock);
}

static void release_locked(struct eng_output *o, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w = o->console_fd >= 0 ? write(o->console_fd, o->buf + off, len - off)
		                               : (ssize_t)(len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* a full disk must not stop the guest: the bytes are dropped */
		off += (size_t)w;
	}
	memmove(o->buf, o->buf + len, o->held - len);
	o->held -= len;
	o->released_total += len;
}

/* Reads what QEMU wrote to the serial port into the held buffer (or straight
 * out when nothing is held). Returns bytes read, 0, -EAGAIN-free: -ENOSPC when
 * the buffer is full (the caller stops reading: the guest's UART then waits),
 * -EPIPE on EOF. */
static int output_read_locked(struct eng_output *o, int fd)
{
	int total = 0;

	for (;;) {
		ssize_t r;

		if (o->held >= o->limit)
			return -ENOSPC;
		if (o->cap - o->held < 4096) {
			size_t ncap = o->cap ? o->cap * 2 : 65536;
			uint8_t *nb;

			if (ncap > o->limit + 65536)
				ncap = o->limit + 65536;
			nb = realloc(o->buf, ncap);
			if (nb == NULL)
				return -ENOMEM;
			o->buf = nb;
			o->cap = ncap;
		}
		r = read(fd, o->buf + o->held, o->cap - o->held);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN ? total : -errno;
		if (r == 0)
			return -EPIPE;
		o->held += (size_t)r;
		o->read_total += (uint64_t)r;
		total += (int)r;
		if (!o->hold)
			release_locked(o, o->held);
	}
}

/* Everything read so far belongs to epoch `epoch` (called with the guest
 * stopped and the port drained). */
void eng_output_mark(struct eng_output *o, uint64_t epoch)
{
	pthread_mutex_lock(&o->lock);
	o->mark_epoch[epoch % ENG_MARKS] = epoch;
	o->mark_at[epoch % ENG_MARKS] = o->read_total;
	pthread_mutex_unlock(&o->lock);
}

void eng_output_release_to(struct eng_output *o, uint64_t epoch)
{
	pthread_mutex_lock(&o->lock);
	if (o->mark_epoch[epoch % ENG_MARKS] == epoch) {
		uint64_t upto = o->mark_at[epoch % ENG_MARKS];

		if (upto > o->released_total && upto - o->released_total <= o->held) {
			size_t n = (size_t)(upto - o->released_total), cut = n;

			while (cut > 0 && o->buf[cut - 1] != '\n')
				cut--;
			if (cut < n && o->partial_since == 0)
				o->partial_since = epoch;
			if (cut == 0 && (epoch - o->partial_since >= ENG_PARTIAL_EPOCHS ||
			                 n >= ENG_PARTIAL_MAX))
				cut = n; /* no line end coming: a prompt, binary output */
			if (cut == n)
				o->partial_since = 0;
			else if (cut > 0)
				o->partial_since = epoch;
			if (cut > 0)
				release_locked(o, cut);
		}
	}
	pthread_mutex_unlock(&o->lock);
}

void eng_output_set_hold(struct eng_output *o, bool hold)
{
	pthread_mutex_lock(&o->lock);
	o->hold = hold;
	o->partial_since = 0;
	if (!hold && o->held > 0)
		release_locked(o, o->held);
	pthread_mutex_unlock(&o->lock);
}

int eng_output_read(struct eng_output *o, int fd)
{
	int rc;

	pthread_mutex_lock(&o->lock);
	rc = output_read_locked(o, fd);
	pthread_mutex_unlock(&o->lock);
	return rc;
}

/* ---- network frames ---------------------------------------------------------------- */

#define FRAME_MAX 65550u
#define FREC_HDR 12u /* u32 length, f64 monotonic s when taken */

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void eng_frameq_init(struct eng_frameq *q, size_t limit, eng_frame_send_fn send, void *ctx)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	q->limit = limit;
	q->hold = true;
	q->send = send;
	q->ctx = ctx;
}

void eng_frameq_fini(struct eng_frameq *q)
{
	free(q->buf);
	q->buf = NULL;
	pthread_mutex_destroy(&q->lock);
}

/* Hands the n oldest held frames to send() and forgets them. */
static void frameq_out_locked(struct eng_frameq *q, uint64_t n)
{
	size_t off = 0;
	double now = mono_s();

	while (n > 0 && off < q->len) {
		uint32_t flen;
		double at;

		memcpy(&flen, q->buf + off, 4);
		memcpy(&at, q->buf + off + 4, 8);
		if (q->send)
			q->send(q->ctx, q->buf + off + FREC_HDR, flen);
		eng_ring_add(&q->hold_ms, (now - at) * 1e3);
		off += FREC_HDR + (size_t)flen;
		q->out_total++;
		n--;
	}
	if (off > 0) /* nothing held yet: buf may still be NULL */
		memmove(q->buf, q->buf + off, q->len - off);
	q->len -= off;
}

int eng_frameq_push(struct eng_frameq *q, const uint8_t *frame, size_t len)
{
	uint32_t flen = (uint32_t)len;
	double now = mono_s();
	int rc = 0;

	if (len == 0 || len > FRAME_MAX || frame == NULL)
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	if (!q->hold) {
		q->in_total++;
		q->out_total++;
		if (q->send)
			q->send(q->ctx, frame, len);
		goto out;
	}
	if (q->len + FREC_HDR + len > q->limit) {
		q->dropped++;
		rc = -ENOBUFS;
		goto out;
	}
	if (q->cap - q->len < FREC_HDR + len) {
		size_t ncap = q->cap ? q->cap : 65536;
		uint8_t *nb;

		while (ncap - q->len < FREC_HDR + len)
			ncap *= 2;
		nb = realloc(q->buf, ncap);
		if (nb == NULL) {
			q->dropped++;
			rc = -ENOBUFS;
			goto out;
		}
		q->buf = nb;
		q->cap = ncap;
	}
	memcpy(q->buf + q->len, &flen, 4);
	memcpy(q->buf + q->len + 4, &now, 8);
	memcpy(q->buf + q->len + FREC_HDR, frame, len);
	q->len += FREC_HDR + len;
	q->in_total++;
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

void eng_frameq_mark(struct eng_frameq *q, uint64_t epoch)
{
	pthread_mutex_lock(&q->lock);
	q->mark_epoch[epoch % ENG_MARKS] = epoch;
	q->mark_at[epoch % ENG_MARKS] = q->in_total;
	pthread_mutex_unlock(&q->lock);
}

void eng_frameq_release_to(struct eng_frameq *q, uint64_t epoch)
{
	pthread_mutex_lock(&q->lock);
	/* frames go in order: a dropped frame was never counted in, so the
	 * held frames are exactly in_total - out_total of them */
	if (q->mark_epoch[epoch % ENG_MARKS] == epoch &&
	    q->mark_at[epoch % ENG_MARKS] > q->out_total)
		frameq_out_locked(q, q->mark_at[epoch % ENG_MARKS] - q->out_total);
	pthread_mutex_unlock(&q->lock);
}

void eng_frameq_set_hold(struct eng_frameq *q, bool hold)
{
	pthread_mutex_lock(&q->lock);
	q->hold = hold;
	if (!hold)
		frameq_out_locked(q, UINT64_MAX);
	pthread_mutex_unlock(&q->lock);
}
