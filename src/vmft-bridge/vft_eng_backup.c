/*
 * atca-vmft, backup side: the receiver thread stages and commits the
 * primary's epochs (vft_store) and acknowledges them; promotion starts the
 * guest from the committed epoch.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft_eng.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "af_log.h"
#include "af_util.h"
#include "vft_qmp.h"
#include "vft_store.h"

struct bsess {
	struct vft_eng *e;
	int fd;
	uint32_t tx_seq;
	struct vft_rx rx;
	uint8_t *payload;
	uint64_t *pfns;
	double begun_at;
	uint64_t bytes;
	struct vft_auth auth;
	char peer[80];   /* the primary's address, for the log */
	uint64_t mac_ns; /* CPU the tags took, not yet in the stats */
};

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int send_simple(struct bsess *bs, uint16_t type, uint64_t epoch, const void *p, size_t len)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};

	return eng_send_frame(bs->fd, &bs->tx_seq, &bs->auth.tx, type, epoch, &iov, len ? 1 : 0);
}

/* WELCOME and the template's hashes: after HELLO, or after the primary
 * proved the key on an authenticated link (nothing about the backup's
 * state goes to a peer that did not). */
static int welcome(struct bsess *bs)
{
	struct vft_eng *e = bs->e;
	struct vft_welcome w = {0};
	struct vft_store_info info;
	uint8_t b[VFT_WELCOME_SIZE];
	int rc;

	vft_store_info(e->store, &info);
	w.committed_epoch = info.epoch;
	w.committed_session = info.session;
	eng_tmpl_offer(e, &bs->rx.hello, &w);
	bs->rx.tmpl_id = w.tmpl_id;
	bs->rx.tmpl_blocks = w.tmpl_blocks > 0;
	rc = send_simple(bs, VFT_F_WELCOME, 0, b, vft_welcome_encode(b, &w));
	if (rc == 0)
		rc = eng_tmpl_send_hashes(e, bs->fd, &bs->tx_seq, &bs->auth.tx);
	return rc;
}

/* The primary runs the same machine as this engine: else BYE, -EPROTO. */
static int hello_matches(struct bsess *bs, char *why, size_t n)
{
	struct vft_eng *e = bs->e;
	uint8_t bb[VFT_BYE_SIZE];

	if (strcmp(bs->rx.hello.vm, e->vm->name) == 0 && bs->rx.hello.ram_size == e->vm->memory &&
	    bs->rx.hello.config_hash == e->config_hash && bs->rx.hello.disk_size != 0)
		return 0;
	snprintf(why, n,
	         "HELLO for vm '%s' (%llu bytes, machine %016llx, disk %llu bytes) does not "
	         "match this engine (vm '%s', %llu bytes, machine %016llx, a disk)",
	         bs->rx.hello.vm, (unsigned long long)bs->rx.hello.ram_size,
	         (unsigned long long)bs->rx.hello.config_hash,
	         (unsigned long long)bs->rx.hello.disk_size, e->vm->name,
	         (unsigned long long)e->vm->memory, (unsigned long long)e->config_hash);
	send_simple(bs, VFT_F_BYE, 0, bb, vft_bye_encode(bb, 1));
	return -EPROTO;
}

/* Authenticated link, after HELLO: the backup's nonce and proof, sent
 * without a tag (the primary has no session key before it); the session
 * keys are set from here on. */
static int challenge(struct bsess *bs, const uint8_t *hello_raw)
{
	uint8_t nonce[VFT_NONCE_SIZE], msg[VFT_AUTH_SIZE];
	struct iovec iov = {.iov_base = msg, .iov_len = sizeof(msg)};
	int rc;

	vft_auth_set_hello(&bs->auth, hello_raw);
	rc = vft_auth_nonce(nonce);
	if (rc == 0)
		rc = vft_auth_backup_challenge(&bs->auth, nonce, msg);
	if (rc == 0)
		rc = eng_send_frame(bs->fd, &bs->tx_seq, NULL, VFT_F_AUTH, 0, &iov, 1);
	return rc;
}

/* One connection from a primary, frame by frame, until it breaks. */
static int serve(struct bsess *bs)
{
	struct vft_eng *e = bs->e;
	char why[200];
	int rc;

	vft_rx_init(&bs->rx);
	bs->rx.auth_required = e->authenticate;
	vft_auth_init(&bs->auth, &e->key, VFT_ROLE_BACKUP);
	for (;;) {
		uint8_t raw[VFT_HDR_SIZE];
		struct vft_hdr h;
		struct vft_rx_frame f;

		rc = eng_read_full(bs->fd, raw, sizeof(raw));
		if (rc < 0) {
			snprintf(why, sizeof(why), "%s",
			         rc == -EAGAIN ? "the primary went silent" : strerror(-rc));
			goto broken;
		}
		rc = vft_hdr_decode(raw, &h, why, sizeof(why));
		if (rc < 0)
			goto broken;
		if (h.length > 0) {
			rc = eng_read_full(bs->fd, bs->payload, h.length);
			if (rc < 0) {
				snprintf(why, sizeof(why), "%s frame truncated: %s",
				         vft_ftype_name(h.type),
				         rc == -EAGAIN ? "timeout" : strerror(-rc));
				goto broken;
			}
		}
		if (vft_frame_verify(raw, &h, bs->payload) != 0) {
			snprintf(why, sizeof(why), "checksum mismatch on %s frame %u of epoch %llu",
			         vft_ftype_name(h.type), h.seq, (unsigned long long)h.epoch);
			rc = -EBADMSG;
			goto broken;
		}
		{
			uint64_t c0 = vft_mac_on(&bs->auth.rx) ? thread_cpu_ns() : 0;

			rc = vft_mac_verify(&bs->auth.rx, raw, bs->payload, h.length);
			if (c0 != 0)
				bs->mac_ns += thread_cpu_ns() - c0;
		}
		if (rc != 0) {
			if (!bs->rx.authed)
				snprintf(
				        why, sizeof(why),
				        "the primary at %s failed authentication: bad MAC on its %s "
				        "frame (it does not hold this key)",
				        bs->peer, vft_ftype_name(h.type));
			else
				snprintf(why, sizeof(why),
				         "bad MAC on %s frame %u of epoch %llu from %s (not the "
				         "session's key: injected or altered)",
				         vft_ftype_name(h.type), h.seq, (unsigned long long)h.epoch,
				         bs->peer);
			rc = -EACCES;
			goto broken;
		}
		rc = vft_rx_step(&bs->rx, &h, bs->payload, &f, why, sizeof(why));
		if (rc < 0)
			goto broken;
		bs->bytes += VFT_HDR_SIZE + h.length;
		/* the template's copy ends before the epoch's log and its commit */
		if (f.action == VFT_RX_EVENTS || f.action == VFT_RX_DEVSTATE ||
		    f.action == VFT_RX_END) {
			rc = eng_tmpl_finish(e, why, sizeof(why));
			if (rc < 0) {
				uint8_t bb[VFT_BYE_SIZE];

				send_simple(bs, VFT_F_BYE, 0, bb, vft_bye_encode(bb, 2));
				goto broken;
			}
		}
		switch (f.action) {
		case VFT_RX_NONE:
			break;
		case VFT_RX_HELLO:
			/* on an authenticated link a stranger learns nothing, not
			 * even whether its machine matches: the check waits for the
			 * primary's proof */
			if (e->authenticate) {
				rc = challenge(bs, bs->payload);
				break;
			}
			rc = hello_matches(bs, why, sizeof(why));
			if (rc < 0)
				goto broken;
			rc = welcome(bs);
			break;
		case VFT_RX_AUTH:
			rc = vft_auth_backup_check(&bs->auth, f.auth, VFT_AUTH_SIZE, why,
			                           sizeof(why));
			if (rc < 0) {
				char r[200];

				snprintf(r, sizeof(r), "%s", why);
				snprintf(why, sizeof(why),
				         "the primary at %s failed authentication: %s", bs->peer,
				         r);
				goto broken;
			}
			vft_rx_auth_done(&bs->rx);
			eng_tlog(e, LOG_INFO, "vmft %s: the primary at %s authenticated",
			         e->vm->name, bs->peer);
			rc = hello_matches(bs, why, sizeof(why));
			if (rc < 0)
				goto broken;
			rc = welcome(bs);
			break;
		case VFT_RX_BEGIN:
			why[0] = '\0';
			if (f.begin.kind == VFT_EPOCH_FULL)
				rc = eng_tmpl_begin(e, bs->rx.hello.session, h.epoch,
				                    bs->rx.hello.disk_size, f.begin.flags, why,
				                    sizeof(why));
			else
				rc = vft_store_begin(e->store, bs->rx.hello.session, h.epoch, false,
				                     bs->rx.hello.disk_size);
			bs->begun_at = af_mono_s();
			if (rc == 0 && f.begin.kind == VFT_EPOCH_FULL)
				eng_post(e, EM_EVENT, LOG_NOTICE, EE_SYNC_BEGIN, h.epoch,
				         "vmft %s: full sync from the primary on blade %u begins "
				         "(epoch %llu%s)",
				         e->vm->name, e->peer_slot, (unsigned long long)h.epoch,
				         f.begin.flags ? ", on this blade's template" : "");
			if (rc < 0 && why[0] != '\0') {
				uint8_t bb[VFT_BYE_SIZE];

				send_simple(bs, VFT_F_BYE, 0, bb, vft_bye_encode(bb, 2));
				goto broken;
			}
			break;
		case VFT_RX_PAGES:
			for (uint32_t i = 0; i < f.pages.count; i++)
				bs->pfns[i] = vft_pages_pfn(&f.pages, i);
			rc = eng_tmpl_put_pages(e, f.pages.count, bs->pfns, f.pages.data);
			break;
		case VFT_RX_DEVSTATE:
			rc = vft_store_put_devstate(e->store, f.dev, f.dev_len);
			break;
		case VFT_RX_DISK:
			rc = eng_tmpl_put_disk(e, f.disk.offset, f.disk.data, f.disk.len);
			break;
		case VFT_RX_EVENTS:
			rc = vft_store_put_events(e->store, f.events, f.events_len);
			break;
		case VFT_RX_END: {
			struct vft_ack ack;
			uint8_t b[VFT_ACK_SIZE];
			double t0 = af_mono_s();
			struct vft_store_info info;

			if (e->test_disk_slow_ms)
				usleep(e->test_disk_slow_ms * 1000u);
			rc = e->test_disk_eio ? -EIO : vft_store_commit(e->store);
			if (rc < 0)
				break;
			ack.commit_us = (uint64_t)((af_mono_s() - t0) * 1e6);
			rc = send_simple(bs, VFT_F_ACK, h.epoch, b, vft_ack_encode(b, &ack));
			vft_store_info(e->store, &info);
			pthread_mutex_lock(&e->lock);
			e->st.epochs_committed++;
			e->st.last_epoch = h.epoch;
			e->st.last_commit_at = af_mono_s();
			e->st.pages_last_epoch = f.end.n_pages;
			e->st.bytes_last_epoch = bs->bytes;
			e->st.bytes_total += bs->bytes;
			e->st.devstate_bytes = f.end.devstate_len;
			e->st.events_last_epoch = f.end.n_events;
			e->st.events_total += f.end.n_events;
			e->st.rx_mac_ns += bs->mac_ns;
			bs->mac_ns = 0;
			eng_ring_add(&e->st.bytes, (double)bs->bytes);
			eng_ring_add(&e->st.send_ms, (af_mono_s() - t0) * 1e3);
			pthread_mutex_unlock(&e->lock);
			bs->bytes = 0;
			/* the template is in the new generation now */
			eng_tmpl_unpin(e);
			eng_tmpl_publish_source(e, info.ram_path, info.disk_path, info.epoch);
			eng_post(e, EM_EVENT, LOG_DEBUG, EE_COMMITTED, h.epoch,
			         "vmft %s: epoch %llu committed (%llu pages, %llu events, "
			         "generation %llu)",
			         e->vm->name, (unsigned long long)h.epoch,
			         (unsigned long long)f.end.n_pages,
			         (unsigned long long)f.end.n_events, (unsigned long long)info.gen);
			break;
		}
		case VFT_RX_BYE:
			snprintf(why, sizeof(why), "the primary closed the link (reason %u)",
			         f.bye_reason);
			rc = -ECONNRESET;
			goto broken;
		}
		if (rc < 0) {
			snprintf(why, sizeof(why), "%s of epoch %llu: %s", vft_ftype_name(h.type),
			         (unsigned long long)h.epoch, strerror(-rc));
			goto broken;
		}
	}
broken:
	vft_auth_fini(&bs->auth);
	/* before the store closes the files the copy writes */
	eng_tmpl_abort(e);
	eng_tmpl_unpin(e);
	vft_store_abort(e->store);
	if (!e->stop_epochs)
		eng_tlog(e, LOG_WARNING, "vmft %s: replication link from %s dropped: %s",
		         e->vm->name, bs->peer, why);
	return rc;
}

static void *rx_main(void *arg)
{
	struct vft_eng *e = arg;
	struct bsess bs = {.e = e};

	bs.payload = malloc(VFT_MAX_PAYLOAD);
	bs.pfns = malloc(sizeof(uint64_t) * VFT_BATCH_PAGES);
	if (bs.payload == NULL || bs.pfns == NULL) {
		eng_post(e, EM_EVENT, LOG_ERR, EE_FAIL, 0, "vmft %s: out of memory", e->vm->name);
		goto out;
	}
	while (!e->stop_epochs) {
		struct timeval tv;
		int one = 1, buf = 8 << 20;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[64] = "?", serv[16] = "?";
		int fd = accept4(e->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* listen socket shut down: promotion or exit */
		}
		getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), serv, sizeof(serv),
		            NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(bs.peer, sizeof(bs.peer), "%s:%s", host, serv);
		tv.tv_sec = (time_t)(e->cfg->vmft.heartbeat_ms / 1000);
		tv.tv_usec = (suseconds_t)(e->cfg->vmft.heartbeat_ms % 1000) * 1000;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		pthread_mutex_lock(&e->lock);
		e->conn_fd = fd;
		pthread_mutex_unlock(&e->lock);
		bs.fd = fd;
		bs.tx_seq = 0;
		bs.bytes = 0;
		bs.mac_ns = 0;
		serve(&bs);
		pthread_mutex_lock(&e->lock);
		e->conn_fd = -1;
		pthread_mutex_unlock(&e->lock);
		close(fd);
		/* a peer that never proved the key was never the primary: its
		 * end is no primary lost (the log has its refusal) */
		if (!e->stop_epochs && (bs.rx.authed || !bs.rx.auth_required))
			eng_post(e, EM_EVENT, LOG_WARNING, EE_LINK_LOST, 0,
			         "vmft %s: primary on blade %u lost", e->vm->name, e->peer_slot);
	}
out:
	free(bs.payload);
	free(bs.pfns);
	return NULL;
}

int eng_backup_start(struct vft_eng *e, char *err, size_t n)
{
	struct addrinfo hints = {
	        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res = NULL;
	char port[8], serr[256];
	int one = 1, rc;

	{
		const char *f = getenv("ATCA_VMFT_TEST_DISK");

		if (f && strcmp(f, "eio") == 0)
			e->test_disk_eio = true;
		else if (f && strncmp(f, "slow:", 5) == 0)
			e->test_disk_slow_ms = (unsigned)strtoul(f + 5, NULL, 10);
		if (f && (e->test_disk_eio || e->test_disk_slow_ms))
			af_warn("vmft %s: test fault: the backup's disk is %s", e->vm->name, f);
	}
	rc = vft_store_open(&e->store, e->dir, e->disk_dir, e->vm->memory, serr, sizeof(serr));
	if (rc < 0) {
		snprintf(err, n, "store %s: %s", e->dir, serr);
		return rc;
	}
	{
		struct vft_store_info info;

		vft_store_info(e->store, &info);
		if (info.gen != 0)
			eng_tmpl_publish_source(e, info.ram_path, info.disk_path, info.epoch);
	}
	/* before listening: a primary that connects at once finds it ready */
	eng_tmpl_prestage(e);
	snprintf(port, sizeof(port), "%u", e->port);
	if (getaddrinfo(e->listen_addr[0] ? e->listen_addr : NULL, port, &hints, &res) != 0 ||
	    res == NULL) {
		snprintf(err, n, "cannot resolve replication address %s", e->listen_addr);
		return -EADDRNOTAVAIL;
	}
	e->listen_fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (e->listen_fd < 0)
		goto fail;
	setsockopt(e->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(e->listen_fd, res->ai_addr, res->ai_addrlen) < 0 || listen(e->listen_fd, 2) < 0)
		goto fail;
	freeaddrinfo(res);
	e->stop_epochs = false;
	rc = pthread_create(&e->rx_thread, NULL, rx_main, e);
	if (rc != 0) {
		snprintf(err, n, "receiver thread: %s", strerror(rc));
		return -rc;
	}
	e->rx_running = true;
	return 0;
fail:
	rc = -errno;
	snprintf(err, n, "replication socket %s:%s: %s", e->listen_addr, port, strerror(errno));
	freeaddrinfo(res);
	if (e->listen_fd >= 0)
		close(e->listen_fd);
	e->listen_fd = -1;
	return rc;
}

void eng_backup_stop(struct vft_eng *e)
{
	if (!e->rx_running)
		return;
	pthread_mutex_lock(&e->lock);
	e->stop_epochs = true;
	if (e->conn_fd >= 0)
		shutdown(e->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&e->lock);
	shutdown(e->listen_fd, SHUT_RDWR);
	pthread_join(e->rx_thread, NULL);
	e->rx_running = false;
	close(e->listen_fd);
	e->listen_fd = -1;
}

/* A standby QEMU maps the committed RAM file and waits with -incoming defer:
 * promotion then only loads ~0.3 MB of device state instead of starting a
 * QEMU. A new generation (full sync) needs a new standby. */
void eng_standby_refresh(struct vft_eng *e)
{
	struct vft_store_info info;
	char err[300];

	if (!e->cfg->vmft.standby || e->store == NULL || !e->is_backup)
		return;
	vft_store_info(e->store, &info);
	if (info.gen == 0 || (e->q.pid > 0 && e->q.gen == info.gen))
		return;
	if (e->q.pid > 0)
		eng_qemu_kill(e);
	eng_disk_set_path(e, info.disk_path);
	if (eng_qemu_start(e, info.ram_path, true, err, sizeof(err)) < 0) {
		af_warn("vmft %s: standby QEMU: %s (promotion will start one)", e->vm->name, err);
		return;
	}
	e->q.gen = info.gen;
}

static int feed_devstate(struct vft_eng *e, const void *dev, size_t len, char *err, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct iovec iov = {.iov_base = (void *)dev, .iov_len = len};
	int fd, rc = -ETIMEDOUT;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/in.sock", e->dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* QEMU listens once migrate-incoming has returned */
	for (int i = 0; i < 2000; i++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			rc = 0;
			break;
		}
		usleep(500);
	}
	if (rc == 0)
		rc = eng_write_all(fd, &iov, 1);
	if (rc < 0)
		snprintf(err, n, "device state to QEMU: %s", strerror(-rc));
	close(fd);
	return rc;
}

int eng_backup_promote(struct vft_eng *e, char *err, size_t n)
{
	struct vft_store_info info;
	const void *dev;
	size_t dev_len;
	char uri[4200], qerr[256], status[32];
	double t0 = af_mono_s();
	int rc;

	eng_backup_stop(e);
	vft_store_info(e->store, &info);
	if (info.gen == 0 || info.epoch == 0) {
		snprintf(err, n, "nothing committed: the backup never completed a full sync");
		return -ENODATA;
	}
	dev = vft_store_devstate(e->store, &dev_len);
	if (e->q.pid > 0 && (e->q.gen != info.gen || !e->q.incoming))
		eng_qemu_kill(e);
	if (e->q.pid <= 0) {
		eng_disk_set_path(e, info.disk_path);
		rc = eng_qemu_start(e, info.ram_path, true, err, n);
		if (rc < 0)
			return rc;
		e->q.gen = info.gen;
	}
	snprintf(uri, sizeof(uri), "unix:%s/in.sock", e->dir);
	rc = vft_qmp_migrate_incoming(e->q.qmp, uri, 2000, qerr, sizeof(qerr));
	if (rc < 0) {
		snprintf(err, n, "migrate-incoming: %s", qerr);
		return rc;
	}
	rc = feed_devstate(e, dev, dev_len, err, n);
	if (rc < 0)
		return rc;
	for (int i = 0;; i++) {
		rc = vft_qmp_migrate_status(e->q.qmp, status, sizeof(status), 2000, qerr,
		                            sizeof(qerr));
		if (rc < 0) {
			snprintf(err, n, "query-migrate: %s", qerr);
			return rc;
		}
		if (strcmp(status, "completed") == 0)
			break;
		if (strcmp(status, "failed") == 0 || i > 5000) {
			snprintf(err, n, "loading the device state of epoch %llu: %s",
			         (unsigned long long)info.epoch, status);
			return -EIO;
		}
		usleep(200);
	}
	eng_tmpl_drop_base(e);
	/* From here the guest writes to the committed RAM file and disk: they
	 * stop being an epoch the store could offer again. */
	rc = vft_store_release(e->store);
	if (rc < 0) {
		snprintf(err, n, "releasing the committed epoch: %s", strerror(-rc));
		return rc;
	}
	/* cont activates the disk: its write lock is refused while the old
	 * primary's QEMU still holds it, and a killed QEMU may take some
	 * milliseconds more to close its files than to leave the process list.
	 * The lock is shared storage's own guard against two writers: wait for
	 * it a little, never around it. */
	for (double until = af_mono_s() + 3.0;;) {
		rc = vft_qmp_simple(e->q.qmp, "cont", 2000, qerr, sizeof(qerr));
		if (rc == 0 || rc != -EREMOTEIO || strstr(qerr, "lock") == NULL ||
		    af_mono_s() > until)
			break;
		usleep(2000);
	}
	if (rc < 0) {
		snprintf(err, n, "cont: %s", qerr);
		return rc;
	}
	e->q.incoming = false;
	pthread_mutex_lock(&e->lock);
	e->st.promote_ms = (af_mono_s() - t0) * 1e3;
	e->st.acked_epoch = info.epoch;
	e->st.last_epoch = info.epoch;
	pthread_mutex_unlock(&e->lock);
	af_notice("vmft %s: promoted from epoch %llu (generation %llu) in %.1f ms", e->vm->name,
	          (unsigned long long)info.epoch, (unsigned long long)info.gen, e->st.promote_ms);
	return 0;
}
