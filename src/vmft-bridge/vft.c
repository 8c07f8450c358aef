/*
 * vmft-bridge: the manager's side of the checkpoint/replay engines. atca-ftd
 * starts an engine (atca-vmft) per protected VM on this blade, orders it
 * (protect, unprotect, release, promote) and asks its status over the
 * engine's control socket, and turns the engine's events into failure-model
 * events: backup lost -> engine.health state=backup-lost (vm-unprotected),
 * acknowledgements late -> state=replication-stalled (vm-unprotected too),
 * protected -> state=ok, guest gone -> vm.lifecycle event=stopped-failed,
 * promoted, or a primary's guest running again (a restart) ->
 * vm.lifecycle event=started.
 *
 * Engines are not children of the daemon: a protected guest must survive a
 * restart of its manager, so they are started detached and found again
 * through their control sockets.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "af_event.h"
#include "af_log.h"
#include "af_util.h"

struct vft_link {
	int fd; /* subscription connection, -1 when not connected */
	char buf[2048];
	size_t len;
	char state[16]; /* the engine's state as it last said; "" unknown */
	/* a backup engine that died is started again (a backup protects
	 * nothing while it is gone), with a growing delay if it keeps dying */
	uint64_t respawn_at;   /* monotonic ns; 0: none due */
	uint64_t respawn_wait; /* ns, doubles up to RESPAWN_MAX */
	unsigned respawns;
	/* the engine quit by order (atca-ftctl vm quit, the OCF agent's
	 * stop): not started again until an order starts one */
	bool held;
	uint64_t wanted_at; /* the last vft_backup_wanted() start; 0 none */
};
#define RESPAWN_FIRST (1 * AF_NS_PER_S)
#define RESPAWN_MAX (60 * AF_NS_PER_S)
/* a backup started because the primary runs on the partner: if it does not
 * show up, again after this */
#define BACKUP_WANTED_EVERY (15 * AF_NS_PER_S)

/* An order carried out by a thread of its own, so that the loop never waits
 * for an engine (a promotion may wait seconds for the old primary's disk
 * lock): the thread writes the job to a pipe when it is done, the loop
 * joins it and calls done. */
struct vft_job {
	struct vft *m;
	pthread_t th;
	char path[108]; /* the engine's control socket */
	char vm[AF_CFG_NAME_MAX];
	char order[16];
	bool force;
	vft_done_fn done; /* NULL once forgotten */
	void *cookie;
	int rc;
	char msg[256];
	struct vft_job *next;
};

struct vft {
	struct af_module_env env;
	struct vft_link links[AF_MAX_VMS];
	qb_loop_timer_handle timer;
	bool timer_on;
	unsigned connected;
	int job_pipe[2];
	struct vft_job *jobs;
};

static bool engine_vm(const struct af_cfg_vm *v)
{
	return af_cfg_vm_has_engine(v);
}

static int ctl_path(const struct vft *m, const struct af_cfg_vm *v, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s/ctl.sock",
	                     m->env.cfg->vmft.state_dir, v->name) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* A connection to an engine's control socket, its reads and writes bounded
 * by timeout_ms. fd or -errno. */
static int connect_at(const struct sockaddr_un *sa, int timeout_ms)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int fd, rc;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int ctl_connect(const struct vft *m, const struct af_cfg_vm *v, int timeout_ms)
{
	struct sockaddr_un sa;
	int rc = ctl_path(m, v, &sa);

	return rc < 0 ? rc : connect_at(&sa, timeout_ms);
}

static const struct af_cfg_vm *find_vm(const struct vft *m, const char *name, unsigned *idx)
{
	for (unsigned i = 0; i < m->env.cfg->n_vms; i++)
		if (strcmp(m->env.cfg->vms[i].name, name) == 0 && engine_vm(&m->env.cfg->vms[i])) {
			if (idx)
				*idx = i;
			return &m->env.cfg->vms[i];
		}
	return NULL;
}

/* The control socket of vm's engine here: 0, -ENOENT (no VM protected by
 * an engine of that name) or -ENAMETOOLONG. */
static int vm_ctl_path(const struct vft *m, const char *vm, struct sockaddr_un *sa,
                       const struct af_cfg_vm **out)
{
	const struct af_cfg_vm *v = find_vm(m, vm, NULL);

	if (v == NULL)
		return -ENOENT;
	if (out)
		*out = v;
	return ctl_path(m, v, sa);
}

/* The daemon's blade: configured, or the blade whose host is this host
 * (as atca-ftd resolves it). 0 if unknown. */
static unsigned local_slot(const struct vft *m)
{
	const struct af_cfg_blade *b;
	char host[256];

	if (m->env.cfg->daemon.local_blade != 0)
		return m->env.cfg->daemon.local_blade;
	if (gethostname(host, sizeof(host)) != 0)
		return 0;
	host[sizeof(host) - 1] = '\0';
	b = af_cfg_blade_by_host(m->env.cfg, host);
	return b ? b->slot : 0;
}

/* ---- events from the engines ---------------------------------------------------- */

/* epoch: the one the engine's line names (replication-stalled: the last
 * acknowledged), 0 if none. */
static void engine_event(struct vft *m, const struct af_cfg_vm *v, const char *ev,
                         const char *detail, uint64_t epoch)
{
	struct af_event e;
	int blade = (int)local_slot(m);

	if (strcmp(ev, "state") == 0)
		return; /* logged by link_line as "is <state>" */
	af_info("vmft-bridge: engine of vm %s: %s%s%s", v->name, ev, detail[0] ? ": " : "", detail);
	if (m->env.event_sink == NULL)
		return;
	if (strcmp(ev, "backup-lost") == 0 || strcmp(ev, "protected") == 0 ||
	    strcmp(ev, "replication-stalled") == 0 || strcmp(ev, "primary-lost") == 0 ||
	    strcmp(ev, "failed") == 0) {
		af_event_init(&e, AF_SRC_ENGINE, AF_EV_ENGINE_HEALTH, blade, v->name);
		af_event_set(&e, "state", "%s", strcmp(ev, "protected") == 0 ? "ok" : ev);
		if (epoch != 0)
			af_event_set(&e, "epoch", "%llu", (unsigned long long)epoch);
	} else if (strcmp(ev, "vm-failed") == 0 || strcmp(ev, "promoted") == 0 ||
	           strcmp(ev, "guest-up") == 0) {
		af_event_init(&e, AF_SRC_ENGINE, AF_EV_VM_LIFECYCLE, blade, v->name);
		af_event_set(&e, "event", "%s", ev[0] == 'v' ? "stopped-failed" : "started");
		/* a promotion is news for the NMS (unprotected); a restart is not */
		if (ev[0] != 'v')
			af_event_set(&e, "how", "%s", ev[0] == 'p' ? "promoted" : "running");
	} else {
		return;
	}
	m->env.event_sink(m->env.sink_opaque, &e);
}

static void link_close(struct vft *m, unsigned i)
{
	if (m->links[i].fd < 0)
		return;
	qb_loop_poll_del(m->env.loop, m->links[i].fd);
	close(m->links[i].fd);
	m->links[i].fd = -1;
	m->links[i].len = 0;
	m->links[i].state[0] = '\0';
	m->connected--;
}

static bool backup_state(const char *s)
{
	return strcmp(s, "waiting") == 0 || strcmp(s, "standby") == 0 || strcmp(s, "orphaned") == 0;
}

/* The engine closed its subscription: it died, or stopped by order. */
static void engine_gone(struct vft *m, unsigned i)
{
	struct vft_link *l = &m->links[i];
	const struct af_cfg_vm *v = &m->env.cfg->vms[i];

	if (backup_state(l->state) && m->env.cfg->vmft.restart_backup) {
		l->respawn_wait = l->respawn_wait ? l->respawn_wait * 2 : RESPAWN_FIRST;
		if (l->respawn_wait > RESPAWN_MAX)
			l->respawn_wait = RESPAWN_MAX;
		l->respawn_at = af_mono_ns() + l->respawn_wait;
		af_warn("vmft-bridge: the backup engine of vm %s died (it was %s): started again "
		        "in %llu ms",
		        v->name, l->state, (unsigned long long)(l->respawn_wait / AF_NS_PER_MS));
	} else {
		l->respawn_at = 0;
		l->held = strcmp(l->state, "quit") == 0;
		af_warn("vmft-bridge: engine of vm %s went away (it was %s)%s", v->name,
		        l->state[0] ? l->state : "in an unknown state",
		        l->held ? ": not started again until ordered" : "");
	}
	link_close(m, i);
}

static void respawn_due(struct vft *m, unsigned i)
{
	struct vft_link *l = &m->links[i];
	char err[200] = "";
	int rc;

	if (l->respawn_at == 0 || af_mono_ns() < l->respawn_at || l->fd >= 0)
		return;
	/* if it never shows up (it could not start, or died at once), again
	 * later, unless its subscription is made first */
	l->respawn_wait = l->respawn_wait * 2 > RESPAWN_MAX ? RESPAWN_MAX : l->respawn_wait * 2;
	l->respawn_at = af_mono_ns() + 10 * AF_NS_PER_S + l->respawn_wait;
	l->respawns++;
	rc = vft_engine_start(m, m->env.cfg->vms[i].name, "backup", err, sizeof(err));
	if (rc < 0)
		af_err("vmft-bridge: the backup engine of vm %s could not be started again: %s",
		       m->env.cfg->vms[i].name, err[0] ? err : strerror(-rc));
}

static bool in(const char *s, const char *const *set)
{
	for (; *set != NULL; set++) {
		if (strcmp(s, *set) == 0)
			return true;
	}
	return false;
}

/* A primary's guest runs (again): from no state, booting, failed or quit
 * into one of the primary's running states. Without it a vm-failed fault
 * of a VM the engine restarted stayed open, and the next failure of that
 * guest only joined it: no plan (the soak, seed 942394263, step 43). A
 * backup's promotion says "promoted" itself (promoting -> unprotected). */
static bool guest_up(const char *was, const char *now)
{
	static const char *const down[] = {"", "booting", "failed", "quit", NULL};
	static const char *const up[] = {"unprotected", "syncing", "protected", NULL};

	return in(was, down) && in(now, up);
}

static void link_line(struct vft *m, unsigned i, const char *line)
{
	const struct af_cfg_vm *v = &m->env.cfg->vms[i];
	json_object *o = json_tokener_parse(line), *ev, *detail, *st, *ep;

	if (o == NULL || !json_object_is_type(o, json_type_object)) {
		af_warn("vmft-bridge: engine of vm %s sent a malformed line: ignored", v->name);
		goto out;
	}
	if (json_object_object_get_ex(o, "state", &st) &&
	    json_object_is_type(st, json_type_string) &&
	    strlen(json_object_get_string(st)) < sizeof(m->links[i].state) &&
	    strcmp(m->links[i].state, json_object_get_string(st)) != 0) {
		bool up = guest_up(m->links[i].state, json_object_get_string(st));

		af_strlcpy(m->links[i].state, json_object_get_string(st),
		           sizeof(m->links[i].state));
		af_info("vmft-bridge: engine of vm %s is %s", v->name, m->links[i].state);
		if (strcmp(m->links[i].state, "standby") == 0)
			m->links[i].respawn_wait = 0;
		if (up)
			engine_event(m, v, "guest-up", "", 0);
	}
	if (json_object_object_get_ex(o, "event", &ev) &&
	    json_object_is_type(ev, json_type_string) &&
	    strcmp(json_object_get_string(ev), "quit") == 0)
		af_strlcpy(m->links[i].state, "quit", sizeof(m->links[i].state));
	else if (json_object_object_get_ex(o, "event", &ev) &&
	         json_object_is_type(ev, json_type_string)) {
		const char *d = json_object_object_get_ex(o, "detail", &detail)
		                        ? json_object_get_string(detail)
		                        : "";
		int64_t epoch = json_object_object_get_ex(o, "epoch", &ep) &&
		                                json_object_is_type(ep, json_type_int)
		                        ? json_object_get_int64(ep)
		                        : 0;

		engine_event(m, v, json_object_get_string(ev), d ? d : "",
		             epoch > 0 ? (uint64_t)epoch : 0);
	}
out:
	if (o)
		json_object_put(o);
}

static int32_t on_link(int32_t fd, int32_t revents, void *data)
{
	struct vft *m = data;
	unsigned i;
	ssize_t r;

	(void)revents;
	for (i = 0; i < AF_MAX_VMS && m->links[i].fd != fd; i++)
		;
	if (i == AF_MAX_VMS)
		return 0;
	r = recv(fd, m->links[i].buf + m->links[i].len,
	         sizeof(m->links[i].buf) - 1 - m->links[i].len, MSG_DONTWAIT);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		engine_gone(m, i);
		return 0;
	}
	m->links[i].len += (size_t)r;
	for (;;) {
		char *nl = memchr(m->links[i].buf, '\n', m->links[i].len);
		size_t used;

		if (nl == NULL) {
			if (m->links[i].len >= sizeof(m->links[i].buf) - 1) {
				af_warn("vmft-bridge: engine of vm %s: line too long",
				        m->env.cfg->vms[i].name);
				link_close(m, i);
			}
			return 0;
		}
		*nl = '\0';
		used = (size_t)(nl - m->links[i].buf) + 1;
		link_line(m, i, m->links[i].buf);
		memmove(m->links[i].buf, m->links[i].buf + used, m->links[i].len - used);
		m->links[i].len -= used;
	}
}

static void on_timer(void *data)
{
	struct vft *m = data;

	for (unsigned i = 0; i < m->env.cfg->n_vms; i++) {
		const struct af_cfg_vm *v = &m->env.cfg->vms[i];
		static const char sub[] = "{\"cmd\":\"subscribe\"}\n";
		int fd;

		if (!engine_vm(v) || m->links[i].fd >= 0)
			continue;
		respawn_due(m, i);
		fd = ctl_connect(m, v, 1000);
		if (fd < 0)
			continue;
		if (send(fd, sub, sizeof(sub) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(sub) - 1)) {
			close(fd);
			continue;
		}
		m->links[i].fd = fd;
		m->links[i].len = 0;
		m->links[i].respawn_at = 0;
		m->connected++;
		qb_loop_poll_add(m->env.loop, QB_LOOP_MED, fd, POLLIN, m, on_link);
		af_info("vmft-bridge: connected to the engine of vm %s", v->name);
	}
	qb_loop_timer_add(m->env.loop, QB_LOOP_LOW, AF_NS_PER_S, m, on_timer, &m->timer);
}

/* ---- the manager's orders ---------------------------------------------------------- */

/* One request line, one answer line, on the control socket at path. */
static int request_at(const char *path, const char *cmd, bool force, char *reply, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char req[128];
	size_t got = 0;
	int fd, n, rc = 0;

	reply[0] = '\0';
	n = snprintf(req, sizeof(req), "{\"cmd\":\"%s\"%s}\n", cmd, force ? ",\"force\":true" : "");
	if (n < 0 || (size_t)n >= sizeof(req) || strpbrk(cmd, "\"\\") != NULL)
		return -EINVAL;
	if (af_strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	/* a promotion may wait up to 3 s for the old primary's disk lock */
	fd = connect_at(&sa, 5000);
	if (fd < 0)
		return fd == -ENOENT || fd == -ECONNREFUSED ? -ENOTCONN : fd;
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		rc = -errno;
		goto out;
	}
	while (got < len - 1) {
		ssize_t r = recv(fd, reply + got, len - 1 - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r == 0 ? -ECONNRESET : -errno;
			break;
		}
		got += (size_t)r;
		if (reply[got - 1] == '\n')
			break;
	}
	reply[got] = '\0';
	if (got > 0 && reply[got - 1] == '\n') {
		reply[got - 1] = '\0';
		rc = 0;
	} else if (rc == 0) {
		rc = -EMSGSIZE;
	}
out:
	close(fd);
	return rc;
}

int vft_request(struct vft *m, const char *vm, const char *cmd, bool force, char *reply, size_t len)
{
	struct sockaddr_un sa;
	int rc;

	if (m == NULL || vm == NULL || cmd == NULL || reply == NULL || len < 2)
		return -EINVAL;
	reply[0] = '\0';
	if (strpbrk(cmd, "\"\\") != NULL)
		return -EINVAL;
	rc = vm_ctl_path(m, vm, &sa, NULL);
	return rc < 0 ? rc : request_at(sa.sun_path, cmd, force, reply, len);
}

/* ---- orders carried out off the loop ----------------------------------------------- */

/* The engine's answer: ok, or its error as the message. */
static int answer_rc(const char *reply, char *msg, size_t len)
{
	json_object *o = json_tokener_parse(reply), *ok, *err;
	int rc = -EPROTO;

	snprintf(msg, len, "malformed answer from the engine");
	if (o != NULL && json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "ok", &ok) && json_object_is_type(ok, json_type_boolean)) {
		if (json_object_get_boolean(ok)) {
			rc = 0;
			msg[0] = '\0';
		} else {
			rc = -EREMOTEIO;
			snprintf(msg, len, "%s",
			         json_object_object_get_ex(o, "error", &err)
			                 ? json_object_get_string(err)
			                 : "refused");
		}
	}
	if (o)
		json_object_put(o);
	return rc;
}

/* What a successful promotion says, for the step's or the operator's log. */
static void promoted_msg(const char *reply, char *msg, size_t len)
{
	json_object *o = json_tokener_parse(reply), *ep = NULL, *ms = NULL;

	if (o != NULL && json_object_object_get_ex(o, "epoch", &ep) &&
	    json_object_object_get_ex(o, "promote_ms", &ms))
		snprintf(msg, len, "the guest runs here from epoch %lld (promoted in %.1f ms)",
		         (long long)json_object_get_int64(ep), json_object_get_double(ms));
	else
		snprintf(msg, len, "the guest runs here");
	if (o)
		json_object_put(o);
}

/* Whether the engine whose control socket is ctl still holds its pidfile. */
static bool pidfile_held(const char *ctl)
{
	char path[160];
	const char *slash = strrchr(ctl, '/');
	int fd, held;

	if (slash == NULL || snprintf(path, sizeof(path), "%.*s/engine.pid", (int)(slash - ctl),
	                              ctl) >= (int)sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd); /* releases ours, if we got it */
	return held;
}

static void *job_main(void *arg)
{
	struct vft_job *j = arg;
	char reply[2048];
	int rc;

	if (strcmp(j->order, "promote") == 0) {
		rc = request_at(j->path, "promote", j->force, reply, sizeof(reply));
		if (rc == 0)
			rc = answer_rc(reply, j->msg, sizeof(j->msg));
		if (rc == 0)
			promoted_msg(reply, j->msg, sizeof(j->msg));
	} else if (strcmp(j->order, "release") == 0) {
		rc = request_at(j->path, "release", false, reply, sizeof(reply));
		if (rc == 0)
			rc = answer_rc(reply, j->msg, sizeof(j->msg));
	} else {
		/* "quit" and "start": the engine here (if any) stops first; the
		 * start itself is the loop's (it forks) */
		rc = request_at(j->path, "quit", false, reply, sizeof(reply));
		if (rc == 0)
			rc = answer_rc(reply, j->msg, sizeof(j->msg));
		if (rc == -ENOTCONN)
			rc = 0; /* none ran */
		/* the engine exits after its answer: wait until its socket is
		 * gone (a new engine could not take its pidfile before) */
		for (int i = 0; rc == 0 && i < 500 && access(j->path, F_OK) == 0; i++)
			usleep(10000);
		/* ... and until it is gone for good (its pidfile lock released:
		 * an engine started before would find it taken and give up) */
		for (int i = 0; rc == 0 && i < 500 && pidfile_held(j->path); i++)
			usleep(10000);
	}
	if (rc < 0 && j->msg[0] == '\0')
		snprintf(j->msg, sizeof(j->msg), "%s", strerror(-rc));
	j->rc = rc;
	while (write(j->m->job_pipe[1], &j, sizeof(j)) < 0 && errno == EINTR)
		;
	return NULL;
}

static void job_unlink(struct vft *m, struct vft_job *j)
{
	for (struct vft_job **p = &m->jobs; *p != NULL; p = &(*p)->next) {
		if (*p == j) {
			*p = j->next;
			return;
		}
	}
}

static int32_t on_job(int32_t fd, int32_t revents, void *data)
{
	struct vft *m = data;
	struct vft_job *j;

	(void)revents;
	while (read(fd, &j, sizeof(j)) == (ssize_t)sizeof(j)) {
		pthread_join(j->th, NULL);
		job_unlink(m, j);
		if (j->rc == 0 && strcmp(j->order, "start") == 0) {
			char err[200] = "";

			j->rc = vft_engine_start(m, j->vm, "primary", err, sizeof(err));
			if (j->rc < 0)
				snprintf(j->msg, sizeof(j->msg), "%s",
				         err[0] ? err : strerror(-j->rc));
		}
		af_log(AF_LOG_SS, j->rc == 0 ? LOG_NOTICE : LOG_WARNING,
		       "vmft-bridge: order %s%s to the engine of vm %s: %s", j->order,
		       j->force ? " (force)" : "", j->vm, j->rc == 0 ? "done" : j->msg);
		if (j->done)
			j->done(j->cookie, j->rc, j->msg);
		free(j);
	}
	return 0;
}

int vft_order(struct vft *m, const char *vm, const char *order, bool force, vft_done_fn done,
              void *cookie)
{
	const struct af_cfg_vm *v;
	struct sockaddr_un sa;
	struct vft_job *j;
	int rc;

	if (m == NULL || vm == NULL || order == NULL || done == NULL)
		return -EINVAL;
	if (strcmp(order, "promote") != 0 && strcmp(order, "start") != 0 &&
	    strcmp(order, "quit") != 0 && strcmp(order, "release") != 0)
		return -EINVAL;
	if (m->env.loop == NULL || m->job_pipe[0] < 0)
		return -ENOTSUP;
	rc = vm_ctl_path(m, vm, &sa, &v);
	if (rc < 0)
		return rc;
	j = calloc(1, sizeof(*j));
	if (j == NULL)
		return -ENOMEM;
	j->m = m;
	af_strlcpy(j->path, sa.sun_path, sizeof(j->path));
	af_strlcpy(j->vm, v->name, sizeof(j->vm));
	af_strlcpy(j->order, order, sizeof(j->order));
	j->force = force;
	j->done = done;
	j->cookie = cookie;
	rc = -pthread_create(&j->th, NULL, job_main, j);
	if (rc < 0) {
		free(j);
		return rc;
	}
	j->next = m->jobs;
	m->jobs = j;
	af_info("vmft-bridge: order %s%s to the engine of vm %s", order, force ? " (force)" : "",
	        v->name);
	return 0;
}

void vft_order_forget(struct vft *m, void *cookie)
{
	if (m == NULL)
		return;
	for (struct vft_job *j = m->jobs; j != NULL; j = j->next)
		if (j->cookie == cookie)
			j->done = NULL;
}

int vft_engine_state(const struct vft *m, const char *vm, char *state, size_t len)
{
	unsigned i;

	if (m == NULL || vm == NULL || state == NULL || len == 0)
		return -EINVAL;
	if (find_vm(m, vm, &i) == NULL)
		return -ENOENT;
	if (m->links[i].fd < 0 || m->links[i].state[0] == '\0')
		return -ENOTCONN;
	af_strlcpy(state, m->links[i].state, len);
	return 0;
}

int vft_engine_start(struct vft *m, const char *vm, const char *role, char *err, size_t errlen)
{
	const struct af_cfg_vm *v;
	char slot[16];
	unsigned idx;
	pid_t pid;
	int status;

	if (m == NULL || vm == NULL || role == NULL ||
	    (strcmp(role, "primary") != 0 && strcmp(role, "backup") != 0))
		return -EINVAL;
	v = find_vm(m, vm, &idx);
	if (v == NULL) {
		snprintf(err, errlen, "no protected vm '%s' with a disk in the configuration", vm);
		return -ENOENT;
	}
	if (local_slot(m) == 0) {
		snprintf(err, errlen, "cannot tell which blade this is (set daemon.local_blade)");
		return -ENOENT;
	}
	snprintf(slot, sizeof(slot), "%u", local_slot(m));
	/* an order starts it: a quit by order no longer holds it back */
	m->links[idx].held = false;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* detach twice: the engine must outlive this daemon */
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (setsid() < 0 || fork() != 0)
			_exit(0);
		if (nul >= 0) {
			dup2(nul, STDIN_FILENO);
			dup2(nul, STDOUT_FILENO);
			dup2(nul, STDERR_FILENO);
		}
		char *argv[] = {(char *)m->env.cfg->vmft.engine,
		                "-c",
		                (char *)m->env.cfg->path,
		                "-v",
		                (char *)v->name,
		                "-r",
		                (char *)role,
		                "-b",
		                slot,
		                NULL};
		execv(argv[0], argv);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	af_notice("vmft-bridge: engine of vm %s started as %s (%s)", v->name, role,
	          m->env.cfg->vmft.engine);
	return 0;
}

int vft_backup_wanted(struct vft *m, const char *vm)
{
	const struct af_cfg_vm *v;
	struct vft_link *l;
	uint64_t now = af_mono_ns();
	char err[200] = "";
	unsigned i;
	int rc;

	if (m == NULL || vm == NULL)
		return -EINVAL;
	v = find_vm(m, vm, &i);
	if (v == NULL)
		return -ENOENT;
	l = &m->links[i];
	if (l->fd >= 0 || l->respawn_at != 0 || l->held || !m->env.cfg->vmft.restart_backup ||
	    (l->wanted_at != 0 && now - l->wanted_at < BACKUP_WANTED_EVERY))
		return 0;
	l->wanted_at = now;
	/* one runs that this daemon has not subscribed to yet (it just
	 * started): the subscription will come */
	{
		struct sockaddr_un sa;

		if (vm_ctl_path(m, v->name, &sa, NULL) == 0 && pidfile_held(sa.sun_path))
			return 0;
	}
	af_notice("vmft-bridge: vm %s runs on the partner blade with no backup engine here: "
	          "starting one",
	          v->name);
	rc = vft_engine_start(m, v->name, "backup", err, sizeof(err));
	if (rc < 0)
		af_err("vmft-bridge: the backup engine of vm %s could not be started: %s", v->name,
		       err[0] ? err : strerror(-rc));
	return rc;
}

/* ---- module ------------------------------------------------------------------------- */

int vft_init(struct vft **out, const struct af_module_env *env)
{
	struct vft *m;

	if (out == NULL || env == NULL || env->cfg == NULL)
		return -EINVAL;
	m = af_calloc_resident(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->env = *env;
	m->job_pipe[0] = m->job_pipe[1] = -1;
	for (unsigned i = 0; i < AF_MAX_VMS; i++)
		m->links[i].fd = -1;
	if (m->env.loop) {
		if (pipe2(m->job_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
			int rc = -errno;

			free(m);
			return rc;
		}
		qb_loop_poll_add(m->env.loop, QB_LOOP_HIGH, m->job_pipe[0], POLLIN, m, on_job);
		qb_loop_timer_add(m->env.loop, QB_LOOP_LOW, 10 * AF_NS_PER_MS, m, on_timer,
		                  &m->timer);
		m->timer_on = true;
	}
	af_info("vmft-bridge: initialised");
	*out = m;
	return 0;
}

int vft_reconfigure(struct vft *m, const struct af_config *cfg)
{
	if (m == NULL || cfg == NULL)
		return -EINVAL;
	/* links are indexed by VM position: a new configuration reconnects */
	for (unsigned i = 0; i < AF_MAX_VMS; i++) {
		if (m->links[i].fd >= 0)
			link_close(m, i);
		m->links[i].respawn_at = 0;
	}
	m->env.cfg = cfg;
	return 0;
}

void vft_describe(const struct vft *m, struct af_module_status *st)
{
	unsigned n = 0, respawns = 0;

	st->name = "vmft-bridge";
	if (m == NULL) {
		st->state = "stopped";
		snprintf(st->detail, sizeof(st->detail), "not running");
		return;
	}
	for (unsigned i = 0; i < m->env.cfg->n_vms; i++)
		n += engine_vm(&m->env.cfg->vms[i]);
	st->state = n == 0 ? "disabled" : "running";
	for (unsigned i = 0; i < AF_MAX_VMS; i++)
		respawns += m->links[i].respawns;
	snprintf(st->detail, sizeof(st->detail),
	         "%u protected vm(s) with an engine, %u engine(s) connected here, %u backup "
	         "restart(s)",
	         n, m->connected, respawns);
}

void vft_fini(struct vft *m)
{
	if (m == NULL)
		return;
	for (unsigned i = 0; i < AF_MAX_VMS; i++)
		if (m->links[i].fd >= 0)
			link_close(m, i);
	if (m->timer_on)
		qb_loop_timer_del(m->env.loop, m->timer);
	/* orders under way end within their socket timeout: wait for them,
	 * their callers are told nothing (they are going away too) */
	while (m->jobs != NULL) {
		struct vft_job *j = m->jobs;

		m->jobs = j->next;
		pthread_join(j->th, NULL);
		free(j);
	}
	if (m->job_pipe[0] >= 0) {
		qb_loop_poll_del(m->env.loop, m->job_pipe[0]);
		close(m->job_pipe[0]);
		close(m->job_pipe[1]);
	}
	af_info("vmft-bridge: stopped");
	free(m);
}
