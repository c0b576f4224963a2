/*
 * cmd_config.c: `tanuki-svc config validate|show`.
 *
 * Exit codes: 0 valid (warnings allowed), 1 invalid or unreadable,
 * 2 usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "config/config.h"
#include "docker/docker.h"
#include "docker/image.h"
#include "runtime/remote.h"

/* ---- the image's ports, when the image is here ------------------------- */

#define PORTS_TIMEOUT_MS 5000 /* a daemon that does not answer: no check */

typedef struct {
  const tsvc_config_t *cfg;
  const tsvc_service_conf_t *svc;
  size_t *warnings;
  int *pending;
} port_job_t;

static void port_inspected(const tsvc_docker_reply_t *r, void *data) {
  port_job_t *j = data;
  const tsvc_service_conf_t *s = j->svc;
  char msg[512];
  (*j->pending)--;
  /* Not here (or no daemon): nothing to say; up checks it after the pull. */
  if (r->status || !tsvc_expose_hint(r->json, s->image, s->port, s->host_port, msg, sizeof msg))
    return;
  fprintf(stderr, "%s:%d:%d: warning: services.%s.port: %s\n", j->cfg->path, s->port_line,
          s->port_column, s->name, msg);
  (*j->warnings)++;
}

static void ports_timeout(uv_timer_t *t) { uv_stop(t->loop); }

/* Warn, as up does, about a port the service's local image does not
   expose. Quietly nothing when no Docker daemon answers in time or the
   runtime is process. Adds the warnings printed to *warnings. */
static void check_image_ports(const tsvc_config_t *cfg, size_t *warnings) {
  if (cfg->runtime == TSVC_RUNTIME_PROCESS) return;
  size_t n = 0;
  for (size_t i = 0; i < cfg->nservices; i++)
    if (cfg->services[i].image && cfg->services[i].port) n++;
  if (!n) return;
  port_job_t *jobs = calloc(n, sizeof *jobs);
  uv_loop_t loop;
  tsvc_docker_t *d = NULL;
  if (!jobs || uv_loop_init(&loop) != 0) {
    free(jobs);
    return;
  }
  int pending = 0;
  tsvc_docker_opts_t dopts;
  tsvc_docker_opts_from_config(cfg, &dopts);
  if (tsvc_docker_new_opts(&loop, &dopts, &d, NULL, 0) == 0) {
    size_t k = 0;
    for (size_t i = 0; i < cfg->nservices; i++) {
      const tsvc_service_conf_t *s = &cfg->services[i];
      if (!s->image || !s->port) continue;
      jobs[k] = (port_job_t){cfg, s, warnings, &pending};
      if (tsvc_docker_image_inspect(d, s->image, port_inspected, &jobs[k], NULL) == 0) pending++;
      k++;
    }
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    uv_timer_start(&timer, ports_timeout, PORTS_TIMEOUT_MS, 0);
    while (pending > 0 && uv_run(&loop, UV_RUN_ONCE)) {
      if (!uv_is_active((uv_handle_t *)&timer)) break; /* timed out */
    }
    uv_close((uv_handle_t *)&timer, NULL);
    tsvc_docker_free(d); /* cancels what is left: no callback after this */
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(jobs);
}

static void print_diag(const tsvc_diag_t *d) {
  for (size_t i = 0; i < d->n; i++) fprintf(stderr, "%s\n", d->lines[i]);
}

int cmd_config(const cli_args_t *a) {
  bool validate = strcmp(a->operands[0], "validate") == 0;
  const char *file = cli_config_path(cli_str(a, &CLI_OPT_CONFIG));
  int rc;

  tsvc_diag_t diag = {0};
  tsvc_config_t *cfg = NULL;
  rc = tsvc_config_load(file, &cfg, &diag);
  print_diag(&diag);
  if (rc) {
    if (diag.n == 0) cli_err("config: %s: %s", file, tsvc_strerror(rc));
    tsvc_diag_free(&diag);
    return TSVC_EXIT_FAIL;
  }
  int exit_code = TSVC_EXIT_OK;
  if (validate) {
    size_t warnings = diag.nwarnings;
    check_image_ports(cfg, &warnings);
    printf("%s: ok (%zu service%s", file, cfg->nservices, cfg->nservices == 1 ? "" : "s");
    if (warnings) printf(", %zu warning%s", warnings, warnings == 1 ? "" : "s");
    printf(")\n");
  } else if (tsvc_config_dump(cfg, stdout) != 0) {
    cli_err("config: cannot write the config: %s", tsvc_strerror(TSVC_EIO));
    exit_code = TSVC_EXIT_FAIL;
  }
  if (fflush(stdout) != 0) exit_code = TSVC_EXIT_FAIL;
  tsvc_config_free(cfg);
  tsvc_diag_free(&diag);
  return exit_code;
}
