/*
 * src/recovery: the module is a skeleton for now; these tests pin its contract
 * (argument checks, describe, reconfigure, fini) so that the implementation
 * can grow behind it.
 */
#include "config.h"

#include "rcv.h"

#define MODULE_PREFIX rcv
#define MODULE_NAME "recovery"
#include "check_module_contract.h"

int main(void)
{
	Suite *s = suite_create("recovery");

	add_module_contract_tests(s);
	return run_suite(s);
}
