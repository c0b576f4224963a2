/*
 * test_probe_fake: the network probes against fake peers on 127.0.0.1, for
 * what real servers will not do on demand: hang, send garbage, flood, close
 * at once, reset. Also start errors and cancel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "servers.h"

static const tsvc_probe_kind_t kinds[] = {TSVC_PROBE_POSTGRES, TSVC_PROBE_REDIS,
                                          TSVC_PROBE_HTTP};
static const char *const kind_names[] = {"", "postgres", "redis", "tcp", "http"};

static tsvc_probe_spec_t spec_for(tsvc_probe_kind_t k, int port, tsvc_ms_t timeout) {
  tsvc_probe_spec_t s = {.kind = k, .host = "127.0.0.1", .port = port, .timeout = timeout};
  return s;
}

/* Run kind k against a fresh fake peer in mode m. */
static void run_fake(tsvc_probe_kind_t k, tu_fake_mode_t m, const void *reply, size_t len,
                     tsvc_ms_t timeout, tu_probe_out_t *o, tu_fake_t *f) {
  assert_int_equal(tu_fake_start(f, m, reply, len), 0);
  tsvc_probe_spec_t s = spec_for(k, f->port, timeout);
  tu_probe_run(&s, o);
  tu_fake_stop(f);
  /* The tcp probe may close before the peer even calls accept(). */
  if (k != TSVC_PROBE_TCP) assert_int_equal(f->accepted, 1);
}

/* A backend message: type, length, body. Returns its size. */
static size_t pg_msg(char *out, char type, const char *body, size_t blen) {
  uint32_t l = (uint32_t)blen + 4;
  out[0] = type;
  out[1] = (char)(l >> 24);
  out[2] = (char)(l >> 16);
  out[3] = (char)(l >> 8);
  out[4] = (char)l;
  memcpy(out + 5, body, blen);
  return blen + 5;
}

static void hang_times_out(void **st) {
  (void)st;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kinds); i++) {
    tu_probe_out_t o;
    tu_fake_t f;
    run_fake(kinds[i], TU_FAKE_HANG, NULL, 0, 300, &o, &f);
    print_message("%s hang: %s \"%s\" after %.1f ms\n", kind_names[kinds[i]],
                  tsvc_result_name(o.res.result), o.res.message, o.elapsed_ms);
    assert_int_equal(o.res.result, TSVC_RESULT_TIMEOUT);
    assert_true(o.elapsed_ms >= 299.0);
    /* 50 ms of slack, plus what the machine held the loop meanwhile. */
    assert_true(o.elapsed_ms < 300.0 + 50.0 + o.lag_ms);
    assert_true(o.res.latency_us >= 299000 && o.res.latency_us < 350000 + o.lag_ms * 1000);
    assert_true(f.received > 0); /* the request was sent */
    assert_int_equal(o.res.bytes_read, 0);
  }
}

static void garbage_is_protocol(void **st) {
  (void)st;
  static const char junk[] = "\x01\x02 this is not any protocol \xff\xfe\r\n";
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kinds); i++) {
    for (int hold = 0; hold < 2; hold++) {
      tu_probe_out_t o;
      tu_fake_t f;
      run_fake(kinds[i], hold ? TU_FAKE_REPLY : TU_FAKE_REPLY_CLOSE, junk, sizeof junk - 1, 2000,
               &o, &f);
      print_message("%s garbage: %s \"%s\"\n", kind_names[kinds[i]],
                    tsvc_result_name(o.res.result), o.res.message);
      assert_int_equal(o.res.result, TSVC_RESULT_PROTOCOL);
      assert_true(o.elapsed_ms < 1000); /* decided at once, not at the timeout */
    }
  }
  /* Plausible but wrong protocols. */
  tu_probe_out_t o;
  tu_fake_t f;
  run_fake(TSVC_PROBE_POSTGRES, TU_FAKE_REPLY_CLOSE, "+PONG\r\n", 7, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_PROTOCOL);
  run_fake(TSVC_PROBE_REDIS, TU_FAKE_REPLY_CLOSE, "HTTP/1.1 400 Bad Request\r\n\r\n", 28, 2000, &o,
           &f);
  assert_int_equal(o.res.result, TSVC_RESULT_PROTOCOL);
  run_fake(TSVC_PROBE_HTTP, TU_FAKE_REPLY_CLOSE, "SSH-2.0-OpenSSH_9.2\r\n", 21, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_PROTOCOL);
}

static void flood_is_bounded(void **st) {
  (void)st;
  /* Each prefix keeps the parser asking for more, so only the read bound
   * stops the probe: a notice of 20000 bytes, a RESP line with no end, a
   * status line with no end; and plain garbage. */
  static const uint8_t pg_notice[] = {'N', 0, 0, 0x4e, 0x20};
  struct {
    tsvc_probe_kind_t k;
    const void *prefix;
    size_t len;
  } cases[] = {
      {TSVC_PROBE_POSTGRES, pg_notice, sizeof pg_notice},
      {TSVC_PROBE_POSTGRES, "\x07garbage", 8},
      {TSVC_PROBE_REDIS, "+", 1},
      {TSVC_PROBE_REDIS, NULL, 0},
      {TSVC_PROBE_HTTP, "HTTP/1.1 200 ", 13},
      {TSVC_PROBE_HTTP, NULL, 0},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cases); i++) {
    tu_probe_out_t o;
    tu_fake_t f;
    run_fake(cases[i].k, TU_FAKE_FLOOD, cases[i].prefix, cases[i].len, 5000, &o, &f);
    print_message("%s flood: %s \"%s\", read %zu bytes, peer sent %llu\n",
                  kind_names[cases[i].k], tsvc_result_name(o.res.result), o.res.message,
                  o.res.bytes_read, (unsigned long long)f.sent);
    assert_int_equal(o.res.result, TSVC_RESULT_PROTOCOL);
    assert_true(o.res.bytes_read > 0);
    assert_true(o.res.bytes_read <= TSVC_PROBE_MAX_READ);
    assert_true(o.elapsed_ms < 2000);
  }
  /* A valid status line and then 10 MiB of body: healthy, still bounded. */
  tu_probe_out_t o;
  tu_fake_t f;
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n";
  run_fake(TSVC_PROBE_HTTP, TU_FAKE_FLOOD, ok, sizeof ok - 1, 5000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_true(o.res.bytes_read <= TSVC_PROBE_MAX_READ);
  assert_true(o.elapsed_ms < 2000);
}

static void close_at_once_is_reset(void **st) {
  (void)st;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kinds); i++) {
    tu_probe_out_t o;
    tu_fake_t f;
    run_fake(kinds[i], TU_FAKE_CLOSE, NULL, 0, 2000, &o, &f);
    print_message("%s close: %s \"%s\"\n", kind_names[kinds[i]], tsvc_result_name(o.res.result),
                  o.res.message);
    assert_int_equal(o.res.result, TSVC_RESULT_RESET);
    assert_true(o.elapsed_ms < 1000);
  }
  /* A partial reply then close. */
  tu_probe_out_t o;
  tu_fake_t f;
  run_fake(TSVC_PROBE_POSTGRES, TU_FAKE_REPLY_CLOSE, "R\0\0", 3, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_RESET);
  assert_string_equal(o.res.message, "connection closed by the peer after 3 bytes");
  run_fake(TSVC_PROBE_REDIS, TU_FAKE_REPLY_CLOSE, "+PON", 4, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_RESET);
}

static void rst_is_reset(void **st) {
  (void)st;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kinds); i++) {
    tu_probe_out_t o;
    tu_fake_t f;
    run_fake(kinds[i], TU_FAKE_RST, NULL, 0, 2000, &o, &f);
    print_message("%s rst: %s \"%s\"\n", kind_names[kinds[i]], tsvc_result_name(o.res.result),
                  o.res.message);
    assert_int_equal(o.res.result, TSVC_RESULT_RESET);
    assert_true(o.elapsed_ms < 1000);
  }
}

static void refused(void **st) {
  (void)st;
  int port = tu_free_port();
  const tsvc_probe_kind_t all[] = {TSVC_PROBE_POSTGRES, TSVC_PROBE_REDIS, TSVC_PROBE_HTTP,
                                   TSVC_PROBE_TCP};
  for (size_t i = 0; i < TSVC_ARRAY_LEN(all); i++) {
    tsvc_probe_spec_t s = spec_for(all[i], port, 2000);
    tu_probe_out_t o;
    tu_probe_run(&s, &o);
    assert_int_equal(o.res.result, TSVC_RESULT_REFUSED);
    assert_non_null(strstr(o.res.message, "connection refused"));
    assert_int_equal(o.res.exit_code, -1);
  }
}

static void tcp_connect(void **st) {
  (void)st;
  tu_probe_out_t o;
  tu_fake_t f;
  run_fake(TSVC_PROBE_TCP, TU_FAKE_HANG, NULL, 0, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_true(o.elapsed_ms < 1000);
  assert_true(o.res.latency_us > 0);
  /* A peer that resets right after accept: the connect succeeded, unless
   * the reset arrives before the loop sees the connect complete (then the
   * socket reports ECONNRESET). Either is a true account; nothing else is. */
  run_fake(TSVC_PROBE_TCP, TU_FAKE_RST, NULL, 0, 2000, &o, &f);
  assert_true(o.res.result == TSVC_RESULT_OK || o.res.result == TSVC_RESULT_RESET);
}

/* The tcp probe closes with an RST, so that it leaves no TIME_WAIT behind
   (tcp.c): the peer's accepted connection reads ECONNRESET, not an orderly
   end. Ten checks, ten resets. */
static void tcp_closes_with_reset(void **st) {
  (void)st;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
  assert_int_equal(listen(lfd, 16), 0);
  socklen_t len = sizeof sa;
  getsockname(lfd, (struct sockaddr *)&sa, &len);
  for (int i = 0; i < 10; i++) {
    tsvc_probe_spec_t s = spec_for(TSVC_PROBE_TCP, ntohs(sa.sin_port), 2000);
    tu_probe_out_t o;
    tu_probe_run(&s, &o); /* returns once the probe closed its socket */
    assert_int_equal(o.res.result, TSVC_RESULT_OK);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    char c;
    errno = 0;
    ssize_t n = recv(fd, &c, 1, 0);
    if (!(n < 0 && errno == ECONNRESET))
      fail_msg("check %d: the peer read %zd (%s), expected a reset", i, n, strerror(errno));
    close(fd);
  }
  close(lfd);
}

/* A loop that comes back late runs its timers before it polls: the
   probe's timeout must not fail a check whose answer is already waiting in
   the socket (probe.c, timer_cb: the last look). The loop is held, after
   the request went out, until the fake peer has answered and the probe's
   deadline has passed; the answer is then read, not timed out. */
typedef struct {
  tu_fake_t *f;
  uint64_t deadline_ns; /* the probe's: when the loop may go on */
  bool held;            /* it was held with the answer sent and unread */
} holder_t;

static void hold_cb(uv_check_t *c) {
  holder_t *h = c->data;
  uv_check_stop(c);
  /* First check phase: the connect was done in the poll before it, and
     the request written. Wait (bounded) for the peer's answer. */
  uint64_t give_up = uv_hrtime() + UINT64_C(10000000000);
  while (__atomic_load_n(&h->f->sent, __ATOMIC_SEQ_CST) == 0 && uv_hrtime() < give_up)
    tu_sleep_ms(1);
  h->held = __atomic_load_n(&h->f->sent, __ATOMIC_SEQ_CST) > 0;
  while (uv_hrtime() < h->deadline_ns) tu_sleep_ms(5);
}

static void late_loop_reads_the_answer(void **st) {
  (void)st;
  static const char pong[] = "+PONG\r\n+OK\r\n";
  tu_fake_t f;
  assert_int_equal(tu_fake_start(&f, TU_FAKE_REPLY_CLOSE, pong, sizeof pong - 1), 0);
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  tu_probe_out_t o;
  memset(&o, 0, sizeof o);
  tu_probe_ctx_t ctx = {&o, uv_hrtime(), 0};
  tsvc_probe_spec_t s = spec_for(TSVC_PROBE_REDIS, f.port, 200);
  /* Held until 300 ms after the start: 100 ms past the timeout. */
  holder_t h = {.f = &f, .deadline_ns = uv_hrtime() + UINT64_C(300000000)};
  uv_check_t check;
  uv_check_init(&loop, &check);
  check.data = &h;
  uv_check_start(&check, hold_cb);
  assert_int_equal(tsvc_probe_start(&loop, &s, tu_probe_cb, &ctx, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&check, NULL);
  tu_loop_finish(&loop);
  tu_fake_stop(&f);
  assert_true(h.held); /* the case was made: answer sent, loop held past the deadline */
  assert_int_equal(o.calls, 1);
  if (o.res.result != TSVC_RESULT_OK)
    fail_msg("%s: %s", tsvc_result_name(o.res.result), o.res.message);
  assert_string_equal(o.res.message, "PONG");
}

static void postgres_replies(void **st) {
  (void)st;
  tu_probe_out_t o;
  tu_fake_t f;
  static const char body[] =
      "SFATAL\0VFATAL\0C57P03\0Mthe database system is starting up\0Fpostmaster.c\0";
  char starting[256];
  size_t n = pg_msg(starting, 'E', body, sizeof body); /* sizeof: the final NUL too */
  run_fake(TSVC_PROBE_POSTGRES, TU_FAKE_REPLY_CLOSE, starting, n, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_BAD_STATUS);
  assert_string_equal(o.res.message, "rejecting connections: the database system is starting up");
  /* The startup packet: user and database. */
  assert_int_equal(f.req_len, 8 + sizeof "user\0postgres\0database\0postgres\0application_name\0tanuki-svc\0");
  assert_memory_equal(f.req + 8, "user\0postgres\0database\0postgres\0", 32);

  /* AuthenticationOk and then silence: healthy at once, but the probe waits
   * (up to its timeout) for the server to finish and close. */
  run_fake(TSVC_PROBE_POSTGRES, TU_FAKE_REPLY, "R\0\0\0\x08\0\0\0\0", 9, 300, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_true(o.res.latency_us < 200000 + o.lag_ms * 1000);
  assert_true(o.elapsed_ms >= 299.0 && o.elapsed_ms < 350.0 + o.lag_ms);

  /* AuthenticationOk, ReadyForQuery: the probe sends Terminate. */
  static const char ready[] = "R\0\0\0\x08\0\0\0\0Z\0\0\0\x05I";
  assert_int_equal(tu_fake_start(&f, TU_FAKE_REPLY, ready, sizeof ready - 1), 0);
  tsvc_probe_spec_t s = spec_for(TSVC_PROBE_POSTGRES, f.port, 300);
  s.user = "tanuki";
  s.database = "tanuki_dev";
  tu_probe_run(&s, &o);
  tu_fake_stop(&f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_int_equal(f.req[f.req_len - 5], 'X'); /* Terminate came last */
  assert_memory_equal(f.req + 8, "user\0tanuki\0database\0tanuki_dev\0a", 33);

  /* An MD5 password request: healthy; the probe closes at once. */
  run_fake(TSVC_PROBE_POSTGRES, TU_FAKE_REPLY, "R\0\0\0\x0c\0\0\0\x05salt", 13, 2000, &o, &f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_true(o.elapsed_ms < 1000);
  assert_non_null(strstr(o.res.message, "MD5"));
}

static void redis_replies(void **st) {
  (void)st;
  struct {
    const char *reply;
    tsvc_result_t want;
    const char *msg;
  } cases[] = {
      {"+PONG\r\n+OK\r\n", TSVC_RESULT_OK, "PONG"},
      {"-LOADING Redis is loading the dataset in memory\r\n+OK\r\n", TSVC_RESULT_BAD_STATUS,
       "LOADING Redis is loading the dataset in memory"},
      {"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n",
       TSVC_RESULT_BAD_STATUS,
       "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."},
      {"+OK\r\n", TSVC_RESULT_BAD_STATUS, "OK"},
      {":1\r\n", TSVC_RESULT_BAD_STATUS, ":1"},
      {"$4\r\nPONG\r\n", TSVC_RESULT_BAD_STATUS, "$4"},
      {"+PONG\r\n", TSVC_RESULT_OK, "PONG"}, /* no QUIT reply before the close: fine */
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cases); i++) {
    tu_probe_out_t o;
    tu_fake_t f;
    run_fake(TSVC_PROBE_REDIS, TU_FAKE_REPLY_CLOSE, cases[i].reply, strlen(cases[i].reply), 2000,
             &o, &f);
    assert_int_equal(o.res.result, cases[i].want);
    assert_string_equal(o.res.message, cases[i].msg);
    assert_string_equal(f.req, "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n");
  }
  /* AUTH with a username, pipelined before PING and QUIT. */
  tu_fake_t f;
  assert_int_equal(tu_fake_start(&f, TU_FAKE_REPLY_CLOSE, "+OK\r\n+PONG\r\n+OK\r\n", 17), 0);
  tsvc_probe_spec_t s = spec_for(TSVC_PROBE_REDIS, f.port, 2000);
  s.username = "app";
  s.password = "pw";
  tu_probe_out_t o;
  tu_probe_run(&s, &o);
  tu_fake_stop(&f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);
  assert_string_equal(f.req,
                      "*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n"
                      "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n");
}

/* A held redis session whose first check (its login) meets a peer in a
 * state no real server is put in on demand: the probe's verdict and
 * message each time, and a peer that never answers is TIMEOUT. */
static void redis_session_replies(void **st) {
  (void)st;
  struct {
    tu_fake_mode_t mode;
    const char *reply;
  } cases[] = {
      {TU_FAKE_REPLY_CLOSE, "+PONG\r\n"},
      {TU_FAKE_REPLY_CLOSE, "-LOADING Redis is loading the dataset in memory\r\n"},
      {TU_FAKE_REPLY_CLOSE, ":1\r\n"},
      {TU_FAKE_REPLY_CLOSE, "HTTP/1.1 400 Bad Request\r\n\r\n"},
      {TU_FAKE_CLOSE, NULL},
      {TU_FAKE_RST, NULL},
      {TU_FAKE_HANG, NULL},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cases); i++) {
    const char *r = cases[i].reply;
    tu_probe_out_t o, so;
    tu_fake_t f;
    run_fake(TSVC_PROBE_REDIS, cases[i].mode, r, r ? strlen(r) : 0, 300, &o, &f);
    assert_int_equal(tu_fake_start(&f, cases[i].mode, r, r ? strlen(r) : 0), 0);
    tsvc_probe_spec_t s = spec_for(TSVC_PROBE_REDIS, f.port, 300);
    tu_session_t t;
    tu_session_open(&t, &s, 60000);
    tu_session_check(&t, &so);
    tu_session_close(&t);
    tu_fake_stop(&f);
    print_message("case %zu: probe %s \"%s\", session %s \"%s\"\n", i,
                  tsvc_result_name(o.res.result), o.res.message,
                  tsvc_result_name(so.res.result), so.res.message);
    /* A reset right after accept may beat the connect (see tcp_connect). */
    if (cases[i].mode == TU_FAKE_RST && o.res.result != so.res.result) continue;
    assert_int_equal(so.res.result, o.res.result);
    /* The probe reads QUIT's reply too; its "after N bytes" may differ. */
    if (so.res.result != TSVC_RESULT_RESET) assert_string_equal(so.res.message, o.res.message);
  }
}

static void http_replies(void **st) {
  (void)st;
  struct {
    const char *reply;
    int min, max;
    tsvc_result_t want;
    const char *msg;
  } cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0, 0, TSVC_RESULT_OK, "HTTP 200"},
      {"HTTP/1.1 301 Moved\r\n\r\n", 0, 0, TSVC_RESULT_OK, "HTTP 301"},
      {"HTTP/1.1 503 Service Unavailable\r\n\r\n", 0, 0, TSVC_RESULT_BAD_STATUS, "HTTP 503"},
      {"HTTP/1.0 404 Not Found\r\n\r\n", 0, 0, TSVC_RESULT_BAD_STATUS, "HTTP 404"},
      {"HTTP/1.1 204 No Content\r\n\r\n", 200, 204, TSVC_RESULT_OK, "HTTP 204"},
      {"HTTP/1.1 301 Moved\r\n\r\n", 200, 299, TSVC_RESULT_BAD_STATUS, "HTTP 301"},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(cases); i++) {
    tu_fake_t f;
    assert_int_equal(
        tu_fake_start(&f, TU_FAKE_REPLY_CLOSE, cases[i].reply, strlen(cases[i].reply)), 0);
    tsvc_probe_spec_t s = spec_for(TSVC_PROBE_HTTP, f.port, 2000);
    s.path = "/healthz?full=1";
    s.status_min = cases[i].min;
    s.status_max = cases[i].max;
    tu_probe_out_t o;
    tu_probe_run(&s, &o);
    tu_fake_stop(&f);
    assert_int_equal(o.res.result, cases[i].want);
    assert_string_equal(o.res.message, cases[i].msg);
    char want[128];
    snprintf(want, sizeof want, "GET /healthz?full=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", f.port);
    assert_memory_equal(f.req, want, strlen(want));
    assert_non_null(strstr(f.req, "\r\nConnection: close\r\n"));
    assert_string_equal(f.req + f.req_len - 4, "\r\n\r\n");
  }
}

static void hostname_resolves(void **st) {
  (void)st;
  tu_probe_out_t o;
  tu_fake_t f;
  assert_int_equal(tu_fake_start(&f, TU_FAKE_REPLY_CLOSE, "+PONG\r\n+OK\r\n", 12), 0);
  tsvc_probe_spec_t s = spec_for(TSVC_PROBE_REDIS, f.port, 2000);
  s.host = "localhost";
  tu_probe_run(&s, &o);
  tu_fake_stop(&f);
  assert_int_equal(o.res.result, TSVC_RESULT_OK);

  s.host = "tanuki-no-such-host.invalid";
  tu_probe_run(&s, &o);
  print_message("unresolvable: %s \"%s\"\n", tsvc_result_name(o.res.result), o.res.message);
  assert_int_equal(o.res.result, TSVC_RESULT_REFUSED);
  assert_non_null(strstr(o.res.message, "cannot resolve tanuki-no-such-host.invalid"));
}

static void never_cb(const tsvc_probe_result_t *res, void *data) {
  (void)res;
  (*(int *)data)++;
}

static void start_errors(void **st) {
  (void)st;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int calls = 0;
  tsvc_probe_t *p = (tsvc_probe_t *)&calls;
  char *empty_argv[] = {NULL};
  char *blank_argv[] = {"", NULL};
  tsvc_probe_spec_t bad[] = {
      {.kind = TSVC_PROBE_RUNNING, .port = 1, .timeout = 100},
      {.kind = TSVC_PROBE_AUTO, .port = 1, .timeout = 100},
      {.kind = (tsvc_probe_kind_t)42, .port = 1, .timeout = 100},
      {.kind = TSVC_PROBE_TCP, .port = 1, .timeout = 0},
      {.kind = TSVC_PROBE_TCP, .port = 0, .timeout = 100},
      {.kind = TSVC_PROBE_TCP, .port = 65536, .timeout = 100},
      {.kind = TSVC_PROBE_HTTP, .port = 80, .timeout = 100, .status_min = 300, .status_max = 200},
      {.kind = TSVC_PROBE_HTTP, .port = 80, .timeout = 100, .path = "no-slash"},
      {.kind = TSVC_PROBE_EXEC, .timeout = 100},
      {.kind = TSVC_PROBE_EXEC, .timeout = 100, .argv = empty_argv},
      {.kind = TSVC_PROBE_EXEC, .timeout = 100, .argv = blank_argv},
  };
  for (size_t i = 0; i < TSVC_ARRAY_LEN(bad); i++) {
    assert_int_equal(tsvc_probe_start(&loop, &bad[i], never_cb, &calls, &p), TSVC_EINVAL);
    assert_null(p);
  }
  /* A user too long for a startup packet fails inside the kind's start. */
  char longuser[2000];
  memset(longuser, 'u', sizeof longuser - 1);
  longuser[sizeof longuser - 1] = '\0';
  tsvc_probe_spec_t s = {.kind = TSVC_PROBE_POSTGRES, .port = 5432, .timeout = 100,
                         .user = longuser};
  assert_int_equal(tsvc_probe_start(&loop, &s, never_cb, &calls, &p), TSVC_EINVAL);
  assert_int_equal(tsvc_probe_start(&loop, NULL, never_cb, &calls, NULL), TSVC_EINVAL);
  tsvc_probe_spec_t ok = {.kind = TSVC_PROBE_TCP, .port = 1, .timeout = 100};
  assert_int_equal(tsvc_probe_start(&loop, &ok, NULL, &calls, NULL), TSVC_EINVAL);
  tu_loop_finish(&loop);
  assert_int_equal(calls, 0);
}

/* ---- cancel ------------------------------------------------------------- */

typedef struct {
  tsvc_probe_t *probe;
  tu_fake_t *fake;
  int calls;
  int ticks;
  int wait_ms;
} cancel_ctx_t;

static void cancel_cb(const tsvc_probe_result_t *res, void *data) {
  (void)res;
  ((cancel_ctx_t *)data)->calls++;
}

static void cancel_tick(uv_timer_t *t) {
  cancel_ctx_t *c = t->data;
  c->ticks++;
  bool ready = c->fake ? __atomic_load_n(&c->fake->accepted, __ATOMIC_SEQ_CST) > 0 : true;
  if ((ready && c->ticks * 5 >= c->wait_ms) || c->ticks > 400) {
    tsvc_probe_cancel(c->probe);
    tsvc_probe_cancel(c->probe); /* twice is harmless */
    uv_close((uv_handle_t *)t, NULL);
  }
}

/* Start s, cancel it after wait_ms (once the fake accepted, if any). */
static void run_cancel(tsvc_probe_spec_t *s, tu_fake_t *f, int wait_ms) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  cancel_ctx_t c = {.fake = f, .wait_ms = wait_ms};
  assert_int_equal(tsvc_probe_start(&loop, s, cancel_cb, &c, &c.probe), 0);
  assert_non_null(c.probe);
  if (wait_ms < 0) {
    tsvc_probe_cancel(c.probe); /* at once, before the loop ever runs */
  } else {
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &c;
    uv_timer_start(&t, cancel_tick, 5, 5);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  tu_loop_finish(&loop);
  assert_int_equal(c.calls, 0);
}

static void cancel_in_flight(void **st) {
  (void)st;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kinds); i++) {
    tu_fake_t f;
    assert_int_equal(tu_fake_start(&f, TU_FAKE_HANG, NULL, 0), 0);
    tsvc_probe_spec_t s = spec_for(kinds[i], f.port, 5000);
    run_cancel(&s, &f, 50);   /* connected, waiting for the reply */
    run_cancel(&s, NULL, -1); /* connecting */
    s.host = "localhost";
    run_cancel(&s, NULL, -1); /* resolving */
    run_cancel(&s, NULL, 0);  /* resolving or just resolved */
    tu_fake_stop(&f);
  }
  /* After the verdict, while waiting for the server to close. */
  tu_fake_t f;
  assert_int_equal(tu_fake_start(&f, TU_FAKE_REPLY, "R\0\0\0\x08\0\0\0\0", 9), 0);
  tsvc_probe_spec_t s = spec_for(TSVC_PROBE_POSTGRES, f.port, 5000);
  run_cancel(&s, &f, 100);
  tu_fake_stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hang_times_out),    cmocka_unit_test(garbage_is_protocol),
      cmocka_unit_test(flood_is_bounded),  cmocka_unit_test(close_at_once_is_reset),
      cmocka_unit_test(rst_is_reset),      cmocka_unit_test(refused),
      cmocka_unit_test(tcp_connect),
      cmocka_unit_test(tcp_closes_with_reset),
      cmocka_unit_test(late_loop_reads_the_answer),       cmocka_unit_test(postgres_replies),
      cmocka_unit_test(redis_replies),     cmocka_unit_test(http_replies),
      cmocka_unit_test(redis_session_replies),
      cmocka_unit_test(hostname_resolves), cmocka_unit_test(start_errors),
      cmocka_unit_test(cancel_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
