/*
 * vmft-bridge: the checkpoint/replay engine that keeps hot backups of protected
 * VMs on the partner blade, and its bridge to the manager.
 */
#ifndef VFT_H
#define VFT_H

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

#endif
