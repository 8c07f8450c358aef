/*
 * libFuzzer target: the one-line event text form read from golden scenario
 * and events files.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "af_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1);
	struct af_event ev, back;
	char text[AF_EV_TEXT_MAX], again[AF_EV_TEXT_MAX], err[128];

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	if (af_event_parse(line, &ev, err, sizeof(err)) == 0) {
		/* what parses formats, and the format parses to the same text */
		if (af_event_format(&ev, text, sizeof(text)) < 0 ||
		    af_event_parse(text, &back, err, sizeof(err)) != 0 ||
		    af_event_format(&back, again, sizeof(again)) < 0 || strcmp(text, again) != 0)
			__builtin_trap();
	}
	free(line);
	return 0;
}
