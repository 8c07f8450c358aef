/*
 * One worker per target: the shelf manager (its SEL, its own sensors, and
 * which shelf manager is reachable) or one blade IPMC (its sensors, bridged
 * through the shelf manager, or in-band). A worker blocks only itself.
 *
 * Workers never call qb_log (not safe across threads): log lines and events
 * are posted to the main loop.
 */
#include "config.h"

#include "ipd_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_util.h"

static const char *const tstate_names[IPD_T_COUNT] = {
        [IPD_T_CONNECTING] = "CONNECTING",
        [IPD_T_ONLINE] = "ONLINE",
        [IPD_T_UNREACHABLE] = "UNREACHABLE",
        [IPD_T_WAITING_SHMC] = "WAITING_SHMC",
};
static const char *const tevent_names[IPD_E_COUNT] = {
        [IPD_E_CONNECTED] = "connected",       [IPD_E_WAIT_SHMC] = "no-shelf-manager",
        [IPD_E_UNANSWERED] = "unanswered",     [IPD_E_ANSWERED] = "answered",
        [IPD_E_SESSION_LOST] = "session-lost",
};
/* An event missing from a state's rows leaves it unchanged (and is logged at
 * debug level): e.g. a retry that fails again while UNREACHABLE. */
static const struct af_fsm_row trows[] = {
        {IPD_T_CONNECTING, IPD_E_CONNECTED, IPD_T_ONLINE},
        {IPD_T_CONNECTING, IPD_E_WAIT_SHMC, IPD_T_WAITING_SHMC},
        {IPD_T_CONNECTING, IPD_E_UNANSWERED, IPD_T_UNREACHABLE},
        {IPD_T_WAITING_SHMC, IPD_E_CONNECTED, IPD_T_ONLINE},
        {IPD_T_ONLINE, IPD_E_UNANSWERED, IPD_T_UNREACHABLE},
        {IPD_T_ONLINE, IPD_E_SESSION_LOST, IPD_T_CONNECTING},
        {IPD_T_UNREACHABLE, IPD_E_ANSWERED, IPD_T_ONLINE},
        {IPD_T_UNREACHABLE, IPD_E_CONNECTED, IPD_T_ONLINE},
        {IPD_T_UNREACHABLE, IPD_E_SESSION_LOST, IPD_T_CONNECTING},
};
const struct af_fsm_def ipd_target_fsm = {
        .name = "ipmc",
        .ss = AF_SS_IPMI,
        .states = tstate_names,
        .n_states = IPD_T_COUNT,
        .events = tevent_names,
        .n_events = IPD_E_COUNT,
        .rows = trows,
        .n_rows = AF_ARRAY_SIZE(trows),
};

#define BACKOFF_START_MS 250

static const struct af_config *cfg_of(const struct ipd_target *tg)
{
	return tg->mod->env.cfg;
}

static void set_view(struct ipd_target *tg, const char *error)
{
	pthread_mutex_lock(&tg->mod->lock);
	af_strlcpy(tg->view.state, af_fsm_state_name(&tg->fsm), sizeof(tg->view.state));
	if (error != NULL)
		af_strlcpy(tg->view.error, error, sizeof(tg->view.error));
	tg->view.via[0] = '\0';
	if (tg->t != NULL)
		af_strlcpy(tg->view.via, tg->t->desc, sizeof(tg->view.via));
	pthread_mutex_unlock(&tg->mod->lock);
}

static int fire(struct ipd_target *tg, enum ipd_tevent e)
{
	char msg[256];
	int prio, rc = af_fsm_step(&tg->fsm, e, msg, sizeof(msg), &prio);

	if (rc >= 0) {
		ipd_post_log(tg->mod, prio, "%s", msg);
		pthread_mutex_lock(&tg->mod->lock);
		tg->view.since_ns = af_mono_ns();
		pthread_mutex_unlock(&tg->mod->lock);
	}
	set_view(tg, NULL);
	return rc;
}

static void target_name(const struct ipd_target *tg, char *buf, size_t len)
{
	if (tg->kind == IPD_TARGET_SHMC)
		snprintf(buf, len, "shelf manager");
	else
		snprintf(buf, len, "IPMC 0x%02x", tg->addr);
}

static void post_reachability(struct ipd_target *tg, bool reachable, const char *why)
{
	struct af_event ev;
	char name[32];

	target_name(tg, name, sizeof(name));
	af_event_init(&ev, AF_SRC_IPMI, reachable ? AF_EV_IPMC_REACHABLE : AF_EV_IPMC_UNREACHABLE,
	              tg->slot, name);
	af_event_set(&ev, "ipmc", "0x%02x", tg->addr);
	if (!reachable) {
		af_event_set(&ev, "error", "%.60s", why);
		af_event_set(&ev, "retry_ms", "%llu", (unsigned long long)tg->backoff_ms);
	}
	ipd_post_event(tg->mod, &ev);
}

/* ipmc.unreachable once per outage, ipmc.reachable once when it ends, even
 * when the session is reopened in between (a shelf-manager switchover). */
static void report_down(struct ipd_target *tg, const char *why)
{
	if (!tg->down_reported) {
		tg->down_reported = true;
		post_reachability(tg, false, why);
	}
}

static void report_up(struct ipd_target *tg)
{
	if (tg->down_reported) {
		tg->down_reported = false;
		post_reachability(tg, true, NULL);
	}
}

static void close_session(struct ipd_target *tg)
{
	if (tg->t != NULL)
		tg->t->ops->close(tg->t);
	tg->t = NULL;
}

/* Exponential backoff: 250 ms, doubling, capped by detection.ipmc_retry_max. */
static void schedule_retry(struct ipd_target *tg)
{
	uint64_t max = cfg_of(tg)->detection.ipmc_retry_max_ms;

	tg->backoff_ms = tg->backoff_ms == 0 ? BACKOFF_START_MS : tg->backoff_ms * 2;
	if (tg->backoff_ms > max)
		tg->backoff_ms = max;
	tg->next_try_ns = af_mono_ns() + tg->backoff_ms * AF_NS_PER_MS;
}

/* ---- connecting ----------------------------------------------------------- */

static int open_lan(struct ipd_target *tg, int index, char *err, size_t errlen)
{
	const struct af_config *cfg = cfg_of(tg);
	const struct af_cfg_shmc *mgr = &cfg->shelf.managers[index];
	struct ipd_lan_params p = {
	        .host = mgr->address,
	        .port = mgr->port,
	        .username = cfg->shelf.cred.username,
	        .password = cfg->shelf.cred.password,
	        .k_g = cfg->shelf.cred.has_k_g ? cfg->shelf.cred.k_g : NULL,
	        .cipher_suite = cfg->shelf.cipher_suite,
	        .privilege = (unsigned)cfg->shelf.privilege + 2, /* user 2, operator 3, admin 4 */
	        .timeout_ms = (unsigned)cfg->detection.ipmc_timeout_ms,
	};

	return tg->mod->factory.open_lan(&p, &tg->t, err, errlen);
}

/* The shelf manager's worker decides which manager everybody uses. */
static void shmc_connect(struct ipd_target *tg)
{
	struct ipd *m = tg->mod;
	const struct af_config *cfg = cfg_of(tg);
	int n = (int)cfg->shelf.n_managers, prev = atomic_load(&m->active_shmc);
	int first = prev >= 0 ? prev : 0;
	char err[256] = "";

	for (int k = 0; k < n; k++) {
		int idx = (first + k) % n;
		int rc = open_lan(tg, idx, err, sizeof(err));

		if (rc == 0) {
			if (idx != prev) {
				struct af_event ev;

				atomic_store(&m->active_shmc, idx);
				atomic_fetch_add(&m->shmc_gen, 1);
				if (prev >= 0) {
					pthread_mutex_lock(&m->lock);
					m->switchovers++;
					pthread_mutex_unlock(&m->lock);
					af_event_init(&ev, AF_SRC_IPMI, AF_EV_SHMC_SWITCHOVER, 0,
					              "shelf manager");
					af_event_set(&ev, "from", "%s:%u",
					             cfg->shelf.managers[prev].address,
					             cfg->shelf.managers[prev].port);
					af_event_set(&ev, "to", "%s:%u",
					             cfg->shelf.managers[idx].address,
					             cfg->shelf.managers[idx].port);
					ipd_post_event(m, &ev);
				}
				ipd_post_log(m, LOG_NOTICE, "shelf manager %s:%u is now in use",
				             cfg->shelf.managers[idx].address,
				             cfg->shelf.managers[idx].port);
			}
			tg->connected_gen = atomic_load(&m->shmc_gen);
			return;
		}
		ipd_post_log(m, LOG_WARNING, "shelf manager %s:%u: %s",
		             cfg->shelf.managers[idx].address, cfg->shelf.managers[idx].port, err);
	}
	atomic_store(&m->active_shmc, -1);
	atomic_fetch_add(&m->shmc_gen, 1);
	set_view(tg, err);
}

static void connect_target(struct ipd_target *tg)
{
	struct ipd *m = tg->mod;
	char err[256] = "";
	int idx, rc;

	if (tg->kind == IPD_TARGET_SHMC) {
		shmc_connect(tg);
	} else if (tg->inband[0] != '\0') {
		rc = m->factory.open_inband(tg->inband, &tg->t, err, sizeof(err));
		if (rc < 0)
			set_view(tg, err);
	} else {
		/* the generation first: a switchover between the two loads
		 * only costs one more reconnection */
		tg->connected_gen = atomic_load(&m->shmc_gen);
		idx = atomic_load(&m->active_shmc);
		if (idx >= 0) {
			rc = open_lan(tg, idx, err, sizeof(err));
			if (rc < 0)
				set_view(tg, err);
		} else {
			snprintf(err, sizeof(err), "no shelf manager reachable");
			set_view(tg, err);
		}
	}
	if (tg->t != NULL && tg->kind == IPD_TARGET_BLADE && tg->inband[0] == '\0' &&
	    tg->fsm.state == IPD_T_UNREACHABLE) {
		/* a fresh session to an IPMC that does not answer: it stays
		 * UNREACHABLE until it answers the probe, sent at once */
		tg->answered = false;
		tg->next_try_ns = 0;
		set_view(tg, NULL);
		return;
	}
	if (tg->t != NULL) {
		tg->answered = false;
		fire(tg, IPD_E_CONNECTED);
		set_view(tg, "");
		tg->backoff_ms = 0;
		/* a session with the shelf manager, or the in-band device, is
		 * the target answering; an IPMC behind the shelf manager answers
		 * with its first command (command_ok) */
		if (tg->kind == IPD_TARGET_SHMC || tg->inband[0] != '\0')
			report_up(tg);
		return;
	}
	/* No shelf manager answered: that is the shelf manager worker's event
	 * (once per outage); a blade only waits for it. */
	if (tg->kind == IPD_TARGET_SHMC || tg->inband[0] != '\0') {
		fire(tg, IPD_E_UNANSWERED);
		schedule_retry(tg);
		report_down(tg, err);
	} else {
		fire(tg, IPD_E_WAIT_SHMC);
		schedule_retry(tg);
	}
}

/* Handles a failed command: a broken session is reopened (for the shelf
 * manager's worker, possibly on the other manager, before anything is
 * declared unreachable); a target that does not answer behind a working
 * session becomes UNREACHABLE; anything else (a bad answer) is logged and the
 * target stays as it is. */
static void command_failed(struct ipd_target *tg, int rc, const char *what)
{
	char why[128];
	bool session = rc == -ETIMEDOUT || rc == -ECONNRESET || rc == -EIO || rc == -ECONNREFUSED;
	bool unanswered = rc == -EREMOTEIO || rc == -ETIME;

	snprintf(why, sizeof(why), "%s: %s", what,
	         rc == -EREMOTEIO ? "IPMB bridging refused (CC 0x83: IPMC not answering)"
	         : rc == -ETIME   ? "no answer from the IPMC"
	                          : strerror(rc < 0 ? -rc : EPROTO));
	pthread_mutex_lock(&tg->mod->lock);
	tg->view.failures++;
	pthread_mutex_unlock(&tg->mod->lock);
	set_view(tg, why);
	/* An unreachable IPMC whose probe times out: the bridged session may be
	 * what is stuck (a session whose first requests were NAKed keeps timing
	 * out after the IPMC is back), so every retry gets a fresh one. */
	if (session && tg->kind == IPD_TARGET_BLADE && tg->inband[0] == '\0' &&
	    tg->fsm.state == IPD_T_UNREACHABLE) {
		close_session(tg);
		schedule_retry(tg);
		return;
	}
	/* A session that failed before anything was answered on it: behind
	 * a shelf manager that just let us in, it is the IPMC that does not
	 * answer, not the session; the shelf manager's worker reconnects,
	 * paced (the other manager may be tried). */
	if (session && tg->inband[0] == '\0' && (tg->answered || tg->kind == IPD_TARGET_SHMC)) {
		ipd_post_log(tg->mod, LOG_WARNING, "0x%02x: session lost (%s): reconnecting",
		             tg->addr, why);
		close_session(tg);
		fire(tg, IPD_E_SESSION_LOST);
		if (tg->kind == IPD_TARGET_BLADE)
			tg->next_try_ns = af_mono_ns() + BACKOFF_START_MS * AF_NS_PER_MS;
		else if (tg->answered)
			tg->next_try_ns = 0;
		else
			schedule_retry(tg);
		return;
	}
	if (session || unanswered) {
		if (fire(tg, IPD_E_UNANSWERED) == IPD_T_UNREACHABLE)
			tg->backoff_ms = 0; /* a new outage: the first retry soon */
		schedule_retry(tg);
		report_down(tg, why);
		return;
	}
	ipd_post_log(tg->mod, LOG_WARNING, "0x%02x: %s (ignored: the target answers)", tg->addr,
	             why);
	if (tg->fsm.state == IPD_T_UNREACHABLE)
		schedule_retry(tg); /* a probe answered with nonsense: paced too */
}

static void command_ok(struct ipd_target *tg)
{
	tg->answered = true;
	if (tg->fsm.state == IPD_T_UNREACHABLE) {
		fire(tg, IPD_E_ANSWERED);
		set_view(tg, "");
		tg->backoff_ms = 0;
		/* it may be another blade now (hot-swapped while silent):
		 * check its SDRs at once, not within the minute */
		tg->next_sdr_check_ns = 0;
	}
	report_up(tg);
}

/* One command. Where the transport hands on the shelf manager's own
 * completion code for a bridged request, CC 0x83 (IPMB NAK on write) is the
 * IPMC not answering, not an answer from it. */
static int tcmd(struct ipd_target *tg, uint8_t addr, uint8_t netfn, uint8_t cmd, const uint8_t *req,
                size_t req_len, uint8_t *rsp, size_t rsp_max)
{
	int n = tg->t->ops->cmd(tg->t, addr, netfn, cmd, req, req_len, rsp, rsp_max);

	if (n >= 1 && rsp[0] == IPD_CC_BRIDGE_NAK && addr != IPD_SHMC_ADDR && tg->inband[0] == '\0')
		return -EREMOTEIO;
	return n;
}

/* ---- SDRs -------------------------------------------------------------- */

struct sdr_source {
	uint8_t netfn, info_cmd, reserve_cmd, get_cmd;
};
static const struct sdr_source device_sdr = {IPD_NETFN_SE, IPD_CMD_GET_DEVICE_SDR_INFO,
                                             IPD_CMD_RESERVE_DEVICE_SDR, IPD_CMD_GET_DEVICE_SDR};
static const struct sdr_source repo_sdr = {IPD_NETFN_STORAGE, IPD_CMD_GET_SDR_REPO_INFO,
                                           IPD_CMD_RESERVE_SDR_REPO, IPD_CMD_GET_SDR};

static const struct sdr_source *sdr_source_of(const struct ipd_target *tg)
{
	/* the shelf manager's sensors are in its SDR repository; an IPMC's in
	 * its device SDRs (in-band: the local controller's repository) */
	return tg->kind == IPD_TARGET_SHMC || tg->inband[0] ? &repo_sdr : &device_sdr;
}

static uint32_t fnv1a(uint32_t h, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* Who the IPMC is: device id and revision, firmware revision, IPMI
 * version, manufacturer and product (Get Device ID bytes 2-12). A blade
 * swapped for another model or firmware has other SDRs. */
static int device_identity(struct ipd_target *tg, uint32_t *id)
{
	uint8_t rsp[32];
	int n = tcmd(tg, tg->addr, IPD_NETFN_APP, IPD_CMD_GET_DEVICE_ID, NULL, 0, rsp, sizeof(rsp));

	if (n < 0)
		return n;
	if (n < 1 || rsp[0] != IPD_CC_OK)
		return n >= 1 ? rsp[0] : -EPROTO;
	if (n < 12)
		return -EPROTO;
	*id = fnv1a(2166136261u, rsp + 1, 11);
	return 0;
}

/* The "change indicator": for an IPMC, device SDR info bytes 2-5 when the
 * population is dynamic (static populations have none), mixed with the
 * sensor count and the controller's identity, so that a cache never
 * outlives the blade it was read from; for a repository, its addition and
 * erase timestamps. */
static int sdr_change(struct ipd_target *tg, uint32_t *change)
{
	const struct sdr_source *src = sdr_source_of(tg);
	uint8_t rsp[32];
	uint32_t ident;
	int n = tcmd(tg, tg->addr, src->netfn, src->info_cmd, NULL, 0, rsp, sizeof(rsp));

	if (n < 0)
		return n;
	if (n < 1 || rsp[0] != IPD_CC_OK)
		return n >= 1 ? rsp[0] : -EPROTO;
	if (src == &device_sdr) {
		uint8_t mix[5] = {n >= 2 ? rsp[1] : 0, 0, 0, 0, 0};
		int rc;

		if (n >= 7)
			memcpy(mix + 1, rsp + 3, 4);
		rc = device_identity(tg, &ident);
		if (rc != 0)
			return rc;
		*change = fnv1a(ident, mix, sizeof(mix));
	} else {
		if (n < 14)
			return -EPROTO;
		*change = ((uint32_t)rsp[6] | (uint32_t)rsp[7] << 8 | (uint32_t)rsp[8] << 16 |
		           (uint32_t)rsp[9] << 24) ^
		          ((uint32_t)rsp[10] | (uint32_t)rsp[11] << 8 | (uint32_t)rsp[12] << 16 |
		           (uint32_t)rsp[13] << 24);
	}
	return 0;
}

/* Reads one record in chunks (controllers refuse "whole record" reads of
 * long records with CC 0xCA); a cancelled reservation restarts it. A record
 * longer than rec (cap bytes: more than any sensor record) is kept as its
 * header only, which the decoder skips. */
static int read_record(struct ipd_target *tg, uint16_t id, uint16_t *next, uint8_t *rec, size_t cap,
                       size_t *len)
{
	const struct sdr_source *src = sdr_source_of(tg);
	uint8_t rsp[64], req[6];
	uint16_t resv = 0;
	int n;

	for (int attempt = 0; attempt < 3; attempt++) {
		size_t have = 0, total = 5;
		bool restart = false;

		n = tcmd(tg, tg->addr, src->netfn, src->reserve_cmd, NULL, 0, rsp, sizeof(rsp));
		if (n < 0)
			return n;
		if (n >= 3 && rsp[0] == IPD_CC_OK)
			resv = (uint16_t)(rsp[1] | rsp[2] << 8);
		while (have < total) {
			uint8_t chunk = (uint8_t)(total - have > 16 ? 16 : total - have);

			req[0] = (uint8_t)(resv & 0xFF);
			req[1] = (uint8_t)(resv >> 8);
			req[2] = (uint8_t)(id & 0xFF);
			req[3] = (uint8_t)(id >> 8);
			req[4] = (uint8_t)have;
			req[5] = chunk;
			n = tcmd(tg, tg->addr, src->netfn, src->get_cmd, req, sizeof(req), rsp,
			         sizeof(rsp));
			if (n < 0)
				return n;
			if (n >= 1 && rsp[0] == IPD_CC_RES_CANCELLED) {
				restart = true;
				break;
			}
			if (n < 3 || rsp[0] != IPD_CC_OK) /* CC 0 and too short: -EPROTO */
				return n >= 1 && rsp[0] != IPD_CC_OK ? rsp[0] : -EPROTO;
			if ((size_t)(n - 3) < chunk)
				return -EPROTO;
			memcpy(rec + have, rsp + 3, chunk);
			if (have == 0) {
				*next = (uint16_t)(rsp[1] | rsp[2] << 8);
				total = 5 + (size_t)rec[4];
				if (total > cap)
					total = 5;
			}
			have += chunk;
		}
		if (!restart) {
			*len = total;
			return 0;
		}
	}
	return -EAGAIN;
}

static void sdr_cache_path(const struct ipd_target *tg, char *buf, size_t len)
{
	snprintf(buf, len, "%s/sdr-0x%02x.cache", cfg_of(tg)->daemon.state_dir, tg->addr);
}

/* Cache file: "ATSDR1", change indicator, count, then (len, record) pairs. */
static void sdr_cache_save(struct ipd_target *tg, uint8_t (*recs)[64], const size_t *lens,
                           unsigned count)
{
	char path[AF_CFG_PATH_MAX + 32], tmp[AF_CFG_PATH_MAX + 40];
	FILE *f;
	bool ok;

	sdr_cache_path(tg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (f == NULL)
		return;
	ok = fwrite("ATSDR1", 1, 6, f) == 6 && fwrite(&tg->sdr_change, 4, 1, f) == 1 &&
	     fwrite(&count, 4, 1, f) == 1;
	for (unsigned i = 0; ok && i < count; i++) {
		uint8_t l = (uint8_t)lens[i];
		ok = fwrite(&l, 1, 1, f) == 1 && fwrite(recs[i], 1, l, f) == l;
	}
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0)
		ok = false;
	if (ok && rename(tmp, path) == 0)
		return;
	unlink(tmp);
}

static void keep_sensor(struct ipd_target *tg, const uint8_t *rec, size_t len)
{
	struct ipd_sensor s;

	if (tg->n_sensors >= IPD_MAX_SENSORS || ipd_sdr_decode(rec, len, &s) != 1)
		return;
	/* The repository also holds the blades' sensors: the shelf manager's
	 * worker reads only its own. */
	if (tg->kind == IPD_TARGET_SHMC && s.owner != IPD_SHMC_ADDR)
		return;
	tg->sensors[tg->n_sensors++] = s;
}

static bool sdr_cache_load(struct ipd_target *tg, uint32_t change)
{
	char path[AF_CFG_PATH_MAX + 32], magic[6];
	uint32_t stored, count;
	uint8_t rec[64];
	FILE *f;

	sdr_cache_path(tg, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	if (fread(magic, 1, 6, f) != 6 || memcmp(magic, "ATSDR1", 6) != 0 ||
	    fread(&stored, 4, 1, f) != 1 || stored != change || fread(&count, 4, 1, f) != 1 ||
	    count > 256) {
		fclose(f);
		return false;
	}
	tg->n_sensors = 0;
	for (uint32_t i = 0; i < count; i++) {
		uint8_t l;

		if (fread(&l, 1, 1, f) != 1 || l > sizeof(rec) || fread(rec, 1, l, f) != l) {
			fclose(f);
			tg->n_sensors = 0;
			return false; /* a damaged cache is rebuilt */
		}
		keep_sensor(tg, rec, l);
	}
	fclose(f);
	return true;
}

static int load_sdrs(struct ipd_target *tg)
{
	uint8_t(*recs_buf)[64] = NULL;
	size_t lens[256];
	unsigned count = 0;
	uint32_t change = 0;
	uint16_t id = 0, next = IPD_SEL_LAST;
	int rc;

	rc = sdr_change(tg, &change);
	if (rc != 0)
		return rc < 0 ? rc : -EPROTO;
	if (tg->sdr_loaded && change == tg->sdr_change)
		return 0;
	if (sdr_cache_load(tg, change)) {
		tg->sdr_change = change;
		tg->sdr_loaded = true;
		ipd_post_log(tg->mod, LOG_INFO, "0x%02x: %u sensors from the SDR cache", tg->addr,
		             tg->n_sensors);
		goto done;
	}
	recs_buf = malloc(256 * sizeof(*recs_buf));
	if (recs_buf == NULL)
		return -ENOMEM;
	tg->n_sensors = 0;
	while (id != IPD_SEL_LAST && count < 256) {
		rc = read_record(tg, id, &next, recs_buf[count], sizeof(recs_buf[count]),
		                 &lens[count]);
		if (rc != 0) {
			free(recs_buf);
			/* no half list: read again at the next attempt */
			tg->n_sensors = 0;
			tg->sdr_loaded = false;
			ipd_post_log(
			        tg->mod, LOG_WARNING,
			        "0x%02x: reading SDR 0x%04x failed (%d): sensors not known yet",
			        tg->addr, id, rc);
			return rc < 0 ? rc : -EPROTO;
		}
		keep_sensor(tg, recs_buf[count], lens[count]);
		count++;
		if (next == id)
			break; /* a repository that points at itself */
		id = next;
	}
	tg->sdr_change = change;
	tg->sdr_loaded = true;
	sdr_cache_save(tg, recs_buf, lens, count);
	free(recs_buf);
	ipd_post_log(tg->mod, LOG_INFO, "0x%02x: %u SDRs read, %u sensors (cache rebuilt)",
	             tg->addr, count, tg->n_sensors);
done:
	memset(tg->sstate, 0, sizeof(tg->sstate));
	pthread_mutex_lock(&tg->mod->lock);
	tg->n_sview = 0; /* the views follow the new list */
	pthread_mutex_unlock(&tg->mod->lock);
	ipd_learn_names(tg->mod, tg);
	return 0;
}

/* ---- sensors -------------------------------------------------------------- */

static void offsets_text(const struct ipd_sensor *s, uint16_t mask, char *buf, size_t len)
{
	size_t pos = 0;

	buf[0] = '\0';
	for (unsigned off = 0; off < 15; off++) {
		const char *name;

		if (!(mask & (1u << off)))
			continue;
		name = ipd_offset_name(s->type, s->reading_type, off);
		pos += (size_t)snprintf(buf + pos, pos < len ? len - pos : 0, "%s%s%s",
		                        pos ? "," : "", name ? name : "offset-", name ? "" : "");
		if (name == NULL)
			pos += (size_t)snprintf(buf + pos, pos < len ? len - pos : 0, "%u", off);
		if (pos >= len)
			break;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "none");
}

static void update_view(struct ipd_target *tg, unsigned i, const struct ipd_sensor *s,
                        const char *value, const char *state)
{
	struct ipd_sensor_view *v = &tg->sview[i];

	pthread_mutex_lock(&tg->mod->lock);
	v->slot = tg->slot;
	v->owner = s->owner;
	v->number = s->number;
	af_strlcpy(v->name, s->name, sizeof(v->name));
	af_strlcpy(v->type, ipd_sensor_type_name(s->type), sizeof(v->type));
	af_strlcpy(v->value, value, sizeof(v->value));
	af_strlcpy(v->unit, s->cls == IPD_SENSOR_THRESHOLD ? ipd_unit_name(s->unit) : "",
	           sizeof(v->unit));
	af_strlcpy(v->state, state, sizeof(v->state));
	v->updated_ns = af_mono_ns();
	if (i + 1 > tg->n_sview)
		tg->n_sview = i + 1;
	tg->view.reads++;
	tg->view.sensors = tg->n_sensors;
	pthread_mutex_unlock(&tg->mod->lock);
}

static void threshold_reading(struct ipd_target *tg, unsigned i, uint8_t raw, uint8_t status)
{
	const struct ipd_sensor *s = &tg->sensors[i];
	struct ipd_sensor_state *st = &tg->sstate[i];
	char value[24];
	double v;
	bool changed = !st->have || st->status != status;

	if (ipd_sdr_convert(s, raw, &v))
		snprintf(value, sizeof(value), "%.2f", v);
	else
		snprintf(value, sizeof(value), "raw %u", raw);
	update_view(tg, i, s, value, ipd_threshold_state(status));
	/* An event when the state changes, every reading while it is not ok
	 * and the first IPD_OK_REPEATS ok ones after that: the failure model
	 * counts readings to debounce and to clear with hysteresis. */
	if (changed || status != 0 || st->ok_repeats > 0) {
		struct af_event ev;

		af_event_init(&ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, tg->slot, s->name);
		af_event_set(&ev, "owner", "0x%02x", s->owner);
		af_event_set(&ev, "sensor", "0x%02x", s->number);
		af_event_set(&ev, "type", "%s", ipd_sensor_type_name(s->type));
		af_event_set(&ev, "reading", "%s", value);
		af_event_set(&ev, "unit", "%s", ipd_unit_name(s->unit));
		af_event_set(&ev, "state", "%s", ipd_threshold_state(status));
		af_event_set(&ev, "severity", "%d", ipd_threshold_severity(status));
		if (st->have)
			af_event_set(&ev, "previous", "%s", ipd_threshold_state(st->status));
		else
			af_event_set(&ev, "initial", "yes");
		if (!changed)
			af_event_set(&ev, "repeat", "yes");
		if (status != 0)
			st->ok_repeats = IPD_OK_REPEATS;
		else if (!changed && st->ok_repeats > 0)
			st->ok_repeats--;
		ipd_post_event(tg->mod, &ev);
	}
	st->have = true;
	st->raw = raw;
	st->status = status;
}

static void discrete_reading(struct ipd_target *tg, unsigned i, uint16_t asserted)
{
	const struct ipd_sensor *s = &tg->sensors[i];
	struct ipd_sensor_state *st = &tg->sstate[i];
	char value[24], names[64];

	asserted &= 0x7FFF;
	offsets_text(s, asserted, names, sizeof(names));
	snprintf(value, sizeof(value), "0x%04x", asserted);
	update_view(tg, i, s, value, names);
	if (!st->have || st->asserted != asserted) {
		struct af_event ev;

		af_event_init(&ev, AF_SRC_IPMI, AF_EV_SENSOR_DISCRETE, tg->slot, s->name);
		af_event_set(&ev, "owner", "0x%02x", s->owner);
		af_event_set(&ev, "sensor", "0x%02x", s->number);
		af_event_set(&ev, "type", "%s", ipd_sensor_type_name(s->type));
		af_event_set(&ev, "asserted", "0x%04x", asserted);
		af_event_set(&ev, "offsets", "%s", names);
		if (st->have) {
			af_event_set(&ev, "previous", "0x%04x", st->asserted);
			af_event_set(&ev, "changed", "0x%04x", (unsigned)(st->asserted ^ asserted));
		} else {
			af_event_set(&ev, "initial", "yes");
		}
		ipd_post_event(tg->mod, &ev);
	}
	st->have = true;
	st->asserted = asserted;
}

static int read_sensors(struct ipd_target *tg)
{
	for (unsigned i = 0; i < tg->n_sensors && !ipd_stopping(tg->mod); i++) {
		const struct ipd_sensor *s = &tg->sensors[i];
		uint8_t rsp[16], num = s->number;
		int n = tcmd(tg, s->owner, IPD_NETFN_SE, IPD_CMD_GET_SENSOR_READING, &num, 1, rsp,
		             sizeof(rsp));

		if (n < 0)
			return n;
		command_ok(tg);
		/* a bad answer from one sensor skips that sensor only */
		if (n < 4 || rsp[0] != IPD_CC_OK) {
			if (n >= 1 && rsp[0] != IPD_CC_OK)
				ipd_post_log(tg->mod, LOG_DEBUG,
				             "0x%02x: sensor 0x%02x: completion code 0x%02x",
				             tg->addr, num, rsp[0]);
			continue;
		}
		if (rsp[2] & 0x20) /* reading/state unavailable */
			continue;
		if (s->cls == IPD_SENSOR_THRESHOLD)
			threshold_reading(tg, i, rsp[1], rsp[3] & 0x3F);
		else
			discrete_reading(tg, i, (uint16_t)(rsp[3] | (n > 4 ? rsp[4] << 8 : 0)));
	}
	return 0;
}

/* ---- the SEL (shelf manager worker) --------------------------------------- */

static void post_record(struct ipd_target *tg, const struct ipd_sel_rec *r, bool superseded,
                        uint32_t m4_ts)
{
	struct af_event ev;
	char name[17] = "";
	uint8_t gen = (uint8_t)(r->generator & 0xFE);
	/* generator bit 0 set: a system software id, not an IPMB address
	 * (remote console software 0x40-0x46 reads 0x81-0x8D, like blades) */
	bool ipmb = r->type == 0x02 && !(r->generator & 1);

	if (ipmb)
		ipd_name_of(tg->mod, gen, r->sensor_number, name, sizeof(name));
	ipd_sel_to_event(r, name[0] ? name : NULL, ipmb ? ipd_slot_of_addr(tg->mod, gen) : 0, &ev);
	/* kept in the event history; the failure model passes it by */
	if (superseded)
		af_event_set(&ev, "superseded", "M4 at SEL time %u", m4_ts);
	ipd_post_event(tg->mod, &ev);
}

/* Posts the held backlog, its superseded records marked, and lets the
 * cursor be saved past it. */
static void flush_backlog(struct ipd_target *tg)
{
	bool sup[IPD_SEL_BACKLOG_MAX];
	uint32_t m4[IPD_SEL_BACKLOG_MAX];
	unsigned n_sup = 0;

	if (tg->n_backlog == 0)
		return;
	ipd_sel_supersede(tg->backlog, tg->n_backlog, sup, m4);
	for (unsigned i = 0; i < tg->n_backlog; i++) {
		post_record(tg, &tg->backlog[i], sup[i], m4[i]);
		n_sup += sup[i];
	}
	ipd_post_log(tg->mod, n_sup ? LOG_NOTICE : LOG_INFO,
	             "SEL backlog: %u record(s) logged while atca-ftd was away posted, %u of "
	             "them superseded by a later activation (M4) of their blade (not faults)",
	             tg->n_backlog, n_sup);
	tg->n_backlog = 0;
	tg->cursor_dirty = true;
}

static void end_catch_up(struct ipd_target *tg)
{
	flush_backlog(tg);
	free(tg->backlog);
	tg->backlog = NULL;
	tg->catching_up = false;
}

static void sel_record(void *opaque, const struct ipd_sel_rec *r)
{
	struct ipd_target *tg = opaque;

	if (tg->catching_up && tg->backlog == NULL) {
		tg->backlog = calloc(IPD_SEL_BACKLOG_MAX, sizeof(*tg->backlog));
		if (tg->backlog == NULL) {
			/* as before this filter: the records as they come */
			ipd_post_log(tg->mod, LOG_WARNING,
			             "SEL backlog: out of memory holding it, posted unfiltered");
			tg->catching_up = false;
		}
	}
	if (tg->catching_up) {
		if (tg->n_backlog == IPD_SEL_BACKLOG_MAX)
			flush_backlog(tg); /* a longer backlog is judged in parts */
		tg->backlog[tg->n_backlog++] = *r;
		return;
	}
	post_record(tg, r, false, 0);
	tg->cursor_dirty = true;
}

static void sel_cleared(void *opaque, unsigned before)
{
	struct ipd_target *tg = opaque;
	struct af_event ev;

	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SEL_CLEARED, 0, "SEL");
	af_event_set(&ev, "entries_before", "%u", before);
	ipd_post_event(tg->mod, &ev);
	tg->cursor_dirty = true;
}

static void sel_overflow(void *opaque, unsigned entries)
{
	struct ipd_target *tg = opaque;
	struct af_event ev;

	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SEL_OVERFLOW, 0, "SEL");
	af_event_set(&ev, "entries", "%u", entries);
	ipd_post_event(tg->mod, &ev);
	tg->cursor_dirty = true; /* reported once, also across restarts */
}

static void sel_resync(void *opaque, uint16_t lost)
{
	struct ipd_target *tg = opaque;

	ipd_post_log(tg->mod, LOG_WARNING,
	             "SEL record 0x%04x vanished (wrap or delete): resynchronising by time", lost);
}

static int poll_sel(struct ipd_target *tg)
{
	struct ipd_sel_sink sink = {sel_record, sel_cleared, sel_overflow, sel_resync, tg};
	int rc = ipd_sel_poll(&tg->cursor, tg->t, IPD_SHMC_ADDR, &sink);

	/* the end of the SEL: this poll found nothing new or walked to it */
	if (tg->catching_up && rc >= 0 && (rc == 0 || tg->cursor.next_id == IPD_SEL_LAST))
		end_catch_up(tg);
	if (rc >= 0 && tg->cursor_dirty && !tg->catching_up) {
		int src = ipd_cursor_save(tg->cursor_path, &tg->cursor);

		/* the file on disk is the old position, whole (written aside,
		 * then renamed): tried again at the next poll, said once */
		if (src < 0 && tg->cursor_save_rc == 0)
			ipd_post_log(tg->mod, LOG_WARNING,
			             "cannot save the SEL position to %s: %s (kept in memory, "
			             "saved as soon as it can be; a restart meanwhile replays "
			             "the SEL from the last saved position)",
			             tg->cursor_path, strerror(-src));
		else if (src == 0 && tg->cursor_save_rc < 0)
			ipd_post_log(tg->mod, LOG_NOTICE, "SEL position saved to %s again",
			             tg->cursor_path);
		tg->cursor_save_rc = src;
		if (src == 0)
			tg->cursor_dirty = false;
	}
	return rc;
}

/* ---- the worker loop ------------------------------------------------------ */

/* The SEL of the other shelf manager was read more recently than this
 * one's (a switchover, or a start on the standby): its events up to the
 * last one processed there were delivered, and this manager's old cursor
 * would deliver them again from its own copy of the log (a hot-swap M7 of
 * a blade repaired since raised hs-lost and fenced healthy blades in the
 * soak). Start this SEL after that record's timestamp instead. */
static bool adopt_newer(struct ipd_target *tg, int idx)
{
	const struct af_config *cfg = cfg_of(tg);
	struct ipd_sel_cursor other;
	struct stat st_here, st;
	char path[sizeof(tg->cursor_path)];
	bool have_here = stat(tg->cursor_path, &st_here) == 0;
	int best = -1;
	struct timespec best_t = {0, 0};

	for (int i = 0; i < (int)cfg->shelf.n_managers; i++) {
		const struct af_cfg_shmc *o = &cfg->shelf.managers[i];

		if (i == idx)
			continue;
		snprintf(path, sizeof(path), "%s/sel-%s-%u.cursor", cfg->daemon.state_dir,
		         o->address, o->port);
		if (stat(path, &st) < 0)
			continue;
		if (have_here && (st.st_mtim.tv_sec < st_here.st_mtim.tv_sec ||
		                  (st.st_mtim.tv_sec == st_here.st_mtim.tv_sec &&
		                   st.st_mtim.tv_nsec <= st_here.st_mtim.tv_nsec)))
			continue;
		if (best >= 0 &&
		    (st.st_mtim.tv_sec < best_t.tv_sec ||
		     (st.st_mtim.tv_sec == best_t.tv_sec && st.st_mtim.tv_nsec <= best_t.tv_nsec)))
			continue;
		best = i;
		best_t = st.st_mtim;
	}
	if (best < 0)
		return false;
	snprintf(path, sizeof(path), "%s/sel-%s-%u.cursor", cfg->daemon.state_dir,
	         cfg->shelf.managers[best].address, cfg->shelf.managers[best].port);
	if (ipd_cursor_load(path, &other) < 0 || !other.have_last)
		return false;
	ipd_sel_adopt(&tg->cursor, other.last_ts);
	ipd_post_log(tg->mod, LOG_NOTICE,
	             "SEL of %s:%u: taking over from %s:%u's, whose records up to SEL time %u "
	             "were delivered: only later ones are news",
	             cfg->shelf.managers[idx].address, cfg->shelf.managers[idx].port,
	             cfg->shelf.managers[best].address, cfg->shelf.managers[best].port,
	             other.last_ts);
	return true;
}

static void cursor_setup(struct ipd_target *tg)
{
	const struct af_config *cfg = cfg_of(tg);
	int idx = atomic_load(&tg->mod->active_shmc);
	const struct af_cfg_shmc *mgr = &cfg->shelf.managers[idx >= 0 ? idx : 0];
	char want[sizeof(tg->cursor_path)];
	int rc;

	/* one position per shelf manager: their SELs are separate logs */
	snprintf(want, sizeof(want), "%s/sel-%s-%u.cursor", cfg->daemon.state_dir, mgr->address,
	         mgr->port);
	if (strcmp(want, tg->cursor_path) == 0)
		return;
	if (tg->catching_up) {
		/* what was read of the other SEL is posted, and its position
		 * saved, so that this one can take over after it */
		end_catch_up(tg);
		if (tg->cursor_path[0] != '\0' &&
		    ipd_cursor_save(tg->cursor_path, &tg->cursor) == 0)
			tg->cursor_dirty = false;
	}
	af_strlcpy(tg->cursor_path, want, sizeof(tg->cursor_path));
	memset(&tg->cursor, 0, sizeof(tg->cursor));
	tg->catching_up = true;
	if (adopt_newer(tg, idx >= 0 ? idx : 0))
		return;
	rc = ipd_cursor_load(tg->cursor_path, &tg->cursor);
	tg->catching_up = rc == 0;
	if (rc == 0)
		ipd_post_log(tg->mod, LOG_INFO,
		             "SEL of %s:%u: resuming after record 0x%04x (events logged while "
		             "atca-ftd was down are delivered)",
		             mgr->address, mgr->port, tg->cursor.last_id);
	else if (rc != -ENOENT)
		ipd_post_log(tg->mod, LOG_WARNING, "%s unreadable (%s): starting at the SEL's end",
		             tg->cursor_path, strerror(-rc));
}

void *ipd_worker(void *arg)
{
	struct ipd_target *tg = arg;
	struct ipd *m = tg->mod;
	const struct af_config *cfg = cfg_of(tg);
	uint64_t sensor_ns = cfg->detection.sensor_interval_ms * AF_NS_PER_MS;
	uint64_t sel_ns = cfg->detection.sel_interval_ms * AF_NS_PER_MS;
	int rc;

	while (!ipd_stopping(m)) {
		uint64_t now = af_mono_ns(), wake;
		bool shmc_changed = tg->kind == IPD_TARGET_BLADE && tg->inband[0] == '\0' &&
		                    tg->connected_gen != atomic_load(&m->shmc_gen);

		/* blades follow the shelf manager's worker to the other manager */
		if (tg->t != NULL && shmc_changed) {
			close_session(tg);
			fire(tg, IPD_E_SESSION_LOST);
			tg->next_try_ns = 0;
		}
		/* ... and come back as soon as it has one again */
		if (tg->t == NULL && (now >= tg->next_try_ns || shmc_changed)) {
			connect_target(tg);
			if (tg->t != NULL && tg->kind == IPD_TARGET_SHMC)
				cursor_setup(tg);
		}
		if (tg->t != NULL && tg->fsm.state == IPD_T_UNREACHABLE && now >= tg->next_try_ns) {
			/* probe an unreachable IPMC at the backoff pace */
			uint8_t rsp[32];

			rc = tcmd(tg, tg->addr, IPD_NETFN_APP, IPD_CMD_GET_DEVICE_ID, NULL, 0, rsp,
			          sizeof(rsp));
			if (rc > 0 && rsp[0] == IPD_CC_OK)
				command_ok(tg);
			else
				command_failed(tg, rc >= 0 ? -EREMOTEIO : rc, "probe");
		}
		if (tg->t != NULL && tg->fsm.state == IPD_T_ONLINE) {
			if (tg->kind == IPD_TARGET_SHMC && now >= tg->next_sel_ns) {
				rc = poll_sel(tg);
				tg->next_sel_ns = now + sel_ns;
				if (rc < 0)
					command_failed(tg, rc, "SEL");
				else
					command_ok(tg);
			}
			if (tg->t != NULL && tg->fsm.state == IPD_T_ONLINE &&
			    now >= tg->next_sdr_check_ns) {
				rc = load_sdrs(tg);
				/* rechecked every minute; a failed load is tried
				 * again at the sensor pace, not in a tight loop */
				tg->next_sdr_check_ns =
				        now + (rc == 0 ? IPD_SDR_RECHECK_NS : sensor_ns);
				if (rc < 0)
					command_failed(tg, rc, "SDR");
				else
					command_ok(tg);
			}
			if (tg->t != NULL && tg->fsm.state == IPD_T_ONLINE && tg->sdr_loaded &&
			    now >= tg->next_sensors_ns) {
				rc = read_sensors(tg);
				tg->next_sensors_ns = now + sensor_ns;
				if (rc < 0)
					command_failed(tg, rc, "sensor reading");
			}
		}
		now = af_mono_ns();
		if (tg->t == NULL || tg->fsm.state == IPD_T_UNREACHABLE) {
			wake = tg->next_try_ns;
		} else {
			/* sensors are read only once their SDRs are known */
			wake = tg->next_sdr_check_ns;
			if (tg->sdr_loaded && tg->next_sensors_ns < wake)
				wake = tg->next_sensors_ns;
			if (tg->kind == IPD_TARGET_SHMC && tg->next_sel_ns < wake)
				wake = tg->next_sel_ns;
		}
		if (tg->t == NULL && tg->kind == IPD_TARGET_BLADE && tg->inband[0] == '\0' &&
		    wake > now + 100 * AF_NS_PER_MS)
			wake = now + 100 * AF_NS_PER_MS; /* notice a shelf manager coming back */
		if (wake > now)
			ipd_wait(m, wake);
	}
	/* a backlog not posted yet is read again at the next start */
	if (tg->kind == IPD_TARGET_SHMC && tg->cursor.positioned && tg->cursor_path[0] != '\0' &&
	    !tg->catching_up)
		ipd_cursor_save(tg->cursor_path, &tg->cursor);
	free(tg->backlog);
	tg->backlog = NULL;
	tg->n_backlog = 0;
	close_session(tg);
	return NULL;
}
