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

/* Held sessions (healthcheck.session), one per server and credentials,
 * kept across the states a test walks through: each compare() checks on
 * them too, and their verdict must be the probe's. */
typedef struct {
  tu_redis_t *r;
  const char *user, *password;
  tu_session_t t;
} held_t;
static held_t held[4];

static int stop_servers(void **st) {
  (void)st;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(held); i++) {
    tu_session_close(&held[i].t);
    held[i].r = NULL;
  }
  for (size_t i = 0; i < 2; i++) tu_redis_stop(&srv[i]);
  return 0;
}

static bool same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static tu_session_t *held_for(tu_redis_t *r, const char *user, const char *password) {
  for (size_t i = 0; i < TSVC_ARRAY_LEN(held); i++)
    if (held[i].r == r && same(held[i].user, user) && same(held[i].password, password))
      return &held[i].t;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(held); i++) {
    if (held[i].r) continue;
    held[i] = (held_t){.r = r, .user = user, .password = password};
    tsvc_probe_spec_t s = {.kind = TSVC_PROBE_REDIS, .host = "127.0.0.1", .port = r->port,
                           .timeout = 5000, .username = user, .password = password};
    tu_session_open(&held[i].t, &s, 60000);
    return &held[i].t;
  }
  fail_msg("no room for another session");
  return NULL;
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

  /* The held session in the same state: the same verdict and message. */
  tu_session_t *t = held_for(r, user, password);
  tsvc_session_info_t before, after;
  tu_session_info(t, &before);
  tu_probe_out_t so;
  tu_session_check(t, &so);
  tu_session_info(t, &after);
  print_message("%-26s session (%s) %s \"%s\"\n", "", before.held ? "held" : "full probe",
                tsvc_result_name(so.res.result), so.res.message);
  assert_int_equal(so.res.result, want);
  assert_string_equal(so.res.message, o.res.message);
}

static const char *const ping[] = {"ping", NULL};

static void pong(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  compare("PONG", r, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");

  /* The probe closes with an RST once PING has answered (redis.c): no
     TIME_WAIT on either side (waiting for QUIT's close left one on the
     server's side at every check). */
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
  assert_int_equal(server_side, 0);

  /* The held session: 20 checks on the one connection compare() opened,
     PING each; nothing new in TIME_WAIT on either side, and the server
     saw one client all along. */
  tu_session_t *t = held_for(r, NULL, NULL);
  tsvc_session_info_t si0, si1;
  tu_session_info(t, &si0);
  assert_true(si0.held);
  tu_tw_snapshot(r->port, &before);
  for (int i = 0; i < 20; i++) {
    tu_probe_out_t o;
    tu_session_check(t, &o);
    assert_int_equal(o.res.result, TSVC_RESULT_OK);
    assert_string_equal(o.res.message, "PONG");
  }
  tu_tw_snapshot(r->port, &after);
  tu_tw_new(&before, &after, &server_side, &probe_side);
  tu_session_info(t, &si1);
  print_message("held session, 20 checks: %llu on the held connection, %llu connects; "
                "TIME_WAIT server +%d probe +%d\n",
                (unsigned long long)(si1.held_checks - si0.held_checks),
                (unsigned long long)si1.connects, server_side, probe_side);
  assert_int_equal(si1.held_checks - si0.held_checks, 20);
  assert_int_equal(si1.connects, 1);
  assert_int_equal(server_side + probe_side, 0);
  /* Each PING went out in its one write(2): nothing queued through
     uv_write, which costs an allocation and an epoll_ctl a check. */
  assert_int_equal(si1.queued_sends, 0);
}

/* A restart under a held session: the connection dies with the server;
 * the next check is the full probe's (refused while down), and the one
 * after the restart opens a new session. */
static void restart_under_session(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  int port = r->port;
  compare("up", r, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");
  compare("up, held", r, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");
  tu_session_t *t = held_for(r, NULL, NULL);
  tsvc_session_info_t si;
  tu_session_info(t, &si);
  assert_true(si.held);
  assert_true(si.held_checks >= 1);
  tu_redis_stop(r);
  r->port = port;
  compare("stopped", r, NULL, NULL, ping, TSVC_RESULT_REFUSED, "connection refused");
  tu_session_info(t, &si);
  assert_false(si.held);
  print_message("held connection closed: %s\n", si.last_error);
  assert_int_equal(tu_redis_start_port(r, port, NULL), 0);
  compare("restarted", r, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");
  compare("restarted, held", r, NULL, NULL, ping, TSVC_RESULT_OK, "PONG");
  tu_session_info(t, &si);
  assert_true(si.held);
  assert_int_equal(si.connects, 2);
}

static void count_cb(const tsvc_probe_result_t *res, void *data) {
  tu_probe_out_t *o = data;
  o->res = *res;
  o->calls++;
}

static void tick_cb(uv_timer_t *h) { (void)h; }

/* Run t's loop until the session's login is over (answered, refused or
 * past its grace), si left with the session's info then. A 5 ms tick bounds
 * each poll (as tu_session_check does): a uv_run(UV_RUN_ONCE) would
 * otherwise poll until the next timer, the login's 5 s grace. */
static void run_until_login_over(tu_session_t *t, tsvc_session_info_t *si) {
  uv_timer_t tick;
  uv_timer_init(&t->loop, &tick);
  uv_timer_start(&tick, tick_cb, 5, 5);
  do {
    uv_run(&t->loop, UV_RUN_ONCE);
    tu_session_info(t, si);
  } while (si->opening);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&t->loop, UV_RUN_NOWAIT);
}

/* A login that times out is no refusal: the server, stopped for a moment
 * (SIGSTOP: what a loaded machine does to it when it does not schedule it),
 * makes the check a TIMEOUT, and once it answers the connection is held,
 * with no other check in between. It used to close the connection at the
 * timeout and wait full_every (60 s here) before the next login, checking
 * by connecting each time meanwhile (issue 13: a third of 1,000 sessions
 * not held 16 s after start under load, every service healthy). */
static void login_timeout_held_late(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  /* The teardown closes it. 300 ms: a stopped server cannot answer in any
     time; a shorter one only makes the test shorter. */
  held[0] = (held_t){.r = r};
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_REDIS, .host = "127.0.0.1", .port = r->port,
                         .timeout = 300};
  tu_session_open(&held[0].t, &s, 60000);
  tu_session_t *t = &held[0].t;
  tu_probe_out_t o = {0};
  tsvc_session_info_t si;

  /* The server needs a CPU to answer once it goes on, and this loop one to
     read it: a login that timed out while the two waited on run queues
     for most of the grace (session.c, LOGIN_GRACE_MS: 5 s) says nothing
     of the session (seen once at load 13; a server sharing 1 ms of CPU a
     second with a busy loop does it every time): again, up to 3 runs. */
  for (int run = 1;; run++) {
    o = (tu_probe_out_t){0};
    assert_int_equal(kill(r->pid, SIGSTOP), 0);
    assert_int_equal(tsvc_session_check(t->s, count_cb, &o), 0); /* the login */
    while (o.calls == 0) uv_run(&t->loop, UV_RUN_ONCE);
    tu_session_info(t, &si);
    int64_t srq0 = tu_runq_ns_of_process(r->pid), rq0 = tu_runq_ns();
    assert_int_equal(kill(r->pid, SIGCONT), 0);
    print_message("server stopped: %s \"%s\"\n", tsvc_result_name(o.res.result), o.res.message);
    assert_int_equal(o.res.result, TSVC_RESULT_TIMEOUT);
    assert_true(si.opening);

    /* The server answers the login it was sent; bounded by the login's 5 s
       past the timeout. */
    run_until_login_over(t, &si);
    int64_t srq1 = tu_runq_ns_of_process(r->pid), rq1 = tu_runq_ns();
    int64_t waited = (srq0 >= 0 && srq1 >= srq0 ? srq1 - srq0 : 0) / 1000000 +
                     (rq0 >= 0 && rq1 >= rq0 ? rq1 - rq0 : 0) / 1000000;
    print_message("server back: held %d, connects %llu, last error \"%s\"; the server and this "
                  "loop waited %lld ms for a CPU\n",
                  si.held, (unsigned long long)si.connects, si.last_error, (long long)waited);
    if (si.held || run == 3 || waited < 5000 - 1000) break;
  }
  assert_true(si.held);
  assert_int_equal(si.connects, 1);
  assert_int_equal(o.calls, 1);

  tu_session_check(t, &o); /* on the held connection */
  tu_session_info(t, &si);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_int_equal(si.held_checks, 1);
  assert_int_equal(si.connects, 1);
}

/* The connections the server accepted so far (INFO's
 * total_connections_received), redis-cli's own included. */
static long accepted(tu_redis_t *r) {
  const char *const info[] = {"INFO", "stats", NULL};
  char out[8192];
  assert_int_equal(tu_redis_cli(r, info, out, sizeof out), 0);
  const char *p = strstr(out, "total_connections_received:");
  assert_non_null(p);
  return strtol(p + strlen("total_connections_received:"), NULL, 10);
}

/* A check started while a timed-out login is in its grace waits for that
 * login's answer: a TIMEOUT worded as the probe words it when the server
 * does not answer in the check's time, and no new connection. It used to
 * be the full probe, one more connection a check to a server that was slow
 * to answer logins (issue 13: the warm-up of 10,500 sessions, where those
 * connections made logins and held checks time out in a spiral). */
static void login_grace_check_waits(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  long before = accepted(r);
  held[0] = (held_t){.r = r}; /* the teardown closes it */
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_REDIS, .host = "127.0.0.1", .port = r->port,
                         .timeout = 300};
  tu_session_open(&held[0].t, &s, 60000);
  tu_session_t *t = &held[0].t;
  tsvc_session_info_t si;

  /* A uv_run(UV_RUN_ONCE) whose timers gave the verdict at its start goes
     on to poll until the next timer, the login's 5 s grace, and returns
     only then (seen under load, 1 in 8: check 1 returned 5,020 ms into the
     grace): a 5 ms tick bounds that poll (as tu_session_check does). */
  uv_timer_t tick;
  uv_timer_init(&t->loop, &tick);
  uv_timer_start(&tick, tick_cb, 5, 5);
  assert_int_equal(kill(r->pid, SIGSTOP), 0);
  tu_probe_out_t login = {0}, during = {0};
  assert_int_equal(tsvc_session_check(t->s, count_cb, &login), 0);
  while (login.calls == 0) uv_run(&t->loop, UV_RUN_ONCE);
  uint64_t grace0 = uv_hrtime(); /* the login's grace began about here */
  tu_session_info(t, &si);
  print_message("the login: %s \"%s\" (opening %d, last error \"%s\")\n",
                tsvc_result_name(login.res.result), login.res.message, si.opening, si.last_error);
  assert_int_equal(login.res.result, TSVC_RESULT_TIMEOUT);
  /* The login's grace is 5 s; two checks of 300 ms fit in it however
     late a loaded machine runs this loop (a check's verdict comes from
     its own timer, one poll after the timeout). */
  for (int i = 0; i < 2; i++) {
    during.calls = 0;
    assert_int_equal(tsvc_session_check(t->s, count_cb, &during), 0);
    while (during.calls == 0) uv_run(&t->loop, UV_RUN_ONCE);
    tu_session_info(t, &si);
    print_message("check %d in the login's grace: %s \"%s\" (opening %d, last error \"%s\"),"
                  " %llu ms into the grace\n",
                  i + 1, tsvc_result_name(during.res.result), during.res.message, si.opening,
                  si.last_error, (unsigned long long)((uv_hrtime() - grace0) / 1000000));
    assert_int_equal(during.res.result, TSVC_RESULT_TIMEOUT);
    assert_string_equal(during.res.message, "no answer within 300 ms (waiting for the reply)");
  }
  tu_session_info(t, &si);
  assert_true(si.opening);
  assert_int_equal(kill(r->pid, SIGCONT), 0);

  /* The server answers the login (within what is left of its 5 s grace);
     the next check is on the held connection. */
  uv_close((uv_handle_t *)&tick, NULL);
  run_until_login_over(t, &si);
  print_message("server back: held %d, connects %llu, last error \"%s\"\n", si.held,
                (unsigned long long)si.connects, si.last_error);
  /* One connection from the session (the login) and redis-cli's: the
     server accepts a connection left in its queue even when the client
     has closed it since (the full probes' were counted). */
  long got = accepted(r) - before;
  print_message("connections accepted: %ld\n", got);
  assert_int_equal(got, 2);
  if (!si.held) {
    /* Seen once with eight ASan copies of this suite at once: the
       continued server had not answered when the grace ran out. No
       refusal: the next check logs in again (login_timeout_held_late). */
    assert_string_equal(si.last_error, "the login timed out");
    return;
  }
  tu_probe_out_t o;
  tu_session_check(t, &o);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  tu_session_info(t, &si);
  assert_int_equal(si.held_checks, 1);
  assert_int_equal(si.connects, 1);
}

/* A check on the held connection whose server does not answer is a
 * TIMEOUT at its timeout, never before: on the monitor's shared deadline
 * set (tu_session_open) and on the session's own timer (own). The PING is
 * sent, the server is stopped (SIGSTOP), the verdict comes from the
 * timeout alone. */
static void held_timeout_at(bool own) {
  tu_redis_t *r = &srv[0];
  assert_int_equal(tu_redis_start(r, NULL), 0);
  held[0] = (held_t){.r = r}; /* the teardown closes it */
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_REDIS, .host = "127.0.0.1", .port = r->port,
                         .timeout = 300};
  tu_session_open(&held[0].t, &s, 60000);
  tu_session_t *t = &held[0].t;
  if (own) tsvc_session_set_deadlines(t->s, NULL);
  tu_probe_out_t o;
  tu_session_check(t, &o); /* the login: the connection is held after it */
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  tsvc_session_info_t si;
  tu_session_info(t, &si);
  assert_true(si.held);

  assert_int_equal(kill(r->pid, SIGSTOP), 0);
  tu_probe_out_t late = {0};
  uv_update_time(&t->loop);
  uint64_t t0 = uv_now(&t->loop);
  assert_int_equal(tsvc_session_check(t->s, count_cb, &late), 0);
  while (late.calls == 0) uv_run(&t->loop, UV_RUN_ONCE);
  uv_update_time(&t->loop);
  uint64_t took = uv_now(&t->loop) - t0;
  assert_int_equal(kill(r->pid, SIGCONT), 0);
  print_message("%s timer: %s \"%s\" after %llu ms\n", own ? "own" : "shared",
                tsvc_result_name(late.res.result), late.res.message, (unsigned long long)took);
  assert_int_equal(late.calls, 1);
  assert_int_equal(late.res.result, TSVC_RESULT_TIMEOUT);
  assert_string_equal(late.res.message, "no answer within 300 ms (held session)");
  /* Never early; late by the loop only (one more poll, 1 ms, and whatever
     a loaded machine adds: 5 s is far beyond that and far below a check
     that waits for the server's answer, which never comes). */
  assert_true(took >= 300);
  assert_true(took < 5300);
  tu_session_info(t, &si);
  assert_false(si.held); /* a timeout closes the held connection */
}

static void held_timeout_shared(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  held_timeout_at(false);
}

static void held_timeout_own(void **st) {
  (void)st;
  SKIP_IF_NO_SERVER();
  held_timeout_at(true);
}

/* A peer on the test's own loop: +PONG to the first request (the login),
 * bytes that are not RESP to the second (a check on the held connection). */
typedef struct {
  uv_tcp_t server, peer;
  int requests;
  bool peer_open;
} garbler_t;

static void garbler_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  static char buf[256];
  (void)h, (void)n;
  *b = uv_buf_init(buf, sizeof buf);
}

static void garbler_write_cb(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void garbler_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  garbler_t *g = st->data;
  (void)b;
  if (n <= 0) return;
  static const char pong[] = "+PONG\r\n", junk[] = "?not resp\r\n";
  const char *r = g->requests++ == 0 ? pong : junk;
  uv_write_t *w = malloc(sizeof *w);
  assert_non_null(w);
  uv_buf_t out = uv_buf_init((char *)r, (unsigned)strlen(r));
  assert_int_equal(uv_write(w, st, &out, 1, garbler_write_cb), 0);
}

static void garbler_conn(uv_stream_t *server, int status) {
  garbler_t *g = server->data;
  assert_int_equal(status, 0);
  assert_false(g->peer_open);
  uv_tcp_init(server->loop, &g->peer);
  g->peer.data = g;
  g->peer_open = true;
  assert_int_equal(uv_accept(server, (uv_stream_t *)&g->peer), 0);
  uv_read_start((uv_stream_t *)&g->peer, garbler_alloc, garbler_read);
}

/* A held check answered with bytes that are not RESP is a PROTOCOL verdict
 * given before its timeout: the timeout stays pending on the shared set.
 * Freeing the session then must take it out of the set; the set is kept
 * open past that timeout (the monitor's outlives its services), so ASan
 * sees a freed session read from the set otherwise. */
static void freed_session_leaves_the_set(void **st) {
  (void)st;
  garbler_t g = {0};
  tu_session_t t;
  memset(&t, 0, sizeof t);
  assert_int_equal(uv_loop_init(&t.loop), 0);
  assert_int_equal(tsvc_deadlines_init(&t.loop, &t.dls), 0);
  uv_tcp_init(&t.loop, &g.server);
  g.server.data = &g;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&g.server, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&g.server, 4, garbler_conn), 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&g.server, (struct sockaddr *)&ss, &len);
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_REDIS, .host = "127.0.0.1",
                         .port = ntohs(((struct sockaddr_in *)&ss)->sin_port), .timeout = 200};
  assert_int_equal(tsvc_session_new(&t.loop, &s, 60000, &t.s), 0);
  tsvc_session_set_deadlines(t.s, &t.dls);
  tu_probe_out_t o = {0};
  assert_int_equal(tsvc_session_check(t.s, count_cb, &o), 0); /* the login */
  while (o.calls == 0) uv_run(&t.loop, UV_RUN_ONCE);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  o.calls = 0;
  assert_int_equal(tsvc_session_check(t.s, count_cb, &o), 0); /* on the held connection */
  while (o.calls == 0) uv_run(&t.loop, UV_RUN_ONCE);
  print_message("held check: %s \"%s\"\n", tsvc_result_name(o.res.result), o.res.message);
  assert_int_equal(o.res.result, TSVC_RESULT_PROTOCOL);
  tsvc_session_free(t.s);
  t.s = NULL;
  /* Past the check's timeout, the set still open. */
  uv_timer_t tick;
  uv_timer_init(&t.loop, &tick);
  uv_timer_start(&tick, tick_cb, 400, 0);
  uv_run(&t.loop, UV_RUN_ONCE);
  while (uv_is_active((uv_handle_t *)&tick)) uv_run(&t.loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  if (g.peer_open) uv_close((uv_handle_t *)&g.peer, NULL);
  uv_close((uv_handle_t *)&g.server, NULL);
  tsvc_deadlines_close(&t.dls);
  tu_loop_finish(&t.loop);
  tsvc_deadlines_free(&t.dls);
  assert_int_equal(o.calls, 1);
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
      cmocka_unit_test_teardown(restart_under_session, stop_servers),
      cmocka_unit_test_teardown(login_timeout_held_late, stop_servers),
      cmocka_unit_test_teardown(login_grace_check_waits, stop_servers),
      cmocka_unit_test_teardown(held_timeout_shared, stop_servers),
      cmocka_unit_test_teardown(held_timeout_own, stop_servers),
      cmocka_unit_test(freed_session_leaves_the_set),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
