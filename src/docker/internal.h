/*
 * internal: what the files of the docker module share; not for other
 * modules. client.c owns the transport (libcurl multi on libuv, requests,
 * version negotiation, errors), ops.c the operations built on it, events.c
 * the event stream.
 *
 * A request (tsvc_docker_req_t) is one operation as the caller sees it; it
 * runs one HTTP exchange at a time on its own easy handle, and a step
 * function decides what comes next: another exchange, or the end
 * (tsvc__docker_done, which calls the user's callback and frees the
 * request).
 */
#ifndef TSVC_DOCKER_INTERNAL_H
#define TSVC_DOCKER_INTERNAL_H

#include <curl/curl.h>

#include "common/curl_uv.h"
#include "common/util.h"
#include "docker/docker.h"
#include "docker/host.h"
#include "docker/stream.h"
#include "docker/tunnel.h"

typedef enum {
  TSVC__SINK_BODY,    /* the body, up to max bytes, else TSVC_EIO */
  TSVC__SINK_STREAM,  /* demultiplexed into the tail (last max bytes) */
  TSVC__SINK_LINES    /* split into records of at most max bytes (events) */
} tsvc__sink_t;

/* What comes after an exchange. status is 0 when the daemon answered 2xx
 * or 304, else the error (errmsg: the daemon's message or the transport's;
 * valid during the call only). */
typedef void (*tsvc__step_fn)(tsvc_docker_req_t *r, int status, const char *errmsg);

struct tsvc_docker_s {
  uv_loop_t *loop;
  tsvc_curl_uv_t cu;         /* libcurl multi on the loop (common/curl_uv.h) */
  char *host;                /* as given or defaulted */
  tsvc_docker_endpoint_t ep; /* host taken apart */
  char *base_url;            /* http://localhost, http(s)://host:port */
  char *unix_path;           /* NULL for tcp; the tunnel's socket for ssh */
  bool local;                /* the engine runs on this machine */
  bool tls;
  bool tls_verify;
  char *ca, *cert, *key;     /* TLS files, when tls (NULL: none) */
  char *tls_origin;          /* where they were set, for messages */
  tsvc_tunnel_t *tunnel;     /* ssh:// hosts */
  char api_version[16];      /* "" until negotiated */
  tsvc_docker_req_t *negotiation; /* the internal /_ping in flight */
  tsvc_docker_req_t *reqs;   /* every live request */
  tsvc_docker_events_t *events; /* every live event stream */
  int depth;                 /* > 0 while running inside a loop callback */
  bool closing;              /* tsvc_docker_free was called */
};

struct tsvc_docker_req_s {
  tsvc_docker_t *d;
  tsvc_docker_req_t *prev, *next;
  CURL *easy;
  bool in_multi;             /* the easy handle is in d->multi */
  bool parked;               /* waiting for the version negotiation */
  bool tunnel_wait;          /* waiting for the ssh tunnel to come up */
  bool in_cb;                /* the user's callback is running */
  bool versioned;            /* path gets the /v1.xx prefix */
  bool fresh;                /* on a new connection, not kept for others */

  /* The current exchange. */
  char *method;
  char *path;
  char *post;                /* request body, NULL for none */
  struct curl_slist *hdrs;
  long timeout_ms;           /* 0: none */
  long stall_s;              /* > 0: fail when no byte comes for this long */
  char *xhdr;                /* one more request header line, or NULL */
  tsvc__sink_t sink;
  size_t max;
  tsvc_buf_t body;
  tsvc_demux_t demux;
  tsvc_tail_t tail;          /* SINK_STREAM output; kept across exchanges */
  tsvc_lines_t lines;
  int sink_err;
  long http;                 /* status of the last response line */
  bool headers_done;         /* the final response's headers are in */
  char ctype[96];
  char api_header[16];       /* the Api-Version header */
  char curl_err[CURL_ERROR_SIZE];
  tsvc__step_fn step;
  /* Hooks run inside libcurl's callbacks: no libcurl call, no user code. */
  void (*on_headers)(tsvc_docker_req_t *r);
  int (*on_line)(void *r, const char *line, size_t n);

  /* Who gets the result; cb NULL for internal requests. */
  tsvc_docker_cb cb;
  void *data;

  /* Per-operation state (ops.c, events.c). */
  char *id;                  /* container / network / exec id */
  char *id2;                 /* second id (exec id of exec_run) */
  json_t *spec;              /* a body kept for a later exchange */
  int timeout;               /* exec_run timeout (ms) */
  int tries;
  int exit_code;
  int pid;
  bool timed_out;
  uint64_t guard_at;         /* exec_run after its timeout: loop time by which
                                it must be found running (and killed), then
                                by which the killed one must have ended */
  tsvc_docker_req_t *parent, *child; /* exec_run and its kill */
  tsvc_docker_events_t *ev;
  uv_timer_t timer;
  void (*timer_fn)(tsvc_docker_req_t *r);
  bool timer_used;           /* timer initialised; freed in its close cb */
  void *op;                  /* an operation's own state (pull.c), freed
                                with op_free when the request goes */
  void (*op_free)(void *op);
};

/* A new request with nothing in flight, linked into d. NULL on ENOMEM. */
tsvc_docker_req_t *tsvc__docker_req_new(tsvc_docker_t *d, tsvc_docker_cb cb, void *data);
/* Start an exchange: method, path (versioned unless r->versioned is false)
 * and body (copied; NULL: none), with r->sink / max / timeout_ms as set;
 * step runs when it ends. Returns 0, or an error (step will not run). */
int tsvc__docker_xfer(tsvc_docker_req_t *r, const char *method, const char *path,
                      const json_t *body, tsvc__step_fn step);
/* End r: call its callback with rep (http_status and errmsg filled in when
 * left 0/NULL) unless cancelled, then free it. */
void tsvc__docker_done(tsvc_docker_req_t *r, tsvc_docker_reply_t *rep);
void tsvc__docker_fail(tsvc_docker_req_t *r, int status, const char *errmsg);
/* Free r without calling its callback (cancel). */
void tsvc__docker_req_destroy(tsvc_docker_req_t *r);
/* Run fn(r) after ms on r's own timer (restarts it). Returns 0 or error. */
int tsvc__docker_req_timer(tsvc_docker_req_t *r, uint64_t ms, void (*fn)(tsvc_docker_req_t *r));
void tsvc__docker_req_timer_stop(tsvc_docker_req_t *r);
/* The response body as JSON (new reference), or NULL. */
json_t *tsvc__docker_body_json(const tsvc_docker_req_t *r);
/* Hand an operation's first exchange off: on error free r (and return it). */
int tsvc__docker_launch(tsvc_docker_req_t *r, const char *method, const char *path,
                        const json_t *body, tsvc__step_fn step, tsvc_docker_req_t **reqp);
/* Percent-encode s for a path segment or query value. Caller frees. */
char *tsvc__docker_esc(const char *s);
/* Loop-callback bracketing: leave() finishes a deferred tsvc_docker_free. */
void tsvc__docker_enter(tsvc_docker_t *d);
void tsvc__docker_leave(tsvc_docker_t *d);

/* Percent-encode s for a path whose '/', ':' and '@' stay (an image name
 * in /images/{name}/json). Caller frees. */
char *tsvc__docker_esc_path(const char *s);

/* events.c */
void tsvc__docker_events_flush(tsvc_docker_t *d);
void tsvc__docker_events_destroy(tsvc_docker_events_t *ev);

#endif /* TSVC_DOCKER_INTERNAL_H */
