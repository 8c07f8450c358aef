/*
 * The failure-model simulator: events file -> model -> JSON lines.
 *
 *   TIME_MS SOURCE BLADE KIND [key=value ...]      # see atca-ft-failure-model(7)
 *
 * Event ids are line numbers, so a fault's "causes" point back into the
 * file. A malformed line is reported with its number and skipped; every
 * other line is still replayed, so one typo never hides the rest.
 */
#include "config.h"

#include "fm_sim.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "af_ipmi.h"
#include "af_util.h"
#include "fm.h"
#include "fm_rules.h"

#define MAX_TOK 24
#define TOK_LEN 160

struct tok {
	char key[AF_KV_KEY_MAX + 8]; /* "" for a bare word */
	char val[TOK_LEN];
};

static int fail(char *msg, size_t len, const char *fmt, ...) AF_PRINTF(3, 4);
static int fail(char *msg, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, len, fmt, ap);
	va_end(ap);
	return FM_SIM_MALFORMED;
}

/* Words and key=value pairs; a value may be "quoted" (\" and \\ inside). */
static int tokenize(const char *s, struct tok *t, int max, char *msg, size_t msglen)
{
	int n = 0;

	for (;;) {
		size_t kl = 0, vl = 0;

		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (*s == '\0' || *s == '#')
			return n;
		if (n == max) {
			fail(msg, msglen, "too many words (at most %d)", max);
			return -1;
		}
		t[n].key[0] = t[n].val[0] = '\0';
		/* a key ends at '=' */
		while (*s && *s != ' ' && *s != '\t' && *s != '\r' && *s != '=' && *s != '"') {
			if (kl + 1 >= sizeof(t[n].val)) {
				fail(msg, msglen, "a word longer than %zu bytes",
				     sizeof(t[n].val) - 1);
				return -1;
			}
			t[n].val[kl++] = *s++;
		}
		t[n].val[kl] = '\0';
		if (*s == '=') {
			if (kl == 0 || kl >= sizeof(t[n].key)) {
				fail(msg, msglen, "'%s=': not a key", t[n].val);
				return -1;
			}
			memcpy(t[n].key, t[n].val, kl + 1);
			s++;
			if (*s == '"') {
				s++;
				while (*s && *s != '"') {
					if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
						s++;
					if (vl + 1 >= sizeof(t[n].val)) {
						fail(msg, msglen, "value of %s too long", t[n].key);
						return -1;
					}
					t[n].val[vl++] = *s++;
				}
				if (*s != '"') {
					fail(msg, msglen, "value of %s: missing closing quote",
					     t[n].key);
					return -1;
				}
				s++;
			} else {
				while (*s && *s != ' ' && *s != '\t' && *s != '\r') {
					if (*s == '"') {
						fail(msg, msglen,
						     "value of %s: a quote inside a value",
						     t[n].key);
						return -1;
					}
					if (vl + 1 >= sizeof(t[n].val)) {
						fail(msg, msglen, "value of %s too long", t[n].key);
						return -1;
					}
					t[n].val[vl++] = *s++;
				}
			}
			t[n].val[vl] = '\0';
			if (vl == 0) {
				fail(msg, msglen, "%s= has no value", t[n].key);
				return -1;
			}
		} else if (*s == '"') {
			fail(msg, msglen, "a quote outside key=\"value\"");
			return -1;
		}
		n++;
	}
}

static const char *get(const struct tok *t, int n, const char *key)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(t[i].key, key) == 0)
			return t[i].val;
	}
	return NULL;
}

static bool one_of(const char *v, const char *const *set)
{
	for (; v && *set; set++) {
		if (strcmp(v, *set) == 0)
			return true;
	}
	return false;
}

/* Copies the key=value pairs as details, except those in skip. */
static int copy_details(struct af_event *ev, const struct tok *t, int n, const char *const *skip,
                        char *msg, size_t msglen)
{
	for (int i = 0; i < n; i++) {
		int rc;

		if (t[i].key[0] == '\0' || one_of(t[i].key, skip))
			continue;
		rc = af_event_set(ev, t[i].key, "%s", t[i].val);
		if (rc < 0)
			return fail(msg, msglen, "%s=%s: %s", t[i].key, t[i].val,
			            rc == -E2BIG ? "value too long" : "not a valid detail");
	}
	return 0;
}

static const char *const thr_states[] = {"ok",
                                         "lower-non-critical",
                                         "lower-critical",
                                         "lower-non-recoverable",
                                         "upper-non-critical",
                                         "upper-critical",
                                         "upper-non-recoverable",
                                         NULL};
static const char *const mstates[] = {"M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7", NULL};

/* "ipmi BLADE sensor|sel|hotswap|ipmc ..." */
static int ipmi_line(struct af_event *ev, int blade, const struct tok *t, int n, char *msg,
                     size_t msglen)
{
	const char *kind = t[3].val;

	if (strcmp(kind, "sensor") == 0) {
		static const char *const skip[] = {"name", "value", NULL};
		const char *name = get(t, n, "name"), *type = get(t, n, "type");
		const char *state = get(t, n, "state"), *value = get(t, n, "value");

		if (!name || !type || !state)
			return fail(msg, msglen, "sensor needs name=, type= and state=");
		if (!one_of(state, thr_states))
			return fail(msg, msglen,
			            "state=%s: not a threshold state (ok, "
			            "upper-critical, lower-non-recoverable, ...)",
			            state);
		af_event_init(ev, AF_SRC_IPMI, AF_EV_SENSOR_THRESHOLD, blade, name);
		if (value && af_event_set(ev, "reading", "%s", value) < 0)
			return fail(msg, msglen, "value=%s: too long", value);
		return copy_details(ev, t + 4, n - 4, skip, msg, msglen);
	}
	if (strcmp(kind, "sel") == 0) {
		static const char *const skip[] = {"type", "offset", "assert", "name", NULL};
		const char *type = get(t, n, "type"), *off = get(t, n, "offset");
		const char *as = get(t, n, "assert"), *name = get(t, n, "name");
		const char *meaning;
		uint64_t o;
		int code;

		if (!type || !off)
			return fail(msg, msglen, "sel needs type= and offset=");
		if (af_parse_u64(off, 0, 14, &o) < 0)
			return fail(msg, msglen, "offset=%s: a number from 0 to 14", off);
		if (as && strcmp(as, "1") != 0 && strcmp(as, "0") != 0)
			return fail(msg, msglen, "assert=%s: 1 or 0", as);
		code = af_sensor_type_code(type);
		meaning = code >= 0 ? af_sel_offset_name((uint8_t)code, 0x6F, (unsigned)o) : NULL;
		af_event_init(ev, AF_SRC_IPMI, AF_EV_SEL_RECORD, blade, name ? name : type);
		if (af_event_set(ev, "sensor_type", "%s", type) < 0)
			return fail(msg, msglen, "type=%s: too long", type);
		af_event_set(ev, "dir", "%s", as && strcmp(as, "0") == 0 ? "deassert" : "assert");
		af_event_set(ev, "offset", "%u", (unsigned)o);
		af_event_set(ev, "meaning", "%s", meaning ? meaning : "unknown");
		return copy_details(ev, t + 4, n - 4, skip, msg, msglen);
	}
	if (strcmp(kind, "hotswap") == 0) {
		static const char *const causes[] = {"requested", "unexpected", "operator", NULL};
		static const char *const skip[] = {"from", "to", "cause", NULL};
		const char *from = get(t, n, "from"), *to = get(t, n, "to"),
		           *cause = get(t, n, "cause");

		if (!from || !to)
			return fail(msg, msglen, "hotswap needs from= and to=");
		if (!one_of(from, mstates) || !one_of(to, mstates))
			return fail(msg, msglen, "hotswap from=%s to=%s: M-states are M0..M7", from,
			            to);
		if (cause && !one_of(cause, causes))
			return fail(msg, msglen, "cause=%s: requested, unexpected or operator",
			            cause);
		af_event_init(ev, AF_SRC_SHELF, AF_EV_HOTSWAP, blade, "payload");
		af_event_set(ev, "from", "%s", from);
		af_event_set(ev, "to", "%s", to);
		af_event_set(ev, "cause", "%s", cause ? cause : "unexpected");
		return copy_details(ev, t + 4, n - 4, skip, msg, msglen);
	}
	if (strcmp(kind, "ipmc") == 0) {
		const char *state = get(t, n, "state");
		static const char *const skip[] = {"state", NULL};

		if (!state ||
		    (strcmp(state, "unreachable") != 0 && strcmp(state, "reachable") != 0))
			return fail(msg, msglen, "ipmc needs state=unreachable or state=reachable");
		af_event_init(ev, AF_SRC_IPMI,
		              state[0] == 'u' ? AF_EV_IPMC_UNREACHABLE : AF_EV_IPMC_REACHABLE,
		              blade, "IPMC");
		return copy_details(ev, t + 4, n - 4, skip, msg, msglen);
	}
	return FM_SIM_UNKNOWN;
}

static int vm_line(struct af_event *ev, enum af_ev_source src, enum af_ev_kind kind, int blade,
                   const struct tok *t, int n, const char *key, const char *const *values,
                   char *msg, size_t msglen)
{
	static const char *const skip[] = {"name", NULL};
	const char *name = get(t, n, "name"), *v = get(t, n, key);

	if (!name || !v)
		return fail(msg, msglen, "%s vm needs name= and %s=", t[1].val, key);
	if (!one_of(v, values))
		return fail(msg, msglen, "%s=%s: not one of the known values", key, v);
	if (strlen(name) >= AF_VM_NAME_MAX)
		return fail(msg, msglen, "name=%s: longer than %d bytes", name, AF_VM_NAME_MAX - 1);
	af_event_init(ev, src, kind, blade, name);
	return copy_details(ev, t + 4, n - 4, skip, msg, msglen);
}

enum fm_sim_line fm_sim_parse_line(const char *line, unsigned lineno, struct af_event *ev,
                                   char *msg, size_t msglen)
{
	struct tok t[MAX_TOK];
	int n, rc, blade = 0;
	uint64_t ms, b;
	const char *src;

	msg[0] = '\0';
	n = tokenize(line, t, MAX_TOK, msg, msglen);
	if (n < 0)
		return FM_SIM_MALFORMED;
	if (n == 0)
		return FM_SIM_NOTHING;
	/* atca-ftd's own event text (t=... src=... kind=...) replays too */
	if (strcmp(t[0].key, "t") == 0) {
		const char *esrc = get(t, n, "src"), *kind = get(t, n, "kind");
		char err[160];

		/* a newer atca-ftd's log may name what this model does not know */
		if ((esrc && af_enum_parse(af_ev_source_names, AF_SRC_COUNT, esrc) < 0) ||
		    (kind && af_enum_parse(af_ev_kind_names, AF_EV_KIND_COUNT, kind) < 0)) {
			snprintf(msg, msglen, "unknown event '%s %s': ignored", esrc ? esrc : "?",
			         kind ? kind : "?");
			return FM_SIM_UNKNOWN;
		}

		if (af_event_parse(line, ev, err, sizeof(err)) < 0)
			return fail(msg, msglen, "%s", err);
		ev->id = lineno;
		return FM_SIM_EVENT;
	}
	/* at most 10^12 ms (31 years): deadlines never wrap */
	if (t[0].key[0] || af_parse_u64(t[0].val, 0, 1000000000000ULL, &ms) < 0)
		return fail(msg, msglen, "'%s': a line starts with the time in milliseconds",
		            t[0].key[0] ? t[0].key : t[0].val);
	if (n < 2)
		return fail(msg, msglen, "a time and nothing else");
	src = t[1].val;
	if (t[1].key[0])
		return fail(msg, msglen, "'%s=': the source comes after the time", t[1].key);
	if (strcmp(src, "tick") == 0 && n == 2) {
		memset(ev, 0, sizeof(*ev));
		ev->ts_ns = ms * AF_NS_PER_MS;
		return FM_SIM_TICK;
	}
	/* quorum has no blade: "quorum state=..." (or "quorum BLADE state=...") */
	if (strcmp(src, "quorum") == 0) {
		static const char *const qs[] = {"lost", "regained", NULL};
		int first = 2;
		const char *state;

		if (n > 2 && t[2].key[0] == '\0') {
			if (af_parse_u64(t[2].val, 0, AF_MAX_BLADES, &b) < 0)
				return fail(msg, msglen, "'%s': a blade is 0..%d", t[2].val,
				            AF_MAX_BLADES);
			blade = (int)b;
			first = 3;
		}
		state = get(t + first, n - first, "state");
		if (!one_of(state, qs))
			return fail(msg, msglen, "quorum needs state=lost or state=regained");
		af_event_init(ev, AF_SRC_CLUSTER, AF_EV_QUORUM, blade, "quorum");
		af_event_set(ev, "state", "%s", state);
		ev->ts_ns = ms * AF_NS_PER_MS;
		ev->id = lineno;
		return FM_SIM_EVENT;
	}
	if (n < 4 || t[2].key[0] || t[3].key[0])
		return fail(msg, msglen, "TIME_MS SOURCE BLADE KIND [key=value ...]");
	if (af_parse_u64(t[2].val, 0, AF_MAX_BLADES, &b) < 0)
		return fail(msg, msglen, "'%s': a blade is 0..%d", t[2].val, AF_MAX_BLADES);
	blade = (int)b;
	for (int i = 4; i < n; i++) {
		if (t[i].key[0] == '\0')
			return fail(msg, msglen, "'%s': after the kind, only key=value", t[i].val);
	}

	if (strcmp(src, "ipmi") == 0) {
		rc = ipmi_line(ev, blade, t, n, msg, msglen);
	} else if (strcmp(src, "member") == 0) {
		if (strcmp(t[3].val, "lost") == 0 || strcmp(t[3].val, "joined") == 0) {
			af_event_init(ev, AF_SRC_CLUSTER,
			              t[3].val[0] == 'l' ? AF_EV_NODE_LEAVE : AF_EV_NODE_JOIN,
			              blade, "node");
			rc = copy_details(ev, t + 4, n - 4, (const char *const[]){NULL}, msg,
			                  msglen);
		} else {
			rc = FM_SIM_UNKNOWN;
		}
	} else if (strcmp(src, "libvirt") == 0) {
		if (strcmp(t[3].val, "connection") == 0) {
			const char *state = get(t, n, "state");

			if (!state ||
			    (strcmp(state, "lost") != 0 && strcmp(state, "restored") != 0))
				return fail(msg, msglen,
				            "connection needs state=lost or state=restored");
			af_event_init(ev, AF_SRC_HYPERVISOR,
			              state[0] == 'l' ? AF_EV_HYPERVISOR_DOWN : AF_EV_HYPERVISOR_UP,
			              blade, "libvirt");
			rc = copy_details(ev, t + 4, n - 4, (const char *const[]){"state", NULL},
			                  msg, msglen);
		} else if (strcmp(t[3].val, "vm") == 0) {
			static const char *const evs[] = {"crashed", "stopped-failed", "watchdog",
			                                  "started", "stopped",        NULL};

			rc = vm_line(ev, AF_SRC_VM, AF_EV_VM_LIFECYCLE, blade, t, n, "event", evs,
			             msg, msglen);
		} else {
			rc = FM_SIM_UNKNOWN;
		}
	} else if (strcmp(src, "engine") == 0) {
		static const char *const sts[] = {"backup-lost", "replication-stalled", "ok", NULL};

		rc = strcmp(t[3].val, "vm") == 0 ? vm_line(ev, AF_SRC_ENGINE, AF_EV_ENGINE_HEALTH,
		                                           blade, t, n, "state", sts, msg, msglen)
		                                 : FM_SIM_UNKNOWN;
	} else {
		rc = FM_SIM_UNKNOWN;
	}
	if (rc == FM_SIM_UNKNOWN) {
		snprintf(msg, msglen, "unknown event '%s %s': ignored", src, t[3].val);
		return FM_SIM_UNKNOWN;
	}
	if (rc != 0)
		return FM_SIM_MALFORMED;
	ev->ts_ns = ms * AF_NS_PER_MS;
	ev->id = lineno;
	return FM_SIM_EVENT;
}

/* ---- the replay -------------------------------------------------------------------- */

struct sim {
	FILE *out, *err;
	const char *name;
	const struct fm_sim_hooks *hooks;
};

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void on_fault(void *opaque, const struct fm_report *r)
{
	struct sim *s = opaque;
	const struct af_fault *f = r->fault;
	char target[AF_VM_NAME_MAX + 16];

	af_fault_target(f, target, sizeof(target));
	fprintf(s->out, "{\"t_ms\":%" PRIu64 ",\"op\":\"%s\",\"fault\":%" PRIu64 ",\"rule\":",
	        (uint64_t)(r->now_ns / AF_NS_PER_MS), fm_fault_op_names[r->op], f->id);
	json_str(s->out, f->rule);
	fprintf(s->out, ",\"layer\":\"%s\",\"severity\":\"%s\",\"scope\":\"%s\",\"target\":",
	        af_layer_names[f->layer], af_severity_names[f->severity], af_scope_names[f->scope]);
	json_str(s->out, target);
	fprintf(s->out, ",\"action\":\"%s\",\"causes\":[", af_rclass_names[f->rclass]);
	for (unsigned i = 0; i < f->n_causes; i++)
		fprintf(s->out, "%s%" PRIu64, i ? "," : "", f->causes[i]);
	fprintf(s->out, "]");
	if (f->causes_dropped)
		fprintf(s->out, ",\"causes_dropped\":%u", f->causes_dropped);
	if (r->why != FM_WHY_NONE)
		fprintf(s->out, ",\"why\":\"%s\"", fm_why_names[r->why]);
	if (r->merged_into)
		fprintf(s->out, ",\"merged_into\":%" PRIu64, r->merged_into);
	if (r->escalated)
		fprintf(s->out, ",\"escalated\":true");
	/* what a resumed plan checks again (atca-ftd(8), RECOVERY) */
	if (f->membership_only)
		fprintf(s->out, ",\"evidence\":\"membership\"");
	fprintf(s->out, "}\n");
	if (s->hooks && s->hooks->report)
		s->hooks->report(s->hooks->opaque, r, s->out);
}

static void on_ignored(void *opaque, const struct af_event *ev, const char *why)
{
	struct sim *s = opaque;

	fprintf(s->err, "%s:%" PRIu64 ": warning: %s\n", s->name, ev->id, why);
}

int fm_sim_run(const char *text, size_t len, const char *name, struct fm_rules *rules, FILE *out,
               FILE *err)
{
	return fm_sim_run_hooks(text, len, name, rules, out, err, NULL);
}

int fm_sim_run_hooks(const char *text, size_t len, const char *name, struct fm_rules *rules,
                     FILE *out, FILE *err, const struct fm_sim_hooks *hooks)
{
	struct sim sim = {.out = out, .err = err, .name = name ? name : "events", .hooks = hooks};
	struct fm_ops ops = {.fault = on_fault, .ignored = on_ignored};
	struct fm *m = NULL;
	struct af_event ev;
	char linebuf[2048], msg[256];
	size_t pos = 0;
	unsigned lineno = 0;
	uint64_t last = 0;
	int rc, bad = 0;

	if (text == NULL || out == NULL || err == NULL) {
		fm_rules_free(rules);
		return -EINVAL;
	}
	rc = fm_init_rules(&m, NULL, rules, &ops, &sim);
	if (rc < 0)
		return rc;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		enum fm_sim_line kind;

		lineno++;
		if (l >= sizeof(linebuf) || memchr(text + pos, '\0', l)) {
			fprintf(err, "%s:%u: error: %s\n", sim.name, lineno,
			        l >= sizeof(linebuf) ? "line too long" : "a NUL byte");
			bad = 1;
			pos += l + (nl ? 1 : 0);
			continue;
		}
		memcpy(linebuf, text + pos, l);
		linebuf[l] = '\0';
		pos += l + (nl ? 1 : 0);
		kind = fm_sim_parse_line(linebuf, lineno, &ev, msg, sizeof(msg));
		switch (kind) {
		case FM_SIM_NOTHING:
			break;
		case FM_SIM_UNKNOWN:
			fprintf(err, "%s:%u: warning: %s\n", sim.name, lineno, msg);
			break;
		case FM_SIM_MALFORMED:
			fprintf(err, "%s:%u: error: %s\n", sim.name, lineno, msg);
			bad = 1;
			break;
		case FM_SIM_TICK:
			fm_tick(m, ev.ts_ns);
			if (ev.ts_ns > last)
				last = ev.ts_ns;
			break;
		case FM_SIM_EVENT:
			if (hooks && hooks->event)
				hooks->event(hooks->opaque, &ev);
			if (fm_event(m, &ev) < 0) {
				fprintf(err, "%s:%u: error: the model refused the event\n",
				        sim.name, lineno);
				bad = 1;
			}
			if (ev.ts_ns > last)
				last = ev.ts_ns;
			break;
		}
	}
	/* the end of the file lets held decisions be made (and what is due
	 * before them), nothing later */
	if (fm_hold_horizon(m) != 0)
		fm_tick(m, fm_hold_horizon(m));
	fm_fini(m);
	fflush(out);
	return bad;
}
