/*
 * pull.c: tsvc_docker_image_pull of docker.h, with its progress stream.
 *
 * The progress lines are summed up inside libcurl's write callback (only
 * the pure parser of image.c runs there); the user's progress callback runs
 * from a timer of the request, on the loop, as every callback does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker/image.h"
#include "docker/internal.h"

#define PULL_MAX_LINE (16u << 10)

typedef struct {
  tsvc_pull_state_t st;
  tsvc_docker_progress_cb progress;
  bool dirty;      /* changed since the last progress call */
} pull_t;

/* Inside libcurl's write callback: no libcurl call, no user code. */
static int on_line(void *ctx, const char *line, size_t n) {
  tsvc_docker_req_t *r = ctx;
  pull_t *pl = r->op;
  if (tsvc_pull_feed(&pl->st, line, n)) pl->dirty = true;
  return 0;
}

/* On r's timer, from the loop. Re-armed before the user's callback, which
   may cancel r (that stops the timer); r is not touched after it. */
static void progress_timer(tsvc_docker_req_t *r) {
  pull_t *pl = r->op;
  tsvc__docker_req_timer(r, TSVC_DOCKER_PULL_PROGRESS_MS, progress_timer);
  if (!pl->dirty || r->d->closing) return;
  pl->dirty = false;
  tsvc_pull_progress_t p;
  tsvc_pull_progress(&pl->st, &p);
  pl->progress(&p, r->data);
}

static bool not_found(const char *msg) {
  return strstr(msg, "manifest unknown") || strstr(msg, "not found") ||
         strstr(msg, "repository does not exist");
}

static void pull_done(tsvc_docker_req_t *r, int status, const char *errmsg) {
  pull_t *pl = r->op;
  tsvc__docker_req_timer_stop(r);
  if (status) {
    tsvc__docker_fail(r, status, errmsg);
    return;
  }
  if (pl->st.error[0]) {
    char msg[sizeof pl->st.error];
    tsvc_strlcpy(msg, pl->st.error, sizeof msg);
    tsvc__docker_fail(r, not_found(msg) ? TSVC_ENOENT : TSVC_ERUNTIME, msg);
    return;
  }
  tsvc_pull_progress_t p;
  tsvc_pull_progress(&pl->st, &p);
  /* What changed since the timer's last call is told before the
     callback: a pull shorter than a timer step still shows its layers
     (a live line that never had them, seen in a test on an idle machine).
     A cancel from inside it is too late, as from the callback (in_cb). */
  if (pl->progress && pl->dirty && !r->d->closing) {
    pl->dirty = false;
    r->in_cb = true;
    pl->progress(&p, r->data);
    r->in_cb = false;
  }
  json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:I}", "Status", pl->st.status, "Digest",
                        pl->st.digest, "Layers", p.layers, "LayersDone", p.layers_done, "Bytes",
                        (json_int_t)p.bytes_done);
  if (!j) {
    tsvc__docker_fail(r, TSVC_ENOMEM, "out of memory");
    return;
  }
  tsvc_docker_reply_t rep = {.json = j, .exit_code = -1};
  tsvc__docker_done(r, &rep);
  json_decref(j);
}

static void pull_free(void *op) { free(op); }

int tsvc_docker_image_pull(tsvc_docker_t *d, const char *image, const char *auth,
                           tsvc_docker_progress_cb progress, tsvc_docker_cb cb, void *data,
                           tsvc_docker_req_t **reqp) {
  if (!d || !cb || !image) return TSVC_EINVAL;
  tsvc_image_ref_t ref;
  if (tsvc_image_ref_parse(image, &ref, NULL, 0)) return TSVC_EINVAL;
  char *ne = tsvc__docker_esc(ref.name), *te = tsvc__docker_esc(ref.tag);
  char *path = ne && te ? tsvc_asprintf("/images/create?fromImage=%s&tag=%s", ne, te) : NULL;
  free(ne);
  free(te);
  pull_t *pl = path ? calloc(1, sizeof *pl) : NULL;
  char *xhdr = pl && auth ? tsvc_asprintf("X-Registry-Auth: %s", auth) : NULL;
  tsvc_docker_req_t *r = pl && (xhdr || !auth) ? tsvc__docker_req_new(d, cb, data) : NULL;
  if (!r) {
    free(path);
    free(pl);
    if (xhdr) memset(xhdr, 0, strlen(xhdr));
    free(xhdr);
    return TSVC_ENOMEM;
  }
  tsvc_pull_state_init(&pl->st);
  pl->progress = progress;
  r->op = pl;
  r->op_free = pull_free;
  r->xhdr = xhdr;
  r->sink = TSVC__SINK_LINES;
  r->max = PULL_MAX_LINE;
  r->on_line = on_line;
  r->timeout_ms = 0; /* as long as it takes, while it moves */
  r->stall_s = TSVC_DOCKER_PULL_STALL_S;
  int rc = tsvc__docker_launch(r, "POST", path, NULL, pull_done, reqp);
  free(path);
  if (rc) return rc; /* r was freed */
  if (progress && tsvc__docker_req_timer(r, TSVC_DOCKER_PULL_PROGRESS_MS, progress_timer)) {
    if (reqp) *reqp = NULL;
    tsvc__docker_req_destroy(r);
    return TSVC_ERUNTIME;
  }
  return 0;
}
