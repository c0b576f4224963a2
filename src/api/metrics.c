/* metrics.c: see metrics.h. */
#include "api/metrics.h"

#include <stdio.h>
#include <string.h>

/* A label value with \, " and newline escaped, as the format asks. */
static int add_label(tsvc_buf_t *b, const char *v) {
  int rc = 0;
  for (const char *p = v; *p && !rc; p++) {
    switch (*p) {
    case '\\': rc = tsvc_buf_add(b, "\\\\", 2); break;
    case '"': rc = tsvc_buf_add(b, "\\\"", 2); break;
    case '\n': rc = tsvc_buf_add(b, "\\n", 2); break;
    default: rc = tsvc_buf_add(b, p, 1); break;
    }
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

/* Every service: n statuses, the i-th at(src, i). */
static int render(size_t n, const tsvc_status_t *(*at)(const void *, size_t), const void *src,
                  tsvc_buf_t *b) {
  int rc = 0;
  char extra[96];
#define EACH for (size_t i = 0; i < n && !rc; i++)
#define S(i) (at(src, (i)))
#define NAME (S(i)->name ? S(i)->name : "")

  rc = head(b, "tanuki_svc_up", "gauge", "Whether the service is healthy (1) or not (0).");
  EACH {
    rc = series(b, "tanuki_svc_up", NAME, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %d\n", S(i)->healthy ? 1 : 0);
  }

  if (!rc) rc = head(b, "tanuki_svc_state", "gauge",
                     "The service's health state: 1 for the current state, 0 for the others.");
  EACH for (int s = 0; s < TSVC_STATE__COUNT && !rc; s++) {
    snprintf(extra, sizeof extra, "state=\"%s\"", tsvc_state_name((tsvc_state_t)s));
    rc = series(b, "tanuki_svc_state", NAME, extra);
    if (!rc) rc = tsvc_buf_addf(b, " %d\n", S(i)->state == (tsvc_state_t)s ? 1 : 0);
  }

  if (!rc) rc = head(b, "tanuki_svc_checks_total", "counter", "Health checks run, by result.");
  EACH for (int r = 0; r < TSVC_RESULT__COUNT && !rc; r++) {
    snprintf(extra, sizeof extra, "result=\"%s\"", tsvc_result_name((tsvc_result_t)r));
    rc = series(b, "tanuki_svc_checks_total", NAME, extra);
    if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)S(i)->checks_by_result[r]);
  }

  if (!rc) rc = head(b, "tanuki_svc_check_duration_seconds", "histogram",
                     "How long health checks took.");
  EACH {
    const tsvc_status_t *s = S(i);
    for (int k = 0; k < TSVC_LATENCY_NBUCKETS && !rc; k++) {
      le(extra, sizeof extra, k);
      rc = series(b, "tanuki_svc_check_duration_seconds_bucket", NAME, extra);
      if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)s->latency_buckets[k]);
    }
    if (!rc) rc = series(b, "tanuki_svc_check_duration_seconds_sum", NAME, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %.6f\n", s->latency_sum_s);
    if (!rc) rc = series(b, "tanuki_svc_check_duration_seconds_count", NAME, NULL);
    if (!rc)
      rc = tsvc_buf_addf(b, " %llu\n",
                         (unsigned long long)s->latency_buckets[TSVC_LATENCY_NBUCKETS - 1]);
  }

  if (!rc) rc = head(b, "tanuki_svc_restarts_total", "counter",
                     "Restarts of the service (by the monitor or asked for).");
  EACH {
    rc = series(b, "tanuki_svc_restarts_total", NAME, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)S(i)->restarts_total);
  }

  if (!rc) rc = head(b, "tanuki_svc_consecutive_failures", "gauge",
                     "Failed checks in a row since the last success.");
  EACH {
    rc = series(b, "tanuki_svc_consecutive_failures", NAME, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %d\n", S(i)->consecutive_failures);
  }

  if (!rc) rc = head(b, "tanuki_svc_last_change_timestamp_seconds", "gauge",
                     "When the service last changed state (Unix time; 0: never).");
  EACH {
    rc = series(b, "tanuki_svc_last_change_timestamp_seconds", NAME, NULL);
    if (!rc) rc = tsvc_buf_addf(b, " %.3f\n", (double)S(i)->since_ms / 1000.0);
  }

  /* Held sessions (healthcheck.session): only the services that use them,
     and the families only when one does. */
  bool any_session = false;
  EACH if (S(i)->session) any_session = true;
  if (!rc && any_session) {
    rc = head(b, "tanuki_svc_session_held", "gauge",
              "Whether the service's held session is connected (1) or not (0).");
    EACH if (S(i)->session) {
      rc = series(b, "tanuki_svc_session_held", NAME, NULL);
      if (!rc) rc = tsvc_buf_addf(b, " %d\n", S(i)->session_held ? 1 : 0);
    }
    if (!rc) rc = head(b, "tanuki_svc_session_connects_total", "counter",
                       "Held session connections opened (logged in).");
    EACH if (S(i)->session) {
      rc = series(b, "tanuki_svc_session_connects_total", NAME, NULL);
      if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)S(i)->session_connects);
    }
    if (!rc) rc = head(b, "tanuki_svc_session_checks_total", "counter",
                       "Checks by where they were decided: on the held session, or by the "
                       "full probe.");
    EACH if (S(i)->session) {
      rc = series(b, "tanuki_svc_session_checks_total", NAME, "on=\"held\"");
      if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)S(i)->session_held_checks);
      if (!rc) rc = series(b, "tanuki_svc_session_checks_total", NAME, "on=\"full\"");
      if (!rc) rc = tsvc_buf_addf(b, " %llu\n", (unsigned long long)S(i)->session_full_checks);
    }
  }
#undef EACH
#undef NAME
#undef S
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
