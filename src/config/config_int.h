/*
 * config_int.h: what the files of the config module share and nobody else
 * uses: the YAML node tree, diagnostics helpers, secret masking.
 *
 * Ownership: a ytree_t owns every node, string and array it holds; nodes
 * are freed all at once by ytree_free() (an alias is a second pointer to
 * an anchored node, so the tree is a DAG and nodes are kept in one list).
 */
#ifndef TSVC_CONFIG_INT_H
#define TSVC_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/util.h"
#include "config/config.h"

/* ---- diagnostics (diag.c) ---- */

typedef enum { DIAG_ERROR, DIAG_WARNING } diag_sev_t;

/* Most diagnostics kept for one file; one more line says the rest were
 * dropped. Counts go on. */
#define DIAG_MAX_LINES 200

/*
 * Append "FILE:LINE:COLUMN: error: MESSAGE" to d (line and column 1-based;
 * line 0 leaves both out: "FILE: error: MESSAGE"). Returns 0 or TSVC_ENOMEM.
 */
int diag_add(tsvc_diag_t *d, const char *file, int line, int col, diag_sev_t sev,
             const char *fmt, ...) TSVC_PRINTF(6, 7);

/* Edit distance (with swaps of neighbours), ignoring case; cap + 1 when
 * it is more than cap. Words longer than 64 bytes are never near. */
size_t edit_distance(const char *a, const char *b, size_t cap);

/* The candidate nearest to word (NULL-terminated list), or NULL when none
 * is near enough to be a plausible misspelling. */
const char *did_you_mean(const char *word, const char *const *candidates);

/* ---- YAML tree (ytree.c) ---- */

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } ynode_kind_t;

typedef struct ynode ynode_t;

typedef struct {
  ynode_t *key;
  ynode_t *value;
} ypair_t;

struct ynode {
  ynode_kind_t kind;
  int line, col;   /* 1-based start of the node */
  /* scalar */
  char *text;      /* NUL-terminated */
  size_t len;
  bool plain;      /* unquoted (a plain scalar): may be a number/bool/null */
  /* sequence */
  ynode_t **items;
  size_t nitems;
  /* mapping */
  ypair_t *pairs;
  size_t npairs;
  ynode_t *next_alloc; /* every node of the tree, for ytree_free */
};

typedef struct {
  ynode_t *root;   /* NULL for an empty stream */
  ynode_t *nodes;  /* list of all nodes */
} ytree_t;

/* Deepest nesting of collections accepted. */
#define YTREE_MAX_DEPTH 128

/*
 * Parse text into t. Syntax errors (with libyaml's problem mark), aliases
 * to unknown anchors, several documents and nesting deeper than
 * YTREE_MAX_DEPTH are reported into d. Returns 0, TSVC_ECONFIG after a
 * reported error, or TSVC_ENOMEM. t is always valid for ytree_free().
 */
int ytree_parse(ytree_t *t, const char *file, const char *text, size_t len,
                tsvc_diag_t *d);
void ytree_free(ytree_t *t);

/* A plain null scalar: "", "~", "null". */
bool ynode_is_null(const ynode_t *n);
/* The value of key in mapping n, or NULL. The first one wins, as in the
 * loader (a duplicate key is an error). */
const ynode_t *ynode_get(const ynode_t *map, const char *key);
/* "a mapping", "a list", "a string", ... for messages. */
const char *ynode_kind_name(const ynode_t *n);

/* ---- secrets (secret.c) ---- */

#define TSVC_MASK "********"

/* A copy of the value of an environment variable named key, masked when
 * key is secret, or when it holds a URL with a password. Caller frees. */
char *mask_env_value(const char *key, const char *value);

/* A copy of argv with passwords replaced by the mask: the word after -a,
 * --pass, --password, --requirepass, --masterauth; the value of --pass=...,
 * of SECRET_KEY=...; the password of a URL user:password@. When shell is
 * true, or an element holds spaces (sh -c "..."), the element is a shell
 * string and is masked word by word. The result
 * has n elements; free with strv_free_raw(). NULL on out of memory. */
char **mask_argv(char *const *argv, size_t n, bool shell);
void strv_free_raw(char **v, size_t n);

#endif /* TSVC_CONFIG_INT_H */
