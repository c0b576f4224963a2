/*
 * recrt: a recording runtime for the monitor's tests. It records every call,
 * keeps a "running" flag per service, completes operations after a set delay
 * on the loop (so they are really asynchronous), and fails the next N of
 * them with a set message on demand.
 */
#ifndef TSVC_RECRT_H
#define TSVC_RECRT_H

#include "runtime/runtime.h"

#define RECRT_MAX 512

typedef struct {
  char op[16];      /* "start", "stop", "restart", "inspect" */
  char service[64];
  uint64_t at;      /* uv_now when called */
} recrt_call_t;

typedef struct {
  tsvc_runtime_t base;
  recrt_call_t calls[RECRT_MAX];
  int ncalls;
  char names[64][64];
  bool running[64];
  int nnames;
  uint64_t op_delay_ms;      /* start/stop/restart complete after this */
  uint64_t inspect_delay_ms; /* inspect answers after this */
  int fail_ops;              /* fail the next N start/restart calls */
  int refuse_ops;            /* refuse the next N start/restart calls at
                                once (the call returns TSVC_ERUNTIME) */
  int starts;                /* starts and restarts done: the pid an
                                inspection reports is 4242 + starts */
  char fail_msg[128];
  int pending;               /* operations not yet completed */
} recrt_t;

recrt_t *recrt_new(uv_loop_t *loop);
void recrt_set_running(recrt_t *r, const char *service, bool running);
bool recrt_is_running(recrt_t *r, const char *service);
/* How many calls of op (NULL: any) for service (NULL: any). */
int recrt_count(const recrt_t *r, const char *op, const char *service);

#endif
