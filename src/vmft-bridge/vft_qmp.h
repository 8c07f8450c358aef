/*
 * vmft QMP client: the engine drives its guest's QEMU over the QMP unix
 * socket. Calls are synchronous with a deadline: the engine issues them while
 * the guest is paused (stop, migrate, cont), where waiting on the answer is
 * the critical path anyway, so a blocking client with timeouts is simpler and
 * faster than callbacks. Asynchronous events QEMU interleaves (STOP, RESUME,
 * SHUTDOWN, MIGRATION, ...) are counted and the last few kept.
 *
 * Every reply is checked: not JSON, not an object, neither "return" nor
 * "error", oversized (> 1 MiB) or too slow -> a clear error, never a crash.
 */
#ifndef VFT_QMP_H
#define VFT_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct vft_qmp;

/* Connects to QEMU's QMP socket (retrying until timeout_ms: QEMU creates it
 * some milliseconds after exec), reads the greeting and negotiates
 * capabilities. 0 or -errno (-ETIMEDOUT), reason in err. */
int vft_qmp_connect(struct vft_qmp **out, const char *path, int timeout_ms, char *err,
                    size_t errlen);
void vft_qmp_close(struct vft_qmp *q);

/* Executes a command; args may be NULL (borrowed). On success *ret (if not
 * NULL) receives the "return" value (caller puts it). A QMP "error" reply is
 * -EREMOTEIO with "class: desc" in err; timeout -ETIMEDOUT; connection lost
 * -ECONNRESET; malformed reply -EBADMSG. */
int vft_qmp_exec(struct vft_qmp *q, const char *cmd, struct json_object *args,
                 struct json_object **ret, int timeout_ms, char *err, size_t errlen);

/* Shorthands (0 or -errno as above). */
int vft_qmp_simple(struct vft_qmp *q, const char *cmd, int timeout_ms, char *err, size_t errlen);
int vft_qmp_set_capability(struct vft_qmp *q, const char *cap, bool on, int timeout_ms, char *err,
                           size_t errlen);
/* "migrate" with uri; returns as soon as QEMU accepted the command. */
int vft_qmp_migrate(struct vft_qmp *q, const char *uri, int timeout_ms, char *err, size_t errlen);
int vft_qmp_migrate_incoming(struct vft_qmp *q, const char *uri, int timeout_ms, char *err,
                             size_t errlen);
/* query-migrate "status" into buf ("completed", "active", "failed", ...; ""
 * when QEMU reports none). */
int vft_qmp_migrate_status(struct vft_qmp *q, char *buf, size_t len, int timeout_ms, char *err,
                           size_t errlen);
/* query-status: "status" into buf ("running", "paused", "postmigrate", ...),
 * *running too (may be NULL). */
int vft_qmp_status(struct vft_qmp *q, char *buf, size_t len, bool *running, int timeout_ms,
                   char *err, size_t errlen);

/* Events seen so far (any command call reads them off the socket). */
uint64_t vft_qmp_events(const struct vft_qmp *q);
/* true if QEMU announced SHUTDOWN (guest powered off / quit). */
bool vft_qmp_shutdown_seen(const struct vft_qmp *q);
/* The socket fd (to watch for EOF when idle) or -1. */
int vft_qmp_fd(const struct vft_qmp *q);
/* Reads and counts any pending events without blocking; -ECONNRESET on EOF. */
int vft_qmp_poll_events(struct vft_qmp *q, char *err, size_t errlen);

#endif
