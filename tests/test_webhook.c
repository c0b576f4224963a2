/*
 * test_webhook: hooks.webhook (src/manager/webhook.c) against a real HTTP
 * receiver (tests/webhook_receiver.py on Debian's /usr/bin/python3, which
 * records every request before it answers): the body and its Content-Type;
 * a 500 and a 429 retried after the backoff; a 400 not retried; a receiver
 * that hangs (each attempt timed out, retried, then the failure logged once
 * and counted); one that is down (connection refused, the URL's password
 * masked in the log); the bounded queue dropping the oldest waiting
 * delivery, counted in the metrics (promtool). Then the ServiceManager:
 * every change of state POSTed to the global and the service's own URL,
 * each body compared field by field with the change, and /metrics over the
 * API. Last, webhooks that never end while 20 services are checked every
 * 100 ms: no check is delayed.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/metrics.h"
#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "manager/manager.h"
#include "manager/webhook.h"
#include "monitor/monitor.h"
#include "servers.h"
#include "testutil.h"
#include "tsvc.h"

#define PYTHON "/usr/bin/python3" /* Debian's: a pyenv shim on PATH took 11 s per start */

/* ---- the receiver ------------------------------------------------------------- */

typedef struct {
  pid_t pid;
  int port;
  char *dir;
  char log[700];
} rx_t;

static void rx_start(rx_t *rx) {
  if (access(PYTHON, X_OK) != 0) tu_missing(PYTHON " (Debian's python3) is needed");
  const char *src = getenv("TSVC_SOURCE_DIR");
  assert_non_null(src);
  char script[1024];
  snprintf(script, sizeof script, "%s/tests/webhook_receiver.py", src);
  rx->dir = tu_mkdtemp("tsvc-webhook");
  assert_non_null(rx->dir);
  snprintf(rx->log, sizeof rx->log, "%s/received.jsonl", rx->dir);
  int p[2];
  assert_int_equal(pipe2(p, O_CLOEXEC), 0);
  rx->pid = fork();
  assert_true(rx->pid >= 0);
  if (rx->pid == 0) {
    dup2(p[1], 1);
    execl(PYTHON, "python3", script, rx->log, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  /* Its port, on the first line: 60 s on a loaded machine. */
  char line[32] = "";
  size_t n = 0;
  struct pollfd pfd = {.fd = p[0], .events = POLLIN};
  while (n < sizeof line - 1 && !memchr(line, '\n', n) && poll(&pfd, 1, 60000) == 1) {
    ssize_t k = read(p[0], line + n, sizeof line - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
    line[n] = '\0';
  }
  close(p[0]);
  rx->port = atoi(line);
  if (rx->port <= 0) fail_msg("the receiver did not start (its stdout: \"%s\")", line);
}

static void rx_stop(rx_t *rx) {
  if (rx->pid > 0) {
    kill(rx->pid, SIGTERM);
    waitpid(rx->pid, NULL, 0);
  }
  rx->pid = 0;
  if (rx->dir) tu_rmtree(rx->dir);
  free(rx->dir);
  rx->dir = NULL;
}

static void url(char *buf, size_t len, const rx_t *rx, const char *path) {
  snprintf(buf, len, "http://127.0.0.1:%d%s", rx->port, path);
}

/* What the receiver got: an array of {"path", "n", "ctype", "t", "body"}. */
static json_t *rx_records(const rx_t *rx) {
  json_t *a = json_array();
  FILE *f = fopen(rx->log, "r");
  if (!f) return a;
  char line[16384];
  while (fgets(line, sizeof line, f)) {
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    if (j) json_array_append_new(a, j);
  }
  fclose(f);
  return a;
}

/* The records of path, in arrival order (a new reference). */
static json_t *rx_of(const rx_t *rx, const char *path) {
  json_t *all = rx_records(rx), *out = json_array();
  size_t i;
  json_t *r;
  json_array_foreach(all, i, r) {
    if (!strcmp(json_string_value(json_object_get(r, "path")), path))
      json_array_append(out, r);
  }
  json_decref(all);
  return out;
}

static double rec_t(json_t *recs, size_t i) {
  return json_real_value(json_object_get(json_array_get(recs, i), "t"));
}

/* ---- the loop ---------------------------------------------------------------- */

static void tick(uv_timer_t *t) { (void)t; }

/* Run the loop until done(w) or ms pass (a ticking timer keeps it
   turning); returns the ms it took. */
static uint64_t run_until(uv_loop_t *loop, tsvc_webhook_t *w,
                          bool (*done)(const tsvc_webhook_stats_t *s, int want), int want,
                          int ms) {
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, tick, 20, 20);
  uint64_t t0 = uv_now(loop);
  tsvc_webhook_stats_t s;
  for (;;) {
    uv_run(loop, UV_RUN_ONCE);
    tsvc_webhook_stats(w, &s);
    if (done(&s, want) || uv_now(loop) - t0 > (uint64_t)ms) break;
  }
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return uv_now(loop) - t0;
}

static bool ended(const tsvc_webhook_stats_t *s, int want) {
  return s->delivered + s->failed >= (uint64_t)want;
}

static bool in_flight(const tsvc_webhook_stats_t *s, int want) {
  return s->in_flight >= want;
}

static void close_and_drain(uv_loop_t *loop, tsvc_webhook_t *w) {
  tsvc_webhook_close(w);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0); /* every handle closed */
}

/* ---- the fixture of the delivery cases ------------------------------------------ */

/* A sender on a loop of its own, counting into counters, the log captured;
   a case starts the receiver (rx_start: it may skip the case, which a
   setup cannot). The teardown stops what a failed case left running. */
typedef struct {
  rx_t rx;
  uv_loop_t loop;
  tsvc_hook_counters_t counters;
  tsvc_webhook_t *w;
} wx_t;

static int wx_setup(void **state) {
  wx_t *x = calloc(1, sizeof *x);
  assert_non_null(x);
  *state = x;
  tu_log_capture();
  assert_int_equal(uv_loop_init(&x->loop), 0);
  char err[256];
  if (tsvc_webhook_new(&x->loop, &x->counters, &x->w, err, sizeof err))
    fail_msg("tsvc_webhook_new: %s", err);
  return 0;
}

/* Post body for svc to path on the receiver; timeout in ms. */
static void wx_post(wx_t *x, const char *path, int timeout, const char *svc, const char *body) {
  char u[200];
  url(u, sizeof u, &x->rx, path);
  assert_int_equal(tsvc_webhook_post(x->w, u, timeout, svc, body), 0);
}

static tsvc_webhook_stats_t wx_stats(wx_t *x) {
  tsvc_webhook_stats_t s;
  tsvc_webhook_stats(x->w, &s);
  return s;
}

/* Close the sender and drain its loop (every handle closed); the log
   captured, which the caller frees. */
static char *wx_end(wx_t *x) {
  close_and_drain(&x->loop, x->w);
  x->w = NULL;
  return tu_log_end();
}

static int wx_teardown(void **state) {
  wx_t *x = *state;
  if (!x) return 0;
  if (x->w) {
    tsvc_webhook_close(x->w);
    uv_run(&x->loop, UV_RUN_DEFAULT);
    uv_loop_close(&x->loop);
  }
  free(tu_log_end());
  rx_stop(&x->rx);
  free(x);
  return 0;
}

/* ---- the delivery ------------------------------------------------------------ */

/* A 200 takes the body as it was given, as JSON; a 500 and a 429 are
   tried again after the first backoff (1 s). */
static void body_and_retries(void **st) {
  wx_t *x = *st;
  rx_start(&x->rx);
  const char *b1 = "{\"service\":\"db\",\"to\":\"healthy\"}";
  const char *b2 = "{\"service\":\"db\",\"to\":\"unhealthy\",\"reason\":\"r\\u00e9fused\"}";
  wx_post(x, "/ok/1", 5000, "db", b1);
  wx_post(x, "/flaky/1", 5000, "db", b2);
  wx_post(x, "/busy/1", 5000, "db", b1);
  run_until(&x->loop, x->w, ended, 3, 30000);
  tsvc_webhook_stats_t s = wx_stats(x);
  assert_int_equal(s.delivered, 3);
  assert_int_equal(s.failed, 0);
  assert_int_equal(s.attempts, 5);
  assert_int_equal(s.queued, 0);
  char *log = wx_end(x);
  assert_null(strstr(log, "webhook failed"));
  free(log);
  tsvc_hook_totals_t t;
  tsvc_hook_totals(&x->counters, &t);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_RUNS], 3);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_FAILURES], 0);
  assert_int_equal(t.v[TSVC_HOOK_COMMAND][TSVC_HOOK_RUNS], 0);

  json_t *ok = rx_of(&x->rx, "/ok/1"), *flaky = rx_of(&x->rx, "/flaky/1"),
         *busy = rx_of(&x->rx, "/busy/1");
  assert_int_equal(json_array_size(ok), 1);
  json_t *r = json_array_get(ok, 0);
  assert_string_equal(json_string_value(json_object_get(r, "ctype")), "application/json");
  assert_string_equal(json_string_value(json_object_get(r, "body")), b1);
  /* The retry: the same body, after the backoff. The receiver stamps each
     request before it answers, and the backoff starts once the answer is
     read: the gap is at least 1 s (less a millisecond of the loop clock's
     rounding; 20 ms allowed). */
  assert_int_equal(json_array_size(flaky), 2);
  assert_int_equal(json_array_size(busy), 2);
  for (size_t i = 0; i < 2; i++) {
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(flaky, i), "body")), b2);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(busy, i), "body")), b1);
  }
  double g1 = rec_t(flaky, 1) - rec_t(flaky, 0), g2 = rec_t(busy, 1) - rec_t(busy, 0);
  fprintf(stderr, "webhook: retry after a 500: %.3f s, after a 429: %.3f s\n", g1, g2);
  assert_true(g1 >= 0.98);
  assert_true(g2 >= 0.98);
  json_decref(ok);
  json_decref(flaky);
  json_decref(busy);
}

/* A 400 is the receiver's final word: no retry, one failure logged. */
static void client_error_not_retried(void **st) {
  wx_t *x = *st;
  rx_start(&x->rx);
  wx_post(x, "/bad/1", 5000, "db", "{}");
  run_until(&x->loop, x->w, ended, 1, 30000);
  tsvc_webhook_stats_t s = wx_stats(x);
  assert_int_equal(s.failed, 1);
  assert_int_equal(s.attempts, 1);
  assert_int_equal(s.queued, 0); /* gone: nothing is left to retry */
  char *log = wx_end(x);
  assert_int_equal(tu_count(log, "webhook failed"), 1);
  assert_non_null(strstr(log, "service=db action=hook hook=webhook"));
  assert_non_null(strstr(log, "attempts=1 result=\"HTTP 400: not now\""));
  free(log);
  json_t *bad = rx_of(&x->rx, "/bad/1");
  assert_int_equal(json_array_size(bad), 1);
  json_decref(bad);
  tsvc_hook_totals_t t;
  tsvc_hook_totals(&x->counters, &t);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_FAILURES], 1);
}

/* The records of path once there are at least n of them, or after ms:
   the receiver writes one when it has read the request, which a loaded
   machine may let it do after the attempt has timed out on our side. */
static json_t *rx_wait(const rx_t *rx, const char *path, size_t n, int ms) {
  int64_t t0 = tsvc_mono_ms();
  for (;;) {
    json_t *got = rx_of(rx, path);
    if (json_array_size(got) >= n || tsvc_mono_ms() - t0 > ms) return got;
    json_decref(got);
    tu_sleep_ms(20);
  }
}

/* A receiver that never answers: each attempt ends at its timeout, is
   tried again after 1 s then 2 s, and the third failure is logged, once.
   The timeout is 300 ms, and 1.5 s in a second run only when the receiver
   did not get every attempt and this loop waited that long for a CPU
   meanwhile: curl, run late, finds its timeout passed before it has sent
   the request (seen once at load 15). */
static void hang_times_out_and_fails(void **st) {
  wx_t *x = *st;
  rx_start(&x->rx);
  int runs = 0, timeout = 300;
  json_t *hang = NULL;
  double rx_lag = 0; /* the receiver's run-queue delay in the last run, s */
  for (;; timeout *= 5) {
    runs++;
    char path[32];
    snprintf(path, sizeof path, "/hang/%d", timeout);
    tsvc_webhook_stats_t s0 = wx_stats(x);
    int64_t rq0 = tu_runq_ns(), rx0 = tu_runq_ns_of_process(x->rx.pid);
    wx_post(x, path, timeout, "db", "{\"a\":1}");
    uint64_t took = run_until(&x->loop, x->w, ended, runs, 60000);
    int64_t lag = rq0 >= 0 ? (tu_runq_ns() - rq0) / 1000000 : 0;
    tsvc_webhook_stats_t s = wx_stats(x);
    assert_int_equal(s.failed - s0.failed, 1);
    assert_int_equal(s.attempts - s0.attempts, TSVC_WEBHOOK_ATTEMPTS);
    /* 3 x the timeout + 1 s + 2 s at least. */
    fprintf(stderr, "webhook: a hanging receiver given up after %llu ms (timeout %d ms; "
            "this loop's run-queue delay %lld ms)\n",
            (unsigned long long)took, timeout, (long long)lag);
    assert_true(took >= 3 * (uint64_t)timeout + 3000 - 20);
    hang = rx_wait(&x->rx, path, 3, 10000);
    int64_t rx1 = tu_runq_ns_of_process(x->rx.pid);
    rx_lag = rx0 >= 0 && rx1 >= rx0 ? (double)(rx1 - rx0) / 1e9 : 0;
    if (json_array_size(hang) == 3) break;
    if (lag < timeout || runs == 2)
      fail_msg("the receiver got %zu of the 3 attempts at %s, this loop's run-queue delay "
               "meanwhile %lld ms", json_array_size(hang), path, (long long)lag);
    json_decref(hang);
  }
  char *log = wx_end(x);
  assert_int_equal(tu_count(log, "webhook failed"), runs);
  char want[80];
  snprintf(want, sizeof want, "attempts=3 result=\"no answer within %d ms\"", timeout);
  assert_non_null(strstr(log, want));
  free(log);
  /* Each gap: what was left of the attempt's timeout after the receiver
     got it, then the backoff from the timeout on: at least the backoff
     (1 s, 2 s; 20 ms allowed as above), and about the timeout more on an
     idle machine. The receiver stamps a request when it has read it: one
     stamped late (it waited for a CPU; seen 0.2 s short at a fiftieth of
     a CPU) shortens the gap after it by as much, never by more than the
     receiver's run-queue delay. */
  double g1 = rec_t(hang, 1) - rec_t(hang, 0), g2 = rec_t(hang, 2) - rec_t(hang, 1);
  fprintf(stderr, "webhook: attempts of a hanging receiver %.3f s, %.3f s apart (its run-queue "
          "delay %.3f s)\n", g1, g2, rx_lag);
  assert_true(g1 >= 0.98 - rx_lag);
  assert_true(g2 >= 1.98 - rx_lag);
  json_decref(hang);
  tsvc_hook_totals_t t;
  tsvc_hook_totals(&x->counters, &t);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_RUNS], runs);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_FAILURES], runs);
}

/* A receiver that is down (connection refused): retried, then logged
   once, the password of the URL masked. */
static void down_refused_and_masked(void **st) {
  wx_t *x = *st;
  int port = tu_free_port(); /* nothing listens there */
  assert_true(port > 0);
  char u[200];
  snprintf(u, sizeof u, "http://hook:s3cret-pw@127.0.0.1:%d/down", port);
  assert_int_equal(tsvc_webhook_post(x->w, u, 2000, "cache", "{}"), 0);
  uint64_t took = run_until(&x->loop, x->w, ended, 1, 60000);
  tsvc_webhook_stats_t s = wx_stats(x);
  assert_int_equal(s.failed, 1);
  assert_int_equal(s.attempts, 3);
  assert_true(took >= 3000 - 20); /* 1 s + 2 s of backoff */
  char *log = wx_end(x);
  assert_int_equal(tu_count(log, "webhook failed"), 1);
  assert_non_null(strstr(log, "service=cache action=hook hook=webhook"));
  assert_non_null(strstr(log, "attempts=3"));
  assert_non_null(strstr(log, "Connection refused"));
  assert_non_null(strstr(log, "url=http://hook:********@127.0.0.1:"));
  assert_null(strstr(log, "s3cret-pw"));
  free(log);
}

/* ---- the queue ---------------------------------------------------------------- */

/* 16 in flight that never end, 240 waiting: 10 more drop the 10 oldest
   waiting, counted, and shown by the metrics (which promtool accepts). */
static void overflow_drops_and_counts(void **st) {
  wx_t *x = *st;
  rx_start(&x->rx);
  for (int i = 0; i < TSVC_WEBHOOK_QUEUE + 10; i++) {
    char body[32];
    snprintf(body, sizeof body, "{\"i\":%d}", i);
    wx_post(x, "/hang/q", 3600 * 1000, "db", body);
  }
  tsvc_webhook_stats_t s = wx_stats(x);
  assert_int_equal(s.posted, TSVC_WEBHOOK_QUEUE + 10);
  assert_int_equal(s.dropped, 10);
  assert_int_equal(s.queued, TSVC_WEBHOOK_QUEUE);
  assert_int_equal(s.in_flight, TSVC_WEBHOOK_IN_FLIGHT);
  /* The 16 in flight reach the receiver: the first 16 posted. */
  run_until(&x->loop, x->w, in_flight, TSVC_WEBHOOK_IN_FLIGHT, 1000);
  for (int tries = 0; tries < 300; tries++) {
    json_t *got = rx_of(&x->rx, "/hang/q");
    size_t n = json_array_size(got);
    json_decref(got);
    if (n >= TSVC_WEBHOOK_IN_FLIGHT) break;
    uv_run(&x->loop, UV_RUN_NOWAIT);
    tu_sleep_ms(100);
  }
  json_t *got = rx_of(&x->rx, "/hang/q");
  assert_int_equal(json_array_size(got), TSVC_WEBHOOK_IN_FLIGHT);
  bool seen[TSVC_WEBHOOK_IN_FLIGHT] = {false};
  size_t i;
  json_t *r;
  json_array_foreach(got, i, r) {
    json_t *b = json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
    json_int_t k = json_integer_value(json_object_get(b, "i"));
    assert_in_range(k, 0, TSVC_WEBHOOK_IN_FLIGHT - 1);
    seen[k] = true;
    json_decref(b);
  }
  for (int k = 0; k < TSVC_WEBHOOK_IN_FLIGHT; k++) assert_true(seen[k]);
  json_decref(got);

  tsvc_hook_totals_t t;
  tsvc_hook_totals(&x->counters, &t);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_DROPS], 10);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_RUNS], TSVC_WEBHOOK_QUEUE + 10);
  tsvc_buf_t b;
  tsvc_buf_init(&b, 1 << 20);
  assert_int_equal(tsvc_metrics_render_hooks(&t, &b), 0);
  assert_non_null(strstr(b.data, "\ntanuki_svc_hook_drops_total{kind=\"webhook\"} 10\n"));
  assert_non_null(strstr(b.data, "\ntanuki_svc_hook_drops_total{kind=\"command\"} 0\n"));
  assert_non_null(strstr(b.data, "\ntanuki_svc_hook_runs_total{kind=\"webhook\"} 266\n"));
  char path[800];
  snprintf(path, sizeof path, "%s/metrics.txt", x->rx.dir);
  assert_int_equal(tu_write_file(path, b.data), 0);
  tsvc_buf_free(&b);
  if (access("/usr/bin/promtool", X_OK) != 0) tu_missing("promtool (Debian's prometheus)");
  char cmd[1000];
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
  assert_int_equal(system(cmd), 0);

  char *log = wx_end(x);
  assert_int_equal(tu_count(log, "webhook dropped: 256 deliveries queued (at most 256); the "
                                 "oldest waiting one"),
                   10);
  assert_non_null(strstr(log, "(10 dropped so far)"));
  assert_non_null(strstr(log, "webhook: 256 deliveries not made: the monitor stops"));
  free(log);
}

/* ---- the manager --------------------------------------------------------------- */

#define MAX_CHANGES 64

typedef struct {
  int64_t time_ms;
  char service[32], from[16], to[16], reason[256];
  int failures, retries, restarts, max_restarts;
} change_t;

typedef struct {
  pthread_mutex_t mu;
  change_t v[MAX_CHANGES];
  int n;
} changes_t;

static void on_change(const tsvc_change_t *c, void *data) {
  changes_t *t = data;
  pthread_mutex_lock(&t->mu);
  if (t->n < MAX_CHANGES) {
    change_t *x = &t->v[t->n++];
    x->time_ms = c->time_ms;
    snprintf(x->service, sizeof x->service, "%s", c->service);
    snprintf(x->from, sizeof x->from, "%s", tsvc_state_name(c->from));
    snprintf(x->to, sizeof x->to, "%s", tsvc_state_name(c->to));
    snprintf(x->reason, sizeof x->reason, "%s", c->reason ? c->reason : "");
    x->failures = c->failures;
    x->retries = c->retries;
    x->restarts = c->restarts;
    x->max_restarts = c->max_restarts;
  }
  pthread_mutex_unlock(&t->mu);
}

/* "2026-12-01T10:20:30.456Z" -> Unix ms; -1 when it is not that. */
static int64_t parse_time(const char *s) {
  struct tm tm;
  memset(&tm, 0, sizeof tm);
  int ms = 0;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

/* The one body among recs that is change c (by its time and states), or
   NULL; *copies says how many records carry it. */
static json_t *find_change(json_t *recs, const change_t *c, int *copies) {
  json_t *found = NULL;
  *copies = 0;
  size_t i;
  json_t *r;
  json_array_foreach(recs, i, r) {
    json_t *b = json_loads(json_string_value(json_object_get(r, "body")), 0, NULL);
    assert_non_null(b);
    if (parse_time(json_string_value(json_object_get(b, "time"))) == c->time_ms &&
        !strcmp(json_string_value(json_object_get(b, "from")), c->from) &&
        !strcmp(json_string_value(json_object_get(b, "to")), c->to)) {
      (*copies)++;
      if (!found) found = json_incref(b);
    }
    json_decref(b);
  }
  return found;
}

/* Field by field: the body against the change the manager's subscribers
   were told of (the same values /v1/events streams). */
static void assert_body_is(json_t *b, const change_t *c) {
  assert_int_equal(json_object_size(b), 9);
  assert_int_equal(parse_time(json_string_value(json_object_get(b, "time"))), c->time_ms);
  assert_string_equal(json_string_value(json_object_get(b, "service")), c->service);
  assert_string_equal(json_string_value(json_object_get(b, "from")), c->from);
  assert_string_equal(json_string_value(json_object_get(b, "to")), c->to);
  assert_string_equal(json_string_value(json_object_get(b, "reason")), c->reason);
  assert_int_equal(json_integer_value(json_object_get(b, "failures")), c->failures);
  assert_int_equal(json_integer_value(json_object_get(b, "retries")), c->retries);
  assert_int_equal(json_integer_value(json_object_get(b, "restarts")), c->restarts);
  assert_int_equal(json_integer_value(json_object_get(b, "max_restarts")), c->max_restarts);
}

static size_t keep(char *p, size_t size, size_t n, void *data) {
  tsvc_buf_t *b = data;
  return tsvc_buf_add(b, p, size * n) == 0 ? size * n : 0;
}

/* GET path over the API's unix socket into b; returns the HTTP status. */
static long api_get(const char *sock, const char *path, tsvc_buf_t *b) {
  CURL *e = curl_easy_init();
  assert_non_null(e);
  char u[256];
  snprintf(u, sizeof u, "http://localhost%s", path);
  curl_easy_setopt(e, CURLOPT_URL, u);
  curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, b);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  long status = 0;
  if (curl_easy_perform(e) == CURLE_OK) curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(e);
  return status;
}

/* Every change of state of a service goes to the global URL and to the
   service's own, as the JSON of GET /v1/events; /metrics counts them. */
static void manager_posts_each_change(void **st) {
  (void)st;
  rx_t rx = {0};
  rx_start(&rx);
  int flap = 0;
  int flap_fd = tu_listen_port(&flap);
  assert_true(flap_fd >= 0);
  char path[1100];
  snprintf(path, sizeof path, "%s/tanuki.yaml", rx.dir);
  char y[2048];
  snprintf(y, sizeof y,
           "runtime: process\n"
           "monitor: {socket: %s/sock}\n"
           "hooks: {webhook: \"http://127.0.0.1:%d/ok/global\"}\n"
           "services:\n"
           "  flap:\n"
           "    external: true\n"
           "    hooks: {webhook: \"http://127.0.0.1:%d/flaky/flap\", webhook_timeout: 10s}\n"
           "    healthcheck: {probe: tcp, address: \"127.0.0.1:%d\", interval: 100ms,\n"
           "                  timeout: 100ms, retries: 1, start_period: 0s}\n",
           rx.dir, rx.port, rx.port, flap);
  assert_int_equal(tu_write_file(path, y), 0);

  tu_log_capture();
  char err[2048];
  tsvc_manager_opts_t o = {.config_path = path, .state_dir = rx.dir};
  tsvc_manager_t *m;
  int rc = tsvc_manager_new(&o, &m, err, sizeof err);
  if (rc) fail_msg("manager: %s", err);
  changes_t *t = calloc(1, sizeof *t);
  assert_non_null(t);
  pthread_mutex_init(&t->mu, NULL);
  tsvc_manager_subscribe(m, on_change, t);
  rc = tsvc_manager_start_services(m, err, sizeof err);
  if (rc) fail_msg("start_services: %s", err);
  /* flap: its port closed and opened again every 500 ms, 4 times. */
  tu_flap_port(&flap_fd, flap, 4, 500);
  tu_sleep_ms(500);
  pthread_mutex_lock(&t->mu);
  int n = t->n;
  pthread_mutex_unlock(&t->mu);
  fprintf(stderr, "webhook: %d changes of flap\n", n);
  assert_true(n >= 3);
  /* Every change at both URLs: flap's own got a 500 first (retried after
     1 s). 30 s on a loaded machine; it ends as soon as they are in. */
  json_t *global = NULL, *own = NULL;
  for (int tries = 0; tries < 300; tries++) {
    json_decref(global);
    json_decref(own);
    global = rx_of(&rx, "/ok/global");
    own = rx_of(&rx, "/flaky/flap");
    pthread_mutex_lock(&t->mu);
    n = t->n;
    pthread_mutex_unlock(&t->mu);
    if (json_array_size(global) >= (size_t)n && json_array_size(own) >= (size_t)n + 1) break;
    tu_sleep_ms(100);
  }
  /* /metrics over the API. flap's port stays as it is from here on: no
     change comes between the scrape and the count below. */
  tsvc_api_t *api = NULL;
  char sock[900];
  snprintf(sock, sizeof sock, "%s/api.sock", rx.dir);
  tsvc_api_opts_t ao = {.manager = m, .socket_path = sock};
  rc = tsvc_api_start(&ao, &api, err, sizeof err);
  if (rc) fail_msg("api: %s", err);
  tsvc_buf_t mb;
  tsvc_buf_init(&mb, 16u << 20);
  assert_int_equal(api_get(sock, "/metrics", &mb), 200);
  tsvc_api_stop(api);
  pthread_mutex_lock(&t->mu);
  n = t->n;
  pthread_mutex_unlock(&t->mu);
  tsvc_manager_free(m);
  char *log = tu_log_end();
  if (flap_fd >= 0) close(flap_fd);

  changes_t *c = t;
  assert_int_equal(json_array_size(global), (size_t)n);
  assert_int_equal(json_array_size(own), (size_t)n + 1);
  int twice = 0; /* flap's own: the change that got the 500 came again */
  for (int i = 0; i < n; i++) {
    int copies;
    json_t *b = find_change(global, &c->v[i], &copies);
    if (!b) fail_msg("change %d (%s -> %s) not posted to the global URL", i, c->v[i].from,
                     c->v[i].to);
    assert_int_equal(copies, 1);
    assert_body_is(b, &c->v[i]);
    json_decref(b);
    b = find_change(own, &c->v[i], &copies);
    if (!b) fail_msg("change %d (%s -> %s) not posted to flap's URL", i, c->v[i].from,
                     c->v[i].to);
    assert_in_range(copies, 1, 2);
    if (copies == 2) twice++;
    assert_body_is(b, &c->v[i]);
    json_decref(b);
  }
  assert_int_equal(twice, 1);
  size_t i;
  json_t *r;
  json_array_foreach(global, i, r)
    assert_string_equal(json_string_value(json_object_get(r, "ctype")), "application/json");
  json_decref(global);
  json_decref(own);
  assert_null(strstr(log, "webhook failed"));
  free(log);

  /* /metrics: a run for each change at each URL, none failed, none
     dropped; promtool accepts the whole exposition. */
  char want[128];
  snprintf(want, sizeof want, "\ntanuki_svc_hook_runs_total{kind=\"webhook\"} %d\n", 2 * n);
  if (!strstr(mb.data, want)) fail_msg("/metrics lacks \"%s\":\n%s", want + 1, mb.data);
  assert_non_null(strstr(mb.data, "\ntanuki_svc_hook_failures_total{kind=\"webhook\"} 0\n"));
  assert_non_null(strstr(mb.data, "\ntanuki_svc_hook_drops_total{kind=\"webhook\"} 0\n"));
  assert_non_null(strstr(mb.data, "\ntanuki_svc_hook_runs_total{kind=\"command\"} 0\n"));
  snprintf(path, sizeof path, "%s/metrics.txt", rx.dir);
  assert_int_equal(tu_write_file(path, mb.data), 0);
  tsvc_buf_free(&mb);
  if (access("/usr/bin/promtool", X_OK) != 0) tu_missing("promtool (Debian's prometheus)");
  char cmd[1300];
  snprintf(cmd, sizeof cmd, "promtool check metrics < '%s'", path);
  assert_int_equal(system(cmd), 0);
  pthread_mutex_destroy(&t->mu);
  free(t);
  rx_stop(&rx);
}

/* ---- hooks that hang delay no check --------------------------------------------- */

#define NSTEADY 20
#define STEADY_TIMEOUT_MS 80

typedef struct {
  tsvc_webhook_t *w;
  char url[200];
  tu_lag_t *lag;
  int64_t lag_total;
  int changes, checks, late;
  int64_t max_lateness, max_excess, lag_at_max;
} hang_t;

static void hang_observer(const tsvc_mon_event_t *e, void *data) {
  hang_t *h = data;
  if (e->type == TSVC_MON_EV_CHANGE && !strcmp(e->service, "flap")) {
    h->changes++;
    /* As the manager does: queued, never waited for. */
    tsvc_webhook_post(h->w, h->url, 3600 * 1000, e->service, "{\"service\":\"flap\"}");
    return;
  }
  if (e->type != TSVC_MON_EV_CHECK || !strcmp(e->service, "flap")) return;
  /* e->now is the check's end; it started lateness_ms after its due time,
     at most its timeout before now: the machine's lag over that span is
     everything the machine (not the code) did to delay it. */
  uint64_t from = e->now - (uint64_t)e->lateness_ms - STEADY_TIMEOUT_MS;
  int64_t lag = tu_lag_between(h->lag, from, e->now);
  h->checks++;
  if (e->lateness_ms > h->max_lateness) h->max_lateness = e->lateness_ms;
  if (e->lateness_ms - lag > h->max_excess) {
    h->max_excess = e->lateness_ms - lag;
    h->lag_at_max = lag;
  }
}

typedef struct {
  int fd, port, toggles;
} flap_t;

static void toggle(uv_timer_t *t) {
  flap_t *f = t->data;
  if (f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
  } else {
    f->fd = tu_listen_port(&f->port);
  }
  if (++f->toggles == 12) uv_stop(t->loop);
}

static void hanging_webhooks_delay_no_check(void **st) {
  (void)st;
  rx_t rx = {0};
  rx_start(&rx);
  tu_fake_t up;
  assert_int_equal(tu_fake_start(&up, TU_FAKE_CLOSE, NULL, 0), 0);
  flap_t f = {.fd = -1};
  f.fd = tu_listen_port(&f.port);
  assert_true(f.fd >= 0);
  tsvc_buf_t y;
  tsvc_buf_init(&y, 1 << 20);
  tsvc_buf_addf(&y,
                "services:\n"
                "  flap:\n"
                "    external: true\n"
                "    healthcheck: {probe: tcp, address: \"127.0.0.1:%d\", interval: 100ms,\n"
                "                  timeout: 80ms, retries: 1, start_period: 0s}\n",
                f.port);
  for (int i = 0; i < NSTEADY; i++)
    tsvc_buf_addf(&y,
                  "  s%d:\n"
                  "    external: true\n"
                  "    healthcheck: {probe: tcp, address: \"127.0.0.1:%d\", interval: 100ms,\n"
                  "                  timeout: %dms, start_period: 0s}\n",
                  i, up.port, STEADY_TIMEOUT_MS);
  tsvc_config_t *cfg = tu_config("hang.yaml", y.data, y.len);
  tsvc_buf_free(&y);

  tsvc_log_setup(stderr, TSVC_LOG_ERROR, false);
  uv_loop_t loop;
  uv_loop_init(&loop);
  hang_t h = {0};
  char err[256];
  assert_int_equal(tsvc_webhook_new(&loop, NULL, &h.w, err, sizeof err), 0);
  url(h.url, sizeof h.url, &rx, "/hang/flap");
  h.lag = tu_lag_start(&loop);
  assert_non_null(h.lag);
  tsvc_monitor_t *mon;
  assert_int_equal(tsvc_monitor_new(&loop, NULL, NULL, &mon), 0);
  tsvc_monitor_set_observer(mon, hang_observer, &h);
  for (size_t i = 0; i < cfg->nservices; i++) {
    assert_int_equal(tsvc_monitor_add(mon, &cfg->services[i], NULL), 0);
    assert_int_equal(tsvc_monitor_started(mon, cfg->services[i].name), 0);
  }
  /* flap's port closed and opened every 300 ms, 12 times (3.6 s). */
  uv_timer_t tt;
  uv_timer_init(&loop, &tt);
  tt.data = &f;
  uv_timer_start(&tt, toggle, 300, 300);
  uv_run(&loop, UV_RUN_DEFAULT);
  tsvc_webhook_stats_t s;
  tsvc_webhook_stats(h.w, &s);

  h.lag_total = tu_lag_total(h.lag);
  tsvc_monitor_close(mon);
  tu_lag_stop(h.lag);
  uv_close((uv_handle_t *)&tt, NULL);
  tsvc_webhook_close(h.w);
  uv_run(&loop, UV_RUN_DEFAULT);
  tsvc_monitor_free(mon);
  assert_int_equal(uv_loop_close(&loop), 0);
  tsvc_config_free(cfg);
  if (f.fd >= 0) close(f.fd);
  tu_fake_stop(&up);

  fprintf(stderr,
          "webhook: %d changes, %d webhooks in flight that never end; %d checks, max lateness "
          "%lld ms, %lld ms beyond the machine's lag (%lld ms then)\n",
          h.changes, s.in_flight, h.checks, (long long)h.max_lateness, (long long)h.max_excess,
          (long long)h.lag_at_max);
  assert_true(h.changes >= 6);
  /* Each change's webhook hangs in flight (fewer than 16 at once). */
  assert_int_equal(s.in_flight, h.changes < TSVC_WEBHOOK_IN_FLIGHT ? h.changes
                                                                    : TSVC_WEBHOOK_IN_FLIGHT);
  assert_int_equal(s.delivered + s.failed, 0);
  /* ~3.6 s x 20 services x 10/s: 720 on an idle machine; at least half,
     less the time the loop waited for a CPU. */
  int64_t lag_total = h.lag_total;
  fprintf(stderr, "webhook: the loop waited %lld ms for a CPU in all\n", (long long)lag_total);
  assert_true(h.checks >= NSTEADY * (3600 - 300 - lag_total) / 200);
  /* TU_NEVER_HELD_MS (testutil.h, as test_hooks' hanging hooks), beyond
     what the machine made the loop wait for a CPU around each check. A
     webhook waited for would hold the loop for an hour. */
  assert_true(h.max_excess < TU_NEVER_HELD_MS);
  rx_stop(&rx);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(body_and_retries, wx_setup, wx_teardown),
      cmocka_unit_test_setup_teardown(client_error_not_retried, wx_setup, wx_teardown),
      cmocka_unit_test_setup_teardown(hang_times_out_and_fails, wx_setup, wx_teardown),
      cmocka_unit_test_setup_teardown(down_refused_and_masked, wx_setup, wx_teardown),
      cmocka_unit_test_setup_teardown(overflow_drops_and_counts, wx_setup, wx_teardown),
      cmocka_unit_test(manager_posts_each_change),
      cmocka_unit_test(hanging_webhooks_delay_no_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
