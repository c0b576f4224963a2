/*
 * dump.c: the effective config as YAML that tsvc_config_load() reads back
 * (defaults written out, secrets masked unless asked not to).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"
#include "tsvc.h"

/* Words a YAML reader would take as something other than a string. */
static const char *const reserved[] = {"true", "false", "yes", "no", "on", "off",
                                       "null", "y", "n", NULL};

static bool plain_ok(const char *s) {
  if (!*s) return false;
  char c0 = s[0];
  bool first = (c0 >= 'a' && c0 <= 'z') || (c0 >= 'A' && c0 <= 'Z') || (c0 >= '0' && c0 <= '9') ||
               c0 == '_' || c0 == '/' || c0 == '.';
  if (!first) return false;
  for (size_t i = 0; s[i]; i++) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("_./@+-", c) || (c == ':' && s[i + 1] != '\0');
    if (!ok) return false;
  }
  for (size_t i = 0; reserved[i]; i++)
    if (strcasecmp(s, reserved[i]) == 0) return false;
  return true;
}

/* A string as a YAML scalar: plain when that is unambiguous, else double
 * quoted with escapes. */
static void put_str(FILE *f, const char *s) {
  if (!s) {
    fputs("null", f);
    return;
  }
  if (plain_ok(s)) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"':
        fputs("\\\"", f);
        break;
      case '\\':
        fputs("\\\\", f);
        break;
      case '\n':
        fputs("\\n", f);
        break;
      case '\t':
        fputs("\\t", f);
        break;
      case '\r':
        fputs("\\r", f);
        break;
      default:
        if (*p < 0x20 || *p == 0x7f)
          fprintf(f, "\\x%02x", *p);
        else
          fputc(*p, f);
    }
  }
  fputc('"', f);
}

static void put_dur(FILE *f, int indent, const char *key, tsvc_ms_t ms) {
  char b[32];
  fprintf(f, "%*s%s: %s\n", indent, "", key, tsvc_duration_format(ms, b, sizeof b));
}

static void put_kv_str(FILE *f, int indent, const char *key, const char *v) {
  fprintf(f, "%*s%s: ", indent, "", key);
  put_str(f, v);
  fputc('\n', f);
}

static void put_list(FILE *f, char *const *v, size_t n, const char *prefix) {
  fputc('[', f);
  if (prefix) {
    put_str(f, prefix);
    if (n) fputs(", ", f);
  }
  for (size_t i = 0; i < n; i++) {
    if (i) fputs(", ", f);
    put_str(f, v[i]);
  }
  fputc(']', f);
}

/* A command list, masked when mask is set. "CMD" goes first when the argv
 * itself starts with one of Docker's markers, so that loading it back does
 * not strip it. */
static int put_command(FILE *f, int indent, const char *key, const tsvc_strv_t *cmd,
                       bool shell, bool mask) {
  fprintf(f, "%*s%s: ", indent, "", key);
  if (cmd->n == 0) {
    fputs("null\n", f);
    return 0;
  }
  char **m = mask ? mask_argv(cmd->v, cmd->n, shell) : cmd->v;
  if (!m) return TSVC_ENOMEM;
  const char *prefix = NULL;
  if (shell)
    prefix = "CMD-SHELL";
  else if (strcmp(m[0], "CMD") == 0 || strcmp(m[0], "CMD-SHELL") == 0 ||
           strcmp(m[0], "NONE") == 0)
    prefix = "CMD";
  put_list(f, m, cmd->n, prefix);
  fputc('\n', f);
  if (mask) strv_free_raw(m, cmd->n);
  return 0;
}

static int put_env(FILE *f, int indent, const char *key, const tsvc_kv_t *env, size_t n,
                   bool mask) {
  fprintf(f, "%*s%s:", indent, "", key);
  if (n == 0) {
    fputs(" {}\n", f);
    return 0;
  }
  fputc('\n', f);
  for (size_t i = 0; i < n; i++) {
    char *v = mask ? mask_env_value(env[i].key, env[i].value) : strdup(env[i].value);
    if (!v) return TSVC_ENOMEM;
    fprintf(f, "%*s", indent + 2, "");
    put_str(f, env[i].key);
    fputs(": ", f);
    put_str(f, v);
    fputc('\n', f);
    free(v);
  }
  return 0;
}

/* A URL (hooks.webhook), its password masked when mask is set. */
static int put_url(FILE *f, int indent, const char *key, const char *url, bool mask) {
  if (!url) return 0;
  char *v = mask ? mask_env_value("", url) : strdup(url);
  if (!v) return TSVC_ENOMEM;
  put_kv_str(f, indent, key, v);
  free(v);
  return 0;
}

static int put_service(FILE *f, const tsvc_service_conf_t *s, bool mask) {
  int rc;
  fputs("  ", f);
  put_str(f, s->name);
  fputs(":\n", f);
  fprintf(f, "    enabled: %s\n", s->enabled ? "true" : "false");
  fprintf(f, "    external: %s\n", s->external ? "true" : "false");
  put_kv_str(f, 4, "image", s->image);
  fprintf(f, "    pull_policy: %s\n", tsvc_pull_policy_name(s->pull_policy));
  if (s->port && s->host_port != s->port)
    fprintf(f, "    port: \"%d:%d\"\n", s->host_port, s->port);
  else if (s->port)
    fprintf(f, "    port: %d\n", s->port);
  else
    fputs("    port: null\n", f);
  if ((rc = put_env(f, 4, "environment", s->env, s->env_len, mask))) return rc;
  fputs("    volumes: ", f);
  put_list(f, s->volumes.v, s->volumes.n, NULL);
  fputs("\n    depends_on:", f);
  /* The long form, so that each condition shows (the short list means
     service_started for each). */
  if (s->depends_on.n == 0) fputs(" {}", f);
  fputc('\n', f);
  for (size_t i = 0; i < s->depends_on.n; i++) {
    fputs("      ", f);
    put_str(f, s->depends_on.v[i]);
    fprintf(f, ": {condition: %s, restart: %s}\n",
            tsvc_dep_condition_name(s->depends ? s->depends[i].condition : TSVC_DEP_STARTED),
            s->depends && s->depends[i].restart ? "true" : "false");
  }
  put_dur(f, 4, "depends_timeout", s->depends_timeout);
  if ((rc = put_command(f, 4, "command", &s->command, false, mask))) return rc;

  const tsvc_healthcheck_conf_t *hc = &s->healthcheck;
  fputs("    healthcheck:\n", f);
  if ((rc = put_command(f, 6, "command", &hc->command, hc->shell, mask))) return rc;
  fprintf(f, "      probe: %s\n", tsvc_probe_kind_name(hc->probe));
  put_dur(f, 6, "interval", hc->interval);
  put_dur(f, 6, "timeout", hc->timeout);
  fprintf(f, "      retries: %d\n", hc->retries);
  fprintf(f, "      success_threshold: %d\n", hc->success_threshold);
  put_dur(f, 6, "start_period", hc->start_period);
  put_dur(f, 6, "start_interval", hc->start_interval);
  fprintf(f, "      history: %d\n", hc->history);
  put_kv_str(f, 6, "address", hc->address);
  put_kv_str(f, 6, "path", hc->path);
  if (hc->expect_status_min == hc->expect_status_max)
    fprintf(f, "      expect_status: %d\n", hc->expect_status_min);
  else
    fprintf(f, "      expect_status: \"%d-%d\"\n", hc->expect_status_min, hc->expect_status_max);
  if (hc->session) {
    fputs("      session: true\n", f);
    put_dur(f, 6, "full_every", hc->full_every);
  }

  const tsvc_restart_conf_t *r = &s->restart;
  fputs("    restart:\n", f);
  fprintf(f, "      policy: %s\n", r->policy == TSVC_POLICY_NEVER ? "never" : "on-unhealthy");
  fprintf(f, "      max_restarts: %d\n", r->max_restarts);
  put_dur(f, 6, "window", r->window);
  put_dur(f, 6, "backoff", r->backoff);
  put_dur(f, 6, "max_backoff", r->max_backoff);
  put_dur(f, 6, "cooldown", r->cooldown);
  put_dur(f, 6, "stop_timeout", r->stop_timeout);

  const tsvc_process_conf_t *p = &s->process;
  fputs("    process:\n", f);
  if ((rc = put_command(f, 6, "command", &p->command, false, mask))) return rc;
  if ((rc = put_env(f, 6, "env", p->env, p->env_len, mask))) return rc;
  put_kv_str(f, 6, "workdir", p->workdir);
  put_kv_str(f, 6, "data_dir", p->data_dir);
  fputs("    hooks:\n", f);
  if ((rc = put_command(f, 6, "on_change", &s->hooks.on_change, false, mask))) return rc;
  put_dur(f, 6, "timeout", s->hooks.timeout);
  if ((rc = put_url(f, 6, "webhook", s->hooks.webhook, mask))) return rc;
  put_dur(f, 6, "webhook_timeout", s->hooks.webhook_timeout);
  return 0;
}

static int dump(const tsvc_config_t *cfg, FILE *f, bool mask) {
  if (!cfg || !f) return TSVC_EINVAL;
  fputs("# Effective configuration", f);
  if (cfg->path) {
    fputs(" of ", f);
    for (const char *p = cfg->path; *p; p++) fputc(*p == '\n' ? ' ' : *p, f);
  }
  fputs(mask ? ": defaults filled in, secrets masked.\n" : ": defaults filled in.\n", f);
  fprintf(f, "runtime: %s\n", tsvc_runtime_kind_name(cfg->runtime));
  fputs("docker:\n", f);
  char *host = !cfg->docker.host ? NULL
               : mask      ? mask_env_value("", cfg->docker.host)
                           : strdup(cfg->docker.host);
  if (cfg->docker.host && !host) return TSVC_ENOMEM;
  put_kv_str(f, 2, "host", host);
  free(host);
  put_kv_str(f, 2, "network", cfg->docker.network);
  put_kv_str(f, 2, "container_prefix", cfg->docker.container_prefix);
  fprintf(f, "  probe_via: %s\n", tsvc_probe_via_name(cfg->docker.probe_via));
  put_kv_str(f, 2, "publish_address", cfg->docker.publish_address);
  if (cfg->docker.tls.enabled) {
    /* As in effect: from the file or from DOCKER_TLS_VERIFY and
       DOCKER_CERT_PATH alike (paths, not secrets). */
    fputs("  tls:\n", f);
    fprintf(f, "    verify: %s\n", cfg->docker.tls.verify ? "true" : "false");
    if (cfg->docker.tls.ca) put_kv_str(f, 4, "ca", cfg->docker.tls.ca);
    if (cfg->docker.tls.cert) put_kv_str(f, 4, "cert", cfg->docker.tls.cert);
    if (cfg->docker.tls.key) put_kv_str(f, 4, "key", cfg->docker.tls.key);
  }
  if (cfg->docker.host && strncmp(cfg->docker.host, "ssh://", 6) == 0) {
    fputs("  ssh:\n", f);
    if (cfg->docker.ssh.identity_file)
      put_kv_str(f, 4, "identity_file", cfg->docker.ssh.identity_file);
    if (cfg->docker.ssh.config_file) put_kv_str(f, 4, "config_file", cfg->docker.ssh.config_file);
    put_kv_str(f, 4, "socket", cfg->docker.ssh.socket);
  }
  fputs("monitor:\n", f);
  put_kv_str(f, 2, "socket", cfg->monitor.socket);
  put_kv_str(f, 2, "listen", cfg->monitor.listen);
  fprintf(f, "  log_format: %s\n", cfg->monitor.log_format == TSVC_LOGFMT_JSON ? "json" : "text");
  put_dur(f, 2, "timer_grid", cfg->monitor.timer_grid);
  fputs("hooks:\n", f);
  int hrc = put_command(f, 2, "on_change", &cfg->hooks.on_change, false, mask);
  if (hrc) return hrc;
  put_dur(f, 2, "timeout", cfg->hooks.timeout);
  if ((hrc = put_url(f, 2, "webhook", cfg->hooks.webhook, mask))) return hrc;
  put_dur(f, 2, "webhook_timeout", cfg->hooks.webhook_timeout);
  fputs("services:", f);
  if (cfg->nservices == 0) fputs(" {}", f);
  fputc('\n', f);
  for (size_t i = 0; i < cfg->nservices; i++) {
    int rc = put_service(f, &cfg->services[i], mask);
    if (rc) return rc;
  }
  if (ferror(f)) return TSVC_EIO;
  return 0;
}

int tsvc_config_dump(const tsvc_config_t *cfg, FILE *f) { return dump(cfg, f, true); }

int tsvc_config_dump_unmasked(const tsvc_config_t *cfg, FILE *f) { return dump(cfg, f, false); }
