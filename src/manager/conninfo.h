/*
 * conninfo: how clients reach the services (docs/api.md, "Connection
 * variables"), as TANK-045 spells it: <PREFIX>_HOST, _PORT, _URL, and for
 * postgres _USER, _PASSWORD, _DATABASE, _DSN, for redis _PASSWORD.
 *
 * Pure: from a config, the runtime's name and the view, no I/O and no
 * clock, so that the env verb (with or without a monitor), GET /v1/env and
 * tsvc_manager_connection_info() all print the same names, and tests drive
 * it from configs loaded from strings.
 *
 * Ownership: every list and variable array returned is the caller's
 * (tsvc_conn_list_free, tsvc_conn_vars_free).
 */
#ifndef TSVC_MANAGER_CONNINFO_H
#define TSVC_MANAGER_CONNINFO_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"
#include "tsvc.h"

/* "host", "network". */
const char *tsvc_view_name(tsvc_view_t v);
/* The view called name: 0, or TSVC_EINVAL. */
int tsvc_view_parse(const char *name, tsvc_view_t *out);

/*
 * Every enabled service of cfg with a port, in file order, as seen from
 * view under runtime ("docker", "process"; NULL or "": the config's
 * runtime, auto counting as docker). host_addr is the host view's address
 * (NULL: 127.0.0.1). The host view: host_addr and the published port. The
 * network view under docker: the container's name (container_prefix +
 * name) and the container port; under the process runtime, which has no
 * container network, the host view (out->shared_host set). An external
 * service is not a container of ours: host_addr and its port in both
 * views. States are left unknown (monitored false). Returns 0 or
 * TSVC_ENOMEM (out is then empty).
 */
int tsvc_conn_collect(const tsvc_config_t *cfg, const char *runtime, tsvc_view_t view,
                      const char *host_addr, tsvc_conn_list_t *out);

/*
 * Build c->url and c->dsn again from its host, port, username, password
 * and database (after one of them changed: secrets left out, say). Returns
 * 0 or TSVC_ENOMEM.
 */
int tsvc_conn_build(tsvc_conn_info_t *c);

/* Clear every password of l and build the URLs and DSNs without them
   (what is served over TCP). Returns 0 or TSVC_ENOMEM. */
int tsvc_conn_strip_secrets(tsvc_conn_list_t *l);

/*
 * The variables of c, in a fixed order, each name extra (NULL: "") +
 * c->prefix + "_" + suffix:
 *   every service  HOST PORT URL
 *   postgres       USER PASSWORD DATABASE DB DSN (DB: the name env printed
 *                  before TANK-045's DATABASE; the same value)
 *   redis          PASSWORD, when one is set
 * Without secrets (what is served over TCP) no PASSWORD is given, and c
 * should have been stripped (tsvc_conn_strip_secrets). A postgres password
 * that is "" is printed as "" (so that a stale one in the environment is
 * overwritten). Appends to *kv (n entries, grown with realloc). Returns 0 or
 * TSVC_ENOMEM.
 */
int tsvc_conn_vars(const tsvc_conn_info_t *c, const char *extra, bool secrets, tsvc_kv_t **kv,
                   size_t *n);
void tsvc_conn_vars_free(tsvc_kv_t *kv, size_t n);

/* Is s a prefix that makes shell variable names (letters, digits and '_',
   not starting with a digit; "" is fine)? */
bool tsvc_conn_prefix_ok(const char *s);

#endif
