/* process_redis.c: the redis recipe of the process runtime (process_int.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "runtime/process_int.h"

#include "probe/probe.h"

/* A string quoted for redis.conf. */
static int conf_quote(tsvc_buf_t *b, const char *s) {
  int rc = tsvc_buf_add(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
    if (*p == '"' || *p == '\\') rc = tsvc_buf_addf(b, "\\%c", *p);
    else if (*p == '\n') rc = tsvc_buf_add(b, "\\n", 2);
    else if (*p < 0x20 || *p == 0x7f) rc = tsvc_buf_addf(b, "\\x%02x", *p);
    else rc = tsvc_buf_add(b, p, 1);
  }
  return rc ? rc : tsvc_buf_add(b, "\"", 1);
}

/* The value after flag in argv, or NULL. */
static const char *arg_after(const tsvc_strv_t *v, const char *flag) {
  for (size_t i = 0; i + 1 < v->n; i++)
    if (strcmp(v->v[i], flag) == 0) return v->v[i + 1];
  return NULL;
}

const char *tsvc__redis_password(const tsvc_service_conf_t *svc) {
  const char *pw = tsvc__proc_env(svc, "REDIS_PASSWORD");
  if (pw && *pw) return pw;
  tsvc_probe_spec_t spec;
  tsvc_probe_resolve(svc, &spec);
  if (spec.kind == TSVC_PROBE_REDIS && spec.password && *spec.password) return spec.password;
  pw = arg_after(&svc->command, "--requirepass");
  return pw && *pw ? pw : NULL;
}

int tsvc__redis_conf(tsvc_buf_t *b, const char *dir, int port, const char *password) {
  tsvc_buf_init(b, 64 * 1024);
  int rc = tsvc_buf_addf(b, "# Written by tanuki-svc at every start: edits are lost.\n"
                            "bind 127.0.0.1\nport %d\ndaemonize no\nappendonly yes\ndir ", port);
  if (!rc) rc = conf_quote(b, dir);
  if (!rc) rc = tsvc_buf_add(b, "\n", 1);
  if (!rc && password) {
    rc = tsvc_buf_add(b, "requirepass ", 12);
    if (!rc) rc = conf_quote(b, password);
    if (!rc) rc = tsvc_buf_add(b, "\n", 1);
  }
  /* A conf cut short (a password past the size limit) is never written:
     it could lack the requirepass line. */
  if (rc) tsvc_buf_free(b);
  return rc;
}

void tsvc__redis_start(entry_t *e, int port) {
  char exe[PATH_MAX], dir[PATH_MAX], conf[PATH_MAX + 16];
  if (!tsvc_find_exec("redis-server", exe, sizeof exe)) {
    tsvc__proc_fail(e, "redis-server not found in PATH (install redis-server)");
    return;
  }
  if (tsvc__proc_data_dir(e, dir, sizeof dir, NULL) != 0) return;
  snprintf(conf, sizeof conf, "%s/redis.conf", dir);
  if (tsvc__proc_mkdir_private(dir, 0700) != 0) {
    tsvc__proc_fail(e, "cannot create %s: %s", dir, strerror(errno));
    return;
  }
  tsvc_buf_t b;
  const char *pw = tsvc__redis_password(e->svc);
  if (!pw)
    tsvc__plog_note(&e->log, "no password set (REDIS_PASSWORD): any local user can use this "
                             "redis");
  int rc = tsvc__redis_conf(&b, dir, port, pw);
  if (rc) {
    tsvc__proc_fail(e, "cannot make %s: %s", conf,
                    rc == TSVC_ENOMEM ? "out of memory" : "the password is too long (64 KiB)");
    return;
  }
  rc = tsvc__proc_write_private(conf, b.data, 0, 0, false);
  tsvc_buf_free(&b);
  if (rc != 0) {
    tsvc__proc_fail(e, "cannot write %s: %s", conf, strerror(errno));
    return;
  }
  const char *argv[] = {exe, conf, NULL};
  spawn_t sp = {.argv = argv, .cwd = dir, .stdin_fd = -1};
  tsvc__proc_spawn_server(e, &sp);
}
