/*
 * src/vmft-bridge: the module is a skeleton for now; these tests pin its contract
 * (argument checks, describe, reconfigure, fini) so that the implementation
 * can grow behind it.
 */
#include "config.h"

#include "vft.h"

#define MODULE_PREFIX vft
#define MODULE_NAME "vmft-bridge"
#include "check_module_contract.h"

int main(void)
{
	Suite *s = suite_create("vmft_bridge");

	add_module_contract_tests(s);
	return run_suite(s);
}
