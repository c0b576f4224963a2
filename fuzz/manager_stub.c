/* manager_stub.c: see manager_stub.h. */
#include "manager_stub.h"

#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "common/util.h"
#include "config/config.h"
#include "manager/manager.h"
#include "monitor/board.h"

static stub_world_t *world;

void stub_set_world(stub_world_t *w) { world = w; }

tsvc_manager_t *stub_manager(void) {
  static char token;
  return (tsvc_manager_t *)(void *)&token;
}

static char *dup_or_die(const char *s) {
  char *d = strdup(s ? s : "");
  if (!d) abort();
  return d;
}

static void copy_status(const tsvc_status_t *from, tsvc_status_t *to) {
  *to = *from;
  to->name = dup_or_die(from->name);
  to->history = from->nhistory ? calloc(from->nhistory, sizeof *to->history) : NULL;
  if (from->nhistory && !to->history) abort();
  for (size_t i = 0; i < from->nhistory; i++) {
    to->history[i] = from->history[i];
    to->history[i].message = dup_or_die(from->history[i].message);
    to->history[i].output = from->history[i].output ? dup_or_die(from->history[i].output) : NULL;
  }
}

static tsvc_status_t *find(const char *name) {
  for (size_t i = 0; world && i < world->n; i++)
    if (strcmp(world->v[i].name, name) == 0) return &world->v[i];
  return NULL;
}

int tsvc_manager_get_status(tsvc_manager_t *m, const char *name, tsvc_status_t *out) {
  (void)m;
  memset(out, 0, sizeof *out);
  if (!world) return TSVC_EINVAL;
  if (world->err_status) return world->err_status;
  tsvc_status_t *s = find(name);
  if (!s) return TSVC_ENOENT;
  copy_status(s, out);
  return 0;
}

int tsvc_manager_get_all_status(tsvc_manager_t *m, tsvc_status_list_t *out) {
  (void)m;
  out->v = NULL;
  out->n = 0;
  if (!world) return TSVC_EINVAL;
  if (world->err_status) return world->err_status;
  if (!world->n) return 0;
  out->v = calloc(world->n, sizeof *out->v);
  if (!out->v) abort();
  for (size_t i = 0; i < world->n; i++) copy_status(&world->v[i], &out->v[i]);
  out->n = world->n;
  return 0;
}

/* The world's statuses as the loop publishes them: on a board of their
   own, snapshots with their histories (freed with the last reference). */
static int world_view(tsvc_manager_t *m, bool unpack, tsvc_snapshot_t **out) {
  (void)m;
  *out = NULL;
  if (!world) return TSVC_EINVAL;
  if (world->err_status) return world->err_status;
  tsvc_board_t *b;
  if (tsvc_board_new(&b)) abort();
  tsvc_board_set_live(b, true);
  for (size_t i = 0; i < world->n; i++) {
    const tsvc_status_t *st = &world->v[i];
    tsvc_hist_t h = {0}; /* the first 4 records at most, as the loop keeps them */
    for (size_t k = 0; k < st->nhistory && k < 4; k++)
      if (tsvc_hist_push(&h, 4, &st->history[k])) abort();
    tsvc_board_slot_t *slot = tsvc_board_add(b, st->name);
    tsvc_snap_t *snap = tsvc_snap_new(st, &h);
    tsvc_hist_clear(&h);
    if (!slot || !snap) abort();
    tsvc_board_publish(b, slot, snap);
  }
  int rc = unpack ? tsvc_board_snapshot(b, out) : tsvc_board_snapshot_packed(b, out);
  tsvc_board_free(b);
  if (!rc) tsvc_snapshot_set_lag(*out, (double)tsvc_manager_loop_lag_ms(m) / 1000.0);
  return rc;
}

int tsvc_manager_snapshot(tsvc_manager_t *m, tsvc_snapshot_t **out) {
  return world_view(m, true, out);
}

/* As the manager's: /metrics streams from a packed view. */
int tsvc_manager_snapshot_packed(tsvc_manager_t *m, tsvc_snapshot_t **out) {
  return world_view(m, false, out);
}

void tsvc_manager_monitor_stats(tsvc_manager_t *m, tsvc_monitor_stats_t *out) {
  memset(out, 0, sizeof *out);
  out->loop_lag_s = (double)tsvc_manager_loop_lag_ms(m) / 1000.0;
}

/* As the manager's: how late the 100 ms heartbeat is. */
int64_t tsvc_manager_loop_lag_ms(tsvc_manager_t *m) {
  (void)m;
  if (!world) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  int64_t late = now - world->heartbeat_ms - 100;
  return late > 0 ? late : 0;
}

const char *tsvc_manager_runtime_name(tsvc_manager_t *m) {
  (void)m;
  return world && world->runtime ? world->runtime : "";
}

int64_t tsvc_manager_loop_heartbeat(tsvc_manager_t *m) {
  (void)m;
  return world ? world->heartbeat_ms : 0;
}

/* What an operation answers: the world's error and message. */
static int act(const char *name, char *err, size_t errlen) {
  if (!world) return TSVC_EINVAL;
  if (name && !find(name) && !world->err_action) return TSVC_ENOENT;
  if (err && errlen) tsvc_strlcpy(err, world->err_text ? world->err_text : "", errlen);
  return world->err_action;
}

int tsvc_manager_start(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  (void)m;
  return act(name, err, errlen);
}

int tsvc_manager_stop(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  (void)m;
  return act(name, err, errlen);
}

int tsvc_manager_restart(tsvc_manager_t *m, const char *name, char *err, size_t errlen) {
  (void)m;
  return act(name, err, errlen);
}

int tsvc_manager_check(tsvc_manager_t *m, const char *name, tsvc_check_record_t *out,
                       char *err, size_t errlen) {
  (void)m;
  if (out) memset(out, 0, sizeof *out);
  int rc = act(name, err, errlen);
  if (world) world->checks_asked++;
  tsvc_status_t *s = find(name);
  if (rc || !s) return rc;
  /* The check asked for ends: the status shows one more, and its verdict
     is the last record of the history (or a plain "ok"). */
  s->checks_total++;
  if (out) {
    const tsvc_check_record_t *last = s->nhistory ? &s->history[s->nhistory - 1] : NULL;
    *out = last ? *last : (tsvc_check_record_t){.result = TSVC_RESULT_OK, .exit_code = -1};
    out->message = dup_or_die(last ? last->message : "ok");
    out->output = last && last->output ? dup_or_die(last->output) : NULL;
    out->probe_address =
        last && last->probe_address ? dup_or_die(last->probe_address) : NULL;
  }
  return 0;
}

int tsvc_manager_stop_services(tsvc_manager_t *m, char *err, size_t errlen) {
  (void)m;
  return act(NULL, err, errlen);
}

int tsvc_manager_reload(tsvc_manager_t *m, char *err, size_t errlen) {
  (void)m;
  return act(NULL, err, errlen);
}

int tsvc_manager_subscribe(tsvc_manager_t *m, tsvc_change_cb cb, void *data) {
  (void)m;
  (void)cb;
  (void)data;
  return 1;
}

void tsvc_manager_unsubscribe(tsvc_manager_t *m, int id) {
  (void)m;
  (void)id;
}

/* GET /v1/env: no config in the fuzzed world, so no service has connection
   variables; the reply is the empty lists (or the world's error). */
int tsvc_manager_connection_info(tsvc_manager_t *m, tsvc_view_t view, tsvc_conn_list_t *out) {
  (void)m;
  memset(out, 0, sizeof *out);
  out->view = view;
  if (!world) return TSVC_EINVAL;
  return world->err_status;
}

/* GET /metrics: no hook ever ran in the fuzzed world. */
void tsvc_manager_hook_totals(tsvc_manager_t *m, tsvc_hook_totals_t *out) {
  (void)m;
  memset(out, 0, sizeof *out);
}
