/*
 * vmft zero-copy transmission: MSG_ZEROCOPY sends of the bulk, their
 * completion ids tracked as a frontier (`done`) plus the ranges that
 * arrived ahead of it.
 */
#include "config.h"

#include "vft_zc.h"

#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define NS_PER_MS 1000000ull
#define WAIT_STEP_US 20   /* completions on a LAN come within tens of us */
#define NOBUFS_STEP_US 50 /* optmem frees as completions are read */
#define N_AHEAD (sizeof(((struct vft_zc *)0)->ahead_lo) / sizeof(uint32_t))

/* one frame's send: the state its timeout rules depend on */
struct zc_tx {
	struct vft_zc *z;
	bool sent_any;     /* a byte of the frame left: a timeout is then -ETIMEDOUT */
	uint64_t deadline; /* of the ENOBUFS waits (ns), 0 until one started */
	size_t zc_bytes;   /* of the bulk, sent zero-copy */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap_us(long us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = us * 1000};

	nanosleep(&ts, NULL);
}

/* ---- completion ids ------------------------------------------------------------ */

/* ids compare by their distance from `done`: that stays right across the
 * u32 wraparound as long as fewer than 2^32 sends are pending */
static uint32_t off(const struct vft_zc *z, uint32_t id)
{
	return id - z->done;
}

static void drop_ahead(struct vft_zc *z, unsigned i)
{
	z->n_ahead--;
	z->ahead_lo[i] = z->ahead_lo[z->n_ahead];
	z->ahead_hi[i] = z->ahead_hi[z->n_ahead];
}

int vft_zc_note(struct vft_zc *z, uint32_t lo, uint32_t hi)
{
	unsigned i = 0;

	if (off(z, lo) > off(z, hi) || off(z, hi) >= z->next_id - z->done)
		return -EPROTO;
	/* merged into one range with its neighbours, so that reaching `done`
	 * absorbs everything contiguous at once (the ranges kept never touch
	 * each other, so one pass finds all the neighbours) */
	while (i < z->n_ahead) {
		if (off(z, z->ahead_lo[i]) > off(z, hi) + 1 ||
		    off(z, lo) > off(z, z->ahead_hi[i]) + 1) {
			i++;
			continue;
		}
		if (off(z, z->ahead_lo[i]) < off(z, lo))
			lo = z->ahead_lo[i];
		if (off(z, z->ahead_hi[i]) > off(z, hi))
			hi = z->ahead_hi[i];
		drop_ahead(z, i);
	}
	if (off(z, lo) == 0) {
		z->done = hi + 1;
		return 0;
	}
	if (z->n_ahead == N_AHEAD)
		return -EOVERFLOW;
	z->ahead_lo[z->n_ahead] = lo;
	z->ahead_hi[z->n_ahead] = hi;
	z->n_ahead++;
	return 0;
}

bool vft_zc_complete(const struct vft_zc *z, uint32_t ticket)
{
	uint32_t ahead = off(z, ticket);

	/* beyond the pending window is older than every pending send */
	return ahead == 0 || ahead > z->next_id - z->done;
}

uint32_t vft_zc_last(const struct vft_zc *z)
{
	return z->next_id;
}

/* ---- the error queue ----------------------------------------------------------- */

static bool is_recverr(const struct cmsghdr *cm)
{
	if (cm->cmsg_len < CMSG_LEN(sizeof(struct sock_extended_err)))
		return false;
	return (cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
	       (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR);
}

static int note_err(struct vft_zc *z, const struct cmsghdr *cm)
{
	struct sock_extended_err ee;
	int r;

	memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
	if (ee.ee_errno != 0)
		return -(int)ee.ee_errno;
	if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY)
		return 0;
	r = vft_zc_note(z, ee.ee_info, ee.ee_data);
	if (r < 0)
		return r;
	z->st.completions++;
	/* the kernel coalesces ranges whatever their flag: approximate */
	if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED)
		z->st.copied += (uint64_t)(ee.ee_data - ee.ee_info) + 1;
	return 0;
}

/* 1: read one (or was interrupted), 0: queue empty, or -errno */
static int reap_one(struct vft_zc *z)
{
	union {
		char buf[256];
		struct cmsghdr align;
	} ctl;
	struct msghdr mh = {.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};
	ssize_t n = recvmsg(z->fd, &mh, MSG_ERRQUEUE);
	int r;

	if (n < 0 && errno == EINTR)
		return 1;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (!is_recverr(cm))
			continue;
		r = note_err(z, cm);
		if (r < 0)
			return r;
	}
	return 1;
}

int vft_zc_reap(struct vft_zc *z)
{
	int r;

	/* nothing pending, nothing to read: spares copied sends a syscall */
	if (!z->on || z->done == z->next_id)
		return 0;
	do
		r = reap_one(z);
	while (r > 0);
	return r;
}

int vft_zc_wait(struct vft_zc *z, uint32_t ticket, int timeout_ms)
{
	uint64_t end;
	int r;

	if (timeout_ms < 0)
		return -EINVAL;
	end = now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
	for (;;) {
		r = vft_zc_reap(z);
		if (r < 0)
			return r;
		if (vft_zc_complete(z, ticket))
			return 0;
		if (now_ns() >= end)
			return -ETIMEDOUT;
		nap_us(WAIT_STEP_US);
	}
}

/* ---- sending ------------------------------------------------------------------- */

int vft_zc_init(struct vft_zc *z, int fd, bool want, size_t threshold, char *err, size_t errlen)
{
	int one = 1;

	memset(z, 0, sizeof(*z));
	z->fd = fd;
	z->threshold = threshold ? threshold : VFT_ZC_THRESHOLD_DEFAULT;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (fd < 0)
		return -EBADF;
	if (!want)
		return 0;
	if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "SO_ZEROCOPY refused: %s", strerror(errno));
		return 0;
	}
	z->on = true;
	return 0;
}

/* Consumes w bytes of mh's iovecs, and the empty ones after them: an
 * empty remainder would make sendmsg() return 0 forever. */
static void iov_advance(struct msghdr *mh, size_t w)
{
	while (mh->msg_iovlen > 0 && (w > 0 || mh->msg_iov[0].iov_len == 0)) {
		if (w >= mh->msg_iov[0].iov_len) {
			w -= mh->msg_iov[0].iov_len;
			mh->msg_iov++;
			mh->msg_iovlen--;
		} else {
			mh->msg_iov[0].iov_base = (uint8_t *)mh->msg_iov[0].iov_base + w;
			mh->msg_iov[0].iov_len -= w;
			w = 0;
		}
	}
}

static int timed_out(const struct zc_tx *tx)
{
	return tx->sent_any ? -ETIMEDOUT : -EAGAIN;
}

/* the ENOBUFS waits end with the socket's send timeout (none: UINT64_MAX) */
static int start_deadline(struct zc_tx *tx)
{
	struct timeval tv;
	socklen_t len = sizeof(tv);

	if (getsockopt(tx->z->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &len) < 0)
		return -errno;
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tx->deadline = UINT64_MAX;
	else
		tx->deadline = now_ns() + (uint64_t)tv.tv_sec * 1000000000ull +
		               (uint64_t)tv.tv_usec * 1000u;
	return 0;
}

/* ENOBUFS: our pending completions hold the socket's optmem (or the
 * pinned-pages limit); reading them frees it. 0: try again, or -errno. */
static int nobufs_wait(struct zc_tx *tx, int *flags)
{
	struct vft_zc *z = tx->z;
	uint32_t done = z->done;
	int r;

	z->st.nobufs++;
	r = vft_zc_reap(z);
	if (r < 0)
		return r;
	if (z->done == z->next_id) {
		/* nothing of ours holds the limit: waiting cannot help */
		*flags &= ~MSG_ZEROCOPY;
		return 0;
	}
	if (z->done != done)
		return 0;
	if (tx->deadline == 0 && (r = start_deadline(tx)) < 0)
		return r;
	if (now_ns() >= tx->deadline)
		return timed_out(tx);
	nap_us(NOBUFS_STEP_US);
	return 0;
}

static int send_failed(struct zc_tx *tx, int *flags)
{
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return timed_out(tx);
	if (errno == ENOBUFS && (*flags & MSG_ZEROCOPY))
		return nobufs_wait(tx, flags);
	return -errno;
}

static void note_sent(struct zc_tx *tx, int flags, size_t w)
{
	tx->sent_any = true;
	if (!(flags & MSG_ZEROCOPY))
		return;
	/* every sendmsg() that took bytes took an id, even a partial one */
	tx->z->next_id++;
	tx->z->st.zc_sends++;
	tx->z->st.zc_bytes += w;
	tx->zc_bytes += w;
}

static int send_all(struct zc_tx *tx, struct msghdr *mh, int flags)
{
	iov_advance(mh, 0);
	while (mh->msg_iovlen > 0) {
		ssize_t w = sendmsg(tx->z->fd, mh, flags | MSG_NOSIGNAL);
		int r;

		if (w < 0) {
			r = send_failed(tx, &flags);
			if (r < 0)
				return r;
			continue;
		}
		if (w > 0)
			note_sent(tx, flags, (size_t)w);
		iov_advance(mh, (size_t)w);
	}
	return 0;
}

/* one sendmsg() for head and bulk: the bulk is copied anyway */
static int send_copied(struct zc_tx *tx, struct iovec *iov, int nhead, const void *bulk, size_t len)
{
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)nhead};
	int r;

	iov[nhead].iov_base = (void *)bulk;
	iov[nhead].iov_len = len;
	mh.msg_iovlen += len > 0;
	r = send_all(tx, &mh, 0);
	if (r < 0 || len == 0)
		return r;
	tx->z->st.copy_sends++;
	tx->z->st.copy_bytes += len;
	return 0;
}

static int send_zerocopy(struct zc_tx *tx, struct iovec *iov, int nhead, const void *bulk,
                         size_t len)
{
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)nhead};
	struct iovec b = {.iov_base = (void *)bulk, .iov_len = len};
	int r;

	/* the head is copied (it may live on the caller's stack); MSG_MORE
	 * keeps it from leaving in a segment of its own */
	r = send_all(tx, &mh, MSG_MORE);
	if (r < 0)
		return r;
	mh.msg_iov = &b;
	mh.msg_iovlen = 1;
	r = send_all(tx, &mh, MSG_ZEROCOPY);
	if (r < 0 || tx->zc_bytes == len)
		return r;
	tx->z->st.copy_sends++;
	tx->z->st.copy_bytes += len - tx->zc_bytes;
	return 0;
}

int vft_zc_send(struct vft_zc *z, const struct iovec *head, int nhead, const void *bulk,
                size_t bulk_len, uint32_t *ticket)
{
	struct iovec iov[VFT_ZC_MAX_HEAD + 1];
	struct zc_tx tx = {.z = z};
	int r;

	if (nhead < 0 || nhead > VFT_ZC_MAX_HEAD || (nhead > 0 && head == NULL) ||
	    (bulk_len > 0 && bulk == NULL))
		return -EINVAL;
	if (nhead > 0)
		memcpy(iov, head, sizeof(iov[0]) * (size_t)nhead);
	if (z->on && bulk_len >= z->threshold)
		r = send_zerocopy(&tx, iov, nhead, bulk, bulk_len);
	else
		r = send_copied(&tx, iov, nhead, bulk, bulk_len);
	if (ticket != NULL)
		*ticket = vft_zc_last(z);
	return r;
}
