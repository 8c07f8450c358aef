/*
 * src/vmft-bridge/vft_proto: the replication frames and the backup's
 * sequencing rules. What must be refused comes first (every header field,
 * the checksum, each payload's bounds, each sequencing rule), then the
 * round trips and one whole valid session. Then the link's authentication
 * (protocol v4, vft_auth.c), refusals first: a wrong key either side,
 * proofs replayed from another session or reflected, truncated and
 * malformed AUTH frames, frames before the proof, bad frame MACs (every
 * byte, replayed, reordered, reflected, untagged, from another session),
 * then an authenticated session.
 */
#include "config.h"

#include <stdint.h>

#include "check_util.h"
#include "vft_auth.h"
#include "vft_evlog.h"
#include "vft_proto.h"

#define RAM_PAGES 1024u      /* the test VM: 4 MiB */
#define DISK_SIZE (1u << 20) /* and a 1 MiB disk */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static struct vft_hello hello_msg(void)
{
	struct vft_hello m;

	memset(&m, 0, sizeof(m));
	m.session = 0x1122334455667788ull;
	m.ram_size = (uint64_t)RAM_PAGES * VFT_PAGE_SIZE;
	m.config_hash = 0xdeadbeefcafef00dull;
	m.page_size = VFT_PAGE_SIZE;
	m.flags = VFT_HELLO_TMPL;
	snprintf(m.vm, sizeof(m.vm), "db-1.prod_x");
	m.disk_size = DISK_SIZE;
	return m;
}

/* a header-only frame of `type` with `length` in its length field: the
 * header decoder must judge the length without a payload */
static void raw_hdr(uint8_t raw[VFT_HDR_SIZE], uint16_t type, uint32_t length)
{
	vft_hdr_encode(raw, type, 0, 0, NULL, 0);
	put32(raw + 8, length);
}

static int hdr_decode_len(uint16_t type, uint32_t length)
{
	uint8_t raw[VFT_HDR_SIZE];
	struct vft_hdr h;
	char err[160];

	raw_hdr(raw, type, length);
	return vft_hdr_decode(raw, &h, err, sizeof(err));
}

/* PAGES payload of n pages, pfns first, first + step, ...; page i is filled
 * with the byte i + 1. Caller frees. */
static uint8_t *pages_payload(uint32_t n, uint64_t first, uint64_t step, size_t *len)
{
	uint64_t pfns[VFT_BATCH_PAGES + 1];
	uint8_t *p;
	size_t head;

	ck_assert_uint_le(n, VFT_BATCH_PAGES + 1);
	for (uint32_t i = 0; i < n; i++)
		pfns[i] = first + i * step;
	*len = vft_pages_size(n);
	p = malloc(*len);
	ck_assert_ptr_nonnull(p);
	head = vft_pages_encode_head(p, n, pfns);
	ck_assert_uint_eq(head, 8 + 8 * (size_t)n);
	for (uint32_t i = 0; i < n; i++)
		memset(p + head + (size_t)i * VFT_PAGE_SIZE, (int)(i + 1), VFT_PAGE_SIZE);
	return p;
}

/* ---- the primary side of a connection, for the sequencer tests ---- */

struct peer {
	struct vft_rx rx;
	uint32_t seq;
	struct vft_rx_frame out;
	char err[256];
};

static void peer_init(struct peer *p)
{
	memset(p, 0, sizeof(*p));
	vft_rx_init(&p->rx);
}

/* Encodes a frame as the primary would, checks it passes the header and
 * checksum layers, and feeds it to the sequencer. */
static int send_frame(struct peer *p, uint16_t type, uint64_t epoch, const void *payload,
                      uint32_t len)
{
	uint8_t raw[VFT_HDR_SIZE];
	struct vft_hdr h;

	vft_hdr_encode(raw, type, p->seq++, epoch, payload, len);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, p->err, sizeof(p->err)), 0);
	ck_assert_int_eq(vft_frame_verify(raw, &h, payload), 0);
	p->err[0] = '\0';
	return vft_rx_step(&p->rx, &h, payload, &p->out, p->err, sizeof(p->err));
}

static int send_hello(struct peer *p)
{
	struct vft_hello m = hello_msg();
	uint8_t b[VFT_HELLO_SIZE];

	return send_frame(p, VFT_F_HELLO, 0, b, (uint32_t)vft_hello_encode(b, &m));
}

static int send_begin(struct peer *p, uint64_t epoch, uint32_t kind)
{
	struct vft_epoch_begin m = {.kind = kind};
	uint8_t b[VFT_EPOCH_BEGIN_SIZE];

	return send_frame(p, VFT_F_EPOCH_BEGIN, epoch, b, (uint32_t)vft_epoch_begin_encode(b, &m));
}

/* the payload stays valid after the call: out.pages points into it */
static int send_pages(struct peer *p, uint64_t epoch, uint32_t n, uint64_t first)
{
	static uint8_t wire[VFT_MAX_PAYLOAD];
	size_t len;
	uint8_t *b = pages_payload(n, first, 1, &len);

	memcpy(wire, b, len);
	free(b);
	return send_frame(p, VFT_F_PAGES, epoch, wire, (uint32_t)len);
}

/* likewise for out.dev */
static int send_dev(struct peer *p, uint64_t epoch, uint32_t len)
{
	static uint8_t dev[512];

	ck_assert_uint_le(len, sizeof(dev));
	memset(dev, 0x5a, len);
	return send_frame(p, VFT_F_DEVSTATE, epoch, dev, len);
}

static int send_end(struct peer *p, uint64_t epoch, uint64_t pages, uint64_t dev, uint32_t frames)
{
	struct vft_epoch_end m = {.n_pages = pages, .devstate_len = dev, .n_frames = frames};
	uint8_t b[VFT_EPOCH_END_SIZE];

	return send_frame(p, VFT_F_EPOCH_END, epoch, b, (uint32_t)vft_epoch_end_encode(b, &m));
}

/* HELLO then epoch 1 (FULL) with 2 pages and 16 device-state bytes, closed */
static void first_epoch(struct peer *p)
{
	ck_assert_int_eq(send_hello(p), 0);
	ck_assert_int_eq(send_begin(p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_pages(p, 1, 2, 0), 0);
	ck_assert_int_eq(send_dev(p, 1, 16), 0);
	ck_assert_int_eq(send_end(p, 1, 2, 16, 2), 0);
}

static void assert_err(const struct peer *p, const char *what)
{
	ck_assert_msg(strstr(p->err, what) != NULL, "reason \"%s\" lacks \"%s\"", p->err, what);
}

/* ---- headers ---- */

START_TEST(test_hdr_bad_magic)
{
	uint8_t raw[VFT_HDR_SIZE];
	struct vft_hdr h;
	char err[160];

	for (int i = 0; i < 4; i++) {
		vft_hdr_encode(raw, VFT_F_PING, 0, 0, NULL, 0);
		raw[i] ^= 0x20;
		ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "magic"));
	}
	/* the magic is "VFT1" as bytes, not as a host integer */
	vft_hdr_encode(raw, VFT_F_PING, 0, 0, NULL, 0);
	ck_assert_int_eq(memcmp(raw, "VFT1", 4), 0);
}
END_TEST

START_TEST(test_hdr_bad_version)
{
	static const uint16_t bad[] = {0, 1, 2, 3, 5, 0x0100, 0x0400, 0xffff};
	uint8_t raw[VFT_HDR_SIZE];
	struct vft_hdr h;
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vft_hdr_encode(raw, VFT_F_PING, 0, 0, NULL, 0);
		put16(raw + 4, bad[i]);
		ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), -EPROTONOSUPPORT);
		ck_assert_ptr_nonnull(strstr(err, "version"));
	}
}
END_TEST

START_TEST(test_hdr_bad_type)
{
	static const uint16_t bad[] = {0, VFT_F_COUNT, VFT_F_COUNT + 1, 0x0100, 0xffff};
	uint8_t raw[VFT_HDR_SIZE];
	struct vft_hdr h;
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		vft_hdr_encode(raw, VFT_F_PING, 0, 0, NULL, 0);
		put16(raw + 6, bad[i]);
		ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "type"));
	}
}
END_TEST

START_TEST(test_hdr_fixed_lengths)
{
	static const struct {
		uint16_t type;
		uint32_t len;
	} fixed[] = {
	        {VFT_F_HELLO, VFT_HELLO_SIZE},
	        {VFT_F_WELCOME, VFT_WELCOME_SIZE},
	        {VFT_F_EPOCH_BEGIN, VFT_EPOCH_BEGIN_SIZE},
	        {VFT_F_EPOCH_END, VFT_EPOCH_END_SIZE},
	        {VFT_F_ACK, VFT_ACK_SIZE},
	        {VFT_F_PING, 0},
	        {VFT_F_BYE, VFT_BYE_SIZE},
	        {VFT_F_AUTH, VFT_AUTH_SIZE},
	};

	ck_assert_uint_eq(VFT_HELLO_SIZE, 136);
	ck_assert_uint_eq(VFT_AUTH_SIZE, 64);
	ck_assert_uint_eq(VFT_HDR_SIZE, 48);
	ck_assert_uint_eq(VFT_EPOCH_BEGIN_SIZE, 16);
	ck_assert_uint_eq(VFT_WELCOME_SIZE, 48);
	ck_assert_uint_eq(VFT_EPOCH_END_SIZE, 40);
	ck_assert_uint_eq(VFT_ACK_SIZE, 8);
	ck_assert_uint_eq(VFT_BYE_SIZE, 4);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		uint16_t t = fixed[i].type;
		uint32_t n = fixed[i].len;

		ck_assert_int_eq(hdr_decode_len(t, n), 0);
		ck_assert_int_eq(hdr_decode_len(t, n + 1), -EBADMSG);
		ck_assert_int_eq(hdr_decode_len(t, UINT32_MAX), -EBADMSG);
		if (n > 0) {
			ck_assert_int_eq(hdr_decode_len(t, n - 1), -EBADMSG);
			ck_assert_int_eq(hdr_decode_len(t, 0), -EBADMSG);
		}
	}
}
END_TEST

START_TEST(test_hdr_pages_lengths)
{
	ck_assert_uint_eq(vft_pages_size(1), 8 + 8 + 4096);
	ck_assert_uint_eq(vft_pages_size(VFT_BATCH_PAGES), VFT_MAX_PAYLOAD);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, 0), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, 8), -EBADMSG); /* count 0 */
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, (uint32_t)vft_pages_size(1) - 1), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, (uint32_t)vft_pages_size(1) + 1), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, (uint32_t)vft_pages_size(2) - 1), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, VFT_MAX_PAYLOAD + 1), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, (uint32_t)vft_pages_size(257)), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, UINT32_MAX), -EBADMSG);
	for (uint32_t n = 1; n <= VFT_BATCH_PAGES; n++)
		ck_assert_int_eq(hdr_decode_len(VFT_F_PAGES, (uint32_t)vft_pages_size(n)), 0);
}
END_TEST

START_TEST(test_hdr_devstate_lengths)
{
	ck_assert_int_eq(hdr_decode_len(VFT_F_DEVSTATE, 0), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DEVSTATE, 1), 0);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DEVSTATE, VFT_DEVSTATE_CHUNK), 0);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DEVSTATE, VFT_DEVSTATE_CHUNK + 1), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DEVSTATE, UINT32_MAX), -EBADMSG);
}
END_TEST

/* err may be NULL or empty; a short one gets a truncated reason */
START_TEST(test_err_buffer_optional)
{
	uint8_t raw[VFT_HDR_SIZE], b[VFT_HELLO_SIZE];
	struct vft_hdr h;
	struct vft_hello m;
	char err[4] = "xyz";

	raw_hdr(raw, VFT_F_BYE, 5);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, NULL, 0), -EBADMSG);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, 0), -EBADMSG);
	ck_assert_str_eq(err, "xyz");
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), -EBADMSG);
	ck_assert_uint_eq(strlen(err), 3);
	memset(b, 0, sizeof(b));
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &m, NULL, 0), -EBADMSG);
	ck_assert_int_eq(vft_pages_decode(b, 8, 1, &(struct vft_pages){0}, NULL, 0), -EBADMSG);
	ck_assert_int_eq(vft_bye_decode(b, 3, &(uint32_t){0}, NULL, 0), -EBADMSG);
}
END_TEST

/* ---- checksums ---- */

START_TEST(test_checksum_every_byte_and_bit)
{
	uint8_t frame[VFT_HDR_SIZE + VFT_BYE_SIZE], copy[sizeof(frame)];
	struct vft_hdr h;
	char err[160];

	vft_hdr_encode(frame, VFT_F_BYE, 7, 0, (const uint8_t[]){1, 2, 3, 4}, 4);
	memcpy(frame + VFT_HDR_SIZE, (const uint8_t[]){1, 2, 3, 4}, 4);
	ck_assert_int_eq(vft_hdr_decode(frame, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_frame_verify(frame, &h, frame + VFT_HDR_SIZE), 0);
	for (size_t i = 0; i < sizeof(frame); i++) {
		for (int bit = -1; bit < 8; bit++) {
			int rc;

			memcpy(copy, frame, sizeof(copy));
			copy[i] ^= bit < 0 ? 0xff : (uint8_t)(1u << bit);
			rc = vft_hdr_decode(copy, &h, err, sizeof(err));
			if (rc == 0)
				rc = vft_frame_verify(copy, &h, copy + VFT_HDR_SIZE);
			if (i == 4 || i == 5) /* the version field */
				ck_assert_int_eq(rc, -EPROTONOSUPPORT);
			else if (i >= VFT_TAG_OFF && i < VFT_TAG_OFF + VFT_TAG_SIZE)
				/* the tag: the MAC layer's (test_mac_every_byte_and_bit) */
				ck_assert_int_eq(rc, 0);
			else
				ck_assert_msg(rc == -EBADMSG, "byte %zu bit %d: %d", i, bit, rc);
		}
	}
}
END_TEST

/* a frame cut short and re-labelled with the shorter length, or two frames
 * spliced, fail the checksum */
START_TEST(test_checksum_truncation_and_splice)
{
	uint8_t raw[VFT_HDR_SIZE], raw2[VFT_HDR_SIZE], dev[64];
	struct vft_hdr h;
	char err[160];

	memset(dev, 0xa5, sizeof(dev));
	vft_hdr_encode(raw, VFT_F_DEVSTATE, 3, 9, dev, sizeof(dev));
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_frame_verify(raw, &h, dev), 0);
	put32(raw + 8, sizeof(dev) - 1);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_frame_verify(raw, &h, dev), -EBADMSG);
	/* the header of one frame with the payload of another */
	vft_hdr_encode(raw, VFT_F_DEVSTATE, 3, 9, dev, sizeof(dev));
	dev[10] = 0;
	vft_hdr_encode(raw2, VFT_F_DEVSTATE, 3, 9, dev, sizeof(dev));
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_frame_verify(raw, &h, dev), -EBADMSG);
	ck_assert_int_eq(vft_hdr_decode(raw2, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_frame_verify(raw2, &h, dev), 0);
	/* no payload where one is declared */
	ck_assert_int_eq(vft_frame_verify(raw2, &h, NULL), -EBADMSG);
}
END_TEST

/* ---- payloads ---- */

START_TEST(test_payload_bad_lengths)
{
	uint8_t b[128];
	char err[160];
	struct vft_hello hello;
	struct vft_welcome welcome;
	struct vft_epoch_begin begin;
	struct vft_epoch_end end;
	struct vft_ack ack;
	uint32_t reason;

	memset(b, 0, sizeof(b));
	for (int d = -1; d <= 1; d += 2) {
		ck_assert_int_eq(vft_hello_decode(b, VFT_HELLO_SIZE + d, &hello, err, sizeof(err)),
		                 -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "HELLO"));
		ck_assert_int_eq(
		        vft_welcome_decode(b, VFT_WELCOME_SIZE + d, &welcome, err, sizeof(err)),
		        -EBADMSG);
		ck_assert_int_eq(vft_epoch_begin_decode(b, VFT_EPOCH_BEGIN_SIZE + d, &begin, err,
		                                        sizeof(err)),
		                 -EBADMSG);
		ck_assert_int_eq(
		        vft_epoch_end_decode(b, VFT_EPOCH_END_SIZE + d, &end, err, sizeof(err)),
		        -EBADMSG);
		ck_assert_int_eq(vft_ack_decode(b, VFT_ACK_SIZE + d, &ack, err, sizeof(err)),
		                 -EBADMSG);
		ck_assert_int_eq(vft_bye_decode(b, VFT_BYE_SIZE + d, &reason, err, sizeof(err)),
		                 -EBADMSG);
	}
}
END_TEST

START_TEST(test_pages_bad_count_and_length)
{
	struct vft_pages m;
	char err[160];
	size_t len;
	uint8_t *p = pages_payload(2, 0, 1, &len);

	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES, &m, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_pages_decode(p, 7, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(vft_pages_decode(p, len - 1, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(vft_pages_decode(p, len + 1, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	put32(p, 1); /* count says 1, the length is of 2 */
	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	put32(p, 0);
	ck_assert_int_eq(vft_pages_decode(p, 8, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "count 0"));
	free(p);
	p = pages_payload(257, 0, 1, &len);
	ck_assert_int_eq(vft_pages_decode(p, len, 100000, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "count 257"));
	free(p);
	p = pages_payload(256, 0, 1, &len);
	ck_assert_int_eq(vft_pages_decode(p, len, 256, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.count, 256);
	free(p);
}
END_TEST

START_TEST(test_pages_bad_pfns)
{
	struct vft_pages m;
	char err[160];
	size_t len;
	uint8_t *p;

	p = pages_payload(3, 5, 0, &len); /* 5, 5, 5 */
	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "does not follow"));
	free(p);
	p = pages_payload(3, 10, (uint64_t)-1, &len); /* 10, 9, 8 */
	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	free(p);
	p = pages_payload(2, RAM_PAGES - 2, 1, &len); /* the last two pages: fine */
	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES, &m, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES - 1, &m, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "beyond"));
	free(p);
	p = pages_payload(1, UINT64_MAX, 1, &len);
	ck_assert_int_eq(vft_pages_decode(p, len, RAM_PAGES, &m, err, sizeof(err)), -EBADMSG);
	free(p);
	p = pages_payload(1, 0, 1, &len); /* a VM without pages has no valid pfn */
	ck_assert_int_eq(vft_pages_decode(p, len, 0, &m, err, sizeof(err)), -EBADMSG);
	free(p);
}
END_TEST

START_TEST(test_hello_bad_page_and_ram_size)
{
	static const uint32_t pages[] = {0, 512, 2048, 4095, 4097, 8192, 65536, UINT32_MAX};
	static const uint64_t rams[] = {
	        0, 4095, 4097, 6144, (1ull << 40) + 4096, UINT64_MAX, UINT64_MAX - 4095};
	struct vft_hello m = hello_msg(), back;
	uint8_t b[VFT_HELLO_SIZE];
	char err[160];

	for (size_t i = 0; i < sizeof(pages) / sizeof(pages[0]); i++) {
		m = hello_msg();
		m.page_size = pages[i];
		vft_hello_encode(b, &m);
		ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "page size"));
	}
	for (size_t i = 0; i < sizeof(rams) / sizeof(rams[0]); i++) {
		m = hello_msg();
		m.ram_size = rams[i];
		vft_hello_encode(b, &m);
		ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "RAM size"));
	}
	m = hello_msg();
	m.ram_size = 1ull << 40;
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), 0);
	m.ram_size = 4096;
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_hello_bad_name)
{
	static const char *const bad[] = {"", "a b", "a/b", "vm:1", "é", "x\t", "a*", "$HOME"};
	struct vft_hello m = hello_msg(), back;
	uint8_t b[VFT_HELLO_SIZE];
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(m.vm, sizeof(m.vm), "%s", bad[i]);
		vft_hello_encode(b, &m);
		ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "name"));
	}
	/* 64 name bytes without a NUL: the encoder never writes that */
	vft_hello_encode(b, &m);
	memset(b + 32, 'a', VFT_VM_NAME_MAX);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "NUL"));
	/* 63 characters is the longest name */
	b[32 + VFT_VM_NAME_MAX - 1] = '\0';
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(back.vm), VFT_VM_NAME_MAX - 1);
	/* the encoder truncates a longer one so that the NUL is on the wire */
	memset(m.vm, 'z', sizeof(m.vm));
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(back.vm), VFT_VM_NAME_MAX - 1);
}
END_TEST

START_TEST(test_epoch_begin_bad_kind)
{
	static const uint32_t bad[] = {2, 3, 0x100, 0x80000000u, UINT32_MAX};
	struct vft_epoch_begin m, back;
	uint8_t b[VFT_EPOCH_BEGIN_SIZE];
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		m.kind = bad[i];
		vft_epoch_begin_encode(b, &m);
		ck_assert_int_eq(vft_epoch_begin_decode(b, sizeof(b), &back, err, sizeof(err)),
		                 -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "kind"));
	}
}
END_TEST

/* template fields that contradict each other are refused as garbage */
START_TEST(test_template_fields_refused)
{
	static const struct vft_epoch_begin bad_begin[] = {
	        {.kind = VFT_EPOCH_INCR, .flags = VFT_BEGIN_TMPL_RAM, .tmpl_id = 1},
	        {.kind = VFT_EPOCH_FULL, .flags = VFT_BEGIN_TMPL_DISK, .tmpl_id = 1},
	        {.kind = VFT_EPOCH_FULL, .flags = VFT_BEGIN_TMPL_RAM, .tmpl_id = 0},
	        {.kind = VFT_EPOCH_FULL, .flags = 0, .tmpl_id = 5},
	        {.kind = VFT_EPOCH_FULL, .flags = 4 | VFT_BEGIN_TMPL_RAM, .tmpl_id = 5},
	};
	static const struct vft_welcome bad_welcome[] = {
	        {.tmpl_id = 1, .tmpl_pages = 0},
	        {.tmpl_id = 0, .tmpl_pages = 10},
	        {.tmpl_id = 1, .tmpl_pages = 0, .tmpl_blocks = 3},
	        {.tmpl_id = 1, .tmpl_pages = UINT64_MAX},
	        {.tmpl_id = 1, .tmpl_pages = 1, .tmpl_blocks = UINT64_MAX},
	};
	uint8_t b[64], t[16 + 8 * 3];
	struct vft_epoch_begin bb;
	struct vft_welcome wb;
	struct vft_tmpl_frame tf;
	char err[160];

	for (size_t i = 0; i < sizeof(bad_begin) / sizeof(bad_begin[0]); i++) {
		vft_epoch_begin_encode(b, &bad_begin[i]);
		ck_assert_int_eq(
		        vft_epoch_begin_decode(b, VFT_EPOCH_BEGIN_SIZE, &bb, err, sizeof(err)),
		        -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "template"));
	}
	for (size_t i = 0; i < sizeof(bad_welcome) / sizeof(bad_welcome[0]); i++) {
		vft_welcome_encode(b, &bad_welcome[i]);
		ck_assert_int_eq(vft_welcome_decode(b, VFT_WELCOME_SIZE, &wb, err, sizeof(err)),
		                 -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "template"));
	}
	/* TMPL: kind, count against length, first index */
	memset(t, 0, sizeof(t));
	vft_tmpl_encode_head(t, 2, 3, 0);
	ck_assert_int_eq(vft_tmpl_decode(t, sizeof(t), &tf, err, sizeof(err)), -EBADMSG);
	vft_tmpl_encode_head(t, VFT_TMPL_BLOCKS, 4, 0);
	ck_assert_int_eq(vft_tmpl_decode(t, sizeof(t), &tf, err, sizeof(err)), -EBADMSG);
	vft_tmpl_encode_head(t, VFT_TMPL_BLOCKS, 0, 0);
	ck_assert_int_eq(vft_tmpl_decode(t, 16, &tf, err, sizeof(err)), -EBADMSG);
	vft_tmpl_encode_head(t, VFT_TMPL_PAGES, 3, UINT64_MAX);
	ck_assert_int_eq(vft_tmpl_decode(t, sizeof(t), &tf, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(vft_tmpl_decode(t, 8, &tf, err, sizeof(err)), -EBADMSG);
	vft_tmpl_encode_head(t, VFT_TMPL_PAGES, 3, 7);
	ck_assert_int_eq(vft_tmpl_decode(t, sizeof(t), &tf, err, sizeof(err)), 0);
	ck_assert_uint_eq(tf.count, 3);
	ck_assert_uint_eq(tf.first, 7);
	ck_assert_ptr_eq(tf.hashes, t + 16);
	ck_assert_int_eq(hdr_decode_len(VFT_F_TMPL, 16 + 8), 0);
	ck_assert_int_eq(hdr_decode_len(VFT_F_TMPL, 16 + 8 * VFT_TMPL_BATCH), 0);
	ck_assert_int_eq(hdr_decode_len(VFT_F_TMPL, 16), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_TMPL, 16 + 8 * VFT_TMPL_BATCH + 8), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_TMPL, 16 + 12), -EBADMSG);
}
END_TEST

/* the backup's rules: an epoch is built on the template the backup offered
 * on this connection, or on none */
START_TEST(test_rx_template_rules)
{
	struct vft_epoch_begin m = {
	        .kind = VFT_EPOCH_FULL, .flags = VFT_BEGIN_TMPL_RAM, .tmpl_id = 42};
	uint8_t b[VFT_EPOCH_BEGIN_SIZE + 24];
	struct peer p;

	/* nothing offered */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(
	        send_frame(&p, VFT_F_EPOCH_BEGIN, 1, b, (uint32_t)vft_epoch_begin_encode(b, &m)),
	        -EBADMSG);
	assert_err(&p, "template");
	/* another template */
	peer_init(&p);
	p.rx.tmpl_id = 41;
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(
	        send_frame(&p, VFT_F_EPOCH_BEGIN, 1, b, (uint32_t)vft_epoch_begin_encode(b, &m)),
	        -EBADMSG);
	/* its disk base was not offered */
	peer_init(&p);
	p.rx.tmpl_id = 42;
	m.flags |= VFT_BEGIN_TMPL_DISK;
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(
	        send_frame(&p, VFT_F_EPOCH_BEGIN, 1, b, (uint32_t)vft_epoch_begin_encode(b, &m)),
	        -EBADMSG);
	/* offered: accepted, RAM only and RAM + disk */
	for (int disk = 0; disk <= 1; disk++) {
		peer_init(&p);
		p.rx.tmpl_id = 42;
		p.rx.tmpl_blocks = true;
		m.flags = VFT_BEGIN_TMPL_RAM | (disk ? VFT_BEGIN_TMPL_DISK : 0);
		ck_assert_int_eq(send_hello(&p), 0);
		ck_assert_int_eq(send_frame(&p, VFT_F_EPOCH_BEGIN, 1, b,
		                            (uint32_t)vft_epoch_begin_encode(b, &m)),
		                 0);
		ck_assert_uint_eq(p.out.begin.flags, m.flags);
		ck_assert_uint_eq(p.out.begin.tmpl_id, 42);
	}
	/* TMPL never goes to the backup */
	vft_tmpl_encode_head(b, VFT_TMPL_PAGES, 1, 0);
	memset(b + 16, 0, 8);
	ck_assert_int_eq(send_frame(&p, VFT_F_TMPL, 0, b, 24), -EBADMSG);
	assert_err(&p, "TMPL");
}
END_TEST

START_TEST(test_ftype_names)
{
	ck_assert_str_eq(vft_ftype_name(VFT_F_HELLO), "HELLO");
	ck_assert_str_eq(vft_ftype_name(VFT_F_WELCOME), "WELCOME");
	ck_assert_str_eq(vft_ftype_name(VFT_F_EPOCH_BEGIN), "EPOCH_BEGIN");
	ck_assert_str_eq(vft_ftype_name(VFT_F_PAGES), "PAGES");
	ck_assert_str_eq(vft_ftype_name(VFT_F_DEVSTATE), "DEVSTATE");
	ck_assert_str_eq(vft_ftype_name(VFT_F_EPOCH_END), "EPOCH_END");
	ck_assert_str_eq(vft_ftype_name(VFT_F_ACK), "ACK");
	ck_assert_str_eq(vft_ftype_name(VFT_F_PING), "PING");
	ck_assert_str_eq(vft_ftype_name(VFT_F_BYE), "BYE");
	ck_assert_str_eq(vft_ftype_name(VFT_F_TMPL), "TMPL");
	ck_assert_str_eq(vft_ftype_name(0), "?");
	ck_assert_str_eq(vft_ftype_name(VFT_F_COUNT), "?");
	ck_assert_str_eq(vft_ftype_name(UINT32_MAX), "?");
}
END_TEST

/* ---- the sequencer: violations ---- */

START_TEST(test_rx_wrong_seq)
{
	struct peer p;

	peer_init(&p);
	p.seq = 1;
	ck_assert_int_eq(send_hello(&p), -EBADMSG);
	assert_err(&p, "seq 1, expected 0");
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	p.seq++; /* a frame lost */
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), -EBADMSG);
	assert_err(&p, "expected 1");
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	p.seq--; /* a frame repeated */
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), -EBADMSG);
}
END_TEST

START_TEST(test_rx_frames_before_hello)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), -EBADMSG);
	assert_err(&p, "before HELLO");
	peer_init(&p);
	ck_assert_int_eq(send_pages(&p, 1, 1, 0), -EBADMSG);
	assert_err(&p, "before HELLO");
	peer_init(&p);
	ck_assert_int_eq(send_dev(&p, 1, 8), -EBADMSG);
	peer_init(&p);
	ck_assert_int_eq(send_end(&p, 1, 0, 0, 0), -EBADMSG);
	/* a heartbeat or a goodbye may come first */
	peer_init(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_NONE);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_HELLO);
	peer_init(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_BYE, 0, (const uint8_t[]){2, 0, 0, 0}, 4), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_BYE);
	ck_assert_uint_eq(p.out.bye_reason, 2);
}
END_TEST

START_TEST(test_rx_second_hello)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_hello(&p), -EBADMSG);
	assert_err(&p, "second HELLO");
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_hello(&p), -EBADMSG);
}
END_TEST

START_TEST(test_rx_bad_hello_payload)
{
	struct vft_hello m = hello_msg();
	uint8_t b[VFT_HELLO_SIZE];
	struct peer p;

	peer_init(&p);
	m.page_size = 8192;
	vft_hello_encode(b, &m);
	ck_assert_int_eq(send_frame(&p, VFT_F_HELLO, 0, b, sizeof(b)), -EBADMSG);
	assert_err(&p, "page size");
	peer_init(&p);
	m = hello_msg();
	m.vm[0] = '\0';
	vft_hello_encode(b, &m);
	ck_assert_int_eq(send_frame(&p, VFT_F_HELLO, 0, b, sizeof(b)), -EBADMSG);
	assert_err(&p, "empty");
}
END_TEST

START_TEST(test_rx_epoch_zero_frames)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 5, NULL, 0), -EBADMSG);
	assert_err(&p, "epoch 5");
	peer_init(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_BYE, 1, (const uint8_t[]){0, 0, 0, 0}, 4), -EBADMSG);
	peer_init(&p);
	{
		struct vft_hello m = hello_msg();
		uint8_t b[VFT_HELLO_SIZE];

		vft_hello_encode(b, &m);
		ck_assert_int_eq(send_frame(&p, VFT_F_HELLO, 1, b, sizeof(b)), -EBADMSG);
	}
	/* inside an open epoch too */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 1, NULL, 0), -EBADMSG);
}
END_TEST

START_TEST(test_rx_first_epoch_not_full)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_INCR), -EBADMSG);
	assert_err(&p, "incremental");
	/* a new connection resumes nothing incrementally, whatever the number */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 77, VFT_EPOCH_INCR), -EBADMSG);
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 0, VFT_EPOCH_FULL), -EBADMSG);
	assert_err(&p, "epoch number 0");
}
END_TEST

START_TEST(test_rx_full_later)
{
	struct peer p;

	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_FULL), -EBADMSG);
	assert_err(&p, "full epoch 2");
}
END_TEST

START_TEST(test_rx_epoch_gap)
{
	static const uint64_t bad[] = {3, 1, 0, 100, UINT64_MAX};
	struct peer p;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		peer_init(&p);
		first_epoch(&p);
		ck_assert_int_eq(send_begin(&p, bad[i], VFT_EPOCH_INCR), -EBADMSG);
		assert_err(&p, "expected 2");
	}
}
END_TEST

START_TEST(test_rx_begin_while_open)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), -EBADMSG);
	assert_err(&p, "is open");
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), -EBADMSG);
}
END_TEST

START_TEST(test_rx_outside_epoch)
{
	struct peer p;

	/* after HELLO, before any epoch */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_pages(&p, 1, 1, 0), -EBADMSG);
	assert_err(&p, "outside an epoch");
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_dev(&p, 1, 4), -EBADMSG);
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_end(&p, 1, 0, 4, 1), -EBADMSG);
	/* after an epoch closed */
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_pages(&p, 1, 1, 0), -EBADMSG);
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_dev(&p, 1, 4), -EBADMSG);
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_end(&p, 1, 2, 16, 2), -EBADMSG);
}
END_TEST

START_TEST(test_rx_wrong_epoch)
{
	struct peer p;

	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_pages(&p, 1, 1, 0), -EBADMSG);
	assert_err(&p, "while epoch 2 is open");
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_dev(&p, 3, 4), -EBADMSG);
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_dev(&p, 2, 4), 0);
	ck_assert_int_eq(send_end(&p, 0, 0, 4, 1), -EBADMSG);
}
END_TEST

START_TEST(test_rx_pages_beyond_ram)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_uint_eq(p.rx.max_pfn, RAM_PAGES);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_pages(&p, 1, 2, RAM_PAGES - 2), 0);
	ck_assert_int_eq(send_pages(&p, 1, 2, RAM_PAGES - 1), -EBADMSG);
	assert_err(&p, "beyond");
}
END_TEST

START_TEST(test_rx_end_totals_mismatch)
{
	static const int64_t delta[][3] = {{1, 0, 0},  {-1, 0, 0}, {0, 1, 0},
	                                   {0, -1, 0}, {0, 0, 1},  {0, 0, -1}};
	struct peer p;

	for (size_t i = 0; i < sizeof(delta) / sizeof(delta[0]); i++) {
		peer_init(&p);
		ck_assert_int_eq(send_hello(&p), 0);
		ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
		ck_assert_int_eq(send_pages(&p, 1, 3, 0), 0);
		ck_assert_int_eq(send_pages(&p, 1, 1, 10), 0);
		ck_assert_int_eq(send_dev(&p, 1, 100), 0);
		ck_assert_int_eq(send_dev(&p, 1, 20), 0);
		ck_assert_int_eq(send_end(&p, 1, (uint64_t)(4 + delta[i][0]),
		                          (uint64_t)(120 + delta[i][1]),
		                          (uint32_t)(4 + delta[i][2])),
		                 -EBADMSG);
		assert_err(&p, "received 4, 120, 0, 0 in 4");
	}
}
END_TEST

START_TEST(test_rx_missing_devstate)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_pages(&p, 1, 1, 0), 0);
	ck_assert_int_eq(send_end(&p, 1, 1, 0, 1), -EBADMSG);
	assert_err(&p, "no device state");
	/* an incremental epoch carries the device state as well */
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_pages(&p, 2, 1, 0), 0);
	ck_assert_int_eq(send_end(&p, 2, 1, 0, 1), -EBADMSG);
	assert_err(&p, "no device state");
	/* an empty epoch is no exception */
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_end(&p, 2, 0, 0, 0), -EBADMSG);
}
END_TEST

START_TEST(test_rx_backup_frames_from_primary)
{
	struct vft_welcome w = {.committed_epoch = 4, .committed_session = 9};
	struct vft_ack a = {.commit_us = 100};
	uint8_t b[VFT_WELCOME_SIZE];
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_WELCOME, 0, b, (uint32_t)vft_welcome_encode(b, &w)),
	                 -EBADMSG);
	assert_err(&p, "WELCOME");
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_frame(&p, VFT_F_WELCOME, 0, b, (uint32_t)vft_welcome_encode(b, &w)),
	                 -EBADMSG);
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_ACK, 1, b, (uint32_t)vft_ack_encode(b, &a)),
	                 -EBADMSG);
	assert_err(&p, "ACK");
}
END_TEST

/* the sequencer does not trust that its caller ran the header checks: a
 * header it is handed directly is judged again */
START_TEST(test_rx_rechecks_headers)
{
	static const uint8_t kind2[VFT_EPOCH_BEGIN_SIZE] = {2};
	static const uint8_t zeros[VFT_EPOCH_END_SIZE];
	struct vft_rx_frame out;
	struct vft_hdr h;
	struct peer p;
	char err[160];

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	memset(&h, 0, sizeof(h));
	h.version = VFT_PROTO_VERSION;
	h.seq = p.seq;
	for (uint16_t t = 0; t <= VFT_F_COUNT; t += VFT_F_COUNT) {
		h.type = t;
		ck_assert_int_eq(vft_rx_step(&p.rx, &h, zeros, &out, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "unknown frame type"));
		h.seq++;
	}
	h.type = VFT_F_PING;
	h.length = 3;
	ck_assert_int_eq(vft_rx_step(&p.rx, &h, zeros, &out, err, sizeof(err)), -EBADMSG);
	h.seq++;
	h.type = VFT_F_BYE;
	ck_assert_int_eq(vft_rx_step(&p.rx, &h, zeros, &out, err, sizeof(err)), -EBADMSG);
	h.seq++;
	h.type = VFT_F_DEVSTATE;
	h.epoch = 1;
	h.length = 0;
	ck_assert_int_eq(vft_rx_step(&p.rx, &h, zeros, &out, err, sizeof(err)), -EBADMSG);
	h.seq++;
	h.type = VFT_F_EPOCH_END;
	h.length = VFT_EPOCH_END_SIZE - 1;
	ck_assert_int_eq(vft_rx_step(&p.rx, &h, zeros, &out, err, sizeof(err)), -EBADMSG);
	h.seq++;
	/* an epoch cannot count more frames than its counter holds */
	p.rx.n_frames = UINT32_MAX;
	h.type = VFT_F_DEVSTATE;
	h.length = 1;
	ck_assert_int_eq(vft_rx_step(&p.rx, &h, zeros, &out, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "too many frames"));
	/* and a header that passes carries a payload that may not */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_frame(&p, VFT_F_EPOCH_BEGIN, 1, kind2, sizeof(kind2)), -EBADMSG);
	assert_err(&p, "kind 2");
}
END_TEST

/* ---- round trips ---- */

START_TEST(test_hdr_round_trip)
{
	static const uint8_t a[] = {1, 2, 3}, b[] = {4, 5, 6, 7, 8};
	static const uint8_t all[] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct iovec iov[3] = {{(void *)a, sizeof(a)}, {NULL, 0}, {(void *)b, sizeof(b)}};
	uint8_t raw[VFT_HDR_SIZE], raw2[VFT_HDR_SIZE];
	struct vft_hdr h;
	char err[160];

	vft_hdr_encodev(raw, VFT_F_DEVSTATE, 0xa1b2c3d4u, 0x0102030405060708ull, iov, 3);
	vft_hdr_encode(raw2, VFT_F_DEVSTATE, 0xa1b2c3d4u, 0x0102030405060708ull, all, sizeof(all));
	ck_assert_int_eq(memcmp(raw, raw2, sizeof(raw)), 0);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), 0);
	ck_assert_uint_eq(h.version, VFT_PROTO_VERSION);
	ck_assert_uint_eq(h.type, VFT_F_DEVSTATE);
	ck_assert_uint_eq(h.length, sizeof(all));
	ck_assert_uint_eq(h.seq, 0xa1b2c3d4u);
	ck_assert_uint_eq(h.epoch, 0x0102030405060708ull);
	ck_assert_uint_eq(h.check, get64(raw + 24));
	ck_assert_int_eq(vft_frame_verify(raw, &h, all), 0);
	/* little-endian on the wire */
	ck_assert_int_eq(memcmp(raw + 4, (const uint8_t[]){4, 0, 5, 0, 8, 0, 0, 0}, 8), 0);
	ck_assert_int_eq(memcmp(raw + 12, (const uint8_t[]){0xd4, 0xc3, 0xb2, 0xa1}, 4), 0);
	ck_assert_int_eq(memcmp(raw + 16, (const uint8_t[]){8, 7, 6, 5, 4, 3, 2, 1}, 8), 0);
	/* an empty payload: no iovec, or an iovec of nothing */
	vft_hdr_encodev(raw, VFT_F_PING, 1, 0, NULL, 0);
	vft_hdr_encodev(raw2, VFT_F_PING, 1, 0, iov + 1, 1);
	ck_assert_int_eq(memcmp(raw, raw2, sizeof(raw)), 0);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), 0);
	ck_assert_int_eq(vft_frame_verify(raw, &h, NULL), 0);
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_payload_round_trips)
{
	struct vft_hello hm = hello_msg(), hb;
	struct vft_welcome wm = {.committed_epoch = UINT64_MAX - 1,
	                         .committed_session = 0x8000000000000001ull,
	                         .flags = 0xfeedu,
	                         .reserved = 77,
	                         .tmpl_id = 0x1122334455667788ull,
	                         .tmpl_pages = 262144,
	                         .tmpl_blocks = 16384},
	                   wb;
	struct vft_epoch_begin bm = {.kind = VFT_EPOCH_FULL}, bb;
	struct vft_epoch_end em = {.n_pages = 1ull << 33,
	                           .devstate_len = 123456789012ull,
	                           .n_frames = 0xffffffffu,
	                           .reserved = 9},
	                     eb;
	struct vft_ack am = {.commit_us = 0x0102030405060708ull}, ab;
	uint8_t b[VFT_HELLO_SIZE];
	uint32_t reason;
	char err[160];

	ck_assert_uint_eq(vft_hello_encode(b, &hm), VFT_HELLO_SIZE);
	ck_assert_uint_eq(get64(b), hm.session);
	ck_assert_uint_eq(get64(b + 8), hm.ram_size);
	ck_assert_uint_eq(get64(b + 16), hm.config_hash);
	ck_assert_int_eq(memcmp(b + 24, (const uint8_t[]){0, 0x10, 0, 0, 1, 0, 0, 0}, 8), 0);
	ck_assert_str_eq((const char *)b + 32, "db-1.prod_x");
	for (size_t i = 32 + strlen(hm.vm); i < 96; i++)
		ck_assert_uint_eq(b[i], 0); /* NUL-padded */
	ck_assert_int_eq(vft_hello_decode(b, VFT_HELLO_SIZE, &hb, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&hb, &hm, sizeof(hm)), 0);

	ck_assert_uint_eq(vft_welcome_encode(b, &wm), VFT_WELCOME_SIZE);
	ck_assert_int_eq(memcmp(b + 16, (const uint8_t[]){0xed, 0xfe, 0, 0, 0, 0, 0, 0}, 8), 0);
	ck_assert_int_eq(vft_welcome_decode(b, VFT_WELCOME_SIZE, &wb, err, sizeof(err)), 0);
	ck_assert_uint_eq(wb.committed_epoch, wm.committed_epoch);
	ck_assert_uint_eq(wb.committed_session, wm.committed_session);
	ck_assert_uint_eq(wb.flags, wm.flags);
	ck_assert_uint_eq(wb.reserved, 0);
	ck_assert_uint_eq(wb.tmpl_id, wm.tmpl_id);
	ck_assert_uint_eq(wb.tmpl_pages, wm.tmpl_pages);
	ck_assert_uint_eq(wb.tmpl_blocks, wm.tmpl_blocks);
	ck_assert_int_eq(memcmp(b + 24, (const uint8_t[]){0x88, 0x77, 0x66, 0x55}, 4), 0);

	for (uint32_t k = VFT_EPOCH_INCR; k <= VFT_EPOCH_FULL; k++) {
		bm.kind = k;
		ck_assert_uint_eq(vft_epoch_begin_encode(b, &bm), VFT_EPOCH_BEGIN_SIZE);
		ck_assert_int_eq(memcmp(b,
		                        (const uint8_t[]){(uint8_t)k, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		                                          0, 0, 0, 0, 0},
		                        16),
		                 0);
		ck_assert_int_eq(
		        vft_epoch_begin_decode(b, VFT_EPOCH_BEGIN_SIZE, &bb, err, sizeof(err)), 0);
		ck_assert_uint_eq(bb.kind, k);
	}
	bm.kind = VFT_EPOCH_FULL;
	bm.flags = VFT_BEGIN_TMPL_RAM | VFT_BEGIN_TMPL_DISK;
	bm.tmpl_id = 0xa0a1a2a3a4a5a6a7ull;
	vft_epoch_begin_encode(b, &bm);
	ck_assert_int_eq(memcmp(b + 4, (const uint8_t[]){3, 0, 0, 0, 0xa7, 0xa6}, 6), 0);
	ck_assert_int_eq(vft_epoch_begin_decode(b, VFT_EPOCH_BEGIN_SIZE, &bb, err, sizeof(err)), 0);
	ck_assert_uint_eq(bb.flags, bm.flags);
	ck_assert_uint_eq(bb.tmpl_id, bm.tmpl_id);

	ck_assert_uint_eq(vft_epoch_end_encode(b, &em), VFT_EPOCH_END_SIZE);
	ck_assert_int_eq(memcmp(b + 16, (const uint8_t[]){0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, 8),
	                 0);
	ck_assert_int_eq(vft_epoch_end_decode(b, VFT_EPOCH_END_SIZE, &eb, err, sizeof(err)), 0);
	ck_assert_uint_eq(eb.n_pages, em.n_pages);
	ck_assert_uint_eq(eb.devstate_len, em.devstate_len);
	ck_assert_uint_eq(eb.n_frames, em.n_frames);

	ck_assert_uint_eq(vft_ack_encode(b, &am), VFT_ACK_SIZE);
	ck_assert_int_eq(memcmp(b, (const uint8_t[]){8, 7, 6, 5, 4, 3, 2, 1}, 8), 0);
	ck_assert_int_eq(vft_ack_decode(b, VFT_ACK_SIZE, &ab, err, sizeof(err)), 0);
	ck_assert_uint_eq(ab.commit_us, am.commit_us);

	ck_assert_uint_eq(vft_bye_encode(b, 0xc0ffee01u), VFT_BYE_SIZE);
	ck_assert_int_eq(memcmp(b, (const uint8_t[]){1, 0xee, 0xff, 0xc0}, 4), 0);
	ck_assert_int_eq(vft_bye_decode(b, VFT_BYE_SIZE, &reason, err, sizeof(err)), 0);
	ck_assert_uint_eq(reason, 0xc0ffee01u);
}
END_TEST

/* the page data goes as its own iovec, read back in place, at any alignment */
START_TEST(test_pages_round_trip)
{
	static const uint64_t pfns[3] = {0, 7, RAM_PAGES - 1};
	uint8_t head[8 + 8 * 3], raw[VFT_HDR_SIZE];
	uint8_t *data = malloc(3 * VFT_PAGE_SIZE), *wire = malloc(vft_pages_size(3) + 1);
	struct iovec iov[2];
	struct vft_pages m;
	struct vft_hdr h;
	char err[160];

	ck_assert_ptr_nonnull(data);
	ck_assert_ptr_nonnull(wire);
	for (size_t i = 0; i < 3 * VFT_PAGE_SIZE; i++)
		data[i] = (uint8_t)(i * 7 + i / VFT_PAGE_SIZE);
	ck_assert_uint_eq(vft_pages_encode_head(head, 3, pfns), sizeof(head));
	ck_assert_int_eq(memcmp(head, (const uint8_t[]){3, 0, 0, 0, 0, 0, 0, 0}, 8), 0);
	iov[0] = (struct iovec){head, sizeof(head)};
	iov[1] = (struct iovec){data, 3 * VFT_PAGE_SIZE};
	vft_hdr_encodev(raw, VFT_F_PAGES, 4, 2, iov, 2);
	ck_assert_int_eq(vft_hdr_decode(raw, &h, err, sizeof(err)), 0);
	ck_assert_uint_eq(h.length, vft_pages_size(3));
	/* odd address: the decoder must not need alignment */
	memcpy(wire + 1, head, sizeof(head));
	memcpy(wire + 1 + sizeof(head), data, 3 * VFT_PAGE_SIZE);
	ck_assert_int_eq(vft_frame_verify(raw, &h, wire + 1), 0);
	ck_assert_int_eq(vft_pages_decode(wire + 1, h.length, RAM_PAGES, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.count, 3);
	for (uint32_t i = 0; i < 3; i++)
		ck_assert_uint_eq(vft_pages_pfn(&m, i), pfns[i]);
	ck_assert_ptr_eq(m.data, wire + 1 + sizeof(head));
	ck_assert_int_eq(memcmp(m.data, data, 3 * VFT_PAGE_SIZE), 0);
	free(wire);
	free(data);
}
END_TEST

/* ---- the sequencer: a whole valid session ---- */

/* ---- the event log ---- */

/* one record into buf at *len */
static void put_event(uint8_t *buf, size_t *len, uint64_t seq, uint16_t kind, uint16_t flags,
                      uint32_t dlen, uint64_t arg)
{
	struct vft_event ev = {
	        .seq = seq, .kind = kind, .flags = flags, .len = dlen, .arg = arg, .t_ns = 7};

	vft_event_encode_head(buf + *len, &ev);
	memset(buf + *len + VFT_EV_HDR, 0xc5, dlen);
	*len += VFT_EV_HDR + dlen;
}

static size_t events_payload(uint8_t *buf, uint32_t count)
{
	memset(buf, 0, 8);
	put32(buf, count);
	return 8;
}

static int decode_events(const uint8_t *buf, size_t len, uint64_t first, char *err)
{
	uint32_t n;
	uint64_t next;

	err[0] = '\0';
	return vft_events_decode(buf, len, DISK_SIZE, first, &n, &next, err, 256);
}

START_TEST(test_events_refused)
{
	static uint8_t b[VFT_MAX_PAYLOAD];
	static const struct {
		uint16_t kind, flags;
		uint32_t len;
		uint64_t arg;
		const char *why;
	} bad[] = {
	        {0, 0, 0, 0, "unknown kind"},
	        {VFT_EV_COUNT, 0, 0, 0, "unknown kind"},
	        {VFT_EV_DISK_WRITE, 0, 0, 0, "whole sectors"},
	        {VFT_EV_DISK_WRITE, 0, 100, 0, "whole sectors"},
	        {VFT_EV_DISK_WRITE, 0, 512, 100, "whole sectors"},
	        {VFT_EV_DISK_WRITE, 0, 1024, DISK_SIZE - 512, "whole sectors"},
	        {VFT_EV_DISK_WRITE, 0, 512, UINT64_MAX - 511, "whole sectors"},
	        {VFT_EV_DISK_WRITE, 0, VFT_EV_DATA_MAX + 512, 0, "whole sectors"},
	        {VFT_EV_DISK_WRITE, 2, 512, 0, "unknown flags"},
	        {VFT_EV_DISK_FLUSH, 0, 512, 0, "with data"},
	        {VFT_EV_DISK_FLUSH, 1, 0, 0, "with data"},
	        {VFT_EV_NET_IN, 0, 13, 0, "14.."},
	        {VFT_EV_NET_IN, 0, 64, 1, "argument"},
	        {VFT_EV_SERIAL_IN, 0, 0, 0, "1.."},
	        {VFT_EV_SERIAL_IN, 0, VFT_EV_SERIAL_MAX + 1, 0, "1.."},
	};
	char err[256];
	size_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		len = events_payload(b, 1);
		put_event(b, &len, 1, bad[i].kind, bad[i].flags,
		          bad[i].len > VFT_MAX_PAYLOAD - 100 ? 0 : bad[i].len, bad[i].arg);
		if (bad[i].len > VFT_MAX_PAYLOAD - 100) /* announce more than is there */
			put32(b + 8 + 12, bad[i].len);
		ck_assert_int_eq(decode_events(b, len, 0, err), -EBADMSG);
		ck_assert_msg(strstr(err, bad[i].why) || strstr(err, "left in the frame"),
		              "case %zu: reason \"%s\" lacks \"%s\"", i, err, bad[i].why);
	}
	/* framing: no record, truncated header, data beyond the frame, bytes
	 * after the last record, seq 0, a gap, a repeat, the wrong first seq */
	len = events_payload(b, 0);
	put_event(b, &len, 1, VFT_EV_DISK_FLUSH, 0, 0, 0);
	ck_assert_int_eq(decode_events(b, len, 0, err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "no record"));
	len = events_payload(b, 2);
	put_event(b, &len, 1, VFT_EV_DISK_FLUSH, 0, 0, 0);
	memset(b + len, 0, 16);
	ck_assert_int_eq(decode_events(b, len + 16, 0, err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "truncated"));
	len = events_payload(b, 1);
	put_event(b, &len, 1, VFT_EV_SERIAL_IN, 0, 10, 0);
	ck_assert_int_eq(decode_events(b, len - 1, 0, err), -EBADMSG);
	ck_assert_int_eq(decode_events(b, len + 1, 0, err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "after record"));
	len = events_payload(b, 1);
	put_event(b, &len, 0, VFT_EV_DISK_FLUSH, 0, 0, 0);
	ck_assert_int_eq(decode_events(b, len, 0, err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "reserved"));
	len = events_payload(b, 2);
	put_event(b, &len, 4, VFT_EV_DISK_FLUSH, 0, 0, 0);
	put_event(b, &len, 6, VFT_EV_DISK_FLUSH, 0, 0, 0);
	ck_assert_int_eq(decode_events(b, len, 0, err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "due"));
	len = events_payload(b, 2);
	put_event(b, &len, 4, VFT_EV_DISK_FLUSH, 0, 0, 0);
	put_event(b, &len, 4, VFT_EV_DISK_FLUSH, 0, 0, 0);
	ck_assert_int_eq(decode_events(b, len, 0, err), -EBADMSG);
	len = events_payload(b, 1);
	put_event(b, &len, 4, VFT_EV_DISK_FLUSH, 0, 0, 0);
	ck_assert_int_eq(decode_events(b, len, 5, err), -EBADMSG);
	ck_assert_int_eq(decode_events(b, len, 4, err), 0);
	/* a flush needs a disk to flush */
	{
		uint32_t n;
		uint64_t next;

		ck_assert_int_eq(vft_events_decode(b, len, 0, 0, &n, &next, err, sizeof(err)),
		                 -EBADMSG);
	}
}
END_TEST

START_TEST(test_disk_refused)
{
	static uint8_t b[8 + VFT_DISK_CHUNK + 512];
	struct vft_disk d;
	char err[160];

	memset(b, 0, sizeof(b));
	ck_assert_int_eq(vft_disk_decode(b, 8, DISK_SIZE, &d, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(vft_disk_decode(b, 8 + 100, DISK_SIZE, &d, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(vft_disk_decode(b, sizeof(b), 1ull << 30, &d, err, sizeof(err)), -EBADMSG);
	put32(b, 100); /* unaligned offset */
	ck_assert_int_eq(vft_disk_decode(b, 8 + 512, DISK_SIZE, &d, err, sizeof(err)), -EBADMSG);
	put32(b, DISK_SIZE - 512); /* one sector too far */
	ck_assert_int_eq(vft_disk_decode(b, 8 + 1024, DISK_SIZE, &d, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(vft_disk_decode(b, 8 + 512, DISK_SIZE, &d, err, sizeof(err)), 0);
	ck_assert_uint_eq(d.offset, DISK_SIZE - 512);
	ck_assert_uint_eq(d.len, 512);
	memset(b, 0xff, 8); /* offset beyond anything */
	ck_assert_int_eq(vft_disk_decode(b, 8 + 512, DISK_SIZE, &d, err, sizeof(err)), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DISK, 8 + 100), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DISK, 8 + VFT_DISK_CHUNK + 512), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_DISK, 8 + 512), 0);
	ck_assert_int_eq(hdr_decode_len(VFT_F_EVENTS, 8 + VFT_EV_HDR - 1), -EBADMSG);
	ck_assert_int_eq(hdr_decode_len(VFT_F_EVENTS, VFT_MAX_PAYLOAD + 1), -EBADMSG);
}
END_TEST

START_TEST(test_hello_bad_disk_size)
{
	struct vft_hello m = hello_msg(), back;
	uint8_t b[VFT_HELLO_SIZE];
	char err[160];

	m.disk_size = 1000;
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "disk size"));
	m.disk_size = VFT_DISK_MAX + 512;
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), -EBADMSG);
	m.disk_size = 0; /* no disk is a valid HELLO; the engine refuses it */
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), 0);
	m.disk_size = VFT_DISK_MAX;
	vft_hello_encode(b, &m);
	ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)), 0);
	ck_assert_uint_eq(back.disk_size, VFT_DISK_MAX);
}
END_TEST

static int send_disk(struct peer *p, uint64_t epoch, uint64_t off, uint32_t len)
{
	static uint8_t b[8 + VFT_DISK_CHUNK];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(off >> (8 * i));
	memset(b + 8, 0x3c, len);
	return send_frame(p, VFT_F_DISK, epoch, b, 8 + len);
}

/* one EVENTS frame of n disk writes (512 bytes at 0, 512, ...) from seq */
static int send_events(struct peer *p, uint64_t epoch, uint64_t seq, uint32_t n)
{
	static uint8_t b[VFT_MAX_PAYLOAD];
	size_t len = events_payload(b, n);

	for (uint32_t i = 0; i < n; i++)
		put_event(b, &len, seq + i, VFT_EV_DISK_WRITE, 0, 512, 512ull * i);
	return send_frame(p, VFT_F_EVENTS, epoch, b, (uint32_t)len);
}

static int send_end_ev(struct peer *p, uint64_t epoch, uint64_t pages, uint64_t dev,
                       uint32_t frames, uint64_t events, uint64_t disk)
{
	struct vft_epoch_end m = {.n_pages = pages,
	                          .devstate_len = dev,
	                          .n_frames = frames,
	                          .n_events = events,
	                          .disk_bytes = disk};
	uint8_t b[VFT_EPOCH_END_SIZE];

	return send_frame(p, VFT_F_EPOCH_END, epoch, b, (uint32_t)vft_epoch_end_encode(b, &m));
}

START_TEST(test_rx_disk_and_events_rules)
{
	struct peer p;

	/* DISK in an incremental epoch */
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_disk(&p, 2, 0, 512), -EBADMSG);
	assert_err(&p, "DISK in incremental");
	/* DISK beyond the disk the HELLO announced */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_disk(&p, 1, DISK_SIZE, 512), -EBADMSG);
	/* DISK after EVENTS, PAGES after EVENTS */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_events(&p, 1, 1, 2), 0);
	ck_assert_int_eq(send_disk(&p, 1, 0, 512), -EBADMSG);
	assert_err(&p, "DISK after EVENTS");
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_events(&p, 1, 1, 2), 0);
	ck_assert_int_eq(send_pages(&p, 1, 1, 0), -EBADMSG);
	assert_err(&p, "PAGES after EVENTS");
	/* events outside an epoch */
	peer_init(&p);
	first_epoch(&p);
	ck_assert_int_eq(send_events(&p, 1, 1, 1), -EBADMSG);
	/* seqs continue across epochs: a gap, a restart */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_events(&p, 1, 1, 3), 0);
	ck_assert_int_eq(send_dev(&p, 1, 16), 0);
	ck_assert_int_eq(send_end_ev(&p, 1, 0, 16, 2, 3, 0), 0);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_events(&p, 2, 5, 1), -EBADMSG);
	assert_err(&p, "event 5 where 4 was due");
	/* the end's event and disk totals are checked */
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_disk(&p, 1, 0, 1024), 0);
	ck_assert_int_eq(send_events(&p, 1, 1, 3), 0);
	ck_assert_int_eq(send_dev(&p, 1, 16), 0);
	ck_assert_int_eq(send_end_ev(&p, 1, 0, 16, 3, 2, 1024), -EBADMSG);
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_disk(&p, 1, 0, 1024), 0);
	ck_assert_int_eq(send_dev(&p, 1, 16), 0);
	ck_assert_int_eq(send_end_ev(&p, 1, 0, 16, 2, 0, 512), -EBADMSG);
}
END_TEST

START_TEST(test_rx_session_with_disk)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_uint_eq(p.rx.hello.disk_size, DISK_SIZE);
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_pages(&p, 1, 4, 0), 0);
	ck_assert_int_eq(send_disk(&p, 1, 0, VFT_DISK_CHUNK), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_DISK);
	ck_assert_uint_eq(p.out.disk.len, VFT_DISK_CHUNK);
	ck_assert_uint_eq(p.out.disk.data[0], 0x3c);
	ck_assert_int_eq(send_pages(&p, 1, 4, 4), 0); /* pages and disk interleave */
	ck_assert_int_eq(send_events(&p, 1, 1, 2), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_EVENTS);
	ck_assert_uint_eq(p.out.n_events, 2);
	ck_assert_uint_eq(p.out.events_len, 8 + 2 * (VFT_EV_HDR + 512));
	ck_assert_int_eq(send_events(&p, 1, 3, 1), 0);
	ck_assert_int_eq(send_dev(&p, 1, 16), 0);
	ck_assert_int_eq(send_end_ev(&p, 1, 8, 16, 6, 3, VFT_DISK_CHUNK), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_END);
	ck_assert_uint_eq(p.out.end.n_events, 3);
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_pages(&p, 2, 1, 9), 0);
	ck_assert_int_eq(send_events(&p, 2, 4, 5), 0);
	ck_assert_int_eq(send_dev(&p, 2, 16), 0);
	ck_assert_int_eq(send_end_ev(&p, 2, 1, 16, 3, 5, 0), 0);
	ck_assert_uint_eq(p.rx.next_ev_seq, 9);
}
END_TEST

/* the primary's log: records of every kind in order, a long write split,
 * nothing kept while off, and batches cut into frames that decode back */
START_TEST(test_evlog_batches)
{
	static uint8_t data[VFT_EV_DATA_MAX * 2 + 1024];
	struct vft_evlog l;
	struct vft_evbatch b;
	uint8_t head[8];
	size_t pos = 0, start, n, seen = 0;
	uint64_t want = 1;

	memset(data, 0x77, sizeof(data));
	vft_evlog_init(&l);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_DISK_WRITE, 0, 0, data, 512, 1.0), 0);
	ck_assert_uint_eq(vft_evlog_held(&l), 0); /* off */
	vft_evlog_start(&l, 1.0);
	ck_assert(vft_evlog_on(&l));
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_DISK_WRITE, 0, 100, data, 512, 1.0), -EINVAL);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_DISK_WRITE, 0, 0, data, 100, 1.0), -EINVAL);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_DISK_FLUSH, 0, 0, data, 512, 1.0), -EINVAL);
	ck_assert_int_eq(vft_evlog_add(&l, 99, 0, 0, NULL, 0, 1.0), -EINVAL);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_NET_IN, 0, 0, data, 10, 1.0), -EINVAL);
	ck_assert_int_eq(
	        vft_evlog_add(&l, VFT_EV_DISK_WRITE, VFT_EVF_FUA, 4096, data, sizeof(data), 1.5),
	        0);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_DISK_FLUSH, 0, 0, NULL, 0, 1.6), 0);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_NET_IN, 0, 0, data, 60, 1.7), 0);
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_SERIAL_IN, 0, 0, data, 3, 1.8), 0);
	vft_evlog_take(&l, &b);
	ck_assert_uint_eq(b.count, 6); /* the write became three records */
	ck_assert_uint_eq(b.first_seq, 1);
	ck_assert_uint_eq(l.counts[VFT_EV_DISK_WRITE], 3);
	ck_assert_uint_eq(l.disk_bytes, sizeof(data));
	while ((n = vft_evbatch_next(&b, &pos, VFT_MAX_PAYLOAD, head, &start)) > 0) {
		static uint8_t frame[VFT_MAX_PAYLOAD];
		struct vft_event ev;
		size_t p = 8;
		uint32_t cnt;
		uint64_t next;
		char err[160];

		ck_assert_uint_le(8 + n, VFT_MAX_PAYLOAD);
		memcpy(frame, head, 8);
		memcpy(frame + 8, b.buf + start, n);
		ck_assert_int_eq(vft_events_decode(frame, 8 + n, 1ull << 30, want, &cnt, &next, err,
		                                   sizeof(err)),
		                 0);
		while (vft_events_next(frame, 8 + n, &p, &ev) == 1) {
			ck_assert_uint_eq(ev.seq, want);
			if (ev.seq == 1) {
				ck_assert_uint_eq(ev.kind, VFT_EV_DISK_WRITE);
				ck_assert_uint_eq(ev.flags, VFT_EVF_FUA);
				ck_assert_uint_eq(ev.arg, 4096);
				ck_assert_uint_eq(ev.len, VFT_EV_DATA_MAX);
				ck_assert_uint_eq(ev.t_ns, 500000000ull);
			}
			if (ev.seq == 3) {
				ck_assert_uint_eq(ev.arg, 4096 + 2ull * VFT_EV_DATA_MAX);
				ck_assert_uint_eq(ev.len, 1024);
			}
			want++;
			seen++;
		}
		ck_assert_uint_eq(next, want);
	}
	ck_assert_uint_eq(seen, 6);
	free(b.buf);
	/* the next epoch continues the seqs; stop drops everything */
	ck_assert_int_eq(vft_evlog_add(&l, VFT_EV_SERIAL_IN, 0, 0, data, 3, 2.0), 0);
	vft_evlog_take(&l, &b);
	ck_assert_uint_eq(b.first_seq, 7);
	free(b.buf);
	vft_evlog_take(&l, &b);
	ck_assert_uint_eq(b.count, 0);
	ck_assert_ptr_null(b.buf);
	vft_evlog_stop(&l);
	ck_assert(!vft_evlog_on(&l));
	vft_evlog_fini(&l);
}
END_TEST

START_TEST(test_rx_full_session)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_NONE);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_HELLO);
	ck_assert(p.rx.hello_seen);
	ck_assert_str_eq(p.rx.hello.vm, "db-1.prod_x");
	ck_assert_uint_eq(p.rx.hello.session, 0x1122334455667788ull);

	/* epoch 1: full, all the RAM in 4 batches, device state in 2 chunks */
	ck_assert_int_eq(send_begin(&p, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_BEGIN);
	ck_assert_uint_eq(p.out.begin.kind, VFT_EPOCH_FULL);
	ck_assert(p.rx.open);
	for (uint32_t i = 0; i < RAM_PAGES; i += VFT_BATCH_PAGES) {
		ck_assert_int_eq(send_pages(&p, 1, VFT_BATCH_PAGES, i), 0);
		ck_assert_int_eq(p.out.action, VFT_RX_PAGES);
		ck_assert_uint_eq(p.out.pages.count, VFT_BATCH_PAGES);
		ck_assert_uint_eq(vft_pages_pfn(&p.out.pages, 0), i);
		ck_assert_uint_eq(p.out.pages.data[VFT_PAGE_SIZE * 5], 6);
	}
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), 0); /* heartbeat mid-epoch */
	ck_assert_int_eq(send_dev(&p, 1, 300), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_DEVSTATE);
	ck_assert_uint_eq(p.out.dev_len, 300);
	ck_assert_uint_eq(p.out.dev[299], 0x5a);
	ck_assert_int_eq(send_dev(&p, 1, 1), 0);
	ck_assert_int_eq(send_end(&p, 1, RAM_PAGES, 301, 6), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_END);
	ck_assert_uint_eq(p.out.end.n_pages, RAM_PAGES);
	ck_assert(!p.rx.open);

	/* epoch 2: incremental, a few pages */
	ck_assert_int_eq(send_begin(&p, 2, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_BEGIN);
	ck_assert_uint_eq(p.out.begin.kind, VFT_EPOCH_INCR);
	ck_assert_int_eq(send_pages(&p, 2, 5, 100), 0);
	ck_assert_int_eq(send_dev(&p, 2, 64), 0);
	ck_assert_int_eq(send_end(&p, 2, 5, 64, 2), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_END);

	/* epoch 3: the guest was idle, device state only */
	ck_assert_int_eq(send_begin(&p, 3, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_dev(&p, 3, 64), 0);
	ck_assert_int_eq(send_end(&p, 3, 0, 64, 1), 0);
	ck_assert_uint_eq(p.rx.last_epoch, 3);

	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), 0);
	ck_assert_int_eq(p.out.action, VFT_RX_NONE);
	{
		uint8_t b[VFT_BYE_SIZE];

		ck_assert_int_eq(send_frame(&p, VFT_F_BYE, 0, b, (uint32_t)vft_bye_encode(b, 42)),
		                 0);
	}
	ck_assert_int_eq(p.out.action, VFT_RX_BYE);
	ck_assert_uint_eq(p.out.bye_reason, 42);
	ck_assert_uint_eq(p.rx.next_seq, p.seq);
}
END_TEST

/* a new primary session counts epochs from its own start */
START_TEST(test_rx_first_epoch_any_number)
{
	struct peer p;

	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_begin(&p, 5000, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_dev(&p, 5000, 8), 0);
	ck_assert_int_eq(send_end(&p, 5000, 0, 8, 1), 0);
	ck_assert_int_eq(send_begin(&p, 5001, VFT_EPOCH_INCR), 0);
	ck_assert_int_eq(send_dev(&p, 5001, 8), 0);
	ck_assert_int_eq(send_end(&p, 5001, 0, 8, 1), 0);
	/* out may be NULL when the caller only wants the verdict */
	{
		uint8_t raw[VFT_HDR_SIZE];
		struct vft_hdr h;

		vft_hdr_encode(raw, VFT_F_PING, p.seq, 0, NULL, 0);
		ck_assert_int_eq(vft_hdr_decode(raw, &h, NULL, 0), 0);
		ck_assert_int_eq(vft_rx_step(&p.rx, &h, NULL, NULL, NULL, 0), 0);
	}
}
END_TEST

/* ---- authentication (protocol v4): refusals first ---- */

static void test_key(struct vft_key *k, uint8_t fill)
{
	memset(k, 0, sizeof(*k));
	for (size_t i = 0; i < 32; i++)
		k->k[i] = (uint8_t)(fill + i);
	k->len = 32;
}

/* One authenticated connection: both ends' handshake state, the backup's
 * sequencer, the HELLO and AUTH payloads as on the wire. */
struct alink {
	struct vft_key kp, kb;
	struct vft_auth p, b;
	struct peer rx; /* the backup's sequencer, fed as the primary sends */
	uint8_t hello[VFT_HELLO_SIZE];
	uint8_t auth_b[VFT_AUTH_SIZE], auth_p[VFT_AUTH_SIZE];
	char err[200];
};

/* HELLO from the primary (nonce fill), through the backup's sequencer,
 * and the backup's challenge (nonce fill + 1). */
static void alink_start(struct alink *l, uint8_t kp_fill, uint8_t kb_fill, uint8_t nonce_fill)
{
	struct vft_hello m = hello_msg();
	uint8_t nb[VFT_NONCE_SIZE];

	memset(l, 0, sizeof(*l));
	test_key(&l->kp, kp_fill);
	test_key(&l->kb, kb_fill);
	vft_auth_init(&l->p, &l->kp, VFT_ROLE_PRIMARY);
	vft_auth_init(&l->b, &l->kb, VFT_ROLE_BACKUP);
	peer_init(&l->rx);
	l->rx.rx.auth_required = true;
	m.flags |= VFT_HELLO_AUTH;
	memset(m.nonce, nonce_fill, sizeof(m.nonce));
	vft_hello_encode(l->hello, &m);
	vft_auth_set_hello(&l->p, l->hello);
	ck_assert_int_eq(send_frame(&l->rx, VFT_F_HELLO, 0, l->hello, VFT_HELLO_SIZE), 0);
	ck_assert_int_eq(l->rx.out.action, VFT_RX_HELLO);
	vft_auth_set_hello(&l->b, l->hello);
	memset(nb, nonce_fill + 1, sizeof(nb));
	ck_assert_int_eq(vft_auth_backup_challenge(&l->b, nb, l->auth_b), 0);
}

static void alink_fini(struct alink *l)
{
	vft_auth_fini(&l->p);
	vft_auth_fini(&l->b);
}

/* The whole handshake with the same key: 0 */
static void alink_handshake(struct alink *l)
{
	ck_assert_int_eq(vft_auth_primary_answer(&l->p, l->auth_b, VFT_AUTH_SIZE, l->auth_p, l->err,
	                                         sizeof(l->err)),
	                 0);
	ck_assert_int_eq(send_frame(&l->rx, VFT_F_AUTH, 0, l->auth_p, VFT_AUTH_SIZE), 0);
	ck_assert_int_eq(l->rx.out.action, VFT_RX_AUTH);
	ck_assert_int_eq(
	        vft_auth_backup_check(&l->b, l->rx.out.auth, VFT_AUTH_SIZE, l->err, sizeof(l->err)),
	        0);
	vft_rx_auth_done(&l->rx.rx);
}

/* A frame sealed by `tx` and checked by `rx`, optionally altered between. */
static int mac_trip(struct vft_mac *tx, struct vft_mac *rx, uint16_t type, uint32_t seq,
                    const void *payload, uint32_t len, size_t flip)
{
	uint8_t frame[VFT_HDR_SIZE + 64];
	struct iovec iov = {.iov_base = (void *)(uintptr_t)payload, .iov_len = len};

	ck_assert_uint_le(len, 64);
	vft_hdr_encodev(frame, type, seq, 0, &iov, len ? 1 : 0);
	ck_assert_int_eq(vft_mac_seal(tx, frame, &iov, len ? 1 : 0), 0);
	if (len > 0)
		memcpy(frame + VFT_HDR_SIZE, payload, len);
	if (flip != SIZE_MAX)
		frame[flip] ^= 0x01;
	return vft_mac_verify(rx, frame, frame + VFT_HDR_SIZE, len);
}

START_TEST(test_auth_wrong_key)
{
	struct alink l;

	/* the backup holds another key: the primary refuses its proof and
	 * sends nothing (no answer, no session keys) */
	alink_start(&l, 0x10, 0x20, 0x01);
	ck_assert_int_eq(vft_auth_primary_answer(&l.p, l.auth_b, VFT_AUTH_SIZE, l.auth_p, l.err,
	                                         sizeof(l.err)),
	                 -EACCES);
	ck_assert_ptr_nonnull(strstr(l.err, "backup does not hold this key"));
	ck_assert(!vft_mac_on(&l.p.tx));
	alink_fini(&l);

	/* the primary holds another key and answers anyway (a stranger that
	 * ignores the backup's proof): the backup refuses the primary's */
	alink_start(&l, 0x10, 0x20, 0x02);
	{
		struct vft_auth_msg m;

		memset(m.nonce, 0x02, sizeof(m.nonce));
		ck_assert_int_eq(vft_auth_proof(&l.p, VFT_ROLE_PRIMARY, l.auth_b, m.proof), 0);
		vft_auth_msg_encode(l.auth_p, &m);
	}
	ck_assert_int_eq(send_frame(&l.rx, VFT_F_AUTH, 0, l.auth_p, VFT_AUTH_SIZE), 0);
	ck_assert_int_eq(
	        vft_auth_backup_check(&l.b, l.rx.out.auth, VFT_AUTH_SIZE, l.err, sizeof(l.err)),
	        -EACCES);
	ck_assert_ptr_nonnull(strstr(l.err, "primary does not hold this key"));
	/* without vft_rx_auth_done nothing else passes the sequencer */
	ck_assert_int_eq(send_frame(&l.rx, VFT_F_PING, 0, NULL, 0), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(l.rx.err, "not accepted"));
	alink_fini(&l);

	/* a key one bit off */
	alink_start(&l, 0x10, 0x10, 0x03);
	l.kp.k[31] ^= 0x80;
	ck_assert_int_eq(vft_auth_primary_answer(&l.p, l.auth_b, VFT_AUTH_SIZE, l.auth_p, l.err,
	                                         sizeof(l.err)),
	                 -EACCES);
	alink_fini(&l);
}
END_TEST

START_TEST(test_auth_replayed_proofs)
{
	struct alink a, b;
	uint8_t old_auth_p[VFT_AUTH_SIZE], old_auth_b[VFT_AUTH_SIZE];

	/* session a completes */
	alink_start(&a, 0x30, 0x30, 0x11);
	alink_handshake(&a);
	memcpy(old_auth_p, a.auth_p, sizeof(old_auth_p));
	memcpy(old_auth_b, a.auth_b, sizeof(old_auth_b));
	alink_fini(&a);

	/* a new connection with another primary nonce: the old primary AUTH
	 * is refused by the sequencer (not this HELLO's nonce) */
	alink_start(&b, 0x30, 0x30, 0x21);
	ck_assert_int_eq(send_frame(&b.rx, VFT_F_AUTH, 0, old_auth_p, VFT_AUTH_SIZE), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(b.rx.err, "nonce"));
	ck_assert_int_eq(
	        vft_auth_backup_check(&b.b, old_auth_p, VFT_AUTH_SIZE, b.err, sizeof(b.err)),
	        -EBADMSG);
	/* and the old backup AUTH is refused by the new primary */
	ck_assert_int_eq(vft_auth_primary_answer(&b.p, old_auth_b, VFT_AUTH_SIZE, b.auth_p, b.err,
	                                         sizeof(b.err)),
	                 -EACCES);
	alink_fini(&b);

	/* the attacker replays the whole old HELLO (same primary nonce): the
	 * backup's fresh nonce makes the old proof wrong */
	alink_start(&b, 0x30, 0x30, 0x11);
	{
		uint8_t nb[VFT_NONCE_SIZE];

		/* alink_start used nonce 0x12 as the backup's, like session a:
		 * a real backup draws a new one */
		vft_auth_fini(&b.b);
		vft_auth_init(&b.b, &b.kb, VFT_ROLE_BACKUP);
		vft_auth_set_hello(&b.b, b.hello);
		ck_assert_int_eq(vft_auth_nonce(nb), 0);
		ck_assert_int_eq(vft_auth_backup_challenge(&b.b, nb, b.auth_b), 0);
	}
	ck_assert_int_eq(send_frame(&b.rx, VFT_F_AUTH, 0, old_auth_p, VFT_AUTH_SIZE), 0);
	ck_assert_int_eq(
	        vft_auth_backup_check(&b.b, b.rx.out.auth, VFT_AUTH_SIZE, b.err, sizeof(b.err)),
	        -EACCES);
	alink_fini(&b);

	/* reflection: the backup's own AUTH sent back as the primary's
	 * (its nonce is the backup's, not the HELLO's), and a "backup" that
	 * echoes the primary's nonce */
	alink_start(&b, 0x30, 0x30, 0x41);
	ck_assert_int_eq(send_frame(&b.rx, VFT_F_AUTH, 0, b.auth_b, VFT_AUTH_SIZE), -EBADMSG);
	alink_fini(&b);
	alink_start(&b, 0x30, 0x30, 0x51);
	{
		uint8_t echo[VFT_AUTH_SIZE];

		memcpy(echo, b.auth_b, sizeof(echo));
		memset(echo, 0x51, VFT_NONCE_SIZE);
		ck_assert_int_eq(vft_auth_primary_answer(&b.p, echo, sizeof(echo), b.auth_p, b.err,
		                                         sizeof(b.err)),
		                 -EBADMSG);
	}
	alink_fini(&b);
}
END_TEST

START_TEST(test_auth_truncated_and_malformed)
{
	struct alink l;
	uint8_t raw[VFT_HDR_SIZE], zero[VFT_AUTH_SIZE] = {0};
	struct vft_hdr h;

	alink_start(&l, 0x50, 0x50, 0x61);
	/* an AUTH frame of any other length is refused by the header */
	for (uint32_t n = 0; n < 2 * VFT_AUTH_SIZE; n++) {
		vft_hdr_encode(raw, VFT_F_AUTH, 1, 0, NULL, 0);
		put32(raw + 8, n);
		ck_assert_int_eq(vft_hdr_decode(raw, &h, l.err, sizeof(l.err)),
		                 n == VFT_AUTH_SIZE ? 0 : -EBADMSG);
	}
	/* and by the payload checks */
	for (size_t n = 0; n < VFT_AUTH_SIZE; n++) {
		ck_assert_int_eq(
		        vft_auth_primary_answer(&l.p, l.auth_b, n, l.auth_p, l.err, sizeof(l.err)),
		        -EBADMSG);
		ck_assert_int_eq(vft_auth_backup_check(&l.b, l.auth_b, n, l.err, sizeof(l.err)),
		                 -EBADMSG);
	}
	ck_assert_int_eq(vft_auth_primary_answer(&l.p, l.auth_b, VFT_AUTH_SIZE + 1, l.auth_p, l.err,
	                                         sizeof(l.err)),
	                 -EBADMSG);
	/* a zero nonce */
	ck_assert_int_eq(
	        vft_auth_primary_answer(&l.p, zero, sizeof(zero), l.auth_p, l.err, sizeof(l.err)),
	        -EBADMSG);
	/* a proof cut short is a wrong proof: the last byte zeroed */
	{
		uint8_t cut[VFT_AUTH_SIZE];

		memcpy(cut, l.auth_b, sizeof(cut));
		cut[VFT_AUTH_SIZE - 1] ^= 0xff;
		ck_assert_int_eq(vft_auth_primary_answer(&l.p, cut, sizeof(cut), l.auth_p, l.err,
		                                         sizeof(l.err)),
		                 -EACCES);
	}
	/* HELLO announcing authentication with a zero nonce, or a nonce without it */
	{
		struct vft_hello m = hello_msg(), back;
		uint8_t b[VFT_HELLO_SIZE];

		m.flags |= VFT_HELLO_AUTH;
		vft_hello_encode(b, &m);
		ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, l.err, sizeof(l.err)),
		                 -EBADMSG);
		m.flags &= ~VFT_HELLO_AUTH;
		memset(m.nonce, 7, sizeof(m.nonce));
		vft_hello_encode(b, &m);
		ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, l.err, sizeof(l.err)),
		                 -EBADMSG);
		m.flags = 0x80;
		memset(m.nonce, 0, sizeof(m.nonce));
		vft_hello_encode(b, &m);
		ck_assert_int_eq(vft_hello_decode(b, sizeof(b), &back, l.err, sizeof(l.err)),
		                 -EBADMSG);
	}
	/* the handshake calls out of place */
	{
		struct vft_auth a;

		vft_auth_init(&a, &l.kp, VFT_ROLE_BACKUP);
		ck_assert_int_eq(
		        vft_auth_backup_check(&a, l.auth_p, VFT_AUTH_SIZE, l.err, sizeof(l.err)),
		        -EBADMSG);
		ck_assert_int_eq(vft_auth_primary_answer(&a, l.auth_b, VFT_AUTH_SIZE, l.auth_p,
		                                         l.err, sizeof(l.err)),
		                 -EBADMSG);
		vft_auth_fini(&a);
		vft_auth_init(&a, &l.kp, VFT_ROLE_PRIMARY);
		ck_assert_int_eq(vft_auth_primary_answer(&a, l.auth_b, VFT_AUTH_SIZE, l.auth_p,
		                                         l.err, sizeof(l.err)),
		                 -EBADMSG); /* no HELLO yet */
		vft_auth_fini(&a);
	}
	alink_fini(&l);
}
END_TEST

START_TEST(test_auth_frames_before_auth)
{
	static const uint16_t types[] = {VFT_F_PING,  VFT_F_BYE,      VFT_F_EPOCH_BEGIN,
	                                 VFT_F_PAGES, VFT_F_DEVSTATE, VFT_F_EPOCH_END,
	                                 VFT_F_DISK,  VFT_F_EVENTS,   VFT_F_HELLO,
	                                 VFT_F_ACK,   VFT_F_WELCOME,  VFT_F_TMPL};
	uint8_t junk[VFT_HELLO_SIZE] = {0};
	struct peer p;

	/* after HELLO, anything but AUTH (the sequencer refuses before it
	 * looks at the payload) */
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct alink l;

		struct vft_hdr h = {.version = VFT_PROTO_VERSION, .type = types[i], .length = 4};

		alink_start(&l, 0x60, 0x60, 0x71);
		h.seq = l.rx.seq++;
		ck_assert_int_eq(
		        vft_rx_step(&l.rx.rx, &h, junk, &l.rx.out, l.rx.err, sizeof(l.rx.err)),
		        -EBADMSG);
		ck_assert_msg(strstr(l.rx.err, "before authentication") != NULL, "%s: %s",
		              vft_ftype_name(types[i]), l.rx.err);
		alink_fini(&l);
	}
	/* before HELLO: AUTH, PING */
	peer_init(&p);
	p.rx.auth_required = true;
	ck_assert_int_eq(send_frame(&p, VFT_F_AUTH, 0, junk, VFT_AUTH_SIZE), -EBADMSG);
	peer_init(&p);
	p.rx.auth_required = true;
	ck_assert_int_eq(send_frame(&p, VFT_F_PING, 0, NULL, 0), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(p.err, "before HELLO"));
	/* a backup that requires authentication, a primary that does not */
	peer_init(&p);
	p.rx.auth_required = true;
	ck_assert_int_eq(send_hello(&p), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(p.err, "does not authenticate"));
	/* and the other way round; AUTH on a link without authentication */
	{
		struct alink l;

		alink_start(&l, 0x60, 0x60, 0x72);
		peer_init(&p);
		ck_assert_int_eq(send_frame(&p, VFT_F_HELLO, 0, l.hello, VFT_HELLO_SIZE), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(p.err, "vmft.authenticate: no"));
		alink_fini(&l);
	}
	peer_init(&p);
	ck_assert_int_eq(send_hello(&p), 0);
	ck_assert_int_eq(send_frame(&p, VFT_F_AUTH, 0, junk, VFT_AUTH_SIZE), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(p.err, "without authentication"));
	/* a second AUTH after a good handshake */
	{
		struct alink l;

		alink_start(&l, 0x60, 0x60, 0x73);
		alink_handshake(&l);
		ck_assert_int_eq(send_frame(&l.rx, VFT_F_AUTH, 0, l.auth_p, VFT_AUTH_SIZE),
		                 -EBADMSG);
		ck_assert_ptr_nonnull(strstr(l.rx.err, "second AUTH"));
		alink_fini(&l);
	}
}
END_TEST

START_TEST(test_auth_bad_mac)
{
	static const uint8_t pay[] = {1, 2, 3, 4, 5, 6, 7, 8};
	struct alink l, other;
	uint8_t frame[VFT_HDR_SIZE + sizeof(pay)];
	struct iovec iov = {.iov_base = (void *)pay, .iov_len = sizeof(pay)};

	alink_start(&l, 0x70, 0x70, 0x81);
	alink_handshake(&l);
	/* every byte of header and payload, checksum and tag included, is
	 * covered (the receiver's count stays put on a refusal: the same
	 * frame number) */
	for (size_t i = 0; i < VFT_HDR_SIZE + sizeof(pay); i++) {
		struct vft_mac save_tx = l.p.tx;

		l.p.tx.n = l.b.rx.n;
		ck_assert_msg(mac_trip(&l.p.tx, &l.b.rx, VFT_F_DEVSTATE, 5, pay, sizeof(pay), i) ==
		                      -EBADMSG,
		              "byte %zu", i);
		l.p.tx = save_tx;
	}
	/* intact: passes; replayed: refused (the count moved on) */
	vft_hdr_encodev(frame, VFT_F_DEVSTATE, 6, 0, &iov, 1);
	ck_assert_int_eq(vft_mac_seal(&l.p.tx, frame, &iov, 1), 0);
	memcpy(frame + VFT_HDR_SIZE, pay, sizeof(pay));
	l.b.rx.n = l.p.tx.n - 1;
	ck_assert_int_eq(vft_mac_verify(&l.b.rx, frame, frame + VFT_HDR_SIZE, sizeof(pay)), 0);
	ck_assert_int_eq(vft_mac_verify(&l.b.rx, frame, frame + VFT_HDR_SIZE, sizeof(pay)),
	                 -EBADMSG);
	/* reordered: frame n + 1 where n is due */
	ck_assert_int_eq(mac_trip(&l.p.tx, &l.p.tx, VFT_F_PING, 7, NULL, 0, SIZE_MAX), -EBADMSG);
	/* reflected: the backup's own direction's key */
	l.b.rx.n = l.b.tx.n;
	ck_assert_int_eq(mac_trip(&l.b.tx, &l.b.rx, VFT_F_PING, 8, NULL, 0, SIZE_MAX), -EBADMSG);
	/* untagged (zero tag) once the session is keyed */
	vft_hdr_encode(frame, VFT_F_PING, 9, 0, NULL, 0);
	ck_assert_int_eq(vft_mac_verify(&l.b.rx, frame, NULL, 0), -EBADMSG);
	/* a frame of another session with the same key */
	alink_start(&other, 0x70, 0x70, 0x91);
	alink_handshake(&other);
	l.b.rx.n = other.p.tx.n;
	ck_assert_int_eq(mac_trip(&other.p.tx, &l.b.rx, VFT_F_PING, 10, NULL, 0, SIZE_MAX),
	                 -EBADMSG);
	/* both directions flow in order */
	other.b.rx.n = other.p.tx.n;
	for (uint32_t i = 0; i < 100; i++) {
		ck_assert_int_eq(mac_trip(&other.p.tx, &other.b.rx, VFT_F_DEVSTATE, i, pay,
		                          sizeof(pay), SIZE_MAX),
		                 0);
		ck_assert_int_eq(
		        mac_trip(&other.b.tx, &other.p.rx, VFT_F_PING, i, NULL, 0, SIZE_MAX), 0);
	}
	/* an unkeyed side neither tags nor checks */
	{
		struct vft_mac off = {0};

		ck_assert_int_eq(mac_trip(&off, &off, VFT_F_PING, 0, NULL, 0, SIZE_MAX), 0);
		ck_assert_int_eq(mac_trip(NULL, NULL, VFT_F_PING, 0, NULL, 0, SIZE_MAX), 0);
	}
	alink_fini(&other);
	alink_fini(&l);
}
END_TEST

/* A whole authenticated connection through the sequencer, as the engines
 * run it: HELLO, AUTH, then an epoch, every frame tagged and checked. */
START_TEST(test_auth_session)
{
	struct alink l;
	uint8_t nonce[VFT_NONCE_SIZE];

	ck_assert_int_eq(vft_auth_nonce(nonce), 0);
	alink_start(&l, 0x80, 0x80, 0xa1);
	alink_handshake(&l);
	ck_assert(l.rx.rx.authed);
	ck_assert(l.p.done && l.b.done);
	ck_assert_int_eq(send_begin(&l.rx, 1, VFT_EPOCH_FULL), 0);
	ck_assert_int_eq(send_pages(&l.rx, 1, 2, 0), 0);
	ck_assert_int_eq(send_dev(&l.rx, 1, 16), 0);
	ck_assert_int_eq(send_end(&l.rx, 1, 2, 16, 2), 0);
	ck_assert_int_eq(l.rx.out.action, VFT_RX_END);
	ck_assert_int_eq(send_frame(&l.rx, VFT_F_PING, 0, NULL, 0), 0);
	alink_fini(&l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vft_proto");

	add_tcase(s, test_hdr_bad_magic, 10);
	add_tcase(s, test_hdr_bad_version, 10);
	add_tcase(s, test_hdr_bad_type, 10);
	add_tcase(s, test_hdr_fixed_lengths, 10);
	add_tcase(s, test_hdr_pages_lengths, 10);
	add_tcase(s, test_hdr_devstate_lengths, 10);
	add_tcase(s, test_err_buffer_optional, 10);
	add_tcase(s, test_checksum_every_byte_and_bit, 10);
	add_tcase(s, test_checksum_truncation_and_splice, 10);
	add_tcase(s, test_payload_bad_lengths, 10);
	add_tcase(s, test_pages_bad_count_and_length, 10);
	add_tcase(s, test_pages_bad_pfns, 10);
	add_tcase(s, test_hello_bad_page_and_ram_size, 10);
	add_tcase(s, test_hello_bad_name, 10);
	add_tcase(s, test_epoch_begin_bad_kind, 10);
	add_tcase(s, test_template_fields_refused, 10);
	add_tcase(s, test_rx_template_rules, 10);
	add_tcase(s, test_ftype_names, 10);
	add_tcase(s, test_rx_wrong_seq, 10);
	add_tcase(s, test_rx_frames_before_hello, 10);
	add_tcase(s, test_rx_second_hello, 10);
	add_tcase(s, test_rx_bad_hello_payload, 10);
	add_tcase(s, test_rx_epoch_zero_frames, 10);
	add_tcase(s, test_rx_first_epoch_not_full, 10);
	add_tcase(s, test_rx_full_later, 10);
	add_tcase(s, test_rx_epoch_gap, 10);
	add_tcase(s, test_rx_begin_while_open, 10);
	add_tcase(s, test_rx_outside_epoch, 10);
	add_tcase(s, test_rx_wrong_epoch, 10);
	add_tcase(s, test_rx_pages_beyond_ram, 10);
	add_tcase(s, test_rx_end_totals_mismatch, 10);
	add_tcase(s, test_rx_missing_devstate, 10);
	add_tcase(s, test_rx_backup_frames_from_primary, 10);
	add_tcase(s, test_rx_rechecks_headers, 10);
	add_tcase(s, test_hdr_round_trip, 10);
	add_tcase(s, test_payload_round_trips, 10);
	add_tcase(s, test_pages_round_trip, 10);
	add_tcase(s, test_rx_full_session, 10);
	add_tcase(s, test_rx_first_epoch_any_number, 10);
	add_tcase(s, test_events_refused, 10);
	add_tcase(s, test_disk_refused, 10);
	add_tcase(s, test_hello_bad_disk_size, 10);
	add_tcase(s, test_rx_disk_and_events_rules, 10);
	add_tcase(s, test_rx_session_with_disk, 10);
	add_tcase(s, test_evlog_batches, 10);
	add_tcase(s, test_auth_wrong_key, 10);
	add_tcase(s, test_auth_replayed_proofs, 10);
	add_tcase(s, test_auth_truncated_and_malformed, 10);
	add_tcase(s, test_auth_frames_before_auth, 10);
	add_tcase(s, test_auth_bad_mac, 10);
	add_tcase(s, test_auth_session, 10);
	return run_suite(s);
}
