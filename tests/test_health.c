/*
 * test_health: the health state machine driven with a fake clock.
 * One test per rule of docs/design.md ("The health machine") and per row
 * of the request's error table; each asserts the exact state, counts and
 * scheduled times. The table in docs/design.md is compared with the code's
 * and with the behaviour, cell by cell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health/health.h"
#include "testutil.h"

#define S(x) TSVC_STATE_##x

typedef struct {
  tsvc_health_t h;
  tsvc_health_actions_t a;
  int rc;
} fx_t;

static tsvc_health_params_t defaults(void) {
  tsvc_health_params_t p = {
      .interval = 10000,
      .start_interval = 1000,
      .start_period = 60000,
      .retries = 3,
      .success_threshold = 1,
      .can_restart = true,
      .max_restarts = 5,
      .window = 600000,
      .backoff = 1000,
      .max_backoff = 300000,
      .cooldown = 1800000,
      .jitter_permille = 0,
  };
  return p;
}

static void fx_init(fx_t *f, const tsvc_health_params_t *p) {
  memset(f, 0, sizeof *f);
  assert_int_equal(tsvc_health_init(&f->h, p, 0, 42), 0);
}

static void ev(fx_t *f, tsvc_health_event_type_t type, tsvc_ms_t now) {
  tsvc_health_event_t e = {.type = type, .now = now};
  f->rc = tsvc_health_step(&f->h, &e, &f->a);
}

static void result(fx_t *f, tsvc_ms_t now, tsvc_result_t r, const char *msg) {
  tsvc_health_event_t e = {.type = TSVC_HEV_CHECK_RESULT, .now = now, .result = r, .message = msg};
  f->rc = tsvc_health_step(&f->h, &e, &f->a);
}

static void msg_ev(fx_t *f, tsvc_health_event_type_t type, tsvc_ms_t now, const char *msg) {
  tsvc_health_event_t e = {.type = type, .now = now, .message = msg};
  f->rc = tsvc_health_step(&f->h, &e, &f->a);
}

/* TICK at now and assert that a check is asked for. */
static void tick_check(fx_t *f, tsvc_ms_t now) {
  ev(f, TSVC_HEV_TICK, now);
  assert_int_equal(f->rc, 0);
  assert_true(f->a.flags & TSVC_HACT_CHECK);
  assert_true(f->h.checking);
}

/* One whole check at now: tick, then the result at now. */
static void check(fx_t *f, tsvc_ms_t now, tsvc_result_t r) {
  tick_check(f, now);
  result(f, now, r, r == TSVC_RESULT_OK ? NULL : "connection refused");
  assert_int_equal(f->rc, 0);
}

/* Bring a service to healthy at time t (started at t, success at t+1000). */
static void to_healthy(fx_t *f, tsvc_ms_t t) {
  ev(f, TSVC_HEV_STARTED, t);
  assert_int_equal(f->h.state, S(STARTING));
  check(f, t + 1000, TSVC_RESULT_OK);
  assert_int_equal(f->h.state, S(HEALTHY));
}

/* ---- grace period ------------------------------------------------------ */

static void grace_checks_every_start_interval(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  assert_int_equal(f.h.state, S(STOPPED));
  ev(&f, TSVC_HEV_STARTED, 0);
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.a.nchanges, 1);
  assert_int_equal(f.a.changes[0].from, S(STOPPED));
  assert_int_equal(f.a.changes[0].to, S(STARTING));
  assert_int_equal(f.h.check_at, 1000);
  /* Nothing happens before the deadline. */
  ev(&f, TSVC_HEV_TICK, 999);
  assert_int_equal(f.a.flags, 0);
  /* Failures inside start_period are not counted; checks every 1s. */
  for (tsvc_ms_t t = 1000; t <= 10000; t += 1000) {
    tick_check(&f, t);
    result(&f, t, TSVC_RESULT_REFUSED, "connection refused");
    assert_int_equal(f.h.state, S(STARTING));
    assert_int_equal(f.h.fails, 0);
    assert_int_equal(f.h.check_at, t + 1000);
  }
  assert_int_equal(f.h.checks_total, 10);
  assert_int_equal(f.h.failures_total, 10);
  tsvc_health_free(&f.h);
}

static void grace_first_success_ends_it(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_STARTED, 0);
  check(&f, 1000, TSVC_RESULT_REFUSED);
  check(&f, 2000, TSVC_RESULT_OK);
  assert_int_equal(f.h.state, S(HEALTHY));
  assert_true(f.a.flags & TSVC_HACT_CHANGED);
  assert_int_equal(f.a.changes[0].from, S(STARTING));
  assert_int_equal(f.a.changes[0].to, S(HEALTHY));
  assert_false(f.h.grace);
  /* From now on checks run every interval. */
  assert_int_equal(f.h.check_at, 12000);
  assert_int_equal(f.h.healthy_since, 2000);
  tsvc_health_free(&f.h);
}

static void grace_over_failures_count(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.start_period = 5000;
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_STARTED, 0);
  for (tsvc_ms_t t = 1000; t <= 4000; t += 1000) check(&f, t, TSVC_RESULT_TIMEOUT);
  assert_int_equal(f.h.fails, 0);
  /* The grace period ends at 5000: the machine wakes for it. */
  assert_int_equal(tsvc_health_next_deadline(&f.h), 5000);
  check(&f, 5000, TSVC_RESULT_TIMEOUT);
  assert_int_equal(f.h.fails, 1);
  assert_int_equal(f.h.state, S(STARTING));
  /* After the grace period the interval is the normal one. */
  assert_int_equal(f.h.check_at, 15000);
  check(&f, 15000, TSVC_RESULT_TIMEOUT);
  assert_int_equal(f.h.fails, 2);
  check(&f, 25000, TSVC_RESULT_TIMEOUT);
  /* retries reached: unhealthy, then the first restart at once. */
  assert_int_equal(f.a.nchanges, 2);
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_string_equal(f.a.changes[0].reason, "connection refused");
  assert_int_equal(f.a.changes[1].to, S(RESTARTING));
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.state, S(RESTARTING));
  tsvc_health_free(&f.h);
}

static void zero_start_period_counts_at_once(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.start_period = 0;
  p.retries = 1;
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_STARTED, 0);
  assert_int_equal(f.h.check_at, 10000); /* no grace: normal interval */
  check(&f, 10000, TSVC_RESULT_REFUSED);
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  tsvc_health_free(&f.h);
}

/* ---- retries and success_threshold ------------------------------------ */

static void retries_then_unhealthy(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0); /* healthy at 1000, next check 11000 */
  check(&f, 11000, TSVC_RESULT_REFUSED);
  check(&f, 21000, TSVC_RESULT_REFUSED);
  assert_int_equal(f.h.state, S(HEALTHY));
  assert_int_equal(f.h.fails, 2);
  /* A success resets the count. */
  check(&f, 31000, TSVC_RESULT_OK);
  assert_int_equal(f.h.fails, 0);
  check(&f, 41000, TSVC_RESULT_REFUSED);
  check(&f, 51000, TSVC_RESULT_REFUSED);
  assert_int_equal(f.h.state, S(HEALTHY));
  check(&f, 61000, TSVC_RESULT_REFUSED);
  assert_int_equal(f.h.fails, 3);
  assert_int_equal(f.a.changes[0].from, S(HEALTHY));
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_int_equal(f.a.changes[1].to, S(RESTARTING));
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.restarts_total, 1);
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, 61000), 1);
  tsvc_health_free(&f.h);
}

static void success_threshold_from_unhealthy(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.can_restart = false; /* policy: never, so it stays unhealthy */
  p.success_threshold = 2;
  p.retries = 1;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  check(&f, 11000, TSVC_RESULT_BAD_STATUS);
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_false(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.restart_at, TSVC_NEVER);
  assert_int_equal(f.h.check_at, 21000); /* keeps checking */
  check(&f, 21000, TSVC_RESULT_OK);
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.h.successes, 1);
  /* A failure in between starts the count again. */
  check(&f, 31000, TSVC_RESULT_BAD_STATUS);
  assert_int_equal(f.h.successes, 0);
  check(&f, 41000, TSVC_RESULT_OK);
  check(&f, 51000, TSVC_RESULT_OK);
  assert_int_equal(f.h.state, S(HEALTHY));
  assert_int_equal(f.a.changes[0].from, S(UNHEALTHY));
  tsvc_health_free(&f.h);
}

/* ---- not running (error table: container not running) ------------------ */

static void not_running_is_unhealthy_at_once(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 5000, "container exited (137)");
  assert_int_equal(f.rc, 0);
  assert_int_equal(f.a.nchanges, 2);
  assert_int_equal(f.a.changes[0].from, S(HEALTHY));
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_string_equal(f.a.changes[0].reason, "container exited (137)");
  assert_int_equal(f.a.changes[1].to, S(RESTARTING));
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.op, TSVC_OP_RESTART);
  tsvc_health_free(&f.h);
}

static void not_running_during_grace(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_STARTED, 0);
  tick_check(&f, 1000);
  /* The probe (running / inspect) says not running: no grace for that. */
  result(&f, 1200, TSVC_RESULT_NOT_RUNNING, "container not running");
  assert_int_equal(f.a.changes[0].from, S(STARTING));
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_string_equal(f.a.changes[0].reason, "container not running");
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  tsvc_health_free(&f.h);
}

/* ---- restarts: immediate, backoff, jitter, window, give up, cooldown --- */

/* Complete the restart in flight at t and make the service die right away:
   returns the actions of the death. */
static void restart_done_then_die(fx_t *f, tsvc_ms_t t) {
  assert_int_equal(f->h.state, S(RESTARTING));
  ev(f, TSVC_HEV_OP_DONE, t);
  assert_int_equal(f->h.state, S(STARTING));
  assert_int_equal(f->h.started_at, t);
  msg_ev(f, TSVC_HEV_DIED, t, "exited (1)");
  assert_true(f->h.state == S(UNHEALTHY) || f->h.state == S(FAILED));
}

static void backoff_doubles_to_max(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.max_restarts = 10;
  p.max_backoff = 8000;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited (1)");
  assert_true(f.a.flags & TSVC_HACT_RESTART); /* first restart: immediate */
  tsvc_ms_t expect[] = {1000, 2000, 4000, 8000, 8000, 8000};
  tsvc_ms_t t = 2000;
  for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
    restart_done_then_die(&f, t);
    assert_true(f.a.flags & TSVC_HACT_RESTART_LATER);
    assert_false(f.a.flags & TSVC_HACT_RESTART);
    assert_int_equal(f.h.restart_at, t + expect[i]);
    assert_int_equal(f.a.restart_at, t + expect[i]);
    /* Not a millisecond early. */
    ev(&f, TSVC_HEV_TICK, t + expect[i] - 1);
    assert_false(f.a.flags & TSVC_HACT_RESTART);
    t += expect[i];
    ev(&f, TSVC_HEV_TICK, t);
    assert_true(f.a.flags & TSVC_HACT_RESTART);
    assert_int_equal(f.h.state, S(RESTARTING));
  }
  assert_int_equal(f.h.restarts_total, 7);
  tsvc_health_free(&f.h);
}

static void jitter_stays_within_ten_percent(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.jitter_permille = 100;
  p.max_restarts = 3;
  p.cooldown = 0;
  bool spread = false, first_early = false, first_late = false;
  for (uint64_t seed = 1; seed <= 200; seed++) {
    tsvc_health_t h;
    tsvc_health_actions_t a;
    assert_int_equal(tsvc_health_init(&h, &p, 0, seed), 0);
    tsvc_health_event_t e = {.type = TSVC_HEV_STARTED, .now = 0};
    tsvc_health_step(&h, &e, &a);
    assert_in_range(h.check_at, 1000, 1100);
    e = (tsvc_health_event_t){.type = TSVC_HEV_TICK, .now = h.check_at};
    tsvc_health_step(&h, &e, &a);
    tsvc_ms_t t = e.now;
    e = (tsvc_health_event_t){.type = TSVC_HEV_CHECK_RESULT, .now = t, .result = TSVC_RESULT_OK};
    tsvc_health_step(&h, &e, &a);
    /* Healthy: the first check after the grace period lands anywhere in
       the interval (services started together spread out) ... */
    assert_in_range(h.check_at, t + 1, t + 10000);
    if (h.check_at < t + 5000) first_early = true;
    if (h.check_at > t + 5000) first_late = true;
    /* ... and each next one an interval plus up to 10% later. */
    t = h.check_at;
    e = (tsvc_health_event_t){.type = TSVC_HEV_TICK, .now = t};
    tsvc_health_step(&h, &e, &a);
    e = (tsvc_health_event_t){.type = TSVC_HEV_CHECK_RESULT, .now = t, .result = TSVC_RESULT_OK};
    tsvc_health_step(&h, &e, &a);
    assert_in_range(h.check_at, t + 10000, t + 11000);
    if (h.check_at != t + 10000) spread = true;
    /* Die, restart, die: the second restart waits backoff + <= 10%. */
    e = (tsvc_health_event_t){.type = TSVC_HEV_DIED, .now = t};
    tsvc_health_step(&h, &e, &a);
    e = (tsvc_health_event_t){.type = TSVC_HEV_OP_DONE, .now = t};
    tsvc_health_step(&h, &e, &a);
    e = (tsvc_health_event_t){.type = TSVC_HEV_DIED, .now = t};
    tsvc_health_step(&h, &e, &a);
    assert_in_range(h.restart_at, t + 1000, t + 1100);
    tsvc_health_free(&h);
  }
  assert_true(spread); /* the jitter does spread the checks */
  assert_true(first_early && first_late);
  /* The same seed gives the same schedule. */
  tsvc_health_t h1, h2;
  tsvc_health_actions_t a;
  tsvc_health_init(&h1, &p, 0, 7);
  tsvc_health_init(&h2, &p, 0, 7);
  tsvc_health_event_t e = {.type = TSVC_HEV_STARTED, .now = 0};
  tsvc_health_step(&h1, &e, &a);
  tsvc_health_step(&h2, &e, &a);
  assert_int_equal(h1.check_at, h2.check_at);
  tsvc_health_free(&h1);
  tsvc_health_free(&h2);
}

static void healthy_for_window_resets_count_and_backoff(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.window = 60000;
  p.retries = 1;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited");
  restart_done_then_die(&f, 2000); /* second death: restart after backoff */
  assert_int_equal(f.h.restart_at, 3000);
  ev(&f, TSVC_HEV_TICK, 3000);
  ev(&f, TSVC_HEV_OP_DONE, 3000);
  check(&f, 13000, TSVC_RESULT_OK);
  assert_int_equal(f.h.state, S(HEALTHY));
  assert_int_equal(f.h.backoff_level, 2);
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, 13000), 2);
  /* Healthy from 13000; at 73000 it has been healthy for a whole window. */
  check(&f, 23000, TSVC_RESULT_OK);
  assert_int_equal(f.h.backoff_level, 2);
  check(&f, 73000, TSVC_RESULT_OK);
  assert_int_equal(f.h.backoff_level, 0);
  assert_int_equal(f.h.nrestart_times, 0);
  /* So the next failure is restarted at once again. */
  check(&f, 83000, TSVC_RESULT_REFUSED);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, 83000), 1);
  tsvc_health_free(&f.h);
}

/* Error table: max retries exceeded -> stop restarting, log a warning. */
static void gives_up_after_max_restarts(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.max_restarts = 3;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited"); /* restart 1, immediate */
  tsvc_ms_t t = 2000;
  restart_done_then_die(&f, t);              /* restart 2 after 1s */
  t = f.h.restart_at;
  ev(&f, TSVC_HEV_TICK, t);
  restart_done_then_die(&f, t);              /* restart 3 after 2s */
  t = f.h.restart_at;
  ev(&f, TSVC_HEV_TICK, t);
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, t), 3);
  ev(&f, TSVC_HEV_OP_DONE, t);
  msg_ev(&f, TSVC_HEV_DIED, t + 500, "exited (1)");
  /* The 4th would exceed max_restarts: failed, warning, no restart. */
  assert_int_equal(f.h.state, S(FAILED));
  assert_true(f.a.flags & TSVC_HACT_GAVE_UP);
  assert_false(f.a.flags & (TSVC_HACT_RESTART | TSVC_HACT_RESTART_LATER));
  assert_string_equal(f.a.reason, "exited (1)");
  assert_int_equal(f.h.cooldown_at, t + 500 + 1800000);
  assert_int_equal(f.h.restarts_total, 3);
  /* Keeps checking at the normal interval, no restarts before cooldown. */
  assert_int_equal(f.h.check_at, t + 500 + 10000);
  for (tsvc_ms_t c = t + 500 + 10000; c < t + 500 + 100000; c += 10000) {
    check(&f, c, TSVC_RESULT_NOT_RUNNING);
    assert_int_equal(f.h.state, S(FAILED));
    assert_false(f.a.flags & TSVC_HACT_RESTART);
  }
  assert_int_equal(f.h.restarts_total, 3);
  tsvc_health_free(&f.h);
}

static fx_t *failed_fixture(fx_t *f, tsvc_health_params_t *p) {
  p->max_restarts = 1;
  fx_init(f, p);
  to_healthy(f, 0);
  msg_ev(f, TSVC_HEV_DIED, 2000, "exited");
  restart_done_then_die(f, 2000);
  assert_int_equal(f->h.state, S(FAILED));
  return f;
}

static void failed_recovers_on_success(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  failed_fixture(&f, &p);
  check(&f, 12000, TSVC_RESULT_OK);
  assert_int_equal(f.h.state, S(HEALTHY));
  assert_int_equal(f.a.changes[0].from, S(FAILED));
  assert_int_equal(f.h.cooldown_at, TSVC_NEVER);
  tsvc_health_free(&f.h);
}

static void cooldown_resumes_restarts(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.cooldown = 30000;
  fx_t f;
  failed_fixture(&f, &p);
  assert_int_equal(f.h.cooldown_at, 32000);
  check(&f, 12000, TSVC_RESULT_REFUSED);
  check(&f, 22000, TSVC_RESULT_REFUSED);
  assert_int_equal(tsvc_health_next_deadline(&f.h), 32000);
  ev(&f, TSVC_HEV_TICK, 32000);
  assert_true(f.a.flags & TSVC_HACT_COOLDOWN_OVER);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.state, S(RESTARTING));
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, 32000), 1);
  tsvc_health_free(&f.h);
}

static void cooldown_zero_never_resumes(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.cooldown = 0;
  fx_t f;
  failed_fixture(&f, &p);
  assert_int_equal(f.h.cooldown_at, TSVC_NEVER);
  ev(&f, TSVC_HEV_TICK, 100000000);
  assert_false(f.a.flags & TSVC_HACT_RESTART);
  assert_true(f.a.flags & TSVC_HACT_CHECK); /* but it is still checked */
  tsvc_health_free(&f.h);
}

/* Error table: restart fails -> log error, continue monitoring. */
static void restart_failure_logged_and_retried(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.max_restarts = 3;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited");
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 2100, "No such image: postgres:16");
  assert_true(f.a.flags & TSVC_HACT_OP_FAILED);
  assert_string_equal(f.a.reason, "No such image: postgres:16");
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.h.op, TSVC_OP_NONE);
  /* Retried on the backoff schedule; checks go on meanwhile. */
  assert_true(f.a.flags & TSVC_HACT_RESTART_LATER);
  assert_int_equal(f.h.restart_at, 3100);
  assert_int_equal(f.h.check_at, 12100);
  ev(&f, TSVC_HEV_TICK, 3100);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 3200, "No such image: postgres:16");
  assert_int_equal(f.h.restart_at, 5200);
  ev(&f, TSVC_HEV_TICK, 5200);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 5300, "No such image: postgres:16");
  /* Three failed attempts within the window: give up. */
  assert_int_equal(f.h.state, S(FAILED));
  assert_true(f.a.flags & TSVC_HACT_GAVE_UP);
  assert_true(f.a.flags & TSVC_HACT_OP_FAILED);
  assert_int_equal(f.h.restarts_total, 3);
  tsvc_health_free(&f.h);
}

/* Error table: health check timeout -> unhealthy, failure count up. */
static void check_timeout_counts_as_failure(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  tick_check(&f, 11000);
  result(&f, 16000, TSVC_RESULT_TIMEOUT, "no answer within 5s");
  assert_int_equal(f.h.fails, 1);
  assert_int_equal(f.h.failures_total, 1);
  /* Scheduled from the end of the check. */
  assert_int_equal(f.h.check_at, 26000);
  tick_check(&f, 26000);
  result(&f, 31000, TSVC_RESULT_TIMEOUT, "no answer within 5s");
  tick_check(&f, 41000);
  result(&f, 46000, TSVC_RESULT_TIMEOUT, "no answer within 5s");
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_string_equal(f.a.changes[0].reason, "no answer within 5s");
  assert_int_equal(f.h.fails, 3);
  tsvc_health_free(&f.h);
}

static void checks_never_overlap(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  tick_check(&f, 11000);
  /* The probe is slow: time passes, no second check is asked for. */
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_TICK, 30000);
  assert_false(f.a.flags & TSVC_HACT_CHECK);
  result(&f, 30000, TSVC_RESULT_OK, NULL);
  assert_int_equal(f.h.check_at, 40000);
  /* A result nobody waits for is ignored. */
  result(&f, 30001, TSVC_RESULT_REFUSED, "late");
  assert_int_equal(f.h.fails, 0);
  assert_int_equal(f.h.checks_total, 2);
  tsvc_health_free(&f.h);
}

static void restart_cancels_check_and_ignores_stale_result(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  tick_check(&f, 11000);
  msg_ev(&f, TSVC_HEV_DIED, 11500, "exited");
  assert_true(f.a.flags & TSVC_HACT_CANCEL_CHECK);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  result(&f, 12000, TSVC_RESULT_REFUSED, "stale");
  assert_int_equal(f.h.state, S(RESTARTING));
  assert_int_equal(f.a.flags, 0);
  /* Our own restart's die and start events change nothing. */
  msg_ev(&f, TSVC_HEV_DIED, 12100, "exited");
  assert_int_equal(f.a.flags, 0);
  ev(&f, TSVC_HEV_STARTED, 12200);
  assert_int_equal(f.a.flags, 0);
  ev(&f, TSVC_HEV_OP_DONE, 12300);
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.h.check_at, 13300);
  tsvc_health_free(&f.h);
}

/* ---- a person's start / stop / restart --------------------------------- */

static void person_restart_always_goes_through(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  failed_fixture(&f, &p);
  ev(&f, TSVC_HEV_USER_RESTART, 5000);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.a.changes[0].from, S(FAILED));
  assert_int_equal(f.a.changes[0].to, S(RESTARTING));
  assert_int_equal(f.h.nrestart_times, 0);
  assert_int_equal(f.h.cooldown_at, TSVC_NEVER);
  /* A second one joins the restart in flight. */
  ev(&f, TSVC_HEV_USER_RESTART, 5001);
  assert_int_equal(f.rc, 0);
  assert_int_equal(f.a.flags, 0);
  ev(&f, TSVC_HEV_OP_DONE, 6000);
  assert_int_equal(f.h.state, S(STARTING));
  /* Also from healthy and from stopped. */
  check(&f, 7000, TSVC_RESULT_OK);
  ev(&f, TSVC_HEV_USER_RESTART, 8000);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  ev(&f, TSVC_HEV_OP_DONE, 8500);
  ev(&f, TSVC_HEV_USER_STOP, 9000);
  ev(&f, TSVC_HEV_OP_DONE, 9500);
  ev(&f, TSVC_HEV_USER_RESTART, 10000);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.state, S(RESTARTING));
  tsvc_health_free(&f.h);
}

static void stopped_is_never_restarted(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  tick_check(&f, 11000);
  ev(&f, TSVC_HEV_USER_STOP, 11100);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_STOP);
  assert_true(f.a.flags & TSVC_HACT_CANCEL_CHECK);
  assert_int_equal(f.h.state, S(STOPPED));
  msg_ev(&f, TSVC_HEV_DIED, 11200, "exited (0)");
  assert_int_equal(f.a.flags, 0);
  ev(&f, TSVC_HEV_OP_DONE, 11300);
  assert_int_equal(f.h.state, S(STOPPED));
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_TICK, 10000000);
  assert_int_equal(f.a.flags, 0);
  assert_int_equal(f.h.restarts_total, 0);
  /* Stopping again is a no-op. */
  ev(&f, TSVC_HEV_USER_STOP, 10000001);
  assert_int_equal(f.rc, 0);
  assert_int_equal(f.a.flags, 0);
  tsvc_health_free(&f.h);
}

static void disabled_service_stays_stopped(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p); /* enabled: false: nobody sends STARTED */
  assert_int_equal(f.h.state, S(STOPPED));
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_TICK, 999999);
  assert_int_equal(f.a.flags, 0);
  tsvc_health_free(&f.h);
}

static void person_start_and_its_failure(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_USER_START, 100);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_START);
  /* A start in flight is starting, from stopped: the first line says so. */
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.h.op, TSVC_OP_START);
  assert_int_equal(f.a.nchanges, 1);
  assert_int_equal(f.a.changes[0].from, S(STOPPED));
  assert_int_equal(f.a.changes[0].to, S(STARTING));
  assert_string_equal(f.a.changes[0].reason, "start requested");
  /* Nothing is checked before the start is done. */
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_USER_STOP, 150);
  assert_int_equal(f.rc, TSVC_EBUSY);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 200, "port is already allocated");
  assert_true(f.a.flags & TSVC_HACT_OP_FAILED);
  /* Not stopped: nobody stopped it. Unhealthy, retried after backoff. */
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.a.changes[0].from, S(STARTING));
  assert_string_equal(f.a.changes[0].reason, "port is already allocated");
  assert_true(f.a.flags & TSVC_HACT_RESTART_LATER);
  assert_int_equal(f.h.restart_at, 1200);
  assert_true(f.h.not_started);
  /* A person may start it again at once (the count starts afresh). */
  ev(&f, TSVC_HEV_USER_START, 300);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_START);
  assert_int_equal(f.h.restart_at, TSVC_NEVER);
  assert_int_equal(f.h.nrestart_times, 0);
  ev(&f, TSVC_HEV_OP_DONE, 400);
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.a.nchanges, 0); /* starting already: no second line */
  assert_int_equal(f.h.started_at, 400);
  assert_int_equal(f.h.check_at, 1400);
  assert_false(f.h.not_started);
  ev(&f, TSVC_HEV_USER_START, 500);
  assert_int_equal(f.rc, TSVC_ERUNNING); /* already running */
  tsvc_health_free(&f.h);
}

/* The first start fails (port taken, image missing, initdb failing...):
   retried as a start on the restart backoff schedule, each attempt counted
   toward max_restarts, then failed with the cooldown; never stopped. */
static void start_failure_retried_on_backoff(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.max_restarts = 3;
  p.cooldown = 60000;
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_USER_START, 0);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 100, "No such image: ghost:1");
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_string_equal(f.a.reason, "No such image: ghost:1");
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, 100), 1);
  assert_int_equal(f.h.restarts_total, 0); /* a failed start is no restart */
  /* Nothing runs: nothing is checked; the only deadline is the retry. */
  assert_int_equal(f.h.check_at, TSVC_NEVER);
  assert_int_equal(tsvc_health_next_deadline(&f.h), 1100);
  ev(&f, TSVC_HEV_TICK, 1099);
  assert_int_equal(f.a.flags, 0);
  ev(&f, TSVC_HEV_TICK, 1100);
  /* The retry is a start (there is nothing to restart). */
  assert_true(f.a.flags & TSVC_HACT_START);
  assert_false(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.a.changes[0].from, S(UNHEALTHY));
  assert_string_equal(f.a.changes[0].reason, "start after backoff");
  assert_int_equal(tsvc_health_restarts_in_window(&f.h, 1100), 2);
  /* Its own old container's death changes nothing while it starts. */
  msg_ev(&f, TSVC_HEV_DIED, 1150, "container died (exit code 1)");
  assert_int_equal(f.a.flags, 0);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 1200, "port 5432 is already in use");
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.h.restart_at, 3200); /* backoff doubled */
  ev(&f, TSVC_HEV_TICK, 3200);
  assert_true(f.a.flags & TSVC_HACT_START);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 3300, "port 5432 is already in use");
  /* Three attempts within the window: failed, the cooldown as usual. */
  assert_int_equal(f.h.state, S(FAILED));
  assert_true(f.a.flags & TSVC_HACT_GAVE_UP);
  assert_int_equal(f.h.cooldown_at, 63300);
  assert_int_equal(f.h.restarts_total, 2);
  assert_int_equal(tsvc_health_next_deadline(&f.h), 63300);
  ev(&f, TSVC_HEV_TICK, 63300);
  assert_true(f.a.flags & TSVC_HACT_COOLDOWN_OVER);
  assert_true(f.a.flags & TSVC_HACT_START);
  assert_string_equal(f.a.changes[0].reason, "cooldown over, starting");
  /* The cause is gone: started, checked, healthy. */
  ev(&f, TSVC_HEV_OP_DONE, 63400);
  assert_int_equal(f.h.state, S(STARTING));
  check(&f, 64400, TSVC_RESULT_OK);
  assert_int_equal(f.h.state, S(HEALTHY));
  tsvc_health_free(&f.h);
}

/* After a failed start a person's restart is a start; with restarts off a
   failed start stays unhealthy, unchecked, and a person's start still goes. */
static void after_failed_start_person_restart_and_policy_never(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_USER_START, 0);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 100, "initdb: No space left on device");
  ev(&f, TSVC_HEV_USER_RESTART, 200);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_START);
  assert_false(f.a.flags & TSVC_HACT_RESTART);
  assert_int_equal(f.h.op, TSVC_OP_START);
  assert_int_equal(f.h.nrestart_times, 0);
  ev(&f, TSVC_HEV_OP_DONE, 300);
  assert_int_equal(f.h.state, S(STARTING));
  tsvc_health_free(&f.h);

  p.can_restart = false;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_USER_START, 0);
  msg_ev(&f, TSVC_HEV_OP_FAILED, 100, "initdb: No space left on device");
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_false(f.a.flags & (TSVC_HACT_RESTART_LATER | TSVC_HACT_START | TSVC_HACT_GAVE_UP));
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_USER_START, 500);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_START);
  tsvc_health_free(&f.h);
}

/* The runtime goes away during a start and the start fails meanwhile: back,
   the service is unhealthy with its retry due, never stopped. */
static void start_failing_while_unknown(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  ev(&f, TSVC_HEV_USER_START, 0);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 50);
  assert_int_equal(f.h.state, S(UNKNOWN));
  msg_ev(&f, TSVC_HEV_OP_FAILED, 100, "Cannot connect to the Docker daemon");
  assert_int_equal(f.h.state, S(UNKNOWN));
  assert_int_equal(f.h.saved_state, S(UNHEALTHY));
  assert_int_equal(f.h.restart_at, 1100);
  ev(&f, TSVC_HEV_RUNTIME_UP, 5000);
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.h.check_at, TSVC_NEVER);
  ev(&f, TSVC_HEV_TICK, 5000);
  assert_true(f.a.flags & TSVC_HACT_START);
  tsvc_health_free(&f.h);
}

static void policy_never_does_not_restart(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.can_restart = false;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited");
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_false(f.a.flags & (TSVC_HACT_RESTART | TSVC_HACT_RESTART_LATER));
  assert_int_equal(f.h.check_at, 12000);
  tsvc_health_free(&f.h);
}

static void outside_start_enters_grace(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  p.can_restart = false;
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited");
  ev(&f, TSVC_HEV_STARTED, 3000); /* e.g. docker start from outside */
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.h.started_at, 3000);
  assert_true(f.h.grace);
  tsvc_health_free(&f.h);
}

/* ---- runtime unreachable ------------------------------------------------ */

static void unknown_is_never_restarted(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited");
  restart_done_then_die(&f, 2000);
  assert_int_equal(f.h.restart_at, 3000);
  msg_ev(&f, TSVC_HEV_RUNTIME_DOWN, 2500, "Cannot connect to the Docker daemon");
  assert_int_equal(f.h.state, S(UNKNOWN));
  assert_string_equal(f.a.changes[0].reason, "Cannot connect to the Docker daemon");
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_TICK, 100000);
  assert_int_equal(f.a.flags, 0);
  msg_ev(&f, TSVC_HEV_DIED, 100001, "exited");
  assert_int_equal(f.a.flags, 0);
  ev(&f, TSVC_HEV_USER_RESTART, 100002);
  assert_int_equal(f.rc, TSVC_EUNREACH);
  assert_int_equal(f.h.restarts_total, 1);
  /* Back: the state it had, checked at once; the due restart goes now. */
  ev(&f, TSVC_HEV_RUNTIME_UP, 200000);
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.a.changes[0].from, S(UNKNOWN));
  assert_int_equal(f.h.check_at, 200000);
  ev(&f, TSVC_HEV_TICK, 200000);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  tsvc_health_free(&f.h);
}

/* A healthy service is not shown healthy on the runtime's return before a
   check says so: it stays unknown, checked at once; a pass makes it healthy. */
static void unknown_healthy_resumes_checks(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  tick_check(&f, 11000);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 11001);
  assert_true(f.a.flags & TSVC_HACT_CANCEL_CHECK);
  ev(&f, TSVC_HEV_RUNTIME_UP, 50000);
  assert_int_equal(f.rc, 0);
  assert_int_equal(f.h.state, S(UNKNOWN));
  assert_int_equal(f.a.nchanges, 0);
  assert_true(f.h.verifying);
  assert_int_equal(tsvc_health_next_deadline(&f.h), 50000);
  tick_check(&f, 50000);
  result(&f, 50010, TSVC_RESULT_OK, NULL);
  assert_int_equal(f.h.state, S(HEALTHY));
  assert_int_equal(f.a.changes[0].from, S(UNKNOWN));
  assert_string_equal(f.a.changes[0].reason, "runtime reachable again; the check passes");
  assert_int_equal(f.h.check_at, 60010);
  tsvc_health_free(&f.h);
}

/* ... found dead (an inspection, or the probe says not running): unhealthy
   from unknown at once, restarted; failing checks: unhealthy after retries.
   A person may act meanwhile: the runtime answers. */
static void unknown_healthy_found_dead_or_failing(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 2000);
  ev(&f, TSVC_HEV_RUNTIME_UP, 3000);
  msg_ev(&f, TSVC_HEV_DIED, 3010, "not running: exited (0)");
  assert_int_equal(f.a.changes[0].from, S(UNKNOWN));
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_string_equal(f.a.changes[0].reason, "not running: exited (0)");
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  for (int i = 0; i < f.a.nchanges; i++) assert_int_not_equal(f.a.changes[i].to, S(HEALTHY));
  tsvc_health_free(&f.h);

  fx_init(&f, &p);
  to_healthy(&f, 0);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 2000);
  ev(&f, TSVC_HEV_RUNTIME_UP, 3000);
  check(&f, 3000, TSVC_RESULT_TIMEOUT);
  assert_int_equal(f.h.state, S(UNKNOWN));
  assert_int_equal(f.h.fails, 1);
  assert_int_equal(f.h.check_at, 13000);
  /* Gone again: the check in flight is dropped, nothing is scheduled. */
  tick_check(&f, 13000);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 13001);
  assert_true(f.a.flags & TSVC_HACT_CANCEL_CHECK);
  assert_false(f.h.verifying);
  assert_int_equal(tsvc_health_next_deadline(&f.h), TSVC_NEVER);
  ev(&f, TSVC_HEV_USER_RESTART, 13002);
  assert_int_equal(f.rc, TSVC_EUNREACH);
  ev(&f, TSVC_HEV_RUNTIME_UP, 14000);
  check(&f, 14000, TSVC_RESULT_TIMEOUT);
  check(&f, 24000, TSVC_RESULT_TIMEOUT);
  /* 3 in a row (retries): unhealthy, and the first restart at once. */
  assert_int_equal(f.a.changes[0].from, S(UNKNOWN));
  assert_int_equal(f.a.changes[0].to, S(UNHEALTHY));
  assert_int_equal(f.h.state, S(RESTARTING));
  tsvc_health_free(&f.h);

  fx_init(&f, &p);
  to_healthy(&f, 0);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 2000);
  ev(&f, TSVC_HEV_RUNTIME_UP, 3000);
  ev(&f, TSVC_HEV_USER_RESTART, 3001);
  assert_int_equal(f.rc, 0);
  assert_true(f.a.flags & TSVC_HACT_RESTART);
  assert_false(f.h.verifying);
  tsvc_health_free(&f.h);
}

static void restart_completing_while_unknown(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  ev(&f, TSVC_HEV_USER_RESTART, 2000);
  ev(&f, TSVC_HEV_RUNTIME_DOWN, 2100);
  ev(&f, TSVC_HEV_OP_DONE, 2200);
  assert_int_equal(f.h.state, S(UNKNOWN));
  assert_int_equal(f.h.saved_state, S(STARTING));
  ev(&f, TSVC_HEV_RUNTIME_UP, 3000);
  assert_int_equal(f.h.state, S(STARTING));
  assert_int_equal(f.h.started_at, 2200);
  assert_int_equal(f.h.check_at, 3000);
  tsvc_health_free(&f.h);
}

/* ---- the whole table: every situation x every event ------------------------ */

/*
 * docs/design.md holds the machine's table twice: the action each event
 * gets in each situation (health.c's actions[][] must name the same), and
 * what each leads to from a situation built here by real events (no field
 * poked). Both are compared cell by cell, so the documentation, the code's
 * table and the behaviour cannot drift apart.
 */
typedef enum {
  R_STARTING,
  R_STARTING_OP,      /* a start in flight */
  R_HEALTHY,
  R_UNHEALTHY,
  R_NOT_STARTED,      /* unhealthy: the start failed, retry scheduled */
  R_RESTARTING,
  R_FAILED,
  R_FAILED_NS,        /* failed: gave up starting */
  R_STOPPED,
  R_STOPPING,         /* stopped, the stop in flight */
  R_UNKNOWN,          /* was healthy */
  R_UNKNOWN_OP,       /* a restart in flight when the runtime went away */
  R_VERIFYING,        /* unknown, runtime back, was healthy */
  R_UNKNOWN_UNHE,     /* was unhealthy: not a row of its own in the doc */
  R__COUNT
} row_t;

/* The doc's row names (health.c's), in row_t order; NULL: not in the doc. */
static const char *const row_names[R__COUNT] = {
    "starting", "starting/op", "healthy", "unhealthy", "unhealthy/ns", "restarting", "failed",
    "failed/ns", "stopped", "stopping", "unknown", "unknown/op", "unknown/v", NULL};

static tsvc_ms_t build_row(fx_t *f, row_t r) {
  tsvc_health_params_t p = defaults();
  if (r == R_FAILED || r == R_FAILED_NS) p.max_restarts = 1;
  fx_init(f, &p);
  switch (r) {
  case R_STARTING: ev(f, TSVC_HEV_STARTED, 0); return 0;
  case R_HEALTHY: to_healthy(f, 0); return 1000;
  case R_UNHEALTHY:
  case R_UNKNOWN_UNHE:
    to_healthy(f, 0);
    msg_ev(f, TSVC_HEV_DIED, 2000, "exited"); /* restart at once */
    restart_done_then_die(f, 2000);          /* unhealthy, next at 3000 */
    if (r == R_UNKNOWN_UNHE) ev(f, TSVC_HEV_RUNTIME_DOWN, 2000);
    return 2000;
  case R_RESTARTING:
    to_healthy(f, 0);
    msg_ev(f, TSVC_HEV_DIED, 2000, "exited");
    return 2000;
  case R_FAILED:
    to_healthy(f, 0);
    msg_ev(f, TSVC_HEV_DIED, 2000, "exited");
    restart_done_then_die(f, 2000);
    return 2000;
  case R_FAILED_NS:
    ev(f, TSVC_HEV_USER_START, 0);
    msg_ev(f, TSVC_HEV_OP_FAILED, 0, "port taken"); /* 1 of 1: failed */
    return 0;
  case R_STOPPED: return 0;
  case R_STOPPING:
    to_healthy(f, 0);
    ev(f, TSVC_HEV_USER_STOP, 2000);
    return 2000;
  case R_UNKNOWN:
  case R_VERIFYING:
    to_healthy(f, 0);
    ev(f, TSVC_HEV_RUNTIME_DOWN, 2000);
    if (r == R_VERIFYING) ev(f, TSVC_HEV_RUNTIME_UP, 2000);
    return 2000;
  case R_UNKNOWN_OP:
    to_healthy(f, 0);
    ev(f, TSVC_HEV_USER_RESTART, 2000);
    ev(f, TSVC_HEV_RUNTIME_DOWN, 2000);
    return 2000;
  case R_STARTING_OP: ev(f, TSVC_HEV_USER_START, 0); return 0;
  case R_NOT_STARTED:
    ev(f, TSVC_HEV_USER_START, 0);
    msg_ev(f, TSVC_HEV_OP_FAILED, 0, "port taken");
    return 0;
  case R__COUNT: break;
  }
  return 0;
}

typedef enum {
  E_TICK,      /* at the next deadline */
  E_CHECK_OK,  /* a check brought forward to now, then its result */
  E_CHECK_FAIL,
  E_DIED,
  E_STARTED,
  E_OP_DONE,
  E_OP_FAILED,
  E_USER_START,
  E_USER_STOP,
  E_USER_RESTART,
  E_DOWN,
  E_UP,
  E__COUNT
} col_t;

/* The doc's column names, in col_t order. */
static const char *const col_names[E__COUNT] = {
    "TICK", "CHECK ok", "CHECK failed", "DIED", "STARTED", "OP_DONE", "OP_FAILED",
    "USER_START", "USER_STOP", "USER_RESTART", "RUNTIME_DOWN", "RUNTIME_UP"};

static void play(fx_t *f, col_t c, tsvc_ms_t t) {
  switch (c) {
  case E_TICK: {
    tsvc_ms_t d = tsvc_health_next_deadline(&f->h);
    ev(f, TSVC_HEV_TICK, d == TSVC_NEVER ? t : d);
    return;
  }
  case E_CHECK_OK:
  case E_CHECK_FAIL:
    /* As tsvc_monitor_check: the scheduled check, if any, moves to t. */
    if (f->h.check_at != TSVC_NEVER) {
      f->h.check_at = t;
      ev(f, TSVC_HEV_TICK, t);
    }
    result(f, t, c == E_CHECK_OK ? TSVC_RESULT_OK : TSVC_RESULT_REFUSED,
           c == E_CHECK_OK ? NULL : "connection refused");
    return;
  case E_DIED: msg_ev(f, TSVC_HEV_DIED, t, "not running: exited (1)"); return;
  case E_STARTED: ev(f, TSVC_HEV_STARTED, t); return;
  case E_OP_DONE: ev(f, TSVC_HEV_OP_DONE, t); return;
  case E_OP_FAILED: msg_ev(f, TSVC_HEV_OP_FAILED, t, "the runtime failed"); return;
  case E_USER_START: ev(f, TSVC_HEV_USER_START, t); return;
  case E_USER_STOP: ev(f, TSVC_HEV_USER_STOP, t); return;
  case E_USER_RESTART: ev(f, TSVC_HEV_USER_RESTART, t); return;
  case E_DOWN: msg_ev(f, TSVC_HEV_RUNTIME_DOWN, t, "daemon gone"); return;
  case E_UP: ev(f, TSVC_HEV_RUNTIME_UP, t); return;
  case E__COUNT: return;
  }
}

/* The documented action table is health.c's, cell by cell. */
static void documented_actions_are_the_code(void **st) {
  (void)st;
  static const char *const events[TSVC_HEV__COUNT] = {
      [TSVC_HEV_TICK] = "TICK",
      [TSVC_HEV_STARTED] = "STARTED",
      [TSVC_HEV_DIED] = "DIED",
      [TSVC_HEV_CHECK_RESULT] = "CHECK_RESULT",
      [TSVC_HEV_OP_DONE] = "OP_DONE",
      [TSVC_HEV_OP_FAILED] = "OP_FAILED",
      [TSVC_HEV_USER_START] = "USER_START",
      [TSVC_HEV_USER_STOP] = "USER_STOP",
      [TSVC_HEV_USER_RESTART] = "USER_RESTART",
      [TSVC_HEV_RUNTIME_DOWN] = "RUNTIME_DOWN",
      [TSVC_HEV_RUNTIME_UP] = "RUNTIME_UP"};
  tu_table_t t;
  tu_read_table("<!-- table: health-actions -->", &t);
  assert_int_equal(t.ncols, TSVC_HEV__COUNT);
  for (int e = 0; e < TSVC_HEV__COUNT; e++) assert_string_equal(t.head[e], events[e]);
  int bad = 0, rows = 0;
  for (int r = 0; tsvc_health_row_name(r); r++, rows++) {
    int d = tu_table_row(&t, tsvc_health_row_name(r));
    if (d < 0) {
      print_error("situation %s is not in the doc\n", tsvc_health_row_name(r));
      bad++;
      continue;
    }
    for (int e = 0; e < TSVC_HEV__COUNT; e++) {
      const char *code = tsvc_health_action_name(r, (tsvc_health_event_type_t)e);
      if (strcmp(code, t.cells[d][e]) != 0) {
        print_error("%s x %s: the code does %s, the doc says %s\n", t.names[d], events[e], code,
                    t.cells[d][e]);
        bad++;
      }
    }
  }
  assert_int_equal(t.nrows, rows);
  assert_int_equal(bad, 0);
}

/* What a cell leads to: a state, or the error of a refusal. */
static const char *outcome(const fx_t *f) {
  if (f->rc) return tsvc_err_name(f->rc);
  return tsvc_state_name(f->h.state);
}

/* Every cell of the documented outcomes, played from each situation; and
   what holds in all of them: only a person's stop makes a service stopped;
   an operation in flight matches the state; a state that changed is
   reported as a change; nothing is checked while an operation is in
   flight or while nothing runs after a failed start. */
static void every_state_every_event(void **st) {
  (void)st;
  tu_table_t t;
  tu_read_table("<!-- table: health-outcomes -->", &t);
  assert_int_equal(t.ncols, E__COUNT);
  for (int c = 0; c < E__COUNT; c++) assert_string_equal(t.head[c], col_names[c]);
  int bad = 0, documented = 0;
  for (int r = 0; r < R__COUNT; r++) {
    int d = row_names[r] ? tu_table_row(&t, row_names[r]) : -1;
    if (row_names[r] && d < 0) {
      print_error("situation %s is not in the doc's outcomes\n", row_names[r]);
      bad++;
      continue;
    }
    documented += d >= 0;
    for (int c = 0; c < E__COUNT; c++) {
      fx_t f;
      tsvc_ms_t tm = build_row(&f, (row_t)r) + 1;
      if (row_names[r] && strcmp(tsvc_health_row_name(tsvc_health_row(&f.h)), row_names[r])) {
        print_error("the setup of %s is %s\n", row_names[r],
                    tsvc_health_row_name(tsvc_health_row(&f.h)));
        bad++;
      }
      tsvc_state_t before = f.h.state;
      play(&f, (col_t)c, tm);
      const char *got = outcome(&f);
      /* The row that is not in the doc: unknown that was unhealthy comes
         back unhealthy, the rest as unknown. */
      const char *want = d >= 0 ? t.cells[d][c]
                         : c == E_UP ? "unhealthy"
                         : c >= E_USER_START && c <= E_USER_RESTART ? "EUNREACH"
                                                                     : "unknown";
      if (strcmp(got, want) != 0) {
        print_error("%s x %s: %s, the doc says %s\n", row_names[r] ? row_names[r] : "unknown/unhe",
                    col_names[c], got, want);
        bad++;
      }
      if (f.h.state == S(STOPPED) && before != S(STOPPED) && c != E_USER_STOP) {
        print_error("%s x %s: stopped, though nobody stopped it\n", want, col_names[c]);
        bad++;
      }
      if ((f.h.state == S(RESTARTING)) != (f.h.op == TSVC_OP_RESTART) &&
          f.h.state != S(UNKNOWN)) {
        print_error("%s x %s: restarting without a restart in flight\n", want, col_names[c]);
        bad++;
      }
      if ((f.h.op != TSVC_OP_NONE || f.h.not_started) &&
          tsvc_health_next_deadline(&f.h) == f.h.check_at && f.h.check_at != TSVC_NEVER) {
        print_error("%s x %s: a check is due with nothing to check\n", want, col_names[c]);
        bad++;
      }
      if (f.rc == 0 && f.h.state != before && !(f.a.flags & TSVC_HACT_CHANGED)) {
        print_error("%s x %s: a silent change\n", want, col_names[c]);
        bad++;
      }
      if (f.rc == 0 && f.a.nchanges && f.a.changes[0].from != before) {
        print_error("%s x %s: first change is not from %s\n", want, col_names[c],
                    tsvc_state_name(before));
        bad++;
      }
      tsvc_health_free(&f.h);
    }
  }
  assert_int_equal(documented, t.nrows);
  assert_int_equal(bad, 0);
}

/* ---- parameters ---------------------------------------------------------- */

static void bad_params_rejected(void **st) {
  (void)st;
  tsvc_health_t h;
  tsvc_health_params_t p = defaults();
  p.retries = 0;
  assert_int_equal(tsvc_health_init(&h, &p, 0, 1), TSVC_EINVAL);
  p = defaults();
  p.interval = 0;
  assert_int_equal(tsvc_health_init(&h, &p, 0, 1), TSVC_EINVAL);
  p = defaults();
  p.max_backoff = 10;
  assert_int_equal(tsvc_health_init(&h, &p, 0, 1), TSVC_EINVAL);
  p = defaults();
  p.jitter_permille = 1001;
  assert_int_equal(tsvc_health_init(&h, &p, 0, 1), TSVC_EINVAL);
}

static void set_params_keeps_state(void **st) {
  (void)st;
  tsvc_health_params_t p = defaults();
  fx_t f;
  fx_init(&f, &p);
  to_healthy(&f, 0);
  msg_ev(&f, TSVC_HEV_DIED, 2000, "exited");
  restart_done_then_die(&f, 2000);
  p.max_restarts = 1;
  p.retries = 7;
  assert_int_equal(tsvc_health_set_params(&f.h, &p), 0);
  assert_int_equal(f.h.state, S(UNHEALTHY));
  assert_int_equal(f.h.nrestart_times, 1);
  assert_int_equal(f.h.p.retries, 7);
  p.retries = 0;
  assert_int_equal(tsvc_health_set_params(&f.h, &p), TSVC_EINVAL);
  assert_int_equal(f.h.p.retries, 7);
  tsvc_health_free(&f.h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(grace_checks_every_start_interval),
      cmocka_unit_test(grace_first_success_ends_it),
      cmocka_unit_test(grace_over_failures_count),
      cmocka_unit_test(zero_start_period_counts_at_once),
      cmocka_unit_test(retries_then_unhealthy),
      cmocka_unit_test(success_threshold_from_unhealthy),
      cmocka_unit_test(not_running_is_unhealthy_at_once),
      cmocka_unit_test(not_running_during_grace),
      cmocka_unit_test(backoff_doubles_to_max),
      cmocka_unit_test(jitter_stays_within_ten_percent),
      cmocka_unit_test(healthy_for_window_resets_count_and_backoff),
      cmocka_unit_test(gives_up_after_max_restarts),
      cmocka_unit_test(failed_recovers_on_success),
      cmocka_unit_test(cooldown_resumes_restarts),
      cmocka_unit_test(cooldown_zero_never_resumes),
      cmocka_unit_test(restart_failure_logged_and_retried),
      cmocka_unit_test(check_timeout_counts_as_failure),
      cmocka_unit_test(checks_never_overlap),
      cmocka_unit_test(restart_cancels_check_and_ignores_stale_result),
      cmocka_unit_test(person_restart_always_goes_through),
      cmocka_unit_test(stopped_is_never_restarted),
      cmocka_unit_test(disabled_service_stays_stopped),
      cmocka_unit_test(person_start_and_its_failure),
      cmocka_unit_test(start_failure_retried_on_backoff),
      cmocka_unit_test(after_failed_start_person_restart_and_policy_never),
      cmocka_unit_test(start_failing_while_unknown),
      cmocka_unit_test(policy_never_does_not_restart),
      cmocka_unit_test(outside_start_enters_grace),
      cmocka_unit_test(unknown_is_never_restarted),
      cmocka_unit_test(unknown_healthy_resumes_checks),
      cmocka_unit_test(unknown_healthy_found_dead_or_failing),
      cmocka_unit_test(restart_completing_while_unknown),
      cmocka_unit_test(documented_actions_are_the_code),
      cmocka_unit_test(every_state_every_event),
      cmocka_unit_test(bad_params_rejected),
      cmocka_unit_test(set_params_keeps_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
