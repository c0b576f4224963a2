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
 */
#ifndef TSVC_API_METRICS_H
#define TSVC_API_METRICS_H

#include "common/util.h"
#include "tsvc.h"

/* Append the exposition of every service in l to out. Returns 0, or
   TSVC_ENOMEM / TSVC_EINVAL (out's maximum reached). */
int tsvc_metrics_render(const tsvc_status_list_t *l, tsvc_buf_t *out);
/* The same from a snapshot. */
int tsvc_metrics_render_snapshot(const tsvc_snapshot_t *s, tsvc_buf_t *out);
/* The monitor's own families. */
int tsvc_metrics_render_monitor(const tsvc_monitor_stats_t *st, tsvc_buf_t *out);

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
long tsvc_metrics_stream_read(tsvc_metrics_stream_t *s, char *buf, size_t len);
void tsvc_metrics_stream_free(tsvc_metrics_stream_t *s);

#endif
