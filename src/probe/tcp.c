/*
 * tcp.c: the tcp probe. A completed connect is healthy; the probe then
 * closes (it has nothing to say, so it is the one that closes first).
 *
 * It closes with an RST (SO_LINGER 0, as HAProxy's checks do), not a FIN:
 * the side that closes first keeps the connection in TIME_WAIT for 60 s,
 * and a check each second leaves 60 of them per service, 600,000 at 10,000
 * services, far over the kernel's table (net.ipv4.tcp_max_tw_buckets,
 * 131,072 on a 24 GiB machine; beyond it the kernel logs "time wait bucket
 * table overflow"). Towards one peer address the ephemeral ports (28,232 by
 * default) would run out at 470 checks a second, as tcp_tw_reuse only
 * helps on loopback. The peer sees its accepted connection reset; the
 * check has nothing to tell it.
 */
#include "probe/probe_int.h"

static void tcp_connected(tsvc_probe_t *p) {
  tsvc__probe_verdict(p, TSVC_RESULT_OK, "connected to %s:%d", p->host, p->port);
  p->close_reset = true;
  tsvc__probe_close_now(p);
}

static void tcp_data(tsvc_probe_t *p) { (void)p; }

static const tsvc__net_ops_t tcp_ops = {tcp_connected, tcp_data};

static int tcp_start(tsvc_probe_t *p) {
  p->ops = &tcp_ops;
  return tsvc__probe_net_start(p);
}

const tsvc_probe_type_t tsvc_probe_type_tcp = {"tcp", tcp_start, tsvc__probe_net_cancel};
