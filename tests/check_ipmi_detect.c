/*
 * src/ipmi-detect: the module is a skeleton for now; these tests pin its contract
 * (argument checks, describe, reconfigure, fini) so that the implementation
 * can grow behind it.
 */
#include "config.h"

#include "ipd.h"

#define MODULE_PREFIX ipd
#define MODULE_NAME "ipmi-detect"
#include "check_module_contract.h"

int main(void)
{
	Suite *s = suite_create("ipmi_detect");

	add_module_contract_tests(s);
	return run_suite(s);
}
