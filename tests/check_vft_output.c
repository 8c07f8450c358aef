/*
 * src/vmft-bridge/vft_eng_output.c: output commit. Bytes the guest wrote are
 * released only once their epoch is acknowledged, whole lines first; a
 * prompt without a newline waits a few epochs at most; a full buffer makes
 * the reader stop; unprotected output goes out at once. Network frames:
 * released by epoch, in order, dropped (never queued) when the queue is full.
 */
#include "config.h"

#include <fcntl.h>
#include <sys/socket.h>

#include "check_util.h"
#include "vft_eng_output.h"

struct rig {
	struct eng_output o;
	int guest[2]; /* [0]: what QEMU writes to, [1]: the engine reads */
	char *dir, path[256];
};

static void rig_init(struct rig *r, size_t limit)
{
	r->dir = make_temp_dir();
	snprintf(r->path, sizeof(r->path), "%s/vm.console", r->dir);
	eng_output_init(&r->o, limit);
	r->o.console_fd = open(r->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	ck_assert_int_ge(r->o.console_fd, 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, r->guest), 0);
}

static void rig_fini(struct rig *r)
{
	eng_output_fini(&r->o);
	close(r->guest[0]);
	close(r->guest[1]);
	unlink(r->path);
	remove_temp_dir(r->dir);
}

static void guest_writes(struct rig *r, const char *s)
{
	ck_assert_int_eq(write(r->guest[0], s, strlen(s)), (ssize_t)strlen(s));
	ck_assert_int_ge(eng_output_read(&r->o, r->guest[1]), 0);
}

/* What the world has seen so far. */
static char *seen(struct rig *r)
{
	char *t = slurp(r->path);

	ck_assert_ptr_nonnull(t);
	return t;
}

static void seen_is(struct rig *r, const char *want)
{
	char *t = seen(r);

	ck_assert_str_eq(t, want);
	free(t);
}

START_TEST(test_eof_and_full)
{
	struct rig r;

	rig_init(&r, 16);
	/* a full buffer: the engine stops reading (the guest's UART waits) */
	ck_assert_int_eq(write(r.guest[0], "0123456789abcdefXYZ", 19), 19);
	ck_assert_int_eq(eng_output_read(&r.o, r.guest[1]), -ENOSPC);
	ck_assert_uint_eq(r.o.held, 19); /* what one read brought, then no more */
	ck_assert_int_eq(write(r.guest[0], "more", 4), 4);
	ck_assert_int_eq(eng_output_read(&r.o, r.guest[1]), -ENOSPC);
	ck_assert_uint_eq(r.o.held, 19);
	seen_is(&r, "");
	/* QEMU gone */
	close(r.guest[0]);
	r.guest[0] = open("/dev/null", O_RDONLY);
	eng_output_set_hold(&r.o, false);
	ck_assert_int_eq(eng_output_read(&r.o, r.guest[1]), -EPIPE);
	seen_is(&r, "0123456789abcdefXYZmore");
	rig_fini(&r);
}
END_TEST

START_TEST(test_released_on_ack_only)
{
	struct rig r;

	rig_init(&r, 1 << 20);
	guest_writes(&r, "C 1\nC 2\n");
	eng_output_mark(&r.o, 1);
	guest_writes(&r, "C 3\n");
	eng_output_mark(&r.o, 2);
	seen_is(&r, "");
	/* an acknowledgement of an epoch never marked releases nothing */
	eng_output_release_to(&r.o, 7);
	seen_is(&r, "");
	eng_output_release_to(&r.o, 1);
	seen_is(&r, "C 1\nC 2\n");
	eng_output_release_to(&r.o, 1); /* again: nothing more */
	seen_is(&r, "C 1\nC 2\n");
	eng_output_release_to(&r.o, 2);
	seen_is(&r, "C 1\nC 2\nC 3\n");
	rig_fini(&r);
}
END_TEST

START_TEST(test_whole_lines)
{
	struct rig r;

	rig_init(&r, 1 << 20);
	/* an epoch ends in the middle of a line: the half line waits for the
	 * next acknowledgement, so a lost epoch cannot splice two halves */
	guest_writes(&r, "C 2053682176\nC 20704");
	eng_output_mark(&r.o, 11);
	guest_writes(&r, "43008\nC 2087");
	eng_output_mark(&r.o, 12);
	eng_output_release_to(&r.o, 11);
	seen_is(&r, "C 2053682176\n");
	eng_output_release_to(&r.o, 12);
	seen_is(&r, "C 2053682176\nC 2070443008\n");
	rig_fini(&r);
}
END_TEST

START_TEST(test_prompt_waits_a_little)
{
	struct rig r;
	uint64_t e;

	rig_init(&r, 1 << 20);
	guest_writes(&r, "login: ");
	for (e = 1; e <= ENG_PARTIAL_EPOCHS; e++) {
		eng_output_mark(&r.o, e);
		eng_output_release_to(&r.o, e);
		seen_is(&r, "");
	}
	eng_output_mark(&r.o, e);
	eng_output_release_to(&r.o, e);
	seen_is(&r, "login: ");
	rig_fini(&r);
}
END_TEST

START_TEST(test_binary_output_not_held_forever)
{
	struct rig r;
	char blob[ENG_PARTIAL_MAX + 10];

	rig_init(&r, 1 << 20);
	memset(blob, 'x', sizeof(blob) - 1);
	blob[sizeof(blob) - 1] = '\0';
	guest_writes(&r, blob);
	eng_output_mark(&r.o, 1);
	eng_output_release_to(&r.o, 1);
	{
		char *t = seen(&r);

		ck_assert_uint_eq(strlen(t), sizeof(blob) - 1);
		free(t);
	}
	rig_fini(&r);
}
END_TEST

START_TEST(test_unprotected_at_once)
{
	struct rig r;

	rig_init(&r, 1 << 20);
	guest_writes(&r, "held\n");
	seen_is(&r, "");
	/* the backup is gone (or the manager said release): all of it now,
	 * half lines too, and what comes next at once */
	guest_writes(&r, "half");
	eng_output_set_hold(&r.o, false);
	seen_is(&r, "held\nhalf");
	guest_writes(&r, " line\n");
	seen_is(&r, "held\nhalf line\n");
	rig_fini(&r);
}
END_TEST

/* ---- network frames ---- */

struct wire {
	uint8_t first[64]; /* first byte of each frame sent, in order */
	size_t lens[64];
	unsigned n;
};

static void wire_send(void *ctx, const uint8_t *f, size_t len)
{
	struct wire *w = ctx;

	ck_assert_uint_lt(w->n, 64);
	w->first[w->n] = f[0];
	w->lens[w->n++] = len;
}

static void frame(struct eng_frameq *q, uint8_t tag, size_t len, int want)
{
	uint8_t f[2000];

	memset(f, tag, sizeof(f));
	ck_assert_int_eq(eng_frameq_push(q, f, len), want);
}

START_TEST(test_frames_refused_and_dropped)
{
	struct eng_frameq q;
	struct wire w = {0};
	uint8_t f[16] = {0};

	eng_frameq_init(&q, 3 * (12 + 1000), wire_send, &w);
	ck_assert_int_eq(eng_frameq_push(&q, f, 0), -EINVAL);
	ck_assert_int_eq(eng_frameq_push(&q, NULL, 10), -EINVAL);
	ck_assert_int_eq(eng_frameq_push(&q, f, 65551), -EINVAL);
	/* three fit; the fourth is dropped, not queued, never sent */
	frame(&q, 1, 1000, 0);
	frame(&q, 2, 1000, 0);
	frame(&q, 3, 1000, 0);
	frame(&q, 4, 1000, -ENOBUFS);
	ck_assert_uint_eq(q.dropped, 1);
	ck_assert_uint_eq(w.n, 0);
	eng_frameq_mark(&q, 1);
	eng_frameq_release_to(&q, 1);
	ck_assert_uint_eq(w.n, 3);
	ck_assert_uint_eq(w.first[2], 3);
	/* room again */
	frame(&q, 5, 1000, 0);
	eng_frameq_fini(&q);
}
END_TEST

START_TEST(test_frames_released_by_epoch)
{
	struct eng_frameq q;
	struct wire w = {0};

	eng_frameq_init(&q, 1 << 20, wire_send, &w);
	frame(&q, 1, 60, 0);
	frame(&q, 2, 1514, 0);
	eng_frameq_mark(&q, 7); /* capture of epoch 7 */
	frame(&q, 3, 100, 0);   /* epoch 8 */
	/* an acknowledgement of an epoch never captured, or an old one,
	 * releases nothing */
	eng_frameq_release_to(&q, 6);
	eng_frameq_release_to(&q, 9);
	ck_assert_uint_eq(w.n, 0);
	eng_frameq_release_to(&q, 7);
	ck_assert_uint_eq(w.n, 2);
	ck_assert_uint_eq(w.first[0], 1);
	ck_assert_uint_eq(w.lens[1], 1514);
	eng_frameq_release_to(&q, 7); /* twice: nothing more */
	ck_assert_uint_eq(w.n, 2);
	eng_frameq_mark(&q, 8);
	frame(&q, 4, 100, 0);
	eng_frameq_mark(&q, 9);
	eng_frameq_release_to(&q, 9); /* acks are cumulative */
	ck_assert_uint_eq(w.n, 4);
	ck_assert_uint_eq(w.first[3], 4);
	ck_assert_uint_eq(q.len, 0);
	eng_frameq_fini(&q);
}
END_TEST

START_TEST(test_frames_unprotected_at_once)
{
	struct eng_frameq q;
	struct wire w = {0};

	eng_frameq_init(&q, 1 << 20, wire_send, &w);
	/* nothing ever held: nothing to send (an empty queue has no buffer) */
	eng_frameq_set_hold(&q, false);
	eng_frameq_release_to(&q, 3);
	ck_assert_uint_eq(w.n, 0);
	eng_frameq_set_hold(&q, true);
	frame(&q, 1, 60, 0);
	eng_frameq_set_hold(&q, false); /* held ones go out first */
	ck_assert_uint_eq(w.n, 1);
	frame(&q, 2, 60, 0);
	ck_assert_uint_eq(w.n, 2);
	ck_assert_uint_eq(w.first[1], 2);
	/* protected again (a new backup): held from now on */
	eng_frameq_set_hold(&q, true);
	frame(&q, 3, 60, 0);
	ck_assert_uint_eq(w.n, 2);
	eng_frameq_mark(&q, 20);
	eng_frameq_release_to(&q, 20);
	ck_assert_uint_eq(w.n, 3);
	eng_frameq_fini(&q);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vft_output");

	add_tcase(s, test_eof_and_full, 10);
	add_tcase(s, test_released_on_ack_only, 10);
	add_tcase(s, test_whole_lines, 10);
	add_tcase(s, test_prompt_waits_a_little, 10);
	add_tcase(s, test_binary_output_not_held_forever, 10);
	add_tcase(s, test_unprotected_at_once, 10);
	add_tcase(s, test_frames_refused_and_dropped, 10);
	add_tcase(s, test_frames_released_by_epoch, 10);
	add_tcase(s, test_frames_unprotected_at_once, 10);
	return run_suite(s);
}
