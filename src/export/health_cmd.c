/*
 * health_cmd.c: a service's health check as a command run in its
 * container (export.h: export_health_test), shared by the compose and
 * Kubernetes exporters, and the notes list.
 *
 * The probe is the one the monitor uses (tsvc_probe_resolve), so the
 * command decides as the native probe does:
 *   postgres  pg_isready -h H -p P -U user -d db: exit 0 when the server
 *             accepts connections, as our probe (which decides as
 *             pg_isready does)
 *   redis     redis-cli ... ping, healthy only when it prints PONG
 *             (redis-cli exits 0 on NOAUTH, LOADING and MASTERDOWN too)
 *   tcp       bash's /dev/tcp: a connect, nothing sent
 *   http      curl, the status within expect_status
 *   exec      the command as it is (CMD or CMD-SHELL)
 * H and P are healthcheck.address when set, else 127.0.0.1 and the port
 * the service listens on in its container.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "export/export.h"
#include "probe/probe.h"

void export_notes_free(export_notes_t *n) {
  for (size_t i = 0; i < n->n; i++) free(n->v[i]);
  free(n->v);
  n->v = NULL;
  n->n = 0;
}

int export_notes_vaddf(export_notes_t *n, const char *fmt, va_list ap) {
  char buf[1024];
  vsnprintf(buf, sizeof buf, fmt, ap);
  char **v = realloc(n->v, (n->n + 1) * sizeof *v);
  if (v) n->v = v;
  char *s = v ? strdup(buf) : NULL;
  if (!s) return TSVC_ENOMEM;
  v[n->n++] = s;
  return 0;
}

static int add_note(export_notes_t *n, const char *fmt, ...) TSVC_PRINTF(2, 3);
static int add_note(export_notes_t *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = export_notes_vaddf(n, fmt, ap);
  va_end(ap);
  return rc;
}

int export_note_unexported(const tsvc_config_t *cfg, const tsvc_service_conf_t *s, bool kube,
                           export_notes_t *notes) {
  const tsvc_hooks_conf_t *h = s ? &s->hooks : &cfg->hooks;
  const char *who = s ? s->name : "hooks", *sep = s ? ": hooks" : "";
  bool cmd = h->on_change.n > 0, web = h->webhook != NULL;
  int rc = 0;
  if (cmd || web)
    rc = add_note(notes,
                  "%s%s (%s%s%s) left out: %s; the monitor's hooks run only where tanuki-svc "
                  "watches",
                  who, sep, cmd ? "on_change" : "", cmd && web ? ", " : "", web ? "webhook" : "",
                  kube ? "Kubernetes runs no command and posts nothing when a probe's verdict "
                         "changes (alert on pod conditions instead)"
                       : "docker-compose runs no command and posts nothing when a health "
                         "check's verdict changes (`docker events --filter "
                         "event=health_status` reports them)");
  if (!rc && s && s->depends_on.n) {
    char d[32];
    tsvc_duration_format(s->depends_timeout, d, sizeof d);
    rc = add_note(notes, "%s: depends_timeout %s left out: %s", s->name, d,
                  kube ? "Kubernetes does not wait for dependencies"
                       : "docker-compose waits for depends_on's conditions with no time limit "
                         "of its own");
  }
  return rc;
}

/* s quoted for /bin/sh: '...' with each ' as '\'' */
static void sh_quote(tsvc_buf_t *b, const char *s) {
  tsvc_buf_add(b, "'", 1);
  for (; *s; s++) {
    if (*s == '\'')
      tsvc_buf_add(b, "'\\''", 4);
    else
      tsvc_buf_add(b, s, 1);
  }
  tsvc_buf_add(b, "'", 1);
}

/* Host and port the check connects to, inside the container. */
static void target(const tsvc_service_conf_t *svc, const tsvc_probe_spec_t *sp, char *host,
                   size_t hlen, int *port) {
  const char *addr = svc->healthcheck.address;
  *port = sp->port;
  tsvc_strlcpy(host, sp->host && *sp->host ? sp->host : "127.0.0.1", hlen);
  if (!addr) return;
  const char *colon = strrchr(addr, ':');
  long p;
  if (!colon || tsvc_parse_int(colon + 1, 1, 65535, &p) != 0) return;
  size_t n = (size_t)(colon - addr);
  if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') addr++, n -= 2; /* [v6] */
  if (n >= hlen) return;
  memcpy(host, addr, n);
  host[n] = '\0';
  *port = (int)p;
}

static json_t *shell_test(tsvc_buf_t *b, bool *oom) {
  if (!b->data) {
    *oom = true;
    return NULL;
  }
  json_t *v = json_pack("[s,s]", "CMD-SHELL", b->data);
  if (!v) *oom = true;
  return v;
}

json_t *export_health_test(const tsvc_service_conf_t *svc, bool *oom) {
  tsvc_probe_spec_t sp;
  tsvc_probe_resolve(svc, &sp);
  char host[256], port[16];
  int p;
  target(svc, &sp, host, sizeof host, &p);
  snprintf(port, sizeof port, "%d", p);
  json_t *v = NULL;
  tsvc_buf_t b;
  tsvc_buf_init(&b, 64u << 10);
  switch (sp.kind) {
  case TSVC_PROBE_POSTGRES:
    v = json_pack("[s,s,s,s,s,s,s,s,s,s]", "CMD", "pg_isready", "-h", host, "-p", port, "-U",
                  sp.user, "-d", sp.database);
    if (!v) *oom = true;
    break;
  case TSVC_PROBE_REDIS:
    tsvc_buf_addf(&b, "redis-cli -h %s -p %s", host, port);
    if (sp.username) {
      tsvc_buf_addf(&b, " --user ");
      sh_quote(&b, sp.username);
    }
    if (sp.password) {
      tsvc_buf_addf(&b, " -a ");
      sh_quote(&b, sp.password);
      tsvc_buf_addf(&b, " --no-auth-warning");
    }
    tsvc_buf_addf(&b, " ping | grep -qx PONG");
    v = shell_test(&b, oom);
    break;
  case TSVC_PROBE_TCP: {
    char *s = tsvc_asprintf("exec 3<>/dev/tcp/%s/%s", host, port);
    v = s ? json_pack("[s,s,s,s]", "CMD", "bash", "-c", s) : NULL;
    free(s);
    if (!v) *oom = true;
    break;
  }
  case TSVC_PROBE_HTTP:
    tsvc_buf_addf(&b, "code=$(curl -s -o /dev/null -m %lld -w '%%{http_code}' ",
                  (long long)((sp.timeout + 999) / 1000));
    {
      char *url = tsvc_asprintf("http://%s%s%s:%s%s", strchr(host, ':') ? "[" : "", host,
                                strchr(host, ':') ? "]" : "", port, sp.path);
      if (url) sh_quote(&b, url);
      else *oom = true;
      free(url);
    }
    tsvc_buf_addf(&b, ") && [ \"$code\" -ge %d ] && [ \"$code\" -le %d ]", sp.status_min,
                  sp.status_max);
    v = shell_test(&b, oom);
    break;
  case TSVC_PROBE_EXEC:
    if (sp.shell) {
      v = json_pack("[s,s]", "CMD-SHELL", sp.argv[0]);
    } else {
      v = json_array();
      if (v && json_array_append_new(v, json_string("CMD"))) json_decref(v), v = NULL;
      for (size_t i = 0; v && i < sp.argc; i++)
        if (json_array_append_new(v, json_string(sp.argv[i]))) json_decref(v), v = NULL;
    }
    if (!v) *oom = true;
    break;
  case TSVC_PROBE_AUTO:
  case TSVC_PROBE_RUNNING:
    break;
  }
  tsvc_buf_free(&b);
  return v;
}
