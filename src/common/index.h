/*
 * index: a hash table of entries by name, for finding a service in O(1)
 * among thousands (the monitor's services, the board's slots, the process
 * runtime's entries all name services).
 *
 * An entry is any struct with a `char *` (or `const char *`) member that
 * holds its name; the index stores pointers to entries and reads the name
 * through the member's offset, so it holds no copy of any name and costs
 * one pointer a slot. Open addressing with linear probing on
 * tsvc_str_hash; the table is a power of two of at least 16 slots, at
 * most half full; removal shifts the entries after it back (no
 * tombstones), so a table that churns never fills up with dead slots.
 *
 * Ownership: the index owns its slot array only, never the entries; an
 * entry's name must stay unchanged and alive while the entry is in it.
 * Not thread-safe: a writer that shares the index with readers guards it
 * itself (the board swaps in a table grown by tsvc_index_resized under its
 * lock).
 */
#ifndef TSVC_INDEX_H
#define TSVC_INDEX_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
  void **slot;    /* cap slots, NULL empty; NULL while cap is 0 */
  size_t cap;     /* 0, or a power of two >= 16 and >= 2 * n */
  size_t n;       /* entries */
  size_t key_off; /* offsetof the entry's name member */
} tsvc_index_t;

/* An empty index of entries whose name is the char * member at key_off
   (offsetof(type, name)). Allocates nothing. */
void tsvc_index_init(tsvc_index_t *ix, size_t key_off);
/* Free the slot array (not the entries); ix is empty again and may be
   reused. */
void tsvc_index_free(tsvc_index_t *ix);

/* The entry named key, or NULL. */
void *tsvc_index_find(const tsvc_index_t *ix, const char *key);

/* Room for n entries in all, so that adding up to n - count entries
   cannot fail. 0 or TSVC_ENOMEM (ix unchanged). */
int tsvc_index_reserve(tsvc_index_t *ix, size_t n);
/* Whether ix has room for n entries in all without growing. */
bool tsvc_index_fits(const tsvc_index_t *ix, size_t n);
/* A new table in *out holding ix's entries with room for n in all (at
   least ix's count); ix itself is only read, so readers of ix under
   another thread's lock may go on while it is built. 0 or TSVC_ENOMEM
   (*out untouched). */
int tsvc_index_resized(const tsvc_index_t *ix, size_t n, tsvc_index_t *out);

/* Add entry (its name must not be in ix: 0 and TSVC_EEXIST are the
   answers; nothing is added then), growing when full: TSVC_ENOMEM (ix
   unchanged). After tsvc_index_reserve(ix, count + 1) only TSVC_EEXIST
   can fail it. */
int tsvc_index_put(tsvc_index_t *ix, void *entry);
/* Remove entry (this pointer, found by its name). Returns whether it was
   in ix. The table never shrinks. */
bool tsvc_index_remove(tsvc_index_t *ix, const void *entry);

#endif /* TSVC_INDEX_H */
