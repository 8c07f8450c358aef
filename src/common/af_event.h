/*
 * Events: every observation a module makes (a sensor reading, a SEL record,
 * a hot-swap transition, a membership change, a libvirt lifecycle callback)
 * becomes one af_event and flows to the failure model.
 *
 * Events are fixed-size values (no heap) so they can be copied into rings,
 * journals and CPG messages without ownership questions. They have a one-line
 * text form, used in logs, in golden scenario files and by
 * "atca-ftctl simulate":
 *
 *   t=12.500000 src=ipmi blade=3 kind=sensor.threshold entity="CPU Temp" state=upper-critical
 */
#ifndef AF_EVENT_H
#define AF_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "af_util.h"

#define AF_EV_ENTITY_MAX 64
#define AF_EV_DETAIL_MAX 16
#define AF_KV_KEY_MAX 24
#define AF_KV_VAL_MAX 64
/* Longest text form af_event_format() can emit: every value quoted with
 * every character escaped (see test_event_worst_case_fits). */
#define AF_EV_TEXT_MAX 3072

enum af_ev_source {
	AF_SRC_IPMI = 0,   /* sensor/SEL monitoring of IPMCs and the shelf manager */
	AF_SRC_SHELF,      /* shelf-manager client: hot-swap, FRU, fencing */
	AF_SRC_CLUSTER,    /* corosync membership and quorum */
	AF_SRC_HYPERVISOR, /* libvirt daemon / host */
	AF_SRC_VM,         /* libvirt domain / QEMU process */
	AF_SRC_ENGINE,     /* checkpoint/replay engine */
	AF_SRC_ADMIN,      /* operator action through the CLI */
	AF_SRC_DAEMON,     /* atca-ftd itself */
	AF_SRC_COUNT
};

enum af_ev_kind {
	AF_EV_SENSOR_THRESHOLD = 0,
	AF_EV_SENSOR_DISCRETE,
	AF_EV_SEL_RECORD,
	AF_EV_SEL_CLEARED,
	AF_EV_SEL_OVERFLOW,
	AF_EV_HOTSWAP,
	AF_EV_IPMC_UNREACHABLE,
	AF_EV_IPMC_REACHABLE,
	AF_EV_SHMC_SWITCHOVER,
	AF_EV_NODE_JOIN,
	AF_EV_NODE_LEAVE,
	AF_EV_QUORUM,
	AF_EV_HYPERVISOR_UP,
	AF_EV_HYPERVISOR_DOWN,
	AF_EV_VM_LIFECYCLE,
	AF_EV_ENGINE_HEALTH,
	AF_EV_ADMIN,
	AF_EV_FENCE, /* a fence or unfence operation ended */
	AF_EV_KIND_COUNT
};

struct af_kv {
	char key[AF_KV_KEY_MAX];
	char val[AF_KV_VAL_MAX];
};

struct af_event {
	uint64_t id;    /* assigned by the daemon when accepted; 0 before */
	uint64_t ts_ns; /* CLOCK_MONOTONIC of the observation */
	enum af_ev_source source;
	enum af_ev_kind kind;
	int blade;                     /* slot 1..16; 0 for the shelf itself */
	char entity[AF_EV_ENTITY_MAX]; /* sensor, FRU, node or VM name */
	unsigned n_detail;
	struct af_kv detail[AF_EV_DETAIL_MAX];
};

extern const char *const af_ev_source_names[AF_SRC_COUNT];
extern const char *const af_ev_kind_names[AF_EV_KIND_COUNT];

/* Starts an event stamped now. entity may be NULL. */
void af_event_init(struct af_event *ev, enum af_ev_source src, enum af_ev_kind kind, int blade,
                   const char *entity);

/* Adds or replaces a detail. Keys are [a-z][a-z0-9_.-]* and not one of the
 * reserved names (t, id, src, kind, blade, entity). Values longer than
 * AF_KV_VAL_MAX-1 are refused (-E2BIG) rather than silently cut, since a cut
 * value could change the classification. */
int af_event_set(struct af_event *ev, const char *key, const char *fmt, ...) AF_PRINTF(3, 4);
const char *af_event_get(const struct af_event *ev, const char *key);

/* Text form. Returns the length written, or -ENOSPC if len is too small. */
int af_event_format(const struct af_event *ev, char *buf, size_t len);

/* Parses one text-form line. On error returns -EINVAL and, if err is not
 * NULL, a message naming the offending token. */
int af_event_parse(const char *line, struct af_event *ev, char *err, size_t errlen);

#endif
