/*
 * Failure injection for the unit tests, at link time: the test program is
 * linked with -Wl,--wrap=write,--wrap=fdatasync,... so that every call of
 * the code under test goes through the wrappers in fault_inject.c. Once
 * armed, a wrapper fails the calls on files whose path starts with a given
 * prefix (a test's own temp dir: nothing else is touched), the way a full
 * disk, a failing disk or an exhausted descriptor table would.
 */
#ifndef FAULT_INJECT_H
#define FAULT_INJECT_H

#include <stdbool.h>

enum fi_call { FI_WRITE, FI_FDATASYNC, FI_FSYNC, FI_RENAME, FI_OPEN, FI_FTRUNCATE, FI_COUNT };

/* Calls of c on paths starting with prefix: the first `after` pass, then
 * `times` fail with err (0 times: every one after). For FI_WRITE with
 * short_first, the first failing call writes half its bytes and returns
 * that count, as write(2) does when the disk fills in the middle. */
void fi_arm(enum fi_call c, const char *prefix, unsigned after, unsigned times, int err,
            bool short_first);
void fi_disarm(void);
/* How many calls of c failed since the last fi_arm of c. */
unsigned fi_failed(enum fi_call c);

#endif
