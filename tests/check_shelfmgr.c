/*
 * src/shelfmgr: the module is a skeleton for now; these tests pin its contract
 * (argument checks, describe, reconfigure, fini) so that the implementation
 * can grow behind it.
 */
#include "config.h"

#include "smc.h"

#define MODULE_PREFIX smc
#define MODULE_NAME "shelfmgr"
#include "check_module_contract.h"

int main(void)
{
	Suite *s = suite_create("shelfmgr");

	add_module_contract_tests(s);
	return run_suite(s);
}
