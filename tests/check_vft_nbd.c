/*
 * src/vmft-bridge/vft_nbd: the NBD codec of the engine's disk server. What
 * is refused first (magics, flags, option and request bounds), then what a
 * client like QEMU sends and the bytes it gets back.
 */
#include "config.h"

#include <stdint.h>

#include "check_util.h"
#include "vft_nbd.h"

#define DISK (1u << 20)

static void be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

static void req(uint8_t *b, uint32_t magic, uint16_t flags, uint16_t type, uint64_t off,
                uint32_t len)
{
	be32(b, magic);
	b[4] = (uint8_t)(flags >> 8);
	b[5] = (uint8_t)flags;
	b[6] = (uint8_t)(type >> 8);
	b[7] = (uint8_t)type;
	be64(b + 8, 0x1122334455667788ull);
	be64(b + 16, off);
	be32(b + 24, len);
}

START_TEST(test_handshake_refused)
{
	uint8_t b[64];
	struct vft_nbd_opt o;
	struct vft_nbd_go g;
	uint32_t flags;
	char err[160];

	be32(b, 0);
	ck_assert_int_eq(vft_nbd_client_flags(b, &flags, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "newstyle"));
	be32(b, 0x7);
	ck_assert_int_eq(vft_nbd_client_flags(b, &flags, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "unknown"));
	be64(b, 0x1234);
	ck_assert_int_eq(vft_nbd_opt_decode(b, &o, err, sizeof(err)), -EBADMSG);
	be64(b, VFT_NBD_OPTS_MAGIC);
	be32(b + 8, VFT_NBD_OPT_GO);
	be32(b + 12, VFT_NBD_OPT_MAX + 1);
	ck_assert_int_eq(vft_nbd_opt_decode(b, &o, err, sizeof(err)), -EMSGSIZE);
	/* GO data: too short, name longer than the data, NUL in the name,
	 * an odd number of info bytes */
	ck_assert_int_eq(vft_nbd_go_decode(b, 5, &g, err, sizeof(err)), -EBADMSG);
	be32(b, 10);
	b[4] = b[5] = 0;
	ck_assert_int_eq(vft_nbd_go_decode(b, 6, &g, err, sizeof(err)), -EBADMSG);
	be32(b, 2);
	memcpy(b + 4, "a\0", 2);
	b[6] = b[7] = 0;
	ck_assert_int_eq(vft_nbd_go_decode(b, 8, &g, err, sizeof(err)), -EBADMSG);
	memcpy(b + 4, "ab", 2);
	b[6] = 0;
	b[7] = 2;
	ck_assert_int_eq(vft_nbd_go_decode(b, 10, &g, err, sizeof(err)), -EBADMSG);
	be32(b, 300); /* longer than any name we keep */
	ck_assert_int_eq(vft_nbd_go_decode(b, 40, &g, err, sizeof(err)), -EBADMSG);
}
END_TEST

START_TEST(test_requests_refused)
{
	uint8_t b[VFT_NBD_REQ_SIZE];
	struct vft_nbd_req r;
	uint32_t e;
	char err[160];

	/* the connection must go */
	req(b, 0x12345678, 0, VFT_NBD_CMD_READ, 0, 512);
	ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), -EBADMSG);
	req(b, VFT_NBD_REQ_MAGIC, 0, VFT_NBD_CMD_WRITE, 0, VFT_NBD_MAX_BLOCK + 512);
	ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), -EBADMSG);
	/* the request is refused, the connection stays */
	static const struct {
		uint16_t flags, type;
		uint64_t off;
		uint32_t len, want;
	} bad[] = {
	        {0, VFT_NBD_CMD_READ, 0, 0, VFT_NBD_EINVAL},
	        {0, VFT_NBD_CMD_READ, 0, 100, VFT_NBD_EINVAL},
	        {0, VFT_NBD_CMD_READ, 100, 512, VFT_NBD_EINVAL},
	        {0, VFT_NBD_CMD_READ, 0, VFT_NBD_MAX_BLOCK + 512, VFT_NBD_EINVAL},
	        {0, VFT_NBD_CMD_READ, DISK, 512, VFT_NBD_EINVAL},
	        {0, VFT_NBD_CMD_WRITE, DISK - 512, 1024, VFT_NBD_ENOSPC},
	        {0, VFT_NBD_CMD_WRITE, UINT64_MAX - 511, 512, VFT_NBD_ENOSPC},
	        {2, VFT_NBD_CMD_WRITE, 0, 512, VFT_NBD_EINVAL},
	        {0, VFT_NBD_CMD_FLUSH, 0, 512, VFT_NBD_EINVAL},
	        {1, VFT_NBD_CMD_FLUSH, 0, 0, VFT_NBD_EINVAL},
	        {0, 4 /* TRIM */, 0, 512, VFT_NBD_EINVAL},
	        {0, 6 /* WRITE_ZEROES */, 0, 512, VFT_NBD_EINVAL},
	        {0, 0xffff, 0, 0, VFT_NBD_EINVAL},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		req(b, VFT_NBD_REQ_MAGIC, bad[i].flags, bad[i].type, bad[i].off, bad[i].len);
		err[0] = '\0';
		ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), 0);
		ck_assert_msg(e == bad[i].want, "case %zu: error %u, want %u", i, e, bad[i].want);
		ck_assert_msg(err[0] != '\0', "case %zu: no reason", i);
	}
}
END_TEST

START_TEST(test_handshake_bytes)
{
	uint8_t b[200];
	struct vft_nbd_opt o;
	struct vft_nbd_go g;
	uint32_t flags;
	char err[160];

	ck_assert_uint_eq(vft_nbd_greeting(b), VFT_NBD_GREETING_SIZE);
	ck_assert_int_eq(memcmp(b, "NBDMAGICIHAVEOPT\0\3", 18), 0);
	be32(b, VFT_NBD_FLAG_FIXED_NEWSTYLE | VFT_NBD_FLAG_NO_ZEROES);
	ck_assert_int_eq(vft_nbd_client_flags(b, &flags, err, sizeof(err)), 0);
	ck_assert_uint_eq(flags, 3);
	memcpy(b, "IHAVEOPT", 8);
	be32(b + 8, VFT_NBD_OPT_GO);
	be32(b + 12, 16);
	ck_assert_int_eq(vft_nbd_opt_decode(b, &o, err, sizeof(err)), 0);
	ck_assert_uint_eq(o.opt, VFT_NBD_OPT_GO);
	ck_assert_uint_eq(o.len, 16);
	/* what QEMU sends: name "disk", info requests NAME, BLOCK_SIZE */
	be32(b, 4);
	memcpy(b + 4, "disk", 4);
	b[8] = 0;
	b[9] = 2;
	b[10] = 0;
	b[11] = 1;
	b[12] = 0;
	b[13] = 3;
	ck_assert_int_eq(vft_nbd_go_decode(b, 14, &g, err, sizeof(err)), 0);
	ck_assert_str_eq(g.name, "disk");
	ck_assert(g.want_block_size);
	b[13] = 2;
	ck_assert_int_eq(vft_nbd_go_decode(b, 14, &g, err, sizeof(err)), 0);
	ck_assert(!g.want_block_size);
	/* replies */
	ck_assert_uint_eq(vft_nbd_rep_encode(b, 7, VFT_NBD_REP_ACK, 0), VFT_NBD_REP_SIZE);
	ck_assert_int_eq(memcmp(b, "\0\3\xe8\x89\x04\x55\x65\xa9\0\0\0\7\0\0\0\1\0\0\0\0", 20), 0);
	ck_assert_uint_eq(vft_nbd_info_export(b, DISK, VFT_NBD_TFLAGS), 12);
	ck_assert_int_eq(memcmp(b, "\0\0\0\0\0\0\0\x10\0\0\0\x0d", 12), 0);
	ck_assert_uint_eq(vft_nbd_info_block_size(b), 14);
	ck_assert_int_eq(memcmp(b, "\0\3\0\0\2\0\0\0\x10\0\0\x10\0\0", 14), 0);
	ck_assert_uint_eq(vft_nbd_export_name_reply(b, DISK, VFT_NBD_TFLAGS, true), 10);
	ck_assert_uint_eq(vft_nbd_export_name_reply(b, DISK, VFT_NBD_TFLAGS, false), 134);
	ck_assert_uint_eq(b[133], 0);
}
END_TEST

START_TEST(test_requests_served)
{
	uint8_t b[VFT_NBD_REQ_SIZE], rep[VFT_NBD_REPLY_SIZE];
	struct vft_nbd_req r;
	uint32_t e;
	char err[160];

	req(b, VFT_NBD_REQ_MAGIC, VFT_NBD_CMD_FLAG_FUA, VFT_NBD_CMD_WRITE, DISK - 4096, 4096);
	ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), 0);
	ck_assert_uint_eq(e, 0);
	ck_assert_uint_eq(r.type, VFT_NBD_CMD_WRITE);
	ck_assert_uint_eq(r.flags, VFT_NBD_CMD_FLAG_FUA);
	ck_assert_uint_eq(r.offset, DISK - 4096);
	ck_assert_uint_eq(r.len, 4096);
	ck_assert_uint_eq(r.handle, 0x1122334455667788ull);
	req(b, VFT_NBD_REQ_MAGIC, 0, VFT_NBD_CMD_READ, 0, VFT_NBD_MAX_BLOCK);
	ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), 0);
	ck_assert_uint_eq(e, 0);
	req(b, VFT_NBD_REQ_MAGIC, 0, VFT_NBD_CMD_FLUSH, 0, 0);
	ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), 0);
	ck_assert_uint_eq(e, 0);
	req(b, VFT_NBD_REQ_MAGIC, 0, VFT_NBD_CMD_DISC, 0, 0);
	ck_assert_int_eq(vft_nbd_req_decode(b, DISK, &r, &e, err, sizeof(err)), 0);
	ck_assert_uint_eq(e, 0);
	ck_assert_uint_eq(vft_nbd_reply_encode(rep, VFT_NBD_EIO, 0x0102030405060708ull),
	                  VFT_NBD_REPLY_SIZE);
	ck_assert_int_eq(memcmp(rep, "\x67\x44\x66\x98\0\0\0\5\1\2\3\4\5\6\7\x08", 16), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vft_nbd");

	add_tcase(s, test_handshake_refused, 10);
	add_tcase(s, test_requests_refused, 10);
	add_tcase(s, test_handshake_bytes, 10);
	add_tcase(s, test_requests_served, 10);
	return run_suite(s);
}
