/*
 * test_isolation: one slow service never delays another. One service's peer
 * accepts and never answers (timeout 5s); 50 other services, checked with
 * the native redis probe against a real redis-server every 200ms, stay on
 * schedule: the lateness of every one of their checks stays under 50 ms,
 * and the stuck check times out within its timeout + 50 ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "monitor/monitor.h"
#include "servers.h"

#define NSVC 50

typedef struct {
  int checks_ok;
  int checks_bad;
  int64_t max_lateness;
  int stuck_results;
  tsvc_result_t stuck_result;
} tally_t;

static void observer(const tsvc_mon_event_t *e, void *data) {
  tally_t *t = data;
  if (e->type != TSVC_MON_EV_CHECK) return;
  if (strcmp(e->service, "stuck") == 0) {
    t->stuck_results++;
    t->stuck_result = e->result;
    return;
  }
  if (e->result == TSVC_RESULT_OK) t->checks_ok++;
  else t->checks_bad++;
  if (e->lateness_ms > t->max_lateness) t->max_lateness = e->lateness_ms;
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
    return -1;
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
                  "                  timeout: 150ms, start_period: 0s}\n",
                  i, redis.port);
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t d = {0};
  int rc = tsvc_config_load_string("isolation.yaml", y.data, y.len, &cfg, &d);
  for (size_t i = 0; i < d.n; i++) fprintf(stderr, "%s\n", d.lines[i]);
  tsvc_diag_free(&d);
  tsvc_buf_free(&y);
  assert_int_equal(rc, 0);

  tsvc_log_setup(stderr, TSVC_LOG_WARN, false);
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_monitor_t *mon;
  assert_int_equal(tsvc_monitor_new(&loop, NULL, NULL, &mon), 0);
  tally_t t = {0};
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
  /* libuv timers have millisecond resolution on a cached clock. */
  assert_in_range(s.history[0].latency_us, 4990000, 5050000);
  tsvc_status_clear(&s);

  /* The others: about 6.5s / 200ms = 30 checks each, all on time. */
  fprintf(stderr, "isolation: %d ok checks, %d failed, max lateness %lld ms\n", t.checks_ok,
          t.checks_bad, (long long)t.max_lateness);
  assert_int_equal(t.checks_bad, 0);
  assert_true(t.checks_ok >= NSVC * 26);
  assert_true(t.max_lateness < 50);
  for (int i = 0; i < NSVC; i++) {
    char name[16];
    snprintf(name, sizeof name, "r%d", i);
    assert_true(tsvc_monitor_is_healthy(mon, name));
  }

  tsvc_monitor_close(mon);
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
