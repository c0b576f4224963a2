/* direct.c: acting on services without a monitor, through the runtime on a
   loop of our own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/util.h"
#include "runtime/docker_rt.h"

typedef struct {
  bool done;
  int status;
  char msg[1024];
} wait_t;

static void on_done(int status, const char *msg, void *data) {
  wait_t *w = data;
  w->done = true;
  w->status = status;
  tsvc_strlcpy(w->msg, msg ? msg : "", sizeof w->msg);
}

int cli_direct_open(const cli_project_t *p, cli_direct_t *d, bool quiet) {
  memset(d, 0, sizeof *d);
  uv_loop_init(&d->loop);
  if (p->cfg->runtime == TSVC_RUNTIME_PROCESS) {
    if (!quiet)
      cli_err("the process runtime runs services as children of the monitor: "
              "start one with 'tanuki-svc up'");
    uv_loop_close(&d->loop);
    return TSVC_EXIT_UNREACH;
  }
  wait_t w = {0};
  char why[1024] = "";
  int rc = tsvc_docker_probe_engine(&d->loop, p->cfg, on_done, &w, why, sizeof why);
  if (!rc) uv_run(&d->loop, UV_RUN_DEFAULT);
  if (rc || w.status) {
    if (!quiet) {
      const char *msg = rc ? (why[0] ? why : tsvc_strerror(rc)) : w.msg;
      if (p->cfg->runtime == TSVC_RUNTIME_AUTO && !p->cfg->docker.host_named)
        cli_err("no docker daemon answers at %s (%s); under the process runtime services "
                "run as children of the monitor: start one with 'tanuki-svc up'",
                p->cfg->docker.host, msg);
      else
        cli_err("the docker engine at %s cannot be reached: %s", p->cfg->docker.host, msg);
    }
    uv_run(&d->loop, UV_RUN_DEFAULT);
    uv_loop_close(&d->loop);
    return TSVC_EXIT_UNREACH;
  }
  char err[512] = "";
  rc = tsvc_docker_runtime_new(&d->loop, p->cfg, p->config_path, &d->rt, err, sizeof err);
  if (rc) {
    if (!quiet) cli_err("cannot set up the docker runtime: %s", err[0] ? err : tsvc_strerror(rc));
    uv_loop_close(&d->loop);
    return TSVC_EXIT_UNREACH;
  }
  d->kind = "docker";
  return 0;
}

int cli_direct_op(cli_direct_t *d, const char *op, const tsvc_service_conf_t *svc, char *msg,
                  size_t msglen) {
  wait_t w = {0};
  const tsvc_runtime_ops_t *o = d->rt->ops;
  int (*fn)(tsvc_runtime_t *, const tsvc_service_conf_t *, tsvc_rt_done_cb, void *) =
      strcmp(op, "start") == 0     ? o->start
      : strcmp(op, "stop") == 0    ? o->stop
      : strcmp(op, "restart") == 0 ? o->restart
      : strcmp(op, "remove") == 0  ? o->remove
                                   : NULL;
  int rc = fn ? fn(d->rt, svc, on_done, &w) : TSVC_EINVAL;
  if (rc) {
    tsvc_strlcpy(msg, tsvc_strerror(rc), msglen);
    return rc;
  }
  while (!w.done && uv_run(&d->loop, UV_RUN_ONCE)) {
  }
  tsvc_strlcpy(msg, w.msg[0] ? w.msg : tsvc_strerror(w.status), msglen);
  return w.status;
}

typedef struct {
  bool done;
  int status;
  char msg[1400];
} inspect_wait_t;

static void on_inspect(int status, const char *msg, const tsvc_rt_info_t *info, void *data) {
  (void)info;
  inspect_wait_t *w = data;
  w->done = true;
  w->status = status;
  tsvc_strlcpy(w->msg, msg ? msg : "", sizeof w->msg);
}

int cli_direct_inspect(cli_direct_t *d, const tsvc_service_conf_t *svc, char *msg,
                       size_t msglen) {
  inspect_wait_t w = {0};
  int rc = d->rt->ops->inspect(d->rt, svc, on_inspect, &w);
  if (rc) {
    tsvc_strlcpy(msg, tsvc_strerror(rc), msglen);
    return rc;
  }
  while (!w.done && uv_run(&d->loop, UV_RUN_ONCE)) {
  }
  tsvc_strlcpy(msg, w.msg[0] ? w.msg : tsvc_strerror(w.status), msglen);
  return w.status;
}

void cli_direct_close(cli_direct_t *d) {
  if (d->rt) tsvc_runtime_free(d->rt);
  d->rt = NULL;
  /* Let the client's handles close. */
  uv_run(&d->loop, UV_RUN_DEFAULT);
  uv_loop_close(&d->loop);
}
