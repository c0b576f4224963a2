/*
 * monitor: schedules checks on the libuv loop, feeds their results to the
 * health state machine and carries out its actions (log the change, schedule
 * the next check, ask the runtime to restart). docs/design.md, "The
 * monitor".
 *
 * Threads: every function here runs on the loop's thread, except the
 * readers at the end (get_status, get_all, is_healthy), which read the
 * board (board.h) and are safe from any thread.
 *
 * Callbacks follow libuv's rule: a callback is never called inside the call
 * that asked for it, always later from the loop; when the call returns an
 * error, its callback is never called.
 *
 * Ownership: the monitor borrows the loop, the runtime, the board (when
 * given) and the service configs given to it. A config is kept alive by the
 * reference `keep` passed with it (common/ref.h; NULL: the caller keeps it
 * alive for as long as the monitor may read it): the monitor holds one
 * while a service points at the config and one for every operation, check
 * and inspection in flight that began with it. tsvc_monitor_free() must be
 * called after tsvc_monitor_close() has finished (uv_run returned).
 */
#ifndef TSVC_MONITOR_H
#define TSVC_MONITOR_H

#include <uv.h>

#include "common/ref.h"
#include "config/config.h"
#include "health/health.h"
#include "monitor/board.h"
#include "runtime/runtime.h"
#include "tsvc.h"

typedef struct tsvc_monitor_s tsvc_monitor_t;

/* What observers hear, on the loop's thread, as it happens. */
typedef enum {
  TSVC_MON_EV_CHANGE,         /* state changed: from, to, reason */
  TSVC_MON_EV_RESTART,        /* a restart was asked of the runtime */
  TSVC_MON_EV_RESTART_LATER,  /* a restart is scheduled (backoff) */
  TSVC_MON_EV_RESTART_FAILED, /* the runtime failed it: reason */
  TSVC_MON_EV_GAVE_UP,        /* max_restarts reached: failed */
  TSVC_MON_EV_CHECK           /* a check finished: result, reason=message */
} tsvc_mon_event_type_t;

typedef struct {
  tsvc_mon_event_type_t type;
  const char *service;
  tsvc_state_t from, to;
  tsvc_result_t result;
  const char *reason;
  int failures, retries;          /* consecutive failures / retries */
  int restarts, max_restarts;     /* restarts in window / max_restarts */
  tsvc_ms_t now;                  /* loop time */
  int64_t lateness_ms;            /* CHECK: start of the check minus its
                                     scheduled time */
} tsvc_mon_event_t;

typedef void (*tsvc_mon_observer_cb)(const tsvc_mon_event_t *ev, void *data);

/* rt may be NULL only for monitors whose services all use native probes
   (tests): restarts then fail with TSVC_EINVAL. board: where statuses are
   published (borrowed), or NULL: the monitor makes its own. */
int tsvc_monitor_new(uv_loop_t *loop, tsvc_runtime_t *rt, tsvc_board_t *board,
                     tsvc_monitor_t **out);

/* Start watching svc (borrowed; keep: see above). The service begins
   STOPPED (enabled: false stays there); call tsvc_monitor_started() once it
   runs. Returns 0, TSVC_EEXIST, TSVC_EINVAL (bad health parameters),
   TSVC_ENOMEM, TSVC_ECANCELED (closed). */
int tsvc_monitor_add(tsvc_monitor_t *m, const tsvc_service_conf_t *svc, tsvc_ref_t *keep);

/* Stop watching a service; a probe in flight is cancelled, and whoever
   waits on it is told TSVC_ECANCELED. */
int tsvc_monitor_remove(tsvc_monitor_t *m, const char *name);

/* Point a service at a new config (reload): keeps state and counts. */
int tsvc_monitor_update(tsvc_monitor_t *m, const tsvc_service_conf_t *svc, tsvc_ref_t *keep);

/* The service was (re)started outside the monitor (by the manager, or seen
   running at start-up): grace period from now. */
int tsvc_monitor_started(tsvc_monitor_t *m, const char *name);

/* Subscribe to runtime events (rt->ops->watch) when the runtime has them. */
int tsvc_monitor_watch_runtime(tsvc_monitor_t *m);

/* Feed a runtime event by hand (tests, and runtimes without watch). */
void tsvc_monitor_runtime_event(tsvc_monitor_t *m, tsvc_rt_event_type_t type,
                                const char *service, const char *msg);

/* Told when the runtime operation a person asked for is done: status 0, or
   the error and the runtime's message. */
typedef void (*tsvc_mon_done_cb)(int status, const char *msg, void *data);

/*
 * A person's start / stop / restart. Returns 0, TSVC_ENOENT, TSVC_EBUSY,
 * TSVC_ERUNNING (start of a service that is neither stopped nor waiting to
 * retry a start that failed), TSVC_EUNREACH (runtime down), TSVC_ECANCELED
 * (closed); then cb (may be NULL) is never called. On 0, cb is called once,
 * later, from the loop: when the operation is done and, for a start or a
 * restart, the service inspected again (its new pid or container is in the
 * status by then); at once (from the loop) when there was nothing to do
 * (stop of a stopped service). A start or restart that fails is told with
 * the runtime's words and what follows ("(starting again in 1s)", "(gave
 * up after 5 attempts)"): the monitor retries it on the backoff schedule. A
 * restart asked for while one is in flight joins it. A service removed or a
 * monitor closed meanwhile: TSVC_ECANCELED.
 */
int tsvc_monitor_user_start(tsvc_monitor_t *m, const char *name, tsvc_mon_done_cb cb,
                            void *data);
int tsvc_monitor_user_stop(tsvc_monitor_t *m, const char *name, tsvc_mon_done_cb cb,
                           void *data);
int tsvc_monitor_user_restart(tsvc_monitor_t *m, const char *name, tsvc_mon_done_cb cb,
                              void *data);

/* The verdict of a check asked for: status 0 and the record (valid during
   the call), or TSVC_ENOTCHECKED (cancelled: a restart, a stop or the
   runtime going away came first; rec NULL) or TSVC_ECANCELED. */
typedef void (*tsvc_mon_check_cb)(int status, const tsvc_check_record_t *rec, void *data);

/* Check now: the scheduled check moves here. cb (may be NULL) is told the
   verdict of a check that starts after this call: when one is in flight,
   the next one, which starts as soon as that one ends. Returns 0,
   TSVC_ENOENT, TSVC_ENOTCHECKED (not checked in its state: stopped, a
   (re)start in flight, the runtime unreachable, not running since its
   start failed), TSVC_ENOMEM or TSVC_ECANCELED; cb is then never called. */
int tsvc_monitor_check(tsvc_monitor_t *m, const char *name, tsvc_mon_check_cb cb, void *data);

/* Put the services' timers on a grid of `grid` ms of the loop's clock: a
   deadline (a check, a restart, the end of a wait) is moved up to the next
   multiple of it, so that the services due within one step of the grid
   start in one wake-up of the loop, and their replies are read together
   (issue 13: at 1,000 services at 1 s spread over the second, the loop
   woke about twice per check, and the wake-ups were most of its CPU). A
   deadline is late by less than one step; one already due is not put off.
   0 or 1 (the default): every deadline to the ms. Applies from each
   service's next deadline on. The config's monitor.timer_grid (default
   10ms) sets it for `up`. A service's own step is longer when its
   checks are far apart: tsvc_timer_step. */
void tsvc_monitor_set_timer_grid(tsvc_monitor_t *m, tsvc_ms_t grid);

/* The longest step tsvc_timer_step gives on its own (a grid set longer
   is kept). */
#define TSVC_TIMER_STEP_MAX_MS 50

/* The step of the grid a service's deadlines fall on: a twentieth of its
   shortest interval between checks (interval, start_interval; 0: none)
   when that is longer than grid, at most TSVC_TIMER_STEP_MAX_MS, else
   grid; 0 when grid is 0 or 1 (no grid). A twentieth is half the jitter
   the schedule already adds to each interval (10%): more checks share a
   wake-up of the loop (issue 13: a held redis check at 1,000 services at
   1 s cost ~0.6 as much CPU on a 50 ms step as on a 10 ms one), and the
   lateness counted is from the step on. */
tsvc_ms_t tsvc_timer_step(tsvc_ms_t grid, tsvc_ms_t shortest_interval);

/* One observer (NULL to remove). */
void tsvc_monitor_set_observer(tsvc_monitor_t *m, tsvc_mon_observer_cb cb, void *data);

/* Readers, safe from any thread (the board's snapshots). get_status: a
   copy with the history: 0 or TSVC_ENOENT. get_all: copies with histories,
   in the order added. */
int tsvc_monitor_get_status(tsvc_monitor_t *m, const char *name, tsvc_status_t *out);
int tsvc_monitor_get_all(tsvc_monitor_t *m, tsvc_status_list_t *out);
/* True when the service exists and is healthy. */
bool tsvc_monitor_is_healthy(tsvc_monitor_t *m, const char *name);
/* Where the monitor publishes. */
tsvc_board_t *tsvc_monitor_board(tsvc_monitor_t *m);

/* The state of a service and the operation in flight, for messages that
   name them. Loop thread only. 0 or TSVC_ENOENT. */
int tsvc_monitor_state(tsvc_monitor_t *m, const char *name, tsvc_state_t *state,
                       tsvc_health_op_t *op);

/* Cancel every probe and timer and close the handles; the loop then runs
   dry. Restarts in flight are left to the runtime (their answers are
   dropped); whoever waits is told TSVC_ECANCELED, from the loop. The board
   says "not monitored" from now on. */
void tsvc_monitor_close(tsvc_monitor_t *m);
void tsvc_monitor_free(tsvc_monitor_t *m);

/* The health parameters of a service's config. */
void tsvc_health_params_from_conf(const tsvc_service_conf_t *svc, tsvc_health_params_t *p);

#endif /* TSVC_MONITOR_H */
