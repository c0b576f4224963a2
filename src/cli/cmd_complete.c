/*
 * cmd_complete.c: `tanuki-svc __complete CWORD WORD...`, the hidden verb the
 * bash completion (dist/bash-completion/tanuki-svc) calls on every TAB.
 *
 * The words are bash's COMP_WORDS (the command line split as bash splits
 * it: "--config=x" arrives as "--config" "=" "x") and CWORD is COMP_CWORD,
 * the index of the word being completed. The answer is a first line saying
 * what to complete, then the candidates, one per line:
 *
 *   words       the lines that follow, already filtered by the current word
 *   files       file names (bash lists them itself)
 *
 * Verbs and options come from the table below, service names from the
 * config the command line names (-c FILE, else $TANUKI_CONFIG, else
 * ./tanuki.yaml), read quietly: a broken config completes no names. The
 * table is kept equal to every verb's --help by tests/cli/test_complete.sh
 * (through `__complete --table`); it has the shape of an option parser's
 * table so that one table can serve both.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"

typedef enum {
  ARG_NONE,  /* a flag */
  ARG_FILE,  /* a file name */
  ARG_WORD,  /* one of the words in choices */
  ARG_OTHER  /* anything (a number): nothing to offer */
} arg_kind_t;

typedef struct {
  char shortname;      /* 0: none */
  const char *name;    /* the long name, without "--" */
  arg_kind_t arg;
  const char *choices; /* ARG_WORD: space-separated */
} copt_t;

typedef enum {
  OPER_NONE,     /* no operands */
  OPER_SERVICE,  /* one service name */
  OPER_SERVICES, /* service names, each once */
  OPER_WORD      /* one of the words in subcommands */
} oper_kind_t;

typedef struct {
  const char *name;
  oper_kind_t operands;
  const char *subcommands; /* OPER_WORD: space-separated */
  copt_t opts[8];          /* ends at an entry without a name */
} cverb_t;

#define OPT_CONFIG {'c', "config", ARG_FILE, NULL}
#define OPT_HELP {'h', "help", ARG_NONE, NULL}

static const cverb_t verbs[] = {
    {"up",
     OPER_NONE,
     NULL,
     {{'d', "detach", ARG_NONE, NULL},
      OPT_CONFIG,
      {0, "runtime", ARG_WORD, "auto docker process"},
      {0, "down", ARG_NONE, NULL},
      {0, "log-format", ARG_WORD, "text json"},
      {0, "log-level", ARG_WORD, "debug info warn error"},
      OPT_HELP}},
    {"down", OPER_NONE, NULL, {OPT_CONFIG, OPT_HELP}},
    {"start", OPER_SERVICES, NULL, {OPT_CONFIG, OPT_HELP}},
    {"stop", OPER_SERVICES, NULL, {OPT_CONFIG, OPT_HELP}},
    {"restart", OPER_SERVICES, NULL, {OPT_CONFIG, OPT_HELP}},
    {"status",
     OPER_SERVICE,
     NULL,
     {{0, "json", ARG_NONE, NULL}, {'w', "watch", ARG_NONE, NULL}, OPT_CONFIG, OPT_HELP}},
    {"check", OPER_SERVICE, NULL, {OPT_CONFIG, OPT_HELP}},
    {"logs",
     OPER_SERVICE,
     NULL,
     {{'f', "follow", ARG_NONE, NULL}, {'n', "tail", ARG_OTHER, NULL}, OPT_CONFIG, OPT_HELP}},
    {"config", OPER_WORD, "validate show", {OPT_CONFIG, OPT_HELP}},
    {"env", OPER_NONE, NULL, {{'f', "format", ARG_WORD, "shell json"}, OPT_CONFIG, OPT_HELP}},
    {"version", OPER_NONE, NULL, {OPT_HELP}},
};

static bool has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void offer(const char *word, const char *cur) {
  if (has_prefix(word, cur)) printf("%s\n", word);
}

/* Each space-separated word of list that starts with cur. */
static void offer_list(const char *list, const char *cur) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", list);
  char *save = NULL;
  for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) offer(w, cur);
}

static const cverb_t *find_verb(const char *name) {
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (strcmp(verbs[i].name, name) == 0) return &verbs[i];
  return NULL;
}

/* The option word names ("-c", "--config"), or NULL. */
static const copt_t *find_opt(const cverb_t *v, const char *word) {
  for (const copt_t *o = v->opts; o->name; o++) {
    if (word[0] == '-' && word[1] == '-' && strcmp(word + 2, o->name) == 0) return o;
    if (o->shortname && word[0] == '-' && word[1] == o->shortname && !word[2]) return o;
  }
  return NULL;
}

static void offer_arg(const copt_t *o, const char *cur) {
  if (o->arg == ARG_FILE) {
    printf("files\n");
    return;
  }
  printf("words\n");
  if (o->arg == ARG_WORD) offer_list(o->choices, cur);
}

/* The names of the services of the config at path; those already among
   the operands are left out. */
static void offer_services(const char *path, char **given, int ngiven, const char *cur) {
  char expanded[PATH_MAX];
  const char *home = getenv("HOME");
  if (path[0] == '~' && path[1] == '/' && home) {
    snprintf(expanded, sizeof expanded, "%s%s", home, path + 1);
    path = expanded;
  }
  tsvc_config_t *cfg = NULL;
  tsvc_diag_t diag = {0};
  int rc = tsvc_config_load(path, &cfg, &diag);
  tsvc_diag_free(&diag);
  if (rc) return;
  for (size_t i = 0; i < cfg->nservices; i++) {
    const char *name = cfg->services[i].name;
    bool seen = false;
    for (int j = 0; j < ngiven && !seen; j++) seen = strcmp(given[j], name) == 0;
    if (!seen) offer(name, cur);
  }
  tsvc_config_free(cfg);
}

/* `__complete --table`: the table, one option a line ("up -d --detach -",
   "up - --runtime WORD"), for the test that holds it equal to --help. */
static void print_table(void) {
  static const char *const args[] = {"-", "FILE", "WORD", "ARG"};
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    for (const copt_t *o = verbs[i].opts; o->name; o++)
      printf("%s %s%c --%s %s\n", verbs[i].name, o->shortname ? "-" : "",
             o->shortname ? o->shortname : '-', o->name, args[o->arg]);
}

int cmd_complete(int argc, char **argv) {
  /* argv: "__complete" CWORD WORD0 WORD1 ... */
  if (argc == 2 && strcmp(argv[1], "--table") == 0) {
    print_table();
    return TSVC_EXIT_OK;
  }
  if (argc < 3) return TSVC_EXIT_USAGE;
  char *end;
  long cword = strtol(argv[1], &end, 10);
  char **words = argv + 2;
  int nwords = argc - 2;
  if (*end || cword < 0 || cword > nwords) return TSVC_EXIT_USAGE;
  /* bash gives no word at all when completing past the last one. */
  const char *cur = cword < nwords ? words[cword] : "";

  /* "--opt=" and "--opt=val" (bash splits at '='): the value of --opt. */
  const char *eq_opt = NULL;
  if (strcmp(cur, "=") == 0 && cword >= 1) {
    eq_opt = words[cword - 1];
    cur = "";
  } else if (cword >= 2 && strcmp(words[cword - 1], "=") == 0) {
    eq_opt = words[cword - 2];
  }

  if (cword <= 1) {
    printf("words\n");
    if (cur[0] == '-') {
      offer("--help", cur);
      offer("--version", cur);
      return TSVC_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) offer(verbs[i].name, cur);
    offer("help", cur);
    return TSVC_EXIT_OK;
  }
  const cverb_t *v = find_verb(words[1]);
  if (!v) {
    printf("files\n"); /* an unknown verb: the shell's default */
    return TSVC_EXIT_OK;
  }

  /* The words before the current one: the config, the operands, and
     whether the word before is an option waiting for its value. */
  const char *config = NULL;
  char *operands[64];
  int noperands = 0;
  const copt_t *pending = NULL;
  bool options_end = false;
  for (long i = 2; i < cword; i++) {
    const char *w = words[i];
    if (pending) {
      if (strcmp(pending->name, "config") == 0) config = w;
      pending = NULL;
      continue;
    }
    if (strcmp(w, "=") == 0) { /* "--opt" "=" "val": val comes next */
      const copt_t *o = i > 2 ? find_opt(v, words[i - 1]) : NULL;
      if (o && o->arg != ARG_NONE) pending = o;
      continue;
    }
    if (!options_end && strcmp(w, "--") == 0) {
      options_end = true;
      continue;
    }
    if (!options_end && w[0] == '-' && w[1]) {
      const copt_t *o = find_opt(v, w);
      if (o) {
        /* "--config" "=" "x" is the '=' case above; "--config" "x" here. */
        bool eq_follows = i + 1 < cword && strcmp(words[i + 1], "=") == 0;
        if (o->arg != ARG_NONE && !eq_follows) pending = o;
      } else if (w[1] == 'c' && w[2]) {
        config = w + 2; /* -cFILE */
      }
      continue;
    }
    if (noperands < (int)(sizeof operands / sizeof operands[0])) operands[noperands++] = words[i];
  }

  if (eq_opt) {
    const copt_t *o = find_opt(v, eq_opt);
    if (o && o->arg != ARG_NONE) offer_arg(o, cur);
    else printf("words\n");
    return TSVC_EXIT_OK;
  }
  if (pending) {
    offer_arg(pending, cur);
    return TSVC_EXIT_OK;
  }
  printf("words\n");
  if (!options_end && cur[0] == '-') {
    for (const copt_t *o = v->opts; o->name; o++) {
      char buf[64];
      if (o->shortname) {
        snprintf(buf, sizeof buf, "-%c", o->shortname);
        offer(buf, cur);
      }
      snprintf(buf, sizeof buf, "--%s", o->name);
      offer(buf, cur);
    }
    return TSVC_EXIT_OK;
  }
  switch (v->operands) {
  case OPER_NONE: break;
  case OPER_WORD:
    if (noperands == 0) offer_list(v->subcommands, cur);
    break;
  case OPER_SERVICE:
    if (noperands == 0) offer_services(cli_config_path(config), operands, noperands, cur);
    break;
  case OPER_SERVICES: offer_services(cli_config_path(config), operands, noperands, cur); break;
  }
  return TSVC_EXIT_OK;
}
