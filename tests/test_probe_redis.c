/*
 * test_probe_redis: the redis probe against real redis-server instances,
 * with what redis-cli ping prints in the same state. Only PONG is healthy,
 * as the request's check (`== "PONG"`) decided.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "servers.h"

static bool skip_all;
static char skip_why[256];

/* Servers of the running test; the teardown stops them even when an
 * assertion ended the test early. */
static tu_redis_t srv[2];

static int stop_servers(void **st) {
  (void)st;
  for (size_t i = 0; i < 2; i++) tu_redis_stop(&srv[i]);
  return 0;
}

static int setup(void **st) {
  (void)st;
  skip_all = !tu_redis_available(skip_why, sizeof skip_why);
  return 0;
}

/* Missing server binaries: skipped, or a failure under CI (tu_missing). */
#define SKIP_IF_NO_SERVER()            \
  do {                                 \
    if (skip_all) tu_missing(skip_why); \
  } while (0)

static void probe(tu_redis_t *r, const char *user, const char *password, tu_probe_out_t *o) {
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_REDIS, .host = "127.0.0.1", .port = r->port,
                         .timeout = 5000, .username = user, .password = password};
  tu_probe_run(&s, o);
}

/* Probe and redis-cli in the same state; the request's verdict is
 * healthy iff redis-cli prints PONG. */
static void compare(const char *what, tu_redis_t *r, const char *user, const char *password,
                    const char *const cli_args[], tsvc_result_t want, const char *want_msg) {
  tu_probe_out_t o;
  probe(r, user, password, &o);
  char out[512];
  int rc = tu_redis_cli(r, cli_args, out, sizeof out);
  bool cli_healthy = strcmp(out, "PONG") == 0;
  print_message("%-26s redis-cli exit=%d \"%s\" probe=%s \"%s\" (%.2f ms)\n", what, rc, out,
                tsvc_result_name(o.res.result), o.res.message, o.res.latency_us / 1000.0);
  assert_int_equal(o.res.result, want);
  assert_int_equal(o.res.result == TSVC_RESULT_OK, cli_healthy);
  if (want_msg) assert_non_null(strstr(o.res.message, want_msg));
}

static const char *const ping[] = {"ping", NULL};

static void pong(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  compare("PONG", r, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");

  /* QUIT makes the server close first: the TIME_WAITs are its own. */
  static tu_tw_t before, after;
  tu_tw_snapshot(r->port, &before);
  for (int i = 0; i < 20; i++) {
    tu_probe_out_t o;
    probe(r, NULL, NULL, &o);
    assert_int_equal(o.res.result, TSVC_RESULT_OK);
  }
  tu_tw_snapshot(r->port, &after);
  int server_side, probe_side;
  tu_tw_new(&before, &after, &server_side, &probe_side);
  print_message("TIME_WAIT after 20 checks: server side +%d, probe side +%d\n", server_side,
                probe_side);
  assert_int_equal(probe_side, 0);
  assert_true(server_side >= 18); /* loopback may reuse a 4-tuple now and then */
}

static void requirepass(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  const char *const extra[] = {"--requirepass", "s3cret", NULL};
  assert_int_equal(tu_redis_start(r, extra), 0);
  /* No password configured: NOAUTH is unhealthy. redis-cli prints it and
   * exits 0, the trap docs/design.md ("Probes") names. */
  compare("NOAUTH (no password)", r, NULL, NULL, ping, TSVC_RESULT_BAD_STATUS,
          "NOAUTH Authentication required");
  char out[256];
  assert_int_equal(tu_redis_cli(r, ping, out, sizeof out), 0);

  const char *const right[] = {"--no-auth-warning", "-a", "s3cret", "ping", NULL};
  compare("right password", r, NULL, "s3cret", right, TSVC_RESULT_OK, "PONG");

  const char *const wrong[] = {"--no-auth-warning", "-a", "wrong", "ping", NULL};
  compare("wrong password", r, NULL, "wrong", wrong, TSVC_RESULT_BAD_STATUS, "WRONGPASS");

  /* An ACL user. */
  const char *const acl[] = {"--no-auth-warning", "-a",   "s3cret", "ACL", "SETUSER", "app",
                             "on",                ">apppw", "~*",   "+@all", NULL};
  assert_int_equal(tu_redis_cli(r, acl, out, sizeof out), 0);
  assert_string_equal(out, "OK");
  const char *const user[] = {"--no-auth-warning", "--user", "app", "--pass", "apppw", "ping",
                              NULL};
  compare("ACL user", r, "app", "apppw", user, TSVC_RESULT_OK, "PONG");
}

static void replica_masterdown(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *master = &srv[0], *replica = &srv[1];
  assert_int_equal(tu_redis_start(master, NULL), 0);
  char mport[16];
  snprintf(mport, sizeof mport, "%d", master->port);
  const char *const extra[] = {"--replicaof", "127.0.0.1", mport, "--replica-serve-stale-data",
                               "no", NULL};
  assert_int_equal(tu_redis_start(replica, extra), 0);
  char out[256] = "";
  for (int i = 0; i < 400; i++) {
    tu_redis_cli(replica, ping, out, sizeof out);
    if (strcmp(out, "PONG") == 0) break;
    tu_sleep_ms(25);
  }
  compare("replica, link up", replica, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");

  tu_redis_stop(master);
  for (int i = 0; i < 400; i++) {
    tu_redis_cli(replica, ping, out, sizeof out);
    if (strstr(out, "MASTERDOWN")) break;
    tu_sleep_ms(25);
  }
  compare("replica, master gone", replica, NULL, NULL, ping, TSVC_RESULT_BAD_STATUS,
          "MASTERDOWN Link with MASTER is down");
}

static void stopped(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  int port = r->port;
  tu_redis_stop(r);
  r->port = port;
  compare("stopped", r, NULL, NULL, ping, TSVC_RESULT_REFUSED, "connection refused");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(pong, stop_servers),
      cmocka_unit_test_teardown(requirepass, stop_servers),
      cmocka_unit_test_teardown(replica_masterdown, stop_servers),
      cmocka_unit_test_teardown(stopped, stop_servers),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
