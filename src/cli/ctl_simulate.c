/*
 * atca-ftctl simulate: the failure model offline. No daemon is involved:
 * the events file is replayed through the same model code atca-ftd runs.
 */
#include "config.h"

#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fm_rules.h"
#include "fm_sim.h"

#define MAX_EVENTS_FILE (64 * 1024 * 1024)

static char *read_all(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	size_t cap = 65536, n = 0;
	char *buf;

	if (f == NULL)
		return NULL;
	buf = malloc(cap);
	while (buf != NULL) {
		size_t got;

		if (n == cap) {
			char *nb = cap >= MAX_EVENTS_FILE ? NULL : realloc(buf, cap * 2);

			if (nb == NULL) {
				free(buf);
				buf = NULL;
				errno = cap >= MAX_EVENTS_FILE ? EFBIG : ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				free(buf);
				buf = NULL;
				errno = EIO;
			}
			break;
		}
	}
	if (f != stdin)
		fclose(f);
	*len = n;
	return buf;
}

static void rules_err(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "atca-ftctl: %s\n", msg);
}

int ctl_simulate(const char *rules_path, bool print_rules, int argc, char **argv)
{
	struct fm_rules *rules = NULL;
	size_t len = 0;
	char *text;
	int rc;

	if (argc != 1 && !(print_rules && argc == 0)) {
		fprintf(stderr, "atca-ftctl: usage: simulate [--rules FILE] EVENTS-FILE (- for "
		                "standard input) | simulate [--rules FILE] --print-rules\n");
		return CTL_USAGE;
	}
	rc = rules_path ? fm_rules_load(rules_path, &rules, rules_err, NULL)
	                : fm_rules_default(&rules);
	if (rc < 0) {
		if (rc != -EINVAL)
			fprintf(stderr, "atca-ftctl: %s: %s\n", rules_path, strerror(-rc));
		fprintf(stderr, "atca-ftctl: rules not loaded: nothing simulated\n");
		return CTL_CONFIG_INVALID;
	}
	if (print_rules) {
		char *t = fm_rules_format(rules);

		fm_rules_free(rules);
		if (t == NULL)
			return CTL_FAILED;
		fputs(t, stdout);
		free(t);
		return CTL_OK;
	}
	text = read_all(argv[0], &len);
	if (text == NULL) {
		fprintf(stderr, "atca-ftctl: %s: %s\n", argv[0], strerror(errno));
		fm_rules_free(rules);
		return CTL_FAILED;
	}
	rc = fm_sim_run(text, len, strcmp(argv[0], "-") == 0 ? "stdin" : argv[0], rules, stdout,
	                stderr);
	free(text);
	if (rc < 0) {
		fprintf(stderr, "atca-ftctl: simulate: %s\n", strerror(-rc));
		return CTL_FAILED;
	}
	return rc ? CTL_FAILED : CTL_OK;
}
