/* process_command.c: process.command services (process_int.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/process_int.h"

extern char **environ;

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static bool key_is(const char *kv, const char *key) {
  size_t n = strlen(key);
  return strncmp(kv, key, n) == 0 && kv[n] == '=';
}

/* The environment of a command service: ours, plus `environment`, plus
   process.env; a later definition of a key wins. NULL on out of memory. */
static char **build_env(const tsvc_service_conf_t *svc) {
  size_t n = 0;
  while (environ[n]) n++;
  size_t extra = svc->env_len + svc->process.env_len;
  char **env = calloc(n + extra + 1, sizeof *env);
  if (!env) return NULL;
  const tsvc_kv_t *kv[2] = {svc->env, svc->process.env};
  size_t kvn[2] = {svc->env_len, svc->process.env_len};
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    bool over = false;
    for (int l = 0; l < 2 && !over; l++)
      for (size_t j = 0; j < kvn[l] && !over; j++) over = key_is(environ[i], kv[l][j].key);
    if (over) continue;
    if (!(env[k++] = strdup(environ[i]))) goto nomem;
  }
  for (int l = 0; l < 2; l++) {
    for (size_t j = 0; j < kvn[l]; j++) {
      /* Skip a key defined again later. */
      bool later = false;
      for (int l2 = l; l2 < 2 && !later; l2++)
        for (size_t j2 = l2 == l ? j + 1 : 0; j2 < kvn[l2] && !later; j2++)
          later = strcmp(kv[l][j].key, kv[l2][j2].key) == 0;
      if (later) continue;
      if (!(env[k++] = tsvc_asprintf("%s=%s", kv[l][j].key, kv[l][j].value ? kv[l][j].value : "")))
        goto nomem;
    }
  }
  return env;
nomem:
  free_strv(env);
  return NULL;
}

void tsvc__command_start(entry_t *e) {
  const tsvc_service_conf_t *svc = e->svc;
  const tsvc_strv_t *cmd = &svc->process.command;
  char path[PATH_MAX];
  if (!cmd->v || cmd->n == 0 || !cmd->v[0]) {
    tsvc__proc_fail(e, "no process.command for %s", e->name);
    return;
  }
  const char *wd = svc->process.workdir;
  struct stat st;
  if (wd && *wd) {
    int rc = stat(wd, &st);
    if (rc != 0 || !S_ISDIR(st.st_mode)) {
      tsvc__proc_fail(e, "process.workdir %s: %s", wd,
                      rc != 0 ? strerror(errno) : "not a directory");
      return;
    }
  }
  bool found;
  if (wd && *wd && cmd->v[0][0] != '/' && strchr(cmd->v[0], '/')) {
    /* "./bin/server": relative to the workdir the child starts in. */
    snprintf(path, sizeof path, "%s/%s", wd, cmd->v[0]);
    found = access(path, X_OK) == 0;
    tsvc_strlcpy(path, cmd->v[0], sizeof path);
  } else {
    found = tsvc_find_exec(cmd->v[0], path, sizeof path);
  }
  if (!found) {
    tsvc__proc_fail(e, "cannot run %s: not found or not executable", cmd->v[0]);
    return;
  }
  const char **argv = calloc(cmd->n + 1, sizeof *argv);
  char **env = build_env(svc);
  if (!argv || !env) {
    free(argv);
    free_strv(env);
    tsvc__proc_finish(e, TSVC_ENOMEM, "out of memory");
    return;
  }
  argv[0] = path;
  for (size_t i = 1; i < cmd->n; i++) argv[i] = cmd->v[i];
  spawn_t sp = {.argv = argv, .env = env, .cwd = wd && *wd ? wd : NULL, .stdin_fd = -1};
  tsvc__proc_spawn_server(e, &sp);
  free(argv);
  free_strv(env);
}
