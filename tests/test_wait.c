/*
 * tests/test_wait.c -- waiting for many futures (mproc/exec.h):
 * mproc_wait with FIRST_COMPLETED / FIRST_EXCEPTION / ALL_COMPLETED,
 * timeouts and done[] flags; as_completed (each future once, finished
 * ones first, in finishing order, timeouts, early destroy).
 *
 * Single futures are in test_future.c. Workers are held busy with tasks
 * blocked on events (exec_common.h); timeouts are checked as lower
 * bounds only.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_common.h"

/* ------------------------------------------------------------------ */
/* mproc_wait                                                          */
/* ------------------------------------------------------------------ */

/* n == 0 returns 0 at once, whatever return_when and timeout. */
TEST(wait_empty_returns_at_once)
{
    CHECK_OK(mproc_wait(NULL, 0, -1, MPROC_ALL_COMPLETED, NULL, NULL));
    size_t nd = 99;
    CHECK_OK(mproc_wait(NULL, 0, 0, MPROC_FIRST_COMPLETED, NULL, &nd));
    CHECK_EQ(nd, 0);
    static const mproc_return_when modes[] = { MPROC_FIRST_COMPLETED,
                                               MPROC_FIRST_EXCEPTION,
                                               MPROC_ALL_COMPLETED };
    mproc_future *none[1] = { NULL };
    for (int m = 0; m < 3; m++) {
        int64_t t0 = test_now_ms();
        CHECK_OK(mproc_wait(NULL, 0, 0, modes[m], NULL, NULL));
        CHECK_OK(mproc_wait(none, 0, 0, modes[m], NULL, NULL));
        CHECK_OK(mproc_wait(none, 0, 2000, modes[m], NULL, NULL));
        CHECK(test_now_ms() - t0 < 1000);
    }
}

TEST(wait_bad_args)
{
    CHECK_RC(mproc_wait(NULL, 1, 0, MPROC_ALL_COMPLETED, NULL, NULL), -EINVAL);
    mproc_executor *ex = make_ex(1);
    mproc_future *fs[2];
    CHECK_OK(mproc_submit(ex, echo_task, NUM(1), 0, &fs[0]));
    fs[1] = NULL;
    CHECK_RC(mproc_wait(fs, 2, 0, MPROC_ALL_COMPLETED, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_wait(fs, 2, -1, MPROC_FIRST_COMPLETED, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_wait(fs, 1, 0, (mproc_return_when)0, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_wait(fs, 1, 0, (mproc_return_when)4, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_wait(fs, 1, -1, (mproc_return_when)-1, NULL, NULL), -EINVAL);
    CHECK_OK(mproc_wait(fs, 1, LONG_MS, MPROC_ALL_COMPLETED, NULL, NULL));
    mproc_future_release(fs[0]);
    mproc_executor_destroy(ex);
}

/* n held tasks (each with its own event) on an executor with n + 2
 * workers, so quick tasks still run. */
typedef struct wait_rig {
    mproc_executor *ex;
    hold h[4];
    mproc_future *held[4];
    int n;
} wait_rig;

static void rig_start(wait_rig *r, int n)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    r->ex = make_ex((unsigned)n + 2);
    for (int i = 0; i < n; i++) {
        hold_init(&r->h[i]);
        hold_workers(r->ex, &r->h[i], 1, &r->held[i]);
    }
}

static void rig_release(wait_rig *r)
{
    for (int i = 0; i < r->n; i++)
        CHECK_OK(mproc_event_set(&r->h[i].go));
}

static void rig_end(wait_rig *r)
{
    rig_release(r);
    mproc_executor_destroy(r->ex);
    for (int i = 0; i < r->n; i++)
        mproc_future_release(r->held[i]);
}

TEST(wait_first_completed)
{
    wait_rig r;
    rig_start(&r, 2);
    mproc_future *fs[3] = { r.held[0], r.held[1], NULL };
    bool done[3] = { true, true, true };
    size_t nd = 99;
    /* Nothing finishes: times out, no flags. */
    CHECK_TIMES_OUT(mproc_wait(fs, 2, 50, MPROC_FIRST_COMPLETED, done, &nd), 50);
    CHECK(!done[0] && !done[1]);
    CHECK_EQ(nd, 0);
    CHECK_TIMES_OUT(mproc_wait(fs, 2, 0, MPROC_FIRST_COMPLETED, NULL, NULL), 0);
    /* A quick one finishes. */
    CHECK_OK(mproc_submit(r.ex, echo_task, NUM(5), 0, &fs[2]));
    memset(done, 1, sizeof done);
    CHECK_OK(mproc_wait(fs, 3, LONG_MS, MPROC_FIRST_COMPLETED, done, &nd));
    CHECK(!done[0] && !done[1] && done[2]);
    CHECK_EQ(nd, 1);
    CHECK(mproc_future_done(fs[2]));
    /* Already met: returns at once with timeout 0. */
    CHECK_OK(mproc_wait(fs, 3, 0, MPROC_FIRST_COMPLETED, NULL, NULL));
    /* Then the second held one. */
    CHECK_OK(mproc_event_set(&r.h[1].go));
    CHECK_OK(mproc_wait(fs, 2, LONG_MS, MPROC_FIRST_COMPLETED, done, &nd));
    CHECK(!done[0] && done[1]);
    CHECK_EQ(nd, 1);
    mproc_future_release(fs[2]);
    rig_end(&r);
}

/* wait(-1) sleeps and is woken by a completion. */
TEST(wait_wakes_blocked_waiter)
{
    static const mproc_return_when modes[] = { MPROC_FIRST_COMPLETED,
                                               MPROC_FIRST_EXCEPTION,
                                               MPROC_ALL_COMPLETED };
    for (int m = 0; m < 3; m++) {
        wait_rig r;
        rig_start(&r, 1);
        waker w = { .tid = gettid(), .ev = &r.h[0].go };
        pthread_t t = test_start_thread(waker_main, &w);
        bool done[1] = { false };
        size_t nd = 0;
        CHECK_OK(mproc_wait(r.held, 1, -1, modes[m], done, &nd));
        CHECK(done[0]);
        CHECK_EQ(nd, 1);
        test_join_thread(t);
        rig_end(&r);
    }
}

TEST(wait_all_completed)
{
    wait_rig r;
    rig_start(&r, 2);
    mproc_future *fs[5] = { r.held[0], NULL, r.held[1], NULL, NULL };
    CHECK_OK(mproc_submit(r.ex, echo_task, NUM(1), 0, &fs[1]));
    CHECK_OK(mproc_submit(r.ex, fail_task, NUM(-EIO), 0, &fs[3]));
    CHECK_OK(mproc_submit(r.ex, echo_task, NUM(3), 0, &fs[4]));
    CHECK_OK(mproc_wait(&fs[3], 2, LONG_MS, MPROC_ALL_COMPLETED, NULL, NULL));
    CHECK_OK(mproc_future_result(fs[1], LONG_MS, NULL, NULL));
    bool done[5];
    size_t nd = 0;
    memset(done, 0, sizeof done);
    CHECK_TIMES_OUT(mproc_wait(fs, 5, 60, MPROC_ALL_COMPLETED, done, &nd), 60);
    CHECK(!done[0] && done[1] && !done[2] && done[3] && done[4]);
    CHECK_EQ(nd, 3);
    CHECK_OK(mproc_event_set(&r.h[0].go));
    CHECK_OK(mproc_future_result(fs[0], LONG_MS, NULL, NULL)); /* not a race with the wait */
    CHECK_TIMES_OUT(mproc_wait(fs, 5, 30, MPROC_ALL_COMPLETED, done, &nd), 30);
    CHECK(done[0] && !done[2]);
    CHECK_EQ(nd, 4);
    CHECK_OK(mproc_event_set(&r.h[1].go));
    CHECK_OK(mproc_wait(fs, 5, LONG_MS, MPROC_ALL_COMPLETED, done, &nd));
    for (int i = 0; i < 5; i++)
        CHECK(done[i]);
    CHECK_EQ(nd, 5);
    mproc_future_release(fs[1]);
    mproc_future_release(fs[3]);
    mproc_future_release(fs[4]);
    rig_end(&r);
}

TEST(wait_first_exception)
{
    wait_rig r;
    rig_start(&r, 2);
    mproc_future *fs[4] = { r.held[0], r.held[1], NULL, NULL };
    bool done[4];
    size_t nd;
    /* A success does not count as an exception. */
    CHECK_OK(mproc_submit(r.ex, echo_task, NUM(1), 0, &fs[2]));
    CHECK_OK(mproc_future_result(fs[2], LONG_MS, NULL, NULL));
    CHECK_TIMES_OUT(mproc_wait(fs, 3, 50, MPROC_FIRST_EXCEPTION, done, &nd), 50);
    CHECK(!done[0] && !done[1] && done[2]);
    CHECK_EQ(nd, 1);
    /* A failure does. */
    CHECK_OK(mproc_submit(r.ex, fail_task, NUM(-EIO), 0, &fs[3]));
    CHECK_OK(mproc_wait(fs, 4, LONG_MS, MPROC_FIRST_EXCEPTION, done, &nd));
    CHECK(!done[0] && !done[1] && done[2] && done[3]);
    CHECK_EQ(nd, 2);
    mproc_future_release(fs[3]);
    /* Without failures: returns when all finished. */
    fs[3] = NULL;
    CHECK_OK(mproc_event_set(&r.h[0].go));
    CHECK_TIMES_OUT(mproc_wait(fs, 3, 30, MPROC_FIRST_EXCEPTION, done, &nd), 30);
    CHECK_OK(mproc_event_set(&r.h[1].go));
    CHECK_OK(mproc_wait(fs, 3, LONG_MS, MPROC_FIRST_EXCEPTION, done, &nd));
    CHECK(done[0] && done[1] && done[2]);
    CHECK_EQ(nd, 3);
    mproc_future_release(fs[2]);
    rig_end(&r);
}

/* A cancelled future counts as an exception for FIRST_EXCEPTION, and
 * as finished for the others. */
TEST(wait_first_exception_cancelled)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *fs[2];
    hold_workers(ex, &h, 1, &fs[0]);
    atomic_long ran = 0;
    CHECK_OK(mproc_submit(ex, count_task, &ran, 0, &fs[1]));
    CHECK_EQ(mproc_future_cancel(fs[1]), 1);
    bool done[2];
    size_t nd;
    CHECK_OK(mproc_wait(fs, 2, LONG_MS, MPROC_FIRST_EXCEPTION, done, &nd));
    CHECK(!done[0] && done[1]);
    CHECK_EQ(nd, 1);
    CHECK_OK(mproc_wait(fs, 2, LONG_MS, MPROC_FIRST_COMPLETED, done, &nd));
    CHECK(!done[0] && done[1]);
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_OK(mproc_wait(fs, 2, LONG_MS, MPROC_ALL_COMPLETED, done, &nd));
    CHECK_EQ(nd, 2);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    mproc_future_release(fs[0]);
    mproc_future_release(fs[1]);
}

/* A failure that happens while wait sleeps wakes FIRST_EXCEPTION. */
static int fail_when_set_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int rc = mproc_event_wait((mproc_event *)arg, LONG_MS);
    if (rc)
        return rc;
    return mproc_fail(ctx, -EPIPE, "went wrong later");
}

TEST(wait_first_exception_wakes)
{
    wait_rig r;
    rig_start(&r, 1);
    mproc_event ev;
    CHECK_OK(mproc_event_init(&ev, 0));
    mproc_future *fs[2] = { r.held[0], NULL };
    CHECK_OK(mproc_submit(r.ex, fail_when_set_task, &ev, 0, &fs[1]));
    waker w = { .tid = gettid(), .ev = &ev };
    pthread_t t = test_start_thread(waker_main, &w);
    bool done[2];
    size_t nd;
    CHECK_OK(mproc_wait(fs, 2, -1, MPROC_FIRST_EXCEPTION, done, &nd));
    CHECK(!done[0] && done[1]);
    CHECK_RC(mproc_future_result(fs[1], 0, NULL, NULL), -EPIPE);
    test_join_thread(t);
    mproc_future_release(fs[1]);
    rig_end(&r);
}

/* done[] and *ndone agree, also while futures finish during the call. */
TEST(wait_flags_match_ndone)
{
    enum { N = 64 };
    mproc_executor *ex = make_ex(2);
    long rounds = test_scaled_stress(400);
    for (long r = 0; r < rounds; r++) {
        mproc_future *fs[N];
        for (int i = 0; i < N; i++)
            CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &fs[i]));
        mproc_return_when when = (mproc_return_when)(1 + r % 3);
        bool done[N];
        size_t nd = 0;
        CHECK_OK(mproc_wait(fs, N, 6 * LONG_MS, when, done, &nd));
        size_t flagged = 0;
        for (int i = 0; i < N; i++) {
            flagged += done[i];
            if (done[i])
                CHECK(mproc_future_done(fs[i]));
        }
        CHECK_MSG(flagged == nd, "round %ld: %zu done[] flags, *ndone %zu", r, flagged, nd);
        CHECK(nd >= 1);
        if (when != MPROC_FIRST_COMPLETED)
            CHECK_EQ(nd, N);
        for (int i = 0; i < N; i++)
            mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(ex);
}

TEST(wait_many)
{
    enum { N = 1000 };
    mproc_executor *ex = make_ex(2);
    static mproc_future *fs[N];
    static bool done[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &fs[i]));
    size_t nd = 0;
    CHECK_OK(mproc_wait(fs, N, 6 * LONG_MS, MPROC_ALL_COMPLETED, done, &nd));
    CHECK_EQ(nd, N);
    for (int i = 0; i < N; i++) {
        CHECK(done[i]);
        CHECK(mproc_future_done(fs[i]));
        CHECK_EQ(result_u64(fs[i]), i);
        mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(ex);
}

/* ------------------------------------------------------------------ */
/* as_completed                                                        */
/* ------------------------------------------------------------------ */

TEST(as_completed_bad_args)
{
    mproc_as_completed *it = NULL;
    mproc_future *y;
    CHECK_RC(mproc_as_completed_create(NULL, NULL, 0), -EINVAL);
    CHECK_RC(mproc_as_completed_create(&it, NULL, 3), -EINVAL);
    mproc_executor *ex = make_ex(1);
    mproc_future *fs[2];
    CHECK_OK(mproc_submit(ex, echo_task, NUM(1), 0, &fs[0]));
    fs[1] = NULL;
    CHECK_RC(mproc_as_completed_create(&it, fs, 2), -EINVAL);
    CHECK_RC(mproc_as_completed_next(NULL, 0, &y), -EINVAL);
    CHECK_OK(mproc_as_completed_create(&it, fs, 1));
    CHECK_RC(mproc_as_completed_next(it, LONG_MS, NULL), -EINVAL);
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == fs[0]);
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 0);
    mproc_as_completed_destroy(it);
    mproc_as_completed_destroy(NULL); /* no-op */
    mproc_future_release(fs[0]);
    mproc_executor_destroy(ex);
}

TEST(as_completed_empty)
{
    mproc_as_completed *it = NULL;
    mproc_future *dummy[1] = { NULL };
    mproc_future *y = NULL;
    CHECK_OK(mproc_as_completed_create(&it, dummy, 0));
    CHECK_EQ(mproc_as_completed_next(it, 0, &y), 0);
    CHECK_EQ(mproc_as_completed_next(it, -1, &y), 0);
    mproc_as_completed_destroy(it);
}

/* Task (arg: microseconds, in the address): sleep that long, return it.
 * (The durations only shuffle the finishing order.) */
static int sleepy_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    uint64_t us = (uint64_t)(uintptr_t)arg;
    usleep((useconds_t)us);
    return mproc_return(ctx, &us, sizeof us);
}

/* The case: 200 futures of random durations, each yielded
 * exactly once, done when yielded; 0 when exhausted. */
TEST(as_completed_yields_each_once)
{
    enum { N = 200 };
    mproc_executor *ex = make_ex(4);
    mproc_future *fs[N];
    uint64_t dur[N];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < N; i++) {
        dur[i] = test_xorshift(&seed) % 3000; /* microseconds */
        CHECK_OK(mproc_submit(ex, sleepy_task, NUM(dur[i]), 0, &fs[i]));
    }
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, fs, N));
    int seen[N] = { 0 };
    for (int k = 0; k < N; k++) {
        mproc_future *y = NULL;
        CHECK_EQ(mproc_as_completed_next(it, 6 * LONG_MS, &y), 1);
        CHECK(y != NULL);
        CHECK(mproc_future_done(y));
        int idx = -1;
        for (int i = 0; i < N; i++)
            if (fs[i] == y)
                idx = i;
        CHECK(idx >= 0);
        seen[idx]++;
        CHECK_EQ(seen[idx], 1);
        CHECK_EQ(result_u64(y), dur[idx]);
    }
    mproc_future *y = NULL;
    CHECK_EQ(mproc_as_completed_next(it, 0, &y), 0);
    CHECK_EQ(mproc_as_completed_next(it, -1, &y), 0);
    mproc_as_completed_destroy(it);
    for (int i = 0; i < N; i++)
        mproc_future_release(fs[i]);
    mproc_executor_destroy(ex);
}

TEST(as_completed_timeout)
{
    wait_rig r;
    rig_start(&r, 2);
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, r.held, 2));
    mproc_future *y = NULL;
    CHECK_TIMES_OUT(mproc_as_completed_next(it, 0, &y), 0);
    CHECK_TIMES_OUT(mproc_as_completed_next(it, 80, &y), 80);
    CHECK(y == NULL);
    CHECK_OK(mproc_event_set(&r.h[1].go));
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == r.held[1]);
    CHECK_TIMES_OUT(mproc_as_completed_next(it, 30, &y), 30);
    CHECK_OK(mproc_event_set(&r.h[0].go));
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == r.held[0]);
    CHECK_EQ(mproc_as_completed_next(it, 0, &y), 0);
    mproc_as_completed_destroy(it);
    rig_end(&r);
}

/* Finished futures come first, then the others in the order they finish
 * (each let go one at a time). Cancelled ones are yielded too. */
TEST(as_completed_order)
{
    wait_rig r;
    rig_start(&r, 3);
    mproc_future *fs[6];
    fs[0] = r.held[0];
    fs[2] = r.held[1];
    fs[4] = r.held[2];
    CHECK_OK(mproc_submit(r.ex, echo_task, NUM(1), 0, &fs[1]));
    CHECK_OK(mproc_submit(r.ex, fail_task, NUM(-EIO), 0, &fs[3]));
    CHECK_OK(mproc_wait(&fs[3], 1, LONG_MS, MPROC_ALL_COMPLETED, NULL, NULL));
    CHECK_OK(mproc_wait(&fs[1], 1, LONG_MS, MPROC_ALL_COMPLETED, NULL, NULL));
    /* fs[5]: pending behind... every worker but 2 is held; hold those too. */
    hold extra;
    hold_init(&extra);
    mproc_future *xf[2];
    hold_workers(r.ex, &extra, 2, xf);
    atomic_long ran = 0;
    CHECK_OK(mproc_submit(r.ex, count_task, &ran, 0, &fs[5]));
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, fs, 6));
    mproc_future *y, *a, *b;
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &a), 1);
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &b), 1);
    CHECK((a == fs[1] && b == fs[3]) || (a == fs[3] && b == fs[1]));
    CHECK_TIMES_OUT(mproc_as_completed_next(it, 20, &y), 20);
    CHECK_EQ(mproc_future_cancel(fs[5]), 1);
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == fs[5]);
    CHECK(mproc_future_cancelled(y));
    CHECK_OK(mproc_event_set(&r.h[2].go));
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == fs[4]);
    CHECK_OK(mproc_event_set(&r.h[0].go));
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == fs[0]);
    CHECK_OK(mproc_event_set(&r.h[1].go));
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y == fs[2]);
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 0);
    mproc_as_completed_destroy(it);
    CHECK_OK(mproc_event_set(&extra.go));
    for (int i = 0; i < 2; i++)
        mproc_future_release(xf[i]);
    mproc_future_release(fs[1]);
    mproc_future_release(fs[3]);
    mproc_future_release(fs[5]);
    rig_end(&r);
    CHECK_EQ(atomic_load(&ran), 0);
}

/* next(-1) sleeps and is woken by a completion. */
TEST(as_completed_wakes_blocked_waiter)
{
    wait_rig r;
    rig_start(&r, 1);
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, r.held, 1));
    waker w = { .tid = gettid(), .ev = &r.h[0].go };
    pthread_t t = test_start_thread(waker_main, &w);
    mproc_future *y = NULL;
    CHECK_EQ(mproc_as_completed_next(it, -1, &y), 1);
    CHECK(y == r.held[0]);
    test_join_thread(t);
    CHECK_EQ(mproc_as_completed_next(it, -1, &y), 0);
    mproc_as_completed_destroy(it);
    rig_end(&r);
}

/* The iterator holds its own references: the caller may release its
 * own right after create; yielded pointers stay valid until destroy. */
TEST(as_completed_keeps_own_references)
{
    enum { N = 50 };
    mproc_executor *ex = make_ex(2);
    mproc_future *fs[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &fs[i]));
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, fs, N));
    for (int i = 0; i < N; i++)
        mproc_future_release(fs[i]);
    mproc_future *ys[N];
    uint64_t sum = 0;
    for (int k = 0; k < N; k++) {
        CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &ys[k]), 1);
        sum += result_u64(ys[k]);
    }
    CHECK_EQ(mproc_as_completed_next(it, 0, &ys[0]), 0);
    /* Still valid: the iterator is alive. */
    for (int k = 0; k < N; k++)
        CHECK(mproc_future_done(ys[k]));
    CHECK_EQ(sum, N * (N - 1) / 2);
    mproc_as_completed_destroy(it);
    mproc_executor_destroy(ex);
}

/* Destroying the iterator before it is exhausted, with tasks still
 * running and the caller's references already gone (ASan checks). */
TEST(as_completed_destroy_early)
{
    wait_rig r;
    rig_start(&r, 2);
    enum { N = 20 };
    mproc_future *fs[N];
    for (int i = 0; i < N; i++) {
        if (i < 2)
            fs[i] = mproc_future_retain(r.held[i]);
        else
            CHECK_OK(mproc_submit(r.ex, sleepy_task, NUM(i * 100), 0, &fs[i]));
    }
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, fs, N));
    mproc_future *y;
    CHECK_EQ(mproc_as_completed_next(it, LONG_MS, &y), 1);
    CHECK(y != fs[0] && y != fs[1]);
    mproc_as_completed_destroy(it);
    for (int i = 0; i < N; i++)
        mproc_future_release(fs[i]);
    /* Completions after destroy must not touch the iterator. */
    rig_end(&r);
    /* And an iterator destroyed with nothing yielded at all. */
    rig_start(&r, 1);
    CHECK_OK(mproc_as_completed_create(&it, r.held, 1));
    mproc_as_completed_destroy(it);
    rig_end(&r);
}

/* One iterator per thread over the same futures: each sees all. */
typedef struct ac_thread {
    mproc_future **fs;
    int n;
    int yielded;
} ac_thread;

static void *ac_thread_main(void *p)
{
    ac_thread *a = p;
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, a->fs, (size_t)a->n));
    mproc_future *y;
    int rc;
    while ((rc = mproc_as_completed_next(it, 6 * LONG_MS, &y)) == 1)
        a->yielded++;
    CHECK_EQ(rc, 0);
    mproc_as_completed_destroy(it);
    return NULL;
}

TEST(as_completed_several_iterators)
{
    enum { N = 300, T = 3 };
    mproc_executor *ex = make_ex(2);
    static mproc_future *fs[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(mproc_submit(ex, sleepy_task, NUM(i % 7 * 50), 0, &fs[i]));
    ac_thread a[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        a[t] = (ac_thread){ .fs = fs, .n = N };
        th[t] = test_start_thread(ac_thread_main, &a[t]);
    }
    for (int t = 0; t < T; t++) {
        test_join_thread(th[t]);
        CHECK_EQ(a[t].yielded, N);
    }
    for (int i = 0; i < N; i++)
        mproc_future_release(fs[i]);
    mproc_executor_destroy(ex);
}
