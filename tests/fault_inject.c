/*
 * Failure injection: see fault_inject.h. Test code only: the arming state
 * is global because the wrapped libc calls have no context argument.
 */
#include "config.h"

#include "fault_inject.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

ssize_t __real_write(int fd, const void *buf, size_t len);
int __real_fdatasync(int fd);
int __real_fsync(int fd);
int __real_rename(const char *from, const char *to);
int __real_open(const char *path, int flags, ...);
int __real_ftruncate(int fd, off_t len);

ssize_t __wrap_write(int fd, const void *buf, size_t len);
int __wrap_fdatasync(int fd);
int __wrap_fsync(int fd);
int __wrap_rename(const char *from, const char *to);
int __wrap_open(const char *path, int flags, ...);
int __wrap_ftruncate(int fd, off_t len);

struct fi_rule {
	bool armed, short_first, shorted;
	char prefix[256];
	unsigned after, times, failed;
	int err;
};

static struct fi_rule rules[FI_COUNT];

void fi_arm(enum fi_call c, const char *prefix, unsigned after, unsigned times, int err,
            bool short_first)
{
	struct fi_rule *r = &rules[c];

	memset(r, 0, sizeof(*r));
	snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
	r->after = after;
	r->times = times;
	r->err = err;
	r->short_first = short_first;
	r->armed = true;
}

void fi_disarm(void)
{
	for (int i = 0; i < FI_COUNT; i++)
		rules[i].armed = false;
}

unsigned fi_failed(enum fi_call c)
{
	return rules[c].failed;
}

static bool path_matches(const struct fi_rule *r, const char *path)
{
	return path != NULL && strncmp(path, r->prefix, strlen(r->prefix)) == 0;
}

static bool fd_matches(const struct fi_rule *r, int fd)
{
	char link[64], path[512];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	return path_matches(r, path);
}

/* Whether this call fails (errno is then set). */
static bool hit(enum fi_call c, int fd, const char *path)
{
	struct fi_rule *r = &rules[c];

	if (!r->armed || !(path ? path_matches(r, path) : fd_matches(r, fd)))
		return false;
	if (r->after > 0) {
		r->after--;
		return false;
	}
	if (r->times > 0 && r->failed >= r->times)
		return false;
	r->failed++;
	errno = r->err;
	return true;
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	struct fi_rule *r = &rules[FI_WRITE];
	int saved = errno;

	if (!hit(FI_WRITE, fd, NULL))
		return __real_write(fd, buf, len);
	if (r->short_first && !r->shorted && len > 1) {
		/* a short count is no error: errno is left alone */
		r->shorted = true;
		errno = saved;
		return __real_write(fd, buf, len / 2);
	}
	return -1;
}

int __wrap_fdatasync(int fd)
{
	return hit(FI_FDATASYNC, fd, NULL) ? -1 : __real_fdatasync(fd);
}

int __wrap_fsync(int fd)
{
	return hit(FI_FSYNC, fd, NULL) ? -1 : __real_fsync(fd);
}

int __wrap_rename(const char *from, const char *to)
{
	return hit(FI_RENAME, -1, from) ? -1 : __real_rename(from, to);
}

int __wrap_ftruncate(int fd, off_t len)
{
	return hit(FI_FTRUNCATE, fd, NULL) ? -1 : __real_ftruncate(fd, len);
}

int __wrap_open(const char *path, int flags, ...)
{
	mode_t mode = 0;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_list ap;

		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (hit(FI_OPEN, -1, path))
		return -1;
	return __real_open(path, flags, mode);
}
