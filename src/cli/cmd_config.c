/*
 * cmd_config.c: `tanuki-svc config validate|show [-c FILE]`.
 *
 * Exit codes: 0 valid (warnings allowed), 1 invalid or unreadable,
 * 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"

static void config_usage(FILE *f) {
  fputs("usage: tanuki-svc config validate [-c FILE]\n"
        "       tanuki-svc config show [-c FILE]\n"
        "\n"
        "  validate  check FILE; print every error and warning as\n"
        "            FILE:LINE:COLUMN: error: MESSAGE on stderr\n"
        "  show      print the effective config (defaults filled in,\n"
        "            secrets masked) as YAML\n"
        "\n"
        "  -c, --config FILE  the config file (default: $TANUKI_CONFIG, else\n"
        "                     ./" TSVC_DEFAULT_CONFIG ")\n"
        "\n"
        "Exit codes: 0 valid, 1 invalid or unreadable, 2 usage.\n",
        f);
}

static void print_diag(const tsvc_diag_t *d) {
  for (size_t i = 0; i < d->n; i++) fprintf(stderr, "%s\n", d->lines[i]);
}

/* Parses [-c FILE] after the verb. Returns 0, or TSVC_EXIT_USAGE. */
static int parse_opts(int argc, char **argv, const char **file) {
  const char *env = getenv("TANUKI_CONFIG");
  *file = env && *env ? env : TSVC_DEFAULT_CONFIG;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
      if (i + 1 >= argc) {
        cli_err("config: %s needs a FILE", a);
        return TSVC_EXIT_USAGE;
      }
      *file = argv[++i];
    } else if (strncmp(a, "--config=", 9) == 0) {
      *file = a + 9;
    } else if (strncmp(a, "-c", 2) == 0 && a[2]) {
      *file = a + 2;
    } else {
      cli_err("config: unexpected argument '%s' (see 'tanuki-svc config --help')", a);
      return TSVC_EXIT_USAGE;
    }
  }
  if (!**file) {
    cli_err("config: empty FILE");
    return TSVC_EXIT_USAGE;
  }
  return 0;
}

int cmd_config(int argc, char **argv) {
  if (argc < 2) {
    config_usage(stderr);
    return TSVC_EXIT_USAGE;
  }
  const char *verb = argv[1];
  if (strcmp(verb, "-h") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "help") == 0) {
    config_usage(stdout);
    return TSVC_EXIT_OK;
  }
  bool validate = strcmp(verb, "validate") == 0;
  if (!validate && strcmp(verb, "show") != 0) {
    cli_err("config: unknown subcommand '%s' (validate or show)", verb);
    return TSVC_EXIT_USAGE;
  }
  if (cli_wants_help(argc - 1, argv + 1)) {
    config_usage(stdout);
    return TSVC_EXIT_OK;
  }
  const char *file;
  int rc = parse_opts(argc, argv, &file);
  if (rc) return rc;

  tsvc_diag_t diag = {0};
  tsvc_config_t *cfg = NULL;
  rc = tsvc_config_load(file, &cfg, &diag);
  print_diag(&diag);
  if (rc) {
    if (diag.n == 0) cli_err("config: %s: %s", file, tsvc_strerror(rc));
    tsvc_diag_free(&diag);
    return TSVC_EXIT_FAIL;
  }
  int exit_code = TSVC_EXIT_OK;
  if (validate) {
    printf("%s: ok (%zu service%s", file, cfg->nservices, cfg->nservices == 1 ? "" : "s");
    if (diag.nwarnings) printf(", %zu warning%s", diag.nwarnings, diag.nwarnings == 1 ? "" : "s");
    printf(")\n");
  } else if (tsvc_config_dump(cfg, stdout) != 0) {
    cli_err("config: cannot write the config: %s", tsvc_strerror(TSVC_EIO));
    exit_code = TSVC_EXIT_FAIL;
  }
  if (fflush(stdout) != 0) exit_code = TSVC_EXIT_FAIL;
  tsvc_config_free(cfg);
  tsvc_diag_free(&diag);
  return exit_code;
}
