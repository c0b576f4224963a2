/*
 * export: the services of a config as files for other engines
 * (docs/export.md): a docker-compose.yml, or Kubernetes manifests.
 *
 * The documents are built as jansson trees (export_compose_doc,
 * export_kube_docs) and written as YAML by export_yaml_write, so the
 * mapping (what goes where) is apart from the writing, and tests can look
 * at the trees.
 *
 * Ownership: every json_t returned is new and the caller's (json_decref);
 * notes are appended to a caller-owned list (export_notes_t), freed with
 * export_notes_free(). Nothing here touches a runtime or the network.
 */
#ifndef TSVC_EXPORT_H
#define TSVC_EXPORT_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/util.h"
#include "config/config.h"

/* What a target cannot express, one line each, written as comments at the
   top of the file ("postgres: ..."). */
typedef struct {
  char **v;
  size_t n;
} export_notes_t;

void export_notes_free(export_notes_t *n);
/* Append a note (formatted, cut at 1 KiB). 0 or TSVC_ENOMEM (n unchanged). */
int export_notes_vaddf(export_notes_t *n, const char *fmt, va_list ap) TSVC_PRINTF(2, 0);

/*
 * What neither target has, noted (docs/export.md, "Not exported"): the
 * hooks of the top level (s NULL) or of service s (on_change, webhook: no
 * engine runs a command or posts on a change of health), and s's
 * depends_timeout when it has depends_on (compose waits with no limit of
 * its own; Kubernetes does not wait). kube picks the wording. Returns 0 or
 * TSVC_ENOMEM.
 */
int export_note_unexported(const tsvc_config_t *cfg, const tsvc_service_conf_t *s, bool kube,
                           export_notes_t *notes);

typedef struct {
  /* compose: write what docker-compose 1.x (Debian 12's 1.29) reads: no
     healthcheck.start_interval, no depends_on restart (both noted). */
  bool compose_v1;
  /* kubernetes: the size of each PersistentVolumeClaim; default "1Gi". */
  const char *storage;
} export_opts_t;

/*
 * The health check of svc as a command run inside its container, in
 * Docker's HEALTHCHECK form: ["CMD", argv...] or ["CMD-SHELL", string].
 * Native probes become their command equivalents (postgres: pg_isready;
 * redis: redis-cli ping, healthy only on PONG; tcp: bash's /dev/tcp; http:
 * curl and the expected status range). Returns NULL for the running probe
 * (no command: Docker's own "is it running") and on out of memory (*oom
 * set).
 */
json_t *export_health_test(const tsvc_service_conf_t *svc, bool *oom);

/*
 * The compose document of cfg. Returns 0 and *out, TSVC_ECONFIG with the
 * reason in err when a service cannot be exported (no image), or
 * TSVC_ENOMEM. Disabled and external services are left out (noted).
 */
int export_compose_doc(const tsvc_config_t *cfg, const export_opts_t *o, json_t **out,
                       export_notes_t *notes, char *err, size_t errlen);

/*
 * The Kubernetes documents of cfg, as an array of objects: per service a
 * PersistentVolumeClaim (when it has volumes), a Service (when it has a
 * port) and a Deployment. Same returns as export_compose_doc; a service
 * name that is no DNS label ("db_main") is written as one ("db-main",
 * noted), and two that become the same are an error.
 */
int export_kube_docs(const tsvc_config_t *cfg, const export_opts_t *o, json_t **out,
                     export_notes_t *notes, char *err, size_t errlen);

/*
 * Write v as block-style YAML to f. Strings are always double-quoted (so
 * "no", "1.0" or "010" stay strings); with dollars, every "$" in a string
 * is written "$$" (compose interpolates "$VAR" in values). When v is an
 * array and docs is true, each element is one document ("---" between).
 * Returns 0 or TSVC_EIO.
 */
int export_yaml_write(FILE *f, const json_t *v, bool docs, bool dollars);

#endif /* TSVC_EXPORT_H */
