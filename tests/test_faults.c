/*
 * tests/test_faults.c -- the sync layer under injected OS faults.
 *
 * The os layer routes futex calls through a replaceable table
 * (os/sys.h). Here the table is swapped for versions that misbehave in
 * every way the kernel is allowed to: futex_wait returning at once
 * (spurious wake-up) or with EINTR, and futex_wake waking everybody
 * instead of n. Every primitive must stay exact under each of them.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"
#include "os/fault.h"
#include "os/sys.h"
#include "runner.h"
#include "helpers.h"

/* ---- misbehaving system call tables ----------------------------------- */

static _Atomic unsigned fault_seq;

/* Every other wait returns immediately, half of those as EINTR. */
static int spurious_wait(uint32_t *addr, uint32_t val, int64_t deadline, bool shared)
{
    unsigned n = atomic_fetch_add_explicit(&fault_seq, 1, memory_order_relaxed);
    if (n % 2 == 0)
        return n % 4 == 0 ? 0 : -EINTR;
    return mproc__sys_real.futex_wait(addr, val, deadline, shared);
}

static int wake_everyone(uint32_t *addr, int n, bool shared)
{
    (void)n;
    return mproc__sys_real.futex_wake(addr, INT_MAX, shared);
}

/* Requeue unavailable: notify must fall back to plain wakes. */
static int no_requeue(uint32_t *addr, int wake, uint32_t *addr2, int requeue,
                      uint32_t val, bool shared)
{
    (void)addr, (void)wake, (void)addr2, (void)requeue, (void)val, (void)shared;
    return -ENOSYS;
}

static int wake_everyone_requeue(uint32_t *addr, int wake, uint32_t *addr2,
                                 int requeue, uint32_t val, bool shared)
{
    (void)wake, (void)addr2, (void)requeue, (void)val;
    return mproc__sys_real.futex_wake(addr, INT_MAX, shared);
}

static mproc__sysops spurious_ops, herd_ops, norequeue_ops;

static void use_norequeue(void)
{
    norequeue_ops = mproc__sys_real;
    norequeue_ops.futex_requeue = no_requeue;
    mproc__sys_set(&norequeue_ops);
}

static void use_spurious(void)
{
    spurious_ops = mproc__sys_real;
    spurious_ops.futex_wait = spurious_wait;
    mproc__sys_set(&spurious_ops);
}

static void use_herd(void)
{
    herd_ops = mproc__sys_real;
    herd_ops.futex_wake = wake_everyone;
    herd_ops.futex_requeue = wake_everyone_requeue;
    mproc__sys_set(&herd_ops);
}

/* ---- workloads ------------------------------------------------------- */

#define NTHREADS 4

static mproc_lock lock;
static long counter;

static void *count_under_lock(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        CHECK_OK(mproc_lock_acquire(&lock, -1));
        counter++;
        CHECK_OK(mproc_lock_release(&lock));
    }
    return NULL;
}

static void lock_exact(void)
{
    long n = test_scaled(50000);
    pthread_t t[NTHREADS];
    CHECK_OK(mproc_lock_init(&lock, 0));
    counter = 0;
    for (int i = 0; i < NTHREADS; i++)
        t[i] = test_start_thread(count_under_lock, &n);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(counter, n * NTHREADS);
    CHECK_OK(mproc_lock_destroy(&lock));
}

/* Bounded buffer on a condition: every item is consumed exactly once. */
#define SLOTS 8
static struct {
    mproc_lock lock;
    mproc_condition not_empty, not_full;
    long buf[SLOTS];
    int head, len;
    long produced_sum, consumed_sum;
    long consumed;
} bb;

static void *producer(void *arg)
{
    long n = *(long *)arg;
    for (long i = 1; i <= n; i++) {
        CHECK_OK(mproc_lock_acquire(&bb.lock, -1));
        while (bb.len == SLOTS)
            CHECK_OK(mproc_condition_wait(&bb.not_full, -1));
        bb.buf[(bb.head + bb.len++) % SLOTS] = i;
        bb.produced_sum += i;
        CHECK_OK(mproc_condition_notify(&bb.not_empty, 1));
        CHECK_OK(mproc_lock_release(&bb.lock));
    }
    return NULL;
}

static void *consumer(void *arg)
{
    long total = *(long *)arg;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&bb.lock, -1));
        while (bb.len == 0 && bb.consumed < total)
            CHECK_OK(mproc_condition_wait(&bb.not_empty, -1));
        if (bb.consumed == total) {
            CHECK_OK(mproc_condition_notify_all(&bb.not_empty));
            CHECK_OK(mproc_lock_release(&bb.lock));
            return NULL;
        }
        bb.consumed_sum += bb.buf[bb.head];
        bb.head = (bb.head + 1) % SLOTS;
        bb.len--;
        if (++bb.consumed == total)
            CHECK_OK(mproc_condition_notify_all(&bb.not_empty));
        CHECK_OK(mproc_condition_notify(&bb.not_full, 1));
        CHECK_OK(mproc_lock_release(&bb.lock));
    }
}

static void condition_exact(void)
{
    long n = test_scaled(20000), total = 2 * n;
    pthread_t p[2], c[2];
    CHECK_OK(mproc_lock_init(&bb.lock, 0));
    CHECK_OK(mproc_condition_init(&bb.not_empty, &bb.lock, 0));
    CHECK_OK(mproc_condition_init(&bb.not_full, &bb.lock, 0));
    for (int i = 0; i < 2; i++) {
        p[i] = test_start_thread(producer, &n);
        c[i] = test_start_thread(consumer, &total);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(p[i], NULL);
        pthread_join(c[i], NULL);
    }
    CHECK_EQ(bb.consumed, total);
    CHECK_EQ(bb.consumed_sum, bb.produced_sum);
    CHECK_EQ(bb.produced_sum, n * (n + 1)); /* two producers of 1..n */
}

/* Semaphore of K permits: never more than K holders at once. */
#define PERMITS 2
static mproc_semaphore sem;
static atomic_int inside, max_inside;

static void *use_permit(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++) {
        CHECK_OK(mproc_semaphore_acquire(&sem, -1));
        int now = atomic_fetch_add(&inside, 1) + 1;
        int seen = atomic_load(&max_inside);
        while (now > seen && !atomic_compare_exchange_weak(&max_inside, &seen, now))
            ;
        atomic_fetch_sub(&inside, 1);
        CHECK_OK(mproc_semaphore_release(&sem, 1));
    }
    return NULL;
}

static void semaphore_bounded(void)
{
    long n = test_scaled(20000);
    pthread_t t[NTHREADS];
    CHECK_OK(mproc_semaphore_init(&sem, PERMITS, MPROC_BOUNDED));
    for (int i = 0; i < NTHREADS; i++)
        t[i] = test_start_thread(use_permit, &n);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    CHECK(atomic_load(&max_inside) <= PERMITS);
    CHECK_EQ(mproc_semaphore_value(&sem), PERMITS);
}

/* A waiter on an event must not return before the flag is set, however
 * often the futex wakes it for nothing. */
static mproc_event ev;
static atomic_int flag_before_set;

static void *event_waiter(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_event_wait(&ev, -1));
    CHECK(atomic_load(&flag_before_set) == 1);
    return NULL;
}

static void event_no_early_return(void)
{
    pthread_t t[NTHREADS];
    CHECK_OK(mproc_event_init(&ev, 0));
    for (int i = 0; i < NTHREADS; i++)
        t[i] = test_start_thread(event_waiter, NULL);
    /* Let the waiters spin through their spurious wake-ups for a while:
     * the assertion is in the waiters, nothing here depends on timing. */
    CHECK_RC(mproc_event_wait(&ev, 50), -ETIMEDOUT);
    atomic_store(&flag_before_set, 1);
    CHECK_OK(mproc_event_set(&ev));
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
}

/* Barrier rounds: each round hands out exactly the indices 0..N-1. */
#define ROUNDS 200
static mproc_barrier bar;
static atomic_uint index_seen[ROUNDS];

static void *barrier_party(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        int i = mproc_barrier_wait(&bar, -1);
        CHECK(i >= 0 && i < NTHREADS);
        unsigned bit = 1u << i;
        CHECK((atomic_fetch_or(&index_seen[r], bit) & bit) == 0);
    }
    return NULL;
}

static void barrier_rounds(void)
{
    pthread_t t[NTHREADS];
    CHECK_OK(mproc_barrier_init(&bar, NTHREADS, 0));
    for (int i = 0; i < NTHREADS; i++)
        t[i] = test_start_thread(barrier_party, NULL);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    for (int r = 0; r < ROUNDS; r++)
        CHECK_EQ(atomic_load(&index_seen[r]), (1u << NTHREADS) - 1);
}

/* Timeouts are kept even when every wait is cut short. */
static void timeouts_hold(void)
{
    mproc_lock held;
    CHECK_OK(mproc_lock_init(&held, 0));
    CHECK_OK(mproc_lock_acquire(&held, -1));
    mproc_event e;
    CHECK_OK(mproc_event_init(&e, 0));
    int64_t t0 = mproc_now_ns();
    CHECK_RC(mproc_event_wait(&e, 30), -ETIMEDOUT);
    CHECK(mproc_now_ns() - t0 >= 30 * 1000000LL);
    mproc_semaphore s;
    CHECK_OK(mproc_semaphore_init(&s, 0, 0));
    t0 = mproc_now_ns();
    CHECK_RC(mproc_semaphore_acquire(&s, 30), -ETIMEDOUT);
    CHECK(mproc_now_ns() - t0 >= 30 * 1000000LL);
    mproc_condition c;
    CHECK_OK(mproc_condition_init(&c, &held, 0));
    t0 = mproc_now_ns();
    CHECK_RC(mproc_condition_wait(&c, 30), -ETIMEDOUT);
    CHECK(mproc_now_ns() - t0 >= 30 * 1000000LL);
    CHECK_EQ(mproc_lock_locked(&held), 1); /* re-acquired after the timeout */
    CHECK_OK(mproc_lock_release(&held));
}

/* ---- the tests -------------------------------------------------------- */

TEST_T(spurious_lock_exact, 60) { use_spurious(); lock_exact(); }
TEST_T(spurious_condition_exact, 60) { use_spurious(); condition_exact(); }
TEST_T(spurious_semaphore_bounded, 60) { use_spurious(); semaphore_bounded(); }
TEST_T(spurious_event_no_early_return, 60) { use_spurious(); event_no_early_return(); }
TEST_T(spurious_barrier_rounds, 60) { use_spurious(); barrier_rounds(); }
TEST_T(spurious_timeouts_hold, 60) { use_spurious(); timeouts_hold(); }
TEST_T(herd_lock_exact, 60) { use_herd(); lock_exact(); }
TEST_T(herd_condition_exact, 60) { use_herd(); condition_exact(); }
TEST_T(herd_semaphore_bounded, 60) { use_herd(); semaphore_bounded(); }
TEST_T(herd_barrier_rounds, 60) { use_herd(); barrier_rounds(); }
TEST_T(norequeue_condition_exact, 60) { use_norequeue(); condition_exact(); }

/* ---- named fault points (os/fault.h) ------------------------------------ */

static atomic_int fault_fired;

static void count_fault(const char *name)
{
    CHECK(strcmp(name, "test.point") == 0);
    atomic_fetch_add(&fault_fired, 1);
}

TEST(fault_point_fires_once_on_nth_pass)
{
    atomic_store(&fault_fired, 0);
    for (int i = 0; i < 5; i++)
        MPROC__FAULT_POINT("test.point"); /* unarmed: nothing */
    CHECK_EQ(atomic_load(&fault_fired), 0);
    mproc__fault_arm("test.point", 3, count_fault);
    MPROC__FAULT_POINT("test.other");
    MPROC__FAULT_POINT("test.point");
    MPROC__FAULT_POINT("test.point");
    CHECK_EQ(atomic_load(&fault_fired), 0);
    MPROC__FAULT_POINT("test.point");
    CHECK_EQ(atomic_load(&fault_fired), 1);
    for (int i = 0; i < 5; i++)
        MPROC__FAULT_POINT("test.point");
    CHECK_EQ(atomic_load(&fault_fired), 1);
    mproc__fault_arm(NULL, 0, NULL);
}

TEST(fault_point_kills_a_child_there)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        mproc__fault_arm("test.die", 2, mproc__fault_kill_self);
        MPROC__FAULT_POINT("test.die");
        MPROC__FAULT_POINT("test.die"); /* dies here */
        _exit(0);
    }
    test_expect_child_killed(pid);
}
