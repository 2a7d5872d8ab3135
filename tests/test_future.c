/*
 * tests/test_future.c -- futures of thread executors (mproc/exec.h):
 * result with timeouts, error, state snapshots, cancel before and after
 * start, done callbacks (once, order, added late, releasing the future,
 * re-entering mproc), retain/release. Waiting for many futures
 * (mproc_wait, as_completed) is in test_wait.c.
 *
 * Workers are held busy with tasks blocked on events (exec_common.h);
 * timeouts are checked as lower bounds only.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_common.h"

/* ------------------------------------------------------------------ */
/* result / error / states                                             */
/* ------------------------------------------------------------------ */

/* The case: result times out while the task is blocked on an
 * event, then gives the result once the event is set. */
TEST(result_timeout_then_value)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    const void *data = (const void *)&h;
    size_t len = 777;
    CHECK_TIMES_OUT(mproc_future_result(f, 0, &data, &len), 0);
    CHECK_TIMES_OUT(mproc_future_result(f, 1, &data, &len), 1);
    CHECK_TIMES_OUT(mproc_future_result(f, 100, &data, &len), 100);
    CHECK(data == (const void *)&h); /* untouched on timeout */
    CHECK_EQ(len, 777);
    CHECK(!mproc_future_done(f));
    CHECK_RC(mproc_future_error(f, NULL, NULL), -EAGAIN);
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(f), HOLD_VALUE);
    /* Again, at once, any number of times. */
    CHECK_OK(mproc_future_result(f, 0, &data, &len));
    CHECK_EQ(len, 8);
    CHECK_OK(mproc_future_result(f, -1, NULL, NULL));
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* result(-1) sleeps and is woken by the completion. */
TEST(result_wakes_blocked_waiter)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    waker w = { .tid = gettid(), .ev = &h.go };
    pthread_t t = test_start_thread(waker_main, &w);
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(f, -1, &data, &len));
    CHECK_EQ(len, 8);
    test_join_thread(t);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

typedef struct result_waiter {
    mproc_future *f;
    pid_t tid;
    atomic_int ready;
    uint64_t value;
} result_waiter;

static void *result_waiter_main(void *p)
{
    result_waiter *w = p;
    w->tid = gettid();
    atomic_store(&w->ready, 1);
    w->value = result_u64(w->f);
    return NULL;
}

/* Several threads waiting for one future all get its result. */
TEST(result_many_waiters)
{
    enum { T = 5 };
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    result_waiter w[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].f = f;
        th[i] = test_start_thread(result_waiter_main, &w[i]);
    }
    for (int i = 0; i < T; i++) {
        WAIT_UNTIL(atomic_load(&w[i].ready), LONG_MS);
        test_wait_sleeping(w[i].tid, LONG_MS);
    }
    CHECK_OK(mproc_event_set(&h.go));
    for (int i = 0; i < T; i++) {
        test_join_thread(th[i]);
        CHECK_EQ(w[i].value, HOLD_VALUE);
    }
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Huge timeouts mean "practically forever", not an overflow. */
TEST(result_huge_timeouts)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    waker w = { .tid = gettid(), .ev = &h.go };
    pthread_t t = test_start_thread(waker_main, &w);
    CHECK_OK(mproc_future_result(f, INT64_MAX, NULL, NULL));
    test_join_thread(t);
    CHECK_OK(mproc_future_result(f, INT64_MAX, NULL, NULL));
    CHECK_OK(mproc_wait(&f, 1, INT64_MAX, MPROC_ALL_COMPLETED, NULL, NULL));
    CHECK_OK(mproc_wait(&f, 1, INT64_MAX - 1, MPROC_FIRST_COMPLETED, NULL, NULL));
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, &f, 1));
    mproc_future *y;
    CHECK_EQ(mproc_as_completed_next(it, INT64_MAX, &y), 1);
    CHECK_EQ(mproc_as_completed_next(it, INT64_MAX, &y), 0);
    mproc_as_completed_destroy(it);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

TEST(result_and_error_bad_args)
{
    CHECK_RC(mproc_future_result(NULL, 0, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_future_result(NULL, -1, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_future_error(NULL, NULL, NULL), -EINVAL);
    int code;
    const char *msg;
    CHECK_RC(mproc_future_error(NULL, &code, &msg), -EINVAL);
    CHECK_RC(mproc_future_cancel(NULL), -EINVAL);
    CHECK(!mproc_future_done(NULL));
    CHECK(!mproc_future_running(NULL));
    CHECK(!mproc_future_cancelled(NULL));
    CHECK_RC(mproc_future_add_done_callback(NULL, NULL, NULL), -EINVAL);
    mproc_future_release(NULL); /* no-op */
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(1), 0, &f));
    CHECK_RC(mproc_future_add_done_callback(f, NULL, NULL), -EINVAL);
    CHECK_EQ(result_u64(f), 1);
    CHECK_RC(mproc_future_add_done_callback(f, NULL, NULL), -EINVAL);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Timeouts below -1 are out of range (DESIGN.md: bad input, including
 * timeouts out of range, gets a clear error code). */
TEST(timeouts_below_minus_one_rejected)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(1), 0, &f));
    CHECK_EQ(result_u64(f), 1);
    CHECK_RC(mproc_future_result(f, -2, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_future_result(f, INT64_MIN, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_wait(&f, 1, -2, MPROC_ALL_COMPLETED, NULL, NULL), -EINVAL);
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, &f, 1));
    mproc_future *y;
    CHECK_RC(mproc_as_completed_next(it, -2, &y), -EINVAL);
    mproc_as_completed_destroy(it);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

TEST(future_states)
{
    mproc_executor *ex = make_ex(1);
    hold h, h2;
    hold_init(&h);
    hold_init(&h2);
    mproc_future *running, *pending;
    hold_workers(ex, &h, 1, &running);
    CHECK_OK(mproc_submit(ex, hold_task, &h2, 0, &pending));
    /* running */
    CHECK(mproc_future_running(running));
    CHECK(!mproc_future_done(running));
    CHECK(!mproc_future_cancelled(running));
    CHECK_RC(mproc_future_error(running, NULL, NULL), -EAGAIN);
    /* pending */
    CHECK(!mproc_future_running(pending));
    CHECK(!mproc_future_done(pending));
    CHECK(!mproc_future_cancelled(pending));
    CHECK_RC(mproc_future_error(pending, NULL, NULL), -EAGAIN);
    /* done */
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(running), HOLD_VALUE);
    CHECK(!mproc_future_running(running));
    CHECK(mproc_future_done(running));
    CHECK(!mproc_future_cancelled(running));
    int code = 1;
    const char *msg = NULL;
    CHECK_OK(mproc_future_error(running, &code, &msg));
    CHECK_EQ(code, 0);
    CHECK(msg != NULL && msg[0] == '\0');
    CHECK_OK(mproc_future_error(running, NULL, NULL));
    CHECK_OK(mproc_future_error(running, &code, NULL));
    CHECK_OK(mproc_future_error(running, NULL, &msg));
    /* the second one now runs */
    WAIT_UNTIL(atomic_load(&h2.started) == 1, LONG_MS);
    CHECK(mproc_future_running(pending));
    CHECK_OK(mproc_event_set(&h2.go));
    CHECK_EQ(result_u64(pending), HOLD_VALUE);
    CHECK(mproc_future_done(pending));
    mproc_future_release(running);
    mproc_future_release(pending);
    mproc_executor_destroy(ex);
}

/* ------------------------------------------------------------------ */
/* cancel                                                              */
/* ------------------------------------------------------------------ */

/* What a callback saw. */
typedef struct cb_log {
    atomic_int calls;
    pid_t tid;           /* thread of the first call */
    bool done;           /* mproc_future_done(f) inside the callback */
    bool cancelled;
    int code;            /* from mproc_future_error inside the callback */
    int error_rc;
    mproc_future *f;
} cb_log;

static void log_cb(mproc_future *f, void *userdata)
{
    cb_log *l = userdata;
    if (atomic_fetch_add(&l->calls, 1) == 0) {
        l->tid = gettid();
        l->done = mproc_future_done(f);
        l->cancelled = mproc_future_cancelled(f);
        l->code = 12345;
        l->error_rc = mproc_future_error(f, &l->code, NULL);
        l->f = f;
    }
}

/* The case: cancel before start returns 1, the task never runs,
 * result is MPROC_ECANCELLED, callbacks run once, in the caller. */
TEST(cancel_before_start)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *held, *f;
    hold_workers(ex, &h, 1, &held);
    atomic_long ran = 0;
    CHECK_OK(mproc_submit(ex, count_task, &ran, 0, &f));
    cb_log before, after;
    memset(&before, 0, sizeof before);
    memset(&after, 0, sizeof after);
    CHECK_OK(mproc_future_add_done_callback(f, log_cb, &before));
    CHECK_EQ(atomic_load(&before.calls), 0);
    CHECK_EQ(mproc_future_cancel(f), 1);
    /* The callback ran in this thread, before cancel returned. */
    CHECK_EQ(atomic_load(&before.calls), 1);
    CHECK_EQ(before.tid, gettid());
    CHECK(before.f == f);
    CHECK(before.done);
    CHECK(before.cancelled);
    CHECK_OK(before.error_rc);
    CHECK_EQ(before.code, MPROC_ECANCELLED);
    CHECK(mproc_future_cancelled(f));
    CHECK(mproc_future_done(f));
    CHECK(!mproc_future_running(f));
    CHECK_RC(mproc_future_result(f, 0, NULL, NULL), MPROC_ECANCELLED);
    CHECK_RC(mproc_future_result(f, -1, NULL, NULL), MPROC_ECANCELLED);
    int code = 0;
    const char *msg = NULL;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    CHECK_EQ(code, MPROC_ECANCELLED);
    CHECK(msg != NULL);
    /* Again: still 1, callbacks not run again. */
    CHECK_EQ(mproc_future_cancel(f), 1);
    CHECK_EQ(atomic_load(&before.calls), 1);
    /* Added after: runs at once, in this thread. */
    CHECK_OK(mproc_future_add_done_callback(f, log_cb, &after));
    CHECK_EQ(atomic_load(&after.calls), 1);
    CHECK_EQ(after.tid, gettid());
    CHECK(after.cancelled);
    /* Let the worker go: the cancelled task never runs. */
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(held), HOLD_VALUE);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK_EQ(atomic_load(&before.calls), 1);
    CHECK_EQ(atomic_load(&after.calls), 1);
    mproc_future_release(f);
    mproc_future_release(held);
}

/* The case: cancel after start returns 0; the task completes. */
TEST(cancel_after_start)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    cb_log l;
    memset(&l, 0, sizeof l);
    CHECK_OK(mproc_future_add_done_callback(f, log_cb, &l));
    CHECK_EQ(mproc_future_cancel(f), 0);
    CHECK(!mproc_future_cancelled(f));
    CHECK(mproc_future_running(f));
    CHECK_EQ(atomic_load(&l.calls), 0);
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(f), HOLD_VALUE);
    CHECK(!mproc_future_cancelled(f));
    /* After it finished: still 0. */
    CHECK_EQ(mproc_future_cancel(f), 0);
    CHECK(!mproc_future_cancelled(f));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&l.calls), 1);
    CHECK(l.tid != gettid()); /* a worker finished it */
    CHECK(l.done);
    CHECK(!l.cancelled);
    CHECK_OK(l.error_rc);
    CHECK_EQ(l.code, 0);
    /* The refused cancel still asked the running task to stop early. */
    CHECK_EQ(atomic_load(&h.saw_cancel), 1);
    mproc_future_release(f);
}

/* Task (arg: an atomic_int set to 1 when it runs): poll
 * mproc_cancel_requested until it turns true (at most LONG_MS). */
static int poll_cancel_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    atomic_store((atomic_int *)arg, 1);
    int64_t end = test_now_ms() + LONG_MS;
    while (!mproc_cancel_requested(ctx)) {
        if (test_now_ms() > end)
            return mproc_fail(ctx, -ETIMEDOUT, "cancel_requested never turned true");
        usleep(100);
    }
    uint64_t v = 1;
    return mproc_return(ctx, &v, sizeof v);
}

/* Cancelling a running task (refused: 0) sets its cancel_requested; the
 * task stops early by itself and completes normally; other tasks of the
 * executor are not asked to stop. */
TEST(cancel_running_sets_cancel_requested)
{
    mproc_executor *ex = make_ex(2);
    atomic_int running = 0;
    mproc_future *f, *other;
    CHECK_OK(mproc_submit(ex, poll_cancel_task, &running, 0, &f));
    WAIT_UNTIL(atomic_load(&running), LONG_MS);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 1, &other);
    CHECK_RC(mproc_future_result(f, 20, NULL, NULL), -ETIMEDOUT);
    CHECK_EQ(mproc_future_cancel(f), 0);
    CHECK_EQ(result_u64(f), 1);
    CHECK(!mproc_future_cancelled(f));
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(other), HOLD_VALUE);
    CHECK_EQ(atomic_load(&h.saw_cancel), 0);
    mproc_future_release(f);
    mproc_future_release(other);
    mproc_executor_destroy(ex);
}

TEST(cancel_failed_future_is_0)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, fail_task, NUM(-EIO), 0, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), -EIO);
    CHECK_EQ(mproc_future_cancel(f), 0);
    CHECK(!mproc_future_cancelled(f));
    CHECK_RC(mproc_future_result(f, 0, NULL, NULL), -EIO);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Per-task record for the cancel race. */
typedef struct race_slot {
    atomic_int ran;
    atomic_int cbs;
} race_slot;

static int slot_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    atomic_fetch_add(&((race_slot *)arg)->ran, 1);
    return 0;
}

static void slot_cb(mproc_future *f, void *userdata)
{
    (void)f;
    atomic_fetch_add(&((race_slot *)userdata)->cbs, 1);
}

/* Cancel racing the workers' start: each future is either cancelled
 * (cancel 1, never ran) or ran (cancel 0, ran once); callbacks once. */
TEST_T(cancel_races_start, 60)
{
    long n = test_scaled_stress(40000);
    mproc_executor *ex = make_ex(2);
    race_slot *slots = calloc((size_t)n, sizeof *slots);
    mproc_future **fs = calloc((size_t)n, sizeof *fs);
    int *rc = calloc((size_t)n, sizeof *rc);
    CHECK(slots && fs && rc);
    for (long i = 0; i < n; i++) {
        CHECK_OK(mproc_submit(ex, slot_task, &slots[i], 0, &fs[i]));
        CHECK_OK(mproc_future_add_done_callback(fs[i], slot_cb, &slots[i]));
        if (i % 3 == 2) /* cancel a bit behind the submits */
            rc[i - 1] = mproc_future_cancel(fs[i - 1]);
    }
    for (long i = n - 1; i >= 0; i--)
        if (i % 3 != 1)
            rc[i] = mproc_future_cancel(fs[i]);
    mproc_executor_destroy(ex);
    long cancelled = 0;
    for (long i = 0; i < n; i++) {
        CHECK_MSG(rc[i] == 0 || rc[i] == 1, "cancel gave %d", rc[i]);
        int r = mproc_future_result(fs[i], 0, NULL, NULL);
        if (rc[i] == 1) {
            cancelled++;
            CHECK_EQ(atomic_load(&slots[i].ran), 0);
            CHECK_RC(r, MPROC_ECANCELLED);
            CHECK(mproc_future_cancelled(fs[i]));
        } else {
            CHECK_EQ(atomic_load(&slots[i].ran), 1);
            CHECK_OK(r);
            CHECK(!mproc_future_cancelled(fs[i]));
        }
        CHECK_EQ(atomic_load(&slots[i].cbs), 1);
        mproc_future_release(fs[i]);
    }
    free(slots);
    free(fs);
    free(rc);
    CHECK(cancelled > 0 || n < 100); /* the cancels did race something */
}

/* ------------------------------------------------------------------ */
/* callbacks                                                           */
/* ------------------------------------------------------------------ */

TEST(callbacks_on_success_and_failure_once)
{
    mproc_executor *ex = make_ex(2);
    hold h;
    hold_init(&h);
    mproc_future *ok, *bad;
    hold_workers(ex, &h, 1, &ok);
    CHECK_OK(mproc_submit(ex, fail_task, NUM(-EPERM), 0, &bad));
    cb_log lok, lbad, lok2, lbad2;
    memset(&lok, 0, sizeof lok);
    memset(&lbad, 0, sizeof lbad);
    memset(&lok2, 0, sizeof lok2);
    memset(&lbad2, 0, sizeof lbad2);
    CHECK_OK(mproc_future_add_done_callback(ok, log_cb, &lok));
    CHECK_OK(mproc_future_add_done_callback(bad, log_cb, &lbad));
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(ok), HOLD_VALUE);
    CHECK_RC(mproc_future_result(bad, LONG_MS, NULL, NULL), -EPERM);
    WAIT_UNTIL(atomic_load(&lok.calls) == 1 && atomic_load(&lbad.calls) == 1, LONG_MS);
    /* Added after completion: at once, here. */
    CHECK_OK(mproc_future_add_done_callback(ok, log_cb, &lok2));
    CHECK_EQ(atomic_load(&lok2.calls), 1);
    CHECK_EQ(lok2.tid, gettid());
    CHECK_OK(mproc_future_add_done_callback(bad, log_cb, &lbad2));
    CHECK_EQ(atomic_load(&lbad2.calls), 1);
    CHECK_EQ(lbad2.tid, gettid());
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&lok.calls), 1);
    CHECK_EQ(atomic_load(&lbad.calls), 1);
    CHECK_EQ(atomic_load(&lok2.calls), 1);
    CHECK_EQ(atomic_load(&lbad2.calls), 1);
    CHECK(lok.done && lbad.done && lok2.done && lbad2.done);
    CHECK(!lok.cancelled && !lbad.cancelled);
    CHECK_EQ(lok.code, 0);
    CHECK_EQ(lbad.code, -EPERM);
    CHECK_EQ(lbad2.code, -EPERM);
    CHECK(lok.tid != gettid());
    mproc_future_release(ok);
    mproc_future_release(bad);
}

/* Callbacks run in the order added, also when some are added after the
 * future finished. */
typedef struct order_log {
    atomic_int n;
    int seq[16];
} order_log;

typedef struct order_cb_arg {
    order_log *log;
    int id;
} order_cb_arg;

static void order_cb(mproc_future *f, void *userdata)
{
    (void)f;
    order_cb_arg *a = userdata;
    int i = atomic_fetch_add(&a->log->n, 1);
    if (i < 16)
        a->log->seq[i] = a->id;
}

TEST(callbacks_run_in_order_added)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    order_log log;
    memset(&log, 0, sizeof log);
    order_cb_arg args[10];
    for (int i = 0; i < 10; i++)
        args[i] = (order_cb_arg){ &log, i };
    for (int i = 0; i < 7; i++)
        CHECK_OK(mproc_future_add_done_callback(f, order_cb, &args[i]));
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(f), HOLD_VALUE);
    WAIT_UNTIL(atomic_load(&log.n) == 7, LONG_MS);
    for (int i = 7; i < 10; i++)
        CHECK_OK(mproc_future_add_done_callback(f, order_cb, &args[i]));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&log.n), 10);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(log.seq[i], i);
    mproc_future_release(f);
}

/* A callback may drop the last reference to its own future. */
static void release_cb(mproc_future *f, void *userdata)
{
    atomic_fetch_add((atomic_int *)userdata, 1);
    mproc_future_release(f);
}

TEST(callback_releases_own_future)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    atomic_int calls = 0;
    /* 1: finished by a worker; the caller dropped its reference before. */
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    CHECK_OK(mproc_future_add_done_callback(f, release_cb, &calls));
    f = NULL; /* the callback owns our reference now */
    /* 2: cancelled; the callback drops the caller's reference. */
    mproc_future *c;
    atomic_long ran = 0;
    CHECK_OK(mproc_submit(ex, count_task, &ran, 0, &c));
    CHECK_OK(mproc_future_add_done_callback(c, release_cb, &calls));
    CHECK_EQ(mproc_future_cancel(c), 1);
    CHECK_EQ(atomic_load(&calls), 1);
    /* 3: already finished; the callback, run at once, drops the only
     * reference left (the executor's is gone). */
    mproc_future *d;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(3), 0, &d));
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(d), 3);
    WAIT_UNTIL(atomic_load(&calls) == 2, LONG_MS); /* case 1 */
    mproc_executor_destroy(ex); /* the executor's references are gone */
    CHECK_OK(mproc_future_add_done_callback(d, release_cb, &calls));
    CHECK_EQ(atomic_load(&calls), 3);
    CHECK_EQ(atomic_load(&ran), 0);
    /* ASan reports any use after free or leak. */
}

/* Regression guard: a future cancelled by mproc_future_cancel stays
 * alive until all its callbacks have returned, even when a worker drops
 * the scheduler's reference (popping the cancelled task) meanwhile and
 * the first callback drops the caller's (ASan: heap-use-after-free). */
typedef struct cancel_keep {
    hold *h;
    mproc_event marker_ran;
    atomic_int second_saw_cancelled;
} cancel_keep;

static int set_event_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    return mproc_event_set((mproc_event *)arg);
}

static void keep_first_cb(mproc_future *f, void *userdata)
{
    cancel_keep *k = userdata;
    /* Let the worker go: it pops the cancelled task (dropping the
     * scheduler's reference), then runs the marker queued after it. */
    CHECK_OK(mproc_event_set(&k->h->go));
    CHECK_OK(mproc_event_wait(&k->marker_ran, LONG_MS));
    mproc_future_release(f); /* the caller's reference */
}

static void keep_second_cb(mproc_future *f, void *userdata)
{
    cancel_keep *k = userdata;
    atomic_store(&k->second_saw_cancelled, mproc_future_cancelled(f) ? 1 : 2);
}

TEST(cancel_callbacks_keep_future_alive)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *held, *f;
    hold_workers(ex, &h, 1, &held);
    cancel_keep k;
    memset(&k, 0, sizeof k);
    k.h = &h;
    CHECK_OK(mproc_event_init(&k.marker_ran, 0));
    atomic_long ran = 0;
    CHECK_OK(mproc_submit(ex, count_task, &ran, 0, &f));
    CHECK_OK(mproc_submit(ex, set_event_task, &k.marker_ran, 0, NULL));
    CHECK_OK(mproc_future_add_done_callback(f, keep_first_cb, &k));
    CHECK_OK(mproc_future_add_done_callback(f, keep_second_cb, &k));
    CHECK_EQ(mproc_future_cancel(f), 1);
    CHECK_EQ(atomic_load(&k.second_saw_cancelled), 1);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    mproc_future_release(held);
}

/* Several callbacks on one future each drop one reference. */
TEST(callbacks_release_references_one_each)
{
    mproc_executor *ex = make_ex(2);
    hold h;
    hold_init(&h);
    atomic_int calls = 0;
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    for (int i = 0; i < 4; i++)
        CHECK_OK(mproc_future_add_done_callback(f, release_cb, &calls));
    for (int i = 0; i < 3; i++)
        CHECK(mproc_future_retain(f) == f);
    CHECK_OK(mproc_event_set(&h.go));
    WAIT_UNTIL(atomic_load(&calls) == 4, LONG_MS);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&calls), 4);
}

/* A callback may call into mproc: query its future, add a callback to
 * it (runs at once, nested), submit a new task. */
typedef struct reenter {
    mproc_executor *ex;
    atomic_int calls;
    atomic_int nested;
    int result_rc;
    int submit_rc;
    mproc_future *child;
    atomic_long child_ran;
} reenter;

static void nested_cb(mproc_future *f, void *userdata)
{
    (void)f;
    atomic_fetch_add(&((reenter *)userdata)->nested, 1);
}

static void reenter_cb(mproc_future *f, void *userdata)
{
    reenter *r = userdata;
    r->result_rc = mproc_future_result(f, 0, NULL, NULL);
    if (!mproc_future_done(f) || mproc_future_error(f, NULL, NULL) != 0)
        r->result_rc = -EPROTO;
    int before = atomic_load(&r->nested);
    if (mproc_future_add_done_callback(f, nested_cb, r) != 0 ||
        atomic_load(&r->nested) != before + 1)
        r->result_rc = -EPROTO;
    if (mproc_future_cancel(f) != 0)
        r->result_rc = -EPROTO;
    r->submit_rc = mproc_submit(r->ex, count_task, &r->child_ran, 0, &r->child);
    atomic_fetch_add(&r->calls, 1); /* last: publishes the fields above */
}

TEST(callback_reenters_mproc)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *f;
    hold_workers(ex, &h, 1, &f);
    reenter r;
    memset(&r, 0, sizeof r);
    r.ex = ex;
    CHECK_OK(mproc_future_add_done_callback(f, reenter_cb, &r));
    CHECK_OK(mproc_event_set(&h.go));
    WAIT_UNTIL(atomic_load(&r.calls) == 1, LONG_MS);
    CHECK_OK(r.result_rc);
    CHECK_OK(r.submit_rc);
    CHECK_OK(mproc_future_result(r.child, LONG_MS, NULL, NULL));
    CHECK_EQ(atomic_load(&r.child_ran), 1);
    CHECK_EQ(atomic_load(&r.nested), 1);
    mproc_future_release(r.child);
    /* Same from the caller's thread on a finished future. */
    reenter r2;
    memset(&r2, 0, sizeof r2);
    r2.ex = ex;
    CHECK_OK(mproc_future_add_done_callback(f, reenter_cb, &r2));
    CHECK_EQ(atomic_load(&r2.calls), 1);
    CHECK_OK(r2.result_rc);
    CHECK_OK(r2.submit_rc);
    CHECK_OK(mproc_future_result(r2.child, LONG_MS, NULL, NULL));
    mproc_future_release(r2.child);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&r.calls), 1);
}

/* Adding callbacks races completion: each runs exactly once. */
TEST_T(callbacks_race_completion, 60)
{
    long n = test_scaled_stress(40000);
    mproc_executor *ex = make_ex(2);
    atomic_int a = 0, b = 0, rel = 0;
    for (long i = 0; i < n; i++) {
        mproc_future *f;
        CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &f));
        CHECK_OK(mproc_future_add_done_callback(f, count_cb, &a));
        CHECK_OK(mproc_future_add_done_callback(f, count_cb, &b));
        if (i % 2) {
            /* The last callback drops the caller's reference. */
            CHECK_OK(mproc_future_add_done_callback(f, release_cb, &rel));
        } else {
            mproc_future_release(f);
        }
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&a), n);
    CHECK_EQ(atomic_load(&b), n);
    CHECK_EQ(atomic_load(&rel), n / 2);
}

/* ------------------------------------------------------------------ */
/* references                                                          */
/* ------------------------------------------------------------------ */

TEST(retain_release)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(8), 0, &f));
    CHECK(mproc_future_retain(f) == f);
    CHECK(mproc_future_retain(f) == f);
    mproc_future_release(f);
    mproc_future_release(f);
    CHECK_EQ(result_u64(f), 8); /* still one reference */
    mproc_executor_destroy(ex);
    CHECK_EQ(result_u64(f), 8);
    mproc_future_release(f);
}

/* Handing a future to another thread that releases it. */
static void *release_on_thread(void *p)
{
    mproc_future *f = p;
    uint64_t v = result_u64(f);
    mproc_future_release(f);
    return (void *)(uintptr_t)v;
}

TEST(retain_for_another_owner)
{
    mproc_executor *ex = make_ex(2);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(11), 0, &f));
    pthread_t t = test_start_thread(release_on_thread, mproc_future_retain(f));
    mproc_future_release(f);
    void *ret;
    CHECK_EQ(pthread_join(t, &ret), 0);
    CHECK_EQ((uintptr_t)ret, 11);
    mproc_executor_destroy(ex);
}

/* Futures released before they complete: the executor still runs them. */
TEST(release_before_complete)
{
    mproc_executor *ex = make_ex(2);
    hold h;
    hold_init(&h);
    mproc_future *held[2];
    hold_workers(ex, &h, 2, held);
    mproc_future_release(held[0]);
    mproc_future_release(held[1]);
    atomic_long c = 0;
    for (int i = 0; i < 500; i++) {
        mproc_future *f;
        CHECK_OK(mproc_submit(ex, count_task, &c, 0, &f));
        mproc_future_release(f);
        CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
    }
    CHECK_OK(mproc_event_set(&h.go));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c), 1000);
    CHECK_EQ(atomic_load(&h.finished), 2);
}
