/*
 * Tables for the hardware documents: blades, sensors, SEL records, events
 * and the outcome of a fence. Like every renderer, missing fields print "-".
 */
#include "config.h"

#include "ctl.h"

#include <stdlib.h>
#include <string.h>

static void age_text(json_object *o, const char *key, char *buf, size_t len)
{
	json_object *v = NULL;

	if (o != NULL && json_object_object_get_ex(o, key, &v) &&
	    (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		ctl_format_age(json_object_get_double(v), buf, len);
	else
		snprintf(buf, len, "-");
}

static void blade_text(json_object *o, char *buf, size_t len)
{
	int64_t b = ctl_int(o, "blade", -1);

	if (b == 0)
		snprintf(buf, len, "shelf");
	else if (b > 0)
		snprintf(buf, len, "%lld", (long long)b);
	else
		snprintf(buf, len, "-");
}

static void render_shelf_manager(json_object *s, FILE *f)
{
	json_object *mon = NULL;

	if (s == NULL)
		return;
	if (!ctl_bool(s, "enabled", false)) {
		fprintf(f, "shelf manager  client idle: %s\n", ctl_str(s, "idle_reason", "?"));
	} else if (!ctl_bool(s, "connected", false)) {
		fprintf(f, "shelf manager  NOT CONNECTED\n");
	} else {
		fprintf(f,
		        "shelf manager  %s:%lld, PICMG %s, %lld address-table entries, %lld "
		        "switchovers\n",
		        ctl_str(s, "address", "?"), (long long)ctl_int(s, "port", 0),
		        ctl_str(s, "picmg", "?"), (long long)ctl_int(s, "address_table_entries", 0),
		        (long long)ctl_int(s, "switchovers", 0));
	}
	if (json_object_object_get_ex(s, "monitoring", &mon) &&
	    json_object_is_type(mon, json_type_object))
		fprintf(f, "monitoring     via %s:%lld\n",
		        ctl_str(mon, "address", "(none reachable)"),
		        (long long)ctl_int(mon, "port", 0));
}

void ctl_render_blades(json_object *doc, FILE *f)
{
	static const char *const h[] = {"SLOT",   "IPMC",      "HOST",    "M-STATE",
	                                "HEALTH", "IPMC-LINK", "SENSORS", "DETAIL"};
	json_object *arr = ctl_array(doc, "blades"), *sm = NULL;
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (json_object_object_get_ex(doc, "shelf_manager", &sm))
		render_shelf_manager(sm, f);
	ctl_table_init(&t, 8, h);
	for (size_t i = 0; i < n; i++) {
		json_object *b = json_object_array_get_idx(arr, i);
		char slot[16], host[160], ms[64], sensors[16], detail[320];
		const char *row[8], *fencing = ctl_str(b, "fencing", "none");

		ctl_int_text(b, "slot", slot, sizeof(slot));
		ctl_int_text(b, "sensors", sensors, sizeof(sensors));
		snprintf(host, sizeof(host), "%s%s", ctl_str(b, "host", "-"),
		         ctl_bool(b, "local", false) ? " (this host)" : "");
		snprintf(ms, sizeof(ms), "%s", ctl_str(b, "mstate", "-"));
		if (strcmp(fencing, "none") != 0)
			snprintf(ms, sizeof(ms), "%s (%s)", ctl_str(b, "mstate", "-"),
			         strcmp(fencing, "unfence") == 0 ? "unfencing" : "fencing");
		snprintf(detail, sizeof(detail), "%s", ctl_str(b, "health_detail", ""));
		if (detail[0] == '\0')
			snprintf(detail, sizeof(detail), "%s", ctl_str(b, "product", "-"));
		row[0] = slot;
		row[1] = ctl_str(b, "ipmc", "-");
		row[2] = host;
		row[3] = ms;
		row[4] = ctl_str(b, "health", "-");
		row[5] = ctl_str(b, "ipmc_state", "-");
		row[6] = sensors;
		row[7] = detail;
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
	for (size_t i = 0; i < n; i++) {
		json_object *b = json_object_array_get_idx(arr, i);
		const char *lf = ctl_str(b, "last_fence", NULL);

		if (lf != NULL)
			fprintf(f, "blade %lld: last %s\n", (long long)ctl_int(b, "slot", 0), lf);
	}
}

void ctl_render_sensors(json_object *doc, FILE *f)
{
	static const char *const h[] = {"BLADE", "SENSOR", "TYPE",     "VALUE",
	                                "UNIT",  "STATE",  "SEVERITY", "AGE"};
	json_object *arr = ctl_array(doc, "sensors");
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (n == 0) {
		fprintf(f, "no sensor readings yet (see 'atca-ftctl status' for ipmi-detect)\n");
		return;
	}
	ctl_table_init(&t, 8, h);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		char blade[16], age[32];
		const char *row[8];

		blade_text(s, blade, sizeof(blade));
		age_text(s, "age_s", age, sizeof(age));
		row[0] = blade;
		row[1] = ctl_str(s, "name", "-");
		row[2] = ctl_str(s, "type", "-");
		row[3] = ctl_str(s, "value", "-");
		row[4] = ctl_str(s, "unit", "-");
		row[5] = ctl_str(s, "state", "-");
		row[6] = ctl_str(s, "severity", "-");
		row[7] = age;
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

static const char *detail_of(json_object *ev, const char *key, const char *fallback)
{
	json_object *d = NULL;

	if (!json_object_object_get_ex(ev, "detail", &d))
		return fallback;
	return ctl_str(d, key, fallback);
}

void ctl_render_sel(json_object *doc, FILE *f)
{
	static const char *const h[] = {"AGE", "BLADE", "RECORD", "SENSOR", "TYPE", "EVENT", "DIR"};
	json_object *arr = ctl_array(doc, "records");
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (n == 0) {
		fprintf(f, "no SEL records seen since atca-ftd started\n");
		return;
	}
	ctl_table_init(&t, 7, h);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		char blade[16], age[32], sensor[96], event[96];
		const char *row[7], *entity = ctl_str(e, "entity", "");

		blade_text(e, blade, sizeof(blade));
		age_text(e, "age_s", age, sizeof(age));
		snprintf(sensor, sizeof(sensor), "%s",
		         entity[0] ? entity : detail_of(e, "sensor", "-"));
		snprintf(event, sizeof(event), "%s", detail_of(e, "meaning", "-"));
		if (detail_of(e, "previous", NULL) != NULL)
			snprintf(event, sizeof(event), "%s (from %s)", detail_of(e, "meaning", "-"),
			         detail_of(e, "previous", "-"));
		row[0] = age;
		row[1] = blade;
		row[2] = detail_of(e, "record", "-");
		row[3] = sensor;
		row[4] = detail_of(e, "sensor_type", "-");
		row[5] = event;
		row[6] = detail_of(e, "dir", "-");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

void ctl_render_events(json_object *doc, FILE *f)
{
	static const char *const h[] = {"ID", "AGE", "SOURCE", "KIND", "BLADE", "ENTITY", "DETAIL"};
	json_object *arr = ctl_array(doc, "events");
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (n == 0) {
		fprintf(f, "no events yet\n");
		return;
	}
	ctl_table_init(&t, 7, h);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i), *d = NULL;
		char id[24], blade[16], age[32], detail[512];
		const char *row[7];
		size_t pos = 0;

		ctl_int_text(e, "id", id, sizeof(id));
		blade_text(e, blade, sizeof(blade));
		age_text(e, "age_s", age, sizeof(age));
		detail[0] = '\0';
		if (json_object_object_get_ex(e, "detail", &d) &&
		    json_object_is_type(d, json_type_object)) {
			json_object_object_foreach(d, k, v)
			{
				if (pos < sizeof(detail))
					pos += (size_t)snprintf(detail + pos, sizeof(detail) - pos,
					                        "%s%s=%s", pos ? " " : "", k,
					                        json_object_get_string(v));
			}
		}
		row[0] = id;
		row[1] = age;
		row[2] = ctl_str(e, "source", "-");
		row[3] = ctl_str(e, "kind", "-");
		row[4] = blade;
		row[5] = ctl_str(e, "entity", "-");
		row[6] = detail;
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

void ctl_render_fence(json_object *doc, FILE *f)
{
	const char *action = ctl_str(doc, "action", "fence");
	const char *method = ctl_str(doc, "method", "?");
	bool ok = ctl_bool(doc, "ok", false);
	char states[64];

	if (json_object_object_get_ex(doc, "error", NULL)) {
		fprintf(f, "%s\n", ctl_str(doc, "error", "?"));
		return;
	}
	if (strcmp(method, "chassis") == 0)
		snprintf(states, sizeof(states), "power %s",
		         strcmp(action, "fence") == 0 ? "off" : "on");
	else
		snprintf(states, sizeof(states), "%s -> %s", ctl_str(doc, "state_before", "?"),
		         ctl_str(doc, "state_after", "?"));
	fprintf(f, "blade %lld %s%s in %.0f ms (%s, %s, %lld IPMI requests)\n",
	        (long long)ctl_int(doc, "blade", 0),
	        ok ? (strcmp(action, "fence") == 0 ? "fenced" : "unfenced") : action,
	        ok ? "" : " FAILED", ctl_double(doc, "elapsed_ms", 0), method,
	        ok || strcmp(method, "chassis") != 0 ? states : "not confirmed",
	        (long long)ctl_int(doc, "commands", 0));
	fprintf(f, "  %s\n", ctl_str(doc, "message", ""));
}
