/*
 * shelfmgr: requests to the shelf manager and the IPMCs behind it, fencing,
 * the module's life cycle and the views for atca-ftctl. The session itself
 * (which shelf manager, heartbeat, switchover) is smc_session.c.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_SHELF
#include "smc_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <OpenIPMI/ipmi_addr.h>
#include <OpenIPMI/ipmi_msgbits.h>

#include "af_log.h"
#include "af_util.h"

/* ---- requests ---------------------------------------------------------------- */

struct smc_req {
	struct smc_req *next, *prev;
	struct smc *m;
	smc_rsp_fn cb;
	void *arg;
	uint64_t gen;
};

/* Outstanding requests are listed in their module, so that whatever
 * OpenIPMI still holds when the domain closes is freed. */
static void req_link(struct smc *m, struct smc_req *r)
{
	r->prev = NULL;
	r->next = m->reqs;
	if (m->reqs != NULL)
		m->reqs->prev = r;
	m->reqs = r;
	m->pending++;
}

static void req_unlink(struct smc_req *r)
{
	struct smc *m = r->m;

	if (m == NULL)
		return;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		m->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	m->pending--;
}

void smc_drop_requests(struct smc *m)
{
	unsigned n = 0;

	while (m->reqs != NULL) {
		struct smc_req *r = m->reqs;

		req_unlink(r);
		free(r);
		n++;
	}
	if (n > 0)
		af_debug("shelfmgr: %u requests without an answer dropped", n);
}

static int rsp_handler(ipmi_domain_t *domain, ipmi_msgi_t *rspi)
{
	struct smc_req *r = rspi->data1;
	struct smc *m = r->m;

	(void)domain;
	req_unlink(r);
	if (!m->closing)
		r->cb(m, r->arg, r->gen, 0, rspi->msg.data, rspi->msg.data_len);
	free(r);
	return IPMI_MSG_ITEM_NOT_USED;
}

struct send_args {
	struct smc *m;
	uint8_t addr;
	ipmi_msg_t msg;
	struct smc_req *req;
	int rc;
};

static void send_in_domain(ipmi_domain_t *domain, void *cb_data)
{
	struct send_args *a = cb_data;
	ipmi_system_interface_addr_t si = {
	        .addr_type = IPMI_SYSTEM_INTERFACE_ADDR_TYPE,
	        .channel = IPMI_BMC_CHANNEL,
	        .lun = 0,
	};
	ipmi_ipmb_addr_t ipmb = {
	        .addr_type = IPMI_IPMB_ADDR_TYPE,
	        .channel = 0,
	        .slave_addr = a->addr,
	        .lun = 0,
	};
	const ipmi_addr_t *addr =
	        a->addr == 0x20 ? (const ipmi_addr_t *)&si : (const ipmi_addr_t *)&ipmb;
	unsigned len = a->addr == 0x20 ? sizeof(si) : sizeof(ipmb);

	a->rc = -ipmi_send_command_addr(domain, addr, len, &a->msg, rsp_handler, a->req, NULL);
}

int smc_send(struct smc *m, uint8_t addr, uint8_t netfn, uint8_t cmd, const uint8_t *data,
             size_t len, smc_rsp_fn cb, void *arg, uint64_t gen)
{
	uint8_t buf[32];
	struct send_args a = {.m = m, .addr = addr, .rc = -ENOTCONN};
	int rc;

	if (!m->domain_open || m->closing)
		return -ENOTCONN;
	if (len > sizeof(buf))
		return -EMSGSIZE;
	a.req = calloc(1, sizeof(*a.req));
	if (a.req == NULL)
		return -ENOMEM;
	a.req->m = m;
	a.req->cb = cb;
	a.req->arg = arg;
	a.req->gen = gen;
	if (len > 0)
		memcpy(buf, data, len);
	a.msg.netfn = netfn;
	a.msg.cmd = cmd;
	a.msg.data = buf;
	a.msg.data_len = (unsigned short)len;
	/* listed first: OpenIPMI may answer from inside the call */
	req_link(m, a.req);
	rc = ipmi_domain_pointer_cb(m->domain_id, send_in_domain, &a);
	if (rc != 0 || a.rc < 0) {
		req_unlink(a.req);
		free(a.req);
		return rc != 0 ? -rc : a.rc;
	}
	return 0;
}

/* ---- fencing ------------------------------------------------------------------- */

static void fop_execute(struct smc_blade *b, const struct smc_action *act);

static void fop_finish(struct smc_blade *b)
{
	struct smc *m = b->mod;
	const struct smc_fop *op = &b->op;
	struct smc_fence_result r = {
	        .unfence = op->kind == SMC_UNFENCE,
	        .slot = b->slot,
	        .result = op->result,
	        .message = op->message,
	        .method = op->method,
	        .mstate_before = op->mstate_first,
	        .mstate_after = op->mstate_last,
	        .elapsed_ns = af_mono_ns() - op->start_ns,
	        .commands = op->commands,
	};
	struct smc_waiter w[SMC_MAX_WAITERS];
	unsigned nw = b->n_waiters;

	/* on the chassis path the M-state read at the start says nothing of
	 * the end */
	if (op->chassis_path)
		r.mstate_after = -1;
	else if (r.result == 0)
		smc_shelf_observed(m, b, op->mstate_last);
	struct af_event ev;
	char msg[sizeof(op->message) + 64];

	/* an IPMC that does not answer may be one the shelf manager lost */
	if (op->result == -EHOSTUNREACH && b->mstate == 7 && strstr(op->message, "M7") == NULL) {
		snprintf(msg, sizeof(msg), "%s; the shelf manager reports M7 (communication lost)",
		         op->message);
		r.message = msg;
	}

	af_event_init(&ev, AF_SRC_SHELF, AF_EV_FENCE, b->slot, "payload");
	af_event_set(&ev, "action", "%s", r.unfence ? "unfence" : "fence");
	af_event_set(&ev, "result", "%s", r.result == 0 ? "ok" : "failed");
	af_event_set(&ev, "method", "%s", r.method);
	af_event_set(&ev, "elapsed_ms", "%.1f", (double)r.elapsed_ns / 1e6);
	if (r.mstate_after >= 0)
		af_event_set(&ev, "state", "%s", smc_mstate_name(r.mstate_after));
	af_event_set(&ev, "message", "%.100s", r.message);
	smc_post(m, &ev);
	snprintf(b->last_fence, sizeof(b->last_fence), "%s %s after %.0f ms: %.150s",
	         r.unfence ? "unfence" : "fence", r.result == 0 ? "ok" : "FAILED",
	         (double)r.elapsed_ns / 1e6, r.message);
	if (r.result == 0)
		af_notice("blade %d: %s", b->slot, b->last_fence);
	else
		af_err("blade %d: %s", b->slot, b->last_fence);
	/* the callbacks may start a new operation on this blade */
	memcpy(w, b->waiters, sizeof(w));
	b->n_waiters = 0;
	b->op_active = false;
	b->op_gen = 0;
	for (unsigned i = 0; i < nw; i++)
		w[i].done(w[i].opaque, &r);
}

static void fop_reply(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                      size_t len)
{
	struct smc_blade *b = arg;
	struct smc_action act;

	(void)m;
	if (!b->op_active || gen != b->op_gen)
		return; /* an answer for an operation that is over */
	/* OpenIPMI answers a request that timed out with CC 0xC3 itself */
	smc_fop_reply(&b->op, err, rsp, len, af_mono_ns(), &act);
	fop_execute(b, &act);
}

static void fop_timer(void *data)
{
	struct smc_blade *b = data;
	struct smc_action act;

	b->timer_running = false;
	if (!b->op_active)
		return;
	smc_fop_timer(&b->op, af_mono_ns(), &act);
	fop_execute(b, &act);
}

static void fop_execute(struct smc_blade *b, const struct smc_action *act)
{
	struct smc *m = b->mod;
	struct smc_action next;
	int rc;

	switch (act->type) {
	case SMC_ACT_SEND:
		b->op_gen = ++m->gen;
		rc = smc_send(m, b->ipmc, act->netfn, act->cmd, act->data, act->len, fop_reply, b,
		              b->op_gen);
		if (rc < 0) {
			smc_fop_reply(&b->op, rc, NULL, 0, af_mono_ns(), &next);
			fop_execute(b, &next);
		}
		return;
	case SMC_ACT_WAIT:
		rc = qb_loop_timer_add(m->env.loop, QB_LOOP_HIGH, act->wait_ms * AF_NS_PER_MS, b,
		                       fop_timer, &b->timer);
		if (rc < 0) {
			b->op.result = rc;
			snprintf(b->op.message, sizeof(b->op.message), "cannot start a timer: %s",
			         strerror(-rc));
			fop_finish(b);
			return;
		}
		b->timer_running = true;
		return;
	case SMC_ACT_DONE:
	default:
		fop_finish(b);
		return;
	}
}

int smc_fence(struct smc *m, int slot, bool unfence, smc_fence_done_fn done, void *opaque)
{
	struct smc_blade *b;
	struct smc_action act;
	char inst[48];

	if (m == NULL || done == NULL)
		return -EINVAL;
	b = smc_blade_by_slot(m, slot);
	if (b == NULL)
		return -ENOENT;
	if (m->idle_reason[0] != '\0' || !m->domain_open || !m->connected)
		return -ENOTCONN;
	if (b->op_active) {
		if ((b->op.kind == SMC_UNFENCE) != unfence)
			return -EBUSY;
		if (b->n_waiters == SMC_MAX_WAITERS)
			return -EAGAIN;
		b->waiters[b->n_waiters++] = (struct smc_waiter){done, opaque};
		af_info("blade %d: joining the %s already in progress", slot,
		        unfence ? "unfence" : "fence");
		return 0;
	}
	b->op_active = true;
	b->n_waiters = 1;
	b->waiters[0] = (struct smc_waiter){done, opaque};
	snprintf(inst, sizeof(inst), "blade %d (IPMC 0x%02x)", slot, b->ipmc);
	af_notice("blade %d: %s requested (FRU 0 of IPMC 0x%02x, timeout %llu ms)", slot,
	          unfence ? "unfence" : "fence", b->ipmc,
	          (unsigned long long)m->env.cfg->detection.fence_timeout_ms);
	smc_fop_start(&b->op, unfence ? SMC_UNFENCE : SMC_FENCE, inst, 0, smc_hotswap_sensor(m, b),
	              af_mono_ns(), m->env.cfg->detection.fence_timeout_ms, &act);
	smc_fop_shelf_state(&b->op, b->mstate);
	/* the first request goes out from the loop, so done never runs inside
	 * this call even if sending fails at once */
	b->op_gen = ++m->gen;
	if (act.type == SMC_ACT_SEND) {
		int rc = smc_send(m, b->ipmc, act.netfn, act.cmd, act.data, act.len, fop_reply, b,
		                  b->op_gen);

		if (rc >= 0)
			return 0;
		smc_fop_reply(&b->op, rc, NULL, 0, af_mono_ns(), &act);
	}
	/* finish from a zero timer rather than calling back now */
	if (act.type == SMC_ACT_SEND) {
		act.type = SMC_ACT_WAIT;
		act.wait_ms = 0;
	}
	if (act.type == SMC_ACT_DONE) {
		act.type = SMC_ACT_WAIT;
		act.wait_ms = 0;
	}
	fop_execute(b, &act);
	return 0;
}

void smc_fence_forget(struct smc *m, void *opaque)
{
	for (unsigned i = 0; m != NULL && i < m->n_blades; i++) {
		struct smc_blade *b = &m->blades[i];

		for (unsigned j = 0; j < b->n_waiters;) {
			if (b->waiters[j].opaque == opaque) {
				b->waiters[j] = b->waiters[--b->n_waiters];
				continue;
			}
			j++;
		}
	}
}

void smc_cancel_operations(struct smc *m, int err, const char *why)
{
	for (unsigned i = 0; i < m->n_blades; i++) {
		struct smc_blade *b = &m->blades[i];

		if (!b->op_active)
			continue;
		if (b->timer_running)
			qb_loop_timer_del(m->env.loop, b->timer);
		b->timer_running = false;
		b->op.result = err;
		snprintf(b->op.message, sizeof(b->op.message), "not confirmed: %s", why);
		fop_finish(b);
	}
}

/* ---- lifecycle ------------------------------------------------------------------- */

static void setup_blades(struct smc *m)
{
	const struct af_config *cfg = m->env.cfg;

	m->n_blades = cfg->n_blades;
	for (unsigned i = 0; i < cfg->n_blades; i++) {
		struct smc_blade *b = &m->blades[i];

		memset(b, 0, sizeof(*b));
		b->mod = m;
		b->slot = (int)cfg->blades[i].slot;
		b->ipmc = (uint8_t)cfg->blades[i].ipmc;
		b->mstate = b->previous = b->mstate_at_close = b->pending = -1;
	}
}

static int start(struct smc *m)
{
	const struct af_config *cfg = m->env.cfg;
	int rc;

	m->idle_reason[0] = '\0';
	setup_blades(m);
	if (m->env.loop == NULL) {
		snprintf(m->idle_reason, sizeof(m->idle_reason), "no main loop");
		return 0;
	}
	if (!cfg->shelf.cred_loaded) {
		snprintf(m->idle_reason, sizeof(m->idle_reason), "no shelf credentials loaded");
		af_warn("shelfmgr: idle: %s", m->idle_reason);
		return 0;
	}
	if (cfg->shelf.cipher_suite != 3) {
		/* OpenIPMI 2.0.33 implements RMCP+ with SHA-1 only: never fall
		 * back to a weaker suite than the one configured */
		snprintf(m->idle_reason, sizeof(m->idle_reason),
		         "cipher suite %u is not available in OpenIPMI (only 3): no fencing "
		         "through the shelf manager",
		         cfg->shelf.cipher_suite);
		af_err("shelfmgr: idle: %s", m->idle_reason);
		return 0;
	}
	if (m->os == NULL) {
		rc = smc_os_new(&m->os, m->env.loop);
		if (rc < 0)
			return rc;
	}
	if (!m->ipmi_held) {
		rc = smc_ipmi_get(m->os);
		if (rc < 0) {
			af_err("shelfmgr: cannot initialise OpenIPMI: %s", strerror(-rc));
			return rc;
		}
		m->ipmi_held = true;
	}
	return smc_session_start(m);
}

static void stop(struct smc *m)
{
	smc_session_stop(m);
}

int smc_init(struct smc **out, const struct af_module_env *env)
{
	struct smc *m;
	int rc;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	m->active = -1;
	rc = start(m);
	if (rc < 0) {
		smc_fini(m);
		return rc;
	}
	*out = m;
	return 0;
}

static bool shelf_changed(const struct af_config *a, const struct af_config *b)
{
	if (a->shelf.n_managers != b->shelf.n_managers ||
	    a->shelf.cred_loaded != b->shelf.cred_loaded ||
	    a->shelf.cipher_suite != b->shelf.cipher_suite ||
	    a->shelf.privilege != b->shelf.privilege || a->n_blades != b->n_blades ||
	    strcmp(a->shelf.name, b->shelf.name) != 0 ||
	    memcmp(&a->shelf.cred, &b->shelf.cred, sizeof(a->shelf.cred)) != 0 ||
	    a->detection.ipmc_timeout_ms != b->detection.ipmc_timeout_ms)
		return true;
	for (unsigned i = 0; i < a->shelf.n_managers; i++) {
		if (strcmp(a->shelf.managers[i].address, b->shelf.managers[i].address) != 0 ||
		    a->shelf.managers[i].port != b->shelf.managers[i].port)
			return true;
	}
	for (unsigned i = 0; i < a->n_blades; i++) {
		if (a->blades[i].slot != b->blades[i].slot ||
		    a->blades[i].ipmc != b->blades[i].ipmc)
			return true;
	}
	return false;
}

int smc_reconfigure(struct smc *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	if (!shelf_changed(m->env.cfg, cfg)) {
		/* fence_timeout and the like are read when used */
		m->env.cfg = cfg;
		return 0;
	}
	const struct af_config *old = m->env.cfg;
	int rc;

	af_info("shelfmgr: shelf settings changed: reconnecting");
	stop(m);
	m->env.cfg = cfg;
	rc = start(m);
	if (rc < 0) {
		/* as promised: the previous configuration goes on (the daemon
		 * frees the rejected one) */
		af_err("shelfmgr: new shelf settings not applied (%s): keeping the previous ones",
		       strerror(-rc));
		stop(m);
		m->env.cfg = old;
		if (start(m) < 0)
			stop(m);
	}
	return rc;
}

void smc_describe(const struct smc *m, struct af_module_status *st)
{
	const struct af_config *cfg;

	st->name = "shelfmgr";
	st->detail[0] = '\0';
	if (m == NULL) {
		st->state = "stopped";
		return;
	}
	if (m->idle_reason[0] != '\0') {
		st->state = "idle";
		snprintf(st->detail, sizeof(st->detail), "%s", m->idle_reason);
		return;
	}
	cfg = m->env.cfg;
	if (!m->connected) {
		st->state = "degraded";
		snprintf(st->detail, sizeof(st->detail), "no shelf-manager session");
		return;
	}
	st->state = m->discovered ? "running" : "starting";
	snprintf(st->detail, sizeof(st->detail),
	         "shelf manager %s:%u, %u address-table entries, %u switchovers",
	         m->active >= 0 ? cfg->shelf.managers[m->active].address : "?",
	         m->active >= 0 ? cfg->shelf.managers[m->active].port : 0, m->n_table,
	         m->switchovers);
}

void smc_fini(struct smc *m)
{
	if (m == NULL)
		return;
	stop(m);
	if (m->ipmi_held)
		smc_ipmi_put();
	smc_os_put(m->os);
	af_info("shelfmgr: stopped");
	free(m);
}

/* ---- views ------------------------------------------------------------------------- */

void smc_shelf(const struct smc *m, struct smc_shelf_view *out)
{
	memset(out, 0, sizeof(*out));
	out->active = -1;
	if (m == NULL)
		return;
	out->enabled = m->idle_reason[0] == '\0';
	af_strlcpy(out->idle_reason, m->idle_reason, sizeof(out->idle_reason));
	out->connected = m->connected;
	out->discovered = m->discovered;
	out->active = m->active;
	out->switchovers = m->switchovers;
	out->address_table_entries = m->n_table;
	if (m->have_shmc_props)
		snprintf(out->picmg, sizeof(out->picmg), "%u.%u", m->shmc_props.ext_major,
		         m->shmc_props.ext_minor);
}

bool smc_blade(const struct smc *cm, int slot, struct smc_blade_view *out)
{
	struct smc *m = (struct smc *)cm;
	const struct smc_blade *b = m ? smc_blade_by_slot(m, slot) : NULL;

	memset(out, 0, sizeof(*out));
	if (b == NULL)
		return false;
	out->slot = b->slot;
	out->ipmc = b->ipmc;
	out->in_address_table = b->in_table;
	out->hw_addr = b->hw_addr;
	if (b->have_props)
		snprintf(out->picmg, sizeof(out->picmg), "%u.%u", b->props.ext_major,
		         b->props.ext_minor);
	out->mstate = b->mstate;
	out->previous = b->previous;
	out->mstate_ns = b->mstate_ns;
	af_strlcpy(out->product, b->product, sizeof(out->product));
	af_strlcpy(out->serial, b->serial, sizeof(out->serial));
	out->n_frus = b->n_frus;
	memcpy(out->frus, b->frus, sizeof(out->frus));
	out->fencing = b->op_active && b->op.kind == SMC_FENCE;
	out->unfencing = b->op_active && b->op.kind == SMC_UNFENCE;
	af_strlcpy(out->last_fence, b->last_fence, sizeof(out->last_fence));
	return true;
}
