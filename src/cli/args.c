/* args.c: the one option parser of every verb, and the help made from the
   tables of verbs.c. See args.h for the rules. */
#include "cli/args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"

/* ---- reading the tables ------------------------------------------------------- */

const cli_verb_t *cli_verb_find(const char *name) {
  for (const cli_verb_t *v = cli_verbs; name && v->name; v++)
    if (strcmp(v->name, name) == 0) return v;
  return NULL;
}

/* Index of o among v's options, or -1. */
static int opt_index(const cli_verb_t *v, const cli_opt_t *o) {
  for (int i = 0; v->opts[i]; i++)
    if (v->opts[i] == o) return i;
  return -1;
}

static int find_long(const cli_verb_t *v, const char *name, size_t len) {
  for (int i = 0; v->opts[i]; i++)
    if (strlen(v->opts[i]->name) == len && memcmp(v->opts[i]->name, name, len) == 0) return i;
  return -1;
}

static int find_short(const cli_verb_t *v, char c) {
  for (int i = 0; v->opts[i]; i++)
    if (v->opts[i]->short_name && v->opts[i]->short_name == c) return i;
  return -1;
}

const char *cli_str(const cli_args_t *a, const cli_opt_t *o) {
  int i = a->verb ? opt_index(a->verb, o) : -1;
  return i < 0 ? NULL : a->values[i];
}

bool cli_flag(const cli_args_t *a, const cli_opt_t *o) { return cli_str(a, o) != NULL; }

long cli_num(const cli_args_t *a, const cli_opt_t *o, long dflt) {
  int i = a->verb ? opt_index(a->verb, o) : -1;
  return i < 0 || !a->values[i] ? dflt : a->numbers[i];
}

/* "--config" or "-c/--config", as people know the option. */
static const char *opt_label(const cli_opt_t *o, char *buf, size_t len) {
  if (o->short_name) snprintf(buf, len, "-%c/--%s", o->short_name, o->name);
  else snprintf(buf, len, "--%s", o->name);
  return buf;
}

/* The option's value placeholder: "FILE", or "shell|json" for choices. */
static const char *metavar(const cli_opt_t *o, char *buf, size_t len) {
  if (o->metavar) return o->metavar;
  buf[0] = '\0';
  size_t n = 0;
  for (size_t i = 0; o->choices && o->choices[i] && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? "|" : "", o->choices[i]);
  return buf;
}

/* ---- parsing --------------------------------------------------------------------- */

typedef struct {
  char *err;
  size_t errlen;
  bool failed; /* only the first error is kept */
} errs_t;

static void fail(errs_t *e, const char *fmt, ...) TSVC_PRINTF(2, 3);
static void fail(errs_t *e, const char *fmt, ...) {
  if (e->failed) return;
  e->failed = true;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->err, e->errlen, fmt, ap);
  va_end(ap);
}

/* Every option of v, for "unknown option" messages. */
static void list_opts(const cli_verb_t *v, char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  char l[64];
  for (int i = 0; v->opts[i] && n < len; i++)
    n += (size_t)snprintf(buf + n, len - n, "%s, ", opt_label(v->opts[i], l, sizeof l));
  if (n < len) snprintf(buf + n, len - n, "-h/--help");
}

/* Store value for option i of v, checked by its kind. */
static void set_value(const cli_verb_t *v, int i, const char *value, cli_args_t *a, errs_t *e) {
  const cli_opt_t *o = v->opts[i];
  char l[64], m[256];
  switch (o->kind) {
  case CLI_ARG_NONE:
    a->values[i] = "";
    return;
  case CLI_ARG_STRING:
  case CLI_ARG_FILE:
    if (!*value) {
      fail(e, "option %s: empty %s", opt_label(o, l, sizeof l), metavar(o, m, sizeof m));
      return;
    }
    break;
  case CLI_ARG_CHOICE: {
    bool ok = false;
    for (size_t k = 0; o->choices[k]; k++) ok = ok || strcmp(o->choices[k], value) == 0;
    if (!ok) {
      char valid[256];
      size_t n = 0;
      valid[0] = '\0';
      for (size_t k = 0; o->choices[k] && n < sizeof valid; k++)
        n += (size_t)snprintf(valid + n, sizeof valid - n, "%s%s", k ? ", " : "", o->choices[k]);
      fail(e, "option %s: unknown value '%s' (one of: %s)", opt_label(o, l, sizeof l), value,
           valid);
      return;
    }
    break;
  }
  case CLI_ARG_NUMBER: {
    long n;
    if (tsvc_parse_int(value, o->min, o->max, &n) != 0) {
      fail(e, "option %s: '%s' is not a whole number from %ld to %ld",
           opt_label(o, l, sizeof l), value, o->min, o->max);
      return;
    }
    a->numbers[i] = n;
    break;
  }
  }
  a->values[i] = value;
}

/* A long option at argv[*i]: "--name" or "--name=value". */
static void long_opt(const cli_verb_t *v, int argc, char **argv, int *i, cli_args_t *a,
                     errs_t *e, bool *help) {
  const char *arg = argv[*i], *name = arg + 2;
  const char *eq = strchr(name, '=');
  size_t len = eq ? (size_t)(eq - name) : strlen(name);
  if (len == 4 && memcmp(name, "help", 4) == 0) {
    *help = true;
    return;
  }
  int k = find_long(v, name, len);
  if (k < 0) {
    char all[512];
    list_opts(v, all, sizeof all);
    fail(e, "unknown option '--%.*s' (%s takes %s)", (int)len, name, v->name, all);
    return;
  }
  const cli_opt_t *o = v->opts[k];
  char m[256];
  if (o->kind == CLI_ARG_NONE) {
    if (eq) fail(e, "option --%s takes no value (got '%s')", o->name, arg);
    else set_value(v, k, "", a, e);
    return;
  }
  if (eq) {
    set_value(v, k, eq + 1, a, e);
  } else if (*i + 1 < argc) {
    set_value(v, k, argv[++*i], a, e);
  } else {
    fail(e, "option --%s needs a value (%s)", o->name, metavar(o, m, sizeof m));
  }
}

/* Short options at argv[*i]: "-c FILE", "-cFILE", "-fn 20". */
static void short_opts(const cli_verb_t *v, int argc, char **argv, int *i, cli_args_t *a,
                       errs_t *e, bool *help) {
  const char *arg = argv[*i];
  for (size_t j = 1; arg[j]; j++) {
    if (arg[j] == 'h') {
      *help = true;
      continue;
    }
    int k = find_short(v, arg[j]);
    if (k < 0) {
      char all[512];
      list_opts(v, all, sizeof all);
      fail(e, "unknown option '-%c'%s%s%s (%s takes %s)", arg[j], j > 1 ? " in '" : "",
           j > 1 ? arg : "", j > 1 ? "'" : "", v->name, all);
      return;
    }
    const cli_opt_t *o = v->opts[k];
    if (o->kind == CLI_ARG_NONE) {
      set_value(v, k, "", a, e);
      continue;
    }
    /* The rest of the word is the value, else the next word. */
    char m[256];
    if (arg[j + 1]) set_value(v, k, arg + j + 1, a, e);
    else if (*i + 1 < argc) set_value(v, k, argv[++*i], a, e);
    else fail(e, "option -%c needs a value (%s)", o->short_name, metavar(o, m, sizeof m));
    return;
  }
}

int cli_parse(const cli_verb_t *v, int argc, char **argv, cli_args_t *a, char *err,
              size_t errlen) {
  memset(a, 0, sizeof *a);
  a->verb = v;
  char dummy[8];
  errs_t e = {err && errlen ? err : dummy, err && errlen ? errlen : sizeof dummy, false};
  e.err[0] = '\0';
  a->operands = calloc(argc > 0 ? (size_t)argc : 1, sizeof *a->operands);
  if (!a->operands) {
    fail(&e, "out of memory");
    return CLI_PARSE_ERROR;
  }
  bool help = false, only_operands = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (only_operands || arg[0] != '-' || arg[1] == '\0') {
      a->operands[a->noperands++] = arg;
    } else if (strcmp(arg, "--") == 0) {
      only_operands = true;
    } else if (arg[1] == '-') {
      long_opt(v, argc, argv, &i, a, &e, &help);
    } else {
      short_opts(v, argc, argv, &i, a, &e, &help);
    }
  }
  /* Help wins: whoever asks for it wants to read it, not an error. */
  if (help) return CLI_PARSE_HELP;
  if (e.failed) return CLI_PARSE_ERROR;
  if (a->noperands < v->min_operands) {
    if (v->operand_kind == CLI_OPERANDS_CHOICE) {
      char valid[256];
      size_t n = 0;
      valid[0] = '\0';
      for (size_t k = 0; v->operand_choices[k] && n < sizeof valid; k++)
        n += (size_t)snprintf(valid + n, sizeof valid - n, "%s%s", k ? " or " : "",
                              v->operand_choices[k]);
      fail(&e, "missing what to do: %s", valid);
    } else {
      fail(&e, "missing %s", v->operands);
    }
    return CLI_PARSE_ERROR;
  }
  if (a->noperands > v->max_operands) {
    if (v->max_operands == 0)
      fail(&e, "unexpected operand '%s' (%s takes none)", a->operands[0], v->name);
    else
      fail(&e, "unexpected operand '%s' (expected %s)", a->operands[v->max_operands],
           v->operands);
    return CLI_PARSE_ERROR;
  }
  if (v->operand_kind == CLI_OPERANDS_CHOICE && a->noperands > 0) {
    bool ok = false;
    for (size_t k = 0; v->operand_choices[k]; k++)
      ok = ok || strcmp(v->operand_choices[k], a->operands[0]) == 0;
    if (!ok) {
      fail(&e, "unknown subcommand '%s' (expected %s)", a->operands[0], v->operands);
      return CLI_PARSE_ERROR;
    }
  }
  return CLI_PARSE_OK;
}

void cli_args_free(cli_args_t *a) {
  free(a->operands);
  a->operands = NULL;
  a->noperands = 0;
}

/* ---- help -------------------------------------------------------------------------- */

#define WIDTH 79

void cli_usage(const cli_verb_t *v, FILE *f) {
  char line[512], word[300], m[256];
  int indent = snprintf(line, sizeof line, "usage: tanuki-svc %s", v->name);
  size_t len = (size_t)indent;
  if (v->operands && *v->operands)
    len += (size_t)snprintf(line + len, sizeof line - len, " %s", v->operands);
  for (int i = 0; v->opts[i]; i++) {
    const cli_opt_t *o = v->opts[i];
    if (o->kind == CLI_ARG_NONE) {
      if (o->short_name) snprintf(word, sizeof word, "[-%c]", o->short_name);
      else snprintf(word, sizeof word, "[--%s]", o->name);
    } else if (o->short_name) {
      snprintf(word, sizeof word, "[-%c %s]", o->short_name, metavar(o, m, sizeof m));
    } else {
      snprintf(word, sizeof word, "[--%s %s]", o->name, metavar(o, m, sizeof m));
    }
    if (len + 1 + strlen(word) > WIDTH) {
      fprintf(f, "%s\n", line);
      len = (size_t)snprintf(line, sizeof line, "%*s", indent, "");
    }
    len += (size_t)snprintf(line + len, sizeof line - len, " %s", word);
  }
  fprintf(f, "%s\n", line);
}

/* One row of the options list: "  -c, --config FILE  help...". */
static void opt_row(const cli_opt_t *o, FILE *f) {
  char left[300], m[256];
  int n = o->short_name ? snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name)
                         : snprintf(left, sizeof left, "      --%s", o->name);
  if (o->kind != CLI_ARG_NONE && n > 0 && (size_t)n < sizeof left)
    snprintf(left + n, sizeof left - (size_t)n, " %s", metavar(o, m, sizeof m));
  /* The help text may hold several lines: indent the next ones. */
  const char *h = o->help;
  if (strlen(left) > 22) {
    fprintf(f, "%s\n%24s", left, "");
  } else {
    fprintf(f, "%-24s", left);
  }
  for (; *h; h++) {
    fputc(*h, f);
    if (*h == '\n' && h[1]) fprintf(f, "%24s", "");
  }
  fputc('\n', f);
}

void cli_help(const cli_verb_t *v, FILE *f) {
  cli_usage(v, f);
  if (v->description && *v->description) fprintf(f, "\n%s", v->description);
  fputs("\n", f);
  for (int i = 0; v->opts[i]; i++) opt_row(v->opts[i], f);
  opt_row(&CLI_OPT_HELP, f);
  fputs("\nOptions may come before or after operands; '--' ends them.\n", f);
  if (v->exit_codes) fprintf(f, "\nExit: %s\n", v->exit_codes);
}

void cli_help_all(FILE *f) {
  fputs("usage: tanuki-svc COMMAND [OPTIONS] [OPERANDS]\n\ncommands:\n", f);
  for (const cli_verb_t *v = cli_verbs; v->name; v++)
    fprintf(f, "  %-10s %s\n", v->name, v->summary);
  fputs("\nRun 'tanuki-svc COMMAND --help' (or 'tanuki-svc help COMMAND') for a\n"
        "command's options. Every command takes -c FILE (default $TANUKI_CONFIG,\n"
        "else tanuki.yaml) except version.\n"
        "Exit codes: 0 ok, 1 unhealthy or not found, 2 usage, 3 cannot reach\n"
        "the monitor or the runtime.\n",
        f);
}

/* ---- the program ------------------------------------------------------------------- */

int cli_main(int argc, char **argv) {
  if (argc < 2) {
    cli_help_all(stderr);
    return TSVC_EXIT_USAGE;
  }
  const char *first = argv[1];
  if (strcmp(first, "-h") == 0 || strcmp(first, "--help") == 0) {
    cli_help_all(stdout);
    return TSVC_EXIT_OK;
  }
  if (strcmp(first, "help") == 0) {
    if (argc == 2) {
      cli_help_all(stdout);
      return TSVC_EXIT_OK;
    }
    const cli_verb_t *v = cli_verb_find(argv[2]);
    if (!v || argc > 3) {
      cli_err("help: %s '%s' (see 'tanuki-svc --help')",
              v ? "one command at a time, got" : "unknown command", argv[v ? 3 : 2]);
      return TSVC_EXIT_USAGE;
    }
    cli_help(v, stdout);
    return TSVC_EXIT_OK;
  }
  if (strcmp(first, "--version") == 0) first = "version";
  const cli_verb_t *v = cli_verb_find(first);
  if (!v) {
    if (first[0] == '-')
      cli_err("options go after the command: 'tanuki-svc COMMAND %s ...' "
              "(see 'tanuki-svc --help')",
              first);
    else cli_err("unknown command '%s' (see 'tanuki-svc --help')", first);
    return TSVC_EXIT_USAGE;
  }
  cli_args_t a;
  char err[1024];
  int rc = cli_parse(v, argc - 1, argv + 1, &a, err, sizeof err);
  if (rc == CLI_PARSE_HELP) {
    cli_help(v, stdout);
    rc = TSVC_EXIT_OK;
  } else if (rc == CLI_PARSE_ERROR) {
    cli_err("%s: %s", v->name, err);
    cli_usage(v, stderr);
    fprintf(stderr, "Run 'tanuki-svc %s --help' for more.\n", v->name);
    rc = TSVC_EXIT_USAGE;
  } else {
    rc = v->run(&a);
  }
  cli_args_free(&a);
  return rc;
}

void cli_err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tanuki-svc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}
