/*
 * The contract every I/O module of atca-ftd honours (argument checks,
 * describe, reconfigure, fini), as Check tests. A module's test binary
 * defines MODULE_PREFIX and MODULE_NAME, includes this file, and adds the
 * two test cases with add_module_contract_tests().
 */
#ifndef CHECK_MODULE_CONTRACT_H
#define CHECK_MODULE_CONTRACT_H

#include "check_util.h"

#include "af_common.h"

#define MC_CAT_(a, b) a##b
#define MC_CAT(a, b) MC_CAT_(a, b)
#define MC_FN(suffix) MC_CAT(MODULE_PREFIX, suffix)
#define MC_STRUCT struct MODULE_PREFIX

START_TEST(test_contract_invalid_arguments)
{
	struct af_config *cfg = tiny_config();
	struct af_module_env env = {.cfg = NULL};
	MC_STRUCT *m = NULL;

	ck_assert_int_eq(MC_FN(_init)(NULL, &env), -EINVAL);
	ck_assert_int_eq(MC_FN(_init)(&m, NULL), -EINVAL);
	ck_assert_int_eq(MC_FN(_init)(&m, &env), -EINVAL); /* no configuration */
	ck_assert_ptr_null(m);
	ck_assert_int_eq(MC_FN(_reconfigure)(NULL, cfg), -EINVAL);
	MC_FN(_fini)(NULL);
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_contract_lifecycle)
{
	struct af_config *cfg = tiny_config(), *cfg2 = tiny_config();
	struct af_module_env env = {.cfg = cfg};
	struct af_module_status st;
	MC_STRUCT *m = NULL;

	ck_assert_int_eq(af_init("check_" MODULE_NAME), 0);
	ck_assert_int_eq(MC_FN(_init)(&m, &env), 0);
	ck_assert_ptr_nonnull(m);
	memset(&st, 0, sizeof(st));
	MC_FN(_describe)(m, &st);
	ck_assert_str_eq(st.name, MODULE_NAME);
	ck_assert_ptr_nonnull(st.state);
	ck_assert_int_eq(MC_FN(_reconfigure)(m, NULL), -EINVAL);
	ck_assert_int_eq(MC_FN(_reconfigure)(m, cfg2), 0);
	MC_FN(_fini)(m);
	MC_FN(_describe)(NULL, &st);
	ck_assert_str_eq(st.state, "stopped");
	af_cfg_free(cfg);
	af_cfg_free(cfg2);
	af_fini();
}
END_TEST

static inline void add_module_contract_tests(Suite *s)
{
	add_tcase(s, test_contract_invalid_arguments, 10);
	add_tcase(s, test_contract_lifecycle, 10);
}

#endif
