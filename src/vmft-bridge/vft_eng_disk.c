/*
 * atca-vmft: the guest's disk, served to its QEMU over NBD on a unix socket
 * (DIR/nbd.sock) by a thread of the engine. Serving the disk ourselves is
 * how the engine sees every write, in the order the guest's disk saw them:
 * on the primary each completed write goes into the epoch's event log
 * before QEMU hears it completed, so when a paused capture finds the guest
 * drained (QEMU's stop waits for its requests) the log holds exactly the
 * writes of the epoch. The backup replays them on its own copy at commit.
 *
 * Writes are acknowledged as soon as they are in the primary's page cache
 * (QEMU offers the guest a volatile write cache); FLUSH and FUA writes are
 * fdatasync'ed before their reply, so the guest's durability requests keep
 * their meaning on the primary.
 *
 * One client at a time (the blade's one QEMU of this VM); the thread opens
 * the disk named by e->disk.path when a client arrives, so a backup whose
 * committed generation changed serves the new one to its next standby.
 */
#include "config.h"

#include "vft_eng.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "af_util.h"
#include "vft_nbd.h"
#include "vft_store.h"

struct nbd_conn {
	struct vft_eng *e;
	int fd;   /* client socket */
	int disk; /* disk file */
	uint64_t size;
	uint8_t *buf; /* VFT_NBD_MAX_BLOCK */
	bool no_zeroes;
};

static int send_all(int fd, const void *p, size_t len)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = len};

	return eng_write_all(fd, &iov, 1);
}

static int opt_reply(struct nbd_conn *c, uint32_t opt, uint32_t type, const void *data,
                     uint32_t len)
{
	uint8_t h[VFT_NBD_REP_SIZE];
	struct iovec iov[2] = {{.iov_base = h, .iov_len = vft_nbd_rep_encode(h, opt, type, len)},
	                       {.iov_base = (void *)data, .iov_len = len}};

	return eng_write_all(c->fd, iov, len ? 2 : 1);
}

/* INFO or GO: 1 when transmission starts (GO accepted), 0 to go on with
 * options, -errno to drop the client. */
static int opt_go(struct nbd_conn *c, uint32_t opt, const uint8_t *data, uint32_t len)
{
	struct vft_nbd_go g;
	uint8_t info[14];
	char why[160];
	int rc;

	if (vft_nbd_go_decode(data, len, &g, why, sizeof(why)) < 0) {
		eng_tlog(c->e, LOG_WARNING, "vmft %s: disk client: %s", c->e->vm->name, why);
		return opt_reply(c, opt, VFT_NBD_REP_ERR_INVALID, NULL, 0);
	}
	if (!g.want_block_size) {
		/* without our 512-byte minimum a client may write half a sector,
		 * which the event log cannot carry */
		return opt_reply(c, opt, VFT_NBD_REP_ERR_BLOCK_SIZE_REQD, NULL, 0);
	}
	if ((rc = opt_reply(c, opt, VFT_NBD_REP_INFO, info,
	                    (uint32_t)vft_nbd_info_export(info, c->size, VFT_NBD_TFLAGS))) < 0 ||
	    (rc = opt_reply(c, opt, VFT_NBD_REP_INFO, info,
	                    (uint32_t)vft_nbd_info_block_size(info))) < 0 ||
	    (rc = opt_reply(c, opt, VFT_NBD_REP_ACK, NULL, 0)) < 0)
		return rc;
	return opt == VFT_NBD_OPT_GO ? 1 : 0;
}

static int handshake(struct nbd_conn *c)
{
	uint8_t buf[VFT_NBD_OPT_MAX > 134 ? VFT_NBD_OPT_MAX : 134];
	uint8_t hdr[VFT_NBD_OPT_SIZE];
	struct vft_nbd_opt o;
	uint32_t flags;
	char why[160];
	int rc;

	if ((rc = send_all(c->fd, buf, vft_nbd_greeting(buf))) < 0 ||
	    (rc = eng_read_full(c->fd, buf, 4)) < 0)
		return rc;
	if (vft_nbd_client_flags(buf, &flags, why, sizeof(why)) < 0)
		goto bad;
	c->no_zeroes = flags & VFT_NBD_FLAG_NO_ZEROES;
	for (int n = 0; n < 32; n++) {
		if ((rc = eng_read_full(c->fd, hdr, sizeof(hdr))) < 0)
			return rc;
		rc = vft_nbd_opt_decode(hdr, &o, why, sizeof(why));
		if (rc < 0)
			goto bad;
		if ((rc = eng_read_full(c->fd, buf, o.len)) < 0)
			return rc;
		switch (o.opt) {
		case VFT_NBD_OPT_EXPORT_NAME:
			return send_all(c->fd, buf,
			                vft_nbd_export_name_reply(buf, c->size, VFT_NBD_TFLAGS,
			                                          c->no_zeroes));
		case VFT_NBD_OPT_ABORT:
			opt_reply(c, o.opt, VFT_NBD_REP_ACK, NULL, 0);
			return -ECONNRESET;
		case VFT_NBD_OPT_INFO:
		case VFT_NBD_OPT_GO:
			rc = opt_go(c, o.opt, buf, o.len);
			if (rc != 0)
				return rc > 0 ? 0 : rc;
			break;
		default:
			/* structured replies, meta contexts, TLS: not offered */
			if ((rc = opt_reply(c, o.opt, VFT_NBD_REP_ERR_UNSUP, NULL, 0)) < 0)
				return rc;
		}
	}
	snprintf(why, sizeof(why), "too many options");
bad:
	eng_tlog(c->e, LOG_WARNING, "vmft %s: disk client refused: %s", c->e->vm->name, why);
	return -EBADMSG;
}

static uint32_t errno_to_nbd(int rc)
{
	switch (-rc) {
	case ENOSPC:
	case EDQUOT:
		return VFT_NBD_ENOSPC;
	case ENOMEM:
		return VFT_NBD_ENOMEM;
	default:
		return VFT_NBD_EIO;
	}
}

static int pread_full(int fd, uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t r = pread(fd, p, len, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) { /* a hole past the end of a shrunk file reads as zeroes */
			memset(p, 0, len);
			return 0;
		}
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *p, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

/* One request. 1 = the client said goodbye, 0 = go on, -errno = drop it. */
static int serve_one(struct nbd_conn *c)
{
	struct vft_eng *e = c->e;
	struct eng_disk *d = &e->disk;
	uint8_t raw[VFT_NBD_REQ_SIZE], rep[VFT_NBD_REPLY_SIZE];
	struct vft_nbd_req r;
	uint32_t nerr;
	char why[160];
	double t0;
	int rc;

	if ((rc = eng_read_full(c->fd, raw, sizeof(raw))) < 0)
		return rc;
	if (vft_nbd_req_decode(raw, c->size, &r, &nerr, why, sizeof(why)) < 0) {
		eng_tlog(e, LOG_WARNING, "vmft %s: disk client dropped: %s", e->vm->name, why);
		return -EBADMSG;
	}
	if (r.type == VFT_NBD_CMD_WRITE && r.len > 0 &&
	    (rc = eng_read_full(c->fd, c->buf, r.len)) < 0)
		return rc;
	t0 = af_mono_s();
	if (nerr != 0) {
		eng_tlog(e, LOG_WARNING, "vmft %s: disk request refused: %s", e->vm->name, why);
	} else if (r.type == VFT_NBD_CMD_DISC) {
		return 1;
	} else if (r.type == VFT_NBD_CMD_READ) {
		rc = pread_full(c->disk, c->buf, r.len, r.offset);
		if (rc < 0)
			nerr = errno_to_nbd(rc);
		else {
			struct iovec iov[2] = {{.iov_base = rep,
			                        .iov_len = vft_nbd_reply_encode(rep, 0, r.handle)},
			                       {.iov_base = c->buf, .iov_len = r.len}};

			pthread_mutex_lock(&e->lock);
			d->reads++;
			pthread_mutex_unlock(&e->lock);
			return eng_write_all(c->fd, iov, 2);
		}
	} else if (r.type == VFT_NBD_CMD_WRITE) {
		bool fua = r.flags & VFT_NBD_CMD_FLAG_FUA;

		rc = pwrite_full(c->disk, c->buf, r.len, r.offset);
		/* logged before the guest hears of it: a write the guest saw
		 * complete is always in the epoch it completed in */
		if (rc == 0)
			rc = vft_evlog_add(&e->evlog, VFT_EV_DISK_WRITE, fua ? VFT_EVF_FUA : 0,
			                   r.offset, c->buf, r.len, af_mono_s());
		if (rc == 0 && fua && fdatasync(c->disk) < 0)
			rc = -errno;
		if (rc < 0)
			nerr = errno_to_nbd(rc);
		pthread_mutex_lock(&e->lock);
		if (rc == 0) {
			d->writes++;
			d->bytes_written += r.len;
			eng_ring_add(&d->write_us, (af_mono_s() - t0) * 1e6);
		}
		pthread_mutex_unlock(&e->lock);
	} else if (r.type == VFT_NBD_CMD_FLUSH) {
		rc = fdatasync(c->disk) < 0 ? -errno : 0;
		if (rc == 0)
			rc = vft_evlog_add(&e->evlog, VFT_EV_DISK_FLUSH, 0, 0, NULL, 0,
			                   af_mono_s());
		if (rc < 0)
			nerr = errno_to_nbd(rc);
		pthread_mutex_lock(&e->lock);
		d->flushes++;
		pthread_mutex_unlock(&e->lock);
	}
	if (nerr != 0) {
		if (rc < 0)
			eng_tlog(e, LOG_ERR, "vmft %s: disk %s at %llu: %s", e->vm->name,
			         r.type == VFT_NBD_CMD_READ    ? "read"
			         : r.type == VFT_NBD_CMD_WRITE ? "write"
			                                       : "flush",
			         (unsigned long long)r.offset, strerror(-rc));
		pthread_mutex_lock(&e->lock);
		d->errors++;
		pthread_mutex_unlock(&e->lock);
	}
	return send_all(c->fd, rep, vft_nbd_reply_encode(rep, nerr, r.handle));
}

static void serve(struct vft_eng *e, int fd)
{
	struct eng_disk *d = &e->disk;
	struct nbd_conn c = {.e = e, .fd = fd, .disk = -1};
	char path[sizeof(d->path)];
	struct stat st;
	int rc;

	pthread_mutex_lock(&e->lock);
	af_strlcpy(path, d->path, sizeof(path));
	pthread_mutex_unlock(&e->lock);
	c.disk = open(path, O_RDWR | O_CLOEXEC);
	if (c.disk < 0 || fstat(c.disk, &st) < 0) {
		eng_tlog(e, LOG_ERR, "vmft %s: disk %s: %s", e->vm->name, path, strerror(errno));
		goto out;
	}
	c.size = (uint64_t)st.st_size & ~(uint64_t)(VFT_SECTOR - 1);
	c.buf = malloc(VFT_NBD_MAX_BLOCK);
	if (c.buf == NULL)
		goto out;
	rc = handshake(&c);
	if (rc < 0)
		goto out;
	eng_tlog(e, LOG_INFO, "vmft %s: QEMU attached to disk %s (%llu bytes)", e->vm->name, path,
	         (unsigned long long)c.size);
	while ((rc = serve_one(&c)) == 0)
		;
	if (rc < 0 && rc != -ECONNRESET && !d->stop)
		eng_tlog(e, LOG_WARNING, "vmft %s: disk client lost: %s", e->vm->name,
		         strerror(-rc));
out:
	if (c.disk >= 0) {
		fdatasync(c.disk);
		close(c.disk);
	}
	free(c.buf);
}

static void *disk_main(void *arg)
{
	struct vft_eng *e = arg;
	struct eng_disk *d = &e->disk;

	while (!d->stop) {
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			break; /* shut down */
		}
		pthread_mutex_lock(&e->lock);
		d->conn_fd = fd;
		pthread_mutex_unlock(&e->lock);
		serve(e, fd);
		pthread_mutex_lock(&e->lock);
		d->conn_fd = -1;
		pthread_mutex_unlock(&e->lock);
		close(fd);
	}
	return NULL;
}

void eng_disk_set_path(struct vft_eng *e, const char *path)
{
	pthread_mutex_lock(&e->lock);
	af_strlcpy(e->disk.path, path, sizeof(e->disk.path));
	pthread_mutex_unlock(&e->lock);
}

int eng_disk_start(struct vft_eng *e, char *err, size_t n)
{
	struct eng_disk *d = &e->disk;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int rc;

	if (d->running)
		return 0;
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/nbd.sock", e->dir) >=
	    sizeof(sa.sun_path)) {
		snprintf(err, n, "state_dir too long for a socket path: %s", e->dir);
		return -ENAMETOOLONG;
	}
	unlink(sa.sun_path);
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(d->listen_fd, 2) < 0) {
		rc = -errno;
		snprintf(err, n, "%s: %s", sa.sun_path, strerror(errno));
		goto fail;
	}
	d->stop = false;
	rc = -pthread_create(&d->thread, NULL, disk_main, e);
	if (rc < 0) {
		snprintf(err, n, "disk thread: %s", strerror(-rc));
		goto fail;
	}
	d->running = true;
	return 0;
fail:
	if (d->listen_fd >= 0)
		close(d->listen_fd);
	d->listen_fd = -1;
	return rc;
}

void eng_disk_stop(struct vft_eng *e)
{
	struct eng_disk *d = &e->disk;

	if (!d->running)
		return;
	pthread_mutex_lock(&e->lock);
	d->stop = true;
	if (d->conn_fd >= 0)
		shutdown(d->conn_fd, SHUT_RDWR);
	pthread_mutex_unlock(&e->lock);
	shutdown(d->listen_fd, SHUT_RDWR);
	pthread_join(d->thread, NULL);
	close(d->listen_fd);
	d->listen_fd = -1;
	d->running = false;
}

/* The primary's disk when it boots the guest: the blade's latest copy (the
 * one it last ran or committed), or a copy of the configured image the
 * first time. Whatever the store held stops being an epoch: this guest
 * will write to it. */
int eng_disk_pick_primary(struct vft_eng *e, char *path, size_t n, char *err, size_t errn)
{
	char serr[300];
	int rc;

	rc = vft_store_forget(e->dir);
	if (rc < 0) {
		snprintf(err, errn, "%s/state: %s", e->dir, strerror(-rc));
		return rc;
	}
	rc = vft_store_latest_disk(e->disk_dir, path, n, NULL);
	if (rc == 0)
		return 0;
	if (rc != -ENOENT) {
		snprintf(err, errn, "%s: %s", e->disk_dir, strerror(-rc));
		return rc;
	}
	rc = vft_store_seed_disk(e->disk_dir, e->vm->disk, path, n, serr, sizeof(serr));
	if (rc < 0)
		snprintf(err, errn, "%s", serr);
	return rc;
}
