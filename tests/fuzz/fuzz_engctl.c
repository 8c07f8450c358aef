/*
 * libFuzzer target: what an engine (atca-vmft) says to the manager, as the
 * manager's vmft-bridge (src/vmft-bridge/vft.c) reads it. The input is the
 * byte stream of one engine's subscription: it goes through the bridge's
 * own reader (on_link: its 2 KiB line buffer, line splitting, the
 * too-long-line and end-of-stream paths) into link_line (state and event
 * lines), and each complete line is also judged as the answer to an order
 * (answer_rc) and to a promotion (promoted_msg). vft.c is included for
 * those static functions; nothing else of it runs (no loop timer, no
 * engine started: the engine's death only schedules a restart).
 *
 * Checked: the link's buffer accounting stays within the buffer and the
 * stream is consumed to its end; the engine state the bridge keeps is a
 * terminated string of the link's size; every event handed to the failure
 * model is one it can format, and the text parses back to the same text;
 * answer_rc says 0 (with an empty message), -EREMOTEIO or -EPROTO (with a
 * message), and the messages are terminated within their buffers.
 */
#include "../../src/vmft-bridge/vft.c"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int cond)
{
	if (!cond)
		__builtin_trap();
}

static unsigned n_events;

static void sink(void *opaque, struct af_event *ev)
{
	char text[AF_EV_TEXT_MAX], again[AF_EV_TEXT_MAX], err[128];
	struct af_event back;

	(void)opaque;
	n_events++;
	expect(af_event_format(ev, text, sizeof(text)) >= 0);
	expect(af_event_parse(text, &back, err, sizeof(err)) == 0);
	expect(af_event_format(&back, again, sizeof(again)) >= 0);
	expect(strcmp(text, again) == 0);
}

static void check_answers(const char *line)
{
	char msg[256];
	int rc;

	memset(msg, 'Z', sizeof(msg));
	rc = answer_rc(line, msg, sizeof(msg));
	expect(rc == 0 || rc == -EREMOTEIO || rc == -EPROTO);
	expect(memchr(msg, '\0', sizeof(msg)) != NULL);
	expect(rc == 0 ? msg[0] == '\0' : msg[0] != '\0');
	memset(msg, 'Z', sizeof(msg));
	promoted_msg(line, msg, sizeof(msg));
	expect(memchr(msg, '\0', sizeof(msg)) != NULL && msg[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct af_config *cfg;
	static qb_loop_t *loop;
	struct af_module_env env = {0};
	struct vft *m = NULL;
	struct vft_link *l;
	int sv[2];
	size_t sent = 0;

	if (cfg == NULL) {
		cfg = calloc(1, sizeof(*cfg));
		loop = qb_loop_create();
		expect(cfg != NULL && loop != NULL);
		cfg->n_vms = 1;
		af_strlcpy(cfg->vms[0].name, "vm1", sizeof(cfg->vms[0].name));
		cfg->daemon.local_blade = 3;
		cfg->vmft.restart_backup = true;
	}
	/* each complete line, as an answer to an order */
	for (size_t i = 0; i < size;) {
		const uint8_t *nl = memchr(data + i, '\n', size - i);
		size_t n = nl ? (size_t)(nl - (data + i)) : size - i;
		char *line = malloc(n + 1);

		expect(line != NULL);
		memcpy(line, data + i, n);
		line[n] = '\0';
		if (strlen(line) == n)
			check_answers(line);
		free(line);
		i += n + 1;
	}
	/* the stream, through the bridge's reader (vft_init without a loop
	 * starts no timer; the link gets a loop for its poll_del) */
	env.cfg = cfg;
	env.event_sink = sink;
	expect(vft_init(&m, &env) == 0);
	m->env.loop = loop;
	expect(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0);
	l = &m->links[0];
	l->fd = sv[0];
	m->connected = 1;
	n_events = 0;
	for (unsigned rounds = 0; l->fd >= 0; rounds++) {
		ssize_t w = 0;

		if (sent < size) {
			w = send(sv[1], data + sent, size - sent, MSG_NOSIGNAL);
			expect(w > 0);
			sent += (size_t)w;
			if (sent == size)
				shutdown(sv[1], SHUT_WR);
		} else if (size == 0 && rounds == 0) {
			shutdown(sv[1], SHUT_WR);
		}
		on_link(sv[0], POLLIN, m);
		expect(l->fd < 0 || l->len < sizeof(l->buf));
		expect(memchr(l->state, '\0', sizeof(l->state)) != NULL);
		expect(rounds < 4 * size + 16); /* every call consumes or closes */
	}
	/* closed: at the end of the stream, or a line too long for the buffer */
	expect(m->connected == 0 && l->len == 0 && l->state[0] == '\0');
	expect(n_events <= size / 8 + 1);
	close(sv[1]); /* sv[0] was the link's: closed with it */
	m->env.loop = NULL;
	vft_fini(m);
	return 0;
}
