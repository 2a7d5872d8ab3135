/*
 * tools/lab_race.c -- `mproc lab race`: the notes' race condition.
 *
 * Part 1: T threads each add 1 to a shared counter N times with a read
 * and a separate write (relaxed atomic load and store: the same lost
 * update as `counter += 1` in Python or C, without undefined behaviour),
 * then the same with an mproc_lock around the increment. The first loses
 * increments when threads run at once; the second is exact, and the
 * lock's counters say how often a thread found it held.
 *
 * Part 2: contention. Threads take a test-and-set spin lock many times
 * (a short critical section each time), once spinning on it and once
 * backing off exponentially (mproc_backoff) after each failed attempt:
 * the throughput of both, with as many threads as CPUs and with four
 * times as many (a holder that loses its CPU makes spinners burn theirs).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

enum { UNLOCKED, LOCKED, SPIN, BACKOFF };

struct shared {
    int mode;
    unsigned threads;
    uint64_t iterations;
    atomic_uint ready;     /* threads that reached the start line */
    atomic_uint_fast64_t counter;
    uint64_t plain;        /* guarded by `lock` or by `spin` */
    mproc_lock lock;
    atomic_int spin;
};

/* Wait until every thread is ready, so they really run at once. */
static void start_line(struct shared *s)
{
    atomic_fetch_add(&s->ready, 1);
    while (atomic_load(&s->ready) < s->threads)
        ;
}

static void spin_acquire(struct shared *s, mproc_backoff *b)
{
    while (atomic_exchange_explicit(&s->spin, 1, memory_order_acquire)) {
        if (b)
            mproc_backoff_wait(b);
    }
    if (b)
        mproc_backoff_reset(b);
}

static int worker(void *arg)
{
    struct shared *s = arg;
    mproc_backoff b;
    mproc_backoff_init(&b, 50, 20000);
    start_line(s);
    for (uint64_t i = 0; i < s->iterations; i++) {
        switch (s->mode) {
        case UNLOCKED: {
            uint64_t v = atomic_load_explicit(&s->counter, memory_order_relaxed);
            atomic_store_explicit(&s->counter, v + 1, memory_order_relaxed);
            break;
        }
        case LOCKED:
            if (mproc_lock_acquire(&s->lock, -1) != 0)
                return -1;
            s->plain++;
            mproc_lock_release(&s->lock);
            break;
        default:
            spin_acquire(s, s->mode == BACKOFF ? &b : NULL);
            for (int k = 0; k < 32; k++) /* the guarded update: +16, checked */
                s->plain += (uint64_t)k & 1;
            atomic_store_explicit(&s->spin, 0, memory_order_release);
            break;
        }
    }
    return 0;
}

/* Run s->threads workers in `mode`; the elapsed seconds, or < 0. */
static double run(struct shared *s, int mode)
{
    mproc_thread *t[256];
    s->mode = mode;
    atomic_store(&s->ready, 0);
    atomic_store(&s->counter, 0);
    s->plain = 0;
    int64_t t0 = mproc_now_ns();
    unsigned started = 0;
    int rc = 0;
    for (; started < s->threads; started++) {
        rc = mproc__lab_thread(&t[started], &(mproc_thread_opts){ .fn = worker, .arg = s,
                                                                   .name = "race" });
        if (rc != 0)
            break;
    }
    if (rc != 0) /* let the ones started get past the start line */
        s->threads = started;
    for (unsigned i = 0; i < started; i++) {
        int result = 0;
        mproc_thread_join(t[i], -1, &result);
        mproc_thread_destroy(t[i]);
        if (result != 0 && rc == 0)
            rc = -EIO;
    }
    return rc != 0 ? rc : (double)(mproc_now_ns() - t0) / 1e9;
}

int mproc__lab_race(const mproc__lab_opts *o, mproc__lab_report *r)
{
    unsigned threads = o->workers ? o->workers : mproc_cpu_count();
    if (threads < 2)
        threads = 2; /* a race needs two */
    if (threads > 64)
        threads = 64; /* four times this many run in part 2 */
    struct shared *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->threads = threads;
    mproc_lock_init(&s->lock, 0);
    uint64_t n = o->quick ? 1000000 : 10000000;
    uint64_t want = n * threads;

    mproc__progress("lab race: counter without a lock");
    s->iterations = n;
    double t_unlocked = run(s, UNLOCKED);
    uint64_t unlocked = atomic_load(&s->counter);
    mproc__progress("lab race: counter with a lock");
    double t_locked = run(s, LOCKED);
    uint64_t locked = s->plain;
    mproc_lock_counters lc;
    mproc_lock_stats(&s->lock, &lc);

    /* Part 2, with `threads` and then 4 x `threads` threads. */
    double rate[2][2]; /* [oversubscribed][backoff], M acquisitions/s */
    bool spin_exact = true, failed = t_unlocked < 0 || t_locked < 0;
    for (int over = 0; over < 2 && !failed; over++) {
        s->threads = over ? 4 * threads : threads;
        s->iterations = (o->quick ? 400000 : 4000000) / s->threads;
        uint64_t acquisitions = s->iterations * s->threads;
        for (int mode = 0; mode < 2 && !failed; mode++) {
            mproc__progress("lab race: %u threads %s", s->threads,
                            mode ? "backing off" : "spinning");
            double t = run(s, mode ? BACKOFF : SPIN);
            failed = t < 0;
            spin_exact = spin_exact && s->plain == 16 * acquisitions;
            rate[over][mode] = (double)acquisitions / t / 1e6;
        }
    }
    mproc_lock_destroy(&s->lock);
    free(s);
    if (failed) {
        mproc__lab_note(r, "a thread could not be started or failed");
        return -EAGAIN;
    }

    mproc__lab_metric(r, "threads", threads, "count", "threads");
    mproc__lab_metric(r, "expected", (double)want, "count", "increments made in all");
    mproc__lab_metric(r, "unlocked_total", (double)unlocked, "count", "counter without a lock");
    mproc__lab_metric(r, "unlocked_lost", (double)(want - unlocked), "count",
                      "  increments lost");
    mproc__lab_metric(r, "unlocked_lost_percent", 100.0 * (double)(want - unlocked) / (double)want,
                      "%", "  lost, of all");
    mproc__lab_metric(r, "locked_total", (double)locked, "count", "counter with mproc_lock");
    mproc__lab_metric(r, "lock_acquisitions", (double)lc.acquisitions, "count",
                      "  lock acquisitions");
    mproc__lab_metric(r, "lock_contended", (double)lc.contended, "count",
                      "  of which found the lock held");
    mproc__lab_metric(r, "lock_wait_ms", (double)lc.wait_ns / 1e6, "ms",
                      "  time spent asleep waiting for it");
    mproc__lab_metric(r, "unlocked_ns_per_increment", t_unlocked * 1e9 / (double)want, "ns",
                      "time per increment, no lock");
    mproc__lab_metric(r, "locked_ns_per_increment", t_locked * 1e9 / (double)want, "ns",
                      "time per increment, with the lock");
    mproc__lab_metric(r, "spin_macq_per_s", rate[0][0], "M/s", "spin lock, spinning");
    mproc__lab_metric(r, "backoff_macq_per_s", rate[0][1], "M/s",
                      "spin lock, exponential back-off");
    mproc__lab_metric(r, "backoff_over_spin", rate[0][1] / rate[0][0], "x",
                      "  back-off / spinning");
    mproc__lab_metric(r, "spin_4x_macq_per_s", rate[1][0], "M/s",
                      "4x the threads, spinning");
    mproc__lab_metric(r, "backoff_4x_macq_per_s", rate[1][1], "M/s",
                      "4x the threads, exponential back-off");
    mproc__lab_metric(r, "backoff_over_spin_4x", rate[1][1] / rate[1][0], "x",
                      "  back-off / spinning");

    mproc__lab_note(r, "Without a lock, two threads can read the same value and both write "
                       "value+1: one increment is lost.");
    if (lc.contended == 0)
        mproc__lab_note(r, "No thread ever found the lock held: they did not overlap "
                           "in this run.");
    for (int over = 0; over < 2; over++)
        mproc__lab_note(r, "With %u threads, %s was faster (%.2fx).", over ? 4 * threads : threads,
                        rate[over][1] >= rate[over][0] ? "backing off" : "spinning",
                        rate[over][1] >= rate[over][0] ? rate[over][1] / rate[over][0]
                                                       : rate[over][0] / rate[over][1]);

    bool lost = unlocked < want;
    bool exact = locked == want && spin_exact;
    if (lost && exact)
        mproc__lab_verdict(r, true,
                           "%.2f%% of the unlocked increments were lost; with the lock the "
                           "count is exact (%llu of %llu acquisitions found it held)",
                           100.0 * (double)(want - unlocked) / (double)want,
                           (unsigned long long)lc.contended,
                           (unsigned long long)lc.acquisitions);
    else if (!exact)
        mproc__lab_verdict(r, false, "the locked count is wrong (%llu of %llu): a broken lock",
                           (unsigned long long)locked, (unsigned long long)want);
    else
        mproc__lab_verdict(r, false,
                           "no increment was lost: the threads never overlapped here "
                           "(%u CPUs); the race is still there, only unseen",
                           mproc_cpu_count());
    return 0;
}
