/*
 * Logging for every atca-ft module, on top of libqb's qb_log.
 *
 * Each source file defines AF_LOG_SS (its subsystem) before using the
 * af_err()/af_warn()/af_notice()/af_info()/af_debug() macros. The subsystem is
 * carried as the qb_log tag, printed by "%g", and used to apply per-subsystem
 * levels. Every message starts with "@<monotonic seconds>" so that a fault
 * timeline can be rebuilt from logs of several modules (and several blades,
 * whose CLOCK_MONOTONIC values are compared only within one blade).
 */
#ifndef AF_LOG_H
#define AF_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

#include <qb/qblog.h>

#include "af_util.h"

enum af_subsys {
	AF_SS_MAIN = 0, /* daemon core, module lifecycle */
	AF_SS_CONFIG,
	AF_SS_IPC,
	AF_SS_IPMI,  /* src/ipmi-detect */
	AF_SS_SHELF, /* src/shelfmgr */
	AF_SS_FM,    /* src/failure-model */
	AF_SS_RECOVERY,
	AF_SS_VMFT,
	AF_SS_CLUSTER, /* corosync membership */
	AF_SS_SNMP,
	AF_SS_CLI,
	AF_SS_COUNT
};

/* The qb_log tag of a callsite is the subsystem number plus one, so that the
 * untagged callsites of libqb itself (tag 0) are told apart. */
#define AF_SS_TAG(ss) ((uint32_t)(ss) + 1)

#define af_log(ss, prio, fmt, ...)                                                                 \
	qb_logt(prio, AF_SS_TAG(ss), "@%.6f " fmt, af_mono_s(), ##__VA_ARGS__)

#define af_err(fmt, ...) af_log(AF_LOG_SS, LOG_ERR, fmt, ##__VA_ARGS__)
#define af_warn(fmt, ...) af_log(AF_LOG_SS, LOG_WARNING, fmt, ##__VA_ARGS__)
#define af_notice(fmt, ...) af_log(AF_LOG_SS, LOG_NOTICE, fmt, ##__VA_ARGS__)
#define af_info(fmt, ...) af_log(AF_LOG_SS, LOG_INFO, fmt, ##__VA_ARGS__)
#define af_debug(fmt, ...) af_log(AF_LOG_SS, LOG_DEBUG, fmt, ##__VA_ARGS__)

/* What the "logging" section of the configuration asks for. */
struct af_log_settings {
	bool to_stderr;
	bool to_syslog;
	int syslog_facility; /* LOG_DAEMON, LOG_LOCAL0, ... */
	bool to_logfile;
	char logfile[256];
	int level;                     /* syslog priority, e.g. LOG_INFO */
	int subsys_level[AF_SS_COUNT]; /* -1: use level */
	bool blackbox;
	uint64_t blackbox_size; /* bytes */
};

extern const char *const af_subsys_names[AF_SS_COUNT];
extern const char *const af_level_names[LOG_DEBUG + 1];

int af_subsys_parse(const char *name);
int af_level_parse(const char *name);    /* "err", "warning", "notice", "info", "debug" */
int af_facility_parse(const char *name); /* "daemon", "local0".."local7", "user" */
const char *af_facility_name(int facility);

void af_log_settings_default(struct af_log_settings *s);

/* Starts logging with the defaults: stderr on, syslog off, blackbox on.
 * ident is the program name used by syslog and in the blackbox. */
int af_log_init(const char *ident);

/* Applies settings; safe to call again on reload. Returns -errno if the log
 * file cannot be opened (the other targets are still applied). */
int af_log_apply(const struct af_log_settings *s);

/* Writes the blackbox ring to path (the daemon calls this on fatal signals
 * and on SIGUSR1). Returns bytes written or -errno. */
long af_log_blackbox_dump(const char *path);

/* Installs SIGSEGV/SIGBUS/SIGILL/SIGFPE/SIGABRT handlers that dump the
 * blackbox to path before dying with the original signal. */
void af_log_fatal_handlers(const char *path);

void af_log_fini(void);

#endif
