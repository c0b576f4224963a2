/* test_probe_exec: the exec probe on the host, its process group, output. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "servers.h"

static tsvc_probe_spec_t sh(const char *script, tsvc_ms_t timeout) {
  static char *argv[4];
  argv[0] = "/bin/sh";
  argv[1] = "-c";
  argv[2] = (char *)script;
  argv[3] = NULL;
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_EXEC, .argv = argv, .timeout = timeout};
  return s;
}

static void exit_zero(void **st) {
  (void)st;
  tsvc_probe_spec_t s = sh("echo hello", 5000);
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_int_equal(o.res.exit_code, 0);
  assert_string_equal(o.output, "hello\n");
  assert_string_equal(o.res.message, "exit 0");
  assert_true(o.res.latency_us > 0);
  tu_probe_out_free(&o);

  /* The CMD-SHELL form: argv[0] is a string for /bin/sh -c. */
  char *argv[] = {"echo one; echo two >&2", NULL};
  tsvc_probe_spec_t s2 = {.kind = TSVC_PROBE_EXEC, .argv = argv, .shell = true, .timeout = 5000};
  tu_probe_run(&s2, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_string_equal(o.output, "one\ntwo\n");
  tu_probe_out_free(&o);

  /* argc given, argv not NULL-terminated (as tsvc_strv_t). */
  char *argv3[] = {"/bin/true", "<not an argument>"};
  tsvc_probe_spec_t s3 = {.kind = TSVC_PROBE_EXEC, .argv = argv3, .argc = 1, .timeout = 5000};
  tu_probe_run(&s3, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_string_equal(o.output, "");
  tu_probe_out_free(&o);
}

static void exit_three(void **st) {
  (void)st;
  tsvc_probe_spec_t s = sh("echo oops; echo 'disk full' >&2; exit 3", 5000);
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_EXEC_FAILED);
  assert_int_equal(o.res.exit_code, 3);
  assert_string_equal(o.output, "oops\ndisk full\n");
  assert_string_equal(o.res.message, "exit code 3: disk full");
  tu_probe_out_free(&o);
}

static void killed_by_signal(void **st) {
  (void)st;
  tsvc_probe_spec_t s = sh("kill -TERM $$", 5000);
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_EXEC_FAILED);
  assert_int_equal(o.res.exit_code, 128 + SIGTERM);
  tu_probe_out_free(&o);
}

/* Run script (which prints before it sleeps) until it times out having
 * printed: the timeout is first, then 5 and 25 times it. The timeout counts
 * from the spawn, and on a loaded machine the shell may not get a CPU before
 * it (seen at load 15, and in 19 of 40 runs of 4 copies held to a fifth of
 * a CPU: no output, so no pid to look for). Such a run still shows the
 * TIMEOUT and the kill, but not which group was killed: it is tried again.
 * Returns the timeout of the run in o. */
static tsvc_ms_t timed_out_printing(const char *script, tsvc_ms_t first, tu_probe_out_t *o) {
  tsvc_ms_t timeout = first;
  for (int attempt = 1;; attempt++, timeout *= 5) {
    tsvc_probe_spec_t s = sh(script, timeout);
    tu_probe_run(&s, o);
    assert_int_equal(o->res.result, TSVC_RESULT_TIMEOUT);
    assert_int_equal(o->res.exit_code, 128 + SIGKILL);
    assert_non_null(o->output);
    if (o->output[0]) return timeout;
    print_message("timed out after %lld ms before the shell printed (the loop's lag meanwhile: "
                  "%.0f ms); again with %lld ms\n",
                  (long long)timeout, o->lag_ms, (long long)timeout * 5);
    tu_probe_out_free(o);
    if (attempt == 3) fail_msg("the shell printed nothing in 3 runs, the last of %lld ms",
                               (long long)timeout);
  }
}

static void timeout_kills_group(void **st) {
  (void)st;
  tu_probe_out_t o;
  const double t = (double)timed_out_printing("echo $$; exec sleep 30", 200, &o);
  /* At the timeout, then the kill and the reaping: far below the 30 s of
     sleep. Killed processes need a CPU to finish dying, which a loaded
     machine gives them late (our loop's lag, lag_ms, does not count theirs):
     3 s for that; 50 ms on an idle machine. */
  assert_true(o.elapsed_ms >= t - 1 && o.elapsed_ms < t + 3000 + o.lag_ms);
  assert_true(o.res.latency_us >= (t - 1) * 1000 &&
              o.res.latency_us < (t + 3000 + o.lag_ms) * 1000);
  long pid = strtol(o.output, NULL, 10);
  assert_true(pid > 1);
  /* The leader was reaped before the callback: it is gone now. */
  assert_int_equal(kill((pid_t)pid, 0), -1);
  assert_int_equal(tu_group_alive((pid_t)pid), 0);
  tu_probe_out_free(&o);
}

static void grandchild_killed_on_timeout(void **st) {
  (void)st;
  /* The grandchild keeps the output pipe: EOF comes only once it is dead. */
  tu_probe_out_t o;
  const double t = (double)timed_out_printing("sleep 30 & echo $$ $!; sleep 30", 300, &o);
  long pgid = 0, child = 0;
  assert_int_equal(sscanf(o.output, "%ld %ld", &pgid, &child), 2);
  /* Far below the grandchild's 30 s (see timeout_kills_group). */
  assert_true(o.elapsed_ms < t + 3000 + o.lag_ms);
  assert_int_equal(tu_group_wait_gone((pid_t)pgid, 3000), 0);
  tu_probe_out_free(&o);
}

static void background_killed_after_exit(void **st) {
  (void)st;
  /* The command succeeds but leaves a child behind, detached from the
   * pipe: the probe kills the group when the leader exits. */
  tsvc_probe_spec_t s = sh("sleep 30 >/dev/null 2>&1 & echo $$ $!; exit 0", 5000);
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  long pgid = 0, child = 0;
  assert_int_equal(sscanf(o.output, "%ld %ld", &pgid, &child), 2);
  assert_true(o.elapsed_ms < 1000);
  assert_int_equal(tu_group_wait_gone((pid_t)pgid, 3000), 0);
  tu_probe_out_free(&o);
}

static void missing_binary(void **st) {
  (void)st;
  char *argv[] = {"/nonexistent/tanuki-probe-binary", NULL};
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_EXEC, .argv = argv, .timeout = 5000};
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_RUNTIME_ERROR);
  assert_int_equal(o.res.exit_code, -1);
  assert_non_null(strstr(o.res.message, "cannot run /nonexistent/tanuki-probe-binary"));
  tu_probe_out_free(&o);

  /* Not in PATH. */
  char *argv2[] = {"tanuki-no-such-command", "x", NULL};
  s.argv = argv2;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_RUNTIME_ERROR);
  tu_probe_out_free(&o);

  /* Through the shell: the shell runs and says 127. */
  char *argv3[] = {"tanuki-no-such-command", NULL};
  tsvc_probe_spec_t s3 = {.kind = TSVC_PROBE_EXEC, .argv = argv3, .shell = true, .timeout = 5000};
  tu_probe_run(&s3, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_EXEC_FAILED);
  assert_int_equal(o.res.exit_code, 127);
  tu_probe_out_free(&o);
}

static void long_output_keeps_tail(void **st) {
  (void)st;
  tsvc_probe_spec_t s = sh("i=1; while [ $i -le 3000 ]; do echo line$i; i=$((i+1)); done", 10000);
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  tsvc_buf_t want;
  tsvc_buf_init(&want, 1 << 20);
  for (int i = 1; i <= 3000; i++) assert_int_equal(tsvc_buf_addf(&want, "line%d\n", i), 0);
  assert_true(want.len > TSVC_PROBE_OUTPUT_LEN);
  assert_int_equal(strlen(o.output), TSVC_PROBE_OUTPUT_LEN);
  assert_string_equal(o.output, want.data + want.len - TSVC_PROBE_OUTPUT_LEN);
  assert_int_equal(o.res.bytes_read, want.len);
  tsvc_buf_free(&want);
  tu_probe_out_free(&o);

  /* 10 MB of output: read to the end, 4 KiB kept. */
  s = sh("head -c 10000000 /dev/zero | tr '\\0' a; echo END", 20000);
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_int_equal(o.res.bytes_read, 10000004);
  assert_int_equal(strlen(o.output), TSVC_PROBE_OUTPUT_LEN);
  assert_string_equal(o.output + TSVC_PROBE_OUTPUT_LEN - 4, "END\n");
  tu_probe_out_free(&o);
}

/* ---- cancel ------------------------------------------------------------- */

typedef struct {
  tsvc_probe_t *probe;
  const char *pidfile;
  int calls;
  int ticks;
} cancel_ctx_t;

static void never_cb(const tsvc_probe_result_t *res, void *data) {
  (void)res;
  ((cancel_ctx_t *)data)->calls++;
}

static void cancel_tick(uv_timer_t *t) {
  cancel_ctx_t *c = t->data;
  c->ticks++;
  /* Cancel once the command is surely running (it wrote its pid). */
  if (access(c->pidfile, F_OK) == 0 || c->ticks > 200) {
    tsvc_probe_cancel(c->probe);
    uv_close((uv_handle_t *)t, NULL);
  }
}

static void cancel_kills_group(void **st) {
  (void)st;
  char *dir = tu_mkdtemp("tsvc-exec");
  char *pidfile = tsvc_asprintf("%s/pid", dir);
  char *script = tsvc_asprintf("sleep 30 & echo $$ > %s.tmp; mv %s.tmp %s; sleep 30",
                               pidfile, pidfile, pidfile);
  tsvc_probe_spec_t s = sh(script, 10000);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cancel_ctx_t c = {.pidfile = pidfile};
  assert_int_equal(tsvc_probe_start(&loop, &s, never_cb, &c, &c.probe), 0);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &c;
  uv_timer_start(&t, cancel_tick, 5, 5);
  uint64_t t0 = uv_hrtime();
  tu_loop_finish(&loop);
  assert_true((uv_hrtime() - t0) / 1000000 < 2000);
  assert_int_equal(c.calls, 0);
  char *pid = tu_read_file(pidfile, 0);
  assert_non_null(pid);
  long pgid = strtol(pid, NULL, 10);
  assert_true(pgid > 1);
  assert_int_equal(tu_group_wait_gone((pid_t)pgid, 3000), 0);
  free(pid);
  free(script);
  free(pidfile);
  tu_rmtree(dir);
  free(dir);
}

static void cancel_right_after_start(void **st) {
  (void)st;
  tsvc_probe_spec_t s = sh("exec sleep 30", 10000);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cancel_ctx_t c = {0};
  assert_int_equal(tsvc_probe_start(&loop, &s, never_cb, &c, &c.probe), 0);
  tsvc_probe_cancel(c.probe);
  tu_loop_finish(&loop);
  assert_int_equal(c.calls, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(exit_zero),
      cmocka_unit_test(exit_three),
      cmocka_unit_test(killed_by_signal),
      cmocka_unit_test(timeout_kills_group),
      cmocka_unit_test(grandchild_killed_on_timeout),
      cmocka_unit_test(background_killed_after_exit),
      cmocka_unit_test(missing_binary),
      cmocka_unit_test(long_output_keeps_tail),
      cmocka_unit_test(cancel_kills_group),
      cmocka_unit_test(cancel_right_after_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
