/*
 * Credentials files: IPMI user/password/K_g for the shelf, SNMPv3 pass
 * phrases for an NMS. Same syntax as atca-ftd.conf, flat (no sections).
 * They are refused unless only their owner can read them, because anyone who
 * reads the shelf password can power blades off.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_cfg_int.h"
#include "af_config.h"
#include "af_util.h"

#define CRED_MAX_SIZE 4096

struct cred_key {
	const char *name;
	char *dst;
	size_t size;
	size_t min_len;
	bool required;
	uint32_t line;
};

/* Opens and checks permissions; returns the file's contents. */
static int read_protected(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd, rc;

	rc = af_open_regular(path, &fd, err, errlen);
	if (rc < 0)
		return rc;
	/* fstat on the open descriptor: the file checked is the file read. */
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		rc = -EPERM;
		snprintf(err, errlen,
		         "mode %04o is too open: credentials files must be readable by their "
		         "owner only (chmod 600 %s)",
		         (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = -EPERM;
		snprintf(err, errlen, "owned by uid %u: must be owned by root or uid %u",
		         (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	rc = af_read_file(fd, CRED_MAX_SIZE, buf, len);
	if (rc < 0)
		snprintf(err, errlen, "cannot read: %s",
		         rc == -EFBIG ? "file too large" : strerror(-rc));
out:
	close(fd);
	return rc;
}

static int parse_keys(const char *buf, size_t len, struct cred_key *keys, size_t n_keys, char *err,
                      size_t errlen)
{
	struct af_cfg_tree tree;
	uint32_t line;
	int rc;

	/* Messages about a secrets file never quote it: they end up in logs and
	 * in IPC answers, and a mistyped line may well be a password. */
	rc = af_cfg_tree_parse(buf, len, &tree, &line, err, errlen);
	if (rc < 0) {
		snprintf(err, errlen, "line %u: syntax error (expected 'key: value')", line);
		return rc;
	}
	rc = 0;
	for (const struct af_cfg_node *n = tree.root.child; n != NULL && rc == 0; n = n->next) {
		struct cred_key *k = NULL;

		if (n->type == AF_CFG_SECTION) {
			snprintf(err, errlen, "line %u: sections are not allowed here", n->line);
			rc = -EINVAL;
			break;
		}
		for (size_t i = 0; i < n_keys; i++) {
			if (strcmp(keys[i].name, n->name) == 0)
				k = &keys[i];
		}
		if (k == NULL) {
			snprintf(err, errlen, "line %u: unknown key (expected one of:", n->line);
			for (size_t i = 0; i < n_keys; i++) {
				size_t used = strlen(err);
				snprintf(err + used, errlen - used, " %s", keys[i].name);
			}
			af_strlcpy(err + strlen(err), ")", errlen - strlen(err));
			rc = -EINVAL;
		} else if (k->line != 0) {
			snprintf(err, errlen, "line %u: key '%s' given twice", n->line, n->name);
			rc = -EINVAL;
		} else if (strlen(n->value) >= k->size || strlen(n->value) < k->min_len) {
			if (k->min_len == 0)
				snprintf(err, errlen,
				         "line %u: '%s' must be at most %zu characters long",
				         n->line, k->name, k->size - 1);
			else
				snprintf(err, errlen,
				         "line %u: '%s' must be %zu to %zu characters long",
				         n->line, k->name, k->min_len, k->size - 1);
			rc = -EINVAL;
		} else {
			k->line = n->line;
			af_strlcpy(k->dst, n->value, k->size);
		}
	}
	for (size_t i = 0; i < n_keys && rc == 0; i++) {
		if (keys[i].required && keys[i].line == 0) {
			snprintf(err, errlen, "missing the required key '%s'", keys[i].name);
			rc = -EINVAL;
		}
	}
	/* the tree's text copy holds the secrets too */
	if (tree.text != NULL)
		af_wipe(tree.text, len);
	af_cfg_tree_free(&tree);
	return rc;
}

/* K_g is 20 bytes: written as 40 hex digits after 0x, or as text. */
static int parse_kg(const char *text, struct af_ipmi_credentials *cred, char *err, size_t errlen)
{
	size_t n = strlen(text);

	memset(cred->k_g, 0, sizeof(cred->k_g));
	if (n > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
		if (n - 2 != 2 * sizeof(cred->k_g)) {
			snprintf(err, errlen, "k_g in hex must be exactly 40 digits after 0x");
			return -EINVAL;
		}
		for (size_t i = 0; i < sizeof(cred->k_g); i++) {
			unsigned v;
			char byte[3] = {text[2 + 2 * i], text[3 + 2 * i], '\0'};

			if (!isxdigit((unsigned char)byte[0]) ||
			    !isxdigit((unsigned char)byte[1]) || sscanf(byte, "%x", &v) != 1) {
				snprintf(err, errlen, "k_g is not valid hexadecimal");
				return -EINVAL;
			}
			cred->k_g[i] = (uint8_t)v;
		}
	} else {
		memcpy(cred->k_g, text, n); /* n <= 20, checked by the key size */
	}
	cred->has_k_g = true;
	return 0;
}

/* Reads a protected file into keys; the file's text is wiped after use. */
static int load_keys(const char *path, struct cred_key *keys, size_t n_keys, char *err,
                     size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = read_protected(path, &buf, &len, err, errlen);
	if (rc < 0)
		return rc;
	rc = parse_keys(buf, len, keys, n_keys, err, errlen);
	af_wipe(buf, len);
	free(buf);
	return rc;
}

int af_cred_load_ipmi(const char *path, struct af_ipmi_credentials *cred, char *err, size_t errlen)
{
	char kg[43] = "";
	struct cred_key keys[] = {
	        {"username", cred->username, sizeof(cred->username), 0, true, 0},
	        {"password", cred->password, sizeof(cred->password), 1, true, 0},
	        {"k_g", kg, sizeof(kg), 1, false, 0},
	};
	int rc;

	memset(cred, 0, sizeof(*cred));
	rc = load_keys(path, keys, AF_ARRAY_SIZE(keys), err, errlen);
	if (rc == 0 && keys[2].line != 0) {
		if (strlen(kg) > sizeof(cred->k_g) &&
		    !(kg[0] == '0' && (kg[1] == 'x' || kg[1] == 'X'))) {
			snprintf(err, errlen, "line %u: k_g text is longer than 20 characters",
			         keys[2].line);
			rc = -EINVAL;
		} else {
			rc = parse_kg(kg, cred, err, errlen);
		}
	}
	af_wipe(kg, sizeof(kg));
	if (rc < 0)
		af_wipe(cred, sizeof(*cred));
	return rc;
}

int af_cred_load_snmp(const char *path, struct af_snmp_credentials *cred, char *err, size_t errlen)
{
	/* net-snmp refuses USM pass phrases shorter than 8 characters. */
	struct cred_key keys[] = {
	        {"auth_password", cred->auth_password, sizeof(cred->auth_password), 8, false, 0},
	        {"priv_password", cred->priv_password, sizeof(cred->priv_password), 8, false, 0},
	};
	int rc;

	memset(cred, 0, sizeof(*cred));
	rc = load_keys(path, keys, AF_ARRAY_SIZE(keys), err, errlen);
	if (rc < 0)
		af_wipe(cred, sizeof(*cred));
	return rc;
}

static int key_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The replication link's shared key (atca-vmft): a line of hex digits, or
 * raw bytes (head -c 32 /dev/urandom). Messages never quote the file. */
int af_cred_load_key(const char *path, uint8_t *key, size_t cap, size_t *len, char *err,
                     size_t errlen)
{
	char *buf = NULL;
	size_t n = 0, t;
	bool hex = true;
	int rc;

	*len = 0;
	rc = read_protected(path, &buf, &n, err, errlen);
	if (rc < 0)
		return rc;
	t = n;
	if (t > 0 && buf[t - 1] == '\n')
		t--;
	if (t > 0 && buf[t - 1] == '\r')
		t--;
	for (size_t i = 0; i < t && hex; i++)
		hex = key_hexval(buf[i]) >= 0;
	if (hex && t >= 2 * AF_KEY_MIN && t % 2 == 0) {
		if (t / 2 > cap) {
			snprintf(err, errlen, "key longer than %zu bytes", cap);
			rc = -EINVAL;
			goto out;
		}
		for (size_t i = 0; i < t / 2; i++)
			key[i] =
			        (uint8_t)(key_hexval(buf[2 * i]) << 4 | key_hexval(buf[2 * i + 1]));
		*len = t / 2;
	} else if (n < AF_KEY_MIN) {
		snprintf(err, errlen,
		         "%zu bytes of key material, at least %u needed (head -c 32 /dev/urandom "
		         "> FILE; chmod 600 FILE)",
		         n, AF_KEY_MIN);
		rc = -EINVAL;
	} else if (n > cap) {
		snprintf(err, errlen, "key longer than %zu bytes", cap);
		rc = -EINVAL;
	} else {
		memcpy(key, buf, n);
		*len = n;
	}
out:
	af_wipe(buf, n);
	free(buf);
	return rc;
}
