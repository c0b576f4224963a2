/*
 * http_status: pure parsing of an HTTP/1.x status line for the http probe.
 * No sockets: unit tests drive it.
 */
#ifndef TSVC_HTTP_STATUS_H
#define TSVC_HTTP_STATUS_H

#include <stddef.h>

/* Status lines longer than this are not HTTP as far as we care. */
#define TSVC_HTTP_MAX_STATUS_LINE 1024

/*
 * Parse "HTTP/<d>.<d> <3 digits>[ reason]" ending in CRLF (or a bare LF)
 * at the start of buf. Returns 1 and *status when complete, 0 when more
 * bytes are needed (everything so far fits the grammar), -1 when it is not
 * HTTP. The check is incremental: garbage is refused at its first byte.
 */
int tsvc_http_status_parse(const char *buf, size_t len, int *status);

#endif /* TSVC_HTTP_STATUS_H */
