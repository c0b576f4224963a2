/*
 * systemd: `tanuki-svc up` as a Type=notify service (dist/systemd/).
 *
 * Speaks the documented sd_notify datagram protocol (sd_notify(3): one
 * datagram of newline-separated KEY=VALUE to the unix socket named by
 * $NOTIFY_SOCKET), so there is no library to depend on:
 *
 *   READY=1      once the services were started
 *   STATUS=...   a one-line summary ("2/2 healthy"), sent again on change
 *   WATCHDOG=1   every WATCHDOG_USEC/2, while the manager's loop heartbeat
 *                is fresh: a wedged loop stops the pings and systemd
 *                restarts the monitor
 *   STOPPING=1   when monitoring stops
 *
 * The pings and status updates come from a thread of this module: a thread
 * waiting on a condition variable, woken by the manager's change callback
 * (which only sets a flag) or by the watchdog's deadline.
 *
 * Ownership: cli_systemd_open() returns an object the caller frees with
 * cli_systemd_close(); it borrows the manager given to cli_systemd_watch(),
 * which must outlive the watch (close it before freeing the manager). Every
 * function accepts NULL (not under systemd) and then does nothing.
 */
#ifndef TSVC_CLI_SYSTEMD_H
#define TSVC_CLI_SYSTEMD_H

#include <stdbool.h>
#include <stddef.h>

#include "tsvc.h"

typedef struct cli_systemd_s cli_systemd_t;

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, and unset them, so
   that the services we start (postgres and redis speak the same protocol)
   do not report to systemd in our name. Changes the environment: call
   before any thread exists. Returns NULL when there is no notify socket (or
   no memory: systemd then only misses our notifications). */
cli_systemd_t *cli_systemd_open(void);
/* Subscribe to m's changes and start the thread (watchdog pings, STATUS on
   change). Returns 0 or a TSVC_E* code (the monitor runs on; systemd's
   watchdog, if set, will then restart it). */
int cli_systemd_watch(cli_systemd_t *sd, tsvc_manager_t *m);
/* READY=1 with the current STATUS. */
void cli_systemd_ready(cli_systemd_t *sd);
/* STOPPING=1; no more pings. */
void cli_systemd_stopping(cli_systemd_t *sd);
/* STOPPING=1 when not sent yet, stop the thread, unsubscribe, free. */
void cli_systemd_close(cli_systemd_t *sd);

/* True when fd is the stream systemd connected to the journal
   ($JOURNAL_STREAM names its device and inode, as systemd.exec(5) says to
   check): log lines then carry their level as a "<N>" prefix instead of a
   timestamp. */
bool cli_journal_stream(int fd);

#endif
