/*
 * cmd_export.c: `tanuki-svc export compose|kubernetes [-o FILE]`: the
 * services of the config for another engine (src/export, docs/export.md).
 *
 * Written to stdout, or to FILE (through a temporary file renamed into
 * place, so a failed export never leaves half a file). What the target
 * cannot express is said in comments at the top of the file and, once
 * each, on stderr.
 *
 * Exit codes: 0 written, 1 invalid config, a service that cannot be
 * exported (named) or a write error, 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "export/export.h"

/* A Kubernetes quantity as people write sizes: 1Gi, 500Mi, 10G, 1.5Gi. */
static bool valid_quantity(const char *s) {
  static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
                                      "k", "M",  "G",  "T",  "P",  "E",  NULL};
  size_t n = strspn(s, "0123456789");
  if (n == 0) return false;
  if (s[n] == '.') {
    size_t m = strspn(s + n + 1, "0123456789");
    if (m == 0) return false;
    n += 1 + m;
  }
  for (size_t i = 0; units[i]; i++)
    if (strcmp(s + n, units[i]) == 0) return true;
  return false;
}

static void put_header(FILE *f, const char *what, const char *config,
                       const export_notes_t *notes) {
  fprintf(f, "# %s written by tanuki-svc export from %s\n", what, config);
  if (notes->n) fputs("# Not carried over, or changed:\n", f);
  for (size_t i = 0; i < notes->n; i++) fprintf(f, "#   %s\n", notes->v[i]);
}

int cmd_export(const cli_args_t *a) {
  bool kube = strcmp(a->operands[0], "kubernetes") == 0;
  const char *out = cli_str(a, &CLI_OPT_OUTPUT);
  export_opts_t o = {.compose_v1 = cli_flag(a, &CLI_OPT_COMPOSE_V1),
                     .storage = cli_str(a, &CLI_OPT_STORAGE)};
  if (o.compose_v1 && kube) {
    cli_err("export: --compose-v1 is for 'export compose'");
    return TSVC_EXIT_USAGE;
  }
  if (o.storage && !kube) {
    cli_err("export: --storage is for 'export kubernetes'");
    return TSVC_EXIT_USAGE;
  }
  if (o.storage && !valid_quantity(o.storage)) {
    cli_err("export: --storage: \"%s\" is not a size like 1Gi, 500Mi or 10G", o.storage);
    return TSVC_EXIT_USAGE;
  }
  cli_project_t p;
  int rc = cli_project_load(cli_config_path(cli_str(a, &CLI_OPT_CONFIG)), &p);
  if (rc) return rc;

  json_t *doc = NULL;
  export_notes_t notes = {0};
  char err[1024] = "";
  rc = kube ? export_kube_docs(p.cfg, &o, &doc, &notes, err, sizeof err)
            : export_compose_doc(p.cfg, &o, &doc, &notes, err, sizeof err);
  int code = TSVC_EXIT_OK;
  char *tmp = NULL;
  FILE *f = stdout;
  if (rc) {
    cli_err("export %s: %s", a->operands[0], err[0] ? err : tsvc_strerror(rc));
    code = TSVC_EXIT_FAIL;
    goto done;
  }
  if (out && strcmp(out, "-") != 0) {
    tmp = tsvc_asprintf("%s.tmp.%ld", out, (long)getpid());
    f = tmp ? fopen(tmp, "w") : NULL;
    if (!f) {
      cli_err("export: cannot write %s: %s", out, tmp ? strerror(errno) : "out of memory");
      code = TSVC_EXIT_FAIL;
      goto done;
    }
  }
  put_header(f, kube ? "Kubernetes manifests" : "A docker-compose file", p.config_path, &notes);
  if (export_yaml_write(f, doc, kube, !kube) != 0 || fflush(f) != 0) code = TSVC_EXIT_FAIL;
  if (f != stdout && fclose(f) != 0) code = TSVC_EXIT_FAIL;
  if (tmp) {
    if (code == TSVC_EXIT_OK && rename(tmp, out) != 0) code = TSVC_EXIT_FAIL;
    if (code != TSVC_EXIT_OK) {
      cli_err("export: cannot write %s: %s", out, strerror(errno));
      unlink(tmp);
    }
  } else if (code != TSVC_EXIT_OK) {
    cli_err("export: cannot write the output: %s", strerror(errno));
  }
  for (size_t i = 0; code == TSVC_EXIT_OK && i < notes.n; i++)
    fprintf(stderr, "tanuki-svc: export: note: %s\n", notes.v[i]);
done:
  free(tmp);
  json_decref(doc);
  export_notes_free(&notes);
  cli_project_free(&p);
  return code;
}
