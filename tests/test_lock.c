/*
 * tests/test_lock.c -- mproc_lock and mproc_rlock: exact mutual exclusion
 * under contention (threads, processes, threads in several processes, a
 * mapping at two addresses), every error code of the contract, timeouts
 * (lower bounds only), ownership across fork, and the contention counters.
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
#include <sys/mman.h>
#include <unistd.h>

#include "mproc/sync.h"
#include "runner.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* exactness under contention                                          */
/* ------------------------------------------------------------------ */

struct counted {
    mproc_lock lock;
    mproc_rlock rlock;
    long counter;
    long n;      /* increments per party */
    int use_rlock;
};

static void count_loop(struct counted *c)
{
    for (long i = 0; i < c->n; i++) {
        if (c->use_rlock) {
            CHECK_OK(mproc_rlock_acquire(&c->rlock, -1));
            CHECK_OK(mproc_rlock_acquire(&c->rlock, -1));
            long v = c->counter;
            c->counter = v + 1;
            CHECK_OK(mproc_rlock_release(&c->rlock));
            CHECK_OK(mproc_rlock_release(&c->rlock));
        } else {
            CHECK_OK(mproc_lock_acquire(&c->lock, -1));
            long v = c->counter;
            c->counter = v + 1;
            CHECK_OK(mproc_lock_release(&c->lock));
        }
    }
}

static void *count_thread(void *arg)
{
    count_loop(arg);
    return NULL;
}

static int count_proc(void *arg)
{
    count_loop(arg);
    return 0;
}

static void check_counted(struct counted *c, long total)
{
    mproc_lock_counters st;
    CHECK_EQ(c->counter, total);
    if (c->use_rlock) {
        CHECK_OK(mproc_rlock_stats(&c->rlock, &st));
        CHECK_EQ(mproc_rlock_is_owned(&c->rlock), 0);
        CHECK_OK(mproc_rlock_try(&c->rlock));
        CHECK_OK(mproc_rlock_release(&c->rlock));
    } else {
        CHECK_OK(mproc_lock_stats(&c->lock, &st));
        CHECK_EQ(mproc_lock_locked(&c->lock), 0);
    }
    CHECK_EQ(st.acquisitions, total);
    CHECK(st.contended <= st.acquisitions);
    CHECK_EQ(st.owner_deaths, 0);
}

static void threads_exact(int use_rlock, unsigned flags)
{
    enum { T = 4 };
    struct counted *c = calloc(1, sizeof *c);
    CHECK(c != NULL);
    CHECK_OK(mproc_lock_init(&c->lock, flags));
    CHECK_OK(mproc_rlock_init(&c->rlock, flags));
    c->n = test_scaled_stress(100000);
    c->use_rlock = use_rlock;
    pthread_t t[T];
    for (int i = 0; i < T; i++)
        t[i] = test_start_thread(count_thread, c);
    for (int i = 0; i < T; i++)
        test_join_thread(t[i]);
    check_counted(c, T * c->n);
    CHECK_OK(mproc_lock_destroy(&c->lock));
    CHECK_OK(mproc_rlock_destroy(&c->rlock));
    free(c);
}

TEST_T(lock_threads_exact, 60)
{
    threads_exact(0, 0);
}

TEST_T(lock_threads_exact_shared_flag, 60)
{
    threads_exact(0, MPROC_SHARED);
}

TEST_T(rlock_threads_exact, 60)
{
    threads_exact(1, 0);
}

/* `nproc` processes, each doing c->n increments, on a struct the caller
 * placed in shared memory. */
static void procs_exact(struct counted *c, int use_rlock, int nproc)
{
    memset(c, 0, sizeof *c);
    CHECK_OK(mproc_lock_init(&c->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&c->rlock, MPROC_SHARED));
    c->n = test_scaled_stress(100000);
    c->use_rlock = use_rlock;
    pid_t pid[8];
    for (int i = 0; i < nproc; i++)
        pid[i] = test_fork(count_proc, c);
    for (int i = 0; i < nproc; i++)
        test_expect_child_ok(pid[i]);
    check_counted(c, nproc * c->n);
    CHECK_OK(mproc_lock_destroy(&c->lock));
    CHECK_OK(mproc_rlock_destroy(&c->rlock));
}

TEST_T(lock_procs_exact_shared_calloc, 60)
{
    struct counted *c = mproc_shared_calloc(sizeof *c);
    CHECK(c != NULL);
    procs_exact(c, 0, 4);
    CHECK_OK(mproc_shared_free(c));
}

TEST_T(lock_procs_exact_own_mmap, 60)
{
    struct counted *c = test_map_shared(sizeof *c);
    procs_exact(c, 0, 3);
    munmap(c, sizeof *c);
}

TEST_T(rlock_procs_exact_shared_calloc, 60)
{
    struct counted *c = mproc_shared_calloc(sizeof *c);
    CHECK(c != NULL);
    procs_exact(c, 1, 4);
    CHECK_OK(mproc_shared_free(c));
}

TEST_T(rlock_procs_exact_own_mmap, 60)
{
    struct counted *c = test_map_shared(sizeof *c);
    procs_exact(c, 1, 2);
    munmap(c, sizeof *c);
}

/* Threads of several processes on one lock: 2 children with 2 threads
 * each, plus 2 threads of the parent (started after the forks). */
static int two_threads_proc(void *arg)
{
    pthread_t a = test_start_thread(count_thread, arg);
    pthread_t b = test_start_thread(count_thread, arg);
    test_join_thread(a);
    test_join_thread(b);
    return 0;
}

static void mixed_exact(int use_rlock)
{
    struct counted *c = mproc_shared_calloc(sizeof *c);
    CHECK(c != NULL);
    CHECK_OK(mproc_lock_init(&c->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&c->rlock, MPROC_SHARED));
    c->n = test_scaled_stress(50000);
    c->use_rlock = use_rlock;
    pid_t p1 = test_fork(two_threads_proc, c);
    pid_t p2 = test_fork(two_threads_proc, c);
    two_threads_proc(c);
    test_expect_child_ok(p1);
    test_expect_child_ok(p2);
    check_counted(c, 6 * c->n);
    CHECK_OK(mproc_shared_free(c));
}

TEST_T(lock_procs_and_threads_exact, 60)
{
    mixed_exact(0);
}

TEST_T(rlock_procs_and_threads_exact, 60)
{
    mixed_exact(1);
}

/* A MPROC_SHARED lock holds no pointers: the same memfd mapped at two
 * addresses in one process, and at a third in a child, is one lock. */
struct two_views {
    struct counted *view[2];
    int which;
};

static void *view_thread(void *arg)
{
    struct two_views *tv = arg;
    count_loop(tv->view[tv->which]);
    return NULL;
}

static int remap_child(void *arg)
{
    int fd = *(int *)arg;
    struct counted *c = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(c != MAP_FAILED);
    count_loop(c);
    count_loop(c);
    return 0;
}

TEST_T(lock_shared_mapped_at_two_addresses, 60)
{
    for (int use_rlock = 0; use_rlock < 2; use_rlock++) {
        int fd = memfd_create("mproc-test-lock", 0);
        CHECK(fd >= 0);
        CHECK_EQ(ftruncate(fd, 4096), 0);
        struct counted *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        struct counted *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        CHECK(a != MAP_FAILED && b != MAP_FAILED && a != b);
        CHECK_OK(mproc_lock_init(&a->lock, MPROC_SHARED));
        CHECK_OK(mproc_rlock_init(&a->rlock, MPROC_SHARED));
        a->n = test_scaled_stress(50000);
        a->use_rlock = use_rlock;

        /* Held through one view means held through the other. */
        CHECK_OK(mproc_lock_acquire(&a->lock, -1));
        CHECK_EQ(mproc_lock_locked(&b->lock), 1);
        CHECK_RC(mproc_lock_try(&b->lock), -EDEADLK);
        /* Counters are shared too: reset through the other view. */
        CHECK_OK(mproc_lock_stats_reset(&a->lock));
        CHECK_OK(mproc_lock_release(&b->lock));
        CHECK_EQ(mproc_lock_locked(&a->lock), 0);

        pid_t pid = test_fork(remap_child, &fd);
        struct two_views v0 = { { a, b }, 0 }, v1 = { { a, b }, 1 };
        pthread_t t0 = test_start_thread(view_thread, &v0);
        pthread_t t1 = test_start_thread(view_thread, &v1);
        test_join_thread(t0);
        test_join_thread(t1);
        test_expect_child_ok(pid);
        check_counted(b, 4 * a->n);
        munmap(a, 4096);
        munmap(b, 4096);
        close(fd);
    }
}

/* Timed acquires (0 and 1 ms) and tries racing with releases must not
 * lose a wake-up for the blocking acquirers nor break exclusion. */
struct timed_stress {
    mproc_lock lock;
    long counter;
    long n;
    atomic_long successes;
    atomic_long timeouts;
    atomic_long busy;
    atomic_int inside;
};

static void *timed_stress_thread(void *arg)
{
    struct timed_stress *s = arg;
    uint64_t rng = (uint64_t)(uintptr_t)&rng | 1;
    for (long i = 0; i < s->n; i++) {
        int rc;
        switch (test_xorshift(&rng) % 4) {
        case 0:
            rc = mproc_lock_try(&s->lock);
            if (rc == -EBUSY) {
                atomic_fetch_add(&s->busy, 1);
                continue;
            }
            break;
        case 1:
            rc = mproc_lock_acquire(&s->lock, 0);
            break;
        case 2:
            rc = mproc_lock_acquire(&s->lock, 1);
            break;
        default:
            /* Long enough that running out means a lost wake-up. */
            rc = mproc_lock_acquire(&s->lock, 20000);
            CHECK_MSG(rc == 0, "acquire(20000) returned %d (%s): lost wake-up?",
                      rc, mproc_errname(rc));
            break;
        }
        if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&s->timeouts, 1);
            continue;
        }
        CHECK_OK(rc);
        CHECK_EQ(atomic_fetch_add(&s->inside, 1), 0);
        s->counter++;
        if (test_xorshift(&rng) % 8 == 0)
            sched_yield();
        CHECK_EQ(atomic_fetch_sub(&s->inside, 1), 1);
        atomic_fetch_add(&s->successes, 1);
        CHECK_OK(mproc_lock_release(&s->lock));
    }
    return NULL;
}

TEST_T(lock_timed_acquire_stress, 60)
{
    enum { T = 4 };
    struct timed_stress *s = calloc(1, sizeof *s);
    CHECK(s != NULL);
    CHECK_OK(mproc_lock_init(&s->lock, 0));
    s->n = test_scaled_stress(40000);
    pthread_t t[T];
    for (int i = 0; i < T; i++)
        t[i] = test_start_thread(timed_stress_thread, s);
    for (int i = 0; i < T; i++)
        test_join_thread(t[i]);
    CHECK_EQ(s->counter, atomic_load(&s->successes));
    CHECK_EQ(atomic_load(&s->successes) + atomic_load(&s->timeouts) + atomic_load(&s->busy),
             T * s->n);
    mproc_lock_counters st;
    CHECK_OK(mproc_lock_stats(&s->lock, &st));
    CHECK_EQ(st.acquisitions, s->counter);
    CHECK(st.contended <= st.acquisitions);
    CHECK_EQ(mproc_lock_locked(&s->lock), 0);
    CHECK_OK(mproc_lock_acquire(&s->lock, 0));
    CHECK_OK(mproc_lock_release(&s->lock));
    CHECK_OK(mproc_lock_destroy(&s->lock));
    free(s);
}

/* ------------------------------------------------------------------ */
/* lock: contract details                                              */
/* ------------------------------------------------------------------ */

TEST(lock_basic_and_self_deadlock)
{
    mproc_lock l;
    CHECK_OK(mproc_lock_init(&l, 0));
    CHECK_EQ(mproc_lock_locked(&l), 0);
    CHECK_OK(mproc_lock_acquire(&l, -1));
    CHECK_EQ(mproc_lock_locked(&l), 1);
    CHECK_RC(mproc_lock_try(&l), -EDEADLK);
    /* Must not block: a self-acquire is an error at once. */
    int64_t t0 = mproc_now_ns();
    CHECK_RC(mproc_lock_acquire(&l, -1), -EDEADLK);
    CHECK_RC(mproc_lock_acquire(&l, 0), -EDEADLK);
    CHECK_RC(mproc_lock_acquire(&l, 100), -EDEADLK);
    CHECK(mproc_now_ns() - t0 < 100 * 1000000LL);
    CHECK_EQ(mproc_lock_locked(&l), 1);
    CHECK_OK(mproc_lock_release(&l));
    CHECK_EQ(mproc_lock_locked(&l), 0);
    /* Releasing a free lock: the caller is not the holder. */
    CHECK_RC(mproc_lock_release(&l), -EPERM);
    CHECK_EQ(mproc_lock_locked(&l), 0);
    CHECK_OK(mproc_lock_try(&l));
    CHECK_OK(mproc_lock_release(&l));
    CHECK_OK(mproc_lock_acquire(&l, 0));
    CHECK_OK(mproc_lock_release(&l));
    CHECK_OK(mproc_lock_acquire(&l, INT64_MAX));
    CHECK_OK(mproc_lock_release(&l));
    CHECK_OK(mproc_lock_destroy(&l));
}

TEST(lock_shared_basic_and_self_deadlock)
{
    mproc_lock *l = mproc_shared_calloc(sizeof *l);
    CHECK(l != NULL);
    CHECK_OK(mproc_lock_init(l, MPROC_SHARED));
    CHECK_OK(mproc_lock_acquire(l, -1));
    CHECK_RC(mproc_lock_try(l), -EDEADLK);
    CHECK_RC(mproc_lock_acquire(l, -1), -EDEADLK);
    CHECK_RC(mproc_lock_acquire(l, 50), -EDEADLK);
    CHECK_OK(mproc_lock_release(l));
    CHECK_RC(mproc_lock_release(l), -EPERM);
    CHECK_OK(mproc_lock_destroy(l));
    CHECK_OK(mproc_shared_free(l));
}

static mproc_lock *g_lock;
static mproc_rlock *g_rlock;

static void *nonowner_checks(void *arg)
{
    (void)arg;
    CHECK_RC(mproc_lock_release(g_lock), -EPERM);
    CHECK_EQ(mproc_lock_locked(g_lock), 1);
    CHECK_RC(mproc_lock_try(g_lock), -EBUSY);
    CHECK_RC(mproc_lock_acquire(g_lock, 0), -ETIMEDOUT);
    CHECK_RC(mproc_lock_stats_reset(g_lock), -EPERM);
    CHECK_RC(mproc_lock_destroy(g_lock), -EBUSY);
    CHECK_RC(mproc_lock_release(g_lock), -EPERM);
    CHECK_EQ(mproc_lock_locked(g_lock), 1);
    return NULL;
}

TEST(lock_release_by_non_owner)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        g_lock = &l;
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        test_on_other_thread(nonowner_checks, NULL);
        /* Still held, and still by this thread. */
        CHECK_EQ(mproc_lock_locked(&l), 1);
        CHECK_RC(mproc_lock_try(&l), -EDEADLK);
        CHECK_OK(mproc_lock_release(&l));
        CHECK_EQ(mproc_lock_locked(&l), 0);
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

struct timed_arg {
    mproc_lock *l;
    int64_t timeout_ms;
    int rc;
    int64_t elapsed_ns;
    atomic_int started;
};

static void *timed_acquire_thread(void *arg)
{
    struct timed_arg *a = arg;
    atomic_store(&a->started, 1);
    int64_t t0 = mproc_now_ns();
    a->rc = mproc_lock_acquire(a->l, a->timeout_ms);
    a->elapsed_ns = mproc_now_ns() - t0;
    if (a->rc == 0)
        CHECK_OK(mproc_lock_release(a->l));
    return NULL;
}

TEST(lock_timeout_lower_bound)
{
    static const int64_t tmo[] = { 0, 1, 10, 100, 250 };
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
            struct timed_arg a = { .l = &l, .timeout_ms = tmo[i] };
            test_on_other_thread(timed_acquire_thread, &a);
            CHECK_RC(a.rc, -ETIMEDOUT);
            CHECK_MSG(a.elapsed_ns >= tmo[i] * 1000000,
                      "acquire(%lld) gave up after %lld ns", (long long)tmo[i],
                      (long long)a.elapsed_ns);
        }
        /* Failed attempts are not acquisitions and found nothing. */
        mproc_lock_counters st;
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.acquisitions, 1);
        CHECK_EQ(st.contended, 0);
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

/* A timed or unbounded wait that the holder ends in time succeeds; a
 * huge timeout must not overflow into "already expired". */
TEST(lock_wait_succeeds_when_released)
{
    static const int64_t tmo[] = { -1, 10000, INT64_MAX, INT64_MAX / 1000 };
    for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
        mproc_lock l;
        CHECK_OK(mproc_lock_init(&l, i % 2 ? MPROC_SHARED : 0));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        struct timed_arg a = { .l = &l, .timeout_ms = tmo[i], .rc = 1 };
        pthread_t t = test_start_thread(timed_acquire_thread, &a);
        WAIT_UNTIL(atomic_load(&a.started), 10000);
        mproc_sleep_ms(50);
        CHECK_OK(mproc_lock_release(&l));
        test_join_thread(t);
        CHECK_MSG(a.rc == 0, "acquire(%lld) returned %d (%s)", (long long)tmo[i], a.rc,
                  mproc_errname(a.rc));
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

struct contended_arg {
    mproc_lock *l;
    atomic_int started;
    int64_t waited_ns;
};

static void *contended_waiter(void *arg)
{
    struct contended_arg *a = arg;
    atomic_store(&a->started, gettid());
    int64_t t0 = mproc_now_ns();
    CHECK_OK(mproc_lock_acquire(a->l, -1));
    a->waited_ns = mproc_now_ns() - t0;
    CHECK_OK(mproc_lock_release(a->l));
    return NULL;
}

TEST(lock_stats)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        mproc_lock_counters st;
        CHECK_OK(mproc_lock_init(&l, flags));
        memset(&st, 0xff, sizeof st);
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.acquisitions, 0);
        CHECK_EQ(st.contended, 0);
        CHECK_EQ(st.wait_ns, 0);
        CHECK_EQ(st.owner_deaths, 0);
        for (int i = 0; i < 3; i++) {
            CHECK_OK(mproc_lock_acquire(&l, -1));
            CHECK_OK(mproc_lock_release(&l));
        }
        CHECK_OK(mproc_lock_try(&l));
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.acquisitions, 4);
        CHECK_EQ(st.contended, 0);
        CHECK_EQ(st.wait_ns, 0);

        /* One acquisition that has to wait for the holder. */
        CHECK_OK(mproc_lock_acquire(&l, -1));
        struct contended_arg a = { .l = &l };
        pthread_t t = test_start_thread(contended_waiter, &a);
        WAIT_UNTIL(atomic_load(&a.started), 10000);
        test_wait_sleeping(atomic_load(&a.started), 10000);
        CHECK_OK(mproc_lock_release(&l));
        test_join_thread(t);
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.acquisitions, 6);
        CHECK_EQ(st.contended, 1);
        CHECK_MSG(st.wait_ns > 0 && (int64_t)st.wait_ns <= a.waited_ns,
                  "wait_ns %llu, waiter measured %lld ns",
                  (unsigned long long)st.wait_ns, (long long)a.waited_ns);
        CHECK_EQ(st.owner_deaths, 0);

        /* Reset needs the lock. */
        CHECK_RC(mproc_lock_stats_reset(&l), -EPERM);
        CHECK_OK(mproc_lock_acquire(&l, -1));
        CHECK_OK(mproc_lock_stats_reset(&l));
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.acquisitions, 0);
        CHECK_EQ(st.contended, 0);
        CHECK_EQ(st.wait_ns, 0);
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.acquisitions, 1);
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

static void *destroy_other_thread_holds(void *arg)
{
    (void)arg;
    CHECK_RC(mproc_lock_destroy(g_lock), -EBUSY);
    return NULL;
}

TEST(lock_destroy_and_use_after_destroy)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        mproc_lock_counters st;
        g_lock = &l;
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        CHECK_RC(mproc_lock_destroy(&l), -EBUSY);
        test_on_other_thread(destroy_other_thread_holds, NULL);
        /* Left intact. */
        CHECK_EQ(mproc_lock_locked(&l), 1);
        CHECK_RC(mproc_lock_try(&l), -EDEADLK);
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_acquire(&l, 0));
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_destroy(&l));

        CHECK_RC(mproc_lock_destroy(&l), -EINVAL);
        CHECK_RC(mproc_lock_acquire(&l, -1), -EINVAL);
        CHECK_RC(mproc_lock_acquire(&l, 0), -EINVAL);
        CHECK_RC(mproc_lock_try(&l), -EINVAL);
        CHECK_RC(mproc_lock_release(&l), -EINVAL);
        CHECK_RC(mproc_lock_locked(&l), -EINVAL);
        CHECK_RC(mproc_lock_consistent(&l), -EINVAL);
        CHECK_RC(mproc_lock_stats(&l, &st), -EINVAL);
        CHECK_RC(mproc_lock_stats_reset(&l), -EINVAL);

        /* Initialised again, it works. */
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

/* Destroy after an acquire/release by a thread that has since exited. */
static void *acq_rel_thread(void *arg)
{
    CHECK_OK(mproc_lock_acquire(arg, -1));
    CHECK_OK(mproc_lock_release(arg));
    return NULL;
}

TEST(lock_destroy_after_other_thread_used_it)
{
    mproc_lock l;
    CHECK_OK(mproc_lock_init(&l, MPROC_SHARED));
    test_on_other_thread(acq_rel_thread, &l);
    CHECK_OK(mproc_lock_destroy(&l));
}

static void all_lock_calls_einval(mproc_lock *l)
{
    mproc_lock_counters st;
    CHECK_RC(mproc_lock_acquire(l, -1), -EINVAL);
    CHECK_RC(mproc_lock_acquire(l, 0), -EINVAL);
    CHECK_RC(mproc_lock_acquire(l, 10), -EINVAL);
    CHECK_RC(mproc_lock_try(l), -EINVAL);
    CHECK_RC(mproc_lock_release(l), -EINVAL);
    CHECK_RC(mproc_lock_locked(l), -EINVAL);
    CHECK_RC(mproc_lock_consistent(l), -EINVAL);
    CHECK_RC(mproc_lock_stats(l, &st), -EINVAL);
    CHECK_RC(mproc_lock_stats_reset(l), -EINVAL);
    CHECK_RC(mproc_lock_destroy(l), -EINVAL);
}

static void all_rlock_calls_einval(mproc_rlock *r)
{
    mproc_lock_counters st;
    CHECK_RC(mproc_rlock_acquire(r, -1), -EINVAL);
    CHECK_RC(mproc_rlock_acquire(r, 0), -EINVAL);
    CHECK_RC(mproc_rlock_try(r), -EINVAL);
    CHECK_RC(mproc_rlock_release(r), -EINVAL);
    CHECK_RC(mproc_rlock_is_owned(r), -EINVAL);
    CHECK_RC(mproc_rlock_consistent(r), -EINVAL);
    CHECK_RC(mproc_rlock_stats(r, &st), -EINVAL);
    CHECK_RC(mproc_rlock_destroy(r), -EINVAL);
}

TEST(lock_uninitialised_and_null)
{
    static const int fill[] = { 0x00, 0xa5, 0xff, 0x5a, 0x01 };
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++) {
        mproc_lock l;
        mproc_rlock r;
        memset(&l, fill[i], sizeof l);
        memset(&r, fill[i], sizeof r);
        all_lock_calls_einval(&l);
        all_rlock_calls_einval(&r);
    }
    all_lock_calls_einval(NULL);
    all_rlock_calls_einval(NULL);
    CHECK_RC(mproc_lock_init(NULL, 0), -EINVAL);
    CHECK_RC(mproc_lock_init(NULL, MPROC_SHARED), -EINVAL);
    CHECK_RC(mproc_rlock_init(NULL, 0), -EINVAL);

    mproc_lock l;
    mproc_rlock r;
    CHECK_OK(mproc_lock_init(&l, 0));
    CHECK_OK(mproc_rlock_init(&r, 0));
    CHECK_RC(mproc_lock_stats(&l, NULL), -EINVAL);
    CHECK_RC(mproc_rlock_stats(&r, NULL), -EINVAL);
    CHECK_OK(mproc_lock_destroy(&l));
    CHECK_OK(mproc_rlock_destroy(&r));
}

TEST(lock_init_bad_flags)
{
    static const unsigned bad[] = { 0x4, 0x8, 0x100, 0x80000000u, ~0u };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mproc_lock l;
        mproc_rlock r;
        memset(&l, 0, sizeof l);
        memset(&r, 0, sizeof r);
        CHECK_RC(mproc_lock_init(&l, bad[i]), -EINVAL);
        CHECK_RC(mproc_rlock_init(&r, bad[i]), -EINVAL);
        /* Not initialised by the failed call. */
        CHECK_RC(mproc_lock_acquire(&l, 0), -EINVAL);
        CHECK_RC(mproc_rlock_acquire(&r, 0), -EINVAL);
    }
}

static void *bad_timeouts_other(void *arg)
{
    (void)arg;
    int64_t t0 = mproc_now_ns();
    CHECK_RC(mproc_lock_acquire(g_lock, -2), -EINVAL);
    CHECK_RC(mproc_lock_acquire(g_lock, INT64_MIN), -EINVAL);
    CHECK_RC(mproc_rlock_acquire(g_rlock, -2), -EINVAL);
    CHECK_RC(mproc_rlock_acquire(g_rlock, INT64_MIN), -EINVAL);
    /* Rejected at once, not after waiting. */
    CHECK(mproc_now_ns() - t0 < 1000 * 1000000LL);
    return NULL;
}

TEST(lock_timeout_below_minus_one)
{
    static const int64_t bad[] = { -2, -3, -1000, INT64_MIN, INT64_MIN + 1 };
    mproc_lock l;
    mproc_rlock r;
    CHECK_OK(mproc_lock_init(&l, 0));
    CHECK_OK(mproc_rlock_init(&r, MPROC_SHARED));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(mproc_lock_acquire(&l, bad[i]), -EINVAL);
        CHECK_EQ(mproc_lock_locked(&l), 0);
        CHECK_RC(mproc_rlock_acquire(&r, bad[i]), -EINVAL);
        CHECK_EQ(mproc_rlock_is_owned(&r), 0);
    }
    /* On a lock held by someone else: -EINVAL, not a wait. */
    g_lock = &l;
    g_rlock = &r;
    CHECK_OK(mproc_lock_acquire(&l, -1));
    CHECK_OK(mproc_rlock_acquire(&r, -1));
    test_on_other_thread(bad_timeouts_other, NULL);
    CHECK_OK(mproc_lock_release(&l));
    CHECK_OK(mproc_rlock_release(&r));
    CHECK_EQ(mproc_rlock_is_owned(&r), 0);
    CHECK_OK(mproc_lock_destroy(&l));
    CHECK_OK(mproc_rlock_destroy(&r));
}

static void *locked_other(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_lock_acquire(g_lock, -1));
    CHECK_EQ(mproc_lock_locked(g_lock), 1);
    return NULL; /* leaves it held: a plain lock has no dead-owner check */
}

TEST(lock_locked_snapshot)
{
    mproc_lock l;
    g_lock = &l;
    CHECK_OK(mproc_lock_init(&l, 0));
    CHECK_EQ(mproc_lock_locked(&l), 0);
    CHECK_OK(mproc_lock_acquire(&l, -1));
    CHECK_EQ(mproc_lock_locked(&l), 1);
    CHECK_OK(mproc_lock_release(&l));
    CHECK_EQ(mproc_lock_locked(&l), 0);
    test_on_other_thread(locked_other, NULL);
    CHECK_EQ(mproc_lock_locked(&l), 1);
    CHECK_RC(mproc_lock_try(&l), -EBUSY);
}

/* A non-MPROC_SHARED lock whose holder thread exited stays held (as in
 * Python): no -EOWNERDEAD, a timed acquire runs out. */
TEST(lock_private_dead_holder_stays_held)
{
    mproc_lock l;
    g_lock = &l;
    CHECK_OK(mproc_lock_init(&l, 0));
    test_on_other_thread(locked_other, NULL);
    int64_t t0 = mproc_now_ns();
    CHECK_RC(mproc_lock_acquire(&l, 300), -ETIMEDOUT);
    CHECK(mproc_now_ns() - t0 >= 300 * 1000000LL);
    CHECK_RC(mproc_lock_try(&l), -EBUSY);
    CHECK_EQ(mproc_lock_locked(&l), 1);
}

TEST(lock_consistent_without_recovery)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_lock_acquire(&l, -1));
        /* Held normally: not recovered from a dead holder. */
        CHECK_RC(mproc_lock_consistent(&l), -EINVAL);
        CHECK_EQ(mproc_lock_locked(&l), 1);
        CHECK_OK(mproc_lock_release(&l));
        CHECK_OK(mproc_lock_destroy(&l));

        mproc_rlock r;
        CHECK_OK(mproc_rlock_init(&r, flags));
        CHECK_OK(mproc_rlock_acquire(&r, -1));
        CHECK_RC(mproc_rlock_consistent(&r), -EINVAL);
        CHECK_EQ(mproc_rlock_is_owned(&r), 1);
        CHECK_OK(mproc_rlock_release(&r));
        CHECK_OK(mproc_rlock_destroy(&r));
    }
}

/* Ownership is per thread even across fork: a child forked while the
 * parent holds a lock (after the parent used the library, so any cached
 * thread id is warm) is not the holder. */
struct fork_owner {
    mproc_lock lock;
    mproc_rlock rlock;
};

static int fork_owner_child(void *arg)
{
    struct fork_owner *f = arg;
    CHECK_EQ(mproc_lock_locked(&f->lock), 1);
    CHECK_RC(mproc_lock_try(&f->lock), -EBUSY);
    CHECK_RC(mproc_lock_acquire(&f->lock, 0), -ETIMEDOUT);
    CHECK_RC(mproc_lock_acquire(&f->lock, 50), -ETIMEDOUT);
    CHECK_RC(mproc_lock_release(&f->lock), -EPERM);
    CHECK_RC(mproc_lock_destroy(&f->lock), -EBUSY);
    CHECK_EQ(mproc_rlock_is_owned(&f->rlock), 0);
    CHECK_RC(mproc_rlock_try(&f->rlock), -EBUSY);
    CHECK_RC(mproc_rlock_acquire(&f->rlock, 20), -ETIMEDOUT);
    CHECK_RC(mproc_rlock_release(&f->rlock), -EPERM);
    CHECK_EQ(mproc_lock_locked(&f->lock), 1);
    return 0;
}

static int fork_user_child(void *arg)
{
    struct fork_owner *f = arg;
    CHECK_OK(mproc_lock_acquire(&f->lock, 5000));
    CHECK_OK(mproc_lock_release(&f->lock));
    CHECK_OK(mproc_rlock_acquire(&f->rlock, 5000));
    CHECK_OK(mproc_rlock_acquire(&f->rlock, 5000));
    CHECK_OK(mproc_rlock_release(&f->rlock));
    CHECK_OK(mproc_rlock_release(&f->rlock));
    return 0;
}

TEST(lock_child_of_holder_is_not_owner)
{
    struct fork_owner *f = test_map_shared(sizeof *f);
    CHECK_OK(mproc_lock_init(&f->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&f->rlock, MPROC_SHARED));
    CHECK_OK(mproc_lock_acquire(&f->lock, -1));
    CHECK_OK(mproc_rlock_acquire(&f->rlock, -1));
    CHECK_RC(mproc_lock_try(&f->lock), -EDEADLK);
    CHECK_EQ(mproc_rlock_is_owned(&f->rlock), 1);
    test_expect_child_ok(test_fork(fork_owner_child, f));
    /* Still ours, untouched by the child's attempts. */
    CHECK_RC(mproc_lock_try(&f->lock), -EDEADLK);
    CHECK_EQ(mproc_rlock_is_owned(&f->rlock), 1);
    CHECK_OK(mproc_lock_release(&f->lock));
    CHECK_OK(mproc_rlock_release(&f->rlock));
    /* The child can take them, and leaves them free (not dead-owned). */
    test_expect_child_ok(test_fork(fork_user_child, f));
    CHECK_OK(mproc_lock_acquire(&f->lock, 0));
    CHECK_OK(mproc_lock_release(&f->lock));
    CHECK_OK(mproc_rlock_acquire(&f->rlock, 0));
    CHECK_OK(mproc_rlock_release(&f->rlock));
    mproc_lock_counters st;
    CHECK_OK(mproc_lock_stats(&f->lock, &st));
    CHECK_EQ(st.acquisitions, 3);
    CHECK_EQ(st.owner_deaths, 0);
}

/* The same with _Fork() (glibc's async-signal-safe fork, which runs no
 * atfork handlers): the child is a new process with its own thread id. */
TEST(lock_child_of_holder_is_not_owner_Fork)
{
    struct fork_owner *f = test_map_shared(sizeof *f);
    CHECK_OK(mproc_lock_init(&f->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&f->rlock, MPROC_SHARED));
    CHECK_OK(mproc_lock_acquire(&f->lock, -1));
    CHECK_OK(mproc_rlock_acquire(&f->rlock, -1));
    fflush(NULL);
    pid_t pid = _Fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(fork_owner_child(f));
    test_expect_child_ok(pid);
    CHECK_RC(mproc_lock_try(&f->lock), -EDEADLK);
    CHECK_EQ(mproc_rlock_is_owned(&f->rlock), 1);
    CHECK_OK(mproc_lock_release(&f->lock));
    CHECK_OK(mproc_rlock_release(&f->rlock));
}

/* The child of a process that used a lock acquires and releases its own
 * acquisitions (its own thread id, not the parent's). */
static int child_own_cycle(void *arg)
{
    struct fork_owner *f = arg;
    CHECK_OK(mproc_lock_acquire(&f->lock, -1));
    CHECK_RC(mproc_lock_try(&f->lock), -EDEADLK);
    CHECK_OK(mproc_lock_release(&f->lock));
    CHECK_RC(mproc_lock_release(&f->lock), -EPERM);
    CHECK_OK(mproc_rlock_acquire(&f->rlock, -1));
    CHECK_EQ(mproc_rlock_is_owned(&f->rlock), 1);
    CHECK_OK(mproc_rlock_release(&f->rlock));
    CHECK_EQ(mproc_rlock_is_owned(&f->rlock), 0);
    /* Held by the child when it asks the parent to check. */
    CHECK_OK(mproc_lock_acquire(&f->lock, -1));
    return 0;
}

TEST(lock_parent_is_not_owner_of_childs_lock)
{
    struct fork_owner *f = test_map_shared(sizeof *f);
    CHECK_OK(mproc_lock_init(&f->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&f->rlock, MPROC_SHARED));
    CHECK_OK(mproc_lock_acquire(&f->lock, -1));
    CHECK_OK(mproc_lock_release(&f->lock));
    pid_t pid = test_fork(child_own_cycle, f);
    test_expect_child_ok(pid);
    /* The child exited holding the lock: the parent is not the holder,
     * so release is refused (the robust tests cover the recovery). */
    CHECK_RC(mproc_lock_release(&f->lock), -EPERM);
}

struct busy_holder {
    mproc_lock *l;
    atomic_int holding, go;
};

static void *hold_until_go(void *arg)
{
    struct busy_holder *h = arg;
    CHECK_OK(mproc_lock_acquire(h->l, -1));
    atomic_store(&h->holding, 1);
    WAIT_UNTIL(atomic_load(&h->go), 30000);
    CHECK_OK(mproc_lock_release(h->l));
    return NULL;
}

/* Tries that keep failing on a busy MPROC_SHARED lock check every few
 * ms whether the holder died (sync.h); a live holder must never be judged
 * dead, however many tries pile up (the try's cost is measured in
 * bench/, not here). Regression: each failed try used to read /proc. */
TEST(lock_try_on_busy_shared_lock_never_steals)
{
    struct busy_holder h;
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        CHECK_OK(mproc_lock_init(&l, flags));
        h.l = &l;
        atomic_store(&h.holding, 0);
        atomic_store(&h.go, 0);
        pthread_t t = test_start_thread(hold_until_go, &h);
        WAIT_UNTIL(atomic_load(&h.holding), 10000);
        /* Long enough to pass several 2 ms check points. */
        int64_t end = test_now_ms() + 50;
        while (test_now_ms() < end)
            CHECK_RC(mproc_lock_try(&l), -EBUSY);
        CHECK_EQ(mproc_lock_locked(&l), 1);
        atomic_store(&h.go, 1);
        test_join_thread(t);
        mproc_lock_counters st;
        CHECK_OK(mproc_lock_stats(&l, &st));
        CHECK_EQ(st.owner_deaths, 0);
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

/* ------------------------------------------------------------------ */
/* rlock                                                               */
/* ------------------------------------------------------------------ */

struct rl_probe {
    mproc_rlock *r;
    int want_free;   /* expect to be able to take it */
};

static void *rlock_probe(void *arg)
{
    struct rl_probe *p = arg;
    CHECK_EQ(mproc_rlock_is_owned(p->r), 0);
    if (p->want_free) {
        CHECK_OK(mproc_rlock_acquire(p->r, 5000));
        CHECK_EQ(mproc_rlock_is_owned(p->r), 1);
        CHECK_OK(mproc_rlock_release(p->r));
        CHECK_EQ(mproc_rlock_is_owned(p->r), 0);
    } else {
        CHECK_RC(mproc_rlock_try(p->r), -EBUSY);
        CHECK_RC(mproc_rlock_acquire(p->r, 0), -ETIMEDOUT);
        CHECK_RC(mproc_rlock_release(p->r), -EPERM);
        CHECK_RC(mproc_rlock_destroy(p->r), -EBUSY);
    }
    return NULL;
}

TEST(rlock_reentrant_depth_1000)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_rlock r;
        struct rl_probe busy = { &r, 0 }, free_ = { &r, 1 };
        CHECK_OK(mproc_rlock_init(&r, flags));
        CHECK_EQ(mproc_rlock_is_owned(&r), 0);
        for (int i = 0; i < 1000; i++) {
            switch (i % 3) {
            case 0: CHECK_OK(mproc_rlock_acquire(&r, -1)); break;
            case 1: CHECK_OK(mproc_rlock_acquire(&r, 0)); break;
            default: CHECK_OK(mproc_rlock_try(&r)); break;
            }
            CHECK_EQ(mproc_rlock_is_owned(&r), 1);
        }
        test_on_other_thread(rlock_probe, &busy);
        CHECK_RC(mproc_rlock_destroy(&r), -EBUSY);
        for (int i = 0; i < 999; i++)
            CHECK_OK(mproc_rlock_release(&r));
        CHECK_EQ(mproc_rlock_is_owned(&r), 1);
        test_on_other_thread(rlock_probe, &busy);
        CHECK_OK(mproc_rlock_release(&r));
        CHECK_EQ(mproc_rlock_is_owned(&r), 0);
        CHECK_RC(mproc_rlock_release(&r), -EPERM);
        test_on_other_thread(rlock_probe, &free_);

        mproc_lock_counters st;
        CHECK_OK(mproc_rlock_stats(&r, &st));
        CHECK_EQ(st.acquisitions, 2); /* outermost ones: ours and the probe's */
        CHECK_EQ(st.contended, 0);
        CHECK_OK(mproc_rlock_destroy(&r));
        CHECK_RC(mproc_rlock_is_owned(&r), -EINVAL);
    }
}

static void *rlock_wrong_owner(void *arg)
{
    mproc_rlock *r = arg;
    CHECK_RC(mproc_rlock_release(r), -EPERM);
    CHECK_RC(mproc_rlock_release(r), -EPERM);
    CHECK_EQ(mproc_rlock_is_owned(r), 0);
    return NULL;
}

TEST(rlock_release_by_non_owner)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_rlock r;
        struct rl_probe busy = { &r, 0 }, free_ = { &r, 1 };
        CHECK_OK(mproc_rlock_init(&r, flags));
        CHECK_OK(mproc_rlock_acquire(&r, -1));
        CHECK_OK(mproc_rlock_acquire(&r, -1));
        test_on_other_thread(rlock_wrong_owner, &r);
        /* The count is unchanged: two releases still needed. */
        CHECK_EQ(mproc_rlock_is_owned(&r), 1);
        CHECK_OK(mproc_rlock_release(&r));
        test_on_other_thread(rlock_probe, &busy);
        CHECK_OK(mproc_rlock_release(&r));
        test_on_other_thread(rlock_probe, &free_);
        CHECK_OK(mproc_rlock_destroy(&r));
    }
}

struct rl_timed {
    mproc_rlock *r;
    int64_t timeout_ms;
    int rc;
    int64_t elapsed_ns;
};

static void *rlock_timed_thread(void *arg)
{
    struct rl_timed *a = arg;
    int64_t t0 = mproc_now_ns();
    a->rc = mproc_rlock_acquire(a->r, a->timeout_ms);
    a->elapsed_ns = mproc_now_ns() - t0;
    if (a->rc == 0)
        CHECK_OK(mproc_rlock_release(a->r));
    return NULL;
}

TEST(rlock_timeout_lower_bound)
{
    mproc_rlock r;
    CHECK_OK(mproc_rlock_init(&r, 0));
    CHECK_OK(mproc_rlock_acquire(&r, -1));
    CHECK_OK(mproc_rlock_acquire(&r, -1));
    static const int64_t tmo[] = { 0, 5, 120 };
    for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
        struct rl_timed a = { .r = &r, .timeout_ms = tmo[i] };
        test_on_other_thread(rlock_timed_thread, &a);
        CHECK_RC(a.rc, -ETIMEDOUT);
        CHECK(a.elapsed_ns >= tmo[i] * 1000000);
    }
    /* Released by us in time: the waiter gets it. */
    struct rl_timed a = { .r = &r, .timeout_ms = 10000, .rc = 1 };
    pthread_t t = test_start_thread(rlock_timed_thread, &a);
    mproc_sleep_ms(30);
    CHECK_OK(mproc_rlock_release(&r));
    mproc_sleep_ms(30);
    CHECK_OK(mproc_rlock_release(&r));
    test_join_thread(t);
    CHECK_OK(a.rc);
    CHECK_OK(mproc_rlock_destroy(&r));
}

TEST(rlock_destroy_and_use_after_destroy)
{
    mproc_rlock r;
    CHECK_OK(mproc_rlock_init(&r, 0));
    CHECK_OK(mproc_rlock_acquire(&r, -1));
    CHECK_RC(mproc_rlock_destroy(&r), -EBUSY);
    CHECK_EQ(mproc_rlock_is_owned(&r), 1);
    CHECK_OK(mproc_rlock_release(&r));
    CHECK_OK(mproc_rlock_destroy(&r));
    all_rlock_calls_einval(&r);
    CHECK_OK(mproc_rlock_init(&r, MPROC_SHARED));
    CHECK_OK(mproc_rlock_acquire(&r, -1));
    CHECK_OK(mproc_rlock_release(&r));
    CHECK_OK(mproc_rlock_destroy(&r));
}

/* ------------------------------------------------------------------ */
/* waits are not interrupted by signals                                */
/* ------------------------------------------------------------------ */

struct sig_holder {
    mproc_lock lock;
    mproc_rlock rlock;
    atomic_int holding;
    atomic_int release;
};

static void *sig_holder_thread(void *arg)
{
    struct sig_holder *h = arg;
    test_block_sigalrm();
    CHECK_OK(mproc_lock_acquire(&h->lock, -1));
    CHECK_OK(mproc_rlock_acquire(&h->rlock, -1));
    atomic_store(&h->holding, 1);
    WAIT_UNTIL(atomic_load(&h->release), 20000);
    mproc_sleep_ms(100);
    CHECK_OK(mproc_lock_release(&h->lock));
    CHECK_OK(mproc_rlock_release(&h->rlock));
    return NULL;
}

TEST(lock_waits_not_interrupted_by_signals)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        struct sig_holder h;
        memset(&h, 0, sizeof h);
        CHECK_OK(mproc_lock_init(&h.lock, flags));
        CHECK_OK(mproc_rlock_init(&h.rlock, flags));
        pthread_t t = test_start_thread(sig_holder_thread, &h);
        WAIT_UNTIL(atomic_load(&h.holding), 10000);
        atomic_store(&test_sigalrm_count, 0);
        test_sigalrm_every(1000);
        CHECK_TIMES_OUT(mproc_lock_acquire(&h.lock, 150), 150);
        CHECK_TIMES_OUT(mproc_rlock_acquire(&h.rlock, 150), 150);
        atomic_store(&h.release, 1);
        CHECK_OK(mproc_lock_acquire(&h.lock, -1));
        CHECK_OK(mproc_rlock_acquire(&h.rlock, -1));
        test_sigalrm_every(0);
        CHECK_MSG(atomic_load(&test_sigalrm_count) >= 20, "only %d signals",
                  atomic_load(&test_sigalrm_count));
        test_join_thread(t);
        CHECK_OK(mproc_lock_release(&h.lock));
        CHECK_OK(mproc_rlock_release(&h.rlock));
    }
}
