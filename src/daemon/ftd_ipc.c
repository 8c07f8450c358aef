/*
 * The IPC server: a libqb IPC service driven by the daemon's qb_loop.
 * Connections are admitted only for root, the daemon's own user and members
 * of the configured group; every request is decoded and validated before it
 * reaches a handler, and every request gets exactly one answer (libqb clients
 * block until they have one).
 */
#include "config.h"

#define AF_LOG_SS AF_SS_IPC
#include "ftd.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <qb/qbipcs.h>

/* Descriptors kept for the daemon's own work (the journal and its
 * compaction, SEL cursors, IPMI and libvirt sessions, the log, a blackbox).
 * With fewer than FTD_FD_RESERVE left, a new client is refused (EMFILE)
 * once libqb has read its credentials; with fewer than FTD_FD_FLOOR left
 * (connections that never send them: libqb keeps those open), the
 * listening socket is not polled at all and new connections wait in its
 * backlog. Without the floor, a listening socket whose accept() fails with
 * EMFILE stays readable and libqb's loop spins on it, logging every
 * failure (measured: a million log lines in three seconds). */
#define FTD_FD_RESERVE 32
#define FTD_FD_FLOOR 16
#define FTD_FD_RETRY_MS 500

/* A request answered later (fence, unfence): it holds a reference on its
 * connection until the answer is sent or the client goes away. */
struct ftd_pending {
	struct ftd_ipc *ipc;
	qb_ipcs_connection_t *c;
	uint16_t op;
	uint32_t seq;
	struct ftd_pending *next;
};

struct ftd_ipc {
	struct ftd_ctx *ctx;
	struct ftd_pending *pending;
	qb_ipcs_service_t *svc;
	unsigned n_clients;
	uint64_t requests;
	uint64_t rejected_requests;
	uint64_t refused_connections;
	/* the listening socket, dispatched through listen_dispatch() */
	int listen_fd;
	enum qb_loop_priority listen_prio;
	int32_t listen_events;
	qb_ipcs_dispatch_fn_t listen_fn;
	void *listen_data;
	bool listen_paused;
	qb_loop_timer_handle listen_timer;
	uint64_t fd_low_since_ns; /* 0: descriptors are not short */
	uint64_t fd_pauses;       /* times accepting stopped for want of descriptors */
};

/* Per-connection state, attached with qb_ipcs_context_set(). */
struct ftd_conn {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	char client[64];
};

bool ftd_access_decide(uid_t uid, gid_t gid, uid_t self, gid_t allowed_gid, const gid_t *groups,
                       int n_groups)
{
	if (uid == 0 || uid == self)
		return true;
	if (allowed_gid == (gid_t)-1)
		return false;
	if (gid == allowed_gid)
		return true;
	for (int i = 0; groups != NULL && i < n_groups; i++) {
		if (groups[i] == allowed_gid)
			return true;
	}
	return false;
}

bool ftd_access_allowed(uid_t uid, gid_t gid, gid_t allowed_gid)
{
	gid_t *groups = NULL;
	int n = 0;
	bool ok;

	if (ftd_access_decide(uid, gid, geteuid(), allowed_gid, NULL, 0))
		return true;
	if (allowed_gid == (gid_t)-1)
		return false;
	/* Supplementary groups are not in SO_PEERCRED: ask the user database.
	 * A user it does not know gets no supplementary groups. */
	if (af_user_groups(uid, &groups, &n) < 0)
		return false;
	ok = ftd_access_decide(uid, gid, geteuid(), allowed_gid, groups, n);
	free(groups);
	return ok;
}

static struct ftd_ipc *ipc_of(qb_ipcs_connection_t *c)
{
	return qb_ipcs_connection_service_context_get(c);
}

/* Whether fewer than keep descriptors are left. */
static bool fds_short(unsigned keep, unsigned *open_fds, unsigned *limit)
{
	if (af_fd_usage(open_fds, limit) < 0)
		return false; /* cannot tell: let it try */
	return *open_fds + keep >= *limit;
}

static int32_t on_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
	struct ftd_ipc *ipc = ipc_of(c);
	const struct af_cfg_daemon *d = &ipc->ctx->cfg->daemon;
	unsigned n, limit;

	if (!ftd_access_allowed(uid, gid, d->ipc_gid)) {
		ipc->refused_connections++;
		af_warn("refused IPC connection from uid %u gid %u: only root%s%s may connect",
		        (unsigned)uid, (unsigned)gid, d->ipc_group[0] ? " and group " : "",
		        d->ipc_group);
		return -EACCES;
	}
	if (fds_short(FTD_FD_RESERVE, &n, &limit)) {
		ipc->refused_connections++;
		af_warn("refused IPC connection from uid %u: file descriptors nearly exhausted (%u "
		        "of %u open, %u kept for the daemon's own work)",
		        (unsigned)uid, n, limit, FTD_FD_RESERVE);
		return -EMFILE;
	}
	if (ipc->n_clients >= d->ipc_max_clients) {
		ipc->refused_connections++;
		af_warn("refused IPC connection from uid %u: %u clients already connected (max %u)",
		        (unsigned)uid, ipc->n_clients, d->ipc_max_clients);
		return -EMFILE;
	}
	return 0;
}

static void on_created(qb_ipcs_connection_t *c)
{
	struct ftd_ipc *ipc = ipc_of(c);
	struct qb_ipcs_connection_stats st;
	struct ftd_conn *conn = calloc(1, sizeof(*conn));

	if (conn == NULL) {
		af_err("out of memory for a new IPC client: disconnecting it");
		qb_ipcs_disconnect(c);
		return;
	}
	if (qb_ipcs_connection_stats_get(c, &st, QB_FALSE) == 0)
		conn->pid = st.client_pid;
	af_strlcpy(conn->client, "unknown", sizeof(conn->client));
	qb_ipcs_context_set(c, conn);
	ipc->n_clients++;
	af_debug("IPC client pid %d connected (%u clients)", (int)conn->pid, ipc->n_clients);
}

/* libqb also calls this for connections it refused in on_accept(), which
 * never had a context: only connections counted in on_created() are
 * uncounted here, or refused clients would open room beyond the limit. */
static void on_destroyed(qb_ipcs_connection_t *c)
{
	struct ftd_ipc *ipc = ipc_of(c);
	struct ftd_conn *conn = qb_ipcs_context_get(c);

	if (conn == NULL)
		return;
	if (ipc->n_clients > 0)
		ipc->n_clients--;
	af_debug("IPC client pid %d (%s) gone", (int)conn->pid, conn->client);
	free(conn);
	qb_ipcs_context_set(c, NULL);
}

static void drop_pending(struct ftd_ipc *ipc, qb_ipcs_connection_t *c)
{
	struct ftd_pending **p = &ipc->pending;

	while (*p != NULL) {
		struct ftd_pending *pd = *p;

		if (c != NULL && pd->c != c) {
			p = &pd->next;
			continue;
		}
		*p = pd->next;
		ftd_fence_forget(ipc->ctx, pd);
		ftd_vmft_forget(ipc->ctx, pd);
		qb_ipcs_connection_unref(pd->c);
		free(pd);
	}
}

/* A client that leaves while its fence runs: the fence goes on (it was
 * asked for), only the answer is dropped. */
static int32_t on_closed(qb_ipcs_connection_t *c)
{
	drop_pending(ipc_of(c), c);
	return 0;
}

/* Serialises doc behind the response headers and sends it. */
static void send_json(qb_ipcs_connection_t *c, uint16_t op, uint32_t seq, int32_t status,
                      json_object *doc)
{
	size_t off = af_ipc_rsp_payload_offset(), len, total;
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
	json_object *too_big = NULL;
	char *buf;
	ssize_t sent;

	len = strlen(text);
	if (off + len > AF_IPC_RSP_MAX) {
		af_err("answer to %s is %zu bytes, over the %d byte limit", af_ipc_op_name(op), len,
		       AF_IPC_RSP_MAX);
		too_big = ftd_error_json("answer too large", -EMSGSIZE);
		text = json_object_to_json_string_ext(too_big, JSON_C_TO_STRING_PLAIN);
		len = strlen(text);
		status = -EMSGSIZE;
	}
	buf = malloc(off + len);
	if (buf == NULL) {
		af_err("out of memory answering %s", af_ipc_op_name(op));
		json_object_put(too_big);
		return;
	}
	memcpy(buf + off, text, len);
	total = af_ipc_rsp_finish(buf, op, seq, status, len);
	sent = qb_ipcs_response_send(c, buf, total);
	if (sent < 0)
		af_warn("could not answer %s: %s", af_ipc_op_name(op), strerror((int)-sent));
	free(buf);
	json_object_put(too_big);
}

static void pending_reply(void *opaque, int status, json_object *doc)
{
	struct ftd_pending *pd = opaque;
	struct ftd_ipc *ipc = pd->ipc;

	for (struct ftd_pending **p = &ipc->pending; *p != NULL; p = &(*p)->next) {
		if (*p == pd) {
			*p = pd->next;
			break;
		}
	}
	send_json(pd->c, pd->op, pd->seq, status, doc);
	qb_ipcs_connection_unref(pd->c);
	free(pd);
}

static void defer(struct ftd_ipc *ipc, qb_ipcs_connection_t *c, const struct af_ipc_request *req)
{
	struct ftd_pending *pd = calloc(1, sizeof(*pd));
	json_object *doc;

	if (pd == NULL) {
		doc = ftd_error_json("out of memory", -ENOMEM);
		send_json(c, req->op, req->seq, -ENOMEM, doc);
		json_object_put(doc);
		return;
	}
	pd->ipc = ipc;
	pd->c = c;
	pd->op = req->op;
	pd->seq = req->seq;
	qb_ipcs_connection_ref(c);
	pd->next = ipc->pending;
	ipc->pending = pd;
	if (req->op == AF_OP_VMFT)
		ftd_vmft_request(ipc->ctx, req, pending_reply, pd);
	else
		ftd_fence_request(ipc->ctx, req, pending_reply, pd);
}

static int32_t on_message(qb_ipcs_connection_t *c, void *data, size_t size)
{
	struct ftd_ipc *ipc = ipc_of(c);
	struct ftd_conn *conn = qb_ipcs_context_get(c);
	struct af_ipc_request req;
	json_object *doc = NULL;
	char err[160];
	int rc;

	ipc->requests++;
	/* libqb hands us the size the client wrote in its header, not the size
	 * it received; the decoder's hard AF_IPC_REQ_MAX cap keeps a lying
	 * client inside libqb's (much larger, double-mapped) ring buffer. */
	rc = af_ipc_req_decode(data, size, &req, err, sizeof(err));
	if (rc < 0) {
		ipc->rejected_requests++;
		af_warn("rejected IPC request from pid %d: %s", conn ? (int)conn->pid : -1, err);
		doc = ftd_error_json(err, rc);
		if (rc == -EPROTONOSUPPORT) {
			json_object_object_add(doc, "min_version",
			                       json_object_new_int(AF_IPC_VERSION_MIN));
			json_object_object_add(doc, "max_version",
			                       json_object_new_int(AF_IPC_VERSION));
		}
		/* op/seq are only meaningful when the header itself was sound */
		send_json(c, (rc == -EPROTONOSUPPORT || rc == -EOPNOTSUPP) ? req.op : 0, req.seq,
		          rc, doc);
		json_object_put(doc);
		return 0;
	}
	if (conn != NULL && req.has_client)
		af_strlcpy(conn->client, req.client, sizeof(conn->client));
	af_debug("IPC %s from pid %d (%s)", af_ipc_op_name(req.op), conn ? (int)conn->pid : -1,
	         conn ? conn->client : "?");
	if (req.op == AF_OP_FENCE || req.op == AF_OP_UNFENCE || ftd_vmft_deferred(&req)) {
		defer(ipc, c, &req);
		return 0;
	}
	rc = ftd_dispatch(ipc->ctx, &req, &doc);
	send_json(c, req.op, req.seq, rc, doc);
	json_object_put(doc);
	return 0;
}

static int32_t listen_dispatch(int32_t fd, int32_t revents, void *data);

static void listen_retry(void *data)
{
	struct ftd_ipc *ipc = data;
	unsigned n, limit;

	if (fds_short(FTD_FD_FLOOR, &n, &limit)) {
		if (qb_loop_timer_add(NULL, QB_LOOP_LOW, FTD_FD_RETRY_MS * 1000000ULL, ipc,
		                      listen_retry, &ipc->listen_timer) == 0)
			return;
		/* never left paused for good */
		af_err("cannot arm the IPC retry timer: accepting again");
	}
	ipc->listen_paused = false;
	if (qb_loop_poll_mod(NULL, ipc->listen_prio, ipc->listen_fd, ipc->listen_events, ipc,
	                     listen_dispatch) < 0)
		af_err("cannot resume accepting IPC connections");
	af_notice("IPC: accepting connections again after %.1f s (%u of %u descriptors open)",
	          (double)(af_mono_ns() - ipc->fd_low_since_ns) / 1e9, n, limit);
	ipc->fd_low_since_ns = 0;
}

/* Accepts (through libqb) only while descriptors remain for the daemon's
 * own work; otherwise stops polling the socket and looks again later. */
static int32_t listen_dispatch(int32_t fd, int32_t revents, void *data)
{
	struct ftd_ipc *ipc = data;
	unsigned n, limit;

	if (!(revents & POLLIN) || !fds_short(FTD_FD_FLOOR, &n, &limit))
		return ipc->listen_fn(fd, revents, ipc->listen_data);
	ipc->fd_pauses++;
	if (ipc->fd_low_since_ns == 0) {
		ipc->fd_low_since_ns = af_mono_ns();
		af_warn("IPC: file descriptors nearly exhausted (%u of %u open, %u kept for the "
		        "daemon's own work): new connections wait until some are closed",
		        n, limit, FTD_FD_FLOOR);
	}
	/* the timer first: a socket paused without one would stay paused */
	if (qb_loop_timer_add(NULL, QB_LOOP_LOW, FTD_FD_RETRY_MS * 1000000ULL, ipc, listen_retry,
	                      &ipc->listen_timer) < 0)
		goto anyway;
	if (qb_loop_poll_mod(NULL, ipc->listen_prio, fd, 0, ipc, listen_dispatch) < 0) {
		qb_loop_timer_del(NULL, ipc->listen_timer);
		goto anyway;
	}
	ipc->listen_paused = true;
	return 0;
anyway:
	af_err("cannot pause the IPC socket: accepting anyway");
	return ipc->listen_fn(fd, revents, ipc->listen_data);
}

static bool is_listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

/* libqb's poll callbacks carry no user pointer, so they use the default
 * qb_loop (the first one created: the daemon's). */
static int32_t job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
	return qb_loop_job_add(NULL, p, data, fn);
}

static int32_t dispatch_add(enum qb_loop_priority p, int32_t fd, int32_t events, void *data,
                            qb_ipcs_dispatch_fn_t fn)
{
	/* libqb registers its listening socket with the service as data
	 * (whose context is our ftd_ipc); each connection's socket with
	 * the connection */
	if (is_listening(fd) && data != NULL) {
		struct ftd_ipc *ipc = qb_ipcs_service_context_get(data);

		if (ipc != NULL && ipc->svc == data && ipc->listen_fn == NULL) {
			ipc->listen_fd = fd;
			ipc->listen_prio = p;
			ipc->listen_events = events;
			ipc->listen_fn = fn;
			ipc->listen_data = data;
			return qb_loop_poll_add(NULL, p, fd, events, ipc, listen_dispatch);
		}
	}
	return qb_loop_poll_add(NULL, p, fd, events, data, fn);
}

static int32_t dispatch_mod(enum qb_loop_priority p, int32_t fd, int32_t events, void *data,
                            qb_ipcs_dispatch_fn_t fn)
{
	return qb_loop_poll_mod(NULL, p, fd, events, data, fn);
}

static int32_t dispatch_del(int32_t fd)
{
	return qb_loop_poll_del(NULL, fd);
}

static struct qb_ipcs_poll_handlers poll_handlers = {
        .job_add = job_add,
        .dispatch_add = dispatch_add,
        .dispatch_mod = dispatch_mod,
        .dispatch_del = dispatch_del,
};

static struct qb_ipcs_service_handlers service_handlers = {
        .connection_accept = on_accept,
        .connection_created = on_created,
        .msg_process = on_message,
        .connection_closed = on_closed,
        .connection_destroyed = on_destroyed,
};

int ftd_ipc_init(struct ftd_ipc **out, struct ftd_ctx *ctx)
{
	struct ftd_ipc *ipc;
	int rc;

	ipc = calloc(1, sizeof(*ipc));
	if (ipc == NULL)
		return -ENOMEM;
	ipc->ctx = ctx;
	ipc->svc = qb_ipcs_create(ctx->cfg->daemon.ipc_name, 0, QB_IPC_SHM, &service_handlers);
	if (ipc->svc == NULL) {
		rc = errno ? -errno : -ENOMEM;
		af_err("cannot create IPC service '%s': %s", ctx->cfg->daemon.ipc_name,
		       strerror(-rc));
		goto fail;
	}
	ipc->listen_fd = -1;
	qb_ipcs_service_context_set(ipc->svc, ipc);
	qb_ipcs_poll_handlers_set(ipc->svc, &poll_handlers);
	qb_ipcs_enforce_buffer_size(ipc->svc, AF_IPC_RSP_MAX + 4096);
	rc = qb_ipcs_run(ipc->svc);
	if (rc < 0) {
		/* qb_ipcs_run() has already released the service on failure */
		af_err("cannot start IPC service '%s': %s (another atca-ftd running?)",
		       ctx->cfg->daemon.ipc_name, strerror(-rc));
		goto fail;
	}
	af_info("IPC service '%s' listening (root%s%s)%s", ctx->cfg->daemon.ipc_name,
	        ctx->cfg->daemon.ipc_group[0] ? " and group " : " only", ctx->cfg->daemon.ipc_group,
	        ipc->listen_fn ? "" : "; no descriptor reserve (libqb's socket not recognised)");
	*out = ipc;
	return 0;

fail:
	free(ipc);
	return rc;
}

void ftd_ipc_describe(const struct ftd_ipc *ipc, struct af_module_status *st)
{
	st->name = "ipc";
	if (ipc == NULL) {
		st->state = "stopped";
		return;
	}
	st->state = ipc->listen_paused ? "degraded" : "running";
	snprintf(st->detail, sizeof(st->detail),
	         "%s%u clients, %llu requests, %llu rejected, %llu connections refused, %llu "
	         "descriptor waits",
	         ipc->listen_paused ? "file descriptors nearly exhausted: not accepting; " : "",
	         ipc->n_clients, (unsigned long long)ipc->requests,
	         (unsigned long long)ipc->rejected_requests,
	         (unsigned long long)ipc->refused_connections, (unsigned long long)ipc->fd_pauses);
}

void ftd_ipc_fini(struct ftd_ipc *ipc)
{
	if (ipc == NULL)
		return;
	drop_pending(ipc, NULL);
	if (ipc->listen_paused)
		qb_loop_timer_del(NULL, ipc->listen_timer);
	/* destroy disconnects every client and removes the socket */
	qb_ipcs_destroy(ipc->svc);
	free(ipc);
}
