/*
 * failure-model rules: parser, matcher and printer. See fm_rules.h and
 * atca-ft-failure-model(7).
 *
 * The parser reports every error of a file in one pass, each as
 * "file:line: message", and returns a rules set only when there were none:
 * a half-read rules file must never replace a good one.
 */
#include "config.h"

#include "fm_rules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "af_util.h"

#define MAX_TOKENS 48
#define MAX_LINE 4096
#define MAX_FILE (1024 * 1024)

struct parser {
	struct fm_rules *r;
	const char *origin;
	int line;
	unsigned errors;
	fm_rules_err_fn err;
	void *opaque;
};

static void perr(struct parser *p, int line, const char *fmt, ...) AF_PRINTF(3, 4);
static void perr(struct parser *p, int line, const char *fmt, ...)
{
	char msg[512], full[800];
	va_list ap;

	p->errors++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "%s:%d: %s", p->origin, line, msg);
	if (p->err)
		p->err(p->opaque, full);
}

/* ---- string pool ------------------------------------------------------------ */

/* Strings are kept as offsets while the pool may still move, and turned
 * into pointers once parsing is over. */
static long pool_add(struct fm_rules *r, const char *s, size_t len)
{
	long off;

	if (r->pool_len + len + 1 > r->pool_cap) {
		size_t cap = r->pool_cap ? r->pool_cap * 2 : 4096;
		char *np;

		while (cap < r->pool_len + len + 1)
			cap *= 2;
		np = realloc(r->pool, cap);
		if (np == NULL)
			return -ENOMEM;
		r->pool = np;
		r->pool_cap = cap;
	}
	off = (long)r->pool_len;
	memcpy(r->pool + r->pool_len, s, len);
	r->pool[r->pool_len + len] = '\0';
	r->pool_len += len + 1;
	return off;
}

/* While parsing, the pointer fields hold (offset + 1) cast to a pointer. */
#define OFF_PTR(off) ((const char *)(uintptr_t)((off) + 1))
#define PTR_OFF(p) ((long)(uintptr_t)(p)-1)

static void fix_cond(struct fm_rules *r, struct fm_cond *c)
{
	if (c->key != NULL)
		c->key = r->pool + PTR_OFF(c->key);
	for (unsigned i = 0; i < c->n_vals; i++)
		c->vals[i] = r->pool + PTR_OFF(c->vals[i]);
}

static void fix_pointers(struct fm_rules *r)
{
	for (unsigned i = 0; i < r->n_rules; i++)
		for (unsigned j = 0; j < r->rules[i].n_conds; j++)
			fix_cond(r, &r->rules[i].conds[j]);
	for (unsigned i = 0; i < r->n_clears; i++)
		for (unsigned j = 0; j < r->clears[i].n_conds; j++)
			fix_cond(r, &r->clears[i].conds[j]);
}

/* ---- names ------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum fm_key_kind what;
	const char *const *values; /* NULL: numeric */
} state_keys[] = {
        {"blade.mstate", FM_KEY_MSTATE,
         (const char *const[]){"M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7", "unknown", NULL}},
        {"blade.ipmc", FM_KEY_IPMC,
         (const char *const[]){"reachable", "unreachable", "unknown", NULL}},
        {"blade.member", FM_KEY_MEMBER, (const char *const[]){"member", "lost", "unknown", NULL}},
        {"blade.power", FM_KEY_POWER, (const char *const[]){"on", "lost", "unknown", NULL}},
        {"blade.sensors", FM_KEY_SENSORS,
         (const char *const[]){"ok", "non-critical", "critical", "non-recoverable", NULL}},
        {"blade.hypervisor", FM_KEY_HYPERVISOR,
         (const char *const[]){"up", "down", "unknown", NULL}},
        {"host.vm_failures", FM_KEY_VM_FAILURES, NULL},
};

static const char *const op_text[] = {"=", "!=", ">=", "<=", ">", "<"};

static bool valid_detail_key(const char *s, size_t len)
{
	if (len == 0 || len >= AF_KV_KEY_MAX || s[0] < 'a' || s[0] > 'z')
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

static bool valid_rule_name(const char *s)
{
	return af_valid_name(s, FM_RULE_NAME_MAX - 1);
}

static bool parse_ll(const char *s, long long *out)
{
	char *end;

	if (*s == '\0')
		return false;
	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* ---- conditions -------------------------------------------------------------- */

static int parse_cond(struct parser *p, const char *tok, struct fm_cond *c)
{
	const char *op = NULL;
	size_t klen;
	const char *v;

	memset(c, 0, sizeof(*c));
	for (const char *s = tok; *s; s++) {
		if (*s == '=' || *s == '!' || *s == '>' || *s == '<') {
			op = s;
			break;
		}
	}
	if (op == NULL || op == tok) {
		perr(p, p->line, "'%s': a condition is KEY=VALUE (or !=, >=, <=, >, <)", tok);
		return -EINVAL;
	}
	klen = (size_t)(op - tok);
	if (op[0] == '!' && op[1] == '=') {
		c->op = FM_OP_NE;
		v = op + 2;
	} else if (op[0] == '>' && op[1] == '=') {
		c->op = FM_OP_GE;
		v = op + 2;
	} else if (op[0] == '<' && op[1] == '=') {
		c->op = FM_OP_LE;
		v = op + 2;
	} else if (op[0] == '>') {
		c->op = FM_OP_GT;
		v = op + 1;
	} else if (op[0] == '<') {
		c->op = FM_OP_LT;
		v = op + 1;
	} else if (op[0] == '=') {
		c->op = FM_OP_EQ;
		v = op + 1;
	} else {
		perr(p, p->line, "'%s': unknown operator", tok);
		return -EINVAL;
	}
	if (*v == '\0') {
		perr(p, p->line, "'%s': no value after '%s'", tok, op_text[c->op]);
		return -EINVAL;
	}

	c->what = FM_KEY_DETAIL;
	if (klen == 6 && strncmp(tok, "entity", 6) == 0) {
		c->what = FM_KEY_ENTITY;
	} else if (klen == 3 && strncmp(tok, "src", 3) == 0) {
		c->what = FM_KEY_SOURCE;
	} else if ((klen > 6 && strncmp(tok, "blade.", 6) == 0) ||
	           (klen > 5 && strncmp(tok, "host.", 5) == 0)) {
		bool found = false;

		for (size_t i = 0; i < AF_ARRAY_SIZE(state_keys); i++) {
			if (strlen(state_keys[i].name) == klen &&
			    strncmp(state_keys[i].name, tok, klen) == 0) {
				c->what = state_keys[i].what;
				found = true;
			}
		}
		if (!found) {
			perr(p, p->line,
			     "'%.*s': unknown state key (blade.mstate, blade.ipmc, blade.member, "
			     "blade.power, blade.sensors, blade.hypervisor, host.vm_failures)",
			     (int)klen, tok);
			return -EINVAL;
		}
	} else if (!valid_detail_key(tok, klen)) {
		perr(p, p->line, "'%.*s': not a valid detail key", (int)klen, tok);
		return -EINVAL;
	} else {
		long off = pool_add(p->r, tok, klen);

		if (off < 0)
			return (int)off;
		c->key = OFF_PTR(off);
	}

	if (c->op != FM_OP_EQ && c->op != FM_OP_NE) {
		if (c->what != FM_KEY_DETAIL && c->what != FM_KEY_VM_FAILURES) {
			perr(p, p->line, "'%s': %s compares numbers; %.*s is not a number", tok,
			     op_text[c->op], (int)klen, tok);
			return -EINVAL;
		}
		if (!parse_ll(v, &c->num)) {
			perr(p, p->line, "'%s': '%s' is not a number", tok, v);
			return -EINVAL;
		}
		return 0;
	}
	if (c->what == FM_KEY_VM_FAILURES) {
		if (!parse_ll(v, &c->num)) {
			perr(p, p->line, "'%s': '%s' is not a number", tok, v);
			return -EINVAL;
		}
		return 0;
	}
	/* a|b|c */
	while (*v) {
		const char *bar = strchr(v, '|');
		size_t len = bar ? (size_t)(bar - v) : strlen(v);
		long off;

		if (len == 0 || len >= AF_KV_VAL_MAX) {
			perr(p, p->line, "'%s': %s value", tok,
			     len == 0 ? "an empty" : "a too long");
			return -EINVAL;
		}
		if (c->n_vals == FM_MAX_VALS) {
			perr(p, p->line, "'%s': at most %d alternatives", tok, FM_MAX_VALS);
			return -EINVAL;
		}
		if (memchr(v, '*', len) != NULL && (v[len - 1] != '*' || memchr(v, '*', len - 1))) {
			perr(p, p->line, "'%s': '*' only at the end of a value (a prefix)", tok);
			return -EINVAL;
		}
		for (size_t i = 0; i < AF_ARRAY_SIZE(state_keys); i++) {
			bool ok = false;

			if (state_keys[i].what != c->what || state_keys[i].values == NULL)
				continue;
			for (const char *const *sv = state_keys[i].values; *sv; sv++) {
				if (v[len - 1] == '*'
				            ? strncmp(*sv, v, len - 1) == 0
				            : strlen(*sv) == len && strncmp(*sv, v, len) == 0)
					ok = true;
			}
			if (!ok) {
				perr(p, p->line, "'%s': %s is never '%.*s'", tok,
				     state_keys[i].name, (int)len, v);
				return -EINVAL;
			}
		}
		/* a prefix is kept without its '*' ("M*" -> "M", "*" -> "") */
		c->is_prefix[c->n_vals] = v[len - 1] == '*';
		off = pool_add(p->r, v, c->is_prefix[c->n_vals] ? len - 1 : len);
		if (off < 0)
			return (int)off;
		c->prefix_len[c->n_vals] = (uint8_t)(c->is_prefix[c->n_vals] ? len - 1 : 0);
		c->vals[c->n_vals++] = OFF_PTR(off);
		v += len + (bar ? 1 : 0);
		if (bar && *v == '\0') {
			perr(p, p->line, "'%s': an empty value after '|'", tok);
			return -EINVAL;
		}
	}
	return 0;
}

static int parse_kind(struct parser *p, const char *tok, enum af_ev_kind *out)
{
	int k = af_enum_parse(af_ev_kind_names, AF_EV_KIND_COUNT, tok);

	if (k < 0) {
		perr(p, p->line,
		     "'%s': not an event kind (e.g. sensor.threshold, sel.record, "
		     "hotswap, node.leave, vm.lifecycle)",
		     tok);
		return -EINVAL;
	}
	*out = (enum af_ev_kind)k;
	return 0;
}

static int parse_conds(struct parser *p, char **tok, int n, struct fm_cond *conds,
                       unsigned *n_conds)
{
	int rc = 0;

	*n_conds = 0;
	for (int i = 0; i < n; i++) {
		if (*n_conds == FM_MAX_CONDS) {
			perr(p, p->line, "at most %d conditions", FM_MAX_CONDS);
			return -EINVAL;
		}
		if (parse_cond(p, tok[i], &conds[*n_conds]) == 0)
			(*n_conds)++;
		else
			rc = -EINVAL;
	}
	return rc;
}

/* ---- options ----------------------------------------------------------------- */

static int parse_ratio(const char *v, unsigned *a, unsigned *b)
{
	uint64_t x, y;
	char buf[64];
	char *slash;

	if (af_strlcpy(buf, v, sizeof(buf)) >= sizeof(buf) || (slash = strchr(buf, '/')) == NULL)
		return -EINVAL;
	*slash = '\0';
	if (af_parse_u64(buf, 1, 1000000, &x) < 0 || af_parse_u64(slash + 1, 1, 1000000, &y) < 0)
		return -EINVAL;
	*a = (unsigned)x;
	*b = (unsigned)y;
	return 0;
}

static int parse_count_window(const char *v, unsigned *n, uint64_t *ms)
{
	uint64_t x;
	char buf[64];
	char *slash;

	if (af_strlcpy(buf, v, sizeof(buf)) >= sizeof(buf) || (slash = strchr(buf, '/')) == NULL)
		return -EINVAL;
	*slash = '\0';
	if (af_parse_u64(buf, 1, 1000000, &x) < 0 || af_parse_duration_ms(slash + 1, ms) < 0 ||
	    *ms == 0 || *ms > 7ULL * 24 * 3600 * 1000)
		return -EINVAL;
	*n = (unsigned)x;
	return 0;
}

static int parse_option(struct parser *p, struct fm_rule *r, const char *tok)
{
	const char *eq = strchr(tok, '=');
	char key[32];
	const char *v = eq ? eq + 1 : "";
	size_t klen = eq ? (size_t)(eq - tok) : strlen(tok);

	if (klen >= sizeof(key)) {
		perr(p, p->line, "'%s': unknown option", tok);
		return -EINVAL;
	}
	memcpy(key, tok, klen);
	key[klen] = '\0';
	if (strcmp(key, "level") == 0 && eq == NULL) {
		r->level = true;
		return 0;
	}
	if (eq == NULL || *v == '\0') {
		perr(p, p->line, "'%s': option needs a value (%s=...)", tok, key);
		return -EINVAL;
	}
	if (strcmp(key, "scope") == 0) {
		int s = af_enum_parse(af_scope_names, AF_SCOPE_COUNT, v);

		if (s < 0) {
			perr(p, p->line, "'%s': scope is shelf, blade, host or vm", tok);
			return -EINVAL;
		}
		r->scope = (enum af_scope)s;
	} else if (strcmp(key, "debounce") == 0) {
		if (parse_ratio(v, &r->debounce_n, &r->debounce_m) < 0 ||
		    r->debounce_n > r->debounce_m || r->debounce_m > FM_DEBOUNCE_MAX) {
			perr(p, p->line, "'%s': debounce=N/M with 1 <= N <= M <= %d", tok,
			     FM_DEBOUNCE_MAX);
			return -EINVAL;
		}
	} else if (strcmp(key, "hysteresis") == 0) {
		uint64_t x;

		if (af_parse_u64(v, 1, FM_DEBOUNCE_MAX, &x) < 0) {
			perr(p, p->line, "'%s': hysteresis is a count from 1 to %d", tok,
			     FM_DEBOUNCE_MAX);
			return -EINVAL;
		}
		r->hysteresis = (unsigned)x;
		r->level = true;
	} else if (strcmp(key, "rate") == 0) {
		if (parse_count_window(v, &r->rate_n, &r->rate_ms) < 0 || r->rate_n > FM_RATE_MAX) {
			perr(p, p->line,
			     "'%s': rate=N/DURATION with 1 <= N <= %d (e.g. rate=10/1min)", tok,
			     FM_RATE_MAX);
			return -EINVAL;
		}
	} else if (strcmp(key, "escalate") == 0) {
		if (parse_count_window(v, &r->esc_n, &r->esc_ms) < 0 || r->esc_n < 2 ||
		    r->esc_n > FM_RATE_MAX) {
			perr(p, p->line,
			     "'%s': escalate=N/DURATION with 2 <= N <= %d (e.g. escalate=3/10min)",
			     tok, FM_RATE_MAX);
			return -EINVAL;
		}
	} else if (strcmp(key, "escalate-to") == 0) {
		char buf[64];
		char *colon;
		int s, c;

		af_strlcpy(buf, v, sizeof(buf));
		colon = strchr(buf, ':');
		if (colon)
			*colon = '\0';
		s = af_enum_parse(af_severity_names, AF_SEV_COUNT, buf);
		c = colon ? af_enum_parse(af_rclass_names, AF_RC_COUNT, colon + 1) : -1;
		if (s < 0 || c < 0) {
			perr(p, p->line,
			     "'%s': escalate-to=SEVERITY:CLASS (e.g. degraded:migrate-away)", tok);
			return -EINVAL;
		}
		r->esc_severity = (enum af_severity)s;
		r->esc_rclass = (enum af_recovery_class)c;
	} else if (strcmp(key, "hold") == 0 || strcmp(key, "flap") == 0 ||
	           strcmp(key, "ttl") == 0) {
		uint64_t ms;

		if (af_parse_duration_ms(v, &ms) < 0 || ms == 0 || ms > 24ULL * 3600 * 1000) {
			perr(p, p->line, "'%s': a duration from 1ms to 24h (e.g. 250ms, 5s, 10min)",
			     tok);
			return -EINVAL;
		}
		if (key[0] == 'h')
			r->hold_ms = ms;
		else if (key[0] == 'f')
			r->flap_ms = ms;
		else
			r->ttl_ms = ms;
	} else {
		perr(p, p->line,
		     "'%s': unknown option (scope, debounce, level, hysteresis, rate, hold, flap, "
		     "escalate, escalate-to, ttl)",
		     tok);
		return -EINVAL;
	}
	return 0;
}

/* ---- statements -------------------------------------------------------------- */

static enum af_scope default_scope(enum af_layer l)
{
	return l == AF_LAYER_HARDWARE     ? AF_SCOPE_BLADE
	       : l == AF_LAYER_HYPERVISOR ? AF_SCOPE_HOST
	                                  : AF_SCOPE_VM;
}

static void parse_raise(struct parser *p, char **tok, int n)
{
	struct fm_rule *r;
	int arrow = -1, rc = 0, l, s, c;
	bool esc_to = false;

	for (int i = 0; i < n; i++) {
		if (strcmp(tok[i], "=>") == 0) {
			arrow = i;
			break;
		}
	}
	if (n < 3 || arrow < 0 || arrow < 3 || n - arrow < 4) {
		perr(p, p->line,
		     "raise NAME KIND [CONDITION...] => LAYER SEVERITY CLASS [OPTION...]");
		return;
	}
	if (p->r->n_rules == FM_MAX_RULES) {
		perr(p, p->line, "too many rules (at most %d)", FM_MAX_RULES);
		return;
	}
	r = &p->r->rules[p->r->n_rules];
	memset(r, 0, sizeof(*r));
	r->line = p->line;
	if (!valid_rule_name(tok[1])) {
		perr(p, p->line, "'%s': a rule name is letters, digits, '-', '_', '.' (at most %d)",
		     tok[1], FM_RULE_NAME_MAX - 1);
		rc = -EINVAL;
	} else {
		af_strlcpy(r->name, tok[1], sizeof(r->name));
		for (unsigned i = 0; i < p->r->n_rules; i++) {
			if (strcmp(p->r->rules[i].name, r->name) == 0) {
				perr(p, p->line, "rule '%s' is already defined at line %d", r->name,
				     p->r->rules[i].line);
				rc = -EINVAL;
			}
		}
	}
	if (parse_kind(p, tok[2], &r->kind) < 0)
		rc = -EINVAL;
	if (parse_conds(p, tok + 3, arrow - 3, r->conds, &r->n_conds) < 0)
		rc = -EINVAL;
	l = af_enum_parse(af_layer_names, AF_LAYER_COUNT, tok[arrow + 1]);
	s = af_enum_parse(af_severity_names, AF_SEV_COUNT, tok[arrow + 2]);
	c = af_enum_parse(af_rclass_names, AF_RC_COUNT, tok[arrow + 3]);
	if (l < 0) {
		perr(p, p->line, "'%s': layer is hardware, hypervisor or vm", tok[arrow + 1]);
		rc = -EINVAL;
	}
	if (s < 0) {
		perr(p, p->line, "'%s': severity is predictive, degraded or fatal", tok[arrow + 2]);
		rc = -EINVAL;
	}
	if (c < 0) {
		perr(p, p->line,
		     "'%s': class is fence-and-failover, failover, restart-vm, migrate-away or "
		     "notify-only",
		     tok[arrow + 3]);
		rc = -EINVAL;
	}
	if (rc < 0)
		return;
	r->layer = (enum af_layer)l;
	r->severity = (enum af_severity)s;
	r->rclass = (enum af_recovery_class)c;
	r->scope = default_scope(r->layer);
	r->debounce_n = r->debounce_m = 1;
	r->hysteresis = 1;
	for (int i = arrow + 4; i < n; i++) {
		if (strncmp(tok[i], "escalate-to=", 12) == 0)
			esc_to = true;
		if (parse_option(p, r, tok[i]) < 0)
			rc = -EINVAL;
	}
	if (rc < 0)
		return;
	if (r->flap_ms && r->severity == AF_SEV_FATAL) {
		perr(p, p->line,
		     "rule '%s': a fatal fault is never damped (flap= is for "
		     "predictive and degraded rules)",
		     r->name);
		return;
	}
	if (esc_to && r->esc_n == 0) {
		perr(p, p->line, "rule '%s': escalate-to= needs escalate=N/DURATION", r->name);
		return;
	}
	if (r->esc_n && !esc_to) {
		/* one step up, but never to fatal by itself: a fatal fault
		 * fences a blade, which must be said explicitly */
		r->esc_severity = r->severity < AF_SEV_DEGRADED ? AF_SEV_DEGRADED : r->severity;
		r->esc_rclass = r->rclass < AF_RC_MIGRATE_AWAY ? AF_RC_MIGRATE_AWAY : r->rclass;
	}
	if (r->scope == AF_SCOPE_SHELF && r->layer != AF_LAYER_HARDWARE &&
	    r->layer != AF_LAYER_HYPERVISOR) {
		perr(p, p->line, "rule '%s': a vm-layer fault has a vm scope", r->name);
		return;
	}
	if (r->ttl_ms && r->level) {
		perr(p, p->line, "rule '%s': ttl= and level clear the fault in two different ways",
		     r->name);
		return;
	}
	p->r->n_rules++;
}

static void parse_clear(struct parser *p, char **tok, int n)
{
	struct fm_clear *c;
	char names[256];
	char *save = NULL, *name;
	int rc = 0;

	if (n < 3) {
		perr(p, p->line, "clear NAME[,NAME...] KIND [CONDITION...]");
		return;
	}
	if (p->r->n_clears == FM_MAX_CLEARS) {
		perr(p, p->line, "too many clear statements (at most %d)", FM_MAX_CLEARS);
		return;
	}
	c = &p->r->clears[p->r->n_clears];
	memset(c, 0, sizeof(*c));
	c->line = p->line;
	if (af_strlcpy(names, tok[1], sizeof(names)) >= sizeof(names)) {
		perr(p, p->line, "'%s': too long", tok[1]);
		return;
	}
	if (names[0] == ',' || names[strlen(names) - 1] == ',' || strstr(names, ",,")) {
		perr(p, p->line, "'%s': an empty rule name in the list", tok[1]);
		return;
	}
	for (name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		size_t len = strlen(name);
		bool prefix = len > 1 && name[len - 1] == '*';
		char base[FM_RULE_NAME_MAX];

		if (c->n_names == FM_MAX_CLEAR_NAMES) {
			perr(p, p->line, "at most %d rule names in one clear", FM_MAX_CLEAR_NAMES);
			return;
		}
		if (len >= FM_RULE_NAME_MAX) {
			perr(p, p->line, "'%s': not a rule name (or prefix*)", name);
			rc = -EINVAL;
			continue;
		}
		af_strlcpy(base, name, sizeof(base));
		if (prefix)
			base[len - 1] = '\0';
		if (!valid_rule_name(base)) {
			perr(p, p->line, "'%s': not a rule name (or prefix*)", name);
			rc = -EINVAL;
			continue;
		}
		af_strlcpy(c->names[c->n_names++], name, FM_RULE_NAME_MAX);
	}
	if (c->n_names == 0 && rc == 0) {
		perr(p, p->line, "clear: which rules?");
		rc = -EINVAL;
	}
	if (parse_kind(p, tok[2], &c->kind) < 0)
		rc = -EINVAL;
	if (parse_conds(p, tok + 3, n - 3, c->conds, &c->n_conds) < 0)
		rc = -EINVAL;
	if (rc == 0)
		p->r->n_clears++;
}

static const struct {
	const char *name;
	size_t off;
	bool duration;
	uint64_t min, max;
} params[] = {
        {"subsume_window", offsetof(struct fm_params, subsume_ms), true, 0, 3600 * 1000},
        {"vm_group_window", offsetof(struct fm_params, vm_group_ms), true, 1, 60 * 1000},
        {"history", offsetof(struct fm_params, history_ms), true, 1000, 7 * 24 * 3600 * 1000ULL},
        {"max_faults", offsetof(struct fm_params, max_faults), false, 16, 65536},
        {"max_sources", offsetof(struct fm_params, max_sources), false, 64, 1048576},
};

static void parse_set(struct parser *p, char **tok, int n)
{
	if (n != 3) {
		perr(p, p->line, "set NAME VALUE");
		return;
	}
	for (size_t i = 0; i < AF_ARRAY_SIZE(params); i++) {
		uint64_t v;
		int rc;

		if (strcmp(params[i].name, tok[1]) != 0)
			continue;
		rc = params[i].duration ? af_parse_duration_ms(tok[2], &v)
		                        : af_parse_u64(tok[2], 0, UINT64_MAX, &v);
		if (rc < 0 || v < params[i].min || v > params[i].max) {
			perr(p, p->line, "set %s: '%s' is not a %s from %llu to %llu%s", tok[1],
			     tok[2], params[i].duration ? "duration" : "number",
			     (unsigned long long)params[i].min, (unsigned long long)params[i].max,
			     params[i].duration ? " ms" : "");
			return;
		}
		if (params[i].duration)
			*(uint64_t *)((char *)&p->r->params + params[i].off) = v;
		else
			*(unsigned *)((char *)&p->r->params + params[i].off) = (unsigned)v;
		return;
	}
	perr(p, p->line,
	     "set: unknown parameter '%s' (subsume_window, vm_group_window, history, "
	     "max_faults, max_sources)",
	     tok[1]);
}

static int tokenize(char *s, char **tok)
{
	int n = 0;

	for (char *save = NULL, *t = strtok_r(s, " \t", &save); t;
	     t = strtok_r(NULL, " \t", &save)) {
		if (n == MAX_TOKENS)
			return -1;
		tok[n++] = t;
	}
	return n;
}

static void statement(struct parser *p, char *text)
{
	char *tok[MAX_TOKENS];
	int n = tokenize(text, tok);

	if (n == 0)
		return;
	if (n < 0) {
		perr(p, p->line, "too many words (at most %d)", MAX_TOKENS);
		return;
	}
	if (strcmp(tok[0], "raise") == 0)
		parse_raise(p, tok, n);
	else if (strcmp(tok[0], "clear") == 0)
		parse_clear(p, tok, n);
	else if (strcmp(tok[0], "set") == 0)
		parse_set(p, tok, n);
	else
		perr(p, p->line, "'%s': a statement is raise, clear or set", tok[0]);
}

static void check_clear_names(struct parser *p)
{
	for (unsigned i = 0; i < p->r->n_clears; i++) {
		struct fm_clear *c = &p->r->clears[i];

		for (unsigned j = 0; j < c->n_names; j++) {
			bool any = false;

			for (unsigned k = 0; k < p->r->n_rules && !any; k++) {
				struct fm_clear one = {.n_names = 1};

				af_strlcpy(one.names[0], c->names[j], FM_RULE_NAME_MAX);
				any = fm_clear_names(&one, p->r->rules[k].name);
			}
			if (!any)
				perr(p, c->line, "clear: no rule is named '%s'", c->names[j]);
		}
	}
}

static void default_params(struct fm_params *pp)
{
	/* as documented in atca-ft-failure-model(7) and set in the shipped
	 * rules (test_rules_defaults_documented keeps them in step) */
	pp->subsume_ms = 5 * 1000;
	pp->vm_group_ms = 200;
	pp->history_ms = 10 * 60 * 1000;
	pp->max_faults = 1024;
	pp->max_sources = 4096;
}

int fm_rules_parse(const char *text, size_t len, const char *origin, struct fm_rules **out,
                   fm_rules_err_fn err, void *opaque)
{
	struct parser p = {.origin = origin ? origin : "rules", .err = err, .opaque = opaque};
	char stmt[MAX_LINE];
	size_t slen = 0, pos = 0;
	int stmt_line = 0;
	bool skipping = false;

	if (text == NULL || out == NULL)
		return -EINVAL;
	*out = NULL;
	p.r = calloc(1, sizeof(*p.r));
	if (p.r == NULL)
		return -ENOMEM;
	default_params(&p.r->params);
	af_strlcpy(p.r->origin, p.origin, sizeof(p.r->origin));

	/* statements are lines; a line ending in '\' goes on on the next */
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - (text + pos)) : len - pos;
		const char *l = text + pos;
		bool cont = false;
		size_t keep;

		p.line++;
		pos += llen + (nl ? 1 : 0);
		if (memchr(l, '\0', llen) != NULL) {
			perr(&p, p.line, "a NUL byte: not a text file");
			break;
		}
		/* comments: '#' at the start or after a blank */
		keep = llen;
		for (size_t i = 0; i < llen; i++) {
			if (l[i] == '#' && (i == 0 || l[i - 1] == ' ' || l[i - 1] == '\t')) {
				keep = i;
				break;
			}
		}
		while (keep > 0 &&
		       (l[keep - 1] == ' ' || l[keep - 1] == '\t' || l[keep - 1] == '\r'))
			keep--;
		if (keep > 0 && l[keep - 1] == '\\') {
			cont = true;
			keep--;
		}
		if (slen == 0)
			stmt_line = p.line;
		if (skipping || slen + keep + 2 > sizeof(stmt)) {
			/* the rest of an overlong statement is part of it, not
			 * statements of its own */
			if (!skipping)
				perr(&p, stmt_line, "statement longer than %d bytes", MAX_LINE);
			skipping = cont;
			slen = 0;
			continue;
		}
		memcpy(stmt + slen, l, keep);
		slen += keep;
		stmt[slen++] = ' ';
		if (cont && pos < len)
			continue;
		stmt[slen] = '\0';
		{
			int save = p.line;

			p.line = stmt_line;
			statement(&p, stmt);
			p.line = save;
		}
		slen = 0;
	}
	check_clear_names(&p);
	if (p.errors) {
		fm_rules_free(p.r);
		return -EINVAL;
	}
	fix_pointers(p.r);
	*out = p.r;
	return 0;
}

int fm_rules_load(const char *path, struct fm_rules **out, fm_rules_err_fn err, void *opaque)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd, rc;

	if (path == NULL || out == NULL)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if (st.st_size > MAX_FILE) {
		rc = -EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	rc = fm_rules_parse(buf, len, path, out, err, opaque);
out:
	free(buf);
	close(fd);
	return rc;
}

int fm_rules_default(struct fm_rules **out)
{
	return fm_rules_parse(fm_default_rules, strlen(fm_default_rules), "built-in rules", out,
	                      NULL, NULL);
}

void fm_rules_free(struct fm_rules *r)
{
	if (r == NULL)
		return;
	free(r->pool);
	free(r);
}

/* ---- matching ---------------------------------------------------------------- */

static bool val_eq(const struct fm_cond *c, unsigned i, const char *s)
{
	if (c->is_prefix[i])
		return strncmp(s, c->vals[i], c->prefix_len[i]) == 0;
	return strcmp(s, c->vals[i]) == 0;
}

static bool num_cmp(enum fm_op op, long long a, long long b)
{
	switch (op) {
	case FM_OP_GE:
		return a >= b;
	case FM_OP_LE:
		return a <= b;
	case FM_OP_GT:
		return a > b;
	case FM_OP_LT:
		return a < b;
	case FM_OP_EQ:
		return a == b;
	case FM_OP_NE:
		return a != b;
	}
	return false;
}

bool fm_cond_match(const struct fm_cond *c, const struct af_event *ev,
                   const struct fm_blade_view *bv)
{
	const char *s = NULL;
	bool any = false;

	switch (c->what) {
	case FM_KEY_DETAIL:
		s = af_event_get(ev, c->key);
		break;
	case FM_KEY_ENTITY:
		s = ev->entity;
		break;
	case FM_KEY_SOURCE:
		s = af_enum_name(af_ev_source_names, AF_SRC_COUNT, (int)ev->source);
		break;
	case FM_KEY_MSTATE:
		s = bv ? bv->mstate : NULL;
		break;
	case FM_KEY_IPMC:
		s = bv ? bv->ipmc : NULL;
		break;
	case FM_KEY_MEMBER:
		s = bv ? bv->member : NULL;
		break;
	case FM_KEY_POWER:
		s = bv ? bv->power : NULL;
		break;
	case FM_KEY_SENSORS:
		s = bv ? bv->sensors : NULL;
		break;
	case FM_KEY_HYPERVISOR:
		s = bv ? bv->hypervisor : NULL;
		break;
	case FM_KEY_VM_FAILURES:
		return num_cmp(c->op, bv ? bv->vm_failures : 0, c->num);
	}
	if (c->op != FM_OP_EQ && c->op != FM_OP_NE) {
		long long v;

		/* a missing or non-numeric value compares false */
		return s != NULL && parse_ll(s, &v) && num_cmp(c->op, v, c->num);
	}
	/* a missing key equals nothing (not even key=*); key!=v holds */
	if (s == NULL)
		return c->op == FM_OP_NE;
	for (unsigned i = 0; i < c->n_vals && !any; i++)
		any = val_eq(c, i, s);
	return c->op == FM_OP_EQ ? any : !any;
}

static bool conds_match(const struct fm_cond *conds, unsigned n, const struct af_event *ev,
                        const struct fm_blade_view *bv)
{
	for (unsigned i = 0; i < n; i++) {
		if (!fm_cond_match(&conds[i], ev, bv))
			return false;
	}
	return true;
}

bool fm_rule_match(const struct fm_rule *r, const struct af_event *ev,
                   const struct fm_blade_view *bv)
{
	return r->kind == ev->kind && conds_match(r->conds, r->n_conds, ev, bv);
}

bool fm_clear_match(const struct fm_clear *c, const struct af_event *ev,
                    const struct fm_blade_view *bv)
{
	return c->kind == ev->kind && conds_match(c->conds, c->n_conds, ev, bv);
}

bool fm_clear_names(const struct fm_clear *c, const char *rule)
{
	for (unsigned i = 0; i < c->n_names; i++) {
		size_t len = strlen(c->names[i]);

		if (len > 0 && c->names[i][len - 1] == '*') {
			if (strncmp(rule, c->names[i], len - 1) == 0)
				return true;
		} else if (strcmp(rule, c->names[i]) == 0) {
			return true;
		}
	}
	return false;
}

/* ---- printing ---------------------------------------------------------------- */

struct sbuf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) AF_PRINTF(2, 3);
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		{
			size_t cap = b->cap ? b->cap * 2 : 4096;
			char *ns;

			while (cap < b->len + (size_t)n + 1)
				cap *= 2;
			ns = realloc(b->s, cap);
			if (ns == NULL) {
				b->failed = true;
				return;
			}
			b->s = ns;
			b->cap = cap;
		}
	}
}

static const char *key_name(const struct fm_cond *c)
{
	switch (c->what) {
	case FM_KEY_DETAIL:
		return c->key;
	case FM_KEY_ENTITY:
		return "entity";
	case FM_KEY_SOURCE:
		return "src";
	default:
		break;
	}
	for (size_t i = 0; i < AF_ARRAY_SIZE(state_keys); i++) {
		if (state_keys[i].what == c->what)
			return state_keys[i].name;
	}
	return "?";
}

static void print_conds(struct sbuf *b, const struct fm_cond *conds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		const struct fm_cond *c = &conds[i];

		sb_printf(b, " %s%s", key_name(c), op_text[c->op]);
		if ((c->op != FM_OP_EQ && c->op != FM_OP_NE) || c->what == FM_KEY_VM_FAILURES) {
			sb_printf(b, "%lld", c->num);
			continue;
		}
		for (unsigned j = 0; j < c->n_vals; j++)
			sb_printf(b, "%s%s%s", j ? "|" : "", c->vals[j],
			          c->is_prefix[j] ? "*" : "");
	}
}

static void print_duration(struct sbuf *b, const char *key, uint64_t ms)
{
	char d[32];

	af_format_duration_ms(ms, d, sizeof(d));
	sb_printf(b, " %s=%s", key, d);
}

char *fm_rules_format(const struct fm_rules *r)
{
	struct sbuf b = {0};
	char d[32];

	if (r == NULL)
		return NULL;
	sb_printf(&b, "# %s\n", r->origin);
	af_format_duration_ms(r->params.subsume_ms, d, sizeof(d));
	sb_printf(&b, "set subsume_window %s\n", d);
	af_format_duration_ms(r->params.vm_group_ms, d, sizeof(d));
	sb_printf(&b, "set vm_group_window %s\n", d);
	af_format_duration_ms(r->params.history_ms, d, sizeof(d));
	sb_printf(&b, "set history %s\n", d);
	sb_printf(&b, "set max_faults %u\nset max_sources %u\n", r->params.max_faults,
	          r->params.max_sources);
	for (unsigned i = 0; i < r->n_rules; i++) {
		const struct fm_rule *u = &r->rules[i];

		sb_printf(&b, "raise %s %s", u->name, af_ev_kind_names[u->kind]);
		print_conds(&b, u->conds, u->n_conds);
		sb_printf(&b, " => %s %s %s scope=%s", af_layer_names[u->layer],
		          af_severity_names[u->severity], af_rclass_names[u->rclass],
		          af_scope_names[u->scope]);
		if (u->debounce_m > 1)
			sb_printf(&b, " debounce=%u/%u", u->debounce_n, u->debounce_m);
		if (u->level)
			sb_printf(&b, " level hysteresis=%u", u->hysteresis);
		if (u->rate_n) {
			af_format_duration_ms(u->rate_ms, d, sizeof(d));
			sb_printf(&b, " rate=%u/%s", u->rate_n, d);
		}
		if (u->hold_ms)
			print_duration(&b, "hold", u->hold_ms);
		if (u->flap_ms)
			print_duration(&b, "flap", u->flap_ms);
		if (u->esc_n) {
			af_format_duration_ms(u->esc_ms, d, sizeof(d));
			sb_printf(&b, " escalate=%u/%s escalate-to=%s:%s", u->esc_n, d,
			          af_severity_names[u->esc_severity],
			          af_rclass_names[u->esc_rclass]);
		}
		if (u->ttl_ms)
			print_duration(&b, "ttl", u->ttl_ms);
		sb_printf(&b, "\n");
	}
	for (unsigned i = 0; i < r->n_clears; i++) {
		const struct fm_clear *c = &r->clears[i];

		sb_printf(&b, "clear ");
		for (unsigned j = 0; j < c->n_names; j++)
			sb_printf(&b, "%s%s", j ? "," : "", c->names[j]);
		sb_printf(&b, " %s", af_ev_kind_names[c->kind]);
		print_conds(&b, c->conds, c->n_conds);
		sb_printf(&b, "\n");
	}
	if (b.failed) {
		free(b.s);
		return NULL;
	}
	return b.s;
}
