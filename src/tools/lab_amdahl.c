/*
 * tools/lab_amdahl.c -- `mproc lab amdahl`: Amdahl's law (seed 001, "La
 * Ley de Amdahl"), measured on a workload whose serial fraction is known.
 *
 * The workload: W of CPU-bound work (an arithmetic loop, calibrated; 60
 * ms in all, 1 s in full mode), of which a fraction F (--serial, default
 * 0.2) is serial and the rest parallel. With N workers (threads), worker
 * 0 does the serial part while the others wait at a barrier, then all N
 * do an even share of the parallel part, then all meet at a barrier
 * again. N runs over 1..--workers (default: the CPU count, at least 2);
 * each N is run three times, interleaved, keeping the fastest.
 *
 * Two clocks, and why. By the wall clock, a run lasts from worker 0
 * leaving the start line to the last barrier: the speed-up a user gets
 * here. It follows Amdahl's law only while every worker has a CPU to
 * itself. On a machine shared with other programs that is not the case
 * (this lab is run by tests on a loaded 2-CPU VM, and under sanitizers):
 * one busy CPU makes the parallel part of a 2-worker run last as long as
 * on one worker, and the fitted P collapses. So the lab also times each
 * run on dedicated cores: from each worker's CPU clock
 * (CLOCK_THREAD_CPUTIME_ID), the serial part's CPU time plus the longest
 * worker's CPU time in the parallel part -- the run's critical path in
 * CPU time. A thread's CPU clock stops while it waits for a CPU, so this
 * figure does not depend on other load, and it is what Amdahl's N
 * processors would give. (A sleep-based parallel part would be load-proof
 * too, but it needs no CPU at all, so it could not show the law's N
 * processors, nor the flattening past the CPU count.)
 *
 * Speed-up S(N) = time on 1 worker / time on N workers, on each clock.
 * Amdahl's law S(N) = 1 / ((1-P) + P/N) is fitted to each curve by
 * least squares (amdahl.c): the wall-clock one over the runs with at
 * most one worker per CPU, the CPU-time one over all runs. Both fitted P
 * are compared with the chosen P = 1 - F, and the curves with the law.
 *
 * Verdict: holds when the wall-clock fit lands within 0.1 of 1 - F and
 * no speed-up beat the law's bound 1/F by more than 5% -- which needs
 * free CPUs; the CPU-time figures say what the work itself does.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define MAX_N 64     /* workers */
#define MAX_POINTS 16 /* worker counts measured */
#define ROUNDS 3

struct shared {
    unsigned n;
    uint64_t serial_steps;
    uint64_t parallel_steps;
    mproc_barrier barrier;
    int64_t t0, t1; /* worker 0's clock at the start and the end */
    int64_t serial_cpu;
    int64_t parallel_cpu[MAX_N];
    uint64_t sum[MAX_N];
    atomic_int failed; /* a barrier wait failed */
};

struct worker {
    struct shared *s;
    unsigned index;
};

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A barrier wait that cannot hang the lab (60 s is far beyond any run). */
static bool meet(struct shared *s)
{
    int rc = mproc_barrier_wait(&s->barrier, 60000);
    if (rc < 0) {
        atomic_store(&s->failed, 1);
        return false;
    }
    return true;
}

static int worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    unsigned i = w->index;
    if (!meet(s)) /* the start line */
        return -EPIPE;
    if (i == 0) {
        s->t0 = mproc_now_ns();
        int64_t c0 = thread_cpu_ns();
        s->sum[0] += mproc__lab_spin(s->serial_steps, 1);
        s->serial_cpu = thread_cpu_ns() - c0;
    }
    if (!meet(s)) /* the others waited for the serial part */
        return -EPIPE;
    uint64_t share = s->parallel_steps / s->n + (i < s->parallel_steps % s->n);
    int64_t c0 = thread_cpu_ns();
    s->sum[i] += mproc__lab_spin(share, i + 2);
    s->parallel_cpu[i] = thread_cpu_ns() - c0;
    if (!meet(s))
        return -EPIPE;
    if (i == 0)
        s->t1 = mproc_now_ns();
    return 0;
}

/* One run on n workers: wall seconds in *wall, critical-path CPU
 * seconds in *cpu. Returns 0 or a negative code. */
static int run(struct shared *s, unsigned n, double *wall, double *cpu)
{
    mproc_thread *t[MAX_N];
    struct worker w[MAX_N];
    s->n = n;
    atomic_store(&s->failed, 0);
    int rc = mproc_barrier_init(&s->barrier, n, 0);
    if (rc < 0)
        return rc;
    unsigned started = 0;
    for (; started < n && rc == 0; started++) {
        w[started] = (struct worker){ .s = s, .index = started };
        rc = mproc_thread_create(&t[started], &(mproc_thread_opts){ .fn = worker_main,
                                                                     .arg = &w[started],
                                                                     .name = "lab-amdahl" });
        if (rc == 0 && (rc = mproc_thread_start(t[started])) != 0)
            mproc_thread_destroy(t[started]);
    }
    if (rc != 0) {
        started--;
        mproc_barrier_abort(&s->barrier); /* the started ones give up */
    }
    for (unsigned i = 0; i < started; i++) {
        mproc_thread_join(t[i], -1, NULL);
        mproc_thread_destroy(t[i]);
    }
    mproc_barrier_destroy(&s->barrier);
    if (rc == 0 && atomic_load(&s->failed))
        rc = -EPIPE;
    if (rc != 0)
        return rc;
    int64_t longest = 0;
    for (unsigned i = 0; i < n; i++)
        longest = s->parallel_cpu[i] > longest ? s->parallel_cpu[i] : longest;
    *wall = (double)(s->t1 - s->t0) / 1e9;
    *cpu = (double)(s->serial_cpu + longest) / 1e9;
    return 0;
}

/* The worker counts: 1..max, or (max > MAX_POINTS) 1, 2, 3, 4, then
 * doubling, then max. Returns how many. */
static size_t worker_counts(unsigned max, unsigned *out)
{
    size_t k = 0;
    for (unsigned n = 1; n <= max && n <= 4; n++)
        out[k++] = n;
    for (unsigned n = 8; n < max && max > MAX_POINTS; n *= 2)
        out[k++] = n;
    for (unsigned n = 5; n <= max && max <= MAX_POINTS; n++)
        out[k++] = n;
    if (max > MAX_POINTS)
        out[k++] = max;
    return k;
}

/* Fit P to the points (n[i], s[i]), i < count; NAN if it cannot. */
static double fit(const double *n, const double *s, size_t count)
{
    double p;
    return mproc__amdahl_fit(n, s, count, &p) == 0 ? p : NAN;
}

static int write_chart(const char *path, const double *n, const double *wall,
                       const double *cpu, size_t k, double p_fit, double p_law,
                       double serial, unsigned cpus)
{
    double fitted[MAX_POINTS], law[MAX_POINTS];
    for (size_t i = 0; i < k; i++) {
        fitted[i] = isnan(p_fit) ? NAN : mproc__amdahl_speedup(p_fit, n[i]);
        law[i] = mproc__amdahl_speedup(p_law, n[i]);
    }
    mproc__svg_series series[] = {
        { .name = "measured speed-up", .x = n, .y = wall, .n = k, .markers = true },
        { .name = "CPU-time speed-up", .x = n, .y = cpu, .n = k,
          .markers = true, .style = MPROC__SVG_DOTTED },
        { .name = "Amdahl's law, chosen P", .x = n, .y = law, .n = k },
        { .name = "ideal (N x)", .x = n, .y = n, .n = k,
          .style = MPROC__SVG_DOTTED },
        { .name = "fitted Amdahl curve", .x = n, .y = fitted, .n = k,
          .style = MPROC__SVG_DASHED },
    };
    char title[160];
    snprintf(title, sizeof title,
             "Amdahl's law: serial fraction %.2f, %u CPU%s (fitted P = %.3f, chosen %.3f)",
             serial, cpus, cpus == 1 ? "" : "s", p_fit, p_law);
    mproc__svg_chart chart = {
        .title = title, .x_label = "workers (threads)", .y_label = "speed-up over 1 worker",
        .series = series, .nseries = isnan(p_fit) ? 4 : 5, .x_min = NAN, .x_max = NAN,
        .y_min = 0, .y_max = NAN, .x_whole = true,
    };
    return mproc__svg_save(path, &chart);
}

int mproc__lab_amdahl(const mproc__lab_opts *o, mproc__lab_report *r)
{
    unsigned cpus = mproc_cpu_count();
    double serial = o->serial >= 0 ? o->serial : 0.2;
    double p_law = 1.0 - serial;
    unsigned max = o->workers ? o->workers : cpus < 2 ? 2 : cpus;
    if (max > MAX_N) {
        mproc__lab_note(r, "%u workers asked for, %d used (the lab's limit).", max, MAX_N);
        max = MAX_N;
    }
    unsigned counts[MAX_POINTS];
    size_t k = worker_counts(max, counts);

    struct shared *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    mproc__progress("lab amdahl: calibrating the arithmetic loop");
    double rate = mproc__lab_spin_rate(o->quick ? 10 : 50);
    double total_steps = rate * (o->quick ? 60e3 : 1e6); /* 60 ms or 1 s */
    s->serial_steps = (uint64_t)(total_steps * serial);
    s->parallel_steps = (uint64_t)(total_steps * p_law);

    double wall[MAX_POINTS], cpu[MAX_POINTS];
    for (size_t i = 0; i < k; i++)
        wall[i] = cpu[i] = INFINITY;
    int rc = 0;
    for (int round = 0; round < ROUNDS && rc == 0; round++) {
        for (size_t i = 0; i < k && rc == 0; i++) {
            mproc__progress("lab amdahl: %u worker%s, round %d of %d", counts[i],
                            counts[i] == 1 ? "" : "s", round + 1, ROUNDS);
            double w, c;
            rc = run(s, counts[i], &w, &c);
            if (rc == 0) {
                wall[i] = w < wall[i] ? w : wall[i];
                cpu[i] = c < cpu[i] ? c : cpu[i];
            }
        }
    }
    free(s);
    if (rc < 0) {
        mproc__lab_note(r, "a run failed: %s", mproc_strerror(rc));
        return rc;
    }

    /* Speed-ups, and the fits: wall clock over N <= CPUs, CPU time over
     * every N. */
    double n[MAX_POINTS], s_wall[MAX_POINTS], s_cpu[MAX_POINTS];
    size_t in_cores = 0;
    for (size_t i = 0; i < k; i++) {
        n[i] = counts[i];
        s_wall[i] = wall[0] / wall[i];
        s_cpu[i] = cpu[0] / cpu[i];
        in_cores += counts[i] <= cpus;
    }
    double p_wall = fit(n, s_wall, in_cores);
    double p_cpu = fit(n, s_cpu, k);
    double bound = mproc__amdahl_bound(p_law);
    double best = 0;
    for (size_t i = 0; i < k; i++)
        best = s_wall[i] > best ? s_wall[i] : best;

    mproc__lab_metric(r, "cpus", cpus, "count", "CPUs");
    mproc__lab_metric(r, "serial", serial, "fraction", "serial fraction chosen (F)");
    mproc__lab_metric(r, "p_chosen", p_law, "fraction", "  parallel fraction P = 1 - F");
    mproc__lab_metric(r, "bound", bound, "x", "  Amdahl's bound 1/(1-P)");
    mproc__lab_metric(r, "work_ms", wall[0] * 1e3, "ms", "time on 1 worker");
    mproc__lab_metric(r, "max_workers", max, "count", "most workers");
    for (size_t i = 1; i < k; i++) {
        char key[32], text[64];
        snprintf(key, sizeof key, "speedup_%u", counts[i]);
        snprintf(text, sizeof text, "%u workers: speed-up (law: %.2fx)", counts[i],
                 mproc__amdahl_speedup(p_law, n[i]));
        mproc__lab_metric(r, key, s_wall[i], "x", text);
        snprintf(key, sizeof key, "cpu_speedup_%u", counts[i]);
        mproc__lab_metric(r, key, s_cpu[i], "x", "  on dedicated cores (CPU time)");
    }
    mproc__lab_metric(r, "p_fitted", p_wall, "fraction", "P fitted to the speed-ups");
    mproc__lab_metric(r, "p_fitted_cpu", p_cpu, "fraction", "P fitted on dedicated cores");
    mproc__lab_metric(r, "p_error", fabs(p_wall - p_law), "fraction", "  |fitted - chosen|");
    mproc__lab_metric(r, "p_error_cpu", fabs(p_cpu - p_law), "fraction",
                      "  |fitted on dedicated cores - chosen|");

    mproc__lab_note(r, "Worker 0 runs the serial part while the others wait at a barrier; "
                       "then all run an even share of the rest.");
    mproc__lab_note(r, "'On dedicated cores': serial CPU time + the longest worker's parallel "
                       "CPU time, which other programs' load does not change.");
    if (max > cpus)
        mproc__lab_note(r, "Past %u worker%s the measured curve flattens because workers "
                           "share the %u CPU%s, not because of the serial part (Amdahl's N is "
                           "processors); the CPU-time curve keeps following the law. The "
                           "wall-clock fit uses 1-%u workers only.",
                        cpus, cpus == 1 ? "" : "s", cpus, cpus == 1 ? "" : "s", cpus);
    if (o->svg) {
        rc = write_chart(o->svg, n, s_wall, s_cpu, k, p_wall, p_law, serial, cpus);
        if (rc < 0) {
            mproc__lab_note(r, "cannot write the chart to %s: %s", o->svg, mproc_strerror(rc));
            return rc;
        }
        mproc__lab_note(r, "Chart written to %s.", o->svg);
    }

    if (isnan(p_wall))
        mproc__lab_verdict(r, false,
                           "nothing to fit by the wall clock: this process may use 1 CPU only "
                           "(on dedicated cores P = %.3f against the chosen %.3f)",
                           p_cpu, p_law);
    else if (fabs(p_wall - p_law) <= 0.1 && best <= bound * 1.05)
        mproc__lab_verdict(r, true,
                           "fitted P = %.3f against the chosen %.3f; the best speed-up, %.2fx, "
                           "stays under the bound 1/(1-P) = %.2fx",
                           p_wall, p_law, best, bound);
    else if (best > bound * 1.05)
        mproc__lab_verdict(r, false,
                           "a speed-up of %.2fx beat the bound %.2fx: the 1-worker runs were "
                           "slowed by other load",
                           best, bound);
    else
        mproc__lab_verdict(r, false,
                           "fitted P = %.3f, %.3f away from the chosen %.3f: the workers did "
                           "not have the CPUs to themselves (on dedicated cores P = %.3f)",
                           p_wall, fabs(p_wall - p_law), p_law, p_cpu);
    return 0;
}
