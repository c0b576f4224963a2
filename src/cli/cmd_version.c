/* cmd_version.c: `tanuki-svc version`. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_version(const cli_args_t *a) {
  (void)a;
  printf("tanuki-svc %s\n", TSVC_VERSION);
  return TSVC_EXIT_OK;
}
