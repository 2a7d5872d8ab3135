/*
 * tests/jobserver_common.h -- what test_jobserver.c and its helper
 * program jobserver_child.c share: counters in shared memory that tasks
 * update as they start and end, so the test can see how many ran at
 * once across every process of a pool.
 */
#ifndef MPROC_TEST_JOBSERVER_COMMON_H
#define MPROC_TEST_JOBSERVER_COMMON_H

#include <stdatomic.h>
#include <stddef.h>

#include "mproc.h"

typedef struct js_counters {
    atomic_int busy;     /* tasks running now */
    atomic_int max;      /* the most that ever ran at once */
    atomic_int total;    /* tasks that ran */
    atomic_int own_pool; /* helper programs that did not join make's pool */
    atomic_int failed;   /* helper programs whose tasks failed */
} js_counters;

/* Task (arg: a js_counters * -- the same address in every worker, the
 * memory being mapped before the executor starts): count itself busy,
 * keep the CPU `spin_ms` milliseconds, count itself done. */
typedef struct js_task_arg {
    js_counters *c;
    int spin_ms;
} js_task_arg;

static inline int js_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)ctx;
    if (len != sizeof(js_task_arg))
        return -22;
    const js_task_arg *a = arg;
    int b = atomic_fetch_add(&a->c->busy, 1) + 1;
    int m = atomic_load(&a->c->max);
    while (b > m && !atomic_compare_exchange_weak(&a->c->max, &m, b))
        ;
    int64_t end = mproc_now_ns() + (int64_t)a->spin_ms * 1000000;
    while (mproc_now_ns() < end)
        ;
    atomic_fetch_add(&a->c->total, 1);
    atomic_fetch_sub(&a->c->busy, 1);
    return 0;
}

#endif /* MPROC_TEST_JOBSERVER_COMMON_H */
