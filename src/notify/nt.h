/*
 * notify: the SNMP notifier of atca-ftd. It sends the operator's NMS one
 * SNMPv2-Trap or InformRequest per event worth a person's attention (a fault
 * raised or cleared, a recovery's progress, a hot-swap transition, a pair's
 * protection, a shelf manager switchover, a stalled replication) to every
 * target of the "snmp" section: SNMPv2c or SNMPv3 USM (SHA-2 family auth,
 * AES privacy), traps or acknowledged informs that net-snmp retransmits.
 *
 * All I/O runs on the daemon's qb_loop: each session's socket is a poll
 * source and net-snmp's retransmission timer a loop timer, so nothing here
 * waits. Without a loop (unit tests) nt_poll_once() does the same work.
 *
 * A token bucket per (notification, target) and one for the whole notifier
 * keep a flapping sensor from flooding the NMS; what they hold back is
 * counted and announced in the next notification that passes.
 *
 * OIDs, as agents/snmp/ATCA-FT-MIB.txt defines them (99999 is a placeholder
 * enterprise number until the project has its own PEN):
 *   atcaFtMIB            .1.3.6.1.4.1.99999.42
 *   atcaFtNotifications  atcaFtMIB.0.N  (enum nt_kind)
 *   atcaFtObjects        atcaFtMIB.1.N  (enum nt_object; the variable
 *                        bindings name the objects themselves, no ".0")
 * Each notification's variable bindings are sysUpTime.0, snmpTrapOID.0,
 * then the MIB's OBJECTS in their order (atcaFtNodeName among them), and
 * atcaFtDescription after them where OBJECTS does not list it.
 */
#ifndef NT_H
#define NT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "af_module.h"

struct nt;

/* The notifications: N of atcaFtNotifications.N. */
enum nt_kind {
	NT_FAULT_RAISED = 1,
	NT_FAULT_CLEARED = 2,
	NT_RECOVERY_STARTED = 3,
	NT_RECOVERY_SUCCEEDED = 4,
	NT_RECOVERY_FAILED = 5,
	NT_HOTSWAP_CHANGE = 6,
	NT_PROTECTION_LOST = 7,
	NT_PROTECTION_RESTORED = 8,
	NT_SHELF_MANAGER_SWITCHOVER = 9,
	NT_REPLICATION_STALLED = 10,
	NT_KIND_MAX = NT_REPLICATION_STALLED
};

/* The objects: N of atcaFtObjects.N. */
enum nt_object {
	NT_OBJ_FAULT_ID = 1,       /* Unsigned32 */
	NT_OBJ_FAULT_LAYER = 2,    /* INTEGER, enum nt_mib_layer */
	NT_OBJ_FAULT_SEVERITY = 3, /* INTEGER, enum nt_mib_severity */
	NT_OBJ_TARGET = 4,         /* DisplayString: "blade 3", "vm db1" */
	NT_OBJ_FAULT_NAME = 5,     /* DisplayString */
	NT_OBJ_DESCRIPTION = 6,    /* DisplayString */
	NT_OBJ_PLAN_ID = 7,        /* Unsigned32 */
	NT_OBJ_BLADE_SLOT = 8,     /* Unsigned32 */
	NT_OBJ_HOTSWAP_STATE = 9,  /* INTEGER m0(1)..m7(8) */
	NT_OBJ_PREV_HOTSWAP = 10,  /* INTEGER m0(1)..m7(8) */
	NT_OBJ_PAIR_NAME = 11,     /* DisplayString */
	NT_OBJ_VM_NAME = 12,       /* DisplayString */
	NT_OBJ_SHELF_MANAGER = 13, /* DisplayString: the new active one */
	NT_OBJ_EPOCH = 14,         /* Counter64 */
	NT_OBJ_NODE_NAME = 15,     /* DisplayString: the sending blade */
};

/* atcaFtFaultLayer and atcaFtFaultSeverity as the MIB numbers them. A value
 * the caller got wrong is sent as 0 rather than dropping the notification
 * (an operator must still hear about the fault). */
enum nt_mib_layer {
	NT_MIB_LAYER_UNKNOWN = 0,
	NT_MIB_LAYER_HARDWARE = 1,
	NT_MIB_LAYER_HYPERVISOR = 2,
	NT_MIB_LAYER_VM = 3,
	NT_MIB_LAYER_CLUSTER = 4,
};
enum nt_mib_severity {
	NT_MIB_SEV_UNKNOWN = 0,
	NT_MIB_SEV_INFO = 1,
	NT_MIB_SEV_WARNING = 2,
	NT_MIB_SEV_MINOR = 3,
	NT_MIB_SEV_MAJOR = 4,
	NT_MIB_SEV_CRITICAL = 5,
	NT_MIB_SEV_PREDICTIVE = 6, /* the failure model's own severities */
	NT_MIB_SEV_DEGRADED = 7,
	NT_MIB_SEV_FATAL = 8,
};

/* A fault of the cluster itself (membership, quorum), for which af_fault.h
 * has no layer: nt_fault() accepts it beside enum af_layer. */
#define NT_LAYER_CLUSTER 0x100

/* enum af_layer (or NT_LAYER_CLUSTER) and enum af_severity to the MIB's
 * numbers (hardware(1).. cluster(4); predictive(6), degraded(7),
 * fatal(8)); anything else is 0. */
int nt_mib_layer(int layer);
int nt_mib_severity(int severity);

enum nt_recovery_phase { NT_PHASE_STARTED = 0, NT_PHASE_SUCCEEDED, NT_PHASE_FAILED };

/* Settings the configuration has no key for (yet). Zero means the default. */
struct nt_options {
	/* net-snmp's persistent state (snmpEngineBoots must survive restarts
	 * or an NMS drops our v3 traps as replays); NULL: <state_dir>/snmp */
	const char *persistent_dir;
	const char *node_name;     /* atcaFtNodeName; NULL: the local blade's host */
	const char *engine_id;     /* text of our snmpEngineID; NULL: node name */
	uint32_t key_burst;        /* per (notification, target); default 5 */
	uint64_t key_refill_ms;    /* one more per...; default 10 s */
	uint32_t global_burst;     /* whole notifier; default 20 */
	uint64_t global_refill_ms; /* default 60 s / snmp.max_per_minute */
	uint64_t suppress_log_ms;  /* one log line per key per...; 1 min */
};

/* Creates the module and opens a session per configured target; with no
 * target it stays idle and net-snmp is not even initialised. net-snmp's
 * state is process-wide and lives until exit: the first notifier with a
 * target sets its persistent directory and engine ID for every later one.
 * A target that cannot be opened (an address that does not resolve, v3
 * credentials not loaded) is logged, shown as "down" and skipped: init
 * still returns 0, and nt_reconfigure() tries it again. Addresses are resolved here, never when
 * sending: prefer numeric addresses, a resolver can make this wait.
 * env is copied; env->cfg must stay valid until the next nt_reconfigure()
 * or nt_fini(). Returns 0 or -errno. */
int nt_init(struct nt **out, const struct af_module_env *env);
int nt_init_with(struct nt **out, const struct af_module_env *env, const struct nt_options *opts);

/* Switches to a new configuration (already validated): sessions whose
 * target did not change are kept (their informs in flight too), the others
 * are closed and opened anew. Returns 0 or -errno; on error the module keeps
 * running on the previous configuration. */
int nt_reconfigure(struct nt *nt, const struct af_config *cfg);

void nt_describe(const struct nt *nt, struct af_module_status *st);

/* Closes every session; informs still unanswered are cancelled (counted).
 * Must not be called from inside the loop's dispatch of this module. */
void nt_fini(struct nt *nt);

/* ---- notifications ---------------------------------------------------------------- */

/* Each builds one notification (sysUpTime.0, snmpTrapOID.0, its objects,
 * see the top) and hands it to every target without waiting. NULL strings
 * are sent empty, strings are cut to the MIB's SIZE (255 bytes where it
 * gives none) and bytes outside printable ASCII become '?'. Returns 0
 * (handed to net-snmp, or no target is configured), -EAGAIN (held back by
 * the rate limit, and counted), -EIO (no target took it), -ENOMEM, or
 * -EINVAL (nt is NULL, a recovery phase is not enum nt_recovery_phase). */
int nt_fault(struct nt *nt, bool raised, uint32_t id, int layer, int severity, const char *name,
             const char *target, const char *text);
int nt_recovery(struct nt *nt, int phase, uint32_t plan, const char *target, const char *text);
/* States are M numbers 0..7 (M0 not installed .. M7 communication lost). */
int nt_hotswap(struct nt *nt, unsigned slot, int old_state, int new_state);
int nt_protection(struct nt *nt, bool lost, const char *pair, const char *vm, const char *text);
int nt_switchover(struct nt *nt, const char *shelf_manager);
int nt_stalled(struct nt *nt, const char *vm, uint64_t epoch);

/* ---- status ----------------------------------------------------------------------- */

struct nt_target_stats {
	char address[AF_CFG_HOST_MAX + 16]; /* "udp:127.0.0.1:162" */
	const char *version;                /* "2c", "3" */
	const char *type;                   /* "trap", "inform" */
	const char *state;                  /* "ready", "failing", "down" */
	uint64_t sent;                      /* handed to the network */
	uint64_t acked;                     /* informs the NMS acknowledged */
	uint64_t failed;                    /* not sent, refused or timed out */
	uint64_t timeouts;                  /* of failed: informs never answered */
	uint64_t cancelled;                 /* informs dropped by fini/reconfigure */
	uint64_t suppressed;                /* notifications the rate limit held back */
	unsigned outstanding;               /* informs waiting for their answer */
};

unsigned nt_target_count(const struct nt *nt);
/* 0, -ENOENT past the last target, -EINVAL. */
int nt_target_stats(const struct nt *nt, unsigned i, struct nt_target_stats *st);

/* Our snmpEngineID as "0x8000..." hex: an NMS receiving v3 traps needs it
 * (snmptrapd: createUser -e ENGINEID user SHA ... AES ...). -ENOTCONN while
 * net-snmp is not initialised (no target), -ENOSPC, -EINVAL. */
int nt_engine_id(const struct nt *nt, char *hex, size_t len);

/* Without a loop (tests): reads what the sessions received and runs
 * net-snmp's retransmissions and timeouts for timeout_ms, sleeping between
 * rounds (it never polls). Returns 0 or -EINVAL. */
int nt_poll_once(struct nt *nt, int timeout_ms);

#endif
