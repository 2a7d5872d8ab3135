/*
 * tests/test_exec.c -- thread executors (mproc/exec.h): create/destroy and
 * their options (worker count, names), shutdown with and without
 * cancel_futures, destroy with queued tasks, initializers, nested submits
 * (fib, chains) and stress (1M tiny tasks, several submitting threads,
 * submit racing shutdown).
 *
 * What a task sees and returns is in test_task.c; futures (result,
 * cancel, callbacks, wait, as_completed) in test_future.c. Workers are held busy with tasks blocked on events
 * (exec_common.h), never with sleeps.
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "exec_common.h"

/* The executor that tasks submitting tasks (fib, chains, children)
 * submit to. */
static mproc_executor *nested_ex;

/* ------------------------------------------------------------------ */
/* create / destroy                                                    */
/* ------------------------------------------------------------------ */

/* CPUs in the calling thread's affinity mask. */
static int affinity_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CHECK_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    return CPU_COUNT(&set);
}

TEST(create_opts_null_uses_affinity_cpus)
{
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, NULL));
    CHECK_EQ(mproc_executor_workers(ex), affinity_cpus());
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(5), 0, &f));
    CHECK_EQ(result_u64(f), 5);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

TEST(create_workers_zero_is_affinity_count)
{
    mproc_executor *ex = make_ex(0);
    CHECK_EQ(mproc_executor_workers(ex), affinity_cpus());
    mproc_executor_destroy(ex);
}

/* workers = 0 follows a restricted mask, not the machine's CPU count. */
TEST(create_workers_zero_follows_restricted_affinity)
{
    cpu_set_t all, one;
    CPU_ZERO(&all);
    CHECK_EQ(sched_getaffinity(0, sizeof all, &all), 0);
    int cpu = -1;
    for (int i = 0; i < CPU_SETSIZE; i++)
        if (CPU_ISSET(i, &all)) {
            cpu = i;
            break;
        }
    CHECK(cpu >= 0);
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    CHECK_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    mproc_executor *ex = make_ex(0);
    CHECK_EQ(mproc_executor_workers(ex), 1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, echo_task, NUM(1), 0, &f));
    CHECK_EQ(result_u64(f), 1);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
    CHECK_EQ(sched_setaffinity(0, sizeof all, &all), 0);
}

TEST(create_worker_counts)
{
    static const unsigned counts[] = { 1, 2, 3, 8, 17 };
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        mproc_executor *ex = make_ex(counts[c]);
        CHECK_EQ(mproc_executor_workers(ex), counts[c]);
        mproc_future *fs[64];
        for (int i = 0; i < 64; i++)
            CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &fs[i]));
        for (int i = 0; i < 64; i++) {
            CHECK_EQ(result_u64(fs[i]), i);
            mproc_future_release(fs[i]);
        }
        mproc_executor_destroy(ex);
    }
}

TEST(create_bad_args)
{
    mproc_executor *ex = NULL;
    CHECK_RC(mproc_executor_create(NULL, NULL), -EINVAL);
    CHECK_RC(mproc_executor_create(NULL, &(mproc_executor_opts){ .workers = 1 }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = 4097 }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = 1u << 20 }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = UINT_MAX }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){
                 .kind = (mproc_executor_kind)7, .workers = 1 }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){
                 .kind = (mproc_executor_kind)-1, .workers = 1 }), -EINVAL);
    CHECK_RC(mproc_executor_workers(NULL), -EINVAL);
    CHECK_RC(mproc_executor_shutdown(NULL, false, false), -EINVAL);
    CHECK_RC(mproc_executor_shutdown(NULL, true, true), -EINVAL);
    mproc_executor_destroy(NULL); /* no-op */
    /* Nothing was left running by the refusals. */
    CHECK_EQ(mproc_thread_active_count(), 1);
}

/* Create and destroy at once, idle or with one task, many times: no race
 * between workers starting and the executor going away. */
TEST(create_destroy_quickly)
{
    long n = test_scaled_stress(200);
    for (long i = 0; i < n; i++) {
        mproc_executor *ex = make_ex(1 + (unsigned)(i % 4));
        if (i % 2) {
            atomic_long c = 0;
            CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
            mproc_executor_destroy(ex);
            CHECK_EQ(atomic_load(&c), 1);
        } else {
            mproc_executor_destroy(ex);
        }
    }
}

/* Task: return "<comm>" of the running thread and its worker index. */
typedef struct name_result {
    int worker;
    char comm[16];
} name_result;

static int name_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    name_result r;
    memset(&r, 0, sizeof r);
    r.worker = mproc_ctx_worker(ctx);
    if (prctl(PR_GET_NAME, r.comm, 0, 0, 0) != 0)
        return -errno;
    return mproc_return(ctx, &r, sizeof r);
}

static void check_worker_names(const char *name, const char *want_prefix)
{
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = 3, .name = name }));
    for (int i = 0; i < 30; i++) {
        mproc_future *f;
        CHECK_OK(mproc_submit(ex, name_task, NULL, 0, &f));
        const void *data;
        size_t len;
        CHECK_OK(mproc_future_result(f, LONG_MS, &data, &len));
        CHECK_EQ(len, sizeof(name_result));
        name_result r;
        memcpy(&r, data, sizeof r);
        char want[32];
        snprintf(want, sizeof want, "%s-%d", want_prefix, r.worker);
        CHECK_MSG(strcmp(r.comm, want) == 0, "worker %d is named \"%s\", want \"%s\"",
                  r.worker, r.comm, want);
        mproc_future_release(f);
    }
    mproc_executor_destroy(ex);
}

TEST(worker_names)
{
    check_worker_names(NULL, "mproc");
    check_worker_names("calculo", "calculo");
}

/* ------------------------------------------------------------------ */
/* shutdown                                                            */
/* ------------------------------------------------------------------ */

TEST(submit_after_shutdown)
{
    mproc_executor *ex = make_ex(2);
    CHECK_OK(mproc_executor_shutdown(ex, false, false));
    mproc_future *f = NULL;
    CHECK_RC(mproc_submit(ex, echo_task, NUM(1), 0, &f), MPROC_ESHUTDOWN);
    CHECK_RC(mproc_submit(ex, echo_task, NUM(1), 0, NULL), MPROC_ESHUTDOWN);
    char buf[8] = "x";
    CHECK_RC(mproc_submit_ex(ex, echo_task, buf, sizeof buf,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &f),
             MPROC_ESHUTDOWN);
    /* Again, with wait and cancel: harmless. */
    CHECK_OK(mproc_executor_shutdown(ex, true, true));
    CHECK_OK(mproc_executor_shutdown(ex, true, false));
    CHECK_RC(mproc_submit(ex, echo_task, NUM(1), 0, &f), MPROC_ESHUTDOWN);
    CHECK_EQ(mproc_executor_workers(ex), 2);
    mproc_executor_destroy(ex);
}

/* Without cancel_futures every accepted task still runs. */
TEST(shutdown_without_cancel_runs_every_task)
{
    enum { W = 2, M = 50 };
    mproc_executor *ex = make_ex(W);
    hold h;
    hold_init(&h);
    mproc_future *held[W], *pending[M];
    hold_workers(ex, &h, W, held);
    atomic_long c = 0;
    for (int i = 0; i < M; i++)
        CHECK_OK(mproc_submit(ex, count_task, &c, 0, &pending[i]));
    CHECK_OK(mproc_executor_shutdown(ex, false, false));
    CHECK_RC(mproc_submit(ex, count_task, &c, 0, NULL), MPROC_ESHUTDOWN);
    for (int i = 0; i < M; i++)
        CHECK(!mproc_future_done(pending[i]));
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_OK(mproc_executor_shutdown(ex, true, false));
    /* Every worker has exited: every future is final now. */
    CHECK_EQ(atomic_load(&c), M);
    for (int i = 0; i < M; i++) {
        CHECK(mproc_future_done(pending[i]));
        CHECK(!mproc_future_cancelled(pending[i]));
        CHECK_OK(mproc_future_result(pending[i], 0, NULL, NULL));
        mproc_future_release(pending[i]);
    }
    for (int i = 0; i < W; i++) {
        CHECK(mproc_future_done(held[i]));
        CHECK_EQ(result_u64(held[i]), HOLD_VALUE);
        mproc_future_release(held[i]);
    }
    mproc_executor_destroy(ex);
}

/* shutdown(cancel_futures) with all `w` workers held busy: the pending
 * tasks are cancelled (never run, MPROC_ECANCELLED, callbacks once), the
 * running ones run to the end and see mproc_cancel_requested. */
static void shutdown_cancel_case(int w)
{
    enum { M = 40 };
    mproc_executor *ex = make_ex((unsigned)w);
    hold h;
    hold_init(&h);
    mproc_future *held[8], *pending[M];
    hold_workers(ex, &h, w, held);
    atomic_long ran = 0;
    atomic_int cbs = 0, held_cbs = 0;
    for (int i = 0; i < w; i++)
        CHECK_OK(mproc_future_add_done_callback(held[i], count_cb, &held_cbs));
    for (int i = 0; i < M; i++) {
        CHECK_OK(mproc_submit(ex, count_task, &ran, 0, &pending[i]));
        CHECK_OK(mproc_future_add_done_callback(pending[i], count_cb, &cbs));
    }
    /* Some fire-and-forget ones too: cancelled with nobody looking. */
    for (int i = 0; i < M; i++)
        CHECK_OK(mproc_submit(ex, count_task, &ran, 0, NULL));
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    CHECK_RC(mproc_submit(ex, count_task, &ran, 0, NULL), MPROC_ESHUTDOWN);
    /* The pending futures are cancelled while the workers are still busy. */
    for (int i = 0; i < M; i++) {
        WAIT_UNTIL(mproc_future_done(pending[i]), LONG_MS);
        CHECK(mproc_future_cancelled(pending[i]));
        CHECK_RC(mproc_future_result(pending[i], 0, NULL, NULL), MPROC_ECANCELLED);
        int code = 0;
        CHECK_OK(mproc_future_error(pending[i], &code, NULL));
        CHECK_EQ(code, MPROC_ECANCELLED);
        CHECK_EQ(mproc_future_cancel(pending[i]), 1);
    }
    WAIT_UNTIL(atomic_load(&cbs) == M, LONG_MS);
    /* The running ones are not cancelled. */
    for (int i = 0; i < w; i++) {
        CHECK(!mproc_future_done(held[i]));
        CHECK(mproc_future_running(held[i]));
        CHECK_EQ(mproc_future_cancel(held[i]), 0);
    }
    CHECK_EQ(atomic_load(&h.finished), 0);
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_OK(mproc_executor_shutdown(ex, true, true));
    for (int i = 0; i < w; i++) {
        CHECK(mproc_future_done(held[i]));
        CHECK(!mproc_future_cancelled(held[i]));
        CHECK_EQ(result_u64(held[i]), HOLD_VALUE);
        mproc_future_release(held[i]);
    }
    CHECK_EQ(atomic_load(&h.saw_cancel), w);
    CHECK_EQ(atomic_load(&held_cbs), w);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK_EQ(atomic_load(&cbs), M);
    for (int i = 0; i < M; i++)
        mproc_future_release(pending[i]);
}

TEST(shutdown_cancel_futures_1_worker)
{
    shutdown_cancel_case(1);
}

TEST(shutdown_cancel_futures_2_workers)
{
    shutdown_cancel_case(2);
}

TEST(shutdown_cancel_futures_4_workers)
{
    shutdown_cancel_case(4);
}

/* shutdown(cancel_futures) also cancels tasks waiting in a worker's own
 * deque (children of a running task) and in the overflow beyond the
 * injection queue's capacity. */
typedef struct brood {
    int n;
    mproc_future **kids;
    atomic_long ran;
    mproc_event submitted, go;
} brood;

static int brood_parent_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    brood *b = (brood *)arg;
    for (int i = 0; i < b->n; i++) {
        int rc = mproc_submit(nested_ex, count_task, &b->ran, 0, &b->kids[i]);
        if (rc)
            return mproc_fail(ctx, rc, "submit child %d", i);
    }
    mproc_event_set(&b->submitted);
    return mproc_event_wait(&b->go, LONG_MS);
}

TEST(shutdown_cancel_reaches_deques_and_overflow)
{
    nested_ex = make_ex(1);
    brood b;
    memset(&b, 0, sizeof b);
    b.n = 100;
    b.kids = calloc((size_t)b.n, sizeof *b.kids);
    CHECK(b.kids != NULL);
    CHECK_OK(mproc_event_init(&b.submitted, 0));
    CHECK_OK(mproc_event_init(&b.go, 0));
    mproc_future *parent;
    CHECK_OK(mproc_submit(nested_ex, brood_parent_task, &b, 0, &parent));
    CHECK_OK(mproc_event_wait(&b.submitted, LONG_MS));
    /* More than the injection queue holds, from outside. */
    enum { OUT = 70000 };
    mproc_future **outside = calloc(OUT, sizeof *outside);
    CHECK(outside != NULL);
    for (int i = 0; i < OUT; i++)
        CHECK_OK(mproc_submit(nested_ex, count_task, &b.ran, 0, &outside[i]));
    CHECK_OK(mproc_executor_shutdown(nested_ex, false, true));
    for (int i = 0; i < b.n; i++) {
        WAIT_UNTIL(mproc_future_done(b.kids[i]), LONG_MS);
        CHECK(mproc_future_cancelled(b.kids[i]));
    }
    for (int i = 0; i < OUT; i++) {
        WAIT_UNTIL(mproc_future_done(outside[i]), LONG_MS);
        CHECK(mproc_future_cancelled(outside[i]));
    }
    CHECK(!mproc_future_done(parent));
    CHECK_OK(mproc_event_set(&b.go));
    CHECK_OK(mproc_future_result(parent, LONG_MS, NULL, NULL));
    mproc_executor_destroy(nested_ex);
    CHECK_EQ(atomic_load(&b.ran), 0);
    for (int i = 0; i < b.n; i++)
        mproc_future_release(b.kids[i]);
    for (int i = 0; i < OUT; i++)
        mproc_future_release(outside[i]);
    mproc_future_release(parent);
    free(b.kids);
    free(outside);
}

/* A later shutdown call may add cancel_futures. */
TEST(shutdown_later_call_adds_cancel)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *held, *pending[10];
    hold_workers(ex, &h, 1, &held);
    atomic_long ran = 0;
    for (int i = 0; i < 10; i++)
        CHECK_OK(mproc_submit(ex, count_task, &ran, 0, &pending[i]));
    CHECK_OK(mproc_executor_shutdown(ex, false, false));
    CHECK(!mproc_future_done(pending[0]));
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    for (int i = 0; i < 10; i++) {
        WAIT_UNTIL(mproc_future_done(pending[i]), LONG_MS);
        CHECK_RC(mproc_future_result(pending[i], 0, NULL, NULL), MPROC_ECANCELLED);
    }
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(held), HOLD_VALUE);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    for (int i = 0; i < 10; i++)
        mproc_future_release(pending[i]);
    mproc_future_release(held);
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

TEST(cancel_requested_turns_true_after_shutdown_cancel)
{
    mproc_executor *ex = make_ex(2);
    atomic_int running[2] = { 0, 0 };
    mproc_future *f[2];
    for (int i = 0; i < 2; i++)
        CHECK_OK(mproc_submit(ex, poll_cancel_task, &running[i], 0, &f[i]));
    WAIT_UNTIL(atomic_load(&running[0]) && atomic_load(&running[1]), LONG_MS);
    CHECK_RC(mproc_future_result(f[0], 0, NULL, NULL), -ETIMEDOUT);
    CHECK_OK(mproc_executor_shutdown(ex, true, true));
    for (int i = 0; i < 2; i++) {
        CHECK(!mproc_future_cancelled(f[i]));
        CHECK_EQ(result_u64(f[i]), 1);
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
}

/* Task (arg: its executor): shut it down from inside. */
static int shutdown_self_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    mproc_executor *ex = (mproc_executor *)arg;
    int rc = mproc_executor_shutdown(ex, true, false);
    if (rc != -EDEADLK)
        return mproc_fail(ctx, -EPROTO, "shutdown(wait) from a task gave %d", rc);
    rc = mproc_executor_shutdown(ex, true, true);
    if (rc != -EDEADLK)
        return mproc_fail(ctx, -EPROTO, "shutdown(wait, cancel) from a task gave %d", rc);
    rc = mproc_executor_shutdown(ex, false, false);
    if (rc != 0)
        return mproc_fail(ctx, -EPROTO, "shutdown(no wait) from a task gave %d", rc);
    /* Submitting from a task after shutdown fails too. */
    rc = mproc_submit(ex, echo_task, NUM(1), 0, NULL);
    if (rc != MPROC_ESHUTDOWN)
        return mproc_fail(ctx, -EPROTO, "submit after shutdown gave %d", rc);
    return 0;
}

TEST(shutdown_from_own_task)
{
    mproc_executor *ex = make_ex(2);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, shutdown_self_task, ex, 0, &f));
    CHECK_OK(mproc_future_result(f, LONG_MS, NULL, NULL));
    CHECK_RC(mproc_submit(ex, echo_task, NUM(1), 0, NULL), MPROC_ESHUTDOWN);
    CHECK_OK(mproc_executor_shutdown(ex, true, false));
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Destroy with a long queue: every accepted task runs, futures the
 * caller holds stay valid after destroy (ASan checks for leaks). */
TEST(destroy_with_queued_tasks)
{
    enum { N = 2000 };
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 1, NULL);
    atomic_long c = 0;
    static mproc_future *fs[N];
    for (int i = 0; i < N; i++) {
        if (i % 2)
            CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
        else
            CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &fs[i]));
    }
    CHECK_OK(mproc_event_set(&h.go));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c), N / 2);
    CHECK_EQ(atomic_load(&h.finished), 1);
    for (int i = 0; i < N; i += 2) {
        CHECK(mproc_future_done(fs[i]));
        CHECK_EQ(result_u64(fs[i]), i);
        mproc_future_release(fs[i]);
    }
}

/* Leaving the program (exit) with an executor still alive: accepted
 * tasks still run, as at Python's interpreter exit. Runs in a child
 * forked while single-threaded. */
static int exit_with_live_executor(void *arg)
{
    atomic_long *counter = arg;
    mproc_executor *ex = make_ex(2);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 2, NULL);
    for (int i = 0; i < 1000; i++)
        CHECK_OK(mproc_submit(ex, count_task, counter, 0, NULL));
    CHECK_OK(mproc_event_set(&h.go));
    exit(0); /* not _exit: atexit handlers run */
}

TEST(exit_runs_accepted_tasks)
{
    atomic_long *counter = test_map_shared(sizeof *counter);
    test_expect_child_ok(test_fork(exit_with_live_executor, counter));
    CHECK_EQ(atomic_load(counter), 1000);
}

/* shutdown(wait) from several threads at once: all return after the
 * workers exited. */
static void *shutdown_wait_main(void *p)
{
    CHECK_OK(mproc_executor_shutdown((mproc_executor *)p, true, false));
    return NULL;
}

TEST(shutdown_wait_from_several_threads)
{
    mproc_executor *ex = make_ex(2);
    hold h;
    hold_init(&h);
    mproc_future *held[2];
    hold_workers(ex, &h, 2, held);
    atomic_long c = 0;
    for (int i = 0; i < 100; i++)
        CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        t[i] = test_start_thread(shutdown_wait_main, ex);
    CHECK_OK(mproc_event_set(&h.go));
    for (int i = 0; i < 3; i++)
        test_join_thread(t[i]);
    CHECK_EQ(atomic_load(&c), 100);
    CHECK(mproc_future_done(held[0]) && mproc_future_done(held[1]));
    mproc_future_release(held[0]);
    mproc_future_release(held[1]);
    mproc_executor_destroy(ex);
}

/* Destroy right after submitting (no holding): nothing is lost. */
TEST(destroy_right_after_submit)
{
    for (int round = 0; round < 20; round++) {
        mproc_executor *ex = make_ex(1 + (unsigned)(round % 3));
        atomic_long c = 0;
        for (int i = 0; i < 500; i++)
            CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
        mproc_executor_destroy(ex);
        CHECK_EQ(atomic_load(&c), 500);
    }
}

/* Destroy after shutdown(cancel) without waiting: cancelled futures stay
 * valid. */
TEST(destroy_after_shutdown_cancel)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *held, *f;
    hold_workers(ex, &h, 1, &held);
    atomic_long c = 0;
    CHECK_OK(mproc_submit(ex, count_task, &c, 0, &f));
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    CHECK_OK(mproc_event_set(&h.go));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c), 0);
    CHECK(mproc_future_cancelled(f));
    CHECK_RC(mproc_future_result(f, -1, NULL, NULL), MPROC_ECANCELLED);
    CHECK_EQ(result_u64(held), HOLD_VALUE);
    mproc_future_release(f);
    mproc_future_release(held);
}

/* ------------------------------------------------------------------ */
/* initializer                                                         */
/* ------------------------------------------------------------------ */

typedef struct init_log {
    atomic_int calls;
    pid_t tids[16];
    mproc_event release; /* for the held initializer */
    int rc;              /* what the initializer returns */
    bool wait_release;
} init_log;

static _Thread_local int inited_here; /* set by init_record on its thread */

static int init_record(void *initarg)
{
    init_log *l = initarg;
    inited_here = 1;
    int i = atomic_fetch_add(&l->calls, 1);
    if (i < 16)
        l->tids[i] = gettid();
    if (l->wait_release && mproc_event_wait(&l->release, LONG_MS) != 0)
        return -ETIMEDOUT;
    return l->rc;
}

/* Task: 1 if the initializer ran on this thread before. */
static int inited_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    uint64_t found = (uint64_t)inited_here;
    return mproc_return(ctx, &found, sizeof found);
}

TEST(initializer_once_per_worker)
{
    enum { W = 3 };
    init_log l;
    memset(&l, 0, sizeof l);
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
        .workers = W, .initializer = init_record, .initarg = &l }));
    mproc_future *fs[300];
    for (int i = 0; i < 300; i++)
        CHECK_OK(mproc_submit(ex, inited_task, NULL, 0, &fs[i]));
    for (int i = 0; i < 300; i++) {
        CHECK_EQ(result_u64(fs[i]), 1);
        mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&l.calls), W);
    for (int i = 0; i < W; i++) {
        CHECK(l.tids[i] != gettid());
        for (int j = 0; j < i; j++)
            CHECK(l.tids[i] != l.tids[j]);
    }
}

static int never_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    atomic_fetch_add((atomic_long *)arg, 1);
    return 0;
}

/* A failing initializer breaks the executor: tasks never run, they fail
 * with MPROC_EBROKEN (at submit or through their futures). */
TEST(initializer_failure_breaks_executor)
{
    init_log l;
    memset(&l, 0, sizeof l);
    l.rc = -EIO;
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
        .workers = 2, .initializer = init_record, .initarg = &l }));
    atomic_long ran = 0;
    int refused = 0;
    for (int i = 0; i < 50; i++) {
        mproc_future *f = NULL;
        int rc = mproc_submit(ex, never_task, &ran, 0, &f);
        if (rc == MPROC_EBROKEN) {
            refused++;
            continue;
        }
        CHECK_OK(rc);
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EBROKEN);
        int code = 0;
        CHECK_OK(mproc_future_error(f, &code, NULL));
        CHECK_EQ(code, MPROC_EBROKEN);
        CHECK(mproc_future_done(f));
        mproc_future_release(f);
    }
    /* Once a future has failed as broken, submit refuses. */
    if (refused < 50)
        CHECK_RC(mproc_submit(ex, never_task, &ran, 0, NULL), MPROC_EBROKEN);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK(atomic_load(&l.calls) >= 1);
}

/* Tasks accepted before the initializer fails (it is held) fail with
 * MPROC_EBROKEN and run their callbacks. */
TEST(initializer_failure_fails_pending)
{
    init_log l;
    memset(&l, 0, sizeof l);
    l.rc = -EIO;
    l.wait_release = true;
    CHECK_OK(mproc_event_init(&l.release, 0));
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
        .workers = 1, .initializer = init_record, .initarg = &l }));
    atomic_long ran = 0;
    atomic_int cbs = 0;
    mproc_future *fs[5];
    for (int i = 0; i < 5; i++) {
        CHECK_OK(mproc_submit(ex, never_task, &ran, 0, &fs[i]));
        CHECK_OK(mproc_future_add_done_callback(fs[i], count_cb, &cbs));
    }
    CHECK_OK(mproc_submit(ex, never_task, &ran, 0, NULL));
    WAIT_UNTIL(atomic_load(&l.calls) == 1, LONG_MS);
    CHECK(!mproc_future_done(fs[0]));
    CHECK_OK(mproc_event_set(&l.release));
    for (int i = 0; i < 5; i++)
        CHECK_RC(mproc_future_result(fs[i], LONG_MS, NULL, NULL), MPROC_EBROKEN);
    WAIT_UNTIL(atomic_load(&cbs) == 5, LONG_MS);
    CHECK_RC(mproc_submit(ex, never_task, &ran, 0, NULL), MPROC_EBROKEN);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ran), 0);
    CHECK_EQ(atomic_load(&cbs), 5);
    for (int i = 0; i < 5; i++)
        mproc_future_release(fs[i]);
}

/* ------------------------------------------------------------------ */
/* nested submits                                                      */
/* ------------------------------------------------------------------ */


/* Task (arg: an int n, copied): fib(n), one task per call. */
static int fib_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    int n;
    if (len != sizeof n)
        return mproc_fail(ctx, -EPROTO, "fib: len %zu", len);
    memcpy(&n, arg, sizeof n);
    uint64_t r;
    if (n < 2) {
        r = (uint64_t)n;
    } else {
        mproc_future *a, *b;
        int n1 = n - 1, n2 = n - 2;
        const mproc_submit_opts copy = { .flags = MPROC_COPY_ARG };
        int rc = mproc_submit_ex(nested_ex, fib_task, &n1, sizeof n1, &copy, &a);
        if (rc)
            return mproc_fail(ctx, rc, "fib(%d): submit", n1);
        rc = mproc_submit_ex(nested_ex, fib_task, &n2, sizeof n2, &copy, &b);
        if (rc) {
            mproc_future_release(a);
            return mproc_fail(ctx, rc, "fib(%d): submit", n2);
        }
        const void *da, *db;
        size_t la, lb;
        int ra = mproc_future_result(a, 6 * LONG_MS, &da, &la);
        int rb = mproc_future_result(b, 6 * LONG_MS, &db, &lb);
        uint64_t x = 0, y = 0;
        if (ra == 0 && la == 8)
            memcpy(&x, da, 8);
        if (rb == 0 && lb == 8)
            memcpy(&y, db, 8);
        mproc_future_release(a);
        mproc_future_release(b);
        if (ra)
            return mproc_fail(ctx, ra, "fib(%d): waiting for fib(%d)", n, n1);
        if (rb)
            return mproc_fail(ctx, rb, "fib(%d): waiting for fib(%d)", n, n2);
        r = x + y;
    }
    return mproc_return(ctx, &r, sizeof r);
}

static void fib_case(unsigned workers)
{
    nested_ex = make_ex(workers);
    int n = 20;
    mproc_future *f;
    CHECK_OK(mproc_submit_ex(nested_ex, fib_task, &n, sizeof n,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &f));
    const char *msg = "";
    int rc = mproc_future_result(f, 12 * LONG_MS, NULL, NULL);
    if (rc != 0 && rc != -ETIMEDOUT)
        mproc_future_error(f, NULL, &msg);
    CHECK_MSG(rc == 0, "fib(20) on %u workers: %s (%s)", workers, mproc_errname(rc), msg);
    CHECK_EQ(result_u64(f), 6765);
    mproc_future_release(f);
    mproc_executor_destroy(nested_ex);
}

TEST_T(nested_fib_1_worker, 150)
{
    fib_case(1);
}

TEST_T(nested_fib_2_workers, 150)
{
    fib_case(2);
}

TEST_T(nested_fib_4_workers, 150)
{
    fib_case(4);
}

/* Task (arg: depth, by value in the address): submit depth-1 and wait
 * for it; return depth + its result. */
static int chain_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    uint64_t depth = (uint64_t)(uintptr_t)arg;
    if (depth == 0) {
        uint64_t z = 0;
        return mproc_return(ctx, &z, sizeof z);
    }
    mproc_future *child;
    int rc = mproc_submit(nested_ex, chain_task, NUM(depth - 1), 0, &child);
    if (rc)
        return mproc_fail(ctx, rc, "chain %llu: submit", (unsigned long long)depth);
    const void *d;
    size_t l;
    rc = mproc_future_result(child, 6 * LONG_MS, &d, &l);
    uint64_t below = 0;
    if (rc == 0 && l == 8)
        memcpy(&below, d, 8);
    mproc_future_release(child);
    if (rc)
        return mproc_fail(ctx, rc, "chain %llu: wait", (unsigned long long)depth);
    uint64_t r = depth + below;
    return mproc_return(ctx, &r, sizeof r);
}

TEST_T(nested_chain_depth_20_1_worker, 90)
{
    nested_ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(nested_ex, chain_task, NUM(20), 0, &f));
    CHECK_EQ(result_u64(f), 210);
    mproc_future_release(f);
    /* Several chains at once, still one worker. */
    mproc_future *fs[4];
    for (int i = 0; i < 4; i++)
        CHECK_OK(mproc_submit(nested_ex, chain_task, NUM(20), 0, &fs[i]));
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(result_u64(fs[i]), 210);
        mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(nested_ex);
}

/* Task (arg: atomic_long): submit 100 counting children and return
 * without waiting for them. */
static int spawner_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    for (int i = 0; i < 100; i++) {
        int rc = mproc_submit(nested_ex, count_task, arg, 0, NULL);
        if (rc)
            return mproc_fail(ctx, rc, "child %d", i);
    }
    return 0;
}

TEST(nested_fire_and_forget_children_all_run)
{
    nested_ex = make_ex(2);
    atomic_long c = 0;
    mproc_future *fs[20];
    for (int i = 0; i < 20; i++)
        CHECK_OK(mproc_submit(nested_ex, spawner_task, &c, 0, &fs[i]));
    for (int i = 0; i < 20; i++) {
        CHECK_OK(mproc_future_result(fs[i], LONG_MS, NULL, NULL));
        mproc_future_release(fs[i]);
    }
    /* The children were accepted before destroy: they all run. */
    mproc_executor_destroy(nested_ex);
    CHECK_EQ(atomic_load(&c), 2000);
}

/* Children a task pushes on its own worker's deque are stolen by idle
 * workers while the parent blocks (on a barrier, not a future, so it
 * cannot help): all W-1 children and the parent must meet. */
typedef struct family {
    mproc_barrier meet;
    int children;
    atomic_int children_done; /* after their barrier wait returned */
} family;

static int child_meet_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    family *fam = (family *)arg;
    int rc = mproc_barrier_wait(&fam->meet, LONG_MS);
    atomic_fetch_add(&fam->children_done, 1); /* last touch of fam */
    return rc < 0 ? mproc_fail(ctx, rc, "child: barrier") : 0;
}

static int parent_meet_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    family *fam = (family *)arg;
    for (int i = 0; i < fam->children; i++) {
        int rc = mproc_submit(nested_ex, child_meet_task, fam, 0, NULL);
        if (rc)
            return mproc_fail(ctx, rc, "parent: submit");
    }
    int rc = mproc_barrier_wait(&fam->meet, LONG_MS);
    return rc < 0 ? mproc_fail(ctx, rc, "parent: barrier (children not stolen?)") : 0;
}

TEST_T(children_stolen_while_parent_blocks, 60)
{
    enum { W = 4 };
    nested_ex = make_ex(W);
    long rounds = test_scaled_stress(400);
    for (long r = 0; r < rounds; r++) {
        family fam = { .children = W - 1 };
        CHECK_OK(mproc_barrier_init(&fam.meet, W, 0));
        mproc_future *f;
        CHECK_OK(mproc_submit(nested_ex, parent_meet_task, &fam, 0, &f));
        int rc = mproc_future_result(f, 2 * LONG_MS, NULL, NULL);
        const char *msg = "";
        if (rc != 0 && rc != -ETIMEDOUT)
            mproc_future_error(f, NULL, &msg);
        CHECK_MSG(rc == 0, "round %ld: %s %s", r, mproc_errname(rc), msg);
        mproc_future_release(f);
        /* The children are out of the barrier before it goes. */
        WAIT_UNTIL(atomic_load(&fam.children_done) == W - 1, LONG_MS);
        CHECK_OK(mproc_barrier_destroy(&fam.meet));
    }
    mproc_executor_destroy(nested_ex);
}

/* A task with more children than its worker's deque holds, all awaited
 * from inside the task (which runs them meanwhile). */
static int many_children_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    long n = (long)(uintptr_t)arg;
    mproc_future **kids = malloc((size_t)n * sizeof *kids);
    if (!kids)
        return -ENOMEM;
    for (long i = 0; i < n; i++) {
        int rc = mproc_submit(nested_ex, echo_task, NUM(i), 0, &kids[i]);
        if (rc) {
            while (i-- > 0)
                mproc_future_release(kids[i]);
            free(kids);
            return mproc_fail(ctx, rc, "child %ld", i);
        }
    }
    uint64_t sum = 0;
    int err = 0;
    for (long i = 0; i < n; i++) {
        const void *d;
        size_t l;
        int rc = mproc_future_result(kids[i], 6 * LONG_MS, &d, &l);
        if (rc == 0 && l == 8) {
            uint64_t v;
            memcpy(&v, d, 8);
            sum += v;
        } else if (!err) {
            err = rc ? rc : -EPROTO;
        }
        mproc_future_release(kids[i]);
    }
    free(kids);
    if (err)
        return mproc_fail(ctx, err, "waiting for children");
    return mproc_return(ctx, &sum, sizeof sum);
}

TEST_T(task_with_more_children_than_deque, 60)
{
    long n = 30000; /* the deque holds fewer; the rest overflows */
    for (unsigned w = 1; w <= 2; w++) {
        nested_ex = make_ex(w);
        mproc_future *f;
        CHECK_OK(mproc_submit(nested_ex, many_children_task, NUM(n), 0, &f));
        CHECK_EQ(result_u64(f), (uint64_t)n * (uint64_t)(n - 1) / 2);
        mproc_future_release(f);
        mproc_executor_destroy(nested_ex);
    }
}

/* A task of one executor waiting for a future of another just waits. */
static mproc_executor *other_ex;

static int wait_other_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    mproc_future *f;
    int rc = mproc_submit(other_ex, echo_task, arg, 0, &f);
    if (rc)
        return rc;
    const void *d;
    size_t l;
    rc = mproc_future_result(f, LONG_MS, &d, &l);
    uint64_t v = 0;
    if (rc == 0)
        memcpy(&v, d, sizeof v);
    mproc_future_release(f);
    if (rc)
        return rc;
    v += 1000;
    return mproc_return(ctx, &v, sizeof v);
}

TEST(nested_wait_on_other_executor)
{
    nested_ex = make_ex(1);
    other_ex = make_ex(1);
    mproc_future *fs[50];
    for (int i = 0; i < 50; i++)
        CHECK_OK(mproc_submit(nested_ex, wait_other_task, NUM(i), 0, &fs[i]));
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(result_u64(fs[i]), 1000 + i);
        mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(nested_ex);
    mproc_executor_destroy(other_ex);
}

/* ------------------------------------------------------------------ */
/* stress                                                              */
/* ------------------------------------------------------------------ */

/* 1M tiny tasks from one thread, then every result awaited. */
TEST_T(million_tiny_tasks, 120)
{
    long n = test_scaled_stress(1000000);
    mproc_executor *ex = make_ex(0);
    mproc_future **fs = malloc((size_t)n * sizeof *fs);
    CHECK(fs != NULL);
    for (long i = 0; i < n; i++)
        CHECK_OK(mproc_submit(ex, echo_task, NUM(i), 0, &fs[i]));
    uint64_t sum = 0;
    for (long i = 0; i < n; i++) {
        sum += result_u64(fs[i]);
        mproc_future_release(fs[i]);
    }
    CHECK_EQ(sum, (uint64_t)n * (uint64_t)(n - 1) / 2);
    free(fs);
    mproc_executor_destroy(ex);
}

/* The same count fire-and-forget, counted by the tasks. */
TEST_T(million_tiny_tasks_no_futures, 120)
{
    long n = test_scaled_stress(1000000);
    mproc_executor *ex = make_ex(0);
    atomic_long c = 0;
    for (long i = 0; i < n; i++)
        CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c), n);
}

typedef struct submitter {
    mproc_executor *ex;
    long n;
    long base;       /* values submitted are base .. base+n-1 */
    uint64_t sum;    /* of the results */
    atomic_long *counter;
} submitter;

static void *submitter_main(void *p)
{
    submitter *s = p;
    enum { BATCH = 512 };
    mproc_future *fs[BATCH];
    for (long done = 0; done < s->n;) {
        long k = s->n - done < BATCH ? s->n - done : BATCH;
        for (long i = 0; i < k; i++) {
            CHECK_OK(mproc_submit(s->ex, echo_task, NUM(s->base + done + i), 0, &fs[i]));
            CHECK_OK(mproc_submit(s->ex, count_task, s->counter, 0, NULL));
        }
        for (long i = 0; i < k; i++) {
            s->sum += result_u64(fs[i]);
            mproc_future_release(fs[i]);
        }
        done += k;
    }
    return NULL;
}

TEST_T(concurrent_submitters, 90)
{
    enum { T = 4 };
    long n = test_scaled_stress(100000);
    mproc_executor *ex = make_ex(2);
    atomic_long counter = 0;
    submitter s[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        s[t] = (submitter){ .ex = ex, .n = n, .base = t * n, .counter = &counter };
        th[t] = test_start_thread(submitter_main, &s[t]);
    }
    for (int t = 0; t < T; t++) {
        test_join_thread(th[t]);
        uint64_t lo = (uint64_t)(t * n), hi = (uint64_t)((t + 1) * n - 1);
        CHECK_EQ(s[t].sum, (lo + hi) * (uint64_t)n / 2);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&counter), T * n);
}

/* Submit racing shutdown: every accepted task runs (or, with
 * cancel_futures, its future says it was cancelled); none is lost. */
typedef struct racer {
    mproc_executor *ex;
    atomic_long *ran;
    long accepted;
    long cancelled;
    long succeeded;
    bool cancel;
    mproc_barrier *start;
} racer;

static void *racer_main(void *p)
{
    racer *r = p;
    long MAXF = test_scaled_stress(20000);
    mproc_future **fs = malloc((size_t)MAXF * sizeof *fs);
    CHECK(fs != NULL);
    long nf = 0;
    CHECK(mproc_barrier_wait(r->start, LONG_MS) >= 0);
    for (long i = 0; i < MAXF; i++) {
        int rc = mproc_submit(r->ex, count_task, r->ran, 0, &fs[nf]);
        if (rc == MPROC_ESHUTDOWN)
            break;
        CHECK_OK(rc);
        nf++;
    }
    r->accepted = nf;
    for (long i = 0; i < nf; i++) {
        int rc = mproc_future_result(fs[i], 6 * LONG_MS, NULL, NULL);
        if (rc == MPROC_ECANCELLED) {
            CHECK(r->cancel);
            r->cancelled++;
        } else {
            CHECK_OK(rc);
            r->succeeded++;
        }
        mproc_future_release(fs[i]);
    }
    free(fs);
    return NULL;
}

static void submit_vs_shutdown(bool cancel)
{
    enum { T = 3 };
    for (int round = 0; round < 10; round++) {
        mproc_executor *ex = make_ex(2);
        atomic_long ran = 0;
        mproc_barrier start;
        CHECK_OK(mproc_barrier_init(&start, T + 1, 0));
        racer r[T];
        pthread_t th[T];
        for (int t = 0; t < T; t++) {
            r[t] = (racer){ .ex = ex, .ran = &ran, .cancel = cancel, .start = &start };
            th[t] = test_start_thread(racer_main, &r[t]);
        }
        CHECK(mproc_barrier_wait(&start, LONG_MS) >= 0);
        usleep((useconds_t)(round * 200)); /* vary where shutdown lands */
        CHECK_OK(mproc_executor_shutdown(ex, false, cancel));
        long accepted = 0, succeeded = 0;
        for (int t = 0; t < T; t++) {
            test_join_thread(th[t]);
            accepted += r[t].accepted;
            succeeded += r[t].succeeded;
            CHECK_EQ(r[t].accepted, r[t].succeeded + r[t].cancelled);
        }
        CHECK_OK(mproc_executor_shutdown(ex, true, false));
        CHECK_EQ(atomic_load(&ran), succeeded);
        if (!cancel)
            CHECK_EQ(succeeded, accepted);
        mproc_executor_destroy(ex);
        CHECK_OK(mproc_barrier_destroy(&start));
    }
}

TEST_T(submit_racing_shutdown, 90)
{
    submit_vs_shutdown(false);
}

TEST_T(submit_racing_shutdown_cancel, 90)
{
    submit_vs_shutdown(true);
}
