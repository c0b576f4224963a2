/* main.c: the tanuki-svc program. Everything but main() is in the tsvc_cli
   library (so that tests can drive the command line in-process); the verbs
   and their options are the table of verbs.c. */
#include "cli/args.h"

int main(int argc, char **argv) { return cli_main(argc, argv); }
