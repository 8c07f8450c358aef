/*
 * vmft backup store: the committed image of a protected VM on its backup
 * blade (RAM file + device state of one epoch) and the staging of the next
 * epoch, committed atomically.
 *
 * Directory layout (dir is e.g. /dev/shm/atca-vmft/NAME, tmpfs):
 *   ram.<gen>   the RAM image of generation <gen> (a full sync makes a new
 *               generation); QEMU maps this file when the backup is promoted
 *   state       {gen, epoch, session, ram_size, device state, checksum},
 *               replaced atomically (write state.tmp, fsync, rename, fsync dir)
 *   redo        a complete, checksummed record of one incremental epoch
 *               (pages + device state) that is being applied to ram.<gen>
 *   redo.tmp    the incremental epoch being staged (incomplete: ignored)
 *   ram.<gen+1> a full sync being staged (ignored until `state` names it)
 * and, when the store has a disk, in disk_dir (persistent storage):
 *   disk.<gen>  the guest's disk at the committed epoch (a full sync stages
 *               a new generation's disk beside it); an incremental epoch's
 *               disk writes are part of its redo and applied with its pages
 *
 * Invariant: after vft_store_open() the pair (ram.<gen>, state) (and
 * disk.<gen>) always holds the RAM, device state (and disk) of the same epoch, whatever moment the previous
 * process died at: an incremental commit's point of no return is the rename
 * of redo.tmp to redo (open re-applies a complete redo: applying is
 * idempotent), a full sync's is the rename of state.tmp to state naming the
 * new generation. Everything else left over is removed by open.
 */
#ifndef VFT_STORE_H
#define VFT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vft_store;

struct vft_store_info {
	uint64_t gen;      /* 0 = nothing committed yet */
	uint64_t epoch;    /* committed epoch (0 = none) */
	uint64_t session;  /* primary session the committed epoch came from */
	uint64_t ram_size; /* bytes */
	size_t devstate_len;
	char ram_path[4096];  /* dir/ram.<gen>, "" when gen is 0 */
	uint64_t disk_size;   /* bytes of the committed disk, 0 without */
	char disk_path[4096]; /* disk_dir/disk.<gen>, "" without */
};

/* Opens (creating dir and disk_dir, mode 0700, if needed) and recovers the
 * store for a VM of ram_size bytes (a multiple of 4096), with a disk when
 * disk_dir is not NULL or "". A committed image of another size is
 * discarded (logged), as if nothing were committed. Returns 0 or -errno with
 * a one-line reason in err. */
int vft_store_open(struct vft_store **out, const char *dir, const char *disk_dir, uint64_t ram_size,
                   char *err, size_t errlen);
void vft_store_close(struct vft_store *s);

void vft_store_info(const struct vft_store *s, struct vft_store_info *info);

/* The committed device state (borrowed; valid until the next commit/close). */
const void *vft_store_devstate(const struct vft_store *s, size_t *len);

/* Staging. begin discards any epoch still staged. A FULL epoch stages a new
 * generation (every page the primary has must arrive; pages never sent are
 * zero); an INCR epoch stages changes to the committed generation and needs
 * one (-ENOENT otherwise), the same session as the committed epoch
 * (-ESTALE otherwise) and the next epoch number (-EINVAL otherwise). Pages
 * are bounds-checked (-ERANGE). A FULL epoch of a store with a disk stages a
 * new disk of disk_size bytes (> 0, whole sectors); an INCR epoch must name
 * the committed disk's size. */
int vft_store_begin(struct vft_store *s, uint64_t session, uint64_t epoch, bool full,
                    uint64_t disk_size);
/* A FULL epoch on prepared files: ram_base (a file in dir, ram_size bytes)
 * becomes the new generation's RAM file and disk_base (in disk_dir,
 * disk_size bytes; NULL: a new empty disk) its disk, renamed into place
 * (what they hold is the epoch's starting content: a template's copy).
 * -EINVAL when a size differs (the file is then gone), -errno of the
 * rename (-ENOENT: no such base). */
int vft_store_begin_from(struct vft_store *s, uint64_t session, uint64_t epoch, bool full,
                         uint64_t disk_size, const char *ram_base, const char *disk_base);
int vft_store_put_pages(struct vft_store *s, uint32_t count, const uint64_t *pfns,
                        const void *pages);
/* FULL with a disk: disk content at offset (whole sectors, -ERANGE beyond
 * the disk); never after events. */
int vft_store_put_disk(struct vft_store *s, uint64_t offset, const void *data, size_t len);
/* A whole EVENTS payload (vft_proto.h), checked again against the disk:
 * FULL applies its disk writes to the new disk at once, in order; INCR
 * stages it in the redo, applied at commit after the pages. No page may be
 * put after events (-EINVAL). -EBADMSG for a malformed payload. */
int vft_store_put_events(struct vft_store *s, const void *payload, size_t len);
/* A FULL epoch being staged: the new generation's RAM file and disk (-1
 * without) as created by begin (sparse, all zero), for the caller to fill
 * with a template's copy before any page arrives (borrowed fds: the store
 * closes them). -EINVAL when no FULL epoch is staged. */
int vft_store_stage_fds(struct vft_store *s, int *ram_fd, int *disk_fd);
/* Appends a chunk of the epoch's device state. */
int vft_store_put_devstate(struct vft_store *s, const void *buf, size_t len);
/* Commits the staged epoch atomically (see above); on return the store's
 * committed epoch is the staged one. On error the previous committed epoch
 * is intact and the staging is discarded, except for an error past the
 * point of no return: the store is then only fit for close (-EIO) and the
 * next open completes the commit. */
int vft_store_commit(struct vft_store *s);
void vft_store_abort(struct vft_store *s);

/* Promotion: the guest now runs on the committed RAM file and disk, which
 * stop being an epoch (state and redo removed; files kept). Only close is
 * left. */
int vft_store_release(struct vft_store *s);
/* A primary cold-starts on this blade: whatever store dir holds is no
 * committed epoch any more (state and redo removed). */
int vft_store_forget(const char *dir);
/* The newest disk.<gen> in disk_dir: 0 with its path, -ENOENT if none. */
int vft_store_latest_disk(const char *disk_dir, char *path, size_t n, uint64_t *gen);
/* The first disk of a VM on this blade: image copied (zero blocks left as
 * holes) to disk_dir/disk.1 atomically. */
int vft_store_seed_disk(const char *disk_dir, const char *image, char *path, size_t n, char *err,
                        size_t errlen);

/* True when n bytes at p are all zero: a block both the seed and the full
 * sync leave as a hole. */
bool vft_store_all_zero(const void *p, size_t n);

/* Tests only: make the next commit stop (as if the process died) right after
 * step `point` (1 = staging written, 2 = redo renamed / new RAM synced,
 * 3 = pages applied, 4 = state renamed), returning -EINTR and leaving the
 * files exactly as a crash would. 0 disables. */
void vft_store_test_crash_after(struct vft_store *s, int point);

#endif
