/* metrics.c: see metrics.h. */
#include "api/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor/board.h"

/* A label value with \, " and newline escaped, as the format asks; the
   runs between them are appended whole. */
static int add_label(tsvc_buf_t *b, const char *v) {
  int rc = 0;
  while (*v && !rc) {
    size_t n = strcspn(v, "\\\"\n");
    if (n) rc = tsvc_buf_add(b, v, n);
    v += n;
    if (rc || !*v) break;
    rc = tsvc_buf_add(b, *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : "\\n", 2);
    v++;
  }
  return rc;
}

static int head(tsvc_buf_t *b, const char *name, const char *type, const char *help) {
  return tsvc_buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{service="s"[,extra]} */
static int series(tsvc_buf_t *b, const char *name, const char *service, const char *extra) {
  int rc = tsvc_buf_addf(b, "%s{service=\"", name);
  if (!rc) rc = add_label(b, service);
  if (!rc) rc = tsvc_buf_addf(b, "\"%s%s}", extra ? "," : "", extra ? extra : "");
  return rc;
}

static const double bounds[] = TSVC_LATENCY_BUCKETS_S;

/* The le label of histogram bucket k. */
static void le(char *buf, size_t len, int k) {
  if (k < TSVC_LATENCY_NBUCKETS - 1) snprintf(buf, len, "le=\"%g\"", bounds[k]);
  else snprintf(buf, len, "le=\"+Inf\"");
}

/*
 * The exposition is made of families, each a header and then the lines of
 * every service in turn. One family's lines of one service are a unit: the
 * whole text is rendered unit by unit, into one buffer (render) or a piece
 * at a time as it is sent (tsvc_metrics_stream_t).
 */
typedef enum {
  F_UP,
  F_STATE,
  F_CHECKS,
  F_DURATION,
  F_RESTARTS,
  F_FAILURES,
  F_CHANGE,
  F_SESSION_HELD,     /* the session families: only when a service holds */
  F_SESSION_CONNECTS, /* a session (healthcheck.session), and only for */
  F_SESSION_CHECKS,   /* those services */
  F__COUNT
} family_t;

static const struct {
  const char *name, *type, *help;
} families[F__COUNT] = {
    [F_UP] = {"tanuki_svc_up", "gauge", "Whether the service is healthy (1) or not (0)."},
    [F_STATE] = {"tanuki_svc_state", "gauge",
                 "The service's health state: 1 for the current state, 0 for the others."},
    [F_CHECKS] = {"tanuki_svc_checks_total", "counter", "Health checks run, by result."},
    [F_DURATION] = {"tanuki_svc_check_duration_seconds", "histogram",
                    "How long health checks took."},
    [F_RESTARTS] = {"tanuki_svc_restarts_total", "counter",
                    "Restarts of the service (by the monitor or asked for)."},
    [F_FAILURES] = {"tanuki_svc_consecutive_failures", "gauge",
                    "Failed checks in a row since the last success."},
    [F_CHANGE] = {"tanuki_svc_last_change_timestamp_seconds", "gauge",
                  "When the service last changed state (Unix time; 0: never)."},
    [F_SESSION_HELD] = {"tanuki_svc_session_held", "gauge",
                        "Whether the service's held session is connected (1) or not (0)."},
    [F_SESSION_CONNECTS] = {"tanuki_svc_session_connects_total", "counter",
                            "Held session connections opened (logged in)."},
    [F_SESSION_CHECKS] = {"tanuki_svc_session_checks_total", "counter",
                          "Checks by where they were decided: on the held session, or by the "
                          "full probe."},
};

static bool is_session_family(family_t f) { return f >= F_SESSION_HELD; }

/* Family f's lines of service s. */
static int unit(family_t f, const tsvc_status_t *s, tsvc_buf_t *b) {
  const char *name = s->name ? s->name : "", *fam = families[f].name;
  char extra[96];
  int rc = 0;
  if (is_session_family(f) && !s->session) return 0;
  switch (f) {
  case F_UP:
    rc = series(b, fam, name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %d\n", s->healthy ? 1 : 0);
    break;
  case F_STATE:
    for (int k = 0; k < TSVC_STATE__COUNT && !rc; k++) {
      snprintf(extra, sizeof extra, "state=\"%s\"", tsvc_state_name((tsvc_state_t)k));
      rc = series(b, fam, name, extra);
      if (!rc) rc = tsvc_buf_addf(b, " %d\n", s->state == (tsvc_state_t)k ? 1 : 0);
    }
    break;
  case F_CHECKS:
    for (int r = 0; r < TSVC_RESULT__COUNT && !rc; r++) {
      snprintf(extra, sizeof extra, "result=\"%s\"", tsvc_result_name((tsvc_result_t)r));
      rc = series(b, fam, name, extra);
      if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->checks_by_result[r]);
    }
    break;
  case F_DURATION:
    for (int k = 0; k < TSVC_LATENCY_NBUCKETS && !rc; k++) {
      le(extra, sizeof extra, k);
      rc = series(b, "tanuki_svc_check_duration_seconds_bucket", name, extra);
      if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->latency_buckets[k]);
    }
    if (!rc) rc = series(b, "tanuki_svc_check_duration_seconds_sum", name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %.6f\n", s->latency_sum_s);
    if (!rc) rc = series(b, "tanuki_svc_check_duration_seconds_count", name, NULL);
    if (!rc)
      rc = tsvc_buf_addf(b, " %llu\n",
                         (unsigned long long)s->latency_buckets[TSVC_LATENCY_NBUCKETS - 1]);
    break;
  case F_RESTARTS:
    rc = series(b, fam, name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->restarts_total);
    break;
  case F_FAILURES:
    rc = series(b, fam, name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %d\n", s->consecutive_failures);
    break;
  case F_CHANGE:
    rc = series(b, fam, name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %.3f\n", (double)s->since_ms / 1000.0);
    break;
  case F_SESSION_HELD:
    rc = series(b, fam, name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %d\n", s->session_held ? 1 : 0);
    break;
  case F_SESSION_CONNECTS:
    rc = series(b, fam, name, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->session_connects);
    break;
  case F_SESSION_CHECKS:
    rc = series(b, fam, name, "on=\"held\"");
    if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->session_held_checks);
    if (!rc) rc = series(b, fam, name, "on=\"full\"");
    if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->session_full_checks);
    break;
  case F__COUNT:
    break;
  }
  return rc;
}

typedef const tsvc_status_t *(*at_fn)(const void *src, size_t i);

static bool any_session(size_t n, at_fn at, const void *src) {
  for (size_t i = 0; i < n; i++)
    if (at(src, i)->session) return true;
  return false;
}

/* Every service: n statuses, the i-th at(src, i). */
static int render(size_t n, at_fn at, const void *src, tsvc_buf_t *b) {
  bool sessions = any_session(n, at, src);
  int rc = 0;
  for (int f = 0; f < F__COUNT && !rc; f++) {
    if (is_session_family((family_t)f) && !sessions) continue;
    rc = head(b, families[f].name, families[f].type, families[f].help);
    for (size_t i = 0; i < n && !rc; i++) rc = unit((family_t)f, at(src, i), b);
  }
  return rc;
}

static const tsvc_status_t *list_at(const void *src, size_t i) {
  return &((const tsvc_status_list_t *)src)->v[i];
}

static const tsvc_status_t *snapshot_at(const void *src, size_t i) {
  return tsvc_snapshot_status(src, i);
}

int tsvc_metrics_render(const tsvc_status_list_t *l, tsvc_buf_t *b) {
  return render(l->n, list_at, l, b);
}

int tsvc_metrics_render_snapshot(const tsvc_snapshot_t *s, tsvc_buf_t *b) {
  return render(tsvc_snapshot_count(s), snapshot_at, s, b);
}

int tsvc_metrics_render_monitor(const tsvc_monitor_stats_t *st, tsvc_buf_t *b) {
  char extra[32];
  int rc = head(b, "tanuki_svc_monitor_lateness_seconds", "histogram",
                "How late checks started against their schedule.");
  for (int k = 0; k < TSVC_LATENCY_NBUCKETS && !rc; k++) {
    le(extra, sizeof extra, k);
    rc = tsvc_buf_addf(b, "tanuki_svc_monitor_lateness_seconds_bucket{%s} %llu\n", extra,
                       (unsigned long long)st->lateness_buckets[k]);
  }
  if (!rc)
    rc = tsvc_buf_addf(b, "tanuki_svc_monitor_lateness_seconds_sum %.3f\n"
                          "tanuki_svc_monitor_lateness_seconds_count %llu\n",
                       st->lateness_sum_s,
                       (unsigned long long)st->lateness_buckets[TSVC_LATENCY_NBUCKETS - 1]);
  if (!rc) rc = head(b, "tanuki_svc_monitor_loop_lag_seconds", "gauge",
                     "How late the monitor's loop is now (its heartbeat timer).");
  if (!rc) rc = tsvc_buf_addf(b, "tanuki_svc_monitor_loop_lag_seconds %.3f\n", st->loop_lag_s);
  if (!rc) rc = head(b, "tanuki_svc_monitor_checks_in_flight", "gauge",
                     "Checks started and not yet ended.");
  if (!rc) rc = tsvc_buf_addf(b, "tanuki_svc_monitor_checks_in_flight %d\n", st->checks_in_flight);
  return rc;
}

int tsvc_metrics_render_hooks(const tsvc_hook_totals_t *t, tsvc_buf_t *b) {
  static const struct {
    const char *name, *help;
  } fam[TSVC_HOOK__COUNTS] = {
      [TSVC_HOOK_RUNS] = {"tanuki_svc_hook_runs_total",
                          "Hooks begun: on_change commands started, webhook deliveries queued."},
      [TSVC_HOOK_FAILURES] = {"tanuki_svc_hook_failures_total",
                              "Hooks that failed: a command's non-zero exit, signal or timeout; "
                              "a webhook delivery given up after its retries."},
      [TSVC_HOOK_DROPS] = {"tanuki_svc_hook_drops_total",
                           "Hooks dropped because their queue was full."},
  };
  int rc = 0;
  for (int i = 0; i < TSVC_HOOK__COUNTS && !rc; i++) {
    rc = head(b, fam[i].name, "counter", fam[i].help);
    for (int k = 0; k < TSVC_HOOK__KINDS && !rc; k++)
      rc = tsvc_buf_addf(b, "%s{kind=\"%s\"} %llu\n", fam[i].name,
                         tsvc_hook_kind_name((tsvc_hook_kind_t)k),
                         (unsigned long long)t->v[k][i]);
  }
  return rc;
}

/* ---- the stream ------------------------------------------------------------ */

/* Rendered ahead of the reader at most this much (and one unit more). */
#define STREAM_AHEAD (32u * 1024u)
/* One unit's text at most: a service's longest family (the histogram, 16
   lines) with a name of 64 bytes (the config's limit) is under 3 KB. */
#define STREAM_UNIT_MAX (1u << 20)

struct tsvc_metrics_stream_s {
  tsvc_snapshot_t *snap;       /* owned; NULL: no services */
  tsvc_monitor_stats_t stats;  /* the monitor's figures */
  bool sessions;               /* a service holds a session */
  int family;                  /* the family being rendered; F__COUNT: the
                                  monitor's; beyond: the end */
  size_t next;                 /* its next service; 0: its header first */
  tsvc_status_t cur;           /* a packed view's status being rendered */
  tsvc_hook_totals_t hooks;    /* the hooks' counts, when has_hooks */
  bool has_hooks;
  tsvc_buf_t pend;             /* rendered, not yet read from off */
  size_t off;
  int error;                   /* rendering failed: the stream ends early */
};

/* The i-th status of the stream's view: a pointer into an unpacked view, or
   a packed one's unpacked into s->cur (valid until the next call). */
static const tsvc_status_t *stream_at(const void *src, size_t i) {
  tsvc_metrics_stream_t *s = (tsvc_metrics_stream_t *)src;
  const tsvc_status_t *st = tsvc_snapshot_status(s->snap, i);
  if (st) return st;
  tsvc_snap_status(tsvc_snapshot_snap(s->snap, i), &s->cur);
  return &s->cur;
}

int tsvc_metrics_stream_new(tsvc_snapshot_t *snap, const tsvc_monitor_stats_t *stats,
                            tsvc_metrics_stream_t **out) {
  *out = NULL;
  tsvc_metrics_stream_t *s = calloc(1, sizeof *s);
  if (!s) {
    tsvc_snapshot_release(snap);
    return TSVC_ENOMEM;
  }
  s->snap = snap;
  if (stats) s->stats = *stats;
  else if (snap) s->stats = *tsvc_snapshot_stats(snap);
  s->sessions = snap && any_session(tsvc_snapshot_count(snap), stream_at, s);
  tsvc_buf_init(&s->pend, STREAM_AHEAD + STREAM_UNIT_MAX);
  *out = s;
  return 0;
}

void tsvc_metrics_stream_set_hooks(tsvc_metrics_stream_t *s, const tsvc_hook_totals_t *t) {
  s->hooks = *t;
  s->has_hooks = true;
}

void tsvc_metrics_stream_free(tsvc_metrics_stream_t *s) {
  if (!s) return;
  tsvc_snapshot_release(s->snap);
  tsvc_buf_free(&s->pend);
  free(s);
}

/* Render the next units into s->pend, about STREAM_AHEAD bytes. */
static int stream_fill(tsvc_metrics_stream_t *s) {
  size_t n = s->snap ? tsvc_snapshot_count(s->snap) : 0;
  int rc = 0;
  while (!rc && s->pend.len < STREAM_AHEAD && s->family <= F__COUNT) {
    if (s->family == F__COUNT) {
      rc = tsvc_metrics_render_monitor(&s->stats, &s->pend);
      if (!rc && s->has_hooks) rc = tsvc_metrics_render_hooks(&s->hooks, &s->pend);
      s->family++;
      break;
    }
    family_t f = (family_t)s->family;
    if (n == 0 || (is_session_family(f) && !s->sessions)) {
      s->family++;
      continue;
    }
    if (s->next == 0) rc = head(&s->pend, families[f].name, families[f].type, families[f].help);
    for (; !rc && s->next < n && s->pend.len < STREAM_AHEAD; s->next++)
      rc = unit(f, stream_at(s, s->next), &s->pend);
    if (s->next == n) {
      s->family++;
      s->next = 0;
    }
  }
  return rc;
}

long tsvc_metrics_stream_read(tsvc_metrics_stream_t *s, char *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    if (s->off == s->pend.len) {
      if (s->error || s->family > F__COUNT) break;
      tsvc_buf_reset(&s->pend);
      s->off = 0;
      if ((s->error = stream_fill(s)) != 0) break;
      if (!s->pend.len) break;
    }
    size_t k = s->pend.len - s->off;
    if (k > len - done) k = len - done;
    memcpy(buf + done, s->pend.data + s->off, k);
    s->off += k;
    done += k;
  }
  if (done) return (long)done;
  return s->error ? s->error : 0;
}
