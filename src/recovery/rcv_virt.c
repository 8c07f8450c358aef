/*
 * recovery: the libvirt executor (see rcv_virt.h for the contract).
 *
 * Who owns what:
 *  - the loop thread owns the requests (it creates, answers and frees
 *    them), the local domain table and the counters;
 *  - each blade's worker owns its connection and, while it carries one
 *    out, reads its request;
 *  - under v->lock: the blades' queues and URIs, each request's state,
 *    the message queue to the loop, the stop flag.
 * Nobody holds v->lock while calling libvirt, and libvirt calls us back
 * (events, close) from any thread, so its callbacks only post messages.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include "rcv_virt.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "af_log.h"
#include "af_util.h"

/* how often a worker looks at a domain's state while waiting for it */
#define STATE_POLL_MS 50
#define LOCK_RETRY_MS 250

enum req_kind { REQ_START = 0, REQ_STOP, REQ_RESTART, REQ_MIGRATE, REQ_LIST };
static const char *const req_names[] = {"start", "stop", "restart", "migrate", "list"};

enum req_state { RQ_QUEUED = 0, RQ_RUNNING, RQ_FINISHED };

enum msg_kind { MSG_DONE = 0, MSG_LOG, MSG_LIFECYCLE, MSG_CONN };

struct rcv_virt_req;

/* worker (or libvirt callback) -> loop */
struct msg {
	struct msg *next;
	enum msg_kind kind;
	int blade;
	struct rcv_virt_req *req; /* MSG_DONE */
	int prio;                 /* MSG_LOG */
	bool up;                  /* MSG_CONN */
	char domain[RCV_VIRT_NAME_MAX];
	char event[32];
	char text[RCV_VIRT_MSG_MAX]; /* the log line, or why the connection went */
	struct rcv_virt_dom *doms;   /* MSG_CONN up: the domains then */
	unsigned n_doms;
};

struct rcv_virt_req {
	struct rcv_virt *v;
	struct rcv_virt_req *next;                /* in a blade's queue, under lock */
	struct rcv_virt_req *all_prev, *all_next; /* outstanding: loop thread */
	struct msg done_msg;                      /* the completion: no allocation in the worker */
	uint64_t id;
	enum req_kind kind;
	int blade, to;
	char domain[RCV_VIRT_NAME_MAX];
	char xml_path[AF_CFG_PATH_MAX];
	char migrate_uri[AF_CFG_PATH_MAX];
	char to_uri[AF_CFG_PATH_MAX];
	bool unsafe; /* migrate: recovery.migrate_unsafe */
	uint32_t timeout_ms;
	uint64_t submitted_ns, deadline_ns;
	rcv_virt_done_fn done;
	rcv_virt_list_fn list_done;
	void *opaque;
	qb_loop_timer_handle timer;
	bool timer_armed;
	bool answered;        /* loop: the caller has heard (or never will) */
	bool timed_out;       /* loop: answered by the timer */
	enum req_state state; /* under lock */
	/* the result, written by the worker before it posts done_msg */
	int result;
	char msg[RCV_VIRT_MSG_MAX];
	struct rcv_virt_dom *doms;
	unsigned n_doms;
};

struct blade {
	struct rcv_virt *v;
	int slot;
	bool local;
	pthread_cond_t wake;
	bool started; /* the worker thread exists */
	pthread_t thread;

	/* under v->lock */
	bool configured;
	char uri[AF_CFG_PATH_MAX];
	struct rcv_virt_req *qhead, *qtail;
	struct rcv_virt_req *running;
	bool exited;             /* the worker returned (fini) */
	virConnectPtr live_conn; /* the connection close callbacks may name */
	bool lost;               /* its close callback fired */
	char lost_why[128];

	/* worker-private */
	virConnectPtr conn;
	char conn_uri[AF_CFG_PATH_MAX];
	int lifecycle_id; /* -1 none */
	bool close_cb;
	bool down_posted; /* local: "connection down" told, "up" not yet */
	uint64_t next_open_ns;
};

struct local_dom {
	char name[RCV_VIRT_NAME_MAX];
	bool active;
};

struct rcv_virt {
	qb_loop_t *loop;
	int local_blade;
	struct rcv_virt_ops ops;
	void *opaque;

	pthread_mutex_t lock;
	bool stop;
	uint64_t hv_interval_ms;
	struct msg *mhead, *mtail;
	uint64_t dropped;
	int pipe[2];

	struct blade blades[AF_MAX_BLADES + 1]; /* by slot; 0 unused */

	/* loop thread */
	const struct af_config *cfg;
	char pidfile_dir[AF_CFG_PATH_MAX];
	struct rcv_virt_req *all;
	uint64_t next_id;
	bool local_up, ever_up;
	char local_why[128];
	uint64_t local_change_ns;
	struct local_dom *ldoms;
	unsigned n_ldoms;
	bool pid_timer_armed;
	qb_loop_timer_handle pid_timer;
	uint64_t n_ok, n_failed, n_timeouts, n_late;
};

/* ---- pure helpers ------------------------------------------------------------------------ */

/* Domain names as the configuration has them; also safe in a pidfile path. */
static bool valid_domain(const char *d)
{
	return d != NULL && af_valid_name(d, RCV_VIRT_NAME_MAX - 1);
}

struct ev_name {
	int type, detail;
	const char *name;
};

/* detail -1: the type's name for details not listed */
static const struct ev_name ev_names[] = {
        {VIR_DOMAIN_EVENT_DEFINED, -1, "defined"},
        {VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_UPDATED, "defined-updated"},
        {VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_RENAMED, "defined-renamed"},
        {VIR_DOMAIN_EVENT_DEFINED, VIR_DOMAIN_EVENT_DEFINED_FROM_SNAPSHOT, "defined-snapshot"},
        {VIR_DOMAIN_EVENT_UNDEFINED, -1, "undefined"},
        {VIR_DOMAIN_EVENT_UNDEFINED, VIR_DOMAIN_EVENT_UNDEFINED_RENAMED, "undefined-renamed"},
        {VIR_DOMAIN_EVENT_STARTED, -1, "started"},
        {VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED, "started-migrated"},
        {VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_RESTORED, "started-restored"},
        {VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT, "started-snapshot"},
        {VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_WAKEUP, "started-wakeup"},
        {VIR_DOMAIN_EVENT_SUSPENDED, -1, "suspended"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED, "suspended-migrated"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_IOERROR, "suspended-ioerror"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_WATCHDOG, "suspended-watchdog"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_RESTORED, "suspended-restored"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_FROM_SNAPSHOT,
         "suspended-snapshot"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_API_ERROR, "suspended-api-error"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY, "suspended-postcopy"},
        {VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED,
         "suspended-postcopy-failed"},
        {VIR_DOMAIN_EVENT_RESUMED, -1, "resumed"},
        {VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_MIGRATED, "resumed-migrated"},
        {VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_FROM_SNAPSHOT, "resumed-snapshot"},
        {VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_POSTCOPY, "resumed-postcopy"},
        {VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED,
         "resumed-postcopy-failed"},
        {VIR_DOMAIN_EVENT_STOPPED, -1, "stopped"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN, "stopped-shutdown"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED, "stopped-destroyed"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_CRASHED, "stopped-crashed"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_MIGRATED, "migrated"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SAVED, "stopped-saved"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_FAILED, "stopped-failed"},
        {VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT, "stopped-snapshot"},
        {VIR_DOMAIN_EVENT_SHUTDOWN, -1, "shutdown"},
        {VIR_DOMAIN_EVENT_PMSUSPENDED, -1, "pmsuspended"},
        {VIR_DOMAIN_EVENT_PMSUSPENDED, VIR_DOMAIN_EVENT_PMSUSPENDED_DISK, "pmsuspended-disk"},
        {VIR_DOMAIN_EVENT_CRASHED, -1, "crashed"},
        {VIR_DOMAIN_EVENT_CRASHED, VIR_DOMAIN_EVENT_CRASHED_CRASHLOADED, "crashed-crashloaded"},
};

const char *rcv_virt_event_name(int type, int detail)
{
	const char *fallback = NULL;

	for (size_t i = 0; i < AF_ARRAY_SIZE(ev_names); i++) {
		if (ev_names[i].type != type)
			continue;
		if (ev_names[i].detail == detail)
			return ev_names[i].name;
		if (ev_names[i].detail == -1)
			fallback = ev_names[i].name;
	}
	return fallback ? fallback : "unknown";
}

const char *rcv_virt_shutoff_event_name(int reason)
{
	switch (reason) {
	case VIR_DOMAIN_SHUTOFF_SHUTDOWN:
		return "stopped-shutdown";
	case VIR_DOMAIN_SHUTOFF_DESTROYED:
		return "stopped-destroyed";
	case VIR_DOMAIN_SHUTOFF_CRASHED:
		return "stopped-crashed";
	case VIR_DOMAIN_SHUTOFF_MIGRATED:
		return "migrated";
	case VIR_DOMAIN_SHUTOFF_SAVED:
		return "stopped-saved";
	case VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT:
		return "stopped-snapshot";
	default:
		/* FAILED, DAEMON, UNKNOWN: nobody asked for it to stop */
		return "stopped-failed";
	}
}

/* Whether an event leaves the domain's QEMU running (true), gone (false),
 * or says nothing about it (-1). */
static int event_active(const char *event)
{
	if (strncmp(event, "stopped", 7) == 0 || strcmp(event, "migrated") == 0)
		return 0;
	if (strncmp(event, "started", 7) == 0 || strncmp(event, "resumed", 7) == 0 ||
	    strncmp(event, "suspended", 9) == 0 || strncmp(event, "crashed", 7) == 0 ||
	    strcmp(event, "shutdown") == 0 || strncmp(event, "pmsuspended", 11) == 0)
		return 1;
	return -1;
}

int rcv_virt_qemu_alive(const char *dir, const char *domain)
{
	char path[AF_CFG_PATH_MAX + RCV_VIRT_NAME_MAX + 8], buf[32], *end;
	ssize_t n;
	long pid;
	int fd, rc;

	if (dir == NULL || !valid_domain(domain))
		return -EINVAL;
	rc = snprintf(path, sizeof(path), "%s/%s.pid", dir, domain);
	if (rc < 0 || (size_t)rc >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (rc < 0)
		return rc;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno != 0 || end == buf || *end != '\0' || pid <= 1 || pid > INT_MAX)
		return -EBADMSG;
	if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
		return 1;
	return errno == ESRCH ? 0 : -errno;
}

/* ---- the queue to the loop (any thread) ------------------------------------------------- */

static void post_locked(struct rcv_virt *v, struct msg *m)
{
	bool wake = v->mhead == NULL;
	char b = 1;

	m->next = NULL;
	if (v->mtail != NULL)
		v->mtail->next = m;
	else
		v->mhead = m;
	v->mtail = m;
	/* non-blocking: a full pipe already means "wake up" */
	if (wake && write(v->pipe[1], &b, 1) < 0 && errno != EAGAIN)
		v->dropped++;
}

static struct msg *msg_new(enum msg_kind kind, int blade)
{
	struct msg *m = calloc(1, sizeof(*m));

	if (m != NULL) {
		m->kind = kind;
		m->blade = blade;
	}
	return m;
}

static void post(struct rcv_virt *v, struct msg *m)
{
	pthread_mutex_lock(&v->lock);
	if (m == NULL)
		v->dropped++;
	else
		post_locked(v, m);
	pthread_mutex_unlock(&v->lock);
}

static void post_log(struct rcv_virt *v, int prio, const char *fmt, ...) AF_PRINTF(3, 4);
static void post_log(struct rcv_virt *v, int prio, const char *fmt, ...)
{
	struct msg *m = msg_new(MSG_LOG, 0);
	va_list ap;

	if (m != NULL) {
		m->prio = prio;
		va_start(ap, fmt);
		vsnprintf(m->text, sizeof(m->text), fmt, ap);
		va_end(ap);
	}
	post(v, m);
}

static void msg_free(struct msg *m)
{
	if (m == NULL || m->kind == MSG_DONE) /* a request's own */
		return;
	free(m->doms);
	free(m);
}

/* ---- libvirt errors ------------------------------------------------------------------------- */

static int vir_errno(const virError *e)
{
	if (e == NULL)
		return -EIO;
	switch (e->code) {
	case VIR_ERR_NO_DOMAIN:
		return -ENOENT;
	case VIR_ERR_OPERATION_INVALID:
	case VIR_ERR_INVALID_ARG:
	case VIR_ERR_XML_ERROR:
	case VIR_ERR_XML_DETAIL:
		return -EINVAL;
	case VIR_ERR_OPERATION_TIMEOUT:
	case VIR_ERR_AGENT_UNRESPONSIVE:
		return -ETIMEDOUT;
	case VIR_ERR_AUTH_FAILED:
	case VIR_ERR_AUTH_CANCELLED:
	case VIR_ERR_AUTH_UNAVAILABLE:
	case VIR_ERR_OPERATION_DENIED:
	case VIR_ERR_ACCESS_DENIED:
		return -EACCES;
	case VIR_ERR_NO_SUPPORT:
	case VIR_ERR_ARGUMENT_UNSUPPORTED:
	case VIR_ERR_CONFIG_UNSUPPORTED:
		return -ENOTSUP;
	case VIR_ERR_NO_CONNECT:
	case VIR_ERR_INVALID_CONN:
	case VIR_ERR_RPC:
		return -ENOTCONN;
	case VIR_ERR_SYSTEM_ERROR:
		return e->domain == VIR_FROM_RPC || e->domain == VIR_FROM_REMOTE ? -ENOTCONN : -EIO;
	default:
		return -EIO;
	}
}

/* The calling thread's last libvirt error as -errno, its text in msg. */
static int vir_fail(char *msg, size_t len, const char *what)
{
	const virError *e = virGetLastError();

	snprintf(msg, len, "%s: %s", what,
	         e != NULL && e->message != NULL ? e->message : "unknown libvirt error");
	return vir_errno(e);
}

/* ---- worker side ---------------------------------------------------------------------------- */

/* Sleeps ms or until stop; true if stopping. */
static bool worker_sleep(struct blade *b, uint64_t ms)
{
	struct rcv_virt *v = b->v;
	uint64_t deadline = af_mono_ns() + ms * AF_NS_PER_MS;
	struct timespec ts = {.tv_sec = (time_t)(deadline / AF_NS_PER_S),
	                      .tv_nsec = (long)(deadline % AF_NS_PER_S)};
	bool s;

	pthread_mutex_lock(&v->lock);
	while (!v->stop && af_mono_ns() < deadline) {
		if (pthread_cond_timedwait(&b->wake, &v->lock, &ts) == ETIMEDOUT)
			break;
	}
	s = v->stop;
	pthread_mutex_unlock(&v->lock);
	return s;
}

static int lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct blade *b = opaque;
	struct rcv_virt *v = b->v;
	const char *name = virDomainGetName(dom);
	struct msg *m;

	pthread_mutex_lock(&v->lock);
	if (conn != b->live_conn || name == NULL) {
		pthread_mutex_unlock(&v->lock);
		return 0;
	}
	m = msg_new(MSG_LIFECYCLE, b->slot);
	if (m == NULL) {
		v->dropped++;
	} else {
		af_strlcpy(m->domain, name, sizeof(m->domain));
		af_strlcpy(m->event, rcv_virt_event_name(event, detail), sizeof(m->event));
		if (strcmp(m->event, "unknown") == 0)
			snprintf(m->text, sizeof(m->text), "event type %d detail %d", event,
			         detail);
		post_locked(v, m);
	}
	pthread_mutex_unlock(&v->lock);
	return 0;
}

static void close_cb(virConnectPtr conn, int reason, void *opaque)
{
	struct blade *b = opaque;
	struct rcv_virt *v = b->v;
	static const char *const why[] = {
	        [VIR_CONNECT_CLOSE_REASON_ERROR] = "I/O error on the connection",
	        [VIR_CONNECT_CLOSE_REASON_EOF] = "libvirtd closed the connection",
	        [VIR_CONNECT_CLOSE_REASON_KEEPALIVE] =
	                "keepalive timeout: libvirtd does not answer",
	        [VIR_CONNECT_CLOSE_REASON_CLIENT] = "closed by the client",
	};

	pthread_mutex_lock(&v->lock);
	if (conn == b->live_conn && !b->lost) {
		b->lost = true;
		if (reason >= 0 && (size_t)reason < AF_ARRAY_SIZE(why) && why[reason] != NULL)
			af_strlcpy(b->lost_why, why[reason], sizeof(b->lost_why));
		else
			snprintf(b->lost_why, sizeof(b->lost_why), "connection closed (reason %d)",
			         reason);
		pthread_cond_signal(&b->wake);
	}
	pthread_mutex_unlock(&v->lock);
}

static void drop_conn(struct blade *b)
{
	struct rcv_virt *v = b->v;

	if (b->conn == NULL)
		return;
	pthread_mutex_lock(&v->lock);
	b->live_conn = NULL; /* late callbacks of this connection are ignored */
	b->lost = false;
	pthread_mutex_unlock(&v->lock);
	if (b->lifecycle_id >= 0)
		virConnectDomainEventDeregisterAny(b->conn, b->lifecycle_id);
	if (b->close_cb)
		virConnectUnregisterCloseCallback(b->conn, close_cb);
	b->lifecycle_id = -1;
	b->close_cb = false;
	virConnectClose(b->conn);
	b->conn = NULL;
	b->conn_uri[0] = '\0';
}

/* Lists the domains of conn into a malloc'd array. */
static int list_domains(virConnectPtr conn, struct rcv_virt_dom **out, unsigned *n_out, char *msg,
                        size_t len)
{
	virDomainPtr *doms = NULL;
	struct rcv_virt_dom *d = NULL;
	int n, rc = 0;

	*out = NULL;
	*n_out = 0;
	n = virConnectListAllDomains(conn, &doms, 0);
	if (n < 0)
		return vir_fail(msg, len, "listing domains");
	if (n > 0) {
		d = calloc((size_t)n, sizeof(*d));
		if (d == NULL) {
			rc = -ENOMEM;
			snprintf(msg, len, "out of memory");
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		const char *name = virDomainGetName(doms[i]);
		int state = 0, reason = 0;

		af_strlcpy(d[i].name, name ? name : "?", sizeof(d[i].name));
		/* a domain undefined meanwhile: reported as it was, shut off */
		if (virDomainGetState(doms[i], &state, &reason, 0) < 0)
			state = VIR_DOMAIN_SHUTOFF;
		d[i].state = state;
		d[i].reason = reason;
		d[i].persistent = virDomainIsPersistent(doms[i]) == 1;
		d[i].active = virDomainIsActive(doms[i]) == 1;
	}
	*out = d;
	*n_out = (unsigned)n;
	d = NULL;
	snprintf(msg, len, "%d domains", n);
out:
	for (int i = 0; i < n; i++)
		virDomainFree(doms[i]);
	free(doms);
	free(d);
	return rc;
}

static void post_conn(struct blade *b, bool up, const char *why, struct rcv_virt_dom *doms,
                      unsigned n)
{
	struct msg *m = msg_new(MSG_CONN, b->slot);

	if (m == NULL) {
		free(doms);
	} else {
		m->up = up;
		af_strlcpy(m->text, why ? why : "", sizeof(m->text));
		m->doms = doms;
		m->n_doms = n;
	}
	post(b->v, m);
	b->down_posted = !up;
}

static int open_conn(struct blade *b, const char *uri, char *msg, size_t len)
{
	struct rcv_virt *v = b->v;
	virConnectPtr c;

	virResetLastError();
	c = virConnectOpen(uri);
	if (c == NULL) {
		/* whatever libvirt's reason, the caller sees "no connection" */
		vir_fail(msg, len, uri);
		return -ENOTCONN;
	}
	/* keepalive needs a remote connection; local drivers (test://) have none */
	if (virConnectSetKeepAlive(c, RCV_VIRT_KEEPALIVE_INTERVAL_S, RCV_VIRT_KEEPALIVE_COUNT) < 0)
		virResetLastError();
	b->conn = c;
	af_strlcpy(b->conn_uri, uri, sizeof(b->conn_uri));
	pthread_mutex_lock(&v->lock);
	b->live_conn = c;
	b->lost = false;
	pthread_mutex_unlock(&v->lock);
	return 0;
}

/* Local blade: opens the connection with its event and close callbacks,
 * and tells the loop what it found. */
static void local_open(struct blade *b, const char *uri)
{
	struct rcv_virt *v = b->v;
	struct rcv_virt_dom *doms = NULL;
	unsigned n = 0;
	char err[RCV_VIRT_MSG_MAX];
	uint64_t interval;
	int rc;

	pthread_mutex_lock(&v->lock);
	interval = v->hv_interval_ms;
	pthread_mutex_unlock(&v->lock);
	b->next_open_ns = af_mono_ns() + interval * AF_NS_PER_MS;
	rc = open_conn(b, uri, err, sizeof(err));
	if (rc == 0) {
		b->lifecycle_id = virConnectDomainEventRegisterAny(
		        b->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		        VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb), b, NULL);
		if (b->lifecycle_id < 0)
			rc = vir_fail(err, sizeof(err), "registering for domain events");
	}
	if (rc == 0) {
		if (virConnectRegisterCloseCallback(b->conn, close_cb, b, NULL) == 0)
			b->close_cb = true;
		else
			rc = vir_fail(err, sizeof(err), "registering a close callback");
	}
	if (rc == 0)
		rc = list_domains(b->conn, &doms, &n, err, sizeof(err));
	if (rc < 0) {
		drop_conn(b);
		if (!b->down_posted)
			post_conn(b, false, err, NULL, 0);
		else
			post_log(v, LOG_DEBUG,
			         "recovery: libvirt: blade %d: still no connection: %s", b->slot,
			         err);
		return;
	}
	post_conn(b, true, uri, doms, n);
}

/* Local blade: drops a connection that is lost or no longer configured as
 * it is, and reconnects when due (or at once when force). */
static void local_sync(struct blade *b, bool force)
{
	struct rcv_virt *v = b->v;
	char uri[AF_CFG_PATH_MAX], why[128];
	bool configured, lost;
	uint64_t interval;

	pthread_mutex_lock(&v->lock);
	interval = v->hv_interval_ms;
	af_strlcpy(uri, b->uri, sizeof(uri));
	configured = b->configured;
	lost = b->lost;
	af_strlcpy(why, b->lost_why, sizeof(why));
	pthread_mutex_unlock(&v->lock);
	if (b->conn != NULL && !lost && virConnectIsAlive(b->conn) != 1) {
		lost = true;
		af_strlcpy(why, "the connection is dead", sizeof(why));
	}
	if (b->conn != NULL && (lost || !configured || strcmp(uri, b->conn_uri) != 0)) {
		if (!lost)
			snprintf(why, sizeof(why), "libvirt URI changed to %s", uri);
		drop_conn(b);
		if (!b->down_posted)
			post_conn(b, false, why, NULL, 0);
		/* a lost libvirtd is retried after the interval, a new URI at once */
		b->next_open_ns = lost ? af_mono_ns() + interval * AF_NS_PER_MS : 0;
	}
	if (b->conn == NULL && configured && (force || af_mono_ns() >= b->next_open_ns))
		local_open(b, uri);
}

/* The blade's connection, opened if need be. */
static int ensure_conn(struct blade *b, char *msg, size_t len)
{
	struct rcv_virt *v = b->v;
	char uri[AF_CFG_PATH_MAX];

	if (b->local) {
		local_sync(b, true);
		if (b->conn == NULL) {
			snprintf(msg, len, "no connection to the local libvirt");
			return -ENOTCONN;
		}
		return 0;
	}
	pthread_mutex_lock(&v->lock);
	af_strlcpy(uri, b->uri, sizeof(uri));
	pthread_mutex_unlock(&v->lock);
	if (b->conn != NULL && (strcmp(uri, b->conn_uri) != 0 || virConnectIsAlive(b->conn) != 1))
		drop_conn(b);
	if (b->conn == NULL)
		return open_conn(b, uri, msg, len);
	return 0;
}

/* Reads the domain XML of a start (in the worker: the file may be on a
 * slow or hung file system). */
static int read_xml(const char *path, char **out, char *msg, size_t len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		snprintf(msg, len, "domain XML %s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > RCV_VIRT_XML_MAX) {
		rc = -EINVAL;
		snprintf(msg, len, "domain XML %s: not a regular file of at most %d bytes", path,
		         RCV_VIRT_XML_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		snprintf(msg, len, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			snprintf(msg, len, "domain XML %s: %s", path,
			         n < 0 ? strerror(-rc) : "shorter than expected");
			goto out;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*out = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

/* Whether the domain XML text names domain: its first <name> element, the
 * domain's own in any XML libvirt writes. Not a full parse: libvirt parses
 * it anyway, and the name is checked again once defined. */
static int xml_names(const char *xml, const char *domain)
{
	const char *p = strstr(xml, "<name>"), *end;
	size_t n;

	if (p == NULL)
		return -EINVAL;
	p += 6;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	end = strstr(p, "</name>");
	if (end == NULL)
		return -EINVAL;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	n = (size_t)(end - p);
	return n == strlen(domain) && strncmp(p, domain, n) == 0 ? 0 : -EINVAL;
}

/* Waits until dom reaches state (VIR_DOMAIN_RUNNING or SHUTOFF), by the
 * request's deadline. */
static int wait_state(struct blade *b, struct rcv_virt_req *r, virDomainPtr dom, int want,
                      char *msg, size_t len)
{
	for (;;) {
		int state, reason;

		if (virDomainGetState(dom, &state, &reason, 0) < 0)
			return vir_fail(msg, len, "reading the domain state");
		if (state == want)
			return 0;
		if (want == VIR_DOMAIN_RUNNING && state == VIR_DOMAIN_SHUTOFF) {
			snprintf(msg, len, "domain %s stopped again right after starting (%s)",
			         r->domain, rcv_virt_shutoff_event_name(reason));
			return -EIO;
		}
		if (af_mono_ns() >= r->deadline_ns) {
			snprintf(msg, len, "domain %s still in state %d", r->domain, state);
			return -ETIMEDOUT;
		}
		if (worker_sleep(b, STATE_POLL_MS))
			return -ECANCELED;
	}
}

/* QEMU refused to start because another process still holds the lock of
 * one of the domain's images: the QEMU of a fenced blade that is still
 * going away, or of a copy destroyed a moment ago. */
static bool image_locked(void)
{
	const virError *e = virGetLastError();
	const char *m = e != NULL && e->message != NULL ? e->message : "";

	return strstr(m, "Failed to get \"write\" lock") != NULL ||
	       strstr(m, "Failed to get shared \"write\" lock") != NULL;
}

static int do_create(struct blade *b, struct rcv_virt_req *r, virDomainPtr dom, char *msg,
                     size_t len)
{
	bool locked;
	int rc;

	for (;;) {
		virResetLastError();
		if (virDomainCreate(dom) == 0)
			break;
		rc = vir_fail(msg, len, "starting");
		locked = image_locked();
		/* someone else started it meanwhile: that is what we wanted */
		if (virDomainIsActive(dom) == 1)
			break;
		/* the lock keeps two copies apart: once its holder is gone, the
		 * start goes through (within the request's budget) */
		if (!locked || af_mono_ns() + LOCK_RETRY_MS * AF_NS_PER_MS >= r->deadline_ns)
			return rc;
		af_warn("recovery: blade %d: an image of %s is still locked by another process: "
		        "trying again",
		        b->slot, r->domain);
		if (worker_sleep(b, LOCK_RETRY_MS))
			return -ECANCELED;
	}
	return wait_state(b, r, dom, VIR_DOMAIN_RUNNING, msg, len);
}

static int do_destroy(struct blade *b, struct rcv_virt_req *r, virDomainPtr dom, char *msg,
                      size_t len)
{
	virResetLastError();
	if (virDomainDestroy(dom) < 0) {
		int rc = vir_fail(msg, len, "destroying");

		/* stopped by itself meanwhile: that is what we wanted */
		if (virDomainIsActive(dom) != 0)
			return rc;
	}
	return wait_state(b, r, dom, VIR_DOMAIN_SHUTOFF, msg, len);
}

static int lookup(struct blade *b, struct rcv_virt_req *r, virDomainPtr *dom, char *msg, size_t len)
{
	virResetLastError();
	*dom = virDomainLookupByName(b->conn, r->domain);
	if (*dom != NULL)
		return 0;
	return vir_fail(msg, len, "looking the domain up");
}

static int exec_start(struct blade *b, struct rcv_virt_req *r, char *msg, size_t len)
{
	virDomainPtr dom = NULL;
	char *xml = NULL;
	int rc;

	if (r->xml_path[0]) {
		rc = read_xml(r->xml_path, &xml, msg, len);
		if (rc < 0)
			return rc;
		/* defining the wrong file would replace another domain's definition */
		rc = xml_names(xml, r->domain);
		if (rc < 0) {
			snprintf(msg, len, "%s does not define domain %s", r->xml_path, r->domain);
			free(xml);
			return rc;
		}
		virResetLastError();
		dom = virDomainDefineXML(b->conn, xml);
		free(xml);
		if (dom == NULL)
			return vir_fail(msg, len, "defining the domain");
		if (strcmp(virDomainGetName(dom), r->domain) != 0) {
			snprintf(msg, len, "%s defines domain %s, not %s", r->xml_path,
			         virDomainGetName(dom), r->domain);
			rc = -EINVAL;
			goto out;
		}
	} else {
		rc = lookup(b, r, &dom, msg, len);
		if (rc == -ENOENT)
			snprintf(msg, len, "domain %s is not defined on blade %d", r->domain,
			         b->slot);
		if (rc < 0)
			return rc;
	}
	if (virDomainIsActive(dom) == 1) {
		snprintf(msg, len, "already running");
		rc = 0;
		goto out;
	}
	rc = do_create(b, r, dom, msg, len);
	if (rc == 0)
		snprintf(msg, len, "%s", r->xml_path[0] ? "defined and running" : "running");
out:
	virDomainFree(dom);
	return rc;
}

static int exec_stop(struct blade *b, struct rcv_virt_req *r, char *msg, size_t len)
{
	virDomainPtr dom;
	int rc = lookup(b, r, &dom, msg, len);

	if (rc == -ENOENT) {
		snprintf(msg, len, "not running (not defined)");
		return 0;
	}
	if (rc < 0)
		return rc;
	if (virDomainIsActive(dom) == 0) {
		snprintf(msg, len, "not running");
		rc = 0;
	} else {
		rc = do_destroy(b, r, dom, msg, len);
		if (rc == 0)
			snprintf(msg, len, "shut off");
	}
	virDomainFree(dom);
	return rc;
}

static int exec_restart(struct blade *b, struct rcv_virt_req *r, char *msg, size_t len)
{
	virDomainPtr dom;
	bool was = false;
	int rc = lookup(b, r, &dom, msg, len);

	if (rc == -ENOENT)
		snprintf(msg, len, "domain %s is not defined on blade %d", r->domain, b->slot);
	if (rc < 0)
		return rc;
	if (virDomainIsActive(dom) == 1) {
		was = true;
		rc = do_destroy(b, r, dom, msg, len);
	}
	if (rc == 0)
		rc = do_create(b, r, dom, msg, len);
	if (rc == 0)
		snprintf(msg, len, "%s", was ? "restarted" : "was not running: started");
	virDomainFree(dom);
	return rc;
}

static int exec_migrate(struct blade *b, struct rcv_virt_req *r, char *msg, size_t len)
{
	virTypedParameterPtr params = NULL;
	int nparams = 0, maxparams = 0, rc;
	virConnectPtr dconn = NULL;
	virDomainPtr dom, moved;
	const unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PERSIST_DEST |
	                       VIR_MIGRATE_UNDEFINE_SOURCE | (r->unsafe ? VIR_MIGRATE_UNSAFE : 0);

	rc = lookup(b, r, &dom, msg, len);
	if (rc == -ENOENT)
		snprintf(msg, len, "domain %s is not defined on blade %d", r->domain, b->slot);
	if (rc < 0)
		return rc;
	if (virDomainIsActive(dom) != 1) {
		snprintf(msg, len, "domain %s is not running on blade %d", r->domain, b->slot);
		rc = -ESRCH;
		goto out;
	}
	/* a connection of its own: the destination's worker owns the other */
	virResetLastError();
	dconn = virConnectOpen(r->to_uri);
	if (dconn == NULL) {
		vir_fail(msg, len, r->to_uri);
		rc = -ENOTCONN;
		goto out;
	}
	if (r->migrate_uri[0] &&
	    virTypedParamsAddString(&params, &nparams, &maxparams, VIR_MIGRATE_PARAM_URI,
	                            r->migrate_uri) < 0) {
		rc = vir_fail(msg, len, "migration parameters");
		goto out;
	}
	virResetLastError();
	moved = virDomainMigrate3(dom, dconn, params, (unsigned)nparams, flags);
	if (moved == NULL) {
		rc = vir_fail(msg, len, "migrating");
		goto out;
	}
	virDomainFree(moved);
	snprintf(msg, len, "migrated to blade %d", r->to);
	rc = 0;
out:
	virTypedParamsFree(params, nparams);
	if (dconn != NULL)
		virConnectClose(dconn);
	virDomainFree(dom);
	return rc;
}

static void execute(struct blade *b, struct rcv_virt_req *r)
{
	char msg[RCV_VIRT_MSG_MAX] = "";
	int rc;

	rc = ensure_conn(b, msg, sizeof(msg));
	if (rc == 0) {
		switch (r->kind) {
		case REQ_START:
			rc = exec_start(b, r, msg, sizeof(msg));
			break;
		case REQ_STOP:
			rc = exec_stop(b, r, msg, sizeof(msg));
			break;
		case REQ_RESTART:
			rc = exec_restart(b, r, msg, sizeof(msg));
			break;
		case REQ_MIGRATE:
			rc = exec_migrate(b, r, msg, sizeof(msg));
			break;
		case REQ_LIST:
			rc = list_domains(b->conn, &r->doms, &r->n_doms, msg, sizeof(msg));
			break;
		}
	}
	/* a failure may have been the connection's: the next request reopens,
	 * and the local blade's loss is noticed at once */
	if (rc < 0 && b->conn != NULL && virConnectIsAlive(b->conn) != 1) {
		if (b->local)
			local_sync(b, false);
		else
			drop_conn(b);
	}
	r->result = rc;
	af_strlcpy(r->msg, msg[0] ? msg : rc < 0 ? strerror(-rc) : "done", sizeof(r->msg));
}

static void *worker(void *arg)
{
	struct blade *b = arg;
	struct rcv_virt *v = b->v;

	pthread_mutex_lock(&v->lock);
	while (!v->stop) {
		struct rcv_virt_req *r = b->qhead;
		uint64_t deadline = 0;
		bool maintain = false;

		if (r != NULL) {
			b->qhead = r->next;
			if (b->qhead == NULL)
				b->qtail = NULL;
			r->next = NULL;
			r->state = RQ_RUNNING;
			b->running = r;
			pthread_mutex_unlock(&v->lock);
			execute(b, r);
			pthread_mutex_lock(&v->lock);
			b->running = NULL;
			r->state = RQ_FINISHED;
			r->done_msg.kind = MSG_DONE;
			r->done_msg.req = r;
			post_locked(v, &r->done_msg);
			continue;
		}
		if (b->local) {
			maintain =
			        b->lost || (b->conn != NULL &&
			                    (!b->configured || strcmp(b->uri, b->conn_uri) != 0));
			if (b->conn == NULL && b->configured) {
				if (af_mono_ns() >= b->next_open_ns)
					maintain = true;
				else
					deadline = b->next_open_ns;
			}
		} else if (b->conn != NULL && !b->configured) {
			maintain = true;
		}
		if (maintain) {
			pthread_mutex_unlock(&v->lock);
			if (b->local)
				local_sync(b, false);
			else
				drop_conn(b);
			pthread_mutex_lock(&v->lock);
			continue;
		}
		if (deadline) {
			struct timespec ts = {.tv_sec = (time_t)(deadline / AF_NS_PER_S),
			                      .tv_nsec = (long)(deadline % AF_NS_PER_S)};

			pthread_cond_timedwait(&b->wake, &v->lock, &ts);
		} else {
			pthread_cond_wait(&b->wake, &v->lock);
		}
	}
	pthread_mutex_unlock(&v->lock);
	drop_conn(b);
	pthread_mutex_lock(&v->lock);
	b->exited = true;
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

/* ---- loop side ------------------------------------------------------------------------------- */

static struct blade *blade_of(struct rcv_virt *v, int slot)
{
	return slot >= 1 && slot <= AF_MAX_BLADES ? &v->blades[slot] : NULL;
}

static int start_worker(struct blade *b)
{
	int rc;

	if (b->started)
		return 0;
	rc = pthread_create(&b->thread, NULL, worker, b);
	if (rc != 0) {
		af_err("recovery: libvirt: cannot start the worker of blade %d: %s", b->slot,
		       strerror(rc));
		return -rc;
	}
	b->started = true;
	return 0;
}

static void req_free(struct rcv_virt *v, struct rcv_virt_req *r)
{
	if (r->all_prev != NULL)
		r->all_prev->all_next = r->all_next;
	else if (v->all == r)
		v->all = r->all_next;
	if (r->all_next != NULL)
		r->all_next->all_prev = r->all_prev;
	if (r->timer_armed)
		qb_loop_timer_del(v->loop, r->timer);
	free(r->doms);
	free(r);
}

/* Takes a request out of its blade's queue if the worker has not taken it
 * yet; true if it did. */
static bool unqueue(struct rcv_virt *v, struct rcv_virt_req *r)
{
	struct blade *b = &v->blades[r->blade];
	bool unq = false;

	pthread_mutex_lock(&v->lock);
	if (r->state == RQ_QUEUED) {
		struct rcv_virt_req **pp = &b->qhead, *prev = NULL;

		while (*pp != NULL && *pp != r) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		assert(*pp == r);
		*pp = r->next;
		if (b->qtail == r)
			b->qtail = prev;
		r->next = NULL;
		unq = true;
	}
	pthread_mutex_unlock(&v->lock);
	return unq;
}

static uint64_t elapsed_ms(const struct rcv_virt_req *r)
{
	return (af_mono_ns() - r->submitted_ns) / AF_NS_PER_MS;
}

static void describe_req(const struct rcv_virt_req *r, char *buf, size_t len)
{
	if (r->kind == REQ_MIGRATE)
		snprintf(buf, len, "migrate %s from blade %d to blade %d", r->domain, r->blade,
		         r->to);
	else if (r->kind == REQ_LIST)
		snprintf(buf, len, "list the domains of blade %d", r->blade);
	else
		snprintf(buf, len, "%s %s on blade %d", req_names[r->kind], r->domain, r->blade);
}

static void answer(struct rcv_virt_req *r, int result, const char *msg)
{
	r->answered = true;
	if (r->kind == REQ_LIST)
		r->list_done(r->opaque, result, result < 0 ? NULL : r->doms,
		             result < 0 ? 0 : r->n_doms);
	else
		r->done(r->opaque, result, msg);
}

static void req_timeout(void *data)
{
	struct rcv_virt_req *r = data;
	struct rcv_virt *v = r->v;
	char what[160], msg[RCV_VIRT_MSG_MAX];
	bool queued;

	r->timer_armed = false;
	if (r->answered)
		return;
	queued = unqueue(v, r);
	r->timed_out = true;
	v->n_timeouts++;
	describe_req(r, what, sizeof(what));
	snprintf(msg, sizeof(msg), "blade %d's libvirt did not answer within %" PRIu32 " ms%s",
	         r->blade, r->timeout_ms, queued ? " (never started: the blade was busy)" : "");
	af_warn("recovery: libvirt #%" PRIu64 ": %s: timed out after %" PRIu64 " ms%s", r->id, what,
	        elapsed_ms(r),
	        queued ? ", dropped unexecuted" : "; outcome unknown, the worker is still in it");
	answer(r, -ETIMEDOUT, msg);
	if (queued)
		req_free(v, r);
}

static void finish(struct rcv_virt *v, struct rcv_virt_req *r)
{
	char what[160];

	describe_req(r, what, sizeof(what));
	if (r->answered) {
		if (r->timed_out) {
			v->n_late++;
			af_warn("recovery: libvirt #%" PRIu64 ": %s: late answer after %" PRIu64
			        " ms discarded: %s (%s)",
			        r->id, what, elapsed_ms(r),
			        r->result < 0 ? strerror(-r->result) : "ok", r->msg);
		}
		req_free(v, r);
		return;
	}
	if (r->timer_armed)
		qb_loop_timer_del(v->loop, r->timer);
	r->timer_armed = false;
	if (r->result < 0) {
		v->n_failed++;
		af_warn("recovery: libvirt #%" PRIu64 ": %s: failed after %" PRIu64 " ms: %s (%s)",
		        r->id, what, elapsed_ms(r), strerror(-r->result), r->msg);
	} else {
		v->n_ok++;
		if (r->kind == REQ_LIST)
			af_debug("recovery: libvirt #%" PRIu64 ": %s: %s in %" PRIu64 " ms", r->id,
			         what, r->msg, elapsed_ms(r));
		else
			af_notice("recovery: libvirt #%" PRIu64 ": %s: done in %" PRIu64 " ms: %s",
			          r->id, what, elapsed_ms(r), r->msg);
	}
	answer(r, r->result, r->msg);
	req_free(v, r);
}

static struct local_dom *ldom_find(struct rcv_virt *v, const char *name)
{
	for (unsigned i = 0; i < v->n_ldoms; i++) {
		if (strcmp(v->ldoms[i].name, name) == 0)
			return &v->ldoms[i];
	}
	return NULL;
}

static struct local_dom *ldom_add(struct rcv_virt *v, const char *name)
{
	struct local_dom *d = realloc(v->ldoms, (v->n_ldoms + 1) * sizeof(*d));

	if (d == NULL)
		return NULL;
	v->ldoms = d;
	d = &v->ldoms[v->n_ldoms++];
	memset(d, 0, sizeof(*d));
	af_strlcpy(d->name, name, sizeof(d->name));
	return d;
}

static void report(struct rcv_virt *v, const char *domain, const char *event)
{
	if (v->ops.lifecycle != NULL)
		v->ops.lifecycle(v->opaque, v->local_blade, domain, event);
}

static void on_lifecycle(struct rcv_virt *v, struct msg *m)
{
	struct local_dom *d = ldom_find(v, m->domain);
	int act = event_active(m->event);

	if (m->text[0])
		af_warn("recovery: libvirt: blade %d: domain %s: unexpected %s", m->blade,
		        m->domain, m->text);
	af_notice("recovery: libvirt: blade %d: domain %s %s", m->blade, m->domain, m->event);
	if (strncmp(m->event, "undefined", 9) == 0) {
		if (d != NULL)
			*d = v->ldoms[--v->n_ldoms];
	} else {
		if (d == NULL)
			d = ldom_add(v, m->domain);
		if (d != NULL && act >= 0)
			d->active = act == 1;
	}
	report(v, m->domain, m->event);
}

/* While the local libvirtd cannot be asked: is each QEMU last seen running
 * still there? */
static void check_pidfiles(struct rcv_virt *v)
{
	char(*gone)[RCV_VIRT_NAME_MAX];
	unsigned n = 0;

	if (v->n_ldoms == 0)
		return;
	gone = calloc(v->n_ldoms, sizeof(*gone));
	if (gone == NULL)
		return;
	for (unsigned i = 0; i < v->n_ldoms; i++) {
		struct local_dom *d = &v->ldoms[i];
		int rc;

		if (!d->active)
			continue;
		rc = rcv_virt_qemu_alive(v->pidfile_dir, d->name);
		if (rc == 0) {
			d->active = false;
			af_strlcpy(gone[n++], d->name, sizeof(gone[0]));
		} else if (rc < 0) {
			af_debug("recovery: libvirt: cannot tell whether the QEMU of %s runs: %s",
			         d->name, strerror(-rc));
		}
	}
	/* reported after the scan: a callback may change the table */
	for (unsigned i = 0; i < n; i++) {
		af_warn("recovery: libvirt: blade %d: the QEMU of domain %s is gone (no process "
		        "behind %s/%s.pid) while libvirtd is unreachable",
		        v->local_blade, gone[i], v->pidfile_dir, gone[i]);
		report(v, gone[i], "stopped-failed");
	}
	free(gone);
}

static void pid_timer_fire(void *data)
{
	struct rcv_virt *v = data;

	v->pid_timer_armed = false;
	if (v->local_up)
		return;
	check_pidfiles(v);
	if (!v->local_up &&
	    qb_loop_timer_add(v->loop, QB_LOOP_MED, v->hv_interval_ms * AF_NS_PER_MS, v,
	                      pid_timer_fire, &v->pid_timer) == 0)
		v->pid_timer_armed = true;
}

/* After a reconnection: what changed while nobody was watching. */
static void resync_local(struct rcv_virt *v, const struct rcv_virt_dom *doms, unsigned n)
{
	struct local_dom *fresh = calloc(n ? n : 1, sizeof(*fresh));
	struct {
		char name[RCV_VIRT_NAME_MAX];
		const char *event;
	} *changes = NULL;
	unsigned nc = 0;

	if (fresh == NULL)
		return;
	if (v->ever_up)
		changes = calloc(v->n_ldoms + n + 1, sizeof(*changes));
	for (unsigned i = 0; i < n; i++) {
		af_strlcpy(fresh[i].name, doms[i].name, sizeof(fresh[i].name));
		fresh[i].active = doms[i].active;
	}
	if (changes != NULL) {
		for (unsigned i = 0; i < v->n_ldoms; i++) {
			const struct rcv_virt_dom *now = NULL;

			if (!v->ldoms[i].active)
				continue;
			for (unsigned k = 0; k < n && now == NULL; k++) {
				if (strcmp(doms[k].name, v->ldoms[i].name) == 0)
					now = &doms[k];
			}
			if (now != NULL && now->active)
				continue;
			af_strlcpy(changes[nc].name, v->ldoms[i].name, sizeof(changes[0].name));
			changes[nc++].event = now != NULL && now->state == VIR_DOMAIN_SHUTOFF
			                              ? rcv_virt_shutoff_event_name(now->reason)
			                              : "stopped-failed";
		}
		for (unsigned k = 0; k < n; k++) {
			struct local_dom *was = ldom_find(v, doms[k].name);

			if (doms[k].active && (was == NULL || !was->active)) {
				af_strlcpy(changes[nc].name, doms[k].name, sizeof(changes[0].name));
				changes[nc++].event = "started";
			}
		}
	}
	free(v->ldoms);
	v->ldoms = fresh;
	v->n_ldoms = n;
	for (unsigned i = 0; i < nc; i++) {
		af_warn("recovery: libvirt: blade %d: domain %s %s while it was not watched",
		        v->local_blade, changes[i].name, changes[i].event);
		report(v, changes[i].name, changes[i].event);
	}
	free(changes);
}

static void on_conn(struct rcv_virt *v, struct msg *m)
{
	uint64_t now = af_mono_ns();
	uint64_t was_ms = (now - v->local_change_ns) / AF_NS_PER_MS;

	if (m->up) {
		if (v->local_up)
			return;
		if (v->ever_up)
			af_notice(
			        "recovery: libvirt: blade %d: connected again to %s after %" PRIu64
			        " ms (%u domains)",
			        m->blade, m->text, was_ms, m->n_doms);
		else
			af_notice("recovery: libvirt: blade %d: connected to %s (%u domains)",
			          m->blade, m->text, m->n_doms);
		v->local_up = true;
		v->local_change_ns = now;
		v->local_why[0] = '\0';
		if (v->pid_timer_armed)
			qb_loop_timer_del(v->loop, v->pid_timer);
		v->pid_timer_armed = false;
		if (v->ops.conn != NULL)
			v->ops.conn(v->opaque, m->blade, true, "");
		/* then what changed while nobody was watching */
		resync_local(v, m->doms, m->n_doms);
		v->ever_up = true;
		return;
	}
	if (!v->local_up && v->local_why[0])
		return; /* already told */
	af_warn("recovery: libvirt: blade %d: %s: %s", m->blade,
	        v->ever_up ? "connection lost" : "cannot connect", m->text);
	v->local_up = false;
	v->local_change_ns = now;
	af_strlcpy(v->local_why, m->text[0] ? m->text : "unknown", sizeof(v->local_why));
	if (v->ops.conn != NULL)
		v->ops.conn(v->opaque, m->blade, false, v->local_why);
	/* the callback may have finalised nothing (not allowed) but may have
	 * made requests: the table is still ours */
	check_pidfiles(v);
	if (!v->local_up && !v->pid_timer_armed &&
	    qb_loop_timer_add(v->loop, QB_LOOP_MED, v->hv_interval_ms * AF_NS_PER_MS, v,
	                      pid_timer_fire, &v->pid_timer) == 0)
		v->pid_timer_armed = true;
}

static int32_t dispatch(int32_t fd, int32_t revents, void *data)
{
	struct rcv_virt *v = data;
	struct msg *m, *next;
	char buf[64];
	uint64_t dropped;

	(void)revents;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&v->lock);
	m = v->mhead;
	v->mhead = v->mtail = NULL;
	dropped = v->dropped;
	v->dropped = 0;
	pthread_mutex_unlock(&v->lock);
	if (dropped)
		af_warn("recovery: libvirt: %" PRIu64 " messages from the workers lost (no memory)",
		        dropped);
	for (; m != NULL; m = next) {
		next = m->next;
		switch (m->kind) {
		case MSG_DONE:
			finish(v, m->req);
			continue; /* m was part of the request */
		case MSG_LOG:
			af_log(AF_SS_RECOVERY, m->prio, "%s", m->text);
			break;
		case MSG_LIFECYCLE:
			on_lifecycle(v, m);
			break;
		case MSG_CONN:
			on_conn(v, m);
			break;
		}
		msg_free(m);
	}
	return 0;
}

/* ---- the API --------------------------------------------------------------------------------- */

static void apply_config(struct rcv_virt *v, const struct af_config *cfg)
{
	pthread_mutex_lock(&v->lock);
	for (int s = 1; s <= AF_MAX_BLADES; s++)
		v->blades[s].configured = false;
	for (unsigned i = 0; i < cfg->n_blades; i++) {
		struct blade *b = blade_of(v, (int)cfg->blades[i].slot);

		if (b == NULL)
			continue;
		b->configured = true;
		af_strlcpy(b->uri, cfg->blades[i].libvirt_uri, sizeof(b->uri));
	}
	v->hv_interval_ms = cfg->detection.hypervisor_interval_ms
	                            ? cfg->detection.hypervisor_interval_ms
	                            : 1000;
	for (int s = 1; s <= AF_MAX_BLADES; s++)
		pthread_cond_signal(&v->blades[s].wake);
	pthread_mutex_unlock(&v->lock);
	v->cfg = cfg;
}

int rcv_virt_init(struct rcv_virt **out, qb_loop_t *loop, const struct af_config *cfg,
                  int local_blade, const struct rcv_virt_ops *ops, void *opaque)
{
	struct rcv_virt *v;
	pthread_condattr_t ca;
	int rc;

	if (out == NULL || loop == NULL || cfg == NULL || local_blade < 0 ||
	    local_blade > AF_MAX_BLADES)
		return -EINVAL;
	if (local_blade > 0 && af_cfg_blade_by_slot(cfg, (uint32_t)local_blade) == NULL)
		return -ENOENT;
	rc = rcv_virt_loop_register(loop);
	if (rc < 0)
		return rc;
	v = calloc(1, sizeof(*v));
	if (v == NULL) {
		rcv_virt_loop_unregister(loop);
		return -ENOMEM;
	}
	v->loop = loop;
	v->local_blade = local_blade;
	if (ops != NULL)
		v->ops = *ops;
	v->opaque = opaque;
	v->pipe[0] = v->pipe[1] = -1;
	v->next_id = 1;
	v->local_change_ns = af_mono_ns();
	af_strlcpy(v->pidfile_dir, RCV_VIRT_PIDFILE_DIR, sizeof(v->pidfile_dir));
	pthread_mutex_init(&v->lock, NULL);
	/* workers wait on CLOCK_MONOTONIC deadlines */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (int s = 0; s <= AF_MAX_BLADES; s++) {
		struct blade *b = &v->blades[s];

		b->v = v;
		b->slot = s;
		b->local = s == local_blade && s > 0;
		b->lifecycle_id = -1;
		pthread_cond_init(&b->wake, &ca);
	}
	pthread_condattr_destroy(&ca);
	apply_config(v, cfg);
	if (pipe2(v->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		goto fail;
	}
	rc = qb_loop_poll_add(loop, QB_LOOP_MED, v->pipe[0], POLLIN, v, dispatch);
	if (rc < 0) {
		close(v->pipe[0]);
		close(v->pipe[1]);
		v->pipe[0] = v->pipe[1] = -1;
		goto fail;
	}
	if (local_blade > 0) {
		rc = start_worker(&v->blades[local_blade]);
		if (rc < 0)
			goto fail;
		af_info("recovery: libvirt: watching blade %d's libvirt at %s", local_blade,
		        v->blades[local_blade].uri);
	}
	*out = v;
	return 0;
fail:
	rcv_virt_fini(v);
	return rc;
}

int rcv_virt_set_pidfile_dir(struct rcv_virt *v, const char *dir)
{
	if (v == NULL || dir == NULL || dir[0] == '\0' ||
	    af_strlcpy(v->pidfile_dir, dir, sizeof(v->pidfile_dir)) >= sizeof(v->pidfile_dir))
		return -EINVAL;
	return 0;
}

int rcv_virt_reconfigure(struct rcv_virt *v, const struct af_config *cfg)
{
	if (v == NULL || cfg == NULL)
		return -EINVAL;
	if (v->local_blade > 0 && af_cfg_blade_by_slot(cfg, (uint32_t)v->local_blade) == NULL)
		return -EINVAL;
	apply_config(v, cfg);
	return 0;
}

static int submit(struct rcv_virt *v, struct rcv_virt_req *r)
{
	struct blade *b = &v->blades[r->blade];
	char what[160];
	int rc;

	pthread_mutex_lock(&v->lock);
	if (!b->configured) {
		rc = -ENOENT;
	} else if (b->running != NULL && b->running->answered) {
		rc = -EBUSY; /* stuck: see rcv_virt.h */
	} else if (r->kind == REQ_MIGRATE) {
		struct blade *to = &v->blades[r->to];

		rc = to->configured ? 0 : -ENOENT;
		af_strlcpy(r->to_uri, to->uri, sizeof(r->to_uri));
	} else {
		rc = 0;
	}
	pthread_mutex_unlock(&v->lock);
	if (rc == 0)
		rc = start_worker(b);
	if (rc == 0)
		rc = qb_loop_timer_add(v->loop, QB_LOOP_MED, (uint64_t)r->timeout_ms * AF_NS_PER_MS,
		                       r, req_timeout, &r->timer);
	describe_req(r, what, sizeof(what));
	if (rc < 0) {
		af_warn("recovery: libvirt: refused to %s: %s", what, strerror(-rc));
		free(r);
		return rc;
	}
	r->timer_armed = true;
	r->id = v->next_id++;
	r->submitted_ns = af_mono_ns();
	r->deadline_ns = r->submitted_ns + (uint64_t)r->timeout_ms * AF_NS_PER_MS;
	r->all_next = v->all;
	if (v->all != NULL)
		v->all->all_prev = r;
	v->all = r;
	pthread_mutex_lock(&v->lock);
	r->state = RQ_QUEUED;
	if (b->qtail != NULL)
		b->qtail->next = r;
	else
		b->qhead = r;
	b->qtail = r;
	pthread_cond_signal(&b->wake);
	pthread_mutex_unlock(&v->lock);
	if (r->kind == REQ_LIST)
		af_debug("recovery: libvirt #%" PRIu64 ": %s", r->id, what);
	else
		af_notice("recovery: libvirt #%" PRIu64 ": %s (timeout %" PRIu32 " ms)", r->id,
		          what, r->timeout_ms);
	return 0;
}

static struct rcv_virt_req *req_new(struct rcv_virt *v, enum req_kind kind, int blade,
                                    const char *domain, uint32_t timeout_ms, void *opaque)
{
	struct rcv_virt_req *r;

	if (blade_of(v, blade) == NULL || timeout_ms == 0)
		return NULL;
	if (kind != REQ_LIST && !valid_domain(domain))
		return NULL;
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->v = v;
	r->kind = kind;
	r->blade = blade;
	r->timeout_ms = timeout_ms;
	r->opaque = opaque;
	if (domain != NULL)
		af_strlcpy(r->domain, domain, sizeof(r->domain));
	return r;
}

static int simple(struct rcv_virt *v, enum req_kind kind, int blade, const char *domain,
                  const char *xml_path, uint32_t timeout_ms, rcv_virt_done_fn done, void *opaque)
{
	struct rcv_virt_req *r;

	if (v == NULL || done == NULL)
		return -EINVAL;
	if (xml_path != NULL && strlen(xml_path) >= AF_CFG_PATH_MAX)
		return -EINVAL;
	r = req_new(v, kind, blade, domain, timeout_ms, opaque);
	if (r == NULL)
		return blade_of(v, blade) && timeout_ms && valid_domain(domain) ? -ENOMEM : -EINVAL;
	r->done = done;
	if (xml_path != NULL)
		af_strlcpy(r->xml_path, xml_path, sizeof(r->xml_path));
	return submit(v, r);
}

int rcv_virt_start(struct rcv_virt *v, int blade, const char *domain, const char *xml_path,
                   uint32_t timeout_ms, rcv_virt_done_fn done, void *opaque)
{
	return simple(v, REQ_START, blade, domain, xml_path, timeout_ms, done, opaque);
}

int rcv_virt_stop(struct rcv_virt *v, int blade, const char *domain, uint32_t timeout_ms,
                  rcv_virt_done_fn done, void *opaque)
{
	return simple(v, REQ_STOP, blade, domain, NULL, timeout_ms, done, opaque);
}

int rcv_virt_restart(struct rcv_virt *v, int blade, const char *domain, uint32_t timeout_ms,
                     rcv_virt_done_fn done, void *opaque)
{
	return simple(v, REQ_RESTART, blade, domain, NULL, timeout_ms, done, opaque);
}

int rcv_virt_migrate(struct rcv_virt *v, int from, int to, const char *domain,
                     const char *migrate_uri, uint32_t timeout_ms, rcv_virt_done_fn done,
                     void *opaque)
{
	struct rcv_virt_req *r;

	if (v == NULL || done == NULL || from == to || blade_of(v, to) == NULL ||
	    blade_of(v, from) == NULL || timeout_ms == 0 || !valid_domain(domain) ||
	    (migrate_uri != NULL && strlen(migrate_uri) >= AF_CFG_PATH_MAX))
		return -EINVAL;
	r = req_new(v, REQ_MIGRATE, from, domain, timeout_ms, opaque);
	if (r == NULL)
		return -ENOMEM;
	r->done = done;
	r->to = to;
	r->unsafe = v->cfg->recovery.migrate_unsafe;
	if (migrate_uri != NULL)
		af_strlcpy(r->migrate_uri, migrate_uri, sizeof(r->migrate_uri));
	return submit(v, r);
}

int rcv_virt_list(struct rcv_virt *v, int blade, rcv_virt_list_fn done, void *opaque)
{
	struct rcv_virt_req *r;

	if (v == NULL || done == NULL || blade_of(v, blade) == NULL)
		return -EINVAL;
	r = req_new(v, REQ_LIST, blade, NULL, RCV_VIRT_LIST_TIMEOUT_MS, opaque);
	if (r == NULL)
		return -ENOMEM;
	r->list_done = done;
	return submit(v, r);
}

void rcv_virt_forget(struct rcv_virt *v, void *opaque)
{
	struct rcv_virt_req *r, *next;

	if (v == NULL)
		return;
	for (r = v->all; r != NULL; r = next) {
		next = r->all_next;
		if (r->opaque != opaque || r->answered)
			continue;
		r->answered = true;
		if (r->timer_armed)
			qb_loop_timer_del(v->loop, r->timer);
		r->timer_armed = false;
		if (unqueue(v, r))
			req_free(v, r);
	}
}

bool rcv_virt_local_up(const struct rcv_virt *v)
{
	return v != NULL && v->local_up;
}

void rcv_virt_describe(const struct rcv_virt *cv, struct af_module_status *st)
{
	struct rcv_virt *v = (struct rcv_virt *)cv; /* the lock is not part of the value */
	char stuck[64] = "", where[96];
	size_t pos = 0;

	st->name = "libvirt";
	if (v == NULL) {
		st->state = "stopped";
		st->detail[0] = '\0';
		return;
	}
	pthread_mutex_lock(&v->lock);
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		const struct rcv_virt_req *r = v->blades[s].running;

		if (r != NULL && r->answered && pos < sizeof(stuck)) {
			int n = snprintf(stuck + pos, sizeof(stuck) - pos, "%s%d", pos ? "," : "",
			                 s);

			if (n > 0)
				pos += (size_t)n;
		}
	}
	pthread_mutex_unlock(&v->lock);
	st->state = (v->local_blade > 0 && !v->local_up) || stuck[0] ? "degraded" : "running";
	if (v->local_blade == 0)
		snprintf(where, sizeof(where), "no local blade");
	else if (v->local_up)
		snprintf(where, sizeof(where), "blade %d connected", v->local_blade);
	else
		snprintf(where, sizeof(where), "blade %d NOT connected (%.60s)", v->local_blade,
		         v->local_why);
	snprintf(st->detail, sizeof(st->detail),
	         "%s; %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " timed out%s%s", where,
	         v->n_ok, v->n_failed, v->n_timeouts, stuck[0] ? "; stuck: blades " : "", stuck);
}

void rcv_virt_fini(struct rcv_virt *v)
{
	bool abandoned = false;
	qb_loop_t *loop;
	struct msg *m, *next;

	if (v == NULL)
		return;
	pthread_mutex_lock(&v->lock);
	v->stop = true;
	for (int s = 0; s <= AF_MAX_BLADES; s++)
		pthread_cond_broadcast(&v->blades[s].wake);
	pthread_mutex_unlock(&v->lock);
	for (int s = 0; s <= AF_MAX_BLADES; s++) {
		struct blade *b = &v->blades[s];
		uint64_t deadline = af_mono_ns() + RCV_VIRT_FINI_WAIT_MS * AF_NS_PER_MS;
		bool exited;

		if (!b->started)
			continue;
		/* a worker inside a hung libvirt call cannot be interrupted */
		for (;;) {
			pthread_mutex_lock(&v->lock);
			exited = b->exited;
			pthread_mutex_unlock(&v->lock);
			if (exited || af_mono_ns() >= deadline)
				break;
			usleep(10000);
		}
		if (exited) {
			pthread_join(b->thread, NULL);
		} else {
			af_err("recovery: libvirt: the worker of blade %d is stuck in libvirt; left "
			       "behind with its memory",
			       s);
			pthread_detach(b->thread);
			abandoned = true;
		}
	}
	for (struct rcv_virt_req *r = v->all; r != NULL; r = r->all_next) {
		if (r->timer_armed)
			qb_loop_timer_del(v->loop, r->timer);
		r->timer_armed = false;
	}
	if (v->pid_timer_armed)
		qb_loop_timer_del(v->loop, v->pid_timer);
	v->pid_timer_armed = false;
	if (v->pipe[0] >= 0)
		qb_loop_poll_del(v->loop, v->pipe[0]);
	if (abandoned)
		return; /* the worker still writes to the pipe and reads v (and
		         * keeps its libvirt objects: the loop stays registered) */
	if (v->pipe[0] >= 0) {
		close(v->pipe[0]);
		close(v->pipe[1]);
	}
	for (m = v->mhead; m != NULL; m = next) {
		next = m->next;
		msg_free(m);
	}
	while (v->all != NULL)
		req_free(v, v->all);
	for (int s = 0; s <= AF_MAX_BLADES; s++)
		pthread_cond_destroy(&v->blades[s].wake);
	pthread_mutex_destroy(&v->lock);
	free(v->ldoms);
	loop = v->loop;
	af_info("recovery: libvirt: stopped (%" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64
	        " timed out)",
	        v->n_ok, v->n_failed, v->n_timeouts);
	free(v);
	/* the connections are closed: what libvirt removed is freed now */
	rcv_virt_loop_unregister(loop);
}
