/*
 * The NBD protocol as the engine's disk server speaks it to its QEMU (the
 * fixed-newstyle handshake, simple replies): codec only, no I/O, so that
 * every parser is unit-tested and fuzzed as it runs. The engine serves the
 * guest's disk itself to see every write in order (write-event replay).
 *
 * What it supports: options EXPORT_NAME, INFO, GO, ABORT (others are
 * answered "unsupported", which QEMU handles); commands READ, WRITE (with
 * FUA), FLUSH and DISC. Block sizes: minimum VFT_NBD_MIN_BLOCK, so every
 * write is whole sectors; a client that does not ask for block sizes is
 * refused by GO (and must send sector-aligned requests after EXPORT_NAME).
 */
#ifndef VFT_NBD_H
#define VFT_NBD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFT_NBD_MAGIC 0x4e42444d41474943ull      /* "NBDMAGIC" */
#define VFT_NBD_OPTS_MAGIC 0x49484156454f5054ull /* "IHAVEOPT" */
#define VFT_NBD_REP_MAGIC 0x0003e889045565a9ull
#define VFT_NBD_REQ_MAGIC 0x25609513u
#define VFT_NBD_REPLY_MAGIC 0x67446698u

#define VFT_NBD_GREETING_SIZE 18
#define VFT_NBD_OPT_SIZE 16
#define VFT_NBD_REP_SIZE 20
#define VFT_NBD_REQ_SIZE 28
#define VFT_NBD_REPLY_SIZE 16
#define VFT_NBD_OPT_MAX 4096 /* option data bytes we accept */
#define VFT_NBD_MIN_BLOCK 512u
#define VFT_NBD_PREF_BLOCK 4096u
#define VFT_NBD_MAX_BLOCK (1u << 20)

/* handshake flags (server) and client flags */
#define VFT_NBD_FLAG_FIXED_NEWSTYLE 1u
#define VFT_NBD_FLAG_NO_ZEROES 2u
/* options */
enum {
	VFT_NBD_OPT_EXPORT_NAME = 1,
	VFT_NBD_OPT_ABORT = 2,
	VFT_NBD_OPT_INFO = 6,
	VFT_NBD_OPT_GO = 7,
};
/* option replies */
#define VFT_NBD_REP_ACK 1u
#define VFT_NBD_REP_INFO 3u
#define VFT_NBD_REP_ERR_UNSUP 0x80000001u
#define VFT_NBD_REP_ERR_INVALID 0x80000003u
#define VFT_NBD_REP_ERR_BLOCK_SIZE_REQD 0x80000008u
#define VFT_NBD_REP_ERR_TOO_BIG 0x80000009u
#define VFT_NBD_INFO_EXPORT 0
#define VFT_NBD_INFO_BLOCK_SIZE 3
/* transmission flags */
#define VFT_NBD_TF_HAS_FLAGS 1u
#define VFT_NBD_TF_SEND_FLUSH 4u
#define VFT_NBD_TF_SEND_FUA 8u
#define VFT_NBD_TFLAGS (VFT_NBD_TF_HAS_FLAGS | VFT_NBD_TF_SEND_FLUSH | VFT_NBD_TF_SEND_FUA)
/* commands and their flags */
enum { VFT_NBD_CMD_READ = 0, VFT_NBD_CMD_WRITE, VFT_NBD_CMD_DISC, VFT_NBD_CMD_FLUSH };
#define VFT_NBD_CMD_FLAG_FUA 1u
/* errors on the wire */
#define VFT_NBD_EIO 5u
#define VFT_NBD_ENOMEM 12u
#define VFT_NBD_EINVAL 22u
#define VFT_NBD_ENOSPC 28u
#define VFT_NBD_ENOTSUP 95u

size_t vft_nbd_greeting(uint8_t out[VFT_NBD_GREETING_SIZE]);
/* The client's flags: unknown bits refused (-EBADMSG). */
int vft_nbd_client_flags(const uint8_t in[4], uint32_t *flags, char *err, size_t errlen);

struct vft_nbd_opt {
	uint32_t opt, len;
};
/* Option header: magic and len <= VFT_NBD_OPT_MAX (-EMSGSIZE: answer
 * ERR_TOO_BIG after skipping the data, or drop the client). */
int vft_nbd_opt_decode(const uint8_t in[VFT_NBD_OPT_SIZE], struct vft_nbd_opt *o, char *err,
                       size_t errlen);
size_t vft_nbd_rep_encode(uint8_t out[VFT_NBD_REP_SIZE], uint32_t opt, uint32_t type, uint32_t len);

/* INFO/GO data: u32 name length, name, u16 n, n x u16 info requests. */
struct vft_nbd_go {
	char name[256];
	bool want_block_size;
};
int vft_nbd_go_decode(const uint8_t *data, uint32_t len, struct vft_nbd_go *g, char *err,
                      size_t errlen);
size_t vft_nbd_info_export(uint8_t out[12], uint64_t size, uint16_t tflags);
size_t vft_nbd_info_block_size(uint8_t out[14]);
/* The answer to EXPORT_NAME: size, flags and 124 zeroes unless NO_ZEROES. */
size_t vft_nbd_export_name_reply(uint8_t out[134], uint64_t size, uint16_t tflags, bool no_zeroes);

struct vft_nbd_req {
	uint16_t flags, type;
	uint64_t handle, offset;
	uint32_t len;
};
/* A request header. -EBADMSG when the connection must be dropped (bad magic,
 * a WRITE larger than VFT_NBD_MAX_BLOCK: its data cannot be skipped safely);
 * otherwise 0 with *nbd_err 0 (serve it) or the error to reply (the request
 * is refused, a WRITE's data must still be read): unknown command or flag,
 * not whole sectors, beyond the disk. */
int vft_nbd_req_decode(const uint8_t in[VFT_NBD_REQ_SIZE], uint64_t disk_size,
                       struct vft_nbd_req *r, uint32_t *nbd_err, char *err, size_t errlen);
size_t vft_nbd_reply_encode(uint8_t out[VFT_NBD_REPLY_SIZE], uint32_t error, uint64_t handle);

#endif
