/*
 * vmft-bridge: the checkpoint/replay engine that keeps hot backups of protected
 * VMs on the partner blade, and its bridge to the manager.
 */
#ifndef VFT_H
#define VFT_H

#include <stdbool.h>
#include <stddef.h>

#include "af_module.h"

struct vft;

/* Creates the module. env is copied; env->cfg must stay valid until the next
 * vft_reconfigure() or vft_fini(). Returns 0 or -errno. */
int vft_init(struct vft **out, const struct af_module_env *env);

/* Switches to a new configuration (already validated). Returns 0 or -errno;
 * on error the module keeps running on the previous configuration. */
int vft_reconfigure(struct vft *m, const struct af_config *cfg);

void vft_describe(const struct vft *m, struct af_module_status *st);

void vft_fini(struct vft *m);

/* Sends one command to the engine of a protected VM on this blade ("status",
 * "promote", "protect", "unprotect", "release", "quit") and returns its
 * one-line JSON answer in reply. 0, -ENOENT (no such protected VM),
 * -ENOTCONN (no engine runs it here) or -errno. Blocks until the engine
 * answers (a promotion: milliseconds, at most a few seconds). */
int vft_request(struct vft *m, const char *vm, const char *cmd, bool force, char *reply,
                size_t len);

/* An order the recovery planner gives the engine of a protected VM on this
 * blade, carried out off the loop: "promote" (force: the old primary is
 * confirmed off, do not wait for the link to drop), "quit" (the engine
 * stops, with its guest), "start" (the engine here, a backup, stops; a
 * primary engine boots the guest from its disk), "release" (the primary's
 * output held for a backup that is gone goes out). done(cookie, 0 or -errno,
 * why) is called later from the loop, unless forgotten first. Returns 0, or
 * -errno and done is never called. */
typedef void (*vft_done_fn)(void *cookie, int rc, const char *msg);
int vft_order(struct vft *m, const char *vm, const char *order, bool force, vft_done_fn done,
              void *cookie);
void vft_order_forget(struct vft *m, void *cookie);

/* The state the engine of vm on this blade last reported ("protected",
 * "standby", "orphaned", ...). -ENOENT: vm has no engine; -ENOTCONN: none is
 * connected here. */
int vft_engine_state(const struct vft *m, const char *vm, char *state, size_t len);

/* Starts the engine of a protected VM on this blade, detached (it outlives
 * the daemon), as "primary" (boots the guest) or "backup". */
int vft_engine_start(struct vft *m, const char *vm, const char *role, char *err, size_t errlen);
/* Recovery sees vm's primary on the partner blade and no engine here (the
 * blade is back from a repair, or its daemon restarted): a backup engine
 * is started, unless one runs or is about to be started again, it quit by
 * order (until an order starts one), vmft.restart_backup is off, or one
 * was started in the last 15 s. 0 (started, or nothing to do) or -errno. */
int vft_backup_wanted(struct vft *m, const char *vm);

#endif
