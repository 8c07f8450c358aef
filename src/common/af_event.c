#include "config.h"

#include "af_event.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

const char *const af_ev_source_names[AF_SRC_COUNT] = {
        [AF_SRC_IPMI] = "ipmi",       [AF_SRC_SHELF] = "shelf",
        [AF_SRC_CLUSTER] = "cluster", [AF_SRC_HYPERVISOR] = "hypervisor",
        [AF_SRC_VM] = "vm",           [AF_SRC_ENGINE] = "engine",
        [AF_SRC_ADMIN] = "admin",     [AF_SRC_DAEMON] = "daemon",
};

const char *const af_ev_kind_names[AF_EV_KIND_COUNT] = {
        [AF_EV_SENSOR_THRESHOLD] = "sensor.threshold",
        [AF_EV_SENSOR_DISCRETE] = "sensor.discrete",
        [AF_EV_SEL_RECORD] = "sel.record",
        [AF_EV_SEL_CLEARED] = "sel.cleared",
        [AF_EV_SEL_OVERFLOW] = "sel.overflow",
        [AF_EV_HOTSWAP] = "hotswap",
        [AF_EV_IPMC_UNREACHABLE] = "ipmc.unreachable",
        [AF_EV_IPMC_REACHABLE] = "ipmc.reachable",
        [AF_EV_SHMC_SWITCHOVER] = "shmc.switchover",
        [AF_EV_NODE_JOIN] = "node.join",
        [AF_EV_NODE_LEAVE] = "node.leave",
        [AF_EV_QUORUM] = "quorum",
        [AF_EV_HYPERVISOR_UP] = "hypervisor.up",
        [AF_EV_HYPERVISOR_DOWN] = "hypervisor.down",
        [AF_EV_VM_LIFECYCLE] = "vm.lifecycle",
        [AF_EV_ENGINE_HEALTH] = "engine.health",
        [AF_EV_ADMIN] = "admin",
        [AF_EV_FENCE] = "fence",
};

static const char *const reserved_keys[] = {"t", "id", "src", "kind", "blade", "entity"};

#define AF_MAX_BLADE_NUMBER 16

void af_event_init(struct af_event *ev, enum af_ev_source src, enum af_ev_kind kind, int blade,
                   const char *entity)
{
	memset(ev, 0, sizeof(*ev));
	ev->ts_ns = af_mono_ns();
	ev->source = src;
	ev->kind = kind;
	ev->blade = blade;
	if (entity != NULL)
		af_strlcpy(ev->entity, entity, sizeof(ev->entity));
}

static bool valid_key(const char *key)
{
	size_t len = strlen(key);

	if (len == 0 || len >= AF_KV_KEY_MAX || !islower((unsigned char)key[0]))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		if (!islower(c) && !isdigit(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	for (size_t i = 0; i < AF_ARRAY_SIZE(reserved_keys); i++) {
		if (strcmp(key, reserved_keys[i]) == 0)
			return false;
	}
	return true;
}

static bool printable(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int af_event_set(struct af_event *ev, const char *key, const char *fmt, ...)
{
	char val[AF_KV_VAL_MAX + 1];
	struct af_kv *slot = NULL;
	va_list ap;
	int n;

	if (!valid_key(key))
		return -EINVAL;
	va_start(ap, fmt);
	n = vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= AF_KV_VAL_MAX)
		return -E2BIG;
	if (!printable(val))
		return -EINVAL;
	for (unsigned i = 0; i < ev->n_detail; i++) {
		if (strcmp(ev->detail[i].key, key) == 0) {
			slot = &ev->detail[i];
			break;
		}
	}
	if (slot == NULL) {
		if (ev->n_detail >= AF_EV_DETAIL_MAX)
			return -ENOSPC;
		slot = &ev->detail[ev->n_detail++];
		af_strlcpy(slot->key, key, sizeof(slot->key));
	}
	af_strlcpy(slot->val, val, sizeof(slot->val));
	return 0;
}

const char *af_event_get(const struct af_event *ev, const char *key)
{
	for (unsigned i = 0; i < ev->n_detail; i++) {
		if (strcmp(ev->detail[i].key, key) == 0)
			return ev->detail[i].val;
	}
	return NULL;
}

/* Appending writer: records overflow instead of failing at every call. */
struct out {
	char *buf;
	size_t len;
	size_t pos;
	bool overflow;
};

static void out_raw(struct out *o, const char *s, size_t n)
{
	if (o->pos + n >= o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->pos, s, n);
	o->pos += n;
	o->buf[o->pos] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_raw(o, s, strlen(s));
}

static bool needs_quotes(const char *v)
{
	if (*v == '\0')
		return true;
	for (; *v; v++) {
		if (*v == ' ' || *v == '"' || *v == '\\' || *v == '=' || *v == '\t')
			return true;
	}
	return false;
}

static void out_value(struct out *o, const char *v)
{
	if (!needs_quotes(v)) {
		out_str(o, v);
		return;
	}
	out_raw(o, "\"", 1);
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			out_raw(o, "\\", 1);
		out_raw(o, v, 1);
	}
	out_raw(o, "\"", 1);
}

static void out_kv(struct out *o, const char *k, const char *v)
{
	if (o->pos > 0)
		out_raw(o, " ", 1);
	out_str(o, k);
	out_raw(o, "=", 1);
	out_value(o, v);
}

static void format_time(uint64_t ns, char *buf, size_t len)
{
	char frac[16];
	size_t n;

	snprintf(frac, sizeof(frac), "%09llu", (unsigned long long)(ns % AF_NS_PER_S));
	n = strlen(frac);
	while (n > 3 && frac[n - 1] == '0')
		frac[--n] = '\0';
	snprintf(buf, len, "%llu.%s", (unsigned long long)(ns / AF_NS_PER_S), frac);
}

int af_event_format(const struct af_event *ev, char *buf, size_t len)
{
	struct out o = {.buf = buf, .len = len};
	char tmp[32];
	const char *name;

	if (len == 0)
		return -ENOSPC;
	buf[0] = '\0';
	format_time(ev->ts_ns, tmp, sizeof(tmp));
	out_kv(&o, "t", tmp);
	if (ev->id != 0) {
		snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)ev->id);
		out_kv(&o, "id", tmp);
	}
	name = af_enum_name(af_ev_source_names, AF_SRC_COUNT, (int)ev->source);
	out_kv(&o, "src", name ? name : "?");
	snprintf(tmp, sizeof(tmp), "%d", ev->blade);
	out_kv(&o, "blade", tmp);
	name = af_enum_name(af_ev_kind_names, AF_EV_KIND_COUNT, (int)ev->kind);
	out_kv(&o, "kind", name ? name : "?");
	if (ev->entity[0] != '\0')
		out_kv(&o, "entity", ev->entity);
	for (unsigned i = 0; i < ev->n_detail && i < AF_EV_DETAIL_MAX; i++)
		out_kv(&o, ev->detail[i].key, ev->detail[i].val);
	if (o.overflow)
		return -ENOSPC;
	return (int)o.pos;
}

/* ---- parsing --------------------------------------------------------- */

#define PARSE_FAIL(...)                                                                            \
	do {                                                                                       \
		if (err != NULL)                                                                   \
			snprintf(err, errlen, __VA_ARGS__);                                        \
		return -EINVAL;                                                                    \
	} while (0)

static int parse_time(const char *s, uint64_t *ns)
{
	uint64_t sec = 0, frac = 0;
	unsigned digits = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		sec = sec * 10 + (uint64_t)(*p - '0');
		if (sec > UINT64_MAX / AF_NS_PER_S)
			return -ERANGE;
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		for (; isdigit((unsigned char)*p); p++) {
			if (++digits > 9)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*p - '0');
		}
		for (; digits < 9; digits++)
			frac *= 10;
	}
	if (*p != '\0')
		return -EINVAL;
	if (sec * AF_NS_PER_S > UINT64_MAX - frac)
		return -ERANGE;
	*ns = sec * AF_NS_PER_S + frac;
	return 0;
}

/* Reads one key=value token from *pp into key/val; returns 1 for a token,
 * 0 at end of line, -EINVAL on a syntax error (err set). */
static int next_token(const char **pp, char *key, size_t klen, char *val, size_t vlen, char *err,
                      size_t errlen)
{
	const char *p = *pp;
	size_t n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '\n' || *p == '#') {
		*pp = p;
		return 0;
	}
	while (*p && *p != '=' && *p != ' ' && *p != '\t' && *p != '\n') {
		if (n + 1 >= klen)
			PARSE_FAIL("key too long near '%.20s'", *pp);
		key[n++] = *p++;
	}
	key[n] = '\0';
	if (*p != '=')
		PARSE_FAIL("expected key=value near '%.20s'", *pp);
	p++;
	n = 0;
	if (*p == '"') {
		p++;
		for (;;) {
			if (*p == '\0' || *p == '\n')
				PARSE_FAIL("unterminated quoted value for '%s'", key);
			if (*p == '"')
				break;
			if (*p == '\\') {
				p++;
				if (*p != '"' && *p != '\\')
					PARSE_FAIL("bad escape in value for '%s'", key);
			}
			if ((unsigned char)*p < 0x20)
				PARSE_FAIL("control character in value for '%s'", key);
			if (n + 1 >= vlen)
				PARSE_FAIL("value too long for '%s'", key);
			val[n++] = *p++;
		}
		p++;
		if (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n')
			PARSE_FAIL("garbage after quoted value for '%s'", key);
	} else {
		while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
			if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
				PARSE_FAIL("bad character in value for '%s' (quote it)", key);
			if (n + 1 >= vlen)
				PARSE_FAIL("value too long for '%s'", key);
			val[n++] = *p++;
		}
		if (n == 0)
			PARSE_FAIL("empty value for '%s'", key);
	}
	val[n] = '\0';
	*pp = p;
	return 1;
}

int af_event_parse(const char *line, struct af_event *ev, char *err, size_t errlen)
{
	/* A detail value may be up to AF_KV_VAL_MAX-1; the entity is larger. */
	char key[AF_KV_KEY_MAX + 8];
	char val[AF_EV_ENTITY_MAX + AF_KV_VAL_MAX];
	bool have_src = false, have_kind = false;
	unsigned seen = 0; /* bit i: reserved_keys[i] already given */
	const char *p = line;
	int rc;

	memset(ev, 0, sizeof(*ev));
	while ((rc = next_token(&p, key, sizeof(key), val, sizeof(val), err, errlen)) > 0) {
		for (unsigned i = 0; i < AF_ARRAY_SIZE(reserved_keys); i++) {
			if (strcmp(key, reserved_keys[i]) != 0)
				continue;
			if (seen & (1u << i))
				PARSE_FAIL("'%s' given twice", key);
			seen |= 1u << i;
		}
		if (strcmp(key, "t") == 0) {
			if (parse_time(val, &ev->ts_ns) < 0)
				PARSE_FAIL("bad time '%s' (seconds, e.g. 12.5)", val);
		} else if (strcmp(key, "id") == 0) {
			if (af_parse_u64(val, 1, UINT64_MAX, &ev->id) < 0)
				PARSE_FAIL("bad id '%s'", val);
		} else if (strcmp(key, "src") == 0) {
			int s = af_enum_parse(af_ev_source_names, AF_SRC_COUNT, val);
			if (s < 0)
				PARSE_FAIL("unknown source '%s'", val);
			ev->source = (enum af_ev_source)s;
			have_src = true;
		} else if (strcmp(key, "kind") == 0) {
			int k = af_enum_parse(af_ev_kind_names, AF_EV_KIND_COUNT, val);
			if (k < 0)
				PARSE_FAIL("unknown event kind '%s'", val);
			ev->kind = (enum af_ev_kind)k;
			have_kind = true;
		} else if (strcmp(key, "blade") == 0) {
			uint64_t b;
			if (af_parse_u64(val, 0, AF_MAX_BLADE_NUMBER, &b) < 0)
				PARSE_FAIL("bad blade '%s' (0..%d)", val, AF_MAX_BLADE_NUMBER);
			ev->blade = (int)b;
		} else if (strcmp(key, "entity") == 0) {
			if (strlen(val) >= sizeof(ev->entity))
				PARSE_FAIL("entity too long");
			af_strlcpy(ev->entity, val, sizeof(ev->entity));
		} else {
			if (af_event_get(ev, key) != NULL)
				PARSE_FAIL("detail '%s' given twice", key);
			rc = af_event_set(ev, key, "%s", val);
			if (rc == -ENOSPC)
				PARSE_FAIL("too many details (max %d)", AF_EV_DETAIL_MAX);
			if (rc == -E2BIG)
				PARSE_FAIL("value of '%s' too long (max %d)", key,
				           AF_KV_VAL_MAX - 1);
			if (rc < 0)
				PARSE_FAIL("bad detail key '%s'", key);
		}
	}
	if (rc < 0)
		return rc;
	if (!have_src)
		PARSE_FAIL("missing src=");
	if (!have_kind)
		PARSE_FAIL("missing kind=");
	return 0;
}
