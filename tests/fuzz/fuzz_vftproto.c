/*
 * libFuzzer target: a byte stream from the primary as the backup reads it
 * off the replication link. The input's first byte selects the link: bit 0
 * set = authenticated (protocol v4, vft_auth.h), as engines run by default.
 * The rest is cut into frames (48-byte header, then the declared length);
 * each frame that decodes and verifies goes to one receiver sequencer, as in
 * the engine, and every payload decoder is tried on it: whatever decodes
 * must encode to the same meaningful bytes and decode again to the same
 * message.
 *
 * A checksum is a wall the fuzzer cannot climb by mutation, so a frame whose
 * check field is all zero gets it computed here (in a copy of the header)
 * before verification; seeds and mutations may leave it zero and still reach
 * the payload decoders and the sequencer. A non-zero check is verified as is,
 * which keeps the verification itself under test. MACs and proofs likewise:
 * on an authenticated link the harness plays the honest primary with a fixed
 * key (FUZZ_KEY, the backup's too): an AUTH frame whose proof is all zero
 * gets the right proof, a frame whose tag is all zero gets the right tag
 * (both in copies); a non-zero proof or tag is checked as is. Whatever the
 * input, no frame other than the handshake passes before the primary's
 * proof was accepted.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vft_auth.h"
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
	       back.flags == m.flags && strcmp(back.vm, m.vm) == 0 &&
	       memcmp(back.nonce, m.nonce, VFT_NONCE_SIZE) == 0);
	expect(memcmp(b + 96, p + 96, VFT_HELLO_SIZE - 96) == 0);
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
	case VFT_F_AUTH:
		expect(out->action == VFT_RX_AUTH && rx->auth_required && rx->auth_seen &&
		       !rx->authed && out->auth == payload &&
		       memcmp(payload, rx->hello.nonce, VFT_NONCE_SIZE) == 0);
		break;
	default: /* WELCOME and ACK never pass */
		expect(0);
	}
}

/* The link's authentication as both engines run it: the backup (under
 * test) and the honest primary the harness plays, same key. */
struct fauth {
	bool on;
	struct vft_key key;
	struct vft_auth b, p;
	bool keyed; /* the backup sent its challenge: frames are tagged */
};

static void fauth_init(struct fauth *fa, bool on)
{
	memset(fa, 0, sizeof(*fa));
	fa->on = on;
	fa->key.len = 32;
	for (size_t i = 0; i < 32; i++)
		fa->key.k[i] = (uint8_t)(0xa5 ^ i); /* FUZZ_KEY */
	vft_auth_init(&fa->b, &fa->key, VFT_ROLE_BACKUP);
	vft_auth_init(&fa->p, &fa->key, VFT_ROLE_PRIMARY);
}

/* After a HELLO the sequencer accepted: the backup's challenge (a fixed
 * nonce), answered by the harness's primary so it can tag and prove. */
static void fauth_hello(struct fauth *fa, const uint8_t *hello)
{
	uint8_t nb[VFT_NONCE_SIZE], msg[VFT_AUTH_SIZE], ans[VFT_AUTH_SIZE];
	char err[256];

	memset(nb, 0x5b, sizeof(nb));
	if (memcmp(nb, hello + 104, sizeof(nb)) == 0)
		nb[0] ^= 1; /* never the primary's own nonce */
	vft_auth_set_hello(&fa->b, hello);
	vft_auth_set_hello(&fa->p, hello);
	expect(vft_auth_backup_challenge(&fa->b, nb, msg) == 0);
	expect(vft_auth_primary_answer(&fa->p, msg, sizeof(msg), ans, err, sizeof(err)) == 0);
	fa->keyed = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vft_rx rx;
	struct fauth fa;
	bool rx_alive = true;
	size_t off = 1;

	if (size < 1)
		return 0;
	vft_rx_init(&rx);
	fauth_init(&fa, data[0] & 1);
	rx.auth_required = fa.on;
	for (int n = 0; n < MAX_FRAMES && size - off >= VFT_HDR_SIZE; n++) {
		uint8_t raw[VFT_HDR_SIZE], again[VFT_HDR_SIZE], tag[VFT_TAG_SIZE];
		uint8_t authp[VFT_AUTH_SIZE];
		static const uint8_t zero[VFT_AUTH_SIZE];
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
		/* the primary's AUTH with a zero proof: the right one */
		if (fa.keyed && h.type == VFT_F_AUTH && h.length == VFT_AUTH_SIZE &&
		    memcmp(payload + VFT_NONCE_SIZE, zero, VFT_PROOF_SIZE) == 0) {
			memcpy(authp, payload, VFT_NONCE_SIZE);
			expect(vft_auth_proof(&fa.p, VFT_ROLE_PRIMARY, fa.b.nonce_b,
			                      authp + VFT_NONCE_SIZE) == 0);
			payload = authp;
		}
		if (memcmp(raw + 24, zero, 8) == 0) {
			memcpy(tag, raw + VFT_TAG_OFF, VFT_TAG_SIZE);
			vft_hdr_encode(raw, h.type, h.seq, h.epoch, payload, h.length);
			memcpy(raw + VFT_TAG_OFF, tag, VFT_TAG_SIZE);
			expect(vft_hdr_decode(raw, &h, err, sizeof(err)) == 0);
		}
		if (vft_frame_verify(raw, &h, payload) != 0)
			break;
		/* a verified header is canonical: encoding its fields gives it
		 * back (all but the tag, the MAC layer's) */
		vft_hdr_encode(again, h.type, h.seq, h.epoch, payload, h.length);
		expect(memcmp(again, raw, VFT_TAG_OFF) == 0);
		if (fa.keyed) {
			/* a zero tag: the honest primary's; else checked as is */
			if (memcmp(raw + VFT_TAG_OFF, zero, VFT_TAG_SIZE) == 0) {
				struct iovec iov = {.iov_base = (void *)(uintptr_t)payload,
				                    .iov_len = h.length};

				fa.p.tx.n = fa.b.rx.n;
				expect(vft_mac_seal(&fa.p.tx, raw, &iov, h.length ? 1 : 0) == 0);
			}
			if (vft_mac_verify(&fa.b.rx, raw, payload, h.length) != 0)
				break; /* the engine drops the connection */
		}

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
			if (rc == 0) {
				check_step(&rx, &h, payload, &out);
				/* nothing but the handshake before the proof */
				if (fa.on && !rx.authed)
					expect(out.action == VFT_RX_HELLO ||
					       out.action == VFT_RX_AUTH);
				if (out.action == VFT_RX_HELLO && fa.on)
					fauth_hello(&fa, payload);
				if (out.action == VFT_RX_AUTH) {
					rc = vft_auth_backup_check(&fa.b, out.auth, VFT_AUTH_SIZE,
					                           err, sizeof(err));
					expect(rc == 0 || rc == -EACCES || rc == -EBADMSG);
					if (rc == 0)
						vft_rx_auth_done(&rx);
					else
						rx_alive = false;
				}
			} else {
				rx_alive = false; /* the engine drops the connection */
			}
		}
		off += VFT_HDR_SIZE + h.length;
	}
	vft_auth_fini(&fa.b);
	vft_auth_fini(&fa.p);
	return 0;
}
