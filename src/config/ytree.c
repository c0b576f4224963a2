/*
 * ytree.c: a small YAML node tree built from libyaml's events, with the
 * 1-based line and column of every node.
 *
 * Why not libyaml's document API: we want our own messages for aliases,
 * a bound on nesting, and nodes that remember whether a scalar was quoted.
 *
 * Anchors and aliases are supported: an alias is a second pointer to the
 * anchored node. An anchor is registered only once its node is complete, so
 * an alias inside its own anchor (a recursive structure) is an error and the
 * tree is always acyclic. Nodes are shared, never copied, so a "billion
 * laughs" file costs no memory.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config_int.h"
#include "tsvc.h"

#define MAX_ANCHORS 4096

typedef struct {
  ynode_t *node;
  size_t cap;      /* of items or pairs */
  char *anchor;    /* registered when the node ends */
  ynode_t *key;    /* mapping: key waiting for its value */
} frame_t;

typedef struct {
  char *name;
  ynode_t *node;
} anchor_t;

typedef struct {
  ytree_t *t;
  const char *file;
  tsvc_diag_t *d;
  frame_t stack[YTREE_MAX_DEPTH];
  size_t depth;
  anchor_t *anchors;
  size_t nanchors;
  int ndocs;
  int rc;
} builder_t;

static ynode_t *new_node(builder_t *b, ynode_kind_t kind, const yaml_mark_t *m) {
  ynode_t *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = kind;
  n->line = (int)m->line + 1;
  n->col = (int)m->column + 1;
  n->next_alloc = b->t->nodes;
  b->t->nodes = n;
  return n;
}

static void error_at(builder_t *b, int line, int col, const char *fmt, ...) TSVC_PRINTF(4, 5);
static void error_at(builder_t *b, int line, int col, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (diag_add(b->d, b->file, line, col, DIAG_ERROR, "%s", msg)) b->rc = TSVC_ENOMEM;
  else if (!b->rc) b->rc = TSVC_ECONFIG;
}

/* Attach a finished node to its parent (or make it the root). */
static int attach(builder_t *b, ynode_t *n) {
  if (b->depth == 0) {
    b->t->root = n;
    return 0;
  }
  frame_t *f = &b->stack[b->depth - 1];
  ynode_t *p = f->node;
  if (p->kind == YN_SEQ) {
    if (p->nitems == f->cap) {
      size_t cap = f->cap ? f->cap * 2 : 8;
      ynode_t **v = realloc(p->items, cap * sizeof *v);
      if (!v) return TSVC_ENOMEM;
      p->items = v;
      f->cap = cap;
    }
    p->items[p->nitems++] = n;
    return 0;
  }
  if (!f->key) {
    f->key = n;
    return 0;
  }
  if (p->npairs == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    ypair_t *v = realloc(p->pairs, cap * sizeof *v);
    if (!v) return TSVC_ENOMEM;
    p->pairs = v;
    f->cap = cap;
  }
  p->pairs[p->npairs].key = f->key;
  p->pairs[p->npairs].value = n;
  p->npairs++;
  f->key = NULL;
  return 0;
}

static int add_anchor(builder_t *b, const char *name, ynode_t *n) {
  if (!name) return 0;
  if (b->nanchors == MAX_ANCHORS) {
    error_at(b, n->line, n->col, "too many YAML anchors (at most %d)", MAX_ANCHORS);
    return b->rc;
  }
  if (b->nanchors % 16 == 0) {
    anchor_t *v = realloc(b->anchors, (b->nanchors + 16) * sizeof *v);
    if (!v) return TSVC_ENOMEM;
    b->anchors = v;
  }
  char *copy = tsvc_strdup(name);
  if (!copy) return TSVC_ENOMEM;
  b->anchors[b->nanchors].name = copy;
  b->anchors[b->nanchors].node = n;
  b->nanchors++;
  return 0;
}

static ynode_t *find_anchor(builder_t *b, const char *name) {
  /* The latest definition of a name wins, as YAML says. */
  for (size_t i = b->nanchors; i > 0; i--)
    if (strcmp(b->anchors[i - 1].name, name) == 0) return b->anchors[i - 1].node;
  return NULL;
}

static int on_event(builder_t *b, yaml_event_t *ev) {
  int rc;
  switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
      if (++b->ndocs > 1) {
        error_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                 "only one YAML document is allowed in a config file");
        return b->rc;
      }
      return 0;
    case YAML_SCALAR_EVENT: {
      ynode_t *n = new_node(b, YN_SCALAR, &ev->start_mark);
      if (!n) return TSVC_ENOMEM;
      n->text = tsvc_strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
      if (!n->text) return TSVC_ENOMEM;
      n->len = strlen(n->text);
      n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                 !(ev->data.scalar.tag &&
                   strcmp((const char *)ev->data.scalar.tag, YAML_STR_TAG) == 0);
      if ((rc = attach(b, n))) return rc;
      return add_anchor(b, (const char *)ev->data.scalar.anchor, n);
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
      bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
      if (b->depth == YTREE_MAX_DEPTH) {
        error_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                 "YAML nesting is deeper than %d levels", YTREE_MAX_DEPTH);
        return b->rc;
      }
      ynode_t *n = new_node(b, seq ? YN_SEQ : YN_MAP, &ev->start_mark);
      if (!n) return TSVC_ENOMEM;
      frame_t *f = &b->stack[b->depth++];
      memset(f, 0, sizeof *f);
      f->node = n;
      const yaml_char_t *a = seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
      if (a && !(f->anchor = tsvc_strdup((const char *)a))) return TSVC_ENOMEM;
      return 0;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
      frame_t *f = &b->stack[--b->depth];
      ynode_t *n = f->node;
      char *anchor = f->anchor;
      f->anchor = NULL;
      rc = attach(b, n);
      if (!rc) rc = add_anchor(b, anchor, n);
      free(anchor);
      return rc;
    }
    case YAML_ALIAS_EVENT: {
      const char *name = (const char *)ev->data.alias.anchor;
      ynode_t *n = find_anchor(b, name);
      if (!n) {
        error_at(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                 "alias \"*%s\" names no anchor defined (and complete) before it", name);
        return b->rc;
      }
      return attach(b, n);
    }
    default:
      return 0;
  }
}

static void report_parser_error(builder_t *b, yaml_parser_t *p, const char *text, size_t len) {
  int line, col;
  if (p->error == YAML_READER_ERROR) {
    /* The reader gives a byte offset, not a mark. */
    line = 1;
    col = 1;
    for (size_t i = 0; i < p->problem_offset && i < len; i++) {
      if (text[i] == '\n') {
        line++;
        col = 1;
      } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
        col++;
      }
    }
  } else {
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
  }
  const char *problem = p->problem ? p->problem : "cannot parse";
  int rc;
  if (p->context && p->error != YAML_READER_ERROR)
    rc = diag_add(b->d, b->file, line, col, DIAG_ERROR,
                  "invalid YAML: %s (%s at line %d, column %d)", problem, p->context,
                  (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
  else
    rc = diag_add(b->d, b->file, line, col, DIAG_ERROR, "invalid YAML: %s", problem);
  b->rc = rc ? rc : TSVC_ECONFIG;
}

int ytree_parse(ytree_t *t, const char *file, const char *text, size_t len,
                tsvc_diag_t *d) {
  t->root = NULL;
  t->nodes = NULL;
  builder_t b;
  memset(&b, 0, sizeof b);
  b.t = t;
  b.file = file;
  b.d = d;
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return TSVC_ENOMEM;
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      if (parser.error == YAML_MEMORY_ERROR)
        b.rc = TSVC_ENOMEM;
      else
        report_parser_error(&b, &parser, text, len);
      break;
    }
    int rc = on_event(&b, &ev);
    bool end = ev.type == YAML_STREAM_END_EVENT;
    yaml_event_delete(&ev);
    if (rc) {
      b.rc = rc;
      break;
    }
    if (end) break;
  }
  yaml_parser_delete(&parser);
  for (size_t i = 0; i < b.depth; i++) free(b.stack[i].anchor);
  for (size_t i = 0; i < b.nanchors; i++) free(b.anchors[i].name);
  free(b.anchors);
  if (b.rc) t->root = NULL;
  return b.rc;
}

void ytree_free(ytree_t *t) {
  ynode_t *n = t->nodes;
  while (n) {
    ynode_t *next = n->next_alloc;
    free(n->text);
    free(n->items);
    free(n->pairs);
    free(n);
    n = next;
  }
  t->nodes = NULL;
  t->root = NULL;
}

bool ynode_is_null(const ynode_t *n) {
  if (!n) return true;
  if (n->kind != YN_SCALAR || !n->plain) return false;
  return n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
         strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0;
}

const ynode_t *ynode_get(const ynode_t *map, const char *key) {
  if (!map || map->kind != YN_MAP) return NULL;
  const ynode_t *found = NULL;
  for (size_t i = 0; i < map->npairs; i++) {
    const ynode_t *k = map->pairs[i].key;
    if (k->kind == YN_SCALAR && strcmp(k->text, key) == 0) return map->pairs[i].value;
  }
  return found;
}

const char *ynode_kind_name(const ynode_t *n) {
  if (!n) return "nothing";
  switch (n->kind) {
    case YN_MAP:
      return "a mapping";
    case YN_SEQ:
      return "a list";
    case YN_SCALAR:
      break;
  }
  if (ynode_is_null(n)) return "null";
  return "a scalar";
}
