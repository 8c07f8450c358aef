/*
 * vmft replication protocol: the frames a primary engine sends to its
 * backup engine over TCP on the replication link, and the backup's answers.
 *
 * Every frame is a 48-byte header followed by `length` payload bytes. All
 * integers are little-endian on the wire.
 *
 *   0  u32 magic    0x31544656 ("VFT1" read as bytes)
 *   4  u16 version  VFT_PROTO_VERSION
 *   6  u16 type     enum vft_ftype
 *   8  u32 length   payload bytes (bounded per type, see vft_hdr_decode)
 *  12  u32 seq      frame number on this connection: 0, 1, 2, ... per direction
 *  16  u64 epoch    the epoch the frame belongs to (0 for HELLO/WELCOME/PING/BYE)
 *  24  u64 check    XXH3-64 of header bytes 0..23 followed by the payload
 *  32  16   tag      on an authenticated link (vft_auth.h): the frame's MAC over
 *                    header bytes 0..31 and the payload with the session key of
 *                    its direction; zero on HELLO, the backup's AUTH and on a
 *                    link without authentication
 *
 * The checksum covers every batch (a PAGES frame is one batch), so a frame
 * that was corrupted, truncated or spliced is never applied: the receiver
 * drops the connection and the primary re-establishes it (full resync).
 * This file is pure code (no I/O): the codec and the receiver's sequencing
 * rules, so both are unit-tested and fuzzed as they run in the engine.
 */
#ifndef VFT_PROTO_H
#define VFT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VFT_MAGIC 0x31544656u
#define VFT_PROTO_VERSION 4
#define VFT_HDR_SIZE 48
#define VFT_TAG_OFF 32
#define VFT_TAG_SIZE 16
#define VFT_NONCE_SIZE 32
#define VFT_PAGE_SIZE 4096u
#define VFT_PAGE_SHIFT 12
#define VFT_VM_NAME_MAX 64
/* pages per PAGES frame: 1 MiB of page data plus their frame numbers */
#define VFT_BATCH_PAGES 256u
/* device-state bytes per DEVSTATE frame */
#define VFT_DEVSTATE_CHUNK (1u << 20)
#define VFT_MAX_PAYLOAD (8u + VFT_BATCH_PAGES * (8u + VFT_PAGE_SIZE))
/* the guest's disk: sectors, the largest disk a HELLO may announce, disk
 * bytes per DISK frame, and data bytes per event record (a larger guest
 * write is logged as several records, in order) */
#define VFT_SECTOR 512u
#define VFT_DISK_MAX (1ull << 44)
#define VFT_DISK_CHUNK (1u << 20)
#define VFT_EV_DATA_MAX (512u << 10)
#define VFT_EV_HDR 32u

enum vft_ftype {
	VFT_F_HELLO = 1,   /* P->B: who I am, RAM size */
	VFT_F_WELCOME,     /* B->P: what I have committed */
	VFT_F_EPOCH_BEGIN, /* P->B: an epoch starts (incremental or full sync) */
	VFT_F_PAGES,       /* P->B: a batch of pages of the open epoch */
	VFT_F_DEVSTATE,    /* P->B: a chunk of the epoch's device state */
	VFT_F_EPOCH_END,   /* P->B: totals; the backup commits then acks */
	VFT_F_ACK,         /* B->P: epoch committed */
	VFT_F_PING,        /* either way: heartbeat, empty payload */
	VFT_F_BYE,         /* either way: orderly close, with a reason */
	VFT_F_DISK,        /* P->B: disk content of a full sync (offset + sectors) */
	VFT_F_EVENTS,      /* P->B: the epoch's event log (disk writes, inputs), in order */
	VFT_F_TMPL,        /* B->P: the hashes of the template the backup offers */
	VFT_F_AUTH,        /* either way: nonce and proof of the shared key (vft_auth.h) */
	VFT_F_COUNT
};

const char *vft_ftype_name(unsigned type); /* "HELLO", ...; "?" if unknown */

struct vft_hdr {
	uint16_t version;
	uint16_t type;
	uint32_t length;
	uint32_t seq;
	uint64_t epoch;
	uint64_t check;
};

/* Fills out[] with the header of a frame whose payload is the concatenation
 * of iov[0..iovcnt-1] (iovcnt 0 = empty payload); computes length and check;
 * the tag is left zero (vft_mac_seal writes it). */
void vft_hdr_encodev(uint8_t out[VFT_HDR_SIZE], uint16_t type, uint32_t seq, uint64_t epoch,
                     const struct iovec *iov, int iovcnt);
void vft_hdr_encode(uint8_t out[VFT_HDR_SIZE], uint16_t type, uint32_t seq, uint64_t epoch,
                    const void *payload, uint32_t len);

/* Parses and checks a header: magic, version (-EPROTONOSUPPORT for another
 * version), known type, length within the type's bounds (exact for fixed-size
 * payloads, 1..VFT_DEVSTATE_CHUNK for DEVSTATE, the PAGES formula for PAGES).
 * Returns 0, -EBADMSG (garbage) or -EPROTONOSUPPORT; err gets a one-line
 * reason. */
int vft_hdr_decode(const uint8_t in[VFT_HDR_SIZE], struct vft_hdr *h, char *err, size_t errlen);

/* Verifies the checksum of a decoded frame: 0 or -EBADMSG. */
int vft_frame_verify(const uint8_t raw[VFT_HDR_SIZE], const struct vft_hdr *h, const void *payload);

/* ---- payloads ---- (encode returns the payload length; decode returns 0 or
 * -EBADMSG with a reason in err) */

#define VFT_HELLO_SIZE 136
struct vft_hello {
	uint64_t session;              /* random per primary incarnation */
	uint64_t ram_size;             /* bytes, multiple of VFT_PAGE_SIZE, > 0 */
	uint64_t config_hash;          /* hash of the machine definition: both sides must agree */
	uint32_t page_size;            /* VFT_PAGE_SIZE */
	uint32_t flags;                /* VFT_HELLO_* */
	char vm[VFT_VM_NAME_MAX];      /* NUL-terminated, NUL-padded on the wire */
	uint64_t disk_size;            /* bytes, multiple of VFT_SECTOR, 0 = no disk */
	uint8_t nonce[VFT_NONCE_SIZE]; /* VFT_HELLO_AUTH: the primary's challenge (not all zero) */
};
#define VFT_HELLO_TMPL 1u /* the primary can build a full sync on a template */
#define VFT_HELLO_AUTH 2u /* the primary authenticates (vft_auth.h) */
size_t vft_hello_encode(uint8_t out[VFT_HELLO_SIZE], const struct vft_hello *m);
int vft_hello_decode(const void *p, size_t len, struct vft_hello *m, char *err, size_t errlen);

#define VFT_WELCOME_SIZE 48
struct vft_welcome {
	uint64_t committed_epoch; /* 0 = nothing committed */
	uint64_t committed_session;
	uint32_t flags;
	uint32_t reserved;
	/* the template the backup offers (vft_tmpl.h): its content id and
	 * the hashes that follow in TMPL frames (0 pages = no template; 0
	 * blocks = no disk base) */
	uint64_t tmpl_id;
	uint64_t tmpl_pages;
	uint64_t tmpl_blocks;
};
size_t vft_welcome_encode(uint8_t out[VFT_WELCOME_SIZE], const struct vft_welcome *m);
int vft_welcome_decode(const void *p, size_t len, struct vft_welcome *m, char *err, size_t errlen);

enum vft_epoch_kind { VFT_EPOCH_INCR = 0, VFT_EPOCH_FULL = 1 };
/* a FULL epoch built on the backup's template: pages (and disk blocks)
 * the primary does not send are the template's */
#define VFT_BEGIN_TMPL_RAM 1u
#define VFT_BEGIN_TMPL_DISK 2u
#define VFT_EPOCH_BEGIN_SIZE 16
struct vft_epoch_begin {
	uint32_t kind;    /* enum vft_epoch_kind */
	uint32_t flags;   /* VFT_BEGIN_TMPL_*: FULL only, DISK only with RAM */
	uint64_t tmpl_id; /* the template's content id, 0 without */
};
size_t vft_epoch_begin_encode(uint8_t out[VFT_EPOCH_BEGIN_SIZE], const struct vft_epoch_begin *m);
int vft_epoch_begin_decode(const void *p, size_t len, struct vft_epoch_begin *m, char *err,
                           size_t errlen);

/* PAGES payload: u32 count, u32 reserved, count x u64 pfn (strictly
 * increasing), count x VFT_PAGE_SIZE bytes of page data in the same order. */
size_t vft_pages_size(uint32_t count);
/* Writes the 8-byte prefix + pfn list into out (8 + 8*count bytes); the page
 * data is sent as a separate iovec. */
size_t vft_pages_encode_head(uint8_t *out, uint32_t count, const uint64_t *pfns);
struct vft_pages {
	uint32_t count;
	const uint8_t *pfns_raw; /* count little-endian u64; read with vft_pages_pfn */
	const uint8_t *data;     /* count pages */
};
/* Checks 1 <= count <= VFT_BATCH_PAGES, the exact length, pfns strictly
 * increasing and below max_pfn. */
int vft_pages_decode(const void *p, size_t len, uint64_t max_pfn, struct vft_pages *m, char *err,
                     size_t errlen);
uint64_t vft_pages_pfn(const struct vft_pages *m, uint32_t i);

#define VFT_EPOCH_END_SIZE 40
struct vft_epoch_end {
	uint64_t n_pages;      /* PAGES entries sent in this epoch */
	uint64_t devstate_len; /* DEVSTATE bytes sent in this epoch */
	uint32_t n_frames;     /* PAGES + DEVSTATE + DISK + EVENTS frames in this epoch */
	uint32_t reserved;
	uint64_t n_events;   /* event records sent in this epoch */
	uint64_t disk_bytes; /* DISK data bytes sent in this epoch (full sync) */
};
size_t vft_epoch_end_encode(uint8_t out[VFT_EPOCH_END_SIZE], const struct vft_epoch_end *m);
int vft_epoch_end_decode(const void *p, size_t len, struct vft_epoch_end *m, char *err,
                         size_t errlen);

/* DISK payload: u64 byte offset, then the data; offset and length are
 * multiples of VFT_SECTOR, the length is 1 sector..VFT_DISK_CHUNK and the
 * range lies within the disk the HELLO announced. */
struct vft_disk {
	uint64_t offset;
	const uint8_t *data;
	uint32_t len;
};
int vft_disk_decode(const void *p, size_t len, uint64_t disk_size, struct vft_disk *m, char *err,
                    size_t errlen);

/* ---- the event log --------------------------------------------------------
 * What the primary's guest did or received during an epoch that RAM and
 * device state do not carry: its disk writes (the backup replays them on its
 * own copy of the disk at commit) and its non-deterministic inputs (frames
 * from the network, serial input), each with its place in one order.
 *
 * EVENTS payload: u32 count, u32 reserved, then count records of
 *    0  u64 seq    1, 2, 3, ... over a connection, no gap, no repeat
 *    8  u16 kind   enum vft_ev_kind
 *   10  u16 flags  VFT_EVF_*
 *   12  u32 len    data bytes that follow the record header
 *   16  u64 arg    DISK_WRITE: byte offset on the disk; else 0
 *   24  u64 t_ns   monotonic ns since the primary's session began
 *   32  data
 */
enum vft_ev_kind {
	VFT_EV_DISK_WRITE = 1, /* data written at arg (sectors) */
	VFT_EV_DISK_FLUSH,     /* the guest flushed its disk (no data) */
	VFT_EV_NET_IN,         /* an Ethernet frame delivered to the guest */
	VFT_EV_SERIAL_IN,      /* bytes delivered to the guest's serial port */
	VFT_EV_COUNT
};
#define VFT_EVF_FUA 1u /* DISK_WRITE: the guest asked for forced unit access */
#define VFT_EV_NET_MAX 65550u
#define VFT_EV_SERIAL_MAX 4096u
const char *vft_ev_kind_name(unsigned kind);

struct vft_event {
	uint64_t seq;
	uint16_t kind, flags;
	uint32_t len;
	uint64_t arg, t_ns;
	const uint8_t *data;
};
/* Writes a record header (VFT_EV_HDR bytes); the data follows it. */
void vft_event_encode_head(uint8_t out[VFT_EV_HDR], const struct vft_event *ev);
/* Checks a whole EVENTS payload: count >= 1, every record complete and of a
 * known kind with a length its kind allows (a DISK_WRITE of whole sectors
 * within disk_size), seqs consecutive from first_seq (0: from whatever the
 * first record says), no byte left over. *count and *next_seq (the seq the
 * next record must have) are set on success. */
int vft_events_decode(const void *p, size_t len, uint64_t disk_size, uint64_t first_seq,
                      uint32_t *count, uint64_t *next_seq, char *err, size_t errlen);
/* Iterates the records of a payload vft_events_decode accepted (or of a
 * store's copy of one): *pos starts at 8; 1 with *ev filled, 0 at the end. */
int vft_events_next(const uint8_t *p, size_t len, size_t *pos, struct vft_event *ev);

/* TMPL payload (B->P, right after WELCOME): u32 what (0 = page hashes,
 * 1 = disk block hashes), u32 count (1..VFT_TMPL_BATCH), u64 first index,
 * count x u64 hashes. The page hashes come first, then the block hashes,
 * each in index order without gap, as many as WELCOME announced. */
#define VFT_TMPL_BATCH 65536u
enum vft_tmpl_what { VFT_TMPL_PAGES = 0, VFT_TMPL_BLOCKS = 1 };
struct vft_tmpl_frame {
	uint32_t what, count;
	uint64_t first;
	const uint8_t *hashes; /* count little-endian u64 */
};
size_t vft_tmpl_encode_head(uint8_t out[16], uint32_t what, uint32_t count, uint64_t first);
int vft_tmpl_decode(const void *p, size_t len, struct vft_tmpl_frame *m, char *err, size_t errlen);

/* AUTH payload: the sender's nonce, then its proof (HMAC-SHA256). */
#define VFT_AUTH_SIZE 64
struct vft_auth_msg {
	uint8_t nonce[VFT_NONCE_SIZE];
	uint8_t proof[32];
};
size_t vft_auth_msg_encode(uint8_t out[VFT_AUTH_SIZE], const struct vft_auth_msg *m);
int vft_auth_msg_decode(const void *p, size_t len, struct vft_auth_msg *m, char *err,
                        size_t errlen);

#define VFT_ACK_SIZE 8
struct vft_ack {
	uint64_t commit_us; /* how long the backup took to commit */
};
size_t vft_ack_encode(uint8_t out[VFT_ACK_SIZE], const struct vft_ack *m);
int vft_ack_decode(const void *p, size_t len, struct vft_ack *m, char *err, size_t errlen);

#define VFT_BYE_SIZE 4
size_t vft_bye_encode(uint8_t out[VFT_BYE_SIZE], uint32_t reason);
int vft_bye_decode(const void *p, size_t len, uint32_t *reason, char *err, size_t errlen);

/* ---- the backup's sequencing rules ---------------------------------------
 * One per connection, fed every verified frame the primary sends, in order.
 * It enforces: seq = previous + 1 (starting at 0); HELLO first and once;
 * EPOCH_BEGIN only after HELLO and when no epoch is open; the first one on
 * a connection is FULL (epoch >= 1, any number: a new primary session counts
 * from its own start), every later one is INCR with epoch = last begun + 1
 * (a primary never resumes incrementally on a new connection: what it sent
 * but the backup did not commit is unknown, so it resyncs in full);
 * PAGES/DEVSTATE/DISK/EVENTS only inside an open epoch and with its epoch
 * number; a template (EPOCH_BEGIN flags) only in a FULL epoch and only
 * the one the backup offered; DISK only in a FULL epoch and before its EVENTS; PAGES never after
 * EVENTS in an epoch (the store appends the log after the pages); event seqs
 * continue across the epochs of a connection; EPOCH_END with the open
 * epoch's number and totals equal to what was received; every epoch carries
 * a DEVSTATE; PING anywhere; WELCOME/ACK/TMPL never (they go the other way).
 * With auth_required (set by the caller after vft_rx_init): the HELLO must
 * announce VFT_HELLO_AUTH with a nonce, the next frame must be an AUTH
 * (VFT_RX_AUTH: the caller checks the proof and calls vft_rx_auth_done) and
 * no other frame, not even a PING, is accepted before that; without it, a
 * HELLO with VFT_HELLO_AUTH and any AUTH frame are refused. On a violation
 * it returns -EBADMSG with a reason and the connection must be dropped. */
enum vft_rx_action {
	VFT_RX_NONE = 0, /* nothing to do (PING) */
	VFT_RX_HELLO,    /* answer with WELCOME */
	VFT_RX_BEGIN,    /* start staging epoch h->epoch (kind in begin) */
	VFT_RX_PAGES,    /* stage the pages */
	VFT_RX_DEVSTATE, /* stage the device-state chunk */
	VFT_RX_DISK,     /* stage disk content (full sync) */
	VFT_RX_EVENTS,   /* stage the event records */
	VFT_RX_END,      /* commit the epoch, then ACK it */
	VFT_RX_BYE,      /* peer closes */
	VFT_RX_AUTH,     /* check the primary's proof (auth), then vft_rx_auth_done */
};
struct vft_rx {
	uint32_t next_seq;
	bool hello_seen;
	bool open;
	uint32_t open_kind;
	uint64_t open_epoch;
	uint64_t last_epoch; /* last epoch begun */
	uint64_t n_pages, devstate_len;
	uint32_t n_frames;
	uint64_t n_events, disk_bytes;
	bool events_seen;     /* in the open epoch */
	uint64_t next_ev_seq; /* 0 = no event yet on this connection */
	uint64_t max_pfn;     /* from HELLO: ram_size / VFT_PAGE_SIZE */
	struct vft_hello hello;
	/* set by the caller when its WELCOME offered a template: a FULL
	 * epoch may then be built on it (and on its disk base if
	 * tmpl_blocks), never on another */
	uint64_t tmpl_id;
	bool tmpl_blocks;
	bool auth_required; /* set by the caller: the link is authenticated */
	bool auth_seen;     /* the primary's AUTH arrived */
	bool authed;        /* ... and its proof was good (vft_rx_auth_done) */
};
void vft_rx_init(struct vft_rx *rx);
void vft_rx_auth_done(struct vft_rx *rx);
/* Called with a header already accepted by vft_hdr_decode and
 * vft_frame_verify. Fills the decoded payload of the action (one of the
 * out-parameters, the others may be NULL for frames that cannot carry them). */
struct vft_rx_frame {
	enum vft_rx_action action;
	struct vft_epoch_begin begin;
	struct vft_pages pages;
	const uint8_t *dev;
	size_t dev_len;
	struct vft_disk disk;
	const uint8_t *events; /* the whole EVENTS payload */
	size_t events_len;
	uint32_t n_events;
	struct vft_epoch_end end;
	uint32_t bye_reason;
	const uint8_t *auth; /* the AUTH payload (VFT_AUTH_SIZE bytes) */
};
int vft_rx_step(struct vft_rx *rx, const struct vft_hdr *h, const void *payload,
                struct vft_rx_frame *out, char *err, size_t errlen);

#endif
