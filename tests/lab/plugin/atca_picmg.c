/*
 * atca_picmg.c - an ipmi_sim plugin: ATCA FRU activation for the shelf lab.
 *
 * OpenIPMI's ipmi_sim (2.0.33, Debian 12) in ATCA mode answers PICMG
 * commands itself, but only partly: Set FRU Activation (Deactivate) walks
 * M4->M6->M1 at once, (Activate) works only from M2, FRU activation policy
 * answers CC 0xC1, FRU Control does nothing and a blade IPMC has no payload
 * power at all. This plugin gives every blade IPMC (every MC behind the
 * shelf manager that carries the hot-swap sensor) FRU 0 with a real
 * activation state machine and payload power, and tells the lab when the
 * payload power changes so that the lab can stop or start the blade's
 * processes.
 *
 * Loaded by lan.conf:  loadlib "/path/atca_picmg.so" "key=value ..."
 *
 *   hs=N            number of the hot-swap sensor (type 0xF0) on LUN 0 of
 *                   every blade IPMC (default 0)
 *   shutdown_ms=N   payload shutdown delay spent in M6 (default 300)
 *   activate_ms=N   time spent in M3 (default 300)
 *   m5=0|1          Set FRU Activation (Deactivate) from M4 shows M5 before
 *                   M6 (default 1); 0 goes M4->M6 as PICMG 3.0 draws a
 *                   deactivation commanded by the shelf manager
 *   hook=P,A1,A2..  program (and arguments, comma-separated) run on every
 *                   payload power change as "P A1 A2 .. --seq NS 0xADDR
 *                   off|on|reset"; NS is CLOCK_REALTIME in nanoseconds so
 *                   that the program can order hooks that overtake each
 *                   other (hooks from two shelf managers). Double-forked:
 *                   the simulator never waits for it. The hooks of one
 *                   blade run one after the other, in order: the next
 *                   starts when the previous exits (it holds the write end
 *                   of a pipe as fd 3, which its own children must not
 *                   inherit).
 *   hooklog=PATH    where the hook's output goes (default /dev/null)
 *
 * What it implements, per blade IPMC, FRU 0 (other FRU ids: CC 0xCC):
 *   PICMG 0x0A/0x0B Set/Get FRU Activation Policy: Locked (bit 0) and
 *       Deactivation-Locked (bit 1). Clearing Locked in M1 moves to M2.
 *   PICMG 0x0C Set FRU Activation:
 *       Deactivate: M4 -> M5 -> M6 -> (shutdown_ms) -> M1, payload off and
 *       Locked set on entering M1; M5 -> M6 -> M1; M3 -> M6 -> M1;
 *       M2 -> M1; M1/M0/M6: success, nothing to do; M7: CC 0xD5.
 *       Deactivation-Locked does not stop it (it guards the FRU's own,
 *       handle-initiated, M4 -> M5).
 *       Activate: M2 -> M3 (payload on) -> (activate_ms) -> M4; M1 with
 *       Locked clear: M2 first; M1 with Locked set: CC 0xD5; M5 -> M4;
 *       M3/M4: success; M0/M6/M7: CC 0xD5.
 *   PICMG 0x04 FRU Control: cold/warm reset and graceful reboot bounce a
 *       powered payload (hook "reset", no state change; CC 0xD5 when the
 *       payload is off); diagnostic interrupt: accepted, no effect.
 *   Chassis Control / Get Chassis Status (netfn 0x00, through ipmi_sim's
 *       chassis control functions, so the IPMC must be a chassis device in
 *       mc_add): power down and soft shutdown = Deactivate above (the FRU
 *       ends in M1, Locked); power up = clear Locked and Activate (a power
 *       up arriving during M6 is done once M1 is reached); power cycle =
 *       ipmi_sim's own: down now, up at the first 1 s poll that finds the
 *       payload off; hard reset = FRU Control
 *       cold reset. Get Chassis Status reports the payload power.
 *   Every hot-swap transition is a SEL event in the shelf manager's SEL
 *   like one from a real IPMC: sensor type 0xF0, event data 1 = 0xA0 |
 *   new state, event data 2 = cause << 4 | previous state, event data 3 =
 *   FRU 0. Causes: 1 commanded by the shelf manager, 0 normal (timed
 *   completion), 2 handle, others from the lab (picmg_set cause=N).
 *   Everything else of the PICMG group goes to ipmi_sim's own
 *   handle_picmg_msg.
 *
 * Console commands (ipmi_sim's console port):
 *   picmg_state [ADDR]        "0x84 M4 power=on locked=0 deactlocked=0
 *                             unsupported=0 pending=none", one line a blade
 *   picmg_set ADDR M [quiet] [locked|unlocked] [cause=N]
 *                             put the FRU in state M (payload power follows:
 *                             off in M0-M2, on in M3-M6, unchanged in M7),
 *                             cancelling what is pending; SEL event unless
 *                             quiet; never runs the hook (lab replay and
 *                             fault injection)
 *   picmg_unsupported ADDR on|off
 *                             that IPMC answers PICMG 0x04/0x0A/0x0B/0x0C
 *                             with CC 0xC1, like an IPMC without FRU
 *                             activation (chassis control still works)
 *   picmg_delay [SHUTDOWN_MS [ACTIVATE_MS]]
 *                             show or change the two delays
 *   picmg_handle ADDR open|close
 *                             the ejector handle: open in M4 -> M5 unless
 *                             Deactivation-Locked; close in M1 -> M2 unless
 *                             Locked
 *   Errors are printed as "**..." (the lab's console client raises on them).
 *
 * Facts about ipmi_sim this relies on (measured on Debian 12, OpenIPMI
 * 2.0.33; see also shared/notes/lab-facts.md):
 *   - ipmi_sim_module_init runs after lan.conf is read and before the .emu
 *     commands, so MCs do not exist yet; ipmi_sim_module_post_init runs
 *     after them. "atca_enable" registers handle_picmg_msg (a cmd_handler_f)
 *     as the handler of group extension 0, so ours is registered in
 *     post_init, replacing it, and calls it for what we do not handle.
 *   - sys->ipmb_addrs[] is indexed by the 8-bit IPMB address.
 *   - Chassis commands reach an MC only if mc_add gave it the chassis
 *     device bit (0x80 of the device support byte); then Chassis Control and
 *     Get Chassis Status call the functions set by
 *     ipmi_mc_set_chassis_control_func. Power cycle is ipmi_sim's own: power
 *     down, then power up from a 1 s timer.
 *   - ipmi_mc_sensor_set_bit_clr_rest with gen_event 1 logs events with
 *     event data 2 and 3 = 0xFF (no previous state): we call it with
 *     gen_event 0 and log our own record with mc_new_event() on the shelf
 *     manager (0x20), which stamps the time.
 *   - The simulator reaps children from its SIGCHLD handler with
 *     waitpid(-1, WNOHANG): we reap our intermediate child at once (looping
 *     on EINTR, the handler has no SA_RESTART) and the hook itself is
 *     re-parented to init.
 *   - sys->log() output goes to every console session: we log to stdout
 *     (ipmi_sim.log in the lab) instead, so console replies stay clean.
 *   - Timers: sys->alloc_timer/start_timer with a relative struct timeval;
 *     file descriptors: sys->add_io_hnd; everything runs in the simulator's
 *     single thread.
 *   - ipmi_sim's chassis power cycle powers down, then looks at the power
 *     (our chassis_get) every second and powers up once it is off: "off"
 *     and "on" can come a few ms apart, hence the hooks' queue.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <OpenIPMI/lanserv.h>
#include <OpenIPMI/mcserv.h>
#include <OpenIPMI/ipmi_err.h>
#include <OpenIPMI/ipmi_picmg.h>

/* Exported by ipmi_sim (bmc_picmg.c), not declared in the installed headers. */
void handle_picmg_msg(lmc_data_t *mc, msg_t *msg, unsigned char *rdata, unsigned int *rdata_len,
                      void *cb_data);

#define SHMC_ADDR 0x20
#define HS_SENSOR_TYPE 0xF0
#define HS_READING_TYPE 0x6F
#define MAX_HOOK_ARGS 32
#define HOOK_QUEUE 8

enum cause {
	CAUSE_NORMAL = 0,
	CAUSE_COMMANDED = 1,
	CAUSE_HANDLE = 2,
	CAUSE_UNKNOWN = 0xF,
};

enum pending {
	PEND_NONE,
	PEND_M1, /* in M6: payload shutdown, then M1 */
	PEND_M4, /* in M3: activation, then M4 */
};

struct blade {
	unsigned char addr;
	lmc_data_t *mc;
	ipmi_timer_t *timer;
	int mstate;
	int power;
	int locked;
	int deact_locked;
	int unsupported;
	int up_after_down; /* a power up arrived during M6 */
	enum pending pending;
	/* hooks of one blade run one at a time, in order: the running one
	 * holds the write end of a pipe whose read end we watch */
	int hook_fd;
	ipmi_io_t *hook_io;
	int queued;
	const char *queue_action[HOOK_QUEUE];
	long long queue_seq[HOOK_QUEUE];
};

static sys_data_t *sys;
static struct blade *blades[256];
static unsigned int hs_sensor;
static unsigned int shutdown_ms = 300;
static unsigned int activate_ms = 300;
static int show_m5 = 1;
static char *hook_argv[MAX_HOOK_ARGS + 6];
static int hook_argc;
static char *hook_log;

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void logmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("atca_picmg: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static const char *pending_name(enum pending p)
{
	switch (p) {
	case PEND_M1:
		return "shutdown";
	case PEND_M4:
		return "activation";
	default:
		return "none";
	}
}

/* ------------------------------------------------------------- the hook */

static void start_hook(struct blade *b, const char *action, long long seq_ns);

/* The running hook exited (EOF on its pipe): start the next one. */
static void hook_done(int fd, void *cb_data)
{
	struct blade *b = cb_data;
	char buf[64];
	ssize_t n;

	n = read(fd, buf, sizeof(buf));
	if (n > 0 || (n < 0 && errno == EINTR))
		return;
	sys->remove_io_hnd(b->hook_io);
	b->hook_io = NULL;
	close(fd);
	b->hook_fd = -1;
	if (b->queued > 0) {
		const char *action = b->queue_action[0];
		long long seq = b->queue_seq[0];

		b->queued--;
		memmove(b->queue_action, b->queue_action + 1,
		        b->queued * sizeof(b->queue_action[0]));
		memmove(b->queue_seq, b->queue_seq + 1, b->queued * sizeof(b->queue_seq[0]));
		start_hook(b, action, seq);
	}
}

static void start_hook(struct blade *b, const char *action, long long seq_ns)
{
	char addr[8], seq[32];
	int status, p[2], rv;
	pid_t pid;

	snprintf(addr, sizeof(addr), "0x%02x", b->addr);
	snprintf(seq, sizeof(seq), "%lld", seq_ns);
	hook_argv[hook_argc] = "--seq";
	hook_argv[hook_argc + 1] = seq;
	hook_argv[hook_argc + 2] = addr;
	hook_argv[hook_argc + 3] = (char *)action;
	hook_argv[hook_argc + 4] = NULL;
	logmsg("0x%02x: hook %s (seq %s)", b->addr, action, seq);

	if (pipe2(p, O_CLOEXEC) < 0) {
		logmsg("0x%02x: cannot make a pipe for the hook: %s", b->addr, strerror(errno));
		return;
	}
	pid = fork();
	if (pid < 0) {
		logmsg("0x%02x: cannot fork the hook: %s", b->addr, strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		/* The intermediate child: a new session, one more fork, exit.
		 * The hook is then init's child and never our zombie. It keeps
		 * the pipe's write end as fd 3 until it exits. */
		sigset_t none;
		int fd;

		setsid();
		pid = fork();
		if (pid != 0)
			_exit(pid < 0 ? 1 : 0);
		if (p[1] == 3)
			fcntl(3, F_SETFD, 0);
		else
			dup2(p[1], 3); /* the copy is not close-on-exec */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		fd = open(hook_log ? hook_log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		closefrom(4);
		execv(hook_argv[0], hook_argv);
		dprintf(2, "atca_picmg: exec %s: %s\n", hook_argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	rv = sys->add_io_hnd(sys, p[0], hook_done, b, &b->hook_io);
	if (rv) {
		/* cannot watch it: the next hook will not wait for this one */
		logmsg("0x%02x: cannot watch the hook: %s", b->addr, strerror(rv));
		close(p[0]);
		return;
	}
	b->hook_fd = p[0];
}

/* Runs the hook for a payload change decided now; after the blade's running
 * hook, if there is one. */
static void run_hook(struct blade *b, const char *action)
{
	struct timespec ts;
	long long seq;

	if (hook_argc == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	seq = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
	if (b->hook_fd < 0) {
		start_hook(b, action, seq);
		return;
	}
	if (b->queued == HOOK_QUEUE) {
		logmsg("0x%02x: %d hooks waiting: dropping the oldest", b->addr, HOOK_QUEUE);
		b->queued--;
		memmove(b->queue_action, b->queue_action + 1,
		        b->queued * sizeof(b->queue_action[0]));
		memmove(b->queue_seq, b->queue_seq + 1, b->queued * sizeof(b->queue_seq[0]));
	}
	logmsg("0x%02x: hook %s queued behind the running one", b->addr, action);
	b->queue_action[b->queued] = action;
	b->queue_seq[b->queued] = seq;
	b->queued++;
}

static void set_power(struct blade *b, int on, int hook)
{
	if (b->power == on)
		return;
	b->power = on;
	if (hook)
		run_hook(b, on ? "on" : "off");
}

/* ------------------------------------------------------ hot-swap states */

static void hs_event(struct blade *b, int prev, int cause)
{
	lmc_data_t *shmc = sys->ipmb_addrs[SHMC_ADDR];
	unsigned char ev[13];

	if (!shmc)
		return;
	memset(ev, 0, sizeof(ev)); /* bytes 0-3: time stamp, set by the SEL */
	ev[4] = b->addr;           /* generator: the IPMC */
	ev[5] = 0;                 /* IPMB channel 0, LUN 0 */
	ev[6] = 0x04;              /* event message revision (IPMI 1.5+) */
	ev[7] = HS_SENSOR_TYPE;
	ev[8] = hs_sensor;
	ev[9] = HS_READING_TYPE; /* assertion */
	ev[10] = 0xA0 | (b->mstate & 0x0F);
	ev[11] = ((cause & 0x0F) << 4) | (prev & 0x0F);
	ev[12] = 0; /* FRU device id */
	mc_new_event(shmc, 0x02, ev);
}

/* Moves the FRU to state m: the sensor, our record and (unless quiet) a SEL
 * event. No power change and no hook: callers do that. */
static void go(struct blade *b, int m, int cause, int events)
{
	int prev = b->mstate;
	int rv;

	rv = ipmi_mc_sensor_set_bit_clr_rest(b->mc, 0, hs_sensor, m, 0);
	if (rv)
		logmsg("0x%02x: setting the hot-swap sensor to M%d: %s", b->addr, m, strerror(rv));
	b->mstate = m;
	if (events && prev != m)
		hs_event(b, prev, cause);
	logmsg("0x%02x: M%d -> M%d (cause %d%s)", b->addr, prev, m, cause, events ? "" : ", quiet");
}

static void cancel_pending(struct blade *b)
{
	if (b->pending != PEND_NONE)
		sys->stop_timer(b->timer);
	b->pending = PEND_NONE;
	b->up_after_down = 0;
}

static void blade_timeout(void *cb_data);

static void schedule(struct blade *b, enum pending what, unsigned int ms)
{
	struct timeval tv;

	b->pending = what;
	if (ms == 0) {
		blade_timeout(b);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	sys->start_timer(b->timer, &tv);
}

/* M2 -> M3, payload on, M4 after activate_ms. */
static void start_activation(struct blade *b, int cause)
{
	go(b, 3, cause, 1);
	set_power(b, 1, 1);
	schedule(b, PEND_M4, activate_ms);
}

/* From M3/M4/M5 into M6; M1 after shutdown_ms. */
static void start_deactivation(struct blade *b, int cause)
{
	b->locked = 1; /* stays in M1 until the Locked bit is cleared */
	if (b->mstate == 4 && show_m5)
		go(b, 5, cause, 1);
	go(b, 6, cause, 1);
	schedule(b, PEND_M1, shutdown_ms);
}

static void blade_timeout(void *cb_data)
{
	struct blade *b = cb_data;
	enum pending p = b->pending;

	b->pending = PEND_NONE;
	if (p == PEND_M1) {
		go(b, 1, CAUSE_NORMAL, 1);
		set_power(b, 0, 1);
		if (b->up_after_down) {
			b->up_after_down = 0;
			b->locked = 0;
			go(b, 2, CAUSE_COMMANDED, 1);
			start_activation(b, CAUSE_COMMANDED);
		}
	} else if (p == PEND_M4) {
		go(b, 4, CAUSE_NORMAL, 1);
	}
}

/* Set FRU Activation (Deactivate) and chassis power down: a completion code. */
static int deactivate(struct blade *b, int cause)
{
	switch (b->mstate) {
	case 0:
	case 1:
	case 6:
		return 0;
	case 2:
		b->locked = 1;
		go(b, 1, cause, 1);
		return 0;
	case 3:
	case 4:
	case 5:
		cancel_pending(b);
		start_deactivation(b, cause);
		return 0;
	default:
		return IPMI_NOT_SUPPORTED_IN_PRESENT_STATE_CC;
	}
}

/* Set FRU Activation (Activate); unlock: chassis power up, which overrides
 * the Locked bit and waits for a deactivation in progress. */
static int activate(struct blade *b, int cause, int unlock)
{
	switch (b->mstate) {
	case 1:
		if (b->locked && !unlock)
			return IPMI_NOT_SUPPORTED_IN_PRESENT_STATE_CC;
		b->locked = 0;
		go(b, 2, cause, 1);
		start_activation(b, cause);
		return 0;
	case 2:
		start_activation(b, cause);
		return 0;
	case 3:
	case 4:
		return 0;
	case 5:
		go(b, 4, cause, 1);
		return 0;
	case 6:
		if (unlock) {
			b->up_after_down = 1;
			return 0;
		}
		return IPMI_NOT_SUPPORTED_IN_PRESENT_STATE_CC;
	default:
		return IPMI_NOT_SUPPORTED_IN_PRESENT_STATE_CC;
	}
}

/* A payload reset: no hot-swap change, the payload's processes restart. */
static int payload_reset(struct blade *b)
{
	if (!b->power)
		return IPMI_NOT_SUPPORTED_IN_PRESENT_STATE_CC;
	run_hook(b, "reset");
	return 0;
}

/* ------------------------------------------------------- PICMG commands */

static void reply(unsigned char *rdata, unsigned int *rdata_len, unsigned char cc)
{
	rdata[0] = cc;
	if (cc == 0) {
		rdata[1] = IPMI_PICMG_GRP_EXT;
		*rdata_len = 2;
	} else {
		*rdata_len = 1;
	}
}

static void picmg_handler(lmc_data_t *mc, msg_t *msg, unsigned char *rdata, unsigned int *rdata_len,
                          void *cb_data)
{
	struct blade *b = NULL;
	unsigned int i;

	for (i = 0; i < 256; i++) {
		if (blades[i] && blades[i]->mc == mc) {
			b = blades[i];
			break;
		}
	}
	switch (msg->cmd) {
	case IPMI_PICMG_CMD_FRU_CONTROL:
	case IPMI_PICMG_CMD_SET_FRU_ACTIVATION_POLICY:
	case IPMI_PICMG_CMD_GET_FRU_ACTIVATION_POLICY:
	case IPMI_PICMG_CMD_SET_FRU_ACTIVATION:
		if (b)
			break;
		/* fall through */
	default:
		handle_picmg_msg(mc, msg, rdata, rdata_len, cb_data);
		return;
	}

	if (b->unsupported) {
		handle_invalid_cmd(mc, rdata, rdata_len);
		return;
	}
	if (check_msg_length(msg, 2, rdata, rdata_len))
		return;
	if (msg->data[1] != 0) {
		reply(rdata, rdata_len, IPMI_INVALID_DATA_FIELD_CC);
		return;
	}

	switch (msg->cmd) {
	case IPMI_PICMG_CMD_GET_FRU_ACTIVATION_POLICY:
		reply(rdata, rdata_len, 0);
		rdata[2] = (b->locked ? 0x01 : 0) | (b->deact_locked ? 0x02 : 0);
		*rdata_len = 3;
		return;

	case IPMI_PICMG_CMD_SET_FRU_ACTIVATION_POLICY:
		if (check_msg_length(msg, 4, rdata, rdata_len))
			return;
		if (msg->data[2] & 0x01)
			b->locked = msg->data[3] & 0x01;
		if (msg->data[2] & 0x02)
			b->deact_locked = !!(msg->data[3] & 0x02);
		logmsg("0x%02x: policy locked=%d deactlocked=%d", b->addr, b->locked,
		       b->deact_locked);
		if (b->mstate == 1 && !b->locked)
			go(b, 2, CAUSE_COMMANDED, 1);
		reply(rdata, rdata_len, 0);
		return;

	case IPMI_PICMG_CMD_SET_FRU_ACTIVATION:
		if (check_msg_length(msg, 3, rdata, rdata_len))
			return;
		if (msg->data[2] == 0)
			reply(rdata, rdata_len, deactivate(b, CAUSE_COMMANDED));
		else if (msg->data[2] == 1)
			reply(rdata, rdata_len, activate(b, CAUSE_COMMANDED, 0));
		else
			reply(rdata, rdata_len, IPMI_INVALID_DATA_FIELD_CC);
		return;

	default: /* FRU Control */
		if (check_msg_length(msg, 3, rdata, rdata_len))
			return;
		switch (msg->data[2]) {
		case 0: /* cold reset */
		case 1: /* warm reset */
		case 2: /* graceful reboot */
			reply(rdata, rdata_len, payload_reset(b));
			return;
		case 3: /* diagnostic interrupt: nothing to interrupt */
			reply(rdata, rdata_len, 0);
			return;
		default:
			reply(rdata, rdata_len, IPMI_INVALID_DATA_FIELD_CC);
			return;
		}
	}
}

/* ------------------------------------------------------ chassis control */

static int chassis_set(lmc_data_t *mc, int op, unsigned char *val, void *cb_data)
{
	struct blade *b = cb_data;
	int cc = 0;

	(void)mc;
	switch (op) {
	case CHASSIS_CONTROL_POWER:
		logmsg("0x%02x: chassis power %s", b->addr, val[0] ? "up" : "down");
		cc = val[0] ? activate(b, CAUSE_COMMANDED, 1) : deactivate(b, CAUSE_COMMANDED);
		break;
	case CHASSIS_CONTROL_GRACEFUL_SHUTDOWN:
		cc = deactivate(b, CAUSE_COMMANDED);
		break;
	case CHASSIS_CONTROL_RESET:
		cc = payload_reset(b);
		break;
	default: /* boot device, identify: accepted, nothing to do */
		break;
	}
	return cc ? EBUSY : 0;
}

static int chassis_get(lmc_data_t *mc, int op, unsigned char *val, void *cb_data)
{
	struct blade *b = cb_data;

	(void)mc;
	val[0] = op == CHASSIS_CONTROL_POWER ? b->power : 0;
	return 0;
}

/* ------------------------------------------------------ console commands */

static char *next_tok(char **toks)
{
	char *s = *toks, *e;

	if (!s)
		return NULL;
	s += strspn(s, " \t\r\n");
	if (!*s) {
		*toks = s;
		return NULL;
	}
	e = s + strcspn(s, " \t\r\n");
	if (*e)
		*e++ = '\0';
	*toks = e;
	return s;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!s || !*s)
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 0);
	if (errno || *end || *out > max)
		return -1;
	return 0;
}

static struct blade *blade_arg(emu_out_t *out, char **toks)
{
	char *s = next_tok(toks);
	unsigned long a;

	if (parse_uint(s, 255, &a)) {
		out->eprintf(out, "**Invalid or missing IPMC address\n");
		return NULL;
	}
	if (!blades[a]) {
		out->eprintf(out, "**0x%02lx is not a blade IPMC with a hot-swap sensor\n", a);
		return NULL;
	}
	return blades[a];
}

static void print_state(emu_out_t *out, struct blade *b)
{
	out->eprintf(out,
	             "0x%02x M%d power=%s locked=%d deactlocked=%d unsupported=%d pending=%s\n",
	             b->addr, b->mstate, b->power ? "on" : "off", b->locked, b->deact_locked,
	             b->unsupported, pending_name(b->pending));
}

static int cmd_state(emu_out_t *out, emu_data_t *emu, lmc_data_t *mc, char **toks)
{
	struct blade *b;
	unsigned int i;

	(void)emu;
	(void)mc;
	if (*toks && (*toks)[strspn(*toks, " \t\r\n")]) {
		b = blade_arg(out, toks);
		if (!b)
			return EINVAL;
		print_state(out, b);
		return 0;
	}
	for (i = 0; i < 256; i++)
		if (blades[i])
			print_state(out, blades[i]);
	return 0;
}

static int cmd_set(emu_out_t *out, emu_data_t *emu, lmc_data_t *mc, char **toks)
{
	struct blade *b;
	unsigned long m, cause = CAUSE_UNKNOWN;
	int quiet = 0, lock = -1;
	char *s;

	(void)emu;
	(void)mc;
	b = blade_arg(out, toks);
	if (!b)
		return EINVAL;
	if (parse_uint(next_tok(toks), 7, &m)) {
		out->eprintf(out, "**Invalid or missing M-state (0-7)\n");
		return EINVAL;
	}
	while ((s = next_tok(toks))) {
		if (strcmp(s, "quiet") == 0) {
			quiet = 1;
		} else if (strcmp(s, "locked") == 0) {
			lock = 1;
		} else if (strcmp(s, "unlocked") == 0) {
			lock = 0;
		} else if (strncmp(s, "cause=", 6) == 0 && !parse_uint(s + 6, 15, &cause)) {
			;
		} else {
			out->eprintf(out,
			             "**Unknown option '%s' (quiet, locked, unlocked, cause=N)\n",
			             s);
			return EINVAL;
		}
	}
	cancel_pending(b);
	if (lock >= 0)
		b->locked = lock;
	go(b, (int)m, (int)cause, !quiet);
	if (m <= 2)
		set_power(b, 0, 0);
	else if (m <= 6)
		set_power(b, 1, 0);
	return 0;
}

static int cmd_unsupported(emu_out_t *out, emu_data_t *emu, lmc_data_t *mc, char **toks)
{
	struct blade *b;
	char *s;

	(void)emu;
	(void)mc;
	b = blade_arg(out, toks);
	if (!b)
		return EINVAL;
	s = next_tok(toks);
	if (!s || (strcmp(s, "on") != 0 && strcmp(s, "off") != 0)) {
		out->eprintf(out, "**Expected on or off\n");
		return EINVAL;
	}
	b->unsupported = strcmp(s, "on") == 0;
	logmsg("0x%02x: FRU activation commands %s", b->addr,
	       b->unsupported ? "answer CC 0xC1" : "supported");
	return 0;
}

static int cmd_delay(emu_out_t *out, emu_data_t *emu, lmc_data_t *mc, char **toks)
{
	unsigned long a, c;
	char *s;

	(void)emu;
	(void)mc;
	s = next_tok(toks);
	if (s) {
		if (parse_uint(s, 600000, &a)) {
			out->eprintf(out, "**Invalid delay '%s' (milliseconds)\n", s);
			return EINVAL;
		}
		s = next_tok(toks);
		if (s && parse_uint(s, 600000, &c)) {
			out->eprintf(out, "**Invalid delay '%s' (milliseconds)\n", s);
			return EINVAL;
		}
		shutdown_ms = a;
		if (s)
			activate_ms = c;
	}
	out->eprintf(out, "shutdown_ms=%u activate_ms=%u\n", shutdown_ms, activate_ms);
	return 0;
}

static int cmd_handle(emu_out_t *out, emu_data_t *emu, lmc_data_t *mc, char **toks)
{
	struct blade *b;
	char *s;

	(void)emu;
	(void)mc;
	b = blade_arg(out, toks);
	if (!b)
		return EINVAL;
	s = next_tok(toks);
	if (s && strcmp(s, "open") == 0) {
		if (b->mstate == 4 && !b->deact_locked)
			go(b, 5, CAUSE_HANDLE, 1);
	} else if (s && strcmp(s, "close") == 0) {
		if (b->mstate == 1 && !b->locked)
			go(b, 2, CAUSE_HANDLE, 1);
	} else {
		out->eprintf(out, "**Expected open or close\n");
		return EINVAL;
	}
	print_state(out, b);
	return 0;
}

/* --------------------------------------------------------------- set-up */

static int parse_options(const char *options)
{
	char *copy, *save = NULL, *tok;
	unsigned long v;

	if (!options)
		return 0;
	copy = strdup(options);
	if (!copy)
		return ENOMEM;
	for (tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		const char *key = tok, *val;

		if (!eq) {
			logmsg("option '%s': expected key=value", tok);
			return EINVAL;
		}
		*eq = '\0';
		val = eq + 1;
		if (strcmp(key, "hs") == 0 && !parse_uint(val, 254, &v)) {
			hs_sensor = v;
		} else if (strcmp(key, "shutdown_ms") == 0 && !parse_uint(val, 600000, &v)) {
			shutdown_ms = v;
		} else if (strcmp(key, "activate_ms") == 0 && !parse_uint(val, 600000, &v)) {
			activate_ms = v;
		} else if (strcmp(key, "m5") == 0 && !parse_uint(val, 1, &v)) {
			show_m5 = (int)v;
		} else if (strcmp(key, "hooklog") == 0 && *val) {
			hook_log = strdup(val);
		} else if (strcmp(key, "hook") == 0 && *val) {
			char *arg, *save2 = NULL, *list = strdup(val);

			if (!list)
				return ENOMEM;
			hook_argc = 0;
			for (arg = strtok_r(list, ",", &save2); arg;
			     arg = strtok_r(NULL, ",", &save2)) {
				if (hook_argc == MAX_HOOK_ARGS) {
					logmsg("hook: more than %d arguments", MAX_HOOK_ARGS);
					return EINVAL;
				}
				hook_argv[hook_argc++] = arg;
			}
		} else {
			logmsg("bad option %s=%s", key, val);
			return EINVAL;
		}
	}
	free(copy);
	return 0;
}

int ipmi_sim_module_print_version(sys_data_t *s, char *options)
{
	(void)s;
	(void)options;
	printf("atca_picmg: ATCA FRU activation for the atca-lab shelf, version 1\n");
	return 0;
}

int ipmi_sim_module_init(sys_data_t *s, const char *options)
{
	int rv;

	sys = s;
	rv = parse_options(options);
	if (rv)
		return rv;
	rv = ipmi_emu_add_cmd("picmg_state", NOMC, cmd_state);
	if (!rv)
		rv = ipmi_emu_add_cmd("picmg_set", NOMC, cmd_set);
	if (!rv)
		rv = ipmi_emu_add_cmd("picmg_unsupported", NOMC, cmd_unsupported);
	if (!rv)
		rv = ipmi_emu_add_cmd("picmg_delay", NOMC, cmd_delay);
	if (!rv)
		rv = ipmi_emu_add_cmd("picmg_handle", NOMC, cmd_handle);
	return rv;
}

int ipmi_sim_module_post_init(sys_data_t *s)
{
	unsigned int a, n = 0;
	int rv;

	for (a = 0; a < 256; a++) {
		lmc_data_t *mc = s->ipmb_addrs[a];
		struct blade *b;

		if (!mc || a == SHMC_ADDR || a == s->bmc_ipmb)
			continue;
		/* A blade IPMC is an MC with the hot-swap sensor; it starts in
		 * M4 with its payload on (sets the sensor, silently, to agree). */
		if (ipmi_mc_sensor_set_bit_clr_rest(mc, 0, hs_sensor, 4, 0) != 0)
			continue;
		b = calloc(1, sizeof(*b));
		if (!b)
			return ENOMEM;
		b->addr = a;
		b->mc = mc;
		b->mstate = 4;
		b->power = 1;
		b->hook_fd = -1;
		rv = s->alloc_timer(s, blade_timeout, b, &b->timer);
		if (rv) {
			logmsg("0x%02x: cannot allocate a timer: %s", a, strerror(rv));
			free(b);
			return rv;
		}
		ipmi_mc_set_chassis_control_func(mc, chassis_set, chassis_get, b);
		blades[a] = b;
		n++;
	}
	ipmi_emu_register_group_extension_handler(IPMI_PICMG_GRP_EXT, picmg_handler, NULL);
	logmsg("%u blade IPMC(s), hot-swap sensor %u, shutdown %u ms, M3 %u ms, m5=%d, hook %s", n,
	       hs_sensor, shutdown_ms, activate_ms, show_m5, hook_argc ? hook_argv[0] : "none");
	return 0;
}
