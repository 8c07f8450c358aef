/*
 * ipmi-detect internals: IPMI message encodings, decoded SDR and SEL
 * records, the transport seam and the SEL cursor. Everything here except
 * the FreeIPMI transport and the worker threads is pure code.
 */
#ifndef IPD_INT_H
#define IPD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "af_event.h"

/* ---- IPMI constants ------------------------------------------------------- */

#define IPD_NETFN_SE 0x04      /* sensor/event */
#define IPD_NETFN_STORAGE 0x0A /* SDR repository, SEL */
#define IPD_NETFN_APP 0x06

#define IPD_CMD_GET_DEVICE_ID 0x01
#define IPD_CMD_GET_DEVICE_SDR_INFO 0x20
#define IPD_CMD_GET_DEVICE_SDR 0x21
#define IPD_CMD_RESERVE_DEVICE_SDR 0x22
#define IPD_CMD_GET_SENSOR_READING 0x2D
#define IPD_CMD_GET_SDR_REPO_INFO 0x20
#define IPD_CMD_RESERVE_SDR_REPO 0x22
#define IPD_CMD_GET_SDR 0x23
#define IPD_CMD_GET_SEL_INFO 0x40
#define IPD_CMD_GET_SEL_ENTRY 0x43

#define IPD_CC_OK 0x00
#define IPD_CC_NODE_BUSY 0xC0
#define IPD_CC_INVALID_CMD 0xC1
#define IPD_CC_TIMEOUT 0xC3
#define IPD_CC_RES_CANCELLED 0xC5
#define IPD_CC_NOT_PRESENT 0xCB
#define IPD_CC_NOT_PRESENT_SENSOR 0xCB
#define IPD_CC_DEST_UNAVAILABLE 0xD3
#define IPD_CC_BRIDGE_NAK 0x83 /* ATCA shelf managers: IPMB NAK on write */

#define IPD_SEL_FIRST 0x0000
#define IPD_SEL_LAST 0xFFFF
#define IPD_SHMC_ADDR 0x20

/* ---- the transport seam --------------------------------------------------- */

/* One IPMI session (or in-band device). cmd() sends a request to the
 * controller at ipmb_addr (IPD_SHMC_ADDR: the shelf manager itself, anything
 * else is bridged through it; in-band sessions ignore it) and copies the
 * response, completion code first, into rsp. Returns the response length,
 * -ETIMEDOUT / -ECONNRESET when the session itself failed, -EIO for other
 * transport errors. A completion code is not a transport error. */
struct ipd_transport;
struct ipd_transport_ops {
	int (*cmd)(struct ipd_transport *t, uint8_t ipmb_addr, uint8_t netfn, uint8_t cmd,
	           const uint8_t *req, size_t req_len, uint8_t *rsp, size_t rsp_max);
	void (*close)(struct ipd_transport *t);
};
struct ipd_transport {
	const struct ipd_transport_ops *ops;
	char desc[96]; /* for logs: "RMCP+ 10.0.0.2:623" */
};

struct ipd_lan_params {
	const char *host;
	unsigned port;
	const char *username;
	const char *password;
	const uint8_t *k_g; /* NULL: none */
	unsigned cipher_suite;
	unsigned privilege; /* 2 user, 3 operator, 4 admin */
	unsigned timeout_ms;
};

/* FreeIPMI transports (ipd_freeipmi.c). Return 0 or -errno with err set. */
int ipd_freeipmi_open_lan(const struct ipd_lan_params *p, struct ipd_transport **out, char *err,
                          size_t errlen);
int ipd_freeipmi_open_inband(const char *device, struct ipd_transport **out, char *err,
                             size_t errlen);

/* ---- SDRs (ipd_sdr.c) ----------------------------------------------------- */

#define IPD_NAME_MAX 17

enum ipd_sensor_class { IPD_SENSOR_THRESHOLD = 0, IPD_SENSOR_DISCRETE };

struct ipd_sensor {
	uint8_t owner; /* IPMB address of the owning controller */
	uint8_t lun;
	uint8_t number;
	uint8_t type;         /* sensor type, e.g. 0x01 temperature, 0xF0 hot-swap */
	uint8_t reading_type; /* event/reading type code: 0x01 threshold, 0x6F specific */
	uint8_t entity_id, entity_instance;
	enum ipd_sensor_class cls;
	char name[IPD_NAME_MAX];
	/* threshold sensors: reading = (m * raw + b * 10^b_exp) * 10^r_exp */
	uint8_t analog_format; /* 0 unsigned, 1 one's complement, 2 two's, 3 none */
	uint8_t linearization; /* 0 linear; others are reported raw */
	int16_t m, b;
	int8_t r_exp, b_exp;
	uint8_t unit; /* IPMI base unit code */
};

/* Decodes one SDR record (header included). Returns 1 and fills *s for a
 * full (type 1) or compact (type 2) sensor record, 0 for a record of another
 * type (skipped), -EINVAL for a malformed one. */
int ipd_sdr_decode(const uint8_t *rec, size_t len, struct ipd_sensor *s);

/* Converts a raw threshold-sensor reading; false if it cannot be (non-linear
 * or no analog format): the caller reports the raw value. */
bool ipd_sdr_convert(const struct ipd_sensor *s, uint8_t raw, double *value);

const char *ipd_unit_name(uint8_t unit);
const char *ipd_sensor_type_name(uint8_t type);

/* Threshold status bits of Get Sensor Reading (byte 3) to the most severe
 * state: "ok", "lower-non-critical", ..., "upper-non-recoverable". */
const char *ipd_threshold_state(uint8_t status_bits);
/* 0 ok, 1 non-critical, 2 critical, 3 non-recoverable */
int ipd_threshold_severity(uint8_t status_bits);

/* ---- SEL records (ipd_sel.c) -------------------------------------------- */

struct ipd_sel_rec {
	uint16_t id;
	uint8_t type;       /* 0x02 system event; 0xC0-0xDF OEM timestamped; 0xE0+ OEM */
	uint32_t timestamp; /* seconds, IPMI epoch (1970) */
	uint16_t generator; /* slave address (bit 0 clear) or software id */
	uint8_t evm_rev;
	uint8_t sensor_type;
	uint8_t sensor_number;
	bool deassertion;
	uint8_t event_type; /* event/reading type code */
	uint8_t data[3];
	uint8_t raw[16];
};

/* Decodes a 16-byte SEL record. -EINVAL if len != 16. */
int ipd_sel_decode(const uint8_t *raw, size_t len, struct ipd_sel_rec *r);

/* Name of a discrete offset ("uncorrectable-ecc", "M4") or of a threshold
 * crossing, by sensor type and event/reading type; NULL when not known. */
const char *ipd_offset_name(uint8_t sensor_type, uint8_t event_type, unsigned offset);

/* Meaning of a system event record, e.g. "uncorrectable-ecc", "ierr",
 * "upper-critical-going-high", "M6"; NULL when not known. */
const char *ipd_sel_meaning(const struct ipd_sel_rec *r);

/* Fills ev (kind sel.record) from r: blade from the generator, details. The
 * sensor name, if known, becomes the entity. */
void ipd_sel_to_event(const struct ipd_sel_rec *r, const char *sensor_name, int blade,
                      struct af_event *ev);

/* IPMB address of a slot's IPMC and back (0 when not a blade address). */
static inline uint8_t ipd_blade_addr(int slot)
{
	return (uint8_t)(0x80 + 2 * slot);
}
static inline int ipd_addr_slot(uint8_t addr)
{
	return addr >= 0x82 && addr <= 0xA0 && !(addr & 1) ? (addr - 0x80) / 2 : 0;
}

/* ---- the SEL cursor (ipd_cursor.c) ----------------------------------------- */

struct ipd_sel_cursor {
	bool positioned; /* false: never read this SEL */
	bool have_last;  /* last_id names a record we processed */
	uint16_t last_id;
	uint32_t last_ts;
	uint16_t next_id;  /* next id given with last_id; IPD_SEL_LAST = was the end */
	uint32_t add_ts;   /* "most recent addition" of the last Get SEL Info */
	uint32_t erase_ts; /* "most recent erase" */
	uint16_t entries;
	bool overflow;
	uint64_t caught_up_ns; /* CLOCK_MONOTONIC of the last catch-up; not saved */
	/* a SEL taken over from another shelf manager: records up to adopt_ts
	 * were delivered from there (not saved: set again at the next start) */
	bool adopt;
	uint32_t adopt_ts;
};

struct ipd_sel_sink {
	void (*record)(void *opaque, const struct ipd_sel_rec *r);
	void (*cleared)(void *opaque, unsigned entries_before);
	void (*overflow)(void *opaque, unsigned entries);
	void (*resync)(void *opaque, uint16_t lost_id);
	void *opaque;
};

/* Which of r[0..n) (in SEL order) a later record makes history: the
 * assertions of a blade's IPMC followed, further on, by that blade's
 * hot-swap record into M4 (its payload activated again, after a fence and
 * a repair: the failure model clears a blade's hardware faults on M4, but
 * a backlog read by a daemon that was down meanwhile would raise them
 * again after the M4 it saw at its start). m4_ts[i] gets that M4 record's
 * SEL time, superseded[i] whether it applies. Pure. */
void ipd_sel_supersede(const struct ipd_sel_rec *r, size_t n, bool *superseded, uint32_t *m4_ts);

/* Max records delivered per poll: a burst is spread over polls instead of
 * blocking the worker (and its sensors) for seconds. */
#define IPD_SEL_BATCH 64

/* Max records of a backlog held back and judged together (see
 * ipd_target.catching_up); a longer one is judged in parts. */
#define IPD_SEL_BACKLOG_MAX 512

/* One poll of the SEL behind t at addr. Returns the number of records
 * delivered, or -errno (the cursor is unchanged on transport errors). */
int ipd_sel_poll(struct ipd_sel_cursor *c, struct ipd_transport *t, uint8_t addr,
                 const struct ipd_sel_sink *sink);

/* Makes c the cursor of a SEL another shelf manager kept until now: its
 * next poll walks the SEL from the start, takes every record stamped up to
 * after_ts as processed (the other manager's SEL delivered it) and
 * delivers only the later ones. */
void ipd_sel_adopt(struct ipd_sel_cursor *c, uint32_t after_ts);

/* Cursor persistence: one small text file, replaced atomically. */
int ipd_cursor_save(const char *path, const struct ipd_sel_cursor *c);
int ipd_cursor_load(const char *path, struct ipd_sel_cursor *c);

/* ---- the module and its workers (ipd.c, ipd_target.c) --------------------- */

#include <pthread.h>
#include <stdatomic.h>

#include "af_config.h"
#include "af_fsm.h"
#include "af_module.h"
#include "ipd.h"

#define IPD_MAX_SENSORS 64
#define IPD_QUEUE_MAX 1024
#define IPD_SEL_RING 256
#define IPD_SDR_RECHECK_NS (60ULL * 1000000000ULL)

/* Reachability of a target (table in ipd_target.c). */
enum ipd_tstate {
	IPD_T_CONNECTING = 0, /* no session yet */
	IPD_T_ONLINE,         /* commands succeed */
	IPD_T_UNREACHABLE,    /* the IPMC (or shelf manager) does not answer: backoff */
	IPD_T_WAITING_SHMC,   /* a blade whose way in, the shelf manager, is down */
	IPD_T_COUNT
};
enum ipd_tevent {
	IPD_E_CONNECTED = 0, /* a session is open */
	IPD_E_WAIT_SHMC,     /* a blade cannot reach any shelf manager */
	IPD_E_UNANSWERED,    /* the target does not answer (bridging NAK, timeout) */
	IPD_E_ANSWERED,      /* an unreachable target answered again */
	IPD_E_SESSION_LOST,  /* the session itself broke: reconnect */
	IPD_E_COUNT
};
extern const struct af_fsm_def ipd_target_fsm;

struct ipd_sensor_state {
	bool have;
	uint8_t raw;
	uint8_t status;     /* threshold status bits */
	uint16_t asserted;  /* discrete offsets */
	uint8_t ok_repeats; /* ok readings still to report after a bad one */
};

/* Ok readings reported after a sensor leaves a bad state: the failure
 * model counts readings (hysteresis) and hears nothing of a sensor that
 * stays ok. At least its largest hysteresis. */
#define IPD_OK_REPEATS 16

enum ipd_target_kind { IPD_TARGET_SHMC = 0, IPD_TARGET_BLADE };

struct ipd_target {
	struct ipd *mod;
	enum ipd_target_kind kind;
	uint8_t addr;
	int slot;
	char inband[AF_CFG_PATH_MAX];
	pthread_t thread;
	bool started;

	/* worker-private */
	struct ipd_transport *t;
	unsigned connected_gen; /* shelf-manager generation the session is for */
	struct af_fsm fsm;
	bool answered;      /* a command was answered since the session opened */
	bool down_reported; /* ipmc.unreachable posted, ipmc.reachable not yet */
	uint64_t backoff_ms, next_try_ns;
	uint64_t next_sensors_ns, next_sel_ns, next_sdr_check_ns;
	struct ipd_sensor sensors[IPD_MAX_SENSORS];
	struct ipd_sensor_state sstate[IPD_MAX_SENSORS];
	unsigned n_sensors;
	bool sdr_loaded;
	uint32_t sdr_change;
	struct ipd_sel_cursor cursor;
	char cursor_path[AF_CFG_PATH_MAX + 64];
	bool cursor_dirty;
	int cursor_save_rc; /* the last save's failure (-errno), 0 when it worked */
	/* A resumed or adopted cursor has a backlog: what happened while this
	 * daemon was away. Its records are held until the SEL's end is reached
	 * and posted together, so that a fault its blade has been repaired of
	 * since (a hot-swap M4 later in the log) is not news. The cursor is
	 * not saved meanwhile: a restart reads the backlog again. */
	bool catching_up;
	struct ipd_sel_rec *backlog;
	unsigned n_backlog;

	/* shared with the main thread, under mod->lock */
	struct ipd_target_view view;
	struct ipd_sensor_view sview[IPD_MAX_SENSORS];
	unsigned n_sview;
};

struct ipd_queued {
	bool is_log;
	int prio;
	struct af_event ev; /* is_log: ev.entity unused, message in log */
	char log[256];
};

struct ipd {
	struct af_module_env env;
	struct ipd_transport_factory factory;
	char idle_reason[128]; /* non-empty: no workers, and why */

	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;

	/* worker -> main loop */
	struct ipd_queued *queue;
	unsigned qhead, qlen;
	uint64_t dropped;
	int pipe[2];

	struct ipd_target *targets;
	unsigned n_targets;

	/* shelf managers: which one the workers use */
	atomic_int active_shmc; /* index, -1 none */
	atomic_uint shmc_gen;   /* bumped at every switchover */
	uint64_t switchovers;

	/* sensor names by owner/number, for SEL records */
	struct {
		uint8_t owner, number;
		char name[17];
	} names[IPD_MAX_SENSORS * (AF_MAX_BLADES + 1)];
	unsigned n_names;

	/* recent SEL records */
	struct af_event sel_ring[IPD_SEL_RING];
	unsigned sel_head, sel_len;
	uint64_t events_posted;
};

/* worker side (ipd_target.c) */
void *ipd_worker(void *arg);
/* queue helpers (ipd.c), callable from any thread */
void ipd_post_event(struct ipd *m, const struct af_event *ev);
void ipd_post_log(struct ipd *m, int prio, const char *fmt, ...) AF_PRINTF(3, 4);
int ipd_slot_of_addr(const struct ipd *m, uint8_t addr);
void ipd_learn_names(struct ipd *m, const struct ipd_target *tg);
void ipd_name_of(struct ipd *m, uint8_t owner, uint8_t number, char *out, size_t len);
bool ipd_stopping(struct ipd *m);
/* waits until deadline (CLOCK_MONOTONIC ns) or stop; true if stopping */
bool ipd_wait(struct ipd *m, uint64_t deadline_ns);

#endif
