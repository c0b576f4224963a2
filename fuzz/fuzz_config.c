/*
 * fuzz_config: the config loader (src/config: libyaml tree, the table of
 * keys, validation, diagnostics) and its dump-then-load round trip.
 *
 * Input: the bytes of a tanuki.yaml.
 *
 * Properties:
 *  - load returns 0 with a config and no error, or an error code with no
 *    config and at least one "fuzz.yaml:...: error: ..." diagnostic;
 *  - every service is found by its name (the loader's index);
 *  - round trip without masking: dump, load the dump, dump again: it loads
 *    and the two dumps are equal (the dump loses nothing the loader keeps);
 *  - round trip of `config show` (secrets masked): its output loads, and
 *    dumping that gives the same text (masking is stable).
 * A broken property aborts with both texts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "fuzz_util.h"
#include "tsvc.h"

#define NAME "fuzz.yaml"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  unsetenv("DOCKER_HOST"); /* the default of docker.host: the same for every input */
  return 0;
}

static char *dump(const tsvc_config_t *cfg, bool mask, size_t *len) {
  char *buf = NULL;
  FILE *f = open_memstream(&buf, len);
  if (!f) abort();
  int rc = mask ? tsvc_config_dump(cfg, f) : tsvc_config_dump_unmasked(cfg, f);
  if (fclose(f)) abort();
  FUZZ_CHECK(rc == 0, "dump failed: %s", tsvc_strerror(rc));
  return buf;
}

static void print_diag(const tsvc_diag_t *d) {
  for (size_t i = 0; i < d->n; i++) fprintf(stderr, "  %s\n", d->lines[i]);
}

/* Load text, which must be valid: it came from a dump. */
static tsvc_config_t *load_dump(const char *text, size_t len, const char *what) {
  tsvc_diag_t d = {0};
  tsvc_config_t *cfg = NULL;
  int rc = tsvc_config_load_string(NAME, text, len, &cfg, &d);
  if (rc) {
    fprintf(stderr, "---- %s ----\n%s---- diagnostics ----\n", what, text);
    print_diag(&d);
  }
  FUZZ_CHECK(rc == 0, "the %s does not load: %s", what, tsvc_strerror(rc));
  tsvc_diag_free(&d);
  return cfg;
}

static void round_trip(const tsvc_config_t *cfg, bool mask) {
  const char *what = mask ? "masked dump" : "dump";
  size_t l1, l2;
  char *t1 = dump(cfg, mask, &l1);
  tsvc_config_t *again = load_dump(t1, l1, what);
  char *t2 = dump(again, mask, &l2);
  if (l1 != l2 || memcmp(t1, t2, l1) != 0)
    fprintf(stderr, "---- %s ----\n%s---- its dump ----\n%s", what, t1, t2);
  FUZZ_CHECK(l1 == l2 && memcmp(t1, t2, l1) == 0, "the %s changes when loaded again", what);
  tsvc_config_free(again);
  free(t1);
  free(t2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tsvc_diag_t d = {0};
  tsvc_config_t *cfg = NULL;
  int rc = tsvc_config_load_string(NAME, (const char *)data, size, &cfg, &d);
  for (size_t i = 0; i < d.n; i++)
    FUZZ_CHECK(strncmp(d.lines[i], NAME ":", sizeof NAME) == 0 &&
                   (strstr(d.lines[i], ": error: ") || strstr(d.lines[i], ": warning: ")),
               "diagnostic of another shape: %s", d.lines[i]);
  if (rc) {
    FUZZ_CHECK(!cfg, "a config returned with %s", tsvc_strerror(rc));
    FUZZ_CHECK(rc != TSVC_ECONFIG || d.nerrors > 0, "invalid, but no error said why");
    tsvc_diag_free(&d);
    return 0;
  }
  FUZZ_CHECK(cfg && d.nerrors == 0, "valid, with %zu errors", d.nerrors);
  for (size_t i = 0; i < cfg->nservices; i++)
    FUZZ_CHECK(tsvc_config_service(cfg, cfg->services[i].name) == &cfg->services[i],
               "service %s is not found by its name", cfg->services[i].name);
  round_trip(cfg, false);
  round_trip(cfg, true);
  tsvc_config_free(cfg);
  tsvc_diag_free(&d);
  return 0;
}
