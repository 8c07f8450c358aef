/*
 * src/src/recovery: module lifecycle. The module is a skeleton for now;
 * these tests pin its contract (argument checks, describe, reconfigure, fini)
 * so the implementation can grow behind it.
 */
#include "config.h"

#include "check_util.h"

#include "af_common.h"
#include "rcv.h"

static struct af_config *tiny_config(void)
{
	static const char text[] = "shelf {\n    credentials: /x\n    manager {\n"
	                           "        address: 127.0.0.1\n    }\n}\n"
	                           "blade {\n    slot: 1\n    host: b1\n}\n";
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;

	ck_assert_int_eq(af_cfg_parse_buffer("tiny", text, sizeof(text) - 1,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg,
	                                     &diag),
	                 0);
	return cfg;
}

START_TEST(test_invalid_arguments)
{
	struct af_config *cfg = tiny_config();
	struct af_module_env env = {.cfg = NULL};
	struct rcv *m = NULL;

	ck_assert_int_eq(rcv_init(NULL, &env), -EINVAL);
	ck_assert_int_eq(rcv_init(&m, NULL), -EINVAL);
	ck_assert_int_eq(rcv_init(&m, &env), -EINVAL); /* no configuration */
	ck_assert_ptr_null(m);
	ck_assert_int_eq(rcv_reconfigure(NULL, cfg), -EINVAL);
	rcv_fini(NULL);
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_lifecycle)
{
	struct af_config *cfg = tiny_config(), *cfg2 = tiny_config();
	struct af_module_env env = {.cfg = cfg};
	struct af_module_status st;
	struct rcv *m = NULL;

	ck_assert_int_eq(af_init("check_recovery"), 0);
	ck_assert_int_eq(rcv_init(&m, &env), 0);
	ck_assert_ptr_nonnull(m);
	memset(&st, 0, sizeof(st));
	rcv_describe(m, &st);
	ck_assert_str_eq(st.name, "recovery");
	ck_assert_ptr_nonnull(st.state);
	ck_assert_int_eq(rcv_reconfigure(m, NULL), -EINVAL);
	ck_assert_int_eq(rcv_reconfigure(m, cfg2), 0);
	rcv_fini(m);
	rcv_describe(NULL, &st);
	ck_assert_str_eq(st.state, "stopped");
	af_cfg_free(cfg);
	af_cfg_free(cfg2);
	af_fini();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("recovery");

	add_tcase(s, test_invalid_arguments, 10);
	add_tcase(s, test_lifecycle, 10);
	return run_suite(s);
}
