/* check.c: see check.h. */
#include "monitor/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "docker/host.h"

typedef enum { VIA_PROBE, VIA_RT_EXEC, VIA_INSPECT } via_t;

struct tsvc_check_s {
  uv_loop_t *loop;
  tsvc_runtime_t *rt;
  via_t via;
  tsvc_probe_cb cb;
  void *data;
  uint64_t t0_ns;
  /* VIA_PROBE */
  tsvc_probe_t *probe;
  /* VIA_RT_EXEC */
  void *op;
  /* VIA_INSPECT: the inspection cannot be cancelled, so a timer enforces the
     timeout and the check lives until both the answer and the timer are
     done. */
  uv_timer_t timer;
  bool answered;   /* the verdict was delivered (or cancelled) */
  bool inspecting; /* the runtime still owes us its answer */
  bool timer_open;
};

static void fwd_cb(const tsvc_probe_result_t *res, void *data) {
  tsvc_check_t *c = data;
  c->cb(res, c->data);
  free(c);
}

static void maybe_free(tsvc_check_t *c) {
  if (!c->inspecting && !c->timer_open) free(c);
}

static void timer_closed(uv_handle_t *h) {
  tsvc_check_t *c = h->data;
  c->timer_open = false;
  maybe_free(c);
}

static void deliver(tsvc_check_t *c, tsvc_result_t r, const char *msg) {
  if (c->answered) return;
  c->answered = true;
  tsvc_probe_result_t res = {.result = r, .exit_code = -1};
  res.latency_us = (int64_t)((uv_hrtime() - c->t0_ns) / 1000);
  tsvc_strlcpy(res.message, msg, sizeof res.message);
  c->cb(&res, c->data);
}

static void inspect_timeout(uv_timer_t *t) {
  tsvc_check_t *c = t->data;
  deliver(c, TSVC_RESULT_TIMEOUT, "the runtime did not answer the inspection in time");
  uv_close((uv_handle_t *)&c->timer, timer_closed);
}

static void inspect_cb(int status, const char *msg, const tsvc_rt_info_t *info, void *data) {
  tsvc_check_t *c = data;
  c->inspecting = false;
  if (!c->answered) {
    char buf[TSVC_PROBE_MSG_LEN];
    if (status) {
      snprintf(buf, sizeof buf, "inspect failed: %s", msg ? msg : tsvc_strerror(status));
      deliver(c, TSVC_RESULT_RUNTIME_ERROR, buf);
    } else if (info->running) {
      deliver(c, TSVC_RESULT_OK, "running");
    } else if (!info->exists) {
      deliver(c, TSVC_RESULT_NOT_RUNNING, "not running: does not exist");
    } else {
      snprintf(buf, sizeof buf, "not running: exited (%d)", info->exit_code);
      deliver(c, TSVC_RESULT_NOT_RUNNING, buf);
    }
    uv_close((uv_handle_t *)&c->timer, timer_closed);
    return;
  }
  maybe_free(c);
}

int tsvc_check_start(uv_loop_t *loop, tsvc_runtime_t *rt, const tsvc_service_conf_t *svc,
                     const tsvc_probe_spec_t *spec, tsvc_probe_cb cb, void *data,
                     tsvc_check_t **out) {
  tsvc_check_t *c = calloc(1, sizeof *c);
  if (!c) return TSVC_ENOMEM;
  c->loop = loop;
  c->rt = rt;
  c->cb = cb;
  c->data = data;
  c->t0_ns = uv_hrtime();
  int rc;
  if (spec->kind == TSVC_PROBE_RUNNING) {
    if (!rt) {
      rc = TSVC_EINVAL;
      goto err;
    }
    c->via = VIA_INSPECT;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    c->inspecting = true;
    rc = rt->ops->inspect(rt, svc, inspect_cb, c);
    if (rc) {
      c->inspecting = false;
      c->answered = true; /* the callback is never called then */
      uv_close((uv_handle_t *)&c->timer, timer_closed);
      return rc;
    }
    uv_timer_start(&c->timer, inspect_timeout, (uint64_t)spec->timeout, 0);
  } else if ((spec->kind == TSVC_PROBE_EXEC || spec->in_runtime) && rt && rt->ops->exec) {
    c->via = VIA_RT_EXEC;
    rc = rt->ops->exec(rt, svc, spec, fwd_cb, c, &c->op);
    if (rc) goto err;
  } else {
    c->via = VIA_PROBE;
    rc = tsvc_probe_start(loop, spec, fwd_cb, c, &c->probe);
    if (rc) goto err;
  }
  if (out) *out = c;
  return 0;
err:
  free(c);
  return rc;
}

void tsvc_check_cancel(tsvc_check_t *c) {
  if (!c) return;
  switch (c->via) {
  case VIA_PROBE:
    tsvc_probe_cancel(c->probe);
    free(c);
    break;
  case VIA_RT_EXEC:
    c->rt->ops->exec_cancel(c->rt, c->op);
    free(c);
    break;
  case VIA_INSPECT:
    if (c->answered) return; /* already delivered: nothing in flight */
    c->answered = true;
    if (!uv_is_closing((uv_handle_t *)&c->timer))
      uv_close((uv_handle_t *)&c->timer, timer_closed);
    break;
  }
}

void tsvc_check_prepare_where(const tsvc_service_conf_t *svc, tsvc_runtime_t *rt,
                              tsvc_probe_spec_t *spec, char *host, size_t len,
                              tsvc_check_where_t *where) {
  tsvc_check_where_t scratch;
  if (!where) where = &scratch;
  memset(where, 0, sizeof *where);
  tsvc_probe_resolve(svc, spec);
  spec->timeout = svc->healthcheck.timeout;
  tsvc_probe_route_t route;
  memset(&route, 0, sizeof route);
  bool routed = rt && rt->ops->probe_route;
  if (routed) rt->ops->probe_route(rt, svc, &route);
  /* `port: "H:C"` under a runtime that maps no ports: the service listens
     on the host at H, where C would be inside its container. Through the
     published port of a container (the route's port), the same. */
  if (svc->host_port && svc->port && svc->host_port != svc->port && spec->port == svc->port &&
      !(rt && rt->ops->maps_ports))
    spec->port = svc->host_port;
  else if (route.port && svc->port && spec->port == svc->port && !route.exec)
    spec->port = route.port;
  const char *addr = svc->healthcheck.address;
  host[0] = '\0';
  if (route.exec && spec->kind != TSVC_PROBE_RUNNING) {
    /* Inside the container, where the check connects as it is written
       (export.h's commands: 127.0.0.1 and the container's port). */
    spec->in_runtime = true;
    tsvc_strlcpy(where->via, "exec", sizeof where->via);
    tsvc_strlcpy(where->address, "exec in the container", sizeof where->address);
    if (!spec->host) {
      tsvc_strlcpy(host, "127.0.0.1", len);
      spec->host = host;
    }
    return;
  }
  if (addr && *addr) {
    /* "host:port", "[v6]:port" or "host". */
    const char *colon = strrchr(addr, ':');
    long port;
    bool v6bare = colon && strchr(addr, ':') != colon && addr[0] != '[';
    if (colon && !v6bare && tsvc_parse_int(colon + 1, 1, 65535, &port) == 0) {
      size_t n = (size_t)(colon - addr);
      if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
        addr++;
        n -= 2;
      }
      if (n >= len) n = len - 1;
      memcpy(host, addr, n);
      host[n] = '\0';
      spec->port = (int)port;
    } else {
      tsvc_strlcpy(host, addr, len);
    }
    spec->host = host;
    tsvc_strlcpy(where->via, "address", sizeof where->via);
  } else if (spec->host) {
    tsvc_strlcpy(where->via, "command", sizeof where->via);
  } else {
    if (routed) tsvc_strlcpy(host, route.host, len);
    else if (rt && rt->ops->probe_host) rt->ops->probe_host(rt, svc, host, len);
    if (!host[0]) tsvc_strlcpy(host, "127.0.0.1", len);
    spec->host = host;
    tsvc_strlcpy(where->via, routed && route.via[0] ? route.via : "host", sizeof where->via);
  }
  if (spec->kind == TSVC_PROBE_RUNNING) {
    tsvc_strlcpy(where->address, "inspect", sizeof where->address);
  } else if (spec->kind == TSVC_PROBE_EXEC) {
    bool inside = rt && rt->ops->exec;
    tsvc_strlcpy(where->via, inside ? "exec" : "host", sizeof where->via);
    tsvc_strlcpy(where->address, inside ? "exec in the container" : "exec on this host",
                 sizeof where->address);
  } else {
    char hp[300];
    tsvc_strlcpy(where->address, tsvc_hostport(spec->host, spec->port, hp, sizeof hp),
                 sizeof where->address);
  }
}

void tsvc_check_prepare(const tsvc_service_conf_t *svc, tsvc_runtime_t *rt,
                        tsvc_probe_spec_t *spec, char *host, size_t len) {
  tsvc_check_prepare_where(svc, rt, spec, host, len, NULL);
}
