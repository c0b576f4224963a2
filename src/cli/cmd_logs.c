/*
 * cmd_logs.c: `tanuki-svc logs NAME [-f] [--tail N]`.
 *
 * docker: the container's logs through the Engine API (-f follows the
 * stream; over a unix socket host only). process: .tanuki/logs/NAME.log.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "docker/docker.h"
#include "docker/stream.h"
#include "runtime/remote.h"

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

/* ---- process runtime: a file ------------------------------------------------- */

static int file_logs(const char *path, long tail, bool follow) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    cli_err("no logs at %s: %s", path, strerror(errno));
    return TSVC_EXIT_FAIL;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f), start = 0;
  if (tail >= 0) {
    /* Walk back from the end, a block at a time, counting newlines. */
    long pos = size, lines = 0;
    char buf[4096];
    while (pos > 0 && lines <= tail) {
      long n = pos < (long)sizeof buf ? pos : (long)sizeof buf;
      pos -= n;
      fseek(f, pos, SEEK_SET);
      if (fread(buf, 1, (size_t)n, f) != (size_t)n) break;
      for (long i = n - 1; i >= 0; i--) {
        if (buf[i] == '\n' && pos + i != size - 1 && ++lines > tail) {
          start = pos + i + 1;
          break;
        }
      }
    }
    if (tail == 0) start = size;
  }
  fseek(f, start, SEEK_SET);
  char buf[8192];
  for (;;) {
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fflush(stdout);
    if (!follow || interrupted) break;
    clearerr(f);
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
  }
  fclose(f);
  return TSVC_EXIT_OK;
}

/* ---- docker ------------------------------------------------------------------ */

typedef struct {
  bool done;
  int status;
  char msg[512];
} logs_wait_t;

static void on_logs(const tsvc_docker_reply_t *r, void *data) {
  logs_wait_t *w = data;
  w->done = true;
  w->status = r->status;
  tsvc_strlcpy(w->msg, r->errmsg ? r->errmsg : "", sizeof w->msg);
  if (!r->status && r->data) fwrite(r->data, 1, r->len, stdout);
}

static int sink(void *ctx, int stream, const char *p, size_t n) {
  (void)ctx;
  fwrite(p, 1, n, stream == TSVC_DEMUX_STDERR ? stderr : stdout);
  return 0;
}

static size_t on_stream(char *ptr, size_t size, size_t n, void *data) {
  if (interrupted) return 0;
  tsvc_demux_feed(data, ptr, size * n, sink, NULL);
  fflush(stdout);
  return size * n;
}

static int on_progress(void *p, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  (void)p, (void)a, (void)b, (void)c, (void)d;
  return interrupted ? 1 : 0;
}

/* GET /containers/NAME/logs?follow=1 streamed, over the unix socket. */
static int docker_follow(const char *host, const char *cname, long tail) {
  if (strncmp(host, "unix://", 7) != 0) {
    cli_err("logs -f needs a docker host on a unix socket (have %s)", host);
    return TSVC_EXIT_UNREACH;
  }
  CURL *c = curl_easy_init();
  if (!c) return TSVC_EXIT_FAIL;
  char url[512], tailv[32];
  if (tail >= 0) snprintf(tailv, sizeof tailv, "%ld", tail);
  else snprintf(tailv, sizeof tailv, "all");
  char *esc = curl_easy_escape(c, cname, 0);
  snprintf(url, sizeof url,
           "http://localhost/containers/%s/logs?follow=1&stdout=1&stderr=1&tail=%s", esc, tailv);
  curl_free(esc);
  tsvc_demux_t dm;
  tsvc_demux_init(&dm);
  curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, host + 7);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &dm);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  CURLcode cc = curl_easy_perform(c);
  long code = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_cleanup(c);
  if (interrupted) return TSVC_EXIT_OK;
  if (cc == CURLE_HTTP_RETURNED_ERROR && code == 404) {
    cli_err("no container %s", cname);
    return TSVC_EXIT_FAIL;
  }
  if (cc != CURLE_OK) {
    cli_err("docker logs: %s", curl_easy_strerror(cc));
    return TSVC_EXIT_UNREACH;
  }
  return TSVC_EXIT_OK;
}

static int docker_logs(const cli_project_t *p, const tsvc_service_conf_t *svc, long tail,
                       bool follow) {
  char cname[512];
  snprintf(cname, sizeof cname, "%s%s", p->cfg->docker.container_prefix, svc->name);
  /* Only our own container's output: another project's of that name (or
     one made by hand) is not ours to show. */
  cli_direct_t dd;
  if (cli_direct_open(p, &dd, true) == 0) {
    char why[1400];
    int rc = cli_direct_inspect(&dd, svc, why, sizeof why);
    cli_direct_close(&dd);
    if (rc == TSVC_EEXIST) {
      cli_err("%s: %s", svc->name, why);
      return TSVC_EXIT_FAIL;
    }
  }
  if (follow) return docker_follow(p->cfg->docker.host, cname, tail);
  uv_loop_t loop;
  uv_loop_init(&loop);
  tsvc_docker_t *d = NULL;
  char err[512];
  tsvc_docker_opts_t dopts;
  tsvc_docker_opts_from_config(p->cfg, &dopts);
  int rc = tsvc_docker_new_opts(&loop, &dopts, &d, err, sizeof err);
  logs_wait_t w = {0};
  if (!rc) rc = tsvc_docker_container_logs(d, cname, (int)(tail > INT32_MAX ? -1 : tail), on_logs,
                                           &w, NULL);
  if (!rc) {
    while (!w.done && uv_run(&loop, UV_RUN_ONCE)) {
    }
  } else {
    snprintf(w.msg, sizeof w.msg, "%s", err);
    w.status = rc;
  }
  fflush(stdout);
  if (d) tsvc_docker_free(d);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (w.status == TSVC_ENOENT) {
    cli_err("no container %s (never started?)", cname);
    return TSVC_EXIT_FAIL;
  }
  if (w.status) {
    cli_err("docker logs: %s", w.msg[0] ? w.msg : tsvc_strerror(w.status));
    return w.status == TSVC_EUNREACH ? TSVC_EXIT_UNREACH : TSVC_EXIT_FAIL;
  }
  return TSVC_EXIT_OK;
}

/* Which runtime: the monitor's when one runs, else as the config says
   (auto: docker when its daemon answers). */
static const char *which_runtime(const cli_project_t *p) {
  cli_reply_t r;
  char err[512];
  if (cli_api(p->socket, "GET", "/v1/services", 10000L, &r, err, sizeof err) == CLI_API_OK) {
    json_t *v = json_loads(r.body, 0, NULL);
    const char *rt = json_string_value(json_object_get(v, "runtime"));
    const char *res = rt && strcmp(rt, "process") == 0 ? "process" : rt ? "docker" : NULL;
    json_decref(v);
    free(r.body);
    if (res) return res;
  }
  if (p->cfg->runtime == TSVC_RUNTIME_PROCESS) return "process";
  if (p->cfg->runtime == TSVC_RUNTIME_DOCKER) return "docker";
  cli_direct_t d;
  if (cli_direct_open(p, &d, true) == 0) {
    cli_direct_close(&d);
    return "docker";
  }
  return "process";
}

int cmd_logs(const cli_args_t *a) {
  bool follow = cli_flag(a, &CLI_OPT_FOLLOW);
  long tail = cli_num(a, &CLI_OPT_TAIL, -1);
  const char *name = a->operands[0];
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  const tsvc_service_conf_t *svc = tsvc_config_service(p.cfg, name);
  int exit_code;
  if (!svc) {
    cli_err("no service named '%s' in %s", name, p.config_path);
    exit_code = TSVC_EXIT_FAIL;
  } else if (svc->external) {
    cli_err("%s is external: its output is not ours to show", name);
    exit_code = TSVC_EXIT_FAIL;
  } else {
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(which_runtime(&p), "docker") == 0) {
      exit_code = docker_logs(&p, svc, tail, follow);
    } else {
      char *path = tsvc_asprintf("%s/logs/%s.log", p.state_dir, name);
      exit_code = path ? file_logs(path, tail, follow) : TSVC_EXIT_FAIL;
      free(path);
    }
  }
  cli_project_free(&p);
  return exit_code;
}
