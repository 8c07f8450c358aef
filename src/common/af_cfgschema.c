/*
 * The atca-ftd.conf schema and the generic code that applies it to a syntax
 * tree and prints it back. Every section and key is one table row; adding a
 * key is adding a row (and a field), never a new parse callback.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_cfg_int.h"
#include "af_config.h"
#include "af_util.h"

#ifndef AF_STATE_DIR
#define AF_STATE_DIR "/var/lib/atca-ft"
#endif
#ifndef AF_RUN_DIR
#define AF_RUN_DIR "/run"
#endif
#ifndef AF_LOG_DIR
#define AF_LOG_DIR "/var/log/atca-ft"
#endif
#ifndef AF_DEFAULT_IPC_GROUP
#define AF_DEFAULT_IPC_GROUP ""
#endif

const char *const af_protection_names[AF_PROT_COUNT] = {"none", "restart", "ft"};
const char *const af_disk_bus_names[AF_BUS_COUNT] = {"virtio", "ide"};
const char *const af_rcv_mode_names[AF_RCV_MODE_COUNT] = {"act", "dry-run"};
const char *const af_no_quorum_names[AF_NOQ_COUNT] = {"stop", "wait"};
static const char *const priv_names[AF_PRIV_COUNT] = {"user", "operator", "admin"};
static const char *const snmp_version_names[AF_SNMP_VERSION_COUNT] = {"2c", "3"};
static const char *const snmp_notify_names[AF_SNMP_NOTIFY_COUNT] = {"trap", "inform"};
static const char *const snmp_seclevel_names[AF_SNMP_SECLEVEL_COUNT] = {"noAuthNoPriv",
                                                                        "authNoPriv", "authPriv"};
static const char *const snmp_auth_names[AF_SNMP_AUTH_COUNT] = {"sha", "sha224", "sha256", "sha384",
                                                                "sha512"};
static const char *const snmp_priv_names[AF_SNMP_PRIV_COUNT] = {"aes", "aes192", "aes256"};

#define MS_S 1000ULL
#define MS_MIN (60 * MS_S)
#define MS_H (60 * MS_MIN)

/* Row helpers: S = struct, F = field. */
#define K_STR(n, S, F, t, d, fl)                                                                   \
	{                                                                                          \
		.name = n, .type = t, .off = offsetof(S, F), .size = sizeof(((S *)0)->F),          \
		.def = d, .flags = fl                                                              \
	}
#define K_UINT(n, S, F, lo, hi, d, fl)                                                             \
	{                                                                                          \
		.name = n, .type = AF_KT_UINT, .off = offsetof(S, F), .min = lo, .max = hi,        \
		.def = d, .flags = fl                                                              \
	}
#define K_DUR(n, S, F, lo, hi, d)                                                                  \
	{                                                                                          \
		.name = n, .type = AF_KT_DURATION, .off = offsetof(S, F), .min = lo, .max = hi,    \
		.def = d                                                                           \
	}
/* a duration that may be "auto" (stored as 0: the caller's default) */
#define K_DURA(n, S, F, lo, hi)                                                                    \
	{                                                                                          \
		.name = n, .type = AF_KT_DURATION, .off = offsetof(S, F), .min = lo, .max = hi,    \
		.def = "auto", .flags = AF_K_AUTO0                                                 \
	}
#define K_SIZE(n, S, F, lo, hi, d)                                                                 \
	{                                                                                          \
		.name = n, .type = AF_KT_SIZE, .off = offsetof(S, F), .min = lo, .max = hi,        \
		.def = d                                                                           \
	}
#define K_BOOL(n, S, F, d)                                                                         \
	{                                                                                          \
		.name = n, .type = AF_KT_BOOL, .off = offsetof(S, F), .def = d                     \
	}
#define K_ENUM(n, S, F, tbl, d, fl)                                                                \
	{                                                                                          \
		.name = n, .type = AF_KT_ENUM, .off = offsetof(S, F), .names = tbl,                \
		.n_names = AF_ARRAY_SIZE(tbl), .def = d, .flags = fl                               \
	}
#define K_TYPE(n, S, F, t, d, fl)                                                                  \
	{                                                                                          \
		.name = n, .type = t, .off = offsetof(S, F), .def = d, .flags = fl                 \
	}

#define KEYS(tbl) .keys = tbl, .n_keys = AF_ARRAY_SIZE(tbl)
#define SUBS(tbl) .subs = tbl, .n_subs = AF_ARRAY_SIZE(tbl)
#define UNIQUE(P, F) .repeatable = false, .obj_off = offsetof(P, F)
#define REPEAT(P, N, A)                                                                            \
	.repeatable = true, .count_off = offsetof(P, N), .array_off = offsetof(P, A),              \
	.elem_size = sizeof(((P *)0)->A[0]), .max = AF_ARRAY_SIZE(((P *)0)->A)

static const struct af_kspec daemon_keys[] = {
        K_STR("state_dir", struct af_cfg_daemon, state_dir, AF_KT_PATH, AF_STATE_DIR, 0),
        K_STR("pidfile", struct af_cfg_daemon, pidfile, AF_KT_PATH, AF_RUN_DIR "/atca-ftd.pid", 0),
        K_STR("ipc_name", struct af_cfg_daemon, ipc_name, AF_KT_NAME, "atca-ft", 0),
        K_STR("ipc_group", struct af_cfg_daemon, ipc_group, AF_KT_NAME, AF_DEFAULT_IPC_GROUP, 0),
        K_UINT("ipc_max_clients", struct af_cfg_daemon, ipc_max_clients, 1, 1024, "32", 0),
        K_STR("failure_rules", struct af_cfg_daemon, failure_rules, AF_KT_PATH, AF_RULES_FILE, 0),
        K_UINT("local_blade", struct af_cfg_daemon, local_blade, 1, AF_MAX_BLADES, "auto",
               AF_K_AUTO0),
};

static const struct af_kspec manager_keys[] = {
        K_STR("address", struct af_cfg_shmc, address, AF_KT_HOST, NULL, AF_K_REQUIRED),
        K_UINT("port", struct af_cfg_shmc, port, 1, 65535, "623", 0),
};

static const struct af_sspec shelf_subs[] = {
        {.name = "manager", KEYS(manager_keys), REPEAT(struct af_cfg_shelf, n_managers, managers)},
};

static const struct af_kspec shelf_keys[] = {
        K_STR("name", struct af_cfg_shelf, name, AF_KT_NAME, "shelf", 0),
        K_STR("credentials", struct af_cfg_shelf, credentials, AF_KT_PATH, NULL, AF_K_REQUIRED),
        K_UINT("cipher_suite", struct af_cfg_shelf, cipher_suite, 0, 255, "3", 0),
        K_ENUM("privilege", struct af_cfg_shelf, privilege, priv_names, "admin", 0),
};

static const struct af_kspec blade_keys[] = {
        K_UINT("slot", struct af_cfg_blade, slot, 1, AF_MAX_BLADES, NULL, AF_K_REQUIRED),
        K_UINT("ipmc", struct af_cfg_blade, ipmc, 0x10, 0xfe, NULL, AF_K_HEX),
        K_STR("host", struct af_cfg_blade, host, AF_KT_HOST, NULL, AF_K_REQUIRED),
        K_STR("libvirt_uri", struct af_cfg_blade, libvirt_uri, AF_KT_STRING, "qemu:///system", 0),
        K_STR("inband_device", struct af_cfg_blade, inband_device, AF_KT_PATH, NULL, 0),
        K_STR("migration_uri", struct af_cfg_blade, migration_uri, AF_KT_STRING, NULL, 0),
        K_STR("replication_address", struct af_cfg_blade, replication_address, AF_KT_HOST, NULL, 0),
};

static const struct af_kspec pair_keys[] = {
        K_TYPE("blades", struct af_cfg_pair, blades, AF_KT_SLOTPAIR, NULL, AF_K_REQUIRED),
};

static const struct af_kspec vm_keys[] = {
        K_STR("name", struct af_cfg_vm, name, AF_KT_NAME, NULL, AF_K_REQUIRED),
        K_STR("domain", struct af_cfg_vm, domain, AF_KT_NAME, NULL, 0),
        K_UINT("blade", struct af_cfg_vm, blade, 1, AF_MAX_BLADES, NULL, AF_K_REQUIRED),
        K_ENUM("protection", struct af_cfg_vm, protection, af_protection_names, "restart", 0),
        K_UINT("max_restarts", struct af_cfg_vm, max_restarts, 0, 100, "3", 0),
        K_DUR("restart_window", struct af_cfg_vm, restart_window_ms, MS_S, 24 * MS_H, "10min"),
        K_STR("definition", struct af_cfg_vm, definition, AF_KT_PATH, NULL, 0),
        K_SIZE("memory", struct af_cfg_vm, memory, 16 << 20, 1ULL << 40, "256MiB"),
        K_UINT("vcpus", struct af_cfg_vm, vcpus, 1, 64, "1", 0),
        K_STR("disk", struct af_cfg_vm, disk, AF_KT_PATH, NULL, 0),
        K_ENUM("disk_bus", struct af_cfg_vm, disk_bus, af_disk_bus_names, "virtio", 0),
        K_UINT("port", struct af_cfg_vm, port, 1, 65535, "auto", AF_K_AUTO0),
        K_STR("qemu_args", struct af_cfg_vm, qemu_args, AF_KT_STRING, NULL, 0),
        K_DURA("epoch", struct af_cfg_vm, epoch_ms, 10, 10 * MS_S),
        K_STR("nic", struct af_cfg_vm, nic, AF_KT_STRING, NULL, 0),
        K_STR("mac", struct af_cfg_vm, mac, AF_KT_STRING, NULL, 0),
        K_STR("net_interface", struct af_cfg_vm, net_interface, AF_KT_NAME, NULL, 0),
        K_STR("ip", struct af_cfg_vm, ip, AF_KT_HOST, NULL, 0),
        K_STR("key_file", struct af_cfg_vm, key_file, AF_KT_PATH, NULL, 0),
};

static const struct af_kspec vmft_keys[] = {
        K_STR("state_dir", struct af_cfg_vmft, state_dir, AF_KT_PATH, "/dev/shm/atca-vmft", 0),
        K_STR("disk_dir", struct af_cfg_vmft, disk_dir, AF_KT_PATH, AF_STATE_DIR "/vmft", 0),
        K_STR("console_dir", struct af_cfg_vmft, console_dir, AF_KT_PATH, AF_LOG_DIR, 0),
        K_STR("engine", struct af_cfg_vmft, engine, AF_KT_PATH, AF_SBIN_DIR "/atca-vmft", 0),
        K_STR("qemu", struct af_cfg_vmft, qemu, AF_KT_PATH, "/usr/bin/qemu-system-x86_64", 0),
        K_DUR("epoch", struct af_cfg_vmft, epoch_ms, 10, 10 * MS_S, "100ms"),
        K_UINT("scan_threads", struct af_cfg_vmft, scan_threads, 1, 8, "auto", AF_K_AUTO0),
        K_UINT("port", struct af_cfg_vmft, port, 1024, 65000, "7800", 0),
        K_DUR("heartbeat_timeout", struct af_cfg_vmft, heartbeat_ms, 50, MS_MIN, "500ms"),
        K_DUR("ack_timeout", struct af_cfg_vmft, ack_timeout_ms, 100, 10 * MS_MIN, "3s"),
        K_BOOL("standby", struct af_cfg_vmft, standby, "yes"),
        K_SIZE("output_buffer", struct af_cfg_vmft, output_buffer, 4096, 1ULL << 30, "16MiB"),
        K_BOOL("restart_backup", struct af_cfg_vmft, restart_backup, "yes"),
        K_STR("template_dir", struct af_cfg_vmft, template_dir, AF_KT_PATH,
              AF_STATE_DIR "/vmft-templates", 0),
        K_BOOL("templates", struct af_cfg_vmft, templates, "yes"),
        K_DUR("template_interval", struct af_cfg_vmft, template_interval_ms, 0, 7 * 24 * MS_H,
              "10min"),
        K_SIZE("template_rate", struct af_cfg_vmft, template_rate, 1 << 20, 1ULL << 40, "256MiB"),
        K_BOOL("zerocopy", struct af_cfg_vmft, zerocopy, "yes"),
        K_SIZE("zerocopy_threshold", struct af_cfg_vmft, zerocopy_threshold, 4096, 64 << 20,
               "16KiB"),
        K_SIZE("send_buffer", struct af_cfg_vmft, send_buffer, 1 << 20, 1ULL << 40, "256MiB"),
        K_BOOL("authenticate", struct af_cfg_vmft, authenticate, "yes"),
        K_STR("key_file", struct af_cfg_vmft, key_file, AF_KT_PATH, "/etc/atca-ft/vmft.key", 0),
};

static const struct af_kspec detection_keys[] = {
        K_DUR("sensor_interval", struct af_cfg_detection, sensor_interval_ms, 100, MS_H, "1s"),
        K_DUR("sel_interval", struct af_cfg_detection, sel_interval_ms, 20, MS_MIN, "100ms"),
        K_DUR("ipmc_timeout", struct af_cfg_detection, ipmc_timeout_ms, 50, 30 * MS_S, "1s"),
        K_DUR("ipmc_retry_max", struct af_cfg_detection, ipmc_retry_max_ms, 100, 10 * MS_MIN,
              "30s"),
        K_DUR("hypervisor_interval", struct af_cfg_detection, hypervisor_interval_ms, 100, MS_MIN,
              "1s"),
        K_DUR("fence_timeout", struct af_cfg_detection, fence_timeout_ms, MS_S, 10 * MS_MIN, "30s"),
};

static const struct af_kspec recovery_keys[] = {
        K_ENUM("mode", struct af_cfg_recovery, mode, af_rcv_mode_names, "act", 0),
        K_ENUM("no_quorum_policy", struct af_cfg_recovery, no_quorum_policy, af_no_quorum_names,
               "stop", 0),
        K_STR("cpg_group", struct af_cfg_recovery, cpg_group, AF_KT_NAME, "atca-ft", 0),
        K_DUR("quorum_timeout", struct af_cfg_recovery, quorum_timeout_ms, 100, 10 * MS_MIN, "60s"),
        K_DUR("stop_timeout", struct af_cfg_recovery, stop_timeout_ms, 100, 10 * MS_MIN, "30s"),
        K_DUR("start_timeout", struct af_cfg_recovery, start_timeout_ms, 100, 10 * MS_MIN, "60s"),
        K_DUR("migrate_timeout", struct af_cfg_recovery, migrate_timeout_ms, MS_S, MS_H, "5min"),
        K_DUR("promote_timeout", struct af_cfg_recovery, promote_timeout_ms, 100, 10 * MS_MIN,
              "10s"),
        K_BOOL("migrate_unsafe", struct af_cfg_recovery, migrate_unsafe, "no"),
};

static const struct af_kspec target_keys[] = {
        K_STR("address", struct af_cfg_snmp_target, address, AF_KT_HOST, NULL, AF_K_REQUIRED),
        K_UINT("port", struct af_cfg_snmp_target, port, 1, 65535, "162", 0),
        K_ENUM("version", struct af_cfg_snmp_target, version, snmp_version_names, "2c", 0),
        K_ENUM("type", struct af_cfg_snmp_target, notify, snmp_notify_names, "trap", 0),
        K_STR("community", struct af_cfg_snmp_target, community, AF_KT_STRING, NULL, 0),
        K_STR("user", struct af_cfg_snmp_target, user, AF_KT_NAME, NULL, 0),
        K_ENUM("security_level", struct af_cfg_snmp_target, security_level, snmp_seclevel_names,
               "authPriv", 0),
        K_ENUM("auth_protocol", struct af_cfg_snmp_target, auth_protocol, snmp_auth_names, "sha",
               0),
        K_ENUM("priv_protocol", struct af_cfg_snmp_target, priv_protocol, snmp_priv_names, "aes",
               0),
        K_STR("credentials", struct af_cfg_snmp_target, credentials, AF_KT_PATH, NULL, 0),
        K_UINT("retries", struct af_cfg_snmp_target, retries, 0, 10, "3", 0),
        K_DUR("timeout", struct af_cfg_snmp_target, timeout_ms, 100, 60 * MS_S, "1s"),
};

static const struct af_sspec snmp_subs[] = {
        {.name = "target", KEYS(target_keys), REPEAT(struct af_cfg_snmp, n_targets, targets)},
};

static const struct af_kspec snmp_keys[] = {
        K_UINT("max_per_minute", struct af_cfg_snmp, max_per_minute, 1, 100000, "60", 0),
        K_UINT("burst", struct af_cfg_snmp, burst, 1, 100000, "20", 0),
        K_UINT("key_burst", struct af_cfg_snmp, key_burst, 1, 10000, "5", 0),
        K_DUR("key_interval", struct af_cfg_snmp, key_interval_ms, 100, 24 * MS_H, "10s"),
        /* "" (not given): the local blade's host name */
        K_STR("engine_id", struct af_cfg_snmp, engine_id, AF_KT_NAME, "", 0),
};

static const struct af_kspec subsys_keys[] = {
        K_STR("name", struct af_cfg_subsys, name, AF_KT_NAME, NULL, AF_K_REQUIRED),
        K_TYPE("level", struct af_cfg_subsys, level, AF_KT_LEVEL, NULL, AF_K_REQUIRED),
};

static const struct af_sspec logging_subs[] = {
        {.name = "subsys", KEYS(subsys_keys), REPEAT(struct af_cfg_logging, n_subsys, subsys)},
};

static const struct af_kspec logging_keys[] = {
        K_BOOL("to_stderr", struct af_cfg_logging, to_stderr, "no"),
        K_BOOL("to_syslog", struct af_cfg_logging, to_syslog, "yes"),
        K_TYPE("syslog_facility", struct af_cfg_logging, syslog_facility, AF_KT_FACILITY, "daemon",
               0),
        K_BOOL("to_logfile", struct af_cfg_logging, to_logfile, "no"),
        K_STR("logfile", struct af_cfg_logging, logfile, AF_KT_PATH, AF_LOG_DIR "/atca-ftd.log", 0),
        K_TYPE("level", struct af_cfg_logging, level, AF_KT_LEVEL, "info", 0),
        K_BOOL("blackbox", struct af_cfg_logging, blackbox, "yes"),
        K_SIZE("blackbox_size", struct af_cfg_logging, blackbox_size, 4096, 64 * 1024 * 1024,
               "1MiB"),
};

const struct af_sspec af_cfg_top[] = {
        {.name = "daemon", KEYS(daemon_keys), UNIQUE(struct af_config, daemon)},
        {.name = "shelf",
         KEYS(shelf_keys),
         SUBS(shelf_subs),
         UNIQUE(struct af_config, shelf),
         .required = true},
        {.name = "blade",
         KEYS(blade_keys),
         REPEAT(struct af_config, n_blades, blades),
         .required = true},
        {.name = "pair", KEYS(pair_keys), REPEAT(struct af_config, n_pairs, pairs)},
        {.name = "vm", KEYS(vm_keys), REPEAT(struct af_config, n_vms, vms)},
        {.name = "detection", KEYS(detection_keys), UNIQUE(struct af_config, detection)},
        {.name = "recovery", KEYS(recovery_keys), UNIQUE(struct af_config, recovery)},
        {.name = "vmft", KEYS(vmft_keys), UNIQUE(struct af_config, vmft)},
        {.name = "snmp", KEYS(snmp_keys), SUBS(snmp_subs), UNIQUE(struct af_config, snmp)},
        {.name = "logging",
         KEYS(logging_keys),
         SUBS(logging_subs),
         UNIQUE(struct af_config, logging)},
};
const size_t af_cfg_n_top = AF_ARRAY_SIZE(af_cfg_top);

/* The walker finds a section's af_cfg_where at the start of its struct. */
_Static_assert(offsetof(struct af_cfg_daemon, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_shelf, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_shmc, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_blade, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_pair, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_vm, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_detection, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_recovery, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_snmp, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_snmp_target, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_logging, where) == 0, "where first");
_Static_assert(offsetof(struct af_cfg_subsys, where) == 0, "where first");
_Static_assert(AF_ARRAY_SIZE(af_cfg_top) <= AF_CFG_KEYS_MAX, "unique_seen size");
_Static_assert(AF_ARRAY_SIZE(target_keys) <= AF_CFG_KEYS_MAX, "key_line size");

/* ---- diagnostics -------------------------------------------------------- */

static void diag_add(struct af_cfg_load *ld, bool error, uint32_t line, const char *fmt, va_list ap)
{
	struct af_cfg_diag *d = ld->diag;
	char msg[AF_CFG_ERR_MAX];
	char *dst;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (error) {
		if (d->n_errors >= AF_CFG_MAX_ERRORS) {
			d->n_errors_dropped++;
			return;
		}
		d->error_line[d->n_errors] = line;
		dst = d->errors[d->n_errors++];
	} else {
		if (d->n_warnings >= AF_CFG_MAX_ERRORS)
			return;
		dst = d->warnings[d->n_warnings++];
	}
	snprintf(dst, AF_CFG_ERR_MAX, "%s:%u: %s%s", ld->file, line, error ? "" : "warning: ", msg);
}

void af_cfg_error(struct af_cfg_load *ld, uint32_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_add(ld, true, line, fmt, ap);
	va_end(ap);
}

void af_cfg_warning(struct af_cfg_load *ld, uint32_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_add(ld, false, line, fmt, ap);
	va_end(ap);
}

/* ---- schema lookups ----------------------------------------------------- */

static const struct af_sspec *find_sub(const struct af_sspec *subs, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(subs[i].name, name) == 0)
			return &subs[i];
	}
	return NULL;
}

static int find_key(const struct af_sspec *s, const char *name)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		if (strcmp(s->keys[i].name, name) == 0)
			return (int)i;
	}
	return -1;
}

static const struct af_sspec *spec_by_path(const char *path)
{
	const struct af_sspec *s;
	const char *dot = strchr(path, '.');
	char top[32];

	if (dot == NULL)
		return find_sub(af_cfg_top, af_cfg_n_top, path);
	snprintf(top, sizeof(top), "%.*s", (int)(dot - path), path);
	s = find_sub(af_cfg_top, af_cfg_n_top, top);
	return s ? find_sub(s->subs, s->n_subs, dot + 1) : NULL;
}

uint32_t af_cfg_line_of(const char *section, const struct af_cfg_where *w, const char *key)
{
	const struct af_sspec *s = spec_by_path(section);
	int k = s ? find_key(s, key) : -1;

	if (k >= 0 && w->key_line[k] != 0)
		return w->key_line[k];
	return w->line;
}

bool af_cfg_given(const char *section, const struct af_cfg_where *w, const char *key)
{
	const struct af_sspec *s = spec_by_path(section);
	int k = s ? find_key(s, key) : -1;

	return k >= 0 && w->key_line[k] != 0;
}

/* Small edit distance, for "did you mean" hints on misspelt keys. */
static unsigned edit_distance(const char *a, const char *b)
{
	unsigned row[40], la = (unsigned)strlen(a), lb = (unsigned)strlen(b);

	if (la >= AF_ARRAY_SIZE(row) || lb >= AF_ARRAY_SIZE(row))
		return 99;
	for (unsigned j = 0; j <= lb; j++)
		row[j] = j;
	for (unsigned i = 1; i <= la; i++) {
		unsigned prev = row[0];

		row[0] = i;
		for (unsigned j = 1; j <= lb; j++) {
			unsigned cur = row[j];
			unsigned best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

static const char *closest_key(const struct af_sspec *s, const char *name)
{
	const char *best = NULL;
	unsigned best_d = 3; /* only suggest close matches */

	for (size_t i = 0; i < s->n_keys; i++) {
		unsigned d = edit_distance(name, s->keys[i].name);
		if (d < best_d) {
			best_d = d;
			best = s->keys[i].name;
		}
	}
	return best;
}

/* ---- value conversion --------------------------------------------------- */

static bool valid_host(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t len = strlen(s);

	if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
		return true;
	if (len == 0 || len > 253)
		return false;
	/* RFC 1123 host name: labels of letters, digits and hyphens. */
	for (const char *label = s; *label;) {
		size_t n = strcspn(label, ".");

		if (n == 0 || n > 63 || label[0] == '-' || label[n - 1] == '-')
			return false;
		for (size_t i = 0; i < n; i++) {
			if (!isalnum((unsigned char)label[i]) && label[i] != '-')
				return false;
		}
		label += n;
		if (*label == '.')
			label++;
	}
	return true;
}

static int set_string(struct af_cfg_load *ld, uint32_t line, const struct af_kspec *k, char *dst,
                      const char *v)
{
	if (strlen(v) >= k->size) {
		af_cfg_error(ld, line, "value of '%s' is too long (max %zu characters)", k->name,
		             k->size - 1);
		return -EINVAL;
	}
	for (const char *p = v; *p; p++) {
		if ((unsigned char)*p < 0x20) {
			af_cfg_error(ld, line, "value of '%s' contains a control character",
			             k->name);
			return -EINVAL;
		}
	}
	switch (k->type) {
	case AF_KT_NAME:
		if (!af_valid_name(v, k->size - 1)) {
			af_cfg_error(ld, line,
			             "'%s' is not a valid name for '%s' (letters, digits, '_', "
			             "'-', '.'; starting with a letter or digit)",
			             v, k->name);
			return -EINVAL;
		}
		break;
	case AF_KT_PATH:
		if (v[0] != '/') {
			af_cfg_error(ld, line, "'%s' must be an absolute path, got '%s'", k->name,
			             v);
			return -EINVAL;
		}
		break;
	case AF_KT_HOST:
		if (!valid_host(v)) {
			af_cfg_error(ld, line,
			             "'%s' is not a valid host name or IP address for '%s'", v,
			             k->name);
			return -EINVAL;
		}
		break;
	default:
		break;
	}
	af_strlcpy(dst, v, k->size);
	return 0;
}

static int set_enum(struct af_cfg_load *ld, uint32_t line, const struct af_kspec *k, int *dst,
                    const char *v)
{
	char list[256] = "";

	for (size_t i = 0; i < k->n_names; i++) {
		if (strcasecmp(k->names[i], v) == 0) {
			*dst = (int)i;
			return 0;
		}
	}
	for (size_t i = 0; i < k->n_names; i++) {
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", k->names[i]);
	}
	af_cfg_error(ld, line, "'%s' is not a valid value for '%s' (expected one of: %s)", v,
	             k->name, list);
	return -EINVAL;
}

static int set_slotpair(struct af_cfg_load *ld, uint32_t line, const struct af_kspec *k,
                        uint32_t *dst, const char *v)
{
	char a[16], b[16], extra[2];
	uint64_t x, y;

	if (sscanf(v, "%15s %15s %1s", a, b, extra) != 2 ||
	    af_parse_u64(a, 1, AF_MAX_BLADES, &x) < 0 ||
	    af_parse_u64(b, 1, AF_MAX_BLADES, &y) < 0) {
		af_cfg_error(ld, line, "'%s' needs two blade slots (1..%d), e.g. '%s: 1 2'",
		             k->name, AF_MAX_BLADES, k->name);
		return -EINVAL;
	}
	dst[0] = (uint32_t)x;
	dst[1] = (uint32_t)y;
	return 0;
}

/* Converts text v into the field of key k in obj. Returns 0 or -EINVAL after
 * recording an error. */
static int set_value(struct af_cfg_load *ld, uint32_t line, const struct af_kspec *k, void *obj,
                     const char *v)
{
	char *field = (char *)obj + k->off;
	uint64_t u;
	int rc;

	switch (k->type) {
	case AF_KT_STRING:
	case AF_KT_NAME:
	case AF_KT_PATH:
	case AF_KT_HOST:
		return set_string(ld, line, k, field, v);
	case AF_KT_UINT:
		if ((k->flags & AF_K_AUTO0) && strcmp(v, "auto") == 0) {
			*(uint32_t *)(void *)field = 0;
			return 0;
		}
		rc = af_parse_u64(v, 0, UINT64_MAX, &u);
		if (rc == -EINVAL) {
			af_cfg_error(ld, line, "'%s' is not a number for '%s'", v, k->name);
			return -EINVAL;
		}
		if (rc < 0 || u < k->min || u > k->max) {
			if (k->flags & AF_K_HEX)
				af_cfg_error(ld, line,
				             "'%s' must be between 0x%llx and 0x%llx, got %s",
				             k->name, (unsigned long long)k->min,
				             (unsigned long long)k->max, v);
			else
				af_cfg_error(ld, line, "'%s' must be between %llu and %llu, got %s",
				             k->name, (unsigned long long)k->min,
				             (unsigned long long)k->max, v);
			return -EINVAL;
		}
		*(uint32_t *)(void *)field = (uint32_t)u;
		return 0;
	case AF_KT_BOOL:
		if (af_parse_bool(v, (bool *)(void *)field) < 0) {
			af_cfg_error(ld, line, "'%s' is not a boolean for '%s' (use yes or no)", v,
			             k->name);
			return -EINVAL;
		}
		return 0;
	case AF_KT_ENUM:
		return set_enum(ld, line, k, (int *)(void *)field, v);
	case AF_KT_DURATION:
	case AF_KT_SIZE: {
		bool dur = k->type == AF_KT_DURATION;
		char lo[32], hi[32];

		if ((k->flags & AF_K_AUTO0) && strcmp(v, "auto") == 0) {
			*(uint64_t *)(void *)field = 0;
			return 0;
		}
		rc = dur ? af_parse_duration_ms(v, &u) : af_parse_size(v, &u);
		if (rc == -EINVAL) {
			af_cfg_error(ld, line, "'%s' is not a %s for '%s' (e.g. %s)", v,
			             dur ? "duration" : "size", k->name,
			             dur ? "500ms, 2s, 1min" : "4096, 64KiB, 1MiB");
			return -EINVAL;
		}
		if (rc < 0 || u < k->min || u > k->max) {
			if (dur) {
				af_format_duration_ms(k->min, lo, sizeof(lo));
				af_format_duration_ms(k->max, hi, sizeof(hi));
			} else {
				af_format_size(k->min, lo, sizeof(lo));
				af_format_size(k->max, hi, sizeof(hi));
			}
			af_cfg_error(ld, line, "'%s' must be between %s and %s, got %s", k->name,
			             lo, hi, v);
			return -EINVAL;
		}
		*(uint64_t *)(void *)field = u;
		return 0;
	}
	case AF_KT_SLOTPAIR:
		return set_slotpair(ld, line, k, (uint32_t *)(void *)field, v);
	case AF_KT_LEVEL:
		rc = af_level_parse(v);
		if (rc < 0 || rc < LOG_ERR) {
			af_cfg_error(
			        ld, line,
			        "'%s' is not a log level for '%s' (err, warning, notice, info, "
			        "debug)",
			        v, k->name);
			return -EINVAL;
		}
		*(int *)(void *)field = rc;
		return 0;
	case AF_KT_FACILITY:
		rc = af_facility_parse(v);
		if (rc < 0) {
			af_cfg_error(ld, line,
			             "'%s' is not a syslog facility for '%s' (daemon, user, "
			             "local0..local7)",
			             v, k->name);
			return -EINVAL;
		}
		*(int *)(void *)field = rc;
		return 0;
	}
	return -EINVAL;
}

static void apply_defaults(struct af_cfg_load *ld, const struct af_sspec *s, void *obj)
{
	for (size_t i = 0; i < s->n_keys; i++) {
		const char *def = s->keys[i].def;

		/* "" (e.g. --with-ipc-group not given) means no default; a
		 * built-in default that does not parse is our bug. */
		if (def != NULL && def[0] != '\0' && set_value(ld, 0, &s->keys[i], obj, def) < 0)
			abort();
	}
}

/* ---- tree walking ------------------------------------------------------- */

static void walk_section(struct af_cfg_load *ld, const struct af_sspec *s, void *obj,
                         struct af_cfg_where *where, const struct af_cfg_node *sec);

static void *section_object(struct af_cfg_load *ld, const struct af_sspec *sub, void *parent,
                            const struct af_cfg_node *n, uint32_t *first_line)
{
	void *obj;

	if (!sub->repeatable) {
		struct af_cfg_where *w;

		obj = (char *)parent + sub->obj_off;
		w = obj; /* every section struct starts with its af_cfg_where */
		if (first_line[0] != 0) {
			af_cfg_error(ld, n->line, "section '%s' given twice (first at line %u)",
			             sub->name, first_line[0]);
			return NULL;
		}
		first_line[0] = n->line;
		w->line = n->line;
		return obj;
	}
	{
		unsigned *count = (unsigned *)(void *)((char *)parent + sub->count_off);

		if (*count >= sub->max) {
			af_cfg_error(ld, n->line, "too many '%s' sections (max %u)", sub->name,
			             sub->max);
			return NULL;
		}
		obj = (char *)parent + sub->array_off + sub->elem_size * (*count);
		memset(obj, 0, sub->elem_size);
		((struct af_cfg_where *)obj)->line = n->line;
		apply_defaults(ld, sub, obj);
		(*count)++;
		return obj;
	}
}

static void walk_children(struct af_cfg_load *ld, const struct af_sspec *subs, size_t n_subs,
                          const struct af_sspec *self, void *obj, struct af_cfg_where *where,
                          const struct af_cfg_node *first)
{
	uint32_t unique_seen[AF_CFG_KEYS_MAX] = {0}; /* first line of each unique section */

	for (const struct af_cfg_node *n = first; n != NULL; n = n->next) {
		if (n->type == AF_CFG_SECTION) {
			const struct af_sspec *sub = find_sub(subs, n_subs, n->name);
			void *child;

			if (sub == NULL) {
				if (self != NULL && find_key(self, n->name) >= 0)
					af_cfg_error(
					        ld, n->line,
					        "'%s' is a key, not a section: write '%s: value'",
					        n->name, n->name);
				else if (self == NULL)
					af_cfg_error(
					        ld, n->line,
					        "unknown section '%s' (expected daemon, shelf, "
					        "blade, pair, vm, detection, snmp or logging)",
					        n->name);
				else
					af_cfg_error(ld, n->line, "unknown section '%s' in '%s'",
					             n->name, self->name);
				continue;
			}
			child = section_object(ld, sub, obj, n, &unique_seen[sub - subs]);
			if (child != NULL)
				walk_section(ld, sub, child, child, n);
			continue;
		}
		/* a key */
		if (self == NULL) {
			af_cfg_error(ld, n->line, "key '%s' is outside of any section", n->name);
			continue;
		}
		{
			int k = find_key(self, n->name);

			if (k < 0) {
				const char *hint = closest_key(self, n->name);

				if (find_sub(subs, n_subs, n->name) != NULL)
					af_cfg_error(ld, n->line,
					             "'%s' is a section, not a key: write '%s {'",
					             n->name, n->name);
				else if (hint != NULL)
					af_cfg_error(ld, n->line,
					             "unknown key '%s' in section '%s' (did you "
					             "mean '%s'?)",
					             n->name, self->name, hint);
				else
					af_cfg_error(ld, n->line,
					             "unknown key '%s' in section '%s'", n->name,
					             self->name);
				continue;
			}
			if (where->key_line[k] != 0) {
				af_cfg_error(ld, n->line, "key '%s' given twice (first at line %u)",
				             n->name, where->key_line[k]);
				continue;
			}
			where->key_line[k] = n->line;
			set_value(ld, n->line, &self->keys[k], obj, n->value);
		}
	}
}

static void walk_section(struct af_cfg_load *ld, const struct af_sspec *s, void *obj,
                         struct af_cfg_where *where, const struct af_cfg_node *sec)
{
	walk_children(ld, s->subs, s->n_subs, s, obj, where, sec->child);
	for (size_t i = 0; i < s->n_keys; i++) {
		if ((s->keys[i].flags & AF_K_REQUIRED) && where->key_line[i] == 0)
			af_cfg_error(ld, sec->line, "section '%s' is missing the required key '%s'",
			             s->name, s->keys[i].name);
	}
}

int af_cfg_parse_buffer(const char *name, const char *buf, size_t len, unsigned flags,
                        struct af_config **out, struct af_cfg_diag *diag)
{
	struct af_cfg_load ld = {.file = name, .flags = flags, .diag = diag};
	struct af_cfg_tree tree;
	struct af_config *cfg;
	char err[AF_CFG_ERR_MAX];
	uint32_t err_line;
	int rc;

	memset(diag, 0, sizeof(*diag));
	*out = NULL;
	if (len > AF_CFG_MAX_FILE_SIZE) {
		af_cfg_error(&ld, 1, "file is larger than %d bytes", AF_CFG_MAX_FILE_SIZE);
		return -EFBIG;
	}
	rc = af_cfg_tree_parse(buf, len, &tree, &err_line, err, sizeof(err));
	if (rc < 0) {
		af_cfg_error(&ld, err_line, "%s", err);
		return rc;
	}
	ld.last_line = 1;
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n' && i + 1 < len)
			ld.last_line++;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL) {
		af_cfg_tree_free(&tree);
		return -ENOMEM;
	}
	ld.cfg = cfg;
	af_strlcpy(cfg->path, name, sizeof(cfg->path));
	for (size_t i = 0; i < af_cfg_n_top; i++) {
		if (!af_cfg_top[i].repeatable)
			apply_defaults(&ld, &af_cfg_top[i], (char *)cfg + af_cfg_top[i].obj_off);
	}
	walk_children(&ld, af_cfg_top, af_cfg_n_top, NULL, cfg, NULL, tree.root.child);
	af_cfg_tree_free(&tree);
	if (diag->n_errors == 0)
		af_cfg_check(&ld);
	if (diag->n_errors != 0) {
		af_cfg_free(cfg);
		return -EINVAL;
	}
	*out = cfg;
	return 0;
}

int af_cfg_load(const char *path, unsigned flags, struct af_config **out, struct af_cfg_diag *diag)
{
	struct af_cfg_load ld = {.file = path, .diag = diag};
	char *buf = NULL, err[128];
	size_t len = 0;
	int fd, rc;

	memset(diag, 0, sizeof(*diag));
	*out = NULL;
	rc = af_open_regular(path, &fd, err, sizeof(err));
	if (rc < 0) {
		af_cfg_error(&ld, 0, "%s", err);
		return rc;
	}
	rc = af_read_file(fd, AF_CFG_MAX_FILE_SIZE, &buf, &len);
	close(fd);
	if (rc < 0) {
		af_cfg_error(&ld, 0, "cannot read: %s",
		             rc == -EFBIG ? "file too large" : strerror(-rc));
		return rc;
	}
	rc = af_cfg_parse_buffer(path, buf, len, flags, out, diag);
	free(buf);
	return rc;
}

void af_cfg_free(struct af_config *cfg)
{
	if (cfg == NULL)
		return;
	af_wipe(cfg, sizeof(*cfg)); /* holds credentials */
	free(cfg);
}

/* ---- printing ----------------------------------------------------------- */

static bool needs_quotes(const char *v)
{
	size_t n = strlen(v);

	/* values never hold control characters (set_string refuses them) */
	return n == 0 || v[0] == '"' || v[0] == ' ' || v[n - 1] == ' ';
}

static void print_string(FILE *f, const char *v)
{
	if (!needs_quotes(v)) {
		fputs(v, f);
		return;
	}
	fputc('"', f);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('"', f);
}

static void print_value(FILE *f, const struct af_kspec *k, const void *obj)
{
	const char *field = (const char *)obj + k->off;
	char buf[64];

	switch (k->type) {
	case AF_KT_STRING:
	case AF_KT_NAME:
	case AF_KT_PATH:
	case AF_KT_HOST:
		print_string(f, field);
		break;
	case AF_KT_UINT: {
		uint32_t u = *(const uint32_t *)(const void *)field;

		if ((k->flags & AF_K_AUTO0) && u == 0)
			fputs("auto", f);
		else if (k->flags & AF_K_HEX)
			fprintf(f, "0x%02x", u);
		else
			fprintf(f, "%u", u);
		break;
	}
	case AF_KT_BOOL:
		fputs(*(const bool *)(const void *)field ? "yes" : "no", f);
		break;
	case AF_KT_ENUM: {
		const char *name =
		        af_enum_name(k->names, k->n_names, *(const int *)(const void *)field);
		fputs(name ? name : "?", f);
		break;
	}
	case AF_KT_DURATION:
		if ((k->flags & AF_K_AUTO0) && *(const uint64_t *)(const void *)field == 0) {
			fputs("auto", f);
			break;
		}
		af_format_duration_ms(*(const uint64_t *)(const void *)field, buf, sizeof(buf));
		fputs(buf, f);
		break;
	case AF_KT_SIZE:
		af_format_size(*(const uint64_t *)(const void *)field, buf, sizeof(buf));
		fputs(buf, f);
		break;
	case AF_KT_SLOTPAIR: {
		const uint32_t *p = (const uint32_t *)(const void *)field;
		fprintf(f, "%u %u", p[0], p[1]);
		break;
	}
	case AF_KT_LEVEL: {
		const char *name = af_enum_name(af_level_names, AF_ARRAY_SIZE(af_level_names),
		                                *(const int *)(const void *)field);
		fputs(name ? name : "info", f);
		break;
	}
	case AF_KT_FACILITY:
		fputs(af_facility_name(*(const int *)(const void *)field), f);
		break;
	}
}

static bool is_empty_string(const struct af_kspec *k, const void *obj)
{
	switch (k->type) {
	case AF_KT_STRING:
	case AF_KT_NAME:
	case AF_KT_PATH:
	case AF_KT_HOST:
		return ((const char *)obj + k->off)[0] == '\0';
	default:
		return false;
	}
}

static void print_section(FILE *f, const struct af_sspec *s, const void *obj, int depth);

static void print_subsections(FILE *f, const struct af_sspec *subs, size_t n_subs, const void *obj,
                              int depth)
{
	for (size_t i = 0; i < n_subs; i++) {
		const struct af_sspec *sub = &subs[i];

		if (!sub->repeatable) {
			print_section(f, sub, (const char *)obj + sub->obj_off, depth);
			continue;
		}
		{
			unsigned count = *(const unsigned *)(const void *)((const char *)obj +
			                                                   sub->count_off);

			for (unsigned j = 0; j < count; j++)
				print_section(f, sub,
				              (const char *)obj + sub->array_off +
				                      sub->elem_size * j,
				              depth);
		}
	}
}

static void print_section(FILE *f, const struct af_sspec *s, const void *obj, int depth)
{
	int ind = depth * 4;

	if (strcmp(s->name, "pair") == 0 && ((const struct af_cfg_pair *)obj)->derived)
		fprintf(f, "%*s# formed by slot order: the file has no pair sections\n", ind, "");
	fprintf(f, "%*s%s {\n", ind, "", s->name);
	for (size_t i = 0; i < s->n_keys; i++) {
		if (is_empty_string(&s->keys[i], obj))
			continue;
		fprintf(f, "%*s%s: ", ind + 4, "", s->keys[i].name);
		print_value(f, &s->keys[i], obj);
		fputc('\n', f);
	}
	print_subsections(f, s->subs, s->n_subs, obj, depth + 1);
	fprintf(f, "%*s}\n", ind, "");
	if (depth == 0)
		fputc('\n', f);
}

int af_cfg_print(const struct af_config *cfg, FILE *f)
{
	fprintf(f, "# effective configuration of %s\n\n", cfg->path);
	print_subsections(f, af_cfg_top, af_cfg_n_top, cfg, 0);
	return ferror(f) ? -EIO : 0;
}
