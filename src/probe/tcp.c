/*
 * tcp.c: the tcp probe. A completed connect is healthy; the probe then
 * closes (it has nothing to say, so it is the one that closes first).
 */
#include "probe/probe_int.h"

static void tcp_connected(tsvc_probe_t *p) {
  tsvc__probe_verdict(p, TSVC_RESULT_OK, "connected to %s:%d", p->host, p->port);
  tsvc__probe_close_now(p);
}

static void tcp_data(tsvc_probe_t *p) { (void)p; }

static const tsvc__net_ops_t tcp_ops = {tcp_connected, tcp_data};

static int tcp_start(tsvc_probe_t *p) {
  p->ops = &tcp_ops;
  return tsvc__probe_net_start(p);
}

const tsvc_probe_type_t tsvc_probe_type_tcp = {"tcp", tcp_start, tsvc__probe_net_cancel};
