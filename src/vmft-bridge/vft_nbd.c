/*
 * NBD codec of the engine's disk server: see vft_nbd.h. NBD is big-endian.
 */
#include "config.h"

#include "vft_nbd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

size_t vft_nbd_greeting(uint8_t out[VFT_NBD_GREETING_SIZE])
{
	put_be64(out, VFT_NBD_MAGIC);
	put_be64(out + 8, VFT_NBD_OPTS_MAGIC);
	put_be16(out + 16, VFT_NBD_FLAG_FIXED_NEWSTYLE | VFT_NBD_FLAG_NO_ZEROES);
	return VFT_NBD_GREETING_SIZE;
}

int vft_nbd_client_flags(const uint8_t in[4], uint32_t *flags, char *err, size_t errlen)
{
	*flags = get_be32(in);
	if (*flags & ~(VFT_NBD_FLAG_FIXED_NEWSTYLE | VFT_NBD_FLAG_NO_ZEROES))
		return fail(err, errlen, "client flags 0x%x: unknown bits", *flags);
	if (!(*flags & VFT_NBD_FLAG_FIXED_NEWSTYLE))
		return fail(err, errlen, "client does not speak fixed newstyle");
	return 0;
}

int vft_nbd_opt_decode(const uint8_t in[VFT_NBD_OPT_SIZE], struct vft_nbd_opt *o, char *err,
                       size_t errlen)
{
	if (get_be64(in) != VFT_NBD_OPTS_MAGIC)
		return fail(err, errlen, "option without IHAVEOPT magic");
	o->opt = get_be32(in + 8);
	o->len = get_be32(in + 12);
	if (o->len > VFT_NBD_OPT_MAX) {
		fail(err, errlen, "option %u with %u bytes of data (at most %u)", o->opt, o->len,
		     VFT_NBD_OPT_MAX);
		return -EMSGSIZE;
	}
	return 0;
}

size_t vft_nbd_rep_encode(uint8_t out[VFT_NBD_REP_SIZE], uint32_t opt, uint32_t type, uint32_t len)
{
	put_be64(out, VFT_NBD_REP_MAGIC);
	put_be32(out + 8, opt);
	put_be32(out + 12, type);
	put_be32(out + 16, len);
	return VFT_NBD_REP_SIZE;
}

int vft_nbd_go_decode(const uint8_t *data, uint32_t len, struct vft_nbd_go *g, char *err,
                      size_t errlen)
{
	uint32_t nlen;
	uint16_t n;

	memset(g, 0, sizeof(*g));
	if (len < 6)
		return fail(err, errlen, "INFO/GO data of %u bytes", len);
	nlen = get_be32(data);
	if (nlen > len - 6 || nlen >= sizeof(g->name))
		return fail(err, errlen, "export name of %u bytes in %u", nlen, len);
	memcpy(g->name, data + 4, nlen);
	if (memchr(g->name, '\0', nlen) != NULL)
		return fail(err, errlen, "export name with a NUL byte");
	n = get_be16(data + 4 + nlen);
	if ((uint32_t)n * 2 != len - 6 - nlen)
		return fail(err, errlen, "%u info requests in %u bytes", n, len - 6 - nlen);
	for (uint16_t i = 0; i < n; i++)
		if (get_be16(data + 6 + nlen + 2 * i) == VFT_NBD_INFO_BLOCK_SIZE)
			g->want_block_size = true;
	return 0;
}

size_t vft_nbd_info_export(uint8_t out[12], uint64_t size, uint16_t tflags)
{
	put_be16(out, VFT_NBD_INFO_EXPORT);
	put_be64(out + 2, size);
	put_be16(out + 10, tflags);
	return 12;
}

size_t vft_nbd_info_block_size(uint8_t out[14])
{
	put_be16(out, VFT_NBD_INFO_BLOCK_SIZE);
	put_be32(out + 2, VFT_NBD_MIN_BLOCK);
	put_be32(out + 6, VFT_NBD_PREF_BLOCK);
	put_be32(out + 10, VFT_NBD_MAX_BLOCK);
	return 14;
}

size_t vft_nbd_export_name_reply(uint8_t out[134], uint64_t size, uint16_t tflags, bool no_zeroes)
{
	put_be64(out, size);
	put_be16(out + 8, tflags);
	if (no_zeroes)
		return 10;
	memset(out + 10, 0, 124);
	return 134;
}

int vft_nbd_req_decode(const uint8_t in[VFT_NBD_REQ_SIZE], uint64_t disk_size,
                       struct vft_nbd_req *r, uint32_t *nbd_err, char *err, size_t errlen)
{
	*nbd_err = 0;
	if (get_be32(in) != VFT_NBD_REQ_MAGIC)
		return fail(err, errlen, "request with magic 0x%08x", get_be32(in));
	r->flags = get_be16(in + 4);
	r->type = get_be16(in + 6);
	r->handle = get_be64(in + 8);
	r->offset = get_be64(in + 16);
	r->len = get_be32(in + 24);
	if (r->type == VFT_NBD_CMD_WRITE && r->len > VFT_NBD_MAX_BLOCK)
		return fail(err, errlen, "WRITE of %u bytes (at most %u)", r->len,
		            VFT_NBD_MAX_BLOCK);
	switch (r->type) {
	case VFT_NBD_CMD_READ:
	case VFT_NBD_CMD_WRITE:
		if (r->flags & ~VFT_NBD_CMD_FLAG_FUA) {
			fail(err, errlen, "command %u with flags 0x%x", r->type, r->flags);
			*nbd_err = VFT_NBD_EINVAL;
		} else if (r->len == 0 || r->len > VFT_NBD_MAX_BLOCK ||
		           r->len % VFT_NBD_MIN_BLOCK != 0 || r->offset % VFT_NBD_MIN_BLOCK != 0) {
			fail(err, errlen, "%s of %u bytes at %llu: not 1 sector..%u bytes, aligned",
			     r->type ? "WRITE" : "READ", r->len, (unsigned long long)r->offset,
			     VFT_NBD_MAX_BLOCK);
			*nbd_err = VFT_NBD_EINVAL;
		} else if (r->offset > disk_size || disk_size - r->offset < r->len) {
			fail(err, errlen, "%s of %u bytes at %llu beyond the %llu-byte disk",
			     r->type ? "WRITE" : "READ", r->len, (unsigned long long)r->offset,
			     (unsigned long long)disk_size);
			*nbd_err = r->type == VFT_NBD_CMD_WRITE ? VFT_NBD_ENOSPC : VFT_NBD_EINVAL;
		}
		return 0;
	case VFT_NBD_CMD_FLUSH:
	case VFT_NBD_CMD_DISC:
		if (r->flags != 0 || r->len != 0 || r->offset != 0) {
			fail(err, errlen, "command %u with flags, length or offset", r->type);
			*nbd_err = VFT_NBD_EINVAL;
		}
		return 0;
	default:
		fail(err, errlen, "command %u is not supported", r->type);
		*nbd_err = VFT_NBD_EINVAL;
		return 0;
	}
}

size_t vft_nbd_reply_encode(uint8_t out[VFT_NBD_REPLY_SIZE], uint32_t error, uint64_t handle)
{
	put_be32(out, VFT_NBD_REPLY_MAGIC);
	put_be32(out + 4, error);
	put_be64(out + 8, handle);
	return VFT_NBD_REPLY_SIZE;
}
