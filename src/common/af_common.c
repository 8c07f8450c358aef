#include "config.h"

#include "af_common.h"

int af_init(const char *ident)
{
	return af_log_init(ident);
}

void af_fini(void)
{
	af_log_fini();
}

const char *af_version(void)
{
	return PACKAGE_VERSION;
}
