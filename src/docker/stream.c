/* stream.c: see stream.h. */
#include "docker/stream.h"

#include <stdlib.h>
#include <string.h>

#include "tsvc.h"

void tsvc_demux_init(tsvc_demux_t *m) {
  memset(m, 0, sizeof *m);
}

int tsvc_demux_feed(tsvc_demux_t *m, const char *p, size_t n,
                    tsvc_demux_sink_fn sink, void *ctx) {
  int rc;
  while (n > 0) {
    if (m->mode == 2) return sink(ctx, TSVC_DEMUX_STDOUT, p, n);
    if (m->remaining > 0) {
      size_t k = n < m->remaining ? n : m->remaining;
      if ((rc = sink(ctx, m->stream, p, k))) return rc;
      m->remaining -= k;
      p += k;
      n -= k;
      continue;
    }
    unsigned char c = (unsigned char)*p++;
    n--;
    m->hdr[m->hdr_len++] = c;
    if (m->hdr_len <= 4) {
      /* Byte 0 is a stream id (0-3), bytes 1-3 are zero. While the mode is
       * undecided, anything else means a TTY stream without headers. */
      bool bad = m->hdr_len == 1 ? c > TSVC_DEMUX_SYSERR : c != 0;
      if (bad) {
        if (m->mode == 1) return TSVC_EIO;
        size_t k = m->hdr_len;
        m->mode = 2;
        m->hdr_len = 0;
        if ((rc = sink(ctx, TSVC_DEMUX_STDOUT, (const char *)m->hdr, k))) return rc;
      }
      continue;
    }
    if (m->hdr_len < 8) continue;
    m->mode = 1;
    m->stream = m->hdr[0];
    m->remaining = ((size_t)m->hdr[4] << 24) | ((size_t)m->hdr[5] << 16) |
                   ((size_t)m->hdr[6] << 8) | (size_t)m->hdr[7];
    m->hdr_len = 0;
  }
  return 0;
}

int tsvc_demux_end(tsvc_demux_t *m, tsvc_demux_sink_fn sink, void *ctx) {
  if (m->mode == 0 && m->hdr_len > 0) {
    size_t k = m->hdr_len;
    m->hdr_len = 0;
    m->mode = 2;
    return sink(ctx, TSVC_DEMUX_STDOUT, (const char *)m->hdr, k);
  }
  if (m->mode == 1 && (m->remaining > 0 || m->hdr_len > 0)) return TSVC_EIO;
  return 0;
}

int tsvc_tail_init(tsvc_tail_t *t, size_t cap) {
  t->buf = malloc(cap + 1);
  t->cap = cap;
  t->len = 0;
  t->total = 0;
  if (!t->buf) return TSVC_ENOMEM;
  t->buf[0] = '\0';
  return 0;
}

void tsvc_tail_add(tsvc_tail_t *t, const char *p, size_t n) {
  if (!t->buf || n == 0) return;
  t->total += n;
  if (n >= t->cap) {
    memcpy(t->buf, p + (n - t->cap), t->cap);
    t->len = t->cap;
  } else {
    if (t->len + n > t->cap) {
      size_t drop = t->len + n - t->cap;
      memmove(t->buf, t->buf + drop, t->len - drop);
      t->len -= drop;
    }
    memcpy(t->buf + t->len, p, n);
    t->len += n;
  }
  t->buf[t->len] = '\0';
}

void tsvc_tail_free(tsvc_tail_t *t) {
  free(t->buf);
  t->buf = NULL;
  t->len = t->cap = 0;
}

void tsvc_lines_init(tsvc_lines_t *l, size_t max) {
  tsvc_buf_init(&l->line, max);
  l->skipping = false;
  l->dropped = 0;
}

int tsvc_lines_feed(tsvc_lines_t *l, const char *p, size_t n, tsvc_lines_fn fn, void *ctx) {
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t k = nl ? (size_t)(nl - p) : n;
    if (!l->skipping) {
      int rc = tsvc_buf_add(&l->line, p, k);
      if (rc == TSVC_EINVAL) {
        l->skipping = true;
        l->dropped++;
        tsvc_buf_reset(&l->line);
      } else if (rc) {
        return rc;
      }
    }
    if (!nl) return 0;
    p += k + 1;
    n -= k + 1;
    if (l->skipping) {
      l->skipping = false;
      continue;
    }
    size_t len = l->line.len;
    if (len > 0 && l->line.data[len - 1] == '\r') len--;
    int rc = len > 0 ? fn(ctx, l->line.data, len) : 0;
    tsvc_buf_reset(&l->line);
    if (rc) return rc;
  }
  return 0;
}

void tsvc_lines_reset(tsvc_lines_t *l) {
  tsvc_buf_reset(&l->line);
  l->skipping = false;
}

void tsvc_lines_free(tsvc_lines_t *l) {
  tsvc_buf_free(&l->line);
}
