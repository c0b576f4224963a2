/*
 * depends.c: see depends.h and docs/design.md, "Dependencies".
 *
 * A dependency is in one situation (a row: its state with what matters of
 * the operation in flight and of its last start, as the health machine's
 * rows); whether a condition holds is one cell of holds[row][condition].
 */
#include "health/depends.h"

#include <stdio.h>

#define DEP_ROW_MAP(X)                                                       \
  X(NOT_MONITORED, "not monitored")                                          \
  X(STOPPED, "stopped")                                                      \
  X(STOPPING, "stopping")       /* stopped, the stop in flight */            \
  X(STARTING_OP, "starting/op") /* a start in flight (or held) */            \
  X(STARTING, "starting")       /* started: grace period or checks */        \
  X(HEALTHY, "healthy")                                                      \
  X(UNHEALTHY, "unhealthy")                                                  \
  X(UNHEALTHY_NS, "unhealthy/ns") /* its last start failed */                \
  X(RESTARTING, "restarting")                                                \
  X(FAILED, "failed")                                                        \
  X(FAILED_NS, "failed/ns")     /* gave up starting */                       \
  X(UNKNOWN, "unknown")         /* the runtime cannot be reached */

typedef enum {
#define DEP_ROW_ENUM(name, text) DEP_ROW_##name,
  DEP_ROW_MAP(DEP_ROW_ENUM)
#undef DEP_ROW_ENUM
  DEP_ROW__COUNT
} dep_row_t;

static dep_row_t row_of(const tsvc_dep_view_t *v) {
  if (!v->monitored) return DEP_ROW_NOT_MONITORED;
  switch (v->state) {
  case TSVC_STATE_STOPPED: return v->op == TSVC_OP_STOP ? DEP_ROW_STOPPING : DEP_ROW_STOPPED;
  case TSVC_STATE_STARTING: return v->op != TSVC_OP_NONE ? DEP_ROW_STARTING_OP : DEP_ROW_STARTING;
  case TSVC_STATE_HEALTHY: return DEP_ROW_HEALTHY;
  case TSVC_STATE_UNHEALTHY: return v->not_started ? DEP_ROW_UNHEALTHY_NS : DEP_ROW_UNHEALTHY;
  case TSVC_STATE_RESTARTING: return DEP_ROW_RESTARTING;
  case TSVC_STATE_FAILED: return v->not_started ? DEP_ROW_FAILED_NS : DEP_ROW_FAILED;
  case TSVC_STATE_UNKNOWN:
  default: return DEP_ROW_UNKNOWN;
  }
}

/* holds[row][condition]: the rule. docs/design.md shows the same table
   (tests/test_depends.c compares them). */
static const bool holds[DEP_ROW__COUNT][2] = {
    /*                       service_started, service_healthy */
    [DEP_ROW_NOT_MONITORED] = {false, false},
    [DEP_ROW_STOPPED] = {false, false},
    [DEP_ROW_STOPPING] = {false, false},
    [DEP_ROW_STARTING_OP] = {false, false},
    [DEP_ROW_STARTING] = {true, false},
    [DEP_ROW_HEALTHY] = {true, true},
    [DEP_ROW_UNHEALTHY] = {true, false},
    [DEP_ROW_UNHEALTHY_NS] = {false, false},
    [DEP_ROW_RESTARTING] = {false, false},
    [DEP_ROW_FAILED] = {true, false},
    [DEP_ROW_FAILED_NS] = {false, false},
    [DEP_ROW_UNKNOWN] = {false, false},
};

tsvc_dep_view_t tsvc_dep_view_of(const tsvc_health_t *h) {
  return (tsvc_dep_view_t){true, h->state, h->op, h->not_started};
}

bool tsvc_dep_holds(tsvc_dep_condition_t c, const tsvc_dep_view_t *v) {
  if ((unsigned)c > TSVC_DEP_HEALTHY) return false;
  return holds[row_of(v)][c];
}

bool tsvc_dep_is_start(tsvc_state_t from, tsvc_state_t to) {
  /* Back from unknown is the runtime answering again, not a start (what
     died meanwhile is found and restarted: that one counts); a restart's
     end (restarting -> starting) is the same restart. */
  if (from == to || from == TSVC_STATE_UNKNOWN) return false;
  if (to == TSVC_STATE_RESTARTING) return true;
  return to == TSVC_STATE_STARTING && from != TSVC_STATE_RESTARTING;
}

bool tsvc_dep_restart_due(const tsvc_dep_view_t *dep, uint64_t dep_gen, uint64_t seen_gen,
                          const tsvc_dep_view_t *self) {
  return dep_gen != seen_gen && tsvc_dep_holds(TSVC_DEP_HEALTHY, dep) &&
         tsvc_dep_holds(TSVC_DEP_STARTED, self);
}

const char *tsvc_dep_why(const char *name, tsvc_dep_condition_t c, const tsvc_dep_view_t *v,
                         char *buf, size_t len) {
  static const char *const rows[] = {
#define DEP_ROW_TEXT(n, text) text,
      DEP_ROW_MAP(DEP_ROW_TEXT)
#undef DEP_ROW_TEXT
  };
  dep_row_t r = row_of(v);
  const char *is = r == DEP_ROW_STARTING_OP    ? "being started"
                   : r == DEP_ROW_UNHEALTHY_NS ? "not running (its start failed)"
                   : r == DEP_ROW_FAILED_NS    ? "not running (gave up starting)"
                   : r == DEP_ROW_STOPPING     ? "being stopped"
                                               : rows[r];
  snprintf(buf, len, "%s is %s (waits for it to be %s)", name, is,
           c == TSVC_DEP_HEALTHY ? "healthy" : "started");
  return buf;
}

int tsvc_dep_row(const tsvc_dep_view_t *v) { return (int)row_of(v); }

const char *tsvc_dep_row_name(int row) {
  static const char *const names[] = {
#define DEP_ROW_NAME(n, text) text,
      DEP_ROW_MAP(DEP_ROW_NAME)
#undef DEP_ROW_NAME
  };
  return row >= 0 && row < DEP_ROW__COUNT ? names[row] : NULL;
}
