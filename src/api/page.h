/*
 * page: the status page, GET / on the API (docs/api.md, "The status page").
 *
 * One self-contained HTML page (src/api/page.html, compiled in at build
 * time: no external assets, a Content-Security-Policy that allows none):
 * a row per service with its state in colour, a strip of its states over
 * the last hour, a sparkline of its probe latencies (inline SVG, from the
 * history), its last error and its restarts. The page updates itself from
 * GET /v1/events as text/event-stream, without a reload.
 *
 * The strip needs the changes of state of the last hour, which the
 * monitor does not keep: a tsvc_page_t subscribes to the manager when the
 * API starts and keeps, per service, the changes of the last hour (at most
 * TSVC_PAGE_MAX_CHANGES each, the newest). The page is rendered with them
 * and with a status copy of every service (with its history) as JSON
 * inside the HTML, so that its first paint is complete. Everything in it
 * went through the API's JSON shapes (api_json.c): secrets are masked as
 * in every answer of the API, and exec output is left out.
 *
 * Threads: the change callback runs on the manager's loop thread and only
 * takes the page's mutex for a copy; render runs in a server thread.
 * Ownership: tsvc_page_new() borrows the manager (it must outlive the
 * page); tsvc_page_free() unsubscribes first, then frees.
 */
#ifndef TSVC_API_PAGE_H
#define TSVC_API_PAGE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tsvc.h"

#define TSVC_PAGE_WINDOW_MS (60 * 60 * 1000) /* the strip: the last hour */
#define TSVC_PAGE_MAX_CHANGES 128            /* changes kept per service */
#define TSVC_PAGE_MAX_SERVICES 4096          /* services recorded at most */

typedef struct tsvc_page_s tsvc_page_t;

/* Start recording the manager's changes. NULL when out of memory. */
tsvc_page_t *tsvc_page_new(tsvc_manager_t *m);
void tsvc_page_free(tsvc_page_t *p);

/*
 * The page as HTML: *out (caller frees) and *len. now_ms is the wall
 * clock that the window ends at. Returns 0 or TSVC_ENOMEM. Services not
 * monitored (yet) give a page that says so.
 */
int tsvc_page_render(tsvc_page_t *p, int64_t now_ms, char **out, size_t *len);

/* The recorded changes of name within the window ending at now_ms, oldest
   first, as the API's change objects (a JSON array; caller decrefs). For
   tests and for render. */
json_t *tsvc_page_changes(tsvc_page_t *p, const char *name, int64_t now_ms);

/* The HTML template (page_html.c, generated from src/api/page.html). */
extern const char tsvc_page_html[];
extern const size_t tsvc_page_html_len;

#endif /* TSVC_API_PAGE_H */
