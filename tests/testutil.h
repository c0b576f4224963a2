/*
 * testutil: helpers shared by the cmocka tests.
 * Include after <cmocka.h>'s prerequisites: this header includes them.
 */
#ifndef TSVC_TESTUTIL_H
#define TSVC_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/util.h"
#include "config/config.h"
#include "log/log.h"

/* A new empty directory under $TMPDIR (or /tmp). Caller frees the string;
 * the directory is removed with tu_rmtree(). */
char *tu_mkdtemp(const char *prefix);
/* rm -rf path. */
void tu_rmtree(const char *path);
/* Write text to path. Returns 0 or -1. */
int tu_write_file(const char *path, const char *text);

/* Run the shell command fmt (printf-style) in dir (NULL: here), stdout and
 * stderr together. When out is not NULL it gets the first len - 1 bytes,
 * trailing newlines cut; the rest is read and dropped, so that a command
 * never blocks on a full pipe. Returns the exit status, or -1 when the
 * command could not run or did not exit. */
int tu_sh(char *out, size_t len, const char *fmt, ...) TSVC_PRINTF(3, 4);
int tu_vsh(const char *dir, char *out, size_t len, const char *fmt, va_list ap);

struct uv_loop_s;
/* Run loop until *flag is set or ms pass (a 2 ms timer keeps it turning). */
void tu_run_until(struct uv_loop_s *loop, int *flag, int ms);

/* Timing bounds that hold on a loaded machine. A timer of ours is late for
 * two reasons: the code under test (what a test wants to catch) and the
 * machine (the loop's thread was ready to run but waited for a CPU, e.g. on a
 * shared 2-core box under two busy loops). The kernel counts the second per
 * thread: the run-queue delay, field 2 of /proc/thread-self/schedstat. A
 * tu_lag_t samples it on the loop's thread every TU_LAG_PERIOD_MS, so that a
 * test can allow exactly the lag the machine caused between two loop times:
 *   assert(late <= budget + tu_lag_between(lag, due, fired))
 * A loop blocked by the code (a synchronous read, a sleep) waits off the run
 * queue: that lag is not excused, and the assertion still fails. */
#define TU_LAG_PERIOD_MS 2
/* Loop times are whole milliseconds and epoll_wait rounds its timeout up
 * to one: a timer may be seen up to 2 ms after its deadline on an idle
 * machine; one more for the kernel's timer slack. Under a sanitizer the
 * loop's own work between two events (logging, the health machine, a
 * snapshot) runs 5-15 times slower: ThreadSanitizer made a 100 ms backoff
 * take 125 ms with 10 ms of lag; 25 ms more there. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TU_SANITIZED 1
#endif
#endif
#ifdef TU_SANITIZED
#define TU_TIMER_SLACK_MS 28
#else
#define TU_TIMER_SLACK_MS 3
#endif
typedef struct tu_lag_s tu_lag_t;
/* Start sampling on loop (from the loop's thread). NULL on ENOMEM. When the
 * kernel does not count run-queue delay, every figure is 0 (strict bounds)
 * and a note says so on stderr. */
tu_lag_t *tu_lag_start(struct uv_loop_s *loop);
/* The loop thread's run-queue delay (ms, rounded up) between loop times
 * from and to (uv_now() values), taken from the samples that enclose the
 * interval (so never less than the delay inside it). */
int64_t tu_lag_between(tu_lag_t *l, uint64_t from, uint64_t to);
/* The loop thread's run-queue delay (ms) since tu_lag_start(). */
int64_t tu_lag_total(tu_lag_t *l);
/* Stop sampling and close the timer; the memory goes in its close callback,
 * so run the loop once more before uv_loop_close(). NULL is fine. */
void tu_lag_stop(tu_lag_t *l);
/* The run-queue delay of the calling thread so far in ns, or -1 when the
 * kernel does not tell. */
int64_t tu_runq_ns(void);
/* The same of thread tid of this process (0: the calling thread), read from
 * any thread: for a loop that runs on a thread of the library's own (a
 * manager's), where no tu_lag_t can sample. */
int64_t tu_runq_ns_of(long tid);
/* Stalls of the machine that no run queue counts: a thread woken late
 * though it was neither running nor waiting for a CPU (seen: every thread
 * of two test processes woken 5-15 ms late at the same moment at load 5,
 * their run-queue delay 1 ms; a VM whose host holds it shows no steal time
 * here). A tu_stall_t is a witness thread that sleeps 2 ms at a time and
 * notes each wake-up later than its own run-queue delay explains (by more
 * than 0.5 ms). It runs none of the code under test: a loop that the code
 * blocks (a synchronous call, a sleep) is late while the witness is not,
 * and that lateness is not excused. */
typedef struct tu_stall_s tu_stall_t;
/* Start the witness. NULL when it cannot (every figure is then 0). */
tu_stall_t *tu_stall_start(void);
/* The stalls (ms, rounded up) the witness saw in sleeps that overlap the
 * loop times from..to (uv_now() values). */
int64_t tu_stall_between(tu_stall_t *s, uint64_t from, uint64_t to);
/* Stop the witness and free it. NULL is fine. */
void tu_stall_stop(tu_stall_t *s);
/* The run-queue delay of another process (a peer: a server, a receiver)
 * in ns, summed over its threads alive now (a thread that ended takes its
 * share along), or -1 when the kernel does not tell. A delay the peer's
 * own timing shows (a late timestamp) is at most what this grew by. */
int64_t tu_runq_ns_of_process(long pid);
/* The calling thread's id (what tu_runq_ns_of takes). */
long tu_gettid(void);

/* Checks that run beside work the loop must never wait for (hooks that
 * never end, webhooks that hang): no check may start later than this
 * beyond the run-queue delay of the loop's thread (tu_lag_between, or
 * tu_runq_ns_of for a manager's loop). Work waited for would hold the
 * loop for its whole run (an hour, at the hooks' timeout), so any bound
 * far below that catches it; 500 ms and not the isolation test's 50 ms:
 * on a shared 2-core machine at load 20, checks were seen 100-250 ms late
 * with no hook at all. test_hooks and test_webhook use it. */
#define TU_NEVER_HELD_MS 500

/* A real server a test needs (postgres, redis, a tool) is missing: under CI
 * (TSVC_REQUIRE_SERVERS=1, set by scripts/test.sh) the test FAILS with why;
 * else it is skipped (tu_skip). Does not return. */
#define tu_missing(why) tu_missing_at((why), __FILE__, __LINE__)
void tu_missing_at(const char *why, const char *file, int line);
/* True when scripts/test.sh runs us (TSVC_REQUIRE_SERVERS=1). */
int tu_required(void);
/* The config in text (named name in messages), loaded: its diagnostics go
 * to stderr, and a config that does not load fails the running test. The
 * caller frees it (tsvc_config_free). */
tsvc_config_t *tu_config(const char *name, const char *text, size_t len);
/* The wall-clock ms of a log line's ts= field (ts=2026-12-01T20:55:58.123Z);
 * fails the running test when the line has none. */
int64_t tu_line_ms(const char *line);

/* The library's log (tsvc_log_setup is process-wide), captured in memory
 * for a test to read. One capture at a time: a new one discards what an
 * earlier one that was not ended held (a test that failed half-way). Lines
 * may come from other threads (a manager's loop): every read below takes
 * the stream's lock and flushes first. */
/* Capture text lines of level info and up. */
void tu_log_capture(void);
/* The same at level min, as JSON lines when json. */
void tu_log_capture_as(tsvc_log_level_t min, bool json);
/* How much has been captured so far: a mark for tu_log_since(). 0 when no
 * capture runs. */
size_t tu_log_mark(void);
/* A copy of the log from mark on (0: all of it), never NULL; the caller
 * frees it. Fails the running test when no capture runs. */
char *tu_log_since(size_t mark);
/* tu_log_since(mark) once it holds a line about svc with every needle (a
 * NULL-terminated list), or after ms as it is then. A reader sees a state
 * before its line is logged (src/monitor/monitor.c publishes before it
 * tells observers): a test that waited for a state and reads that
 * change's line waits for the line too. */
char *tu_log_wait_v(size_t mark, int ms, const char *svc, const char *const *needles);
#define TU_LOG_WAIT(mark, ms, svc, ...) \
  tu_log_wait_v((mark), (ms), (svc), (const char *const[]){__VA_ARGS__, NULL})
/* End the capture: the log goes back to stderr, level off. Returns all of
 * it (the caller frees it); with TSVC_TEST_SHOW_LOG set, also prints it on
 * stderr. NULL when no capture ran. */
char *tu_log_end(void);
/* The next line of log at or after *pos (pos or *pos NULL: from the
 * start) about service svc (" service=<svc> ") that holds every needle (a
 * NULL-terminated list): its start, or NULL. *pos moves past it (to the
 * end when there is none). */
const char *tu_log_line_v(const char *log, const char **pos, const char *svc,
                          const char *const *needles);
#define TU_LOG_LINE(log, pos, svc, ...) \
  tu_log_line_v((log), (pos), (svc), (const char *const[]){__VA_ARGS__, NULL})
/* How many lines of log are about svc and hold every needle. */
int tu_log_lines_v(const char *log, const char *svc, const char *const *needles);
#define TU_LOG_LINES(log, svc, ...) \
  tu_log_lines_v((log), (svc), (const char *const[]){__VA_ARGS__, NULL})
/* How many times needle stands in the log captured so far. */
int tu_log_count(const char *needle);
/* How many times needle stands in hay (not overlapping); hay may be NULL. */
int tu_count(const char *hay, const char *needle);

/* A table of docs/design.md, for the tests that compare the documentation
 * with the code cell by cell: the first table after the line that holds
 * marker (an HTML comment such as "<!-- table: health-actions -->"). Cells
 * are trimmed of spaces and backticks. head: the header's cells after the
 * first; names: each row's first cell; cells: the others. */
#define TU_TABLE_ROWS 32
#define TU_TABLE_COLS 16
#define TU_TABLE_CELL 40
typedef struct {
  int nrows, ncols;
  char head[TU_TABLE_COLS][TU_TABLE_CELL];
  char names[TU_TABLE_ROWS][TU_TABLE_CELL];
  char cells[TU_TABLE_ROWS][TU_TABLE_COLS][TU_TABLE_CELL];
} tu_table_t;
/* Read it from $TSVC_SOURCE_DIR/docs/design.md (.. without it). Fails the
 * running test, naming the file and the marker, when there is no such
 * table or it does not fit: a row of another number of cells than the
 * header, more rows or columns than above, a cell of TU_TABLE_CELL bytes
 * or more. */
void tu_read_table(const char *marker, tu_table_t *t);
/* The row whose first cell is name, or -1. */
int tu_table_row(const tu_table_t *t, const char *name);

/* Skip the running test with why on stderr, and count it: a program that
 * skipped any test and failed none exits 77, which ctest shows as skipped
 * (SKIP_RETURN_CODE, tests/CMakeLists.txt), not passed. Does not return. */
#define tu_skip(why) tu_skip_at((why), __FILE__, __LINE__)
void tu_skip_at(const char *why, const char *file, int line);

/* cmocka_run_group_tests, returning 77 when tests were skipped (above). */
int tu_run_group_tests(const char *name, const struct CMUnitTest *tests, size_t n,
                       CMFixtureFunction setup, CMFixtureFunction teardown);
#undef cmocka_run_group_tests
#define cmocka_run_group_tests(group_tests, group_setup, group_teardown)                   \
  tu_run_group_tests(#group_tests, group_tests, sizeof(group_tests) / sizeof((group_tests)[0]), \
                     group_setup, group_teardown)

#endif
