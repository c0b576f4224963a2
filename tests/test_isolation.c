/*
 * test_isolation: one slow service never delays another. One service's peer
 * accepts and never answers (timeout 5s); 50 other services, checked with
 * the native redis probe against a real redis-server every 200ms, stay on
 * schedule: every one of their checks starts less than 50 ms late, beyond
 * what the machine made the loop wait for a CPU (tu_lag_t, testutil.h: on a
 * loaded 2-core machine the loop's thread may wait on a run queue for
 * 100 ms; a loop blocked by the stuck peer would not be on one, and fail),
 * and the stuck check times out within its timeout + 50 ms, + that lag.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "monitor/monitor.h"
#include "servers.h"
#include "testutil.h"

#define NSVC 50

/* The others' timeout: a check that fails is excused only when the loop
   waited for a CPU for most of it (the machine, not the code). */
#define OTHER_TIMEOUT_MS 150

typedef struct {
  tu_lag_t *lag;
  int checks_ok;
  int checks_bad;
  int checks_bad_excused; /* failed while the machine held the loop */
  int64_t max_lateness;   /* as measured */
  int64_t max_excess;     /* lateness minus the machine's lag meanwhile */
  int64_t lag_at_max;
  int stuck_results;
  tsvc_result_t stuck_result;
  uint64_t stuck_end; /* loop time */
} tally_t;

static void observer(const tsvc_mon_event_t *e, void *data) {
  tally_t *t = data;
  if (e->type != TSVC_MON_EV_CHECK) return;
  if (strcmp(e->service, "stuck") == 0) {
    t->stuck_results++;
    t->stuck_result = e->result;
    t->stuck_end = e->now;
    return;
  }
  /* e->now is the end of the check; it started e->lateness_ms after its
     due time, at most OTHER_TIMEOUT_MS before now: the machine's lag over
     [now - lateness - timeout, now] covers everything that delayed it. */
  uint64_t from = e->now - (uint64_t)e->lateness_ms - OTHER_TIMEOUT_MS;
  int64_t lag = tu_lag_between(t->lag, from, e->now);
  if (e->result == TSVC_RESULT_OK) t->checks_ok++;
  else if (lag >= OTHER_TIMEOUT_MS / 2) t->checks_bad_excused++;
  else t->checks_bad++;
  if (e->lateness_ms > t->max_lateness) t->max_lateness = e->lateness_ms;
  if (e->lateness_ms - lag > t->max_excess) {
    t->max_excess = e->lateness_ms - lag;
    t->lag_at_max = lag;
  }
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

/* The servers live in the fixture so that teardown stops them even when
   an assertion fails halfway. */
typedef struct {
  tu_redis_t redis;
  tu_fake_t hang;
} servers_t;

static int setup(void **st) {
  char why[256];
  if (!tu_redis_available(why, sizeof why)) {
    fprintf(stderr, "redis-server is needed: %s\n", why);
    return -1; /* a failed setup fails the test, under CI or not */
  }
  servers_t *s = calloc(1, sizeof *s);
  *st = s;
  if (tu_redis_start(&s->redis, NULL) != 0) return -1;
  if (tu_fake_start(&s->hang, TU_FAKE_HANG, NULL, 0) != 0) return -1;
  return 0;
}

static int teardown(void **st) {
  servers_t *s = *st;
  if (!s) return 0;
  tu_fake_stop(&s->hang);
  tu_redis_stop(&s->redis);
  free(s);
  return 0;
}

static void slow_peer_delays_nobody(void **st) {
  servers_t *srv = *st;
  tu_redis_t redis = srv->redis;
  tu_fake_t *hangp = &srv->hang;

  tsvc_buf_t y;
  tsvc_buf_init(&y, 1 << 20);
  tsvc_buf_addf(&y,
                "services:\n"
                "  stuck:\n"
                "    external: true\n"
                "    healthcheck: {probe: redis, address: \"127.0.0.1:%d\", interval: 10s,\n"
                "                  timeout: 5s, start_period: 1s, start_interval: 100ms}\n",
                hangp->port);
  for (int i = 0; i < NSVC; i++)
    tsvc_buf_addf(&y,
                  "  r%d:\n"
                  "    external: true\n"
                  "    healthcheck: {probe: redis, address: \"127.0.0.1:%d\", interval: 200ms,\n"
                  "                  timeout: %dms, start_period: 0s}\n",
                  i, redis.port, OTHER_TIMEOUT_MS);
  tsvc_config_t *cfg = tu_config("isolation.yaml", y.data, y.len);
  tsvc_buf_free(&y);

  tsvc_log_setup(stderr, TSVC_LOG_WARN, false);
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_monitor_t *mon;
  assert_int_equal(tsvc_monitor_new(&loop, NULL, NULL, &mon), 0);
  tally_t t = {0};
  t.lag = tu_lag_start(&loop);
  assert_non_null(t.lag);
  tsvc_monitor_set_observer(mon, observer, &t);
  for (size_t i = 0; i < cfg->nservices; i++) {
    assert_int_equal(tsvc_monitor_add(mon, &cfg->services[i], NULL), 0);
    assert_int_equal(tsvc_monitor_started(mon, cfg->services[i].name), 0);
  }
  uv_timer_t stop;
  uv_timer_init(&loop, &stop);
  uv_timer_start(&stop, stop_loop, 6500, 0);
  uv_run(&loop, UV_RUN_DEFAULT);

  /* The stuck check: one result, a timeout, after 5s (+ 50 ms at most). */
  tsvc_status_t s;
  assert_int_equal(tsvc_monitor_get_status(mon, "stuck", &s), 0);
  assert_int_equal(t.stuck_results, 1);
  assert_int_equal(t.stuck_result, TSVC_RESULT_TIMEOUT);
  assert_int_equal(s.nhistory, 1);
  /* libuv timers have millisecond resolution on a cached clock; the timer
     may also fire late by what the machine held the loop between its
     deadline (5 s after the start) and the end. */
  int64_t over_ms = s.history[0].latency_us / 1000 - 5000;
  int64_t stuck_lag =
      over_ms > 0 ? tu_lag_between(t.lag, t.stuck_end - (uint64_t)over_ms, t.stuck_end) : 0;
  fprintf(stderr, "isolation: the stuck check timed out after %lld us (machine lag %lld ms)\n",
          (long long)s.history[0].latency_us, (long long)stuck_lag);
  assert_in_range(s.history[0].latency_us, 4990000, 5050000 + (uint64_t)stuck_lag * 1000);
  tsvc_status_clear(&s);

  /* The others: about 6.5s / (200ms + <= 10% jitter) = 30 checks each, all
     on time. A loaded machine delays them all alike: what the loop waited
     for a CPU (tu_lag_total) is time in which no check could start. */
  int64_t lag_total = tu_lag_total(t.lag);
  int64_t want_ok = NSVC * (6500 - 300 - lag_total) / 230;
  fprintf(stderr,
          "isolation: %d ok checks (want >= %lld), %d failed, %d failed while the machine held "
          "the loop; max lateness %lld ms, %lld ms beyond the machine's lag (%lld ms then); the "
          "loop waited %lld ms for a CPU in all\n",
          t.checks_ok, (long long)want_ok, t.checks_bad, t.checks_bad_excused,
          (long long)t.max_lateness, (long long)t.max_excess, (long long)t.lag_at_max,
          (long long)lag_total);
  assert_int_equal(t.checks_bad, 0);
  assert_true(t.checks_ok >= want_ok);
  assert_true(t.max_excess < 50);
  for (int i = 0; i < NSVC; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%d", i);
    assert_true(tsvc_monitor_is_healthy(mon, name));
  }

  tsvc_monitor_close(mon);
  tu_lag_stop(t.lag);
  uv_close((uv_handle_t *)&stop, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(mon);
  assert_int_equal(uv_loop_close(&loop), 0);
  tsvc_config_free(cfg);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(slow_peer_delays_nobody, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
