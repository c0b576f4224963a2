/*
 * envname.c: the variable names `tanuki-svc env` gives services, shared by
 * the env verb (which prints them) and the loader (which refuses a config
 * where two services would get the same ones).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_int.h"
#include "tsvc.h"

const char *tsvc_env_prefix(const char *name, char *buf, size_t len) {
  if (!len) return buf;
  size_t k = 0;
  /* A shell variable name cannot start with a digit. */
  if (name && isdigit((unsigned char)name[0]) && k + 1 < len) buf[k++] = '_';
  for (const char *c = name ? name : ""; *c && k + 1 < len; c++)
    buf[k++] = isalnum((unsigned char)*c) ? (char)toupper((unsigned char)*c) : '_';
  buf[k] = '\0';
  return buf;
}

const char *tsvc_env_kind(const tsvc_service_conf_t *s) {
  static const char *const kinds[] = {"postgres", "redis"};
  for (size_t i = 0; i < 2; i++)
    if (strcmp(s->name, kinds[i]) == 0) return kinds[i];
  if (!s->image) return NULL;
  const char *slash = strrchr(s->image, '/');
  const char *base = slash ? slash + 1 : s->image;
  for (size_t i = 0; i < 2; i++) {
    size_t n = strlen(kinds[i]);
    if (strncmp(base, kinds[i], n) == 0 && (base[n] == '\0' || base[n] == ':' || base[n] == '-'))
      return kinds[i];
  }
  return NULL;
}

void tsvc_env_prefixes_free(char **v, size_t n) { strv_free_raw(v, n); }

char **tsvc_env_prefixes(const tsvc_config_t *cfg) {
  size_t n = cfg->nservices;
  char **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return NULL;
  bool pg_done = false, redis_done = false;
  for (size_t i = 0; i < n; i++) {
    const tsvc_service_conf_t *s = &cfg->services[i];
    const char *kind = s->port ? tsvc_env_kind(s) : NULL;
    char buf[160];
    if (kind && strcmp(kind, "postgres") == 0 && !pg_done) {
      pg_done = true;
      tsvc_strlcpy(buf, "POSTGRES", sizeof buf);
    } else if (kind && strcmp(kind, "redis") == 0 && !redis_done) {
      redis_done = true;
      tsvc_strlcpy(buf, "REDIS", sizeof buf);
    } else {
      tsvc_env_prefix(s->name, buf, sizeof buf);
    }
    if (!(v[i] = tsvc_strdup(buf))) {
      tsvc_env_prefixes_free(v, n);
      return NULL;
    }
  }
  return v;
}
