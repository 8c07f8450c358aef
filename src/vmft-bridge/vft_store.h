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
 *
 * Invariant: after vft_store_open() the pair (ram.<gen>, state) always holds
 * the RAM and device state of the same epoch, whatever moment the previous
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
	char ram_path[4096]; /* dir/ram.<gen>, "" when gen is 0 */
};

/* Opens (creating dir, mode 0700, if needed) and recovers the store for a VM
 * of ram_size bytes (a multiple of 4096). A committed image of another size is
 * discarded (logged), as if nothing were committed. Returns 0 or -errno with
 * a one-line reason in err. */
int vft_store_open(struct vft_store **out, const char *dir, uint64_t ram_size, char *err,
                   size_t errlen);
void vft_store_close(struct vft_store *s);

void vft_store_info(const struct vft_store *s, struct vft_store_info *info);

/* The committed device state (borrowed; valid until the next commit/close). */
const void *vft_store_devstate(const struct vft_store *s, size_t *len);

/* Staging. begin discards any epoch still staged. A FULL epoch stages a new
 * generation (every page the primary has must arrive; pages never sent are
 * zero); an INCR epoch stages changes to the committed generation and needs
 * one (-ENOENT otherwise), the same session as the committed epoch
 * (-ESTALE otherwise) and the next epoch number (-EINVAL otherwise). Pages
 * are bounds-checked (-ERANGE). */
int vft_store_begin(struct vft_store *s, uint64_t session, uint64_t epoch, bool full);
int vft_store_put_pages(struct vft_store *s, uint32_t count, const uint64_t *pfns,
                        const void *pages);
/* Appends a chunk of the epoch's device state. */
int vft_store_put_devstate(struct vft_store *s, const void *buf, size_t len);
/* Commits the staged epoch atomically (see above); on return the store's
 * committed epoch is the staged one. On error the previous committed epoch
 * is intact and the staging is discarded, except for an error past the
 * point of no return: the store is then only fit for close (-EIO) and the
 * next open completes the commit. */
int vft_store_commit(struct vft_store *s);
void vft_store_abort(struct vft_store *s);

/* Tests only: make the next commit stop (as if the process died) right after
 * step `point` (1 = staging written, 2 = redo renamed / new RAM synced,
 * 3 = pages applied, 4 = state renamed), returning -EINTR and leaving the
 * files exactly as a crash would. 0 disables. */
void vft_store_test_crash_after(struct vft_store *s, int point);

#endif
