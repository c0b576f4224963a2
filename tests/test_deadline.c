/* test_deadline: the shared timeout set of probe/deadline.h (the held
   sessions' check timeouts in the monitor), on a real loop: each deadline
   fires when the loop's clock reaches it, never before; stopped ones do
   not fire; the timer left waiting for a stopped deadline does not fire a
   later one early; a callback may start deadlines; close drops the
   pending ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe/deadline.h"
#include "testutil.h"

typedef struct {
  tsvc_deadline_t d;
  uint64_t at;    /* when it is due (the loop's clock) */
  uint64_t fired; /* the loop's clock in the callback; 0: not yet */
  int calls;
  int again;      /* restart this many times more, 10 ms later each */
  tsvc_deadlines_t *ds;
} ent_t;

static int order[16], norder;

static void fire(tsvc_deadline_t *d) {
  ent_t *e = (ent_t *)((char *)d - offsetof(ent_t, d));
  e->fired = uv_now(e->ds->timer.loop);
  e->calls++;
  if (norder < 16) order[norder++] = (int)e->at;
  assert_false(tsvc_deadline_pending(d));
  if (e->again-- > 0) {
    e->at = e->fired + 10;
    assert_int_equal(tsvc_deadline_start(e->ds, d, e->at, fire), 0);
  }
}

static void start(tsvc_deadlines_t *ds, ent_t *e, uint64_t at) {
  e->ds = ds;
  e->at = at;
  assert_int_equal(tsvc_deadline_start(ds, &e->d, at, fire), 0);
  assert_true(tsvc_deadline_pending(&e->d));
}

/* Run the loop until cond holds; the loop must not end before. */
#define RUN_UNTIL(loop, cond)                                                 \
  do {                                                                        \
    while (!(cond))                                                           \
      if (uv_run((loop), UV_RUN_ONCE) == 0 && !(cond)) fail_msg("the loop ended first"); \
  } while (0)

/* A loop and a deadline set on it; returns the loop's clock. */
static uint64_t set_up(uv_loop_t *loop, tsvc_deadlines_t *ds) {
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(tsvc_deadlines_init(loop, ds), 0);
  return uv_now(loop);
}

static void run_until_idle(uv_loop_t *loop, tsvc_deadlines_t *ds) {
  tsvc_deadlines_close(ds);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
  tsvc_deadlines_free(ds);
}

static void fire_in_order_never_early(void **st) {
  (void)st;
  uv_loop_t loop;
  tsvc_deadlines_t ds;
  uint64_t now = set_up(&loop, &ds);
  ent_t e[5] = {0};
  norder = 0;
  /* Out of order, two in one millisecond, one stopped, one moved. */
  start(&ds, &e[0], now + 60);
  start(&ds, &e[1], now + 20);
  start(&ds, &e[2], now + 40);
  start(&ds, &e[3], now + 40);
  start(&ds, &e[4], now + 30);
  tsvc_deadline_stop(&e[2].d);
  assert_false(tsvc_deadline_pending(&e[2].d));
  tsvc_deadline_stop(&e[2].d); /* twice: a no-op */
  start(&ds, &e[0], now + 50);  /* moved earlier */
  RUN_UNTIL(&loop, e[0].calls + e[1].calls + e[3].calls + e[4].calls == 4);
  for (int i = 0; i < 5; i++) {
    if (i == 2) continue;
    assert_int_equal(e[i].calls, 1);
    assert_true(e[i].fired >= e[i].at);
  }
  assert_int_equal(e[2].calls, 0);
  int want[] = {(int)(now + 20), (int)(now + 30), (int)(now + 40), (int)(now + 50)};
  assert_int_equal(norder, 4);
  assert_memory_equal(order, want, sizeof want);
  run_until_idle(&loop, &ds);
}

/* The timer waits for the earliest deadline; when that one is stopped the
   timer still fires then, finds nothing due, and waits for the next: which
   fires at its own time, not at the stopped one's. */
static void stopped_head_does_not_fire_the_next_early(void **st) {
  (void)st;
  uv_loop_t loop;
  tsvc_deadlines_t ds;
  uint64_t now = set_up(&loop, &ds);
  ent_t a = {0}, b = {0};
  start(&ds, &a, now + 10);
  start(&ds, &b, now + 80);
  tsvc_deadline_stop(&a.d);
  RUN_UNTIL(&loop, b.calls == 1);
  assert_int_equal(a.calls, 0);
  assert_true(b.fired >= now + 80);
  run_until_idle(&loop, &ds);
}

/* A callback starts its own deadline again (the session's one more poll
   before a timeout is called: 1 ms later). */
static void restart_from_callback(void **st) {
  (void)st;
  uv_loop_t loop;
  tsvc_deadlines_t ds;
  uint64_t now = set_up(&loop, &ds);
  ent_t e = {.again = 3};
  start(&ds, &e, now + 5);
  RUN_UNTIL(&loop, e.calls == 4);
  assert_true(e.fired >= now + 5 + 3 * 10);
  assert_false(tsvc_deadline_pending(&e.d));
  run_until_idle(&loop, &ds);
}

/* Many deadlines over many milliseconds, mostly in order (a few ms back:
   as timeouts from now and grid deadlines come), half stopped: every other
   one fires once, at or after its time; the loop is empty at the end. */
static void many(void **st) {
  (void)st;
  enum { N = 2000 };
  uv_loop_t loop;
  tsvc_deadlines_t ds;
  uint64_t now = set_up(&loop, &ds);
  ent_t *e = calloc(N, sizeof *e);
  assert_non_null(e);
  for (int i = 0; i < N; i++) start(&ds, &e[i], now + 1 + (uint64_t)(i / 20 + i * 7919 % 13));
  for (int i = 0; i < N; i += 2) tsvc_deadline_stop(&e[i].d);
  int left = N / 2;
  while (left > 0) {
    int alive = uv_run(&loop, UV_RUN_ONCE);
    left = 0;
    for (int i = 1; i < N; i += 2) left += e[i].calls == 0;
    if (!alive && left) fail_msg("the loop ended with %d deadlines not fired", left);
  }
  for (int i = 0; i < N; i++) {
    assert_int_equal(e[i].calls, i % 2);
    if (i % 2) assert_true(e[i].fired >= e[i].at);
  }
  free(e);
  run_until_idle(&loop, &ds);
}

/* A deadline whose place lies more than 32 buckets before the latest is
   refused (TSVC_EBUSY, not pending: its caller keeps a timer of its own),
   one within them is taken, and both neighbours still fire in order. */
static void far_back_refused(void **st) {
  (void)st;
  enum { N = 100 };
  uv_loop_t loop;
  tsvc_deadlines_t ds;
  uint64_t now = set_up(&loop, &ds);
  ent_t e[N] = {0}, early = {0}, near = {0};
  for (int i = 0; i < N; i++) start(&ds, &e[i], now + 20 + (uint64_t)i);
  early.ds = &ds;
  assert_int_equal(tsvc_deadline_start(&ds, &early.d, now + 10, fire), TSVC_EBUSY);
  assert_false(tsvc_deadline_pending(&early.d));
  start(&ds, &near, now + 20 + N - 20); /* 20 buckets back: shares one */
  RUN_UNTIL(&loop, e[N - 1].calls == 1 && near.calls == 1);
  assert_int_equal(early.calls, 0);
  assert_true(near.fired >= near.at);
  for (int i = 0; i < N; i++) assert_int_equal(e[i].calls, 1);
  run_until_idle(&loop, &ds);
}

/* Close with deadlines pending: none fires, none is pending, the loop
   ends empty; starting on a closed set fails and leaves it not pending. */
static void close_drops_pending(void **st) {
  (void)st;
  uv_loop_t loop;
  tsvc_deadlines_t ds;
  uint64_t now = set_up(&loop, &ds);
  ent_t a = {0}, b = {0};
  start(&ds, &a, now + 5);
  start(&ds, &b, now + 500);
  tsvc_deadlines_close(&ds);
  assert_false(tsvc_deadline_pending(&a.d));
  assert_false(tsvc_deadline_pending(&b.d));
  assert_int_equal(tsvc_deadline_start(&ds, &a.d, now + 5, fire), TSVC_EINVAL);
  assert_false(tsvc_deadline_pending(&a.d));
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(a.calls + b.calls, 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  tsvc_deadlines_free(&ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fire_in_order_never_early),
      cmocka_unit_test(stopped_head_does_not_fire_the_next_early),
      cmocka_unit_test(restart_from_callback),
      cmocka_unit_test(many),
      cmocka_unit_test(far_back_refused),
      cmocka_unit_test(close_drops_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
