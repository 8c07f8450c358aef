/*
 * The hardware answers: blades (hot-swap state, IPMC reachability and a
 * health summary), sensors, the SEL and the daemon's recent events, all as
 * JSON for atca-ftctl; and the event ring those come from.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_IPC
#include "ftd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipd.h"
#include "smc.h"

#define SENSOR_VIEW_MAX (64 * (AF_MAX_BLADES + 1))

/* ---- the event ring ------------------------------------------------------- */

int ftd_events_init(struct ftd_ctx *ctx)
{
	ctx->ev_ring = af_calloc_resident(FTD_EVENT_RING, sizeof(*ctx->ev_ring));
	return ctx->ev_ring ? 0 : -ENOMEM;
}

void ftd_events_fini(struct ftd_ctx *ctx)
{
	free(ctx->ev_ring);
	ctx->ev_ring = NULL;
	ctx->ev_head = ctx->ev_len = 0;
}

void ftd_events_add(struct ftd_ctx *ctx, const struct af_event *ev)
{
	struct ftd_event_rec *r;

	if (ctx->ev_ring == NULL)
		return;
	r = &ctx->ev_ring[(ctx->ev_head + ctx->ev_len) % FTD_EVENT_RING];
	if (ctx->ev_len < FTD_EVENT_RING)
		ctx->ev_len++;
	else
		ctx->ev_head = (ctx->ev_head + 1) % FTD_EVENT_RING;
	r->ev = *ev;
	r->rx_ns = af_mono_ns();
}

/* ---- helpers ------------------------------------------------------------------ */

static double age_s(uint64_t mono_ns)
{
	uint64_t now = af_mono_ns();

	return now > mono_ns ? (double)(now - mono_ns) / (double)AF_NS_PER_S : 0.0;
}

int ftd_blade_arg(const struct ftd_ctx *ctx, const char *arg, uint32_t *slot, char *err,
                  size_t errlen)
{
	const struct af_config *cfg = ctx->cfg;
	const struct af_cfg_blade *b = NULL;
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	/* a slot number too big is no slot: never wrap it onto a real one */
	if (*arg >= '0' && *arg <= '9' && *end == '\0')
		b = errno == 0 && v <= UINT32_MAX ? af_cfg_blade_by_slot(cfg, (uint32_t)v) : NULL;
	else
		b = af_cfg_blade_by_host(cfg, arg);
	if (b == NULL) {
		snprintf(err, errlen, "no blade '%s' in %s (give a slot number or a host name)",
		         arg, cfg->path);
		return -ENOENT;
	}
	*slot = b->slot;
	return 0;
}

static json_object *event_json(const struct af_event *ev, uint64_t rx_ns)
{
	json_object *o = json_object_new_object();
	json_object *d = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64((int64_t)ev->id));
	json_object_object_add(o, "source", json_object_new_string(af_ev_source_names[ev->source]));
	json_object_object_add(o, "kind", json_object_new_string(af_ev_kind_names[ev->kind]));
	json_object_object_add(o, "blade", json_object_new_int(ev->blade));
	json_object_object_add(o, "entity", json_object_new_string(ev->entity));
	json_object_object_add(o, "age_s", json_object_new_double(age_s(ev->ts_ns)));
	/* monotonic stamps (ns) of the observation and of its arrival in the
	 * daemon: the same clock as CLOCK_MONOTONIC on this host */
	json_object_object_add(o, "mono_ns", json_object_new_int64((int64_t)ev->ts_ns));
	if (rx_ns)
		json_object_object_add(o, "rx_mono_ns", json_object_new_int64((int64_t)rx_ns));
	for (unsigned i = 0; i < ev->n_detail; i++)
		json_object_object_add(d, ev->detail[i].key,
		                       json_object_new_string(ev->detail[i].val));
	json_object_object_add(o, "detail", d);
	return o;
}

/* A health summary from sensor states, for people: the failure model
 * decides what is a fault. */
static const char *const critical_states[] = {
        "ierr",
        "thermal-trip",
        "uncorrectable-ecc",
        "uncorrectable-cpu-error",
        "uncorrectable-machine-check",
        "ac-lost",
        "power-unit-failure",
        "soft-power-control-failure",
        "failure",
        "critical-overtemperature",
        "hard-reset",
        "power-down",
        "power-cycle",
};
static const char *const warning_states[] = {
        "correctable-ecc",     "correctable-ecc-limit",
        "predictive-failure",  "throttled",
        "configuration-error", "parity",
        "timer-expired",       "frb1-bist-failure",
        "frb2-hang",           "frb3-startup-failure",
};

static bool list_has(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word)) != NULL) {
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

int ftd_sensor_severity(const char *state)
{
	if (strncmp(state, "upper-", 6) == 0 || strncmp(state, "lower-", 6) == 0) {
		if (strstr(state, "non-critical"))
			return 1;
		return 2; /* critical, non-recoverable */
	}
	for (size_t i = 0; i < AF_ARRAY_SIZE(critical_states); i++) {
		if (list_has(state, critical_states[i]))
			return 2;
	}
	for (size_t i = 0; i < AF_ARRAY_SIZE(warning_states); i++) {
		if (list_has(state, warning_states[i]))
			return 1;
	}
	return 0;
}

static const char *const severity_names[] = {"ok", "warning", "critical"};

/* ---- blades ------------------------------------------------------------------ */

static bool target_of(struct ftd_ctx *ctx, int slot, struct ipd_target_view *out)
{
	struct ipd_target_view v[AF_MAX_BLADES + 1];
	unsigned n;

	if (ctx->ipd == NULL)
		return false;
	n = ipd_target_views(ctx->ipd, v, AF_ARRAY_SIZE(v));
	for (unsigned i = 0; i < n; i++) {
		if (v[i].slot == slot) {
			*out = v[i];
			return true;
		}
	}
	return false;
}

static void health(struct ftd_ctx *ctx, int slot, int mstate, bool have_target,
                   const struct ipd_target_view *tv, const char **h, char *detail, size_t dlen)
{
	struct ipd_sensor_view *sv;
	unsigned n = 0;
	int worst = -1;

	detail[0] = '\0';
	if (have_target && strcmp(tv->state, "UNREACHABLE") == 0) {
		*h = "unreachable";
		snprintf(detail, dlen, "%s", tv->error);
		return;
	}
	switch (mstate) {
	case 0:
		*h = "absent";
		return;
	case 1:
		*h = "off";
		return;
	case 7:
		*h = "lost";
		snprintf(detail, dlen, "the shelf manager lost contact with the IPMC (M7)");
		return;
	case 2:
	case 3:
	case 5:
	case 6:
		*h = "changing";
		return;
	default:
		break;
	}
	sv = calloc(64, sizeof(*sv));
	if (sv != NULL && ctx->ipd != NULL)
		n = ipd_sensor_views(ctx->ipd, slot, sv, 64);
	for (unsigned i = 0; i < n; i++) {
		int s = ftd_sensor_severity(sv[i].state);

		if (s > worst) {
			worst = s;
			if (s > 0)
				snprintf(detail, dlen, "%s %s", sv[i].name, sv[i].state);
		}
	}
	free(sv);
	*h = worst < 0 ? (mstate == 4 ? "ok" : "unknown") : severity_names[worst];
}

json_object *ftd_blade_json(struct ftd_ctx *ctx, const struct af_cfg_blade *b)
{
	json_object *o = json_object_new_object();
	json_object *frus = json_object_new_array();
	struct smc_blade_view v;
	struct ipd_target_view tv;
	bool have_smc = ctx->smc != NULL && smc_blade(ctx->smc, (int)b->slot, &v);
	bool have_t = target_of(ctx, (int)b->slot, &tv);
	const char *h;
	char buf[16], detail[160];

	if (!have_smc) {
		memset(&v, 0, sizeof(v));
		v.mstate = v.previous = -1;
	}
	snprintf(buf, sizeof(buf), "0x%02x", b->ipmc);
	json_object_object_add(o, "slot", json_object_new_int((int)b->slot));
	json_object_object_add(o, "ipmc", json_object_new_string(buf));
	json_object_object_add(o, "host", json_object_new_string(b->host));
	json_object_object_add(o, "local", json_object_new_boolean(b->slot == ctx->local_blade));
	json_object_object_add(o, "in_address_table", json_object_new_boolean(v.in_address_table));
	snprintf(buf, sizeof(buf), "0x%02x", v.hw_addr);
	json_object_object_add(o, "hw_addr",
	                       v.in_address_table ? json_object_new_string(buf) : NULL);
	json_object_object_add(o, "picmg", v.picmg[0] ? json_object_new_string(v.picmg) : NULL);
	json_object_object_add(o, "mstate",
	                       v.mstate >= 0 ? json_object_new_string(smc_mstate_name(v.mstate))
	                                     : NULL);
	json_object_object_add(o, "previous",
	                       v.previous >= 0 ? json_object_new_string(smc_mstate_name(v.previous))
	                                       : NULL);
	json_object_object_add(o, "mstate_age_s",
	                       v.mstate >= 0 ? json_object_new_double(age_s(v.mstate_ns)) : NULL);
	json_object_object_add(o, "product",
	                       v.product[0] ? json_object_new_string(v.product) : NULL);
	json_object_object_add(o, "serial", v.serial[0] ? json_object_new_string(v.serial) : NULL);
	for (unsigned i = 0; i < v.n_frus; i++) {
		json_object *f = json_object_new_object();

		json_object_object_add(f, "id", json_object_new_int(v.frus[i].fru_id));
		json_object_object_add(f, "name", json_object_new_string(v.frus[i].name));
		json_object_object_add(
		        f, "mstate",
		        v.frus[i].mstate >= 0
		                ? json_object_new_string(smc_mstate_name(v.frus[i].mstate))
		                : NULL);
		json_object_array_add(frus, f);
	}
	json_object_object_add(o, "frus", frus);
	json_object_object_add(o, "ipmc_state", have_t ? json_object_new_string(tv.state) : NULL);
	json_object_object_add(o, "ipmc_error",
	                       have_t && tv.error[0] ? json_object_new_string(tv.error) : NULL);
	json_object_object_add(o, "sensors", json_object_new_int(have_t ? (int)tv.sensors : 0));
	health(ctx, (int)b->slot, v.mstate, have_t, &tv, &h, detail, sizeof(detail));
	json_object_object_add(o, "health", json_object_new_string(h));
	json_object_object_add(o, "health_detail",
	                       detail[0] ? json_object_new_string(detail) : NULL);
	json_object_object_add(o, "fencing",
	                       json_object_new_string(v.fencing     ? "fence"
	                                              : v.unfencing ? "unfence"
	                                                            : "none"));
	json_object_object_add(o, "last_fence",
	                       v.last_fence[0] ? json_object_new_string(v.last_fence) : NULL);
	return o;
}

static json_object *shelf_manager_json(struct ftd_ctx *ctx)
{
	const struct af_config *cfg = ctx->cfg;
	json_object *o = json_object_new_object();
	struct smc_shelf_view sv;
	struct ipd_shmc_view iv;

	smc_shelf(ctx->smc, &sv);
	json_object_object_add(o, "enabled", json_object_new_boolean(sv.enabled));
	json_object_object_add(o, "idle_reason",
	                       sv.idle_reason[0] ? json_object_new_string(sv.idle_reason) : NULL);
	json_object_object_add(o, "connected", json_object_new_boolean(sv.connected));
	json_object_object_add(o, "discovered", json_object_new_boolean(sv.discovered));
	json_object_object_add(
	        o, "address",
	        sv.active >= 0 ? json_object_new_string(cfg->shelf.managers[sv.active].address)
	                       : NULL);
	json_object_object_add(
	        o, "port",
	        sv.active >= 0 ? json_object_new_int((int)cfg->shelf.managers[sv.active].port)
	                       : NULL);
	json_object_object_add(o, "switchovers", json_object_new_int((int)sv.switchovers));
	json_object_object_add(o, "picmg", sv.picmg[0] ? json_object_new_string(sv.picmg) : NULL);
	json_object_object_add(o, "address_table_entries",
	                       json_object_new_int((int)sv.address_table_entries));
	if (ctx->ipd != NULL) {
		json_object *m = json_object_new_object();

		ipd_shmc(ctx->ipd, &iv);
		json_object_object_add(m, "address",
		                       iv.active >= 0 ? json_object_new_string(iv.address) : NULL);
		json_object_object_add(m, "port",
		                       iv.active >= 0 ? json_object_new_int((int)iv.port) : NULL);
		json_object_object_add(m, "switchovers",
		                       json_object_new_int64((int64_t)iv.switchovers));
		json_object_object_add(o, "monitoring", m);
	}
	return o;
}

const char *ftd_manager_state(struct ftd_ctx *ctx, unsigned index)
{
	struct smc_shelf_view sv;
	struct ipd_shmc_view iv;
	bool any = false;

	smc_shelf(ctx->smc, &sv);
	if (sv.enabled) {
		any = true;
		if (sv.connected && sv.active == (int)index)
			return "active";
	}
	if (ctx->ipd != NULL) {
		ipd_shmc(ctx->ipd, &iv);
		if (iv.active == (int)index)
			return "active";
		any = any || iv.active >= 0;
	}
	return any ? "standby" : "unknown";
}

json_object *ftd_blades_json(struct ftd_ctx *ctx)
{
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();

	json_object_object_add(o, "shelf_manager", shelf_manager_json(ctx));
	for (unsigned i = 0; i < ctx->cfg->n_blades; i++)
		json_object_array_add(a, ftd_blade_json(ctx, &ctx->cfg->blades[i]));
	json_object_object_add(o, "blades", a);
	return o;
}

/* ---- sensors, SEL, events ------------------------------------------------------ */

json_object *ftd_sensors_json(struct ftd_ctx *ctx, int slot)
{
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();
	struct ipd_sensor_view *sv = calloc(SENSOR_VIEW_MAX, sizeof(*sv));
	unsigned n = 0;

	if (sv != NULL && ctx->ipd != NULL)
		n = ipd_sensor_views(ctx->ipd, slot, sv, SENSOR_VIEW_MAX);
	for (unsigned i = 0; i < n; i++) {
		json_object *s = json_object_new_object();
		char buf[8];

		json_object_object_add(s, "blade", json_object_new_int(sv[i].slot));
		snprintf(buf, sizeof(buf), "0x%02x", sv[i].owner);
		json_object_object_add(s, "owner", json_object_new_string(buf));
		json_object_object_add(s, "number", json_object_new_int(sv[i].number));
		json_object_object_add(s, "name", json_object_new_string(sv[i].name));
		json_object_object_add(s, "type", json_object_new_string(sv[i].type));
		json_object_object_add(s, "value", json_object_new_string(sv[i].value));
		json_object_object_add(s, "unit", json_object_new_string(sv[i].unit));
		json_object_object_add(s, "state", json_object_new_string(sv[i].state));
		json_object_object_add(
		        s, "severity",
		        json_object_new_string(severity_names[ftd_sensor_severity(sv[i].state)]));
		json_object_object_add(s, "age_s", json_object_new_double(age_s(sv[i].updated_ns)));
		json_object_array_add(a, s);
	}
	free(sv);
	json_object_object_add(o, "sensors", a);
	return o;
}

json_object *ftd_sel_json(struct ftd_ctx *ctx, int slot, unsigned count)
{
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();
	struct af_event *ev;
	unsigned n = 0;

	if (count == 0 || count > FTD_EVENT_RING)
		count = FTD_EVENT_RING;
	ev = calloc(count, sizeof(*ev));
	if (ev != NULL && ctx->ipd != NULL)
		n = ipd_sel_recent(ctx->ipd, slot, ev, count);
	for (unsigned i = 0; i < n; i++)
		json_object_array_add(a, event_json(&ev[i], 0));
	free(ev);
	json_object_object_add(o, "records", a);
	return o;
}

json_object *ftd_events_json(struct ftd_ctx *ctx, int slot, unsigned count)
{
	json_object *o = json_object_new_object();
	json_object *a = json_object_new_array();
	unsigned first = 0, matched = 0;

	if (count == 0 || count > FTD_EVENT_RING)
		count = FTD_EVENT_RING;
	/* the newest count matching events, oldest first */
	for (unsigned i = ctx->ev_len; i-- > 0;) {
		const struct ftd_event_rec *r = &ctx->ev_ring[(ctx->ev_head + i) % FTD_EVENT_RING];

		if (slot >= 0 && r->ev.blade != slot)
			continue;
		first = i;
		if (++matched == count)
			break;
	}
	for (unsigned i = first; matched > 0 && i < ctx->ev_len; i++) {
		const struct ftd_event_rec *r = &ctx->ev_ring[(ctx->ev_head + i) % FTD_EVENT_RING];

		if (slot >= 0 && r->ev.blade != slot)
			continue;
		json_object_array_add(a, event_json(&r->ev, r->rx_ns));
	}
	json_object_object_add(o, "events", a);
	json_object_object_add(o, "total", json_object_new_int64((int64_t)ctx->next_event_id));
	return o;
}
