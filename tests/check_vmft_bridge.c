/*
 * src/vmft-bridge/vft.c, the manager's side of the engines: the module
 * contract, then the bridge against a fake engine (a control socket served
 * by a thread of this test, where atca-vmft would put it): orders and their
 * answers, bad answers, and engine events turned into failure-model events
 * (bad lines first).
 */
#include "config.h"

#include <pthread.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "vft.h"

#define MODULE_PREFIX vft
#define MODULE_NAME "vmft-bridge"
#include "check_module_contract.h"

/* ---- a fake engine -------------------------------------------------------------- */

struct fake {
	char dir[128];
	int lfd;
	pthread_t th;
	/* what it answers: one line per connection (with its newline), or,
	 * for a subscriber, these lines then nothing */
	const char *answer;
	const char *events;
	bool close_early; /* answer without a newline, then close */
	bool hangup;      /* a subscriber gets the events, then the engine is gone */
	bool quits;       /* "quit" is obeyed: the engine goes away */
	char got[256];    /* the last request line */
};

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		int lfd = __atomic_load_n(&f->lfd, __ATOMIC_SEQ_CST);
		int c = lfd >= 0 ? accept(lfd, NULL, NULL) : -1;
		ssize_t n;
		char buf[256];

		if (c < 0)
			return NULL;
		n = recv(c, buf, sizeof(buf) - 1, 0);
		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, "\"subscribe\"") == NULL)
				snprintf(f->got, sizeof(f->got), "%s", buf);
			if (strstr(buf, "\"subscribe\"") != NULL && f->hangup) {
				/* an engine that dies: its socket refuses from now on */
				(void)!send(c, f->events, strlen(f->events), MSG_NOSIGNAL);
				close(c);
				lfd = __atomic_exchange_n(&f->lfd, -1, __ATOMIC_SEQ_CST);
				if (lfd >= 0)
					close(lfd);
				return NULL;
			}
			if (strstr(buf, "\"subscribe\"") != NULL) {
				(void)!send(c, f->events, strlen(f->events), MSG_NOSIGNAL);
				/* the bridge keeps a subscription open: so do we,
				 * until it hangs up (but this engine serves one
				 * connection at a time: with nothing to say, it
				 * hangs up itself) */
				while (f->events[0] && !f->hangup &&
				       recv(c, buf, sizeof(buf), 0) > 0)
					;
			} else if (strstr(buf, "\"quit\"") != NULL && f->quits) {
				/* as an engine does: answer, remove the socket, exit */
				char path[200];

				(void)!send(c, "{\"ok\":true}\n", 12, MSG_NOSIGNAL);
				close(c);
				snprintf(path, sizeof(path), "%s/fg1/ctl.sock", f->dir);
				unlink(path);
				lfd = __atomic_exchange_n(&f->lfd, -1, __ATOMIC_SEQ_CST);
				if (lfd >= 0)
					close(lfd);
				return NULL;
			} else if (f->close_early) {
				(void)!send(c, "{\"ok\":tr", 8, MSG_NOSIGNAL);
			} else {
				(void)!send(c, f->answer, strlen(f->answer), MSG_NOSIGNAL);
			}
		}
		close(c);
	}
}

static struct af_config *bridge_config_engine(const char *state_dir, const char *engine)
{
	char text[1400];
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	int n = snprintf(text, sizeof(text),
	                 "daemon {\n    local_blade: 1\n}\n"
	                 "shelf {\n    credentials: /x\n    manager {\n"
	                 "        address: 127.0.0.1\n    }\n}\n"
	                 "blade {\n    slot: 1\n    host: b1\n}\n"
	                 "blade {\n    slot: 2\n    host: b2\n}\n"
	                 "vm {\n    name: fg1\n    blade: 1\n    protection: ft\n"
	                 "    disk: /x.img\n}\n"
	                 "vm {\n    name: web\n    blade: 2\n    protection: restart\n}\n"
	                 "vmft {\n    state_dir: %s\n    engine: %s\n}\n",
	                 state_dir, engine);

	ck_assert_int_lt(n, (int)sizeof(text));
	ck_assert_int_eq(af_cfg_parse_buffer("bridge", text, (size_t)n,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg,
	                                     &diag),
	                 0);
	return cfg;
}

static struct af_config *bridge_config(const char *state_dir)
{
	return bridge_config_engine(state_dir, "/nonexistent/atca-vmft");
}

static void fake_start(struct fake *f)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char *base = make_temp_dir();
	char sub[200];

	/* a bridge with a loop subscribes on its own: it gets no events */
	if (f->events == NULL)
		f->events = "";
	snprintf(f->dir, sizeof(f->dir), "%s", base);
	free(base);
	snprintf(sub, sizeof(sub), "%s/fg1", f->dir);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ctl.sock", sub);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(f->lfd, 0);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 4), 0);
	ck_assert_int_eq(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void fake_stop(struct fake *f)
{
	char p[200];

	/* the fake may have closed it itself (a dying engine): one of us does */
	int lfd = __atomic_exchange_n(&f->lfd, -1, __ATOMIC_SEQ_CST);

	if (lfd >= 0) {
		shutdown(lfd, SHUT_RDWR);
		close(lfd);
	}
	pthread_join(f->th, NULL);
	snprintf(p, sizeof(p), "%s/fg1/ctl.sock", f->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/fg1", f->dir);
	rmdir(p);
	rmdir(f->dir);
}

/* ---- orders ---------------------------------------------------------------------- */

START_TEST(test_request_invalid)
{
	struct af_config *cfg = bridge_config("/nonexistent/vmft");
	struct af_module_env env = {.cfg = cfg};
	struct vft *m = NULL;
	char reply[256];

	ck_assert_int_eq(vft_init(&m, &env), 0);
	ck_assert_int_eq(vft_request(NULL, "fg1", "status", false, reply, sizeof(reply)), -EINVAL);
	ck_assert_int_eq(vft_request(m, NULL, "status", false, reply, sizeof(reply)), -EINVAL);
	ck_assert_int_eq(vft_request(m, "fg1", NULL, false, reply, sizeof(reply)), -EINVAL);
	ck_assert_int_eq(vft_request(m, "fg1", "status", false, reply, 1), -EINVAL);
	/* an order cannot smuggle JSON into the request */
	ck_assert_int_eq(
	        vft_request(m, "fg1", "status\",\"force\":true,\"x", false, reply, sizeof(reply)),
	        -EINVAL);
	/* not protected by an engine: a restart VM, an unknown one */
	ck_assert_int_eq(vft_request(m, "web", "status", false, reply, sizeof(reply)), -ENOENT);
	ck_assert_int_eq(vft_request(m, "nope", "status", false, reply, sizeof(reply)), -ENOENT);
	/* no engine runs it here */
	ck_assert_int_eq(vft_request(m, "fg1", "status", false, reply, sizeof(reply)), -ENOTCONN);
	vft_fini(m);
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_request_bad_answers)
{
	struct fake f = {.answer = "{\"ok\":true}"}; /* no newline: cut */
	struct af_config *cfg;
	struct af_module_env env = {0};
	struct vft *m = NULL;
	char reply[256];

	fake_start(&f);
	cfg = bridge_config(f.dir);
	env.cfg = cfg;
	ck_assert_int_eq(vft_init(&m, &env), 0);
	ck_assert_int_eq(vft_request(m, "fg1", "status", false, reply, sizeof(reply)), -ECONNRESET);
	f.close_early = true;
	ck_assert_int_eq(vft_request(m, "fg1", "status", false, reply, sizeof(reply)), -ECONNRESET);
	/* an answer longer than the caller's buffer is refused, not cut */
	f.close_early = false;
	f.answer =
	        "{\"ok\":true,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n";
	ck_assert_int_eq(vft_request(m, "fg1", "status", false, reply, 16), -EMSGSIZE);
	vft_fini(m);
	af_cfg_free(cfg);
	fake_stop(&f);
}
END_TEST

START_TEST(test_request_ok)
{
	struct fake f = {.answer = "{\"ok\":true,\"epoch\":42}\n"};
	struct af_config *cfg;
	struct af_module_env env = {0};
	struct vft *m = NULL;
	char reply[256];

	fake_start(&f);
	cfg = bridge_config(f.dir);
	env.cfg = cfg;
	ck_assert_int_eq(vft_init(&m, &env), 0);
	ck_assert_int_eq(vft_request(m, "fg1", "promote", true, reply, sizeof(reply)), 0);
	ck_assert_str_eq(reply, "{\"ok\":true,\"epoch\":42}");
	ck_assert_str_eq(f.got, "{\"cmd\":\"promote\",\"force\":true}\n");
	ck_assert_int_eq(vft_request(m, "fg1", "status", false, reply, sizeof(reply)), 0);
	ck_assert_str_eq(f.got, "{\"cmd\":\"status\"}\n");
	vft_fini(m);
	af_cfg_free(cfg);
	fake_stop(&f);
}
END_TEST

START_TEST(test_engine_start_invalid)
{
	struct af_config *cfg = bridge_config("/nonexistent/vmft");
	struct af_module_env env = {.cfg = cfg};
	struct vft *m = NULL;
	char err[128];

	ck_assert_int_eq(vft_init(&m, &env), 0);
	ck_assert_int_eq(vft_engine_start(m, "fg1", "leader", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_engine_start(m, NULL, "primary", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(vft_engine_start(m, "web", "primary", err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "web"));
	vft_fini(m);
	af_cfg_free(cfg);
}
END_TEST

/* ---- events ---------------------------------------------------------------------- */

struct sink {
	qb_loop_t *loop;
	unsigned n;
	struct af_event ev[8];
};

static void sink_fn(void *opaque, struct af_event *ev)
{
	struct sink *s = opaque;

	if (s->n < 8)
		s->ev[s->n++] = *ev;
	if (s->n == 5)
		qb_loop_stop(s->loop);
}

static void give_up(void *data)
{
	qb_loop_stop(data);
}

START_TEST(test_events)
{
	/* bad lines first: not JSON, not an object, no event, an event that
	 * is not a string, an unknown event; then the four that count */
	struct fake f = {.events =
	                         "not json\n[1,2]\n{\"vm\":\"fg1\"}\n{\"event\":7}\n"
	                         "{\"ok\":true,\"state\":\"waiting\"}\n"
	                         "{\"event\":\"state\",\"state\":\"much-too-long-a-state-name\"}\n"
	                         "{\"event\":\"state\",\"state\":\"standby\"}\n"
	                         "{\"event\":\"sync-begin\",\"detail\":\"full copy\"}\n"
	                         "{\"event\":\"backup-lost\",\"detail\":\"link reset\"}\n"
	                         "{\"event\":\"replication-stalled\",\"detail\":\"epoch 9\","
	                         "\"epoch\":8}\n"
	                         "{\"event\":\"protected\"}\n"
	                         "{\"event\":\"promoted\",\"detail\":null}\n"
	                         "{\"event\":\"vm-failed\",\"detail\":\"QEMU exited\"}\n"
	                         /* restarted: its guest runs again (once) */
	                         "{\"event\":\"state\",\"state\":\"failed\"}\n"
	                         "{\"event\":\"state\",\"state\":\"unprotected\"}\n"
	                         "{\"event\":\"state\",\"state\":\"syncing\"}\n"
	                         "{\"event\":\"state\",\"state\":\"protected\"}\n"};
	struct af_config *cfg;
	struct sink s = {0};
	struct af_module_env env = {0};
	qb_loop_timer_handle t;
	struct vft *m = NULL;
	char state[16];

	ck_assert_int_eq(af_init("check_vmft_bridge"), 0);
	fake_start(&f);
	cfg = bridge_config(f.dir);
	s.loop = qb_loop_create();
	ck_assert_ptr_nonnull(s.loop);
	env = (struct af_module_env){
	        .loop = s.loop, .cfg = cfg, .event_sink = sink_fn, .sink_opaque = &s};
	ck_assert_int_eq(vft_init(&m, &env), 0);
	qb_loop_timer_add(s.loop, QB_LOOP_LOW, 5 * AF_NS_PER_S, s.loop, give_up, &t);
	qb_loop_run(s.loop);
	ck_assert_uint_eq(s.n, 6);
	for (unsigned i = 0; i < 6; i++) {
		ck_assert_int_eq(s.ev[i].source, AF_SRC_ENGINE);
		ck_assert_int_eq(s.ev[i].blade, 1);
		ck_assert_str_eq(s.ev[i].entity, "fg1");
	}
	ck_assert_int_eq(s.ev[0].kind, AF_EV_ENGINE_HEALTH);
	ck_assert_str_eq(af_event_get(&s.ev[0], "state"), "backup-lost");
	ck_assert_ptr_null(af_event_get(&s.ev[0], "epoch"));
	ck_assert_int_eq(s.ev[1].kind, AF_EV_ENGINE_HEALTH);
	ck_assert_str_eq(af_event_get(&s.ev[1], "state"), "replication-stalled");
	/* the last acknowledged epoch, for atcaFtReplicationStalled */
	ck_assert_str_eq(af_event_get(&s.ev[1], "epoch"), "8");
	ck_assert_int_eq(s.ev[2].kind, AF_EV_ENGINE_HEALTH);
	ck_assert_str_eq(af_event_get(&s.ev[2], "state"), "ok");
	ck_assert_int_eq(s.ev[3].kind, AF_EV_VM_LIFECYCLE);
	ck_assert_str_eq(af_event_get(&s.ev[3], "event"), "started");
	ck_assert_str_eq(af_event_get(&s.ev[3], "how"), "promoted");
	ck_assert_int_eq(s.ev[4].kind, AF_EV_VM_LIFECYCLE);
	ck_assert_str_eq(af_event_get(&s.ev[4], "event"), "stopped-failed");
	ck_assert_int_eq(s.ev[5].kind, AF_EV_VM_LIFECYCLE);
	ck_assert_str_eq(af_event_get(&s.ev[5], "event"), "started");
	ck_assert_str_eq(af_event_get(&s.ev[5], "how"), "running"); /* no trap */
	/* the last state it said; a name too long was ignored */
	ck_assert_int_eq(vft_engine_state(m, "fg1", state, sizeof(state)), 0);
	ck_assert_str_eq(state, "protected");
	ck_assert_int_eq(vft_engine_state(m, "web", state, sizeof(state)), -ENOENT);
	ck_assert_int_eq(vft_engine_state(m, "fg1", NULL, 4), -EINVAL);
	vft_fini(m);
	qb_loop_timer_del(s.loop, t);
	qb_loop_destroy(s.loop);
	af_cfg_free(cfg);
	fake_stop(&f);
	af_fini();
}
END_TEST

/* ---- orders off the loop ---------------------------------------------------------- */

struct done_rec {
	qb_loop_t *loop;
	int calls, rc;
	char msg[256];
};

static void order_done(void *cookie, int rc, const char *msg)
{
	struct done_rec *d = cookie;

	d->calls++;
	d->rc = rc;
	snprintf(d->msg, sizeof(d->msg), "%s", msg);
	qb_loop_stop(d->loop);
}

static void run_order(struct vft *m, qb_loop_t *loop, const char *order, bool force,
                      struct done_rec *d)
{
	qb_loop_timer_handle t;

	memset(d, 0, sizeof(*d));
	d->loop = loop;
	ck_assert_int_eq(vft_order(m, "fg1", order, force, order_done, d), 0);
	qb_loop_timer_add(loop, QB_LOOP_LOW, 8 * AF_NS_PER_S, loop, give_up, &t);
	qb_loop_run(loop);
	qb_loop_timer_del(loop, t);
	ck_assert_int_eq(d->calls, 1);
}

START_TEST(test_order_invalid)
{
	struct af_config *cfg = bridge_config("/nonexistent/vmft");
	struct af_module_env env = {.cfg = cfg};
	struct done_rec d;
	struct vft *m = NULL;
	qb_loop_t *loop;

	/* without a loop there is no way back for the answer */
	ck_assert_int_eq(vft_init(&m, &env), 0);
	ck_assert_int_eq(vft_order(m, "fg1", "promote", false, order_done, &d), -ENOTSUP);
	vft_fini(m);
	loop = qb_loop_create();
	env.loop = loop;
	ck_assert_int_eq(vft_init(&m, &env), 0);
	ck_assert_int_eq(vft_order(NULL, "fg1", "promote", false, order_done, &d), -EINVAL);
	ck_assert_int_eq(vft_order(m, "fg1", "promote", false, NULL, &d), -EINVAL);
	ck_assert_int_eq(vft_order(m, "fg1", "status", false, order_done, &d), -EINVAL);
	ck_assert_int_eq(vft_order(m, "fg1", "protect", false, order_done, &d), -EINVAL);
	ck_assert_int_eq(vft_order(m, "web", "promote", false, order_done, &d), -ENOENT);
	/* no engine here: the order fails, through done */
	run_order(m, loop, "promote", true, &d);
	ck_assert_int_eq(d.rc, -ENOTCONN);
	/* quit with no engine: nothing to stop, done */
	run_order(m, loop, "quit", false, &d);
	ck_assert_int_eq(d.rc, 0);
	vft_fini(m);
	qb_loop_destroy(loop);
	af_cfg_free(cfg);
}
END_TEST

START_TEST(test_order_answers)
{
	struct fake f = {.answer = "{\"ok\":false,\"error\":\"refused: the primary is still "
	                           "connected\"}\n"};
	struct af_config *cfg;
	struct af_module_env env = {0};
	struct done_rec d;
	struct vft *m = NULL;
	qb_loop_t *loop = qb_loop_create();

	fake_start(&f);
	cfg = bridge_config(f.dir);
	env = (struct af_module_env){.loop = loop, .cfg = cfg};
	ck_assert_int_eq(vft_init(&m, &env), 0);
	run_order(m, loop, "promote", false, &d);
	ck_assert_int_eq(d.rc, -EREMOTEIO);
	ck_assert_ptr_nonnull(strstr(d.msg, "still connected"));
	f.answer = "{\"ok\":\"yes\"}\n"; /* ok must be a boolean */
	run_order(m, loop, "promote", false, &d);
	ck_assert_int_eq(d.rc, -EPROTO);
	f.answer = "{\"ok\":true,\"epoch\":7}\n";
	run_order(m, loop, "promote", true, &d);
	ck_assert_int_eq(d.rc, 0);
	ck_assert_str_eq(f.got, "{\"cmd\":\"promote\",\"force\":true}\n");
	/* a forgotten order's answer goes nowhere */
	ck_assert_int_eq(vft_order(m, "fg1", "promote", false, order_done, &d), 0);
	vft_order_forget(m, &d);
	d.calls = 0;
	vft_fini(m); /* waits for the order's thread */
	ck_assert_int_eq(d.calls, 0);
	qb_loop_destroy(loop);
	af_cfg_free(cfg);
	fake_stop(&f);
}
END_TEST

/* ---- a dead backup engine is started again; one stopped by order is not ----------- */

struct respawn_watch {
	qb_loop_t *loop;
	const char *marker;
	int ticks;
};

static void respawn_tick(void *data)
{
	struct respawn_watch *w = data;
	qb_loop_timer_handle t;

	if (access(w->marker, F_OK) == 0 || --w->ticks <= 0) {
		qb_loop_stop(w->loop);
		return;
	}
	qb_loop_timer_add(w->loop, QB_LOOP_LOW, 50 * AF_NS_PER_MS, w, respawn_tick, &t);
}

static bool respawned_within(struct vft *m, qb_loop_t *loop, const char *marker, int ms)
{
	struct respawn_watch w = {.loop = loop, .marker = marker, .ticks = ms / 50};
	qb_loop_timer_handle t;

	(void)m;
	qb_loop_timer_add(loop, QB_LOOP_LOW, 50 * AF_NS_PER_MS, &w, respawn_tick, &t);
	qb_loop_run(loop);
	return access(marker, F_OK) == 0;
}

/* One life of a fake engine that says `events` and dies: whether atca-ftd
 * starts it again as a backup within ms. */
static bool respawn_phase(const char *events, int ms)
{
	struct fake f = {.events = events, .hangup = true};
	char engine[256], marker[256], script[1024];
	struct af_config *cfg;
	struct af_module_env env = {0};
	struct vft *m = NULL;
	qb_loop_t *loop = qb_loop_create();
	bool started;

	fake_start(&f);
	/* the "engine" only says how it was started */
	snprintf(engine, sizeof(engine), "%s/engine.sh", f.dir);
	snprintf(marker, sizeof(marker), "%s/started", f.dir);
	/* written aside and renamed: the test never reads it half written */
	snprintf(script, sizeof(script), "#!/bin/sh\necho \"$@\" > %s.tmp && mv %s.tmp %s\n",
	         marker, marker, marker);
	write_file(engine, script, 0700);
	cfg = bridge_config_engine(f.dir, engine);
	env = (struct af_module_env){.loop = loop, .cfg = cfg};
	ck_assert_int_eq(vft_init(&m, &env), 0);
	started = respawned_within(m, loop, marker, ms);
	if (started) {
		char *text = slurp(marker);

		ck_assert_ptr_nonnull(strstr(text, "-v fg1 -r backup -b 1"));
		free(text);
	}
	vft_fini(m);
	qb_loop_destroy(loop);
	af_cfg_free(cfg);
	unlink(marker);
	unlink(engine);
	fake_stop(&f);
	return started;
}

START_TEST(test_backup_respawn)
{
	ck_assert_int_eq(af_init("check_vmft_bridge"), 0);
	/* standby, then gone: started again as a backup after about 1 s */
	ck_assert(respawn_phase("{\"ok\":true,\"state\":\"standby\"}\n", 5000));
	/* one that said it quits (by order or signal) stays stopped */
	ck_assert(!respawn_phase("{\"ok\":true,\"state\":\"standby\"}\n"
	                         "{\"event\":\"quit\",\"state\":\"standby\",\"detail\":\"by "
	                         "order\"}\n",
	                         2500));
	/* a primary that dies is a failed guest, not the bridge's to restart */
	ck_assert(!respawn_phase("{\"ok\":true,\"state\":\"protected\"}\n", 2500));
	af_fini();
}
END_TEST

/* "start": the engine here (a backup) is told to quit, and only once it is
 * gone for good (socket removed, pidfile lock released) does a primary
 * engine start. */
struct unlock_at {
	int fd;
	uint64_t at_ns;
};

static void unlock_pidfile(void *data)
{
	struct unlock_at *u = data;

	u->at_ns = af_mono_ns();
	flock(u->fd, LOCK_UN);
}

START_TEST(test_order_start)
{
	struct fake f = {.events = "", .quits = true};
	char engine[256], marker[256], script[1024], pidfile[256];
	struct af_config *cfg;
	struct af_module_env env = {0};
	struct unlock_at u;
	qb_loop_timer_handle t;
	struct done_rec d;
	struct vft *m = NULL;
	qb_loop_t *loop = qb_loop_create();
	uint64_t t0;
	char *text;

	fake_start(&f);
	snprintf(engine, sizeof(engine), "%s/engine.sh", f.dir);
	snprintf(marker, sizeof(marker), "%s/started", f.dir);
	/* written aside and renamed: the test never reads it half written */
	snprintf(script, sizeof(script), "#!/bin/sh\necho \"$@\" > %s.tmp && mv %s.tmp %s\n",
	         marker, marker, marker);
	write_file(engine, script, 0700);
	/* the old engine's pidfile, still locked for 300 ms after its exit */
	snprintf(pidfile, sizeof(pidfile), "%s/fg1/engine.pid", f.dir);
	u.fd = open(pidfile, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_int_ge(u.fd, 0);
	ck_assert_int_eq(flock(u.fd, LOCK_EX), 0);
	cfg = bridge_config_engine(f.dir, engine);
	env = (struct af_module_env){.loop = loop, .cfg = cfg};
	ck_assert_int_eq(vft_init(&m, &env), 0);
	t0 = af_mono_ns();
	qb_loop_timer_add(loop, QB_LOOP_HIGH, 300 * AF_NS_PER_MS, &u, unlock_pidfile, &t);
	run_order(m, loop, "start", false, &d);
	ck_assert_int_eq(d.rc, 0);
	ck_assert_uint_ge(af_mono_ns() - t0, 300 * AF_NS_PER_MS);
	/* the engine is detached (double fork): it writes when it runs */
	for (int i = 0; i < 200 && access(marker, F_OK) != 0; i++)
		usleep(10000);
	text = slurp(marker);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "-v fg1 -r primary -b 1"));
	free(text);
	vft_fini(m);
	qb_loop_destroy(loop);
	af_cfg_free(cfg);
	close(u.fd);
	unlink(pidfile);
	unlink(marker);
	unlink(engine);
	fake_stop(&f);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vmft_bridge");

	add_module_contract_tests(s);
	add_tcase(s, test_request_invalid, 10);
	add_tcase(s, test_request_bad_answers, 10);
	add_tcase(s, test_request_ok, 10);
	add_tcase(s, test_engine_start_invalid, 10);
	add_tcase(s, test_events, 10);
	add_tcase(s, test_order_invalid, 20);
	add_tcase(s, test_order_answers, 20);
	add_tcase(s, test_backup_respawn, 30);
	add_tcase(s, test_order_start, 20);
	return run_suite(s);
}
