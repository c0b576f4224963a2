/* webhook.c: see webhook.h. */
#include "manager/webhook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/curl_uv.h"
#include "common/util.h"
#include "config/config.h"
#include "log/log.h"

#define REPLY_KEPT 200 /* bytes of an answer's body kept for the log */

/* One delivery: one event to one URL, from queued to delivered or given
   up. In w's list (oldest first) the whole time. */
typedef struct del_s {
  struct del_s *prev, *next;
  char *url, *service, *body;
  tsvc_ms_t timeout;
  int attempts;            /* started so far */
  uint64_t due;            /* loop time it may be tried (a retry's backoff) */
  CURL *easy;              /* while in flight */
  struct curl_slist *hdrs; /* while in flight */
  char curl_err[CURL_ERROR_SIZE];
  char reply[REPLY_KEPT + 1];
  size_t nreply;
} del_t;

struct tsvc_webhook_s {
  uv_loop_t *loop;
  tsvc_curl_uv_t cu;
  uv_timer_t retry;        /* the next waiting delivery's due time */
  del_t *head, *tail;
  int n, in_flight;
  int open_handles;        /* cu and retry, until closed */
  bool closing;
  tsvc_webhook_stats_t stats;
  tsvc_hook_counters_t *counters;
};

static void count(tsvc_webhook_t *w, int what) {
  if (!w->counters) return;
  tsvc_hook_count(w->counters, TSVC_HOOK_WEBHOOK, what);
}

static void del_unlink(tsvc_webhook_t *w, del_t *d) {
  if (d->prev) d->prev->next = d->next;
  else w->head = d->next;
  if (d->next) d->next->prev = d->prev;
  else w->tail = d->prev;
  w->n--;
}

static void del_free(del_t *d) {
  if (d->easy) curl_easy_cleanup(d->easy);
  curl_slist_free_all(d->hdrs);
  free(d->url);
  free(d->service);
  free(d->body);
  free(d);
}

/* The URL for the log: a password in it (https://user:pw@host/) masked. */
static void masked_url(const char *url, char *out, size_t len) {
  if (tsvc_mask_text(out, len, url, NULL, 0) != 0) tsvc_strlcpy(out, "(url)", len);
}

static void log_failure(tsvc_webhook_t *w, const del_t *d, const char *why) {
  (void)w;
  char url[512], attempts[16];
  masked_url(d->url, url, sizeof url);
  snprintf(attempts, sizeof attempts, "%d", d->attempts);
  tsvc_log_field_t f[] = {{"service", d->service},
                          {"action", "hook"},
                          {"hook", "webhook"},
                          {"url", url},
                          {"attempts", attempts},
                          {"result", why}};
  tsvc_log_fields(TSVC_LOG_WARN, "webhook failed", f, TSVC_ARRAY_LEN(f));
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
  del_t *d = ud;
  size_t n = size * nmemb, room = REPLY_KEPT - d->nreply, k = n < room ? n : room;
  memcpy(d->reply + d->nreply, p, k);
  d->nreply += k;
  d->reply[d->nreply] = '\0';
  return n; /* the rest is read and forgotten: an answer never grows memory */
}

static void schedule(tsvc_webhook_t *w);

/* Start d's next attempt. Returns 0, or an error (d is not in flight). */
static int start(tsvc_webhook_t *w, del_t *d) {
  d->easy = curl_easy_init();
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  struct curl_slist *h2 = h ? curl_slist_append(h, "Expect:") : NULL;
  if (!d->easy || !h2) {
    curl_slist_free_all(h);
    if (d->easy) curl_easy_cleanup(d->easy);
    d->easy = NULL;
    return TSVC_ENOMEM;
  }
  d->hdrs = h2;
  d->curl_err[0] = '\0';
  d->nreply = 0;
  d->reply[0] = '\0';
  CURL *e = d->easy;
  curl_easy_setopt(e, CURLOPT_URL, d->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->hdrs);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "tanuki-svc/" TSVC_VERSION);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, d->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(d->body));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->timeout);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->timeout);
  curl_easy_setopt(e, CURLOPT_PRIVATE, d);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, d->curl_err);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, d);
  if (curl_multi_add_handle(w->cu.multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    curl_slist_free_all(d->hdrs);
    d->easy = NULL;
    d->hdrs = NULL;
    return TSVC_ERUNTIME;
  }
  d->attempts++;
  w->in_flight++;
  w->stats.attempts++;
  return 0;
}

/* What is due goes (oldest first, TSVC_WEBHOOK_IN_FLIGHT at once); the
   timer is set for the next that is not due yet. */
static void retry_fired(uv_timer_t *t) {
  schedule(t->data);
}

static void schedule(tsvc_webhook_t *w) {
  if (w->closing) return;
  uint64_t now = uv_now(w->loop), next = UINT64_MAX;
  for (del_t *d = w->head, *nx; d; d = nx) {
    nx = d->next;
    if (d->easy) continue;
    if (d->due > now) {
      if (d->due < next) next = d->due;
      continue;
    }
    if (w->in_flight >= TSVC_WEBHOOK_IN_FLIGHT) continue;
    int rc = start(w, d);
    if (rc) {
      char why[128];
      snprintf(why, sizeof why, "cannot start a transfer: %s", tsvc_strerror(rc));
      log_failure(w, d, why);
      w->stats.failed++;
      count(w, TSVC_HOOK_FAILURES);
      del_unlink(w, d);
      del_free(d);
    }
  }
  uv_timer_stop(&w->retry);
  if (next != UINT64_MAX) uv_timer_start(&w->retry, retry_fired, next - now, 0);
}

/* A transfer failure worth another attempt: the receiver may be back. */
static bool retryable(CURLcode cc) {
  switch (cc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_PARTIAL_FILE:
  case CURLE_SSL_CONNECT_ERROR:
    return true;
  default:
    return false;
  }
}

/* One attempt ended. */
static void attempt_done(tsvc_webhook_t *w, del_t *d, CURLcode cc) {
  long http = 0;
  curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &http);
  curl_multi_remove_handle(w->cu.multi, d->easy);
  w->in_flight--;
  char why[512];
  bool again;
  if (cc == CURLE_OK && http >= 200 && http < 300) {
    w->stats.delivered++;
    del_unlink(w, d);
    del_free(d);
    return;
  }
  if (cc == CURLE_OK) {
    size_t k = strcspn(d->reply, "\r\n");
    snprintf(why, sizeof why, "HTTP %ld%s%.*s", http, k ? ": " : "", (int)k, d->reply);
    again = http >= 500 || http == 429;
  } else if (cc == CURLE_OPERATION_TIMEDOUT) {
    snprintf(why, sizeof why, "no answer within %lld ms", (long long)d->timeout);
    again = true;
  } else {
    /* libcurl's words, and the system's when it has them ("Connection
       refused" where libcurl says "Couldn't connect to server"). */
    long oserr = 0;
    curl_easy_getinfo(d->easy, CURLINFO_OS_ERRNO, &oserr);
    const char *detail = d->curl_err[0] ? d->curl_err : curl_easy_strerror(cc);
    if (oserr) snprintf(why, sizeof why, "%s: %s", detail, strerror((int)oserr));
    else snprintf(why, sizeof why, "%s", detail);
    again = retryable(cc);
  }
  curl_easy_cleanup(d->easy);
  curl_slist_free_all(d->hdrs);
  d->easy = NULL;
  d->hdrs = NULL;
  if (again && d->attempts < TSVC_WEBHOOK_ATTEMPTS) {
    uint64_t wait = (uint64_t)TSVC_WEBHOOK_BACKOFF_MS << (d->attempts - 1);
    if (wait > TSVC_WEBHOOK_BACKOFF_MAX_MS) wait = TSVC_WEBHOOK_BACKOFF_MAX_MS;
    /* From now, not from the loop's cached time of this turn: the wait is
       at least the backoff after the answer (or the failure) was seen. */
    uv_update_time(w->loop);
    d->due = uv_now(w->loop) + wait;
    TSVC_LOG(TSVC_LOG_DEBUG, d->service, "webhook attempt %d failed (%s): again in %llu ms",
             d->attempts, why, (unsigned long long)wait);
    return;
  }
  log_failure(w, d, why);
  w->stats.failed++;
  count(w, TSVC_HOOK_FAILURES);
  del_unlink(w, d);
  del_free(d);
}

static void after_curl(tsvc_curl_uv_t *cu, void *data) {
  tsvc_webhook_t *w = data;
  CURLMsg *m;
  int left;
  bool any = false;
  while (!w->closing && (m = curl_multi_info_read(cu->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    char *priv = NULL;
    CURL *e = m->easy_handle;
    CURLcode cc = m->data.result;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
    attempt_done(w, (del_t *)(void *)priv, cc);
    any = true;
  }
  if (any) schedule(w);
}

int tsvc_webhook_new(uv_loop_t *loop, tsvc_hook_counters_t *counters, tsvc_webhook_t **out,
                     char *err, size_t errlen) {
  *out = NULL;
  tsvc_webhook_t *w = calloc(1, sizeof *w);
  if (!w) return TSVC_ENOMEM;
  w->loop = loop;
  w->counters = counters;
  int rc = tsvc_curl_uv_init(&w->cu, loop, after_curl, w, err, errlen);
  if (rc) {
    free(w);
    return rc;
  }
  uv_timer_init(loop, &w->retry);
  w->retry.data = w;
  w->open_handles = 2;
  *out = w;
  return 0;
}

void tsvc_webhook_stats(const tsvc_webhook_t *w, tsvc_webhook_stats_t *out) {
  *out = w->stats;
  out->queued = w->n;
  out->in_flight = w->in_flight;
}

int tsvc_webhook_post(tsvc_webhook_t *w, const char *url, tsvc_ms_t timeout_ms,
                      const char *service, const char *body) {
  if (!url || !body) return TSVC_EINVAL;
  if (w->closing) return 0;
  del_t *d = calloc(1, sizeof *d);
  if (!d) return TSVC_ENOMEM;
  d->url = tsvc_strdup(url);
  d->service = tsvc_strdup(service ? service : "");
  d->body = tsvc_strdup(body);
  d->timeout = timeout_ms > 0 ? timeout_ms : TSVC_WEBHOOK_TIMEOUT_MS;
  if (!d->url || !d->service || !d->body) {
    del_free(d);
    return TSVC_ENOMEM;
  }
  if (w->n >= TSVC_WEBHOOK_QUEUE) {
    /* Full: the oldest that is not in flight goes (the newest change
       matters more). With fewer in flight than the queue holds there is
       always one. */
    del_t *old = w->head;
    while (old && old->easy) old = old->next;
    if (old) {
      del_unlink(w, old);
      w->stats.dropped++;
      count(w, TSVC_HOOK_DROPS);
      char u[512];
      masked_url(old->url, u, sizeof u);
      TSVC_LOG(TSVC_LOG_WARN, old->service,
               "webhook dropped: %d deliveries queued (at most %d); the oldest waiting one "
               "to %s goes (%llu dropped so far)",
               TSVC_WEBHOOK_QUEUE, TSVC_WEBHOOK_QUEUE, u, (unsigned long long)w->stats.dropped);
      del_free(old);
    }
  }
  d->due = uv_now(w->loop);
  d->prev = w->tail;
  if (w->tail) w->tail->next = d;
  else w->head = d;
  w->tail = d;
  w->n++;
  w->stats.posted++;
  count(w, TSVC_HOOK_RUNS);
  schedule(w);
  return 0;
}

static void handle_closed(void *data) {
  tsvc_webhook_t *w = data;
  if (--w->open_handles == 0) free(w);
}

static void retry_closed(uv_handle_t *h) {
  handle_closed(h->data);
}

void tsvc_webhook_close(tsvc_webhook_t *w) {
  if (!w || w->closing) return;
  w->closing = true;
  int cancelled = 0;
  while (w->head) {
    del_t *d = w->head;
    if (d->easy) curl_multi_remove_handle(w->cu.multi, d->easy);
    del_unlink(w, d);
    del_free(d);
    cancelled++;
  }
  w->in_flight = 0;
  if (cancelled)
    TSVC_LOG(TSVC_LOG_WARN, NULL, "webhook: %d deliveries not made: the monitor stops",
             cancelled);
  uv_timer_stop(&w->retry);
  uv_close((uv_handle_t *)&w->retry, retry_closed);
  tsvc_curl_uv_close(&w->cu, handle_closed);
}
