/*
 * testutil: helpers shared by the cmocka tests.
 * Include after <cmocka.h>'s prerequisites: this header includes them.
 */
#ifndef TSVC_TESTUTIL_H
#define TSVC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A new empty directory under $TMPDIR (or /tmp). Caller frees the string;
 * the directory is removed with tu_rmtree(). */
char *tu_mkdtemp(const char *prefix);
/* rm -rf path. */
void tu_rmtree(const char *path);
/* Write text to path. Returns 0 or -1. */
int tu_write_file(const char *path, const char *text);

struct uv_loop_s;
/* Run loop until *flag is set or ms pass (a 2 ms timer keeps it turning). */
void tu_run_until(struct uv_loop_s *loop, int *flag, int ms);

#endif
