/*
 * Module lifecycle and configuration reload. Modules start in dependency
 * order (the pure failure model and planner before the sources that feed
 * them, the IPC server last so clients only see a daemon that is up) and stop
 * in reverse order.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_MAIN
#include "ftd.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm.h"
#include "fm_rules.h"
#include "ipd.h"
#include "nt.h"
#include "rcv.h"
#include "smc.h"
#include "vft.h"

static struct af_module_env module_env(struct ftd_ctx *ctx, const struct af_config *cfg)
{
	struct af_module_env env = {
	        .loop = ctx->loop,
	        .cfg = cfg,
	        .event_sink = ftd_event_sink,
	        .sink_opaque = ctx,
	};
	return env;
}

/* ---- SNMP notifications ------------------------------------------------------------ */

/* atcaFtTarget of a fault: "blade 3", "vm web", and the part of it the fault
 * is about after a colon ("blade 3:CPU Temp"). */
static void nt_fault_target(const struct af_fault *f, char *buf, size_t len)
{
	size_t n;

	if (af_fault_target(f, buf, len) < 0)
		buf[0] = '\0';
	n = strlen(buf);
	if (f->entity[0] != '\0' && !(f->scope == AF_SCOPE_VM && strcmp(f->entity, f->vm) == 0))
		snprintf(buf + n, len - n, ":%s", f->entity);
}

/* The failure model has no layer of its own for the cluster: a fault of
 * the whole shelf caused by a quorum event (quorum-lost) is the MIB's
 * cluster(4). The cause is looked up in the recent events. */
static int nt_fault_layer(struct ftd_ctx *ctx, const struct af_fault *f, bool raised)
{
	uint64_t *open = ctx->nt_cluster_faults;
	const unsigned n = AF_ARRAY_SIZE(ctx->nt_cluster_faults);

	if (f->scope != AF_SCOPE_SHELF || f->id == 0)
		return (int)f->layer;
	for (unsigned i = 0; i < n; i++) {
		if (open[i] != f->id)
			continue;
		if (!raised)
			open[i] = 0; /* its clear: forgotten */
		return NT_LAYER_CLUSTER;
	}
	if (!raised || f->n_causes == 0 || ctx->ev_ring == NULL)
		return (int)f->layer;
	for (unsigned i = 0; i < ctx->ev_len; i++) {
		const struct af_event *ev =
		        &ctx->ev_ring[(ctx->ev_head + ctx->ev_len - 1 - i) % FTD_EVENT_RING].ev;

		if (ev->id != f->causes[0])
			continue;
		if (ev->kind != AF_EV_QUORUM)
			break;
		/* remembered for its clear (the oldest one makes room) */
		memmove(open, open + 1, (n - 1) * sizeof(*open));
		open[n - 1] = f->id;
		return NT_LAYER_CLUSTER;
	}
	return (int)f->layer;
}

/* A raise or a clear (not the updates: the NMS has the alarm already). */
static void nt_send_fault(struct ftd_ctx *ctx, const struct fm_report *r)
{
	const struct af_fault *f = r->fault;
	char target[AF_VM_NAME_MAX + AF_FAULT_ENTITY_MAX + 16], text[400];
	int layer;

	if (ctx->nt == NULL || (r->op != FM_OP_RAISE && r->op != FM_OP_CLEAR))
		return;
	layer = nt_fault_layer(ctx, f, r->op == FM_OP_RAISE);
	nt_fault_target(f, target, sizeof(target));
	if (r->op == FM_OP_RAISE)
		snprintf(text, sizeof(text), "%s %s fault on %s (rule %s): recovery %s%s",
		         f->severity < AF_SEV_COUNT ? af_severity_names[f->severity] : "?",
		         layer == NT_LAYER_CLUSTER   ? "cluster"
		         : f->layer < AF_LAYER_COUNT ? af_layer_names[f->layer]
		                                     : "?",
		         target, f->rule,
		         f->rclass < AF_RC_COUNT ? af_rclass_names[f->rclass] : "?",
		         r->escalated ? " (escalated)" : "");
	else if (r->why == FM_WHY_MERGED)
		snprintf(text, sizeof(text),
		         "fault %llu on %s (rule %s) cleared: now part of fault %llu",
		         (unsigned long long)f->id, target, f->rule,
		         (unsigned long long)r->merged_into);
	else
		snprintf(text, sizeof(text), "fault %llu on %s (rule %s) cleared (%s)",
		         (unsigned long long)f->id, target, f->rule,
		         r->why < FM_WHY_COUNT ? fm_why_names[r->why] : "?");
	nt_fault(ctx->nt, r->op == FM_OP_RAISE, (uint32_t)f->id, layer, (int)f->severity, f->rule,
	         target, text);
}

/* Every raise, update and clear is logged where an operator looks, kept
 * for "atca-ftctl faults", sent to the NMS (raise and clear) and handed to
 * recovery. */
static void fm_fault(void *opaque, const struct fm_report *r)
{
	struct ftd_ctx *ctx = opaque;
	char line[512];

	af_fault_format(r->fault, line, sizeof(line));
	af_log(AF_SS_FM, r->op == FM_OP_CLEAR ? LOG_NOTICE : LOG_WARNING,
	       "fault %s%s%s: %s rule=%s", fm_fault_op_names[r->op], r->why ? " " : "",
	       fm_why_names[r->why], line, r->fault->rule);
	if (ctx == NULL)
		return;
	ftd_faults_add(ctx, (int)r->op, r->fault);
	nt_send_fault(ctx, r);
	if (r->op == FM_OP_RAISE && ctx->rcv != NULL)
		rcv_fault_raised(ctx->rcv, r->fault);
	else if (r->op == FM_OP_CLEAR && ctx->rcv != NULL)
		rcv_fault_cleared(ctx->rcv, r->fault);
	else if (r->op == FM_OP_UPDATE && ctx->rcv != NULL)
		rcv_fault_updated(ctx->rcv, r->fault);
}

static const struct fm_ops fm_ops = {.fault = fm_fault};

/* One row per module: how to start it, hand it a new configuration,
 * describe it and stop it. */
struct ftd_module {
	const char *name;
	int (*init)(struct ftd_ctx *ctx);
	int (*reconfigure)(struct ftd_ctx *ctx, const struct af_config *cfg);
	void (*describe)(const struct ftd_ctx *ctx, struct af_module_status *st);
	void (*fini)(struct ftd_ctx *ctx);
};

static int load_rules(const struct af_config *cfg, struct fm_rules **out,
                      struct ftd_reload_result *res);

/* The rules file first: it sizes the model's tables, and a bad one stops
 * the start. */
static int m_fm_init(struct ftd_ctx *c)
{
	struct fm_rules *rules = NULL;
	int rc = load_rules(c->cfg, &rules, NULL);

	if (rc < 0) {
		af_err("%s: failure-model rules are invalid, not starting",
		       c->cfg->daemon.failure_rules);
		return rc;
	}
	return fm_init_rules(&c->fm, c->cfg, rules, &fm_ops, c);
}

/* ---- the failure model's rules and timer ------------------------------------------- */

struct rules_errs {
	struct ftd_reload_result *res;
};

static void rules_err(void *opaque, const char *msg)
{
	struct rules_errs *e = opaque;

	af_log(AF_SS_FM, LOG_ERR, "%s", msg);
	if (e->res != NULL && e->res->n_errors < FTD_RELOAD_ERRORS_MAX)
		af_strlcpy(e->res->errors[e->res->n_errors++], msg, AF_CFG_ERR_MAX);
}

/* The rules file of cfg, or the built-in rules when there is none. A file
 * with errors is refused whole (each error logged and, for a reload, put
 * in res): the rules in force stay. */
static int load_rules(const struct af_config *cfg, struct fm_rules **out,
                      struct ftd_reload_result *res)
{
	struct rules_errs e = {.res = res};
	const char *path = cfg->daemon.failure_rules;
	int rc = fm_rules_load(path, out, rules_err, &e);

	if (rc == -ENOENT) {
		af_log(AF_SS_FM, LOG_NOTICE,
		       "%s does not exist: the built-in failure-model rules apply", path);
		return fm_rules_default(out);
	}
	if (rc < 0 && rc != -EINVAL) {
		char msg[AF_CFG_ERR_MAX];

		snprintf(msg, sizeof(msg), "%s: cannot be read: %s", path, strerror(-rc));
		rules_err(&e, msg);
	}
	if (rc < 0)
		af_log(AF_SS_FM, LOG_ERR, "%s refused: the rules in force stay", path);
	return rc;
}

static void fm_timer_fire(void *data);

/* Arms the loop timer for the model's next deadline (holds, ttl). */
static void fm_schedule(struct ftd_ctx *ctx)
{
	uint64_t at = fm_next_deadline(ctx->fm), now;

	if (ctx->loop == NULL)
		return;
	if (ctx->fm_timer_on && (at == 0 || at != ctx->fm_timer_at)) {
		qb_loop_timer_del(ctx->loop, ctx->fm_timer);
		ctx->fm_timer_on = false;
	}
	if (at == 0 || ctx->fm_timer_on)
		return;
	now = af_mono_ns();
	if (qb_loop_timer_add(ctx->loop, QB_LOOP_HIGH, at > now ? at - now : 0, ctx, fm_timer_fire,
	                      &ctx->fm_timer) == 0) {
		ctx->fm_timer_on = true;
		ctx->fm_timer_at = at;
	} else {
		af_log(AF_SS_FM, LOG_ERR,
		       "cannot arm the failure-model timer: held faults wait "
		       "for the next event");
	}
}

static void fm_timer_fire(void *data)
{
	struct ftd_ctx *ctx = data;

	ctx->fm_timer_on = false;
	if (ctx->fm == NULL)
		return;
	fm_tick(ctx->fm, af_mono_ns());
	fm_schedule(ctx);
}
static int m_fm_reconf(struct ftd_ctx *c, const struct af_config *cfg)
{
	return fm_reconfigure(c->fm, cfg);
}
static void m_fm_desc(const struct ftd_ctx *c, struct af_module_status *st)
{
	fm_describe(c->fm, st);
}
static void m_fm_fini(struct ftd_ctx *c)
{
	if (c->fm_timer_on && c->loop != NULL)
		qb_loop_timer_del(c->loop, c->fm_timer);
	c->fm_timer_on = false;
	fm_fini(c->fm);
	c->fm = NULL;
}

/* The four I/O modules share one shape; this expands their table glue. */
#define IO_MODULE(pfx)                                                                             \
	static int m_##pfx##_init(struct ftd_ctx *c)                                               \
	{                                                                                          \
		struct af_module_env env = module_env(c, c->cfg);                                  \
		return pfx##_init(&c->pfx, &env);                                                  \
	}                                                                                          \
	static int m_##pfx##_reconf(struct ftd_ctx *c, const struct af_config *cfg)                \
	{                                                                                          \
		return pfx##_reconfigure(c->pfx, cfg);                                             \
	}                                                                                          \
	static void m_##pfx##_desc(const struct ftd_ctx *c, struct af_module_status *st)           \
	{                                                                                          \
		pfx##_describe(c->pfx, st);                                                        \
	}                                                                                          \
	static void m_##pfx##_fini(struct ftd_ctx *c)                                              \
	{                                                                                          \
		pfx##_fini(c->pfx);                                                                \
		c->pfx = NULL;                                                                     \
	}

/* Recovery's ways out of its module: fencing through the shelf manager,
 * messages through corosync, notifications to the operator (the log and
 * the SNMP notifier). */
static int hook_send(void *opaque, const void *buf, size_t len)
{
	struct ftd_ctx *c = opaque;

	return ftd_cluster_send(c->cluster, buf, len);
}

/* "plan N (TARGET) ...": the plan's id and what it is about; false if the
 * text does not start so. */
static bool plan_of(const char *text, uint64_t *plan, char *target, size_t len)
{
	const char *p, *end;
	char *num_end;

	target[0] = '\0';
	if (text == NULL || strncmp(text, "plan ", 5) != 0)
		return false;
	errno = 0;
	*plan = strtoull(text + 5, &num_end, 10);
	if (errno != 0 || num_end == text + 5)
		return false;
	p = num_end;
	if (strncmp(p, " (", 2) == 0 && (end = strchr(p + 2, ')')) != NULL)
		snprintf(target, len, "%.*s", (int)(end - p - 2), p + 2);
	return true;
}

/* Recovery's notifications: a plan's start and end are SNMP notifications
 * too. A NOTIFY step and a lost quorum have none of their own: the fault
 * that caused them was sent when it was raised. */
static void hook_notify(void *opaque, const char *kind, const char *text)
{
	struct ftd_ctx *c = opaque;
	char target[AF_CFG_NAME_MAX + 16];
	uint64_t plan = 0;
	int phase;

	af_log(AF_SS_RECOVERY, LOG_NOTICE, "NOTIFY %s: %s", kind, text);
	if (c == NULL || c->nt == NULL)
		return;
	if (strcmp(kind, "journal-failed") == 0 || strcmp(kind, "journal-ok") == 0) {
		/* the daemon's own fault: raised and cleared like the model's,
		 * fault id 0 (it is none of the model's) */
		snprintf(target, sizeof(target), "blade %u", c->local_blade);
		nt_fault(c->nt, kind[8] == 'f', 0, NT_LAYER_CLUSTER, (int)AF_SEV_DEGRADED,
		         "recovery-journal", target, text);
		return;
	}
	if (strcmp(kind, "recovery-started") == 0)
		phase = NT_PHASE_STARTED;
	else if (strcmp(kind, "recovery-succeeded") == 0)
		phase = NT_PHASE_SUCCEEDED;
	else if (strcmp(kind, "recovery-failed") == 0)
		phase = NT_PHASE_FAILED;
	else
		return;
	if (!plan_of(text, &plan, target, sizeof(target)))
		af_log(AF_SS_RECOVERY, LOG_WARNING,
		       "NOTIFY %s: no plan id in '%s': sent with plan 0", kind, text);
	nt_recovery(c->nt, phase, (uint32_t)plan, target, text);
}

/* The checkpoint engines of this blade, through the vmft-bridge (started
 * after recovery: until then, none is known). */
static int hook_engine_order(void *opaque, const char *vm, const char *order, bool force,
                             rcv_fence_done_fn done, void *cookie)
{
	struct ftd_ctx *c = opaque;

	return c->vft ? vft_order(c->vft, vm, order, force, done, cookie) : -ENOTCONN;
}

static void hook_engine_forget(void *opaque, void *cookie)
{
	struct ftd_ctx *c = opaque;

	vft_order_forget(c->vft, cookie);
}

static int hook_engine_state(void *opaque, const char *vm, char *state, size_t len)
{
	struct ftd_ctx *c = opaque;

	return c->vft ? vft_engine_state(c->vft, vm, state, len) : -ENOTCONN;
}

static void hook_engine_backup_wanted(void *opaque, const char *vm)
{
	struct ftd_ctx *c = opaque;

	if (c->vft != NULL)
		vft_backup_wanted(c->vft, vm);
}

static const struct rcv_hooks rcv_hooks = {
        .fence = ftd_fence_hook,
        .fence_forget = ftd_fence_hook_forget,
        .send = hook_send,
        .notify = hook_notify,
        .engine_order = hook_engine_order,
        .engine_forget = hook_engine_forget,
        .engine_state = hook_engine_state,
        .engine_backup_wanted = hook_engine_backup_wanted,
};

static int m_rcv_init(struct ftd_ctx *c)
{
	struct af_module_env env = module_env(c, c->cfg);
	int rc = rcv_init(&c->rcv, &env);

	if (rc < 0 || c->local_blade == 0)
		return rc; /* an observer plans and shows, never acts */
	return rcv_start(c->rcv, (int)c->local_blade, &rcv_hooks, c);
}
static int m_rcv_reconf(struct ftd_ctx *c, const struct af_config *cfg)
{
	return rcv_reconfigure(c->rcv, cfg);
}
static void m_rcv_desc(const struct ftd_ctx *c, struct af_module_status *st)
{
	rcv_describe(c->rcv, st);
}
static void m_rcv_fini(struct ftd_ctx *c)
{
	rcv_fini(c->rcv);
	c->rcv = NULL;
	ftd_fence_hooks_drop(c);
}

/* The SNMP notifier. Its rate limit is set when it starts: a reload that
 * changes it starts a new notifier (the old one's informs in flight are
 * cancelled); snmp.engine_id is net-snmp's, for the life of the process. */
static void nt_opts_of(const struct af_config *cfg, struct nt_options *o)
{
	memset(o, 0, sizeof(*o));
	o->engine_id = cfg->snmp.engine_id[0] != '\0' ? cfg->snmp.engine_id : NULL;
	o->key_burst = cfg->snmp.key_burst;
	o->key_refill_ms = cfg->snmp.key_interval_ms;
	o->global_burst = cfg->snmp.burst;
}

static int nt_start(struct ftd_ctx *c, const struct af_config *cfg, struct nt **out)
{
	struct af_module_env env = module_env(c, cfg);
	struct nt_options o;
	int rc;

	nt_opts_of(cfg, &o);
	rc = nt_init_with(out, &env, &o);
	if (rc == 0) {
		c->nt_key_burst = cfg->snmp.key_burst;
		c->nt_burst = cfg->snmp.burst;
		c->nt_key_interval_ms = cfg->snmp.key_interval_ms;
	}
	return rc;
}

static int m_nt_init(struct ftd_ctx *c)
{
	return nt_start(c, c->cfg, &c->nt);
}
static int m_nt_reconf(struct ftd_ctx *c, const struct af_config *cfg)
{
	struct nt *next = NULL;
	int rc;

	if (cfg->snmp.key_burst == c->nt_key_burst && cfg->snmp.burst == c->nt_burst &&
	    cfg->snmp.key_interval_ms == c->nt_key_interval_ms)
		return nt_reconfigure(c->nt, cfg);
	rc = nt_start(c, cfg, &next);
	if (rc < 0)
		return rc;
	af_log(AF_SS_SNMP, LOG_NOTICE,
	       "snmp: new rate limit (%u per target and notification, one more every %llu ms; "
	       "%u in all): notifier restarted",
	       cfg->snmp.key_burst, (unsigned long long)cfg->snmp.key_interval_ms, cfg->snmp.burst);
	nt_fini(c->nt);
	c->nt = next;
	return 0;
}
static void m_nt_desc(const struct ftd_ctx *c, struct af_module_status *st)
{
	nt_describe(c->nt, st);
}
static void m_nt_fini(struct ftd_ctx *c)
{
	nt_fini(c->nt);
	c->nt = NULL;
}

static int m_cluster_init(struct ftd_ctx *c)
{
	return ftd_cluster_init(&c->cluster, c);
}
static void m_cluster_desc(const struct ftd_ctx *c, struct af_module_status *st)
{
	ftd_cluster_describe(c->cluster, st);
}
static void m_cluster_fini(struct ftd_ctx *c)
{
	ftd_cluster_fini(c->cluster);
	c->cluster = NULL;
}

IO_MODULE(ipd)
IO_MODULE(smc)
IO_MODULE(vft)

static int m_ipc_init(struct ftd_ctx *c)
{
	return ftd_ipc_init(&c->ipc, c);
}
static void m_ipc_desc(const struct ftd_ctx *c, struct af_module_status *st)
{
	ftd_ipc_describe(c->ipc, st);
}
static void m_ipc_fini(struct ftd_ctx *c)
{
	ftd_ipc_fini(c->ipc);
	c->ipc = NULL;
}

#define ROW(n, p)                                                                                  \
	{                                                                                          \
		n, m_##p##_init, m_##p##_reconf, m_##p##_desc, m_##p##_fini                        \
	}
static const struct ftd_module ftd_modules[] = {
        /* first: every later module's faults and events reach the NMS,
         * down to the last one's stop */
        ROW("snmp-notifier", nt),
        ROW("failure-model", fm),
        ROW("recovery", rcv),
        /* membership after recovery, which it feeds; the group name is read
         * at start only */
        {"cluster", m_cluster_init, NULL, m_cluster_desc, m_cluster_fini},
        ROW("ipmi-detect", ipd),
        ROW("shelfmgr", smc),
        ROW("vmft-bridge", vft),
        /* the IPC server reads ctx->cfg on each connection: nothing to swap */
        {"ipc", m_ipc_init, NULL, m_ipc_desc, m_ipc_fini},
};

unsigned ftd_module_count(void)
{
	return AF_ARRAY_SIZE(ftd_modules);
}

void ftd_module_describe(const struct ftd_ctx *ctx, unsigned i, struct af_module_status *st)
{
	memset(st, 0, sizeof(*st));
	st->name = ftd_modules[i].name;
	st->state = "stopped";
	if (i < ctx->n_started)
		ftd_modules[i].describe(ctx, st);
}

void ftd_log_levels(const struct ftd_ctx *ctx, const struct af_config *cfg,
                    struct af_log_settings *s)
{
	af_cfg_log_settings(cfg, s);
	if (ctx->opt.log_level >= 0)
		s->level = ctx->opt.log_level;
	if (ctx->log_rt[AF_SS_COUNT] != 0)
		s->level = ctx->log_rt[AF_SS_COUNT] - 1;
	for (unsigned i = 0; i < AF_SS_COUNT; i++)
		if (ctx->log_rt[i] != 0)
			s->subsys_level[i] = ctx->log_rt[i] - 1;
}

int ftd_apply_logging(const struct ftd_ctx *ctx, const struct af_config *cfg)
{
	struct af_log_settings s;

	ftd_log_levels(ctx, cfg, &s);
	/* In the foreground, and in daemon mode until the parent has exited,
	 * standard error is the operator's terminal: start-up errors go there. */
	if (ctx->opt.foreground || ctx->ready_fd >= 0)
		s.to_stderr = true;
	return af_log_apply(&s);
}

/* "M0".."M7" -> 0..7, else -1 */
static int mstate_of(const char *s)
{
	if (s == NULL || s[0] != 'M' || s[1] < '0' || s[1] > '7' || s[2] != '\0')
		return -1;
	return s[1] - '0';
}

/* ipmi-detect's hot-swap SEL records reach the shelf-manager client well
 * before OpenIPMI's own SEL rescan does (an unreachable IPMC's M7 would
 * otherwise wait for it). */
static void feed_hotswap_sel(struct ftd_ctx *ctx, const struct af_event *ev)
{
	const char *type = af_event_get(ev, "sensor_type"), *dir = af_event_get(ev, "dir");
	const char *fru = af_event_get(ev, "fru"), *rec = af_event_get(ev, "record");
	int state = mstate_of(af_event_get(ev, "state"));
	unsigned long f = 0, r;
	char *end;

	if (type == NULL || strcmp(type, "hot-swap") != 0 || dir == NULL ||
	    strcmp(dir, "assert") != 0 || state < 0 || rec == NULL)
		return;
	errno = 0;
	r = strtoul(rec, &end, 0);
	if (errno != 0 || *end != '\0' || r > 0xFFFF)
		return;
	if (fru != NULL) {
		f = strtoul(fru, &end, 10);
		if (errno != 0 || *end != '\0' || f > 255)
			return;
	}
	{
		const char *c = af_event_get(ev, "cause");
		unsigned long cause = 0;

		errno = 0;
		if (c != NULL)
			cause = strtoul(c, &end, 10);
		smc_hotswap_sel(ctx->smc, ev->blade, (int)f,
		                mstate_of(af_event_get(ev, "previous")), state, (unsigned)r,
		                c && errno == 0 && *end == '\0' && cause <= 15 ? (int)cause : -1);
	}
}

/* ipmi-detect reads every blade's hot-swap sensor each sensor interval; the
 * shelf-manager client uses those readings to catch transitions whose SEL
 * event it missed, instead of reading the sensors a second time. */
static void feed_hotswap(struct ftd_ctx *ctx, const struct af_event *ev)
{
	const char *type, *offsets;

	if (ctx->smc == NULL || ev->source != AF_SRC_IPMI || ev->blade <= 0)
		return;
	if (ev->kind == AF_EV_SEL_RECORD) {
		feed_hotswap_sel(ctx, ev);
		return;
	}
	if (ev->kind != AF_EV_SENSOR_DISCRETE)
		return;
	type = af_event_get(ev, "type");
	offsets = af_event_get(ev, "offsets");
	if (type == NULL || strcmp(type, "hot-swap") != 0 || mstate_of(offsets) < 0)
		return;
	smc_hotswap_observed(ctx->smc, ev->blade, mstate_of(offsets));
}

/* "1+2": the pair of blade, "" without one (as "atca-ftctl pairs" names it). */
static void pair_name(const struct af_config *cfg, uint32_t blade, char *buf, size_t len)
{
	uint32_t partner = blade ? af_cfg_partner(cfg, blade) : 0;

	if (partner == 0)
		buf[0] = '\0';
	else
		snprintf(buf, len, "%u+%u", blade < partner ? blade : partner,
		         blade < partner ? partner : blade);
}

/* Whether the loss of vm's protection was announced; set or clear it. */
static bool nt_unprotected(struct ftd_ctx *ctx, const char *vm, int set)
{
	unsigned i;

	for (i = 0; i < ctx->nt_n_unprotected; i++)
		if (strcmp(ctx->nt_unprotected[i], vm) == 0)
			break;
	if (set > 0 && i == ctx->nt_n_unprotected && i < AF_MAX_VMS)
		af_strlcpy(ctx->nt_unprotected[ctx->nt_n_unprotected++], vm, AF_CFG_NAME_MAX);
	if (set == 0 && i < ctx->nt_n_unprotected) {
		ctx->nt_n_unprotected--;
		if (i != ctx->nt_n_unprotected)
			memcpy(ctx->nt_unprotected[i], ctx->nt_unprotected[ctx->nt_n_unprotected],
			       AF_CFG_NAME_MAX);
		return true;
	}
	return i < ctx->nt_n_unprotected;
}

/* The checkpoint engines' health: a lost backup, its return (only after a
 * loss was announced: not at every start), a stalled replication. A backup
 * promoted here (state "promoted") runs the guest without a backup until
 * one is synchronised: its pair's protection is lost too. */
static void nt_engine_event(struct ftd_ctx *ctx, const struct af_event *ev, const char *state)
{
	const struct af_config *cfg = ctx->cfg;
	const char *vm = ev->entity;
	uint32_t blade = ev->blade > 0 ? (uint32_t)ev->blade : 0;
	char pair[32], text[256];

	if (state == NULL || vm[0] == '\0')
		return;
	for (unsigned i = 0; blade == 0 && i < cfg->n_vms; i++)
		if (strcmp(cfg->vms[i].name, vm) == 0)
			blade = cfg->vms[i].blade;
	pair_name(cfg, blade, pair, sizeof(pair));
	if (strcmp(state, "backup-lost") == 0 || strcmp(state, "promoted") == 0) {
		if (nt_unprotected(ctx, vm, -1))
			return; /* announced already */
		nt_unprotected(ctx, vm, 1);
		if (state[0] == 'p')
			snprintf(text, sizeof(text),
			         "vm %s%s%s runs on its promoted backup on blade %d: unprotected "
			         "until a new backup is synchronised",
			         vm, pair[0] ? " of pair " : "", pair, ev->blade);
		else
			snprintf(text, sizeof(text),
			         "the hot backup of vm %s%s%s is lost: it runs unprotected until a "
			         "new backup is synchronised",
			         vm, pair[0] ? " of pair " : "", pair);
		nt_protection(ctx->nt, true, pair, vm, text);
	} else if (strcmp(state, "ok") == 0) {
		if (!nt_unprotected(ctx, vm, 0))
			return;
		snprintf(text, sizeof(text),
		         "vm %s%s%s is protected again: its backup is synchronised", vm,
		         pair[0] ? " of pair " : "", pair);
		nt_protection(ctx->nt, false, pair, vm, text);
	} else if (strcmp(state, "replication-stalled") == 0) {
		const char *e = af_event_get(ev, "epoch");
		unsigned long long epoch = 0;
		char *end;

		errno = 0;
		if (e != NULL)
			epoch = strtoull(e, &end, 10);
		if (e == NULL || errno != 0 || *end != '\0')
			epoch = 0;
		nt_stalled(ctx->nt, vm, epoch);
	}
}

/* A hot-swap transition of a blade's payload. One that does not follow the
 * last state announced and repeats a transition announced in the last 5 s
 * is a late copy (OpenIPMI's SEL event after the same transition came
 * through ipmi-detect): announcing it would take the NMS back in time. */
static void nt_hotswap_event(struct ftd_ctx *ctx, const struct af_event *ev)
{
	struct ftd_nt_hotswap *h;
	int from = mstate_of(af_event_get(ev, "from")), to = mstate_of(af_event_get(ev, "to"));
	uint64_t now = af_mono_ns();

	if (ev->blade <= 0 || ev->blade > AF_MAX_BLADES || to < 0)
		return;
	h = &ctx->nt_hotswap[ev->blade];
	if (h->last != 0 && from != h->last - 1) {
		for (unsigned i = 0; i < AF_ARRAY_SIZE(h->recent); i++) {
			if (h->recent[i].ns != 0 && now - h->recent[i].ns < 5 * AF_NS_PER_S &&
			    h->recent[i].from == from && h->recent[i].to == to) {
				af_log(AF_SS_SNMP, LOG_DEBUG,
				       "snmp: blade %d: M%d -> M%d again (now M%d): not announced",
				       ev->blade, from, to, h->last - 1);
				return;
			}
		}
	}
	h->recent[h->next].from = (int8_t)from;
	h->recent[h->next].to = (int8_t)to;
	h->recent[h->next].ns = now;
	h->next = (uint8_t)((h->next + 1) % AF_ARRAY_SIZE(h->recent));
	h->last = (int8_t)(to + 1);
	nt_hotswap(ctx->nt, (unsigned)ev->blade, from, to);
}

/* The events that are SNMP notifications of their own: hot-swap transitions
 * of a blade's payload (FRU 0), a shelf-manager switchover (seen by both
 * ipmi-detect and the shelf-manager client: announced once), engine health. */
static void nt_event(struct ftd_ctx *ctx, const struct af_event *ev)
{
	const char *fru, *to;

	if (ctx->nt == NULL)
		return;
	switch (ev->kind) {
	case AF_EV_HOTSWAP:
		fru = af_event_get(ev, "fru");
		if (fru == NULL || strcmp(fru, "0") == 0)
			nt_hotswap_event(ctx, ev);
		break;
	case AF_EV_SHMC_SWITCHOVER:
		to = af_event_get(ev, "to");
		if (to == NULL || strcmp(to, ctx->nt_shmc) == 0)
			break;
		af_strlcpy(ctx->nt_shmc, to, sizeof(ctx->nt_shmc));
		nt_switchover(ctx->nt, to);
		break;
	case AF_EV_ENGINE_HEALTH:
		if (af_event_get(ev, "state") != NULL)
			nt_engine_event(ctx, ev, af_event_get(ev, "state"));
		break;
	case AF_EV_VM_LIFECYCLE:
		/* an engine's "started" of a promotion (not of a restart, nor of
		 * a running primary found again after a reconnect) */
		if (ev->source == AF_SRC_ENGINE && af_event_get(ev, "event") != NULL &&
		    strcmp(af_event_get(ev, "event"), "started") == 0 &&
		    (af_event_get(ev, "how") == NULL ||
		     strcmp(af_event_get(ev, "how"), "promoted") == 0))
			nt_engine_event(ctx, ev, "promoted");
		break;
	default:
		break;
	}
}

void ftd_event_sink(void *opaque, struct af_event *ev)
{
	struct ftd_ctx *ctx = opaque;
	char line[AF_EV_TEXT_MAX];

	ev->id = ++ctx->next_event_id;
	if (af_event_format(ev, line, sizeof(line)) < 0)
		af_strlcpy(line, "(event too long to print)", sizeof(line));
	/* a sensor's repeated readings (while bad, and a few after) are for
	 * the failure model's counting: the log keeps them for debugging */
	if (af_event_get(ev, "repeat") != NULL)
		af_debug("event %s", line);
	else
		af_info("event %s", line);
	ftd_events_add(ctx, ev);
	nt_event(ctx, ev);
	feed_hotswap(ctx, ev);
	if (ctx->rcv != NULL)
		rcv_event(ctx->rcv, ev);
	if (ctx->fm != NULL) {
		fm_event(ctx->fm, ev);
		fm_schedule(ctx);
	}
}

static void resolve_local_blade(struct ftd_ctx *ctx, const struct af_config *cfg)
{
	const struct af_cfg_blade *b = NULL;
	char host[256];

	if (cfg->daemon.local_blade != 0) {
		b = af_cfg_blade_by_slot(cfg, cfg->daemon.local_blade);
	} else if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		b = af_cfg_blade_by_host(cfg, host);
	}
	ctx->local_blade = b ? b->slot : 0;
	if (b)
		af_notice("this daemon runs on blade %u (%s)", b->slot, b->host);
	else
		af_notice("this host is none of the configured blades: observer role");
}

static int log_diag(const struct af_cfg_diag *d)
{
	for (unsigned i = 0; i < d->n_warnings; i++)
		af_log(AF_SS_CONFIG, LOG_WARNING, "%s", d->warnings[i]);
	for (unsigned i = 0; i < d->n_errors; i++)
		af_log(AF_SS_CONFIG, LOG_ERR, "%s", d->errors[i]);
	if (d->n_errors_dropped)
		af_log(AF_SS_CONFIG, LOG_ERR, "... and %u more errors", d->n_errors_dropped);
	return 0;
}

static int make_state_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	if (stat(dir, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Every FTD_TRIM_MS the heap's free memory goes back to the system. A
 * burst (a recovery plan, status queries, a shelf rescan) leaves freed
 * chunks behind in glibc's arenas that only the next burst would reuse;
 * a daemon that runs for months would keep its worst moment resident, and
 * its memory would look like it creeps up (the soak saw it). The fixed
 * tables are resident from the start (af_calloc_resident): what is left
 * is what is in use. */
#define FTD_TRIM_MS 60000

static void trim_fire(void *data)
{
	struct ftd_ctx *ctx = data;
	struct mallinfo2 before = mallinfo2(), after;

	ctx->trim_timer_on = false;
	malloc_trim(0);
	after = mallinfo2();
	af_debug("memory: %zu kB in use, %zu kB free in the heap (%zu kB before returning "
	         "free pages to the system)",
	         after.uordblks / 1024, after.fordblks / 1024, before.fordblks / 1024);
	if (qb_loop_timer_add(ctx->loop, QB_LOOP_LOW, FTD_TRIM_MS * AF_NS_PER_MS, ctx, trim_fire,
	                      &ctx->trim_timer) == 0)
		ctx->trim_timer_on = true;
}

static void trim_start(struct ftd_ctx *ctx)
{
	if (ctx->loop == NULL || ctx->trim_timer_on)
		return;
	if (qb_loop_timer_add(ctx->loop, QB_LOOP_LOW, FTD_TRIM_MS * AF_NS_PER_MS, ctx, trim_fire,
	                      &ctx->trim_timer) == 0)
		ctx->trim_timer_on = true;
	else
		af_warn("cannot arm the memory housekeeping timer: freed memory stays in the heap");
}

static void trim_stop(struct ftd_ctx *ctx)
{
	if (ctx->trim_timer_on && ctx->loop != NULL)
		qb_loop_timer_del(ctx->loop, ctx->trim_timer);
	ctx->trim_timer_on = false;
}

int ftd_init(struct ftd_ctx *ctx)
{
	struct af_cfg_diag *diag;
	int rc;

	diag = calloc(1, sizeof(*diag));
	if (diag == NULL)
		return -ENOMEM;
	rc = af_cfg_load(ctx->opt.config_path, 0, &ctx->cfg, diag);
	log_diag(diag);
	free(diag);
	if (rc < 0) {
		af_log(AF_SS_CONFIG, LOG_ERR, "%s: configuration is invalid, not starting",
		       ctx->opt.config_path);
		return rc;
	}
	ctx->cfg_generation = 1;
	ctx->cfg_loaded_ns = af_mono_ns();
	rc = ftd_apply_logging(ctx, ctx->cfg);
	if (rc < 0) {
		af_err("cannot open the log file %s: %s", ctx->cfg->logging.logfile, strerror(-rc));
		return rc;
	}

	rc = make_state_dir(ctx->cfg->daemon.state_dir);
	if (rc < 0) {
		af_err("state directory %s: %s", ctx->cfg->daemon.state_dir, strerror(-rc));
		return rc;
	}
	{
		char err[AF_CFG_PATH_MAX + 128];

		rc = ftd_pidfile_acquire(ctx->cfg->daemon.pidfile, &ctx->pidfile_fd, err,
		                         sizeof(err));
		if (rc < 0) {
			af_err("%s", err);
			return rc;
		}
	}
	snprintf(ctx->blackbox_path, sizeof(ctx->blackbox_path), "%s/atca-ftd.blackbox",
	         ctx->cfg->daemon.state_dir);
	af_log_fatal_handlers(ctx->blackbox_path);
	resolve_local_blade(ctx, ctx->cfg);
	rc = ftd_events_init(ctx);
	if (rc < 0)
		return rc;

	for (ctx->n_started = 0; ctx->n_started < AF_ARRAY_SIZE(ftd_modules); ctx->n_started++) {
		const struct ftd_module *m = &ftd_modules[ctx->n_started];

		rc = m->init(ctx);
		if (rc < 0) {
			af_err("module %s failed to start: %s", m->name, strerror(-rc));
			return rc;
		}
	}
	trim_start(ctx);
	af_notice("atca-ftd %s started (config %s, %u blades, %u pairs, %u VMs)", af_version(),
	          ctx->cfg->path, ctx->cfg->n_blades, ctx->cfg->n_pairs, ctx->cfg->n_vms);
	return 0;
}

void ftd_fini(struct ftd_ctx *ctx)
{
	trim_stop(ctx);
	while (ctx->n_started > 0) {
		ctx->n_started--;
		ftd_modules[ctx->n_started].fini(ctx);
	}
	if (ctx->cfg != NULL)
		ftd_pidfile_release(ctx->cfg->daemon.pidfile, ctx->pidfile_fd);
	ctx->pidfile_fd = -1;
	ftd_events_fini(ctx);
	af_cfg_free(ctx->cfg);
	ctx->cfg = NULL;
}

/* Settings that only take effect at start: a reload keeps the running
 * values and says so, rather than half-applying them. */
static void keep_restart_only(struct af_config *next, const struct af_config *cur,
                              struct ftd_reload_result *res)
{
	struct {
		const char *key;
		char *dst;
		const char *src;
		size_t size;
	} keep[] = {
	        {"daemon.ipc_name", next->daemon.ipc_name, cur->daemon.ipc_name,
	         sizeof(next->daemon.ipc_name)},
	        {"daemon.pidfile", next->daemon.pidfile, cur->daemon.pidfile,
	         sizeof(next->daemon.pidfile)},
	        {"daemon.state_dir", next->daemon.state_dir, cur->daemon.state_dir,
	         sizeof(next->daemon.state_dir)},
	        /* net-snmp has one engine ID per process */
	        {"snmp.engine_id", next->snmp.engine_id, cur->snmp.engine_id,
	         sizeof(next->snmp.engine_id)},
	};

	for (size_t i = 0; i < AF_ARRAY_SIZE(keep); i++) {
		if (strcmp(keep[i].dst, keep[i].src) == 0)
			continue;
		if (res->n_warnings < FTD_RELOAD_ERRORS_MAX)
			snprintf(res->warnings[res->n_warnings++], AF_CFG_ERR_MAX,
			         "%s changed from '%s' to '%s': takes effect after a restart",
			         keep[i].key, keep[i].src, keep[i].dst);
		af_log(AF_SS_CONFIG, LOG_WARNING,
		       "%s changed from '%s' to '%s': keeping '%s' until restart", keep[i].key,
		       keep[i].src, keep[i].dst, keep[i].src);
		af_strlcpy(keep[i].dst, keep[i].src, keep[i].size);
	}
}

int ftd_reload(struct ftd_ctx *ctx, struct ftd_reload_result *res)
{
	struct af_config *next = NULL;
	struct fm_rules *rules = NULL;
	struct af_cfg_diag *diag;
	unsigned done = 0;
	int rc;

	memset(res, 0, sizeof(*res));
	res->attempted = true;
	res->mono_ns = af_mono_ns();
	ftd_sd_notify("RELOADING=1");
	af_log(AF_SS_CONFIG, LOG_NOTICE, "reloading %s", ctx->opt.config_path);

	diag = calloc(1, sizeof(*diag));
	if (diag == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = af_cfg_load(ctx->opt.config_path, 0, &next, diag);
	log_diag(diag);
	for (unsigned i = 0; i < diag->n_errors && res->n_errors < FTD_RELOAD_ERRORS_MAX; i++)
		af_strlcpy(res->errors[res->n_errors++], diag->errors[i], AF_CFG_ERR_MAX);
	for (unsigned i = 0; i < diag->n_warnings && res->n_warnings < FTD_RELOAD_ERRORS_MAX; i++)
		af_strlcpy(res->warnings[res->n_warnings++], diag->warnings[i], AF_CFG_ERR_MAX);
	free(diag);
	if (rc < 0) {
		af_log(AF_SS_CONFIG, LOG_ERR,
		       "reload rejected: %s is invalid; still running configuration generation "
		       "%llu",
		       ctx->opt.config_path, (unsigned long long)ctx->cfg_generation);
		goto out;
	}
	keep_restart_only(next, ctx->cfg, res);

	/* the rules next: a bad rules file rejects the reload before any
	 * module has seen the new configuration */
	rc = load_rules(next, &rules, res);
	if (rc < 0) {
		af_log(AF_SS_CONFIG, LOG_ERR,
		       "reload rejected: %s is invalid; still running configuration generation %llu",
		       next->daemon.failure_rules, (unsigned long long)ctx->cfg_generation);
		goto out;
	}

	/* Logging first: it is the one part that can fail on the outside world
	 * (a log file that cannot be opened) and it applies atomically. */
	rc = ftd_apply_logging(ctx, next);
	if (rc < 0) {
		if (res->n_errors < FTD_RELOAD_ERRORS_MAX)
			snprintf(res->errors[res->n_errors++], AF_CFG_ERR_MAX,
			         "%s: cannot open the log file %s: %s", ctx->opt.config_path,
			         next->logging.logfile, strerror(-rc));
		af_log(AF_SS_CONFIG, LOG_ERR,
		       "reload rejected: cannot open the log file %s (%s); still running "
		       "configuration generation %llu",
		       next->logging.logfile, strerror(-rc),
		       (unsigned long long)ctx->cfg_generation);
		goto out;
	}

	for (done = 0; done < ctx->n_started; done++) {
		const struct ftd_module *m = &ftd_modules[done];

		if (m->reconfigure == NULL)
			continue;
		rc = m->reconfigure(ctx, next);
		if (rc < 0) {
			if (res->n_errors < FTD_RELOAD_ERRORS_MAX)
				snprintf(res->errors[res->n_errors++], AF_CFG_ERR_MAX,
				         "module %s refused the new configuration: %s", m->name,
				         strerror(-rc));
			af_err("reload rejected: module %s refused it (%s); rolling back", m->name,
			       strerror(-rc));
			goto rollback;
		}
	}
	resolve_local_blade(ctx, next);
	if (ctx->fm != NULL) {
		int rrc = fm_set_rules(ctx->fm, rules);

		if (rrc == 0)
			rules = NULL; /* the model has them */
		else
			af_log(AF_SS_FM, LOG_ERR,
			       "the new failure-model rules could not be applied (%s): the rules in "
			       "force stay",
			       strerror(-rrc));
		fm_schedule(ctx);
	}
	af_cfg_free(ctx->cfg);
	ctx->cfg = next;
	next = NULL;
	ctx->cfg_generation++;
	ctx->cfg_loaded_ns = af_mono_ns();
	res->ok = true;
	af_log(AF_SS_CONFIG, LOG_NOTICE, "configuration generation %llu active (%u blades, %u VMs)",
	       (unsigned long long)ctx->cfg_generation, ctx->cfg->n_blades, ctx->cfg->n_vms);
	goto out;

rollback:
	while (done-- > 0) {
		if (ftd_modules[done].reconfigure != NULL)
			ftd_modules[done].reconfigure(ctx, ctx->cfg);
	}
	ftd_apply_logging(ctx, ctx->cfg);
out:
	fm_rules_free(rules);
	af_cfg_free(next);
	ctx->last_reload = *res;
	ftd_sd_notify("READY=1");
	return rc;
}
