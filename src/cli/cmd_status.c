/*
 * cmd_status.c: `tanuki-svc status [NAME] [--json] [--watch]`.
 *
 * From the running monitor's API; with no monitor, every probe runs once
 * now and the same shapes are printed. The table is for people: colour only
 * on a terminal and never with NO_COLOR.
 */
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api_json.h"
#include "cli/cli.h"
#include "common/util.h"
#include "monitor/check.h"

/* ---- without a monitor: one probe each, now -------------------------------- */

typedef struct {
  tsvc_status_t *st;
  int *pending;
  int64_t t0;
} probe_ctx_t;

static void probe_done(const tsvc_probe_result_t *res, void *data) {
  probe_ctx_t *c = data;
  tsvc_status_t *s = c->st;
  bool ok = res->result == TSVC_RESULT_OK;
  s->healthy = ok;
  s->state = ok ? TSVC_STATE_HEALTHY : TSVC_STATE_UNHEALTHY;
  s->last_check_ms = tsvc_wall_ms();
  if (ok) s->last_healthy_ms = s->last_check_ms;
  s->last_latency_us = res->latency_us;
  s->checks_total = 1;
  s->checks_by_result[res->result] = 1;
  s->failures_total = s->consecutive_failures = ok ? 0 : 1;
  s->consecutive_successes = ok ? 1 : 0;
  if (!ok) tsvc_strlcpy(s->last_error, res->message, sizeof s->last_error);
  s->history = calloc(1, sizeof *s->history);
  if (s->history) {
    s->nhistory = 1;
    s->history[0] = (tsvc_check_record_t){.start_ms = c->t0, .end_ms = s->last_check_ms,
                                          .result = res->result, .exit_code = res->exit_code,
                                          .latency_us = res->latency_us};
    s->history[0].message = strdup(res->message);
    s->history[0].probe_address = s->probe_address[0] ? strdup(s->probe_address) : NULL;
    s->history[0].output = res->output ? strdup(res->output) : NULL;
  }
  (*c->pending)--;
  free(c);
}

/* Probe every service (or name) once. Returns 0, or 1 when name is unknown. */
static int probe_all(const cli_project_t *p, const char *name, tsvc_status_list_t *out) {
  out->n = 0;
  out->v = calloc(p->cfg->nservices ? p->cfg->nservices : 1, sizeof *out->v);
  if (!out->v) return 1;
  cli_direct_t d;
  bool have_rt = cli_direct_open(p, &d, true) == 0;
  uv_loop_t own;
  uv_loop_t *loop = have_rt ? &d.loop : &own;
  if (!have_rt) uv_loop_init(&own);
  int pending = 0;
  tsvc_probe_spec_t *specs = calloc(p->cfg->nservices ? p->cfg->nservices : 1, sizeof *specs);
  char(*hosts)[256] = calloc(p->cfg->nservices ? p->cfg->nservices : 1, sizeof *hosts);
  for (size_t i = 0; specs && hosts && i < p->cfg->nservices; i++) {
    const tsvc_service_conf_t *svc = &p->cfg->services[i];
    if (name && strcmp(svc->name, name) != 0) continue;
    tsvc_status_t *s = &out->v[out->n++];
    s->name = strdup(svc->name);
    s->enabled = svc->enabled;
    s->external = svc->external;
    s->retries = svc->healthcheck.retries;
    s->success_threshold = svc->healthcheck.success_threshold;
    s->max_restarts = svc->restart.max_restarts;
    s->state = TSVC_STATE_STOPPED;
    tsvc_check_where_t where;
    tsvc_check_prepare_where(svc, have_rt ? d.rt : NULL, &specs[i], hosts[i], sizeof hosts[i],
                             &where);
    tsvc_strlcpy(s->probe, tsvc_probe_kind_name(specs[i].kind), sizeof s->probe);
    tsvc_strlcpy(s->probe_via, where.via, sizeof s->probe_via);
    tsvc_strlcpy(s->probe_address, where.address, sizeof s->probe_address);
    if (!svc->enabled) continue;
    s->state = TSVC_STATE_UNKNOWN;
    probe_ctx_t *c = malloc(sizeof *c);
    if (!c) continue;
    *c = (probe_ctx_t){s, &pending, tsvc_wall_ms()};
    int rc = tsvc_check_start(loop, have_rt ? d.rt : NULL, svc, &specs[i], probe_done, c, NULL);
    if (rc) {
      free(c);
      snprintf(s->last_error, sizeof s->last_error, "cannot run the %s probe here: %s",
               s->probe, rc == TSVC_EINVAL ? "it needs the runtime" : tsvc_strerror(rc));
      continue;
    }
    pending++;
  }
  while (pending > 0 && uv_run(loop, UV_RUN_ONCE)) {
  }
  free(specs);
  free(hosts);
  if (have_rt) cli_direct_close(&d);
  else {
    uv_run(&own, UV_RUN_DEFAULT);
    uv_loop_close(&own);
  }
  return name && out->n == 0 ? 1 : 0;
}

/* ---- the data, from wherever ------------------------------------------------- */

/* Fetch the view: {"runtime", "services": [...]} (list) or one service.
   Returns 0 with *out, or an exit code (message printed). *direct tells
   whether no monitor answered. */
static int fetch(const cli_project_t *p, const char *name, json_t **out, char **raw,
                 bool *direct) {
  *out = NULL;
  *raw = NULL;
  char *path = name ? cli_service_path(name, NULL) : strdup("/v1/services");
  cli_reply_t r;
  char err[1024];
  int rc = path ? cli_api(p->socket, "GET", path, 30000L, &r, err, sizeof err) : CLI_API_UNREACH;
  free(path);
  if (rc == CLI_API_UNREACH) {
    cli_err("%s", err);
    return TSVC_EXIT_UNREACH;
  }
  if (rc == CLI_API_OK) {
    *direct = false;
    if (r.status != 200) {
      cli_err("%s", cli_api_error(&r));
      free(r.body);
      return r.status == 404 ? TSVC_EXIT_FAIL : TSVC_EXIT_UNREACH;
    }
    *out = json_loads(r.body, 0, NULL);
    *raw = r.body;
    if (!*out) {
      cli_err("the monitor's reply is not JSON");
      return TSVC_EXIT_UNREACH;
    }
    return 0;
  }
  *direct = true;
  tsvc_status_list_t l = {0};
  if (probe_all(p, name, &l)) {
    tsvc_status_list_free(&l);
    cli_err("no service named '%s' in %s", name, p->config_path);
    return TSVC_EXIT_FAIL;
  }
  *out = name ? tsvc_api_json_status(&l.v[0], true) : tsvc_api_json_status_list(&l, NULL);
  tsvc_status_list_free(&l);
  return *out ? 0 : TSVC_EXIT_FAIL;
}

/* ---- the table ------------------------------------------------------------------ */

static int64_t parse_time(const char *s) {
  if (!s) return 0;
  struct tm tm = {0};
  int ms = 0;
  if (sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &ms) < 6)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t)timegm(&tm) * 1000 + ms;
}

static const char *ago(int64_t ms, char *buf, size_t len) {
  if (ms < 0) ms = 0;
  int64_t s = ms / 1000;
  if (s < 60) snprintf(buf, len, "%llds", (long long)s);
  else if (s < 3600) snprintf(buf, len, "%lldm%llds", (long long)(s / 60), (long long)(s % 60));
  else if (s < 86400)
    snprintf(buf, len, "%lldh%lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
  else snprintf(buf, len, "%lldd%lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
  return buf;
}

static const char *colour_of(const char *state) {
  if (!strcmp(state, "healthy")) return "\033[32m";
  if (!strcmp(state, "unhealthy") || !strcmp(state, "failed")) return "\033[31m";
  if (!strcmp(state, "starting") || !strcmp(state, "restarting")) return "\033[33m";
  return "\033[2m";
}

static int jint(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

/* Render the table into b. Returns whether every enabled service is healthy. */
static bool render(json_t *services, bool colour, tsvc_buf_t *b) {
  int64_t now = tsvc_wall_ms();
  tsvc_buf_addf(b, "%-16s %-10s %-7s %-8s %-6s %-8s %-10s %-9s %s\n", "NAME", "STATE", "HEALTHY",
                "FOR", "FAILS", "RESTARTS", "CHECKED", "LATENCY", "LAST ERROR");
  bool all = true, external = false;
  size_t i;
  json_t *s;
  json_array_foreach(services, i, s) {
    if (json_is_true(json_object_get(s, "external"))) external = true;
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *state = json_string_value(json_object_get(s, "state"));
    bool healthy = json_is_true(json_object_get(s, "healthy"));
    bool enabled = json_is_true(json_object_get(s, "enabled"));
    if (enabled && !healthy) all = false;
    char since[32] = "-", checked[32] = "-", lat[32] = "-", fails[32], restarts[32];
    int64_t t = parse_time(json_string_value(json_object_get(s, "since")));
    if (t) ago(now - t, since, sizeof since);
    t = parse_time(json_string_value(json_object_get(s, "last_check")));
    if (t) {
      ago(now - t, checked, sizeof checked);
      strncat(checked, " ago", sizeof checked - strlen(checked) - 1);
    }
    json_t *l = json_object_get(s, "last_latency_ms");
    if (json_is_number(l)) snprintf(lat, sizeof lat, "%.1fms", json_number_value(l));
    snprintf(fails, sizeof fails, "%d/%d", jint(s, "consecutive_failures"), jint(s, "retries"));
    snprintf(restarts, sizeof restarts, "%lld",
             (long long)json_integer_value(json_object_get(s, "restarts_total")));
    const char *e = json_string_value(json_object_get(s, "last_error"));
    /* A healthy service with no failure since keeps its last error (the
       API's last_error), from before: said so, so that a fresh start's
       "connection refused" does not read as a fault now. */
    const char *e_when = healthy && jint(s, "consecutive_failures") == 0 ? "earlier: " : "";
    char shown_state[24];
    snprintf(shown_state, sizeof shown_state, "%s%s", state ? state : "?",
             json_is_true(json_object_get(s, "external")) ? "*" : "");
    /* Pad before colouring, so the escape codes do not count as width. */
    char padded[32];
    snprintf(padded, sizeof padded, "%-10s", shown_state);
    tsvc_buf_addf(b, "%-16s %s%s%s %-7s %-8s %-6s %-8s %-10s %-9s %s%s\n", name ? name : "?",
                  colour ? colour_of(state ? state : "") : "", padded, colour ? "\033[0m" : "",
                  healthy ? "yes" : "no", since, fails, restarts, checked, lat,
                  e && *e ? e_when : "", e && *e ? e : "-");
  }
  if (external) tsvc_buf_addf(b, "* external: only watched, never started or restarted\n");
  /* What held (re)starts wait for (depends_on), one line each. */
  json_array_foreach(services, i, s) {
    json_t *waits = json_object_get(s, "waiting_for");
    if (!json_array_size(waits)) continue;
    const char *name = json_string_value(json_object_get(s, "name"));
    tsvc_buf_addf(b, "%s waits for", name ? name : "?");
    size_t k;
    json_t *w;
    json_array_foreach(waits, k, w) {
      const char *cond = json_string_value(json_object_get(w, "condition"));
      const char *dep = json_string_value(json_object_get(w, "service"));
      const char *st = json_string_value(json_object_get(w, "state"));
      tsvc_buf_addf(b, "%s %s to be %s (%s now)", k ? "," : "", dep ? dep : "?",
                    cond && !strcmp(cond, "service_healthy") ? "healthy" : "started",
                    st ? st : "?");
    }
    int64_t until = parse_time(json_string_value(json_object_get(s, "wait_until")));
    char left[32];
    if (until) tsvc_buf_addf(b, "; gives up in %s", ago(until - now, left, sizeof left));
    tsvc_buf_addf(b, "\n");
  }
  return all;
}

/* status NAME: where its checks go (docs/remote.md). */
static void where_line(json_t *s, tsvc_buf_t *b) {
  const char *addr = json_string_value(json_object_get(s, "probe_address"));
  const char *via = json_string_value(json_object_get(s, "probe_via"));
  const char *probe = json_string_value(json_object_get(s, "probe"));
  if (!addr || !*addr) return;
  static const struct {
    const char *via, *says;
  } says[] = {
      {"container", "the container's address"},
      {"published", "the published port on the engine's host"},
      {"exec", "a command run inside the container"},
      {"address", "healthcheck.address"},
      {"command", "the host its command names"},
      {"host", "this machine"},
  };
  const char *how = via;
  for (size_t i = 0; via && i < TSVC_ARRAY_LEN(says); i++)
    if (strcmp(via, says[i].via) == 0) how = says[i].says;
  tsvc_buf_addf(b, "probe: %s, to %s%s%s%s\n", probe ? probe : "?", addr, how ? " (" : "",
                how ? how : "", how ? ")" : "");
}

/* `status NAME` of a service with healthcheck.session: its held
   connection, a line under the table. */
static void render_session(json_t *se, tsvc_buf_t *b) {
  if (!json_is_object(se)) return;
  const char *err = json_string_value(json_object_get(se, "last_error"));
  tsvc_buf_addf(b, "session: %s; %lld connection(s) opened, %lld check(s) on it, %lld by the "
                   "full probe%s%s\n",
                json_is_true(json_object_get(se, "held")) ? "held" : "none held",
                (long long)json_integer_value(json_object_get(se, "connects")),
                (long long)json_integer_value(json_object_get(se, "held_checks")),
                (long long)json_integer_value(json_object_get(se, "full_checks")),
                err && *err ? "; last closed: " : "", err && *err ? err : "");
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

int cmd_status(const cli_args_t *a) {
  bool json = cli_flag(a, &CLI_OPT_JSON), watch = cli_flag(a, &CLI_OPT_WATCH);
  const char *name = a->noperands ? a->operands[0] : NULL;
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;
  const char *nc = getenv("NO_COLOR");
  bool colour = isatty(STDOUT_FILENO) && !(nc && *nc);
  if (watch) {
    struct sigaction sa = {.sa_handler = on_sigint};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
  }
  /* Where NAME's data is: a line under its table. */
  char data[PATH_MAX + 128] = "";
  const tsvc_service_conf_t *svc = name ? tsvc_config_service(p.cfg, name) : NULL;
  if (svc && !json && cli_data_location(&p, svc, cli_runtime_in_use(&p), data, sizeof data) != 0)
    data[0] = '\0';
  int exit_code = TSVC_EXIT_OK;
  bool told = false;
  do {
    json_t *v;
    char *raw;
    bool direct = false;
    rc = fetch(&p, name, &v, &raw, &direct);
    if (direct && !told && !watch) cli_no_monitor(&p);
    told = told || direct;
    tsvc_buf_t b;
    tsvc_buf_init(&b, 4u << 20);
    if (rc) {
      exit_code = rc;
      if (!watch) break;
      tsvc_buf_addf(&b, "(no answer: see above)\n");
    } else {
      json_t *list = name ? json_pack("[O]", v) : json_incref(json_object_get(v, "services"));
      bool ok = true;
      if (json) {
        if (raw) tsvc_buf_addf(&b, "%s", raw);
        else {
          char *text = json_dumps(v, JSON_INDENT(2));
          tsvc_buf_addf(&b, "%s\n", text ? text : "null");
          free(text);
        }
        size_t i;
        json_t *s;
        json_array_foreach(list, i, s) if (json_is_true(json_object_get(s, "enabled")) &&
                                           !json_is_true(json_object_get(s, "healthy"))) ok = false;
      } else {
        ok = render(list, colour, &b);
        if (name) where_line(json_array_get(list, 0), &b);
        if (data[0]) tsvc_buf_addf(&b, "data: %s\n", data);
        if (name) render_session(json_object_get(v, "session"), &b);
        if (direct) tsvc_buf_addf(&b, "(no monitor running: each probe ran once now)\n");
        const char *rt = json_string_value(json_object_get(v, "runtime"));
        if (rt && !name) tsvc_buf_addf(&b, "runtime: %s%s\n", rt,
                                       watch ? "; refreshing every second, Ctrl-C to quit" : "");
        else if (watch) tsvc_buf_addf(&b, "refreshing every second, Ctrl-C to quit\n");
      }
      exit_code = ok ? TSVC_EXIT_OK : TSVC_EXIT_FAIL;
      json_decref(list);
      json_decref(v);
    }
    free(raw);
    if (watch) fputs("\033[H\033[2J", stdout);
    if (b.data) fwrite(b.data, 1, b.len, stdout);
    fflush(stdout);
    tsvc_buf_free(&b);
    if (watch && !interrupted) {
      struct timespec ts = {1, 0};
      nanosleep(&ts, NULL); /* Ctrl-C cuts it short */
    }
  } while (watch && !interrupted);
  cli_project_free(&p);
  return watch && interrupted ? TSVC_EXIT_OK : exit_code;
}
