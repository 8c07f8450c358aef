/*
 * The daemon's answers, as JSON documents. The CLI renders them as tables;
 * scripts read them with --json. Field names are part of the interface:
 * add fields freely, never rename or retype one (bump the protocol instead).
 */
#include "config.h"

#define AF_LOG_SS AF_SS_IPC
#include "ftd.h"
#include "vft.h"

#include "nt.h"
#include "rcv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

json_object *ftd_error_json(const char *message, int code)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "error", json_object_new_string(message));
	json_object_object_add(o, "code", json_object_new_int(code));
	return o;
}

static double seconds_since(uint64_t mono_ns)
{
	uint64_t now = af_mono_ns();

	return now > mono_ns ? (double)(now - mono_ns) / (double)AF_NS_PER_S : 0.0;
}

static json_object *string_array(const char (*items)[AF_CFG_ERR_MAX], unsigned n)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(items[i]));
	return a;
}

static json_object *hello(const struct ftd_ctx *ctx)
{
	json_object *o = json_object_new_object();
	json_object *p = json_object_new_object();

	(void)ctx;
	json_object_object_add(o, "daemon", json_object_new_string("atca-ftd"));
	json_object_object_add(o, "version", json_object_new_string(af_version()));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(p, "version", json_object_new_int(AF_IPC_VERSION));
	json_object_object_add(p, "min", json_object_new_int(AF_IPC_VERSION_MIN));
	json_object_object_add(p, "max", json_object_new_int(AF_IPC_VERSION));
	json_object_object_add(o, "protocol", p);
	return o;
}

static json_object *reload_json(const struct ftd_reload_result *r, uint64_t generation)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(r->ok));
	json_object_object_add(o, "generation", json_object_new_int64((int64_t)generation));
	json_object_object_add(o, "age_s", json_object_new_double(seconds_since(r->mono_ns)));
	json_object_object_add(o, "errors", string_array(r->errors, r->n_errors));
	json_object_object_add(o, "warnings", string_array(r->warnings, r->n_warnings));
	return o;
}

static json_object *daemon_json(const struct ftd_ctx *ctx)
{
	const struct af_config *cfg = ctx->cfg;
	json_object *o = json_object_new_object();
	char started[64];
	struct tm tm;

	gmtime_r(&ctx->start_wall, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_object_add(o, "version", json_object_new_string(af_version()));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "started", json_object_new_string(started));
	json_object_object_add(o, "uptime_s", json_object_new_double(seconds_since(ctx->start_ns)));
	json_object_object_add(o, "config", json_object_new_string(ctx->opt.config_path));
	json_object_object_add(o, "config_generation",
	                       json_object_new_int64((int64_t)ctx->cfg_generation));
	json_object_object_add(o, "config_age_s",
	                       json_object_new_double(seconds_since(ctx->cfg_loaded_ns)));
	json_object_object_add(o, "last_reload",
	                       ctx->last_reload.attempted
	                               ? reload_json(&ctx->last_reload, ctx->cfg_generation)
	                               : NULL);
	json_object_object_add(o, "role",
	                       json_object_new_string(ctx->local_blade ? "blade" : "observer"));
	json_object_object_add(o, "local_blade",
	                       ctx->local_blade ? json_object_new_int((int)ctx->local_blade)
	                                        : NULL);
	json_object_object_add(o, "ipc_name", json_object_new_string(cfg->daemon.ipc_name));
	json_object_object_add(o, "state_dir", json_object_new_string(cfg->daemon.state_dir));
	json_object_object_add(o, "events", json_object_new_int64((int64_t)ctx->next_event_id));
	return o;
}

static json_object *shelf_json(struct ftd_ctx *ctx)
{
	const struct af_config *cfg = ctx->cfg;
	json_object *o = json_object_new_object();
	json_object *mgrs = json_object_new_array();

	json_object_object_add(o, "name", json_object_new_string(cfg->shelf.name));
	json_object_object_add(o, "cipher_suite",
	                       json_object_new_int((int)cfg->shelf.cipher_suite));
	for (unsigned i = 0; i < cfg->shelf.n_managers; i++) {
		json_object *m = json_object_new_object();

		json_object_object_add(m, "address",
		                       json_object_new_string(cfg->shelf.managers[i].address));
		json_object_object_add(m, "port",
		                       json_object_new_int((int)cfg->shelf.managers[i].port));
		json_object_object_add(m, "state",
		                       json_object_new_string(ftd_manager_state(ctx, i)));
		json_object_array_add(mgrs, m);
	}
	json_object_object_add(o, "managers", mgrs);
	return o;
}

static json_object *blades_json(const struct ftd_ctx *ctx)
{
	const struct af_config *cfg = ctx->cfg;
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < cfg->n_blades; i++) {
		const struct af_cfg_blade *b = &cfg->blades[i];
		uint32_t partner = af_cfg_partner(cfg, b->slot);
		json_object *o = json_object_new_object();
		char ipmc[8];

		snprintf(ipmc, sizeof(ipmc), "0x%02x", b->ipmc);
		json_object_object_add(o, "slot", json_object_new_int((int)b->slot));
		json_object_object_add(o, "ipmc", json_object_new_string(ipmc));
		json_object_object_add(o, "host", json_object_new_string(b->host));
		json_object_object_add(o, "partner",
		                       partner ? json_object_new_int((int)partner) : NULL);
		json_object_object_add(o, "local",
		                       json_object_new_boolean(b->slot == ctx->local_blade));
		{
			json_object *hw = ftd_blade_json((struct ftd_ctx *)ctx, b), *v = NULL;

			json_object_object_get_ex(hw, "health", &v);
			json_object_object_add(o, "state", json_object_get(v));
			v = NULL;
			json_object_object_get_ex(hw, "mstate", &v);
			json_object_object_add(o, "mstate", json_object_get(v));
			json_object_put(hw);
		}
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *pairs_json(const struct af_config *cfg)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < cfg->n_pairs; i++) {
		json_object *o = json_object_new_object();
		json_object *b = json_object_new_array();

		json_object_array_add(b, json_object_new_int((int)cfg->pairs[i].blades[0]));
		json_object_array_add(b, json_object_new_int((int)cfg->pairs[i].blades[1]));
		json_object_object_add(o, "blades", b);
		json_object_object_add(o, "derived",
		                       json_object_new_boolean(cfg->pairs[i].derived));
		json_object_object_add(o, "state", json_object_new_string("unknown"));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *vms_json(const struct af_config *cfg)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < cfg->n_vms; i++) {
		const struct af_cfg_vm *v = &cfg->vms[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "name", json_object_new_string(v->name));
		json_object_object_add(o, "domain", json_object_new_string(v->domain));
		json_object_object_add(o, "blade", json_object_new_int((int)v->blade));
		json_object_object_add(o, "protection",
		                       json_object_new_string(af_protection_names[v->protection]));
		json_object_object_add(o, "state", json_object_new_string("unknown"));
		json_object_array_add(a, o);
	}
	return a;
}

static json_object *modules_json(const struct ftd_ctx *ctx)
{
	json_object *a = json_object_new_array();

	for (unsigned i = 0; i < ftd_module_count(); i++) {
		struct af_module_status st;
		json_object *o = json_object_new_object();

		ftd_module_describe(ctx, i, &st);
		json_object_object_add(o, "name", json_object_new_string(st.name));
		json_object_object_add(o, "state", json_object_new_string(st.state));
		json_object_object_add(o, "detail", json_object_new_string(st.detail));
		json_object_array_add(a, o);
	}
	return a;
}

/* The SNMP notifier's targets: what each sent and what the NMS answered. */
static json_object *snmp_json(const struct ftd_ctx *ctx)
{
	json_object *o, *a;
	struct nt_target_stats st;
	char hex[80];
	uint64_t suppressed = 0;

	if (ctx->nt == NULL)
		return NULL;
	o = json_object_new_object();
	a = json_object_new_array();
	json_object_object_add(
	        o, "engine_id",
	        nt_engine_id(ctx->nt, hex, sizeof(hex)) == 0 ? json_object_new_string(hex) : NULL);
	for (unsigned i = 0; nt_target_stats(ctx->nt, i, &st) == 0; i++) {
		json_object *t = json_object_new_object();

		json_object_object_add(t, "address", json_object_new_string(st.address));
		json_object_object_add(t, "version", json_object_new_string(st.version));
		json_object_object_add(t, "type", json_object_new_string(st.type));
		json_object_object_add(t, "state", json_object_new_string(st.state));
		json_object_object_add(t, "sent", json_object_new_int64((int64_t)st.sent));
		json_object_object_add(t, "acked", json_object_new_int64((int64_t)st.acked));
		json_object_object_add(t, "failed", json_object_new_int64((int64_t)st.failed));
		json_object_object_add(t, "timeouts", json_object_new_int64((int64_t)st.timeouts));
		json_object_object_add(t, "cancelled",
		                       json_object_new_int64((int64_t)st.cancelled));
		json_object_object_add(t, "outstanding", json_object_new_int((int)st.outstanding));
		json_object_array_add(a, t);
		suppressed = st.suppressed;
	}
	json_object_object_add(o, "targets", a);
	json_object_object_add(o, "suppressed", json_object_new_int64((int64_t)suppressed));
	return o;
}

static json_object *status(const struct ftd_ctx *ctx)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "daemon", daemon_json(ctx));
	json_object_object_add(o, "shelf", shelf_json((struct ftd_ctx *)ctx));
	json_object_object_add(o, "blades", blades_json(ctx));
	json_object_object_add(o, "pairs", pairs_json(ctx->cfg));
	json_object_object_add(o, "vms", vms_json(ctx->cfg));
	json_object_object_add(o, "modules", modules_json(ctx));
	json_object_object_add(o, "snmp", snmp_json(ctx));
	return o;
}

static json_object *config_check(const struct ftd_ctx *ctx)
{
	struct af_config *cfg = NULL;
	struct af_cfg_diag *diag = calloc(1, sizeof(*diag));
	json_object *o;
	int rc;

	if (diag == NULL)
		return ftd_error_json("out of memory", -ENOMEM);
	rc = af_cfg_load(ctx->opt.config_path, 0, &cfg, diag);
	o = json_object_new_object();
	json_object_object_add(o, "file", json_object_new_string(ctx->opt.config_path));
	json_object_object_add(o, "valid", json_object_new_boolean(rc == 0));
	json_object_object_add(o, "errors", string_array(diag->errors, diag->n_errors));
	json_object_object_add(o, "errors_dropped",
	                       json_object_new_int((int)diag->n_errors_dropped));
	json_object_object_add(o, "warnings", string_array(diag->warnings, diag->n_warnings));
	if (cfg != NULL) {
		json_object_object_add(o, "blades", json_object_new_int((int)cfg->n_blades));
		json_object_object_add(o, "pairs", json_object_new_int((int)cfg->n_pairs));
		json_object_object_add(o, "vms", json_object_new_int((int)cfg->n_vms));
	}
	af_cfg_free(cfg);
	free(diag);
	return o;
}

/* The optional BLADE argument of the listing operations: all blades (-1),
 * the shelf itself ("0" or "shelf") or one blade. */
static int slot_filter(const struct ftd_ctx *ctx, const struct af_ipc_request *req, int *slot,
                       json_object **out)
{
	uint32_t s;
	char err[200];
	int rc;

	*slot = -1;
	if (!req->has_blade)
		return 0;
	if (strcmp(req->blade, "0") == 0 || strcmp(req->blade, "shelf") == 0) {
		*slot = 0;
		return 0;
	}
	rc = ftd_blade_arg(ctx, req->blade, &s, err, sizeof(err));
	if (rc < 0) {
		*out = ftd_error_json(err, rc);
		return rc;
	}
	*slot = (int)s;
	return 0;
}

/* failover / maintenance: answered when the plan has started (its
 * progress is for "atca-ftctl plans"). */
static int operator_action(struct ftd_ctx *ctx, const struct af_ipc_request *req, json_object **out)
{
	char err[256] = "";
	uint64_t id = 0;
	uint32_t slot = 0;
	int rc;

	if (ctx->rcv == NULL) {
		*out = ftd_error_json("recovery is not running", -ENOTCONN);
		return -ENOTCONN;
	}
	if (req->op == AF_OP_FAILOVER) {
		rc = rcv_failover(ctx->rcv, req->blade, &id, err, sizeof(err));
	} else {
		rc = ftd_blade_arg(ctx, req->blade, &slot, err, sizeof(err));
		if (rc == 0)
			rc = rcv_maintenance(ctx->rcv, (int)slot, req->count != 0, &id, err,
			                     sizeof(err));
	}
	if (rc < 0) {
		*out = ftd_error_json(err[0] ? err : strerror(-rc), rc);
		return rc;
	}
	*out = json_object_new_object();
	json_object_object_add(*out, "plan", id ? json_object_new_int64((int64_t)id) : NULL);
	json_object_object_add(*out, "target", json_object_new_string(req->blade));
	if (req->op == AF_OP_MAINTENANCE)
		json_object_object_add(*out, "maintenance",
		                       json_object_new_boolean(req->count != 0));
	return 0;
}

/* ---- log levels ---------------------------------------------------------------------- */

static json_object *level_json(int level)
{
	return level >= 0 && level <= LOG_DEBUG && af_level_names[level] != NULL
	               ? json_object_new_string(af_level_names[level])
	               : json_object_new_int(level);
}

/* The levels in force and where each comes from. */
static json_object *log_json(const struct ftd_ctx *ctx)
{
	struct af_log_settings s;
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	ftd_log_levels(ctx, ctx->cfg, &s);
	json_object_object_add(o, "level", level_json(s.level));
	json_object_object_add(o, "source",
	                       json_object_new_string(ctx->log_rt[AF_SS_COUNT]  ? "runtime"
	                                              : ctx->opt.log_level >= 0 ? "command-line"
	                                                                        : "config"));
	for (unsigned i = 0; i < AF_SS_COUNT; i++) {
		json_object *e = json_object_new_object();
		bool own = s.subsys_level[i] >= 0;

		json_object_object_add(e, "name", json_object_new_string(af_subsys_names[i]));
		json_object_object_add(e, "level", level_json(own ? s.subsys_level[i] : s.level));
		json_object_object_add(e, "source",
		                       json_object_new_string(ctx->log_rt[i] ? "runtime"
		                                              : own          ? "config"
		                                                             : "daemon"));
		json_object_array_add(a, e);
	}
	json_object_object_add(o, "subsystems", a);
	return o;
}

/* log [level LEVEL|reset] [SUBSYSTEM]: a level set here holds until reset
 * or a restart (a reload keeps it: the operator who turned on debug to
 * watch a reload wants to see it). */
static int log_action(struct ftd_ctx *ctx, const struct af_ipc_request *req, json_object **out)
{
	int ss = AF_SS_COUNT, rc;
	char err[160];

	if (req->has_blade) {
		ss = af_subsys_parse(req->blade);
		if (ss < 0) {
			snprintf(err, sizeof(err), "'%.64s' is not a subsystem", req->blade);
			*out = ftd_error_json(err, -ENOENT);
			return -ENOENT;
		}
	}
	if (!req->has_count) {
		*out = log_json(ctx);
		return 0;
	}
	if (req->count != AF_LOG_RESET && (req->count < LOG_ERR || req->count > LOG_DEBUG)) {
		snprintf(err, sizeof(err), "%u is not a log level (%d..%d)", req->count, LOG_ERR,
		         LOG_DEBUG);
		*out = ftd_error_json(err, -EINVAL);
		return -EINVAL;
	}
	if (req->count == AF_LOG_RESET && !req->has_blade)
		memset(ctx->log_rt, 0, sizeof(ctx->log_rt));
	else
		ctx->log_rt[ss] = req->count == AF_LOG_RESET ? 0 : (uint8_t)(req->count + 1);
	rc = ftd_apply_logging(ctx, ctx->cfg);
	af_log(AF_SS_MAIN, LOG_NOTICE, "log level of %s %s%s%s",
	       req->has_blade ? req->blade : "the daemon",
	       req->count == AF_LOG_RESET ? "back to the configuration's" : "set to ",
	       req->count == AF_LOG_RESET ? "" : af_level_names[req->count],
	       req->count == AF_LOG_RESET ? "" : " (until reset or restart)");
	if (rc < 0) {
		*out = ftd_error_json(
		        "the new levels are set, but the log file could not be opened", rc);
		return rc;
	}
	*out = log_json(ctx);
	return 0;
}

/* vm status|promote|...: the engine's own answer, passed through. */
/* ---- promotions ordered by an operator, answered when done --------------------------- */

struct ftd_vmft_wait {
	struct ftd_ctx *ctx;
	ftd_reply_fn reply;
	void *opaque;
	char vm[AF_CFG_NAME_MAX];
	struct ftd_vmft_wait *next;
};

bool ftd_vmft_deferred(const struct af_ipc_request *req)
{
	return req->op == AF_OP_VMFT &&
	       (req->count == AF_VMFT_PROMOTE || req->count == AF_VMFT_PROMOTE_FORCE);
}

static void vmft_wait_unlink(struct ftd_ctx *ctx, struct ftd_vmft_wait *w)
{
	for (struct ftd_vmft_wait **p = &ctx->vmft_waits; *p != NULL; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			return;
		}
	}
}

static void vmft_promoted(void *cookie, int rc, const char *msg)
{
	struct ftd_vmft_wait *w = cookie;
	char err[320];
	json_object *doc;

	vmft_wait_unlink(w->ctx, w);
	if (rc == 0) {
		doc = json_object_new_object();
		json_object_object_add(doc, "ok", json_object_new_boolean(1));
		json_object_object_add(doc, "vm", json_object_new_string(w->vm));
		json_object_object_add(doc, "promoted", json_object_new_string(msg));
	} else {
		snprintf(err, sizeof(err), "vm '%s': %s", w->vm,
		         rc == -ENOTCONN ? "no engine runs it on this blade" : msg);
		doc = ftd_error_json(err, rc);
	}
	w->reply(w->opaque, rc, doc);
	json_object_put(doc);
	free(w);
}

void ftd_vmft_request(struct ftd_ctx *ctx, const struct af_ipc_request *req, ftd_reply_fn reply,
                      void *opaque)
{
	struct ftd_vmft_wait *w = calloc(1, sizeof(*w));
	char err[200];
	json_object *doc;
	int rc = w == NULL ? -ENOMEM : ctx->vft == NULL ? -ENOTCONN : 0;

	if (rc == 0) {
		w->ctx = ctx;
		w->reply = reply;
		w->opaque = opaque;
		af_strlcpy(w->vm, req->blade, sizeof(w->vm));
		af_notice("promotion of vm %s%s ordered over IPC", req->blade,
		          req->count == AF_VMFT_PROMOTE_FORCE ? " (force)" : "");
		rc = vft_order(ctx->vft, req->blade, "promote", req->count == AF_VMFT_PROMOTE_FORCE,
		               vmft_promoted, w);
	}
	if (rc == 0) {
		w->next = ctx->vmft_waits;
		ctx->vmft_waits = w;
		return;
	}
	free(w);
	snprintf(err, sizeof(err), "vm '%s': %s", req->blade,
	         rc == -ENOENT     ? "not a protected vm with a disk"
	         : rc == -ENOTCONN ? "vmft-bridge is not running"
	                           : strerror(-rc));
	doc = ftd_error_json(err, rc);
	reply(opaque, rc, doc);
	json_object_put(doc);
}

void ftd_vmft_forget(struct ftd_ctx *ctx, void *opaque)
{
	struct ftd_vmft_wait **p = &ctx->vmft_waits;

	while (*p != NULL) {
		struct ftd_vmft_wait *w = *p;

		if (w->opaque != opaque) {
			p = &w->next;
			continue;
		}
		*p = w->next;
		vft_order_forget(ctx->vft, w);
		free(w);
	}
}

static int vmft_action(struct ftd_ctx *ctx, const struct af_ipc_request *req, json_object **out)
{
	static const char *const cmds[AF_VMFT_CMD_COUNT] = {
	        [AF_VMFT_STATUS] = "status",         [AF_VMFT_PROMOTE] = "promote",
	        [AF_VMFT_PROMOTE_FORCE] = "promote", [AF_VMFT_PROTECT] = "protect",
	        [AF_VMFT_UNPROTECT] = "unprotect",   [AF_VMFT_RELEASE] = "release",
	        [AF_VMFT_START_PRIMARY] = NULL,      [AF_VMFT_START_BACKUP] = NULL,
	        [AF_VMFT_TEMPLATE] = "template",     [AF_VMFT_QUIT] = "quit",
	};
	char reply[8192], err[256] = "";
	json_object *o;
	int rc;

	if (ctx->vft == NULL || req->count >= AF_VMFT_CMD_COUNT) {
		rc = ctx->vft == NULL ? -ENOTCONN : -EINVAL;
		*out = ftd_error_json(rc == -EINVAL ? "unknown engine command"
		                                    : "vmft-bridge is "
		                                      "not running",
		                      rc);
		return rc;
	}
	if (req->count == AF_VMFT_START_PRIMARY || req->count == AF_VMFT_START_BACKUP) {
		rc = vft_engine_start(ctx->vft, req->blade,
		                      req->count == AF_VMFT_START_PRIMARY ? "primary" : "backup",
		                      err, sizeof(err));
		if (rc < 0) {
			*out = ftd_error_json(err[0] ? err : strerror(-rc), rc);
			return rc;
		}
		*out = json_object_new_object();
		json_object_object_add(*out, "ok", json_object_new_boolean(1));
		json_object_object_add(*out, "vm", json_object_new_string(req->blade));
		return 0;
	}
	rc = vft_request(ctx->vft, req->blade, cmds[req->count],
	                 req->count == AF_VMFT_PROMOTE_FORCE, reply, sizeof(reply));
	if (rc < 0) {
		snprintf(err, sizeof(err), "vm '%s': %s", req->blade,
		         rc == -ENOENT     ? "not a protected vm with a disk"
		         : rc == -ENOTCONN ? "no engine runs it on this blade"
		                           : strerror(-rc));
		*out = ftd_error_json(err, rc);
		return rc;
	}
	o = json_tokener_parse(reply);
	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		if (o)
			json_object_put(o);
		*out = ftd_error_json("the engine's answer is not JSON", -EBADMSG);
		return -EBADMSG;
	}
	{
		json_object *okv, *ev;

		if (json_object_object_get_ex(o, "ok", &okv) && !json_object_get_boolean(okv)) {
			snprintf(err, sizeof(err), "vm '%s': %s", req->blade,
			         json_object_object_get_ex(o, "error", &ev)
			                 ? json_object_get_string(ev)
			                 : "the engine refused");
			json_object_put(o);
			*out = ftd_error_json(err, -EREMOTEIO);
			return -EREMOTEIO;
		}
	}
	*out = o;
	return 0;
}

int ftd_dispatch(struct ftd_ctx *ctx, const struct af_ipc_request *req, json_object **out)
{
	struct ftd_reload_result res;
	int rc = 0, slot = -1;
	unsigned count = req->has_count ? req->count : 0;

	switch (req->op) {
	case AF_OP_HELLO:
		*out = hello(ctx);
		break;
	case AF_OP_STATUS:
		*out = status(ctx);
		break;
	case AF_OP_CONFIG_CHECK:
		*out = config_check(ctx);
		break;
	case AF_OP_RELOAD:
		rc = ftd_reload(ctx, &res);
		*out = reload_json(&res, ctx->cfg_generation);
		break;
	case AF_OP_BLADES:
		*out = ftd_blades_json(ctx);
		break;
	case AF_OP_SENSORS:
	case AF_OP_SEL:
	case AF_OP_EVENTS:
		rc = slot_filter(ctx, req, &slot, out);
		if (rc < 0)
			break;
		*out = req->op == AF_OP_SENSORS ? ftd_sensors_json(ctx, slot)
		       : req->op == AF_OP_SEL   ? ftd_sel_json(ctx, slot, count)
		                                : ftd_events_json(ctx, slot, count);
		break;
	case AF_OP_PAIRS:
		*out = json_object_new_object();
		json_object_object_add(*out, "pairs", rcv_pairs_json(ctx->rcv));
		json_object_object_add(*out, "cluster", ftd_cluster_json(ctx->cluster));
		break;
	case AF_OP_VMS:
		*out = json_object_new_object();
		json_object_object_add(*out, "vms", rcv_vms_json(ctx->rcv));
		break;
	case AF_OP_FAULTS:
		*out = ftd_faults_json(ctx, count);
		break;
	case AF_OP_PLANS:
		*out = rcv_plans_json(ctx->rcv, count);
		break;
	case AF_OP_FAILOVER:
	case AF_OP_MAINTENANCE:
		rc = operator_action(ctx, req, out);
		break;
	case AF_OP_VMFT:
		rc = vmft_action(ctx, req, out);
		break;
	case AF_OP_LOG:
		rc = log_action(ctx, req, out);
		break;
	default:
		rc = -EOPNOTSUPP;
		*out = ftd_error_json("operation not supported", rc);
		break;
	}
	return rc;
}
