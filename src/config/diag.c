/* diag.c: the diagnostics of the config loader, and did-you-mean. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"
#include "tsvc.h"

void tsvc_diag_free(tsvc_diag_t *d) {
  if (!d) return;
  for (size_t i = 0; i < d->n; i++) free(d->lines[i]);
  free(d->lines);
  d->lines = NULL;
  d->n = d->nerrors = d->nwarnings = 0;
}

static int push_line(tsvc_diag_t *d, char *line) {
  char **v = realloc(d->lines, (d->n + 1) * sizeof *v);
  if (!v) {
    free(line);
    return TSVC_ENOMEM;
  }
  d->lines = v;
  d->lines[d->n++] = line;
  return 0;
}

int diag_add(tsvc_diag_t *d, const char *file, int line, int col, diag_sev_t sev,
             const char *fmt, ...) {
  if (sev == DIAG_ERROR)
    d->nerrors++;
  else
    d->nwarnings++;
  size_t total = d->nerrors + d->nwarnings;
  if (total > DIAG_MAX_LINES + 1) return 0;
  tsvc_buf_t b;
  tsvc_buf_init(&b, 4096);
  int rc;
  if (total == DIAG_MAX_LINES + 1) {
    rc = tsvc_buf_addf(&b, "%s: error: too many diagnostics; the rest are not shown",
                       file);
  } else {
    if (line > 0)
      rc = tsvc_buf_addf(&b, "%s:%d:%d: %s: ", file, line, col,
                         sev == DIAG_ERROR ? "error" : "warning");
    else
      rc = tsvc_buf_addf(&b, "%s: %s: ", file, sev == DIAG_ERROR ? "error" : "warning");
    if (rc == 0) {
      va_list ap;
      va_start(ap, fmt);
      rc = tsvc_buf_vaddf(&b, fmt, ap);
      va_end(ap);
    }
  }
  if (rc == TSVC_EINVAL) {
    /* Longer than the line limit: keep what fits. */
    rc = 0;
  }
  if (rc) {
    tsvc_buf_free(&b);
    return rc;
  }
  char *s = tsvc_buf_steal(&b);
  if (!s) return TSVC_ENOMEM;
  /* One line per diagnostic whatever the message holds. */
  for (char *p = s; *p; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  return push_line(d, s);
}

/*
 * Optimal string alignment distance (Levenshtein plus the swap of two
 * neighbours, the commonest typo: "imgae"), ignoring case.
 */
size_t edit_distance(const char *a, const char *b, size_t cap) {
  size_t la = strlen(a), lb = strlen(b);
  if (la > 64 || lb > 64) return cap + 1;
  if ((la > lb ? la - lb : lb - la) > cap) return cap + 1;
  size_t rows[3][65]; /* i-2, i-1, i */
  size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];
  for (size_t j = 0; j <= lb; j++) prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    cur[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
      size_t v = prev[j - 1] + (ca == cb ? 0 : 1);
      if (prev[j] + 1 < v) v = prev[j] + 1;
      if (cur[j - 1] + 1 < v) v = cur[j - 1] + 1;
      if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
          tolower((unsigned char)a[i - 2]) == cb && pp[j - 2] + 1 < v)
        v = pp[j - 2] + 1;
      cur[j] = v;
    }
    size_t *t = pp;
    pp = prev;
    prev = cur;
    cur = t;
  }
  return prev[lb] > cap ? cap + 1 : prev[lb];
}

const char *did_you_mean(const char *word, const char *const *candidates) {
  size_t len = strlen(word);
  /* Allow about one typo per three letters, at least one, at most three. */
  size_t cap = len / 3;
  if (cap < 1) cap = 1;
  if (cap > 3) cap = 3;
  const char *best = NULL;
  size_t bestd = cap + 1;
  for (size_t i = 0; candidates[i]; i++) {
    if (strcasecmp(word, candidates[i]) == 0) return candidates[i];
    size_t dist = edit_distance(word, candidates[i], cap);
    if (dist < bestd) {
      bestd = dist;
      best = candidates[i];
    }
  }
  /* A prefix ("health" for "healthcheck") is a good hint too. */
  if (!best && len >= 4) {
    for (size_t i = 0; candidates[i]; i++)
      if (strncasecmp(word, candidates[i], len) == 0) return candidates[i];
  }
  return best;
}
