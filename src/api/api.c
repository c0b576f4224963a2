/*
 * api.c: see api.h. Routes, the event stream and the sockets; the JSON
 * shapes are in api_json.c and the Prometheus text in metrics.c.
 */
#include "api/api.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/api_int.h"
#include "api/api_json.h"
#include "api/errors.h"
#include "api/metrics.h"
#include "api/page.h"
#include "common/util.h"
#include "config/config.h"
#include "log/log.h"
#include "manager/conninfo.h"
#include "manager/manager.h"
#include "monitor/board.h"

/* One connection, from libmicrohttpd's start notice to its close notice. */
typedef struct conn {
  struct conn *prev, *next;
  struct tsvc_api_s *api;
  int fd;           /* our duplicate of the socket: shutdown() on it cuts the
                       connection, and the number stays ours until we close
                       it, so it never names another connection's socket */
  int64_t deadline; /* monotonic ms; 0: none (a request being handled, a
                       stream) */
  bool tcp;
  char peer[64];    /* "127.0.0.1:51234", for the log */
} conn_t;

struct tsvc_api_s {
  tsvc_manager_t *m;
  struct MHD_Daemon *unix_d;
  struct MHD_Daemon *tcp_d;
  char *socket_path;
  void (*on_down)(void *data);
  void *data;
  /* Event streams: their queues, the stopping flag. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stopping;
  int nstreams;        /* event streams whose response still exists */
  int nstreams_on[2];  /* of which on the unix socket [0], on TCP [1] */
  /* Limits (tsvc_api_opts_t, defaults filled in). */
  unsigned request_deadline_ms, reply_deadline_ms, tcp_connections, per_client, max_streams;
  unsigned livez_lag_ms;
  /* Deadlines: every open connection, and a watchdog thread that cuts the
     ones past their deadline (libmicrohttpd's own timeout is an idle one,
     which a client trickling a byte at a time never reaches). */
  pthread_mutex_t wmu;
  pthread_cond_t wcv; /* on CLOCK_MONOTONIC: an earlier deadline, or the end */
  conn_t *conns;
  bool wstop;
  bool watchdog_running;
  pthread_t watchdog;
  tsvc_page_t *page; /* GET /: the status page and its record of changes */
};

/* One request, from its first call to its end. */
typedef struct {
  size_t body;     /* bytes of body seen */
  bool down;       /* answered POST /v1/down: tell the owner when done */
} req_t;

/* One GET /v1/events connection. */
typedef struct {
  tsvc_api_t *api;
  int sub;
  bool tcp;                            /* counted in nstreams_on[1], else [0] */
  bool sse;                            /* text/event-stream ("data: ...\n\n") */
  int fd;                              /* the connection, to notice a hang-up */
  char *q[TSVC_API_EVENT_QUEUE];       /* lines not yet sent (ring) */
  size_t head, n;
  bool overflow;                       /* too slow a reader: end the stream */
  char *cur;                           /* the line being sent */
  size_t off, len;
} stream_t;

/* ---- deadlines ----------------------------------------------------------------- */

static conn_t *conn_of(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ci =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? ci->socket_context : NULL;
}

/* The connection's deadline: ms from now, or none (0). */
static void set_deadline(tsvc_api_t *a, struct MHD_Connection *c, unsigned ms) {
  conn_t *k = conn_of(c);
  if (!k) return;
  pthread_mutex_lock(&a->wmu);
  k->deadline = ms ? tsvc_mono_ms() + ms : 0;
  if (ms) pthread_cond_signal(&a->wcv); /* it may be the earliest now */
  pthread_mutex_unlock(&a->wmu);
}

/* A duplicate of fd, close-on-exec from its first instant (a child the
   process runtime spawns meanwhile must not inherit it). A number is taken
   with open() and replaced by dup3(): unlike fcntl(F_DUPFD_CLOEXEC), both
   are calls ThreadSanitizer follows, so it does not take the duplicate for
   the socket that had its number before. -1 on failure. */
static int dup_cloexec(int fd) {
  int to = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (to < 0) return -1;
  if (dup3(fd, to, O_CLOEXEC) < 0) {
    close(to);
    return -1;
  }
  return to;
}

/* Whether c came over TCP (the read-only side), by its peer's address: not
   by comparing its daemon with a->tcp_d, which start_tcp writes while the
   TCP daemon may already be serving. Anything but a unix peer counts as
   TCP, so a connection of unknown origin never gets the owner's rights. */
static bool conn_is_tcp(struct MHD_Connection *c) {
  const union MHD_ConnectionInfo *ai =
      MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
  return !(ai && ai->client_addr && ai->client_addr->sa_family == AF_UNIX);
}

/* libmicrohttpd's notices of a connection's start and end. A new
   connection must send its whole request within the request deadline. */
static void notify_conn(void *cls, struct MHD_Connection *c, void **ctx,
                        enum MHD_ConnectionNotificationCode what) {
  tsvc_api_t *a = cls;
  if (what == MHD_CONNECTION_NOTIFY_STARTED) {
    const union MHD_ConnectionInfo *fi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    conn_t *k = calloc(1, sizeof *k);
    if (!k || !fi) {
      free(k);
      return; /* no deadline for it: the idle timeout still applies */
    }
    k->fd = dup_cloexec(fi->connect_fd);
    if (k->fd < 0) {
      free(k);
      return;
    }
    k->api = a;
    const union MHD_ConnectionInfo *ai =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    k->tcp = conn_is_tcp(c);
    if (k->tcp && ai && ai->client_addr) {
      char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
      socklen_t len = ai->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                              : sizeof(struct sockaddr_in);
      getnameinfo(ai->client_addr, len, host, sizeof host, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV);
      snprintf(k->peer, sizeof k->peer, "%s:%s", host, port);
    } else if (k->tcp) {
      tsvc_strlcpy(k->peer, "a peer of unknown address", sizeof k->peer);
    } else {
      tsvc_strlcpy(k->peer, "the unix socket", sizeof k->peer);
    }
    pthread_mutex_lock(&a->wmu);
    k->deadline = tsvc_mono_ms() + a->request_deadline_ms;
    k->next = a->conns;
    if (a->conns) a->conns->prev = k;
    a->conns = k;
    pthread_cond_signal(&a->wcv);
    pthread_mutex_unlock(&a->wmu);
    *ctx = k;
    return;
  }
  conn_t *k = *ctx;
  if (!k) return;
  *ctx = NULL;
  pthread_mutex_lock(&a->wmu);
  if (k->prev) k->prev->next = k->next;
  else a->conns = k->next;
  if (k->next) k->next->prev = k->prev;
  pthread_mutex_unlock(&a->wmu);
  close(k->fd);
  free(k);
}

/* The watchdog: sleeps until the earliest deadline (absolute, computed
   once per connection and phase), cuts what is past it, and sleeps again.
   shutdown() wakes the connection's thread in libmicrohttpd, which sees
   the end of the stream and closes the connection the usual way. */
static void *watchdog_main(void *arg) {
  tsvc_api_t *a = arg;
  pthread_mutex_lock(&a->wmu);
  while (!a->wstop) {
    int64_t now = tsvc_mono_ms(), next = 0;
    for (conn_t *k = a->conns; k; k = k->next) {
      if (!k->deadline) continue;
      if (k->deadline <= now) {
        k->deadline = 0; /* once */
        shutdown(k->fd, SHUT_RDWR);
        TSVC_LOG(TSVC_LOG_DEBUG, NULL, "api: cut the connection from %s: past its deadline "
                 "(a request must arrive whole within %u ms, a reply be read within %u ms)",
                 k->peer, a->request_deadline_ms, a->reply_deadline_ms);
        continue;
      }
      if (!next || k->deadline < next) next = k->deadline;
    }
    if (!next) {
      pthread_cond_wait(&a->wcv, &a->wmu);
    } else {
      struct timespec ts = {.tv_sec = (time_t)(next / 1000),
                            .tv_nsec = (long)(next % 1000) * 1000000L};
      pthread_cond_timedwait(&a->wcv, &a->wmu, &ts);
    }
  }
  pthread_mutex_unlock(&a->wmu);
  return NULL;
}

/* ---- replies ---------------------------------------------------------------- */

/* Replies are decided into a tsvc_api_reply_t (api_int.h), without the
   connection, and sent by queue_reply. text (NULL: no body) is taken. */
static enum MHD_Result reply_text(tsvc_api_reply_t *c, unsigned code, char *text, size_t len,
                                  const char *type, const char *allow) {
  *c = (tsvc_api_reply_t){.code = code, .body = text, .len = text ? len : 0, .type = type,
                          .allow = allow};
  return MHD_YES;
}

/* A streamed body (GET /metrics), on the connection's thread: the next
   piece. Rendering can only fail for memory: the reply is then cut off
   (the connection closed), never sent short as if whole. */
static ssize_t metrics_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  long n = tsvc_metrics_stream_read(cls, buf, max);
  if (n > 0) return (ssize_t)n;
  return n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void metrics_free(void *cls) { tsvc_metrics_stream_free(cls); }

static enum MHD_Result queue_reply(struct MHD_Connection *c, tsvc_api_reply_t *rp) {
  struct MHD_Response *r;
  if (rp->stream) {
    r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, metrics_read,
                                          rp->stream, metrics_free);
    if (!r) tsvc_metrics_stream_free(rp->stream);
    rp->stream = NULL;
  } else {
    r = rp->body ? MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE)
                 : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) free(rp->body);
  }
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rp->type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (rp->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rp->allow);
  enum MHD_Result ret = MHD_queue_response(c, rp->code, r);
  MHD_destroy_response(r);
  return ret;
}

/* Reply with v (stolen) as JSON and a newline. */
static enum MHD_Result reply_json(tsvc_api_reply_t *c, unsigned code, json_t *v,
                                  const char *allow) {
  char *text = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
  json_decref(v);
  if (!text) {
    static const char oom[] = "{\"error\":\"out of memory\"}\n";
    return reply_text(c, 500, strdup(oom), sizeof oom - 1, "application/json", NULL);
  }
  size_t len = strlen(text);
  char *t = realloc(text, len + 2);
  if (!t) {
    free(text);
    return MHD_NO;
  }
  t[len] = '\n';
  t[len + 1] = '\0';
  return reply_text(c, code, t, len + 1, "application/json", allow);
}

static enum MHD_Result reply_error(tsvc_api_reply_t *c, unsigned code, const char *allow,
                                   const char *fmt, ...) TSVC_PRINTF(4, 5);
static enum MHD_Result reply_error(tsvc_api_reply_t *c, unsigned code, const char *allow,
                                   const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return reply_json(c, code, tsvc_api_json_error(msg), allow);
}

/* ---- GET ---------------------------------------------------------------------- */

/* A failed call: its status from the one table (errors.h), its message. */
static enum MHD_Result reply_rc(tsvc_api_reply_t *c, int rc, const char *msg) {
  return reply_error(c, tsvc_api_status_of(rc), NULL, "%s", msg && *msg ? msg : tsvc_strerror(rc));
}

static const char not_monitored_msg[] = "services are not being monitored (yet)";

static enum MHD_Result get_services(tsvc_api_t *a, tsvc_api_reply_t *c) {
  tsvc_snapshot_t *snap;
  int rc = tsvc_manager_snapshot(a->m, &snap);
  if (rc) return reply_rc(c, rc, rc == TSVC_ENOTMONITORED ? not_monitored_msg : NULL);
  json_t *v = tsvc_api_json_snapshot(snap, tsvc_manager_runtime_name(a->m));
  tsvc_snapshot_release(snap);
  return reply_json(c, 200, v, NULL);
}

static enum MHD_Result get_service(tsvc_api_t *a, tsvc_api_reply_t *c, const char *name) {
  tsvc_status_t s;
  int rc = tsvc_manager_get_status(a->m, name, &s);
  if (rc == TSVC_ENOENT) return reply_error(c, 404, NULL, "no service named '%s'", name);
  if (rc) return reply_rc(c, rc, rc == TSVC_ENOTMONITORED ? not_monitored_msg : NULL);
  json_t *v = tsvc_api_json_status(&s, true);
  tsvc_status_clear(&s);
  return reply_json(c, 200, v, NULL);
}

/* How to reach the services (docs/api.md, "Connection variables"). The
   passwords travel only over the unix socket (mode 0600): over TCP, which
   anyone on the host can reach, they are left out ("secrets": false). */
static enum MHD_Result get_env(tsvc_api_t *a, tsvc_api_reply_t *c, const char *view_arg,
                               bool tcp) {
  tsvc_view_t view = TSVC_VIEW_HOST;
  if (view_arg && tsvc_view_parse(view_arg, &view) != 0)
    return reply_error(c, 400, NULL, "unknown view '%.200s' (use view=host or view=network)",
                       view_arg);
  tsvc_conn_list_t l;
  int rc = tsvc_manager_connection_info(a->m, view, &l);
  if (!rc && tcp) rc = tsvc_conn_strip_secrets(&l);
  if (rc) {
    tsvc_conn_list_free(&l);
    return reply_rc(c, rc, NULL);
  }
  json_t *v = tsvc_api_json_env(&l, tsvc_manager_runtime_name(a->m), !tcp);
  tsvc_conn_list_free(&l);
  return reply_json(c, 200, v, NULL);
}

/* Alive while the loop keeps its schedule: it fails when the loop is late
   by more than the threshold (blocked, or starved of CPU). */
static enum MHD_Result get_livez(tsvc_api_t *a, tsvc_api_reply_t *c) {
  int64_t hb = tsvc_manager_loop_heartbeat(a->m), age = tsvc_wall_ms() - hb;
  int64_t lag = tsvc_manager_loop_lag_ms(a->m);
  bool alive = lag <= (int64_t)a->livez_lag_ms;
  json_t *v = json_pack("{s:s, s:o, s:I, s:I, s:I}", "status", alive ? "ok" : "stalled",
                        "heartbeat", tsvc_api_json_time(hb), "age_ms",
                        (json_int_t)(age > 0 ? age : 0), "lag_ms", (json_int_t)lag,
                        "threshold_ms", (json_int_t)a->livez_lag_ms);
  return reply_json(c, alive ? 200 : 503, v, NULL);
}

static enum MHD_Result get_readyz(tsvc_api_t *a, tsvc_api_reply_t *c) {
  tsvc_snapshot_t *snap;
  /* Packed, read a status at a time: a probe of readiness may come every
     second, and an unpacked view is 1.3 KB a service. */
  int rc = tsvc_manager_snapshot_packed(a->m, &snap);
  if (rc) {
    json_t *v = json_pack("{s:b, s:s, s:[]}", "ready", 0, "error",
                          rc == TSVC_ENOTMONITORED ? not_monitored_msg : tsvc_strerror(rc),
                          "not_ready");
    return reply_json(c, 503, v, NULL);
  }
  json_t *bad = json_array();
  size_t enabled = 0, n = tsvc_snapshot_count(snap);
  for (size_t i = 0; bad && i < n; i++) {
    tsvc_status_t s;
    tsvc_snap_status(tsvc_snapshot_snap(snap, i), &s);
    if (!s.enabled) continue;
    enabled++;
    if (s.healthy) continue;
    json_array_append_new(bad, tsvc_api_json_not_ready(&s));
  }
  tsvc_snapshot_release(snap);
  if (!bad) return reply_error(c, 500, NULL, "out of memory");
  bool ready = json_array_size(bad) == 0;
  json_t *v = json_pack("{s:b, s:I, s:o}", "ready", ready, "enabled", (json_int_t)enabled,
                        "not_ready", bad);
  return reply_json(c, ready ? 200 : 503, v, NULL);
}

/* Streamed from a snapshot: nothing is copied, the loop never waits for a
   scrape, and the text (about 2.2 KB a service) is never held whole. */
static enum MHD_Result get_metrics(tsvc_api_t *a, tsvc_api_reply_t *c) {
  tsvc_snapshot_t *snap = NULL;
  /* Packed: the stream unpacks one status at a time (an unpacked view is
     1.3 KB a service). */
  int rc = tsvc_manager_snapshot_packed(a->m, &snap);
  if (rc && rc != TSVC_ENOTMONITORED) return reply_rc(c, rc, NULL);
  tsvc_monitor_stats_t idle;
  if (!snap) tsvc_manager_monitor_stats(a->m, &idle);
  tsvc_metrics_stream_t *st;
  if (tsvc_metrics_stream_new(snap, snap ? NULL : &idle, &st) != 0)
    return reply_error(c, 500, NULL, "cannot render the metrics: out of memory");
  tsvc_hook_totals_t hooks;
  tsvc_manager_hook_totals(a->m, &hooks);
  tsvc_metrics_stream_set_hooks(st, &hooks);
  *c = (tsvc_api_reply_t){.code = 200, .stream = st,
                          .type = "text/plain; version=0.0.4; charset=utf-8"};
  return MHD_YES;
}

int tsvc__api_reply_drain(tsvc_api_reply_t *r) {
  if (!r->stream) return 0;
  tsvc_buf_t b;
  tsvc_buf_init(&b, SIZE_MAX - 1);
  char chunk[16384];
  long n;
  int rc = 0;
  while (!rc && (n = tsvc_metrics_stream_read(r->stream, chunk, sizeof chunk)) != 0)
    rc = n < 0 ? (int)n : tsvc_buf_add(&b, chunk, (size_t)n);
  if (!rc && !b.data) rc = tsvc_buf_add(&b, "", 0);
  tsvc_metrics_stream_free(r->stream);
  r->stream = NULL;
  if (rc) {
    tsvc_buf_free(&b);
    return rc;
  }
  free(r->body);
  r->len = b.len;
  r->body = tsvc_buf_steal(&b);
  return 0;
}

/* GET /: the status page (page.c). */
static enum MHD_Result get_page(tsvc_api_t *a, tsvc_api_reply_t *c) {
  char *html = NULL;
  size_t len = 0;
  if (!a->page || tsvc_page_render(a->page, tsvc_wall_ms(), &html, &len) != 0)
    return reply_error(c, 500, NULL, "cannot render the status page: out of memory");
  return reply_text(c, 200, html, len, "text/html; charset=utf-8", NULL);
}

/* ---- the event stream -------------------------------------------------------- */

/* On the manager's loop thread: queue the line, never block. */
static void on_change(const tsvc_change_t *ch, void *data) {
  stream_t *s = data;
  json_t *v = tsvc_api_json_change(ch);
  char *text = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
  json_decref(v);
  char *line = text ? tsvc_asprintf(s->sse ? "data: %s\n\n" : "%s\n", text) : NULL;
  free(text);
  tsvc_api_t *a = s->api;
  pthread_mutex_lock(&a->mu);
  if (!line || s->n == TSVC_API_EVENT_QUEUE) {
    s->overflow = true; /* the client cannot keep up: end its stream */
    free(line);
  } else {
    s->q[(s->head + s->n++) % TSVC_API_EVENT_QUEUE] = line;
  }
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

static bool peer_gone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* In the connection's own thread: may block (thread per connection). */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  stream_t *s = cls;
  tsvc_api_t *a = s->api;
  pthread_mutex_lock(&a->mu);
  for (;;) {
    if (s->cur && s->off < s->len) {
      size_t k = s->len - s->off < max ? s->len - s->off : max;
      memcpy(buf, s->cur + s->off, k);
      s->off += k;
      pthread_mutex_unlock(&a->mu);
      return (ssize_t)k;
    }
    free(s->cur);
    s->cur = NULL;
    if (s->n) {
      s->cur = s->q[s->head];
      s->head = (s->head + 1) % TSVC_API_EVENT_QUEUE;
      s->n--;
      s->off = 0;
      s->len = strlen(s->cur);
      continue;
    }
    if (a->stopping || s->overflow) break;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 1;
    if (pthread_cond_timedwait(&a->cv, &a->mu, &dl) == ETIMEDOUT && peer_gone(s->fd)) break;
  }
  pthread_mutex_unlock(&a->mu);
  return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls) {
  stream_t *s = cls;
  tsvc_api_t *a = s->api;
  /* After unsubscribe returns, on_change is never called for s again. */
  if (s->sub > 0) tsvc_manager_unsubscribe(s->api->m, s->sub);
  while (s->n) {
    free(s->q[s->head]);
    s->head = (s->head + 1) % TSVC_API_EVENT_QUEUE;
    s->n--;
  }
  free(s->cur);
  bool tcp = s->tcp;
  free(s);
  pthread_mutex_lock(&a->mu);
  a->nstreams--;
  a->nstreams_on[tcp]--;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

/* GET /v1/events (HEAD is answered by respond): needs the connection. */
static enum MHD_Result get_events(tsvc_api_t *a, struct MHD_Connection *c) {
  tsvc_api_reply_t rp;
  bool tcp = conn_is_tcp(c);
  /* Streams live long by design: a cap of their own keeps room for the
     other requests (the cap is per socket, so TCP cannot fill the unix
     socket's). Taken here, given back by stream_free. */
  pthread_mutex_lock(&a->mu);
  bool full = a->nstreams_on[tcp] >= (int)a->max_streams;
  if (!full) {
    a->nstreams++;
    a->nstreams_on[tcp]++;
  }
  pthread_mutex_unlock(&a->mu);
  if (full)
    return reply_error(&rp, 503, NULL,
                       "too many event streams open on this socket (at most %u); close one "
                       "and try again",
                       a->max_streams)
               ? queue_reply(c, &rp)
               : MHD_NO;
  stream_t *s = calloc(1, sizeof *s);
  if (!s) {
    pthread_mutex_lock(&a->mu);
    a->nstreams--;
    a->nstreams_on[tcp]--;
    pthread_mutex_unlock(&a->mu);
    return reply_error(&rp, 500, NULL, "out of memory") ? queue_reply(c, &rp) : MHD_NO;
  }
  s->api = a;
  s->tcp = tcp;
  s->fd = -1;
  /* An EventSource asks for text/event-stream: the same events as SSE. */
  const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
  s->sse = accept && strstr(accept, "text/event-stream");
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci) s->fd = ci->connect_fd;
  s->sub = tsvc_manager_subscribe(a->m, on_change, s);
  if (s->sub <= 0) {
    stream_free(s); /* gives the place back */
    return reply_error(&rp, 500, NULL, "cannot subscribe to changes") ? queue_reply(c, &rp)
                                                                     : MHD_NO;
  }
  struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read,
                                                             s, stream_free);
  if (!r) {
    stream_free(s);
    return MHD_NO;
  }
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                          s->sse ? "text/event-stream" : "application/x-ndjson");
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  /* A stream is idle between changes: no idle timeout for it, and no
     deadline (the request was whole; handler() cleared it). */
  MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

/* ---- POST --------------------------------------------------------------------- */

/* start, stop, restart: the reply's status is read after the operation
   completed (a restart's new pid is in it); check: the verdict of the
   check asked for, and the status that includes it. */
static enum MHD_Result post_action(tsvc_api_t *a, tsvc_api_reply_t *c, const char *name,
                                   const char *action) {
  char err[4096] = "";
  int rc;
  tsvc_check_record_t rec = {0};
  bool check = false;
  if (strcmp(action, "start") == 0) rc = tsvc_manager_start(a->m, name, err, sizeof err);
  else if (strcmp(action, "stop") == 0) rc = tsvc_manager_stop(a->m, name, err, sizeof err);
  else if (strcmp(action, "restart") == 0) rc = tsvc_manager_restart(a->m, name, err, sizeof err);
  else {
    check = true;
    rc = tsvc_manager_check(a->m, name, &rec, err, sizeof err);
  }
  if (rc == TSVC_ENOTMONITORED) tsvc_strlcpy(err, not_monitored_msg, sizeof err);
  if (rc) return reply_rc(c, rc, err);
  tsvc_status_t s;
  json_t *st = NULL;
  if (tsvc_manager_get_status(a->m, name, &s) == 0) {
    st = tsvc_api_json_status(&s, false);
    tsvc_status_clear(&s);
  }
  json_t *v = json_pack("{s:o, s:s, s:b, s:o}", "service", tsvc_api_json_str(name), "action",
                        action, "ok", 1, "status", st ? st : json_null());
  if (v && check) json_object_set_new(v, "check", tsvc_api_json_record(&rec));
  free(rec.message);
  free(rec.output);
  free(rec.probe_address);
  return reply_json(c, 200, v, NULL);
}

static enum MHD_Result post_down(tsvc_api_t *a, tsvc_api_reply_t *c) {
  char err[8192] = "";
  int rc = tsvc_manager_stop_services(a->m, err, sizeof err);
  if (rc) return reply_rc(c, rc, err);
  return reply_json(c, 200, json_pack("{s:b}", "ok", 1), NULL);
}

static enum MHD_Result post_reload(tsvc_api_t *a, tsvc_api_reply_t *c) {
  char err[8192] = "";
  int rc = tsvc_manager_reload(a->m, err, sizeof err);
  if (rc) return reply_rc(c, rc, err);
  return reply_json(c, 200, json_pack("{s:b, s:o}", "ok", 1, "changes", tsvc_api_json_str(err)),
                    NULL);
}

/* ---- routing ------------------------------------------------------------------ */

typedef enum {
  R_NONE, R_SERVICES, R_SERVICE, R_ACTION, R_EVENTS, R_LIVEZ, R_READYZ, R_METRICS, R_DOWN,
  R_RELOAD, R_PAGE, R_ENV
} route_t;

static const char *const actions[] = {"start", "stop", "restart", "check"};

/* Split url into a route; name and action point into buf (a copy). */
static route_t route(const char *url, char *buf, size_t len, const char **name,
                     const char **action) {
  *name = *action = NULL;
  if (strcmp(url, "/") == 0) return R_PAGE;
  if (strcmp(url, "/v1/services") == 0 || strcmp(url, "/v1/services/") == 0) return R_SERVICES;
  if (strcmp(url, "/v1/events") == 0) return R_EVENTS;
  if (strcmp(url, "/livez") == 0) return R_LIVEZ;
  if (strcmp(url, "/readyz") == 0) return R_READYZ;
  if (strcmp(url, "/metrics") == 0) return R_METRICS;
  if (strcmp(url, "/v1/down") == 0) return R_DOWN;
  if (strcmp(url, "/v1/reload") == 0) return R_RELOAD;
  if (strcmp(url, "/v1/env") == 0) return R_ENV;
  static const char pre[] = "/v1/services/";
  if (strncmp(url, pre, sizeof pre - 1) != 0) return R_NONE;
  if (tsvc_strlcpy(buf, url + sizeof pre - 1, len) >= len) return R_NONE;
  char *slash = strchr(buf, '/');
  if (slash) {
    *slash = '\0';
    *action = slash + 1;
    if (strchr(*action, '/')) return R_NONE;
  }
  if (!buf[0]) return R_NONE;
  *name = buf;
  if (!*action) return R_SERVICE;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(actions); i++)
    if (strcmp(*action, actions[i]) == 0) return R_ACTION;
  return R_NONE;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
  (void)version;
  (void)upload;
  tsvc_api_t *a = cls;
  req_t *rq = *con_cls;
  if (!rq) {
    if (!(rq = calloc(1, sizeof *rq))) return MHD_NO;
    *con_cls = rq;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    long n;
    /* A body announced too large but within the drain limit is read (and
       dropped) before the 413, as a chunked one is: answering at once and
       closing with the body unread makes the kernel reset the connection,
       and the client may lose the 413 it was sent. */
    if (!cl ||
        (tsvc_parse_int(cl, 0, LONG_MAX, &n) == 0 && (unsigned long)n <= TSVC_API_DRAIN_BODY))
      return MHD_YES; /* come back with the body (or its end) */
    rq->body = TSVC_API_MAX_BODY + 1; /* announced as far too large: 413 at once */
  } else if (*upload_size) {
    /* Bodies are not used: counted and dropped. libmicrohttpd cannot answer
       in the middle of an upload, so a body over the limit (sent chunked,
       without Content-Length) is drained up to TSVC_API_DRAIN_BODY and then
       answered 413; beyond that the connection is closed. */
    rq->body += *upload_size;
    *upload_size = 0;
    return rq->body > TSVC_API_DRAIN_BODY ? MHD_NO : MHD_YES;
  }
  /* The request is whole: no deadline while it is handled (a restart may
     take minutes); the reply sets the next one. */
  set_deadline(a, c, 0);
  bool tcp = conn_is_tcp(c);
  tsvc_api_reply_t rp;
  tsvc_api_query_t q = {MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "view")};
  int rc = tsvc__api_respond_query(a, method, url, &q, rq->body, tcp, &rp);
  rq->down = rp.down;
  if (rc) return MHD_NO;
  return rp.events ? get_events(a, c) : queue_reply(c, &rp);
}

/* The request once its body is in (see api_int.h); c is the reply. */
static enum MHD_Result respond(tsvc_api_t *a, tsvc_api_reply_t *c, const char *method,
                               const char *url, const tsvc_api_query_t *q, size_t body,
                               bool tcp) {
  if (body > TSVC_API_MAX_BODY)
    return reply_error(c, 413, NULL, "request body too large (at most %u bytes)",
                       TSVC_API_MAX_BODY);

  /* The unescape callback leaves "" for a URL with bad percent-encoding. */
  if (!url[0]) return reply_error(c, 400, NULL, "malformed percent-encoding in the URL");
  char buf[512];
  const char *name, *action;
  route_t r = route(url, buf, sizeof buf, &name, &action);
  if (r == R_NONE) {
    json_t *v = json_pack("{s:o}", "error", json_null());
    char msg[700];
    snprintf(msg, sizeof msg, "no such endpoint: %.600s", url);
    json_object_set_new(v, "error", tsvc_api_json_str(msg));
    return reply_json(c, 404, v, NULL);
  }
  bool is_get = strcmp(method, "GET") == 0, is_head = strcmp(method, "HEAD") == 0;
  bool is_post = strcmp(method, "POST") == 0;
  bool want_post = r == R_ACTION || r == R_DOWN || r == R_RELOAD;
  if (want_post ? !is_post : !(is_get || is_head))
    return reply_error(c, 405, want_post ? "POST" : "GET, HEAD",
                       "method %s not allowed here (use %s)", method,
                       want_post ? "POST" : "GET");
  if (want_post && tcp)
    return reply_error(c, 403, NULL, "control operations are only served on the unix socket");
  enum MHD_Result ret;
  switch (r) {
  case R_SERVICES: return get_services(a, c);
  case R_SERVICE: return get_service(a, c, name);
  case R_ACTION: return post_action(a, c, name, action);
  case R_EVENTS:
    if (is_head) return reply_text(c, 200, NULL, 0, "application/x-ndjson", NULL);
    c->events = true; /* the caller streams: it needs the connection */
    return MHD_YES;
  case R_LIVEZ: return get_livez(a, c);
  case R_READYZ: return get_readyz(a, c);
  case R_METRICS: return get_metrics(a, c);
  case R_DOWN:
    ret = post_down(a, c);
    c->down = true; /* stop the monitor even when some stops failed */
    return ret;
  case R_RELOAD: return post_reload(a, c);
  case R_PAGE: return get_page(a, c);
  case R_ENV: return get_env(a, c, q ? q->view : NULL, tcp);
  case R_NONE: break;
  }
  return MHD_NO;
}

int tsvc__api_respond_query(tsvc_api_t *a, const char *method, const char *url,
                            const tsvc_api_query_t *q, size_t body, bool tcp,
                            tsvc_api_reply_t *out) {
  *out = (tsvc_api_reply_t){0};
  return respond(a, out, method, url, q, body, tcp) == MHD_YES ? 0 : TSVC_ENOMEM;
}

int tsvc__api_respond(tsvc_api_t *a, const char *method, const char *url, size_t body, bool tcp,
                      tsvc_api_reply_t *out) {
  return tsvc__api_respond_query(a, method, url, NULL, body, tcp, out);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)toe;
  tsvc_api_t *a = cls;
  /* A connection kept alive must bring its next request whole in time. */
  set_deadline(a, c, a->request_deadline_ms);
  req_t *rq = *con_cls;
  if (!rq) return;
  *con_cls = NULL;
  if (rq->down && a->on_down) a->on_down(a->data);
  free(rq);
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

size_t tsvc__api_unescape(char *s) {
  char *w = s;
  for (const char *p = s; *p; p++) {
    if (*p != '%') {
      *w++ = *p;
      continue;
    }
    int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
    if (hi < 0 || lo < 0 || (hi | lo) == 0) {
      s[0] = '\0';
      return 0;
    }
    *w++ = (char)(hi * 16 + lo);
    p += 2;
  }
  *w = '\0';
  return (size_t)(w - s);
}

static size_t unescape(void *cls, struct MHD_Connection *c, char *s) {
  (void)cls;
  (void)c;
  return tsvc__api_unescape(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n && msg[n - 1] == '\n') msg[--n] = '\0';
  TSVC_LOG(TSVC_LOG_DEBUG, NULL, "api: %s", msg);
}

/* ---- sockets ------------------------------------------------------------------ */

char *tsvc_api_socket_path(const char *config_path, const char *socket) {
  if (!socket) socket = ".tanuki/tanuki-svc.sock";
  if (socket[0] == '/') return strdup(socket);
  char abs[PATH_MAX];
  const char *p = realpath(config_path, abs) ? abs : config_path;
  const char *slash = strrchr(p, '/');
  if (!slash) return strdup(socket);
  return tsvc_asprintf("%.*s/%s", (int)(slash - p), p, socket);
}

tsvc_api_sock_state_t tsvc_api_socket_state(const char *path, char *err, size_t errlen) {
  if (err && errlen) err[0] = '\0';
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT) return TSVC_API_SOCK_NONE;
    if (err) snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return TSVC_API_SOCK_DENIED;
  }
  if (!S_ISSOCK(st.st_mode)) {
    if (err) snprintf(err, errlen, "%s: not a socket", path);
    return TSVC_API_SOCK_DENIED;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    if (err) snprintf(err, errlen, "%s: path too long for a unix socket", path);
    return TSVC_API_SOCK_DENIED;
  }
  tsvc_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (err) snprintf(err, errlen, "socket: %s", strerror(errno));
    return TSVC_API_SOCK_DENIED;
  }
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  int e = errno;
  close(fd);
  if (rc == 0 || e == EAGAIN) return TSVC_API_SOCK_LIVE;
  if (e == ECONNREFUSED || e == ENOENT) return TSVC_API_SOCK_STALE;
  if (err) snprintf(err, errlen, "%s: %s", path, strerror(e));
  return TSVC_API_SOCK_DENIED;
}

/* mkdir -p the directory of path (0700 for what we create). */
static int make_dirs(const char *path) {
  char buf[PATH_MAX];
  if (tsvc_strlcpy(buf, path, sizeof buf) >= sizeof buf) return -1;
  char *slash = strrchr(buf, '/');
  if (!slash || slash == buf) return 0;
  *slash = '\0';
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -1;
  return 0;
}

static int listen_unix(const char *path, char *err, size_t errlen) {
  char why[512];
  switch (tsvc_api_socket_state(path, why, sizeof why)) {
  case TSVC_API_SOCK_LIVE:
    snprintf(err, errlen, "a monitor already answers on %s", path);
    return TSVC_EEXIST;
  case TSVC_API_SOCK_STALE:
    TSVC_LOG(TSVC_LOG_INFO, NULL, "removing the stale socket %s", path);
    unlink(path);
    break;
  case TSVC_API_SOCK_DENIED:
    snprintf(err, errlen, "cannot use %s", why);
    return TSVC_EIO;
  case TSVC_API_SOCK_NONE: break;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof sa.sun_path) {
    snprintf(err, errlen, "%s: path too long for a unix socket (at most %zu bytes)", path,
             sizeof sa.sun_path - 1);
    return TSVC_EIO;
  }
  tsvc_strlcpy(sa.sun_path, path, sizeof sa.sun_path);
  if (make_dirs(path) != 0) {
    snprintf(err, errlen, "cannot create the directory of %s: %s", path, strerror(errno));
    return TSVC_EIO;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return TSVC_EIO;
  }
  /* Nobody can connect before listen(): the mode is set in between. */
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    int e = errno;
    close(fd);
    snprintf(err, errlen, "cannot bind %s: %s", path, strerror(e));
    return e == EADDRINUSE ? TSVC_EEXIST : TSVC_EIO;
  }
  if (chmod(path, 0600) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    unlink(path);
    snprintf(err, errlen, "cannot listen on %s: %s", path, strerror(e));
    return TSVC_EIO;
  }
  return fd;
}

#define MHD_FLAGS (MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | \
                   MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC)

/* One thread per connection (so a slow restart holds up nobody else): a
   small stack each, as there may be hundreds of them. */
#define MHD_STACK (1u << 20)

static struct MHD_Daemon *start_mhd(tsvc_api_t *a, unsigned extra_flags, int listen_fd,
                                    const struct sockaddr *sa) {
  bool tcp = listen_fd < 0;
  /* TCP: every client may connect, so a cap per client address; the unix
     socket is its owner's alone (mode 0600). */
  struct MHD_OptionItem opts[] = {
      {tcp ? MHD_OPTION_SOCK_ADDR : MHD_OPTION_LISTEN_SOCKET, tcp ? 0 : listen_fd,
       tcp ? (void *)sa : NULL},
      {MHD_OPTION_CONNECTION_LIMIT, tcp ? a->tcp_connections : TSVC_API_MAX_CONNECTIONS, NULL},
      {tcp ? MHD_OPTION_PER_IP_CONNECTION_LIMIT : MHD_OPTION_END, a->per_client, NULL},
      {MHD_OPTION_END, 0, NULL},
  };
  return MHD_start_daemon(
      MHD_FLAGS | extra_flags, 0, NULL, NULL, handler, a, MHD_OPTION_ARRAY, opts,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)TSVC_API_MAX_HEADERS,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)TSVC_API_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED,
      completed, a, MHD_OPTION_NOTIFY_CONNECTION, notify_conn, a, MHD_OPTION_THREAD_STACK_SIZE,
      (size_t)MHD_STACK, MHD_OPTION_UNESCAPE_CALLBACK, unescape, a, MHD_OPTION_EXTERNAL_LOGGER,
      mhd_log, a, MHD_OPTION_END);
}

static int start_tcp(tsvc_api_t *a, const char *listen, char *err, size_t errlen) {
  char host[256];
  const char *colon = strrchr(listen, ':');
  if (!colon || (size_t)(colon - listen) >= sizeof host) {
    snprintf(err, errlen, "monitor.listen: expected host:port, got \"%s\"", listen);
    return TSVC_EINVAL;
  }
  snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
  if (!host[0]) tsvc_strlcpy(host, "127.0.0.1", sizeof host);
  size_t hl = strlen(host);
  if (host[0] == '[' && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
  struct addrinfo *res = NULL;
  int gai = getaddrinfo(host, colon + 1, &hints, &res);
  if (gai) {
    snprintf(err, errlen, "monitor.listen %s: %s", listen, gai_strerror(gai));
    return TSVC_EINVAL;
  }
  struct addrinfo *ai = res;
  for (struct addrinfo *p = res; p; p = p->ai_next)
    if (p->ai_family == AF_INET) {
      ai = p; /* IPv4 first, as people expect of "localhost" */
      break;
    }
  a->tcp_d = start_mhd(a, ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0, -1, ai->ai_addr);
  freeaddrinfo(res);
  if (!a->tcp_d) {
    snprintf(err, errlen, "cannot listen on %s (address in use?)", listen);
    return TSVC_EIO;
  }
  return 0;
}

tsvc_api_t *tsvc__api_new(tsvc_manager_t *m) {
  tsvc_api_t *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->m = m;
  a->livez_lag_ms = TSVC_API_LIVEZ_LAG_MS;
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  pthread_mutex_init(&a->wmu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&a->wcv, &ca);
  pthread_condattr_destroy(&ca);
  return a;
}

int tsvc_api_start(const tsvc_api_opts_t *o, tsvc_api_t **out, char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) err = dummy, errlen = sizeof dummy;
  err[0] = '\0';
  if (!o || !o->manager || !o->socket_path) return TSVC_EINVAL;
  tsvc_api_t *a = tsvc__api_new(o->manager);
  if (!a) return TSVC_ENOMEM;
  a->on_down = o->on_down;
  a->data = o->data;
  a->request_deadline_ms = o->request_deadline_ms ? o->request_deadline_ms
                                                  : TSVC_API_REQUEST_DEADLINE_MS;
  a->reply_deadline_ms = o->reply_deadline_ms ? o->reply_deadline_ms : TSVC_API_REPLY_DEADLINE_MS;
  a->tcp_connections = o->tcp_connections ? o->tcp_connections : TSVC_API_TCP_CONNECTIONS;
  a->per_client = o->per_client ? o->per_client : TSVC_API_PER_CLIENT;
  a->max_streams = o->max_streams ? o->max_streams : TSVC_API_MAX_STREAMS;
  if (o->livez_lag_ms) a->livez_lag_ms = o->livez_lag_ms;
  a->socket_path = strdup(o->socket_path);
  int rc = a->socket_path ? 0 : TSVC_ENOMEM;
  if (!rc) {
    /* Before any connection can arrive. */
    a->watchdog_running = pthread_create(&a->watchdog, NULL, watchdog_main, a) == 0;
    if (!a->watchdog_running) {
      snprintf(err, errlen, "cannot start the API's watchdog thread");
      rc = TSVC_ENOMEM;
      free(a->socket_path);
      a->socket_path = NULL; /* never bound: not ours to unlink */
    }
  }
  int fd = -1;
  if (!rc) {
    fd = listen_unix(a->socket_path, err, errlen);
    if (fd < 0) {
      rc = fd;
      free(a->socket_path);
      a->socket_path = NULL; /* not ours: never unlink it */
    }
  }
  /* Everything a handler reads is set before the first daemon serves. */
  if (!rc) a->page = tsvc_page_new(a->m); /* NULL: GET / answers 500 */
  if (!rc) {
    a->unix_d = start_mhd(a, 0, fd, NULL);
    if (!a->unix_d) {
      close(fd);
      snprintf(err, errlen, "cannot serve on %s", a->socket_path);
      rc = TSVC_EIO;
    }
  }
  if (!rc && o->listen) rc = start_tcp(a, o->listen, err, errlen);
  if (rc) {
    tsvc_api_stop(a);
    return rc;
  }
  *out = a;
  return 0;
}

void tsvc_api_stop(tsvc_api_t *a) {
  if (!a) return;
  /* No new connections; then let the event streams end properly (their
     last chunk sent), for at most 2 s, before every connection is cut. */
  if (a->tcp_d) {
    MHD_socket fd = MHD_quiesce_daemon(a->tcp_d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
  }
  if (a->unix_d) {
    MHD_socket fd = MHD_quiesce_daemon(a->unix_d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
  }
  pthread_mutex_lock(&a->mu);
  a->stopping = true;
  pthread_cond_broadcast(&a->cv);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += 2;
  while (a->nstreams > 0 && pthread_cond_timedwait(&a->cv, &a->mu, &dl) == 0) {
  }
  pthread_mutex_unlock(&a->mu);
  if (a->tcp_d) MHD_stop_daemon(a->tcp_d);
  if (a->unix_d) MHD_stop_daemon(a->unix_d);
  /* Every connection is closed now (their close notices emptied the list). */
  if (a->watchdog_running) {
    pthread_mutex_lock(&a->wmu);
    a->wstop = true;
    pthread_cond_signal(&a->wcv);
    pthread_mutex_unlock(&a->wmu);
    pthread_join(a->watchdog, NULL);
  }
  tsvc_page_free(a->page);
  if (a->socket_path) unlink(a->socket_path);
  free(a->socket_path);
  pthread_mutex_destroy(&a->mu);
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->wmu);
  pthread_cond_destroy(&a->wcv);
  free(a);
}
