/*
 * Human-readable renderings of the recovery documents: pairs, VMs, faults,
 * plans, failover, maintenance. Each renderer tolerates missing fields (an
 * older or newer daemon) and prints "-".
 */
#include "config.h"

#include "ctl.h"

#include <string.h>

/* ---- recovery documents: pairs, VMs, faults, plans, operator actions ---- */

/* Integers of an array joined by commas ("1,2"); other members are
 * skipped; empty gives empty_text. A list too long for buf ends in ",..."
 * rather than in a cut number. len must be at least 8. */
static void int_list(json_object *arr, const char *empty_text, char *buf, size_t len)
{
	size_t n = arr ? json_object_array_length(arr) : 0, pos = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		char item[32];
		int w;

		if (!json_object_is_type(v, json_type_int))
			continue;
		w = snprintf(item, sizeof(item), "%s%lld", pos ? "," : "",
		             (long long)json_object_get_int64(v));
		if (pos + (size_t)w + sizeof(",...") > len) {
			snprintf(buf + pos, len - pos, "%s", pos ? ",..." : "...");
			break;
		}
		memcpy(buf + pos, item, (size_t)w + 1);
		pos += (size_t)w;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "%s", empty_text);
}

static bool is_number(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o != NULL && json_object_object_get_ex(o, key, &v) &&
	       (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int));
}

/* A duration field in seconds (scale 1) or milliseconds (scale 1000) as
 * "5m 12s"; "-" when missing. */
static void duration_text(json_object *o, const char *key, double scale, char *buf, size_t len)
{
	if (is_number(o, key))
		ctl_format_age(ctl_double(o, key, 0) / scale, buf, len);
	else
		snprintf(buf, len, "-");
}

static const char *yes_no(json_object *o, const char *key)
{
	json_object *v = NULL;

	if (o == NULL || !json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return "-";
	return json_object_get_boolean(v) ? "yes" : "no";
}

static void render_cluster(json_object *c, FILE *f)
{
	char nodes[128], daemons[128];
	const char *state;

	if (!json_object_is_type(c, json_type_object)) {
		fprintf(f, "cluster  unknown\n");
		return;
	}
	if (!ctl_bool(c, "connected", false))
		state = "NOT CONNECTED";
	else
		state = ctl_bool(c, "quorate", false) ? "quorate" : "NOT QUORATE";
	int_list(ctl_array(c, "nodes"), "none", nodes, sizeof(nodes));
	int_list(ctl_array(c, "daemons"), "none", daemons, sizeof(daemons));
	fprintf(f, "cluster  %s, nodes %s, daemons %s\n", state, nodes, daemons);
}

/* One side of a pair: "1", "2 (absent)", "2 (absent, maintenance)". */
static void pair_side(json_object *p, const char *side, char *buf, size_t len)
{
	char key[32], slot[16];
	bool member, maint;

	ctl_int_text(p, side, slot, sizeof(slot));
	snprintf(key, sizeof(key), "%s_member", side);
	member = ctl_bool(p, key, true);
	snprintf(key, sizeof(key), "%s_maintenance", side);
	maint = ctl_bool(p, key, false);
	if (!member && maint)
		snprintf(buf, len, "%s (absent, maintenance)", slot);
	else if (!member)
		snprintf(buf, len, "%s (absent)", slot);
	else if (maint)
		snprintf(buf, len, "%s (maintenance)", slot);
	else
		snprintf(buf, len, "%s", slot);
}

void ctl_render_pairs(json_object *doc, FILE *f)
{
	static const char *const h[] = {"PAIR",    "STATE",   "PROTECTED", "RUNS-ALL",
	                                "BLADE-A", "BLADE-B", "ORIGIN"};
	json_object *arr = ctl_array(doc, "pairs"), *c = NULL;
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	json_object_object_get_ex(doc, "cluster", &c);
	render_cluster(c, f);
	if (n == 0) {
		fprintf(f, "no pairs\n");
		return;
	}
	ctl_table_init(&t, 7, h);
	for (size_t i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(arr, i);
		char all[16] = "-", a[64], b[64];
		const char *row[7];

		if (ctl_int(p, "runs_all", 0) > 0)
			ctl_int_text(p, "runs_all", all, sizeof(all));
		pair_side(p, "a", a, sizeof(a));
		pair_side(p, "b", b, sizeof(b));
		row[0] = ctl_str(p, "name", "-");
		row[1] = ctl_str(p, "state", "-");
		row[2] = yes_no(p, "protected");
		row[3] = all;
		row[4] = a;
		row[5] = b;
		row[6] = ctl_bool(p, "derived", false) ? "slot order" : "configured";
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

/* Where a VM runs: "2", or "- (last 1)" when it runs nowhere. */
static void vm_where(json_object *v, char *buf, size_t len)
{
	if (ctl_int(v, "running_on", 0) > 0)
		ctl_int_text(v, "running_on", buf, len);
	else if (ctl_int(v, "last_blade", 0) > 0)
		snprintf(buf, len, "- (last %lld)", (long long)ctl_int(v, "last_blade", 0));
	else
		snprintf(buf, len, "-");
}

void ctl_render_vms(json_object *doc, FILE *f)
{
	static const char *const h[] = {"VM",         "DOMAIN", "PROTECTION", "HOME",
	                                "RUNNING-ON", "STATE",  "RESTARTS"};
	json_object *arr = ctl_array(doc, "vms");
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (n == 0) {
		fprintf(f, "no VMs configured\n");
		return;
	}
	ctl_table_init(&t, 7, h);
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(arr, i);
		char home[16], on[48], restarts[48] = "-";
		const char *row[7];

		ctl_int_text(v, "home", home, sizeof(home));
		vm_where(v, on, sizeof(on));
		if (ctl_int(v, "restarts_recent", -1) >= 0)
			snprintf(restarts, sizeof(restarts), "%lld/%lld",
			         (long long)ctl_int(v, "restarts_recent", 0),
			         (long long)ctl_int(v, "max_restarts", 0));
		row[0] = ctl_str(v, "name", "-");
		row[1] = ctl_str(v, "domain", "-");
		row[2] = ctl_str(v, "protection", "-");
		row[3] = home;
		row[4] = on;
		row[5] = ctl_str(v, "state", "-");
		row[6] = restarts;
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

/* The columns a fault shows in both tables. */
struct fault_cells {
	char id[24], target[192], causes[160];
};

static void fault_cells(json_object *fl, struct fault_cells *c)
{
	const char *entity = ctl_str(fl, "entity", NULL);

	ctl_int_text(fl, "id", c->id, sizeof(c->id));
	if (entity != NULL)
		snprintf(c->target, sizeof(c->target), "%s: %s", ctl_str(fl, "target", "-"),
		         entity);
	else
		snprintf(c->target, sizeof(c->target), "%s", ctl_str(fl, "target", "-"));
	int_list(ctl_array(fl, "causes"), "-", c->causes, sizeof(c->causes));
}

static void render_open_faults(json_object *arr, FILE *f)
{
	static const char *const h[] = {"ID",     "AGE",  "SEVERITY", "LAYER",
	                                "TARGET", "RULE", "RECOVERY", "EVENTS"};
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (n == 0) {
		fprintf(f, "open faults: none\n");
		return;
	}
	fprintf(f, "open faults:\n");
	ctl_table_init(&t, 8, h);
	for (size_t i = 0; i < n; i++) {
		json_object *fl = json_object_array_get_idx(arr, i);
		struct fault_cells c;
		char age[32];
		const char *row[8];

		fault_cells(fl, &c);
		duration_text(fl, "age_s", 1, age, sizeof(age));
		row[0] = c.id;
		row[1] = age;
		row[2] = ctl_str(fl, "severity", "-");
		row[3] = ctl_str(fl, "layer", "-");
		row[4] = c.target;
		row[5] = ctl_str(fl, "rule", "-");
		row[6] = ctl_str(fl, "recovery", "-");
		row[7] = c.causes;
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

static void render_fault_history(json_object *arr, FILE *f)
{
	static const char *const h[] = {"AGO",   "OP",     "ID",   "SEVERITY",
	                                "LAYER", "TARGET", "RULE", "RECOVERY"};
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	if (n == 0) {
		fprintf(f, "fault reports: none yet\n");
		return;
	}
	fprintf(f, "recent fault reports, oldest first:\n");
	ctl_table_init(&t, 8, h);
	for (size_t i = 0; i < n; i++) {
		json_object *fl = json_object_array_get_idx(arr, i);
		struct fault_cells c;
		char ago[32];
		const char *row[8];

		fault_cells(fl, &c);
		duration_text(fl, "report_age_s", 1, ago, sizeof(ago));
		row[0] = ago;
		row[1] = ctl_str(fl, "op", "-");
		row[2] = c.id;
		row[3] = ctl_str(fl, "severity", "-");
		row[4] = ctl_str(fl, "layer", "-");
		row[5] = c.target;
		row[6] = ctl_str(fl, "rule", "-");
		row[7] = ctl_str(fl, "recovery", "-");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

void ctl_render_faults(json_object *doc, FILE *f)
{
	render_open_faults(ctl_array(doc, "open"), f);
	fputc('\n', f);
	render_fault_history(ctl_array(doc, "history"), f);
}

/* "2/3": the step in progress (counted from 1) of n_steps. */
static void step_of(json_object *r, char *buf, size_t len)
{
	int64_t step = ctl_int(r, "step", -1), n = ctl_int(r, "n_steps", -1);

	if (step < 0 || n < 0)
		snprintf(buf, len, "?/?");
	else
		snprintf(buf, len, "%lld/%lld", (long long)(step < n ? step + 1 : n), (long long)n);
}

/* Where a step acts: "web on blade 1", "blade 2", or "-". */
static void step_where(json_object *s, char *buf, size_t len)
{
	const char *vm = ctl_str(s, "vm", NULL);
	int64_t blade = ctl_int(s, "blade", 0);

	if (vm != NULL && blade > 0)
		snprintf(buf, len, "%s on blade %lld", vm, (long long)blade);
	else if (vm != NULL)
		snprintf(buf, len, "%s", vm);
	else if (blade > 0)
		snprintf(buf, len, "blade %lld", (long long)blade);
	else
		snprintf(buf, len, "-");
}

static void render_step(json_object *s, size_t i, FILE *f)
{
	const char *result = ctl_str(s, "result", ""), *why = ctl_str(s, "why", "");
	char where[160], ms[32] = "-", text[512];

	step_where(s, where, sizeof(where));
	if (is_number(s, "ms"))
		snprintf(ms, sizeof(ms), "%.0f ms", ctl_double(s, "ms", 0));
	if (result[0] != '\0')
		snprintf(text, sizeof(text), "%s", result);
	else if (why[0] != '\0')
		snprintf(text, sizeof(text), "(%s)", why);
	else
		snprintf(text, sizeof(text), "-");
	fprintf(f, "  %2zu. %-7s  %-11s  %-18s  %8s  %s\n", i + 1, ctl_str(s, "state", "-"),
	        ctl_str(s, "kind", "-"), where, ms, text);
}

static void render_plan(json_object *r, FILE *f)
{
	json_object *steps = ctl_array(r, "steps");
	size_t n = steps ? json_object_array_length(steps) : 0;
	char id[24], step[48], elapsed[32], age[32], origin[48];
	int64_t fault = ctl_int(r, "fault", -1);

	ctl_int_text(r, "id", id, sizeof(id));
	step_of(r, step, sizeof(step));
	duration_text(r, "elapsed_ms", 1000, elapsed, sizeof(elapsed));
	duration_text(r, "age_ms", 1000, age, sizeof(age));
	if (fault > 0)
		snprintf(origin, sizeof(origin), "fault %lld", (long long)fault);
	else
		snprintf(origin, sizeof(origin), "%s", fault == 0 ? "operator" : "fault ?");
	fprintf(f, "plan %s %s, step %s, %s elapsed, started %s ago (%s, %s): %s\n", id,
	        ctl_str(r, "state", "?"), step, elapsed, age, origin, ctl_str(r, "class", "?"),
	        ctl_str(r, "summary", "?"));
	for (size_t i = 0; i < n; i++)
		render_step(json_object_array_get_idx(steps, i), i, f);
}

static void render_plan_list(json_object *arr, const char *title, FILE *f)
{
	size_t n = arr ? json_object_array_length(arr) : 0;

	fprintf(f, "\n%s:%s\n", title, n ? "" : " none");
	for (size_t i = 0; i < n; i++)
		render_plan(json_object_array_get_idx(arr, i), f);
}

static void render_remote_plans(json_object *arr, FILE *f)
{
	static const char *const h[] = {"BLADE", "PLAN", "STATE", "STEP", "HEARD", "SUMMARY"};
	size_t n = arr ? json_object_array_length(arr) : 0;
	struct ctl_table t;

	fprintf(f, "\nplans of other blades:%s\n", n ? "" : " none");
	if (n == 0)
		return;
	ctl_table_init(&t, 6, h);
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(arr, i);
		char blade[16], id[24], step[48], heard[48];
		const char *row[6];

		ctl_int_text(r, "blade", blade, sizeof(blade));
		ctl_int_text(r, "id", id, sizeof(id));
		step_of(r, step, sizeof(step));
		duration_text(r, "age_ms", 1000, heard, sizeof(heard));
		if (strcmp(heard, "-") != 0)
			strncat(heard, " ago", sizeof(heard) - strlen(heard) - 1);
		row[0] = blade;
		row[1] = id;
		row[2] = ctl_str(r, "state", "-");
		row[3] = step;
		row[4] = heard;
		row[5] = ctl_str(r, "summary", "-");
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, f);
	ctl_table_free(&t);
}

void ctl_render_plans(json_object *doc, FILE *f)
{
	const char *mode = ctl_str(doc, "mode", "?");

	fprintf(f, "recovery mode %s%s, %s\n", mode,
	        strcmp(mode, "dry-run") == 0 ? " (plans are logged, not carried out)" : "",
	        ctl_bool(doc, "quorate", false) ? "quorate" : "NOT QUORATE");
	render_plan_list(ctl_array(doc, "active"), "plans in progress", f);
	render_plan_list(ctl_array(doc, "recent"), "recent plans, newest first", f);
	render_remote_plans(ctl_array(doc, "remote"), f);
}

void ctl_render_failover(json_object *doc, FILE *f)
{
	const char *target = ctl_str(doc, "target", "?");

	if (json_object_object_get_ex(doc, "error", NULL))
		fprintf(f, "switchover failed: %s\n", ctl_str(doc, "error", "?"));
	else if (ctl_int(doc, "plan", 0) > 0)
		fprintf(f,
		        "switchover of %s started: plan %lld (follow it with 'atca-ftctl plans')\n",
		        target, (long long)ctl_int(doc, "plan", 0));
	else
		fprintf(f, "switchover of %s: nothing to do\n", target);
}

void ctl_render_maintenance(json_object *doc, FILE *f)
{
	const char *target = ctl_str(doc, "target", "?"), *on = yes_no(doc, "maintenance");

	if (json_object_object_get_ex(doc, "error", NULL))
		fprintf(f, "maintenance failed: %s\n", ctl_str(doc, "error", "?"));
	else if (strcmp(on, "-") == 0)
		fprintf(f, "blade %s: maintenance state unknown\n", target);
	else if (strcmp(on, "no") == 0)
		fprintf(f,
		        "blade %s leaves maintenance: it may run VMs again (they move back only "
		        "with 'atca-ftctl failover')\n",
		        target);
	else if (ctl_int(doc, "plan", 0) > 0)
		fprintf(f,
		        "blade %s enters maintenance: evacuation plan %lld started (follow it with "
		        "'atca-ftctl plans')\n",
		        target, (long long)ctl_int(doc, "plan", 0));
	else
		fprintf(f, "blade %s enters maintenance: it runs no VM, nothing to evacuate\n",
		        target);
}

void ctl_render_vm_status(json_object *doc, FILE *f)
{
	char buf[64];
	double age = ctl_double(doc, "commit_age_ms", -1);

	if (json_object_object_get_ex(doc, "error", NULL)) {
		fprintf(f, "vm status failed: %s\n", ctl_str(doc, "error", "?"));
		return;
	}
	fprintf(f, "vm %s: %s, %s on blade %lld (partner blade %lld)\n", ctl_str(doc, "vm", "?"),
	        ctl_str(doc, "role", "?"), ctl_str(doc, "state", "?"),
	        (long long)ctl_int(doc, "blade", 0), (long long)ctl_int(doc, "peer_blade", 0));
	fprintf(f, "  link              %s\n", ctl_str(doc, "link", "?"));
	fprintf(f, "  epoch             %lld (acknowledged %lld",
	        (long long)ctl_int(doc, "epoch", 0), (long long)ctl_int(doc, "acked_epoch", 0));
	if (json_object_object_get_ex(doc, "committed_epoch", NULL))
		fprintf(f, ", committed here %lld", (long long)ctl_int(doc, "committed_epoch", 0));
	fprintf(f, ")\n");
	if (age < 0)
		snprintf(buf, sizeof(buf), "never");
	else
		snprintf(buf, sizeof(buf), "%.0f ms ago", age);
	fprintf(f, "  last commit       %s (period %lld ms)\n", buf,
	        (long long)ctl_int(doc, "epoch_period_ms", 0));
	fprintf(f, "  pause             p50 %.1f ms, p99 %.1f ms\n",
	        ctl_double(doc, "pause_p50_ms", 0), ctl_double(doc, "pause_p99_ms", 0));
	fprintf(f, "  bytes per epoch   %lld (last %lld, device state %lld)\n",
	        (long long)ctl_int(doc, "bytes_per_epoch", 0),
	        (long long)ctl_int(doc, "bytes_last_epoch", 0),
	        (long long)ctl_int(doc, "devstate_bytes", 0));
	fprintf(f, "  output            %lld bytes held, %lld released\n",
	        (long long)ctl_int(doc, "output_held", 0),
	        (long long)ctl_int(doc, "output_released", 0));
	if (ctl_double(doc, "promote_ms", 0) > 0)
		fprintf(f, "  promoted in       %.1f ms\n", ctl_double(doc, "promote_ms", 0));
}

void ctl_render_vm_order(json_object *doc, FILE *f)
{
	if (json_object_object_get_ex(doc, "error", NULL))
		fprintf(f, "failed: %s\n", ctl_str(doc, "error", "?"));
	else if (json_object_object_get_ex(doc, "promoted", NULL))
		fprintf(f, "promoted: %s\n", ctl_str(doc, "promoted", "?"));
	else if (json_object_object_get_ex(doc, "promote_ms", NULL))
		fprintf(f, "promoted: the guest runs here from epoch %lld (%.1f ms)\n",
		        (long long)ctl_int(doc, "epoch", 0), ctl_double(doc, "promote_ms", 0));
	else if (json_object_object_get_ex(doc, "note", NULL))
		fprintf(f, "nothing done: %s\n", ctl_str(doc, "note", "?"));
	else
		fprintf(f, "done\n");
}
