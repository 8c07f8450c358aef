/*
 * shelfmgr: the module's state, shared by smc.c (session, fencing, views)
 * and smc_shelf.c (discovery and hot-swap tracking).
 */
#ifndef SMC_STATE_H
#define SMC_STATE_H

#include <OpenIPMI/ipmiif.h>

#include "af_config.h"
#include "smc.h"
#include "smc_int.h"

#define SMC_MAX_WAITERS 8
#define SMC_SITES 16
#define SMC_SEL_SEEN 16 /* hot-swap records applied ahead of OpenIPMI, per blade */

struct smc_req;

/* A hot-swap SEL record ipmi-detect delivered first: OpenIPMI reports the
 * same record later and must not replay it as a new transition. */
struct smc_sel_seen {
	uint64_t ns; /* 0: free */
	uint16_t record;
	int16_t fru;
	int8_t state;
};

struct smc_waiter {
	smc_fence_done_fn done;
	void *opaque;
};

struct smc_blade {
	struct smc *mod;
	int slot;
	uint8_t ipmc;
	bool in_table;
	uint8_t hw_addr;
	struct smc_picmg_props props;
	bool have_props;

	/* the payload FRU 0 and the other FRUs of the IPMC */
	bool have_entity;
	ipmi_entity_id_t entity;
	int mstate, previous;
	int mstate_at_close; /* payload state when the last session closed, -1 */
	bool polling;        /* a hot-swap reading is outstanding */
	int pending;         /* a state read that OpenIPMI has not reported, -1 */
	uint64_t fed_ns;     /* the last reading handed over by the daemon */
	uint64_t pending_ns;
	uint64_t polled_ns; /* when a reading last corrected the state */
	struct smc_sel_seen sel_seen[SMC_SEL_SEEN];
	unsigned sel_seen_next;
	/* a deactivation someone asked for is under way (until M1/M0/M4):
	 * the rest of it is requested too */
	const char *planned;
	uint64_t mstate_ns;
	char product[33], serial[33];
	unsigned n_frus;
	struct smc_fru_view frus[SMC_MAX_FRUS];
	bool fru_watched[SMC_MAX_FRUS]; /* hot-swap handler registered */

	/* fence / unfence in progress */
	bool op_active;
	struct smc_fop op;
	uint64_t op_gen; /* matches replies and timers to this operation */
	bool timer_running;
	qb_loop_timer_handle timer;
	unsigned n_waiters;
	struct smc_waiter waiters[SMC_MAX_WAITERS];
	char last_fence[200];
};

struct smc {
	struct af_module_env env;
	char idle_reason[128];

	struct smc_os *os;
	bool ipmi_held;
	ipmi_con_t *con;
	bool domain_open;
	bool entity_handler;
	uint64_t open_ns;
	bool closing;
	ipmi_domain_id_t domain_id;

	bool connected, discovered;
	int active;      /* index in shelf.managers in use, -1 none */
	int trying;      /* the one the domain is (being) opened on */
	int last_active; /* the last one that worked, -1 none yet */
	uint64_t retry_ms;
	bool timer_running, reopen;
	qb_loop_timer_handle timer; /* heartbeat and reconnection */
	uint64_t hb_sent_ns;        /* heartbeat outstanding since, 0 none */
	uint64_t hb_gen;
	unsigned stalls; /* session set-ups that stalled on this manager */
	unsigned ticks;
	unsigned switchovers;
	uint64_t up_ns;

	struct smc_picmg_props shmc_props;
	bool have_shmc_props;
	unsigned n_table;

	unsigned n_blades;
	struct smc_blade blades[AF_MAX_BLADES];
	uint64_t gen;     /* bumped per request, see smc_blade.op_gen */
	unsigned pending; /* requests sent and not answered */
	struct smc_req *reqs;
	uint64_t events;
};

/* smc_shelf.c */
void smc_shelf_connected(struct smc *m, ipmi_domain_t *domain);
void smc_shelf_discover(struct smc *m, ipmi_domain_t *domain);
/* Reads every blade's hot-swap sensor (once per second, from the session
 * timer). */
void smc_shelf_poll(struct smc *m);
/* A payload state read by someone else (a fence): corrects ours. */
void smc_shelf_observed(struct smc *m, struct smc_blade *b, int mstate);
struct smc_blade *smc_blade_by_slot(struct smc *m, int slot);
/* The SEL records a blade's hot-swap state already took from ipmi-detect
 * (pure: tests call them on a bare struct smc_blade). */
void smc_sel_seen_add(struct smc_blade *b, unsigned record, int fru, int state, uint64_t now);
bool smc_sel_seen_has(const struct smc_blade *b, unsigned record, int fru, int state, uint64_t now);
struct smc_blade *smc_blade_by_ipmc(struct smc *m, uint8_t ipmc);
/* The hot-swap sensor number of a blade's payload FRU, -1 unknown. */
int smc_hotswap_sensor(struct smc *m, struct smc_blade *b);
void smc_post(struct smc *m, struct af_event *ev);

/* smc_session.c */
int smc_session_start(struct smc *m);
void smc_session_stop(struct smc *m);

/* smc.c: ends running fences with err; forgets unanswered requests */
void smc_cancel_operations(struct smc *m, int err, const char *why);
void smc_drop_requests(struct smc *m);

/* smc.c: one request to the shelf manager (addr 0x20) or, bridged, to an
 * IPMC. cb gets the response (completion code first) or err < 0. */
typedef void (*smc_rsp_fn)(struct smc *m, void *arg, uint64_t gen, int err, const uint8_t *rsp,
                           size_t len);
int smc_send(struct smc *m, uint8_t addr, uint8_t netfn, uint8_t cmd, const uint8_t *data,
             size_t len, smc_rsp_fn cb, void *arg, uint64_t gen);

#endif
