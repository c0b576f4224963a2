/*
 * redis.c: the redis probe. Sends AUTH (when a password is set), PING and
 * QUIT in one write and reads the replies in order. Only +PONG is healthy
 * (as the request's check `== "PONG"`; redis-cli itself exits 0 on LOADING,
 * NOAUTH and MASTERDOWN replies). Any other reply is BAD_STATUS with the
 * reply as the message; bytes that are not RESP are PROTOCOL.
 *
 * Once PING's reply has decided, the probe closes with an RST (SO_LINGER 0,
 * as the tcp probe does): no TIME_WAIT on either side. QUIT is still sent,
 * so that the server ends the connection of its own accord should the RST
 * come first. Waiting for the server's close instead (as it did) left a
 * TIME_WAIT on the server's side at every check, and on one machine (a
 * service on loopback or a local bridge) the kernel created it and expired
 * it 60 s later on the CPU that took the probe's FIN, the monitor's: at
 * 10,000 checks a second, thousands of expiries in a batch every few
 * seconds, about 1 us each (issue 13), besides the FIN exchange and the
 * read of the server's EOF. The server sees its closed connection reset.
 */
#include <stdio.h>
#include <string.h>

#include "probe/probe_int.h"
#include "probe/resp.h"

/* The request without a password, the same at every check. */
static const char ping_quit[] = "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nQUIT\r\n";

static void redis_connected(tsvc_probe_t *p) {
  if (p->wdata) tsvc__probe_write(p, p->wdata, p->wlen);
  else tsvc__probe_write(p, ping_quit, sizeof ping_quit - 1);
}

static void redis_data(tsvc_probe_t *p) {
  int ping_index = p->password ? 1 : 0;
  while (!p->decided) {
    char line[TSVC_PROBE_MSG_LEN];
    tsvc_resp_kind_t k =
        tsvc_resp_read((const char *)p->rbuf, p->rlen, &p->rpos, line, sizeof line);
    if (k == TSVC_RESP_NEED_MORE) return;
    if (k == TSVC_RESP_PROTOCOL) {
      tsvc__probe_verdict(p, TSVC_RESULT_PROTOCOL, "not a Redis reply");
      tsvc__probe_close_now(p);
      return;
    }
    int idx = p->step++;
    if (idx < ping_index) { /* the AUTH reply */
      if (k != TSVC_RESP_SIMPLE) tsvc_strlcpy(p->note, line, sizeof p->note);
      continue;
    }
    if (k == TSVC_RESP_SIMPLE && strcmp(line, "PONG") == 0) {
      if (p->note[0])
        tsvc__probe_verdict(p, TSVC_RESULT_OK, "PONG (AUTH said: %s)", p->note);
      else
        tsvc__probe_verdict(p, TSVC_RESULT_OK, "PONG");
    } else if (p->note[0] && k == TSVC_RESP_ERROR) {
      /* AUTH failed, so PING says NOAUTH: the AUTH error says more. */
      tsvc__probe_verdict(p, TSVC_RESULT_BAD_STATUS, "%s", p->note);
    } else {
      tsvc__probe_verdict(p, TSVC_RESULT_BAD_STATUS, "%s", line);
    }
  }
  /* Decided: QUIT's +OK and the server's close are not waited for. */
  p->close_reset = true;
  tsvc__probe_close_now(p);
}

static const tsvc__net_ops_t redis_ops = {redis_connected, redis_data};

static int redis_start(tsvc_probe_t *p) {
  p->ops = &redis_ops;
  /* Without a password the request is a constant: no formatting at each
     check (it was a third of the probe's own instructions). */
  if (!p->password) return tsvc__probe_net_start(p);
  tsvc_buf_t b;
  tsvc_buf_init(&b, 2048);
  const char *auth[] = {"AUTH", p->username ? p->username : p->password, p->password};
  int rc = tsvc_resp_add_command(&b, auth, p->username ? 3 : 2);
  const char *ping[] = {"PING"}, *quit[] = {"QUIT"};
  if (!rc) rc = tsvc_resp_add_command(&b, ping, 1);
  if (!rc) rc = tsvc_resp_add_command(&b, quit, 1);
  if (rc) {
    tsvc_buf_free(&b);
    return rc;
  }
  p->wlen = b.len;
  p->wdata = (uint8_t *)tsvc_buf_steal(&b);
  return tsvc__probe_net_start(p);
}

const tsvc_probe_type_t tsvc_probe_type_redis = {"redis", redis_start, tsvc__probe_net_cancel};
