/*
 * exec/threads.c -- the thread backend (exec_internal.h): workers, work
 * stealing, idle sleeping, waking, joining.
 *
 * Queues. Each worker owns a Chase-Lev deque (exec/queue.h). A task
 * submitted by one of the executor's own workers goes to that worker's
 * deque; one submitted from outside goes to the shared injection ring,
 * or, if the ring is full, to an overflow list under a lock (the only
 * lock, off the hot path). A worker looks for work in its deque (newest
 * first), then the ring, then the overflow list, then steals (oldest
 * first) from the other workers, starting at a random one.
 *
 * Idle workers. A worker that finds nothing spins for a while with
 * exponential back-off (a futex wake-up costs tens of microseconds on a
 * VM; a burst of submissions usually comes sooner) -- at most one spinner
 * per CPU, so a pool of many I/O workers does not spin its CPUs away --
 * then sleeps on an
 * event count: it reads `idle_seq`, registers in `sleepers`, looks for
 * work once more, and futex-waits on `idle_seq`. A submitter publishes
 * its task, then reads `sleepers` with a read-modify-write; if anyone
 * sleeps it bumps `idle_seq` and wakes one. Both sides touch `sleepers`
 * with seq_cst read-modify-writes, which are totally ordered, so either
 * the submitter sees the sleeper or the sleeper sees the task (and
 * futex_wait refuses to sleep on a bumped `idle_seq`). No standalone
 * fences: ThreadSanitizer does not model them (GCC refuses them).
 *
 * Shutdown. A worker exits only when shutdown is set, no submit is in
 * flight (executor.c) and every queue is empty; so no accepted task is
 * left behind. cancel_futures additionally drains the queues, cancelling
 * what it finds.
 *
 * Help while waiting. A worker that waits for a future of its own
 * executor (exec/future.c) calls mproc__exec_help to run queued tasks in
 * the meantime, so recursive task trees finish even on one worker.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/exec_internal.h"
#include "os/atomic.h"
#include "os/sys.h"

#define DEQUE_LOG2 13  /* 8192 tasks per worker deque */
#define RING_LOG2 16   /* 65536 tasks in the injection ring */
#define IDLE_SPIN 20000 /* pause rounds before sleeping (~0.5 ms at 27 ns) */
#define IDLE_DELAY_MAX 64u

struct worker {
    mproc__deque dq;
    struct pool *ex;
    int index;
    uint64_t rng;
    mproc_thread *thread;
    /* Written by this worker only (relaxed), on a line of their own:
     * thieves read the deque's fields above. */
    _Alignas(64) uint64_t done, failed;
};

/* Fields are grouped by who writes them, one cache line per group, so
 * that a submit does not invalidate what every worker reads on every
 * search (bench_exec showed this line bouncing on each task). The common
 * part (exec_internal.h) ends with `inflight` on a line of its own. */
struct pool {
    mproc_executor base;
    /* read-mostly */
    _Alignas(64) struct worker *workers;
    uint32_t max_spinners; /* the CPU count */
    /* the idle event count: submitters read, sleepers write */
    _Alignas(64) uint32_t idle_seq; /* futex word */
    uint32_t sleepers;
    _Alignas(64) uint32_t spinners; /* idle workers spinning now */
    _Alignas(64) uint32_t overflow_n;
    mproc_lock overflow_lock;
    mproc_future *overflow_head, *overflow_tail;
    _Alignas(64) mproc__ring inject;
};

static inline struct pool *pool_of(mproc_executor *ex)
{
    return (struct pool *)ex; /* base is the first member */
}

static _Thread_local struct worker *tls_worker MPROC__TLS_IE;

/* ---- finding work ----------------------------------------------------- */

static mproc_future *overflow_get(struct pool *ex)
{
    if (mproc__load_acquire(&ex->overflow_n) == 0)
        return NULL;
    mproc_lock_acquire(&ex->overflow_lock, -1);
    mproc_future *f = ex->overflow_head;
    if (f) {
        ex->overflow_head = f->u.next;
        if (!f->u.next)
            ex->overflow_tail = NULL;
        mproc__fetch_sub(&ex->overflow_n, 1, __ATOMIC_RELAXED);
    }
    mproc_lock_release(&ex->overflow_lock);
    return f;
}

static void overflow_put(struct pool *ex, mproc_future *f)
{
    mproc_lock_acquire(&ex->overflow_lock, -1);
    f->u.next = NULL;
    if (ex->overflow_tail)
        ex->overflow_tail->u.next = f;
    else
        ex->overflow_head = f;
    ex->overflow_tail = f;
    mproc__fetch_add(&ex->overflow_n, 1, __ATOMIC_RELEASE);
    mproc_lock_release(&ex->overflow_lock);
}

/* Take a task from anywhere but our own deque. */
static mproc_future *take_shared(struct pool *ex, struct worker *self)
{
    mproc_future *f = mproc__ring_get(&ex->inject);
    if (f)
        return f;
    if ((f = overflow_get(ex)))
        return f;
    unsigned n = ex->base.nworkers;
    unsigned start = self ? (unsigned)(mproc__xorshift64(&self->rng) % n) : 0;
    for (unsigned i = 0; i < n; i++) {
        struct worker *v = &ex->workers[(start + i) % n];
        if (v != self && (f = mproc__deque_steal(&v->dq)))
            return f;
    }
    return NULL;
}

static mproc_future *find_task(struct worker *w)
{
    mproc_future *f = mproc__deque_pop(&w->dq);
    return f ? f : take_shared(w->ex, w);
}

static bool queues_empty(struct pool *ex)
{
    if (mproc__load_acquire(&ex->overflow_n) != 0)
        return false;
    uint64_t head = __atomic_load_n(&ex->inject.head, __ATOMIC_SEQ_CST);
    uint64_t tail = __atomic_load_n(&ex->inject.tail, __ATOMIC_SEQ_CST);
    if (head != tail)
        return false;
    for (unsigned i = 0; i < ex->base.nworkers; i++)
        if (!mproc__deque_empty(&ex->workers[i].dq))
            return false;
    return true;
}

static bool time_to_exit(struct pool *ex)
{
    return __atomic_load_n(&ex->base.shutdown, __ATOMIC_SEQ_CST) &&
           __atomic_load_n(&ex->base.inflight, __ATOMIC_SEQ_CST) == 0 && queues_empty(ex);
}

/* Spin, then sleep, until there is a task (returned) or it is time to
 * exit (NULL). */
static mproc_future *wait_for_task(struct worker *w)
{
    struct pool *ex = w->ex;
    mproc_future *f = NULL;
    /* At most one spinner per CPU: with more workers than CPUs (I/O-bound
     * pools), spinners would take the CPUs from workers with work. */
    if (mproc__fetch_add(&ex->spinners, 1, __ATOMIC_RELAXED) < ex->max_spinners) {
        unsigned delay = 1;
        bool leave = false;
        for (unsigned spent = 0; spent < IDLE_SPIN && !f && !leave; spent += delay) {
            for (unsigned j = 0; j < delay; j++)
                mproc__cpu_relax();
            if (!(f = find_task(w)))
                leave = time_to_exit(ex);
            if (delay < IDLE_DELAY_MAX)
                delay *= 2;
            else /* a thread we woke may be queued behind us on this CPU */
                sched_yield();
        }
        mproc__fetch_sub(&ex->spinners, 1, __ATOMIC_RELAXED);
        if (f || leave)
            return f;
    } else {
        mproc__fetch_sub(&ex->spinners, 1, __ATOMIC_RELAXED);
    }
    for (;;) {
        uint32_t seq = mproc__load_acquire(&ex->idle_seq);
        mproc__fetch_add(&ex->sleepers, 1, __ATOMIC_SEQ_CST);
        f = find_task(w);
        bool leave = !f && time_to_exit(ex);
        if (!f && !leave)
            mproc__futex_wait(&ex->idle_seq, seq, MPROC__FOREVER, false);
        mproc__fetch_sub(&ex->sleepers, 1, __ATOMIC_RELAXED);
        if (f)
            return f;
        if (leave)
            return NULL;
        if ((f = find_task(w)))
            return f;
    }
}

static void wake(struct pool *ex, int n)
{
    /* A read-modify-write, not a load: RMWs of `sleepers` are totally
     * ordered, so either ours comes after a sleeper's increment (we see
     * it) or before it (the sleeper's increment reads ours and, through
     * it, sees the task we published first). */
    if (__atomic_fetch_add(&ex->sleepers, 0, __ATOMIC_SEQ_CST) != 0) {
        mproc__fetch_add(&ex->idle_seq, 1, __ATOMIC_RELEASE);
        mproc__futex_wake(&ex->idle_seq, n, false);
    }
}

/* Count a task's outcome (mproc__exec_run's return) on its worker. */
static void count(struct worker *w, int code)
{
    if (code == 0)
        mproc__store_relaxed(&w->done, w->done + 1);
    else if (code < 0)
        mproc__store_relaxed(&w->failed, w->failed + 1);
}

static int worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *ex = w->ex;
    tls_worker = w;
    mproc__exec_worker = &ex->base;
    if (ex->base.initializer && ex->base.initializer(ex->base.initarg) < 0) {
        /* Python's BrokenThreadPool: every task from now on fails. */
        mproc__store_relaxed(&ex->base.broken, 1);
    }
    mproc_future *f;
    while ((f = find_task(w)) || (f = wait_for_task(w)))
        count(w, mproc__exec_run(&ex->base, f, w->index));
    tls_worker = NULL;
    mproc__exec_worker = NULL;
    return 0;
}

/* ---- the backend's operations ------------------------------------------- */

static bool threads_help(mproc_executor *ex)
{
    struct worker *w = tls_worker;
    mproc_future *f = find_task(w);
    if (!f)
        return false;
    count(w, mproc__exec_run(ex, f, w->index));
    return true;
}

static void threads_enqueue(mproc_executor *base, mproc_future *f)
{
    struct pool *ex = pool_of(base);
    struct worker *w = tls_worker;
    if (!(w && w->ex == ex && mproc__deque_push(&w->dq, f)) &&
        !mproc__ring_put(&ex->inject, f))
        overflow_put(ex, f);
    wake(ex, 1);
}

static void free_pool(struct pool *ex)
{
    if (ex->workers) {
        for (unsigned i = 0; i < ex->base.nworkers; i++) {
            mproc_thread_destroy(ex->workers[i].thread);
            mproc__deque_fini(&ex->workers[i].dq);
        }
        free(ex->workers);
    }
    mproc__ring_fini(&ex->inject);
    mproc_lock_destroy(&ex->overflow_lock);
    free(ex);
}

static int start_workers(struct pool *ex)
{
    for (unsigned i = 0; i < ex->base.nworkers; i++) {
        struct worker *w = &ex->workers[i];
        char name[MPROC_THREAD_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s-%u", ex->base.name, i);
        int rc = mproc_thread_create(&w->thread, &(mproc_thread_opts){
                                                     .fn = worker_main,
                                                     .arg = w,
                                                     .name = name,
                                                     .daemon = true,
                                                 });
        if (rc == 0)
            rc = mproc_thread_start(w->thread);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void threads_shutdown(mproc_executor *base, bool wait)
{
    struct pool *ex = pool_of(base);
    if (mproc__load_relaxed(&base->cancelling)) { /* cancel what is queued */
        mproc_future *f;
        while ((f = take_shared(ex, NULL))) {
            mproc__future_cancel_pending(f);
            mproc_future_release(f);
        }
    }
    /* Everyone must look: sleepers exit once the queues drain. */
    mproc__fetch_add(&ex->idle_seq, 1, __ATOMIC_RELEASE);
    mproc__futex_wake(&ex->idle_seq, INT_MAX, false);
    if (wait)
        for (unsigned i = 0; i < base->nworkers; i++)
            if (ex->workers[i].thread)
                mproc_thread_join(ex->workers[i].thread, -1, NULL);
}

static int threads_create(const mproc_executor_opts *opts, mproc_executor **out)
{
    struct pool *ex = mproc__exec_alloc(sizeof *ex, &mproc__thread_backend, opts);
    if (!ex)
        return -ENOMEM;
    ex->max_spinners = (uint32_t)mproc_cpu_count();
    mproc_lock_init(&ex->overflow_lock, 0);
    int rc = mproc__ring_init(&ex->inject, RING_LOG2);
    if (rc == 0) {
        ex->workers = calloc(opts->workers, sizeof *ex->workers);
        rc = ex->workers ? 0 : -ENOMEM;
    }
    for (unsigned i = 0; rc == 0 && i < opts->workers; i++) {
        struct worker *w = &ex->workers[i];
        w->ex = ex;
        w->index = (int)i;
        w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        rc = mproc__deque_init(&w->dq, DEQUE_LOG2);
    }
    if (rc == 0)
        rc = start_workers(ex);
    if (rc != 0) {
        /* Stop what started; no task was accepted yet. */
        __atomic_store_n(&ex->base.shutdown, 1, __ATOMIC_SEQ_CST);
        if (ex->workers)
            threads_shutdown(&ex->base, true);
        free_pool(ex);
        return rc;
    }
    *out = &ex->base;
    return 0;
}

static void threads_destroy(mproc_executor *ex)
{
    free_pool(pool_of(ex));
}

static void threads_stats(const mproc_executor *base, mproc_executor_counters *out)
{
    const struct pool *ex = (const struct pool *)base;
    for (unsigned i = 0; i < base->nworkers; i++) {
        const struct worker *w = &ex->workers[i];
        out->done += mproc__load_relaxed(&w->done);
        out->failed += mproc__load_relaxed(&w->failed);
        int64_t n = __atomic_load_n(&w->dq.bottom, __ATOMIC_RELAXED) -
                    __atomic_load_n(&w->dq.top, __ATOMIC_RELAXED);
        out->queued += n > 0 ? (uint64_t)n : 0;
    }
    uint64_t h = __atomic_load_n(&ex->inject.head, __ATOMIC_RELAXED);
    uint64_t t = __atomic_load_n(&ex->inject.tail, __ATOMIC_RELAXED);
    out->queued += t > h ? t - h : 0;
    out->queued += mproc__load_relaxed(&ex->overflow_n);
}

const struct mproc__backend mproc__thread_backend = {
    .kind = MPROC_THREADS,
    .stats = threads_stats,
    .max_arg = SIZE_MAX,
    .create = threads_create,
    .enqueue = threads_enqueue,
    .help = threads_help,
    .shutdown = threads_shutdown,
    .destroy = threads_destroy,
};
