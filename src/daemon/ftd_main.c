/*
 * atca-ftd: the atca-ft daemon that runs on every blade.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_MAIN
#include "ftd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fm_rules.h"

#ifndef AF_CONFIG_FILE
#define AF_CONFIG_FILE "/etc/atca-ft/atca-ftd.conf"
#endif

enum { EXIT_USAGE = 2 };

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: atca-ftd [OPTIONS]\n"
	        "High-availability manager for ATCA blade shelves (one per blade).\n\n"
	        "  -c, --config FILE         configuration file (default %s)\n"
	        "  -f, --foreground          do not fork; also log to standard error\n"
	        "  -d, --debug               log at debug level\n"
	        "  -l, --log-level LEVEL     err, warning, notice, info or debug\n"
	        "      --check-config[=FILE] validate the configuration, print the effective\n"
	        "                            configuration and exit (0 valid, 1 invalid)\n"
	        "  -V, --version             print the version and exit\n"
	        "  -h, --help                print this help and exit\n\n"
	        "Signals: TERM/INT stop, HUP reloads the configuration (only if valid),\n"
	        "USR1 writes the log blackbox to the state directory.\n",
	        AF_CONFIG_FILE);
}

static void rules_err(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "%s\n", msg);
}

static int check_config(const char *path)
{
	struct af_cfg_diag *diag = calloc(1, sizeof(*diag));
	struct af_config *cfg = NULL;
	int rc;

	if (diag == NULL)
		return 1;
	rc = af_cfg_load(path, 0, &cfg, diag);
	for (unsigned i = 0; i < diag->n_warnings; i++)
		fprintf(stderr, "%s\n", diag->warnings[i]);
	for (unsigned i = 0; i < diag->n_errors; i++)
		fprintf(stderr, "%s\n", diag->errors[i]);
	if (diag->n_errors_dropped)
		fprintf(stderr, "%s: ... and %u more errors\n", path, diag->n_errors_dropped);
	if (rc == 0) {
		struct fm_rules *rules = NULL;
		int rrc;

		af_cfg_print(cfg, stdout);
		fprintf(stderr, "%s: configuration is valid\n", path);
		/* the failure-model rules it names are part of it */
		rrc = fm_rules_load(cfg->daemon.failure_rules, &rules, rules_err, NULL);
		if (rrc == 0)
			fprintf(stderr, "%s: %u failure-model rules, valid\n",
			        cfg->daemon.failure_rules, rules->n_rules);
		else if (rrc == -ENOENT)
			fprintf(stderr,
			        "%s does not exist: the built-in failure-model rules apply\n",
			        cfg->daemon.failure_rules);
		else if (rrc != -EINVAL)
			fprintf(stderr, "%s: %s\n", cfg->daemon.failure_rules, strerror(-rrc));
		if (rrc < 0 && rrc != -ENOENT) {
			fprintf(stderr, "%s: failure-model rules are invalid\n",
			        cfg->daemon.failure_rules);
			rc = -EINVAL;
		}
		fm_rules_free(rules);
	} else {
		fprintf(stderr, "%s: configuration is invalid\n", path);
	}
	af_cfg_free(cfg);
	free(diag);
	return rc == 0 ? 0 : 1;
}

static int absolute_path(const char *path, char *buf, size_t len)
{
	char cwd[2048];
	int n;

	if (path[0] == '/')
		n = snprintf(buf, len, "%s", path);
	else if (getcwd(cwd, sizeof(cwd)) != NULL)
		n = snprintf(buf, len, "%s/%s", cwd, path);
	else
		return -errno;
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int32_t on_stop_signal(int32_t sig, void *data)
{
	struct ftd_ctx *ctx = data;

	af_notice("SIG%s received: stopping", sigabbrev_np(sig));
	ftd_sd_notify("STOPPING=1");
	qb_loop_stop(ctx->loop);
	return 0;
}

static int32_t on_hup(int32_t sig, void *data)
{
	struct ftd_ctx *ctx = data;
	struct ftd_reload_result res;

	(void)sig;
	ftd_reload(ctx, &res);
	return 0;
}

static int32_t on_usr1(int32_t sig, void *data)
{
	struct ftd_ctx *ctx = data;
	char path[AF_CFG_PATH_MAX + 48];
	long n;

	(void)sig;
	snprintf(path, sizeof(path), "%s/atca-ftd.manual.blackbox", ctx->cfg->daemon.state_dir);
	n = af_log_blackbox_dump(path);
	if (n < 0)
		af_warn("could not write blackbox to %s: %s", path, strerror((int)-n));
	else
		af_notice("blackbox written to %s (%ld bytes; read it with qb-blackbox)", path, n);
	return 0;
}

/* logrotate's postrotate: a new log file under the same name, nothing else
 * (a SIGHUP would also apply whatever was edited in the configuration). */
static int32_t on_usr2(int32_t sig, void *data)
{
	struct ftd_ctx *ctx = data;
	int rc;

	(void)sig;
	rc = ftd_apply_logging(ctx, ctx->cfg);
	if (rc < 0)
		af_warn("SIGUSR2: cannot reopen the log file %s: %s (logging as before)",
		        ctx->cfg->logging.logfile, strerror(-rc));
	else
		af_notice("SIGUSR2: log file reopened");
	return 0;
}

static int add_signals(struct ftd_ctx *ctx)
{
	static const struct {
		int sig;
		qb_loop_signal_dispatch_fn fn;
	} sigs[] = {
	        {SIGTERM, on_stop_signal}, {SIGINT, on_stop_signal}, {SIGHUP, on_hup},
	        {SIGUSR1, on_usr1},        {SIGUSR2, on_usr2},
	};
	qb_loop_signal_handle h;

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < AF_ARRAY_SIZE(sigs); i++) {
		int rc = qb_loop_signal_add(ctx->loop, QB_LOOP_HIGH, sigs[i].sig, ctx, sigs[i].fn,
		                            &h);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"foreground", no_argument, NULL, 'f'},
	        {"debug", no_argument, NULL, 'd'},
	        {"log-level", required_argument, NULL, 'l'},
	        {"check-config", optional_argument, NULL, 'C'},
	        {"version", no_argument, NULL, 'V'},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct ftd_ctx ctx = {
	        .opt = {.config_path = AF_CONFIG_FILE, .log_level = -1},
	        .pidfile_fd = -1,
	        .ready_fd = -1,
	};
	const char *check_path = NULL;
	char config_abs[4096];
	bool check = false;
	int c, rc;

	while ((c = getopt_long(argc, argv, "c:fdl:Vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ctx.opt.config_path = optarg;
			break;
		case 'f':
			ctx.opt.foreground = true;
			break;
		case 'd':
			ctx.opt.log_level = LOG_DEBUG;
			break;
		case 'l':
			ctx.opt.log_level = af_level_parse(optarg);
			if (ctx.opt.log_level < LOG_ERR) {
				fprintf(stderr, "atca-ftd: unknown log level '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'C':
			check = true;
			check_path = optarg;
			break;
		case 'V':
			printf("atca-ftd %s (IPC protocol %d..%d)\n", af_version(),
			       AF_IPC_VERSION_MIN, AF_IPC_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	/* "--check-config FILE" as well as "--check-config=FILE" */
	if (check && check_path == NULL && optind == argc - 1)
		check_path = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "atca-ftd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (check)
		return check_config(check_path ? check_path : ctx.opt.config_path);

	/* The daemon chdir()s to "/": a relative -c must keep naming the file
	 * the user meant, for the first load and for every reload. */
	if (absolute_path(ctx.opt.config_path, config_abs, sizeof(config_abs)) < 0) {
		fprintf(stderr, "atca-ftd: configuration path too long\n");
		return EXIT_USAGE;
	}
	ctx.opt.config_path = config_abs;

	if (af_init("atca-ftd") < 0) {
		fprintf(stderr, "atca-ftd: cannot initialise logging\n");
		return 1;
	}
	if (!ctx.opt.foreground) {
		ctx.ready_fd = ftd_daemonize();
		if (ctx.ready_fd < 0) {
			af_err("cannot go to the background: %s", strerror(-ctx.ready_fd));
			af_fini();
			return 1;
		}
	}
	ctx.start_ns = af_mono_ns();
	ctx.start_wall = time(NULL);
	ctx.loop = qb_loop_create();
	if (ctx.loop == NULL) {
		af_err("cannot create the main loop");
		rc = -ENOMEM;
		goto out;
	}
	/* Handlers before start-up: a SIGHUP from logrotate or a SIGTERM that
	 * arrives while modules start is queued for the loop, not fatal. */
	rc = add_signals(&ctx);
	if (rc == 0)
		rc = ftd_init(&ctx);
	if (rc < 0) {
		af_err("start-up failed: %s", strerror(-rc));
		goto out;
	}
	ftd_ready(&ctx, 0);
	qb_loop_run(ctx.loop);
	af_notice("main loop ended: shutting down");
out:
	if (rc < 0)
		ftd_ready(&ctx, 1);
	ftd_fini(&ctx);
	if (ctx.loop != NULL)
		qb_loop_destroy(ctx.loop);
	af_notice("atca-ftd stopped");
	af_fini();
	return rc < 0 ? 1 : 0;
}
