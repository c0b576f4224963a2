/* pg_reply.c: see pg_reply.h. */
#include "probe/pg_reply.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

/* libpq refuses authentication and error messages longer than this while
 * connecting (fe-connect.c); so do we. */
#define PG_MAX_STARTUP_MSG 30000

static uint32_t get_u32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

int tsvc_pg_next_message(const uint8_t *buf, size_t len, size_t *off, size_t maxlen,
                         char *type, const uint8_t **body, size_t *bodylen) {
  size_t o = *off;
  if (len - o < 5) return 0;
  uint32_t mlen = get_u32(buf + o + 1);
  if (mlen < 4 || mlen > maxlen) return -1;
  if (len - o - 1 < mlen) return 0;
  *type = (char)buf[o];
  *body = buf + o + 5;
  *bodylen = mlen - 4;
  *off = o + 1 + mlen;
  return 1;
}

void tsvc_pg_error_fields(const uint8_t *body, size_t bodylen, char *sqlstate,
                          char *message, size_t msglen) {
  sqlstate[0] = '\0';
  if (msglen) message[0] = '\0';
  size_t i = 0;
  while (i < bodylen && body[i] != 0) {
    uint8_t code = body[i++];
    const uint8_t *val = body + i;
    const uint8_t *nul = memchr(val, 0, bodylen - i);
    size_t vlen = nul ? (size_t)(nul - val) : bodylen - i;
    if (code == 'C' && vlen == 5) {
      memcpy(sqlstate, val, 5);
      sqlstate[5] = '\0';
    } else if (code == 'M' && msglen) {
      size_t c = vlen < msglen - 1 ? vlen : msglen - 1;
      memcpy(message, val, c);
      message[c] = '\0';
    }
    if (!nul) break;
    i += vlen + 1;
  }
}

static bool known_type(char t) {
  /* Every backend message type of protocol 3.0. */
  return t && strchr("123ACDEGHIKNRSTVWZcdnpstv", t) != NULL;
}

void tsvc_pg_classify(const uint8_t *buf, size_t len, tsvc_pg_reply_t *out) {
  memset(out, 0, sizeof *out);
  size_t off = 0;
  for (;;) {
    if (off < len && buf[off] != 'R' && buf[off] != 'E' && buf[off] != 'N') {
      out->kind = TSVC_PG_PROTOCOL;
      snprintf(out->message, sizeof out->message,
               "expected an authentication request, got byte 0x%02x", buf[off]);
      return;
    }
    char type;
    const uint8_t *body;
    size_t blen;
    int rc = tsvc_pg_next_message(buf, len, &off, PG_MAX_STARTUP_MSG, &type, &body, &blen);
    if (rc == 0) {
      out->kind = TSVC_PG_NEED_MORE;
      return;
    }
    if (rc < 0) {
      out->kind = TSVC_PG_PROTOCOL;
      tsvc_strlcpy(out->message, "invalid message length", sizeof out->message);
      return;
    }
    out->consumed = off;
    if (type == 'N') continue; /* a notice: skip it, as libpq does */
    if (type == 'R') {
      if (blen < 4) {
        out->kind = TSVC_PG_PROTOCOL;
        tsvc_strlcpy(out->message, "short authentication request", sizeof out->message);
        return;
      }
      out->kind = TSVC_PG_AUTH;
      out->auth = get_u32(body);
      return;
    }
    out->kind = TSVC_PG_ERROR;
    tsvc_pg_error_fields(body, blen, out->sqlstate, out->message, sizeof out->message);
    return;
  }
}

int tsvc_pg_scan_startup(const uint8_t *buf, size_t len, size_t *off, tsvc_pg_reply_t *out) {
  for (;;) {
    if (*off < len && !known_type((char)buf[*off])) return TSVC_PG_SCAN_BROKEN;
    char type;
    const uint8_t *body;
    size_t blen;
    int rc = tsvc_pg_next_message(buf, len, off, PG_MAX_STARTUP_MSG, &type, &body, &blen);
    if (rc < 0) return TSVC_PG_SCAN_BROKEN;
    if (rc == 0) return TSVC_PG_SCAN_MORE;
    if (type == 'Z') return TSVC_PG_SCAN_READY;
    if (type == 'E') {
      memset(out, 0, sizeof *out);
      out->kind = TSVC_PG_ERROR;
      out->consumed = *off;
      tsvc_pg_error_fields(body, blen, out->sqlstate, out->message, sizeof out->message);
      return TSVC_PG_SCAN_ERROR;
    }
  }
}

size_t tsvc_pg_startup_packet(uint8_t *buf, size_t cap, const char *user,
                              const char *database, const char *application) {
  const char *kv[] = {"user", user, "database", database, "application_name", application};
  size_t n = 8;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kv); i++) {
    if (!kv[i] || !*kv[i]) return 0;
    n += strlen(kv[i]) + 1;
  }
  n += 1;
  if (n > cap) return 0;
  put_u32(buf, (uint32_t)n);
  put_u32(buf + 4, 3u << 16); /* protocol 3.0 */
  size_t o = 8;
  for (size_t i = 0; i < TSVC_ARRAY_LEN(kv); i++) {
    size_t l = strlen(kv[i]) + 1;
    memcpy(buf + o, kv[i], l);
    o += l;
  }
  buf[o++] = 0;
  return o;
}
