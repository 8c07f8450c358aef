/*
 * recovery: the libvirt executor. It starts, stops, restarts, migrates and
 * lists domains on the blades' hypervisors and watches the local one.
 *
 * Threads: every libvirt call that can block (connecting, defining,
 * starting, destroying, migrating, listing) runs in a worker thread, one
 * per blade, each with its own connection, so a hung libvirtd stalls
 * neither the main loop nor the other blades. Results come back to the
 * main loop through a queue and a pipe; every callback below is called
 * from the loop thread. The workers never log: they post their lines to
 * the loop, which logs them. Every function here is for the loop thread.
 *
 * Event loop: libvirt delivers domain events and runs its keepalive only
 * through an event loop. rcv_virt_loop.c implements libvirt's event loop
 * on the daemon's qb_loop (rcv_virt_loop_register()); nothing here polls
 * by itself.
 *
 * The local blade (local_blade > 0) keeps one connection open all the
 * time: domain lifecycle events and connection loss come from it. Its
 * connection has a close callback and keepalive (RCV_VIRT_KEEPALIVE_*):
 * a dead libvirtd is noticed at once (end of file on its socket), a hung
 * one after about interval * (count + 1) s. Once lost, the worker tries
 * to reconnect every detection.hypervisor_interval_ms. While it is lost,
 * the QEMU of every domain last seen active is checked by its pidfile
 * (RCV_VIRT_PIDFILE_DIR/<domain>.pid and kill(pid, 0)) at the same
 * interval: a QEMU that is gone is reported as "stopped-failed", so a VM
 * failure is seen even when libvirtd is dead. Other blades' connections
 * are opened when first needed and reopened after a failure or when
 * their URI changes (rcv_virt_reconfigure()).
 *
 * Requests and timeouts: a request is accepted (0) or refused (-errno).
 * An accepted request gets exactly one callback, from the loop, unless
 * rcv_virt_forget() or rcv_virt_fini() drops it first. A blade's worker
 * runs its requests one at a time, in order; timeout_ms is the whole
 * budget, time in the queue included. When it runs out, done(-ETIMEDOUT)
 * is called from a loop timer:
 *  - a request still queued is dropped unexecuted (a start that arrives
 *    after its caller has given up could make a second copy of a VM);
 *  - a request the worker is already in cannot be interrupted: its
 *    outcome is unknown (the domain may still start or stop; list it to
 *    find out), and its late result is logged and discarded.
 * A blade whose worker is still inside a request that timed out is
 * "stuck": new requests for it are refused with -EBUSY at once rather
 * than queued behind a call that may never return. The blade becomes
 * usable again as soon as that call returns.
 */
#ifndef RCV_VIRT_H
#define RCV_VIRT_H

#include <stdbool.h>
#include <stdint.h>

#include <qb/qbloop.h>

#include "af_config.h"
#include "af_module.h"

/* ---- libvirt's event loop on a qb_loop (rcv_virt_loop.c) -------------------------------- */

/* Makes the qb_loop libvirt's event loop implementation
 * (virEventRegisterImpl). libvirt keeps exactly one implementation per
 * process, for good, and its callbacks carry no context: this is the one
 * process-global state of the module. Call it from the thread that runs
 * the loop, before any libvirt connection is opened (rcv_virt_init() does).
 * The first call also silences libvirt's default error printer (errors
 * reach our callbacks and logs instead).
 * Returns 0 (also again with the same loop: registrations are counted),
 * -EBUSY when another loop is registered and still held, -EINVAL, -EIO
 * (libvirt cannot initialise) or -errno.
 * libvirt calls the implementation from any thread: changes made outside
 * the loop thread are handed to it through a pipe. */
int rcv_virt_loop_register(qb_loop_t *loop);

/* Drops one registration (loop thread; rcv_virt_fini() does). When the
 * last one goes and libvirt has no handle or timeout left on the loop,
 * the loop is let go: it may be destroyed, and a later registration may
 * name another loop. A loop must not be destroyed while registered. */
void rcv_virt_loop_unregister(qb_loop_t *loop);

/* Applies pending changes and calls the free functions of removed
 * handles and timeouts now, from the loop thread (libvirt wants them
 * called later than the removal, never inside it). rcv_virt_fini() calls
 * it once its connections are closed, since the loop may not run again. */
void rcv_virt_loop_flush(void);

/* ---- the executor -------------------------------------------------------------------------- */

#define RCV_VIRT_NAME_MAX 64
#define RCV_VIRT_MSG_MAX 256
/* keepalive of every connection: a ping each interval, dead after count
 * unanswered ones */
#define RCV_VIRT_KEEPALIVE_INTERVAL_S 1
#define RCV_VIRT_KEEPALIVE_COUNT 3
/* where libvirt's QEMU driver writes each domain's pidfile */
#define RCV_VIRT_PIDFILE_DIR "/run/libvirt/qemu"
/* how long rcv_virt_fini() waits for a worker stuck in libvirt */
#define RCV_VIRT_FINI_WAIT_MS 5000
/* the timeout of rcv_virt_list() */
#define RCV_VIRT_LIST_TIMEOUT_MS 10000
/* the largest domain XML file rcv_virt_start() reads */
#define RCV_VIRT_XML_MAX (1024 * 1024)

struct rcv_virt;

struct rcv_virt_ops {
	/* A lifecycle event of a domain on the local blade; event is one of
	 * the names of rcv_virt_event_name(). Also made up by the module:
	 * "stopped-failed" when a QEMU is found gone while libvirtd is
	 * unreachable, and, after a reconnection, what changed meanwhile
	 * ("started", or the name of the shutoff reason). */
	void (*lifecycle)(void *opaque, int blade, const char *domain, const char *event);
	/* The local blade's connection was lost or could not be opened (up
	 * false, why: libvirt's text), or is (re)established (up true). Called
	 * once per change. */
	void (*conn)(void *opaque, int blade, bool up, const char *why);
};

/* Creates the executor on loop (registering it as libvirt's event loop,
 * see rcv_virt_loop_register(); rcv_virt_fini() unregisters it). cfg must
 * stay valid until the next rcv_virt_reconfigure() or rcv_virt_fini().
 * local_blade: the slot of this blade, whose connection is opened now and
 * kept; 0 = none (no events, no conn callbacks). ops may be NULL; ops and opaque are copied.
 * Returns 0, -EINVAL, -ENOENT (local_blade is not configured), -EBUSY
 * (libvirt already runs on another loop) or -errno. */
int rcv_virt_init(struct rcv_virt **out, qb_loop_t *loop, const struct af_config *cfg,
                  int local_blade, const struct rcv_virt_ops *ops, void *opaque);

/* Switches to a new configuration: a blade whose URI changed reconnects
 * (the local one at once, the others when next needed); a blade no longer
 * configured refuses requests with -ENOENT. Returns 0 or -EINVAL (the
 * local blade is not in cfg: the previous configuration stays). */
int rcv_virt_reconfigure(struct rcv_virt *v, const struct af_config *cfg);

/* Stops the workers (waiting up to RCV_VIRT_FINI_WAIT_MS for each) and
 * frees everything; pending callbacks are not called. A worker still
 * stuck in libvirt after the wait is left behind, and so is the memory it
 * uses (logged): a shutdown must not hang on a dead hypervisor. Not from
 * one of this module's callbacks. */
void rcv_virt_fini(struct rcv_virt *v);

/* For tests: where the pidfiles are (default RCV_VIRT_PIDFILE_DIR).
 * Returns 0 or -EINVAL. */
int rcv_virt_set_pidfile_dir(struct rcv_virt *v, const char *dir);

/* result: 0 or -errno; msg: human text (libvirt's error, or what was
 * found, e.g. "already running"), never NULL. Main errors: -ETIMEDOUT (no
 * answer in time: outcome unknown), -ENOENT (no such domain), -ENOTCONN
 * (no connection to that blade's libvirt), -ESRCH (domain not running
 * where it must), -EINVAL (refused by libvirt as invalid), -EACCES,
 * -ENOTSUP, -EIO (anything else). */
typedef void (*rcv_virt_done_fn)(void *opaque, int result, const char *msg);

/* The common refusals of the request functions (done is then never
 * called): -EINVAL (NULL module or callback, blade outside 1..AF_MAX_BLADES,
 * domain not a valid name, timeout_ms 0, a string too long), -ENOENT
 * (blade not configured), -EBUSY (the blade's worker is stuck, see the top
 * of this file), -ENOMEM, -errno (no worker thread). */

/* Makes domain run on blade. xml_path NULL or "": it must already be
 * defined there; otherwise it is (re)defined from that file first (read
 * by the worker). done(0) once libvirt reports it running, also when it
 * already was ("already running" in msg). */
int rcv_virt_start(struct rcv_virt *v, int blade, const char *domain, const char *xml_path,
                   uint32_t timeout_ms, rcv_virt_done_fn done, void *opaque);

/* Powers domain off on blade (virDomainDestroy). done(0) only once libvirt
 * reports it shut off; a domain not running or not defined there is 0 too
 * ("not running", "not defined"). */
int rcv_virt_stop(struct rcv_virt *v, int blade, const char *domain, uint32_t timeout_ms,
                  rcv_virt_done_fn done, void *opaque);

/* Destroys domain if it runs, then starts it; done(0) once it runs again.
 * It must be defined on blade (-ENOENT). */
int rcv_virt_restart(struct rcv_virt *v, int blade, const char *domain, uint32_t timeout_ms,
                     rcv_virt_done_fn done, void *opaque);

/* Live-migrates domain from blade from to blade to (VIR_MIGRATE_LIVE |
 * PERSIST_DEST | UNDEFINE_SOURCE), driven by from's worker with a
 * connection to each side (virDomainMigrate3). migrate_uri: where QEMU
 * sends the migration stream, e.g. "tcp://10.77.1.12"; NULL or "" =
 * libvirt's default. -ESRCH: not running on from. from == to: -EINVAL.
 * Only the lab integration tests run it (libvirt's test driver cannot
 * migrate). */
int rcv_virt_migrate(struct rcv_virt *v, int from, int to, const char *domain,
                     const char *migrate_uri, uint32_t timeout_ms, rcv_virt_done_fn done,
                     void *opaque);

struct rcv_virt_dom {
	char name[RCV_VIRT_NAME_MAX]; /* truncated if longer */
	int state;                    /* virDomainState: VIR_DOMAIN_RUNNING, ... */
	int reason;                   /* its reason (virDomainRunningReason, ...) */
	bool persistent;
	bool active; /* its QEMU exists (running, paused, ...) */
};

/* doms: valid during the call only; NULL and n 0 when result < 0. */
typedef void (*rcv_virt_list_fn)(void *opaque, int result, const struct rcv_virt_dom *doms,
                                 unsigned n);

/* Lists every domain (active or not) of blade, within
 * RCV_VIRT_LIST_TIMEOUT_MS (quick unless the blade is in trouble). */
int rcv_virt_list(struct rcv_virt *v, int blade, rcv_virt_list_fn done, void *opaque);

/* The caller behind opaque is gone: its pending callbacks are dropped and
 * its requests still queued are not carried out (those already running
 * finish unheard). */
void rcv_virt_forget(struct rcv_virt *v, void *opaque);

/* true while the local blade's connection is up. */
bool rcv_virt_local_up(const struct rcv_virt *v);

/* "libvirt": running / degraded (local connection down, or a stuck
 * worker) / stopped, with counters. */
void rcv_virt_describe(const struct rcv_virt *v, struct af_module_status *st);

/* ---- pure helpers (exposed for tests) ------------------------------------------------------- */

/* The name of a lifecycle event (VIR_DOMAIN_EVENT_<type>, detail):
 *
 *   DEFINED      ADDED "defined", UPDATED "defined-updated",
 *                RENAMED "defined-renamed", FROM_SNAPSHOT "defined-snapshot"
 *   UNDEFINED    REMOVED "undefined", RENAMED "undefined-renamed"
 *   STARTED      BOOTED "started", MIGRATED "started-migrated" (arrived
 *                by migration), RESTORED "started-restored",
 *                FROM_SNAPSHOT "started-snapshot", WAKEUP "started-wakeup"
 *   SUSPENDED    PAUSED "suspended", MIGRATED "suspended-migrated",
 *                IOERROR "suspended-ioerror", WATCHDOG "suspended-watchdog",
 *                RESTORED "suspended-restored", FROM_SNAPSHOT
 *                "suspended-snapshot", API_ERROR "suspended-api-error",
 *                POSTCOPY "suspended-postcopy", POSTCOPY_FAILED
 *                "suspended-postcopy-failed"
 *   RESUMED      UNPAUSED "resumed", MIGRATED "resumed-migrated",
 *                FROM_SNAPSHOT "resumed-snapshot", POSTCOPY
 *                "resumed-postcopy", POSTCOPY_FAILED "resumed-postcopy-failed"
 *   STOPPED      SHUTDOWN "stopped-shutdown", DESTROYED "stopped-destroyed",
 *                CRASHED "stopped-crashed", MIGRATED "migrated" (left this
 *                blade by migration), SAVED "stopped-saved", FAILED
 *                "stopped-failed" (QEMU died or failed), FROM_SNAPSHOT
 *                "stopped-snapshot"
 *   SHUTDOWN     FINISHED/GUEST/HOST "shutdown" (the guest shut down; a
 *                STOPPED event follows)
 *   PMSUSPENDED  MEMORY "pmsuspended", DISK "pmsuspended-disk"
 *   CRASHED      PANICKED "crashed", CRASHLOADED "crashed-crashloaded"
 *
 * A detail not in the table gives the type's first name (e.g. "started");
 * an unknown type gives "unknown". Never NULL. */
const char *rcv_virt_event_name(int type, int detail);

/* The event name for a domain found shut off (virDomainShutoffReason)
 * after the module could not watch it: the STOPPED names above; unknown
 * reasons, DAEMON (libvirtd killed it when reconnecting) and FAILED give
 * "stopped-failed". */
const char *rcv_virt_shutoff_event_name(int reason);

/* Whether the QEMU of domain runs, by the pidfile libvirt keeps in dir:
 * 1 it does (the pid exists, or exists but is not ours to signal), 0 it
 * does not (no pidfile, or no such process), -EINVAL (bad name), -errno
 * (pidfile unreadable or garbled: cannot tell). A recycled pid reads as
 * alive. */
int rcv_virt_qemu_alive(const char *dir, const char *domain);

#endif
