/*
 * secret.c: recognise secrets so that `config show` (and anything else that
 * prints a config) never shows them.
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
  }
  return false;
}

/* Append s[0..n) to b with the password of every URL user:password@ masked. */
static int add_url_masked(tsvc_buf_t *b, const char *s, size_t n) {
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
    for (size_t k = auth; k < end; k++)
      if (s[k] == '@') at = k;
    size_t colon = at;
    if (at < end)
      for (size_t k = auth; k < at; k++)
        if (s[k] == ':') {
          colon = k;
          break;
        }
    int rc;
    if (at < end && colon < at) {
      if ((rc = tsvc_buf_add(b, s + i, colon + 1 - i))) return rc;
      if ((rc = tsvc_buf_add(b, TSVC_MASK, strlen(TSVC_MASK)))) return rc;
      if ((rc = tsvc_buf_add(b, s + at, end - at))) return rc;
    } else {
      if ((rc = tsvc_buf_add(b, s + i, end - i))) return rc;
    }
    i = end;
  }
  return tsvc_buf_add(b, s + i, n - i);
}

char *mask_env_value(const char *key, const char *value) {
  if (!value) return NULL;
  if (tsvc_is_secret_key(key) && *value) return tsvc_strdup(TSVC_MASK);
  tsvc_buf_t b;
  tsvc_buf_init(&b, strlen(value) * 9 + 64);
  if (add_url_masked(&b, value, strlen(value))) {
    tsvc_buf_free(&b);
    return NULL;
  }
  return tsvc_buf_steal(&b);
}

/* Options whose next word is a password (redis-cli, redis-server). */
static const char *const pw_flags[] = {"-a", "--pass", "--password", "--requirepass",
                                       "--masterauth", NULL};

static bool is_pw_flag(const char *w, size_t n) {
  for (size_t i = 0; pw_flags[i]; i++)
    if (strlen(pw_flags[i]) == n && memcmp(w, pw_flags[i], n) == 0) return true;
  return false;
}

/*
 * Append one word, masked as the rules of mask_argv() say. *next_secret is
 * set when this word is an option whose value is the next word.
 */
static int add_word(tsvc_buf_t *b, const char *w, size_t n, bool *next_secret) {
  if (*next_secret) {
    *next_secret = false;
    return tsvc_buf_add(b, TSVC_MASK, strlen(TSVC_MASK));
  }
  if (is_pw_flag(w, n)) {
    *next_secret = true;
    return tsvc_buf_add(b, w, n);
  }
  const char *eq = memchr(w, '=', n);
  if (eq && eq > w) {
    size_t kl = (size_t)(eq - w);
    bool secret = false;
    if (w[0] == '-') {
      secret = is_pw_flag(w, kl);
    } else {
      char key[128];
      if (kl < sizeof key) {
        memcpy(key, w, kl);
        key[kl] = '\0';
        secret = tsvc_is_secret_key(key);
      }
    }
    if (secret && eq + 1 < w + n) {
      int rc = tsvc_buf_add(b, w, kl + 1);
      if (!rc) rc = tsvc_buf_add(b, TSVC_MASK, strlen(TSVC_MASK));
      return rc;
    }
  }
  return add_url_masked(b, w, n);
}

/* Mask a shell string word by word; quotes keep spaces inside one word. */
static int add_shell_masked(tsvc_buf_t *b, const char *s) {
  bool next_secret = false;
  size_t i = 0, n = strlen(s);
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
      } else if (s[i] == '\'' || s[i] == '"') {
        quote = s[i];
      } else if (s[i] == '\\' && i + 1 < n) {
        i++;
      }
      i++;
    }
    /* Separators of shell lists end an option's reach. */
    if (i - start == 1 && strchr(";&|", s[start])) next_secret = false;
    int rc = add_word(b, s + start, i - start, &next_secret);
    if (rc) return rc;
  }
  return 0;
}

void strv_free_raw(char **v, size_t n) {
  if (!v) return;
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

char **mask_argv(char *const *argv, size_t n, bool shell) {
  char **out = calloc(n ? n : 1, sizeof *out);
  if (!out) return NULL;
  bool next_secret = false;
  for (size_t i = 0; i < n; i++) {
    tsvc_buf_t b;
    tsvc_buf_init(&b, strlen(argv[i]) * 9 + 64);
    /* An element with spaces is a script for a shell (sh -c "..."):
     * mask it word by word too. */
    bool script = shell || strpbrk(argv[i], " \t\n") != NULL;
    int rc = script ? add_shell_masked(&b, argv[i])
                    : add_word(&b, argv[i], strlen(argv[i]), &next_secret);
    if (rc || !(out[i] = tsvc_buf_steal(&b))) {
      tsvc_buf_free(&b);
      strv_free_raw(out, n);
      return NULL;
    }
  }
  return out;
}
