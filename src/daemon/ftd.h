/*
 * atca-ftd internals. The daemon is thin: it owns the qb_loop, the current
 * configuration and the module instances, and wires them together. All
 * policy lives in the modules.
 */
#ifndef FTD_H
#define FTD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <json-c/json.h>
#include <qb/qbloop.h>

#include "af_common.h"
#include "af_ipc.h"

struct ipd;
struct smc;
struct fm;
struct rcv;
struct vft;
struct nt;
struct ftd_vmft_wait;
struct ftd_ipc;
struct ftd_fence_req;
struct ftd_cluster;
struct ftd_fence_hook;

#define FTD_RELOAD_ERRORS_MAX 8
#define FTD_EVENT_RING 512
#define FTD_FAULT_RING 64

/* A fault report of the failure model, for "atca-ftctl faults". */
struct ftd_fault_rec {
	int op; /* enum fm_fault_op */
	uint64_t ns;
	struct af_fault fault;
};

/* The hot-swap transitions of one blade announced over SNMP, to drop a
 * transition the shelf-manager client reports twice (a late SEL event
 * after the same state was read). */
struct ftd_nt_hotswap {
	int8_t last; /* the last state announced + 1; 0: none yet */
	uint8_t next;
	struct {
		int8_t from, to;
		uint64_t ns;
	} recent[4];
};

/* An event as the daemon received it. */
struct ftd_event_rec {
	struct af_event ev;
	uint64_t rx_ns; /* CLOCK_MONOTONIC of its arrival */
};

/* Outcome of the last configuration reload, shown by "status". */
struct ftd_reload_result {
	bool attempted;
	bool ok;
	uint64_t mono_ns;
	unsigned n_errors;
	char errors[FTD_RELOAD_ERRORS_MAX][AF_CFG_ERR_MAX];
	unsigned n_warnings;
	char warnings[FTD_RELOAD_ERRORS_MAX][AF_CFG_ERR_MAX];
};

struct ftd_options {
	const char *config_path;
	bool foreground;
	int log_level; /* -1: from the configuration */
};

struct ftd_ctx {
	struct ftd_options opt;
	qb_loop_t *loop;
	struct af_config *cfg;
	uint64_t cfg_generation;
	uint64_t cfg_loaded_ns;
	struct ftd_reload_result last_reload;

	uint64_t start_ns;
	time_t start_wall;
	uint32_t local_blade; /* 0 = observer */
	/* log levels set by "atca-ftctl log level" (until reset or a restart;
	 * a reload keeps them): level + 1, 0 = none; [AF_SS_COUNT] is the
	 * daemon-wide one */
	uint8_t log_rt[AF_SS_COUNT + 1];

	/* the SNMP notifier (first to start, last to stop: it hears about
	 * every fault) and what it remembers between events */
	struct nt *nt;
	uint32_t nt_key_burst, nt_burst; /* its rate limit (set when it starts) */
	uint64_t nt_key_interval_ms;
	char nt_shmc[AF_CFG_HOST_MAX + 8]; /* the last switchover announced ("addr:port") */
	uint64_t nt_cluster_faults[8];     /* open faults announced as layer cluster */
	struct ftd_nt_hotswap nt_hotswap[AF_MAX_BLADES + 1];
	unsigned nt_n_unprotected; /* VMs whose protection loss was announced */
	char nt_unprotected[AF_MAX_VMS][AF_CFG_NAME_MAX];

	struct fm *fm;
	/* the failure model's next timer (a hold, a ttl) on the loop */
	qb_loop_timer_handle fm_timer;
	bool fm_timer_on;
	uint64_t fm_timer_at;
	struct rcv *rcv;
	struct ipd *ipd;
	struct smc *smc;
	struct vft *vft;
	struct ftd_cluster *cluster;
	struct ftd_ipc *ipc;
	unsigned n_started; /* modules of ftd_modules[] started so far */

	uint64_t next_event_id;
	struct ftd_event_rec *ev_ring;      /* the last FTD_EVENT_RING events */
	struct ftd_fence_req *fence_reqs;   /* waiting for the shelf manager */
	struct ftd_fence_hook *fence_hooks; /* recovery's fences in flight */
	struct ftd_vmft_wait *vmft_waits;   /* operators' promotions in flight */
	struct ftd_fault_rec faults[FTD_FAULT_RING];
	unsigned fault_head, fault_len;
	unsigned ev_head, ev_len;
	/* housekeeping: memory freed after a burst goes back to the system */
	qb_loop_timer_handle trim_timer;
	bool trim_timer_on;
	char blackbox_path[AF_CFG_PATH_MAX + 32];
	int pidfile_fd;
	int ready_fd; /* daemon mode: pipe to the waiting parent, or -1 */
};

/* ftd_core.c ------------------------------------------------------------- */

/* The levels of logging: the configuration's, then -d/-l, then what
 * "atca-ftctl log level" set. */
void ftd_log_levels(const struct ftd_ctx *ctx, const struct af_config *cfg,
                    struct af_log_settings *s);

/* Loads the configuration and starts every module, in dependency order. */
int ftd_init(struct ftd_ctx *ctx);
/* Stops every started module in reverse order; safe after a failed start. */
void ftd_fini(struct ftd_ctx *ctx);

/* Parses the configuration file again and applies it only if it is valid
 * and every module accepts it. Returns 0 or -errno; *res says why. */
int ftd_reload(struct ftd_ctx *ctx, struct ftd_reload_result *res);

/* The module table, for status. */
unsigned ftd_module_count(void);
void ftd_module_describe(const struct ftd_ctx *ctx, unsigned i, struct af_module_status *st);

/* Gives an observation an id, logs it and feeds it to the failure model. */
void ftd_event_sink(void *opaque, struct af_event *ev);

/* Applies the logging section (plus command-line overrides); 0 or -errno,
 * in which case the previous logging stays in force. */
int ftd_apply_logging(const struct ftd_ctx *ctx, const struct af_config *cfg);

/* ftd_ipc.c --------------------------------------------------------------- */

int ftd_ipc_init(struct ftd_ipc **out, struct ftd_ctx *ctx);
void ftd_ipc_describe(const struct ftd_ipc *ipc, struct af_module_status *st);
void ftd_ipc_fini(struct ftd_ipc *ipc);

/* Access policy: root, the daemon's own user, or members (primary or
 * supplementary) of the configured group. groups may be NULL. */
bool ftd_access_decide(uid_t uid, gid_t gid, uid_t self, gid_t allowed_gid, const gid_t *groups,
                       int n_groups);
/* Same, looking the user's supplementary groups up through NSS. */
bool ftd_access_allowed(uid_t uid, gid_t gid, gid_t allowed_gid);

/* ftd_reply.c: the answer to each operation, as JSON ---------------------- */

/* Runs request req and returns its JSON answer in *out (never NULL on 0).
 * Returns the status to send: 0 or -errno. */
int ftd_dispatch(struct ftd_ctx *ctx, const struct af_ipc_request *req, json_object **out);

json_object *ftd_error_json(const char *message, int code);

/* ftd_hw.c: hardware views and the event ring ---------------------------- */

int ftd_events_init(struct ftd_ctx *ctx);
void ftd_events_fini(struct ftd_ctx *ctx);
void ftd_events_add(struct ftd_ctx *ctx, const struct af_event *ev);

/* Resolves a BLADE argument (slot number or host name). 0 or -ENOENT. */
int ftd_blade_arg(const struct ftd_ctx *ctx, const char *arg, uint32_t *slot, char *err,
                  size_t errlen);
/* 0 ok, 1 warning, 2 critical, from a sensor's state text */
int ftd_sensor_severity(const char *state);
json_object *ftd_blades_json(struct ftd_ctx *ctx);
json_object *ftd_blade_json(struct ftd_ctx *ctx, const struct af_cfg_blade *b);
/* "active", "standby" or "unknown" for shelf.managers[index] */
const char *ftd_manager_state(struct ftd_ctx *ctx, unsigned index);
json_object *ftd_sensors_json(struct ftd_ctx *ctx, int slot);
json_object *ftd_sel_json(struct ftd_ctx *ctx, int slot, unsigned count);
json_object *ftd_events_json(struct ftd_ctx *ctx, int slot, unsigned count);
json_object *ftd_faults_json(struct ftd_ctx *ctx, unsigned count);
void ftd_faults_add(struct ftd_ctx *ctx, int op, const struct af_fault *f);

/* ftd_fence.c: fence / unfence for IPC clients ------------------------------ */

/* Starts the operation; reply(opaque, status, doc) is called once, later or
 * (on an immediate refusal) from inside this call. */
typedef void (*ftd_reply_fn)(void *opaque, int status, json_object *doc);
void ftd_fence_request(struct ftd_ctx *ctx, const struct af_ipc_request *req, ftd_reply_fn reply,
                       void *opaque);
/* The requester is gone: its reply will not be sent. */
void ftd_fence_forget(struct ftd_ctx *ctx, void *opaque);

/* The recovery module's hooks into the shelf manager (fencing) and the
 * operator (notification). */
int ftd_fence_hook(void *opaque, int blade, void (*done)(void *cookie, int rc, const char *msg),
                   void *cookie);
void ftd_fence_hook_forget(void *opaque, void *cookie);
void ftd_fence_hooks_drop(struct ftd_ctx *ctx);
/* "atca-ftctl vm promote": answered once the engine has promoted (or
 * refused), without holding the loop meanwhile. */
bool ftd_vmft_deferred(const struct af_ipc_request *req);
void ftd_vmft_request(struct ftd_ctx *ctx, const struct af_ipc_request *req, ftd_reply_fn reply,
                      void *opaque);
void ftd_vmft_forget(struct ftd_ctx *ctx, void *opaque);

/* ftd_cluster.c: corosync CPG + votequorum ----------------------------------- */

int ftd_cluster_init(struct ftd_cluster **out, struct ftd_ctx *ctx);
void ftd_cluster_fini(struct ftd_cluster *c);
void ftd_cluster_disconnect(struct ftd_cluster *c);
int ftd_cluster_send(struct ftd_cluster *c, const void *buf, size_t len);
bool ftd_cluster_quorate(const struct ftd_cluster *c);
void ftd_cluster_describe(const struct ftd_cluster *c, struct af_module_status *st);
json_object *ftd_cluster_json(const struct ftd_cluster *c);

/* ftd_proc.c: process plumbing ------------------------------------------- */

/* Forks into the background; the parent waits until the child calls
 * ftd_ready() and exits with its status. Returns the fd to report on. */
int ftd_daemonize(void);
void ftd_ready(struct ftd_ctx *ctx, int status);

/* Creates and locks the pidfile; fails if another instance holds it. */
int ftd_pidfile_acquire(const char *path, int *fd, char *err, size_t errlen);
void ftd_pidfile_release(const char *path, int fd);

/* systemd notification (no-op without NOTIFY_SOCKET). */
void ftd_sd_notify(const char *state);

#endif
