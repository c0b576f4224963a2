/*
 * secret.c: recognise secrets so that `config show`, the log and the API
 * never show them, while everything else is printed as it is.
 *
 * A secret is masked where it stands as a value:
 *   - KEY=VALUE and "KEY": "VALUE" when KEY names a secret (PASSWORD, *_PWD,
 *     TOKEN, ...), libpq's `password=...` included, and KEY=VALUE of any key
 *     when VALUE is a known secret (environment dumps);
 *   - the password of a URL's userinfo (scheme://user:PASSWORD@host);
 *   - the word after -a, --pass, --password, --requirepass, --masterauth
 *     (redis-cli, redis-server), and the password of curl's -u/--user
 *     user:PASSWORD;
 *   - the arguments of a redis AUTH that are known secrets.
 * A known secret anywhere else (in a path, a container name, a user name) is
 * left alone: `.../examples/.tanuki/tanuki-svc.sock` stays readable when the
 * password is "tanuki".
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_int.h"
#include "tsvc.h"

/* Substrings that make a key secret wherever they appear. */
static const char *const secret_parts[] = {"PASS", "SECRET", "TOKEN", "CREDENTIAL", NULL};

/*
 * KEY and AUTH are short and appear inside harmless words, so they count
 * only as (the end of) a word of the key: API_KEY, APIKEY, AUTH,
 * MASTERAUTH; and AUTHORIZATION. AUTHOR_EMAIL and KEYBOARD are not secret.
 * PWD and PW count as a whole word after another one (DB_PWD, MYSQL_PWD,
 * redis_pw): PWD alone is the working directory, a path.
 */
bool tsvc_is_secret_key(const char *key) {
  if (!key) return false;
  size_t n = strlen(key);
  for (size_t i = 0; secret_parts[i]; i++) {
    size_t pl = strlen(secret_parts[i]);
    for (size_t j = 0; j + pl <= n; j++)
      if (strncasecmp(key + j, secret_parts[i], pl) == 0) return true;
  }
  size_t i = 0;
  while (i < n) {
    while (i < n && !isalnum((unsigned char)key[i])) i++;
    size_t start = i;
    while (i < n && isalnum((unsigned char)key[i])) i++;
    size_t wl = i - start;
    if (wl >= 3 && strncasecmp(key + i - 3, "KEY", 3) == 0) return true;
    if (wl >= 4 && strncasecmp(key + i - 4, "AUTH", 4) == 0) return true;
    if (wl >= 8 && strncasecmp(key + start, "AUTHORIZ", 8) == 0) return true;
    if (start > 0 && ((wl == 3 && strncasecmp(key + start, "PWD", 3) == 0) ||
                      (wl == 2 && strncasecmp(key + start, "PW", 2) == 0)))
      return true;
  }
  return false;
}

/* ---- masking text ------------------------------------------------------------ */

typedef struct {
  const char *const *known; /* secrets known by value (the log's), or NULL */
  size_t nknown;
} known_t;

/* What the next word is, after an option that takes a secret. */
typedef enum { NEXT_PLAIN, NEXT_SECRET, NEXT_USERPW, NEXT_AUTH1, NEXT_AUTH2 } next_t;

/* Characters that end an unquoted value inside a word ("a=1,b=2",
   "?x=1&y=2", "(password=x)"). */
static bool value_stop(char c) { return c && strchr(",;&\"')]}", c) != NULL; }

static bool key_char(char c) {
  return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

static bool all_digits(const char *s, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i])) return false;
  return true;
}

/* Is s[0..n) exactly a known secret? */
static bool is_known(const known_t *k, const char *s, size_t n) {
  for (size_t i = 0; k && i < k->nknown; i++)
    if (strlen(k->known[i]) == n && memcmp(k->known[i], s, n) == 0) return true;
  return false;
}

/* The longest known secret that s[0..n) starts with and that ends where a
   value may end (the end, a stop character or a space). 0 when none. */
static size_t known_prefix(const known_t *k, const char *s, size_t n) {
  size_t best = 0;
  for (size_t i = 0; k && i < k->nknown; i++) {
    size_t l = strlen(k->known[i]);
    if (l > best && l <= n && memcmp(k->known[i], s, l) == 0 &&
        (l == n || value_stop(s[l]) || isspace((unsigned char)s[l])))
      best = l;
  }
  return best;
}

static int add_mask(tsvc_buf_t *b) { return tsvc_buf_add(b, TSVC_MASK, strlen(TSVC_MASK)); }

/* A whole word that is a secret: masked, its quotes and what follows the
   closing one kept ('a b' -> '********', "x", -> "********",), and shell
   operators glued to its end (pw; -> ********;: the shell ends the word
   there). */
static int add_masked_word(tsvc_buf_t *b, const char *w, size_t n) {
  const char *close = n > 1 && (w[0] == '"' || w[0] == '\'') ? memchr(w + 1, w[0], n - 1) : NULL;
  if (!close) {
    size_t end = n;
    while (end > 1 && strchr(";&|", w[end - 1])) end--;
    int rc = add_mask(b);
    return rc ? rc : tsvc_buf_add(b, w + end, n - end);
  }
  int rc = tsvc_buf_add(b, w, 1);
  if (!rc) rc = add_mask(b);
  if (!rc) rc = tsvc_buf_add(b, close, n - (size_t)(close - w));
  return rc;
}

/* Append s[0..n) to b with the password of every URL user:password@ masked
   (and a user part that is a known secret: scheme://TOKEN@host). */
static int add_url_masked(tsvc_buf_t *b, const char *s, size_t n, const known_t *k) {
  size_t i = 0;
  while (i < n) {
    const char *sep = NULL;
    for (size_t j = i; j + 3 <= n; j++)
      if (memcmp(s + j, "://", 3) == 0) {
        sep = s + j;
        break;
      }
    if (!sep) break;
    size_t auth = (size_t)(sep - s) + 3;
    size_t end = auth;
    while (end < n && !strchr("/?# \t\"'", s[end])) end++;
    /* The last '@' of the authority ends the userinfo. */
    size_t at = end;
    for (size_t j = auth; j < end; j++)
      if (s[j] == '@') at = j;
    size_t colon = at;
    if (at < end)
      for (size_t j = auth; j < at; j++)
        if (s[j] == ':') {
          colon = j;
          break;
        }
    int rc;
    if (at < end && colon < at) {
      if ((rc = tsvc_buf_add(b, s + i, colon + 1 - i))) return rc;
      if ((rc = add_mask(b))) return rc;
      if ((rc = tsvc_buf_add(b, s + at, end - at))) return rc;
    } else if (at < end && is_known(k, s + auth, at - auth)) {
      if ((rc = tsvc_buf_add(b, s + i, auth - i))) return rc;
      if ((rc = add_mask(b))) return rc;
      if ((rc = tsvc_buf_add(b, s + at, end - at))) return rc;
    } else {
      if ((rc = tsvc_buf_add(b, s + i, end - i))) return rc;
    }
    i = end;
  }
  return tsvc_buf_add(b, s + i, n - i);
}

/* Options whose next word is a password (redis-cli, redis-server). */
static const char *const pw_flags[] = {"-a", "--pass", "--password", "--requirepass",
                                       "--masterauth", NULL};
/* Options whose next word is user:password (curl). */
static const char *const userpw_flags[] = {"-u", "--user", NULL};

static bool word_in(const char *w, size_t n, const char *const *list) {
  for (size_t i = 0; list[i]; i++)
    if (strlen(list[i]) == n && memcmp(w, list[i], n) == 0) return true;
  return false;
}

/* user:password -> user:********, quotes kept. A uid:gid (both numbers) is
   not a password, unless it is a known one. */
static int add_userpw(tsvc_buf_t *b, const char *w, size_t n, const known_t *k) {
  size_t q = n > 0 && (w[0] == '\'' || w[0] == '"') ? 1 : 0;
  size_t end = q && n > 1 && w[n - 1] == w[0] ? n - 1 : n;
  const char *colon = memchr(w + q, ':', end - q);
  if (!colon) return add_url_masked(b, w, n, k);
  size_t c = (size_t)(colon - w);
  if (all_digits(w + q, c - q) && all_digits(w + c + 1, end - c - 1) &&
      !is_known(k, w + c + 1, end - c - 1))
    return tsvc_buf_add(b, w, n);
  int rc = tsvc_buf_add(b, w, c + 1);
  if (!rc) rc = add_mask(b);
  if (!rc) rc = tsvc_buf_add(b, w + end, n - end);
  return rc;
}

/*
 * One word (no unquoted space in it), masked by the rules at the top of the
 * file; *next says what the previous word made of this one and is set for
 * the next.
 */
static int add_word(tsvc_buf_t *b, const char *w, size_t n, next_t *next, const known_t *k) {
  next_t was = *next;
  *next = NEXT_PLAIN;
  if (was == NEXT_SECRET) return add_masked_word(b, w, n);
  if (was == NEXT_USERPW) return add_userpw(b, w, n, k);
  if ((was == NEXT_AUTH1 || was == NEXT_AUTH2) && is_known(k, w, n)) return add_mask(b);
  if (was == NEXT_AUTH1) *next = NEXT_AUTH2; /* AUTH user password */
  if (word_in(w, n, pw_flags)) {
    *next = NEXT_SECRET;
    return tsvc_buf_add(b, w, n);
  }
  if (word_in(w, n, userpw_flags)) {
    *next = NEXT_USERPW;
    return tsvc_buf_add(b, w, n);
  }
  if (n == 4 && memcmp(w, "AUTH", 4) == 0) {
    *next = NEXT_AUTH1;
    return tsvc_buf_add(b, w, n);
  }
  if (n > 2 && memcmp(w, "-u", 2) == 0 && w[2] != '-') {
    /* curl's -uuser:password */
    int rc = tsvc_buf_add(b, w, 2);
    return rc ? rc : add_userpw(b, w + 2, n - 2, k);
  }
  /* KEY=VALUE and KEY:VALUE (JSON's "KEY":"VALUE") inside the word. */
  size_t last = 0;
  int rc;
  for (size_t j = 0; j < n; j++) {
    char c = w[j];
    if (c != '=' && c != ':') continue;
    size_t ke = j;
    if (ke > 0 && (w[ke - 1] == '"' || w[ke - 1] == '\'')) ke--;
    size_t ks = ke;
    while (ks > 0 && key_char(w[ks - 1])) ks--;
    if (ks == ke || ke - ks >= 128) continue;
    char key[128];
    memcpy(key, w + ks, ke - ks);
    key[ke - ks] = '\0';
    bool secret = tsvc_is_secret_key(key);
    /* host:port, scheme://, time 12:30 are not KEY:VALUE. */
    if (c == ':' && (!secret || (j + 1 < n && w[j + 1] == '/'))) continue;
    size_t vs = j + 1;
    char quote = 0;
    if (vs < n && (w[vs] == '"' || w[vs] == '\'')) quote = w[vs++];
    size_t ve = vs;
    while (ve < n && (quote ? w[ve] != quote : !value_stop(w[ve]))) ve++;
    if (!quote) {
      size_t kp = known_prefix(k, w + vs, n - vs);
      if (vs + kp > ve) ve = vs + kp;
    }
    if (ve == vs) {
      /* "password": "x" -- the value is the next word. */
      if (secret && vs == n) *next = NEXT_SECRET;
      continue;
    }
    if (!secret && !is_known(k, w + vs, ve - vs)) continue;
    if ((rc = add_url_masked(b, w + last, vs - last, k))) return rc;
    if ((rc = add_mask(b))) return rc;
    last = ve;
    j = ve > 0 ? ve - 1 : 0;
  }
  return add_url_masked(b, w + last, n - last, k);
}

/* Mask a text word by word; quotes keep spaces inside one word; spaces are
   copied as they are. Separators of shell lists end an option's reach. */
static int add_text_masked(tsvc_buf_t *b, const char *s, size_t n, next_t *next,
                           const known_t *k) {
  size_t i = 0;
  while (i < n) {
    if (isspace((unsigned char)s[i])) {
      int rc = tsvc_buf_add(b, s + i, 1);
      if (rc) return rc;
      i++;
      continue;
    }
    size_t start = i;
    char quote = 0;
    while (i < n && (quote || !isspace((unsigned char)s[i]))) {
      if (quote) {
        if (s[i] == quote) quote = 0;
      } else if ((s[i] == '\'' || s[i] == '"') && memchr(s + i + 1, s[i], n - i - 1)) {
        quote = s[i]; /* only a quote that closes groups words */
      } else if (s[i] == '\\' && i + 1 < n) {
        i++;
      }
      i++;
    }
    if (i - start == 1 && strchr(";&|", s[start])) *next = NEXT_PLAIN;
    int rc = add_word(b, s + start, i - start, next, k);
    if (rc) return rc;
  }
  return 0;
}

int tsvc_mask_text(char *dst, size_t len, const char *src, const char *const *known,
                   size_t nknown) {
  if (!dst || !len) return TSVC_EINVAL;
  dst[0] = '\0';
  if (!src) return 0;
  known_t k = {known, nknown};
  next_t next = NEXT_PLAIN;
  tsvc_buf_t b;
  size_t n = strlen(src);
  tsvc_buf_init(&b, n * 9 + 64);
  int rc = add_text_masked(&b, src, n, &next, &k);
  if (!rc) tsvc_strlcpy(dst, b.data ? b.data : "", len);
  tsvc_buf_free(&b);
  return rc;
}

char *mask_env_value(const char *key, const char *value) {
  if (!value) return NULL;
  if (tsvc_is_secret_key(key) && *value) return tsvc_strdup(TSVC_MASK);
  /* A DSN ("host=db password=x"), a URL, a command line: as text. */
  tsvc_buf_t b;
  tsvc_buf_init(&b, strlen(value) * 9 + 64);
  next_t next = NEXT_PLAIN;
  if (add_text_masked(&b, value, strlen(value), &next, NULL)) {
    tsvc_buf_free(&b);
    return NULL;
  }
  if (!b.data) return tsvc_strdup("");
  return tsvc_buf_steal(&b);
}

void strv_free_raw(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

char **mask_argv(char *const *argv, size_t n, bool shell) {
  char **out = calloc(n ? n : 1, sizeof *out);
  if (!out) return NULL;
  next_t next = NEXT_PLAIN;
  for (size_t i = 0; i < n; i++) {
    tsvc_buf_t b;
    size_t len = strlen(argv[i]);
    tsvc_buf_init(&b, len * 9 + 64);
    /* An element with spaces is a script for a shell (sh -c "..."):
     * mask it word by word too. */
    bool script = shell || strpbrk(argv[i], " \t\n") != NULL;
    int rc = script ? add_text_masked(&b, argv[i], len, &next, NULL)
                    : add_word(&b, argv[i], len, &next, NULL);
    if (script) next = NEXT_PLAIN;
    if (!rc && !b.data) rc = tsvc_buf_add(&b, "", 0);
    if (rc || !(out[i] = tsvc_buf_steal(&b))) {
      tsvc_buf_free(&b);
      strv_free_raw(out, n);
      return NULL;
    }
  }
  return out;
}
