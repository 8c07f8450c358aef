/*
 * libFuzzer target: the configuration reader, schema walker and semantic
 * checks (credentials and NSS lookups are skipped: they read other files).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "af_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct af_cfg_diag diag;
	struct af_config *cfg = NULL;

	if (af_cfg_parse_buffer("fuzz.conf", (const char *)data, size,
	                        AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg, &diag) == 0) {
		/* whatever loads must print and load back */
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		struct af_config *again = NULL;

		if (f != NULL) {
			af_cfg_print(cfg, f);
			fclose(f);
			if (af_cfg_parse_buffer("printed", text, len,
			                        AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &again,
			                        &diag) != 0)
				__builtin_trap();
			af_cfg_free(again);
			free(text);
		}
	}
	af_cfg_free(cfg);
	return 0;
}
