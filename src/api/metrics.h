/*
 * metrics: the Prometheus text exposition (format 0.0.4) of GET /metrics,
 * from statuses (copies or a snapshot). Pure: no socket, no clock.
 *
 * Families (label service="NAME" on every series):
 *   tanuki_svc_up                              gauge: 1 healthy, 0 not
 *   tanuki_svc_state{state}                    gauge: 1 for the current state
 *   tanuki_svc_checks_total{result}            counter
 *   tanuki_svc_check_duration_seconds          histogram (TSVC_LATENCY_BUCKETS_S)
 *   tanuki_svc_restarts_total                  counter
 *   tanuki_svc_consecutive_failures            gauge
 *   tanuki_svc_last_change_timestamp_seconds   gauge (0: never)
 * and the monitor's own (no labels):
 *   tanuki_svc_monitor_lateness_seconds        histogram: how late checks
 *                                              started (same buckets)
 *   tanuki_svc_monitor_loop_lag_seconds        gauge: how late the loop is
 *   tanuki_svc_monitor_checks_in_flight        gauge
 * and the hooks' (label kind="command" for hooks.on_change, "webhook" for
 * hooks.webhook; totals of the top level's and the services' own hooks:
 * a label per service would multiply /metrics by the services for a
 * global hook, and which service failed is in the log):
 *   tanuki_svc_hook_runs_total{kind}           counter: commands started,
 *                                              webhook deliveries queued
 *   tanuki_svc_hook_failures_total{kind}       counter: failed or timed out
 *                                              (a webhook: after its retries)
 *   tanuki_svc_hook_drops_total{kind}          counter: dropped, the queue full
 */
#ifndef TSVC_API_METRICS_H
#define TSVC_API_METRICS_H

#include "common/util.h"
#include "manager/hooks.h"
#include "tsvc.h"

/* Append the exposition of every service in l to out. Returns 0, or
   TSVC_ENOMEM / TSVC_EINVAL (out's maximum reached). */
int tsvc_metrics_render(const tsvc_status_list_t *l, tsvc_buf_t *out);
/* The same from a snapshot. */
int tsvc_metrics_render_snapshot(const tsvc_snapshot_t *s, tsvc_buf_t *out);
/* The monitor's own families. */
int tsvc_metrics_render_monitor(const tsvc_monitor_stats_t *st, tsvc_buf_t *out);
/* The hooks' families. */
int tsvc_metrics_render_hooks(const tsvc_hook_totals_t *t, tsvc_buf_t *out);

/*
 * The same text a piece at a time, as GET /metrics sends it: the services'
 * families from a snapshot and then the monitor's, rendered about 32 KiB
 * ahead of the reader, so that a scrape of 10,000 services (about 22 MB)
 * never holds the whole text. The snapshot is immutable: the stream reads
 * it on any thread, without a lock.
 *
 * tsvc_metrics_stream_new() takes over snap (NULL: no services; it is
 * released by tsvc_metrics_stream_free(), or at once on failure) and the
 * monitor's figures from stats, or from the snapshot when stats is NULL.
 * Returns 0 or TSVC_ENOMEM (*out NULL).
 * tsvc_metrics_stream_read() copies the next bytes into buf (at most len)
 * and returns how many; 0 at the end; a negative error code when rendering
 * failed (the text would be cut short: the reply must be aborted).
 */
typedef struct tsvc_metrics_stream_s tsvc_metrics_stream_t;
int tsvc_metrics_stream_new(tsvc_snapshot_t *snap, const tsvc_monitor_stats_t *stats,
                            tsvc_metrics_stream_t **out);
/* The hooks' families after the monitor's (copied); before the first read. */
void tsvc_metrics_stream_set_hooks(tsvc_metrics_stream_t *s, const tsvc_hook_totals_t *t);
long tsvc_metrics_stream_read(tsvc_metrics_stream_t *s, char *buf, size_t len);
void tsvc_metrics_stream_free(tsvc_metrics_stream_t *s);

#endif
