/*
 * tests/exec_common.h -- helpers shared by test_exec.c and test_future.c:
 * tasks that hold a worker on an event until the test lets them go, tasks
 * that count or echo a number, and reading a future's numeric result.
 *
 * Workers are held in a known state with events (a held task counts
 * itself as started, then waits for `go`), never with sleeps.
 */
#ifndef MPROC_TEST_EXEC_COMMON_H
#define MPROC_TEST_EXEC_COMMON_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"


#define LONG_MS 10000 /* generous deadline for things that must happen */

/* The result of a held task that was let go. */
#define HOLD_VALUE 42

/* Tasks that hold their worker until `go` is set. */
typedef struct hold {
    mproc_event go;
    atomic_int started;     /* tasks that began */
    atomic_int finished;    /* tasks that returned */
    atomic_int saw_cancel;  /* tasks that saw mproc_cancel_requested after go */
} hold;

static inline void hold_init(hold *h)
{
    memset(h, 0, sizeof *h);
    CHECK_OK(mproc_event_init(&h->go, 0));
}

/* Longer than any test's deadline: a held task must not let go by
 * itself (a loaded sanitizer run once took 25 s to queue and cancel what
 * a test put behind two held workers, and a 10 s hold ran part of it). */
#define HOLD_MS 180000

/* Task (arg: a hold): count itself started, wait for go, return
 * HOLD_VALUE as a uint64_t. */
static inline int hold_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    hold *h = (hold *)arg;
    (void)len;
    atomic_fetch_add(&h->started, 1);
    int rc = mproc_event_wait(&h->go, HOLD_MS);
    if (mproc_cancel_requested(ctx))
        atomic_fetch_add(&h->saw_cancel, 1);
    atomic_fetch_add(&h->finished, 1);
    if (rc != 0)
        return mproc_fail(ctx, rc, "hold_task: nobody let it go");
    uint64_t v = HOLD_VALUE;
    return mproc_return(ctx, &v, sizeof v);
}

/* Submit n held tasks to ex (their futures to out[0..n), or fire and
 * forget if out is NULL) and wait until all n run: n workers are busy,
 * so tasks submitted next stay pending. */
static inline void hold_workers(mproc_executor *ex, hold *h, int n, mproc_future **out)
{
    int base = atomic_load(&h->started);
    for (int i = 0; i < n; i++)
        CHECK_OK(mproc_submit(ex, hold_task, h, 0, out ? &out[i] : NULL));
    WAIT_UNTIL(atomic_load(&h->started) >= base + n, LONG_MS);
}

/* An executor with `workers` threads. */
static inline mproc_executor *make_ex(unsigned workers)
{
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = workers }));
    CHECK(ex != NULL);
    return ex;
}

/* A number passed as a task's arg (len 0): the task reads the address. */
#define NUM(v) ((const void *)(uintptr_t)(v))

/* Task: return the number in arg's address as a uint64_t. */
static inline int echo_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    uint64_t v = (uint64_t)(uintptr_t)arg;
    return mproc_return(ctx, &v, sizeof v);
}

/* Task (arg: an atomic_long): add one to it. */
static inline int count_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    atomic_fetch_add((atomic_long *)arg, 1);
    return 0;
}

/* Task: fail with the code in arg's address (a negative int). */
static inline int fail_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    return mproc_fail(ctx, (int)(intptr_t)arg, "failed on purpose");
}

/* Callback (userdata: an atomic_int): count the call. */
static inline void count_cb(mproc_future *f, void *userdata)
{
    (void)f;
    atomic_fetch_add((atomic_int *)userdata, 1);
}

/* Wait for f and return its uint64_t result (failing the test if the
 * task failed or the result has another size). */
static inline uint64_t result_u64(mproc_future *f)
{
    const void *data = NULL;
    size_t len = 0;
    CHECK_OK(mproc_future_result(f, 6 * LONG_MS, &data, &len));
    CHECK_EQ(len, sizeof(uint64_t));
    CHECK(data != NULL);
    uint64_t v;
    memcpy(&v, data, sizeof v);
    return v;
}

/* Helper thread: wait until thread `tid` sleeps, then set `ev` -- wakes
 * a waiter that must be blocked first. */
typedef struct waker {
    pid_t tid;
    mproc_event *ev;
} waker;

static inline void *waker_main(void *p)
{
    waker *w = p;
    test_wait_sleeping(w->tid, LONG_MS);
    CHECK_OK(mproc_event_set(w->ev));
    return NULL;
}

#endif /* MPROC_TEST_EXEC_COMMON_H */
