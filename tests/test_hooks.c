/*
 * test_hooks: hooks.on_change. The runner (src/manager/hooks.c) on a real
 * loop: the environment a hook sees, its output in the log (bounded), its
 * timeout killing its whole process group, the bounded queue; then the
 * ServiceManager with hooks that never end while services flap and others
 * are checked every 100 ms: the monitor's own lateness histogram shows no
 * check delayed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "log/log.h"
#include "manager/hooks.h"
#include "servers.h"
#include "testutil.h"
#include "tsvc.h"

/* A hooks conf running `sh -c script`, with a timeout. */
static tsvc_hooks_conf_t sh_hook(const char *script, tsvc_ms_t timeout) {
  static char *argv[4];
  argv[0] = "/bin/sh";
  argv[1] = "-c";
  argv[2] = (char *)script;
  argv[3] = NULL;
  return (tsvc_hooks_conf_t){.on_change = {argv, 3}, .timeout = timeout};
}

/* Run the loop until no hook runs or ms pass; returns the ms it took. */
static uint64_t run_until_idle(uv_loop_t *loop, tsvc_hooks_t *h, int ms) {
  uint64_t t0 = uv_now(loop);
  tsvc_hooks_stats_t st;
  for (;;) {
    uv_run(loop, UV_RUN_ONCE);
    tsvc_hooks_stats(h, &st);
    if (st.running == 0 || uv_now(loop) - t0 > (uint64_t)ms) break;
  }
  return uv_now(loop) - t0;
}

static void close_and_drain(uv_loop_t *loop, tsvc_hooks_t *h) {
  tsvc_hooks_close(h);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0); /* every handle closed */
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* The variables, the output in one log line, exit status. */
static void environment_and_output(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-hooks");
  assert_non_null(dir);
  char script[1024];
  snprintf(script, sizeof script,
           "env | grep '^TSVC_' | sort > '%s/env'; echo to-stdout; echo to-stderr >&2; exit 3",
           dir);
  tsvc_hooks_conf_t conf = sh_hook(script, 5000);
  tu_log_capture();
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_hooks_t *h;
  assert_int_equal(tsvc_hooks_new(&loop, &h), 0);
  tsvc_hook_counters_t counters = {0};
  tsvc_hooks_set_counters(h, &counters);
  /* 2026-12-01T10:20:30.456Z */
  assert_int_equal(tsvc_hooks_on_change(h, &conf, "db", TSVC_STATE_HEALTHY,
                                        TSVC_STATE_UNHEALTHY, "3 failures: refused",
                                        INT64_C(1796120430456)),
                   0);
  run_until_idle(&loop, h, 5000);
  tsvc_hooks_stats_t s;
  tsvc_hooks_stats(h, &s);
  assert_int_equal(s.run, 1);
  assert_int_equal(s.failed, 1); /* exit 3 */
  tsvc_hook_totals_t t;
  tsvc_hook_totals(&counters, &t);
  assert_int_equal(t.v[TSVC_HOOK_COMMAND][TSVC_HOOK_RUNS], 1);
  assert_int_equal(t.v[TSVC_HOOK_COMMAND][TSVC_HOOK_FAILURES], 1);
  close_and_drain(&loop, h);
  char *log = tu_log_end();
  char path[1100];
  snprintf(path, sizeof path, "%s/env", dir);
  char *env = read_file(path);
  assert_non_null(env);
  assert_string_equal(env, "TSVC_PREV=healthy\n"
                           "TSVC_REASON=3 failures: refused\n"
                           "TSVC_SERVICE=db\n"
                           "TSVC_STATE=unhealthy\n"
                           "TSVC_TIME=2026-12-01T10:20:30.456Z\n");
  assert_non_null(strstr(log, "level=warn service=db action=hook hook=on_change result=\"exited 3 "
                              "after "));
  assert_non_null(strstr(log, "output=\"to-stdout\\nto-stderr\""));
  assert_null(strstr(log, "output_dropped_bytes"));
  free(log);
  tu_rmtree(dir);
  free(dir);
}

/* A hook past its timeout is killed with everything it started (its
   process group), and says so. */
static void timeout_kills_the_group(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-hooks");
  assert_non_null(dir);
  char script[1024];
  snprintf(script, sizeof script, "sleep 1000 & echo $! > '%s/child'; wait", dir);
  tsvc_hooks_conf_t conf = sh_hook(script, 300);
  tu_log_capture();
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_hooks_t *h;
  assert_int_equal(tsvc_hooks_new(&loop, &h), 0);
  assert_int_equal(tsvc_hooks_on_change(h, &conf, "db", TSVC_STATE_STARTING,
                                        TSVC_STATE_HEALTHY, "ok", 0),
                   0);
  uint64_t took = run_until_idle(&loop, h, 10000);
  /* 300 ms, plus a loaded machine's slack for the kill to be reaped. */
  assert_in_range(took, 300, 2000);
  tsvc_hooks_stats_t s;
  tsvc_hooks_stats(h, &s);
  assert_int_equal(s.timed_out, 1);
  close_and_drain(&loop, h);
  char *log = tu_log_end();
  assert_non_null(strstr(log, "service=db action=hook hook=on_change result=\"timed out after "));
  char path[1100];
  snprintf(path, sizeof path, "%s/child", dir);
  char *pid_s = read_file(path);
  assert_non_null(pid_s);
  pid_t child = (pid_t)strtol(pid_s, NULL, 10);
  assert_true(child > 0);
  /* The background sleep went with its group (not our child: reaped by
     init; give it a moment on a loaded machine). */
  int alive = 1;
  for (int i = 0; i < 100 && (alive = kill(child, 0) == 0); i++) tu_sleep_ms(20);
  assert_false(alive);
  free(log);
  tu_rmtree(dir);
  free(dir);
}

/* Output beyond 1 KiB is counted, not kept. */
static void output_is_bounded(void **st) {
  (void)st;
  tsvc_hooks_conf_t conf = sh_hook("head -c 100000 /dev/zero | tr '\\000' a", 5000);
  tu_log_capture();
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_hooks_t *h;
  assert_int_equal(tsvc_hooks_new(&loop, &h), 0);
  assert_int_equal(tsvc_hooks_on_change(h, &conf, "db", TSVC_STATE_STARTING,
                                        TSVC_STATE_HEALTHY, "ok", 0),
                   0);
  run_until_idle(&loop, h, 10000);
  close_and_drain(&loop, h);
  char *log = tu_log_end();
  const char *o = strstr(log, "output=");
  assert_non_null(o);
  o += strlen("output=");
  if (*o == '"') o++; /* quoted only when it needs to be */
  size_t n = strspn(o, "a");
  assert_int_equal(n, TSVC_HOOKS_OUTPUT - 1);
  char want[64];
  snprintf(want, sizeof want, "output_dropped_bytes=%d", 100000 - (TSVC_HOOKS_OUTPUT - 1));
  assert_non_null(strstr(log, want));
  assert_non_null(strstr(log, "level=info service=db action=hook hook=on_change result=\"exited 0"));
  free(log);
}

/* At most TSVC_HOOKS_RUNNING run and TSVC_HOOKS_QUEUED wait; more are
   dropped and counted. Closing kills what runs; the loop ends empty. */
static void queue_is_bounded(void **st) {
  (void)st;
  tsvc_hooks_conf_t conf = sh_hook("sleep 1000", 3600 * 1000);
  tu_log_capture();
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_hooks_t *h;
  assert_int_equal(tsvc_hooks_new(&loop, &h), 0);
  tsvc_hook_counters_t counters = {0}; /* /metrics' (the manager's) */
  tsvc_hooks_set_counters(h, &counters);
  int dropped = 0;
  for (int i = 0; i < TSVC_HOOKS_RUNNING + TSVC_HOOKS_QUEUED + 5; i++) {
    int rc = tsvc_hooks_on_change(h, &conf, "db", TSVC_STATE_STARTING, TSVC_STATE_HEALTHY, "ok",
                                  0);
    if (rc == TSVC_EBUSY) dropped++;
    else assert_int_equal(rc, 0);
  }
  assert_int_equal(dropped, 5);
  tsvc_hooks_stats_t s;
  tsvc_hooks_stats(h, &s);
  assert_int_equal(s.running, TSVC_HOOKS_RUNNING);
  assert_int_equal(s.run, TSVC_HOOKS_RUNNING);
  assert_int_equal(s.dropped, 5);
  tsvc_hook_totals_t t;
  tsvc_hook_totals(&counters, &t);
  assert_int_equal(t.v[TSVC_HOOK_COMMAND][TSVC_HOOK_DROPS], 5);
  assert_int_equal(t.v[TSVC_HOOK_COMMAND][TSVC_HOOK_RUNS], TSVC_HOOKS_RUNNING);
  assert_int_equal(t.v[TSVC_HOOK_COMMAND][TSVC_HOOK_FAILURES], 0);
  assert_int_equal(t.v[TSVC_HOOK_WEBHOOK][TSVC_HOOK_DROPS], 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  close_and_drain(&loop, h);
  char *log = tu_log_end();
  assert_non_null(strstr(log, "hook on_change dropped: 8 hooks running and 64 waiting (5 dropped "
                              "so far)"));
  free(log);
}

/* ---- the manager ------------------------------------------------------------ */

typedef struct {
  pthread_mutex_t mu;
  int changes;
  long loop_tid;     /* the manager's loop thread: subscribers run there */
  int64_t loop_runq; /* its run-queue delay (ns) at the first change */
} tally_t;

static void on_change(const tsvc_change_t *c, void *data) {
  tally_t *t = data;
  pthread_mutex_lock(&t->mu);
  if (!t->loop_tid) {
    t->loop_tid = tu_gettid();
    t->loop_runq = tu_runq_ns();
  }
  if (!strcmp(c->service, "flap")) t->changes++;
  pthread_mutex_unlock(&t->mu);
}

#define NSTEADY 20

/* Hooks that never end (a global one and flap's own) while flap changes
   state every 300 ms, and 20 services are checked every 100 ms: every
   check starts on time by the monitor's own lateness histogram. */
static void hanging_hooks_delay_no_check(void **st) {
  (void)st;
  int up = 0, flap = 0;
  int up_fd = tu_listen_port(&up);
  assert_true(up_fd >= 0);
  int flap_fd = tu_listen_port(&flap);
  assert_true(flap_fd >= 0);
  char *dir = tu_mkdtemp("tsvc-hooks");
  assert_non_null(dir);
  tsvc_buf_t y;
  tsvc_buf_init(&y, 1 << 20);
  tsvc_buf_addf(&y,
                "runtime: process\n"
                "monitor: {socket: %s/sock}\n"
                "hooks: {on_change: \"%s\", timeout: 1h}\n"
                "services:\n"
                "  flap:\n"
                "    external: true\n"
                "    hooks: {on_change: [%s], timeout: 1h}\n"
                "    healthcheck: {probe: tcp, address: \"127.0.0.1:%d\", interval: 100ms,\n"
                "                  timeout: 100ms, retries: 1, start_period: 0s}\n",
                dir, "sleep 1000", "sleep, \"1000\"", flap);
  for (int i = 0; i < NSTEADY; i++)
    tsvc_buf_addf(&y,
                  "  s%d:\n"
                  "    external: true\n"
                  "    healthcheck: {probe: tcp, address: \"127.0.0.1:%d\", interval: 100ms,\n"
                  "                  timeout: 100ms, start_period: 0s}\n",
                  i, up);
  char path[1100];
  snprintf(path, sizeof path, "%s/tanuki.yaml", dir);
  assert_int_equal(tu_write_file(path, y.data), 0);
  tsvc_buf_free(&y);

  tu_log_capture();
  char err[2048];
  tsvc_manager_opts_t o = {.config_path = path};
  tsvc_manager_t *m;
  int rc = tsvc_manager_new(&o, &m, err, sizeof err);
  if (rc) fail_msg("manager: %s", err);
  tally_t t = {.changes = 0};
  pthread_mutex_init(&t.mu, NULL);
  tsvc_manager_subscribe(m, on_change, &t);
  rc = tsvc_manager_start_services(m, err, sizeof err);
  if (rc) fail_msg("start_services: %s", err);
  /* flap: its port closed and opened again every 300 ms, 10 times. */
  tu_flap_port(&flap_fd, flap, 10, 300);
  tu_sleep_ms(300);
  tsvc_snapshot_t *snap;
  assert_int_equal(tsvc_manager_snapshot(m, &snap), 0);
  tsvc_monitor_stats_t ms = *tsvc_snapshot_stats(snap);
  tsvc_snapshot_release(snap);
  /* What the machine held the loop's thread back meanwhile (read before
     the thread ends with the manager). */
  pthread_mutex_lock(&t.mu);
  long tid = t.loop_tid;
  int64_t runq0 = t.loop_runq;
  pthread_mutex_unlock(&t.mu);
  assert_true(tid > 0);
  int64_t runq1 = tu_runq_ns_of(tid);
  int64_t lag_ms = runq0 >= 0 && runq1 >= runq0 ? (runq1 - runq0 + 999999) / 1000000 : 0;
  tsvc_manager_free(m);
  char *log = tu_log_end();
  if (flap_fd >= 0) close(flap_fd);
  close(up_fd);
  pthread_mutex_lock(&t.mu);
  int changes = t.changes;
  pthread_mutex_unlock(&t.mu);
  pthread_mutex_destroy(&t.mu);

  /* flap changed state about 10 times: each began two hooks that never
     end (8 run at once, the rest wait). */
  fprintf(stderr, "hooks: %d changes of flap\n", changes);
  assert_true(changes >= 6);
  /* Lateness from the monitor's histogram: no check may start later than
     TU_NEVER_HELD_MS (testutil.h) beyond what the machine held the loop's
     thread back. A hook waited for would hold the loop for its whole run
     (1000 s here, or its 1h timeout): every check after the first change
     would be that late. test_webhook's equivalent sees each check and
     allows the lag around it; the manager's loop is not ours, so the
     allowance here is its thread's run-queue delay over the whole run
     (tu_runq_ns_of; once, as one stall of it delays every service), read
     at the histogram's resolution: every check within the smallest bound
     of TSVC_LATENCY_BUCKETS_S at or above 500 ms plus that delay. Without
     it one stall of the loop's thread past 500 ms (ASan on a loaded
     machine) failed the test. ~3.3 s x 21 services x 10/s: hundreds of
     checks. */
  const double bounds[] = TSVC_LATENCY_BUCKETS_S;
  int within = 0;
  while (within < TSVC_LATENCY_NBUCKETS - 2 &&
         bounds[within] * 1000 < (double)(TU_NEVER_HELD_MS + lag_ms))
    within++;
  assert_true(bounds[within] * 1000 >= TU_NEVER_HELD_MS + lag_ms);
  uint64_t all = ms.lateness_buckets[TSVC_LATENCY_NBUCKETS - 1];
  fprintf(stderr, "hooks: %llu checks; lateness within 1/2.5/5/10/25/50/100/250/500/1000/2500/"
          "5000/10000 ms:", (unsigned long long)all);
  for (int i = 0; i < TSVC_LATENCY_NBUCKETS - 1; i++)
    fprintf(stderr, " %llu", (unsigned long long)ms.lateness_buckets[i]);
  fprintf(stderr, "; the loop's thread waited %lld ms for a CPU: all within %g ms\n",
          (long long)lag_ms, bounds[within] * 1000);
  assert_true(all > 400);
  assert_int_equal(ms.lateness_buckets[within], all);
  /* The hooks never ended on their own: killed when the monitor stopped. */
  assert_int_equal(strstr(log, "action=hook hook=on_change result=\"exited") == NULL, 1);
  assert_non_null(strstr(log, "hook on_change killed: the monitor stops"));
  free(log);
  tu_rmtree(dir);
  free(dir);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(environment_and_output),
      cmocka_unit_test(timeout_kills_the_group),
      cmocka_unit_test(output_is_bounded),
      cmocka_unit_test(queue_is_bounded),
      cmocka_unit_test(hanging_hooks_delay_no_check),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
