/* cmd_check.c: `tanuki-svc check NAME`: one probe now. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "config/config.h"
#include "monitor/check.h"

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

/* Through the monitor: POST check answers with the verdict of the check it
   started ("check"); a monitor of an earlier release answers without it,
   and the last record of the history stands in. Returns an exit code, or
   -1 when no monitor answers. */
static int check_by_monitor(const char *config_path, const char *name) {
  cli_project_t p;
  tsvc_diag_t diag = {0};
  tsvc_config_t *cfg = NULL;
  /* Quietly: the direct path prints the diagnostics. */
  int rc = tsvc_config_load(config_path, &cfg, &diag);
  tsvc_diag_free(&diag);
  tsvc_config_free(cfg);
  if (rc || cli_project_load(config_path, &p)) return -1;
  char *path = cli_service_path(name, "check");
  cli_reply_t r;
  char err[1024];
  rc = path ? cli_api(p.socket, "POST", path, 120000L, &r, err, sizeof err) : CLI_API_UNREACH;
  free(path);
  int exit_code = -1;
  if (rc == CLI_API_NONE) {
    cli_no_monitor(&p);
  } else if (rc == CLI_API_UNREACH) {
    cli_err("%s", err);
    exit_code = TSVC_EXIT_UNREACH;
  } else if (rc == CLI_API_OK && r.status != 200) {
    cli_err("%s", cli_api_error(&r));
    exit_code = r.status == 404 || r.status == 409 ? TSVC_EXIT_FAIL : TSVC_EXIT_UNREACH;
  } else if (rc == CLI_API_OK) {
    json_t *v = json_loads(r.body, 0, NULL), *last = json_object_get(v, "check");
    if (last) {
      /* The probe kind is in the status of the reply. */
      json_t *probe = json_object_get(json_object_get(v, "status"), "probe");
      json_object_set(v, "probe", probe ? probe : json_null());
    } else {
      json_decref(v);
      v = NULL;
      free(r.body);
      r.body = NULL;
      path = cli_service_path(name, NULL);
      rc = path ? cli_api(p.socket, "GET", path, 30000L, &r, err, sizeof err) : CLI_API_UNREACH;
      free(path);
      v = rc == CLI_API_OK && r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
      json_t *h = json_object_get(v, "history");
      last = json_array_get(h, json_array_size(h) - 1);
    }
    const char *result = json_string_value(json_object_get(last, "result"));
    if (!result) {
      cli_err("%s: the monitor has no check result", name);
      exit_code = TSVC_EXIT_UNREACH;
    } else {
      const char *out = json_string_value(json_object_get(last, "output"));
      const char *where = json_string_value(json_object_get(last, "probe_address"));
      printf("%s: %s (%s probe%s%s, by the monitor, %.1f ms): %s\n", name, result,
             json_string_value(json_object_get(v, "probe")), where ? ", " : "",
             where ? where : "",
             json_number_value(json_object_get(last, "latency_ms")),
             json_string_value(json_object_get(last, "message")));
      if (out && *out) printf("%s%s", out, out[strlen(out) - 1] == '\n' ? "" : "\n");
      exit_code = strcmp(result, "ok") == 0                ? TSVC_EXIT_OK
                  : strcmp(result, "runtime_error") == 0 ? TSVC_EXIT_UNREACH
                                                         : TSVC_EXIT_FAIL;
    }
    json_decref(v);
  }
  if (rc == CLI_API_OK) free(r.body);
  cli_project_free(&p);
  return exit_code;
}

int cmd_check(const cli_args_t *a) {
  const char *path = cli_config_path(cli_str(a, &CLI_OPT_CONFIG));
  const char *name = a->operands[0];
  int rc;
  rc = check_by_monitor(path, name);
  if (rc >= 0) return rc;

  cli_project_t p;
  rc = cli_project_load(path, &p);
  if (rc) return rc;
  const tsvc_service_conf_t *svc = tsvc_config_service(p.cfg, name);
  if (!svc) {
    cli_err("no service '%s' in %s", name, path);
    cli_project_free(&p);
    return TSVC_EXIT_FAIL;
  }

  /* Exec and running probes need the service's runtime: inside its
     container under docker (the request's `docker exec`); so do probes of
     an engine on another machine or with docker.probe_via set (the
     runtime knows the route, docs/remote.md). Other native probes reach
     the published port on 127.0.0.1 without one. */
  tsvc_probe_spec_t spec;
  char host[256];
  tsvc_check_where_t where;
  tsvc_check_prepare_where(svc, NULL, &spec, host, sizeof host, &where);
  cli_direct_t d;
  bool have_rt = false;
  bool routed = p.cfg->runtime != TSVC_RUNTIME_PROCESS &&
                (p.cfg->docker.probe_via != TSVC_VIA_AUTO ||
                 strncmp(p.cfg->docker.host, "unix://", 7) != 0);
  if (spec.kind == TSVC_PROBE_EXEC || spec.kind == TSVC_PROBE_RUNNING || routed)
    have_rt = cli_direct_open(&p, &d, true) == 0;
  if (have_rt) tsvc_check_prepare_where(svc, d.rt, &spec, host, sizeof host, &where);
  uv_loop_t own;
  uv_loop_t *loop = have_rt ? &d.loop : &own;
  if (!have_rt) uv_loop_init(&own);
  outcome_t o = {0};
  rc = tsvc_check_start(loop, have_rt ? d.rt : NULL, svc, &spec, done_cb, &o, NULL);
  int exit_code;
  if (rc) {
    cli_err("%s: cannot run the %s probe here: %s", name, tsvc_probe_kind_name(spec.kind),
            rc == TSVC_EINVAL ? "it needs a runtime (docker or process)" : tsvc_strerror(rc));
    exit_code = TSVC_EXIT_UNREACH;
  } else {
    while (!o.done && uv_run(loop, UV_RUN_ONCE)) {
    }
    const char *kind = tsvc_probe_kind_name(spec.kind);
    if (spec.kind == TSVC_PROBE_EXEC || spec.kind == TSVC_PROBE_RUNNING)
      printf("%s: %s (%s probe%s, %.1f ms): %s\n", name, tsvc_result_name(o.res.result), kind,
             have_rt ? " in the container" : " on this host", (double)o.res.latency_us / 1000.0,
             o.res.message);
    else
      printf("%s: %s (%s probe %s, %.1f ms): %s\n", name, tsvc_result_name(o.res.result),
             kind, where.address, (double)o.res.latency_us / 1000.0, o.res.message);
    if (o.res.output && *o.res.output) printf("%s%s", o.res.output,
                                              o.res.output[strlen(o.res.output) - 1] == '\n' ? "" : "\n");
    free(o.res.output);
    exit_code = o.res.result == TSVC_RESULT_OK ? TSVC_EXIT_OK
                : o.res.result == TSVC_RESULT_RUNTIME_ERROR ? TSVC_EXIT_UNREACH
                                                           : TSVC_EXIT_FAIL;
  }
  if (have_rt) {
    cli_direct_close(&d);
  } else {
    uv_run(&own, UV_RUN_DEFAULT);
    uv_loop_close(&own);
  }
  cli_project_free(&p);
  return exit_code;
}
