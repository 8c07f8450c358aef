/*
 * atca-vmft: the checkpoint/replay engine of one protected VM on one blade.
 *
 * The primary engine runs the guest's QEMU (RAM in a shared file it maps,
 * QMP, the serial port routed through it) and every epoch pauses the guest,
 * captures device state (x-ignore-shared migration into the engine) and the
 * changed pages (vft_scan), resumes it and ships the epoch to the backup
 * engine on the partner blade (vft_proto). The backup engine commits each
 * epoch atomically (vft_store) and acknowledges it; serial output of an epoch
 * is released only when the epoch is acknowledged (output commit). On the
 * manager's order the backup promotes: QEMU from the committed RAM file and
 * device state, then it is a primary without a backup until a new backup
 * engine on the partner has been synchronised.
 *
 * Threads: the main thread owns a qb_loop (control socket, serial port,
 * QEMU's exit, messages from the other threads); the primary's epoch thread
 * owns the replication connection and QMP while protecting; the backup's
 * receiver thread owns its connection and the store. Threads never call
 * qb_log: they post messages through a pipe that the main loop logs and acts
 * on, so the timeline stays in one place.
 */
#ifndef VFT_ENG_H
#define VFT_ENG_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <qb/qbloop.h>

#include "vft_eng_output.h"
#include "af_config.h"
#include "af_fsm.h"
#include "vft_auth.h"
#include "vft_evlog.h"
#include "vft_proto.h"

struct vft_qmp;
struct vft_scan;
struct vft_store;
struct vft_tmpl;

enum eng_state {
	ES_BOOTING = 0, /* primary: QEMU starting */
	ES_SYNCING,     /* primary: full sync to the backup in progress */
	ES_PROTECTED,   /* primary: epochs acknowledged by the backup */
	ES_UNPROTECTED, /* primary: no backup (lost, or not yet there) */
	ES_WAITING,     /* backup: nothing committed yet */
	ES_STANDBY,     /* backup: committed epoch, primary connected */
	ES_ORPHANED,    /* backup: committed epoch, primary silent: waits for the manager */
	ES_PROMOTING,   /* backup: starting from the committed epoch */
	ES_FAILED,      /* the guest is gone (QEMU died, promotion failed) */
	ES_COUNT
};

enum eng_event {
	EE_QEMU_UP = 0,
	EE_LINK_UP,    /* primary: handshake done, full sync starts */
	EE_ACKED,      /* primary: an epoch was acknowledged */
	EE_LINK_LOST,  /* either side: the peer is gone */
	EE_COMMITTED,  /* backup: an epoch was committed */
	EE_SYNC_BEGIN, /* backup: a primary started a full sync */
	EE_PROMOTE,    /* backup: the manager's order */
	EE_PROMOTED,   /* backup: the guest runs here now */
	EE_FAIL,       /* QEMU died / promotion failed */
	EE_UNPROTECT,  /* primary: the manager stops protection */
	EE_STALLED,    /* primary: an epoch waits for its acknowledgement too long */
	EE_FLOWING,    /* primary: acknowledgements come again after a stall */
	EE_COUNT
};

/* What a worker thread posts to the main loop (fits in PIPE_BUF: atomic). */
enum eng_msg_kind { EM_LOG = 1, EM_EVENT, EM_STATS };
struct eng_msg {
	int kind;
	int prio;  /* EM_LOG */
	int event; /* EM_EVENT: enum eng_event */
	uint64_t epoch;
	double at; /* monotonic seconds when it happened */
	char text[400];
};

struct eng_stats {
	uint64_t epochs_sent, epochs_acked, epochs_committed;
	uint64_t last_epoch;   /* primary: last sent; backup: last committed */
	uint64_t acked_epoch;  /* primary: last acknowledged */
	double last_commit_at; /* monotonic s of the last ack/commit */
	uint64_t bytes_total, bytes_last_epoch, pages_last_epoch;
	uint64_t devstate_bytes;
	uint64_t events_last_epoch, events_total; /* event records shipped/committed */
	uint64_t disk_sync_bytes;                 /* primary: disk bytes of the last full sync */
	uint64_t syncs;                           /* full syncs started */
	uint64_t frozen_epoch; /* primary: the guest is held stopped after this acked epoch */
	struct eng_ring pause_ms, scan_ms, dev_ms, bytes, send_ms;
	double sync_started_at;
	double promote_ms;
	/* the last full sync (primary) */
	double sync_ms;                               /* from its start to its acknowledgement */
	double sync_hs_ms, sync_ram_ms, sync_disk_ms; /* its phases: handshake, copies */
	uint64_t sync_pages;                          /* pages it sent */
	uint64_t sync_tmpl_id;                        /* the template it was built on, 0 = none */
	uint64_t sync_tmpl_pages;                     /* pages the template saved */
	/* page batches on the wire (primary) */
	bool zc_on;
	uint64_t zc_sends, zc_copied, copy_sends;
	uint64_t tx_page_bytes, tx_cpu_ns; /* bytes sent, the CPU their sends took */
	uint64_t tx_mac_ns;                /* the CPU their tags took (authenticated link) */
	uint64_t rx_mac_ns;                /* backup: the CPU checking received frames' tags took */
};

/* The VM's templates on this blade (vft_eng_tmpl.c). */
struct eng_tmpl {
	struct vft_tmpl *t; /* NULL: templates off, or the directory unusable */
	char dir[4200];
	uint64_t disk_size; /* the guest's disk (the base a template keeps) */
	pthread_t thread;
	bool running, stop, now; /* under e->lock; now: refresh at once */
	pthread_cond_t wake;
	/* under e->lock */
	bool refreshing;
	uint64_t refreshes, failures;
	double last_at, last_s; /* monotonic s of the last refresh, its length */
	double retry_at;        /* nothing to copy yet: look again then */
	char last_error[200];
	/* the backup's committed image, a refresh's source (under e->lock) */
	char src_ram[4096], src_disk[4096];
	uint64_t src_epoch;
	/* the receiver thread's offer on the current connection */
	bool pinned;
	uint64_t pin_id, pin_pages, pin_blocks;
	unsigned pin_slot;
	void *pin; /* struct vft_tmpl_pin */
	/* the copy of the template into a new generation, beside the
	 * receiver: what the primary sends wins (copy_mu, bitmaps) */
	pthread_t copy_th;
	bool copying, copy_stop;
	pthread_mutex_t copy_mu;
	uint64_t *sent_pages, *sent_blocks; /* bitmaps: units the primary wrote */
	int copy_ram_fd, copy_disk_fd;
	bool copy_disk;
	int copy_rc;
	char copy_err[200];
	double copy_started, copy_ms;
	/* backup: the template's copy prepared before a primary connects */
	uint64_t base_id; /* the template it copies, 0 = none */
	bool base_disk;   /* with its disk base */
};

struct eng_qemu {
	pid_t pid;
	struct vft_qmp *qmp;
	int serial_fd;
	bool incoming; /* started with -incoming defer (standby) */
	uint64_t gen;  /* the store generation a standby maps */
	char ram_path[4096];
};

/* The guest's disk server (vft_eng_disk.c). */
struct eng_disk {
	char path[4096]; /* the file served to the next client */
	int listen_fd, conn_fd;
	pthread_t thread;
	bool running, stop;
	uint64_t reads, writes, flushes, errors, bytes_written; /* under e->lock */
	struct eng_ring write_us;                               /* write service time */
};

/* The guest's network (vft_eng_net.c). */
struct eng_net {
	int qfd;              /* datagrams with QEMU's NIC backend */
	int pfd;              /* packet socket on net_interface (primary only) */
	char qemu_path[4200]; /* QEMU's end */
	uint8_t mac[6];
	uint32_t ip; /* network order, 0 = none */
	pthread_mutex_t rxlock;
	uint8_t gbuf[65552], wbuf[65552];
	uint64_t tx_frames, tx_errors; /* atomic: the epoch thread releases */
	uint64_t rx_frames, rx_dropped, bad_frames, announcements;
	unsigned announce_left;
};

struct vft_eng {
	/* configuration */
	struct af_config *cfg;
	const struct af_cfg_vm *vm;
	unsigned local_slot, peer_slot;
	char dir[4096];      /* state_dir/NAME */
	char disk_dir[4096]; /* vmft.disk_dir/NAME */
	char peer_addr[AF_CFG_HOST_MAX];
	char listen_addr[AF_CFG_HOST_MAX];
	uint16_t port;
	uint64_t config_hash;
	/* the replication link's shared key (vmft.key_file or the VM's own);
	 * authenticate false: vmft.authenticate: no */
	bool authenticate;
	char key_path[AF_CFG_PATH_MAX];
	struct vft_key key;
	unsigned scan_threads;
	bool foreground;

	qb_loop_t *loop;
	struct af_fsm fsm;
	bool is_backup; /* current role */
	bool quitting;

	int msg_pipe[2];
	pthread_mutex_t lock; /* stats, flags shared with the worker threads */
	struct eng_stats st;
	struct eng_output out;
	struct eng_qemu q;
	struct eng_disk disk;
	struct eng_net net;
	struct eng_frameq netq; /* outbound frames under output commit */
	struct vft_evlog evlog; /* primary: the open epoch's events */
	struct eng_tmpl tmpl;

	/* primary */
	pthread_t epoch_thread;
	/* Test crash point (ATCA_VMFT_CRASH_AT=[qemu-]pause|transfer|commit:N):
	 * in the Nth incremental epoch of a session, at that moment, the
	 * engine SIGKILLs itself (or its QEMU), so that the lab test kills a
	 * primary exactly in the pause, the transfer, or the backup's commit. */
	int crash_point; /* ENG_CRASH_* */
	bool crash_qemu;
	uint64_t crash_epoch;
	bool epoch_running;
	bool protect_wanted; /* the manager wants a backup (default yes) */
	/* bumped by each "unprotect" (atomic): the session that ran then ends
	 * even if "protect" follows before it noticed, and the next one holds
	 * the guest's output again from its full sync */
	unsigned protect_gen;
	bool freeze_wanted;  /* hold the guest stopped after the next acked epoch */
	int zc_mode;         /* ENG_ZC_*: the control socket's switch (atomic) */
	bool stop_epochs;    /* asks the epoch thread to end */
	pthread_cond_t wake; /* epoch thread sleeps on it between retries */
	int repl_fd;         /* owned by the epoch thread */
	uint8_t *ram;        /* guest RAM mapping (read) */
	struct vft_scan *scan;
	int mig_listen_fd;
	uint64_t session;
	uint64_t next_epoch;

	/* backup */
	pthread_t rx_thread;
	/* Test fault (ATCA_VMFT_TEST_DISK=eio|slow:MS): the backup's commits
	 * fail as on a dead disk, or each takes MS longer, as on a slow one. */
	bool test_disk_eio;
	unsigned test_disk_slow_ms;
	bool rx_running;
	int listen_fd;
	int conn_fd;
	struct vft_store *store;
	uint64_t standby_gen_wanted;

	/* control socket */
	int ctl_fd;
	int clients[8];
	char client_buf[8][1024];
	size_t client_len[8];
	bool client_sub[8];
};

/* vft_eng_main.c */
void eng_hold_output(struct vft_eng *e, bool hold);
void eng_post(struct vft_eng *e, int kind, int prio, int event, uint64_t epoch, const char *fmt,
              ...) __attribute__((format(printf, 6, 7)));
#define eng_tlog(e, prio, ...) eng_post((e), EM_LOG, (prio), 0, 0, __VA_ARGS__)
void eng_fire(struct vft_eng *e, int event, const char *why);
void eng_emit(struct vft_eng *e, const char *event, const char *detail);
/* zero-copy: as configured (and off for a session whose every send the
 * kernel copies), or forced on or off by the control socket */
enum { ENG_ZC_AUTO = 0, ENG_ZC_ON, ENG_ZC_OFF };
enum { ENG_CRASH_NONE, ENG_CRASH_PAUSE, ENG_CRASH_TRANSFER, ENG_CRASH_COMMIT };
/* Fires the test crash point `point` in incremental epoch number n. */
void eng_crash_point(struct vft_eng *e, int point, uint64_t n);

/* The VM's checkpoint period: its own epoch, or vmft.epoch. */
static inline uint64_t eng_epoch_ms(const struct vft_eng *e)
{
	return e->vm->epoch_ms ? e->vm->epoch_ms : e->cfg->vmft.epoch_ms;
}

/* vft_eng_qemu.c */
int eng_qemu_start(struct vft_eng *e, const char *ram_path, bool incoming, char *err, size_t n);
void eng_qemu_kill(struct vft_eng *e);
uint64_t eng_config_hash(struct vft_eng *e);
int eng_serial_drain(struct vft_eng *e);

/* vft_eng_disk.c */
int eng_disk_start(struct vft_eng *e, char *err, size_t n);
void eng_disk_stop(struct vft_eng *e);
void eng_disk_set_path(struct vft_eng *e, const char *path);
int eng_disk_pick_primary(struct vft_eng *e, char *path, size_t n, char *err, size_t errn);

/* vft_eng_net.c */
int eng_net_open(struct vft_eng *e, char *err, size_t n);
void eng_net_watch(struct vft_eng *e);
void eng_net_before_qemu(struct vft_eng *e);
int eng_net_attach(struct vft_eng *e, char *err, size_t n);
int eng_net_drain(struct vft_eng *e);
void eng_net_announce(struct vft_eng *e);
void eng_net_close(struct vft_eng *e);

/* vft_eng_tmpl.c */
int eng_tmpl_start(struct vft_eng *e);
void eng_tmpl_stop(struct vft_eng *e);
int eng_tmpl_request(struct vft_eng *e, char *err, size_t n);
struct json_object;
struct json_object *eng_tmpl_json(struct vft_eng *e);
void eng_tmpl_publish_source(struct vft_eng *e, const char *ram, const char *disk, uint64_t epoch);
/* backup: what its WELCOME offers (pins the template), the hashes after it,
 * the new generation built from it, the end of the offer */
void eng_tmpl_offer(struct vft_eng *e, const struct vft_hello *hello, struct vft_welcome *w);
int eng_tmpl_send_hashes(struct vft_eng *e, int fd, uint32_t *seq, struct vft_mac *mac);
void eng_tmpl_prestage(struct vft_eng *e);
void eng_tmpl_drop_base(struct vft_eng *e);
int eng_tmpl_begin(struct vft_eng *e, uint64_t session, uint64_t epoch, uint64_t disk_size,
                   uint32_t flags, char *why, size_t n);
int eng_tmpl_build(struct vft_eng *e, uint32_t flags, char *why, size_t n);
int eng_tmpl_put_pages(struct vft_eng *e, uint32_t count, const uint64_t *pfns, const void *pages);
int eng_tmpl_put_disk(struct vft_eng *e, uint64_t off, const void *data, size_t len);
int eng_tmpl_finish(struct vft_eng *e, char *why, size_t n);
void eng_tmpl_abort(struct vft_eng *e);
void eng_tmpl_unpin(struct vft_eng *e);

/* vft_eng_primary.c */
int eng_primary_start(struct vft_eng *e, char *err, size_t n);
void eng_primary_stop(struct vft_eng *e);

/* vft_eng_backup.c */
int eng_backup_start(struct vft_eng *e, char *err, size_t n);
void eng_backup_stop(struct vft_eng *e);
int eng_backup_promote(struct vft_eng *e, char *err, size_t n);
void eng_standby_refresh(struct vft_eng *e);

/* shared socket helpers (vft_eng_primary.c) */
int eng_write_all(int fd, const struct iovec *iov, int iovcnt);
int eng_read_full(int fd, void *buf, size_t len);
/* mac: the session's key of this direction (tags the frame), NULL = none */
int eng_send_frame(int fd, uint32_t *seq, struct vft_mac *mac, uint16_t type, uint64_t epoch,
                   const struct iovec *iov, int iovcnt);

#endif
