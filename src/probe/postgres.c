/*
 * postgres.c: the postgres probe, deciding as pg_isready does (libpq's
 * internal_ping): an authentication request means the server is accepting;
 * an ErrorResponse with SQLSTATE 57P03 means it is rejecting (starting up,
 * shutting down, in recovery); any other ErrorResponse means it answered,
 * so it is up. No response at all is refused, reset or timeout.
 *
 * The server must log nothing for a check at default settings, so the probe
 * ends every exchange the way the server expects:
 *  - AuthenticationOk (trust): wait for ReadyForQuery, send Terminate and
 *    let the server close (the server keeps the TIME_WAIT);
 *  - any other authentication request (password, md5, SCRAM...): close at
 *    once; the server treats EOF during the password exchange as a silent
 *    disconnect, while anything else it would log as a failed login;
 *  - an ErrorResponse: the server closes by itself.
 * The startup packet is sent whole in one write: a partial one makes the
 * server log "incomplete startup packet".
 */
#include <stdlib.h>
#include <string.h>

#include "probe/pg_reply.h"
#include "probe/probe_int.h"

enum { PG_AWAIT_AUTH, PG_AWAIT_READY, PG_DRAIN };

static const uint8_t pg_terminate[5] = {'X', 0, 0, 0, 4};

static const char *auth_name(uint32_t code) {
  switch (code) {
    case 2: return "Kerberos V5";
    case 3: return "a cleartext password";
    case 5: return "an MD5 password";
    case 7: return "GSSAPI";
    case 9: return "SSPI";
    case 10: return "SASL (SCRAM)";
    default: return "authentication";
  }
}

static void pg_connected(tsvc_probe_t *p) { tsvc__probe_write(p, p->wdata, p->wlen); }

static void pg_after_auth(tsvc_probe_t *p) {
  tsvc_pg_reply_t r;
  switch (tsvc_pg_scan_startup(p->rbuf, p->rlen, &p->rpos, &r)) {
    case TSVC_PG_SCAN_MORE:
      return;
    case TSVC_PG_SCAN_READY:
      /* As libpq's PQfinish: Terminate, then the server closes. */
      p->step = PG_DRAIN;
      tsvc__probe_write(p, pg_terminate, sizeof pg_terminate);
      return;
    case TSVC_PG_SCAN_ERROR:
      /* Still accepting (pg_isready says so too); note why it refused us.
       * The server closes after an error. */
      snprintf(p->res.message, sizeof p->res.message,
               "accepting connections (server said: %s, SQLSTATE %s)", r.message, r.sqlstate);
      tsvc__probe_printable(p->res.message);
      p->step = PG_DRAIN;
      return;
    default:
      /* Garbage after AuthenticationOk: the verdict stands; stop here. */
      tsvc__probe_close_now(p);
      return;
  }
}

static void pg_data(tsvc_probe_t *p) {
  if (p->step == PG_DRAIN) return; /* waiting for the server to close */
  if (p->step == PG_AWAIT_READY) {
    pg_after_auth(p);
    return;
  }
  tsvc_pg_reply_t r;
  tsvc_pg_classify(p->rbuf, p->rlen, &r);
  switch (r.kind) {
    case TSVC_PG_NEED_MORE:
      return;
    case TSVC_PG_PROTOCOL:
      tsvc__probe_verdict(p, TSVC_RESULT_PROTOCOL, "not a PostgreSQL reply: %s", r.message);
      tsvc__probe_close_now(p);
      return;
    case TSVC_PG_ERROR:
      if (strcmp(r.sqlstate, TSVC_PG_CANNOT_CONNECT_NOW) == 0)
        tsvc__probe_verdict(p, TSVC_RESULT_BAD_STATUS, "rejecting connections: %s", r.message);
      else
        tsvc__probe_verdict(p, TSVC_RESULT_OK,
                            "accepting connections (server said: %s, SQLSTATE %s)", r.message,
                            r.sqlstate[0] ? r.sqlstate : "none");
      p->step = PG_DRAIN; /* the server closes after an error */
      return;
    case TSVC_PG_AUTH:
      if (r.auth == 0) {
        tsvc__probe_verdict(p, TSVC_RESULT_OK, "accepting connections");
        p->step = PG_AWAIT_READY;
        p->rpos = r.consumed;
        pg_after_auth(p);
      } else {
        tsvc__probe_verdict(p, TSVC_RESULT_OK, "accepting connections (server asks for %s)",
                            auth_name(r.auth));
        tsvc__probe_close_now(p); /* a plain close: logged by nobody */
      }
      return;
  }
}

static const tsvc__net_ops_t pg_ops = {pg_connected, pg_data};

static int pg_start(tsvc_probe_t *p) {
  uint8_t pkt[1024];
  size_t n = tsvc_pg_startup_packet(pkt, sizeof pkt, p->user, p->database, "tanuki-svc");
  if (n == 0) return TSVC_EINVAL;
  p->wdata = malloc(n);
  if (!p->wdata) return TSVC_ENOMEM;
  memcpy(p->wdata, pkt, n);
  p->wlen = n;
  p->ops = &pg_ops;
  return tsvc__probe_net_start(p);
}

const tsvc_probe_type_t tsvc_probe_type_postgres = {"postgres", pg_start, tsvc__probe_net_cancel};
