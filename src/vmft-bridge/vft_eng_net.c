/*
 * atca-vmft: the guest's network through the engine. QEMU's NIC backend is
 * a datagram socket pair with the engine (QEMU's "dgram" netdev on
 * DIR/net-q.sock, the engine on DIR/net-e.sock: one frame per datagram);
 * the engine puts the guest's frames on the blade's interface with a
 * packet socket and brings back the frames addressed to the guest.
 *
 * Outbound frames are output: held until the epoch they belong to is
 * acknowledged (eng_frameq), so nobody on the network ever sees a frame a
 * failover would take back. Inbound frames are input: delivered to the guest
 * at once and logged in the epoch's event log. After a promotion the engine
 * announces the guest's MAC (RARP, like QEMU's announce-self) and its IPv4
 * address (gratuitous ARP) from the new blade, so switches and peers find it
 * there without any reconfiguration.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_VMFT
#include "vft_eng.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "af_log.h"
#include "af_util.h"

#define FRAME_BUF 65550

static bool has_nic(const struct vft_eng *e)
{
	return e->vm->nic[0] != '\0';
}

/* To the wire (output commit releases frames through it; any thread). */
static void wire_send(void *ctx, const uint8_t *frame, size_t len)
{
	struct vft_eng *e = ctx;
	struct eng_net *n = &e->net;

	if (n->pfd < 0 || send(n->pfd, frame, len, MSG_DONTWAIT) < 0) {
		__atomic_add_fetch(&n->tx_errors, 1, __ATOMIC_RELAXED);
		return;
	}
	__atomic_add_fetch(&n->tx_frames, 1, __ATOMIC_RELAXED);
}

int eng_net_open(struct vft_eng *e, char *err, size_t n)
{
	struct eng_net *net = &e->net;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int rc;

	eng_frameq_init(&e->netq, (size_t)e->cfg->vmft.output_buffer, wire_send, e);
	if (!has_nic(e))
		return 0;
	if (af_cfg_parse_mac(e->vm->mac, net->mac) < 0) {
		snprintf(err, n, "mac '%s'", e->vm->mac);
		return -EINVAL;
	}
	net->ip = 0;
	if (e->vm->ip[0])
		inet_pton(AF_INET, e->vm->ip, &net->ip);
	snprintf(net->qemu_path, sizeof(net->qemu_path), "%s/net-q.sock", e->dir);
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/net-e.sock", e->dir) >=
	    sizeof(sa.sun_path)) {
		snprintf(err, n, "state_dir too long for a socket path: %s", e->dir);
		return -ENAMETOOLONG;
	}
	unlink(sa.sun_path);
	net->qfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (net->qfd < 0 || bind(net->qfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		snprintf(err, n, "%s: %s", sa.sun_path, strerror(errno));
		return rc;
	}
	{
		int buf = 4 << 20;

		setsockopt(net->qfd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
		setsockopt(net->qfd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	}
	return 0;
}

/* QEMU binds its end itself; a stale one from a dead QEMU would stop it. */
void eng_net_before_qemu(struct vft_eng *e)
{
	if (has_nic(e))
		unlink(e->net.qemu_path);
}

/* Frames the guest sent: into output commit (or out). Under rxlock: the
 * main loop and the capture both read, and the order must hold. */
int eng_net_drain(struct vft_eng *e)
{
	struct eng_net *net = &e->net;
	uint8_t *buf;
	int got = 0;

	if (net->qfd < 0)
		return 0;
	pthread_mutex_lock(&net->rxlock);
	buf = net->gbuf;
	for (;;) {
		ssize_t r = recv(net->qfd, buf, FRAME_BUF, MSG_DONTWAIT);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (r < 14) {
			net->bad_frames++;
			continue;
		}
		eng_frameq_push(&e->netq, buf, (size_t)r);
		got++;
	}
	pthread_mutex_unlock(&net->rxlock);
	return got;
}

static int32_t on_guest_frames(int32_t fd, int32_t revents, void *data)
{
	(void)fd;
	(void)revents;
	eng_net_drain(data);
	return 0;
}

/* Frames from the wire for the guest: delivered, and logged as input. */
static int32_t on_wire_frames(int32_t fd, int32_t revents, void *data)
{
	struct vft_eng *e = data;
	struct eng_net *net = &e->net;
	struct sockaddr_un to = {.sun_family = AF_UNIX};

	(void)revents;
	af_strlcpy(to.sun_path, net->qemu_path, sizeof(to.sun_path));
	for (int i = 0; i < 256; i++) {
		struct sockaddr_ll from;
		socklen_t fl = sizeof(from);
		ssize_t r = recvfrom(fd, net->wbuf, FRAME_BUF, MSG_DONTWAIT, (void *)&from, &fl);
		const uint8_t *dst = net->wbuf;

		if (r < 0)
			break;
		/* our own sends come back as OUTGOING; frames for other hosts
		 * reach us because the interface is promiscuous */
		if (r < 14 || from.sll_pkttype == PACKET_OUTGOING)
			continue;
		if (!(dst[0] & 1) && memcmp(dst, net->mac, 6) != 0)
			continue;
		if (e->q.pid <= 0 || e->q.incoming) {
			net->rx_dropped++;
			continue;
		}
		if (sendto(net->qfd, net->wbuf, (size_t)r, MSG_DONTWAIT, (struct sockaddr *)&to,
		           sizeof(to)) < 0) {
			net->rx_dropped++;
			continue;
		}
		net->rx_frames++;
		vft_evlog_add(&e->evlog, VFT_EV_NET_IN, 0, 0, net->wbuf, (size_t)r, af_mono_s());
	}
	return 0;
}

int eng_net_attach(struct vft_eng *e, char *err, size_t n)
{
	struct eng_net *net = &e->net;
	struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};
	struct packet_mreq mr = {.mr_type = PACKET_MR_PROMISC};
	int rc;

	if (!has_nic(e) || net->pfd >= 0)
		return 0;
	sll.sll_ifindex = (int)if_nametoindex(e->vm->net_interface);
	if (sll.sll_ifindex == 0) {
		snprintf(err, n, "net_interface %s: %s", e->vm->net_interface, strerror(errno));
		return -ENODEV;
	}
	net->pfd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
	if (net->pfd < 0 || bind(net->pfd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		rc = -errno;
		snprintf(err, n, "packet socket on %s: %s", e->vm->net_interface, strerror(errno));
		goto fail;
	}
	mr.mr_ifindex = sll.sll_ifindex;
	if (setsockopt(net->pfd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
		rc = -errno;
		snprintf(err, n, "promiscuous %s: %s", e->vm->net_interface, strerror(errno));
		goto fail;
	}
	qb_loop_poll_add(e->loop, QB_LOOP_HIGH, net->pfd, POLLIN, e, on_wire_frames);
	af_info("vmft %s: guest network on %s as %s", e->vm->name, e->vm->net_interface,
	        e->vm->mac);
	return 0;
fail:
	if (net->pfd >= 0)
		close(net->pfd);
	net->pfd = -1;
	return rc;
}

void eng_net_watch(struct vft_eng *e)
{
	if (e->net.qfd >= 0)
		qb_loop_poll_add(e->loop, QB_LOOP_HIGH, e->net.qfd, POLLIN, e, on_guest_frames);
}

/* RARP "reverse request" with the guest's MAC, as QEMU's announce-self
 * sends, and a gratuitous ARP for its address. */
static void announce_once(struct vft_eng *e)
{
	struct eng_net *net = &e->net;
	uint8_t f[60];

	for (int kind = 0; kind < 2; kind++) {
		if (kind == 1 && net->ip == 0)
			break;
		memset(f, 0, sizeof(f));
		memset(f, 0xff, 6);
		memcpy(f + 6, net->mac, 6);
		f[12] = 0x80;
		f[13] = kind == 0 ? 0x35 : 0x06; /* RARP / ARP */
		f[14] = 0;
		f[15] = 1; /* Ethernet */
		f[16] = 0x08;
		f[17] = 0; /* IPv4 */
		f[18] = 6;
		f[19] = 4;
		f[20] = 0;
		f[21] = kind == 0 ? 3 : 1; /* reverse request / request */
		memcpy(f + 22, net->mac, 6);
		if (kind == 0) {
			memcpy(f + 32, net->mac, 6);
		} else {
			memcpy(f + 28, &net->ip, 4);
			memcpy(f + 38, &net->ip, 4);
		}
		wire_send(e, f, sizeof(f));
	}
	net->announcements++;
}

static void announce_timer(void *data)
{
	struct vft_eng *e = data;
	static const unsigned gap_ms[] = {50, 100, 150, 200};

	announce_once(e);
	if (e->net.announce_left > 0) {
		unsigned k = 4 - e->net.announce_left;
		qb_loop_timer_handle th;

		e->net.announce_left--;
		qb_loop_timer_add(e->loop, QB_LOOP_HIGH, gap_ms[k] * AF_NS_PER_MS, e,
		                  announce_timer, &th);
	}
}

void eng_net_announce(struct vft_eng *e)
{
	if (!has_nic(e) || e->net.pfd < 0)
		return;
	af_notice("vmft %s: announcing %s%s%s on %s (RARP%s, 5 times over 0.5 s)", e->vm->name,
	          e->vm->mac, e->vm->ip[0] ? " / " : "", e->vm->ip, e->vm->net_interface,
	          e->vm->ip[0] ? " and gratuitous ARP" : "");
	e->net.announce_left = 4;
	announce_timer(e);
}

void eng_net_close(struct vft_eng *e)
{
	struct eng_net *net = &e->net;

	if (net->pfd >= 0) {
		if (e->loop)
			qb_loop_poll_del(e->loop, net->pfd);
		close(net->pfd);
	}
	if (net->qfd >= 0) {
		char path[4200];

		if (e->loop)
			qb_loop_poll_del(e->loop, net->qfd);
		close(net->qfd);
		snprintf(path, sizeof(path), "%s/net-e.sock", e->dir);
		unlink(path);
	}
	net->pfd = net->qfd = -1;
	eng_frameq_fini(&e->netq);
}
