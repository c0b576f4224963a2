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
 * Verbs, options, their values and what the operands are come from the
 * parser's own tables (args.h, verbs.c), so the completion cannot drift
 * from what the program accepts. Service names come from the config the
 * command line names (-c FILE, else $TANUKI_CONFIG, else ./tanuki.yaml),
 * read quietly: a broken config completes no names.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"
#include "config/config.h"

static bool has_prefix(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void offer(const char *word, const char *cur) {
  if (has_prefix(word, cur)) printf("%s\n", word);
}

static void offer_all(const char *const *words, const char *cur) {
  for (size_t i = 0; words && words[i]; i++) offer(words[i], cur);
}

/* The options of v, -h/--help (implied for every verb) last. */
static const cli_opt_t *opt_at(const cli_verb_t *v, size_t i) {
  size_t n = 0;
  while (v->opts && v->opts[n]) n++;
  return i < n ? v->opts[i] : i == n ? &CLI_OPT_HELP : NULL;
}

/* The option a word names: "--config", or the short one of "-c". */
static const cli_opt_t *find_long(const cli_verb_t *v, const char *word) {
  if (word[0] != '-' || word[1] != '-') return NULL;
  const cli_opt_t *o;
  for (size_t i = 0; (o = opt_at(v, i)); i++)
    if (strcmp(word + 2, o->name) == 0) return o;
  return NULL;
}

static const cli_opt_t *find_short(const cli_verb_t *v, char c) {
  const cli_opt_t *o;
  for (size_t i = 0; (o = opt_at(v, i)); i++)
    if (o->short_name && o->short_name == c) return o;
  return NULL;
}

/* The value of option o, being typed as cur. */
static void offer_value(const cli_opt_t *o, const char *cur) {
  if (o->kind == CLI_ARG_FILE) {
    printf("files\n");
    return;
  }
  printf("words\n");
  if (o->kind == CLI_ARG_CHOICE) offer_all(o->choices, cur);
}

/* The names of the services of the config at path, but those in given. */
static void offer_services(const char *path, char **given, size_t ngiven, const char *cur) {
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
    for (size_t j = 0; j < ngiven && !seen; j++) seen = strcmp(given[j], name) == 0;
    if (!seen) offer(name, cur);
  }
  tsvc_config_free(cfg);
}

int cli_complete(int argc, char **argv) {
  /* argv: "__complete" CWORD WORD0 WORD1 ... */
  if (argc < 3) return TSVC_EXIT_USAGE;
  char *end;
  long cword = strtol(argv[1], &end, 10);
  char **words = argv + 2;
  long nwords = argc - 2;
  if (*end || cword < 0 || cword > nwords) return TSVC_EXIT_USAGE;
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
    for (const cli_verb_t *v = cli_verbs; v->name; v++) offer(v->name, cur);
    offer("help", cur);
    return TSVC_EXIT_OK;
  }
  if (strcmp(words[1], "help") == 0) {
    printf("words\n");
    if (cword == 2)
      for (const cli_verb_t *v = cli_verbs; v->name; v++) offer(v->name, cur);
    return TSVC_EXIT_OK;
  }
  const cli_verb_t *v = cli_verb_find(words[1]);
  if (!v) {
    printf("files\n"); /* an unknown verb: the shell's default */
    return TSVC_EXIT_OK;
  }

  /* The words before the current one, read by the parser's rules: the
     config, the operands, and an option still waiting for its value. */
  const char *config = NULL;
  char *operands[64];
  size_t noperands = 0;
  const cli_opt_t *pending = NULL;
  bool options_end = false;
  for (long i = 2; i < cword; i++) {
    char *w = words[i];
    if (pending) {
      if (pending == &CLI_OPT_CONFIG) config = w;
      pending = NULL;
      continue;
    }
    bool eq_follows = i + 1 < cword && strcmp(words[i + 1], "=") == 0;
    if (strcmp(w, "=") == 0) { /* "--opt" "=" "val": val comes next */
      const cli_opt_t *o = find_long(v, words[i - 1]);
      if (o && o->kind != CLI_ARG_NONE) pending = o;
      continue;
    }
    if (!options_end && strcmp(w, "--") == 0) {
      options_end = true;
      continue;
    }
    if (!options_end && w[0] == '-' && w[1] == '-') {
      const cli_opt_t *o = find_long(v, w);
      if (o && o->kind != CLI_ARG_NONE && !eq_follows) pending = o;
      continue;
    }
    if (!options_end && w[0] == '-' && w[1]) {
      /* "-fn", "-n20", "-cFILE": flags, then maybe one that takes the rest
         of the word, or the next word, as its value. */
      for (const char *c = w + 1; *c; c++) {
        const cli_opt_t *o = find_short(v, *c);
        if (!o || o->kind == CLI_ARG_NONE) continue;
        if (c[1]) {
          if (o == &CLI_OPT_CONFIG) config = c + 1;
        } else {
          pending = o;
        }
        break;
      }
      continue;
    }
    if (noperands < sizeof operands / sizeof operands[0]) operands[noperands++] = w;
  }

  if (eq_opt) {
    const cli_opt_t *o = find_long(v, eq_opt);
    if (o && o->kind != CLI_ARG_NONE) offer_value(o, cur);
    else printf("words\n");
    return TSVC_EXIT_OK;
  }
  if (pending) {
    offer_value(pending, cur);
    return TSVC_EXIT_OK;
  }
  printf("words\n");
  if (!options_end && cur[0] == '-') {
    const cli_opt_t *o;
    for (size_t i = 0; (o = opt_at(v, i)); i++) {
      char buf[64];
      if (o->short_name) {
        snprintf(buf, sizeof buf, "-%c", o->short_name);
        offer(buf, cur);
      }
      snprintf(buf, sizeof buf, "--%s", o->name);
      offer(buf, cur);
    }
    return TSVC_EXIT_OK;
  }
  if (noperands >= v->max_operands) return TSVC_EXIT_OK;
  switch (v->operand_kind) {
  case CLI_OPERANDS_NONE: break;
  case CLI_OPERANDS_CHOICE:
    if (noperands == 0) offer_all(v->operand_choices, cur);
    break;
  case CLI_OPERANDS_SERVICES:
    offer_services(cli_config_path(config), operands, noperands, cur);
    break;
  }
  return TSVC_EXIT_OK;
}
