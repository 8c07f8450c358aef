/*
 * corosync membership for atca-ftd: a CPG group (the daemons, and the
 * totally ordered channel their messages travel on) and votequorum (which
 * blades are up, and whether this side is quorate), both on the one qb_loop.
 *
 * A blade's corosync node id is its slot number. Two memberships matter and
 * are kept apart: a node leaving the corosync membership is evidence that
 * the blade or its host died (node.leave goes to the failure model); a
 * daemon leaving the CPG group while its node stays only means atca-ftd
 * stopped there (it is shown, never treated as a fault).
 *
 * Without corosync (not started yet, or it died) the daemon is not quorate:
 * no takeover happens from here, and the connection is retried every second.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_CLUSTER
#include "ftd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corosync/cpg.h>
#include <corosync/votequorum.h>

#include "rcv.h"

#define RETRY_MS 1000
#define TXQ_MAX 64      /* messages waiting while corosync says "try again" */
#define TXQ_RETRY_MS 20 /* it says so for a while around membership changes */

struct txmsg {
	size_t len;
	char *buf;
};

struct ftd_cluster {
	struct ftd_ctx *ctx;
	cpg_handle_t cpg;
	bool cpg_ok;
	votequorum_handle_t vq;
	bool vq_ok;
	qb_loop_timer_handle retry;
	bool retry_on;
	bool quorate;
	bool have_quorum;
	bool node[AF_MAX_BLADES + 1];   /* in the corosync membership */
	bool daemon[AF_MAX_BLADES + 1]; /* in the CPG group */
	uint32_t local_nodeid;
	uint64_t tx, tx_fail, rx;
	char why[96];
	unsigned txq_head, txq_len;
	struct txmsg txq[TXQ_MAX];
	qb_loop_timer_handle txq_timer;
	bool txq_timer_on;
};

static void retry_fire(void *data);
static void txq_drop_all(struct ftd_cluster *c);

static void cluster_event(struct ftd_cluster *c, enum af_ev_kind kind, int blade, const char *k,
                          const char *v)
{
	struct af_event ev;
	char ent[16];

	snprintf(ent, sizeof(ent), "blade%d", blade);
	af_event_init(&ev, AF_SRC_CLUSTER, kind, blade, blade > 0 ? ent : NULL);
	if (k != NULL)
		af_event_set(&ev, k, "%s", v);
	ftd_event_sink(c->ctx, &ev);
}

static void push_membership(struct ftd_cluster *c)
{
	if (c->ctx->rcv != NULL)
		rcv_membership(c->ctx->rcv, c->have_quorum && c->quorate && c->vq_ok, c->node,
		               c->daemon);
}

/* ---- votequorum ------------------------------------------------------------------------ */

static void vq_notify(votequorum_handle_t h, uint64_t context, uint32_t quorate, uint32_t n,
                      votequorum_node_t nodes[])
{
	struct ftd_cluster *c = (struct ftd_cluster *)(uintptr_t)context;
	bool now[AF_MAX_BLADES + 1] = {false};

	(void)h;
	for (uint32_t i = 0; i < n; i++) {
		if (nodes[i].nodeid == 0 || nodes[i].nodeid > AF_MAX_BLADES) {
			af_warn("corosync node id %u is not a slot (1..%d): ignored (a blade's node "
			        "id must be its slot number)",
			        nodes[i].nodeid, AF_MAX_BLADES);
			continue;
		}
		if (nodes[i].state == VOTEQUORUM_NODESTATE_MEMBER)
			now[nodes[i].nodeid] = true;
	}
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		if (now[s] == c->node[s])
			continue;
		c->node[s] = now[s];
		af_notice("membership: blade %d %s the corosync membership", s,
		          now[s] ? "joined" : "left");
		cluster_event(c, now[s] ? AF_EV_NODE_JOIN : AF_EV_NODE_LEAVE, s, "via",
		              "votequorum");
	}
	if (!c->have_quorum || (bool)quorate != c->quorate) {
		bool was = c->have_quorum && c->quorate;

		c->have_quorum = true;
		c->quorate = quorate != 0;
		af_notice("membership: %s (%u nodes)", c->quorate ? "quorate" : "NOT quorate", n);
		if (was != c->quorate)
			cluster_event(c, AF_EV_QUORUM, 0, "state",
			              c->quorate ? "regained" : "lost");
	}
	push_membership(c);
}

static int vq_dispatch(int fd, int revents, void *data)
{
	struct ftd_cluster *c = data;
	cs_error_t rc;

	(void)fd;
	(void)revents;
	rc = votequorum_dispatch(c->vq, CS_DISPATCH_ALL);
	if (rc != CS_OK && rc != CS_ERR_TRY_AGAIN) {
		af_err("votequorum: connection lost (error %d): not quorate until corosync is back",
		       rc);
		ftd_cluster_disconnect(c);
		return -1; /* qb_loop drops the fd */
	}
	return 0;
}

/* ---- CPG ------------------------------------------------------------------------------- */

static void cpg_deliver(cpg_handle_t h, const struct cpg_name *group, uint32_t nodeid, uint32_t pid,
                        void *msg, size_t len)
{
	struct ftd_cluster *c;

	(void)group;
	(void)pid;
	if (cpg_context_get(h, (void **)&c) != CS_OK || c == NULL)
		return;
	c->rx++;
	if (c->ctx->rcv != NULL)
		rcv_deliver(c->ctx->rcv, nodeid <= AF_MAX_BLADES ? nodeid : 0, msg, len);
}

static const char *reason_name(uint32_t r)
{
	switch (r) {
	case CPG_REASON_JOIN:
		return "joined";
	case CPG_REASON_LEAVE:
		return "left";
	case CPG_REASON_NODEDOWN:
		return "node down";
	case CPG_REASON_NODEUP:
		return "node up";
	case CPG_REASON_PROCDOWN:
		return "process down";
	default:
		return "?";
	}
}

static void cpg_confchg(cpg_handle_t h, const struct cpg_name *group,
                        const struct cpg_address *members, size_t n_members,
                        const struct cpg_address *left, size_t n_left,
                        const struct cpg_address *joined, size_t n_joined)
{
	struct ftd_cluster *c;

	(void)group;
	if (cpg_context_get(h, (void **)&c) != CS_OK || c == NULL)
		return;
	for (size_t i = 0; i < n_left; i++)
		af_notice("membership: atca-ftd of blade %u left the group (%s)", left[i].nodeid,
		          reason_name(left[i].reason));
	for (size_t i = 0; i < n_joined; i++)
		af_notice("membership: atca-ftd of blade %u joined the group", joined[i].nodeid);
	memset(c->daemon, 0, sizeof(c->daemon));
	for (size_t i = 0; i < n_members; i++) {
		if (members[i].nodeid >= 1 && members[i].nodeid <= AF_MAX_BLADES)
			c->daemon[members[i].nodeid] = true;
	}
	push_membership(c);
}

static int cpg_dispatch_fd(int fd, int revents, void *data)
{
	struct ftd_cluster *c = data;
	cs_error_t rc;

	(void)fd;
	(void)revents;
	rc = cpg_dispatch(c->cpg, CS_DISPATCH_ALL);
	if (rc != CS_OK && rc != CS_ERR_TRY_AGAIN) {
		af_err("cpg: connection lost (error %d): retrying every %d ms", rc, RETRY_MS);
		ftd_cluster_disconnect(c);
		return -1;
	}
	return 0;
}

static cpg_model_v1_data_t cpg_model = {
        .model = CPG_MODEL_V1,
        .cpg_deliver_fn = cpg_deliver,
        .cpg_confchg_fn = cpg_confchg,
        .cpg_totem_confchg_fn = NULL,
        .flags = 0,
};

/* ---- connection ------------------------------------------------------------------------ */

void ftd_cluster_disconnect(struct ftd_cluster *c)
{
	bool was = c->have_quorum && c->quorate;

	txq_drop_all(c);
	if (c->cpg_ok) {
		int fd;

		if (cpg_fd_get(c->cpg, &fd) == CS_OK)
			qb_loop_poll_del(c->ctx->loop, fd);
		cpg_finalize(c->cpg);
		c->cpg_ok = false;
	}
	if (c->vq_ok) {
		int fd;

		if (votequorum_fd_get(c->vq, &fd) == CS_OK)
			qb_loop_poll_del(c->ctx->loop, fd);
		votequorum_finalize(c->vq);
		c->vq_ok = false;
	}
	c->have_quorum = false;
	c->quorate = false;
	memset(c->daemon, 0, sizeof(c->daemon));
	if (was)
		cluster_event(c, AF_EV_QUORUM, 0, "state", "lost");
	push_membership(c);
	if (!c->retry_on && c->ctx->loop != NULL &&
	    qb_loop_timer_add(c->ctx->loop, QB_LOOP_LOW, RETRY_MS * 1000000ULL, c, retry_fire,
	                      &c->retry) == 0)
		c->retry_on = true;
}

static int connect_vq(struct ftd_cluster *c)
{
	votequorum_callbacks_t cb = {.votequorum_quorum_notify_fn = vq_notify};
	cs_error_t rc;
	int fd;

	rc = votequorum_initialize(&c->vq, &cb);
	if (rc != CS_OK) {
		snprintf(c->why, sizeof(c->why), "votequorum_initialize: error %d", rc);
		return -ENOTCONN;
	}
	c->vq_ok = true;
	rc = votequorum_trackstart(c->vq, (uint64_t)(uintptr_t)c,
	                           CS_TRACK_CHANGES | CS_TRACK_CURRENT);
	if (rc != CS_OK || votequorum_fd_get(c->vq, &fd) != CS_OK) {
		snprintf(c->why, sizeof(c->why), "votequorum_trackstart: error %d", rc);
		return -ENOTCONN;
	}
	if (qb_loop_poll_add(c->ctx->loop, QB_LOOP_HIGH, fd, POLLIN, c, vq_dispatch) < 0) {
		snprintf(c->why, sizeof(c->why), "cannot watch the votequorum fd");
		return -EIO;
	}
	return 0;
}

static int connect_cpg(struct ftd_cluster *c)
{
	struct cpg_name group;
	const char *name = c->ctx->cfg->recovery.cpg_group;
	cs_error_t rc;
	int fd;

	rc = cpg_model_initialize(&c->cpg, CPG_MODEL_V1, (cpg_model_data_t *)&cpg_model, c);
	if (rc != CS_OK) {
		snprintf(c->why, sizeof(c->why), "cpg_model_initialize: error %d", rc);
		return -ENOTCONN;
	}
	c->cpg_ok = true;
	if (cpg_local_get(c->cpg, &c->local_nodeid) == CS_OK && c->ctx->local_blade != 0 &&
	    c->local_nodeid != c->ctx->local_blade)
		af_warn("corosync node id %u is not this blade's slot %u: peers will not "
		        "recognise this daemon's messages",
		        c->local_nodeid, c->ctx->local_blade);
	memset(&group, 0, sizeof(group));
	group.length = (uint32_t)strlen(name);
	memcpy(group.value, name, group.length);
	for (int tries = 0; tries < 50; tries++) {
		rc = cpg_join(c->cpg, &group);
		if (rc != CS_ERR_TRY_AGAIN)
			break;
	}
	if (rc != CS_OK || cpg_fd_get(c->cpg, &fd) != CS_OK) {
		snprintf(c->why, sizeof(c->why), "cpg_join %s: error %d", name, rc);
		return -ENOTCONN;
	}
	if (qb_loop_poll_add(c->ctx->loop, QB_LOOP_HIGH, fd, POLLIN, c, cpg_dispatch_fd) < 0) {
		snprintf(c->why, sizeof(c->why), "cannot watch the cpg fd");
		return -EIO;
	}
	return 0;
}

static int try_connect(struct ftd_cluster *c)
{
	int rc = connect_vq(c);

	if (rc == 0)
		rc = connect_cpg(c);
	if (rc < 0) {
		bool quiet = c->retry_on;

		if (!quiet)
			af_warn("corosync not reachable (%s): not quorate, retrying every %d ms",
			        c->why, RETRY_MS);
		ftd_cluster_disconnect(c);
		return rc;
	}
	af_notice("membership: joined CPG group '%s' as node %u", c->ctx->cfg->recovery.cpg_group,
	          c->local_nodeid);
	c->why[0] = '\0';
	return 0;
}

static void retry_fire(void *data)
{
	struct ftd_cluster *c = data;

	c->retry_on = false;
	if (!c->cpg_ok && !c->vq_ok) {
		c->retry_on = true; /* keep try_connect quiet while retrying */
		if (try_connect(c) == 0)
			c->retry_on = false;
		else if (c->retry_on) {
			/* disconnect re-armed nothing: it saw retry_on */
			c->retry_on =
			        qb_loop_timer_add(c->ctx->loop, QB_LOOP_LOW, RETRY_MS * 1000000ULL,
			                          c, retry_fire, &c->retry) == 0;
		}
	}
}

int ftd_cluster_init(struct ftd_cluster **out, struct ftd_ctx *ctx)
{
	struct ftd_cluster *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -ENOMEM;
	c->ctx = ctx;
	*out = c;
	(void)try_connect(c); /* no corosync yet is not an error: we retry */
	return 0;
}

void ftd_cluster_fini(struct ftd_cluster *c)
{
	if (c == NULL)
		return;
	if (c->retry_on)
		qb_loop_timer_del(c->ctx->loop, c->retry);
	c->retry_on = true; /* disconnect must not re-arm */
	if (c->cpg_ok) {
		struct cpg_name group;
		const char *name = c->ctx->cfg->recovery.cpg_group;

		memset(&group, 0, sizeof(group));
		group.length = (uint32_t)strlen(name);
		memcpy(group.value, name, group.length);
		cpg_leave(c->cpg, &group);
	}
	c->have_quorum = false; /* stopping: no "quorum lost" event */
	ftd_cluster_disconnect(c);
	free(c);
}

static void txq_drop_all(struct ftd_cluster *c)
{
	while (c->txq_len > 0) {
		free(c->txq[c->txq_head].buf);
		c->txq_head = (c->txq_head + 1) % TXQ_MAX;
		c->txq_len--;
	}
	if (c->txq_timer_on)
		qb_loop_timer_del(c->ctx->loop, c->txq_timer);
	c->txq_timer_on = false;
}

static void txq_fire(void *data);

/* Sends what waits, in order, until corosync asks to wait again. */
static void txq_flush(struct ftd_cluster *c)
{
	while (c->txq_len > 0 && c->cpg_ok) {
		struct txmsg *t = &c->txq[c->txq_head];
		struct iovec iov = {.iov_base = t->buf, .iov_len = t->len};
		cs_error_t rc = cpg_mcast_joined(c->cpg, CPG_TYPE_AGREED, &iov, 1);

		if (rc == CS_ERR_TRY_AGAIN)
			break;
		if (rc != CS_OK) {
			c->tx_fail++;
			af_warn("cpg: a message of %zu bytes could not be sent (error %d)", t->len,
			        rc);
		} else {
			c->tx++;
		}
		free(t->buf);
		c->txq_head = (c->txq_head + 1) % TXQ_MAX;
		c->txq_len--;
	}
	if (c->txq_len > 0 && !c->txq_timer_on &&
	    qb_loop_timer_add(c->ctx->loop, QB_LOOP_HIGH, TXQ_RETRY_MS * 1000000ULL, c, txq_fire,
	                      &c->txq_timer) == 0)
		c->txq_timer_on = true;
}

static void txq_fire(void *data)
{
	struct ftd_cluster *c = data;

	c->txq_timer_on = false;
	txq_flush(c);
}

/* Around a membership change corosync answers "try again" for a while: the
 * message waits in order (a state sent to a daemon that just joined must
 * reach it) instead of being lost. */
int ftd_cluster_send(struct ftd_cluster *c, const void *buf, size_t len)
{
	struct txmsg *t;

	if (c == NULL || !c->cpg_ok)
		return -ENOTCONN;
	if (c->txq_len == TXQ_MAX) {
		c->tx_fail++;
		af_warn("cpg: %d messages wait for corosync: this one is dropped", TXQ_MAX);
		return -EAGAIN;
	}
	t = &c->txq[(c->txq_head + c->txq_len) % TXQ_MAX];
	t->buf = malloc(len);
	if (t->buf == NULL)
		return -ENOMEM;
	memcpy(t->buf, buf, len);
	t->len = len;
	c->txq_len++;
	txq_flush(c);
	return 0;
}

bool ftd_cluster_quorate(const struct ftd_cluster *c)
{
	return c != NULL && c->vq_ok && c->have_quorum && c->quorate;
}

void ftd_cluster_describe(const struct ftd_cluster *c, struct af_module_status *st)
{
	unsigned nodes = 0, daemons = 0;

	st->name = "cluster";
	if (c == NULL) {
		st->state = "stopped";
		st->detail[0] = '\0';
		return;
	}
	for (int s = 1; s <= AF_MAX_BLADES; s++) {
		nodes += c->node[s];
		daemons += c->daemon[s];
	}
	if (!c->cpg_ok || !c->vq_ok) {
		st->state = "degraded";
		snprintf(st->detail, sizeof(st->detail), "no corosync (%s): not quorate, retrying",
		         c->why[0] ? c->why : "lost");
		return;
	}
	st->state = ftd_cluster_quorate(c) ? "running" : "degraded";
	snprintf(st->detail, sizeof(st->detail),
	         "%s, %u nodes, %u daemons in group '%s'; %llu messages sent, %llu received",
	         ftd_cluster_quorate(c) ? "quorate" : "NOT quorate", nodes, daemons,
	         c->ctx->cfg->recovery.cpg_group, (unsigned long long)c->tx,
	         (unsigned long long)c->rx);
}

json_object *ftd_cluster_json(const struct ftd_cluster *c)
{
	json_object *o = json_object_new_object(), *n = json_object_new_array(),
	            *d = json_object_new_array();

	json_object_object_add(o, "connected", json_object_new_boolean(c && c->cpg_ok && c->vq_ok));
	json_object_object_add(o, "quorate", json_object_new_boolean(ftd_cluster_quorate(c)));
	for (int s = 1; c != NULL && s <= AF_MAX_BLADES; s++) {
		if (c->node[s])
			json_object_array_add(n, json_object_new_int(s));
		if (c->daemon[s])
			json_object_array_add(d, json_object_new_int(s));
	}
	json_object_object_add(o, "nodes", n);
	json_object_object_add(o, "daemons", d);
	return o;
}
