/*
 * recovery: libvirt's event loop implemented on the daemon's qb_loop.
 *
 * libvirt watches its sockets and runs its timers (keepalive, event
 * dispatch) through the six callbacks of virEventRegisterImpl(). They
 * carry no context and there is one set per process, hence the one
 * file-static state of the recovery module below.
 *
 * libvirt calls them from any thread (a worker opening a connection adds
 * its socket), while a qb_loop may only be touched from the thread that
 * runs it. So the callbacks only edit tables under a mutex; the loop
 * thread applies the tables to the qb_loop ("sync"): at once when the
 * change is made on the loop thread, otherwise when a byte on the wake
 * pipe tells it to.
 *
 * Handles are registered on the qb_loop through a dup() of libvirt's file
 * descriptor. libvirt closes its descriptor right after removing a handle,
 * possibly in another thread and before the loop thread has caught up;
 * the dup keeps the file open (and its epoll registration valid) until
 * the loop deletes it, and a new descriptor that reuses the number cannot
 * be mistaken for the old one.
 *
 * Timeouts: libvirt's are periodic (frequency in ms, -1 disabled, 0 "on
 * every loop iteration"); qb timers fire once. Each firing re-arms the qb
 * timer with the frequency (a 0 ms timer for 0), unless the callback
 * changed the timeout itself.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_RECOVERY
#include "rcv_virt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "af_log.h"

struct vl_handle {
	int watch;
	int fd;     /* libvirt's */
	int events; /* VIR_EVENT_HANDLE_* */
	virEventHandleCallback cb;
	void *opaque;
	virFreeCallback ff;
};

/* one registration on the qb_loop per distinct libvirt descriptor */
struct vl_reg {
	int fd;     /* libvirt's number */
	int dupfd;  /* what the qb_loop watches */
	int events; /* POLL* registered */
	int owner;  /* a watch that was on fd when it was registered */
};

struct vl_timer {
	int id;
	int freq; /* ms, -1 disabled */
	virEventTimeoutCallback cb;
	void *opaque;
	virFreeCallback ff;
	bool deleted; /* removed by libvirt; the qb timer is still to delete */
	bool reset;   /* updated: the period restarts now */
	bool armed;
	qb_loop_timer_handle qbh;
};

struct vl_free {
	virFreeCallback ff;
	void *opaque;
};

/* The process-global state libvirt's registration forces on us. */
static struct {
	pthread_mutex_t lock;
	qb_loop_t *loop;
	pthread_t loop_thread;
	int wake[2];
	struct vl_handle *h;
	unsigned nh, caph;
	struct vl_reg *regs;
	unsigned nregs, capregs;
	struct vl_timer *t;
	unsigned nt, capt;
	struct vl_free *frees;
	unsigned nfrees, capfrees;
	int last_watch, last_timer;
	unsigned users;       /* registrations not yet unregistered */
	bool impl_registered; /* virEventRegisterImpl() done: it cannot be undone */
	bool reap_armed;
	qb_loop_timer_handle reap_timer;
} vl = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = {-1, -1}};

/* ---- helpers (lock held) ---------------------------------------------------------------- */

static bool on_loop_thread(void)
{
	return vl.loop != NULL && pthread_equal(pthread_self(), vl.loop_thread);
}

static int grow(void **arr, unsigned *cap, unsigned need, size_t size)
{
	unsigned ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*arr, (size_t)ncap * size);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static struct vl_handle *find_handle(int watch)
{
	for (unsigned i = 0; i < vl.nh; i++) {
		if (vl.h[i].watch == watch)
			return &vl.h[i];
	}
	return NULL;
}

static struct vl_timer *find_timer(int id)
{
	for (unsigned i = 0; i < vl.nt; i++) {
		if (vl.t[i].id == id && !vl.t[i].deleted)
			return &vl.t[i];
	}
	return NULL;
}

static struct vl_reg *find_reg_dup(int dupfd)
{
	for (unsigned i = 0; i < vl.nregs; i++) {
		if (vl.regs[i].dupfd == dupfd)
			return &vl.regs[i];
	}
	return NULL;
}

static int vir_to_poll(int ev)
{
	return (ev & VIR_EVENT_HANDLE_READABLE ? POLLIN : 0) |
	       (ev & VIR_EVENT_HANDLE_WRITABLE ? POLLOUT : 0) |
	       (ev & VIR_EVENT_HANDLE_ERROR ? POLLERR : 0) |
	       (ev & VIR_EVENT_HANDLE_HANGUP ? POLLHUP : 0);
}

static int poll_to_vir(int ev)
{
	return (ev & (POLLIN | POLLPRI) ? VIR_EVENT_HANDLE_READABLE : 0) |
	       (ev & POLLOUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
	       (ev & (POLLERR | POLLNVAL) ? VIR_EVENT_HANDLE_ERROR : 0) |
	       (ev & POLLHUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

/* The free function runs later, from the loop, never inside the removal
 * (libvirt may hold locks the free function takes). On allocation failure
 * the object leaks rather than being freed too early. */
static void defer_free(virFreeCallback ff, void *opaque)
{
	if (ff == NULL)
		return;
	if (grow((void **)&vl.frees, &vl.capfrees, vl.nfrees + 1, sizeof(*vl.frees)) < 0)
		return;
	vl.frees[vl.nfrees].ff = ff;
	vl.frees[vl.nfrees].opaque = opaque;
	vl.nfrees++;
}

static void reap_fire(void *data);
static void sync_locked(void);
static void maybe_unbind_locked(void);

/* A change was made: apply it now on the loop thread, otherwise wake the
 * loop thread to apply it. */
static void changed_locked(void)
{
	if (vl.loop == NULL)
		return;
	if (on_loop_thread()) {
		sync_locked();
		if (vl.nfrees > 0 && !vl.reap_armed &&
		    qb_loop_timer_add(vl.loop, QB_LOOP_MED, 0, NULL, reap_fire, &vl.reap_timer) ==
		            0)
			vl.reap_armed = true;
		return;
	}
	{
		char b = 1;
		/* non-blocking: a full pipe already means "wake up" */
		ssize_t n = write(vl.wake[1], &b, 1);

		(void)n;
	}
}

/* ---- applying the tables to the qb_loop (loop thread, lock held) ---------------------- */

static int32_t handle_dispatch(int32_t dupfd, int32_t revents, void *data);
static void timer_fire(void *data);

static void reg_drop(unsigned i)
{
	qb_loop_poll_del(vl.loop, vl.regs[i].dupfd);
	close(vl.regs[i].dupfd);
	vl.regs[i] = vl.regs[--vl.nregs];
}

static void sync_handles(void)
{
	/* registrations nobody wants any more, or whose descriptor number now
	 * belongs to another file (its first owner is gone) */
	for (unsigned i = 0; i < vl.nregs;) {
		struct vl_reg *r = &vl.regs[i];
		struct vl_handle *o = find_handle(r->owner);
		int want = 0;

		for (unsigned k = 0; k < vl.nh; k++) {
			if (vl.h[k].fd == r->fd)
				want |= vir_to_poll(vl.h[k].events);
		}
		if (want == 0 || o == NULL || o->fd != r->fd) {
			reg_drop(i);
			continue;
		}
		if (want != r->events) {
			if (qb_loop_poll_mod(vl.loop, QB_LOOP_MED, r->dupfd, want, NULL,
			                     handle_dispatch) < 0) {
				reg_drop(i);
				continue;
			}
			r->events = want;
		}
		i++;
	}
	/* descriptors wanted and not registered */
	for (unsigned k = 0; k < vl.nh; k++) {
		struct vl_handle *h = &vl.h[k];
		int want = 0, dupfd, rc;
		bool have = false;

		for (unsigned i = 0; i < vl.nregs && !have; i++)
			have = vl.regs[i].fd == h->fd;
		if (have)
			continue;
		for (unsigned j = 0; j < vl.nh; j++) {
			if (vl.h[j].fd == h->fd)
				want |= vir_to_poll(vl.h[j].events);
		}
		if (want == 0)
			continue;
		if (grow((void **)&vl.regs, &vl.capregs, vl.nregs + 1, sizeof(*vl.regs)) < 0) {
			af_err("recovery: libvirt event loop: out of memory watching fd %d", h->fd);
			continue;
		}
		dupfd = fcntl(h->fd, F_DUPFD_CLOEXEC, 0);
		if (dupfd < 0) {
			af_err("recovery: libvirt event loop: cannot watch fd %d: %s", h->fd,
			       strerror(errno));
			continue;
		}
		rc = qb_loop_poll_add(vl.loop, QB_LOOP_MED, dupfd, want, NULL, handle_dispatch);
		if (rc < 0) {
			af_err("recovery: libvirt event loop: cannot watch fd %d: %s", h->fd,
			       strerror(-rc));
			close(dupfd);
			continue;
		}
		vl.regs[vl.nregs++] = (struct vl_reg){
		        .fd = h->fd, .dupfd = dupfd, .events = want, .owner = h->watch};
	}
}

static void arm(struct vl_timer *t)
{
	int rc = qb_loop_timer_add(vl.loop, QB_LOOP_MED, (uint64_t)t->freq * AF_NS_PER_MS,
	                           (void *)(intptr_t)t->id, timer_fire, &t->qbh);

	if (rc < 0) {
		af_err("recovery: libvirt event loop: cannot arm a timer: %s", strerror(-rc));
		return;
	}
	t->armed = true;
}

static void disarm(struct vl_timer *t)
{
	if (t->armed)
		qb_loop_timer_del(vl.loop, t->qbh);
	t->armed = false;
}

static void sync_timers(void)
{
	for (unsigned i = 0; i < vl.nt;) {
		struct vl_timer *t = &vl.t[i];

		if (t->deleted) {
			disarm(t);
			vl.t[i] = vl.t[--vl.nt];
			continue;
		}
		if (t->reset || t->freq < 0)
			disarm(t);
		t->reset = false;
		if (!t->armed && t->freq >= 0)
			arm(t);
		i++;
	}
}

static void sync_locked(void)
{
	sync_handles();
	sync_timers();
}

static void reap(void)
{
	struct vl_free *frees;
	unsigned n;

	pthread_mutex_lock(&vl.lock);
	frees = vl.frees;
	n = vl.nfrees;
	vl.frees = NULL;
	vl.nfrees = vl.capfrees = 0;
	pthread_mutex_unlock(&vl.lock);
	for (unsigned i = 0; i < n; i++)
		frees[i].ff(frees[i].opaque);
	free(frees);
	pthread_mutex_lock(&vl.lock);
	maybe_unbind_locked();
	pthread_mutex_unlock(&vl.lock);
}

static void reap_fire(void *data)
{
	(void)data;
	pthread_mutex_lock(&vl.lock);
	vl.reap_armed = false;
	pthread_mutex_unlock(&vl.lock);
	reap();
}

/* ---- dispatch (loop thread) -------------------------------------------------------------- */

static int32_t handle_dispatch(int32_t dupfd, int32_t revents, void *data)
{
	int watches[16];
	unsigned n = 0;
	bool wanted = false;
	int fd = -1;

	(void)data;
	pthread_mutex_lock(&vl.lock);
	{
		struct vl_reg *r = find_reg_dup(dupfd);

		if (r != NULL) {
			fd = r->fd;
			for (unsigned i = 0; i < vl.nh && n < AF_ARRAY_SIZE(watches); i++) {
				if (vl.h[i].fd == fd && vl.h[i].events != 0)
					watches[n++] = vl.h[i].watch;
			}
		}
	}
	pthread_mutex_unlock(&vl.lock);
	/* each callback may remove or change the others: look each one up again */
	for (unsigned i = 0; i < n; i++) {
		virEventHandleCallback cb;
		void *opaque;
		int ev;

		pthread_mutex_lock(&vl.lock);
		{
			struct vl_handle *h = find_handle(watches[i]);

			if (h == NULL || h->fd != fd || h->events == 0) {
				pthread_mutex_unlock(&vl.lock);
				continue;
			}
			ev = poll_to_vir(revents) &
			     (h->events | VIR_EVENT_HANDLE_ERROR | VIR_EVENT_HANDLE_HANGUP);
			cb = h->cb;
			opaque = h->opaque;
		}
		pthread_mutex_unlock(&vl.lock);
		if (ev == 0)
			continue;
		wanted = true;
		cb(watches[i], fd, ev, opaque);
	}
	if (!wanted) {
		/* a registration the tables no longer want (a change from another
		 * thread not yet applied): apply now rather than spin on it */
		pthread_mutex_lock(&vl.lock);
		sync_locked();
		pthread_mutex_unlock(&vl.lock);
	}
	return 0;
}

static void timer_fire(void *data)
{
	int id = (int)(intptr_t)data;
	virEventTimeoutCallback cb;
	void *opaque;
	struct vl_timer *t;

	pthread_mutex_lock(&vl.lock);
	t = find_timer(id);
	if (t == NULL || !t->armed) {
		pthread_mutex_unlock(&vl.lock);
		return;
	}
	t->armed = false; /* qb timers fire once */
	if (t->freq < 0) {
		pthread_mutex_unlock(&vl.lock);
		return;
	}
	cb = t->cb;
	opaque = t->opaque;
	pthread_mutex_unlock(&vl.lock);
	cb(id, opaque);
	pthread_mutex_lock(&vl.lock);
	t = find_timer(id);
	/* periodic, unless the callback re-armed, disabled or removed it */
	if (t != NULL && !t->armed && t->freq >= 0)
		arm(t);
	pthread_mutex_unlock(&vl.lock);
}

static int32_t wake_dispatch(int32_t fd, int32_t revents, void *data)
{
	char buf[64];

	(void)revents;
	(void)data;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	pthread_mutex_lock(&vl.lock);
	sync_locked();
	pthread_mutex_unlock(&vl.lock);
	reap();
	return 0;
}

/* ---- libvirt's callbacks (any thread) ---------------------------------------------------- */

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                      virFreeCallback ff)
{
	int watch;

	if (fd < 0 || cb == NULL)
		return -1;
	pthread_mutex_lock(&vl.lock);
	if (grow((void **)&vl.h, &vl.caph, vl.nh + 1, sizeof(*vl.h)) < 0) {
		pthread_mutex_unlock(&vl.lock);
		return -1;
	}
	if (++vl.last_watch <= 0)
		vl.last_watch = 1;
	watch = vl.last_watch;
	vl.h[vl.nh++] = (struct vl_handle){
	        .watch = watch, .fd = fd, .events = events, .cb = cb, .opaque = opaque, .ff = ff};
	changed_locked();
	pthread_mutex_unlock(&vl.lock);
	return watch;
}

static void update_handle(int watch, int events)
{
	struct vl_handle *h;

	pthread_mutex_lock(&vl.lock);
	h = find_handle(watch);
	if (h != NULL && h->events != events) {
		h->events = events;
		changed_locked();
	}
	pthread_mutex_unlock(&vl.lock);
}

static int remove_handle(int watch)
{
	struct vl_handle *h;

	pthread_mutex_lock(&vl.lock);
	h = find_handle(watch);
	if (h == NULL) {
		pthread_mutex_unlock(&vl.lock);
		return -1;
	}
	defer_free(h->ff, h->opaque);
	*h = vl.h[--vl.nh];
	changed_locked();
	pthread_mutex_unlock(&vl.lock);
	return 0;
}

static int add_timeout(int freq, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
	int id;

	if (cb == NULL)
		return -1;
	pthread_mutex_lock(&vl.lock);
	if (grow((void **)&vl.t, &vl.capt, vl.nt + 1, sizeof(*vl.t)) < 0) {
		pthread_mutex_unlock(&vl.lock);
		return -1;
	}
	if (++vl.last_timer <= 0)
		vl.last_timer = 1;
	id = vl.last_timer;
	vl.t[vl.nt++] = (struct vl_timer){
	        .id = id, .freq = freq < 0 ? -1 : freq, .cb = cb, .opaque = opaque, .ff = ff};
	changed_locked();
	pthread_mutex_unlock(&vl.lock);
	return id;
}

static void update_timeout(int id, int freq)
{
	struct vl_timer *t;

	pthread_mutex_lock(&vl.lock);
	t = find_timer(id);
	if (t != NULL) {
		t->freq = freq < 0 ? -1 : freq;
		t->reset = true;
		changed_locked();
	}
	pthread_mutex_unlock(&vl.lock);
}

static int remove_timeout(int id)
{
	struct vl_timer *t;

	pthread_mutex_lock(&vl.lock);
	t = find_timer(id);
	if (t == NULL) {
		pthread_mutex_unlock(&vl.lock);
		return -1;
	}
	defer_free(t->ff, t->opaque);
	t->ff = NULL;
	t->deleted = true;
	changed_locked();
	pthread_mutex_unlock(&vl.lock);
	return 0;
}

/* libvirt prints every error to stderr unless told otherwise; ours are
 * fetched with virGetLastError() and logged by the loop. */
static void quiet_errors(void *data, virErrorPtr err)
{
	(void)data;
	(void)err;
}

/* ---- registration ---------------------------------------------------------------------------- */

/* The loop is let go once nobody holds it and libvirt has nothing left on
 * it (loop thread, lock held). */
static void maybe_unbind_locked(void)
{
	if (vl.loop == NULL || vl.users > 0 || !on_loop_thread())
		return;
	sync_locked(); /* drops removed timers and unwanted descriptors */
	if (vl.nh > 0 || vl.nt > 0 || vl.nfrees > 0)
		return; /* still in use: let go later, when it is idle */
	if (vl.reap_armed)
		qb_loop_timer_del(vl.loop, vl.reap_timer);
	vl.reap_armed = false;
	qb_loop_poll_del(vl.loop, vl.wake[0]);
	close(vl.wake[0]);
	close(vl.wake[1]);
	vl.wake[0] = vl.wake[1] = -1;
	vl.loop = NULL;
}

int rcv_virt_loop_register(qb_loop_t *loop)
{
	bool first;
	int rc;

	if (loop == NULL)
		return -EINVAL;
	if (virInitialize() < 0)
		return -EIO;
	pthread_mutex_lock(&vl.lock);
	if (vl.loop != NULL && vl.loop != loop) {
		pthread_mutex_unlock(&vl.lock);
		return -EBUSY;
	}
	if (vl.loop == NULL) {
		if (pipe2(vl.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
			rc = -errno;
			pthread_mutex_unlock(&vl.lock);
			return rc;
		}
		rc = qb_loop_poll_add(loop, QB_LOOP_HIGH, vl.wake[0], POLLIN, NULL, wake_dispatch);
		if (rc < 0) {
			close(vl.wake[0]);
			close(vl.wake[1]);
			vl.wake[0] = vl.wake[1] = -1;
			pthread_mutex_unlock(&vl.lock);
			return rc;
		}
		vl.loop = loop;
		vl.loop_thread = pthread_self();
		sync_locked(); /* what libvirt did while no loop was bound */
	}
	vl.users++;
	first = !vl.impl_registered;
	vl.impl_registered = true;
	pthread_mutex_unlock(&vl.lock);
	if (first) {
		virSetErrorFunc(NULL, quiet_errors);
		virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout,
		                     update_timeout, remove_timeout);
	}
	return 0;
}

void rcv_virt_loop_unregister(qb_loop_t *loop)
{
	rcv_virt_loop_flush();
	pthread_mutex_lock(&vl.lock);
	if (loop != NULL && vl.loop == loop && vl.users > 0) {
		vl.users--;
		maybe_unbind_locked();
	}
	pthread_mutex_unlock(&vl.lock);
}

void rcv_virt_loop_flush(void)
{
	pthread_mutex_lock(&vl.lock);
	if (!on_loop_thread()) {
		pthread_mutex_unlock(&vl.lock);
		return;
	}
	sync_locked();
	pthread_mutex_unlock(&vl.lock);
	reap();
}
