/* docker_pull.c: see docker_pull.h. */
#include "runtime/docker_pull.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/util.h"
#include "log/log.h"

static tsvc_pull_observer_fn observer;
static void *observer_data;

void tsvc_pull_set_observer(tsvc_pull_observer_fn fn, void *data) {
  observer = fn;
  observer_data = data;
}

struct tsvc_docker_pull_s {
  tsvc_docker_req_t *req;
  char *service;
  tsvc_image_ref_t ref;
  char image[512];
  char note[768];      /* about credentials, or "" */
  char login[512];     /* the config.json whose credentials were sent */
  uint64_t t0;         /* uv_hrtime at the start */
  tsvc_pull_progress_t last;
  tsvc_docker_pull_cb cb;
  void *data;
};

const char *tsvc_bytes_format(int64_t n, char *buf, size_t len) {
  if (n < 1000) snprintf(buf, len, "%lldB", (long long)n);
  else if (n < 1000 * 1000) snprintf(buf, len, "%.1fkB", (double)n / 1e3);
  else if (n < 1000LL * 1000 * 1000) snprintf(buf, len, "%.1fMB", (double)n / 1e6);
  else snprintf(buf, len, "%.2fGB", (double)n / 1e9);
  return buf;
}

static double since(const tsvc_docker_pull_t *p) {
  return (double)(uv_hrtime() - p->t0) / 1e9;
}

static void tell(tsvc_docker_pull_t *p, tsvc_pull_ev_type_t type, const char *error) {
  if (!observer) return;
  tsvc_pull_event_t ev = {.type = type,
                          .service = p->service,
                          .image = p->image,
                          .registry = p->ref.registry,
                          .progress = &p->last,
                          .seconds = since(p),
                          .error = error};
  observer(&ev, observer_data);
}

static void on_progress(const tsvc_pull_progress_t *pr, void *data) {
  tsvc_docker_pull_t *p = data;
  p->last = *pr;
  tell(p, TSVC_PULL_EV_PROGRESS, NULL);
}

static void pull_free(tsvc_docker_pull_t *p) {
  free(p->service);
  free(p);
}

static void on_done(const tsvc_docker_reply_t *r, void *data) {
  tsvc_docker_pull_t *p = data;
  p->req = NULL;
  char secs[32];
  snprintf(secs, sizeof secs, "%.2f", since(p));
  if (r->status) {
    char msg[2048];
    const char *why = r->errmsg && *r->errmsg ? r->errmsg : tsvc_strerror(r->status);
    /* Unreachable: the Docker daemon, not the registry. */
    int n = r->status == TSVC_EUNREACH
                ? snprintf(msg, sizeof msg, "cannot pull %s: %s", p->image, why)
                : snprintf(msg, sizeof msg, "pulling %s from %s failed: %s", p->image,
                           p->ref.registry, why);
    if (p->note[0] && n > 0 && (size_t)n < sizeof msg)
      snprintf(msg + n, sizeof msg - (size_t)n, " (%s)", p->note);
    tsvc_log_field_t f[] = {{"service", p->service}, {"action", "pull_failed"},
                            {"image", p->image},     {"registry", p->ref.registry},
                            {"seconds", secs},       {"reason", r->errmsg}};
    /* The live line goes first: the log line takes its place. */
    tell(p, TSVC_PULL_EV_FAILED, msg);
    tsvc_log_fields(TSVC_LOG_WARN, NULL, f, TSVC_ARRAY_LEN(f));
    p->cb(r->status, msg, p->data);
    pull_free(p);
    return;
  }
  json_t *j = r->json;
  p->last.layers = (int)json_integer_value(json_object_get(j, "Layers"));
  p->last.layers_done = (int)json_integer_value(json_object_get(j, "LayersDone"));
  int64_t bytes = (int64_t)json_integer_value(json_object_get(j, "Bytes"));
  if (bytes > p->last.bytes_done) p->last.bytes_done = bytes;
  char size[32], layers[32];
  tsvc_bytes_format(p->last.bytes_done, size, sizeof size);
  snprintf(layers, sizeof layers, "%d", p->last.layers);
  const char *status = json_string_value(json_object_get(j, "Status"));
  tsvc_log_field_t f[] = {{"service", p->service}, {"action", "pulled"},
                          {"image", p->image},     {"size", size},
                          {"layers", layers},      {"seconds", secs},
                          {"status", status && *status ? status : NULL}};
  tell(p, TSVC_PULL_EV_DONE, NULL);
  tsvc_log_fields(TSVC_LOG_INFO, NULL, f, TSVC_ARRAY_LEN(f));
  p->cb(0, NULL, p->data);
  pull_free(p);
}

int tsvc_docker_pull(tsvc_docker_t *d, const char *service, const char *image,
                     tsvc_docker_pull_cb cb, void *data, tsvc_docker_pull_t **out, char *err,
                     size_t errlen) {
  if (out) *out = NULL;
  if (!d || !image || !cb) return TSVC_EINVAL;
  tsvc_docker_pull_t *p = calloc(1, sizeof *p);
  if (!p) return TSVC_ENOMEM;
  int rc = tsvc_image_ref_parse(image, &p->ref, err, errlen);
  if (rc) {
    free(p);
    return rc;
  }
  p->service = service ? tsvc_strdup(service) : NULL;
  if (service && !p->service) {
    free(p);
    return TSVC_ENOMEM;
  }
  tsvc_strlcpy(p->image, image, sizeof p->image);
  p->cb = cb;
  p->data = data;
  char *auth = NULL;
  tsvc_docker_config_path(p->login, sizeof p->login);
  rc = tsvc_registry_auth_file(p->login, p->ref.registry, &auth, p->note, sizeof p->note);
  if (!rc)
    rc = tsvc_docker_image_pull(d, image, auth, observer ? on_progress : NULL, on_done, p,
                                &p->req);
  bool had_auth = auth != NULL;
  if (auth) memset(auth, 0, strlen(auth));
  free(auth);
  if (rc) {
    if (err && errlen) snprintf(err, errlen, "cannot pull %s: %s", image, tsvc_strerror(rc));
    pull_free(p);
    return rc;
  }
  p->t0 = uv_hrtime();
  tsvc_log_field_t f[] = {{"service", p->service},
                          {"action", "pull"},
                          {"image", p->image},
                          {"registry", p->ref.registry},
                          {"login", had_auth ? p->login : NULL},
                          {"note", p->note[0] ? p->note : NULL}};
  tsvc_log_fields(p->note[0] ? TSVC_LOG_WARN : TSVC_LOG_INFO, NULL, f, TSVC_ARRAY_LEN(f));
  tell(p, TSVC_PULL_EV_START, NULL);
  if (out) *out = p;
  return 0;
}

void tsvc_docker_pull_cancel(tsvc_docker_pull_t *p) {
  if (!p) return;
  tsvc_docker_cancel(p->req);
  pull_free(p);
}
