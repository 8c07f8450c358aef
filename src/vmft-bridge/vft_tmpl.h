/*
 * vmft templates (FVMM, shared/seeds/001): a RAM image and a disk base of
 * one protected VM that a blade keeps on persistent storage, with the hash
 * of every 4 KiB page and every 4 KiB disk block. A full sync to a backup
 * that has a template sends only the pages and blocks whose hash differs
 * from the template's; the backup builds its new image from a copy of the
 * template. A template is a dictionary, not a checkpoint: its content needs
 * no consistency (it may be copied from a running guest), only to match
 * its own hash tables, which are what identifies it (the content id).
 *
 * Directory (vmft.template_dir/NAME, mode 0700), two slots so that a
 * refresh never touches the template in use:
 *   ram.0  ram.1    RAM images (ram_size bytes)
 *   disk.0 disk.1   disk bases (disk_size bytes, all-zero blocks are holes)
 *   meta.0 meta.1   header + page hashes + block hashes + checksum
 * The active template is the slot with a valid meta and the highest seq. A
 * refresh removes the other slot's meta (and syncs the directory), rewrites
 * that slot's pages and blocks (only those whose hash differs from what the
 * slot held, when its old meta was valid), syncs them, then writes its meta
 * atomically (meta.N.tmp, fsync, rename, fsync dir): a crash at any moment
 * leaves the active template intact, and a slot without meta is ignored.
 *
 * meta (every integer little-endian):
 *    0  "VFTTMPL1"
 *    8  u32 version (1), u32 zero
 *   16  u64 seq, u64 id, u64 ram_size, u64 disk_size, u64 config_hash,
 *       u64 created (realtime seconds), u64 source_epoch, u64 pages_written,
 *   80  char source[16] (NUL-padded: "primary", "backup", ...)
 *   96  n_pages = ram_size / 4096 u64 page hashes (XXH3-64 of each page)
 *    .  n_blocks = ceil(disk_size / 4096) u64 block hashes (a short last block
 *       is hashed over the bytes it has; 0 when disk_size is 0)
 *    .  u64 XXH3-64 of every byte before it
 * id = vft_tmpl_content_id(ram_size, disk_size, page hashes, block hashes).
 *
 * Threads: one refresh at a time (any thread) and any number of users of
 * the active template (pin/unpin, verify, copy) on other threads; the
 * struct's mutex guards the slots. Nothing here logs: errors come back as
 * -errno with a one-line reason.
 */
#ifndef VFT_TMPL_H
#define VFT_TMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VFT_TMPL_PAGE 4096u  /* RAM page hashed */
#define VFT_TMPL_BLOCK 4096u /* disk block hashed */

struct vft_tmpl;

struct vft_tmpl_info {
	unsigned slot;          /* 0 or 1 */
	uint64_t id;            /* content id */
	uint64_t seq;           /* 1 for the first template, +1 per refresh */
	uint64_t ram_size;      /* bytes */
	uint64_t disk_size;     /* bytes, 0 = no disk base */
	uint64_t config_hash;   /* machine definition it was made for */
	uint64_t created;       /* realtime seconds */
	uint64_t source_epoch;  /* the epoch it was copied at (0 = unknown) */
	uint64_t pages_written; /* pages + blocks the refresh that made it wrote */
	char source[16];        /* "primary", "backup", ... */
	char ram_path[4200];
	char disk_path[4200];
};

/* The content id: XXH3-64 over (ram_size, disk_size, the page hashes, the
 * block hashes), all little-endian. Both the template's owner and the
 * primary that receives its tables compute it the same way. */
uint64_t vft_tmpl_content_id(uint64_t ram_size, uint64_t disk_size, const uint64_t *page_hashes,
                             const uint64_t *block_hashes);

/* The hash of one page or block, as stored in the tables. */
uint64_t vft_tmpl_hash(const void *p, size_t len);

/* Opens the template directory of one VM (creating it 0700 if needed):
 * reads both metas and keeps the valid one with the highest seq as active.
 * A meta that is damaged (checksum, size, magic) or made for another
 * machine (ram_size, config_hash) is not used; *why (if not NULL) gets a
 * one-line reason for each slot refused, for the caller to log. A template
 * whose disk_size differs from disk_size is kept, but its disk base is not
 * offered (vft_tmpl_pin reports no blocks). ram_size 0 and config_hash 0
 * accept whatever the metas say (tools: atca-ftctl template verify); then
 * disk_size 0 too keeps the disk base usable. Returns 0 (with or without an
 * active template) or -errno with a reason in err. */
int vft_tmpl_open(struct vft_tmpl **out, const char *dir, uint64_t ram_size, uint64_t disk_size,
                  uint64_t config_hash, char *why, size_t whylen, char *err, size_t errlen);
void vft_tmpl_close(struct vft_tmpl *t);

/* The active template: 0 with info filled, -ENOENT when there is none. */
int vft_tmpl_info(struct vft_tmpl *t, struct vft_tmpl_info *info);

/* Pins the active template for a sync: a refresh will not rewrite its slot
 * until unpinned. 0 with the info and the tables (valid while pinned; the
 * block table is NULL with *n_blocks 0 when the disk base is not usable),
 * -ENOENT when there is no active template. */
struct vft_tmpl_pin {
	struct vft_tmpl_info info;
	const uint64_t *page_hashes;
	uint64_t n_pages;
	const uint64_t *block_hashes;
	uint64_t n_blocks;
};
int vft_tmpl_pin(struct vft_tmpl *t, struct vft_tmpl_pin *pin);
void vft_tmpl_unpin(struct vft_tmpl *t, struct vft_tmpl_pin *pin);

/* Copies the pinned template's RAM image into dst_fd (from offset 0,
 * ram_size bytes) and, if dst_disk_fd >= 0 and the pin has blocks, its
 * disk base into dst_disk_fd (all-zero blocks left as holes: the
 * destination must be a fresh sparse file of disk_size bytes), checking
 * every page and block against its hash on the way. -EBADMSG when one
 * differs (err says which and how many): the template is damaged; the
 * caller then drops it (vft_tmpl_invalidate) and falls back to a full
 * sync. */
int vft_tmpl_copy(struct vft_tmpl *t, const struct vft_tmpl_pin *pin, int dst_fd, int dst_disk_fd,
                  char *err, size_t errlen);

/* Like vft_tmpl_copy, but every checked chunk (1 MiB of RAM image, then of
 * disk base if with_disk, at aligned offsets; the disk's last chunk may be
 * short) goes to sink instead of a file: the caller keeps what it still
 * needs (a sync overlaps this copy with the primary's pages). A damaged
 * chunk stops the copy before it reaches the sink (-EBADMSG, err says
 * which unit); a sink error stops it and is returned; *cancel set stops it
 * (-ECANCELED). */
typedef int (*vft_tmpl_sink)(void *arg, bool disk, uint64_t off, const uint8_t *buf, size_t len);
int vft_tmpl_copy_to(struct vft_tmpl *t, const struct vft_tmpl_pin *pin, bool with_disk,
                     vft_tmpl_sink sink, void *arg, const volatile bool *cancel, char *err,
                     size_t errlen);

/* Checks the active template's files against its tables without copying:
 * 0, -ENOENT (none) or -EBADMSG (with the first bad page or block and the
 * count in err). */
int vft_tmpl_verify(struct vft_tmpl *t, char *err, size_t errlen);

/* Drops the slot of a damaged template: its meta is removed (durably), the
 * other slot, if valid, becomes active. */
int vft_tmpl_invalidate(struct vft_tmpl *t, unsigned slot);

/* Refresh: makes a new template from a source into the inactive slot and
 * makes it active. The RAM comes from memory (ram, e.g. the primary's
 * mapping of the running guest) or from a file (ram_fd, e.g. the backup's
 * committed image); the disk from disk_fd (-1: no disk base). Pages and
 * blocks are read, hashed and written one at a time: what is written is
 * exactly what was hashed, even if the source changes meanwhile. rate_bps
 * (0 = unlimited) bounds the bytes read per second so that a refresh does
 * not starve the guest; *cancel (if not NULL) set to true stops it
 * (-ECANCELED, the active template unchanged). -EBUSY when the slot to
 * write is pinned. On success *info describes the new active template. */
struct vft_tmpl_source {
	const uint8_t *ram; /* or NULL and ram_fd >= 0 */
	int ram_fd;
	int disk_fd;
	uint64_t epoch;     /* recorded as source_epoch */
	const char *source; /* recorded as source */
	uint64_t rate_bps;
	const volatile bool *cancel;
};
int vft_tmpl_refresh(struct vft_tmpl *t, const struct vft_tmpl_source *src,
                     struct vft_tmpl_info *info, char *err, size_t errlen);

/* Removes every template of the directory (metas first, durably, then the
 * images). The directory itself stays. */
int vft_tmpl_remove_all(struct vft_tmpl *t);

/* Reads a template directory without opening it for use (atca-ftctl
 * template list): up to 2 slots with a valid meta into out (any machine),
 * *n set; slots with a damaged meta are counted in *damaged. 0 or -errno
 * (-ENOENT: no directory). */
int vft_tmpl_scan_dir(const char *dir, struct vft_tmpl_info out[2], unsigned *n, unsigned *damaged);

#endif
