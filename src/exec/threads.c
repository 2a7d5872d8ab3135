/*
 * exec/executor.c -- the thread executor: workers, work stealing, submit,
 * idle sleeping, shutdown.
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
 * Shutdown. `inflight` counts submits between their shutdown check and
 * their enqueue. A worker exits only when shutdown is set, no submit is in
 * flight (read after `shutdown`, both seq_cst, so a submit that missed the
 * flag is counted) and every queue is empty; so no accepted task is left
 * behind. cancel_futures additionally drains the queues, cancelling what
 * it finds.
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

#define MAX_WORKERS 4096
#define DEQUE_LOG2 13  /* 8192 tasks per worker deque */
#define RING_LOG2 16   /* 65536 tasks in the injection ring */
#define IDLE_SPIN 20000 /* pause rounds before sleeping (~0.5 ms at 27 ns) */
#define IDLE_DELAY_MAX 64u

struct worker {
    mproc__deque dq;
    mproc_executor *ex;
    int index;
    uint64_t rng;
    mproc_thread *thread;
};

/* Fields are grouped by who writes them, one cache line per group, so
 * that a submit does not invalidate what every worker reads on every
 * search (bench_exec showed this line bouncing on each task). */
struct mproc_executor {
    /* read-mostly: set at creation or once at shutdown */
    unsigned nworkers;
    struct worker *workers;
    uint32_t shutdown;
    uint32_t cancelling;
    uint32_t broken;
    uint32_t max_spinners; /* the CPU count */
    /* written by every submit */
    _Alignas(64) uint32_t inflight;
    /* the idle event count: submitters read, sleepers write */
    _Alignas(64) uint32_t idle_seq; /* futex word */
    uint32_t sleepers;
    _Alignas(64) uint32_t spinners; /* idle workers spinning now */
    _Alignas(64) uint32_t overflow_n;
    mproc_lock overflow_lock;
    mproc_future *overflow_head, *overflow_tail;
    _Alignas(64) mproc__ring inject;
    int (*initializer)(void *);
    void *initarg;
    char name[32];
    mproc_executor *reg_prev, *reg_next; /* live executors, for exit */
};

static _Thread_local struct worker *tls_worker MPROC__TLS_IE;

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

/* ---- finding work ----------------------------------------------------- */

static uint64_t next_random(struct worker *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return x;
}

static mproc_future *overflow_get(mproc_executor *ex)
{
    if (mproc__load_acquire(&ex->overflow_n) == 0)
        return NULL;
    mproc_lock_acquire(&ex->overflow_lock, -1);
    mproc_future *f = ex->overflow_head;
    if (f) {
        ex->overflow_head = f->next;
        if (!f->next)
            ex->overflow_tail = NULL;
        mproc__fetch_sub(&ex->overflow_n, 1, __ATOMIC_RELAXED);
    }
    mproc_lock_release(&ex->overflow_lock);
    return f;
}

static void overflow_put(mproc_executor *ex, mproc_future *f)
{
    mproc_lock_acquire(&ex->overflow_lock, -1);
    f->next = NULL;
    if (ex->overflow_tail)
        ex->overflow_tail->next = f;
    else
        ex->overflow_head = f;
    ex->overflow_tail = f;
    mproc__fetch_add(&ex->overflow_n, 1, __ATOMIC_RELEASE);
    mproc_lock_release(&ex->overflow_lock);
}

/* Take a task from anywhere but our own deque. */
static mproc_future *take_shared(mproc_executor *ex, struct worker *self)
{
    mproc_future *f = mproc__ring_get(&ex->inject);
    if (f)
        return f;
    if ((f = overflow_get(ex)))
        return f;
    unsigned n = ex->nworkers;
    unsigned start = self ? (unsigned)(next_random(self) % n) : 0;
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

static bool queues_empty(mproc_executor *ex)
{
    if (mproc__load_acquire(&ex->overflow_n) != 0)
        return false;
    uint64_t head = __atomic_load_n(&ex->inject.head, __ATOMIC_SEQ_CST);
    uint64_t tail = __atomic_load_n(&ex->inject.tail, __ATOMIC_SEQ_CST);
    if (head != tail)
        return false;
    for (unsigned i = 0; i < ex->nworkers; i++)
        if (!mproc__deque_empty(&ex->workers[i].dq))
            return false;
    return true;
}

static bool time_to_exit(mproc_executor *ex)
{
    return __atomic_load_n(&ex->shutdown, __ATOMIC_SEQ_CST) &&
           __atomic_load_n(&ex->inflight, __ATOMIC_SEQ_CST) == 0 && queues_empty(ex);
}

static void run(struct worker *w, mproc_future *f)
{
    int fail = mproc__load_relaxed(&w->ex->broken) ? MPROC_EBROKEN : 0;
    mproc__future_run(f, w->index, fail);
    mproc_future_release(f); /* the scheduler's reference */
}

/* Spin, then sleep, until there is a task (returned) or it is time to
 * exit (NULL). */
static mproc_future *wait_for_task(struct worker *w)
{
    mproc_executor *ex = w->ex;
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

static void wake(mproc_executor *ex, int n)
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

static int worker_main(void *arg)
{
    struct worker *w = arg;
    mproc_executor *ex = w->ex;
    tls_worker = w;
    if (ex->initializer && ex->initializer(ex->initarg) < 0) {
        /* Python's BrokenThreadPool: every task from now on fails. */
        mproc__store_relaxed(&ex->broken, 1);
    }
    mproc_future *f;
    while ((f = find_task(w)) || (f = wait_for_task(w)))
        run(w, f);
    tls_worker = NULL;
    return 0;
}

bool mproc__exec_on_worker(const mproc_executor *ex)
{
    struct worker *w = tls_worker;
    return w && w->ex == ex;
}

bool mproc__exec_help(mproc_executor *ex)
{
    struct worker *w = tls_worker;
    if (!w || w->ex != ex)
        return false;
    mproc_future *f = find_task(w);
    if (!f)
        return false;
    run(w, f);
    return true;
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

bool mproc__exec_cancelling(const mproc_executor *ex)
{
    return mproc__load_relaxed(&ex->cancelling) != 0;
}

/* ---- life cycle -------------------------------------------------------- */

static void free_executor(mproc_executor *ex)
{
    if (ex->workers) {
        for (unsigned i = 0; i < ex->nworkers; i++) {
            mproc_thread_destroy(ex->workers[i].thread);
            mproc__deque_fini(&ex->workers[i].dq);
        }
        free(ex->workers);
    }
    mproc__ring_fini(&ex->inject);
    mproc_lock_destroy(&ex->overflow_lock);
    free(ex);
}

static int start_workers(mproc_executor *ex)
{
    for (unsigned i = 0; i < ex->nworkers; i++) {
        struct worker *w = &ex->workers[i];
        char name[MPROC_THREAD_NAME_MAX + 1];
        snprintf(name, sizeof name, "%s-%u", ex->name, i);
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

int mproc_executor_create(mproc_executor **out, const mproc_executor_opts *opts)
{
    static const mproc_executor_opts defaults;
    if (!out)
        return -EINVAL;
    if (!opts)
        opts = &defaults;
    if (opts->kind != MPROC_THREADS || opts->workers > MAX_WORKERS)
        return -EINVAL;
    size_t size = (sizeof(mproc_executor) + 63) & ~(size_t)63;
    mproc_executor *ex = aligned_alloc(64, size);
    if (!ex)
        return -ENOMEM;
    memset(ex, 0, size);
    ex->max_spinners = mproc_cpu_count();
    ex->nworkers = opts->workers ? opts->workers : ex->max_spinners;
    ex->initializer = opts->initializer;
    ex->initarg = opts->initarg;
    snprintf(ex->name, sizeof ex->name, "%s", opts->name ? opts->name : "mproc");
    mproc_lock_init(&ex->overflow_lock, 0);
    int rc = mproc__ring_init(&ex->inject, RING_LOG2);
    if (rc == 0) {
        ex->workers = calloc(ex->nworkers, sizeof *ex->workers);
        rc = ex->workers ? 0 : -ENOMEM;
    }
    for (unsigned i = 0; rc == 0 && i < ex->nworkers; i++) {
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
        mproc__store_release(&ex->shutdown, 1);
        wake(ex, INT_MAX);
        for (unsigned i = 0; ex->workers && i < ex->nworkers; i++)
            if (ex->workers[i].thread)
                mproc_thread_join(ex->workers[i].thread, -1, NULL);
        free_executor(ex);
        return rc;
    }
    reg_add(ex);
    *out = ex;
    return 0;
}

/* Cancel every task still queued anywhere. */
static void cancel_queued(mproc_executor *ex)
{
    mproc_future *f;
    while ((f = take_shared(ex, NULL))) {
        mproc__future_cancel_pending(f);
        mproc_future_release(f);
    }
}

int mproc_executor_shutdown(mproc_executor *ex, bool wait, bool cancel_futures)
{
    if (!ex)
        return -EINVAL;
    if (wait && mproc__exec_on_worker(ex))
        return -EDEADLK;
    __atomic_store_n(&ex->shutdown, 1, __ATOMIC_SEQ_CST);
    if (cancel_futures) {
        mproc__store_relaxed(&ex->cancelling, 1);
        cancel_queued(ex);
    }
    /* Everyone must look: sleepers exit once the queues drain. */
    mproc__fetch_add(&ex->idle_seq, 1, __ATOMIC_RELEASE);
    mproc__futex_wake(&ex->idle_seq, INT_MAX, false);
    if (wait)
        for (unsigned i = 0; i < ex->nworkers; i++)
            mproc_thread_join(ex->workers[i].thread, -1, NULL);
    return 0;
}

void mproc_executor_destroy(mproc_executor *ex)
{
    if (!ex)
        return;
    mproc_executor_shutdown(ex, true, false);
    reg_remove(ex);
    free_executor(ex);
}

int mproc_executor_workers(const mproc_executor *ex)
{
    return ex ? (int)ex->nworkers : -EINVAL;
}

/* ---- submit ------------------------------------------------------------ */

int mproc_submit_ex(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                    const mproc_submit_opts *opts, mproc_future **out)
{
    if (out)
        *out = NULL;
    if (!ex || !fn || (!arg && len > 0))
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
        if (!f)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        struct worker *w = tls_worker;
        if (!(w && w->ex == ex && mproc__deque_push(&w->dq, f)) &&
            !mproc__ring_put(&ex->inject, f))
            overflow_put(ex, f);
    }
    __atomic_fetch_sub(&ex->inflight, 1, __ATOMIC_SEQ_CST);
    if (rc != 0)
        return rc;
    wake(ex, 1);
    if (out)
        *out = f;
    return 0;
}

int mproc_submit(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                 mproc_future **out)
{
    return mproc_submit_ex(ex, fn, arg, len, NULL, out);
}
