/*
 * src/failure-model: the module's contract. Classification rules and golden
 * scenarios come with the failure model itself; today it validates and
 * counts events.
 */
#include "config.h"

#include "check_util.h"

#include "af_common.h"
#include "fm.h"

static unsigned faults_seen;

static void on_fault(void *opaque, const struct af_fault *f)
{
	(void)opaque;
	(void)f;
	faults_seen++;
}

static const struct fm_ops ops = {.fault = on_fault};

START_TEST(test_invalid_arguments_and_events)
{
	struct af_config *cfg = tiny_config();
	struct af_module_status st;
	struct af_event ev;
	struct fm *m = NULL;

	ck_assert_int_eq(af_init("check_failure_model"), 0);
	ck_assert_int_eq(fm_init(NULL, cfg, &ops, NULL), -EINVAL);
	ck_assert_int_eq(fm_init(&m, NULL, &ops, NULL), -EINVAL);
	ck_assert_int_eq(fm_init(&m, cfg, NULL, NULL), -EINVAL);
	ck_assert_int_eq(fm_init(&m, cfg, &ops, NULL), 0);

	ck_assert_int_eq(fm_event(m, NULL), -EINVAL);
	ck_assert_int_eq(fm_event(NULL, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, "FRU 0");
	ev.source = (enum af_ev_source)AF_SRC_COUNT;
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, (enum af_ev_kind)99, 1, NULL);
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 17, NULL);
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, NULL);
	ev.n_detail = AF_EV_DETAIL_MAX + 1;
	ck_assert_int_eq(fm_event(m, &ev), -EINVAL);

	af_event_init(&ev, AF_SRC_IPMI, AF_EV_HOTSWAP, 1, "FRU 0");
	ck_assert_int_eq(fm_event(m, &ev), 0);
	fm_describe(m, &st);
	ck_assert_str_eq(st.name, "failure-model");
	ck_assert_ptr_nonnull(strstr(st.detail, "1 events seen, 4 rejected"));
	ck_assert_uint_eq(faults_seen, 0);

	ck_assert_int_eq(fm_reconfigure(m, NULL), -EINVAL);
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

int main(void)
{
	Suite *s = suite_create("failure_model");

	add_tcase(s, test_invalid_arguments_and_events, 10);
	return run_suite(s);
}
