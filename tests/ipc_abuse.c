/*
 * ipc_abuse NAME: connects to a running atca-ftd and sends it malformed,
 * oversized and random requests, checking that each one gets an error answer
 * with the right status and that the daemon still answers a valid request
 * afterwards. Exit 0 if the daemon behaved, 1 otherwise.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <qb/qbipcc.h>

#include "af_ipc.h"

static int failures;

static qb_ipcc_connection_t *connect_or_die(const char *name)
{
	qb_ipcc_connection_t *c = qb_ipcc_connect(name, AF_IPC_RSP_MAX + 4096);

	if (c == NULL) {
		fprintf(stderr, "ipc_abuse: cannot connect to %s: %s\n", name, strerror(errno));
		exit(2);
	}
	return c;
}

/* Sends len bytes and returns the status of the answer (or a transport
 * error as -errno + -1000 so it cannot be mistaken for a status). */
static int exchange(qb_ipcc_connection_t *c, const void *buf, size_t len, uint32_t seq)
{
	static char rsp[AF_IPC_RSP_MAX];
	struct af_ipc_response r;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	char err[160];
	ssize_t got = qb_ipcc_sendv_recv(c, &iov, 1, rsp, sizeof(rsp), 5000);

	if (got < 0)
		return (int)got - 1000;
	if (af_ipc_rsp_decode(rsp, (size_t)got, seq, &r, err, sizeof(err)) < 0) {
		/* answers to unparseable requests carry seq 0 */
		if (af_ipc_rsp_decode(rsp, (size_t)got, 0, &r, err, sizeof(err)) < 0) {
			fprintf(stderr, "ipc_abuse: malformed answer: %s\n", err);
			return -9999;
		}
	}
	return r.status;
}

static void expect(const char *what, int got, int want)
{
	if (got == want) {
		printf("ok   %-40s status %d\n", what, got);
	} else {
		printf("FAIL %-40s status %d, expected %d\n", what, got, want);
		failures++;
	}
}

static size_t encode(uint8_t *buf, uint16_t op, uint32_t seq)
{
	struct af_ipc_request req = {.op = op, .seq = seq};

	return (size_t)af_ipc_req_encode(buf, AF_IPC_REQ_MAX, &req);
}

int main(int argc, char **argv)
{
	uint8_t buf[AF_IPC_REQ_MAX + 64 * 1024];
	struct af_ipc_req_hdr h;
	qb_ipcc_connection_t *c;
	size_t n, off = sizeof(struct qb_ipc_request_header);
	unsigned seed = 12345;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: ipc_abuse IPC_NAME [MAX_CLIENTS]\n");
		return 2;
	}
	c = connect_or_die(argv[1]);

	n = encode(buf, AF_OP_HELLO, 1);
	expect("valid hello", exchange(c, buf, n, 1), 0);

	n = encode(buf, AF_OP_HELLO, 2);
	memcpy(&h, buf + off, sizeof(h));
	h.magic = 0x12345678;
	memcpy(buf + off, &h, sizeof(h));
	expect("bad magic", exchange(c, buf, n, 2), -EBADMSG);

	n = encode(buf, AF_OP_HELLO, 3);
	memcpy(&h, buf + off, sizeof(h));
	h.version = 999;
	memcpy(buf + off, &h, sizeof(h));
	expect("future protocol version", exchange(c, buf, n, 3), -EPROTONOSUPPORT);

	{
		struct af_ipc_request req = {.op = 200, .seq = 4};
		struct qb_ipc_request_header qb;

		n = (size_t)af_ipc_req_encode(buf, AF_IPC_REQ_MAX, &req);
		memcpy(&qb, buf, sizeof(qb));
		qb.id = QB_IPC_MSG_USER_START + 200;
		memcpy(buf, &qb, sizeof(qb));
		expect("unknown operation", exchange(c, buf, n, 4), -EOPNOTSUPP);
	}

	{
		struct qb_ipc_request_header qb;

		n = encode(buf, AF_OP_STATUS, 5);
		memcpy(&qb, buf, sizeof(qb));
		qb.size = (int32_t)(off + 4);
		memcpy(buf, &qb, sizeof(qb));
		expect("truncated header", exchange(c, buf, off + 4, 5), -EBADMSG);
	}

	/* larger than the protocol allows, yet within libqb's buffer */
	{
		struct qb_ipc_request_header qb = {.id = QB_IPC_MSG_USER_START + AF_OP_STATUS};
		size_t big = AF_IPC_REQ_MAX + 32 * 1024;

		memset(buf, 'A', big);
		qb.size = (int32_t)big;
		memcpy(buf, &qb, sizeof(qb));
		expect("oversized request", exchange(c, buf, big, 6), -EMSGSIZE);
	}

	/* random garbage with a valid transport header */
	for (int i = 0; i < 500; i++) {
		struct qb_ipc_request_header qb = {.id = QB_IPC_MSG_USER_START + 2};
		size_t len = sizeof(qb) + (size_t)(rand_r(&seed) % 200);
		int st;

		for (size_t k = sizeof(qb); k < len; k++)
			buf[k] = (uint8_t)rand_r(&seed);
		qb.size = (int32_t)len;
		memcpy(buf, &qb, sizeof(qb));
		st = exchange(c, buf, len, 0);
		if (st >= 0 || st <= -1000) {
			printf("FAIL random request %d: status %d\n", i, st);
			failures++;
			break;
		}
	}
	printf("ok   500 random requests rejected\n");

	n = encode(buf, AF_OP_STATUS, 7);
	expect("valid status after the abuse", exchange(c, buf, n, 7), 0);
	qb_ipcc_disconnect(c);

	/* and a fresh connection still works */
	c = connect_or_die(argv[1]);
	n = encode(buf, AF_OP_HELLO, 8);
	expect("new connection", exchange(c, buf, n, 8), 0);
	qb_ipcc_disconnect(c);

	/* the daemon admits at most MAX_CLIENTS connections at a time */
	if (argc == 3) {
		int max = atoi(argv[2]), refused = 0, err = 0;
		qb_ipcc_connection_t *held[64];
		int n_held = 0;

		/* refusals must not open room: try three more than allowed */
		for (int i = 0; i < max + 3 && i < 64; i++) {
			qb_ipcc_connection_t *extra =
			        qb_ipcc_connect(argv[1], AF_IPC_RSP_MAX + 4096);

			if (extra == NULL) {
				refused++;
				err = errno;
			} else {
				held[n_held++] = extra;
			}
		}
		if (n_held == max && refused == 3 && err == EMFILE)
			printf("ok   %d connections held, the next three refused (EMFILE)\n", max);
		else {
			printf("FAIL max clients %d: %d held, %d refused (errno %d)\n", max, n_held,
			       refused, err);
			failures++;
		}
		while (n_held > 0)
			qb_ipcc_disconnect(held[--n_held]);
		c = connect_or_die(argv[1]);
		n = encode(buf, AF_OP_HELLO, 9);
		expect("connection after the others closed", exchange(c, buf, n, 9), 0);
		qb_ipcc_disconnect(c);
	}
	return failures ? 1 : 0;
}
