/*
 * notify: SNMP notifications to the operator's NMS (see nt.h).
 *
 * net-snmp is used through its single-session API (snmp_sess_*), so every
 * session belongs to one notifier and none sits in the library's global
 * list. The library state itself is process-wide; three of its habits shape
 * this file:
 *  - engine ID discovery for SNMPv3 informs: net-snmp's own probe is
 *    synchronous (snmp_sess_synch_response(), a select() loop, even from
 *    snmp_sess_async_send()), so sessions keep SNMP_FLAGS_DONT_PROBE and
 *    this file sends the RFC 3414 discovery request itself, asynchronously;
 *    the informs wait in a queue until the report names the engine;
 *  - SNMPv3 traps are sent with our own engine ID as the authoritative one
 *    (as net-snmp's snmptrap does), so the NMS must know that ID;
 *  - USM users live in a global table keyed by (engine ID, user): a closed
 *    target removes its user, or the next session of the same name would
 *    silently reuse the old keys.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_SNMP
#include "nt.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <net-snmp/library/large_fd_set.h>

#include "af_fault.h"
#include "af_log.h"
#include "af_util.h"

#define NT_APP "atca-ftd"     /* net-snmp's application type: names its files */
#define NT_STR_MAX 255        /* DisplayString */
#define NT_KEYS 64            /* rate-limit keys remembered (LRU) */
#define NT_KEY_NAME 64        /* bytes of a key's target kept for logs */
#define NT_ENGINE_TEXT_MAX 27 /* snmpEngineID: 5 bytes of header + text <= 32 */
#define NT_QUEUE 32           /* v3 informs waiting for the NMS's engine ID */

static const oid nt_base[] = {1, 3, 6, 1, 4, 1, 99999, 42};
static const oid oid_sysuptime[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
static const oid oid_trapoid[] = {1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0};

/* for the log, by enum nt_kind */
static const char *const kind_names[NT_KIND_MAX + 1] = {
        [NT_FAULT_RAISED] = "atcaFtFaultRaised",
        [NT_FAULT_CLEARED] = "atcaFtFaultCleared",
        [NT_RECOVERY_STARTED] = "atcaFtRecoveryStarted",
        [NT_RECOVERY_SUCCEEDED] = "atcaFtRecoverySucceeded",
        [NT_RECOVERY_FAILED] = "atcaFtRecoveryFailed",
        [NT_HOTSWAP_CHANGE] = "atcaFtHotSwapChange",
        [NT_PROTECTION_LOST] = "atcaFtPairProtectionLost",
        [NT_PROTECTION_RESTORED] = "atcaFtPairProtectionRestored",
        [NT_SHELF_MANAGER_SWITCHOVER] = "atcaFtShelfManagerSwitchover",
        [NT_REPLICATION_STALLED] = "atcaFtReplicationStalled",
};

struct nt_bucket {
	uint64_t stamp_ns; /* when tokens was last brought up to date */
	uint32_t tokens;
};

/* One (notification, target) of the rate limit. */
struct nt_key {
	bool used;
	uint8_t kind;
	uint64_t hash; /* of the whole target text: name[] may be cut */
	char name[NT_KEY_NAME];
	struct nt_bucket bucket;
	uint64_t last_use_ns;
	uint32_t suppressed; /* since the last one that passed */
	uint64_t logged_ns;  /* last "suppressing" line */
};

struct nt_target {
	struct nt *nt;
	struct af_cfg_snmp_target cfg; /* own copy: holds the pass phrases */
	char label[AF_CFG_HOST_MAX + 16];
	void *sess; /* NULL: down */
	int fd;
	bool polled;
	bool closing; /* informs timing out now are cancelled, not failed */
	bool failing; /* its last error was logged; a success says so */
	bool rediscover;
	bool probing; /* a discovery request is in flight */
	unsigned queued;
	netsnmp_pdu *queue[NT_QUEUE];
	uint64_t sent, acked, failed, timeouts, cancelled;
	unsigned outstanding;
};

struct nt {
	struct af_module_env env;
	struct nt_options opts;
	char persist_dir[AF_CFG_PATH_MAX];
	char node[NT_STR_MAX + 1];
	char engine_text[NT_ENGINE_TEXT_MAX + 1];
	bool node_given;
	bool engine_given;
	unsigned n_targets;
	struct nt_target *targets[AF_MAX_SNMP_TARGETS];
	struct nt_key keys[NT_KEYS];
	struct nt_bucket global;
	uint64_t global_refill_ns;
	uint64_t suppressed;
	uint64_t start_ns;
	qb_loop_timer_handle timer;
	bool timer_on;
	bool warned_value; /* a bad layer/severity/state was logged once */
};

/* ---- values ------------------------------------------------------------------------ */

int nt_mib_layer(int layer)
{
	switch (layer) {
	case AF_LAYER_HARDWARE:
		return NT_MIB_LAYER_HARDWARE;
	case AF_LAYER_HYPERVISOR:
		return NT_MIB_LAYER_HYPERVISOR;
	case AF_LAYER_VM:
		return NT_MIB_LAYER_VM;
	case NT_LAYER_CLUSTER:
		return NT_MIB_LAYER_CLUSTER;
	default:
		return NT_MIB_LAYER_UNKNOWN;
	}
}

/* The MIB carries the failure model's severities as they are
 * (predictive(6), degraded(7), fatal(8)) beside the X.733 ones (info(1)
 * .. critical(5)), which no fault of atca-ft uses today. */
int nt_mib_severity(int severity)
{
	switch (severity) {
	case AF_SEV_PREDICTIVE:
		return NT_MIB_SEV_PREDICTIVE;
	case AF_SEV_DEGRADED:
		return NT_MIB_SEV_DEGRADED;
	case AF_SEV_FATAL:
		return NT_MIB_SEV_FATAL;
	default:
		return NT_MIB_SEV_UNKNOWN;
	}
}

static int mib_hotswap(int m)
{
	return m >= 0 && m <= 7 ? m + 1 : 0;
}

static const char *mstate_name(int m, char buf[4])
{
	snprintf(buf, 4, "M%d", m);
	return mib_hotswap(m) != 0 ? buf : "M?";
}

/* DisplayString: NVT ASCII, at most 255 bytes; never fails. */
static void display_string(char *dst, size_t size, const char *src)
{
	size_t i = 0;

	for (; src != NULL && src[i] != '\0' && i + 1 < size && i < NT_STR_MAX; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[i] = '\0';
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* ---- net-snmp, once per process ---------------------------------------------------- */

static int lib_log(int major, int minor, void *server, void *client)
{
	const struct snmp_log_message *m = server;
	size_t n;
	int prio;

	(void)major;
	(void)minor;
	(void)client;
	if (m == NULL || m->msg == NULL)
		return 0;
	n = strlen(m->msg);
	while (n > 0 && (m->msg[n - 1] == '\n' || m->msg[n - 1] == '\r'))
		n--;
	prio = m->priority < LOG_ERR ? LOG_ERR : m->priority > LOG_DEBUG ? LOG_DEBUG : m->priority;
	if (n > 0)
		af_log(AF_SS_SNMP, prio, "net-snmp: %.*s", (int)n, m->msg);
	return 0;
}

/* The engine ID's text: the node name made safe and short enough, a long
 * one keeping a hash of its whole self so that blades stay apart. */
static void engine_text(struct nt *nt, const char *src)
{
	char clean[NT_STR_MAX + 1];
	size_t n = 0;

	for (const char *p = src; p != NULL && *p != '\0' && n < NT_STR_MAX; p++)
		clean[n++] = isalnum((unsigned char)*p) || strchr("-_.", *p) != NULL ? *p : '_';
	clean[n] = '\0';
	if (n == 0)
		snprintf(clean, sizeof(clean), "%s", NT_APP);
	if (strlen(clean) <= NT_ENGINE_TEXT_MAX)
		snprintf(nt->engine_text, sizeof(nt->engine_text), "%s", clean);
	else
		snprintf(nt->engine_text, sizeof(nt->engine_text), "%.18s-%08x", clean,
		         (unsigned)(fnv1a(0xcbf29ce484222325ULL, clean) & 0xffffffffu));
}

/* Where net-snmp keeps snmpEngineBoots: a directory of ours. Its config
 * search path is a directory that does not exist, so it reads no file of
 * the user's (~/.snmp) or the system's (/etc/snmp): only the persistent
 * file, whose name differs from any config file's. false: nothing will
 * persist (nor be read). */
static bool lib_dirs(const struct nt *nt)
{
	char conf[AF_CFG_PATH_MAX + 16];
	bool ok = mkdir(nt->persist_dir, 0700) == 0 || errno == EEXIST;

	if (!ok)
		af_warn("snmp: cannot create %s (%s): snmpEngineBoots will not persist, an NMS "
		        "may drop SNMPv3 traps after a restart",
		        nt->persist_dir, strerror(errno));
	snprintf(conf, sizeof(conf), "%s/conf.d", nt->persist_dir);
	set_configuration_directory(conf);
	set_persistent_directory(nt->persist_dir);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, !ok);
	return ok;
}

/* net-snmp lives from the first notifier with a target to the end of the
 * process: its 5.9 re-initialisation after snmp_shutdown() leaks and, with
 * the default engine ID type, corrupts its heap. Whether it is up is its own
 * state (HAVE_READ_CONFIG), not ours. */
static void lib_init(struct nt *nt)
{
	char line[64], hex[80];
	bool persist;

	if (netsnmp_ds_get_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_HAVE_READ_CONFIG))
		return;
	netsnmp_register_loghandler(NETSNMP_LOGHANDLER_CALLBACK, LOG_DEBUG);
	snmp_register_callback(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING, lib_log, NULL);
	persist = lib_dirs(nt);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_LOAD_HOST_FILES, 1);
	netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_NO_TOKEN_WARNINGS, 1);
	/* no MIB: every OID here is numeric ("mibs :" is an empty list) */
	snprintf(line, sizeof(line), "mibs :");
	netsnmp_config_remember(line);
	/* a fixed engine ID: the NMS is configured with it for v3 traps */
	snprintf(line, sizeof(line), "engineID %s", nt->engine_text);
	netsnmp_config_remember(line);
	init_snmp(NT_APP);
	/* the new snmpEngineBoots is on disk before the first trap leaves */
	if (persist)
		snmp_store(NT_APP);
	/* the operator's NMS needs the engine ID to accept our v3 traps */
	if (nt_engine_id(nt, hex, sizeof(hex)) < 0)
		snprintf(hex, sizeof(hex), "?");
	af_notice("snmp: net-snmp %s ready: snmpEngineID %s (\"%s\"), engine boots %lu",
	          netsnmp_get_version(), hex, nt->engine_text,
	          (unsigned long)snmpv3_local_snmpEngineBoots());
}

/* ---- sessions ---------------------------------------------------------------------- */

static void target_error(struct nt_target *t, const char *what, const char *why)
{
	if (t->failing)
		return; /* once, until it works again */
	t->failing = true;
	af_err("snmp: target %s: %s: %s", t->label, what, why);
}

static void target_ok(struct nt_target *t)
{
	if (!t->failing)
		return;
	t->failing = false;
	af_notice("snmp: target %s works again", t->label);
}

static void target_label(struct nt_target *t)
{
	bool v6 = strchr(t->cfg.address, ':') != NULL;

	snprintf(t->label, sizeof(t->label), v6 ? "udp6:[%s]:%u" : "udp:%s:%u", t->cfg.address,
	         t->cfg.port);
}

static const oid *auth_proto(int p, size_t *len)
{
	*len = 10;
	switch (p) {
	case AF_SNMP_AUTH_SHA224:
		return usmHMAC128SHA224AuthProtocol;
	case AF_SNMP_AUTH_SHA256:
		return usmHMAC192SHA256AuthProtocol;
	case AF_SNMP_AUTH_SHA384:
		return usmHMAC256SHA384AuthProtocol;
	case AF_SNMP_AUTH_SHA512:
		return usmHMAC384SHA512AuthProtocol;
	default:
		return usmHMACSHA1AuthProtocol;
	}
}

/* AES-192/256 as net-snmp's "AES192"/"AES256" (Blumenthal key extension). */
static const oid *priv_proto(int p, size_t *len)
{
	switch (p) {
	case AF_SNMP_PRIV_AES192:
		*len = OID_LENGTH(usmAES192PrivProtocol);
		return usmAES192PrivProtocol;
	case AF_SNMP_PRIV_AES256:
		*len = OID_LENGTH(usmAES256PrivProtocol);
		return usmAES256PrivProtocol;
	default:
		*len = OID_LENGTH(usmAESPrivProtocol);
		return usmAESPrivProtocol;
	}
}

static int sec_level(int l)
{
	return l == AF_SNMP_AUTHPRIV     ? SNMP_SEC_LEVEL_AUTHPRIV
	       : l == AF_SNMP_AUTHNOPRIV ? SNMP_SEC_LEVEL_AUTHNOPRIV
	                                 : SNMP_SEC_LEVEL_NOAUTH;
}

/* Ku from the pass phrases (localised by net-snmp once the engine is
 * known). The privacy Ku is hashed with the auth protocol, as USM wants. */
static int session_keys(netsnmp_session *s, const struct af_cfg_snmp_target *c)
{
	const char *ap = c->cred.auth_password, *pp = c->cred.priv_password;

	s->securityAuthProto = (oid *)auth_proto(c->auth_protocol, &s->securityAuthProtoLen);
	s->securityAuthKeyLen = USM_AUTH_KU_LEN;
	if (generate_Ku(s->securityAuthProto, (u_int)s->securityAuthProtoLen, (const u_char *)ap,
	                strlen(ap), s->securityAuthKey, &s->securityAuthKeyLen) != SNMPERR_SUCCESS)
		return -EINVAL;
	if (c->security_level != AF_SNMP_AUTHPRIV)
		return 0;
	s->securityPrivProto = (oid *)priv_proto(c->priv_protocol, &s->securityPrivProtoLen);
	s->securityPrivKeyLen = USM_PRIV_KU_LEN;
	if (generate_Ku(s->securityAuthProto, (u_int)s->securityAuthProtoLen, (const u_char *)pp,
	                strlen(pp), s->securityPrivKey, &s->securityPrivKeyLen) != SNMPERR_SUCCESS)
		return -EINVAL;
	return 0;
}

/* SNMPv3: informs discover the NMS's engine (asynchronously, see the top);
 * traps name ours as the authoritative engine. eid is what the caller
 * frees once the session is open (net-snmp copies it). */
static int session_v3(netsnmp_session *s, const struct af_cfg_snmp_target *c, u_char **eid)
{
	s->version = SNMP_VERSION_3;
	s->securityModel = USM_SEC_MODEL_NUMBER;
	s->securityName = (char *)c->user;
	s->securityNameLen = strlen(c->user);
	s->securityLevel = sec_level(c->security_level);
	if (c->security_level != AF_SNMP_NOAUTHNOPRIV) {
		if (!c->cred_loaded)
			return -ENOKEY;
		if (session_keys(s, c) < 0)
			return -EINVAL;
	}
	if (c->notify == AF_SNMP_TRAP) {
		size_t len = 0;

		*eid = snmpv3_generate_engineID(&len);
		if (*eid == NULL)
			return -ENOMEM;
		s->securityEngineID = s->contextEngineID = *eid;
		s->securityEngineIDLen = s->contextEngineIDLen = len;
	}
	return 0;
}

static int on_response(int op, netsnmp_session *sp, int reqid, netsnmp_pdu *pdu, void *magic);
static int on_session(int op, netsnmp_session *sp, int reqid, netsnmp_pdu *pdu, void *magic);
static int32_t on_readable(int32_t fd, int32_t revents, void *data);

static void session_fill(netsnmp_session *s, struct nt_target *t)
{
	snmp_sess_init(s);
	s->peername = t->label;
	s->retries = (int)t->cfg.retries;
	s->timeout = (long)(t->cfg.timeout_ms * 1000);
	s->flags |= SNMP_FLAGS_DONT_PROBE; /* its probe would wait in select() */
	s->callback = on_session;          /* informs have on_response */
	s->callback_magic = t;
	s->version = SNMP_VERSION_2c;
	s->community = (u_char *)t->cfg.community;
	s->community_len = strlen(t->cfg.community);
}

/* Our reads run only when the loop (or nt_poll_once) saw data, but a
 * spurious wakeup must not block the daemon: the socket is non-blocking. */
static void session_socket(struct nt_target *t)
{
	netsnmp_transport *tr = snmp_sess_transport(t->sess);
	int fl;

	t->fd = tr != NULL ? tr->sock : -1;
	if (t->fd < 0)
		return;
	fl = fcntl(t->fd, F_GETFL);
	if (fl >= 0)
		fcntl(t->fd, F_SETFL, fl | O_NONBLOCK);
	if (t->nt->env.loop != NULL &&
	    qb_loop_poll_add(t->nt->env.loop, QB_LOOP_MED, t->fd, POLLIN, t, on_readable) == 0)
		t->polled = true;
}

static int target_open(struct nt_target *t)
{
	netsnmp_session s;
	u_char *eid = NULL;
	int rc = 0;

	session_fill(&s, t);
	if (t->cfg.version == AF_SNMP_V3)
		rc = session_v3(&s, &t->cfg, &eid);
	if (rc == -ENOKEY) {
		target_error(t, "not opened", "its SNMPv3 credentials are not loaded");
		goto cleanup;
	} else if (rc < 0) {
		target_error(t, "not opened", "cannot derive USM keys from its pass phrases");
		goto cleanup;
	}
	t->sess = snmp_sess_open(&s);
	if (t->sess == NULL) {
		rc = -EHOSTUNREACH;
		target_error(t, "not opened", snmp_api_errstring(s.s_snmp_errno));
		goto cleanup;
	}
	/* net-snmp clears it once open: the next send would probe, blocking */
	snmp_sess_session(t->sess)->flags |= SNMP_FLAGS_DONT_PROBE;
	session_socket(t);
	af_info("snmp: target %s: SNMP%s %s", t->label, t->cfg.version == AF_SNMP_V3 ? "v3" : "v2c",
	        t->cfg.notify == AF_SNMP_INFORM ? "informs" : "traps");
cleanup:
	af_wipe(s.securityAuthKey, sizeof(s.securityAuthKey));
	af_wipe(s.securityPrivKey, sizeof(s.securityPrivKey));
	free(eid);
	return rc;
}

/* Drops our USM user (engine, name) so that a later session of that name
 * gets its own keys; a live session sharing it re-creates it (user_check). */
static void user_forget(const u_char *eid, size_t len, const char *name)
{
	struct usmUser *u;

	if (len == 0)
		return;
	u = usm_get_user(eid, len, name);
	if (u == NULL)
		return;
	usm_remove_user(u);
	usm_free_user(u);
}

/* The USM user of a session whose engine is known, (re-)created from the
 * session's keys when missing: net-snmp does it only when a session opens
 * with the engine known (traps) or after its own, blocking, discovery. */
static int user_check(struct nt_target *t)
{
	netsnmp_session *s = snmp_sess_session(t->sess);

	if (s == NULL || s->version != SNMP_VERSION_3 || s->securityEngineIDLen == 0)
		return 0;
	if (usm_get_user(s->securityEngineID, s->securityEngineIDLen, s->securityName) != NULL)
		return 0;
	s->flags &= ~SNMP_FLAGS_USER_CREATED;
	return usm_create_user_from_session(s) == SNMPERR_SUCCESS ? 0 : -ENOMEM;
}

static void queue_fail(struct nt_target *t, int rc, const char *why);

static void target_close(struct nt_target *t)
{
	netsnmp_session *s;
	u_char eid[64];
	size_t len = 0;

	if (t->sess == NULL)
		return;
	if (t->polled)
		qb_loop_poll_del(t->nt->env.loop, t->fd);
	t->polled = false;
	s = snmp_sess_session(t->sess);
	if (s != NULL && s->version == SNMP_VERSION_3 && s->securityEngineIDLen <= sizeof(eid)) {
		len = s->securityEngineIDLen;
		memcpy(eid, s->securityEngineID, len);
	}
	t->closing = true; /* its informs' callbacks run inside the close */
	snmp_sess_close(t->sess);
	queue_fail(t, -ECANCELED, "closed");
	t->closing = false;
	t->probing = false;
	t->sess = NULL;
	t->fd = -1;
	if (t->cfg.version == AF_SNMP_V3)
		user_forget(eid, len, t->cfg.user);
}

static void target_free(struct nt_target *t)
{
	if (t == NULL)
		return;
	target_close(t);
	if (t->cancelled > 0)
		af_warn("snmp: target %s: %llu inform(s) cancelled", t->label,
		        (unsigned long long)t->cancelled);
	af_wipe(&t->cfg, sizeof(t->cfg));
	free(t);
}

static struct nt_target *target_new(struct nt *nt, const struct af_cfg_snmp_target *c)
{
	struct nt_target *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->nt = nt;
	t->cfg = *c;
	t->fd = -1;
	target_label(t);
	target_open(t); /* a target that does not open is kept, "down" */
	return t;
}

/* An NMS reinstalled with a new engine ID answers nothing we can read:
 * after a failed v3 inform the session forgets the engine (and its user)
 * and the next inform starts with a discovery, once none is in flight.
 * The session stays open: reopening would resolve its address again. */
static void target_rediscover(struct nt_target *t)
{
	netsnmp_session *s;

	if (!t->rediscover || t->outstanding > 0 || t->sess == NULL)
		return;
	t->rediscover = false;
	s = snmp_sess_session(t->sess);
	if (s == NULL || s->securityEngineIDLen == 0)
		return;
	user_forget(s->securityEngineID, s->securityEngineIDLen, t->cfg.user);
	SNMP_FREE(s->securityEngineID);
	SNMP_FREE(s->contextEngineID);
	s->securityEngineIDLen = s->contextEngineIDLen = 0;
	s->flags &= ~SNMP_FLAGS_USER_CREATED;
	af_info("snmp: target %s: its engine ID will be discovered again", t->label);
}

/* ---- the loop ---------------------------------------------------------------------- */

static void target_read(struct nt_target *t)
{
	netsnmp_large_fd_set fds;

	netsnmp_large_fd_set_init(&fds, t->fd + 1);
	NETSNMP_LARGE_FD_SET(t->fd, &fds);
	snmp_sess_read2(t->sess, &fds);
	netsnmp_large_fd_set_cleanup(&fds);
}

/* When net-snmp next wants to retransmit or give up on an inform of t:
 * false when nothing is outstanding. */
static bool target_due(struct nt_target *t, struct timeval *tv)
{
	netsnmp_large_fd_set fds;
	int numfds = 0, block = 1;

	timerclear(tv);
	netsnmp_large_fd_set_init(&fds, t->fd + 1);
	snmp_sess_select_info2_flags(t->sess, &numfds, &fds, tv, &block, NETSNMP_SELECT_NOALARMS);
	netsnmp_large_fd_set_cleanup(&fds);
	return block == 0;
}

static void on_timer(void *data);

/* One loop timer for all sessions, at net-snmp's earliest deadline. */
static void timer_arm(struct nt *nt)
{
	struct timeval tv, best = {0, 0};
	bool due = false;
	uint64_t ns;

	if (nt->env.loop == NULL)
		return;
	for (unsigned i = 0; i < nt->n_targets; i++) {
		if (nt->targets[i]->sess == NULL || !target_due(nt->targets[i], &tv))
			continue;
		if (!due || timercmp(&tv, &best, <))
			best = tv;
		due = true;
	}
	if (nt->timer_on)
		qb_loop_timer_del(nt->env.loop, nt->timer);
	nt->timer_on = false;
	if (!due)
		return;
	ns = (uint64_t)best.tv_sec * AF_NS_PER_S + (uint64_t)best.tv_usec * 1000;
	if (ns < AF_NS_PER_MS)
		ns = AF_NS_PER_MS;
	if (qb_loop_timer_add(nt->env.loop, QB_LOOP_MED, ns, nt, on_timer, &nt->timer) == 0)
		nt->timer_on = true;
}

static void on_timer(void *data)
{
	struct nt *nt = data;

	nt->timer_on = false;
	for (unsigned i = 0; i < nt->n_targets; i++)
		if (nt->targets[i]->sess != NULL)
			snmp_sess_timeout(nt->targets[i]->sess);
	timer_arm(nt);
}

static int32_t on_readable(int32_t fd, int32_t revents, void *data)
{
	struct nt_target *t = data;

	(void)fd;
	(void)revents;
	if (t->sess != NULL)
		target_read(t);
	timer_arm(t->nt);
	return 0;
}

static bool readable(int fd)
{
	char c;

	if (recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0)
		return true;
	return errno != EAGAIN && errno != EWOULDBLOCK; /* a pending error is read too */
}

static void nap(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / AF_NS_PER_S),
	                      .tv_nsec = (long)(ns % AF_NS_PER_S)};

	nanosleep(&ts, NULL);
}

int nt_poll_once(struct nt *nt, int timeout_ms)
{
	uint64_t end, now;

	if (nt == NULL || timeout_ms < 0)
		return -EINVAL;
	end = af_mono_ns() + (uint64_t)timeout_ms * AF_NS_PER_MS;
	for (;;) {
		for (unsigned i = 0; i < nt->n_targets; i++) {
			struct nt_target *t = nt->targets[i];

			if (t->sess != NULL && readable(t->fd))
				target_read(t);
			if (t->sess != NULL)
				snmp_sess_timeout(t->sess);
		}
		now = af_mono_ns();
		if (now >= end)
			break;
		nap(end - now < 2 * AF_NS_PER_MS ? end - now : 2 * AF_NS_PER_MS);
	}
	timer_arm(nt);
	return 0;
}

/* ---- informs' outcomes ------------------------------------------------------------- */

static void inform_failed(struct nt_target *t, int rc, const char *why)
{
	t->failed++;
	if (rc == -ETIMEDOUT)
		t->timeouts++;
	if (t->cfg.version == AF_SNMP_V3)
		t->rediscover = true;
	target_error(t, "inform not acknowledged", why);
}

static void inform_answer(struct nt_target *t, const netsnmp_pdu *pdu)
{
	char why[96];

	if (pdu->command == SNMP_MSG_RESPONSE && pdu->errstat == SNMP_ERR_NOERROR) {
		t->acked++;
		target_ok(t);
		return;
	}
	if (pdu->command == SNMP_MSG_REPORT)
		snprintf(why, sizeof(why), "report: %s",
		         snmp_api_errstring(snmpv3_get_report_type((netsnmp_pdu *)pdu)));
	else
		snprintf(why, sizeof(why), "error status %ld", pdu->errstat);
	inform_failed(t, -EPROTO, why);
}

/* A report the NMS could not authenticate (wrong digest, unknown user):
 * net-snmp tells it early, the inform it answers is still in flight (the
 * report itself, or a timeout, ends it); this only says why. */
static void sec_error(struct nt_target *t, netsnmp_pdu *pdu)
{
	int err = pdu != NULL && pdu->command == SNMP_MSG_REPORT ? snmpv3_get_report_type(pdu)
	                                                         : SNMPERR_AUTHENTICATION_FAILURE;

	target_error(t, "the NMS refused a message", snmp_api_errstring(err));
}

static int on_response(int op, netsnmp_session *sp, int reqid, netsnmp_pdu *pdu, void *magic)
{
	struct nt_target *t = magic;

	(void)sp;
	(void)reqid;
	if (op == NETSNMP_CALLBACK_OP_SEC_ERROR)
		sec_error(t, pdu);
	if (op == NETSNMP_CALLBACK_OP_RESEND || op == NETSNMP_CALLBACK_OP_SEC_ERROR)
		return 1; /* not the end of the inform: it is still in flight */
	if (t->outstanding > 0)
		t->outstanding--;
	if (op == NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE && pdu != NULL)
		inform_answer(t, pdu);
	else if (op == NETSNMP_CALLBACK_OP_TIMED_OUT && t->closing)
		t->cancelled++;
	else if (op == NETSNMP_CALLBACK_OP_TIMED_OUT)
		inform_failed(t, -ETIMEDOUT, "no answer after its retries");
	else
		inform_failed(t, -EIO, "send failed");
	return 1;
}

/* What no request of ours claims (a stray packet or report). */
static int on_session(int op, netsnmp_session *sp, int reqid, netsnmp_pdu *pdu, void *magic)
{
	(void)sp;
	(void)reqid;
	if (op == NETSNMP_CALLBACK_OP_SEC_ERROR)
		sec_error(magic, pdu);
	return 1;
}

/* ---- SNMPv3 engine discovery ------------------------------------------------------ */

static void queue_fail(struct nt_target *t, int rc, const char *why)
{
	for (unsigned i = 0; i < t->queued; i++) {
		snmp_free_pdu(t->queue[i]);
		t->outstanding--;
		if (rc == -ECANCELED)
			t->cancelled++;
		else
			inform_failed(t, rc, why);
	}
	t->queued = 0;
}

static int target_transmit(struct nt_target *t, netsnmp_pdu *pdu);

static void queue_flush(struct nt_target *t)
{
	unsigned n = t->queued;

	t->queued = 0;
	for (unsigned i = 0; i < n; i++) {
		t->outstanding--;
		target_transmit(t, t->queue[i]);
	}
}

/* The report to our discovery request names the NMS's engine (net-snmp
 * copies it into the session when it handles a report); its user can then
 * be localised to it. */
static bool engine_learnt(struct nt_target *t, const netsnmp_pdu *pdu)
{
	netsnmp_session *s = snmp_sess_session(t->sess);

	if (s->securityEngineIDLen == 0 && pdu->securityEngineIDLen > 0) {
		s->securityEngineID = malloc(pdu->securityEngineIDLen);
		if (s->securityEngineID == NULL)
			return false;
		memcpy(s->securityEngineID, pdu->securityEngineID, pdu->securityEngineIDLen);
		s->securityEngineIDLen = pdu->securityEngineIDLen;
	}
	if (s->securityEngineIDLen == 0 || user_check(t) < 0)
		return false;
	af_info("snmp: target %s: engine ID discovered", t->label);
	return true;
}

static int on_probe(int op, netsnmp_session *sp, int reqid, netsnmp_pdu *pdu, void *magic)
{
	struct nt_target *t = magic;

	(void)sp;
	(void)reqid;
	if (op == NETSNMP_CALLBACK_OP_RESEND || op == NETSNMP_CALLBACK_OP_SEC_ERROR)
		return 1; /* SEC_ERROR: the expected unknownEngineID report, told early */
	t->probing = false;
	if (op == NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE && pdu != NULL && engine_learnt(t, pdu))
		queue_flush(t);
	else if (op == NETSNMP_CALLBACK_OP_TIMED_OUT)
		queue_fail(t, t->closing ? -ECANCELED : -ETIMEDOUT,
		           "no answer to engine discovery");
	else
		queue_fail(t, -EPROTO, "engine discovery failed");
	return 1;
}

/* RFC 3414 4: a noAuthNoPriv request with no user and no engine ID, which
 * the NMS answers with a usmStatsUnknownEngineIDs report. */
static void probe_send(struct nt_target *t)
{
	netsnmp_pdu *pdu = snmp_pdu_create(SNMP_MSG_GET);

	if (pdu != NULL) {
		pdu->version = SNMP_VERSION_3;
		pdu->securityModel = USM_SEC_MODEL_NUMBER;
		pdu->securityLevel = SNMP_SEC_LEVEL_NOAUTH;
		pdu->securityName = strdup("");
		pdu->securityNameLen = 0;
	}
	if (pdu != NULL && pdu->securityName != NULL &&
	    snmp_sess_async_send(t->sess, pdu, on_probe, t) != 0) {
		t->probing = true;
		return;
	}
	snmp_free_pdu(pdu);
	queue_fail(t, -EIO, "engine discovery request not sent");
}

static int target_queue(struct nt_target *t, netsnmp_pdu *pdu)
{
	if (t->queued == NT_QUEUE) {
		snmp_free_pdu(pdu);
		t->failed++;
		target_error(t, "not sent", "too many informs wait for the NMS's engine ID");
		return -ENOBUFS;
	}
	t->queue[t->queued++] = pdu;
	t->outstanding++;
	if (!t->probing)
		probe_send(t);
	return 0;
}

/* ---- rate limit -------------------------------------------------------------------- */

/* burst 0: no limit. */
static bool bucket_ready(struct nt_bucket *b, uint32_t burst, uint64_t refill_ns, uint64_t now)
{
	uint64_t n;

	if (burst == 0)
		return true;
	if (b->tokens >= burst || refill_ns == 0) {
		b->tokens = burst;
		b->stamp_ns = now;
		return true;
	}
	n = (now - b->stamp_ns) / refill_ns;
	if (n > 0) {
		b->tokens = n >= burst - b->tokens ? burst : b->tokens + (uint32_t)n;
		b->stamp_ns = b->tokens == burst ? now : b->stamp_ns + n * refill_ns;
	}
	return b->tokens > 0;
}

static void bucket_take(struct nt_bucket *b, uint32_t burst)
{
	if (burst != 0 && b->tokens > 0)
		b->tokens--;
}

static struct nt_key *key_find(struct nt *nt, int kind, const char *target, uint64_t now)
{
	uint64_t h = fnv1a(0xcbf29ce484222325ULL ^ (uint64_t)kind, target);
	struct nt_key *k = NULL, *lru = &nt->keys[0];

	for (unsigned i = 0; i < NT_KEYS; i++) {
		struct nt_key *c = &nt->keys[i];

		if (c->used && c->kind == kind && c->hash == h)
			return c;
		if (!c->used && k == NULL)
			k = c;
		if (c->last_use_ns < lru->last_use_ns)
			lru = c;
	}
	if (k == NULL) {
		k = lru;
		if (k->suppressed > 0)
			af_info("snmp: rate limit forgets %u suppressed %s for '%s'", k->suppressed,
			        kind_names[k->kind], k->name);
	}
	memset(k, 0, sizeof(*k));
	k->used = true;
	k->kind = (uint8_t)kind;
	k->hash = h;
	display_string(k->name, sizeof(k->name), target);
	k->bucket.tokens = nt->opts.key_burst;
	k->bucket.stamp_ns = now;
	return k;
}

static void suppress(struct nt *nt, struct nt_key *k, uint64_t now)
{
	k->suppressed++;
	nt->suppressed++;
	if (k->logged_ns != 0 && now - k->logged_ns < nt->opts.suppress_log_ms * AF_NS_PER_MS)
		return;
	k->logged_ns = now;
	af_notice("snmp: rate limit: holding back %s for '%s' (%u so far)", kind_names[k->kind],
	          k->name, k->suppressed);
}

/* true: send it, announcing *held earlier ones; false: held back. */
static bool rate_pass(struct nt *nt, int kind, const char *target, uint32_t *held)
{
	uint64_t now = af_mono_ns();
	uint64_t key_ns = nt->opts.key_refill_ms * AF_NS_PER_MS;
	struct nt_key *k = key_find(nt, kind, target, now);
	bool key_ok = bucket_ready(&k->bucket, nt->opts.key_burst, key_ns, now);
	bool all_ok = bucket_ready(&nt->global, nt->opts.global_burst, nt->global_refill_ns, now);

	k->last_use_ns = now;
	if (!key_ok || !all_ok) {
		suppress(nt, k, now);
		return false;
	}
	bucket_take(&k->bucket, nt->opts.key_burst);
	bucket_take(&nt->global, nt->opts.global_burst);
	*held = k->suppressed;
	k->suppressed = 0;
	return true;
}

/* ---- building a notification ------------------------------------------------------- */

struct nt_msg {
	netsnmp_pdu *pdu;
	int rc;
};

static void add_var(struct nt_msg *m, const oid *name, size_t n, u_char type, const void *v,
                    size_t len)
{
	if (m->rc == 0 && snmp_pdu_add_variable(m->pdu, name, n, type, v, len) == NULL)
		m->rc = -ENOMEM;
}

/* The objects are accessible-for-notify: the binding names the object
 * (atcaFtObjects.N), as the MIB and its lint (tests/mib_lint.sh) have it. */
static void add_obj(struct nt_msg *m, int obj, u_char type, const void *v, size_t len)
{
	oid name[AF_ARRAY_SIZE(nt_base) + 2];

	memcpy(name, nt_base, sizeof(nt_base));
	name[AF_ARRAY_SIZE(nt_base)] = 1; /* atcaFtObjects */
	name[AF_ARRAY_SIZE(nt_base) + 1] = (oid)obj;
	add_var(m, name, AF_ARRAY_SIZE(name), type, v, len);
}

/* The SIZE of each DisplayString in ATCA-FT-MIB (255 where it has none). */
static size_t str_max(int obj)
{
	switch (obj) {
	case NT_OBJ_TARGET:
		return 128;
	case NT_OBJ_FAULT_NAME:
	case NT_OBJ_PAIR_NAME:
	case NT_OBJ_VM_NAME:
		return 64;
	default:
		return NT_STR_MAX;
	}
}

static void add_str(struct nt_msg *m, int obj, const char *s)
{
	char buf[NT_STR_MAX + 1];

	display_string(buf, str_max(obj) + 1, s);
	add_obj(m, obj, ASN_OCTET_STR, buf, strlen(buf));
}

static void add_u32(struct nt_msg *m, int obj, uint32_t v)
{
	u_long x = v;

	add_obj(m, obj, ASN_UNSIGNED, &x, sizeof(x));
}

static void add_int(struct nt_msg *m, int obj, long v)
{
	add_obj(m, obj, ASN_INTEGER, &v, sizeof(v));
}

static void add_c64(struct nt_msg *m, int obj, uint64_t v)
{
	struct counter64 c = {.high = (u_long)(v >> 32), .low = (u_long)(v & 0xffffffffu)};

	add_obj(m, obj, ASN_COUNTER64, &c, sizeof(c));
}

/* sysUpTime.0 (this notifier's age) and snmpTrapOID.0 come first. */
static int msg_begin(struct nt *nt, struct nt_msg *m, int kind)
{
	oid trap[AF_ARRAY_SIZE(nt_base) + 2];
	/* TimeTicks is 32 bits: it wraps after 497 days, as sysUpTime does */
	u_long ticks = (u_long)((af_mono_ns() - nt->start_ns) / (10 * AF_NS_PER_MS)) & 0xffffffffu;

	m->rc = 0;
	m->pdu = snmp_pdu_create(SNMP_MSG_TRAP2);
	if (m->pdu == NULL)
		return -ENOMEM;
	memcpy(trap, nt_base, sizeof(nt_base));
	trap[AF_ARRAY_SIZE(nt_base)] = 0; /* atcaFtNotifications */
	trap[AF_ARRAY_SIZE(nt_base) + 1] = (oid)kind;
	add_var(m, oid_sysuptime, AF_ARRAY_SIZE(oid_sysuptime), ASN_TIMETICKS, &ticks,
	        sizeof(ticks));
	add_var(m, oid_trapoid, AF_ARRAY_SIZE(oid_trapoid), ASN_OBJECT_ID, trap, sizeof(trap));
	return m->rc;
}

/* atcaFtDescription: the text, and what the rate limit held back. */
static void add_desc(struct nt_msg *m, const char *text, uint32_t held)
{
	char buf[NT_STR_MAX + 1], tail[48] = "";
	size_t room;

	if (held > 0)
		snprintf(tail, sizeof(tail), "%s(%u similar suppressed)",
		         text != NULL && *text != '\0' ? " " : "", held);
	room = sizeof(buf) - strlen(tail);
	display_string(buf, room, text);
	strcat(buf, tail);
	add_str(m, NT_OBJ_DESCRIPTION, buf);
}

/* The end of every notification: atcaFtDescription then atcaFtNodeName
 * where the MIB's OBJECTS list both, else atcaFtNodeName (the last of
 * OBJECTS) then atcaFtDescription as an extra binding. */
static void msg_end(struct nt *nt, struct nt_msg *m, const char *text, uint32_t held,
                    bool desc_in_objects)
{
	if (desc_in_objects)
		add_desc(m, text, held);
	add_str(m, NT_OBJ_NODE_NAME, nt->node);
	if (!desc_in_objects)
		add_desc(m, text, held);
}

/* ---- sending ----------------------------------------------------------------------- */

/* Hands one PDU (ours from now on) to net-snmp. */
static int target_transmit(struct nt_target *t, netsnmp_pdu *pdu)
{
	netsnmp_session *s = snmp_sess_session(t->sess);
	bool inform = pdu->command == SNMP_MSG_INFORM;

	s->flags |= SNMP_FLAGS_DONT_PROBE;
	if (user_check(t) < 0 || snmp_sess_async_send(t->sess, pdu, on_response, t) == 0) {
		snmp_free_pdu(pdu);
		t->failed++;
		target_error(t, "not sent", snmp_api_errstring(s->s_snmp_errno));
		return -EIO;
	}
	t->sent++;
	if (inform)
		t->outstanding++;
	else
		target_ok(t);
	return 0;
}

static int target_send(struct nt_target *t, const netsnmp_pdu *tmpl)
{
	bool inform = t->cfg.notify == AF_SNMP_INFORM;
	netsnmp_pdu *pdu;

	target_rediscover(t);
	if (t->sess == NULL)
		return -ENOTCONN;
	pdu = snmp_clone_pdu((netsnmp_pdu *)tmpl);
	if (pdu == NULL)
		return -ENOMEM;
	if (!inform)
		return target_transmit(t, pdu);
	pdu->command = SNMP_MSG_INFORM;
	if (t->cfg.version == AF_SNMP_V3 && snmp_sess_session(t->sess)->securityEngineIDLen == 0)
		return target_queue(t, pdu);
	return target_transmit(t, pdu);
}

static int msg_send(struct nt *nt, struct nt_msg *m)
{
	int rc = m->rc, sent = 0;

	for (unsigned i = 0; rc == 0 && i < nt->n_targets; i++) {
		int r = target_send(nt->targets[i], m->pdu);

		if (r == -ENOMEM)
			rc = r;
		sent += r == 0;
	}
	snmp_free_pdu(m->pdu);
	m->pdu = NULL;
	timer_arm(nt);
	if (rc == 0 && sent == 0 && nt->n_targets > 0)
		rc = -EIO;
	return rc;
}

/* The common front of every notification: a NULL nt, no target, the rate
 * limit. Returns 1 to go on (msg begun), 0 or -errno to return. */
static int msg_start(struct nt *nt, struct nt_msg *m, int kind, const char *key, uint32_t *held)
{
	if (nt == NULL)
		return -EINVAL;
	if (nt->n_targets == 0)
		return 0;
	if (!rate_pass(nt, kind, key, held))
		return -EAGAIN;
	if (msg_begin(nt, m, kind) < 0) {
		snmp_free_pdu(m->pdu);
		return -ENOMEM;
	}
	return 1;
}

static void warn_value(struct nt *nt, const char *what, int value)
{
	if (nt->warned_value)
		return;
	nt->warned_value = true;
	af_warn("snmp: %s %d is not known: sent as 0", what, value);
}

int nt_fault(struct nt *nt, bool raised, uint32_t id, int layer, int severity, const char *name,
             const char *target, const char *text)
{
	int kind = raised ? NT_FAULT_RAISED : NT_FAULT_CLEARED;
	uint32_t held = 0;
	struct nt_msg m;
	int rc = msg_start(nt, &m, kind, target, &held);

	if (rc <= 0)
		return rc;
	if (nt_mib_layer(layer) == NT_MIB_LAYER_UNKNOWN)
		warn_value(nt, "fault layer", layer);
	if (nt_mib_severity(severity) == NT_MIB_SEV_UNKNOWN)
		warn_value(nt, "fault severity", severity);
	add_u32(&m, NT_OBJ_FAULT_ID, id);
	add_int(&m, NT_OBJ_FAULT_LAYER, nt_mib_layer(layer));
	add_int(&m, NT_OBJ_FAULT_SEVERITY, nt_mib_severity(severity));
	add_str(&m, NT_OBJ_FAULT_NAME, name);
	add_str(&m, NT_OBJ_TARGET, target);
	msg_end(nt, &m, text, held, true);
	return msg_send(nt, &m);
}

int nt_recovery(struct nt *nt, int phase, uint32_t plan, const char *target, const char *text)
{
	int kind = phase == NT_PHASE_SUCCEEDED ? NT_RECOVERY_SUCCEEDED
	           : phase == NT_PHASE_FAILED  ? NT_RECOVERY_FAILED
	                                       : NT_RECOVERY_STARTED;
	uint32_t held = 0;
	struct nt_msg m;
	int rc;

	if (phase < NT_PHASE_STARTED || phase > NT_PHASE_FAILED)
		return -EINVAL; /* the MIB has no "unknown phase" notification */
	rc = msg_start(nt, &m, kind, target, &held);
	if (rc <= 0)
		return rc;
	add_u32(&m, NT_OBJ_PLAN_ID, plan);
	add_str(&m, NT_OBJ_TARGET, target);
	msg_end(nt, &m, text, held, true);
	return msg_send(nt, &m);
}

int nt_hotswap(struct nt *nt, unsigned slot, int old_state, int new_state)
{
	char target[32], text[64], a[4], b[4];
	uint32_t held = 0;
	struct nt_msg m;
	int rc;

	snprintf(target, sizeof(target), "blade %u", slot);
	rc = msg_start(nt, &m, NT_HOTSWAP_CHANGE, target, &held);
	if (rc <= 0)
		return rc;
	if (mib_hotswap(old_state) == 0 || mib_hotswap(new_state) == 0)
		warn_value(nt, "hot-swap state", mib_hotswap(old_state) ? new_state : old_state);
	snprintf(text, sizeof(text), "blade %u: %s -> %s", slot, mstate_name(old_state, a),
	         mstate_name(new_state, b));
	add_u32(&m, NT_OBJ_BLADE_SLOT, slot);
	add_int(&m, NT_OBJ_PREV_HOTSWAP, mib_hotswap(old_state));
	add_int(&m, NT_OBJ_HOTSWAP_STATE, mib_hotswap(new_state));
	msg_end(nt, &m, text, held, false);
	return msg_send(nt, &m);
}

int nt_protection(struct nt *nt, bool lost, const char *pair, const char *vm, const char *text)
{
	char key[2 * NT_KEY_NAME + 2];
	uint32_t held = 0;
	struct nt_msg m;
	int rc;

	snprintf(key, sizeof(key), "%.*s/%.*s", NT_KEY_NAME, pair ? pair : "", NT_KEY_NAME,
	         vm ? vm : "");
	rc = msg_start(nt, &m, lost ? NT_PROTECTION_LOST : NT_PROTECTION_RESTORED, key, &held);
	if (rc <= 0)
		return rc;
	add_str(&m, NT_OBJ_PAIR_NAME, pair);
	add_str(&m, NT_OBJ_VM_NAME, vm);
	msg_end(nt, &m, text, held, true);
	return msg_send(nt, &m);
}

int nt_switchover(struct nt *nt, const char *shelf_manager)
{
	char text[NT_STR_MAX + 1];
	uint32_t held = 0;
	struct nt_msg m;
	int rc = msg_start(nt, &m, NT_SHELF_MANAGER_SWITCHOVER, "shelf", &held);

	if (rc <= 0)
		return rc;
	snprintf(text, sizeof(text), "the active shelf manager is now %.200s",
	         shelf_manager ? shelf_manager : "");
	add_str(&m, NT_OBJ_SHELF_MANAGER, shelf_manager);
	msg_end(nt, &m, text, held, false);
	return msg_send(nt, &m);
}

int nt_stalled(struct nt *nt, const char *vm, uint64_t epoch)
{
	char text[NT_STR_MAX + 1];
	uint32_t held = 0;
	struct nt_msg m;
	int rc = msg_start(nt, &m, NT_REPLICATION_STALLED, vm, &held);

	if (rc <= 0)
		return rc;
	snprintf(text, sizeof(text), "replication of vm %.200s stalled at epoch %llu", vm ? vm : "",
	         (unsigned long long)epoch);
	add_str(&m, NT_OBJ_VM_NAME, vm);
	add_c64(&m, NT_OBJ_EPOCH, epoch);
	msg_end(nt, &m, text, held, false);
	return msg_send(nt, &m);
}

/* ---- module ------------------------------------------------------------------------ */

static bool target_same(const struct af_cfg_snmp_target *a, const struct af_cfg_snmp_target *b)
{
	return strcmp(a->address, b->address) == 0 && a->port == b->port &&
	       a->version == b->version && a->notify == b->notify &&
	       strcmp(a->community, b->community) == 0 && strcmp(a->user, b->user) == 0 &&
	       a->security_level == b->security_level && a->auth_protocol == b->auth_protocol &&
	       a->priv_protocol == b->priv_protocol && a->retries == b->retries &&
	       a->timeout_ms == b->timeout_ms && a->cred_loaded == b->cred_loaded &&
	       memcmp(&a->cred, &b->cred, sizeof(a->cred)) == 0;
}

/* The node name a configuration gives: the local blade's host, else ours. */
static void node_name(struct nt *nt, const struct af_config *cfg)
{
	const struct af_cfg_blade *b = NULL;
	char host[NT_STR_MAX + 1] = "";

	if (nt->node_given)
		return;
	if (cfg->daemon.local_blade != 0)
		b = af_cfg_blade_by_slot(cfg, cfg->daemon.local_blade);
	if (b != NULL)
		snprintf(host, sizeof(host), "%s", b->host);
	else if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "unknown");
	display_string(nt->node, sizeof(nt->node), host);
}

static void rate_config(struct nt *nt, const struct af_config *cfg)
{
	uint64_t per_min = cfg->snmp.max_per_minute ? cfg->snmp.max_per_minute : 60;

	nt->global_refill_ns = nt->opts.global_refill_ms != 0
	                               ? nt->opts.global_refill_ms * AF_NS_PER_MS
	                               : 60 * AF_NS_PER_S / per_min;
}

/* Kept sessions move to next[]; the rest are opened. -ENOMEM leaves the
 * old set untouched (the new sessions are closed again). */
static int targets_build(struct nt *nt, const struct af_config *cfg, struct nt_target **next,
                         bool *kept)
{
	for (unsigned i = 0; i < cfg->snmp.n_targets; i++) {
		const struct af_cfg_snmp_target *c = &cfg->snmp.targets[i];

		for (unsigned j = 0; j < nt->n_targets && next[i] == NULL; j++) {
			if (!kept[j] && nt->targets[j]->sess != NULL &&
			    target_same(&nt->targets[j]->cfg, c)) {
				kept[j] = true;
				next[i] = nt->targets[j];
			}
		}
		if (next[i] == NULL)
			next[i] = target_new(nt, c);
		if (next[i] == NULL)
			goto fail;
	}
	return 0;
fail:
	for (unsigned i = 0; i < cfg->snmp.n_targets; i++) {
		bool old = false;

		for (unsigned j = 0; j < nt->n_targets; j++)
			old |= next[i] == nt->targets[j];
		if (!old)
			target_free(next[i]);
	}
	return -ENOMEM;
}

int nt_reconfigure(struct nt *nt, const struct af_config *cfg)
{
	struct nt_target *next[AF_MAX_SNMP_TARGETS] = {NULL};
	bool kept[AF_MAX_SNMP_TARGETS] = {false};
	int rc;

	if (nt == NULL || cfg == NULL)
		return -EINVAL;
	node_name(nt, cfg);
	if (!nt->engine_given)
		engine_text(nt, nt->node);
	if (cfg->snmp.n_targets > 0)
		lib_init(nt);
	rc = targets_build(nt, cfg, next, kept);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < nt->n_targets; j++)
		if (!kept[j])
			target_free(nt->targets[j]);
	memcpy(nt->targets, next, sizeof(next));
	nt->n_targets = cfg->snmp.n_targets;
	nt->env.cfg = cfg;
	rate_config(nt, cfg);
	timer_arm(nt);
	return 0;
}

static void options_fill(struct nt *nt, const struct nt_options *o)
{
	const char *sd = nt->env.cfg->daemon.state_dir;

	if (o != NULL)
		nt->opts = *o;
	if (nt->opts.key_burst == 0)
		nt->opts.key_burst = 5;
	if (nt->opts.key_refill_ms == 0)
		nt->opts.key_refill_ms = 10000;
	if (nt->opts.global_burst == 0)
		nt->opts.global_burst = 20;
	if (nt->opts.suppress_log_ms == 0)
		nt->opts.suppress_log_ms = 60000;
	if (nt->opts.persistent_dir != NULL)
		snprintf(nt->persist_dir, sizeof(nt->persist_dir), "%s", nt->opts.persistent_dir);
	else
		snprintf(nt->persist_dir, sizeof(nt->persist_dir), "%.*s/snmp",
		         (int)sizeof(nt->persist_dir) - 6, sd[0] ? sd : AF_STATE_DIR);
	nt->node_given = nt->opts.node_name != NULL;
	if (nt->node_given)
		display_string(nt->node, sizeof(nt->node), nt->opts.node_name);
	nt->engine_given = nt->opts.engine_id != NULL;
	if (nt->engine_given)
		engine_text(nt, nt->opts.engine_id);
	/* the strings were copied: none of the caller's pointers is kept */
	nt->opts.persistent_dir = nt->opts.node_name = nt->opts.engine_id = NULL;
}

int nt_init_with(struct nt **out, const struct af_module_env *env, const struct nt_options *opts)
{
	struct nt *nt;
	int rc;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	nt = calloc(1, sizeof(*nt));
	if (nt == NULL)
		return -ENOMEM;
	nt->env = *env;
	nt->start_ns = af_mono_ns();
	options_fill(nt, opts);
	nt->global.tokens = nt->opts.global_burst;
	nt->global.stamp_ns = nt->start_ns;
	rc = nt_reconfigure(nt, env->cfg);
	if (rc < 0) {
		free(nt);
		return rc;
	}
	af_info("snmp: notifier started as %s, %u target(s)", nt->node, nt->n_targets);
	*out = nt;
	return 0;
}

int nt_init(struct nt **out, const struct af_module_env *env)
{
	return nt_init_with(out, env, NULL);
}

void nt_fini(struct nt *nt)
{
	if (nt == NULL)
		return;
	for (unsigned i = 0; i < nt->n_targets; i++)
		target_free(nt->targets[i]);
	if (nt->timer_on)
		qb_loop_timer_del(nt->env.loop, nt->timer);
	af_info("snmp: notifier stopped");
	free(nt);
}

/* ---- status ------------------------------------------------------------------------ */

unsigned nt_target_count(const struct nt *nt)
{
	return nt != NULL ? nt->n_targets : 0;
}

int nt_target_stats(const struct nt *nt, unsigned i, struct nt_target_stats *st)
{
	const struct nt_target *t;

	if (nt == NULL || st == NULL)
		return -EINVAL;
	if (i >= nt->n_targets)
		return -ENOENT;
	t = nt->targets[i];
	memset(st, 0, sizeof(*st));
	snprintf(st->address, sizeof(st->address), "%s", t->label);
	st->version = t->cfg.version == AF_SNMP_V3 ? "3" : "2c";
	st->type = t->cfg.notify == AF_SNMP_INFORM ? "inform" : "trap";
	st->state = t->sess == NULL ? "down" : t->failing ? "failing" : "ready";
	st->sent = t->sent;
	st->acked = t->acked;
	st->failed = t->failed;
	st->timeouts = t->timeouts;
	st->cancelled = t->cancelled;
	st->suppressed = nt->suppressed;
	st->outstanding = t->outstanding;
	return 0;
}

void nt_describe(const struct nt *nt, struct af_module_status *st)
{
	uint64_t sent = 0, acked = 0, failed = 0;
	unsigned up = 0;

	st->name = "snmp-notifier";
	if (nt == NULL) {
		st->state = "stopped";
		snprintf(st->detail, sizeof(st->detail), "not running");
		return;
	}
	if (nt->n_targets == 0) {
		st->state = "disabled";
		snprintf(st->detail, sizeof(st->detail), "no SNMP target configured");
		return;
	}
	for (unsigned i = 0; i < nt->n_targets; i++) {
		const struct nt_target *t = nt->targets[i];

		up += t->sess != NULL && !t->failing;
		sent += t->sent;
		acked += t->acked;
		failed += t->failed;
	}
	st->state = up == nt->n_targets ? "running" : "degraded";
	snprintf(st->detail, sizeof(st->detail),
	         "%u/%u target(s) working: %llu sent, %llu acknowledged, %llu failed, %llu "
	         "held back by the rate limit",
	         up, nt->n_targets, (unsigned long long)sent, (unsigned long long)acked,
	         (unsigned long long)failed, (unsigned long long)nt->suppressed);
}

int nt_engine_id(const struct nt *nt, char *hex, size_t len)
{
	u_char eid[64];
	size_t n;

	if (nt == NULL || hex == NULL)
		return -EINVAL;
	if (!netsnmp_ds_get_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_HAVE_READ_CONFIG))
		return -ENOTCONN;
	n = snmpv3_get_engineID(eid, sizeof(eid));
	if (n == 0)
		return -ENOTCONN;
	if (len < 2 * n + 3)
		return -ENOSPC;
	snprintf(hex, len, "0x");
	for (size_t i = 0; i < n; i++)
		snprintf(hex + 2 + 2 * i, len - 2 - 2 * i, "%02x", eid[i]);
	return 0;
}
