/* plan.c: see plan.h. */
#include "manager/plan.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "manager/diff.h"

const char *tsvc_plan_action_name(tsvc_plan_action_t a) {
  static const char *const names[] = {
#define X(name, text) text,
      TSVC_PLAN_MAP(X)
#undef X
  };
  return (unsigned)a < TSVC_PLAN__COUNT ? names[a] : "invalid";
}

void tsvc_config_order(const tsvc_config_t *cfg, size_t *out) {
  size_t n = cfg->nservices, k = 0;
  bool *mark = calloc(n ? n : 1, sizeof *mark);
  if (!mark) {
    for (size_t i = 0; i < n; i++) out[i] = i; /* out of memory: file order */
    return;
  }
  /* Repeated passes: each places the services whose dependencies are
     placed. */
  while (k < n) {
    size_t before = k;
    for (size_t i = 0; i < n; i++) {
      if (mark[i]) continue;
      const tsvc_service_conf_t *s = &cfg->services[i];
      bool ready = true;
      for (size_t d = 0; d < s->depends_on.n && ready; d++)
        for (size_t x = 0; x < n; x++)
          if (!mark[x] && strcmp(cfg->services[x].name, s->depends_on.v[d]) == 0)
            ready = false;
      if (ready) {
        mark[i] = true;
        out[k++] = i;
      }
    }
    if (k == before) break;
  }
  for (size_t i = 0; k < n && i < n; i++)
    if (!mark[i]) out[k++] = i;
  free(mark);
}

/* What a kept service needs, from its old and new conf and what differs. */
static tsvc_plan_action_t kept(const tsvc_service_conf_t *was, const tsvc_service_conf_t *s,
                               unsigned d) {
  if (d == TSVC_DIFF_SAME) return TSVC_PLAN_KEEP;
  bool flipped = d & (TSVC_DIFF_ENABLED | TSVC_DIFF_EXTERNAL);
  if (!s->enabled && (d & TSVC_DIFF_ENABLED) && !was->external && !s->external)
    return TSVC_PLAN_STOP;
  if (s->enabled && s->external && flipped) return TSVC_PLAN_WATCH;
  if ((d & TSVC_DIFF_SPEC) && s->enabled && !s->external) return TSVC_PLAN_RECREATE;
  if (s->enabled && !s->external && flipped) return TSVC_PLAN_START;
  return TSVC_PLAN_UPDATE;
}

int tsvc_plan_reload(const tsvc_config_t *old, const tsvc_config_t *nc, tsvc_plan_t *out) {
  memset(out, 0, sizeof *out);
  size_t cap = old->nservices + nc->nservices;
  out->v = calloc(cap ? cap : 1, sizeof *out->v);
  size_t *order = calloc(nc->nservices ? nc->nservices : 1, sizeof *order);
  if (!out->v || !order) {
    free(order);
    tsvc_plan_free(out);
    return TSVC_ENOMEM;
  }
  for (size_t i = 0; i < old->nservices; i++) {
    const tsvc_service_conf_t *s = &old->services[i];
    if (tsvc_config_service(nc, s->name)) continue;
    out->removed++;
    out->v[out->n++] = (tsvc_plan_step_t){
        .svc = s, .action = s->external || !s->enabled ? TSVC_PLAN_DROP : TSVC_PLAN_DROP_STOP};
  }
  tsvc_config_order(nc, order);
  for (size_t k = 0; k < nc->nservices; k++) {
    const tsvc_service_conf_t *s = &nc->services[order[k]];
    const tsvc_service_conf_t *was = tsvc_config_service(old, s->name);
    tsvc_plan_step_t *st = &out->v[out->n++];
    st->svc = s;
    if (!was) {
      out->added++;
      st->action = !s->enabled ? TSVC_PLAN_ADD
                   : s->external ? TSVC_PLAN_ADD_WATCH : TSVC_PLAN_ADD_START;
      continue;
    }
    st->was = was;
    st->diff = tsvc_service_diff(was, s);
    st->action = kept(was, s, st->diff);
    if (st->action == TSVC_PLAN_KEEP) {
      out->same++;
      continue;
    }
    out->changed++;
    if (st->action == TSVC_PLAN_RECREATE) out->recreated++;
  }
  free(order);
  return 0;
}

void tsvc_plan_free(tsvc_plan_t *p) {
  free(p->v);
  memset(p, 0, sizeof *p);
}
