/*
 * src/vmft-bridge/vft_zc: zero-copy sends. What must be refused comes first
 * (bad arguments, a socket the kernel will not do zero-copy on, a closed
 * peer, a send timeout), then the ticket bookkeeping on synthetic
 * completions (out of order, across the u32 wraparound), then real streams
 * over loopback TCP and an AF_UNIX pair: whatever path the bytes took, the
 * receiver must get exactly what was sent, also when a buffer is reused
 * right after its ticket completed.
 */
#include "config.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <xxhash.h>

#include "check_util.h"
#include "vft_zc.h"

#define HEAD_LEN 32
#define BIG_BULK (1u << 20)
#define SMALL_BULK (4u << 10) /* below the default threshold: copied */
#define N_FRAMES 24
#define N_SLOTS 4 /* bulk buffers in rotation: several sends pending at once */
#define WAIT_MS 2000
#define RX_BUF (256u << 10)

/* ---- sockets and the receiving end ------------------------------------------- */

static void set_sndtimeo(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
}

/* a connected loopback TCP pair: *c the sender's end, *s the receiver's */
static void tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &alen), 0);
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(*c, 0);
	ck_assert_int_eq(connect(*c, (struct sockaddr *)&a, sizeof(a)), 0);
	*s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(*s, 0);
	close(l);
	set_sndtimeo(*c, WAIT_MS); /* a bug must fail the test, not hang it */
}

/* reads its socket to EOF, hashing the stream (no ck_assert off the main
 * thread: failures are recorded and checked after the join) */
struct rx {
	int fd;
	pthread_t th;
	XXH3_state_t *h;
	uint64_t bytes;
	int err;
};

static void *rx_main(void *arg)
{
	struct rx *rx = arg;
	uint8_t *buf = malloc(RX_BUF);

	while (buf != NULL) {
		ssize_t n = recv(rx->fd, buf, RX_BUF, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rx->err = n < 0 ? errno : 0;
			break;
		}
		XXH3_64bits_update(rx->h, buf, (size_t)n);
		rx->bytes += (uint64_t)n;
	}
	if (buf == NULL)
		rx->err = ENOMEM;
	free(buf);
	return NULL;
}

static void rx_start(struct rx *rx, int fd)
{
	memset(rx, 0, sizeof(*rx));
	rx->fd = fd;
	rx->h = XXH3_createState();
	ck_assert_ptr_nonnull(rx->h);
	XXH3_64bits_reset(rx->h);
	ck_assert_int_eq(pthread_create(&rx->th, NULL, rx_main, rx), 0);
}

/* ends the sender's side and returns the hash of all the receiver got */
static uint64_t rx_finish(struct rx *rx, int sender_fd)
{
	uint64_t h;

	ck_assert_int_eq(shutdown(sender_fd, SHUT_WR), 0);
	ck_assert_int_eq(pthread_join(rx->th, NULL), 0);
	ck_assert_int_eq(rx->err, 0);
	h = XXH3_64bits_digest(rx->h);
	XXH3_freeState(rx->h);
	return h;
}

/* ---- the sending end ------------------------------------------------------------ */

static void fill(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

/* what a stream test sent, and how */
struct tx {
	struct vft_zc z;
	uint8_t *slot[N_SLOTS];
	uint32_t slot_ticket[N_SLOTS];
	uint32_t ticket[N_FRAMES * 2];
	unsigned n_tickets;
	XXH3_state_t *h; /* of the bytes handed to vft_zc_send */
	uint64_t bytes;
};

static void tx_start(struct tx *t, int fd, bool want)
{
	char err[128];

	memset(t, 0, sizeof(*t));
	ck_assert_int_eq(vft_zc_init(&t->z, fd, want, 0, err, sizeof(err)), 0);
	for (int i = 0; i < N_SLOTS; i++) {
		t->slot[i] = malloc(BIG_BULK);
		ck_assert_ptr_nonnull(t->slot[i]);
	}
	t->h = XXH3_createState();
	ck_assert_ptr_nonnull(t->h);
	XXH3_64bits_reset(t->h);
}

static uint64_t tx_finish(struct tx *t)
{
	uint64_t h = XXH3_64bits_digest(t->h);

	for (int i = 0; i < N_SLOTS; i++)
		free(t->slot[i]);
	XXH3_freeState(t->h);
	return h;
}

/* frame `seq` from bulk buffer `b` (len bytes, filled from seed): the head
 * lives on this stack frame and is gone right after the send, as in the
 * engine */
static void send_frame(struct tx *t, uint8_t *b, size_t len, uint32_t seq, uint64_t seed)
{
	uint8_t head[HEAD_LEN];
	struct iovec iov[2] = {{head, 8}, {head + 8, HEAD_LEN - 8}};
	uint32_t ticket = 0xdeadbeef;

	fill(b, len, seed);
	memset(head, 0, sizeof(head));
	memcpy(head, &seq, sizeof(seq));
	memcpy(head + 8, &len, sizeof(len));
	XXH3_64bits_update(t->h, head, sizeof(head));
	XXH3_64bits_update(t->h, b, len);
	t->bytes += sizeof(head) + len;
	ck_assert_int_eq(vft_zc_send(&t->z, iov, 2, b, len, &ticket), 0);
	ck_assert_uint_eq(ticket, vft_zc_last(&t->z));
	t->ticket[t->n_tickets++] = ticket;
	memset(head, 0xee, sizeof(head));
}

/* every third frame small (copied), the others 1 MiB from a rotation of
 * buffers, each reused only once its ticket completed */
static void send_frames(struct tx *t)
{
	for (uint32_t i = 0; i < N_FRAMES; i++) {
		unsigned s = i % N_SLOTS;

		ck_assert_int_eq(vft_zc_wait(&t->z, t->slot_ticket[s], WAIT_MS), 0);
		send_frame(t, t->slot[s], i % 3 == 2 ? SMALL_BULK : BIG_BULK, i, i);
		t->slot_ticket[s] = t->ticket[t->n_tickets - 1];
	}
	ck_assert_int_eq(vft_zc_wait(&t->z, vft_zc_last(&t->z), WAIT_MS), 0);
	for (unsigned i = 0; i < t->n_tickets; i++)
		ck_assert(vft_zc_complete(&t->z, t->ticket[i]));
}

struct stream {
	uint64_t sent_hash, recv_hash, sent, received;
	bool on;
	struct vft_zc_stats st;
};

static void run_stream(int c, int s, bool want, struct stream *out)
{
	struct rx rx;
	struct tx t;

	rx_start(&rx, s);
	tx_start(&t, c, want);
	send_frames(&t);
	out->recv_hash = rx_finish(&rx, c);
	out->received = rx.bytes;
	out->sent = t.bytes;
	out->on = t.z.on;
	out->st = t.z.st;
	out->sent_hash = tx_finish(&t);
	close(c);
	close(s);
}

/* ---- refused -------------------------------------------------------------------- */

START_TEST(test_init_refused)
{
	struct vft_zc z;
	char err[128];
	int p[2], c, s;

	/* no socket at all: nothing to set up */
	ck_assert_int_eq(vft_zc_init(&z, -1, true, 0, err, sizeof(err)), -EBADF);
	ck_assert(!z.on);
	/* a pipe: the kernel refuses SO_ZEROCOPY, the sender would copy */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(vft_zc_init(&z, p[1], true, 0, err, sizeof(err)), 0);
	ck_assert(!z.on);
	ck_assert_ptr_nonnull(strstr(err, "SO_ZEROCOPY"));
	ck_assert_int_eq(vft_zc_init(&z, p[1], true, 0, NULL, 0), 0);
	close(p[0]);
	close(p[1]);
	/* not wanted: off, no reason, the default threshold */
	tcp_pair(&c, &s);
	ck_assert_int_eq(vft_zc_init(&z, c, false, 0, err, sizeof(err)), 0);
	ck_assert(!z.on);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(z.threshold, VFT_ZC_THRESHOLD_DEFAULT);
	ck_assert_int_eq(vft_zc_init(&z, c, true, 100, err, sizeof(err)), 0);
	ck_assert_msg(z.on, "SO_ZEROCOPY on loopback TCP: %s", err);
	ck_assert_uint_eq(z.threshold, 100);
	close(c);
	close(s);
}
END_TEST

START_TEST(test_send_args_refused)
{
	struct iovec head[VFT_ZC_MAX_HEAD + 1];
	uint8_t b[8] = {0};
	struct vft_zc z;
	int c, s;

	tcp_pair(&c, &s);
	ck_assert_int_eq(vft_zc_init(&z, c, true, 0, NULL, 0), 0);
	for (int i = 0; i <= VFT_ZC_MAX_HEAD; i++)
		head[i] = (struct iovec){b, 1};
	ck_assert_int_eq(vft_zc_send(&z, head, VFT_ZC_MAX_HEAD + 1, b, 8, NULL), -EINVAL);
	ck_assert_int_eq(vft_zc_send(&z, head, -1, b, 8, NULL), -EINVAL);
	ck_assert_int_eq(vft_zc_send(&z, NULL, 1, b, 8, NULL), -EINVAL);
	ck_assert_int_eq(vft_zc_send(&z, head, 1, NULL, 8, NULL), -EINVAL);
	ck_assert_int_eq(vft_zc_wait(&z, vft_zc_last(&z), -1), -EINVAL);
	/* nothing was sent by any of them */
	ck_assert_uint_eq(z.st.zc_sends + z.st.copy_sends, 0);
	close(c);
	close(s);
}
END_TEST

/* sends to a peer that closed until the connection reports it: no SIGPIPE
 * (it would kill the test), and what was handed over still completes */
static void closed_peer(bool want)
{
	uint8_t *b = calloc(1, BIG_BULK);
	uint8_t head[HEAD_LEN] = {0};
	struct iovec iov = {head, sizeof(head)};
	struct vft_zc z;
	uint32_t ticket = 0;
	int c, s, r = 0;

	ck_assert_ptr_nonnull(b);
	tcp_pair(&c, &s);
	ck_assert_int_eq(vft_zc_init(&z, c, want, 0, NULL, 0), 0);
	close(s);
	for (int i = 0; i < 100 && r == 0; i++) {
		r = vft_zc_send(&z, &iov, 1, b, BIG_BULK, &ticket);
		nanosleep(&(struct timespec){0, 1000000}, NULL);
	}
	ck_assert_msg(r == -EPIPE || r == -ECONNRESET, "send to a closed peer: %d", r);
	ck_assert_uint_eq(ticket, vft_zc_last(&z));
	ck_assert_int_eq(vft_zc_wait(&z, ticket, WAIT_MS), 0);
	close(c);
	free(b);
}

START_TEST(test_closed_peer)
{
	closed_peer(true);
	closed_peer(false);
}
END_TEST

/* a peer that never reads: the sends end with the socket's send timeout,
 * -ETIMEDOUT while a frame got in part way, -EAGAIN once nothing fits */
static void stalled_peer(bool want)
{
	uint8_t *b = calloc(1, BIG_BULK);
	uint8_t head[HEAD_LEN] = {0};
	struct iovec iov = {head, sizeof(head)};
	struct vft_zc z;
	int c, s, r = 0, i;

	ck_assert_ptr_nonnull(b);
	tcp_pair(&c, &s);
	set_sndtimeo(c, 20);
	ck_assert_int_eq(vft_zc_init(&z, c, want, 0, NULL, 0), 0);
	for (i = 0; i < 200 && r != -EAGAIN; i++) {
		r = vft_zc_send(&z, &iov, 1, b, BIG_BULK, NULL);
		ck_assert_msg(r == 0 || r == -ETIMEDOUT || r == -EAGAIN, "stalled send: %d", r);
	}
	ck_assert_int_eq(r, -EAGAIN);
	close(c);
	close(s);
	free(b);
}

START_TEST(test_send_timeout)
{
	stalled_peer(true);
	stalled_peer(false);
}
END_TEST

/* ---- tickets -------------------------------------------------------------------- */

/* a z with no socket, `pending` sends issued from id `first` */
static void synthetic(struct vft_zc *z, uint32_t first, uint32_t pending)
{
	memset(z, 0, sizeof(*z));
	z->fd = -1;
	z->done = first;
	z->next_id = first + pending;
}

START_TEST(test_tickets_refused)
{
	struct vft_zc z;

	synthetic(&z, 100, 10);                               /* ids 100..109 pending */
	ck_assert_int_eq(vft_zc_note(&z, 110, 110), -EPROTO); /* never sent */
	ck_assert_int_eq(vft_zc_note(&z, 105, 110), -EPROTO);
	ck_assert_int_eq(vft_zc_note(&z, 99, 100), -EPROTO);  /* completed before */
	ck_assert_int_eq(vft_zc_note(&z, 104, 102), -EPROTO); /* reversed */
	ck_assert_uint_eq(z.done, 100);
	ck_assert_uint_eq(z.n_ahead, 0);
	synthetic(&z, 7, 0);
	ck_assert_int_eq(vft_zc_note(&z, 7, 7), -EPROTO);
	/* more disjoint ranges ahead than there is room for: refused, kept */
	synthetic(&z, 0, 100);
	for (uint32_t i = 0; i < 16; i++)
		ck_assert_int_eq(vft_zc_note(&z, 2 + 2 * i, 2 + 2 * i), 0);
	ck_assert_int_eq(vft_zc_note(&z, 40, 41), -EOVERFLOW);
	ck_assert_uint_eq(z.n_ahead, 16);
	/* a gap filled merges its neighbours and makes room again */
	ck_assert_int_eq(vft_zc_note(&z, 3, 3), 0);
	ck_assert_uint_eq(z.n_ahead, 15);
	ck_assert_int_eq(vft_zc_note(&z, 40, 41), 0);
	ck_assert_int_eq(vft_zc_note(&z, 0, 1), 0);
	ck_assert_uint_eq(z.done, 5);
}
END_TEST

START_TEST(test_tickets_out_of_order)
{
	uint32_t t1, t2, t3;
	struct vft_zc z;

	/* 32 sends across the wraparound: ids 0xfffffff0..0xf */
	synthetic(&z, 0xfffffff0u, 32);
	t1 = 0xfffffff8u; /* after ids ..0xfffffff7 */
	t2 = 4;           /* after ids ..3 */
	t3 = vft_zc_last(&z);
	ck_assert_uint_eq(t3, 0x10);
	ck_assert(!vft_zc_complete(&z, t1));
	/* the later ranges first: both wait ahead, apart (id 0 missing) */
	ck_assert_int_eq(vft_zc_note(&z, 1, 3), 0);
	ck_assert_int_eq(vft_zc_note(&z, 0xfffffff8u, 0xffffffffu), 0);
	ck_assert_uint_eq(z.n_ahead, 2);
	ck_assert_uint_eq(z.done, 0xfffffff0u);
	ck_assert(!vft_zc_complete(&z, t1));
	ck_assert(!vft_zc_complete(&z, t2));
	/* the first range reaches up to the wrap */
	ck_assert_int_eq(vft_zc_note(&z, 0xfffffff0u, 0xfffffff7u), 0);
	ck_assert_uint_eq(z.done, 0);
	ck_assert_uint_eq(z.n_ahead, 1);
	ck_assert(vft_zc_complete(&z, t1));
	ck_assert(!vft_zc_complete(&z, t2));
	/* and id 0 joins what waited past it */
	ck_assert_int_eq(vft_zc_note(&z, 0, 0), 0);
	ck_assert_uint_eq(z.done, 4);
	ck_assert_uint_eq(z.n_ahead, 0);
	ck_assert(vft_zc_complete(&z, t2));
	/* ranges adjacent across the wrap merge into one */
	synthetic(&z, 0xfffffff0u, 32);
	ck_assert_int_eq(vft_zc_note(&z, 0, 3), 0);
	ck_assert_int_eq(vft_zc_note(&z, 0xfffffff8u, 0xffffffffu), 0);
	ck_assert_uint_eq(z.n_ahead, 1);
	ck_assert_int_eq(vft_zc_note(&z, 0xfffffff0u, 0xfffffff7u), 0);
	ck_assert_uint_eq(z.done, 4);
	ck_assert_uint_eq(z.n_ahead, 0);
	ck_assert(!vft_zc_complete(&z, t3));
	/* one id at a time, backwards: done only moves with the last */
	for (uint32_t id = 0xf; id > 4; id--) {
		ck_assert_int_eq(vft_zc_note(&z, id, id), 0);
		ck_assert_uint_eq(z.done, 4);
	}
	ck_assert_uint_eq(z.n_ahead, 1); /* merged as they came */
	ck_assert_int_eq(vft_zc_note(&z, 4, 4), 0);
	ck_assert(vft_zc_complete(&z, t3));
	ck_assert_uint_eq(z.done, z.next_id);
	/* tickets older than everything pending stay complete, however old */
	z.next_id += 3;
	ck_assert(vft_zc_complete(&z, t1));
	ck_assert(vft_zc_complete(&z, t3 - 0x80000000u));
	ck_assert(!vft_zc_complete(&z, vft_zc_last(&z)));
}
END_TEST

START_TEST(test_wait_synthetic)
{
	struct timespec a, b;
	struct vft_zc z;

	/* without a socket nothing ever completes: the wait ends in time */
	synthetic(&z, 0xfffffffeu, 4);
	ck_assert_int_eq(vft_zc_wait(&z, 0xffffffffu, 0), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &a);
	ck_assert_int_eq(vft_zc_wait(&z, 2, 30), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ck_assert_int_ge((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000, 30);
	ck_assert_int_eq(vft_zc_note(&z, 0xfffffffeu, 1), 0);
	ck_assert_int_eq(vft_zc_wait(&z, 2, 0), 0);
	ck_assert_int_eq(vft_zc_wait(&z, 0xffffffffu, 0), 0);
}
END_TEST

/* ---- streams -------------------------------------------------------------------- */

START_TEST(test_stream_tcp)
{
	struct stream zc, cp;
	int c, s;

	tcp_pair(&c, &s);
	run_stream(c, s, true, &zc);
	tcp_pair(&c, &s);
	run_stream(c, s, false, &cp);

	ck_assert(zc.on);
	ck_assert_uint_eq(zc.received, zc.sent);
	ck_assert_uint_eq(zc.recv_hash, zc.sent_hash);
	ck_assert_uint_eq(cp.received, cp.sent);
	ck_assert_uint_eq(cp.recv_hash, cp.sent_hash);
	/* the same frames whichever way they went */
	ck_assert_uint_eq(zc.sent_hash, cp.sent_hash);
	ck_assert_uint_eq(zc.sent,
	                  (uint64_t)N_FRAMES * HEAD_LEN + 16u * BIG_BULK + 8u * SMALL_BULK);

	ck_assert_uint_ge(zc.st.zc_sends, 16);
	ck_assert_uint_ge(zc.st.zc_bytes, 16u * BIG_BULK);
	ck_assert_uint_gt(zc.st.completions, 0);
	ck_assert_uint_le(zc.st.copied, zc.st.zc_sends); /* loopback: usually all */
	ck_assert_uint_eq(zc.st.copy_sends, 8);
	ck_assert_uint_eq(zc.st.copy_bytes + zc.st.zc_bytes, 16u * BIG_BULK + 8u * SMALL_BULK);

	ck_assert(!cp.on);
	ck_assert_uint_eq(cp.st.zc_sends, 0);
	ck_assert_uint_eq(cp.st.completions, 0);
	ck_assert_uint_eq(cp.st.copy_sends, N_FRAMES);
	ck_assert_uint_eq(cp.st.copy_bytes, 16u * BIG_BULK + 8u * SMALL_BULK);
}
END_TEST

/* one buffer, rewritten after each wait: the receiver must see every
 * version, none overwritten by the next one */
START_TEST(test_buffer_reuse)
{
	struct rx rx;
	struct tx t;
	int c, s;

	tcp_pair(&c, &s);
	rx_start(&rx, s);
	tx_start(&t, c, true);
	ck_assert(t.z.on);
	for (uint32_t i = 0; i < 16; i++) {
		send_frame(&t, t.slot[0], BIG_BULK, i, 1000 + i);
		ck_assert_int_eq(vft_zc_wait(&t.z, t.ticket[i], WAIT_MS), 0);
	}
	ck_assert_uint_eq(rx_finish(&rx, c), XXH3_64bits_digest(t.h));
	ck_assert_uint_eq(rx.bytes, t.bytes);
	ck_assert_uint_ge(t.z.st.zc_sends, 16);
	tx_finish(&t);
	close(c);
	close(s);
}
END_TEST

/* AF_UNIX: the kernel may refuse SO_ZEROCOPY; the bytes arrive either way */
START_TEST(test_stream_unix)
{
	struct stream u;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	set_sndtimeo(sv[0], WAIT_MS);
	run_stream(sv[0], sv[1], true, &u);
	ck_assert_uint_eq(u.received, u.sent);
	ck_assert_uint_eq(u.recv_hash, u.sent_hash);
	if (!u.on) {
		ck_assert_uint_eq(u.st.zc_sends, 0);
		ck_assert_uint_eq(u.st.copy_sends, N_FRAMES);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vft_zc");

	add_tcase(s, test_init_refused, 10);
	add_tcase(s, test_send_args_refused, 10);
	add_tcase(s, test_closed_peer, 10);
	add_tcase(s, test_send_timeout, 10);
	add_tcase(s, test_tickets_refused, 10);
	add_tcase(s, test_tickets_out_of_order, 10);
	add_tcase(s, test_wait_synthetic, 10);
	add_tcase(s, test_stream_tcp, 10);
	add_tcase(s, test_buffer_reuse, 10);
	add_tcase(s, test_stream_unix, 10);
	return run_suite(s);
}
