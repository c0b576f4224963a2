/* test_api_unit: the pure parts of the API and of reloads: the JSON shapes,
   the Prometheus text, the request path without a socket, and the diff of
   two configs. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "api/api_json.h"
#include "api/metrics.h"
#include "config/config.h"
#include "log/log.h"
#include "manager/diff.h"
#include "monitor/board.h"
#include "testutil.h"
#include "tsvc.h"

/* The streamed text (GET /metrics) is the rendered one byte for byte,
   whatever the size of the pieces read: services' families, the session
   families for the one service that holds a session, the monitor's. */
static void metrics_stream_matches_render(void **st) {
  (void)st;
  tsvc_board_t *bd;
  assert_int_equal(tsvc_board_new(&bd), 0);
  tsvc_board_set_live(bd, true);
  char name[32];
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, i == 7 ? "q\\\"%d" : "svc-%d", i);
    tsvc_status_t s = {.name = name, .state = (tsvc_state_t)(i % TSVC_STATE__COUNT),
                       .healthy = i % 2, .session = i == 150, .session_connects = 4,
                       .checks_total = (uint64_t)i};
    s.checks_by_result[i % TSVC_RESULT__COUNT] = (uint64_t)i * 1000;
    tsvc_board_slot_t *slot = tsvc_board_add(bd, name);
    assert_non_null(slot);
    tsvc_board_publish(bd, slot, tsvc_snap_new(&s, NULL));
  }
  tsvc_board_note_lateness(bd, 3);
  size_t sizes[] = {1, 7, 4096, 1 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    tsvc_snapshot_t *snap;
    assert_int_equal(tsvc_board_snapshot(bd, &snap), 0);
    tsvc_buf_t want;
    tsvc_buf_init(&want, 64u << 20);
    assert_int_equal(tsvc_metrics_render_snapshot(snap, &want), 0);
    assert_int_equal(tsvc_metrics_render_monitor(tsvc_snapshot_stats(snap), &want), 0);
    assert_non_null(strstr(want.data, "tanuki_svc_session_connects_total{service=\"svc-150\"} 4\n"));
    assert_null(strstr(want.data, "tanuki_svc_session_held{service=\"svc-149\"}"));
    /* Every other size from a packed view, as GET /metrics streams: the
       statuses unpacked one at a time, the same text. */
    if (k % 2) {
      tsvc_snapshot_release(snap);
      assert_int_equal(tsvc_board_snapshot_packed(bd, &snap), 0);
      assert_int_equal(tsvc_snapshot_count(snap), 300);
      assert_null(tsvc_snapshot_status(snap, 0));
    }
    tsvc_metrics_stream_t *ms;
    assert_int_equal(tsvc_metrics_stream_new(snap, NULL, &ms), 0); /* takes snap */
    tsvc_buf_t got;
    tsvc_buf_init(&got, 64u << 20);
    char *piece = malloc(sizes[k]);
    long n;
    while ((n = tsvc_metrics_stream_read(ms, piece, sizes[k])) > 0) {
      assert_true((size_t)n <= sizes[k]);
      assert_int_equal(tsvc_buf_add(&got, piece, (size_t)n), 0);
    }
    assert_int_equal(n, 0);
    assert_int_equal(tsvc_metrics_stream_read(ms, piece, sizes[k]), 0); /* stays at the end */
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    tsvc_metrics_stream_free(ms);
    free(piece);
    tsvc_buf_free(&got);
    tsvc_buf_free(&want);
  }
  /* No services (the monitor is not live): the monitor's families only. */
  tsvc_monitor_stats_t idle = {.checks_in_flight = 2};
  tsvc_metrics_stream_t *ms;
  assert_int_equal(tsvc_metrics_stream_new(NULL, &idle, &ms), 0);
  char buf[8192];
  long n = tsvc_metrics_stream_read(ms, buf, sizeof buf - 1);
  assert_true(n > 0);
  buf[n] = 0;
  assert_null(strstr(buf, "tanuki_svc_up"));
  assert_non_null(strstr(buf, "\ntanuki_svc_monitor_checks_in_flight 2\n"));
  assert_int_equal(tsvc_metrics_stream_read(ms, buf, sizeof buf), 0);
  tsvc_metrics_stream_free(ms);
  tsvc_board_free(bd);
}

static void times(void **st) {
  (void)st;
  char buf[40];
  assert_string_equal(tsvc_api_time_format(0, buf, sizeof buf), "1970-01-01T00:00:00.000Z");
  assert_string_equal(tsvc_api_time_format(1700000000123LL, buf, sizeof buf),
                      "2023-11-14T22:13:20.123Z");
  json_t *v = tsvc_api_json_time(0);
  assert_true(json_is_null(v)); /* never */
  json_decref(v);
}

static tsvc_status_t sample(const char *name) {
  tsvc_status_t s = {0};
  s.name = strdup(name);
  s.state = TSVC_STATE_UNHEALTHY;
  s.enabled = true;
  s.since_ms = 1700000000000LL;
  s.last_check_ms = 1700000001000LL;
  s.consecutive_failures = 3;
  s.retries = 3;
  s.checks_total = 5;
  s.checks_by_result[TSVC_RESULT_OK] = 2;
  s.checks_by_result[TSVC_RESULT_REFUSED] = 3;
  for (int k = 0; k < TSVC_LATENCY_NBUCKETS; k++) s.latency_buckets[k] = k < 3 ? 2 : 5;
  s.latency_sum_s = 0.0125;
  s.restarts_total = 1;
  snprintf(s.last_error, sizeof s.last_error, "auth failed (password=hunter22pw) \xff here");
  s.history = calloc(1, sizeof *s.history);
  s.nhistory = 1;
  s.history[0] = (tsvc_check_record_t){.start_ms = 1700000000900LL, .end_ms = 1700000001000LL,
                                       .result = TSVC_RESULT_REFUSED, .exit_code = -1,
                                       .latency_us = 1500};
  s.history[0].message = strdup("connection refused");
  return s;
}

static void status_json(void **st) {
  (void)st;
  tsvc_log_add_secret("hunter22pw");
  tsvc_status_t s = sample("pg");
  json_t *v = tsvc_api_json_status(&s, true);
  assert_non_null(v);
  assert_string_equal(json_string_value(json_object_get(v, "state")), "unhealthy");
  assert_string_equal(json_string_value(json_object_get(v, "since")), "2023-11-14T22:13:20.000Z");
  assert_true(json_is_null(json_object_get(v, "last_healthy")));
  assert_true(json_is_null(json_object_get(v, "container")));
  assert_true(json_is_null(json_object_get(v, "pid")));
  /* secrets masked, bytes that are not UTF-8 shown as '?' */
  assert_string_equal(json_string_value(json_object_get(v, "last_error")),
                      "auth failed (password=********) ? here");
  assert_int_equal(json_integer_value(json_object_get(json_object_get(v, "checks_by_result"),
                                                      "refused")),
                   3);
  json_t *h = json_array_get(json_object_get(v, "history"), 0);
  assert_string_equal(json_string_value(json_object_get(h, "result")), "refused");
  assert_true(json_is_null(json_object_get(h, "exit_code")));
  assert_float_equal(json_real_value(json_object_get(h, "latency_ms")), 1.5, 1e-9);
  json_decref(v);
  v = tsvc_api_json_status(&s, false);
  assert_null(json_object_get(v, "history"));
  json_decref(v);
  tsvc_status_clear(&s);
  tsvc_log_clear_secrets();
}

static void change_json(void **st) {
  (void)st;
  tsvc_change_t c = {.service = "redis", .from = TSVC_STATE_HEALTHY,
                     .to = TSVC_STATE_UNHEALTHY, .reason = "connection refused",
                     .time_ms = 1700000000000LL, .failures = 3, .retries = 3};
  json_t *v = tsvc_api_json_change(&c);
  char *text = json_dumps(v, JSON_COMPACT);
  assert_string_equal(text, "{\"time\":\"2023-11-14T22:13:20.000Z\",\"service\":\"redis\","
                            "\"from\":\"healthy\",\"to\":\"unhealthy\",\"reason\":"
                            "\"connection refused\",\"failures\":3,\"retries\":3,\"restarts\":0,"
                            "\"max_restarts\":0}");
  free(text);
  json_decref(v);
}

static void metrics_text(void **st) {
  (void)st;
  tsvc_status_t v[2] = {sample("a"), sample("b\"q")};
  v[1].healthy = true;
  v[1].state = TSVC_STATE_HEALTHY;
  tsvc_status_list_t l = {v, 2};
  tsvc_buf_t b;
  tsvc_buf_init(&b, 1 << 20);
  assert_int_equal(tsvc_metrics_render(&l, &b), 0);
  const char *t = b.data;
  assert_non_null(strstr(t, "# TYPE tanuki_svc_up gauge\ntanuki_svc_up{service=\"a\"} 0\n"
                            "tanuki_svc_up{service=\"b\\\"q\"} 1\n"));
  assert_non_null(strstr(t, "tanuki_svc_state{service=\"a\",state=\"unhealthy\"} 1\n"));
  assert_non_null(strstr(t, "tanuki_svc_state{service=\"a\",state=\"healthy\"} 0\n"));
  assert_non_null(strstr(t, "tanuki_svc_checks_total{service=\"a\",result=\"refused\"} 3\n"));
  assert_non_null(strstr(t, "tanuki_svc_check_duration_seconds_bucket{service=\"a\",le=\"0.001\"} 2\n"));
  assert_non_null(strstr(t, "tanuki_svc_check_duration_seconds_bucket{service=\"a\",le=\"+Inf\"} 5\n"));
  assert_non_null(strstr(t, "tanuki_svc_check_duration_seconds_sum{service=\"a\"} 0.012500\n"));
  assert_non_null(strstr(t, "tanuki_svc_check_duration_seconds_count{service=\"a\"} 5\n"));
  assert_non_null(strstr(t, "tanuki_svc_consecutive_failures{service=\"a\"} 3\n"));
  assert_non_null(strstr(t, "tanuki_svc_last_change_timestamp_seconds{service=\"a\"} 1700000000.000\n"));
  /* Each family's HELP and TYPE once, with every series of it together. */
  const char *fams[] = {"tanuki_svc_up", "tanuki_svc_state", "tanuki_svc_checks_total",
                        "tanuki_svc_check_duration_seconds", "tanuki_svc_restarts_total",
                        "tanuki_svc_consecutive_failures",
                        "tanuki_svc_last_change_timestamp_seconds"};
  for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
    char help[128];
    snprintf(help, sizeof help, "# HELP %s ", fams[i]);
    const char *p = strstr(t, help);
    assert_non_null(p);
    assert_null(strstr(p + 1, help));
  }
  tsvc_buf_free(&b);
  tsvc_status_clear(&v[0]);
  tsvc_status_clear(&v[1]);
}

/* /readyz lists the services that are not ready with their last error,
   masked as in GET /v1/services (fuzz_api found it printed as it was). */
static void readyz_masks_last_error(void **st) {
  (void)st;
  tsvc_log_add_secret("hunter22pw");
  tsvc_status_t s = sample("pg");
  json_t *v = tsvc_api_json_not_ready(&s), *full = tsvc_api_json_status(&s, false);
  assert_non_null(v);
  assert_string_equal(json_string_value(json_object_get(v, "name")), "pg");
  assert_string_equal(json_string_value(json_object_get(v, "state")), "unhealthy");
  const char *le = json_string_value(json_object_get(v, "last_error"));
  assert_non_null(le);
  assert_null(strstr(le, "hunter22pw"));
  assert_non_null(strstr(le, "********"));
  assert_string_equal(le, json_string_value(json_object_get(full, "last_error")));
  json_decref(v);
  json_decref(full);
  s.last_error[0] = '\0'; /* none: null */
  v = tsvc_api_json_not_ready(&s);
  assert_true(json_is_null(json_object_get(v, "last_error")));
  json_decref(v);
  tsvc_status_clear(&s);
  tsvc_log_clear_secrets();
}

/* What a request is answered with, for requests the manager has no part
   in (the server has none here). */
static void expect_reply(tsvc_api_t *a, const char *method, const char *url, size_t body,
                         bool tcp, unsigned code, const char *allow, const char *text) {
  char *u = strdup(url);
  tsvc__api_unescape(u);
  tsvc_api_reply_t r;
  assert_int_equal(tsvc__api_respond(a, method, u, body, tcp, &r), 0);
  if (r.code != code) fail_msg("%s %s: %u, expected %u", method, url, r.code, code);
  if (allow) assert_string_equal(r.allow, allow);
  else assert_null(r.allow);
  assert_false(r.events);
  assert_false(r.down);
  if (text) {
    assert_string_equal(r.type, "application/json");
    assert_non_null(r.body);
    assert_int_equal(r.len, strlen(r.body));
    if (!strstr(r.body, text)) fail_msg("%s %s: '%s' not in %s", method, url, text, r.body);
  }
  tsvc_api_reply_free(&r);
  free(u);
}

static void request_path(void **st) {
  (void)st;
  char u[64];
  strcpy(u, "/v1/services/w%65.ird");
  assert_int_equal(tsvc__api_unescape(u), strlen("/v1/services/we.ird"));
  assert_string_equal(u, "/v1/services/we.ird");
  const char *bad[] = {"/v1/services/%zz", "/v1/services/%4", "/a%00b", "%"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    strcpy(u, bad[i]);
    assert_int_equal(tsvc__api_unescape(u), 0);
    assert_string_equal(u, "");
  }

  tsvc_api_t *a = tsvc__api_new(NULL);
  assert_non_null(a);
  expect_reply(a, "GET", "/v1/services/%zz", 0, false, 400, NULL, "percent-encoding");
  expect_reply(a, "GET", "/nope", 0, false, 404, NULL, "\"no such endpoint: /nope\"");
  expect_reply(a, "GET", "/v1/services/x/check/y", 0, false, 404, NULL, "no such endpoint");
  expect_reply(a, "POST", "/v1/services/x/explode", 0, false, 404, NULL, "no such endpoint");
  expect_reply(a, "DELETE", "/v1/services", 0, false, 405, "GET, HEAD", "method DELETE");
  expect_reply(a, "GET", "/v1/services/x/restart", 0, false, 405, "POST", "use POST");
  expect_reply(a, "POST", "/v1/down", 0, true, 403, NULL, "only served on the unix socket");
  expect_reply(a, "POST", "/v1/services/x/check", TSVC_API_MAX_BODY + 1, false, 413, NULL,
               "too large");
  expect_reply(a, "HEAD", "/v1/events", 0, false, 200, NULL, NULL);

  tsvc_api_reply_t r;
  assert_int_equal(tsvc__api_respond(a, "GET", "/v1/events", 0, false, &r), 0);
  assert_true(r.events); /* streamed by the server on its connection */
  assert_null(r.body);
  tsvc_api_stop(a);
}

static tsvc_config_t *load(const char *yaml) {
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t d = {0};
  int rc = tsvc_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &d);
  if (rc) fail_msg("%s", d.n ? d.lines[0] : "load failed");
  tsvc_diag_free(&d);
  return cfg;
}

static unsigned diff_of(const char *a, const char *b) {
  tsvc_config_t *x = load(a), *y = load(b);
  unsigned d = tsvc_service_diff(&x->services[0], &y->services[0]);
  tsvc_config_free(x);
  tsvc_config_free(y);
  return d;
}

#define BASE "services:\n  s:\n    image: redis:7\n    port: 6379\n"

static void service_diff(void **st) {
  (void)st;
  assert_int_equal(diff_of(BASE, BASE), TSVC_DIFF_SAME);
  /* Where a service sits in the file is not a change. */
  assert_int_equal(diff_of(BASE, "\n\n" BASE), TSVC_DIFF_SAME);
  assert_int_equal(diff_of(BASE, "services:\n  s:\n    image: redis:8\n    port: 6379\n"),
                   TSVC_DIFF_SPEC);
  assert_int_equal(diff_of(BASE, BASE "    environment: {A: b}\n"), TSVC_DIFF_SPEC);
  assert_int_equal(diff_of(BASE "    environment: {A: b}\n", BASE "    environment: {A: c}\n"),
                   TSVC_DIFF_SPEC);
  assert_int_equal(diff_of(BASE, BASE "    volumes: [v:/data]\n"), TSVC_DIFF_SPEC);
  assert_int_equal(diff_of(BASE, BASE "    command: [redis-server, --port, \"1\"]\n"),
                   TSVC_DIFF_SPEC);
  assert_int_equal(diff_of(BASE, BASE "    healthcheck: {retries: 7}\n"), TSVC_DIFF_KNOBS);
  assert_int_equal(diff_of(BASE, BASE "    restart: {max_restarts: 9}\n"), TSVC_DIFF_KNOBS);
  assert_int_equal(diff_of(BASE, BASE "    enabled: false\n"), TSVC_DIFF_ENABLED);
  assert_int_equal(diff_of(BASE, BASE "    external: true\n"), TSVC_DIFF_EXTERNAL);
  assert_int_equal(diff_of(BASE, "services:\n  s:\n    image: redis:8\n    port: 6379\n"
                                 "    healthcheck: {interval: 3s}\n"),
                   TSVC_DIFF_SPEC | TSVC_DIFF_KNOBS);
}

static void reloadable(void **st) {
  (void)st;
  tsvc_config_t *a = load(BASE), *b = load("docker: {network: other}\n" BASE),
                *c = load("runtime: process\n" BASE);
  char err[256];
  assert_true(tsvc_config_reloadable(a, a, err, sizeof err));
  assert_false(tsvc_config_reloadable(a, b, err, sizeof err));
  assert_non_null(strstr(err, "docker.network"));
  assert_false(tsvc_config_reloadable(a, c, err, sizeof err));
  assert_non_null(strstr(err, "runtime"));
  tsvc_config_free(a);
  tsvc_config_free(b);
  tsvc_config_free(c);
  /* Where the engine is and how it is reached: a new up, not a reload. */
  a = load(BASE);
  b = load("docker: {probe_via: exec}\n" BASE);
  assert_false(tsvc_config_reloadable(a, b, err, sizeof err));
  assert_non_null(strstr(err, "docker.probe_via changed"));
  tsvc_config_free(b);
  b = load("docker: {publish_address: 10.0.0.5}\n" BASE);
  assert_false(tsvc_config_reloadable(a, b, err, sizeof err));
  assert_non_null(strstr(err, "docker.publish_address changed"));
  tsvc_config_free(a);
  tsvc_config_free(b);
  a = load("docker: {host: \"tcp://e:2376\"}\n" BASE);
  b = load("docker: {host: \"tcp://e:2376\", tls: {verify: false}}\n" BASE);
  assert_false(tsvc_config_reloadable(a, b, err, sizeof err));
  assert_non_null(strstr(err, "docker.tls changed"));
  tsvc_config_free(a);
  tsvc_config_free(b);
}

static void strv_is_an_argv(void **st) {
  (void)st;
  tsvc_config_t *c = load(BASE "    command: [a, b]\n    healthcheck: {command: \"x y\"}\n");
  assert_int_equal(c->services[0].command.n, 2);
  assert_null(c->services[0].command.v[2]);
  assert_null(c->services[0].healthcheck.command.v[c->services[0].healthcheck.command.n]);
  tsvc_config_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(times),          cmocka_unit_test(status_json),
      cmocka_unit_test(change_json),    cmocka_unit_test(metrics_text),
      cmocka_unit_test(metrics_stream_matches_render),
      cmocka_unit_test(service_diff),   cmocka_unit_test(reloadable),
      cmocka_unit_test(strv_is_an_argv),
      cmocka_unit_test(readyz_masks_last_error), cmocka_unit_test(request_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
