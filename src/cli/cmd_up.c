/* cmd_up.c: `tanuki-svc up`: start the services and monitor them in the
   foreground until Ctrl-C. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "log/log.h"
#include "manager/manager.h"
#include "tsvc.h"

static const char usage_text[] =
    "usage: tanuki-svc up [-c FILE] [--runtime auto|docker|process] [--down]\n"
    "                     [--log-format text|json] [--log-level LEVEL]\n"
    "\n"
    "Start every enabled service of the config (in depends_on order; a running\n"
    "container of ours is adopted) and monitor them in the foreground, logging\n"
    "every change of state. Ctrl-C (SIGINT) or SIGTERM stops monitoring; the\n"
    "services keep running unless --down is given (under the process runtime\n"
    "they are children of this program and stop with it).\n"
    "\n"
    "  -c, --config FILE   the config (default: $TANUKI_CONFIG, else tanuki.yaml)\n"
    "      --runtime R     override the config's runtime\n"
    "      --down          stop the services too when monitoring stops\n"
    "      --log-format F  text (key=value) or json; default: monitor.log_format\n"
    "      --log-level L   debug, info, warn or error (default info)\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit: 0 after a clean stop, 1 invalid config, 2 usage, 3 the runtime\n"
    "cannot be reached.\n";

int cmd_up(int argc, char **argv) {
  const char *path = getenv("TANUKI_CONFIG");
  if (!path || !*path) path = TSVC_DEFAULT_CONFIG;
  const char *runtime = NULL, *fmt = NULL, *level = "info";
  bool down = false;
  enum { OPT_RUNTIME = 256, OPT_DOWN, OPT_FMT, OPT_LEVEL };
  static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                       {"runtime", required_argument, NULL, OPT_RUNTIME},
                                       {"down", no_argument, NULL, OPT_DOWN},
                                       {"log-format", required_argument, NULL, OPT_FMT},
                                       {"log-level", required_argument, NULL, OPT_LEVEL},
                                       {"help", no_argument, NULL, 'h'},
                                       {0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': path = optarg; break;
    case OPT_RUNTIME: runtime = optarg; break;
    case OPT_DOWN: down = true; break;
    case OPT_FMT: fmt = optarg; break;
    case OPT_LEVEL: level = optarg; break;
    case 'h': fputs(usage_text, stdout); return TSVC_EXIT_OK;
    default: fputs(usage_text, stderr); return TSVC_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    fputs(usage_text, stderr);
    return TSVC_EXIT_USAGE;
  }
  tsvc_log_level_t lvl;
  if (tsvc_log_level_parse(level, &lvl)) {
    cli_err("unknown log level '%s' (debug, info, warn, error)", level);
    return TSVC_EXIT_USAGE;
  }
  if (fmt && strcmp(fmt, "text") != 0 && strcmp(fmt, "json") != 0) {
    cli_err("unknown log format '%s' (text, json)", fmt);
    return TSVC_EXIT_USAGE;
  }

  /* Signals arrive as messages to this thread (sigwait), never handled in
     place; blocked before the manager's thread exists, so it inherits the
     mask and never sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  char err[8192];
  tsvc_manager_t *m = NULL;
  tsvc_manager_opts_t mo = {.config_path = path, .runtime = runtime};
  int rc = tsvc_manager_new(&mo, &m, err, sizeof err);
  if (err[0]) fprintf(stderr, "%s\n", err);
  if (rc) {
    cli_err("cannot load %s", path);
    return rc == TSVC_EINVAL ? TSVC_EXIT_USAGE : TSVC_EXIT_FAIL;
  }
  bool json = fmt ? strcmp(fmt, "json") == 0
                  : tsvc_manager_config(m)->monitor.log_format == TSVC_LOGFMT_JSON;
  tsvc_log_setup(stderr, lvl, json);

  rc = tsvc_manager_start_services(m, err, sizeof err);
  if (rc == TSVC_EUNREACH || (rc && !tsvc_manager_runtime_name(m)[0])) {
    cli_err("%s", err);
    tsvc_manager_free(m);
    return TSVC_EXIT_UNREACH;
  }
  if (rc) {
    /* Some services could not start; the others run and are monitored. */
    for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
      TSVC_LOG(TSVC_LOG_ERROR, NULL, "could not start %s", line);
  }
  TSVC_LOG(TSVC_LOG_INFO, NULL,
           "monitoring %zu services on the %s runtime; Ctrl-C stops monitoring%s",
           tsvc_manager_config(m)->nservices, tsvc_manager_runtime_name(m),
           down ? " and the services" : "");

  int sig = 0;
  for (;;) {
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      TSVC_LOG(TSVC_LOG_WARN, NULL, "SIGHUP: reloading is not supported yet; ignored");
      continue;
    }
    break;
  }
  TSVC_LOG(TSVC_LOG_INFO, NULL, "%s: stopping monitoring", sig == SIGINT ? "SIGINT" : "SIGTERM");
  int exit_code = TSVC_EXIT_OK;
  if (down) {
    rc = tsvc_manager_stop_services(m, err, sizeof err);
    if (rc) {
      for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
        TSVC_LOG(TSVC_LOG_ERROR, NULL, "could not stop %s", line);
      exit_code = TSVC_EXIT_FAIL;
    }
  } else {
    tsvc_manager_stop_monitoring(m);
  }
  tsvc_manager_free(m);
  return exit_code;
}
