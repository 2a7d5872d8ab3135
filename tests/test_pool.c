/*
 * tests/test_pool.c -- recycled futures (src/exec/pool.c): a recycled
 * future starts clean, blocks move between threads through the depot,
 * a thread's blocks survive its exit, and a fork while another thread
 * holds the depot's lock leaves a usable pool in the child.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/exec_internal.h"
#include "exec_common.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_BYPASSED 1 /* AddressSanitizer builds use malloc directly */
#else
#define POOL_BYPASSED 0
#endif

/* Enough blocks to fill both of a thread's magazines several times. */
#define MANY 2000

TEST(recycled_block_comes_back)
{
    void *p = mproc__future_alloc();
    CHECK(p != NULL);
    mproc__future_recycle(p);
    void *q = mproc__future_alloc();
    CHECK(q != NULL);
    if (!POOL_BYPASSED)
        CHECK(q == p); /* last in, first out: the block is still warm */
    mproc__future_recycle(q);
}

/* Fails with a heap-sized result and a message. */
static int big_fail_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    char big[200];
    memset(big, 'x', sizeof big);
    mproc_return(ctx, big, sizeof big);
    return mproc_fail(ctx, -EIO, "failed on purpose");
}

/* Futures that failed with a message, a heap result and callbacks are
 * recycled; the futures built from their memory show none of it. */
TEST(reused_future_starts_clean)
{
    mproc_executor *ex = make_ex(1);
    atomic_int calls = 0;
    for (int round = 0; round < 3; round++) {
        mproc_future *f[64];
        for (int i = 0; i < 64; i++) {
            CHECK_OK(mproc_submit(ex, big_fail_task, NULL, 0, &f[i]));
            for (int k = 0; k < 3; k++)
                CHECK_OK(mproc_future_add_done_callback(f[i], count_cb, &calls));
        }
        for (int i = 0; i < 64; i++) {
            CHECK_RC(mproc_future_result(f[i], LONG_MS, NULL, NULL), -EIO);
            mproc_future_release(f[i]);
        }
        for (int i = 0; i < 64; i++)
            CHECK_OK(mproc_submit(ex, echo_task, NUM(round * 1000 + i), 0, &f[i]));
        for (int i = 0; i < 64; i++) {
            CHECK_EQ(result_u64(f[i]), (uint64_t)(round * 1000 + i));
            int code = 1;
            const char *msg = NULL;
            CHECK_OK(mproc_future_error(f[i], &code, &msg));
            CHECK_EQ(code, 0);
            CHECK(strcmp(msg, "") == 0);
            mproc_future_release(f[i]);
        }
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&calls), 3 * 64 * 3);
}

/* Fire-and-forget futures die on the workers (their last reference is
 * the scheduler's): their blocks reach the submitter through the depot.
 * Checked for races by the ThreadSanitizer run, for results here. */
TEST(blocks_cross_threads)
{
    mproc_executor *ex = make_ex(2);
    long n = test_scaled_stress(200000);
    atomic_long done = 0;
    for (int round = 0; round < 4; round++) {
        for (long i = 0; i < n / 4; i++)
            CHECK_OK(mproc_submit(ex, count_task, &done, 0, NULL));
        mproc_future *f;
        CHECK_OK(mproc_submit(ex, echo_task, NUM(round), 0, &f));
        CHECK_EQ(result_u64(f), (uint64_t)round);
        mproc_future_release(f);
    }
    mproc_executor_destroy(ex); /* runs everything accepted */
    CHECK_EQ(atomic_load(&done), 4 * (n / 4));
}

/* Blocks owned by a thread: each is filled with the thread's pattern and
 * must keep it until recycled, whatever the other threads do. */
static void *churn(void *arg)
{
    unsigned char tag = (unsigned char)(uintptr_t)arg;
    void *held[MANY];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < MANY; i++) {
            held[i] = mproc__future_alloc();
            CHECK(held[i] != NULL);
            memset(held[i], tag, sizeof(mproc_future));
        }
        for (int i = 0; i < MANY; i++) {
            CHECK(test_all_bytes(held[i], sizeof(mproc_future), tag));
            mproc__future_recycle(held[i]);
        }
    }
    return NULL; /* exiting hands this thread's blocks on */
}

TEST(threads_churn_and_exit)
{
    pthread_t t[4];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4; i++)
            t[i] = test_start_thread(churn, (void *)(uintptr_t)(round * 4 + i + 1));
        for (int i = 0; i < 4; i++)
            test_join_thread(t[i]);
    }
    churn((void *)(uintptr_t)0xee); /* and this thread, after they left */
}

static atomic_int stop_churn;
static atomic_int churn_rounds;

/* After its first round this thread's 600 blocks only move between its
 * magazines and the depot: it takes the depot's lock all the time and
 * never calls malloc, so a fork catches it holding our lock, not the
 * allocator's (ThreadSanitizer's allocator cannot be forked while another
 * thread is inside it: the child then blocks on its lock for ever). */
static void *churn_until_stopped(void *arg)
{
    (void)arg;
    void *held[600]; /* more than two magazines: every round uses the depot */
    while (!atomic_load(&stop_churn)) {
        for (int i = 0; i < 600; i++)
            CHECK((held[i] = mproc__future_alloc()) != NULL);
        for (int i = 0; i < 600; i++)
            mproc__future_recycle(held[i]);
        atomic_fetch_add(&churn_rounds, 1);
    }
    return NULL;
}

/* A child forked while another thread may hold the depot's lock can
 * still use the pool (and so submit and release futures). */
TEST_T(fork_while_others_use_the_depot, 60)
{
    /* AddressSanitizer builds have no depot, and ASan's own allocator may
     * deadlock a child forked while another thread allocates. */
    if (POOL_BYPASSED)
        return;
    atomic_store(&stop_churn, 0);
    atomic_store(&churn_rounds, 0);
    pthread_t t = test_start_thread(churn_until_stopped, NULL);
    WAIT_UNTIL(atomic_load(&churn_rounds) > 0, 30000);
    for (int i = 0; i < 200; i++) {
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            void *held[600];
            for (int k = 0; k < 600; k++)
                if (!(held[k] = mproc__future_alloc()))
                    _exit(1);
            for (int k = 0; k < 600; k++)
                mproc__future_recycle(held[k]);
            _exit(0);
        }
        test_expect_child_ok(pid);
    }
    atomic_store(&stop_churn, 1);
    test_join_thread(t);
}
