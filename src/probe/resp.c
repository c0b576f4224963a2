/* resp.c: see resp.h. */
#include "probe/resp.h"

#include <string.h>

tsvc_resp_kind_t tsvc_resp_read(const char *buf, size_t len, size_t *off, char *line,
                                size_t linelen) {
  size_t o = *off;
  if (linelen) line[0] = '\0';
  if (o >= len) return TSVC_RESP_NEED_MORE;
  char t = buf[o];
  tsvc_resp_kind_t kind;
  if (t == '+')
    kind = TSVC_RESP_SIMPLE;
  else if (t == '-')
    kind = TSVC_RESP_ERROR;
  else if (t && strchr(":$*_,#!=(%~>|", t))
    kind = TSVC_RESP_OTHER;
  else
    return TSVC_RESP_PROTOCOL;
  size_t i = o + 1;
  for (; i < len; i++) {
    unsigned char c = (unsigned char)buf[i];
    if (c == '\r') break;
    if (c == '\n' || c < 0x20 || c == 0x7f) return TSVC_RESP_PROTOCOL;
    if (i - o > TSVC_RESP_MAX_LINE) return TSVC_RESP_PROTOCOL;
  }
  if (i - o > TSVC_RESP_MAX_LINE) return TSVC_RESP_PROTOCOL;
  if (i + 1 >= len) return TSVC_RESP_NEED_MORE; /* no CR yet, or CR without LF yet */
  if (buf[i + 1] != '\n') return TSVC_RESP_PROTOCOL;
  size_t from = kind == TSVC_RESP_OTHER ? o : o + 1;
  size_t n = i - from;
  if (linelen) {
    size_t c = n < linelen - 1 ? n : linelen - 1;
    memcpy(line, buf + from, c);
    line[c] = '\0';
  }
  *off = i + 2;
  return kind;
}

int tsvc_resp_add_command(tsvc_buf_t *b, const char *const *args, size_t n) {
  int rc = tsvc_buf_addf(b, "*%zu\r\n", n);
  for (size_t i = 0; !rc && i < n; i++) {
    size_t l = strlen(args[i]);
    rc = tsvc_buf_addf(b, "$%zu\r\n", l);
    if (!rc) rc = tsvc_buf_add(b, args[i], l);
    if (!rc) rc = tsvc_buf_add(b, "\r\n", 2);
  }
  return rc;
}
