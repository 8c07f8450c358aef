/*
 * atca-ftctl internals: the IPC client and the renderers that turn the
 * daemon's JSON answers into tables.
 */
#ifndef CTL_H
#define CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

/* Exit codes (documented in atca-ftctl(8)). */
enum ctl_exit {
	CTL_OK = 0,
	CTL_FAILED = 1,      /* the daemon refused or the operation failed */
	CTL_USAGE = 2,       /* bad command line */
	CTL_UNREACHABLE = 3, /* no daemon answers on this IPC name */
	CTL_DENIED = 4,      /* not root and not in the IPC group */
	CTL_PROTOCOL = 5,    /* version mismatch or malformed answer */
	CTL_CONFIG_INVALID = 6,
};

struct ctl_client;

/* Connects; on failure returns NULL and sets *exit_code and msg. */
struct ctl_client *ctl_init(const char *ipc_name, int timeout_ms, int *exit_code, char *msg,
                            size_t msglen);
void ctl_fini(struct ctl_client *cl);

struct af_ipc_request;

/* Sends req (its op and arguments; sequence number and client name are
 * filled in) and waits for the answer. On success returns CTL_OK with the
 * daemon's status in *status and its JSON document in *doc (caller puts it).
 * Otherwise returns an exit code and msg. */
int ctl_call(struct ctl_client *cl, const struct af_ipc_request *req, int *status,
             json_object **doc, char *msg, size_t msglen);

/* Changes how long ctl_call() waits (fencing waits for the hardware). */
void ctl_set_timeout(struct ctl_client *cl, int timeout_ms);

/* ---- tables (ctl_table.c) ---- */

#define CTL_TABLE_MAX_COLS 8

struct ctl_table {
	unsigned n_cols;
	const char *headers[CTL_TABLE_MAX_COLS];
	unsigned n_rows, cap_rows;
	char **cells; /* n_rows * n_cols, owned */
};

void ctl_table_init(struct ctl_table *t, unsigned n_cols, const char *const *headers);
/* Appends a row; values are copied. NULL prints as "-". */
int ctl_table_add(struct ctl_table *t, const char *const *values);
void ctl_table_print(const struct ctl_table *t, FILE *f);
void ctl_table_free(struct ctl_table *t);

/* Helpers to read the daemon's documents defensively: a missing or mistyped
 * field reads as fallback instead of crashing the CLI. */
const char *ctl_str(json_object *o, const char *key, const char *fallback);
int64_t ctl_int(json_object *o, const char *key, int64_t fallback);
double ctl_double(json_object *o, const char *key, double fallback);
bool ctl_bool(json_object *o, const char *key, bool fallback);
json_object *ctl_array(json_object *o, const char *key);
/* An integer field as text, "-" when missing or not an integer. */
void ctl_int_text(json_object *o, const char *key, char *buf, size_t len);

/* "3d 4h", "5m 12s", "800ms" */
void ctl_format_age(double seconds, char *buf, size_t len);

/* Renderers of the status, config-check and reload documents (ctl_render.c). */
void ctl_render_status(json_object *doc, FILE *f);
void ctl_render_config_check(json_object *doc, FILE *f);
void ctl_render_reload(json_object *doc, FILE *f);
/* the log levels; only subsystem's line when it is not NULL */
void ctl_render_log(json_object *doc, const char *subsystem, FILE *f);

/* Hardware documents (ctl_render_hw.c). */
void ctl_render_blades(json_object *doc, FILE *f);
void ctl_render_sensors(json_object *doc, FILE *f);
void ctl_render_sel(json_object *doc, FILE *f);
void ctl_render_events(json_object *doc, FILE *f);
void ctl_render_fence(json_object *doc, FILE *f);

/* Recovery documents (ctl_render.c): pairs with the cluster membership, VMs,
 * open faults and their history, recovery plans, and the answers to the
 * operator's failover and maintenance requests. */
void ctl_render_pairs(json_object *doc, FILE *f);
void ctl_render_vms(json_object *doc, FILE *f);
void ctl_render_faults(json_object *doc, FILE *f);
void ctl_render_plans(json_object *doc, FILE *f);
void ctl_render_failover(json_object *doc, FILE *f);
void ctl_render_maintenance(json_object *doc, FILE *f);
/* A protected VM's checkpoint/replay engine (ctl_render_rcv.c). */
void ctl_render_vm_status(json_object *doc, FILE *f);
void ctl_render_vm_order(json_object *doc, FILE *f);

/* atca-ftctl simulate (offline): returns a CTL_ exit code. */
/* template list|verify|delete, on the files of this blade */
int ctl_template_local(bool json, bool yes, const char *config, int argc, char **argv);

int ctl_simulate(const char *rules_path, const char *config_path, bool print_rules, int argc,
                 char **argv);

#endif
