/*
 * tools/bench.c -- `mproc bench`: the lesson of the notes on CPU-bound and
 * I/O-bound work (seed 000, "I/O-bound, CPU-bound"; seed 001, "La Ley de
 * Amdahl"), measured on the user's machine.
 *
 * Two workloads, each a batch of identical, independent tasks:
 *   cpu-bound  an arithmetic loop of ~5 ms (xorshift64 steps, calibrated
 *              at start-up); it needs a core all the time it runs;
 *   io-bound   mproc_sleep_ms(20): the task blocks, as on a network or
 *              disk read, and needs no core while it waits.
 * Each batch runs once sequentially (a plain loop in the calling thread),
 * then on a thread executor of each size in a list: 1, 2, ... CPUs, and
 * 2 x CPUs (more threads than cores do not help computing), for
 * cpu-bound; 1, 2, 4, ... 64 for io-bound. A run is timed from its first
 * submit to its last result collected; starting and stopping the executor
 * are not timed. The whole list is measured twice (once with --quick),
 * interleaved, and each figure is the fastest of its passes: machines are
 * noisy, and interference only ever makes a run slower. Speed-up =
 * sequential time / run time.
 *
 * Every task returns a 64-bit value; the values of a run are summed and
 * must equal the sequential sum, so a lost or repeated task is reported as
 * an error, never as a speed-up.
 *
 * Amdahl's law is fitted (amdahl.c) to the cpu-bound runs with at most
 * one worker per CPU. Output: a table per workload on stdout, or one JSON
 * document with --json; with --svg FILE also a chart of the cpu-bound
 * speed-ups, the fitted curve and the ideal line (svg.c). Progress goes
 * to stderr only when stderr is a terminal (cli.c). All of it runs on
 * the command's main thread; the tasks run on the executors' workers and
 * share nothing but their (read-only) task descriptions.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "tools.h"

#define MAX_RUNS 32      /* worker counts per workload */
#define MAX_WORKERS 4096 /* mproc_executor_create's limit */

/* Sizes: the sequential cpu-bound batch takes CPU_TOTAL_MS, in tasks of
 * ~5 ms (~4 ms quick). Each worker gets at least TASKS_PER_WORKER tasks,
 * so uneven shares stay small. Every figure is the best of ROUNDS passes.
 * A full run on 2 CPUs: 2 x (1.5 + 1.5 + 0.75 + 0.75) s of cpu-bound and
 * 2 x (1.3 + 1.3 + 0.65 + 0.33 + ...) s of io-bound, about 17 s. */
#define ROUNDS_FULL 2
#define ROUNDS_QUICK 1
#define CPU_TOTAL_MS_FULL 1500
#define CPU_TOTAL_MS_QUICK 250
#define CPU_TASKS_FULL 300
#define CPU_TASKS_QUICK 64
#define TASKS_PER_WORKER 16
#define CALIBRATE_MS_FULL 50
#define CALIBRATE_MS_QUICK 10
#define IO_TASKS 64
#define IO_SLEEP_MS_FULL 20
#define IO_SLEEP_MS_QUICK 5
#define IO_MAX_WORKERS 64

struct bench_opts {
    bool quick;
    bool json;
    unsigned max_workers; /* --workers; 0: the defaults */
    const char *svg;      /* --svg FILE, or NULL */
};

/* One task: work(param, seed). Tasks are submitted by reference; the
 * array of them outlives every executor that runs them. */
struct task {
    uint64_t (*work)(uint64_t param, uint64_t seed);
    uint64_t param; /* loop steps, or milliseconds to sleep */
    uint64_t seed;
};

struct run {
    unsigned workers;
    double seconds;
    double speedup;
    bool oversubscribed; /* more workers than CPUs */
};

struct workload {
    const char *name;  /* "cpu-bound", "io-bound" (JSON) */
    const char *title; /* "CPU-bound", "I/O-bound" (tables) */
    const char *what;  /* what one task does, for the tables */
    struct task *tasks;
    size_t ntasks;
    double seq_seconds;
    uint64_t checksum; /* sum of the sequential results */
    struct run runs[MAX_RUNS];
    size_t nruns;
};

struct amdahl {
    bool fitted;
    unsigned max_n; /* largest worker count in the fit */
    double p;
    double bound; /* 1/(1-p); INFINITY for p = 1 */
};

/* Report a failure on stderr, below the progress line. */
__attribute__((format(printf, 1, 2))) static void bench_error(const char *fmt, ...)
{
    va_list ap;
    mproc__progress_clear();
    fputs("mproc bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ------------------------------------------------------------------ */
/* the work                                                            */
/* ------------------------------------------------------------------ */

/* io-bound: block for `ms` milliseconds. */
static uint64_t wait_io(uint64_t ms, uint64_t seed)
{
    mproc_sleep_ms((int64_t)ms);
    return seed;
}

static int task_main(const void *arg, size_t len, mproc_ctx *ctx)
{
    const struct task *t = arg;
    if (len != sizeof *t)
        return mproc_fail(ctx, -EINVAL, "task description of %zu bytes", len);
    uint64_t r = t->work(t->param, t->seed);
    return mproc_return(ctx, &r, sizeof r);
}

/* ------------------------------------------------------------------ */
/* planning: worker counts and batches                                 */
/* ------------------------------------------------------------------ */

/* 1, 2, 4, ... below max, then max. Returns how many. */
static size_t counts_doubling(unsigned max, unsigned *out)
{
    size_t n = 0;
    for (unsigned w = 1; w < max; w *= 2)
        out[n++] = w;
    out[n++] = max;
    return n;
}

/* 1, 2, 3, ... max when max <= 8; else as counts_doubling. */
static size_t counts_dense(unsigned max, unsigned *out)
{
    if (max > 8)
        return counts_doubling(max, out);
    for (unsigned w = 1; w <= max; w++)
        out[w - 1] = w;
    return max;
}

/* cpu-bound worker counts: 1 .. CPUs, then 2 x CPUs; or 1 .. --workers. */
static size_t counts_cpu(const struct bench_opts *o, unsigned cpus, unsigned *out)
{
    if (o->max_workers != 0)
        return counts_dense(o->max_workers, out);
    size_t n = counts_dense(cpus, out);
    if (2 * cpus <= MAX_WORKERS)
        out[n++] = 2 * cpus;
    return n;
}

/* io-bound worker counts: 1, 2, 4, ... 64 (or the CPUs, if more), or up
 * to --workers. */
static size_t counts_io(const struct bench_opts *o, unsigned cpus, unsigned *out)
{
    unsigned max = o->max_workers;
    if (max == 0)
        max = cpus > IO_MAX_WORKERS ? cpus : IO_MAX_WORKERS;
    return counts_doubling(max, out);
}

static int out_of_memory(void)
{
    bench_error("%s", mproc_strerror(-ENOMEM));
    return -ENOMEM;
}

/* Allocate w's ntasks tasks, each work(param, i + 1). */
static int make_tasks(struct workload *w, size_t ntasks,
                      uint64_t (*work)(uint64_t, uint64_t), uint64_t param)
{
    w->tasks = calloc(ntasks, sizeof *w->tasks);
    if (w->tasks == NULL)
        return out_of_memory();
    w->ntasks = ntasks;
    for (size_t i = 0; i < ntasks; i++)
        w->tasks[i] = (struct task){ .work = work, .param = param, .seed = i + 1 };
    return 0;
}

/* The cpu-bound batch, for worker counts up to `top`. */
static int plan_cpu(struct workload *w, const struct bench_opts *o, unsigned top)
{
    size_t ntasks = o->quick ? CPU_TASKS_QUICK : CPU_TASKS_FULL;
    if (ntasks < (size_t)TASKS_PER_WORKER * top)
        ntasks = (size_t)TASKS_PER_WORKER * top;
    mproc__progress("mproc bench: calibrating the arithmetic loop");
    double rate = mproc__spin_rate(o->quick ? CALIBRATE_MS_QUICK : CALIBRATE_MS_FULL);
    double total_us = (o->quick ? CPU_TOTAL_MS_QUICK : CPU_TOTAL_MS_FULL) * 1e3;
    double steps = rate * total_us / (double)ntasks;
    *w = (struct workload){ .name = "cpu-bound", .title = "CPU-bound",
                            .what = "an arithmetic loop" };
    return make_tasks(w, ntasks, mproc__spin, steps < 1.0 ? 1 : (uint64_t)steps);
}

/* The io-bound batch, for worker counts up to `top`: one task per worker
 * at least, so the ideal speed-up is the worker count. */
static int plan_io(struct workload *w, const struct bench_opts *o, unsigned top)
{
    size_t ntasks = top > IO_TASKS ? top : IO_TASKS;
    *w = (struct workload){ .name = "io-bound", .title = "I/O-bound",
                            .what = "a blocking wait (sleep)" };
    return make_tasks(w, ntasks, wait_io, o->quick ? IO_SLEEP_MS_QUICK : IO_SLEEP_MS_FULL);
}

/* ------------------------------------------------------------------ */
/* measuring                                                           */
/* ------------------------------------------------------------------ */

static double seconds_since(int64_t t0)
{
    return (double)(mproc_now_ns() - t0) / 1e9;
}

/* One sequential pass over w's tasks, keeping the fastest time. */
static void run_sequential(struct workload *w)
{
    uint64_t sum = 0;
    int64_t t0 = mproc_now_ns();
    for (size_t i = 0; i < w->ntasks; i++)
        sum += w->tasks[i].work(w->tasks[i].param, w->tasks[i].seed);
    double seconds = seconds_since(t0);
    if (seconds < w->seq_seconds)
        w->seq_seconds = seconds;
    w->checksum = sum;
}

/* Submit every task of w; futures go to fs. Returns how many were
 * submitted; *rc is 0 or the error that stopped submitting. */
static size_t submit_all(mproc_executor *ex, const struct workload *w,
                         mproc_future **fs, int *rc)
{
    size_t i;
    *rc = 0;
    for (i = 0; i < w->ntasks; i++) {
        *rc = mproc_submit(ex, task_main, &w->tasks[i], sizeof w->tasks[i], &fs[i]);
        if (*rc < 0)
            break;
    }
    return i;
}

/* Wait for future i and add its result to *sum. On failure, says why on
 * stderr when `report` is set. */
static int collect_one(mproc_future *f, size_t i, uint64_t *sum, bool report)
{
    const void *data = NULL;
    size_t len = 0;
    int rc = mproc_future_result(f, -1, &data, &len);
    if (rc < 0) {
        const char *msg = "";
        if (mproc_future_error(f, NULL, &msg) < 0 || msg == NULL)
            msg = "";
        if (report)
            bench_error("task %zu failed: %s%s%s", i, mproc_strerror(rc),
                        *msg != '\0' ? ": " : "", msg);
        return rc;
    }
    if (len != sizeof(uint64_t)) {
        if (report)
            bench_error("task %zu returned %zu bytes, not %zu", i, len, sizeof(uint64_t));
        return -EPROTO;
    }
    uint64_t v;
    memcpy(&v, data, sizeof v);
    *sum += v;
    return 0;
}

/* Collect and release fs[0..n). Returns 0 or the first failure (the only
 * one reported). */
static int collect_all(mproc_future **fs, size_t n, uint64_t *sum)
{
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = collect_one(fs[i], i, sum, first == 0);
        if (rc < 0 && first == 0)
            first = rc;
        mproc_future_release(fs[i]);
    }
    return first;
}

/* Run w's batch on an executor of `workers` threads: *seconds from the
 * first submit to the last result, *sum of the results. fs has room for
 * every task's future. Failures are reported on stderr. */
static int run_pool(const struct workload *w, unsigned workers,
                    mproc_future **fs, double *seconds, uint64_t *sum)
{
    mproc_executor *ex = NULL;
    int rc = mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .workers = workers, .name = "bench" });
    if (rc < 0) {
        bench_error("cannot start a thread executor with %u worker%s: %s", workers,
                    workers == 1 ? "" : "s", mproc_strerror(rc));
        return rc;
    }
    int submit_rc;
    int64_t t0 = mproc_now_ns();
    size_t n = submit_all(ex, w, fs, &submit_rc);
    int collect_rc = collect_all(fs, n, sum);
    *seconds = seconds_since(t0);
    mproc_executor_destroy(ex);
    if (submit_rc < 0) {
        bench_error("submitting task %zu to %u worker%s failed: %s", n, workers,
                    workers == 1 ? "" : "s", mproc_strerror(submit_rc));
        return submit_rc;
    }
    return collect_rc;
}

/* One pass of w on r->workers threads, keeping the fastest time in r. */
static int measure_one(const struct workload *w, struct run *r, mproc_future **fs)
{
    double seconds = 0.0;
    uint64_t sum = 0;
    int rc = run_pool(w, r->workers, fs, &seconds, &sum);
    if (rc < 0)
        return rc;
    if (sum != w->checksum) {
        bench_error("%s on %u workers: results add up to %016" PRIx64
                    ", sequentially to %016" PRIx64 " (a task was lost or run twice)",
                    w->name, r->workers, sum, w->checksum);
        return -EPROTO;
    }
    if (seconds < r->seconds)
        r->seconds = seconds;
    return 0;
}

/* One round: w sequentially, then on each worker count. */
static int measure_round(struct workload *w, unsigned round, unsigned rounds,
                         mproc_future **fs)
{
    mproc__progress("mproc bench: %s, round %u of %u, sequential", w->name, round, rounds);
    run_sequential(w);
    for (size_t i = 0; i < w->nruns; i++) {
        unsigned workers = w->runs[i].workers;
        mproc__progress("mproc bench: %s, round %u of %u, %u worker%s", w->name, round,
                        rounds, workers, workers == 1 ? "" : "s");
        int rc = measure_one(w, &w->runs[i], fs);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Measure w sequentially and on each of counts[0..n) workers, `rounds`
 * times with the runs interleaved, so a burst of load elsewhere on the
 * machine hits one pass of each, not all passes of one; every figure is
 * the fastest of its passes. */
static int measure(struct workload *w, const unsigned *counts, size_t n, unsigned cpus,
                   unsigned rounds)
{
    mproc_future **fs = calloc(w->ntasks, sizeof *fs);
    if (fs == NULL)
        return out_of_memory();
    w->seq_seconds = INFINITY;
    w->nruns = n;
    for (size_t i = 0; i < n; i++)
        w->runs[i] = (struct run){ .workers = counts[i], .seconds = INFINITY,
                                   .oversubscribed = counts[i] > cpus };
    int rc = 0;
    for (unsigned r = 1; r <= rounds && rc == 0; r++)
        rc = measure_round(w, r, rounds, fs);
    mproc__progress_clear();
    free(fs);
    for (size_t i = 0; i < n; i++)
        w->runs[i].speedup = w->seq_seconds / w->runs[i].seconds;
    return rc;
}

/* Fit Amdahl's law to the runs with at most one worker per CPU. */
static struct amdahl fit_amdahl(const struct workload *w)
{
    double n[MAX_RUNS], s[MAX_RUNS];
    size_t k = 0;
    struct amdahl a = { .fitted = false, .max_n = 0, .p = NAN, .bound = NAN };
    for (size_t i = 0; i < w->nruns; i++) {
        if (w->runs[i].oversubscribed)
            continue;
        n[k] = w->runs[i].workers;
        s[k] = w->runs[i].speedup;
        a.max_n = w->runs[i].workers;
        k++;
    }
    if (mproc__amdahl_fit(n, s, k, &a.p) == 0) {
        a.fitted = true;
        a.bound = mproc__amdahl_bound(a.p);
    }
    return a;
}

/* ------------------------------------------------------------------ */
/* tables                                                              */
/* ------------------------------------------------------------------ */

static unsigned rounds_of(const struct bench_opts *o)
{
    return o->quick ? ROUNDS_QUICK : ROUNDS_FULL;
}

static void print_header(const struct bench_opts *o, unsigned cpus)
{
    unsigned rounds = rounds_of(o);
    printf("mproc bench%s: CPU-bound and I/O-bound tasks on thread executors, %u CPU%s\n",
           o->quick ? " --quick" : "", cpus, cpus == 1 ? "" : "s");
    printf("time: first submit to last result");
    if (rounds > 1)
        printf(", best of %u rounds", rounds);
    printf("; speed-up: sequential time / time\n");
}

static void print_table_head(const struct workload *w, const char *last_column)
{
    printf("\n%s: %zu tasks, each %s of ~%.1f ms (%.2f s one after another)\n",
           w->title, w->ntasks, w->what, w->seq_seconds * 1e3 / (double)w->ntasks,
           w->seq_seconds);
    printf("  %-10s %11s %9s  %s\n", "workers", "time", "speed-up", last_column);
    printf("  %-10s %9.3f s %8.2fx\n", "sequential", w->seq_seconds, 1.0);
}

static void print_row(const struct run *r, const char *last)
{
    char label[16];
    snprintf(label, sizeof label, "%u%s", r->workers, r->oversubscribed ? "*" : "");
    printf("  %-10s %9.3f s %8.2fx  %s\n", label, r->seconds, r->speedup, last);
}

/* The best speed-up among the runs with at most one worker per CPU. */
static const struct run *best_in_cores(const struct workload *w)
{
    const struct run *best = NULL;
    for (size_t i = 0; i < w->nruns; i++)
        if (!w->runs[i].oversubscribed && (best == NULL || w->runs[i].speedup > best->speedup))
            best = &w->runs[i];
    return best;
}

static void print_amdahl(const struct amdahl *a, unsigned cpus)
{
    if (!a->fitted && cpus < 2) {
        printf("  Amdahl's law: P = ? (not fitted: it needs runs on 2 or more CPUs,\n"
               "  and this process may use only 1)\n");
        return;
    }
    if (!a->fitted) {
        printf("  Amdahl's law: P = ? (not fitted: it needs runs with 2 or more\n"
               "  workers; try --workers %u)\n", cpus);
        return;
    }
    printf("  Amdahl's law 1/S = (1-P) + P/N, fitted to the runs with 1-%u workers:\n",
           a->max_n);
    printf("  P = %.3f (the parallel fraction; 1-P = %.3f runs as if sequential)\n",
           a->p, 1.0 - a->p);
    if (isfinite(a->bound))
        printf("  bound: with P = %.3f no number of cores beats 1/(1-P) = %.1fx\n",
               a->p, a->bound);
    else
        printf("  bound: none seen; these runs show no sequential part (P = 1), so\n"
               "  1/(1-P) is unlimited here (more cores would reveal one)\n");
}

/* What the runs with more workers than CPUs showed. */
static void print_oversubscribed(const struct workload *w, unsigned cpus)
{
    const struct run *best = best_in_cores(w);
    const struct run *last = &w->runs[w->nruns - 1];
    if (!last->oversubscribed || best == NULL)
        return;
    printf("  * more workers than CPUs: left out of the fit.\n");
    printf("  %u workers on %u CPU%s: %.2fx, against %.2fx with %u: ", last->workers, cpus,
           cpus == 1 ? "" : "s", last->speedup, best->speedup, best->workers);
    if (last->speedup <= best->speedup * 1.1)
        printf("threads beyond the cores\n"
               "  only take turns on them; computing needs a core.\n");
    else
        printf("more than the cores should give\n"
               "  (was the machine busy during the smaller runs?)\n");
}

static void print_cpu(const struct workload *w, const struct amdahl *a, unsigned cpus)
{
    print_table_head(w, "Amdahl fit");
    for (size_t i = 0; i < w->nruns; i++) {
        const struct run *r = &w->runs[i];
        char fit[32] = "";
        if (a->fitted && !r->oversubscribed)
            snprintf(fit, sizeof fit, "%8.2fx", mproc__amdahl_speedup(a->p, r->workers));
        print_row(r, fit);
    }
    print_amdahl(a, cpus);
    print_oversubscribed(w, cpus);
}

static unsigned ideal_io(const struct workload *w, unsigned workers)
{
    return workers < w->ntasks ? workers : (unsigned)w->ntasks;
}

/* The fastest run. */
static const struct run *best_run(const struct workload *w)
{
    const struct run *best = &w->runs[0];
    for (size_t i = 1; i < w->nruns; i++)
        if (w->runs[i].speedup > best->speedup)
            best = &w->runs[i];
    return best;
}

/* What the io-bound runs showed: the best speed-up against the CPUs, and
 * whether the runs with the most workers still gained. */
static void print_io_verdict(const struct workload *w, unsigned cpus)
{
    const struct run *best = best_run(w), *last = &w->runs[w->nruns - 1];
    unsigned ideal = ideal_io(w, best->workers);
    printf("  best: %.1fx with %u workers on %u CPU%s (%.0f%% of the ideal %ux): ",
           best->speedup, best->workers, cpus, cpus == 1 ? "" : "s",
           100.0 * best->speedup / ideal, ideal);
    if (best->speedup > (double)cpus)
        printf("a waiting\n  thread needs no core, so threads speed up I/O far beyond the "
               "core count.\n");
    else
        printf("no more than\n  the CPUs this time (a busy machine? waiting threads need "
               "no core).\n");
    if (last != best && last->speedup < 0.9 * best->speedup)
        printf("  with %u workers: %.1fx (%.0f%% of the ideal %ux): beyond %u workers this\n"
               "  executor stopped gaining.\n",
               last->workers, last->speedup,
               100.0 * last->speedup / ideal_io(w, last->workers), ideal_io(w, last->workers),
               best->workers);
}

static void print_io(const struct workload *w, unsigned cpus)
{
    print_table_head(w, "  ideal");
    for (size_t i = 0; i < w->nruns; i++) {
        char ideal[32];
        snprintf(ideal, sizeof ideal, "%6ux", ideal_io(w, w->runs[i].workers));
        print_row(&w->runs[i], ideal);
    }
    print_io_verdict(w, cpus);
}

/* ------------------------------------------------------------------ */
/* JSON                                                                */
/* ------------------------------------------------------------------ */

/* A number, or null for infinities and NaN (JSON has neither). */
static void json_number(double v)
{
    if (isfinite(v))
        printf("%.6g", v);
    else
        fputs("null", stdout);
}

static void json_runs(const struct workload *w)
{
    printf("      \"runs\": [\n");
    for (size_t i = 0; i < w->nruns; i++) {
        const struct run *r = &w->runs[i];
        printf("        { \"workers\": %u, \"time_s\": ", r->workers);
        json_number(r->seconds);
        printf(", \"speedup\": ");
        json_number(r->speedup);
        printf(", \"more_workers_than_cpus\": %s }%s\n", r->oversubscribed ? "true" : "false",
               i + 1 < w->nruns ? "," : "");
    }
    printf("      ]");
}

static void json_workload(const struct workload *w, const struct amdahl *a, bool last)
{
    printf("    {\n      \"name\": \"%s\",\n      \"tasks\": %zu,\n", w->name, w->ntasks);
    printf("      \"task_ms\": ");
    json_number(w->seq_seconds * 1e3 / (double)w->ntasks);
    printf(",\n      \"sequential_s\": ");
    json_number(w->seq_seconds);
    printf(",\n");
    json_runs(w);
    if (a != NULL) {
        printf(",\n      \"amdahl\": { \"p\": ");
        json_number(a->fitted ? a->p : NAN);
        printf(", \"bound\": ");
        json_number(a->fitted ? a->bound : NAN);
        printf(", \"max_workers_fitted\": %u }", a->max_n);
    }
    printf("\n    }%s\n", last ? "" : ",");
}

static void print_json(const struct bench_opts *o, unsigned cpus, const struct workload *cpu,
                       const struct amdahl *a, const struct workload *io)
{
    printf("{\n  \"command\": \"bench\",\n  \"version\": \"%d.%d.%d\",\n", MPROC_VERSION_MAJOR,
           MPROC_VERSION_MINOR, MPROC_VERSION_PATCH);
    printf("  \"quick\": %s,\n  \"rounds\": %u,\n  \"cpus\": %u,\n  \"workloads\": [\n",
           o->quick ? "true" : "false", rounds_of(o), cpus);
    json_workload(cpu, a, false);
    json_workload(io, NULL, true);
    printf("  ]\n}\n");
}

/* ------------------------------------------------------------------ */
/* command line                                                        */
/* ------------------------------------------------------------------ */

void mproc__bench_usage(FILE *out)
{
    fputs(
        "usage: mproc bench [--quick] [--json] [--workers N] [--svg FILE]\n"
        "\n"
        "Measures on this machine the lesson of the notes on CPU-bound and\n"
        "I/O-bound work. Two batches of tasks run one after another in the\n"
        "calling thread, then on thread executors of growing size:\n"
        "  CPU-bound  300 tasks of ~5 ms of arithmetic, on 1, 2, ... CPUs workers\n"
        "             and on 2 x CPUs (more threads than cores do not help);\n"
        "  I/O-bound  64 tasks that each block (sleep) 20 ms, on 1, 2, 4, ... 64\n"
        "             workers (waiting threads need no core).\n"
        "For each run it prints the time (the best of two rounds) and the\n"
        "speed-up over the sequential loop. It fits Amdahl's law\n"
        "1/S = (1-P) + P/N to the CPU-bound speed-ups (least squares) and states\n"
        "the bound 1/(1-P) that no number of cores can beat. A full run takes\n"
        "about 15-20 s on 2 CPUs.\n"
        "\n"
        "options:\n"
        "  --quick      smaller batches and one round (under 3 s), for tests and CI\n"
        "  --json       print one JSON document on stdout instead of the tables\n"
        "  --workers N  largest worker count, for both batches (1-4096); the\n"
        "               default is the CPU count (then 2 x CPUs) for CPU-bound,\n"
        "               64 for I/O-bound\n"
        "  --svg FILE   also write a chart of the CPU-bound speed-ups, the fitted\n"
        "               Amdahl curve and the ideal line to FILE (SVG)\n"
        "  -h, --help   print this help\n"
        "\n"
        "While it runs, a progress line is shown on stderr if stderr is a\n"
        "terminal. Exit status: 0 done, 1 a run failed (an executor could not\n"
        "start, a task failed) or the chart could not be written, 2 bad usage.\n",
        out);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "mproc bench: %s '%s' (see 'mproc help bench')\n", what, arg);
    return MPROC_TOOL_USAGE;
}

/* The value of --workers, from "--workers=N" or the next argument. */
static int parse_workers(int argc, char **argv, int *i, unsigned *out)
{
    const char *a = argv[*i];
    const char *v = NULL;
    if (a[strlen("--workers")] == '=')
        v = a + strlen("--workers=");
    else if (*i + 1 < argc)
        v = argv[++*i];
    if (v == NULL)
        return usage_error("a number must follow", a);
    if (mproc__parse_count(v, MAX_WORKERS, out) < 0)
        return usage_error("--workers takes a whole number from 1 to 4096, not", v);
    return 0;
}

/* The value of --svg, from "--svg=FILE" or the next argument. */
static int parse_svg(int argc, char **argv, int *i, const char **out)
{
    const char *a = argv[*i];
    const char *v = NULL;
    if (a[strlen("--svg")] == '=')
        v = a + strlen("--svg=");
    else if (*i + 1 < argc)
        v = argv[++*i];
    if (v == NULL)
        return usage_error("a file name must follow", a);
    if (*v == '\0')
        return usage_error("--svg needs a file name, not", v);
    *out = v;
    return 0;
}

/* Parse argv[1..argc) into *o. Returns 0, 1 for --help, or
 * MPROC_TOOL_USAGE (message printed). */
static int parse_opts(int argc, char **argv, struct bench_opts *o)
{
    bool help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = 0;
        if (strcmp(a, "--quick") == 0)
            o->quick = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            help = true;
        else if (strcmp(a, "--workers") == 0 || strncmp(a, "--workers=", 10) == 0)
            rc = parse_workers(argc, argv, &i, &o->max_workers);
        else if (strcmp(a, "--svg") == 0 || strncmp(a, "--svg=", 6) == 0)
            rc = parse_svg(argc, argv, &i, &o->svg);
        else
            rc = usage_error(a[0] == '-' ? "unknown option" : "unexpected argument", a);
        if (rc != 0)
            return rc;
    }
    return help ? 1 : 0;
}

/* Plan, measure and (without --json) print the cpu-bound workload. */
static int bench_cpu(struct workload *w, struct amdahl *a, const struct bench_opts *o,
                     unsigned cpus)
{
    unsigned counts[MAX_RUNS];
    size_t n = counts_cpu(o, cpus, counts);
    int rc = plan_cpu(w, o, counts[n - 1]);
    if (rc == 0)
        rc = measure(w, counts, n, cpus, rounds_of(o));
    if (rc < 0)
        return rc;
    *a = fit_amdahl(w);
    if (!o->json) {
        print_cpu(w, a, cpus);
        fflush(stdout);
    }
    return 0;
}

/* Plan, measure and (without --json) print the io-bound workload. */
static int bench_io(struct workload *w, const struct bench_opts *o, unsigned cpus)
{
    unsigned counts[MAX_RUNS];
    size_t n = counts_io(o, cpus, counts);
    int rc = plan_io(w, o, counts[n - 1]);
    if (rc == 0)
        rc = measure(w, counts, n, cpus, rounds_of(o));
    if (rc < 0)
        return rc;
    if (!o->json) {
        print_io(w, cpus);
        fflush(stdout);
    }
    return 0;
}

/* The chart of --svg: the cpu-bound speed-ups against the worker count,
 * the fitted Amdahl curve (when there is a fit) and the ideal line, each
 * at the worker counts measured. */
static int write_chart(const char *path, const struct workload *w, const struct amdahl *a,
                       unsigned cpus)
{
    double n[MAX_RUNS], measured[MAX_RUNS], fitted[MAX_RUNS];
    for (size_t i = 0; i < w->nruns; i++) {
        n[i] = w->runs[i].workers;
        measured[i] = w->runs[i].speedup;
        fitted[i] = a->fitted ? mproc__amdahl_speedup(a->p, n[i]) : NAN;
    }
    mproc__svg_series series[] = {
        { .name = "measured speed-up", .x = n, .y = measured, .n = w->nruns, .markers = true },
        { .name = "ideal (N x)", .x = n, .y = n, .n = w->nruns,
          .style = MPROC__SVG_DOTTED },
        { .name = "fitted Amdahl curve", .x = n, .y = fitted, .n = w->nruns,
          .style = MPROC__SVG_DASHED },
    };
    char title[128];
    if (a->fitted)
        snprintf(title, sizeof title, "mproc bench: CPU-bound speed-up on %u CPU%s (P = %.3f)",
                 cpus, cpus == 1 ? "" : "s", a->p);
    else
        snprintf(title, sizeof title, "mproc bench: CPU-bound speed-up on %u CPU%s", cpus,
                 cpus == 1 ? "" : "s");
    mproc__svg_chart chart = {
        .title = title, .x_label = "workers (threads)",
        .y_label = "speed-up over the sequential loop", .series = series,
        .nseries = a->fitted ? 3 : 2, .x_min = NAN, .x_max = NAN, .y_min = 0, .y_max = NAN,
        .x_whole = true,
    };
    int rc = mproc__svg_save(path, &chart);
    if (rc < 0)
        bench_error("cannot write the chart to %s: %s", path, mproc_strerror(rc));
    return rc;
}

int mproc__bench_main(int argc, char **argv)
{
    struct bench_opts o = { .quick = false, .json = false, .max_workers = 0, .svg = NULL };
    int rc = parse_opts(argc, argv, &o);
    if (rc == 1) {
        mproc__bench_usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (rc != 0)
        return rc;

    unsigned cpus = mproc_cpu_count();
    struct workload cpu = { .tasks = NULL }, io = { .tasks = NULL };
    struct amdahl a = { .fitted = false };
    if (!o.json) {
        print_header(&o, cpus);
        fflush(stdout);
    }
    rc = bench_cpu(&cpu, &a, &o, cpus);
    if (rc == 0)
        rc = bench_io(&io, &o, cpus);
    if (rc == 0 && o.json)
        print_json(&o, cpus, &cpu, &a, &io);
    if (rc == 0 && o.svg != NULL)
        rc = write_chart(o.svg, &cpu, &a, cpus);
    free(cpu.tasks);
    free(io.tasks);
    return rc == 0 ? MPROC_TOOL_OK : MPROC_TOOL_FAILED;
}
