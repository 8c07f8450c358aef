/*
 * The vmft QMP client (src/vmft-bridge/vft_qmp.c) against a fake QMP server
 * that plays a script (expected request -> canned reply, in pieces, late, or
 * broken), then against a real QEMU when one is installed. Broken servers
 * first: the engine talks to QEMU while the guest is paused, so every way a
 * reply can go wrong must end in a clear error within the deadline.
 */
#include "config.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include <json-c/json.h>

#include "check_util.h"

#include "af_util.h"
#include "vft_qmp.h"

#define GREETING                                                                                   \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, "          \
	"\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define CAPS "{\"execute\":\"qmp_capabilities\"}"
#define OK "{\"return\": {}, \"id\": @ID@}\r\n"
#define MIB (1024 * 1024)
#define SERVER_WAIT_MS 5000 /* the fake server's own patience */

/* One exchange of a script. */
struct step {
	const char *expect; /* request the client must send, compared as JSON without its "id";
	                       NULL: send the reply without waiting for a request */
	const char *reply;  /* "@ID@" becomes the id of the request */
	size_t chunk;       /* write the reply in pieces of this many bytes (0: at once) */
	int delay_ms;       /* before the reply and between its pieces */
	size_t big;         /* instead of reply: {"return":"xxx..."} of this many bytes */
	bool close;         /* close the connection after this step */
};

/* The greeting and the capabilities negotiation every good script starts with. */
#define HANDSHAKE                                                                                  \
	{.reply = GREETING},                                                                       \
	{                                                                                          \
		.expect = CAPS, .reply = OK                                                        \
	}

struct fake {
	char *dir;
	char path[160];
	const struct step *steps;
	size_t n_steps;
	int listen_delay_ms; /* create the socket only after this long */
	pthread_t thr;
	char fail[512]; /* the first thing that went wrong, checked after join */
	char rbuf[65536];
	size_t rlen;
};

static uint64_t now_ms(void)
{
	return af_mono_ns() / AF_NS_PER_MS;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

AF_PRINTF(2, 3) static void fake_fail(struct fake *f, const char *fmt, ...)
{
	va_list ap;

	if (f->fail[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(f->fail, sizeof(f->fail), fmt, ap);
	va_end(ap);
}

/* Reads one request line: 1, 0 on EOF, -1 on timeout or error. */
static int fake_read_line(struct fake *f, int fd, char *line, size_t len)
{
	for (;;) {
		char *nl = memchr(f->rbuf, '\n', f->rlen);
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (nl != NULL) {
			size_t n = (size_t)(nl - f->rbuf);

			if (n >= len)
				n = len - 1;
			memcpy(line, f->rbuf, n);
			line[n] = '\0';
			f->rlen -= (size_t)(nl - f->rbuf) + 1;
			memmove(f->rbuf, nl + 1, f->rlen);
			return 1;
		}
		if (poll(&p, 1, SERVER_WAIT_MS) <= 0)
			return -1;
		r = read(fd, f->rbuf + f->rlen, sizeof(f->rbuf) - f->rlen);
		/* a client that closed with part of our reply unread resets the
		 * connection (AF_UNIX: ECONNRESET on our read): it closed */
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return f->rlen > 0 ? -1 : 0;
		if (r < 0)
			return -1;
		f->rlen += (size_t)r;
	}
}

/* Writes, ignoring a client that went away (it may have timed out). */
static void fake_write(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static char *expand_reply(const struct step *s, long long id)
{
	const char *at;
	char *out;

	if (s->big > 0) {
		out = malloc(s->big + 3);
		ck_assert_ptr_nonnull(out);
		memcpy(out, "{\"return\":\"", 11);
		memset(out + 11, 'x', s->big - 13);
		memcpy(out + s->big - 2, "\"}\r\n", 5);
		return out;
	}
	out = malloc(strlen(s->reply) + 32);
	ck_assert_ptr_nonnull(out);
	at = strstr(s->reply, "@ID@");
	if (at == NULL)
		strcpy(out, s->reply);
	else
		sprintf(out, "%.*s%lld%s", (int)(at - s->reply), s->reply, id, at + 4);
	return out;
}

/* Checks one request against the script; returns its id (0 if none). */
static long long fake_check_request(struct fake *f, size_t i, const char *line, const char *expect)
{
	json_object *got = json_tokener_parse(line), *want = json_tokener_parse(expect), *id;
	long long n = 0;

	if (want == NULL)
		fake_fail(f, "step %zu: bad script JSON %s", i, expect);
	if (got == NULL || !json_object_is_type(got, json_type_object))
		fake_fail(f, "step %zu: request is not a JSON object: %s", i, line);
	else if (!json_object_object_get_ex(got, "id", &id) ||
	         !json_object_is_type(id, json_type_int))
		fake_fail(f, "step %zu: request without an integer id: %s", i, line);
	else {
		n = json_object_get_int64(id);
		json_object_object_del(got, "id");
		if (!json_object_equal(got, want))
			fake_fail(f, "step %zu: expected %s, got %s", i, expect, line);
	}
	json_object_put(got);
	json_object_put(want);
	return n;
}

static void fake_play(struct fake *f, int fd)
{
	char line[4096];
	size_t i;

	for (i = 0; i < f->n_steps; i++) {
		const struct step *s = &f->steps[i];
		long long id = 0;
		char *reply;
		size_t n, off, piece;

		if (s->expect != NULL) {
			int rc = fake_read_line(f, fd, line, sizeof(line));

			if (rc <= 0) {
				fake_fail(f, "step %zu: no request (%s), expected %s", i,
				          rc == 0 ? "client closed" : "timeout", s->expect);
				return;
			}
			id = fake_check_request(f, i, line, s->expect);
		}
		if (s->reply != NULL || s->big > 0) {
			reply = expand_reply(s, id);
			n = strlen(reply);
			piece = s->chunk > 0 ? s->chunk : n;
			for (off = 0; off < n; off += piece) {
				if (s->delay_ms > 0)
					sleep_ms(s->delay_ms);
				fake_write(fd, reply + off, n - off < piece ? n - off : piece);
			}
			free(reply);
		} else if (s->delay_ms > 0) {
			sleep_ms(s->delay_ms);
		}
		if (s->close)
			return;
	}
	/* script over: the client may only close now */
	switch (fake_read_line(f, fd, line, sizeof(line))) {
	case 1:
		fake_fail(f, "request after the end of the script: %s", line);
		break;
	case -1:
		fake_fail(f, "client neither closed nor sent anything after the script");
		break;
	default:
		break;
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd p;
	int lfd, fd;

	if (f->listen_delay_ms > 0)
		sleep_ms(f->listen_delay_ms);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 1) < 0) {
		fake_fail(f, "listen %s: %s", f->path, strerror(errno));
		goto out;
	}
	p = (struct pollfd){.fd = lfd, .events = POLLIN};
	if (poll(&p, 1, SERVER_WAIT_MS) <= 0) {
		fake_fail(f, "no client connected");
		goto out;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0) {
		fake_fail(f, "accept: %s", strerror(errno));
		goto out;
	}
	fake_play(f, fd);
	close(fd);
out:
	if (lfd >= 0)
		close(lfd);
	return NULL;
}

static struct fake *fake_start_delayed(const struct step *steps, size_t n, int listen_delay_ms)
{
	struct fake *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	f->dir = make_temp_dir();
	snprintf(f->path, sizeof(f->path), "%s/qmp.sock", f->dir);
	f->steps = steps;
	f->n_steps = n;
	f->listen_delay_ms = listen_delay_ms;
	ck_assert_int_eq(pthread_create(&f->thr, NULL, fake_main, f), 0);
	return f;
}

#define fake_start(steps) fake_start_delayed(steps, AF_ARRAY_SIZE(steps), 0)

/* Joins the server (the client must have closed) and checks its verdict. */
static void fake_finish(struct fake *f)
{
	ck_assert_int_eq(pthread_join(f->thr, NULL), 0);
	ck_assert_msg(f->fail[0] == '\0', "fake QMP server: %s", f->fail);
	remove_temp_dir(f->dir);
	free(f);
}

/* Connects to a fake server whose script starts with HANDSHAKE. */
static struct vft_qmp *connect_ok(struct fake *f)
{
	struct vft_qmp *q = NULL;
	char err[256] = "";
	int rc = vft_qmp_connect(&q, f->path, 2000, err, sizeof(err));

	ck_assert_msg(rc == 0, "connect: %d %s", rc, err);
	ck_assert_ptr_nonnull(q);
	ck_assert_int_ge(vft_qmp_fd(q), 0);
	return q;
}

/* Plays a script that must make connect fail with rc, within the timeout,
 * with what in err. */
static void connect_fails(const struct step *steps, size_t n, int timeout_ms, int rc,
                          const char *what)
{
	struct fake *f = fake_start_delayed(steps, n, 0);
	struct vft_qmp *q = (struct vft_qmp *)&q; /* must be reset to NULL */
	char err[256] = "";
	uint64_t t0 = now_ms();
	int got = vft_qmp_connect(&q, f->path, timeout_ms, err, sizeof(err));

	ck_assert_msg(got == rc, "connect: %d (%s), expected %d", got, err, rc);
	ck_assert_ptr_null(q);
	ck_assert_msg(strstr(err, what) != NULL, "error \"%s\" lacks \"%s\"", err, what);
	ck_assert_uint_lt(now_ms() - t0, (uint64_t)timeout_ms + 1500);
	fake_finish(f);
}

/* Connects, runs one "stop" against a script whose reply is bad, expects rc
 * and what in err. */
static void stop_fails(const struct step *steps, size_t n, int rc, const char *what)
{
	struct fake *f = fake_start_delayed(steps, n, 0);
	struct vft_qmp *q = connect_ok(f);
	json_object *ret = (json_object *)&ret; /* must be reset to NULL */
	char err[256] = "";
	int got = vft_qmp_exec(q, "stop", NULL, &ret, 2000, err, sizeof(err));

	ck_assert_msg(got == rc, "stop: %d (%s), expected %d", got, err, rc);
	ck_assert_ptr_null(ret);
	ck_assert_msg(strstr(err, what) != NULL, "error \"%s\" lacks \"%s\"", err, what);
	if (rc == -EBADMSG || rc == -ECONNRESET) {
		/* the stream cannot be trusted any more: later calls say so */
		got = vft_qmp_simple(q, "cont", 2000, err, sizeof(err));
		ck_assert_int_eq(got, -ECONNRESET);
		ck_assert_msg(strstr(err, what) != NULL, "later error \"%s\" lacks \"%s\"", err,
		              what);
	}
	vft_qmp_close(q);
	fake_finish(f);
}

#define STOP "{\"execute\":\"stop\"}"

/* Polls for events until something other than "nothing new" happens. The
 * message may already be in the client's buffer (read along with an earlier
 * reply) and the fd quiet, so the fd is not waited on for long. */
static int poll_until(struct vft_qmp *q, char *err, size_t errlen)
{
	struct pollfd p = {.fd = vft_qmp_fd(q), .events = POLLIN};
	int rc = 0;

	for (int i = 0; i < 200 && rc == 0; i++) {
		ck_assert_int_ge(poll(&p, 1, 10), 0);
		rc = vft_qmp_poll_events(q, err, errlen);
	}
	return rc;
}

/* ---- broken servers ------------------------------------------------------------------------ */

START_TEST(test_no_socket)
{
	char *dir = make_temp_dir();
	char path[256], err[256] = "";
	struct vft_qmp *q = NULL;
	uint64_t t0 = now_ms();

	snprintf(path, sizeof(path), "%s/none.sock", dir);
	ck_assert_int_eq(vft_qmp_connect(&q, path, 100, err, sizeof(err)), -ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 100);
	ck_assert_uint_lt(now_ms() - t0, 1000);
	ck_assert_ptr_null(q);
	ck_assert_msg(strstr(err, "no QMP socket") != NULL, "%s", err);

	/* a path that can never become a socket is not worth waiting for */
	write_file(path, "x", 0600);
	snprintf(path, sizeof(path), "%s/none.sock/qmp", dir);
	t0 = now_ms();
	ck_assert_int_eq(vft_qmp_connect(&q, path, 2000, err, sizeof(err)), -ENOTDIR);
	ck_assert_uint_lt(now_ms() - t0, 500);
	ck_assert_msg(strstr(err, "Not a directory") != NULL, "%s", err);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_bad_arguments)
{
	char err[64] = "", longpath[200];
	struct vft_qmp *q = NULL;

	ck_assert_int_eq(vft_qmp_connect(&q, NULL, 10, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_connect(&q, "", 10, NULL, 0), -EINVAL);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(vft_qmp_connect(&q, longpath, 10, err, sizeof(err)), -ENAMETOOLONG);
	ck_assert_int_eq(vft_qmp_connect(&q, "/x", -1, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_exec(NULL, "stop", NULL, NULL, 10, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_poll_events(NULL, NULL, 0), -EINVAL);
	ck_assert_int_eq(vft_qmp_fd(NULL), -1);
	ck_assert_uint_eq(vft_qmp_events(NULL), 0);
	ck_assert(!vft_qmp_shutdown_seen(NULL));
	vft_qmp_close(NULL);
}
END_TEST

START_TEST(test_greeting_timeout)
{
	static const struct step s[] = {{.delay_ms = 600}};

	connect_fails(s, AF_ARRAY_SIZE(s), 150, -ETIMEDOUT, "greeting");
}
END_TEST

START_TEST(test_greeting_not_json)
{
	static const struct step s[] = {{.reply = "Welcome to QEMU\r\n"}};

	connect_fails(s, AF_ARRAY_SIZE(s), 2000, -EBADMSG, "not JSON");
}
END_TEST

START_TEST(test_greeting_without_qmp)
{
	static const struct step s[] = {{.reply = "{\"hello\": {}}\r\n"}};

	connect_fails(s, AF_ARRAY_SIZE(s), 2000, -EBADMSG, "not a QMP greeting: {\"hello\":{}}");
}
END_TEST

START_TEST(test_capabilities_error)
{
	static const struct step s[] = {
	        {.reply = GREETING},
	        {.expect = CAPS,
	         .reply = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}, "
	                  "\"id\": @ID@}\r\n"}};

	connect_fails(s, AF_ARRAY_SIZE(s), 2000, -EREMOTEIO,
	              "qmp_capabilities: CommandNotFound: nope");
}
END_TEST

START_TEST(test_capabilities_eof)
{
	static const struct step s[] = {{.reply = GREETING}, {.expect = CAPS, .close = true}};

	connect_fails(s, AF_ARRAY_SIZE(s), 2000, -ECONNRESET, "closed");
}
END_TEST

START_TEST(test_reply_not_json)
{
	static const struct step s[] = {HANDSHAKE, {.expect = STOP, .reply = "{\"return\": \r\n"}};

	stop_fails(s, AF_ARRAY_SIZE(s), -EBADMSG, "not JSON");
}
END_TEST

START_TEST(test_reply_trailing_garbage)
{
	static const struct step s[] = {HANDSHAKE,
	                                {.expect = STOP, .reply = "{\"return\": {}} {}\r\n"}};

	stop_fails(s, AF_ARRAY_SIZE(s), -EBADMSG, "trailing data");
}
END_TEST

START_TEST(test_reply_array)
{
	static const struct step s[] = {HANDSHAKE, {.expect = STOP, .reply = "[1, 2]\r\n"}};

	stop_fails(s, AF_ARRAY_SIZE(s), -EBADMSG, "unexpected QMP message: [1,2]");
}
END_TEST

START_TEST(test_reply_neither)
{
	static const struct step s[] = {HANDSHAKE, {.expect = STOP, .reply = "{\"foo\": 1}\r\n"}};

	stop_fails(s, AF_ARRAY_SIZE(s), -EBADMSG, "unexpected QMP message: {\"foo\":1}");
}
END_TEST

START_TEST(test_reply_unknown_id)
{
	static const struct step s[] = {
	        HANDSHAKE, {.expect = STOP, .reply = "{\"return\": {}, \"id\": 99}\r\n"}};

	stop_fails(s, AF_ARRAY_SIZE(s), -EBADMSG, "unexpected QMP message");
}
END_TEST

START_TEST(test_reply_too_long)
{
	/* a line of 1 MiB + 1 bytes, whole or cut off before its newline */
	static const struct step s[] = {HANDSHAKE, {.expect = STOP, .big = MIB + 1}};
	static const struct step s2[] = {HANDSHAKE,
	                                 {.expect = STOP, .big = 2 * MIB, .chunk = MIB + 100}};

	stop_fails(s, AF_ARRAY_SIZE(s), -EBADMSG, "longer than");
	stop_fails(s2, AF_ARRAY_SIZE(s2), -EBADMSG, "longer than");
}
END_TEST

START_TEST(test_reply_cut)
{
	static const struct step s[] = {HANDSHAKE,
	                                {.expect = STOP, .reply = "{\"return\": {", .close = true}};
	static const struct step s2[] = {HANDSHAKE, {.expect = STOP, .close = true}};

	stop_fails(s, AF_ARRAY_SIZE(s), -ECONNRESET, "closed by QEMU in the middle of a message");
	stop_fails(s2, AF_ARRAY_SIZE(s2), -ECONNRESET, "closed by QEMU");
}
END_TEST

START_TEST(test_reply_too_slow)
{
	static const struct step s[] = {HANDSHAKE, {.expect = STOP, .reply = OK, .delay_ms = 500}};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "";
	uint64_t t0 = now_ms();

	ck_assert_int_eq(vft_qmp_simple(q, "stop", 100, err, sizeof(err)), -ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 100);
	ck_assert_uint_lt(now_ms() - t0, 450);
	ck_assert_msg(strstr(err, "no QMP reply in time") != NULL, "%s", err);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_reply_slow_pieces)
{
	/* each piece comes in time but the whole does not: the deadline is
	 * absolute, not per read */
	static const struct step s[] = {HANDSHAKE,
	                                {.expect = STOP, .reply = OK, .chunk = 4, .delay_ms = 40}};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "";
	uint64_t t0 = now_ms();

	ck_assert_int_eq(vft_qmp_simple(q, "stop", 150, err, sizeof(err)), -ETIMEDOUT);
	ck_assert_uint_lt(now_ms() - t0, 400);
	ck_assert_msg(strstr(err, "incomplete") != NULL, "%s", err);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_error_reply)
{
	static const struct step s[] = {
	        HANDSHAKE,
	        {.expect = "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/nope\"}}",
	         .reply = "{\"id\": @ID@, \"error\": {\"class\": \"GenericError\", "
	                  "\"desc\": \"Failed to connect socket /nope: No such file\"}}\r\n"},
	        {.expect = "{\"execute\":\"query-status\"}",
	         .reply = "{\"error\": {\"desc\": 1}, \"id\": @ID@}\r\n"},
	        {.expect = STOP, .reply = OK}};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "", st[16] = "x";
	bool running = true;

	ck_assert_int_eq(vft_qmp_migrate(q, "unix:/nope", 2000, err, sizeof(err)), -EREMOTEIO);
	ck_assert_str_eq(err, "GenericError: Failed to connect socket /nope: No such file");
	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), &running, 2000, err, sizeof(err)),
	                 -EREMOTEIO);
	ck_assert_str_eq(err, "?: (no description)");
	ck_assert_str_eq(st, "");
	ck_assert(!running);
	/* an error reply leaves the connection usable */
	ck_assert_int_eq(vft_qmp_simple(q, "stop", 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_bad_status_replies)
{
	static const struct step s[] = {
	        HANDSHAKE,
	        {.expect = "{\"execute\":\"query-status\"}",
	         .reply = "{\"return\": {\"status\": \"running\"}, \"id\": @ID@}\r\n"}};
	static const struct step s2[] = {HANDSHAKE,
	                                 {.expect = "{\"execute\":\"query-migrate\"}",
	                                  .reply = "{\"return\": [], \"id\": @ID@}\r\n"}};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "", st[16];

	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), NULL, 2000, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "query-status returned {\"status\":\"running\"}") != NULL, "%s",
	              err);
	vft_qmp_close(q);
	fake_finish(f);

	f = fake_start(s2);
	q = connect_ok(f);
	ck_assert_int_eq(vft_qmp_migrate_status(q, st, sizeof(st), 2000, err, sizeof(err)),
	                 -EBADMSG);
	ck_assert_msg(strstr(err, "query-migrate returned []") != NULL, "%s", err);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_stray_reply_when_idle)
{
	static const struct step s[] = {HANDSHAKE, {.reply = "{\"return\": {}}\r\n"}};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "";

	ck_assert_int_eq(poll_until(q, err, sizeof(err)), -EBADMSG);
	ck_assert_msg(strstr(err, "unexpected QMP message: {\"return\":{}}") != NULL, "%s", err);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_invalid_exec_arguments)
{
	static const struct step s[] = {HANDSHAKE};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	json_object *arr = json_object_new_array();
	char err[256] = "";

	ck_assert_int_eq(vft_qmp_exec(q, "stop", arr, NULL, 100, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_exec(q, NULL, NULL, NULL, 100, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_exec(q, "", NULL, NULL, 100, NULL, 0), -EINVAL);
	ck_assert_int_eq(vft_qmp_exec(q, "stop", NULL, NULL, -1, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_set_capability(q, NULL, true, 100, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_migrate(q, NULL, 100, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_qmp_migrate_incoming(q, NULL, 100, err, sizeof(err)), -EINVAL);
	json_object_put(arr);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

/* ---- good servers -------------------------------------------------------------------------- */

START_TEST(test_connect_waits_for_socket)
{
	static const struct step s[] = {HANDSHAKE};
	struct fake *f = fake_start_delayed(s, AF_ARRAY_SIZE(s), 60);
	struct vft_qmp *q = NULL;
	char err[256] = "x";
	uint64_t t0 = now_ms();

	ck_assert_int_eq(vft_qmp_connect(&q, f->path, 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_uint_ge(now_ms() - t0, 60);
	ck_assert_uint_lt(now_ms() - t0, 1000);
	ck_assert_uint_eq(vft_qmp_events(q), 0);
	ck_assert(!vft_qmp_shutdown_seen(q));
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_helpers)
{
	static const struct step s[] = {
	        HANDSHAKE,
	        {.expect =
	                 "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
	                 "{\"capabilities\":[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}",
	         .reply = OK},
	        {.expect = "{\"execute\":\"migrate-set-capabilities\",\"arguments\":"
	                   "{\"capabilities\":[{\"capability\":\"events\",\"state\":false}]}}",
	         .reply = OK},
	        {.expect = STOP, .reply = OK},
	        {.expect = "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"unix:/run/x.sock\"}}",
	         .reply = OK},
	        {.expect = "{\"execute\":\"query-migrate\"}",
	         .reply = "{\"return\": {\"status\": \"completed\", \"total-time\": 12}, "
	                  "\"id\": @ID@}\r\n"},
	        {.expect = "{\"execute\":\"query-migrate\"}", .reply = OK},
	        {.expect = "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"defer\"}}",
	         .reply = OK},
	        {.expect = "{\"execute\":\"query-status\"}",
	         .reply = "{\"return\": {\"status\": \"postmigrate\", \"singlestep\": false, "
	                  "\"running\": false}, \"id\": @ID@}\r\n"},
	        {.expect = "{\"execute\":\"cont\"}", .reply = OK},
	        {.expect = "{\"execute\":\"query-status\"}",
	         .reply = "{\"return\": {\"status\": \"running\", \"singlestep\": false, "
	                  "\"running\": true}, \"id\": @ID@}\r\n"},
	        {.expect = "{\"execute\":\"human-monitor-command\",\"arguments\":"
	                   "{\"command-line\":\"info version\"}}",
	         .reply = "{\"return\": \"7.2.0\\r\\n\", \"id\": @ID@}\r\n"},
	};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "", st[32] = "x", small[4];
	bool running = true;
	json_object *args, *ret = NULL;

	ck_assert_int_eq(vft_qmp_set_capability(q, "x-ignore-shared", true, 2000, err, sizeof(err)),
	                 0);
	ck_assert_int_eq(vft_qmp_set_capability(q, "events", false, 2000, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_qmp_simple(q, "stop", 2000, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_qmp_migrate(q, "unix:/run/x.sock", 2000, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_qmp_migrate_status(q, st, sizeof(st), 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "completed");
	ck_assert_int_eq(vft_qmp_migrate_status(q, st, sizeof(st), 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "");
	ck_assert_int_eq(vft_qmp_migrate_incoming(q, "defer", 2000, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_qmp_status(q, small, sizeof(small), &running, 2000, err, sizeof(err)),
	                 0);
	ck_assert_str_eq(small, "pos"); /* truncated, terminated */
	ck_assert(!running);
	ck_assert_int_eq(vft_qmp_simple(q, "cont", 2000, NULL, 0), 0);
	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), &running, 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "running");
	ck_assert(running);
	args = json_object_new_object();
	json_object_object_add(args, "command-line", json_object_new_string("info version"));
	ck_assert_int_eq(
	        vft_qmp_exec(q, "human-monitor-command", args, &ret, 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(json_object_get_string(ret), "7.2.0\r\n");
	ck_assert_str_eq(err, "");
	json_object_put(ret);
	/* args stayed the caller's */
	ck_assert_int_eq(json_object_put(args), 1);
	ck_assert_uint_eq(vft_qmp_events(q), 0);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_fragmented)
{
	/* every byte in its own write, then several messages in one write,
	 * with bare "\n" line ends and blank lines */
	static const struct step s[] = {
	        {.reply = GREETING, .chunk = 1},
	        {.expect = CAPS, .reply = OK, .chunk = 1},
	        {.expect = "{\"execute\":\"query-status\"}",
	         .reply = "{\"return\": {\"status\": \"paused\", \"running\": false}, "
	                  "\"id\": @ID@}\r\n",
	         .chunk = 1},
	        {.expect = STOP,
	         .reply = "\r\n{\"event\": \"STOP\", \"data\": {}}\n\n  \n{\"return\": {}, "
	                  "\"id\": @ID@}\n"},
	        {.expect = "{\"execute\":\"query-migrate\"}",
	         .reply = "{\"return\": {\"status\": \"active\"}, \"id\": @ID@}\r\n",
	         .chunk = 7},
	};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "", st[32];
	bool running = true;

	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), &running, 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "paused");
	ck_assert(!running);
	ck_assert_int_eq(vft_qmp_simple(q, "stop", 2000, err, sizeof(err)), 0);
	ck_assert_uint_eq(vft_qmp_events(q), 1);
	ck_assert_int_eq(vft_qmp_migrate_status(q, st, sizeof(st), 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "active");
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_large_reply)
{
	/* exactly at the limit: accepted */
	static const struct step s[] = {HANDSHAKE, {.expect = STOP, .big = MIB}};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	json_object *ret = NULL;
	char err[256] = "";

	ck_assert_int_eq(vft_qmp_exec(q, "stop", NULL, &ret, 5000, err, sizeof(err)), 0);
	ck_assert_int_eq(json_object_get_string_len(ret), MIB - 13);
	json_object_put(ret);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_events_counted)
{
	static const struct step s[] = {
	        HANDSHAKE,
	        {.expect = STOP,
	         .reply = "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": "
	                  "\"STOP\"}\r\n{\"event\": \"MIGRATION\", \"data\": {\"status\": "
	                  "\"setup\"}}\r\n" OK,
	         .chunk = 5},
	        {.expect = "{\"execute\":\"quit\"}",
	         .reply = OK "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false, \"reason\": "
	                     "\"host-qmp-quit\"}}\r\n",
	         .close = true},
	};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	char err[256] = "";
	int rc = 0;

	ck_assert_int_eq(vft_qmp_simple(q, "stop", 2000, err, sizeof(err)), 0);
	ck_assert_uint_eq(vft_qmp_events(q), 2);
	ck_assert(!vft_qmp_shutdown_seen(q));
	ck_assert_int_eq(vft_qmp_simple(q, "quit", 2000, err, sizeof(err)), 0);
	/* SHUTDOWN follows the reply, then the socket closes */
	rc = poll_until(q, err, sizeof(err));
	ck_assert_int_eq(rc, -ECONNRESET);
	ck_assert_msg(strstr(err, "closed by QEMU (last events: STOP, MIGRATION, SHUTDOWN)") !=
	                      NULL,
	              "%s", err);
	ck_assert(vft_qmp_shutdown_seen(q));
	ck_assert_uint_eq(vft_qmp_events(q), 3);
	ck_assert_int_eq(vft_qmp_poll_events(q, err, sizeof(err)), -ECONNRESET);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_poll_events)
{
	static const struct step s[] = {
	        HANDSHAKE,
	        {.reply = "{\"event\": \"RESUME\"}\r\n{\"event\": \"STOP\"}\r\n{\"event\": \"RES",
	         .delay_ms = 150},
	        {.reply = "UME\"}\r\n", .delay_ms = 100},
	        {.expect = STOP, .reply = OK},
	        {.delay_ms = 50, .close = true},
	};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	struct pollfd p = {.fd = vft_qmp_fd(q), .events = POLLIN};
	char err[256] = "x";
	int rc;

	/* nothing there yet: returns at once */
	ck_assert_int_eq(vft_qmp_poll_events(q, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_uint_eq(vft_qmp_events(q), 0);
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	ck_assert_int_eq(vft_qmp_poll_events(q, err, sizeof(err)), 0);
	ck_assert_uint_eq(vft_qmp_events(q), 2); /* the third is not complete */
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	ck_assert_int_eq(vft_qmp_poll_events(q, err, sizeof(err)), 0);
	ck_assert_uint_eq(vft_qmp_events(q), 3);
	ck_assert_int_eq(vft_qmp_simple(q, "stop", 2000, err, sizeof(err)), 0);
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	rc = vft_qmp_poll_events(q, err, sizeof(err));
	ck_assert_int_eq(rc, -ECONNRESET);
	ck_assert_msg(strstr(err, "closed by QEMU") != NULL, "%s", err);
	ck_assert(!vft_qmp_shutdown_seen(q));
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

START_TEST(test_late_reply_dropped)
{
	/* "stop" times out; its reply arrives while "query-status" waits and
	 * must not be taken for the status */
	static const struct step s[] = {
	        HANDSHAKE,
	        {.expect = STOP, .reply = OK, .delay_ms = 200},
	        {.expect = "{\"execute\":\"query-status\"}",
	         .reply = "{\"return\": {\"status\": \"paused\", \"running\": false}, "
	                  "\"id\": @ID@}\r\n"},
	        {.expect = "{\"execute\":\"cont\"}", .reply = OK, .delay_ms = 200},
	};
	struct fake *f = fake_start(s);
	struct vft_qmp *q = connect_ok(f);
	struct pollfd p = {.fd = vft_qmp_fd(q), .events = POLLIN};
	char err[256] = "", st[32];

	ck_assert_int_eq(vft_qmp_simple(q, "stop", 50, err, sizeof(err)), -ETIMEDOUT);
	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), NULL, 2000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "paused");
	/* a late reply that comes when idle is dropped too */
	ck_assert_int_eq(vft_qmp_simple(q, "cont", 50, err, sizeof(err)), -ETIMEDOUT);
	ck_assert_int_eq(poll(&p, 1, 2000), 1);
	ck_assert_int_eq(vft_qmp_poll_events(q, err, sizeof(err)), 0);
	ck_assert_int_eq(poll(&p, 1, 0), 0); /* it was read, and dropped */
	ck_assert_uint_eq(vft_qmp_events(q), 0);
	vft_qmp_close(q);
	fake_finish(f);
}
END_TEST

/* ---- a real QEMU --------------------------------------------------------------------------- */

#define QEMU "/usr/bin/qemu-system-x86_64"

START_TEST(test_real_qemu)
{
	struct vft_qmp *q = NULL;
	char *dir, sock[256], arg[300], err[256] = "", st[32];
	bool running = true;
	uint64_t t0 = now_ms();
	pid_t pid;
	int rc = 0, status;

	if (access(QEMU, X_OK) != 0) {
		fprintf(stderr, "SKIP: test_real_qemu: %s is missing\n", QEMU);
		return;
	}
	dir = make_temp_dir();
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	snprintf(arg, sizeof(arg), "unix:%s,server=on,wait=off", sock);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		execl(QEMU, QEMU, "-machine", "pc,accel=tcg", "-m", "16", "-nodefaults", "-display",
		      "none", "-S", "-qmp", arg, (char *)NULL);
		_exit(127);
	}
	rc = vft_qmp_connect(&q, sock, 3000, err, sizeof(err));
	ck_assert_msg(rc == 0, "connect to QEMU: %d %s", rc, err);
	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), &running, 1000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "prelaunch");
	ck_assert(!running);
	rc = vft_qmp_set_capability(q, "x-ignore-shared", true, 1000, err, sizeof(err));
	ck_assert_msg(rc == 0, "x-ignore-shared: %d %s", rc, err);
	ck_assert_int_eq(vft_qmp_migrate_status(q, st, sizeof(st), 1000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "");
	ck_assert_int_eq(vft_qmp_simple(q, "cont", 1000, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), &running, 1000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "running");
	ck_assert(running);
	ck_assert_int_eq(vft_qmp_simple(q, "stop", 1000, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_qmp_status(q, st, sizeof(st), &running, 1000, err, sizeof(err)), 0);
	ck_assert_str_eq(st, "paused");
	ck_assert(!running);
	ck_assert_uint_ge(vft_qmp_events(q), 2); /* RESUME, STOP */
	rc = vft_qmp_simple(q, "no-such-command", 1000, err, sizeof(err));
	ck_assert_int_eq(rc, -EREMOTEIO);
	ck_assert_msg(strstr(err, "CommandNotFound: ") == err, "%s", err);
	ck_assert_int_eq(vft_qmp_simple(q, "quit", 1000, err, sizeof(err)), 0);
	rc = poll_until(q, err, sizeof(err));
	ck_assert_msg(rc == -ECONNRESET, "after quit: %d %s", rc, err);
	ck_assert(vft_qmp_shutdown_seen(q));
	vft_qmp_close(q);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	remove_temp_dir(dir);
	ck_assert_uint_lt(now_ms() - t0, 5000);
}
END_TEST

static Suite *qmp_suite(void)
{
	Suite *s = suite_create("vft_qmp");

	add_tcase(s, test_no_socket, 10);
	add_tcase(s, test_bad_arguments, 10);
	add_tcase(s, test_greeting_timeout, 10);
	add_tcase(s, test_greeting_not_json, 10);
	add_tcase(s, test_greeting_without_qmp, 10);
	add_tcase(s, test_capabilities_error, 10);
	add_tcase(s, test_capabilities_eof, 10);
	add_tcase(s, test_reply_not_json, 10);
	add_tcase(s, test_reply_trailing_garbage, 10);
	add_tcase(s, test_reply_array, 10);
	add_tcase(s, test_reply_neither, 10);
	add_tcase(s, test_reply_unknown_id, 10);
	add_tcase(s, test_reply_too_long, 20);
	add_tcase(s, test_reply_cut, 10);
	add_tcase(s, test_reply_too_slow, 10);
	add_tcase(s, test_reply_slow_pieces, 10);
	add_tcase(s, test_error_reply, 10);
	add_tcase(s, test_bad_status_replies, 10);
	add_tcase(s, test_stray_reply_when_idle, 10);
	add_tcase(s, test_invalid_exec_arguments, 10);
	add_tcase(s, test_connect_waits_for_socket, 10);
	add_tcase(s, test_helpers, 10);
	add_tcase(s, test_fragmented, 10);
	add_tcase(s, test_large_reply, 20);
	add_tcase(s, test_events_counted, 10);
	add_tcase(s, test_poll_events, 10);
	add_tcase(s, test_late_reply_dropped, 10);
	add_tcase(s, test_real_qemu, 20);
	return s;
}

int main(void)
{
	/* the fake server writes to clients that may have given up */
	signal(SIGPIPE, SIG_IGN);
	return run_suite(qmp_suite());
}
