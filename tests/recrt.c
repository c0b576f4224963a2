/* recrt.c: see recrt.h. */
#include "recrt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

typedef struct {
  uv_timer_t timer;
  recrt_t *r;
  const tsvc_service_conf_t *svc;
  int kind; /* 0 start, 1 stop, 2 restart, 3 inspect */
  int fail;
  tsvc_rt_done_cb done;
  tsvc_rt_inspect_cb inspect;
  void *data;
} pending_t;

static int slot(recrt_t *r, const char *name) {
  for (int i = 0; i < r->nnames; i++)
    if (strcmp(r->names[i], name) == 0) return i;
  if (r->nnames == 64) return 0;
  tsvc_strlcpy(r->names[r->nnames], name, sizeof r->names[0]);
  r->running[r->nnames] = false;
  return r->nnames++;
}

void recrt_set_running(recrt_t *r, const char *service, bool running) {
  r->running[slot(r, service)] = running;
}

bool recrt_is_running(recrt_t *r, const char *service) { return r->running[slot(r, service)]; }

int recrt_count(const recrt_t *r, const char *op, const char *service) {
  int n = 0;
  for (int i = 0; i < r->ncalls; i++)
    if ((!op || strcmp(r->calls[i].op, op) == 0) &&
        (!service || strcmp(r->calls[i].service, service) == 0))
      n++;
  return n;
}

static void record(recrt_t *r, const char *op, const char *service) {
  if (r->ncalls == RECRT_MAX) return;
  recrt_call_t *c = &r->calls[r->ncalls++];
  tsvc_strlcpy(c->op, op, sizeof c->op);
  tsvc_strlcpy(c->service, service, sizeof c->service);
  c->at = uv_now(r->base.loop);
}

static void closed(uv_handle_t *h) { free(h->data); }

static void fire(uv_timer_t *t) {
  pending_t *p = t->data;
  recrt_t *r = p->r;
  r->pending--;
  int i = slot(r, p->svc->name);
  if (p->kind == 3) {
    tsvc_rt_info_t info = {.exists = true, .running = r->running[i], .exit_code = -1};
    if (r->running[i]) info.pid = 4242 + r->starts;
    else info.exit_code = 137;
    snprintf(info.id, sizeof info.id, "rec-%s", p->svc->name);
    snprintf(info.name, sizeof info.name, "tanuki-svc-%s", p->svc->name);
    p->inspect(0, NULL, &info, p->data);
  } else if (p->fail) {
    p->done(TSVC_ERUNTIME, r->fail_msg, p->data);
  } else {
    r->running[i] = p->kind != 1;
    if (p->kind != 1) r->starts++;
    p->done(0, NULL, p->data);
  }
  uv_close((uv_handle_t *)&p->timer, closed);
}

static int later(recrt_t *r, const tsvc_service_conf_t *svc, int kind, tsvc_rt_done_cb done,
                 tsvc_rt_inspect_cb inspect, void *data) {
  static const char *const names[] = {"start", "stop", "restart", "inspect"};
  if (kind != 3 && kind != 1 && r->refuse_ops > 0) {
    r->refuse_ops--;
    record(r, names[kind], svc->name);
    return TSVC_ERUNTIME; /* the callback is never called then */
  }
  pending_t *p = calloc(1, sizeof *p);
  if (!p) return TSVC_ENOMEM;
  record(r, names[kind], svc->name);
  p->r = r;
  p->svc = svc;
  p->kind = kind;
  p->done = done;
  p->inspect = inspect;
  p->data = data;
  if (kind != 3 && kind != 1 && r->fail_ops > 0) {
    r->fail_ops--;
    p->fail = 1;
  }
  uv_timer_init(r->base.loop, &p->timer);
  p->timer.data = p;
  r->pending++;
  uv_timer_start(&p->timer, fire, kind == 3 ? r->inspect_delay_ms : r->op_delay_ms, 0);
  return 0;
}

static int rstart(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                  void *data) {
  return later((recrt_t *)rt, svc, 0, cb, NULL, data);
}
static int rstop(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                 void *data) {
  return later((recrt_t *)rt, svc, 1, cb, NULL, data);
}
static int rrestart(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_done_cb cb,
                    void *data) {
  return later((recrt_t *)rt, svc, 2, cb, NULL, data);
}
static int rinspect(tsvc_runtime_t *rt, const tsvc_service_conf_t *svc, tsvc_rt_inspect_cb cb,
                    void *data) {
  return later((recrt_t *)rt, svc, 3, NULL, cb, data);
}
static void rfree(tsvc_runtime_t *rt) { free(rt); }

static const tsvc_runtime_ops_t recrt_ops = {
    .name = "recording",
    .start = rstart,
    .stop = rstop,
    .restart = rrestart,
    .inspect = rinspect,
    .free = rfree,
};

recrt_t *recrt_new(uv_loop_t *loop) {
  recrt_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->base.ops = &recrt_ops;
  r->base.loop = loop;
  snprintf(r->fail_msg, sizeof r->fail_msg, "simulated failure");
  return r;
}
