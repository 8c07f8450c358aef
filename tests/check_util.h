/*
 * Shared helpers of the Check unit tests: one binary per module, each test
 * case with an explicit timeout, temp dirs removed by the test that made them.
 */
#ifndef CHECK_UTIL_H
#define CHECK_UTIL_H

#include <check.h>
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Adds test function func to suite in its own tcase with a timeout. */
#define add_tcase(suite, func, timeout)                                                            \
	do {                                                                                       \
		TCase *tc_ = tcase_create(#func);                                                  \
		tcase_add_test(tc_, func);                                                         \
		tcase_set_timeout(tc_, timeout);                                                   \
		suite_add_tcase(suite, tc_);                                                       \
	} while (0)

/* Runs a suite and returns the process exit status. */
static inline char *temp_base(void);
static inline void remove_tree(const char *dir, int depth);

static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	snprintf(temp_base(), 64, "/tmp/atca-ft-test.XXXXXX");
	if (mkdtemp(temp_base()) == NULL)
		temp_base()[0] = '\0';
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (temp_base()[0])
		remove_tree(temp_base(), 3);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Where the test data lives: $top_srcdir/tests/data, or ./tests/data. */
static inline const char *test_data_dir(char *buf, size_t len)
{
	const char *top = getenv("top_srcdir");

	snprintf(buf, len, "%s/tests/data", top && *top ? top : ".");
	return buf;
}

/* Removes a directory tree of the depth tests make (a run's base dir, a
 * test's dir, a state dir in it, files). */
static inline void remove_tree(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (unlink(path) < 0 && depth > 0)
				remove_tree(path, depth - 1);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Every temp dir of a test binary lives in one base dir that run_suite()
 * makes before the checks run (forked, they inherit its name) and removes
 * after: a failing check, whose process ends before its own cleanup,
 * leaves nothing behind. */
static inline char *temp_base(void)
{
	static char base[64];

	return base;
}

static inline char *make_temp_dir(void)
{
	char *d = malloc(128);

	ck_assert_ptr_nonnull(d);
	snprintf(d, 128, "%s/t.XXXXXX", temp_base()[0] ? temp_base() : "/tmp");
	if (!temp_base()[0])
		snprintf(d, 128, "/tmp/atca-ft-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static inline void remove_temp_dir(char *dir)
{
	remove_tree(dir, 2);
	free(dir);
}

static inline void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0); /* umask must not decide */
	close(fd);
}

/* Reads a whole file into a malloc'd string (NULL if missing). */
static inline char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The smallest valid configuration, loaded without touching credentials
 * or NSS: for module tests that need "a configuration". */
#include "af_config.h"

static inline struct af_config *tiny_config(void)
{
	static const char text[] = "shelf {\n    credentials: /x\n    manager {\n"
	                           "        address: 127.0.0.1\n    }\n}\n"
	                           "blade {\n    slot: 1\n    host: b1\n}\n";
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;

	ck_assert_int_eq(af_cfg_parse_buffer("tiny", text, sizeof(text) - 1,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg,
	                                     &diag),
	                 0);
	return cfg;
}

#endif
