/*
 * libFuzzer target: a byte stream from the primary as the backup reads it
 * off the replication link. The input is cut into frames (32-byte header,
 * then the declared length); each frame that decodes and verifies goes to
 * one receiver sequencer, as in the engine, and every payload decoder is
 * tried on it: whatever decodes must encode to the same meaningful bytes and
 * decode again to the same message.
 *
 * A checksum is a wall the fuzzer cannot climb by mutation, so a frame whose
 * check field is all zero gets it computed here (in a copy of the header)
 * before verification; seeds and mutations may leave it zero and still reach
 * the payload decoders and the sequencer. A non-zero check is verified as is,
 * which keeps the verification itself under test.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vft_nbd.h"
#include "vft_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 512

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

/* a decoder's verdict and its reason agree: a reason on failure only */
static void check_reason(int rc, const char *err)
{
	expect(rc == 0 || rc == -EBADMSG);
	expect(memchr(err, '\0', 256) != NULL);
	expect(rc == 0 ? err[0] == '\0' : err[0] != '\0');
}

static void round_trip_hello(const uint8_t *p, size_t len)
{
	struct vft_hello m, back;
	uint8_t b[VFT_HELLO_SIZE];
	char err[256];
	int rc = vft_hello_decode(p, len, &m, err, sizeof(err));

	check_reason(rc, err);
	if (rc != 0)
		return;
	expect(vft_hello_encode(b, &m) == VFT_HELLO_SIZE);
	/* the name's padding is not part of the message */
	expect(memcmp(b, p, 32 + strlen(m.vm) + 1) == 0);
	expect(vft_hello_decode(b, sizeof(b), &back, err, sizeof(err)) == 0);
	expect(back.session == m.session && back.ram_size == m.ram_size &&
	       back.config_hash == m.config_hash && back.page_size == m.page_size &&
	       back.flags == m.flags && strcmp(back.vm, m.vm) == 0);
}

static void round_trip_welcome(const uint8_t *p, size_t len)
{
	struct vft_welcome m, back;
	uint8_t b[VFT_WELCOME_SIZE];
	char err[256];
	int rc = vft_welcome_decode(p, len, &m, err, sizeof(err));

	check_reason(rc, err);
	if (rc != 0)
		return;
	expect(vft_welcome_encode(b, &m) == VFT_WELCOME_SIZE);
	expect(memcmp(b, p, 20) == 0); /* all but the reserved word */
	expect(vft_welcome_decode(b, sizeof(b), &back, err, sizeof(err)) == 0);
	expect(back.committed_epoch == m.committed_epoch &&
	       back.committed_session == m.committed_session && back.flags == m.flags &&
	       back.tmpl_id == m.tmpl_id && back.tmpl_pages == m.tmpl_pages &&
	       back.tmpl_blocks == m.tmpl_blocks);
	/* an offer is a content id with its pages, and blocks only with pages */
	expect((m.tmpl_id == 0) == (m.tmpl_pages == 0) && (m.tmpl_blocks == 0 || m.tmpl_pages));
}

static void round_trip_tmpl(const uint8_t *p, size_t len)
{
	struct vft_tmpl_frame m, back;
	uint8_t head[16];
	char err[256];
	int rc = vft_tmpl_decode(p, len, &m, err, sizeof(err));

	check_reason(rc, err);
	if (rc != 0)
		return;
	expect(m.count >= 1 && m.count <= VFT_TMPL_BATCH && len == 16 + 8 * (size_t)m.count);
	expect(m.hashes == p + 16);
	expect(vft_tmpl_encode_head(head, m.what, m.count, m.first) == 16);
	expect(memcmp(head, p, 16) == 0);
	expect(vft_tmpl_decode(p, len, &back, err, sizeof(err)) == 0 && back.first == m.first);
}

static void round_trip_begin(const uint8_t *p, size_t len)
{
	struct vft_epoch_begin m, back;
	uint8_t b[VFT_EPOCH_BEGIN_SIZE];
	char err[256];
	int rc = vft_epoch_begin_decode(p, len, &m, err, sizeof(err));

	check_reason(rc, err);
	if (rc != 0)
		return;
	expect(m.kind == VFT_EPOCH_INCR || m.kind == VFT_EPOCH_FULL);
	expect(vft_epoch_begin_encode(b, &m) == VFT_EPOCH_BEGIN_SIZE);
	expect(memcmp(b, p, VFT_EPOCH_BEGIN_SIZE) == 0);
	expect(vft_epoch_begin_decode(b, sizeof(b), &back, err, sizeof(err)) == 0);
	expect(back.kind == m.kind && back.flags == m.flags && back.tmpl_id == m.tmpl_id);
	/* a template only under a full epoch, and the disk only with RAM */
	expect(m.flags == 0 || (m.kind == VFT_EPOCH_FULL && (m.flags & VFT_BEGIN_TMPL_RAM)));
}

static void round_trip_pages(const uint8_t *p, size_t len)
{
	static uint8_t b[VFT_MAX_PAYLOAD];
	static uint64_t pfns[VFT_BATCH_PAGES];
	struct vft_pages m, back;
	char err[256];
	size_t head;
	/* every pfn is in range: the order and the layout are under test */
	int rc = vft_pages_decode(p, len, UINT64_MAX, &m, err, sizeof(err));

	check_reason(rc, err);
	if (rc != 0)
		return;
	expect(m.count >= 1 && m.count <= VFT_BATCH_PAGES && len == vft_pages_size(m.count));
	expect(m.pfns_raw == p + 8 && m.data == p + 8 + 8 * (size_t)m.count);
	for (uint32_t i = 0; i < m.count; i++) {
		pfns[i] = vft_pages_pfn(&m, i);
		expect(i == 0 || pfns[i] > pfns[i - 1]);
	}
	head = vft_pages_encode_head(b, m.count, pfns);
	expect(head == 8 + 8 * (size_t)m.count);
	expect(memcmp(b, p, 4) == 0 && memcmp(b + 8, p + 8, head - 8) == 0);
	memcpy(b + head, m.data, len - head);
	expect(vft_pages_decode(b, len, pfns[m.count - 1] + 1, &back, err, sizeof(err)) == 0);
	expect(back.count == m.count);
	for (uint32_t i = 0; i < m.count; i++)
		expect(vft_pages_pfn(&back, i) == pfns[i]);
	/* the last pfn is the first one out of a map that ends there */
	expect(vft_pages_decode(p, len, pfns[m.count - 1], &back, err, sizeof(err)) == -EBADMSG);
}

static void round_trip_end(const uint8_t *p, size_t len)
{
	struct vft_epoch_end m, back;
	uint8_t b[VFT_EPOCH_END_SIZE];
	char err[256];
	int rc = vft_epoch_end_decode(p, len, &m, err, sizeof(err));

	check_reason(rc, err);
	if (rc != 0)
		return;
	expect(vft_epoch_end_encode(b, &m) == VFT_EPOCH_END_SIZE);
	expect(memcmp(b, p, 20) == 0);
	expect(vft_epoch_end_decode(b, sizeof(b), &back, err, sizeof(err)) == 0);
	expect(back.n_pages == m.n_pages && back.devstate_len == m.devstate_len &&
	       back.n_frames == m.n_frames && back.n_events == m.n_events &&
	       back.disk_bytes == m.disk_bytes);
}

/* DISK and EVENTS: what decodes lies within the disk, and the records an
 * iteration walks are exactly the ones the decoder counted, in seq order */
static void check_disk_events(const uint8_t *p, size_t len)
{
	static const uint64_t sizes[] = {0, 512, 1u << 20, 1ull << 40};
	char err[256];

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct vft_disk d;
		struct vft_event ev;
		uint32_t count;
		uint64_t next, want = 0;
		size_t pos = 8, n = 0;
		int rc = vft_disk_decode(p, len, sizes[k], &d, err, sizeof(err));

		check_reason(rc, err);
		if (rc == 0)
			expect(d.offset % 512 == 0 && d.len % 512 == 0 && d.len > 0 &&
			       d.offset + d.len <= sizes[k]);
		rc = vft_events_decode(p, len, sizes[k], 0, &count, &next, err, sizeof(err));
		check_reason(rc, err);
		if (rc != 0)
			continue;
		while (vft_events_next(p, len, &pos, &ev) == 1) {
			expect(want == 0 || ev.seq == want);
			expect(ev.kind > 0 && ev.kind < VFT_EV_COUNT);
			if (ev.kind == VFT_EV_DISK_WRITE)
				expect(ev.arg + ev.len <= sizes[k]);
			want = ev.seq + 1;
			n++;
		}
		expect(n == count && pos == len && want == next);
	}
}

/* the NBD codec on the same bytes: option, GO data and request decoders */
static void check_nbd(const uint8_t *p, size_t len)
{
	struct vft_nbd_opt o;
	struct vft_nbd_go g;
	struct vft_nbd_req r;
	uint32_t flags, nerr;
	char err[256];

	if (len >= 4)
		(void)vft_nbd_client_flags(p, &flags, err, sizeof(err));
	if (len >= VFT_NBD_OPT_SIZE) {
		int rc = vft_nbd_opt_decode(p, &o, err, sizeof(err));

		expect(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
		if (rc == 0)
			expect(o.len <= VFT_NBD_OPT_MAX);
	}
	if (vft_nbd_go_decode(p, (uint32_t)(len > VFT_NBD_OPT_MAX ? VFT_NBD_OPT_MAX : len), &g, err,
	                      sizeof(err)) == 0)
		expect(strlen(g.name) < sizeof(g.name));
	if (len >= VFT_NBD_REQ_SIZE &&
	    vft_nbd_req_decode(p, 1u << 20, &r, &nerr, err, sizeof(err)) == 0 && nerr == 0 &&
	    (r.type == VFT_NBD_CMD_READ || r.type == VFT_NBD_CMD_WRITE))
		expect(r.len > 0 && r.len <= VFT_NBD_MAX_BLOCK && r.offset + r.len <= (1u << 20));
}

static void round_trip_small(const uint8_t *p, size_t len)
{
	struct vft_ack ack, ack2;
	uint8_t b[8];
	uint32_t reason, reason2;
	char err[256];
	int rc = vft_ack_decode(p, len, &ack, err, sizeof(err));

	check_reason(rc, err);
	if (rc == 0) {
		expect(vft_ack_encode(b, &ack) == VFT_ACK_SIZE && memcmp(b, p, VFT_ACK_SIZE) == 0);
		expect(vft_ack_decode(b, VFT_ACK_SIZE, &ack2, err, sizeof(err)) == 0);
		expect(ack2.commit_us == ack.commit_us);
	}
	rc = vft_bye_decode(p, len, &reason, err, sizeof(err));
	check_reason(rc, err);
	if (rc == 0) {
		expect(vft_bye_encode(b, reason) == VFT_BYE_SIZE &&
		       memcmp(b, p, VFT_BYE_SIZE) == 0);
		expect(vft_bye_decode(b, VFT_BYE_SIZE, &reason2, err, sizeof(err)) == 0);
		expect(reason2 == reason);
	}
}

/* what the sequencer answered must fit the frame it was given */
static void check_step(const struct vft_rx *rx, const struct vft_hdr *h, const void *payload,
                       const struct vft_rx_frame *out)
{
	switch (h->type) {
	case VFT_F_HELLO:
		expect(out->action == VFT_RX_HELLO && rx->hello_seen &&
		       rx->max_pfn == rx->hello.ram_size / VFT_PAGE_SIZE && rx->max_pfn > 0);
		break;
	case VFT_F_EPOCH_BEGIN:
		expect(out->action == VFT_RX_BEGIN && rx->open && rx->open_epoch == h->epoch &&
		       rx->last_epoch == h->epoch && h->epoch > 0);
		break;
	case VFT_F_PAGES:
		expect(out->action == VFT_RX_PAGES && rx->open && out->pages.count >= 1);
		expect(vft_pages_pfn(&out->pages, out->pages.count - 1) < rx->max_pfn);
		break;
	case VFT_F_DEVSTATE:
		expect(out->action == VFT_RX_DEVSTATE && out->dev == payload &&
		       out->dev_len == h->length);
		break;
	case VFT_F_EPOCH_END:
		expect(out->action == VFT_RX_END && !rx->open && out->end.devstate_len > 0);
		break;
	case VFT_F_DISK:
		expect(out->action == VFT_RX_DISK && rx->open_kind == VFT_EPOCH_FULL &&
		       out->disk.offset + out->disk.len <= rx->hello.disk_size);
		break;
	case VFT_F_EVENTS:
		expect(out->action == VFT_RX_EVENTS && out->n_events >= 1 && rx->events_seen &&
		       out->events == payload && out->events_len == h->length);
		break;
	case VFT_F_PING:
		expect(out->action == VFT_RX_NONE);
		break;
	case VFT_F_BYE:
		expect(out->action == VFT_RX_BYE);
		break;
	default: /* WELCOME and ACK never pass */
		expect(0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vft_rx rx;
	bool rx_alive = true;
	size_t off = 0;

	vft_rx_init(&rx);
	for (int n = 0; n < MAX_FRAMES && size - off >= VFT_HDR_SIZE; n++) {
		uint8_t raw[VFT_HDR_SIZE], again[VFT_HDR_SIZE];
		static const uint8_t zero[8];
		const uint8_t *payload;
		struct vft_rx_frame out;
		struct vft_hdr h;
		char err[256];
		int rc;

		memcpy(raw, data + off, VFT_HDR_SIZE);
		rc = vft_hdr_decode(raw, &h, err, sizeof(err));
		expect(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
		expect(rc == 0 ? err[0] == '\0' : err[0] != '\0');
		expect(vft_ftype_name(h.type) != NULL);
		/* the declared length is bounded by the decoder (VFT_MAX_PAYLOAD) */
		if (rc != 0 || h.length > size - off - VFT_HDR_SIZE)
			break;
		expect(h.length <= VFT_MAX_PAYLOAD);
		payload = data + off + VFT_HDR_SIZE;
		if (memcmp(raw + 24, zero, 8) == 0) {
			vft_hdr_encode(raw, h.type, h.seq, h.epoch, payload, h.length);
			expect(vft_hdr_decode(raw, &h, err, sizeof(err)) == 0);
		}
		if (vft_frame_verify(raw, &h, payload) != 0)
			break;
		/* a verified header is canonical: encoding its fields gives it back */
		vft_hdr_encode(again, h.type, h.seq, h.epoch, payload, h.length);
		expect(memcmp(again, raw, VFT_HDR_SIZE) == 0);

		round_trip_hello(payload, h.length);
		round_trip_welcome(payload, h.length);
		round_trip_begin(payload, h.length);
		round_trip_pages(payload, h.length);
		round_trip_end(payload, h.length);
		round_trip_small(payload, h.length);
		round_trip_tmpl(payload, h.length);
		check_disk_events(payload, h.length);
		check_nbd(payload, h.length);

		if (rx_alive) {
			err[0] = 'x';
			rc = vft_rx_step(&rx, &h, payload, &out, err, sizeof(err));
			check_reason(rc, err);
			if (rc == 0)
				check_step(&rx, &h, payload, &out);
			else
				rx_alive = false; /* the engine drops the connection */
		}
		off += VFT_HDR_SIZE + h.length;
	}
	return 0;
}
