/*
 * failure-model: the engine. For each event, in this order:
 *
 *   1. timers due before the event fire (held raises, ttl clears);
 *   2. a stale or duplicate event is ignored;
 *   3. the blade's state (M-state, IPMC, membership, power, sensors,
 *      hypervisor, recent VM failures) is updated;
 *   4. clear statements that match clear their faults (and cancel holds);
 *   5. level rules of the event's source count the event for or against
 *      their fault (debounce on the way up, hysteresis on the way down);
 *   6. the first raise rule that matches decides: debounce and rate must be
 *      satisfied, a fault that explains the event absorbs it, a hold waits
 *      for such a fault, flapping is damped and repetition escalates.
 *
 * Memory is bounded by the tables sized from the rules' parameters
 * (max_faults, max_sources) and by the fixed hold list, never by history.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_FM
#include "fm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "af_log.h"
#include "fm_rules.h"

#define MAX_HOLDS 64
#define VM_RING 32
#define NO_IDX UINT32_MAX

const char *const fm_fault_op_names[3] = {"raise", "update", "clear"};
const char *const fm_why_names[FM_WHY_COUNT] = {
        [FM_WHY_NONE] = "",
        [FM_WHY_CAUSE] = "cause",
        [FM_WHY_ABSORBED] = "absorbed",
        [FM_WHY_RULE] = "rule",
        [FM_WHY_HYSTERESIS] = "hysteresis",
        [FM_WHY_TTL] = "ttl",
        [FM_WHY_MERGED] = "merged",
};

/* ---- tables --------------------------------------------------------------------- */

/* ABSORBED: a standing condition (level rule) that joined another fault;
 * it is not reported again while that fault explains it. */
/* DAMPED: a standing condition whose raise flapping damping held back; it
 * counts as one comeback however many readings repeat it. */
enum slot_state {
	SLOT_FREE = 0,
	SLOT_PENDING,
	SLOT_OPEN,
	SLOT_CLEARED,
	SLOT_ABSORBED,
	SLOT_DAMPED
};

/* One fault key: (rule, blade, entity). It tracks debounce, rate, flapping
 * and escalation before, during and for a while after its fault. */
struct slot {
	uint32_t hnext;
	uint8_t state;
	int rule; /* index in the rules, -1 once its rule is gone */
	int blade;
	char entity[AF_FAULT_ENTITY_MAX];
	struct af_fault f;
	uint16_t hist; /* debounce: bit 0 = the newest event of the source */
	uint8_t hist_n;
	uint64_t hist_ids[16]; /* the events behind those bits, newest first */
	uint8_t nonmatch;      /* level: consecutive events that did not match */
	uint8_t rate_n, rate_pos, esc_n, esc_pos;
	uint64_t rate_ts[FM_RATE_MAX], rate_ids[FM_RATE_MAX];
	uint64_t esc_ts[FM_RATE_MAX];
	uint64_t last_raise_ns, last_ns, ttl_ns, cleared_at;
	unsigned suppressed;
	bool escalated;
	uint32_t open_pos; /* index in the open list while OPEN */
};

/* One event source: (kind, blade, entity). */
struct source {
	uint32_t hnext;
	bool used;
	enum af_ev_kind kind;
	int blade;
	char entity[AF_EV_ENTITY_MAX];
	uint64_t last_ts, last_hash;
	bool seen;     /* last_ts and last_hash hold an event */
	int8_t sensor; /* threshold sensors: 0 ok .. 3 non-recoverable, -1 unknown */
};

struct blade_state {
	int8_t mstate;                     /* -1 unknown */
	int8_t ipmc, member, power, hyper; /* -1 unknown, 0 bad, 1 good */
	unsigned sensors[4];               /* threshold sensors in each state */
	uint64_t vm_ts[VM_RING];
	uint32_t vm_hash[VM_RING];
	unsigned vm_pos;
	/* the blade's last fatal hardware fault, for subsume_window after it
	 * cleared (the slot may have been reused: the id tells) */
	uint32_t fatal_slot;
	uint64_t fatal_id;
	/* while that fault was open, the blade's payload was seen off (M0/M1,
	 * power lost, a fence confirmed) / the blade left the membership:
	 * only then are its symptoms after the clear late news of that */
	bool fatal_off, fatal_left;
	/* its last node.leave, news again if the fault clears with the blade
	 * still out of the membership and never seen off */
	struct af_event leave;
};

struct hold {
	bool used;
	int rule;
	uint64_t deadline;
	struct af_event ev;
};

struct fm {
	const struct af_config *cfg;
	struct fm_ops ops;
	void *opaque;
	struct fm_rules *rules;
	/* rules of each kind, in file order */
	unsigned n_kind_rules[AF_EV_KIND_COUNT];
	uint16_t *kind_rules[AF_EV_KIND_COUNT];

	uint64_t now;
	uint64_t next_id;
	uint64_t deadline; /* earliest timer, 0 none; may be early, never late */

	struct slot *slots;
	uint32_t n_slots, slot_mask, *slot_heads;
	/* the OPEN slots: what clears, absorption and timers look at */
	uint32_t *open, n_open;
	bool kind_uses_vmf[AF_EV_KIND_COUNT]; /* rules of this kind read host.vm_failures */
	struct source *sources;
	uint32_t n_sources, src_mask, *src_heads, src_used;
	struct blade_state blades[AF_MAX_BLADES + 1];
	struct hold holds[MAX_HOLDS];

	int reports; /* made during the current call */
	/* the hash of the entity being looked up (valid while eh_ptr points
	 * at the same, unchanged string: reset for every event) */
	const char *eh_ptr;
	uint64_t eh;
	uint64_t events_seen, events_rejected, events_ignored, raised, cleared, sources_evicted;
};

/* ---- helpers -------------------------------------------------------------------- */

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v * 0x9E3779B97F4A7C15ULL;
	h = (h << 31) | (h >> 33);
	return h * 0xBF58476D1CE4E5B9ULL;
}

/* A string, eight bytes at a time: every event is hashed, and byte-wise
 * FNV was the model's largest cost. */
static uint64_t shash(uint64_t h, const char *s)
{
	size_t len = strlen(s), i = 0;

	for (; i + 8 <= len; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		h = mix(h, w);
	}
	if (i < len) {
		uint64_t w = 0;

		memcpy(&w, s + i, len - i);
		h = mix(h, w);
	}
	return mix(h, len);
}

/* Sources and slots are keyed by (number, blade, entity); the entity's
 * hash is computed once per event (eh). */
static uint32_t key_hash2(int a, int blade, uint64_t eh)
{
	return (uint32_t)(mix(mix(eh, (uint64_t)(unsigned)a), (uint64_t)(unsigned)blade) >> 17);
}

static uint32_t key_hash(int a, int blade, const char *entity)
{
	return key_hash2(a, blade, shash(0, entity));
}

static uint32_t pow2_at_least(uint32_t n)
{
	uint32_t p = 64;

	while (p < n)
		p <<= 1;
	return p;
}

static void report(struct fm *m, enum fm_fault_op op, enum fm_why why, const struct slot *s,
                   uint64_t merged_into, uint64_t event_id)
{
	struct fm_report r = {.op = op,
	                      .why = why,
	                      .fault = &s->f,
	                      .now_ns = m->now,
	                      .merged_into = merged_into,
	                      .escalated = s->escalated,
	                      .event_id = event_id};
	/* the owner logs it (the daemon) or prints it (the simulator) */
	m->reports++;
	if (m->ops.fault)
		m->ops.fault(m->opaque, &r);
}

static void ignored(struct fm *m, const struct af_event *ev, const char *why)
{
	m->events_ignored++;
	af_debug("failure-model: event %llu ignored: %s", (unsigned long long)ev->id, why);
	if (m->ops.ignored)
		m->ops.ignored(m->opaque, ev, why);
}

static void want_deadline(struct fm *m, uint64_t t)
{
	if (t != 0 && (m->deadline == 0 || t < m->deadline))
		m->deadline = t;
}

static void set_open(struct fm *m, struct slot *s)
{
	if (s->state == SLOT_OPEN)
		return;
	s->state = SLOT_OPEN;
	s->open_pos = m->n_open;
	m->open[m->n_open++] = (uint32_t)(s - m->slots);
}

/* Leaves the open list (the caller sets the new state). */
static void unset_open(struct fm *m, struct slot *s)
{
	uint32_t last;

	if (s->state != SLOT_OPEN)
		return;
	last = m->open[--m->n_open];
	m->open[s->open_pos] = last;
	m->slots[last].open_pos = s->open_pos;
	s->state = SLOT_CLEARED;
}

static uint64_t entity_hash(struct fm *m, const char *entity)
{
	if (entity != m->eh_ptr) {
		m->eh_ptr = entity;
		m->eh = shash(0, entity);
	}
	return m->eh;
}

/* ---- sources ---------------------------------------------------------------------- */

static struct source *source_get(struct fm *m, const struct af_event *ev, bool create)
{
	uint32_t h = key_hash2((int)ev->kind, ev->blade, entity_hash(m, ev->entity)) & m->src_mask;
	uint32_t i;

	for (i = m->src_heads[h]; i != NO_IDX; i = m->sources[i].hnext) {
		struct source *s = &m->sources[i];

		if (s->kind == ev->kind && s->blade == ev->blade &&
		    strcmp(s->entity, ev->entity) == 0)
			return s;
	}
	if (!create)
		return NULL;
	if (m->src_used < m->n_sources) {
		i = m->src_used++;
	} else {
		/* full: the source heard from longest ago makes room (it is
		 * quiet; if it speaks again it is new) */
		uint32_t old = 0, hh, *pp;

		for (uint32_t k = 1; k < m->n_sources; k++) {
			if (m->sources[k].last_ts < m->sources[old].last_ts)
				old = k;
		}
		hh = key_hash((int)m->sources[old].kind, m->sources[old].blade,
		              m->sources[old].entity) &
		     m->src_mask;
		for (pp = &m->src_heads[hh]; *pp != NO_IDX && *pp != old;
		     pp = &m->sources[*pp].hnext)
			;
		if (*pp == old)
			*pp = m->sources[old].hnext;
		if (m->sources[old].sensor >= 0 &&
		    m->blades[m->sources[old].blade].sensors[m->sources[old].sensor] > 0)
			m->blades[m->sources[old].blade].sensors[m->sources[old].sensor]--;
		m->sources_evicted++;
		i = old;
	}
	m->sources[i] = (struct source){.hnext = m->src_heads[h],
	                                .used = true,
	                                .kind = ev->kind,
	                                .blade = ev->blade,
	                                .sensor = -1};
	af_strlcpy(m->sources[i].entity, ev->entity, sizeof(m->sources[i].entity));
	m->src_heads[h] = i;
	return &m->sources[i];
}

static uint64_t event_hash(const struct af_event *ev)
{
	uint64_t h = mix(0, (uint64_t)ev->source);

	for (unsigned i = 0; i < ev->n_detail; i++) {
		h = shash(h, ev->detail[i].key);
		h = shash(h, ev->detail[i].val);
	}
	return h;
}

/* ---- slots ------------------------------------------------------------------------- */

static struct slot *slot_find(struct fm *m, int rule, int blade, const char *entity)
{
	uint32_t h = key_hash2(rule + 1000, blade, entity_hash(m, entity)) & m->slot_mask;

	for (uint32_t i = m->slot_heads[h]; i != NO_IDX; i = m->slots[i].hnext) {
		struct slot *s = &m->slots[i];

		if (s->state != SLOT_FREE && s->rule == rule && s->blade == blade &&
		    strcmp(s->entity, entity) == 0)
			return s;
	}
	return NULL;
}

static void slot_unlink(struct fm *m, struct slot *s)
{
	uint32_t idx = (uint32_t)(s - m->slots);
	uint32_t h = key_hash(s->rule + 1000, s->blade, s->entity) & m->slot_mask;
	uint32_t *pp = &m->slot_heads[h];

	while (*pp != NO_IDX && *pp != idx)
		pp = &m->slots[*pp].hnext;
	if (*pp == idx)
		*pp = s->hnext;
	s->state = SLOT_FREE;
}

/* A slot whose memory is no longer needed: pending without recent events,
 * or cleared longer ago than the history. */
static bool slot_reclaimable(const struct fm *m, const struct slot *s)
{
	uint64_t hist = m->rules->params.history_ms * AF_NS_PER_MS;

	if (s->state == SLOT_PENDING || s->state == SLOT_ABSORBED || s->state == SLOT_DAMPED)
		return true;
	return s->state == SLOT_CLEARED && m->now >= s->last_ns + hist;
}

static struct slot *slot_new(struct fm *m, int rule, int blade, const char *entity)
{
	struct slot *s = NULL, *old = NULL, *cleared = NULL;
	uint32_t h;

	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct slot *c = &m->slots[i];

		if (c->state == SLOT_FREE) {
			s = c;
			break;
		}
		/* never one the current event already uses */
		if (c->last_ns == m->now && c->state != SLOT_CLEARED)
			continue;
		/* the least recently used reclaimable one, if none is free */
		if (slot_reclaimable(m, c) && (old == NULL || c->last_ns < old->last_ns))
			old = c;
		if (c->state == SLOT_CLEARED && (cleared == NULL || c->last_ns < cleared->last_ns))
			cleared = c;
	}
	/* at worst, the oldest cleared fault gives up its flapping memory:
	 * better that than no room for a new fault */
	if (s == NULL && old == NULL && cleared != NULL) {
		af_warn("failure-model: %u faults remembered: forgetting fault %llu early",
		        m->n_slots, (unsigned long long)cleared->f.id);
		old = cleared;
	}
	if (s == NULL && old != NULL) {
		slot_unlink(m, old);
		s = old;
	}
	if (s == NULL)
		return NULL;
	h = key_hash2(rule + 1000, blade, entity_hash(m, entity)) & m->slot_mask;
	memset(s, 0, sizeof(*s));
	s->state = SLOT_PENDING;
	s->rule = rule;
	s->blade = blade;
	af_strlcpy(s->entity, entity, sizeof(s->entity));
	s->last_ns = m->now;
	s->hnext = m->slot_heads[h];
	m->slot_heads[h] = (uint32_t)(s - m->slots);
	return s;
}

/* ---- blade state -------------------------------------------------------------------- */

static int sensor_level(const char *state)
{
	if (state == NULL)
		return -1;
	if (strcmp(state, "ok") == 0)
		return 0;
	if (strstr(state, "non-recoverable"))
		return 3;
	if (strstr(state, "non-critical"))
		return 1;
	if (strstr(state, "critical"))
		return 2;
	return -1;
}

static bool is_vm_failure(const char *event)
{
	return event != NULL && (strcmp(event, "crashed") == 0 || strcmp(event, "watchdog") == 0 ||
	                         strcmp(event, "stopped-failed") == 0);
}

static long long vm_failures(const struct fm *m, const struct blade_state *b)
{
	uint64_t win = m->rules->params.vm_group_ms * AF_NS_PER_MS;
	uint32_t seen[VM_RING];
	unsigned n = 0;

	for (unsigned i = 0; i < VM_RING; i++) {
		bool dup = false;

		if (b->vm_ts[i] == 0 || b->vm_ts[i] + win < m->now)
			continue;
		for (unsigned j = 0; j < n && !dup; j++)
			dup = seen[j] == b->vm_hash[i];
		if (!dup)
			seen[n++] = b->vm_hash[i];
	}
	return n;
}

static bool fatal_open(const struct fm *m, const struct blade_state *b)
{
	const struct slot *s = &m->slots[b->fatal_slot];

	return b->fatal_id != 0 && s->state == SLOT_OPEN && s->f.id == b->fatal_id;
}

/* The blade's payload went off (M0/M1, power lost, a fence confirmed):
 * noted for its fatal hardware fault if that is still open (a leave is
 * noted in update_state as fatal_left). After the clear it is news of its
 * own, not the fault's. */
static void went_off(struct fm *m, struct blade_state *b)
{
	if (fatal_open(m, b))
		b->fatal_off = true;
}

static void update_state(struct fm *m, const struct af_event *ev, struct source *src)
{
	struct blade_state *b = &m->blades[ev->blade];
	const char *v;

	switch (ev->kind) {
	case AF_EV_HOTSWAP:
		v = af_event_get(ev, "to");
		if (v && v[0] == 'M' && v[1] >= '0' && v[1] <= '7' && v[2] == '\0') {
			b->mstate = (int8_t)(v[1] - '0');
			if (b->mstate == 4)
				b->power = 1; /* active again: powered */
			if (b->mstate <= 1)
				went_off(m, b);
		}
		break;
	case AF_EV_FENCE:
		v = af_event_get(ev, "action");
		if (v && strcmp(v, "fence") == 0 && af_event_get(ev, "result") &&
		    strcmp(af_event_get(ev, "result"), "ok") == 0)
			went_off(m, b);
		break;
	case AF_EV_IPMC_UNREACHABLE:
		b->ipmc = 0;
		break;
	case AF_EV_IPMC_REACHABLE:
		b->ipmc = 1;
		break;
	case AF_EV_NODE_LEAVE:
		b->member = 0;
		b->leave = *ev;
		if (fatal_open(m, b))
			b->fatal_left = true;
		break;
	case AF_EV_NODE_JOIN:
		b->member = 1;
		break;
	case AF_EV_HYPERVISOR_DOWN:
		b->hyper = 0;
		break;
	case AF_EV_HYPERVISOR_UP:
		b->hyper = 1;
		break;
	case AF_EV_SEL_RECORD:
		v = af_event_get(ev, "sensor_type");
		if (v && strcmp(v, "power-unit") == 0) {
			const char *mean = af_event_get(ev, "meaning");
			const char *dir = af_event_get(ev, "dir");
			bool off = mean && (strcmp(mean, "power-off") == 0 ||
			                    strcmp(mean, "ac-lost") == 0 ||
			                    strcmp(mean, "power-unit-failure") == 0);

			if (off)
				b->power = dir && strcmp(dir, "deassert") == 0 ? 1 : 0;
			if (b->power == 0)
				went_off(m, b);
		}
		break;
	case AF_EV_SENSOR_THRESHOLD: {
		int lvl = sensor_level(af_event_get(ev, "state"));

		if (src == NULL || lvl < 0 || lvl == src->sensor)
			break;
		if (src->sensor >= 0 && b->sensors[src->sensor] > 0)
			b->sensors[src->sensor]--;
		b->sensors[lvl]++;
		src->sensor = (int8_t)lvl;
		break;
	}
	case AF_EV_VM_LIFECYCLE:
		if (is_vm_failure(af_event_get(ev, "event"))) {
			b->vm_ts[b->vm_pos] = m->now ? m->now : 1;
			b->vm_hash[b->vm_pos] = (uint32_t)shash(0, ev->entity);
			b->vm_pos = (b->vm_pos + 1) % VM_RING;
		}
		break;
	default:
		break;
	}
}

static const char *const mstate_text[] = {"M0", "M1", "M2", "M3", "M4", "M5", "M6", "M7"};

static void blade_view(const struct fm *m, int blade, enum af_ev_kind kind, struct fm_blade_view *v)
{
	const struct blade_state *b = &m->blades[blade];
	static const char *const sens[] = {"ok", "non-critical", "critical", "non-recoverable"};
	int worst = 0;

	v->mstate = b->mstate >= 0 ? mstate_text[b->mstate] : "unknown";
	v->ipmc = b->ipmc < 0 ? "unknown" : b->ipmc ? "reachable" : "unreachable";
	v->member = b->member < 0 ? "unknown" : b->member ? "member" : "lost";
	v->power = b->power < 0 ? "unknown" : b->power ? "on" : "lost";
	v->hypervisor = b->hyper < 0 ? "unknown" : b->hyper ? "up" : "down";
	for (int i = 3; i > 0; i--) {
		if (b->sensors[i]) {
			worst = i;
			break;
		}
	}
	v->sensors = sens[worst];
	/* the one costly key: counted only where a rule reads it */
	v->vm_failures = m->kind_uses_vmf[kind] ? vm_failures(m, b) : 0;
}

/* ---- faults ------------------------------------------------------------------------ */

/* What distinguishes faults of one rule on one target: the source entity
 * (a sensor, a PEM, a VM), except for a host, which has one fault per rule
 * whatever reported it (three VMs failing together are one host fault). */
static const char *key_entity(const struct fm_rule *r, const struct af_event *ev)
{
	return r->scope == AF_SCOPE_HOST && ev->blade > 0 ? "" : ev->entity;
}

static enum af_scope scope_of(const struct fm_rule *r, int blade)
{
	/* the shelf's own sensors and records (blade 0) are shelf faults */
	if (blade == 0 && (r->scope == AF_SCOPE_BLADE || r->scope == AF_SCOPE_HOST))
		return AF_SCOPE_SHELF;
	return r->scope;
}

/* Does a clearing event of this blade / entity concern the fault? */
static bool same_target(const struct slot *s, int blade, const char *vm)
{
	switch (s->f.scope) {
	case AF_SCOPE_SHELF:
		return strcmp(s->entity, vm) == 0; /* the same PEM, fan, quorum */
	case AF_SCOPE_BLADE:
	case AF_SCOPE_HOST:
		return s->blade == blade;
	case AF_SCOPE_VM:
		return strcmp(s->f.vm, vm) == 0;
	default:
		return false;
	}
}

/* The fault that explains a new symptom of this blade, if any: a fatal
 * blade fault of the hardware (open, or cleared within subsume_window)
 * explains everything on the blade; a fatal host fault of the hypervisor
 * explains the VMs of the host. */
static struct slot *absorber(struct fm *m, const struct fm_rule *r, int blade, struct slot *self)
{
	uint64_t win = m->rules->params.subsume_ms * AF_NS_PER_MS;
	const struct blade_state *b;
	struct slot *host = NULL;

	/* the shelf's own faults (fans, PEMs) are nobody's symptoms */
	if (blade <= 0 || scope_of(r, blade) == AF_SCOPE_SHELF)
		return NULL;
	/* a guest failing on a blade that is still a member while the shelf
	 * manager has only lost its IPMC (M7): the host runs, and its
	 * hardware fault (whose fence cannot be confirmed through a silent
	 * IPMC) does not explain the guest, which must be recovered on its own
	 * (the soak: fg1's QEMU killed on such a blade stayed down) */
	if (r->kind == AF_EV_VM_LIFECYCLE && m->blades[blade].member == 1 &&
	    m->blades[blade].mstate == 7)
		return NULL;
	for (uint32_t i = 0; i < m->n_open; i++) {
		struct slot *s = &m->slots[m->open[i]];

		if (s == self || s->blade != blade || s->f.severity != AF_SEV_FATAL)
			continue;
		if (s->f.layer == AF_LAYER_HARDWARE && s->f.scope == AF_SCOPE_BLADE)
			return s;
		if (s->f.layer == AF_LAYER_HYPERVISOR && s->f.scope == AF_SCOPE_HOST &&
		    r->layer != AF_LAYER_HARDWARE && host == NULL)
			host = s;
	}
	if (host != NULL)
		return host;
	/* a fatal blade fault that cleared a moment ago (the blade is active
	 * again) still explains late symptoms of its host and VMs, if the
	 * blade went away (off, or out of the membership) while it was open;
	 * new hardware evidence is a new fault. A fault that cleared with the
	 * blade never away (M7 -> M4: the shelf manager lost the IPMC and
	 * found it again, its fence failed) explains nothing after its clear
	 * (the soak, seed 1470415251 step 324: a partition 4 s later was
	 * absorbed, and fg1 and rg1 stayed down until it healed). A node.leave
	 * is late news only of a blade seen off that had not left yet: one
	 * that left while the fault was open has rejoined since, and leaves
	 * anew. */
	b = &m->blades[blade];
	if (b->fatal_id != 0 &&
	    (r->kind == AF_EV_NODE_LEAVE ? b->fatal_off && !b->fatal_left
	                                 : b->fatal_off || b->fatal_left) &&
	    r->layer != AF_LAYER_HARDWARE) {
		struct slot *s = &m->slots[b->fatal_slot];

		if (s != self && s->state == SLOT_CLEARED && s->f.id == b->fatal_id &&
		    m->now <= s->cleared_at + win)
			return s;
	}
	return NULL;
}

/* Does fault a (fatal, of the blade or its host) explain fault s? */
static bool explains(const struct slot *a, enum af_scope scope, enum af_layer layer)
{
	if (scope == AF_SCOPE_SHELF)
		return false;
	if (a->f.layer == AF_LAYER_HARDWARE)
		return true;               /* a dead blade explains everything on it */
	return layer != AF_LAYER_HARDWARE; /* a dead host: its VMs, its other symptoms */
}

static void clear_slot(struct fm *m, struct slot *s, enum fm_why why, uint64_t merged_into,
                       uint64_t event_id)
{
	unset_open(m, s);
	s->state = SLOT_CLEARED;
	s->f.cleared_ns = m->now ? m->now : 1;
	s->cleared_at = m->now;
	s->last_ns = m->now;
	s->nonmatch = 0;
	s->hist = 0;
	s->hist_n = 0;
	m->cleared++;
	report(m, FM_OP_CLEAR, why, s, merged_into, event_id);
}

/* A new fatal fault explains the faults and holds already there: first
 * (collect) their causes join it, then (!collect) they are cleared. */
static void absorb_existing(struct fm *m, struct slot *a, uint64_t event_id, bool collect)
{
	for (unsigned i = 0; i < MAX_HOLDS && collect; i++) {
		struct hold *h = &m->holds[i];
		const struct fm_rule *hr;

		if (!h->used || h->ev.blade != a->blade)
			continue;
		hr = &m->rules->rules[h->rule];
		if (!explains(a, scope_of(hr, h->ev.blade), hr->layer))
			continue;
		af_fault_add_cause(&a->f, h->ev.id);
		h->used = false;
	}
	for (uint32_t i = m->n_open; i-- > 0;) {
		struct slot *s = &m->slots[m->open[i]];

		if (s == a || s->blade != a->blade || !explains(a, s->f.scope, s->f.layer))
			continue;
		if (collect) {
			for (unsigned c = 0; c < s->f.n_causes; c++)
				af_fault_add_cause(&a->f, s->f.causes[c]);
			continue;
		}
		clear_slot(m, s, FM_WHY_MERGED, a->f.id, event_id);
	}
}

static unsigned count_since(const uint64_t *ts, unsigned n, uint64_t since)
{
	unsigned c = 0;

	for (unsigned i = 0; i < n; i++)
		c += ts[i] >= since;
	return c;
}

static void ring_push(uint64_t *ts, uint8_t *n, uint8_t *pos, unsigned cap, uint64_t t)
{
	ts[*pos] = t;
	*pos = (uint8_t)((*pos + 1) % cap);
	if (*n < cap)
		(*n)++;
}

static bool hold_add(struct fm *m, int rule, const struct af_event *ev)
{
	const struct fm_rule *r = &m->rules->rules[rule];

	for (unsigned i = 0; i < MAX_HOLDS; i++) {
		struct hold *h = &m->holds[i];

		if (h->used)
			continue;
		h->used = true;
		h->rule = rule;
		h->deadline = m->now + r->hold_ms * AF_NS_PER_MS;
		h->ev = *ev;
		want_deadline(m, h->deadline);
		return true;
	}
	/* no room to wait: better a fault now than none */
	af_warn("failure-model: %d holds pending: raising at once (rule %s)", MAX_HOLDS, r->name);
	return false;
}

/* Raises (or updates) the fault of rule r for this event. held: the hold
 * is over, do not hold again. */
static void raise_fault(struct fm *m, int ri, const struct af_event *ev, struct slot *s, bool held)
{
	const struct fm_rule *r = &m->rules->rules[ri];
	enum af_scope scope = scope_of(r, ev->blade);
	struct slot *a;
	bool escalate = false;

	if (s == NULL) {
		s = slot_new(m, ri, ev->blade, key_entity(r, ev));
		if (s == NULL) {
			ignored(m, ev, "no room for another fault (max_faults)");
			return;
		}
	}
	s->last_ns = m->now;
	if (s->state == SLOT_OPEN) {
		if (r->ttl_ms) {
			s->ttl_ns = m->now + r->ttl_ms * AF_NS_PER_MS;
			want_deadline(m, s->ttl_ns);
		}
		if (r->level)
			return; /* readings of a standing condition: no news */
		af_fault_add_cause(&s->f, ev->id);
		report(m, FM_OP_UPDATE, FM_WHY_CAUSE, s, 0, ev->id);
		return;
	}
	a = absorber(m, r, ev->blade, s);
	if (a != NULL) {
		if (r->level && s->state == SLOT_ABSORBED)
			return; /* still the same standing condition */
		if (r->level)
			s->state = SLOT_ABSORBED;
		af_fault_add_cause(&a->f, ev->id);
		a->last_ns = m->now;
		/* a fence of the blade follows from this event alone: the fault
		 * no longer rests on the blade leaving the membership (an open
		 * one: a fault that cleared a moment ago and takes in a late
		 * symptom is over, whatever its plan still does) */
		if (a->state == SLOT_OPEN && r->kind != AF_EV_NODE_LEAVE &&
		    r->rclass == AF_RC_FENCE_AND_FAILOVER)
			a->f.membership_only = false;
		report(m, FM_OP_UPDATE, FM_WHY_ABSORBED, a, 0, ev->id);
		return;
	}
	if (s->state == SLOT_ABSORBED)
		s->state = SLOT_PENDING; /* what explained it is gone */
	if (s->state == SLOT_DAMPED) {
		if (m->now < s->last_raise_ns + r->flap_ms * AF_NS_PER_MS)
			return;          /* the same comeback, still standing */
		s->state = SLOT_PENDING; /* standing past the window: raise it now */
	}
	if (r->hold_ms && !held && hold_add(m, ri, ev))
		return;
	if (r->esc_n) {
		uint64_t win = r->esc_ms * AF_NS_PER_MS;

		ring_push(s->esc_ts, &s->esc_n, &s->esc_pos, r->esc_n, m->now);
		escalate = s->esc_n >= r->esc_n &&
		           count_since(s->esc_ts, s->esc_n, m->now >= win ? m->now - win : 0) >=
		                   r->esc_n;
	}
	if (r->flap_ms && s->last_raise_ns &&
	    m->now < s->last_raise_ns + r->flap_ms * AF_NS_PER_MS && !escalate) {
		s->suppressed++;
		if (r->level)
			s->state = SLOT_DAMPED;
		ignored(m, ev, "flapping: at most one raise per flap window");
		return;
	}
	m->next_id++;
	memset(&s->f, 0, sizeof(s->f));
	s->f.id = m->next_id;
	s->f.layer = r->layer;
	s->f.severity = r->severity;
	s->f.rclass = r->rclass;
	s->f.scope = scope;
	s->f.blade = ev->blade;
	af_strlcpy(s->f.rule, r->name, sizeof(s->f.rule));
	s->f.membership_only = r->kind == AF_EV_NODE_LEAVE;
	af_strlcpy(s->f.entity, ev->entity, sizeof(s->f.entity));
	if (scope == AF_SCOPE_VM)
		af_strlcpy(s->f.vm, ev->entity, sizeof(s->f.vm));
	s->escalated = escalate;
	if (escalate) {
		s->f.severity = r->esc_severity;
		s->f.rclass = r->esc_rclass;
	}
	s->f.raised_ns = m->now ? m->now : 1;
	/* a debounced fault: the readings that made it, oldest first */
	if (r->debounce_m > 1 && !held) {
		for (int i = (int)r->debounce_m - 1; i > 0; i--) {
			if (i < s->hist_n && (s->hist >> i) & 1)
				af_fault_add_cause(&s->f, s->hist_ids[i]);
		}
	}
	/* a rate fault: the events in the window, oldest first */
	if (r->rate_n && !held) {
		uint64_t win = r->rate_ms * AF_NS_PER_MS, since = m->now >= win ? m->now - win : 0;

		for (unsigned k = 0; k < s->rate_n; k++) {
			unsigned i = (s->rate_pos + r->rate_n - s->rate_n + k) % r->rate_n;

			if (s->rate_ts[i] >= since && s->rate_ids[i] != ev->id)
				af_fault_add_cause(&s->f, s->rate_ids[i]);
		}
	}
	af_fault_add_cause(&s->f, ev->id);
	set_open(m, s);
	s->last_raise_ns = m->now ? m->now : 1;
	if (s->f.severity == AF_SEV_FATAL && s->f.layer == AF_LAYER_HARDWARE &&
	    s->f.scope == AF_SCOPE_BLADE) {
		struct blade_state *b = &m->blades[s->blade];

		b->fatal_slot = (uint32_t)(s - m->slots);
		b->fatal_id = s->f.id;
		b->fatal_off = (b->mstate >= 0 && b->mstate <= 1) || b->power == 0;
		b->fatal_left = b->member == 0;
	}
	s->nonmatch = 0;
	s->ttl_ns = 0;
	if (r->ttl_ms) {
		s->ttl_ns = m->now + r->ttl_ms * AF_NS_PER_MS;
		want_deadline(m, s->ttl_ns);
	}
	m->raised++;
	if (s->f.severity == AF_SEV_FATAL &&
	    ((s->f.layer == AF_LAYER_HARDWARE && s->f.scope == AF_SCOPE_BLADE) ||
	     (s->f.layer == AF_LAYER_HYPERVISOR && s->f.scope == AF_SCOPE_HOST))) {
		/* it explains what is already there: the raise carries those
		 * causes, then the faults it absorbed are cleared */
		absorb_existing(m, s, ev->id, true);
		report(m, FM_OP_RAISE, FM_WHY_NONE, s, 0, ev->id);
		absorb_existing(m, s, ev->id, false);
		return;
	}
	report(m, FM_OP_RAISE, FM_WHY_NONE, s, 0, ev->id);
}

/* ---- the event path ------------------------------------------------------------------ */

static bool debounce_ok(const struct fm_rule *r, const struct slot *s)
{
	uint16_t mask = (uint16_t)((1u << r->debounce_m) - 1);

	if (r->debounce_m <= 1)
		return true;
	return (unsigned)__builtin_popcount(s->hist & mask) >= r->debounce_n;
}

/* Debounce and rate allow a raise of rule r (s: its slot for the event's
 * key, NULL when it has none yet). An open, absorbed or damped fault is
 * "ready": raise_fault() knows what to do with it. */
static bool raise_ready(const struct fm *m, const struct fm_rule *r, const struct slot *s)
{
	uint64_t win;

	if (s == NULL)
		return r->debounce_m <= 1 && r->rate_n == 0;
	if (s->state == SLOT_OPEN || s->state == SLOT_ABSORBED || s->state == SLOT_DAMPED)
		return true;
	if (!debounce_ok(r, s))
		return false;
	if (r->rate_n == 0)
		return true;
	win = r->rate_ms * AF_NS_PER_MS;
	return s->rate_n >= r->rate_n &&
	       count_since(s->rate_ts, s->rate_n, m->now >= win ? m->now - win : 0) >= r->rate_n;
}

static void classify(struct fm *m, const struct af_event *ev, bool held)
{
	struct fm_blade_view bv;
	unsigned n = m->n_kind_rules[ev->kind];
	const uint16_t *idx = m->kind_rules[ev->kind];
	int chosen = -1;
	struct slot *chosen_slot = NULL;

	blade_view(m, ev->blade, ev->kind, &bv);
	for (unsigned k = 0; k < n; k++) {
		int ri = idx[k];
		const struct fm_rule *r = &m->rules->rules[ri];
		bool match = fm_rule_match(r, ev, &bv);
		bool counts = r->level || r->debounce_m > 1 || r->rate_n;
		struct slot *s = NULL;

		if (held) {
			/* a held event is decided again, already counted, and
			 * only a rule ready to raise takes it */
			if (match && chosen == -1) {
				chosen_slot = slot_find(m, ri, ev->blade, key_entity(r, ev));
				chosen = raise_ready(m, r, chosen_slot) ? ri : -2;
			}
			continue;
		}
		if (counts) {
			s = slot_find(m, ri, ev->blade, key_entity(r, ev));
			if (s == NULL && match)
				s = slot_new(m, ri, ev->blade, key_entity(r, ev));
		}
		if (s != NULL) {
			s->hist = (uint16_t)((s->hist << 1) | (match ? 1 : 0));
			memmove(s->hist_ids + 1, s->hist_ids,
			        sizeof(s->hist_ids) - sizeof(s->hist_ids[0]));
			s->hist_ids[0] = ev->id;
			if (s->hist_n < 16)
				s->hist_n++;
			s->last_ns = m->now;
			if (match && r->rate_n) {
				s->rate_ids[s->rate_pos] = ev->id;
				ring_push(s->rate_ts, &s->rate_n, &s->rate_pos, r->rate_n, m->now);
			}
			if (r->level && (s->state == SLOT_OPEN || s->state == SLOT_ABSORBED ||
			                 s->state == SLOT_DAMPED)) {
				if (match) {
					s->nonmatch = 0;
				} else if (++s->nonmatch >= r->hysteresis) {
					if (s->state == SLOT_OPEN) {
						clear_slot(m, s, FM_WHY_HYSTERESIS, 0, ev->id);
					} else {
						s->state = SLOT_PENDING;
						s->nonmatch = 0;
						s->hist = 0;
					}
				}
			}
		}
		if (!match || chosen != -1)
			continue;
		/* the first matching rule decides, ready or not */
		chosen = raise_ready(m, r, s) ? ri : -2;
		chosen_slot = s;
	}
	if (chosen < 0)
		return;
	if (chosen_slot == NULL)
		chosen_slot =
		        slot_find(m, chosen, ev->blade, key_entity(&m->rules->rules[chosen], ev));
	raise_fault(m, chosen, ev, chosen_slot, held);
}

/* Returns true when the event cleared the blade's fatal hardware fault
 * while the blade is out of the membership and was never seen off: its
 * departure, explained by that fault until now, is news again. */
static bool apply_clears(struct fm *m, const struct af_event *ev)
{
	const struct blade_state *b = &m->blades[ev->blade];
	struct fm_blade_view bv;
	bool left = false;

	if (m->rules->n_clears == 0)
		return false;
	blade_view(m, ev->blade, ev->kind, &bv);
	for (unsigned c = 0; c < m->rules->n_clears; c++) {
		const struct fm_clear *cl = &m->rules->clears[c];

		if (!fm_clear_match(cl, ev, &bv))
			continue;
		for (uint32_t i = m->n_open; i-- > 0;) {
			struct slot *s = &m->slots[m->open[i]];

			if (!fm_clear_names(cl, s->f.rule) ||
			    !same_target(s, ev->blade, ev->entity))
				continue;
			if (s->f.id == b->fatal_id && b->member == 0 && !b->fatal_off &&
			    b->leave.kind == AF_EV_NODE_LEAVE && b->leave.blade == ev->blade)
				left = true;
			clear_slot(m, s, FM_WHY_RULE, 0, ev->id);
		}
		for (unsigned i = 0; i < MAX_HOLDS; i++) {
			struct hold *h = &m->holds[i];
			const struct fm_rule *r;

			if (!h->used)
				continue;
			r = &m->rules->rules[h->rule];
			if (!fm_clear_names(cl, r->name))
				continue;
			if (scope_of(r, h->ev.blade) == AF_SCOPE_VM ||
			                    scope_of(r, h->ev.blade) == AF_SCOPE_SHELF
			            ? strcmp(h->ev.entity, ev->entity) == 0
			            : h->ev.blade == ev->blade) {
				af_debug("failure-model: held event %llu cancelled by event %llu",
				         (unsigned long long)h->ev.id, (unsigned long long)ev->id);
				h->used = false;
			}
		}
	}
	return left;
}

/* Fires every timer due before t (at or before t when inclusive), each at
 * its own time, in order. An event fires what is due before it; what is
 * due at its very time comes after it. */
static void run_timers(struct fm *m, uint64_t t, bool inclusive)
{
	while (m->deadline != 0 && (m->deadline < t || (inclusive && m->deadline == t))) {
		uint64_t due = UINT64_MAX;
		struct hold *hd = NULL;
		struct slot *sd = NULL;

		/* the earliest timer */
		for (unsigned i = 0; i < MAX_HOLDS; i++) {
			if (m->holds[i].used && m->holds[i].deadline < due) {
				due = m->holds[i].deadline;
				hd = &m->holds[i];
			}
		}
		for (uint32_t i = 0; i < m->n_open; i++) {
			struct slot *s = &m->slots[m->open[i]];

			if (s->ttl_ns && s->ttl_ns < due) {
				due = s->ttl_ns;
				sd = s;
				hd = NULL;
			}
		}
		if (due == UINT64_MAX || due > t || (!inclusive && due == t)) {
			m->deadline = due == UINT64_MAX ? 0 : due;
			return;
		}
		if (due > m->now)
			m->now = due;
		if (hd != NULL) {
			struct af_event ev = hd->ev;
			int rule = hd->rule;

			hd->used = false;
			(void)rule;
			m->eh_ptr = NULL;
			classify(m, &ev, true);
			m->eh_ptr = NULL;
		} else {
			sd->ttl_ns = 0;
			clear_slot(m, sd, FM_WHY_TTL, 0, 0);
		}
		m->deadline = 1; /* recomputed by the next round */
	}
}

static bool valid(const struct af_event *ev)
{
	return (unsigned)ev->source < AF_SRC_COUNT && (unsigned)ev->kind < AF_EV_KIND_COUNT &&
	       ev->blade >= 0 && ev->blade <= AF_MAX_BLADES && ev->n_detail <= AF_EV_DETAIL_MAX &&
	       memchr(ev->entity, '\0', sizeof(ev->entity)) != NULL;
}

int fm_event(struct fm *m, const struct af_event *ev)
{
	struct source *src;
	uint64_t h;
	bool left;

	if (m == NULL || ev == NULL)
		return -EINVAL;
	if (!valid(ev)) {
		m->events_rejected++;
		af_warn("failure-model: rejected malformed event (source %d kind %d blade %d)",
		        (int)ev->source, (int)ev->kind, ev->blade);
		return -EINVAL;
	}
	m->reports = 0;
	m->events_seen++;
	m->eh_ptr = NULL;
	run_timers(m, ev->ts_ns, false);
	if (ev->ts_ns > m->now)
		m->now = ev->ts_ns;
	src = source_get(m, ev, true);
	if (src != NULL) {
		h = event_hash(ev);
		if (src->seen && ev->ts_ns < src->last_ts) {
			ignored(m, ev, "older than the last event of its source (out of order)");
			return m->reports;
		}
		if (src->seen && src->last_ts == ev->ts_ns && src->last_hash == h) {
			ignored(m, ev, "duplicate of the previous event of its source");
			return m->reports;
		}
		src->seen = true;
		src->last_ts = ev->ts_ns;
		src->last_hash = h;
	}
	/* an old record a later activation of its blade made history (read
	 * from a SEL backlog after the M4 that cleared what it raised) */
	if (af_event_get(ev, "superseded") != NULL) {
		ignored(m, ev, "superseded by a later activation (M4) of its blade");
		return m->reports;
	}
	update_state(m, ev, src);
	left = apply_clears(m, ev);
	classify(m, ev, false);
	if (left) {
		/* the soak's M7, partition, M4: hs-lost's fence failed on the
		 * silent IPMC, the blade's leave joined it; with the fault
		 * cleared, the blade (still gone, never fenced) must be
		 * recovered as a loss of its own */
		struct af_event again = m->blades[ev->blade].leave;

		af_info("failure-model: blade %d is active again (event %llu) but still out of "
		        "the membership, never seen off: its leave (event %llu) is news again",
		        ev->blade, (unsigned long long)ev->id, (unsigned long long)again.id);
		again.ts_ns = m->now;
		classify(m, &again, false);
	}
	return m->reports;
}

int fm_tick(struct fm *m, uint64_t now_ns)
{
	if (m == NULL)
		return -EINVAL;
	m->reports = 0;
	run_timers(m, now_ns, true);
	if (now_ns > m->now)
		m->now = now_ns;
	return m->reports;
}

uint64_t fm_hold_horizon(const struct fm *m)
{
	uint64_t last = 0;

	for (unsigned i = 0; m != NULL && i < MAX_HOLDS; i++) {
		if (m->holds[i].used && m->holds[i].deadline > last)
			last = m->holds[i].deadline;
	}
	return last;
}

uint64_t fm_next_deadline(const struct fm *m)
{
	uint64_t due = UINT64_MAX;

	if (m == NULL || m->deadline == 0)
		return 0;
	for (unsigned i = 0; i < MAX_HOLDS; i++) {
		if (m->holds[i].used && m->holds[i].deadline < due)
			due = m->holds[i].deadline;
	}
	for (uint32_t i = 0; i < m->n_open; i++) {
		const struct slot *s = &m->slots[m->open[i]];

		if (s->ttl_ns && s->ttl_ns < due)
			due = s->ttl_ns;
	}
	return due == UINT64_MAX ? 0 : due;
}

void fm_foreach_open(const struct fm *m, void (*fn)(void *arg, const struct af_fault *f), void *arg)
{
	if (m == NULL || fn == NULL)
		return;
	for (uint32_t i = 0; i < m->n_open; i++)
		fn(arg, &m->slots[m->open[i]].f);
}

/* ---- set-up ---------------------------------------------------------------------------- */

static void free_tables(struct fm *m)
{
	for (int k = 0; k < AF_EV_KIND_COUNT; k++) {
		free(m->kind_rules[k]);
		m->kind_rules[k] = NULL;
		m->n_kind_rules[k] = 0;
	}
}

static int index_rules(struct fm *m, const struct fm_rules *r)
{
	free_tables(m);
	memset(m->kind_uses_vmf, 0, sizeof(m->kind_uses_vmf));
	for (unsigned i = 0; i < r->n_rules; i++)
		for (unsigned j = 0; j < r->rules[i].n_conds; j++)
			if (r->rules[i].conds[j].what == FM_KEY_VM_FAILURES)
				m->kind_uses_vmf[r->rules[i].kind] = true;
	for (unsigned i = 0; i < r->n_clears; i++)
		for (unsigned j = 0; j < r->clears[i].n_conds; j++)
			if (r->clears[i].conds[j].what == FM_KEY_VM_FAILURES)
				m->kind_uses_vmf[r->clears[i].kind] = true;
	for (int k = 0; k < AF_EV_KIND_COUNT; k++) {
		unsigned n = 0;

		for (unsigned i = 0; i < r->n_rules; i++)
			n += r->rules[i].kind == (enum af_ev_kind)k;
		if (n == 0)
			continue;
		m->kind_rules[k] = calloc(n, sizeof(uint16_t));
		if (m->kind_rules[k] == NULL)
			return -ENOMEM;
		for (unsigned i = 0; i < r->n_rules; i++) {
			if (r->rules[i].kind == (enum af_ev_kind)k)
				m->kind_rules[k][m->n_kind_rules[k]++] = (uint16_t)i;
		}
	}
	return 0;
}

static int alloc_tables(struct fm *m, const struct fm_params *p)
{
	m->n_slots = p->max_faults;
	m->slot_mask = pow2_at_least(p->max_faults * 2) - 1;
	m->n_sources = p->max_sources;
	m->src_mask = pow2_at_least(p->max_sources * 2) - 1;
	m->slots = af_calloc_resident(m->n_slots, sizeof(*m->slots));
	m->open = af_calloc_resident(m->n_slots, sizeof(*m->open));
	m->slot_heads = malloc((m->slot_mask + 1) * sizeof(uint32_t));
	m->sources = af_calloc_resident(m->n_sources, sizeof(*m->sources));
	m->src_heads = malloc((m->src_mask + 1) * sizeof(uint32_t));
	if (!m->slots || !m->open || !m->slot_heads || !m->sources || !m->src_heads)
		return -ENOMEM;
	memset(m->slot_heads, 0xFF, (m->slot_mask + 1) * sizeof(uint32_t));
	memset(m->src_heads, 0xFF, (m->src_mask + 1) * sizeof(uint32_t));
	return 0;
}

int fm_init(struct fm **out, const struct af_config *cfg, const struct fm_ops *ops, void *opaque)
{
	return fm_init_rules(out, cfg, NULL, ops, opaque);
}

int fm_init_rules(struct fm **out, const struct af_config *cfg, struct fm_rules *rules,
                  const struct fm_ops *ops, void *opaque)
{
	struct fm *m;
	int rc;

	if (out == NULL || ops == NULL) {
		fm_rules_free(rules);
		return -EINVAL;
	}
	m = af_calloc_resident(1, sizeof(*m));
	if (m == NULL) {
		fm_rules_free(rules);
		return -ENOMEM;
	}
	m->cfg = cfg;
	m->ops = *ops;
	m->opaque = opaque;
	for (int b = 0; b <= AF_MAX_BLADES; b++)
		m->blades[b] = (struct blade_state){
		        .mstate = -1, .ipmc = -1, .member = -1, .power = -1, .hyper = -1};
	if (rules == NULL) {
		rc = fm_rules_default(&rules);
		if (rc < 0) {
			af_err("failure-model: the built-in rules do not load (%s)", strerror(-rc));
			goto fail;
		}
	}
	m->rules = rules;
	rc = alloc_tables(m, &rules->params);
	if (rc < 0)
		goto fail;
	rc = index_rules(m, rules);
	if (rc < 0)
		goto fail;
	af_info("failure-model: %u rules, %u clear statements (%s)", rules->n_rules,
	        rules->n_clears, rules->origin);
	*out = m;
	return 0;
fail:
	fm_fini(m);
	return rc;
}

int fm_set_rules(struct fm *m, struct fm_rules *rules)
{
	struct fm_rules *old;
	int rc;

	if (m == NULL || rules == NULL)
		return -EINVAL;
	if (rules->params.max_faults != m->rules->params.max_faults ||
	    rules->params.max_sources != m->rules->params.max_sources) {
		/* the tables keep their size until restart */
		rules->params.max_faults = m->rules->params.max_faults;
		rules->params.max_sources = m->rules->params.max_sources;
		af_warn("failure-model: max_faults/max_sources take effect at the next start");
	}
	rc = index_rules(m, rules);
	if (rc < 0) {
		index_rules(m, m->rules);
		return rc;
	}
	/* faults follow the rule of the same name; keys of vanished rules
	 * keep their open faults (rule -1: cleared by name only) */
	for (uint32_t i = 0; i < m->n_slots; i++) {
		struct slot *s = &m->slots[i];
		uint8_t state = s->state;
		int ni = -1;
		uint32_t h;

		const char *name;

		if (state == SLOT_FREE)
			continue;
		/* an orphan of an earlier reload finds its rule again by name */
		name = s->rule >= 0 ? m->rules->rules[s->rule].name : s->f.rule;
		for (unsigned j = 0; j < rules->n_rules; j++) {
			if (strcmp(rules->rules[j].name, name) == 0)
				ni = (int)j;
		}
		slot_unlink(m, s);
		if (ni < 0 && state != SLOT_OPEN)
			continue; /* nothing worth keeping */
		s->state = state;
		s->rule = ni;
		if (ni < 0 || rules->rules[ni].ttl_ms == 0)
			s->ttl_ns = 0; /* the new rule has no ttl */
		h = key_hash(ni + 1000, s->blade, s->entity) & m->slot_mask;
		s->hnext = m->slot_heads[h];
		m->slot_heads[h] = i;
	}
	for (unsigned i = 0; i < MAX_HOLDS; i++) {
		struct hold *h = &m->holds[i];
		int ni = -1;

		if (!h->used)
			continue;
		for (unsigned j = 0; j < rules->n_rules; j++) {
			if (strcmp(rules->rules[j].name, m->rules->rules[h->rule].name) == 0)
				ni = (int)j;
		}
		if (ni < 0)
			h->used = false;
		else
			h->rule = ni;
	}
	old = m->rules;
	m->rules = rules;
	fm_rules_free(old);
	af_info("failure-model: rules replaced: %u rules, %u clear statements (%s)", rules->n_rules,
	        rules->n_clears, rules->origin);
	return 0;
}

const struct fm_rules *fm_get_rules(const struct fm *m)
{
	return m ? m->rules : NULL;
}

int fm_reconfigure(struct fm *m, const struct af_config *cfg)
{
	if (m == NULL)
		return -EINVAL;
	m->cfg = cfg;
	return 0;
}

void fm_describe(const struct fm *m, struct af_module_status *st)
{
	unsigned open = 0;

	st->name = "failure-model";
	if (m == NULL) {
		st->state = "stopped";
		st->detail[0] = '\0';
		return;
	}
	open = m->n_open;
	st->state = "running";
	snprintf(st->detail, sizeof(st->detail),
	         "%u rules; %u faults open; %llu events, %llu ignored, %llu rejected; %llu raised, "
	         "%llu cleared",
	         m->rules->n_rules, open, (unsigned long long)m->events_seen,
	         (unsigned long long)m->events_ignored, (unsigned long long)m->events_rejected,
	         (unsigned long long)m->raised, (unsigned long long)m->cleared);
}

void fm_fini(struct fm *m)
{
	if (m == NULL)
		return;
	af_info("failure-model: stopped after %llu events", (unsigned long long)m->events_seen);
	free_tables(m);
	free(m->slots);
	free(m->open);
	free(m->slot_heads);
	free(m->sources);
	free(m->src_heads);
	fm_rules_free(m->rules);
	free(m);
}
