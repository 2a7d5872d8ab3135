/*
 * exec/executor.c -- what every executor shares, whatever its backend
 * (exec_internal.h): creating and destroying, submit's checks and its
 * count of submits in flight, shutdown, the live executors shut down at
 * exit, and waiting while helping.
 *
 * Shutdown. `inflight` counts submits between their shutdown check and
 * their enqueue. A backend's worker leaves only when shutdown is set, no
 * submit is in flight (read after `shutdown`, both seq_cst, so a submit
 * that missed the flag is counted) and its queues are empty: no accepted
 * task is left behind.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec_internal.h"
#include "os/atomic.h"
#include "os/sys.h"

#define MAX_WORKERS 4096

/* ---- live executors, shut down at exit ------------------------------- */

static mproc_lock reg_lock;
static mproc_executor reg_head = { .reg_prev = &reg_head, .reg_next = &reg_head };
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

static void shutdown_all_at_exit(void)
{
    /* As Python does at interpreter exit: accepted tasks still run. From
     * a worker (a task called exit()) we cannot wait for ourselves. */
    mproc_lock_acquire(&reg_lock, -1);
    for (mproc_executor *ex = reg_head.reg_next; ex != &reg_head; ex = ex->reg_next)
        mproc_executor_shutdown(ex, !mproc__exec_on_worker(ex), false);
    mproc_lock_release(&reg_lock);
}

static void reg_init(void)
{
    mproc_lock_init(&reg_lock, 0);
    atexit(shutdown_all_at_exit);
}

static void reg_add(mproc_executor *ex)
{
    pthread_once(&reg_once, reg_init);
    mproc_lock_acquire(&reg_lock, -1);
    ex->reg_next = reg_head.reg_next;
    ex->reg_prev = &reg_head;
    reg_head.reg_next->reg_prev = ex;
    reg_head.reg_next = ex;
    mproc_lock_release(&reg_lock);
}

static void reg_remove(mproc_executor *ex)
{
    mproc_lock_acquire(&reg_lock, -1);
    ex->reg_prev->reg_next = ex->reg_next;
    ex->reg_next->reg_prev = ex->reg_prev;
    mproc_lock_release(&reg_lock);
}

/* ---- life cycle -------------------------------------------------------- */

void *mproc__exec_alloc(size_t size, const struct mproc__backend *be,
                        const mproc_executor_opts *opts)
{
    size = (size + 63) & ~(size_t)63;
    if (opts->initarg_len > SIZE_MAX - size - 64)
        return NULL;
    size_t copy = (opts->initarg_len + 63) & ~(size_t)63;
    mproc_executor *ex = aligned_alloc(64, size + copy);
    if (!ex)
        return NULL;
    memset(ex, 0, size);
    ex->be = be;
    ex->nworkers = opts->workers;
    ex->initializer = opts->initializer;
    ex->initarg = opts->initarg;
    ex->initarg_len = opts->initarg_len;
    if (opts->initarg_len > 0) {
        ex->initarg = (char *)ex + size;
        memcpy(ex->initarg, opts->initarg, opts->initarg_len);
    }
    snprintf(ex->name, sizeof ex->name, "%s", opts->name);
    return ex;
}

static const struct mproc__backend *backend_of(mproc_executor_kind kind)
{
    switch (kind) {
    case MPROC_THREADS: return &mproc__thread_backend;
    case MPROC_PROCESSES: return &mproc__process_backend;
    }
    return NULL;
}

int mproc_executor_create(mproc_executor **out, const mproc_executor_opts *opts)
{
    static const mproc_executor_opts defaults;
    if (!out)
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    const struct mproc__backend *be = backend_of(opts->kind);
    if (!be || opts->workers > MAX_WORKERS || opts->task_timeout_ms < 0 ||
        (opts->initarg_len > 0 && !opts->initarg) ||
        (opts->task_timeout_ms != 0 && !be->deadlines) ||
        (opts->max_tasks_per_child != 0 && !be->remote) ||
        (opts->worker_memory_limit != 0 && !be->remote) ||
        opts->memory_limit_via < MPROC_MEMLIMIT_AUTO ||
        opts->memory_limit_via > MPROC_MEMLIMIT_CGROUP1 ||
        (opts->flags & ~(MPROC_CANCEL_KILL | MPROC_JOBSERVER)) ||
        ((opts->flags & (MPROC_CANCEL_KILL | MPROC_JOBSERVER)) && !be->remote))
        return -EINVAL;
    mproc_executor_opts o = *opts;
    if (o.workers == 0)
        o.workers = (unsigned)mproc_cpu_count();
    if (!o.name)
        o.name = "mproc";
    mproc_executor *ex;
    int rc = be->create(&o, &ex);
    if (rc != 0)
        return rc;
    reg_add(ex);
    *out = ex;
    return 0;
}

int mproc_executor_shutdown(mproc_executor *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return -EINVAL;
    if (wait && mproc__exec_on_worker(ex))
        return -EDEADLK;
    __atomic_store_n(&ex->shutdown, 1, __ATOMIC_SEQ_CST);
    if (cancel_futures)
        mproc__store_relaxed(&ex->cancelling, 1);
    ex->be->shutdown(ex, wait);
    return 0;
}

void mproc_executor_destroy(mproc_executor *ex)
{
    if (!ex)
        return;
    mproc_executor_shutdown(ex, true, false);
    reg_remove(ex);
    ex->be->destroy(ex);
}

int mproc_executor_workers(const mproc_executor *ex)
{
    return ex ? (int)ex->nworkers : -EINVAL;
}

int mproc_executor_info(const mproc_executor *ex, mproc_executor_details *out)
{
    if (!ex || !out)
        return -EINVAL;
    *out = (mproc_executor_details){ .kind = ex->be->kind, .workers = (int)ex->nworkers,
                                     .memory_limit_how = "none" };
    snprintf(out->name, sizeof out->name, "%s", ex->name);
    if (ex->be->info)
        ex->be->info(ex, out);
    return 0;
}

int mproc_executor_stats(const mproc_executor *ex, mproc_executor_counters *out)
{
    if (!ex || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->workers = (int)ex->nworkers;
    ex->be->stats(ex, out);
    return 0;
}

/* ---- submit ------------------------------------------------------------ */

/* Submit; `internal`: len is not a byte count (map's chunk number). */
static int submit(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                  const mproc_submit_opts *opts, mproc_future **out, bool internal)
{
    if (out)
        *out = NULL;
    if (!ex || !fn || (!arg && len > 0))
        return -EINVAL;
    if (len > ex->be->max_arg && !internal)
        return -E2BIG;
    int64_t timeout = opts ? opts->timeout_ms : 0;
    if (timeout < -1 || (timeout != 0 && !ex->be->deadlines))
        return -EINVAL;
    bool copy = opts && (opts->flags & MPROC_COPY_ARG);
    __atomic_fetch_add(&ex->inflight, 1, __ATOMIC_SEQ_CST);
    int rc = 0;
    if (__atomic_load_n(&ex->shutdown, __ATOMIC_SEQ_CST))
        rc = MPROC_ESHUTDOWN;
    else if (mproc__load_relaxed(&ex->broken))
        rc = MPROC_EBROKEN;
    mproc_future *f = NULL;
    if (rc == 0) {
        f = mproc__future_new(ex, fn, arg, len, copy, out ? 2 : 1);
        if (f && timeout != 0 && mproc__future_set_timeout(f, timeout) != 0) {
            mproc_future_release(f);
            if (out)
                mproc_future_release(f);
            f = NULL;
        }
        if (f)
            ex->be->enqueue(ex, f);
        else
            rc = -ENOMEM;
    }
    __atomic_fetch_sub(&ex->inflight, 1, __ATOMIC_SEQ_CST);
    /* A worker that found this submit in flight after shutdown went back
     * to sleep waiting for it to end: wake it to look again. (It read
     * `shutdown`, then `inflight` before our decrement; so we see the
     * flag here.) */
    if (__atomic_load_n(&ex->shutdown, __ATOMIC_SEQ_CST))
        ex->be->shutdown(ex, false);
    if (rc == 0 && out)
        *out = f;
    return rc;
}

int mproc_submit_ex(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                    const mproc_submit_opts *opts, mproc_future **out)
{
    return submit(ex, fn, arg, len, opts, out, false);
}

int mproc_submit(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                 mproc_future **out)
{
    return submit(ex, fn, arg, len, NULL, out, false);
}

int mproc__submit_internal(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                           mproc_future **out)
{
    return submit(ex, fn, arg, len, NULL, out, true);
}

int mproc__exec_run(mproc_executor *ex, mproc_future *f, int worker)
{
    int fail = mproc__load_relaxed(&ex->broken) ? MPROC_EBROKEN : 0;
    int code = mproc__future_run(f, worker, fail);
    mproc_future_release(f); /* the scheduler's reference */
    return code;
}

/* ---- waiting while helping --------------------------------------------- */

_Thread_local mproc_executor *mproc__exec_worker MPROC__TLS_IE;

bool mproc__exec_on_worker(const mproc_executor *ex)
{
    return ex && mproc__exec_worker == ex;
}

bool mproc__exec_help(mproc_executor *ex)
{
    return mproc__exec_on_worker(ex) && ex->be->help(ex);
}

bool mproc__exec_cancelling(const mproc_executor *ex)
{
    return mproc__load_relaxed(&ex->cancelling) != 0;
}

/* How often a helping worker that found nothing looks again. */
#define HELP_RECHECK_NS 1000000

int mproc__exec_await(mproc_executor *ex, uint32_t *word, uint32_t *sleepers,
                      bool (*ready)(const void *obj, size_t arg), const void *obj,
                      size_t arg, int64_t deadline)
{
    bool helper = mproc__exec_on_worker(ex);
    for (;;) {
        if (ready(obj, arg))
            return 0;
        if (helper && mproc__exec_help(ex))
            continue;
        int64_t until = deadline;
        if (helper && mproc__now() + HELP_RECHECK_NS < until)
            until = mproc__now() + HELP_RECHECK_NS;
        /* Register, then re-read: the maker changes `word` before reading
         * `sleepers`, so either it sees us or futex_wait sees the change. */
        mproc__fetch_add(sleepers, 1, __ATOMIC_SEQ_CST);
        uint32_t seen = __atomic_load_n(word, __ATOMIC_SEQ_CST);
        int rc = ready(obj, arg) ? 0 : mproc__futex_wait(word, seen, until, false);
        mproc__fetch_sub(sleepers, 1, __ATOMIC_RELAXED);
        if (rc == -ETIMEDOUT && until == deadline && !ready(obj, arg))
            return -ETIMEDOUT;
    }
}
