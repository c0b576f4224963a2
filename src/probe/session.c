/*
 * session.c: held-session probes (see session.h). One tsvc_session_t per
 * service; the held connection is a conn_t of its own, so that a closing
 * connection (freed after its close callbacks) never holds up a new one.
 */
#include "probe/session.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "probe/deadline.h"
#include "probe/pg_reply.h"
#include "probe/resp.h"

typedef enum {
  C_RESOLVING,  /* getaddrinfo in flight */
  C_CONNECTING, /* connect in flight */
  C_LOGIN,      /* startup, authentication, the first PING */
  C_IDLE,       /* logged in, nothing asked */
  C_BUSY        /* a check's request sent, its reply awaited */
} conn_state_t;

#define SCRAM_KEY_LEN 32 /* SHA-256 */
/* Bytes a held connection keeps unparsed, at most: a PONG, an empty query's
   answer, a login's ParameterStatus messages (read and dropped one by one)
   fit many times over; 1,000 held connections cost 1 MiB for it, not the
   probe's 4 MiB. More is "a reply above ..." and closes the connection. */
#define SESSION_READ 1024
/* How long a login may go on past the check's timeout (login_timeout). */
#define LOGIN_GRACE_MS 5000

typedef struct conn_s {
  tsvc_session_t *s; /* NULL once detached (closing) */
  uv_loop_t *loop;
  conn_state_t state;
  int refs; /* open handles and the getaddrinfo in flight */
  bool closing, tcp_init, gai_pending;
  uv_timer_t timer; /* the login's timeout */
  bool last_look;   /* it waits for one more poll (probe.c, timer_cb) */
  uv_getaddrinfo_t gai;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uint8_t rbuf[SESSION_READ + 1];
  size_t rlen;
  /* login */
  int replies;     /* redis: replies read during the login */
  bool auth_ok;    /* postgres: AuthenticationOk seen */
  bool saw_empty;  /* postgres, held: EmptyQueryResponse seen */
  char note[160];  /* redis: what AUTH said when PING still answered */
  char cnonce[32];                        /* SCRAM: our nonce, base64 */
  char first_bare[64];                    /* SCRAM: client-first-message-bare */
  unsigned char server_sig[SCRAM_KEY_LEN]; /* SCRAM: what the server must prove */
  bool sasl_started;
  bool as_check;   /* redis: this login is the check in flight (the first
                      check, or one after the connection was lost) */
  bool grace;      /* past the check's timeout (login_timeout) */
} conn_t;

/* One write, owned by the write until its callback. */
typedef struct {
  uv_write_t req;
  size_t len;
  uint8_t data[];
} wr_t;

struct tsvc_session_s {
  uv_loop_t *loop;
  tsvc_probe_kind_t kind;
  char *host, *user, *database, *password, *username;
  int port;
  tsvc_ms_t timeout, full_every;
  uint64_t last_full_ns; /* start of the last full probe; 0: never */
  uint64_t retry_ns;     /* no held connection opened before this */
  conn_t *conn;
  uv_timer_t timer; /* the timeout of a check on the held connection */
  tsvc_deadlines_t *dls; /* ... or this shared set's deadline dl, when set
                            (tsvc_session_set_deadlines) */
  tsvc_deadline_t dl;
  bool last_look;   /* it waits for one more poll (probe.c, timer_cb) */
  bool freeing;
  bool in_call;   /* inside tsvc_session_check: no verdict may be given */
  bool fail_now;  /* ... and the connection failed: start the full probe */
  /* The check in flight. */
  bool in_check, on_conn;
  tsvc_probe_cb cb;
  void *data;
  uint64_t t0;
  tsvc_probe_t *probe; /* the full probe in flight */
  tsvc_session_info_t info;
};

/* The held postgres check: an empty query, answered by EmptyQueryResponse
   and ReadyForQuery (issue 13 asks for it: the backend runs its query path,
   a transaction start and commit included). A bare Sync would cost the
   backend about a fifth less CPU (bench/results.md, "Postgres held
   session: where the server's CPU goes") but tests less of it. */
static const uint8_t pg_empty_query[6] = {'Q', 0, 0, 0, 5, 0};
static const char redis_ping[] = "*1\r\n$4\r\nPING\r\n";

static void fall_back(tsvc_session_t *s);
static void check_timer_stop(tsvc_session_t *s);

bool tsvc_session_supported(tsvc_probe_kind_t kind) {
  return kind == TSVC_PROBE_REDIS || kind == TSVC_PROBE_POSTGRES;
}

/* ---- the check's verdict -------------------------------------------------- */

static void deliver(tsvc_session_t *s, const tsvc_probe_result_t *res) {
  s->in_check = false;
  s->on_conn = false;
  tsvc_probe_cb cb = s->cb;
  void *data = s->data;
  s->cb = NULL;
  cb(res, data); /* may check again or free the session: the last word */
}

/* A verdict whose message is text as it is (printable ASCII): a held
   check's "PONG" without a format to run. */
static void deliver_text(tsvc_session_t *s, tsvc_result_t r, const char *text) {
  tsvc_probe_result_t res = {.result = r, .exit_code = -1};
  res.latency_us = (int64_t)((uv_hrtime() - s->t0) / 1000);
  tsvc_strlcpy(res.message, text, sizeof res.message);
  if (s->conn) res.bytes_read = s->conn->rlen;
  deliver(s, &res);
}

static void deliver_msg(tsvc_session_t *s, tsvc_result_t r, const char *fmt, ...)
    TSVC_PRINTF(3, 4);
static void deliver_msg(tsvc_session_t *s, tsvc_result_t r, const char *fmt, ...) {
  tsvc_probe_result_t res = {.result = r, .exit_code = -1};
  res.latency_us = (int64_t)((uv_hrtime() - s->t0) / 1000);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res.message, sizeof res.message, fmt, ap);
  va_end(ap);
  for (char *p = res.message; *p; p++)
    if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
  if (s->conn) res.bytes_read = s->conn->rlen;
  deliver(s, &res);
}

/* ---- connections ---------------------------------------------------------- */

static void conn_unref(conn_t *c) {
  if (--c->refs == 0) free(c);
}

static void conn_closed_cb(uv_handle_t *h) { conn_unref(h->data); }

/* Detach and close c; why goes to the session's last_error. */
static void conn_close(conn_t *c, const char *why) {
  if (c->closing) return;
  c->closing = true;
  tsvc_session_t *s = c->s;
  if (s) {
    if (why) {
      tsvc_strlcpy(s->info.last_error, why, sizeof s->info.last_error);
      for (char *p = s->info.last_error; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    }
    s->conn = NULL;
    s->info.held = false;
    c->s = NULL;
  }
  uv_close((uv_handle_t *)&c->timer, conn_closed_cb);
  if (c->tcp_init) uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
  if (c->gai_pending) uv_cancel((uv_req_t *)&c->gai); /* its callback unrefs */
}

/* The server refused the login (a password, a role): close,
 * and open no held connection before full_every has passed, so that a bad
 * password costs the server one failed login a full_every. */
static void conn_reject(conn_t *c, const char *why) {
  if (c->s) c->s->retry_ns = uv_hrtime() + (uint64_t)c->s->full_every * 1000000u;
  conn_close(c, why);
}

/* The connection failed below the protocol (connect, reset, closed, a
 * write): close it; a check waiting on it is decided by the full probe. */
static void conn_fail(conn_t *c, const char *why) {
  tsvc_session_t *s = c->s;
  bool waiting = s && s->on_conn && (c->state == C_BUSY || c->as_check);
  conn_close(c, why);
  if (!waiting) return;
  if (s->in_call) s->fail_now = true; /* tsvc_session_check starts it */
  else fall_back(s);
}

static void write_cb(uv_write_t *req, int status) {
  wr_t *w = (wr_t *)req;
  conn_t *c = req->data;
  free(w);
  if (status < 0 && status != UV_ECANCELED && !c->closing) {
    /* Handled by the reader too (EOF or reset), but a write error may be
       all there is to see. */
    char why[96];
    snprintf(why, sizeof why, "cannot send: %s", uv_strerror(status));
    conn_fail(c, why);
  }
}

/* Send n bytes (copied). Returns 0 or a libuv error.
 *
 * A held check's request (a PING, an empty query) fits in the socket's
 * buffer at once: uv_try_write sends it with the one write(2) and nothing
 * else. uv_write would cost a request (allocated here, for the copy), a
 * callback through the loop's pending queue and, on completion, an
 * epoll_ctl(EPOLL_CTL_MOD) at the next poll: libuv 1.44's uv__drain stops
 * POLLOUT on the watcher, which queues the watcher for an epoll_ctl even
 * though POLLOUT was never started (issue 13: one epoll_ctl per held check
 * under strace). What try_write did not send (a full buffer, or an error:
 * the write then reports it, as before, through write_cb) goes the old
 * way. */
static int conn_send(conn_t *c, const void *p, size_t n) {
  uv_buf_t tb = uv_buf_init((char *)p, (unsigned)n);
  int sent = uv_try_write((uv_stream_t *)&c->tcp, &tb, 1);
  if (sent > 0) {
    if ((size_t)sent == n) return 0;
    p = (const uint8_t *)p + sent;
    n -= (size_t)sent;
  }
  if (c->s) c->s->info.queued_sends++;
  wr_t *w = malloc(sizeof *w + n);
  if (!w) return UV_ENOMEM;
  memcpy(w->data, p, n);
  w->len = n;
  w->req.data = c;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
  if (rc < 0) free(w);
  return rc;
}

/* ---- redis ---------------------------------------------------------------- */

static int redis_login(conn_t *c) {
  tsvc_session_t *s = c->s;
  tsvc_buf_t b;
  tsvc_buf_init(&b, 2048);
  int rc = 0;
  if (s->password) {
    const char *auth[] = {"AUTH", s->username ? s->username : s->password, s->password};
    rc = tsvc_resp_add_command(&b, auth, s->username ? 3 : 2);
  }
  if (!rc) rc = tsvc_buf_add(&b, redis_ping, sizeof redis_ping - 1);
  if (!rc) rc = conn_send(c, b.data, b.len);
  tsvc_buf_free(&b);
  return rc;
}

/* Bytes arrived on a redis connection. */
static void redis_data(conn_t *c) {
  tsvc_session_t *s = c->s;
  size_t pos = 0;
  char line[TSVC_PROBE_MSG_LEN];
  for (;;) {
    tsvc_resp_kind_t k = tsvc_resp_read((const char *)c->rbuf, c->rlen, &pos, line, sizeof line);
    if (k == TSVC_RESP_NEED_MORE) break;
    if (k == TSVC_RESP_PROTOCOL) {
      bool verdict = c->state == C_BUSY || c->as_check;
      if (c->as_check) {
        s->info.full_checks++;
        check_timer_stop(s); /* a check that waited on a login in its grace */
      }
      conn_reject(c, "not a Redis reply");
      if (verdict) deliver_msg(s, TSVC_RESULT_PROTOCOL, "not a Redis reply");
      return;
    }
    bool pong = k == TSVC_RESP_SIMPLE && strcmp(line, "PONG") == 0;
    if (c->state == C_LOGIN) {
      if (s->password && c->replies++ == 0) { /* the AUTH reply */
        if (k != TSVC_RESP_SIMPLE) tsvc_strlcpy(c->note, line, sizeof c->note);
        continue;
      }
      /* The verdicts of the probe (redis.c) for its PING reply. */
      bool as_check = c->as_check;
      c->as_check = false;
      if (as_check) {
        s->info.full_checks++;
        check_timer_stop(s); /* a check that waited on a login in its grace */
      }
      if (!pong) {
        char msg[TSVC_PROBE_MSG_LEN], why[TSVC_PROBE_MSG_LEN + 32];
        tsvc_strlcpy(msg, c->note[0] && k == TSVC_RESP_ERROR ? c->note : line, sizeof msg);
        snprintf(why, sizeof why, "login: %s", c->note[0] ? c->note : line);
        conn_reject(c, why);
        if (as_check) deliver_msg(s, TSVC_RESULT_BAD_STATUS, "%s", msg);
        return;
      }
      c->state = C_IDLE;
      uv_timer_stop(&c->timer);
      s->info.held = true;
      s->info.connects++;
      if (pos < c->rlen) {
        conn_close(c, "the server sent a reply nobody asked for");
        if (as_check) deliver_msg(s, TSVC_RESULT_PROTOCOL, "not a Redis reply");
        return;
      }
      c->rlen = 0;
      if (as_check) {
        if (c->note[0]) deliver_msg(s, TSVC_RESULT_OK, "PONG (AUTH said: %s)", c->note);
        else deliver_msg(s, TSVC_RESULT_OK, "PONG");
      }
      return;
    }
    if (c->state != C_BUSY) {
      conn_close(c, "the server sent a reply nobody asked for");
      return;
    }
    /* The reply to a check's PING: the same verdicts as the full probe. */
    check_timer_stop(s);
    s->info.held_checks++;
    if (pong) {
      c->state = C_IDLE;
      if (pos < c->rlen) {
        conn_close(c, "the server sent a reply nobody asked for");
      } else {
        c->rlen = 0;
      }
      if (c->note[0]) deliver_msg(s, TSVC_RESULT_OK, "PONG (AUTH said: %s)", c->note);
      else deliver_text(s, TSVC_RESULT_OK, "PONG");
    } else {
      /* Any error closes the connection: the next check opens a new one
         through the full probe. */
      conn_close(c, line);
      deliver_msg(s, TSVC_RESULT_BAD_STATUS, "%s", line);
    }
    return;
  }
  /* Keep what is not parsed yet at the start of the buffer. */
  if (pos) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
}

/* ---- postgres ------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A PasswordMessage / SASL message: 'p', length, body. */
static int pg_send_p(conn_t *c, const void *body, size_t n) {
  uint8_t buf[1024];
  if (n + 5 > sizeof buf) return UV_E2BIG;
  buf[0] = 'p';
  put32(buf + 1, (uint32_t)(n + 4));
  memcpy(buf + 5, body, n);
  return conn_send(c, buf, n + 5);
}

static int pg_login(conn_t *c) {
  tsvc_session_t *s = c->s;
  uint8_t pkt[1024];
  size_t n = tsvc_pg_startup_packet(pkt, sizeof pkt, s->user, s->database, "tanuki-svc");
  if (n == 0) return UV_EINVAL;
  return conn_send(c, pkt, n);
}

static void hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = 0;
}

/* "md5" + md5hex(md5hex(password user) salt), as libpq's pg_md5_encrypt. */
static int pg_md5(conn_t *c, const uint8_t salt[4]) {
  tsvc_session_t *s = c->s;
  unsigned char d[16];
  char h1[33], out[36];
  unsigned int dl;
  EVP_MD_CTX *m = EVP_MD_CTX_new();
  if (!m) return UV_ENOMEM;
  int ok = EVP_DigestInit_ex(m, EVP_md5(), NULL) &&
           EVP_DigestUpdate(m, s->password, strlen(s->password)) &&
           EVP_DigestUpdate(m, s->user, strlen(s->user)) && EVP_DigestFinal_ex(m, d, &dl);
  if (ok) hex(d, 16, h1);
  ok = ok && EVP_DigestInit_ex(m, EVP_md5(), NULL) && EVP_DigestUpdate(m, h1, 32) &&
       EVP_DigestUpdate(m, salt, 4) && EVP_DigestFinal_ex(m, d, &dl);
  EVP_MD_CTX_free(m);
  if (!ok) return UV_EINVAL;
  memcpy(out, "md5", 3);
  hex(d, 16, out + 3);
  return pg_send_p(c, out, strlen(out) + 1);
}

/* SCRAM-SHA-256 (RFC 5802, RFC 7677), the client's first message. The
 * user name is left empty: the server uses the startup packet's. */
static int scram_first(conn_t *c, const uint8_t *mechs, size_t n) {
  bool found = false;
  for (size_t i = 0; i < n;) {
    const char *m = (const char *)mechs + i;
    size_t l = strnlen(m, n - i);
    if (l == 0) break;
    if (strcmp(m, "SCRAM-SHA-256") == 0) found = true;
    i += l + 1;
  }
  if (!found) return UV_ENOTSUP;
  unsigned char raw[18];
  if (RAND_bytes(raw, sizeof raw) != 1) return UV_EIO;
  EVP_EncodeBlock((unsigned char *)c->cnonce, raw, sizeof raw); /* 24 chars */
  snprintf(c->first_bare, sizeof c->first_bare, "n=,r=%s", c->cnonce);
  uint8_t body[256];
  static const char mech[] = "SCRAM-SHA-256";
  size_t ml = sizeof mech; /* with its NUL */
  size_t fl = 3 + strlen(c->first_bare);
  memcpy(body, mech, ml);
  put32(body + ml, (uint32_t)fl);
  memcpy(body + ml + 4, "n,,", 3);
  memcpy(body + ml + 7, c->first_bare, fl - 3);
  c->sasl_started = true;
  return pg_send_p(c, body, ml + 4 + fl);
}

static bool hmac256(const void *key, size_t klen, const void *msg, size_t mlen,
                    unsigned char out[SCRAM_KEY_LEN]) {
  unsigned int l = 0;
  return HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &l) && l == SCRAM_KEY_LEN;
}

/* The server's first message (r=,s=,i=): prove we know the password. */
static int scram_final(conn_t *c, const uint8_t *msg, size_t n) {
  tsvc_session_t *s = c->s;
  char sf[512];
  if (!c->sasl_started || n >= sizeof sf) return UV_EPROTO;
  memcpy(sf, msg, n);
  sf[n] = 0;
  const char *nonce = NULL, *salt = NULL, *iter = NULL;
  char tmp[512];
  memcpy(tmp, sf, n + 1);
  for (char *save = NULL, *a = strtok_r(tmp, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
    if (strncmp(a, "r=", 2) == 0) nonce = a + 2;
    else if (strncmp(a, "s=", 2) == 0) salt = a + 2;
    else if (strncmp(a, "i=", 2) == 0) iter = a + 2;
  }
  long it;
  size_t cl = strlen(c->cnonce);
  if (!nonce || !salt || !iter || strncmp(nonce, c->cnonce, cl) != 0 ||
      strlen(nonce) <= cl || tsvc_parse_int(iter, 1, 10000000, &it) != 0)
    return UV_EPROTO;
  unsigned char sraw[256];
  size_t sl = strlen(salt);
  if (sl == 0 || sl % 4 || sl / 4 * 3 > sizeof sraw) return UV_EPROTO;
  int dl = EVP_DecodeBlock(sraw, (const unsigned char *)salt, (int)sl);
  if (dl < 0) return UV_EPROTO;
  if (salt[sl - 1] == '=') dl--;
  if (salt[sl - 2] == '=') dl--;

  unsigned char salted[SCRAM_KEY_LEN], ckey[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN],
      csig[SCRAM_KEY_LEN], skey[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
  char without_proof[256], auth[1024], final[512], p64[64];
  snprintf(without_proof, sizeof without_proof, "c=biws,r=%s", nonce);
  int al = snprintf(auth, sizeof auth, "%s,%s,%s", c->first_bare, sf, without_proof);
  if (al < 0 || (size_t)al >= sizeof auth) return UV_EPROTO;
  unsigned int hl = 0;
  /* The password goes in as given (SASLprep of ASCII is the identity). */
  if (PKCS5_PBKDF2_HMAC(s->password, (int)strlen(s->password), sraw, dl, (int)it,
                        EVP_sha256(), SCRAM_KEY_LEN, salted) != 1 ||
      !hmac256(salted, sizeof salted, "Client Key", 10, ckey) ||
      EVP_Digest(ckey, sizeof ckey, stored, &hl, EVP_sha256(), NULL) != 1 ||
      !hmac256(stored, sizeof stored, auth, (size_t)al, csig) ||
      !hmac256(salted, sizeof salted, "Server Key", 10, skey) ||
      !hmac256(skey, sizeof skey, auth, (size_t)al, c->server_sig))
    return UV_EIO;
  for (size_t i = 0; i < SCRAM_KEY_LEN; i++) proof[i] = ckey[i] ^ csig[i];
  EVP_EncodeBlock((unsigned char *)p64, proof, SCRAM_KEY_LEN);
  int fl = snprintf(final, sizeof final, "%s,p=%s", without_proof, p64);
  if (fl < 0 || (size_t)fl >= sizeof final) return UV_EPROTO;
  return pg_send_p(c, final, (size_t)fl);
}

/* The server's last SASL message: v= must be the signature we expect. */
static bool scram_verify(conn_t *c, const uint8_t *msg, size_t n) {
  char want[64];
  EVP_EncodeBlock((unsigned char *)want, c->server_sig, SCRAM_KEY_LEN);
  size_t wl = strlen(want);
  return c->sasl_started && n == 2 + wl && memcmp(msg, "v=", 2) == 0 &&
         memcmp(msg + 2, want, wl) == 0;
}

/* An authentication request during the login. Returns 0 or why not. */
static const char *pg_auth(conn_t *c, const uint8_t *body, size_t n, char *why, size_t wl) {
  tsvc_session_t *s = c->s;
  if (n < 4) return "a malformed authentication request";
  uint32_t code = get32(body);
  int rc = 0;
  if (code == 0) {
    c->auth_ok = true;
    return NULL;
  }
  if (code == 12) { /* SASLFinal */
    return scram_verify(c, body + 4, n - 4) ? NULL
                                            : "the server's SCRAM signature is wrong";
  }
  if (!s->password) {
    snprintf(why, wl, "the server asks for a password (authentication request %u) and none "
             "is set", code);
    return why;
  }
  switch (code) {
    case 3: rc = pg_send_p(c, s->password, strlen(s->password) + 1); break;
    case 5: rc = n >= 8 ? pg_md5(c, body + 4) : UV_EPROTO; break;
    case 10: rc = scram_first(c, body + 4, n - 4); break;
    case 11: rc = scram_final(c, body + 4, n - 4); break;
    default:
      snprintf(why, wl, "unsupported authentication request %u", code);
      return why;
  }
  if (rc) {
    snprintf(why, wl, "authentication request %u: %s", code,
             rc == UV_ENOTSUP ? "no SCRAM-SHA-256 offered" : uv_strerror(rc));
    return why;
  }
  return NULL;
}

/* Why a held connection ends at message type: an ErrorResponse's text and
   SQLSTATE, or the type of anything else; after prefix, into why. */
static void pg_why(char type, const uint8_t *body, size_t blen, const char *prefix, char *why,
                   size_t wl) {
  if (type == 'E') {
    char st[6], m[160];
    tsvc_pg_error_fields(body, blen, st, m, sizeof m);
    snprintf(why, wl, "%s%s (SQLSTATE %s)", prefix, m, st);
  } else {
    snprintf(why, wl, "%sunexpected message '%c'", prefix, type);
  }
}

static void pg_data(conn_t *c) {
  tsvc_session_t *s = c->s;
  size_t off = 0;
  char type;
  const uint8_t *body;
  size_t blen;
  int r;
  while ((r = tsvc_pg_next_message(c->rbuf, c->rlen, &off, SESSION_READ, &type, &body,
                                   &blen)) == 1) {
    char why[256];
    if (type == 'N' || type == 'S' || type == 'K' || type == 'A') continue;
    if (c->state == C_LOGIN) {
      if (type == 'R') {
        const char *err = pg_auth(c, body, blen, why, sizeof why);
        if (err) {
          conn_reject(c, err);
          return;
        }
        continue;
      }
      if (type == 'Z' && c->auth_ok) {
        c->state = C_IDLE;
        uv_timer_stop(&c->timer);
        s->info.held = true;
        s->info.connects++;
        continue;
      }
      pg_why(type, body, blen, "login: ", why, sizeof why);
      conn_reject(c, why);
      return;
    }
    if (c->state != C_BUSY) {
      pg_why(type, body, blen, type == 'E' ? "the server ended the session: " : "while idle: ",
             why, sizeof why);
      conn_close(c, why);
      return;
    }
    if (type == 'I') {
      c->saw_empty = true;
      continue;
    }
    if (type == 'Z' && c->saw_empty) {
      check_timer_stop(s);
      c->state = C_IDLE;
      c->saw_empty = false;
      s->info.held_checks++;
      if (off < c->rlen) conn_close(c, "unexpected message after ReadyForQuery");
      else c->rlen = 0;
      deliver_msg(s, TSVC_RESULT_OK, "accepting connections (held session)");
      return;
    }
    /* An error (the session was ended: 57P01 and the like) or anything
       else: this connection is done; the full probe decides. */
    pg_why(type, body, blen, "", why, sizeof why);
    conn_fail(c, why);
    return;
  }
  if (r < 0) {
    bool busy = c->state == C_BUSY;
    conn_reject(c, "not the PostgreSQL protocol");
    if (busy) deliver_msg(s, TSVC_RESULT_PROTOCOL, "not a PostgreSQL reply");
    return;
  }
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
  }
}

/* ---- reading and connecting ----------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  (void)suggested;
  buf->base = (char *)c->rbuf + c->rlen;
  buf->len = SESSION_READ - c->rlen; /* 0: UV_ENOBUFS */
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = st->data;
  (void)buf;
  if (c->closing || nread == 0) return;
  tsvc_session_t *s = c->s;
  if (nread > 0) {
    c->rlen += (size_t)nread;
    c->rbuf[c->rlen] = 0;
    if (s->kind == TSVC_PROBE_REDIS) redis_data(c);
    else pg_data(c);
    return;
  }
  char why[96];
  if (nread == UV_EOF) snprintf(why, sizeof why, "closed by the server");
  else if (nread == UV_ENOBUFS) snprintf(why, sizeof why, "a reply above %d bytes", SESSION_READ);
  else snprintf(why, sizeof why, "connection reset: %s", uv_strerror((int)nread));
  (void)s;
  conn_fail(c, why);
}

static void connect_cb(uv_connect_t *req, int status) {
  conn_t *c = req->data;
  if (status == UV_ECANCELED || c->closing) return;
  char why[96];
  if (status < 0) {
    snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
    conn_fail(c, why);
    return;
  }
  c->state = C_LOGIN;
  int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
  if (!rc) rc = c->s->kind == TSVC_PROBE_REDIS ? redis_login(c) : pg_login(c);
  if (rc) {
    snprintf(why, sizeof why, "cannot log in: %s", uv_strerror(rc));
    conn_fail(c, why);
  }
}

static void conn_connect(conn_t *c, const struct sockaddr *sa) {
  int rc = uv_tcp_init(c->loop, &c->tcp);
  if (rc) {
    conn_fail(c, "cannot create a socket");
    return;
  }
  c->tcp.data = c;
  c->tcp_init = true;
  c->refs++;
  c->state = C_CONNECTING;
  c->creq.data = c;
  rc = uv_tcp_connect(&c->creq, &c->tcp, sa, connect_cb);
  if (rc) {
    char why[96];
    snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(rc));
    conn_fail(c, why);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  conn_t *c = req->data;
  c->gai_pending = false;
  if (c->closing || status < 0 || !res) {
    if (!c->closing) conn_fail(c, "cannot resolve the host");
    if (res) uv_freeaddrinfo(res);
    conn_unref(c);
    return;
  }
  c->refs--; /* the timer is open: refs stays above zero */
  struct sockaddr_storage ss;
  memcpy(&ss, res->ai_addr, res->ai_addrlen <= sizeof ss ? res->ai_addrlen : sizeof ss);
  uv_freeaddrinfo(res);
  conn_connect(c, (struct sockaddr *)&ss);
}

/* Where a login is, in the words of the probe's timeout (probe.c). */
static const char *login_phase(const conn_t *c) {
  return c->state == C_RESOLVING    ? "resolving"
         : c->state == C_CONNECTING ? "connecting"
                                    : "waiting for the reply";
}

static void login_timeout(uv_timer_t *t) {
  conn_t *c = t->data;
  /* A late loop runs its timers before it polls: look at the socket once
     more before calling a timeout (as probe.c's timer_cb does). */
  if (!c->last_look) {
    c->last_look = true;
    uv_timer_start(&c->timer, login_timeout, 1, 0);
    return;
  }
  tsvc_session_t *s = c->s;
  const char *phase = login_phase(c);
  bool as_check = c->as_check && s && s->on_conn;
  /* Past the timeout the check (when the login is one) is a TIMEOUT, as
     the probe says it, but the login goes on for LOGIN_GRACE_MS more: on
     a loaded machine a login (connect, send, read: an iteration of the
     loop each) is late where a check on a held connection (send, read) is
     not, and a server that answers late is held as soon as it answers
     (issue 13: a third of 1,000 sessions were not held 16 s after start
     under load). */
  if (s && !c->grace) {
    c->grace = true;
    c->as_check = false;
    c->last_look = false;
    uv_timer_start(&c->timer, login_timeout, LOGIN_GRACE_MS, 0);
    if (as_check) {
      s->on_conn = false;
      s->info.full_checks++;
      /* As the probe says it (probe.c, timer_cb). */
      deliver_msg(s, TSVC_RESULT_TIMEOUT, "no answer within %lld ms (%s)",
                  (long long)s->timeout, phase);
    }
    return;
  }
  /* Not the server's refusal (conn_reject, full_every before the next
     try): the next check tries again. A check waiting on this login (one
     started in its grace: tsvc_session_check) goes to the full probe, as
     one on a connection that failed. */
  if (as_check) conn_fail(c, "the login timed out");
  else conn_close(c, "the login timed out");
}

/* Open the held connection: beside any check, or (as_check) as the check
 * in flight. Returns 0, or TSVC_ENOMEM (nothing was opened). */
static int conn_open(tsvc_session_t *s, bool as_check) {
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return TSVC_ENOMEM;
  c->as_check = as_check;
  c->s = s;
  c->loop = s->loop;
  c->state = C_RESOLVING;
  uv_timer_init(s->loop, &c->timer);
  c->timer.data = c;
  c->refs = 1;
  s->conn = c;
  /* The timeout counts from now, not from the loop's clock, which lags
     behind by the time this iteration of the loop has taken so far (1,000
     services starting their first checks in one iteration): see
     tsvc_probe_start. */
  int64_t lag = (int64_t)(uv_hrtime() / 1000000) - (int64_t)uv_now(s->loop);
  if (lag < 0) lag = 0;
  uv_timer_start(&c->timer, login_timeout, (uint64_t)(s->timeout + lag), 0);
  struct sockaddr_storage ss;
  if (uv_ip4_addr(s->host, s->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(s->host, s->port, (struct sockaddr_in6 *)&ss) == 0) {
    conn_connect(c, (struct sockaddr *)&ss);
    return 0;
  }
  char port[16];
  snprintf(port, sizeof port, "%d", s->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV};
  c->gai.data = c;
  if (uv_getaddrinfo(s->loop, &c->gai, gai_cb, s->host, port, &hints) < 0) {
    conn_fail(c, "cannot resolve the host");
    return 0;
  }
  c->gai_pending = true;
  c->refs++;
  return 0;
}

/* ---- checks --------------------------------------------------------------- */

static void full_cb(const tsvc_probe_result_t *res, void *data) {
  tsvc_session_t *s = data;
  s->probe = NULL;
  s->info.full_checks++;
  tsvc_probe_result_t r = *res;
  r.latency_us = (int64_t)((uv_hrtime() - s->t0) / 1000);
  if (res->result == TSVC_RESULT_OK) {
    if (!s->conn && uv_hrtime() >= s->retry_ns) conn_open(s, false);
  } else if (s->conn) {
    char why[TSVC_PROBE_MSG_LEN + 32];
    snprintf(why, sizeof why, "closed: the full probe said %s", res->message);
    conn_close(s->conn, why);
  }
  deliver(s, &r);
}

/* Start the full probe with what is left of the check's timeout. Returns
 * 0 or what tsvc_probe_start returns. */
static int start_full(tsvc_session_t *s) {
  uint64_t now = uv_hrtime();
  int64_t left = s->timeout - (int64_t)((now - s->t0) / 1000000);
  if (left < 1) left = 1;
  tsvc_probe_spec_t spec = {.kind = s->kind, .host = s->host, .port = s->port,
                            .timeout = left, .user = s->user, .database = s->database,
                            .password = s->kind == TSVC_PROBE_REDIS ? s->password : NULL,
                            .username = s->username};
  s->on_conn = false;
  s->last_full_ns = now;
  return tsvc_probe_start(s->loop, &spec, full_cb, s, &s->probe);
}

/* The held connection failed under a check: the full probe decides it. */
static void fall_back(tsvc_session_t *s) {
  if (!s->in_check || s->probe) return;
  check_timer_stop(s);
  int rc = start_full(s);
  if (rc)
    deliver_msg(s, TSVC_RESULT_RUNTIME_ERROR, "cannot start the %s probe: %s",
                tsvc_probe_kind_name(s->kind), tsvc_strerror(rc));
}

static void check_timeout(tsvc_session_t *s);

static void check_timeout_uv(uv_timer_t *t) { check_timeout(t->data); }

static void check_timeout_dl(tsvc_deadline_t *d) {
  check_timeout((tsvc_session_t *)((char *)d - offsetof(tsvc_session_t, dl)));
}

/* The timeout of a check on the held connection, delay ms from the loop's
   now: on the shared set when there is one (no timer heap operation a
   check), else on the session's own timer. The same moment either way. */
static void check_timer_start(tsvc_session_t *s, uint64_t delay) {
  if (s->dls &&
      tsvc_deadline_start(s->dls, &s->dl, uv_now(s->loop) + delay, check_timeout_dl) == 0)
    return;
  uv_timer_start(&s->timer, check_timeout_uv, delay, 0);
}

static void check_timer_stop(tsvc_session_t *s) {
  tsvc_deadline_stop(&s->dl);
  uv_timer_stop(&s->timer);
}

static void check_timeout(tsvc_session_t *s) {
  if (!s->in_check || !s->on_conn) return;
  /* The answer may be waiting unread: one more poll first (probe.c). */
  if (!s->last_look) {
    s->last_look = true;
    check_timer_start(s, 1);
    return;
  }
  conn_t *c = s->conn;
  if (c && c->state < C_IDLE) {
    /* A check waiting on a login in its grace: a TIMEOUT, as the probe
       says it; the login goes on (login_timeout ends it). */
    c->as_check = false;
    s->on_conn = false;
    s->info.full_checks++;
    deliver_msg(s, TSVC_RESULT_TIMEOUT, "no answer within %lld ms (%s)", (long long)s->timeout,
                login_phase(c));
    return;
  }
  if (c) conn_close(c, "no answer in time");
  deliver_msg(s, TSVC_RESULT_TIMEOUT, "no answer within %lld ms (held session)",
              (long long)s->timeout);
}

int tsvc_session_check(tsvc_session_t *s, tsvc_probe_cb cb, void *data) {
  if (!s || !cb || s->freeing) return TSVC_EINVAL;
  if (s->in_check) return TSVC_EBUSY;
  s->t0 = uv_hrtime();
  s->cb = cb;
  s->data = data;
  s->in_check = true;
  bool full_due =
      !s->last_full_ns || s->t0 - s->last_full_ns >= (uint64_t)s->full_every * 1000000u;
  conn_t *c = s->conn;
  if (c && c->state == C_IDLE && !full_due) {
    int rc = s->kind == TSVC_PROBE_REDIS
                 ? conn_send(c, redis_ping, sizeof redis_ping - 1)
                 : conn_send(c, pg_empty_query, sizeof pg_empty_query);
    if (!rc) {
      c->state = C_BUSY;
      c->rlen = 0;
      s->on_conn = true;
      /* The timeout counts from now: see tsvc_probe_start on the lag of
         the loop's clock. */
      int64_t lag = (int64_t)(s->t0 / 1000000) - (int64_t)uv_now(s->loop);
      if (lag < 0) lag = 0;
      s->last_look = false;
      check_timer_start(s, (uint64_t)(s->timeout + lag));
      return 0;
    }
    conn_close(c, "cannot send");
  }
  /* Redis, a login past its check's timeout (its grace: login_timeout) is
     still waiting for the server: this check waits for the same answer,
     with the check's timeout, instead of asking the same server again on a
     new connection. A server that is slow to accept and answer logins (the
     warm-up of 10,500 sessions, issue 13) got one more connection a check
     from each such session, up to LOGIN_GRACE_MS / interval of them, and
     answered later still: logins and held checks timed out in a spiral. */
  if (c && c->grace && !c->closing && s->kind == TSVC_PROBE_REDIS) {
    c->as_check = true;
    s->on_conn = true;
    int64_t lag = (int64_t)(s->t0 / 1000000) - (int64_t)uv_now(s->loop);
    if (lag < 0) lag = 0;
    s->last_look = false;
    check_timer_start(s, (uint64_t)(s->timeout + lag));
    return 0;
  }
  /* Redis, no connection held: the first check opens it, and its login
     (AUTH, PING) is the check, with the probe's verdicts; a connection
     that fails below the protocol leaves the check to the full probe. */
  if (!s->conn && s->kind == TSVC_PROBE_REDIS && s->t0 >= s->retry_ns) {
    s->last_full_ns = s->t0;
    s->on_conn = true;
    s->in_call = true;
    s->fail_now = false;
    int rc = conn_open(s, true);
    s->in_call = false;
    if (!rc && !s->fail_now) return 0;
  }
  int rc = start_full(s);
  if (rc) {
    s->in_check = false;
    s->on_conn = false;
    s->cb = NULL;
  }
  return rc;
}

void tsvc_session_cancel(tsvc_session_t *s) {
  if (!s || !s->in_check) return;
  if (s->probe) {
    tsvc_probe_cancel(s->probe);
    s->probe = NULL;
  }
  if (s->on_conn && s->conn) conn_close(s->conn, "a check was cancelled");
  check_timer_stop(s);
  s->in_check = s->on_conn = false;
  s->cb = NULL;
}

void tsvc_session_set_deadlines(tsvc_session_t *s, tsvc_deadlines_t *ds) {
  check_timer_stop(s);
  s->dls = ds;
}

void tsvc_session_info(const tsvc_session_t *s, tsvc_session_info_t *out) {
  *out = s->info;
  out->opening = s->conn && s->conn->state < C_IDLE;
}

static void session_free_strings(tsvc_session_t *s) {
  free(s->host);
  free(s->user);
  free(s->database);
  free(s->password);
  free(s->username);
}

static void session_closed(uv_handle_t *h) {
  tsvc_session_t *s = h->data;
  session_free_strings(s);
  free(s);
}

void tsvc_session_free(tsvc_session_t *s) {
  if (!s || s->freeing) return;
  tsvc_session_cancel(s);
  /* A check's timeout may be left pending after its verdict (one given
     without stopping it, which the next check's start moves): it must not
     stay in the shared set past the session. */
  check_timer_stop(s);
  s->freeing = true;
  if (s->conn) conn_close(s->conn, NULL);
  uv_close((uv_handle_t *)&s->timer, session_closed);
}

static int dup_opt(char **dst, const char *src, const char *def) {
  if (!src || !*src) src = def;
  if (!src) return 0;
  *dst = strdup(src);
  return *dst ? 0 : TSVC_ENOMEM;
}

int tsvc_session_new(uv_loop_t *loop, const tsvc_probe_spec_t *spec, tsvc_ms_t full_every,
                     tsvc_session_t **out) {
  *out = NULL;
  if (!loop || !spec || !tsvc_session_supported(spec->kind) || spec->timeout <= 0 ||
      spec->port < 1 || spec->port > 65535 || full_every <= 0)
    return TSVC_EINVAL;
  tsvc_session_t *s = calloc(1, sizeof *s);
  if (!s) return TSVC_ENOMEM;
  s->loop = loop;
  s->kind = spec->kind;
  s->port = spec->port;
  s->timeout = spec->timeout;
  s->full_every = full_every;
  int rc = dup_opt(&s->host, spec->host, "127.0.0.1");
  if (!rc) rc = dup_opt(&s->user, spec->user, "postgres");
  if (!rc) rc = dup_opt(&s->database, spec->database, s->user);
  if (!rc) rc = dup_opt(&s->password, spec->password, NULL);
  if (!rc) rc = dup_opt(&s->username, spec->username, NULL);
  if (rc) {
    session_free_strings(s);
    free(s);
    return rc;
  }
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  *out = s;
  return 0;
}
