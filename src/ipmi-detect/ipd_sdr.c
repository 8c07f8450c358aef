/*
 * Sensor Data Records (IPMI 2.0 section 43): full (type 1) and compact
 * (type 2) sensor records, reading conversion and names. Pure code: every
 * byte comes from a controller we do not trust, so every access is checked.
 */
#include "config.h"

#include "ipd_int.h"

#include "af_ipmi.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "af_util.h"

/* Offsets into the record, header included (spec byte number minus 1). */
enum {
	SDR_HDR_LEN = 5,
	SDR_TYPE = 3,
	SDR_LEN = 4,
	SDR_OWNER = 5,
	SDR_LUN = 6,
	SDR_NUMBER = 7,
	SDR_ENTITY = 8,
	SDR_INSTANCE = 9,
	SDR_SENSOR_TYPE = 12,
	SDR_READING_TYPE = 13,
	SDR_UNITS1 = 20,
	SDR_BASE_UNIT = 21,
	FULL_LINEARIZATION = 23,
	FULL_M_LS = 24,
	FULL_M_MS = 25,
	FULL_B_LS = 26,
	FULL_B_MS = 27,
	FULL_EXPONENTS = 29,
	FULL_ID = 47,
	COMPACT_ID = 31,
};

static int16_t ten_bit(uint8_t ls, uint8_t ms_bits)
{
	int v = ls | ((ms_bits >> 6) << 8);

	return (int16_t)(v & 0x200 ? v - 0x400 : v);
}

static int8_t four_bit(uint8_t v)
{
	return (int8_t)(v & 0x8 ? (int)v - 16 : (int)v);
}

/* The ID string: only 8-bit ASCII is kept as text; other encodings and
 * non-printable bytes would print as garbage, so they are replaced. */
static void decode_name(const uint8_t *rec, size_t len, size_t at, struct ipd_sensor *s)
{
	unsigned code, n;

	s->name[0] = '\0';
	if (at < len) {
		code = rec[at] >> 6;
		n = rec[at] & 0x1F;
		if (code == 3 && n > 0 && at + 1 + n <= len) {
			if (n > IPD_NAME_MAX - 1)
				n = IPD_NAME_MAX - 1;
			for (unsigned i = 0; i < n; i++) {
				uint8_t c = rec[at + 1 + i];
				s->name[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
			}
			s->name[n] = '\0';
			/* trailing blanks and NULs pad fixed-width names */
			while (n > 0 && (s->name[n - 1] == ' ' || s->name[n - 1] == '\0'))
				s->name[--n] = '\0';
		}
	}
	if (s->name[0] == '\0')
		snprintf(s->name, sizeof(s->name), "sensor 0x%02x", s->number);
}

int ipd_sdr_decode(const uint8_t *rec, size_t len, struct ipd_sensor *s)
{
	size_t min;

	/* The header's length is authoritative: controllers answering "the
	 * whole record" may pad the response. */
	if (rec == NULL || len < SDR_HDR_LEN || (size_t)rec[SDR_LEN] + SDR_HDR_LEN > len)
		return -EINVAL;
	len = (size_t)rec[SDR_LEN] + SDR_HDR_LEN;
	if (rec[SDR_TYPE] != 0x01 && rec[SDR_TYPE] != 0x02)
		return 0;
	min = rec[SDR_TYPE] == 0x01 ? FULL_ID + 1 : COMPACT_ID + 1;
	if (len < min)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	s->owner = rec[SDR_OWNER];
	s->lun = rec[SDR_LUN] & 0x03;
	s->number = rec[SDR_NUMBER];
	s->entity_id = rec[SDR_ENTITY];
	s->entity_instance = rec[SDR_INSTANCE];
	s->type = rec[SDR_SENSOR_TYPE];
	s->reading_type = rec[SDR_READING_TYPE];
	s->cls = s->reading_type == 0x01 ? IPD_SENSOR_THRESHOLD : IPD_SENSOR_DISCRETE;
	s->unit = rec[SDR_BASE_UNIT];
	s->analog_format = 3; /* compact records carry no conversion */
	s->linearization = 0xFF;
	if (rec[SDR_TYPE] == 0x01) {
		s->analog_format = rec[SDR_UNITS1] >> 6;
		s->linearization = rec[FULL_LINEARIZATION] & 0x7F;
		s->m = ten_bit(rec[FULL_M_LS], rec[FULL_M_MS]);
		s->b = ten_bit(rec[FULL_B_LS], rec[FULL_B_MS]);
		s->r_exp = four_bit(rec[FULL_EXPONENTS] >> 4);
		s->b_exp = four_bit(rec[FULL_EXPONENTS] & 0x0F);
		decode_name(rec, len, FULL_ID, s);
	} else {
		decode_name(rec, len, COMPACT_ID, s);
	}
	return 1;
}

bool ipd_sdr_convert(const struct ipd_sensor *s, uint8_t raw, double *value)
{
	double x;

	if (s->cls != IPD_SENSOR_THRESHOLD || s->linearization != 0)
		return false;
	switch (s->analog_format) {
	case 0:
		x = raw;
		break;
	case 1:
		x = (raw & 0x80) ? -(double)(uint8_t)~raw : raw;
		break;
	case 2:
		x = (int8_t)raw;
		break;
	default:
		return false;
	}
	*value = ((double)s->m * x + (double)s->b * pow(10.0, s->b_exp)) * pow(10.0, s->r_exp);
	return true;
}

const char *ipd_unit_name(uint8_t unit)
{
	static const char *const names[] = {
	        [0] = "unspecified", [1] = "degrees_C", [2] = "degrees_F", [3] = "degrees_K",
	        [4] = "V",           [5] = "A",         [6] = "W",         [7] = "J",
	        [8] = "C",           [18] = "RPM",      [19] = "Hz",       [20] = "us",
	        [21] = "ms",         [22] = "s",        [31] = "%",
	};
	const char *n = unit < AF_ARRAY_SIZE(names) ? names[unit] : NULL;

	return n ? n : "units";
}

const char *ipd_sensor_type_name(uint8_t type)
{
	return af_sensor_type_name(type);
}

int ipd_threshold_severity(uint8_t bits)
{
	if (bits & 0x24) /* lnr, unr */
		return 3;
	if (bits & 0x12) /* lc, uc */
		return 2;
	if (bits & 0x09) /* lnc, unc */
		return 1;
	return 0;
}

const char *ipd_threshold_state(uint8_t bits)
{
	if (bits & 0x20)
		return "upper-non-recoverable";
	if (bits & 0x04)
		return "lower-non-recoverable";
	if (bits & 0x10)
		return "upper-critical";
	if (bits & 0x02)
		return "lower-critical";
	if (bits & 0x08)
		return "upper-non-critical";
	if (bits & 0x01)
		return "lower-non-critical";
	return "ok";
}
