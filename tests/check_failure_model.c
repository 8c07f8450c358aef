/*
 * src/failure-model: rules files that must be refused (each with its
 * file:line message, all in one pass), the built-in rules, condition
 * matching, the engine's timers and bounds, rule replacement and two
 * independent instances. The model's behaviour on realistic sequences is
 * pinned by the golden scenarios in tests/scenarios.
 */
#include "config.h"

#include "check_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_common.h"
#include "fm.h"
#include "fm_rules.h"
#include "fm_sim.h"

/* ---- a collector of reports ------------------------------------------------------- */

#define MAX_SEEN 64

struct seen {
	unsigned n, ignored;
	struct {
		enum fm_fault_op op;
		enum fm_why why;
		uint64_t id, merged_into, t;
		char rule[32];
		enum af_layer layer;
		enum af_severity sev;
		enum af_recovery_class rc;
		unsigned n_causes;
		bool membership_only;
	} r[MAX_SEEN];
	char last_ignored[160];
};

static void on_fault(void *opaque, const struct fm_report *r)
{
	struct seen *s = opaque;

	if (s->n == MAX_SEEN)
		return;
	s->r[s->n].op = r->op;
	s->r[s->n].why = r->why;
	s->r[s->n].id = r->fault->id;
	s->r[s->n].merged_into = r->merged_into;
	s->r[s->n].t = r->now_ns / AF_NS_PER_MS;
	s->r[s->n].membership_only = r->fault->membership_only;
	af_strlcpy(s->r[s->n].rule, r->fault->rule, sizeof(s->r[s->n].rule));
	s->r[s->n].layer = r->fault->layer;
	s->r[s->n].sev = r->fault->severity;
	s->r[s->n].rc = r->fault->rclass;
	s->r[s->n].n_causes = r->fault->n_causes;
	s->n++;
}

static void on_ignored(void *opaque, const struct af_event *ev, const char *why)
{
	struct seen *s = opaque;

	(void)ev;
	s->ignored++;
	af_strlcpy(s->last_ignored, why, sizeof(s->last_ignored));
}

static const struct fm_ops ops = {.fault = on_fault, .ignored = on_ignored};

static uint64_t next_id;

static struct af_event mk(uint64_t t_ms, enum af_ev_source src, enum af_ev_kind kind, int blade,
                          const char *entity)
{
	struct af_event ev;

	af_event_init(&ev, src, kind, blade, entity);
	ev.ts_ns = t_ms * AF_NS_PER_MS;
	ev.id = ++next_id;
	return ev;
}

static int feed_hotswap(struct fm *m, uint64_t t, int blade, const char *from, const char *to,
                        const char *cause)
{
	struct af_event ev = mk(t, AF_SRC_SHELF, AF_EV_HOTSWAP, blade, "payload");

	af_event_set(&ev, "from", "%s", from);
	af_event_set(&ev, "to", "%s", to);
	af_event_set(&ev, "cause", "%s", cause);
	return fm_event(m, &ev);
}

/* ---- rules that must be refused ------------------------------------------------------ */

struct errs {
	unsigned n;
	char first[512];
};

static void collect_err(void *opaque, const char *msg)
{
	struct errs *e = opaque;

	if (e->n++ == 0)
		af_strlcpy(e->first, msg, sizeof(e->first));
}

static const struct {
	const char *text, *want;
} bad_rules[] = {
        {"frobnicate x\n", "t.rules:1: 'frobnicate': a statement is raise, clear or set"},
        {"raise x hotswap to=M7 hardware fatal fence-and-failover\n", "t.rules:1: raise NAME KIND"},
        {"raise x hotswap => hardware fatal\n", "t.rules:1: raise NAME KIND"},
        {"raise x nosuch => hardware fatal failover\n", "'nosuch': not an event kind"},
        {"raise x hotswap => firmware fatal failover\n", "'firmware': layer is"},
        {"raise x hotswap => hardware awful failover\n", "'awful': severity is"},
        {"raise x hotswap => hardware fatal pray\n", "'pray': class is"},
        {"raise x/y hotswap => hardware fatal failover\n", "'x/y': a rule name"},
        {"raise x hotswap => hardware fatal failover\nraise x hotswap => vm fatal restart-vm\n",
         "t.rules:2: rule 'x' is already defined at line 1"},
        {"raise x hotswap to => hardware fatal failover\n", "'to': a condition is KEY=VALUE"},
        {"raise x hotswap to= => hardware fatal failover\n", "'to=': no value after '='"},
        {"raise x hotswap To=M7 => hardware fatal failover\n", "'To': not a valid detail key"},
        {"raise x hotswap blade.colour=red => hardware fatal failover\n", "unknown state key"},
        {"raise x hotswap blade.mstate=M9 => hardware fatal failover\n",
         "blade.mstate is never 'M9'"},
        {"raise x hotswap blade.mstate>=4 => hardware fatal failover\n", "compares numbers"},
        {"raise x vm.lifecycle host.vm_failures>=two => hypervisor fatal failover\n",
         "'two' is not a number"},
        {"raise x hotswap to=a|b|c|d|e|f|g|h|i => hardware fatal failover\n",
         "at most 8 alternatives"},
        {"raise x hotswap to=M*7 => hardware fatal failover\n", "'*' only at the end"},
        {"raise x hotswap to=M7| => hardware fatal failover\n", "an empty value"},
        {"raise x hotswap => hardware fatal failover colour=red\n", "unknown option"},
        {"raise x hotswap => hardware fatal failover debounce=3/2\n", "debounce=N/M with"},
        {"raise x hotswap => hardware fatal failover debounce=1/17\n", "debounce=N/M with"},
        {"raise x hotswap => hardware fatal failover hysteresis=0\n", "hysteresis is a count"},
        {"raise x hotswap => hardware fatal failover rate=5\n", "rate=N/DURATION"},
        {"raise x hotswap => hardware fatal failover rate=65/1s\n", "rate=N/DURATION"},
        {"raise x hotswap => hardware degraded failover escalate=1/1s\n", "escalate=N/DURATION"},
        {"raise x hotswap => hardware degraded failover escalate-to=fatal:failover\n",
         "escalate-to= needs escalate"},
        {"raise x hotswap => hardware degraded failover escalate=2/1s escalate-to=bad\n",
         "escalate-to=SEVERITY:CLASS"},
        {"raise x hotswap => hardware fatal failover flap=1s\n", "a fatal fault is never damped"},
        {"raise x hotswap => hardware degraded failover hold=0\n", "a duration from 1ms"},
        {"raise x hotswap => hardware degraded failover hold=2d\n", "a duration from 1ms"},
        {"raise x hotswap => hardware degraded failover level ttl=1s\n", "two different ways"},
        {"raise x hotswap => hardware degraded failover level=1\n", "unknown option"},
        {"raise x hotswap => hardware degraded failover scope=rack\n", "scope is shelf"},
        {"raise x hotswap => vm degraded failover scope=shelf\n", "a vm-layer fault"},
        {"raise x hotswap => hardware degraded failover debounce\n", "option needs a value"},
        {"clear nosuch hotswap to=M4\n", "clear: no rule is named 'nosuch'"},
        {"raise x hotswap => hardware fatal failover\nclear x\n", "clear NAME[,NAME...] KIND"},
        {"raise x hotswap => hardware fatal failover\nclear x, hotswap\n", "an empty rule name"},
        {"raise x hotswap => hardware fatal failover\nclear x/ hotswap\n", "not a rule name"},
        {"raise x hotswap => hardware fatal failover\nclear x nosuch\n", "not an event kind"},
        {"set subsume_window\n", "set NAME VALUE"},
        {"set colour red\n", "unknown parameter 'colour'"},
        {"set vm_group_window 0\n", "is not a duration from 1"},
        {"set max_faults 3\n", "is not a number from 16"},
        {"set max_faults lots\n", "is not a number from 16"},
        {"raise x hotswap => hardware degraded failover rate=2/8d\n", "rate=N/DURATION"},
        {"raise x hotswap => hardware degraded failover escalate=2/8d\n", "escalate=N/DURATION"},
        /* a long prefix name in a clear (once a stack overrun) */
        {"raise x hotswap => hardware fatal failover\n"
         "clear aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa* hotswap\n",
         "not a rule name (or prefix*)"},
        {"raise x hotswap \\\n => hardware fatal failover colour=1\n", "t.rules:1: 'colour=1'"},
};

START_TEST(test_rules_refused)
{
	struct errs e = {0};
	struct fm_rules *r = (struct fm_rules *)1;
	const char *text = bad_rules[_i].text;

	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t.rules", &r, collect_err, &e),
	                 -EINVAL);
	ck_assert_ptr_null(r);
	ck_assert_uint_ge(e.n, 1);
	ck_assert_msg(strstr(e.first, bad_rules[_i].want) != NULL, "'%s': got '%s', want '%s'",
	              text, e.first, bad_rules[_i].want);
	ck_assert_msg(strncmp(e.first, "t.rules:", 8) == 0, "no file:line in '%s'", e.first);
}
END_TEST

START_TEST(test_rules_refused_whole)
{
	/* every error of the file in one pass; none of the good rules is used */
	static const char text[] = "raise a hotswap to=M7 => hardware fatal fence-and-failover\n"
	                           "raise b nosuch => hardware fatal failover\n"
	                           "# a comment\n"
	                           "raise c hotswap => hardware awful failover\n"
	                           "set colour red\n"
	                           "clear zz hotswap\n";
	static const char nul[] = "raise a hotswap => hardware fatal failover\n\0junk\n";
	char big[6000];
	struct errs e = {0};
	struct fm_rules *r = NULL;

	ck_assert_int_eq(fm_rules_parse(NULL, 0, "t", &r, NULL, NULL), -EINVAL);
	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t", NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t.rules", &r, collect_err, &e),
	                 -EINVAL);
	ck_assert_uint_eq(e.n, 4);
	ck_assert_ptr_null(r);
	/* a NUL byte: not a text file */
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(fm_rules_parse(nul, sizeof(nul) - 1, "t.rules", &r, collect_err, &e),
	                 -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.first, "t.rules:2: a NUL byte"));
	/* a statement longer than any sane one */
	memset(big, 'x', sizeof(big));
	memcpy(big, "raise ", 6);
	big[sizeof(big) - 1] = '\n';
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(fm_rules_parse(big, sizeof(big), "t.rules", &r, collect_err, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.first, "longer than"));
	/* too many words */
	{
		char words[1024] = "raise x hotswap";

		for (int i = 0; i < 50; i++)
			strcat(words, " a=b");
		strcat(words, "\n");
		memset(&e, 0, sizeof(e));
		ck_assert_int_eq(
		        fm_rules_parse(words, strlen(words), "t.rules", &r, collect_err, &e),
		        -EINVAL);
		ck_assert_ptr_nonnull(strstr(e.first, "too many words"));
	}
}
END_TEST

START_TEST(test_rules_load_errors)
{
	char dir[] = "/tmp/check_fm.XXXXXX", path[128];
	struct fm_rules *r = NULL;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/none.rules", dir);
	ck_assert_int_eq(fm_rules_load(path, &r, NULL, NULL), -ENOENT);
	ck_assert_int_eq(fm_rules_load(dir, &r, NULL, NULL), -EINVAL);
	ck_assert_int_eq(fm_rules_load(NULL, &r, NULL, NULL), -EINVAL);
	snprintf(path, sizeof(path), "%s/ok.rules", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "raise x hotswap to=M7 => hardware fatal failover\n", 49), 49);
	close(fd);
	ck_assert_int_eq(fm_rules_load(path, &r, NULL, NULL), 0);
	ck_assert_uint_eq(r->n_rules, 1);
	ck_assert_str_eq(r->origin, path);
	fm_rules_free(r);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* The built-in rules are the installed file, and print back to themselves. */
START_TEST(test_rules_builtin)
{
	struct fm_rules *r = NULL, *r2 = NULL, *f = NULL;
	char path[1024];
	char *t1, *t2;

	ck_assert_int_eq(fm_rules_default(&r), 0);
	ck_assert_uint_ge(r->n_rules, 20);
	ck_assert_uint_ge(r->n_clears, 5);
	t1 = fm_rules_format(r);
	ck_assert_ptr_nonnull(t1);
	ck_assert_int_eq(fm_rules_parse(t1, strlen(t1), "printed", &r2, NULL, NULL), 0);
	t2 = fm_rules_format(r2);
	/* identical apart from the origin comment */
	ck_assert_str_eq(strchr(t1, '\n'), strchr(t2, '\n'));
	snprintf(path, sizeof(path), "%s/etc/failure-model.rules",
	         getenv("top_srcdir") ? getenv("top_srcdir") : "..");
	ck_assert_int_eq(fm_rules_load(path, &f, NULL, NULL), 0);
	free(t2);
	t2 = fm_rules_format(f);
	ck_assert_str_eq(strchr(t1, '\n'), strchr(t2, '\n'));
	free(t1);
	free(t2);
	fm_rules_free(r);
	fm_rules_free(r2);
	fm_rules_free(f);
	fm_rules_free(NULL);
	ck_assert_ptr_null(fm_rules_format(NULL));
}
END_TEST

/* The parameters a rules file does not set are the documented defaults,
 * the same the shipped file sets. */
START_TEST(test_rules_defaults_documented)
{
	struct fm_rules *none = NULL, *shipped = NULL;

	ck_assert_int_eq(fm_rules_parse("", 0, "empty", &none, NULL, NULL), 0);
	ck_assert_int_eq(fm_rules_default(&shipped), 0);
	ck_assert_uint_eq(none->params.subsume_ms, 5000);
	ck_assert_uint_eq(none->params.vm_group_ms, 200);
	ck_assert_uint_eq(none->params.history_ms, 600000);
	ck_assert_uint_eq(none->params.max_faults, 1024);
	ck_assert_uint_eq(none->params.max_sources, 4096);
	ck_assert_mem_eq(&none->params, &shipped->params, sizeof(none->params));
	fm_rules_free(none);
	fm_rules_free(shipped);
}
END_TEST

START_TEST(test_conditions)
{
	static const char text[] =
	        "raise a sensor.threshold state=upper-*|ok type!=fan reading>=90 => hardware fatal "
	        "failover\n"
	        "raise b vm.lifecycle host.vm_failures>=2 entity=web* src=vm => hypervisor fatal "
	        "failover\n"
	        "raise c node.leave blade.mstate=M4 blade.sensors=ok blade.ipmc!=unreachable => "
	        "hypervisor fatal failover\n";
	struct fm_rules *r = NULL;
	struct fm_blade_view bv = {.mstate = "M4",
	                           .ipmc = "unknown",
	                           .member = "lost",
	                           .power = "on",
	                           .sensors = "ok",
	                           .hypervisor = "up",
	                           .vm_failures = 2};
	struct af_event ev;

	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t", &r, NULL, NULL), 0);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 1, "CPU Temp");
	af_event_set(&ev, "state", "upper-critical");
	af_event_set(&ev, "type", "temperature");
	af_event_set(&ev, "reading", "91.5");
	/* not a whole number: a numeric comparison fails rather than guess */
	ck_assert(!fm_rule_match(&r->rules[0], &ev, &bv));
	af_event_set(&ev, "reading", "95");
	ck_assert(fm_rule_match(&r->rules[0], &ev, &bv));
	af_event_set(&ev, "reading", "89");
	ck_assert(!fm_rule_match(&r->rules[0], &ev, &bv));
	af_event_set(&ev, "reading", "95");
	af_event_set(&ev, "type", "fan");
	ck_assert(!fm_rule_match(&r->rules[0], &ev, &bv));
	af_event_set(&ev, "type", "voltage");
	af_event_set(&ev, "state", "lower-critical");
	ck_assert(!fm_rule_match(&r->rules[0], &ev, &bv));
	af_event_set(&ev, "state", "ok");
	ck_assert(fm_rule_match(&r->rules[0], &ev, &bv));
	/* a missing key: = fails, != holds */
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 1, "CPU Temp");
	af_event_set(&ev, "state", "ok");
	ck_assert(!fm_rule_match(&r->rules[0], &ev, &bv)); /* no reading */
	/* another kind never matches */
	af_event_init(&ev, AF_SRC_VM, AF_EV_VM_LIFECYCLE, 1, "web1");
	ck_assert(!fm_rule_match(&r->rules[0], &ev, &bv));
	ck_assert(fm_rule_match(&r->rules[1], &ev, &bv));
	bv.vm_failures = 1;
	ck_assert(!fm_rule_match(&r->rules[1], &ev, &bv));
	bv.vm_failures = 2;
	ev.source = AF_SRC_ENGINE;
	ck_assert(!fm_rule_match(&r->rules[1], &ev, &bv));
	af_event_init(&ev, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 1, "node");
	ck_assert(fm_rule_match(&r->rules[2], &ev, &bv));
	bv.ipmc = "unreachable";
	ck_assert(!fm_rule_match(&r->rules[2], &ev, &bv));
	/* no view: state keys read as absent */
	ck_assert(!fm_rule_match(&r->rules[2], &ev, NULL));
	fm_rules_free(r);
}
END_TEST

/* Prefixes: "M*" prints back as "M*", "*" is any value present. */
START_TEST(test_prefixes)
{
	static const char text[] = "raise a hotswap to=M* entity=* => hardware fatal failover\n"
	                           "raise b hotswap cause!=* => hardware fatal failover\n";
	struct fm_rules *r = NULL, *back = NULL;
	struct af_event ev;
	char *t;

	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t", &r, NULL, NULL), 0);
	t = fm_rules_format(r);
	ck_assert_ptr_nonnull(strstr(t, "to=M* entity=* "));
	ck_assert_int_eq(fm_rules_parse(t, strlen(t), "again", &back, NULL, NULL), 0);
	af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, 1, "payload");
	af_event_set(&ev, "to", "M7");
	ck_assert(fm_rule_match(&r->rules[0], &ev, NULL));
	ck_assert(fm_rule_match(&back->rules[0], &ev, NULL));
	/* no cause: "not any value" holds; with one it does not */
	ck_assert(fm_rule_match(&r->rules[1], &ev, NULL));
	af_event_set(&ev, "cause", "requested");
	ck_assert(!fm_rule_match(&r->rules[1], &ev, NULL));
	af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, 1, "payload");
	af_event_set(&ev, "to", "X7");
	ck_assert(!fm_rule_match(&r->rules[0], &ev, NULL));
	free(t);
	fm_rules_free(r);
	fm_rules_free(back);
}
END_TEST

/* max_faults in the rules file sizes the model; when every fault is open
 * a new one has no room, and that is reported. */
START_TEST(test_max_faults_from_rules)
{
	static const char text[] = "set max_faults 16\nset max_sources 64\n"
	                           "raise crit sensor.threshold state=upper-critical => hardware "
	                           "degraded migrate-away\n";
	struct fm_rules *r = NULL;
	struct seen s = {0};
	struct fm *m = NULL;
	char name[16];

	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t", &r, NULL, NULL), 0);
	ck_assert_int_eq(fm_init_rules(&m, NULL, r, &ops, &s), 0);
	for (int i = 0; i < 17; i++) {
		struct af_event ev;

		snprintf(name, sizeof(name), "T%d", i);
		ev = mk(100 + (uint64_t)i, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 1, name);
		af_event_set(&ev, "state", "upper-critical");
		fm_event(m, &ev);
	}
	ck_assert_uint_eq(s.n, 16);
	ck_assert_ptr_nonnull(strstr(s.last_ignored, "no room"));
	/* 100 more sensors than max_sources: old ones make room, no harm */
	for (int i = 0; i < 164; i++) {
		struct af_event ev;

		snprintf(name, sizeof(name), "S%d", i);
		ev = mk(1000 + (uint64_t)i, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 2, name);
		af_event_set(&ev, "state", "ok");
		ck_assert_int_ge(fm_event(m, &ev), 0);
	}
	fm_fini(m);
	ck_assert_int_eq(fm_init_rules(NULL, NULL, NULL, &ops, &s), -EINVAL);
}
END_TEST

/* A fault whose rule vanished in one reload finds it again in the next. */
START_TEST(test_orphan_rebound)
{
	static const char other[] = "raise x hotswap to=M7 => hardware fatal failover\n";
	struct fm_rules *r = NULL, *defaults = NULL;
	struct seen s = {0};
	struct fm *m = NULL;

	ck_assert_int_eq(fm_init(&m, NULL, &ops, &s), 0);
	for (int i = 0; i < 2; i++) {
		struct af_event ev = mk(100 + (uint64_t)i * 100, AF_SRC_IPMI,
		                        AF_EV_SENSOR_THRESHOLD, 3, "CPU Temp");

		af_event_set(&ev, "state", "upper-critical");
		fm_event(m, &ev);
	}
	ck_assert_uint_eq(s.n, 1);
	ck_assert_str_eq(s.r[0].rule, "thr-critical");
	ck_assert_int_eq(fm_rules_parse(other, strlen(other), "t", &r, NULL, NULL), 0);
	ck_assert_int_eq(fm_set_rules(m, r), 0);
	ck_assert_int_eq(fm_rules_default(&defaults), 0);
	ck_assert_int_eq(fm_set_rules(m, defaults), 0);
	/* three ok readings clear the same fault, no second one is raised */
	for (int i = 0; i < 3; i++) {
		struct af_event ev = mk(1000 + (uint64_t)i * 100, AF_SRC_IPMI,
		                        AF_EV_SENSOR_THRESHOLD, 3, "CPU Temp");

		af_event_set(&ev, "state", "ok");
		fm_event(m, &ev);
	}
	ck_assert_uint_eq(s.n, 2);
	ck_assert_int_eq(s.r[1].op, FM_OP_CLEAR);
	ck_assert_uint_eq(s.r[1].id, s.r[0].id);
	fm_fini(m);
}
END_TEST

/* ---- the engine ---------------------------------------------------------------------- */

START_TEST(test_invalid_arguments_and_events)
{
	struct af_config *cfg = tiny_config();
	struct af_module_status st;
	struct af_event ev;
	struct seen s = {0};
	struct fm *m = NULL;

	ck_assert_int_eq(af_init("check_failure_model"), 0);
	ck_assert_int_eq(fm_init(NULL, cfg, &ops, &s), -EINVAL);
	ck_assert_int_eq(fm_init(&m, cfg, NULL, &s), -EINVAL);
	ck_assert_int_eq(fm_init(&m, cfg, &ops, &s), 0);

	ck_assert_int_eq(fm_event(m, NULL), -EINVAL);
	ck_assert_int_eq(fm_event(NULL, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, "FRU 0");
	ev.source = (enum af_ev_source)AF_SRC_COUNT;
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, (enum af_ev_kind)99, 1, NULL);
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 17, NULL);
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, -1, NULL);
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, NULL);
	ev.n_detail = AF_EV_DETAIL_MAX + 1;
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, NULL);
	memset(ev.entity, 'x', sizeof(ev.entity)); /* not terminated */
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	ck_assert_int_eq(fm_tick(NULL, 5), -EINVAL);
	ck_assert_int_eq(fm_set_rules(m, NULL), -EINVAL);
	ck_assert_uint_eq(fm_next_deadline(NULL), 0);

	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, "FRU 0");
	ck_assert_int_eq(fm_event(m, &ev), 0);
	fm_describe(m, &st);
	ck_assert_str_eq(st.name, "failure-model");
	ck_assert_ptr_nonnull(strstr(st.detail, "1 events, 0 ignored, 6 rejected"));
	ck_assert_uint_eq(s.n, 0);

	ck_assert_int_eq(fm_reconfigure(NULL, cfg), -EINVAL);
	ck_assert_int_eq(fm_reconfigure(m, cfg), 0);
	fm_fini(m);
	fm_fini(NULL);
	fm_describe(NULL, &st);
	ck_assert_str_eq(st.state, "stopped");
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* Holds are timers: the daemon asks when, ticks, and the decision is made
 * at the hold's own time. */
START_TEST(test_holds_and_ticks)
{
	struct seen s = {0};
	struct fm *m = NULL;
	struct af_event ev;

	ck_assert_int_eq(fm_init(&m, NULL, &ops, &s), 0);
	ck_assert_uint_eq(fm_next_deadline(m), 0);
	ev = mk(1000, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 2, "node");
	ck_assert_int_eq(fm_event(m, &ev), 0);
	ck_assert_uint_eq(fm_next_deadline(m), 1300 * AF_NS_PER_MS);
	ck_assert_int_eq(fm_tick(m, 1299 * AF_NS_PER_MS), 0);
	ck_assert_uint_eq(s.n, 0);
	ck_assert_int_eq(fm_tick(m, 5000 * AF_NS_PER_MS), 1);
	ck_assert_uint_eq(s.n, 1);
	ck_assert_str_eq(s.r[0].rule, "host-lost");
	ck_assert_uint_eq(s.r[0].t, 1300); /* at its time, not at the tick's */
	ck_assert_int_eq(s.r[0].layer, AF_LAYER_HYPERVISOR);
	ck_assert(s.r[0].membership_only); /* its only evidence: the node left */
	ck_assert_uint_eq(fm_next_deadline(m), 0);

	/* M7 inside the hold of blade 3: one hardware fault */
	ev = mk(6000, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 3, "node");
	ck_assert_int_eq(fm_event(m, &ev), 0);
	ck_assert_int_eq(feed_hotswap(m, 6100, 3, "M4", "M7", "unexpected"), 1);
	ck_assert_uint_eq(fm_next_deadline(m), 0); /* the hold joined the fault */
	ck_assert_int_eq(fm_tick(m, 9000 * AF_NS_PER_MS), 0);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_str_eq(s.r[1].rule, "hs-lost");
	ck_assert_uint_eq(s.r[1].n_causes, 2);
	ck_assert(!s.r[1].membership_only); /* the shelf manager's word too */

	/* node.join within the hold of blade 4: nothing at all */
	ev = mk(10000, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 4, "node");
	fm_event(m, &ev);
	ev = mk(10100, AF_SRC_CLUSTER, AF_EV_NODE_JOIN, 4, "node");
	fm_event(m, &ev);
	fm_tick(m, 20000 * AF_NS_PER_MS);
	ck_assert_uint_eq(s.n, 2);
	fm_fini(m);
}
END_TEST

static int feed_simple(struct fm *m, uint64_t t, enum af_ev_source src, enum af_ev_kind kind,
                       int blade)
{
	struct af_event ev = mk(t, src, kind, blade, "node");

	return fm_event(m, &ev);
}

static int feed_fence(struct fm *m, uint64_t t, int blade, const char *result)
{
	struct af_event ev = mk(t, AF_SRC_SHELF, AF_EV_FENCE, blade, "payload");

	af_event_set(&ev, "action", "fence");
	af_event_set(&ev, "result", "%s", result);
	return fm_event(m, &ev);
}

/* A fatal blade fault that cleared explains the blade's symptoms of the
 * next subsume_window only if the blade went away (payload off, a fence
 * confirmed, out of the membership) while the fault was open. M7 -> M4
 * with the blade a member throughout, its fence failed: the blade then
 * leaving the cluster is a fault of its own (the soak, seed 1470415251
 * step 324: absorbed, its VMs stayed down). */
START_TEST(test_subsume_only_after_going_away)
{
	struct seen s = {0};
	struct fm *m = NULL;

	ck_assert_int_eq(fm_init(&m, NULL, &ops, &s), 0);
	for (int b = 2; b <= 4; b++)
		feed_simple(m, 50, AF_SRC_CLUSTER, AF_EV_NODE_JOIN, b);

	/* blade 2: never away; a failed fence is not "off" */
	ck_assert_int_eq(feed_hotswap(m, 100, 2, "M4", "M7", "unexpected"), 1);
	feed_fence(m, 2100, 2, "failed");
	ck_assert_int_eq(feed_hotswap(m, 3000, 2, "M7", "M4", "unexpected"), 1);
	ck_assert_int_eq(feed_simple(m, 4000, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 2), 0);
	ck_assert_int_eq(fm_tick(m, 5000 * AF_NS_PER_MS), 1);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_int_eq(s.r[2].op, FM_OP_RAISE);
	ck_assert_str_eq(s.r[2].rule, "host-lost");
	ck_assert_uint_ne(s.r[2].id, s.r[0].id);

	/* blade 3: a fence confirmed while hs-lost was open: the leave after
	 * the clear is its late news, absorbed */
	ck_assert_int_eq(feed_hotswap(m, 10000, 3, "M4", "M7", "unexpected"), 1);
	feed_fence(m, 10500, 3, "ok");
	ck_assert_int_eq(feed_hotswap(m, 11000, 3, "M7", "M4", "unexpected"), 1);
	ck_assert_int_eq(feed_simple(m, 12000, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 3), 1);
	fm_tick(m, 13000 * AF_NS_PER_MS);
	ck_assert_uint_eq(s.n, 6);
	ck_assert_int_eq(s.r[5].op, FM_OP_UPDATE);
	ck_assert_int_eq(s.r[5].why, FM_WHY_ABSORBED);
	ck_assert_uint_eq(s.r[5].id, s.r[3].id);
	ck_assert_str_eq(s.r[5].rule, "hs-lost");

	/* blade 4: the fence confirmed only after the clear does not count
	 * for the cleared fault */
	ck_assert_int_eq(feed_hotswap(m, 20000, 4, "M4", "M7", "unexpected"), 1);
	ck_assert_int_eq(feed_hotswap(m, 21000, 4, "M7", "M4", "unexpected"), 1);
	feed_fence(m, 21500, 4, "ok");
	ck_assert_int_eq(feed_simple(m, 22000, AF_SRC_CLUSTER, AF_EV_NODE_LEAVE, 4), 0);
	fm_tick(m, 23000 * AF_NS_PER_MS);
	ck_assert_uint_eq(s.n, 9);
	ck_assert_int_eq(s.r[8].op, FM_OP_RAISE);
	ck_assert_str_eq(s.r[8].rule, "host-lost");
	fm_fini(m);
}
END_TEST

/* Memory is bounded by max_faults and max_sources: a flood of distinct
 * sensors neither crashes nor grows anything; what does not fit is reported
 * as ignored. */
START_TEST(test_bounds)
{
	static const char text[] = "raise crit sensor.threshold state=upper-critical => hardware "
	                           "degraded migrate-away\n";
	struct fm_rules *r = NULL;
	struct seen s = {0};
	struct fm *m = NULL;
	char name[32];

	/* the tables are sized at start from the built-in rules (1024 faults,
	 * 4096 sources); 5000 distinct sensors overflow both */
	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t", &r, NULL, NULL), 0);
	ck_assert_int_eq(fm_init(&m, NULL, &ops, &s), 0);
	ck_assert_int_eq(fm_set_rules(m, r), 0);
	for (int i = 0; i < 5000; i++) {
		struct af_event ev;

		snprintf(name, sizeof(name), "T%d", i);
		ev = mk(1000 + (uint64_t)i, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, 1 + i % 16, name);
		af_event_set(&ev, "state", "upper-critical");
		ck_assert_int_ge(fm_event(m, &ev), 0);
	}
	ck_assert_uint_le(s.n, MAX_SEEN);
	ck_assert_uint_gt(s.ignored, 0);
	ck_assert_ptr_nonnull(strstr(s.last_ignored, "no room"));
	fm_fini(m);
}
END_TEST

/* New rules: an open fault stays open and follows the rule of its name;
 * a fault whose rule is gone stays open. */
START_TEST(test_replace_rules)
{
	static const char text[] = "raise hs-lost hotswap to=M7 => hardware degraded notify-only\n"
	                           "clear hs-lost hotswap to=M4\n";
	struct fm_rules *r = NULL;
	struct seen s = {0};
	struct fm *m = NULL;

	ck_assert_int_eq(fm_init(&m, NULL, &ops, &s), 0);
	ck_assert_int_eq(feed_hotswap(m, 100, 2, "M4", "M7", "unexpected"), 1);
	ck_assert_int_eq(fm_rules_parse(text, strlen(text), "t", &r, NULL, NULL), 0);
	ck_assert_int_eq(fm_set_rules(m, r), 0);
	ck_assert_ptr_eq(fm_get_rules(m), r);
	/* the open fault is still the one cleared by M4 */
	ck_assert_int_eq(feed_hotswap(m, 200, 2, "M7", "M4", "unexpected"), 1);
	ck_assert_int_eq(s.r[1].op, FM_OP_CLEAR);
	ck_assert_uint_eq(s.r[1].id, s.r[0].id);
	/* and new faults follow the new rule */
	ck_assert_int_eq(feed_hotswap(m, 300, 2, "M4", "M7", "unexpected"), 1);
	ck_assert_int_eq(s.r[2].sev, AF_SEV_DEGRADED);
	fm_fini(m);
}
END_TEST

/* Two models side by side share nothing. */
START_TEST(test_two_instances)
{
	struct seen a = {0}, b = {0};
	struct fm *ma = NULL, *mb = NULL;

	ck_assert_int_eq(fm_init(&ma, NULL, &ops, &a), 0);
	ck_assert_int_eq(fm_init(&mb, NULL, &ops, &b), 0);
	ck_assert_int_eq(feed_hotswap(ma, 100, 2, "M4", "M7", "unexpected"), 1);
	ck_assert_int_eq(feed_hotswap(mb, 100, 2, "M4", "M4", "unexpected"), 0);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_uint_eq(b.n, 0);
	ck_assert_int_eq(feed_hotswap(mb, 200, 2, "M4", "M7", "unexpected"), 1);
	ck_assert_uint_eq(b.r[0].id, 1); /* its own numbering */
	fm_fini(ma);
	fm_fini(mb);
}
END_TEST

/* ---- the simulator's line parser -------------------------------------------------------- */

START_TEST(test_sim_lines)
{
	static const struct {
		const char *line;
		enum fm_sim_line want;
		const char *msg;
	} cases[] = {
	        {"", FM_SIM_NOTHING, ""},
	        {"   # only a comment", FM_SIM_NOTHING, ""},
	        {"x ipmi 1 ipmc state=unreachable", FM_SIM_MALFORMED, "time in milliseconds"},
	        {"-5 ipmi 1 ipmc state=unreachable", FM_SIM_MALFORMED, "time in milliseconds"},
	        {"10", FM_SIM_MALFORMED, "a time and nothing else"},
	        {"10 ipmi 17 ipmc state=unreachable", FM_SIM_MALFORMED, "a blade is 0..16"},
	        {"10 ipmi one ipmc state=unreachable", FM_SIM_MALFORMED, "a blade is 0..16"},
	        {"10 ipmi 1", FM_SIM_MALFORMED, "TIME_MS SOURCE BLADE KIND"},
	        {"10 ipmi 1 ipmc state=gone", FM_SIM_MALFORMED, "state=unreachable or"},
	        {"10 ipmi 1 ipmc reachable", FM_SIM_MALFORMED, "only key=value"},
	        {"10 ipmi 1 sensor name=x type=temperature", FM_SIM_MALFORMED, "name=, type= and"},
	        {"10 ipmi 1 sensor name=x type=temperature state=hot", FM_SIM_MALFORMED,
	         "not a threshold state"},
	        {"10 ipmi 1 sensor name=\"CPU Temp type=temperature state=ok", FM_SIM_MALFORMED,
	         "missing closing quote"},
	        {"10 ipmi 1 sensor name=a\"b type=t state=ok", FM_SIM_MALFORMED, "a quote inside"},
	        {"10 ipmi 1 sel type=memory", FM_SIM_MALFORMED, "type= and offset="},
	        {"10 ipmi 1 sel type=memory offset=15", FM_SIM_MALFORMED, "0 to 14"},
	        {"10 ipmi 1 sel type=memory offset=1 assert=yes", FM_SIM_MALFORMED, "1 or 0"},
	        {"10 ipmi 1 hotswap from=M4", FM_SIM_MALFORMED, "from= and to="},
	        {"10 ipmi 1 hotswap from=M4 to=M8", FM_SIM_MALFORMED, "M0..M7"},
	        {"10 ipmi 1 hotswap from=M4 to=M7 cause=gremlins", FM_SIM_MALFORMED, "requested,"},
	        {"10 ipmi 1 hotswap from=M4 to=M7 Bad=1", FM_SIM_MALFORMED, "not a valid detail"},
	        {"10 libvirt 1 vm name=web event=exploded", FM_SIM_MALFORMED, "known values"},
	        {"10 libvirt 1 vm event=crashed", FM_SIM_MALFORMED, "name= and event="},
	        {"10 libvirt 1 connection state=maybe", FM_SIM_MALFORMED, "state=lost or"},
	        {"10 engine 1 vm name=web state=sad", FM_SIM_MALFORMED, "known values"},
	        {"10 quorum state=maybe", FM_SIM_MALFORMED, "state=lost or"},
	        {"10 quorum 99 state=lost", FM_SIM_MALFORMED, "a blade is"},
	        {"10 state=x ipmi 1 ipmc", FM_SIM_MALFORMED, "the source comes after the time"},
	        {"t=1.5 src=nowhere kind=hotswap", FM_SIM_UNKNOWN,
	         "unknown event 'nowhere hotswap'"},
	        {"t=1.5 src=ipmi kind=smoke", FM_SIM_UNKNOWN, "unknown event 'ipmi smoke'"},
	        {"t=x src=ipmi kind=hotswap", FM_SIM_MALFORMED, "bad time"},
	        {"10 toaster 1 burnt", FM_SIM_UNKNOWN, "unknown event 'toaster burnt'"},
	        {"10 ipmi 1 smoke level=high", FM_SIM_UNKNOWN, "unknown event 'ipmi smoke'"},
	        {"10 member 1 confused", FM_SIM_UNKNOWN, "unknown event"},
	        {"10 tick", FM_SIM_TICK, ""},
	        {"10 tick\r", FM_SIM_TICK, ""},
	        {"100 member 3 lost\r", FM_SIM_EVENT, ""},
	        {"1000000000001 tick", FM_SIM_MALFORMED, "time in milliseconds"},
	        {"10 ipmi 1 ipmc state=unreachable", FM_SIM_EVENT, ""},
	        {"10 ipmi 0 sensor name=\"Fan \\\"A\\\"\" type=fan state=ok value=3000",
	         FM_SIM_EVENT, ""},
	        {"10 ipmi 2 sel type=memory offset=1 assert=0", FM_SIM_EVENT, ""},
	        {"10 quorum state=lost", FM_SIM_EVENT, ""},
	        {"10 quorum 3 state=regained", FM_SIM_EVENT, ""},
	        {"t=1.5 src=shelf blade=2 kind=hotswap entity=payload from=M4 to=M7", FM_SIM_EVENT,
	         ""},
	};
	struct af_event ev;
	char msg[256];

	for (size_t i = 0; i < AF_ARRAY_SIZE(cases); i++) {
		enum fm_sim_line got = fm_sim_parse_line(cases[i].line, 7, &ev, msg, sizeof(msg));

		ck_assert_msg(got == cases[i].want, "'%s': %d, want %d (%s)", cases[i].line, got,
		              cases[i].want, msg);
		ck_assert_msg(strstr(msg, cases[i].msg) != NULL, "'%s': '%s' lacks '%s'",
		              cases[i].line, msg, cases[i].msg);
	}
	fm_sim_parse_line("10 ipmi 2 sel type=memory offset=1 assert=0", 7, &ev, msg, sizeof(msg));
	ck_assert_uint_eq(ev.id, 7);
	ck_assert_uint_eq(ev.ts_ns, 10 * AF_NS_PER_MS);
	ck_assert_str_eq(af_event_get(&ev, "meaning"), "uncorrectable-ecc");
	ck_assert_str_eq(af_event_get(&ev, "dir"), "deassert");
	fm_sim_parse_line("10 ipmi 0 sensor name=\"Fan \\\"A\\\"\" type=fan state=ok value=3000", 1,
	                  &ev, msg, sizeof(msg));
	ck_assert_str_eq(ev.entity, "Fan \"A\"");
	ck_assert_str_eq(af_event_get(&ev, "reading"), "3000");
}
END_TEST

START_TEST(test_sim_run)
{
	static const char text[] = "100 ipmi 3 hotswap from=M4 to=M7\n"
	                           "oops\n"
	                           "200 toaster 1 burnt\n"
	                           "300 libvirt 3 vm name=web1 event=crashed\n";
	char *out = NULL, *err = NULL;
	size_t outlen = 0, errlen = 0;
	FILE *fo = open_memstream(&out, &outlen), *fe = open_memstream(&err, &errlen);

	ck_assert_int_eq(fm_sim_run(NULL, 0, "x", NULL, fo, fe), -EINVAL);
	ck_assert_int_eq(fm_sim_run(text, strlen(text), "t.events", NULL, fo, fe), 1);
	fclose(fo);
	fclose(fe);
	ck_assert_ptr_nonnull(
	        strstr(out, "{\"t_ms\":100,\"op\":\"raise\",\"fault\":1,\"rule\":\"hs-lost\""));
	ck_assert_ptr_nonnull(strstr(out, "\"causes\":[1,4],\"why\":\"absorbed\""));
	ck_assert_ptr_nonnull(strstr(err, "t.events:2: error: 'oops'"));
	ck_assert_ptr_nonnull(strstr(err, "t.events:3: warning: unknown event 'toaster burnt'"));
	free(out);
	free(err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("failure_model");
	TCase *tc;

	tc = tcase_create("rules_refused");
	tcase_add_loop_test(tc, test_rules_refused, 0, (int)AF_ARRAY_SIZE(bad_rules));
	suite_add_tcase(s, tc);
	add_tcase(s, test_rules_refused_whole, 10);
	add_tcase(s, test_rules_load_errors, 10);
	add_tcase(s, test_invalid_arguments_and_events, 10);
	add_tcase(s, test_sim_lines, 10);
	add_tcase(s, test_rules_builtin, 10);
	add_tcase(s, test_conditions, 10);
	add_tcase(s, test_rules_defaults_documented, 10);
	add_tcase(s, test_prefixes, 10);
	add_tcase(s, test_max_faults_from_rules, 10);
	add_tcase(s, test_orphan_rebound, 10);
	add_tcase(s, test_holds_and_ticks, 10);
	add_tcase(s, test_subsume_only_after_going_away, 10);
	add_tcase(s, test_bounds, 20);
	add_tcase(s, test_replace_rules, 10);
	add_tcase(s, test_two_instances, 10);
	add_tcase(s, test_sim_run, 10);
	return run_suite(s);
}
