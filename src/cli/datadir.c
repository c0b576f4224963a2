/* datadir.c: where a service's data is, for `status NAME` and `env`. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "runtime/docker_rt.h"
#include "runtime/process.h"
#include "runtime/remote.h"

typedef struct {
  bool done;
  int status;
} ping_t;

static void on_ping(int status, const char *msg, void *data) {
  (void)msg;
  ping_t *p = data;
  p->done = true;
  p->status = status;
}

const char *cli_runtime_in_use(const cli_project_t *p) {
  cli_reply_t r;
  char err[512];
  if (cli_api(p->socket, "GET", "/v1/services", 10000L, &r, err, sizeof err) == CLI_API_OK) {
    json_t *v = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    const char *rt = json_string_value(json_object_get(v, "runtime"));
    const char *kind = rt && strcmp(rt, "docker") == 0    ? "docker"
                       : rt && strcmp(rt, "process") == 0 ? "process"
                                                          : NULL;
    json_decref(v);
    free(r.body);
    if (kind) return kind;
  }
  if (p->cfg->runtime == TSVC_RUNTIME_DOCKER) return "docker";
  if (p->cfg->runtime == TSVC_RUNTIME_PROCESS) return "process";
  /* auto, and no monitor to ask: as `up` would choose (remote.h: a named
     engine is docker's, answering or not). */
  if (p->cfg->docker.host_named) return "docker";
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return "process";
  ping_t ping = {0};
  int rc = tsvc_docker_probe_engine(&loop, p->cfg, on_ping, &ping, NULL, 0);
  if (rc == 0) uv_run(&loop, UV_RUN_DEFAULT);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  tsvc_runtime_kind_t kind = TSVC_RUNTIME_PROCESS;
  tsvc_runtime_choose(p->cfg->runtime, p->cfg->docker.host_named,
                      rc ? rc : ping.done ? ping.status : TSVC_EUNREACH, &kind);
  return kind == TSVC_RUNTIME_DOCKER ? "docker" : "process";
}

int cli_data_location(const cli_project_t *p, const tsvc_service_conf_t *svc,
                      const char *runtime, char *buf, size_t len) {
  buf[0] = '\0';
  if (svc->external) return 1;
  if (strcmp(runtime, "docker") == 0) {
    if (svc->volumes.n == 0) {
      snprintf(buf, len, "inside the container (no volumes; the image's own volumes, if any)");
      return 0;
    }
    tsvc_buf_t b;
    tsvc_buf_init(&b, len);
    tsvc_buf_addf(&b, "volume%s ", svc->volumes.n > 1 ? "s" : "");
    for (size_t i = 0; i < svc->volumes.n; i++)
      tsvc_buf_addf(&b, "%s%s", i ? ", " : "", svc->volumes.v[i]);
    tsvc_strlcpy(buf, b.data ? b.data : "", len);
    tsvc_buf_free(&b);
    return 0;
  }
  if (!tsvc_process_has_data(svc)) return 1;
  tsvc_process_layout_t lay;
  char err[256];
  if (tsvc_process_layout_init(&lay, p->config_path, p->state_dir, geteuid() == 0, err,
                               sizeof err) != 0)
    return 1;
  char dir[PATH_MAX];
  bool old = false;
  if (tsvc_process_data_dir(&lay, svc, dir, sizeof dir, &old) != 0) return 1;
  snprintf(buf, len, "%s%s", dir, old ? " (made by an older version, beside the config)" : "");
  return 0;
}
