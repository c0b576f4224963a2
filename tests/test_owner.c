/*
 * test_owner: one owner of all state (issue 11), through the manager's C
 * API and its HTTP API: calls made on the loop's own thread are refused,
 * not deadlocked; /livez fails while the loop is held (a test hook holds
 * it) while /metrics still answers from snapshots; a check on demand gets
 * the verdict of a check that starts after it was asked; a restart's reply
 * carries the new pid; subscribers hear healthy -> restarting; the
 * monitor's own metrics are there.
 *
 * Real components: the process runtime runs a `sleep` as the service; the
 * other services are external, probed over TCP against sockets of the test
 * (a listener that accepts, and a fake that never answers).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/util.h"
#include "api/api.h"
#include "log/log.h"
#include "manager/manager.h"
#include "servers.h"
#include "testutil.h"
#include "tsvc.h"

/* ---- the monitor under test ------------------------------------------------- */

#define LIVEZ_LAG_MS 300

typedef struct {
  char *dir;
  int peer_fd;      /* a listener: the `web` service, healthy */
  tu_fake_t hang;   /* never answers: the `slow` service, its checks time out */
  tsvc_manager_t *m;
  tsvc_api_t *api;
  char sock[600];
} mon_t;

static void mon_start(mon_t *mon) {
  memset(mon, 0, sizeof *mon);
  mon->dir = tu_mkdtemp("tsvc-owner");
  assert_non_null(mon->dir);
  mon->peer_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(mon->peer_fd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(mon->peer_fd, 128), 0);
  socklen_t len = sizeof sa;
  getsockname(mon->peer_fd, (struct sockaddr *)&sa, &len);
  assert_int_equal(tu_fake_start(&mon->hang, TU_FAKE_HANG, NULL, 0), 0);
  char cfg[2048], path[700];
  snprintf(cfg, sizeof cfg,
           "runtime: process\n"
           "services:\n"
           "  web:\n"
           "    external: true\n"
           "    port: %d\n"
           "    healthcheck: {probe: tcp, interval: 200ms, timeout: 150ms, start_period: 0s}\n"
           "  slow:\n"
           "    external: true\n"
           "    port: %d\n"
           "    healthcheck: {probe: redis, interval: 1s, timeout: 300ms, start_period: 0s,\n"
           "                  retries: 1000}\n"
           "  sleeper:\n"
           "    process: {command: [\"sleep\", \"300\"]}\n"
           "    healthcheck: {probe: running, interval: 200ms, timeout: 150ms,\n"
           "                  start_period: 0s}\n",
           ntohs(sa.sin_port), mon->hang.port);
  snprintf(path, sizeof path, "%s/tanuki.yaml", mon->dir);
  assert_int_equal(tu_write_file(path, cfg), 0);
  char err[2048];
  tsvc_manager_opts_t mo = {.config_path = path, .state_dir = mon->dir};
  int rc = tsvc_manager_new(&mo, &mon->m, err, sizeof err);
  if (rc) fail_msg("manager: %s", err);
  rc = tsvc_manager_start_services(mon->m, err, sizeof err);
  if (rc) fail_msg("start: %s", err);
  snprintf(mon->sock, sizeof mon->sock, "%s/api.sock", mon->dir);
  tsvc_api_opts_t ao = {.manager = mon->m, .socket_path = mon->sock,
                        .livez_lag_ms = LIVEZ_LAG_MS};
  rc = tsvc_api_start(&ao, &mon->api, err, sizeof err);
  if (rc) fail_msg("api: %s", err);
}

static void mon_stop(mon_t *mon) {
  tsvc_api_stop(mon->api);
  tsvc_manager_free(mon->m);
  tu_fake_stop(&mon->hang);
  close(mon->peer_fd);
  tu_rmtree(mon->dir);
  free(mon->dir);
}

static void wait_healthy(mon_t *mon, const char *name, int ms) {
  for (int64_t end = tsvc_mono_ms() + ms; tsvc_mono_ms() < end; tu_sleep_ms(20))
    if (tsvc_manager_is_healthy(mon->m, name)) return;
  fail_msg("%s not healthy within %d ms", name, ms);
}

/* ---- HTTP over the unix socket ------------------------------------------------ */

typedef struct {
  long status;
  char *body;
  size_t len;
} answer_t;

static size_t keep(char *p, size_t size, size_t n, void *data) {
  answer_t *a = data;
  size_t k = size * n;
  char *b = realloc(a->body, a->len + k + 1);
  if (!b) return 0;
  memcpy(b + a->len, p, k);
  a->len += k;
  b[a->len] = '\0';
  a->body = b;
  return k;
}

static answer_t http(mon_t *mon, const char *method, const char *path) {
  answer_t a = {0};
  char url[256];
  snprintf(url, sizeof url, "http://localhost%s", path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, mon->sock);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "POST") == 0) curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &a.status);
  curl_easy_cleanup(c);
  if (!a.body) a.body = strdup("");
  return a;
}

/* ---- the tests ----------------------------------------------------------------- */

/* A subscriber runs on the loop's thread: a call that would wait for that
   thread is refused at once, and readers work there. */
typedef struct {
  tsvc_manager_t *m;
  atomic_int calls;
  atomic_int rc;
  atomic_bool read_ok;
} on_loop_t;

static void on_loop(const tsvc_change_t *c, void *data) {
  on_loop_t *o = data;
  if (atomic_fetch_add(&o->calls, 1) != 0) return;
  char err[256];
  atomic_store(&o->rc, tsvc_manager_restart(o->m, c->service, err, sizeof err));
  tsvc_status_t s;
  atomic_store(&o->read_ok, tsvc_manager_get_status(o->m, c->service, &s) == 0);
  tsvc_status_clear(&s);
}

static void loop_thread_calls_are_refused(void **st) {
  (void)st;
  mon_t mon;
  mon_start(&mon);
  on_loop_t o = {.m = mon.m};
  atomic_init(&o.calls, 0);
  atomic_init(&o.rc, 1);
  atomic_init(&o.read_ok, false);
  int id = tsvc_manager_subscribe(mon.m, on_loop, &o);
  assert_true(id > 0);
  char err[256];
  /* A change: the stop of the sleeper. */
  assert_int_equal(tsvc_manager_stop(mon.m, "sleeper", err, sizeof err), 0);
  assert_true(atomic_load(&o.calls) >= 1);
  assert_int_equal(atomic_load(&o.rc), TSVC_EDEADLK);
  assert_true(atomic_load(&o.read_ok));
  tsvc_manager_unsubscribe(mon.m, id);
  /* The manager works on. */
  assert_int_equal(tsvc_manager_start(mon.m, "sleeper", err, sizeof err), 0);
  mon_stop(&mon);
}

/* /livez fails while the loop is held and answers again after; /metrics
   answers meanwhile (snapshots need no loop) and tells the lag. */
static void livez_fails_while_the_loop_is_held(void **st) {
  (void)st;
  mon_t mon;
  mon_start(&mon);
  wait_healthy(&mon, "web", 5000);
  answer_t a = http(&mon, "GET", "/livez");
  assert_int_equal(a.status, 200);
  free(a.body);
  /* Held for 3 s: /livez must say so well before that (the lag passes the
     300 ms threshold after 400 ms: one 100 ms heartbeat period plus it). */
  assert_int_equal(tsvc_manager_debug_stall(mon.m, 3000), 0);
  int64_t t0 = tsvc_mono_ms();
  bool stalled = false, metrics = false;
  while (tsvc_mono_ms() - t0 < 2500 && !(stalled && metrics)) {
    a = http(&mon, "GET", "/livez");
    if (a.status == 503 && strstr(a.body, "\"status\":\"stalled\"")) stalled = true;
    free(a.body);
    a = http(&mon, "GET", "/metrics");
    double lag = 0;
    const char *p = strstr(a.body, "\ntanuki_svc_monitor_loop_lag_seconds ");
    if (a.status == 200 && p && sscanf(p, "\ntanuki_svc_monitor_loop_lag_seconds %lf", &lag) == 1 &&
        lag > 0.3)
      metrics = true;
    free(a.body);
    tu_sleep_ms(50);
  }
  assert_true(stalled);
  assert_true(metrics);
  /* Released: alive again. */
  bool alive = false;
  for (int64_t end = tsvc_mono_ms() + 10000; !alive && tsvc_mono_ms() < end; tu_sleep_ms(50)) {
    a = http(&mon, "GET", "/livez");
    alive = a.status == 200;
    free(a.body);
  }
  assert_true(alive);
  mon_stop(&mon);
}

/* The verdict of the check asked for: one that started after the request,
   even with a scheduled check in flight; and the reply says it. */
static void check_gets_its_own_verdict(void **st) {
  (void)st;
  mon_t mon;
  mon_start(&mon);
  wait_healthy(&mon, "web", 5000);
  char err[512];
  for (int i = 0; i < 5; i++) {
    tsvc_check_record_t rec;
    int64_t asked = tsvc_wall_ms();
    int rc = tsvc_manager_check(mon.m, "slow", &rec, err, sizeof err);
    if (rc) fail_msg("check: %s", err);
    assert_true(rec.start_ms >= asked);
    assert_int_equal(rec.result, TSVC_RESULT_TIMEOUT);
    free(rec.message);
    free(rec.output);
    free(rec.probe_address);
    tu_sleep_ms(137 * i); /* land at various points of the schedule */
  }
  /* Over HTTP: the verdict, and a status that includes it. */
  int64_t asked = tsvc_wall_ms();
  answer_t a = http(&mon, "POST", "/v1/services/web/check");
  assert_int_equal(a.status, 200);
  json_t *v = json_loads(a.body, 0, NULL);
  assert_non_null(v);
  json_t *check = json_object_get(v, "check");
  assert_string_equal(json_string_value(json_object_get(check, "result")), "ok");
  const char *start = json_string_value(json_object_get(check, "start"));
  assert_non_null(start);
  json_t *status = json_object_get(v, "status");
  assert_string_equal(json_string_value(json_object_get(status, "last_check")),
                      json_string_value(json_object_get(check, "end")));
  json_decref(v);
  free(a.body);
  (void)asked;
  /* Not checked now: 409 naming the state. */
  assert_int_equal(tsvc_manager_stop(mon.m, "sleeper", err, sizeof err), 0);
  a = http(&mon, "POST", "/v1/services/sleeper/check");
  assert_int_equal(a.status, 409);
  assert_non_null(strstr(a.body, "sleeper is not checked now: it is stopped"));
  free(a.body);
  a = http(&mon, "POST", "/v1/services/nope/check");
  assert_int_equal(a.status, 404);
  free(a.body);
  mon_stop(&mon);
}

/* A restart's reply carries the new pid (it used to carry the old one for
   a moment); subscribers hear healthy -> restarting. */
typedef struct {
  pthread_mutex_t mu;
  char seen[4096];
} changes_t;

static void on_change(const tsvc_change_t *c, void *data) {
  changes_t *ch = data;
  pthread_mutex_lock(&ch->mu);
  size_t n = strlen(ch->seen);
  snprintf(ch->seen + n, sizeof ch->seen - n, "%s:%s->%s;", c->service,
           tsvc_state_name(c->from), tsvc_state_name(c->to));
  pthread_mutex_unlock(&ch->mu);
}

/* The process pid runs `sleep` (it may still be setpriv, which the
   process runtime starts it through, for a moment: wait for the exec). */
static bool proc_is_sleep(int pid, int ms) {
  for (int64_t end = tsvc_mono_ms() + ms;; tu_sleep_ms(10)) {
    char path[64], buf[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    FILE *f = fopen(path, "r");
    if (f) {
      if (!fgets(buf, sizeof buf, f)) buf[0] = '\0';
      fclose(f);
      if (strncmp(buf, "sleep", 5) == 0) return true;
    }
    if (!f || tsvc_mono_ms() >= end) return false;
  }
}

static void restart_reply_has_the_new_pid(void **st) {
  (void)st;
  mon_t mon;
  mon_start(&mon);
  wait_healthy(&mon, "sleeper", 10000);
  changes_t ch = {.mu = PTHREAD_MUTEX_INITIALIZER};
  int id = tsvc_manager_subscribe(mon.m, on_change, &ch);
  tsvc_status_t s;
  assert_int_equal(tsvc_manager_get_status(mon.m, "sleeper", &s), 0);
  int old = s.pid;
  tsvc_status_clear(&s);
  assert_true(old > 0);
  for (int i = 0; i < 3; i++) {
    answer_t a = http(&mon, "POST", "/v1/services/sleeper/restart");
    assert_int_equal(a.status, 200);
    json_t *v = json_loads(a.body, 0, NULL);
    json_t *pid = json_object_get(json_object_get(v, "status"), "pid");
    assert_true(json_is_integer(pid));
    int now = (int)json_integer_value(pid);
    if (now == old) fail_msg("restart %d: the reply carries the old pid %d", i, old);
    assert_true(proc_is_sleep(now, 5000)); /* the running one */
    assert_false(proc_is_sleep(old, 0));
    old = now;
    json_decref(v);
    free(a.body);
    wait_healthy(&mon, "sleeper", 10000);
  }
  tsvc_manager_unsubscribe(mon.m, id);
  pthread_mutex_lock(&ch.mu);
  assert_non_null(strstr(ch.seen, "sleeper:healthy->restarting;sleeper:restarting->starting;"));
  pthread_mutex_unlock(&ch.mu);
  mon_stop(&mon);
}

/* A config replaced by a reload is freed once nothing refers to it (it
   was kept until the manager was freed: one config per reload). */
static void replaced_configs_are_freed(void **st) {
  (void)st;
  mon_t mon;
  mon_start(&mon);
  wait_healthy(&mon, "web", 5000);
  char path[700], err[4096];
  snprintf(path, sizeof path, "%s/tanuki.yaml", mon.dir);
  char *text = tu_read_file(path, 0);
  assert_non_null(text);
  int base = tsvc_manager_debug_configs();
  assert_int_equal(base, 1); /* the one in use (the runtime reads it too) */
  for (int i = 0; i < 6; i++) {
    /* A knob that changes: web's interval, 200 ms <-> 250 ms. */
    char *p = strstr(text, i % 2 ? "interval: 250ms" : "interval: 200ms");
    assert_non_null(p);
    memcpy(p, i % 2 ? "interval: 200ms" : "interval: 250ms", 15);
    assert_int_equal(tu_write_file(path, text), 0);
    int rc = tsvc_manager_reload(mon.m, err, sizeof err);
    if (rc) fail_msg("reload %d: %s", i, err);
    assert_non_null(strstr(err, "1 changed"));
    /* Checks in flight hold the config they began with until they end
       (300 ms at most here). */
    int alive = tsvc_manager_debug_configs();
    for (int64_t end = tsvc_mono_ms() + 5000; alive > base && tsvc_mono_ms() < end; tu_sleep_ms(20))
      alive = tsvc_manager_debug_configs();
    assert_int_equal(alive, base);
  }
  free(text);
  mon_stop(&mon);
  assert_int_equal(tsvc_manager_debug_configs(), 0);
}

/* The monitor reports on itself. */
static void metrics_include_the_monitor(void **st) {
  (void)st;
  mon_t mon;
  mon_start(&mon);
  wait_healthy(&mon, "web", 5000);
  tu_sleep_ms(500);
  answer_t a = http(&mon, "GET", "/metrics");
  assert_int_equal(a.status, 200);
  assert_non_null(strstr(a.body, "# TYPE tanuki_svc_monitor_lateness_seconds histogram\n"));
  assert_non_null(strstr(a.body, "tanuki_svc_monitor_lateness_seconds_bucket{le=\"0.001\"} "));
  assert_non_null(strstr(a.body, "tanuki_svc_monitor_lateness_seconds_bucket{le=\"+Inf\"} "));
  unsigned long long count = 0;
  const char *p = strstr(a.body, "\ntanuki_svc_monitor_lateness_seconds_count ");
  assert_non_null(p);
  assert_int_equal(sscanf(p, "\ntanuki_svc_monitor_lateness_seconds_count %llu", &count), 1);
  assert_true(count >= 3); /* web alone is checked every 200 ms */
  assert_non_null(strstr(a.body, "# TYPE tanuki_svc_monitor_loop_lag_seconds gauge\n"));
  p = strstr(a.body, "\ntanuki_svc_monitor_checks_in_flight ");
  int inflight = -1;
  assert_non_null(p);
  assert_int_equal(sscanf(p, "\ntanuki_svc_monitor_checks_in_flight %d", &inflight), 1);
  assert_in_range(inflight, 0, 3);
  free(a.body);
  mon_stop(&mon);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  tsvc_log_setup(stderr, TSVC_LOG_WARN, false);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(loop_thread_calls_are_refused),
      cmocka_unit_test(livez_fails_while_the_loop_is_held),
      cmocka_unit_test(check_gets_its_own_verdict),
      cmocka_unit_test(restart_reply_has_the_new_pid),
      cmocka_unit_test(replaced_configs_are_freed),
      cmocka_unit_test(metrics_include_the_monitor),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return rc;
}
