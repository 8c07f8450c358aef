/*
 * vmft replication protocol: see vft_proto.h. Every multi-byte field is
 * read and written byte by byte: payloads come straight from a socket
 * buffer at any alignment, and the wire is little-endian whatever the host.
 */
#include "config.h"

#include "vft_proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

/* the largest RAM a HELLO may announce: bounds max_pfn, so a PAGES frame
 * from a confused primary cannot make the backup stage beyond any sane map */
#define VFT_RAM_MAX (1ull << 40)

#define VFT_HDR_CHECKED 24 /* header bytes covered by the checksum */

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Writes the reason of a refusal (if there is room for one) and returns the
 * refusal, so that checks read as "return fail(...)". */
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

static void clear_err(char *err, size_t errlen)
{
	if (err != NULL && errlen > 0)
		err[0] = '\0';
}

const char *vft_ftype_name(unsigned type)
{
	static const char *const names[VFT_F_COUNT] = {
	        [VFT_F_HELLO] = "HELLO",
	        [VFT_F_WELCOME] = "WELCOME",
	        [VFT_F_EPOCH_BEGIN] = "EPOCH_BEGIN",
	        [VFT_F_PAGES] = "PAGES",
	        [VFT_F_DEVSTATE] = "DEVSTATE",
	        [VFT_F_EPOCH_END] = "EPOCH_END",
	        [VFT_F_ACK] = "ACK",
	        [VFT_F_PING] = "PING",
	        [VFT_F_BYE] = "BYE",
	        [VFT_F_DISK] = "DISK",
	        [VFT_F_EVENTS] = "EVENTS",
	        [VFT_F_TMPL] = "TMPL",
	        [VFT_F_AUTH] = "AUTH",
	};

	if (type >= VFT_F_COUNT || names[type] == NULL)
		return "?";
	return names[type];
}

/* ---- header -------------------------------------------------------------------------- */

static uint64_t frame_check(const uint8_t raw[VFT_HDR_SIZE], const struct iovec *iov, int iovcnt)
{
	XXH3_state_t st;

	XXH3_INITSTATE(&st);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, raw, VFT_HDR_CHECKED);
	for (int i = 0; i < iovcnt; i++)
		if (iov[i].iov_len > 0)
			XXH3_64bits_update(&st, iov[i].iov_base, iov[i].iov_len);
	return XXH3_64bits_digest(&st);
}

void vft_hdr_encodev(uint8_t out[VFT_HDR_SIZE], uint16_t type, uint32_t seq, uint64_t epoch,
                     const struct iovec *iov, int iovcnt)
{
	size_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	/* callers never exceed VFT_MAX_PAYLOAD; a larger length would not fit
	 * the field and is refused by every receiver anyway */
	put_le32(out, VFT_MAGIC);
	put_le16(out + 4, VFT_PROTO_VERSION);
	put_le16(out + 6, type);
	put_le32(out + 8, (uint32_t)len);
	put_le32(out + 12, seq);
	put_le64(out + 16, epoch);
	put_le64(out + 24, frame_check(out, iov, iovcnt));
	memset(out + VFT_TAG_OFF, 0, VFT_TAG_SIZE);
}

void vft_hdr_encode(uint8_t out[VFT_HDR_SIZE], uint16_t type, uint32_t seq, uint64_t epoch,
                    const void *payload, uint32_t len)
{
	/* iov_base is not const; the checksum only reads through it */
	struct iovec iov = {.iov_base = (void *)(uintptr_t)payload, .iov_len = len};

	vft_hdr_encodev(out, type, seq, epoch, &iov, len > 0 ? 1 : 0);
}

static int check_length(const struct vft_hdr *h, char *err, size_t errlen)
{
	const char *name = vft_ftype_name(h->type);
	const uint32_t per_page = 8 + VFT_PAGE_SIZE;
	uint32_t want;

	switch (h->type) {
	case VFT_F_HELLO:
		want = VFT_HELLO_SIZE;
		break;
	case VFT_F_WELCOME:
		want = VFT_WELCOME_SIZE;
		break;
	case VFT_F_EPOCH_BEGIN:
		want = VFT_EPOCH_BEGIN_SIZE;
		break;
	case VFT_F_EPOCH_END:
		want = VFT_EPOCH_END_SIZE;
		break;
	case VFT_F_ACK:
		want = VFT_ACK_SIZE;
		break;
	case VFT_F_PING:
		want = 0;
		break;
	case VFT_F_BYE:
		want = VFT_BYE_SIZE;
		break;
	case VFT_F_AUTH:
		want = VFT_AUTH_SIZE;
		break;
	case VFT_F_PAGES:
		if (h->length < 8 + per_page || (h->length - 8) % per_page != 0 ||
		    (h->length - 8) / per_page > VFT_BATCH_PAGES)
			return fail(err, errlen,
			            "PAGES length %u is not 8 + n x %u with n in 1..%u", h->length,
			            per_page, VFT_BATCH_PAGES);
		return 0;
	case VFT_F_DEVSTATE:
		if (h->length < 1 || h->length > VFT_DEVSTATE_CHUNK)
			return fail(err, errlen, "DEVSTATE length %u outside 1..%u", h->length,
			            VFT_DEVSTATE_CHUNK);
		return 0;
	case VFT_F_DISK:
		if (h->length < 8 + VFT_SECTOR || h->length > 8 + VFT_DISK_CHUNK ||
		    (h->length - 8) % VFT_SECTOR != 0)
			return fail(err, errlen, "DISK length %u is not 8 + n x %u bytes up to %u",
			            h->length, VFT_SECTOR, 8 + VFT_DISK_CHUNK);
		return 0;
	case VFT_F_EVENTS:
		if (h->length < 8 + VFT_EV_HDR || h->length > VFT_MAX_PAYLOAD)
			return fail(err, errlen, "EVENTS length %u outside %u..%u", h->length,
			            8 + VFT_EV_HDR, VFT_MAX_PAYLOAD);
		return 0;
	case VFT_F_TMPL:
		if (h->length < 16 + 8 || h->length > 16 + 8 * VFT_TMPL_BATCH ||
		    (h->length - 16) % 8 != 0)
			return fail(err, errlen, "TMPL length %u is not 16 + n x 8 with n in 1..%u",
			            h->length, VFT_TMPL_BATCH);
		return 0;
	default:
		return fail(err, errlen, "unknown frame type %u", h->type);
	}
	if (h->length != want)
		return fail(err, errlen, "%s length %u, must be %u", name, h->length, want);
	return 0;
}

int vft_hdr_decode(const uint8_t in[VFT_HDR_SIZE], struct vft_hdr *h, char *err, size_t errlen)
{
	uint32_t magic = get_le32(in);

	clear_err(err, errlen);
	if (magic != VFT_MAGIC)
		return fail(err, errlen, "bad magic 0x%08x", magic);
	h->version = get_le16(in + 4);
	h->type = get_le16(in + 6);
	h->length = get_le32(in + 8);
	h->seq = get_le32(in + 12);
	h->epoch = get_le64(in + 16);
	h->check = get_le64(in + 24);
	if (h->version != VFT_PROTO_VERSION) {
		fail(err, errlen, "protocol version %u, this side speaks %u", h->version,
		     VFT_PROTO_VERSION);
		return -EPROTONOSUPPORT;
	}
	return check_length(h, err, errlen); /* which refuses an unknown type */
}

int vft_frame_verify(const uint8_t raw[VFT_HDR_SIZE], const struct vft_hdr *h, const void *payload)
{
	struct iovec iov = {.iov_base = (void *)(uintptr_t)payload, .iov_len = h->length};

	if (h->length > 0 && payload == NULL)
		return -EBADMSG;
	return frame_check(raw, &iov, h->length > 0 ? 1 : 0) == h->check ? 0 : -EBADMSG;
}

/* ---- payloads ------------------------------------------------------------------------- */

static int want_len(const char *what, size_t len, size_t want, char *err, size_t errlen)
{
	clear_err(err, errlen);
	if (len != want)
		return fail(err, errlen, "%s payload of %zu bytes, must be %zu", what, len, want);
	return 0;
}

static bool vm_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

size_t vft_hello_encode(uint8_t out[VFT_HELLO_SIZE], const struct vft_hello *m)
{
	/* at most VFT_VM_NAME_MAX - 1 characters: the wire always has the NUL */
	size_t n = strnlen(m->vm, VFT_VM_NAME_MAX - 1);

	memset(out, 0, VFT_HELLO_SIZE);
	put_le64(out, m->session);
	put_le64(out + 8, m->ram_size);
	put_le64(out + 16, m->config_hash);
	put_le32(out + 24, m->page_size);
	put_le32(out + 28, m->flags);
	memcpy(out + 32, m->vm, n);
	put_le64(out + 96, m->disk_size);
	memcpy(out + 104, m->nonce, VFT_NONCE_SIZE);
	return VFT_HELLO_SIZE;
}

int vft_hello_decode(const void *p, size_t len, struct vft_hello *m, char *err, size_t errlen)
{
	const uint8_t *b = p;
	const uint8_t *nul;
	size_t n;

	if (want_len("HELLO", len, VFT_HELLO_SIZE, err, errlen) < 0)
		return -EBADMSG;
	memset(m, 0, sizeof(*m));
	m->session = get_le64(b);
	m->ram_size = get_le64(b + 8);
	m->config_hash = get_le64(b + 16);
	m->page_size = get_le32(b + 24);
	m->flags = get_le32(b + 28);
	if (m->page_size != VFT_PAGE_SIZE)
		return fail(err, errlen, "HELLO page size %u, only %u is supported", m->page_size,
		            VFT_PAGE_SIZE);
	if (m->ram_size == 0 || m->ram_size % VFT_PAGE_SIZE != 0 || m->ram_size > VFT_RAM_MAX)
		return fail(err, errlen,
		            "HELLO RAM size %llu is not a multiple of %u in 1 page..1 TiB",
		            (unsigned long long)m->ram_size, VFT_PAGE_SIZE);
	nul = memchr(b + 32, '\0', VFT_VM_NAME_MAX);
	if (nul == NULL)
		return fail(err, errlen, "HELLO VM name is not NUL-terminated within %u bytes",
		            VFT_VM_NAME_MAX);
	n = (size_t)(nul - (b + 32));
	if (n == 0)
		return fail(err, errlen, "HELLO VM name is empty");
	for (size_t i = 0; i < n; i++)
		if (!vm_name_char((char)b[32 + i]))
			return fail(err, errlen, "HELLO VM name has byte 0x%02x at %zu", b[32 + i],
			            i);
	memcpy(m->vm, b + 32, n);
	m->disk_size = get_le64(b + 96);
	if (m->disk_size % VFT_SECTOR != 0 || m->disk_size > VFT_DISK_MAX)
		return fail(err, errlen,
		            "HELLO disk size %llu is not a multiple of %u up to 16 TiB",
		            (unsigned long long)m->disk_size, VFT_SECTOR);
	if (m->flags & ~(VFT_HELLO_TMPL | VFT_HELLO_AUTH))
		return fail(err, errlen, "HELLO with unknown flags %#x", m->flags);
	memcpy(m->nonce, b + 104, VFT_NONCE_SIZE);
	{
		uint8_t any = 0;

		for (size_t i = 0; i < VFT_NONCE_SIZE; i++)
			any |= m->nonce[i];
		if ((m->flags & VFT_HELLO_AUTH) && any == 0)
			return fail(err, errlen,
			            "HELLO announces authentication with a zero nonce");
		if (!(m->flags & VFT_HELLO_AUTH) && any != 0)
			return fail(err, errlen, "HELLO carries a nonce without authentication");
	}
	return 0;
}

size_t vft_welcome_encode(uint8_t out[VFT_WELCOME_SIZE], const struct vft_welcome *m)
{
	put_le64(out, m->committed_epoch);
	put_le64(out + 8, m->committed_session);
	put_le32(out + 16, m->flags);
	put_le32(out + 20, 0);
	put_le64(out + 24, m->tmpl_id);
	put_le64(out + 32, m->tmpl_pages);
	put_le64(out + 40, m->tmpl_blocks);
	return VFT_WELCOME_SIZE;
}

int vft_welcome_decode(const void *p, size_t len, struct vft_welcome *m, char *err, size_t errlen)
{
	const uint8_t *b = p;

	if (want_len("WELCOME", len, VFT_WELCOME_SIZE, err, errlen) < 0)
		return -EBADMSG;
	m->committed_epoch = get_le64(b);
	m->committed_session = get_le64(b + 8);
	m->flags = get_le32(b + 16);
	m->reserved = 0;
	m->tmpl_id = get_le64(b + 24);
	m->tmpl_pages = get_le64(b + 32);
	m->tmpl_blocks = get_le64(b + 40);
	if (m->tmpl_pages > VFT_DISK_MAX / VFT_PAGE_SIZE ||
	    m->tmpl_blocks > VFT_DISK_MAX / VFT_PAGE_SIZE)
		return fail(err, errlen, "WELCOME offers a template of %llu pages and %llu blocks",
		            (unsigned long long)m->tmpl_pages, (unsigned long long)m->tmpl_blocks);
	if ((m->tmpl_pages == 0) != (m->tmpl_id == 0) || (m->tmpl_blocks && !m->tmpl_pages))
		return fail(err, errlen,
		            "WELCOME template id %016llx with %llu pages and %llu blocks",
		            (unsigned long long)m->tmpl_id, (unsigned long long)m->tmpl_pages,
		            (unsigned long long)m->tmpl_blocks);
	return 0;
}

size_t vft_epoch_begin_encode(uint8_t out[VFT_EPOCH_BEGIN_SIZE], const struct vft_epoch_begin *m)
{
	put_le32(out, m->kind);
	put_le32(out + 4, m->flags);
	put_le64(out + 8, m->tmpl_id);
	return VFT_EPOCH_BEGIN_SIZE;
}

int vft_epoch_begin_decode(const void *p, size_t len, struct vft_epoch_begin *m, char *err,
                           size_t errlen)
{
	const uint8_t *b = p;

	if (want_len("EPOCH_BEGIN", len, VFT_EPOCH_BEGIN_SIZE, err, errlen) < 0)
		return -EBADMSG;
	m->kind = get_le32(b);
	m->flags = get_le32(b + 4);
	m->tmpl_id = get_le64(b + 8);
	if (m->kind != VFT_EPOCH_INCR && m->kind != VFT_EPOCH_FULL)
		return fail(err, errlen, "EPOCH_BEGIN kind %u is neither INCR (0) nor FULL (1)",
		            m->kind);
	if ((m->flags & ~(VFT_BEGIN_TMPL_RAM | VFT_BEGIN_TMPL_DISK)) != 0 ||
	    (m->flags == VFT_BEGIN_TMPL_DISK) || (m->flags != 0) != (m->tmpl_id != 0) ||
	    (m->flags != 0 && m->kind != VFT_EPOCH_FULL))
		return fail(err, errlen,
		            "EPOCH_BEGIN %s with template flags %#x and template id %016llx",
		            m->kind == VFT_EPOCH_FULL ? "FULL" : "INCR", m->flags,
		            (unsigned long long)m->tmpl_id);
	return 0;
}

size_t vft_tmpl_encode_head(uint8_t out[16], uint32_t what, uint32_t count, uint64_t first)
{
	put_le32(out, what);
	put_le32(out + 4, count);
	put_le64(out + 8, first);
	return 16;
}

int vft_tmpl_decode(const void *p, size_t len, struct vft_tmpl_frame *m, char *err, size_t errlen)
{
	const uint8_t *b = p;

	clear_err(err, errlen);
	if (len < 16)
		return fail(err, errlen, "TMPL payload of %zu bytes", len);
	m->what = get_le32(b);
	m->count = get_le32(b + 4);
	m->first = get_le64(b + 8);
	m->hashes = b + 16;
	if (m->what != VFT_TMPL_PAGES && m->what != VFT_TMPL_BLOCKS)
		return fail(err, errlen, "TMPL of kind %u", m->what);
	if (m->count < 1 || m->count > VFT_TMPL_BATCH || len != 16 + (size_t)m->count * 8)
		return fail(err, errlen, "TMPL of %u hashes in %zu bytes", m->count, len);
	if (m->first > VFT_DISK_MAX / VFT_PAGE_SIZE)
		return fail(err, errlen, "TMPL starting at index %llu",
		            (unsigned long long)m->first);
	return 0;
}

size_t vft_pages_size(uint32_t count)
{
	return 8 + (size_t)count * (8 + VFT_PAGE_SIZE);
}

size_t vft_pages_encode_head(uint8_t *out, uint32_t count, const uint64_t *pfns)
{
	put_le32(out, count);
	put_le32(out + 4, 0);
	for (uint32_t i = 0; i < count; i++)
		put_le64(out + 8 + 8 * (size_t)i, pfns[i]);
	return 8 + 8 * (size_t)count;
}

int vft_pages_decode(const void *p, size_t len, uint64_t max_pfn, struct vft_pages *m, char *err,
                     size_t errlen)
{
	const uint8_t *b = p;
	uint32_t count;
	uint64_t prev = 0;

	clear_err(err, errlen);
	if (len < 8)
		return fail(err, errlen, "PAGES payload of %zu bytes is shorter than its prefix",
		            len);
	count = get_le32(b);
	if (count < 1 || count > VFT_BATCH_PAGES)
		return fail(err, errlen, "PAGES count %u outside 1..%u", count, VFT_BATCH_PAGES);
	if (len != vft_pages_size(count))
		return fail(err, errlen, "PAGES payload of %zu bytes, %u pages need %zu", len,
		            count, vft_pages_size(count));
	m->count = count;
	m->pfns_raw = b + 8;
	m->data = b + 8 + 8 * (size_t)count;
	for (uint32_t i = 0; i < count; i++) {
		uint64_t pfn = vft_pages_pfn(m, i);

		if (pfn >= max_pfn)
			return fail(err, errlen, "PAGES pfn %llu at %u beyond the RAM (%llu pages)",
			            (unsigned long long)pfn, i, (unsigned long long)max_pfn);
		if (i > 0 && pfn <= prev)
			return fail(err, errlen, "PAGES pfn %llu at %u does not follow %llu",
			            (unsigned long long)pfn, i, (unsigned long long)prev);
		prev = pfn;
	}
	return 0;
}

uint64_t vft_pages_pfn(const struct vft_pages *m, uint32_t i)
{
	return get_le64(m->pfns_raw + 8 * (size_t)i);
}

size_t vft_epoch_end_encode(uint8_t out[VFT_EPOCH_END_SIZE], const struct vft_epoch_end *m)
{
	put_le64(out, m->n_pages);
	put_le64(out + 8, m->devstate_len);
	put_le32(out + 16, m->n_frames);
	put_le32(out + 20, 0);
	put_le64(out + 24, m->n_events);
	put_le64(out + 32, m->disk_bytes);
	return VFT_EPOCH_END_SIZE;
}

int vft_epoch_end_decode(const void *p, size_t len, struct vft_epoch_end *m, char *err,
                         size_t errlen)
{
	const uint8_t *b = p;

	if (want_len("EPOCH_END", len, VFT_EPOCH_END_SIZE, err, errlen) < 0)
		return -EBADMSG;
	m->n_pages = get_le64(b);
	m->devstate_len = get_le64(b + 8);
	m->n_frames = get_le32(b + 16);
	m->reserved = 0;
	m->n_events = get_le64(b + 24);
	m->disk_bytes = get_le64(b + 32);
	return 0;
}

int vft_disk_decode(const void *p, size_t len, uint64_t disk_size, struct vft_disk *m, char *err,
                    size_t errlen)
{
	const uint8_t *b = p;

	clear_err(err, errlen);
	if (len < 8 + VFT_SECTOR || len > 8 + VFT_DISK_CHUNK || (len - 8) % VFT_SECTOR != 0)
		return fail(err, errlen, "DISK payload of %zu bytes", len);
	m->offset = get_le64(b);
	m->data = b + 8;
	m->len = (uint32_t)(len - 8);
	if (m->offset % VFT_SECTOR != 0 || m->offset > disk_size || disk_size - m->offset < m->len)
		return fail(err, errlen,
		            "DISK %u bytes at %llu: not whole sectors of a %llu-byte disk", m->len,
		            (unsigned long long)m->offset, (unsigned long long)disk_size);
	return 0;
}

/* ---- event log ------------------------------------------------------------------------ */

const char *vft_ev_kind_name(unsigned kind)
{
	static const char *const names[VFT_EV_COUNT] = {
	        [VFT_EV_DISK_WRITE] = "disk-write",
	        [VFT_EV_DISK_FLUSH] = "disk-flush",
	        [VFT_EV_NET_IN] = "net-in",
	        [VFT_EV_SERIAL_IN] = "serial-in",
	};

	if (kind >= VFT_EV_COUNT || names[kind] == NULL)
		return "?";
	return names[kind];
}

void vft_event_encode_head(uint8_t out[VFT_EV_HDR], const struct vft_event *ev)
{
	put_le64(out, ev->seq);
	put_le16(out + 8, ev->kind);
	put_le16(out + 10, ev->flags);
	put_le32(out + 12, ev->len);
	put_le64(out + 16, ev->arg);
	put_le64(out + 24, ev->t_ns);
}

static void event_read_head(const uint8_t *b, struct vft_event *ev)
{
	ev->seq = get_le64(b);
	ev->kind = get_le16(b + 8);
	ev->flags = get_le16(b + 10);
	ev->len = get_le32(b + 12);
	ev->arg = get_le64(b + 16);
	ev->t_ns = get_le64(b + 24);
	ev->data = b + VFT_EV_HDR;
}

static int event_check(const struct vft_event *ev, uint64_t disk_size, char *err, size_t errlen)
{
	const char *name = vft_ev_kind_name(ev->kind);

	switch (ev->kind) {
	case VFT_EV_DISK_WRITE:
		if (ev->len == 0 || ev->len > VFT_EV_DATA_MAX || ev->len % VFT_SECTOR != 0 ||
		    ev->arg % VFT_SECTOR != 0 || ev->arg > disk_size ||
		    disk_size - ev->arg < ev->len)
			return fail(
			        err, errlen,
			        "event %llu: %s of %u bytes at %llu: not 1..%u whole sectors of "
			        "a %llu-byte disk",
			        (unsigned long long)ev->seq, name, ev->len,
			        (unsigned long long)ev->arg, VFT_EV_DATA_MAX,
			        (unsigned long long)disk_size);
		if (ev->flags & ~VFT_EVF_FUA)
			return fail(err, errlen, "event %llu: %s with unknown flags 0x%x",
			            (unsigned long long)ev->seq, name, ev->flags);
		return 0;
	case VFT_EV_DISK_FLUSH:
		if (ev->len != 0 || ev->arg != 0 || ev->flags != 0 || disk_size == 0)
			return fail(err, errlen, "event %llu: %s with data, flags or no disk",
			            (unsigned long long)ev->seq, name);
		return 0;
	case VFT_EV_NET_IN:
	case VFT_EV_SERIAL_IN: {
		uint32_t lo = ev->kind == VFT_EV_NET_IN ? 14 : 1;
		uint32_t hi = ev->kind == VFT_EV_NET_IN ? VFT_EV_NET_MAX : VFT_EV_SERIAL_MAX;

		if (ev->len < lo || ev->len > hi || ev->arg != 0 || ev->flags != 0)
			return fail(err, errlen,
			            "event %llu: %s of %u bytes (%u..%u) or with an "
			            "argument",
			            (unsigned long long)ev->seq, name, ev->len, lo, hi);
		return 0;
	}
	default:
		return fail(err, errlen, "event %llu: unknown kind %u", (unsigned long long)ev->seq,
		            ev->kind);
	}
}

int vft_events_decode(const void *p, size_t len, uint64_t disk_size, uint64_t first_seq,
                      uint32_t *count, uint64_t *next_seq, char *err, size_t errlen)
{
	const uint8_t *b = p;
	uint64_t want = first_seq;
	uint32_t n;
	size_t pos = 8;

	clear_err(err, errlen);
	if (len < 8 + VFT_EV_HDR)
		return fail(err, errlen, "EVENTS payload of %zu bytes", len);
	n = get_le32(b);
	if (n == 0)
		return fail(err, errlen, "EVENTS with no record");
	for (uint32_t i = 0; i < n; i++) {
		struct vft_event ev;

		if (len - pos < VFT_EV_HDR)
			return fail(err, errlen, "EVENTS record %u of %u is truncated", i + 1, n);
		event_read_head(b + pos, &ev);
		if (ev.len > len - pos - VFT_EV_HDR)
			return fail(err, errlen, "event %llu: %u data bytes, %zu left in the frame",
			            (unsigned long long)ev.seq, ev.len, len - pos - VFT_EV_HDR);
		if (want == 0 && ev.seq == 0)
			return fail(err, errlen, "event seq 0 is reserved");
		if (want != 0 && ev.seq != want)
			return fail(err, errlen, "event %llu where %llu was due",
			            (unsigned long long)ev.seq, (unsigned long long)want);
		if (event_check(&ev, disk_size, err, errlen) < 0)
			return -EBADMSG;
		if (ev.seq == UINT64_MAX)
			return fail(err, errlen, "event seq overflow");
		want = ev.seq + 1;
		pos += VFT_EV_HDR + ev.len;
	}
	if (pos != len)
		return fail(err, errlen, "EVENTS: %zu bytes after record %u", len - pos, n);
	*count = n;
	*next_seq = want;
	return 0;
}

int vft_events_next(const uint8_t *p, size_t len, size_t *pos, struct vft_event *ev)
{
	if (*pos < 8)
		*pos = 8;
	if (*pos >= len || len - *pos < VFT_EV_HDR)
		return 0;
	event_read_head(p + *pos, ev);
	if (ev->len > len - *pos - VFT_EV_HDR)
		return 0;
	*pos += VFT_EV_HDR + ev->len;
	return 1;
}

size_t vft_auth_msg_encode(uint8_t out[VFT_AUTH_SIZE], const struct vft_auth_msg *m)
{
	memcpy(out, m->nonce, VFT_NONCE_SIZE);
	memcpy(out + VFT_NONCE_SIZE, m->proof, sizeof(m->proof));
	return VFT_AUTH_SIZE;
}

int vft_auth_msg_decode(const void *p, size_t len, struct vft_auth_msg *m, char *err, size_t errlen)
{
	const uint8_t *b = p;
	uint8_t any = 0;

	if (want_len("AUTH", len, VFT_AUTH_SIZE, err, errlen) < 0)
		return -EBADMSG;
	memcpy(m->nonce, b, VFT_NONCE_SIZE);
	memcpy(m->proof, b + VFT_NONCE_SIZE, sizeof(m->proof));
	for (size_t i = 0; i < VFT_NONCE_SIZE; i++)
		any |= m->nonce[i];
	if (any == 0)
		return fail(err, errlen, "AUTH with a zero nonce");
	return 0;
}

size_t vft_ack_encode(uint8_t out[VFT_ACK_SIZE], const struct vft_ack *m)
{
	put_le64(out, m->commit_us);
	return VFT_ACK_SIZE;
}

int vft_ack_decode(const void *p, size_t len, struct vft_ack *m, char *err, size_t errlen)
{
	if (want_len("ACK", len, VFT_ACK_SIZE, err, errlen) < 0)
		return -EBADMSG;
	m->commit_us = get_le64(p);
	return 0;
}

size_t vft_bye_encode(uint8_t out[VFT_BYE_SIZE], uint32_t reason)
{
	put_le32(out, reason);
	return VFT_BYE_SIZE;
}

int vft_bye_decode(const void *p, size_t len, uint32_t *reason, char *err, size_t errlen)
{
	if (want_len("BYE", len, VFT_BYE_SIZE, err, errlen) < 0)
		return -EBADMSG;
	*reason = get_le32(p);
	return 0;
}

/* ---- the backup's sequencing rules ---------------------------------------------------- */

void vft_rx_init(struct vft_rx *rx)
{
	memset(rx, 0, sizeof(*rx));
}

void vft_rx_auth_done(struct vft_rx *rx)
{
	if (rx->auth_seen)
		rx->authed = true;
}

static int rx_begin(struct vft_rx *rx, const struct vft_hdr *h, const void *payload,
                    struct vft_rx_frame *out, char *err, size_t errlen)
{
	if (rx->open)
		return fail(err, errlen, "EPOCH_BEGIN %llu while epoch %llu is open",
		            (unsigned long long)h->epoch, (unsigned long long)rx->open_epoch);
	if (vft_epoch_begin_decode(payload, h->length, &out->begin, err, errlen) < 0)
		return -EBADMSG;
	/* last_epoch 0 = nothing begun yet, since every epoch number is >= 1 */
	if (rx->last_epoch == 0) {
		if (out->begin.kind != VFT_EPOCH_FULL)
			return fail(
			        err, errlen,
			        "first epoch %llu of the connection is incremental, must be full",
			        (unsigned long long)h->epoch);
		if (h->epoch == 0)
			return fail(err, errlen, "epoch number 0 is reserved");
	} else {
		if (out->begin.kind != VFT_EPOCH_INCR)
			return fail(err, errlen,
			            "full epoch %llu after epoch %llu on the same connection",
			            (unsigned long long)h->epoch,
			            (unsigned long long)rx->last_epoch);
		if (rx->last_epoch == UINT64_MAX || h->epoch != rx->last_epoch + 1)
			return fail(err, errlen, "epoch %llu after epoch %llu, expected %llu",
			            (unsigned long long)h->epoch,
			            (unsigned long long)rx->last_epoch,
			            (unsigned long long)rx->last_epoch + 1);
	}
	if (out->begin.flags != 0 &&
	    (rx->tmpl_id == 0 || out->begin.tmpl_id != rx->tmpl_id ||
	     ((out->begin.flags & VFT_BEGIN_TMPL_DISK) && !rx->tmpl_blocks)))
		return fail(err, errlen,
		            "epoch %llu built on template %016llx (flags %#x), the backup offered "
		            "%016llx%s",
		            (unsigned long long)h->epoch, (unsigned long long)out->begin.tmpl_id,
		            out->begin.flags, (unsigned long long)rx->tmpl_id,
		            rx->tmpl_blocks ? " with a disk base" : "");
	rx->open = true;
	rx->open_kind = out->begin.kind;
	rx->open_epoch = h->epoch;
	rx->last_epoch = h->epoch;
	rx->n_pages = 0;
	rx->devstate_len = 0;
	rx->n_frames = 0;
	rx->n_events = 0;
	rx->disk_bytes = 0;
	rx->events_seen = false;
	out->action = VFT_RX_BEGIN;
	return 0;
}

/* PAGES, DEVSTATE and EPOCH_END belong to the open epoch */
static int rx_in_epoch(const struct vft_rx *rx, const struct vft_hdr *h, char *err, size_t errlen)
{
	const char *name = vft_ftype_name(h->type);

	if (!rx->open)
		return fail(err, errlen, "%s for epoch %llu outside an epoch", name,
		            (unsigned long long)h->epoch);
	if (h->epoch != rx->open_epoch)
		return fail(err, errlen, "%s for epoch %llu while epoch %llu is open", name,
		            (unsigned long long)h->epoch, (unsigned long long)rx->open_epoch);
	if (h->type != VFT_F_EPOCH_END && rx->n_frames == UINT32_MAX)
		return fail(err, errlen, "epoch %llu has too many frames",
		            (unsigned long long)h->epoch);
	return 0;
}

static int rx_end(struct vft_rx *rx, const struct vft_hdr *h, const void *payload,
                  struct vft_rx_frame *out, char *err, size_t errlen)
{
	const struct vft_epoch_end *e = &out->end;

	if (vft_epoch_end_decode(payload, h->length, &out->end, err, errlen) < 0)
		return -EBADMSG;
	if (e->n_pages != rx->n_pages || e->devstate_len != rx->devstate_len ||
	    e->n_frames != rx->n_frames || e->n_events != rx->n_events ||
	    e->disk_bytes != rx->disk_bytes)
		return fail(err, errlen,
		            "EPOCH_END %llu announces %llu pages, %llu device-state bytes, %llu "
		            "events, %llu disk bytes in %u frames; received %llu, %llu, %llu, "
		            "%llu in %u",
		            (unsigned long long)h->epoch, (unsigned long long)e->n_pages,
		            (unsigned long long)e->devstate_len, (unsigned long long)e->n_events,
		            (unsigned long long)e->disk_bytes, e->n_frames,
		            (unsigned long long)rx->n_pages, (unsigned long long)rx->devstate_len,
		            (unsigned long long)rx->n_events, (unsigned long long)rx->disk_bytes,
		            rx->n_frames);
	/* a commit without device state could not be resumed from: the
	 * backup's devices would not match its RAM */
	if (rx->devstate_len == 0)
		return fail(err, errlen, "epoch %llu carries no device state",
		            (unsigned long long)h->epoch);
	rx->open = false;
	out->action = VFT_RX_END;
	return 0;
}

int vft_rx_step(struct vft_rx *rx, const struct vft_hdr *h, const void *payload,
                struct vft_rx_frame *out, char *err, size_t errlen)
{
	struct vft_rx_frame scratch;
	const char *name = vft_ftype_name(h->type);

	if (out == NULL)
		out = &scratch;
	memset(out, 0, sizeof(*out));
	clear_err(err, errlen);
	if (h->seq != rx->next_seq)
		return fail(err, errlen, "%s with seq %u, expected %u", name, h->seq, rx->next_seq);
	rx->next_seq++;

	/* an authenticated link: HELLO, then the primary's AUTH, nothing else
	 * until its proof was checked */
	if (rx->auth_required && !rx->authed) {
		if (rx->auth_seen)
			return fail(err, errlen, "%s after an AUTH whose proof was not accepted",
			            name);
		if (rx->hello_seen && h->type != VFT_F_AUTH)
			return fail(err, errlen, "%s before authentication", name);
	}
	if (!rx->hello_seen && h->type != VFT_F_HELLO && rx->auth_required)
		return fail(err, errlen, "%s before HELLO", name);

	switch (h->type) {
	case VFT_F_AUTH:
		if (!rx->hello_seen)
			return fail(err, errlen, "AUTH before HELLO");
		if (!rx->auth_required)
			return fail(err, errlen, "AUTH on a link without authentication");
		if (rx->auth_seen)
			return fail(err, errlen, "second AUTH on the connection");
		if (h->epoch != 0)
			return fail(err, errlen, "AUTH with epoch %llu, must be 0",
			            (unsigned long long)h->epoch);
		{
			struct vft_auth_msg m;

			if (vft_auth_msg_decode(payload, h->length, &m, err, errlen) < 0)
				return -EBADMSG;
			if (memcmp(m.nonce, rx->hello.nonce, VFT_NONCE_SIZE) != 0)
				return fail(err, errlen,
				            "AUTH nonce is not the one its HELLO announced");
		}
		rx->auth_seen = true;
		out->auth = payload;
		out->action = VFT_RX_AUTH;
		return 0;
	case VFT_F_HELLO:
	case VFT_F_PING:
	case VFT_F_BYE:
		if (h->epoch != 0)
			return fail(err, errlen, "%s with epoch %llu, must be 0", name,
			            (unsigned long long)h->epoch);
		break;
	case VFT_F_WELCOME:
	case VFT_F_ACK:
	case VFT_F_TMPL:
		return fail(err, errlen, "%s goes from the backup to the primary", name);
	case VFT_F_EPOCH_BEGIN:
	case VFT_F_PAGES:
	case VFT_F_DEVSTATE:
	case VFT_F_DISK:
	case VFT_F_EVENTS:
	case VFT_F_EPOCH_END:
		if (!rx->hello_seen)
			return fail(err, errlen, "%s before HELLO", name);
		break;
	default:
		return fail(err, errlen, "unknown frame type %u", h->type);
	}

	switch (h->type) {
	case VFT_F_HELLO:
		if (rx->hello_seen)
			return fail(err, errlen, "second HELLO on the connection");
		if (vft_hello_decode(payload, h->length, &rx->hello, err, errlen) < 0)
			return -EBADMSG;
		if (rx->auth_required && !(rx->hello.flags & VFT_HELLO_AUTH))
			return fail(err, errlen,
			            "the primary does not authenticate; this backup requires it "
			            "(vmft.authenticate)");
		if (!rx->auth_required && (rx->hello.flags & VFT_HELLO_AUTH))
			return fail(err, errlen,
			            "the primary authenticates; this backup has vmft.authenticate: "
			            "no");
		rx->hello_seen = true;
		rx->max_pfn = rx->hello.ram_size / VFT_PAGE_SIZE;
		out->action = VFT_RX_HELLO;
		return 0;
	case VFT_F_PING:
		if (h->length != 0)
			return fail(err, errlen, "PING with %u payload bytes", h->length);
		out->action = VFT_RX_NONE;
		return 0;
	case VFT_F_BYE:
		if (vft_bye_decode(payload, h->length, &out->bye_reason, err, errlen) < 0)
			return -EBADMSG;
		out->action = VFT_RX_BYE;
		return 0;
	case VFT_F_EPOCH_BEGIN:
		return rx_begin(rx, h, payload, out, err, errlen);
	case VFT_F_PAGES:
		if (rx_in_epoch(rx, h, err, errlen) < 0 ||
		    vft_pages_decode(payload, h->length, rx->max_pfn, &out->pages, err, errlen) < 0)
			return -EBADMSG;
		if (rx->events_seen)
			return fail(err, errlen, "PAGES after EVENTS in epoch %llu",
			            (unsigned long long)h->epoch);
		rx->n_pages += out->pages.count;
		rx->n_frames++;
		out->action = VFT_RX_PAGES;
		return 0;
	case VFT_F_DEVSTATE:
		if (rx_in_epoch(rx, h, err, errlen) < 0)
			return -EBADMSG;
		if (h->length < 1 || h->length > VFT_DEVSTATE_CHUNK)
			return fail(err, errlen, "DEVSTATE length %u outside 1..%u", h->length,
			            VFT_DEVSTATE_CHUNK);
		out->dev = payload;
		out->dev_len = h->length;
		rx->devstate_len += h->length;
		rx->n_frames++;
		out->action = VFT_RX_DEVSTATE;
		return 0;
	case VFT_F_DISK:
		if (rx_in_epoch(rx, h, err, errlen) < 0 ||
		    vft_disk_decode(payload, h->length, rx->hello.disk_size, &out->disk, err,
		                    errlen) < 0)
			return -EBADMSG;
		if (rx->open_kind != VFT_EPOCH_FULL)
			return fail(err, errlen, "DISK in incremental epoch %llu",
			            (unsigned long long)h->epoch);
		if (rx->events_seen)
			return fail(err, errlen, "DISK after EVENTS in epoch %llu",
			            (unsigned long long)h->epoch);
		rx->disk_bytes += out->disk.len;
		rx->n_frames++;
		out->action = VFT_RX_DISK;
		return 0;
	case VFT_F_EVENTS:
		if (rx_in_epoch(rx, h, err, errlen) < 0 ||
		    vft_events_decode(payload, h->length, rx->hello.disk_size, rx->next_ev_seq,
		                      &out->n_events, &rx->next_ev_seq, err, errlen) < 0)
			return -EBADMSG;
		out->events = payload;
		out->events_len = h->length;
		rx->events_seen = true;
		rx->n_events += out->n_events;
		rx->n_frames++;
		out->action = VFT_RX_EVENTS;
		return 0;
	default: /* VFT_F_EPOCH_END, the only type left */
		if (rx_in_epoch(rx, h, err, errlen) < 0)
			return -EBADMSG;
		return rx_end(rx, h, payload, out, err, errlen);
	}
}
