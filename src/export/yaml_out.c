/*
 * yaml_out.c: a jansson tree as block-style YAML (export.h).
 *
 * Only what the exporters build: objects, arrays, strings, integers,
 * booleans and null. Keys are written plain when they are made of
 * letters, digits and "_.-/" (and do not look like a number or a boolean),
 * else double-quoted; strings are always double-quoted, with YAML's
 * escapes, which are JSON's plus a few: what any YAML 1.1 or 1.2 reader
 * (PyYAML in docker-compose, Go's yaml in kubectl) reads back as the same
 * string.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "export/export.h"

typedef struct {
  FILE *f;
  bool dollars;
} out_t;

static void put_quoted(out_t *o, const char *s, size_t len) {
  FILE *f = o->f;
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\t': fputs("\\t", f); break;
    case '\r': fputs("\\r", f); break;
    case '$':
      fputs(o->dollars ? "$$" : "$", f);
      break;
    default:
      if (c < 0x20 || c == 0x7f)
        fprintf(f, "\\x%02x", c);
      else
        fputc(c, f);
    }
  }
  fputc('"', f);
}

static bool plain_key(const char *k) {
  static const char *const words[] = {"true", "false", "yes", "no", "on", "off", "null",
                                      "y", "n", "~", NULL};
  if (!*k || !isalpha((unsigned char)k[0])) return false;
  for (const char *p = k; *p; p++)
    if (!isalnum((unsigned char)*p) && !strchr("_.-/", *p)) return false;
  for (size_t i = 0; words[i]; i++)
    if (strcasecmp(k, words[i]) == 0) return false;
  return true;
}

static void put_key(out_t *o, const char *k) {
  if (plain_key(k)) {
    fputs(k, o->f);
  } else {
    bool d = o->dollars;
    o->dollars = false; /* compose never interpolates keys */
    put_quoted(o, k, strlen(k));
    o->dollars = d;
  }
  fputc(':', o->f);
}

static bool is_scalar(const json_t *v) {
  return !json_is_object(v) && !json_is_array(v);
}

static void put_scalar(out_t *o, const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_STRING: put_quoted(o, json_string_value(v), json_string_length(v)); break;
  case JSON_INTEGER: fprintf(o->f, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
  case JSON_REAL: fprintf(o->f, "%.17g", json_real_value(v)); break;
  case JSON_TRUE: fputs("true", o->f); break;
  case JSON_FALSE: fputs("false", o->f); break;
  default: fputs("null", o->f); break;
  }
}

static void put_node(out_t *o, const json_t *v, int indent);

/* After "key:" or "- ": the value on the same line or in a block below. */
static void put_value(out_t *o, const json_t *v, int indent) {
  if (is_scalar(v)) {
    fputc(' ', o->f);
    put_scalar(o, v);
    fputc('\n', o->f);
  } else if (json_is_object(v) && json_object_size(v) == 0) {
    fputs(" {}\n", o->f);
  } else if (json_is_array(v) && json_array_size(v) == 0) {
    fputs(" []\n", o->f);
  } else {
    fputc('\n', o->f);
    put_node(o, v, indent);
  }
}

static void put_object(out_t *o, const json_t *v, int indent, bool first_inline) {
  const char *k;
  json_t *x;
  bool first = true;
  json_object_foreach((json_t *)v, k, x) {
    if (!(first && first_inline)) fprintf(o->f, "%*s", indent, "");
    first = false;
    put_key(o, k);
    put_value(o, x, indent + 2);
  }
}

static void put_node(out_t *o, const json_t *v, int indent) {
  if (json_is_object(v)) {
    put_object(o, v, indent, false);
    return;
  }
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    fprintf(o->f, "%*s-", indent, "");
    if (json_is_object(x) && json_object_size(x) > 0) {
      fputc(' ', o->f);
      put_object(o, x, indent + 2, true);
    } else {
      put_value(o, x, indent + 2);
    }
  }
}

int export_yaml_write(FILE *f, const json_t *v, bool docs, bool dollars) {
  out_t o = {f, dollars};
  if (docs && json_is_array(v)) {
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
      if (i) fputs("---\n", f);
      put_node(&o, x, 0);
    }
  } else if (is_scalar(v)) {
    put_scalar(&o, v);
    fputc('\n', f);
  } else {
    put_node(&o, v, 0);
  }
  return ferror(f) ? TSVC_EIO : 0;
}
