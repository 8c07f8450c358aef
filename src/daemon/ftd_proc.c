/*
 * Process plumbing: going to the background without losing start-up errors,
 * the pidfile lock, and systemd readiness notification.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_MAIN
#include "ftd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

int ftd_daemonize(void)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		/* The parent exits with the daemon's start-up verdict, so that
		 * "atca-ftd && echo started" and init scripts tell the truth. */
		unsigned char status = 1;
		ssize_t n;

		close(pfd[1]);
		do {
			n = read(pfd[0], &status, 1);
		} while (n < 0 && errno == EINTR);
		waitpid(pid, NULL, 0);
		_exit(n == 1 ? status : 1);
	}
	close(pfd[0]);
	if (setsid() < 0)
		_exit(1);
	/* A second fork: the daemon is not a session leader and can never
	 * acquire a controlling terminal. */
	pid = fork();
	if (pid < 0)
		_exit(1);
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	umask(027);
	return pfd[1];
}

void ftd_ready(struct ftd_ctx *ctx, int status)
{
	unsigned char b = (unsigned char)(status ? 1 : 0);
	int fd;

	if (status == 0) {
		char msg[64];

		snprintf(msg, sizeof(msg), "READY=1\nMAINPID=%d", (int)getpid());
		ftd_sd_notify(msg);
	}
	if (ctx->ready_fd < 0)
		return;
	if (write(ctx->ready_fd, &b, 1) < 0)
		af_warn("could not report start-up status to the parent: %s", strerror(errno));
	close(ctx->ready_fd);
	ctx->ready_fd = -1;
	if (status != 0)
		return;
	/* Detach stdio only now: start-up errors went to the terminal. */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	/* ... and from now on only the configured targets. */
	if (ctx->cfg != NULL)
		ftd_apply_logging(ctx, ctx->cfg);
}

/* Opens and locks the pidfile at path once. Returns the locked fd, -EAGAIN
 * if the locked file is no longer the one at path (retry), or -errno. */
static int lock_once(const char *path, char *err, size_t errlen)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	struct stat locked, named;
	char buf[32];
	int fd, rc;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open pidfile %s: %s", path, strerror(-rc));
		return rc;
	}
	/* An open-file-description lock: a classic POSIX lock would vanish as
	 * soon as anything in the process opened and closed the pidfile. */
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		rc = -errno;
		if (rc == -EAGAIN || rc == -EACCES) {
			ssize_t got = pread(fd, buf, sizeof(buf) - 1, 0);

			buf[got > 0 ? got : 0] = '\0';
			buf[strcspn(buf, "\n")] = '\0';
			snprintf(err, errlen, "another atca-ftd is running (pid %s, pidfile %s)",
			         buf[0] ? buf : "?", path);
			rc = -EEXIST;
		} else {
			snprintf(err, errlen, "cannot lock pidfile %s: %s", path, strerror(-rc));
		}
		close(fd);
		return rc;
	}
	/* A stopping daemon unlinks its pidfile while holding the lock: if we
	 * opened that file just before, we now hold a lock on a file nobody
	 * else will ever open. Only a lock on the file at path counts. */
	if (fstat(fd, &locked) < 0 || stat(path, &named) < 0 || locked.st_dev != named.st_dev ||
	    locked.st_ino != named.st_ino) {
		close(fd);
		return -EAGAIN;
	}
	return fd;
}

int ftd_pidfile_acquire(const char *path, int *out, char *err, size_t errlen)
{
	char buf[32];
	int fd = -EAGAIN, rc, n;

	for (int attempt = 0; attempt < 10 && fd == -EAGAIN; attempt++)
		fd = lock_once(path, err, errlen);
	if (fd == -EAGAIN) {
		snprintf(err, errlen, "pidfile %s keeps being replaced while locking it", path);
		return -EBUSY;
	}
	if (fd < 0)
		return fd;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		rc = -errno;
		snprintf(err, errlen, "cannot write pidfile %s: %s", path, strerror(-rc));
		close(fd);
		unlink(path);
		return rc;
	}
	*out = fd;
	return 0;
}

void ftd_pidfile_release(const char *path, int fd)
{
	if (fd < 0)
		return;
	/* Unlink while still holding the lock, so a starting instance never
	 * locks the file we are about to remove. */
	unlink(path);
	close(fd);
}

void ftd_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t salen;
	size_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
		af_debug("sd_notify(%s) failed: %s", state, strerror(errno));
	close(fd);
}
