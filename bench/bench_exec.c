/*
 * bench/bench_exec.c -- mproc's thread executor side by side with what a C,
 * C++ or Python programmer would use instead, in one run, printed as
 * ratios (DESIGN.md, "Performance").
 *
 *   1. many tiny tasks: N tasks submitted from one thread, each returning a
 *      small int, then every result awaited, summed and checked (M tasks/s):
 *        mproc_submit + mproc_future_result
 *        GLib GThreadPool (g_thread_pool_push, g_thread_pool_free to wait)
 *        a textbook pool: one mutex + condvar queue, N workers, a future
 *          (mutex + condvar) per task
 *        Python concurrent.futures.ThreadPoolExecutor (bench/py_executor.py)
 *   2. fib(n) with one task per call and no cutoff: each call submits
 *      fib(n-1) and fib(n-2) and waits for both (ms):
 *        mproc (the waiting task runs other tasks meanwhile)
 *        oneTBB task_group (run, run, wait)
 *        OpenMP tasks (omp task / omp taskwait)
 *   3. the sum of x*x over an int64 array (G elements/s): mproc_map with
 *      one task call per element and .result_size = 8, then a plain loop
 *      summing the dense result array (the target); the general map path
 *      (each result read with mproc_results_get) and workers x 8 chunks
 *      submitted by hand, for information; vs OpenMP parallel for with a
 *      reduction and oneTBB parallel_reduce.
 *   4. the submit -> result round trip of one tiny task on an idle pool of
 *      1 and of all workers (us, median and p99) vs a raw futex ping
 *      between two threads; back to back, and after 1 ms of idling.
 *   5. CPU-bound speed-up: 64 tasks of ~2 ms of arithmetic on 1 worker vs
 *      2 workers.
 *
 * Targets (from the issue), checked in the summary:
 *   tiny tasks    mproc >= 3 x GLib's throughput, >= 50 x Python's
 *   fib           mproc <= 1.5 x oneTBB's time, < OpenMP's time
 *   sum of x*x    mproc >= 0.9 x OpenMP's throughput
 *   round trip    median <= 2 x the raw futex round trip (pools of 1 and N)
 *   speed-up      2 workers / 1 worker >= 1.85
 *
 * Every pool has as many threads running tasks as the process has CPUs
 * (its affinity mask), unless a case says otherwise. GLib, OpenMP and
 * oneTBB are optional: without them (see bench/CMakeLists.txt) their
 * comparisons print "skipped (not installed)" and their targets SKIP.
 */
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mproc/exec.h>
#include <mproc/os.h>

#include "harness.h"
#include "speedup.h"

#ifdef BENCH_HAVE_GLIB
#include <glib.h>
#endif
#ifdef BENCH_HAVE_OPENMP
#include <omp.h>
#endif

#ifndef BENCH_PY_SCRIPT
#define BENCH_PY_SCRIPT "bench/py_executor.py"
#endif

/* The sum-of-squares kernel, shared with the oneTBB side so that all three
 * run the same inner loop. */
int64_t bench_sum_sq(const int64_t *x, size_t n);

#ifdef BENCH_HAVE_TBB
/* bench_exec_tbb.cpp: oneTBB in a task_arena of `threads` slots. */
int bench_tbb_init(int threads);
long bench_tbb_fib(int n);
int64_t bench_tbb_sum_sq(const int64_t *x, size_t n);
#endif

/* Aborts the benchmark when a call that cannot fail here fails. */
#define CHECK(call, what)                                     \
    do {                                                      \
        int rc_ = (call);                                     \
        if (__builtin_expect(rc_ != 0, 0))                    \
            bench_die(what, rc_);                             \
    } while (0)

static void wrong(const char *what, long long got, long long want)
{
    fprintf(stderr, "bench: %s: wrong result %lld, expected %lld\n", what, got, want);
    exit(1);
}

/* Threads that run tasks: the CPUs in this process's affinity mask. */
static int ncpu;

static int cpus_allowed(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/*
 * Before each timed run: let the threads of the figure run just before go
 * to sleep (libgomp's workers spin for ~10 ms after a parallel region;
 * oneTBB's, and maybe mproc's, for a while too), so that no figure pays
 * for another's idle spinning on a machine with few CPUs.
 */
static void settle(void)
{
    mproc_sleep_ms(15);
}

static mproc_executor *executor(unsigned workers)
{
    mproc_executor *ex;
    mproc_executor_opts o = {.kind = MPROC_THREADS, .workers = workers, .name = "bench"};
    CHECK(mproc_executor_create(&ex, &o), "mproc_executor_create");
    return ex;
}

/* The result of a finished future whose task returned a `size`-byte value. */
static void future_value(mproc_future *f, void *out, size_t size)
{
    const void *data;
    size_t len;
    CHECK(mproc_future_result(f, -1, &data, &len), "mproc_future_result");
    if (len != size) {
        fprintf(stderr, "bench: a future holds %zu bytes, expected %zu\n", len, size);
        exit(1);
    }
    memcpy(out, data, size);
}

/* A comparison whose library is not installed (see bench/CMakeLists.txt). */
static void skipped(const char *what)
{
    fprintf(bench_cfg.json ? stderr : stdout, "  %-46s skipped (not installed)\n", what);
}

/* ------------------------------------------------------------------ */
/* 1. Many tiny tasks                                                  */
/* ------------------------------------------------------------------ */

/* The tiny task: 2x+1 of its int argument. Inputs are 0..n-1, so the
 * results sum to n*n. */
enum tiny_kind { TINY_MPROC, TINY_GLIB, TINY_TEXTBOOK };

typedef struct tiny_arg {
    enum tiny_kind kind;
    long n;
    const int *in;        /* in[i] = i */
    mproc_future **futs;  /* mproc: n futures */
    struct tb_future **tbf; /* the textbook pool: n futures */
} tiny_arg;

static int tiny_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int v = 2 * *(const int *)arg + 1;
    return mproc_return(ctx, &v, sizeof v);
}

static long long tiny_mproc(const tiny_arg *c)
{
    mproc_executor *ex = executor((unsigned)ncpu);
    long long sum = 0;

    for (long i = 0; i < c->n; i++)
        CHECK(mproc_submit(ex, tiny_task, &c->in[i], sizeof c->in[i], &c->futs[i]),
              "mproc_submit");
    for (long i = 0; i < c->n; i++) {
        int v;
        future_value(c->futs[i], &v, sizeof v);
        sum += v;
        mproc_future_release(c->futs[i]);
    }
    mproc_executor_destroy(ex);
    return sum;
}

#ifdef BENCH_HAVE_GLIB
static void glib_task(gpointer data, gpointer user_data)
{
    long long v = 2 * *(const int *)data + 1;
    /* relaxed: g_thread_pool_free(.., TRUE) joins the workers, which
     * orders every add before the caller reads the sum. */
    atomic_fetch_add_explicit((_Atomic long long *)user_data, v, memory_order_relaxed);
}

static long long tiny_glib(const tiny_arg *c)
{
    _Atomic long long sum = 0;
    GError *err = NULL;
    /* exclusive: ncpu threads of its own, started at once. */
    GThreadPool *pool = g_thread_pool_new(glib_task, (gpointer)&sum, ncpu, TRUE, &err);
    if (pool == NULL) {
        fprintf(stderr, "bench: g_thread_pool_new: %s\n", err ? err->message : "?");
        exit(1);
    }
    for (long i = 0; i < c->n; i++)
        if (!g_thread_pool_push(pool, (gpointer)&c->in[i], &err)) {
            fprintf(stderr, "bench: g_thread_pool_push: %s\n", err ? err->message : "?");
            exit(1);
        }
    g_thread_pool_free(pool, FALSE, TRUE); /* run every queued item, wait */
    return atomic_load_explicit(&sum, memory_order_relaxed);
}
#endif

/*
 * The textbook pool: what one writes from a course or a man page. One
 * queue (a linked list) under one mutex, a condition variable for "not
 * empty", N workers; each task has its own future, a mutex + condvar +
 * flag that the worker sets and signals, and that the submitter waits on.
 */
typedef struct tb_future {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int result;
} tb_future;

typedef struct tb_task {
    struct tb_task *next;
    const int *arg;
    tb_future *fut;
} tb_task;

typedef struct tb_pool {
    pthread_mutex_t mu;
    pthread_cond_t nonempty;
    tb_task *head, *tail;
    int stop;
    int nthreads;
    pthread_t *threads;
} tb_pool;

static void *tb_worker(void *p)
{
    tb_pool *pool = p;
    for (;;) {
        CHECK(pthread_mutex_lock(&pool->mu), "pthread_mutex_lock");
        while (pool->head == NULL && !pool->stop)
            CHECK(pthread_cond_wait(&pool->nonempty, &pool->mu), "pthread_cond_wait");
        tb_task *t = pool->head;
        if (t == NULL) { /* stopping, and the queue is empty */
            CHECK(pthread_mutex_unlock(&pool->mu), "pthread_mutex_unlock");
            return NULL;
        }
        pool->head = t->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        CHECK(pthread_mutex_unlock(&pool->mu), "pthread_mutex_unlock");

        int v = 2 * *t->arg + 1;
        tb_future *f = t->fut;
        free(t);
        CHECK(pthread_mutex_lock(&f->mu), "pthread_mutex_lock");
        f->result = v;
        f->done = 1;
        CHECK(pthread_cond_signal(&f->cv), "pthread_cond_signal");
        CHECK(pthread_mutex_unlock(&f->mu), "pthread_mutex_unlock");
    }
}

static void tb_start(tb_pool *pool, int n)
{
    memset(pool, 0, sizeof *pool);
    CHECK(pthread_mutex_init(&pool->mu, NULL), "pthread_mutex_init");
    CHECK(pthread_cond_init(&pool->nonempty, NULL), "pthread_cond_init");
    pool->nthreads = n;
    pool->threads = malloc((size_t)n * sizeof *pool->threads);
    if (pool->threads == NULL)
        bench_die("malloc", ENOMEM);
    for (int i = 0; i < n; i++)
        CHECK(pthread_create(&pool->threads[i], NULL, tb_worker, pool), "pthread_create");
}

static tb_future *tb_submit(tb_pool *pool, const int *arg)
{
    tb_future *f = malloc(sizeof *f);
    tb_task *t = malloc(sizeof *t);
    if (f == NULL || t == NULL)
        bench_die("malloc", ENOMEM);
    CHECK(pthread_mutex_init(&f->mu, NULL), "pthread_mutex_init");
    CHECK(pthread_cond_init(&f->cv, NULL), "pthread_cond_init");
    f->done = 0;
    t->next = NULL;
    t->arg = arg;
    t->fut = f;
    CHECK(pthread_mutex_lock(&pool->mu), "pthread_mutex_lock");
    if (pool->tail != NULL)
        pool->tail->next = t;
    else
        pool->head = t;
    pool->tail = t;
    CHECK(pthread_cond_signal(&pool->nonempty), "pthread_cond_signal");
    CHECK(pthread_mutex_unlock(&pool->mu), "pthread_mutex_unlock");
    return f;
}

/* Waits for f, frees it, returns its result. */
static int tb_result(tb_future *f)
{
    CHECK(pthread_mutex_lock(&f->mu), "pthread_mutex_lock");
    while (!f->done)
        CHECK(pthread_cond_wait(&f->cv, &f->mu), "pthread_cond_wait");
    int v = f->result;
    CHECK(pthread_mutex_unlock(&f->mu), "pthread_mutex_unlock");
    CHECK(pthread_cond_destroy(&f->cv), "pthread_cond_destroy");
    CHECK(pthread_mutex_destroy(&f->mu), "pthread_mutex_destroy");
    free(f);
    return v;
}

static void tb_stop(tb_pool *pool)
{
    CHECK(pthread_mutex_lock(&pool->mu), "pthread_mutex_lock");
    pool->stop = 1;
    CHECK(pthread_cond_broadcast(&pool->nonempty), "pthread_cond_broadcast");
    CHECK(pthread_mutex_unlock(&pool->mu), "pthread_mutex_unlock");
    for (int i = 0; i < pool->nthreads; i++)
        CHECK(pthread_join(pool->threads[i], NULL), "pthread_join");
    free(pool->threads);
    CHECK(pthread_cond_destroy(&pool->nonempty), "pthread_cond_destroy");
    CHECK(pthread_mutex_destroy(&pool->mu), "pthread_mutex_destroy");
}

static long long tiny_textbook(const tiny_arg *c)
{
    tb_pool pool;
    tb_future **futs = c->tbf;
    long long sum = 0;

    tb_start(&pool, ncpu);
    for (long i = 0; i < c->n; i++)
        futs[i] = tb_submit(&pool, &c->in[i]);
    for (long i = 0; i < c->n; i++)
        sum += tb_result(futs[i]);
    tb_stop(&pool);
    return sum;
}

/* One run: millions of tasks per second, from the pool's creation to its
 * last result (every pool starts its threads and stops them in the run). */
static double run_tiny(void *p)
{
    const tiny_arg *c = p;
    long long sum = 0;

    settle();
    int64_t t0 = bench_now_ns();
    switch (c->kind) {
    case TINY_MPROC: sum = tiny_mproc(c); break;
#ifdef BENCH_HAVE_GLIB
    case TINY_GLIB: sum = tiny_glib(c); break;
#else
    case TINY_GLIB: break;
#endif
    case TINY_TEXTBOOK: sum = tiny_textbook(c); break;
    }
    int64_t t1 = bench_now_ns();
    if (sum != (long long)c->n * c->n)
        wrong("tiny tasks", sum, (long long)c->n * c->n);
    return (double)c->n / ((double)(t1 - t0) / 1e9) / 1e6;
}

/*
 * Python's figure: bench/py_executor.py N RUNS WORKERS prints tasks per
 * second (the median of RUNS). NaN when python3 is missing or fails.
 */
static double python_executor(long n)
{
    char args[64], line[128] = "";
    snprintf(args, sizeof args, "%ld %d %d 2>&1", n, bench_cfg.runs, ncpu);
    FILE *f = bench_python_open(BENCH_PY_SCRIPT, args);
    if (f == NULL)
        return NAN;
    char *got = fgets(line, sizeof line, f);
    int status = pclose(f);
    char *end = NULL;
    double rate = got != NULL ? strtod(line, &end) : 0;
    if (got == NULL || end == line || status != 0 || !(rate > 0)) {
        line[strcspn(line, "\n")] = '\0';
        bench_note("python3: failed (exit status %#x, output '%s')", status,
                   got != NULL ? line : "");
        return NAN;
    }
    return rate / 1e6;
}

static void case_tiny(void)
{
    long n = bench_scale(1000000, 100000), npy = bench_scale(100000, 20000);
    int *in = malloc((size_t)n * sizeof *in);
    mproc_future **futs = calloc((size_t)n, sizeof *futs);
    tb_future **tbf = calloc((size_t)n, sizeof *tbf);
    if (in == NULL || futs == NULL || tbf == NULL)
        bench_die("malloc", ENOMEM);
    for (long i = 0; i < n; i++)
        in[i] = (int)i;

    tiny_arg a_m = {TINY_MPROC, n, in, futs, tbf};
    tiny_arg a_g = {TINY_GLIB, n, in, futs, tbf};
    tiny_arg a_t = {TINY_TEXTBOOK, n, in, futs, tbf};
    double v[3] = {NAN, NAN, NAN};
    int have_glib = 0;
#ifdef BENCH_HAVE_GLIB
    have_glib = 1;
#endif

    bench_section("1. %ld tiny tasks submitted from one thread, then every result "
                  "awaited and summed, %d workers (M tasks/s, higher is better)",
                  n, ncpu);
    if (have_glib) {
        void *args[3] = {&a_m, &a_g, &a_t};
        bench_compare(3, run_tiny, args, v);
    } else {
        void *args[2] = {&a_m, &a_t};
        double w[2];
        bench_compare(2, run_tiny, args, w);
        v[0] = w[0];
        v[2] = w[1];
    }
    bench_range q_g = have_glib ? bench_rounds(0, 1) : BENCH_NO_RANGE;
    bench_range q_t = have_glib ? bench_rounds(0, 2) : bench_rounds(0, 1);

    double r_g = NAN, r_py = NAN;
    if (have_glib) {
        bench_figure("GLib GThreadPool", v[1], "M/s", NULL, 0);
    } else {
        skipped("GLib GThreadPool");
    }
    bench_figure("textbook pool (mutex + condvar)", v[2], "M/s", NULL, 0);
    if (have_glib)
        r_g = bench_figure("mproc_submit + mproc_future_result", v[0], "M/s", "GLib",
                           v[1]);
    double r_t = bench_figure("mproc_submit + mproc_future_result", v[0], "M/s",
                              "textbook", v[2]);

    double py = python_executor(npy);
    if (!isnan(py)) {
        bench_figure("Python ThreadPoolExecutor (scaled)", py, "M/s", NULL, 0);
        r_py = bench_figure("mproc_submit + mproc_future_result", v[0], "M/s", "Python",
                            py);
        bench_note("Python: %ld tasks per run (submit all, then result() each), "
                   "median of %d runs, as a rate", npy, bench_cfg.runs);
    }
    bench_note("every run creates its pool, submits, awaits every result and stops "
               "the pool; inputs 0..n-1, results 2x+1, sum checked");

    bench_target("tiny tasks: mproc / GLib GThreadPool (throughput)", r_g, q_g,
                 BENCH_HIGHER, 3.0);
    bench_target("tiny tasks: mproc / Python ThreadPoolExecutor (throughput)", r_py,
                 BENCH_NO_RANGE, BENCH_HIGHER, 50.0);
    bench_info("tiny tasks: mproc / textbook mutex+condvar pool (throughput)", r_t, q_t);
    free(tbf);
    free(futs);
    free(in);
}

/* ------------------------------------------------------------------ */
/* 2. fib with one task per call                                       */
/* ------------------------------------------------------------------ */

static long fib_serial(int n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/* The executor fib_task submits to (one per case, made before its runs). */
static mproc_executor *fib_ex;

/* The argument is an int in the caller's frame, which stays alive: the
 * caller waits for both children before it returns. */
static int fib_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int n = *(const int *)arg;
    long r;

    if (n < 2) {
        r = n;
    } else {
        int a = n - 1, b = n - 2;
        mproc_future *fa, *fb;
        long x, y;
        CHECK(mproc_submit(fib_ex, fib_task, &a, sizeof a, &fa), "mproc_submit");
        CHECK(mproc_submit(fib_ex, fib_task, &b, sizeof b, &fb), "mproc_submit");
        future_value(fa, &x, sizeof x); /* runs other tasks while it waits */
        future_value(fb, &y, sizeof y);
        mproc_future_release(fa);
        mproc_future_release(fb);
        r = x + y;
    }
    return mproc_return(ctx, &r, sizeof r);
}

#ifdef BENCH_HAVE_OPENMP
static long fib_omp(int n)
{
    long x, y;
    if (n < 2)
        return n;
#pragma omp task shared(x)
    x = fib_omp(n - 1);
#pragma omp task shared(y)
    y = fib_omp(n - 2);
#pragma omp taskwait
    return x + y;
}
#endif

enum impl { IMPL_MPROC, IMPL_TBB, IMPL_OMP };

typedef struct fib_arg {
    enum impl impl;
    int n;
    long want;
} fib_arg;

/* One run: milliseconds for fib(n). */
static double run_fib(void *p)
{
    const fib_arg *c = p;
    long r = -1;

    settle();
    int64_t t0 = bench_now_ns();
    switch (c->impl) {
    case IMPL_MPROC: {
        mproc_future *f;
        CHECK(mproc_submit(fib_ex, fib_task, &c->n, sizeof c->n, &f),
              "mproc_submit");
        future_value(f, &r, sizeof r);
        mproc_future_release(f);
        break;
    }
    case IMPL_TBB:
#ifdef BENCH_HAVE_TBB
        r = bench_tbb_fib(c->n);
#endif
        break;
    case IMPL_OMP:
#ifdef BENCH_HAVE_OPENMP
#pragma omp parallel num_threads(ncpu)
#pragma omp single
        r = fib_omp(c->n);
#endif
        break;
    }
    int64_t t1 = bench_now_ns();
    if (r != c->want)
        wrong("fib", r, c->want);
    return (double)(t1 - t0) / 1e6;
}

/* Runs the figures present in `have` side by side; fills v[] (NaN for the
 * absent) and the ratio ranges q[i] of figure i against figure 0. */
static void compare_present(int k, const int have[], bench_fn fn, void *const args[],
                            double v[], bench_range q[])
{
    void *a[BENCH_MAX_COMPARE];
    int idx[BENCH_MAX_COMPARE], m = 0;
    double w[BENCH_MAX_COMPARE];

    for (int i = 0; i < k; i++) {
        v[i] = NAN;
        q[i] = BENCH_NO_RANGE;
        if (have[i]) {
            idx[m] = i;
            a[m++] = args[i];
        }
    }
    bench_compare(m, fn, a, w);
    for (int j = 0; j < m; j++) {
        v[idx[j]] = w[j];
        q[idx[j]] = bench_rounds(0, j); /* figure 0 (mproc) is always present */
    }
}

static const int have_impl[3] = {
    1,
#ifdef BENCH_HAVE_TBB
    1,
#else
    0,
#endif
#ifdef BENCH_HAVE_OPENMP
    1,
#else
    0,
#endif
};

static void case_fib(void)
{
    int n = (int)bench_scale(30, 25);
    long want = fib_serial(n);
    fib_arg a[3] = {{IMPL_MPROC, n, want}, {IMPL_TBB, n, want}, {IMPL_OMP, n, want}};
    void *args[3] = {&a[0], &a[1], &a[2]};
    double v[3];
    bench_range q[3];

    bench_section("2. fib(%d), one task per call, no cutoff: each call submits fib(n-1) "
                  "and fib(n-2) and waits for both, %d threads (ms, lower is better)",
                  n, ncpu);
    fib_ex = executor((unsigned)ncpu);
    compare_present(3, have_impl, run_fib, args, v, q);
    mproc_executor_destroy(fib_ex);
    fib_ex = NULL;

    if (have_impl[IMPL_TBB])
        bench_figure("oneTBB task_group (run, run, wait)", v[1], "ms", NULL, 0);
    else
        skipped("oneTBB task_group");
    if (have_impl[IMPL_OMP])
        bench_figure("OpenMP tasks (task, task, taskwait)", v[2], "ms", NULL, 0);
    else
        skipped("OpenMP tasks");
    double r_tbb = NAN, r_omp = NAN;
    if (have_impl[IMPL_TBB])
        r_tbb = bench_figure("mproc_submit + mproc_future_result", v[0], "ms", "oneTBB",
                             v[1]);
    if (have_impl[IMPL_OMP])
        r_omp = bench_figure("mproc_submit + mproc_future_result", v[0], "ms", "OpenMP",
                             v[2]);
    if (!have_impl[IMPL_TBB] && !have_impl[IMPL_OMP])
        bench_figure("mproc_submit + mproc_future_result", v[0], "ms", NULL, 0);
    bench_note("%ld tasks per run; mproc: a persistent executor of %d workers, the "
               "root submitted from outside; oneTBB: a task_arena of %d slots; "
               "OpenMP: parallel num_threads(%d) + single",
               2 * fib_serial(n + 1) - 1, ncpu, ncpu, ncpu);

    bench_target("fib: mproc / oneTBB task_group (time)", r_tbb, q[1], BENCH_LOWER, 1.5);
    bench_target("fib: mproc / OpenMP tasks (time)", r_omp, q[2], BENCH_LOWER, 1.0);
}

/* ------------------------------------------------------------------ */
/* 3. Sum of squares over an int64 array                               */
/* ------------------------------------------------------------------ */

int64_t bench_sum_sq(const int64_t *x, size_t n)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}

typedef struct chunk {
    const int64_t *x;
    size_t n;
} chunk;

static int sum_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    const chunk *c = arg;
    int64_t s = bench_sum_sq(c->x, c->n);
    return mproc_return(ctx, &s, sizeof s);
}

typedef struct sum_arg {
    enum impl impl;
    const int64_t *x;
    size_t n;
    int64_t want;
    mproc_executor *ex;   /* mproc */
    chunk *chunks;        /* mproc: nchunks */
    mproc_future **futs;  /* mproc: nchunks */
    int nchunks;
} sum_arg;

static int64_t sum_mproc(const sum_arg *c)
{
    int64_t s = 0;
    for (int i = 0; i < c->nchunks; i++)
        CHECK(mproc_submit(c->ex, sum_task, &c->chunks[i], sizeof c->chunks[i],
                           &c->futs[i]),
              "mproc_submit");
    for (int i = 0; i < c->nchunks; i++) {
        int64_t v;
        future_value(c->futs[i], &v, sizeof v);
        s += v;
        mproc_future_release(c->futs[i]);
    }
    return s;
}

/* The same sum through mproc_map: one task call per element (x*x, 8-byte
 * result stored in the results object), automatic chunking, then every
 * result read back and summed -- Python's sum(pool.map(square, xs)).
 * `fixed`: with .result_size = 8, the results are one dense int64 array
 * (mproc_results_data) summed with a plain loop; otherwise each is read
 * with mproc_results_get (the general path, kept as information). */
typedef struct map_arg {
    mproc_executor *ex;
    const int64_t *x;
    size_t n;
    int64_t want;
    bool fixed;
} map_arg;

static int square_item(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t v = *(const int64_t *)arg;
    v *= v;
    return mproc_return(ctx, &v, sizeof v);
}

static double run_map(void *p)
{
    const map_arg *m = p;
    mproc_results *r;
    int64_t s = 0;
    settle();
    int64_t t0 = bench_now_ns();
    if (m->fixed) {
        /* Everything from the call to the sum is timed: the result array
         * is allocated (and its pages faulted in) inside mproc_map. */
        CHECK(mproc_map(m->ex, square_item, m->x, sizeof *m->x, m->n,
                        &(mproc_map_opts){ .result_size = sizeof(int64_t) }, &r),
              "mproc_map");
        size_t rs = 0;
        const int64_t *y = mproc_results_data(r, &rs);
        if (y == NULL || rs != sizeof *y)
            bench_die("mproc_results_data", errno ? errno : EINVAL);
        for (size_t i = 0; i < m->n; i++)
            s += y[i];
    } else {
        CHECK(mproc_map(m->ex, square_item, m->x, sizeof *m->x, m->n, NULL, &r), "mproc_map");
        for (size_t i = 0; i < m->n; i++) {
            mproc_item it;
            CHECK(mproc_results_get(r, i, &it), "mproc_results_get");
            int64_t v;
            memcpy(&v, it.data, sizeof v);
            s += v;
        }
    }
    int64_t t1 = bench_now_ns();
    mproc_results_destroy(r);
    if (s != m->want)
        wrong("sum of squares (mproc_map)", s, m->want);
    return (double)m->n / (double)(t1 - t0);
}

#ifdef BENCH_HAVE_OPENMP
static int64_t sum_omp(const int64_t *x, size_t n)
{
    int64_t s = 0;
#pragma omp parallel for reduction(+ : s) num_threads(ncpu) schedule(static)
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}
#endif

/* One run: billions of elements per second. */
static double run_sum(void *p)
{
    const sum_arg *c = p;
    int64_t s = -1;

    settle();
    int64_t t0 = bench_now_ns();
    switch (c->impl) {
    case IMPL_MPROC: s = sum_mproc(c); break;
    case IMPL_TBB:
#ifdef BENCH_HAVE_TBB
        s = bench_tbb_sum_sq(c->x, c->n);
#endif
        break;
    case IMPL_OMP:
#ifdef BENCH_HAVE_OPENMP
        s = sum_omp(c->x, c->n);
#endif
        break;
    }
    int64_t t1 = bench_now_ns();
    if (s != c->want)
        wrong("sum of squares", s, c->want);
    return (double)c->n / (double)(t1 - t0);
}

static void case_sum(void)
{
    size_t n = (size_t)bench_scale(100000000, 10000000);
    int nchunks = ncpu * 8;
    int64_t *x = malloc(n * sizeof *x);
    chunk *chunks = malloc((size_t)nchunks * sizeof *chunks);
    mproc_future **futs = malloc((size_t)nchunks * sizeof *futs);
    if (x == NULL || chunks == NULL || futs == NULL)
        bench_die("malloc", ENOMEM);
    /* Small values (-512..511): the sum fits an int64 with room to spare. */
    for (size_t i = 0; i < n; i++)
        x[i] = (int64_t)(i % 1024) - 512;
    int64_t want = bench_sum_sq(x, n);
    for (int i = 0; i < nchunks; i++) {
        size_t lo = n * (size_t)i / (size_t)nchunks, hi = n * (size_t)(i + 1) / (size_t)nchunks;
        chunks[i] = (chunk){x + lo, hi - lo};
    }

    sum_arg a[3] = {{IMPL_MPROC, x, n, want, executor((unsigned)ncpu), chunks, futs, nchunks},
                    {IMPL_TBB, x, n, want, NULL, NULL, NULL, 0},
                    {IMPL_OMP, x, n, want, NULL, NULL, NULL, 0}};
    void *args[3] = {&a[0], &a[1], &a[2]};
    double v[3];
    bench_range q[3];

    bench_section("3. sum of x*x over %zu int64 (%zu MB), %d threads (G elements/s, "
                  "higher is better)", n, n * sizeof *x >> 20, ncpu);
    compare_present(3, have_impl, run_sum, args, v, q);
    map_arg ma = {a[0].ex, x, n, want, true};
    double vmap = bench_measure(run_map, &ma);
    /* The general path, for information: one run (at full size it takes
     * seconds). */
    map_arg mg = {a[0].ex, x, n, want, false};
    double vgen = run_map(&mg);
    mproc_executor_destroy(a[0].ex);

    if (have_impl[IMPL_OMP])
        bench_figure("OpenMP parallel for reduction", v[2], "G/s", NULL, 0);
    else
        skipped("OpenMP parallel for reduction");
    if (have_impl[IMPL_TBB])
        bench_figure("oneTBB parallel_reduce", v[1], "G/s", NULL, 0);
    else
        skipped("oneTBB parallel_reduce");
    double r_omp = NAN, r_tbb = NAN;
    if (have_impl[IMPL_OMP])
        r_omp = bench_figure("mproc chunked submit", v[0], "G/s",
                             "OpenMP", v[2]);
    if (have_impl[IMPL_TBB])
        r_tbb = bench_figure("mproc chunked submit", v[0], "G/s",
                             "oneTBB", v[1]);
    if (!have_impl[IMPL_TBB] && !have_impl[IMPL_OMP])
        bench_figure("mproc chunked submit", v[0], "G/s", NULL, 0);
    double r_map = NAN, r_map_tbb = NAN, r_gen = NAN;
    if (have_impl[IMPL_OMP])
        r_map = bench_figure("mproc_map, result_size 8, dense array summed", vmap, "G/s",
                             "OpenMP", v[2]);
    if (have_impl[IMPL_TBB])
        r_map_tbb = bench_figure("mproc_map, result_size 8, dense array summed", vmap, "G/s",
                                 "oneTBB", v[1]);
    if (!have_impl[IMPL_TBB] && !have_impl[IMPL_OMP])
        bench_figure("mproc_map, result_size 8, dense array summed", vmap, "G/s", NULL, 0);
    if (have_impl[IMPL_OMP])
        r_gen = bench_figure("mproc_map, general results, each read back", vgen, "G/s",
                             "OpenMP", v[2]);
    else
        bench_figure("mproc_map, general results, each read back", vgen, "G/s", NULL, 0);
    bench_note("mproc chunked submit: %d chunks (workers x 8) submitted by hand to a "
               "persistent executor, each returning its int64 sum; mproc_map: one task "
               "call per element (mproc_return of x*x), automatic chunks, timed from the "
               "call to the end of the sum, allocation of the results included; "
               "result_size 8: one dense array summed by a plain loop; general: 16-byte "
               "slots read with mproc_results_get (one run). Both after the interleaved "
               "rounds, not within them", nchunks);

    bench_target("sum x*x: mproc_map / OpenMP reduction (throughput)", r_map,
                 BENCH_NO_RANGE, BENCH_HIGHER, 0.9);
    bench_info("sum x*x: mproc_map / oneTBB parallel_reduce (throughput)", r_map_tbb,
               BENCH_NO_RANGE);
    bench_info("sum x*x: mproc_map general results / OpenMP reduction (throughput)", r_gen,
               BENCH_NO_RANGE);
    bench_info("sum x*x: mproc chunked submit / OpenMP reduction (throughput)", r_omp,
               q[2]);
    bench_info("sum x*x: mproc chunked submit / oneTBB parallel_reduce (throughput)",
               r_tbb, q[1]);
    free(futs);
    free(chunks);
    free(x);
}

/* ------------------------------------------------------------------ */
/* 4. Round-trip latency                                               */
/* ------------------------------------------------------------------ */

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    /* EAGAIN (the word changed already) and EINTR both mean: re-check. */
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#define MAX_RUNS_KEPT (BENCH_MAX_RUNS + 1)

typedef struct rtt_arg {
    int futex;            /* 1: the raw futex ping; 0: mproc */
    mproc_executor *ex;   /* mproc */
    long n;               /* round trips per run */
    int gap_us;           /* idle time before each round trip */
    int64_t *lat;         /* n samples (ns) */
    /* The raw ping: the word, and how many round trips the echo thread
     * answers. */
    _Alignas(64) _Atomic uint32_t word;
    /* p99 of each run (warm-up included: skipped when reported). */
    double p99[MAX_RUNS_KEPT];
    int runs;
} rtt_arg;

/* Answers n + 1 pings: one untimed, then the n timed. */
static void *echo_thread(void *p)
{
    rtt_arg *c = p;
    for (long i = 0; i <= c->n; i++) {
        uint32_t v;
        /* acquire/release: nothing else is passed, but the ping is what a
         * real handoff of data would pay. */
        while ((v = atomic_load_explicit(&c->word, memory_order_acquire)) != 1)
            futex_wait(&c->word, v);
        atomic_store_explicit(&c->word, 0, memory_order_release);
        futex_wake(&c->word);
    }
    return NULL;
}

static int noop_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int v = 1;
    return mproc_return(ctx, &v, sizeof v);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void sleep_us(int us)
{
    struct timespec ts = {0, (long)us * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One run: the median round trip (us); the p99 is kept in c->p99. */
static double run_rtt(void *p)
{
    rtt_arg *c = p;
    pthread_t th;

    if (c->futex) {
        atomic_store_explicit(&c->word, 0, memory_order_relaxed);
        CHECK(pthread_create(&th, NULL, echo_thread, c), "pthread_create");
    }
    settle();
    for (long i = -1; i < c->n; i++) { /* i = -1: untimed, the echo thread starts */
        if (c->gap_us > 0)
            sleep_us(c->gap_us);
        int64_t t0 = bench_now_ns();
        if (c->futex) {
            uint32_t v;
            atomic_store_explicit(&c->word, 1, memory_order_release);
            futex_wake(&c->word);
            while ((v = atomic_load_explicit(&c->word, memory_order_acquire)) != 0)
                futex_wait(&c->word, v);
        } else {
            mproc_future *f;
            int r;
            CHECK(mproc_submit(c->ex, noop_task, NULL, 0, &f), "mproc_submit");
            future_value(f, &r, sizeof r);
            mproc_future_release(f);
        }
        if (i >= 0)
            c->lat[i] = bench_now_ns() - t0;
    }
    if (c->futex)
        CHECK(pthread_join(th, NULL), "pthread_join");
    qsort(c->lat, (size_t)c->n, sizeof c->lat[0], cmp_i64);
    if (c->runs < MAX_RUNS_KEPT)
        c->p99[c->runs++] = (double)c->lat[(c->n * 99) / 100] / 1e3;
    return (double)c->lat[c->n / 2] / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median p99 of the timed runs (the warm-up run's is left out). */
static double p99_of(rtt_arg *c)
{
    int k = c->runs - 1;
    if (k < 1)
        return NAN;
    qsort(c->p99 + 1, (size_t)k, sizeof c->p99[0], cmp_double);
    return k % 2 ? c->p99[1 + k / 2] : (c->p99[k / 2] + c->p99[1 + k / 2]) / 2;
}

static void rtt_series(const char *label, long n, int gap_us, int with_target)
{
    int64_t *lat = malloc(3 * (size_t)n * sizeof *lat);
    rtt_arg *a = calloc(3, sizeof *a);
    if (lat == NULL || a == NULL)
        bench_die("malloc", ENOMEM);
    a[0] = (rtt_arg){.futex = 1, .n = n, .gap_us = gap_us, .lat = lat};
    a[1] = (rtt_arg){.ex = executor(1), .n = n, .gap_us = gap_us, .lat = lat + n};
    a[2] = (rtt_arg){.ex = executor((unsigned)ncpu), .n = n, .gap_us = gap_us,
                     .lat = lat + 2 * n};
    void *args[3] = {&a[0], &a[1], &a[2]};
    double v[3];
    char name[96], what[96];

    bench_compare(3, run_rtt, args, v);
    bench_range q1 = bench_rounds(1, 0), qn = bench_rounds(2, 0);
    mproc_executor_destroy(a[1].ex);
    mproc_executor_destroy(a[2].ex);

    snprintf(name, sizeof name, "%s: raw futex ping, median", label);
    bench_figure(name, v[0], "us", NULL, 0);
    snprintf(name, sizeof name, "%s: mproc, 1 worker, median", label);
    double r1 = bench_figure(name, v[1], "us", "futex", v[0]);
    snprintf(name, sizeof name, "%s: mproc, %d workers, median", label, ncpu);
    double rn = bench_figure(name, v[2], "us", "futex", v[0]);
    double p[3] = {p99_of(&a[0]), p99_of(&a[1]), p99_of(&a[2])};
    snprintf(name, sizeof name, "%s: raw futex ping, p99", label);
    bench_figure(name, p[0], "us", NULL, 0);
    snprintf(name, sizeof name, "%s: mproc, 1 worker, p99", label);
    bench_figure(name, p[1], "us", "futex", p[0]);
    snprintf(name, sizeof name, "%s: mproc, %d workers, p99", label, ncpu);
    bench_figure(name, p[2], "us", "futex", p[0]);

    if (with_target) {
        snprintf(what, sizeof what, "round trip %s, pool of 1: mproc / futex (median)",
                 label);
        bench_target(what, r1, q1, BENCH_LOWER, 2.0);
        snprintf(what, sizeof what, "round trip %s, pool of %d: mproc / futex (median)",
                 label, ncpu);
        bench_target(what, rn, qn, BENCH_LOWER, 2.0);
    } else {
        snprintf(what, sizeof what, "round trip %s, pool of 1: mproc / futex (median)",
                 label);
        bench_info(what, r1, q1);
        snprintf(what, sizeof what, "round trip %s, pool of %d: mproc / futex (median)",
                 label, ncpu);
        bench_info(what, rn, qn);
    }
    free(a);
    free(lat);
}

static void case_rtt(void)
{
    long n = bench_scale(10000, 2000), n_idle = bench_scale(300, 100);
    const int gap_us = 1000;

    bench_section("4. submit -> result round trip of one tiny task on an idle pool, vs "
                  "a futex wake-and-reply ping between two threads (us, lower is "
                  "better)");
    rtt_series("back to back", n, 0, 1);
    bench_note("%ld round trips per run, one after another; median of the runs' "
               "medians and of their p99s", n);
    rtt_series("after 1 ms idle", n_idle, gap_us, 0);
    bench_note("%ld round trips per run, each after %d us of sleep, so that spinning "
               "workers have gone to sleep and the CPUs may be idle", n_idle, gap_us);
}

/* ------------------------------------------------------------------ */
/* 5. CPU-bound speed-up: bench_speedup_case (speedup.c)              */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    bench_init(argc, argv,
               "bench_exec: mproc's thread executor against GLib, a textbook pool, "
               "oneTBB, OpenMP and Python",
               "cases: 1 tiny tasks, 2 fib (one task per call), 3 sum of x*x in chunks,\n"
               "       4 round-trip latency, 5 CPU-bound speed-up (1 vs 2 workers)\n");
    ncpu = cpus_allowed();
    fprintf(bench_cfg.json ? stderr : stdout, "workers: %d (the CPUs this process may use)\n",
            ncpu);
#ifdef BENCH_HAVE_TBB
    CHECK(bench_tbb_init(ncpu), "oneTBB task_arena");
#endif
#ifdef BENCH_HAVE_OPENMP
    omp_set_dynamic(0);
#endif

    if (bench_case(1))
        case_tiny();
    if (bench_case(2))
        case_fib();
    if (bench_case(3))
        case_sum();
    if (bench_case(4))
        case_rtt();
    if (bench_case(5))
        bench_speedup_case(5, MPROC_THREADS, "mproc", ncpu, 15);
    return bench_finish();
}
