/*
 * test_probe_postgres: the postgres probe against a real server, with the
 * verdict of pg_isready taken in the same state (0 accepting, 1 rejecting,
 * 2 no response), and the server log kept quiet over many checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/util.h"
#include "servers.h"

static tu_pg_t pg;
static bool skip_all;
static char skip_why[256];

/* tanuki (trust over TCP, as a container's own network usually is) owns
 * tanuki_dev; tanuki_pw must give a SCRAM password; "rejected" is refused
 * by pg_hba.conf; any other role name gets trust and then "role does not
 * exist". */
static const char hba[] =
    "local all all trust\n"
    "host all tanuki_pw 127.0.0.1/32 scram-sha-256\n"
    "host all rejected 127.0.0.1/32 reject\n"
    "host all all 127.0.0.1/32 trust\n";

static int setup(void **st) {
  (void)st;
  if (!tu_pg_available(skip_why, sizeof skip_why)) {
    skip_all = true;
    return 0;
  }
  if (tu_pg_setup(&pg, hba) != 0 ||
      tu_pg_sql(&pg, "CREATE ROLE tanuki LOGIN PASSWORD 'tanuki'") != 0 ||
      tu_pg_sql(&pg, "CREATE DATABASE tanuki_dev OWNER tanuki") != 0 ||
      tu_pg_sql(&pg, "CREATE ROLE tanuki_pw LOGIN PASSWORD 'right'") != 0 ||
      tu_pg_sql(&pg, "CREATE ROLE rejected LOGIN") != 0 ||
      tu_pg_sql(&pg, "CREATE ROLE tanuki_held LOGIN") != 0) {
    tu_pg_free(&pg); /* the group teardown does not run when setup fails */
    return -1;
  }
  return 0;
}

/* Held sessions (healthcheck.session), one per credentials, kept across
 * the tests: each compare() checks on them too. */
typedef struct {
  bool used;
  const char *user, *db, *password;
  tu_session_t t;
} held_t;
static held_t held[8];

static void close_sessions(void) {
  for (size_t i = 0; i < TSVC_ARRAY_LEN(held); i++) {
    tu_session_close(&held[i].t);
    held[i].used = false;
  }
}

static int teardown(void **st) {
  (void)st;
  close_sessions();
  if (!skip_all) tu_pg_free(&pg);
  return 0;
}

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static tu_session_t *held_for(const char *user, const char *db, const char *password) {
  for (size_t i = 0; i < TSVC_ARRAY_LEN(held); i++)
    if (held[i].used && same(held[i].user, user) && same(held[i].db, db) &&
        same(held[i].password, password))
      return &held[i].t;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(held); i++) {
    if (held[i].used) continue;
    held[i] = (held_t){.used = true, .user = user, .db = db, .password = password};
    tsvc_probe_spec_t s = {.kind = TSVC_PROBE_POSTGRES, .host = "127.0.0.1", .port = pg.port,
                           .timeout = 5000, .user = user, .database = db,
                           .password = password};
    tu_session_open(&held[i].t, &s, 60000);
    return &held[i].t;
  }
  fail_msg("no room for another session");
  return NULL;
}

/* Missing server binaries: skipped, or a failure under CI (tu_missing). */
#define SKIP_IF_NO_SERVER()            \
  do {                                 \
    if (skip_all) tu_missing(skip_why); \
  } while (0)

static void probe(const char *user, const char *db, tu_probe_out_t *o) {
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_POSTGRES, .host = "127.0.0.1", .port = pg.port,
                         .timeout = 5000, .user = user, .database = db};
  tu_probe_run(&s, o);
}

/* pg_isready's exit code as our verdict would give it. */
static int as_isready(tsvc_result_t r) {
  return r == TSVC_RESULT_OK ? 0 : r == TSVC_RESULT_BAD_STATUS ? 1 : 2;
}

static void compare(const char *what, const char *user, const char *db, const char *password,
                    int want_isready, tsvc_result_t want, const char *want_in_msg) {
  tu_probe_out_t o;
  probe(user, db, &o);
  int isready = tu_pg_isready(&pg, user, db, password);
  print_message("%-28s pg_isready=%d probe=%s \"%s\" (%.2f ms)\n", what, isready,
                tsvc_result_name(o.res.result), o.res.message, o.res.latency_us / 1000.0);
  assert_int_equal(isready, want_isready);
  assert_int_equal(o.res.result, want);
  assert_int_equal(as_isready(o.res.result), isready);
  if (want_in_msg) assert_non_null(strstr(o.res.message, want_in_msg));
  if (o.res.result != TSVC_RESULT_REFUSED)
    assert_true(o.res.bytes_read > 0 && o.res.bytes_read <= TSVC_PROBE_MAX_READ);

  /* The held session in the same state, twice (the first check of a new
     session is the full probe's; the second is on the held connection
     when the login worked): the probe's verdict each time. */
  tu_session_t *t = held_for(user, db, password);
  for (int i = 0; i < 2; i++) {
    tsvc_session_info_t si;
    tu_session_info(t, &si);
    tu_probe_out_t so;
    tu_session_check(t, &so);
    print_message("%-28s session (%s) %s \"%s\"\n", "", si.held ? "held" : "full probe",
                  tsvc_result_name(so.res.result), so.res.message);
    assert_int_equal(so.res.result, want);
    if (si.held) assert_string_equal(so.res.message, "accepting connections (held session)");
    else assert_string_equal(so.res.message, o.res.message);
  }
}

/* Whether the session of these credentials holds a connection now. */
static bool session_held(const char *user, const char *db, const char *password) {
  tsvc_session_info_t si;
  tu_session_info(held_for(user, db, password), &si);
  if (!si.held) print_message("no session held: %s\n", si.last_error);
  return si.held;
}

/* What a check costs the server log: nothing. */
static void log_quiet_over_100_checks(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_sleep_ms(300); /* setup's own lines are written */
  long size0 = tu_file_size(pg.log);
  assert_true(size0 >= 0);

  /* The service as tanuki.yaml declares it, resolved by probe: auto. */
  char *cmd[] = {"pg_isready", "-U", "tanuki"};
  tsvc_kv_t env[] = {{"POSTGRES_USER", "tanuki"},
                     {"POSTGRES_PASSWORD", "tanuki"},
                     {"POSTGRES_DB", "tanuki_dev"}};
  tsvc_service_conf_t svc = {.name = "postgres", .image = "postgres:16", .port = pg.port,
                             .env = env, .env_len = 3};
  svc.healthcheck.command.v = cmd;
  svc.healthcheck.command.n = 3;
  svc.healthcheck.timeout = 5000;
  tsvc_probe_spec_t resolved;
  tsvc_probe_resolve(&svc, &resolved);
  assert_int_equal(resolved.kind, TSVC_PROBE_POSTGRES);
  assert_string_equal(resolved.database, "tanuki_dev");
  resolved.host = "127.0.0.1"; /* the caller fills in where the service is */

  int ok = 0;
  for (int i = 0; i < 100; i++) {
    tu_probe_out_t o;
    tu_probe_run(&resolved, &o); /* trust: AuthenticationOk, Terminate */
    ok += o.res.result == TSVC_RESULT_OK;
    probe("tanuki_pw", "tanuki_dev", &o); /* SCRAM: close during the exchange */
    ok += o.res.result == TSVC_RESULT_OK;
    probe("postgres", NULL, &o);
    ok += o.res.result == TSVC_RESULT_OK;
  }
  assert_int_equal(ok, 300);
  /* Held sessions, trust and SCRAM, 100 checks each: quiet too. */
  tsvc_probe_spec_t trust = {.kind = TSVC_PROBE_POSTGRES, .host = "127.0.0.1",
                             .port = pg.port, .timeout = 5000, .user = "tanuki",
                             .database = "tanuki_dev"};
  tsvc_probe_spec_t scram = trust;
  scram.user = "tanuki_pw";
  scram.password = "right";
  tu_session_t ts, ss;
  tu_session_open(&ts, &trust, 60000);
  tu_session_open(&ss, &scram, 60000);
  for (int i = 0; i < 100; i++) {
    tu_probe_out_t o;
    tu_session_check(&ts, &o);
    ok += o.res.result == TSVC_RESULT_OK;
    tu_session_check(&ss, &o);
    ok += o.res.result == TSVC_RESULT_OK;
  }
  tsvc_session_info_t si_t, si_s;
  tu_session_info(&ts, &si_t);
  tu_session_info(&ss, &si_s);
  tu_session_close(&ts);
  tu_session_close(&ss);
  assert_int_equal(ok, 500);
  assert_int_equal(si_t.connects, 1);
  assert_int_equal(si_t.held_checks, 99);
  assert_int_equal(si_s.connects, 1);
  assert_int_equal(si_s.held_checks, 99);
  tu_sleep_ms(300);
  long size1 = tu_file_size(pg.log);
  if (size1 != size0) {
    char *grown = tu_read_file(pg.log, size0);
    print_message("server log grew by %ld bytes:\n%s\n", size1 - size0, grown ? grown : "");
    free(grown);
  }
  assert_int_equal(size1, size0);
  print_message("300 checks (trust+Terminate, SCRAM+close, superuser) and 200 on held "
                "sessions (trust, SCRAM login): log grew 0 bytes\n");

  /* The request's own `pg_isready -U tanuki` (database defaults to the
   * user) logs a FATAL at every check, as docs/design.md ("Probes") says. */
  assert_int_equal(tu_pg_isready(&pg, "tanuki", NULL, NULL), 0);
  tu_sleep_ms(200);
  char *grown = tu_read_file(pg.log, size1);
  assert_non_null(grown);
  print_message("pg_isready -U tanuki logged: %s", grown);
  assert_non_null(strstr(grown, "FATAL:  database \"tanuki\" does not exist"));
  free(grown);
}

static void accepting(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  compare("accepting (superuser)", "postgres", "postgres", NULL, 0, TSVC_RESULT_OK,
          "accepting connections");
  compare("accepting (tanuki_dev)", "tanuki", "tanuki_dev", NULL, 0, TSVC_RESULT_OK,
          "accepting connections");
  /* trust: logged in and held. */
  assert_true(session_held("postgres", "postgres", NULL));
  assert_true(session_held("tanuki", "tanuki_dev", NULL));
}

static void password_required(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  compare("password asked (none given)", "tanuki_pw", "tanuki_dev", NULL, 0, TSVC_RESULT_OK,
          "SCRAM");
  /* pg_isready with a wrong password still says accepting; the probe
   * never sends one, its verdict is the same. */
  compare("wrong password", "tanuki_pw", "tanuki_dev", "wrong", 0, TSVC_RESULT_OK, "SCRAM");
  compare("right password", "tanuki_pw", "tanuki_dev", "right", 0, TSVC_RESULT_OK, "SCRAM");
  /* A held session logs in for real: SCRAM-SHA-256 with the right password
     holds; none or a wrong one does not (and says why). */
  assert_true(session_held("tanuki_pw", "tanuki_dev", "right"));
  assert_false(session_held("tanuki_pw", "tanuki_dev", NULL));
  assert_false(session_held("tanuki_pw", "tanuki_dev", "wrong"));
  tsvc_session_info_t si;
  tu_session_info(held_for("tanuki_pw", "tanuki_dev", "wrong"), &si);
  assert_non_null(strstr(si.last_error, "password authentication failed"));
  tu_session_info(held_for("tanuki_pw", "tanuki_dev", NULL), &si);
  assert_non_null(strstr(si.last_error, "none is set"));
}

static void wrong_user(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  compare("wrong user", "nosuchuser", "tanuki_dev", NULL, 0, TSVC_RESULT_OK,
          "role \"nosuchuser\" does not exist");
  compare("rejected by pg_hba.conf", "rejected", "tanuki_dev", NULL, 0, TSVC_RESULT_OK,
          "SQLSTATE 28000");
  assert_false(session_held("nosuchuser", "tanuki_dev", NULL));
  assert_false(session_held("rejected", "tanuki_dev", NULL));
}

static void wrong_database(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  compare("wrong database", "tanuki", "nosuchdb", NULL, 0, TSVC_RESULT_OK,
          "database \"nosuchdb\" does not exist");
}

static void hostname(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_POSTGRES, .host = "localhost", .port = pg.port,
                         .timeout = 5000, .user = "tanuki", .database = "tanuki_dev"};
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
}

/* The TIME_WAITs new since base into *now, *srv and *cli, looked at until
 * the side awaited (the server's, or the probe's) counts 20 or 3 s have
 * passed by the clock (each look waits 200 ms first: tu_tw_snapshot). */
static void tw_wait(const tu_tw_t *base, tu_tw_t *now, int *srv, int *cli, bool server_side) {
  for (int64_t end = tsvc_mono_ms() + 3000;;) {
    tu_tw_snapshot(pg.port, now);
    tu_tw_new(base, now, srv, cli);
    if ((server_side ? *srv : *cli) >= 20 || tsvc_mono_ms() >= end) break;
  }
}

/* Who closes first keeps the TIME_WAIT (docs/design.md, "Probes"): with trust the
 * server closes after Terminate; during a password exchange the probe
 * closes, by design (anything else the server would log). */
static void time_wait_side(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  static tu_tw_t s0, s1, s2;
  tu_tw_snapshot(pg.port, &s0);
  tu_probe_out_t o;
  for (int i = 0; i < 20; i++) {
    probe("tanuki", "tanuki_dev", &o);
    assert_int_equal(o.res.result, TSVC_RESULT_OK);
  }
  /* The probe's verdict comes before the backend has read Terminate and
     closed: on a loaded machine the last backends' TIME_WAITs come later.
     Wait for all 20, 3 s at most: some never come, as a new connection's
     SYN on the same 4-tuple takes a server-side TIME_WAIT over (loopback:
     a CI run counted 14 of 20 after waiting). */
  int srv1, cli1, srv2, cli2;
  tw_wait(&s0, &s1, &srv1, &cli1, true);
  for (int i = 0; i < 20; i++) {
    probe("tanuki_pw", "tanuki_dev", &o);
    assert_int_equal(o.res.result, TSVC_RESULT_OK);
  }
  /* The probe closes first, but its socket is in FIN_WAIT2, not TIME_WAIT,
     until the backend has read the close and closed too: on a loaded
     machine the last ones come later (a CI run counted fewer than 18 at
     once). Wait for all 20, 3 s at most. */
  tw_wait(&s1, &s2, &srv2, &cli2, false);
  print_message("TIME_WAIT, 20 trust checks: server +%d probe +%d; 20 SCRAM checks: "
                "server +%d probe +%d\n", srv1, cli1, srv2, cli2);
  /* Trust: the server closes first, every time (the probe keeps none); a
     majority of the 20 is what is left of them after 4-tuple takeovers. */
  assert_int_equal(cli1, 0);
  assert_true(srv1 >= 10);
  assert_true(cli2 >= 18);
}

/* The server ends a held session (pg_terminate_backend: FATAL 57P01, then
 * it closes): the session says why, the next check is the full probe's,
 * which opens a new held connection, and the check after that is held. */
static void held_backend_terminated(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_POSTGRES, .host = "127.0.0.1", .port = pg.port,
                         .timeout = 5000, .user = "tanuki_held", .database = "tanuki_dev"};
  tu_session_t t;
  tu_session_open(&t, &s, 60000);
  tu_probe_out_t o;
  tu_session_check(&t, &o); /* the full probe; the held connection opens */
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  tu_session_check(&t, &o);
  assert_string_equal(o.res.message, "accepting connections (held session)");
  tsvc_session_info_t si;
  tu_session_info(&t, &si);
  assert_true(si.held);
  assert_int_equal(si.held_checks, 1);
  assert_int_equal(tu_pg_sql(&pg, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE usename = 'tanuki_held'"),
                   0);
  /* The loop reads the FATAL while no check is in flight (bounded: the
     server sends it before psql's query returns). */
  for (int i = 0; i < 400 && si.held; i++) {
    uv_run(&t.loop, UV_RUN_NOWAIT);
    tu_session_info(&t, &si);
    if (si.held) tu_sleep_ms(5);
  }
  print_message("after pg_terminate_backend: held %s, last error \"%s\"\n",
                si.held ? "yes" : "no", si.last_error);
  assert_false(si.held);
  assert_non_null(strstr(si.last_error, "the server ended the session: "));
  assert_non_null(strstr(si.last_error, "(SQLSTATE 57P01)"));
  tu_session_check(&t, &o); /* no held connection: the full probe */
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_string_equal(o.res.message, "accepting connections");
  tu_session_check(&t, &o);
  assert_string_equal(o.res.message, "accepting connections (held session)");
  tu_session_info(&t, &si);
  assert_int_equal(si.connects, 2);
  assert_int_equal(si.held_checks, 2);
  assert_int_equal(si.full_checks, 2);
  tu_session_close(&t);
}

/* Many probes at once on one loop. */
static void concurrent(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  enum { N = 50 };
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_POSTGRES, .host = "127.0.0.1", .port = pg.port,
                         .timeout = 5000, .user = "tanuki", .database = "tanuki_dev"};
  tu_probe_ctx_t ctx[N];
  tu_probe_out_t outs[N];
  memset(outs, 0, sizeof outs);
  for (int i = 0; i < N; i++) {
    ctx[i].out = &outs[i];
    ctx[i].t0 = uv_hrtime();
    if (i % 2) s.user = "tanuki_pw";
    else s.user = "tanuki";
    assert_int_equal(tsvc_probe_start(&loop, &s, tu_probe_cb, &ctx[i], NULL), 0);
  }
  tu_loop_finish(&loop);
  for (int i = 0; i < N; i++) {
    assert_int_equal(outs[i].calls, 1);
    assert_int_equal(outs[i].res.result, TSVC_RESULT_OK);
  }
}

static void shutting_down_then_stopped(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  /* A session held open keeps a smart shutdown waiting: meanwhile new
   * connections are refused with 57P03. */
  int session = tu_pg_session_open(pg.port, "postgres", "postgres");
  assert_true(session >= 0);
  /* A held session (full probe every 300 ms) keeps working through a
     smart shutdown, which does not end sessions: the full probe is what
     sees new connections rejected. */
  tsvc_probe_spec_t hs = {.kind = TSVC_PROBE_POSTGRES, .host = "127.0.0.1", .port = pg.port,
                          .timeout = 5000, .user = "tanuki", .database = "tanuki_dev"};
  tu_session_t ht;
  tu_session_open(&ht, &hs, 300);
  tu_probe_out_t ho;
  tu_session_check(&ht, &ho);
  assert_int_equal(ho.res.result, TSVC_RESULT_OK);
  tsvc_session_info_t hi;
  tu_session_info(&ht, &hi);
  assert_true(hi.held);
  close_sessions(); /* the other tests' sessions, or the shutdown waits */
  assert_int_equal(tu_pg_ctl_stop(&pg, "smart"), 0);
  int isready = -1;
  for (int i = 0; i < 200 && (isready = tu_pg_isready(&pg, "postgres", NULL, NULL)) != 1; i++)
    tu_sleep_ms(25);
  assert_int_equal(isready, 1);
  tu_sleep_ms(350); /* full_every has passed: the next check is the full probe */
  tu_session_check(&ht, &ho);
  tu_session_info(&ht, &hi);
  print_message("held session, full probe in the smart shutdown: %s \"%s\"; held: %s (%s)\n",
                tsvc_result_name(ho.res.result), ho.res.message, hi.held ? "yes" : "no",
                hi.last_error);
  assert_int_equal(ho.res.result, TSVC_RESULT_BAD_STATUS);
  assert_non_null(strstr(ho.res.message, "shutting down"));
  assert_false(hi.held); /* closed, so that the shutdown can end */
  compare("shutting down (smart)", "tanuki", "tanuki_dev", NULL, 1, TSVC_RESULT_BAD_STATUS,
          "rejecting connections: the database system is shutting down");

  tu_pg_session_close(session);
  assert_int_equal(tu_wait_pid(pg.pid, 20000), 0);
  pg.pid = -1;
  compare("stopped", "tanuki", "tanuki_dev", NULL, 2, TSVC_RESULT_REFUSED, "connection refused");
  tu_session_check(&ht, &ho);
  assert_int_equal(ho.res.result, TSVC_RESULT_REFUSED);
  tu_session_close(&ht);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(log_quiet_over_100_checks),
      cmocka_unit_test(accepting),
      cmocka_unit_test(password_required),
      cmocka_unit_test(wrong_user),
      cmocka_unit_test(wrong_database),
      cmocka_unit_test(hostname),
      cmocka_unit_test(time_wait_side),
      cmocka_unit_test(concurrent),
      cmocka_unit_test(held_backend_terminated),
      cmocka_unit_test(shutting_down_then_stopped),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
