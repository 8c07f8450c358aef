/*
 * ipc_flood NAME COUNT HOLD_MS: opens up to COUNT connections to a running
 * atca-ftd and holds them, to exhaust its file descriptors (run the daemon
 * under a low RLIMIT_NOFILE). Prints "held H refused R errno E", asks for
 * the status on every connection it holds (each must answer), sleeps
 * HOLD_MS (the caller looks at the daemon meanwhile), then closes them all
 * and prints "released". Exit 0, or 1 if a held connection did not answer.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#include <qb/qbipcc.h>

#include "af_ipc.h"

#define FLOOD_MAX 4096

static int status_of(qb_ipcc_connection_t *c, uint32_t seq)
{
	char req[256], *rsp = malloc(AF_IPC_RSP_MAX);
	struct af_ipc_request r = {.op = AF_OP_STATUS, .seq = seq};
	struct af_ipc_response out;
	struct iovec iov;
	char err[160];
	ssize_t got;
	int n, rc = -EIO;

	if (rsp == NULL)
		return -ENOMEM;
	n = af_ipc_req_encode(req, sizeof(req), &r);
	if (n < 0)
		goto out;
	iov.iov_base = req;
	iov.iov_len = (size_t)n;
	got = qb_ipcc_sendv_recv(c, &iov, 1, rsp, AF_IPC_RSP_MAX, 5000);
	if (got < 0) {
		rc = (int)got;
		goto out;
	}
	if (af_ipc_rsp_decode(rsp, (size_t)got, seq, &out, err, sizeof(err)) < 0)
		goto out;
	rc = out.status;
out:
	free(rsp);
	return rc;
}

int main(int argc, char **argv)
{
	qb_ipcc_connection_t **held;
	int count, hold_ms, n_held = 0, refused = 0, last_err = 0, bad = 0;
	struct timespec ts;

	if (argc != 4) {
		fprintf(stderr, "usage: ipc_flood NAME COUNT HOLD_MS\n");
		return 2;
	}
	count = atoi(argv[2]);
	hold_ms = atoi(argv[3]);
	if (count <= 0 || count > FLOOD_MAX || hold_ms < 0) {
		fprintf(stderr, "ipc_flood: COUNT 1..%d, HOLD_MS >= 0\n", FLOOD_MAX);
		return 2;
	}
	held = calloc((size_t)count, sizeof(*held));
	if (held == NULL)
		return 2;
	for (int i = 0; i < count; i++) {
		qb_ipcc_connection_t *c = qb_ipcc_connect(argv[1], AF_IPC_RSP_MAX + 4096);

		if (c == NULL) {
			refused++;
			last_err = errno;
		} else {
			held[n_held++] = c;
		}
	}
	printf("held %d refused %d errno %d (%s)\n", n_held, refused, last_err,
	       last_err ? strerror(last_err) : "-");
	for (int i = 0; i < n_held; i++) {
		int rc = status_of(held[i], (uint32_t)i + 1);

		if (rc != 0) {
			printf("connection %d: status answered %d\n", i, rc);
			bad++;
		}
	}
	printf("%d held connections answered\n", n_held - bad);
	fflush(stdout);
	ts.tv_sec = hold_ms / 1000;
	ts.tv_nsec = (long)(hold_ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	while (n_held > 0)
		qb_ipcc_disconnect(held[--n_held]);
	printf("released\n");
	free(held);
	return bad ? 1 : 0;
}
