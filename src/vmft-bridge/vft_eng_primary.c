/*
 * atca-vmft, primary side: the epoch thread. It owns the replication
 * connection and QMP while the guest is protected: connect to the backup,
 * full sync while the guest runs, then one paused capture per epoch, each
 * shipped and acknowledged in order; output of an epoch is released on its
 * acknowledgement.
 */
#include "config.h"

#include "vft_eng_psess.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "af_util.h"
#include "vft_qmp.h"
#include "vft_scan.h"
#include "vft_store.h"
#include "vft_tmpl.h"

/* ---- socket helpers ----------------------------------------------------------- */

int eng_write_all(int fd, const struct iovec *iov_in, int iovcnt)
{
	struct iovec iov[8];
	int n = iovcnt;

	if (iovcnt > 8)
		return -EINVAL;
	memcpy(iov, iov_in, sizeof(iov[0]) * (size_t)iovcnt);
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	while (mh.msg_iovlen > 0) {
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		while (w > 0 && mh.msg_iovlen > 0) {
			if ((size_t)w >= mh.msg_iov[0].iov_len) {
				w -= (ssize_t)mh.msg_iov[0].iov_len;
				mh.msg_iov++;
				mh.msg_iovlen--;
			} else {
				mh.msg_iov[0].iov_base = (uint8_t *)mh.msg_iov[0].iov_base + w;
				mh.msg_iov[0].iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return 0;
}

/* Reads exactly len bytes; -EAGAIN if the socket's timeout expired before the
 * first byte, -ETIMEDOUT if it expired in the middle, -ECONNRESET on EOF. */
int eng_read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = recv(fd, (uint8_t *)buf + got, len - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return got == 0 ? -EAGAIN : -ETIMEDOUT;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ECONNRESET;
		got += (size_t)r;
	}
	return 0;
}

int eng_send_frame(int fd, uint32_t *seq, struct vft_mac *mac, uint16_t type, uint64_t epoch,
                   const struct iovec *iov, int iovcnt)
{
	uint8_t hdr[VFT_HDR_SIZE];
	struct iovec all[8];
	int rc;

	if (iovcnt > 7)
		return -EINVAL;
	vft_hdr_encodev(hdr, type, (*seq)++, epoch, iov, iovcnt);
	rc = vft_mac_seal(mac, hdr, iov, iovcnt);
	if (rc < 0)
		return rc;
	all[0].iov_base = hdr;
	all[0].iov_len = sizeof(hdr);
	for (int i = 0; i < iovcnt; i++)
		all[i + 1] = iov[i];
	return eng_write_all(fd, all, iovcnt + 1);
}

static void set_rcvtimeo(int fd, double ms)
{
	struct timeval tv;

	if (ms < 1)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms - (double)tv.tv_sec * 1000) * 1000);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void set_sndtimeo(int fd, double ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms - (double)tv.tv_sec * 1000) * 1000);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_peer(struct vft_eng *e)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char port[8];
	int fd = -1, one = 1, buf = 8 << 20;
	struct timeval tv = {.tv_sec = 0, .tv_usec = 500000};

	snprintf(port, sizeof(port), "%u", e->port);
	if (getaddrinfo(e->peer_addr, port, &hints, &res) != 0 || res == NULL)
		return -EHOSTUNREACH;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* connect() honours SO_SNDTIMEO: a dead blade answers nothing */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	if (connect(fd, res->ai_addr, res->ai_addrlen) < 0)
		goto fail;
	freeaddrinfo(res);
	/* sends may block while the backup commits; the ack timeout bounds it */
	tv.tv_sec = (time_t)(e->cfg->vmft.ack_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(e->cfg->vmft.ack_timeout_ms % 1000) * 1000;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	return -EHOSTUNREACH;
}

/* ---- frames from the backup ------------------------------------------------------ */

/* Reads one frame from the backup within ms. 0 with *type set, -EAGAIN if
 * nothing came, another -errno when the link must be dropped (logged). */
static int recv_frame(struct psess *ps, double ms, struct vft_hdr *h)
{
	struct vft_eng *e = ps->e;
	uint8_t raw[VFT_HDR_SIZE];
	char why[160];
	int rc;

	set_rcvtimeo(ps->fd, ms);
	rc = eng_read_full(ps->fd, raw, sizeof(raw));
	if (rc == -EAGAIN)
		return rc;
	if (rc == 0) {
		set_rcvtimeo(ps->fd, (double)e->cfg->vmft.ack_timeout_ms);
		rc = vft_hdr_decode(raw, h, why, sizeof(why));
	} else {
		snprintf(why, sizeof(why), "%s", strerror(-rc));
	}
	if (rc == 0 && h->length > RXBUF_SIZE) {
		snprintf(why, sizeof(why), "%s frame of %u bytes from the backup",
		         vft_ftype_name(h->type), h->length);
		rc = -EBADMSG;
	}
	if (rc == 0 && h->length > 0)
		rc = eng_read_full(ps->fd, ps->rxbuf, h->length);
	if (rc == 0 && vft_frame_verify(raw, h, ps->rxbuf) != 0) {
		snprintf(why, sizeof(why), "checksum mismatch on %s", vft_ftype_name(h->type));
		rc = -EBADMSG;
	}
	if (rc == 0 && vft_mac_verify(&ps->auth.rx, raw, ps->rxbuf, h->length) != 0) {
		snprintf(why, sizeof(why),
		         "bad MAC on %s frame %u from %s:%u (not the session's key)",
		         vft_ftype_name(h->type), h->seq, e->peer_addr, e->port);
		rc = -EBADMSG;
	}
	if (rc == 0 && h->seq != ps->rx_seq) {
		snprintf(why, sizeof(why), "frame %u where %u was due", h->seq, ps->rx_seq);
		rc = -EBADMSG;
	}
	if (rc != 0) {
		eng_tlog(e, LOG_WARNING, "vmft %s: replication link: %s", e->vm->name, why);
		return rc == -EAGAIN ? -ETIMEDOUT : rc;
	}
	ps->rx_seq++;
	return 0;
}

static int handle_backup_frame(struct psess *ps, const struct vft_hdr *h)
{
	struct vft_eng *e = ps->e;
	struct vft_ack ack;
	uint32_t reason;
	char why[160];

	switch (h->type) {
	case VFT_F_PING:
		return 0;
	case VFT_F_BYE:
		vft_bye_decode(ps->rxbuf, h->length, &reason, why, sizeof(why));
		eng_tlog(e, LOG_WARNING, "vmft %s: the backup closed the link (reason %u)",
		         e->vm->name, reason);
		return -ECONNRESET;
	case VFT_F_ACK:
		if (vft_ack_decode(ps->rxbuf, h->length, &ack, why, sizeof(why)) != 0)
			break;
		pthread_mutex_lock(&ps->qlock);
		if (ps->n_unacked == 0 || h->epoch != ps->unacked[0]) {
			snprintf(why, sizeof(why), "ack of epoch %llu, expected %llu",
			         (unsigned long long)h->epoch,
			         (unsigned long long)(ps->n_unacked ? ps->unacked[0] : 0));
			pthread_mutex_unlock(&ps->qlock);
			break;
		}
		memmove(ps->unacked, ps->unacked + 1, sizeof(ps->unacked[0]) * (MAX_UNACKED - 1));
		memmove(ps->sent_at, ps->sent_at + 1, sizeof(ps->sent_at[0]) * (MAX_UNACKED - 1));
		ps->n_unacked--;
		pthread_cond_broadcast(&ps->qcv);
		pthread_mutex_unlock(&ps->qlock);
		eng_output_release_to(&e->out, h->epoch);
		eng_frameq_release_to(&e->netq, h->epoch);
		pthread_mutex_lock(&e->lock);
		e->st.epochs_acked++;
		e->st.acked_epoch = h->epoch;
		e->st.last_commit_at = af_mono_s();
		pthread_mutex_unlock(&e->lock);
		if (ps->stalled) {
			ps->stalled = false;
			eng_post(e, EM_EVENT, LOG_NOTICE, EE_FLOWING, h->epoch,
			         "vmft %s: replication flows again (epoch %llu acknowledged)",
			         e->vm->name, (unsigned long long)h->epoch);
		}
		if (!ps->acked_once) {
			ps->acked_once = true;
			pthread_mutex_lock(&e->lock);
			e->st.sync_ms = (af_mono_s() - e->st.sync_started_at) * 1e3;
			eng_tlog(
			        e, LOG_INFO,
			        "vmft %s: full sync acknowledged %.0f ms after it began: handshake "
			        "%.0f ms, RAM %.0f ms (%llu pages sent), disk %.0f ms, the rest "
			        "(capture, send, commit) %.0f ms",
			        e->vm->name, e->st.sync_ms, e->st.sync_hs_ms, e->st.sync_ram_ms,
			        (unsigned long long)e->st.sync_pages, e->st.sync_disk_ms,
			        e->st.sync_ms - e->st.sync_hs_ms - e->st.sync_ram_ms -
			                e->st.sync_disk_ms);
			pthread_mutex_unlock(&e->lock);
			eng_post(e, EM_EVENT, LOG_NOTICE, EE_ACKED, h->epoch,
			         "vmft %s: backup synchronised, epoch %llu committed on blade %u",
			         e->vm->name, (unsigned long long)h->epoch, e->peer_slot);
		}
		return 0;
	default:
		snprintf(why, sizeof(why), "unexpected %s frame", vft_ftype_name(h->type));
		break;
	}
	eng_tlog(e, LOG_WARNING, "vmft %s: replication link: %s", e->vm->name, why);
	return -EBADMSG;
}

/* What wait_acks looks at, read at once under qlock. */
struct qview {
	unsigned outstanding; /* queued + sent, not acknowledged */
	unsigned q_len;
	uint64_t q_bytes;
	uint64_t first;    /* oldest unacknowledged epoch sent, 0 = none */
	double first_sent; /* when it was sent */
	int send_rc;
};

static void qview(struct psess *ps, struct qview *v)
{
	pthread_mutex_lock(&ps->qlock);
	v->outstanding = ps->q_len + ps->n_unacked;
	v->q_len = ps->q_len;
	v->q_bytes = ps->q_bytes;
	v->first = ps->n_unacked ? ps->unacked[0] : 0;
	v->first_sent = ps->n_unacked ? ps->sent_at[0] : 0;
	v->send_rc = ps->send_rc;
	pthread_mutex_unlock(&ps->qlock);
}

/* Room for one more capture: fewer than max epochs outstanding, a free
 * slot in the send queue and its bytes under vmft.send_buffer. */
static bool has_room(const struct psess *ps, const struct qview *v, unsigned max)
{
	return v->outstanding < max && v->q_len < QSLOTS &&
	       (v->q_len == 0 || v->q_bytes < ps->e->cfg->vmft.send_buffer);
}

/* Waits until `until` (monotonic s) handling acks; with until 0, returns
 * as soon as has_room(max). Sends heartbeats when the wire is idle. */
/* The session is to end: the engine stops, or the manager stopped protecting
 * (even if it asked for protection again since). */
static bool ps_cancelled(const struct psess *ps)
{
	const struct vft_eng *e = ps->e;

	return e->stop_epochs || !e->protect_wanted ||
	       __atomic_load_n(&e->protect_gen, __ATOMIC_ACQUIRE) != ps->gen;
}

static int wait_acks(struct psess *ps, double until, unsigned max)
{
	struct vft_eng *e = ps->e;
	double hb = (double)e->cfg->vmft.heartbeat_ms / 1000.0;
	double ackto = (double)e->cfg->vmft.ack_timeout_ms / 1000.0;

	for (;;) {
		double now = af_mono_s(), left, last_tx;
		struct vft_hdr h;
		struct qview v;
		int rc;

		if (ps_cancelled(ps))
			return -ECANCELED;
		qview(ps, &v);
		if (v.send_rc < 0)
			return v.send_rc; /* logged by the sender */
		/* a third of the ack timeout without an acknowledgement: the
		 * backup (or the link) falls behind; said once, before the
		 * timeout drops the backup */
		if (v.first && ps->acked_once && !ps->stalled && now - v.first_sent > ackto / 3) {
			uint64_t acked;

			ps->stalled = true;
			pthread_mutex_lock(&e->lock);
			acked = e->st.acked_epoch;
			pthread_mutex_unlock(&e->lock);
			eng_post(e, EM_EVENT, LOG_WARNING, EE_STALLED, acked,
			         "vmft %s: replication stalled: epoch %llu unacknowledged for %.0f "
			         "ms (epoch %llu acknowledged)",
			         e->vm->name, (unsigned long long)v.first,
			         (now - v.first_sent) * 1e3, (unsigned long long)acked);
		}
		if (v.first && now - v.first_sent > ackto) {
			eng_tlog(e, LOG_WARNING,
			         "vmft %s: epoch %llu not acknowledged within %.0f ms", e->vm->name,
			         (unsigned long long)v.first, ackto * 1e3);
			return -ETIMEDOUT;
		}
		if (until == 0 ? has_room(ps, &v, max) : now >= until)
			return 0;
		/* a silent primary is a dead primary to the backup */
		pthread_mutex_lock(&ps->txlock);
		last_tx = ps->last_tx;
		pthread_mutex_unlock(&ps->txlock);
		if (now - last_tx > hb / 3 && v.q_len == 0) {
			rc = ps_frame(ps, VFT_F_PING, 0, NULL, 0);
			if (rc < 0)
				return rc;
		}
		left = (until == 0 ? ackto : until - now) * 1e3;
		if (left > hb * 1e3 / 3)
			left = hb * 1e3 / 3;
		/* the sender frees a slot without a word on the socket: look
		 * again soon while it works */
		if (until == 0 && v.q_len > 0 && left > 2)
			left = 2;
		rc = recv_frame(ps, left, &h);
		if (rc == -EAGAIN)
			continue;
		if (rc < 0)
			return rc;
		rc = handle_backup_frame(ps, &h);
		if (rc < 0)
			return rc;
	}
}

/* ---- the paused capture ------------------------------------------------------------ */

static int read_devstate(struct staged *sl, int fd)
{
	sl->dev_len = 0;
	for (;;) {
		ssize_t r;

		if (sl->dev_cap - sl->dev_len < 65536) {
			size_t ncap = sl->dev_cap ? sl->dev_cap * 2 : (1u << 20);
			uint8_t *nb;

			if (ncap > (64u << 20))
				return -EFBIG;
			nb = realloc(sl->dev, ncap);
			if (nb == NULL)
				return -ENOMEM;
			sl->dev = nb;
			sl->dev_cap = ncap;
		}
		r = recv(fd, sl->dev + sl->dev_len, sl->dev_cap - sl->dev_len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return 0;
		sl->dev_len += (size_t)r;
	}
}

/* The device state arrives while the pages are scanned: the two overlap in
 * the pause (QEMU's migration thread writes it, this thread reads it, the
 * scan runs on the others). QEMU does not touch guest RAM while saving the
 * state of a stopped machine. */
/* pages per live-copy step: the template's unchanged pages are skipped,
 * the others leave in full PAGES batches */
#define LIVE_RANGE (16 * (uint64_t)VFT_BATCH_PAGES)

struct devrd {
	struct vft_eng *e;
	struct staged *sl;
	int rc;
	char err[160];
};

static void *devstate_main(void *arg)
{
	struct devrd *d = arg;
	struct vft_eng *e = d->e;
	struct timeval tv = {.tv_sec = 5};
	int cfd;

	setsockopt(e->mig_listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	cfd = accept4(e->mig_listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0) {
		d->rc = -errno;
		snprintf(d->err, sizeof(d->err), "QEMU did not send its device state: %s",
		         strerror(errno));
		return NULL;
	}
	setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	d->rc = read_devstate(d->sl, cfd);
	close(cfd);
	if (d->rc < 0)
		snprintf(d->err, sizeof(d->err), "device state: %s", strerror(-d->rc));
	return NULL;
}

/* stop, device state and changed pages, cont: the guest's pause. The scan
 * writes into its current result buffer, free by then (see stage_epoch). */
static int capture(struct psess *ps, struct staged *sl)
{
	struct vft_eng *e = ps->e;
	char err[256], uri[4200], status[32];
	struct devrd dr = {.e = e, .sl = sl};
	double t0 = af_mono_s(), t_dev, t_scan;
	pthread_t th;
	int rc, rc2;

	rc = vft_qmp_simple(e->q.qmp, "stop", 2000, err, sizeof(err));
	if (rc < 0)
		goto fail;
	/* everything the guest wrote before it stopped belongs to this epoch */
	eng_serial_drain(e);
	eng_output_mark(&e->out, sl->epoch);
	eng_net_drain(e);
	eng_frameq_mark(&e->netq, sl->epoch);
	snprintf(uri, sizeof(uri), "unix:%s/mig.sock", e->dir);
	t_dev = af_mono_s();
	rc = vft_qmp_migrate(e->q.qmp, uri, 2000, err, sizeof(err));
	if (rc < 0)
		goto resume;
	rc = -pthread_create(&th, NULL, devstate_main, &dr);
	if (rc < 0) {
		/* no thread: read it here, then scan */
		devstate_main(&dr);
	}
	t_scan = af_mono_s();
	rc2 = vft_scan_run(e->scan, &sl->res);
	sl->scan_ms = (af_mono_s() - t_scan) * 1e3;
	if (rc == 0)
		pthread_join(th, NULL);
	rc = dr.rc;
	if (rc < 0) {
		snprintf(err, sizeof(err), "%s", dr.err);
		goto resume;
	}
	for (int i = 0;; i++) {
		rc = vft_qmp_migrate_status(e->q.qmp, status, sizeof(status), 2000, err,
		                            sizeof(err));
		if (rc < 0)
			goto resume;
		if (strcmp(status, "completed") == 0)
			break;
		if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0 || i > 2000) {
			rc = -EIO;
			snprintf(err, sizeof(err), "device-state migration %s", status);
			goto resume;
		}
	}
	sl->dev_ms = (af_mono_s() - t_dev) * 1e3;
	/* the guest is stopped and QEMU drained its disk requests: the log
	 * holds exactly this epoch's writes and inputs */
	vft_evlog_take(&e->evlog, &sl->ev);
	eng_crash_point(e, ENG_CRASH_PAUSE, ps->n_incr);
	rc = rc2;
	if (rc < 0)
		snprintf(err, sizeof(err), "page scan: %s", strerror(-rc));
resume:
	if (rc == 0 && e->freeze_wanted) {
		ps->held_stopped = true;
		sl->pause_ms = (af_mono_s() - t0) * 1e3;
		return 0;
	}
	rc2 = vft_qmp_simple(e->q.qmp, "cont", 2000, rc < 0 ? NULL : err, rc < 0 ? 0 : sizeof(err));
	if (rc == 0)
		rc = rc2;
	sl->pause_ms = (af_mono_s() - t0) * 1e3;
	if (rc == 0)
		return 0;
fail:
	eng_tlog(e, LOG_ERR, "vmft %s: capture of epoch %llu failed: %s", e->vm->name,
	         (unsigned long long)sl->epoch, err);
	/* a capture fails because of QEMU (dead, or refusing), never because
	 * of the link: the session must not be retried with a dead guest, or
	 * the backup would keep seeing a live primary and refuse to promote */
	return -EIO;
}

/* Captures epoch `epoch` into the next free slot of the send queue (the
 * caller made room) and queues it for the sender. A FULL epoch was begun
 * and its live copy sent before (pre_*). */
static int stage_epoch(struct psess *ps, uint64_t epoch, uint32_t kind, uint64_t pre_pages,
                       uint64_t pre_frames, uint64_t disk_bytes)
{
	struct vft_eng *e = ps->e;
	struct staged *sl;
	int rc;

	pthread_mutex_lock(&ps->qlock);
	assert(ps->q_len < QSLOTS);
	sl = &ps->q[(ps->q_head + ps->q_len) % QSLOTS];
	pthread_mutex_unlock(&ps->qlock);
	free(sl->ev.buf);
	memset(&sl->ev, 0, sizeof(sl->ev));
	sl->epoch = epoch;
	sl->kind = kind;
	sl->n_incr = ps->n_incr;
	sl->pre_pages = pre_pages;
	sl->pre_frames = pre_frames;
	sl->disk_bytes = disk_bytes;
	rc = capture(ps, sl);
	if (rc < 0)
		return rc;
	/* the next capture fills the scan's other buffer: this one is the
	 * sender's until its slot is free again */
	rc = vft_scan_flip(e->scan);
	if (rc < 0) {
		eng_tlog(e, LOG_ERR, "vmft %s: no memory for a second staging buffer", e->vm->name);
		return rc;
	}
	sl->bytes = sl->res.n_pages * VFT_PAGE_SIZE + sl->dev_len + sl->ev.len;
	sl->queued_at = af_mono_s();
	pthread_mutex_lock(&ps->qlock);
	ps->q_len++;
	ps->q_bytes += sl->bytes;
	pthread_cond_broadcast(&ps->qcv);
	pthread_mutex_unlock(&ps->qlock);
	return 0;
}

static int begin_epoch(struct psess *ps, uint64_t epoch, uint32_t kind)
{
	struct vft_epoch_begin b = {.kind = kind};
	uint8_t buf[VFT_EPOCH_BEGIN_SIZE];
	struct iovec iov;

	if (kind == VFT_EPOCH_FULL && ps->tmpl_pages != NULL) {
		b.flags = VFT_BEGIN_TMPL_RAM | (ps->tmpl_blocks ? VFT_BEGIN_TMPL_DISK : 0);
		b.tmpl_id = ps->tmpl_id;
	}
	iov.iov_base = buf;
	iov.iov_len = vft_epoch_begin_encode(buf, &b);
	return ps_frame(ps, VFT_F_EPOCH_BEGIN, epoch, &iov, 1);
}

/* Full sync while the guest runs: every page, copied then hashed, so the
 * first paused scan sends exactly what changed since it was copied; on a
 * template, only the pages whose hash differs from the template's. */
static int live_copy(struct psess *ps, uint64_t epoch, const uint64_t *base, uint64_t *n_pages,
                     uint64_t *n_frames)
{
	struct vft_eng *e = ps->e;
	uint64_t total = vft_scan_npages(e->scan);
	/* the scan's two buffers alternate: one is copied into while the
	 * kernel may still send the other zero-copy */
	uint32_t ticket[2];
	unsigned cur = 0;
	int rc = 0;

	ticket[0] = ticket[1] = vft_zc_last(&ps->zc);
	for (uint64_t first = 0; rc == 0 && first < total; first += LIVE_RANGE) {
		struct vft_scan_result res;
		uint64_t cnt = total - first < LIVE_RANGE ? total - first : LIVE_RANGE;

		if (ps_cancelled(ps))
			return -ECANCELED;
		rc = ps_zc_wait(ps, ticket[cur]);
		if (rc == 0)
			rc = vft_scan_copy_range_diff(e->scan, first, cnt, base, &res);
		if (rc == 0)
			rc = ps_pages(ps, epoch, &res, n_frames, UINT64_MAX, &ticket[cur]);
		if (rc == 0)
			rc = vft_scan_flip(e->scan);
		cur ^= 1;
		*n_pages += res.n_pages;
	}
	/* the capture that follows writes into a buffer sent from here */
	if (rc == 0)
		rc = ps_zc_wait(ps, vft_zc_last(&ps->zc));
	return rc;
}

static bool block_differs(const struct psess *ps, uint64_t off, const uint8_t *p, size_t len)
{
	if (ps->tmpl_blocks != NULL)
		return vft_tmpl_hash(p, len) != ps->tmpl_blocks[off / VFT_TMPL_BLOCK];
	return !vft_store_all_zero(p, len);
}

/* Full sync of the disk while the guest runs: every non-zero block as it is
 * now. A block the guest writes during the copy may be copied before or
 * after the write; the write is in the epoch's event log either way (the
 * log started before the copy), and the backup replays the log after the
 * copy, so the backup's disk ends as the guest's disk at the capture. */
static int disk_copy(struct psess *ps, uint64_t epoch, uint64_t *n_frames, uint64_t *bytes)
{
	struct vft_eng *e = ps->e;
	char path[sizeof(e->disk.path)];
	uint8_t off8[8];
	uint8_t *buf = NULL;
	int fd, rc = 0;

	pthread_mutex_lock(&e->lock);
	af_strlcpy(path, e->disk.path, sizeof(path));
	pthread_mutex_unlock(&e->lock);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	buf = malloc(VFT_DISK_CHUNK);
	if (fd < 0 || buf == NULL) {
		rc = fd < 0 ? -errno : -ENOMEM;
		eng_tlog(e, LOG_ERR, "vmft %s: disk %s: %s", e->vm->name, path, strerror(-rc));
		goto out;
	}
	for (uint64_t off = 0; off < ps->disk_size; off += VFT_DISK_CHUNK) {
		size_t len = ps->disk_size - off < VFT_DISK_CHUNK ? (size_t)(ps->disk_size - off)
		                                                  : VFT_DISK_CHUNK;
		ssize_t r;

		if (ps_cancelled(ps)) {
			rc = -ECANCELED;
			goto out;
		}
		r = pread(fd, buf, len, (off_t)off);
		if (r < 0 && errno == EINTR) {
			off -= VFT_DISK_CHUNK;
			continue;
		}
		if (r < 0) {
			rc = -errno;
			eng_tlog(e, LOG_ERR, "vmft %s: reading disk %s: %s", e->vm->name, path,
			         strerror(errno));
			goto out;
		}
		if ((size_t)r < len)
			memset(buf + r, 0, len - (size_t)r);
		/* runs of 4 KiB blocks the backup's new disk lacks: it starts as
		 * holes, or as the template's disk base */
		for (size_t b = 0, end; b < len; b = end) {
			struct iovec iov[2];

			end = b + (len - b < 4096 ? len - b : 4096);
			if (!block_differs(ps, off + b, buf + b, end - b))
				continue;
			while (end < len) {
				size_t k = len - end < 4096 ? len - end : 4096;

				if (!block_differs(ps, off + end, buf + end, k))
					break;
				end += k;
			}
			for (int i = 0; i < 8; i++)
				off8[i] = (uint8_t)((off + b) >> (8 * i));
			iov[0].iov_base = off8;
			iov[0].iov_len = 8;
			iov[1].iov_base = buf + b;
			iov[1].iov_len = end - b;
			rc = ps_frame(ps, VFT_F_DISK, epoch, iov, 2);
			if (rc < 0)
				goto out;
			(*n_frames)++;
			*bytes += end - b;
		}
	}
	ps->last_tx = af_mono_s();
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

/* One TMPL frame into the table it belongs to, in order. */
static int take_hashes(struct psess *ps, const struct vft_hdr *h, const struct vft_welcome *w,
                       uint64_t got[2], char *why, size_t n)
{
	struct vft_tmpl_frame f;
	uint64_t *table;

	if (h->type != VFT_F_TMPL) {
		snprintf(why, n, "%s frame among the template's hashes", vft_ftype_name(h->type));
		return -EBADMSG;
	}
	if (vft_tmpl_decode(ps->rxbuf, h->length, &f, why, n) < 0)
		return -EBADMSG;
	if (f.what != (got[0] < w->tmpl_pages ? VFT_TMPL_PAGES : VFT_TMPL_BLOCKS) ||
	    f.first != got[f.what] ||
	    f.count > (f.what == VFT_TMPL_PAGES ? w->tmpl_pages : w->tmpl_blocks) - f.first) {
		snprintf(why, n, "template hashes %u..%llu of kind %u out of order",
		         (unsigned)f.first, (unsigned long long)(f.first + f.count), f.what);
		return -EBADMSG;
	}
	table = f.what == VFT_TMPL_PAGES ? ps->tmpl_pages : ps->tmpl_blocks;
	for (uint32_t i = 0; i < f.count; i++) {
		uint64_t v = 0;

		for (int b = 7; b >= 0; b--)
			v = (v << 8) | f.hashes[(size_t)i * 8 + (size_t)b];
		table[f.first + i] = v;
	}
	got[f.what] += f.count;
	return 0;
}

static void drop_template(struct psess *ps)
{
	free(ps->tmpl_pages);
	free(ps->tmpl_blocks);
	ps->tmpl_pages = ps->tmpl_blocks = NULL;
	ps->tmpl_id = 0;
}

/* The hashes of the backup's template, right after its WELCOME, checked
 * against what it announced: the count, the order, the content id. */
static int recv_template(struct psess *ps, const struct vft_welcome *w)
{
	struct vft_eng *e = ps->e;
	uint64_t got[2] = {0, 0}, id;
	char why[200] = "";
	int rc = 0;

	if (w->tmpl_pages != e->vm->memory / VFT_PAGE_SIZE ||
	    (w->tmpl_blocks &&
	     w->tmpl_blocks != (ps->disk_size + VFT_TMPL_BLOCK - 1) / VFT_TMPL_BLOCK)) {
		snprintf(why, sizeof(why), "a template of %llu pages and %llu blocks for this VM",
		         (unsigned long long)w->tmpl_pages, (unsigned long long)w->tmpl_blocks);
		rc = -EBADMSG;
		goto out;
	}
	ps->tmpl_pages = malloc(w->tmpl_pages * sizeof(uint64_t));
	ps->tmpl_blocks = w->tmpl_blocks ? malloc(w->tmpl_blocks * sizeof(uint64_t)) : NULL;
	if (ps->tmpl_pages == NULL || (w->tmpl_blocks && ps->tmpl_blocks == NULL)) {
		snprintf(why, sizeof(why), "no memory for the template's hashes");
		rc = -ENOMEM;
		goto out;
	}
	while (rc == 0 && (got[0] < w->tmpl_pages || got[1] < w->tmpl_blocks)) {
		struct vft_hdr h;

		rc = recv_frame(ps, (double)e->cfg->vmft.ack_timeout_ms, &h);
		if (rc < 0)
			return rc == -EAGAIN ? -ETIMEDOUT : rc; /* logged */
		if (h.type == VFT_F_PING)
			continue;
		if (h.type == VFT_F_BYE)
			return handle_backup_frame(ps, &h);
		rc = take_hashes(ps, &h, w, got, why, sizeof(why));
	}
	if (rc < 0)
		goto out;
	/* without its disk base the id cannot be recomputed here (the block
	 * hashes stayed there); the frames' checksums still cover the hashes */
	id = vft_tmpl_content_id(e->vm->memory, w->tmpl_blocks ? ps->disk_size : 0, ps->tmpl_pages,
	                         ps->tmpl_blocks);
	if (id != w->tmpl_id && w->tmpl_blocks) {
		snprintf(why, sizeof(why), "its hashes make content id %016llx, not %016llx",
		         (unsigned long long)id, (unsigned long long)w->tmpl_id);
		rc = -EBADMSG;
		goto out;
	}
	ps->tmpl_id = w->tmpl_id;
	return 0;
out:
	eng_tlog(e, LOG_WARNING, "vmft %s: the backup's template: %s", e->vm->name, why);
	drop_template(ps);
	return rc;
}

static int handshake(struct psess *ps)
{
	struct vft_eng *e = ps->e;
	struct vft_hello hello = {.session = e->session,
	                          .ram_size = e->vm->memory,
	                          .config_hash = e->config_hash,
	                          .page_size = VFT_PAGE_SIZE,
	                          .flags = e->cfg->vmft.templates ? VFT_HELLO_TMPL : 0,
	                          .disk_size = ps->disk_size};
	uint8_t buf[VFT_HELLO_SIZE];
	struct iovec iov = {.iov_base = buf};
	struct vft_welcome w;
	struct vft_hdr h;
	char why[160];
	int rc;

	af_strlcpy(hello.vm, e->vm->name, sizeof(hello.vm));
	if (e->authenticate) {
		hello.flags |= VFT_HELLO_AUTH;
		rc = vft_auth_nonce(hello.nonce);
		if (rc < 0) {
			eng_tlog(e, LOG_ERR, "vmft %s: getrandom: %s", e->vm->name, strerror(-rc));
			return rc;
		}
	}
	iov.iov_len = vft_hello_encode(buf, &hello);
	vft_auth_set_hello(&ps->auth, buf);
	rc = ps_frame(ps, VFT_F_HELLO, 0, &iov, 1);
	if (rc < 0)
		return rc;
	rc = recv_frame(ps, (double)e->cfg->vmft.ack_timeout_ms, &h);
	if (rc < 0)
		return rc == -EAGAIN ? -ETIMEDOUT : rc;
	if (h.type == VFT_F_BYE)
		return handle_backup_frame(ps, &h);
	if (e->authenticate) {
		/* nothing of the guest leaves before the backup proved the key */
		uint8_t ab[VFT_AUTH_SIZE];
		struct iovec aiov = {.iov_base = ab, .iov_len = sizeof(ab)};

		if (h.type != VFT_F_AUTH) {
			eng_tlog(
			        e, LOG_WARNING,
			        "vmft %s: the backup at %s:%u answered HELLO with %s, not AUTH: it "
			        "does not authenticate; link dropped",
			        e->vm->name, e->peer_addr, e->port, vft_ftype_name(h.type));
			return -EACCES;
		}
		rc = vft_auth_primary_answer(&ps->auth, ps->rxbuf, h.length, ab, why, sizeof(why));
		if (rc < 0) {
			eng_tlog(e, LOG_WARNING,
			         "vmft %s: the backup at %s:%u failed authentication: %s; link "
			         "dropped, nothing sent",
			         e->vm->name, e->peer_addr, e->port, why);
			return -EACCES;
		}
		rc = ps_frame(ps, VFT_F_AUTH, 0, &aiov, 1);
		if (rc < 0)
			return rc;
		rc = recv_frame(ps, (double)e->cfg->vmft.ack_timeout_ms, &h);
		if (rc < 0)
			return rc == -EAGAIN ? -ETIMEDOUT : rc;
		if (h.type == VFT_F_BYE)
			return handle_backup_frame(ps, &h);
		eng_tlog(e, LOG_INFO, "vmft %s: the backup at %s:%u authenticated", e->vm->name,
		         e->peer_addr, e->port);
	}
	if (h.type != VFT_F_WELCOME ||
	    vft_welcome_decode(ps->rxbuf, h.length, &w, why, sizeof(why)) != 0) {
		eng_tlog(e, LOG_WARNING, "vmft %s: the backup answered HELLO with %s", e->vm->name,
		         vft_ftype_name(h.type));
		return -EBADMSG;
	}
	return w.tmpl_pages ? recv_template(ps, &w) : 0;
}

/* Freeze: epoch was captured with the guest left stopped; once the backup
 * acknowledged it, primary and backup hold the same epoch (RAM, devices,
 * disk) until thaw. Heartbeats go on meanwhile. */
static int hold_frozen(struct psess *ps, uint64_t epoch)
{
	struct vft_eng *e = ps->e;
	char err[256];
	int rc = wait_acks(ps, 0, 1);

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	e->st.frozen_epoch = epoch;
	pthread_mutex_unlock(&e->lock);
	eng_tlog(e, LOG_NOTICE, "vmft %s: frozen after epoch %llu (acknowledged)", e->vm->name,
	         (unsigned long long)epoch);
	while (rc == 0 && e->freeze_wanted)
		rc = wait_acks(ps, af_mono_s() + 0.05, 0);
	pthread_mutex_lock(&e->lock);
	e->st.frozen_epoch = 0;
	pthread_mutex_unlock(&e->lock);
	if (rc < 0)
		return rc;
	ps->held_stopped = false;
	rc = vft_qmp_simple(e->q.qmp, "cont", 2000, err, sizeof(err));
	if (rc < 0) {
		eng_tlog(e, LOG_ERR, "vmft %s: cont after thaw: %s", e->vm->name, err);
		return -EIO;
	}
	eng_tlog(e, LOG_NOTICE, "vmft %s: thawed", e->vm->name);
	return 0;
}

static void say_link_up(struct psess *ps, uint64_t epoch)
{
	struct vft_eng *e = ps->e;
	char tmpl[80] = "";

	if (ps->tmpl_pages)
		snprintf(tmpl, sizeof(tmpl), " on its template %016llx%s",
		         (unsigned long long)ps->tmpl_id, ps->tmpl_blocks ? " and disk base" : "");
	eng_post(e, EM_EVENT, LOG_NOTICE, EE_LINK_UP, epoch,
	         "vmft %s: backup engine on blade %u (%s:%u) reached: full sync as epoch %llu%s "
	         "(zero-copy %s)",
	         e->vm->name, e->peer_slot, e->peer_addr, e->port, (unsigned long long)epoch, tmpl,
	         ps->zc.on ? "on" : "off");
	pthread_mutex_lock(&e->lock);
	e->st.syncs++;
	e->st.sync_tmpl_id = ps->tmpl_id;
	pthread_mutex_unlock(&e->lock);
}

/* The full sync: begun, RAM and disk copied while the guest runs, then
 * captured like any epoch (what changed meanwhile) and queued. */
static int full_sync(struct psess *ps, uint64_t epoch)
{
	struct vft_eng *e = ps->e;
	uint64_t n_pages = 0, n_frames = 0, disk_bytes = 0;
	const uint64_t *base = ps->tmpl_pages;
	uint64_t *zeros = NULL;
	double t0, t1;
	int rc;

	/* without a template the backup's new image starts all zero: a page
	 * still zero needs no sending either */
	if (base == NULL) {
		uint64_t n = vft_scan_npages(e->scan), h;
		static const uint8_t zero[VFT_PAGE_SIZE];

		zeros = malloc(n * sizeof(uint64_t));
		if (zeros == NULL)
			return -ENOMEM;
		h = vft_tmpl_hash(zero, sizeof(zero));
		for (uint64_t i = 0; i < n; i++)
			zeros[i] = h;
		base = zeros;
	}
	/* the backup copies its template before it reads on: sends may wait
	 * that long (about 1 s per 256 MiB at worst) */
	if (ps->tmpl_pages)
		set_sndtimeo(ps->fd, (double)e->cfg->vmft.ack_timeout_ms +
		                             (double)(e->vm->memory >> 28) * 1000.0 + 1000.0);
	vft_scan_reset(e->scan);
	/* from here on every disk write is logged: the copy below may miss it */
	vft_evlog_start(&e->evlog, af_mono_s());
	t0 = af_mono_s();
	rc = begin_epoch(ps, epoch, VFT_EPOCH_FULL);
	if (rc == 0)
		rc = live_copy(ps, epoch, base, &n_pages, &n_frames);
	t1 = af_mono_s();
	if (rc == 0)
		rc = disk_copy(ps, epoch, &n_frames, &disk_bytes);
	free(zeros);
	pthread_mutex_lock(&e->lock);
	e->st.sync_ram_ms = (t1 - t0) * 1e3;
	e->st.sync_disk_ms = (af_mono_s() - t1) * 1e3;
	e->st.sync_hs_ms = (t0 - e->st.sync_started_at) * 1e3;
	pthread_mutex_unlock(&e->lock);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	e->st.disk_sync_bytes = disk_bytes;
	e->st.sync_tmpl_pages = ps->tmpl_pages ? vft_scan_npages(e->scan) - n_pages : 0;
	pthread_mutex_unlock(&e->lock);
	rc = stage_epoch(ps, epoch, VFT_EPOCH_FULL, n_pages, n_frames, disk_bytes);
	if (rc == 0) {
		pthread_mutex_lock(&e->lock);
		e->st.sync_pages = n_pages + ps->q[ps->q_head].res.n_pages;
		pthread_mutex_unlock(&e->lock);
	}
	set_sndtimeo(ps->fd, (double)e->cfg->vmft.ack_timeout_ms);
	drop_template(ps);
	return rc;
}

static int psess_init(struct psess *ps, struct vft_eng *e, int fd)
{
	struct stat st;
	char err[160];
	int rc;

	memset(ps, 0, sizeof(*ps));
	ps->e = e;
	ps->fd = fd;
	ps->gen = __atomic_load_n(&e->protect_gen, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&e->lock);
	rc = stat(e->disk.path, &st);
	pthread_mutex_unlock(&e->lock);
	if (rc < 0 || st.st_size < (off_t)VFT_SECTOR) {
		eng_tlog(e, LOG_ERR, "vmft %s: the guest's disk %s: %s", e->vm->name, e->disk.path,
		         rc < 0 ? strerror(errno) : "smaller than a sector");
		return -EIO;
	}
	ps->disk_size = (uint64_t)st.st_size & ~(uint64_t)(VFT_SECTOR - 1);
	ps->rxbuf = malloc(RXBUF_SIZE);
	if (ps->rxbuf == NULL)
		return -ENOMEM;
	vft_auth_init(&ps->auth, &e->key, VFT_ROLE_PRIMARY);
	pthread_mutex_init(&ps->txlock, NULL);
	pthread_mutex_init(&ps->qlock, NULL);
	pthread_cond_init(&ps->qcv, NULL);
	vft_zc_init(&ps->zc, fd, e->cfg->vmft.zerocopy, (size_t)e->cfg->vmft.zerocopy_threshold,
	            err, sizeof(err));
	if (e->cfg->vmft.zerocopy && !ps->zc.on)
		eng_tlog(e, LOG_INFO, "vmft %s: zero-copy off: %s", e->vm->name, err);
	ps->last_tx = af_mono_s();
	return ps_sender_start(ps);
}

static void psess_fini(struct psess *ps, int rc)
{
	struct vft_eng *e = ps->e;

	if (ps->rxbuf == NULL)
		return;
	/* an orderly end lets the sender finish the epoch it ships; a broken
	 * link must not leave it blocked in a send */
	ps_sender_stop(ps, rc != -ECANCELED);
	if (ps->held_stopped) /* never leave the guest stopped behind */
		vft_qmp_simple(e->q.qmp, "cont", 2000, NULL, 0);
	if (rc == -ECANCELED) {
		uint8_t b[VFT_BYE_SIZE];
		struct iovec iov = {.iov_base = b, .iov_len = vft_bye_encode(b, 0)};

		ps_frame(ps, VFT_F_BYE, 0, &iov, 1);
	}
	/* the kernel may still hold pages of the staging buffers: the next
	 * session's first copy must not write them before it let go */
	if (ps->zc.on)
		vft_zc_wait(&ps->zc, vft_zc_last(&ps->zc), 1000);
	for (unsigned i = 0; i < QSLOTS; i++)
		ps_staged_free(&ps->q[i]);
	pthread_cond_destroy(&ps->qcv);
	pthread_mutex_destroy(&ps->qlock);
	pthread_mutex_destroy(&ps->txlock);
	free(ps->rxbuf);
	drop_template(ps);
	vft_auth_fini(&ps->auth);
}

static int protect_session(struct vft_eng *e, int fd)
{
	struct psess ps;
	uint64_t epoch;
	double started;
	int rc;

	rc = psess_init(&ps, e, fd);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&e->lock);
	e->st.sync_started_at = af_mono_s();
	pthread_mutex_unlock(&e->lock);
	rc = handshake(&ps);
	if (rc < 0)
		goto out;
	epoch = e->next_epoch++;
	/* from here on, output waits for the backup */
	eng_hold_output(e, true);
	say_link_up(&ps, epoch);
	rc = full_sync(&ps, epoch);
	if (rc == 0 && ps.held_stopped)
		rc = hold_frozen(&ps, epoch);
	started = af_mono_s();
	while (rc == 0) {
		/* epochs start one period apart (not a period after the last
		 * one was sent): output waits at most about one period plus the
		 * transfer; an epoch that overran is followed at once, as soon
		 * as the send queue has room */
		double next = started + (double)eng_epoch_ms(e) / 1000.0;

		if (next < af_mono_s())
			next = af_mono_s();
		rc = wait_acks(&ps, next, 0);
		if (rc == 0)
			rc = wait_acks(&ps, 0, MAX_OUTSTANDING);
		if (rc < 0)
			break;
		started = af_mono_s();
		ps.n_incr++;
		epoch = e->next_epoch++;
		rc = stage_epoch(&ps, epoch, VFT_EPOCH_INCR, 0, 0, 0);
		if (rc == 0 && ps.held_stopped)
			rc = hold_frozen(&ps, epoch);
	}
out:
	vft_evlog_stop(&e->evlog);
	psess_fini(&ps, rc);
	return rc;
}

static void *epoch_main(void *arg)
{
	struct vft_eng *e = arg;
	bool had_link = false;

	while (!e->stop_epochs) {
		int fd, rc;

		if (!e->protect_wanted) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_mutex_lock(&e->lock);
			if (!e->stop_epochs && !e->protect_wanted)
				pthread_cond_timedwait(&e->wake, &e->lock, &ts);
			pthread_mutex_unlock(&e->lock);
			continue;
		}
		fd = connect_peer(e);
		if (fd >= 0) {
			rc = protect_session(e, fd);
			close(fd);
			if (rc == -EIO) {
				/* QEMU refuses captures: the main loop sees it die or
				 * the manager decides; retrying would pause it forever */
				eng_post(e, EM_EVENT, LOG_ERR, EE_FAIL, 0,
				         "vmft %s: epochs stopped: QEMU failed a capture",
				         e->vm->name);
				break;
			}
			had_link = true;
			if (!e->stop_epochs)
				eng_post(e, EM_EVENT, LOG_WARNING, EE_LINK_LOST, 0,
				         "vmft %s: backup on blade %u lost (%s): the guest runs "
				         "unprotected",
				         e->vm->name, e->peer_slot, strerror(-rc));
		} else if (!had_link) {
			had_link = false;
		}
		if (!e->stop_epochs) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 500000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_mutex_lock(&e->lock);
			if (!e->stop_epochs)
				pthread_cond_timedwait(&e->wake, &e->lock, &ts);
			pthread_mutex_unlock(&e->lock);
		}
	}
	return NULL;
}

int eng_primary_start(struct vft_eng *e, char *err, size_t n)
{
	char path[4200];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int rc;

	if (e->epoch_running)
		return 0;
	if (e->mig_listen_fd < 0) {
		snprintf(path, sizeof(path), "%s/mig.sock", e->dir);
		if (strlen(path) >= sizeof(sa.sun_path)) {
			snprintf(err, n, "path too long: %s", path);
			return -ENAMETOOLONG;
		}
		memcpy(sa.sun_path, path, strlen(path) + 1);
		unlink(path);
		e->mig_listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (e->mig_listen_fd < 0 || bind(e->mig_listen_fd, (void *)&sa, sizeof(sa)) < 0 ||
		    listen(e->mig_listen_fd, 1) < 0) {
			rc = -errno;
			snprintf(err, n, "%s: %s", path, strerror(errno));
			return rc;
		}
	}
	e->stop_epochs = false;
	rc = pthread_create(&e->epoch_thread, NULL, epoch_main, e);
	if (rc != 0) {
		snprintf(err, n, "epoch thread: %s", strerror(rc));
		return -rc;
	}
	e->epoch_running = true;
	return 0;
}

void eng_primary_stop(struct vft_eng *e)
{
	if (!e->epoch_running)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop_epochs = true;
	pthread_cond_broadcast(&e->wake);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->epoch_thread, NULL);
	e->epoch_running = false;
}
