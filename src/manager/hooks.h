/*
 * hooks: the commands of `hooks.on_change` (docs/config.md, "hooks"), run
 * on the loop without ever blocking it.
 *
 * Each change of state of a service runs the top-level hook and the
 * service's own (each when set) as child processes (libuv), with
 * TSVC_SERVICE, TSVC_STATE, TSVC_PREV, TSVC_REASON and TSVC_TIME added to
 * the monitor's environment. Their stdout and stderr (the first 1 KiB, the
 * rest counted) go to the monitor's log in one line when the hook ends;
 * a hook still running at its timeout is killed with its process group.
 * At most TSVC_HOOKS_RUNNING run at once and TSVC_HOOKS_QUEUED wait; a hook
 * beyond that is dropped (logged, counted).
 *
 * Loop thread only. Memory: a run copies what it needs (argv, the
 * environment) when it is queued; the config it came from may go.
 */
#ifndef TSVC_HOOKS_H
#define TSVC_HOOKS_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "config/config.h"
#include "tsvc.h"

#define TSVC_HOOKS_RUNNING 8
#define TSVC_HOOKS_QUEUED 64
#define TSVC_HOOKS_OUTPUT 1024 /* what the log keeps of one value */

typedef struct tsvc_hooks_s tsvc_hooks_t;

/* Totals of every hook since the monitor began, by kind, for /metrics
   (tanuki_svc_hook_runs_total, _failures_total, _drops_total): counted on
   the loop thread, read from any thread. The manager owns them. */
typedef enum { TSVC_HOOK_COMMAND, TSVC_HOOK_WEBHOOK, TSVC_HOOK__KINDS } tsvc_hook_kind_t;
enum { TSVC_HOOK_RUNS, TSVC_HOOK_FAILURES, TSVC_HOOK_DROPS, TSVC_HOOK__COUNTS };
typedef struct {
  _Atomic uint64_t v[TSVC_HOOK__KINDS][TSVC_HOOK__COUNTS];
} tsvc_hook_counters_t;
typedef struct {
  uint64_t v[TSVC_HOOK__KINDS][TSVC_HOOK__COUNTS];
} tsvc_hook_totals_t;

static inline void tsvc_hook_count(tsvc_hook_counters_t *c, tsvc_hook_kind_t kind, int what) {
  atomic_fetch_add_explicit(&c->v[kind][what], 1, memory_order_relaxed);
}
/* A copy of c's counts into out. */
void tsvc_hook_totals(const tsvc_hook_counters_t *c, tsvc_hook_totals_t *out);
/* "command" or "webhook" (the metrics' kind label). */
const char *tsvc_hook_kind_name(tsvc_hook_kind_t kind);

/* Returns 0 with *out, or TSVC_ENOMEM. */
int tsvc_hooks_new(uv_loop_t *loop, tsvc_hooks_t **out);

/* Count every run, failure and drop in c too (kind TSVC_HOOK_COMMAND);
   c must outlive h. NULL: not counted there. */
void tsvc_hooks_set_counters(tsvc_hooks_t *h, tsvc_hook_counters_t *c);

/* One change of state of service: runs conf's on_change (when set).
   Returns 0 (queued or started), TSVC_EBUSY when dropped (the queue is
   full), TSVC_ENOMEM. Never calls anything back. */
int tsvc_hooks_on_change(tsvc_hooks_t *h, const tsvc_hooks_conf_t *conf, const char *service,
                         tsvc_state_t from, tsvc_state_t to, const char *reason,
                         int64_t time_ms);

/* Counts, for tests and metrics. */
typedef struct {
  uint64_t run;      /* hooks started */
  uint64_t failed;   /* ended with a non-zero status, or could not start */
  uint64_t timed_out;
  uint64_t dropped;  /* the queue was full */
  int running;       /* now */
} tsvc_hooks_stats_t;
void tsvc_hooks_stats(const tsvc_hooks_t *h, tsvc_hooks_stats_t *out);

/* Kill what runs (its process group), drop what waits, and free h once
   every handle is closed (the loop must run on). NULL: nothing. */
void tsvc_hooks_close(tsvc_hooks_t *h);

#endif /* TSVC_HOOKS_H */
