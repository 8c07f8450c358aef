/*
 * The IPC protocol codec (src/common/af_ipc.c). Malformed requests first:
 * the daemon decodes whatever a local user sends, so nothing may crash or
 * be half-accepted.
 */
#include "config.h"

#include "check_util.h"

#include "af_ipc.h"
#include "af_util.h"

static size_t hello(uint8_t *buf, size_t len)
{
	struct af_ipc_request req = {.op = AF_OP_HELLO, .seq = 7, .has_client = true};
	int n;

	snprintf(req.client, sizeof(req.client), "check_ipc 1.0");
	n = af_ipc_req_encode(buf, len, &req);
	ck_assert_int_gt(n, 0);
	return (size_t)n;
}

static int decode(const uint8_t *buf, size_t len)
{
	struct af_ipc_request req;
	char err[160] = "";
	int rc = af_ipc_req_decode(buf, len, &req, err, sizeof(err));

	if (rc < 0)
		ck_assert_msg(err[0] != '\0', "error %d without a message", rc);
	return rc;
}

/* Offsets inside an encoded request. */
#define QB_HDR sizeof(struct qb_ipc_request_header)
#define OFF_MAGIC (QB_HDR + offsetof(struct af_ipc_req_hdr, magic))
#define OFF_VERSION (QB_HDR + offsetof(struct af_ipc_req_hdr, version))
#define OFF_OP (QB_HDR + offsetof(struct af_ipc_req_hdr, op))
#define OFF_PLEN (QB_HDR + offsetof(struct af_ipc_req_hdr, payload_len))
#define OFF_TLV (QB_HDR + sizeof(struct af_ipc_req_hdr))

static void set32(uint8_t *p, size_t off, uint32_t v)
{
	memcpy(p + off, &v, 4);
}
static void set16(uint8_t *p, size_t off, uint16_t v)
{
	memcpy(p + off, &v, 2);
}

START_TEST(test_request_rejects)
{
	uint8_t good[AF_IPC_REQ_MAX], m[AF_IPC_REQ_MAX + 16];
	size_t n = hello(good, sizeof(good));
	struct qb_ipc_request_header qb;

	/* truncated at every length */
	for (size_t l = 0; l < n; l++)
		ck_assert_msg(decode(good, l) < 0, "accepted %zu of %zu bytes", l, n);

	memcpy(m, good, n);
	set32(m, OFF_MAGIC, 0xdeadbeef);
	ck_assert_int_eq(decode(m, n), -EBADMSG);

	memcpy(m, good, n);
	set16(m, OFF_VERSION, 0);
	ck_assert_int_eq(decode(m, n), -EPROTONOSUPPORT);
	set16(m, OFF_VERSION, AF_IPC_VERSION + 1);
	ck_assert_int_eq(decode(m, n), -EPROTONOSUPPORT);

	memcpy(m, good, n);
	set16(m, OFF_OP, 0);
	qb.id = QB_IPC_MSG_USER_START;
	qb.size = (int32_t)n;
	memcpy(m, &qb, sizeof(qb));
	ck_assert_int_eq(decode(m, n), -EOPNOTSUPP);
	set16(m, OFF_OP, AF_OP_COUNT);
	ck_assert_int_eq(decode(m, n), -EOPNOTSUPP);

	/* transport id disagrees with the operation */
	memcpy(m, good, n);
	set16(m, OFF_OP, AF_OP_STATUS);
	ck_assert_int_eq(decode(m, n), -EBADMSG);

	/* size fields that lie */
	memcpy(m, good, n);
	set32(m, OFF_PLEN, 1000);
	ck_assert_int_eq(decode(m, n), -EBADMSG);
	memcpy(m, good, n);
	qb.id = QB_IPC_MSG_USER_START + AF_OP_HELLO;
	qb.size = -1;
	memcpy(m, &qb, sizeof(qb));
	ck_assert_int_eq(decode(m, n), -EBADMSG);

	/* oversized */
	memset(m, 0, sizeof(m));
	ck_assert_int_eq(decode(m, AF_IPC_REQ_MAX + 1), -EMSGSIZE);

	/* TLV errors: unknown type, overrun, zero length, control bytes,
	 * duplicate, truncated TLV header */
	{
		static const struct {
			uint16_t type, len;
			const char *val;
			int expect;
		} tlv[] = {
		        {99, 1, "x", -EINVAL},
		        {0, 1, "x", -EINVAL},
		        {AF_ARG_CLIENT, 200, "short", -EBADMSG},
		        {AF_ARG_CLIENT, 0, "", -EINVAL},
		        {AF_ARG_CLIENT, 3, "a\nb", -EINVAL},
		        {AF_ARG_CLIENT, 3,
		         "a\x7f"
		         "b",
		         -EINVAL},
		};
		for (size_t i = 0; i < AF_ARRAY_SIZE(tlv); i++) {
			size_t l = OFF_TLV, vl = strlen(tlv[i].val);

			memcpy(m, good, OFF_TLV);
			set16(m, l, tlv[i].type);
			set16(m, l + 2, tlv[i].len);
			memcpy(m + l + 4, tlv[i].val, vl);
			l += 4 + vl;
			set32(m, OFF_PLEN, (uint32_t)(l - OFF_TLV));
			qb.id = QB_IPC_MSG_USER_START + AF_OP_HELLO;
			qb.size = (int32_t)l;
			memcpy(m, &qb, sizeof(qb));
			ck_assert_msg(decode(m, l) == tlv[i].expect, "tlv case %zu", i);
		}
		/* duplicate client argument */
		memcpy(m, good, n);
		memcpy(m + n, good + OFF_TLV, n - OFF_TLV);
		set32(m, OFF_PLEN, (uint32_t)(2 * (n - OFF_TLV)));
		qb.size = (int32_t)(n + n - OFF_TLV);
		memcpy(m, &qb, sizeof(qb));
		ck_assert_int_eq(decode(m, n + n - OFF_TLV), -EINVAL);
		/* 3 stray bytes: a truncated TLV header */
		memcpy(m, good, OFF_TLV);
		memset(m + OFF_TLV, 1, 3);
		set32(m, OFF_PLEN, 3);
		qb.size = (int32_t)(OFF_TLV + 3);
		memcpy(m, &qb, sizeof(qb));
		ck_assert_int_eq(decode(m, OFF_TLV + 3), -EBADMSG);
	}
}
END_TEST

START_TEST(test_request_roundtrip)
{
	uint8_t buf[AF_IPC_REQ_MAX];
	struct af_ipc_request req = {.op = AF_OP_RELOAD, .seq = 99}, back;
	char err[160], big[AF_IPC_ARG_MAX + 2];
	int n;

	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), 0);
	ck_assert_uint_eq(back.op, AF_OP_RELOAD);
	ck_assert_uint_eq(back.seq, 99);
	ck_assert_uint_eq(back.version, AF_IPC_VERSION);
	ck_assert(!back.has_client);

	req.has_client = true;
	snprintf(req.client, sizeof(req.client), "atca-ftctl 0.1.0");
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.client, "atca-ftctl 0.1.0");

	ck_assert_int_eq(af_ipc_req_encode(buf, 10, &req), -EMSGSIZE);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(req.client, big, sizeof(req.client) - 1);
	req.client[sizeof(req.client) - 1] = '\0';
	ck_assert_int_gt(af_ipc_req_encode(buf, sizeof(buf), &req), 0); /* 255: the limit */
	ck_assert_str_eq(af_ipc_op_name(AF_OP_CONFIG_CHECK), "config-check");
	ck_assert_str_eq(af_ipc_op_name(999), "unknown");
}
END_TEST

START_TEST(test_response)
{
	uint8_t buf[512];
	struct af_ipc_response rsp;
	const char *json = "{\"ok\":true}";
	size_t off = af_ipc_rsp_payload_offset(), total;
	char err[160];

	memcpy(buf + off, json, strlen(json));
	total = af_ipc_rsp_finish(buf, AF_OP_STATUS, 5, -EINVAL, strlen(json));
	ck_assert_int_eq(af_ipc_rsp_decode(buf, total, 5, &rsp, err, sizeof(err)), 0);
	ck_assert_int_eq(rsp.status, -EINVAL);
	ck_assert_uint_eq(rsp.payload_len, strlen(json));
	ck_assert_int_eq(memcmp(rsp.payload, json, rsp.payload_len), 0);

	ck_assert_int_eq(af_ipc_rsp_decode(buf, total, 6, &rsp, err, sizeof(err)), -EBADMSG);
	for (size_t l = 0; l < total; l++)
		ck_assert_int_lt(af_ipc_rsp_decode(buf, l, 5, &rsp, err, sizeof(err)), 0);
	total = af_ipc_rsp_finish(buf, AF_OP_STATUS, 5, 3, strlen(json));
	ck_assert_int_eq(af_ipc_rsp_decode(buf, total, 5, &rsp, err, sizeof(err)), -EBADMSG);
}
END_TEST

/* The blade and count arguments: who may carry them, what they must look
 * like, and that fence cannot go without a blade. */
START_TEST(test_hardware_arguments)
{
	uint8_t buf[AF_IPC_REQ_MAX];
	struct af_ipc_request req = {.op = AF_OP_FENCE, .seq = 3}, back;
	char err[160];
	int n;

	/* fence without a blade */
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "needs a blade"));
	/* a blade where none is accepted */
	req.op = AF_OP_BLADES;
	req.has_blade = true;
	snprintf(req.blade, sizeof(req.blade), "2");
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), -EINVAL);
	/* a count on fence */
	req.op = AF_OP_FENCE;
	req.has_count = true;
	req.count = 5;
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), -EINVAL);
	/* a count of the wrong size: rewrite the TLV length of the last argument */
	req.op = AF_OP_EVENTS;
	req.has_blade = false;
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	{
		uint16_t two = 2;
		struct qb_ipc_request_header qb;

		memcpy(buf + n - 4 - 4 + 2, &two, 2); /* count TLV: type, len, 4 bytes */
		memcpy(&qb, buf, sizeof(qb));
		qb.size -= 2;
		memcpy(buf, &qb, sizeof(qb));
		set32(buf, OFF_PLEN, (uint32_t)(n - 2 - OFF_TLV));
		ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n - 2, &back, err, sizeof(err)),
		                 -EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "count argument of 2 bytes"));
	}
	/* a blade with control characters */
	req.op = AF_OP_SENSORS;
	req.has_count = false;
	req.has_blade = true;
	snprintf(req.blade, sizeof(req.blade), "b\x01");
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), -EINVAL);

	/* and the good ones */
	req.op = AF_OP_SEL;
	snprintf(req.blade, sizeof(req.blade), "blade2");
	req.has_count = true;
	req.count = 40;
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), 0);
	ck_assert(back.has_blade && back.has_count);
	ck_assert_str_eq(back.blade, "blade2");
	ck_assert_uint_eq(back.count, 40);
	req.op = AF_OP_UNFENCE;
	req.has_count = false;
	n = af_ipc_req_encode(buf, sizeof(buf), &req);
	ck_assert_int_eq(af_ipc_req_decode(buf, (size_t)n, &back, err, sizeof(err)), 0);
	ck_assert_str_eq(af_ipc_op_name(AF_OP_UNFENCE), "unfence");
}
END_TEST

static Suite *ipc_suite(void)
{
	Suite *s = suite_create("ipc");

	add_tcase(s, test_request_rejects, 10);
	add_tcase(s, test_request_roundtrip, 10);
	add_tcase(s, test_response, 10);
	add_tcase(s, test_hardware_arguments, 10);
	return s;
}

int main(void)
{
	return run_suite(ipc_suite());
}
