/*
 * atca-vmft: the guest's QEMU process and its serial port (output commit).
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft_eng.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "af_log.h"
#include "af_util.h"
#include "vft_qmp.h"

#define MAX_ARGS 96

static int unix_listen(const char *path, char *err, size_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, n, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 2) < 0) {
		int rc = -errno;

		snprintf(err, n, "%s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* accept() with a deadline: SO_RCVTIMEO bounds accept on Linux. */
static int accept_timeout(int lfd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	int fd;

	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* The QEMU command line of the protected VM. Both blades build the same one
 * (the device state of one only loads into an identical machine), so it is
 * also what config_hash covers. */
static int build_argv(struct vft_eng *e, const char *ram_path, bool incoming, char *store,
                      size_t store_len, char **argv)
{
	const struct af_cfg_vm *vm = e->vm;
	size_t used = 0;
	int argc = 0;
	bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;

#define ARG(...)                                                                                   \
	do {                                                                                       \
		int w_ = snprintf(store + used, store_len - used, __VA_ARGS__);                    \
		if (w_ < 0 || (size_t)w_ >= store_len - used || argc >= MAX_ARGS - 1)              \
			return -E2BIG;                                                             \
		argv[argc++] = store + used;                                                       \
		used += (size_t)w_ + 1;                                                            \
	} while (0)

	ARG("%s", e->cfg->vmft.qemu);
	ARG("-name");
	ARG("%s,debug-threads=on", vm->name);
	ARG("-machine");
	ARG("pc,accel=%s,memory-backend=mem", kvm ? "kvm" : "tcg");
	ARG("-object");
	ARG("memory-backend-file,id=mem,size=%llu,mem-path=%s,share=on",
	    (unsigned long long)vm->memory, ram_path);
	ARG("-m");
	ARG("%lluM", (unsigned long long)(vm->memory >> 20));
	ARG("-smp");
	ARG("%u", vm->vcpus ? vm->vcpus : 1);
	ARG("-nodefaults");
	ARG("-display");
	ARG("none");
	/* the disk through the engine's NBD server: it sees every write. The
	 * device is its own argument: the bus is part of the machine (the
	 * config hash), the socket path is not */
	ARG("-drive");
	ARG("driver=raw,file.driver=nbd,file.server.type=unix,file.server.path=%s/nbd.sock,"
	    "file.export=disk,if=none,id=disk0,cache=writeback",
	    e->dir);
	ARG("-device");
	if (vm->disk_bus == AF_BUS_IDE)
		ARG("ide-hd,drive=disk0,bus=ide.0,unit=0,bootindex=0");
	else
		ARG("virtio-blk-pci,drive=disk0,bootindex=0");
	if (vm->nic[0] != '\0') {
		/* frames through the engine: output commit, input log */
		ARG("-netdev");
		ARG("dgram,id=n0,local.type=unix,local.path=%s/net-q.sock,remote.type=unix,"
		    "remote.path=%s/net-e.sock",
		    e->dir, e->dir);
		ARG("-device");
		ARG("%s,netdev=n0,mac=%s", vm->nic, vm->mac);
	}
	ARG("-chardev");
	ARG("socket,id=ser0,path=%s/serial.sock", e->dir);
	ARG("-serial");
	ARG("chardev:ser0");
	ARG("-qmp");
	ARG("unix:%s/qmp.sock,server=on,wait=off", e->dir);
	if (incoming) {
		ARG("-incoming");
		ARG("defer");
	}
	if (vm->qemu_args[0] != '\0') {
		char tmp[sizeof(vm->qemu_args)];
		char *save = NULL;

		af_strlcpy(tmp, vm->qemu_args, sizeof(tmp));
		for (char *t = strtok_r(tmp, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
			ARG("%s", t);
	}
#undef ARG
	argv[argc] = NULL;
	return argc;
}

uint64_t eng_config_hash(struct vft_eng *e)
{
	char store[8192];
	char *argv[MAX_ARGS];
	uint64_t h = 1469598103934665603ULL; /* FNV-1a: stable across builds */
	int argc = build_argv(e, "RAM", false, store, sizeof(store), argv);

	for (int i = 0; i < argc; i++) {
		/* the paths of RAM and sockets differ per blade; the machine does not */
		if (strstr(argv[i], "mem-path=") || strstr(argv[i], ".sock"))
			continue;
		for (const char *p = argv[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

int eng_qemu_start(struct vft_eng *e, const char *ram_path, bool incoming, char *err, size_t n)
{
	char store[8192], path[4200], qerr[256];
	char *argv[MAX_ARGS];
	int lfd = -1, logfd = -1, rc;
	pid_t pid;
	double t0 = af_mono_s();

	if (e->q.pid > 0) {
		snprintf(err, n, "QEMU already running (pid %d)", (int)e->q.pid);
		return -EBUSY;
	}
	rc = build_argv(e, ram_path, incoming, store, sizeof(store), argv);
	if (rc < 0) {
		snprintf(err, n, "QEMU command line too long");
		return rc;
	}
	snprintf(path, sizeof(path), "%s/serial.sock", e->dir);
	lfd = unix_listen(path, err, n);
	if (lfd < 0)
		return lfd;
	snprintf(path, sizeof(path), "%s/qemu.log", e->dir);
	logfd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0) {
		rc = -errno;
		snprintf(err, n, "%s: %s", path, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "%s/qmp.sock", e->dir);
	unlink(path);
	eng_net_before_qemu(e);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		snprintf(err, n, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* QEMU must not outlive its engine: a guest nobody checkpoints
		 * and whose output nobody releases is a second copy waiting to
		 * happen. PDEATHSIG follows the forking thread, so only the
		 * main thread starts QEMU. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		execv(argv[0], argv);
		_exit(127);
	}
	e->q.pid = pid;
	e->q.incoming = incoming;
	af_strlcpy(e->q.ram_path, ram_path, sizeof(e->q.ram_path));
	rc = vft_qmp_connect(&e->q.qmp, path, 10000, qerr, sizeof(qerr));
	if (rc < 0) {
		snprintf(err, n, "QMP: %s (see %s/qemu.log)", qerr, e->dir);
		goto fail;
	}
	rc = accept_timeout(lfd, 5000);
	if (rc < 0) {
		snprintf(err, n, "QEMU did not open its serial port: %s", strerror(-rc));
		goto fail;
	}
	e->q.serial_fd = rc;
	fcntl(e->q.serial_fd, F_SETFL, fcntl(e->q.serial_fd, F_GETFL) | O_NONBLOCK);
	rc = vft_qmp_set_capability(e->q.qmp, "x-ignore-shared", true, 2000, qerr, sizeof(qerr));
	if (rc < 0) {
		snprintf(err, n, "x-ignore-shared: %s", qerr);
		goto fail;
	}
	af_info("vmft %s: QEMU pid %d started%s in %.1f ms (RAM %s)", e->vm->name, (int)pid,
	        incoming ? " waiting for an incoming state" : "", (af_mono_s() - t0) * 1e3,
	        ram_path);
	rc = 0;
	goto out;
fail:
	eng_qemu_kill(e);
out:
	if (lfd >= 0)
		close(lfd);
	if (logfd >= 0)
		close(logfd);
	return rc;
}

void eng_qemu_kill(struct vft_eng *e)
{
	if (e->q.qmp) {
		vft_qmp_close(e->q.qmp);
		e->q.qmp = NULL;
	}
	if (e->q.pid > 0) {
		kill(e->q.pid, SIGKILL);
		waitpid(e->q.pid, NULL, 0);
		af_info("vmft %s: QEMU pid %d stopped", e->vm->name, (int)e->q.pid);
		e->q.pid = 0;
	}
	if (e->q.serial_fd >= 0) {
		close(e->q.serial_fd);
		e->q.serial_fd = -1;
	}
}

int eng_serial_drain(struct vft_eng *e)
{
	int rc;

	if (e->q.serial_fd < 0)
		return 0;
	rc = eng_output_read(&e->out, e->q.serial_fd);
	return rc;
}
