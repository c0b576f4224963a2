/* cmd_check.c: `tanuki-svc check NAME [-c FILE]`: one probe now. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "monitor/check.h"

static const char usage_text[] =
    "usage: tanuki-svc check NAME [-c FILE]\n"
    "\n"
    "Run the health probe of service NAME once, now, and print its verdict.\n"
    "The probe is the one the monitor uses (healthcheck.probe, or the native\n"
    "equivalent of healthcheck.command).\n"
    "\n"
    "  -c, --config FILE  the config (default: $TANUKI_CONFIG, else tanuki.yaml)\n"
    "  -h, --help         this text\n"
    "\n"
    "Exit: 0 healthy, 1 unhealthy or no such service, 2 usage, 3 the probe\n"
    "could not run (runtime unreachable).\n";

typedef struct {
  tsvc_probe_result_t res;
  bool done;
} outcome_t;

static void done_cb(const tsvc_probe_result_t *res, void *data) {
  outcome_t *o = data;
  o->res = *res;
  o->res.output = res->output ? strdup(res->output) : NULL;
  o->done = true;
}

int cmd_check(int argc, char **argv) {
  const char *path = getenv("TANUKI_CONFIG");
  if (!path || !*path) path = TSVC_DEFAULT_CONFIG;
  static const struct option opts[] = {
      {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'}, {0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
    switch (c) {
    case 'c': path = optarg; break;
    case 'h': fputs(usage_text, stdout); return TSVC_EXIT_OK;
    default: fputs(usage_text, stderr); return TSVC_EXIT_USAGE;
    }
  }
  if (optind != argc - 1) {
    fputs(usage_text, stderr);
    return TSVC_EXIT_USAGE;
  }
  const char *name = argv[optind];

  tsvc_config_t *cfg = NULL;
  tsvc_diag_t diag = {0};
  int rc = tsvc_config_load(path, &cfg, &diag);
  for (size_t i = 0; i < diag.n; i++) fprintf(stderr, "%s\n", diag.lines[i]);
  tsvc_diag_free(&diag);
  if (rc) {
    cli_err("cannot load %s", path);
    return TSVC_EXIT_FAIL;
  }
  const tsvc_service_conf_t *svc = tsvc_config_service(cfg, name);
  if (!svc) {
    cli_err("no service '%s' in %s", name, path);
    tsvc_config_free(cfg);
    return TSVC_EXIT_FAIL;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_probe_spec_t spec;
  char host[256];
  tsvc_check_prepare(svc, NULL, &spec, host, sizeof host);
  outcome_t o = {0};
  rc = tsvc_check_start(&loop, NULL, svc, &spec, done_cb, &o, NULL);
  int exit_code;
  if (rc) {
    cli_err("%s: cannot run the %s probe here: %s", name, tsvc_probe_kind_name(spec.kind),
            rc == TSVC_EINVAL ? "it needs a runtime (docker or process)" : tsvc_strerror(rc));
    exit_code = TSVC_EXIT_UNREACH;
  } else {
    uv_run(&loop, UV_RUN_DEFAULT);
    const char *kind = tsvc_probe_kind_name(spec.kind);
    if (spec.kind == TSVC_PROBE_EXEC)
      printf("%s: %s (%s probe, %.1f ms): %s\n", name, tsvc_result_name(o.res.result), kind,
             (double)o.res.latency_us / 1000.0, o.res.message);
    else
      printf("%s: %s (%s probe %s:%d, %.1f ms): %s\n", name, tsvc_result_name(o.res.result),
             kind, spec.host ? spec.host : "?", spec.port, (double)o.res.latency_us / 1000.0,
             o.res.message);
    if (o.res.output && *o.res.output) printf("%s%s", o.res.output,
                                              o.res.output[strlen(o.res.output) - 1] == '\n' ? "" : "\n");
    free(o.res.output);
    exit_code = o.res.result == TSVC_RESULT_OK ? TSVC_EXIT_OK
                : o.res.result == TSVC_RESULT_RUNTIME_ERROR ? TSVC_EXIT_UNREACH
                                                           : TSVC_EXIT_FAIL;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  tsvc_config_free(cfg);
  return exit_code;
}
