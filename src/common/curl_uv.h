/*
 * curl_uv: libcurl's multi-socket API on a libuv loop (curl's
 * docs/examples/multi-uv.c), shared by the docker client (src/docker/) and
 * the webhooks (src/manager/webhook.c). libcurl says which sockets to watch
 * and when to wake it; libuv says when a socket is ready or the timer
 * fired; after each such turn the owner's `after` callback runs, where it
 * collects finished transfers (curl_multi_info_read).
 *
 * Loop thread only. The struct is the owner's (embedded, not allocated
 * here); it must stay valid until the `closed` callback of
 * tsvc_curl_uv_close ran. `after` runs from the loop only, never inside a
 * libcurl call, so it may add, remove or free transfers, and even call
 * tsvc_curl_uv_close: nothing touches the struct after `after` returns.
 */
#ifndef TSVC_CURL_UV_H
#define TSVC_CURL_UV_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct tsvc_curl_uv_s tsvc_curl_uv_t;
typedef struct tsvc_curl_uv_poll_s tsvc_curl_uv_poll_t;

struct tsvc_curl_uv_s {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;              /* libcurl's timeout */
  tsvc_curl_uv_poll_t *polls;    /* every socket being watched */
  bool destroyed;                /* curl_multi_cleanup is running or done */
  void (*after)(tsvc_curl_uv_t *cu, void *data);
  void (*closed)(void *data);
  void *data;
};

/* Set up cu on loop: a multi handle, its timer. after(cu, data) runs after
   each turn of libcurl's work. Returns 0, TSVC_ERUNTIME when libcurl could
   not be initialised (why in err), TSVC_ENOMEM. On error nothing is left
   to close. */
int tsvc_curl_uv_init(tsvc_curl_uv_t *cu, uv_loop_t *loop,
                      void (*after)(tsvc_curl_uv_t *cu, void *data), void *data, char *err,
                      size_t errlen);

/* The end: every easy handle must have been removed from cu->multi (or is
   dropped with it). Cleans the multi handle up, stops watching, and calls
   closed(data) once the last handle is closed (from the loop; NULL: none).
   Nothing else is called back from now on. */
void tsvc_curl_uv_close(tsvc_curl_uv_t *cu, void (*closed)(void *data));

#endif /* TSVC_CURL_UV_H */
