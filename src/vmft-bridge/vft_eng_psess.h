/*
 * atca-vmft, primary side, private: one protected session (a connection to
 * the backup), shared by the epoch thread (vft_eng_primary.c: handshake,
 * full sync, captures, acknowledgements) and the sender thread
 * (vft_eng_send.c: ships captured epochs in order, asynchronous
 * transmission buffering).
 *
 * Locks: txlock serialises frames on the wire (the epoch thread's PINGs,
 * handshake and full-sync copy; the sender's epochs): a frame is never
 * interleaved with another. qlock guards the queue of captured epochs and
 * the list of sent, unacknowledged ones. Never both at once.
 */
#ifndef VFT_ENG_PSESS_H
#define VFT_ENG_PSESS_H

#include "vft_eng.h"
#include "vft_scan.h"
#include "vft_zc.h"

/* epochs captured and not yet acknowledged: bounds the output held and
 * makes a slow backup slow the epochs down instead of letting the primary
 * run ahead unprotected */
#define MAX_OUTSTANDING 3
/* the unacknowledged list also holds the epoch being finished (its END
 * out, its slot not yet free) */
#define MAX_UNACKED (MAX_OUTSTANDING + 1)
/* captured epochs queued or being sent: one per result buffer of the scan
 * (the one being sent stays untouched while the next is captured) */
#define QSLOTS 2

/* A captured epoch, queued for the sender. */
struct staged {
	uint64_t epoch;
	uint32_t kind;   /* FULL: its BEGIN and live copy went out before the capture */
	uint64_t n_incr; /* incremental epochs before it in the session (crash points) */
	struct vft_scan_result res;
	uint64_t pre_pages, pre_frames, disk_bytes; /* FULL: sent before the capture */
	uint8_t *dev;
	size_t dev_len, dev_cap;
	struct vft_evbatch ev;
	double pause_ms, scan_ms, dev_ms;
	double queued_at;
	uint64_t bytes;
};

struct psess {
	unsigned gen; /* the engine's protect_gen when the session began */
	struct vft_eng *e;
	int fd;

	/* the wire (txlock) */
	pthread_mutex_t txlock;
	uint32_t tx_seq;
	struct vft_zc zc;
	struct vft_auth auth; /* tx under txlock, rx: the epoch thread's */
	bool zc_useless;      /* the kernel copied every zero-copy send: a local peer */
	double last_tx;

	/* the epoch thread's own */
	uint32_t rx_seq;
	uint8_t *rxbuf; /* RXBUF_SIZE: the largest frame a backup sends (TMPL) */
	bool acked_once;
	bool stalled;      /* replication-stalled reported, not yet flowing again */
	bool held_stopped; /* freeze: the capture left the guest stopped */
	uint64_t n_incr;   /* incremental epochs of this session so far */
	uint64_t disk_size;
	uint64_t tmpl_id; /* the backup's template (its hashes), NULL without */
	uint64_t *tmpl_pages, *tmpl_blocks;

	/* the queue and the unacknowledged epochs (qlock) */
	pthread_mutex_t qlock;
	pthread_cond_t qcv;
	struct staged q[QSLOTS];
	unsigned q_head, q_len;
	uint64_t q_bytes;
	uint64_t unacked[MAX_UNACKED];
	double sent_at[MAX_UNACKED];
	unsigned n_unacked;
	int send_rc; /* the sender's error: the session ends */
	bool send_stop;
	pthread_t sender;
	bool sender_on;
};

#define RXBUF_SIZE (16 + 8 * (size_t)VFT_TMPL_BATCH)

/* vft_eng_send.c */
int ps_frame(struct psess *ps, uint16_t type, uint64_t epoch, const struct iovec *iov, int iovcnt);
/* PAGES frames of r, bulk zero-copy when on; *ticket: wait for it before
 * the result's buffer is written again. crash_n: the transfer crash point's
 * epoch number (UINT64_MAX: none). */
int ps_pages(struct psess *ps, uint64_t epoch, const struct vft_scan_result *r, uint64_t *n_frames,
             uint64_t crash_n, uint32_t *ticket);
int ps_zc_wait(struct psess *ps, uint32_t ticket);
int ps_sender_start(struct psess *ps);
/* hard: the link is broken, unblock a send in progress */
void ps_sender_stop(struct psess *ps, bool hard);
void ps_staged_free(struct staged *sl);

#endif
