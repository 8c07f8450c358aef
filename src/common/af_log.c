#include "config.h"

#define AF_LOG_SS AF_SS_MAIN
#include "af_log.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "af_util.h"

const char *const af_subsys_names[AF_SS_COUNT] = {
        [AF_SS_MAIN] = "main",         [AF_SS_CONFIG] = "config", [AF_SS_IPC] = "ipc",
        [AF_SS_IPMI] = "ipmi",         [AF_SS_SHELF] = "shelf",   [AF_SS_FM] = "fm",
        [AF_SS_RECOVERY] = "recovery", [AF_SS_VMFT] = "vmft",     [AF_SS_CLUSTER] = "cluster",
        [AF_SS_SNMP] = "snmp",         [AF_SS_CLI] = "cli",
};

const char *const af_level_names[LOG_DEBUG + 1] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",     [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

static const struct {
	const char *name;
	int facility;
} facilities[] = {
        {"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
        {"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
        {"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
        {"local7", LOG_LOCAL7},
};

/*
 * qb_log keeps one process-wide set of targets and callsites, so the state
 * that decides which callsite goes where is process-wide too. It is only
 * touched from the main loop thread (init, reload) and read by the filter
 * callback that libqb invokes under its own lock.
 */
static struct {
	bool inited;
	struct af_log_settings s;
	int32_t file_target;    /* -1 when no log file is open */
	uint64_t blackbox_size; /* applied; resizing the ring empties it */
	char fatal_path[512];
} g_log = {.file_target = -1};

int af_subsys_parse(const char *name)
{
	return af_enum_parse(af_subsys_names, AF_SS_COUNT, name);
}

int af_level_parse(const char *name)
{
	if (strcmp(name, "error") == 0)
		return LOG_ERR;
	if (strcmp(name, "warn") == 0)
		return LOG_WARNING;
	return af_enum_parse(af_level_names, AF_ARRAY_SIZE(af_level_names), name);
}

int af_facility_parse(const char *name)
{
	for (size_t i = 0; i < AF_ARRAY_SIZE(facilities); i++) {
		if (strcmp(facilities[i].name, name) == 0)
			return facilities[i].facility;
	}
	return -EINVAL;
}

const char *af_facility_name(int facility)
{
	for (size_t i = 0; i < AF_ARRAY_SIZE(facilities); i++) {
		if (facilities[i].facility == facility)
			return facilities[i].name;
	}
	return "daemon";
}

void af_log_settings_default(struct af_log_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->to_stderr = true;
	s->to_syslog = false;
	s->syslog_facility = LOG_DAEMON;
	s->to_logfile = false;
	s->level = LOG_INFO;
	for (int i = 0; i < AF_SS_COUNT; i++)
		s->subsys_level[i] = -1;
	s->blackbox = true;
	s->blackbox_size = 1024 * 1024;
}

static const char *tags_to_string(uint32_t tags)
{
	if (qb_bit_is_set(tags, QB_LOG_TAG_LIBQB_MSG_BIT))
		return "libqb";
	if (tags >= 1 && tags <= AF_SS_COUNT)
		return af_subsys_names[tags - 1];
	return "-";
}

static int level_for_tags(uint32_t tags)
{
	int ss = -1;

	if (qb_bit_is_set(tags, QB_LOG_TAG_LIBQB_MSG_BIT))
		ss = AF_SS_IPC; /* libqb's own messages are about IPC and the loop */
	else if (tags >= 1 && tags <= AF_SS_COUNT)
		ss = (int)tags - 1;
	if (ss >= 0 && g_log.s.subsys_level[ss] >= 0)
		return g_log.s.subsys_level[ss];
	return g_log.s.level;
}

/* Called by libqb for every callsite, when it is first used and whenever we
 * re-apply settings: decides once which targets a message goes to, so the
 * hot path is a bit test. */
static void filter_callsite(struct qb_log_callsite *cs)
{
	int level = level_for_tags(cs->tags);
	uint32_t targets = 0;

	if (cs->priority <= level) {
		if (g_log.s.to_stderr)
			qb_bit_set(targets, QB_LOG_STDERR);
		if (g_log.s.to_syslog)
			qb_bit_set(targets, QB_LOG_SYSLOG);
		if (g_log.file_target >= 0)
			qb_bit_set(targets, g_log.file_target);
	}
	/* The blackbox is for post-mortem analysis: it always records debug. */
	if (g_log.s.blackbox && cs->priority <= LOG_DEBUG)
		qb_bit_set(targets, QB_LOG_BLACKBOX);
	cs->targets = targets;
}

int af_log_init(const char *ident)
{
	if (g_log.inited)
		return 0;
	qb_log_init(ident, LOG_DAEMON, LOG_INFO);
	/* qb_log_init() turns syslog on with its own filter; ours decides. */
	qb_log_filter_ctl(QB_LOG_SYSLOG, QB_LOG_FILTER_CLEAR_ALL, QB_LOG_FILTER_FILE, "*", 0);
	qb_log_tags_stringify_fn_set(tags_to_string);
	qb_log_format_set(QB_LOG_STDERR, "%T %N[%P] [%g] %p: %b");
	qb_log_format_set(QB_LOG_SYSLOG, "[%g] %p: %b");
	g_log.inited = true;
	g_log.file_target = -1;
	g_log.blackbox_size = 0;
	af_log_settings_default(&g_log.s);
	return af_log_apply(&g_log.s);
}

/* Opens a file target; it receives nothing until the filter says so. */
static int32_t open_logfile(const char *path)
{
	int32_t t = qb_log_file_open(path);

	if (t < 0)
		return t;
	qb_log_format_set(t, "%T %N[%P] [%g] %p: %b");
	qb_log_ctl(t, QB_LOG_CONF_ENABLED, QB_TRUE);
	return t;
}

int af_log_apply(const struct af_log_settings *s)
{
	int32_t file_target = -1;

	if (!g_log.inited)
		return -EINVAL;
	/* The new log file is opened before anything changes, so a file that
	 * cannot be opened leaves the previous logging entirely in place. The
	 * file is opened anew even when its name is unchanged: after logrotate
	 * moved it, a reload must start a new file. */
	if (s->to_logfile && s->logfile[0] != '\0') {
		file_target = open_logfile(s->logfile);
		if (file_target < 0) {
			af_err("cannot open log file %s: %s", s->logfile, strerror(-file_target));
			return file_target;
		}
	}
	if (g_log.file_target >= 0)
		qb_log_file_close(g_log.file_target);
	g_log.file_target = file_target;
	if (s != &g_log.s)
		g_log.s = *s;

	qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, g_log.s.to_stderr);
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_FACILITY, g_log.s.syslog_facility);
	qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, g_log.s.to_syslog);
	if (g_log.s.blackbox) {
		uint64_t size = g_log.s.blackbox_size;

		if (size < 4096)
			size = 4096;
		if (size > 64 * 1024 * 1024)
			size = 64 * 1024 * 1024;
		if (size != g_log.blackbox_size) {
			qb_log_ctl(QB_LOG_BLACKBOX, QB_LOG_CONF_SIZE, (int32_t)size);
			g_log.blackbox_size = size;
		}
		qb_log_ctl(QB_LOG_BLACKBOX, QB_LOG_CONF_ENABLED, QB_TRUE);
	} else {
		qb_log_ctl(QB_LOG_BLACKBOX, QB_LOG_CONF_ENABLED, QB_FALSE);
	}
	qb_log_filter_fn_set(filter_callsite);
	return 0;
}

/* libqb prints a ring buffer summary on stdout while it dumps; stdout may be
 * a terminal or a pipe that is not ours to write, so it goes to /dev/null. */
static int mute_stdout(void)
{
	int saved, null;

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	return saved;
}

static void unmute_stdout(int saved)
{
	fflush(stdout);
	if (saved >= 0) {
		dup2(saved, STDOUT_FILENO);
		close(saved);
	}
}

long af_log_blackbox_dump(const char *path)
{
	long n;
	int saved;

	if (!g_log.inited || !g_log.s.blackbox)
		return -ENOENT;
	saved = mute_stdout();
	n = (long)qb_log_blackbox_write_to_file(path);
	unmute_stdout(saved);
	return n;
}

static void fatal_signal(int sig)
{
	/* Not strictly async-signal-safe, but the process is dying anyway and
	 * the blackbox is the only record of its last seconds. */
	if (g_log.fatal_path[0] != '\0') {
		(void)mute_stdout();
		qb_log_blackbox_write_to_file(g_log.fatal_path);
	}
	/* The blackbox ring lives in /dev/shm: without this a crash leaves
	 * its megabyte there for good (it is saved in fatal_path already). */
	qb_log_fini();
	signal(sig, SIG_DFL);
	raise(sig);
}

void af_log_fatal_handlers(const char *path)
{
	static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
	struct sigaction sa;

	af_strlcpy(g_log.fatal_path, path, sizeof(g_log.fatal_path));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fatal_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND;
	for (size_t i = 0; i < AF_ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

void af_log_fini(void)
{
	if (!g_log.inited)
		return;
	if (g_log.file_target >= 0)
		qb_log_file_close(g_log.file_target);
	g_log.file_target = -1;
	qb_log_fini();
	g_log.inited = false;
}
