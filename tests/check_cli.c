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

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");

	add_tcase(s, test_accessors_tolerate_bad_documents, 10);
	add_tcase(s, test_table, 10);
	add_tcase(s, test_age, 10);
	add_tcase(s, test_render_status, 10);
	add_tcase(s, test_render_hardware, 10);
	return s;
}

int main(void)
{
	return run_suite(cli_suite());
}
