/*
 * shelfmgr: client of the ATCA shelf manager (OpenIPMI on the daemon's
 * qb_loop). It keeps one session to the shelf manager, on either of two
 * addresses when the shelf has a redundant pair (a switch is reported as an
 * event), discovers the shelf (PICMG properties, address table, the FRUs of
 * each slot), tracks every FRU's hot-swap state M0-M7 (an event per
 * transition, with the previous state), and fences and unfences blades
 * through the shelf manager.
 */
#ifndef SMC_H
#define SMC_H

#include <stdbool.h>
#include <stdint.h>

#include "af_module.h"

struct smc;

/* Creates the module. env is copied; env->cfg must stay valid until the next
 * smc_reconfigure() or smc_fini(). Without a main loop or shelf credentials
 * it stays idle and says why. Returns 0 or -errno. */
int smc_init(struct smc **out, const struct af_module_env *env);

/* Switches to a new configuration (already validated): the session is
 * reopened when the shelf settings changed. Returns 0 or -errno; on error
 * the module keeps running on the previous configuration. */
int smc_reconfigure(struct smc *m, const struct af_config *cfg);

void smc_describe(const struct smc *m, struct af_module_status *st);

/* Must not be called from inside the loop's dispatch of this module. Fence
 * operations still running end with -ECANCELED. */
void smc_fini(struct smc *m);

/* ---- fencing ---------------------------------------------------------------- */

struct smc_fence_result {
	bool unfence;
	int slot;
	int result;          /* 0: confirmed; -errno otherwise */
	const char *message; /* what happened, for people */
	const char *method;  /* "hot-swap", "chassis", "none" (already there) */
	int mstate_before;   /* -1 unknown */
	int mstate_after;
	uint64_t elapsed_ns;
	unsigned commands; /* IPMI requests it took */
};

typedef void (*smc_fence_done_fn)(void *opaque, const struct smc_fence_result *r);

/* Fences (unfence false) or unfences a blade by slot. Returns 0 when the
 * operation started (done is called later, exactly once, never from inside
 * this call) or -errno: -ENOENT unknown slot, -ENOTCONN no shelf manager
 * session, -EBUSY the opposite operation is running on that blade, -EAGAIN
 * too many waiters. A second request of the same kind joins the running
 * one. Success means the blade was confirmed in M1/M0 (or its power off),
 * never merely requested. */
int smc_fence(struct smc *m, int slot, bool unfence, smc_fence_done_fn done, void *opaque);

/* Forgets a waiter (its requester went away); the operation itself goes on. */
void smc_fence_forget(struct smc *m, void *opaque);

/* ---- what the module knows, for atca-ftctl ------------------------------------ */

#define SMC_MAX_FRUS 8

struct smc_fru_view {
	uint8_t fru_id;
	char name[33];
	int mstate; /* -1 unknown */
	int previous;
};

struct smc_blade_view {
	int slot;
	uint8_t ipmc;
	bool in_address_table;
	uint8_t hw_addr;
	char picmg[8]; /* "2.2", "" unknown */
	int mstate;    /* payload FRU 0; -1 unknown */
	int previous;
	uint64_t mstate_ns; /* CLOCK_MONOTONIC of the last change */
	char product[33], serial[33];
	unsigned n_frus;
	struct smc_fru_view frus[SMC_MAX_FRUS];
	bool fencing, unfencing;
	char last_fence[200]; /* outcome of the last operation, "" none */
};

struct smc_shelf_view {
	bool enabled;
	char idle_reason[128];
	bool connected;
	bool discovered;
	int active; /* index in shelf.managers, -1 none */
	unsigned switchovers;
	char picmg[8];
	unsigned address_table_entries;
};

void smc_shelf(const struct smc *m, struct smc_shelf_view *out);

/* A reading of a blade's hot-swap sensor made elsewhere (ipmi-detect reads
 * every sensor anyway): lets the module notice a transition whose SEL event
 * it missed without reading the sensor itself. */
void smc_hotswap_observed(struct smc *m, int slot, int mstate);

/* A hot-swap SEL record of a blade's FRU as ipmi-detect decoded it (its SEL
 * poll is faster than OpenIPMI's rescan): applied at once; OpenIPMI's late
 * copy of the same record is then ignored. previous and cause (the PICMG
 * cause code) are -1 when the record does not say. */
void smc_hotswap_sel(struct smc *m, int slot, int fru, int previous, int state, unsigned record,
                     int cause);

const char *smc_mstate_name(int m); /* "M0".."M7", "M?" */
const char *smc_mstate_text(int m); /* "not installed", "inactive", ... */
/* false if the slot is not a configured blade */
bool smc_blade(const struct smc *m, int slot, struct smc_blade_view *out);

#endif
