/*
 * tools/lab_gil.c -- `mproc lab gil`: why Python threads do not speed up
 * CPU-bound work and C threads do (seed 001, "El Global Interpreter
 * Lock"; seed 000, "GIL").
 *
 * The same CPU-bound work -- S steps of an arithmetic loop, ~25 us each,
 * 40 ms in all (0.3 s in full mode: about 3 s for the lab on an idle
 * 2-CPU machine), split evenly among T threads -- runs on 1, 2 and N
 * threads (N: the CPUs, or --workers), twice: once as C runs it, and
 * once under a simulated global interpreter lock.
 *
 * The simulated GIL is one mproc_lock that a thread must hold for every
 * step of work. Like CPython's (ceval_gil.c), a thread keeps it for a
 * switch interval (5 ms worth of steps, CPython's default
 * sys.getswitchinterval()) and then, if another thread is waiting for
 * it, drops it and does not take it back until another thread has taken
 * it (CPython's "forced switching": without it the dropping thread,
 * already running, would win the lock back at once). So the threads take
 * turns, as the notes say, and never compute at the same time: every
 * step is counted in and out of an "inside" counter and the most threads
 * ever inside at once is reported (1 under the GIL, by construction).
 *
 * Two clocks. By the wall clock, each run lasts from the moment all its
 * threads are at the start line to the last one's end: what this machine
 * gives, which depends on how many CPUs other programs leave free (on a
 * busy machine even the GIL run with 2 threads can beat 1 thread, since
 * two threads get more turns on the CPUs than one). On dedicated cores,
 * a run lasts the CPU time of its critical path, from each thread's CPU
 * clock (CLOCK_THREAD_CPUTIME_ID): without a GIL the longest thread's
 * computing time (they compute side by side), with it the sum of every
 * thread's CPU time while holding the GIL (holds never overlap). CPU
 * time does not run while a thread waits for a CPU, so this figure does
 * not depend on other load: it is what the run takes with a core per
 * thread -- and with the GIL it stays at 1x however many cores there are.
 * Every run is repeated three times, interleaved, and keeps its fastest
 * time on each clock. Speed-up with T threads = time on 1 thread / time
 * on T threads, for each mode against its own 1-thread run. Every thread
 * counts its steps; a run whose steps do not add up to S is reported.
 *
 * Verdict: holds when every run did all its steps, the GIL let one
 * thread compute at a time (at most 1 inside a step at once, and under
 * 1.3x with 2 threads on dedicated cores), and without it 2 threads
 * gained at least 1.3x by the wall clock -- which needs 2 CPUs that the
 * machine's other load leaves free.
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define MAX_THREADS 256
#define STEP_US 25.0
#define SWITCH_INTERVAL_MS 5.0
#define ROUNDS 3

struct shared {
    bool gil_on;
    unsigned threads;
    uint64_t step_len;      /* loop iterations per step */
    uint64_t interval;      /* steps per switch interval */
    atomic_uint ready;      /* threads at the start line */
    atomic_bool go;
    atomic_int_fast64_t t0; /* when the last thread reached the start line */
    /* The GIL. `holder` is written only by the thread that holds it. */
    mproc_lock gil;
    atomic_uint waiting;          /* threads that want the GIL */
    atomic_uint_fast64_t handoffs; /* times another thread took it */
    int holder;
    /* Threads inside a step now, and the most seen at once. */
    atomic_uint inside;
    atomic_uint most_inside;
};

struct worker {
    struct shared *s;
    int index;
    uint64_t steps;   /* its share */
    uint64_t done;    /* steps it did */
    uint64_t sum;     /* of the steps' results (keeps the work from being optimised away) */
    int64_t cpu_ns;   /* CPU time computing: in its loop, or while holding the GIL */
    int64_t hold_ns;  /* the thread's CPU clock when it last took the GIL */
};

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void gil_take(struct shared *s, struct worker *w)
{
    atomic_fetch_add(&s->waiting, 1);
    mproc_lock_acquire(&s->gil, -1);
    atomic_fetch_sub(&s->waiting, 1);
    if (s->holder != w->index) {
        s->holder = w->index;
        atomic_fetch_add(&s->handoffs, 1);
    }
    w->hold_ns = thread_cpu_ns();
}

static void gil_drop(struct shared *s, struct worker *w)
{
    w->cpu_ns += thread_cpu_ns() - w->hold_ns;
    mproc_lock_release(&s->gil);
}

/* At the end of a switch interval: if someone waits, let them have it. */
static void gil_yield(struct shared *s, struct worker *w)
{
    if (atomic_load(&s->waiting) == 0)
        return;
    uint64_t seen = atomic_load(&s->handoffs);
    gil_drop(s, w);
    /* Forced switching: wait until another thread took it. It will: it
     * was waiting, and the lock is free. */
    while (atomic_load(&s->handoffs) == seen)
        sched_yield();
    gil_take(s, w);
}

static void enter_step(struct shared *s)
{
    unsigned now = atomic_fetch_add(&s->inside, 1) + 1;
    unsigned most = atomic_load(&s->most_inside);
    while (now > most && !atomic_compare_exchange_weak(&s->most_inside, &most, now))
        ;
}

static int worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    /* The start line: the last to arrive starts the clock. */
    if (atomic_fetch_add(&s->ready, 1) + 1 == s->threads) {
        atomic_store(&s->t0, mproc_now_ns());
        atomic_store(&s->go, true);
    }
    while (!atomic_load(&s->go))
        sched_yield();
    int64_t cpu0 = thread_cpu_ns();
    if (s->gil_on)
        gil_take(s, w);
    for (uint64_t i = 0; i < w->steps; i++) {
        enter_step(s);
        w->sum += mproc__spin(s->step_len, i);
        atomic_fetch_sub(&s->inside, 1);
        w->done++;
        if (s->gil_on && (i + 1) % s->interval == 0 && i + 1 < w->steps)
            gil_yield(s, w);
    }
    if (s->gil_on)
        gil_drop(s, w);
    else
        w->cpu_ns = thread_cpu_ns() - cpu0;
    return 0;
}

/* One run: total steps on `threads` threads. The seconds, or < 0; the
 * steps done in *done, and in *cpu the CPU time of the run's critical
 * path: the longest thread's without a GIL (they compute side by side),
 * the sum of all GIL holds with it (they compute one after another). */
static double run(struct shared *s, struct worker *w, unsigned threads, uint64_t total,
                  bool gil, uint64_t *done, double *cpu)
{
    mproc_thread *t[MAX_THREADS];
    s->gil_on = gil;
    s->threads = threads;
    s->holder = -1;
    atomic_store(&s->ready, 0);
    atomic_store(&s->go, false);
    unsigned started = 0;
    int rc = 0;
    for (; started < threads && rc == 0; started++) {
        w[started] = (struct worker){ .s = s, .index = (int)started,
                                      .steps = total / threads + (started < total % threads) };
        rc = mproc__lab_thread(&t[started], &(mproc_thread_opts){ .fn = worker_main,
                                                                   .arg = &w[started],
                                                                   .name = "lab-gil" });
    }
    if (rc != 0) { /* the run is void: let the ones started finish */
        started--;
        atomic_store(&s->go, true);
    }
    *done = 0;
    int64_t path = 0;
    for (unsigned i = 0; i < started; i++) {
        mproc_thread_join(t[i], -1, NULL);
        mproc_thread_destroy(t[i]);
        *done += w[i].done;
        path = gil ? path + w[i].cpu_ns : w[i].cpu_ns > path ? w[i].cpu_ns : path;
    }
    *cpu = (double)path / 1e9;
    int64_t end = mproc_now_ns();
    if (rc != 0)
        return rc;
    return (double)(end - atomic_load(&s->t0)) / 1e9;
}

int mproc__lab_gil(const mproc__lab_opts *o, mproc__lab_report *r)
{
    unsigned cpus = mproc_cpu_count();
    unsigned most = o->workers ? o->workers : cpus;
    if (most < 2)
        most = 2;
    if (most > MAX_THREADS) {
        mproc__lab_note(r, "%u threads asked for, %d used (the lab's limit).", most,
                        MAX_THREADS);
        most = MAX_THREADS;
    }
    unsigned counts[3] = { 1, 2, most };
    size_t ncounts = most > 2 ? 3 : 2;

    struct shared *s = calloc(1, sizeof *s);
    struct worker *w = calloc(MAX_THREADS, sizeof *w);
    if (s == NULL || w == NULL) {
        free(s);
        free(w);
        return -ENOMEM;
    }
    mproc_lock_init(&s->gil, 0);
    mproc__progress("lab gil: calibrating the arithmetic loop");
    double rate = mproc__spin_rate(o->quick ? 10 : 50);
    s->step_len = (uint64_t)(rate * STEP_US) + 1;
    s->interval = (uint64_t)(SWITCH_INTERVAL_MS * 1e3 / STEP_US);
    uint64_t total = (uint64_t)((o->quick ? 40e3 : 300e3) / STEP_US); /* 40 ms or 0.3 s */
    if (total < most)
        total = most;

    double best[2][3], cpu[2][3]; /* [gil][count index]: wall, critical-path CPU */
    uint64_t handoffs2 = 0;
    unsigned runs = 0, exact = 0, most_inside[2] = { 0, 0 };
    int rc = 0;
    for (int g = 0; g < 2; g++)
        for (size_t c = 0; c < ncounts; c++)
            best[g][c] = cpu[g][c] = 1e300;
    for (int round = 0; round < ROUNDS && rc == 0; round++) {
        for (size_t c = 0; c < ncounts && rc == 0; c++) {
            for (int g = 0; g < 2 && rc == 0; g++) {
                mproc__progress("lab gil: %u thread%s, %s", counts[c], counts[c] == 1 ? "" : "s",
                                g ? "with the GIL" : "without a GIL");
                atomic_store(&s->most_inside, 0);
                atomic_store(&s->handoffs, 0);
                uint64_t done;
                double path;
                double t = run(s, w, counts[c], total, g == 1, &done, &path);
                if (t < 0) {
                    rc = (int)t;
                    break;
                }
                best[g][c] = t < best[g][c] ? t : best[g][c];
                cpu[g][c] = path < cpu[g][c] ? path : cpu[g][c];
                runs++;
                exact += done == total;
                unsigned m = atomic_load(&s->most_inside);
                most_inside[g] = m > most_inside[g] ? m : most_inside[g];
                if (g && counts[c] == 2)
                    handoffs2 += atomic_load(&s->handoffs);
            }
        }
    }
    mproc_lock_destroy(&s->gil);
    free(s);
    free(w);
    if (rc < 0) {
        mproc__lab_note(r, "a thread could not be started: %s", mproc_strerror(rc));
        return rc;
    }

    mproc__lab_metric(r, "cpus", cpus, "count", "CPUs");
    mproc__lab_metric(r, "steps", (double)total, "count", "steps of work per run (~25 us each)");
    mproc__lab_metric(r, "switch_interval_steps", (double)(SWITCH_INTERVAL_MS * 1e3 / STEP_US),
                      "count", "  steps per switch interval (5 ms)");
    mproc__lab_metric(r, "runs", runs, "count", "runs (3 rounds)");
    mproc__lab_metric(r, "runs_exact", exact, "count", "  runs that did every step");
    for (size_t c = 0; c < ncounts; c++) {
        char key[48], text[64];
        unsigned n = counts[c];
        snprintf(key, sizeof key, "nogil_%u_s", n);
        snprintf(text, sizeof text, "no GIL, %u thread%s", n, n == 1 ? "" : "s");
        mproc__lab_metric(r, key, best[0][c], "s", text);
        snprintf(key, sizeof key, "gil_%u_s", n);
        snprintf(text, sizeof text, "GIL, %u thread%s", n, n == 1 ? "" : "s");
        mproc__lab_metric(r, key, best[1][c], "s", text);
    }
    for (size_t c = 1; c < ncounts; c++) {
        char key[48], text[64];
        unsigned n = counts[c];
        snprintf(key, sizeof key, "nogil_speedup_%u", n);
        snprintf(text, sizeof text, "speed-up of %u threads, no GIL", n);
        mproc__lab_metric(r, key, best[0][0] / best[0][c], "x", text);
        snprintf(key, sizeof key, "gil_speedup_%u", n);
        snprintf(text, sizeof text, "speed-up of %u threads, with the GIL", n);
        mproc__lab_metric(r, key, best[1][0] / best[1][c], "x", text);
    }
    for (size_t c = 1; c < ncounts; c++) {
        char key[48], text[64];
        unsigned n = counts[c];
        snprintf(key, sizeof key, "nogil_cpu_speedup_%u", n);
        snprintf(text, sizeof text, "  on %u dedicated cores, no GIL", n);
        mproc__lab_metric(r, key, cpu[0][0] / cpu[0][c], "x", text);
        snprintf(key, sizeof key, "gil_cpu_speedup_%u", n);
        snprintf(text, sizeof text, "  on %u dedicated cores, with the GIL", n);
        mproc__lab_metric(r, key, cpu[1][0] / cpu[1][c], "x", text);
    }
    mproc__lab_metric(r, "gil_cost", best[1][0] / best[0][0], "x",
                      "1 thread: time with the GIL / without");
    mproc__lab_metric(r, "nogil_most_at_once", most_inside[0], "count",
                      "most threads computing at once, no GIL");
    mproc__lab_metric(r, "gil_most_at_once", most_inside[1], "count",
                      "most threads computing at once, GIL");
    mproc__lab_metric(r, "gil_handoffs_2", (double)handoffs2, "count",
                      "GIL hand-offs, 2 threads (all rounds)");

    double gil2 = best[1][0] / best[1][1], nogil2 = best[0][0] / best[0][1];
    double gil2_cpu = cpu[1][0] / cpu[1][1], nogil2_cpu = cpu[0][0] / cpu[0][1];
    mproc__lab_note(r, "The GIL here is one mproc_lock held for every step, handed over at "
                       "each 5 ms switch interval when another thread waits (CPython's forced "
                       "switching).");
    mproc__lab_note(r, "'On dedicated cores': the CPU time of the critical path (the longest "
                       "thread without a GIL, all GIL holds added up with it): what the run "
                       "takes when no other program competes for the CPUs.");
    if (gil2 > 1.1)
        mproc__lab_note(r, "With the GIL, 2 threads finished %.2fx faster than 1 by the clock: "
                           "on a busy machine two threads get more turns on the CPUs than one "
                           "(each hand-off wakes a thread), yet only one computed at a time.",
                        gil2);
    mproc__lab_note(r, "C threads share nothing here but the start line and compute at once "
                       "on as many CPUs as are free; in Python, use processes for this (see "
                       "'mproc lab io-vs-cpu').");
    if (exact != runs)
        mproc__lab_verdict(r, false, "%u of %u runs did not do all their steps: a broken lab",
                           runs - exact, runs);
    else if (most_inside[1] != 1 || gil2_cpu >= 1.3)
        mproc__lab_verdict(r, false,
                           "the simulated GIL let %u threads compute at once (%.2fx on "
                           "dedicated cores): a broken lab",
                           most_inside[1], gil2_cpu);
    else if (nogil2 >= 1.3)
        mproc__lab_verdict(r, true,
                           "2 threads: with the GIL one computed at a time (%.2fx on dedicated "
                           "cores, %.2fx here); without it %.2fx here",
                           gil2_cpu, gil2, nogil2);
    else
        mproc__lab_verdict(r, false,
                           "with the GIL one thread computed at a time (%.2fx on dedicated "
                           "cores), but without it 2 threads gained only %.2fx here (%.2fx on "
                           "dedicated cores): %s",
                           gil2_cpu, nogil2, nogil2_cpu,
                           cpus < 2 ? "this process may use 1 CPU only"
                                    : "the machine's other load left no second CPU free");
    return 0;
}
