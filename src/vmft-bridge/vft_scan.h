/*
 * vmft page scan: finds the guest RAM pages that changed since the last scan
 * by hashing every 4 KiB page (XXH3-64) in parallel worker threads and
 * comparing with the hash remembered for the page; changed pages are copied
 * to a staging area. There is no dirty-page tracking usable from outside
 * QEMU on stock kernels here (no soft-dirty on a shared file mapping the
 * guest writes through KVM), so a scan reads all of RAM: its cost is RAM size
 * divided by the scan bandwidth, the bound the epoch pause is measured
 * against. A hash collision (2^-64 per changed page) would miss a change;
 * the design accepts that risk (see DESIGN.md section 5).
 */
#ifndef VFT_SCAN_H
#define VFT_SCAN_H

#include <stddef.h>
#include <stdint.h>

struct vft_scan;

struct vft_scan_result {
	uint64_t n_pages;    /* changed pages */
	const uint64_t *pfn; /* n_pages page frame numbers, increasing */
	const uint8_t *data; /* n_pages * 4096 bytes, same order */
	uint64_t scan_ns;    /* wall time of the scan (hash + copy) */
};

/* ram: the guest RAM mapping (size bytes, a multiple of 4096), read-only use.
 * threads: worker threads (1..64); they persist between scans. Every page
 * starts as "unknown", so the first scan reports every page. 0 or -errno. */
int vft_scan_init(struct vft_scan **out, const void *ram, uint64_t size, unsigned threads);
void vft_scan_fini(struct vft_scan *s);

/* Scans all of RAM (the guest must be paused for a consistent result). The
 * result stays valid until the next call of any vft_scan_ function but
 * vft_scan_npages. 0 or -errno (-ENOMEM: staging could not grow). */
int vft_scan_run(struct vft_scan *s, struct vft_scan_result *res);

/* Live copy while the guest runs (full sync): copies pages [first, first+count)
 * into the staging area and remembers the hash of the copy (not of RAM, which
 * may change meanwhile), so the next vft_scan_run reports any page whose
 * content differs from what was copied. The result is valid until the next
 * call. 0 or -errno. */
int vft_scan_copy_range(struct vft_scan *s, uint64_t first, uint64_t count,
                        struct vft_scan_result *res);

/* Live copy against a base (a template's page hashes, indexed by pfn):
 * like vft_scan_copy_range, but only the pages whose hash differs from
 * base[pfn] are copied and reported; the others are remembered with the
 * base's hash (the backup holds the base's content for them). NULL base:
 * vft_scan_copy_range. */
int vft_scan_copy_range_diff(struct vft_scan *s, uint64_t first, uint64_t count,
                             const uint64_t *base, struct vft_scan_result *res);

/* Double buffering: the next scan or copy writes its result into the other
 * of two buffers, so the result of the last one stays valid (and
 * unmodified) until the call after the next flip, e.g. while it is being
 * sent, or while the kernel still sends it zero-copy. 0 or -ENOMEM (the
 * second buffer could not be made: nothing changed). */
int vft_scan_flip(struct vft_scan *s);

/* Forgets every hash: the next scan reports every page (new backup). */
void vft_scan_reset(struct vft_scan *s);

uint64_t vft_scan_npages(const struct vft_scan *s);

#endif
