/*
 * atca-ftd.conf: what the daemon knows about the shelf, its blades, pairs,
 * VMs, detection timing, SNMP targets and logging.
 *
 * The file uses the brace syntax corosync users know:
 *
 *   blade {
 *       slot: 1
 *       host: blade1
 *   }
 *
 * Loading is all-or-nothing: af_cfg_load() either returns a complete,
 * validated configuration or a list of "file:line: what is wrong" errors and
 * nothing else. A running daemon swaps configurations only after a complete
 * load succeeded, so a bad file never replaces a good one.
 */
#ifndef AF_CONFIG_H
#define AF_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "af_log.h"

#define AF_MAX_BLADES 16
#define AF_MAX_PAIRS (AF_MAX_BLADES / 2)
#define AF_MAX_VMS 128
#define AF_MAX_SHMC 2
#define AF_MAX_SNMP_TARGETS 8
/* the text of snmp.engine_id: 5 bytes of header + text make an
 * snmpEngineID of at most 32 bytes */
#define AF_SNMP_ENGINE_ID_MAX 27

#define AF_CFG_NAME_MAX 64
#define AF_CFG_HOST_MAX 128
#define AF_CFG_PATH_MAX 256
#define AF_CFG_KEYS_MAX 24 /* most keys one section may have */

#define AF_CFG_MAX_ERRORS 32
#define AF_CFG_ERR_MAX 256

/* Source position of a section and of each of its keys (by key index in the
 * section's schema), so that cross-checks can point at the offending key. */
struct af_cfg_where {
	uint32_t line;
	uint32_t key_line[AF_CFG_KEYS_MAX];
};

enum af_protection { AF_PROT_NONE = 0, AF_PROT_RESTART, AF_PROT_FT, AF_PROT_COUNT };
/* the bus of an engine VM's disk */
enum af_disk_bus { AF_BUS_VIRTIO = 0, AF_BUS_IDE, AF_BUS_COUNT };
enum af_ipmi_priv { AF_PRIV_USER = 0, AF_PRIV_OPERATOR, AF_PRIV_ADMIN, AF_PRIV_COUNT };
enum af_snmp_version { AF_SNMP_V2C = 0, AF_SNMP_V3, AF_SNMP_VERSION_COUNT };
enum af_snmp_notify { AF_SNMP_TRAP = 0, AF_SNMP_INFORM, AF_SNMP_NOTIFY_COUNT };
enum af_snmp_seclevel {
	AF_SNMP_NOAUTHNOPRIV = 0,
	AF_SNMP_AUTHNOPRIV,
	AF_SNMP_AUTHPRIV,
	AF_SNMP_SECLEVEL_COUNT
};
enum af_snmp_auth {
	AF_SNMP_AUTH_SHA = 0,
	AF_SNMP_AUTH_SHA224,
	AF_SNMP_AUTH_SHA256,
	AF_SNMP_AUTH_SHA384,
	AF_SNMP_AUTH_SHA512,
	AF_SNMP_AUTH_COUNT
};
enum af_snmp_priv {
	AF_SNMP_PRIV_AES = 0,
	AF_SNMP_PRIV_AES192,
	AF_SNMP_PRIV_AES256,
	AF_SNMP_PRIV_COUNT
};

extern const char *const af_protection_names[AF_PROT_COUNT];
extern const char *const af_disk_bus_names[AF_BUS_COUNT];

/* Secrets read from a 0600 credentials file; never printed, wiped on free. */
struct af_ipmi_credentials {
	char username[17]; /* IPMI 2.0: 16 bytes */
	char password[21]; /* RMCP+: 20 bytes */
	uint8_t k_g[20];   /* BMC key; all zero = not set */
	bool has_k_g;
};

struct af_snmp_credentials {
	char auth_password[128];
	char priv_password[128];
};

struct af_cfg_daemon {
	struct af_cfg_where where;
	char state_dir[AF_CFG_PATH_MAX];
	char pidfile[AF_CFG_PATH_MAX];
	char ipc_name[32];
	char ipc_group[AF_CFG_NAME_MAX]; /* "" = root only */
	gid_t ipc_gid;                   /* resolved; (gid_t)-1 = none */
	uint32_t ipc_max_clients;
	uint32_t local_blade;                /* 0 = find by host name */
	char failure_rules[AF_CFG_PATH_MAX]; /* absent file: the built-in rules */
};

struct af_cfg_shmc {
	struct af_cfg_where where;
	char address[AF_CFG_HOST_MAX];
	uint32_t port;
};

struct af_cfg_shelf {
	struct af_cfg_where where;
	char name[AF_CFG_NAME_MAX];
	char credentials[AF_CFG_PATH_MAX];
	uint32_t cipher_suite;
	int privilege; /* enum af_ipmi_priv */
	unsigned n_managers;
	struct af_cfg_shmc managers[AF_MAX_SHMC];
	struct af_ipmi_credentials cred; /* loaded from credentials */
	bool cred_loaded;
};

struct af_cfg_blade {
	struct af_cfg_where where;
	uint32_t slot;
	uint32_t ipmc; /* IPMB-0 address; default 0x80 + 2 * slot */
	char host[AF_CFG_HOST_MAX];
	char libvirt_uri[AF_CFG_PATH_MAX];
	char inband_device[AF_CFG_PATH_MAX]; /* e.g. /dev/ipmi0, "" = over LAN */
	char migration_uri[AF_CFG_PATH_MAX]; /* QEMU's migration stream to here; "" = libvirt's */
	char replication_address[AF_CFG_HOST_MAX]; /* vmft replication link; "" = host */
};

struct af_cfg_pair {
	struct af_cfg_where where;
	uint32_t blades[2];
	bool derived; /* formed by slot order because the file has no pairs */
};

struct af_cfg_vm {
	struct af_cfg_where where;
	char name[AF_CFG_NAME_MAX];
	char domain[AF_CFG_NAME_MAX]; /* libvirt domain; default = name */
	uint32_t blade;               /* home blade (slot) */
	int protection;               /* enum af_protection */
	uint32_t max_restarts;
	uint64_t restart_window_ms;
	char definition[AF_CFG_PATH_MAX]; /* domain XML to define it elsewhere; "" = defined */
	/* protection ft: the checkpoint/replay engine runs the guest itself */
	uint64_t memory; /* bytes of guest RAM */
	uint32_t vcpus;
	char disk[AF_CFG_PATH_MAX];      /* raw image: shared (libvirt) or the seed (ft) */
	int disk_bus;                    /* enum af_disk_bus */
	uint32_t port;                   /* replication TCP port; 0 = vmft.port + index */
	char qemu_args[AF_CFG_PATH_MAX]; /* extra QEMU arguments, space separated */
	uint64_t epoch_ms;               /* checkpoint period; 0: vmft.epoch */
	/* its network: frames through the engine (output commit) */
	char nic[AF_CFG_PATH_MAX];      /* QEMU NIC device ("e1000", ...); "" = no NIC */
	char mac[18];                   /* xx:xx:xx:xx:xx:xx; derived from the name if unset */
	char net_interface[16];         /* the blade's interface the guest's frames use */
	char ip[AF_CFG_HOST_MAX];       /* the guest's IPv4 address, for gratuitous ARP */
	char key_file[AF_CFG_PATH_MAX]; /* replication link key; "" = vmft.key_file */
};

/* The checkpoint/replay engine (atca-vmft) of protected VMs. */
struct af_cfg_vmft {
	struct af_cfg_where where;
	char state_dir[AF_CFG_PATH_MAX];   /* per-VM runtime + committed images (tmpfs) */
	char disk_dir[AF_CFG_PATH_MAX];    /* per-VM copies of the guest's disk (persistent) */
	char console_dir[AF_CFG_PATH_MAX]; /* released serial output, NAME.console */
	char engine[AF_CFG_PATH_MAX];      /* the atca-vmft program */
	char qemu[AF_CFG_PATH_MAX];
	uint64_t epoch_ms;
	uint32_t scan_threads; /* 0 = one per online CPU (at most 8) */
	uint32_t port;         /* first replication port */
	uint64_t heartbeat_ms; /* primary<->backup silence that means the peer is lost */
	uint64_t ack_timeout_ms;
	bool standby;           /* backup keeps a QEMU waiting for promotion */
	uint64_t output_buffer; /* serial bytes held for output commit before the guest waits */
	bool restart_backup;    /* atca-ftd starts a dead backup engine again */
	/* templates (FVMM): a full sync sends only what differs from the
	 * backup's template */
	char template_dir[AF_CFG_PATH_MAX]; /* per-VM templates (persistent) */
	bool templates;                     /* offer and use templates */
	uint64_t template_interval_ms;      /* continuous templating period, 0 = off */
	uint64_t template_rate;             /* bytes/s a refresh reads at most */
	bool zerocopy;                      /* MSG_ZEROCOPY for page batches */
	uint64_t zerocopy_threshold;        /* bytes: smaller batches are copied */
	uint64_t send_buffer;               /* bytes of captured epochs queued for sending */
	bool authenticate;                  /* the replication link proves the shared key */
	char key_file[AF_CFG_PATH_MAX];     /* that key (0600, at least 32 bytes) */
};

struct af_cfg_detection {
	struct af_cfg_where where;
	uint64_t sensor_interval_ms;
	uint64_t sel_interval_ms;
	uint64_t ipmc_timeout_ms;
	uint64_t ipmc_retry_max_ms;
	uint64_t hypervisor_interval_ms;
	uint64_t fence_timeout_ms;
};

enum af_rcv_mode { AF_RCV_ACT = 0, AF_RCV_DRY_RUN, AF_RCV_MODE_COUNT };
enum af_no_quorum { AF_NOQ_STOP = 0, AF_NOQ_WAIT, AF_NOQ_COUNT };
extern const char *const af_rcv_mode_names[AF_RCV_MODE_COUNT];
extern const char *const af_no_quorum_names[AF_NOQ_COUNT];

struct af_cfg_recovery {
	struct af_cfg_where where;
	int mode;             /* enum af_rcv_mode */
	int no_quorum_policy; /* enum af_no_quorum: what a blade that lost quorum does */
	char cpg_group[AF_CFG_NAME_MAX];
	uint64_t quorum_timeout_ms;
	uint64_t stop_timeout_ms;
	uint64_t start_timeout_ms;
	uint64_t migrate_timeout_ms;
	uint64_t promote_timeout_ms;
	bool migrate_unsafe; /* VIR_MIGRATE_UNSAFE: storage shared, libvirt cannot tell */
};

struct af_cfg_snmp_target {
	struct af_cfg_where where;
	char address[AF_CFG_HOST_MAX];
	uint32_t port;
	int version; /* enum af_snmp_version */
	int notify;  /* enum af_snmp_notify */
	char community[AF_CFG_NAME_MAX];
	char user[AF_CFG_NAME_MAX];
	int security_level; /* enum af_snmp_seclevel */
	int auth_protocol;  /* enum af_snmp_auth */
	int priv_protocol;  /* enum af_snmp_priv */
	char credentials[AF_CFG_PATH_MAX];
	uint32_t retries;
	uint64_t timeout_ms;
	struct af_snmp_credentials cred;
	bool cred_loaded;
};

struct af_cfg_snmp {
	struct af_cfg_where where;
	uint32_t max_per_minute;  /* refill of the notifier-wide bucket, per minute */
	uint32_t burst;           /* notifier-wide bucket: notifications in a burst */
	uint32_t key_burst;       /* per (notification, target): in a burst */
	uint64_t key_interval_ms; /* ... and one more per this */
	/* text of our snmpEngineID (v3 traps); "" = the local blade's host name */
	char engine_id[AF_SNMP_ENGINE_ID_MAX + 1];
	unsigned n_targets;
	struct af_cfg_snmp_target targets[AF_MAX_SNMP_TARGETS];
};

struct af_cfg_subsys {
	struct af_cfg_where where;
	char name[AF_CFG_NAME_MAX];
	int level;
};

struct af_cfg_logging {
	struct af_cfg_where where;
	bool to_stderr;
	bool to_syslog;
	int syslog_facility;
	bool to_logfile;
	char logfile[AF_CFG_PATH_MAX];
	int level;
	bool blackbox;
	uint64_t blackbox_size;
	unsigned n_subsys;
	struct af_cfg_subsys subsys[AF_SS_COUNT];
};

struct af_config {
	char path[AF_CFG_PATH_MAX]; /* the file this was loaded from */
	struct af_cfg_daemon daemon;
	struct af_cfg_shelf shelf;
	unsigned n_blades;
	struct af_cfg_blade blades[AF_MAX_BLADES];
	unsigned n_pairs;
	struct af_cfg_pair pairs[AF_MAX_PAIRS];
	unsigned n_vms;
	struct af_cfg_vm vms[AF_MAX_VMS];
	struct af_cfg_detection detection;
	struct af_cfg_recovery recovery;
	struct af_cfg_vmft vmft;
	struct af_cfg_snmp snmp;
	struct af_cfg_logging logging;
};

/* Errors and warnings of one load. Every message is "file:line: text". */
struct af_cfg_diag {
	unsigned n_errors;
	unsigned n_errors_dropped;
	char errors[AF_CFG_MAX_ERRORS][AF_CFG_ERR_MAX];
	unsigned error_line[AF_CFG_MAX_ERRORS];
	unsigned n_warnings;
	char warnings[AF_CFG_MAX_ERRORS][AF_CFG_ERR_MAX];
};

enum af_cfg_flags {
	/* Do not open credentials files (fuzzing, "config check" of a file
	 * whose credentials live on another machine). */
	AF_CFG_SKIP_CREDENTIALS = 1u << 0,
	/* Do not resolve ipc_group through NSS (fuzzing). */
	AF_CFG_SKIP_NSS = 1u << 1,
};

#define AF_CFG_MAX_FILE_SIZE (1024 * 1024)

int af_cfg_load(const char *path, unsigned flags, struct af_config **out, struct af_cfg_diag *diag);
int af_cfg_parse_buffer(const char *name, const char *buf, size_t len, unsigned flags,
                        struct af_config **out, struct af_cfg_diag *diag);
void af_cfg_free(struct af_config *cfg);

/* Prints the effective configuration (every key, defaults filled in, derived
 * pairs marked) in the file syntax; the output loads back to the same
 * configuration. Secrets are never printed. */
int af_cfg_print(const struct af_config *cfg, FILE *f);

/* Lookups. */
const struct af_cfg_blade *af_cfg_blade_by_slot(const struct af_config *cfg, uint32_t slot);
const struct af_cfg_blade *af_cfg_blade_by_host(const struct af_config *cfg, const char *host);

/* A protected VM whose QEMU the checkpoint engine (atca-vmft) runs, rather
 * than libvirt: protection ft with a disk of its own. */
/* "xx:xx:xx:xx:xx:xx" (unicast) into mac: 0 or -EINVAL. */
int af_cfg_parse_mac(const char *s, uint8_t mac[6]);

static inline bool af_cfg_vm_has_engine(const struct af_cfg_vm *v)
{
	return v->protection == AF_PROT_FT && v->disk[0] != '\0';
}
/* Partner slot of a blade, or 0 if it is not in a pair. */
uint32_t af_cfg_partner(const struct af_config *cfg, uint32_t slot);

/* Converts the logging section to logger settings. */
void af_cfg_log_settings(const struct af_config *cfg, struct af_log_settings *s);

/* Reads an IPMI credentials file: must be a regular file owned by the
 * effective user (or root) with no group/other permission bits. */
int af_cred_load_ipmi(const char *path, struct af_ipmi_credentials *cred, char *err, size_t errlen);
int af_cred_load_snmp(const char *path, struct af_snmp_credentials *cred, char *err, size_t errlen);
/* Reads a key file with the same checks (regular, owner only, root's or
 * ours): one line of at least 64 hex digits, else raw bytes; at least
 * AF_KEY_MIN bytes of key. *len gets the key's length (at most cap). */
#define AF_KEY_MIN 32
int af_cred_load_key(const char *path, uint8_t *key, size_t cap, size_t *len, char *err,
                     size_t errlen);

#endif
