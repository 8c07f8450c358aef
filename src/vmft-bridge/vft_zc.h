/*
 * vmft zero-copy transmission (shared/seeds/002): frames whose bulk (a
 * batch of pages) is large enough are sent with MSG_ZEROCOPY on a socket
 * with SO_ZEROCOPY: the kernel sends from the caller's pages instead of
 * copying them into socket buffers, and reports on the socket's error
 * queue when it no longer needs them. Until then the caller must not
 * modify the bulk buffer: every send returns a ticket, and the buffer may
 * be reused once vft_zc_wait() says the ticket completed.
 *
 * A frame's head (frame header, page numbers: small, often on the stack)
 * is always copied (sent with MSG_MORE so it leaves with the bulk); only
 * the bulk goes zero-copy, and only when zero-copy is on and the bulk is
 * at least the threshold: below ~10 KB pinning pages costs more than the
 * copy. On loopback the kernel copies anyway (completions then carry
 * SO_EE_CODE_ZEROCOPY_COPIED, counted in `copied`); a veth or a NIC link
 * really avoids the copy.
 *
 * A ticket means "every zero-copy send up to here": it is complete when
 * every MSG_ZEROCOPY sendmsg issued before it has completed, so waiting for
 * any ticket is always correct, also for a copied send (its ticket is
 * vft_zc_last(), complete at once unless older zero-copy sends are still
 * pending). A ticket older than every pending send is complete however old.
 *
 * Not thread-safe: one thread sends and waits (the epoch thread). Waiting
 * sleeps in short steps reading the error queue (never poll(): the only
 * poller is the engine's main loop).
 */
#ifndef VFT_ZC_H
#define VFT_ZC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VFT_ZC_THRESHOLD_DEFAULT (16u << 10)
#define VFT_ZC_MAX_HEAD 15 /* iovecs of a frame's head */

struct vft_zc_stats {
	uint64_t zc_sends;   /* sendmsg calls with MSG_ZEROCOPY */
	uint64_t zc_bytes;   /* bulk bytes sent that way */
	uint64_t copy_sends; /* bulk sends copied (zero-copy off, or below threshold) */
	uint64_t copy_bytes;
	uint64_t completions; /* notifications read */
	uint64_t copied;      /* zero-copy sends the kernel copied after all */
	uint64_t nobufs;      /* ENOBUFS (optmem limit): waited and retried */
};

struct vft_zc {
	int fd;
	bool on;          /* SO_ZEROCOPY set and wanted */
	size_t threshold; /* bulk bytes from which MSG_ZEROCOPY is used */
	uint32_t next_id; /* the kernel's id for the next MSG_ZEROCOPY sendmsg */
	uint32_t done;    /* every id before this one has completed */
	/* completions that arrived ahead of `done` (ranges; the kernel may
	 * report them out of order) */
	uint32_t ahead_lo[16], ahead_hi[16];
	unsigned n_ahead;
	struct vft_zc_stats st;
};

/* Sets up z for the connected TCP socket fd. want: try SO_ZEROCOPY (if
 * the kernel refuses, z->on is false and err says why; still 0: the
 * sender then copies). threshold 0 = VFT_ZC_THRESHOLD_DEFAULT. Whatever
 * setsockopt() says (also ENOTSOCK or EBADF) is such a refusal; only fd < 0
 * is -EBADF. err may be NULL; it is "" when zero-copy is on or not wanted.
 * z holds no resources: nothing to free. */
int vft_zc_init(struct vft_zc *z, int fd, bool want, size_t threshold, char *err, size_t errlen);

/* Sends head (iov[0..nhead-1], copied) then bulk (bulk_len bytes,
 * zero-copy when z->on and bulk_len >= threshold), all of it (blocking,
 * honouring the socket's SO_SNDTIMEO: -EAGAIN if nothing of the frame
 * left, -ETIMEDOUT if part of it did). nhead is 0..VFT_ZC_MAX_HEAD.
 * *ticket (may be NULL) gets the value to wait for before modifying bulk
 * (a copied send's ticket is already complete); it is set on errors too,
 * since the part already handed to the kernel stays in use until then.
 * ENOBUFS (too many pending completions) is waited out within the send
 * timeout; with nothing pending, the rest of the bulk is copied instead.
 * 0 or -errno (-EPIPE/-ECONNRESET on a closed peer, never SIGPIPE). */
int vft_zc_send(struct vft_zc *z, const struct iovec *head, int nhead, const void *bulk,
                size_t bulk_len, uint32_t *ticket);

/* Reads the completions queued so far (never blocks). 0 or -errno:
 * -EPROTO for a completion of ids never sent (the count diverged),
 * -EOVERFLOW when too many ranges arrived out of order, or the ee_errno of
 * another error found on the queue. */
int vft_zc_reap(struct vft_zc *z);

/* Records that the ids lo..hi (inclusive, may wrap past UINT32_MAX)
 * completed; exposed for the tests. 0, -EPROTO if some of them were not
 * pending, -EOVERFLOW if the out-of-order ranges are full (z unchanged). */
int vft_zc_note(struct vft_zc *z, uint32_t lo, uint32_t hi);

/* True when every zero-copy send up to ticket has completed. */
bool vft_zc_complete(const struct vft_zc *z, uint32_t ticket);

/* Waits until ticket completed, at most timeout_ms (0: look once; < 0:
 * -EINVAL): 0 or -ETIMEDOUT (or another -errno from the error queue). */
int vft_zc_wait(struct vft_zc *z, uint32_t ticket, int timeout_ms);

/* The ticket of everything sent so far (wait for it to reuse every buffer). */
uint32_t vft_zc_last(const struct vft_zc *z);

#endif
