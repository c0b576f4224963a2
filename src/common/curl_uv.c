/* curl_uv.c: see curl_uv.h. */
#include "common/curl_uv.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/util.h"
#include "tsvc.h"

struct tsvc_curl_uv_poll_s {
  uv_poll_t poll; /* first: the close callback frees the struct */
  curl_socket_t fd;
  tsvc_curl_uv_t *cu;
  tsvc_curl_uv_poll_t *prev, *next;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) {
  curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void poll_close_cb(uv_handle_t *h) {
  free(h); /* the uv_poll_t is the first member of tsvc_curl_uv_poll_t */
}

static void poll_close(tsvc_curl_uv_poll_t *p) {
  tsvc_curl_uv_t *cu = p->cu;
  if (p->prev) p->prev->next = p->next;
  else cu->polls = p->next;
  if (p->next) p->next->prev = p->prev;
  uv_poll_stop(&p->poll);
  uv_close((uv_handle_t *)&p->poll, poll_close_cb);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  tsvc_curl_uv_poll_t *p = (tsvc_curl_uv_poll_t *)h;
  tsvc_curl_uv_t *cu = p->cu;
  int flags = 0, running;
  /* An error on the socket (libuv stops the handle and reports no events)
     may follow data that came before it: a TLS peer sends its alert ("unknown
     ca") and then resets the connection. Readable as well, so that libcurl
     reads the alert and says why, rather than "select/poll returned error". */
  if (status < 0) flags = CURL_CSELECT_ERR | CURL_CSELECT_IN;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(cu->multi, p->fd, flags, &running);
  cu->after(cu, cu->data); /* last: it may close cu */
}

static void on_timer(uv_timer_t *t) {
  tsvc_curl_uv_t *cu = t->data;
  int running;
  curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  cu->after(cu, cu->data); /* last: it may close cu */
}

static int on_curl_socket(CURL *e, curl_socket_t s, int action, void *userp, void *socketp) {
  (void)e;
  tsvc_curl_uv_t *cu = userp;
  tsvc_curl_uv_poll_t *p = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (p) {
      poll_close(p);
      if (!cu->destroyed) curl_multi_assign(cu->multi, s, NULL);
    }
    return 0;
  }
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p) return -1;
    if (uv_poll_init_socket(cu->loop, &p->poll, s) != 0) {
      free(p);
      return -1;
    }
    p->fd = s;
    p->cu = cu;
    p->next = cu->polls;
    if (cu->polls) cu->polls->prev = p;
    cu->polls = p;
    curl_multi_assign(cu->multi, s, p);
  }
  int ev = 0;
  if (action & CURL_POLL_IN) ev |= UV_READABLE;
  if (action & CURL_POLL_OUT) ev |= UV_WRITABLE;
  return uv_poll_start(&p->poll, ev, on_poll) == 0 ? 0 : -1;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
  (void)m;
  tsvc_curl_uv_t *cu = userp;
  if (cu->destroyed) return 0;
  if (timeout_ms < 0) uv_timer_stop(&cu->timer);
  else uv_timer_start(&cu->timer, on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

int tsvc_curl_uv_init(tsvc_curl_uv_t *cu, uv_loop_t *loop,
                      void (*after)(tsvc_curl_uv_t *cu, void *data), void *data, char *err,
                      size_t errlen) {
  pthread_once(&curl_once, curl_init);
  if (curl_init_rc != CURLE_OK) {
    tsvc_errf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
    return TSVC_ERUNTIME;
  }
  *cu = (tsvc_curl_uv_t){.loop = loop, .after = after, .data = data};
  cu->multi = curl_multi_init();
  if (!cu->multi) {
    tsvc_errf(err, errlen, "out of memory");
    return TSVC_ENOMEM;
  }
  curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
  curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
  uv_timer_init(loop, &cu->timer);
  cu->timer.data = cu;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  tsvc_curl_uv_t *cu = h->data;
  if (cu->closed) cu->closed(cu->data);
}

void tsvc_curl_uv_close(tsvc_curl_uv_t *cu, void (*closed)(void *data)) {
  cu->destroyed = true;
  cu->closed = closed;
  curl_multi_cleanup(cu->multi);
  cu->multi = NULL;
  /* libcurl may close cached connections without telling on_curl_socket. */
  while (cu->polls) poll_close(cu->polls);
  uv_timer_stop(&cu->timer);
  uv_close((uv_handle_t *)&cu->timer, timer_closed);
}
