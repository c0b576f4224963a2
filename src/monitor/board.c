/* board.c: see board.h. */
#include "monitor/board.h"

#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/index.h"
#include "common/rcstr.h"
#include "common/ref.h"
#include "common/util.h"

/* What a run of records has in common (issue 13, the memory of full
   histories): the result, the exit code and the three strings (rcstrs, a
   reference each). Records that repeat the record before's share its run,
   so a held check's "PONG", its address and its result are one run_t for
   the whole block. The count is atomic: a block's last reference may go
   on a reader's thread. */
typedef struct {
  atomic_long n;
  tsvc_result_t result;
  int exit_code;
  char *message; /* never NULL */
  char *output;  /* or NULL */
  char *probe_address; /* or NULL */
} run_t;

/* A record in a block (issue 13: the public tsvc_check_record_t is 56
   bytes, this is 32; a full history of 20 is a block of 24 records, 800
   bytes instead of 1,376, ~0.55 MiB less at 1,000 services; RSS of `up`
   with every history full: bench/results.md): the times by value, the
   rest in the record's run. */
typedef struct {
  int64_t start_ms;
  int64_t end_ms;
  int64_t latency_us;
  run_t *run;
} rec_t;
_Static_assert(sizeof(rec_t) == 32, "a record in a block is 32 bytes");

/* A block of a service's history (board.h, tsvc_hist_t): records by value,
   written once each, in order, by the loop. A block holds one reference to
   each run of records with the same run_t (rec_ref_run).
   Readers go by the range their snapshot took, never by n: the loop
   writes past it meanwhile. n is read on another thread only by the last
   reference's release, which comes after the loop's own (the loop lets a
   block go only when it starts another, or clears the history). */
typedef struct tsvc_hist_blk_s {
  tsvc_ref_t ref;
  size_t room; /* records it has room for */
  size_t n;    /* records written */
  rec_t v[];   /* oldest first */
} blk_t;

/* A snapshot keeps the status packed (issue 13: a tsvc_status_t is 1.3 KB,
   930 bytes of it fixed-size text fields that are mostly empty, and the
   board holds one per service): the status's bytes without its text fields
   (`fixed`, FIXED_LEN bytes), then each text field's string with its NUL
   (texts[] order), then the name, then (aligned) what a start waits for. */
struct tsvc_snap_s {
  tsvc_ref_t ref;
  blk_t *blk;               /* the history: blk->v[lo, lo + nhist) */
  size_t lo, nhist;
  tsvc_wait_t *waiting_for; /* into data, or NULL */
  size_t nwaiting;
  const char *name;         /* into data */
  bool healthy;             /* (tsvc_board_is_healthy without unpacking) */
  unsigned char data[];
};

struct tsvc_board_slot_s {
  char *name;
  tsvc_snap_t *snap; /* the board's reference; NULL before the first */
};

struct tsvc_snapshot_s {
  size_t n;
  tsvc_snap_t **v;
  /* The statuses unpacked, for tsvc_snapshot_status()'s pointers: one
     block of n, made with the view and freed with it (above glibc's mmap
     threshold from about 100 services, so it goes back to the system when
     the view is released instead of staying in the heap). */
  tsvc_status_t *st;
  tsvc_monitor_stats_t stats;
};

struct tsvc_board_s {
  pthread_mutex_t mu; /* slots, index, live, and every slot's snap pointer */
  tsvc_board_slot_t **slots; /* in the order added */
  size_t n, cap;
  tsvc_index_t index;        /* the slots by name */
  bool live;
  /* The loop adds, readers load. */
  atomic_uint_fast64_t late[TSVC_LATENCY_NBUCKETS]; /* not cumulative */
  atomic_uint_fast64_t late_sum_ms;
  atomic_int in_flight;
};

static const double bounds_s[] = TSVC_LATENCY_BUCKETS_S;

/* ---- records, histories, snapshots ------------------------------------- */

/* The text fields of tsvc_status_t packed at their length, in the order of
   the struct (the packing walks them in order). */
#define TEXT(f) {offsetof(tsvc_status_t, f), sizeof(((tsvc_status_t *)0)->f)}
static const struct {
  size_t off, size;
} texts[] = {TEXT(probe), TEXT(probe_via), TEXT(probe_address), TEXT(container_id),
             TEXT(container_name), TEXT(last_error), TEXT(session_error)};
#define NTEXTS (sizeof texts / sizeof texts[0])
_Static_assert(offsetof(tsvc_status_t, probe) < offsetof(tsvc_status_t, probe_via) &&
                   offsetof(tsvc_status_t, probe_via) < offsetof(tsvc_status_t, probe_address) &&
                   offsetof(tsvc_status_t, probe_address) <
                       offsetof(tsvc_status_t, container_id) &&
                   offsetof(tsvc_status_t, container_id) <
                       offsetof(tsvc_status_t, container_name) &&
                   offsetof(tsvc_status_t, container_name) <
                       offsetof(tsvc_status_t, last_error) &&
                   offsetof(tsvc_status_t, last_error) < offsetof(tsvc_status_t, session_error),
               "texts[] follows the order of tsvc_status_t");
#define FIXED_LEN                                                                         \
  (sizeof(tsvc_status_t) -                                                                \
   (sizeof(((tsvc_status_t *)0)->probe) + sizeof(((tsvc_status_t *)0)->probe_via) +       \
    sizeof(((tsvc_status_t *)0)->probe_address) +                                         \
    sizeof(((tsvc_status_t *)0)->container_id) +                                          \
    sizeof(((tsvc_status_t *)0)->container_name) +                                        \
    sizeof(((tsvc_status_t *)0)->last_error) + sizeof(((tsvc_status_t *)0)->session_error)))

/* The status's bytes outside the text fields, between out and in: pack
   (into data) or unpack (from data). Of the eight runs between text
   fields only three hold bytes (16, 280 and 80 of them): the empty ones
   are skipped (issue 13: a call of memcpy or memset each, ~250
   instructions of a publish with tsvc_status_zero_fixed's). */
static void move_fixed(unsigned char *data, tsvc_status_t *st, bool pack) {
  size_t at = 0, from = 0;
  for (size_t i = 0; i <= NTEXTS; i++) {
    size_t to = i < NTEXTS ? texts[i].off : sizeof *st;
    if (to > from && pack) memcpy(data + at, (unsigned char *)st + from, to - from);
    else if (to > from) memcpy((unsigned char *)st + from, data + at, to - from);
    at += to - from;
    if (i < NTEXTS) from = texts[i].off + texts[i].size;
  }
}

/* The length of a text field's string (at most its size - 1). */
static size_t text_len(const tsvc_status_t *st, size_t i) {
  return strnlen((const char *)st + texts[i].off, texts[i].size - 1);
}

static void run_ref(run_t *u) { atomic_fetch_add_explicit(&u->n, 1, memory_order_relaxed); }

static void run_unref(run_t *u) {
  if (!u || atomic_fetch_sub_explicit(&u->n, 1, memory_order_acq_rel) != 1) return;
  tsvc_rcstr_unref(u->message);
  tsvc_rcstr_unref(u->output);
  tsvc_rcstr_unref(u->probe_address);
  free(u);
}

/* A block holds one reference to each run of records with the same run_t,
   kept by the run's first record: record r holds one when its run is not
   prev's (the record before it in the block, or NULL). */
static void rec_ref_run(const rec_t *r, const rec_t *prev) {
  if (!prev || r->run != prev->run) run_ref(r->run);
}

static void blk_free(tsvc_ref_t *r) {
  blk_t *b = (blk_t *)r;
  for (size_t i = b->n; i-- > 0;)
    if (!i || b->v[i].run != b->v[i - 1].run) run_unref(b->v[i].run);
  free(b);
}

static void blk_release(blk_t *b) {
  if (b) tsvc_ref_put(&b->ref);
}

/* The room of a new block that starts with keep records: BLK_SLACK more
   than the next record needs, so that a new block, which copies the
   newest cap - 1 records (their runs: a reference a run), comes every
   BLK_SLACK + 1 checks. Each service's history takes that many records
   (rec_t, 32 bytes each) more than it holds, and no more while it fills
   up (a block of cap + BLK_SLACK from the first check would weigh on a
   young monitor's memory: README, "Performance", the RSS goals). */
#define BLK_SLACK 4
static size_t blk_room(size_t keep) { return keep + 1 + BLK_SLACK; }

static bool same_text(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The run of a record with r's result, exit code and strings: last's when
   the same (borrowed: *fresh false), else a new one (its reference is
   the caller's) that shares last's message and output when they are the
   same. NULL: out of memory. */
static run_t *run_of(const run_t *last, const tsvc_check_record_t *r, bool *fresh) {
  const char *msg = r->message ? r->message : "";
  bool same_msg = last && strcmp(last->message, msg) == 0;
  bool same_out = last && same_text(last->output, r->output);
  *fresh = false;
  if (same_msg && same_out && last->result == r->result && last->exit_code == r->exit_code &&
      last->probe_address == r->probe_address)
    return (run_t *)last;
  run_t *u = malloc(sizeof *u);
  if (!u) return NULL;
  atomic_init(&u->n, 1);
  u->result = r->result;
  u->exit_code = r->exit_code;
  u->message = same_msg ? tsvc_rcstr_ref(last->message) : tsvc_rcstr_new(msg);
  u->output = !r->output ? NULL
              : same_out ? tsvc_rcstr_ref(last->output)
                         : tsvc_rcstr_new(r->output);
  u->probe_address = r->probe_address ? tsvc_rcstr_ref(r->probe_address) : NULL;
  if (!u->message || (r->output && !u->output)) {
    tsvc_rcstr_unref(u->message);
    tsvc_rcstr_unref(u->output);
    tsvc_rcstr_unref(u->probe_address);
    free(u);
    return NULL;
  }
  *fresh = true;
  return u;
}

int tsvc_hist_push(tsvc_hist_t *h, size_t cap, const tsvc_check_record_t *r) {
  if (cap < 1) cap = 1;
  blk_t *b = h->blk, *old = NULL;
  const rec_t *last = b && b->n ? &b->v[b->n - 1] : NULL;
  bool fresh;
  run_t *run = run_of(last ? last->run : NULL, r, &fresh);
  if (!run) return TSVC_ENOMEM;
  if (!b || b->n == b->room) {
    /* A new block, with the newest cap - 1 records of the full one. The
       full one is let go after the record is in: run may be its last's. */
    size_t keep = b ? b->n - h->lo : 0;
    if (keep > cap - 1) keep = cap - 1;
    size_t room = blk_room(keep);
    blk_t *nb = malloc(sizeof *nb + room * sizeof nb->v[0]);
    if (!nb) {
      if (fresh) run_unref(run);
      return TSVC_ENOMEM;
    }
    tsvc_ref_init(&nb->ref, blk_free);
    nb->room = room;
    nb->n = keep;
    for (size_t i = 0; i < keep; i++) {
      nb->v[i] = b->v[b->n - keep + i];
      rec_ref_run(&nb->v[i], i ? &nb->v[i - 1] : NULL);
    }
    old = b;
    h->blk = b = nb;
    h->lo = 0;
  }
  const rec_t *prev = b->n ? &b->v[b->n - 1] : NULL;
  if (!fresh && (!prev || run != prev->run)) run_ref(run);
  b->v[b->n++] = (rec_t){r->start_ms, r->end_ms, r->latency_us, run};
  if (b->n - h->lo > cap) h->lo = b->n - cap;
  blk_release(old);
  return 0;
}

const char *tsvc_hist_last_message(const tsvc_hist_t *h) {
  return h->blk && h->blk->n > h->lo ? h->blk->v[h->blk->n - 1].run->message : NULL;
}

size_t tsvc_hist_len(const tsvc_hist_t *h) { return h->blk ? h->blk->n - h->lo : 0; }

void tsvc_hist_clear(tsvc_hist_t *h) {
  blk_release(h->blk);
  h->blk = NULL;
  h->lo = 0;
}

static void snap_free(tsvc_ref_t *r) {
  tsvc_snap_t *s = (tsvc_snap_t *)r;
  blk_release(s->blk);
  free(s);
}

/* board.h's TSVC_SNAP_* follow texts[] (the order of tsvc_status_t). */
_Static_assert(TSVC_SNAP_NTEXTS == NTEXTS, "one TSVC_SNAP_* a text field");

void tsvc_status_zero_fixed(tsvc_status_t *st) {
  size_t from = 0;
  for (size_t i = 0; i <= NTEXTS; i++) {
    size_t to = i < NTEXTS ? texts[i].off : sizeof *st;
    if (to > from) memset((unsigned char *)st + from, 0, to - from);
    if (i < NTEXTS) from = texts[i].off + texts[i].size;
  }
}

/* The snapshot of st with text field i from tx[i] (tx NULL: st's own). */
static tsvc_snap_t *snap_new(const tsvc_status_t *st, const char *const *tx,
                             const tsvc_hist_t *hist) {
  const char *name = st->name ? st->name : "";
  const char *src[NTEXTS];
  size_t len = strlen(name) + 1, tl[NTEXTS], end = sizeof(tsvc_snap_t) + FIXED_LEN;
  for (size_t i = 0; i < NTEXTS; i++) {
    if (tx) {
      src[i] = tx[i] ? tx[i] : "";
      tl[i] = strnlen(src[i], texts[i].size - 1);
    } else {
      src[i] = (const char *)st + texts[i].off;
      tl[i] = text_len(st, i);
    }
    end += tl[i] + 1;
  }
  size_t name_at = end;
  end += len;
  /* What a start waits for goes in the same block, after the name. */
  size_t nw = st->waiting_for ? st->nwaiting : 0;
  size_t at = (end + _Alignof(tsvc_wait_t) - 1) / _Alignof(tsvc_wait_t) * _Alignof(tsvc_wait_t);
  tsvc_snap_t *s = malloc(nw ? at + nw * sizeof(tsvc_wait_t) : end);
  if (!s) return NULL;
  tsvc_ref_init(&s->ref, snap_free);
  move_fixed(s->data, (tsvc_status_t *)st, true);
  char *w = (char *)s->data + FIXED_LEN;
  for (size_t i = 0; i < NTEXTS; i++) {
    memcpy(w, src[i], tl[i]);
    w[tl[i]] = '\0';
    w += tl[i] + 1;
  }
  memcpy((char *)s + name_at, name, len);
  s->name = (char *)s + name_at;
  s->healthy = st->healthy;
  s->waiting_for = nw ? (tsvc_wait_t *)((char *)s + at) : NULL;
  s->nwaiting = nw;
  if (nw) memcpy(s->waiting_for, st->waiting_for, nw * sizeof(tsvc_wait_t));
  s->blk = NULL;
  s->lo = s->nhist = 0;
  if (hist && hist->blk) {
    s->blk = hist->blk;
    tsvc_ref_get(&s->blk->ref);
    s->lo = hist->lo;
    s->nhist = hist->blk->n - hist->lo;
  }
  return s;
}

tsvc_snap_t *tsvc_snap_new(const tsvc_status_t *st, const tsvc_hist_t *hist) {
  return snap_new(st, NULL, hist);
}

tsvc_snap_t *tsvc_snap_new_texts(const tsvc_status_t *st, const char *const tx[TSVC_SNAP_NTEXTS],
                                 const tsvc_hist_t *hist) {
  return snap_new(st, tx, hist);
}

tsvc_snap_t *tsvc_snap_ref(tsvc_snap_t *s) {
  if (s) tsvc_ref_get(&s->ref);
  return s;
}

void tsvc_snap_release(tsvc_snap_t *s) {
  if (s) tsvc_ref_put(&s->ref);
}

void tsvc_snap_status(const tsvc_snap_t *s, tsvc_status_t *out) {
  move_fixed((unsigned char *)s->data, out, false);
  const char *r = (const char *)s->data + FIXED_LEN;
  for (size_t i = 0; i < NTEXTS; i++) {
    size_t n = strlen(r);
    memcpy((char *)out + texts[i].off, r, n);
    memset((char *)out + texts[i].off + n, 0, texts[i].size - n);
    r += n + 1;
  }
  out->name = (char *)s->name;
  out->history = NULL;
  out->nhistory = 0;
  out->waiting_for = s->waiting_for;
  out->nwaiting = s->nwaiting;
}

int tsvc_snap_copy(const tsvc_snap_t *s, bool with_history, tsvc_status_t *out) {
  tsvc_snap_status(s, out);
  out->name = NULL;
  out->waiting_for = NULL;
  out->nwaiting = 0;
  if (!(out->name = strdup(s->name))) return TSVC_ENOMEM;
  if (s->nwaiting) {
    out->waiting_for = malloc(s->nwaiting * sizeof *out->waiting_for);
    if (!out->waiting_for) goto nomem;
    memcpy(out->waiting_for, s->waiting_for, s->nwaiting * sizeof *out->waiting_for);
    out->nwaiting = s->nwaiting;
  }
  if (!with_history || !s->nhist) return 0;
  out->history = calloc(s->nhist, sizeof *out->history);
  if (!out->history) goto nomem;
  for (size_t i = 0; i < s->nhist; i++) {
    const rec_t *r = &s->blk->v[s->lo + i];
    const run_t *u = r->run;
    tsvc_check_record_t *d = &out->history[i];
    *d = (tsvc_check_record_t){.start_ms = r->start_ms,
                               .end_ms = r->end_ms,
                               .result = u->result,
                               .exit_code = u->exit_code,
                               .latency_us = r->latency_us};
    out->nhistory = i + 1;
    if (!(d->message = strdup(u->message))) goto nomem;
    if (u->output && !(d->output = strdup(u->output))) goto nomem;
    if (u->probe_address && !(d->probe_address = strdup(u->probe_address))) goto nomem;
  }
  return 0;
nomem:
  tsvc_status_clear(out);
  return TSVC_ENOMEM;
}

/* ---- the board ----------------------------------------------------------- */

int tsvc_board_new(tsvc_board_t **out) {
  tsvc_board_t *b = calloc(1, sizeof *b);
  if (!b) return TSVC_ENOMEM;
  pthread_mutex_init(&b->mu, NULL);
  tsvc_index_init(&b->index, offsetof(tsvc_board_slot_t, name));
  for (size_t i = 0; i < TSVC_LATENCY_NBUCKETS; i++) atomic_init(&b->late[i], 0);
  atomic_init(&b->late_sum_ms, 0);
  atomic_init(&b->in_flight, 0);
  *out = b;
  return 0;
}

void tsvc_board_free(tsvc_board_t *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++) {
    tsvc_snap_release(b->slots[i]->snap);
    free(b->slots[i]->name);
    free(b->slots[i]);
  }
  free(b->slots);
  tsvc_index_free(&b->index);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

/* Caller holds b->mu. */
static tsvc_board_slot_t *find(const tsvc_board_t *b, const char *name) {
  return tsvc_index_find(&b->index, name);
}

tsvc_board_slot_t *tsvc_board_add(tsvc_board_t *b, const char *name) {
  tsvc_board_slot_t *s = calloc(1, sizeof *s);
  if (!s || !(s->name = strdup(name))) {
    free(s);
    return NULL;
  }
  /* Grow outside the lock; the loop is the only writer, so n and cap
     cannot change meanwhile. */
  tsvc_board_slot_t **v = NULL;
  size_t cap = b->cap;
  if (b->n == b->cap) {
    cap = b->cap ? b->cap * 2 : 16;
    v = malloc(cap * sizeof *v);
  }
  tsvc_index_t idx = {0};
  bool grow = !tsvc_index_fits(&b->index, b->n + 1);
  if ((cap != b->cap && !v) || (grow && tsvc_index_resized(&b->index, b->n + 1, &idx))) {
    free(v);
    free(s->name);
    free(s);
    return NULL;
  }
  pthread_mutex_lock(&b->mu);
  tsvc_board_slot_t **old_v = NULL;
  tsvc_index_t old_idx = {0};
  if (v) {
    if (b->n) memcpy(v, b->slots, b->n * sizeof *v);
    old_v = b->slots;
    b->slots = v;
    b->cap = cap;
  }
  b->slots[b->n++] = s;
  if (grow) {
    old_idx = b->index;
    b->index = idx;
  }
  /* Room was made above, and names are unique (the monitor refuses a
     second service of a name): this cannot fail. */
  tsvc_index_put(&b->index, s);
  pthread_mutex_unlock(&b->mu);
  free(old_v);
  tsvc_index_free(&old_idx);
  return s;
}

void tsvc_board_publish(tsvc_board_t *b, tsvc_board_slot_t *slot, tsvc_snap_t *snap) {
  pthread_mutex_lock(&b->mu);
  tsvc_snap_t *old = slot->snap;
  slot->snap = snap;
  pthread_mutex_unlock(&b->mu);
  tsvc_snap_release(old);
}

void tsvc_board_remove(tsvc_board_t *b, tsvc_board_slot_t *slot) {
  pthread_mutex_lock(&b->mu);
  for (size_t k = 0; k < b->n; k++) {
    if (b->slots[k] != slot) continue;
    memmove(&b->slots[k], &b->slots[k + 1], (b->n - k - 1) * sizeof *b->slots);
    b->n--;
    break;
  }
  tsvc_index_remove(&b->index, slot);
  pthread_mutex_unlock(&b->mu);
  tsvc_snap_release(slot->snap);
  free(slot->name);
  free(slot);
}

void tsvc_board_set_live(tsvc_board_t *b, bool live) {
  pthread_mutex_lock(&b->mu);
  b->live = live;
  pthread_mutex_unlock(&b->mu);
}

void tsvc_board_note_lateness(tsvc_board_t *b, int64_t ms) {
  if (ms < 0) ms = 0;
  double s = (double)ms / 1000.0;
  size_t i = 0;
  while (i < TSVC_LATENCY_NBUCKETS - 1 && s > bounds_s[i]) i++;
  atomic_fetch_add_explicit(&b->late[i], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&b->late_sum_ms, (uint64_t)ms, memory_order_relaxed);
}

void tsvc_board_note_in_flight(tsvc_board_t *b, int delta) {
  atomic_fetch_add_explicit(&b->in_flight, delta, memory_order_relaxed);
}

/* ---- readers --------------------------------------------------------------- */

int tsvc_board_get(tsvc_board_t *b, const char *name, tsvc_snap_t **out) {
  *out = NULL;
  pthread_mutex_lock(&b->mu);
  int rc = TSVC_ENOTMONITORED;
  if (b->live) {
    tsvc_board_slot_t *s = find(b, name);
    rc = s && s->snap ? 0 : TSVC_ENOENT;
    if (!rc) *out = tsvc_snap_ref(s->snap);
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

int tsvc_board_get_status(tsvc_board_t *b, const char *name, tsvc_status_t *out) {
  memset(out, 0, sizeof *out);
  tsvc_snap_t *s;
  int rc = tsvc_board_get(b, name, &s);
  if (rc) return rc;
  rc = tsvc_snap_copy(s, true, out);
  tsvc_snap_release(s);
  return rc;
}

int tsvc_board_get_all(tsvc_board_t *b, tsvc_status_list_t *out) {
  out->v = NULL;
  out->n = 0;
  tsvc_snapshot_t *snap;
  int rc = tsvc_board_snapshot(b, &snap);
  if (rc) return rc;
  size_t n = tsvc_snapshot_count(snap);
  if (n && !(out->v = calloc(n, sizeof *out->v))) rc = TSVC_ENOMEM;
  for (size_t i = 0; !rc && i < n; i++) {
    rc = tsvc_snap_copy(tsvc_snapshot_snap(snap, i), true, &out->v[i]);
    if (!rc) out->n = i + 1;
  }
  tsvc_snapshot_release(snap);
  if (rc) tsvc_status_list_free(out);
  return rc;
}

bool tsvc_board_is_healthy(tsvc_board_t *b, const char *name) {
  tsvc_snap_t *s;
  if (tsvc_board_get(b, name, &s)) return false;
  bool ok = s->healthy;
  tsvc_snap_release(s);
  return ok;
}

void tsvc_board_stats(tsvc_board_t *b, tsvc_monitor_stats_t *out) {
  memset(out, 0, sizeof *out);
  uint64_t sum = 0;
  for (size_t i = 0; i < TSVC_LATENCY_NBUCKETS; i++) {
    sum += atomic_load_explicit(&b->late[i], memory_order_relaxed);
    out->lateness_buckets[i] = sum;
  }
  out->lateness_sum_s =
      (double)atomic_load_explicit(&b->late_sum_ms, memory_order_relaxed) / 1000.0;
  out->checks_in_flight = atomic_load_explicit(&b->in_flight, memory_order_relaxed);
}

static int board_view(tsvc_board_t *b, bool unpack, tsvc_snapshot_t **out) {
  *out = NULL;
  tsvc_snapshot_t *v = calloc(1, sizeof *v);
  if (!v) return TSVC_ENOMEM;
  /* The array is allocated outside the lock: take the count, allocate,
     and try again in the rare case that services were added meanwhile. */
  size_t want = 0;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    if (!b->live) {
      pthread_mutex_unlock(&b->mu);
      free(v->v);
      free(v);
      return TSVC_ENOTMONITORED;
    }
    if (b->n <= want && (want == 0 || v->v)) {
      for (size_t i = 0; i < b->n; i++)
        if (b->slots[i]->snap) v->v[v->n++] = tsvc_snap_ref(b->slots[i]->snap);
      pthread_mutex_unlock(&b->mu);
      break;
    }
    want = b->n + 16;
    pthread_mutex_unlock(&b->mu);
    free(v->v);
    if (!(v->v = malloc(want * sizeof *v->v))) {
      free(v);
      return TSVC_ENOMEM;
    }
  }
  if (unpack && v->n && !(v->st = malloc(v->n * sizeof *v->st))) {
    tsvc_snapshot_release(v);
    return TSVC_ENOMEM;
  }
  for (size_t i = 0; v->st && i < v->n; i++) tsvc_snap_status(v->v[i], &v->st[i]);
  tsvc_board_stats(b, &v->stats);
  *out = v;
  return 0;
}

int tsvc_board_snapshot(tsvc_board_t *b, tsvc_snapshot_t **out) {
  return board_view(b, true, out);
}

int tsvc_board_snapshot_packed(tsvc_board_t *b, tsvc_snapshot_t **out) {
  return board_view(b, false, out);
}

const tsvc_snap_t *tsvc_snapshot_snap(const tsvc_snapshot_t *s, size_t i) { return s->v[i]; }

void tsvc_snapshot_set_lag(tsvc_snapshot_t *s, double lag_s) { s->stats.loop_lag_s = lag_s; }

size_t tsvc_snapshot_count(const tsvc_snapshot_t *s) { return s ? s->n : 0; }

const tsvc_status_t *tsvc_snapshot_status(const tsvc_snapshot_t *s, size_t i) {
  return s->st ? &s->st[i] : NULL; /* NULL: a packed view */
}

const tsvc_monitor_stats_t *tsvc_snapshot_stats(const tsvc_snapshot_t *s) { return &s->stats; }

void tsvc_snapshot_release(tsvc_snapshot_t *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) tsvc_snap_release(s->v[i]);
  free(s->v);
  free(s->st);
  free(s);
}
