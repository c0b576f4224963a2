/*
 * api_json: the JSON shapes of the HTTP API (docs/api.md), built with
 * jansson from status copies. Pure: no socket, no clock of its own (times
 * come from the copies), so the CLI renders the same shapes without a
 * monitor and tests feed it hand-made statuses.
 *
 * Every function returns a new reference the caller owns (json_decref), or
 * NULL when out of memory. Messages that may carry a secret (probe messages,
 * last errors, reasons) are scrubbed of registered secrets (log.h).
 */
#ifndef TSVC_API_JSON_H
#define TSVC_API_JSON_H

#include <jansson.h>

#include "tsvc.h"

/* RFC 3339 in UTC with milliseconds ("2026-05-01T12:00:00.123Z") into buf
   (at least 32 bytes). Returns buf. */
const char *tsvc_api_time_format(int64_t wall_ms, char *buf, size_t len);

/* A time as JSON: the RFC 3339 string, or null for 0 (never). */
json_t *tsvc_api_json_time(int64_t wall_ms);

/* One service. with_history adds "history" (oldest first). */
json_t *tsvc_api_json_status(const tsvc_status_t *s, bool with_history);

/* {"runtime": ..., "services": [...]} without histories. */
json_t *tsvc_api_json_status_list(const tsvc_status_list_t *l, const char *runtime);

/* The same from a snapshot (tsvc.h). */
json_t *tsvc_api_json_snapshot(const tsvc_snapshot_t *s, const char *runtime);

/* One check record (a history entry, or the verdict of a check asked
   for). */
json_t *tsvc_api_json_record(const tsvc_check_record_t *r);

/* {"name", "state", "last_error"} of a service in /readyz's "not_ready"
   (last_error masked as in the status). */
json_t *tsvc_api_json_not_ready(const tsvc_status_t *s);

/* One state change, as a line of GET /v1/events. */
json_t *tsvc_api_json_change(const tsvc_change_t *c);

/* A JSON string of s with bytes that are not UTF-8 shown as '?'; null for
   NULL. */
json_t *tsvc_api_json_str(const char *s);

/*
 * GET /v1/env (docs/api.md, "Connection variables"): {"view", "runtime",
 * "shared_host", "secrets", "services": [{"name", "prefix", "kind",
 * "host", "port", "url", "username", "password", "database", "dsn",
 * "state"}], "variables": {NAME: value, ...}}. Without secrets (over TCP)
 * l should have been stripped (conninfo.h) and no *_PASSWORD variable is
 * given. "state" is null for a service not monitored.
 */
json_t *tsvc_api_json_env(const tsvc_conn_list_t *l, const char *runtime, bool secrets);

/*
 * The "services" of a GET /v1/env reply back into out (for the CLI):
 * 0, TSVC_EINVAL (not that shape: msg says where, into err), TSVC_ENOMEM.
 * out->view and shared_host from the reply too.
 */
int tsvc_api_env_parse(const json_t *v, tsvc_conn_list_t *out, char *err, size_t errlen);

/* {"error": msg}. */
json_t *tsvc_api_json_error(const char *msg);

#endif
