/* page.c: see page.h. */
#include "api/page.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_json.h"
#include "common/util.h"

#define REASON_MAX 160 /* bytes of a change's reason kept */
#define NBUCKETS 256
#define DATA_MARK "__TSVC_DATA__"

typedef struct {
  int64_t time_ms;
  tsvc_state_t from, to;
  char *reason; /* owned, at most REASON_MAX - 1 bytes; NULL: out of memory */
} rec_t;

/* The changes of one service: a ring of the newest, grown on demand (a
   service changes state a few times an hour; TSVC_PAGE_MAX_CHANGES records
   kept up front were 22 KiB a service, most of the monitor's memory at
   1,000 services: issue 13). Until it is full the ring is a plain array
   (head 0), so growing it keeps the order. */
typedef struct svc {
  struct svc *next; /* in its bucket */
  char *name;
  rec_t *ring;      /* cap records, owned */
  size_t cap;
  size_t head, n;   /* oldest at head */
} svc_t;

struct tsvc_page_s {
  tsvc_manager_t *m;
  int sub;
  pthread_mutex_t mu;
  svc_t *buckets[NBUCKETS];
  size_t nsvcs;
  int64_t since_ms; /* recording began */
};

static unsigned hash(const char *s) {
  unsigned h = 2166136261u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h % NBUCKETS;
}

/* Under p->mu. create: make it when missing (NULL when out of memory or
   when TSVC_PAGE_MAX_SERVICES are recorded). */
static svc_t *find(tsvc_page_t *p, const char *name, bool create) {
  unsigned h = hash(name);
  for (svc_t *s = p->buckets[h]; s; s = s->next)
    if (strcmp(s->name, name) == 0) return s;
  if (!create || p->nsvcs >= TSVC_PAGE_MAX_SERVICES) return NULL;
  svc_t *s = calloc(1, sizeof *s);
  if (!s || !(s->name = strdup(name))) {
    free(s);
    return NULL;
  }
  s->next = p->buckets[h];
  p->buckets[h] = s;
  p->nsvcs++;
  return s;
}

/* On the loop thread: a copy, under the mutex, nothing more. */
static void on_change(const tsvc_change_t *ch, void *data) {
  tsvc_page_t *p = data;
  if (!ch->service) return;
  pthread_mutex_lock(&p->mu);
  svc_t *s = find(p, ch->service, true);
  if (s && s->n == s->cap && s->head == 0 && s->cap < TSVC_PAGE_MAX_CHANGES) {
    /* Two first: most services change twice (starting, then healthy). */
    size_t cap = s->cap ? s->cap * 2 : 2;
    if (cap > TSVC_PAGE_MAX_CHANGES) cap = TSVC_PAGE_MAX_CHANGES;
    rec_t *ring = realloc(s->ring, cap * sizeof *ring);
    if (ring) {
      s->ring = ring;
      s->cap = cap;
    } else if (!s->cap) {
      s = NULL; /* out of memory: this change is not recorded */
    }
  }
  if (s) {
    rec_t *r;
    if (s->n < s->cap) {
      r = &s->ring[(s->head + s->n++) % s->cap];
      r->reason = NULL; /* a new slot (realloc leaves it undefined) */
    } else {
      r = &s->ring[s->head]; /* the oldest goes */
      s->head = (s->head + 1) % s->cap;
    }
    r->time_ms = ch->time_ms;
    r->from = ch->from;
    r->to = ch->to;
    /* The reason's own length, not REASON_MAX bytes a change (issue 13). */
    free(r->reason);
    r->reason = strndup(ch->reason ? ch->reason : "", REASON_MAX - 1);
  }
  pthread_mutex_unlock(&p->mu);
}

tsvc_page_t *tsvc_page_new(tsvc_manager_t *m) {
  tsvc_page_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  p->m = m;
  p->since_ms = tsvc_wall_ms();
  pthread_mutex_init(&p->mu, NULL);
  p->sub = tsvc_manager_subscribe(m, on_change, p);
  if (p->sub <= 0) {
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
  }
  return p;
}

void tsvc_page_free(tsvc_page_t *p) {
  if (!p) return;
  /* After this, on_change is never called for p again. */
  tsvc_manager_unsubscribe(p->m, p->sub);
  for (size_t i = 0; i < NBUCKETS; i++) {
    for (svc_t *s = p->buckets[i], *next; s; s = next) {
      next = s->next;
      free(s->name);
      for (size_t j = 0; j < s->n; j++) free(s->ring[(s->head + j) % s->cap].reason);
      free(s->ring);
      free(s);
    }
  }
  pthread_mutex_destroy(&p->mu);
  free(p);
}

json_t *tsvc_page_changes(tsvc_page_t *p, const char *name, int64_t now_ms) {
  json_t *a = json_array();
  if (!a) return NULL;
  pthread_mutex_lock(&p->mu);
  svc_t *s = find(p, name, false);
  for (size_t i = 0; s && i < s->n; i++) {
    const rec_t *r = &s->ring[(s->head + i) % s->cap];
    if (r->time_ms < now_ms - TSVC_PAGE_WINDOW_MS) continue;
    tsvc_change_t ch = {.service = s->name, .from = r->from, .to = r->to,
                        .reason = r->reason ? r->reason : "", .time_ms = r->time_ms};
    json_t *o = tsvc_api_json_change(&ch);
    if (!o || json_array_append_new(a, o)) {
      json_decref(a);
      a = NULL;
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return a;
}

/* One service for the page: the API's status with its history, without
   exec output, and its changes. */
static json_t *service_json(tsvc_page_t *p, const tsvc_status_t *st, int64_t now_ms) {
  json_t *o = tsvc_api_json_status(st, true);
  if (!o) return NULL;
  size_t i;
  json_t *r;
  json_array_foreach(json_object_get(o, "history"), i, r) json_object_del(r, "output");
  json_t *ch = tsvc_page_changes(p, st->name ? st->name : "", now_ms);
  if (!ch || json_object_set_new(o, "changes", ch)) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* The data, as JSON fit for a <script> element: "<" is written \u003c,
   so nothing in it can end the element or open a comment. */
static char *data_text(tsvc_page_t *p, int64_t now_ms) {
  tsvc_status_list_t l = {0};
  int rc = tsvc_manager_get_all_status(p->m, &l);
  json_t *svcs = json_array();
  for (size_t i = 0; !rc && svcs && i < l.n; i++) {
    json_t *s = service_json(p, &l.v[i], now_ms);
    if (!s || json_array_append_new(svcs, s)) {
      json_decref(svcs);
      svcs = NULL;
    }
  }
  if (!rc) tsvc_status_list_free(&l);
  const char *runtime = tsvc_manager_runtime_name(p->m);
  json_t *d = svcs ? json_pack("{s:o, s:I, s:o, s:s, s:b, s:o}", "now", tsvc_api_json_time(now_ms),
                               "window_ms", (json_int_t)TSVC_PAGE_WINDOW_MS, "recording_since",
                               tsvc_api_json_time(p->since_ms), "runtime",
                               runtime ? runtime : "", "monitored", rc == 0, "services", svcs)
                   : NULL;
  char *text = d ? json_dumps(d, JSON_COMPACT | JSON_ESCAPE_SLASH) : NULL;
  json_decref(d);
  if (!text) return NULL;
  size_t lt = 0;
  for (const char *c = text; *c; c++) lt += *c == '<';
  if (!lt) return text;
  size_t n = strlen(text);
  char *esc = malloc(n + lt * 5 + 1), *w = esc;
  if (esc) {
    for (const char *c = text; *c; c++) {
      if (*c == '<') {
        memcpy(w, "\\u003c", 6);
        w += 6;
      } else {
        *w++ = *c;
      }
    }
    *w = '\0';
  }
  free(text);
  return esc;
}

int tsvc_page_render(tsvc_page_t *p, int64_t now_ms, char **out, size_t *len) {
  *out = NULL;
  *len = 0;
  const char *mark = strstr(tsvc_page_html, DATA_MARK);
  char *data = data_text(p, now_ms);
  if (!data || !mark) {
    free(data);
    return TSVC_ENOMEM;
  }
  size_t pre = (size_t)(mark - tsvc_page_html), dl = strlen(data);
  size_t post = tsvc_page_html_len - pre - (sizeof DATA_MARK - 1);
  char *html = malloc(pre + dl + post + 1);
  if (!html) {
    free(data);
    return TSVC_ENOMEM;
  }
  memcpy(html, tsvc_page_html, pre);
  memcpy(html + pre, data, dl);
  memcpy(html + pre + dl, mark + sizeof DATA_MARK - 1, post);
  html[pre + dl + post] = '\0';
  free(data);
  *out = html;
  *len = pre + dl + post;
  return 0;
}
