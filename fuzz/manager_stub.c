/* manager_stub.c: see manager_stub.h. */
#include "manager_stub.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "config/config.h"
#include "manager/manager.h"

static stub_world_t *world;
static tsvc_config_t *empty_config;

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

int tsvc_manager_check(tsvc_manager_t *m, const char *name) {
  (void)m;
  int rc = act(name, NULL, 0);
  tsvc_status_t *s = find(name);
  /* A check that was started (or was already in flight) ends: the status
     shows one more check, which is what the API waits for. */
  if (s && (rc == 0 || rc == TSVC_EBUSY)) s->checks_total++;
  world->checks_asked++;
  return rc;
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

/* A config with no services, as a manager always has one. */
const tsvc_config_t *tsvc_manager_config(tsvc_manager_t *m) {
  (void)m;
  if (!empty_config) {
    static const char text[] = "services: {}\n";
    tsvc_diag_t d = {0};
    if (tsvc_config_load_string("stub.yaml", text, sizeof text - 1, &empty_config, &d)) abort();
    tsvc_diag_free(&d);
  }
  return empty_config;
}
