/*
 * libFuzzer target: QMP as the engine's client (src/vmft-bridge/vft_qmp.c)
 * reads it from QEMU. The client is driven unchanged, through a unix socket:
 * a fake QEMU thread accepts it, sends the input as QEMU's whole output
 * (greeting, replies, events, blank, cut, oversized or binary lines), shuts
 * its side down and reads whatever the client sends until it closes. The
 * client connects (greeting, qmp_capabilities = command 1) and then runs the
 * calls the first input byte selects, in order: query-status, query-migrate,
 * migrate-set-capabilities, migrate, a generic command with arguments and a
 * returned value, and a poll for events. Two flags of that byte append
 * lines no mutation reaches in a small input: one of exactly the line limit
 * (1 MiB, accepted) and one beyond it (refused).
 *
 * Checked: every call returns 0 or one of the documented errors (never
 * -ETIMEDOUT: the stream always ends, so a wait can only end at EOF); the
 * reason is set on failure only and is a bounded string; the strings a call
 * fills are terminated and within their buffers; a stream once broken
 * (malformed message, EOF; not a well-formed reply of the wrong shape)
 * refuses every later call at once; events are
 * only counted up, never more than the lines sent.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "vft_qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINE_LIMIT (1024 * 1024) /* QMP_MAX_LINE in vft_qmp.c */
#define F_EXACT_LIMIT 0x40u      /* append a valid line of exactly LINE_LIMIT bytes */
#define F_OVER_LIMIT 0x80u       /* append a line beyond it */
#define TIMEOUT_MS 5000

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static int listen_fd = -1;
static char sock_path[108];

struct fake_qemu {
	const uint8_t *out;
	size_t len;
	unsigned flags;
};

static void send_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len > 0) {
		ssize_t w = send(fd, b, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* the client gave up: fine */
		b += w;
		len -= (size_t)w;
	}
}

static void *qemu_main(void *arg)
{
	const struct fake_qemu *f = arg;
	int fd = accept(listen_fd, NULL, NULL);
	char sink[4096];

	if (fd < 0)
		return NULL;
	send_all(fd, f->out, f->len);
	if (f->flags & (F_EXACT_LIMIT | F_OVER_LIMIT)) {
		/* {"event":"BIG","data":"xxx...x"} of exactly LINE_LIMIT bytes,
		 * or one byte more */
		static const char head[] = "\n{\"event\":\"BIG\",\"data\":\"", tail[] = "\"}\r\n";
		size_t n = LINE_LIMIT - (sizeof(head) - 2) - (sizeof(tail) - 3) +
		           ((f->flags & F_OVER_LIMIT) ? 1 : 0);
		char *x = malloc(n);

		if (x != NULL) {
			memset(x, 'x', n);
			send_all(fd, head, sizeof(head) - 1);
			send_all(fd, x, n);
			send_all(fd, tail, sizeof(tail) - 1);
			free(x);
		}
	}
	shutdown(fd, SHUT_WR);
	/* read the client's commands until it closes: closing with them
	 * unread would reset its side before it read our bytes */
	while (recv(fd, sink, sizeof(sink), 0) > 0)
		;
	close(fd);
	return NULL;
}

static void setup(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	snprintf(sock_path, sizeof(sock_path), "/dev/shm/fuzz-qmp-%d.sock", (int)getpid());
	unlink(sock_path);
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	expect(listen_fd >= 0);
	expect(bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	expect(listen(listen_fd, 4) == 0);
}

static void cleanup(void)
{
	unlink(sock_path);
}

/* a call's verdict and its reason agree */
static void check_rc(int rc, const char *err, size_t errlen)
{
	expect(rc == 0 || rc == -EREMOTEIO || rc == -EBADMSG || rc == -ECONNRESET || rc == -EPIPE);
	expect(memchr(err, '\0', errlen) != NULL);
	expect(rc == 0 ? err[0] == '\0' : err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct fake_qemu f = {0};
	struct vft_qmp *q = NULL;
	pthread_t th;
	unsigned calls;
	char err[256], buf[16];
	bool broken = false, running;
	uint64_t events = 0, lines = 3;
	int rc;

	if (!ready) {
		setup();
		atexit(cleanup);
		ready = true;
	}
	if (size < 1)
		return 0;
	calls = data[0];
	f.out = data + 1;
	f.len = size - 1;
	f.flags = calls;
	for (size_t i = 0; i < f.len; i++)
		lines += f.out[i] == '\n';
	expect(pthread_create(&th, NULL, qemu_main, &f) == 0);

	rc = vft_qmp_connect(&q, sock_path, TIMEOUT_MS, err, sizeof(err));
	expect(rc == 0 || rc == -EBADMSG || rc == -ECONNRESET || rc == -EREMOTEIO || rc == -EPIPE);
	expect(memchr(err, '\0', sizeof(err)) != NULL);
	expect(rc == 0 ? q != NULL && err[0] == '\0' : q == NULL && err[0] != '\0');
	if (q == NULL)
		goto out;
	expect(vft_qmp_fd(q) >= 0);
	for (unsigned k = 0; k < 6; k++) {
		if (!(calls & (1u << k)))
			continue;
		memset(buf, 'Z', sizeof(buf));
		switch (k) {
		case 0:
			rc = vft_qmp_status(q, buf, sizeof(buf), &running, TIMEOUT_MS, err,
			                    sizeof(err));
			expect(memchr(buf, '\0', sizeof(buf)) != NULL);
			expect(rc == 0 || (buf[0] == '\0' && !running));
			break;
		case 1:
			rc = vft_qmp_migrate_status(q, buf, sizeof(buf), TIMEOUT_MS, err,
			                            sizeof(err));
			expect(memchr(buf, '\0', sizeof(buf)) != NULL);
			expect(rc == 0 || buf[0] == '\0');
			break;
		case 2:
			rc = vft_qmp_set_capability(q, "x-colo", true, TIMEOUT_MS, err,
			                            sizeof(err));
			break;
		case 3:
			rc = vft_qmp_migrate(q, "unix:/nonexistent", TIMEOUT_MS, err, sizeof(err));
			break;
		case 4: {
			json_object *args = json_object_new_object(), *ret = (json_object *)1;

			json_object_object_add(args, "device", json_object_new_string("disk0"));
			rc = vft_qmp_exec(q, "query-block", args, &ret, TIMEOUT_MS, err,
			                  sizeof(err));
			expect(rc == 0 || ret == NULL);
			json_object_put(ret);
			json_object_put(args);
			break;
		}
		default:
			rc = vft_qmp_poll_events(q, err, sizeof(err));
			expect(rc <= 0);
			break;
		}
		check_rc(rc, err, sizeof(err));
		/* once broken, refused at once; a reply of the wrong shape
		 * ("query-status returned ...") leaves the stream in sync */
		expect(!broken || rc == -ECONNRESET);
		if (rc == -ECONNRESET || (rc == -EBADMSG && strncmp(err, "query-", 6) != 0))
			broken = true;
		expect(vft_qmp_events(q) >= events);
		events = vft_qmp_events(q);
	}
	expect(vft_qmp_events(q) <= lines);
	expect(!vft_qmp_shutdown_seen(q) || vft_qmp_events(q) > 0);
	vft_qmp_close(q);
out:
	pthread_join(th, NULL);
	return 0;
}
