/*
 * health.c: the health state machine. See health.h and DESIGN.md section 4.
 *
 * Layout: small helpers that carry out one rule each (enter a state,
 * schedule a check, decide on a restart), then one function per event, each
 * a switch over the states. The table below summarises them; the test
 * every_state_every_event (tests/test_health.c) walks every cell of it.
 *
 *              TICK      CHK ok  CHK bad DIED  STARTED DONE   FAILED USTART USTOP URESTART DOWN UP
 * starting     check     healthy count*  unhe. start.  -      -      ESTATE stop. restart. unkn -
 * starting/op  -         -       -       -     -       start. unhe.  EBUSY  EBUSY EBUSY    unkn -
 * healthy      check     -       count   unhe. start.  -      -      ESTATE stop. restart. unkn -
 * unhealthy    check,re. +succ.  -       -     start.  -      -      ESTATE stop. restart. unkn -
 * unhealthy/ns start     -       -       -     start.  -      -      start  stop. start    unkn -
 * restarting   -         -       -       -     -       start. unhe.  EBUSY  EBUSY (joins)  unkn -
 * failed       check,cd. +succ.  -       -     start.  -      -      ESTATE stop. restart. unkn -
 * stopped      -         -       -       -     start.  -      -      start  -     restart. unkn -
 * unknown      -         -       -       -     saved   saved  saved  EUNR.  EUNR. EUNR.    -    sav/v
 * unknown/v    check     healthy count   unhe. start.  -      -      ESTATE stop. restart. -    -
 *
 * (count: a failure counts toward retries, * after the grace period, and
 * retries of them make it unhealthy; unhe.: unhealthy, and the restart is
 * planned: at once, after backoff, or failed; re.: the restart due after
 * backoff; cd.: restarts resume after the cooldown; saved: the state the
 * service had before the runtime went away, updated by what happens
 * meanwhile; sav/v: saved, or verifying when it was healthy; EUNR.:
 * EUNREACH.)
 *
 * Starts (starting/op, unhealthy/ns). A start in flight is `starting` with
 * op START: nothing is checked until it is done. A start that fails (the
 * first, a person's, or a retry) is no stop: the service goes `unhealthy`
 * with the runtime's words, the attempt counts toward max_restarts like a
 * restart, and it is retried as a start on the restart backoff schedule
 * (`failed` once max_restarts is reached, with the cooldown as usual).
 * Until a start succeeds nothing runs, so nothing is checked (not_started),
 * and a person's start is accepted besides a restart. Only a person's stop
 * makes a service `stopped`.
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
  if (h->nrestart_times == h->p.max_restarts) {
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

/* ---- one function per event -------------------------------------------- */

static int on_tick(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  switch (h->state) {
  case TSVC_STATE_UNHEALTHY:
    if (h->op == TSVC_OP_NONE && h->restart_at <= now) {
      do_restart(h, now, h->not_started ? "start after backoff" : "restart after backoff", out);
      return 0;
    }
    break;
  case TSVC_STATE_FAILED:
    if (h->op == TSVC_OP_NONE && h->cooldown_at <= now) {
      out->flags |= TSVC_HACT_COOLDOWN_OVER;
      h->cooldown_at = TSVC_NEVER;
      forget_restarts(h);
      do_restart(h, now, h->not_started ? "cooldown over, starting" : "cooldown over, restarting",
                 out);
      return 0;
    }
    break;
  case TSVC_STATE_STARTING:
    /* A grace period that ended without a success: failures count now. */
    if (h->grace && now - h->started_at >= h->p.start_period) h->grace = false;
    break;
  case TSVC_STATE_HEALTHY:
  case TSVC_STATE_RESTARTING:
  case TSVC_STATE_STOPPED:
  case TSVC_STATE_UNKNOWN:
  default:
    break;
  }
  if (checkable(h) && !h->checking && h->check_at <= now) {
    h->checking = true;
    h->check_at = TSVC_NEVER;
    out->flags |= TSVC_HACT_CHECK;
  }
  return 0;
}

static int on_died(tsvc_health_t *h, tsvc_ms_t now, const char *why,
                   tsvc_health_actions_t *out) {
  const char *reason = why ? why : "not running";
  /* An operation of ours in flight: its own outcome decides (a restart
     stops the container; a start may meet the end of an old one). */
  if (h->op != TSVC_OP_NONE) return 0;
  switch (h->state) {
  case TSVC_STATE_UNKNOWN:
    if (h->verifying) {
      /* Found dead on the runtime's return: never shown healthy. */
      h->verifying = false;
      cancel_check(h, out);
      enter_unhealthy(h, now, reason, out);
    } /* else: looked at again when the runtime is back */
    break;
  case TSVC_STATE_STARTING:
  case TSVC_STATE_HEALTHY:
    /* Not running means unhealthy at once, grace period or not; the probe
       in flight, if any, has nothing left to say. */
    cancel_check(h, out);
    enter_unhealthy(h, now, reason, out);
    break;
  case TSVC_STATE_UNHEALTHY:
    /* Already unhealthy: make sure a restart is planned. */
    plan_restart(h, now, reason, out);
    break;
  case TSVC_STATE_FAILED:     /* gave up; the cooldown decides */
  case TSVC_STATE_RESTARTING: /* our own restart stops it */
  case TSVC_STATE_STOPPED:    /* stopped on purpose */
  default:
    break;
  }
  return 0;
}

static int on_check(tsvc_health_t *h, const tsvc_health_event_t *ev,
                    tsvc_health_actions_t *out) {
  tsvc_ms_t now = ev->now;
  /* A result for a check we no longer wait for (cancelled by a restart,
     a stop or the runtime going away) changes nothing. */
  if (!h->checking) return 0;
  h->checking = false;
  if (!checkable(h)) return 0;
  h->checks_total++;
  bool ok = ev->result == TSVC_RESULT_OK;
  if (!ok) h->failures_total++;
  const char *reason = ev->message && *ev->message ? ev->message : tsvc_result_name(ev->result);
  if (ev->result == TSVC_RESULT_NOT_RUNNING) {
    on_died(h, now, reason, out);
    if (checkable(h) && h->check_at == TSVC_NEVER) schedule_check(h, now);
    return 0;
  }

  switch (h->state) {
  case TSVC_STATE_STARTING:
    if (ok) {
      /* The first success ends the grace period at once. */
      h->successes = 1;
      enter_healthy(h, now, "first successful check", out);
      schedule_first_check(h, now);
      return 0;
    } else if (!in_grace(h, now)) {
      h->grace = false;
      h->successes = 0;
      if (++h->fails >= h->p.retries) {
        enter_unhealthy(h, now, reason, out);
        return 0;
      }
    }
    /* else: a failure inside the grace period is recorded, not counted. */
    break;
  case TSVC_STATE_HEALTHY:
    if (ok) {
      h->fails = 0;
      h->successes++;
      maybe_reset_window(h, now);
    } else {
      h->successes = 0;
      if (++h->fails >= h->p.retries) {
        enter_unhealthy(h, now, reason, out);
        return 0;
      }
    }
    break;
  case TSVC_STATE_UNHEALTHY:
  case TSVC_STATE_FAILED:
    if (ok) {
      if (++h->successes >= h->p.success_threshold) {
        enter_healthy(h, now, "checks pass again", out);
      }
    } else {
      h->successes = 0;
      h->fails++;
    }
    break;
  case TSVC_STATE_UNKNOWN:
    /* Verifying, after the runtime's return: healthy once a check passes,
       unhealthy after retries failures, as from healthy. */
    if (ok) {
      h->successes = 1;
      enter_healthy(h, now, "runtime reachable again; the check passes", out);
    } else {
      h->successes = 0;
      if (++h->fails >= h->p.retries) {
        h->verifying = false;
        enter_unhealthy(h, now, reason, out);
        return 0;
      }
    }
    break;
  default:
    break;
  }
  schedule_check(h, now);
  return 0;
}

static int on_started(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  if (h->op != TSVC_OP_NONE) return 0; /* ours: OP_DONE follows */
  switch (h->state) {
  case TSVC_STATE_UNKNOWN:
    if (h->verifying) {
      enter_starting(h, now, "started", out);
      break;
    }
    h->saved_state = TSVC_STATE_STARTING;
    h->started_at = now;
    h->grace = h->p.start_period > 0;
    h->fails = h->successes = 0;
    h->restart_at = TSVC_NEVER;
    break;
  case TSVC_STATE_RESTARTING:
    break;
  default:
    enter_starting(h, now, "started", out);
    break;
  }
  return 0;
}

static int on_op_done(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  tsvc_health_op_t op = h->op;
  h->op = TSVC_OP_NONE;
  h->op_counted = false;
  switch (op) {
  case TSVC_OP_START:
  case TSVC_OP_RESTART:
    if (h->state == TSVC_STATE_UNKNOWN) {
      /* Enter starting quietly, then go back to unknown until the runtime
         answers again. */
      tsvc_ms_t since = h->since;
      h->state = h->saved_state;
      enter_starting(h, now, "started", &(tsvc_health_actions_t){0});
      h->saved_state = h->state;
      h->state = TSVC_STATE_UNKNOWN;
      h->since = since;
      h->check_at = TSVC_NEVER;
    } else {
      enter_starting(h, now, op == TSVC_OP_START ? "started" : "restarted", out);
    }
    break;
  case TSVC_OP_STOP:
  case TSVC_OP_NONE:
  default:
    break;
  }
  return 0;
}

static int on_op_failed(tsvc_health_t *h, tsvc_ms_t now, const char *why,
                        tsvc_health_actions_t *out) {
  tsvc_health_op_t op = h->op;
  const char *reason = why ? why : "operation failed";
  if (op == TSVC_OP_NONE) return 0;
  bool counted = h->op_counted;
  h->op = TSVC_OP_NONE;
  h->op_counted = false;
  out->flags |= TSVC_HACT_OP_FAILED;
  out->reason = reason;
  bool unknown = h->state == TSVC_STATE_UNKNOWN;
  switch (op) {
  case TSVC_OP_RESTART:
    /* Logged, retried on the backoff schedule; monitoring goes on. */
    if (unknown) {
      h->saved_state = TSVC_STATE_UNHEALTHY;
      h->restart_at = now + jittered(h, tsvc_health_backoff_delay(h));
      break;
    }
    enter_unhealthy(h, now, reason, out);
    break;
  case TSVC_OP_START:
    /* A start that failed (the first, a person's or a retry): nothing runs.
       Not a stop: it counts toward max_restarts and is retried as a start
       on the backoff schedule (the failed start is the first attempt, so
       the first retry waits `backoff`). */
    if (!counted) record_restart(h, now);
    h->not_started = true;
    if (unknown) {
      h->saved_state = TSVC_STATE_UNHEALTHY;
      h->restart_at = h->p.can_restart ? now + jittered(h, tsvc_health_backoff_delay(h))
                                       : TSVC_NEVER;
      break;
    }
    enter_unhealthy(h, now, reason, out);
    break;
  case TSVC_OP_STOP:
  default:
    break;
  }
  return 0;
}

/* A person's start (or the first start of all): from stopped, or when the
   last start failed (nothing runs). Clears the count, as a restart does. */
static void user_start(tsvc_health_t *h, tsvc_ms_t now, const char *reason,
                       tsvc_health_actions_t *out) {
  forget_restarts(h);
  h->restart_at = TSVC_NEVER;
  h->cooldown_at = TSVC_NEVER;
  cancel_check(h, out);
  h->op = TSVC_OP_START;
  h->op_counted = false;
  set_state(h, TSVC_STATE_STARTING, now, reason, out);
  out->flags |= TSVC_HACT_START;
}

/* The runtime cannot be reached (and we are not verifying its return). */
static bool unreachable(const tsvc_health_t *h) {
  return h->state == TSVC_STATE_UNKNOWN && !h->verifying;
}

static int on_user_start(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  if (unreachable(h)) return TSVC_EUNREACH;
  if (h->op != TSVC_OP_NONE) return TSVC_EBUSY;
  if (h->state != TSVC_STATE_STOPPED && !h->not_started) return TSVC_ERUNNING;
  user_start(h, now, "start requested", out);
  return 0;
}

static int on_user_stop(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  if (unreachable(h)) return TSVC_EUNREACH;
  if (h->op == TSVC_OP_STOP || (h->state == TSVC_STATE_STOPPED && h->op == TSVC_OP_NONE))
    return 0; /* already stopped or stopping */
  if (h->op != TSVC_OP_NONE) return TSVC_EBUSY;
  cancel_check(h, out);
  h->restart_at = TSVC_NEVER;
  h->cooldown_at = TSVC_NEVER;
  h->fails = h->successes = 0;
  h->not_started = false;
  h->verifying = false;
  h->op = TSVC_OP_STOP;
  set_state(h, TSVC_STATE_STOPPED, now, "stop requested", out);
  out->flags |= TSVC_HACT_STOP;
  return 0;
}

static int on_user_restart(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  if (unreachable(h)) return TSVC_EUNREACH;
  if (h->op == TSVC_OP_RESTART) return 0; /* joins the restart in flight */
  if (h->op != TSVC_OP_NONE) return TSVC_EBUSY;
  h->verifying = false;
  /* Nothing runs since the last start failed: restarting it is starting it. */
  if (h->not_started) {
    user_start(h, now, "restart requested (not running: starting it)", out);
    return 0;
  }
  /* A person's restart always goes through, clears failed and the count. */
  forget_restarts(h);
  h->cooldown_at = TSVC_NEVER;
  h->restart_at = TSVC_NEVER;
  h->restarts_total++;
  h->op = TSVC_OP_RESTART;
  h->op_counted = false;
  cancel_check(h, out);
  set_state(h, TSVC_STATE_RESTARTING, now, "restart requested", out);
  out->flags |= TSVC_HACT_RESTART;
  return 0;
}

static int on_runtime_down(tsvc_health_t *h, tsvc_ms_t now, const char *why,
                           tsvc_health_actions_t *out) {
  if (h->state == TSVC_STATE_UNKNOWN) {
    /* Gone again before the return was verified. */
    if (h->verifying) cancel_check(h, out);
    h->verifying = false;
    return 0;
  }
  h->saved_state = h->state;
  cancel_check(h, out);
  set_state(h, TSVC_STATE_UNKNOWN, now, why ? why : "runtime unreachable", out);
  return 0;
}

static int on_runtime_up(tsvc_health_t *h, tsvc_ms_t now, tsvc_health_actions_t *out) {
  if (h->state != TSVC_STATE_UNKNOWN || h->verifying) return 0;
  if (h->saved_state == TSVC_STATE_HEALTHY && h->op == TSVC_OP_NONE) {
    /* It may have died meanwhile: healthy again only once a check passes
       (checked now; the caller inspects it too and feeds DIED). */
    h->verifying = true;
    h->check_at = now;
    return 0;
  }
  set_state(h, h->saved_state, now, "runtime reachable again", out);
  /* Look at the service right away: it may have died meanwhile. */
  h->check_at = checkable(h) ? now : TSVC_NEVER;
  return 0;
}

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
  tsvc_ms_t now = ev->now;
  maybe_reset_window(h, now);
  switch (ev->type) {
  case TSVC_HEV_TICK: return on_tick(h, now, out);
  case TSVC_HEV_STARTED: return on_started(h, now, out);
  case TSVC_HEV_DIED: return on_died(h, now, ev->message, out);
  case TSVC_HEV_CHECK_RESULT: return on_check(h, ev, out);
  case TSVC_HEV_OP_DONE: return on_op_done(h, now, out);
  case TSVC_HEV_OP_FAILED: return on_op_failed(h, now, ev->message, out);
  case TSVC_HEV_USER_START: return on_user_start(h, now, out);
  case TSVC_HEV_USER_STOP: return on_user_stop(h, now, out);
  case TSVC_HEV_USER_RESTART: return on_user_restart(h, now, out);
  case TSVC_HEV_RUNTIME_DOWN: return on_runtime_down(h, now, ev->message, out);
  case TSVC_HEV_RUNTIME_UP: return on_runtime_up(h, now, out);
  }
  return TSVC_EINVAL;
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
