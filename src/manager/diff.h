/*
 * diff: what changed between two configs, for a reload (SIGHUP). Pure: no
 * I/O, so tests compare configs loaded from strings.
 */
#ifndef TSVC_MANAGER_DIFF_H
#define TSVC_MANAGER_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

/* What changed in one service (bits). */
enum {
  TSVC_DIFF_SAME = 0,
  TSVC_DIFF_KNOBS = 1 << 0,    /* healthcheck, restart, depends_on: applied in place */
  TSVC_DIFF_SPEC = 1 << 1,     /* image, port, environment, volumes, command,
                                  process: the container or process is recreated */
  TSVC_DIFF_ENABLED = 1 << 2,  /* enabled flipped */
  TSVC_DIFF_EXTERNAL = 1 << 3  /* external flipped */
};

unsigned tsvc_service_diff(const tsvc_service_conf_t *a, const tsvc_service_conf_t *b);

/* Whether new can replace old in a running monitor: the runtime and the
   docker section cannot change (the runtime is built on them). Returns true,
   or false with the reason in err. */
bool tsvc_config_reloadable(const tsvc_config_t *old, const tsvc_config_t *new_cfg, char *err,
                            size_t errlen);

#endif
