/*
 * src/ipmi-detect: the pure decoders (SDRs, SEL records, the SEL cursor),
 * incremental SEL reading against a fake shelf manager, the reachability
 * state machine, and the module with its worker threads driven through the
 * transport seam by a fake ATCA shelf (shelf manager + blade IPMCs) and a
 * real qb_loop. Invalid inputs first.
 */
#include "config.h"

#include "check_util.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#define AF_LOG_SS AF_SS_IPMI
#include "af_common.h"
#include "fault_inject.h"
#include "af_fsm.h"
#include "ipd.h"
#include "ipd_int.h"

#define MODULE_PREFIX ipd
#define MODULE_NAME "ipmi-detect"
#include "check_module_contract.h"

/* ---- record builders ------------------------------------------------------ */

struct sdr_spec {
	uint16_t id;
	uint8_t type; /* 1 full, 2 compact */
	uint8_t owner, number, stype, rtype;
	uint8_t units1; /* bits 7:6 analog format */
	uint8_t unit, lin;
	int m, b, r_exp, b_exp;
	const char *name;
};

/* Builds an SDR (header included) as a controller stores it; returns its
 * length. Full records are at most 64 bytes, compact ones 48. */
static size_t build_sdr(uint8_t *r, const struct sdr_spec *s)
{
	size_t n = s->name ? strlen(s->name) : 0, idpos = s->type == 1 ? 47 : 31;

	memset(r, 0, 64);
	r[0] = (uint8_t)(s->id & 0xFF);
	r[1] = (uint8_t)(s->id >> 8);
	r[2] = 0x51;
	r[3] = s->type;
	r[5] = s->owner;
	r[6] = 0;
	r[7] = s->number;
	r[8] = 0xA0;
	r[9] = 0x60;
	r[12] = s->stype;
	r[13] = s->rtype;
	r[20] = s->units1;
	r[21] = s->unit;
	if (s->type == 1) {
		r[23] = s->lin;
		r[24] = (uint8_t)(s->m & 0xFF);
		r[25] = (uint8_t)(((s->m >> 8) & 3) << 6);
		r[26] = (uint8_t)(s->b & 0xFF);
		r[27] = (uint8_t)(((s->b >> 8) & 3) << 6);
		r[29] = (uint8_t)(((s->r_exp & 0xF) << 4) | (s->b_exp & 0xF));
	}
	r[idpos] = (uint8_t)(0xC0 | n);
	if (n)
		memcpy(r + idpos + 1, s->name, n);
	r[4] = (uint8_t)(idpos + 1 + n - 5);
	return idpos + 1 + n;
}

static size_t full_sdr(uint8_t *r, uint8_t owner, uint8_t number, uint8_t stype, const char *name)
{
	const struct sdr_spec s = {.type = 1,
	                           .owner = owner,
	                           .number = number,
	                           .stype = stype,
	                           .rtype = 0x01,
	                           .unit = 1,
	                           .m = 1,
	                           .name = name};
	return build_sdr(r, &s);
}

static size_t compact_sdr(uint8_t *r, uint8_t owner, uint8_t number, uint8_t stype, uint8_t rtype,
                          const char *name)
{
	const struct sdr_spec s = {.type = 2,
	                           .owner = owner,
	                           .number = number,
	                           .stype = stype,
	                           .rtype = rtype,
	                           .units1 = 0xC0,
	                           .name = name};
	return build_sdr(r, &s);
}

/* A 16-byte system event record. */
static void build_sel(uint8_t *raw, uint16_t id, uint32_t ts, uint8_t gen, uint8_t stype,
                      uint8_t snum, uint8_t dir_type, uint8_t d1, uint8_t d2, uint8_t d3)
{
	raw[0] = (uint8_t)(id & 0xFF);
	raw[1] = (uint8_t)(id >> 8);
	raw[2] = 0x02;
	raw[3] = (uint8_t)ts;
	raw[4] = (uint8_t)(ts >> 8);
	raw[5] = (uint8_t)(ts >> 16);
	raw[6] = (uint8_t)(ts >> 24);
	raw[7] = gen;
	raw[8] = 0x00;
	raw[9] = 0x04;
	raw[10] = stype;
	raw[11] = snum;
	raw[12] = dir_type;
	raw[13] = d1;
	raw[14] = d2;
	raw[15] = d3;
}

/* ---- SDR decoding: rejects ------------------------------------------------ */

START_TEST(test_sdr_decode_rejects)
{
	uint8_t r[80], bad[80];
	struct ipd_sensor s;
	size_t len = full_sdr(r, 0x82, 1, 0x01, "CPU Temp");

	ck_assert_int_eq(ipd_sdr_decode(NULL, 64, &s), -EINVAL);
	for (size_t l = 0; l < 5; l++) /* not even a header */
		ck_assert_int_eq(ipd_sdr_decode(r, l, &s), -EINVAL);
	/* truncated: the header says more than there is */
	for (size_t l = 5; l < len; l++)
		ck_assert_msg(ipd_sdr_decode(r, l, &s) == -EINVAL, "truncated to %zu accepted", l);
	/* a header length too short for a full record */
	memcpy(bad, r, len);
	bad[4] = 40; /* 45 bytes: the ID string type byte would be missing */
	ck_assert_int_eq(ipd_sdr_decode(bad, len, &s), -EINVAL);
	bad[4] = 0;
	ck_assert_int_eq(ipd_sdr_decode(bad, len, &s), -EINVAL);
	/* a length byte claiming more than the buffer */
	bad[4] = 0xFF;
	ck_assert_int_eq(ipd_sdr_decode(bad, len, &s), -EINVAL);
	/* compact record too short */
	len = compact_sdr(r, 0x82, 2, 0xF0, 0x6F, "HS");
	memcpy(bad, r, len);
	bad[4] = 26; /* 31 bytes: no ID string type byte */
	ck_assert_int_eq(ipd_sdr_decode(bad, len, &s), -EINVAL);
	/* garbage of every small length never decodes as a sensor */
	memset(bad, 0xFF, sizeof(bad));
	bad[3] = 0x01;
	for (size_t l = 0; l <= sizeof(bad); l++)
		ck_assert_int_le(ipd_sdr_decode(bad, l, &s), 0);
}
END_TEST

START_TEST(test_sdr_decode_full)
{
	uint8_t r[80];
	struct ipd_sensor s;
	const struct sdr_spec spec = {.id = 0x0102,
	                              .type = 1,
	                              .owner = 0x82,
	                              .number = 0x31,
	                              .stype = 0x01,
	                              .rtype = 0x01,
	                              .units1 = 0x80, /* two's complement */
	                              .unit = 1,
	                              .lin = 0,
	                              .m = -3,
	                              .b = 300,
	                              .r_exp = -2,
	                              .b_exp = 1,
	                              .name = "CPU Temp   "};
	size_t len = build_sdr(r, &spec);

	ck_assert_uint_eq(len, 48 + 11);
	ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
	ck_assert_uint_eq(s.owner, 0x82);
	ck_assert_uint_eq(s.number, 0x31);
	ck_assert_uint_eq(s.type, 0x01);
	ck_assert_uint_eq(s.reading_type, 0x01);
	ck_assert_int_eq(s.cls, IPD_SENSOR_THRESHOLD);
	ck_assert_uint_eq(s.entity_id, 0xA0);
	ck_assert_uint_eq(s.entity_instance, 0x60);
	ck_assert_uint_eq(s.analog_format, 2);
	ck_assert_uint_eq(s.linearization, 0);
	ck_assert_int_eq(s.m, -3);
	ck_assert_int_eq(s.b, 300);
	ck_assert_int_eq(s.r_exp, -2);
	ck_assert_int_eq(s.b_exp, 1);
	ck_assert_uint_eq(s.unit, 1);
	ck_assert_str_eq(s.name, "CPU Temp"); /* trailing blanks dropped */

	/* the header's length is authoritative: padding after it is ignored */
	memset(r + len, 'X', 16);
	ck_assert_int_eq(ipd_sdr_decode(r, len + 16, &s), 1);
	ck_assert_str_eq(s.name, "CPU Temp");

	/* 16-character names, non-printable bytes replaced */
	{
		const struct sdr_spec l16 = {.type = 1, .number = 7, .name = "0123456789abcdef"};
		len = build_sdr(r, &l16);
		ck_assert_uint_eq(len, 64);
		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_str_eq(s.name, "0123456789abcdef");
		r[48] = 0x07;
		r[49] = 0xC3;
		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_str_eq(s.name, "??23456789abcdef");
	}
	/* not 8-bit ASCII, empty, or longer than the record: "sensor 0xNN" */
	{
		const struct sdr_spec noname = {.type = 1, .number = 0x4A, .name = ""};
		len = build_sdr(r, &noname);
		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_str_eq(s.name, "sensor 0x4a");
		len = full_sdr(r, 0x20, 0x4A, 0x01, "Temp");
		r[47] = 0x44; /* BCD plus */
		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_str_eq(s.name, "sensor 0x4a");
		r[47] = 0xC0 | 10; /* says 10 characters, the record has 4 */
		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_str_eq(s.name, "sensor 0x4a");
	}
	/* a discrete full record */
	{
		const struct sdr_spec d = {.type = 1,
		                           .owner = 0x84,
		                           .number = 3,
		                           .stype = 0x0C,
		                           .rtype = 0x6F,
		                           .name = "DIMM"};
		len = build_sdr(r, &d);
		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_int_eq(s.cls, IPD_SENSOR_DISCRETE);
		ck_assert_uint_eq(s.type, 0x0C);
	}
}
END_TEST

START_TEST(test_sdr_decode_compact_and_others)
{
	uint8_t r[64];
	struct ipd_sensor s;
	size_t len = compact_sdr(r, 0x84, 0x02, 0xF0, 0x6F, "FRU0 Hot Swap");

	ck_assert_uint_eq(len, 32 + 13);
	ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
	ck_assert_uint_eq(s.owner, 0x84);
	ck_assert_uint_eq(s.number, 0x02);
	ck_assert_uint_eq(s.type, 0xF0);
	ck_assert_int_eq(s.cls, IPD_SENSOR_DISCRETE);
	ck_assert_str_eq(s.name, "FRU0 Hot Swap");
	ck_assert_uint_eq(s.analog_format, 3); /* compact records carry no conversion */

	/* a compact threshold sensor cannot be converted */
	len = compact_sdr(r, 0x84, 0x05, 0x02, 0x01, "12V");
	ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
	ck_assert_int_eq(s.cls, IPD_SENSOR_THRESHOLD);
	{
		double v = -1;
		ck_assert(!ipd_sdr_convert(&s, 100, &v));
		ck_assert(v == -1);
	}

	/* other record types are skipped, whatever their length */
	{
		static const uint8_t types[] = {0x03, 0x08, 0x10, 0x11, 0x12,
		                                0x13, 0x14, 0xC0, 0x00};

		for (size_t i = 0; i < AF_ARRAY_SIZE(types); i++) {
			memset(r, 0, sizeof(r));
			r[3] = types[i];
			r[4] = 11;
			ck_assert_int_eq(ipd_sdr_decode(r, 16, &s), 0);
			ck_assert_int_eq(ipd_sdr_decode(r, 5 + 11, &s), 0);
			ck_assert_int_eq(ipd_sdr_decode(r, 15, &s), -EINVAL); /* still too short */
		}
	}
}
END_TEST

static struct ipd_sensor conv_sensor(uint8_t fmt, int m, int b, int r_exp, int b_exp)
{
	struct ipd_sensor s;

	memset(&s, 0, sizeof(s));
	s.cls = IPD_SENSOR_THRESHOLD;
	s.analog_format = fmt;
	s.linearization = 0;
	s.m = (int16_t)m;
	s.b = (int16_t)b;
	s.r_exp = (int8_t)r_exp;
	s.b_exp = (int8_t)b_exp;
	return s;
}

START_TEST(test_sdr_convert)
{
	struct ipd_sensor s;
	double v;

	/* cannot be converted */
	s = conv_sensor(3, 1, 0, 0, 0);
	ck_assert(!ipd_sdr_convert(&s, 10, &v));
	s = conv_sensor(0, 1, 0, 0, 0);
	s.linearization = 1; /* ln */
	ck_assert(!ipd_sdr_convert(&s, 10, &v));
	s.linearization = 0x70; /* non-linear */
	ck_assert(!ipd_sdr_convert(&s, 10, &v));
	s = conv_sensor(0, 1, 0, 0, 0);
	s.cls = IPD_SENSOR_DISCRETE;
	ck_assert(!ipd_sdr_convert(&s, 10, &v));

	/* unsigned: y = (m x + b 10^bexp) 10^rexp */
	s = conv_sensor(0, 1, 0, 0, 0);
	ck_assert(ipd_sdr_convert(&s, 200, &v));
	ck_assert_double_eq_tol(v, 200.0, 1e-9);
	s = conv_sensor(0, 2, 5, -1, 1);
	ck_assert(ipd_sdr_convert(&s, 100, &v));
	ck_assert_double_eq_tol(v, (2.0 * 100 + 50.0) * 0.1, 1e-9);
	s = conv_sensor(0, 78, -512, -3, 0); /* 12 V rail style */
	ck_assert(ipd_sdr_convert(&s, 160, &v));
	ck_assert_double_eq_tol(v, (78.0 * 160 - 512) / 1000.0, 1e-9);
	/* one's complement: 0xFE is -1, 0xFF is -0 */
	s = conv_sensor(1, 1, 0, 0, 0);
	ck_assert(ipd_sdr_convert(&s, 0xFE, &v));
	ck_assert_double_eq_tol(v, -1.0, 1e-9);
	ck_assert(ipd_sdr_convert(&s, 0x80, &v));
	ck_assert_double_eq_tol(v, -127.0, 1e-9);
	ck_assert(ipd_sdr_convert(&s, 0x7F, &v));
	ck_assert_double_eq_tol(v, 127.0, 1e-9);
	/* two's complement */
	s = conv_sensor(2, 1, 0, 0, 0);
	ck_assert(ipd_sdr_convert(&s, 0xFE, &v));
	ck_assert_double_eq_tol(v, -2.0, 1e-9);
	ck_assert(ipd_sdr_convert(&s, 0x80, &v));
	ck_assert_double_eq_tol(v, -128.0, 1e-9);

	/* signed 10-bit m and b and 4-bit exponents decode from a record */
	{
		uint8_t r[64];
		const struct sdr_spec sp = {.type = 1,
		                            .rtype = 0x01,
		                            .units1 = 0x00,
		                            .m = -1,
		                            .b = -512,
		                            .r_exp = -8,
		                            .b_exp = 7,
		                            .name = "x"};
		size_t len = build_sdr(r, &sp);

		ck_assert_int_eq(ipd_sdr_decode(r, len, &s), 1);
		ck_assert_int_eq(s.m, -1);
		ck_assert_int_eq(s.b, -512);
		ck_assert_int_eq(s.r_exp, -8);
		ck_assert_int_eq(s.b_exp, 7);
		ck_assert(ipd_sdr_convert(&s, 10, &v));
		ck_assert_double_eq_tol(v, (-10.0 - 512.0 * 1e7) * 1e-8, 1e-9);
		ck_assert(isfinite(v));
	}
}
END_TEST

START_TEST(test_threshold_state)
{
	static const struct {
		uint8_t bits;
		const char *state;
		int sev;
	} cases[] = {
	        {0x00, "ok", 0},
	        {0x01, "lower-non-critical", 1},
	        {0x02, "lower-critical", 2},
	        {0x03, "lower-critical", 2},
	        {0x04, "lower-non-recoverable", 3},
	        {0x07, "lower-non-recoverable", 3},
	        {0x08, "upper-non-critical", 1},
	        {0x10, "upper-critical", 2},
	        {0x18, "upper-critical", 2},
	        {0x20, "upper-non-recoverable", 3},
	        {0x38, "upper-non-recoverable", 3},
	        {0x3F, "upper-non-recoverable", 3},
	        {0x40, "ok", 0}, /* bits 7:6 are reserved */
	        {0xC0, "ok", 0},
	};

	for (size_t i = 0; i < AF_ARRAY_SIZE(cases); i++) {
		ck_assert_str_eq(ipd_threshold_state(cases[i].bits), cases[i].state);
		ck_assert_int_eq(ipd_threshold_severity(cases[i].bits), cases[i].sev);
	}
	/* the severity never disagrees with the state, whatever the bits */
	for (unsigned b = 0; b < 256; b++) {
		const char *st = ipd_threshold_state((uint8_t)b);
		int sev = ipd_threshold_severity((uint8_t)b);

		ck_assert_int_eq(sev == 0, strcmp(st, "ok") == 0);
		ck_assert_int_eq(sev == 3, strstr(st, "non-recoverable") != NULL);
		ck_assert_int_eq(sev == 1, strstr(st, "non-critical") != NULL);
	}
}
END_TEST

START_TEST(test_unit_and_type_names)
{
	ck_assert_str_eq(ipd_unit_name(0), "unspecified");
	ck_assert_str_eq(ipd_unit_name(1), "degrees_C");
	ck_assert_str_eq(ipd_unit_name(4), "V");
	ck_assert_str_eq(ipd_unit_name(5), "A");
	ck_assert_str_eq(ipd_unit_name(6), "W");
	ck_assert_str_eq(ipd_unit_name(18), "RPM");
	ck_assert_str_eq(ipd_unit_name(31), "%");
	ck_assert_str_eq(ipd_unit_name(10), "units"); /* a hole in the table */
	ck_assert_str_eq(ipd_unit_name(32), "units");
	ck_assert_str_eq(ipd_unit_name(255), "units");
	ck_assert_str_eq(ipd_sensor_type_name(0x01), "temperature");
	ck_assert_str_eq(ipd_sensor_type_name(0x02), "voltage");
	ck_assert_str_eq(ipd_sensor_type_name(0x04), "fan");
	ck_assert_str_eq(ipd_sensor_type_name(0x07), "processor");
	ck_assert_str_eq(ipd_sensor_type_name(0x0C), "memory");
	ck_assert_str_eq(ipd_sensor_type_name(0x23), "watchdog");
	ck_assert_str_eq(ipd_sensor_type_name(0xF0), "hot-swap");
	ck_assert_str_eq(ipd_sensor_type_name(0xF1), "ipmb-link");
	ck_assert_str_eq(ipd_sensor_type_name(0xC5), "oem");
	ck_assert_str_eq(ipd_sensor_type_name(0x00), "other");
	ck_assert_str_eq(ipd_sensor_type_name(0x7F), "other");
}
END_TEST

/* ---- SEL records ----------------------------------------------------------- */

START_TEST(test_sel_decode_rejects)
{
	uint8_t raw[32] = {0};
	struct ipd_sel_rec r;

	ck_assert_int_eq(ipd_sel_decode(NULL, 16, &r), -EINVAL);
	for (size_t l = 0; l <= sizeof(raw); l++) {
		if (l != 16)
			ck_assert_msg(ipd_sel_decode(raw, l, &r) == -EINVAL, "len %zu accepted", l);
	}
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
}
END_TEST

START_TEST(test_sel_decode)
{
	uint8_t raw[16];
	struct ipd_sel_rec r;

	/* a system event: upper critical going high, deasserted */
	build_sel(raw, 0x1234, 0x5F000001, 0x82, 0x01, 0x31, 0x80 | 0x01, 0x59, 95, 90);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ck_assert_uint_eq(r.id, 0x1234);
	ck_assert_uint_eq(r.type, 0x02);
	ck_assert_uint_eq(r.timestamp, 0x5F000001);
	ck_assert_uint_eq(r.generator, 0x0082);
	ck_assert_uint_eq(r.evm_rev, 0x04);
	ck_assert_uint_eq(r.sensor_type, 0x01);
	ck_assert_uint_eq(r.sensor_number, 0x31);
	ck_assert(r.deassertion);
	ck_assert_uint_eq(r.event_type, 0x01);
	ck_assert_uint_eq(r.data[0], 0x59);
	ck_assert_uint_eq(r.data[1], 95);
	ck_assert_uint_eq(r.data[2], 90);
	ck_assert_int_eq(memcmp(r.raw, raw, 16), 0);
	raw[12] = 0x6F; /* asserted */
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ck_assert(!r.deassertion);
	ck_assert_uint_eq(r.event_type, 0x6F);

	/* OEM timestamped (0xC0-0xDF): a timestamp, nothing else decoded */
	memset(raw, 0xAB, sizeof(raw));
	raw[0] = 0x07;
	raw[1] = 0x00;
	raw[2] = 0xC1;
	raw[3] = 0x10;
	raw[4] = 0x20;
	raw[5] = 0x30;
	raw[6] = 0x40;
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ck_assert_uint_eq(r.id, 7);
	ck_assert_uint_eq(r.type, 0xC1);
	ck_assert_uint_eq(r.timestamp, 0x40302010);
	ck_assert_uint_eq(r.generator, 0);
	ck_assert_uint_eq(r.sensor_type, 0);
	ck_assert(!r.deassertion);
	ck_assert_ptr_null(ipd_sel_meaning(&r));

	/* OEM non-timestamped (0xE0-0xFF): no timestamp either */
	raw[2] = 0xE0;
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ck_assert_uint_eq(r.type, 0xE0);
	ck_assert_uint_eq(r.timestamp, 0);
	raw[2] = 0xFF;
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ck_assert_uint_eq(r.timestamp, 0);
	ck_assert_ptr_null(ipd_sel_meaning(&r));
}
END_TEST

START_TEST(test_offset_names)
{
	static const char *const thr[] = {
	        "lower-non-critical-going-low",    "lower-non-critical-going-high",
	        "lower-critical-going-low",        "lower-critical-going-high",
	        "lower-non-recoverable-going-low", "lower-non-recoverable-going-high",
	        "upper-non-critical-going-low",    "upper-non-critical-going-high",
	        "upper-critical-going-low",        "upper-critical-going-high",
	        "upper-non-recoverable-going-low", "upper-non-recoverable-going-high",
	};

	/* unknown: NULL, never a neighbour's name */
	ck_assert_ptr_null(ipd_offset_name(0x01, 0x01, 12));
	ck_assert_ptr_null(ipd_offset_name(0x01, 0x01, 15));
	ck_assert_ptr_null(ipd_offset_name(0x01, 0x01, 1000));
	ck_assert_ptr_null(ipd_offset_name(0x07, 0x6F, 12));
	ck_assert_ptr_null(ipd_offset_name(0x0C, 0x6F, 11));
	ck_assert_ptr_null(ipd_offset_name(0x09, 0x6F, 8));
	ck_assert_ptr_null(ipd_offset_name(0x23, 0x6F, 4)); /* reserved in watchdog 2 */
	ck_assert_ptr_null(ipd_offset_name(0x23, 0x6F, 9));
	ck_assert_ptr_null(ipd_offset_name(0xF0, 0x6F, 8));
	ck_assert_ptr_null(ipd_offset_name(0x01, 0x6F, 0)); /* no specific offsets */
	ck_assert_ptr_null(ipd_offset_name(0xC0, 0x6F, 0)); /* OEM sensor type */
	ck_assert_ptr_null(ipd_offset_name(0x07, 0x03, 0)); /* generic, not decoded */
	ck_assert_ptr_null(ipd_offset_name(0x07, 0x00, 0));
	ck_assert_ptr_null(ipd_offset_name(0x07, 0x70, 0)); /* OEM reading type */

	for (unsigned i = 0; i < 12; i++)
		ck_assert_str_eq(ipd_offset_name(0x01, 0x01, i), thr[i]);
	ck_assert_str_eq(ipd_offset_name(0x02, 0x01, 9), "upper-critical-going-high");
	ck_assert_str_eq(ipd_offset_name(0x07, 0x6F, 0), "ierr");
	ck_assert_str_eq(ipd_offset_name(0x07, 0x6F, 1), "thermal-trip");
	ck_assert_str_eq(ipd_offset_name(0x0C, 0x6F, 0), "correctable-ecc");
	ck_assert_str_eq(ipd_offset_name(0x0C, 0x6F, 1), "uncorrectable-ecc");
	ck_assert_str_eq(ipd_offset_name(0x09, 0x6F, 0), "power-off");
	ck_assert_str_eq(ipd_offset_name(0x09, 0x6F, 4), "ac-lost");
	ck_assert_str_eq(ipd_offset_name(0x09, 0x6F, 6), "power-unit-failure");
	ck_assert_str_eq(ipd_offset_name(0x23, 0x6F, 0), "timer-expired");
	ck_assert_str_eq(ipd_offset_name(0x23, 0x6F, 1), "hard-reset");
	ck_assert_str_eq(ipd_offset_name(0x23, 0x6F, 2), "power-down");
	ck_assert_str_eq(ipd_offset_name(0x23, 0x6F, 3), "power-cycle");
	ck_assert_str_eq(ipd_offset_name(0x23, 0x6F, 8), "timer-interrupt");
	ck_assert_str_eq(ipd_offset_name(0x08, 0x6F, 1), "failure");
	ck_assert_str_eq(ipd_offset_name(0x25, 0x6F, 1), "absent");
	for (unsigned i = 0; i < 8; i++) {
		char want[4];

		snprintf(want, sizeof(want), "M%u", i);
		ck_assert_str_eq(ipd_offset_name(0xF0, 0x6F, i), want);
	}
}
END_TEST

START_TEST(test_sel_meaning)
{
	uint8_t raw[16];
	struct ipd_sel_rec r;
	static const struct {
		uint8_t stype, dir_type, d1;
		const char *meaning;
	} cases[] = {
	        {0x01, 0x01, 0x59, "upper-critical-going-high"},
	        {0x02, 0x81, 0x52, "lower-critical-going-low"}, /* deassertion: same name */
	        {0x07, 0x6F, 0x00, "ierr"},
	        {0x07, 0x6F, 0x01, "thermal-trip"},
	        {0x0C, 0x6F, 0xA0, "correctable-ecc"}, /* data1 7:4 are flags */
	        {0x0C, 0x6F, 0xA1, "uncorrectable-ecc"},
	        {0x09, 0x6F, 0x04, "ac-lost"},
	        {0x23, 0x6F, 0xC1, "hard-reset"},
	        {0xF0, 0x6F, 0xA4, "M4"},
	        {0xF0, 0x6F, 0xA6, "M6"},
	        {0x01, 0x6F, 0x00, NULL},
	        {0xF0, 0x6F, 0xA9, NULL},
	        {0xD0, 0x6F, 0x00, NULL},
	        {0x07, 0x05, 0x00, NULL},
	};

	for (size_t i = 0; i < AF_ARRAY_SIZE(cases); i++) {
		build_sel(raw, 1, 100, 0x82, cases[i].stype, 1, cases[i].dir_type, cases[i].d1,
		          0xFF, 0xFF);
		ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
		if (cases[i].meaning == NULL)
			ck_assert_ptr_null(ipd_sel_meaning(&r));
		else
			ck_assert_str_eq(ipd_sel_meaning(&r), cases[i].meaning);
	}
	/* a record whose type is not a system event means nothing, even with
	 * system-event-looking bytes */
	build_sel(raw, 1, 100, 0x82, 0x07, 1, 0x6F, 0x00, 0, 0);
	raw[2] = 0xC0;
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ck_assert_ptr_null(ipd_sel_meaning(&r));
}
END_TEST

static const char *detail(const struct af_event *ev, const char *key)
{
	const char *v = af_event_get(ev, key);
	return v ? v : "(none)";
}

START_TEST(test_sel_to_event)
{
	uint8_t raw[16];
	struct ipd_sel_rec r;
	struct af_event ev;
	char text[AF_EV_TEXT_MAX];

	/* a threshold crossing with trigger reading and threshold */
	build_sel(raw, 0x0042, 1700000000, 0x82, 0x01, 0x31, 0x01, 0x59, 95, 90);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, "CPU Temp", 1, &ev);
	ck_assert_int_eq(ev.kind, AF_EV_SEL_RECORD);
	ck_assert_int_eq(ev.source, AF_SRC_IPMI);
	ck_assert_int_eq(ev.blade, 1);
	ck_assert_str_eq(ev.entity, "CPU Temp");
	ck_assert_str_eq(detail(&ev, "record"), "0x0042");
	ck_assert_str_eq(detail(&ev, "rtype"), "0x02");
	ck_assert_str_eq(detail(&ev, "sel_time"), "1700000000");
	ck_assert_str_eq(detail(&ev, "generator"), "0x82");
	ck_assert_str_eq(detail(&ev, "sensor_type"), "temperature");
	ck_assert_str_eq(detail(&ev, "sensor"), "0x31");
	ck_assert_str_eq(detail(&ev, "dir"), "assert");
	ck_assert_str_eq(detail(&ev, "event_type"), "0x01");
	ck_assert_str_eq(detail(&ev, "offset"), "9");
	ck_assert_str_eq(detail(&ev, "meaning"), "upper-critical-going-high");
	ck_assert_str_eq(detail(&ev, "data"), "0x595f5a");
	ck_assert_str_eq(detail(&ev, "reading_raw"), "95");
	ck_assert_str_eq(detail(&ev, "threshold_raw"), "90");
	ck_assert_int_gt(af_event_format(&ev, text, sizeof(text)), 0);

	/* data2/3 unspecified: no reading, no threshold */
	build_sel(raw, 0x0043, 1700000001, 0x82, 0x01, 0x31, 0x81, 0x09, 0xFF, 0xFF);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 1, &ev);
	ck_assert_str_eq(ev.entity, "");
	ck_assert_str_eq(detail(&ev, "dir"), "deassert");
	ck_assert_ptr_null(af_event_get(&ev, "reading_raw"));
	ck_assert_ptr_null(af_event_get(&ev, "threshold_raw"));

	/* PICMG hot swap: M-state in the offset, previous state and cause in
	 * data2, FRU in data3 */
	build_sel(raw, 0x0044, 1700000002, 0x84, 0xF0, 0x02, 0x6F, 0xA6, 0x34, 0x00);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, "FRU0 Hot Swap", 2, &ev);
	ck_assert_int_eq(ev.blade, 2);
	ck_assert_str_eq(detail(&ev, "meaning"), "M6");
	ck_assert_str_eq(detail(&ev, "state"), "M6");
	ck_assert_str_eq(detail(&ev, "previous"), "M4");
	ck_assert_str_eq(detail(&ev, "cause"), "3");
	ck_assert_str_eq(detail(&ev, "fru"), "0");
	ck_assert_str_eq(detail(&ev, "sensor_type"), "hot-swap");
	/* previous state not given / out of range */
	build_sel(raw, 0x0045, 1700000003, 0x84, 0xF0, 0x02, 0x6F, 0xA1, 0xFF, 0xFF);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 2, &ev);
	ck_assert_str_eq(detail(&ev, "state"), "M1");
	ck_assert_ptr_null(af_event_get(&ev, "previous"));
	ck_assert_ptr_null(af_event_get(&ev, "fru"));
	build_sel(raw, 0x0046, 1700000003, 0x84, 0xF0, 0x02, 0x6F, 0xAF, 0x0C, 0x01);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 2, &ev);
	ck_assert_str_eq(detail(&ev, "meaning"), "unknown");
	ck_assert_str_eq(detail(&ev, "state"), "M15");
	ck_assert_ptr_null(af_event_get(&ev, "previous"));
	ck_assert_str_eq(detail(&ev, "fru"), "1");

	/* memory ECC, processor IERR, watchdog */
	build_sel(raw, 0x0047, 1700000004, 0x86, 0x0C, 0x08, 0x6F, 0xA1, 0x00, 0x02);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, "DIMM", 3, &ev);
	ck_assert_str_eq(detail(&ev, "meaning"), "uncorrectable-ecc");
	ck_assert_str_eq(detail(&ev, "sensor_type"), "memory");
	build_sel(raw, 0x0048, 1700000004, 0x86, 0x07, 0x09, 0x6F, 0x00, 0xFF, 0xFF);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 3, &ev);
	ck_assert_str_eq(detail(&ev, "meaning"), "ierr");
	build_sel(raw, 0x0049, 1700000004, 0x86, 0x23, 0x0A, 0x6F, 0xC1, 0x00, 0xFF);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 3, &ev);
	ck_assert_str_eq(detail(&ev, "meaning"), "hard-reset");
	ck_assert_str_eq(detail(&ev, "sensor_type"), "watchdog");

	/* an unknown sensor type */
	build_sel(raw, 0x004A, 1700000005, 0x20, 0xD5, 0x0B, 0x6F, 0x03, 0x00, 0x00);
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 0, &ev);
	ck_assert_str_eq(detail(&ev, "meaning"), "unknown");
	ck_assert_str_eq(detail(&ev, "sensor_type"), "oem");
	ck_assert_int_eq(ev.blade, 0);

	/* OEM records are kept whole */
	for (unsigned i = 0; i < 16; i++)
		raw[i] = (uint8_t)(0x10 + i);
	raw[2] = 0xC2;
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 0, &ev);
	ck_assert_str_eq(detail(&ev, "rtype"), "0xc2");
	ck_assert_str_eq(detail(&ev, "meaning"), "oem");
	ck_assert_str_eq(detail(&ev, "raw"), "1011c2131415161718191a1b1c1d1e1f");
	ck_assert_ptr_nonnull(af_event_get(&ev, "sel_time"));
	ck_assert_ptr_null(af_event_get(&ev, "generator"));
	raw[2] = 0xE7;
	ck_assert_int_eq(ipd_sel_decode(raw, 16, &r), 0);
	ipd_sel_to_event(&r, NULL, 0, &ev);
	ck_assert_ptr_null(af_event_get(&ev, "sel_time"));
	ck_assert_str_eq(detail(&ev, "meaning"), "oem");
	ck_assert_int_gt(af_event_format(&ev, text, sizeof(text)), 0);
}
END_TEST

static struct ipd_sel_rec sup_rec(uint8_t gen, uint8_t stype, uint8_t etype, bool deassert,
                                  uint8_t d1, uint8_t d3, uint32_t ts)
{
	struct ipd_sel_rec r = {.type = 0x02,
	                        .timestamp = ts,
	                        .generator = gen,
	                        .sensor_type = stype,
	                        .deassertion = deassert,
	                        .event_type = etype,
	                        .data = {d1, 0xFF, d3}};
	return r;
}

START_TEST(test_sel_supersede)
{
	struct ipd_sel_rec r[12] = {{0}};
	bool sup[12];
	uint32_t m4[12];

	/* nothing to judge; no M4 anywhere: nothing superseded */
	ipd_sel_supersede(r, 0, sup, m4);
	r[0] = sup_rec(0x84, 0x0C, 0x6F, false, 0x01, 0xFF, 100);
	r[1] = sup_rec(0x84, 0xF0, 0x6F, false, 0x06, 0x00, 101); /* M6 only */
	ipd_sel_supersede(r, 2, sup, m4);
	ck_assert(!sup[0] && !sup[1]);

	r[0] = sup_rec(0x84, 0x0C, 0x6F, false, 0x01, 0xFF, 100); /* ECC of blade 2 */
	r[1] = sup_rec(0x84, 0x07, 0x6F, true, 0x00, 0xFF, 101);  /* a deassertion */
	r[2] = sup_rec(0x82, 0x07, 0x6F, false, 0x01, 0xFF, 102); /* blade 1: no M4 */
	r[3] = sup_rec(0x41, 0x0C, 0x6F, false, 0x01, 0xFF, 103); /* software id */
	r[4] = sup_rec(0x84, 0xF0, 0x6F, false, 0x06, 0x00, 104); /* M6, then M1 */
	r[5] = sup_rec(0x84, 0xF0, 0x6F, false, 0x01, 0x00, 105);
	r[6] = sup_rec(0x86, 0xF0, 0x6F, false, 0x04, 0x01, 106); /* FRU 1 of blade 3 */
	r[7] = sup_rec(0x86, 0x07, 0x6F, false, 0x00, 0xFF, 107); /* blade 3 IERR */
	r[8] = sup_rec(0x84, 0xF0, 0x6F, false, 0x04, 0x00, 110); /* blade 2 active */
	r[9] = sup_rec(0x84, 0x0C, 0x6F, false, 0x01, 0xFF, 120); /* a new ECC */
	r[10] = sup_rec(0x84, 0xF0, 0x6F, true, 0x04, 0xFF, 121); /* deasserted M4 */
	r[11] = r[0];
	r[11].type = 0xC0; /* an OEM record */
	ipd_sel_supersede(r, 12, sup, m4);
	ck_assert(sup[0]);
	ck_assert_uint_eq(m4[0], 110);
	for (unsigned i = 1; i < 12; i++)
		ck_assert_msg(!sup[i] && m4[i] == 0, "record %u superseded", i);

	/* the latest M4 is the one named; FRU not given counts as FRU 0 */
	r[10] = sup_rec(0x84, 0xF0, 0x6F, false, 0x04, 0xFF, 130);
	ipd_sel_supersede(r, 11, sup, m4);
	ck_assert(sup[0] && sup[9]);
	ck_assert_uint_eq(m4[0], 130);
	ck_assert_uint_eq(m4[9], 130);
	ck_assert(!sup[7] && !sup[2]);
}
END_TEST

START_TEST(test_blade_addresses)
{
	ck_assert_int_eq(ipd_addr_slot(0x20), 0);
	ck_assert_int_eq(ipd_addr_slot(0x80), 0);
	ck_assert_int_eq(ipd_addr_slot(0x83), 0); /* odd: not a slave address */
	ck_assert_int_eq(ipd_addr_slot(0xA2), 0);
	ck_assert_int_eq(ipd_addr_slot(0xFF), 0);
	for (int slot = 1; slot <= AF_MAX_BLADES; slot++) {
		ck_assert_uint_eq(ipd_blade_addr(slot), 0x80 + 2 * slot);
		ck_assert_int_eq(ipd_addr_slot(ipd_blade_addr(slot)), slot);
	}
}
END_TEST

/* ---- the SEL cursor file ---------------------------------------------------- */

static bool no_tmp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool ok = true;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (l > 4 && strcmp(e->d_name + l - 4, ".tmp") == 0)
			ok = false;
	}
	closedir(d);
	return ok;
}

START_TEST(test_cursor_rejects)
{
	static const char *const bad[] = {
	        "",
	        "\n",
	        "atca-ft-sel-cursor 2\npositioned 1\nhave_last 1\nlast_id 5\nlast_ts 7\nnext_id "
	        "65535\nadd_ts 8\nerase_ts 9\nentries 5\noverflow 0\n",
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_id 5\nlast_ts 7\nnext_id "
	        "65535\nadd_ts 8\nerase_ts 9\nentries 5\n", /* truncated */
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_id 5\nlast_ts 7\nnext_",
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_id 65536\nlast_ts 7\nnext_id "
	        "65535\nadd_ts 8\nerase_ts 9\nentries 5\noverflow 0\n", /* out of range */
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_id 5\nlast_ts 7\nnext_id "
	        "70000\nadd_ts 8\nerase_ts 9\nentries 5\noverflow 0\n",
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_id 5\nlast_ts 7\nnext_id "
	        "65535\nadd_ts 8\nerase_ts 9\nentries 99999\noverflow 0\n",
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_id x\nlast_ts 7\nnext_id "
	        "65535\nadd_ts 8\nerase_ts 9\nentries 5\noverflow 0\n", /* corrupt */
	        "atca-ft-sel-cursor 1\npositioned 1\nhave_last 1\nlast_ts 7\nlast_id 5\nnext_id "
	        "65535\nadd_ts 8\nerase_ts 9\nentries 5\noverflow 0\n", /* reordered */
	        "\x7f"
	        "ELF\x02\x01\x01",
	};
	char *dir = make_temp_dir();
	char path[512];
	struct ipd_sel_cursor c, keep;

	snprintf(path, sizeof(path), "%s/c.cursor", dir);
	memset(&keep, 0x5A, sizeof(keep));
	c = keep;
	ck_assert_int_eq(ipd_cursor_load(path, &c), -ENOENT);
	ck_assert_int_eq(memcmp(&c, &keep, sizeof(c)), 0);
	for (size_t i = 0; i < AF_ARRAY_SIZE(bad); i++) {
		write_file(path, bad[i], 0600);
		c = keep;
		ck_assert_msg(ipd_cursor_load(path, &c) == -EINVAL, "accepted: %s", bad[i]);
		ck_assert_msg(memcmp(&c, &keep, sizeof(c)) == 0, "changed by: %s", bad[i]);
	}
	/* a directory is not a cursor */
	ck_assert_int_lt(ipd_cursor_load(dir, &c), 0);
	/* nowhere to write */
	memset(&c, 0, sizeof(c));
	snprintf(path, sizeof(path), "%s/missing/c.cursor", dir);
	ck_assert_int_eq(ipd_cursor_save(path, &c), -ENOENT);
	ck_assert(no_tmp_files(dir));
	remove_temp_dir(dir);
}
END_TEST

/* Saving the SEL position on a full or failing disk (tests/fault_inject.c):
 * whatever step fails (create, write, flush, rename), the saved position
 * stays the old one, whole, and no temporary file is left. */
START_TEST(test_cursor_save_failures)
{
	static const struct {
		enum fi_call call;
		int err; /* what the call fails with; -EIO for a short write */
		bool short_write;
	} fails[] = {
	        {FI_OPEN, EMFILE, false},  {FI_OPEN, ENOSPC, false}, {FI_WRITE, ENOSPC, true},
	        {FI_WRITE, EDQUOT, false}, {FI_FSYNC, EIO, false},   {FI_RENAME, ENOSPC, false},
	};
	char *dir = make_temp_dir();
	char path[512], *before, *after;
	struct ipd_sel_cursor c = {.positioned = true, .have_last = true, .last_id = 17}, back;

	snprintf(path, sizeof(path), "%s/sel.cursor", dir);
	ck_assert_int_eq(ipd_cursor_save(path, &c), 0);
	before = slurp(path);
	c.last_id = 18;
	for (size_t i = 0; i < AF_ARRAY_SIZE(fails); i++) {
		fi_arm(fails[i].call, dir, 0, 0, fails[i].err, fails[i].short_write);
		/* a short write sets no errno: the save says EIO */
		ck_assert_int_eq(ipd_cursor_save(path, &c),
		                 fails[i].short_write ? -EIO : -fails[i].err);
		fi_disarm();
		after = slurp(path);
		ck_assert_msg(strcmp(after, before) == 0, "case %zu changed the cursor", i);
		free(after);
		ck_assert_msg(no_tmp_files(dir), "case %zu left a temporary file", i);
	}
	ck_assert_int_eq(ipd_cursor_load(path, &back), 0);
	ck_assert_uint_eq(back.last_id, 17);
	ck_assert_int_eq(ipd_cursor_save(path, &c), 0); /* space is back */
	ck_assert_int_eq(ipd_cursor_load(path, &back), 0);
	ck_assert_uint_eq(back.last_id, 18);
	free(before);
	remove_temp_dir(dir);
}
END_TEST

START_TEST(test_cursor_roundtrip)
{
	char *dir = make_temp_dir();
	char path[512], *text;
	struct ipd_sel_cursor c = {.positioned = true,
	                           .have_last = true,
	                           .last_id = 0xFFFE,
	                           .last_ts = 0xFFFFFFFF,
	                           .next_id = IPD_SEL_LAST,
	                           .add_ts = 0x80000000,
	                           .erase_ts = 7,
	                           .entries = 65535,
	                           .overflow = true},
	                      back;

	snprintf(path, sizeof(path), "%s/sel.cursor", dir);
	ck_assert_int_eq(ipd_cursor_save(path, &c), 0);
	ck_assert(no_tmp_files(dir));
	memset(&back, 0x77, sizeof(back));
	ck_assert_int_eq(ipd_cursor_load(path, &back), 0);
	ck_assert_int_eq(back.positioned, c.positioned);
	ck_assert_int_eq(back.have_last, c.have_last);
	ck_assert_uint_eq(back.last_id, c.last_id);
	ck_assert_uint_eq(back.last_ts, c.last_ts);
	ck_assert_uint_eq(back.next_id, c.next_id);
	ck_assert_uint_eq(back.add_ts, c.add_ts);
	ck_assert_uint_eq(back.erase_ts, c.erase_ts);
	ck_assert_uint_eq(back.entries, c.entries);
	ck_assert_int_eq(back.overflow, c.overflow);

	/* replaced whole: a shorter cursor leaves nothing of the longer one */
	memset(&c, 0, sizeof(c));
	c.positioned = true;
	c.next_id = 3;
	ck_assert_int_eq(ipd_cursor_save(path, &c), 0);
	ck_assert(no_tmp_files(dir));
	ck_assert_int_eq(ipd_cursor_load(path, &back), 0);
	ck_assert(back.positioned && !back.have_last && !back.overflow);
	ck_assert_uint_eq(back.next_id, 3);
	ck_assert_uint_eq(back.last_ts, 0);
	text = slurp(path);
	ck_assert_ptr_nonnull(text);
	ck_assert_msg(strncmp(text, "atca-ft-sel-cursor 1\n", 21) == 0, "%s", text);
	free(text);
	{
		struct stat st;

		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_uint_eq(st.st_mode & 0777, 0600);
	}
	/* a stale .tmp from a crash does not matter */
	{
		char tmp[600];

		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		write_file(tmp, "garbage", 0600);
		ck_assert_int_eq(ipd_cursor_save(path, &c), 0);
		ck_assert(no_tmp_files(dir));
	}
	remove_temp_dir(dir);
}
END_TEST

/* ---- the reachability state machine -------------------------------------- */

static int step(struct af_fsm *f, int ev)
{
	char msg[256];
	int prio = -1, rc = af_fsm_step(f, ev, msg, sizeof(msg), &prio);

	ck_assert(msg[0] != '\0');
	ck_assert_int_eq(prio, rc >= 0 ? LOG_INFO : LOG_DEBUG);
	return rc;
}

START_TEST(test_target_fsm)
{
	struct af_fsm f;
	char msg[256];
	int prio;

	ck_assert_int_eq(af_fsm_check(&ipd_target_fsm), 0);
	ck_assert_uint_eq(ipd_target_fsm.n_states, IPD_T_COUNT);
	ck_assert_uint_eq(ipd_target_fsm.n_events, IPD_E_COUNT);
	for (int i = 0; i < IPD_T_COUNT; i++)
		ck_assert_ptr_nonnull(ipd_target_fsm.states[i]);
	for (int i = 0; i < IPD_E_COUNT; i++)
		ck_assert_ptr_nonnull(ipd_target_fsm.events[i]);

	af_fsm_init(&f, &ipd_target_fsm, IPD_T_CONNECTING, "0x82");
	ck_assert_str_eq(af_fsm_state_name(&f), "CONNECTING");
	/* ignored events change nothing */
	ck_assert_int_eq(step(&f, IPD_E_ANSWERED), -1);
	ck_assert_int_eq(step(&f, IPD_E_SESSION_LOST), -1);
	ck_assert_int_eq(f.state, IPD_T_CONNECTING);
	ck_assert_int_eq(af_fsm_step(&f, IPD_E_CONNECTED, msg, sizeof(msg), &prio), IPD_T_ONLINE);
	ck_assert_str_eq(msg, "fsm ipmc 0x82: CONNECTING --connected--> ONLINE");
	ck_assert_int_eq(step(&f, IPD_E_CONNECTED), -1);
	ck_assert_int_eq(step(&f, IPD_E_ANSWERED), -1);
	ck_assert_int_eq(step(&f, IPD_E_WAIT_SHMC), -1);
	ck_assert_int_eq(step(&f, IPD_E_UNANSWERED), IPD_T_UNREACHABLE);
	ck_assert_int_eq(step(&f, IPD_E_UNANSWERED), -1); /* a retry failing again */
	ck_assert_int_eq(step(&f, IPD_E_WAIT_SHMC), -1);
	ck_assert_int_eq(f.state, IPD_T_UNREACHABLE);
	ck_assert_int_eq(step(&f, IPD_E_ANSWERED), IPD_T_ONLINE);
	ck_assert_int_eq(step(&f, IPD_E_UNANSWERED), IPD_T_UNREACHABLE);
	ck_assert_int_eq(step(&f, IPD_E_CONNECTED), IPD_T_ONLINE);
	ck_assert_int_eq(step(&f, IPD_E_SESSION_LOST), IPD_T_CONNECTING);
	ck_assert_int_eq(step(&f, IPD_E_UNANSWERED), IPD_T_UNREACHABLE);
	ck_assert_int_eq(step(&f, IPD_E_SESSION_LOST), IPD_T_CONNECTING);
	ck_assert_int_eq(step(&f, IPD_E_WAIT_SHMC), IPD_T_WAITING_SHMC);
	ck_assert_str_eq(af_fsm_state_name(&f), "WAITING_SHMC");
	ck_assert_int_eq(step(&f, IPD_E_WAIT_SHMC), -1);
	ck_assert_int_eq(step(&f, IPD_E_UNANSWERED), -1); /* a blade waits, quietly */
	ck_assert_int_eq(step(&f, IPD_E_ANSWERED), -1);
	ck_assert_int_eq(f.state, IPD_T_WAITING_SHMC);
	ck_assert_int_eq(step(&f, IPD_E_CONNECTED), IPD_T_ONLINE);

	/* the checker refuses broken tables */
	{
		static const struct af_fsm_row dup[] = {{0, 0, 1}, {0, 0, 2}};
		static const struct af_fsm_row range[] = {{0, IPD_E_COUNT, 1}};
		static const struct af_fsm_row to[] = {{0, 0, IPD_T_COUNT}};
		struct af_fsm_def d = ipd_target_fsm;

		d.rows = dup;
		d.n_rows = AF_ARRAY_SIZE(dup);
		ck_assert_int_eq(af_fsm_check(&d), -EINVAL);
		d.rows = range;
		d.n_rows = 1;
		ck_assert_int_eq(af_fsm_check(&d), -EINVAL);
		d.rows = to;
		ck_assert_int_eq(af_fsm_check(&d), -EINVAL);
	}
}
END_TEST

/* ---- the fake shelf --------------------------------------------------------- *
 *
 * One shelf manager (IPMB 0x20: an SDR repository, the SEL, its own
 * sensors) and blade IPMCs (device SDRs, sensors), reached through fake
 * RMCP+ sessions to one of two manager addresses, or in-band. Every
 * controller can misbehave in one way (enum fk_mode). The state is shared by
 * the worker threads and the test, under fk.lock.
 */

#define FK_MAX_CTL 4
#define FK_MAX_SDR 8
#define FK_MAX_SENS 4
#define FK_MAX_SEL 400
#define FK_MGR0 "127.0.0.1"
#define FK_MGR1 "127.0.0.2"

enum fk_mode {
	FK_OK = 0,
	FK_NAK_CC,      /* answer: CC 0x83 only (IPMB NAK: bridging refused) */
	FK_NAK_ERR,     /* -EREMOTEIO: what the FreeIPMI transport makes of it */
	FK_NO_ANSWER,   /* -ETIME: a bridged request nobody answered */
	FK_TIMEOUT,     /* -ETIMEDOUT */
	FK_SLOW,        /* answers, after delay_ms */
	FK_SHORT,       /* CC 0 and one byte: wrong length for everything */
	FK_CC_C1,       /* invalid command, to everything */
	FK_CC_CB,       /* not present: sensors and SDRs */
	FK_CC_CA,       /* cannot return the number of bytes requested: SDR reads */
	FK_BAD_SDR_LEN, /* the first SDR's length byte says 0xFF */
	FK_CANCEL_RESV, /* every 7th SDR chunk read: reservation cancelled */
};

struct fk_sensor {
	uint8_t number, raw, status;
	uint16_t asserted;
};

struct fk_ctl {
	uint8_t addr;
	enum fk_mode mode;
	unsigned delay_ms;
	uint8_t sdr[FK_MAX_SDR][64];
	size_t sdr_len[FK_MAX_SDR];
	unsigned n_sdr;
	uint32_t sdr_change;
	uint8_t fw_minor; /* added to the firmware revision in Get Device ID */
	uint16_t resv;
	unsigned cancels;
	struct fk_sensor sens[FK_MAX_SENS];
	unsigned n_sens;
	/* what it was asked */
	unsigned n_cmds, n_get_sdr, n_sdr_info, n_readings, n_devid;
	uint64_t last_reading_ns, max_reading_gap_ns;
};

struct fk_shelf {
	pthread_mutex_t lock;
	struct fk_ctl ctl[FK_MAX_CTL];
	unsigned n_ctl;
	/* the shelf manager's SEL */
	uint8_t sel[FK_MAX_SEL][16];
	unsigned n_sel, sel_cap;
	bool sel_circular, erase_ts_frozen, sel_overflow;
	uint16_t sel_next_id, sel_id_step, sel_resv;
	uint32_t clock, add_ts, erase_ts;
	unsigned n_sel_info, n_sel_entry, n_sel_info_mgr[2];
	bool sel_next_self; /* garbage: every record names itself as the next */
	bool sel_next_loop; /* garbage: the last record names the first as the next */
	uint8_t cur_mgr;    /* the manager the request being answered came through */
	/* sessions */
	bool mgr_dead[2];
	unsigned opens[2], mgr_cmds[2], closes;
	int inband_err;
	unsigned inband_opens;
};

static struct fk_shelf fk;

static void fk_lock(void)
{
	pthread_mutex_lock(&fk.lock);
}
static void fk_unlock(void)
{
	pthread_mutex_unlock(&fk.lock);
}

static void fk_reset(void)
{
	static bool once;

	if (once)
		pthread_mutex_destroy(&fk.lock);
	once = true;
	memset(&fk, 0, sizeof(fk));
	pthread_mutex_init(&fk.lock, NULL);
	fk.sel_cap = FK_MAX_SEL;
	fk.sel_next_id = 1;
	fk.sel_id_step = 1;
	fk.clock = 1000;
	fk.add_ts = 0xFFFFFFFF;
	fk.erase_ts = 500;
}

static struct fk_ctl *fk_add_ctl(uint8_t addr)
{
	struct fk_ctl *c = &fk.ctl[fk.n_ctl++];

	ck_assert_uint_le(fk.n_ctl, FK_MAX_CTL);
	c->addr = addr;
	c->sdr_change = 0x11110000u + addr;
	c->resv = 1;
	return c;
}

static struct fk_ctl *fk_find_ctl(uint8_t addr)
{
	for (unsigned i = 0; i < fk.n_ctl; i++) {
		if (fk.ctl[i].addr == addr)
			return &fk.ctl[i];
	}
	return NULL;
}

/* The controller at addr, which the test set up. */
static struct fk_ctl *fk_ctl_of(uint8_t addr)
{
	struct fk_ctl *c = fk_find_ctl(addr);

	if (c == NULL)
		abort();
	return c;
}

static void fk_add_sdr(struct fk_ctl *c, const uint8_t *rec, size_t len)
{
	unsigned i = c->n_sdr++;

	ck_assert_uint_le(c->n_sdr, FK_MAX_SDR);
	memcpy(c->sdr[i], rec, len);
	c->sdr[i][0] = (uint8_t)((i + 1) * 3); /* record ids: 3, 6, 9, ... */
	c->sdr[i][1] = 0;
	c->sdr_len[i] = len;
}

static void fk_add_sensor(struct fk_ctl *c, uint8_t number, uint8_t raw, uint8_t status,
                          uint16_t asserted)
{
	struct fk_sensor *s = &c->sens[c->n_sens++];

	ck_assert_uint_le(c->n_sens, FK_MAX_SENS);
	s->number = number;
	s->raw = raw;
	s->status = status;
	s->asserted = asserted;
}

static struct fk_sensor *fk_find_sensor(struct fk_ctl *c, uint8_t number)
{
	for (unsigned i = 0; i < c->n_sens; i++) {
		if (c->sens[i].number == number)
			return &c->sens[i];
	}
	return NULL;
}

static struct fk_sensor *fk_sensor_of(struct fk_ctl *c, uint8_t number)
{
	struct fk_sensor *s = fk_find_sensor(c, number);

	if (s == NULL)
		abort();
	return s;
}

/* Adds a record to the SEL as the shelf manager would: the next id, the
 * time, a full SEL either dropping it (overflow) or deleting the oldest. */
static uint16_t fk_sel_add_raw(const uint8_t *rec16)
{
	uint8_t *r;
	uint16_t id;

	if (fk.n_sel == fk.sel_cap) {
		if (!fk.sel_circular) {
			fk.sel_overflow = true;
			return 0;
		}
		memmove(fk.sel[0], fk.sel[1], 16 * (fk.n_sel - 1));
		fk.n_sel--;
	}
	id = fk.sel_next_id;
	fk.sel_next_id = (uint16_t)(fk.sel_next_id + fk.sel_id_step);
	if (fk.sel_next_id == 0 || fk.sel_next_id == 0xFFFF)
		fk.sel_next_id = 1;
	fk.clock++;
	r = fk.sel[fk.n_sel++];
	memcpy(r, rec16, 16);
	r[0] = (uint8_t)(id & 0xFF);
	r[1] = (uint8_t)(id >> 8);
	if (r[2] < 0xE0) {
		r[3] = (uint8_t)fk.clock;
		r[4] = (uint8_t)(fk.clock >> 8);
		r[5] = (uint8_t)(fk.clock >> 16);
		r[6] = (uint8_t)(fk.clock >> 24);
	}
	fk.add_ts = fk.clock;
	return id;
}

static uint16_t fk_sel_add(uint8_t gen, uint8_t stype, uint8_t snum, uint8_t dir_type, uint8_t d1,
                           uint8_t d2, uint8_t d3)
{
	uint8_t raw[16];

	build_sel(raw, 0, 0, gen, stype, snum, dir_type, d1, d2, d3);
	return fk_sel_add_raw(raw);
}

static void fk_sel_fill(unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		fk_sel_add(0x82, 0x01, 0x01, 0x01, 0x57, (uint8_t)i, 80);
}

static void fk_sel_clear(bool restart_ids)
{
	fk.n_sel = 0;
	fk.sel_overflow = false;
	fk.clock++;
	if (!fk.erase_ts_frozen)
		fk.erase_ts = fk.clock;
	if (restart_ids)
		fk.sel_next_id = 1;
}

static int fk_find_sel(uint16_t id)
{
	if (fk.n_sel == 0)
		return -1;
	if (id == IPD_SEL_FIRST)
		return 0;
	if (id == IPD_SEL_LAST)
		return (int)fk.n_sel - 1;
	for (unsigned i = 0; i < fk.n_sel; i++) {
		if ((fk.sel[i][0] | fk.sel[i][1] << 8) == id)
			return (int)i;
	}
	return -1;
}

static int fk_get_sdr(struct fk_ctl *c, const uint8_t *req, size_t req_len, uint8_t *out)
{
	uint16_t resv, id;
	unsigned off, len, i;
	uint8_t rec[300];
	size_t rlen;

	c->n_get_sdr++;
	if (req_len < 6) {
		out[0] = 0xC7;
		return 1;
	}
	if (c->mode == FK_CC_CB || c->mode == FK_CC_CA) {
		out[0] = c->mode == FK_CC_CB ? 0xCB : 0xCA;
		return 1;
	}
	resv = (uint16_t)(req[0] | req[1] << 8);
	id = (uint16_t)(req[2] | req[3] << 8);
	off = req[4];
	len = req[5];
	for (i = 0; i < c->n_sdr; i++) {
		if (id == 0 || (c->sdr[i][0] | c->sdr[i][1] << 8) == id)
			break;
	}
	if (i == c->n_sdr) {
		out[0] = 0xCB;
		return 1;
	}
	if (off > 0 && resv != c->resv) {
		out[0] = IPD_CC_RES_CANCELLED;
		return 1;
	}
	if (c->mode == FK_CANCEL_RESV && off > 0 && c->cancels++ % 7 == 0) {
		c->resv++; /* somebody else reserved the repository */
		out[0] = IPD_CC_RES_CANCELLED;
		return 1;
	}
	if (len > 16) { /* like most IPMCs: no long reads over IPMB */
		out[0] = 0xCA;
		return 1;
	}
	memset(rec, 0xEE, sizeof(rec));
	memcpy(rec, c->sdr[i], c->sdr_len[i]);
	rlen = c->sdr_len[i];
	if (c->mode == FK_BAD_SDR_LEN && i == 0) {
		rec[4] = 0xFF;
		rlen = 0xFF + 5;
	}
	if (off >= rlen) {
		out[0] = 0xC9; /* parameter out of range */
		return 1;
	}
	if (off + len > rlen)
		len = (unsigned)(rlen - off);
	out[0] = 0;
	if (i + 1 < c->n_sdr) {
		out[1] = c->sdr[i + 1][0];
		out[2] = c->sdr[i + 1][1];
	} else {
		out[1] = out[2] = 0xFF;
	}
	memcpy(out + 3, rec + off, len);
	return 3 + (int)len;
}

/* Answers one request (under fk.lock); *delay_ms: sleep before answering. */
static int fk_answer(uint8_t addr, uint8_t netfn, uint8_t cmd, const uint8_t *req, size_t req_len,
                     uint8_t *out, unsigned *delay_ms)
{
	struct fk_ctl *c = fk_find_ctl(addr);

	if (c == NULL)
		return -ETIME; /* nobody at that address */
	c->n_cmds++;
	switch (c->mode) {
	case FK_NAK_CC:
		out[0] = IPD_CC_BRIDGE_NAK;
		return 1;
	case FK_NAK_ERR:
		return -EREMOTEIO;
	case FK_NO_ANSWER:
		return -ETIME;
	case FK_TIMEOUT:
		return -ETIMEDOUT;
	case FK_SLOW:
		*delay_ms = c->delay_ms;
		break;
	case FK_SHORT:
		out[0] = 0;
		return 1;
	case FK_CC_C1:
		out[0] = IPD_CC_INVALID_CMD;
		return 1;
	default:
		break;
	}
	switch (netfn << 8 | cmd) {
	case IPD_NETFN_APP << 8 | IPD_CMD_GET_DEVICE_ID: {
		static const uint8_t devid[] = {0,    0x12, 0x81, 0x01, 0x02, 0x51,
		                                0x29, 0x5A, 0x31, 0x00, 0x01, 0x00};
		c->n_devid++;
		memcpy(out, devid, sizeof(devid));
		out[4] = (uint8_t)(out[4] + c->fw_minor);
		return (int)sizeof(devid);
	}
	case IPD_NETFN_SE << 8 | IPD_CMD_GET_DEVICE_SDR_INFO:
		c->n_sdr_info++;
		out[0] = 0;
		out[1] = (uint8_t)c->n_sens;
		out[2] = 0x81; /* dynamic population, LUN 0 */
		out[3] = (uint8_t)c->sdr_change;
		out[4] = (uint8_t)(c->sdr_change >> 8);
		out[5] = (uint8_t)(c->sdr_change >> 16);
		out[6] = (uint8_t)(c->sdr_change >> 24);
		return 7;
	case IPD_NETFN_STORAGE << 8 | IPD_CMD_GET_SDR_REPO_INFO:
		c->n_sdr_info++;
		memset(out, 0, 15);
		out[1] = 0x51;
		out[2] = (uint8_t)c->n_sdr;
		out[4] = 0x00;
		out[5] = 0x10;
		out[6] = (uint8_t)c->sdr_change;
		out[7] = (uint8_t)(c->sdr_change >> 8);
		out[8] = (uint8_t)(c->sdr_change >> 16);
		out[9] = (uint8_t)(c->sdr_change >> 24);
		out[14] = 0x0F;
		return 15;
	case IPD_NETFN_SE << 8 | IPD_CMD_RESERVE_DEVICE_SDR:
	case IPD_NETFN_STORAGE << 8 | IPD_CMD_RESERVE_SDR_REPO:
		c->resv++;
		out[0] = 0;
		out[1] = (uint8_t)(c->resv & 0xFF);
		out[2] = (uint8_t)(c->resv >> 8);
		return 3;
	case IPD_NETFN_SE << 8 | IPD_CMD_GET_DEVICE_SDR:
	case IPD_NETFN_STORAGE << 8 | IPD_CMD_GET_SDR:
		return fk_get_sdr(c, req, req_len, out);
	case IPD_NETFN_SE << 8 | IPD_CMD_GET_SENSOR_READING: {
		struct fk_sensor *s = req_len >= 1 ? fk_find_sensor(c, req[0]) : NULL;
		uint64_t now = af_mono_ns();

		c->n_readings++;
		if (c->last_reading_ns && now - c->last_reading_ns > c->max_reading_gap_ns)
			c->max_reading_gap_ns = now - c->last_reading_ns;
		c->last_reading_ns = now;
		if (s == NULL || c->mode == FK_CC_CB) {
			out[0] = IPD_CC_NOT_PRESENT_SENSOR;
			return 1;
		}
		out[0] = 0;
		out[1] = s->raw;
		out[2] = 0xC0;
		out[3] = (uint8_t)(s->status | (s->asserted & 0xFF));
		out[4] = (uint8_t)(0x80 | (s->asserted >> 8));
		return 5;
	}
	case IPD_NETFN_STORAGE << 8 | IPD_CMD_GET_SEL_INFO:
		if (addr != IPD_SHMC_ADDR)
			break;
		fk.n_sel_info++;
		fk.n_sel_info_mgr[fk.cur_mgr]++;
		memset(out, 0, 15);
		out[1] = 0x51;
		out[2] = (uint8_t)(fk.n_sel & 0xFF);
		out[3] = (uint8_t)(fk.n_sel >> 8);
		out[4] = (uint8_t)(((fk.sel_cap - fk.n_sel) * 16) & 0xFF);
		out[5] = (uint8_t)(((fk.sel_cap - fk.n_sel) * 16) >> 8);
		for (int i = 0; i < 4; i++) {
			out[6 + i] = (uint8_t)(fk.add_ts >> (8 * i));
			out[10 + i] = (uint8_t)(fk.erase_ts >> (8 * i));
		}
		out[14] = (uint8_t)((fk.sel_overflow ? 0x80 : 0) | 0x0A);
		return 15;
	case IPD_NETFN_STORAGE << 8 | 0x42: /* Reserve SEL */
		if (addr != IPD_SHMC_ADDR)
			break;
		fk.sel_resv++;
		out[0] = 0;
		out[1] = (uint8_t)(fk.sel_resv & 0xFF);
		out[2] = (uint8_t)(fk.sel_resv >> 8);
		return 3;
	case IPD_NETFN_STORAGE << 8 | IPD_CMD_GET_SEL_ENTRY: {
		int i, nx;

		if (addr != IPD_SHMC_ADDR)
			break;
		fk.n_sel_entry++;
		if (req_len < 6) {
			out[0] = 0xC7;
			return 1;
		}
		/* a partial read needs the current reservation; a whole one none */
		if ((req[4] != 0 || req[5] != 0xFF) &&
		    (uint16_t)(req[0] | req[1] << 8) != fk.sel_resv) {
			out[0] = IPD_CC_RES_CANCELLED;
			return 1;
		}
		i = fk_find_sel((uint16_t)(req[2] | req[3] << 8));
		if (i < 0) {
			out[0] = IPD_CC_NOT_PRESENT;
			return 1;
		}
		nx = i + 1 < (int)fk.n_sel ? i + 1 : -1;
		out[0] = 0;
		if (fk.sel_next_self)
			nx = i;
		if (fk.sel_next_loop && nx < 0)
			nx = 0;
		out[1] = nx < 0 ? 0xFF : fk.sel[nx][0];
		out[2] = nx < 0 ? 0xFF : fk.sel[nx][1];
		memcpy(out + 3, fk.sel[i], 16);
		return 19;
	}
	default:
		break;
	}
	out[0] = IPD_CC_INVALID_CMD;
	return 1;
}

struct fk_transport {
	struct ipd_transport base;
	int mgr;        /* 0, 1; -1 in-band */
	uint8_t inband; /* in-band: the controller behind it */
};

static int fk_cmd(struct ipd_transport *t, uint8_t addr, uint8_t netfn, uint8_t cmd,
                  const uint8_t *req, size_t req_len, uint8_t *rsp, size_t rsp_max)
{
	struct fk_transport *ft = (struct fk_transport *)t;
	uint8_t out[300];
	unsigned delay = 0;
	int n;

	fk_lock();
	if (ft->mgr >= 0 && fk.mgr_dead[ft->mgr]) {
		fk_unlock();
		return -ETIMEDOUT;
	}
	if (ft->mgr >= 0) {
		fk.mgr_cmds[ft->mgr]++;
		fk.cur_mgr = (uint8_t)ft->mgr;
	} else
		addr = ft->inband;
	n = fk_answer(addr, netfn, cmd, req, req_len, out, &delay);
	fk_unlock();
	if (delay)
		usleep(delay * 1000);
	if (n > 0) {
		if ((size_t)n > rsp_max)
			n = (int)rsp_max;
		memcpy(rsp, out, (size_t)n);
	}
	return n;
}

static void fk_close(struct ipd_transport *t)
{
	fk_lock();
	fk.closes++;
	fk_unlock();
	free(t);
}

static const struct ipd_transport_ops fk_ops = {.cmd = fk_cmd, .close = fk_close};

static int fk_open_lan(const struct ipd_lan_params *p, struct ipd_transport **out, char *err,
                       size_t errlen)
{
	int mgr = strcmp(p->host, FK_MGR0) == 0 ? 0 : strcmp(p->host, FK_MGR1) == 0 ? 1 : -1;
	struct fk_transport *ft;

	/* what the workers pass from the configuration */
	ck_assert_str_eq(p->username, "admin");
	ck_assert_str_eq(p->password, "secret");
	ck_assert_uint_eq(p->cipher_suite, 3);
	ck_assert_uint_eq(p->privilege, 4);
	ck_assert_uint_eq(p->port, 623);
	ck_assert_uint_eq(p->timeout_ms, 100);
	fk_lock();
	if (mgr < 0 || fk.mgr_dead[mgr]) {
		fk_unlock();
		snprintf(err, errlen, "RMCP+ session to %s: connection timed out", p->host);
		return -ETIMEDOUT;
	}
	fk.opens[mgr]++;
	fk_unlock();
	ft = calloc(1, sizeof(*ft));
	ck_assert_ptr_nonnull(ft);
	ft->base.ops = &fk_ops;
	ft->mgr = mgr;
	snprintf(ft->base.desc, sizeof(ft->base.desc), "fake RMCP+ %s", p->host);
	*out = &ft->base;
	return 0;
}

static int fk_open_inband(const char *device, struct ipd_transport **out, char *err, size_t errlen)
{
	struct fk_transport *ft;
	unsigned addr = 0;
	int rc;

	ck_assert_int_eq(sscanf(device, "/dev/fake-ipmi-0x%x", &addr), 1);
	fk_lock();
	rc = fk.inband_err;
	if (rc == 0)
		fk.inband_opens++;
	fk_unlock();
	if (rc != 0) {
		snprintf(err, errlen, "in-band %s: no such device", device);
		return rc;
	}
	ft = calloc(1, sizeof(*ft));
	ck_assert_ptr_nonnull(ft);
	ft->base.ops = &fk_ops;
	ft->mgr = -1;
	ft->inband = (uint8_t)addr;
	snprintf(ft->base.desc, sizeof(ft->base.desc), "fake in-band %s", device);
	*out = &ft->base;
	return 0;
}

/* Get SEL Info requests that came through manager mgr. */
static unsigned fk_sel_polls(int mgr)
{
	unsigned n;

	fk_lock();
	n = fk.n_sel_info_mgr[mgr];
	fk_unlock();
	return n;
}

static const struct ipd_transport_factory fk_factory = {.open_lan = fk_open_lan,
                                                        .open_inband = fk_open_inband};

static struct ipd_transport *fk_session(void)
{
	const struct ipd_lan_params p = {.host = FK_MGR0,
	                                 .port = 623,
	                                 .username = "admin",
	                                 .password = "secret",
	                                 .cipher_suite = 3,
	                                 .privilege = 4,
	                                 .timeout_ms = 100};
	struct ipd_transport *t = NULL;
	char err[128];

	ck_assert_int_eq(fk_open_lan(&p, &t, err, sizeof(err)), 0);
	return t;
}

/* ---- ipd_sel_poll against the fake shelf manager -------------------------- */

struct sel_log {
	unsigned n;
	uint16_t ids[FK_MAX_SEL * 2];
	uint32_t ts[FK_MAX_SEL * 2];
	uint8_t types[FK_MAX_SEL * 2];
	unsigned cleared, cleared_before, overflow, overflow_entries, resync;
	uint16_t lost;
};

static void log_record(void *o, const struct ipd_sel_rec *r)
{
	struct sel_log *l = o;

	ck_assert_uint_lt(l->n, AF_ARRAY_SIZE(l->ids));
	l->ids[l->n] = r->id;
	l->ts[l->n] = r->timestamp;
	l->types[l->n] = r->type;
	l->n++;
}
static void log_cleared(void *o, unsigned before)
{
	struct sel_log *l = o;

	l->cleared++;
	l->cleared_before = before;
}
static void log_overflow(void *o, unsigned entries)
{
	struct sel_log *l = o;

	l->overflow++;
	l->overflow_entries = entries;
}
static void log_resync(void *o, uint16_t lost)
{
	struct sel_log *l = o;

	l->resync++;
	l->lost = lost;
}

struct sel_fx {
	struct ipd_transport *t;
	struct ipd_sel_cursor c;
	struct sel_log log;
	struct ipd_sel_sink sink;
};

static void sel_fx_start(struct sel_fx *fx)
{
	fk_reset();
	fk_add_ctl(IPD_SHMC_ADDR);
	memset(fx, 0, sizeof(*fx));
	fx->t = fk_session();
	fx->sink =
	        (struct ipd_sel_sink){log_record, log_cleared, log_overflow, log_resync, &fx->log};
}

static void sel_fx_stop(struct sel_fx *fx)
{
	fx->t->ops->close(fx->t);
}

/* One poll; returns its result, and the Get SEL Entry calls it made. */
static int poll_once(struct sel_fx *fx, unsigned *entry_calls)
{
	unsigned before = fk.n_sel_entry;
	int rc = ipd_sel_poll(&fx->c, fx->t, IPD_SHMC_ADDR, &fx->sink);

	if (entry_calls)
		*entry_calls = fk.n_sel_entry - before;
	return rc;
}

static uint16_t sel_id(unsigned i)
{
	return (uint16_t)(fk.sel[i][0] | fk.sel[i][1] << 8);
}

/* The records delivered so far are exactly SEL positions [from, to). */
static void assert_delivered(const struct sel_fx *fx, unsigned first_log, unsigned from,
                             unsigned to)
{
	ck_assert_uint_eq(fx->log.n - first_log, to - from);
	for (unsigned i = from; i < to; i++)
		ck_assert_uint_eq(fx->log.ids[first_log + i - from], sel_id(i));
}

START_TEST(test_sel_poll_errors)
{
	struct sel_fx fx;
	struct ipd_sel_cursor before;
	unsigned calls;

	sel_fx_start(&fx);
	fk_sel_fill(5);
	/* Get SEL Info fails or says nothing sensible: no position taken */
	fk.ctl[0].mode = FK_CC_C1;
	ck_assert_int_eq(poll_once(&fx, NULL), -EPROTO);
	ck_assert(!fx.c.positioned);
	fk.ctl[0].mode = FK_SHORT;
	ck_assert_int_eq(poll_once(&fx, NULL), -EPROTO);
	ck_assert(!fx.c.positioned);
	fk.ctl[0].mode = FK_TIMEOUT;
	ck_assert_int_eq(poll_once(&fx, NULL), -ETIMEDOUT);
	ck_assert(!fx.c.positioned);
	fk.ctl[0].mode = FK_OK;
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert(fx.c.positioned && fx.c.have_last);
	ck_assert_uint_eq(fx.c.last_id, 5);
	ck_assert_uint_eq(calls, 1);

	/* records added, but the transport breaks: the cursor does not move and
	 * nothing is delivered; the next poll delivers them once */
	fk_sel_clear(false); /* a clear to report, and records after it */
	fk_sel_fill(3);
	fk.sel_overflow = true;
	before = fx.c;
	fk.ctl[0].mode = FK_TIMEOUT;
	ck_assert_int_eq(poll_once(&fx, NULL), -ETIMEDOUT);
	ck_assert_int_eq(memcmp(&before, &fx.c, sizeof(before)), 0);
	ck_assert_uint_eq(fx.log.n, 0);
	fk.ctl[0].mode = FK_NAK_ERR;
	ck_assert_int_eq(poll_once(&fx, NULL), -EREMOTEIO);
	ck_assert_int_eq(memcmp(&before, &fx.c, sizeof(before)), 0);
	ck_assert_uint_eq(fx.log.n + fx.log.cleared + fx.log.overflow, 0);
	fk.ctl[0].mode = FK_OK;
	ck_assert_int_eq(poll_once(&fx, NULL), 3);
	ck_assert_uint_eq(fx.log.cleared, 1);
	ck_assert_uint_eq(fx.log.cleared_before, 5);
	ck_assert_uint_eq(fx.log.overflow, 1);
	assert_delivered(&fx, 0, 0, 3);
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_incremental)
{
	struct sel_fx fx;
	unsigned calls, info;

	sel_fx_start(&fx);
	/* sparse ids: a reader walking ids would need thousands of calls */
	fk.sel_next_id = 0x0010;
	fk.sel_id_step = 0x0123;
	fk_sel_fill(4);

	/* the first poll positions at the end: history is not news */
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(calls, 1);
	ck_assert_uint_eq(fx.log.n, 0);
	ck_assert_uint_eq(fx.c.last_id, sel_id(3));
	ck_assert_uint_eq(fx.c.entries, 4);

	/* nothing new: one Get SEL Info, no entry read */
	info = fk.n_sel_info;
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(calls, 0);
	ck_assert_uint_eq(fk.n_sel_info - info, 1);

	/* three new: the last one seen (for its successor) and the three */
	fk_sel_fill(3);
	ck_assert_int_eq(poll_once(&fx, &calls), 3);
	ck_assert_uint_eq(calls, 4);
	assert_delivered(&fx, 0, 4, 7);
	ck_assert_uint_eq(fx.c.last_id, sel_id(6));
	ck_assert_uint_le(fx.c.last_ts, fk.clock);

	/* one more, then an OEM record of each kind and an unknown type */
	fk_sel_fill(1);
	{
		uint8_t raw[16];

		memset(raw, 0x42, sizeof(raw));
		raw[2] = 0xC3;
		fk_sel_add_raw(raw);
		raw[2] = 0xE1;
		fk_sel_add_raw(raw);
		raw[2] = 0x55; /* unspecified */
		fk_sel_add_raw(raw);
	}
	ck_assert_int_eq(poll_once(&fx, &calls), 4);
	ck_assert_uint_eq(calls, 5);
	assert_delivered(&fx, 3, 7, 11);
	ck_assert_uint_eq(fx.log.types[4], 0xC3);
	ck_assert_uint_eq(fx.log.types[5], 0xE1);
	ck_assert_uint_eq(fx.log.types[6], 0x55);
	ck_assert_uint_eq(fx.log.ts[5], 0); /* non-timestamped */
	ck_assert_uint_eq(fx.log.cleared + fx.log.overflow + fx.log.resync, 0);
	/* caught up: within two seconds of the last addition one look at the
	 * last record's successor (see test_sel_poll_same_second), then only
	 * Get SEL Info */
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_le(calls, 1);
	fx.c.caught_up_ns = 1;
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(calls, 0);
	sel_fx_stop(&fx);
}
END_TEST

/* SEL timestamps count seconds: a record added in the same second as the
 * last one we caught up with, in a full circular SEL (same number of
 * entries, same addition timestamp), must still be read. */
START_TEST(test_sel_poll_same_second)
{
	struct sel_fx fx;
	unsigned calls;

	sel_fx_start(&fx);
	fk.sel_cap = 5;
	fk.sel_circular = true;
	fk_sel_fill(5);
	ck_assert_int_eq(poll_once(&fx, NULL), 0); /* positioned at the end */
	fk_sel_fill(1);
	ck_assert_int_eq(poll_once(&fx, NULL), 1);
	fk.clock--; /* the next record gets the same second */
	fk_sel_fill(1);
	ck_assert_uint_eq(fk.n_sel, 5);
	ck_assert_int_eq(poll_once(&fx, &calls), 1);
	ck_assert_uint_eq(fx.log.n, 2);
	ck_assert_uint_eq(fx.log.ids[1], sel_id(4));
	ck_assert_uint_eq(fx.log.resync + fx.log.cleared, 0);
	sel_fx_stop(&fx);
}
END_TEST

/* A switchover: the standby shelf manager's SEL holds the same events
 * under other ids. Taken over after the last record processed on the
 * other manager (by timestamp), it delivers only what is later. */
START_TEST(test_sel_poll_adopt)
{
	struct sel_fx fx;
	uint32_t seen_ts;
	unsigned calls;

	sel_fx_start(&fx);
	/* an empty SEL taken over: positioned, the first record is news */
	ipd_sel_adopt(&fx.c, 12345);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(calls, 0);
	ck_assert(fx.c.positioned && !fx.c.adopt);
	fk_sel_fill(3);
	ck_assert_int_eq(poll_once(&fx, NULL), 3);
	seen_ts = fx.c.last_ts;
	/* two more after the last one processed "elsewhere" */
	fk_sel_fill(2);
	ipd_sel_adopt(&fx.c, seen_ts);
	ck_assert_int_eq(poll_once(&fx, NULL), 2);
	assert_delivered(&fx, 3, 3, 5);
	ck_assert_uint_eq(fx.c.last_id, sel_id(4));
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	/* everything already delivered elsewhere: nothing now, nothing again
	 * at the next poll (the cursor stands at the end), then news as usual */
	ipd_sel_adopt(&fx.c, fx.c.last_ts);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	ck_assert(fx.c.have_last);
	ck_assert_uint_eq(fx.c.last_id, sel_id(4));
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	ck_assert_uint_eq(fx.log.n, 5);
	fk_sel_fill(1);
	ck_assert_int_eq(poll_once(&fx, NULL), 1);
	assert_delivered(&fx, 5, 5, 6);
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_empty_start)
{
	struct sel_fx fx;
	unsigned calls;

	sel_fx_start(&fx);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(calls, 0);
	ck_assert(fx.c.positioned && !fx.c.have_last);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	fk_sel_fill(2);
	ck_assert_int_eq(poll_once(&fx, &calls), 2);
	ck_assert_uint_eq(calls, 2);
	assert_delivered(&fx, 0, 0, 2);
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_batch_limit)
{
	struct sel_fx fx;
	unsigned total = 0, polls = 0, calls;
	int rc;

	sel_fx_start(&fx);
	fk_sel_fill(2);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_fill(IPD_SEL_BATCH * 2 + 10);
	do {
		rc = poll_once(&fx, &calls);
		ck_assert_int_ge(rc, 0);
		ck_assert_int_le(rc, IPD_SEL_BATCH);
		ck_assert_uint_le(calls, IPD_SEL_BATCH + 1);
		total += (unsigned)rc;
		polls++;
	} while (rc > 0 && polls < 10);
	ck_assert_uint_eq(polls, 4); /* 64, 64, 10, 0 */
	ck_assert_uint_eq(total, IPD_SEL_BATCH * 2 + 10);
	assert_delivered(&fx, 0, 2, fk.n_sel);
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_cleared)
{
	struct sel_fx fx;
	unsigned calls;

	/* the erase timestamp moves */
	sel_fx_start(&fx);
	fk_sel_fill(5);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_clear(false);
	fk_sel_fill(2);
	ck_assert_int_eq(poll_once(&fx, &calls), 2);
	ck_assert_uint_eq(fx.log.cleared, 1);
	ck_assert_uint_eq(fx.log.cleared_before, 5);
	assert_delivered(&fx, 0, 0, 2);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(fx.log.cleared, 1);
	/* cleared and still empty */
	fk_sel_clear(true);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(fx.log.cleared, 2);
	ck_assert_uint_eq(fx.log.cleared_before, 2);
	fk_sel_fill(1);
	ck_assert_int_eq(poll_once(&fx, &calls), 1);
	assert_delivered(&fx, 2, 0, 1);
	sel_fx_stop(&fx);

	/* a controller that does not keep the erase timestamp: fewer entries,
	 * and the last record seen is gone */
	sel_fx_start(&fx);
	fk.erase_ts_frozen = true;
	fk.erase_ts = 0xFFFFFFFF;
	fk_sel_fill(6);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_clear(false);
	fk_sel_fill(2);
	ck_assert_int_eq(poll_once(&fx, &calls), 2);
	ck_assert_uint_eq(fx.log.cleared, 1);
	ck_assert_uint_eq(fx.log.cleared_before, 6);
	assert_delivered(&fx, 0, 0, 2);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	/* cleared to nothing, then refilled with the ids starting again: the
	 * record now at our last id is not the one we saw */
	fk_sel_clear(true);
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(fx.log.cleared, 2);
	fk_sel_fill(4);
	ck_assert_int_eq(poll_once(&fx, &calls), 4);
	assert_delivered(&fx, 2, 0, 4);
	sel_fx_stop(&fx);

	/* the erase timestamp moves because older records were deleted (the
	 * spec's "most recent erase" is any deletion): our last record is still
	 * there, nothing was cleared, nothing is read twice */
	sel_fx_start(&fx);
	fk_sel_fill(6);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	memmove(fk.sel[0], fk.sel[2], 16 * 4);
	fk.n_sel = 4;
	fk.erase_ts = ++fk.clock;
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	fk_sel_fill(2);
	ck_assert_int_eq(poll_once(&fx, &calls), 2);
	ck_assert_uint_eq(fx.log.cleared, 0);
	assert_delivered(&fx, 0, 4, 6);
	sel_fx_stop(&fx);

	/* fewer entries, but the last record seen is still there: older ones
	 * were deleted, nothing was cleared */
	sel_fx_start(&fx);
	fk.erase_ts_frozen = true;
	fk_sel_fill(6);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	memmove(fk.sel[0], fk.sel[3], 16 * 3);
	fk.n_sel = 3;
	fk_sel_fill(1);
	ck_assert_int_eq(poll_once(&fx, &calls), 1);
	ck_assert_uint_eq(fx.log.cleared, 0);
	assert_delivered(&fx, 0, 3, 4);
	sel_fx_stop(&fx);

	/* ids reused without the count dropping (cleared and refilled between
	 * two polls, no erase timestamp): nothing is lost */
	sel_fx_start(&fx);
	fk.erase_ts_frozen = true;
	fk_sel_fill(3);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_clear(true);
	fk_sel_fill(5);
	ck_assert_int_eq(poll_once(&fx, &calls), 5);
	assert_delivered(&fx, 0, 0, 5);
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_overflow)
{
	struct sel_fx fx;

	sel_fx_start(&fx);
	fk.sel_cap = 10;
	fk_sel_fill(8);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_fill(5); /* 2 fit, 3 dropped */
	ck_assert(fk.sel_overflow);
	ck_assert_int_eq(poll_once(&fx, NULL), 2);
	ck_assert_uint_eq(fx.log.overflow, 1);
	ck_assert_uint_eq(fx.log.overflow_entries, 10);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_fill(1);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	ck_assert_uint_eq(fx.log.overflow, 1); /* once */
	/* cleared: the flag goes; when it comes back it is news again */
	fk_sel_clear(false);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	ck_assert_uint_eq(fx.log.cleared, 1);
	fk_sel_fill(12);
	ck_assert_int_eq(poll_once(&fx, NULL), 10);
	ck_assert_uint_eq(fx.log.overflow, 2);
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_wrap)
{
	struct sel_fx fx;
	unsigned calls;

	/* a circular SEL: the oldest records go, reading goes on */
	sel_fx_start(&fx);
	fk.sel_cap = 10;
	fk.sel_circular = true;
	fk_sel_fill(10);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_fill(4);
	ck_assert_int_eq(poll_once(&fx, &calls), 4);
	ck_assert_uint_eq(calls, 5);
	assert_delivered(&fx, 0, 6, 10);
	ck_assert_uint_eq(fx.log.resync, 0);

	/* more than the SEL holds between two polls: the last record seen was
	 * overwritten; resynchronise from the oldest, without duplicates */
	fk_sel_fill(13);
	ck_assert_int_eq(poll_once(&fx, &calls), 10);
	ck_assert_uint_eq(fx.log.resync, 1);
	ck_assert_uint_eq(fx.log.cleared, 0);
	assert_delivered(&fx, 4, 0, 10);
	for (unsigned i = 1; i < fx.log.n; i++)
		ck_assert_uint_gt(fx.log.ts[i], fx.log.ts[i - 1]);
	fx.c.caught_up_ns = 1; /* past the same-second window */
	ck_assert_int_eq(poll_once(&fx, &calls), 0);
	ck_assert_uint_eq(calls, 0);

	/* mid-batch continuation whose next record was overwritten meanwhile */
	sel_fx_stop(&fx);
	sel_fx_start(&fx);
	fk.sel_cap = 100;
	fk.sel_circular = true;
	fk_sel_fill(100);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_fill(84);
	ck_assert_int_eq(poll_once(&fx, NULL), IPD_SEL_BATCH); /* 20 left to read */
	fk_sel_fill(85);                                       /* 5 of them overwritten */
	ck_assert_int_eq(poll_once(&fx, NULL), IPD_SEL_BATCH);
	ck_assert_uint_eq(fx.log.resync, 1);
	ck_assert_int_eq(poll_once(&fx, NULL), 100 - IPD_SEL_BATCH);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	assert_delivered(&fx, IPD_SEL_BATCH, 0, 100);
	ck_assert_uint_eq(fx.log.cleared, 0);
	/* no record was ever delivered twice */
	for (unsigned i = 0; i < fx.log.n; i++) {
		for (unsigned j = 0; j < i; j++)
			ck_assert_msg(fx.log.ts[i] != fx.log.ts[j], "record ts %u delivered twice",
			              fx.log.ts[i]);
	}
	sel_fx_stop(&fx);
}
END_TEST

START_TEST(test_sel_poll_garbage)
{
	struct sel_fx fx;

	sel_fx_start(&fx);
	fk_sel_fill(3);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	fk_sel_fill(2);
	/* a controller that answers entries with the wrong length */
	fk.ctl[0].mode = FK_SHORT;
	ck_assert_int_lt(poll_once(&fx, NULL), 0);
	fk.ctl[0].mode = FK_CC_C1;
	ck_assert_int_eq(poll_once(&fx, NULL), -EPROTO);
	ck_assert_uint_eq(fx.log.n, 0);
	fk.ctl[0].mode = FK_OK;
	ck_assert_int_eq(poll_once(&fx, NULL), 2);
	/* a record naming itself as its successor: read once, not 64 times */
	fk_sel_fill(2);
	fk.sel_next_self = true;
	{
		unsigned calls;
		int rc = poll_once(&fx, &calls);

		ck_assert_int_ge(rc, 0);
		ck_assert_int_le(rc, 1);
		ck_assert_uint_le(calls, 3);
		rc = poll_once(&fx, &calls);
		ck_assert_int_ge(rc, 0);
		ck_assert_int_le(rc, 1);
		ck_assert_uint_le(calls, 3);
	}
	fk.sel_next_self = false;
	fk_sel_fill(1);
	ck_assert_int_ge(poll_once(&fx, NULL), 1);
	ck_assert_int_eq(poll_once(&fx, NULL), 0);
	assert_delivered(&fx, 0, 3, 8);
	/* a chain that loops back to the first record: the new records once,
	 * then the walk stops; it never spins */
	fk.sel_next_loop = true;
	fk_sel_fill(2);
	{
		unsigned calls, n0 = fx.log.n;
		int rc = poll_once(&fx, &calls);

		ck_assert_int_ge(rc, 2);
		ck_assert_uint_le(calls, fk.n_sel + IPD_SEL_BATCH + 2);
		/* each record at most once in one poll */
		for (unsigned i = n0; i < fx.log.n; i++)
			for (unsigned j = i + 1; j < fx.log.n; j++)
				ck_assert_uint_ne(fx.log.ids[i], fx.log.ids[j]);
		for (int round = 0; round < 3; round++) {
			rc = poll_once(&fx, &calls);
			ck_assert_int_ge(rc, -EPROTO);
			ck_assert_uint_le(calls, fk.n_sel + IPD_SEL_BATCH + 2);
		}
	}
	fk.sel_next_loop = false;
	sel_fx_stop(&fx);
}
END_TEST

/* ---- the module with its workers ----------------------------------------- */

struct mfx {
	char *dir;
	char cred[512];
	struct af_config *cfg, *old_cfg;
	qb_loop_t *loop;
	struct ipd *m;
	struct af_event *ev;
	unsigned n_ev, cap;
	int fds, threads;
};

static void on_event(void *opaque, struct af_event *ev)
{
	struct mfx *fx = opaque;

	if (fx->n_ev == fx->cap) {
		fx->cap = fx->cap ? fx->cap * 2 : 256;
		fx->ev = realloc(fx->ev, fx->cap * sizeof(*fx->ev));
		ck_assert_ptr_nonnull(fx->ev);
	}
	fx->ev[fx->n_ev++] = *ev;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static struct af_config *mfx_config(struct mfx *fx, unsigned managers, unsigned blades,
                                    const char *blade2_extra)
{
	char text[2048];
	struct af_cfg_diag diag;
	struct af_config *cfg = NULL;
	int len;

	len = snprintf(text, sizeof(text),
	               "daemon {\n state_dir: %s\n}\n"
	               "shelf {\n credentials: %s\n manager {\n  address: " FK_MGR0 "\n }\n%s}\n"
	               "blade {\n slot: 1\n host: b1\n}\n"
	               "%s%s%s"
	               "detection {\n sensor_interval: 100ms\n sel_interval: 20ms\n"
	               " ipmc_timeout: 100ms\n ipmc_retry_max: 200ms\n}\n",
	               fx->dir, fx->cred,
	               managers > 1 ? " manager {\n  address: " FK_MGR1 "\n }\n" : "",
	               blades > 1 ? "blade {\n slot: 2\n host: b2\n" : "",
	               blades > 1 && blade2_extra ? blade2_extra : "", blades > 1 ? "}\n" : "");
	ck_assert_int_lt(len, (int)sizeof(text));
	memset(&diag, 0, sizeof(diag));
	ck_assert_msg(af_cfg_parse_buffer("fake.conf", text, (size_t)len, AF_CFG_SKIP_NSS, &cfg,
	                                  &diag) == 0,
	              "config: %s", diag.errors[0]);
	ck_assert(cfg->shelf.cred_loaded);
	return cfg;
}

/* The fake shelf of the module tests: a shelf manager with its own
 * temperature sensor (its repository also holds a blade's record, which is
 * not its to read, and a record of another type), two blades with a CPU
 * temperature and a hot-swap sensor each. */
static void fk_shelf_setup(void)
{
	uint8_t r[64];
	size_t l;
	struct fk_ctl *c;

	fk_reset();
	c = fk_add_ctl(IPD_SHMC_ADDR);
	l = full_sdr(r, IPD_SHMC_ADDR, 0x10, 0x01, "Shelf Temp");
	fk_add_sdr(c, r, l);
	l = full_sdr(r, 0x82, 0x01, 0x01, "CPU Temp");
	fk_add_sdr(c, r, l);
	memset(r, 0, sizeof(r));
	r[2] = 0x51;
	r[3] = 0x12; /* MC device locator */
	r[4] = 11;
	fk_add_sdr(c, r, 16);
	fk_add_sensor(c, 0x10, 30, 0, 0);
	for (uint8_t a = 0x82; a <= 0x84; a += 2) {
		c = fk_add_ctl(a);
		l = full_sdr(r, a, 0x01, 0x01, "CPU Temp");
		fk_add_sdr(c, r, l);
		l = compact_sdr(r, a, 0x02, 0xF0, 0x6F, "FRU0 Hot Swap");
		fk_add_sdr(c, r, l);
		fk_add_sensor(c, 0x01, (uint8_t)(a == 0x82 ? 45 : 50), 0, 0);
		fk_add_sensor(c, 0x02, 0, 0, 0x0010); /* M4 */
	}
	fk_sel_fill(3);
}

static void mfx_start_with(struct mfx *fx, struct af_config *cfg)
{
	struct af_module_env env = {
	        .loop = fx->loop, .cfg = cfg, .event_sink = on_event, .sink_opaque = fx};

	fx->cfg = cfg;
	ck_assert_int_eq(ipd_init_with(&fx->m, &env, &fk_factory), 0);
	ck_assert_ptr_nonnull(fx->m);
}

static void mfx_init(struct mfx *fx)
{
	struct af_log_settings ls;

	memset(fx, 0, sizeof(*fx));
	ck_assert_int_eq(af_init("check_ipmi-detect"), 0);
	af_log_settings_default(&ls);
	ls.level = LOG_NOTICE;
	ls.blackbox = false;
	af_log_apply(&ls);
	fx->dir = make_temp_dir();
	snprintf(fx->cred, sizeof(fx->cred), "%s/shelf.cred", fx->dir);
	write_file(fx->cred, "username: admin\npassword: secret\n", 0600);
	fx->loop = qb_loop_create();
	ck_assert_ptr_nonnull(fx->loop);
	fx->fds = count_dir("/proc/self/fd");
	fx->threads = count_dir("/proc/self/task");
}

static void mfx_start(struct mfx *fx, unsigned managers, unsigned blades, const char *extra)
{
	mfx_init(fx);
	mfx_start_with(fx, mfx_config(fx, managers, blades, extra));
}

static void mfx_stop_module(struct mfx *fx)
{
	ipd_fini(fx->m);
	fx->m = NULL;
	/* every worker joined, every session closed, the pipe closed */
	ck_assert_int_eq(count_dir("/proc/self/task"), fx->threads);
	ck_assert_int_eq(count_dir("/proc/self/fd"), fx->fds);
	fk_lock();
	ck_assert_uint_eq(fk.closes, fk.opens[0] + fk.opens[1] + fk.inband_opens);
	fk_unlock();
}

static void mfx_stop(struct mfx *fx)
{
	if (fx->m != NULL)
		mfx_stop_module(fx);
	af_cfg_free(fx->cfg);
	af_cfg_free(fx->old_cfg);
	qb_loop_destroy(fx->loop);
	free(fx->ev);
	remove_temp_dir(fx->dir);
	af_fini();
}

static void stop_loop(void *data)
{
	qb_loop_stop(data);
}

static void run_loop(struct mfx *fx, unsigned ms)
{
	qb_loop_timer_handle th;

	ck_assert_int_eq(qb_loop_timer_add(fx->loop, QB_LOOP_HIGH, (uint64_t)ms * AF_NS_PER_MS,
	                                   fx->loop, stop_loop, &th),
	                 0);
	qb_loop_run(fx->loop);
}

#define WAIT_MS 8000
/* Runs the main loop until cond holds; fails after ms. */
#define WAIT_UNTIL(fx, cond, ms)                                                                   \
	do {                                                                                       \
		uint64_t dl_ = af_mono_ns() + (uint64_t)(ms)*AF_NS_PER_MS;                         \
		while (!(cond)) {                                                                  \
			ck_assert_msg(af_mono_ns() < dl_, "%s:%d: timed out waiting for %s",       \
			              __FILE__, __LINE__, #cond);                                  \
			run_loop(fx, 10);                                                          \
		}                                                                                  \
	} while (0)

/* Index of the first event at or after from with this kind, blade (-1:
 * any) and detail key=val (key NULL: any), or -1. */
static int find_ev(const struct mfx *fx, unsigned from, enum af_ev_kind kind, int blade,
                   const char *key, const char *val)
{
	for (unsigned i = from; i < fx->n_ev; i++) {
		const struct af_event *e = &fx->ev[i];
		const char *v;

		if (e->kind != kind || (blade >= 0 && e->blade != blade))
			continue;
		if (key != NULL && ((v = af_event_get(e, key)) == NULL || strcmp(v, val) != 0))
			continue;
		return (int)i;
	}
	return -1;
}

static unsigned count_ev(const struct mfx *fx, unsigned from, enum af_ev_kind kind, int blade)
{
	unsigned n = 0;

	for (unsigned i = from; i < fx->n_ev; i++)
		n += fx->ev[i].kind == kind && (blade < 0 || fx->ev[i].blade == blade);
	return n;
}

static const char *target_state(struct ipd *m, uint8_t addr)
{
	static struct ipd_target_view v[AF_MAX_BLADES + 1];
	unsigned n = ipd_target_views(m, v, AF_ARRAY_SIZE(v));

	for (unsigned i = 0; i < n; i++) {
		if (v[i].addr == addr)
			return v[i].state;
	}
	return "(none)";
}

static bool all_online(struct mfx *fx)
{
	struct ipd_target_view v[AF_MAX_BLADES + 1];
	unsigned n = ipd_target_views(fx->m, v, AF_ARRAY_SIZE(v));

	for (unsigned i = 0; i < n; i++) {
		if (strcmp(v[i].state, "ONLINE") != 0)
			return false;
	}
	return n > 0;
}

START_TEST(test_module_idle)
{
	struct mfx fx;
	struct af_config *cfg;
	struct af_module_env env = {.event_sink = on_event};
	struct af_module_status st;
	struct ipd_target_view tv[4];
	struct ipd_sensor_view sv[4];
	struct af_event ev[4];
	struct ipd_shmc_view shv;
	struct ipd *m = NULL;

	fk_shelf_setup();
	mfx_init(&fx);
	cfg = mfx_config(&fx, 1, 2, NULL);
	env.sink_opaque = &fx;
	env.cfg = cfg;
	ck_assert_int_eq(ipd_init_with(NULL, &env, &fk_factory), -EINVAL);
	/* no main loop: idle, says why */
	ck_assert_int_eq(ipd_init_with(&m, &env, &fk_factory), 0);
	ipd_describe(m, &st);
	ck_assert_str_eq(st.state, "idle");
	ck_assert_str_eq(st.detail, "no main loop");
	ck_assert_uint_eq(ipd_target_views(m, tv, 4), 0);
	ck_assert_uint_eq(ipd_sensor_views(m, -1, sv, 4), 0);
	ck_assert_uint_eq(ipd_sel_recent(m, -1, ev, 4), 0);
	ipd_shmc(m, &shv);
	ck_assert_int_eq(shv.active, -1);
	ipd_fini(m);
	/* credentials not loaded: idle */
	env.loop = fx.loop;
	cfg->shelf.cred_loaded = false;
	m = NULL;
	ck_assert_int_eq(ipd_init_with(&m, &env, &fk_factory), 0);
	ipd_describe(m, &st);
	ck_assert_str_eq(st.state, "idle");
	ck_assert_str_eq(st.detail, "no shelf credentials loaded");
	run_loop(&fx, 50);
	ipd_fini(m);
	ck_assert_uint_eq(fk.opens[0], 0);
	ck_assert_uint_eq(fx.n_ev, 0);
	fx.cfg = cfg;
	mfx_stop(&fx);
}
END_TEST

START_TEST(test_module_events)
{
	struct mfx fx;
	struct ipd_sensor_view sv[16];
	struct ipd_target_view tv[8];
	struct af_event recent[8];
	struct ipd_shmc_view shv;
	struct af_module_status st;
	unsigned n, mark;
	int i;
	char path[600];

	fk_shelf_setup();
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	/* first readings: every sensor reports itself once */
	WAIT_UNTIL(&fx,
	           count_ev(&fx, 0, AF_EV_SENSOR_DISCRETE, 1) == 1 &&
	                   count_ev(&fx, 0, AF_EV_SENSOR_DISCRETE, 2) == 1 &&
	                   count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 0) == 1 &&
	                   count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 1) == 1 &&
	                   count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2) == 1,
	           WAIT_MS);
	i = find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 1, "initial", "yes");
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(fx.ev[i].entity, "CPU Temp");
	ck_assert_str_eq(detail(&fx.ev[i], "reading"), "45.00");
	ck_assert_str_eq(detail(&fx.ev[i], "state"), "ok");
	ck_assert_str_eq(detail(&fx.ev[i], "unit"), "degrees_C");
	ck_assert_str_eq(detail(&fx.ev[i], "owner"), "0x82");
	ck_assert_str_eq(detail(&fx.ev[i], "sensor"), "0x01");
	i = find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, "initial", "yes");
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(detail(&fx.ev[i], "reading"), "50.00");
	i = find_ev(&fx, 0, AF_EV_SENSOR_DISCRETE, 1, "initial", "yes");
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(fx.ev[i].entity, "FRU0 Hot Swap");
	ck_assert_str_eq(detail(&fx.ev[i], "offsets"), "M4");
	ck_assert_str_eq(detail(&fx.ev[i], "asserted"), "0x0010");
	ck_assert_str_eq(detail(&fx.ev[i], "type"), "hot-swap");
	/* the shelf manager reads its own sensor, not the blade's record in its
	 * repository */
	i = find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 0, NULL, NULL);
	ck_assert_str_eq(fx.ev[i].entity, "Shelf Temp");
	ck_assert_str_eq(detail(&fx.ev[i], "owner"), "0x20");
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SENSOR_DISCRETE, 0), 0);
	/* a steady ok reading is not repeated */
	mark = fx.n_ev;
	run_loop(&fx, 300);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 1), 0);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_SENSOR_DISCRETE, -1), 0);

	/* a crossing: upper critical, repeated while it lasts */
	mark = fx.n_ev;
	fk_lock();
	fk_sensor_of(fk_ctl_of(0x82), 1)->raw = 97;
	fk_sensor_of(fk_ctl_of(0x82), 1)->status = 0x18;
	fk_unlock();
	WAIT_UNTIL(&fx, count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 1) >= 2, WAIT_MS);
	i = find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 1, NULL, NULL);
	ck_assert_str_eq(detail(&fx.ev[i], "state"), "upper-critical");
	ck_assert_str_eq(detail(&fx.ev[i], "severity"), "2");
	ck_assert_str_eq(detail(&fx.ev[i], "previous"), "ok");
	ck_assert_str_eq(detail(&fx.ev[i], "reading"), "97.00");
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2), 0);
	/* a hot-swap transition M4 -> M6 and an extra offset */
	mark = fx.n_ev;
	fk_lock();
	fk_sensor_of(fk_ctl_of(0x84), 2)->asserted = 0x0040 | 0x0080;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_SENSOR_DISCRETE, 2, NULL, NULL) >= 0, WAIT_MS);
	i = find_ev(&fx, mark, AF_EV_SENSOR_DISCRETE, 2, NULL, NULL);
	ck_assert_str_eq(detail(&fx.ev[i], "offsets"), "M6,M7");
	ck_assert_str_eq(detail(&fx.ev[i], "previous"), "0x0010");
	ck_assert_str_eq(detail(&fx.ev[i], "changed"), "0x00d0");

	/* SEL records: history was not news; new ones go out with the blade of
	 * their generator and the name of their sensor */
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SEL_RECORD, -1), 0);
	WAIT_UNTIL(&fx, fk_sel_polls(0) >= 2, WAIT_MS);
	mark = fx.n_ev;
	fk_lock();
	fk_sel_add(0x84, 0xF0, 0x02, 0x6F, 0xA6, 0x14, 0x00);
	fk_sel_add(0x82, 0x0C, 0x07, 0x6F, 0xA1, 0xFF, 0xFF);
	fk_sel_add(0x41, 0x12, 0x01, 0x6F, 0x00, 0xFF, 0xFF); /* BIOS */
	fk_sel_add(0x83, 0x12, 0x02, 0x6F, 0x00, 0xFF, 0xFF); /* remote console sw */
	fk_unlock();
	WAIT_UNTIL(&fx, count_ev(&fx, mark, AF_EV_SEL_RECORD, -1) == 4, WAIT_MS);
	i = find_ev(&fx, mark, AF_EV_SEL_RECORD, -1, "generator", "0x84");
	ck_assert_int_eq(fx.ev[i].blade, 2);
	ck_assert_str_eq(fx.ev[i].entity, "FRU0 Hot Swap");
	ck_assert_str_eq(detail(&fx.ev[i], "state"), "M6");
	ck_assert_str_eq(detail(&fx.ev[i], "previous"), "M4");
	i = find_ev(&fx, mark, AF_EV_SEL_RECORD, -1, "generator", "0x82");
	ck_assert_int_eq(fx.ev[i].blade, 1);
	ck_assert_str_eq(detail(&fx.ev[i], "meaning"), "uncorrectable-ecc");
	i = find_ev(&fx, mark, AF_EV_SEL_RECORD, -1, "generator", "0x41");
	ck_assert_int_eq(fx.ev[i].blade, 0);
	/* system software ids (bit 0 set) are not IPMB addresses: 0x83 is not
	 * the IPMC at 0x82 */
	i = find_ev(&fx, mark, AF_EV_SEL_RECORD, -1, "generator", "0x83");
	ck_assert_int_eq(fx.ev[i].blade, 0);
	ck_assert_str_eq(fx.ev[i].entity, "");

	/* what atca-ftctl sees */
	n = ipd_target_views(fx.m, tv, AF_ARRAY_SIZE(tv));
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(tv[0].slot, 0);
	ck_assert_uint_eq(tv[0].addr, 0x20);
	ck_assert_int_eq(tv[1].slot, 1);
	ck_assert_uint_eq(tv[1].addr, 0x82);
	ck_assert_int_eq(tv[2].slot, 2);
	ck_assert_uint_eq(tv[2].addr, 0x84);
	for (unsigned k = 0; k < n; k++) {
		ck_assert_str_eq(tv[k].state, "ONLINE");
		ck_assert_str_eq(tv[k].via, "fake RMCP+ " FK_MGR0);
		ck_assert_str_eq(tv[k].error, "");
		ck_assert_uint_gt(tv[k].reads, 0);
		ck_assert_uint_eq(tv[k].failures, 0);
		ck_assert_uint_gt(tv[k].since_ns, 0);
	}
	ck_assert_uint_eq(tv[0].sensors, 1);
	ck_assert_uint_eq(tv[1].sensors, 2);
	ck_assert_uint_eq(ipd_target_views(fx.m, tv, 1), 1);
	n = ipd_sensor_views(fx.m, 1, sv, AF_ARRAY_SIZE(sv));
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(sv[0].name, "CPU Temp");
	ck_assert_str_eq(sv[0].value, "97.00");
	ck_assert_str_eq(sv[0].unit, "degrees_C");
	ck_assert_str_eq(sv[0].type, "temperature");
	ck_assert_str_eq(sv[0].state, "upper-critical");
	ck_assert_str_eq(sv[1].name, "FRU0 Hot Swap");
	ck_assert_str_eq(sv[1].value, "0x0010");
	ck_assert_str_eq(sv[1].state, "M4");
	ck_assert_str_eq(sv[1].unit, "");
	ck_assert_int_eq(sv[1].slot, 1);
	ck_assert_uint_eq(sv[1].owner, 0x82);
	n = ipd_sensor_views(fx.m, 0, sv, AF_ARRAY_SIZE(sv));
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(sv[0].name, "Shelf Temp");
	ck_assert_str_eq(sv[0].value, "30.00");
	ck_assert_uint_eq(ipd_sensor_views(fx.m, -1, sv, AF_ARRAY_SIZE(sv)), 5);
	ck_assert_uint_eq(ipd_sensor_views(fx.m, -1, sv, 3), 3);
	ck_assert_uint_eq(ipd_sensor_views(fx.m, 9, sv, AF_ARRAY_SIZE(sv)), 0);
	ck_assert_uint_eq(ipd_sel_recent(fx.m, -1, recent, AF_ARRAY_SIZE(recent)), 4);
	ck_assert_str_eq(detail(&recent[0], "generator"), "0x84"); /* oldest first */
	ck_assert_uint_eq(ipd_sel_recent(fx.m, 2, recent, AF_ARRAY_SIZE(recent)), 1);
	ck_assert_str_eq(detail(&recent[0], "state"), "M6");
	ck_assert_uint_eq(ipd_sel_recent(fx.m, 0, recent, AF_ARRAY_SIZE(recent)), 2);
	ck_assert_uint_eq(ipd_sel_recent(fx.m, -1, recent, 2), 2);
	ck_assert_str_eq(detail(&recent[1], "generator"), "0x83"); /* the newest kept */
	ipd_shmc(fx.m, &shv);
	ck_assert_int_eq(shv.active, 0);
	ck_assert_str_eq(shv.address, FK_MGR0);
	ck_assert_uint_eq(shv.port, 623);
	ck_assert_uint_eq(shv.switchovers, 0);
	ipd_describe(fx.m, &st);
	ck_assert_str_eq(st.state, "running");
	ck_assert_msg(strstr(st.detail, "3 of 3 controllers online") != NULL, "%s", st.detail);
	/* no reachability noise on a healthy shelf */
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_IPMC_UNREACHABLE, -1), 0);
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_IPMC_REACHABLE, -1), 0);
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SHMC_SWITCHOVER, -1), 0);

	mfx_stop_module(&fx);
	/* the SDR caches and the SEL position are in the state directory */
	snprintf(path, sizeof(path), "%s/sdr-0x82.cache", fx.dir);
	ck_assert_int_eq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/sdr-0x20.cache", fx.dir);
	ck_assert_int_eq(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/sel-" FK_MGR0 "-623.cursor", fx.dir);
	{
		struct ipd_sel_cursor c;

		ck_assert_int_eq(ipd_cursor_load(path, &c), 0);
		ck_assert(c.positioned && c.have_last);
		ck_assert_uint_eq(c.last_id, sel_id(fk.n_sel - 1));
	}
	ck_assert(no_tmp_files(fx.dir));
	mfx_stop(&fx);
}
END_TEST

START_TEST(test_module_caches)
{
	struct mfx fx;
	struct af_config *cfg2;
	unsigned sdr_reads[3];
	int i;

	fk_shelf_setup();
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, -1) >= 3, WAIT_MS);
	mfx_stop_module(&fx);
	for (unsigned k = 0; k < 3; k++)
		sdr_reads[k] = fk.ctl[k].n_get_sdr;
	ck_assert_uint_gt(sdr_reads[1], 0);

	/* the second start: sensors from the caches, not one SDR read; SEL
	 * records logged while down are delivered, the older ones are not */
	fk_lock();
	fk_sel_add(0x82, 0x07, 0x05, 0x6F, 0x01, 0xFF, 0xFF);
	fk_sel_add(0x84, 0x07, 0x05, 0x6F, 0x00, 0xFF, 0xFF);
	fk_unlock();
	fx.n_ev = 0;
	cfg2 = mfx_config(&fx, 1, 2, NULL);
	fx.old_cfg = fx.cfg;
	mfx_start_with(&fx, cfg2);
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, -1) >= 3, WAIT_MS);
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SEL_RECORD, -1) >= 2, WAIT_MS);
	for (unsigned k = 0; k < 3; k++)
		ck_assert_uint_eq(fk.ctl[k].n_get_sdr, sdr_reads[k]);
	i = find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 1, NULL, NULL);
	ck_assert_str_eq(fx.ev[i].entity, "CPU Temp");
	ck_assert_str_eq(detail(&fx.ev[i], "reading"), "45.00");
	i = find_ev(&fx, 0, AF_EV_SEL_RECORD, 1, NULL, NULL);
	ck_assert_str_eq(detail(&fx.ev[i], "meaning"), "thermal-trip");
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SEL_RECORD, -1), 2);
	mfx_stop_module(&fx);

	/* the SDRs changed: the cache is rebuilt; a damaged cache too */
	fk.ctl[1].sdr_change++;
	{
		char path[600];

		snprintf(path, sizeof(path), "%s/sdr-0x84.cache", fx.dir);
		write_file(path, "ATSDR1\x01\x02", 0600);
	}
	fx.n_ev = 0;
	af_cfg_free(fx.old_cfg);
	fx.old_cfg = fx.cfg;
	mfx_start_with(&fx, mfx_config(&fx, 1, 2, NULL));
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, -1) >= 3, WAIT_MS);
	ck_assert_uint_gt(fk.ctl[1].n_get_sdr, sdr_reads[1]);
	ck_assert_uint_gt(fk.ctl[2].n_get_sdr, sdr_reads[2]);
	ck_assert_uint_eq(fk.ctl[0].n_get_sdr, sdr_reads[0]);
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SEL_RECORD, -1), 0);
	mfx_stop_module(&fx);

	/* same change indicator, other firmware (a blade swapped while
	 * atca-ftd was down): the cache is not trusted */
	for (unsigned k = 0; k < 3; k++)
		sdr_reads[k] = fk.ctl[k].n_get_sdr;
	fk.ctl[2].fw_minor++;
	fx.n_ev = 0;
	af_cfg_free(fx.old_cfg);
	fx.old_cfg = fx.cfg;
	mfx_start_with(&fx, mfx_config(&fx, 1, 2, NULL));
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, -1) >= 3, WAIT_MS);
	ck_assert_uint_gt(fk.ctl[2].n_get_sdr, sdr_reads[2]);
	ck_assert_uint_eq(fk.ctl[1].n_get_sdr, sdr_reads[1]);
	mfx_stop(&fx);
}
END_TEST

/* A blade fenced for ECC and repaired while this daemon was down (its own
 * blade, say): the backlog's ECC record is posted marked superseded by the
 * M4 that follows it in the log, so that the failure model does not raise
 * it again; what came after that M4 is news as usual. */
START_TEST(test_module_sel_backlog_superseded)
{
	struct mfx fx;
	static const uint8_t walk[] = {6, 1, 2, 3, 4};
	char path[600];
	struct ipd_sel_cursor c;
	uint16_t last = 0;
	int i;

	fk_shelf_setup();
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, -1) >= 3, WAIT_MS);
	WAIT_UNTIL(&fx, fk_sel_polls(0) >= 2, WAIT_MS);
	mfx_stop_module(&fx);

	fk_lock();
	fk_sel_add(0x84, 0x0C, 0x08, 0x6F, 0x01, 0xFF, 0xFF); /* uncorrectable ECC */
	for (unsigned k = 0; k < sizeof(walk); k++)
		fk_sel_add(0x84, 0xF0, 0x09, 0x6F, walk[k], 0xFF, 0x00);
	fk_sel_add(0x82, 0x07, 0x05, 0x6F, 0x01, 0xFF, 0xFF);        /* blade 1: thermal trip */
	last = fk_sel_add(0x84, 0x07, 0x06, 0x6F, 0x00, 0xFF, 0xFF); /* IERR after M4 */
	fk_unlock();
	fx.n_ev = 0;
	fx.old_cfg = fx.cfg;
	mfx_start_with(&fx, mfx_config(&fx, 1, 2, NULL));
	WAIT_UNTIL(&fx, count_ev(&fx, 0, AF_EV_SEL_RECORD, -1) >= 8, WAIT_MS);
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SEL_RECORD, -1), 8);
	i = find_ev(&fx, 0, AF_EV_SEL_RECORD, 2, NULL, NULL);
	ck_assert_int_ge(i, 0);
	ck_assert_str_eq(detail(&fx.ev[i], "meaning"), "uncorrectable-ecc");
	ck_assert_msg(strncmp(detail(&fx.ev[i], "superseded"), "M4 at SEL time ", 15) == 0, "%s",
	              detail(&fx.ev[i], "superseded"));
	for (int k = i + 1; k < (int)fx.n_ev; k++) {
		if (fx.ev[k].kind == AF_EV_SEL_RECORD)
			ck_assert_msg(detail(&fx.ev[k], "superseded")[0] == '(', "event %d: %s", k,
			              detail(&fx.ev[k], "meaning"));
	}
	mfx_stop_module(&fx);
	/* the position is past the whole backlog once it was posted */
	snprintf(path, sizeof(path), "%s/sel-" FK_MGR0 "-623.cursor", fx.dir);
	ck_assert_int_eq(ipd_cursor_load(path, &c), 0);
	ck_assert_uint_eq(c.last_id, last);
	mfx_stop(&fx);
}
END_TEST

/* A threshold sensor is reported at every reading while it is not ok and
 * for IPD_OK_REPEATS ok readings after that (the failure model counts
 * readings: N of M to raise, hysteresis to clear), then no more. */
START_TEST(test_module_threshold_repeats)
{
	struct mfx fx;
	unsigned mark, n;
	int i;

	fk_shelf_setup();
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL) >= 0, WAIT_MS);
	run_loop(&fx, 300);
	mark = fx.n_ev;
	fk_lock();
	fk_sensor_of(fk_ctl_of(0x84), 1)->status = 0x10;
	fk_unlock();
	WAIT_UNTIL(&fx, count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2) >= 4, WAIT_MS);
	i = find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL);
	ck_assert_ptr_null(af_event_get(&fx.ev[i], "repeat")); /* the change itself */
	ck_assert_int_ge(find_ev(&fx, (unsigned)i + 1, AF_EV_SENSOR_THRESHOLD, 2, "repeat", "yes"),
	                 0);
	mark = fx.n_ev;
	fk_lock();
	fk_sensor_of(fk_ctl_of(0x84), 1)->status = 0;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2, "state", "ok") >= 0, WAIT_MS);
	mark = (unsigned)find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2, "state", "ok");
	WAIT_UNTIL(&fx, count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2) >= 1 + IPD_OK_REPEATS,
	           WAIT_MS);
	run_loop(&fx, 600); /* six more readings: silence */
	n = count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2);
	ck_assert_uint_eq(n, 1 + IPD_OK_REPEATS);
	mfx_stop(&fx);
}
END_TEST

/* An IPMC that stops answering is reported unreachable once, and reachable
 * once it answers again; the other blade goes on meanwhile. */
static const enum fk_mode unreachable_modes[] = {FK_NAK_CC, FK_NAK_ERR, FK_NO_ANSWER, FK_TIMEOUT};

START_TEST(test_module_unreachable)
{
	struct mfx fx;
	enum fk_mode mode = unreachable_modes[_i];
	unsigned mark, sessions;
	int i;

	fk_shelf_setup();
	/* blade 1 reads critical: an event at every reading */
	fk_sensor_of(fk_ctl_of(0x82), 1)->status = 0x10;
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL) >= 0, WAIT_MS);
	mark = fx.n_ev;
	fk_lock();
	fk_ctl_of(0x84)->mode = mode;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, 2, NULL, NULL) >= 0, WAIT_MS);
	i = find_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, 2, NULL, NULL);
	ck_assert_str_eq(fx.ev[i].entity, "IPMC 0x84");
	ck_assert_str_eq(detail(&fx.ev[i], "ipmc"), "0x84");
	ck_assert_str_ne(detail(&fx.ev[i], "error"), "(none)");
	ck_assert_str_ne(detail(&fx.ev[i], "retry_ms"), "0");
	ck_assert_str_eq(target_state(fx.m, 0x84), "UNREACHABLE");
	/* it stays unreachable, quietly, retried at the backoff pace; the
	 * other blade and the shelf manager go on */
	mark = fx.n_ev;
	fk_lock();
	sessions = fk.opens[0];
	fk_unlock();
	{
		unsigned c0 = fk_ctl_of(0x84)->n_cmds;

		run_loop(&fx, 300);
		ck_assert_uint_le(fk_ctl_of(0x84)->n_cmds - c0, 8);
	}
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, -1), 0);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_IPMC_REACHABLE, -1), 0);
	ck_assert_uint_ge(count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 1), 2);
	ck_assert_str_eq(target_state(fx.m, 0x82), "ONLINE");
	ck_assert_str_eq(target_state(fx.m, 0x20), "ONLINE");
	fk_lock();
	ck_assert_uint_le(fk.opens[0] - sessions, 2);
	fk_unlock();
	{
		struct af_module_status st;

		ipd_describe(fx.m, &st);
		ck_assert_str_eq(st.state, "degraded");
	}
	/* back */
	mark = fx.n_ev;
	fk_lock();
	fk_ctl_of(0x84)->mode = FK_OK;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_IPMC_REACHABLE, 2, NULL, NULL) >= 0, WAIT_MS);
	WAIT_UNTIL(&fx, strcmp(target_state(fx.m, 0x84), "ONLINE") == 0, WAIT_MS);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_IPMC_REACHABLE, -1), 1);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, -1), 0);
	{
		struct ipd_target_view tv[3];

		ck_assert_uint_eq(ipd_target_views(fx.m, tv, 3), 3);
		ck_assert_str_eq(tv[2].error, "");
		ck_assert_uint_gt(tv[2].failures, 0);
	}
	/* readings resume */
	mark = fx.n_ev;
	fk_lock();
	fk_sensor_of(fk_ctl_of(0x84), 1)->status = 0x01;
	fk_unlock();
	WAIT_UNTIL(&fx,
	           find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2, "state", "lower-non-critical") >=
	                   0,
	           WAIT_MS);
	mfx_stop(&fx);
}
END_TEST

START_TEST(test_module_slow_ipmc)
{
	struct mfx fx;
	unsigned r0;
	uint64_t t0;

	fk_shelf_setup();
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL) >= 0, WAIT_MS);
	/* blade 2 takes 600 ms per answer */
	fk_lock();
	fk_ctl_of(0x84)->mode = FK_SLOW;
	fk_ctl_of(0x84)->delay_ms = 600;
	fk_ctl_of(0x82)->max_reading_gap_ns = 0;
	fk_ctl_of(0x82)->last_reading_ns = 0;
	r0 = fk_ctl_of(0x82)->n_readings;
	fk_unlock();
	t0 = af_mono_ns();
	run_loop(&fx, 1000);
	fk_lock();
	/* blade 1 was read at its own pace (2 sensors every 100 ms), never
	 * waiting for blade 2 */
	ck_assert_uint_ge(fk_ctl_of(0x82)->n_readings - r0, 6);
	ck_assert_msg(fk_ctl_of(0x82)->max_reading_gap_ns < 450 * AF_NS_PER_MS,
	              "blade 1 waited %llu ms",
	              (unsigned long long)(fk_ctl_of(0x82)->max_reading_gap_ns / AF_NS_PER_MS));
	fk_unlock();
	ck_assert_uint_ge(af_mono_ns() - t0, 1000 * AF_NS_PER_MS);
	/* and blade 2, slow but answering, is not unreachable */
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_IPMC_UNREACHABLE, -1), 0);
	mfx_stop(&fx);
}
END_TEST

START_TEST(test_module_switchover)
{
	struct mfx fx;
	struct ipd_shmc_view shv;
	struct ipd_target_view tv[3];
	unsigned mark, cmds1;
	int i;
	char path[600];

	fk_shelf_setup();
	mfx_start(&fx, 2, 2, NULL);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL) >= 0, WAIT_MS);
	ck_assert_uint_eq(fk.opens[1], 0);
	/* blade 2 stops answering before the switchover */
	mark = fx.n_ev;
	fk_lock();
	fk_ctl_of(0x84)->mode = FK_NAK_CC;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, 2, NULL, NULL) >= 0, WAIT_MS);

	/* the first shelf manager dies */
	mark = fx.n_ev;
	fk_lock();
	fk.mgr_dead[0] = true;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_SHMC_SWITCHOVER, 0, NULL, NULL) >= 0, WAIT_MS);
	i = find_ev(&fx, mark, AF_EV_SHMC_SWITCHOVER, 0, NULL, NULL);
	ck_assert_str_eq(detail(&fx.ev[i], "from"), FK_MGR0 ":623");
	ck_assert_str_eq(detail(&fx.ev[i], "to"), FK_MGR1 ":623");
	ipd_shmc(fx.m, &shv);
	ck_assert_int_eq(shv.active, 1);
	ck_assert_str_eq(shv.address, FK_MGR1);
	ck_assert_uint_eq(shv.switchovers, 1);
	/* the blades follow: their readings now go through the second manager */
	WAIT_UNTIL(&fx,
	           ipd_target_views(fx.m, tv, 3) == 3 &&
	                   strcmp(tv[1].via, "fake RMCP+ " FK_MGR1) == 0 &&
	                   strcmp(tv[1].state, "ONLINE") == 0,
	           WAIT_MS);
	fk_lock();
	cmds1 = fk_ctl_of(0x82)->n_readings;
	fk_sensor_of(fk_ctl_of(0x82), 1)->status = 0x08;
	fk_unlock();
	WAIT_UNTIL(&fx,
	           find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 1, "state", "upper-non-critical") >=
	                   0,
	           WAIT_MS);
	ck_assert_uint_gt(fk_ctl_of(0x82)->n_readings, cmds1);
	/* the shelf manager as a target never was unreachable: the other one
	 * answered at once */
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, 0), 0);
	/* blade 2 comes back behind the new manager: reachable again */
	mark = fx.n_ev;
	fk_lock();
	fk_ctl_of(0x84)->mode = FK_OK;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_IPMC_REACHABLE, 2, NULL, NULL) >= 0, WAIT_MS);
	/* SEL records go on, through the second manager (once it has read
	 * where that manager's SEL ends) */
	WAIT_UNTIL(&fx, fk_sel_polls(1) >= 2, WAIT_MS);
	mark = fx.n_ev;
	fk_lock();
	fk_sel_add(0x82, 0x07, 0x05, 0x6F, 0x00, 0xFF, 0xFF);
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_SEL_RECORD, 1, "meaning", "ierr") >= 0, WAIT_MS);

	/* both die: the shelf manager is unreachable, the blades wait for it
	 * quietly; one comes back: all go on */
	mark = fx.n_ev;
	fk_lock();
	fk.mgr_dead[1] = true;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, 0, NULL, NULL) >= 0, WAIT_MS);
	WAIT_UNTIL(&fx, strcmp(target_state(fx.m, 0x82), "WAITING_SHMC") == 0, WAIT_MS);
	ipd_shmc(fx.m, &shv);
	ck_assert_int_eq(shv.active, -1);
	run_loop(&fx, 300);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_IPMC_UNREACHABLE, -1), 1);
	mark = fx.n_ev;
	fk_lock();
	fk.mgr_dead[0] = false;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_IPMC_REACHABLE, 0, NULL, NULL) >= 0, WAIT_MS);
	WAIT_UNTIL(&fx, all_online(&fx), 2000);
	ipd_shmc(fx.m, &shv);
	ck_assert_int_eq(shv.active, 0);
	ck_assert_uint_eq(shv.switchovers, 1); /* from "none" is not a switchover */
	mfx_stop_module(&fx);
	/* one SEL position per shelf manager */
	snprintf(path, sizeof(path), "%s/sel-" FK_MGR1 "-623.cursor", fx.dir);
	ck_assert_int_eq(access(path, F_OK), 0);
	mfx_stop(&fx);
}
END_TEST

/* Controllers that answer nonsense: logged, never fatal, never a hot loop,
 * never "unreachable" (they do answer). */
static const enum fk_mode garbage_modes[] = {FK_SHORT, FK_CC_C1,       FK_CC_CB,
                                             FK_CC_CA, FK_BAD_SDR_LEN, FK_CANCEL_RESV};

START_TEST(test_module_garbage)
{
	struct mfx fx;
	enum fk_mode mode = garbage_modes[_i];
	unsigned c0;

	fk_shelf_setup();
	fk_ctl_of(0x84)->mode = mode;
	fk_sensor_of(fk_ctl_of(0x84), 2)->asserted = 0x0020;
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 1, NULL, NULL) >= 0, WAIT_MS);
	WAIT_UNTIL(&fx, strcmp(target_state(fx.m, 0x84), "ONLINE") == 0, WAIT_MS);
	run_loop(&fx, 100);
	fk_lock();
	c0 = fk_ctl_of(0x84)->n_cmds;
	fk_unlock();
	run_loop(&fx, 300);
	fk_lock();
	/* at the sensor pace: a few SDR attempts or readings per 100 ms */
	ck_assert_msg(fk_ctl_of(0x84)->n_cmds - c0 < 40, "%u commands in 300 ms",
	              fk_ctl_of(0x84)->n_cmds - c0);
	fk_unlock();
	ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_IPMC_UNREACHABLE, -1), 0);
	ck_assert_str_eq(target_state(fx.m, 0x84), "ONLINE");
	ck_assert_uint_gt(count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 1), 0);
	if (mode == FK_BAD_SDR_LEN || mode == FK_CANCEL_RESV) {
		/* the good records are still known: the hot-swap sensor reads */
		WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_DISCRETE, 2, "offsets", "M5") >= 0,
		           WAIT_MS);
		if (mode == FK_CANCEL_RESV)
			ck_assert_int_ge(find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL), 0);
		else /* the record claiming 255 bytes is skipped, not read past */
			ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2), 0);
	} else {
		ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2), 0);
		ck_assert_uint_eq(count_ev(&fx, 0, AF_EV_SENSOR_DISCRETE, 2), 0);
	}
	if (mode == FK_BAD_SDR_LEN) { /* its SDRs are read: nothing more to see */
		mfx_stop(&fx);
		return;
	}
	/* it gets well: sensors appear */
	fk_lock();
	fk_ctl_of(0x84)->mode = FK_OK;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL) >= 0, WAIT_MS);
	mfx_stop(&fx);
}
END_TEST

START_TEST(test_module_inband)
{
	struct mfx fx;
	int i;

	fk_shelf_setup();
	fk.inband_err = -ENODEV;
	mfx_start(&fx, 1, 2, " inband_device: /dev/fake-ipmi-0x84\n");
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_IPMC_UNREACHABLE, 2, NULL, NULL) >= 0, WAIT_MS);
	i = find_ev(&fx, 0, AF_EV_IPMC_UNREACHABLE, 2, NULL, NULL);
	ck_assert_msg(strstr(detail(&fx.ev[i], "error"), "no such device") != NULL, "%s",
	              detail(&fx.ev[i], "error"));
	fk_lock();
	fk.inband_err = 0;
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_IPMC_REACHABLE, 2, NULL, NULL) >= 0, WAIT_MS);
	/* in-band: the local controller's repository, not device SDRs */
	WAIT_UNTIL(&fx, find_ev(&fx, 0, AF_EV_SENSOR_THRESHOLD, 2, NULL, NULL) >= 0, WAIT_MS);
	{
		struct ipd_target_view tv[3];

		ck_assert_uint_eq(ipd_target_views(fx.m, tv, 3), 3);
		ck_assert_str_eq(tv[2].via, "fake in-band /dev/fake-ipmi-0x84");
	}
	mfx_stop(&fx);
}
END_TEST

START_TEST(test_module_reconfigure)
{
	struct mfx fx;
	struct ipd_target_view tv[4];
	struct af_config *one;
	unsigned mark;

	fk_shelf_setup();
	mfx_start(&fx, 1, 2, NULL);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	ck_assert_int_eq(ipd_reconfigure(fx.m, NULL), -EINVAL);
	/* down to one blade: workers restarted on the new configuration */
	one = mfx_config(&fx, 1, 1, NULL);
	ck_assert_int_eq(ipd_reconfigure(fx.m, one), 0);
	mark = fx.n_ev;      /* what the old workers posted went out in reconfigure */
	af_cfg_free(fx.cfg); /* the module no longer uses it */
	fx.cfg = one;
	ck_assert_uint_eq(ipd_target_views(fx.m, tv, 4), 2);
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	fk_lock();
	fk_sensor_of(fk_ctl_of(0x82), 1)->status = 0x02;
	fk_unlock();
	WAIT_UNTIL(&fx,
	           find_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 1, "state", "lower-critical") >= 0,
	           WAIT_MS);
	ck_assert_uint_eq(count_ev(&fx, mark, AF_EV_SENSOR_THRESHOLD, 2), 0);
	/* sensor names are learnt again: SEL records still get them */
	fk_lock();
	fk_sel_add(0x82, 0x01, 0x01, 0x01, 0x52, 3, 5);
	fk_unlock();
	WAIT_UNTIL(&fx, find_ev(&fx, mark, AF_EV_SEL_RECORD, 1, NULL, NULL) >= 0, WAIT_MS);
	ck_assert_str_eq(fx.ev[find_ev(&fx, mark, AF_EV_SEL_RECORD, 1, NULL, NULL)].entity,
	                 "CPU Temp");
	/* and back to two, several times in a row */
	for (int k = 0; k < 3; k++) {
		struct af_config *two = mfx_config(&fx, 1, 2, NULL);

		ck_assert_int_eq(ipd_reconfigure(fx.m, two), 0);
		af_cfg_free(fx.cfg);
		fx.cfg = two;
		ck_assert_uint_eq(ipd_target_views(fx.m, tv, 4), 3);
	}
	WAIT_UNTIL(&fx, all_online(&fx), WAIT_MS);
	mfx_stop(&fx);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ipmi_detect");

	add_module_contract_tests(s);
	/* decoders: rejects first */
	add_tcase(s, test_sdr_decode_rejects, 10);
	add_tcase(s, test_sdr_decode_full, 10);
	add_tcase(s, test_sdr_decode_compact_and_others, 10);
	add_tcase(s, test_sdr_convert, 10);
	add_tcase(s, test_threshold_state, 10);
	add_tcase(s, test_unit_and_type_names, 10);
	add_tcase(s, test_sel_decode_rejects, 10);
	add_tcase(s, test_sel_decode, 10);
	add_tcase(s, test_offset_names, 10);
	add_tcase(s, test_sel_meaning, 10);
	add_tcase(s, test_sel_to_event, 10);
	add_tcase(s, test_blade_addresses, 10);
	add_tcase(s, test_cursor_rejects, 10);
	add_tcase(s, test_cursor_roundtrip, 10);
	add_tcase(s, test_cursor_save_failures, 10);
	add_tcase(s, test_target_fsm, 10);
	/* reading the SEL */
	add_tcase(s, test_sel_supersede, 10);
	add_tcase(s, test_sel_poll_errors, 10);
	add_tcase(s, test_sel_poll_incremental, 10);
	add_tcase(s, test_sel_poll_same_second, 10);
	add_tcase(s, test_sel_poll_adopt, 10);
	add_tcase(s, test_sel_poll_empty_start, 10);
	add_tcase(s, test_sel_poll_batch_limit, 10);
	add_tcase(s, test_sel_poll_cleared, 10);
	add_tcase(s, test_sel_poll_overflow, 10);
	add_tcase(s, test_sel_poll_wrap, 10);
	add_tcase(s, test_sel_poll_garbage, 10);
	/* the module and its workers */
	add_tcase(s, test_module_idle, 20);
	add_tcase(s, test_module_events, 30);
	add_tcase(s, test_module_threshold_repeats, 30);
	add_tcase(s, test_module_caches, 30);
	add_tcase(s, test_module_sel_backlog_superseded, 30);
	{
		TCase *tc = tcase_create("test_module_unreachable");

		tcase_add_loop_test(tc, test_module_unreachable, 0,
		                    (int)AF_ARRAY_SIZE(unreachable_modes));
		tcase_set_timeout(tc, 30);
		suite_add_tcase(s, tc);
		tc = tcase_create("test_module_garbage");
		tcase_add_loop_test(tc, test_module_garbage, 0, (int)AF_ARRAY_SIZE(garbage_modes));
		tcase_set_timeout(tc, 30);
		suite_add_tcase(s, tc);
	}
	add_tcase(s, test_module_slow_ipmc, 30);
	add_tcase(s, test_module_switchover, 30);
	add_tcase(s, test_module_inband, 30);
	add_tcase(s, test_module_reconfigure, 30);
	return run_suite(s);
}
