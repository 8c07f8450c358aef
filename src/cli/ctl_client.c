/*
 * The CLI side of the IPC protocol: one request, one validated answer.
 */
#include "config.h"

#include "ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <qb/qbipcc.h>

#include "af_ipc.h"

struct ctl_client {
	qb_ipcc_connection_t *conn;
	uint32_t seq;
	int timeout_ms;
	char name[64];
};

struct ctl_client *ctl_init(const char *ipc_name, int timeout_ms, int *exit_code, char *msg,
                            size_t msglen)
{
	struct ctl_client *cl = calloc(1, sizeof(*cl));
	int err;

	if (cl == NULL) {
		*exit_code = CTL_FAILED;
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	cl->conn = qb_ipcc_connect(ipc_name, AF_IPC_RSP_MAX + 4096);
	if (cl->conn == NULL) {
		err = errno;
		free(cl);
		if (err == EACCES || err == EPERM) {
			*exit_code = CTL_DENIED;
			snprintf(msg, msglen,
			         "permission denied by atca-ftd on IPC '%s' (run as root or as a "
			         "member of its ipc_group)",
			         ipc_name);
		} else if (err == EMFILE) {
			*exit_code = CTL_FAILED;
			snprintf(msg, msglen,
			         "atca-ftd on IPC '%s' refused the connection: too many clients "
			         "(daemon.ipc_max_clients), or the daemon is short of file "
			         "descriptors (see its log)",
			         ipc_name);
		} else {
			*exit_code = CTL_UNREACHABLE;
			snprintf(msg, msglen,
			         "cannot reach atca-ftd on IPC '%s': %s (is it running?)", ipc_name,
			         strerror(err));
		}
		return NULL;
	}
	cl->timeout_ms = timeout_ms;
	snprintf(cl->name, sizeof(cl->name), "%s", ipc_name);
	return cl;
}

void ctl_fini(struct ctl_client *cl)
{
	if (cl == NULL)
		return;
	qb_ipcc_disconnect(cl->conn);
	free(cl);
}

static json_object *parse_doc(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(64);
	json_object *doc;

	if (tok == NULL)
		return NULL;
	doc = json_tokener_parse_ex(tok, text, (int)len);
	if (doc != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
	                    json_tokener_get_parse_end(tok) != len ||
	                    !json_object_is_type(doc, json_type_object))) {
		json_object_put(doc);
		doc = NULL;
	}
	json_tokener_free(tok);
	return doc;
}

void ctl_set_timeout(struct ctl_client *cl, int timeout_ms)
{
	cl->timeout_ms = timeout_ms;
}

int ctl_call(struct ctl_client *cl, const struct af_ipc_request *args, int *status,
             json_object **doc, char *msg, size_t msglen)
{
	struct af_ipc_request req = *args;
	unsigned op = req.op;
	struct af_ipc_response rsp;
	uint8_t reqbuf[AF_IPC_REQ_MAX];
	struct iovec iov;
	char err[160];
	char *rspbuf;
	ssize_t got;
	int n, rc = CTL_OK;

	*doc = NULL;
	req.version = AF_IPC_VERSION;
	req.seq = ++cl->seq;
	req.has_client = true;
	snprintf(req.client, sizeof(req.client), "atca-ftctl %s", PACKAGE_VERSION);
	n = af_ipc_req_encode(reqbuf, sizeof(reqbuf), &req);
	if (n < 0) {
		snprintf(msg, msglen, "cannot encode request: %s", strerror(-n));
		return CTL_FAILED;
	}
	rspbuf = malloc(AF_IPC_RSP_MAX);
	if (rspbuf == NULL) {
		snprintf(msg, msglen, "out of memory");
		return CTL_FAILED;
	}
	iov.iov_base = reqbuf;
	iov.iov_len = (size_t)n;
	got = qb_ipcc_sendv_recv(cl->conn, &iov, 1, rspbuf, AF_IPC_RSP_MAX, cl->timeout_ms);
	if (got < 0) {
		if (got == -ETIMEDOUT || got == -EAGAIN)
			snprintf(msg, msglen, "atca-ftd did not answer within %d ms",
			         cl->timeout_ms);
		else
			snprintf(msg, msglen, "lost the connection to atca-ftd: %s",
			         strerror((int)-got));
		rc = CTL_UNREACHABLE;
		goto out;
	}
	if (af_ipc_rsp_decode(rspbuf, (size_t)got, req.seq, &rsp, err, sizeof(err)) < 0) {
		snprintf(msg, msglen, "malformed answer from atca-ftd: %s", err);
		rc = CTL_PROTOCOL;
		goto out;
	}
	*doc = parse_doc(rsp.payload, rsp.payload_len);
	if (*doc == NULL) {
		snprintf(msg, msglen,
		         "malformed answer from atca-ftd: the payload is not a JSON "
		         "object");
		rc = CTL_PROTOCOL;
		goto out;
	}
	*status = rsp.status;
	if (rsp.status == -EPROTONOSUPPORT) {
		snprintf(msg, msglen,
		         "atca-ftd speaks IPC protocol %lld..%lld, this atca-ftctl speaks %d..%d",
		         (long long)ctl_int(*doc, "min_version", 0),
		         (long long)ctl_int(*doc, "max_version", 0), AF_IPC_VERSION_MIN,
		         AF_IPC_VERSION);
		rc = CTL_PROTOCOL;
	} else if (rsp.status == -EOPNOTSUPP) {
		snprintf(msg, msglen, "this atca-ftd does not support '%s' (older version?)",
		         af_ipc_op_name(op));
		rc = CTL_PROTOCOL;
	}
out:
	free(rspbuf);
	return rc;
}
