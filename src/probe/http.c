/*
 * http.c: the http probe. GET path over HTTP/1.1 with Host and
 * "Connection: close"; the status line decides: in [status_min,
 * status_max] is healthy, else BAD_STATUS "HTTP 503"; a reply that is not
 * HTTP is PROTOCOL. The body is read (within the bounded buffer) until the
 * server closes, so that the server closes first.
 */
#include <string.h>

#include "probe/http_status.h"
#include "probe/probe_int.h"

static void http_connected(tsvc_probe_t *p) { tsvc__probe_write(p, p->wdata, p->wlen); }

static void http_data(tsvc_probe_t *p) {
  if (p->decided) return; /* draining the body until the server closes */
  int status = 0;
  int rc = tsvc_http_status_parse((const char *)p->rbuf, p->rlen, &status);
  if (rc == 0) return;
  if (rc < 0) {
    tsvc__probe_verdict(p, TSVC_RESULT_PROTOCOL, "not an HTTP reply");
    tsvc__probe_close_now(p);
    return;
  }
  if (status >= p->status_min && status <= p->status_max)
    tsvc__probe_verdict(p, TSVC_RESULT_OK, "HTTP %d", status);
  else
    tsvc__probe_verdict(p, TSVC_RESULT_BAD_STATUS, "HTTP %d", status);
}

static const tsvc__net_ops_t http_ops = {http_connected, http_data};

static int http_start(tsvc_probe_t *p) {
  if (p->path[0] != '/' || strpbrk(p->path, " \r\n")) return TSVC_EINVAL;
  bool v6 = strchr(p->host, ':') != NULL;
  tsvc_buf_t b;
  tsvc_buf_init(&b, 4096);
  int rc = tsvc_buf_addf(&b, "GET %s HTTP/1.1\r\nHost: %s%s%s", p->path, v6 ? "[" : "",
                         p->host, v6 ? "]" : "");
  if (!rc && p->port != 80) rc = tsvc_buf_addf(&b, ":%d", p->port);
  if (!rc)
    rc = tsvc_buf_addf(&b,
                       "\r\nUser-Agent: tanuki-svc\r\nAccept: */*\r\n"
                       "Connection: close\r\n\r\n");
  if (rc) {
    tsvc_buf_free(&b);
    return rc;
  }
  p->wlen = b.len;
  p->wdata = (uint8_t *)tsvc_buf_steal(&b);
  p->ops = &http_ops;
  return tsvc__probe_net_start(p);
}

const tsvc_probe_type_t tsvc_probe_type_http = {"http", http_start, tsvc__probe_net_cancel};
