/*
 * bench/bench_sync.c -- the sync layer side by side with what a C or a
 * Python programmer would use instead, in one run, printed as ratios.
 *
 *   1. uncontended acquire+release (ns per pair):
 *        mproc_lock                vs pthread_mutex (default type)
 *        mproc_lock MPROC_SHARED   vs pthread_mutex PROCESS_SHARED + ROBUST
 *        mproc_rlock               vs pthread_mutex RECURSIVE
 *        mproc_semaphore           vs sem_wait/sem_post
 *   2. two threads, each adding 1 to one counter N times under one lock
 *      (M increments/s): mproc_lock vs pthread_mutex default and adaptive;
 *      plus how fair each was and mproc_lock_stats.
 *   3. two forked processes doing the same on a counter in MAP_SHARED
 *      memory: MPROC_SHARED mproc_lock vs the robust process-shared mutex.
 *   4. the same in Python: multiprocessing.Value('i') and its lock
 *      (bench/py_value_lock.py, run through popen).
 *   5. a. whether spinning before sleeping pays: cases 2 and 3 for
 *         mproc_lock with its spinning off (the internal knob
 *         mproc__lock_spin_max = 0) and on, and two threads doing ~100 ns
 *         of work under the lock and ~200 ns outside it (pthread beside);
 *      b. what a sleep costs: a token passed between two threads through
 *         a futex (sleeping at once), by spinning on a shared word, and
 *         through mproc_semaphore and sem_t.
 *
 * Targets (from the issue), checked in the summary:
 *   uncontended time            <= 1.2 x pthread's (private and shared)
 *   two-thread throughput       >= pthread_mutex's
 *   two-process throughput      >= the robust pthread mutex's
 *   robust pthread mutex        >= 10 x Python's Value lock (the premise)
 *   spinning on                 >= spinning off (each workload of 5a)
 *
 * Figures that are compared are measured with their runs interleaved
 * (bench_compare), so the machine's swings hit both sides alike.
 * Contenders start together after a barrier and record their times on the
 * monotonic clock (shared by all processes), so thread and process
 * start-up are not timed. Every contended run checks the counter at the
 * end, so a lock that loses an update fails loudly.
 */
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc/sync.h>

#include "harness.h"
#include "sync/lock_internal.h" /* mproc__lock_spin_max: spinning on/off */

#ifndef BENCH_PY_SCRIPT
#define BENCH_PY_SCRIPT "bench/py_value_lock.py"
#endif

/* ------------------------------------------------------------------ */
/* The primitives compared, behind one small switch                    */
/* ------------------------------------------------------------------ */

enum kind { MLOCK, MRLOCK, MSEM, PMUTEX, PSEM };

typedef struct lockspec {
    const char *name; /* as printed */
    enum kind kind;
    unsigned flags;   /* mproc kinds: 0 or MPROC_SHARED */
    int mutex_type;   /* PMUTEX: PTHREAD_MUTEX_DEFAULT, _RECURSIVE, ... */
    int pshared;      /* PMUTEX: process-shared and robust; PSEM: pshared */
} lockspec;

typedef union anylock {
    mproc_lock ml;
    mproc_rlock mr;
    mproc_semaphore ms;
    pthread_mutex_t pm;
    sem_t ps;
} anylock;

/* Everything the contenders touch, in one MAP_SHARED mapping so forked
 * children see it too. Each part has a cache line of its own, so the
 * only line traffic measured is the lock's and the counter's. */
typedef struct arena {
    _Alignas(64) anylock lock;
    _Alignas(64) anylock lock2;        /* case 5: the second semaphore */
    _Alignas(64) long counter;         /* protected by `lock` */
    _Alignas(64) pthread_barrier_t go; /* the two contenders start together */
    _Alignas(64) int64_t start[2];     /* when each contender started */
    _Alignas(64) struct {              /* the first contender to finish: */
        _Atomic int done;              /*   contenders finished so far */
        int64_t t;                     /*   when it finished */
        long counter;                  /*   the counter right then */
    } first;
    _Alignas(64) _Atomic uint32_t word; /* case 5: the ping-pong word */
} arena;

static arena *A;

/* Aborts the benchmark when a call that cannot fail here fails. */
#define CHECK(call, what)                                     \
    do {                                                      \
        int rc_ = (call);                                     \
        if (__builtin_expect(rc_ != 0, 0))                    \
            bench_die(what, rc_);                             \
    } while (0)

/* sem_* report errors through errno. */
#define SEMCALL(call) ((call) == 0 ? 0 : errno)

static void lock_init(anylock *a, const lockspec *s)
{
    pthread_mutexattr_t attr;

    switch (s->kind) {
    case MLOCK:
        CHECK(mproc_lock_init(&a->ml, s->flags), "mproc_lock_init");
        break;
    case MRLOCK:
        CHECK(mproc_rlock_init(&a->mr, s->flags), "mproc_rlock_init");
        break;
    case MSEM:
        CHECK(mproc_semaphore_init(&a->ms, 1, s->flags), "mproc_semaphore_init");
        break;
    case PMUTEX:
        CHECK(pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
        CHECK(pthread_mutexattr_settype(&attr, s->mutex_type), "settype");
        if (s->pshared) {
            CHECK(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED),
                  "setpshared");
            CHECK(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST),
                  "setrobust");
        }
        CHECK(pthread_mutex_init(&a->pm, &attr), "pthread_mutex_init");
        pthread_mutexattr_destroy(&attr);
        break;
    case PSEM:
        CHECK(SEMCALL(sem_init(&a->ps, s->pshared, 1)), "sem_init");
        break;
    }
}

static void lock_destroy(anylock *a, const lockspec *s)
{
    switch (s->kind) {
    case MLOCK: CHECK(mproc_lock_destroy(&a->ml), "mproc_lock_destroy"); break;
    case MRLOCK: CHECK(mproc_rlock_destroy(&a->mr), "mproc_rlock_destroy"); break;
    case MSEM: CHECK(mproc_semaphore_destroy(&a->ms), "mproc_semaphore_destroy"); break;
    case PMUTEX: CHECK(pthread_mutex_destroy(&a->pm), "pthread_mutex_destroy"); break;
    case PSEM: CHECK(SEMCALL(sem_destroy(&a->ps)), "sem_destroy"); break;
    }
}

/*
 * About k rounds of dependent arithmetic that touch no memory: stands for
 * the work a thread does with the lock held, or between acquisitions.
 */
static inline void busy(long k)
{
    uint64_t x = (uint64_t)k;
    for (long j = 0; j < k; j++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    __asm__ __volatile__("" : : "r"(x)); /* keep x (and the loop) alive */
}

/*
 * n rounds of: acquire, [++*counter and busy(in),] release, [busy(out)].
 * One loop per kind, so no indirect call is timed; `count` is a constant
 * at each call site and the compiler drops the bracketed parts where it is
 * 0. The lock calls are opaque, so the counter is really loaded and stored
 * on every round.
 */
#define ROUNDS(acquire, release)                    \
    for (long i = 0; i < n; i++) {                  \
        acquire;                                    \
        if (count) {                                \
            ++*counter;                             \
            busy(in);                               \
        }                                           \
        release;                                    \
        if (count)                                  \
            busy(out);                              \
    }

static inline __attribute__((always_inline)) void
run_loop(anylock *a, enum kind k, long n, long *counter, long in, long out,
         const int count)
{
    switch (k) {
    case MLOCK:
        ROUNDS(CHECK(mproc_lock_acquire(&a->ml, -1), "mproc_lock_acquire"),
               CHECK(mproc_lock_release(&a->ml), "mproc_lock_release"));
        break;
    case MRLOCK:
        ROUNDS(CHECK(mproc_rlock_acquire(&a->mr, -1), "mproc_rlock_acquire"),
               CHECK(mproc_rlock_release(&a->mr), "mproc_rlock_release"));
        break;
    case MSEM:
        ROUNDS(CHECK(mproc_semaphore_acquire(&a->ms, -1), "mproc_semaphore_acquire"),
               CHECK(mproc_semaphore_release(&a->ms, 1), "mproc_semaphore_release"));
        break;
    case PMUTEX:
        ROUNDS(CHECK(pthread_mutex_lock(&a->pm), "pthread_mutex_lock"),
               CHECK(pthread_mutex_unlock(&a->pm), "pthread_mutex_unlock"));
        break;
    case PSEM:
        ROUNDS(CHECK(SEMCALL(sem_wait(&a->ps)), "sem_wait"),
               CHECK(SEMCALL(sem_post(&a->ps)), "sem_post"));
        break;
    }
}

static void pairs(anylock *a, enum kind k, long n)
{
    run_loop(a, k, n, NULL, 0, 0, 0);
}

static void increments(anylock *a, enum kind k, long n, long *counter, long in,
                       long out)
{
    run_loop(a, k, n, counter, in, out, 1);
}

/* The counter's value, read under the lock. */
static long locked_read(anylock *a, enum kind k, const long *counter)
{
    long v;

    switch (k) {
    case MLOCK:
        CHECK(mproc_lock_acquire(&a->ml, -1), "mproc_lock_acquire");
        v = *counter;
        CHECK(mproc_lock_release(&a->ml), "mproc_lock_release");
        return v;
    case MRLOCK:
        CHECK(mproc_rlock_acquire(&a->mr, -1), "mproc_rlock_acquire");
        v = *counter;
        CHECK(mproc_rlock_release(&a->mr), "mproc_rlock_release");
        return v;
    case MSEM:
        CHECK(mproc_semaphore_acquire(&a->ms, -1), "mproc_semaphore_acquire");
        v = *counter;
        CHECK(mproc_semaphore_release(&a->ms, 1), "mproc_semaphore_release");
        return v;
    case PMUTEX:
        CHECK(pthread_mutex_lock(&a->pm), "pthread_mutex_lock");
        v = *counter;
        CHECK(pthread_mutex_unlock(&a->pm), "pthread_mutex_unlock");
        return v;
    case PSEM:
        CHECK(SEMCALL(sem_wait(&a->ps)), "sem_wait");
        v = *counter;
        CHECK(SEMCALL(sem_post(&a->ps)), "sem_post");
        return v;
    }
    return -1;
}

/* ------------------------------------------------------------------ */
/* 1. Uncontended                                                      */
/* ------------------------------------------------------------------ */

typedef struct pairs_arg {
    const lockspec *spec;
    long n;
} pairs_arg;

/* One run: ns per acquire+release pair on a lock nobody else touches. */
static double run_pairs(void *p)
{
    const pairs_arg *c = p;

    lock_init(&A->lock, c->spec);
    int64_t t0 = bench_now_ns();
    pairs(&A->lock, c->spec->kind, c->n);
    int64_t t1 = bench_now_ns();
    lock_destroy(&A->lock, c->spec);
    return (double)(t1 - t0) / (double)c->n;
}

/* `alt` and `m` side by side; prints both, returns m's time / alt's and
 * its range over the rounds. */
static double compare_pairs(const lockspec *alt, const lockspec *m, long n,
                            bench_range *rounds)
{
    pairs_arg pa = {alt, n}, pm = {m, n};
    void *args[2] = {&pa, &pm};
    double v[2];

    bench_compare(2, run_pairs, args, v);
    *rounds = bench_rounds(1, 0);
    bench_figure(alt->name, v[0], "ns", NULL, 0);
    return bench_figure(m->name, v[1], "ns", alt->name, v[0]);
}

static void *do_nothing(void *arg)
{
    return arg;
}

/*
 * glibc skips the atomic instructions of a private mutex while the process
 * has never run a second thread (__libc_single_threaded stays true until
 * the first pthread_create, and never becomes true again). Locks are for
 * threaded programs, so pthread is compared as it runs in one: start and
 * join a thread before measuring.
 */
static void become_multithreaded(void)
{
    pthread_t th;
    CHECK(pthread_create(&th, NULL, do_nothing, NULL), "pthread_create");
    CHECK(pthread_join(th, NULL), "pthread_join");
}

static void case_uncontended(void)
{
    static const lockspec m_priv = {"mproc_lock", MLOCK, 0, 0, 0};
    static const lockspec p_priv = {"pthread_mutex", PMUTEX, 0, PTHREAD_MUTEX_DEFAULT, 0};
    static const lockspec m_shared = {"mproc_lock SHARED", MLOCK, MPROC_SHARED, 0, 0};
    static const lockspec p_robust = {"pthread_mutex pshared robust", PMUTEX, 0,
                                      PTHREAD_MUTEX_DEFAULT, 1};
    static const lockspec m_rlock = {"mproc_rlock", MRLOCK, 0, 0, 0};
    static const lockspec p_rec = {"pthread_mutex recursive", PMUTEX, 0,
                                   PTHREAD_MUTEX_RECURSIVE, 0};
    static const lockspec m_sem = {"mproc_semaphore", MSEM, 0, 0, 0};
    static const lockspec p_sem = {"sem_t", PSEM, 0, 0, 0};
    long n = bench_scale(5000000, 1000000);
    double r;
    bench_range q;

    bench_section("1. uncontended acquire+release, one thread, %ld pairs "
                  "(ns per pair, lower is better)", n);

    /* Must come first: see become_multithreaded. */
    pairs_arg single = {&p_priv, n};
    bench_figure("pthread_mutex, process never threaded",
                 bench_measure(run_pairs, &single), "ns", NULL, 0);
    bench_note("(glibc drops the atomics until a process starts a thread; "
               "all other figures are taken after one has)");
    become_multithreaded();

    r = compare_pairs(&p_priv, &m_priv, n, &q);
    bench_target("uncontended: mproc_lock / pthread_mutex (time)", r, q, BENCH_LOWER, 1.2);
    r = compare_pairs(&p_robust, &m_shared, n, &q);
    bench_target("uncontended: mproc_lock SHARED / robust pshared mutex (time)", r, q,
                 BENCH_LOWER, 1.2);
    r = compare_pairs(&p_rec, &m_rlock, n, &q);
    bench_info("uncontended: mproc_rlock / recursive mutex (time)", r, q);
    r = compare_pairs(&p_sem, &m_sem, n, &q);
    bench_info("uncontended: mproc_semaphore / sem_t (time)", r, q);
}

/* ------------------------------------------------------------------ */
/* 2, 3. Two contenders on one counter                                 */
/* ------------------------------------------------------------------ */

/*
 * The contenders count only while both run: an unfair lock lets one of
 * them run ahead while the other waits, and the one left over at the end
 * then runs alone, uncontended -- which case 1 measures already. So a
 * run's figure is the increments of both from the first start until the
 * first of them has done its N, divided by that time. How far the other
 * had come by then (its "share") shows how fair the lock was.
 */
typedef struct contend_arg {
    const lockspec *spec;
    long n;                    /* increments per contender */
    int procs;                 /* 1: two forked processes; 0: two threads */
    int spin_off;              /* run with mproc__lock_spin_max = 0 */
    long in, out;              /* busy() rounds inside and outside the lock */
    /* Left by the last run: */
    double share;              /* the slower one's progress, 0..1 */
    mproc_lock_counters stats; /* mproc_lock only */
} contend_arg;

typedef struct contender_arg {
    const contend_arg *c;
    int idx;
} contender_arg;

static void contend(const contend_arg *c, int idx)
{
    int rc = pthread_barrier_wait(&A->go);
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD)
        bench_die("pthread_barrier_wait", rc);
    A->start[idx] = bench_now_ns();
    increments(&A->lock, c->spec->kind, c->n, &A->counter, c->in, c->out);
    int64_t end = bench_now_ns();
    /* relaxed: the parent reads A->first after joining (or waiting for)
     * both contenders, which orders these stores before its reads. */
    if (atomic_fetch_add_explicit(&A->first.done, 1, memory_order_relaxed) == 0) {
        A->first.t = end;
        A->first.counter = locked_read(&A->lock, c->spec->kind, &A->counter);
    }
}

static void *contender_thread(void *p)
{
    const contender_arg *a = p;
    contend(a->c, a->idx);
    return NULL;
}

static void contend_in_processes(const contend_arg *c)
{
    pid_t pid[2];

    fflush(NULL); /* the children must not flush our buffers again */
    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        if (pid[i] < 0)
            bench_die("fork", errno);
        if (pid[i] == 0) {
            contend(c, i);
            _exit(0);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status;
        if (waitpid(pid[i], &status, 0) < 0)
            bench_die("waitpid", errno);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench: %s contender process failed (status %#x)\n",
                    c->spec->name, status);
            exit(1);
        }
    }
}

static void contend_in_threads(const contend_arg *c)
{
    pthread_t th[2];
    contender_arg ca[2] = {{c, 0}, {c, 1}};

    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&th[i], NULL, contender_thread, &ca[i]), "pthread_create");
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(th[i], NULL), "pthread_join");
}

/* One run: millions of increments per second while both contend. */
static double run_contend(void *p)
{
    contend_arg *c = p;
    pthread_barrierattr_t battr;
    unsigned spin_max = mproc__lock_spin_max;

    lock_init(&A->lock, c->spec);
    A->counter = 0;
    atomic_store_explicit(&A->first.done, 0, memory_order_relaxed);
    CHECK(pthread_barrierattr_init(&battr), "pthread_barrierattr_init");
    CHECK(pthread_barrierattr_setpshared(&battr, PTHREAD_PROCESS_SHARED),
          "pthread_barrierattr_setpshared");
    CHECK(pthread_barrier_init(&A->go, &battr, 2), "pthread_barrier_init");
    pthread_barrierattr_destroy(&battr);

    /* A plain global: change it only while no contender runs (forked
     * contenders inherit it). */
    if (c->spin_off)
        mproc__lock_spin_max = 0;
    if (c->procs)
        contend_in_processes(c);
    else
        contend_in_threads(c);
    mproc__lock_spin_max = spin_max;

    if (A->counter != 2 * c->n) {
        fprintf(stderr, "bench: %s lost updates: counter %ld, expected %ld\n",
                c->spec->name, A->counter, 2 * c->n);
        exit(1);
    }
    if (c->spec->kind == MLOCK)
        CHECK(mproc_lock_stats(&A->lock.ml, &c->stats), "mproc_lock_stats");
    lock_destroy(&A->lock, c->spec);
    CHECK(pthread_barrier_destroy(&A->go), "pthread_barrier_destroy");

    int64_t start = A->start[0] < A->start[1] ? A->start[0] : A->start[1];
    c->share = (double)(A->first.counter - c->n) / (double)c->n;
    return 1e3 * (double)A->first.counter / (double)(A->first.t - start);
}

/* How often mproc_lock was found held, and how long such an acquisition
 * waited on average (last run). */
static void note_stats(const char *name, const mproc_lock_counters *s)
{
    double frac = s->acquisitions ? (double)s->contended / (double)s->acquisitions : 0;
    double wait = s->contended ? (double)s->wait_ns / (double)s->contended / 1e3 : 0;
    bench_note("%s (last run): %.2f%% of %llu acquisitions found it held and "
               "waited, %.2f us on average", name, 100 * frac,
               (unsigned long long)s->acquisitions, wait);
}

static void case_threads(void)
{
    static const lockspec m = {"mproc_lock", MLOCK, 0, 0, 0};
    static const lockspec p = {"pthread_mutex", PMUTEX, 0, PTHREAD_MUTEX_DEFAULT, 0};
    static const lockspec pa = {"pthread_mutex adaptive", PMUTEX, 0,
                                PTHREAD_MUTEX_ADAPTIVE_NP, 0};
    long n = bench_scale(2000000, 400000);
    contend_arg cp = {.spec = &p, .n = n}, cpa = {.spec = &pa, .n = n},
                cm = {.spec = &m, .n = n};
    void *args[3] = {&cp, &cpa, &cm};
    double v[3];

    bench_section("2. two threads, up to %ld increments each of one counter under one "
                  "lock (M increments/s while both run, higher is better)", n);
    bench_compare(3, run_contend, args, v);
    bench_figure(p.name, v[0], "M/s", NULL, 0);
    bench_figure(pa.name, v[1], "M/s", p.name, v[0]);
    double r = bench_figure(m.name, v[2], "M/s", p.name, v[0]);
    bench_note("mproc_lock vs pthread_mutex adaptive: %.2fx", v[2] / v[1]);
    bench_note("fairness (last run): when one thread had done its %ld, the other had "
               "done %.0f%% (pthread), %.0f%% (adaptive), %.0f%% (mproc)",
               n, 100 * cp.share, 100 * cpa.share, 100 * cm.share);
    note_stats(m.name, &cm.stats);
    bench_target("2 threads: mproc_lock / pthread_mutex (throughput)", r, bench_rounds(2, 0),
                 BENCH_HIGHER, 1.0);
    bench_info("2 threads: mproc_lock / pthread_mutex adaptive (throughput)", v[2] / v[1],
               bench_rounds(2, 1));
}

/* Leaves the robust mutex's and mproc's throughputs for case 4. */
static void case_processes(double *robust, double *mproc)
{
    static const lockspec m = {"mproc_lock SHARED", MLOCK, MPROC_SHARED, 0, 0};
    static const lockspec p = {"pthread_mutex pshared robust", PMUTEX, 0,
                               PTHREAD_MUTEX_DEFAULT, 1};
    long n = bench_scale(2000000, 400000);
    contend_arg cp = {.spec = &p, .n = n, .procs = 1}, cm = {.spec = &m, .n = n, .procs = 1};
    void *args[2] = {&cp, &cm};
    double v[2];

    bench_section("3. two processes, up to %ld increments each of one counter in shared "
                  "memory (M increments/s while both run, higher is better)", n);
    bench_compare(2, run_contend, args, v);
    bench_figure(p.name, v[0], "M/s", NULL, 0);
    double r = bench_figure(m.name, v[1], "M/s", p.name, v[0]);
    bench_note("fairness (last run): when one process had done its %ld, the other had "
               "done %.0f%% (robust pthread), %.0f%% (mproc)",
               n, 100 * cp.share, 100 * cm.share);
    note_stats(m.name, &cm.stats);
    bench_target("2 processes: mproc_lock SHARED / robust pshared mutex (throughput)",
                 r, bench_rounds(1, 0), BENCH_HIGHER, 1.0);
    *robust = v[0];
    *mproc = v[1];
}

/* ------------------------------------------------------------------ */
/* 4. Python's multiprocessing.Value                                   */
/* ------------------------------------------------------------------ */

/* Runs py_value_lock.py; M increments/s, or NAN (with a note) on failure. */
static double python_value_lock(long n)
{
    char args[64], line[128] = "";
    snprintf(args, sizeof args, "%ld %d", n, bench_cfg.runs);
    FILE *p = bench_python_open(BENCH_PY_SCRIPT, args);
    if (p == NULL)
        return NAN;
    char *got = fgets(line, sizeof line, p);
    int status = pclose(p);
    char *end;
    double ops = got != NULL ? strtod(line, &end) : 0;
    if (got == NULL || end == line || status != 0 || !(ops > 0)) {
        bench_note("python3: failed (exit status %#x, output '%s')", status,
                   got != NULL ? line : "");
        return NAN;
    }
    return ops / 1e6;
}

static void case_python(double robust, double mproc)
{
    long n = bench_scale(200000, 40000);
    double rr = NAN, rm = NAN;

    bench_section("4. Python: two multiprocessing.Process, up to %ld increments each of "
                  "one multiprocessing.Value under its lock (M increments/s while both "
                  "run)", n);
    double py = python_value_lock(n);
    if (!isnan(py)) {
        bench_figure("python multiprocessing.Value", py, "M/s", NULL, 0);
        if (!isnan(robust)) {
            rr = bench_figure("pthread_mutex pshared robust (case 3)", robust, "M/s",
                              "python", py);
            rm = bench_figure("mproc_lock SHARED (case 3)", mproc, "M/s", "python", py);
        } else {
            bench_note("(the ratios need case 3)");
        }
    }
    bench_info("2 processes: mproc_lock SHARED / Python Value lock", rm, BENCH_NO_RANGE);
    bench_target("premise: robust pshared mutex / Python Value lock (throughput)",
                 rr, BENCH_NO_RANGE, BENCH_HIGHER, 10.0);
}

/* ------------------------------------------------------------------ */
/* 5. Spinning                                                         */
/* ------------------------------------------------------------------ */

/* busy() rounds per nanosecond on this machine (the best of 3 tries). */
static double busy_rate(void)
{
    const long k = bench_scale(20000000, 5000000);
    double best = 0;

    for (int i = 0; i < 3; i++) {
        int64_t t0 = bench_now_ns();
        busy(k);
        double rate = (double)k / (double)(bench_now_ns() - t0);
        best = rate > best ? rate : best;
    }
    return best;
}

/*
 * 5a: does spinning pay? Cases 2 and 3 for mproc_lock with its spinning
 * off and on; and, since a bare counter is the one workload where letting
 * the loser sleep is best (the winner then runs alone with every cache
 * line to itself), once more with work inside and outside the lock, where
 * a thread that sleeps through its turn leaves the lock idle.
 */
static void case_spin_pays(void)
{
    static const lockspec m = {"mproc_lock", MLOCK, 0, 0, 0};
    static const lockspec ms = {"mproc_lock SHARED", MLOCK, MPROC_SHARED, 0, 0};
    static const lockspec p = {"pthread_mutex", PMUTEX, 0, PTHREAD_MUTEX_DEFAULT, 0};
    const long in_ns = 100, out_ns = 200;
    long n = bench_scale(2000000, 400000), nw = bench_scale(200000, 50000);
    double rate = busy_rate();
    long in = (long)(in_ns * rate), out = (long)(out_ns * rate);
    contend_arg t_p = {.spec = &p, .n = n}, t_off = {.spec = &m, .n = n, .spin_off = 1},
                t_on = {.spec = &m, .n = n};
    contend_arg p_off = {.spec = &ms, .n = n, .procs = 1, .spin_off = 1},
                p_on = {.spec = &ms, .n = n, .procs = 1};
    contend_arg w_p = {.spec = &p, .n = nw, .in = in, .out = out},
                w_off = {.spec = &m, .n = nw, .spin_off = 1, .in = in, .out = out},
                w_on = {.spec = &m, .n = nw, .in = in, .out = out};
    void *targs[3] = {&t_p, &t_off, &t_on}, *pargs[2] = {&p_off, &p_on};
    void *wargs[3] = {&w_p, &w_off, &w_on};
    double t[3], pr[2], w[3];
    char name[96];

    bench_section("5a. does spinning pay? mproc_lock with its spinning off and on "
                  "(M increments/s while both run, higher is better)");
    bench_compare(3, run_contend, targs, t);
    bench_range qt = bench_rounds(2, 1), qt_p = bench_rounds(1, 0);
    bench_compare(2, run_contend, pargs, pr);
    bench_range qp = bench_rounds(1, 0);
    bench_compare(3, run_contend, wargs, w);
    bench_range qw = bench_rounds(2, 1), qw_p = bench_rounds(2, 0);

    bench_figure("case 2, 2 threads: pthread_mutex", t[0], "M/s", NULL, 0);
    bench_figure("case 2, 2 threads: no spinning", t[1], "M/s", "pthread", t[0]);
    double rt = bench_figure("case 2, 2 threads: spinning", t[2], "M/s", "no spinning",
                             t[1]);
    bench_figure("case 3, 2 processes: no spinning", pr[0], "M/s", NULL, 0);
    double rp = bench_figure("case 3, 2 processes: spinning", pr[1], "M/s",
                             "no spinning", pr[0]);
    snprintf(name, sizeof name, "+%ld ns in, %ld ns out: pthread_mutex", in_ns, out_ns);
    bench_figure(name, w[0], "M/s", NULL, 0);
    snprintf(name, sizeof name, "+%ld ns in, %ld ns out: no spinning", in_ns, out_ns);
    bench_figure(name, w[1], "M/s", "pthread", w[0]);
    snprintf(name, sizeof name, "+%ld ns in, %ld ns out: spinning", in_ns, out_ns);
    double rw = bench_figure(name, w[2], "M/s", "no spinning", w[1]);
    bench_note("spinning: at most %u rounds (mproc__lock_spin_max), adaptive below; "
               "with work: up to %ld increments each, busy() %ld + %ld rounds, "
               "mproc vs pthread %.2fx", mproc__lock_spin_max, nw, in, out, w[2] / w[0]);
    bench_note("fairness (last run): counter: threads %.0f%% without spinning, %.0f%% "
               "with; processes %.0f%%, %.0f%%; with work: %.0f%%, %.0f%%",
               100 * t_off.share, 100 * t_on.share, 100 * p_off.share,
               100 * p_on.share, 100 * w_off.share, 100 * w_on.share);
    note_stats("counter, threads, no spinning", &t_off.stats);
    note_stats("counter, threads, spinning", &t_on.stats);
    note_stats("with work, no spinning", &w_off.stats);
    note_stats("with work, spinning", &w_on.stats);
    bench_target("spin pays, counter, 2 threads: spinning / not (throughput)", rt, qt,
                 BENCH_HIGHER, 1.0);
    bench_target("spin pays, counter, 2 processes: spinning / not (throughput)", rp, qp,
                 BENCH_HIGHER, 1.0);
    bench_target("spin pays, with work, 2 threads: spinning / not (throughput)", rw, qw,
                 BENCH_HIGHER, 1.0);
    bench_info("counter, 2 threads: mproc_lock not spinning / pthread_mutex",
               t[1] / t[0], qt_p);
    bench_info("with work, 2 threads: mproc_lock / pthread_mutex (throughput)",
               w[2] / w[0], qw_p);
}

/*
 * 5b: what a sleep costs. Two threads hand a token back and forth: by
 * writing a shared word and sleeping on it with a futex straight away (as
 * a lock that never spins does), by spinning on the word, and through two
 * semaphores, mproc's and POSIX's.
 */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    /* EAGAIN (the word changed already) and EINTR both mean: re-check. */
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

enum handoff { BY_FUTEX, BY_SPIN, BY_PSEM, BY_MSEM };

typedef struct pingpong_arg {
    enum handoff how;
    long n; /* round trips */
} pingpong_arg;

/* Wait until the ping-pong word is `want`. */
static void word_wait(enum handoff how, uint32_t want)
{
    uint32_t v;
    unsigned spins = 0;

    /* acquire: pairs with the release store in word_post, so what the
     * other side wrote before posting is visible after the wait. */
    while ((v = atomic_load_explicit(&A->word, memory_order_acquire)) != want) {
        if (how == BY_FUTEX) {
            futex_wait(&A->word, v);
        } else {
            cpu_relax();
            if (++spins % (1u << 20) == 0)
                sched_yield(); /* both threads on one CPU: let the other run */
        }
    }
}

static void word_post(enum handoff how, uint32_t val)
{
    atomic_store_explicit(&A->word, val, memory_order_release);
    if (how == BY_FUTEX)
        futex_wake(&A->word);
}

/* One side of a round trip. Word: A posts 1 and waits for 0, B waits for
 * 1 and posts 0. Semaphores: A posts lock2 and takes lock, B takes lock2
 * and posts lock. */
static void handoff(enum handoff how, int side_b)
{
    switch (how) {
    case BY_FUTEX:
    case BY_SPIN:
        if (!side_b) {
            word_post(how, 1);
            word_wait(how, 0);
        } else {
            word_wait(how, 1);
            word_post(how, 0);
        }
        break;
    case BY_MSEM: {
        mproc_semaphore *give = side_b ? &A->lock.ms : &A->lock2.ms;
        mproc_semaphore *take = side_b ? &A->lock2.ms : &A->lock.ms;
        if (side_b)
            CHECK(mproc_semaphore_acquire(take, -1), "mproc_semaphore_acquire");
        CHECK(mproc_semaphore_release(give, 1), "mproc_semaphore_release");
        if (!side_b)
            CHECK(mproc_semaphore_acquire(take, -1), "mproc_semaphore_acquire");
        break;
    }
    case BY_PSEM: {
        sem_t *give = side_b ? &A->lock.ps : &A->lock2.ps;
        sem_t *take = side_b ? &A->lock2.ps : &A->lock.ps;
        if (side_b)
            CHECK(SEMCALL(sem_wait(take)), "sem_wait");
        CHECK(SEMCALL(sem_post(give)), "sem_post");
        if (!side_b)
            CHECK(SEMCALL(sem_wait(take)), "sem_wait");
        break;
    }
    }
}

static void *side_b_thread(void *p)
{
    const pingpong_arg *c = p;
    for (long i = 0; i < c->n; i++)
        handoff(c->how, 1);
    return NULL;
}

/* One run: microseconds per round trip (two handoffs). */
static double run_pingpong(void *p)
{
    const pingpong_arg *c = p;
    pthread_t th;

    atomic_store_explicit(&A->word, 0, memory_order_relaxed);
    if (c->how == BY_MSEM) {
        CHECK(mproc_semaphore_init(&A->lock.ms, 0, 0), "mproc_semaphore_init");
        CHECK(mproc_semaphore_init(&A->lock2.ms, 0, 0), "mproc_semaphore_init");
    } else if (c->how == BY_PSEM) {
        CHECK(SEMCALL(sem_init(&A->lock.ps, 0, 0)), "sem_init");
        CHECK(SEMCALL(sem_init(&A->lock2.ps, 0, 0)), "sem_init");
    }
    CHECK(pthread_create(&th, NULL, side_b_thread, (void *)c), "pthread_create");
    handoff(c->how, 0); /* untimed: now side B is running */
    int64_t t0 = bench_now_ns();
    for (long i = 1; i < c->n; i++)
        handoff(c->how, 0);
    int64_t t1 = bench_now_ns();
    CHECK(pthread_join(th, NULL), "pthread_join");
    if (c->how == BY_MSEM) {
        CHECK(mproc_semaphore_destroy(&A->lock.ms), "mproc_semaphore_destroy");
        CHECK(mproc_semaphore_destroy(&A->lock2.ms), "mproc_semaphore_destroy");
    } else if (c->how == BY_PSEM) {
        CHECK(SEMCALL(sem_destroy(&A->lock.ps)), "sem_destroy");
        CHECK(SEMCALL(sem_destroy(&A->lock2.ps)), "sem_destroy");
    }
    return (double)(t1 - t0) / (double)(c->n - 1) / 1e3;
}

static void case_spin_saves(void)
{
    long n_sleep = bench_scale(20000, 4000), n_spin = bench_scale(1000000, 200000);
    pingpong_arg a[4] = {{BY_FUTEX, n_sleep}, {BY_SPIN, n_spin},
                         {BY_PSEM, n_sleep}, {BY_MSEM, n_sleep}};
    void *args[4] = {&a[0], &a[1], &a[2], &a[3]};
    double v[4];

    bench_section("5b. what a sleep costs: a token passed back and forth between two "
                  "threads (us per round trip = two handoffs, lower is better)");
    bench_compare(4, run_pingpong, args, v);
    bench_range q_spin = bench_rounds(0, 1), q_sem = bench_rounds(3, 2);
    bench_figure("futex: sleep at once, wake", v[0], "us", NULL, 0);
    bench_figure("spinning on the word", v[1], "us", "futex", v[0]);
    bench_figure("sem_t", v[2], "us", "futex", v[0]);
    double r = bench_figure("mproc_semaphore", v[3], "us", "sem_t", v[2]);
    bench_note("a sleeper costs %.1f us more per handoff than a spinner here",
               (v[0] - v[1]) / 2);
    bench_info("handoff: futex sleep/wake / spinning (time)", v[0] / v[1], q_spin);
    bench_info("handoff: mproc_semaphore / sem_t (time)", r, q_sem);
}

/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    bench_init(argc, argv,
               "bench_sync: mproc's sync layer against pthread, POSIX semaphores "
               "and Python",
               NULL);

    A = mmap(NULL, sizeof *A, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (A == MAP_FAILED)
        bench_die("mmap", errno);

    /* Case 1 must come first (see become_multithreaded); case 4 compares
     * Python with case 3's figures. */
    double robust = NAN, mproc = NAN;
    if (bench_case(1))
        case_uncontended();
    else
        become_multithreaded();
    if (bench_case(2))
        case_threads();
    if (bench_case(3))
        case_processes(&robust, &mproc);
    if (bench_case(4))
        case_python(robust, mproc);
    if (bench_case(5)) {
        case_spin_pays();
        case_spin_saves();
    }
    return bench_finish();
}
