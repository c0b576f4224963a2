/* index.c: see index.h. */
#include "common/index.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "tsvc.h"

static const char *key_of(const tsvc_index_t *ix, const void *entry) {
  return *(char *const *)((const char *)entry + ix->key_off);
}

/* The slots a table for n entries has: at least 16 and twice n. */
static size_t cap_for(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap *= 2;
  return cap;
}

/* Where entry goes in slot (cap slots): its home, or the first free slot
   after it. The table is never full, so the walk ends. */
static void place(void **slot, size_t cap, const char *key, void *entry) {
  size_t mask = cap - 1;
  size_t i = tsvc_str_hash(key) & mask;
  while (slot[i]) i = (i + 1) & mask;
  slot[i] = entry;
}

void tsvc_index_init(tsvc_index_t *ix, size_t key_off) {
  ix->slot = NULL;
  ix->cap = ix->n = 0;
  ix->key_off = key_off;
}

void tsvc_index_free(tsvc_index_t *ix) {
  free(ix->slot);
  ix->slot = NULL;
  ix->cap = ix->n = 0;
}

void *tsvc_index_find(const tsvc_index_t *ix, const char *key) {
  if (!ix->cap) return NULL;
  size_t mask = ix->cap - 1;
  for (size_t i = tsvc_str_hash(key) & mask;; i = (i + 1) & mask) {
    void *e = ix->slot[i];
    if (!e) return NULL;
    if (strcmp(key_of(ix, e), key) == 0) return e;
  }
}

bool tsvc_index_fits(const tsvc_index_t *ix, size_t n) { return 2 * n <= ix->cap; }

int tsvc_index_resized(const tsvc_index_t *ix, size_t n, tsvc_index_t *out) {
  size_t cap = cap_for(n > ix->n ? n : ix->n);
  void **slot = calloc(cap, sizeof *slot);
  if (!slot) return TSVC_ENOMEM;
  for (size_t i = 0; i < ix->cap; i++)
    if (ix->slot[i]) place(slot, cap, key_of(ix, ix->slot[i]), ix->slot[i]);
  out->slot = slot;
  out->cap = cap;
  out->n = ix->n;
  out->key_off = ix->key_off;
  return 0;
}

int tsvc_index_reserve(tsvc_index_t *ix, size_t n) {
  if (tsvc_index_fits(ix, n)) return 0;
  tsvc_index_t grown;
  int rc = tsvc_index_resized(ix, n, &grown);
  if (rc) return rc;
  free(ix->slot);
  *ix = grown;
  return 0;
}

int tsvc_index_put(tsvc_index_t *ix, void *entry) {
  const char *key = key_of(ix, entry);
  uint64_t h = tsvc_str_hash(key);
  size_t i = 0;
  /* One walk: past every entry of the run (refusing the name if it is
     there) to the first free slot, where the entry goes unless the table
     must grow first. */
  if (ix->cap) {
    size_t mask = ix->cap - 1;
    for (i = h & mask; ix->slot[i]; i = (i + 1) & mask)
      if (strcmp(key_of(ix, ix->slot[i]), key) == 0) return TSVC_EEXIST;
  }
  if (!tsvc_index_fits(ix, ix->n + 1)) {
    int rc = tsvc_index_reserve(ix, ix->n + 1);
    if (rc) return rc;
    size_t mask = ix->cap - 1;
    for (i = h & mask; ix->slot[i];) i = (i + 1) & mask;
  }
  ix->slot[i] = entry;
  ix->n++;
  return 0;
}

/* Backward shift (Knuth's algorithm R for linear probing): after emptying
   a slot, move back each later entry of the run whose home does not lie
   cyclically in (hole, its slot], so that every entry stays reachable
   from its home without crossing an empty slot. */
bool tsvc_index_remove(tsvc_index_t *ix, const void *entry) {
  if (!ix->cap) return false;
  size_t mask = ix->cap - 1;
  size_t i = tsvc_str_hash(key_of(ix, entry)) & mask;
  for (; ix->slot[i] != entry; i = (i + 1) & mask)
    if (!ix->slot[i]) return false;
  size_t hole = i;
  for (size_t j = (i + 1) & mask; ix->slot[j]; j = (j + 1) & mask) {
    size_t home = tsvc_str_hash(key_of(ix, ix->slot[j])) & mask;
    /* Distances from home to j and from the hole to j, cyclically: the
       entry may move to the hole when its home is not after the hole. */
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      ix->slot[hole] = ix->slot[j];
      hole = j;
    }
  }
  ix->slot[hole] = NULL;
  ix->n--;
  return true;
}
