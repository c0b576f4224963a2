/*
 * test_depends: depends_on. The pure rules (src/health/depends.c) against
 * the table in docs/design.md ("Dependencies"), cell by cell; then the
 * monitor holding (re)starts on a real libuv loop with the recording
 * runtime: a start held until its dependency is healthy, a wait that times
 * out as a failed start retried on backoff, a person's stop of a held
 * start, and restart: true.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "health/depends.h"
#include "log/log.h"
#include "monitor/monitor.h"
#include "recrt.h"
#include "testutil.h"

/* ---- the rules ------------------------------------------------------------- */

static tsvc_health_params_t params(void) {
  return (tsvc_health_params_t){.interval = 10000, .start_interval = 1000,
                                .start_period = 60000, .retries = 3,
                                .success_threshold = 1, .can_restart = true,
                                .max_restarts = 5, .window = 600000, .backoff = 1000,
                                .max_backoff = 300000, .cooldown = 0, .jitter_permille = 0};
}

static void step(tsvc_health_t *h, tsvc_health_event_type_t type, tsvc_ms_t now,
                 tsvc_result_t res) {
  tsvc_health_event_t ev = {.type = type, .now = now, .result = res, .message = "x"};
  tsvc_health_actions_t a;
  assert_int_equal(tsvc_health_step(h, &ev, &a), 0);
}

/* A view of each situation, from a health machine brought there by real
   events (no field poked); "not monitored" is the monitor's own. */
static tsvc_dep_view_t view_in(const char *row, tsvc_health_t *h) {
  tsvc_health_params_t p = params();
  if (!strcmp(row, "failed") || !strcmp(row, "failed/ns")) p.max_restarts = 1;
  assert_int_equal(tsvc_health_init(h, &p, 0, 42), 0);
  tsvc_dep_view_t none = {.monitored = false, .state = TSVC_STATE_STOPPED};
  if (!strcmp(row, "not monitored")) return none;
  if (!strcmp(row, "stopped")) return tsvc_dep_view_of(h);
  if (!strcmp(row, "starting/op")) {
    step(h, TSVC_HEV_USER_START, 0, TSVC_RESULT_OK);
    return tsvc_dep_view_of(h);
  }
  step(h, TSVC_HEV_STARTED, 0, TSVC_RESULT_OK); /* adopted: starting */
  if (!strcmp(row, "starting")) return tsvc_dep_view_of(h);
  if (!strcmp(row, "stopping")) {
    step(h, TSVC_HEV_USER_STOP, 10, TSVC_RESULT_OK);
    return tsvc_dep_view_of(h);
  }
  if (!strcmp(row, "unhealthy/ns") || !strcmp(row, "failed/ns")) {
    tsvc_health_free(h);
    assert_int_equal(tsvc_health_init(h, &p, 0, 42), 0);
    step(h, TSVC_HEV_USER_START, 0, TSVC_RESULT_OK);
    step(h, TSVC_HEV_OP_FAILED, 10, TSVC_RESULT_OK);
    if (!strcmp(row, "failed/ns")) {
      /* max_restarts 1: the first failed start was it; the retry fails. */
      step(h, TSVC_HEV_TICK, 10 + 2000, TSVC_RESULT_OK);
      step(h, TSVC_HEV_OP_FAILED, 10 + 2000, TSVC_RESULT_OK);
    }
    return tsvc_dep_view_of(h);
  }
  step(h, TSVC_HEV_TICK, 1000, TSVC_RESULT_OK); /* the first check */
  step(h, TSVC_HEV_CHECK_RESULT, 1001, TSVC_RESULT_OK);
  assert_int_equal(h->state, TSVC_STATE_HEALTHY);
  if (!strcmp(row, "healthy")) return tsvc_dep_view_of(h);
  if (!strcmp(row, "unknown")) {
    step(h, TSVC_HEV_RUNTIME_DOWN, 2000, TSVC_RESULT_OK);
    return tsvc_dep_view_of(h);
  }
  step(h, TSVC_HEV_DIED, 2000, TSVC_RESULT_OK); /* restarting at once */
  if (!strcmp(row, "restarting")) return tsvc_dep_view_of(h);
  step(h, TSVC_HEV_OP_DONE, 2010, TSVC_RESULT_OK);
  step(h, TSVC_HEV_DIED, 2020, TSVC_RESULT_OK); /* unhealthy, retry after backoff */
  if (!strcmp(row, "unhealthy")) return tsvc_dep_view_of(h);
  if (!strcmp(row, "failed")) return tsvc_dep_view_of(h); /* max_restarts 1: gave up */
  fail_msg("no way to build the situation '%s'", row);
  return none;
}

/* The documented table is the code's: every situation of depends.c is a
   row, built by real events, and each condition holds exactly where the
   doc says "yes". */
static void documented_conditions_are_the_code(void **st) {
  (void)st;
  tu_table_t t;
  tu_read_table("<!-- table: depends-holds -->", &t);
  assert_int_equal(t.ncols, 2);
  assert_string_equal(t.head[0], "service_started");
  assert_string_equal(t.head[1], "service_healthy");
  int rows = 0;
  while (tsvc_dep_row_name(rows)) rows++;
  assert_int_equal(t.nrows, rows);
  for (int r = 0; r < t.nrows; r++) {
    tsvc_health_t h;
    tsvc_dep_view_t v = view_in(t.names[r], &h);
    const char *got = tsvc_dep_row_name(tsvc_dep_row(&v));
    if (strcmp(got, t.names[r]) != 0) fail_msg("built '%s', the rules see '%s'", t.names[r], got);
    for (int c = 0; c < 2; c++) {
      bool want = !strcmp(t.cells[r][c], "yes");
      if (!want && strcmp(t.cells[r][c], "no") != 0)
        fail_msg("%s/%s: '%s' is neither yes nor no", t.names[r], t.head[c], t.cells[r][c]);
      bool holds = tsvc_dep_holds(c ? TSVC_DEP_HEALTHY : TSVC_DEP_STARTED, &v);
      if (holds != want)
        fail_msg("%s, %s: the doc says %s, the code %s", t.names[r], t.head[c], t.cells[r][c],
                 holds ? "yes" : "no");
    }
    tsvc_health_free(&h);
  }
  tsvc_dep_view_t v = {.monitored = true, .state = TSVC_STATE_HEALTHY};
  assert_false(tsvc_dep_holds((tsvc_dep_condition_t)7, &v)); /* no such condition */
}

/* Which changes of state begin a (re)start: every pair of states. */
static void starts_are_counted_once(void **st) {
  (void)st;
  for (int f = 0; f < TSVC_STATE__COUNT; f++)
    for (int t = 0; t < TSVC_STATE__COUNT; t++) {
      bool want = f != t && f != TSVC_STATE_UNKNOWN &&
                  (t == TSVC_STATE_RESTARTING ||
                   (t == TSVC_STATE_STARTING && f != TSVC_STATE_RESTARTING));
      if (tsvc_dep_is_start((tsvc_state_t)f, (tsvc_state_t)t) != want)
        fail_msg("%s -> %s: want %d", tsvc_state_name((tsvc_state_t)f),
                 tsvc_state_name((tsvc_state_t)t), want);
    }
}

static void restart_due_needs_a_new_healthy_dependency(void **st) {
  (void)st;
  tsvc_dep_view_t healthy = {.monitored = true, .state = TSVC_STATE_HEALTHY};
  tsvc_dep_view_t starting = {.monitored = true, .state = TSVC_STATE_STARTING};
  tsvc_dep_view_t stopped = {.monitored = true, .state = TSVC_STATE_STOPPED};
  assert_true(tsvc_dep_restart_due(&healthy, 2, 1, &healthy));
  assert_true(tsvc_dep_restart_due(&healthy, 2, 1, &starting));
  assert_false(tsvc_dep_restart_due(&healthy, 1, 1, &healthy));   /* not restarted since */
  assert_false(tsvc_dep_restart_due(&starting, 2, 1, &healthy));  /* not healthy yet */
  assert_false(tsvc_dep_restart_due(&healthy, 2, 1, &stopped));   /* the dependent is not running */
  char buf[128];
  assert_string_equal(tsvc_dep_why("pg", TSVC_DEP_HEALTHY, &starting, buf, sizeof buf),
                      "pg is starting (waits for it to be healthy)");
  tsvc_dep_view_t op = {.monitored = true, .state = TSVC_STATE_STARTING, .op = TSVC_OP_START};
  assert_string_equal(tsvc_dep_why("pg", TSVC_DEP_STARTED, &op, buf, sizeof buf),
                      "pg is being started (waits for it to be started)");
}

/* ---- the monitor --------------------------------------------------------- */

#define MAX_EVENTS 1024

typedef struct {
  uv_loop_t loop;
  recrt_t *rt;
  tsvc_monitor_t *mon;
  tsvc_config_t *cfg;
  uv_timer_t stop_timer;
  /* Changes into healthy, by service and loop time. */
  struct {
    char service[32];
    tsvc_state_t from, to;
    uint64_t at;
  } ch[MAX_EVENTS];
  int nch;
} fx_t;

static void observer(const tsvc_mon_event_t *e, void *data) {
  fx_t *f = data;
  if (e->type != TSVC_MON_EV_CHANGE || f->nch == MAX_EVENTS) return;
  snprintf(f->ch[f->nch].service, sizeof f->ch[0].service, "%s", e->service);
  f->ch[f->nch].from = e->from;
  f->ch[f->nch].to = e->to;
  f->ch[f->nch].at = uv_now(&f->loop);
  f->nch++;
}

/* Only the first nadd services of yaml are added (the others: fx_add). */
static void fx_setup_n(fx_t *f, const char *yaml, bool started, size_t nadd);

static void fx_setup(fx_t *f, const char *yaml, bool started) {
  fx_setup_n(f, yaml, started, (size_t)-1);
}

static void fx_add(fx_t *f, const char *name) {
  const tsvc_service_conf_t *s = tsvc_config_service(f->cfg, name);
  assert_non_null(s);
  assert_int_equal(tsvc_monitor_add(f->mon, s, NULL), 0);
}

static void fx_setup_n(fx_t *f, const char *yaml, bool started, size_t nadd) {
  memset(f, 0, sizeof *f);
  f->cfg = tu_config("test.yaml", yaml, strlen(yaml));
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->rt = recrt_new(&f->loop);
  assert_non_null(f->rt);
  tu_log_capture();
  assert_int_equal(tsvc_monitor_new(&f->loop, &f->rt->base, NULL, &f->mon), 0);
  tsvc_monitor_set_observer(f->mon, observer, f);
  for (size_t i = 0; i < f->cfg->nservices && i < nadd; i++) {
    const tsvc_service_conf_t *s = &f->cfg->services[i];
    assert_int_equal(tsvc_monitor_add(f->mon, s, NULL), 0);
    if (started) {
      recrt_set_running(f->rt, s->name, true);
      assert_int_equal(tsvc_monitor_started(f->mon, s->name), 0);
    }
  }
  uv_timer_init(&f->loop, &f->stop_timer);
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

static void run_for(fx_t *f, uint64_t ms) {
  uv_timer_start(&f->stop_timer, stop_loop, ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void fx_teardown(fx_t *f) {
  tsvc_monitor_close(f->mon);
  uv_close((uv_handle_t *)&f->stop_timer, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(f->mon);
  tsvc_runtime_free(&f->rt->base);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  tsvc_config_free(f->cfg);
  free(tu_log_end()); /* printed with TSVC_TEST_SHOW_LOG */
}

static tsvc_status_t status_of(fx_t *f, const char *name) {
  tsvc_status_t st;
  assert_int_equal(tsvc_monitor_get_status(f->mon, name, &st), 0);
  return st;
}

static tsvc_state_t state_of(fx_t *f, const char *name) {
  tsvc_status_t st = status_of(f, name);
  tsvc_state_t s = st.state;
  tsvc_status_clear(&st);
  return s;
}

/* The loop time of service's first change into to, or 0. */
static uint64_t first_change(const fx_t *f, const char *service, tsvc_state_t to) {
  for (int i = 0; i < f->nch; i++)
    if (!strcmp(f->ch[i].service, service) && f->ch[i].to == to) return f->ch[i].at;
  return 0;
}

/* The loop time of the k-th runtime call op for service (from 0), or 0. */
static uint64_t call_at(const fx_t *f, const char *op, const char *service, int k) {
  for (int i = 0; i < f->rt->ncalls; i++)
    if (!strcmp(f->rt->calls[i].op, op) && !strcmp(f->rt->calls[i].service, service) && k-- == 0)
      return f->rt->calls[i].at;
  return 0;
}

typedef struct {
  int calls, status;
  char msg[256];
  uv_loop_t *stop; /* stopped at the call (that iteration ends first) */
} done_t;

static void done_cb(int status, const char *msg, void *data) {
  done_t *d = data;
  d->calls++;
  d->status = status;
  snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "");
  if (d->stop) uv_stop(d->stop);
}

/* Runs the loop until service is in state, or max_ms of loop time. The
   schedule is the health machine's (backoffs, timeouts of 100-200 ms), but
   a loaded machine may run the loop late: the test asserts what happened,
   in which order, not when. */
static void run_until_state(fx_t *f, const char *service, tsvc_state_t state, uint64_t max_ms) {
  for (uint64_t t = 0; t < max_ms && state_of(f, service) != state; t += 50) run_for(f, 50);
}

/* db is healthy after its grace period's first check (start_interval
   20ms after the start); a check of the `running` probe is answered by the
   recording runtime's inspection. */
#define SVC(name, extra)                                                          \
  "  " name ":\n"                                                                 \
  "    image: local/test\n"                                                       \
  "    healthcheck: {probe: running, interval: 100ms, timeout: 50ms,\n"           \
  "                  start_period: 1s, start_interval: 20ms, retries: 2}\n"       \
  "    restart: {max_restarts: 3, window: 1m, backoff: 100ms, max_backoff: 400ms,\n" \
  "              cooldown: 0s}\n" extra

/* app's start is held while db is not healthy, shown in its status, and
   goes to the runtime once db is. */
static void start_held_until_healthy(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n" SVC("db", "") SVC("app", "    depends_on:\n"
                                              "      db: {condition: service_healthy}\n"),
           false);
  /* db's start takes 150 ms in the runtime: app waits for it, then for
     its first check. */
  f.rt->op_delay_ms = 150;
  done_t da = {0};
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", NULL, NULL), 0);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "app", done_cb, &da), 0);
  run_for(&f, 60);
  assert_int_equal(recrt_count(f.rt, "start", "app"), 0);
  tsvc_status_t s = status_of(&f, "app");
  assert_int_equal(s.state, TSVC_STATE_STARTING);
  assert_int_equal(s.nwaiting, 1);
  assert_string_equal(s.waiting_for[0].service, "db");
  assert_string_equal(s.waiting_for[0].condition, "service_healthy");
  assert_int_equal(s.waiting_for[0].state, TSVC_STATE_STARTING);
  assert_true(s.wait_until_ms > s.since_ms); /* 2m, the default depends_timeout */
  tsvc_status_clear(&s);
  assert_int_equal(da.calls, 0);
  run_for(&f, 600);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_HEALTHY);
  assert_int_equal(recrt_count(f.rt, "start", "app"), 1);
  uint64_t db_healthy = first_change(&f, "db", TSVC_STATE_HEALTHY);
  assert_true(db_healthy > 0);
  assert_true(call_at(&f, "start", "app", 0) >= db_healthy);
  /* The person's start was told once the held start was done. */
  assert_int_equal(da.calls, 1);
  assert_int_equal(da.status, 0);
  s = status_of(&f, "app");
  assert_int_equal(s.nwaiting, 0);
  assert_null(s.waiting_for);
  assert_int_equal(s.wait_until_ms, 0);
  tsvc_status_clear(&s);
  assert_int_equal(tu_log_count("service=app action=wait "), 1);
  assert_int_equal(tu_log_count("reason=\"db is being started (waits for it to be healthy)\""),
                   1);
  assert_int_equal(tu_log_count("service=app action=wait_over"), 1);
  fx_teardown(&f);
}

/* With db never started, app's wait gives up at depends_timeout: a failed
   start, counted and retried on the backoff schedule, each retry waiting
   again, until max_restarts gives up. Nothing reached the runtime. */
static void wait_timeout_is_a_failed_start(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n" SVC("db", "") SVC("app", "    depends_on: [db]\n"
                                              "    depends_timeout: 150ms\n"),
           false);
  /* Stopped at the failed start: the retry, 100 ms later on the backoff
     schedule, must not have begun when the state is read. */
  done_t da = {.stop = &f.loop};
  assert_int_equal(tsvc_monitor_user_start(f.mon, "app", done_cb, &da), 0);
  run_for(&f, 10000);
  da.stop = NULL;
  assert_int_equal(da.calls, 1);
  assert_int_equal(da.status, TSVC_ETIMEDOUT);
  assert_non_null(strstr(da.msg, "gave up waiting for depends_on after 150ms: db is stopped "
                                 "(waits for it to be started) (starting again in "));
  tsvc_status_t s = status_of(&f, "app");
  assert_int_equal(s.state, TSVC_STATE_UNHEALTHY);
  assert_int_equal(s.restarts_in_window, 1);
  assert_non_null(strstr(s.last_error, "gave up waiting for depends_on"));
  tsvc_status_clear(&s);
  /* Retries at 100ms and 200ms backoff (+10% jitter), each waiting 150ms:
     the third failure is at about 150+100+150+200+150 = 750 ms. */
  run_until_state(&f, "app", TSVC_STATE_FAILED, 10000);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_FAILED);
  assert_int_equal(recrt_count(f.rt, NULL, "app"), 0);
  assert_int_equal(tu_log_count("service=app action=start_failed"), 3);
  assert_int_equal(tu_log_count("service=app action=wait "), 3);
  assert_int_equal(tu_log_count("service=app action=give_up"), 1);
  fx_teardown(&f);
}

/* A person's stop of a held start: the start is told it was cancelled,
   the service is stopped, and nothing reaches the runtime even once the
   dependency runs. */
static void stop_cancels_a_held_start(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f, "services:\n" SVC("db", "") SVC("app", "    depends_on: [db]\n"), false);
  done_t da = {0}, ds = {0};
  assert_int_equal(tsvc_monitor_user_start(f.mon, "app", done_cb, &da), 0);
  run_for(&f, 30);
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "app", done_cb, &ds), 0);
  run_for(&f, 30);
  assert_int_equal(da.calls, 1);
  assert_int_equal(da.status, TSVC_ECANCELED);
  assert_non_null(strstr(da.msg, "cancelled while waiting for depends_on: stop requested"));
  assert_int_equal(ds.calls, 1);
  assert_int_equal(ds.status, 0);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_STOPPED);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 300);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_STOPPED);
  assert_int_equal(recrt_count(f.rt, "start", "app"), 0);
  tsvc_status_t s = status_of(&f, "app");
  assert_int_equal(s.nwaiting, 0);
  tsvc_status_clear(&s);
  fx_teardown(&f);
}

/* Added in any order (a reload's steps all begin at once): app, added and
   started before db is even monitored, waits for it; db's removal shows
   again as "not monitored". */
static void dependency_added_later(void **st) {
  (void)st;
  fx_t f;
  fx_setup_n(&f,
             "services:\n" SVC("app", "    depends_on: {db: {condition: service_healthy}}\n")
                 SVC("db", ""),
             false, 1);
  done_t da = {0};
  assert_int_equal(tsvc_monitor_user_start(f.mon, "app", done_cb, &da), 0);
  run_for(&f, 50);
  tsvc_status_t s = status_of(&f, "app");
  assert_int_equal(s.nwaiting, 1);
  assert_string_equal(s.waiting_for[0].service, "db");
  tsvc_status_clear(&s);
  assert_int_equal(tu_log_count("reason=\"db is not monitored (waits for it to be healthy)\""),
                   1);
  fx_add(&f, "db");
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 400);
  assert_int_equal(da.calls, 1);
  assert_int_equal(da.status, 0);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_HEALTHY);
  assert_true(call_at(&f, "start", "app", 0) >= first_change(&f, "db", TSVC_STATE_HEALTHY));
  /* db goes away; a restart of app waits for it again. */
  assert_int_equal(tsvc_monitor_remove(f.mon, "db"), 0);
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "app", NULL, NULL), 0);
  run_for(&f, 50);
  s = status_of(&f, "app");
  assert_int_equal(s.state, TSVC_STATE_RESTARTING);
  assert_int_equal(s.nwaiting, 1);
  assert_int_equal(s.waiting_for[0].state, TSVC_STATE_STOPPED); /* not monitored */
  tsvc_status_clear(&s);
  assert_int_equal(recrt_count(f.rt, "restart", "app"), 0);
  fx_teardown(&f);
}

/* restart: true. Adopted at start, nothing is owed. A restart of db
   restarts app once, after db is healthy again; app2 (restart: false) is
   left alone. */
static void restart_true_follows_the_dependency(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n" SVC("db", "")
               SVC("app", "    depends_on:\n"
                          "      db: {condition: service_healthy, restart: true}\n")
                   SVC("app2", "    depends_on: {db: {condition: service_healthy}}\n"),
           true);
  f.rt->op_delay_ms = 50;
  run_for(&f, 300);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_HEALTHY);
  assert_int_equal(recrt_count(f.rt, "restart", NULL), 0);
  int mark = f.nch;
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "db", NULL, NULL), 0);
  run_for(&f, 600);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 1);
  assert_int_equal(recrt_count(f.rt, "restart", "app"), 1);
  assert_int_equal(recrt_count(f.rt, "restart", "app2"), 0);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_HEALTHY);
  /* After db's return to healthy, not before. */
  uint64_t back = 0;
  for (int i = mark; i < f.nch && !back; i++)
    if (!strcmp(f.ch[i].service, "db") && f.ch[i].to == TSVC_STATE_HEALTHY) back = f.ch[i].at;
  assert_true(back > 0);
  assert_true(call_at(&f, "restart", "app", 0) >= back);
  assert_int_equal(tu_log_count("reason=\"db restarted (depends_on: restart: true)\""), 1);
  tsvc_status_t s = status_of(&f, "app");
  assert_int_equal(s.restarts_total, 1);
  tsvc_status_clear(&s);
  /* db dying on its own (the monitor restarts it) is a restart too. */
  recrt_set_running(f.rt, "db", false);
  run_for(&f, 700);
  assert_int_equal(recrt_count(f.rt, "restart", "db"), 2);
  assert_int_equal(recrt_count(f.rt, "restart", "app"), 2);
  assert_int_equal(recrt_count(f.rt, "restart", "app2"), 0);
  fx_teardown(&f);
}

/* restart: true is owed from the dependent's last real (re)start, not from
   a held one that never went. db is stopped and app's restart held; its
   retry is held again after db was started (a new generation of db), and
   dropped when app's own checks pass before db is healthy (app kept
   running: the held restarts never reached the runtime). Once db is
   healthy, app still owes itself the restart. Whichever way the loop's
   timing goes (the retry let through at db's health, or restart: true
   after it), app is restarted after db is healthy: a regression left it
   running against the old db (test_docker_depends saw it under load). */
static void held_retry_dropped_still_owes_restart(void **st) {
  (void)st;
  fx_t f;
  fx_setup(&f,
           "services:\n"
           "  db:\n"
           "    image: local/test\n"
           "    healthcheck: {probe: running, interval: 100ms, timeout: 50ms,\n"
           "                  start_period: 2s, start_interval: 600ms, retries: 2}\n"
           "    restart: {max_restarts: 9, window: 1m, backoff: 100ms, max_backoff: 100ms,\n"
           "              cooldown: 0s}\n"
           "  app:\n"
           "    image: local/test\n"
           "    healthcheck: {probe: running, interval: 50ms, timeout: 40ms,\n"
           "                  start_period: 0s, retries: 1}\n"
           "    restart: {max_restarts: 9, window: 1m, backoff: 100ms, max_backoff: 100ms,\n"
           "              cooldown: 0s}\n"
           "    depends_timeout: 150ms\n"
           "    depends_on:\n"
           "      db: {condition: service_healthy, restart: true}\n",
           true);
  run_for(&f, 300);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_HEALTHY);
  done_t ds = {0};
  assert_int_equal(tsvc_monitor_user_stop(f.mon, "db", done_cb, &ds), 0);
  run_for(&f, 100);
  assert_int_equal(ds.calls, 1);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_STOPPED);
  /* app's restart is held (db stopped); db is started meanwhile and is
     healthy only at its first check, 600 ms on. app's wait (150 ms) gives
     up; its retries are held again, now behind the new db, until one is
     dropped by app's own passing check (or let through at db's health). */
  assert_int_equal(tsvc_monitor_user_restart(f.mon, "app", NULL, NULL), 0);
  run_for(&f, 30);
  tsvc_status_t s = status_of(&f, "app");
  assert_int_equal(s.nwaiting, 1);
  tsvc_status_clear(&s);
  assert_int_equal(tsvc_monitor_user_start(f.mon, "db", NULL, NULL), 0);
  run_until_state(&f, "db", TSVC_STATE_HEALTHY, 10000);
  assert_int_equal(state_of(&f, "db"), TSVC_STATE_HEALTHY);
  uint64_t healthy = 0;
  for (int i = 0; i < f.nch; i++)
    if (!strcmp(f.ch[i].service, "db") && f.ch[i].to == TSVC_STATE_HEALTHY) healthy = f.ch[i].at;
  run_for(&f, 500);
  assert_int_equal(recrt_count(f.rt, "restart", "app"), 1);
  assert_true(call_at(&f, "restart", "app", 0) >= healthy);
  assert_int_equal(state_of(&f, "app"), TSVC_STATE_HEALTHY);
  fx_teardown(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(documented_conditions_are_the_code),
      cmocka_unit_test(starts_are_counted_once),
      cmocka_unit_test(restart_due_needs_a_new_healthy_dependency),
      cmocka_unit_test(start_held_until_healthy),
      cmocka_unit_test(wait_timeout_is_a_failed_start),
      cmocka_unit_test(stop_cancels_a_held_start),
      cmocka_unit_test(dependency_added_later),
      cmocka_unit_test(restart_true_follows_the_dependency),
      cmocka_unit_test(held_retry_dropped_still_owes_restart),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
