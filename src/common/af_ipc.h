/*
 * The atca-ftd IPC protocol, spoken over a libqb IPC service.
 *
 * Request:  qb_ipc_request_header | af_ipc_req_hdr | TLV arguments
 * Response: qb_ipc_response_header | af_ipc_rsp_hdr | JSON document
 *
 * Requests are small and binary so the daemon's decoder is simple enough to
 * fuzz exhaustively; responses are JSON so scripts get the same data the CLI
 * renders as tables. Every request carries a protocol version; a daemon
 * answers a version it does not speak with -EPROTONOSUPPORT and the range it
 * does speak, so a newer CLI can fall back.
 */
#ifndef AF_IPC_H
#define AF_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qb/qbipc_common.h>

#define AF_IPC_VERSION 1     /* what this build speaks by default */
#define AF_IPC_VERSION_MIN 1 /* oldest version this build still accepts */

#define AF_IPC_REQ_MAGIC 0x51544641u /* "AFTQ" */
#define AF_IPC_RSP_MAGIC 0x52544641u /* "AFTR" */

#define AF_IPC_REQ_MAX 4096         /* whole request, libqb header included */
#define AF_IPC_RSP_MAX (256 * 1024) /* whole response */
#define AF_IPC_ARG_MAX 255          /* longest string argument */

enum af_ipc_op {
	AF_OP_HELLO = 1,    /* versions, daemon identity */
	AF_OP_STATUS,       /* overall state */
	AF_OP_CONFIG_CHECK, /* validate the daemon's config file, do not apply */
	AF_OP_RELOAD,       /* validate and apply the config file (as SIGHUP) */
	AF_OP_BLADES,       /* slots, IPMCs, hot-swap states, health */
	AF_OP_SENSORS,      /* sensor readings [BLADE] */
	AF_OP_SEL,          /* recent SEL records [BLADE] [COUNT] */
	AF_OP_EVENTS,       /* recent events [BLADE] [COUNT] */
	AF_OP_FENCE,        /* fence BLADE: answered when confirmed or failed */
	AF_OP_UNFENCE,      /* unfence BLADE: likewise */
	AF_OP_PAIRS,        /* pairs and their protection state */
	AF_OP_VMS,          /* configured VMs: where they run, their state */
	AF_OP_FAULTS,       /* open faults and recent history [COUNT] */
	AF_OP_PLANS,        /* recovery plans in progress and recent [COUNT] */
	AF_OP_FAILOVER,     /* switch a VM or a whole blade (BLADE argument) over to the partner */
	AF_OP_MAINTENANCE,  /* BLADE, COUNT 1 = evacuate and hold, 0 = release */
	AF_OP_VMFT,         /* a protected VM's engine: BLADE carries the VM name, COUNT the
	                       command (enum af_vmft_cmd) */
	AF_OP_LOG,          /* log levels: without COUNT shown; COUNT a syslog level (LOG_ERR..
	                       LOG_DEBUG) sets it, AF_LOG_RESET drops what was set; BLADE
	                       carries a subsystem name (none: every subsystem) */
	AF_OP_COUNT
};

enum af_vmft_cmd {
	AF_VMFT_STATUS = 0,
	AF_VMFT_PROMOTE,
	AF_VMFT_PROMOTE_FORCE, /* after fencing, even if the primary seems connected */
	AF_VMFT_PROTECT,
	AF_VMFT_UNPROTECT,
	AF_VMFT_RELEASE,
	AF_VMFT_START_PRIMARY,
	AF_VMFT_START_BACKUP,
	AF_VMFT_TEMPLATE, /* make a template now */
	AF_VMFT_QUIT,     /* the engine stops (its guest with it), not restarted */
	AF_VMFT_CMD_COUNT
};

/* AF_OP_LOG's COUNT: back to what the configuration says */
#define AF_LOG_RESET 255u

enum af_ipc_arg_type {
	AF_ARG_CLIENT = 1, /* string: client program and version, for the log */
	AF_ARG_BLADE,      /* string: slot number or host name */
	AF_ARG_COUNT,      /* uint32: how many records */
	AF_ARG_TYPE_MAX
};

struct af_ipc_req_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t op;
	uint32_t seq;
	uint32_t payload_len;
};

struct af_ipc_rsp_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t op;
	uint32_t seq;
	int32_t status; /* 0 or -errno */
	uint32_t payload_len;
};

/* A decoded request: arguments are copied out, nothing points into the
 * message buffer. */
struct af_ipc_request {
	uint16_t version;
	uint16_t op;
	uint32_t seq;
	bool has_client;
	char client[AF_IPC_ARG_MAX + 1];
	bool has_blade;
	char blade[64];
	bool has_count;
	uint32_t count;
};

struct af_ipc_response {
	uint16_t version;
	uint16_t op;
	uint32_t seq;
	int32_t status;
	const char *payload; /* points into the received buffer, not terminated */
	size_t payload_len;
};

const char *af_ipc_op_name(unsigned op);

/* Encodes req (with its set arguments) into buf; returns the total size or
 * -EMSGSIZE / -EINVAL. */
int af_ipc_req_encode(void *buf, size_t len, const struct af_ipc_request *req);

/* Decodes and validates a request. Returns 0, or -EBADMSG (malformed),
 * -EMSGSIZE (too large), -EPROTONOSUPPORT (version), -EOPNOTSUPP (operation),
 * -EINVAL (bad argument); err then says what was wrong. On -EPROTONOSUPPORT
 * and -EOPNOTSUPP req->seq/op/version are filled so an answer can be sent. */
int af_ipc_req_decode(const void *buf, size_t len, struct af_ipc_request *req, char *err,
                      size_t errlen);

/* Fills the headers in front of a payload already placed at
 * buf + af_ipc_rsp_payload_offset(). Returns the total size. */
size_t af_ipc_rsp_payload_offset(void);
size_t af_ipc_rsp_finish(void *buf, uint16_t op, uint32_t seq, int32_t status, size_t payload_len);

/* Validates a response for the request with sequence number seq. */
int af_ipc_rsp_decode(const void *buf, size_t len, uint32_t seq, struct af_ipc_response *rsp,
                      char *err, size_t errlen);

#endif
