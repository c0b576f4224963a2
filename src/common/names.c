/* names.c: text for the shared enums of tsvc.h, generated from their maps. */
#include "tsvc.h"

const char *tsvc_strerror(int err) {
  switch (err) {
#define X(name, value, msg) \
  case TSVC_##name:         \
    return msg;
    TSVC_ERRNO_MAP(X)
#undef X
  }
  return "unknown error";
}

const char *tsvc_err_name(int err) {
  switch (err) {
#define X(name, value, msg) \
  case TSVC_##name:         \
    return #name;
    TSVC_ERRNO_MAP(X)
#undef X
  }
  return "EUNKNOWN";
}

const char *tsvc_state_name(tsvc_state_t s) {
  static const char *const names[] = {
#define X(name, text) text,
      TSVC_STATE_MAP(X)
#undef X
  };
  if ((unsigned)s >= TSVC_STATE__COUNT) return "invalid";
  return names[s];
}

const char *tsvc_result_name(tsvc_result_t r) {
  static const char *const names[] = {
#define X(name, text) text,
      TSVC_RESULT_MAP(X)
#undef X
  };
  if ((unsigned)r >= TSVC_RESULT__COUNT) return "invalid";
  return names[r];
}

#include <stdlib.h>
#include <string.h>

void tsvc_status_clear(tsvc_status_t *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nhistory; i++) {
    free(s->history[i].message);
    free(s->history[i].output);
  }
  free(s->history);
  free(s->name);
  free(s->waiting_for);
  memset(s, 0, sizeof *s);
}

void tsvc_status_list_free(tsvc_status_list_t *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) tsvc_status_clear(&l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}
