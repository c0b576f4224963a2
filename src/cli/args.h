/*
 * args: the command line of tanuki-svc, described once.
 *
 * Every verb and every option is one row of the tables in verbs.c; the
 * parser (args.c) reads them and nothing else, so every verb follows the
 * same rules, and anything that needs to know the command line (the help,
 * the man page, shell completion) walks the same tables:
 *
 *   for (const cli_verb_t *v = cli_verbs; v->name; v++)
 *     for (const cli_opt_t *const *o = v->opts; *o; o++) ...
 *
 * Rules, for every verb:
 *   - options may come before, between or after the operands;
 *   - `--name=VALUE` and `--name VALUE`; `-x VALUE`, `-xVALUE`; flags may be
 *     grouped (`-fn 20`);
 *   - `--` ends the options: what follows is operands (`-` alone is one);
 *   - `-h` / `--help` (CLI_OPT_HELP, common to every verb and listed in no
 *     table) prints the verb's help on stdout, exit 0, whatever else is on
 *     the line;
 *   - anything wrong is a usage error, exit 2, whose message names the
 *     option or operand at fault.
 *
 * Ownership: the tables are static. cli_args_t holds pointers into argv and
 * one array of its own, freed by cli_args_free().
 */
#ifndef TSVC_CLI_ARGS_H
#define TSVC_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum {
  CLI_ARG_NONE,   /* a flag: takes no value */
  CLI_ARG_STRING, /* any text */
  CLI_ARG_FILE,   /* a path (completion: files) */
  CLI_ARG_CHOICE, /* one of choices */
  CLI_ARG_NUMBER  /* an integer from min to max */
} cli_arg_kind_t;

typedef struct {
  const char *name;           /* long name, without "--" */
  char short_name;            /* 'c' for -c; 0 for none */
  cli_arg_kind_t kind;
  const char *metavar;        /* "FILE", "N"; NULL for flags (and choices:
                                 the choices joined by '|') */
  const char *const *choices; /* CLI_ARG_CHOICE: NULL-terminated */
  long min, max;              /* CLI_ARG_NUMBER */
  const char *help;           /* one line or more, for the help's list */
} cli_opt_t;

/* What the operands of a verb are, for completion. */
typedef enum {
  CLI_OPERANDS_NONE,
  CLI_OPERANDS_SERVICES, /* service names of the config */
  CLI_OPERANDS_CHOICE    /* the first operand is one of operand_choices */
} cli_operand_kind_t;

#define CLI_MANY 1000000 /* max_operands: no limit */

typedef struct cli_args cli_args_t;

typedef struct {
  const char *name;                   /* "status" */
  int (*run)(const cli_args_t *a);    /* returns the exit code */
  const char *operands;               /* for the usage line: "[NAME]", "NAME..." */
  unsigned min_operands, max_operands;
  cli_operand_kind_t operand_kind;
  const char *const *operand_choices; /* CLI_OPERANDS_CHOICE: NULL-terminated */
  const cli_opt_t *const *opts;       /* NULL-terminated; CLI_OPT_HELP is implied */
  const char *summary;                /* one line, for 'tanuki-svc --help' */
  const char *description;            /* paragraphs, for 'tanuki-svc VERB --help' */
  const char *exit_codes;             /* "0 ok, 1 ..., 2 usage, ..." */
} cli_verb_t;

/* The verbs, in the order of 'tanuki-svc --help'; the last has name NULL. */
extern const cli_verb_t cli_verbs[];

/* Options shared by several verbs (verbs.c). */
extern const cli_opt_t CLI_OPT_HELP, CLI_OPT_CONFIG, CLI_OPT_JSON, CLI_OPT_WATCH,
    CLI_OPT_FOLLOW, CLI_OPT_TAIL, CLI_OPT_FORMAT, CLI_OPT_DETACH, CLI_OPT_RUNTIME,
    CLI_OPT_DOWN, CLI_OPT_LOG_FORMAT, CLI_OPT_LOG_LEVEL, CLI_OPT_OUTPUT, CLI_OPT_COMPOSE_V1,
    CLI_OPT_STORAGE, CLI_OPT_NETWORK, CLI_OPT_PREFIX, CLI_OPT_ONLY;

#define CLI_MAX_OPTS 16 /* options of one verb */

/* A parsed command line. */
struct cli_args {
  const cli_verb_t *verb;
  const char *values[CLI_MAX_OPTS]; /* by index in verb->opts: the last value
                                       given; "" for a flag; NULL when absent */
  long numbers[CLI_MAX_OPTS];       /* CLI_ARG_NUMBER: the value */
  const char **operands;            /* in order, options removed */
  size_t noperands;
};

enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_ERROR = 2 };

/*
 * Parse argv[1..argc) (argv[0] is the verb) by the rules above. Returns
 * CLI_PARSE_OK with *a filled, CLI_PARSE_HELP when help was asked for, or
 * CLI_PARSE_ERROR with a message for people in err (naming the option or
 * operand). *a must be freed with cli_args_free() whatever the result.
 */
int cli_parse(const cli_verb_t *v, int argc, char **argv, cli_args_t *a, char *err,
              size_t errlen);
void cli_args_free(cli_args_t *a);

/* The value of option o: NULL when not given (or o is not the verb's). */
const char *cli_str(const cli_args_t *a, const cli_opt_t *o);
/* Was flag o given? */
bool cli_flag(const cli_args_t *a, const cli_opt_t *o);
/* The number of option o, or dflt when not given. */
long cli_num(const cli_args_t *a, const cli_opt_t *o, long dflt);

/* The verb called name, or NULL. */
const cli_verb_t *cli_verb_find(const char *name);

/* The usage line(s) of v ("usage: tanuki-svc logs NAME [-f] ..."). */
void cli_usage(const cli_verb_t *v, FILE *f);
/* The whole help of v: usage, description, options, exit codes. */
void cli_help(const cli_verb_t *v, FILE *f);
/* 'tanuki-svc --help': every verb with its summary. */
void cli_help_all(FILE *f);

/* The program: find the verb, parse, run. Returns the exit code. */
int cli_main(int argc, char **argv);

#endif /* TSVC_CLI_ARGS_H */
