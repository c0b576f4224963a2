/*
 * fuzz_api: the HTTP API's request path (src/api/api.c through
 * tsvc__api_respond, api_int.h): percent-decoding, routing, method and
 * size checks, and every endpoint's reply built from what the manager says.
 * The manager is manager_stub.c, answering from a world taken from the
 * input; no socket and no libmicrohttpd are involved.
 *
 * Input: "METHOD URL\n" (the URL as sent, before percent-decoding), then
 * binary: flags, the error the manager's calls return, the body size, the
 * heartbeat's age, and up to 3 services (name, state, last error, history).
 * Names are made of the characters a config allows; messages, outputs and
 * errors are any bytes, as peers and runtimes send them.
 *
 * Properties checked on every reply:
 *  - 0 is returned (nothing runs out of memory here); GET /v1/events only
 *    asks the caller to stream, with nothing else set;
 *  - the status is 200..599; 405 and only 405 names what is allowed;
 *  - application/json bodies are one valid JSON object (UTF-8) and a
 *    newline; every status >= 400 but 503 carries {"error": "..."};
 *  - /metrics text has only comment and sample lines (labels escaped);
 *  - no request over TCP changes anything (only GET and HEAD succeed);
 *  - "down" is set only by POST /v1/down over the socket;
 *  - wherever a status shows (services, one service, an action's reply,
 *    /readyz), its last_error and history messages and outputs are the
 *    manager's, masked as the log masks them (docs/api.md: secrets masked),
 *    bytes that are not UTF-8 shown as '?'.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "api/api_json.h"
#include "fuzz_util.h"
#include "log/log.h"
#include "manager_stub.h"
#include "tsvc.h"

#define SECRET "hunter2pw" /* registered, so that masking has work to do */

static tsvc_api_t *api;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  api = tsvc__api_new(stub_manager());
  if (!api || tsvc_log_add_secret(SECRET)) abort();
  tsvc_log_setup(stderr, TSVC_LOG_OFF, false);
  return 0;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A service name as the config allows: [A-Za-z0-9][A-Za-z0-9_.-]*. */
static char *fuzz_name(fuzz_in_t *in) {
  static const char first[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  static const char rest[] = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
  size_t len = 1 + fuzz_u8(in) % 12;
  char *s = malloc(len + 1);
  if (!s) abort();
  for (size_t i = 0; i < len; i++)
    s[i] = i == 0 ? first[fuzz_u8(in) % (sizeof first - 1)] : rest[fuzz_u8(in) % (sizeof rest - 1)];
  s[len] = '\0';
  return s;
}

/* A time near now (statuses carry wall-clock times of the recent past and
   near future), or 0 for never. */
static int64_t fuzz_time(fuzz_in_t *in, int64_t now) {
  uint16_t v = fuzz_u16(in);
  return v == 0 ? 0 : now - 30000 + (int64_t)v * 10;
}

static void build_service(fuzz_in_t *in, tsvc_status_t *s, int64_t now) {
  static const char *const probes[] = {"postgres", "redis", "tcp", "http", "exec", "running"};
  memset(s, 0, sizeof *s);
  s->name = fuzz_name(in);
  s->state = (tsvc_state_t)(fuzz_u8(in) % TSVC_STATE__COUNT);
  uint8_t b = fuzz_u8(in);
  s->healthy = b & 1;
  s->running = b & 2;
  s->enabled = !(b & 4);
  s->external = b & 8;
  strcpy(s->probe, probes[(b >> 4) % 6]);
  char *t = fuzz_str(in, 80);
  tsvc_strlcpy(s->container_name, t, sizeof s->container_name);
  free(t);
  t = fuzz_str(in, 255);
  tsvc_strlcpy(s->last_error, t, sizeof s->last_error);
  free(t);
  s->pid = fuzz_u8(in) & 1 ? 4242 : 0;
  s->since_ms = fuzz_time(in, now);
  s->last_check_ms = fuzz_time(in, now);
  s->last_healthy_ms = fuzz_time(in, now);
  s->next_check_ms = fuzz_time(in, now);
  s->consecutive_failures = fuzz_u8(in);
  s->retries = 1 + fuzz_u8(in) % 10;
  s->checks_total = fuzz_u16(in);
  for (int r = 0; r < TSVC_RESULT__COUNT; r++) s->checks_by_result[r] = fuzz_u8(in);
  for (int k = 0; k < TSVC_LATENCY_NBUCKETS; k++) s->latency_buckets[k] = (uint64_t)k * fuzz_u8(in);
  s->latency_sum_s = fuzz_u16(in) / 1000.0;
  s->last_latency_us = fuzz_u16(in);
  s->nhistory = fuzz_u8(in) % 4;
  s->history = s->nhistory ? calloc(s->nhistory, sizeof *s->history) : NULL;
  for (size_t i = 0; i < s->nhistory; i++) {
    tsvc_check_record_t *r = &s->history[i];
    r->start_ms = fuzz_time(in, now);
    r->end_ms = r->start_ms ? r->start_ms + fuzz_u8(in) : 0;
    r->result = (tsvc_result_t)(fuzz_u8(in) % TSVC_RESULT__COUNT);
    r->exit_code = r->result == TSVC_RESULT_EXEC_FAILED ? fuzz_u8(in) : -1;
    r->latency_us = fuzz_u16(in);
    r->message = fuzz_str(in, 255);
    r->output = fuzz_u8(in) & 1 ? fuzz_str(in, 255) : NULL;
  }
}

/* What the API must show of a status message: masked as the log masks
   it (registered secrets), bytes that are not UTF-8 as '?'; NULL for null
   (an empty or absent message where empty_null). Caller frees. */
static char *shown(const char *s, bool empty_null) {
  if (!s || (empty_null && !*s)) return NULL;
  char buf[4200];
  tsvc_log_scrub(buf, sizeof buf, s);
  json_t *j = tsvc_api_json_str(buf);
  char *r = j ? strdup(json_string_value(j)) : NULL;
  json_decref(j);
  if (!r) abort();
  return r;
}

static void check_text(json_t *o, const char *key, const char *original, bool empty_null,
                       const char *url) {
  json_t *v = json_object_get(o, key);
  if (!v) return; /* not part of this shape */
  char *want = shown(original, empty_null);
  if (want)
    FUZZ_CHECK(json_is_string(v) && strcmp(json_string_value(v), want) == 0,
               "url %s: %s is %s, expected (masked) %s", url, key,
               json_is_string(v) ? json_string_value(v) : "not a string", want);
  else
    FUZZ_CHECK(json_is_null(v), "url %s: %s is not null", url, key);
  free(want);
}

/* Walk v: wherever a service's status shows (its name and last_error, its
   history), the messages are those of the world, masked as the log masks
   them: no endpoint prints them another way. */
static void check_statuses(json_t *v, const stub_world_t *w, const char *url) {
  const char *key;
  json_t *x;
  size_t i;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) check_statuses(x, w, url);
    return;
  }
  if (!json_is_object(v)) return;
  const char *name = json_string_value(json_object_get(v, "name"));
  const tsvc_status_t *s = NULL;
  for (size_t k = 0; name && k < w->n; k++)
    if (strcmp(w->v[k].name, name) == 0) s = &w->v[k];
  if (s) {
    check_text(v, "last_error", s->last_error, true, url);
    json_t *h = json_object_get(v, "history");
    if (h) {
      FUZZ_CHECK(json_array_size(h) == s->nhistory, "url %s: %zu history records, not %zu", url,
                 json_array_size(h), s->nhistory);
      json_array_foreach(h, i, x) {
        check_text(x, "message", s->history[i].message, false, url);
        check_text(x, "output", s->history[i].output, true, url);
      }
    }
  }
  json_object_foreach(v, key, x) check_statuses(x, w, url);
}

static void check_metrics(const char *body, size_t len) {
  const char *p = body, *end = body + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    FUZZ_CHECK(nl, "metrics: a last line without newline");
    bool ok = strncmp(p, "# HELP tanuki_svc_", 18) == 0 ||
              strncmp(p, "# TYPE tanuki_svc_", 18) == 0 || strncmp(p, "tanuki_svc_", 11) == 0;
    FUZZ_CHECK(ok, "metrics: a line that is neither a comment nor a sample: %.*s",
               (int)(nl - p), p);
    p = nl + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* "METHOD URL\n" */
  const uint8_t *nl = memchr(data, '\n', size);
  size_t linelen = nl ? (size_t)(nl - data) : size;
  char *line = malloc(linelen + 1);
  if (!line) abort();
  memcpy(line, data, linelen);
  line[linelen] = '\0';
  char *method = line, *url = strchr(line, ' ');
  if (url) *url++ = '\0';
  else url = line + linelen;
  char *raw_url = strdup(url);
  if (!raw_url) abort();
  tsvc__api_unescape(url);

  /* The world. */
  fuzz_in_t in = {nl ? nl + 1 : data + size, nl ? size - linelen - 1 : 0};
  int64_t now = now_ms();
  stub_world_t w = {0};
  uint8_t flags = fuzz_u8(&in);
  bool tcp = flags & 1;
  w.err_status = flags & 2 ? -(int)(fuzz_u8(&in) % TSVC_ERR__COUNT) : 0;
  w.err_action = flags & 4 ? -(int)(fuzz_u8(&in) % TSVC_ERR__COUNT) : 0;
  w.runtime = (flags >> 3) % 3 == 0 ? "" : (flags >> 3) % 3 == 1 ? "docker" : "process";
  size_t body = (size_t)fuzz_u16(&in) * 2; /* up to 128 KiB: both sides of the limit */
  w.heartbeat_ms = now - fuzz_u16(&in);
  w.err_text = fuzz_str(&in, 255);
  w.n = fuzz_u8(&in) % 4;
  w.v = w.n ? calloc(w.n, sizeof *w.v) : NULL;
  for (size_t i = 0; i < w.n; i++) {
    build_service(&in, &w.v[i], now);
    for (size_t k = 0; k < i; k++) /* names are unique in a config */
      if (strcmp(w.v[k].name, w.v[i].name) == 0) {
        size_t len = strlen(w.v[i].name);
        char *nm = realloc(w.v[i].name, len + 3);
        if (!nm) abort();
        snprintf(nm + len, 3, "-%zu", i);
        w.v[i].name = nm;
        k = (size_t)-1; /* check again from the start */
      }
  }
  stub_set_world(&w);

  tsvc_api_reply_t r;
  int rc = tsvc__api_respond(api, method, url, body, tcp, &r);
  if (!rc) rc = tsvc__api_reply_drain(&r); /* GET /metrics streams its text */
  if (getenv("FUZZ_VERBOSE")) /* to see what an input does: FUZZ_VERBOSE=1 ./fuzz_api FILE */
    fprintf(stderr, "%s %s (tcp %d, body %zu, %zu services) -> %u %s\n", method, raw_url, tcp,
            body, w.n, r.code, r.body ? r.body : r.events ? "(events)" : "");
  FUZZ_CHECK(rc == 0, "%s %s: respond returned %d", method, raw_url, rc);
  if (r.events) {
    FUZZ_CHECK(strcmp(url, "/v1/events") == 0 && strcmp(method, "GET") == 0 && !r.body &&
                   !r.code,
               "%s %s: asked to stream", method, raw_url);
  } else {
    FUZZ_CHECK(r.code >= 200 && r.code <= 599, "%s %s: status %u", method, raw_url, r.code);
    FUZZ_CHECK(r.type, "%s %s: no content type", method, raw_url);
    FUZZ_CHECK((r.code == 405) == (r.allow != NULL), "%s %s: %u with Allow %s", method, raw_url,
               r.code, r.allow ? r.allow : "(none)");
    FUZZ_CHECK(!r.body || r.body[r.len] == '\0', "%s %s: body not terminated", method, raw_url);
    if (r.body && strcmp(r.type, "application/json") == 0) {
      FUZZ_CHECK(r.len > 0 && r.body[r.len - 1] == '\n', "%s %s: JSON without its newline",
                 method, raw_url);
      json_error_t e;
      json_t *v = json_loadb(r.body, r.len, 0, &e);
      FUZZ_CHECK(json_is_object(v), "%s %s: not a JSON object (%s): %s", method, raw_url, e.text,
                 r.body);
      if (r.code >= 400 && r.code != 503)
        FUZZ_CHECK(json_is_string(json_object_get(v, "error")), "%s %s: %u without error: %s",
                   method, raw_url, r.code, r.body);
      check_statuses(v, &w, raw_url);
      json_decref(v);
    } else if (r.body && strncmp(r.type, "text/plain", 10) == 0) {
      check_metrics(r.body, r.len);
    }
    if (tcp)
      FUZZ_CHECK(r.code >= 300 || strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0,
                 "%s %s over TCP answered %u", method, raw_url, r.code);
  }
  if (r.down)
    FUZZ_CHECK(!tcp && strcmp(method, "POST") == 0 && strcmp(url, "/v1/down") == 0,
               "%s %s: down set", method, raw_url);
  tsvc_api_reply_free(&r);

  stub_set_world(NULL);
  for (size_t i = 0; i < w.n; i++) tsvc_status_clear(&w.v[i]);
  free(w.v);
  free(w.err_text);
  free(raw_url);
  free(line);
  return 0;
}
