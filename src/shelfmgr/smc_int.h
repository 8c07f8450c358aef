/*
 * shelfmgr internals: PICMG 3.0 message encodings, the fence/unfence
 * operation machine (pure: inputs in, one action out, no I/O) and the
 * OpenIPMI operating-system seam on qb_loop.
 */
#ifndef SMC_INT_H
#define SMC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <OpenIPMI/os_handler.h>
#include <qb/qbloop.h>

#include "af_fsm.h"
#include "smc.h"

/* ---- IPMI / PICMG 3.0 encodings (smc_picmg.c) ----------------------------- */

#define SMC_NETFN_CHASSIS 0x00
#define SMC_NETFN_SE 0x04
#define SMC_NETFN_PICMG 0x2C
#define SMC_PICMG_ID 0x00

#define SMC_CMD_CHASSIS_STATUS 0x01
#define SMC_CMD_CHASSIS_CONTROL 0x02
#define SMC_CMD_GET_SENSOR_READING 0x2D
#define SMC_CMD_PICMG_PROPERTIES 0x00
#define SMC_CMD_PICMG_ADDRESS_INFO 0x01
#define SMC_CMD_SET_ACTIVATION_POLICY 0x0A
#define SMC_CMD_GET_ACTIVATION_POLICY 0x0B
#define SMC_CMD_SET_ACTIVATION 0x0C

#define SMC_POLICY_LOCKED 0x01 /* activation locked: an M1 FRU stays in M1 */

#define SMC_CHASSIS_POWER_DOWN 0x00
#define SMC_CHASSIS_POWER_UP 0x01

#define SMC_SITE_FRONT_BOARD 0x00

struct smc_picmg_props {
	uint8_t ext_major, ext_minor; /* PICMG extension version, e.g. 2.2 */
	uint8_t max_fru_id;
	uint8_t ipmc_fru_id;
};

struct smc_addr_info {
	uint8_t hw_addr;
	uint8_t ipmb_addr;
	uint8_t fru_id;
	uint8_t site_number;
	uint8_t site_type;
};

/* Responses are given completion code first. Parsers return 0, the
 * completion code (> 0) when it is not 0, or -EPROTO for a reply of the
 * wrong length or PICMG identifier. */
int smc_parse_properties(const uint8_t *rsp, size_t len, struct smc_picmg_props *p);
int smc_parse_address_info(const uint8_t *rsp, size_t len, struct smc_addr_info *a);
/* Hot-swap sensor reading: the one asserted offset 0..7 is the M-state. */
int smc_parse_hotswap(const uint8_t *rsp, size_t len, int *mstate);
int smc_parse_chassis_power(const uint8_t *rsp, size_t len, bool *on);

const char *smc_cc_text(uint8_t cc);

/* ---- fence / unfence operations (smc_fence.c) ------------------------------ */

enum smc_fstate {
	SMC_F_IDLE = 0,
	SMC_F_CHECK,         /* fence: reading the blade's state first */
	SMC_F_LOCK,          /* setting the activation lock (no auto re-activation) */
	SMC_F_DEACTIVATE,    /* Set FRU Activation (deactivate) sent */
	SMC_F_WAIT_INACTIVE, /* polling the hot-swap sensor for M1 / M0 */
	SMC_F_POWER_OFF,     /* fallback: Chassis Control power down sent */
	SMC_F_WAIT_OFF,      /* polling Get Chassis Status */
	SMC_F_UCHECK,        /* unfence: reading the blade's state first */
	SMC_F_UNLOCK,        /* clearing the activation lock (M1 -> M2) */
	SMC_F_WAIT_M2,       /* polling for M2 */
	SMC_F_ACTIVATE,      /* Set FRU Activation (activate) sent */
	SMC_F_WAIT_ACTIVE,   /* polling for M4 */
	SMC_F_POWER_ON,      /* fallback: Chassis Control power up sent */
	SMC_F_WAIT_ON,       /* polling Get Chassis Status */
	SMC_F_DONE,
	SMC_F_FAILED,
	SMC_F_COUNT
};

enum smc_fevent {
	SMC_FE_START_FENCE = 0,
	SMC_FE_START_UNFENCE,
	SMC_FE_OK,          /* command accepted */
	SMC_FE_UNSUPPORTED, /* the IPMC does not implement it (CC 0xC1, 0xC2, 0xCC) */
	SMC_FE_REFUSED,     /* any other completion code */
	SMC_FE_NO_ANSWER,   /* timeout, IPMB NAK (0x83), destination unavailable */
	SMC_FE_INACTIVE,    /* read M0 or M1 */
	SMC_FE_M2,
	SMC_FE_ACTIVE, /* read M4 */
	SMC_FE_MOVING, /* read M3, M5 or M6 */
	SMC_FE_LOST,   /* read M7: the shelf manager lost the IPMC */
	SMC_FE_POWERED_OFF,
	SMC_FE_POWERED_ON,
	SMC_FE_DEADLINE,
	SMC_FE_ABSENT, /* the shelf manager reports the FRU not installed (M0) */
	SMC_FE_COUNT
};
extern const struct af_fsm_def smc_fence_fsm;

enum smc_fop_kind { SMC_FENCE = 0, SMC_UNFENCE };

enum smc_act_type {
	SMC_ACT_SEND = 0, /* send the request, then call smc_fop_reply() */
	SMC_ACT_WAIT,     /* call smc_fop_timer() after wait_ms */
	SMC_ACT_DONE      /* finished: op->result, op->message */
};

struct smc_action {
	enum smc_act_type type;
	uint8_t netfn, cmd;
	uint8_t data[8];
	size_t len;
	uint64_t wait_ms;
};

#define SMC_FENCE_POLL_MS 50
/* An IPMC that does not answer while the shelf manager reports M7 (lost):
 * how long a fence waits for the shelf manager to report the board pulled
 * out (M0: it reports M7 first), asking again, before it fails. */
#define SMC_FENCE_ABSENT_GRACE_MS 2000

struct smc_fop {
	struct af_fsm fsm;
	enum smc_fop_kind kind;
	uint8_t fru_id;
	int hs_sensor; /* hot-swap sensor number, -1 unknown: chassis path only */
	uint64_t start_ns, deadline_ns;
	int mstate_first, mstate_last; /* -1 unknown */
	bool power_known, power_on;
	bool chassis_path; /* the hot-swap path was unavailable */
	unsigned commands, polls;
	int result; /* 0 or -errno once DONE / FAILED */
	char message[160];
	char method[16]; /* "hot-swap", "chassis", "none" (already there) */
	uint8_t last_cc;
	/* the payload's M-state as the shelf manager itself reports it (not
	 * read from the IPMC), -1 unknown; kept current by the caller */
	int shelf_mstate;
};

/* Starts an operation (op->fsm instance names it in logs). */
void smc_fop_start(struct smc_fop *op, enum smc_fop_kind kind, const char *instance, uint8_t fru_id,
                   int hs_sensor, uint64_t now_ns, uint64_t timeout_ms, struct smc_action *act);
/* The answer to the last SEND: err 0 with the response (completion code
 * first), or -errno when nothing came back. */
void smc_fop_reply(struct smc_fop *op, int err, const uint8_t *rsp, size_t len, uint64_t now_ns,
                   struct smc_action *act);
/* The WAIT is over. */
void smc_fop_timer(struct smc_fop *op, uint64_t now_ns, struct smc_action *act);

bool smc_fop_finished(const struct smc_fop *op);

/* What the shelf manager reports of the payload now (its own hot-swap
 * tracking): a fence of a board it reports not installed (M0, pulled
 * out) is done without its IPMC, which is gone with it; the next reply or
 * timer acts on it. */
void smc_fop_shelf_state(struct smc_fop *op, int mstate);

/* ---- OpenIPMI on qb_loop (smc_os.c) --------------------------------------- */

struct smc_os {
	os_handler_t h; /* first: OpenIPMI hands it back to us */
	qb_loop_t *loop;
	int refs;
	int n_fds, n_timers;
	char logbuf[512];
};

int smc_os_new(struct smc_os **out, qb_loop_t *loop);
void smc_os_put(struct smc_os *os);
/* ipmi_init() on first use in the process, ipmi_shutdown() after the last. */
int smc_ipmi_get(struct smc_os *os);
void smc_ipmi_put(void);

#endif
