/*
 * cmd_config.c: `tanuki-svc config validate|show`.
 *
 * Exit codes: 0 valid (warnings allowed), 1 invalid or unreadable,
 * 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"

static void print_diag(const tsvc_diag_t *d) {
  for (size_t i = 0; i < d->n; i++) fprintf(stderr, "%s\n", d->lines[i]);
}

int cmd_config(const cli_args_t *a) {
  bool validate = strcmp(a->operands[0], "validate") == 0;
  const char *file = cli_config_path(cli_str(a, &CLI_OPT_CONFIG));
  int rc;

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
