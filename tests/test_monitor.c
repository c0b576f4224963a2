/*
 * test_monitor: the monitor on a real libuv loop with a recording runtime.
 * Services are checked with the `running` probe (answered by the recording
 * runtime's inspect), host exec probes and tcp probes against sockets of the
 * test; every scenario runs in real (short) time. An upper bound on a delay
 * allows what the machine made the loop wait for a CPU meanwhile (f->lag,
 * tu_lag_t in testutil.h), and no more: on a loaded 2-core machine that is
 * often 50-200 ms, while a bug (a wrong backoff, a blocked loop) is not
 * excused by it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "monitor/monitor.h"
#include "api/metrics.h"
#include "recrt.h"
#include "servers.h"
#include "testutil.h"

#define MAX_EVENTS 4096

typedef struct {
  uv_loop_t loop;
  recrt_t *rt;
  tsvc_monitor_t *mon;
  tsvc_config_t *cfg;
  tsvc_mon_event_t ev[MAX_EVENTS];
  char reasons[MAX_EVENTS][128];
  int nev;
  uv_timer_t stop_timer;
  tu_lag_t *lag; /* the machine's share of any lateness */
  uint64_t run_from; /* run_for: when the run began (loop time) */
  int64_t run_lag;   /* run_for: the lag the run was put off for so far */
} fx_t;

static void observer(const tsvc_mon_event_t *e, void *data) {
  fx_t *f = data;
  if (f->nev == MAX_EVENTS) return;
  f->ev[f->nev] = *e;
  snprintf(f->reasons[f->nev], sizeof f->reasons[0], "%s", e->reason ? e->reason : "");
  f->ev[f->nev].reason = f->reasons[f->nev];
  f->ev[f->nev].service = NULL; /* not kept */
  f->nev++;
}

/* started: tell the monitor each enabled service runs (as if adopted);
   else they stay stopped until a start. */
static void fx_setup2(fx_t *f, const char *yaml, bool started) {
  memset(f, 0, sizeof *f);
  f->cfg = tu_config("test.yaml", yaml, strlen(yaml));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->rt = recrt_new(&f->loop);
  assert_non_null(f->rt);
  tu_log_capture();
  assert_int_equal(tsvc_monitor_new(&f->loop, &f->rt->base, NULL, &f->mon), 0);
  tsvc_monitor_set_observer(f->mon, observer, f);
  for (size_t i = 0; i < f->cfg->nservices; i++) {
    const tsvc_service_conf_t *s = &f->cfg->services[i];
    assert_int_equal(tsvc_monitor_add(f->mon, s, NULL), 0);
    if (s->enabled && started) {
      recrt_set_running(f->rt, s->name, true);
      assert_int_equal(tsvc_monitor_started(f->mon, s->name), 0);
    }
  }
  uv_timer_init(&f->loop, &f->stop_timer);
  f->stop_timer.data = f;
  f->lag = tu_lag_start(&f->loop);
  assert_non_null(f->lag);
  /* The loop's clock was read at uv_loop_init: what the case asks of the
     monitor before its first run (a start) is stamped with the time it
     asks, not with that of the setup (a loaded machine may hold this
     thread long between the two, outside any lag the sampler saw). */
  uv_update_time(&f->loop);
}

static void fx_setup(fx_t *f, const char *yaml) { fx_setup2(f, yaml, true); }

/* The longest a run is put off for the machine's lag: a machine that holds
   the loop for more than this leaves the case to fail. */
#define RUN_MAX_LAG_MS 10000

static void stop_loop(uv_timer_t *t) {
  fx_t *f = t->data;
  /* Put the end off by what the machine held the loop since the run began
     (again for what it holds it meanwhile), up to RUN_MAX_LAG_MS. */
  int64_t lag = tu_lag_between(f->lag, f->run_from, uv_now(t->loop));
  if (lag > RUN_MAX_LAG_MS) lag = RUN_MAX_LAG_MS;
  if (lag > f->run_lag) {
    uint64_t more = (uint64_t)(lag - f->run_lag);
    f->run_lag = lag;
    uv_timer_start(t, stop_loop, more, 0);
    return;
  }
  uv_stop(t->loop);
}

/* Run the loop for ms milliseconds of real time. */
static void run_for(fx_t *f, uint64_t ms) {
  f->run_lag = RUN_MAX_LAG_MS; /* stop_loop puts nothing off */
  f->run_from = uv_now(&f->loop);
  uv_timer_start(&f->stop_timer, stop_loop, ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* Run the loop for ms milliseconds of its own time: real time, plus what
   the machine held the loop's thread on a run queue meanwhile (f->lag), so
   that a case sees what the monitor does in ms when it has a CPU (a check
   every 100 ms: about ms / 100 checks, loaded or not). A loop the code
   holds (a blocking call, a sleep) is off the run queue: no longer run for
   that. Not for a run after which a case asks what must not have happened
   yet (the runtime's delays and the backoffs are real time). */
static void run_long(fx_t *f, uint64_t ms) {
  uv_update_time(&f->loop);
  f->run_from = uv_now(&f->loop);
  f->run_lag = 0;
  uv_timer_start(&f->stop_timer, stop_loop, ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fx_teardown(fx_t *f) {
  tsvc_monitor_close(f->mon);
  tu_lag_stop(f->lag);
  uv_close((uv_handle_t *)&f->stop_timer, NULL);
  /* Let the recording runtime finish what is pending, then drain. */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(f->mon);
  tsvc_runtime_free(&f->rt->base);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  tsvc_config_free(f->cfg);
  free(tu_log_end());
}

static int count_changes(const fx_t *f, tsvc_state_t to) {
  int n = 0;
  for (int i = 0; i < f->nev; i++)
    if (f->ev[i].type == TSVC_MON_EV_CHANGE && f->ev[i].to == to) n++;
  return n;
}

static int count_type(const fx_t *f, tsvc_mon_event_type_t t) {
  int n = 0;
  for (int i = 0; i < f->nev; i++)
    if (f->ev[i].type == t) n++;
  return n;
}

static tsvc_state_t state_of(fx_t *f, const char *name) {
  tsvc_status_t st;
  assert_int_equal(tsvc_monitor_get_status(f->mon, name, &st), 0);
  tsvc_state_t s = st.state;
  tsvc_status_clear(&st);
  return s;
}

typedef struct {
  int calls;
  int status;
  char msg[128];
  uv_loop_t *stop; /* when set: stop this loop once told (see run_long) */
} done_t;

static void done_cb(int status, const char *msg, void *data) {
  done_t *d = data;
  d->calls++;
  d->status = status;
  snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "");
  if (d->stop) uv_stop(d->stop);
}

#define SVC_RUNNING(name, extra)                                                 \
  "  " name ":\n"                                                                \
  "    image: local/test\n"                                                      \
  "    healthcheck: {probe: running, interval: 100ms, timeout: 50ms,\n"          \
  "                  start_period: 200ms, start_interval: 20ms, retries: 2}\n"   \
  "    restart: {max_restarts: 3, window: 1m, backoff: 100ms, max_backoff: 400ms,\n" \
  "              cooldown: 0s" extra "}\n"

/* Healthy through the grace period; one log line per change, none per check. */
static void reaches_healthy_and_logs_changes_only(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 600);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  tsvc_status_t s;
  assert_int_equal(tsvc_monitor_get_status(f.mon, "db", &s), 0);
  assert_true(s.checks_total >= 4); /* 1 in grace + ~5 at 100ms */
  assert_int_equal(s.failures_total, 0);
  assert_string_equal(s.container_name, "tanuki-svc-db");
  assert_int_equal(s.pid, 4242);
  assert_true(s.running);
  assert_true(s.nhistory >= 4);
  assert_int_equal(s.history[0].result, TSVC_RESULT_OK);
  assert_true(s.last_healthy_ms > 0);
  assert_true(s.since_ms > 0);
  tsvc_status_clear(&s);
  /* stopped -> starting, starting -> healthy: two lines, no line per check. */
  assert_int_equal(tu_log_count("state=starting"), 1);
  assert_int_equal(tu_log_count("state=healthy prev=starting"), 1);
  assert_int_equal(tu_log_count("level="), 2);
  assert_true(tsvc_monitor_is_healthy(f.mon, "db"));
  assert_false(tsvc_monitor_is_healthy(f.mon, "nope"));
  fx_teardown(&f);
}

/* Error table: container not running -> unhealthy, restart; healthy again. */
static void not_running_restarted_then_healthy(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  recrt_set_running(f.rt, "db", false); /* it dies behind our back */
  run_long(&f, 600);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 1);
  assert_int_equal(count_changes(&f, TSVC_STATE_UNHEALTHY), 1);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  /* The log tells the story with counts. */
  assert_int_equal(tu_log_count("level=warn service=db state=unhealthy prev=healthy"), 1);
  assert_int_equal(tu_log_count("reason=\"not running: exited (137)\""), 2);
  assert_int_equal(tu_log_count("action=restart failures=0/2 restarts=1/3"), 1);
  tsvc_status_t s;
  tsvc_monitor_get_status(f.mon, "db", &s);
  assert_int_equal(s.restarts_total, 1);
  assert_int_equal(s.restarts_in_window, 1);
  assert_int_equal(s.max_restarts, 3);
  assert_string_equal(s.last_error, "not running: exited (137)");
  tsvc_status_clear(&s);
  fx_teardown(&f);
}

/* A die event marks unhealthy without waiting for the next check. */
static void die_event_acts_at_once(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  recrt_set_running(f.rt, "db", false);
  uint64_t t0 = uv_now(&f.loop);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_DIED, "db", "container died (oom)");
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 1);
  assert_int_equal(f.rt->calls[f.rt->ncalls - 1].at, t0);
  int i = 0;
  while (f.ev[i].type != TSVC_MON_EV_CHANGE || f.ev[i].to != TSVC_STATE_UNHEALTHY) i++;
  assert_string_equal(f.ev[i].reason, "container died (oom)");
  run_for(&f, 400);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  fx_teardown(&f);
}

/* Error table: restart fails -> logged with the runtime's message, retried. */
static void restart_failure_logged_and_retried(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  f.rt->fail_ops = 1;
  snprintf(f.rt->fail_msg, sizeof f.rt->fail_msg, "No such image: postgres:16");
  recrt_set_running(f.rt, "db", false);
  run_for(&f, 800);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 2);
  assert_int_equal(count_type(&f, TSVC_MON_EV_RESTART_FAILED), 1);
  assert_int_equal(tu_log_count("level=error service=db action=restart_failed"), 1);
  /* restarting -> unhealthy, restart_failed, restart_scheduled */
  assert_int_equal(tu_log_count("reason=\"No such image: postgres:16\""), 3);
  assert_int_equal(tu_log_count("state=unhealthy prev=restarting"), 1);
  assert_int_equal(tu_log_count("action=restart_scheduled"), 1);
  /* Second attempt after backoff: 100ms, +10% at most, plus timer slack
     and what the machine held the loop meanwhile. */
  uint64_t r[2] = {0, 0};
  int nr = 0;
  for (int i = 0; i < f.rt->ncalls && nr < 2; i++)
    if (strcmp(f.rt->calls[i].op, "restart") == 0) r[nr++] = f.rt->calls[i].at;
  uint64_t gap = r[1] - r[0];
  assert_int_equal(nr, 2);
  assert_in_range(gap, 100, 100 + 10 + TU_TIMER_SLACK_MS + tu_lag_between(f.lag, r[0], r[1]));
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  fx_teardown(&f);
}

/* Error table: max retries exceeded -> stop restarting, log a warning. */
static void gives_up_after_max_restarts(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  /* Every restart fails: the runtime cannot bring it back. */
  f.rt->fail_ops = 1000;
  recrt_set_running(f.rt, "db", false);
  run_for(&f, 1500); /* restarts at ~0, +100ms, +200ms, then give up */
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 3);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_FAILED);
  assert_int_equal(count_type(&f, TSVC_MON_EV_GAVE_UP), 1);
  assert_int_equal(tu_log_count("level=warn service=db action=give_up"), 1);
  assert_int_equal(tu_log_count("retry_after=never"), 1);
  /* Still checked, never restarted again. */
  tsvc_status_t s;
  tsvc_monitor_get_status(f.mon, "db", &s);
  uint64_t checks = s.checks_total;
  tsvc_status_clear(&s);
  run_long(&f, 500);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 3);
  tsvc_monitor_get_status(f.mon, "db", &s);
  assert_true(s.checks_total >= checks + 3);
  tsvc_status_clear(&s);
  /* A person's restart always goes through and clears failed. */
  f.rt->fail_ops = 0;
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 300);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 4);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  fx_teardown(&f);
}

/* tanuki-svc stop: stays stopped, never restarted. */
static void stopped_stays_stopped(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 500);
  assert_int_equal(recrt_count(f.rt, "stop", "db"), 1);
  assert_false(recrt_is_running(f.rt, "db"));
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 0);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_STOPPED);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_DIED, "db", "exited (0)");
  run_for(&f, 200);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 0);
  assert_int_equal(tsvc_monitor_check(f.mon, "db", NULL, NULL), TSVC_ENOTCHECKED);
  /* Start again by hand. */
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 300);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "nope", NULL, NULL), TSVC_ENOENT);
  fx_teardown(&f);
}

/* The runtime goes away: unknown, nothing restarted; back: resumes. */
static void runtime_down_nothing_restarted(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", "") SVC_RUNNING("cache", ""));
  run_for(&f, 300);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_DOWN, NULL, "Cannot connect to the Docker daemon");
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_UNKNOWN);
  assert_int_equal(state_of(&f, "cache"), TSVC_STATE_UNKNOWN);
  int inspects = recrt_count(f.rt, "inspect", NULL);
  recrt_set_running(f.rt, "db", false);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_DIED, "db", "exited");
  run_for(&f, 500);
  assert_int_equal(recrt_count(f.rt, "restart", NULL), 0);
  assert_int_equal(recrt_count(f.rt, "inspect", NULL), inspects); /* no checks */
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", NULL, NULL), TSVC_EUNREACH);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_UP, NULL, NULL);
  run_for(&f, 500);
  assert_int_equal(state_of(&f, "cache"), TSVC_STATE_HEALTHY);
  /* db was found dead on return, restarted, healthy. */
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 1);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(tu_log_count("state=unknown"), 2);
  /* Never shown healthy on the return before being looked at: db goes
     from unknown to unhealthy; cache to healthy once its check passed. */
  assert_int_equal(tu_log_count("service=db state=healthy prev=unknown"), 0);
  assert_int_equal(tu_log_count("service=db state=unhealthy prev=unknown"), 1);
  assert_int_equal(tu_log_count("service=db state=unhealthy prev=unknown failures=0/2 "
                                   "restarts=1/3 reason=\"not running: exited (137)\""),
                   1);
  assert_int_equal(tu_log_count("service=cache state=healthy prev=unknown failures=0/2 "
                                   "restarts=0/3 reason=\"runtime reachable again; the check "
                                   "passes\""),
                   1);
  fx_teardown(&f);
}

/* The start of a service (as up does it) fails: the first line names the
   state it comes from; the failure is logged with the runtime's words and
   retried as a start on the backoff schedule; nothing is checked while
   nothing runs; never stopped; healthy once the cause is gone. */
static void start_failure_retried_then_healthy(void **st) {
  (void)st;
  fx_t f;
  fx_setup2(&f, "services:\n" SVC_RUNNING("db", ""), false);
  f.rt->fail_ops = 2;
  snprintf(f.rt->fail_msg, sizeof f.rt->fail_msg, "port 5432 on 127.0.0.1 is already in use");
  done_t d = {.stop = &f.loop};
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", done_cb, &d), 0);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_STARTING);
  /* Until told (the retry is 100 ms after that: not run yet, however long
     the machine held the loop before). */
  run_for(&f, 2000);
  d.stop = NULL;
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, TSVC_ERUNTIME);
  assert_non_null(strstr(d.msg, "port 5432 on 127.0.0.1 is already in use (starting again in "));
  tsvc_status_t s;
  assert_int_equal(tsvc_monitor_get_status(f.mon, "db", &s), 0);
  assert_int_equal(s.state, TSVC_STATE_UNHEALTHY);
  assert_false(s.running);
  assert_int_equal(s.restarts_in_window, 1);
  assert_int_equal(s.next_check_ms, 0); /* nothing to check */
  assert_string_equal(s.last_error, "port 5432 on 127.0.0.1 is already in use");
  tsvc_status_clear(&s);
  run_long(&f, 800);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(recrt_count(f.rt, "start", "db"), 3);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 0);
  uint64_t at[3];
  int n = 0, inspects_between = 0;
  for (int i = 0; i < f.rt->ncalls; i++) {
    if (strcmp(f.rt->calls[i].op, "start") == 0) at[n++] = f.rt->calls[i].at;
    else if (n == 1 && strcmp(f.rt->calls[i].op, "inspect") == 0) inspects_between++;
  }
  assert_int_equal(n, 3);
  assert_int_equal(inspects_between, 0);
  /* The restart schedule: backoff 100ms, then doubled, each plus up to 10%
     jitter; the upper bounds allow timer slack and what the machine held
     the loop meanwhile. */
  assert_in_range(at[1] - at[0], 100,
                  100 + 10 + TU_TIMER_SLACK_MS + tu_lag_between(f.lag, at[0], at[1]));
  assert_in_range(at[2] - at[1], 200,
                  200 + 20 + TU_TIMER_SLACK_MS + tu_lag_between(f.lag, at[1], at[2]));
  assert_int_equal(tu_log_count("level=info service=db action=start state=starting "
                                   "prev=stopped failures=0/2 restarts=0/3 "
                                   "reason=\"start requested\""),
                   1);
  assert_int_equal(tu_log_count("level=warn service=db state=unhealthy prev=starting "
                                   "failures=0/2 restarts=1/3 reason=\"port 5432"),
                   1);
  assert_int_equal(tu_log_count("level=error service=db action=start_failed"), 2);
  assert_int_equal(tu_log_count("action=start_scheduled failures=0/2 restarts=1/3 in="),
                   1);
  assert_int_equal(tu_log_count("action=start_scheduled failures=0/2 restarts=2/3 in="),
                   1);
  assert_int_equal(tu_log_count("level=warn service=db action=start state=starting "
                                   "prev=unhealthy"),
                   2);
  assert_int_equal(tu_log_count("reason=\"start after backoff\""), 2);
  assert_int_equal(tu_log_count("state=healthy prev=starting"), 1);
  assert_int_equal(tu_log_count("state=stopped"), 0);
  assert_int_equal(tu_log_count("restarting"), 0);
  /* The observers saw stopped -> starting first. */
  int i = 0;
  while (f.ev[i].type != TSVC_MON_EV_CHANGE) i++;
  assert_int_equal(f.ev[i].from, TSVC_STATE_STOPPED);
  assert_int_equal(f.ev[i].to, TSVC_STATE_STARTING);
  fx_teardown(&f);
}

/* Start failures count toward max_restarts: failed, given up (cooldown 0s:
   never again by itself), still not stopped; a person's start goes through. */
static void start_failures_give_up_then_person_start(void **st) {
  (void)st;
  fx_t f;
  fx_setup2(&f, "services:\n" SVC_RUNNING("db", ""), false);
  f.rt->fail_ops = 1000;
  snprintf(f.rt->fail_msg, sizeof f.rt->fail_msg, "No such image: local/test");
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 1000); /* attempts at 0, +100ms, +200ms, then give up */
  assert_int_equal(recrt_count(f.rt, "start", "db"), 3);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_FAILED);
  assert_int_equal(tu_log_count("level=warn service=db action=give_up failures=0/2 "
                                   "restarts=3/3 retry_after=never "
                                   "reason=\"No such image: local/test\""),
                   1);
  assert_int_equal(recrt_count(f.rt, "inspect", "db"), 0); /* never checked */
  assert_int_equal(tsvc_monitor_check(f.mon, "db", NULL, NULL), TSVC_ENOTCHECKED);
  f.rt->fail_ops = 0;
  done_t d = {0};
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", done_cb, &d), 0);
  run_for(&f, 300);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, 0);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(tu_log_count("state=stopped"), 0);
  fx_teardown(&f);
}

/* A slow restart of one service never delays the checks of another. */
static void restart_in_flight_blocks_nothing(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", "") SVC_RUNNING("cache", ""));
  run_for(&f, 300);
  f.rt->op_delay_ms = 1000; /* the restart takes a second */
  recrt_set_running(f.rt, "db", false);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_DIED, "db", "exited");
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_RESTARTING);
  tsvc_status_t s;
  tsvc_monitor_get_status(f.mon, "cache", &s);
  uint64_t before = s.checks_total;
  tsvc_status_clear(&s);
  int nev0 = f.nev;
  uint64_t t0 = uv_now(&f.loop);
  run_for(&f, 800);
  uint64_t t1 = uv_now(&f.loop);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_RESTARTING);
  tsvc_monitor_get_status(f.mon, "cache", &s);
  /* Every ~100ms (+ <= 10%): 6 in 800 ms, fewer only by the time the
     machine held the loop. */
  uint64_t want = (800 - (uint64_t)tu_lag_between(f.lag, t0, t1)) / 110;
  if (want > 6) want = 6;
  assert_true(s.checks_total >= before + want);
  tsvc_status_clear(&s);
  /* A check's event comes at its end (inspect answers at once): it was due
     lateness_ms before that. */
  for (int i = nev0; i < f.nev; i++)
    if (f.ev[i].type == TSVC_MON_EV_CHECK) {
      uint64_t end = f.ev[i].now, due = end - (uint64_t)f.ev[i].lateness_ms;
      assert_true(f.ev[i].lateness_ms < 50 + tu_lag_between(f.lag, due, end));
    }
  f.rt->op_delay_ms = 0;
  run_for(&f, 600);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  fx_teardown(&f);
}

/* Checks are scheduled from the end of the previous one plus <= 10%. */
static void schedule_from_end_with_jitter(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  f.rt->inspect_delay_ms = 30; /* each check takes 30 ms */
  run_long(&f, 1500);
  uint64_t prev_end = 0;
  int gaps = 0;
  for (int i = 0; i < f.nev; i++) {
    if (f.ev[i].type != TSVC_MON_EV_CHECK) continue;
    uint64_t end = (uint64_t)f.ev[i].now;
    if (prev_end && state_of(&f, "db") == TSVC_STATE_HEALTHY && i > 4) {
      /* start of this check = end - 30 (or later, the inspect timer may
         be late): never before prev_end + 100; the upper bound is the 10%
         jitter plus timer slack (two timers: the check's and the
         inspection's) and what the machine held the loop meanwhile. */
      uint64_t gap = end - 30 - prev_end;
      assert_in_range(gap, 99,
                      100 + 10 + 2 * TU_TIMER_SLACK_MS + tu_lag_between(f.lag, prev_end, end));
      gaps++;
    }
    prev_end = end;
  }
  assert_true(gaps >= 5);
  fx_teardown(&f);
}

/* At least three quarters of n on their step (checks started within the
   timer slack and what the witnesses saw the machine hold the loop): a
   loaded machine still held a start 13 ms with 5 ms of it explained, once
   in CI (two copies of the suite and a benchmark beside it), where a
   check that is not put on the step is on it (within slack) about one
   time in ten (a 10 ms step where the test asks 20: one in two). */
static void assert_on_step(int n, int on_step, const char *what) {
  print_message("%s: %d of %d on their step\n", what, on_step, n);
  assert_true(on_step * 4 >= n * 3);
}

/* The lateness the check events carry counts from the step: at least
   three quarters of them are within the timer slack and what held the
   loop (from the check's start, now - lateness; the event comes at its
   end, which with this runtime's instant probe is its start). Counted
   from the deadline before its rounding they would be spread over the
   whole step. */
static void assert_lateness_from_step(fx_t *f, tu_stall_t *stall, uint64_t from) {
  int n = 0, within = 0;
  for (int i = 0; i < f->nev; i++)
    if (f->ev[i].type == TSVC_MON_EV_CHECK && (uint64_t)f->ev[i].now >= from) {
      uint64_t due = (uint64_t)f->ev[i].now - (uint64_t)f->ev[i].lateness_ms;
      int64_t held = tu_lag_between(f->lag, due, f->ev[i].now) +
                     tu_stall_between(stall, due, f->ev[i].now);
      assert_true(f->ev[i].lateness_ms >= 0);
      n++;
      if (f->ev[i].lateness_ms <= TU_TIMER_SLACK_MS + held) within++;
    }
  assert_true(n > 0);
  assert_on_step(n, within, "lateness counted from the step");
}

/* monitor.timer_grid: every check starts on a multiple of the grid (of
   the loop's clock), so services due within one step share a wake-up; no
   check starts more than one step late. */
static void checks_start_on_the_grid(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("a", "") SVC_RUNNING("b", "") SVC_RUNNING("c", "")
                   SVC_RUNNING("d", "") SVC_RUNNING("e", "") SVC_RUNNING("f", ""));
  const uint64_t grid = 50;
  tsvc_monitor_set_timer_grid(f.mon, (tsvc_ms_t)grid);
  uint64_t t0 = uv_now(&f.loop);
  tu_stall_t *stall = tu_stall_start();
  run_long(&f, 1500);
  int checks = 0, shared = 0, on_step = 0;
  uint64_t max_off = 0;
  int64_t max_held = 0; /* the most lag and stall that excused a start */
  for (int i = 0; i < f.rt->ncalls; i++) {
    const recrt_call_t *c = &f.rt->calls[i];
    /* From the second round of checks on: the first ones were scheduled
       before the grid was set. */
    if (strcmp(c->op, "inspect") != 0 || c->at < t0 + 300) continue;
    /* A timer due on the grid runs when the loop next looks at its clock:
       at the step itself, or as late as the timer slack and what the
       machine held the loop meanwhile: on a run queue (lag) or stalled
       (the witness; 5-10 ms at load 3-8, in 5 of 140 runs). */
    uint64_t off = c->at % grid;
    if (off > max_off) max_off = off;
    int64_t held = tu_lag_between(f.lag, c->at - off, c->at) +
                   tu_stall_between(stall, c->at - off, c->at);
    if ((int64_t)off > TU_TIMER_SLACK_MS && held > max_held) max_held = held;
    if ((int64_t)off <= TU_TIMER_SLACK_MS + held) on_step++;
    else print_message("a check %llu ms after its step, %lld ms of it explained\n",
                       (unsigned long long)off, (long long)held);
    checks++;
    if (i > 0 && f.rt->calls[i - 1].at == c->at) shared++;
  }
  /* 6 services at 100 ms (+10% jitter) for 1.2 s: about 60 checks, many of
     them started together. */
  print_message("grid %llu ms: %d checks, %d started with the one before, latest %llu ms after "
                "its step; the machine excused at most %lld ms\n",
                (unsigned long long)grid, checks, shared, (unsigned long long)max_off,
                (long long)max_held);
  assert_true(checks >= 30);
  assert_true(shared >= 5);
  assert_on_step(checks, on_step, "checks started");
  assert_lateness_from_step(&f, stall, t0 + 300);
  tu_stall_stop(stall);
  fx_teardown(&f);
}

/* A service's own step: a twentieth of its interval when that is longer
   than the grid (at most TSVC_TIMER_STEP_MAX_MS), the grid else. */
static void timer_step_of_an_interval(void **st) {
  (void)st;
  assert_int_equal(tsvc_timer_step(10, 1000), 50);
  assert_int_equal(tsvc_timer_step(10, 30000), TSVC_TIMER_STEP_MAX_MS);
  assert_int_equal(tsvc_timer_step(10, 400), 20);
  assert_int_equal(tsvc_timer_step(10, 100), 10);
  assert_int_equal(tsvc_timer_step(10, 0), 10);
  assert_int_equal(tsvc_timer_step(200, 1000), 200); /* a grid set longer is kept */
  assert_int_equal(tsvc_timer_step(0, 1000), 0);     /* no grid: none */
  assert_int_equal(tsvc_timer_step(1, 1000), 0);
}

#define SVC_EVERY_400(name)                                                                     \
  "  " name ":\n"                                                                               \
  "    image: local/test\n"                                                                     \
  "    healthcheck: {probe: running, interval: 400ms, timeout: 50ms,\n"                         \
  "                  start_period: 0s, start_interval: 400ms, retries: 2}\n"

/* Services checked every 400 ms on a 10 ms grid start their checks on
   multiples of 20 ms (their step), not of 10; their lateness counts from
   the step. */
static void checks_start_on_the_service_step(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_EVERY_400("a") SVC_EVERY_400("b") SVC_EVERY_400("c")
                   SVC_EVERY_400("d") SVC_EVERY_400("e") SVC_EVERY_400("f"));
  tsvc_monitor_set_timer_grid(f.mon, 10);
  const uint64_t step = 20;
  uint64_t t0 = uv_now(&f.loop);
  tu_stall_t *stall = tu_stall_start();
  run_long(&f, 3100);
  int checks = 0, on_step = 0;
  for (int i = 0; i < f.rt->ncalls; i++) {
    const recrt_call_t *c = &f.rt->calls[i];
    /* From the second round on: the first was scheduled before the grid
       was set, 400-440 ms after a start that takes some time of its own. */
    if (strcmp(c->op, "inspect") != 0 || c->at < t0 + 1000) continue;
    uint64_t off = c->at % step;
    int64_t held = tu_lag_between(f.lag, c->at - off, c->at) +
                   tu_stall_between(stall, c->at - off, c->at);
    if ((int64_t)off <= TU_TIMER_SLACK_MS + held) on_step++;
    else print_message("a check %llu ms after its step, %lld ms of it explained\n",
                       (unsigned long long)off, (long long)held);
    checks++;
  }
  /* 6 services every 400-440 ms for 2.1 s: about 30 checks; on a 10 ms
     step about half of them would start 10 ms past a multiple of 20. */
  print_message("step %llu ms: %d checks\n", (unsigned long long)step, checks);
  assert_true(checks >= 20);
  assert_on_step(checks, on_step, "checks started");
  assert_lateness_from_step(&f, stall, t0 + 1000);
  tu_stall_stop(stall);
  fx_teardown(&f);
}

/* Status snapshots are copies, safe to take from another thread. */
typedef struct {
  tsvc_monitor_t *mon;
  atomic_int stop; /* atomic: volatile is no synchronization (ThreadSanitizer) */
  int reads;
} reader_t;

static void *reader(void *arg) {
  reader_t *r = arg;
  while (!atomic_load(&r->stop)) {
    tsvc_status_list_t l;
    if (tsvc_monitor_get_all(r->mon, &l) == 0) {
      for (size_t i = 0; i < l.n; i++)
        if (l.v[i].nhistory) assert_true(l.v[i].history[l.v[i].nhistory - 1].end_ms > 0);
      tsvc_status_list_free(&l);
      r->reads++;
    }
  }
  return NULL;
}

static void snapshots_from_another_thread(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("a", "") SVC_RUNNING("b", "") SVC_RUNNING("c", ""));
  reader_t r = {.mon = f.mon};
  atomic_init(&r.stop, 0);
  pthread_t th;
  pthread_create(&th, NULL, reader, &r);
  run_for(&f, 700);
  atomic_store(&r.stop, 1);
  pthread_join(th, NULL);
  assert_true(r.reads > 10);
  tsvc_status_list_t l;
  assert_int_equal(tsvc_monitor_get_all(f.mon, &l), 0);
  assert_int_equal(l.n, 3);
  assert_string_equal(l.v[0].name, "a");
  assert_string_equal(l.v[2].name, "c");
  /* history keeps the configured number (default 20), oldest first */
  for (size_t i = 0; i < l.n; i++) {
    assert_in_range(l.v[i].nhistory, 1, 20);
    for (size_t k = 1; k < l.v[i].nhistory; k++)
      assert_true(l.v[i].history[k].start_ms >= l.v[i].history[k - 1].start_ms);
  }
  tsvc_status_list_free(&l);
  fx_teardown(&f);
}

/* A check in flight is shown "checking" (next_check_ms 0) to other threads
   soon after it starts, though the loop's poll would wait seconds for its
   answer: the publish a timer defers to the turn's end (monitor.c
   publish_soon) is bounded by TURN_BOUND_MS (20). The loop runs on its own
   thread with no other timer than its stop (no lag sampler: its 2 ms tick
   would end every poll); this thread reads the board. */
typedef struct {
  fx_t *f;
} looper_t;

static void *looper(void *arg) {
  looper_t *l = arg;
  run_for(l->f, 4000);
  return NULL;
}

static void checking_shown_while_the_poll_waits(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n"
               "  slow:\n"
               "    image: local/test\n"
               "    healthcheck:\n"
               "      command: [\"CMD-SHELL\", \"exec sleep 30\"]\n"
               "      interval: 1s\n      timeout: 60s\n      start_period: 0s\n");
  tu_lag_stop(f.lag);
  f.lag = NULL;
  looper_t l = {.f = &f};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, looper, &l), 0);
  /* The first check starts an interval (1 s) after the start. Without the
     bound the board says "checking" only when the loop's stop timer ends the
     poll, at 4 s (seen: never within 3 s); with it, 1.08-1.12 s here. 3 s
     leaves a loaded machine 2 s to fork the check and wake the loop. */
  int64_t t0 = tsvc_mono_ms(), seen = -1;
  while (seen < 0 && tsvc_mono_ms() - t0 < 3000) {
    tsvc_status_t s;
    assert_int_equal(tsvc_monitor_get_status(f.mon, "slow", &s), 0);
    if (s.next_check_ms == 0 && s.state != TSVC_STATE_STOPPED) seen = tsvc_mono_ms() - t0;
    tsvc_status_clear(&s);
    if (seen < 0) usleep(5000);
  }
  pthread_join(th, NULL);
  print_message("checking shown after %lld ms\n", (long long)seen);
  assert_true(seen >= 0);
  fx_teardown(&f);
}

/* A disabled service is stopped and never checked; enabling needs a start. */
static void disabled_never_checked(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n  off:\n    enabled: false\n    image: local/test\n    healthcheck: {probe: running}\n");
  run_for(&f, 200);
  assert_int_equal(state_of(&f, "off"), TSVC_STATE_STOPPED);
  assert_int_equal(recrt_count(f.rt, NULL, "off"), 0);
  fx_teardown(&f);
}

/* Exec probes on the host: exit code decides; output kept in history. */
static void exec_probe_on_host(void **st) {
  (void)st;
  fx_t f;
  tsvc_runtime_t *saved;
  fx_setup(&f,
           "services:\n"
           "  job:\n"
           "    image: local/test\n"
           "    healthcheck:\n"
           "      command: [\"CMD-SHELL\", \"echo hello; test -e /nonexistent-tanuki\"]\n"
           "      interval: 100ms\n      timeout: 90ms\n      start_period: 0s\n"
           "      retries: 1\n"
           "    restart: {policy: never}\n");
  (void)saved;
  /* A fork and exec of sh may take longer than the 90 ms timeout on a
     loaded machine: the verdict asserted is that of the first check that
     ran to its end (a timeout says nothing about exit codes). */
  int i = 0;
  tsvc_status_t s;
  for (;;) {
    run_for(&f, 100);
    tsvc_monitor_get_status(f.mon, "job", &s);
    bool ended = false;
    for (size_t k = 0; k < s.nhistory; k++)
      if (s.history[k].result != TSVC_RESULT_TIMEOUT) ended = true;
    tsvc_status_clear(&s);
    if (ended || ++i == 100) break;
  }
  run_for(&f, 100);
  assert_int_equal(state_of(&f, "job"), TSVC_STATE_UNHEALTHY);
  tsvc_monitor_get_status(f.mon, "job", &s);
  assert_string_equal(s.probe, "exec");
  size_t k = 0;
  while (k < s.nhistory && s.history[k].result == TSVC_RESULT_TIMEOUT) k++;
  assert_true(k < s.nhistory);
  assert_int_equal(s.history[k].result, TSVC_RESULT_EXEC_FAILED);
  assert_int_equal(s.history[k].exit_code, 1);
  assert_non_null(s.history[k].output);
  assert_non_null(strstr(s.history[k].output, "hello"));
  tsvc_status_clear(&s);
  assert_int_equal(recrt_count(f.rt, "restart", NULL), 0); /* policy never */
  fx_teardown(&f);
}

/* A person's operations report how they ended, with the runtime's words. */
static void person_ops_report_completion(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  f.rt->op_delay_ms = 50;
  done_t stop1 = {0}, stop2 = {0}, start = {0}, r1 = {0}, r2 = {0}, busy = {0};
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "db", done_cb, &stop1), 0);
  assert_int_equal(stop1.calls, 0); /* in flight */
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", done_cb, &busy), TSVC_EBUSY);
  run_for(&f, 100);
  assert_int_equal(stop1.calls, 1);
  assert_int_equal(stop1.status, 0);
  /* Nothing to do: told from the loop all the same, never inside the call
     (libuv's rule; this was told at once before). */
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "db", done_cb, &stop2), 0);
  assert_int_equal(stop2.calls, 0);
  run_for(&f, 10);
  assert_int_equal(stop2.calls, 1);
  assert_int_equal(stop2.status, 0);
  /* A start the runtime fails: the error, its message, and what follows;
     it is not stopped (nobody stopped it) and is retried. */
  f.rt->fail_ops = 1;
  snprintf(f.rt->fail_msg, sizeof f.rt->fail_msg, "port is already allocated");
  start.stop = &f.loop;
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", done_cb, &start), 0);
  run_for(&f, 2000); /* until told: the retry is not due before 100 ms after */
  start.stop = NULL;
  assert_int_equal(start.calls, 1);
  assert_int_equal(start.status, TSVC_ERUNTIME);
  assert_non_null(strstr(start.msg, "port is already allocated (starting again in "));
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_UNHEALTHY);
  run_long(&f, 300); /* the retry (after 100ms backoff) starts it */
  assert_int_equal(recrt_count(f.rt, "start", "db"), 2);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  /* Two restarts at once: the second joins the first; both are told. */
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", done_cb, &r1), 0);
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", done_cb, &r2), 0);
  run_for(&f, 100);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 1);
  assert_int_equal(r1.calls, 1);
  assert_int_equal(r2.calls, 1);
  assert_int_equal(r1.status, 0);
  assert_int_equal(busy.calls, 0); /* refused calls are never told */
  fx_teardown(&f);
}

/* libuv's rule: a runtime that refuses an operation at once (the call
   returns an error) is heard from the loop like any answer; whoever waits
   is never told inside the call. */
static void runtime_refusal_told_from_the_loop(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  f.rt->refuse_ops = 1;
  done_t d = {0};
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", done_cb, &d), 0);
  assert_int_equal(d.calls, 0); /* not inside the call */
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_RESTARTING);
  run_for(&f, 20);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, TSVC_ERUNTIME);
  assert_string_equal(d.msg, "the runtime failed");
  assert_int_equal(tu_log_count("action=restart_failed"), 1);
  assert_int_equal(tu_log_count("state=unhealthy prev=restarting"), 1);
  run_for(&f, 400); /* restarted again at once (the first of the count), and it works */
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 2);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  fx_teardown(&f);
}

/* Told the end of a restart once the new pid is known: a status read in
   the callback shows it. */
typedef struct {
  fx_t *f;
  int calls, status, pid;
} pid_seen_t;

static void pid_cb(int status, const char *msg, void *data) {
  (void)msg;
  pid_seen_t *p = data;
  tsvc_status_t s;
  p->calls++;
  p->status = status;
  if (tsvc_monitor_get_status(p->f->mon, "db", &s) == 0) p->pid = s.pid;
  tsvc_status_clear(&s);
}

static void restart_told_with_the_new_pid(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  f.rt->inspect_delay_ms = 30; /* the inspection comes after the restart */
  run_for(&f, 300);
  tsvc_status_t s;
  assert_int_equal(tsvc_monitor_get_status(f.mon, "db", &s), 0);
  assert_int_equal(s.pid, 4242);
  tsvc_status_clear(&s);
  f.rt->op_delay_ms = 20;
  pid_seen_t p = {.f = &f};
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", pid_cb, &p), 0);
  run_for(&f, 200);
  assert_int_equal(p.calls, 1);
  assert_int_equal(p.status, 0);
  assert_int_equal(p.pid, 4243); /* the restarted one's, never the old */
  fx_teardown(&f);
}

/* Observers (and so /v1/events) hear of changes into restarting. */
static void changes_into_restarting_are_told(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  recrt_set_running(f.rt, "db", false);
  tsvc_monitor_runtime_event(f.mon, TSVC_RT_EV_DIED, "db", "exited (1)");
  int i = 0;
  while (i < f.nev && !(f.ev[i].type == TSVC_MON_EV_CHANGE && f.ev[i].to == TSVC_STATE_UNHEALTHY))
    i++;
  assert_true(i + 1 < f.nev);
  assert_int_equal(f.ev[i + 1].type, TSVC_MON_EV_CHANGE);
  assert_int_equal(f.ev[i + 1].from, TSVC_STATE_UNHEALTHY);
  assert_int_equal(f.ev[i + 1].to, TSVC_STATE_RESTARTING);
  assert_int_equal(tu_log_count("state=restarting"), 0); /* logged as the action */
  assert_int_equal(tu_log_count("action=restart"), 1);
  /* A person's restart: healthy -> restarting. */
  run_for(&f, 300);
  int before = count_changes(&f, TSVC_STATE_RESTARTING);
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", NULL, NULL), 0);
  assert_int_equal(count_changes(&f, TSVC_STATE_RESTARTING), before + 1);
  assert_int_equal(f.ev[f.nev - 2].from, TSVC_STATE_HEALTHY);
  run_for(&f, 100);
  fx_teardown(&f);
}

/* A check asked for gets the verdict of a check that started after it was
   asked: with one in flight, the next, which starts as soon as that one
   ends. */
typedef struct {
  int calls, status;
  tsvc_check_record_t rec;
} verdict_t;

static void verdict_cb(int status, const tsvc_check_record_t *rec, void *data) {
  verdict_t *v = data;
  v->calls++;
  v->status = status;
  if (rec) {
    v->rec = *rec;
    v->rec.message = strdup(rec->message);
    v->rec.output = NULL;
  }
}

static void check_verdict_is_of_a_later_check(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  f.rt->inspect_delay_ms = 40; /* each check takes 40 ms (timeout 50 ms) */
  run_for(&f, 400);
  /* Catch a check in flight: run until the monitor starts one. */
  int inspects = recrt_count(f.rt, "inspect", "db");
  for (int k = 0; k < 200 && recrt_count(f.rt, "inspect", "db") == inspects; k++) run_for(&f, 2);
  assert_true(recrt_count(f.rt, "inspect", "db") > inspects);
  inspects = recrt_count(f.rt, "inspect", "db");
  verdict_t v = {0};
  int64_t asked = tsvc_wall_ms();
  assert_int_equal(tsvc_monitor_check(f.mon, "db", verdict_cb, &v), 0);
  assert_int_equal(v.calls, 0);
  run_for(&f, 300);
  assert_int_equal(v.calls, 1);
  assert_int_equal(v.status, 0);
  assert_int_equal(v.rec.result, TSVC_RESULT_OK);
  assert_true(v.rec.start_ms >= asked);
  assert_int_equal(recrt_count(f.rt, "inspect", "db") >= inspects + 1, 1);
  free(v.rec.message);
  /* Nothing in flight: the check starts at once. A stopped service is not
     checked (and nobody is told anything). */
  verdict_t w = {0};
  assert_int_equal(tsvc_monitor_check(f.mon, "db", verdict_cb, &w), 0);
  run_for(&f, 150);
  assert_int_equal(w.calls, 1);
  free(w.rec.message);
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 50);
  verdict_t x = {0};
  assert_int_equal(tsvc_monitor_check(f.mon, "db", verdict_cb, &x), TSVC_ENOTCHECKED);
  run_for(&f, 50);
  assert_int_equal(x.calls, 0);
  fx_teardown(&f);
}

/* A check cancelled by a restart tells its asker so (not checked). */
static void check_cancelled_by_a_restart(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  f.rt->inspect_delay_ms = 200;
  run_for(&f, 30); /* the first check is in flight */
  verdict_t v = {0};
  assert_int_equal(tsvc_monitor_check(f.mon, "db", verdict_cb, &v), 0);
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", NULL, NULL), 0);
  assert_int_equal(v.calls, 0);
  run_for(&f, 20);
  assert_int_equal(v.calls, 1);
  assert_int_equal(v.status, TSVC_ENOTCHECKED);
  run_for(&f, 500);
  fx_teardown(&f);
}

/* Closing tells whoever waits, from the loop. */
static void close_tells_waiters(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC_RUNNING("db", ""));
  run_for(&f, 300);
  f.rt->op_delay_ms = 1000;
  done_t d = {0};
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", done_cb, &d), 0);
  run_for(&f, 20);
  tsvc_monitor_close(f.mon);
  assert_int_equal(d.calls, 0);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", done_cb, &d), TSVC_ECANCELED);
  uv_close((uv_handle_t *)&f.stop_timer, NULL);
  tu_lag_stop(f.lag);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.status, TSVC_ECANCELED);
  assert_string_equal(d.msg, "the monitor stopped watching db");
  tsvc_monitor_free(f.mon);
  tsvc_runtime_free(&f.rt->base);
  assert_int_equal(uv_loop_close(&f.loop), 0);
  tsvc_config_free(f.cfg);
  free(tu_log_end());
}

/* The newest record's message and the checks so far of service name. */
static uint64_t newest_message(fx_t *f, const char *name, char *out, size_t len) {
  tsvc_status_t s;
  assert_int_equal(tsvc_monitor_get_status(f->mon, name, &s), 0);
  assert_true(s.nhistory > 0);
  snprintf(out, len, "%s", s.history[s.nhistory - 1].message);
  uint64_t n = s.checks_total;
  tsvc_status_clear(&s);
  return n;
}

/* A check's message is scrubbed of secrets before it is kept. A message
 * that repeats the last one is not scrubbed again while the secrets stay
 * the same (record_check), so: a secret registered between two checks is
 * masked from the next one on, and one forgotten shows again. A fake
 * redis answers each PING with an error that holds the password as a
 * value. */
static void repeated_message_scrubbed_anew(void **st) {
  (void)st;
  static const char reply[] = "-ERR AUTH hunter22 rejected\r\n";
  tu_fake_t fk;
  assert_int_equal(tu_fake_start(&fk, TU_FAKE_REPLY_CLOSE, reply, sizeof reply - 1), 0);
  char yaml[512];
  snprintf(yaml, sizeof yaml,
           "services:\n  cache:\n    external: true\n"
           "    healthcheck: {probe: redis, address: \"127.0.0.1:%d\", interval: 50ms,\n"
           "                  timeout: 40ms, start_period: 0s, retries: 1000}\n",
           fk.port);
  fx_t f;
  fx_setup(&f, yaml);
  char raw[256], masked[256], m[256];
  /* Several checks with the same message and no secret: kept as it is. */
  uint64_t n0 = 0;
  for (int i = 0; i < 200 && n0 < 3; i++) {
    run_for(&f, 50);
    tsvc_status_t s;
    assert_int_equal(tsvc_monitor_get_status(f.mon, "cache", &s), 0);
    n0 = s.checks_total;
    tsvc_status_clear(&s);
  }
  assert_true(n0 >= 3);
  newest_message(&f, "cache", raw, sizeof raw);
  print_message("raw: %s\n", raw);
  assert_non_null(strstr(raw, "hunter22"));
  /* The status's text fields, as the snapshot packed them. */
  tsvc_status_t s;
  assert_int_equal(tsvc_monitor_get_status(f.mon, "cache", &s), 0);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", fk.port);
  assert_string_equal(s.probe, "redis");
  assert_string_equal(s.probe_address, addr);
  assert_string_equal(s.last_error, raw);
  assert_string_equal(s.container_id, "rec-cache"); /* recrt's inspection */
  assert_string_equal(s.session_error, "");
  assert_string_equal(s.name, "cache");
  tsvc_status_clear(&s);

  assert_int_equal(tsvc_log_add_secret("hunter22"), 0);
  tsvc_log_scrub(masked, sizeof masked, raw);
  assert_null(strstr(masked, "hunter22")); /* the scrub masks it */
  uint64_t n1 = n0;
  for (int i = 0; i < 200 && n1 < n0 + 3; i++) {
    run_for(&f, 50);
    n1 = newest_message(&f, "cache", m, sizeof m);
  }
  assert_true(n1 >= n0 + 3);
  print_message("with the secret: %s\n", m);
  assert_string_equal(m, masked);

  tsvc_log_clear_secrets();
  uint64_t n2 = n1;
  for (int i = 0; i < 200 && n2 < n1 + 3; i++) {
    run_for(&f, 50);
    n2 = newest_message(&f, "cache", m, sizeof m);
  }
  assert_true(n2 >= n1 + 3);
  assert_string_equal(m, raw);
  fx_teardown(&f);
  tu_fake_stop(&fk);
}

/* healthcheck.session: a real redis; checks go over one held connection,
 * which the status and /metrics show; a reload without the key drops the
 * session (its connection is closed) and the checks connect again. */
static void held_session_in_status_and_metrics(void **st) {
  (void)st;
  char why[256];
  if (!tu_redis_available(why, sizeof why)) tu_missing(why); /* skipped, or a CI failure */
  tu_redis_t r;
  assert_int_equal(tu_redis_start(&r, NULL), 0);
  char yaml[512];
  snprintf(yaml, sizeof yaml,
           "services:\n  cache:\n    external: true\n"
           "    healthcheck: {probe: redis, address: \"127.0.0.1:%d\", interval: 100ms,\n"
           "                  timeout: 2s, start_period: 0s, session: true}\n",
           r.port);
  fx_t f;
  fx_setup(&f, yaml);
  tsvc_status_t s;
  for (int i = 0; i < 100; i++) { /* up to 10 s on a loaded machine */
    run_for(&f, 100);
    assert_int_equal(tsvc_monitor_get_status(f.mon, "cache", &s), 0);
    bool enough = s.session_held_checks >= 3;
    tsvc_status_clear(&s);
    if (enough) break;
  }
  assert_int_equal(tsvc_monitor_get_status(f.mon, "cache", &s), 0);
  print_message("session: held=%d connects=%llu held_checks=%llu full_checks=%llu state=%s\n",
                s.session_held, (unsigned long long)s.session_connects,
                (unsigned long long)s.session_held_checks,
                (unsigned long long)s.session_full_checks, tsvc_state_name(s.state));
  assert_true(s.session);
  assert_true(s.session_held);
  assert_int_equal(s.session_connects, 1);
  assert_int_equal(s.session_full_checks, 1);
  assert_true(s.session_held_checks >= 3);
  assert_int_equal(s.state, TSVC_STATE_HEALTHY);
  tsvc_status_clear(&s);

  tsvc_status_list_t l;
  assert_int_equal(tsvc_monitor_get_all(f.mon, &l), 0);
  tsvc_buf_t b;
  tsvc_buf_init(&b, 1 << 20);
  assert_int_equal(tsvc_metrics_render(&l, &b), 0);
  assert_int_equal(tsvc_buf_add(&b, "", 1), 0);
  assert_non_null(strstr(b.data, "tanuki_svc_session_held{service=\"cache\"} 1\n"));
  assert_non_null(strstr(b.data, "tanuki_svc_session_connects_total{service=\"cache\"} 1\n"));
  assert_non_null(strstr(b.data, "tanuki_svc_session_checks_total{service=\"cache\",on=\"full\"} 1\n"));
  tsvc_buf_free(&b);
  tsvc_status_list_free(&l);

  /* Reload without session: no session any more, checks still healthy. */
  tsvc_config_t *cfg2;
  tsvc_diag_t d = {0};
  char *off = strstr(yaml, ", session: true");
  assert_non_null(off);
  memmove(off, off + strlen(", session: true"), strlen(off + strlen(", session: true")) + 1);
  assert_int_equal(tsvc_config_load_string("test.yaml", yaml, strlen(yaml), &cfg2, &d), 0);
  tsvc_diag_free(&d);
  assert_int_equal(tsvc_monitor_update(f.mon, &cfg2->services[0], NULL), 0);
  run_for(&f, 400);
  assert_int_equal(tsvc_monitor_get_status(f.mon, "cache", &s), 0);
  assert_false(s.session);
  assert_int_equal(s.state, TSVC_STATE_HEALTHY);
  tsvc_status_clear(&s);
  fx_teardown(&f);
  tsvc_config_free(cfg2);
  tu_redis_stop(&r);
}


/* healthcheck.history changed by a reload: the history starts afresh and
   keeps at most the new number; a snapshot a reader took before keeps the
   records it was taken with while the monitor's checks fill its block and
   go on in new ones (src/monitor/board.h). */
static void history_across_blocks_and_reloads(void **st) {
  (void)st;
  const char *fmt = "services:\n  x:\n    image: local/test\n"
                    "    healthcheck: {probe: running, interval: 20ms, timeout: 15ms,\n"
                    "                  start_period: 0s, history: %d}\n";
  char yaml[512];
  snprintf(yaml, sizeof yaml, fmt, 3);
  fx_t f;
  fx_setup(&f, yaml);
  tsvc_board_t *b = tsvc_monitor_board(f.mon);
  tsvc_snap_t *held = NULL;
  tsvc_status_t then, s;
  for (int i = 0; i < 250 && !held; i++) { /* up to 5 s on a loaded machine */
    run_for(&f, 20);
    assert_int_equal(tsvc_board_get(b, "x", &held), 0);
    assert_int_equal(tsvc_snap_copy(held, true, &then), 0);
    if (then.nhistory == 3) break;
    tsvc_status_clear(&then);
    tsvc_snap_release(held);
    held = NULL;
  }
  assert_non_null(held);
  /* More checks than a block holds (board.c blk_room). */
  uint64_t from = then.checks_total;
  for (int i = 0; i < 500; i++) {
    run_for(&f, 20);
    assert_int_equal(tsvc_monitor_get_status(f.mon, "x", &s), 0);
    assert_in_range(s.nhistory, 1, 3);
    bool enough = s.checks_total >= from + 30;
    tsvc_status_clear(&s);
    if (enough) break;
  }
  int caps[] = {5, 1, 4};
  tsvc_config_t *cfgs[3];
  for (int c = 0; c < 3; c++) {
    snprintf(yaml, sizeof yaml, fmt, caps[c]);
    tsvc_diag_t d = {0};
    assert_int_equal(tsvc_config_load_string("test.yaml", yaml, strlen(yaml), &cfgs[c], &d), 0);
    tsvc_diag_free(&d);
    assert_int_equal(tsvc_monitor_update(f.mon, &cfgs[c]->services[0], NULL), 0);
    assert_int_equal(tsvc_monitor_get_status(f.mon, "x", &s), 0);
    assert_int_equal(s.nhistory, 0); /* afresh */
    tsvc_status_clear(&s);
    size_t most = 0;
    for (int i = 0; i < 500 && most < (size_t)caps[c]; i++) {
      run_for(&f, 20);
      assert_int_equal(tsvc_monitor_get_status(f.mon, "x", &s), 0);
      assert_in_range(s.nhistory, 0, caps[c]);
      if (s.nhistory > most) most = s.nhistory;
      for (size_t k = 1; k < s.nhistory; k++)
        assert_true(s.history[k].start_ms >= s.history[k - 1].start_ms);
      tsvc_status_clear(&s);
    }
    assert_int_equal(most, caps[c]);
  }
  /* What was held is as it was. */
  tsvc_status_t now;
  assert_int_equal(tsvc_snap_copy(held, true, &now), 0);
  assert_int_equal(now.nhistory, then.nhistory);
  for (size_t k = 0; k < now.nhistory; k++) {
    assert_int_equal(now.history[k].start_ms, then.history[k].start_ms);
    assert_int_equal(now.history[k].end_ms, then.history[k].end_ms);
    assert_string_equal(now.history[k].message, then.history[k].message);
  }
  tsvc_status_clear(&now);
  tsvc_status_clear(&then);
  tsvc_snap_release(held);
  fx_teardown(&f);
  for (int c = 0; c < 3; c++) tsvc_config_free(cfgs[c]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reaches_healthy_and_logs_changes_only),
      cmocka_unit_test(not_running_restarted_then_healthy),
      cmocka_unit_test(die_event_acts_at_once),
      cmocka_unit_test(restart_failure_logged_and_retried),
      cmocka_unit_test(gives_up_after_max_restarts),
      cmocka_unit_test(stopped_stays_stopped),
      cmocka_unit_test(runtime_down_nothing_restarted),
      cmocka_unit_test(restart_in_flight_blocks_nothing),
      cmocka_unit_test(schedule_from_end_with_jitter),
      cmocka_unit_test(snapshots_from_another_thread),
      cmocka_unit_test(checking_shown_while_the_poll_waits),
      cmocka_unit_test(disabled_never_checked),
      cmocka_unit_test(exec_probe_on_host),
      cmocka_unit_test(person_ops_report_completion),
      cmocka_unit_test(start_failure_retried_then_healthy),
      cmocka_unit_test(start_failures_give_up_then_person_start),
      cmocka_unit_test(runtime_refusal_told_from_the_loop),
      cmocka_unit_test(restart_told_with_the_new_pid),
      cmocka_unit_test(changes_into_restarting_are_told),
      cmocka_unit_test(check_verdict_is_of_a_later_check),
      cmocka_unit_test(check_cancelled_by_a_restart),
      cmocka_unit_test(close_tells_waiters),
      cmocka_unit_test(checks_start_on_the_grid),
      cmocka_unit_test(timer_step_of_an_interval),
      cmocka_unit_test(checks_start_on_the_service_step),
      cmocka_unit_test(held_session_in_status_and_metrics),
      cmocka_unit_test(repeated_message_scrubbed_anew),
      cmocka_unit_test(history_across_blocks_and_reloads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
