/*
 * shelfmgr: what the shelf is made of and what state each FRU is in.
 *
 * Discovery asks the shelf manager for its PICMG properties and the address
 * table (Get Address Info per front-board site) and each blade IPMC for its
 * own PICMG properties; OpenIPMI's ATCA support finds the FRUs (entities) of
 * every IPMC and reports hot-swap transitions, which become events with the
 * previous state. Transitions OpenIPMI reports while the domain is still
 * being discovered only set the initial state.
 */
#include "config.h"

#define AF_LOG_SS AF_SS_SHELF
#include "smc_state.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <OpenIPMI/ipmi_fru.h>

#include "af_log.h"
#include "af_util.h"

#define SENSOR_TYPE_HOTSWAP 0xF0

void smc_post(struct smc *m, struct af_event *ev)
{
	m->events++;
	if (m->env.event_sink != NULL)
		m->env.event_sink(m->env.sink_opaque, ev);
}

struct smc_blade *smc_blade_by_slot(struct smc *m, int slot)
{
	for (unsigned i = 0; i < m->n_blades; i++) {
		if (m->blades[i].slot == slot)
			return &m->blades[i];
	}
	return NULL;
}

struct smc_blade *smc_blade_by_ipmc(struct smc *m, uint8_t ipmc)
{
	for (unsigned i = 0; i < m->n_blades; i++) {
		if (m->blades[i].ipmc == ipmc)
			return &m->blades[i];
	}
	return NULL;
}

/* ---- entities --------------------------------------------------------------- */

static uint8_t entity_ipmc(ipmi_entity_t *ent)
{
	/* device-relative entities (instance 0x60+) belong to the controller
	 * at their device address; FRU entities name their controller */
	if (ipmi_entity_get_entity_instance(ent) >= 0x60)
		return (uint8_t)ipmi_entity_get_device_address(ent);
	return (uint8_t)ipmi_entity_get_slave_address(ent);
}

static int entity_fru_id(ipmi_entity_t *ent)
{
	return ipmi_entity_get_is_fru(ent) ? ipmi_entity_get_fru_device_id(ent) : -1;
}

static bool is_payload(ipmi_entity_t *ent)
{
	return ipmi_entity_get_is_fru(ent) && ipmi_entity_get_fru_device_id(ent) == 0;
}

static void entity_name(ipmi_entity_t *ent, char *buf, size_t len)
{
	char id[33] = "";

	ipmi_entity_get_id(ent, id, sizeof(id));
	if (id[0] != '\0')
		snprintf(buf, len, "%s", id);
	else
		snprintf(buf, len, "%s", ipmi_entity_get_entity_id_string(ent));
}

/* The FRU view of an entity, created on first sight (-1 if it is not a
 * FRU or there is no room). */
static struct smc_fru_view *fru_of(struct smc_blade *b, ipmi_entity_t *ent, bool create)
{
	int id = entity_fru_id(ent);

	if (id < 0)
		return NULL;
	for (unsigned i = 0; i < b->n_frus; i++) {
		if (b->frus[i].fru_id == id)
			return &b->frus[i];
	}
	if (!create || b->n_frus == SMC_MAX_FRUS)
		return NULL;
	b->frus[b->n_frus] =
	        (struct smc_fru_view){.fru_id = (uint8_t)id, .mstate = -1, .previous = -1};
	entity_name(ent, b->frus[b->n_frus].name, sizeof(b->frus[b->n_frus].name));
	return &b->frus[b->n_frus++];
}

static void fru_text(ipmi_fru_t *fru, int (*get)(ipmi_fru_t *, char *, unsigned int *), char *out,
                     size_t outlen)
{
	char buf[64];
	unsigned int len = sizeof(buf) - 1;

	if (fru == NULL || get(fru, buf, &len) != 0)
		return;
	buf[len < sizeof(buf) ? len : sizeof(buf) - 1] = '\0';
	af_strlcpy(out, buf, outlen);
}

static void read_fru_info(struct smc_blade *b, ipmi_entity_t *ent)
{
	ipmi_fru_t *fru = ipmi_entity_get_fru(ent);

	fru_text(fru, ipmi_fru_get_board_info_board_product_name, b->product, sizeof(b->product));
	fru_text(fru, ipmi_fru_get_board_info_board_serial_number, b->serial, sizeof(b->serial));
	if (b->product[0] == '\0')
		fru_text(fru, ipmi_fru_get_product_info_product_name, b->product,
		         sizeof(b->product));
}

/* Why a transition happened, as the failure model reads it: "requested"
 * (our fence or unfence, the shelf manager's command, the FRU's own
 * request), "operator" (the handle), "unexpected" otherwise. picmg is the
 * PICMG cause code of the SEL record (-1 when unknown). */
static const char *why_of(const struct smc_blade *b, int cur, int picmg)
{
	if (b->op_active)
		return "requested";
	switch (picmg) {
	case 1: /* commanded by the shelf manager (Set FRU Activation) */
	case 3: /* FRU programmatic action */
		return "requested";
	case 2: /* operator changed the handle switch */
		return "operator";
	default:
		break;
	}
	/* M6, M1 after an M5 someone asked for: the same deactivation */
	if (b->planned != NULL && (cur == 6 || cur == 1 || cur == 0))
		return b->planned;
	return "unexpected";
}

static void set_state(struct smc *m, struct smc_blade *b, struct smc_fru_view *f, bool payload,
                      int last, int cur, const char *via, int picmg)
{
	int before = f ? f->mstate : b->mstate;
	const char *why = why_of(b, cur, picmg);
	struct af_event ev;

	if (payload) {
		if ((cur == 5 || cur == 6) && strcmp(why, "unexpected") != 0)
			b->planned = why;
		else if (cur == 0 || cur == 1 || cur == 4 || cur == 7)
			b->planned = NULL;
	}
	if (f != NULL) {
		f->previous = f->mstate;
		f->mstate = cur;
	}
	if (payload) {
		b->previous = b->mstate;
		b->mstate = cur;
		b->mstate_ns = af_mono_ns();
		if (b->op_active)
			smc_fop_shelf_state(&b->op, cur);
	}
	/* during discovery OpenIPMI replays what it finds: that is the
	 * initial state, not a transition */
	if (!m->discovered || before == cur)
		return;
	af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, b->slot, f != NULL ? f->name : "payload");
	af_event_set(&ev, "ipmc", "0x%02x", b->ipmc);
	af_event_set(&ev, "fru", "%d", f != NULL ? f->fru_id : 0);
	af_event_set(&ev, "from", "%s", smc_mstate_name(last >= 0 ? last : before));
	af_event_set(&ev, "to", "%s", smc_mstate_name(cur));
	af_event_set(&ev, "state", "%s", smc_mstate_text(cur));
	af_event_set(&ev, "cause", "%s", why);
	af_event_set(&ev, "via", "%s", via);
	if (picmg >= 0)
		af_event_set(&ev, "picmg_cause", "%d", picmg);
	smc_post(m, &ev);
}

/* The PICMG cause code of a hot-swap SEL record (data 2, bits 7:4), -1
 * when there is no record or it does not say. */
static int picmg_cause(ipmi_event_t *event)
{
	unsigned char data[16];

	/* the record after its id and type: timestamp (4), generator (2),
	 * EvM revision, sensor type, sensor number, event type, data 1-3 */
	if (event == NULL || ipmi_event_get_type(event) != 0x02 ||
	    ipmi_event_get_data_len(event) < 13 || ipmi_event_get_data(event, data, 0, 13) < 13 ||
	    data[11] == 0xFF)
		return -1;
	return data[11] >> 4;
}

static int hot_swap_cb(ipmi_entity_t *ent, enum ipmi_hot_swap_states last,
                       enum ipmi_hot_swap_states cur, void *cb_data, ipmi_event_t *event)
{
	struct smc *m = cb_data;
	struct smc_blade *b;

	if (m->closing)
		return IPMI_EVENT_NOT_HANDLED;
	b = smc_blade_by_ipmc(m, entity_ipmc(ent));
	if (b == NULL)
		return IPMI_EVENT_NOT_HANDLED;
	if (event != NULL && smc_sel_seen_has(b, ipmi_event_get_record_id(event),
	                                      entity_fru_id(ent), (int)cur, af_mono_ns())) {
		af_debug("blade %d: hot-swap record 0x%04x (%s) already applied", b->slot,
		         ipmi_event_get_record_id(event), smc_mstate_name((int)cur));
		return IPMI_EVENT_NOT_HANDLED;
	}
	/* OpenIPMI delivers SEL events a second or more late, in SEL order;
	 * when our own reading already moved the payload past them, a late
	 * intermediate state would be a step back in time */
	if (is_payload(ent) && (int)last != b->mstate && (int)cur != b->mstate &&
	    b->polled_ns != 0 && af_mono_ns() - b->polled_ns < 3 * AF_NS_PER_S) {
		af_debug("blade %d: late hot-swap event %s -> %s ignored (read %s)", b->slot,
		         smc_mstate_name((int)last), smc_mstate_name((int)cur),
		         smc_mstate_name(b->mstate));
		return IPMI_EVENT_NOT_HANDLED;
	}
	set_state(m, b, fru_of(b, ent, true), is_payload(ent), (int)last, (int)cur,
	          event != NULL ? "SEL event" : "state read", picmg_cause(event));
	/* never "handled": the SEL belongs to the shelf, not to us */
	return IPMI_EVENT_NOT_HANDLED;
}

/* ---- our own reading of the payload's hot-swap state ------------------------------- */

/* OpenIPMI learns hot-swap transitions from the SEL, rescanned at best every
 * second, and can miss a record added in the same second as the previous
 * one (SEL timestamps count seconds). Readings of each blade's hot-swap
 * sensor correct that: ipmi-detect's (every sensor interval, handed over by
 * the daemon through smc_hotswap_observed) and our own every few seconds
 * (smc_shelf_poll). A change found this way is a transition whose
 * intermediate states, if any, were not seen. */
static void poll_reply(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                       size_t len)
{
	struct smc_blade *b = arg;
	int st;

	(void)gen;
	b->polling = false;
	if (err < 0 || smc_parse_hotswap(rsp, len, &st) != 0)
		return;
	smc_shelf_observed(m, b, st);
}

void smc_shelf_observed(struct smc *m, struct smc_blade *b, int mstate)
{
	struct smc_fru_view *f = NULL;

	uint64_t now = af_mono_ns();

	if (!m->discovered || mstate < 0 || mstate == b->mstate) {
		b->pending = -1;
		return;
	}
	/* OpenIPMI's SEL events, which carry every intermediate state, get
	 * 1.5 s to catch up before a reading overrides them */
	if (b->pending != mstate) {
		b->pending = mstate;
		b->pending_ns = now;
		return;
	}
	if (now - b->pending_ns < 3 * AF_NS_PER_S / 2)
		return;
	b->pending = -1;
	for (unsigned i = 0; i < b->n_frus; i++) {
		if (b->frus[i].fru_id == 0)
			f = &b->frus[i];
	}
	b->polled_ns = now;
	af_info("blade %d: hot-swap state %s read, %s expected: the SEL event was missed", b->slot,
	        smc_mstate_name(mstate), smc_mstate_name(b->mstate));
	set_state(m, b, f, true, b->mstate, mstate, "state read", -1);
}

void smc_hotswap_observed(struct smc *m, int slot, int mstate)
{
	struct smc_blade *b;

	if (m == NULL || m->idle_reason[0] != '\0' || (b = smc_blade_by_slot(m, slot)) == NULL)
		return;
	b->fed_ns = af_mono_ns();
	smc_shelf_observed(m, b, mstate);
}

/* A record is remembered for a minute: OpenIPMI's SEL rescan is far
 * quicker than that, and record ids come round again after a SEL clear. */
#define SEL_SEEN_NS (60 * AF_NS_PER_S)

void smc_sel_seen_add(struct smc_blade *b, unsigned record, int fru, int state, uint64_t now)
{
	struct smc_sel_seen *e = &b->sel_seen[b->sel_seen_next];

	b->sel_seen_next = (b->sel_seen_next + 1) % SMC_SEL_SEEN;
	*e = (struct smc_sel_seen){.ns = now ? now : 1,
	                           .record = (uint16_t)record,
	                           .fru = (int16_t)fru,
	                           .state = (int8_t)state};
}

bool smc_sel_seen_has(const struct smc_blade *b, unsigned record, int fru, int state, uint64_t now)
{
	for (unsigned i = 0; i < SMC_SEL_SEEN; i++) {
		const struct smc_sel_seen *e = &b->sel_seen[i];

		if (e->ns != 0 && now - e->ns < SEL_SEEN_NS && e->record == record &&
		    e->fru == fru && e->state == state)
			return true;
	}
	return false;
}

void smc_hotswap_sel(struct smc *m, int slot, int fru, int previous, int state, unsigned record,
                     int cause)
{
	struct smc_blade *b;
	struct smc_fru_view *f = NULL;
	uint64_t now = af_mono_ns();

	if (m == NULL || m->idle_reason[0] != '\0' || !m->discovered || state < 0 || state > 7 ||
	    fru < 0 || fru > 255 || record > 0xFFFF || (b = smc_blade_by_slot(m, slot)) == NULL)
		return;
	for (unsigned i = 0; i < b->n_frus; i++) {
		if (b->frus[i].fru_id == fru)
			f = &b->frus[i];
	}
	/* a FRU OpenIPMI has not shown us yet: its own event will do */
	if (f == NULL && fru != 0)
		return;
	smc_sel_seen_add(b, record, fru, state, now);
	if (fru == 0) {
		b->pending = -1;
		/* the late-event filter: OpenIPMI's older records, still to
		 * come, are behind this state */
		b->polled_ns = now;
	}
	set_state(m, b, f, fru == 0, previous, state, "SEL event", cause);
}

void smc_shelf_poll(struct smc *m)
{
	uint64_t now = af_mono_ns();

	if (!m->connected || !m->discovered)
		return;
	for (unsigned i = 0; i < m->n_blades; i++) {
		struct smc_blade *b = &m->blades[i];
		int hs;
		uint8_t num;

		/* a fence reads the sensor itself, faster; recent readings
		 * from ipmi-detect make ours redundant */
		if (b->polling || b->op_active ||
		    (b->fed_ns != 0 && now - b->fed_ns < 3 * AF_NS_PER_S) ||
		    (hs = smc_hotswap_sensor(m, b)) < 0)
			continue;
		num = (uint8_t)hs;
		if (smc_send(m, b->ipmc, SMC_NETFN_SE, SMC_CMD_GET_SENSOR_READING, &num, 1,
		             poll_reply, b, 0) == 0)
			b->polling = true;
	}
}

static void hot_swap_state_cb(ipmi_entity_t *ent, int err, enum ipmi_hot_swap_states st,
                              void *cb_data)
{
	struct smc *m = cb_data;
	struct smc_blade *b;

	if (m->closing || err != 0)
		return;
	b = smc_blade_by_ipmc(m, entity_ipmc(ent));
	if (b != NULL)
		set_state(m, b, fru_of(b, ent, true), is_payload(ent), -1, (int)st, "state read",
		          -1);
}

static void entity_update(enum ipmi_update_e op, ipmi_domain_t *domain, ipmi_entity_t *ent,
                          void *cb_data)
{
	struct smc *m = cb_data;
	struct smc_blade *b;
	struct smc_fru_view *f;

	(void)domain;
	if (m->closing)
		return;
	b = smc_blade_by_ipmc(m, entity_ipmc(ent));
	if (b == NULL)
		return; /* the shelf's own entities, or a blade not configured here */
	if (op == IPMI_DELETED) {
		int id = entity_fru_id(ent);

		for (unsigned i = 0; id >= 0 && i < b->n_frus; i++) {
			if (b->frus[i].fru_id == id) {
				b->n_frus--;
				b->frus[i] = b->frus[b->n_frus];
				b->fru_watched[i] = b->fru_watched[b->n_frus];
				b->fru_watched[b->n_frus] = false;
				break;
			}
		}
		if (is_payload(ent))
			b->have_entity = false;
		return;
	}
	f = fru_of(b, ent, true);
	if (f != NULL)
		entity_name(ent, f->name, sizeof(f->name));
	if (is_payload(ent)) {
		b->entity = ipmi_entity_convert_to_id(ent);
		b->have_entity = true;
		read_fru_info(b, ent);
	}
	/* OpenIPMI learns that an entity is a hot-swappable FRU in steps
	 * (added, then changed): watch it from the first update that says so */
	if (f != NULL && !b->fru_watched[f - b->frus] && ipmi_entity_hot_swappable(ent)) {
		if (ipmi_entity_add_hot_swap_handler(ent, hot_swap_cb, m) == 0)
			b->fru_watched[f - b->frus] = true;
		ipmi_entity_get_hot_swap_state(ent, hot_swap_state_cb, m);
	}
}

void smc_shelf_connected(struct smc *m, ipmi_domain_t *domain)
{
	if (m->entity_handler)
		return;
	if (ipmi_domain_add_entity_update_handler(domain, entity_update, m) == 0)
		m->entity_handler = true;
	/* hot-swap transitions reach OpenIPMI through the SEL: read it as
	 * often as OpenIPMI allows (fencing polls the blade directly) */
	ipmi_domain_set_sel_rescan_time(domain, 1);
}

/* ---- discovery requests ------------------------------------------------------- */

static void shmc_properties(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                            size_t len)
{
	int rc = err < 0 ? err : smc_parse_properties(rsp, len, &m->shmc_props);

	(void)arg;
	(void)gen;
	if (rc != 0) {
		af_warn("shelf manager: Get PICMG Properties failed (%s): is this an ATCA shelf?",
		        rc > 0 ? smc_cc_text((uint8_t)rc) : strerror(-rc));
		return;
	}
	m->have_shmc_props = true;
	af_info("shelf manager: PICMG %u.%u, FRU ids up to %u", m->shmc_props.ext_major,
	        m->shmc_props.ext_minor, m->shmc_props.max_fru_id);
}

static void blade_properties(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                             size_t len)
{
	struct smc_blade *b = arg;
	int rc = err < 0 ? err : smc_parse_properties(rsp, len, &b->props);

	(void)m;
	(void)gen;
	if (rc != 0) {
		af_warn("blade %d: IPMC 0x%02x: Get PICMG Properties failed (%s)", b->slot, b->ipmc,
		        rc > 0 ? smc_cc_text((uint8_t)rc) : strerror(-rc));
		return;
	}
	b->have_props = true;
}

static void address_info(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                         size_t len)
{
	unsigned site = (unsigned)(uintptr_t)arg;
	struct smc_addr_info a;
	struct smc_blade *b;
	int rc = err < 0 ? err : smc_parse_address_info(rsp, len, &a);

	(void)gen;
	if (rc == 0xD3 || rc == 0xCB || rc == 0xCC)
		return; /* no such site in this shelf */
	if (rc != 0) {
		af_warn("shelf manager: Get Address Info for site %u failed (%s)", site,
		        rc > 0 ? smc_cc_text((uint8_t)rc) : strerror(-rc));
		return;
	}
	m->n_table++;
	b = smc_blade_by_slot(m, (int)site);
	if (b == NULL) {
		af_info("shelf: site %u holds IPMC 0x%02x (not configured here)", site,
		        a.ipmb_addr);
		return;
	}
	b->in_table = true;
	b->hw_addr = a.hw_addr;
	if (a.ipmb_addr != b->ipmc)
		af_warn("blade %d: configured at IPMC 0x%02x but the shelf's address table "
		        "says 0x%02x: check blade %d's ipmc",
		        b->slot, b->ipmc, a.ipmb_addr, b->slot);
}

void smc_shelf_discover(struct smc *m, ipmi_domain_t *domain)
{
	uint8_t req[5] = {SMC_PICMG_ID, 0, 0, 0, 0};
	int rc;

	(void)domain;
	m->discovered = true;
	/* what changed while we had no session (a shelf-manager switchover)
	 * would otherwise never be reported */
	for (unsigned i = 0; i < m->n_blades; i++) {
		struct smc_blade *b = &m->blades[i];
		struct af_event ev;

		if (b->mstate_at_close >= 0 && b->mstate >= 0 && b->mstate != b->mstate_at_close) {
			af_event_init(&ev, AF_SRC_SHELF, AF_EV_HOTSWAP, b->slot, "payload");
			af_event_set(&ev, "ipmc", "0x%02x", b->ipmc);
			af_event_set(&ev, "fru", "0");
			af_event_set(&ev, "from", "%s", smc_mstate_name(b->mstate_at_close));
			af_event_set(&ev, "to", "%s", smc_mstate_name(b->mstate));
			af_event_set(&ev, "state", "%s", smc_mstate_text(b->mstate));
			af_event_set(&ev, "cause", "found after reconnecting");
			smc_post(m, &ev);
		}
		b->mstate_at_close = -1;
	}
	rc = smc_send(m, 0x20, SMC_NETFN_PICMG, SMC_CMD_PICMG_PROPERTIES, req, 1, shmc_properties,
	              NULL, 0);
	if (rc < 0)
		af_warn("shelfmgr: discovery: %s", strerror(-rc));
	for (unsigned site = 1; site <= SMC_SITES; site++) {
		/* FRU 0, key type 3 (physical address), site number, site type */
		req[1] = 0;
		req[2] = 0x03;
		req[3] = (uint8_t)site;
		req[4] = SMC_SITE_FRONT_BOARD;
		smc_send(m, 0x20, SMC_NETFN_PICMG, SMC_CMD_PICMG_ADDRESS_INFO, req, 5, address_info,
		         (void *)(uintptr_t)site, 0);
	}
	for (unsigned i = 0; i < m->n_blades; i++)
		smc_send(m, m->blades[i].ipmc, SMC_NETFN_PICMG, SMC_CMD_PICMG_PROPERTIES, req, 1,
		         blade_properties, &m->blades[i], 0);
	af_notice("shelfmgr: shelf discovered in %.0f ms", (double)(m->up_ns - m->open_ns) / 1e6);
}

/* ---- the hot-swap sensor --------------------------------------------------------- */

struct hs_find {
	int number;
};

static void find_sensor(ipmi_entity_t *ent, ipmi_sensor_t *sensor, void *cb_data)
{
	struct hs_find *h = cb_data;
	int lun, num;

	(void)ent;
	if (h->number >= 0 || ipmi_sensor_get_sensor_type(sensor) != SENSOR_TYPE_HOTSWAP)
		return;
	if (ipmi_sensor_get_num(sensor, &lun, &num) == 0 && lun == 0)
		h->number = num;
}

static void iterate(ipmi_entity_t *ent, void *cb_data)
{
	ipmi_entity_iterate_sensors(ent, find_sensor, cb_data);
}

int smc_hotswap_sensor(struct smc *m, struct smc_blade *b)
{
	struct hs_find h = {.number = -1};

	(void)m;
	if (!b->have_entity || ipmi_entity_pointer_cb(b->entity, iterate, &h) != 0)
		return -1;
	return h.number;
}
