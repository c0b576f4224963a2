/* lazylib.c: see lazylib.h. */
#include "common/lazylib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool tsvc_lazylib_load(const char *soname, const tsvc_lazysym_t *syms, size_t n, char *err,
                       size_t errlen) {
  /* RTLD_LOCAL: the library's symbols stay out of the global scope, where
     the forwarding functions of the same names are. */
  void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(err, errlen, "cannot load %s: %s", soname, e ? e : "unknown error");
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    *syms[i].slot = dlsym(h, syms[i].name);
    if (!*syms[i].slot) {
      snprintf(err, errlen, "%s has no %s", soname, syms[i].name);
      /* (Kept loaded: dlclose of a library that may have started threads
         or registered handlers is not safe.) */
      return false;
    }
  }
  return true;
}
