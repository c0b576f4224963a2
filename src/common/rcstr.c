/* rcstr.c: see rcstr.h. */
#include "common/rcstr.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  atomic_int refs;
  char s[];
} rcstr_t;

static rcstr_t *head(char *s) { return (rcstr_t *)(void *)(s - offsetof(rcstr_t, s)); }

char *tsvc_rcstr_new(const char *s) {
  size_t n = strlen(s) + 1;
  rcstr_t *r = malloc(sizeof *r + n);
  if (!r) return NULL;
  atomic_init(&r->refs, 1);
  memcpy(r->s, s, n);
  return r->s;
}

char *tsvc_rcstr_ref(char *s) {
  if (s) atomic_fetch_add_explicit(&head(s)->refs, 1, memory_order_relaxed);
  return s;
}

void tsvc_rcstr_unref(char *s) {
  if (!s) return;
  rcstr_t *r = head(s);
  if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1) free(r);
}
