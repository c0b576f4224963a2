/* api_json.c: see api_json.h. */
#include "api/api_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "log/log.h"
#include "manager/conninfo.h"

const char *tsvc_api_time_format(int64_t wall_ms, char *buf, size_t len) {
  time_t secs = (time_t)(wall_ms / 1000);
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) {
    tsvc_strlcpy(buf, "1970-01-01T00:00:00.000Z", len);
    return buf;
  }
  /* strftime for the date: gcc cannot bound the width of struct tm's ints
     in a snprintf format and warns (-Wformat-truncation) at -O3. */
  char date[32];
  if (!strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm)) date[0] = '\0';
  snprintf(buf, len, "%s.%03dZ", date, (int)(wall_ms % 1000));
  return buf;
}

json_t *tsvc_api_json_time(int64_t wall_ms) {
  if (wall_ms <= 0) return json_null();
  char buf[40];
  return json_string(tsvc_api_time_format(wall_ms, buf, sizeof buf));
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none. */
static size_t utf8_len(const unsigned char *p, size_t n) {
  size_t len;
  unsigned min;
  if (p[0] < 0x80) return 1;
  if ((p[0] & 0xE0) == 0xC0) len = 2, min = 0x80;
  else if ((p[0] & 0xF0) == 0xE0) len = 3, min = 0x800;
  else if ((p[0] & 0xF8) == 0xF0) len = 4, min = 0x10000;
  else return 0;
  if (len > n) return 0;
  unsigned cp = p[0] & (0x7F >> len);
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

json_t *tsvc_api_json_str(const char *s) {
  if (!s) return json_null();
  size_t n = strlen(s);
  tsvc_buf_t b;
  tsvc_buf_init(&b, n + 1);
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < n;) {
    size_t k = p[i] ? utf8_len(p + i, n - i) : 0;
    if (k) tsvc_buf_add(&b, p + i, k), i += k;
    else tsvc_buf_add(&b, "?", 1), i++; /* not UTF-8: shown as '?' */
  }
  json_t *v = json_stringn(b.data ? b.data : "", b.len);
  tsvc_buf_free(&b);
  return v;
}

/* A string with secrets masked; null for "" when empty_null. */
static json_t *scrubbed(const char *s, bool empty_null) {
  if (!s || (empty_null && !*s)) return json_null();
  char buf[4200];
  tsvc_log_scrub(buf, sizeof buf, s);
  return tsvc_api_json_str(buf);
}

/* Set, taking the reference; a NULL value (out of memory) marks failure. */
static void put(json_t *o, const char *key, json_t *v, bool *ok) {
  if (!v || json_object_set_new(o, key, v)) *ok = false;
}

static json_t *record(const tsvc_check_record_t *r) {
  json_t *o = json_object();
  if (!o) return NULL;
  bool ok = true;
  put(o, "start", tsvc_api_json_time(r->start_ms), &ok);
  put(o, "end", tsvc_api_json_time(r->end_ms), &ok);
  put(o, "result", json_string(tsvc_result_name(r->result)), &ok);
  put(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null(), &ok);
  put(o, "latency_ms", json_real((double)r->latency_us / 1000.0), &ok);
  put(o, "message", scrubbed(r->message, false), &ok);
  put(o, "output", scrubbed(r->output, true), &ok);
  put(o, "probe_address", r->probe_address ? tsvc_api_json_str(r->probe_address) : json_null(),
      &ok);
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *tsvc_api_json_status(const tsvc_status_t *s, bool with_history) {
  json_t *o = json_object();
  if (!o) return NULL;
  bool ok = true;
  put(o, "name", tsvc_api_json_str(s->name ? s->name : ""), &ok);
  put(o, "state", json_string(tsvc_state_name(s->state)), &ok);
  put(o, "healthy", json_boolean(s->healthy), &ok);
  put(o, "running", json_boolean(s->running), &ok);
  put(o, "enabled", json_boolean(s->enabled), &ok);
  put(o, "external", json_boolean(s->external), &ok);
  put(o, "probe", json_string(s->probe), &ok);
  put(o, "probe_via", s->probe_via[0] ? json_string(s->probe_via) : json_null(), &ok);
  put(o, "probe_address", s->probe_address[0] ? tsvc_api_json_str(s->probe_address) : json_null(),
      &ok);
  if (s->container_id[0] || s->container_name[0])
    put(o, "container",
        json_pack("{s:o, s:o}", "id", tsvc_api_json_str(s->container_id), "name",
                  tsvc_api_json_str(s->container_name)), &ok);
  else
    put(o, "container", json_null(), &ok);
  put(o, "pid", s->pid > 0 ? json_integer(s->pid) : json_null(), &ok);
  put(o, "since", tsvc_api_json_time(s->since_ms), &ok);
  put(o, "last_check", tsvc_api_json_time(s->last_check_ms), &ok);
  put(o, "last_healthy", tsvc_api_json_time(s->last_healthy_ms), &ok);
  put(o, "next_check", tsvc_api_json_time(s->next_check_ms), &ok);
  put(o, "consecutive_failures", json_integer(s->consecutive_failures), &ok);
  put(o, "consecutive_successes", json_integer(s->consecutive_successes), &ok);
  put(o, "retries", json_integer(s->retries), &ok);
  put(o, "success_threshold", json_integer(s->success_threshold), &ok);
  put(o, "checks_total", json_integer((json_int_t)s->checks_total), &ok);
  put(o, "failures_total", json_integer((json_int_t)s->failures_total), &ok);
  put(o, "restarts_total", json_integer((json_int_t)s->restarts_total), &ok);
  put(o, "restarts_in_window", json_integer(s->restarts_in_window), &ok);
  put(o, "max_restarts", json_integer(s->max_restarts), &ok);
  put(o, "last_error", scrubbed(s->last_error, true), &ok);
  put(o, "last_latency_ms",
      s->last_check_ms > 0 ? json_real((double)s->last_latency_us / 1000.0) : json_null(), &ok);
  /* What a held (re)start waits for (depends_on): [] when nothing. */
  json_t *waits = json_array();
  for (size_t i = 0; waits && i < s->nwaiting; i++) {
    const tsvc_wait_t *w = &s->waiting_for[i];
    json_t *wo = json_pack("{s:o, s:s, s:s}", "service", tsvc_api_json_str(w->service),
                           "condition", w->condition ? w->condition : "",
                           "state", tsvc_state_name(w->state));
    if (!wo || json_array_append_new(waits, wo)) ok = false;
  }
  put(o, "waiting_for", waits, &ok);
  put(o, "wait_until", tsvc_api_json_time(s->nwaiting ? s->wait_until_ms : 0), &ok);
  json_t *by = json_object();
  for (int r = 0; by && r < TSVC_RESULT__COUNT; r++)
    if (json_object_set_new(by, tsvc_result_name((tsvc_result_t)r),
                            json_integer((json_int_t)s->checks_by_result[r])))
      ok = false;
  put(o, "checks_by_result", by, &ok);
  if (s->session) /* only for services with healthcheck.session */
    put(o, "session",
        json_pack("{s:b, s:I, s:I, s:I, s:o}", "held", s->session_held, "connects",
                  (json_int_t)s->session_connects, "held_checks",
                  (json_int_t)s->session_held_checks, "full_checks",
                  (json_int_t)s->session_full_checks, "last_error",
                  scrubbed(s->session_error, true)),
        &ok);
  if (with_history) {
    json_t *h = json_array();
    for (size_t i = 0; h && i < s->nhistory; i++) {
      json_t *r = record(&s->history[i]);
      if (!r || json_array_append_new(h, r)) ok = false;
    }
    put(o, "history", h, &ok);
  }
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* {"runtime": ..., "services": [...]} of n statuses, the i-th at(src, i). */
static json_t *status_list(size_t n, const tsvc_status_t *(*at)(const void *, size_t),
                           const void *src, const char *runtime) {
  json_t *arr = json_array();
  if (!arr) return NULL;
  for (size_t i = 0; i < n; i++) {
    json_t *s = tsvc_api_json_status(at(src, i), false);
    if (!s || json_array_append_new(arr, s)) {
      json_decref(arr);
      return NULL;
    }
  }
  json_t *o = json_pack("{s:s?, s:o}", "runtime", runtime && *runtime ? runtime : NULL,
                        "services", arr);
  return o;
}

static const tsvc_status_t *list_at(const void *src, size_t i) {
  return &((const tsvc_status_list_t *)src)->v[i];
}

static const tsvc_status_t *snapshot_at(const void *src, size_t i) {
  return tsvc_snapshot_status(src, i);
}

json_t *tsvc_api_json_status_list(const tsvc_status_list_t *l, const char *runtime) {
  return status_list(l->n, list_at, l, runtime);
}

json_t *tsvc_api_json_snapshot(const tsvc_snapshot_t *s, const char *runtime) {
  return status_list(tsvc_snapshot_count(s), snapshot_at, s, runtime);
}

json_t *tsvc_api_json_record(const tsvc_check_record_t *r) { return record(r); }

json_t *tsvc_api_json_not_ready(const tsvc_status_t *s) {
  return json_pack("{s:o, s:s, s:o}", "name", tsvc_api_json_str(s->name ? s->name : ""), "state",
                   tsvc_state_name(s->state), "last_error", scrubbed(s->last_error, true));
}

json_t *tsvc_api_json_change(const tsvc_change_t *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  bool ok = true;
  put(o, "time", tsvc_api_json_time(c->time_ms), &ok);
  put(o, "service", tsvc_api_json_str(c->service ? c->service : ""), &ok);
  put(o, "from", json_string(tsvc_state_name(c->from)), &ok);
  put(o, "to", json_string(tsvc_state_name(c->to)), &ok);
  put(o, "reason", scrubbed(c->reason, true), &ok);
  put(o, "failures", json_integer(c->failures), &ok);
  put(o, "retries", json_integer(c->retries), &ok);
  put(o, "restarts", json_integer(c->restarts), &ok);
  put(o, "max_restarts", json_integer(c->max_restarts), &ok);
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *tsvc_api_json_error(const char *msg) { return json_pack("{s:o}", "error", tsvc_api_json_str(msg)); }

/* ---- GET /v1/env --------------------------------------------------------- */

static json_t *conn(const tsvc_conn_info_t *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  bool ok = true;
  put(o, "name", tsvc_api_json_str(c->service), &ok);
  put(o, "prefix", tsvc_api_json_str(c->prefix), &ok);
  put(o, "kind", tsvc_api_json_str(c->kind), &ok);
  put(o, "host", tsvc_api_json_str(c->host), &ok);
  put(o, "port", json_integer(c->port), &ok);
  put(o, "url", tsvc_api_json_str(c->url), &ok);
  put(o, "username", tsvc_api_json_str(c->username), &ok);
  put(o, "password", tsvc_api_json_str(c->password), &ok);
  put(o, "database", tsvc_api_json_str(c->database), &ok);
  put(o, "dsn", tsvc_api_json_str(c->dsn), &ok);
  put(o, "state", c->monitored ? json_string(tsvc_state_name(c->state)) : json_null(), &ok);
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

json_t *tsvc_api_json_env(const tsvc_conn_list_t *l, const char *runtime, bool secrets) {
  json_t *o = json_object(), *svcs = json_array(), *vars = json_object();
  bool ok = o && svcs && vars;
  for (size_t i = 0; ok && i < l->n; i++) {
    json_t *c = conn(&l->v[i]);
    if (!c || json_array_append_new(svcs, c)) ok = false;
    tsvc_kv_t *kv = NULL;
    size_t n = 0;
    if (tsvc_conn_vars(&l->v[i], NULL, secrets, &kv, &n)) ok = false;
    for (size_t k = 0; ok && k < n; k++)
      if (json_object_set_new(vars, kv[k].key, tsvc_api_json_str(kv[k].value))) ok = false;
    tsvc_conn_vars_free(kv, n);
  }
  if (!ok) {
    json_decref(o);
    json_decref(svcs);
    json_decref(vars);
    return NULL;
  }
  put(o, "view", json_string(tsvc_view_name(l->view)), &ok);
  put(o, "runtime", tsvc_api_json_str(runtime ? runtime : ""), &ok);
  put(o, "shared_host", json_boolean(l->shared_host), &ok);
  put(o, "secrets", json_boolean(secrets), &ok);
  put(o, "services", svcs, &ok);
  put(o, "variables", vars, &ok);
  if (!ok) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* A string member of o into *dst (a copy): false when missing or not a
   string. */
static bool take_str(const json_t *o, const char *key, char **dst) {
  const char *s = json_string_value(json_object_get(o, key));
  if (!s) return false;
  return (*dst = tsvc_strdup(s)) != NULL;
}

int tsvc_api_env_parse(const json_t *v, tsvc_conn_list_t *out, char *err, size_t errlen) {
  *out = (tsvc_conn_list_t){0};
  const json_t *svcs = json_object_get(v, "services");
  if (!json_is_array(svcs) || tsvc_view_parse(json_string_value(json_object_get(v, "view")),
                                              &out->view) != 0) {
    snprintf(err, errlen, "the reply has no \"view\" and \"services\"");
    return TSVC_EINVAL;
  }
  out->shared_host = json_is_true(json_object_get(v, "shared_host"));
  size_t n = json_array_size(svcs);
  if (n && !(out->v = calloc(n, sizeof *out->v))) return TSVC_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const json_t *s = json_array_get(svcs, i);
    tsvc_conn_info_t *c = &out->v[i];
    out->n = i + 1;
    json_int_t port = json_integer_value(json_object_get(s, "port"));
    if (!take_str(s, "name", &c->service) || !take_str(s, "prefix", &c->prefix) ||
        !take_str(s, "kind", &c->kind) || !take_str(s, "host", &c->host) ||
        !take_str(s, "url", &c->url) || !take_str(s, "username", &c->username) ||
        !take_str(s, "password", &c->password) || !take_str(s, "database", &c->database) ||
        !take_str(s, "dsn", &c->dsn) || port <= 0 || port > 65535) {
      snprintf(err, errlen, "services[%zu] is not a connection (name, prefix, kind, host, port, "
               "url, username, password, database, dsn)", i);
      tsvc_conn_list_free(out);
      return TSVC_EINVAL;
    }
    c->port = (int)port;
    const char *st = json_string_value(json_object_get(s, "state"));
    for (int k = 0; st && k < TSVC_STATE__COUNT; k++)
      if (strcmp(st, tsvc_state_name((tsvc_state_t)k)) == 0) {
        c->monitored = true;
        c->state = (tsvc_state_t)k;
      }
  }
  return 0;
}
