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
#include <unistd.h>

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
