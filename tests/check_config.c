/*
 * The configuration loader. Invalid inputs first: every file in
 * tests/data/config/bad starts with "# expect: LINE: TEXT" and must fail with
 * its first error at LINE, containing TEXT. Then the good files, the shipped
 * example, defaults, round trips and credentials files.
 */
#include "config.h"

#include "check_util.h"

#include "af_cfg_int.h"
#include "af_config.h"

/* Credentials files the test data refers to by placeholder. */
struct fixtures {
	char *dir;
	char cred[256], cred_open[256], cred_badkey[256], cred_nopass[256];
	char snmp[256], snmp_short[256], snmp_authonly[256];
	char key[256], key_hex[256], key_open[256], key_short[256];
};

static void fixtures_make(struct fixtures *fx)
{
	fx->dir = make_temp_dir();
#define MK(field, name, text, mode)                                                                \
	snprintf(fx->field, sizeof(fx->field), "%s/%s", fx->dir, name);                            \
	write_file(fx->field, text, mode)
	MK(cred, "ok.cred", "username: admin\npassword: secret\n", 0600);
	MK(cred_open, "open.cred", "username: admin\npassword: secret\n", 0644);
	MK(cred_badkey, "badkey.cred", "username: admin\npassword: secret\npasswd: oops\n", 0600);
	MK(cred_nopass, "nopass.cred", "username: admin\n", 0600);
	MK(snmp, "snmp.cred", "auth_password: authpass1\npriv_password: privpass1\n", 0600);
	MK(snmp_short, "snmp-short.cred", "auth_password: short\n", 0600);
	MK(snmp_authonly, "snmp-auth.cred", "auth_password: authpass1\n", 0600);
	/* replication link keys: 32 raw bytes, 64 hex digits, too open, too short */
	MK(key, "vmft.key", "0123456789abcdefghijklmnopqrstuv", 0600);
	MK(key_hex, "vmft-hex.key",
	   "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 0400);
	MK(key_open, "vmft-open.key", "0123456789abcdefghijklmnopqrstuv", 0644);
	MK(key_short, "vmft-short.key", "0123456789abcdef", 0600);
#undef MK
}

static void fixtures_free(struct fixtures *fx)
{
	remove_temp_dir(fx->dir);
}

/* Replaces every placeholder in buf (binary-safe); returns a new buffer. */
static char *substitute(const struct fixtures *fx, const char *buf, size_t len, size_t *out_len)
{
	const struct {
		const char *key;
		const char *val;
	} subs[] = {
	        {"@CRED_OPEN@", fx->cred_open},
	        {"@CRED_BADKEY@", fx->cred_badkey},
	        {"@CRED_NOPASS@", fx->cred_nopass},
	        {"@CRED@", fx->cred},
	        {"@SNMPCRED_SHORT@", fx->snmp_short},
	        {"@SNMPCRED_AUTHONLY@", fx->snmp_authonly},
	        {"@SNMPCRED@", fx->snmp},
	        {"@VMFTKEY_HEX@", fx->key_hex},
	        {"@VMFTKEY_OPEN@", fx->key_open},
	        {"@VMFTKEY_SHORT@", fx->key_short},
	        {"@VMFTKEY@", fx->key},
	};
	char *out = malloc(len * 4 + 4096);
	size_t o = 0;

	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < len;) {
		bool done = false;

		for (size_t k = 0; k < AF_ARRAY_SIZE(subs) && !done; k++) {
			size_t kl = strlen(subs[k].key);

			if (i + kl <= len && memcmp(buf + i, subs[k].key, kl) == 0) {
				memcpy(out + o, subs[k].val, strlen(subs[k].val));
				o += strlen(subs[k].val);
				i += kl;
				done = true;
			}
		}
		if (!done)
			out[o++] = buf[i++];
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

static char *read_bytes(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	char *buf = NULL;

	ck_assert_msg(fd >= 0, "cannot open %s", path);
	ck_assert_int_eq(af_read_file(fd, 4 * 1024 * 1024, &buf, len), 0);
	close(fd);
	return buf;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted list of *.conf in dir. */
static unsigned list_confs(const char *dir, char ***names)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0, cap = 128;
	char **v = calloc(cap, sizeof(*v));

	ck_assert_msg(d != NULL, "cannot open %s", dir);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l < 6 || strcmp(e->d_name + l - 5, ".conf") != 0)
			continue;
		ck_assert_uint_lt(n, cap);
		v[n++] = strdup(e->d_name);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), cmp_str);
	*names = v;
	return n;
}

static void free_names(char **v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

START_TEST(test_bad_files)
{
	struct fixtures fx;
	char dir[512], path[1024], **names;
	unsigned n;

	fixtures_make(&fx);
	snprintf(dir, sizeof(dir), "%s/config/bad", test_data_dir(path, sizeof(path)));
	n = list_confs(dir, &names);
	ck_assert_uint_ge(n, 25); /* the issue asks for at least 25 */
	for (unsigned i = 0; i < n; i++) {
		struct af_cfg_diag diag;
		struct af_config *cfg = NULL;
		char *raw, *text, expect[256], prefix[300];
		unsigned line;
		size_t len, tlen;
		int rc;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		raw = read_bytes(path, &len);
		ck_assert_msg(sscanf(raw, "# expect: %u: %255[^\n]", &line, expect) == 2,
		              "%s: missing '# expect: LINE: TEXT' header", names[i]);
		text = substitute(&fx, raw, len, &tlen);
		rc = af_cfg_parse_buffer(names[i], text, tlen, 0, &cfg, &diag);
		ck_assert_msg(rc < 0, "%s: accepted an invalid configuration", names[i]);
		ck_assert_ptr_null(cfg);
		ck_assert_msg(diag.n_errors >= 1, "%s: failed without an error", names[i]);
		snprintf(prefix, sizeof(prefix), "%s:%u: ", names[i], line);
		ck_assert_msg(diag.error_line[0] == line &&
		                      strncmp(diag.errors[0], prefix, strlen(prefix)) == 0,
		              "%s: first error at line %u, expected %u: %s", names[i],
		              diag.error_line[0], line, diag.errors[0]);
		ck_assert_msg(strstr(diag.errors[0], expect) != NULL,
		              "%s: error '%s' does not contain '%s'", names[i], diag.errors[0],
		              expect);
		free(text);
		free(raw);
	}
	free_names(names, n);
	fixtures_free(&fx);
}
END_TEST

/* Prints cfg and returns the text without comment lines. */
static char *print_uncommented(const struct af_config *cfg)
{
	char *text = NULL, *out, *line, *save = NULL;
	size_t size = 0, o = 0;
	FILE *f = open_memstream(&text, &size);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(af_cfg_print(cfg, f), 0);
	fclose(f);
	out = malloc(size + 1);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p = line;

		while (*p == ' ')
			p++;
		if (*p == '#')
			continue;
		o += (size_t)sprintf(out + o, "%s\n", line);
	}
	out[o] = '\0';
	free(text);
	return out;
}

static struct af_config *parse_ok(const struct fixtures *fx, const char *name, const char *raw,
                                  size_t len)
{
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	size_t tlen;
	char *text = substitute(fx, raw, len, &tlen);
	int rc = af_cfg_parse_buffer(name, text, tlen, 0, &cfg, &diag);

	ck_assert_msg(rc == 0, "%s: %s", name, diag.n_errors ? diag.errors[0] : "failed");
	free(text);
	return cfg;
}

START_TEST(test_good_files_round_trip)
{
	struct fixtures fx;
	char dir[512], path[1024], **names;
	unsigned n;

	fixtures_make(&fx);
	snprintf(dir, sizeof(dir), "%s/config/good", test_data_dir(path, sizeof(path)));
	n = list_confs(dir, &names);
	ck_assert_uint_ge(n, 4);
	for (unsigned i = 0; i < n; i++) {
		struct af_config *cfg, *again;
		struct af_cfg_diag diag;
		char *raw, *first, *second;
		size_t len;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		raw = read_bytes(path, &len);
		cfg = parse_ok(&fx, names[i], raw, len);
		first = print_uncommented(cfg);
		/* the effective configuration loads back to itself */
		ck_assert_msg(
		        af_cfg_parse_buffer("printed", first, strlen(first), 0, &again, &diag) == 0,
		        "%s: printed form rejected: %s\n%s", names[i], diag.errors[0], first);
		second = print_uncommented(again);
		ck_assert_str_eq(first, second);
		ck_assert_int_eq(again->n_blades, cfg->n_blades);
		ck_assert_int_eq(again->n_vms, cfg->n_vms);
		/* secrets never appear in the printed configuration */
		ck_assert_ptr_null(strstr(first, "secret"));
		ck_assert_ptr_null(strstr(first, "privpass1"));
		af_cfg_free(again);
		af_cfg_free(cfg);
		free(first);
		free(second);
		free(raw);
	}
	free_names(names, n);
	fixtures_free(&fx);
}
END_TEST

static struct af_config *load_good(const struct fixtures *fx, const char *name)
{
	char path[1024], buf[512];
	struct af_config *cfg;
	size_t len;
	char *raw;

	snprintf(path, sizeof(path), "%s/config/good/%s", test_data_dir(buf, sizeof(buf)), name);
	raw = read_bytes(path, &len);
	cfg = parse_ok(fx, name, raw, len);
	free(raw);
	return cfg;
}

START_TEST(test_defaults_and_derived)
{
	struct fixtures fx;
	struct af_config *cfg;

	fixtures_make(&fx);
	cfg = load_good(&fx, "minimal.conf");
	ck_assert_str_eq(cfg->daemon.ipc_name, "atca-ft");
	ck_assert_uint_eq(cfg->daemon.ipc_max_clients, 32);
	ck_assert_int_eq((int)cfg->daemon.ipc_gid, -1);
	ck_assert_uint_eq(cfg->shelf.cipher_suite, 3);
	ck_assert_uint_eq(cfg->shelf.managers[0].port, 623);
	ck_assert(cfg->shelf.cred_loaded);
	ck_assert_str_eq(cfg->shelf.cred.username, "admin");
	ck_assert_str_eq(cfg->shelf.cred.password, "secret");
	ck_assert_uint_eq(cfg->blades[0].ipmc, 0x82); /* 2 * (0x40 + slot) */
	ck_assert_str_eq(cfg->blades[0].libvirt_uri, "qemu:///system");
	ck_assert_uint_eq(cfg->detection.sel_interval_ms, 100);
	ck_assert_uint_eq(cfg->detection.sensor_interval_ms, 1000);
	ck_assert(cfg->logging.to_syslog);
	ck_assert(!cfg->logging.to_stderr);
	ck_assert_int_eq(cfg->logging.level, LOG_INFO);
	ck_assert_uint_eq(cfg->logging.blackbox_size, 1024 * 1024);
	ck_assert_uint_eq(cfg->n_pairs, 0); /* one blade: nobody to pair with */
	/* the notifier's rate limit and engine ID */
	ck_assert_uint_eq(cfg->snmp.max_per_minute, 60);
	ck_assert_uint_eq(cfg->snmp.burst, 20);
	ck_assert_uint_eq(cfg->snmp.key_burst, 5);
	ck_assert_uint_eq(cfg->snmp.key_interval_ms, 10000);
	ck_assert_str_eq(cfg->snmp.engine_id, ""); /* the local blade's host name */
	af_cfg_free(cfg);

	cfg = load_good(&fx, "derived-pairs.conf");
	ck_assert_uint_eq(cfg->n_pairs, 2);
	ck_assert(cfg->pairs[0].derived);
	ck_assert_uint_eq(cfg->pairs[0].blades[0], 1);
	ck_assert_uint_eq(cfg->pairs[0].blades[1], 3);
	ck_assert_uint_eq(cfg->pairs[1].blades[0], 5);
	ck_assert_uint_eq(cfg->pairs[1].blades[1], 7);
	ck_assert_uint_eq(af_cfg_partner(cfg, 7), 5);
	ck_assert_uint_eq(af_cfg_partner(cfg, 2), 0);
	ck_assert_ptr_null(af_cfg_blade_by_slot(cfg, 2));
	ck_assert_ptr_nonnull(af_cfg_blade_by_host(cfg, "b5"));
	ck_assert_str_eq(cfg->vms[0].domain, "ft1");
	af_cfg_free(cfg);

	cfg = load_good(&fx, "full.conf");
	ck_assert_int_eq((int)cfg->daemon.ipc_gid, 0);
	ck_assert_uint_eq(cfg->shelf.n_managers, 2);
	ck_assert_str_eq(cfg->shelf.managers[1].address, "fe80::1");
	ck_assert_uint_eq(cfg->shelf.cipher_suite, 17);
	ck_assert_uint_eq(cfg->vms[1].restart_window_ms, 30 * 60 * 1000);
	/* a VM's own checkpoint period, or auto (0: vmft.epoch) */
	ck_assert_uint_eq(cfg->vms[0].epoch_ms, 0);
	ck_assert_uint_eq(cfg->vms[3].epoch_ms, 300);
	ck_assert(af_cfg_vm_has_engine(&cfg->vms[3]));
	ck_assert(!af_cfg_vm_has_engine(&cfg->vms[0])); /* ft without a disk */
	ck_assert_str_eq(cfg->snmp.targets[0].community, "not public");
	ck_assert(cfg->snmp.targets[1].cred_loaded);
	ck_assert_str_eq(cfg->snmp.targets[1].cred.priv_password, "privpass1");
	ck_assert_uint_eq(cfg->snmp.max_per_minute, 120);
	ck_assert_uint_eq(cfg->snmp.burst, 50);
	ck_assert_uint_eq(cfg->snmp.key_burst, 3);
	ck_assert_uint_eq(cfg->snmp.key_interval_ms, 60000);
	ck_assert_str_eq(cfg->snmp.engine_id, "shelf7_blade-1.a");
	ck_assert_int_eq(cfg->logging.syslog_facility, LOG_LOCAL4);
	{
		struct af_log_settings s;

		af_cfg_log_settings(cfg, &s);
		ck_assert_int_eq(s.subsys_level[AF_SS_IPMI], LOG_DEBUG);
		ck_assert_int_eq(s.subsys_level[AF_SS_SNMP], LOG_WARNING);
		ck_assert_int_eq(s.subsys_level[AF_SS_FM], -1);
		ck_assert_int_eq(s.level, LOG_NOTICE);
	}
	af_cfg_free(cfg);

	cfg = load_good(&fx, "quoting.conf");
	ck_assert_str_eq(cfg->shelf.name, "shelf-b");
	ck_assert_str_eq(cfg->blades[0].libvirt_uri, "qemu:///system?socket=/run/libvirt#1");
	ck_assert_str_eq(cfg->snmp.targets[0].community, "  spaced \"quoted\" \\ community  ");
	af_cfg_free(cfg);
	fixtures_free(&fx);
}
END_TEST

START_TEST(test_load_errors)
{
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	char *dir = make_temp_dir(), path[256];
	char *big;
	FILE *f;

	ck_assert_int_eq(af_cfg_load("/nonexistent/atca-ftd.conf", 0, &cfg, &diag), -ENOENT);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(diag.errors[0], "/nonexistent/atca-ftd.conf:0: cannot open"));
	ck_assert_int_lt(af_cfg_load(dir, 0, &cfg, &diag), 0);
	ck_assert_ptr_nonnull(strstr(diag.errors[0], "not a regular file"));

	snprintf(path, sizeof(path), "%s/big.conf", dir);
	f = fopen(path, "w");
	big = malloc(AF_CFG_MAX_FILE_SIZE + 2);
	memset(big, '#', AF_CFG_MAX_FILE_SIZE + 1);
	fwrite(big, 1, AF_CFG_MAX_FILE_SIZE + 1, f);
	fclose(f);
	ck_assert_int_eq(af_cfg_load(path, 0, &cfg, &diag), -EFBIG);
	ck_assert_int_eq(af_cfg_parse_buffer("mem", big, AF_CFG_MAX_FILE_SIZE + 1, 0, &cfg, &diag),
	                 -EFBIG);
	free(big);

	/* an empty file lacks the required sections */
	ck_assert_int_eq(af_cfg_parse_buffer("empty", "", 0, 0, &cfg, &diag), -EINVAL);
	ck_assert_ptr_nonnull(strstr(diag.errors[0], "empty:1: no 'blade' section"));
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_error_cap)
{
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	char text[8192] = "blade {\n";
	size_t o = strlen(text);

	for (int i = 0; i < 40; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "    bogus%d: 1\n", i);
	snprintf(text + o, sizeof(text) - o, "}\n");
	ck_assert_int_eq(af_cfg_parse_buffer("many", text, strlen(text), 0, &cfg, &diag), -EINVAL);
	ck_assert_uint_eq(diag.n_errors, AF_CFG_MAX_ERRORS);
	ck_assert_uint_ge(diag.n_errors_dropped, 40 - AF_CFG_MAX_ERRORS);
	/* every error is reported, not just the first */
	ck_assert_ptr_nonnull(strstr(diag.errors[1], "many:3: unknown key 'bogus1'"));
}
END_TEST

START_TEST(test_credentials)
{
	static const struct {
		const char *text;
		mode_t mode;
		const char *expect;
	} bad[] = {
	        {"username: a\npassword: b\n", 0640, "mode 0640 is too open"},
	        {"username: a\npassword: b\n", 0604, "mode 0604 is too open"},
	        {"", 0600, "missing the required key 'username'"},
	        {"username: a\n", 0600, "missing the required key 'password'"},
	        {"username: a\npassword: 123456789012345678901\n", 0600,
	         "'password' must be 1 to 20 characters"},
	        {"username: 12345678901234567\npassword: b\n", 0600,
	         "'username' must be at most 16 characters"},
	        {"username: a\npassword: b\nusername: c\n", 0600,
	         "line 3: key 'username' given twice"},
	        {"hunter2\n", 0600, "line 1: syntax error"},
	        {"section {\n}\n", 0600, "sections are not allowed"},
	        {"username: a\npassword: b\nk_g: 0x1234\n", 0600, "exactly 40 digits"},
	        {"username: a\npassword: b\nk_g: 0xzz34567890123456789012345678901234567890\n",
	         0600, "not valid hexadecimal"},
	        {"username: a\npassword: b\nk_g: this-key-is-way-too-long\n", 0600,
	         "longer than 20 characters"},
	};
	struct af_ipmi_credentials c;
	char *dir = make_temp_dir(), path[256], link[256], err[256];

	snprintf(path, sizeof(path), "%s/c", dir);
	for (size_t i = 0; i < AF_ARRAY_SIZE(bad); i++) {
		write_file(path, bad[i].text, bad[i].mode);
		ck_assert_msg(af_cred_load_ipmi(path, &c, err, sizeof(err)) < 0,
		              "case %zu accepted", i);
		ck_assert_msg(strstr(err, bad[i].expect) != NULL, "case %zu: '%s' lacks '%s'", i,
		              err, bad[i].expect);
		/* nothing of a rejected file's content survives */
		ck_assert_str_eq(c.password, "");
		ck_assert_ptr_null(strstr(err, "hunter2"));
	}
	ck_assert_int_eq(af_cred_load_ipmi("/nonexistent", &c, err, sizeof(err)), -ENOENT);

	write_file(
	        path,
	        "username: admin\npassword: p#ss word\nk_g: 0x000102030405060708090a0b0c0d0e0f10111213\n",
	        0400);
	ck_assert_int_eq(af_cred_load_ipmi(path, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.password, "p#ss word");
	ck_assert(c.has_k_g);
	ck_assert_uint_eq(c.k_g[0], 0x00);
	ck_assert_uint_eq(c.k_g[19], 0x13);

	/* a symlink is followed, and the target's mode is what counts */
	write_file(path, "username: admin\npassword: x\nk_g: plainkey\n", 0600);
	snprintf(link, sizeof(link), "%s/link", dir);
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(af_cred_load_ipmi(link, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(c.k_g, "plainkey", 8), 0);
	ck_assert_uint_eq(c.k_g[8], 0);
	chmod(path, 0660);
	ck_assert_int_eq(af_cred_load_ipmi(link, &c, err, sizeof(err)), -EPERM);
	remove_temp_dir(dir);
}
END_TEST

/* Every key of the schema is documented in the shipped example and in the
 * man page, and the example itself loads. */
START_TEST(test_example_and_docs_complete)
{
	const char *top = getenv("top_srcdir");
	struct fixtures fx;
	char path[1024];
	struct af_config *cfg;
	char *example, *man, *text;
	size_t len;

	if (top == NULL || *top == '\0')
		top = ".";
	fixtures_make(&fx);
	snprintf(path, sizeof(path), "%s/etc/atca-ftd.conf.example", top);
	example = read_bytes(path, &len);
	snprintf(path, sizeof(path), "%s/man/atca-ftd.conf.5", top);
	man = slurp(path);
	ck_assert_ptr_nonnull(man);

	for (size_t s = 0; s < af_cfg_n_top; s++) {
		const struct af_sspec *sec = &af_cfg_top[s];

		for (size_t k = 0; k <= sec->n_subs; k++) {
			const struct af_sspec *ss = k == 0 ? sec : &sec->subs[k - 1];

			ck_assert_msg(strstr(man, ss->name) != NULL, "man page lacks section %s",
			              ss->name);
			for (size_t i = 0; i < ss->n_keys; i++) {
				char needle[64];

				snprintf(needle, sizeof(needle), "%s:", ss->keys[i].name);
				ck_assert_msg(strstr(example, needle) != NULL,
				              "example lacks key %s.%s", ss->name,
				              ss->keys[i].name);
				snprintf(needle, sizeof(needle), "B %s", ss->keys[i].name);
				ck_assert_msg(strstr(man, needle) != NULL,
				              "atca-ftd.conf(5) lacks key %s.%s (as .B %s)",
				              ss->name, ss->keys[i].name, ss->keys[i].name);
			}
		}
	}

	/* The example names /etc/atca-ft/shelf.cred; point it at a fixture. */
	{
		size_t tlen;
		char *p, *sub = malloc(len + 4096);

		ck_assert_ptr_nonnull(sub);
		memcpy(sub, example, len + 1);
		while ((p = strstr(sub, "/etc/atca-ft/shelf.cred")) != NULL) {
			memmove(p + strlen("@CRED@"), p + strlen("/etc/atca-ft/shelf.cred"),
			        strlen(p + strlen("/etc/atca-ft/shelf.cred")) + 1);
			memcpy(p, "@CRED@", strlen("@CRED@"));
		}
		/* and /etc/atca-ft/vmft.key (same length as @VMFTKEY@ + padding) */
		while ((p = strstr(sub, "/etc/atca-ft/vmft.key")) != NULL) {
			memmove(p + strlen("@VMFTKEY@"), p + strlen("/etc/atca-ft/vmft.key"),
			        strlen(p + strlen("/etc/atca-ft/vmft.key")) + 1);
			memcpy(p, "@VMFTKEY@", strlen("@VMFTKEY@"));
		}
		text = sub;
		tlen = strlen(text);
		cfg = parse_ok(&fx, "atca-ftd.conf.example", text, tlen);
		ck_assert_uint_ge(cfg->n_blades, 2);
		ck_assert_uint_ge(cfg->n_vms, 2);
		af_cfg_free(cfg);
		free(sub);
	}
	free(example);
	free(man);
	fixtures_free(&fx);
}
END_TEST

START_TEST(test_tree_limits)
{
	struct af_cfg_tree tree;
	char err[128];
	uint32_t line;
	char text[64];

	/* nesting to the limit is fine, one more level is not */
	snprintf(text, sizeof(text), "a {\nb {\nc {\nd {\n}\n}\n}\n}\n");
	ck_assert_int_eq(af_cfg_tree_parse(text, strlen(text), &tree, &line, err, sizeof(err)), 0);
	ck_assert_str_eq(tree.root.child->child->child->child->name, "d");
	af_cfg_tree_free(&tree);
	snprintf(text, sizeof(text), "a {\nb {\nc {\nd {\ne {\n}\n}\n}\n}\n}\n");
	ck_assert_int_eq(af_cfg_tree_parse(text, strlen(text), &tree, &line, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_uint_eq(line, 5);
	/* no trailing newline, CR LF */
	snprintf(text, sizeof(text), "k: v\r\nx: \"y\"");
	ck_assert_int_eq(af_cfg_tree_parse(text, strlen(text), &tree, &line, err, sizeof(err)), 0);
	ck_assert_str_eq(tree.root.child->value, "v");
	ck_assert_str_eq(tree.root.child->next->value, "y");
	af_cfg_tree_free(&tree);
}
END_TEST

/* The replication link's key (vmft.key_file, vm.key_file): refused when
 * missing, too open or too short, with the line of the key that names it;
 * vmft.authenticate: no loads with a warning; raw and hex keys load. */
static int load_vmft(const struct fixtures *fx, const char *vmft, const char *vm_extra,
                     struct af_cfg_diag *diag)
{
	char text[2048];
	struct af_config *cfg = NULL;
	size_t tlen;
	char *sub;
	int rc;

	snprintf(text, sizeof(text),
	         "shelf {\n    credentials: @CRED@\n    manager {\n        address: 127.0.0.1\n"
	         "    }\n}\nblade {\n    slot: 1\n    host: b1\n}\nblade {\n    slot: 2\n"
	         "    host: b2\n}\nvmft {\n%s}\nvm {\n    name: fg1\n    blade: 1\n"
	         "    protection: ft\n    disk: /var/lib/fg1.img\n%s}\n",
	         vmft, vm_extra);
	sub = substitute(fx, text, strlen(text), &tlen);
	rc = af_cfg_parse_buffer("key.conf", sub, tlen, 0, &cfg, diag);
	free(sub);
	af_cfg_free(cfg);
	return rc;
}

START_TEST(test_vmft_key)
{
	struct fixtures fx;
	struct af_cfg_diag diag;
	char path[300];
	struct af_config *cfg = NULL;

	fixtures_make(&fx);
	/* missing: the line of vmft.key_file (line 16 of the generated file) */
	ck_assert_int_eq(load_vmft(&fx, "    key_file: /nonexistent/vmft.key\n", "", &diag),
	                 -EINVAL);
	ck_assert_msg(strstr(diag.errors[0], "key.conf:16: vm 'fg1': replication key file "
	                                     "/nonexistent/vmft.key: cannot open") != NULL,
	              "%s", diag.errors[0]);
	ck_assert_ptr_nonnull(strstr(diag.errors[0], "head -c 32 /dev/urandom"));
	/* too open, named by the VM's own key_file (line 22) */
	ck_assert_int_eq(load_vmft(&fx, "", "    key_file: @VMFTKEY_OPEN@\n", &diag), -EINVAL);
	ck_assert_msg(strstr(diag.errors[0], "key.conf:22: vm 'fg1': replication key file") &&
	                      strstr(diag.errors[0], "mode 0644 is too open"),
	              "%s", diag.errors[0]);
	/* too short */
	ck_assert_int_eq(load_vmft(&fx, "    key_file: @VMFTKEY_SHORT@\n", "", &diag), -EINVAL);
	ck_assert_msg(strstr(diag.errors[0], "key.conf:16:") &&
	                      strstr(diag.errors[0], "16 bytes of key material, at least 32"),
	              "%s", diag.errors[0]);
	/* a directory, and the VM's key overriding a good vmft one */
	ck_assert_int_eq(load_vmft(&fx, "    key_file: @VMFTKEY@\n", "    key_file: /tmp\n", &diag),
	                 -EINVAL);
	ck_assert_msg(strstr(diag.errors[0], "key.conf:23:") &&
	                      strstr(diag.errors[0], "not a regular file"),
	              "%s", diag.errors[0]);
	/* good: raw, hex (0400), per VM */
	ck_assert_int_eq(load_vmft(&fx, "    key_file: @VMFTKEY@\n", "", &diag), 0);
	for (unsigned i = 0; i < diag.n_warnings; i++)
		ck_assert_ptr_null(strstr(diag.warnings[i], "authenticate"));
	ck_assert_int_eq(load_vmft(&fx, "", "    key_file: @VMFTKEY_HEX@\n", &diag), 0);
	/* authentication off: no key needed, a warning at its line (16) */
	ck_assert_int_eq(load_vmft(&fx,
	                           "    authenticate: no\n    key_file: /nonexistent/vmft.key\n",
	                           "", &diag),
	                 0);
	{
		bool warned = false;

		for (unsigned i = 0; i < diag.n_warnings; i++)
			warned |= strstr(diag.warnings[i],
			                 "key.conf:16: warning: vmft.authenticate is off") != NULL;
		ck_assert_msg(warned, "no warning about vmft.authenticate (%u warnings)",
		              diag.n_warnings);
	}
	/* skipping credentials skips the key too (atca-ftctl simulate) */
	{
		char text[1024];

		snprintf(text, sizeof(text),
		         "shelf {\n    credentials: /nonexistent/c\n    manager {\n"
		         "        address: 127.0.0.1\n    }\n}\n"
		         "blade {\n    slot: 1\n    host: b1\n}\nblade {\n    slot: 2\n"
		         "    host: b2\n}\nvmft {\n    key_file: /nonexistent/k\n}\nvm {\n"
		         "    name: fg1\n    blade: 1\n    protection: ft\n    disk: /d.img\n}\n");
		ck_assert_msg(af_cfg_parse_buffer("skip.conf", text, strlen(text),
		                                  AF_CFG_SKIP_CREDENTIALS, &cfg, &diag) == 0,
		              "%s", diag.n_errors ? diag.errors[0] : "?");
		ck_assert_int_eq(cfg->vmft.authenticate, true);
		ck_assert_str_eq(cfg->vmft.key_file, "/nonexistent/k");
		af_cfg_free(cfg);
	}
	/* the loader itself: hex decoded, raw taken as is */
	{
		uint8_t k[1024];
		size_t len;
		char err[200];

		ck_assert_int_eq(af_cred_load_key(fx.key_hex, k, sizeof(k), &len, err, sizeof(err)),
		                 0);
		ck_assert_uint_eq(len, 32);
		ck_assert_uint_eq(k[0], 0x00);
		ck_assert_uint_eq(k[1], 0x11);
		ck_assert_uint_eq(k[31], 0xff);
		ck_assert_int_eq(af_cred_load_key(fx.key, k, sizeof(k), &len, err, sizeof(err)), 0);
		ck_assert_uint_eq(len, 32);
		ck_assert_int_eq(memcmp(k, "0123456789abcdefghijklmnopqrstuv", 32), 0);
		ck_assert_int_eq(af_cred_load_key(fx.key, k, 16, &len, err, sizeof(err)), -EINVAL);
		ck_assert_int_eq(
		        af_cred_load_key(fx.key_open, k, sizeof(k), &len, err, sizeof(err)),
		        -EPERM);
		snprintf(path, sizeof(path), "%s/none.key", fx.dir);
		ck_assert_int_eq(af_cred_load_key(path, k, sizeof(k), &len, err, sizeof(err)),
		                 -ENOENT);
	}
	fixtures_free(&fx);
}
END_TEST

/* Review findings: independent errors are all reported in one pass, the
 * unpaired-blade warning points at that blade, file size limits are exact,
 * FIFOs and devices are refused without blocking. */
START_TEST(test_review_regressions)
{
	struct fixtures fx;
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	char text[2048], err[256], path[300];
	size_t tlen;
	char *sub;
	gid_t gid;

	fixtures_make(&fx);
	snprintf(text, sizeof(text),
	         "shelf {\n    credentials: @CRED@\n    cipher_suite: 0\n    manager {\n"
	         "        address: 127.0.0.1\n    }\n}\nblade {\n    slot: 1\n    host: b1\n}\n"
	         "vm {\n    name: web\n    blade: 7\n}\n");
	sub = substitute(&fx, text, strlen(text), &tlen);
	ck_assert_int_eq(af_cfg_parse_buffer("two.conf", sub, tlen, 0, &cfg, &diag), -EINVAL);
	ck_assert_uint_eq(diag.n_errors, 2);
	ck_assert_ptr_nonnull(strstr(diag.errors[0], "two.conf:3: cipher suite 0"));
	ck_assert_ptr_nonnull(strstr(diag.errors[1], "two.conf:14: vm 'web' is placed on blade 7"));
	free(sub);

	snprintf(text, sizeof(text),
	         "shelf {\n    credentials: @CRED@\n    manager {\n        address: 127.0.0.1\n"
	         "    }\n}\nblade {\n    slot: 1\n    host: b1\n}\nblade {\n    slot: 3\n"
	         "    host: b3\n}\nblade {\n    slot: 2\n    host: b2\n}\n");
	sub = substitute(&fx, text, strlen(text), &tlen);
	ck_assert_int_eq(af_cfg_parse_buffer("odd.conf", sub, tlen, 0, &cfg, &diag), 0);
	ck_assert_uint_ge(diag.n_warnings, 1);
	ck_assert_msg(strstr(diag.warnings[0], "odd.conf:11: warning: blade 3 has no partner"),
	              "%s", diag.warnings[0]);
	ck_assert_uint_eq(cfg->pairs[0].blades[0], 1);
	ck_assert_uint_eq(cfg->pairs[0].blades[1], 2);
	af_cfg_free(cfg);
	free(sub);

	/* a credentials file of exactly 4096 bytes loads; one more byte does not */
	{
		char big[4200];
		struct af_ipmi_credentials c;
		size_t base;

		snprintf(big, sizeof(big), "username: a\npassword: b\n");
		base = strlen(big);
		memset(big + base, '#', 4096 - base);
		for (size_t i = base + 99; i < 4096; i += 100)
			big[i] = '\n'; /* comment lines shorter than the line limit */
		big[4095] = '\n';
		big[4096] = '\0';
		snprintf(path, sizeof(path), "%s/exact.cred", fx.dir);
		write_file(path, big, 0600);
		ck_assert_int_eq(af_cred_load_ipmi(path, &c, err, sizeof(err)), 0);
		big[4095] = '#';
		big[4096] = '\n';
		big[4097] = '\0';
		write_file(path, big, 0600);
		ck_assert_int_eq(af_cred_load_ipmi(path, &c, err, sizeof(err)), -EFBIG);
		ck_assert_ptr_nonnull(strstr(err, "file too large"));
	}

	/* a FIFO is refused at once instead of blocking the daemon */
	snprintf(path, sizeof(path), "%s/fifo", fx.dir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	{
		struct af_ipmi_credentials c;

		ck_assert_int_eq(af_cred_load_ipmi(path, &c, err, sizeof(err)), -EINVAL);
		ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
		ck_assert_int_eq(af_cfg_load(path, 0, &cfg, &diag), -EINVAL);
		ck_assert_ptr_nonnull(strstr(diag.errors[0], "not a regular file"));
		ck_assert_int_eq(af_cred_load_ipmi("/dev/null", &c, err, sizeof(err)), -EINVAL);
	}

	ck_assert_int_eq(af_group_lookup("root", &gid), 0);
	ck_assert_uint_eq(gid, 0);
	ck_assert_int_eq(af_group_lookup("no-such-group-xyz", &gid), -ENOENT);
	fixtures_free(&fx);
}
END_TEST

/* The warning of diag that contains text, or NULL. */
static const char *warning_with(const struct af_cfg_diag *diag, const char *text)
{
	for (unsigned i = 0; i < diag->n_warnings; i++)
		if (strstr(diag->warnings[i], text) != NULL)
			return diag->warnings[i];
	return NULL;
}

/* The notifier's rate limit and engine ID at their limits; a key_burst
 * beyond the notifier-wide burst loads with a warning at its line. */
START_TEST(test_snmp_limits)
{
	static const char head[] = "shelf {\n    credentials: @CRED@\n    manager {\n"
	                           "        address: 127.0.0.1\n    }\n}\nblade {\n    slot: 1\n"
	                           "    host: b1\n}\n";
	struct fixtures fx;
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	char text[1024], *sub;
	size_t tlen;

	fixtures_make(&fx);
	/* the bounds themselves load, and print back as they were given */
	snprintf(text, sizeof(text),
	         "%ssnmp {\n    burst: 1\n    key_burst: 1\n    key_interval: 100ms\n"
	         "    engine_id: a23456789012345678901234567\n}\n",
	         head);
	cfg = parse_ok(&fx, "low.conf", text, strlen(text));
	ck_assert_uint_eq(cfg->snmp.burst, 1);
	ck_assert_uint_eq(cfg->snmp.key_burst, 1);
	ck_assert_uint_eq(cfg->snmp.key_interval_ms, 100);
	ck_assert_uint_eq(strlen(cfg->snmp.engine_id), AF_SNMP_ENGINE_ID_MAX);
	{
		char *printed = print_uncommented(cfg);

		ck_assert_ptr_nonnull(strstr(printed, "    key_interval: 100ms\n"));
		ck_assert_ptr_nonnull(
		        strstr(printed, "    engine_id: a23456789012345678901234567\n"));
		free(printed);
	}
	af_cfg_free(cfg);
	snprintf(text, sizeof(text),
	         "%ssnmp {\n    burst: 100000\n    key_burst: 10000\n    key_interval: 24h\n}\n",
	         head);
	cfg = parse_ok(&fx, "high.conf", text, strlen(text));
	ck_assert_uint_eq(cfg->snmp.burst, 100000);
	ck_assert_uint_eq(cfg->snmp.key_interval_ms, 24ULL * 3600 * 1000);
	af_cfg_free(cfg);
	/* without an engine_id nothing is printed: the default stays the host */
	snprintf(text, sizeof(text), "%ssnmp {\n    max_per_minute: 10\n}\n", head);
	cfg = parse_ok(&fx, "none.conf", text, strlen(text));
	{
		char *printed = print_uncommented(cfg);

		ck_assert_ptr_null(strstr(printed, "engine_id"));
		ck_assert_ptr_nonnull(strstr(printed, "    key_burst: 5\n"));
		free(printed);
	}
	af_cfg_free(cfg);

	/* key_burst beyond burst: a warning at key_burst's line (13) */
	snprintf(text, sizeof(text), "%ssnmp {\n    burst: 4\n    key_burst: 6\n}\n", head);
	sub = substitute(&fx, text, strlen(text), &tlen);
	ck_assert_int_eq(af_cfg_parse_buffer("warn.conf", sub, tlen, 0, &cfg, &diag), 0);
	ck_assert_ptr_nonnull(warning_with(&diag, "warn.conf:13: warning: snmp.key_burst (6) is "
	                                          "larger than snmp.burst (4): at most 4"));
	af_cfg_free(cfg);
	free(sub);
	/* ... at burst's line when key_burst is the default */
	snprintf(text, sizeof(text), "%ssnmp {\n    burst: 3\n}\n", head);
	sub = substitute(&fx, text, strlen(text), &tlen);
	ck_assert_int_eq(af_cfg_parse_buffer("warn2.conf", sub, tlen, 0, &cfg, &diag), 0);
	ck_assert_ptr_nonnull(warning_with(&diag, "warn2.conf:12: warning: snmp.key_burst (5)"));
	af_cfg_free(cfg);
	free(sub);
	/* equal is fine */
	snprintf(text, sizeof(text), "%ssnmp {\n    burst: 5\n}\n", head);
	sub = substitute(&fx, text, strlen(text), &tlen);
	ck_assert_int_eq(af_cfg_parse_buffer("eq.conf", sub, tlen, 0, &cfg, &diag), 0);
	ck_assert_ptr_null(warning_with(&diag, "key_burst"));
	af_cfg_free(cfg);
	free(sub);
	fixtures_free(&fx);
}
END_TEST

/* Credentials files owned by someone else are refused even at mode 0600,
 * also behind a symlink (the file read is the file checked); the SNMP
 * ones follow the same rule. SNMP v2c and authNoPriv load, with a warning
 * at the target recommending authPriv. */
START_TEST(test_credentials_owner_and_snmp_security)
{
	struct fixtures fx;
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	struct af_ipmi_credentials ic;
	struct af_snmp_credentials sc;
	char path[300], link[300], err[256], text[1024];
	const char *w;
	size_t tlen;
	char *sub;

	fixtures_make(&fx);
	if (geteuid() == 0) {
		snprintf(path, sizeof(path), "%s/other.cred", fx.dir);
		write_file(path, "username: admin\npassword: secret\n", 0600);
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		ck_assert_int_eq(af_cred_load_ipmi(path, &ic, err, sizeof(err)), -EPERM);
		ck_assert_ptr_nonnull(strstr(err, "owned by uid 65534: must be owned by root"));
		ck_assert_str_eq(ic.password, "");
		snprintf(link, sizeof(link), "%s/link.cred", fx.dir);
		ck_assert_int_eq(symlink(path, link), 0);
		ck_assert_int_eq(af_cred_load_ipmi(link, &ic, err, sizeof(err)), -EPERM);
		write_file(path, "auth_password: authpass1\npriv_password: privpass1\n", 0600);
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		ck_assert_int_eq(af_cred_load_snmp(path, &sc, err, sizeof(err)), -EPERM);
		ck_assert_str_eq(sc.auth_password, "");
	}
	ck_assert_int_eq(af_cred_load_snmp(fx.cred_open, &sc, err, sizeof(err)), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "mode 0644 is too open"));

	snprintf(text, sizeof(text),
	         "shelf {\n    credentials: @CRED@\n    manager {\n        address: 127.0.0.1\n"
	         "    }\n}\nblade {\n    slot: 1\n    host: b1\n}\nsnmp {\n    target {\n"
	         "        address: 192.0.2.1\n        version: 2c\n        community: public\n"
	         "    }\n    target {\n        address: 192.0.2.2\n        version: 3\n"
	         "        user: nms\n        security_level: authNoPriv\n"
	         "        credentials: @SNMPCRED_AUTHONLY@\n    }\n    target {\n"
	         "        address: 192.0.2.3\n        version: 3\n        user: nms\n"
	         "        credentials: @SNMPCRED@\n    }\n}\n");
	sub = substitute(&fx, text, strlen(text), &tlen);
	ck_assert_int_eq(af_cfg_parse_buffer("snmp.conf", sub, tlen, 0, &cfg, &diag), 0);
	w = warning_with(&diag, "192.0.2.1");
	ck_assert_ptr_nonnull(w);
	ck_assert_msg(strstr(w, "snmp.conf:14: warning: SNMP v2c target 192.0.2.1: the community "
	                        "travels in clear text") != NULL &&
	                      strstr(w, "authPriv is recommended") != NULL,
	              "%s", w);
	w = warning_with(&diag, "192.0.2.2");
	ck_assert_ptr_nonnull(w);
	ck_assert_msg(strstr(w, "snmp.conf:17: warning: SNMPv3 target 192.0.2.2 uses authNoPriv") !=
	                      NULL,
	              "%s", w);
	ck_assert_ptr_null(warning_with(&diag, "192.0.2.3")); /* authPriv: nothing to say */
	af_cfg_free(cfg);
	free(sub);
	fixtures_free(&fx);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");

	add_tcase(s, test_bad_files, 30);
	add_tcase(s, test_load_errors, 10);
	add_tcase(s, test_error_cap, 10);
	add_tcase(s, test_credentials, 10);
	add_tcase(s, test_vmft_key, 10);
	add_tcase(s, test_tree_limits, 10);
	add_tcase(s, test_review_regressions, 10);
	add_tcase(s, test_good_files_round_trip, 30);
	add_tcase(s, test_defaults_and_derived, 10);
	add_tcase(s, test_example_and_docs_complete, 10);
	add_tcase(s, test_snmp_limits, 10);
	add_tcase(s, test_credentials_owner_and_snmp_security, 10);
	return s;
}

int main(void)
{
	return run_suite(config_suite());
}
