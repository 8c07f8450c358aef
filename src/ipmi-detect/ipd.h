/*
 * ipmi-detect: sensor and SEL monitoring of the shelf manager and every
 * blade IPMC over RMCP+ (FreeIPMI), bridged through the shelf manager, or
 * in-band for the local blade. Observations become events for the failure
 * model.
 *
 * One worker thread per target (shelf manager, each IPMC) does the blocking
 * IPMI I/O, so a slow or dead IPMC never delays the others; workers hand
 * events and log lines to the main loop through a queue and a pipe that
 * the daemon's qb_loop watches.
 */
#ifndef IPD_H
#define IPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "af_module.h"

struct ipd;
struct ipd_transport;
struct ipd_lan_params;

/* How workers open sessions: FreeIPMI by default, fakes in unit tests. */
struct ipd_transport_factory {
	int (*open_lan)(const struct ipd_lan_params *p, struct ipd_transport **out, char *err,
	                size_t errlen);
	int (*open_inband)(const char *device, struct ipd_transport **out, char *err,
	                   size_t errlen);
};

/* Creates the module. env is copied; env->cfg must stay valid until the next
 * ipd_reconfigure() or ipd_fini(). Without a main loop or without loaded
 * credentials the module starts idle (and says why). Returns 0 or -errno. */
int ipd_init(struct ipd **out, const struct af_module_env *env);
int ipd_init_with(struct ipd **out, const struct af_module_env *env,
                  const struct ipd_transport_factory *factory);

/* Switches to a new configuration: workers are restarted. 0 or -errno; on
 * error the module keeps running on the previous configuration. */
int ipd_reconfigure(struct ipd *m, const struct af_config *cfg);

void ipd_describe(const struct ipd *m, struct af_module_status *st);

void ipd_fini(struct ipd *m);

/* ---- what the module knows, for atca-ftctl ---- */

struct ipd_sensor_view {
	int slot; /* 0: the shelf manager's own sensors */
	uint8_t owner, number;
	char name[17];
	char type[24];
	char value[24]; /* "45.00", "0x0002", "M4", "-" */
	char unit[16];
	char state[40]; /* "ok", "upper-critical", "uncorrectable-ecc", ... */
	uint64_t updated_ns;
};

struct ipd_target_view {
	int slot; /* 0: shelf manager */
	uint8_t addr;
	char state[24];  /* the reachability state machine's state */
	char via[96];    /* session description */
	char error[128]; /* last error, "" if none */
	unsigned sensors;
	uint64_t reads, failures;
	uint64_t since_ns; /* CLOCK_MONOTONIC of the last state change */
};

struct ipd_shmc_view {
	int active; /* index in shelf.managers, -1 none reachable */
	char address[128];
	unsigned port;
	uint64_t switchovers;
};

unsigned ipd_sensor_views(struct ipd *m, int slot, struct ipd_sensor_view *out, unsigned max);
unsigned ipd_target_views(struct ipd *m, struct ipd_target_view *out, unsigned max);
/* Most recent SEL records (oldest first) of one blade (slot > 0), of the
 * shelf itself (0) or all (-1). */
unsigned ipd_sel_recent(struct ipd *m, int slot, struct af_event *out, unsigned max);
void ipd_shmc(struct ipd *m, struct ipd_shmc_view *out);

#endif
