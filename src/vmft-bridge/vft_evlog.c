/*
 * vmft event log, primary side: see vft_evlog.h.
 */
#include "config.h"

#include "vft_evlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void vft_evlog_init(struct vft_evlog *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
}

void vft_evlog_fini(struct vft_evlog *l)
{
	free(l->buf);
	l->buf = NULL;
	pthread_mutex_destroy(&l->lock);
}

static void clear_locked(struct vft_evlog *l)
{
	l->len = 0;
	l->count = 0;
}

void vft_evlog_start(struct vft_evlog *l, double now)
{
	pthread_mutex_lock(&l->lock);
	clear_locked(l);
	l->on = true;
	l->next_seq = 1;
	l->t0 = now;
	memset(l->counts, 0, sizeof(l->counts));
	l->disk_bytes = 0;
	pthread_mutex_unlock(&l->lock);
}

void vft_evlog_stop(struct vft_evlog *l)
{
	pthread_mutex_lock(&l->lock);
	clear_locked(l);
	l->on = false;
	/* the memory of a large epoch is not kept for an idle guest */
	free(l->buf);
	l->buf = NULL;
	l->cap = 0;
	pthread_mutex_unlock(&l->lock);
}

bool vft_evlog_on(struct vft_evlog *l)
{
	bool on;

	pthread_mutex_lock(&l->lock);
	on = l->on;
	pthread_mutex_unlock(&l->lock);
	return on;
}

static int reserve(struct vft_evlog *l, size_t more)
{
	size_t ncap;
	uint8_t *nb;

	if (l->cap - l->len >= more)
		return 0;
	ncap = l->cap ? l->cap : 65536;
	while (ncap - l->len < more) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	nb = realloc(l->buf, ncap);
	if (nb == NULL)
		return -ENOMEM;
	l->buf = nb;
	l->cap = ncap;
	return 0;
}

static bool allowed(unsigned kind, unsigned flags, uint64_t arg, size_t len)
{
	switch (kind) {
	case VFT_EV_DISK_WRITE:
		return len > 0 && len % VFT_SECTOR == 0 && arg % VFT_SECTOR == 0 &&
		       (flags & ~VFT_EVF_FUA) == 0;
	case VFT_EV_DISK_FLUSH:
		return len == 0 && arg == 0 && flags == 0;
	case VFT_EV_NET_IN:
		return len >= 14 && len <= VFT_EV_NET_MAX && arg == 0 && flags == 0;
	case VFT_EV_SERIAL_IN:
		return len >= 1 && len <= VFT_EV_SERIAL_MAX && arg == 0 && flags == 0;
	default:
		return false;
	}
}

int vft_evlog_add(struct vft_evlog *l, unsigned kind, unsigned flags, uint64_t arg,
                  const void *data, size_t len, double now)
{
	const uint8_t *p = data;
	int rc = 0;

	if (!allowed(kind, flags, arg, len) || (len > 0 && data == NULL))
		return -EINVAL;
	pthread_mutex_lock(&l->lock);
	if (!l->on)
		goto out;
	do {
		size_t n = len > VFT_EV_DATA_MAX ? VFT_EV_DATA_MAX : len;
		struct vft_event ev = {
		        .seq = l->next_seq,
		        .kind = (uint16_t)kind,
		        .flags = (uint16_t)flags,
		        .len = (uint32_t)n,
		        .arg = arg,
		        .t_ns = now > l->t0 ? (uint64_t)((now - l->t0) * 1e9) : 0,
		};

		if ((rc = reserve(l, VFT_EV_HDR + n)) < 0)
			goto out;
		vft_event_encode_head(l->buf + l->len, &ev);
		if (n > 0)
			memcpy(l->buf + l->len + VFT_EV_HDR, p, n);
		l->len += VFT_EV_HDR + n;
		l->count++;
		l->next_seq++;
		l->counts[kind]++;
		if (kind == VFT_EV_DISK_WRITE)
			l->disk_bytes += n;
		p += n;
		arg += n;
		len -= n;
	} while (len > 0);
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void vft_evlog_take(struct vft_evlog *l, struct vft_evbatch *b)
{
	pthread_mutex_lock(&l->lock);
	b->buf = l->len ? l->buf : NULL;
	b->len = l->len;
	b->count = l->count;
	b->first_seq = l->next_seq - l->count;
	if (l->len) {
		/* the buffer goes with the batch; the next epoch grows a new one
		 * of the size this one needed */
		l->buf = NULL;
		l->cap = 0;
	}
	clear_locked(l);
	pthread_mutex_unlock(&l->lock);
}

size_t vft_evlog_held(struct vft_evlog *l)
{
	size_t n;

	pthread_mutex_lock(&l->lock);
	n = l->len;
	pthread_mutex_unlock(&l->lock);
	return n;
}

size_t vft_evbatch_next(const struct vft_evbatch *b, size_t *pos, size_t max, uint8_t head[8],
                        size_t *start)
{
	size_t p = *pos, end = p;
	uint32_t n = 0;

	while (end < b->len) {
		uint32_t dlen = (uint32_t)b->buf[end + 12] | (uint32_t)b->buf[end + 13] << 8 |
		                (uint32_t)b->buf[end + 14] << 16 | (uint32_t)b->buf[end + 15] << 24;
		size_t rec = VFT_EV_HDR + dlen;

		/* one record always fits (VFT_EV_DATA_MAX < max - 8) */
		if (n > 0 && 8 + (end - p) + rec > max)
			break;
		end += rec;
		n++;
	}
	if (n == 0)
		return 0;
	head[0] = (uint8_t)n;
	head[1] = (uint8_t)(n >> 8);
	head[2] = (uint8_t)(n >> 16);
	head[3] = (uint8_t)(n >> 24);
	memset(head + 4, 0, 4);
	*start = p;
	*pos = end;
	return end - p;
}
