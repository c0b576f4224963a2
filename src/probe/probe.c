/*
 * probe.c: the table of probe kinds, tsvc_probe_start/cancel, and what the
 * network kinds share: resolve, connect under one hard timeout, bounded
 * reads, the single callback and the free after every close callback.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/probe_int.h"

static const tsvc_probe_type_t *const probe_types[] = {
    [TSVC_PROBE_POSTGRES] = &tsvc_probe_type_postgres,
    [TSVC_PROBE_REDIS] = &tsvc_probe_type_redis,
    [TSVC_PROBE_TCP] = &tsvc_probe_type_tcp,
    [TSVC_PROBE_HTTP] = &tsvc_probe_type_http,
    [TSVC_PROBE_EXEC] = &tsvc_probe_type_exec,
};

static const tsvc_probe_type_t *type_for(tsvc_probe_kind_t k) {
  if ((unsigned)k >= TSVC_ARRAY_LEN(probe_types)) return NULL;
  return probe_types[k]; /* NULL for AUTO and RUNNING */
}

void tsvc__probe_printable(char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '\n' || c == '\r' || c == '\t')
      *s = ' ';
    else if (c < 0x20 || c > 0x7e)
      *s = '?';
  }
}

void tsvc__probe_verdict(tsvc_probe_t *p, tsvc_result_t r, const char *fmt, ...) {
  if (p->decided) return;
  p->decided = true;
  p->res.result = r;
  p->res.latency_us = (int64_t)((uv_hrtime() - p->t0) / 1000);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->res.message, sizeof p->res.message, fmt, ap);
  va_end(ap);
  tsvc__probe_printable(p->res.message);
}

static void probe_free(tsvc_probe_t *p) {
  free(p->host);
  free(p->user);
  free(p->database);
  free(p->password);
  free(p->username);
  free(p->path);
  if (p->argv) {
    for (char **a = p->argv; *a; a++) free(*a);
    free(p->argv);
  }
  free(p->wdata);
  if (p->rbuf != p->rsmall) free(p->rbuf);
  if (p->ai) uv_freeaddrinfo(p->ai);
  free(p->res.output);
  free(p->xb);
  free(p);
}

/* Every handle is closed: tell the caller (unless cancelled), then free. */
static void probe_complete(tsvc_probe_t *p) {
  if (!p->cancelled) {
    if (!p->decided)
      tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "probe ended without a verdict");
    p->notified = true;
    p->cb(&p->res, p->data);
  }
  probe_free(p);
}

void tsvc__probe_unref(tsvc_probe_t *p) {
  if (--p->refs == 0 && p->finishing) probe_complete(p);
}

void tsvc__probe_close_cb(uv_handle_t *h) { tsvc__probe_unref(h->data); }

static void close_handle(uv_handle_t *h) {
  if (!uv_is_closing(h)) uv_close(h, tsvc__probe_close_cb);
}

void tsvc__probe_finish(tsvc_probe_t *p) {
  if (p->finishing) return;
  p->finishing = true;
  close_handle((uv_handle_t *)&p->timer);
  /* close_reset: an RST instead of a FIN, and no TIME_WAIT (tcp.c). */
  if (p->tcp_init && !(p->close_reset && !uv_is_closing((uv_handle_t *)&p->tcp) &&
                       uv_tcp_close_reset(&p->tcp, tsvc__probe_close_cb) == 0))
    close_handle((uv_handle_t *)&p->tcp);
  if (p->gai_pending) uv_cancel((uv_req_t *)&p->gai); /* its callback unrefs */
  if (p->out_init) close_handle((uv_handle_t *)&p->out);
  if (p->proc_init) {
    /* A process handle closed before its exit would leave a zombie that
     * libuv never reaps: kill the group and let the exit callback close. */
    if (!p->spawned || p->exited)
      close_handle((uv_handle_t *)&p->proc);
    else
      kill(-p->pid, SIGKILL);
  }
}

void tsvc__probe_close_now(tsvc_probe_t *p) { tsvc__probe_finish(p); }

/* How long the last look at the socket may take (see timer_cb). */
#define LAST_LOOK_MS 1

static void timer_cb(uv_timer_t *t) {
  tsvc_probe_t *p = t->data;
  if (p->finishing) return;
  /* A libuv loop runs its due timers before it polls its sockets. A loop
     that comes back late (its CPU busy with other checks, or held by other
     work on the machine) would call a timeout here although the answer, or
     the completed connect, is waiting unread in the socket: at 10,000
     checks a second on a starved core, thousands of false "no answer
     within" failures (issue 13). So a network probe takes one last look:
     the timer is set 1 ms ahead, which lets this loop iteration poll the
     sockets first (a 0 ms timer would run again before the poll); what was
     there is read and decides, else the timeout stands. A peer that does
     not answer is still failed, LAST_LOOK_MS later. */
  if (p->tcp_init && !p->last_look) {
    p->last_look = true;
    uv_timer_start(&p->timer, timer_cb, LAST_LOOK_MS, 0);
    return;
  }
  if (p->on_timeout) {
    p->on_timeout(p);
    return;
  }
  tsvc__probe_verdict(p, TSVC_RESULT_TIMEOUT, "no answer within %lld ms (%s)",
                      (long long)p->timeout, p->phase ? p->phase : "starting");
  tsvc__probe_finish(p);
}

void tsvc__probe_rearm(tsvc_probe_t *p, uint64_t ms) {
  uv_timer_start(&p->timer, timer_cb, ms, 0);
}

/* ---- network ---------------------------------------------------------- */

static void try_next_address(tsvc_probe_t *p);

static tsvc_result_t connect_result(int err) {
  switch (err) {
    case UV_ETIMEDOUT:
      return TSVC_RESULT_TIMEOUT;
    case UV_ECONNRESET:
    case UV_EPIPE:
      return TSVC_RESULT_RESET;
    default: /* refused, unreachable, no route, address not available */
      return TSVC_RESULT_REFUSED;
  }
}

/* The socket of a failed attempt is closed: try the next address. */
static void retry_close_cb(uv_handle_t *h) {
  tsvc_probe_t *p = h->data;
  p->tcp_init = false;
  if (p->finishing) {
    tsvc__probe_unref(p);
    return;
  }
  p->refs--; /* the timer is still open: refs stays above zero */
  try_next_address(p);
}

static void connect_failed(tsvc_probe_t *p, int err) {
  p->conn_err = err;
  if (p->ai_next && err != UV_ETIMEDOUT) {
    /* Another address to try (localhost gives ::1 and 127.0.0.1). */
    uv_close((uv_handle_t *)&p->tcp, retry_close_cb);
    return;
  }
  tsvc__probe_verdict(p, connect_result(err), "cannot connect to %s:%d: %s", p->host,
                      p->port, uv_strerror(err));
  tsvc__probe_finish(p);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  tsvc_probe_t *p = h->data;
  (void)suggested;
  /* Never more than TSVC_PROBE_MAX_READ bytes in all, whatever the peer
   * sends: a zero-length buffer makes libuv report UV_ENOBUFS. */
  if (p->rlen == p->rcap && p->rcap < TSVC_PROBE_MAX_READ) {
    uint8_t *big = malloc(TSVC_PROBE_MAX_READ + 1);
    if (big) {
      memcpy(big, p->rbuf, p->rlen + 1);
      p->rbuf = big;
      p->rcap = TSVC_PROBE_MAX_READ;
    }
  }
  buf->base = (char *)p->rbuf + p->rlen;
  buf->len = p->rcap - p->rlen; /* 0 (no memory for more): UV_ENOBUFS */
}

static void read_full(tsvc_probe_t *p) {
  tsvc__probe_verdict(p, TSVC_RESULT_PROTOCOL, "no valid reply in the first %d bytes",
                      TSVC_PROBE_MAX_READ);
  tsvc__probe_finish(p);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tsvc_probe_t *p = s->data;
  (void)buf;
  if (p->finishing) return;
  if (nread > 0) {
    p->rlen += (size_t)nread;
    p->rbuf[p->rlen] = 0;
    p->res.bytes_read = p->rlen;
    p->ops->data(p);
    if (!p->finishing && p->rlen >= TSVC_PROBE_MAX_READ) read_full(p);
    return;
  }
  if (nread == 0) return;
  if (nread == UV_ENOBUFS) {
    read_full(p);
  } else if (nread == UV_EOF) {
    if (p->rlen)
      tsvc__probe_verdict(p, TSVC_RESULT_RESET, "connection closed by the peer after %zu bytes",
                          p->rlen);
    else
      tsvc__probe_verdict(p, TSVC_RESULT_RESET, "connection closed by the peer");
  } else {
    tsvc__probe_verdict(p, TSVC_RESULT_RESET, "connection reset: %s", uv_strerror((int)nread));
  }
  tsvc__probe_finish(p);
}

static void write_cb(uv_write_t *w, int status) {
  tsvc_probe_t *p = w->data;
  if (status == UV_ECANCELED || p->finishing) return;
  if (status < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_RESET, "cannot send: %s", uv_strerror(status));
    tsvc__probe_finish(p);
  }
}

void tsvc__probe_write(tsvc_probe_t *p, const void *data, size_t len) {
  if (p->finishing) return;
  if (p->nwrites >= (int)TSVC_ARRAY_LEN(p->wreq)) {
    tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "internal: too many writes");
    tsvc__probe_finish(p);
    return;
  }
  uv_write_t *w = &p->wreq[p->nwrites++];
  w->data = p;
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int rc = uv_write(w, (uv_stream_t *)&p->tcp, &b, 1, write_cb);
  if (rc < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_RESET, "cannot send: %s", uv_strerror(rc));
    tsvc__probe_finish(p);
  }
}

static void connect_cb(uv_connect_t *req, int status) {
  tsvc_probe_t *p = req->data;
  if (status == UV_ECANCELED || p->finishing) return;
  if (status < 0) {
    connect_failed(p, status);
    return;
  }
  p->phase = "waiting for the reply";
  p->ops->connected(p);
}

/*
 * Connect to p->addr. Errors go through the verdict.
 *
 * The system calls of a check are most of its cost (issue 13: a redis
 * check at 10,000 a second spent about 85% of its CPU in the kernel), so
 * the connect path makes no call it does not need:
 *  - reading starts with the connect, so that the socket joins the epoll
 *    set once for both directions (started in connect_cb, libuv 1.44 first
 *    tried EPOLL_CTL_ADD again, got EEXIST, and then sent EPOLL_CTL_MOD);
 *    nothing can be read before the connection is made, and libuv finishes
 *    the connect before it reads;
 *  - no TCP_NODELAY: every probe sends its request in one write and then
 *    waits for the answer (postgres' login steps each follow the server's
 *    reply, which acknowledges what was sent), so Nagle never holds a
 *    segment back.
 */
static void connect_addr(tsvc_probe_t *p) {
  int rc = uv_tcp_init(p->loop, &p->tcp);
  if (rc < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "cannot create a socket: %s",
                        uv_strerror(rc));
    tsvc__probe_finish(p);
    return;
  }
  p->refs++;
  p->tcp_init = true;
  p->tcp.data = p;
  p->creq.data = p;
  p->phase = "connecting";
  rc = uv_tcp_connect(&p->creq, &p->tcp, (const struct sockaddr *)&p->addr, connect_cb);
  if (rc < 0) {
    connect_failed(p, rc);
    return;
  }
  rc = uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, read_cb);
  if (rc < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_RUNTIME_ERROR, "cannot read: %s", uv_strerror(rc));
    tsvc__probe_finish(p);
  }
}

static void try_next_address(tsvc_probe_t *p) {
  while (p->ai_next) {
    struct addrinfo *ai = p->ai_next;
    p->ai_next = ai->ai_next;
    if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
        ai->ai_addrlen <= sizeof p->addr) {
      memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
      connect_addr(p);
      return;
    }
  }
  tsvc__probe_verdict(p, connect_result(p->conn_err), "cannot connect to %s:%d: %s", p->host,
                      p->port, p->conn_err ? uv_strerror(p->conn_err) : "no usable address");
  tsvc__probe_finish(p);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  tsvc_probe_t *p = req->data;
  p->gai_pending = false;
  if (p->finishing) {
    if (res) uv_freeaddrinfo(res);
    tsvc__probe_unref(p);
    return;
  }
  p->refs--; /* the timer is still open */
  if (status < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_REFUSED, "cannot resolve %s: %s", p->host,
                        uv_strerror(status));
    tsvc__probe_finish(p);
    return;
  }
  p->ai = res;
  p->ai_next = res;
  try_next_address(p);
}

int tsvc__probe_net_start(tsvc_probe_t *p) {
  struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&p->addr;
  if (uv_ip4_addr(p->host, p->port, sin) == 0 || uv_ip6_addr(p->host, p->port, sin6) == 0) {
    connect_addr(p);
    return 0;
  }
  char port[16];
  snprintf(port, sizeof port, "%d", p->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
  p->gai.data = p;
  p->phase = "resolving";
  int rc = uv_getaddrinfo(p->loop, &p->gai, gai_cb, p->host, port, &hints);
  if (rc < 0) return rc == UV_ENOMEM ? TSVC_ENOMEM : TSVC_EINVAL;
  p->gai_pending = true;
  p->refs++;
  return 0;
}

void tsvc__probe_net_cancel(tsvc_probe_t *p) { tsvc__probe_finish(p); }

/* ---- public ----------------------------------------------------------- */

static bool is_net(tsvc_probe_kind_t k) {
  return k == TSVC_PROBE_POSTGRES || k == TSVC_PROBE_REDIS || k == TSVC_PROBE_TCP ||
         k == TSVC_PROBE_HTTP;
}

static int dup_opt(char **dst, const char *src, const char *def) {
  if (!src || !*src) src = def;
  if (!src) return 0;
  *dst = strdup(src);
  return *dst ? 0 : TSVC_ENOMEM;
}

static int copy_argv(tsvc_probe_t *p, const tsvc_probe_spec_t *spec) {
  size_t n = spec->argc;
  if (n == 0)
    while (spec->argv[n]) n++;
  if (n == 0 || !spec->argv[0] || !*spec->argv[0]) return TSVC_EINVAL;
  p->argv = calloc(n + 1, sizeof *p->argv);
  if (!p->argv) return TSVC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!spec->argv[i]) return TSVC_EINVAL;
    p->argv[i] = strdup(spec->argv[i]);
    if (!p->argv[i]) return TSVC_ENOMEM;
  }
  return 0;
}

static void ignore_sigpipe(void) {
  /* Once per process: a check is too frequent for a system call each. */
  static atomic_bool done;
  if (atomic_exchange(&done, true)) return;
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO))
    signal(SIGPIPE, SIG_IGN);
}

int tsvc_probe_start(uv_loop_t *loop, const tsvc_probe_spec_t *spec, tsvc_probe_cb cb,
                     void *data, tsvc_probe_t **out) {
  if (out) *out = NULL;
  if (!loop || !spec || !cb) return TSVC_EINVAL;
  const tsvc_probe_type_t *type = type_for(spec->kind);
  if (!type || spec->timeout <= 0) return TSVC_EINVAL;
  if (is_net(spec->kind) && (spec->port < 1 || spec->port > 65535)) return TSVC_EINVAL;
  if (spec->kind == TSVC_PROBE_EXEC && !spec->argv) return TSVC_EINVAL;
  int smin = spec->status_min, smax = spec->status_max;
  if (smin == 0 && smax == 0) {
    smin = 200;
    smax = 399;
  }
  if (smin > smax) return TSVC_EINVAL;

  tsvc_probe_t *p = calloc(1, sizeof *p);
  if (!p) return TSVC_ENOMEM;
  p->rbuf = p->rsmall;
  p->rcap = TSVC__PROBE_SMALL_READ;
  p->loop = loop;
  p->type = type;
  p->cb = cb;
  p->data = data;
  p->kind = spec->kind;
  p->port = spec->port;
  p->timeout = spec->timeout;
  p->status_min = smin;
  p->status_max = smax;
  p->res.exit_code = -1;
  p->shell = spec->shell;
  int rc = 0;
  if (!rc) rc = dup_opt(&p->host, spec->host, "127.0.0.1");
  if (!rc) rc = dup_opt(&p->user, spec->user, "postgres");
  if (!rc) rc = dup_opt(&p->database, spec->database, p->user);
  if (!rc) rc = dup_opt(&p->password, spec->password, NULL);
  if (!rc) rc = dup_opt(&p->username, spec->username, NULL);
  if (!rc) rc = dup_opt(&p->path, spec->path, "/");
  if (!rc && spec->kind == TSVC_PROBE_EXEC) rc = copy_argv(p, spec);
  if (rc) {
    probe_free(p);
    return rc;
  }
  if (is_net(spec->kind)) ignore_sigpipe();

  /* The timeout counts from now, not from the loop's last tick: add how far
     the loop's cached clock lags. (Not uv_update_time(): advancing the
     clock inside a timer callback makes libuv <= 1.47 run the timers that
     became due at once, and under load the loop then never gets back to
     reading sockets.) uv_now() and uv_hrtime() share CLOCK_MONOTONIC's
     epoch; the fast clock may be a little coarse, hence the clamp. */
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->refs = 1;
  p->t0 = uv_hrtime();
  int64_t lag = (int64_t)(p->t0 / 1000000) - (int64_t)uv_now(loop);
  if (lag < 0) lag = 0;
  uv_timer_start(&p->timer, timer_cb, (uint64_t)(spec->timeout + lag), 0);

  rc = type->start(p);
  if (rc) {
    /* The callback is never called; the probe frees itself once closed. */
    p->cancelled = true;
    tsvc__probe_finish(p);
    return rc;
  }
  if (out) *out = p;
  return 0;
}

void tsvc_probe_cancel(tsvc_probe_t *p) {
  if (!p || p->cancelled || p->notified) return;
  p->cancelled = true;
  p->type->cancel(p);
}
