/*
 * The common module: types and services every other module uses (events,
 * faults, configuration, logging, the IPC protocol). af_init() must run
 * first and af_fini() last.
 */
#ifndef AF_COMMON_H
#define AF_COMMON_H

#include "af_config.h"
#include "af_event.h"
#include "af_fault.h"
#include "af_log.h"
#include "af_module.h"
#include "af_util.h"

/* Starts logging under the program name ident. Returns 0 or -errno. */
int af_init(const char *ident);
void af_fini(void);

const char *af_version(void);

#endif
