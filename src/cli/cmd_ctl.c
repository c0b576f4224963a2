/*
 * cmd_ctl.c: `tanuki-svc start|stop|restart NAME...` and `tanuki-svc down`.
 *
 * Through the running monitor's API; with no monitor, through the runtime
 * directly (the services are then not monitored).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "cli/cli.h"

static const char *past(const char *verb) {
  return strcmp(verb, "start") == 0 ? "started" : strcmp(verb, "stop") == 0 ? "stopped"
                                                                             : "restarted";
}

static int ctl(const char *verb, const cli_args_t *a) {
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  int exit_code = TSVC_EXIT_OK;
  bool direct = false;
  cli_direct_t d = {0};
  bool direct_open = false;
  for (size_t i = 0; i < a->noperands; i++) {
    const char *name = a->operands[i];
    if (!direct) {
      char *path = cli_service_path(name, verb);
      cli_reply_t r;
      char err[1024];
      rc = path ? cli_api(p.socket, "POST", path, 180000L, &r, err, sizeof err) : CLI_API_UNREACH;
      free(path);
      if (rc == CLI_API_UNREACH) {
        cli_err("%s", err);
        exit_code = TSVC_EXIT_UNREACH;
        break;
      }
      if (rc == CLI_API_OK) {
        if (r.status == 200) {
          printf("%s: %s\n", name, past(verb));
        } else {
          cli_err("%s: %s", name, cli_api_error(&r));
          if (exit_code == TSVC_EXIT_OK) exit_code = TSVC_EXIT_FAIL;
        }
        free(r.body);
        continue;
      }
      direct = true;
      cli_no_monitor(&p);
    }
    const tsvc_service_conf_t *svc = tsvc_config_service(p.cfg, name);
    if (!svc) {
      cli_err("no service named '%s' in %s", name, p.config_path);
      if (exit_code == TSVC_EXIT_OK) exit_code = TSVC_EXIT_FAIL;
      continue;
    }
    if (svc->external) {
      cli_err("%s is external: only watched, never started, stopped or restarted", name);
      if (exit_code == TSVC_EXIT_OK) exit_code = TSVC_EXIT_FAIL;
      continue;
    }
    if (!direct_open) {
      rc = cli_direct_open(&p, &d, false);
      if (rc) {
        exit_code = rc;
        break;
      }
      direct_open = true;
    }
    char msg[1024];
    rc = cli_direct_op(&d, verb, svc, msg, sizeof msg);
    if (rc) {
      cli_err("%s: %s", name, msg);
      if (exit_code == TSVC_EXIT_OK)
        exit_code = rc == TSVC_EUNREACH ? TSVC_EXIT_UNREACH : TSVC_EXIT_FAIL;
    } else {
      printf("%s: %s (not monitored)\n", name, past(verb));
    }
  }
  if (direct_open) cli_direct_close(&d);
  cli_project_free(&p);
  return exit_code;
}

int cmd_start(const cli_args_t *a) { return ctl("start", a); }
int cmd_stop(const cli_args_t *a) { return ctl("stop", a); }
int cmd_restart(const cli_args_t *a) { return ctl("restart", a); }

int cmd_down(const cli_args_t *a) {
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  cli_reply_t r;
  char err[1024];
  int exit_code = TSVC_EXIT_OK;
  rc = cli_api(p.socket, "POST", "/v1/down", 300000L, &r, err, sizeof err);
  if (rc == CLI_API_UNREACH) {
    cli_err("%s", err);
    exit_code = TSVC_EXIT_UNREACH;
  } else if (rc == CLI_API_OK) {
    if (r.status != 200) {
      cli_err("some services could not be stopped:\n%s", cli_api_error(&r));
      exit_code = TSVC_EXIT_FAIL;
    }
    free(r.body);
    /* The monitor exits once it has answered: wait for its socket to go. */
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
      tsvc_api_sock_state_t st = tsvc_api_socket_state(p.socket, NULL, 0);
      if (st == TSVC_API_SOCK_NONE || st == TSVC_API_SOCK_STALE) break;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec - t0.tv_sec > 30) {
        cli_err("the monitor answered but is still running after 30 s");
        exit_code = TSVC_EXIT_FAIL;
        break;
      }
      usleep(50 * 1000);
    }
    if (exit_code == TSVC_EXIT_OK) printf("services stopped; monitor stopped\n");
  } else {
    cli_no_monitor(&p);
    bool any = false;
    for (size_t i = 0; i < p.cfg->nservices; i++)
      if (p.cfg->services[i].enabled && !p.cfg->services[i].external) any = true;
    cli_direct_t d;
    if (!any) printf("nothing to stop (every service is external or disabled)\n");
    if (any && (rc = cli_direct_open(&p, &d, false)) != 0) {
      exit_code = rc;
    } else if (any) {
      /* Reverse file order: dependents usually come after what they need. */
      for (size_t i = p.cfg->nservices; i-- > 0;) {
        const tsvc_service_conf_t *svc = &p.cfg->services[i];
        if (!svc->enabled || svc->external) continue;
        char msg[1024];
        if (cli_direct_op(&d, "stop", svc, msg, sizeof msg) != 0) {
          cli_err("%s: %s", svc->name, msg);
          exit_code = TSVC_EXIT_FAIL;
        } else {
          printf("%s: stopped\n", svc->name);
        }
      }
      cli_direct_close(&d);
    }
  }
  cli_project_free(&p);
  return exit_code;
}
