/*
 * shelfmgr: the session to the shelf manager.
 *
 * One OpenIPMI domain on one shelf-manager address at a time. OpenIPMI can
 * spread one connection over two addresses, but its ATCA support refuses
 * that ("more than one IP port") and it notices a dead address only after
 * its ten-second audit; so we choose the address ourselves: a heartbeat
 * (Get Device ID of the shelf manager, every HEARTBEAT_MS) that goes
 * unanswered for twice the IPMI timeout, or OpenIPMI reporting the
 * connection lost, closes the domain and opens one on the other address. A
 * domain that comes up on another address than the last one that worked
 * is a switchover, reported as an event. Every close and open happens from
 * a qb_loop timer, never inside an OpenIPMI callback.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_SHELF
#include "smc_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <OpenIPMI/ipmi_auth.h>
#include <OpenIPMI/ipmi_lan.h>

#include "af_log.h"
#include "af_util.h"

#define HEARTBEAT_MS 1000
/* our own reading of every blade's hot-swap sensor, when nobody feeds us
 * readings (smc_hotswap_observed) */
#define POLL_EVERY_TICKS 5
#define RETRY_MIN_MS 250
#define RETRY_MAX_MS 5000

static void schedule(struct smc *m, uint64_t ms, bool advance, const char *why);

static const struct af_cfg_shmc *mgr(const struct smc *m, int i)
{
	return &m->env.cfg->shelf.managers[i];
}

/* ---- OpenIPMI callbacks --------------------------------------------------------- */

static void con_change(ipmi_domain_t *domain, int err, unsigned int conn, unsigned int port,
                       int still_connected, void *cb_data)
{
	struct smc *m = cb_data;
	const struct af_cfg_shmc *s = mgr(m, m->trying);

	(void)conn;
	(void)port;
	if (m->closing)
		return;
	af_debug("shelfmgr: %s:%u: connection %s (%s)%s", s->address, s->port, err ? "down" : "up",
	         err ? strerror(err) : "ok", still_connected ? "" : ", nothing left");
	if (err != 0) {
		if (!still_connected) {
			af_warn("shelf manager %s:%u: %s (%s)", s->address, s->port,
			        m->connected ? "connection lost" : "cannot connect", strerror(err));
			schedule(m, 0, true, "connection lost");
		}
		return;
	}
	if (m->connected)
		return;
	m->connected = true;
	m->active = m->trying;
	m->retry_ms = 0;
	m->stalls = 0;
	m->hb_sent_ns = 0;
	af_notice("shelf manager %s:%u is now in use", s->address, s->port);
	if (m->last_active >= 0 && m->last_active != m->active) {
		struct af_event ev;

		m->switchovers++;
		af_event_init(&ev, AF_SRC_SHELF, AF_EV_SHMC_SWITCHOVER, 0, "shelf manager");
		af_event_set(&ev, "from", "%s:%u", mgr(m, m->last_active)->address,
		             mgr(m, m->last_active)->port);
		af_event_set(&ev, "to", "%s:%u", s->address, s->port);
		smc_post(m, &ev);
	}
	m->last_active = m->active;
	smc_shelf_connected(m, domain);
}

static void domain_up(ipmi_domain_t *domain, void *cb_data)
{
	struct smc *m = cb_data;

	if (m->closing)
		return;
	m->up_ns = af_mono_ns();
	smc_shelf_discover(m, domain);
}

/* ---- opening and closing ---------------------------------------------------------- */

static int open_domain(struct smc *m)
{
	const struct af_config *cfg = m->env.cfg;
	const struct af_cfg_shmc *s = mgr(m, m->trying);
	char *addrs[1] = {(char *)s->address}, *ports[1], portbuf[8];
	ipmi_lanp_parm_t p[16] = {{0}};
	unsigned n = 0;
	ipmi_open_option_t opts[] = {
	        {.option = IPMI_OPEN_OPTION_ALL, .ival = 0},
	        {.option = IPMI_OPEN_OPTION_SDRS, .ival = 1},
	        {.option = IPMI_OPEN_OPTION_FRUS, .ival = 1},
	        {.option = IPMI_OPEN_OPTION_SEL, .ival = 1},
	        {.option = IPMI_OPEN_OPTION_IPMB_SCAN, .ival = 1},
	        {.option = IPMI_OPEN_OPTION_OEM_INIT, .ival = 1},
	        /* a monitoring client: never reconfigure the shelf */
	        {.option = IPMI_OPEN_OPTION_SET_EVENT_RCVR, .ival = 0},
	        {.option = IPMI_OPEN_OPTION_SET_SEL_TIME, .ival = 0},
	        /* no cache of SDRs in $HOME */
	        {.option = IPMI_OPEN_OPTION_USE_CACHE, .ival = 0},
	};
	static const int priv[] = {IPMI_PRIVILEGE_USER, IPMI_PRIVILEGE_OPERATOR,
	                           IPMI_PRIVILEGE_ADMIN};
	int rc;

	snprintf(portbuf, sizeof(portbuf), "%u", s->port);
	ports[0] = portbuf;
	p[n++] = (ipmi_lanp_parm_t){
	        .parm_id = IPMI_LANP_PARMID_ADDRS, .parm_data = addrs, .parm_data_len = 1};
	p[n++] = (ipmi_lanp_parm_t){
	        .parm_id = IPMI_LANP_PARMID_PORTS, .parm_data = ports, .parm_data_len = 1};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_PARMID_AUTHTYPE,
	                            .parm_val = IPMI_AUTHTYPE_RMCP_PLUS};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_PARMID_PRIVILEGE,
	                            .parm_val = priv[cfg->shelf.privilege]};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_PARMID_USERNAME,
	                            .parm_data = (void *)cfg->shelf.cred.username,
	                            .parm_data_len = (unsigned)strlen(cfg->shelf.cred.username)};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_PARMID_PASSWORD,
	                            .parm_data = (void *)cfg->shelf.cred.password,
	                            .parm_data_len = (unsigned)strlen(cfg->shelf.cred.password)};
	/* cipher suite 3, spelled out so nothing weaker can be negotiated */
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_AUTHENTICATION_ALGORITHM,
	                            .parm_val = IPMI_LANP_AUTHENTICATION_ALGORITHM_RAKP_HMAC_SHA1};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_INTEGRITY_ALGORITHM,
	                            .parm_val = IPMI_LANP_INTEGRITY_ALGORITHM_HMAC_SHA1_96};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_CONFIDENTIALITY_ALGORITHM,
	                            .parm_val = IPMI_LANP_CONFIDENTIALITY_ALGORITHM_AES_CBC_128};
	p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_DEFAULT_TIMEOUT,
	                            .parm_val = (int)(cfg->detection.ipmc_timeout_ms * 1000)};
	if (cfg->shelf.cred.has_k_g)
		p[n++] = (ipmi_lanp_parm_t){.parm_id = IPMI_LANP_BMC_KEY,
		                            .parm_data = (void *)cfg->shelf.cred.k_g,
		                            .parm_data_len = sizeof(cfg->shelf.cred.k_g)};
	rc = ipmi_lanp_setup_con(p, n, &m->os->h, NULL, &m->con);
	if (rc != 0) {
		af_err("shelfmgr: cannot set up a connection to %s:%u: %s", s->address, s->port,
		       strerror(rc));
		return -rc;
	}
	m->open_ns = af_mono_ns();
	rc = ipmi_open_domain(cfg->shelf.name[0] ? cfg->shelf.name : "shelf", &m->con, 1,
	                      con_change, m, domain_up, m, opts, AF_ARRAY_SIZE(opts),
	                      &m->domain_id);
	if (rc != 0) {
		af_err("shelfmgr: cannot open the shelf domain on %s:%u: %s", s->address, s->port,
		       strerror(rc));
		m->con->close_connection(m->con);
		m->con = NULL;
		return -rc;
	}
	m->domain_open = true;
	af_info("shelfmgr: connecting to shelf manager %s:%u (RMCP+, cipher suite 3)", s->address,
	        s->port);
	return 0;
}

static void close_done(void *cb_data)
{
	(void)cb_data;
}

static void close_in_domain(ipmi_domain_t *domain, void *cb_data)
{
	int *rc = cb_data;

	*rc = ipmi_domain_close(domain, close_done, NULL);
}

static void close_domain(struct smc *m, const char *why)
{
	int rc = 0;

	smc_cancel_operations(m, -ECONNRESET, why);
	if (m->domain_open) {
		/* OpenIPMI calls hot-swap handlers while it tears down: ignored */
		m->closing = true;
		if (ipmi_domain_pointer_cb(m->domain_id, close_in_domain, &rc) != 0 || rc != 0)
			af_warn("shelfmgr: closing the shelf domain: %s",
			        strerror(rc ? rc : EINVAL));
		m->domain_open = false;
		m->con = NULL; /* the domain owned it */
		smc_drop_requests(m);
		m->closing = false;
	} else if (m->con != NULL) {
		m->con->close_connection(m->con);
		m->con = NULL;
	}
	m->entity_handler = false;
	m->connected = m->discovered = false;
	m->active = -1;
	m->have_shmc_props = false;
	m->n_table = 0;
	m->hb_sent_ns = 0;
	for (unsigned i = 0; i < m->n_blades; i++) {
		memset(m->blades[i].fru_watched, 0, sizeof(m->blades[i].fru_watched));
		m->blades[i].polling = false; /* its request was dropped */
		/* compared with what the next session finds (smc_shelf_discover) */
		if (m->blades[i].mstate >= 0)
			m->blades[i].mstate_at_close = m->blades[i].mstate;
	}
}

/* ---- heartbeat and reconnection ------------------------------------------------------ */

static void heartbeat_reply(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                            size_t len)
{
	(void)arg;
	if (gen != m->hb_gen)
		return;
	/* OpenIPMI answers a request it gave up on with CC 0xC3 itself */
	if (err < 0 || len < 1 || rsp[0] == 0xC3)
		return; /* the timer decides */
	m->hb_sent_ns = 0;
}

static void tick(void *data)
{
	struct smc *m = data;
	uint64_t now = af_mono_ns(), limit;

	m->timer_running = false;
	if (m->reopen) {
		int rc;

		m->reopen = false;
		if (m->domain_open || m->con != NULL)
			close_domain(m, "the shelf-manager session is being reopened");
		rc = open_domain(m);
		if (rc < 0) {
			schedule(m, 0, true, "cannot open");
			return;
		}
		/* a manager that does not let us in within the limit: next */
		m->hb_sent_ns = now;
	} else if (m->domain_open) {
		limit = 2 * m->env.cfg->detection.ipmc_timeout_ms * AF_NS_PER_MS;
		if (!m->connected)
			limit += AF_NS_PER_S / 2; /* the session is still being set up */
		if (m->hb_sent_ns != 0 && now - m->hb_sent_ns > limit) {
			/* OpenIPMI sometimes stalls setting up a domain on a
			 * manager that answers (seen on a shelf manager busy with
			 * everybody's first SDR reads): one more try there before
			 * the next manager. A manager that stopped answering once
			 * we were in is left at once. */
			bool stalled = !m->connected && m->stalls++ == 0;

			af_warn("shelf manager %s:%u: %s for %llu ms%s", mgr(m, m->trying)->address,
			        mgr(m, m->trying)->port,
			        m->connected ? "no answer" : "session not set up",
			        (unsigned long long)((now - m->hb_sent_ns) / AF_NS_PER_MS),
			        stalled ? ": trying it again" : "");
			if (stalled) {
				m->reopen = true;
				schedule(m, 0, false, NULL);
			} else {
				schedule(m, 0, true, "no answer");
			}
			return;
		}
		if (m->connected && ++m->ticks % POLL_EVERY_TICKS == 0)
			smc_shelf_poll(m);
		if (m->connected && m->hb_sent_ns == 0) {
			m->hb_gen = ++m->gen;
			if (smc_send(m, 0x20, 0x06, 0x01, NULL, 0, heartbeat_reply, NULL,
			             m->hb_gen) == 0)
				m->hb_sent_ns = now;
		}
	}
	schedule(m, HEARTBEAT_MS, false, NULL);
}

/* Arms the module's one timer. advance: the current manager failed: close
 * it and try the next one after a backoff that grows while none answers. */
static void schedule(struct smc *m, uint64_t ms, bool advance, const char *why)
{
	unsigned n = m->env.cfg->shelf.n_managers;

	if (m->timer_running) {
		qb_loop_timer_del(m->env.loop, m->timer);
		m->timer_running = false;
	}
	if (advance) {
		if (why != NULL && m->connected)
			af_warn("shelfmgr: leaving shelf manager %s:%u (%s)",
			        mgr(m, m->trying)->address, mgr(m, m->trying)->port, why);
		m->connected = false;
		m->stalls = 0;
		m->trying = (m->trying + 1) % (int)n;
		/* a full round without success: back off */
		if (m->trying == (m->last_active >= 0 ? m->last_active : 0) || n == 1)
			m->retry_ms = m->retry_ms ? m->retry_ms * 2 : RETRY_MIN_MS;
		if (m->retry_ms > RETRY_MAX_MS)
			m->retry_ms = RETRY_MAX_MS;
		m->reopen = true;
		ms = m->retry_ms;
	}
	if (qb_loop_timer_add(m->env.loop, QB_LOOP_HIGH, ms * AF_NS_PER_MS, m, tick, &m->timer) ==
	    0)
		m->timer_running = true;
	else
		af_err("shelfmgr: cannot arm a timer: the shelf-manager session is not watched");
}

int smc_session_start(struct smc *m)
{
	int rc;

	m->trying = 0;
	m->last_active = -1;
	m->active = -1;
	m->retry_ms = 0;
	rc = open_domain(m);
	if (rc < 0) {
		schedule(m, 0, true, NULL);
		return 0; /* retried */
	}
	m->hb_sent_ns = af_mono_ns(); /* must come up within the limit */
	schedule(m, HEARTBEAT_MS, false, NULL);
	return 0;
}

void smc_session_stop(struct smc *m)
{
	if (m->timer_running) {
		qb_loop_timer_del(m->env.loop, m->timer);
		m->timer_running = false;
	}
	m->reopen = false;
	close_domain(m, "the shelf-manager client is stopping");
}
