/*
 * deadline: timeouts shared by many checks on one loop, without a timer
 * heap operation a check (issue 13: a held check started and stopped its
 * own uv_timer each time, two operations on cold nodes of a heap of
 * ~2,000 timers, 1,400 instructions and a handful of cache misses a check).
 *
 * Deadlines due in the same millisecond of the loop's clock share a
 * bucket (and fire in the order started); the buckets form a list sorted
 * by time, which a new deadline joins from the tail: meant for deadlines
 * that are mostly the latest (a timeout from now) or on a coarse grid (the
 * monitor's timers on monitor.timer_grid), where few buckets lie between
 * the tail and its place (a deadline whose place is further back is
 * refused: tsvc_deadline_start). One uv_timer waits for
 * the earliest bucket. Stopping a deadline only unlinks it: the timer is
 * left as it is, and when it fires early it waits again for what is the
 * earliest then. A deadline fires at the same time as a uv_timer started
 * for it would (due = the loop's now + delay, to the millisecond).
 *
 * Lifetimes: the set is a value its owner keeps (tsvc_deadlines_init);
 * tsvc_deadlines_close() closes its timer and forgets the deadlines still
 * pending (their callbacks are not called); tsvc_deadlines_free() frees
 * its buckets once the loop has run the close. An entry (tsvc_deadline_t)
 * lives in its user's struct; stop it before that struct goes. Callbacks
 * run from the loop, never inside start or stop; one may start or stop any
 * deadline, itself included.
 */
#ifndef TSVC_DEADLINE_H
#define TSVC_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct tsvc_deadline_s tsvc_deadline_t;
typedef struct tsvc_dl_bucket_s tsvc_dl_bucket_t;
typedef void (*tsvc_deadline_cb)(tsvc_deadline_t *d);

struct tsvc_deadline_s {
  tsvc_deadline_t *prev, *next; /* in its bucket, in the order started */
  tsvc_dl_bucket_t *bucket;     /* NULL: not pending */
  tsvc_deadline_cb cb;
};

typedef struct {
  uv_timer_t timer;
  tsvc_dl_bucket_t *head, *tail; /* pending, earliest first */
  tsvc_dl_bucket_t *spare;       /* emptied buckets, for reuse */
  uint64_t armed_at;             /* the timer's due time; UINT64_MAX: idle */
  bool closed;
} tsvc_deadlines_t;

/* Set up ds on loop. Returns 0 or a libuv error (uv_timer_init). */
int tsvc_deadlines_init(uv_loop_t *loop, tsvc_deadlines_t *ds);
/* Close the timer; pending deadlines are dropped (no callback). */
void tsvc_deadlines_close(tsvc_deadlines_t *ds);
/* Free the buckets (after the loop has run the close). */
void tsvc_deadlines_free(tsvc_deadlines_t *ds);

/* Call cb(d) when the loop's clock (uv_now) reaches at, ms; a pending d
 * is moved. A callback that starts a deadline at or before the loop's now
 * is called again in the same pass: start it later than now. Returns 0,
 * or TSVC_ENOMEM, TSVC_EINVAL (ds closed) or TSVC_EBUSY (at lies more than
 * 32 buckets before the latest: mixed delays; the caller keeps a timer of
 * its own for it): d is then not pending. */
int tsvc_deadline_start(tsvc_deadlines_t *ds, tsvc_deadline_t *d, uint64_t at,
                        tsvc_deadline_cb cb);
/* Not pending any more (a no-op when it is not). */
void tsvc_deadline_stop(tsvc_deadline_t *d);

static inline bool tsvc_deadline_pending(const tsvc_deadline_t *d) { return d->bucket != NULL; }

#endif
