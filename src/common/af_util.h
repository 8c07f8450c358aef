/*
 * atca-ft common helpers: string, number and time handling used by every
 * module. All parsers return 0 or -errno and never accept partial input.
 */
#ifndef AF_UTIL_H
#define AF_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AF_UNUSED __attribute__((unused))
#define AF_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define AF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define AF_NS_PER_MS 1000000ULL
#define AF_NS_PER_S 1000000000ULL

/* Copies at most size-1 bytes and always terminates; returns strlen(src) so
 * callers can detect truncation (result >= size). */
size_t af_strlcpy(char *dst, const char *src, size_t size);

/* calloc() whose pages are resident from the start. For the fixed tables a
 * daemon allocates once (rings of events, queues, fault slots): calloc()
 * hands out untouched zero pages, which become resident one by one as a
 * ring first goes round, hours later, so the daemon's memory seemed to
 * grow for good (the soak's leak check saw it). Committed at start, its
 * footprint is flat from the first minute, and a shortage shows at start,
 * not in the middle of a recovery. NULL when out of memory. */
void *af_calloc_resident(size_t n, size_t size);

/* Decimal or 0x-prefixed hexadecimal; no sign, no trailing garbage. */
int af_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* yes/no, on/off, true/false, 1/0 (case-insensitive). */
int af_parse_bool(const char *s, bool *out);

/* "250" (milliseconds), "250ms", "2s", "1min", "1h". */
int af_parse_duration_ms(const char *s, uint64_t *out);

/* "4096", "64KiB", "1MiB" (also K/M/G and kB/MB/GB as powers of 1024). */
int af_parse_size(const char *s, uint64_t *out);

/* Formats a duration so that af_parse_duration_ms() reads it back. */
void af_format_duration_ms(uint64_t ms, char *buf, size_t len);
void af_format_size(uint64_t bytes, char *buf, size_t len);

/* CLOCK_MONOTONIC: every log line and every event carries it so a timeline
 * can be rebuilt across modules independent of wall-clock steps. */
uint64_t af_mono_ns(void);
double af_mono_s(void);

/* Name tables: index = enum value. Returns NULL / -EINVAL when unknown. */
const char *af_enum_name(const char *const *names, size_t n, int value);
int af_enum_parse(const char *const *names, size_t n, const char *s);

/* true if s is a non-empty identifier made of [A-Za-z0-9_.-], starting with
 * a letter or digit, at most max_len bytes. */
bool af_valid_name(const char *s, size_t max_len);

/* Group/user database lookups that cope with entries of any size.
 * Return 0, -ENOENT if there is no such entry, or -errno. */
#include <sys/types.h>
int af_group_lookup(const char *name, gid_t *gid);
/* The user's groups (primary included): *groups is malloc'd. */
int af_user_groups(uid_t uid, gid_t **groups, int *n_groups);

/* Overwrites a secret so it does not linger in freed memory. */
void af_wipe(void *p, size_t len);

/* File descriptors: *open_fds in use by this process (counted in
 * /proc/self/fd) and *limit, RLIMIT_NOFILE's soft limit. When not even the
 * count can be taken (EMFILE, ENFILE) *open_fds is *limit. 0 or -errno. */
int af_fd_usage(unsigned *open_fds, unsigned *limit);

#endif
