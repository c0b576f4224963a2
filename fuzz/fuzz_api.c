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
 *  - a registered secret never shows, as a word, in last_error, a history
 *    message or output (docs/api.md: secrets masked).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api_int.h"
#include "fuzz_util.h"
#include "log/log.h"
#include "manager_stub.h"
#include "tsvc.h"

#define SECRET "hunter2pw"

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

static bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

/* SECRET in s as a whole word (as the log's scrubbing defines words). */
static bool has_secret_word(const char *s) {
  size_t n = strlen(SECRET);
  for (const char *p = s; (p = strstr(p, SECRET)); p++)
    if ((p == s || !word_char(p[-1])) && !word_char(p[n])) return true;
  return false;
}

/* Walk v: the values of keys that the API masks must not hold SECRET. */
static void check_masked(json_t *v, const char *url) {
  const char *key;
  json_t *x;
  size_t i;
  if (json_is_object(v)) {
    json_object_foreach(v, key, x) {
      if (json_is_string(x) && (strcmp(key, "last_error") == 0 || strcmp(key, "message") == 0 ||
                                strcmp(key, "output") == 0))
        FUZZ_CHECK(!has_secret_word(json_string_value(x)), "url %s: %s shows the secret: %s",
                   url, key, json_string_value(x));
      check_masked(x, url);
    }
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, x) check_masked(x, url);
  }
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
  w.err_status = flags & 2 ? -(int)(fuzz_u8(&in) % 12) : 0;
  w.err_action = flags & 4 ? -(int)(fuzz_u8(&in) % 12) : 0;
  w.runtime = (flags >> 3) % 3 == 0 ? "" : (flags >> 3) % 3 == 1 ? "docker" : "process";
  size_t body = (size_t)fuzz_u16(&in) * 2; /* up to 128 KiB: both sides of the limit */
  w.heartbeat_ms = now - fuzz_u16(&in);
  w.err_text = fuzz_str(&in, 255);
  w.n = fuzz_u8(&in) % 4;
  w.v = w.n ? calloc(w.n, sizeof *w.v) : NULL;
  for (size_t i = 0; i < w.n; i++) build_service(&in, &w.v[i], now);
  stub_set_world(&w);

  tsvc_api_reply_t r;
  int rc = tsvc__api_respond(api, method, url, body, tcp, &r);
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
      check_masked(v, raw_url);
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
