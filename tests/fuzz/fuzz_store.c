/*
 * libFuzzer target: the backup store's own files as vft_store_open reads
 * them back when a backup engine starts again (src/vmft-bridge/vft_store.c):
 * the committed epoch's state file and a complete redo of the next epoch,
 * left by a crash at any moment (or damaged). The input is
 *   u16 (little-endian) length of the state file, the state file, the redo
 * (no redo when nothing is left). They are written to a scratch store of a
 * 16-page VM with a disk, beside a RAM file and a disk of the sizes the
 * state names (the RAM file of the wrong size when the state's reserved
 * word is odd), and the store is opened: state checks, redo verification
 * (page records, event records, device state, trailer), redo application.
 *
 * Checksums are walls mutation does not climb: a state or redo whose
 * checksum is all zero gets it computed here, so the fields it covers stay
 * under test; a non-zero one is verified as is.
 *
 * Checked: any content opens (damage means nothing committed, never an
 * error or a crash); what is committed is consistent (a generation has an
 * epoch, the RAM file and the state's device state; the disk of its size
 * when the state names one); the redo is gone after open; a second open
 * finds exactly the same committed epoch and device state (recovery is
 * idempotent and its result durable).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "fuzz_scratch.h"
#include "vft_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RAM_SIZE (16u * 4096u)
#define STATE_HDR 64u
#define REDO_HDR 64u
#define REDO_TRAILER 16u
#define DISK_MAX (16ull << 20) /* disks created up to this size (sparse) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vft_store_info info, again;
	struct vft_store *s;
	const void *dev;
	size_t dev_len, n_state, n_redo;
	uint8_t *st, *redo;
	char err[512], name[32];
	void *dev_copy = NULL;
	const char *dir, *disk_dir;

	if (size < 2)
		return 0;
	n_state = (size_t)data[0] | (size_t)data[1] << 8;
	if (n_state > size - 2)
		n_state = size - 2;
	n_redo = size - 2 - n_state;
	st = malloc(n_state + 1);
	redo = malloc(n_redo + 1);
	expect(st != NULL && redo != NULL);
	memcpy(st, data + 2, n_state);
	memcpy(redo, data + 2 + n_state, n_redo);
	dir = fz_dir(0, "store");
	disk_dir = fz_dir(1, "store-disk");

	/* the state, its RAM file and its disk */
	if (n_state >= STATE_HDR + 8) {
		uint64_t gen = le64(st + 16), disk = le64(st + 56);

		if (le64(st + n_state - 8) == 0)
			put_le64(st + n_state - 8, XXH3_64bits(st, n_state - 8));
		snprintf(name, sizeof(name), "ram.%llu", (unsigned long long)gen);
		fz_put_file(dir, name, NULL, 0, (st[12] & 1) ? RAM_SIZE / 2 : RAM_SIZE);
		if (disk > 0 && disk <= DISK_MAX && !(st[12] & 2)) {
			snprintf(name, sizeof(name), "disk.%llu", (unsigned long long)gen);
			fz_put_file(disk_dir, name, NULL, 0, disk);
		}
	}
	if (n_state > 0)
		fz_put_file(dir, "state", st, n_state, 0);
	/* the redo: its checksum covers the records, the events, the device
	 * state, then the header */
	if (n_redo >= REDO_HDR + REDO_TRAILER) {
		if (le64(redo + n_redo - REDO_TRAILER) == 0) {
			XXH3_state_t *h = XXH3_createState();

			expect(h != NULL && XXH3_64bits_reset(h) == XXH_OK);
			XXH3_64bits_update(h, redo + REDO_HDR, n_redo - REDO_HDR - REDO_TRAILER);
			XXH3_64bits_update(h, redo, REDO_HDR);
			put_le64(redo + n_redo - REDO_TRAILER, XXH3_64bits_digest(h));
			XXH3_freeState(h);
		}
	}
	if (n_redo > 0)
		fz_put_file(dir, "redo", redo, n_redo, 0);

	/* any content opens */
	err[0] = '\0';
	expect(vft_store_open(&s, dir, disk_dir, RAM_SIZE, err, sizeof(err)) == 0);
	vft_store_info(s, &info);
	dev = vft_store_devstate(s, &dev_len);
	expect(info.ram_size == RAM_SIZE && info.devstate_len == dev_len);
	expect(!fz_exists(dir, "redo") && !fz_exists(dir, "redo.tmp") &&
	       !fz_exists(dir, "state.tmp"));
	if (info.gen != 0) {
		struct stat sb;

		expect(info.epoch != 0 && fz_exists(dir, "state"));
		expect(stat(info.ram_path, &sb) == 0 && (uint64_t)sb.st_size == RAM_SIZE);
		expect(n_state >= STATE_HDR + 8 && memcmp(st, "VFTSTAT1", 8) == 0);
		expect(info.gen == le64(st + 16) && info.session == le64(st + 32));
		/* the state's epoch, or the one after it when the redo was applied */
		expect(info.epoch == le64(st + 24) || info.epoch == le64(st + 24) + 1);
		if (info.disk_size != 0)
			expect(info.disk_size == le64(st + 56) && info.disk_path[0] != '\0' &&
			       stat(info.disk_path, &sb) == 0 &&
			       (uint64_t)sb.st_size == info.disk_size);
		if (info.epoch == le64(st + 24))
			expect(dev_len == le64(st + 48) &&
			       (dev_len == 0 || memcmp(dev, st + STATE_HDR, dev_len) == 0));
	} else {
		expect(info.epoch == 0 && info.session == 0 && dev_len == 0 &&
		       !fz_exists(dir, "state"));
	}
	if (dev_len > 0) {
		dev_copy = malloc(dev_len);
		expect(dev_copy != NULL);
		memcpy(dev_copy, dev, dev_len);
	}
	vft_store_close(s);

	/* and again: the same, nothing left to recover */
	expect(vft_store_open(&s, dir, disk_dir, RAM_SIZE, err, sizeof(err)) == 0);
	vft_store_info(s, &again);
	dev = vft_store_devstate(s, &dev_len);
	expect(again.gen == info.gen && again.epoch == info.epoch &&
	       again.session == info.session && again.disk_size == info.disk_size &&
	       dev_len == info.devstate_len &&
	       (dev_len == 0 || memcmp(dev, dev_copy, dev_len) == 0));
	vft_store_close(s);
	free(dev_copy);
	free(st);
	free(redo);
	return 0;
}
