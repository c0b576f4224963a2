/*
 * board: where the monitor publishes what it knows, for every other thread
 * (docs/design.md, "Threads and ownership").
 *
 * The loop thread is the only writer. For each service it publishes an
 * immutable snapshot (tsvc_snap_t): the status fields, and the check
 * history as a range of records in a shared block that the loop appends
 * to and never rewrites (tsvc_hist_t below). A new snapshot replaces the
 * old one by pointer. Readers, on any thread, take
 * references under the board's lock, which guards pointers only: nothing
 * is copied under it, and the loop holds it just long enough to swap one
 * pointer. A reader keeps what it took for as long as it likes; the last
 * reference frees it, on whichever thread drops it.
 *
 * The monitor's figures about itself (lateness of checks, checks in
 * flight) are atomic counters the loop adds to and readers load.
 *
 * Ownership: the board owns its slots and its reference to each slot's
 * snapshot; snapshots own a reference to the block their history is in,
 * and the loop's tsvc_hist_t one to the block it writes; blocks hold their
 * records by value and a reference to each run of them (board.c run_t),
 * which holds a reference to its strings.
 * tsvc_board_free() is for when no thread reads the board any more
 * (snapshots taken from it stay valid).
 */
#ifndef TSVC_BOARD_H
#define TSVC_BOARD_H

#include <stdbool.h>
#include <stddef.h>

#include "tsvc.h"

typedef struct tsvc_board_s tsvc_board_t;
typedef struct tsvc_board_slot_s tsvc_board_slot_t;
typedef struct tsvc_snap_s tsvc_snap_t;

int tsvc_board_new(tsvc_board_t **out);
void tsvc_board_free(tsvc_board_t *b);

/* ---- the loop's side ---------------------------------------------------- */

/* A service's check history, the loop's (issue 13: a new array of the
   last `history` records a check was ~900 instructions and ~11 cache
   misses of a held check). Records go into a block (board.c) once, at its
   end, and are never rewritten there; the history is the block's records
   [lo, n), at most the cap given with the newest. A snapshot takes a
   reference to the block and the range as it is then, so the loop goes on
   appending past it while readers keep what they took. A full block (room
   for a few records more than cap: board.c blk_room) is followed by a new
   one that starts with copies of the newest cap - 1 records, and a block
   holds one reference to each run of records with the same result, exit
   code and strings (board.c run_t; a record in a block is 32 bytes): a
   copy of the history every few checks instead of every check, and about
   one reference count a check instead of 3 x cap. Zeroed ({0}) is empty;
   the fields are board.c's. */
typedef struct tsvc_hist_s {
  struct tsvc_hist_blk_s *blk; /* the loop's reference; NULL: empty */
  size_t lo;                   /* the oldest record's index in blk */
} tsvc_hist_t;

/* Append r, keeping at most cap (>= 1; less is 1) records. r's message
   (NULL is kept as "") and output are shared with the newest record's
   when they are the same (a service's history mostly repeats one message:
   one copy for all of them), else copied; r's probe_address, NULL or an
   rcstr (common/rcstr.h), is shared: the history takes a reference of its
   own. 0, or TSVC_ENOMEM with h as it was (the history goes on without
   r). */
int tsvc_hist_push(tsvc_hist_t *h, size_t cap, const tsvc_check_record_t *r);
/* The newest record's message (owned by h, valid until its next push or
   clear), or NULL (empty). */
const char *tsvc_hist_last_message(const tsvc_hist_t *h);
/* Records in h. */
size_t tsvc_hist_len(const tsvc_hist_t *h);
/* Empty h (snapshots keep what they took). */
void tsvc_hist_clear(tsvc_hist_t *h);

/* A snapshot of st (its name and scalar fields; st->history is ignored)
   with hist's records as they are now (may be NULL: none; a reference to
   their block is taken). NULL when out of memory. */
tsvc_snap_t *tsvc_snap_new(const tsvc_status_t *st, const tsvc_hist_t *hist);

/* The text fields of tsvc_status_t, in its order, for tsvc_snap_new_texts. */
enum {
  TSVC_SNAP_PROBE,
  TSVC_SNAP_PROBE_VIA,
  TSVC_SNAP_PROBE_ADDRESS,
  TSVC_SNAP_CONTAINER_ID,
  TSVC_SNAP_CONTAINER_NAME,
  TSVC_SNAP_LAST_ERROR,
  TSVC_SNAP_SESSION_ERROR,
  TSVC_SNAP_NTEXTS
};

/* As tsvc_snap_new, with the text fields given as strings (tx[i], NULL:
   "", cut as a copy into the field would cut it) instead of st's, which
   are not read; st's other bytes are (tsvc_status_zero_fixed clears them).
   The publisher's way: no status of 1.3 KB zeroed and filled a check. */
tsvc_snap_t *tsvc_snap_new_texts(const tsvc_status_t *st, const char *const tx[TSVC_SNAP_NTEXTS],
                                 const tsvc_hist_t *hist);

/* Zero the bytes of *st outside its text fields (which are left as they
   are), for tsvc_snap_new_texts. */
void tsvc_status_zero_fixed(tsvc_status_t *st);

/* A slot for a service, last in the order. NULL when out of memory. */
tsvc_board_slot_t *tsvc_board_add(tsvc_board_t *b, const char *name);
/* Publish snap in slot: the board takes over the caller's reference, and
   the snapshot it replaces is released (outside the lock). */
void tsvc_board_publish(tsvc_board_t *b, tsvc_board_slot_t *slot, tsvc_snap_t *snap);
/* Remove and free a slot (readers keep what they took). */
void tsvc_board_remove(tsvc_board_t *b, tsvc_board_slot_t *slot);
/* Whether services are being monitored: readers get TSVC_ENOTMONITORED
   while not. */
void tsvc_board_set_live(tsvc_board_t *b, bool live);

/* The monitor's figures: a check started lateness_ms late; checks in
   flight changed by delta. */
void tsvc_board_note_lateness(tsvc_board_t *b, int64_t lateness_ms);
void tsvc_board_note_in_flight(tsvc_board_t *b, int delta);

/* ---- readers, on any thread ------------------------------------------- */

/* A reference to the service's snapshot: 0, TSVC_ENOENT, or
   TSVC_ENOTMONITORED. */
int tsvc_board_get(tsvc_board_t *b, const char *name, tsvc_snap_t **out);
/* A copy of the service's status with its history (tsvc_snap_copy), the
   caller's (tsvc_status_clear): 0, TSVC_ENOENT, TSVC_ENOTMONITORED or
   TSVC_ENOMEM; *out is zeroed on every error. */
int tsvc_board_get_status(tsvc_board_t *b, const char *name, tsvc_status_t *out);
/* Copies of every service's status with history, in the order added, the
   caller's (tsvc_status_list_free): 0, TSVC_ENOTMONITORED or TSVC_ENOMEM;
   *out is empty on every error. */
int tsvc_board_get_all(tsvc_board_t *b, tsvc_status_list_t *out);
/* Every service: 0, TSVC_ENOTMONITORED or TSVC_ENOMEM. The stats' loop lag
   is 0 (the board does not know it). */
int tsvc_board_snapshot(tsvc_board_t *b, tsvc_snapshot_t **out);
/* The same view without its statuses unpacked (1.3 KB a service: 13 MB at
   10,000): for a reader that goes through the services one at a time
   (tsvc_snapshot_snap + tsvc_snap_status into its own tsvc_status_t, as the
   /metrics stream does). tsvc_snapshot_status() returns NULL on it. */
int tsvc_board_snapshot_packed(tsvc_board_t *b, tsvc_snapshot_t **out);
/* True when the service exists and is healthy. */
bool tsvc_board_is_healthy(tsvc_board_t *b, const char *name);
/* The monitor's figures now. */
void tsvc_board_stats(tsvc_board_t *b, tsvc_monitor_stats_t *out);

/* A snapshot's status into *out (no history; out->name and
   out->waiting_for point into the snapshot: valid while it is held). The
   snapshot keeps it packed, so this is a copy (1.3 KB), not a pointer. */
void tsvc_snap_status(const tsvc_snap_t *s, tsvc_status_t *out);
/* A copy the caller owns (tsvc_status_clear): 0 or TSVC_ENOMEM. */
int tsvc_snap_copy(const tsvc_snap_t *s, bool with_history, tsvc_status_t *out);
tsvc_snap_t *tsvc_snap_ref(tsvc_snap_t *s);
void tsvc_snap_release(tsvc_snap_t *s);

/* The i-th service's snapshot in a view (with its history). */
const tsvc_snap_t *tsvc_snapshot_snap(const tsvc_snapshot_t *s, size_t i);
/* For the manager: its loop lag in a snapshot it hands out. */
void tsvc_snapshot_set_lag(tsvc_snapshot_t *s, double lag_s);

#endif /* TSVC_BOARD_H */
