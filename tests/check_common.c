/*
 * src/common: helpers, events, faults and logging. Invalid inputs first.
 */
#include "config.h"

#include "check_util.h"

#define AF_LOG_SS AF_SS_MAIN
#include "af_common.h"
#include "af_util.h"

#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>

/* ---- number/duration/size parsing: rejects ----------------------------- */

START_TEST(test_parse_rejects)
{
	static const char *const bad_u64[] = {
	        "",    " 1",  "1 ", "-1", "+1", "0x", "0xg", "1a", "18446744073709551616",
	        "1.5", "0x1 "};
	static const char *const bad_dur[] = {"",     "ms",     "1 parsec", "1.5s",
	                                      "-1s",  "0x10ms", "1sec",     "99999999999999999999h",
	                                      "1 s s"};
	static const char *const bad_size[] = {"", "1TB", "KiB", "-1K", "1 Ki", "0x1K"};
	static const char *const bad_bool[] = {"", "2", "yess", "Y", "enable"};
	uint64_t v;
	bool b;

	for (size_t i = 0; i < AF_ARRAY_SIZE(bad_u64); i++)
		ck_assert_msg(af_parse_u64(bad_u64[i], 0, UINT64_MAX, &v) < 0, "'%s'", bad_u64[i]);
	ck_assert_int_eq(af_parse_u64("17", 1, 16, &v), -ERANGE);
	ck_assert_int_eq(af_parse_u64("0", 1, 16, &v), -ERANGE);
	ck_assert_int_eq(af_parse_u64(NULL, 0, 1, &v), -EINVAL);
	for (size_t i = 0; i < AF_ARRAY_SIZE(bad_dur); i++)
		ck_assert_msg(af_parse_duration_ms(bad_dur[i], &v) < 0, "'%s'", bad_dur[i]);
	for (size_t i = 0; i < AF_ARRAY_SIZE(bad_size); i++)
		ck_assert_msg(af_parse_size(bad_size[i], &v) < 0, "'%s'", bad_size[i]);
	for (size_t i = 0; i < AF_ARRAY_SIZE(bad_bool); i++)
		ck_assert_msg(af_parse_bool(bad_bool[i], &b) < 0, "'%s'", bad_bool[i]);
}
END_TEST

START_TEST(test_parse_accepts)
{
	uint64_t v;
	bool b;
	char buf[32];

	ck_assert_int_eq(af_parse_u64("0x82", 0, 255, &v), 0);
	ck_assert_uint_eq(v, 0x82);
	ck_assert_int_eq(af_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(af_parse_duration_ms("250", &v), 0);
	ck_assert_uint_eq(v, 250);
	ck_assert_int_eq(af_parse_duration_ms("2s", &v), 0);
	ck_assert_uint_eq(v, 2000);
	ck_assert_int_eq(af_parse_duration_ms("10 min", &v), 0);
	ck_assert_uint_eq(v, 600000);
	ck_assert_int_eq(af_parse_size("64KiB", &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(af_parse_bool("On", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(af_parse_bool("false", &b), 0);
	ck_assert(!b);

	/* formatting reads back */
	for (uint64_t ms = 0; ms < 200000; ms += 1234) {
		af_format_duration_ms(ms, buf, sizeof(buf));
		ck_assert_int_eq(af_parse_duration_ms(buf, &v), 0);
		ck_assert_uint_eq(v, ms);
	}
	af_format_duration_ms(3600000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1h");
	af_format_size(1024 * 1024, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1MiB");
	ck_assert_int_eq(af_parse_size(buf, &v), 0);
	ck_assert_uint_eq(v, 1024 * 1024);
}
END_TEST

START_TEST(test_names)
{
	ck_assert(!af_valid_name("", 10));
	ck_assert(!af_valid_name("-x", 10));
	ck_assert(!af_valid_name("a b", 10));
	ck_assert(!af_valid_name("a/b", 10));
	ck_assert(!af_valid_name("abcdefghijk", 10));
	ck_assert(af_valid_name("web-1.db_2", 10));
	ck_assert_int_eq(af_enum_parse(af_layer_names, AF_LAYER_COUNT, "firmware"), -EINVAL);
	ck_assert_int_eq(af_enum_parse(af_layer_names, AF_LAYER_COUNT, "vm"), AF_LAYER_VM);
	ck_assert_ptr_null(af_enum_name(af_layer_names, AF_LAYER_COUNT, -1));
	ck_assert_ptr_null(af_enum_name(af_layer_names, AF_LAYER_COUNT, AF_LAYER_COUNT));

	char small[4];
	ck_assert_uint_eq(af_strlcpy(small, "abcdef", sizeof(small)), 6);
	ck_assert_str_eq(small, "abc");
}
END_TEST

/* ---- events ------------------------------------------------------------- */

START_TEST(test_event_parse_rejects)
{
	static const char *const bad[] = {
	        "",                               /* no src/kind */
	        "src=ipmi",                       /* no kind */
	        "kind=hotswap",                   /* no src */
	        "src=bogus kind=hotswap",         /* unknown source */
	        "src=ipmi kind=bogus",            /* unknown kind */
	        "src=ipmi kind=hotswap blade=17", /* blade range */
	        "src=ipmi kind=hotswap blade=-1",
	        "src=ipmi kind=hotswap t=abc",          /* bad time */
	        "src=ipmi kind=hotswap t=1.0000000001", /* > ns precision */
	        "src=ipmi kind=hotswap t=.5",
	        "src=ipmi kind=hotswap noequals",       /* syntax */
	        "src=ipmi kind=hotswap state=",         /* empty value */
	        "src=ipmi kind=hotswap state=\"open",   /* unterminated quote */
	        "src=ipmi kind=hotswap state=\"a\"b",   /* garbage after quote */
	        "src=ipmi kind=hotswap state=\"a\\q\"", /* bad escape */
	        "src=ipmi kind=hotswap State=M4",       /* key charset */
	        "src=ipmi kind=hotswap 1st=x",
	        "src=ipmi src=shelf kind=hotswap", /* duplicate reserved */
	        "src=ipmi kind=hotswap a=1 a=2",   /* duplicate detail */
	        "src=ipmi kind=hotswap id=0",      /* ids start at 1 */
	        "src=ipmi kind=hotswap v=a\"b",    /* quote inside bare value */
	        "src=ipmi kind=hotswap k1=1 k2=1 k3=1 k4=1 k5=1 k6=1 k7=1 k8=1 k9=1 k10=1 "
	        "k11=1 k12=1 k13=1 k14=1 k15=1 k16=1 k17=1", /* too many details */
	        "src=ipmi kind=hotswap v=0123456789012345678901234567890123456789012345678901"
	        "234567890123", /* 64 chars: too long */
	};
	struct af_event ev;
	char err[128];

	for (size_t i = 0; i < AF_ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		ck_assert_msg(af_event_parse(bad[i], &ev, err, sizeof(err)) == -EINVAL,
		              "accepted: %s", bad[i]);
		ck_assert_msg(err[0] != '\0', "no message for: %s", bad[i]);
	}
}
END_TEST

START_TEST(test_event_set_rejects)
{
	struct af_event ev;
	char big[100];

	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 3, "CPU Temp");
	ck_assert_int_eq(af_event_set(&ev, "t", "1"), -EINVAL); /* reserved */
	ck_assert_int_eq(af_event_set(&ev, "Bad", "1"), -EINVAL);
	ck_assert_int_eq(af_event_set(&ev, "", "1"), -EINVAL);
	ck_assert_int_eq(af_event_set(&ev, "x", "a\nb"), -EINVAL);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(af_event_set(&ev, "x", "%s", big), -E2BIG);
	for (int i = 0; i < AF_EV_DETAIL_MAX; i++)
		ck_assert_int_eq(af_event_set(&ev, "k", "%d", i), 0); /* replaces */
	ck_assert_uint_eq(ev.n_detail, 1);
	{
		char last[8];

		snprintf(last, sizeof(last), "%d", AF_EV_DETAIL_MAX - 1);
		ck_assert_str_eq(af_event_get(&ev, "k"), last);
	}
	for (int i = 1; i < AF_EV_DETAIL_MAX; i++) {
		char key[8];
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(af_event_set(&ev, key, "v"), 0);
	}
	ck_assert_int_eq(af_event_set(&ev, "full", "v"), -ENOSPC);
	ck_assert_ptr_null(af_event_get(&ev, "missing"));
}
END_TEST

START_TEST(test_event_roundtrip)
{
	struct af_event ev, back;
	char line[AF_EV_TEXT_MAX], line2[AF_EV_TEXT_MAX], err[128];
	char tiny[16];

	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 3, "CPU Temp");
	ev.ts_ns = 12500000001ULL;
	ev.id = 42;
	ck_assert_int_eq(af_event_set(&ev, "state", "upper-critical"), 0);
	ck_assert_int_eq(af_event_set(&ev, "reading", "%.1f", 93.5), 0);
	ck_assert_int_eq(af_event_set(&ev, "note", "a \"quoted\" \\ value=x"), 0);
	ck_assert_int_gt(af_event_format(&ev, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "t=12.500000001 id=42 src=ipmi blade=3 kind=sensor.threshold "
	                       "entity=\"CPU Temp\" state=upper-critical reading=93.5 "
	                       "note=\"a \\\"quoted\\\" \\\\ value=x\"");
	ck_assert_int_eq(af_event_parse(line, &back, err, sizeof(err)), 0);
	ck_assert_int_gt(af_event_format(&back, line2, sizeof(line2)), 0);
	ck_assert_str_eq(line, line2);
	ck_assert_uint_eq(back.ts_ns, ev.ts_ns);
	ck_assert_str_eq(af_event_get(&back, "note"), "a \"quoted\" \\ value=x");
	ck_assert_int_eq(af_event_format(&ev, tiny, sizeof(tiny)), -ENOSPC);

	/* a hand-written golden line: defaults, comments, short time */
	ck_assert_int_eq(af_event_parse("t=1.5 src=cluster kind=node.leave blade=2 # lost", &back,
	                                err, sizeof(err)),
	                 0);
	ck_assert_uint_eq(back.ts_ns, 1500000000ULL);
	ck_assert_int_eq(back.kind, AF_EV_NODE_LEAVE);
	ck_assert_int_eq(back.blade, 2);
	ck_assert_uint_eq(back.n_detail, 0);
}
END_TEST

/* Review finding: the longest text form must fit AF_EV_TEXT_MAX. */
START_TEST(test_event_worst_case_fits)
{
	struct af_event ev, back;
	char text[AF_EV_TEXT_MAX], val[AF_KV_VAL_MAX], err[128];
	int n;

	af_event_init(&ev, AF_SRC_HYPERVISOR, AF_EV_HYPERVISOR_DOWN, 16, NULL);
	ev.id = UINT64_MAX;
	ev.ts_ns = UINT64_MAX / AF_NS_PER_S * AF_NS_PER_S - 1;
	memset(ev.entity, '"', sizeof(ev.entity) - 1);
	memset(val, '"', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	for (int i = 0; i < AF_EV_DETAIL_MAX; i++) {
		char key[AF_KV_KEY_MAX];

		memset(key, 'k', sizeof(key) - 1);
		key[sizeof(key) - 1] = '\0';
		key[sizeof(key) - 2] = (char)('a' + i);
		ck_assert_int_eq(af_event_set(&ev, key, "%s", val), 0);
	}
	n = af_event_format(&ev, text, sizeof(text));
	ck_assert_msg(n > 0, "worst-case event does not fit AF_EV_TEXT_MAX");
	ck_assert_int_eq(af_event_parse(text, &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.entity, ev.entity);
}
END_TEST

START_TEST(test_event_names_complete)
{
	for (int i = 0; i < AF_SRC_COUNT; i++)
		ck_assert_ptr_nonnull(af_ev_source_names[i]);
	for (int i = 0; i < AF_EV_KIND_COUNT; i++)
		ck_assert_ptr_nonnull(af_ev_kind_names[i]);
}
END_TEST

/* ---- faults ------------------------------------------------------------- */

START_TEST(test_fault_format)
{
	struct af_fault f = {.id = 7,
	                     .layer = AF_LAYER_HARDWARE,
	                     .severity = AF_SEV_FATAL,
	                     .scope = AF_SCOPE_BLADE,
	                     .blade = 3,
	                     .rclass = AF_RC_FENCE_AND_FAILOVER};
	char buf[256], target[32];

	for (uint64_t i = 1; i <= AF_FAULT_CAUSES_MAX + 2; i++)
		af_fault_add_cause(&f, i);
	ck_assert_uint_eq(f.n_causes, AF_FAULT_CAUSES_MAX);
	ck_assert_uint_eq(f.causes_dropped, 2);
	ck_assert_uint_eq(f.causes[0], 1); /* the first causes are kept */
	/* an id already there is not added again */
	af_fault_add_cause(&f, 5);
	ck_assert_uint_eq(f.causes_dropped, 2);
	{
		struct af_fault g = {.id = 2};

		/* kept sorted whatever the order they come in */
		af_fault_add_cause(&g, 7);
		af_fault_add_cause(&g, 3);
		af_fault_add_cause(&g, 9);
		af_fault_add_cause(&g, 3);
		ck_assert_uint_eq(g.n_causes, 3);
		ck_assert_uint_eq(g.causes[0], 3);
		ck_assert_uint_eq(g.causes[1], 7);
		ck_assert_uint_eq(g.causes[2], 9);
		/* full: an older one still gets in, the newest is only counted */
		for (uint64_t i = 100; i < 100 + AF_FAULT_CAUSES_MAX; i++)
			af_fault_add_cause(&g, i);
		ck_assert_uint_eq(g.n_causes, AF_FAULT_CAUSES_MAX);
		ck_assert_uint_eq(g.causes_dropped, 3);
		af_fault_add_cause(&g, 1);
		ck_assert_uint_eq(g.causes[0], 1);
		ck_assert_uint_eq(g.causes_dropped, 4);
	}
	ck_assert_int_gt(af_fault_target(&f, target, sizeof(target)), 0);
	ck_assert_str_eq(target, "blade 3");
	ck_assert_int_gt(af_fault_format(&f, buf, sizeof(buf)), 0);
	ck_assert_ptr_nonnull(strstr(buf, "layer=hardware severity=fatal target=\"blade 3\" "
	                                  "class=fence-and-failover causes=1,2,"));
	ck_assert_ptr_nonnull(strstr(buf, "(+2)"));
	ck_assert_int_eq(af_fault_format(&f, buf, 20), -ENOSPC);

	f.scope = AF_SCOPE_VM;
	af_strlcpy(f.vm, "web1", sizeof(f.vm));
	af_fault_target(&f, target, sizeof(target));
	ck_assert_str_eq(target, "vm web1");
	ck_assert_int_eq(af_fault_target(&f, target, 4), -ENOSPC);
	ck_assert(AF_SEV_FATAL > AF_SEV_DEGRADED && AF_SEV_DEGRADED > AF_SEV_PREDICTIVE);
}
END_TEST

/* ---- logging ------------------------------------------------------------ */

START_TEST(test_log_levels_and_targets)
{
	static const char *const bad[] = {"", "verbose", "trace", "INFO"};
	char *dir = make_temp_dir();
	char path[256], bb[256];
	struct af_log_settings s;
	char *text;

	for (size_t i = 0; i < AF_ARRAY_SIZE(bad); i++)
		ck_assert_int_lt(af_level_parse(bad[i]), 0);
	ck_assert_int_eq(af_level_parse("warn"), LOG_WARNING);
	ck_assert_int_lt(af_subsys_parse("nosuch"), 0);
	ck_assert_int_lt(af_facility_parse("local8"), 0);
	ck_assert_int_eq(af_facility_parse("local3"), LOG_LOCAL3);

	ck_assert_int_eq(af_log_apply(&s), -EINVAL); /* before init */
	ck_assert_int_eq(af_init("check_common"), 0);
	af_log_settings_default(&s);
	s.to_stderr = false;
	s.to_logfile = true;
	snprintf(path, sizeof(path), "%s/test.log", dir);
	af_strlcpy(s.logfile, path, sizeof(s.logfile));
	s.level = LOG_INFO;
	s.subsys_level[AF_SS_IPMI] = LOG_DEBUG;
	s.subsys_level[AF_SS_SNMP] = LOG_ERR;
	ck_assert_int_eq(af_log_apply(&s), 0);

	af_log(AF_SS_IPMI, LOG_DEBUG, "debug from ipmi %d", 1);
	af_log(AF_SS_FM, LOG_DEBUG, "debug from fm");
	af_log(AF_SS_FM, LOG_INFO, "info from fm");
	af_log(AF_SS_SNMP, LOG_WARNING, "warning from snmp");
	af_log(AF_SS_SNMP, LOG_ERR, "error from snmp");

	/* the blackbox records debug even where the targets do not */
	snprintf(bb, sizeof(bb), "%s/bb", dir);
	ck_assert_int_gt(af_log_blackbox_dump(bb), 0);

	/* a reload with a bad log file keeps the other targets */
	af_strlcpy(s.logfile, "/nonexistent-dir/x.log", sizeof(s.logfile));
	ck_assert_int_lt(af_log_apply(&s), 0);
	af_fini();

	text = slurp(path);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "[ipmi] debug: @"));
	ck_assert_ptr_nonnull(strstr(text, "debug from ipmi 1"));
	ck_assert_ptr_null(strstr(text, "debug from fm"));
	ck_assert_ptr_nonnull(strstr(text, "[fm] info: @"));
	ck_assert_ptr_null(strstr(text, "warning from snmp"));
	ck_assert_ptr_nonnull(strstr(text, "[snmp] error: @"));
	/* the monotonic stamp: @seconds.microseconds */
	{
		const char *at = strstr(text, "@");
		double t;
		ck_assert_ptr_nonnull(at);
		ck_assert_int_eq(sscanf(at, "@%lf ", &t), 1);
		ck_assert(t > 0);
	}
	free(text);
	remove_temp_dir(dir);
}
END_TEST

/* af_fd_usage counts this process's descriptors against RLIMIT_NOFILE, and
 * says "all used" when not even /proc/self/fd can be opened. */
START_TEST(test_fd_usage)
{
	struct rlimit rl, saved;
	unsigned n, limit, base;
	int fds[64], k = 0;

	ck_assert_int_eq(af_fd_usage(NULL, &limit), -EINVAL);
	ck_assert_int_eq(af_fd_usage(&base, &limit), 0);
	ck_assert_uint_gt(base, 2);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	saved = rl;
	ck_assert_uint_eq(limit, rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : rl.rlim_cur);
	fds[k++] = dup(0);
	fds[k++] = dup(0);
	ck_assert_int_eq(af_fd_usage(&n, &limit), 0);
	ck_assert_uint_eq(n, base + 2);
	/* a lower limit, then fill it */
	rl.rlim_cur = base + 10;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	while (k < 64 && (fds[k] = dup(0)) >= 0)
		k++;
	ck_assert_int_eq(errno, EMFILE);
	ck_assert_int_eq(af_fd_usage(&n, &limit), 0);
	ck_assert_uint_eq(limit, base + 10);
	ck_assert_uint_eq(n, limit);
	while (k > 0)
		close(fds[--k]);
	ck_assert_int_eq(af_fd_usage(&n, &limit), 0);
	ck_assert_uint_eq(n, base);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0); /* CK_FORK=no: later tests */
}
END_TEST

/* Every page of a resident allocation is in memory from the start
 * (mincore), whatever its size; a product that overflows is refused. */
START_TEST(test_calloc_resident)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t sizes[] = {1, 4096, 3u << 20}, len;
	unsigned char *p, vec[1024];
	uintptr_t start;

#ifndef __SANITIZE_ADDRESS__ /* ASan aborts on an overflowing calloc() by default */
	ck_assert_ptr_null(af_calloc_resident(SIZE_MAX / 2, 3));
	ck_assert_ptr_null(af_calloc_resident(SIZE_MAX, SIZE_MAX));
#endif
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		p = af_calloc_resident(1, sizes[i]);
		ck_assert_ptr_nonnull(p);
		for (size_t k = 0; k < sizes[i]; k += 997)
			ck_assert_uint_eq(p[k], 0);
		start = (uintptr_t)p & ~(uintptr_t)(page - 1);
		len = (uintptr_t)p + sizes[i] - start;
		ck_assert_uint_le((len + (size_t)page - 1) / (size_t)page, sizeof(vec));
		ck_assert_int_eq(mincore((void *)start, len, vec), 0);
		for (size_t k = 0; k < (len + (size_t)page - 1) / (size_t)page; k++)
			ck_assert_msg(vec[k] & 1, "size %zu: page %zu not resident", sizes[i], k);
		free(p);
	}
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");

	add_tcase(s, test_parse_rejects, 10);
	add_tcase(s, test_parse_accepts, 10);
	add_tcase(s, test_names, 10);
	add_tcase(s, test_event_parse_rejects, 10);
	add_tcase(s, test_event_set_rejects, 10);
	add_tcase(s, test_event_roundtrip, 10);
	add_tcase(s, test_event_worst_case_fits, 10);
	add_tcase(s, test_event_names_complete, 10);
	add_tcase(s, test_fault_format, 10);
	add_tcase(s, test_log_levels_and_targets, 10);
	add_tcase(s, test_fd_usage, 10);
	add_tcase(s, test_calloc_resident, 10);
	return s;
}

int main(void)
{
	return run_suite(common_suite());
}
