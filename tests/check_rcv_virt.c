/*
 * src/recovery: the libvirt executor against libvirt's test driver, with a
 * real qb_loop as libvirt's event loop. Invalid inputs first, then the
 * pure helpers (event names, the QEMU pidfile check), then the operations
 * on a blade, events, forget(), timeouts against a libvirtd that never
 * answers, and the loss of the local connection.
 *
 * The test driver: a connection to test:///path/node.xml has a private
 * copy of that node, test:///default is shared by the whole process.
 * Every blade's worker keeps its own connection, so the state of a node.xml
 * blade is seen only through that blade. It cannot migrate: only the argument checks and the
 * error path are tested here, the lab integration test migrates for real.
 */
#include "config.h"

#include "check_util.h"

#include <libvirt/libvirt.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "af_common.h"
#include "rcv_virt.h"

/* ---- fixtures ------------------------------------------------------------------------------ */

/* One loop per process: libvirt's event loop registration is
 * process-global (and with CK_FORK=no every check shares the process). */
static qb_loop_t *test_loop(void)
{
	static qb_loop_t *loop;

	if (loop == NULL)
		loop = qb_loop_create();
	ck_assert_ptr_nonnull(loop);
	return loop;
}

/* A second loop, for the check that libvirt can move to another loop once
 * the first is let go. Never destroyed: libqb's loops share one signal
 * pipe, which qb_loop_destroy() closes under the other loops' feet. */
static qb_loop_t *second_loop(void)
{
	static qb_loop_t *loop;

	if (loop == NULL)
		loop = qb_loop_create();
	ck_assert_ptr_nonnull(loop);
	return loop;
}

/* the loop run_loop_ms() runs: callbacks stop it to return early */
static qb_loop_t **running(void)
{
	static qb_loop_t *loop;

	return &loop;
}

static void stop_running(void)
{
	if (*running() != NULL)
		qb_loop_stop(*running());
}

static void stop_fire(void *data)
{
	*(bool *)data = true;
	stop_running();
}

/* Runs loop for ms at most (a callback may stop it earlier). */
static void run_loop_on(qb_loop_t *loop, unsigned ms)
{
	qb_loop_timer_handle th;
	bool fired = false;

	ck_assert_int_eq(
	        qb_loop_timer_add(loop, QB_LOOP_HIGH, ms * 1000000ULL, &fired, stop_fire, &th), 0);
	*running() = loop;
	qb_loop_run(loop);
	*running() = NULL;
	if (!fired)
		qb_loop_timer_del(loop, th);
}

static void run_loop_ms(unsigned ms)
{
	run_loop_on(test_loop(), ms);
}

/* Runs the loop until *n reaches target or max_ms pass. */
static bool run_until(const int *n, int target, unsigned max_ms)
{
	uint64_t deadline = af_mono_ns() + max_ms * 1000000ULL;

	while (*n < target && af_mono_ns() < deadline)
		run_loop_ms(50);
	return *n >= target;
}

struct rec {
	int calls;
	int result;
	char msg[256];
	unsigned n_doms;
	struct rcv_virt_dom doms[16];
};

static void rec_done(void *opaque, int result, const char *msg)
{
	struct rec *r = opaque;

	r->calls++;
	r->result = result;
	ck_assert_ptr_nonnull(msg);
	af_strlcpy(r->msg, msg, sizeof(r->msg));
	stop_running();
}

static void rec_list(void *opaque, int result, const struct rcv_virt_dom *d, unsigned n)
{
	struct rec *r = opaque;

	r->calls++;
	r->result = result;
	r->n_doms = n < 16 ? n : 16;
	if (n > 0)
		memcpy(r->doms, d, r->n_doms * sizeof(*d));
	stop_running();
}

static const struct rcv_virt_dom *rec_dom(const struct rec *r, const char *name)
{
	for (unsigned i = 0; i < r->n_doms; i++) {
		if (strcmp(r->doms[i].name, name) == 0)
			return &r->doms[i];
	}
	ck_abort_msg("domain %s not listed", name);
	return &r->doms[0]; /* not reached */
}

/* what the ops callbacks saw */
struct seen {
	int n_events;
	char dom[64][RCV_VIRT_NAME_MAX];
	char ev[64][32];
	int n_up, n_down;
	char why[256];
};

static void seen_lifecycle(void *opaque, int blade, const char *domain, const char *event)
{
	struct seen *s = opaque;

	ck_assert_int_eq(blade, 1);
	if (s->n_events < 64) {
		af_strlcpy(s->dom[s->n_events], domain, sizeof(s->dom[0]));
		af_strlcpy(s->ev[s->n_events], event, sizeof(s->ev[0]));
	}
	s->n_events++;
	stop_running();
}

static void seen_conn(void *opaque, int blade, bool up, const char *why)
{
	struct seen *s = opaque;

	ck_assert_int_eq(blade, 1);
	ck_assert_ptr_nonnull(why);
	if (up) {
		s->n_up++;
	} else {
		s->n_down++;
		af_strlcpy(s->why, why, sizeof(s->why));
	}
	stop_running();
}

static const struct rcv_virt_ops seen_ops = {.lifecycle = seen_lifecycle, .conn = seen_conn};

/* index of the first event (from) of domain, or -1 */
static int seen_find(const struct seen *s, int from, const char *domain, const char *event)
{
	for (int i = from; i < s->n_events && i < 64; i++) {
		if (strcmp(s->dom[i], domain) == 0 && strcmp(s->ev[i], event) == 0)
			return i;
	}
	return -1;
}

/* waits for event of domain to be seen */
static bool wait_event(struct seen *s, const char *domain, const char *event, unsigned max_ms)
{
	uint64_t deadline = af_mono_ns() + max_ms * 1000000ULL;

	while (seen_find(s, 0, domain, event) < 0 && af_mono_ns() < deadline)
		run_loop_ms(50);
	return seen_find(s, 0, domain, event) >= 0;
}

/* vm1 defined and shut off, vm2 running */
static const char node_xml[] =
        "<node>\n"
        " <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
        "  <name>vm1</name><memory>65536</memory><os><type>hvm</type></os>\n"
        "  <test:runstate>5</test:runstate>\n"
        " </domain>\n"
        " <domain type='test'>\n"
        "  <name>vm2</name><memory>65536</memory><os><type>hvm</type></os>\n"
        " </domain>\n"
        "</node>\n";

static const char vm3_xml[] = "<domain type='test'><name>vm3</name><memory>65536</memory>"
                              "<os><type>hvm</type></os></domain>\n";

/* Blades 1-3; blade 1 at uri1, the others at uri23. */
static struct af_config *config3(const char *uri1, const char *uri23)
{
	char text[2048];
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	int n;

	n = snprintf(text, sizeof(text),
	             "shelf {\n credentials: /x\n manager {\n  address: 127.0.0.1\n }\n}\n"
	             "blade {\n slot: 1\n host: b1\n libvirt_uri: %s\n}\n"
	             "blade {\n slot: 2\n host: b2\n libvirt_uri: %s\n}\n"
	             "blade {\n slot: 3\n host: b3\n libvirt_uri: %s\n}\n"
	             "detection {\n hypervisor_interval: 100ms\n}\n",
	             uri1, uri23, uri23);
	ck_assert_int_lt(n, (int)sizeof(text));
	ck_assert_int_eq(af_cfg_parse_buffer("virt", text, (size_t)n,
	                                     AF_CFG_SKIP_CREDENTIALS | AF_CFG_SKIP_NSS, &cfg,
	                                     &diag),
	                 0);
	return cfg;
}

struct fixture {
	char *dir;
	char node_uri[200];
	struct af_config *cfg;
	struct rcv_virt *v;
	struct seen seen;
};

/* Blade 1 (local when local) runs node.xml, blades 2 and 3 test:///default. */
static void fixture_up(struct fixture *fx, bool local)
{
	char path[160];

	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(af_init("check_rcv_virt"), 0);
	fx->dir = make_temp_dir();
	snprintf(path, sizeof(path), "%s/node.xml", fx->dir);
	write_file(path, node_xml, 0644);
	snprintf(path, sizeof(path), "%s/vm3.xml", fx->dir);
	write_file(path, vm3_xml, 0644);
	snprintf(fx->node_uri, sizeof(fx->node_uri), "test://%s/node.xml", fx->dir);
	fx->cfg = config3(fx->node_uri, "test:///default");
	ck_assert_int_eq(
	        rcv_virt_init(&fx->v, test_loop(), fx->cfg, local ? 1 : 0, &seen_ops, &fx->seen),
	        0);
	ck_assert_int_eq(rcv_virt_set_pidfile_dir(fx->v, fx->dir), 0);
	if (local) {
		ck_assert(run_until(&fx->seen.n_up, 1, 5000));
		ck_assert(rcv_virt_local_up(fx->v));
	}
}

static void fixture_down(struct fixture *fx)
{
	rcv_virt_fini(fx->v);
	af_cfg_free(fx->cfg);
	remove_temp_dir(fx->dir);
	af_fini();
}

/* Starts an operation and waits for its answer. */
#define OP(r, call)                                                                                \
	do {                                                                                       \
		memset(&(r), 0, sizeof(r));                                                        \
		ck_assert_int_eq((call), 0);                                                       \
		ck_assert(run_until(&(r).calls, 1, 5000));                                         \
	} while (0)

/* ---- invalid inputs ------------------------------------------------------------------------- */

START_TEST(test_invalid_arguments)
{
	struct af_config *cfg = config3("test:///default", "test:///default");
	static int other_loop; /* any other loop: refused before it is looked at */
	struct af_module_status st;
	struct rcv_virt *v = NULL;
	struct rec r;
	char longname[80];

	ck_assert_int_eq(af_init("check_rcv_virt"), 0);
	ck_assert_int_eq(rcv_virt_init(NULL, test_loop(), cfg, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_init(&v, NULL, cfg, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_init(&v, test_loop(), NULL, 0, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_init(&v, test_loop(), cfg, -1, NULL, NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_init(&v, test_loop(), cfg, AF_MAX_BLADES + 1, NULL, NULL),
	                 -EINVAL);
	ck_assert_int_eq(rcv_virt_init(&v, test_loop(), cfg, 5, NULL, NULL), -ENOENT);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(rcv_virt_loop_register(NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_loop_register(test_loop()), 0);
	ck_assert_int_eq(rcv_virt_init(&v, (qb_loop_t *)&other_loop, cfg, 0, NULL, NULL), -EBUSY);
	ck_assert_ptr_null(v);

	ck_assert_int_eq(rcv_virt_init(&v, test_loop(), cfg, 0, NULL, NULL), 0);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(rcv_virt_start(NULL, 2, "d", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, "d", NULL, 1000, NULL, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 0, "d", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, AF_MAX_BLADES + 1, "d", NULL, 1000, rec_done, &r),
	                 -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, NULL, NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, "", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, "../etc", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, "a/b", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, longname, NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_start(v, 2, "d", NULL, 0, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_stop(v, 2, "d", 0, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_stop(NULL, 2, "d", 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_restart(v, -3, "d", 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_restart(v, 2, "d", 1000, NULL, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_list(NULL, 2, rec_list, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_list(v, 2, NULL, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_list(v, 0, rec_list, &r), -EINVAL);
	/* an unknown blade */
	ck_assert_int_eq(rcv_virt_start(v, 4, "d", NULL, 1000, rec_done, &r), -ENOENT);
	ck_assert_int_eq(rcv_virt_stop(v, 9, "d", 1000, rec_done, &r), -ENOENT);
	ck_assert_int_eq(rcv_virt_list(v, 16, rec_list, &r), -ENOENT);
	/* migration: arguments only (the test driver cannot migrate) */
	ck_assert_int_eq(rcv_virt_migrate(NULL, 2, 3, "d", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 2, 2, "d", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 0, 2, "d", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 2, 17, "d", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 2, 3, "a b", NULL, 1000, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 2, 3, "d", NULL, 0, rec_done, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 2, 3, "d", NULL, 1000, NULL, &r), -EINVAL);
	ck_assert_int_eq(rcv_virt_migrate(v, 2, 4, "d", NULL, 1000, rec_done, &r), -ENOENT);
	ck_assert_int_eq(rcv_virt_migrate(v, 4, 2, "d", NULL, 1000, rec_done, &r), -ENOENT);
	{
		char big[AF_CFG_PATH_MAX + 10];

		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		ck_assert_int_eq(rcv_virt_migrate(v, 2, 3, "d", big, 1000, rec_done, &r), -EINVAL);
		ck_assert_int_eq(rcv_virt_start(v, 2, "d", big, 1000, rec_done, &r), -EINVAL);
	}
	ck_assert_int_eq(rcv_virt_set_pidfile_dir(v, NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_set_pidfile_dir(v, ""), -EINVAL);
	ck_assert_int_eq(rcv_virt_set_pidfile_dir(NULL, "/tmp"), -EINVAL);
	ck_assert_int_eq(rcv_virt_reconfigure(NULL, cfg), -EINVAL);
	ck_assert_int_eq(rcv_virt_reconfigure(v, NULL), -EINVAL);
	ck_assert(!rcv_virt_local_up(v));
	ck_assert(!rcv_virt_local_up(NULL));
	rcv_virt_forget(NULL, &r);
	rcv_virt_forget(v, &r); /* nothing pending */
	rcv_virt_describe(v, &st);
	ck_assert_str_eq(st.name, "libvirt");
	ck_assert_str_eq(st.state, "running");
	ck_assert_ptr_nonnull(strstr(st.detail, "no local blade"));
	rcv_virt_fini(v);
	rcv_virt_fini(NULL);
	rcv_virt_describe(NULL, &st);
	ck_assert_str_eq(st.state, "stopped");
	rcv_virt_loop_unregister(test_loop());
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* libvirt has one event loop per process: while one loop holds it, a
 * registration with another loop is refused, the same loop is fine. */
START_TEST(test_loop_register_once)
{
	static int other_loop; /* refused before it is looked at */

	ck_assert_int_eq(rcv_virt_loop_register(test_loop()), 0);
	ck_assert_int_eq(rcv_virt_loop_register(test_loop()), 0);
	ck_assert_int_eq(rcv_virt_loop_register((qb_loop_t *)&other_loop), -EBUSY);
	ck_assert_int_eq(rcv_virt_loop_register(test_loop()), 0);
	rcv_virt_loop_flush();
	rcv_virt_loop_unregister(test_loop());
	rcv_virt_loop_unregister(test_loop());
	ck_assert_int_eq(rcv_virt_loop_register((qb_loop_t *)&other_loop), -EBUSY);
	rcv_virt_loop_unregister((qb_loop_t *)&other_loop); /* not registered: ignored */
	rcv_virt_loop_unregister(test_loop());
	rcv_virt_loop_unregister(test_loop()); /* one too many: ignored */
}
END_TEST

/* Once every user of a loop is gone (and libvirt has nothing left on it),
 * libvirt may move to another loop: the daemon's tests make a loop each. */
START_TEST(test_loop_rebind)
{
	struct af_config *cfg = config3("test:///default", "test:///default");
	struct rcv_virt *v = NULL;
	uint64_t deadline;
	struct rec r;

	ck_assert_int_eq(af_init("check_rcv_virt"), 0);
	ck_assert_int_eq(rcv_virt_init(&v, second_loop(), cfg, 0, NULL, NULL), 0);
	ck_assert_int_eq(rcv_virt_loop_register(test_loop()), -EBUSY);
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(rcv_virt_list(v, 2, rec_list, &r), 0);
	deadline = af_mono_ns() + 5000000000ULL;
	while (r.calls == 0 && af_mono_ns() < deadline)
		run_loop_on(second_loop(), 50);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.result, 0);
	rcv_virt_fini(v);
	/* let go: the first loop may have libvirt back */
	ck_assert_int_eq(rcv_virt_loop_register(test_loop()), 0);
	rcv_virt_loop_unregister(test_loop());
	af_cfg_free(cfg);
	af_fini();
}
END_TEST

/* ---- pure helpers ---------------------------------------------------------------------------- */

START_TEST(test_event_names)
{
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_STARTED, 0), "started");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED),
	        "started-migrated");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_FAILED),
	        "stopped-failed");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_DESTROYED),
	        "stopped-destroyed");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN),
	        "stopped-shutdown");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_MIGRATED),
	        "migrated");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_STOPPED, 99), "stopped");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_CRASHED, VIR_DOMAIN_EVENT_CRASHED_PANICKED),
	        "crashed");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_SUSPENDED, 0), "suspended");
	ck_assert_str_eq(
	        rcv_virt_event_name(VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_IOERROR),
	        "suspended-ioerror");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_RESUMED, 0), "resumed");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_DEFINED, 0), "defined");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_UNDEFINED, 0), "undefined");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_SHUTDOWN, 1), "shutdown");
	ck_assert_str_eq(rcv_virt_event_name(VIR_DOMAIN_EVENT_PMSUSPENDED, 0), "pmsuspended");
	ck_assert_str_eq(rcv_virt_event_name(99, 0), "unknown");
	ck_assert_str_eq(rcv_virt_event_name(-1, -1), "unknown");
	ck_assert_str_eq(rcv_virt_shutoff_event_name(VIR_DOMAIN_SHUTOFF_DESTROYED),
	                 "stopped-destroyed");
	ck_assert_str_eq(rcv_virt_shutoff_event_name(VIR_DOMAIN_SHUTOFF_MIGRATED), "migrated");
	ck_assert_str_eq(rcv_virt_shutoff_event_name(VIR_DOMAIN_SHUTOFF_UNKNOWN), "stopped-failed");
	ck_assert_str_eq(rcv_virt_shutoff_event_name(VIR_DOMAIN_SHUTOFF_DAEMON), "stopped-failed");
	ck_assert_str_eq(rcv_virt_shutoff_event_name(1234), "stopped-failed");
}
END_TEST

/* A pid that surely does not exist: a child that has been reaped. Spawned,
 * not forked: a forked copy of this process (libvirt's threads missing)
 * would only confuse valgrind. */
static pid_t dead_pid(void)
{
	char *argv[] = {(char *)"true", NULL};
	pid_t pid;

	ck_assert_int_eq(posix_spawnp(&pid, "true", NULL, NULL, argv, environ), 0);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	return pid;
}

START_TEST(test_qemu_alive)
{
	char *dir = make_temp_dir();
	char path[160], text[32];

	ck_assert_int_eq(rcv_virt_qemu_alive(NULL, "vm"), -EINVAL);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, NULL), -EINVAL);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "../vm"), -EINVAL);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, ""), -EINVAL);
	/* no pidfile: libvirt removed it, QEMU is gone */
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), 0);
	snprintf(path, sizeof(path), "%s/vm.pid", dir);
	snprintf(text, sizeof(text), "%d", (int)getpid());
	write_file(path, text, 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), 1);
	snprintf(text, sizeof(text), "%d\n", (int)dead_pid());
	write_file(path, text, 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), 0);
	/* cannot tell */
	write_file(path, "", 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), -EBADMSG);
	write_file(path, "12ab\n", 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), -EBADMSG);
	write_file(path, "1\n", 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), -EBADMSG);
	write_file(path, "-5\n", 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), -EBADMSG);
	write_file(path, "99999999999999999999\n", 0644);
	ck_assert_int_eq(rcv_virt_qemu_alive(dir, "vm"), -EBADMSG);
	remove_temp_dir(dir);
}
END_TEST

/* ---- operations on the local blade --------------------------------------------------------- */

START_TEST(test_local_start_stop_restart_list)
{
	struct fixture fx;
	struct af_module_status st;
	char path[160];
	struct rec r;
	int mark;

	fixture_up(&fx, true);
	rcv_virt_describe(fx.v, &st);
	ck_assert_str_eq(st.state, "running");
	ck_assert_ptr_nonnull(strstr(st.detail, "blade 1 connected"));

	/* list */
	OP(r, rcv_virt_list(fx.v, 1, rec_list, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_uint_eq(r.n_doms, 2);
	ck_assert_int_eq(rec_dom(&r, "vm1")->state, VIR_DOMAIN_SHUTOFF);
	ck_assert(!rec_dom(&r, "vm1")->active);
	ck_assert(rec_dom(&r, "vm1")->persistent);
	ck_assert_int_eq(rec_dom(&r, "vm2")->state, VIR_DOMAIN_RUNNING);
	ck_assert(rec_dom(&r, "vm2")->active);

	/* start a defined domain: running, and the event comes from the loop */
	OP(r, rcv_virt_start(fx.v, 1, "vm1", NULL, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "running");
	ck_assert(wait_event(&fx.seen, "vm1", "started", 5000));
	OP(r, rcv_virt_list(fx.v, 1, rec_list, &r));
	ck_assert_int_eq(rec_dom(&r, "vm1")->state, VIR_DOMAIN_RUNNING);

	/* already running */
	OP(r, rcv_virt_start(fx.v, 1, "vm1", "", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "already running");

	/* stop: shut off; again: nothing to do; a domain that does not exist */
	OP(r, rcv_virt_stop(fx.v, 1, "vm1", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "shut off");
	ck_assert(wait_event(&fx.seen, "vm1", "stopped-destroyed", 5000));
	OP(r, rcv_virt_list(fx.v, 1, rec_list, &r));
	ck_assert_int_eq(rec_dom(&r, "vm1")->state, VIR_DOMAIN_SHUTOFF);
	OP(r, rcv_virt_stop(fx.v, 1, "vm1", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "not running");
	OP(r, rcv_virt_stop(fx.v, 1, "nosuch", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_ptr_nonnull(strstr(r.msg, "not defined"));

	/* restart a running domain: destroyed, then started */
	mark = fx.seen.n_events;
	OP(r, rcv_virt_restart(fx.v, 1, "vm2", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "restarted");
	ck_assert(wait_event(&fx.seen, "vm2", "started", 5000));
	ck_assert_int_ge(seen_find(&fx.seen, mark, "vm2", "stopped-destroyed"), mark);
	ck_assert_int_gt(seen_find(&fx.seen, mark, "vm2", "started"),
	                 seen_find(&fx.seen, mark, "vm2", "stopped-destroyed"));
	/* restart of one that is not running starts it */
	OP(r, rcv_virt_restart(fx.v, 1, "vm1", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "was not running: started");
	OP(r, rcv_virt_restart(fx.v, 1, "nosuch", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -ENOENT);
	ck_assert_ptr_nonnull(strstr(r.msg, "not defined on blade 1"));

	/* start: not defined and no definition */
	OP(r, rcv_virt_start(fx.v, 1, "vm3", NULL, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -ENOENT);
	/* start from a definition: defined, then running */
	snprintf(path, sizeof(path), "%s/vm3.xml", fx.dir);
	OP(r, rcv_virt_start(fx.v, 1, "vm3", path, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "defined and running");
	ck_assert(wait_event(&fx.seen, "vm3", "defined", 5000));
	ck_assert(wait_event(&fx.seen, "vm3", "started", 5000));
	OP(r, rcv_virt_list(fx.v, 1, rec_list, &r));
	ck_assert_uint_eq(r.n_doms, 3);
	ck_assert(rec_dom(&r, "vm3")->persistent);
	ck_assert_int_eq(rec_dom(&r, "vm3")->state, VIR_DOMAIN_RUNNING);
	/* a definition of another domain, a missing file, bad XML */
	OP(r, rcv_virt_start(fx.v, 1, "vm1", path, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -EINVAL);
	ck_assert_ptr_nonnull(strstr(r.msg, "does not define domain vm1"));
	snprintf(path, sizeof(path), "%s/missing.xml", fx.dir);
	OP(r, rcv_virt_start(fx.v, 1, "vm4", path, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -ENOENT);
	snprintf(path, sizeof(path), "%s/bad.xml", fx.dir);
	write_file(path, "<domain type='test'><name>vm4</name>", 0644);
	OP(r, rcv_virt_start(fx.v, 1, "vm4", path, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -EINVAL);
	ck_assert_ptr_nonnull(strstr(r.msg, "defining the domain"));

	rcv_virt_describe(fx.v, &st);
	ck_assert_ptr_nonnull(strstr(st.detail, "0 timed out"));
	ck_assert_int_eq(fx.seen.n_down, 0);
	fixture_down(&fx);
}
END_TEST

/* Other blades: each its own connection, opened on first use and kept. */
START_TEST(test_other_blades)
{
	struct fixture fx;
	struct af_config *cfg;
	struct rec r;

	fixture_up(&fx, false);
	ck_assert(!rcv_virt_local_up(fx.v));
	OP(r, rcv_virt_list(fx.v, 2, rec_list, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_uint_eq(r.n_doms, 1);
	ck_assert_str_eq(r.doms[0].name, "test");
	ck_assert(r.doms[0].active);
	/* every blade on its own copy of node.xml */
	cfg = config3(fx.node_uri, fx.node_uri);
	ck_assert_int_eq(rcv_virt_reconfigure(fx.v, cfg), 0);
	af_cfg_free(fx.cfg);
	fx.cfg = cfg;
	OP(r, rcv_virt_stop(fx.v, 2, "vm2", 5000, rec_done, &r));
	ck_assert_int_eq(r.result, 0);
	ck_assert_str_eq(r.msg, "shut off");
	/* the same connection: the stop is remembered */
	OP(r, rcv_virt_list(fx.v, 2, rec_list, &r));
	ck_assert_int_eq(rec_dom(&r, "vm2")->state, VIR_DOMAIN_SHUTOFF);
	/* blade 3 has a connection (and a test driver) of its own */
	OP(r, rcv_virt_list(fx.v, 3, rec_list, &r));
	ck_assert_int_eq(rec_dom(&r, "vm2")->state, VIR_DOMAIN_RUNNING);
	/* no lifecycle callbacks for blades other than the local one */
	ck_assert_int_eq(fx.seen.n_events, 0);
	ck_assert_int_eq(fx.seen.n_up + fx.seen.n_down, 0);
	fixture_down(&fx);
}
END_TEST

/* The test driver cannot migrate: the request is carried out and fails
 * cleanly (the lab integration test migrates between real libvirtds). */
START_TEST(test_migrate_unsupported)
{
	struct fixture fx;
	struct rec r;

	fixture_up(&fx, false);
	OP(r, rcv_virt_migrate(fx.v, 2, 3, "test", "tcp://127.0.0.1", 5000, rec_done, &r));
	ck_assert_int_lt(r.result, 0);
	ck_assert_ptr_nonnull(strstr(r.msg, "migrating"));
	OP(r, rcv_virt_migrate(fx.v, 2, 3, "nosuch", NULL, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -ENOENT);
	OP(r, rcv_virt_stop(fx.v, 2, "test", 5000, rec_done, &r));
	OP(r, rcv_virt_migrate(fx.v, 2, 3, "test", NULL, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -ESRCH);
	fixture_down(&fx);
}
END_TEST

START_TEST(test_forget)
{
	struct fixture fx;
	struct rec a, b, c;

	fixture_up(&fx, false);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	/* a is queued behind b's list or running: either way it is not heard */
	ck_assert_int_eq(rcv_virt_list(fx.v, 2, rec_list, &b), 0);
	ck_assert_int_eq(rcv_virt_stop(fx.v, 2, "test", 5000, rec_done, &a), 0);
	ck_assert_int_eq(rcv_virt_list(fx.v, 2, rec_list, &a), 0);
	ck_assert_int_eq(rcv_virt_list(fx.v, 3, rec_list, &c), 0);
	rcv_virt_forget(fx.v, &a);
	ck_assert(run_until(&b.calls, 1, 5000));
	ck_assert(run_until(&c.calls, 1, 5000));
	run_loop_ms(300);
	ck_assert_int_eq(a.calls, 0);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(c.calls, 1);
	fixture_down(&fx);
}
END_TEST

/* ---- a libvirtd that never answers ----------------------------------------------------------- */

/* A unix socket that accepts connections (the kernel does, from the
 * backlog) and never reads or answers. */
static int hung_listener(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

START_TEST(test_timeout_and_stuck_worker)
{
	struct fixture fx;
	struct af_config *cfg;
	struct af_module_status st;
	char sock[160], uri[256];
	struct rec r1, r2, r3;
	uint64_t t0;
	int lfd, rc;

	fixture_up(&fx, false);
	snprintf(sock, sizeof(sock), "%s/hung.sock", fx.dir);
	lfd = hung_listener(sock);
	snprintf(uri, sizeof(uri), "qemu+unix:///system?socket=%s", sock);
	cfg = config3(fx.node_uri, uri);
	ck_assert_int_eq(rcv_virt_reconfigure(fx.v, cfg), 0);
	af_cfg_free(fx.cfg);
	fx.cfg = cfg;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	t0 = af_mono_ns();
	ck_assert_int_eq(rcv_virt_start(fx.v, 2, "vm", NULL, 400, rec_done, &r1), 0);
	/* queued behind it, with less time: dropped unexecuted */
	ck_assert_int_eq(rcv_virt_stop(fx.v, 2, "vm", 200, rec_done, &r2), 0);
	ck_assert(run_until(&r2.calls, 1, 5000));
	ck_assert_int_eq(r2.result, -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(r2.msg, "never started"));
	ck_assert_int_eq(r1.calls, 0);
	ck_assert(run_until(&r1.calls, 1, 5000));
	ck_assert_int_eq(r1.result, -ETIMEDOUT);
	ck_assert_uint_ge((af_mono_ns() - t0) / 1000000, 400);
	ck_assert_ptr_null(strstr(r1.msg, "never started"));
	/* the worker is stuck: the blade refuses at once, the others work */
	ck_assert_int_eq(rcv_virt_list(fx.v, 2, rec_list, &r3), -EBUSY);
	rcv_virt_describe(fx.v, &st);
	ck_assert_str_eq(st.state, "degraded");
	ck_assert_ptr_nonnull(strstr(st.detail, "stuck: blades 2"));
	OP(r3, rcv_virt_list(fx.v, 1, rec_list, &r3));
	ck_assert_int_eq(r3.result, 0);
	/* the listener goes: the hung call returns, its late answer is
	 * discarded, and the blade answers again (no daemon there now) */
	close(lfd);
	t0 = af_mono_ns();
	do {
		run_loop_ms(50);
		memset(&r3, 0, sizeof(r3));
		rc = rcv_virt_list(fx.v, 2, rec_list, &r3);
	} while (rc == -EBUSY && af_mono_ns() - t0 < 5000000000ULL);
	ck_assert_int_eq(rc, 0);
	ck_assert(run_until(&r3.calls, 1, 5000));
	ck_assert_int_eq(r3.result, -ENOTCONN);
	run_loop_ms(100);
	ck_assert_int_eq(r1.calls, 1);
	ck_assert_int_eq(r2.calls, 1);
	rcv_virt_describe(fx.v, &st);
	ck_assert_str_eq(st.state, "running");
	ck_assert_ptr_nonnull(strstr(st.detail, "2 timed out"));
	fixture_down(&fx);
}
END_TEST

/* ---- the local connection: loss, QEMU pidfiles, reconnection -------------------------------- */

START_TEST(test_local_loss_pidfile_and_reconnect)
{
	struct fixture fx;
	struct af_config *gone, *back;
	struct af_module_status st;
	char uri[256], path[160], text[32];

	fixture_up(&fx, true);
	ck_assert_int_eq(fx.seen.n_up, 1);
	/* vm2 runs; its "QEMU" is this process */
	snprintf(path, sizeof(path), "%s/vm2.pid", fx.dir);
	snprintf(text, sizeof(text), "%d\n", (int)getpid());
	write_file(path, text, 0644);

	/* the local libvirtd goes away (here: the URI now names a socket
	 * nobody listens on) */
	snprintf(uri, sizeof(uri), "qemu+unix:///system?socket=%s/none.sock", fx.dir);
	gone = config3(uri, "test:///default");
	ck_assert_int_eq(rcv_virt_reconfigure(fx.v, gone), 0);
	ck_assert(run_until(&fx.seen.n_down, 1, 5000));
	ck_assert_ptr_nonnull(strstr(fx.seen.why, "URI changed"));
	ck_assert(!rcv_virt_local_up(fx.v));
	rcv_virt_describe(fx.v, &st);
	ck_assert_str_eq(st.state, "degraded");
	ck_assert_ptr_nonnull(strstr(st.detail, "NOT connected"));
	/* QEMU still there: nothing to report, however long */
	run_loop_ms(350);
	ck_assert_int_eq(fx.seen.n_events, 0);
	ck_assert_int_eq(fx.seen.n_down, 1); /* retries fail silently */
	/* QEMU dies while libvirtd is away: reported, once */
	snprintf(text, sizeof(text), "%d\n", (int)dead_pid());
	write_file(path, text, 0644);
	ck_assert(wait_event(&fx.seen, "vm2", "stopped-failed", 5000));
	run_loop_ms(350);
	ck_assert_int_eq(fx.seen.n_events, 1);
	/* requests meanwhile fail with "no connection" */
	{
		struct rec r;

		OP(r, rcv_virt_list(fx.v, 1, rec_list, &r));
		ck_assert_int_eq(r.result, -ENOTCONN);
	}

	/* libvirtd is back (a fresh test driver: vm2 runs again) */
	back = config3(fx.node_uri, "test:///default");
	ck_assert_int_eq(rcv_virt_reconfigure(fx.v, back), 0);
	ck_assert(run_until(&fx.seen.n_up, 2, 5000));
	ck_assert(rcv_virt_local_up(fx.v));
	/* what changed meanwhile is told */
	ck_assert(wait_event(&fx.seen, "vm2", "started", 5000));
	ck_assert_int_eq(seen_find(&fx.seen, 0, "vm1", "started"), -1);
	rcv_virt_describe(fx.v, &st);
	ck_assert_str_eq(st.state, "running");
	/* a local blade that disappears from the configuration is refused */
	{
		struct af_config *none = config3(fx.node_uri, "test:///default");

		none->n_blades = 2;
		none->blades[0] = none->blades[2];
		ck_assert_int_eq(rcv_virt_reconfigure(fx.v, none), -EINVAL);
		af_cfg_free(none);
	}
	af_cfg_free(fx.cfg);
	af_cfg_free(gone);
	fx.cfg = back;
	fixture_down(&fx);
}
END_TEST

/* The local libvirt cannot be reached at all from the start: told once. */
START_TEST(test_local_unreachable_at_start)
{
	struct af_config *cfg;
	struct rcv_virt *v = NULL;
	struct seen s;
	char *dir;
	char uri[256];
	struct rec r;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(af_init("check_rcv_virt"), 0);
	dir = make_temp_dir();
	snprintf(uri, sizeof(uri), "qemu+unix:///system?socket=%s/none.sock", dir);
	cfg = config3(uri, "test:///default");
	ck_assert_int_eq(rcv_virt_init(&v, test_loop(), cfg, 1, &seen_ops, &s), 0);
	ck_assert(run_until(&s.n_down, 1, 5000));
	ck_assert_ptr_nonnull(strstr(s.why, "none.sock"));
	run_loop_ms(350); /* a few retries */
	ck_assert_int_eq(s.n_down, 1);
	ck_assert_int_eq(s.n_up, 0);
	OP(r, rcv_virt_start(v, 1, "vm1", NULL, 5000, rec_done, &r));
	ck_assert_int_eq(r.result, -ENOTCONN);
	/* other blades are not affected */
	OP(r, rcv_virt_list(v, 2, rec_list, &r));
	ck_assert_int_eq(r.result, 0);
	rcv_virt_fini(v);
	af_cfg_free(cfg);
	remove_temp_dir(dir);
	af_fini();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("rcv_virt");

	add_tcase(s, test_invalid_arguments, 10);
	add_tcase(s, test_loop_register_once, 10);
	add_tcase(s, test_event_names, 10);
	add_tcase(s, test_qemu_alive, 10);
	add_tcase(s, test_local_start_stop_restart_list, 30);
	add_tcase(s, test_other_blades, 20);
	add_tcase(s, test_migrate_unsupported, 20);
	add_tcase(s, test_forget, 20);
	add_tcase(s, test_timeout_and_stuck_worker, 30);
	add_tcase(s, test_local_loss_pidfile_and_reconnect, 30);
	add_tcase(s, test_local_unreachable_at_start, 20);
	/* last: with CK_FORK=no it also shows every check left libvirt idle */
	add_tcase(s, test_loop_rebind, 20);
	return run_suite(s);
}
