/*
 * libFuzzer target: template meta files (src/vmft-bridge/vft_tmpl.c), read
 * from the template directory when an engine starts (vft_tmpl_open) and by
 * atca-ftctl template list (vft_tmpl_scan_dir). The input is a meta file;
 * it is written as meta.0 (or meta.1 when the first byte of its reserved
 * word is odd) of a scratch directory beside a sparse RAM image and disk
 * base of the sizes it names (when they are small enough to be real), and
 * the directory is listed and opened as a tool and as an engine would.
 *
 * A checksum and a content id are walls mutation does not climb: a meta
 * whose trailing checksum is all zero gets it computed here, and one whose
 * id is zero gets the content id of its own tables (when its length fits
 * its sizes), so the fields after them stay under test; a non-zero value is
 * verified as is, which keeps the verification itself under test.
 *
 * Checked: the slot is listed as valid or as damaged, never both, never
 * lost; what is accepted has the magic and version, a non-zero seq, a RAM
 * size of whole pages, the length its sizes make, its checksum and its
 * content id, and the header fields as written (the source terminated);
 * opened for exactly that machine it is the active template and its pinned
 * tables are the bytes of the file (the disk base offered only when it is
 * there and of its size); opened for another machine it is not used.
 */
#include "config.h"

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
#include "vft_tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 96u
#define SUM 8u
#define UNIT 4096u
#define REAL_MAX (64ull << 20) /* images created up to this size (sparse) */

static uint64_t blocks_of(uint64_t disk)
{
	return disk / UNIT + (disk % UNIT != 0);
}

/* the tables as they are in the file: page hashes, then block hashes */
static uint64_t *tables(const uint8_t *m, uint64_t n)
{
	uint64_t *t = malloc((n ? n : 1) * 8);

	expect(t != NULL);
	for (uint64_t i = 0; i < n; i++)
		t[i] = le64(m + HDR + 8 * i);
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vft_tmpl_info out[2], info;
	struct vft_tmpl_pin pin;
	struct vft_tmpl *t;
	uint64_t ram = 0, disk = 0, np = 0, nb = 0, *tab = NULL;
	bool fits = false, valid;
	unsigned n = 0, damaged = 0, slot;
	char why[1024], err[256], name[16];
	uint8_t *m;
	int rc;
	const char *dir = fz_dir(0, "tmpl");

	m = malloc(size ? size : 1);
	expect(m != NULL);
	memcpy(m, data, size);
	slot = size > 12 ? (m[12] & 1) : 0;
	if (size >= HDR + SUM) {
		ram = le64(m + 32);
		disk = le64(m + 40);
		np = ram / UNIT;
		nb = blocks_of(disk);
		/* no overflow: np and nb are at most 2^52 each */
		fits = size == HDR + 8 * (np + nb) + SUM;
		if (fits && le64(m + 24) == 0) {
			tab = tables(m, np + nb);
			put_le64(m + 24, vft_tmpl_content_id(ram, disk, tab, tab + np));
		}
		if (le64(m + size - SUM) == 0)
			put_le64(m + size - SUM, XXH3_64bits(m, size - SUM));
	}
	snprintf(name, sizeof(name), "meta.%u", slot);
	fz_put_file(dir, name, m, size, 0);
	if (ram > 0 && ram <= REAL_MAX) {
		snprintf(name, sizeof(name), "ram.%u", slot);
		fz_put_file(dir, name, NULL, 0, ram);
	}
	if (disk > 0 && disk <= REAL_MAX && !(m[13] & 1)) {
		snprintf(name, sizeof(name), "disk.%u", slot);
		fz_put_file(dir, name, NULL, 0, disk);
	}

	/* listed: valid or damaged */
	rc = vft_tmpl_scan_dir(dir, out, &n, &damaged);
	expect(rc == 0);
	expect(n + damaged == 1);
	valid = n == 1;
	if (valid) {
		const struct vft_tmpl_info *i = &out[0];

		expect(fits && memcmp(m, "VFTTMPL1", 8) == 0 && le64(m + 8) % (1ull << 32) == 1);
		expect(le64(m + size - SUM) == XXH3_64bits(m, size - SUM));
		expect(i->slot == slot && i->seq == le64(m + 16) && i->seq != 0 &&
		       i->id == le64(m + 24) && i->ram_size == ram && ram % UNIT == 0 && ram > 0 &&
		       i->disk_size == disk && i->config_hash == le64(m + 48) &&
		       i->created == le64(m + 56) && i->source_epoch == le64(m + 64) &&
		       i->pages_written == le64(m + 72));
		expect(memchr(i->source, '\0', sizeof(i->source)) != NULL &&
		       strncmp(i->source, (const char *)m + 80, strlen(i->source)) == 0);
		if (tab == NULL)
			tab = tables(m, np + nb);
		expect(vft_tmpl_content_id(ram, disk, tab, tab + np) == i->id);
		/* its RAM image is there */
		expect(ram <= REAL_MAX);
	}

	/* opened for exactly its machine: active, with the file's tables */
	if (size >= HDR + SUM) {
		rc = vft_tmpl_open(&t, dir, ram % UNIT == 0 ? ram : 0, disk, le64(m + 48), why,
		                   sizeof(why), err, sizeof(err));
		expect(memchr(why, '\0', sizeof(why)) != NULL);
		if (rc == 0) {
			rc = vft_tmpl_pin(t, &pin);
			expect(valid ? rc == 0 : rc == -ENOENT);
			expect(valid || why[0] != '\0' || ram % UNIT != 0 || ram == 0 ||
			       le64(m + 48) == 0);
			if (rc == 0) {
				expect(pin.n_pages == np &&
				       memcmp(pin.page_hashes, tab, np * 8) == 0);
				if (pin.n_blocks > 0)
					expect(pin.n_blocks == nb &&
					       memcmp(pin.block_hashes, tab + np, nb * 8) == 0 &&
					       disk <= REAL_MAX && !(m[13] & 1));
				else
					expect(pin.block_hashes == NULL &&
					       (disk == 0 || disk > REAL_MAX || (m[13] & 1)));
				expect(vft_tmpl_info(t, &info) == 0 && info.id == pin.info.id);
				vft_tmpl_unpin(t, &pin);
			}
			vft_tmpl_close(t);
		} else {
			expect(err[0] != '\0');
		}
		/* for another machine: not used */
		if (valid) {
			rc = vft_tmpl_open(&t, dir, ram + UNIT, disk, le64(m + 48), why,
			                   sizeof(why), err, sizeof(err));
			expect(rc == 0 && vft_tmpl_info(t, &info) == -ENOENT && why[0] != '\0');
			vft_tmpl_close(t);
		}
	}
	free(tab);
	free(m);
	return 0;
}
