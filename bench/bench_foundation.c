/*
 * bench_foundation: latency of the daemon's basic paths, to keep an eye on
 * them as modules are added.
 *
 *   bench_foundation IPC_NAME CONFIG_FILE [ROUNDS]
 *
 * - config: loading and validating CONFIG_FILE (af_cfg_load), in-process;
 * - hello / status: one request and its answer over libqb IPC to a running
 *   atca-ftd, on one connection;
 * - connect+status: a new connection per request, as atca-ftctl does.
 *
 * Prints median, p90, p99 and max in microseconds over ROUNDS (default 2000).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <qb/qbipcc.h>

#include "af_config.h"
#include "af_ipc.h"
#include "af_util.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *ns, unsigned n)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("| %-16s | %6u | %9.1f | %9.1f | %9.1f | %9.1f |\n", name, n, ns[n / 2] / 1e3,
	       ns[n * 90 / 100] / 1e3, ns[n * 99 / 100] / 1e3, ns[n - 1] / 1e3);
}

static int call(qb_ipcc_connection_t *c, unsigned op, uint32_t seq, char *rsp)
{
	struct af_ipc_request req = {.op = (uint16_t)op, .seq = seq};
	uint8_t buf[AF_IPC_REQ_MAX];
	struct iovec iov = {.iov_base = buf};
	struct af_ipc_response r;
	char err[160];
	int n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ssize_t got;

	iov.iov_len = (size_t)n;
	got = qb_ipcc_sendv_recv(c, &iov, 1, rsp, AF_IPC_RSP_MAX, 5000);
	if (got < 0 || af_ipc_rsp_decode(rsp, (size_t)got, seq, &r, err, sizeof(err)) < 0 ||
	    r.status != 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned rounds = argc > 3 ? (unsigned)atoi(argv[3]) : 2000;
	uint64_t *ns = calloc(rounds, sizeof(*ns));
	char *rsp = malloc(AF_IPC_RSP_MAX);
	qb_ipcc_connection_t *c;

	if (argc < 3 || rounds < 10 || ns == NULL || rsp == NULL) {
		fprintf(stderr, "usage: bench_foundation IPC_NAME CONFIG_FILE [ROUNDS>=10]\n");
		return 2;
	}
	printf("| path             | rounds | median us |    p90 us |    p99 us |    max us |\n");
	printf("|------------------|--------|-----------|-----------|-----------|-----------|\n");

	for (unsigned i = 0; i < rounds; i++) {
		struct af_cfg_diag diag;
		struct af_config *cfg = NULL;
		uint64_t t0 = af_mono_ns();

		if (af_cfg_load(argv[2], 0, &cfg, &diag) < 0) {
			fprintf(stderr, "%s\n", diag.n_errors ? diag.errors[0] : "config failed");
			return 1;
		}
		ns[i] = af_mono_ns() - t0;
		af_cfg_free(cfg);
	}
	report("config load", ns, rounds);

	c = qb_ipcc_connect(argv[1], AF_IPC_RSP_MAX + 4096);
	if (c == NULL) {
		fprintf(stderr, "cannot connect to %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (unsigned op = AF_OP_HELLO; op <= AF_OP_STATUS; op++) {
		for (unsigned i = 0; i < rounds; i++) {
			uint64_t t0 = af_mono_ns();

			if (call(c, op, i + 1, rsp) < 0) {
				fprintf(stderr, "%s failed\n", af_ipc_op_name(op));
				return 1;
			}
			ns[i] = af_mono_ns() - t0;
		}
		report(af_ipc_op_name(op), ns, rounds);
	}
	qb_ipcc_disconnect(c);

	for (unsigned i = 0; i < rounds / 4; i++) {
		uint64_t t0 = af_mono_ns();

		c = qb_ipcc_connect(argv[1], AF_IPC_RSP_MAX + 4096);
		if (c == NULL || call(c, AF_OP_STATUS, 1, rsp) < 0) {
			fprintf(stderr, "connect+status failed\n");
			return 1;
		}
		qb_ipcc_disconnect(c);
		ns[i] = af_mono_ns() - t0;
	}
	report("connect+status", ns, rounds / 4);
	free(ns);
	free(rsp);
	return 0;
}
