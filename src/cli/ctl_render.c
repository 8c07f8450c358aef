/*
 * Human-readable renderings of the daemon's JSON documents: status, config
 * check, reload (the recovery views are in ctl_render_rcv.c). Each renderer
 * tolerates missing fields (an older or newer daemon) and prints "-".
 */
#include "config.h"

#include "ctl.h"

#include <string.h>

static void print_list(FILE *f, const char *indent, json_object *arr)
{
	size_t n = arr ? json_object_array_length(arr) : 0;

	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);

		if (json_object_is_type(v, json_type_string))
			fprintf(f, "%s%s\n", indent, json_object_get_string(v));
	}
}

static void render_daemon(json_object *d, FILE *f)
{
	json_object *reload = NULL;
	char up[32], age[32];

	ctl_format_age(ctl_double(d, "uptime_s", 0), up, sizeof(up));
	fprintf(f, "atca-ftd %s, pid %lld, up %s, role %s", ctl_str(d, "version", "?"),
	        (long long)ctl_int(d, "pid", 0), up, ctl_str(d, "role", "?"));
	if (ctl_int(d, "local_blade", 0) > 0)
		fprintf(f, " (blade %lld)", (long long)ctl_int(d, "local_blade", 0));
	fputc('\n', f);
	ctl_format_age(ctl_double(d, "config_age_s", 0), age, sizeof(age));
	fprintf(f, "configuration  %s (generation %lld, loaded %s ago)\n",
	        ctl_str(d, "config", "?"), (long long)ctl_int(d, "config_generation", 0), age);
	if (json_object_object_get_ex(d, "last_reload", &reload) &&
	    json_object_is_type(reload, json_type_object)) {
		ctl_format_age(ctl_double(reload, "age_s", 0), age, sizeof(age));
		fprintf(f, "last reload    %s %s ago\n",
		        ctl_bool(reload, "ok", false) ? "applied"
		                                      : "REJECTED (old configuration kept)",
		        age);
		print_list(f, "               ", ctl_array(reload, "errors"));
		print_list(f, "               ", ctl_array(reload, "warnings"));
	}
	fprintf(f, "events         %lld\n", (long long)ctl_int(d, "events", 0));
}

static void render_shelf(json_object *s, FILE *f)
{
	json_object *mgrs = ctl_array(s, "managers");
	size_t n = mgrs ? json_object_array_length(mgrs) : 0;

	fprintf(f, "shelf          %s, cipher suite %lld, manager%s", ctl_str(s, "name", "?"),
	        (long long)ctl_int(s, "cipher_suite", 0), n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(mgrs, i);

		fprintf(f, "%s %s:%lld (%s)", i ? "," : "", ctl_str(m, "address", "?"),
		        (long long)ctl_int(m, "port", 0), ctl_str(m, "state", "?"));
	}
	fputc('\n', f);
}

static void render_blades(json_object *arr, FILE *f)
{
	static const char *const h[] = {"SLOT", "IPMC", "HOST", "PARTNER", "M-STATE", "HEALTH"};
	struct ctl_table t;
	size_t n = arr ? json_object_array_length(arr) : 0;

	ctl_table_init(&t, 6, h);
	for (size_t i = 0; i < n; i++) {
		json_object *b = json_object_array_get_idx(arr, i);
		char slot[16], partner[16], host[160];
		const char *row[6];

		ctl_int_text(b, "slot", slot, sizeof(slot));
		ctl_int_text(b, "partner", partner, sizeof(partner));
		snprintf(host, sizeof(host), "%s%s", ctl_str(b, "host", "-"),
		         ctl_bool(b, "local", false) ? " (this host)" : "");
		row[0] = slot;
		row[1] = ctl_str(b, "ipmc", "-");
		row[2] = host;
		row[3] = partner;
		row[4] = ctl_str(b, "mstate", "-");
		row[5] = ctl_str(b, "state", "-");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

static void render_pairs(json_object *arr, FILE *f)
{
	static const char *const h[] = {"PAIR", "BLADES", "ORIGIN", "STATE"};
	struct ctl_table t;
	size_t n = arr ? json_object_array_length(arr) : 0;

	if (n == 0) {
		fprintf(f, "no pairs\n");
		return;
	}
	ctl_table_init(&t, 4, h);
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(arr, i);
		json_object *b = ctl_array(p, "blades");
		char id[16], blades[32] = "-";
		const char *row[4];

		snprintf(id, sizeof(id), "%zu", i + 1);
		if (b != NULL && json_object_array_length(b) == 2)
			snprintf(blades, sizeof(blades), "%d+%d",
			         json_object_get_int(json_object_array_get_idx(b, 0)),
			         json_object_get_int(json_object_array_get_idx(b, 1)));
		row[0] = id;
		row[1] = blades;
		row[2] = ctl_bool(p, "derived", false) ? "slot order" : "configured";
		row[3] = ctl_str(p, "state", "-");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

static void render_vms(json_object *arr, FILE *f)
{
	static const char *const h[] = {"VM", "DOMAIN", "HOME", "PROTECTION", "STATE"};
	struct ctl_table t;
	size_t n = arr ? json_object_array_length(arr) : 0;

	if (n == 0) {
		fprintf(f, "no VMs configured\n");
		return;
	}
	ctl_table_init(&t, 5, h);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		char blade[16];
		const char *row[6];

		ctl_int_text(v, "blade", blade, sizeof(blade));
		row[0] = ctl_str(v, "name", "-");
		row[1] = ctl_str(v, "domain", "-");
		row[2] = blade;
		row[3] = ctl_str(v, "protection", "-");
		row[4] = ctl_str(v, "state", "-");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

static void render_modules(json_object *arr, FILE *f)
{
	static const char *const h[] = {"MODULE", "STATE", "DETAIL"};
	struct ctl_table t;
	size_t n = arr ? json_object_array_length(arr) : 0;

	ctl_table_init(&t, 3, h);
	for (size_t i = 0; i < n; i++) {
		json_object *m = json_object_array_get_idx(arr, i);
		const char *row[3] = {ctl_str(m, "name", "-"), ctl_str(m, "state", "-"),
		                      ctl_str(m, "detail", "")};

		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

void ctl_render_status(json_object *doc, FILE *f)
{
	json_object *o = NULL;

	if (json_object_object_get_ex(doc, "daemon", &o))
		render_daemon(o, f);
	if (json_object_object_get_ex(doc, "shelf", &o))
		render_shelf(o, f);
	fputc('\n', f);
	render_blades(ctl_array(doc, "blades"), f);
	fputc('\n', f);
	render_pairs(ctl_array(doc, "pairs"), f);
	fputc('\n', f);
	render_vms(ctl_array(doc, "vms"), f);
	fputc('\n', f);
	render_modules(ctl_array(doc, "modules"), f);
}

void ctl_render_config_check(json_object *doc, FILE *f)
{
	const char *file = ctl_str(doc, "file", "?");

	print_list(f, "", ctl_array(doc, "warnings"));
	print_list(f, "", ctl_array(doc, "errors"));
	if (ctl_int(doc, "errors_dropped", 0) > 0)
		fprintf(f, "%s: ... and %lld more errors\n", file,
		        (long long)ctl_int(doc, "errors_dropped", 0));
	if (ctl_bool(doc, "valid", false))
		fprintf(f, "%s: configuration is valid (%lld blades, %lld pairs, %lld VMs)\n", file,
		        (long long)ctl_int(doc, "blades", 0), (long long)ctl_int(doc, "pairs", 0),
		        (long long)ctl_int(doc, "vms", 0));
	else
		fprintf(f, "%s: configuration is invalid\n", file);
}

void ctl_render_reload(json_object *doc, FILE *f)
{
	print_list(f, "", ctl_array(doc, "warnings"));
	print_list(f, "", ctl_array(doc, "errors"));
	if (ctl_bool(doc, "ok", false))
		fprintf(f, "configuration reloaded: generation %lld is active\n",
		        (long long)ctl_int(doc, "generation", 0));
	else
		fprintf(f, "reload rejected: generation %lld is still active\n",
		        (long long)ctl_int(doc, "generation", 0));
}

/* "daemon: info (config)" then a SUBSYSTEM LEVEL SOURCE table; with a
 * subsystem, its line only. */
void ctl_render_log(json_object *doc, const char *subsystem, FILE *f)
{
	static const char *const h[] = {"SUBSYSTEM", "LEVEL", "SOURCE"};
	json_object *arr = ctl_array(doc, "subsystems");
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (subsystem == NULL)
		fprintf(f, "daemon: %s (%s)\n", ctl_str(doc, "level", "?"),
		        ctl_str(doc, "source", "?"));
	ctl_table_init(&t, 3, h);
	for (size_t i = 0; i < n; i++) {
		json_object *s = json_object_array_get_idx(arr, i);
		const char *row[3];

		row[0] = ctl_str(s, "name", "?");
		if (subsystem != NULL && strcmp(row[0], subsystem) != 0)
			continue;
		row[1] = ctl_str(s, "level", "?");
		row[2] = ctl_str(s, "source", "?");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}
