/*
 * api_int.h: the request path of api.c without libmicrohttpd or a socket,
 * for tests and the fuzz target fuzz/fuzz_api.c. The server itself answers
 * every request through these functions.
 *
 * Ownership: tsvc__api_new() makes a server that serves nothing (no socket,
 * no thread) over a borrowed manager; free it with tsvc_api_stop(). A reply's
 * body belongs to the caller: tsvc_api_reply_free().
 */
#ifndef TSVC_API_INT_H
#define TSVC_API_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "api/api.h"
#include "api/metrics.h"

/* What a request is answered with. */
typedef struct {
  unsigned code;      /* HTTP status */
  char *body;         /* owned; NULL for an empty body */
  size_t len;
  tsvc_metrics_stream_t *stream; /* owned; instead of body: the body made
                                    as it is sent (GET /metrics) */
  const char *type;   /* Content-Type (static) */
  const char *allow;  /* Allow header (static), or NULL */
  bool events;        /* GET /v1/events: nothing else is set, the caller
                         streams the changes on its connection */
  bool down;          /* POST /v1/down was answered: stop the monitor */
} tsvc_api_reply_t;

static inline void tsvc_api_reply_free(tsvc_api_reply_t *r) {
  free(r->body);
  r->body = NULL;
  tsvc_metrics_stream_free(r->stream);
  r->stream = NULL;
}

/* A streamed body read whole into body and len (tests and fuzzing; the
   server sends it as it is made). Returns 0, TSVC_ENOMEM, or the stream's
   error. */
int tsvc__api_reply_drain(tsvc_api_reply_t *r);

tsvc_api_t *tsvc__api_new(tsvc_manager_t *m);

/*
 * Answer method url (url percent-decoded by tsvc__api_unescape: "" when
 * that failed) once body bytes of request body were received; tcp when it
 * came over TCP (read-only). Calls the manager as the endpoint asks.
 * Returns 0 with *out set, or TSVC_ENOMEM (out->down may still be set).
 */
int tsvc__api_respond(tsvc_api_t *a, const char *method, const char *url, size_t body, bool tcp,
                      tsvc_api_reply_t *out);

/* The query arguments an endpoint reads (decoded; NULL when absent). */
typedef struct {
  const char *view; /* GET /v1/env?view=host|network */
} tsvc_api_query_t;

/* The same with the request's query arguments (q may be NULL: none). */
int tsvc__api_respond_query(tsvc_api_t *a, const char *method, const char *url,
                            const tsvc_api_query_t *q, size_t body, bool tcp,
                            tsvc_api_reply_t *out);

/*
 * Decode %HH in place and return the new length. A malformed escape or an
 * encoded NUL leaves "" (answered 400).
 */
size_t tsvc__api_unescape(char *s);

#endif
