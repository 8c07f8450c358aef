/*
 * libFuzzer target: credentials files (src/common/af_cred.c), the IPMI
 * shelf credentials and the SNMPv3 pass phrases, read by atca-ftd at start
 * and reload. The input is written to a scratch file of mode 0600 owned by
 * the fuzzer (so the owner-only check passes and the whole loader runs, as
 * for the daemon: open, fstat, size limit, parse, K_g decoding) and loaded
 * both ways.
 *
 * Checked: the verdict is 0 or -EINVAL/-EFBIG with a reason set on failure
 * only; on failure the credentials are wiped (all zero); on success every
 * string is terminated, within its size and of the minimum length the
 * loader promises (an IPMI password, SNMP pass phrases of 8 or more), and
 * K_g is set only when the file gave it. A reason never quotes a secret: no
 * value of the file (text after "key:" of 6 characters or more) appears in
 * it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "af_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static char path[64];

static void cleanup(void)
{
	unlink(path);
}

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static bool terminated(const char *s, size_t size, size_t min)
{
	const char *z = memchr(s, '\0', size);

	return z != NULL && (size_t)(z - s) >= min;
}

/* Every fixed text a reason is made of, numbers as 0: a value that is part
 * of one may show in a reason without being quoted. */
static const char templates[] =
        "line 0: syntax error (expected 'key: value')|line 0: sections are not allowed here|"
        "line 0: unknown key (expected one of: username password k_g)|"
        "line 0: unknown key (expected one of: auth_password priv_password)|"
        "line 0: key 'username' given twice|line 0: key 'password' given twice|"
        "line 0: key 'k_g' given twice|line 0: key 'auth_password' given twice|"
        "line 0: key 'priv_password' given twice|"
        "line 0: 'username' must be at most 00 characters long|"
        "line 0: 'password' must be 0 to 00 characters long|"
        "line 0: 'k_g' must be 0 to 00 characters long|"
        "line 0: 'auth_password' must be 0 to 000 characters long|"
        "line 0: 'priv_password' must be 0 to 000 characters long|"
        "missing the required key 'username'|missing the required key 'password'|"
        "k_g in hex must be exactly 00 digits after 0x|k_g is not valid hexadecimal|"
        "line 0: k_g text is longer than 00 characters|cannot read: file too large";

static void zero_digits(char *s)
{
	for (; *s; s++)
		if (*s >= '0' && *s <= '9')
			*s = '0';
}

/* no value of the file in the reason */
static void check_no_secret(const uint8_t *data, size_t size, const char *err)
{
	char e[512];

	snprintf(e, sizeof(e), "%s", err);
	zero_digits(e);
	for (size_t i = 0; i < size;) {
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t end = nl ? (size_t)(nl - data) : size;
		const uint8_t *colon = memchr(data + i, ':', end - i);

		if (colon != NULL) {
			size_t v = (size_t)(colon - data) + 1, t = end;
			char val[4200];

			while (v < t && (data[v] == ' ' || data[v] == '\t' || data[v] == '"'))
				v++;
			while (t > v && (data[t - 1] == ' ' || data[t - 1] == '\t' ||
			                 data[t - 1] == '\r' || data[t - 1] == '"'))
				t--;
			if (t - v >= 6 && t - v < sizeof(val)) {
				memcpy(val, data + v, t - v);
				val[t - v] = '\0';
				zero_digits(val);
				if (strlen(val) == t - v && strstr(templates, val) == NULL)
					expect(strstr(e, val) == NULL);
			}
		}
		i = end + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct af_ipmi_credentials ipmi;
	struct af_snmp_credentials snmp;
	char err[512];
	int fd, rc;

	if (path[0] == '\0') {
		snprintf(path, sizeof(path), "/dev/shm/fuzz-cred-%d", (int)getpid());
		atexit(cleanup);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	expect(fd >= 0);
	expect(write(fd, data, size) == (ssize_t)size);
	close(fd);

	memset(&ipmi, 0x5a, sizeof(ipmi));
	err[0] = '\0';
	rc = af_cred_load_ipmi(path, &ipmi, err, sizeof(err));
	expect(rc == 0 || rc == -EINVAL || rc == -EFBIG);
	expect(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc == 0) {
		expect(terminated(ipmi.username, sizeof(ipmi.username), 0));
		expect(terminated(ipmi.password, sizeof(ipmi.password), 1));
		expect(ipmi.has_k_g || all_zero(ipmi.k_g, sizeof(ipmi.k_g)));
	} else {
		expect(err[0] != '\0');
		expect(all_zero(&ipmi, sizeof(ipmi)));
		check_no_secret(data, size, err);
	}

	memset(&snmp, 0x5a, sizeof(snmp));
	err[0] = '\0';
	rc = af_cred_load_snmp(path, &snmp, err, sizeof(err));
	expect(rc == 0 || rc == -EINVAL || rc == -EFBIG);
	expect(memchr(err, '\0', sizeof(err)) != NULL);
	if (rc == 0) {
		expect(snmp.auth_password[0] == '\0' ||
		       terminated(snmp.auth_password, sizeof(snmp.auth_password), 8));
		expect(snmp.priv_password[0] == '\0' ||
		       terminated(snmp.priv_password, sizeof(snmp.priv_password), 8));
	} else {
		expect(err[0] != '\0');
		expect(all_zero(&snmp, sizeof(snmp)));
		check_no_secret(data, size, err);
	}
	return 0;
}
