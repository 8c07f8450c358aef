/*
 * atca-vmft, primary side: frames on the wire and the sender thread.
 *
 * Asynchronous transmission buffering: the epoch thread captures an epoch
 * (the guest paused only for the capture), queues it and goes on; the
 * sender thread ships the queued epochs in order (BEGIN, PAGES, EVENTS,
 * DEVSTATE, END) while the guest runs and the next epoch is captured on
 * time. The queue holds at most QSLOTS epochs and vmft.send_buffer bytes:
 * beyond that the next capture waits (back-pressure, vft_eng_primary.c).
 * Page batches go zero-copy (vft_zc) straight from the scan's result
 * buffer; a slot is freed only once the kernel reported that it no longer
 * needs those pages, so the next capture into that buffer is safe.
 */
#include "config.h"

#include "vft_eng_psess.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#include "af_util.h"

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int ps_frame(struct psess *ps, uint16_t type, uint64_t epoch, const struct iovec *iov, int iovcnt)
{
	int rc;

	pthread_mutex_lock(&ps->txlock);
	rc = eng_send_frame(ps->fd, &ps->tx_seq, &ps->auth.tx, type, epoch, iov, iovcnt);
	ps->last_tx = af_mono_s();
	pthread_mutex_unlock(&ps->txlock);
	return rc;
}

static void count_send(struct psess *ps, size_t bytes, uint64_t cpu_ns, uint64_t mac_ns)
{
	struct vft_eng *e = ps->e;

	pthread_mutex_lock(&e->lock);
	e->st.tx_page_bytes += bytes;
	e->st.tx_cpu_ns += cpu_ns;
	e->st.tx_mac_ns += mac_ns;
	e->st.zc_on = ps->zc.on && ps->zc.threshold != SIZE_MAX;
	e->st.zc_sends = ps->zc.st.zc_sends;
	e->st.zc_copied = ps->zc.st.copied;
	e->st.copy_sends = ps->zc.st.copy_sends;
	pthread_mutex_unlock(&e->lock);
}

/* Bytes from which a batch goes zero-copy, SIZE_MAX for none. The switch
 * takes effect at the next batch. A kernel that copies every send anyway
 * (the peer is a socket on this host: loopback, or a veth into another
 * namespace) makes zero-copy pure overhead: pinning, notifications and the
 * copy; the kernel's documentation says to stop then. */
static size_t zc_threshold(struct psess *ps)
{
	int mode = __atomic_load_n(&ps->e->zc_mode, __ATOMIC_RELAXED);
	const struct vft_zc_stats *z = &ps->zc.st;

	if (mode == ENG_ZC_OFF)
		return SIZE_MAX;
	if (mode == ENG_ZC_AUTO && !ps->zc_useless && z->zc_sends >= 64 &&
	    z->copied * 10 >= z->zc_sends * 9) {
		ps->zc_useless = true;
		eng_tlog(ps->e, LOG_NOTICE,
		         "vmft %s: zero-copy off for this session: the kernel copied %llu of %llu "
		         "sends (the backup's socket is on this host)",
		         ps->e->vm->name, (unsigned long long)z->copied,
		         (unsigned long long)z->zc_sends);
	}
	if (mode == ENG_ZC_AUTO && ps->zc_useless)
		return SIZE_MAX;
	return (size_t)ps->e->cfg->vmft.zerocopy_threshold;
}

int ps_pages(struct psess *ps, uint64_t epoch, const struct vft_scan_result *r, uint64_t *n_frames,
             uint64_t crash_n, uint32_t *ticket)
{
	uint8_t head[8 + 8 * VFT_BATCH_PAGES], hdr[VFT_HDR_SIZE];
	uint64_t cpu = 0, mac = 0;
	int rc = 0;

	pthread_mutex_lock(&ps->txlock);
	ps->zc.threshold = zc_threshold(ps);
	*ticket = vft_zc_last(&ps->zc);
	for (uint64_t i = 0; i < r->n_pages; i += VFT_BATCH_PAGES) {
		uint32_t cnt = (uint32_t)(r->n_pages - i < VFT_BATCH_PAGES ? r->n_pages - i
		                                                           : VFT_BATCH_PAGES);
		const uint8_t *data = r->data + i * VFT_PAGE_SIZE;
		struct iovec iov[2];
		uint64_t c0;

		iov[0].iov_base = head;
		iov[0].iov_len = vft_pages_encode_head(head, cnt, r->pfn + i);
		iov[1].iov_base = (void *)data;
		iov[1].iov_len = (size_t)cnt * VFT_PAGE_SIZE;
		vft_hdr_encodev(hdr, VFT_F_PAGES, ps->tx_seq++, epoch, iov, 2);
		c0 = thread_cpu_ns();
		rc = vft_mac_seal(&ps->auth.tx, hdr, iov, 2);
		mac += thread_cpu_ns() - c0;
		if (rc < 0)
			break;
		iov[1] = iov[0];
		iov[0].iov_base = hdr;
		iov[0].iov_len = sizeof(hdr);
		c0 = thread_cpu_ns();
		rc = vft_zc_send(&ps->zc, iov, 2, data, (size_t)cnt * VFT_PAGE_SIZE, ticket);
		cpu += thread_cpu_ns() - c0;
		if (rc < 0)
			break;
		(*n_frames)++;
		if (crash_n != UINT64_MAX && i <= r->n_pages / 2 && r->n_pages / 2 < i + cnt)
			eng_crash_point(ps->e, ENG_CRASH_TRANSFER, crash_n);
	}
	ps->last_tx = af_mono_s();
	pthread_mutex_unlock(&ps->txlock);
	count_send(ps, r->n_pages * VFT_PAGE_SIZE, cpu, mac);
	return rc;
}

int ps_zc_wait(struct psess *ps, uint32_t ticket)
{
	uint64_t c0 = thread_cpu_ns();
	int rc;

	pthread_mutex_lock(&ps->txlock);
	rc = vft_zc_wait(&ps->zc, ticket, (int)ps->e->cfg->vmft.ack_timeout_ms);
	pthread_mutex_unlock(&ps->txlock);
	count_send(ps, 0, thread_cpu_ns() - c0, 0);
	return rc;
}

/* The epoch's event log, cut into EVENTS frames. */
static int send_events(struct psess *ps, struct staged *sl, uint64_t *n_frames)
{
	uint8_t head[8];
	size_t pos = 0, start, len;

	while ((len = vft_evbatch_next(&sl->ev, &pos, VFT_MAX_PAYLOAD, head, &start)) > 0) {
		struct iovec iov[2] = {{.iov_base = head, .iov_len = 8},
		                       {.iov_base = sl->ev.buf + start, .iov_len = len}};
		int rc = ps_frame(ps, VFT_F_EVENTS, sl->epoch, iov, 2);

		if (rc < 0)
			return rc;
		(*n_frames)++;
	}
	return 0;
}

/* The epoch counts as sent (waiting for its acknowledgement) before its
 * END leaves: the backup may commit and acknowledge it before this thread
 * runs again, and the epoch thread must then know it. */
static void mark_sent(struct psess *ps, uint64_t epoch)
{
	pthread_mutex_lock(&ps->qlock);
	assert(ps->n_unacked < MAX_UNACKED);
	ps->unacked[ps->n_unacked] = epoch;
	ps->sent_at[ps->n_unacked] = af_mono_s();
	ps->n_unacked++;
	pthread_mutex_unlock(&ps->qlock);
}

static int send_rest(struct psess *ps, struct staged *sl, uint64_t *n_frames)
{
	struct vft_epoch_end end = {0};
	uint8_t endb[VFT_EPOCH_END_SIZE];
	struct iovec iov;
	int rc = 0;

	/* after the pages (the backup's redo appends the log to them), before
	 * the device state */
	rc = send_events(ps, sl, n_frames);
	for (size_t off = 0; rc == 0 && off < sl->dev_len; off += VFT_DEVSTATE_CHUNK) {
		iov.iov_base = sl->dev + off;
		iov.iov_len = sl->dev_len - off < VFT_DEVSTATE_CHUNK ? sl->dev_len - off
		                                                     : VFT_DEVSTATE_CHUNK;
		rc = ps_frame(ps, VFT_F_DEVSTATE, sl->epoch, &iov, 1);
		(*n_frames)++;
	}
	if (rc < 0)
		return rc;
	end.n_pages = sl->pre_pages + sl->res.n_pages;
	end.devstate_len = sl->dev_len;
	end.n_frames = (uint32_t)*n_frames;
	end.n_events = sl->ev.count;
	end.disk_bytes = sl->disk_bytes;
	iov.iov_base = endb;
	iov.iov_len = vft_epoch_end_encode(endb, &end);
	mark_sent(ps, sl->epoch);
	return ps_frame(ps, VFT_F_EPOCH_END, sl->epoch, &iov, 1);
}

static void account(struct psess *ps, const struct staged *sl, double t0)
{
	struct vft_eng *e = ps->e;

	pthread_mutex_lock(&e->lock);
	e->st.epochs_sent++;
	e->st.last_epoch = sl->epoch;
	e->st.pages_last_epoch = sl->res.n_pages;
	e->st.bytes_last_epoch = sl->bytes;
	e->st.events_last_epoch = sl->ev.count;
	e->st.events_total += sl->ev.count;
	e->st.bytes_total += sl->bytes;
	e->st.devstate_bytes = sl->dev_len;
	eng_ring_add(&e->st.pause_ms, sl->pause_ms);
	eng_ring_add(&e->st.scan_ms, sl->scan_ms);
	eng_ring_add(&e->st.dev_ms, sl->dev_ms);
	eng_ring_add(&e->st.bytes, (double)sl->bytes);
	eng_ring_add(&e->st.send_ms, (af_mono_s() - t0) * 1e3);
	pthread_mutex_unlock(&e->lock);
}

/* Ships one captured epoch: its frames, then waits until the kernel is
 * done with its pages. */
static int ship(struct psess *ps, struct staged *sl)
{
	struct vft_eng *e = ps->e;
	uint64_t n_frames = sl->pre_frames;
	double t0 = af_mono_s();
	uint32_t ticket;
	int rc = 0;

	if (sl->kind == VFT_EPOCH_INCR) {
		struct vft_epoch_begin b = {.kind = VFT_EPOCH_INCR};
		uint8_t buf[VFT_EPOCH_BEGIN_SIZE];
		struct iovec iov = {.iov_base = buf, .iov_len = vft_epoch_begin_encode(buf, &b)};

		rc = ps_frame(ps, VFT_F_EPOCH_BEGIN, sl->epoch, &iov, 1);
	}
	if (rc == 0)
		rc = ps_pages(ps, sl->epoch, &sl->res, &n_frames, sl->n_incr, &ticket);
	if (rc == 0)
		rc = send_rest(ps, sl, &n_frames);
	if (rc < 0) {
		eng_tlog(e, LOG_WARNING, "vmft %s: sending epoch %llu: %s", e->vm->name,
		         (unsigned long long)sl->epoch, strerror(-rc));
		return rc;
	}
	/* the backup now commits it */
	eng_crash_point(e, ENG_CRASH_COMMIT, sl->n_incr);
	account(ps, sl, t0);
	rc = ps_zc_wait(ps, ticket);
	if (rc < 0)
		eng_tlog(e, LOG_WARNING, "vmft %s: epoch %llu: zero-copy completions: %s",
		         e->vm->name, (unsigned long long)sl->epoch, strerror(-rc));
	return rc;
}

static void *sender_main(void *arg)
{
	struct psess *ps = arg;

	pthread_mutex_lock(&ps->qlock);
	for (;;) {
		struct staged *sl;
		int rc;

		while (!ps->send_stop && ps->q_len == 0)
			pthread_cond_wait(&ps->qcv, &ps->qlock);
		if (ps->send_stop)
			break;
		sl = &ps->q[ps->q_head];
		pthread_mutex_unlock(&ps->qlock);
		rc = ship(ps, sl);
		pthread_mutex_lock(&ps->qlock);
		if (rc < 0) {
			ps->send_rc = rc;
			pthread_cond_broadcast(&ps->qcv);
			break;
		}
		/* sent and its pages released by the kernel: the slot (and the
		 * scan buffer it holds) is free */
		ps->q_bytes -= sl->bytes;
		ps->q_head = (ps->q_head + 1) % QSLOTS;
		ps->q_len--;
		pthread_cond_broadcast(&ps->qcv);
	}
	pthread_mutex_unlock(&ps->qlock);
	return NULL;
}

int ps_sender_start(struct psess *ps)
{
	int rc = pthread_create(&ps->sender, NULL, sender_main, ps);

	if (rc != 0)
		return -rc;
	pthread_setname_np(ps->sender, "vft-send");
	ps->sender_on = true;
	return 0;
}

void ps_sender_stop(struct psess *ps, bool hard)
{
	if (!ps->sender_on)
		return;
	pthread_mutex_lock(&ps->qlock);
	ps->send_stop = true;
	pthread_cond_broadcast(&ps->qcv);
	pthread_mutex_unlock(&ps->qlock);
	if (hard)
		shutdown(ps->fd, SHUT_RDWR);
	pthread_join(ps->sender, NULL);
	ps->sender_on = false;
}

void ps_staged_free(struct staged *sl)
{
	free(sl->dev);
	free(sl->ev.buf);
	memset(sl, 0, sizeof(*sl));
}
