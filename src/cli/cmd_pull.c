/*
 * cmd_pull.c: `tanuki-svc pull [-c FILE] [NAME...]`: pull the images of
 * the named services (default: every enabled service with an image that we
 * start, external ones left out), all at once, through the Docker Engine
 * API, with the credentials of the docker CLI's config.json. pull_policy
 * does not matter here: asking is pulling, as `docker compose pull` does.
 *
 * Progress: on a terminal a live line per image; else the pulls' log lines.
 * Exit: 0 every image pulled, 1 some pull failed (each named with the
 * registry's words), 2 usage or an unknown service, 3 the Docker daemon
 * cannot be reached.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli/cli.h"
#include "common/util.h"
#include "docker/docker.h"
#include "log/log.h"
#include "runtime/docker_pull.h"
#include "runtime/remote.h"

typedef struct {
  const tsvc_service_conf_t *svc;
  int status;
  char msg[2100];
  bool done;
} job_t;

static void on_pulled(int status, const char *msg, void *data) {
  job_t *j = data;
  j->status = status;
  j->done = true;
  if (msg) tsvc_strlcpy(j->msg, msg, sizeof j->msg);
}

int cmd_pull(const cli_args_t *a) {
  const char *const *names = a->operands;
  size_t nnames = a->noperands;
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  const tsvc_config_t *cfg = p.cfg;
  int exit_code = TSVC_EXIT_OK;
  job_t *jobs = calloc(cfg->nservices + nnames + 1, sizeof *jobs);
  size_t njobs = 0;
  if (!jobs) {
    cli_err("out of memory");
    exit_code = TSVC_EXIT_FAIL;
    goto out;
  }
  for (size_t i = 0; i < nnames; i++) {
    const tsvc_service_conf_t *s = tsvc_config_service(cfg, names[i]);
    if (!s) {
      cli_err("pull: no service named '%s' in %s", names[i], p.config_path);
      exit_code = TSVC_EXIT_USAGE;
      goto out;
    }
    if (!s->image) {
      cli_err("pull: service '%s' has no image", names[i]);
      exit_code = TSVC_EXIT_USAGE;
      goto out;
    }
    jobs[njobs++].svc = s;
  }
  if (!nnames)
    for (size_t i = 0; i < cfg->nservices; i++) {
      const tsvc_service_conf_t *s = &cfg->services[i];
      if (s->enabled && !s->external && s->image) jobs[njobs++].svc = s;
    }
  if (!njobs) {
    fprintf(stderr, "tanuki-svc: pull: no service of %s has an image to pull\n", p.config_path);
    goto out;
  }

  cli_progress_setup(TSVC_LOG_INFO, cfg->monitor.log_format == TSVC_LOGFMT_JSON);
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_docker_t *d = NULL;
  char err[512];
  tsvc_docker_opts_t dopts;
  tsvc_docker_opts_from_config(cfg, &dopts);
  rc = tsvc_docker_new_opts(&loop, &dopts, &d, err, sizeof err);
  if (rc) {
    cli_progress_end();
    cli_err("pull: %s", err);
    exit_code = TSVC_EXIT_FAIL;
  } else {
    for (size_t i = 0; i < njobs; i++) {
      job_t *j = &jobs[i];
      rc = tsvc_docker_pull(d, j->svc->name, j->svc->image, on_pulled, j, NULL, j->msg,
                            sizeof j->msg);
      if (rc) {
        j->done = true;
        j->status = rc;
      }
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* until every pull has ended */
    tsvc_docker_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    cli_progress_end();
    for (size_t i = 0; i < njobs; i++) {
      job_t *j = &jobs[i];
      if (!j->status) continue;
      cli_err("%s: %s", j->svc->name, j->msg[0] ? j->msg : tsvc_strerror(j->status));
      if (j->status == TSVC_EUNREACH && exit_code != TSVC_EXIT_FAIL)
        exit_code = TSVC_EXIT_UNREACH;
      else
        exit_code = TSVC_EXIT_FAIL;
    }
  }
  uv_loop_close(&loop);
out:
  free(jobs);
  cli_project_free(&p);
  return exit_code;
}
