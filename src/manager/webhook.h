/*
 * webhook: `hooks.webhook: URL` (docs/config.md, "hooks"; README, "Hooks"):
 * each change of state is POSTed as the JSON object GET /v1/events streams
 * for it (Content-Type: application/json), with libcurl multi on the
 * monitor's loop (common/curl_uv.h, as the docker client): no thread, and
 * never a wait.
 *
 * One delivery is one event to one URL. An attempt ends at its timeout;
 * a connection error, a timeout, a 5xx or a 429 is retried after 1 s, then
 * 2 s (doubling, at most TSVC_WEBHOOK_BACKOFF_MAX_MS), TSVC_WEBHOOK_ATTEMPTS
 * attempts in all; any other answer outside 2xx (a 4xx, a redirect) ends it
 * at once. A delivery that fails is logged once (URL masked). At most
 * TSVC_WEBHOOK_QUEUE deliveries are kept (in flight and waiting, every URL
 * together; TSVC_WEBHOOK_IN_FLIGHT at once); one more drops the OLDEST that
 * is not in flight (a waiting event or a retry): the newest changes of
 * state are worth more than old ones. Drops are logged and counted.
 *
 * Loop thread only. Memory: a delivery copies the URL, the service and the
 * body; the caller keeps its own.
 */
#ifndef TSVC_WEBHOOK_H
#define TSVC_WEBHOOK_H

#include <stdint.h>
#include <uv.h>

#include "manager/hooks.h"
#include "tsvc.h"

#define TSVC_WEBHOOK_QUEUE 256     /* deliveries in flight and waiting */
#define TSVC_WEBHOOK_IN_FLIGHT 16  /* transfers at once */
#define TSVC_WEBHOOK_ATTEMPTS 3    /* per delivery */
#define TSVC_WEBHOOK_BACKOFF_MS 1000
#define TSVC_WEBHOOK_BACKOFF_MAX_MS 4000
#define TSVC_WEBHOOK_TIMEOUT_MS 5000 /* hooks.webhook_timeout's default */

typedef struct tsvc_webhook_s tsvc_webhook_t;

/* Returns 0 with *out, TSVC_ENOMEM, or TSVC_ERUNTIME when libcurl cannot
   be set up (why in err). counters (may be NULL) is the caller's and must
   outlive *out: each delivery begun, failed or dropped is counted there
   too, as kind TSVC_HOOK_WEBHOOK. */
int tsvc_webhook_new(uv_loop_t *loop, tsvc_hook_counters_t *counters, tsvc_webhook_t **out,
                     char *err, size_t errlen);

/* Queue body (JSON) for url, each attempt ending after timeout_ms (0: the
   default). service names the event in the log. Returns 0 (queued; an
   older delivery may have been dropped for it), TSVC_EINVAL (no url or
   body), TSVC_ENOMEM. Never calls anything back. */
int tsvc_webhook_post(tsvc_webhook_t *w, const char *url, tsvc_ms_t timeout_ms,
                      const char *service, const char *body);

/* Counts, for tests. */
typedef struct {
  uint64_t posted;    /* deliveries queued */
  uint64_t attempts;  /* transfers started */
  uint64_t delivered; /* answered 2xx */
  uint64_t failed;    /* given up (attempts spent, or an answer not retried) */
  uint64_t dropped;   /* the queue was full */
  int queued;         /* now: in flight and waiting */
  int in_flight;      /* now */
} tsvc_webhook_stats_t;
void tsvc_webhook_stats(const tsvc_webhook_t *w, tsvc_webhook_stats_t *out);

/* Stop: what is in flight is cancelled, what waits is dropped (one log
   line says how many), and w is freed once its handles are closed (the
   loop must run on). NULL: nothing. */
void tsvc_webhook_close(tsvc_webhook_t *w);

#endif /* TSVC_WEBHOOK_H */
