/*
 * vmft QMP client: see vft_qmp.h.
 *
 * The socket is non-blocking and every wait is a ppoll() bounded by an
 * absolute CLOCK_MONOTONIC deadline, so a call returns as soon as QEMU's
 * reply is complete (no sleeps in the reply path) and never later than its
 * timeout, whether QEMU is slow to answer or slow to read.
 *
 * QMP is line-framed: one JSON value per line ending "\r\n". Bytes are kept in
 * a read buffer, split on '\n', and each line is parsed on its own with a
 * json_tokener; a line that grows beyond QMP_MAX_LINE is refused before it
 * can exhaust memory.
 *
 * Every command carries an "id" that QEMU echoes in its reply. After a
 * command timed out its late reply is still on its way; the id tells it from
 * the reply of the next command, so one timeout does not shift every later
 * answer by one. A stream that can no longer be trusted (malformed message,
 * partial write, EOF) marks the connection broken: later calls fail at once
 * rather than guess.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft_qmp.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "af_log.h"
#include "af_util.h"

#define QMP_MAX_LINE (1024 * 1024) /* bytes of one message, "\r\n" excluded */
#define QMP_READ_CHUNK 65536
#define QMP_BUF_INIT QMP_READ_CHUNK
#define QMP_CONNECT_RETRY_NS (2 * AF_NS_PER_MS)
#define QMP_JSON_DEPTH 64 /* QMP replies are shallow; bounds the tokener */
#define QMP_SHOW 80       /* bytes of an offending message quoted in err */
#define QMP_LAST_EVENTS 4 /* event names kept for error messages */
#define QMP_EVENT_NAME 32

struct vft_qmp {
	int fd;
	json_tokener *tok;
	char *buf;   /* unread bytes are buf[head..len) */
	size_t head; /* start of the next line */
	size_t scan; /* buf[head..scan) is known to hold no '\n' */
	size_t len;
	size_t cap;
	int64_t last_id; /* of the last command sent; replies to lower ids are late */
	uint64_t events;
	bool shutdown;
	json_object *pending; /* parsed but not yet handed out (see drain_events) */
	bool broken;          /* stream out of sync or closed: every call fails */
	char broken_why[128];
	char last_events[QMP_LAST_EVENTS][QMP_EVENT_NAME];
	unsigned n_last; /* events stored in last_events (ring position) */
};

/* Formats an error into err (which may be NULL) and logs it at debug level:
 * the caller decides whether it is worth more. Returns rc. */
AF_PRINTF(4, 5) static int qerr(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	af_debug("qmp: %s", msg);
	if (err != NULL && errlen > 0)
		af_strlcpy(err, msg, errlen);
	return rc;
}

static void clear_err(char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
}

/* Marks the stream unusable; returns rc so that callers can "return
 * broken(...)" with the error they already formatted into err. */
static int broken(struct vft_qmp *q, int rc, const char *err)
{
	if (!q->broken) {
		q->broken = true;
		af_strlcpy(q->broken_why, err != NULL && *err ? err : strerror(-rc),
		           sizeof(q->broken_why));
	}
	return rc;
}

static int check_usable(const struct vft_qmp *q, char *err, size_t errlen)
{
	if (q == NULL)
		return qerr(-EINVAL, err, errlen, "no QMP connection");
	if (q->broken)
		return qerr(-ECONNRESET, err, errlen, "QMP connection unusable after: %s",
		            q->broken_why);
	return 0;
}

/* A printable, bounded quote of bytes (a QEMU message may be megabytes of
 * anything) for error messages. */
static void show(const char *s, size_t n, char *out, size_t outlen)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 4 < outlen; i++) {
		if (i == QMP_SHOW) {
			memcpy(out + k, "...", 3);
			k += 3;
			break;
		}
		out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	out[k] = '\0';
}

static void show_obj(json_object *o, char *out, size_t outlen)
{
	size_t n = 0;
	const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);

	show(s, n, out, outlen);
}

static uint64_t deadline_after(int timeout_ms)
{
	return af_mono_ns() + (uint64_t)timeout_ms * AF_NS_PER_MS;
}

/* Waits for events on the socket until the absolute deadline: 1 ready, 0
 * deadline passed, -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};

	for (;;) {
		uint64_t now = af_mono_ns();
		struct timespec ts;
		int n;

		if (now >= deadline)
			return 0;
		ts.tv_sec = (time_t)((deadline - now) / AF_NS_PER_S);
		ts.tv_nsec = (long)((deadline - now) % AF_NS_PER_S);
		n = ppoll(&pfd, 1, &ts, NULL);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Sends one command line, coping with partial writes and EINTR; a full
 * socket buffer waits for QEMU to read, bounded by the deadline. */
static int send_line(struct vft_qmp *q, const char *s, size_t n, uint64_t deadline, char *err,
                     size_t errlen)
{
	struct iovec iov[2] = {{.iov_base = (void *)s, .iov_len = n},
	                       {.iov_base = (void *)"\n", .iov_len = 1}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	size_t total = n + 1, sent = 0;

	while (sent < total) {
		ssize_t w = sendmsg(q->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		int rc;

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				rc = -errno;
				qerr(rc == -EPIPE ? -ECONNRESET : rc, err, errlen,
				     "QMP write failed: %s", strerror(errno));
				return broken(q, rc == -EPIPE ? -ECONNRESET : rc, err);
			}
			rc = wait_fd(q->fd, POLLOUT, deadline);
			if (rc < 0)
				return qerr(rc, err, errlen, "poll: %s", strerror(-rc));
			if (rc == 0) {
				qerr(-ETIMEDOUT, err, errlen,
				     "QMP write timed out (QEMU not reading, %zu of %zu bytes sent)",
				     sent, total);
				/* half a command is in QEMU's parser: what follows
				 * would be read as its continuation */
				return sent > 0 ? broken(q, -ETIMEDOUT, err) : -ETIMEDOUT;
			}
			continue;
		}
		sent += (size_t)w;
		/* skip what went out; the loop's iov then starts mid-way */
		while (w > 0 && mh.msg_iovlen > 0) {
			size_t k =
			        (size_t)w < mh.msg_iov->iov_len ? (size_t)w : mh.msg_iov->iov_len;

			mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + k;
			mh.msg_iov->iov_len -= k;
			w -= (ssize_t)k;
			if (mh.msg_iov->iov_len == 0) {
				mh.msg_iov++;
				mh.msg_iovlen--;
			}
		}
	}
	return 0;
}

/* Parses one line (terminated at buf[n], '\r' already cut) into *out. */
static int parse_line(struct vft_qmp *q, const char *line, size_t n, json_object **out, char *err,
                      size_t errlen)
{
	enum json_tokener_error jerr;
	json_object *o;
	size_t end;
	char quote[QMP_SHOW + 8];

	json_tokener_reset(q->tok);
	/* the terminating NUL is passed too: it ends a bare number */
	o = json_tokener_parse_ex(q->tok, line, (int)n + 1);
	jerr = json_tokener_get_error(q->tok);
	if (o == NULL || jerr != json_tokener_success) {
		json_object_put(o);
		show(line, n, quote, sizeof(quote));
		if (jerr == json_tokener_success || jerr == json_tokener_continue)
			return qerr(-EBADMSG, err, errlen,
			            "QMP message is not JSON (truncated): %s", quote);
		return qerr(-EBADMSG, err, errlen, "QMP message is not JSON (%s): %s",
		            json_tokener_error_desc(jerr), quote);
	}
#if JSON_C_VERSION_NUM >= ((0 << 16) | (15 << 8))
	end = json_tokener_get_parse_end(q->tok);
#else
	end = (size_t)q->tok->char_offset;
#endif
	for (; end < n; end++) {
		if (line[end] != ' ' && line[end] != '\t') {
			json_object_put(o);
			show(line, n, quote, sizeof(quote));
			return qerr(-EBADMSG, err, errlen, "trailing data after QMP message: %s",
			            quote);
		}
	}
	*out = o;
	return 0;
}

/* Takes the next complete line out of the read buffer: 1 and *out, 0 if no
 * complete line is buffered, -errno. Blank lines are skipped. */
static int next_buffered(struct vft_qmp *q, json_object **out, char *err, size_t errlen)
{
	for (;;) {
		char *nl = memchr(q->buf + q->scan, '\n', q->len - q->scan);
		char *line = q->buf + q->head;
		size_t n;
		int rc;

		if (nl == NULL) {
			q->scan = q->len;
			/* the '\r' of a line of exactly QMP_MAX_LINE may wait
			 * for its '\n' */
			if (q->len - q->head > QMP_MAX_LINE + 1) {
				qerr(-EBADMSG, err, errlen, "QMP message longer than %d bytes",
				     QMP_MAX_LINE);
				return broken(q, -EBADMSG, err);
			}
			return 0;
		}
		n = (size_t)(nl - line);
		q->head = q->scan = (size_t)(nl - q->buf) + 1;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > QMP_MAX_LINE) {
			qerr(-EBADMSG, err, errlen, "QMP message longer than %d bytes",
			     QMP_MAX_LINE);
			return broken(q, -EBADMSG, err);
		}
		line[n] = '\0';
		if (strspn(line, " \t") == n)
			continue;
		rc = parse_line(q, line, n, out, err, errlen);
		if (rc < 0)
			return broken(q, rc, err);
		return 1;
	}
}

/* Makes room for one more read: drops consumed bytes, grows up to the line
 * limit (plus "\r\n" and one read, so the limit check sees the excess). */
static int make_room(struct vft_qmp *q)
{
	size_t want;
	char *nb;

	if (q->head > 0) {
		memmove(q->buf, q->buf + q->head, q->len - q->head);
		q->len -= q->head;
		q->scan -= q->head;
		q->head = 0;
	}
	if (q->cap - q->len >= QMP_READ_CHUNK / 4 || q->cap >= QMP_MAX_LINE + QMP_READ_CHUNK)
		return 0;
	want = q->cap * 2;
	if (want < q->len + QMP_READ_CHUNK)
		want = q->len + QMP_READ_CHUNK;
	if (want > QMP_MAX_LINE + QMP_READ_CHUNK)
		want = QMP_MAX_LINE + QMP_READ_CHUNK;
	nb = realloc(q->buf, want + 1);
	if (nb == NULL)
		return -ENOMEM;
	q->buf = nb;
	q->cap = want;
	return 0;
}

static void eof_error(struct vft_qmp *q, char *err, size_t errlen)
{
	char evs[QMP_LAST_EVENTS * (QMP_EVENT_NAME + 2)] = "";
	unsigned n = q->n_last < QMP_LAST_EVENTS ? q->n_last : QMP_LAST_EVENTS;

	for (unsigned i = 0; i < n; i++) {
		unsigned k = (q->n_last - n + i) % QMP_LAST_EVENTS;

		if (i > 0)
			strcat(evs, ", ");
		strcat(evs, q->last_events[k]);
	}
	qerr(-ECONNRESET, err, errlen, "QMP connection closed by QEMU%s%s%s%s",
	     q->len > q->head ? " in the middle of a message" : "", n ? " (last events: " : "", evs,
	     n ? ")" : "");
}

/* Reads the next message: 1 and *out; 0 if wait is false and no complete
 * message is there; -ETIMEDOUT when the deadline passes; -errno. */
static int read_msg(struct vft_qmp *q, bool wait, uint64_t deadline, json_object **out, char *err,
                    size_t errlen)
{
	if (q->pending != NULL) {
		*out = q->pending;
		q->pending = NULL;
		return 1;
	}
	for (;;) {
		ssize_t r;
		int rc = next_buffered(q, out, err, errlen);

		if (rc != 0)
			return rc;
		rc = make_room(q);
		if (rc < 0)
			return qerr(rc, err, errlen, "QMP read buffer: %s", strerror(-rc));
		r = recv(q->fd, q->buf + q->len, q->cap - q->len, MSG_DONTWAIT);
		if (r > 0) {
			q->len += (size_t)r;
			continue;
		}
		if (r == 0) {
			eof_error(q, err, errlen);
			return broken(q, -ECONNRESET, err);
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			rc = errno == ECONNRESET ? -ECONNRESET : -errno;
			qerr(rc, err, errlen, "QMP read failed: %s", strerror(errno));
			return broken(q, rc, err);
		}
		if (!wait)
			return 0;
		rc = wait_fd(q->fd, POLLIN, deadline);
		if (rc < 0)
			return qerr(rc, err, errlen, "poll: %s", strerror(-rc));
		if (rc == 0)
			return qerr(-ETIMEDOUT, err, errlen, "no QMP reply in time%s",
			            q->len > q->head ? " (message incomplete)" : "");
	}
}

static void note_event(struct vft_qmp *q, json_object *o, json_object *ev)
{
	const char *name =
	        json_object_is_type(ev, json_type_string) ? json_object_get_string(ev) : "?";

	q->events++;
	if (strcmp(name, "SHUTDOWN") == 0)
		q->shutdown = true;
	af_strlcpy(q->last_events[q->n_last % QMP_LAST_EVENTS], name, QMP_EVENT_NAME);
	q->n_last++;
	if (q->n_last >= 2 * QMP_LAST_EVENTS)
		q->n_last -= QMP_LAST_EVENTS; /* keep "full" without overflowing */
	af_debug("qmp: event %s %s", name,
	         json_object_to_json_string_ext(json_object_object_get(o, "data"),
	                                        JSON_C_TO_STRING_PLAIN));
}

/* Sorts one message out: 0 consumed (an event, the late reply of a command
 * given up on), 1 the reply to command want (0: none expected), -EBADMSG. */
static int classify(struct vft_qmp *q, json_object *o, int64_t want, char *err, size_t errlen)
{
	json_object *v, *id;
	char quote[QMP_SHOW + 8];

	if (!json_object_is_type(o, json_type_object))
		goto unexpected;
	if (json_object_object_get_ex(o, "event", &v)) {
		note_event(q, o, v);
		return 0;
	}
	if (!json_object_object_get_ex(o, "return", NULL) &&
	    !json_object_object_get_ex(o, "error", NULL))
		goto unexpected;
	/* QEMU echoes our id; a reply without one answers a command it could
	 * not even parse, which can only be the one in flight */
	if (!json_object_object_get_ex(o, "id", &id)) {
		if (want > 0)
			return 1;
		goto unexpected;
	}
	if (json_object_is_type(id, json_type_int)) {
		int64_t n = json_object_get_int64(id);

		if (want > 0 && n == want)
			return 1;
		if (n > 0 && n <= q->last_id) {
			af_debug("qmp: dropped the late reply to command %" PRId64, n);
			return 0;
		}
	}
unexpected:
	show_obj(o, quote, sizeof(quote));
	qerr(-EBADMSG, err, errlen, "unexpected QMP message: %s", quote);
	return broken(q, -EBADMSG, err);
}

/* Counts the events already buffered behind a reply. They are off the
 * socket, so a caller polling vft_qmp_fd() would not hear of them until more
 * bytes come; the first message that is not an event stays for the next
 * call to judge. A malformed line marks the stream broken: the next call
 * reports it. */
static void drain_events(struct vft_qmp *q)
{
	json_object *m, *ev;
	char scratch[256];

	while (q->pending == NULL && next_buffered(q, &m, scratch, sizeof(scratch)) == 1) {
		if (json_object_is_type(m, json_type_object) &&
		    json_object_object_get_ex(m, "event", &ev)) {
			note_event(q, m, ev);
			json_object_put(m);
		} else {
			q->pending = m;
		}
	}
}

/* Sends cmd and waits for its reply until the absolute deadline. */
static int exec_until(struct vft_qmp *q, const char *cmd, json_object *args, json_object **ret,
                      uint64_t deadline, char *err, size_t errlen)
{
	json_object *req = NULL, *msg = NULL, *v, *cls, *desc;
	uint64_t t0 = af_mono_ns();
	const char *s;
	size_t n = 0;
	int64_t id;
	int rc;

	req = json_object_new_object();
	if (req == NULL) {
		rc = qerr(-ENOMEM, err, errlen, "%s: out of memory", cmd);
		goto cleanup;
	}
	id = ++q->last_id;
	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args != NULL)
		json_object_object_add(req, "arguments", json_object_get(args));
	json_object_object_add(req, "id", json_object_new_int64(id));
	s = json_object_to_json_string_length(req, JSON_C_TO_STRING_PLAIN, &n);
	if (s == NULL) {
		rc = qerr(-ENOMEM, err, errlen, "%s: out of memory", cmd);
		goto cleanup;
	}
	rc = send_line(q, s, n, deadline, err, errlen);
	if (rc < 0)
		goto cleanup;
	for (;;) {
		rc = read_msg(q, true, deadline, &msg, err, errlen);
		if (rc < 0)
			goto cleanup;
		rc = classify(q, msg, id, err, errlen);
		if (rc < 0)
			goto cleanup;
		if (rc == 1)
			break;
		json_object_put(msg);
		msg = NULL;
	}
	if (json_object_object_get_ex(msg, "error", &v)) {
		const char *c = "?", *d = "(no description)";

		if (json_object_object_get_ex(v, "class", &cls) &&
		    json_object_is_type(cls, json_type_string))
			c = json_object_get_string(cls);
		if (json_object_object_get_ex(v, "desc", &desc) &&
		    json_object_is_type(desc, json_type_string))
			d = json_object_get_string(desc);
		rc = qerr(-EREMOTEIO, err, errlen, "%s: %s", c, d);
		drain_events(q);
		goto cleanup;
	}
	drain_events(q);
	json_object_object_get_ex(msg, "return", &v);
	if (ret != NULL)
		*ret = json_object_get(v);
	af_debug("qmp: %s done in %.3f ms", cmd, (double)(af_mono_ns() - t0) / 1e6);
	rc = 0;
cleanup:
	json_object_put(msg);
	json_object_put(req);
	return rc;
}

int vft_qmp_exec(struct vft_qmp *q, const char *cmd, struct json_object *args,
                 struct json_object **ret, int timeout_ms, char *err, size_t errlen)
{
	char own[256]; /* when the caller wants no reason, broken() still does */
	int rc;

	if (ret != NULL)
		*ret = NULL;
	if (err == NULL || errlen == 0) {
		err = own;
		errlen = sizeof(own);
	}
	clear_err(err, errlen);
	rc = check_usable(q, err, errlen);
	if (rc < 0)
		return rc;
	if (cmd == NULL || *cmd == '\0')
		return qerr(-EINVAL, err, errlen, "no QMP command");
	/* QMP refuses anything but an object, and would say so less clearly */
	if (args != NULL && !json_object_is_type(args, json_type_object))
		return qerr(-EINVAL, err, errlen, "%s: arguments are not an object", cmd);
	if (timeout_ms < 0)
		return qerr(-EINVAL, err, errlen, "%s: negative timeout", cmd);
	return exec_until(q, cmd, args, ret, deadline_after(timeout_ms), err, errlen);
}

/* QEMU creates its QMP socket some milliseconds after exec: ENOENT and
 * ECONNREFUSED (socket file there, listen() not yet) are retried. */
static int connect_retry(struct vft_qmp *q, const char *path, uint64_t deadline, int timeout_ms,
                         char *err, size_t errlen)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int last = 0;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (;;) {
		uint64_t now, next;
		struct timespec ts;
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

		if (fd < 0)
			return qerr(-errno, err, errlen, "socket: %s", strerror(errno));
		/* a non-blocking AF_UNIX connect completes or fails at once
		 * (EAGAIN: listen backlog full), never EINPROGRESS */
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			q->fd = fd;
			return 0;
		}
		last = errno;
		close(fd);
		if (last != ENOENT && last != ECONNREFUSED && last != EAGAIN && last != EINTR)
			return qerr(-last, err, errlen, "QMP connect %s: %s", path, strerror(last));
		now = af_mono_ns();
		if (now >= deadline)
			return qerr(-ETIMEDOUT, err, errlen, "no QMP socket at %s after %d ms (%s)",
			            path, timeout_ms, strerror(last));
		next = now + QMP_CONNECT_RETRY_NS < deadline ? now + QMP_CONNECT_RETRY_NS
		                                             : deadline;
		ts.tv_sec = (time_t)(next / AF_NS_PER_S);
		ts.tv_nsec = (long)(next % AF_NS_PER_S);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
			;
	}
}

int vft_qmp_connect(struct vft_qmp **out, const char *path, int timeout_ms, char *err,
                    size_t errlen)
{
	struct sockaddr_un sa;
	struct vft_qmp *q = NULL;
	json_object *greet = NULL, *v;
	char why[256], quote[QMP_SHOW + 8];
	uint64_t deadline;
	int rc;

	clear_err(err, errlen);
	if (out == NULL || path == NULL || *path == '\0')
		return qerr(-EINVAL, err, errlen, "no QMP socket path");
	*out = NULL;
	if (strlen(path) >= sizeof(sa.sun_path))
		return qerr(-ENAMETOOLONG, err, errlen, "QMP socket path too long: %s", path);
	if (timeout_ms < 0)
		return qerr(-EINVAL, err, errlen, "negative QMP connect timeout");
	deadline = deadline_after(timeout_ms);
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		rc = qerr(-ENOMEM, err, errlen, "out of memory");
		goto cleanup;
	}
	q->fd = -1;
	q->tok = json_tokener_new_ex(QMP_JSON_DEPTH);
	q->buf = malloc(QMP_BUF_INIT + 1);
	if (q->tok == NULL || q->buf == NULL) {
		rc = qerr(-ENOMEM, err, errlen, "out of memory");
		goto cleanup;
	}
	q->cap = QMP_BUF_INIT;
	rc = connect_retry(q, path, deadline, timeout_ms, err, errlen);
	if (rc < 0)
		goto cleanup;
	rc = read_msg(q, true, deadline, &greet, why, sizeof(why));
	if (rc < 0) {
		rc = qerr(rc, err, errlen, "QMP greeting: %s", why);
		goto cleanup;
	}
	if (!json_object_is_type(greet, json_type_object) ||
	    !json_object_object_get_ex(greet, "QMP", &v)) {
		show_obj(greet, quote, sizeof(quote));
		rc = qerr(-EBADMSG, err, errlen, "not a QMP greeting: %s", quote);
		goto cleanup;
	}
	af_debug("qmp: %s: %s", path,
	         json_object_to_json_string_ext(json_object_object_get(v, "version"),
	                                        JSON_C_TO_STRING_PLAIN));
	rc = exec_until(q, "qmp_capabilities", NULL, NULL, deadline, why, sizeof(why));
	if (rc < 0) {
		rc = qerr(rc, err, errlen, "qmp_capabilities: %s", why);
		goto cleanup;
	}
	*out = q;
	q = NULL;
	rc = 0;
cleanup:
	json_object_put(greet);
	vft_qmp_close(q);
	return rc;
}

void vft_qmp_close(struct vft_qmp *q)
{
	if (q == NULL)
		return;
	if (q->fd >= 0)
		close(q->fd);
	json_object_put(q->pending);
	json_tokener_free(q->tok);
	free(q->buf);
	free(q);
}

int vft_qmp_simple(struct vft_qmp *q, const char *cmd, int timeout_ms, char *err, size_t errlen)
{
	return vft_qmp_exec(q, cmd, NULL, NULL, timeout_ms, err, errlen);
}

/* Builds {key: value} and runs cmd with it; value is consumed. */
static int exec_with(struct vft_qmp *q, const char *cmd, const char *key, json_object *value,
                     int timeout_ms, char *err, size_t errlen)
{
	json_object *args = json_object_new_object();
	int rc;

	if (args == NULL || value == NULL) {
		json_object_put(args);
		json_object_put(value);
		return qerr(-ENOMEM, err, errlen, "%s: out of memory", cmd);
	}
	json_object_object_add(args, key, value);
	rc = vft_qmp_exec(q, cmd, args, NULL, timeout_ms, err, errlen);
	json_object_put(args);
	return rc;
}

int vft_qmp_set_capability(struct vft_qmp *q, const char *cap, bool on, int timeout_ms, char *err,
                           size_t errlen)
{
	json_object *list, *c;

	if (cap == NULL || *cap == '\0')
		return qerr(-EINVAL, err, errlen, "no migration capability");
	list = json_object_new_array();
	c = json_object_new_object();
	if (list == NULL || c == NULL) {
		json_object_put(list);
		json_object_put(c);
		return qerr(-ENOMEM, err, errlen, "out of memory");
	}
	json_object_object_add(c, "capability", json_object_new_string(cap));
	json_object_object_add(c, "state", json_object_new_boolean(on));
	json_object_array_add(list, c);
	return exec_with(q, "migrate-set-capabilities", "capabilities", list, timeout_ms, err,
	                 errlen);
}

int vft_qmp_migrate(struct vft_qmp *q, const char *uri, int timeout_ms, char *err, size_t errlen)
{
	if (uri == NULL)
		return qerr(-EINVAL, err, errlen, "migrate: no URI");
	return exec_with(q, "migrate", "uri", json_object_new_string(uri), timeout_ms, err, errlen);
}

int vft_qmp_migrate_incoming(struct vft_qmp *q, const char *uri, int timeout_ms, char *err,
                             size_t errlen)
{
	if (uri == NULL)
		return qerr(-EINVAL, err, errlen, "migrate-incoming: no URI");
	return exec_with(q, "migrate-incoming", "uri", json_object_new_string(uri), timeout_ms, err,
	                 errlen);
}

int vft_qmp_migrate_status(struct vft_qmp *q, char *buf, size_t len, int timeout_ms, char *err,
                           size_t errlen)
{
	json_object *ret = NULL, *st;
	char quote[QMP_SHOW + 8];
	int rc;

	if (buf != NULL && len > 0)
		buf[0] = '\0';
	rc = vft_qmp_exec(q, "query-migrate", NULL, &ret, timeout_ms, err, errlen);
	if (rc < 0)
		goto cleanup;
	if (!json_object_is_type(ret, json_type_object)) {
		show_obj(ret, quote, sizeof(quote));
		rc = qerr(-EBADMSG, err, errlen, "query-migrate returned %s", quote);
		goto cleanup;
	}
	/* before any migration QEMU answers {}: no status at all */
	if (json_object_object_get_ex(ret, "status", &st)) {
		if (!json_object_is_type(st, json_type_string)) {
			show_obj(st, quote, sizeof(quote));
			rc = qerr(-EBADMSG, err, errlen, "query-migrate status %s", quote);
			goto cleanup;
		}
		if (buf != NULL && len > 0)
			af_strlcpy(buf, json_object_get_string(st), len);
	}
	rc = 0;
cleanup:
	json_object_put(ret);
	return rc;
}

int vft_qmp_status(struct vft_qmp *q, char *buf, size_t len, bool *running, int timeout_ms,
                   char *err, size_t errlen)
{
	json_object *ret = NULL, *st, *run;
	char quote[QMP_SHOW + 8];
	int rc;

	if (buf != NULL && len > 0)
		buf[0] = '\0';
	if (running != NULL)
		*running = false;
	rc = vft_qmp_exec(q, "query-status", NULL, &ret, timeout_ms, err, errlen);
	if (rc < 0)
		goto cleanup;
	/* both members are mandatory in QEMU's schema: a reply without them
	 * is not one the engine can act on */
	if (!json_object_is_type(ret, json_type_object) ||
	    !json_object_object_get_ex(ret, "status", &st) ||
	    !json_object_is_type(st, json_type_string) ||
	    !json_object_object_get_ex(ret, "running", &run) ||
	    !json_object_is_type(run, json_type_boolean)) {
		show_obj(ret, quote, sizeof(quote));
		rc = qerr(-EBADMSG, err, errlen, "query-status returned %s", quote);
		goto cleanup;
	}
	if (buf != NULL && len > 0)
		af_strlcpy(buf, json_object_get_string(st), len);
	if (running != NULL)
		*running = json_object_get_boolean(run);
	rc = 0;
cleanup:
	json_object_put(ret);
	return rc;
}

uint64_t vft_qmp_events(const struct vft_qmp *q)
{
	return q != NULL ? q->events : 0;
}

bool vft_qmp_shutdown_seen(const struct vft_qmp *q)
{
	return q != NULL && q->shutdown;
}

int vft_qmp_fd(const struct vft_qmp *q)
{
	return q != NULL ? q->fd : -1;
}

int vft_qmp_poll_events(struct vft_qmp *q, char *err, size_t errlen)
{
	json_object *msg = NULL;
	char own[256]; /* when the caller wants no reason, broken() still does */
	int rc;

	if (err == NULL || errlen == 0) {
		err = own;
		errlen = sizeof(own);
	}
	clear_err(err, errlen);
	rc = check_usable(q, err, errlen);
	if (rc < 0)
		return rc;
	for (;;) {
		rc = read_msg(q, false, 0, &msg, err, errlen);
		if (rc <= 0)
			break;
		rc = classify(q, msg, 0, err, errlen);
		json_object_put(msg);
		msg = NULL;
		if (rc < 0)
			break;
	}
	return rc;
}
