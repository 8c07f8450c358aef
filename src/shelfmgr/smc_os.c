/*
 * OpenIPMI's operating-system seam (os_handler_t) on the daemon's qb_loop:
 * OpenIPMI's sockets and timers become qb_loop poll entries and timers, so
 * the shelf-manager client runs in the main loop like everything else and
 * nothing here calls poll().
 *
 * Everything runs in the main loop's thread, so OpenIPMI gets no locks
 * (NULL lock functions tell it so).
 */
#include "config.h"

#define AF_LOG_SS AF_SS_SHELF
#include "smc_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <OpenIPMI/ipmiif.h>

#include "af_log.h"

struct os_hnd_fd_id_s {
	struct smc_os *os;
	int fd;
	os_data_ready_t read_ready, write_ready, except_ready;
	void *cb_data;
	os_fd_data_freed_t freed;
	int32_t events;
	bool in_dispatch, removed;
};

struct os_hnd_timer_id_s {
	struct smc_os *os;
	qb_loop_timer_handle handle;
	bool running;
	os_timed_out_t timed_out;
	void *cb_data;
};

static struct smc_os *os_of(os_handler_t *h)
{
	return h->internal_data;
}

static void *mem_alloc(int size)
{
	return size > 0 ? malloc((size_t)size) : malloc(1);
}

static void mem_free(void *p)
{
	free(p);
}

/* ---- file descriptors ------------------------------------------------------ */

static void fd_release(os_hnd_fd_id_t *id)
{
	if (id->freed != NULL)
		id->freed(id->fd, id->cb_data);
	free(id);
}

static int32_t fd_dispatch(int32_t fd, int32_t revents, void *data)
{
	os_hnd_fd_id_t *id = data;

	id->in_dispatch = true;
	if ((revents & (POLLIN | POLLHUP | POLLERR)) && id->read_ready != NULL && !id->removed)
		id->read_ready(fd, id->cb_data, id);
	if ((revents & POLLOUT) && id->write_ready != NULL && !id->removed)
		id->write_ready(fd, id->cb_data, id);
	if ((revents & POLLPRI) && id->except_ready != NULL && !id->removed)
		id->except_ready(fd, id->cb_data, id);
	id->in_dispatch = false;
	/* removed from inside its own callback: freed now that it returned */
	if (id->removed)
		fd_release(id);
	return 0;
}

static int add_fd(os_handler_t *h, int fd, os_data_ready_t ready, void *cb_data,
                  os_fd_data_freed_t freed, os_hnd_fd_id_t **out)
{
	struct smc_os *os = os_of(h);
	os_hnd_fd_id_t *id = calloc(1, sizeof(*id));
	int rc;

	if (id == NULL)
		return ENOMEM;
	id->os = os;
	id->fd = fd;
	id->read_ready = ready;
	id->cb_data = cb_data;
	id->freed = freed;
	id->events = POLLIN;
	rc = qb_loop_poll_add(os->loop, QB_LOOP_HIGH, fd, id->events, id, fd_dispatch);
	if (rc < 0) {
		free(id);
		return -rc;
	}
	os->n_fds++;
	*out = id;
	return 0;
}

static int remove_fd(os_handler_t *h, os_hnd_fd_id_t *id)
{
	struct smc_os *os = os_of(h);

	qb_loop_poll_del(os->loop, id->fd);
	os->n_fds--;
	if (id->in_dispatch)
		id->removed = true;
	else
		fd_release(id);
	return 0;
}

static void set_fd_handlers(os_handler_t *h, os_hnd_fd_id_t *id, os_data_ready_t write_ready,
                            os_data_ready_t except_ready)
{
	(void)h;
	id->write_ready = write_ready;
	id->except_ready = except_ready;
}

static int set_fd_enables(os_handler_t *h, os_hnd_fd_id_t *id, int rd, int wr, int ex)
{
	struct smc_os *os = os_of(h);
	int32_t ev = (rd ? POLLIN : 0) | (wr ? POLLOUT : 0) | (ex ? POLLPRI : 0);
	int rc;

	if (ev == id->events)
		return 0;
	rc = qb_loop_poll_mod(os->loop, QB_LOOP_HIGH, id->fd, ev, id, fd_dispatch);
	if (rc < 0)
		return -rc;
	id->events = ev;
	return 0;
}

/* ---- timers ---------------------------------------------------------------- */

static void timer_dispatch(void *data)
{
	os_hnd_timer_id_t *t = data;

	/* stop_timer() from here on must answer ESRCH: the handler runs */
	t->running = false;
	t->timed_out(t->cb_data, t);
}

static int alloc_timer(os_handler_t *h, os_hnd_timer_id_t **out)
{
	os_hnd_timer_id_t *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return ENOMEM;
	t->os = os_of(h);
	os_of(h)->n_timers++;
	*out = t;
	return 0;
}

static int stop_timer(os_handler_t *h, os_hnd_timer_id_t *t)
{
	(void)h;
	if (!t->running)
		return ESRCH;
	qb_loop_timer_del(t->os->loop, t->handle);
	t->running = false;
	return 0;
}

static int free_timer(os_handler_t *h, os_hnd_timer_id_t *t)
{
	if (t->running)
		stop_timer(h, t);
	os_of(h)->n_timers--;
	free(t);
	return 0;
}

static int start_timer(os_handler_t *h, os_hnd_timer_id_t *t, struct timeval *tv,
                       os_timed_out_t timed_out, void *cb_data)
{
	uint64_t ns;
	int rc;

	(void)h;
	if (t->running)
		return EBUSY;
	ns = (uint64_t)tv->tv_sec * AF_NS_PER_S + (uint64_t)tv->tv_usec * 1000u;
	t->timed_out = timed_out;
	t->cb_data = cb_data;
	rc = qb_loop_timer_add(t->os->loop, QB_LOOP_HIGH, ns, t, timer_dispatch, &t->handle);
	if (rc < 0)
		return -rc;
	t->running = true;
	return 0;
}

/* ---- the rest ---------------------------------------------------------------- */

static int get_random(os_handler_t *h, void *data, unsigned int len)
{
	unsigned char *p = data;

	(void)h;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += n;
		len -= (unsigned)n;
	}
	return 0;
}

static int mono_time(os_handler_t *h, struct timeval *tv)
{
	struct timespec ts;

	(void)h;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

static int real_time(os_handler_t *h, struct timeval *tv)
{
	struct timespec ts;

	(void)h;
	clock_gettime(CLOCK_REALTIME, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

/* OpenIPMI's own log lines: its debug output comes in pieces (start,
 * continue, end) that are joined into one line. */
static void os_vlog(os_handler_t *h, enum ipmi_log_type_e type, const char *fmt, va_list ap)
{
	struct smc_os *os = os_of(h);
	size_t used = strlen(os->logbuf);
	int prio;

	if (type == IPMI_LOG_DEBUG_START)
		os->logbuf[0] = used = 0;
	vsnprintf(os->logbuf + used, sizeof(os->logbuf) - used, fmt, ap);
	if (type == IPMI_LOG_DEBUG_START || type == IPMI_LOG_DEBUG_CONT)
		return;
	switch (type) {
	case IPMI_LOG_SEVERE:
	case IPMI_LOG_FATAL:
		prio = LOG_ERR;
		break;
	case IPMI_LOG_WARNING:
	case IPMI_LOG_ERR_INFO:
		prio = LOG_WARNING;
		break;
	case IPMI_LOG_INFO:
		prio = LOG_INFO;
		break;
	default:
		prio = LOG_DEBUG;
		break;
	}
	af_log(AF_SS_SHELF, prio, "OpenIPMI: %s", os->logbuf);
	os->logbuf[0] = '\0';
}

static void os_log(os_handler_t *h, enum ipmi_log_type_e type, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	os_vlog(h, type, fmt, ap);
	va_end(ap);
}

int smc_os_new(struct smc_os **out, qb_loop_t *loop)
{
	struct smc_os *os;
	os_handler_t *h;

	os = calloc(1, sizeof(*os));
	if (os == NULL)
		return -ENOMEM;
	/* ipmi_alloc_os_handler() needs OpenIPMI initialised, which needs a
	 * handler: the struct is public, allocate it here */
	h = &os->h;
	os->loop = loop;
	os->refs = 1;
	h->internal_data = os;
	h->mem_alloc = mem_alloc;
	h->mem_free = mem_free;
	h->add_fd_to_wait_for = add_fd;
	h->remove_fd_to_wait_for = remove_fd;
	h->set_fd_handlers = set_fd_handlers;
	h->set_fd_enables = set_fd_enables;
	h->alloc_timer = alloc_timer;
	h->free_timer = free_timer;
	h->start_timer = start_timer;
	h->stop_timer = stop_timer;
	h->get_random = get_random;
	h->log = os_log;
	h->vlog = os_vlog;
	h->get_monotonic_time = mono_time;
	h->get_real_time = real_time;
	/* no locks: one thread */
	*out = os;
	return 0;
}

void smc_os_put(struct smc_os *os)
{
	if (os == NULL || --os->refs > 0)
		return;
	if (os->n_fds != 0 || os->n_timers != 0)
		af_debug("shelfmgr: OpenIPMI left %d fds and %d timers behind", os->n_fds,
		         os->n_timers);
	free(os);
}

/* OpenIPMI is a process-wide library: ipmi_init() takes one handler for its
 * global needs (lists, the ATCA connection socket). The first user's handler
 * becomes that one and stays alive until the last user is gone, so every
 * instance in a process must run on the same qb_loop. */
static struct smc_os *g_os;
static unsigned g_users;

int smc_ipmi_get(struct smc_os *os)
{
	int rc;

	if (g_users == 0) {
		rc = ipmi_init(&os->h);
		if (rc != 0)
			return -rc;
		g_os = os;
		os->refs++;
	} else if (g_os->loop != os->loop) {
		return -EXDEV;
	}
	g_users++;
	return 0;
}

void smc_ipmi_put(void)
{
	if (g_users == 0 || --g_users > 0)
		return;
	ipmi_shutdown();
	smc_os_put(g_os);
	g_os = NULL;
}
