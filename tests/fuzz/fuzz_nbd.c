/*
 * libFuzzer target: the NBD protocol as the engine's disk server reads it
 * from its QEMU (src/vmft-bridge/vft_nbd.c). The input is the client's side
 * of a whole connection, consumed in the order and with the limits of the
 * engine's server (vft_eng_disk.c: handshake, then serve_one until DISC):
 * 4 bytes of client flags, up to 32 options (16-byte header, data up to
 * VFT_NBD_OPT_MAX; EXPORT_NAME or an accepted GO starts transmission, ABORT
 * ends, INFO/GO data decoded), then 28-byte requests, a WRITE followed by
 * its data. The first 4 input bytes give the disk's size in sectors
 * (0xffffffff: the largest disk the protocol can describe), so requests
 * meet every bound. vft_nbd_go_decode and the request decoder are also run
 * on every suffix of the input, which reaches their checks whatever the
 * framing did.
 *
 * Checked: every decoder returns 0 or its documented error with a reason
 * set exactly on failure; what a decoder accepts obeys its contract (option
 * data within VFT_NBD_OPT_MAX, an export name terminated and of the length
 * sent, block sizes asked exactly when an info request 3 is there, a
 * request served only when it is whole sectors inside the disk with only
 * FUA as flag, DISC/FLUSH only without offset, length or flags, the error
 * to answer one of EINVAL/ENOSPC); the decoded request re-encodes to the
 * bytes received; every reply the server would send encodes as the
 * protocol says.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vft_nbd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void check_reason(int rc, const char *err, size_t len)
{
	expect(memchr(err, '\0', len) != NULL);
	expect(rc == 0 ? err[0] == '\0' : err[0] != '\0');
}

static void check_rep(uint32_t opt, uint32_t type, uint32_t len)
{
	uint8_t b[VFT_NBD_REP_SIZE];

	expect(vft_nbd_rep_encode(b, opt, type, len) == VFT_NBD_REP_SIZE);
	expect(be(b, 8) == VFT_NBD_REP_MAGIC && be(b + 8, 4) == opt && be(b + 12, 4) == type &&
	       be(b + 16, 4) == len);
}

/* INFO/GO data: 0 rejected, 1 accepted (with block sizes) */
static int check_go(const uint8_t *p, uint32_t len)
{
	struct vft_nbd_go g;
	char err[160] = "";
	int rc = vft_nbd_go_decode(p, len, &g, err, sizeof(err));
	bool want = false;
	uint32_t nlen;

	expect(rc == 0 || rc == -EBADMSG);
	check_reason(rc, err, sizeof(err));
	if (rc < 0)
		return 0;
	nlen = (uint32_t)be(p, 4);
	expect(len >= 6 && nlen <= len - 6 && nlen < sizeof(g.name));
	expect(strlen(g.name) == nlen && memcmp(g.name, p + 4, nlen) == 0);
	expect(be(p + 4 + nlen, 2) * 2 == len - 6 - nlen);
	for (uint32_t i = 6 + nlen; i + 2 <= len; i += 2)
		want |= be(p + i, 2) == VFT_NBD_INFO_BLOCK_SIZE;
	expect(g.want_block_size == want);
	return want ? 1 : 0;
}

/* one request header: -1 drop the client, else the bytes of data to skip
 * (a WRITE's) and *disc */
static long check_req(const uint8_t *p, uint64_t disk, bool *disc)
{
	struct vft_nbd_req r;
	uint8_t rep[VFT_NBD_REPLY_SIZE];
	uint32_t nerr = 0xdead;
	char err[160] = "";
	int rc = vft_nbd_req_decode(p, disk, &r, &nerr, err, sizeof(err));

	*disc = false;
	expect(rc == 0 || rc == -EBADMSG);
	expect(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc < 0) {
		expect(err[0] != '\0');
		expect(be(p, 4) != VFT_NBD_REQ_MAGIC ||
		       (be(p + 6, 2) == VFT_NBD_CMD_WRITE && be(p + 24, 4) > VFT_NBD_MAX_BLOCK));
		return -1;
	}
	/* what was decoded is what was sent */
	expect(be(p, 4) == VFT_NBD_REQ_MAGIC && r.flags == be(p + 4, 2) && r.type == be(p + 6, 2) &&
	       r.handle == be(p + 8, 8) && r.offset == be(p + 16, 8) && r.len == be(p + 24, 4));
	expect(nerr == 0 || nerr == VFT_NBD_EINVAL || nerr == VFT_NBD_ENOSPC);
	expect(nerr == 0 ? err[0] == '\0' : err[0] != '\0');
	if (nerr == 0) {
		switch (r.type) {
		case VFT_NBD_CMD_READ:
		case VFT_NBD_CMD_WRITE:
			expect((r.flags & ~VFT_NBD_CMD_FLAG_FUA) == 0);
			expect(r.len >= VFT_NBD_MIN_BLOCK && r.len <= VFT_NBD_MAX_BLOCK &&
			       r.len % VFT_NBD_MIN_BLOCK == 0 && r.offset % VFT_NBD_MIN_BLOCK == 0);
			expect(r.offset <= disk && r.len <= disk - r.offset);
			break;
		case VFT_NBD_CMD_FLUSH:
		case VFT_NBD_CMD_DISC:
			expect(r.flags == 0 && r.len == 0 && r.offset == 0);
			*disc = r.type == VFT_NBD_CMD_DISC;
			break;
		default:
			expect(0);
		}
	}
	expect(vft_nbd_reply_encode(rep, nerr, r.handle) == VFT_NBD_REPLY_SIZE);
	expect(be(rep, 4) == VFT_NBD_REPLY_MAGIC && be(rep + 4, 4) == nerr &&
	       be(rep + 8, 8) == r.handle);
	expect(r.type != VFT_NBD_CMD_WRITE || r.len <= VFT_NBD_MAX_BLOCK);
	return r.type == VFT_NBD_CMD_WRITE ? (long)r.len : 0;
}

/* the server's handshake: 1 transmission starts at *pos, 0 the client is gone */
static int handshake(const uint8_t *p, size_t len, size_t *pos, uint64_t disk)
{
	uint8_t g[VFT_NBD_GREETING_SIZE], b[134], info[14];
	struct vft_nbd_opt o;
	uint32_t flags = 0xdead;
	char err[160] = "";
	int rc;

	expect(vft_nbd_greeting(g) == VFT_NBD_GREETING_SIZE);
	expect(be(g, 8) == VFT_NBD_MAGIC && be(g + 8, 8) == VFT_NBD_OPTS_MAGIC &&
	       be(g + 16, 2) == (VFT_NBD_FLAG_FIXED_NEWSTYLE | VFT_NBD_FLAG_NO_ZEROES));
	if (len - *pos < 4)
		return 0;
	rc = vft_nbd_client_flags(p + *pos, &flags, err, sizeof(err));
	expect(rc == 0 || rc == -EBADMSG);
	check_reason(rc, err, sizeof(err));
	if (rc < 0)
		return 0;
	expect(flags == be(p + *pos, 4) &&
	       (flags & ~(VFT_NBD_FLAG_FIXED_NEWSTYLE | VFT_NBD_FLAG_NO_ZEROES)) == 0);
	*pos += 4;
	for (int n = 0; n < 32; n++) {
		if (len - *pos < VFT_NBD_OPT_SIZE)
			return 0;
		err[0] = '\0';
		rc = vft_nbd_opt_decode(p + *pos, &o, err, sizeof(err));
		expect(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
		check_reason(rc, err, sizeof(err));
		if (rc == -EMSGSIZE)
			expect(be(p + *pos, 8) == VFT_NBD_OPTS_MAGIC &&
			       be(p + *pos + 12, 4) > VFT_NBD_OPT_MAX);
		if (rc < 0)
			return 0;
		expect(be(p + *pos, 8) == VFT_NBD_OPTS_MAGIC && o.opt == be(p + *pos + 8, 4) &&
		       o.len == be(p + *pos + 12, 4) && o.len <= VFT_NBD_OPT_MAX);
		*pos += VFT_NBD_OPT_SIZE;
		if (len - *pos < o.len)
			return 0;
		*pos += o.len;
		switch (o.opt) {
		case VFT_NBD_OPT_EXPORT_NAME: {
			size_t n2 = vft_nbd_export_name_reply(b, disk, VFT_NBD_TFLAGS,
			                                      flags & VFT_NBD_FLAG_NO_ZEROES);

			expect(n2 == ((flags & VFT_NBD_FLAG_NO_ZEROES) ? 10u : 134u));
			expect(be(b, 8) == disk && be(b + 8, 2) == VFT_NBD_TFLAGS);
			return 1;
		}
		case VFT_NBD_OPT_ABORT:
			check_rep(o.opt, VFT_NBD_REP_ACK, 0);
			return 0;
		case VFT_NBD_OPT_INFO:
		case VFT_NBD_OPT_GO:
			if (check_go(p + *pos - o.len, o.len) == 1) {
				expect(vft_nbd_info_export(info, disk, VFT_NBD_TFLAGS) == 12);
				expect(be(info, 2) == VFT_NBD_INFO_EXPORT &&
				       be(info + 2, 8) == disk);
				expect(vft_nbd_info_block_size(info) == 14);
				expect(be(info + 2, 4) == VFT_NBD_MIN_BLOCK &&
				       be(info + 10, 4) == VFT_NBD_MAX_BLOCK);
				check_rep(o.opt, VFT_NBD_REP_ACK, 0);
				if (o.opt == VFT_NBD_OPT_GO)
					return 1;
			}
			break;
		default:
			check_rep(o.opt, VFT_NBD_REP_ERR_UNSUP, 0);
		}
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t disk;
	size_t pos = 4;
	bool disc;

	if (size < 4)
		return 0;
	disk = be(data, 4) == 0xffffffffu ? UINT64_MAX & ~(uint64_t)(VFT_NBD_MIN_BLOCK - 1)
	                                  : be(data, 4) * VFT_NBD_MIN_BLOCK;
	/* the decoders on their own, wherever they look */
	for (size_t i = 4; i < size; i++) {
		uint32_t n = (uint32_t)(size - i > VFT_NBD_OPT_MAX ? VFT_NBD_OPT_MAX : size - i);

		check_go(data + i, n);
		if (size - i >= VFT_NBD_REQ_SIZE)
			(void)check_req(data + i, disk, &disc);
	}
	/* one connection, as the server reads it */
	if (handshake(data, size, &pos, disk) != 1)
		return 0;
	while (size - pos >= VFT_NBD_REQ_SIZE) {
		long skip = check_req(data + pos, disk, &disc);

		if (skip < 0 || disc)
			return 0;
		pos += VFT_NBD_REQ_SIZE;
		if (size - pos < (size_t)skip)
			return 0;
		pos += (size_t)skip;
	}
	return 0;
}
