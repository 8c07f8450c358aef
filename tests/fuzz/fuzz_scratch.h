/*
 * What the fuzz targets that write their input into files share: a trap
 * on a broken expectation, little-endian words, and scratch directories in
 * /dev/shm (one per process, emptied before each input, removed at exit).
 * Header-only: each target is one translation unit with the sources it
 * tests.
 */
#ifndef ATCA_FUZZ_SCRATCH_H
#define ATCA_FUZZ_SCRATCH_H

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* libFuzzer reports the trap with the input that caused it */
static inline void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

#define FZ_MAX_DIRS 2

struct fz_scratch {
	char dir[FZ_MAX_DIRS][64];
	unsigned n;
};

static struct fz_scratch fz_scratch;

/* Removes the files of d (not subdirectories: the targets make none). */
static inline void fz_empty(const char *d)
{
	DIR *dd = opendir(d);
	struct dirent *e;
	char p[384];

	if (dd == NULL)
		return;
	while ((e = readdir(dd)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		unlink(p);
	}
	closedir(dd);
}

static inline void fz_cleanup(void)
{
	for (unsigned i = 0; i < fz_scratch.n; i++) {
		fz_empty(fz_scratch.dir[i]);
		rmdir(fz_scratch.dir[i]);
	}
}

/* The scratch directory /dev/shm/fuzz-NAME-PID, created on first use and
 * emptied at every call. */
static inline const char *fz_dir(unsigned i, const char *name)
{
	expect(i < FZ_MAX_DIRS);
	if (fz_scratch.dir[i][0] == '\0') {
		snprintf(fz_scratch.dir[i], sizeof(fz_scratch.dir[i]), "/dev/shm/fuzz-%s-%d", name,
		         (int)getpid());
		if (fz_scratch.n == 0)
			atexit(fz_cleanup);
		if (i >= fz_scratch.n)
			fz_scratch.n = i + 1;
	}
	fz_empty(fz_scratch.dir[i]);
	mkdir(fz_scratch.dir[i], 0700);
	return fz_scratch.dir[i];
}

/* Writes d/name: len bytes of p, then truncated (extended) to trunc bytes
 * when trunc is not 0. */
static inline void fz_put_file(const char *d, const char *name, const uint8_t *p, size_t len,
                               uint64_t trunc)
{
	char path[160];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", d, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	expect(fd >= 0);
	if (len > 0)
		expect(write(fd, p, len) == (ssize_t)len);
	if (trunc > 0)
		expect(ftruncate(fd, (off_t)trunc) == 0);
	close(fd);
}

static inline bool fz_exists(const char *d, const char *name)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", d, name);
	return access(path, F_OK) == 0;
}

#endif
