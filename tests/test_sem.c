/*
 * tests/test_sem.c -- mproc_semaphore: bounds under contention (threads and
 * processes), MPROC_BOUNDED, release(n) waking n waiters, errors, timeouts.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "mproc/sync.h"
#include "runner.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* at most K inside                                                    */
/* ------------------------------------------------------------------ */

struct bound {
    mproc_semaphore sem;
    atomic_int inside;
    atomic_int max_inside;
    atomic_long passes;
    atomic_long timeouts;
    atomic_int bad_value_seen; /* a value < 0 or > k was read */
    atomic_int bad_value;
    long n;
    unsigned k;
};

static void bound_loop(struct bound *b, uint64_t seed)
{
    uint64_t rng = seed | 1;
    for (long i = 0; i < b->n; i++) {
        int rc;
        switch (test_xorshift(&rng) % 4) {
        case 0:
            rc = mproc_semaphore_try(&b->sem);
            if (rc == -EAGAIN)
                continue;
            break;
        case 1:
            rc = mproc_semaphore_acquire(&b->sem, 1);
            if (rc == -ETIMEDOUT) {
                atomic_fetch_add(&b->timeouts, 1);
                continue;
            }
            break;
        default:
            rc = mproc_semaphore_acquire(&b->sem, 20000);
            CHECK_MSG(rc == 0, "acquire(20000) returned %d (%s): lost wake-up?", rc,
                      mproc_errname(rc));
            break;
        }
        CHECK_OK(rc);
        int now = atomic_fetch_add(&b->inside, 1) + 1;
        int m = atomic_load(&b->max_inside);
        while (now > m && !atomic_compare_exchange_weak(&b->max_inside, &m, now))
            ;
        int v = mproc_semaphore_value(&b->sem);
        if (v < 0 || v > (int)b->k) {
            atomic_store(&b->bad_value, v);
            atomic_store(&b->bad_value_seen, 1);
        }
        if (test_xorshift(&rng) % 8 == 0)
            sched_yield();
        atomic_fetch_sub(&b->inside, 1);
        atomic_fetch_add(&b->passes, 1);
        CHECK_OK(mproc_semaphore_release(&b->sem, 1));
    }
}

static void *bound_thread(void *arg)
{
    bound_loop(arg, (uint64_t)(uintptr_t)&arg);
    return NULL;
}

static int bound_proc(void *arg)
{
    bound_loop(arg, (uint64_t)getpid() * 0x9e3779b97f4a7c15ull);
    return 0;
}

TEST_T(sem_at_most_k_inside_threads, 60)
{
    enum { T = 6 };
    for (unsigned flags = 0; flags <= MPROC_BOUNDED; flags += MPROC_BOUNDED) {
        struct bound *b = calloc(1, sizeof *b);
        CHECK(b != NULL);
        b->k = 2;
        b->n = test_scaled_stress(30000);
        CHECK_OK(mproc_semaphore_init(&b->sem, b->k, flags));
        pthread_t t[T];
        for (int i = 0; i < T; i++)
            t[i] = test_start_thread(bound_thread, b);
        for (int i = 0; i < T; i++)
            test_join_thread(t[i]);
        CHECK_MSG(atomic_load(&b->max_inside) <= (int)b->k, "%d inside at once, K = %u",
                  atomic_load(&b->max_inside), b->k);
        CHECK(atomic_load(&b->max_inside) >= 1);
        CHECK_MSG(atomic_load(&b->bad_value_seen) == 0, "value %d seen",
                  atomic_load(&b->bad_value));
        CHECK_EQ(mproc_semaphore_value(&b->sem), b->k);
        CHECK_OK(mproc_semaphore_destroy(&b->sem));
        free(b);
    }
}

TEST_T(sem_at_most_k_inside_processes, 60)
{
    enum { P = 4 };
    struct bound *b = mproc_shared_calloc(sizeof *b);
    CHECK(b != NULL);
    b->k = 2;
    b->n = test_scaled_stress(30000);
    CHECK_OK(mproc_semaphore_init(&b->sem, b->k, MPROC_SHARED));
    pid_t pid[P];
    for (int i = 0; i < P; i++)
        pid[i] = test_fork(bound_proc, b);
    for (int i = 0; i < P; i++)
        test_expect_child_ok(pid[i]);
    CHECK_MSG(atomic_load(&b->max_inside) <= (int)b->k, "%d inside at once, K = %u",
              atomic_load(&b->max_inside), b->k);
    CHECK(atomic_load(&b->max_inside) >= 1);
    CHECK_MSG(atomic_load(&b->bad_value_seen) == 0, "value %d seen",
              atomic_load(&b->bad_value));
    CHECK_EQ(mproc_semaphore_value(&b->sem), b->k);
    CHECK_OK(mproc_semaphore_destroy(&b->sem));
    CHECK_OK(mproc_shared_free(b));
}

/* A semaphore with one permit is a lock: a plain counter stays exact
 * across processes (own mapping). */
struct sem_counter {
    mproc_semaphore sem;
    long counter;
    long n;
};

static int sem_counter_proc(void *arg)
{
    struct sem_counter *s = arg;
    for (long i = 0; i < s->n; i++) {
        CHECK_OK(mproc_semaphore_acquire(&s->sem, -1));
        long v = s->counter;
        s->counter = v + 1;
        CHECK_OK(mproc_semaphore_release(&s->sem, 1));
    }
    return 0;
}

TEST_T(sem_binary_exact_processes, 60)
{
    enum { P = 3 };
    struct sem_counter *s = test_map_shared(sizeof *s);
    CHECK_OK(mproc_semaphore_init(&s->sem, 1, MPROC_SHARED | MPROC_BOUNDED));
    s->n = test_scaled_stress(50000);
    pid_t pid[P];
    for (int i = 0; i < P; i++)
        pid[i] = test_fork(sem_counter_proc, s);
    for (int i = 0; i < P; i++)
        test_expect_child_ok(pid[i]);
    CHECK_EQ(s->counter, P * s->n);
    CHECK_EQ(mproc_semaphore_value(&s->sem), 1);
    CHECK_RC(mproc_semaphore_release(&s->sem, 1), -EOVERFLOW);
}

/* Hand-off: producers release permits one at a time, consumers block for
 * them; every permit is taken exactly once, none is lost. */
struct handoff {
    mproc_semaphore sem;
    long per;
    atomic_long taken;
};

static void *handoff_producer(void *arg)
{
    struct handoff *h = arg;
    for (long i = 0; i < h->per; i++) {
        CHECK_OK(mproc_semaphore_release(&h->sem, 1));
        if (i % 64 == 0)
            sched_yield();
    }
    return NULL;
}

static void *handoff_consumer(void *arg)
{
    struct handoff *h = arg;
    for (long i = 0; i < h->per; i++) {
        int rc = mproc_semaphore_acquire(&h->sem, 20000);
        CHECK_MSG(rc == 0, "acquire returned %d (%s) after %ld: lost wake-up?", rc,
                  mproc_errname(rc), i);
        atomic_fetch_add(&h->taken, 1);
    }
    return NULL;
}

TEST_T(sem_handoff_no_lost_permits, 60)
{
    struct handoff *h = calloc(1, sizeof *h);
    CHECK(h != NULL);
    CHECK_OK(mproc_semaphore_init(&h->sem, 0, 0));
    h->per = test_scaled_stress(100000);
    pthread_t t[4];
    t[0] = test_start_thread(handoff_consumer, h);
    t[1] = test_start_thread(handoff_consumer, h);
    t[2] = test_start_thread(handoff_producer, h);
    t[3] = test_start_thread(handoff_producer, h);
    for (int i = 0; i < 4; i++)
        test_join_thread(t[i]);
    CHECK_EQ(atomic_load(&h->taken), 2 * h->per);
    CHECK_EQ(mproc_semaphore_value(&h->sem), 0);
    CHECK_RC(mproc_semaphore_try(&h->sem), -EAGAIN);
    CHECK_OK(mproc_semaphore_destroy(&h->sem));
    free(h);
}

/* ------------------------------------------------------------------ */
/* bounded, overflow, errors                                           */
/* ------------------------------------------------------------------ */

TEST(sem_bounded_overflow)
{
    for (unsigned shared = 0; shared <= MPROC_SHARED; shared += MPROC_SHARED) {
        mproc_semaphore s;
        CHECK_OK(mproc_semaphore_init(&s, 2, MPROC_BOUNDED | shared));
        CHECK_EQ(mproc_semaphore_value(&s), 2);
        CHECK_RC(mproc_semaphore_release(&s, 1), -EOVERFLOW);
        CHECK_EQ(mproc_semaphore_value(&s), 2);
        CHECK_OK(mproc_semaphore_acquire(&s, 0));
        CHECK_EQ(mproc_semaphore_value(&s), 1);
        CHECK_RC(mproc_semaphore_release(&s, 2), -EOVERFLOW);
        CHECK_EQ(mproc_semaphore_value(&s), 1);
        CHECK_RC(mproc_semaphore_release(&s, UINT_MAX), -EOVERFLOW);
        CHECK_EQ(mproc_semaphore_value(&s), 1);
        CHECK_OK(mproc_semaphore_release(&s, 1));
        CHECK_EQ(mproc_semaphore_value(&s), 2);
        CHECK_OK(mproc_semaphore_try(&s));
        CHECK_OK(mproc_semaphore_try(&s));
        CHECK_RC(mproc_semaphore_try(&s), -EAGAIN);
        CHECK_EQ(mproc_semaphore_value(&s), 0);
        CHECK_OK(mproc_semaphore_release(&s, 2));
        CHECK_EQ(mproc_semaphore_value(&s), 2);
        CHECK_OK(mproc_semaphore_destroy(&s));

        /* Bounded at 0: nothing can ever be released. */
        CHECK_OK(mproc_semaphore_init(&s, 0, MPROC_BOUNDED | shared));
        CHECK_RC(mproc_semaphore_release(&s, 1), -EOVERFLOW);
        CHECK_EQ(mproc_semaphore_value(&s), 0);
        CHECK_OK(mproc_semaphore_destroy(&s));
    }
}

TEST(sem_unbounded_value_max)
{
    mproc_semaphore s;
    CHECK_OK(mproc_semaphore_init(&s, MPROC_SEM_VALUE_MAX, 0));
    CHECK_EQ(mproc_semaphore_value(&s), (int)MPROC_SEM_VALUE_MAX);
    CHECK_RC(mproc_semaphore_release(&s, 1), -EOVERFLOW);
    CHECK_EQ(mproc_semaphore_value(&s), (int)MPROC_SEM_VALUE_MAX);
    CHECK_OK(mproc_semaphore_acquire(&s, 0));
    CHECK_RC(mproc_semaphore_release(&s, 2), -EOVERFLOW);
    CHECK_OK(mproc_semaphore_release(&s, 1));
    CHECK_EQ(mproc_semaphore_value(&s), (int)MPROC_SEM_VALUE_MAX);
    CHECK_OK(mproc_semaphore_destroy(&s));

    /* Unbounded: releases past the initial value are fine, up to the max,
     * and a release that would wrap 32 bits is refused. */
    CHECK_OK(mproc_semaphore_init(&s, 1, 0));
    CHECK_OK(mproc_semaphore_release(&s, 5));
    CHECK_EQ(mproc_semaphore_value(&s), 6);
    CHECK_RC(mproc_semaphore_release(&s, UINT_MAX), -EOVERFLOW);
    CHECK_RC(mproc_semaphore_release(&s, UINT_MAX - 4), -EOVERFLOW);
    CHECK_RC(mproc_semaphore_release(&s, MPROC_SEM_VALUE_MAX), -EOVERFLOW);
    CHECK_EQ(mproc_semaphore_value(&s), 6);
    CHECK_OK(mproc_semaphore_release(&s, MPROC_SEM_VALUE_MAX - 6));
    CHECK_EQ(mproc_semaphore_value(&s), (int)MPROC_SEM_VALUE_MAX);
    CHECK_OK(mproc_semaphore_destroy(&s));

    CHECK_RC(mproc_semaphore_init(&s, MPROC_SEM_VALUE_MAX + 1u, 0), -EINVAL);
    CHECK_RC(mproc_semaphore_init(&s, UINT_MAX, MPROC_BOUNDED), -EINVAL);
}

TEST(sem_invalid)
{
    mproc_semaphore s;
    CHECK_RC(mproc_semaphore_init(NULL, 1, 0), -EINVAL);
    CHECK_RC(mproc_semaphore_init(&s, 1, 0x10), -EINVAL);
    CHECK_RC(mproc_semaphore_init(&s, 1, ~0u), -EINVAL);
    for (int fill = 0; fill < 3; fill++) {
        if (fill < 2) {
            memset(&s, fill ? 0xa5 : 0, sizeof s);
        } else {
            CHECK_OK(mproc_semaphore_init(&s, 3, 0));
            CHECK_OK(mproc_semaphore_destroy(&s));
        }
        CHECK_RC(mproc_semaphore_acquire(&s, 0), -EINVAL);
        CHECK_RC(mproc_semaphore_acquire(&s, -1), -EINVAL);
        CHECK_RC(mproc_semaphore_try(&s), -EINVAL);
        CHECK_RC(mproc_semaphore_release(&s, 1), -EINVAL);
        CHECK_RC(mproc_semaphore_value(&s), -EINVAL);
        CHECK_RC(mproc_semaphore_destroy(&s), -EINVAL);
    }
    CHECK_RC(mproc_semaphore_acquire(NULL, 0), -EINVAL);
    CHECK_RC(mproc_semaphore_try(NULL), -EINVAL);
    CHECK_RC(mproc_semaphore_release(NULL, 1), -EINVAL);
    CHECK_RC(mproc_semaphore_value(NULL), -EINVAL);
    CHECK_RC(mproc_semaphore_destroy(NULL), -EINVAL);

    CHECK_OK(mproc_semaphore_init(&s, 1, 0));
    CHECK_RC(mproc_semaphore_release(&s, 0), -EINVAL);
    CHECK_EQ(mproc_semaphore_value(&s), 1);
    CHECK_RC(mproc_semaphore_acquire(&s, -2), -EINVAL);
    CHECK_RC(mproc_semaphore_acquire(&s, INT64_MIN), -EINVAL);
    CHECK_EQ(mproc_semaphore_value(&s), 1);
    CHECK_OK(mproc_semaphore_try(&s));
    CHECK_RC(mproc_semaphore_try(&s), -EAGAIN);
    CHECK_RC(mproc_semaphore_acquire(&s, -2), -EINVAL);
    CHECK_EQ(mproc_semaphore_value(&s), 0);
    CHECK_OK(mproc_semaphore_destroy(&s));
}

TEST(sem_timeout_lower_bound)
{
    static const int64_t tmo[] = { 0, 1, 20, 150 };
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_semaphore s;
        CHECK_OK(mproc_semaphore_init(&s, 0, flags));
        for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
            int64_t t0 = mproc_now_ns();
            CHECK_RC(mproc_semaphore_acquire(&s, tmo[i]), -ETIMEDOUT);
            int64_t dt = mproc_now_ns() - t0;
            CHECK_MSG(dt >= tmo[i] * 1000000, "acquire(%lld) gave up after %lld ns",
                      (long long)tmo[i], (long long)dt);
            CHECK_EQ(mproc_semaphore_value(&s), 0);
        }
        CHECK_RC(mproc_semaphore_try(&s), -EAGAIN);
        CHECK_OK(mproc_semaphore_destroy(&s));
    }
}

/* ------------------------------------------------------------------ */
/* release(n) wakes n waiters                                          */
/* ------------------------------------------------------------------ */

enum { SW = 5 };

struct sem_waiters {
    mproc_semaphore sem;
    int64_t timeout_ms;
    atomic_int tids[SW];
    atomic_int started;
    atomic_int done;
    atomic_int bad_rc;
};

static void *sem_waiter(void *arg)
{
    struct sem_waiters *w = arg;
    atomic_store(&w->tids[atomic_fetch_add(&w->started, 1)], gettid());
    int rc = mproc_semaphore_acquire(&w->sem, w->timeout_ms);
    if (rc != 0)
        atomic_store(&w->bad_rc, rc);
    atomic_fetch_add(&w->done, 1);
    return NULL;
}

static void release_n_wakes_n(unsigned flags, int64_t timeout_ms)
{
    struct sem_waiters *w = calloc(1, sizeof *w);
    CHECK(w != NULL);
    w->timeout_ms = timeout_ms;
    CHECK_OK(mproc_semaphore_init(&w->sem, 0, flags));
    pthread_t t[SW];
    for (int i = 0; i < SW; i++)
        t[i] = test_start_thread(sem_waiter, w);
    WAIT_UNTIL(atomic_load(&w->started) == SW, 10000);
    for (int i = 0; i < SW; i++) {
        WAIT_UNTIL(atomic_load(&w->tids[i]) != 0, 10000);
        test_wait_sleeping(atomic_load(&w->tids[i]), 10000);
    }
    CHECK_RC(mproc_semaphore_destroy(&w->sem), -EBUSY);
    CHECK_OK(mproc_semaphore_release(&w->sem, 3));
    WAIT_UNTIL(atomic_load(&w->done) == 3, 20000);
    /* The other two still wait: no permit is left for them. */
    mproc_sleep_ms(50);
    CHECK_EQ(atomic_load(&w->done), 3);
    CHECK_EQ(mproc_semaphore_value(&w->sem), 0);
    CHECK_OK(mproc_semaphore_release(&w->sem, 1));
    WAIT_UNTIL(atomic_load(&w->done) == 4, 20000);
    CHECK_OK(mproc_semaphore_release(&w->sem, 2));
    WAIT_UNTIL(atomic_load(&w->done) == 5, 20000);
    for (int i = 0; i < SW; i++)
        test_join_thread(t[i]);
    CHECK_OK(atomic_load(&w->bad_rc));
    CHECK_EQ(mproc_semaphore_value(&w->sem), 1);
    CHECK_OK(mproc_semaphore_destroy(&w->sem));
    free(w);
}

TEST(sem_release_n_wakes_n)
{
    release_n_wakes_n(0, -1);
    release_n_wakes_n(MPROC_SHARED, 30000);
    release_n_wakes_n(0, INT64_MAX);
}

/* Between processes: children block on an empty semaphore; the parent
 * releases them all with one call. */
struct xsem {
    mproc_semaphore sem;
    mproc_semaphore back;
    atomic_int started;
};

static int xsem_child(void *arg)
{
    struct xsem *x = arg;
    atomic_fetch_add(&x->started, 1);
    CHECK_OK(mproc_semaphore_acquire(&x->sem, 30000));
    CHECK_OK(mproc_semaphore_release(&x->back, 1));
    return 0;
}

TEST(sem_cross_process_release_n)
{
    enum { P = 4 };
    struct xsem *x = mproc_shared_calloc(sizeof *x);
    CHECK(x != NULL);
    CHECK_OK(mproc_semaphore_init(&x->sem, 0, MPROC_SHARED));
    CHECK_OK(mproc_semaphore_init(&x->back, 0, MPROC_SHARED));
    pid_t pid[P];
    for (int i = 0; i < P; i++)
        pid[i] = test_fork(xsem_child, x);
    WAIT_UNTIL(atomic_load(&x->started) == P, 10000);
    for (int i = 0; i < P; i++)
        test_wait_sleeping(pid[i], 10000);
    CHECK_OK(mproc_semaphore_release(&x->sem, P));
    for (int i = 0; i < P; i++)
        CHECK_OK(mproc_semaphore_acquire(&x->back, 30000));
    for (int i = 0; i < P; i++)
        test_expect_child_ok(pid[i]);
    CHECK_EQ(mproc_semaphore_value(&x->sem), 0);
    CHECK_EQ(mproc_semaphore_value(&x->back), 0);
    CHECK_OK(mproc_semaphore_destroy(&x->sem));
    CHECK_OK(mproc_semaphore_destroy(&x->back));
    CHECK_OK(mproc_shared_free(x));
}

/* Ping-pong between two processes on two semaphores. */
struct pingpong {
    mproc_semaphore ping, pong;
    long rounds;
    long ball;
};

static int pong_child(void *arg)
{
    struct pingpong *p = arg;
    for (long i = 0; i < p->rounds; i++) {
        CHECK_OK(mproc_semaphore_acquire(&p->ping, 30000));
        CHECK_EQ(p->ball, 2 * i + 1);
        p->ball++;
        CHECK_OK(mproc_semaphore_release(&p->pong, 1));
    }
    return 0;
}

TEST_T(sem_cross_process_ping_pong, 60)
{
    struct pingpong *p = test_map_shared(sizeof *p);
    CHECK_OK(mproc_semaphore_init(&p->ping, 0, MPROC_SHARED));
    CHECK_OK(mproc_semaphore_init(&p->pong, 0, MPROC_SHARED));
    p->rounds = test_scaled_stress(20000);
    pid_t pid = test_fork(pong_child, p);
    for (long i = 0; i < p->rounds; i++) {
        CHECK_EQ(p->ball, 2 * i);
        p->ball++;
        CHECK_OK(mproc_semaphore_release(&p->ping, 1));
        CHECK_OK(mproc_semaphore_acquire(&p->pong, 30000));
    }
    test_expect_child_ok(pid);
    CHECK_EQ(p->ball, 2 * p->rounds);
}

/* ------------------------------------------------------------------ */
/* waits are not interrupted by signals                                */
/* ------------------------------------------------------------------ */

static void *sig_releaser(void *arg)
{
    test_block_sigalrm();
    mproc_sleep_ms(100);
    CHECK_OK(mproc_semaphore_release(arg, 1));
    return NULL;
}

TEST(sem_waits_not_interrupted_by_signals)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_semaphore s;
        CHECK_OK(mproc_semaphore_init(&s, 0, flags));
        atomic_store(&test_sigalrm_count, 0);
        test_sigalrm_every(1000);
        CHECK_TIMES_OUT(mproc_semaphore_acquire(&s, 150), 150);
        pthread_t t = test_start_thread(sig_releaser, &s);
        CHECK_OK(mproc_semaphore_acquire(&s, -1));
        test_sigalrm_every(0);
        test_join_thread(t);
        CHECK_MSG(atomic_load(&test_sigalrm_count) >= 20, "only %d signals",
                  atomic_load(&test_sigalrm_count));
        CHECK_EQ(mproc_semaphore_value(&s), 0);
        CHECK_OK(mproc_semaphore_destroy(&s));
    }
}
