/*
 * plan: a reload as a pure plan (docs/design.md, "Reload"). From the old
 * and the new config, the list of {service, action} that turns the running
 * old one into the new one; the manager applies it in a separate step.
 * Pure: no I/O, no clock, so tests compare configs loaded from strings.
 */
#ifndef TSVC_MANAGER_PLAN_H
#define TSVC_MANAGER_PLAN_H

#include <stddef.h>

#include "config/config.h"

#define TSVC_PLAN_MAP(X)                                                          \
  X(KEEP, "keep")             /* unchanged: not touched */                       \
  X(UPDATE, "update")         /* healthcheck/restart knobs, or what needs no     \
                                 action (a disabled service's spec): in place,   \
                                 keeping state and counts */                     \
  X(RECREATE, "recreate")     /* image, environment, port, volumes or command:  \
                                 stop, remove its container (never volumes),    \
                                 start afresh */                                \
  X(START, "start")           /* enabled now, or no longer external */          \
  X(STOP, "stop")             /* disabled now */                                \
  X(WATCH, "watch")           /* external (and enabled) now: watched from now, \
                                 never started or stopped again */             \
  X(ADD, "add")               /* new and disabled: known, not started */        \
  X(ADD_START, "add+start")   /* new: start it */                               \
  X(ADD_WATCH, "add+watch")   /* new and external: watch it */                  \
  X(DROP, "drop")             /* removed, external or disabled: no longer      \
                                 watched */                                     \
  X(DROP_STOP, "drop+stop")   /* removed: no longer watched, and stopped */

typedef enum {
#define TSVC_PLAN_ENUM(name, text) TSVC_PLAN_##name,
  TSVC_PLAN_MAP(TSVC_PLAN_ENUM)
#undef TSVC_PLAN_ENUM
  TSVC_PLAN__COUNT
} tsvc_plan_action_t;

const char *tsvc_plan_action_name(tsvc_plan_action_t a);

typedef struct {
  /* Removed services point into the old config, the others into the new. */
  const tsvc_service_conf_t *svc;
  const tsvc_service_conf_t *was; /* the old conf of a kept service, else NULL */
  tsvc_plan_action_t action;
  unsigned diff; /* TSVC_DIFF_* bits (diff.h) of a kept service */
} tsvc_plan_step_t;

typedef struct {
  tsvc_plan_step_t *v; /* removed services first (old order), then the new
                          config's services in depends_on order */
  size_t n;
  size_t added, removed, changed, recreated, same;
} tsvc_plan_t;

/* Plan the reload from old to new_cfg. Returns 0 or TSVC_ENOMEM.
   tsvc_plan_free() frees the steps (never the configs). */
int tsvc_plan_reload(const tsvc_config_t *old, const tsvc_config_t *new_cfg, tsvc_plan_t *out);
void tsvc_plan_free(tsvc_plan_t *p);

/* The services of cfg in depends_on order (dependencies first), as indexes
   into cfg->services; out holds cfg->nservices. A cycle (the loader
   rejects them) leaves the rest in file order, and so does a lack of
   memory. */
void tsvc_config_order(const tsvc_config_t *cfg, size_t *out);

#endif
