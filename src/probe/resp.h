/*
 * resp: pure reading of Redis (RESP2/RESP3) replies, one line at a time,
 * and writing of commands (for the probe and the held session alike).
 * The redis probe only needs the first line of each reply: simple strings
 * (+PONG, +OK) and errors (-NOAUTH ...); any other valid reply type is
 * reported as OTHER and ends the check. No sockets: unit tests drive it.
 */
#ifndef TSVC_RESP_H
#define TSVC_RESP_H

#include <stddef.h>

#include "common/util.h"

typedef enum {
  TSVC_RESP_NEED_MORE, /* the line is not complete yet */
  TSVC_RESP_SIMPLE,    /* +text */
  TSVC_RESP_ERROR,     /* -text */
  TSVC_RESP_OTHER,     /* a valid RESP type other than + and - */
  TSVC_RESP_PROTOCOL   /* not RESP */
} tsvc_resp_kind_t;

/* Lines longer than this without CRLF are not RESP as far as we care. */
#define TSVC_RESP_MAX_LINE 1024

/*
 * Read the reply line that starts at buf[*off] (len bytes in buf). On a
 * complete line, advances *off past its CRLF and copies the line without
 * its type byte and CRLF into line (size linelen, NUL-terminated,
 * truncated); for OTHER the type byte is kept ("$5", ":1"). NEED_MORE and
 * PROTOCOL leave *off alone.
 */
tsvc_resp_kind_t tsvc_resp_read(const char *buf, size_t len, size_t *off, char *line,
                                size_t linelen);

/* Append the command of n arguments (args[0] the command's name) to b as
   a RESP array of bulk strings. 0, or tsvc_buf_add's error (what was
   appended before it stays). */
int tsvc_resp_add_command(tsvc_buf_t *b, const char *const *args, size_t n);

#endif /* TSVC_RESP_H */
