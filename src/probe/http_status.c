/* http_status.c: see http_status.h. */
#include "probe/http_status.h"

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int tsvc_http_status_parse(const char *buf, size_t len, int *status) {
  /* The fixed shape "HTTP/d.d ddd", checked byte by byte as far as we have. */
  static const char shape[] = "HTTP/#.# ###";
  size_t n = sizeof shape - 1;
  for (size_t i = 0; i < n; i++) {
    if (i >= len) return 0;
    if (shape[i] == '#' ? !is_digit(buf[i]) : buf[i] != shape[i]) return -1;
  }
  /* Then the end of the line, a space and a reason, or nothing. */
  size_t i = n;
  if (i < len && buf[i] != ' ' && buf[i] != '\r' && buf[i] != '\n') return -1;
  for (; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c == '\n' || c == '\r') break;
    if ((c < 0x20 && c != '\t') || c == 0x7f) return -1;
    if (i >= TSVC_HTTP_MAX_STATUS_LINE) return -1;
  }
  if (i >= len) return 0;
  if (buf[i] == '\r') {
    if (i + 1 >= len) return 0;
    if (buf[i + 1] != '\n') return -1;
  }
  *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
  return 1;
}
