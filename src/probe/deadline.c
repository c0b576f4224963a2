/* deadline.c: see deadline.h. */
#include "probe/deadline.h"

#include <stdlib.h>

#include "tsvc.h"

struct tsvc_dl_bucket_s {
  uint64_t at;
  tsvc_dl_bucket_t *prev, *next; /* earlier, later */
  tsvc_deadline_t *first, *last; /* its deadlines, in the order started
                                   (they fire in that order, as uv_timers
                                   due in the same millisecond do) */
};

#define IDLE UINT64_MAX

/* A deadline's place is looked for from the tail over at most this many
   buckets: with mixed delays (services at 1 s among others at 30 s, on a
   10 ms grid: ~2,900 buckets between a 1 s deadline's place and the tail)
   an unbounded walk over cold buckets would cost more than the timer heap
   it replaces, and the caller keeps its own uv_timer instead. */
#define SCAN_MAX 32

static void fire_cb(uv_timer_t *t);

/* The timer waits for the earliest bucket, unless it already waits for a
   time no later than that (it then fires early and waits again). */
static void arm(tsvc_deadlines_t *ds) {
  if (ds->closed || !ds->head) return;
  uint64_t at = ds->head->at;
  if (ds->armed_at <= at) return;
  uint64_t now = uv_now(ds->timer.loop);
  ds->armed_at = at;
  uv_timer_start(&ds->timer, fire_cb, at > now ? at - now : 0, 0);
}

static void bucket_drop(tsvc_deadlines_t *ds, tsvc_dl_bucket_t *b) {
  if (b->prev) b->prev->next = b->next;
  else ds->head = b->next;
  if (b->next) b->next->prev = b->prev;
  else ds->tail = b->prev;
  b->prev = NULL;
  b->next = ds->spare;
  ds->spare = b;
}

/* The bucket for at: found or put in, from the tail, looking at no more
   than SCAN_MAX buckets. NULL with *rc set: out of memory (TSVC_ENOMEM), or
   at lies further back (TSVC_EBUSY). */
static tsvc_dl_bucket_t *bucket_for(tsvc_deadlines_t *ds, uint64_t at, int *rc) {
  tsvc_dl_bucket_t *after = ds->tail;
  int seen = 0;
  while (after && after->at > at) {
    if (++seen > SCAN_MAX) {
      *rc = TSVC_EBUSY;
      return NULL;
    }
    after = after->prev;
  }
  if (after && after->at == at) return after;
  tsvc_dl_bucket_t *b = ds->spare;
  if (b) ds->spare = b->next;
  else if (!(b = malloc(sizeof *b))) {
    *rc = TSVC_ENOMEM;
    return NULL;
  }
  b->at = at;
  b->first = b->last = NULL;
  b->prev = after;
  b->next = after ? after->next : ds->head;
  if (b->next) b->next->prev = b;
  else ds->tail = b;
  if (after) after->next = b;
  else ds->head = b;
  return b;
}

void tsvc_deadline_stop(tsvc_deadline_t *d) {
  tsvc_dl_bucket_t *b = d->bucket;
  if (!b) return;
  if (d->prev) d->prev->next = d->next;
  else b->first = d->next;
  if (d->next) d->next->prev = d->prev;
  else b->last = d->prev;
  d->prev = d->next = NULL;
  d->bucket = NULL;
  /* An emptied bucket stays in the list (a deadline keeps no pointer to
     its set) until fire_cb sweeps it, and the timer is left as it is. */
}

int tsvc_deadline_start(tsvc_deadlines_t *ds, tsvc_deadline_t *d, uint64_t at,
                        tsvc_deadline_cb cb) {
  tsvc_deadline_stop(d);
  if (ds->closed) return TSVC_EINVAL;
  int rc = 0;
  tsvc_dl_bucket_t *b = bucket_for(ds, at, &rc);
  if (!b) return rc;
  d->cb = cb;
  d->bucket = b;
  d->next = NULL;
  d->prev = b->last;
  if (d->prev) d->prev->next = d;
  else b->first = d;
  b->last = d;
  arm(ds);
  return 0;
}

static void fire_cb(uv_timer_t *t) {
  tsvc_deadlines_t *ds = t->data;
  ds->armed_at = IDLE;
  uint64_t now = uv_now(t->loop);
  /* Every bucket due by now, earliest first. A callback may start
     deadlines (never due before now + 1: the loop's clock does not move
     inside this call) or stop any, so the head is looked at anew each
     time. */
  while (ds->head && ds->head->at <= now) {
    tsvc_dl_bucket_t *b = ds->head;
    tsvc_deadline_t *d = b->first;
    if (!d) {
      bucket_drop(ds, b);
      continue;
    }
    b->first = d->next;
    if (d->next) d->next->prev = NULL;
    else b->last = NULL;
    d->prev = d->next = NULL;
    d->bucket = NULL;
    d->cb(d);
  }
  /* Empty buckets ahead are swept when they come due; the timer waits for
     the earliest one that holds a deadline. */
  while (ds->head && !ds->head->first) bucket_drop(ds, ds->head);
  arm(ds);
}

int tsvc_deadlines_init(uv_loop_t *loop, tsvc_deadlines_t *ds) {
  *ds = (tsvc_deadlines_t){.armed_at = IDLE};
  int rc = uv_timer_init(loop, &ds->timer);
  if (rc) return rc;
  ds->timer.data = ds;
  return 0;
}

void tsvc_deadlines_close(tsvc_deadlines_t *ds) {
  if (ds->closed) return;
  ds->closed = true;
  for (tsvc_dl_bucket_t *b = ds->head; b; b = b->next)
    for (tsvc_deadline_t *d = b->first, *next; d; d = next) {
      next = d->next;
      d->prev = d->next = NULL;
      d->bucket = NULL;
    }
  while (ds->head) bucket_drop(ds, ds->head);
  uv_close((uv_handle_t *)&ds->timer, NULL);
}

void tsvc_deadlines_free(tsvc_deadlines_t *ds) {
  while (ds->head) bucket_drop(ds, ds->head);
  for (tsvc_dl_bucket_t *b = ds->spare, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  ds->spare = NULL;
}
