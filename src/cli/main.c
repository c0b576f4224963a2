/* main.c: the tanuki-svc program. Everything but main() is in the tsvc_cli
   library (so that tests can drive the command line in-process); the verbs
   and their options are the table of verbs.c. */
#include <string.h>

#include "cli/args.h"
#include "cli/cli.h"

int main(int argc, char **argv) {
  /* Hidden, for the bash completion: bash's words, not a command line. */
  if (argc > 1 && strcmp(argv[1], "__complete") == 0) return cli_complete(argc - 1, argv + 1);
  return cli_main(argc, argv);
}
