/*
 * System Event Log records (IPMI 2.0 section 32) and what they mean: the
 * threshold crossings, processor, memory, power unit and watchdog offsets
 * (table 42-3), and the PICMG hot-swap sensor (type 0xF0) whose offset is
 * the new M-state. Pure code.
 */
#include "config.h"

#include "ipd_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "af_ipmi.h"
#include "af_util.h"

int ipd_sel_decode(const uint8_t *raw, size_t len, struct ipd_sel_rec *r)
{
	if (raw == NULL || len != 16)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	memcpy(r->raw, raw, 16);
	r->id = (uint16_t)(raw[0] | raw[1] << 8);
	r->type = raw[2];
	if (r->type < 0xE0) /* system and timestamped OEM records */
		r->timestamp = (uint32_t)raw[3] | (uint32_t)raw[4] << 8 | (uint32_t)raw[5] << 16 |
		               (uint32_t)raw[6] << 24;
	if (r->type == 0x02) {
		r->generator = (uint16_t)(raw[7] | raw[8] << 8);
		r->evm_rev = raw[9];
		r->sensor_type = raw[10];
		r->sensor_number = raw[11];
		r->deassertion = (raw[12] & 0x80) != 0;
		r->event_type = raw[12] & 0x7F;
		memcpy(r->data, raw + 13, 3);
	}
	return 0;
}

const char *ipd_offset_name(uint8_t sensor_type, uint8_t event_type, unsigned off)
{
	return af_sel_offset_name(sensor_type, event_type, off);
}

const char *ipd_sel_meaning(const struct ipd_sel_rec *r)
{
	if (r->type != 0x02)
		return NULL;
	return ipd_offset_name(r->sensor_type, r->event_type, r->data[0] & 0x0F);
}

void ipd_sel_to_event(const struct ipd_sel_rec *r, const char *sensor_name, int blade,
                      struct af_event *ev)
{
	const char *meaning = ipd_sel_meaning(r);

	af_event_init(ev, AF_SRC_IPMI, AF_EV_SEL_RECORD, blade, sensor_name);
	af_event_set(ev, "record", "0x%04x", r->id);
	af_event_set(ev, "rtype", "0x%02x", r->type);
	if (r->type < 0xE0)
		af_event_set(ev, "sel_time", "%u", r->timestamp);
	if (r->type != 0x02) {
		/* OEM records: kept whole, the failure model ignores them */
		char hex[33];

		for (int i = 0; i < 16; i++)
			snprintf(hex + 2 * i, 3, "%02x", r->raw[i]);
		af_event_set(ev, "raw", "%s", hex);
		af_event_set(ev, "meaning", "oem");
		return;
	}
	af_event_set(ev, "generator", "0x%02x", r->generator & 0xFF);
	af_event_set(ev, "sensor_type", "%s", ipd_sensor_type_name(r->sensor_type));
	af_event_set(ev, "sensor", "0x%02x", r->sensor_number);
	af_event_set(ev, "dir", "%s", r->deassertion ? "deassert" : "assert");
	af_event_set(ev, "event_type", "0x%02x", r->event_type);
	af_event_set(ev, "offset", "%u", r->data[0] & 0x0F);
	af_event_set(ev, "meaning", "%s", meaning ? meaning : "unknown");
	af_event_set(ev, "data", "0x%02x%02x%02x", r->data[0], r->data[1], r->data[2]);
	if (r->event_type == 0x01) {
		/* data1 bits 7:6 = 01: data2 is the reading; 5:4 = 01: data3 the threshold */
		if ((r->data[0] & 0xC0) == 0x40)
			af_event_set(ev, "reading_raw", "%u", r->data[1]);
		if ((r->data[0] & 0x30) == 0x10)
			af_event_set(ev, "threshold_raw", "%u", r->data[2]);
	}
	if (r->event_type == 0x6F && r->sensor_type == 0xF0) {
		af_event_set(ev, "state", "M%u", r->data[0] & 0x0F);
		/* data2: previous state (3:0) and cause (7:4); 0xFF = not given */
		if (r->data[1] != 0xFF && (r->data[1] & 0x0F) <= 7) {
			af_event_set(ev, "previous", "M%u", r->data[1] & 0x0F);
			af_event_set(ev, "cause", "%u", r->data[1] >> 4);
		}
		if (r->data[2] != 0xFF)
			af_event_set(ev, "fru", "%u", r->data[2]);
	}
}

static bool ipmb_system_event(const struct ipd_sel_rec *r)
{
	return r->type == 0x02 && !(r->generator & 1);
}

void ipd_sel_supersede(const struct ipd_sel_rec *r, size_t n, bool *superseded, uint32_t *m4_ts)
{
	/* by IPMB address / 2: the SEL time of the IPMC's latest M4 seen so far
	 * walking back from the end */
	bool active[128] = {false};
	uint32_t at[128] = {0};

	for (size_t i = n; i-- > 0;) {
		const struct ipd_sel_rec *x = &r[i];
		unsigned a = (x->generator & 0xFF) >> 1;

		superseded[i] = false;
		m4_ts[i] = 0;
		if (!ipmb_system_event(x) || x->deassertion)
			continue;
		if (x->sensor_type == 0xF0 && x->event_type == 0x6F) {
			/* the payload (FRU 0, or FRU not given) entered M4 */
			if ((x->data[0] & 0x0F) == 4 && (x->data[2] == 0 || x->data[2] == 0xFF) &&
			    !active[a]) {
				active[a] = true;
				at[a] = x->timestamp;
			}
			continue;
		}
		if (active[a]) {
			superseded[i] = true;
			m4_ts[i] = at[a];
		}
	}
}
