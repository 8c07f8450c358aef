/*
 * atca-vmft: output commit (vft_eng_output.c), apart from the rest of the
 * engine so that its unit test needs nothing else.
 */
#ifndef VFT_ENG_OUTPUT_H
#define VFT_ENG_OUTPUT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sample ring for the engine's statistics (pause, commit, hold times). */
#define ENG_SAMPLES 1024
struct eng_ring {
	uint32_t n, next;
	double v[ENG_SAMPLES];
};
void eng_ring_add(struct eng_ring *r, double v);
double eng_ring_pct(const struct eng_ring *r, double pct);

/* Output commit: serial bytes read from QEMU, held until their epoch is
 * acknowledged. boundary[e % N] = bytes read when epoch e was captured. */
#define ENG_MARKS 16
#define ENG_PARTIAL_EPOCHS 5
#define ENG_PARTIAL_MAX 4096
struct eng_output {
	pthread_mutex_t lock;
	uint8_t *buf; /* held bytes: buf[0..held) */
	size_t held, cap, limit;
	uint64_t read_total;     /* bytes read from QEMU so far */
	uint64_t released_total; /* bytes written to the console file */
	uint64_t mark_epoch[ENG_MARKS];
	uint64_t mark_at[ENG_MARKS];
	bool hold; /* false: release at once (no backup) */
	/* acknowledged output is released up to its last newline: an epoch
	 * lost in a failover (committed by the backup, never acknowledged to
	 * the primary) then drops whole lines instead of splicing two halves
	 * into a line the guest never printed. A partial line (a prompt) waits
	 * at most ENG_PARTIAL_EPOCHS epochs or ENG_PARTIAL_MAX bytes. */
	uint64_t partial_since; /* epoch whose acknowledgement left a partial line */
	int console_fd;
	bool reading_paused; /* buffer full: the guest waits */
};

void eng_output_init(struct eng_output *o, size_t limit);
void eng_output_fini(struct eng_output *o);
/* Reads what QEMU wrote to the serial port (fd, non-blocking): bytes read,
 * -ENOSPC when the buffer is full (stop reading: the guest's UART waits),
 * -EPIPE at EOF, or -errno. */
int eng_output_read(struct eng_output *o, int fd);
/* Everything read so far belongs to epoch (the guest is stopped). */
void eng_output_mark(struct eng_output *o, uint64_t epoch);
/* Epoch is acknowledged: its output (up to its last newline) goes out. */
void eng_output_release_to(struct eng_output *o, uint64_t epoch);
/* hold false: everything held goes out now and from now on at once. */
void eng_output_set_hold(struct eng_output *o, bool hold);

/* Output commit of network frames: what the guest sent, held until the
 * epoch it belongs to is acknowledged, then handed to send() in the order
 * the guest sent it (or at once while nothing is held). A full queue drops
 * the frame, as a congested switch would: the guest's protocols recover,
 * and the guest never waits on its network. */
typedef void (*eng_frame_send_fn)(void *ctx, const uint8_t *frame, size_t len);
struct eng_frameq {
	pthread_mutex_t lock;
	uint8_t *buf; /* records {u32 length, f64 taken at, frame}, the oldest first */
	size_t len, cap, limit;
	uint64_t in_total;  /* frames taken so far */
	uint64_t out_total; /* frames handed to send() */
	uint64_t dropped;
	uint64_t mark_epoch[ENG_MARKS];
	uint64_t mark_at[ENG_MARKS]; /* in_total when the epoch was captured */
	bool hold;
	struct eng_ring hold_ms; /* how long released frames were held */
	eng_frame_send_fn send;
	void *ctx;
};

void eng_frameq_init(struct eng_frameq *q, size_t limit, eng_frame_send_fn send, void *ctx);
void eng_frameq_fini(struct eng_frameq *q);
/* 0 (held or sent), -EINVAL (empty or larger than 65550 bytes) or -ENOBUFS
 * (the queue is full: dropped). */
int eng_frameq_push(struct eng_frameq *q, const uint8_t *frame, size_t len);
/* Every frame taken so far belongs to epoch (the guest is stopped). */
void eng_frameq_mark(struct eng_frameq *q, uint64_t epoch);
/* Epoch is acknowledged: its frames go out. */
void eng_frameq_release_to(struct eng_frameq *q, uint64_t epoch);
/* hold false: everything held goes out now and from now on at once. */
void eng_frameq_set_hold(struct eng_frameq *q, bool hold);

#endif
