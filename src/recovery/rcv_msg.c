/*
 * Cluster messages: see rcv_msg.h.
 */
#include "config.h"

#include "rcv_msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "af_util.h"

const char *const rcv_msg_type_names[RCV_MSG_TYPE_MAX] = {"?", "state", "plan", "progress"};

static const char *const step_states[] = {"started", "done", "failed"};
static const char *const run_states[] = {"running", "waiting-quorum", "done", "failed"};
static const char *const vm_states[] = {"running", "paused",   "shutoff",   "crashed",
                                        "blocked", "shutdown", "suspended", "unknown"};

static uint32_t fnv(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 16777619u;
	}
	return h;
}

static void put32(unsigned char *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}
static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return ntohl(v);
}

/* ---- encoding ------------------------------------------------------------------------- */

static json_object *jstr(const char *s)
{
	return json_object_new_string(s);
}

static json_object *state_body(const struct rcv_msg_state *s)
{
	json_object *o = json_object_new_object(), *a;

	json_object_object_add(o, "libvirt_up", json_object_new_boolean(s->libvirt_up));
	json_object_object_add(o, "maintenance", json_object_new_boolean(s->maintenance));
	json_object_object_add(o, "quorate", json_object_new_boolean(s->quorate));
	a = json_object_new_array();
	for (unsigned i = 0; i < s->n_vms; i++) {
		json_object *v = json_object_new_object();

		json_object_object_add(v, "name", jstr(s->vms[i].name));
		json_object_object_add(v, "state", jstr(s->vms[i].state));
		json_object_array_add(a, v);
	}
	json_object_object_add(o, "vms", a);
	a = json_object_new_array();
	for (unsigned i = 0; i < s->n_runs; i++) {
		json_object *v = json_object_new_object();

		json_object_object_add(v, "id", json_object_new_int64((int64_t)s->runs[i].id));
		json_object_object_add(v, "state", jstr(s->runs[i].state));
		json_object_object_add(v, "step", json_object_new_int((int)s->runs[i].step));
		json_object_object_add(v, "n_steps", json_object_new_int((int)s->runs[i].n_steps));
		json_object_object_add(v, "summary", jstr(s->runs[i].summary));
		json_object_array_add(a, v);
	}
	json_object_object_add(o, "runs", a);
	a = json_object_new_array();
	for (unsigned i = 0; i < s->n_faults; i++)
		json_object_array_add(a, jstr(s->faults[i]));
	json_object_object_add(o, "faults", a);
	return o;
}

static json_object *plan_body(const struct rcv_msg_plan *m)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();
	const struct rcv_plan *p = &m->plan;

	json_object_object_add(o, "id", json_object_new_int64((int64_t)m->id));
	json_object_object_add(o, "fault", json_object_new_int64((int64_t)p->fault_id));
	json_object_object_add(o, "class", jstr(af_rclass_names[p->rclass]));
	json_object_object_add(o, "owner", json_object_new_int(p->owner));
	json_object_object_add(o, "evidence", jstr(p->membership_only ? "membership" : "events"));
	json_object_object_add(o, "summary", jstr(p->summary));
	for (unsigned i = 0; i < p->n_steps; i++) {
		const struct rcv_step *s = &p->steps[i];
		json_object *j = json_object_new_object();

		json_object_object_add(j, "kind", jstr(rcv_step_names[s->kind]));
		json_object_object_add(j, "blade", json_object_new_int(s->blade));
		json_object_object_add(j, "vm", jstr(s->vm));
		json_object_object_add(j, "timeout_ms", json_object_new_int64(s->timeout_ms));
		json_object_object_add(j, "why", jstr(s->why));
		json_object_object_add(j, "on_fail", jstr(rcv_step_names[s->on_fail_escalate]));
		json_object_array_add(a, j);
	}
	json_object_object_add(o, "steps", a);
	return o;
}

static json_object *progress_body(const struct rcv_msg_progress *m)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64((int64_t)m->id));
	json_object_object_add(o, "step", json_object_new_int((int)m->step));
	json_object_object_add(o, "step_state", jstr(m->step_state));
	json_object_object_add(o, "run_state", jstr(m->run_state));
	json_object_object_add(o, "msg", jstr(m->msg));
	return o;
}

int rcv_msg_encode(const struct rcv_msg *m, char *buf, size_t len)
{
	json_object *body;
	const char *txt;
	size_t n;
	unsigned char *h = (unsigned char *)buf;

	if (m == NULL || buf == NULL || m->type <= 0 || m->type >= RCV_MSG_TYPE_MAX)
		return -EINVAL;
	switch (m->type) {
	case RCV_MSG_STATE:
		body = state_body(&m->u.state);
		break;
	case RCV_MSG_PLAN:
		body = plan_body(&m->u.plan);
		break;
	default:
		body = progress_body(&m->u.progress);
		break;
	}
	txt = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	n = strlen(txt);
	if (RCV_MSG_HDR + n > len || RCV_MSG_HDR + n > RCV_MSG_MAX) {
		json_object_put(body);
		return -ENOSPC;
	}
	put32(h, RCV_MSG_MAGIC);
	h[4] = 0;
	h[5] = RCV_MSG_VERSION;
	h[6] = 0;
	h[7] = (unsigned char)m->type;
	put32(h + 8, (uint32_t)n);
	put32(h + 12, m->sender);
	put32(h + 16, (uint32_t)(m->seq >> 32));
	put32(h + 20, (uint32_t)m->seq);
	put32(h + 24, fnv(txt, n));
	put32(h + 28, 0);
	memcpy(buf + RCV_MSG_HDR, txt, n);
	json_object_put(body);
	return (int)(RCV_MSG_HDR + n);
}

/* ---- decoding ------------------------------------------------------------------------- */

struct ck {
	char *why;
	size_t whylen;
	bool bad;
};

static void fail(struct ck *c, const char *fmt, ...) AF_PRINTF(2, 3);
static void fail(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	if (c->bad)
		return; /* the first reason is the one worth logging */
	c->bad = true;
	va_start(ap, fmt);
	vsnprintf(c->why, c->whylen, fmt, ap);
	va_end(ap);
}

static json_object *field(struct ck *c, json_object *o, const char *key, json_type t)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || v == NULL) {
		fail(c, "field '%s' missing", key);
		return NULL;
	}
	if (!json_object_is_type(v, t)) {
		fail(c, "field '%s' has the wrong type", key);
		return NULL;
	}
	return v;
}

static bool get_bool(struct ck *c, json_object *o, const char *key)
{
	json_object *v = field(c, o, key, json_type_boolean);

	return v ? json_object_get_boolean(v) : false;
}

static int64_t get_int(struct ck *c, json_object *o, const char *key, int64_t lo, int64_t hi)
{
	json_object *v = field(c, o, key, json_type_int);
	int64_t x;

	if (v == NULL)
		return lo;
	x = json_object_get_int64(v);
	if (x < lo || x > hi) {
		fail(c, "field '%s' = %lld out of range %lld..%lld", key, (long long)x,
		     (long long)lo, (long long)hi);
		return lo;
	}
	return x;
}

/* Printable text that fits, with no control characters. */
static void get_str(struct ck *c, json_object *o, const char *key, char *dst, size_t dlen)
{
	json_object *v = field(c, o, key, json_type_string);
	const char *s;
	size_t n;

	dst[0] = '\0';
	if (v == NULL)
		return;
	s = json_object_get_string(v);
	n = (size_t)json_object_get_string_len(v);
	if (n >= dlen) {
		fail(c, "field '%s' too long (%zu bytes)", key, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			fail(c, "field '%s' has a control character", key);
			return;
		}
	}
	memcpy(dst, s, n + 1);
}

static int one_of(struct ck *c, const char *key, const char *val, const char *const *tbl, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(val, tbl[i]) == 0)
			return (int)i;
	}
	fail(c, "field '%s' = '%s' is not a known value", key, val);
	return -1;
}

static void vm_name(struct ck *c, const char *key, const char *s, bool may_be_empty)
{
	if (s[0] == '\0' && may_be_empty)
		return;
	if (!af_valid_name(s, AF_VM_NAME_MAX - 1))
		fail(c, "field '%s' = '%s' is not a valid VM name", key, s);
}

static json_object *array(struct ck *c, json_object *o, const char *key, size_t max, size_t *n)
{
	json_object *a = field(c, o, key, json_type_array);

	*n = 0;
	if (a == NULL)
		return NULL;
	*n = json_object_array_length(a);
	if (*n > max) {
		fail(c, "field '%s' has %zu entries (at most %zu)", key, *n, max);
		*n = 0;
		return NULL;
	}
	return a;
}

static void dec_state(struct ck *c, json_object *o, struct rcv_msg_state *s)
{
	json_object *a;
	size_t n;

	s->libvirt_up = get_bool(c, o, "libvirt_up");
	s->maintenance = get_bool(c, o, "maintenance");
	s->quorate = get_bool(c, o, "quorate");
	a = array(c, o, "vms", RCV_MAX_VMS, &n);
	for (size_t i = 0; a != NULL && i < n && !c->bad; i++) {
		json_object *v = json_object_array_get_idx(a, i);

		if (!json_object_is_type(v, json_type_object)) {
			fail(c, "vms[%zu] is not an object", i);
			break;
		}
		get_str(c, v, "name", s->vms[i].name, sizeof(s->vms[i].name));
		get_str(c, v, "state", s->vms[i].state, sizeof(s->vms[i].state));
		vm_name(c, "vms.name", s->vms[i].name, false);
		one_of(c, "vms.state", s->vms[i].state, vm_states, AF_ARRAY_SIZE(vm_states));
		s->n_vms = (unsigned)i + 1;
	}
	a = array(c, o, "runs", RCV_MSG_MAX_RUNS, &n);
	for (size_t i = 0; a != NULL && i < n && !c->bad; i++) {
		json_object *v = json_object_array_get_idx(a, i);
		struct rcv_msg_run *r = &s->runs[i];

		if (!json_object_is_type(v, json_type_object)) {
			fail(c, "runs[%zu] is not an object", i);
			break;
		}
		r->id = (uint64_t)get_int(c, v, "id", 1, INT64_MAX);
		get_str(c, v, "state", r->state, sizeof(r->state));
		one_of(c, "runs.state", r->state, run_states, AF_ARRAY_SIZE(run_states));
		r->n_steps = (unsigned)get_int(c, v, "n_steps", 1, RCV_MAX_STEPS);
		r->step = (unsigned)get_int(c, v, "step", 0, RCV_MAX_STEPS);
		if (!c->bad && r->step > r->n_steps)
			fail(c, "runs[%zu]: step %u beyond its %u steps", i, r->step, r->n_steps);
		get_str(c, v, "summary", r->summary, sizeof(r->summary));
		s->n_runs = (unsigned)i + 1;
	}
	a = array(c, o, "faults", RCV_MSG_MAX_FAULTS, &n);
	for (size_t i = 0; a != NULL && i < n && !c->bad; i++) {
		json_object *v = json_object_array_get_idx(a, i);

		if (!json_object_is_type(v, json_type_string) ||
		    (size_t)json_object_get_string_len(v) >= sizeof(s->faults[i])) {
			fail(c, "faults[%zu] is not a short string", i);
			break;
		}
		af_strlcpy(s->faults[i], json_object_get_string(v), sizeof(s->faults[i]));
		s->n_faults = (unsigned)i + 1;
	}
}

static void dec_plan(struct ck *c, json_object *o, struct rcv_msg_plan *m)
{
	struct rcv_plan *p = &m->plan;
	char cls[32];
	json_object *a;
	size_t n;
	int k;

	m->id = (uint64_t)get_int(c, o, "id", 1, INT64_MAX);
	p->fault_id = (uint64_t)get_int(c, o, "fault", 0, INT64_MAX);
	get_str(c, o, "class", cls, sizeof(cls));
	k = c->bad ? -1 : one_of(c, "class", cls, af_rclass_names, AF_RC_COUNT);
	p->rclass = k < 0 ? AF_RC_NOTIFY_ONLY : (enum af_recovery_class)k;
	p->owner = (int)get_int(c, o, "owner", 0, AF_MAX_BLADES);
	/* absent from a daemon before plans carried it: events, as a journal */
	if (json_object_object_get_ex(o, "evidence", &a)) {
		const char *e =
		        json_object_is_type(a, json_type_string) ? json_object_get_string(a) : "";

		if (strcmp(e, "membership") == 0)
			p->membership_only = true;
		else if (strcmp(e, "events") != 0)
			fail(c, "evidence is not membership or events");
	}
	get_str(c, o, "summary", p->summary, sizeof(p->summary));
	a = array(c, o, "steps", RCV_MAX_STEPS, &n);
	if (a != NULL && n == 0)
		fail(c, "a plan without steps");
	for (size_t i = 0; a != NULL && i < n && !c->bad; i++) {
		json_object *v = json_object_array_get_idx(a, i);
		struct rcv_step *s = &p->steps[i];
		char kind[24];

		if (!json_object_is_type(v, json_type_object)) {
			fail(c, "steps[%zu] is not an object", i);
			break;
		}
		get_str(c, v, "kind", kind, sizeof(kind));
		k = c->bad ? -1 : one_of(c, "steps.kind", kind, rcv_step_names, RCV_STEP_COUNT);
		s->kind = k < 0 ? RCV_STEP_NOTIFY : (enum rcv_step_kind)k;
		s->blade = (int)get_int(c, v, "blade", 0, AF_MAX_BLADES);
		get_str(c, v, "vm", s->vm, sizeof(s->vm));
		vm_name(c, "steps.vm", s->vm, true);
		s->timeout_ms = (uint32_t)get_int(c, v, "timeout_ms", 0, 24 * 3600 * 1000);
		get_str(c, v, "why", s->why, sizeof(s->why));
		get_str(c, v, "on_fail", kind, sizeof(kind));
		k = c->bad ? -1 : one_of(c, "steps.on_fail", kind, rcv_step_names, RCV_STEP_COUNT);
		s->on_fail_escalate = k < 0 ? RCV_STEP_NOTIFY : (enum rcv_step_kind)k;
		if (!c->bad && s->on_fail_escalate != RCV_STEP_NOTIFY &&
		    !(s->kind == RCV_STEP_STOP_VM && s->on_fail_escalate == RCV_STEP_FENCE))
			fail(c, "steps[%zu]: only a stop-vm escalates (to fence)", i);
		p->n_steps = (unsigned)i + 1;
	}
}

static void dec_progress(struct ck *c, json_object *o, struct rcv_msg_progress *m)
{
	m->id = (uint64_t)get_int(c, o, "id", 1, INT64_MAX);
	m->step = (unsigned)get_int(c, o, "step", 0, RCV_MAX_STEPS - 1);
	get_str(c, o, "step_state", m->step_state, sizeof(m->step_state));
	if (!c->bad)
		one_of(c, "step_state", m->step_state, step_states, AF_ARRAY_SIZE(step_states));
	get_str(c, o, "run_state", m->run_state, sizeof(m->run_state));
	if (!c->bad)
		one_of(c, "run_state", m->run_state, run_states, AF_ARRAY_SIZE(run_states));
	get_str(c, o, "msg", m->msg, sizeof(m->msg));
}

int rcv_msg_decode(const void *buf, size_t len, uint32_t from_slot, struct rcv_msg *out, char *why,
                   size_t whylen)
{
	const unsigned char *h = buf;
	struct ck c = {.why = why, .whylen = whylen};
	struct json_tokener *tok;
	json_object *body;
	uint32_t blen, type;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (buf == NULL || out == NULL || why == NULL || whylen == 0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (len < RCV_MSG_HDR) {
		fail(&c, "%zu bytes: shorter than the header", len);
		return -EBADMSG;
	}
	if (get32(h) != RCV_MSG_MAGIC) {
		fail(&c, "bad magic 0x%08x", get32(h));
		return -EBADMSG;
	}
	if (h[4] != 0 || h[5] != RCV_MSG_VERSION) {
		fail(&c, "version %u (this daemon speaks %u)", (unsigned)h[4] << 8 | h[5],
		     RCV_MSG_VERSION);
		return -EPROTO;
	}
	type = (uint32_t)h[6] << 8 | h[7];
	blen = get32(h + 8);
	if (type == 0 || type >= RCV_MSG_TYPE_MAX) {
		fail(&c, "unknown type %u", type);
		return -EBADMSG;
	}
	if ((size_t)blen != len - RCV_MSG_HDR || len > RCV_MSG_MAX) {
		fail(&c, "body length %u does not match the %zu bytes received", blen, len);
		return -EBADMSG;
	}
	out->type = (enum rcv_msg_type)type;
	out->sender = get32(h + 12);
	out->seq = (uint64_t)get32(h + 16) << 32 | get32(h + 20);
	if (out->sender == 0 || out->sender > AF_MAX_BLADES ||
	    (from_slot != 0 && out->sender != from_slot)) {
		fail(&c, "sender slot %u does not match the CPG sender %u", out->sender, from_slot);
		return -EBADMSG;
	}
	if (fnv((const char *)h + RCV_MSG_HDR, blen) != get32(h + 24) || get32(h + 28) != 0) {
		fail(&c, "body checksum mismatch");
		return -EBADMSG;
	}
	tok = json_tokener_new();
	if (tok == NULL) {
		fail(&c, "out of memory");
		return -ENOMEM;
	}
	body = json_tokener_parse_ex(tok, (const char *)h + RCV_MSG_HDR, (int)blen);
	if (body == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != (size_t)blen) {
		fail(&c, "body is not one JSON value");
		json_object_put(body);
		json_tokener_free(tok);
		return -EBADMSG;
	}
	json_tokener_free(tok);
	if (!json_object_is_type(body, json_type_object)) {
		fail(&c, "body is not a JSON object");
	} else {
		switch (out->type) {
		case RCV_MSG_STATE:
			dec_state(&c, body, &out->u.state);
			break;
		case RCV_MSG_PLAN:
			dec_plan(&c, body, &out->u.plan);
			break;
		default:
			dec_progress(&c, body, &out->u.progress);
			break;
		}
	}
	json_object_put(body);
	if (c.bad) {
		memset(&out->u, 0, sizeof(out->u));
		return -EBADMSG;
	}
	return 0;
}
