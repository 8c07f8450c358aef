/*
 * atca-ftctl internals: tables, defensive JSON accessors, renderers.
 */
#include "config.h"

#include "check_util.h"

#include "ctl.h"

static char *render(void (*fn)(json_object *, FILE *), json_object *doc)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	fn(doc, f);
	fclose(f);
	return text;
}

START_TEST(test_accessors_tolerate_bad_documents)
{
	json_object *doc = json_tokener_parse("{\"s\": 5, \"i\": \"x\", \"b\": 1, \"a\": {}}");

	ck_assert_str_eq(ctl_str(doc, "s", "fb"), "fb");
	ck_assert_str_eq(ctl_str(doc, "missing", "fb"), "fb");
	ck_assert_str_eq(ctl_str(NULL, "s", "fb"), "fb");
	ck_assert_int_eq(ctl_int(doc, "i", -7), -7);
	ck_assert(ctl_bool(doc, "b", true));
	ck_assert_ptr_null(ctl_array(doc, "a"));
	ck_assert(ctl_double(doc, "s", 0) == 5.0);
	json_object_put(doc);

	/* renderers on an empty or hostile document print, never crash */
	doc = json_tokener_parse("{\"daemon\": 3, \"blades\": {\"x\": 1}, \"modules\": [1, null]}");
	free(render(ctl_render_status, doc));
	free(render(ctl_render_reload, doc));
	free(render(ctl_render_config_check, doc));
	free(render(ctl_render_blades, doc));
	free(render(ctl_render_sensors, doc));
	free(render(ctl_render_sel, doc));
	free(render(ctl_render_events, doc));
	free(render(ctl_render_fence, doc));
	json_object_put(doc);
	doc = json_tokener_parse("{\"blades\": [7, {\"slot\": \"x\"}], \"sensors\": [null], "
	                         "\"records\": [{\"detail\": 3}], \"events\": [{\"detail\": "
	                         "[1]}], \"shelf_manager\": 4}");
	free(render(ctl_render_blades, doc));
	free(render(ctl_render_sensors, doc));
	free(render(ctl_render_sel, doc));
	free(render(ctl_render_events, doc));
	json_object_put(doc);
}
END_TEST

START_TEST(test_render_hardware)
{
	json_object *doc = json_tokener_parse(
	        "{\"shelf_manager\": {\"enabled\": true, \"connected\": true, \"address\": "
	        "\"10.0.0.2\", \"port\": 623, \"picmg\": \"2.2\", \"address_table_entries\": 2, "
	        "\"switchovers\": 1},"
	        "\"blades\": [{\"slot\": 1, \"ipmc\": \"0x82\", \"host\": \"b1\", \"local\": true, "
	        "\"mstate\": \"M4\", \"health\": \"critical\", \"ipmc_state\": \"ONLINE\", "
	        "\"sensors\": 7, \"health_detail\": \"CPU Temp upper-critical\", \"fencing\": "
	        "\"none\"}, {\"slot\": 2, \"ipmc\": \"0x84\", \"host\": \"b2\", \"mstate\": "
	        "\"M6\", \"health\": \"changing\", \"ipmc_state\": \"ONLINE\", \"sensors\": 7, "
	        "\"fencing\": \"fence\", \"last_fence\": \"fence ok after 310 ms: M1 confirmed\"}]}");
	char *text = render(ctl_render_blades, doc);

	ck_assert_ptr_nonnull(strstr(text,
	                             "shelf manager  10.0.0.2:623, PICMG 2.2, 2 address-table "
	                             "entries, 1 switchovers"));
	ck_assert_ptr_nonnull(strstr(text, "1     0x82  b1 (this host)  M4            critical  "
	                                   "ONLINE     7        CPU Temp upper-critical"));
	ck_assert_ptr_nonnull(strstr(text, "M6 (fencing)"));
	ck_assert_ptr_nonnull(strstr(text, "blade 2: last fence ok after 310 ms"));
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse("{\"blade\": 2, \"action\": \"fence\", \"ok\": true, "
	                         "\"method\": \"hot-swap\", \"state_before\": \"M4\", "
	                         "\"state_after\": \"M1\", \"elapsed_ms\": 312.4, \"commands\": 9, "
	                         "\"message\": \"M1 confirmed by the hot-swap sensor\"}");
	text = render(ctl_render_fence, doc);
	ck_assert_str_eq(text, "blade 2 fenced in 312 ms (hot-swap, M4 -> M1, 9 IPMI requests)\n"
	                       "  M1 confirmed by the hot-swap sensor\n");
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse(
	        "{\"records\": [{\"blade\": 1, \"entity\": \"Memory ECC\", "
	        "\"age_s\": 2, \"detail\": {\"record\": \"0x0007\", \"sensor_type\": "
	        "\"memory\", \"meaning\": \"uncorrectable-ecc\", \"dir\": "
	        "\"assert\"}}]}");
	text = render(ctl_render_sel, doc);
	ck_assert_ptr_nonnull(strstr(text, "2s   1      0x0007  Memory ECC  memory  "
	                                   "uncorrectable-ecc  assert"));
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse("{\"events\": [{\"id\": 4, \"age_s\": 0.5, \"source\": \"shelf\", "
	                         "\"kind\": \"hotswap\", \"blade\": 0, \"entity\": \"payload\", "
	                         "\"detail\": {\"from\": \"M4\", \"to\": \"M6\"}}]}");
	text = render(ctl_render_events, doc);
	ck_assert_ptr_nonnull(
	        strstr(text, "4   500ms  shelf   hotswap  shelf  payload  from=M4 to=M6"));
	free(text);
	json_object_put(doc);
}
END_TEST

START_TEST(test_table)
{
	static const char *const h[] = {"A", "LONGER"};
	const char *r1[] = {"wide-value", NULL};
	const char *r2[] = {"x", "y"};
	struct ctl_table t;
	char *text = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&text, &size);

	ctl_table_init(&t, 2, h);
	ck_assert_int_eq(ctl_table_add(&t, r1), 0);
	ck_assert_int_eq(ctl_table_add(&t, r2), 0);
	ctl_table_print(&t, f);
	fclose(f);
	ck_assert_str_eq(text, "A           LONGER\n"
	                       "wide-value  -\n"
	                       "x           y\n");
	free(text);
	ctl_table_free(&t);
}
END_TEST

START_TEST(test_age)
{
	char buf[32];

	ctl_format_age(-1, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0ms");
	ctl_format_age(0.25, buf, sizeof(buf));
	ck_assert_str_eq(buf, "250ms");
	ctl_format_age(59, buf, sizeof(buf));
	ck_assert_str_eq(buf, "59s");
	ctl_format_age(312, buf, sizeof(buf));
	ck_assert_str_eq(buf, "5m 12s");
	ctl_format_age(7300, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2h 1m");
	ctl_format_age(90000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1d 1h");
}
END_TEST

START_TEST(test_render_status)
{
	json_object *doc = json_tokener_parse(
	        "{\"daemon\": {\"version\": \"0.1.0\", \"pid\": 42, \"uptime_s\": 75.5, "
	        "\"role\": \"blade\", \"local_blade\": 1, \"config\": \"/etc/x.conf\", "
	        "\"config_generation\": 3, \"config_age_s\": 2, \"events\": 9, "
	        "\"last_reload\": {\"ok\": false, \"age_s\": 1, \"errors\": [\"/etc/x.conf:4: bad\"], "
	        "\"warnings\": []}},"
	        "\"shelf\": {\"name\": \"s1\", \"cipher_suite\": 3, \"managers\": "
	        "[{\"address\": \"127.0.0.1\", \"port\": 623, \"state\": \"unknown\"}]},"
	        "\"blades\": [{\"slot\": 1, \"ipmc\": \"0x82\", \"host\": \"b1\", \"partner\": 2, "
	        "\"local\": true, \"mstate\": \"M4\", \"state\": \"ok\"}, {\"slot\": 2, \"ipmc\": \"0x84\", "
	        "\"host\": \"b2\", \"partner\": 1, \"local\": false, \"state\": \"unknown\"}],"
	        "\"pairs\": [{\"blades\": [1, 2], \"derived\": true, \"state\": \"unknown\"}],"
	        "\"vms\": [{\"name\": \"web\", \"domain\": \"web\", \"blade\": 1, "
	        "\"protection\": \"ft\", \"state\": \"unknown\"}],"
	        "\"modules\": [{\"name\": \"ipc\", \"state\": \"running\", \"detail\": \"1 client\"}]}");
	char *text;

	ck_assert_ptr_nonnull(doc);
	text = render(ctl_render_status, doc);
	ck_assert_ptr_nonnull(
	        strstr(text, "atca-ftd 0.1.0, pid 42, up 1m 15s, role blade (blade 1)"));
	ck_assert_ptr_nonnull(strstr(text, "REJECTED (old configuration kept)"));
	ck_assert_ptr_nonnull(strstr(text, "/etc/x.conf:4: bad"));
	ck_assert_ptr_nonnull(strstr(text, "manager 127.0.0.1:623 (unknown)"));
	ck_assert_ptr_nonnull(strstr(text, "1     0x82  b1 (this host)  2        M4       ok"));
	ck_assert_ptr_nonnull(strstr(text, "1+2     slot order"));
	ck_assert_ptr_nonnull(strstr(text, "web  web     1     ft"));
	ck_assert_ptr_nonnull(strstr(text, "ipc     running  1 client"));
	free(text);
	json_object_put(doc);
}
END_TEST

/* Every recovery renderer on documents that are empty, of the wrong shape or
 * full of mistyped fields: they print fallbacks and never crash. */
START_TEST(test_render_recovery_bad_documents)
{
	static void (*const fns[])(json_object *, FILE *) = {
	        ctl_render_pairs, ctl_render_vms,      ctl_render_faults,
	        ctl_render_plans, ctl_render_failover, ctl_render_maintenance,
	};
	static const char *const docs[] = {
	        "{}",
	        "[]",
	        "{\"pairs\": 3, \"cluster\": [], \"vms\": {}, \"open\": \"x\", \"history\": 1, "
	        "\"active\": {}, \"recent\": null, \"remote\": 7, \"mode\": 5, \"quorate\": \"yes\", "
	        "\"plan\": \"x\", \"target\": 4, \"maintenance\": \"on\", \"error\": 5}",
	        "{\"pairs\": [7, null, [], {\"a\": \"x\", \"b\": null, \"name\": 1, \"protected\": "
	        "\"yes\", \"runs_all\": \"1\", \"a_member\": 0, \"b_maintenance\": null}], "
	        "\"cluster\": {\"connected\": 1, \"nodes\": [\"x\", null, {}], \"daemons\": 4}, "
	        "\"vms\": [null, 3, {\"running_on\": \"2\", \"last_blade\": [], \"restarts_recent\": "
	        "\"x\", \"home\": {}}], "
	        "\"open\": [null, {\"id\": \"x\", \"causes\": {}, \"entity\": 3, \"age_s\": \"1\"}], "
	        "\"history\": [3, {\"causes\": [\"a\", 1.5, null], \"report_age_s\": null}], "
	        "\"active\": [1, {\"steps\": 3}, {\"steps\": [null, 5, {\"ms\": \"x\", \"vm\": 3, "
	        "\"blade\": \"2\", \"result\": 4, \"why\": []}], \"step\": 9, \"n_steps\": 2, "
	        "\"fault\": \"x\"}], \"recent\": [[]], \"remote\": [null, {\"age_ms\": {}}]}",
	};

	for (size_t d = 0; d < sizeof(docs) / sizeof(docs[0]); d++) {
		json_object *doc = json_tokener_parse(docs[d]);

		ck_assert_ptr_nonnull(doc);
		for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
			free(render(fns[i], doc));
		json_object_put(doc);
	}
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++)
		free(render(fns[i], NULL));
}
END_TEST

START_TEST(test_render_recovery_fallbacks)
{
	json_object *doc = json_tokener_parse("{}");
	char *text;

	text = render(ctl_render_pairs, doc);
	ck_assert_str_eq(text, "cluster  unknown\nno pairs\n");
	free(text);
	text = render(ctl_render_vms, doc);
	ck_assert_str_eq(text, "no VMs configured\n");
	free(text);
	text = render(ctl_render_faults, doc);
	ck_assert_str_eq(text, "open faults: none\n\nfault reports: none yet\n");
	free(text);
	text = render(ctl_render_plans, doc);
	ck_assert_str_eq(text, "recovery mode ?, NOT QUORATE\n\nplans in progress: none\n\n"
	                       "recent plans, newest first: none\n\nplans of other blades: none\n");
	free(text);
	text = render(ctl_render_failover, doc);
	ck_assert_str_eq(text, "switchover of ?: nothing to do\n");
	free(text);
	text = render(ctl_render_maintenance, doc);
	ck_assert_str_eq(text, "blade ?: maintenance state unknown\n");
	free(text);
	json_object_put(doc);

	/* mistyped fields read as missing: "-" in the tables */
	doc = json_tokener_parse(
	        "{\"cluster\": {\"connected\": true, \"quorate\": 1, \"nodes\": [\"x\", 2]}, "
	        "\"pairs\": [{\"name\": 5, \"a\": \"1\", \"b\": 2, \"protected\": \"yes\", "
	        "\"b_member\": false}], "
	        "\"vms\": [{\"name\": \"web\", \"running_on\": \"2\", \"restarts_recent\": \"x\"}], "
	        "\"open\": [{\"id\": \"12\", \"causes\": [\"a\", 7], \"age_s\": \"1\"}]}");
	text = render(ctl_render_pairs, doc);
	ck_assert_str_eq(text,
	                 "cluster  NOT QUORATE, nodes 2, daemons none\n"
	                 "PAIR  STATE  PROTECTED  RUNS-ALL  BLADE-A  BLADE-B     ORIGIN\n"
	                 "-     -      -          -         -        2 (absent)  configured\n");
	free(text);
	text = render(ctl_render_vms, doc);
	ck_assert_str_eq(text, "VM   DOMAIN  PROTECTION  HOME  RUNNING-ON  STATE  RESTARTS\n"
	                       "web  -       -           -     -           -      -\n");
	free(text);
	text = render(ctl_render_faults, doc);
	ck_assert_ptr_nonnull(
	        strstr(text, "\n-   -    -         -      -       -     -         7\n"));
	free(text);
	json_object_put(doc);

	/* a cause list too long for its column ends in ",...", not in a cut id */
	doc = json_tokener_parse("{\"open\": [{\"id\": 1, \"causes\": [1000000001, 1000000002, "
	                         "1000000003, 1000000004, 1000000005, 1000000006, 1000000007, "
	                         "1000000008, 1000000009, 1000000010, 1000000011, 1000000012, "
	                         "1000000013, 1000000014, 1000000015, 1000000016]}]}");
	text = render(ctl_render_faults, doc);
	ck_assert_ptr_nonnull(strstr(text, " 1000000001,1000000002,"));
	ck_assert_ptr_nonnull(strstr(text, ",1000000014,...\n"));
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse("{\"active\": [{\"steps\": [{\"ms\": \"x\", \"vm\": 3, "
	                         "\"blade\": \"2\", \"result\": 4}]}], \"remote\": [{}]}");
	text = render(ctl_render_plans, doc);
	ck_assert_ptr_nonnull(strstr(text,
	                             "plan - ?, step ?/?, - elapsed, started - ago (fault ?, "
	                             "?): ?\n"
	                             "   1. -        -            -                          - "
	                             " -\n"));
	ck_assert_ptr_nonnull(strstr(text, "\n-      -     -      ?/?   -      -\n"));
	free(text);
	json_object_put(doc);
}
END_TEST

START_TEST(test_render_pairs_vms)
{
	json_object *doc = json_tokener_parse(
	        "{\"pairs\": [{\"name\": \"1+2\", \"a\": 1, \"b\": 2, \"state\": \"PROTECTED\", "
	        "\"protected\": true, \"runs_all\": 0, \"derived\": true, \"a_member\": true, "
	        "\"b_member\": true, \"a_maintenance\": false, \"b_maintenance\": false}, "
	        "{\"name\": \"3+4\", \"a\": 3, \"b\": 4, \"state\": \"MAINT_B\", \"protected\": "
	        "false, \"runs_all\": 3, \"derived\": false, \"a_member\": true, \"b_member\": "
	        "false, \"a_maintenance\": false, \"b_maintenance\": true}], "
	        "\"cluster\": {\"connected\": true, \"quorate\": true, \"nodes\": [1, 2, 3], "
	        "\"daemons\": [1, 2]}}");
	char *text = render(ctl_render_pairs, doc);

	ck_assert_str_eq(
	        text,
	        "cluster  quorate, nodes 1,2,3, daemons 1,2\n"
	        "PAIR  STATE      PROTECTED  RUNS-ALL  BLADE-A  BLADE-B                  ORIGIN\n"
	        "1+2   PROTECTED  yes        -         1        2                        slot order\n"
	        "3+4   MAINT_B    no         3         3        4 (absent, maintenance)  configured\n");
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse("{\"pairs\": [], \"cluster\": {\"connected\": false, \"quorate\": "
	                         "false, \"nodes\": [], \"daemons\": []}}");
	text = render(ctl_render_pairs, doc);
	ck_assert_str_eq(text, "cluster  NOT CONNECTED, nodes none, daemons none\nno pairs\n");
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse(
	        "{\"vms\": [{\"name\": \"web\", \"domain\": \"web-prod\", \"home\": 1, "
	        "\"protection\": \"restart\", \"running_on\": 2, \"last_blade\": 2, \"state\": "
	        "\"running\", \"restarts_recent\": 1, \"max_restarts\": 3}, {\"name\": \"db\", "
	        "\"domain\": \"db\", \"home\": 2, \"protection\": \"ft\", \"running_on\": null, "
	        "\"last_blade\": 2, \"state\": \"shutoff\", \"restarts_recent\": 0, "
	        "\"max_restarts\": 3}]}");
	text = render(ctl_render_vms, doc);
	ck_assert_str_eq(text, "VM   DOMAIN    PROTECTION  HOME  RUNNING-ON  STATE    RESTARTS\n"
	                       "web  web-prod  restart     1     2           running  1/3\n"
	                       "db   db        ft          2     - (last 2)  shutoff  0/3\n");
	free(text);
	json_object_put(doc);
}
END_TEST

START_TEST(test_render_faults)
{
	json_object *doc = json_tokener_parse(
	        "{\"open\": [{\"id\": 12, \"rule\": \"cpu-overtemp\", \"layer\": \"hardware\", "
	        "\"severity\": \"fatal\", \"scope\": \"blade\", \"target\": \"blade 2\", \"blade\": "
	        "2, \"vm\": null, \"entity\": \"CPU Temp\", \"recovery\": \"fence-and-failover\", "
	        "\"age_s\": 75.5, \"open\": true, \"causes\": [40, 41]}], "
	        "\"history\": [{\"id\": 11, \"rule\": \"vm-crash\", \"layer\": \"vm\", \"severity\": "
	        "\"degraded\", \"scope\": \"vm\", \"target\": \"vm web\", \"blade\": 1, \"vm\": "
	        "\"web\", \"entity\": null, \"recovery\": \"restart-vm\", \"age_s\": 300, \"open\": "
	        "false, \"causes\": [30], \"op\": \"clear\", \"report_age_s\": 1.2}, "
	        "{\"id\": 12, \"rule\": \"cpu-overtemp\", \"layer\": \"hardware\", \"severity\": "
	        "\"fatal\", \"scope\": \"blade\", \"target\": \"blade 2\", \"blade\": 2, \"vm\": null, "
	        "\"entity\": \"CPU Temp\", \"recovery\": \"fence-and-failover\", \"age_s\": 75.5, "
	        "\"open\": true, \"causes\": [40], \"op\": \"raise\", \"report_age_s\": 75.5}]}");
	char *text = render(ctl_render_faults, doc);

	ck_assert_str_eq(
	        text,
	        "open faults:\n"
	        "ID  AGE     SEVERITY  LAYER     TARGET             RULE          RECOVERY         "
	        "   EVENTS\n"
	        "12  1m 15s  fatal     hardware  blade 2: CPU Temp  cpu-overtemp  fence-and-failover"
	        "  40,41\n"
	        "\n"
	        "recent fault reports, oldest first:\n"
	        "AGO     OP     ID  SEVERITY  LAYER     TARGET             RULE          RECOVERY\n"
	        "1s      clear  11  degraded  vm        vm web             vm-crash      restart-vm\n"
	        "1m 15s  raise  12  fatal     hardware  blade 2: CPU Temp  cpu-overtemp  "
	        "fence-and-failover\n");
	free(text);
	json_object_put(doc);
}
END_TEST

START_TEST(test_render_plans)
{
	json_object *doc = json_tokener_parse(
	        "{\"active\": [{\"id\": 7, \"fault\": 12, \"class\": \"fence-and-failover\", "
	        "\"summary\": \"fence blade 2, web to blade 1\", \"state\": \"running\", \"step\": 1, "
	        "\"n_steps\": 3, \"age_ms\": 5200, \"elapsed_ms\": 5200, \"steps\": ["
	        "{\"kind\": \"fence\", \"blade\": 2, \"vm\": null, \"state\": \"done\", \"ms\": 310.4, "
	        "\"why\": \"blade 2 must be off\", \"result\": \"M1 confirmed\"}, "
	        "{\"kind\": \"restart-vm\", \"blade\": 1, \"vm\": \"web\", \"state\": \"started\", "
	        "\"ms\": null, \"why\": \"web runs on blade 1\", \"result\": \"\"}, "
	        "{\"kind\": \"notify\", \"blade\": 0, \"vm\": null, \"state\": \"pending\", \"ms\": "
	        "null, \"why\": \"\", \"result\": \"\"}]}], "
	        "\"recent\": [{\"id\": 6, \"fault\": 0, \"class\": \"migrate-away\", \"summary\": "
	        "\"switch db over to blade 2\", \"state\": \"done\", \"step\": 1, \"n_steps\": 1, "
	        "\"age_ms\": 600000, \"elapsed_ms\": 812, \"steps\": [{\"kind\": \"migrate\", "
	        "\"blade\": 2, \"vm\": \"db\", \"state\": \"done\", \"ms\": 812, \"why\": "
	        "\"operator switchover\", \"result\": \"migrated\"}]}], "
	        "\"remote\": [{\"blade\": 3, \"id\": 2, \"summary\": \"evacuate blade 4: 1 VMs to "
	        "blade 3\", \"state\": \"running\", \"step\": 0, \"n_steps\": 2, \"age_ms\": 1500}], "
	        "\"mode\": \"act\", \"quorate\": true}");
	char *text = render(ctl_render_plans, doc);

	ck_assert_str_eq(
	        text, "recovery mode act, quorate\n"
	              "\n"
	              "plans in progress:\n"
	              "plan 7 running, step 2/3, 5s elapsed, started 5s ago (fault 12, "
	              "fence-and-failover): fence blade 2, web to blade 1\n"
	              "   1. done     fence        blade 2               310 ms  M1 confirmed\n"
	              "   2. started  restart-vm   web on blade 1             -  (web runs on "
	              "blade 1)\n"
	              "   3. pending  notify       -                          -  -\n"
	              "\n"
	              "recent plans, newest first:\n"
	              "plan 6 done, step 1/1, 812ms elapsed, started 10m 0s ago (operator, "
	              "migrate-away): switch db over to blade 2\n"
	              "   1. done     migrate      db on blade 2         812 ms  migrated\n"
	              "\n"
	              "plans of other blades:\n"
	              "BLADE  PLAN  STATE    STEP  HEARD   SUMMARY\n"
	              "3      2     running  1/2   1s ago  evacuate blade 4: 1 VMs to blade 3\n");
	free(text);
	json_object_put(doc);

	doc = json_tokener_parse("{\"active\": [], \"recent\": [], \"remote\": [], \"mode\": "
	                         "\"dry-run\", \"quorate\": false}");
	text = render(ctl_render_plans, doc);
	ck_assert_ptr_nonnull(strstr(text, "recovery mode dry-run (plans are logged, not carried "
	                                   "out), NOT QUORATE\n"));
	free(text);
	json_object_put(doc);
}
END_TEST

START_TEST(test_render_operator_actions)
{
	static const struct {
		void (*fn)(json_object *, FILE *);
		const char *doc, *text;
	} cases[] = {
	        {ctl_render_failover, "{\"plan\": 9, \"target\": \"web\"}",
	         "switchover of web started: plan 9 (follow it with 'atca-ftctl plans')\n"},
	        {ctl_render_failover, "{\"plan\": null, \"target\": \"3\"}",
	         "switchover of 3: nothing to do\n"},
	        {ctl_render_failover,
	         "{\"error\": \"'x' is neither a configured VM nor a blade\", \"code\": -2}",
	         "switchover failed: 'x' is neither a configured VM nor a blade\n"},
	        {ctl_render_maintenance, "{\"plan\": 10, \"target\": \"2\", \"maintenance\": true}",
	         "blade 2 enters maintenance: evacuation plan 10 started (follow it with "
	         "'atca-ftctl plans')\n"},
	        {ctl_render_maintenance,
	         "{\"plan\": null, \"target\": \"2\", \"maintenance\": true}",
	         "blade 2 enters maintenance: it runs no VM, nothing to evacuate\n"},
	        {ctl_render_maintenance,
	         "{\"plan\": null, \"target\": \"b2\", \"maintenance\": false}",
	         "blade b2 leaves maintenance: it may run VMs again (they move back only with "
	         "'atca-ftctl failover')\n"},
	        {ctl_render_maintenance,
	         "{\"error\": \"this daemon carries no plan out\", \"code\": -1}",
	         "maintenance failed: this daemon carries no plan out\n"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_object *doc = json_tokener_parse(cases[i].doc);
		char *text = render(cases[i].fn, doc);

		ck_assert_str_eq(text, cases[i].text);
		free(text);
		json_object_put(doc);
	}
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");

	add_tcase(s, test_accessors_tolerate_bad_documents, 10);
	add_tcase(s, test_table, 10);
	add_tcase(s, test_age, 10);
	add_tcase(s, test_render_status, 10);
	add_tcase(s, test_render_hardware, 10);
	add_tcase(s, test_render_recovery_bad_documents, 10);
	add_tcase(s, test_render_recovery_fallbacks, 10);
	add_tcase(s, test_render_pairs_vms, 10);
	add_tcase(s, test_render_faults, 10);
	add_tcase(s, test_render_plans, 10);
	add_tcase(s, test_render_operator_actions, 10);
	return s;
}

int main(void)
{
	return run_suite(cli_suite());
}
