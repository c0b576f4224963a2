/*
 * pg_reply: pure parsing of a PostgreSQL server's first answer to a
 * protocol-3.0 startup packet, as pg_isready (libpq's internal_ping) judges
 * it. No sockets, no clock: the postgres probe feeds the bytes received so
 * far and unit tests drive it directly.
 */
#ifndef TSVC_PG_REPLY_H
#define TSVC_PG_REPLY_H

#include <stddef.h>
#include <stdint.h>

#define TSVC_PG_CANNOT_CONNECT_NOW "57P03" /* starting up, shutting down, recovery */

typedef enum {
  TSVC_PG_NEED_MORE, /* no complete answer yet: read more */
  TSVC_PG_AUTH,      /* an authentication request ('R'): accepting */
  TSVC_PG_ERROR,     /* an ErrorResponse ('E'): sqlstate and message set */
  TSVC_PG_PROTOCOL   /* not the PostgreSQL protocol: message says why */
} tsvc_pg_reply_kind_t;

typedef struct {
  tsvc_pg_reply_kind_t kind;
  uint32_t auth;      /* AUTH: the request code (0 = AuthenticationOk) */
  char sqlstate[6];   /* ERROR: five characters, or "" when absent */
  char message[200];  /* ERROR: the 'M' field; PROTOCOL: what was wrong */
  size_t consumed;    /* bytes up to and including the deciding message */
} tsvc_pg_reply_t;

/*
 * Walk one backend message at buf[*off..len). Returns 1 and sets *type,
 * *body, *bodylen and advances *off when a whole message is there; 0 when
 * more bytes are needed; -1 when the length word is impossible (below 4 or
 * above maxlen).
 */
int tsvc_pg_next_message(const uint8_t *buf, size_t len, size_t *off, size_t maxlen,
                         char *type, const uint8_t **body, size_t *bodylen);

/*
 * Fill sqlstate (6 bytes) and message (msglen) from the fields of an
 * ErrorResponse or NoticeResponse body. Missing fields give "".
 */
void tsvc_pg_error_fields(const uint8_t *body, size_t bodylen, char *sqlstate,
                          char *message, size_t msglen);

/*
 * Classify the first answer to a startup packet from the len bytes received
 * so far. NoticeResponse messages before it are skipped. Never fails: the
 * verdict is in out->kind.
 */
void tsvc_pg_classify(const uint8_t *buf, size_t len, tsvc_pg_reply_t *out);

/*
 * After AuthenticationOk (trust), walk the complete messages in
 * buf[*off..len) (ParameterStatus, BackendKeyData, notices...). Returns
 * TSVC_PG_SCAN_READY at ReadyForQuery ('Z'), TSVC_PG_SCAN_ERROR at an
 * ErrorResponse (wrong database, unknown role: sqlstate and message in out),
 * TSVC_PG_SCAN_MORE when neither came yet (*off is past the complete
 * messages), TSVC_PG_SCAN_BROKEN on a stream that is not the protocol.
 */
enum { TSVC_PG_SCAN_BROKEN = -1, TSVC_PG_SCAN_MORE, TSVC_PG_SCAN_READY, TSVC_PG_SCAN_ERROR };
int tsvc_pg_scan_startup(const uint8_t *buf, size_t len, size_t *off, tsvc_pg_reply_t *out);

/*
 * Build a protocol-3.0 startup packet for user and database into buf (size
 * cap). Returns its length, or 0 when it does not fit or a string is empty.
 */
size_t tsvc_pg_startup_packet(uint8_t *buf, size_t cap, const char *user,
                              const char *database, const char *application);

#endif /* TSVC_PG_REPLY_H */
