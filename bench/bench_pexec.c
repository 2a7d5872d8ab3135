/*
 * bench/bench_pexec.c -- mproc's process executor (.kind = MPROC_PROCESSES)
 * side by side with Python's multiprocessing.Pool and
 * concurrent.futures.ProcessPoolExecutor (bench/py_pexec.py), in one run,
 * printed as ratios (DESIGN.md, "Performance"; issue 5, "Benchmarks").
 *
 *   1. x*x over 1M int64 with default chunking (M items/s): mproc_map with
 *      .result_size = 8 (the dense array summed and checked), and the
 *      general result mode for information; vs Pool.map (default
 *      chunking) and ProcessPoolExecutor.map (default chunksize=1, on
 *      fewer items, as a rate).
 *   2. 100k tiny tasks one per message (M tasks/s): mproc_submit of each
 *      then mproc_future_result of each, and mproc_map with chunksize 1;
 *      vs ProcessPoolExecutor.submit / result and Pool.map(chunksize=1)
 *      (on fewer tasks, as rates).
 *   3. the submit -> result round trip of one tiny task on an idle pool
 *      (us, median and p99), mproc vs ProcessPoolExecutor.
 *   4. CPU-bound speed-up: 64 tasks of ~2 ms of arithmetic, 1 worker
 *      process vs 2.
 *   5. the cost of surviving a crash, on a pool of 1 worker: a task
 *      SIGKILLs its worker; once its future has failed with
 *      MPROC_EWORKERDIED, the submit -> result of a normal task, which
 *      must run on the replacement (us, median); and the same result timed
 *      from just before the worker's raise(SIGKILL) (a timestamp in shared
 *      memory), which adds noticing the death.
 *   6. a big result handed back (1 MiB, 16 MiB), one task after another
 *      on a pool of 1 (us per result): the worker fills the result with
 *      mproc_result_buffer and the caller reads one byte of every page.
 *      mproc reads it where the worker wrote it; anchors: the same with
 *      the result copied out once more (what a copy back costs), a
 *      forked child answering over pipe(2) (1 MiB pipe buffer), and
 *      ProcessPoolExecutor(1).submit(...).result() of bytes.
 *
 * Targets (issue 5), checked in the summary:
 *   map, default chunking   mproc >= 50 x Python Pool.map (throughput)
 *   chunksize 1             mproc >= 20 x Python's (submit vs submit,
 *                           map vs map)
 *   speed-up                2 workers / 1 worker >= 1.85
 *   crash                   replacement serving <= 5 ms (both timings)
 *
 * Workers are started by the fork server (the default), started first
 * thing in main. Pools have as many workers as the process has CPUs,
 * unless a case says otherwise; every pool (mproc's and Python's) is
 * created and its workers are up before the timed runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "speedup.h"
#include "mproc.h"

#ifndef BENCH_PY_SCRIPT
#define BENCH_PY_SCRIPT "bench/py_pexec.py"
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

/* Processes that run tasks: the CPUs in this process's affinity mask. */
static int ncpu;

static int cpus_allowed(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Shared with the workers (allocated before the fork server starts, so
 * that every worker sees it): what the crash task leaves behind. */
typedef struct shared {
    _Atomic int64_t death_ns; /* bench_now_ns() just before raise(SIGKILL) */
    _Atomic int dead_pid;
} shared;

static shared *sh;

static mproc_executor *executor(unsigned workers)
{
    mproc_executor *ex;
    mproc_executor_opts o = {.kind = MPROC_PROCESSES, .workers = workers, .name = "bench"};
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

/* x -> x*x, int64. */
static int sq_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x *= x;
    return mproc_return(ctx, &x, sizeof x);
}

/* The worker's pid (to check which worker served a task). */
static int pid_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int pid = (int)getpid();
    return mproc_return(ctx, &pid, sizeof pid);
}

/* Dies as a task's worker can: SIGKILL, noting when and who. */
static int crash_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_store(&sh->dead_pid, (int)getpid());
    atomic_store(&sh->death_ns, bench_now_ns());
    raise(SIGKILL);
    return 0;
}

/* The sum of x*x for x in 0..n-1. */
static long long sum_sq(long n)
{
    return (long long)(n - 1) * n * (2 * n - 1) / 6;
}

static int64_t *iota(long n)
{
    int64_t *in = malloc((size_t)n * sizeof *in);
    if (in == NULL)
        bench_die("malloc", ENOMEM);
    for (long i = 0; i < n; i++)
        in[i] = i;
    return in;
}

/* ------------------------------------------------------------------ */
/* Python (bench/py_pexec.py)                                          */
/* ------------------------------------------------------------------ */

#define PY_MAX 4

typedef struct py_figs {
    int n;
    char name[PY_MAX][32];
    double v[PY_MAX];
} py_figs;

/*
 * Runs `py_pexec.py ARGS` and collects its "NAME VALUE" lines. Returns the
 * number of figures read (0 when python3 is missing or fails: a note says
 * why).
 */
static int python_run(const char *args, py_figs *out)
{
    out->n = 0;
    FILE *f = bench_python_open(BENCH_PY_SCRIPT, args);
    if (!f)
        return 0;
    char line[256];
    while (fgets(line, sizeof line, f) && out->n < PY_MAX) {
        double v;
        if (sscanf(line, "%31s %lf", out->name[out->n], &v) == 2 && v > 0)
            out->v[out->n++] = v;
    }
    int st = pclose(f);
    if (st != 0) {
        bench_note("python3: failed (exit status %#x)", st);
        out->n = 0;
    }
    return out->n;
}

/* The figure named `name`, or NaN. */
static double py_get(const py_figs *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->name[i], name) == 0)
            return p->v[i];
    return NAN;
}

/* value / anchor, NaN when the anchor is missing. */
static double ratio(double value, double anchor)
{
    return isnan(anchor) || anchor <= 0 ? NAN : value / anchor;
}

/* ------------------------------------------------------------------ */
/* 1. map x*x, default chunking                                        */
/* ------------------------------------------------------------------ */

typedef struct map_arg {
    mproc_executor *ex;
    const int64_t *in;
    long n;
    size_t chunksize;   /* 0: default */
    size_t result_size; /* 8: dense; 0: general mode */
} map_arg;

/* One run: millions of items per second, from the call to the checked sum. */
static double run_map(void *p)
{
    const map_arg *c = p;
    mproc_results *r;
    long long sum = 0;
    mproc_map_opts o = {.chunksize = c->chunksize, .result_size = c->result_size};

    int64_t t0 = bench_now_ns();
    CHECK(mproc_map(c->ex, sq_task, c->in, sizeof *c->in, (size_t)c->n, &o, &r), "mproc_map");
    if (c->result_size) {
        const int64_t *d = mproc_results_data(r, NULL);
        if (d == NULL)
            bench_die("mproc_results_data", errno);
        for (long i = 0; i < c->n; i++)
            sum += d[i];
    } else {
        for (long i = 0; i < c->n; i++) {
            mproc_item it;
            int64_t v;
            CHECK(mproc_results_get(r, (size_t)i, &it), "mproc_results_get");
            memcpy(&v, it.data, sizeof v);
            sum += v;
        }
    }
    int64_t t1 = bench_now_ns();
    mproc_results_destroy(r);
    if (sum != sum_sq(c->n))
        wrong("map x*x", sum, sum_sq(c->n));
    return (double)c->n / ((double)(t1 - t0) / 1e9) / 1e6;
}

static void case_map(void)
{
    long n = bench_scale(1000000, 200000);
    long npy = bench_scale(1000000, 200000), nppe = bench_scale(20000, 2000);
    int64_t *in = iota(n);
    mproc_executor *ex = executor((unsigned)ncpu);
    map_arg a[2] = {{ex, in, n, 0, 8}, {ex, in, n, 0, 0}};
    void *args[2] = {&a[0], &a[1]};
    double v[2];

    bench_section("1. x*x over %ld int64 with default chunking, %d worker processes "
                  "(M items/s, higher is better)", n, ncpu);
    bench_compare(2, run_map, args, v);
    bench_range q = bench_rounds(1, 0);
    mproc_executor_destroy(ex);

    char pyargs[128];
    py_figs py;
    snprintf(pyargs, sizeof pyargs, "map %ld %d %d %ld", npy, bench_cfg.runs, ncpu, nppe);
    python_run(pyargs, &py);
    double pool = py_get(&py, "pool_map") / 1e6, ppe = py_get(&py, "ppe_map") / 1e6;

    if (!isnan(pool))
        bench_figure("Python Pool.map", pool, "M/s", NULL, 0);
    if (!isnan(ppe))
        bench_figure("Python ProcessPoolExecutor.map (scaled)", ppe, "M/s", NULL, 0);
    double r_pool = ratio(v[0], pool), r_ppe = ratio(v[0], ppe);
    if (!isnan(pool))
        bench_figure("mproc_map, .result_size = 8", v[0], "M/s", "Pool.map", pool);
    else
        bench_figure("mproc_map, .result_size = 8", v[0], "M/s", NULL, 0);
    if (!isnan(ppe))
        bench_figure("mproc_map, .result_size = 8", v[0], "M/s", "PPE.map", ppe);
    double r_gen = bench_figure("mproc_map, general results", v[1], "M/s", "dense", v[0]);
    bench_note("timed: the map call and the sum of its results (checked); the pools "
               "(mproc's and Python's) are created and their workers up before timing");
    bench_note("default chunking: n / (4 x workers) items per chunk on both sides; "
               "Python: Pool.map on %ld items, ProcessPoolExecutor.map (chunksize=1) on "
               "%ld, as rates, median of %d runs", npy, nppe, bench_cfg.runs);

    bench_target("map x*x: mproc / Python Pool.map (throughput)", r_pool, BENCH_NO_RANGE,
                 BENCH_HIGHER, 50.0);
    bench_info("map x*x: mproc / Python ProcessPoolExecutor.map (throughput)", r_ppe,
               BENCH_NO_RANGE);
    bench_info("map x*x: general results / dense (throughput)", r_gen, q);
    free(in);
}

/* ------------------------------------------------------------------ */
/* 2. tiny tasks, one per message                                      */
/* ------------------------------------------------------------------ */

typedef struct tiny_arg {
    mproc_executor *ex;
    const int64_t *in;
    long n;
    int use_map;
    mproc_future **futs;
} tiny_arg;

/* One run: millions of tasks per second. */
static double run_tiny(void *p)
{
    const tiny_arg *c = p;
    long long sum = 0;

    if (c->use_map) {
        map_arg m = {c->ex, c->in, c->n, 1, 8};
        return run_map(&m);
    }
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < c->n; i++)
        CHECK(mproc_submit(c->ex, sq_task, &c->in[i], sizeof c->in[i], &c->futs[i]),
              "mproc_submit");
    for (long i = 0; i < c->n; i++) {
        int64_t v;
        future_value(c->futs[i], &v, sizeof v);
        sum += v;
        mproc_future_release(c->futs[i]);
    }
    int64_t t1 = bench_now_ns();
    if (sum != sum_sq(c->n))
        wrong("tiny tasks", sum, sum_sq(c->n));
    return (double)c->n / ((double)(t1 - t0) / 1e9) / 1e6;
}

static void case_tiny(void)
{
    long n = bench_scale(100000, 10000), npy = bench_scale(20000, 2000);
    int64_t *in = iota(n);
    mproc_future **futs = calloc((size_t)n, sizeof *futs);
    if (futs == NULL)
        bench_die("malloc", ENOMEM);
    mproc_executor *ex = executor((unsigned)ncpu);
    tiny_arg a[2] = {{ex, in, n, 0, futs}, {ex, in, n, 1, futs}};
    void *args[2] = {&a[0], &a[1]};
    double v[2];

    bench_section("2. %ld tiny tasks (x*x), one per message, %d worker processes "
                  "(M tasks/s, higher is better)", n, ncpu);
    bench_compare(2, run_tiny, args, v);
    bench_range q = bench_rounds(1, 0);
    mproc_executor_destroy(ex);

    char pyargs[128];
    py_figs py;
    snprintf(pyargs, sizeof pyargs, "cs1 %ld %d %d", npy, bench_cfg.runs, ncpu);
    python_run(pyargs, &py);
    double ppe = py_get(&py, "ppe_submit") / 1e6, pool = py_get(&py, "pool_map_cs1") / 1e6;

    if (!isnan(ppe))
        bench_figure("Python ProcessPoolExecutor.submit (scaled)", ppe, "M/s", NULL, 0);
    if (!isnan(pool))
        bench_figure("Python Pool.map, chunksize=1 (scaled)", pool, "M/s", NULL, 0);
    if (!isnan(ppe))
        bench_figure("mproc_submit + mproc_future_result", v[0], "M/s", "PPE.submit", ppe);
    else
        bench_figure("mproc_submit + mproc_future_result", v[0], "M/s", NULL, 0);
    if (!isnan(pool))
        bench_figure("mproc_map, chunksize 1", v[1], "M/s", "Pool.map cs=1", pool);
    else
        bench_figure("mproc_map, chunksize 1", v[1], "M/s", NULL, 0);
    bench_note("timed: submitting every task, then awaiting each result and summing "
               "(checked); map: the call and the sum. Pools are up before timing");
    bench_note("Python: %ld tasks per run, as rates, median of %d runs", npy,
               bench_cfg.runs);

    bench_target("chunksize 1: mproc submit / Python PPE.submit (throughput)",
                 ratio(v[0], ppe), BENCH_NO_RANGE, BENCH_HIGHER, 20.0);
    bench_target("chunksize 1: mproc_map / Python Pool.map (throughput)", ratio(v[1], pool),
                 BENCH_NO_RANGE, BENCH_HIGHER, 20.0);
    bench_info("chunksize 1: mproc_map / mproc submit (throughput)", v[1] / v[0], q);
    free(futs);
    free(in);
}

/* ------------------------------------------------------------------ */
/* 3. round trip on an idle pool                                       */
/* ------------------------------------------------------------------ */

#define MAX_RUNS_KEPT (BENCH_MAX_RUNS + 1)

typedef struct rtt_arg {
    mproc_executor *ex;
    long n;
    int64_t *lat;
    double p99[MAX_RUNS_KEPT]; /* per run, the warm-up's first */
    int runs;
} rtt_arg;

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One run: the median round trip (us); the p99 is kept in c->p99. */
static double run_rtt(void *p)
{
    rtt_arg *c = p;
    for (long i = -1; i < c->n; i++) { /* i = -1: untimed */
        int64_t x = i, v;
        int64_t t0 = bench_now_ns();
        mproc_future *f;
        CHECK(mproc_submit(c->ex, sq_task, &x, sizeof x, &f), "mproc_submit");
        future_value(f, &v, sizeof v);
        mproc_future_release(f);
        if (v != x * x)
            wrong("round trip", v, x * x);
        if (i >= 0)
            c->lat[i] = bench_now_ns() - t0;
    }
    qsort(c->lat, (size_t)c->n, sizeof c->lat[0], cmp_i64);
    if (c->runs < MAX_RUNS_KEPT)
        c->p99[c->runs++] = (double)c->lat[(c->n * 99) / 100] / 1e3;
    return (double)c->lat[c->n / 2] / 1e3;
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

/* Kept for case 5: the median round trip on an idle pool of 1 (us). */
static double rtt_pool1 = NAN;

static void case_rtt(void)
{
    long n = bench_scale(10000, 2000), npy = bench_scale(2000, 300);
    int64_t *lat = malloc(2 * (size_t)n * sizeof *lat);
    rtt_arg *a = calloc(2, sizeof *a);
    if (lat == NULL || a == NULL)
        bench_die("malloc", ENOMEM);
    a[0] = (rtt_arg){.ex = executor(1), .n = n, .lat = lat};
    a[1] = (rtt_arg){.ex = executor((unsigned)ncpu), .n = n, .lat = lat + n};
    void *args[2] = {&a[0], &a[1]};
    double v[2];

    bench_section("3. submit -> result round trip of one tiny task on an idle process "
                  "pool, one after another (us, lower is better)");
    bench_compare(2, run_rtt, args, v);
    mproc_executor_destroy(a[0].ex);
    mproc_executor_destroy(a[1].ex);
    rtt_pool1 = v[0];

    char pyargs[128];
    py_figs py;
    snprintf(pyargs, sizeof pyargs, "rtt %ld %d %d", npy, bench_cfg.runs, ncpu);
    python_run(pyargs, &py);
    double pm = py_get(&py, "ppe_rtt_median"), pp = py_get(&py, "ppe_rtt_p99");
    char name[96];

    if (!isnan(pm)) {
        snprintf(name, sizeof name, "Python PPE(%d) submit().result(), median", ncpu);
        bench_figure(name, pm, "us", NULL, 0);
        snprintf(name, sizeof name, "Python PPE(%d) submit().result(), p99", ncpu);
        bench_figure(name, pp, "us", NULL, 0);
    }
    double p1 = p99_of(&a[0]), pn = p99_of(&a[1]);
    bench_figure("mproc, 1 worker, median", v[0], "us", NULL, 0);
    bench_figure("mproc, 1 worker, p99", p1, "us", NULL, 0);
    snprintf(name, sizeof name, "mproc, %d workers, median", ncpu);
    double rm = bench_figure(name, v[1], "us", isnan(pm) ? NULL : "Python", pm);
    snprintf(name, sizeof name, "mproc, %d workers, p99", ncpu);
    double rp = bench_figure(name, pn, "us", isnan(pp) ? NULL : "Python", pp);
    bench_note("mproc: %ld round trips per run, Python: %ld; median of the runs' "
               "medians and of their p99s; pools up before timing", n, npy);

    snprintf(name, sizeof name, "round trip, pool of %d: mproc / Python PPE (median)",
             ncpu);
    bench_info(name, isnan(pm) ? NAN : rm, BENCH_NO_RANGE);
    snprintf(name, sizeof name, "round trip, pool of %d: mproc / Python PPE (p99)", ncpu);
    bench_info(name, isnan(pp) ? NAN : rp, BENCH_NO_RANGE);
    free(a);
    free(lat);
}

/* 4. CPU-bound speed-up: bench_speedup_case (speedup.c)              */
/* ------------------------------------------------------------------ */
/* 5. surviving a crash                                                */
/* ------------------------------------------------------------------ */

typedef struct crash_arg {
    mproc_executor *ex;
    long n;           /* crashes per run */
    int64_t *lat;     /* n: failure seen -> replacement's result */
    int64_t *death;   /* n: the worker's death -> replacement's result */
    double death_med[MAX_RUNS_KEPT];
    int runs;
} crash_arg;

/* One run: the median (us) over n crashes of the time from the crashed
 * task's failure to a new task's result, served by the replacement. */
static double run_crash(void *p)
{
    crash_arg *c = p;
    for (long i = 0; i < c->n; i++) {
        mproc_future *f;
        CHECK(mproc_submit(c->ex, crash_task, NULL, 0, &f), "mproc_submit");
        int rc = mproc_future_result(f, -1, NULL, NULL);
        mproc_future_release(f);
        if (rc != MPROC_EWORKERDIED)
            bench_die("crash task: expected MPROC_EWORKERDIED", rc);
        int64_t t0 = bench_now_ns();
        int pid;
        CHECK(mproc_submit(c->ex, pid_task, NULL, 0, &f), "mproc_submit");
        future_value(f, &pid, sizeof pid);
        int64_t t1 = bench_now_ns();
        mproc_future_release(f);
        if (pid == atomic_load(&sh->dead_pid))
            wrong("crash: the dead worker served", pid, -1);
        c->lat[i] = t1 - t0;
        c->death[i] = t1 - atomic_load(&sh->death_ns);
    }
    qsort(c->lat, (size_t)c->n, sizeof c->lat[0], cmp_i64);
    qsort(c->death, (size_t)c->n, sizeof c->death[0], cmp_i64);
    if (c->runs < MAX_RUNS_KEPT)
        c->death_med[c->runs++] = (double)c->death[c->n / 2] / 1e3;
    return (double)c->lat[c->n / 2] / 1e3;
}

static void case_crash(void)
{
    long n = bench_scale(40, 10), npy = bench_scale(10, 3);
    crash_arg *a = calloc(1, sizeof *a);
    int64_t *buf = malloc(2 * (size_t)n * sizeof *buf);
    if (a == NULL || buf == NULL)
        bench_die("malloc", ENOMEM);
    a->ex = executor(1);
    a->n = n;
    a->lat = buf;
    a->death = buf + n;

    bench_section("5. surviving a crash: a task SIGKILLs its worker, on a pool of 1 "
                  "(us, lower is better)");
    double v = bench_measure(run_crash, a);
    mproc_executor_destroy(a->ex);
    int k = a->runs - 1; /* the warm-up's left out */
    qsort(a->death_med + 1, (size_t)k, sizeof a->death_med[0], cmp_double);
    double dm = k % 2 ? a->death_med[1 + k / 2]
                      : (a->death_med[k / 2] + a->death_med[1 + k / 2]) / 2;

    char pyargs[128];
    py_figs py;
    snprintf(pyargs, sizeof pyargs, "crash %ld %d", npy, bench_cfg.runs);
    python_run(pyargs, &py);
    double pr = py_get(&py, "ppe_replace");

    if (!isnan(pr))
        bench_figure("Python: new PPE(1) + first result (the old one is broken)", pr, "us",
                     NULL, 0);
    bench_figure("mproc: failed future -> replacement's result", v, "us",
                 isnan(pr) ? NULL : "Python", pr);
    bench_figure("mproc: worker's death -> replacement's result", dm, "us", NULL, 0);
    if (!isnan(rtt_pool1))
        bench_figure("mproc: the same round trip without a crash (case 3)", rtt_pool1, "us",
                     NULL, 0);
    bench_note("%ld crashes per run, median; timed: from the crashed task's future "
               "failing with MPROC_EWORKERDIED to the result of a task submitted then "
               "(checked to come from a new pid)", n);
    bench_note("\"death\" starts just before the task's raise(SIGKILL) (a timestamp in "
               "shared memory) and includes noticing it; Python: %ld crashes per run",
               npy);
    bench_note("the future fails before the replacement is started, so how the time "
               "splits between the two depends on scheduling: the first figure varies "
               "(from a plain round trip to a process start), the second is steadier");

    bench_target("crash: failed future -> replacement serving (ms)", v / 1e3,
                 BENCH_NO_RANGE, BENCH_LOWER, 5.0);
    bench_target("crash: worker's death -> replacement serving (ms)", dm / 1e3,
                 BENCH_NO_RANGE, BENCH_LOWER, 5.0);
    bench_info("crash: mproc replacement / Python new pool (time)", ratio(v, pr),
               BENCH_NO_RANGE);
    free(buf);
    free(a);
}

/* ------------------------------------------------------------------ */
/* 6. a big result handed back                                         */
/* ------------------------------------------------------------------ */

#define BIG_MAX ((size_t)16 << 20)

typedef struct big_arg {
    mproc_executor *ex; /* NULL: the pipe child */
    size_t size;
    long n;             /* results per run */
    unsigned char *buf; /* BIG_MAX bytes: where a copy goes */
    int copy;           /* copy each mproc result out once more */
    int req, res;       /* the pipe child's request and result pipes */
} big_arg;

static int fill_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    uint64_t n;
    if (len != sizeof n)
        return -EINVAL;
    memcpy(&n, arg, sizeof n);
    unsigned char *p = mproc_result_buffer(ctx, (size_t)n);
    if (p == NULL)
        return -ENOMEM;
    memset(p, 1, (size_t)n);
    return 0;
}

/* What the caller does with a result, the same on every path: read one
 * byte of each page, and the last one. */
static void consume(const unsigned char *p, size_t n)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i += 4096)
        sum += p[i];
    sum += p[n - 1];
    if (sum != (n + 4095) / 4096 + 1)
        wrong("big result", (long long)sum, (long long)((n + 4095) / 4096 + 1));
}

static void full_read(int fd, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = read(fd, p, n);
        if (k <= 0)
            bench_die("read from the pipe child", k < 0 ? errno : EPIPE);
        p += k;
        n -= (size_t)k;
    }
}

/* The pipe child: for each size asked, fill that many bytes and write
 * them back. */
static void pipe_child(int req, int res, unsigned char *buf)
{
    uint64_t n;
    while (read(req, &n, sizeof n) == (ssize_t)sizeof n && n <= BIG_MAX) {
        memset(buf, 1, (size_t)n);
        for (size_t off = 0; off < n;) {
            ssize_t k = write(res, buf + off, (size_t)n - off);
            if (k <= 0)
                _exit(1);
            off += (size_t)k;
        }
    }
    _exit(0);
}

/* One run: microseconds per result. */
static double run_big(void *p)
{
    big_arg *c = p;
    uint64_t n = c->size;
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < c->n; i++) {
        if (c->ex == NULL) {
            if (write(c->req, &n, sizeof n) != (ssize_t)sizeof n)
                bench_die("write to the pipe child", errno);
            full_read(c->res, c->buf, c->size);
            consume(c->buf, c->size);
            continue;
        }
        mproc_future *f;
        const void *d;
        size_t len;
        CHECK(mproc_submit(c->ex, fill_task, &n, sizeof n, &f), "mproc_submit");
        CHECK(mproc_future_result(f, -1, &d, &len), "mproc_future_result");
        if (len != c->size)
            wrong("big result length", (long long)len, (long long)c->size);
        if (c->copy) {
            memcpy(c->buf, d, len);
            d = c->buf;
        }
        consume(d, len);
        mproc_future_release(f);
    }
    return (double)(bench_now_ns() - t0) / 1e3 / (double)c->n;
}

static void case_big(void)
{
    unsigned char *buf = malloc(BIG_MAX);
    int req[2], res[2];
    if (buf == NULL)
        bench_die("malloc", ENOMEM);
    memset(buf, 0, BIG_MAX); /* its pages are there before timing */
    if (pipe(req) != 0 || pipe(res) != 0)
        bench_die("pipe", errno);
    (void)fcntl(res[1], F_SETPIPE_SZ, 1 << 20); /* as large as allowed by default */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork", errno);
    if (pid == 0) {
        close(req[1]);
        close(res[0]);
        pipe_child(req[0], res[1], buf);
    }
    close(req[0]);
    close(res[1]);
    mproc_executor *ex = executor(1);
    static const size_t sizes[] = { (size_t)1 << 20, BIG_MAX };
    for (int k = 0; k < 2; k++) {
        size_t size = sizes[k];
        long n = size > ((size_t)1 << 20) ? bench_scale(50, 5) : bench_scale(400, 20);
        big_arg a[3] = {
            { .ex = ex, .size = size, .n = n, .buf = buf },
            { .ex = ex, .size = size, .n = n, .buf = buf, .copy = 1 },
            { .ex = NULL, .size = size, .n = n, .buf = buf, .req = req[1], .res = res[0] },
        };
        void *args[3] = { &a[0], &a[1], &a[2] };
        double v[3];
        bench_section("6.%d a %zu MiB result handed back, one task after another on a pool "
                      "of 1 (us per result, lower is better)", k + 1, size >> 20);
        bench_compare(3, run_big, args, v);
        bench_range q_copy = bench_rounds(0, 1), q_pipe = bench_rounds(0, 2);

        char pyargs[128], name[96];
        py_figs py;
        long npy = size > ((size_t)1 << 20) ? bench_scale(20, 3) : bench_scale(100, 10);
        snprintf(pyargs, sizeof pyargs, "big %ld %d %zu", npy, bench_cfg.runs, size);
        python_run(pyargs, &py);
        double pb = py_get(&py, "ppe_big");
        if (!isnan(pb))
            bench_figure("Python PPE(1) submit().result() of bytes", pb, "us", NULL, 0);
        bench_figure("pipe(2) from a forked child", v[2], "us", NULL, 0);
        bench_figure("mproc, result copied out once more", v[1], "us", NULL, 0);
        double rp = bench_figure("mproc, read in place", v[0], "us", "pipe", v[2]);
        bench_figure("mproc, read in place", v[0], "us", "copy", v[1]);
        double ry = isnan(pb) ? NAN : bench_figure("mproc, read in place", v[0], "us", "Python", pb);
        if (k == 0)
            bench_note("the worker memsets the result (the pipe child memsets its buffer, "
                       "then writes it); the caller reads a byte of every page");
        snprintf(name, sizeof name, "%zu MiB result: mproc / pipe(2) (time)", size >> 20);
        bench_info(name, rp, q_pipe);
        snprintf(name, sizeof name, "%zu MiB result: mproc / mproc + a copy (time)", size >> 20);
        bench_info(name, v[0] / v[1], q_copy);
        snprintf(name, sizeof name, "%zu MiB result: mproc / Python PPE (time)", size >> 20);
        bench_info(name, ry, BENCH_NO_RANGE);
    }
    mproc_executor_destroy(ex);
    close(req[1]); /* the child reads EOF and leaves */
    close(res[0]);
    waitpid(pid, NULL, 0);
    free(buf);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    /* Before the fork server, so that every worker shares it; and the
     * server itself before any thread exists. */
    sh = mproc_shared_calloc(sizeof *sh);
    if (sh == NULL)
        bench_die("mproc_shared_calloc", errno);
    CHECK(mproc_forkserver_start(), "mproc_forkserver_start");

    bench_init(argc, argv,
               "bench_pexec: mproc's process executor against Python's multiprocessing.Pool "
               "and ProcessPoolExecutor",
               "cases: 1 map x*x (default chunking), 2 tiny tasks one per message,\n"
               "       3 round-trip latency, 4 CPU-bound speed-up (1 vs 2 workers),\n"
               "       5 surviving a crash, 6 big results handed back\n");
    ncpu = cpus_allowed();
    fprintf(bench_cfg.json ? stderr : stdout,
            "workers: %d processes (the CPUs this process may use), started by the fork "
            "server\n", ncpu);

    if (bench_case(1))
        case_map();
    if (bench_case(2))
        case_tiny();
    if (bench_case(3))
        case_rtt();
    if (bench_case(4))
        bench_speedup_case(4, MPROC_PROCESSES, "mproc processes", ncpu, 5);
    if (bench_case(5))
        case_crash();
    if (bench_case(6))
        case_big();
    return bench_finish();
}
