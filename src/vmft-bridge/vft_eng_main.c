/*
 * atca-vmft: main thread of the checkpoint/replay engine (see vft_eng.h):
 * arguments, configuration, the qb_loop, the state machine, the control
 * socket the manager (atca-ftd's vmft-bridge) and atca-ftctl talk to.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft_eng.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "af_common.h"
#include "vft_qmp.h"
#include "vft_scan.h"
#include "vft_store.h"

static const char *const state_names[ES_COUNT] = {
        [ES_BOOTING] = "booting",     [ES_SYNCING] = "syncing",
        [ES_PROTECTED] = "protected", [ES_UNPROTECTED] = "unprotected",
        [ES_WAITING] = "waiting",     [ES_STANDBY] = "standby",
        [ES_ORPHANED] = "orphaned",   [ES_PROMOTING] = "promoting",
        [ES_FAILED] = "failed",
};
static const char *const event_names[EE_COUNT] = {
        [EE_QEMU_UP] = "qemu-up",     [EE_LINK_UP] = "link-up",     [EE_ACKED] = "acked",
        [EE_LINK_LOST] = "link-lost", [EE_COMMITTED] = "committed", [EE_SYNC_BEGIN] = "sync-begin",
        [EE_PROMOTE] = "promote",     [EE_PROMOTED] = "promoted",   [EE_FAIL] = "fail",
        [EE_UNPROTECT] = "unprotect", [EE_STALLED] = "stalled",     [EE_FLOWING] = "flowing",
};
static const struct af_fsm_row rows[] = {
        {ES_BOOTING, EE_QEMU_UP, ES_UNPROTECTED},
        {ES_BOOTING, EE_FAIL, ES_FAILED},
        {ES_UNPROTECTED, EE_LINK_UP, ES_SYNCING},
        {ES_UNPROTECTED, EE_FAIL, ES_FAILED},
        {ES_SYNCING, EE_ACKED, ES_PROTECTED},
        {ES_SYNCING, EE_LINK_LOST, ES_UNPROTECTED},
        {ES_SYNCING, EE_UNPROTECT, ES_UNPROTECTED},
        {ES_SYNCING, EE_FAIL, ES_FAILED},
        {ES_PROTECTED, EE_LINK_LOST, ES_UNPROTECTED},
        {ES_PROTECTED, EE_UNPROTECT, ES_UNPROTECTED},
        {ES_PROTECTED, EE_FAIL, ES_FAILED},
        {ES_WAITING, EE_COMMITTED, ES_STANDBY},
        {ES_WAITING, EE_PROMOTE, ES_PROMOTING},
        {ES_WAITING, EE_FAIL, ES_FAILED},
        {ES_STANDBY, EE_LINK_LOST, ES_ORPHANED},
        {ES_STANDBY, EE_PROMOTE, ES_PROMOTING},
        {ES_STANDBY, EE_FAIL, ES_FAILED},
        {ES_ORPHANED, EE_COMMITTED, ES_STANDBY},
        {ES_ORPHANED, EE_PROMOTE, ES_PROMOTING},
        {ES_ORPHANED, EE_FAIL, ES_FAILED},
        {ES_PROMOTING, EE_PROMOTED, ES_UNPROTECTED},
        {ES_PROMOTING, EE_FAIL, ES_FAILED},
};
static const struct af_fsm_def fsm_def = {
        .name = "vmft",
        .ss = AF_SS_VMFT,
        .states = state_names,
        .n_states = ES_COUNT,
        .events = event_names,
        .n_events = EE_COUNT,
        .rows = rows,
        .n_rows = AF_ARRAY_SIZE(rows),
};

/* ---- messages from the worker threads ------------------------------------------- */

void eng_post(struct vft_eng *e, int kind, int prio, int event, uint64_t epoch, const char *fmt,
              ...)
{
	struct eng_msg m = {.kind = kind, .prio = prio, .event = event, .epoch = epoch};
	va_list ap;

	m.at = af_mono_s();
	va_start(ap, fmt);
	vsnprintf(m.text, sizeof(m.text), fmt, ap);
	va_end(ap);
	/* sizeof(m) < PIPE_BUF: one write is atomic between threads */
	while (write(e->msg_pipe[1], &m, sizeof(m)) < 0 && errno == EINTR)
		;
}

static const char *const crash_names[] = {[ENG_CRASH_NONE] = "",
                                          [ENG_CRASH_PAUSE] = "pause",
                                          [ENG_CRASH_TRANSFER] = "transfer",
                                          [ENG_CRASH_COMMIT] = "commit"};

/* Reads ATCA_VMFT_CRASH_AT; an unreadable value arms nothing, loudly. */
static void crash_point_arm(struct vft_eng *e)
{
	const char *v = getenv("ATCA_VMFT_CRASH_AT"), *colon;
	uint64_t n;

	if (v == NULL || v[0] == '\0')
		return;
	e->crash_qemu = strncmp(v, "qemu-", 5) == 0;
	if (e->crash_qemu)
		v += 5;
	colon = strchr(v, ':');
	for (int i = ENG_CRASH_PAUSE; colon && i <= ENG_CRASH_COMMIT; i++)
		if ((size_t)(colon - v) == strlen(crash_names[i]) &&
		    strncmp(v, crash_names[i], strlen(crash_names[i])) == 0)
			e->crash_point = i;
	if (e->crash_point == ENG_CRASH_NONE || af_parse_u64(colon + 1, 1, UINT64_MAX, &n) < 0) {
		e->crash_point = ENG_CRASH_NONE;
		af_warn("vmft %s: ATCA_VMFT_CRASH_AT=%s not understood: no crash point",
		        e->vm->name, getenv("ATCA_VMFT_CRASH_AT"));
		return;
	}
	e->crash_epoch = n;
	af_warn("vmft %s: TEST crash point armed: %s %s in incremental epoch %llu", e->vm->name,
	        e->crash_qemu ? "QEMU killed" : "engine killed", crash_names[e->crash_point],
	        (unsigned long long)n);
}

void eng_crash_point(struct vft_eng *e, int point, uint64_t n)
{
	if (e->crash_point != point || n != e->crash_epoch)
		return;
	/* straight to stderr: a line posted to the loop would die with us */
	dprintf(STDERR_FILENO, "vmft %s: TEST crash point %s in incremental epoch %llu: %s\n",
	        e->vm->name, crash_names[point], (unsigned long long)n,
	        e->crash_qemu ? "QEMU killed" : "engine killed");
	if (e->crash_qemu && e->q.pid > 0) {
		kill(e->q.pid, SIGKILL);
		return;
	}
	kill(getpid(), SIGKILL);
}

void eng_fire(struct vft_eng *e, int event, const char *why)
{
	if (!af_fsm_has(&e->fsm, event))
		return;
	if (why)
		af_info("vmft %s: %s", e->vm->name, why);
	/* the manager plans with the engine's state (a backup in standby can
	 * take over, a primary runs the guest): every change reaches it */
	if (af_fsm_fire(&e->fsm, event) >= 0)
		eng_emit(e, "state", why);
}

/* An event line to every subscribed control client; with an epoch (not 0)
 * the line carries it. */
static void emit_epoch(struct vft_eng *e, const char *event, uint64_t epoch, const char *detail)
{
	char line[600];
	json_object *o = json_object_new_object();
	int len;

	json_object_object_add(o, "event", json_object_new_string(event));
	json_object_object_add(o, "vm", json_object_new_string(e->vm->name));
	json_object_object_add(o, "state", json_object_new_string(af_fsm_state_name(&e->fsm)));
	json_object_object_add(o, "detail", json_object_new_string(detail ? detail : ""));
	if (epoch != 0)
		json_object_object_add(o, "epoch", json_object_new_int64((int64_t)epoch));
	json_object_object_add(o, "at", json_object_new_double(af_mono_s()));
	len = snprintf(line, sizeof(line), "%s\n", json_object_to_json_string_ext(o, 0));
	json_object_put(o);
	if (len < 0 || (size_t)len >= sizeof(line))
		return;
	for (unsigned i = 0; i < AF_ARRAY_SIZE(e->clients); i++)
		if (e->clients[i] >= 0 && e->client_sub[i])
			(void)!send(e->clients[i], line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

void eng_emit(struct vft_eng *e, const char *event, const char *detail)
{
	emit_epoch(e, event, 0, detail);
}

static void on_event(struct vft_eng *e, const struct eng_msg *m)
{
	switch (m->event) {
	case EE_LINK_LOST:
		eng_fire(e, m->event, NULL);
		eng_emit(e, e->is_backup ? "primary-lost" : "backup-lost", m->text);
		break;
	case EE_ACKED:
		eng_fire(e, m->event, NULL);
		eng_emit(e, "protected", m->text);
		break;
	case EE_COMMITTED:
		eng_fire(e, m->event, NULL);
		eng_standby_refresh(e);
		break;
	case EE_SYNC_BEGIN:
		eng_emit(e, "sync-begin", m->text);
		break;
	case EE_STALLED:
		/* no state of its own: the guest is still protected, but by a
		 * backup that falls behind; the manager decides. The epoch is
		 * the last one acknowledged (what atcaFtReplicationStalled says) */
		emit_epoch(e, "replication-stalled", m->epoch, m->text);
		break;
	case EE_FLOWING:
		eng_emit(e, "protected", m->text);
		break;
	case EE_FAIL:
		eng_fire(e, m->event, NULL);
		eng_emit(e, "failed", m->text);
		break;
	default:
		eng_fire(e, m->event, NULL);
		break;
	}
}

static int32_t on_msg(int32_t fd, int32_t revents, void *data)
{
	struct vft_eng *e = data;
	struct eng_msg m;

	(void)revents;
	while (read(fd, &m, sizeof(m)) == (ssize_t)sizeof(m)) {
		m.text[sizeof(m.text) - 1] = '\0';
		if (m.kind == EM_LOG || m.kind == EM_EVENT)
			af_log(AF_SS_VMFT, m.prio, "%s (at @%.6f)", m.text, m.at);
		if (m.kind == EM_EVENT)
			on_event(e, &m);
	}
	return 0;
}

/* ---- the guest ------------------------------------------------------------------ */

static int32_t on_serial(int32_t fd, int32_t revents, void *data);

static void serial_watch(struct vft_eng *e, bool on)
{
	if (e->q.serial_fd < 0)
		return;
	if (on)
		qb_loop_poll_add(e->loop, QB_LOOP_HIGH, e->q.serial_fd, POLLIN, e, on_serial);
	else
		qb_loop_poll_del(e->loop, e->q.serial_fd);
}

static int32_t on_serial(int32_t fd, int32_t revents, void *data)
{
	struct vft_eng *e = data;
	int rc = eng_serial_drain(e);

	(void)fd;
	(void)revents;
	if (rc == -ENOSPC) {
		/* output commit holds more than output_buffer: stop reading, so
		 * the guest's UART waits like a slow line instead of output
		 * being lost or released early */
		e->out.reading_paused = true;
		qb_loop_poll_del(e->loop, fd);
	} else if (rc < 0) {
		qb_loop_poll_del(e->loop, fd);
	}
	return 0;
}

static void check_child(struct vft_eng *e)
{
	int status;
	pid_t p;

	while ((p = waitpid(-1, &status, WNOHANG)) > 0) {
		char how[64];

		if (p != e->q.pid)
			continue;
		if (WIFSIGNALED(status))
			snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
		else
			snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
		if (e->q.serial_fd >= 0) {
			qb_loop_poll_del(e->loop, e->q.serial_fd);
			close(e->q.serial_fd);
			e->q.serial_fd = -1;
		}
		e->q.pid = 0;
		if (e->is_backup && af_fsm_state_name(&e->fsm) != state_names[ES_PROMOTING]) {
			af_warn("vmft %s: standby QEMU %s", e->vm->name, how);
			if (e->q.qmp) {
				vft_qmp_close(e->q.qmp);
				e->q.qmp = NULL;
			}
			continue;
		}
		af_err("vmft %s: QEMU pid %d %s: the guest is gone", e->vm->name, (int)p, how);
		/* the epoch thread still holds QMP: it stops on its own errors */
		eng_primary_stop(e);
		if (e->q.qmp) {
			vft_qmp_close(e->q.qmp);
			e->q.qmp = NULL;
		}
		eng_fire(e, EE_FAIL, NULL);
		eng_emit(e, "vm-failed", how);
	}
}

static int32_t on_signal(int32_t sig, void *data)
{
	struct vft_eng *e = data;

	if (sig == SIGCHLD) {
		check_child(e);
		return 0;
	}
	af_notice("vmft %s: signal %d: stopping", e->vm->name, sig);
	eng_emit(e, "quit", "by signal");
	qb_loop_stop(e->loop);
	return 0;
}

static void on_tick(void *data)
{
	struct vft_eng *e = data;
	qb_loop_timer_handle th;

	if (e->out.reading_paused && e->q.serial_fd >= 0) {
		pthread_mutex_lock(&e->out.lock);
		bool room = e->out.held < e->out.limit;
		pthread_mutex_unlock(&e->out.lock);
		if (room) {
			e->out.reading_paused = false;
			serial_watch(e, true);
		}
	}
	qb_loop_timer_add(e->loop, QB_LOOP_LOW, 50 * AF_NS_PER_MS, e, on_tick, &th);
}

static int map_ram(struct vft_eng *e, const char *path, char *err, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *p;
	unsigned threads = e->scan_threads;
	int rc;

	if (fd < 0) {
		rc = -errno;
		snprintf(err, n, "%s: %s", path, strerror(errno));
		return rc;
	}
	p = mmap(NULL, e->vm->memory, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		rc = -errno;
		snprintf(err, n, "mmap %s: %s", path, strerror(errno));
		return rc;
	}
	e->ram = p;
	rc = vft_scan_init(&e->scan, e->ram, e->vm->memory, threads);
	if (rc < 0)
		snprintf(err, n, "page scan: %s", strerror(-rc));
	return rc;
}

/* Serial bytes and network frames: held for output commit, or not. */
void eng_hold_output(struct vft_eng *e, bool hold)
{
	eng_output_set_hold(&e->out, hold);
	eng_frameq_set_hold(&e->netq, hold);
}

static int become_primary(struct vft_eng *e, char *err, size_t n)
{
	int rc = map_ram(e, e->q.ram_path, err, n);

	if (rc < 0)
		return rc;
	e->is_backup = false;
	serial_watch(e, true);
	e->protect_wanted = true;
	return eng_primary_start(e, err, n);
}

static int start_primary(struct vft_eng *e, char *err, size_t n)
{
	char ram[4200], disk[4200];
	int rc;

	rc = eng_disk_pick_primary(e, disk, sizeof(disk), err, n);
	if (rc < 0)
		return rc;
	af_notice("vmft %s: the guest boots from %s", e->vm->name, disk);
	eng_disk_set_path(e, disk);
	snprintf(ram, sizeof(ram), "%s/ram.primary", e->dir);
	unlink(ram);
	eng_hold_output(e, false);
	rc = eng_qemu_start(e, ram, false, err, n);
	if (rc < 0)
		return rc;
	eng_fire(e, EE_QEMU_UP, NULL);
	rc = eng_net_attach(e, err, n);
	if (rc < 0)
		return rc;
	return become_primary(e, err, n);
}

static void net_after_promote(void *data)
{
	struct vft_eng *e = data;
	char err[300];

	if (eng_net_attach(e, err, sizeof(err)) < 0)
		af_err("vmft %s: the guest has no network: %s", e->vm->name, err);
	eng_frameq_set_hold(&e->netq, false);
	eng_net_announce(e);
}

static int promote(struct vft_eng *e, char *err, size_t n)
{
	int rc;

	eng_fire(e, EE_PROMOTE, "promotion ordered");
	rc = eng_backup_promote(e, err, n);
	if (rc < 0) {
		af_err("vmft %s: promotion failed: %s", e->vm->name, err);
		eng_qemu_kill(e);
		eng_fire(e, EE_FAIL, NULL);
		eng_emit(e, "failed", err);
		return rc;
	}
	/* nothing can roll this guest back any more: its output goes out at
	 * once; its frames once the network is attached, right after the
	 * answer (putting an interface in promiscuous mode takes milliseconds
	 * the promotion need not wait for: the frames wait in the queue) */
	eng_output_set_hold(&e->out, false);
	rc = become_primary(e, err, n);
	qb_loop_job_add(e->loop, QB_LOOP_HIGH, e, net_after_promote);
	eng_fire(e, EE_PROMOTED, NULL);
	eng_emit(e, "promoted", "");
	return rc;
}

/* ---- control socket --------------------------------------------------------------- */

static json_object *status_json(struct vft_eng *e)
{
	json_object *o = json_object_new_object();
	struct eng_stats st;
	struct eng_disk d;
	json_object *dj = json_object_new_object();
	double now = af_mono_s();
	bool link;

	pthread_mutex_lock(&e->lock);
	st = e->st;
	d = e->disk;
	link = e->is_backup ? e->conn_fd >= 0 : false;
	pthread_mutex_unlock(&e->lock);
	json_object_object_add(dj, "path", json_object_new_string(d.path));
	json_object_object_add(dj, "attached", json_object_new_boolean(d.conn_fd >= 0));
	json_object_object_add(dj, "reads", json_object_new_int64((int64_t)d.reads));
	json_object_object_add(dj, "writes", json_object_new_int64((int64_t)d.writes));
	json_object_object_add(dj, "bytes_written",
	                       json_object_new_int64((int64_t)d.bytes_written));
	json_object_object_add(dj, "flushes", json_object_new_int64((int64_t)d.flushes));
	json_object_object_add(dj, "errors", json_object_new_int64((int64_t)d.errors));
	json_object_object_add(dj, "write_p50_us",
	                       json_object_new_double(eng_ring_pct(&d.write_us, 50)));
	json_object_object_add(dj, "write_p99_us",
	                       json_object_new_double(eng_ring_pct(&d.write_us, 99)));
	json_object_object_add(dj, "sync_bytes",
	                       json_object_new_int64((int64_t)st.disk_sync_bytes));
	if (!e->is_backup)
		link = e->fsm.state == ES_SYNCING || e->fsm.state == ES_PROTECTED;
	json_object_object_add(o, "vm", json_object_new_string(e->vm->name));
	json_object_object_add(o, "role",
	                       json_object_new_string(e->is_backup ? "backup" : "primary"));
	json_object_object_add(o, "state", json_object_new_string(af_fsm_state_name(&e->fsm)));
	json_object_object_add(o, "blade", json_object_new_int((int)e->local_slot));
	json_object_object_add(o, "peer_blade", json_object_new_int((int)e->peer_slot));
	json_object_object_add(o, "link", json_object_new_string(link ? "up" : "down"));
	json_object_object_add(o, "epoch", json_object_new_int64((int64_t)st.last_epoch));
	json_object_object_add(o, "acked_epoch", json_object_new_int64((int64_t)st.acked_epoch));
	json_object_object_add(o, "commit_age_ms",
	                       json_object_new_double(st.last_commit_at > 0
	                                                      ? (now - st.last_commit_at) * 1e3
	                                                      : -1));
	json_object_object_add(o, "epoch_period_ms",
	                       json_object_new_int64((int64_t)eng_epoch_ms(e)));
	json_object_object_add(o, "pause_p50_ms",
	                       json_object_new_double(eng_ring_pct(&st.pause_ms, 50)));
	json_object_object_add(o, "pause_p99_ms",
	                       json_object_new_double(eng_ring_pct(&st.pause_ms, 99)));
	json_object_object_add(o, "bytes_per_epoch",
	                       json_object_new_int64((int64_t)eng_ring_pct(&st.bytes, 50)));
	json_object_object_add(o, "bytes_last_epoch",
	                       json_object_new_int64((int64_t)st.bytes_last_epoch));
	json_object_object_add(o, "pages_last_epoch",
	                       json_object_new_int64((int64_t)st.pages_last_epoch));
	json_object_object_add(o, "devstate_bytes",
	                       json_object_new_int64((int64_t)st.devstate_bytes));
	json_object_object_add(o, "bytes_total", json_object_new_int64((int64_t)st.bytes_total));
	json_object_object_add(o, "epochs_sent", json_object_new_int64((int64_t)st.epochs_sent));
	json_object_object_add(o, "epochs_acked", json_object_new_int64((int64_t)st.epochs_acked));
	json_object_object_add(o, "epochs_committed",
	                       json_object_new_int64((int64_t)st.epochs_committed));
	json_object_object_add(o, "full_syncs", json_object_new_int64((int64_t)st.syncs));
	json_object_object_add(o, "promote_ms", json_object_new_double(st.promote_ms));
	json_object_object_add(o, "qemu_pid", json_object_new_int((int)e->q.pid));
	json_object_object_add(o, "events_last_epoch",
	                       json_object_new_int64((int64_t)st.events_last_epoch));
	json_object_object_add(o, "events_total", json_object_new_int64((int64_t)st.events_total));
	json_object_object_add(o, "disk", dj);
	json_object_object_add(o, "template", eng_tmpl_json(e));
	{
		json_object *sj = json_object_new_object();
		char id[20];

		snprintf(id, sizeof(id), "%016llx", (unsigned long long)st.sync_tmpl_id);
		json_object_object_add(sj, "ms", json_object_new_double(st.sync_ms));
		json_object_object_add(sj, "handshake_ms", json_object_new_double(st.sync_hs_ms));
		json_object_object_add(sj, "ram_ms", json_object_new_double(st.sync_ram_ms));
		json_object_object_add(sj, "disk_ms", json_object_new_double(st.sync_disk_ms));
		json_object_object_add(sj, "pages_sent",
		                       json_object_new_int64((int64_t)st.sync_pages));
		json_object_object_add(sj, "pages_from_template",
		                       json_object_new_int64((int64_t)st.sync_tmpl_pages));
		json_object_object_add(sj, "disk_bytes_sent",
		                       json_object_new_int64((int64_t)st.disk_sync_bytes));
		json_object_object_add(sj, "template",
		                       json_object_new_string(st.sync_tmpl_id ? id : ""));
		json_object_object_add(o, "last_sync", sj);
	}
	{
		json_object *tj = json_object_new_object();

		json_object_object_add(tj, "zerocopy", json_object_new_boolean(st.zc_on));
		json_object_object_add(tj, "zc_sends", json_object_new_int64((int64_t)st.zc_sends));
		json_object_object_add(tj, "zc_copied",
		                       json_object_new_int64((int64_t)st.zc_copied));
		json_object_object_add(tj, "copy_sends",
		                       json_object_new_int64((int64_t)st.copy_sends));
		json_object_object_add(tj, "page_bytes",
		                       json_object_new_int64((int64_t)st.tx_page_bytes));
		json_object_object_add(tj, "cpu_ms",
		                       json_object_new_double((double)st.tx_cpu_ns / 1e6));
		json_object_object_add(
		        tj, "cpu_ms_per_gib",
		        json_object_new_double(
		                st.tx_page_bytes
		                        ? (double)st.tx_cpu_ns / 1e6 /
		                                  ((double)st.tx_page_bytes / (double)(1u << 30))
		                        : 0));
		json_object_object_add(tj, "authenticated",
		                       json_object_new_boolean(e->authenticate));
		json_object_object_add(tj, "mac_cpu_ms",
		                       json_object_new_double((double)st.tx_mac_ns / 1e6));
		json_object_object_add(tj, "rx_mac_cpu_ms",
		                       json_object_new_double((double)st.rx_mac_ns / 1e6));
		json_object_object_add(tj, "send_p50_ms",
		                       json_object_new_double(eng_ring_pct(&st.send_ms, 50)));
		json_object_object_add(tj, "send_p99_ms",
		                       json_object_new_double(eng_ring_pct(&st.send_ms, 99)));
		json_object_object_add(o, "transmission", tj);
	}
	json_object_object_add(o, "frozen", json_object_new_boolean(st.frozen_epoch != 0));
	json_object_object_add(o, "frozen_epoch", json_object_new_int64((int64_t)st.frozen_epoch));
	if (e->vm->nic[0] != '\0') {
		json_object *nj = json_object_new_object();

		pthread_mutex_lock(&e->netq.lock);
		json_object_object_add(
		        nj, "held_frames",
		        json_object_new_int64((int64_t)(e->netq.in_total - e->netq.out_total)));
		json_object_object_add(nj, "held_bytes",
		                       json_object_new_int64((int64_t)e->netq.len));
		json_object_object_add(nj, "dropped",
		                       json_object_new_int64((int64_t)e->netq.dropped));
		json_object_object_add(nj, "hold_p50_ms",
		                       json_object_new_double(eng_ring_pct(&e->netq.hold_ms, 50)));
		json_object_object_add(nj, "hold_p99_ms",
		                       json_object_new_double(eng_ring_pct(&e->netq.hold_ms, 99)));
		pthread_mutex_unlock(&e->netq.lock);
		json_object_object_add(nj, "mac", json_object_new_string(e->vm->mac));
		json_object_object_add(nj, "interface",
		                       json_object_new_string(e->vm->net_interface));
		json_object_object_add(nj, "tx_frames",
		                       json_object_new_int64((int64_t)__atomic_load_n(
		                               &e->net.tx_frames, __ATOMIC_RELAXED)));
		json_object_object_add(nj, "tx_errors",
		                       json_object_new_int64((int64_t)__atomic_load_n(
		                               &e->net.tx_errors, __ATOMIC_RELAXED)));
		json_object_object_add(nj, "rx_frames",
		                       json_object_new_int64((int64_t)e->net.rx_frames));
		json_object_object_add(nj, "rx_dropped",
		                       json_object_new_int64((int64_t)e->net.rx_dropped));
		json_object_object_add(nj, "announcements",
		                       json_object_new_int64((int64_t)e->net.announcements));
		json_object_object_add(o, "net", nj);
	}
	pthread_mutex_lock(&e->out.lock);
	json_object_object_add(o, "output_held", json_object_new_int64((int64_t)e->out.held));
	json_object_object_add(o, "output_released",
	                       json_object_new_int64((int64_t)e->out.released_total));
	pthread_mutex_unlock(&e->out.lock);
	if (e->store) {
		struct vft_store_info info;

		vft_store_info(e->store, &info);
		json_object_object_add(o, "committed_epoch",
		                       json_object_new_int64((int64_t)info.epoch));
		json_object_object_add(o, "generation", json_object_new_int64((int64_t)info.gen));
		json_object_object_add(o, "committed_disk", json_object_new_string(info.disk_path));
		json_object_object_add(o, "committed_ram", json_object_new_string(info.ram_path));
	}
	if (!e->is_backup)
		json_object_object_add(o, "ram_path", json_object_new_string(e->q.ram_path));
	return o;
}

static void reply(struct vft_eng *e, unsigned i, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, 0);
	struct iovec iov[2] = {{.iov_base = (void *)s, .iov_len = strlen(s)},
	                       {.iov_base = "\n", .iov_len = 1}};

	if (eng_write_all(e->clients[i], iov, 2) < 0)
		af_debug("vmft %s: control client gone before the answer", e->vm->name);
	json_object_put(o);
}

static json_object *error_obj(const char *prefix, const char *arg)
{
	char buf[600];
	json_object *o = json_object_new_object();

	snprintf(buf, sizeof(buf), "%s%s", prefix, arg);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	json_object_object_add(o, "error", json_object_new_string(buf));
	return o;
}

static json_object *ok_obj(void)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

/* The raw per-epoch samples, oldest first: for benchmarks, which want
 * their own percentiles over exactly the epochs they watched. */
static json_object *ring_json(const struct eng_ring *r)
{
	json_object *a = json_object_new_array();
	uint32_t first = r->n < ENG_SAMPLES ? 0 : r->next;

	for (uint32_t k = 0; k < r->n; k++)
		json_object_array_add(a, json_object_new_double(r->v[(first + k) % ENG_SAMPLES]));
	return a;
}

static json_object *samples_json(struct vft_eng *e)
{
	json_object *o = json_object_new_object();

	pthread_mutex_lock(&e->lock);
	json_object_object_add(o, "epoch", json_object_new_int64((int64_t)e->st.last_epoch));
	json_object_object_add(o, "pause_ms", ring_json(&e->st.pause_ms));
	json_object_object_add(o, "scan_ms", ring_json(&e->st.scan_ms));
	json_object_object_add(o, "devstate_ms", ring_json(&e->st.dev_ms));
	json_object_object_add(o, "bytes", ring_json(&e->st.bytes));
	json_object_object_add(o, "send_ms", ring_json(&e->st.send_ms));
	pthread_mutex_unlock(&e->lock);
	json_object_object_add(o, "ok", json_object_new_boolean(1));
	return o;
}

static void handle_command(struct vft_eng *e, unsigned i, const char *line)
{
	json_object *req = json_tokener_parse(line), *cmd = NULL, *force = NULL;
	const char *c;
	char err[512];

	if (req == NULL || !json_object_is_type(req, json_type_object) ||
	    !json_object_object_get_ex(req, "cmd", &cmd) ||
	    !json_object_is_type(cmd, json_type_string)) {
		af_warn("vmft %s: control: malformed request rejected", e->vm->name);
		reply(e, i, error_obj("", "malformed request: want {\"cmd\": \"...\"}"));
		goto out;
	}
	c = json_object_get_string(cmd);
	json_object_object_get_ex(req, "force", &force);
	if (strcmp(c, "status") == 0) {
		json_object *o = status_json(e);

		json_object_object_add(o, "ok", json_object_new_boolean(1));
		reply(e, i, o);
	} else if (strcmp(c, "samples") == 0) {
		reply(e, i, samples_json(e));
	} else if (strcmp(c, "subscribe") == 0) {
		json_object *o = ok_obj();

		e->client_sub[i] = true;
		json_object_object_add(o, "state",
		                       json_object_new_string(af_fsm_state_name(&e->fsm)));
		reply(e, i, o);
	} else if (strcmp(c, "promote") == 0) {
		if (!e->is_backup) {
			reply(e, i, error_obj("", "not a backup: nothing to promote"));
		} else if (e->conn_fd >= 0 && !(force && json_object_get_boolean(force))) {
			/* a primary still sending epochs is alive: promoting now
			 * would make two copies of the guest */
			reply(e, i,
			      error_obj("", "refused: the primary is still connected "
			                    "and sending epochs (fence it first)"));
		} else if (promote(e, err, sizeof(err)) < 0) {
			reply(e, i, error_obj("promotion failed: ", err));
		} else {
			json_object *o = ok_obj();

			json_object_object_add(o, "epoch",
			                       json_object_new_int64((int64_t)e->st.last_epoch));
			json_object_object_add(o, "promote_ms",
			                       json_object_new_double(e->st.promote_ms));
			reply(e, i, o);
		}
	} else if (strcmp(c, "unprotect") == 0 || strcmp(c, "release") == 0) {
		if (e->is_backup) {
			reply(e, i, error_obj(c, ": only a primary has output to release"));
			goto out;
		}
		/* a protecting session holds each epoch's output for its
		 * acknowledgement: releasing it early would let a failover take
		 * back what peers saw (that is what unprotect is for). A release
		 * ordered for a lost backup that is back meanwhile has nothing
		 * to do. */
		if (c[0] == 'r' && (e->fsm.state == ES_PROTECTED || e->fsm.state == ES_SYNCING)) {
			json_object *o = ok_obj();

			af_notice("vmft %s: release: protected (%s), the output stays held until "
			          "acknowledged",
			          e->vm->name, af_fsm_state_name(&e->fsm));
			json_object_object_add(o, "released", json_object_new_boolean(0));
			json_object_object_add(
			        o, "note",
			        json_object_new_string(
			                "protected: the output waits for the backup's "
			                "acknowledgement (unprotect stops protecting)"));
			reply(e, i, o);
			goto out;
		}
		if (c[0] == 'u') {
			pthread_mutex_lock(&e->lock);
			e->protect_wanted = false;
			__atomic_add_fetch(&e->protect_gen, 1, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&e->wake);
			pthread_mutex_unlock(&e->lock);
			eng_fire(e, EE_UNPROTECT, "protection stopped by the manager");
		}
		af_notice("vmft %s: held output released by the manager's order", e->vm->name);
		eng_hold_output(e, false);
		reply(e, i, ok_obj());
	} else if (strcmp(c, "protect") == 0) {
		if (e->is_backup) {
			reply(e, i, error_obj("", "a backup protects nothing"));
			goto out;
		}
		pthread_mutex_lock(&e->lock);
		e->protect_wanted = true;
		pthread_cond_broadcast(&e->wake);
		pthread_mutex_unlock(&e->lock);
		reply(e, i, ok_obj());
	} else if (strcmp(c, "freeze") == 0 || strcmp(c, "thaw") == 0) {
		/* a consistent cut for checks: the next epoch is captured and
		 * acknowledged with the guest left stopped, until thaw */
		if (e->is_backup) {
			reply(e, i, error_obj("", "a backup runs no guest"));
			goto out;
		}
		pthread_mutex_lock(&e->lock);
		e->freeze_wanted = c[0] == 'f';
		pthread_cond_broadcast(&e->wake);
		pthread_mutex_unlock(&e->lock);
		af_notice("vmft %s: %s ordered", e->vm->name, c);
		reply(e, i, ok_obj());
	} else if (strcmp(c, "zerocopy") == 0) {
		/* {"cmd":"zerocopy","on":false}: page batches copied from the
		 * next one on; true: zero-copy forced, even where the kernel
		 * copies anyway (a comparison, or a kernel that misbehaves) */
		json_object *on = NULL;

		if (req == NULL || !json_object_object_get_ex(req, "on", &on) ||
		    !json_object_is_type(on, json_type_boolean)) {
			reply(e, i, error_obj("", "zerocopy wants \"on\": true or false"));
			goto out;
		}
		__atomic_store_n(&e->zc_mode, json_object_get_boolean(on) ? ENG_ZC_ON : ENG_ZC_OFF,
		                 __ATOMIC_RELAXED);
		af_notice("vmft %s: zero-copy %s by order", e->vm->name,
		          json_object_get_boolean(on) ? "on" : "off");
		reply(e, i, ok_obj());
	} else if (strcmp(c, "template") == 0) {
		/* a refresh now (continuous templating does it every
		 * template_interval): answered at once, the status shows it */
		if (eng_tmpl_request(e, err, sizeof(err)) < 0) {
			reply(e, i, error_obj("", err));
		} else {
			af_notice("vmft %s: template refresh ordered", e->vm->name);
			reply(e, i, ok_obj());
		}
	} else if (strcmp(c, "quit") == 0) {
		/* a stop by order: the manager must not start it again */
		eng_emit(e, "quit", "by order");
		reply(e, i, ok_obj());
		e->quitting = true;
		qb_loop_stop(e->loop);
	} else {
		reply(e, i, error_obj("unknown command: ", c));
	}
out:
	if (req)
		json_object_put(req);
}

static void drop_client(struct vft_eng *e, unsigned i)
{
	qb_loop_poll_del(e->loop, e->clients[i]);
	close(e->clients[i]);
	e->clients[i] = -1;
	e->client_len[i] = 0;
	e->client_sub[i] = false;
}

static int32_t on_client(int32_t fd, int32_t revents, void *data)
{
	struct vft_eng *e = data;
	unsigned i;
	ssize_t r;

	(void)revents;
	for (i = 0; i < AF_ARRAY_SIZE(e->clients) && e->clients[i] != fd; i++)
		;
	if (i == AF_ARRAY_SIZE(e->clients))
		return 0;
	r = recv(fd, e->client_buf[i] + e->client_len[i],
	         sizeof(e->client_buf[i]) - 1 - e->client_len[i], MSG_DONTWAIT);
	if (r <= 0) {
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		drop_client(e, i);
		return 0;
	}
	e->client_len[i] += (size_t)r;
	for (;;) {
		char *nl = memchr(e->client_buf[i], '\n', e->client_len[i]);
		size_t used;

		if (nl == NULL) {
			if (e->client_len[i] >= sizeof(e->client_buf[i]) - 1) {
				af_warn("vmft %s: control: request over %zu bytes rejected",
				        e->vm->name, sizeof(e->client_buf[i]) - 1);
				drop_client(e, i);
			}
			return 0;
		}
		*nl = '\0';
		used = (size_t)(nl - e->client_buf[i]) + 1;
		handle_command(e, i, e->client_buf[i]);
		if (e->clients[i] < 0)
			return 0;
		memmove(e->client_buf[i], e->client_buf[i] + used, e->client_len[i] - used);
		e->client_len[i] -= used;
	}
}

static int32_t on_accept(int32_t fd, int32_t revents, void *data)
{
	struct vft_eng *e = data;
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	unsigned i;

	(void)revents;
	if (c < 0)
		return 0;
	/* the socket lives in a 0700 directory; the credential check says so
	 * again in case the directory mode is ever relaxed */
	if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != 0) {
		af_warn("vmft %s: control connection from uid %d refused", e->vm->name,
		        (int)cr.uid);
		close(c);
		return 0;
	}
	for (i = 0; i < AF_ARRAY_SIZE(e->clients) && e->clients[i] >= 0; i++)
		;
	if (i == AF_ARRAY_SIZE(e->clients)) {
		af_warn("vmft %s: control: too many clients", e->vm->name);
		close(c);
		return 0;
	}
	e->clients[i] = c;
	e->client_len[i] = 0;
	e->client_sub[i] = false;
	qb_loop_poll_add(e->loop, QB_LOOP_MED, c, POLLIN, e, on_client);
	return 0;
}

static int ctl_open(struct vft_eng *e, char *err, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int rc;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/ctl.sock", e->dir) >=
	    sizeof(sa.sun_path)) {
		snprintf(err, n, "state_dir too long for a socket path: %s", e->dir);
		return -ENAMETOOLONG;
	}
	unlink(sa.sun_path);
	e->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (e->ctl_fd < 0 || bind(e->ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(e->ctl_fd, 8) < 0) {
		rc = -errno;
		snprintf(err, n, "%s: %s", sa.sun_path, strerror(errno));
		return rc;
	}
	chmod(sa.sun_path, 0600);
	qb_loop_poll_add(e->loop, QB_LOOP_MED, e->ctl_fd, POLLIN, e, on_accept);
	return 0;
}

/* ---- start-up -------------------------------------------------------------------- */

static int mkdirs(const char *path)
{
	char tmp[4096];

	af_strlcpy(tmp, path, sizeof(tmp));
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return chmod(tmp, 0700) < 0 ? -errno : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: atca-vmft [-c CONFIG] -v VM -r primary|backup [-b SLOT] [-f] "
	           "[-l LOGFILE]\n"
	           "  the checkpoint/replay engine of one protected VM on this blade;\n"
	           "  normally started by atca-ftd (see atca-vmft(8))\n");
}

struct opts {
	const char *config, *vm, *role, *logfile;
	unsigned slot;
	bool foreground;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
	                                   {"vm", required_argument, NULL, 'v'},
	                                   {"role", required_argument, NULL, 'r'},
	                                   {"blade", required_argument, NULL, 'b'},
	                                   {"foreground", no_argument, NULL, 'f'},
	                                   {"logfile", required_argument, NULL, 'l'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {"version", no_argument, NULL, 'V'},
	                                   {NULL, 0, NULL, 0}};
	int c;
	uint64_t v;

	o->config = AF_CONFIG_FILE;
	while ((c = getopt_long(argc, argv, "c:v:r:b:fl:hV", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'v':
			o->vm = optarg;
			break;
		case 'r':
			o->role = optarg;
			break;
		case 'b':
			if (af_parse_u64(optarg, 1, AF_MAX_BLADES, &v) < 0) {
				fprintf(stderr, "atca-vmft: bad slot '%s'\n", optarg);
				return 2;
			}
			o->slot = (unsigned)v;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'l':
			o->logfile = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("atca-vmft %s\n", af_version());
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (o->vm == NULL || o->role == NULL ||
	    (strcmp(o->role, "primary") != 0 && strcmp(o->role, "backup") != 0) || optind != argc) {
		usage(stderr);
		return 2;
	}
	return 0;
}

static int setup(struct vft_eng *e, const struct opts *o, char *err, size_t n)
{
	struct af_cfg_diag diag;
	const struct af_cfg_blade *lb, *pb;
	char host[256];
	int rc;

	rc = af_cfg_load(o->config, 0, &e->cfg, &diag);
	if (rc < 0) {
		snprintf(err, n, "%s: %s", o->config,
		         diag.n_errors ? diag.errors[0] : strerror(-rc));
		return rc;
	}
	for (unsigned i = 0; i < e->cfg->n_vms; i++)
		if (strcmp(e->cfg->vms[i].name, o->vm) == 0)
			e->vm = &e->cfg->vms[i];
	if (e->vm == NULL || e->vm->protection != AF_PROT_FT || e->vm->disk[0] == '\0') {
		snprintf(err, n, "vm '%s': not a protected vm of %s (needs protection ft and disk)",
		         o->vm, o->config);
		return -ENOENT;
	}
	e->local_slot = o->slot ? o->slot : e->cfg->daemon.local_blade;
	if (e->local_slot == 0 && gethostname(host, sizeof(host)) == 0 &&
	    (lb = af_cfg_blade_by_host(e->cfg, host)) != NULL)
		e->local_slot = lb->slot;
	lb = af_cfg_blade_by_slot(e->cfg, e->local_slot);
	if (lb == NULL) {
		snprintf(err, n, "cannot tell which blade this is (use --blade)");
		return -ENOENT;
	}
	e->peer_slot = af_cfg_partner(e->cfg, e->local_slot);
	pb = af_cfg_blade_by_slot(e->cfg, e->peer_slot);
	if (pb == NULL) {
		snprintf(err, n, "blade %u has no partner for the backup", e->local_slot);
		return -ENOENT;
	}
	af_strlcpy(e->peer_addr, pb->replication_address[0] ? pb->replication_address : pb->host,
	           sizeof(e->peer_addr));
	af_strlcpy(e->listen_addr, lb->replication_address[0] ? lb->replication_address : lb->host,
	           sizeof(e->listen_addr));
	e->port = (uint16_t)e->vm->port;
	e->scan_threads = e->cfg->vmft.scan_threads;
	if (e->scan_threads == 0) {
		long c = sysconf(_SC_NPROCESSORS_ONLN);

		e->scan_threads = c < 1 ? 1 : c > 8 ? 8 : (unsigned)c;
	}
	if ((size_t)snprintf(e->dir, sizeof(e->dir), "%s/%s", e->cfg->vmft.state_dir,
	                     e->vm->name) >= 80) {
		snprintf(err, n, "vmft state_dir '%s' is too long (sockets live in it)",
		         e->cfg->vmft.state_dir);
		return -ENAMETOOLONG;
	}
	rc = mkdirs(e->dir);
	if (rc < 0) {
		snprintf(err, n, "%s: %s", e->dir, strerror(-rc));
		return rc;
	}
	if ((size_t)snprintf(e->disk_dir, sizeof(e->disk_dir), "%s/%s", e->cfg->vmft.disk_dir,
	                     e->vm->name) >= sizeof(e->disk_dir) - 32) {
		snprintf(err, n, "vmft disk_dir '%s' is too long", e->cfg->vmft.disk_dir);
		return -ENAMETOOLONG;
	}
	e->config_hash = eng_config_hash(e);
	e->authenticate = e->cfg->vmft.authenticate;
	af_strlcpy(e->key_path, e->vm->key_file[0] ? e->vm->key_file : e->cfg->vmft.key_file,
	           sizeof(e->key_path));
	if (e->authenticate) {
		char kerr[300];

		rc = af_cred_load_key(e->key_path, e->key.k, sizeof(e->key.k), &e->key.len, kerr,
		                      sizeof(kerr));
		if (rc < 0) {
			snprintf(err, n,
			         "vm '%s': replication key file %s: %s (vmft.authenticate is on)",
			         e->vm->name, e->key_path, kerr);
			return rc;
		}
	}
	return 0;
}

static int lock_pidfile(struct vft_eng *e, char *err, size_t n)
{
	char path[4200], buf[32];
	int fd;

	snprintf(path, sizeof(path), "%s/engine.pid", e->dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, n, "%s: %s", path,
		         errno == EWOULDBLOCK ? "another engine runs this vm here"
		                              : strerror(errno));
		if (fd >= 0)
			close(fd);
		return -EBUSY;
	}
	if (ftruncate(fd, 0) == 0) {
		int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

		(void)!write(fd, buf, (size_t)len);
	}
	return fd; /* kept open: the lock lives as long as the engine */
}

int main(int argc, char **argv)
{
	struct vft_eng eng, *e = &eng;
	struct opts o = {0};
	struct af_log_settings ls;
	char err[600], logpath[4200];
	qb_loop_timer_handle th;
	int rc, pidfd = -1, status = 1;

	memset(e, 0, sizeof(*e));
	e->q.serial_fd = e->mig_listen_fd = e->listen_fd = e->conn_fd = e->ctl_fd = -1;
	e->disk.listen_fd = e->disk.conn_fd = -1;
	e->net.qfd = e->net.pfd = -1;
	pthread_mutex_init(&e->net.rxlock, NULL);
	vft_evlog_init(&e->evlog);
	e->msg_pipe[0] = e->msg_pipe[1] = -1;
	for (unsigned i = 0; i < AF_ARRAY_SIZE(e->clients); i++)
		e->clients[i] = -1;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->wake, NULL);
	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	if (af_init("atca-vmft") < 0)
		return 1;
	if (setup(e, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "atca-vmft: %s\n", err);
		goto out;
	}
	af_cfg_log_settings(e->cfg, &ls);
	ls.to_stderr = o.foreground || ls.to_stderr;
	snprintf(logpath, sizeof(logpath), "%s/engine.log", e->dir);
	af_strlcpy(ls.logfile, o.logfile ? o.logfile : logpath, sizeof(ls.logfile));
	ls.to_logfile = true;
	af_log_apply(&ls);
	pidfd = lock_pidfile(e, err, sizeof(err));
	if (pidfd < 0) {
		af_err("vmft %s: %s", e->vm->name, err);
		goto out;
	}
	eng_output_init(&e->out, (size_t)e->cfg->vmft.output_buffer);
	snprintf(logpath, sizeof(logpath), "%s/%s.console", e->cfg->vmft.console_dir, e->vm->name);
	mkdirs(e->cfg->vmft.console_dir);
	e->out.console_fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (e->out.console_fd < 0)
		af_warn("vmft %s: console %s: %s (output is released nowhere)", e->vm->name,
		        logpath, strerror(errno));
	e->loop = qb_loop_create();
	if (e->loop == NULL || pipe2(e->msg_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		af_err("vmft %s: cannot create the main loop", e->vm->name);
		goto out;
	}
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		e->session = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		             ((uint64_t)getpid() << 16);
	}
	e->next_epoch = 1;
	qb_loop_poll_add(e->loop, QB_LOOP_HIGH, e->msg_pipe[0], POLLIN, e, on_msg);
	qb_loop_signal_add(e->loop, QB_LOOP_HIGH, SIGCHLD, e, on_signal, NULL);
	qb_loop_signal_add(e->loop, QB_LOOP_HIGH, SIGTERM, e, on_signal, NULL);
	qb_loop_signal_add(e->loop, QB_LOOP_HIGH, SIGINT, e, on_signal, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ctl_open(e, err, sizeof(err)) < 0) {
		af_err("vmft %s: control socket: %s", e->vm->name, err);
		goto out;
	}
	e->is_backup = strcmp(o.role, "backup") == 0;
	if (!e->is_backup)
		crash_point_arm(e);
	af_fsm_init(&e->fsm, &fsm_def, e->is_backup ? ES_WAITING : ES_BOOTING, e->vm->name);
	af_notice("vmft %s: engine %s on blade %u (partner blade %u, replication %s:%u, epoch "
	          "%llu ms, %u scan threads, machine %016llx)",
	          e->vm->name, o.role, e->local_slot, e->peer_slot,
	          e->is_backup ? e->listen_addr : e->peer_addr, e->port,
	          (unsigned long long)eng_epoch_ms(e), e->scan_threads,
	          (unsigned long long)e->config_hash);
	if (e->authenticate)
		af_info("vmft %s: replication link authenticated with the key in %s (%zu bytes)",
		        e->vm->name, e->key_path, e->key.len);
	else
		af_warn("vmft %s: vmft.authenticate is off: the replication link does not "
		        "authenticate its peer (anyone who reaches it can feed a backup or "
		        "receive the guest's memory)",
		        e->vm->name);
	rc = eng_disk_start(e, err, sizeof(err));
	if (rc < 0) {
		af_err("vmft %s: disk server: %s", e->vm->name, err);
		goto out;
	}
	rc = eng_net_open(e, err, sizeof(err));
	if (rc < 0) {
		af_err("vmft %s: network: %s", e->vm->name, err);
		goto out;
	}
	eng_net_watch(e);
	eng_tmpl_start(e);
	if (e->is_backup) {
		rc = eng_backup_start(e, err, sizeof(err));
		if (rc == 0) {
			struct vft_store_info info;

			vft_store_info(e->store, &info);
			if (info.epoch > 0) {
				/* a committed image from an earlier primary: promotable */
				e->fsm.state = ES_ORPHANED;
				af_notice("vmft %s: committed epoch %llu found (generation %llu)",
				          e->vm->name, (unsigned long long)info.epoch,
				          (unsigned long long)info.gen);
				eng_standby_refresh(e);
			}
		}
	} else {
		rc = start_primary(e, err, sizeof(err));
	}
	if (rc < 0) {
		af_err("vmft %s: %s", e->vm->name, err);
		goto out;
	}
	qb_loop_timer_add(e->loop, QB_LOOP_LOW, 50 * AF_NS_PER_MS, e, on_tick, &th);
	qb_loop_run(e->loop);
	status = 0;
out:
	eng_tmpl_stop(e);
	if (e->loop) {
		eng_primary_stop(e);
		eng_backup_stop(e);
		eng_qemu_kill(e);
		eng_disk_stop(e);
		eng_net_close(e);
	}
	if (e->scan)
		vft_scan_fini(e->scan);
	if (e->ram)
		munmap(e->ram, e->vm->memory);
	if (e->store)
		vft_store_close(e->store);
	for (unsigned i = 0; i < AF_ARRAY_SIZE(e->clients); i++)
		if (e->clients[i] >= 0)
			close(e->clients[i]);
	if (e->ctl_fd >= 0) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/ctl.sock", e->dir);
		unlink(path);
		close(e->ctl_fd);
	}
	if (e->mig_listen_fd >= 0)
		close(e->mig_listen_fd);
	if (e->loop) {
		eng_output_fini(&e->out);
		qb_loop_destroy(e->loop);
	}
	if (e->msg_pipe[0] >= 0) {
		close(e->msg_pipe[0]);
		close(e->msg_pipe[1]);
	}
	if (pidfd >= 0)
		close(pidfd);
	vft_evlog_fini(&e->evlog);
	vft_key_wipe(&e->key);
	af_cfg_free(e->cfg);
	af_fini();
	return status;
}
