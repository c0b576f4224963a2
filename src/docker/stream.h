/*
 * stream: pure parsers for what the Docker engine streams back, with no
 * socket and no clock, so unit tests feed them canned bytes.
 *
 *  - tsvc_demux_t splits the multiplexed stdout/stderr stream of logs and of
 *    a non-TTY exec (8-byte headers: stream, 0, 0, 0, big-endian length);
 *    a stream that does not start with such a header is passed through raw
 *    (a container with a TTY).
 *  - tsvc_tail_t keeps the last `cap` bytes of whatever is added to it.
 *  - tsvc_lines_t splits newline-separated records (the /events stream),
 *    each at most `max` bytes; longer records are dropped and counted.
 *
 * None of them allocates more than its cap. Who frees: the owner of the
 * struct calls the matching *_free.
 */
#ifndef TSVC_DOCKER_STREAM_H
#define TSVC_DOCKER_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "common/util.h"

/* Stream ids in the 8-byte headers. 3 is "systemerr": an error text from
 * the daemon itself. */
enum { TSVC_DEMUX_STDIN = 0, TSVC_DEMUX_STDOUT = 1, TSVC_DEMUX_STDERR = 2,
       TSVC_DEMUX_SYSERR = 3 };

/* Called for each piece of payload; returns 0, or non-zero to stop. */
typedef int (*tsvc_demux_sink_fn)(void *ctx, int stream, const char *p, size_t n);

typedef struct {
  int mode;               /* 0 undecided, 1 multiplexed, 2 raw */
  unsigned char hdr[8];   /* header bytes collected so far */
  size_t hdr_len;
  size_t remaining;       /* payload bytes left in the current frame */
  int stream;             /* stream id of the current frame */
} tsvc_demux_t;

void tsvc_demux_init(tsvc_demux_t *m);
/* Feed n bytes. Returns 0, TSVC_EIO for a corrupt header after the first
 * frame (a stream id above 3, or non-zero padding), or the sink's non-zero
 * value. */
int tsvc_demux_feed(tsvc_demux_t *m, const char *p, size_t n,
                    tsvc_demux_sink_fn sink, void *ctx);
/* End of stream: undecided bytes (fewer than 8) are flushed as raw.
 * Returns 0, or TSVC_EIO when the stream ended inside a frame. */
int tsvc_demux_end(tsvc_demux_t *m, tsvc_demux_sink_fn sink, void *ctx);

typedef struct {
  char *buf;       /* cap + 1 bytes, NUL-terminated; owned */
  size_t cap;
  size_t len;
  size_t total;    /* every byte ever added */
} tsvc_tail_t;

/* Returns 0 or TSVC_ENOMEM. */
int tsvc_tail_init(tsvc_tail_t *t, size_t cap);
void tsvc_tail_add(tsvc_tail_t *t, const char *p, size_t n);
static inline bool tsvc_tail_truncated(const tsvc_tail_t *t) { return t->total > t->len; }
void tsvc_tail_free(tsvc_tail_t *t);

typedef int (*tsvc_lines_fn)(void *ctx, const char *line, size_t n);

typedef struct {
  tsvc_buf_t line;     /* the record being collected */
  bool skipping;       /* inside a record that went over max */
  size_t dropped;      /* records dropped for being too long */
} tsvc_lines_t;

void tsvc_lines_init(tsvc_lines_t *l, size_t max);
/* Feed n bytes; fn is called for every complete non-empty record (without
 * its '\n' or '\r\n'). Returns 0, TSVC_ENOMEM, or fn's non-zero value. */
int tsvc_lines_feed(tsvc_lines_t *l, const char *p, size_t n, tsvc_lines_fn fn, void *ctx);
void tsvc_lines_reset(tsvc_lines_t *l);
void tsvc_lines_free(tsvc_lines_t *l);

#endif /* TSVC_DOCKER_STREAM_H */
