/*
 * libFuzzer target: the bytes a shelf manager or an IPMC sends us. The input
 * is decoded as one SDR record (and converted), every 16-byte slice of it as
 * a SEL record (meaning, event, and the event's text form read back), and
 * its first bytes as a threshold status and a sensor type / reading type /
 * offset triple.
 *
 * Built from ipd_sdr.c and ipd_sel.c. When ipd_cursor.c is linked in too,
 * the input also drives the SEL reader (ipd_sel_poll) through a transport
 * that answers with slices of it, and is read as a cursor file: those two
 * are weak references, skipped when absent.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "af_event.h"
#include "ipd_int.h"

#pragma weak ipd_sel_poll
#pragma weak ipd_cursor_load

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static void check_text(const char *s, size_t max)
{
	size_t n = strnlen(s, max);

	CHECK(n < max);
	for (size_t i = 0; i < n; i++)
		CHECK(s[i] >= 0x20 && s[i] < 0x7f);
}

static void fuzz_sdr(const uint8_t *data, size_t size, struct ipd_sensor *s)
{
	int rc = ipd_sdr_decode(data, size, s);
	double v;

	CHECK(rc == 1 || rc == 0 || rc == -EINVAL);
	if (rc != 1) {
		s->name[0] = '\0';
		return;
	}
	/* the header's length decides: the same record, padded or not */
	{
		struct ipd_sensor again;
		size_t len = (size_t)data[4] + 5;

		CHECK(len <= size);
		CHECK(ipd_sdr_decode(data, len, &again) == 1);
		CHECK(memcmp(s, &again, sizeof(again)) == 0);
		if (len > 5)
			CHECK(ipd_sdr_decode(data, len - 1, &again) == -EINVAL);
	}
	check_text(s->name, sizeof(s->name));
	CHECK(s->name[0] != '\0');
	CHECK(s->cls == (s->reading_type == 0x01 ? IPD_SENSOR_THRESHOLD : IPD_SENSOR_DISCRETE));
	CHECK(s->m >= -512 && s->m <= 511 && s->b >= -512 && s->b <= 511);
	CHECK(s->r_exp >= -8 && s->r_exp <= 7 && s->b_exp >= -8 && s->b_exp <= 7);
	for (unsigned raw = 0; raw < 256; raw += 51) {
		if (ipd_sdr_convert(s, (uint8_t)raw, &v))
			CHECK(isfinite(v));
	}
	CHECK(ipd_unit_name(s->unit) != NULL);
	CHECK(ipd_sensor_type_name(s->type) != NULL);
	for (unsigned off = 0; off < 16; off++) {
		const char *n = ipd_offset_name(s->type, s->reading_type, off);

		if (n != NULL)
			check_text(n, 64);
	}
}

static void fuzz_sel(const uint8_t *rec16, const char *name, int blade)
{
	struct ipd_sel_rec r;
	struct af_event ev, back;
	char text[AF_EV_TEXT_MAX], again[AF_EV_TEXT_MAX];
	const char *meaning;

	CHECK(ipd_sel_decode(rec16, 16, &r) == 0);
	CHECK(memcmp(r.raw, rec16, 16) == 0);
	meaning = ipd_sel_meaning(&r);
	if (meaning != NULL) {
		CHECK(r.type == 0x02);
		check_text(meaning, 64);
	}
	ipd_sel_to_event(&r, name, blade, &ev);
	CHECK(ev.kind == AF_EV_SEL_RECORD && ev.blade == blade);
	CHECK(af_event_get(&ev, "record") != NULL && af_event_get(&ev, "meaning") != NULL);
	/* what goes to the failure model and the journal reads back */
	CHECK(af_event_format(&ev, text, sizeof(text)) > 0);
	CHECK(af_event_parse(text, &back, NULL, 0) == 0);
	CHECK(af_event_format(&back, again, sizeof(again)) > 0);
	CHECK(strcmp(text, again) == 0);
}

/* ---- with ipd_cursor.c: the SEL reader against a controller that answers
 * with the input, and the cursor file ---------------------------------- */

struct stream_transport {
	struct ipd_transport base;
	const uint8_t *data;
	size_t size, pos;
	unsigned calls;
};

/* Each answer: one length byte (0xFF: a transport error), then that many
 * bytes of the input as the response. */
static int stream_cmd(struct ipd_transport *t, uint8_t addr, uint8_t netfn, uint8_t cmd,
                      const uint8_t *req, size_t req_len, uint8_t *rsp, size_t rsp_max)
{
	struct stream_transport *st = (struct stream_transport *)t;
	size_t n;

	(void)addr;
	(void)netfn;
	(void)cmd;
	(void)req;
	(void)req_len;
	if (++st->calls > 1000 || st->pos >= st->size)
		return -ETIMEDOUT;
	n = st->data[st->pos++];
	if (n == 0xFF)
		return -EIO;
	if (n > st->size - st->pos)
		n = st->size - st->pos;
	if (n > rsp_max)
		n = rsp_max;
	memcpy(rsp, st->data + st->pos, n);
	st->pos += n;
	return (int)n;
}

static void stream_close(struct ipd_transport *t)
{
	(void)t;
}

static const struct ipd_transport_ops stream_ops = {.cmd = stream_cmd, .close = stream_close};

static unsigned delivered;
static void on_record(void *o, const struct ipd_sel_rec *r)
{
	(void)o;
	(void)r;
	delivered++;
}

static void fuzz_sel_poll(const uint8_t *data, size_t size)
{
	struct stream_transport st = {.base = {.ops = &stream_ops}, .data = data, .size = size};
	struct ipd_sel_sink sink = {.record = on_record};
	struct ipd_sel_cursor c, before;

	memset(&c, 0, sizeof(c));
	for (int poll = 0; poll < 6 && st.pos < size; poll++) {
		int rc;

		before = c;
		delivered = 0;
		rc = ipd_sel_poll(&c, &st.base, IPD_SHMC_ADDR, &sink);
		CHECK(rc < 0 ? delivered == 0 : rc == (int)delivered);
		CHECK(rc <= IPD_SEL_BATCH);
		if (rc < 0) /* an error leaves the cursor as it was */
			CHECK(memcmp(&before, &c, sizeof(c)) == 0);
	}
}

static void fuzz_cursor_file(const uint8_t *data, size_t size)
{
	char path[64];
	struct ipd_sel_cursor c;
	int fd = memfd_create("cursor", MFD_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (ipd_cursor_load(path, &c) == 0)
			CHECK(c.positioned == 0 || c.positioned == 1);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipd_sensor s;
	struct ipd_sel_rec r;

	fuzz_sdr(data, size, &s);
	if (size != 16)
		CHECK(ipd_sel_decode(data, size, &r) == -EINVAL);
	for (size_t off = 0; off + 16 <= size && off < 16 * 32; off += 16)
		fuzz_sel(data + off, s.name[0] ? s.name : NULL, size > 0 ? data[0] % 17 : 0);
	if (size >= 3) {
		const char *st = ipd_threshold_state(data[0]);
		int sev = ipd_threshold_severity(data[0]);

		CHECK(sev >= 0 && sev <= 3);
		CHECK((sev == 0) == (strcmp(st, "ok") == 0));
		(void)ipd_offset_name(data[0], data[1], data[2]);
		(void)ipd_sensor_type_name(data[1]);
		(void)ipd_unit_name(data[2]);
		CHECK(ipd_addr_slot(data[0]) >= 0 && ipd_addr_slot(data[0]) <= 16);
	}
	if (ipd_sel_poll != NULL)
		fuzz_sel_poll(data, size);
	if (ipd_cursor_load != NULL && size < 4096)
		fuzz_cursor_file(data, size);
	return 0;
}
