/*
 * cli: the tanuki-svc program. Each verb is one function in a cmd_*.c file,
 * listed in the table of main.c.
 *
 * Exit codes (a documented contract, see README.md):
 *   0 ok, 1 unhealthy or not found (or invalid config), 2 usage,
 *   3 cannot reach the monitor or the runtime.
 */
#ifndef TSVC_CLI_H
#define TSVC_CLI_H

#include <stdbool.h>

enum {
  TSVC_EXIT_OK = 0,
  TSVC_EXIT_FAIL = 1,
  TSVC_EXIT_USAGE = 2,
  TSVC_EXIT_UNREACH = 3
};

#define TSVC_DEFAULT_CONFIG "tanuki.yaml"

/* Prints "tanuki-svc: fatal: ..." style messages on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when argv holds -h or --help. */
bool cli_wants_help(int argc, char **argv);

int cmd_check(int argc, char **argv);
int cmd_up(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_config(int argc, char **argv);

#endif
