/* test_index: the name index of common/index.h (the monitor's, the
   board's and the process runtime's lookup), checked against a plain
   array of the same entries after every step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/index.h"
#include "common/util.h"
#include "testutil.h"
#include "tsvc.h"

typedef struct {
  int extra; /* the name is not the first member: key_off matters */
  char *name;
  int in;    /* whether the entry is in the index (the model) */
} ent_t;

#define KEY offsetof(ent_t, name)

static ent_t *ents_new(size_t n, const char *fmt) {
  ent_t *v = calloc(n, sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, i);
    v[i].name = strdup(buf);
    assert_non_null(v[i].name);
    v[i].extra = (int)i;
  }
  return v;
}

static void ents_free(ent_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i].name);
  free(v);
}

/* The index holds exactly the entries the model says, at most half full,
   and finds each by a copy of its name (not the same pointer). */
static void check(const tsvc_index_t *ix, ent_t *v, size_t n) {
  size_t in = 0;
  for (size_t i = 0; i < n; i++) {
    char copy[64];
    tsvc_strlcpy(copy, v[i].name, sizeof copy);
    void *got = tsvc_index_find(ix, copy);
    if (v[i].in) {
      in++;
      assert_ptr_equal(got, &v[i]);
    } else {
      assert_null(got);
    }
  }
  assert_int_equal(ix->n, in);
  assert_true(ix->cap == 0 || 2 * ix->n <= ix->cap);
}

static void empty_finds_nothing(void **st) {
  (void)st;
  tsvc_index_t ix;
  tsvc_index_init(&ix, KEY);
  assert_null(tsvc_index_find(&ix, "a"));
  ent_t a = {.name = "a"};
  assert_false(tsvc_index_remove(&ix, &a));
  assert_null(ix.slot); /* init allocates nothing */
  tsvc_index_free(&ix);
  tsvc_index_free(&ix); /* twice is fine: free leaves it empty */
}

static void put_find_remove(void **st) {
  (void)st;
  ent_t *v = ents_new(3, "svc-%zu");
  tsvc_index_t ix;
  tsvc_index_init(&ix, KEY);
  for (size_t i = 0; i < 3; i++) {
    assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
    v[i].in = 1;
  }
  check(&ix, v, 3);
  assert_int_equal(ix.cap, 16);
  /* A second entry of the same name is refused and changes nothing. */
  ent_t dup = {.name = v[1].name};
  assert_int_equal(tsvc_index_put(&ix, &dup), TSVC_EEXIST);
  check(&ix, v, 3);
  /* Removal is of that entry: another of the same name is not in it. */
  assert_false(tsvc_index_remove(&ix, &dup));
  check(&ix, v, 3);
  assert_true(tsvc_index_remove(&ix, &v[1]));
  v[1].in = 0;
  assert_false(tsvc_index_remove(&ix, &v[1]));
  check(&ix, v, 3);
  /* Back again after removal. */
  assert_int_equal(tsvc_index_put(&ix, &v[1]), 0);
  v[1].in = 1;
  check(&ix, v, 3);
  assert_null(tsvc_index_find(&ix, ""));
  assert_null(tsvc_index_find(&ix, "svc-"));
  assert_null(tsvc_index_find(&ix, "svc-10"));
  tsvc_index_free(&ix);
  ents_free(v, 3);
}

/* n names whose home is slot home of a 16-slot table, into v: found by
   their hash. */
static void colliding(ent_t *v, size_t n, size_t home) {
  static size_t next; /* names never repeat across calls */
  for (size_t k = 0; k < n; next++) {
    char buf[32];
    snprintf(buf, sizeof buf, "c%zu", next);
    if ((tsvc_str_hash(buf) & 15) != home) continue;
    v[k].name = strdup(buf);
    assert_non_null(v[k].name);
    k++;
  }
}

/* A run of five names at home 14 (slots 14, 15, 0, 1, 2: it wraps past the
   end of the table), two of home 1 pushed behind it (slots 3, 4) and one
   at its home 5 right after. Removing from the run must shift later
   entries back (or they would be lost behind an empty slot), across the
   end of the table, but leave the entry that sits at its home. */
static void collisions_and_removal(void **st) {
  (void)st;
  ent_t *v = calloc(8, sizeof *v);
  assert_non_null(v);
  colliding(v, 5, 14);
  colliding(v + 5, 2, 1);
  colliding(v + 7, 1, 5);
  tsvc_index_t ix;
  tsvc_index_init(&ix, KEY);
  for (size_t i = 0; i < 8; i++) {
    assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
    v[i].in = 1;
  }
  assert_int_equal(ix.cap, 16); /* 8 entries: no growth, the runs stand */
  size_t at[] = {14, 15, 0, 1, 2, 3, 4, 5};
  for (size_t i = 0; i < 8; i++) assert_ptr_equal(ix.slot[at[i]], &v[i]);
  check(&ix, v, 8);
  /* The run's first (every later entry moves, across the end), one past
     the end, then one of home 1: after each, all the others are found. */
  size_t order[] = {0, 3, 5};
  for (size_t k = 0; k < 3; k++) {
    assert_true(tsvc_index_remove(&ix, &v[order[k]]));
    v[order[k]].in = 0;
    check(&ix, v, 8);
  }
  /* Compact again, and the entry at its home did not move. */
  assert_ptr_equal(ix.slot[14], &v[1]);
  assert_ptr_equal(ix.slot[15], &v[2]);
  assert_ptr_equal(ix.slot[0], &v[4]);
  assert_ptr_equal(ix.slot[1], &v[6]);
  assert_null(ix.slot[2]);
  assert_ptr_equal(ix.slot[5], &v[7]);
  size_t used = 0;
  for (size_t i = 0; i < ix.cap; i++) used += ix.slot[i] != NULL;
  assert_int_equal(used, ix.n);
  tsvc_index_free(&ix);
  ents_free(v, 8);
}

/* Churn: the same few names added and removed 100,000 times. A table with
   tombstones fills with them and must rebuild; this one stays at 16
   slots, and every step is checked. Then grow from that churned table. */
static void churn_then_grow(void **st) {
  (void)st;
  enum { N = 64 };
  ent_t *v = ents_new(N, "churn-%zu");
  tsvc_index_t ix;
  tsvc_index_init(&ix, KEY);
  uint64_t r = 88172645463325252u; /* xorshift64: a fixed sequence */
  for (int step = 0; step < 100000; step++) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    size_t i = (size_t)(r % 12); /* 12 names, at most 8 in at once */
    if (v[i].in) {
      assert_true(tsvc_index_remove(&ix, &v[i]));
      v[i].in = 0;
    } else if (ix.n < 8) {
      assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
      v[i].in = 1;
    }
    if (step % 97 == 0) check(&ix, v, N);
  }
  check(&ix, v, N);
  assert_int_equal(ix.cap, 16);
  for (size_t i = 0; i < N; i++) {
    if (v[i].in) continue;
    assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
    v[i].in = 1;
    check(&ix, v, N);
  }
  assert_int_equal(ix.cap, 128);
  tsvc_index_free(&ix);
  ents_free(v, N);
}

/* reserve makes room ahead (then put cannot fail for lack of it);
   resized builds a copy and leaves the original as it was. */
static void reserve_and_resized(void **st) {
  (void)st;
  enum { N = 40 };
  ent_t *v = ents_new(N, "r%zu");
  tsvc_index_t ix;
  tsvc_index_init(&ix, KEY);
  assert_true(tsvc_index_fits(&ix, 0));
  assert_false(tsvc_index_fits(&ix, 1));
  assert_int_equal(tsvc_index_reserve(&ix, 9), 0);
  assert_int_equal(ix.cap, 32);
  assert_int_equal(tsvc_index_reserve(&ix, 16), 0);
  assert_int_equal(ix.cap, 32); /* fits already: unchanged */
  void **before = ix.slot;
  for (size_t i = 0; i < 16; i++) {
    assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
    v[i].in = 1;
  }
  assert_ptr_equal(ix.slot, before); /* no regrowth below the reservation */
  tsvc_index_t big;
  assert_int_equal(tsvc_index_resized(&ix, N, &big), 0);
  assert_int_equal(big.cap, 128);
  assert_ptr_equal(ix.slot, before);
  check(&ix, v, N);
  check(&big, v, N);
  /* Smaller than the count: sized for the count. */
  tsvc_index_t small;
  assert_int_equal(tsvc_index_resized(&ix, 1, &small), 0);
  assert_int_equal(small.cap, 32);
  check(&small, v, N);
  tsvc_index_free(&small);
  tsvc_index_free(&ix);
  for (size_t i = 16; i < N; i++) {
    assert_int_equal(tsvc_index_put(&big, &v[i]), 0);
    v[i].in = 1;
  }
  check(&big, v, N);
  tsvc_index_free(&big);
  ents_free(v, N);
}

/* 10,000 services: all found, none of 10,000 others, then every other one
   removed, the others added, and everything found where it should be. */
static void ten_thousand(void **st) {
  (void)st;
  enum { N = 10000 };
  ent_t *v = ents_new(2 * N, "service-%zu.example"); /* v[N...]: the others */
  tsvc_index_t ix;
  tsvc_index_init(&ix, KEY);
  for (size_t i = 0; i < N; i++) {
    assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
    v[i].in = 1;
  }
  assert_int_equal(ix.cap, 32768);
  check(&ix, v, 2 * N);
  for (size_t i = 0; i < N; i += 2) {
    assert_true(tsvc_index_remove(&ix, &v[i]));
    v[i].in = 0;
  }
  check(&ix, v, 2 * N);
  for (size_t i = N; i < 2 * N; i++) {
    assert_int_equal(tsvc_index_put(&ix, &v[i]), 0);
    v[i].in = 1;
  }
  check(&ix, v, 2 * N);
  assert_int_equal(ix.n, N + N / 2);
  tsvc_index_free(&ix);
  ents_free(v, 2 * N);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(empty_finds_nothing),     cmocka_unit_test(put_find_remove),
      cmocka_unit_test(collisions_and_removal), cmocka_unit_test(churn_then_grow),
      cmocka_unit_test(reserve_and_resized),    cmocka_unit_test(ten_thousand),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
