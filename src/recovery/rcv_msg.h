/*
 * Cluster messages: what the daemons tell each other over corosync CPG
 * (DESIGN.md section 4). Pure code: encode to bytes, decode and validate.
 *
 * Wire format: a 32-byte header in network byte order
 *
 *   magic "AFTC" | version u16 | type u16 | body length u32 | sender slot u32 |
 *   sequence u64 | FNV-1a 32 of the body u32 | reserved u32 (0)
 *
 * then a JSON object. A receiver accepts only version 1; every field of the
 * body is checked (presence, type, range, name syntax) before anything of it
 * is used, and the sender slot must be the CPG node that sent it. A message
 * that fails any check is dropped whole, with the reason: it never changes
 * state halfway.
 */
#ifndef RCV_MSG_H
#define RCV_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rcv_plan.h"

#define RCV_MSG_MAGIC 0x41465443u /* "AFTC" */
#define RCV_MSG_VERSION 1
#define RCV_MSG_HDR 32
#define RCV_MSG_MAX (128 * 1024)
#define RCV_MSG_MAX_RUNS 16
#define RCV_MSG_MAX_FAULTS 16

enum rcv_msg_type {
	RCV_MSG_STATE = 1, /* a blade's own state: its VMs, libvirt, maintenance, plans, faults */
	RCV_MSG_PLAN,      /* a plan was started (by its executor) */
	RCV_MSG_PROGRESS,  /* a step of a plan began or ended, or the plan ended */
	RCV_MSG_TYPE_MAX
};
extern const char *const rcv_msg_type_names[RCV_MSG_TYPE_MAX];

struct rcv_msg_vm {
	char name[AF_VM_NAME_MAX];
	char state[16]; /* running, paused, shutoff, crashed, ... */
};

struct rcv_msg_run {
	uint64_t id;
	char state[16];
	unsigned step, n_steps;
	char summary[160];
};

struct rcv_msg_state {
	bool libvirt_up;
	bool maintenance;
	bool quorate;
	unsigned n_vms;
	struct rcv_msg_vm vms[RCV_MAX_VMS];
	unsigned n_runs;
	struct rcv_msg_run runs[RCV_MSG_MAX_RUNS];
	unsigned n_faults;
	char faults[RCV_MSG_MAX_FAULTS][96]; /* "id rule target" of the blade's open faults */
};

struct rcv_msg_plan {
	uint64_t id; /* the executor's run id */
	struct rcv_plan plan;
};

struct rcv_msg_progress {
	uint64_t id;
	unsigned step;
	char step_state[16]; /* started, done, failed */
	char run_state[16];  /* running, waiting-quorum, done, failed */
	char msg[96];
};

struct rcv_msg {
	enum rcv_msg_type type;
	uint32_t sender; /* slot */
	uint64_t seq;
	union {
		struct rcv_msg_state state;
		struct rcv_msg_plan plan;
		struct rcv_msg_progress progress;
	} u;
};

/* Encodes m into buf; returns the length or -ENOSPC / -EINVAL. */
int rcv_msg_encode(const struct rcv_msg *m, char *buf, size_t len);

/* Decodes and validates a received message. from_slot is the CPG sender
 * (0: not checked). Returns 0, or -EPROTO (unknown version), -EBADMSG
 * (anything else wrong); why says what, for the log. */
int rcv_msg_decode(const void *buf, size_t len, uint32_t from_slot, struct rcv_msg *out, char *why,
                   size_t whylen);

#endif
