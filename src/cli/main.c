/* main.c: the tanuki-svc program's entry and its table of verbs. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command_t;

static const command_t commands[] = {
    {"up", cmd_up, "start the services and monitor them (-d: in the background)"},
    {"down", cmd_down, "stop the services and the monitor"},
    {"start", cmd_start, "start services by name"},
    {"stop", cmd_stop, "stop services by name (the monitor leaves them stopped)"},
    {"restart", cmd_restart, "restart services by name"},
    {"status", cmd_status, "show the services' health (--json, --watch)"},
    {"check", cmd_check, "run one probe of a service now (exit 0 healthy, 1 not)"},
    {"logs", cmd_logs, "print a service's output (-f to follow)"},
    {"config", cmd_config, "validate or show tanuki.yaml"},
    {"env", cmd_env, "print connection variables (POSTGRES_URL, REDIS_URL, ...)"},
    {"version", cmd_version, "print the version and those of the libraries in use"},
    /* Hidden: the bash completion's helper (cmd_complete.c). */
    {"__complete", cmd_complete, NULL},
};

void cli_err(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tanuki-svc: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

bool cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return true;
  }
  return false;
}

static void usage(FILE *f) {
  fputs("usage: tanuki-svc COMMAND [ARGS...]\n\ncommands:\n", f);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (commands[i].summary) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fputs("\nRun 'tanuki-svc COMMAND --help' for a command's options.\n"
        "Exit codes: 0 ok, 1 unhealthy or not found, 2 usage, 3 cannot reach\n"
        "the monitor or the runtime.\n",
        f);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return TSVC_EXIT_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return TSVC_EXIT_OK;
  }
  if (strcmp(argv[1], "--version") == 0) return cmd_version(0, NULL);
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
  cli_err("unknown command '%s' (see 'tanuki-svc --help')", argv[1]);
  return TSVC_EXIT_USAGE;
}
