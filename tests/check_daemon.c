/*
 * atca-ftd internals: access policy, pidfile, module lifecycle, reload and
 * the JSON answers, all in-process (the IPC wire path is covered by
 * tests/integration/).
 */
#include "config.h"

#include "check_util.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "ftd.h"

START_TEST(test_access_policy)
{
	gid_t groups[] = {100, 2000, 3000};

	ck_assert(ftd_access_decide(0, 0, 500, (gid_t)-1, NULL, 0));      /* root */
	ck_assert(ftd_access_decide(500, 500, 500, (gid_t)-1, NULL, 0));  /* own user */
	ck_assert(!ftd_access_decide(1000, 1000, 0, (gid_t)-1, NULL, 0)); /* no group set */
	ck_assert(!ftd_access_decide(1000, 1000, 0, 2000, NULL, 0));
	ck_assert(ftd_access_decide(1000, 2000, 0, 2000, NULL, 0));   /* primary group */
	ck_assert(ftd_access_decide(1000, 1000, 0, 2000, groups, 3)); /* supplementary */
	ck_assert(!ftd_access_decide(1000, 1000, 0, 2001, groups, 3));
	/* an unknown uid (no NSS entry) is refused unless its gid matches */
	ck_assert(!ftd_access_allowed(4000000, 4000000, 0));
	ck_assert(ftd_access_allowed(4000000, 0, 0));
	ck_assert(ftd_access_allowed(0, 0, (gid_t)-1));
}
END_TEST

START_TEST(test_pidfile)
{
	char *dir = make_temp_dir(), path[256], err[256], *text;
	int fd = -1, fd2 = -1;
	pid_t child;
	int status;

	ck_assert_int_lt(ftd_pidfile_acquire("/nonexistent/x.pid", &fd, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "cannot open pidfile"));

	snprintf(path, sizeof(path), "%s/atca-ftd.pid", dir);
	ck_assert_int_eq(ftd_pidfile_acquire(path, &fd, err, sizeof(err)), 0);
	text = slurp(path);
	ck_assert_int_eq(atoi(text), (int)getpid());
	free(text);

	/* a second process is refused and told who holds it */
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		char expect[64];
		int rc = ftd_pidfile_acquire(path, &fd2, err, sizeof(err));

		snprintf(expect, sizeof(expect), "pid %d", (int)getppid());
		if (rc != -EEXIST || strstr(err, expect) == NULL)
			fprintf(stderr, "child: rc %d err %s expect %s\n", rc, err, expect);
		free(dir); /* the child's copy: keeps valgrind's leak check quiet */
		_exit(rc == -EEXIST && strstr(err, expect) != NULL ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	ftd_pidfile_release(path, fd);
	ck_assert_int_ne(access(path, F_OK), 0);
	ftd_pidfile_release(path, -1); /* harmless */
	remove_temp_dir(dir);
}
END_TEST

struct fixture {
	char *dir;
	char conf[256], cred[256], state[256], pidfile[256], ipc[64];
	struct ftd_ctx ctx;
};

static void write_conf(struct fixture *fx, const char *extra_blades, const char *daemon_extra)
{
	char text[4096];

	snprintf(
	        text, sizeof(text),
	        "daemon {\n    state_dir: %s\n    pidfile: %s\n    ipc_name: %s\n%s}\n"
	        "shelf {\n    credentials: %s\n    manager {\n        address: 127.0.0.1\n    }\n}\n"
	        "blade {\n    slot: 1\n    host: blade1\n}\n%s"
	        "logging {\n    to_syslog: no\n}\n",
	        fx->state, fx->pidfile, fx->ipc, daemon_extra, fx->cred, extra_blades);
	write_file(fx->conf, text, 0644);
}

static void fixture_start(struct fixture *fx)
{
	memset(fx, 0, sizeof(*fx));
	fx->dir = make_temp_dir();
	snprintf(fx->conf, sizeof(fx->conf), "%s/atca-ftd.conf", fx->dir);
	snprintf(fx->cred, sizeof(fx->cred), "%s/shelf.cred", fx->dir);
	snprintf(fx->state, sizeof(fx->state), "%s/state", fx->dir);
	snprintf(fx->pidfile, sizeof(fx->pidfile), "%s/atca-ftd.pid", fx->dir);
	snprintf(fx->ipc, sizeof(fx->ipc), "atca-ft-check-%d", (int)getpid());
	write_file(fx->cred, "username: admin\npassword: secret\n", 0600);
	write_conf(fx, "", "");
	fx->ctx.opt.config_path = fx->conf;
	fx->ctx.opt.log_level = -1;
	fx->ctx.opt.foreground = true;
	fx->ctx.pidfile_fd = -1;
	fx->ctx.ready_fd = -1;
	ck_assert_int_eq(af_init("check_daemon"), 0);
	fx->ctx.loop = qb_loop_create();
	ck_assert_ptr_nonnull(fx->ctx.loop);
	ck_assert_int_eq(ftd_init(&fx->ctx), 0);
}

static void fixture_stop(struct fixture *fx)
{
	char path[512];

	ftd_fini(&fx->ctx);
	ck_assert_int_ne(access(fx->pidfile, F_OK), 0); /* removed */
	qb_loop_destroy(fx->ctx.loop);
	af_fini();
	snprintf(path, sizeof(path), "%s/state", fx->dir);
	rmdir(path);
	remove_temp_dir(fx->dir);
}

static json_object *dispatch(struct fixture *fx, unsigned op, int expect_status)
{
	struct af_ipc_request req = {.op = (uint16_t)op, .version = AF_IPC_VERSION};
	json_object *doc = NULL;

	ck_assert_int_eq(ftd_dispatch(&fx->ctx, &req, &doc), expect_status);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no '%s'", key);
	return v;
}

START_TEST(test_start_status_stop)
{
	struct fixture fx;
	json_object *doc, *d, *b;
	char *text;

	fixture_start(&fx);
	text = slurp(fx.pidfile);
	ck_assert_int_eq(atoi(text), (int)getpid());
	free(text);

	doc = dispatch(&fx, AF_OP_STATUS, 0);
	d = get(doc, "daemon");
	ck_assert_str_eq(json_object_get_string(get(d, "version")), PACKAGE_VERSION);
	ck_assert_int_eq(json_object_get_int(get(d, "config_generation")), 1);
	ck_assert_str_eq(json_object_get_string(get(d, "role")), "observer");
	ck_assert(json_object_is_type(get(d, "last_reload"), json_type_null));
	b = json_object_array_get_idx(get(doc, "blades"), 0);
	ck_assert_str_eq(json_object_get_string(get(b, "ipmc")), "0x82");
	ck_assert_int_eq((int)json_object_array_length(get(doc, "modules")),
	                 (int)ftd_module_count());
	for (unsigned i = 0; i < ftd_module_count(); i++) {
		json_object *m = json_object_array_get_idx(get(doc, "modules"), i);
		ck_assert_str_ne(json_object_get_string(get(m, "state")), "stopped");
	}
	json_object_put(doc);

	doc = dispatch(&fx, AF_OP_HELLO, 0);
	ck_assert_int_eq(json_object_get_int(get(get(doc, "protocol"), "max")), AF_IPC_VERSION);
	json_object_put(doc);

	{
		struct af_ipc_request req = {.op = 77};
		ck_assert_int_eq(ftd_dispatch(&fx.ctx, &req, &doc), -EOPNOTSUPP);
		json_object_put(doc);
	}
	fixture_stop(&fx);
}
END_TEST

/* log: invalid requests first (unknown subsystem, a level out of range),
 * then query, set, a reload that keeps the run-time levels, reset. */
static json_object *log_req(struct fixture *fx, const char *ss, int count, int expect_status)
{
	struct af_ipc_request req = {.op = AF_OP_LOG, .version = AF_IPC_VERSION};
	json_object *doc = NULL;

	if (ss != NULL) {
		req.has_blade = true;
		snprintf(req.blade, sizeof(req.blade), "%s", ss);
	}
	if (count >= 0) {
		req.has_count = true;
		req.count = (uint32_t)count;
	}
	ck_assert_int_eq(ftd_dispatch(&fx->ctx, &req, &doc), expect_status);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

static const char *ss_field(json_object *doc, const char *ss, const char *key)
{
	json_object *a = get(doc, "subsystems");

	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i);

		if (strcmp(json_object_get_string(get(e, "name")), ss) == 0)
			return json_object_get_string(get(e, key));
	}
	ck_abort_msg("no subsystem %s", ss);
	return NULL;
}

START_TEST(test_log_levels)
{
	struct fixture fx;
	struct ftd_reload_result res;
	json_object *doc;

	fixture_start(&fx);
	json_object_put(log_req(&fx, "nosuch", -1, -ENOENT));
	json_object_put(log_req(&fx, "ipmi", 99, -EINVAL));
	json_object_put(log_req(&fx, NULL, LOG_ERR - 1, -EINVAL));
	json_object_put(log_req(&fx, NULL, LOG_DEBUG + 1, -EINVAL));

	doc = log_req(&fx, NULL, -1, 0);
	ck_assert_str_eq(json_object_get_string(get(doc, "source")), "config");
	ck_assert_int_eq((int)json_object_array_length(get(doc, "subsystems")), AF_SS_COUNT);
	json_object_put(doc);

	json_object_put(log_req(&fx, NULL, LOG_WARNING, 0));
	doc = log_req(&fx, "ipmi", LOG_DEBUG, 0);
	ck_assert_str_eq(json_object_get_string(get(doc, "level")), "warning");
	ck_assert_str_eq(json_object_get_string(get(doc, "source")), "runtime");
	ck_assert_str_eq(ss_field(doc, "ipmi", "level"), "debug");
	ck_assert_str_eq(ss_field(doc, "ipmi", "source"), "runtime");
	ck_assert_str_eq(ss_field(doc, "fm", "level"), "warning");
	ck_assert_str_eq(ss_field(doc, "fm", "source"), "daemon");
	json_object_put(doc);

	ck_assert_int_eq(ftd_reload(&fx.ctx, &res), 0);
	doc = log_req(&fx, NULL, -1, 0);
	ck_assert_str_eq(json_object_get_string(get(doc, "source")), "runtime");
	ck_assert_str_eq(ss_field(doc, "ipmi", "level"), "debug");
	json_object_put(doc);

	doc = log_req(&fx, "ipmi", AF_LOG_RESET, 0);
	ck_assert_str_eq(ss_field(doc, "ipmi", "source"), "daemon");
	ck_assert_str_eq(json_object_get_string(get(doc, "source")), "runtime");
	json_object_put(doc);
	doc = log_req(&fx, NULL, AF_LOG_RESET, 0);
	ck_assert_str_eq(json_object_get_string(get(doc, "source")), "config");
	json_object_put(doc);
	fixture_stop(&fx);
}
END_TEST

START_TEST(test_reload_bad_then_good)
{
	struct fixture fx;
	struct ftd_reload_result res;
	json_object *doc;
	char expect[300];

	fixture_start(&fx);

	/* a broken file: rejected, generation 1 keeps running */
	write_file(fx.conf, "blade {\n    slot: 1\n    host: blade1\n    bogus: 1\n}\n", 0644);
	doc = dispatch(&fx, AF_OP_CONFIG_CHECK, 0);
	ck_assert(!json_object_get_boolean(get(doc, "valid")));
	json_object_put(doc);
	ck_assert_int_eq(ftd_reload(&fx.ctx, &res), -EINVAL);
	ck_assert(!res.ok);
	ck_assert_uint_ge(res.n_errors, 1);
	snprintf(expect, sizeof(expect), "%s:4: unknown key 'bogus'", fx.conf);
	ck_assert_msg(strstr(res.errors[0], expect) != NULL, "%s", res.errors[0]);
	ck_assert_uint_eq(fx.ctx.cfg_generation, 1);
	ck_assert_uint_eq(fx.ctx.cfg->n_blades, 1);
	ck_assert_str_eq(fx.ctx.cfg->daemon.ipc_name, fx.ipc);

	/* status shows the rejected reload */
	doc = dispatch(&fx, AF_OP_STATUS, 0);
	ck_assert(!json_object_get_boolean(get(get(get(doc, "daemon"), "last_reload"), "ok")));
	json_object_put(doc);

	/* a good file with a second blade and a changed restart-only key */
	write_conf(&fx, "blade {\n    slot: 2\n    host: blade2\n}\n", "    local_blade: 2\n");
	doc = dispatch(&fx, AF_OP_RELOAD, 0);
	ck_assert(json_object_get_boolean(get(doc, "ok")));
	json_object_put(doc);
	ck_assert_uint_eq(fx.ctx.cfg_generation, 2);
	ck_assert_uint_eq(fx.ctx.cfg->n_blades, 2);
	ck_assert_uint_eq(fx.ctx.cfg->n_pairs, 1);
	ck_assert_uint_eq(fx.ctx.local_blade, 2);

	{
		char saved[64];

		snprintf(saved, sizeof(saved), "%s", fx.ipc);
		snprintf(fx.ipc, sizeof(fx.ipc), "renamed");
		write_conf(&fx, "", "");
		ck_assert_int_eq(ftd_reload(&fx.ctx, &res), 0);
		ck_assert_uint_ge(res.n_warnings, 1);
		{
			bool found = false;

			for (unsigned i = 0; i < res.n_warnings; i++)
				found |= strstr(res.warnings[i], "daemon.ipc_name changed") != NULL;
			ck_assert_msg(found, "no warning about ipc_name");
		}
		ck_assert_str_eq(fx.ctx.cfg->daemon.ipc_name, saved); /* kept until restart */
		ck_assert_uint_eq(fx.ctx.cfg_generation, 3);
	}
	fixture_stop(&fx);
}
END_TEST

START_TEST(test_start_fails_cleanly)
{
	struct ftd_ctx ctx = {.opt = {.config_path = "/nonexistent.conf", .log_level = -1},
	                      .pidfile_fd = -1,
	                      .ready_fd = -1};

	ck_assert_int_eq(af_init("check_daemon"), 0);
	ck_assert_int_lt(ftd_init(&ctx), 0);
	ftd_fini(&ctx); /* nothing was started: must not crash */
	ck_assert_ptr_null(ctx.cfg);
	af_fini();
}
END_TEST

START_TEST(test_event_sink)
{
	struct fixture fx;
	struct af_event ev;
	json_object *doc;

	fixture_start(&fx);
	af_event_init(&ev, AF_SRC_IPMI, AF_EV_SEL_RECORD, 1, "SEL");
	ftd_event_sink(&fx.ctx, &ev);
	ck_assert_uint_eq(ev.id, 1);
	ftd_event_sink(&fx.ctx, &ev);
	ck_assert_uint_eq(ev.id, 2);
	doc = dispatch(&fx, AF_OP_STATUS, 0);
	ck_assert_int_eq(json_object_get_int(get(get(doc, "daemon"), "events")), 2);
	json_object_put(doc);
	fixture_stop(&fx);
}
END_TEST

START_TEST(test_sd_notify)
{
	char *dir = make_temp_dir(), path[256], buf[64];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	snprintf(path, sizeof(path), "%s/notify", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);

	unsetenv("NOTIFY_SOCKET");
	ftd_sd_notify("READY=1"); /* without systemd: nothing, no error */
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	ftd_sd_notify("READY=1"); /* not a socket address: ignored */
	setenv("NOTIFY_SOCKET", path, 1);
	ftd_sd_notify("RELOADING=1");
	n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	ck_assert_int_eq(n, 11);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "RELOADING=1");
	unsetenv("NOTIFY_SOCKET");
	close(fd);
	remove_temp_dir(dir);
}
END_TEST

static json_object *dispatch_req(struct fixture *fx, struct af_ipc_request *req, int expect_status)
{
	json_object *doc = NULL;

	req->version = AF_IPC_VERSION;
	ck_assert_int_eq(ftd_dispatch(&fx->ctx, req, &doc), expect_status);
	ck_assert_ptr_nonnull(doc);
	return doc;
}

START_TEST(test_hardware_answers_bad_blades)
{
	struct fixture fx;
	struct af_ipc_request req = {.op = AF_OP_SENSORS, .has_blade = true};
	json_object *doc;

	fixture_start(&fx);
	snprintf(req.blade, sizeof(req.blade), "9");
	doc = dispatch_req(&fx, &req, -ENOENT);
	ck_assert_ptr_nonnull(strstr(json_object_get_string(get(doc, "error")), "no blade '9'"));
	json_object_put(doc);
	req.op = AF_OP_SEL;
	snprintf(req.blade, sizeof(req.blade), "nosuchhost");
	json_object_put(dispatch_req(&fx, &req, -ENOENT));
	req.op = AF_OP_EVENTS;
	snprintf(req.blade, sizeof(req.blade), "-1");
	json_object_put(dispatch_req(&fx, &req, -ENOENT));
	/* 2^32 + 1 and beyond: not slot 1 */
	snprintf(req.blade, sizeof(req.blade), "4294967297");
	json_object_put(dispatch_req(&fx, &req, -ENOENT));
	snprintf(req.blade, sizeof(req.blade), "99999999999999999999999");
	json_object_put(dispatch_req(&fx, &req, -ENOENT));
	fixture_stop(&fx);
}
END_TEST

static int replies;
static int last_status;
static void fence_reply(void *opaque, int status, json_object *doc)
{
	(void)opaque;
	ck_assert_ptr_nonnull(doc);
	replies++;
	last_status = status;
}

START_TEST(test_fence_refusals)
{
	struct fixture fx;
	struct af_ipc_request req = {.op = AF_OP_FENCE, .has_blade = true};

	fixture_start(&fx);
	/* unknown blade, then no shelf-manager session: refused at once */
	snprintf(req.blade, sizeof(req.blade), "7");
	ftd_fence_request(&fx.ctx, &req, fence_reply, NULL);
	ck_assert_int_eq(replies, 1);
	ck_assert_int_eq(last_status, -ENOENT);
	/* a slot number that would wrap onto blade 1 */
	snprintf(req.blade, sizeof(req.blade), "4294967297");
	ftd_fence_request(&fx.ctx, &req, fence_reply, NULL);
	ck_assert_int_eq(replies, 2);
	ck_assert_int_eq(last_status, -ENOENT);
	replies = 1;
	snprintf(req.blade, sizeof(req.blade), "blade1");
	req.op = AF_OP_UNFENCE;
	ftd_fence_request(&fx.ctx, &req, fence_reply, NULL);
	ck_assert_int_eq(replies, 2);
	ck_assert_int_eq(last_status, -ENOTCONN);
	ck_assert_ptr_null(fx.ctx.fence_reqs);
	fixture_stop(&fx);
}
END_TEST

START_TEST(test_hardware_answers)
{
	struct fixture fx;
	struct af_ipc_request req = {.op = AF_OP_EVENTS};
	json_object *doc, *arr, *b;
	struct af_event ev;

	fixture_start(&fx);
	doc = dispatch(&fx, AF_OP_BLADES, 0);
	get(get(doc, "shelf_manager"), "connected");
	arr = get(doc, "blades");
	ck_assert_uint_eq(json_object_array_length(arr), 1);
	b = json_object_array_get_idx(arr, 0);
	ck_assert_int_eq(json_object_get_int(get(b, "slot")), 1);
	ck_assert_str_eq(json_object_get_string(get(b, "ipmc")), "0x82");
	ck_assert_str_eq(json_object_get_string(get(b, "health")), "unknown");
	ck_assert_str_eq(json_object_get_string(get(b, "fencing")), "none");
	json_object_put(doc);

	doc = dispatch(&fx, AF_OP_SENSORS, 0);
	ck_assert_uint_eq(json_object_array_length(get(doc, "sensors")), 0);
	json_object_put(doc);
	doc = dispatch(&fx, AF_OP_SEL, 0);
	ck_assert_uint_eq(json_object_array_length(get(doc, "records")), 0);
	json_object_put(doc);

	/* events: the newest N, oldest first, filtered by blade */
	for (int i = 0; i < 5; i++) {
		af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, i % 2 ? 1 : 0, "payload");
		af_event_set(&ev, "n", "%d", i);
		ftd_event_sink(&fx.ctx, &ev);
	}
	req.has_count = true;
	req.count = 2;
	doc = dispatch_req(&fx, &req, 0);
	arr = get(doc, "events");
	ck_assert_uint_eq(json_object_array_length(arr), 2);
	ck_assert_str_eq(
	        json_object_get_string(get(get(json_object_array_get_idx(arr, 0), "detail"), "n")),
	        "3");
	ck_assert_str_eq(
	        json_object_get_string(get(get(json_object_array_get_idx(arr, 1), "detail"), "n")),
	        "4");
	get(json_object_array_get_idx(arr, 1), "rx_mono_ns");
	json_object_put(doc);
	req.has_blade = true;
	snprintf(req.blade, sizeof(req.blade), "1");
	req.count = 10;
	doc = dispatch_req(&fx, &req, 0);
	ck_assert_uint_eq(json_object_array_length(get(doc, "events")), 2); /* n=1, n=3 */
	json_object_put(doc);
	snprintf(req.blade, sizeof(req.blade), "shelf");
	doc = dispatch_req(&fx, &req, 0);
	ck_assert_uint_eq(json_object_array_length(get(doc, "events")), 3);
	json_object_put(doc);
	fixture_stop(&fx);
}
END_TEST

START_TEST(test_sensor_severity)
{
	ck_assert_int_eq(ftd_sensor_severity("ok"), 0);
	ck_assert_int_eq(ftd_sensor_severity("none"), 0);
	ck_assert_int_eq(ftd_sensor_severity("M4"), 0);
	ck_assert_int_eq(ftd_sensor_severity("presence"), 0);
	ck_assert_int_eq(ftd_sensor_severity("upper-non-critical"), 1);
	ck_assert_int_eq(ftd_sensor_severity("lower-critical"), 2);
	ck_assert_int_eq(ftd_sensor_severity("upper-non-recoverable"), 2);
	ck_assert_int_eq(ftd_sensor_severity("correctable-ecc"), 1);
	ck_assert_int_eq(ftd_sensor_severity("presence,ierr"), 2);
	ck_assert_int_eq(ftd_sensor_severity("uncorrectable-ecc,correctable-ecc"), 2);
	/* words inside other words do not count */
	ck_assert_int_eq(ftd_sensor_severity("xierr"), 0);
}
END_TEST

static Suite *daemon_suite(void)
{
	Suite *s = suite_create("daemon");

	add_tcase(s, test_start_fails_cleanly, 10);
	add_tcase(s, test_access_policy, 10);
	add_tcase(s, test_pidfile, 10);
	add_tcase(s, test_sd_notify, 10);
	add_tcase(s, test_start_status_stop, 20);
	add_tcase(s, test_reload_bad_then_good, 20);
	add_tcase(s, test_log_levels, 20);
	add_tcase(s, test_event_sink, 20);
	add_tcase(s, test_hardware_answers_bad_blades, 20);
	add_tcase(s, test_hardware_answers, 20);
	add_tcase(s, test_fence_refusals, 20);
	add_tcase(s, test_sensor_severity, 10);
	return s;
}

int main(void)
{
	return run_suite(daemon_suite());
}
