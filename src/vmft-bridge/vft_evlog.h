/*
 * vmft event log, primary side: the records of the open epoch (disk writes
 * as the NBD server completes them, frames and bytes delivered to the guest)
 * in the order they happened, already in their wire form (vft_proto.h), so
 * that shipping an epoch is cutting the buffer into EVENTS frames.
 *
 * Several threads append (disk server, network, main loop); the epoch thread
 * takes the epoch's records while the guest is stopped, so no record can
 * fall between two epochs. Nothing here does I/O.
 */
#ifndef VFT_EVLOG_H
#define VFT_EVLOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vft_proto.h"

struct vft_evlog {
	pthread_mutex_t lock;
	bool on;      /* a session replicates: records are kept */
	uint8_t *buf; /* records of the open epoch, wire form */
	size_t len, cap;
	uint32_t count;                /* records in buf */
	uint64_t next_seq;             /* seq of the next record (1 after start) */
	double t0;                     /* monotonic s of start: t_ns counts from it */
	uint64_t counts[VFT_EV_COUNT]; /* records logged since start, per kind */
	uint64_t disk_bytes;           /* DISK_WRITE data bytes since start */
};

/* The records of one epoch, taken out of the log (caller frees buf). */
struct vft_evbatch {
	uint8_t *buf;
	size_t len;
	uint32_t count;
	uint64_t first_seq;
};

void vft_evlog_init(struct vft_evlog *l);
void vft_evlog_fini(struct vft_evlog *l);
/* A session begins: seqs restart at 1, t_ns at 0, the log is empty and on. */
void vft_evlog_start(struct vft_evlog *l, double now);
/* No session: records are dropped (not even counted). */
void vft_evlog_stop(struct vft_evlog *l);
bool vft_evlog_on(struct vft_evlog *l);
/* Appends a record (a DISK_WRITE longer than VFT_EV_DATA_MAX becomes several,
 * in order). 0 (also when the log is off), -EINVAL for a record its kind
 * does not allow, -ENOMEM. */
int vft_evlog_add(struct vft_evlog *l, unsigned kind, unsigned flags, uint64_t arg,
                  const void *data, size_t len, double now);
/* Moves the open epoch's records into *b (empty: buf NULL, count 0). */
void vft_evlog_take(struct vft_evlog *l, struct vft_evbatch *b);
/* Bytes currently held (for back-pressure and statistics). */
size_t vft_evlog_held(struct vft_evlog *l);

/* Cuts a batch into EVENTS payloads of at most max bytes each: call with
 * *pos = 0; each call writes the 8-byte payload prefix to head and returns
 * the record bytes [*start, *start + *n) that follow it, 0 when done. */
size_t vft_evbatch_next(const struct vft_evbatch *b, size_t *pos, size_t max, uint8_t head[8],
                        size_t *start);

#endif
