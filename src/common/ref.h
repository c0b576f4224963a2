/*
 * ref: a reference count to embed in an object that several owners share,
 * possibly on several threads (a config that the monitor, the runtime and
 * operations in flight still read after a reload replaced it; a status
 * snapshot that readers keep after the loop published the next one).
 *
 * The count is atomic: get and put are safe from any thread. The last put
 * calls the object's free function, on the thread that made it.
 */
#ifndef TSVC_REF_H
#define TSVC_REF_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct tsvc_ref_s {
  atomic_long n;
  void (*free)(struct tsvc_ref_s *r); /* frees the object holding r */
} tsvc_ref_t;

/* One reference, the caller's. */
static inline void tsvc_ref_init(tsvc_ref_t *r, void (*free_fn)(tsvc_ref_t *r)) {
  atomic_init(&r->n, 1);
  r->free = free_fn;
}

/* Another reference to r (NULL: none). Returns r. */
static inline tsvc_ref_t *tsvc_ref_get(tsvc_ref_t *r) {
  if (r) atomic_fetch_add_explicit(&r->n, 1, memory_order_relaxed);
  return r;
}

/* Drop a reference (NULL: none); the last one frees the object. */
static inline void tsvc_ref_put(tsvc_ref_t *r) {
  if (r && atomic_fetch_sub_explicit(&r->n, 1, memory_order_acq_rel) == 1) r->free(r);
}

#endif
