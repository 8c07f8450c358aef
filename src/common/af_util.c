#include "config.h"

#include "af_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void *af_calloc_resident(size_t n, size_t size)
{
	volatile unsigned char *p = calloc(n, size);
	long page = sysconf(_SC_PAGESIZE);

	if (p == NULL)
		return NULL;
	if (page <= 0)
		page = 4096;
	/* calloc() checked n * size; a write (of 0, which calloc() promised
	 * anyway) makes each page private and resident */
	for (size_t off = 0; off < n * size; off += (size_t)page)
		p[off] = 0;
	if (n * size > 0)
		p[n * size - 1] = 0; /* the last page, which the stride may skip */
	return (void *)p;
}

size_t af_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

/* Shared digit reader: strtoull accepts signs, spaces and "0x" with no
 * digits, all of which must be errors in a config file. */
static int parse_digits(const char *s, const char **end, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;
	const char *p = s;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	if (!isxdigit((unsigned char)*p) || (base == 10 && !isdigit((unsigned char)*p)))
		return -EINVAL;
	for (; *p; p++) {
		unsigned d;

		if (isdigit((unsigned char)*p))
			d = (unsigned)(*p - '0');
		else if (base == 16 && isxdigit((unsigned char)*p))
			d = (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return -ERANGE;
		v = v * base + d;
	}
	*end = p;
	*out = v;
	return 0;
}

int af_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	if (s == NULL)
		return -EINVAL;
	rc = parse_digits(s, &end, &v);
	if (rc < 0)
		return rc;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int af_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "on", "true", "1"};
	static const char *const no[] = {"no", "off", "false", "0"};

	for (size_t i = 0; i < AF_ARRAY_SIZE(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

struct unit {
	const char *name;
	uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc;

	if (s == NULL)
		return -EINVAL;
	rc = parse_digits(s, &end, &v);
	if (rc < 0)
		return rc;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		return -EINVAL; /* hex with units is never what the user meant */
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(end, units[i].name) == 0) {
			if (units[i].mult != 0 && v > UINT64_MAX / units[i].mult)
				return -ERANGE;
			*out = v * units[i].mult;
			return 0;
		}
	}
	return -EINVAL;
}

int af_parse_duration_ms(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
	        {"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000},
	};
	return parse_with_units(s, units, AF_ARRAY_SIZE(units), out);
}

int af_parse_size(const char *s, uint64_t *out)
{
	static const struct unit units[] = {
	        {"", 1},
	        {"B", 1},
	        {"K", 1024},
	        {"KiB", 1024},
	        {"kB", 1024},
	        {"M", 1024 * 1024},
	        {"MiB", 1024 * 1024},
	        {"MB", 1024 * 1024},
	        {"G", 1024ULL * 1024 * 1024},
	        {"GiB", 1024ULL * 1024 * 1024},
	        {"GB", 1024ULL * 1024 * 1024},
	};
	return parse_with_units(s, units, AF_ARRAY_SIZE(units), out);
}

void af_format_duration_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%llumin", (unsigned long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void af_format_size(uint64_t bytes, char *buf, size_t len)
{
	if (bytes != 0 && bytes % (1024ULL * 1024 * 1024) == 0)
		snprintf(buf, len, "%lluGiB", (unsigned long long)(bytes >> 30));
	else if (bytes != 0 && bytes % (1024 * 1024) == 0)
		snprintf(buf, len, "%lluMiB", (unsigned long long)(bytes >> 20));
	else if (bytes != 0 && bytes % 1024 == 0)
		snprintf(buf, len, "%lluKiB", (unsigned long long)(bytes >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

uint64_t af_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * AF_NS_PER_S + (uint64_t)ts.tv_nsec;
}

double af_mono_s(void)
{
	return (double)af_mono_ns() / (double)AF_NS_PER_S;
}

const char *af_enum_name(const char *const *names, size_t n, int value)
{
	if (value < 0 || (size_t)value >= n)
		return NULL;
	return names[value];
}

int af_enum_parse(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++) {
		if (names[i] != NULL && strcmp(names[i], s) == 0)
			return (int)i;
	}
	return -EINVAL;
}

bool af_valid_name(const char *s, size_t max_len)
{
	size_t len = strlen(s);

	if (len == 0 || len > max_len || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '-' && c != '.')
			return false;
	}
	return true;
}

void af_wipe(void *p, size_t len)
{
	volatile unsigned char *v = p;

	while (len--)
		*v++ = 0;
}

/* getgrnam_r/getpwuid_r report ERANGE when an entry (a group with many
 * members) does not fit: grow the buffer instead of calling it missing. */
#define NSS_BUF_MAX (1024 * 1024)

int af_group_lookup(const char *name, gid_t *gid)
{
	size_t size = 4096;

	for (;;) {
		struct group gr, *res = NULL;
		char *buf = malloc(size);
		int rc;

		if (buf == NULL)
			return -ENOMEM;
		rc = getgrnam_r(name, &gr, buf, size, &res);
		if (rc == 0 && res != NULL)
			*gid = gr.gr_gid;
		free(buf);
		if (rc == ERANGE && size < NSS_BUF_MAX) {
			size *= 2;
			continue;
		}
		if (rc != 0)
			return -rc;
		return res != NULL ? 0 : -ENOENT;
	}
}

int af_user_groups(uid_t uid, gid_t **groups, int *n_groups)
{
	size_t size = 4096;
	char *buf = NULL;
	struct passwd pw, *res = NULL;
	gid_t *g = NULL;
	int n = 64, rc;

	for (;;) {
		buf = malloc(size);
		if (buf == NULL)
			return -ENOMEM;
		rc = getpwuid_r(uid, &pw, buf, size, &res);
		if (rc == ERANGE && size < NSS_BUF_MAX) {
			free(buf);
			size *= 2;
			continue;
		}
		break;
	}
	if (rc != 0 || res == NULL) {
		free(buf);
		return rc != 0 ? -rc : -ENOENT;
	}
	for (;;) {
		int want = n;
		gid_t *ng = realloc(g, sizeof(*g) * (size_t)want);

		if (ng == NULL) {
			free(g);
			free(buf);
			return -ENOMEM;
		}
		g = ng;
		if (getgrouplist(pw.pw_name, pw.pw_gid, g, &n) >= 0)
			break;
		if (n <= want) /* no growth reported: give up on the list */
			n = want * 2;
		if (n > 65536) {
			free(g);
			free(buf);
			return -E2BIG;
		}
	}
	free(buf);
	*groups = g;
	*n_groups = n;
	return 0;
}

int af_fd_usage(unsigned *open_fds, unsigned *limit)
{
	struct rlimit rl;
	struct dirent *e;
	unsigned n = 0;
	DIR *d;

	if (open_fds == NULL || limit == NULL)
		return -EINVAL;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	*limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > UINT32_MAX ? UINT32_MAX
	                                                                  : (unsigned)rl.rlim_cur;
	d = opendir("/proc/self/fd");
	if (d == NULL) {
		if (errno != EMFILE && errno != ENFILE)
			return -errno;
		*open_fds = *limit;
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] != '.')
			n++;
	}
	closedir(d);
	*open_fds = n > 0 ? n - 1 : 0; /* the directory's own descriptor */
	return 0;
}
