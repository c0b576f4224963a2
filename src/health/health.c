/*
 * health.c: the health state machine. See health.h and docs/design.md, "The
 * health machine".
 *
 * Layout: small helpers that carry out one rule each (enter a state,
 * schedule a check, count a failure, plan a restart), then one function per
 * action, then the table actions[situation][event] that is the machine.
 * docs/design.md shows the same table and what each cell leads to;
 * tests/test_health.c compares both with this file, cell by cell.
 *
 * Starts (starting/op, unhealthy/ns, failed/ns). A start in flight is
 * `starting` with op START: nothing is checked until it is done. A start
 * that fails (the first, a person's, or a retry) is no stop: the service
 * goes `unhealthy` with the runtime's words, the attempt counts toward
 * max_restarts like a restart, and it is retried as a start on the restart
 * backoff schedule (`failed` once max_restarts is reached, with the
 * cooldown as usual). Until a start succeeds nothing runs, so nothing is
 * checked (not_started), and a person's start is accepted besides a
 * restart. Only a person's stop makes a service `stopped`.
 *
 * The runtime's return (unknown/v). A service that was `healthy` before the
 * runtime went away stays `unknown` (verifying) until it shows it is
 * healthy: the first check that passes makes it `healthy`, `retries`
 * failures or "not running" (the caller also inspects it and feeds DIED)
 * make it `unhealthy`. Other states come back at once: they claim nothing
 * that may have become false meanwhile.
 */
#include "health/health.h"

#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_next(tsvc_health_t *h) {
  /* xorshift64*: enough for spreading timers, repeatable from a seed. */
  uint64_t x = h->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  h->rng = x;
  return x * UINT64_C(2685821657736338717);
}

/* delay plus a random extra of up to jitter_permille of it. */
static tsvc_ms_t jittered(tsvc_health_t *h, tsvc_ms_t delay) {
  if (delay <= 0 || h->p.jitter_permille <= 0) return delay;
  tsvc_ms_t span = delay / 1000 * h->p.jitter_permille +
                   delay % 1000 * h->p.jitter_permille / 1000;
  if (span <= 0) return delay;
  return delay + (tsvc_ms_t)(rng_next(h) % (uint64_t)(span + 1));
}

static void set_state(tsvc_health_t *h, tsvc_state_t to, tsvc_ms_t now,
                      const char *reason, tsvc_health_actions_t *out) {
  if (h->state == to) return;
  if (out->nchanges < TSVC_HEALTH_MAX_CHANGES) {
    tsvc_health_change_t *c = &out->changes[out->nchanges++];
    c->from = h->state;
    c->to = to;
    c->reason = reason;
  }
  out->flags |= TSVC_HACT_CHANGED;
  h->state = to;
  h->since = now;
}

static bool in_grace(const tsvc_health_t *h, tsvc_ms_t now) {
  return h->state == TSVC_STATE_STARTING && h->grace &&
         now - h->started_at < h->p.start_period;
}

/* The next check, one interval after now (the end of the previous check). */
static void schedule_check(tsvc_health_t *h, tsvc_ms_t now) {
  tsvc_ms_t every = in_grace(h, now) ? h->p.start_interval : h->p.interval;
  h->check_at = now + jittered(h, every);
}

/* The first check after the grace period lands at a random point of the
   interval, so that services started together spread out instead of firing
   in step for ever (the 10% jitter alone drifts them apart only slowly).
   Without jitter: exactly one interval. */
static void schedule_first_check(tsvc_health_t *h, tsvc_ms_t now) {
  if (h->p.jitter_permille <= 0) {
    h->check_at = now + h->p.interval;
    return;
  }
  h->check_at = now + 1 + (tsvc_ms_t)(rng_next(h) % (uint64_t)h->p.interval);
}

static void cancel_check(tsvc_health_t *h, tsvc_health_actions_t *out) {
  if (h->checking) out->flags |= TSVC_HACT_CANCEL_CHECK;
  h->checking = false;
  h->check_at = TSVC_NEVER;
}

static void forget_restarts(tsvc_health_t *h) {
  h->nrestart_times = 0;
  h->backoff_level = 0;
}

/* Drop restart times that have left the window. */
static void prune_restarts(tsvc_health_t *h, tsvc_ms_t now) {
  int keep = 0;
  for (int i = 0; i < h->nrestart_times; i++)
    if (now - h->restart_times[i] < h->p.window) h->restart_times[keep++] = h->restart_times[i];
  h->nrestart_times = keep;
}

static void record_restart(tsvc_health_t *h, tsvc_ms_t now) {
  prune_restarts(h, now);
  /* max_restarts >= 1 (tsvc_health_new refuses less), so a full window
     holds at least one time to drop. */
  if (h->nrestart_times > 0 && h->nrestart_times >= h->p.max_restarts) {
    memmove(h->restart_times, h->restart_times + 1,
            (size_t)(h->nrestart_times - 1) * sizeof *h->restart_times);
    h->nrestart_times--;
  }
  h->restart_times[h->nrestart_times++] = now;
  h->backoff_level++;
}

/* Every (re)start enters starting: grace period, checks every start_interval. */
static void enter_starting(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                           tsvc_health_actions_t *out) {
  set_state(h, TSVC_STATE_STARTING, now, reason, out);
  h->started_at = now;
  h->grace = h->p.start_period > 0;
  h->fails = 0;
  h->successes = 0;
  h->restart_at = TSVC_NEVER;
  h->cooldown_at = TSVC_NEVER;
  h->checking = false;
  h->not_started = false;
  h->verifying = false;
  schedule_check(h, now);
}

static void enter_healthy(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                          tsvc_health_actions_t *out) {
  set_state(h, TSVC_STATE_HEALTHY, now, reason, out);
  h->healthy_since = now;
  h->fails = 0;
  h->grace = false;
  h->verifying = false;
  h->restart_at = TSVC_NEVER;
  h->cooldown_at = TSVC_NEVER;
}

/* Carry out an automatic restart now, counted toward max_restarts: at most
   one operation in flight; checks pause meanwhile. When the last start
   failed there is nothing to restart: the attempt is a start. */
static void do_restart(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                       tsvc_health_actions_t *out) {
  record_restart(h, now);
  h->restarts_total++;
  h->op_counted = true;
  h->restart_at = TSVC_NEVER;
  cancel_check(h, out);
  if (h->not_started) {
    h->op = TSVC_OP_START;
    set_state(h, TSVC_STATE_STARTING, now, reason, out);
    out->flags |= TSVC_HACT_START;
    return;
  }
  h->op = TSVC_OP_RESTART;
  set_state(h, TSVC_STATE_RESTARTING, now, reason, out);
  out->flags |= TSVC_HACT_RESTART;
}

/*
 * The service is unhealthy: restart it now (first restart), later (backoff),
 * or give up (max_restarts within window reached). Nothing when restarts are
 * off, one is in flight, or one is already scheduled.
 */
static void plan_restart(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                         tsvc_health_actions_t *out) {
  if (!h->p.can_restart || h->op != TSVC_OP_NONE || h->restart_at != TSVC_NEVER) return;
  if (tsvc_health_restarts_in_window(h, now) >= h->p.max_restarts) {
    set_state(h, TSVC_STATE_FAILED, now, reason, out);
    out->flags |= TSVC_HACT_GAVE_UP;
    out->reason = reason;
    h->cooldown_at = h->p.cooldown > 0 ? now + h->p.cooldown : TSVC_NEVER;
    return;
  }
  tsvc_ms_t delay = tsvc_health_backoff_delay(h);
  if (delay == 0) {
    do_restart(h, now, reason, out);
    return;
  }
  h->restart_at = now + jittered(h, delay);
  out->flags |= TSVC_HACT_RESTART_LATER;
  out->restart_at = h->restart_at;
  out->reason = reason;
}

/* Unhealthy: keep checking every interval (successes bring it back) and
   plan a restart, which pauses the checks while it runs. */
static void enter_unhealthy(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                            tsvc_health_actions_t *out) {
  set_state(h, TSVC_STATE_UNHEALTHY, now, reason, out);
  h->successes = 0;
  h->grace = false;
  if (h->not_started) h->check_at = TSVC_NEVER; /* nothing runs to check */
  else if (!h->checking) schedule_check(h, now);
  plan_restart(h, now, reason, out);
}

/* A healthy service that stayed healthy for a whole window starts afresh. */
static void maybe_reset_window(tsvc_health_t *h, tsvc_ms_t now) {
  if (h->state == TSVC_STATE_HEALTHY && now - h->healthy_since >= h->p.window)
    forget_restarts(h);
}

static bool checkable(const tsvc_health_t *h) {
  if (h->op != TSVC_OP_NONE || h->not_started) return false;
  switch (h->state) {
  case TSVC_STATE_STARTING:
  case TSVC_STATE_HEALTHY:
  case TSVC_STATE_UNHEALTHY:
  case TSVC_STATE_FAILED:
    return true;
  case TSVC_STATE_UNKNOWN:
    return h->verifying;
  default:
    return false;
  }
}

/* ---- the actions ------------------------------------------------------ */

/*
 * One function per action, named in the table below and in docs/design.md.
 * Each returns 0 or the refusal (nothing changed then).
 */
typedef int (*action_fn)(tsvc_health_t *h, const tsvc_health_event_t *ev,
                         tsvc_health_actions_t *out);

/* Nothing happens. */
static int ignore(tsvc_health_t *h, const tsvc_health_event_t *ev, tsvc_health_actions_t *out) {
  (void)h, (void)ev, (void)out;
  return 0;
}

static int refuse_busy(tsvc_health_t *h, const tsvc_health_event_t *ev,
                       tsvc_health_actions_t *out) {
  (void)h, (void)ev, (void)out;
  return TSVC_EBUSY;
}

static int refuse_running(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  (void)h, (void)ev, (void)out;
  return TSVC_ERUNNING;
}

static int refuse_unreachable(tsvc_health_t *h, const tsvc_health_event_t *ev,
                              tsvc_health_actions_t *out) {
  (void)h, (void)ev, (void)out;
  return TSVC_EUNREACH;
}

/* A check is due: ask for it. */
static void check_if_due(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  if (checkable(h) && !h->checking && h->check_at <= now) {
    h->checking = true;
    h->check_at = TSVC_NEVER;
    out->flags |= TSVC_HACT_CHECK;
  }
}

/* TICK: the next check, when due. */
static int check_due(tsvc_health_t *h, const tsvc_health_event_t *ev,
                     tsvc_health_actions_t *out) {
  check_if_due(h, ev->now, out);
  return 0;
}

/* TICK while starting: a grace period that ended without a success means
   failures count from now; then the check, when due. */
static int grace_or_check(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  if (h->grace && ev->now - h->started_at >= h->p.start_period) h->grace = false;
  check_if_due(h, ev->now, out);
  return 0;
}

/* TICK while unhealthy: the restart due after backoff, else the check. */
static int retry_or_check(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  if (h->restart_at <= ev->now) {
    do_restart(h, ev->now, h->not_started ? "start after backoff" : "restart after backoff",
               out);
    return 0;
  }
  check_if_due(h, ev->now, out);
  return 0;
}

/* TICK while failed: restarts resume once the cooldown is over; else the
   check. */
static int cooldown_or_check(tsvc_health_t *h, const tsvc_health_event_t *ev,
                             tsvc_health_actions_t *out) {
  if (h->cooldown_at <= ev->now) {
    out->flags |= TSVC_HACT_COOLDOWN_OVER;
    h->cooldown_at = TSVC_NEVER;
    forget_restarts(h);
    do_restart(h, ev->now,
               h->not_started ? "cooldown over, starting" : "cooldown over, restarting", out);
    return 0;
  }
  check_if_due(h, ev->now, out);
  return 0;
}

/* A failure that counts: `retries` of them in a row make the service
   unhealthy (true then). The rule, written once. */
static bool count_failure(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                          tsvc_health_actions_t *out) {
  h->successes = 0;
  if (++h->fails < h->p.retries) return false;
  h->verifying = false;
  enter_unhealthy(h, now, reason, out);
  return true;
}

/* Not running means unhealthy at once, grace period or not; the probe in
   flight, if any, has nothing left to say. */
static void go_unhealthy(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                         tsvc_health_actions_t *out) {
  h->verifying = false;
  cancel_check(h, out);
  enter_unhealthy(h, now, reason, out);
}

static int die(tsvc_health_t *h, const tsvc_health_event_t *ev, tsvc_health_actions_t *out) {
  go_unhealthy(h, ev->now, ev->message ? ev->message : "not running", out);
  return 0;
}

/* DIED while unhealthy: make sure a restart is planned. */
static int die_again(tsvc_health_t *h, const tsvc_health_event_t *ev,
                     tsvc_health_actions_t *out) {
  plan_restart(h, ev->now, ev->message ? ev->message : "not running", out);
  return 0;
}

/* A check's result. The preamble every judging action shares: a result
   nobody waits for (the check was cancelled) changes nothing; it counts;
   "not running" is a death. Returns true when the caller judges it. */
static bool take_result(tsvc_health_t *h, const tsvc_health_event_t *ev,
                        tsvc_health_actions_t *out, const char **reason) {
  if (!h->checking) return false;
  h->checking = false;
  h->checks_total++;
  if (ev->result != TSVC_RESULT_OK) h->failures_total++;
  *reason = ev->message && *ev->message ? ev->message : tsvc_result_name(ev->result);
  if (ev->result != TSVC_RESULT_NOT_RUNNING) return true;
  /* As DIED would: unhealthy makes sure a restart is planned, failed
     leaves it to the cooldown. */
  if (h->state == TSVC_STATE_UNHEALTHY) plan_restart(h, ev->now, *reason, out);
  else if (h->state != TSVC_STATE_FAILED) go_unhealthy(h, ev->now, *reason, out);
  if (checkable(h) && h->check_at == TSVC_NEVER) schedule_check(h, ev->now);
  return false;
}

/* A result that comes when nothing is checked (a restart, a stop or the
   runtime going away cancelled the check): dropped. */
static int drop_result(tsvc_health_t *h, const tsvc_health_event_t *ev,
                       tsvc_health_actions_t *out) {
  (void)ev, (void)out;
  h->checking = false;
  return 0;
}

/* Starting: the first success ends the grace period at once; inside it a
   failure is recorded, not counted. */
static int judge_in_grace(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  const char *reason;
  if (!take_result(h, ev, out, &reason)) return 0;
  if (ev->result == TSVC_RESULT_OK) {
    h->successes = 1;
    enter_healthy(h, ev->now, "first successful check", out);
    schedule_first_check(h, ev->now);
    return 0;
  }
  if (!in_grace(h, ev->now)) {
    h->grace = false;
    if (count_failure(h, ev->now, reason, out)) return 0;
  }
  schedule_check(h, ev->now);
  return 0;
}

/* Healthy: a success clears the failures; failures count. */
static int judge(tsvc_health_t *h, const tsvc_health_event_t *ev, tsvc_health_actions_t *out) {
  const char *reason;
  if (!take_result(h, ev, out, &reason)) return 0;
  if (ev->result == TSVC_RESULT_OK) {
    h->fails = 0;
    h->successes++;
    maybe_reset_window(h, ev->now);
  } else if (count_failure(h, ev->now, reason, out)) {
    return 0;
  }
  schedule_check(h, ev->now);
  return 0;
}

/* Unhealthy or failed: success_threshold successes in a row make it
   healthy again. */
static int judge_recovery(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  const char *reason;
  if (!take_result(h, ev, out, &reason)) return 0;
  if (ev->result == TSVC_RESULT_OK) {
    if (++h->successes >= h->p.success_threshold)
      enter_healthy(h, ev->now, "checks pass again", out);
  } else {
    h->successes = 0;
    h->fails++;
  }
  schedule_check(h, ev->now);
  return 0;
}

/* Verifying, after the runtime's return: healthy once a check passes,
   unhealthy after retries failures, as from healthy. */
static int judge_return(tsvc_health_t *h, const tsvc_health_event_t *ev,
                        tsvc_health_actions_t *out) {
  const char *reason;
  if (!take_result(h, ev, out, &reason)) return 0;
  if (ev->result == TSVC_RESULT_OK) {
    h->successes = 1;
    enter_healthy(h, ev->now, "runtime reachable again; the check passes", out);
  } else if (count_failure(h, ev->now, reason, out)) {
    return 0;
  }
  schedule_check(h, ev->now);
  return 0;
}

/* STARTED (by someone else): a grace period from now. */
static int start_grace(tsvc_health_t *h, const tsvc_health_event_t *ev,
                       tsvc_health_actions_t *out) {
  enter_starting(h, ev->now, "started", out);
  return 0;
}

/* STARTED while the runtime cannot be reached: what it comes back to. */
static int remember_start(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  (void)out;
  h->saved_state = TSVC_STATE_STARTING;
  h->started_at = ev->now;
  h->grace = h->p.start_period > 0;
  h->fails = h->successes = 0;
  h->restart_at = TSVC_NEVER;
  return 0;
}

/* OP_DONE of a start or a restart: the grace period begins. */
static int started(tsvc_health_t *h, const tsvc_health_event_t *ev,
                   tsvc_health_actions_t *out) {
  tsvc_health_op_t op = h->op;
  h->op = TSVC_OP_NONE;
  h->op_counted = false;
  enter_starting(h, ev->now, op == TSVC_OP_START ? "started" : "restarted", out);
  return 0;
}

/* OP_DONE of a stop. */
static int stopped(tsvc_health_t *h, const tsvc_health_event_t *ev,
                   tsvc_health_actions_t *out) {
  (void)ev, (void)out;
  h->op = TSVC_OP_NONE;
  h->op_counted = false;
  return 0;
}

/* OP_DONE while the runtime cannot be reached: a start or a restart enters
   starting quietly, then goes back to unknown until the runtime answers
   again. */
static int done_unseen(tsvc_health_t *h, const tsvc_health_event_t *ev,
                       tsvc_health_actions_t *out) {
  (void)out;
  tsvc_health_op_t op = h->op;
  h->op = TSVC_OP_NONE;
  h->op_counted = false;
  if (op != TSVC_OP_START && op != TSVC_OP_RESTART) return 0;
  tsvc_ms_t since = h->since;
  h->state = h->saved_state;
  enter_starting(h, ev->now, "started", &(tsvc_health_actions_t){0});
  h->saved_state = h->state;
  h->state = TSVC_STATE_UNKNOWN;
  h->since = since;
  h->check_at = TSVC_NEVER;
  return 0;
}

/* OP_FAILED: the preamble every failure shares. Returns the operation that
   failed. */
static tsvc_health_op_t take_failure(tsvc_health_t *h, const tsvc_health_event_t *ev,
                                     tsvc_health_actions_t *out, bool *counted) {
  tsvc_health_op_t op = h->op;
  *counted = h->op_counted;
  h->op = TSVC_OP_NONE;
  h->op_counted = false;
  out->flags |= TSVC_HACT_OP_FAILED;
  out->reason = ev->message ? ev->message : "operation failed";
  return op;
}

/* A restart failed: logged, retried on the backoff schedule; monitoring
   goes on. */
static int restart_failed(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  bool counted;
  take_failure(h, ev, out, &counted);
  enter_unhealthy(h, ev->now, out->reason, out);
  return 0;
}

/* A start that failed (the first, a person's or a retry): nothing runs.
   Not a stop: it counts toward max_restarts and is retried as a start on
   the backoff schedule (the failed start is the first attempt, so the
   first retry waits `backoff`). */
static int start_failed(tsvc_health_t *h, const tsvc_health_event_t *ev,
                        tsvc_health_actions_t *out) {
  bool counted;
  take_failure(h, ev, out, &counted);
  if (!counted) record_restart(h, ev->now);
  h->not_started = true;
  enter_unhealthy(h, ev->now, out->reason, out);
  return 0;
}

/* A stop that failed: logged; the service stays stopped. */
static int stop_failed(tsvc_health_t *h, const tsvc_health_event_t *ev,
                       tsvc_health_actions_t *out) {
  bool counted;
  take_failure(h, ev, out, &counted);
  return 0;
}

/* OP_FAILED while the runtime cannot be reached: what it comes back to is
   unhealthy, with the retry planned. */
static int failed_unseen(tsvc_health_t *h, const tsvc_health_event_t *ev,
                         tsvc_health_actions_t *out) {
  bool counted;
  tsvc_health_op_t op = take_failure(h, ev, out, &counted);
  if (op == TSVC_OP_RESTART) {
    h->saved_state = TSVC_STATE_UNHEALTHY;
    h->restart_at = ev->now + jittered(h, tsvc_health_backoff_delay(h));
  } else if (op == TSVC_OP_START) {
    if (!counted) record_restart(h, ev->now);
    h->not_started = true;
    h->saved_state = TSVC_STATE_UNHEALTHY;
    h->restart_at = h->p.can_restart ? ev->now + jittered(h, tsvc_health_backoff_delay(h))
                                     : TSVC_NEVER;
  }
  return 0;
}

/* A person's start (or the first start of all): from stopped, or when the
   last start failed (nothing runs). Clears the count, as a restart does. */
static void begin_start(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                        tsvc_health_actions_t *out) {
  forget_restarts(h);
  h->restart_at = TSVC_NEVER;
  h->cooldown_at = TSVC_NEVER;
  cancel_check(h, out);
  h->op = TSVC_OP_START;
  h->op_counted = false;
  h->verifying = false;
  set_state(h, TSVC_STATE_STARTING, now, reason, out);
  out->flags |= TSVC_HACT_START;
}

static int person_start(tsvc_health_t *h, const tsvc_health_event_t *ev,
                        tsvc_health_actions_t *out) {
  begin_start(h, ev->now, "start requested", out);
  return 0;
}

/* A person's restart when nothing runs since the last start failed:
   restarting it is starting it. */
static int person_start_instead(tsvc_health_t *h, const tsvc_health_event_t *ev,
                                tsvc_health_actions_t *out) {
  begin_start(h, ev->now, "restart requested (not running: starting it)", out);
  return 0;
}

/* A person's stop: checks and restarts end; only this makes a service
   stopped. */
static int person_stop(tsvc_health_t *h, const tsvc_health_event_t *ev,
                       tsvc_health_actions_t *out) {
  cancel_check(h, out);
  h->restart_at = TSVC_NEVER;
  h->cooldown_at = TSVC_NEVER;
  h->fails = h->successes = 0;
  h->not_started = false;
  h->verifying = false;
  h->op = TSVC_OP_STOP;
  set_state(h, TSVC_STATE_STOPPED, ev->now, "stop requested", out);
  out->flags |= TSVC_HACT_STOP;
  return 0;
}

/* A person's restart always goes through, clears failed and the count.
   The monitor asks for one the same way when a dependency with restart:
   true restarted (docs/design.md, "Dependencies"): ev->message says so. */
static int person_restart(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  h->verifying = false;
  forget_restarts(h);
  h->cooldown_at = TSVC_NEVER;
  h->restart_at = TSVC_NEVER;
  h->restarts_total++;
  h->op = TSVC_OP_RESTART;
  h->op_counted = false;
  cancel_check(h, out);
  set_state(h, TSVC_STATE_RESTARTING, ev->now,
            ev->message && *ev->message ? ev->message : "restart requested", out);
  out->flags |= TSVC_HACT_RESTART;
  return 0;
}

/* RUNTIME_DOWN: unknown until it answers again; what the service was is
   kept to come back to. */
static int lose_runtime(tsvc_health_t *h, const tsvc_health_event_t *ev,
                        tsvc_health_actions_t *out) {
  h->saved_state = h->state;
  cancel_check(h, out);
  set_state(h, TSVC_STATE_UNKNOWN, ev->now, ev->message ? ev->message : "runtime unreachable",
            out);
  return 0;
}

/* Gone again before its return was verified. */
static int lose_again(tsvc_health_t *h, const tsvc_health_event_t *ev,
                      tsvc_health_actions_t *out) {
  (void)ev;
  cancel_check(h, out);
  h->verifying = false;
  return 0;
}

/* RUNTIME_UP. A service that was healthy (and nothing in flight) stays
   unknown until a check passes (checked now; the caller inspects it too
   and feeds DIED when it died meanwhile); the others come back at once,
   looked at right away. */
static int regain_runtime(tsvc_health_t *h, const tsvc_health_event_t *ev,
                          tsvc_health_actions_t *out) {
  if (h->saved_state == TSVC_STATE_HEALTHY && h->op == TSVC_OP_NONE) {
    h->verifying = true;
    h->check_at = ev->now;
    return 0;
  }
  set_state(h, h->saved_state, ev->now, "runtime reachable again", out);
  h->check_at = checkable(h) ? ev->now : TSVC_NEVER;
  return 0;
}

/* ---- the table ------------------------------------------------------------ */

/* Situations: a state, with what matters of the operation in flight and of
   the last start. */
#define ROW_MAP(X)                                                             \
  X(STARTING, "starting")         /* grace period, or checks counting */     \
  X(STARTING_OP, "starting/op")   /* a start in flight */                    \
  X(HEALTHY, "healthy")                                                      \
  X(UNHEALTHY, "unhealthy")                                                  \
  X(UNHEALTHY_NS, "unhealthy/ns") /* the last start failed: nothing runs */  \
  X(RESTARTING, "restarting")     /* a restart in flight */                  \
  X(FAILED, "failed")                                                        \
  X(FAILED_NS, "failed/ns")       /* gave up starting: nothing runs */       \
  X(STOPPED, "stopped")                                                      \
  X(STOPPING, "stopping")         /* stopped, the stop in flight */          \
  X(UNKNOWN, "unknown")           /* the runtime cannot be reached */        \
  X(UNKNOWN_OP, "unknown/op")     /* ... and an operation is in flight */    \
  X(VERIFYING, "unknown/v")       /* it answers again; was healthy */

typedef enum {
#define ROW_ENUM(name, text) ROW_##name,
  ROW_MAP(ROW_ENUM)
#undef ROW_ENUM
  ROW__COUNT
} row_t;

static row_t row_of(const tsvc_health_t *h) {
  switch (h->state) {
  case TSVC_STATE_STARTING: return h->op != TSVC_OP_NONE ? ROW_STARTING_OP : ROW_STARTING;
  case TSVC_STATE_HEALTHY: return ROW_HEALTHY;
  case TSVC_STATE_UNHEALTHY: return h->not_started ? ROW_UNHEALTHY_NS : ROW_UNHEALTHY;
  case TSVC_STATE_RESTARTING: return ROW_RESTARTING;
  case TSVC_STATE_FAILED: return h->not_started ? ROW_FAILED_NS : ROW_FAILED;
  case TSVC_STATE_STOPPED: return h->op == TSVC_OP_STOP ? ROW_STOPPING : ROW_STOPPED;
  case TSVC_STATE_UNKNOWN:
  default:
    if (h->verifying) return ROW_VERIFYING;
    return h->op != TSVC_OP_NONE ? ROW_UNKNOWN_OP : ROW_UNKNOWN;
  }
}

typedef struct {
  const char *name;
  action_fn fn;
} action_t;

#define A(fn) {#fn, fn}

/* actions[situation][event]: the machine. docs/design.md shows the same
   table (tests/test_health.c compares them, cell by cell). */
static const action_t actions[ROW__COUNT][TSVC_HEV__COUNT] = {
#define ROW(row, tick, start, died, check, done, fail, ustart, ustop, urestart, down, up)      \
  [ROW_##row] = {[TSVC_HEV_TICK] = A(tick),          [TSVC_HEV_STARTED] = A(start),            \
                 [TSVC_HEV_DIED] = A(died),          [TSVC_HEV_CHECK_RESULT] = A(check),       \
                 [TSVC_HEV_OP_DONE] = A(done),       [TSVC_HEV_OP_FAILED] = A(fail),           \
                 [TSVC_HEV_USER_START] = A(ustart),  [TSVC_HEV_USER_STOP] = A(ustop),          \
                 [TSVC_HEV_USER_RESTART] = A(urestart), [TSVC_HEV_RUNTIME_DOWN] = A(down),     \
                 [TSVC_HEV_RUNTIME_UP] = A(up)}
    /*  situation     TICK, STARTED, DIED, CHECK_RESULT,
                      OP_DONE, OP_FAILED, USER_START, USER_STOP,
                      USER_RESTART, RUNTIME_DOWN, RUNTIME_UP */
    ROW(STARTING,     grace_or_check, start_grace, die, judge_in_grace,
                      ignore, ignore, refuse_running, person_stop,
                      person_restart, lose_runtime, ignore),
    ROW(STARTING_OP,  ignore, ignore, ignore, drop_result,
                      started, start_failed, refuse_busy, refuse_busy,
                      refuse_busy, lose_runtime, ignore),
    ROW(HEALTHY,      check_due, start_grace, die, judge,
                      ignore, ignore, refuse_running, person_stop,
                      person_restart, lose_runtime, ignore),
    ROW(UNHEALTHY,    retry_or_check, start_grace, die_again, judge_recovery,
                      ignore, ignore, refuse_running, person_stop,
                      person_restart, lose_runtime, ignore),
    ROW(UNHEALTHY_NS, retry_or_check, start_grace, die_again, drop_result,
                      ignore, ignore, person_start, person_stop,
                      person_start_instead, lose_runtime, ignore),
    ROW(RESTARTING,   ignore, ignore, ignore, drop_result,
                      started, restart_failed, refuse_busy, refuse_busy,
                      ignore, lose_runtime, ignore),
    ROW(FAILED,       cooldown_or_check, start_grace, ignore, judge_recovery,
                      ignore, ignore, refuse_running, person_stop,
                      person_restart, lose_runtime, ignore),
    ROW(FAILED_NS,    cooldown_or_check, start_grace, ignore, drop_result,
                      ignore, ignore, person_start, person_stop,
                      person_start_instead, lose_runtime, ignore),
    ROW(STOPPED,      ignore, start_grace, ignore, drop_result,
                      ignore, ignore, person_start, ignore,
                      person_restart, lose_runtime, ignore),
    ROW(STOPPING,     ignore, ignore, ignore, drop_result,
                      stopped, stop_failed, refuse_busy, ignore,
                      refuse_busy, lose_runtime, ignore),
    ROW(UNKNOWN,      ignore, remember_start, ignore, drop_result,
                      ignore, ignore, refuse_unreachable, refuse_unreachable,
                      refuse_unreachable, ignore, regain_runtime),
    ROW(UNKNOWN_OP,   ignore, ignore, ignore, drop_result,
                      done_unseen, failed_unseen, refuse_unreachable, refuse_unreachable,
                      refuse_unreachable, ignore, regain_runtime),
    ROW(VERIFYING,    check_due, start_grace, die, judge_return,
                      ignore, ignore, refuse_running, person_stop,
                      person_restart, lose_again, ignore),
#undef ROW
};
#undef A

/* ---- public ------------------------------------------------------------ */

static int check_params(const tsvc_health_params_t *p) {
  if (p->interval <= 0 || p->start_interval <= 0 || p->start_period < 0 ||
      p->retries < 1 || p->success_threshold < 1 || p->max_restarts < 1 ||
      p->window <= 0 || p->backoff < 0 || p->max_backoff < p->backoff ||
      p->cooldown < 0 || p->jitter_permille < 0 || p->jitter_permille > 1000)
    return TSVC_EINVAL;
  return 0;
}

int tsvc_health_init(tsvc_health_t *h, const tsvc_health_params_t *p,
                     tsvc_ms_t now, uint64_t seed) {
  int rc = check_params(p);
  if (rc) return rc;
  memset(h, 0, sizeof *h);
  h->restart_times = calloc((size_t)p->max_restarts, sizeof *h->restart_times);
  if (!h->restart_times) return TSVC_ENOMEM;
  h->p = *p;
  h->state = h->saved_state = TSVC_STATE_STOPPED;
  h->since = now;
  h->check_at = h->restart_at = h->cooldown_at = TSVC_NEVER;
  h->rng = seed ? seed : UINT64_C(0x9E3779B97F4A7C15);
  return 0;
}

void tsvc_health_free(tsvc_health_t *h) {
  free(h->restart_times);
  h->restart_times = NULL;
}

int tsvc_health_set_params(tsvc_health_t *h, const tsvc_health_params_t *p) {
  int rc = check_params(p);
  if (rc) return rc;
  if (p->max_restarts != h->p.max_restarts) {
    tsvc_ms_t *t = calloc((size_t)p->max_restarts, sizeof *t);
    if (!t) return TSVC_ENOMEM;
    /* Keep the newest restart times that fit. */
    int keep = h->nrestart_times < p->max_restarts ? h->nrestart_times : p->max_restarts;
    memcpy(t, h->restart_times + (h->nrestart_times - keep), (size_t)keep * sizeof *t);
    free(h->restart_times);
    h->restart_times = t;
    h->nrestart_times = keep;
  }
  h->p = *p;
  return 0;
}

int tsvc_health_step(tsvc_health_t *h, const tsvc_health_event_t *ev,
                     tsvc_health_actions_t *out) {
  memset(out, 0, sizeof *out);
  out->restart_at = TSVC_NEVER;
  if ((unsigned)ev->type >= TSVC_HEV__COUNT) return TSVC_EINVAL;
  maybe_reset_window(h, ev->now);
  return actions[row_of(h)][ev->type].fn(h, ev, out);
}

const char *tsvc_health_row_name(int row) {
  static const char *const names[] = {
#define ROW_NAME(name, text) text,
      ROW_MAP(ROW_NAME)
#undef ROW_NAME
  };
  return row >= 0 && row < ROW__COUNT ? names[row] : NULL;
}

int tsvc_health_row(const tsvc_health_t *h) { return (int)row_of(h); }

const char *tsvc_health_action_name(int row, tsvc_health_event_type_t ev) {
  if (row < 0 || row >= ROW__COUNT || (unsigned)ev >= TSVC_HEV__COUNT) return NULL;
  return actions[row][ev].name;
}

tsvc_ms_t tsvc_health_next_deadline(const tsvc_health_t *h) {
  tsvc_ms_t t = TSVC_NEVER;
  if (h->op != TSVC_OP_NONE) return t;
  if (checkable(h) && !h->checking && h->check_at < t) t = h->check_at;
  if (h->state == TSVC_STATE_UNHEALTHY && h->restart_at < t) t = h->restart_at;
  if (h->state == TSVC_STATE_FAILED && h->cooldown_at < t) t = h->cooldown_at;
  if (h->state == TSVC_STATE_STARTING && h->grace) {
    tsvc_ms_t end = h->started_at + h->p.start_period;
    if (end < t) t = end;
  }
  return t;
}

int tsvc_health_restarts_in_window(const tsvc_health_t *h, tsvc_ms_t now) {
  int n = 0;
  for (int i = 0; i < h->nrestart_times; i++)
    if (now - h->restart_times[i] < h->p.window) n++;
  return n;
}

tsvc_ms_t tsvc_health_backoff_delay(const tsvc_health_t *h) {
  if (h->backoff_level <= 0) return 0;
  tsvc_ms_t d = h->p.backoff;
  for (int i = 1; i < h->backoff_level && d < h->p.max_backoff; i++) d *= 2;
  return d < h->p.max_backoff ? d : h->p.max_backoff;
}
