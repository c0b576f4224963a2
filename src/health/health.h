/*
 * health: the per-service health state machine (docs/design.md, "The health
 * machine").
 *
 * Pure logic: no I/O, no clock and no randomness of its own. The caller feeds
 * events stamped with the time (milliseconds on a monotonic clock) and gets
 * back the actions to carry out. Deadlines are absolute and kept in the
 * machine (check_at, restart_at, cooldown_at); the caller sleeps until the
 * earliest of them (tsvc_health_next_deadline) and then feeds a TICK.
 *
 * The machine is a table, s6-style: actions[situation][event] of named
 * functions in health.c, the same table as in docs/design.md ("The health
 * machine"), which tests/test_health.c compares with the code cell by cell.
 * Each rule is written once, in a helper the actions share.
 *
 * Memory: tsvc_health_t owns one array (the restart times); free it with
 * tsvc_health_free(). Nothing in the actions outlives the next step.
 */
#ifndef TSVC_HEALTH_H
#define TSVC_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#include "tsvc.h"

/* The knobs of one service (from healthcheck.* and restart.* of its config). */
typedef struct {
  tsvc_ms_t interval;       /* between checks once started */
  tsvc_ms_t start_interval; /* between checks inside start_period */
  tsvc_ms_t start_period;   /* grace period after every (re)start */
  int retries;              /* consecutive failures before unhealthy */
  int success_threshold;    /* consecutive successes before healthy again */
  bool can_restart;         /* policy on-unhealthy and not external */
  int max_restarts;         /* within window, then failed */
  tsvc_ms_t window;         /* restart-count window; healthy this long resets */
  tsvc_ms_t backoff;        /* delay before the 2nd restart, doubling ... */
  tsvc_ms_t max_backoff;    /* ... up to this */
  tsvc_ms_t cooldown;       /* failed: restarts resume after this; 0 never */
  int jitter_permille;      /* random extra on each delay, 0..1000; 100 = 10% */
} tsvc_health_params_t;

typedef enum {
  TSVC_HEV_TICK,           /* time passed; deadlines up to now fire */
  TSVC_HEV_STARTED,        /* the runtime saw the service (re)start */
  TSVC_HEV_DIED,           /* the runtime saw it stop / not running */
  TSVC_HEV_CHECK_RESULT,   /* a probe finished: result, message */
  TSVC_HEV_OP_DONE,        /* the start / restart / stop we asked for is done */
  TSVC_HEV_OP_FAILED,      /* ... failed: message */
  TSVC_HEV_USER_START,     /* a person asked */
  TSVC_HEV_USER_STOP,
  TSVC_HEV_USER_RESTART,
  TSVC_HEV_RUNTIME_DOWN,   /* the runtime cannot be reached */
  TSVC_HEV_RUNTIME_UP,     /* ... answers again: a service that was healthy
                              stays unknown until a check passes (or it is
                              found not running) */
  TSVC_HEV__COUNT
} tsvc_health_event_type_t;

typedef struct {
  tsvc_health_event_type_t type;
  tsvc_ms_t now;
  tsvc_result_t result; /* CHECK_RESULT */
  const char *message;  /* CHECK_RESULT, DIED, OP_FAILED: why; USER_RESTART:
                           who asks, when not a person; may be NULL */
} tsvc_health_event_t;

/* What the caller must do now. Bits of tsvc_health_actions_t.flags. */
enum {
  TSVC_HACT_CHANGED = 1 << 0,      /* state changed: log old -> new, reason */
  TSVC_HACT_CHECK = 1 << 1,        /* start a probe now */
  TSVC_HACT_RESTART = 1 << 2,      /* ask the runtime to restart now */
  TSVC_HACT_START = 1 << 3,        /* ask the runtime to start now (a
                                      person's, the first, or a retry of a
                                      start that failed) */
  TSVC_HACT_STOP = 1 << 4,         /* ask the runtime to stop now */
  TSVC_HACT_GAVE_UP = 1 << 5,      /* max_restarts reached: log a warning */
  TSVC_HACT_OP_FAILED = 1 << 6,    /* the operation failed: log the error */
  TSVC_HACT_RESTART_LATER = 1 << 7,/* a restart (or, with not_started, a
                                      start) is scheduled at restart_at */
  TSVC_HACT_CANCEL_CHECK = 1 << 8, /* drop the probe in flight, if any */
  TSVC_HACT_COOLDOWN_OVER = 1 << 9 /* failed: cooldown over, restarts resume */
};

/* One change of state. reason points into the event's message or static
   text: valid until the event's message is freed. */
typedef struct {
  tsvc_state_t from, to;
  const char *reason;
} tsvc_health_change_t;

#define TSVC_HEALTH_MAX_CHANGES 4

typedef struct {
  unsigned flags;
  /* Every change of state in this step, in order (a healthy service found
     dead goes healthy -> unhealthy -> restarting in one step). */
  tsvc_health_change_t changes[TSVC_HEALTH_MAX_CHANGES];
  int nchanges;
  const char *reason;   /* for GAVE_UP / OP_FAILED / RESTART_LATER */
  tsvc_ms_t restart_at; /* with RESTART_LATER */
} tsvc_health_actions_t;

/* Which operation is in flight, if any (at most one per service). */
typedef enum {
  TSVC_OP_NONE,
  TSVC_OP_START,
  TSVC_OP_RESTART,
  TSVC_OP_STOP
} tsvc_health_op_t;

typedef struct {
  tsvc_health_params_t p;
  tsvc_state_t state;
  tsvc_state_t saved_state; /* the state to go back to when the runtime is
                               back (while UNKNOWN) */
  tsvc_health_op_t op;      /* operation in flight */
  bool op_counted;          /* ... already counted toward max_restarts */
  bool checking;            /* a probe is in flight */
  bool not_started;         /* our last start failed: nothing runs, so
                               nothing is checked, and the next attempt
                               (backoff, cooldown, a person) is a start */
  bool verifying;           /* UNKNOWN, the runtime is back: was healthy,
                               waits for a check to say so again */

  tsvc_ms_t since;          /* when the current state began */
  tsvc_ms_t started_at;     /* last (re)start: the grace period runs from here */
  bool grace;               /* inside the grace period (no success yet) */
  tsvc_ms_t healthy_since;  /* when it last became healthy */

  int fails;                /* consecutive failures that count */
  int successes;            /* consecutive successes */

  tsvc_ms_t check_at;       /* next probe, or TSVC_NEVER */
  tsvc_ms_t restart_at;     /* scheduled restart, or TSVC_NEVER */
  tsvc_ms_t cooldown_at;    /* failed: restarts resume, or TSVC_NEVER */

  /* Restart bookkeeping: the times of the restarts we started within the
     window (a ring of max_restarts entries), and the backoff level: how many
     restarts since the service was last healthy for a whole window. */
  tsvc_ms_t *restart_times;
  int nrestart_times;
  int backoff_level;

  uint64_t rng; /* xorshift state for jitter, seeded by the caller */

  /* Totals, for status. */
  uint64_t checks_total;
  uint64_t failures_total;
  uint64_t restarts_total;
} tsvc_health_t;

/*
 * Initialise h with params p at time now, in state STOPPED (enabled: false
 * services stay there) or, for a service already running or being started by
 * the caller, follow with a STARTED event. seed makes the jitter repeatable.
 * Returns 0, TSVC_EINVAL (bad params) or TSVC_ENOMEM.
 */
int tsvc_health_init(tsvc_health_t *h, const tsvc_health_params_t *p,
                     tsvc_ms_t now, uint64_t seed);
void tsvc_health_free(tsvc_health_t *h);

/*
 * Change the knobs (config reload) keeping the state and counts.
 * Returns 0, TSVC_EINVAL or TSVC_ENOMEM (h unchanged on error).
 */
int tsvc_health_set_params(tsvc_health_t *h, const tsvc_health_params_t *p);

/*
 * Feed one event. Returns 0 and fills out; or TSVC_EBUSY when a person's
 * start/stop is refused because another operation is in flight (nothing
 * changes then), TSVC_ERUNNING for a start of a service that runs (not stopped,
 * and not waiting to retry a start that failed), TSVC_EUNREACH for a
 * person's operation while the runtime cannot be reached, TSVC_EINVAL for an
 * unknown event.
 */
int tsvc_health_step(tsvc_health_t *h, const tsvc_health_event_t *ev,
                     tsvc_health_actions_t *out);

/*
 * The table itself (docs/design.md, "The health machine"), for tests that
 * compare it with the documented one: the situation h is in (a row: its
 * state with what matters of the operation in flight and the last start),
 * the row's name ("starting/op"; NULL past the last row), and the name of
 * the action an event gets in a row (NULL out of range).
 */
int tsvc_health_row(const tsvc_health_t *h);
const char *tsvc_health_row_name(int row);
const char *tsvc_health_action_name(int row, tsvc_health_event_type_t ev);

/* The earliest deadline (check, restart, cooldown), or TSVC_NEVER. */
tsvc_ms_t tsvc_health_next_deadline(const tsvc_health_t *h);

/* Restarts started within the window ending at now. */
int tsvc_health_restarts_in_window(const tsvc_health_t *h, tsvc_ms_t now);

/* The backoff before the next automatic restart, without jitter. */
tsvc_ms_t tsvc_health_backoff_delay(const tsvc_health_t *h);

/* True when the state counts as healthy for is_healthy(). */
static inline bool tsvc_health_is_healthy(const tsvc_health_t *h) {
  return h->state == TSVC_STATE_HEALTHY;
}

#endif /* TSVC_HEALTH_H */
