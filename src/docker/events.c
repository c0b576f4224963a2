/*
 * events.c: the /events stream of docker.h. One internal request per
 * connection; its records are queued inside libcurl's write callback and
 * handed to the user afterwards (tsvc__docker_events_flush), where the user
 * may call anything. A connection that ends is replaced: at once (50 ms)
 * when it had been established, else after a backoff.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/internal.h"

#define EVENTS_RECONNECT_MS 50
#define EVENTS_BACKOFF_MIN_MS 100
#define EVENTS_BACKOFF_MAX_MS 2000
#define EVENTS_PENDING_MAX (1u << 20) /* records waiting for delivery */

struct tsvc_docker_events_s {
  tsvc_docker_t *d;
  tsvc_docker_events_t *prev, *next;
  char *path;                  /* /events?filters=... */
  tsvc_docker_event_cb on_event;
  tsvc_docker_state_cb on_state;
  void *data;
  tsvc_docker_req_t *req;      /* the connection, while there is one */
  uv_timer_t timer;            /* reconnection; frees the struct on close */
  int told;                    /* -1 nothing yet, 0 unreachable, 1 reachable */
  bool up_pending;             /* a connection was established: tell */
  uint64_t backoff_ms;
  tsvc_buf_t pending;          /* records, '\n'-terminated, from pos on */
  size_t pos;
  size_t dropped;              /* records lost to EVENTS_PENDING_MAX */
};

static void connect_stream(tsvc_docker_events_t *ev);

static void on_timer(uv_timer_t *t) {
  tsvc_docker_events_t *ev = t->data;
  tsvc_docker_t *d = ev->d;
  tsvc__docker_enter(d);
  connect_stream(ev);
  tsvc__docker_leave(d);
}

static void schedule(tsvc_docker_events_t *ev, uint64_t ms) {
  uv_timer_start(&ev->timer, on_timer, ms, 0);
}

/* Inside libcurl's callbacks: only note things down. */
static void on_headers(tsvc_docker_req_t *r) {
  tsvc_docker_events_t *ev = r->ev;
  if (ev && r->http == 200) {
    ev->up_pending = true;
    ev->backoff_ms = 0;
  }
}

static int on_line(void *ctx, const char *line, size_t n) {
  tsvc_docker_req_t *r = ctx;
  tsvc_docker_events_t *ev = r->ev;
  if (!ev) return 0;
  if (ev->pos == ev->pending.len) {
    tsvc_buf_reset(&ev->pending);
    ev->pos = 0;
  }
  if (n + 1 > ev->pending.max - ev->pending.len) {
    ev->dropped++;
    return 0;
  }
  if (tsvc_buf_add(&ev->pending, line, n) || tsvc_buf_add(&ev->pending, "\n", 1))
    ev->dropped++;
  return 0;
}

static void stream_ended(tsvc_docker_req_t *r, int status, const char *errmsg) {
  tsvc_docker_events_t *ev = r->ev;
  char msg[512];
  tsvc_strlcpy(msg, errmsg, sizeof msg);
  bool was_up = r->headers_done && r->http == 200;
  /* Free the connection before any user code runs: it may stop ev. */
  r->ev = NULL;
  if (ev) ev->req = NULL;
  tsvc__docker_req_destroy(r);
  if (!ev) return;
  if (was_up) {
    schedule(ev, EVENTS_RECONNECT_MS);
    return;
  }
  ev->backoff_ms = ev->backoff_ms ? ev->backoff_ms * 2 : EVENTS_BACKOFF_MIN_MS;
  if (ev->backoff_ms > EVENTS_BACKOFF_MAX_MS) ev->backoff_ms = EVENTS_BACKOFF_MAX_MS;
  schedule(ev, ev->backoff_ms);
  if (ev->told != 0) {
    ev->told = 0;
    if (!status) snprintf(msg, sizeof msg, "the Docker daemon ended the event stream at once");
    if (ev->on_state) ev->on_state(false, msg, ev->data);
  }
}

static void connect_stream(tsvc_docker_events_t *ev) {
  tsvc_docker_t *d = ev->d;
  if (ev->req || d->closing) return;
  tsvc_docker_req_t *r = tsvc__docker_req_new(d, NULL, NULL);
  if (!r) {
    schedule(ev, EVENTS_BACKOFF_MAX_MS);
    return;
  }
  r->ev = ev;
  r->sink = TSVC__SINK_LINES;
  r->max = TSVC_DOCKER_MAX_EVENT;
  r->timeout_ms = 0; /* a stream: no end expected */
  /* Its own connection: one kept alive from before may still be served by
     a daemon that is shutting down, which would look like "reachable". */
  r->fresh = true;
  r->on_headers = on_headers;
  r->on_line = on_line;
  ev->req = r;
  if (tsvc__docker_xfer(r, "GET", ev->path, NULL, stream_ended)) {
    ev->req = NULL;
    tsvc__docker_req_destroy(r);
    schedule(ev, EVENTS_BACKOFF_MAX_MS);
  }
}

void tsvc__docker_events_flush(tsvc_docker_t *d) {
  /* One delivery at a time, from the list's head each time: a callback may
   * stop any stream or free the client. */
  for (;;) {
    if (d->closing) return;
    tsvc_docker_events_t *ev = d->events;
    while (ev && !ev->up_pending && ev->pos == ev->pending.len) ev = ev->next;
    if (!ev) return;
    if (ev->up_pending) {
      ev->up_pending = false;
      if (ev->told != 1) {
        ev->told = 1;
        if (ev->on_state) ev->on_state(true, "", ev->data);
      }
      continue;
    }
    const char *start = ev->pending.data + ev->pos;
    const char *nl = memchr(start, '\n', ev->pending.len - ev->pos);
    size_t n = nl ? (size_t)(nl - start) : ev->pending.len - ev->pos;
    json_t *j = json_loadb(start, n, 0, NULL);
    ev->pos += n + (nl ? 1 : 0);
    if (j && ev->on_event) ev->on_event(j, ev->data);
    json_decref(j);
  }
}

static void events_close_cb(uv_handle_t *h) {
  tsvc_docker_events_t *ev = h->data;
  free(ev->path);
  tsvc_buf_free(&ev->pending);
  free(ev);
}

void tsvc__docker_events_destroy(tsvc_docker_events_t *ev) {
  tsvc_docker_t *d = ev->d;
  if (ev->prev) ev->prev->next = ev->next; else d->events = ev->next;
  if (ev->next) ev->next->prev = ev->prev;
  if (ev->req) {
    ev->req->ev = NULL;
    tsvc__docker_req_destroy(ev->req);
    ev->req = NULL;
  }
  uv_timer_stop(&ev->timer);
  uv_close((uv_handle_t *)&ev->timer, events_close_cb);
}

void tsvc_docker_events_stop(tsvc_docker_events_t *ev) {
  if (ev) tsvc__docker_events_destroy(ev);
}

int tsvc_docker_events_start(tsvc_docker_t *d, const char *label, tsvc_docker_event_cb on_event,
                             tsvc_docker_state_cb on_state, void *data,
                             tsvc_docker_events_t **out) {
  if (!d || !out || d->closing) return TSVC_EINVAL;
  *out = NULL;
  json_t *f = json_pack("{s:[s], s:[s,s,s,s,s,s,s]}", "type", "container", "event", "die", "oom",
                        "stop", "start", "kill", "restart", "destroy");
  if (f && label && json_object_set_new(f, "label", json_pack("[s]", label))) {
    json_decref(f);
    f = NULL;
  }
  char *fs = f ? json_dumps(f, JSON_COMPACT) : NULL;
  char *fe = fs ? tsvc__docker_esc(fs) : NULL;
  char *path = fe ? tsvc_asprintf("/events?filters=%s", fe) : NULL;
  json_decref(f);
  free(fs);
  free(fe);
  tsvc_docker_events_t *ev = path ? calloc(1, sizeof *ev) : NULL;
  if (!ev) {
    free(path);
    return TSVC_ENOMEM;
  }
  if (uv_timer_init(d->loop, &ev->timer)) {
    free(path);
    free(ev);
    return TSVC_ERUNTIME;
  }
  ev->timer.data = ev;
  ev->d = d;
  ev->path = path;
  ev->on_event = on_event;
  ev->on_state = on_state;
  ev->data = data;
  ev->told = -1;
  tsvc_buf_init(&ev->pending, EVENTS_PENDING_MAX);
  ev->next = d->events;
  if (d->events) d->events->prev = ev;
  d->events = ev;
  connect_stream(ev);
  *out = ev;
  return 0;
}
