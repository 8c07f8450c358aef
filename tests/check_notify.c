/*
 * src/notify: the SNMP notifier against a real snmptrapd (one per test, on
 * 127.0.0.1 and a free UDP port, logging one line per notification). Invalid
 * inputs first, then every notification's OIDs and values over SNMPv2c, the
 * inform's acknowledgement, timeout and retransmission, SNMPv3 authPriv
 * traps and informs (and a wrong pass phrase that must not get through), the
 * rate limit, the daemon's qb_loop, reconfiguration and two notifiers side
 * by side.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <qb/qbloop.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "af_fault.h"
#include "nt.h"

#define MODULE_PREFIX nt
#define MODULE_NAME "snmp-notifier"
#include "check_module_contract.h"

#define TRAPD "/usr/sbin/snmptrapd"
#define NOTIF ".1.3.6.1.4.1.99999.42.0."
#define OBJ ".1.3.6.1.4.1.99999.42.1."
#define AUTHPASS "auth-phrase-1"
#define PRIVPASS "priv-phrase-1"

/* ---- a real snmptrapd ------------------------------------------------------------- */

struct trapd {
	pid_t pid;
	int port;
	char *dir;
	char log[256];
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* A UDP port nobody listens on (the kernel's choice, released again). */
static int free_udp_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void trapd_exec(const struct trapd *d, const char *conf)
{
	char persist[256], addr[64];
	int null = open("/dev/null", O_RDWR);

	snprintf(persist, sizeof(persist), "%s/persist", d->dir);
	snprintf(addr, sizeof(addr), "udp:127.0.0.1:%d", d->port);
	/* a test that fails before trapd_stop() leaves no receiver behind */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* its persistent file must not be the config file it reads */
	setenv("SNMP_PERSISTENT_DIR", persist, 1);
	setenv("MIBS", "", 1);
	dup2(null, 0);
	dup2(null, 1);
	dup2(null, 2);
	execl(TRAPD, "snmptrapd", "-f", "-C", "-c", conf, "-m", "", "-On", "-Lf", d->log, "-F",
	      "NOTIFY %P|%v\n", addr, (char *)NULL);
	_exit(127);
}

static bool file_has(const char *path, const char *needle)
{
	char *text = slurp(path);
	bool found = text != NULL && strstr(text, needle) != NULL;

	free(text);
	return found;
}

/* users: createUser lines for SNMPv3 ("" for none). port 0: a free one. */
static void trapd_start(struct trapd *d, const char *users, int port)
{
	char conf[256], text[1024], persist[256];

	ck_assert_msg(access(TRAPD, X_OK) == 0, "%s is needed (Debian package snmptrapd)", TRAPD);
	d->dir = make_temp_dir();
	d->port = port ? port : free_udp_port();
	snprintf(d->log, sizeof(d->log), "%s/log", d->dir);
	snprintf(conf, sizeof(conf), "%s/trapd.conf", d->dir);
	snprintf(persist, sizeof(persist), "%s/persist", d->dir);
	ck_assert_int_eq(mkdir(persist, 0700), 0);
	snprintf(text, sizeof(text), "disableAuthorization yes\n%s", users);
	write_file(conf, text, 0600);
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0)
		trapd_exec(d, conf);
	for (int i = 0; i < 500 && !file_has(d->log, "NET-SNMP version"); i++)
		sleep_ms(10);
	ck_assert_msg(file_has(d->log, "NET-SNMP version"), "snmptrapd did not start");
}

static void trapd_stop(struct trapd *d)
{
	if (d->pid > 0) {
		kill(d->pid, SIGTERM);
		waitpid(d->pid, NULL, 0);
	}
	d->pid = 0;
	remove_temp_dir(d->dir);
	d->dir = NULL;
}

/* The index-th (0-based) notification line holding needle, malloc'd. */
static char *trapd_line(const struct trapd *d, const char *needle, int index)
{
	char *text = slurp(d->log), *line, *save = NULL, *found = NULL;

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line != NULL && found == NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "NOTIFY ", 7) == 0 && strstr(line, needle) != NULL &&
		    index-- == 0)
			found = strdup(line);
	}
	free(text);
	return found;
}

static int trapd_count(const struct trapd *d, const char *needle)
{
	int n = 0;
	char *l;

	while ((l = trapd_line(d, needle, n)) != NULL) {
		free(l);
		n++;
	}
	return n;
}

/* Waits (driving nt) until n notification lines hold needle. */
static int trapd_wait(const struct trapd *d, struct nt *nt, const char *needle, int n, int ms)
{
	int got = 0;

	for (int waited = 0; waited <= ms; waited += 20) {
		if (nt != NULL)
			nt_poll_once(nt, 20);
		else
			sleep_ms(20);
		got = trapd_count(d, needle);
		if (got >= n)
			break;
	}
	return got;
}

/* "OBJ.obj = value" followed by a tab or the end of the line. */
static bool has_vb(const char *line, int obj, const char *value)
{
	char vb[384];
	const char *p;
	size_t n;

	snprintf(vb, sizeof(vb), OBJ "%d = %s", obj, value);
	n = strlen(vb);
	for (p = strstr(line, vb); p != NULL; p = strstr(p + 1, vb))
		if (p[n] == '\t' || p[n] == '\0')
			return true;
	return false;
}

/* The objects of each notification in ATCA-FT-MIB's OBJECTS order, then
 * the extra atcaFtDescription where OBJECTS has none; 0 ends a list. */
static const int mib_objects[NT_KIND_MAX + 1][8] = {
        [NT_FAULT_RAISED] = {1, 2, 3, 5, 4, 6, 15},  [NT_FAULT_CLEARED] = {1, 2, 3, 5, 4, 6, 15},
        [NT_RECOVERY_STARTED] = {7, 4, 6, 15},       [NT_RECOVERY_SUCCEEDED] = {7, 4, 6, 15},
        [NT_RECOVERY_FAILED] = {7, 4, 6, 15},        [NT_HOTSWAP_CHANGE] = {8, 10, 9, 15, 6},
        [NT_PROTECTION_LOST] = {11, 12, 6, 15},      [NT_PROTECTION_RESTORED] = {11, 12, 6, 15},
        [NT_SHELF_MANAGER_SWITCHOVER] = {13, 15, 6}, [NT_REPLICATION_STALLED] = {12, 14, 15, 6},
};

/* sysUpTime.0 first, snmpTrapOID.0 = kind second, then exactly the
 * objects of the MIB in its order, atcaFtNodeName our test node. */
static void check_frame(const char *line, int kind)
{
	char oid[128], *copy, *vb, *save = NULL;
	const char *vbs = strchr(line, '|');
	int i = 0;

	ck_assert_ptr_nonnull(vbs);
	ck_assert_msg(strncmp(vbs + 1, ".1.3.6.1.2.1.1.3.0 = Timeticks: ", 32) == 0, "%s", line);
	snprintf(oid, sizeof(oid), "\t.1.3.6.1.6.3.1.1.4.1.0 = OID: " NOTIF "%d\t", kind);
	ck_assert_msg(strstr(vbs, oid) == strchr(vbs, '\t'), "%s", line);
	ck_assert_msg(has_vb(line, NT_OBJ_NODE_NAME, "STRING: \"test-node\""), "%s", line);
	copy = strdup(vbs + 1);
	vb = strtok_r(copy, "\t", &save);
	vb = strtok_r(NULL, "\t", &save); /* past sysUpTime.0 and snmpTrapOID.0 */
	for (vb = strtok_r(NULL, "\t", &save); vb != NULL; vb = strtok_r(NULL, "\t", &save)) {
		snprintf(oid, sizeof(oid), OBJ "%d = ", mib_objects[kind][i]);
		ck_assert_msg(mib_objects[kind][i] != 0 && strncmp(vb, oid, strlen(oid)) == 0,
		              "notification %d, binding %d: %s", kind, i + 3, line);
		i++;
	}
	ck_assert_msg(mib_objects[kind][i] == 0, "notification %d misses bindings: %s", kind, line);
	free(copy);
}

/* ---- configurations ---------------------------------------------------------------- */

static char *persist_dir(void)
{
	static char dir[128];

	/* net-snmp is initialised once per process: one directory for all */
	snprintf(dir, sizeof(dir), "%s/snmp-persist", temp_base()[0] ? temp_base() : "/tmp");
	return dir;
}

static void test_options(struct nt_options *o)
{
	memset(o, 0, sizeof(*o));
	o->persistent_dir = persist_dir();
	o->node_name = "test-node";
	o->key_burst = 100;
	o->global_burst = 1000;
	o->global_refill_ms = 1;
}

/* targets: the body of the snmp section. */
static struct af_config *config_with(const char *targets)
{
	char text[4096];
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	int rc;

	snprintf(
	        text, sizeof(text),
	        "shelf {\n    credentials: /x\n    manager {\n        address: 127.0.0.1\n    }\n}\n"
	        "blade {\n    slot: 1\n    host: b1\n}\nsnmp {\n%s}\n",
	        targets);
	rc = af_cfg_parse_buffer("test", text, strlen(text),
	                         AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg, &diag);
	ck_assert_msg(rc == 0, "%s", diag.n_errors ? diag.errors[0] : "?");
	return cfg;
}

static const char *v2c(char *buf, size_t len, int port, const char *type)
{
	snprintf(buf, len,
	         "    target {\n        address: 127.0.0.1\n        port: %d\n"
	         "        version: 2c\n        type: %s\n        community: public\n"
	         "        retries: 1\n        timeout: 300ms\n    }\n",
	         port, type);
	return buf;
}

static const char *v3(char *buf, size_t len, int port, const char *type, const char *user,
                      const char *auth, const char *priv)
{
	snprintf(buf, len,
	         "    target {\n        address: 127.0.0.1\n        port: %d\n"
	         "        version: 3\n        type: %s\n        user: %s\n"
	         "        security_level: authPriv\n        auth_protocol: %s\n"
	         "        priv_protocol: %s\n        credentials: /creds\n"
	         "        retries: 2\n        timeout: 300ms\n    }\n",
	         port, type, user, auth, priv);
	return buf;
}

/* What af_cred_load_snmp() would have read from the credentials file. */
static void set_creds(struct af_config *cfg, unsigned i, const char *auth, const char *priv)
{
	struct af_cfg_snmp_target *t = &cfg->snmp.targets[i];

	snprintf(t->cred.auth_password, sizeof(t->cred.auth_password), "%s", auth);
	snprintf(t->cred.priv_password, sizeof(t->cred.priv_password), "%s", priv);
	t->cred_loaded = true;
}

static struct nt *start(struct af_config *cfg, qb_loop_t *loop, const struct nt_options *o)
{
	struct af_module_env env = {.cfg = cfg, .loop = loop};
	struct nt_options def;
	struct nt *nt = NULL;

	if (o == NULL) {
		test_options(&def);
		o = &def;
	}
	ck_assert_int_eq(nt_init_with(&nt, &env, o), 0);
	ck_assert_ptr_nonnull(nt);
	return nt;
}

static struct nt_target_stats stats(const struct nt *nt, unsigned i)
{
	struct nt_target_stats st;

	ck_assert_int_eq(nt_target_stats(nt, i, &st), 0);
	return st;
}

/* ---- invalid inputs ---------------------------------------------------------------- */

START_TEST(test_invalid_arguments)
{
	struct af_config *cfg = tiny_config();
	struct af_module_env env = {.cfg = cfg};
	struct nt_target_stats st;
	struct nt *nt = NULL;
	char hex[80];

	ck_assert_int_eq(af_init("check_notify"), 0);
	ck_assert_int_eq(nt_init_with(NULL, &env, NULL), -EINVAL);
	ck_assert_int_eq(nt_init_with(&nt, NULL, NULL), -EINVAL);
	ck_assert_ptr_null(nt);
	ck_assert_int_eq(nt_fault(NULL, true, 1, AF_LAYER_VM, AF_SEV_FATAL, "n", "t", "x"),
	                 -EINVAL);
	ck_assert_int_eq(nt_recovery(NULL, NT_PHASE_STARTED, 1, "t", "x"), -EINVAL);
	ck_assert_int_eq(nt_hotswap(NULL, 3, 4, 7), -EINVAL);
	ck_assert_int_eq(nt_protection(NULL, true, "p", "v", "x"), -EINVAL);
	ck_assert_int_eq(nt_switchover(NULL, "shmc"), -EINVAL);
	ck_assert_int_eq(nt_stalled(NULL, "vm", 1), -EINVAL);
	ck_assert_int_eq(nt_poll_once(NULL, 0), -EINVAL);
	ck_assert_int_eq(nt_target_stats(NULL, 0, &st), -EINVAL);
	ck_assert_int_eq(nt_engine_id(NULL, hex, sizeof(hex)), -EINVAL);
	ck_assert_uint_eq(nt_target_count(NULL), 0);
	ck_assert_int_eq(nt_reconfigure(NULL, NULL), -EINVAL);
	nt_fini(NULL);

	/* no target: nothing to send, nothing initialised */
	ck_assert_int_eq(nt_init(&nt, &env), 0);
	ck_assert_int_eq(nt_poll_once(nt, -1), -EINVAL);
	ck_assert_int_eq(nt_target_stats(nt, 0, &st), -ENOENT);
	ck_assert_int_eq(nt_target_stats(nt, 0, NULL), -EINVAL);
	ck_assert_int_eq(nt_engine_id(nt, NULL, 0), -EINVAL);
	ck_assert_int_eq(nt_fault(nt, true, 1, AF_LAYER_VM, AF_SEV_FATAL, NULL, NULL, NULL), 0);
	ck_assert_int_eq(nt_recovery(nt, 7, 1, "t", "x"), -EINVAL);
	ck_assert_int_eq(nt_recovery(nt, -1, 1, "t", "x"), -EINVAL);
	nt_fini(nt);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

START_TEST(test_mib_values)
{
	/* af_fault.h's layers and severities, and what nobody defined */
	ck_assert_int_eq(nt_mib_layer(AF_LAYER_HARDWARE), NT_MIB_LAYER_HARDWARE);
	ck_assert_int_eq(nt_mib_layer(AF_LAYER_HYPERVISOR), NT_MIB_LAYER_HYPERVISOR);
	ck_assert_int_eq(nt_mib_layer(AF_LAYER_VM), NT_MIB_LAYER_VM);
	ck_assert_int_eq(nt_mib_layer(NT_LAYER_CLUSTER), NT_MIB_LAYER_CLUSTER);
	ck_assert_int_eq(nt_mib_layer(AF_LAYER_COUNT), NT_MIB_LAYER_UNKNOWN);
	ck_assert_int_eq(nt_mib_layer(-1), NT_MIB_LAYER_UNKNOWN);
	ck_assert_int_eq(nt_mib_severity(AF_SEV_PREDICTIVE), NT_MIB_SEV_PREDICTIVE);
	ck_assert_int_eq(nt_mib_severity(AF_SEV_DEGRADED), NT_MIB_SEV_DEGRADED);
	ck_assert_int_eq(nt_mib_severity(AF_SEV_FATAL), NT_MIB_SEV_FATAL);
	ck_assert_int_eq(NT_MIB_SEV_PREDICTIVE, 6); /* ATCA-FT-MIB's numbers */
	ck_assert_int_eq(NT_MIB_SEV_FATAL, 8);
	ck_assert_int_eq(NT_MIB_LAYER_CLUSTER, 4);
	ck_assert_int_eq(nt_mib_severity(AF_SEV_COUNT), NT_MIB_SEV_UNKNOWN);
	ck_assert_int_eq(nt_mib_severity(-5), NT_MIB_SEV_UNKNOWN);
}
END_TEST

/* A target that does not resolve and a v3 target without its pass phrases
 * are logged and skipped; the good one still gets everything. */
START_TEST(test_bad_targets_skipped)
{
	struct trapd d;
	char t1[512], t2[512], t3[512], all[1600];
	struct af_config *cfg;
	struct af_module_status ms;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	snprintf(all, sizeof(all), "%s%s%s", v2c(t1, sizeof(t1), d.port, "trap"),
	         v2c(t2, sizeof(t2), 162, "trap"),
	         v3(t3, sizeof(t3), free_udp_port(), "trap", "nokeys", "sha", "aes"));
	cfg = config_with(all);
	/* a 70-byte label cannot be a DNS name: it fails without a resolver */
	memset(cfg->snmp.targets[1].address, 'a', 70);
	snprintf(cfg->snmp.targets[1].address + 70, 10, ".invalid");
	nt = start(cfg, NULL, NULL);
	ck_assert_uint_eq(nt_target_count(nt), 3);
	ck_assert_str_eq(stats(nt, 0).state, "ready");
	ck_assert_str_eq(stats(nt, 1).state, "down");
	ck_assert_str_eq(stats(nt, 2).state, "down");
	nt_describe(nt, &ms);
	ck_assert_str_eq(ms.name, "snmp-notifier");
	ck_assert_str_eq(ms.state, "degraded");
	ck_assert_ptr_nonnull(strstr(ms.detail, "1/3 target(s)"));
	ck_assert_int_eq(nt_switchover(nt, "shmc-b"), 0);
	ck_assert_int_eq(trapd_wait(&d, nt, NOTIF "9\t", 1, 3000), 1);
	ck_assert_uint_eq(stats(nt, 0).sent, 1);
	ck_assert_uint_eq(stats(nt, 1).sent, 0);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* NULL and empty strings, absurdly long ones, bytes that are not text,
 * values outside the MIB's enumerations: all sent, none crashes. */
START_TEST(test_bad_values)
{
	struct trapd d;
	char t[512], *line, *huge = malloc(5000), want[300];
	struct af_config *cfg;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	cfg = config_with(v2c(t, sizeof(t), d.port, "trap"));
	nt = start(cfg, NULL, NULL);
	memset(huge, 'x', 4999);
	huge[4999] = '\0';
	ck_assert_int_eq(nt_fault(nt, true, 7, 42, 99, NULL, NULL, NULL), 0);
	ck_assert_int_eq(nt_fault(nt, false, 8, -1, -1, "", "", ""), 0);
	ck_assert_int_eq(nt_recovery(nt, NT_PHASE_FAILED, 9, huge, huge), 0);
	ck_assert_int_eq(nt_protection(nt, true, "p\n1\t\x01", "v\xc3\xa9", NULL), 0);
	ck_assert_int_eq(nt_hotswap(nt, 4, -3, 12), 0);
	ck_assert_int_eq(nt_stalled(nt, NULL, UINT64_MAX), 0);
	ck_assert_int_eq(nt_switchover(nt, NULL), 0);
	ck_assert_int_eq(trapd_wait(&d, nt, "NOTIFY", 7, 3000), 7);
	for (int k = 1; k <= NT_KIND_MAX; k++) { /* all bindings there, in order */
		char oid[32];

		snprintf(oid, sizeof(oid), NOTIF "%d\t", k);
		line = trapd_line(&d, oid, 0);
		if (line != NULL)
			check_frame(line, k);
		free(line);
	}

	line = trapd_line(&d, NOTIF "1\t", 0);
	ck_assert_ptr_nonnull(line);
	check_frame(line, 1);
	ck_assert(has_vb(line, 2, "INTEGER: 0")); /* unknown layer */
	ck_assert(has_vb(line, 3, "INTEGER: 0")); /* unknown severity */
	ck_assert(has_vb(line, 5, "\"\""));       /* how snmptrapd prints an empty string */
	ck_assert(has_vb(line, 6, "\"\""));
	free(line);
	line = trapd_line(&d, NOTIF "5\t", 0);
	ck_assert_ptr_nonnull(line);
	/* cut to the MIB's SIZE: atcaFtTarget 128, atcaFtDescription 255 */
	snprintf(want, sizeof(want), "STRING: \"%.128s\"", huge);
	ck_assert_msg(has_vb(line, 4, want), "%s", line);
	snprintf(want, sizeof(want), "STRING: \"%.255s\"", huge);
	ck_assert_msg(has_vb(line, 6, want), "%s", line);
	free(line);
	line = trapd_line(&d, NOTIF "7\t", 0);
	ck_assert_ptr_nonnull(line);
	ck_assert(has_vb(line, 11, "STRING: \"p?1??\""));
	ck_assert(has_vb(line, 12, "STRING: \"v??\""));
	free(line);
	line = trapd_line(&d, NOTIF "6\t", 0);
	ck_assert(has_vb(line, 9, "INTEGER: 0"));
	ck_assert(has_vb(line, 10, "INTEGER: 0"));
	ck_assert(has_vb(line, 6, "STRING: \"blade 4: M? -> M?\""));
	free(line);
	line = trapd_line(&d, NOTIF "10\t", 0);
	ck_assert(has_vb(line, 14, "Counter64: 18446744073709551615"));
	free(line);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	free(huge);
	af_fini();
}
END_TEST

/* ---- SNMPv2c ----------------------------------------------------------------------- */

static void send_each_kind(struct nt *nt)
{
	ck_assert_int_eq(nt_fault(nt, true, 17, AF_LAYER_HARDWARE, AF_SEV_FATAL, "ecc-uncorr",
	                          "blade 3", "memory ECC uncorrectable"),
	                 0);
	ck_assert_int_eq(nt_fault(nt, false, 17, AF_LAYER_HYPERVISOR, AF_SEV_PREDICTIVE,
	                          "libvirt-lost", "host 3", "cleared"),
	                 0);
	ck_assert_int_eq(nt_recovery(nt, NT_PHASE_STARTED, 5, "vm db1", "restart"), 0);
	ck_assert_int_eq(nt_recovery(nt, NT_PHASE_SUCCEEDED, 5, "vm db1", "restarted"), 0);
	ck_assert_int_eq(nt_recovery(nt, NT_PHASE_FAILED, 6, "blade 4", "fence refused"), 0);
	ck_assert_int_eq(nt_hotswap(nt, 3, 4, 7), 0);
	ck_assert_int_eq(nt_protection(nt, true, "pair-1", "db1", "backup lost"), 0);
	ck_assert_int_eq(nt_protection(nt, false, "pair-1", "db1", "protected"), 0);
	ck_assert_int_eq(nt_switchover(nt, "shmc-b"), 0);
	ck_assert_int_eq(nt_stalled(nt, "db1", 123456789012ULL), 0);
}

static void check_each_kind(const struct trapd *d)
{
	char *l;

	for (int k = 1; k <= NT_KIND_MAX; k++) {
		char oid[64];

		snprintf(oid, sizeof(oid), NOTIF "%d\t", k);
		l = trapd_line(d, oid, 0);
		ck_assert_msg(l != NULL, "notification %d missing", k);
		check_frame(l, k);
		free(l);
	}
	l = trapd_line(d, NOTIF "1\t", 0);
	ck_assert(has_vb(l, 1, "Gauge32: 17"));
	ck_assert(has_vb(l, 2, "INTEGER: 1"));
	ck_assert(has_vb(l, 3, "INTEGER: 8")); /* fatal */
	ck_assert(has_vb(l, 5, "STRING: \"ecc-uncorr\""));
	ck_assert(has_vb(l, 4, "STRING: \"blade 3\""));
	ck_assert(has_vb(l, 6, "STRING: \"memory ECC uncorrectable\""));
	free(l);
	l = trapd_line(d, NOTIF "2\t", 0);
	ck_assert(has_vb(l, 2, "INTEGER: 2")); /* hypervisor */
	ck_assert(has_vb(l, 3, "INTEGER: 6")); /* predictive */
	ck_assert(has_vb(l, 4, "STRING: \"host 3\""));
	free(l);
	l = trapd_line(d, NOTIF "3\t", 0);
	ck_assert(has_vb(l, 7, "Gauge32: 5"));
	ck_assert(has_vb(l, 4, "STRING: \"vm db1\""));
	ck_assert(has_vb(l, 6, "STRING: \"restart\""));
	free(l);
	l = trapd_line(d, NOTIF "5\t", 0);
	ck_assert(has_vb(l, 7, "Gauge32: 6"));
	ck_assert(has_vb(l, 6, "STRING: \"fence refused\""));
	free(l);
	l = trapd_line(d, NOTIF "6\t", 0);
	ck_assert(has_vb(l, 8, "Gauge32: 3"));
	ck_assert(has_vb(l, 9, "INTEGER: 8"));  /* M7 */
	ck_assert(has_vb(l, 10, "INTEGER: 5")); /* M4 */
	ck_assert(has_vb(l, 6, "STRING: \"blade 3: M4 -> M7\""));
	free(l);
	l = trapd_line(d, NOTIF "7\t", 0);
	ck_assert(has_vb(l, 11, "STRING: \"pair-1\""));
	ck_assert(has_vb(l, 12, "STRING: \"db1\""));
	ck_assert(has_vb(l, 6, "STRING: \"backup lost\""));
	free(l);
	l = trapd_line(d, NOTIF "9\t", 0);
	ck_assert(has_vb(l, 13, "STRING: \"shmc-b\""));
	free(l);
	l = trapd_line(d, NOTIF "10\t", 0);
	ck_assert(has_vb(l, 12, "STRING: \"db1\""));
	ck_assert(has_vb(l, 14, "Counter64: 123456789012"));
	free(l);
}

START_TEST(test_v2c_trap_each_kind)
{
	struct trapd d;
	char t[512], *l;
	struct af_config *cfg;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	cfg = config_with(v2c(t, sizeof(t), d.port, "trap"));
	nt = start(cfg, NULL, NULL);
	send_each_kind(nt);
	ck_assert_int_eq(trapd_wait(&d, nt, "NOTIFY", NT_KIND_MAX, 3000), NT_KIND_MAX);
	check_each_kind(&d);
	l = trapd_line(&d, NOTIF "1\t", 0);
	ck_assert_ptr_nonnull(strstr(l, "NOTIFY TRAP2, SNMP v2c, community public|"));
	free(l);
	ck_assert_uint_eq(stats(nt, 0).sent, NT_KIND_MAX);
	ck_assert_uint_eq(stats(nt, 0).failed, 0);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

START_TEST(test_v2c_inform_acknowledged)
{
	struct trapd d;
	char t[512];
	struct af_config *cfg;
	struct af_module_status ms;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	cfg = config_with(v2c(t, sizeof(t), d.port, "inform"));
	nt = start(cfg, NULL, NULL);
	ck_assert_int_eq(nt_hotswap(nt, 2, 4, 6), 0);
	ck_assert_uint_eq(stats(nt, 0).outstanding, 1);
	ck_assert_int_eq(trapd_wait(&d, nt, "NOTIFY INFORM, SNMP v2c", 1, 3000), 1);
	for (int i = 0; i < 100 && stats(nt, 0).acked == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	ck_assert_uint_eq(stats(nt, 0).outstanding, 0);
	ck_assert_uint_eq(stats(nt, 0).failed, 0);
	ck_assert_str_eq(stats(nt, 0).type, "inform");
	nt_describe(nt, &ms);
	ck_assert_str_eq(ms.state, "running");
	ck_assert_ptr_nonnull(strstr(ms.detail, "1 acknowledged"));
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* Nobody listens: after its retries (1 x 300 ms) the inform is failed. */
START_TEST(test_v2c_inform_timeout)
{
	char t[512];
	struct af_config *cfg = config_with(v2c(t, sizeof(t), free_udp_port(), "inform"));
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	nt = start(cfg, NULL, NULL);
	ck_assert_int_eq(nt_switchover(nt, "shmc-a"), 0);
	nt_poll_once(nt, 400);
	ck_assert_uint_eq(stats(nt, 0).failed, 0); /* one retry still to come */
	for (int i = 0; i < 100 && stats(nt, 0).failed == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).failed, 1); /* the NMS's report ended it */
	ck_assert_uint_eq(stats(nt, 0).acked, 0);
	ck_assert_str_eq(stats(nt, 0).state, "failing");
	nt_fini(nt);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* The NMS comes up while the inform is being retransmitted: it arrives. */
START_TEST(test_v2c_inform_retransmitted)
{
	struct trapd d;
	char t[512];
	struct af_config *cfg;
	struct nt *nt;
	int port = free_udp_port();

	ck_assert_int_eq(af_init("check_notify"), 0);
	cfg = config_with(v2c(t, sizeof(t), port, "inform"));
	cfg->snmp.targets[0].retries = 10;
	cfg->snmp.targets[0].timeout_ms = 300;
	nt = start(cfg, NULL, NULL);
	ck_assert_int_eq(nt_stalled(nt, "db1", 9), 0);
	nt_poll_once(nt, 250); /* sent and retransmitted to nobody */
	trapd_start(&d, "", port);
	for (int i = 0; i < 150 && stats(nt, 0).acked == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	ck_assert_uint_eq(stats(nt, 0).failed, 0);
	ck_assert_int_ge(trapd_count(&d, NOTIF "10\t"), 1);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* ---- SNMPv3 ------------------------------------------------------------------------ */

static struct nt *start_v3(struct trapd *d, struct af_config **cfg, const char *type,
                           const char *auth, const char *priv, const char *trapd_auth,
                           const char *trapd_priv, const char *phrase)
{
	char t[768], users[512], eid[80];
	struct nt_options o;
	struct nt *nt;
	int port = free_udp_port();

	test_options(&o);
	*cfg = config_with(v3(t, sizeof(t), port, type, "atcaft", auth, priv));
	set_creds(*cfg, 0, phrase, PRIVPASS);
	nt = start(*cfg, NULL, &o);
	ck_assert_int_eq(nt_engine_id(nt, eid, 4), -ENOSPC);
	ck_assert_int_eq(nt_engine_id(nt, eid, sizeof(eid)), 0);
	/* traps: our engine ID is the authoritative one; informs discover the
	 * receiver's */
	if (strcmp(type, "trap") == 0)
		snprintf(users, sizeof(users), "createUser -e %s atcaft %s %s %s %s\n", eid,
		         trapd_auth, AUTHPASS, trapd_priv, PRIVPASS);
	else
		snprintf(users, sizeof(users), "createUser atcaft %s %s %s %s\n", trapd_auth,
		         AUTHPASS, trapd_priv, PRIVPASS);
	trapd_start(d, users, port);
	return nt;
}

START_TEST(test_v3_trap_authpriv)
{
	struct trapd d;
	struct af_config *cfg;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	nt = start_v3(&d, &cfg, "trap", "sha", "aes", "SHA", "AES", AUTHPASS);
	send_each_kind(nt);
	ck_assert_int_eq(
	        trapd_wait(&d, nt, "NOTIFY TRAP2, SNMP v3, user atcaft", NT_KIND_MAX, 3000),
	        NT_KIND_MAX);
	check_each_kind(&d);
	ck_assert_uint_eq(stats(nt, 0).sent, NT_KIND_MAX);
	ck_assert_str_eq(stats(nt, 0).version, "3");
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

START_TEST(test_v3_inform_authpriv)
{
	struct trapd d;
	struct af_config *cfg;
	struct nt *nt;
	char *l;

	ck_assert_int_eq(af_init("check_notify"), 0);
	nt = start_v3(&d, &cfg, "inform", "sha", "aes", "SHA", "AES", AUTHPASS);
	ck_assert_int_eq(nt_fault(nt, true, 3, AF_LAYER_VM, AF_SEV_DEGRADED, "guest-panic",
	                          "vm web1", "guest panicked"),
	                 0);
	ck_assert_int_eq(nt_recovery(nt, NT_PHASE_STARTED, 4, "vm web1", "restart"), 0);
	ck_assert_int_eq(trapd_wait(&d, nt, "NOTIFY INFORM, SNMP v3, user atcaft", 2, 3000), 2);
	for (int i = 0; i < 100 && stats(nt, 0).acked < 2; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 2);
	ck_assert_uint_eq(stats(nt, 0).failed, 0);
	l = trapd_line(&d, NOTIF "1\t", 0);
	check_frame(l, 1);
	ck_assert(has_vb(l, 3, "INTEGER: 7")); /* degraded */
	ck_assert(has_vb(l, 6, "STRING: \"guest panicked\""));
	free(l);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* The SHA-2 / AES-256 end of the configuration's protocols. */
START_TEST(test_v3_sha512_aes256)
{
	struct trapd d;
	struct af_config *cfg;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	nt = start_v3(&d, &cfg, "inform", "sha512", "aes256", "SHA-512", "AES-256", AUTHPASS);
	ck_assert_int_eq(nt_switchover(nt, "shmc-b"), 0);
	for (int i = 0; i < 150 && stats(nt, 0).acked == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	ck_assert_int_eq(trapd_count(&d, "NOTIFY INFORM, SNMP v3, user atcaft"), 1);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* No NMS yet: the informs wait for the engine discovery, fail with it, and
 * once the NMS is up the next one discovers it and gets through. */
START_TEST(test_v3_inform_discovery_retried)
{
	struct trapd d;
	char t[768], users[256];
	struct af_config *cfg;
	struct nt_options o;
	struct nt *nt;
	int port = free_udp_port();

	ck_assert_int_eq(af_init("check_notify"), 0);
	test_options(&o);
	cfg = config_with(v3(t, sizeof(t), port, "inform", "atcaft", "sha256", "aes"));
	set_creds(cfg, 0, AUTHPASS, PRIVPASS);
	cfg->snmp.targets[0].retries = 1;
	cfg->snmp.targets[0].timeout_ms = 150;
	nt = start(cfg, NULL, &o);
	ck_assert_int_eq(nt_stalled(nt, "db1", 1), 0);
	ck_assert_int_eq(nt_stalled(nt, "db2", 1), 0);
	ck_assert_uint_eq(stats(nt, 0).outstanding, 2);
	ck_assert_uint_eq(stats(nt, 0).sent, 0); /* queued behind the discovery */
	for (int i = 0; i < 100 && stats(nt, 0).failed < 2; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).failed, 2);
	ck_assert_uint_eq(stats(nt, 0).timeouts, 2);
	ck_assert_uint_eq(stats(nt, 0).outstanding, 0);
	snprintf(users, sizeof(users), "createUser atcaft SHA-256 %s AES %s\n", AUTHPASS, PRIVPASS);
	trapd_start(&d, users, port);
	ck_assert_int_eq(nt_stalled(nt, "db3", 2), 0);
	for (int i = 0; i < 100 && stats(nt, 0).acked == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	ck_assert_str_eq(stats(nt, 0).state, "ready");
	ck_assert_int_eq(trapd_count(&d, "NOTIFY INFORM, SNMP v3, user atcaft"), 1);
	ck_assert_int_eq(trapd_count(&d, "db3"), 1);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* The NMS is reinstalled (a new engine ID): one inform fails, the next
 * discovers the new engine and gets through. */
START_TEST(test_v3_inform_new_engine)
{
	struct trapd d;
	char users[256];
	struct af_config *cfg;
	struct nt *nt;
	int port;

	ck_assert_int_eq(af_init("check_notify"), 0);
	nt = start_v3(&d, &cfg, "inform", "sha", "aes", "SHA", "AES", AUTHPASS);
	port = d.port;
	ck_assert_int_eq(nt_stalled(nt, "db1", 1), 0);
	for (int i = 0; i < 100 && stats(nt, 0).acked == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	trapd_stop(&d); /* its persistent dir (and engine ID) goes with it */
	snprintf(users, sizeof(users), "createUser atcaft SHA %s AES %s\n", AUTHPASS, PRIVPASS);
	trapd_start(&d, users, port);
	ck_assert_int_eq(nt_stalled(nt, "db2", 2), 0);
	for (int i = 0; i < 100 && stats(nt, 0).failed == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).failed, 1);
	ck_assert_int_eq(nt_stalled(nt, "db3", 3), 0);
	for (int i = 0; i < 100 && stats(nt, 0).acked < 2; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 2);
	ck_assert_int_eq(trapd_count(&d, "\"db3\""), 1);
	ck_assert_int_eq(trapd_count(&d, "\"db2\""), 0);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* A wrong pass phrase: the receiver drops the trap, the inform fails. */
START_TEST(test_v3_wrong_passphrase)
{
	struct trapd d;
	struct af_config *cfg;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	nt = start_v3(&d, &cfg, "trap", "sha", "aes", "SHA", "AES", "not-the-auth-phrase");
	ck_assert_int_eq(nt_switchover(nt, "shmc-b"), 0);
	for (int i = 0; i < 100 && !file_has(d.log, "Authentication failed"); i++)
		nt_poll_once(nt, 20);
	ck_assert(file_has(d.log, "Authentication failed for atcaft"));
	ck_assert_int_eq(trapd_count(&d, "NOTIFY"), 0);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);

	nt = start_v3(&d, &cfg, "inform", "sha", "aes", "SHA", "AES", "not-the-auth-phrase");
	ck_assert_int_eq(nt_switchover(nt, "shmc-b"), 0);
	for (int i = 0; i < 150 && stats(nt, 0).failed == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).failed, 1); /* the NMS's report ended it */
	ck_assert_uint_eq(stats(nt, 0).acked, 0);
	ck_assert_uint_eq(stats(nt, 0).outstanding, 0);
	ck_assert_str_eq(stats(nt, 0).state, "failing");
	ck_assert_int_eq(trapd_count(&d, "NOTIFY"), 0);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* ---- rate limit -------------------------------------------------------------------- */

START_TEST(test_rate_limit_per_key)
{
	struct trapd d;
	char t[512], *l;
	struct af_config *cfg;
	struct nt_options o;
	struct nt *nt;
	int sent = 0, held = 0, extra = 0;
	uint64_t t0;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	cfg = config_with(v2c(t, sizeof(t), d.port, "trap"));
	test_options(&o);
	o.key_burst = 5;
	o.key_refill_ms = 400;
	nt = start(cfg, NULL, &o);
	t0 = af_mono_ns();
	for (int i = 0; i < 50; i++) {
		int rc = nt_fault(nt, true, 1, AF_LAYER_HARDWARE, AF_SEV_DEGRADED, "fan", "blade 5",
		                  "flapping");

		sent += rc == 0;
		held += rc == -EAGAIN;
	}
	ck_assert_int_eq(sent, 5);
	ck_assert_int_eq(held, 45);
	/* another key, another kind of the same target: their own buckets */
	ck_assert_int_eq(nt_fault(nt, true, 2, AF_LAYER_HARDWARE, AF_SEV_DEGRADED, "fan", "blade 6",
	                          "other blade"),
	                 0);
	ck_assert_int_eq(nt_fault(nt, false, 1, AF_LAYER_HARDWARE, AF_SEV_DEGRADED, "fan",
	                          "blade 5", "cleared"),
	                 0);
	ck_assert_uint_eq(stats(nt, 0).suppressed, 45);
	ck_assert_int_eq(trapd_wait(&d, nt, "blade 5\"\t", 6, 3000), 6);
	while (af_mono_ns() < t0 + 450 * AF_NS_PER_MS)
		sleep_ms(10); /* one token back */
	ck_assert_int_eq(nt_fault(nt, true, 1, AF_LAYER_HARDWARE, AF_SEV_DEGRADED, "fan", "blade 5",
	                          "flapping"),
	                 0);
	/* the next is held back, unless a slow machine let a second token in */
	extra = af_mono_ns() >= t0 + 800 * AF_NS_PER_MS;
	ck_assert_int_eq(nt_fault(nt, true, 1, AF_LAYER_HARDWARE, AF_SEV_DEGRADED, "fan", "blade 5",
	                          "again"),
	                 extra ? 0 : -EAGAIN);
	ck_assert_int_eq(trapd_wait(&d, nt, "similar suppressed", 1, 3000), 1);
	l = trapd_line(&d, "similar suppressed", 0);
	ck_assert(has_vb(l, 6, "STRING: \"flapping (45 similar suppressed)\""));
	free(l);
	ck_assert_int_eq(trapd_wait(&d, nt, NOTIF "1\t", 7 + extra, 3000),
	                 7 + extra); /* 5 + blade 6 + the one after */
	ck_assert_int_eq(trapd_count(&d, NOTIF "2\t"), 1);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

START_TEST(test_rate_limit_global)
{
	char t[512];
	struct af_config *cfg = config_with(v2c(t, sizeof(t), free_udp_port(), "trap"));
	struct nt_options o;
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	test_options(&o);
	o.global_burst = 3;
	o.global_refill_ms = 60000;
	nt = start(cfg, NULL, &o);
	ck_assert_int_eq(nt_hotswap(nt, 1, 4, 7), 0);
	ck_assert_int_eq(nt_hotswap(nt, 2, 4, 7), 0);
	ck_assert_int_eq(nt_hotswap(nt, 3, 4, 7), 0);
	ck_assert_int_eq(nt_hotswap(nt, 4, 4, 7), -EAGAIN);
	ck_assert_int_eq(nt_switchover(nt, "shmc-a"), -EAGAIN);
	ck_assert_uint_eq(stats(nt, 0).sent, 3);
	ck_assert_uint_eq(stats(nt, 0).suppressed, 2);
	nt_fini(nt);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* The default: snmp.max_per_minute refills the notifier's bucket. */
START_TEST(test_rate_limit_from_config)
{
	char t[512];
	struct af_config *cfg = config_with(v2c(t, sizeof(t), free_udp_port(), "trap"));
	struct nt_options o;
	struct nt *nt;
	int sent = 0;
	uint64_t t0;

	ck_assert_int_eq(af_init("check_notify"), 0);
	test_options(&o);
	o.global_burst = 2;
	o.global_refill_ms = 0;
	cfg->snmp.max_per_minute = 120; /* one per 500 ms */
	nt = start(cfg, NULL, &o);
	t0 = af_mono_ns();
	for (int i = 0; i < 4; i++)
		sent += nt_hotswap(nt, (unsigned)i, 4, 7) == 0;
	ck_assert_int_eq(sent, 2);
	ck_assert_int_eq(nt_hotswap(nt, 8, 4, 7), -EAGAIN);
	while (af_mono_ns() < t0 + 550 * AF_NS_PER_MS)
		sleep_ms(10);
	ck_assert_int_eq(nt_hotswap(nt, 9, 4, 7), 0);
	if (af_mono_ns() < t0 + 1000 * AF_NS_PER_MS)
		ck_assert_int_eq(nt_hotswap(nt, 10, 4, 7), -EAGAIN);
	nt_fini(nt);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* ---- the daemon's loop, reconfiguration, two notifiers ----------------------------- */

static void stop_loop(void *data)
{
	qb_loop_stop(data);
}

static void run_loop(qb_loop_t *loop, unsigned ms)
{
	qb_loop_timer_handle th;

	ck_assert_int_eq(qb_loop_timer_add(loop, QB_LOOP_LOW, (uint64_t)ms * AF_NS_PER_MS, loop,
	                                   stop_loop, &th),
	                 0);
	qb_loop_run(loop);
}

/* On a qb_loop: the answer is read by the loop's poll, the dead target's
 * retransmission and timeout run from the loop's timer. */
START_TEST(test_loop_informs)
{
	struct trapd d;
	char t1[512], t2[512], all[1100];
	struct af_config *cfg;
	qb_loop_t *loop = qb_loop_create();
	struct nt *nt;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	snprintf(all, sizeof(all), "%s%s", v2c(t1, sizeof(t1), d.port, "inform"),
	         v2c(t2, sizeof(t2), free_udp_port(), "inform"));
	cfg = config_with(all);
	nt = start(cfg, loop, NULL);
	ck_assert_int_eq(nt_protection(nt, true, "pair-2", "web1", "backup blade lost"), 0);
	for (int i = 0; i < 50 && (stats(nt, 0).acked == 0 || stats(nt, 1).failed == 0); i++)
		run_loop(loop, 50);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	ck_assert_uint_eq(stats(nt, 1).failed, 1);
	ck_assert_uint_eq(stats(nt, 1).timeouts, 1);
	ck_assert_int_eq(trapd_count(&d, NOTIF "7\t"), 1);
	nt_fini(nt);
	qb_loop_destroy(loop);
	trapd_stop(&d);
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* Unchanged targets keep their session (and counters), a removed one is
 * closed (its inform in flight cancelled), a new one opened. */
START_TEST(test_reconfigure)
{
	struct trapd d;
	char t1[512], t2[512], all[1100];
	struct af_config *cfg, *cfg2;
	struct nt *nt;
	int dead = free_udp_port();

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d, "", 0);
	snprintf(all, sizeof(all), "%s%s", v2c(t1, sizeof(t1), d.port, "trap"),
	         v2c(t2, sizeof(t2), dead, "inform"));
	cfg = config_with(all);
	cfg->snmp.targets[1].timeout_ms = 60000;
	nt = start(cfg, NULL, NULL);
	ck_assert_int_eq(nt_switchover(nt, "shmc-b"), 0);
	ck_assert_uint_eq(stats(nt, 1).outstanding, 1);
	snprintf(all, sizeof(all), "%s%s", v2c(t2, sizeof(t2), d.port, "inform"),
	         v2c(t1, sizeof(t1), d.port, "trap"));
	/* the same receiver by another name: a target of its own */
	memcpy(strstr(all, "127.0.0.1"), "localhost", 9);
	cfg2 = config_with(all);
	ck_assert_int_eq(nt_reconfigure(nt, NULL), -EINVAL);
	ck_assert_int_eq(nt_reconfigure(nt, cfg2), 0);
	af_cfg_free(cfg);
	ck_assert_uint_eq(nt_target_count(nt), 2);
	ck_assert_str_eq(stats(nt, 0).type, "inform"); /* new */
	ck_assert_uint_eq(stats(nt, 0).sent, 0);
	ck_assert_uint_eq(stats(nt, 1).sent, 1); /* kept */
	ck_assert_int_eq(nt_switchover(nt, "shmc-a"), 0);
	ck_assert_int_eq(trapd_wait(&d, nt, NOTIF "9\t", 3, 3000), 3);
	for (int i = 0; i < 100 && stats(nt, 0).acked == 0; i++)
		nt_poll_once(nt, 20);
	ck_assert_uint_eq(stats(nt, 0).acked, 1);
	nt_fini(nt);
	trapd_stop(&d);
	af_cfg_free(cfg2);
	af_fini();
}
END_TEST

/* Nothing is shared between two notifiers but net-snmp itself. */
START_TEST(test_two_notifiers)
{
	struct trapd d1, d2;
	char t[512];
	struct af_config *cfg1, *cfg2;
	struct nt *a, *b;

	ck_assert_int_eq(af_init("check_notify"), 0);
	trapd_start(&d1, "", 0);
	trapd_start(&d2, "", 0);
	cfg1 = config_with(v2c(t, sizeof(t), d1.port, "inform"));
	cfg2 = config_with(v2c(t, sizeof(t), d2.port, "trap"));
	a = start(cfg1, NULL, NULL);
	b = start(cfg2, NULL, NULL);
	ck_assert_int_eq(nt_stalled(a, "vm-a", 1), 0);
	ck_assert_int_eq(nt_stalled(b, "vm-b", 2), 0);
	ck_assert_int_eq(trapd_wait(&d1, a, "vm-a", 1, 3000), 1);
	ck_assert_int_eq(trapd_wait(&d2, b, "vm-b", 1, 3000), 1);
	for (int i = 0; i < 100 && stats(a, 0).acked == 0; i++)
		nt_poll_once(a, 20);
	ck_assert_uint_eq(stats(a, 0).acked, 1);
	ck_assert_int_eq(trapd_count(&d1, "vm-b"), 0);
	ck_assert_int_eq(trapd_count(&d2, "vm-a"), 0);
	nt_fini(a);
	ck_assert_int_eq(nt_stalled(b, "vm-b", 3), 0); /* b is unaffected */
	ck_assert_int_eq(trapd_wait(&d2, b, "vm-b", 2, 3000), 2);
	nt_fini(b);
	trapd_stop(&d1);
	trapd_stop(&d2);
	af_cfg_free(cfg1);
	af_cfg_free(cfg2);
	af_fini();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("notify");

	add_tcase(s, test_invalid_arguments, 10);
	add_tcase(s, test_mib_values, 10);
	add_tcase(s, test_bad_targets_skipped, 20);
	add_tcase(s, test_bad_values, 20);
	add_tcase(s, test_v2c_trap_each_kind, 20);
	add_tcase(s, test_v2c_inform_acknowledged, 20);
	add_tcase(s, test_v2c_inform_timeout, 20);
	add_tcase(s, test_v2c_inform_retransmitted, 20);
	add_tcase(s, test_v3_trap_authpriv, 20);
	add_tcase(s, test_v3_inform_authpriv, 20);
	add_tcase(s, test_v3_sha512_aes256, 20);
	add_tcase(s, test_v3_inform_discovery_retried, 20);
	add_tcase(s, test_v3_inform_new_engine, 20);
	add_tcase(s, test_v3_wrong_passphrase, 30);
	add_tcase(s, test_rate_limit_per_key, 20);
	add_tcase(s, test_rate_limit_global, 20);
	add_tcase(s, test_rate_limit_from_config, 20);
	add_tcase(s, test_loop_informs, 20);
	add_tcase(s, test_reconfigure, 20);
	add_tcase(s, test_two_notifiers, 20);
	add_module_contract_tests(s);
	return run_suite(s);
}
