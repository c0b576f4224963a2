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

static const char usage_text[] =
    "usage: tanuki-svc pull [-c FILE] [NAME...]\n"
    "\n"
    "Pull the images of the named services (default: every enabled service\n"
    "with an image, external ones left out), all at once, whatever their\n"
    "pull_policy. Credentials come from the docker CLI's config.json\n"
    "($DOCKER_CONFIG/config.json, else ~/.docker/config.json, its auths);\n"
    "credential helpers (credsStore, credHelpers) are not run.\n"
    "On a terminal, a live line per image (layers, bytes, rate); otherwise a\n"
    "log line when each pull starts and one when it ends (size, seconds).\n"
    "\n"
    "  -c, --config FILE   the config (default: $TANUKI_CONFIG, else tanuki.yaml)\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit: 0 every image pulled, 1 a pull failed, 2 usage or an unknown\n"
    "service, 3 the Docker daemon cannot be reached.\n";

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

int cmd_pull(int argc, char **argv) {
  const char *copt = NULL;
  const char **names = calloc((size_t)argc + 1, sizeof *names);
  size_t nnames = 0;
  if (!names) {
    cli_err("out of memory");
    return TSVC_EXIT_FAIL;
  }
  /* Minimal parsing: the shared option parser replaces it. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage_text, stdout);
      free(names);
      return TSVC_EXIT_OK;
    } else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
      if (i + 1 >= argc) {
        cli_err("pull: %s needs a FILE", a);
        free(names);
        return TSVC_EXIT_USAGE;
      }
      copt = argv[++i];
    } else if (strncmp(a, "--config=", 9) == 0) {
      copt = a + 9;
    } else if (a[0] == '-' && a[1]) {
      cli_err("pull: unknown option '%s' (see 'tanuki-svc pull --help')", a);
      free(names);
      return TSVC_EXIT_USAGE;
    } else {
      names[nnames++] = a;
    }
  }

  cli_project_t p;
  int rc = cli_project_load(cli_config_path(copt), &p);
  if (rc) {
    free(names);
    return rc;
  }
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
  rc = tsvc_docker_new(&loop, cfg->docker.host, &d, err, sizeof err);
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
  free(names);
  cli_project_free(&p);
  return exit_code;
}
