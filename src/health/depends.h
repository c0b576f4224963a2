/*
 * depends: when a service may start, as far as its depends_on says
 * (docs/design.md, "Dependencies"), and when a dependency's restart owes
 * its dependent one.
 *
 * Pure logic, as the health machine: the caller (the monitor, which owns
 * every service's machine) describes each service as a tsvc_dep_view_t and
 * asks. Both rules are tables, so that tests/test_depends.c compares them
 * with the documented ones cell by cell.
 *
 * Memory: nothing here allocates.
 */
#ifndef TSVC_DEPENDS_H
#define TSVC_DEPENDS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "health/health.h"
#include "tsvc.h"

/* What the rules need to know of one service. */
typedef struct {
  bool monitored;        /* false: not watched (not in the config in use,
                            or monitoring stopped) */
  tsvc_state_t state;
  tsvc_health_op_t op;   /* the operation in flight, if any (a start held
                            for its own dependencies is one) */
  bool not_started;      /* its last start failed: nothing runs */
} tsvc_dep_view_t;

/* The view of a health machine (monitored). */
tsvc_dep_view_t tsvc_dep_view_of(const tsvc_health_t *h);

/*
 * Whether a dependency in view v satisfies condition c:
 *   service_started: it runs, started by us or seen running, and nothing is
 *     in flight: starting (its start done), healthy, unhealthy or failed,
 *     but not after a start that failed (nothing runs then);
 *   service_healthy: it is healthy.
 * Never while it is stopped, restarting, unknown (the runtime cannot be
 * reached: nobody can tell) or not monitored.
 */
bool tsvc_dep_holds(tsvc_dep_condition_t c, const tsvc_dep_view_t *v);

/* Whether a change of state begins a (re)start of the service: into
   restarting, or into starting other than at a restart's end; never back
   from unknown (the runtime answering again). Each one makes the
   service's start count (its generation) grow; a dependent started against
   an older generation owes a restart (restart: true). */
bool tsvc_dep_is_start(tsvc_state_t from, tsvc_state_t to);

/*
 * restart: true. A dependent in view self, started when its dependency's
 * generation was seen_gen, is restarted now when the dependency (view dep,
 * generation dep_gen) has (re)started since and is healthy again, and the
 * dependent itself runs with nothing in flight (service_started holds for
 * it). A dependent that does not run owes nothing: its next start waits
 * for its conditions anyway.
 */
bool tsvc_dep_restart_due(const tsvc_dep_view_t *dep, uint64_t dep_gen, uint64_t seen_gen,
                          const tsvc_dep_view_t *self);

/* A short text of why a condition does not hold, for status and logs:
   "postgres is starting (waits to be healthy)". Returns buf. */
const char *tsvc_dep_why(const char *name, tsvc_dep_condition_t c, const tsvc_dep_view_t *v,
                         char *buf, size_t len);

/* The table itself, for tests that compare it with docs/design.md: the
   row a view is in, and its name ("starting/op"; NULL past the last). */
int tsvc_dep_row(const tsvc_dep_view_t *v);
const char *tsvc_dep_row_name(int row);

#endif /* TSVC_DEPENDS_H */
