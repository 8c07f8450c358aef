#include "config.h"

#include "af_ipc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "af_util.h"

static const char *const op_names[AF_OP_COUNT] = {
        [AF_OP_HELLO] = "hello",
        [AF_OP_STATUS] = "status",
        [AF_OP_CONFIG_CHECK] = "config-check",
        [AF_OP_RELOAD] = "reload",
        [AF_OP_BLADES] = "blades",
        [AF_OP_SENSORS] = "sensors",
        [AF_OP_SEL] = "sel",
        [AF_OP_EVENTS] = "events",
        [AF_OP_FENCE] = "fence",
        [AF_OP_UNFENCE] = "unfence",
        [AF_OP_PAIRS] = "pairs",
        [AF_OP_VMS] = "vms",
        [AF_OP_FAULTS] = "faults",
        [AF_OP_PLANS] = "plans",
        [AF_OP_FAILOVER] = "failover",
        [AF_OP_MAINTENANCE] = "maintenance",
        [AF_OP_VMFT] = "vmft",
        [AF_OP_LOG] = "log",
};

/* Which arguments each operation accepts (bit = arg type); anything else in a
 * request is an error, so a typo in a client cannot be silently ignored. */
#define ARG_BIT(t) (1u << (t))
static const unsigned op_args[AF_OP_COUNT] = {
        [AF_OP_HELLO] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_STATUS] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_CONFIG_CHECK] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_RELOAD] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_BLADES] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_SENSORS] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE),
        [AF_OP_SEL] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_EVENTS] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_FENCE] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE),
        [AF_OP_UNFENCE] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE),
        [AF_OP_PAIRS] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_VMS] = ARG_BIT(AF_ARG_CLIENT),
        [AF_OP_FAULTS] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_PLANS] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_FAILOVER] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE),
        [AF_OP_MAINTENANCE] =
                ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_VMFT] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_LOG] = ARG_BIT(AF_ARG_CLIENT) | ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
};

/* Arguments an operation cannot do without. */
static const unsigned op_required[AF_OP_COUNT] = {
        [AF_OP_FENCE] = ARG_BIT(AF_ARG_BLADE),
        [AF_OP_UNFENCE] = ARG_BIT(AF_ARG_BLADE),
        [AF_OP_FAILOVER] = ARG_BIT(AF_ARG_BLADE),
        [AF_OP_MAINTENANCE] = ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
        [AF_OP_VMFT] = ARG_BIT(AF_ARG_BLADE) | ARG_BIT(AF_ARG_COUNT),
};

const char *af_ipc_op_name(unsigned op)
{
	if (op >= AF_OP_COUNT || op_names[op] == NULL)
		return "unknown";
	return op_names[op];
}

struct wbuf {
	uint8_t *p;
	size_t len, pos;
};

static int put(struct wbuf *w, const void *src, size_t n)
{
	if (w->pos + n > w->len)
		return -EMSGSIZE;
	memcpy(w->p + w->pos, src, n);
	w->pos += n;
	return 0;
}

static int put_tlv(struct wbuf *w, uint16_t type, const void *val, size_t n)
{
	uint16_t t = type, l = (uint16_t)n;

	if (n > AF_IPC_ARG_MAX)
		return -EINVAL;
	if (put(w, &t, sizeof(t)) < 0 || put(w, &l, sizeof(l)) < 0 || put(w, val, n) < 0)
		return -EMSGSIZE;
	return 0;
}

int af_ipc_req_encode(void *buf, size_t len, const struct af_ipc_request *req)
{
	struct wbuf w = {.p = buf, .len = len < AF_IPC_REQ_MAX ? len : AF_IPC_REQ_MAX};
	struct qb_ipc_request_header qb;
	struct af_ipc_req_hdr h;
	size_t hdr_end;
	int rc = 0;

	w.pos = sizeof(qb) + sizeof(h);
	if (w.pos > w.len)
		return -EMSGSIZE;
	hdr_end = w.pos;
	if (req->has_client)
		rc = put_tlv(&w, AF_ARG_CLIENT, req->client, strlen(req->client));
	if (rc == 0 && req->has_blade)
		rc = put_tlv(&w, AF_ARG_BLADE, req->blade, strlen(req->blade));
	if (rc == 0 && req->has_count)
		rc = put_tlv(&w, AF_ARG_COUNT, &req->count, sizeof(req->count));
	if (rc < 0)
		return rc;

	memset(&qb, 0, sizeof(qb));
	qb.id = QB_IPC_MSG_USER_START + req->op;
	qb.size = (int32_t)w.pos;
	h.magic = AF_IPC_REQ_MAGIC;
	h.version = req->version ? req->version : AF_IPC_VERSION;
	h.op = req->op;
	h.seq = req->seq;
	h.payload_len = (uint32_t)(w.pos - hdr_end);
	memcpy(w.p, &qb, sizeof(qb));
	memcpy(w.p + sizeof(qb), &h, sizeof(h));
	return (int)w.pos;
}

#define DFAIL(code, ...)                                                                           \
	do {                                                                                       \
		if (err != NULL && errlen > 0)                                                     \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		return (code);                                                                     \
	} while (0)

static int decode_string(const uint8_t *v, uint16_t n, char *dst, const char *what, char *err,
                         size_t errlen)
{
	if (n == 0)
		DFAIL(-EINVAL, "empty %s argument", what);
	for (uint16_t i = 0; i < n; i++) {
		if (v[i] < 0x20 || v[i] == 0x7f)
			DFAIL(-EINVAL, "%s argument contains byte 0x%02x", what, v[i]);
	}
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

int af_ipc_req_decode(const void *buf, size_t len, struct af_ipc_request *req, char *err,
                      size_t errlen)
{
	const uint8_t *p = buf;
	struct qb_ipc_request_header qb;
	struct af_ipc_req_hdr h;
	size_t off;
	unsigned seen = 0;
	int rc;

	memset(req, 0, sizeof(*req));
	if (len > AF_IPC_REQ_MAX)
		DFAIL(-EMSGSIZE, "request of %zu bytes exceeds %d", len, AF_IPC_REQ_MAX);
	if (len < sizeof(qb) + sizeof(h))
		DFAIL(-EBADMSG, "request of %zu bytes is shorter than its header", len);
	memcpy(&qb, p, sizeof(qb));
	memcpy(&h, p + sizeof(qb), sizeof(h));
	if (h.magic != AF_IPC_REQ_MAGIC)
		DFAIL(-EBADMSG, "bad magic 0x%08x", h.magic);
	if (qb.size < 0 || (size_t)qb.size != len)
		DFAIL(-EBADMSG, "transport size %d does not match %zu received", qb.size, len);
	if ((size_t)h.payload_len != len - sizeof(qb) - sizeof(h))
		DFAIL(-EBADMSG, "payload length %u does not match %zu", h.payload_len,
		      len - sizeof(qb) - sizeof(h));
	req->version = h.version;
	req->op = h.op;
	req->seq = h.seq;
	if (h.version < AF_IPC_VERSION_MIN || h.version > AF_IPC_VERSION)
		DFAIL(-EPROTONOSUPPORT, "protocol version %u not supported (%d..%d)", h.version,
		      AF_IPC_VERSION_MIN, AF_IPC_VERSION);
	if (h.op == 0 || h.op >= AF_OP_COUNT)
		DFAIL(-EOPNOTSUPP, "unknown operation %u", h.op);
	if (qb.id != QB_IPC_MSG_USER_START + (int32_t)h.op)
		DFAIL(-EBADMSG, "transport id %d does not match operation %u", qb.id, h.op);

	off = sizeof(qb) + sizeof(h);
	while (off < len) {
		uint16_t type, n;
		const uint8_t *v;

		if (len - off < 4)
			DFAIL(-EBADMSG, "truncated argument header at offset %zu", off);
		memcpy(&type, p + off, 2);
		memcpy(&n, p + off + 2, 2);
		off += 4;
		if (n > len - off)
			DFAIL(-EBADMSG, "argument %u of %u bytes overruns the request", type, n);
		v = p + off;
		off += n;
		if (type == 0 || type >= AF_ARG_TYPE_MAX)
			DFAIL(-EINVAL, "unknown argument type %u", type);
		if (!(op_args[h.op] & ARG_BIT(type)))
			DFAIL(-EINVAL, "argument %u not accepted by %s", type, op_names[h.op]);
		if (seen & ARG_BIT(type))
			DFAIL(-EINVAL, "argument %u given twice", type);
		seen |= ARG_BIT(type);
		if (n > AF_IPC_ARG_MAX)
			DFAIL(-EINVAL, "argument %u too long (%u bytes)", type, n);
		switch (type) {
		case AF_ARG_CLIENT:
			rc = decode_string(v, n, req->client, "client", err, errlen);
			if (rc < 0)
				return rc;
			req->has_client = true;
			break;
		case AF_ARG_BLADE:
			if (n >= sizeof(req->blade))
				DFAIL(-EINVAL, "blade argument too long (%u bytes)", n);
			rc = decode_string(v, n, req->blade, "blade", err, errlen);
			if (rc < 0)
				return rc;
			req->has_blade = true;
			break;
		case AF_ARG_COUNT:
			if (n != sizeof(req->count))
				DFAIL(-EINVAL, "count argument of %u bytes (expected %zu)", n,
				      sizeof(req->count));
			memcpy(&req->count, v, sizeof(req->count));
			req->has_count = true;
			break;
		default:
			DFAIL(-EINVAL, "unknown argument type %u", type);
		}
	}
	if ((seen & op_required[h.op]) != op_required[h.op])
		DFAIL(-EINVAL, "%s needs a %s argument", op_names[h.op],
		      (seen & ARG_BIT(AF_ARG_BLADE)) || !(op_required[h.op] & ARG_BIT(AF_ARG_BLADE))
		              ? "count"
		              : "blade");
	return 0;
}

size_t af_ipc_rsp_payload_offset(void)
{
	return sizeof(struct qb_ipc_response_header) + sizeof(struct af_ipc_rsp_hdr);
}

size_t af_ipc_rsp_finish(void *buf, uint16_t op, uint32_t seq, int32_t status, size_t payload_len)
{
	struct qb_ipc_response_header qb;
	struct af_ipc_rsp_hdr h;
	size_t total = af_ipc_rsp_payload_offset() + payload_len;

	memset(&qb, 0, sizeof(qb));
	qb.id = QB_IPC_MSG_USER_START + op;
	qb.size = (int32_t)total;
	qb.error = status;
	h.magic = AF_IPC_RSP_MAGIC;
	h.version = AF_IPC_VERSION;
	h.op = op;
	h.seq = seq;
	h.status = status;
	h.payload_len = (uint32_t)payload_len;
	memcpy(buf, &qb, sizeof(qb));
	memcpy((uint8_t *)buf + sizeof(qb), &h, sizeof(h));
	return total;
}

int af_ipc_rsp_decode(const void *buf, size_t len, uint32_t seq, struct af_ipc_response *rsp,
                      char *err, size_t errlen)
{
	const uint8_t *p = buf;
	struct qb_ipc_response_header qb;
	struct af_ipc_rsp_hdr h;

	memset(rsp, 0, sizeof(*rsp));
	if (len < af_ipc_rsp_payload_offset())
		DFAIL(-EBADMSG, "response of %zu bytes is shorter than its header", len);
	if (len > AF_IPC_RSP_MAX)
		DFAIL(-EMSGSIZE, "response of %zu bytes is too large", len);
	memcpy(&qb, p, sizeof(qb));
	memcpy(&h, p + sizeof(qb), sizeof(h));
	if (h.magic != AF_IPC_RSP_MAGIC)
		DFAIL(-EBADMSG, "bad response magic 0x%08x", h.magic);
	if (qb.size < 0 || (size_t)qb.size != len ||
	    (size_t)h.payload_len != len - af_ipc_rsp_payload_offset())
		DFAIL(-EBADMSG, "response length fields do not match %zu received", len);
	if (h.seq != seq)
		DFAIL(-EBADMSG, "response for request %u, expected %u", h.seq, seq);
	if (h.status > 0)
		DFAIL(-EBADMSG, "response status %d is not 0 or -errno", h.status);
	rsp->version = h.version;
	rsp->op = h.op;
	rsp->seq = h.seq;
	rsp->status = h.status;
	rsp->payload = (const char *)p + af_ipc_rsp_payload_offset();
	rsp->payload_len = h.payload_len;
	return 0;
}
