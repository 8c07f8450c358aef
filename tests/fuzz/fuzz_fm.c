/*
 * libFuzzer target: the failure model's two text inputs. An input starting
 * with 'R' is a rules file: what parses must print and parse back to the
 * same rules. Anything else is an events file, replayed through the model
 * with the built-in rules (the simulator's whole path: line parser, model,
 * timers, JSON output).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "af_common.h"
#include "fm_rules.h"
#include "fm_sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink(void)
{
	static FILE *f;

	if (f == NULL)
		f = fopen("/dev/null", "w");
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 0 && data[0] == 'R') {
		struct fm_rules *r = NULL, *back = NULL;

		if (fm_rules_parse((const char *)data + 1, size - 1, "fuzz", &r, NULL, NULL) == 0) {
			char *t = fm_rules_format(r), *t2;

			if (t == NULL ||
			    fm_rules_parse(t, strlen(t), "again", &back, NULL, NULL) != 0)
				abort();
			t2 = fm_rules_format(back);
			if (t2 == NULL || strcmp(strchr(t, '\n'), strchr(t2, '\n')) != 0)
				abort();
			free(t);
			free(t2);
			fm_rules_free(back);
			fm_rules_free(r);
		}
		return 0;
	}
	fm_sim_run((const char *)data, size, "fuzz", NULL, sink(), sink());
	return 0;
}
