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

#include "vft_tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDR 96u
#define SUM 8u
#define UNIT 4096u
#define REAL_MAX (64ull << 20) /* images created up to this size (sparse) */

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t blocks_of(uint64_t disk)
{
	return disk / UNIT + (disk % UNIT != 0);
}

static char dir[64];

static void rm(const char *name)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
}

static void clean(void)
{
	static const char *const names[] = {"meta.0", "meta.1", "ram.0",      "ram.1",
	                                    "disk.0", "disk.1", "meta.0.tmp", "meta.1.tmp"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		rm(names[i]);
}

static void cleanup(void)
{
	clean();
	rmdir(dir);
}

static void put_file(const char *name, const uint8_t *p, size_t len, uint64_t trunc)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	expect(fd >= 0);
	if (len > 0)
		expect(write(fd, p, len) == (ssize_t)len);
	if (trunc > 0)
		expect(ftruncate(fd, (off_t)trunc) == 0);
	close(fd);
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

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/dev/shm/fuzz-tmpl-%d", (int)getpid());
		mkdir(dir, 0700);
		atexit(cleanup);
	}
	clean();
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
	put_file(name, m, size, 0);
	if (ram > 0 && ram <= REAL_MAX) {
		snprintf(name, sizeof(name), "ram.%u", slot);
		put_file(name, NULL, 0, ram);
	}
	if (disk > 0 && disk <= REAL_MAX && !(m[13] & 1)) {
		snprintf(name, sizeof(name), "disk.%u", slot);
		put_file(name, NULL, 0, disk);
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
