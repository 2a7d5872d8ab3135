/*
 * tools/lab_deadlock.c -- `mproc lab deadlock`: two threads, two locks
 * (seed 004, "Deadlock"; seed 000: keep critical sections short "to
 * avoid deadlocks").
 *
 * Each of two threads does K iterations; an iteration takes both locks,
 * A and B, adds 1 to a shared counter, and releases them. Every lock
 * acquisition waits at most 10 ms (mproc_lock_acquire with a timeout).
 *
 * Opposite order: thread 0 takes A then B, thread 1 takes B then A. The
 * deadlock is made to happen, not hoped for: at the start of every
 * iteration both threads meet at a barrier holding nothing, each takes
 * its first lock, and they meet at a second barrier -- now each holds
 * the lock the other is about to ask for, and neither can go on until
 * one gives up. The timeout detects it: the thread whose wait runs out
 * releases its first lock, backs off (mproc_backoff, exponential with
 * jitter) and tries the iteration again, without the barrier; the other
 * thread gets its second lock meanwhile. Both may time out together;
 * the back-off's jitter breaks that tie.
 *
 * A timeout alone does not prove a deadlock (the holder may just be
 * slow, e.g. preempted on a busy machine), so each thread publishes, in
 * one atomic word, the locks it holds and the one it waits for; a thread
 * whose wait timed out reads the other's word and counts a deadlock only
 * if that thread holds the lock it waited for and waits for one it
 * holds: a cycle in the wait-for graph. A thread sets its "waiting"
 * before it blocks, marks a lock held only after acquiring it and
 * unmarks it before releasing it, and checks before it clears its own
 * word, so of two threads that time out together at least one sees the
 * cycle -- and a cycle it sees was really there.
 *
 * One global order: both threads take A then B, with the same barriers
 * at the start of each iteration (not the second one, which would now
 * deadlock on the barrier itself). A cycle cannot form; timeouts can
 * still happen if the holder is preempted for 10 ms, and are counted
 * apart.
 *
 * Verdict: holds when the opposite order deadlocked (at least one cycle
 * seen, normally one per iteration), the global order never did, and
 * both ran all their iterations (the counter is exact).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define TIMEOUT_MS 10
#define MAX_ITERATIONS 200
#define BARRIER_MS 60000 /* never reached: a barrier that fails ends the run */

/* A thread's published state: bit 0 holds A, bit 1 holds B; bits 2-3
 * the lock it waits for, plus 1 (0: none). */
#define HOLDS(l) (1u << (l))
#define WANTS(l) (((unsigned)(l) + 1) << 2)
#define WANTED(word) ((int)((word) >> 2) - 1)

struct shared {
    bool ordered;
    unsigned iterations;
    mproc_lock locks[2];
    mproc_barrier start, both_hold;
    atomic_uint state[2];
    uint64_t counter;       /* guarded by both locks */
    atomic_int failed;      /* a barrier wait failed */
    /* Per iteration: how many threads' first attempt timed out. */
    atomic_uint first_timeouts[MAX_ITERATIONS];
};

struct worker {
    struct shared *s;
    int index;
    uint64_t timeouts;      /* waits that ran out */
    uint64_t deadlocks;     /* of which a cycle was seen */
    uint64_t done;
};

static bool meet(struct shared *s, mproc_barrier *b)
{
    if (mproc_barrier_wait(b, BARRIER_MS) >= 0)
        return true;
    atomic_store(&s->failed, 1);
    return false;
}

/* Take lock l (published as wanted, then held). */
static int take(struct shared *s, struct worker *w, int l)
{
    atomic_uint *me = &s->state[w->index];
    unsigned held = atomic_load(me) & 3u;
    atomic_store(me, held | WANTS(l));
    int rc = mproc_lock_acquire(&s->locks[l], TIMEOUT_MS);
    if (rc == 0) {
        atomic_store(me, held | HOLDS(l));
        return 0;
    }
    /* Timed out: is it a deadlock? Look before clearing our own word. */
    w->timeouts++;
    unsigned other = atomic_load(&s->state[1 - w->index]);
    int wanted = WANTED(other);
    if ((other & HOLDS(l)) && wanted >= 0 && (held & HOLDS(wanted)))
        w->deadlocks++;
    atomic_store(me, held);
    return rc;
}

static void give(struct shared *s, struct worker *w, int l)
{
    atomic_uint *me = &s->state[w->index];
    atomic_store(me, atomic_load(me) & ~HOLDS(l));
    mproc_lock_release(&s->locks[l]);
}

static int worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    int first = s->ordered || w->index == 0 ? 0 : 1, second = 1 - first;
    mproc_backoff b;
    mproc_backoff_init(&b, 200000, 5000000); /* 0.2 ms, doubling up to 5 ms */
    for (unsigned it = 0; it < s->iterations; it++) {
        if (!meet(s, &s->start))
            return -EPIPE;
        for (int attempt = 0;; attempt++) {
            if (take(s, w, first) != 0) {
                mproc_backoff_wait(&b); /* a slow holder (global order only) */
                continue;
            }
            /* Opposite order, first attempt: wait until the other thread
             * holds its first lock too. */
            if (!s->ordered && attempt == 0 && !meet(s, &s->both_hold)) {
                give(s, w, first);
                return -EPIPE;
            }
            if (take(s, w, second) == 0)
                break;
            if (attempt == 0)
                atomic_fetch_add(&s->first_timeouts[it], 1);
            give(s, w, first); /* back off, then try the iteration again */
            mproc_backoff_wait(&b);
        }
        s->counter++;
        w->done++;
        give(s, w, second);
        give(s, w, first);
        mproc_backoff_reset(&b);
    }
    return 0;
}

struct outcome {
    double seconds;
    uint64_t counter, done, timeouts, deadlocks, both_timed_out;
};

static int run(struct shared *s, bool ordered, struct outcome *out)
{
    struct worker w[2];
    mproc_thread *t[2];
    s->ordered = ordered;
    s->counter = 0;
    atomic_store(&s->failed, 0);
    for (unsigned i = 0; i < MAX_ITERATIONS; i++)
        atomic_store(&s->first_timeouts[i], 0);
    int rc = mproc_barrier_init(&s->start, 2, 0);
    if (rc == 0 && (rc = mproc_barrier_init(&s->both_hold, 2, 0)) != 0)
        mproc_barrier_destroy(&s->start);
    if (rc != 0)
        return rc;
    int started = 0;
    int64_t t0 = mproc_now_ns();
    for (; started < 2 && rc == 0; started++) {
        w[started] = (struct worker){ .s = s, .index = started };
        rc = mproc__lab_thread(&t[started], &(mproc_thread_opts){ .fn = worker_main,
                                                                   .arg = &w[started],
                                                                   .name = "lab-deadlock" });
    }
    if (rc != 0) {
        started--;
        mproc_barrier_abort(&s->start);
    }
    for (int i = 0; i < started; i++) {
        mproc_thread_join(t[i], -1, NULL);
        mproc_thread_destroy(t[i]);
    }
    out->seconds = (double)(mproc_now_ns() - t0) / 1e9;
    mproc_barrier_destroy(&s->start);
    mproc_barrier_destroy(&s->both_hold);
    if (rc == 0 && atomic_load(&s->failed))
        rc = -EPIPE;
    if (rc != 0)
        return rc;
    *out = (struct outcome){ .seconds = out->seconds, .counter = s->counter };
    for (int i = 0; i < 2; i++) {
        out->done += w[i].done;
        out->timeouts += w[i].timeouts;
        out->deadlocks += w[i].deadlocks;
    }
    for (unsigned i = 0; i < s->iterations; i++)
        out->both_timed_out += atomic_load(&s->first_timeouts[i]) == 2;
    return 0;
}

int mproc__lab_deadlock(const mproc__lab_opts *o, mproc__lab_report *r)
{
    struct shared *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->iterations = o->quick ? 20 : MAX_ITERATIONS;
    mproc_lock_init(&s->locks[0], 0);
    mproc_lock_init(&s->locks[1], 0);
    struct outcome opposite, ordered;
    mproc__progress("lab deadlock: locks taken in opposite orders");
    int rc = run(s, false, &opposite);
    if (rc == 0) {
        mproc__progress("lab deadlock: locks taken in one global order");
        rc = run(s, true, &ordered);
    }
    unsigned k = s->iterations;
    mproc_lock_destroy(&s->locks[0]);
    mproc_lock_destroy(&s->locks[1]);
    free(s);
    if (rc < 0) {
        mproc__lab_note(r, "a thread could not be started or a barrier failed: %s",
                        mproc_strerror(rc));
        return rc;
    }
    uint64_t want = 2 * (uint64_t)k;
    mproc__lab_metric(r, "iterations", (double)want, "count", "iterations (2 threads)");
    mproc__lab_metric(r, "timeout_ms", TIMEOUT_MS, "ms", "  each lock wait gives up after");
    mproc__lab_metric(r, "opposite_done", (double)opposite.counter, "count",
                      "opposite orders: iterations done");
    mproc__lab_metric(r, "opposite_timeouts", (double)opposite.timeouts, "count",
                      "  lock waits that timed out");
    mproc__lab_metric(r, "opposite_deadlocks", (double)opposite.deadlocks, "count",
                      "  of which a deadlock (a wait cycle)");
    mproc__lab_metric(r, "opposite_both_backed_off", (double)opposite.both_timed_out, "count",
                      "  iterations where both backed off");
    mproc__lab_metric(r, "opposite_ms_per_iteration", opposite.seconds * 1e3 / (double)k, "ms",
                      "  time per iteration");
    mproc__lab_metric(r, "ordered_done", (double)ordered.counter, "count",
                      "one global order: iterations done");
    mproc__lab_metric(r, "ordered_timeouts", (double)ordered.timeouts, "count",
                      "  lock waits that timed out");
    mproc__lab_metric(r, "ordered_deadlocks", (double)ordered.deadlocks, "count",
                      "  of which a deadlock (a wait cycle)");
    mproc__lab_metric(r, "ordered_ms_per_iteration", ordered.seconds * 1e3 / (double)k, "ms",
                      "  time per iteration");

    mproc__lab_note(r, "Opposite orders: thread 0 takes A then B, thread 1 B then A, and a "
                       "barrier makes both hold their first lock before asking for the "
                       "second: without a timeout they would wait forever.");
    mproc__lab_note(r, "A timed-out wait counts as a deadlock only when the other thread held "
                       "the lock waited for and waited for one this thread held.");
    if (ordered.timeouts)
        mproc__lab_note(r, "In one global order %llu waits timed out with no cycle: the holder "
                           "was slow (preempted), which a timeout cannot tell from a deadlock.",
                        (unsigned long long)ordered.timeouts);

    bool complete = opposite.counter == want && ordered.counter == want &&
                    opposite.done == want && ordered.done == want;
    if (!complete)
        mproc__lab_verdict(r, false,
                           "iterations done: %llu and %llu of %llu: the locks did not "
                           "protect the counter",
                           (unsigned long long)opposite.counter,
                           (unsigned long long)ordered.counter, (unsigned long long)want);
    else if (opposite.deadlocks > 0 && ordered.deadlocks == 0)
        mproc__lab_verdict(r, true,
                           "opposite orders deadlocked %llu times in %u iterations, each "
                           "detected by a timeout and undone by backing off; one global order: "
                           "no deadlock, all %llu iterations done",
                           (unsigned long long)opposite.deadlocks, k, (unsigned long long)want);
    else
        mproc__lab_verdict(r, false, "deadlocks seen: %llu in opposite orders, %llu in one "
                                     "order: a broken lab",
                           (unsigned long long)opposite.deadlocks,
                           (unsigned long long)ordered.deadlocks);
    return 0;
}
