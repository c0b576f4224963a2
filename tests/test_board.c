/* test_board: a service's check history on the board (src/monitor/board.h):
   records appended to blocks that are never rewritten, snapshots that keep
   the range they took while the loop appends past it and into new blocks,
   the cap, out of memory, and readers on other threads. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rcstr.h"
#include "monitor/board.h"
#include "testutil.h"
#include "tsvc.h"

/* ---- malloc that fails on demand -------------------------------------------
   The binary is linked with --wrap=malloc (tests/CMakeLists.txt): every
   malloc of the program, the library's included, comes here. A real heap
   does not run out on demand. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static _Atomic long fail_in = -1; /* mallocs to let through, then one fails; -1: none */
static pthread_t fail_thread;     /* ... only on this thread */

void *__wrap_malloc(size_t n) {
  if (atomic_load(&fail_in) >= 0 && pthread_equal(pthread_self(), fail_thread) &&
      atomic_fetch_sub(&fail_in, 1) == 0)
    return NULL;
  return __real_malloc(n);
}

/* The k-th malloc from now on this thread fails (0: the next). */
static void fail_malloc(long k) {
  fail_thread = pthread_self();
  atomic_store(&fail_in, k);
}

static void malloc_ok(void) { atomic_store(&fail_in, -1); }

/* ---- records ------------------------------------------------------------------ */

/* Record i: its message repeats for three records in a row (shared
   strings), every seventh has an output, and its address is one of two; its
   exit code (every second record) and its result (every fifth) change
   within a message's records, each while the other stays (the run of
   records a block shares, board.c run_t, holds both). */
static void message_of(long i, char *buf, size_t len) { snprintf(buf, len, "msg %ld", i / 3); }

static void record_of(long i, char *addr[2], char *msg, size_t len, char *out,
                      size_t outlen, tsvc_check_record_t *r) {
  message_of(i, msg, len);
  snprintf(out, outlen, "output of %ld", i);
  *r = (tsvc_check_record_t){.start_ms = i, .end_ms = i + 1,
                             .result = (tsvc_result_t)(i / 5 % TSVC_RESULT__COUNT),
                             .exit_code = (int)(i / 2 % 7) - 1, .latency_us = i * 10,
                             .message = msg, .output = i % 7 == 3 ? out : NULL,
                             .probe_address = addr[i / 4 % 2]};
}

static void push(tsvc_hist_t *h, size_t cap, long i, char *addr[2]) {
  char msg[64], out[64];
  tsvc_check_record_t r;
  record_of(i, addr, msg, sizeof msg, out, sizeof out, &r);
  assert_int_equal(tsvc_hist_push(h, cap, &r), 0);
}

/* The history in snap is records [first, first + n), each as record_of. */
static void expect_history(const tsvc_snap_t *snap, long first, size_t n, char *addr[2]) {
  tsvc_status_t st;
  assert_int_equal(tsvc_snap_copy(snap, true, &st), 0);
  if (st.nhistory != n)
    fail_msg("history of %zu records, want %zu (from %ld)", st.nhistory, n, first);
  for (size_t k = 0; k < n; k++) {
    long i = first + (long)k;
    const tsvc_check_record_t *r = &st.history[k];
    char msg[64], out[64];
    tsvc_check_record_t want;
    record_of(i, addr, msg, sizeof msg, out, sizeof out, &want);
    if (r->start_ms != i) fail_msg("record %zu: start_ms %lld, want %ld", k, (long long)r->start_ms, i);
    assert_int_equal(r->end_ms, want.end_ms);
    if (r->result != want.result)
      fail_msg("record %zu: result %d, want %d", k, (int)r->result, (int)want.result);
    assert_int_equal(r->exit_code, want.exit_code);
    assert_int_equal(r->latency_us, want.latency_us);
    assert_string_equal(r->message, want.message);
    if (want.output) assert_string_equal(r->output, want.output);
    else assert_null(r->output);
    assert_string_equal(r->probe_address, want.probe_address);
  }
  tsvc_status_clear(&st);
}

static tsvc_snap_t *snap_of(const tsvc_hist_t *h) {
  tsvc_status_t st = {.name = "svc"};
  tsvc_snap_t *s = tsvc_snap_new(&st, h);
  assert_non_null(s);
  return s;
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* ---- cases -------------------------------------------------------------------- */

/* Many blocks' worth of checks at several caps, a snapshot taken after
   each and every one kept: at the end each still shows the records it was
   taken with, though the loop appended past them, filled their blocks and
   went on in new ones (a record rewritten in place, or a block reused,
   would show a newer record in an old snapshot). */
static void snapshots_keep_their_records(void **state) {
  (void)state;
  char *addr[2] = {tsvc_rcstr_new("10.0.0.1:6379"), tsvc_rcstr_new("10.0.0.2:6379")};
  assert_non_null(addr[0]);
  assert_non_null(addr[1]);
  size_t caps[] = {1, 2, 3, 8, 9, 20};
  for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
    size_t cap = caps[c];
    enum { N = 150 };
    tsvc_snap_t *snaps[N];
    tsvc_hist_t h = {0};
    assert_null(tsvc_hist_last_message(&h));
    assert_int_equal(tsvc_hist_len(&h), 0);
    for (long i = 0; i < N; i++) {
      push(&h, cap, i, addr);
      char msg[64];
      message_of(i, msg, sizeof msg);
      assert_string_equal(tsvc_hist_last_message(&h), msg);
      assert_int_equal(tsvc_hist_len(&h), min_sz((size_t)i + 1, cap));
      snaps[i] = snap_of(&h);
    }
    for (long i = 0; i < N; i++) {
      size_t n = min_sz((size_t)i + 1, cap);
      expect_history(snaps[i], i + 1 - (long)n, n, addr);
    }
    /* Released oldest first, newest first, and with the history before or
       after: every order frees everything (ASan). */
    if (c % 2) tsvc_hist_clear(&h);
    for (long i = 0; i < N; i++) tsvc_snap_release(snaps[c % 2 ? i : N - 1 - i]);
    tsvc_hist_clear(&h);
    assert_int_equal(tsvc_hist_len(&h), 0);
  }
  tsvc_rcstr_unref(addr[0]);
  tsvc_rcstr_unref(addr[1]);
}

/* healthcheck.history changed by a reload: the monitor pushes with the new
   cap (after clearing the history: monitor.c), and the history is at most
   that from the next record on, whether it shrank or grew; snapshots taken
   before keep theirs. */
static void cap_changes(void **state) {
  (void)state;
  char *addr[2] = {tsvc_rcstr_new("a:1"), tsvc_rcstr_new("b:2")};
  tsvc_hist_t h = {0};
  long i = 0;
  for (; i < 30; i++) push(&h, 10, i, addr);
  tsvc_snap_t *at10 = snap_of(&h);
  push(&h, 4, i++, addr); /* shrinks at once */
  assert_int_equal(tsvc_hist_len(&h), 4);
  tsvc_snap_t *at4 = snap_of(&h);
  for (long k = 0; k < 30; k++) {
    push(&h, 25, i++, addr); /* grows a record a check */
    assert_int_equal(tsvc_hist_len(&h), min_sz(5 + (size_t)k, 25));
  }
  tsvc_snap_t *at25 = snap_of(&h);
  tsvc_hist_clear(&h); /* the reload: afresh */
  push(&h, 3, i++, addr);
  assert_int_equal(tsvc_hist_len(&h), 1);
  tsvc_snap_t *fresh = snap_of(&h);
  expect_history(at10, 20, 10, addr);
  expect_history(at4, 27, 4, addr);
  expect_history(at25, 61 - 25, 25, addr);
  expect_history(fresh, 61, 1, addr);
  tsvc_snap_release(at10);
  tsvc_snap_release(at4);
  tsvc_snap_release(at25);
  tsvc_snap_release(fresh);
  tsvc_hist_clear(&h);
  tsvc_rcstr_unref(addr[0]);
  tsvc_rcstr_unref(addr[1]);
}

/* Out of memory for a new block, for a new message or for a new output:
   TSVC_ENOMEM, the history as it was (the record is not in it), nothing
   leaked (ASan), and the next push goes on from there. */
static void out_of_memory(void **state) {
  (void)state;
  char *addr[2] = {tsvc_rcstr_new("a:1"), tsvc_rcstr_new("a:1")};
  size_t cap = 3;
  tsvc_hist_t h = {0};
  tsvc_check_record_t r = {.message = "same", .probe_address = addr[0]};
  /* The first block. */
  fail_malloc(0);
  assert_int_equal(tsvc_hist_push(&h, cap, &r), TSVC_ENOMEM);
  assert_int_equal(tsvc_hist_len(&h), 0);
  fail_malloc(1); /* the run goes (board.c run_t), then the message's string does not */
  assert_int_equal(tsvc_hist_push(&h, cap, &r), TSVC_ENOMEM);
  assert_int_equal(tsvc_hist_len(&h), 0);
  malloc_ok();
  /* Fill the block: after the first, the same message allocates nothing. */
  assert_int_equal(tsvc_hist_push(&h, cap, &r), 0);
  long pushed = 1;
  tsvc_snap_t *before = NULL;
  for (;;) {
    /* (A block rewritten in place would never need another.) */
    if (pushed > 1000) fail_msg("1000 records went in with no malloc");
    r.start_ms = pushed;
    fail_malloc(0);
    int rc = tsvc_hist_push(&h, cap, &r);
    malloc_ok();
    if (rc) break; /* the block is full: a new one was needed */
    pushed++;
    tsvc_snap_release(before);
    before = snap_of(&h);
  }
  assert_true(pushed >= (long)cap);
  assert_int_equal(tsvc_hist_len(&h), cap);
  assert_string_equal(tsvc_hist_last_message(&h), "same");
  /* A new message's run, its string, then a new output, that cannot be
     had. */
  r.message = "other";
  fail_malloc(0);
  assert_int_equal(tsvc_hist_push(&h, cap, &r), TSVC_ENOMEM);
  fail_malloc(1);
  assert_int_equal(tsvc_hist_push(&h, cap, &r), TSVC_ENOMEM);
  r.output = "out";
  fail_malloc(2);
  assert_int_equal(tsvc_hist_push(&h, cap, &r), TSVC_ENOMEM);
  malloc_ok();
  assert_string_equal(tsvc_hist_last_message(&h), "same");
  /* Memory again: the record goes in a new block after the last three. */
  r.start_ms = pushed;
  assert_int_equal(tsvc_hist_push(&h, cap, &r), 0);
  tsvc_snap_t *after = snap_of(&h);
  tsvc_status_t st;
  assert_int_equal(tsvc_snap_copy(after, true, &st), 0);
  assert_int_equal(st.nhistory, cap);
  for (size_t k = 0; k < cap; k++) assert_int_equal(st.history[k].start_ms, pushed - 2 + (long)k);
  assert_string_equal(st.history[cap - 1].message, "other");
  assert_string_equal(st.history[cap - 1].output, "out");
  assert_string_equal(st.history[cap - 2].message, "same");
  tsvc_status_clear(&st);
  assert_int_equal(tsvc_snap_copy(before, true, &st), 0);
  assert_int_equal(st.nhistory, cap);
  assert_int_equal(st.history[cap - 1].start_ms, pushed - 1);
  tsvc_status_clear(&st);
  /* A snapshot that cannot be had: NULL, the history untouched. */
  tsvc_status_t s0 = {.name = "svc"};
  fail_malloc(0);
  assert_null(tsvc_snap_new(&s0, &h));
  malloc_ok();
  tsvc_snap_release(before);
  tsvc_snap_release(after);
  tsvc_hist_clear(&h);
  tsvc_rcstr_unref(addr[0]);
  tsvc_rcstr_unref(addr[1]);
}

/* Readers on other threads take the service's status while the loop
   (this thread) appends and publishes: each sees a whole history of
   consecutive records, at most cap, as they were pushed (TSan: the
   board's lock publishes the records a snapshot covers; the loop's writes
   past them and the last release's reads of a block race with nothing). */
typedef struct {
  tsvc_board_t *b;
  atomic_bool stop;
  long reads, bad;
  size_t cap;
  char **addr;
} reader_t;

static void *reader(void *data) {
  reader_t *r = data;
  while (!atomic_load(&r->stop)) {
    tsvc_status_t st;
    if (tsvc_board_get_status(r->b, "svc", &st)) continue;
    r->reads++;
    if (st.nhistory > r->cap) r->bad++;
    for (size_t k = 0; k < st.nhistory; k++) {
      char msg[64];
      long i = (long)st.history[k].start_ms;
      message_of(i, msg, sizeof msg);
      if ((k && i != st.history[k - 1].start_ms + 1) || strcmp(st.history[k].message, msg) ||
          st.history[k].latency_us != i * 10 ||
          strcmp(st.history[k].probe_address, r->addr[i / 4 % 2]))
        r->bad++;
    }
    tsvc_status_clear(&st);
  }
  return NULL;
}

static void readers_on_other_threads(void **state) {
  (void)state;
  char *addr[2] = {tsvc_rcstr_new("10.0.0.1:6379"), tsvc_rcstr_new("10.0.0.2:6379")};
  tsvc_board_t *b;
  assert_int_equal(tsvc_board_new(&b), 0);
  tsvc_board_set_live(b, true);
  tsvc_board_slot_t *slot = tsvc_board_add(b, "svc");
  assert_non_null(slot);
  reader_t rd[2];
  pthread_t t[2];
  for (int k = 0; k < 2; k++) {
    rd[k] = (reader_t){.b = b, .cap = 7, .addr = addr};
    atomic_init(&rd[k].stop, false);
  }
  tsvc_hist_t h = {0};
  tsvc_status_t st = {.name = "svc"};
  for (int k = 0; k < 2; k++) assert_int_equal(pthread_create(&t[k], NULL, reader, &rd[k]), 0);
  for (long i = 0; i < 20000; i++) {
    push(&h, 7, i, addr);
    tsvc_board_publish(b, slot, tsvc_snap_new(&st, &h));
  }
  for (int k = 0; k < 2; k++) {
    atomic_store(&rd[k].stop, true);
    pthread_join(t[k], NULL);
    printf("reader %d: %ld reads, %ld bad\n", k, rd[k].reads, rd[k].bad);
    assert_true(rd[k].reads > 0);
    assert_int_equal(rd[k].bad, 0);
  }
  tsvc_hist_clear(&h);
  tsvc_board_free(b);
  tsvc_rcstr_unref(addr[0]);
  tsvc_rcstr_unref(addr[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(snapshots_keep_their_records),
      cmocka_unit_test(cap_changes),
      cmocka_unit_test(out_of_memory),
      cmocka_unit_test(readers_on_other_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
