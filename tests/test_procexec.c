/*
 * tests/test_procexec.c -- executors of kind MPROC_PROCESSES: results and
 * errors through the workers' mailboxes, a crash failing only its own
 * task (and the worker replaced), shutdown, the parent's death, cycles.
 *
 * Shared flags live in mproc_shared_calloc memory allocated before the
 * executor (and so before the fork server) exists: workers forked from the
 * server share that arena. Nothing waits by sleeping.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "os/sys.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 30000

#define RUNS_MAX 4096

typedef struct shared {
    atomic_int go;
    atomic_int started;
    atomic_int pids[16];
    atomic_int runs[RUNS_MAX]; /* how many times task i ran (counted_task) */
} shared;

static shared *sh;

static void setup(void)
{
    sh = mproc_shared_calloc(sizeof *sh);
    CHECK(sh != NULL);
}

static mproc_executor *make(unsigned workers, mproc_start_method start)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = workers,
                                                               .start = start }));
    return ex;
}

/* x -> x*x (int64), and the worker's pid in the shared block. */
static int square(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(int64_t))
        return mproc_fail(ctx, -EINVAL, "want 8 bytes, got %zu", len);
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x *= x;
    return mproc_return(ctx, &x, sizeof x);
}

static int64_t result_i64(mproc_future *f)
{
    const void *d;
    size_t n;
    CHECK_OK(mproc_future_result(f, LONG_MS, &d, &n));
    CHECK_EQ(n, sizeof(int64_t));
    int64_t v;
    memcpy(&v, d, sizeof v);
    return v;
}

TEST(submit_and_results_fork_and_forkserver)
{
    setup();
    static const mproc_start_method m[] = { MPROC_START_DEFAULT, MPROC_START_FORK };
    for (int k = 0; k < 2; k++) {
        mproc_executor *ex = make(2, m[k]);
        CHECK_EQ(mproc_executor_workers(ex), 2);
        enum { N = 300 };
        int64_t in[N];
        mproc_future *f[N];
        for (int i = 0; i < N; i++) {
            in[i] = i - 100;
            CHECK_OK(mproc_submit(ex, square, &in[i], sizeof in[i], &f[i]));
        }
        for (int i = 0; i < N; i++) {
            CHECK_EQ(result_i64(f[i]), in[i] * in[i]);
            mproc_future_release(f[i]);
        }
        mproc_executor_destroy(ex);
    }
}

static int big_result(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    size_t n = 300000;
    unsigned char *p = mproc_result_buffer(ctx, n); /* written in place */
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7);
    return 0;
}

static int fail_with_message(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    return mproc_fail(ctx, -EDOM, "bad input in worker %d", mproc_ctx_worker(ctx));
}

TEST(large_results_messages_and_bad_args)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, big_result, NULL, 0, &f));
    const unsigned char *d;
    size_t n;
    CHECK_OK(mproc_future_result(f, LONG_MS, (const void **)&d, &n));
    CHECK_EQ(n, 300000);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ(d[i], (unsigned char)(i * 7));
    mproc_future_release(f);

    CHECK_OK(mproc_submit(ex, fail_with_message, NULL, 0, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), -EDOM);
    int code;
    const char *msg;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    CHECK_EQ(code, -EDOM);
    CHECK(strcmp(msg, "bad input in worker 0") == 0);
    mproc_future_release(f);

    static char huge[1];
    CHECK_RC(mproc_submit(ex, square, huge, ((size_t)32 << 20) + 1, &f), -E2BIG);
    mproc_executor_destroy(ex);
    /* Spawned workers cannot use a pointer as initarg (test_pspawn.c has
     * the rest of spawn). */
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .start = MPROC_START_SPAWN,
                                                               .initarg = huge }),
             -EINVAL);
}

/* ---- crashes ---------------------------------------------------------------- */

enum crash { C_NONE, C_SEGV, C_ABORT, C_EXIT3, C_KILL };

static int maybe_crash(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t v;
    memcpy(&v, arg, sizeof v);
    switch ((enum crash)(v % 5 == 0 ? (v / 5) % 4 + 1 : C_NONE)) {
    case C_SEGV: raise(SIGSEGV); break;
    case C_ABORT: abort();
    case C_EXIT3: exit(3);
    case C_KILL: raise(SIGKILL); break;
    case C_NONE: break;
    }
    v = v * 3 + 1;
    return mproc_return(ctx, &v, sizeof v);
}

/* Every fifth task crashes, four ways; exactly those fail, with
 * MPROC_EWORKERDIED and a message naming the worker and what ended it;
 * every other result is right, and the pool keeps serving. */
TEST_T(crashes_fail_only_their_own_task, 90)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    enum { N = 60 };
    int64_t in[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, maybe_crash, &in[i], sizeof in[i], &f[i]));
    }
    for (int i = 0; i < N; i++) {
        int rc = mproc_future_result(f[i], LONG_MS, NULL, NULL);
        if (i % 5 != 0) {
            CHECK_OK(rc);
            CHECK_EQ(result_i64(f[i]), in[i] * 3 + 1);
        } else {
            CHECK_RC(rc, MPROC_EWORKERDIED);
            const char *msg;
            int code;
            CHECK_OK(mproc_future_error(f[i], &code, &msg));
            CHECK_MSG(strncmp(msg, "worker ", 7) == 0, "message '%s'", msg);
            switch ((i / 5) % 4 + 1) {
            case C_EXIT3: CHECK_MSG(strstr(msg, "exited with status 3"), "'%s'", msg); break;
            case C_KILL: CHECK_MSG(strstr(msg, "killed by SIGKILL"), "'%s'", msg); break;
            case C_ABORT: CHECK_MSG(strstr(msg, "SIGABRT") || strstr(msg, "exited"), "'%s'", msg); break;
            default: break; /* SIGSEGV: a sanitizer may turn it into an exit */
            }
        }
        mproc_future_release(f[i]);
    }
    /* Still serving, on replaced workers. */
    int64_t x = 7;
    mproc_future *g;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &g));
    CHECK_EQ(result_i64(g), 49);
    mproc_future_release(g);
    mproc_executor_destroy(ex);
}

static int kill_me_from_outside(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_store(&sh->pids[0], (int)getpid());
    atomic_fetch_add(&sh->started, 1);
    for (;;)
        pause();
    return 0;
}

TEST(worker_killed_from_outside)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, kill_me_from_outside, NULL, 0, &f));
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    pid_t pid = (pid_t)atomic_load(&sh->pids[0]);
    CHECK(kill(pid, SIGKILL) == 0);
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    const char *msg;
    int code;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    char want[64];
    snprintf(want, sizeof want, "worker %d killed by SIGKILL", (int)pid);
    CHECK_MSG(strcmp(msg, want) == 0, "'%s'", msg);
    mproc_future_release(f);
    int64_t x = 5;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 25);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* ---- shutdown, callbacks, initializer -------------------------------------------------------- */

static int hold(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&sh->started, 1);
    while (!atomic_load(&sh->go))
        usleep(200);
    int64_t v = mproc_cancel_requested(ctx) ? 2 : 1;
    return mproc_return(ctx, &v, sizeof v);
}

TEST(shutdown_cancel_futures_while_workers_run)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    mproc_future *f[6];
    for (int i = 0; i < 6; i++)
        CHECK_OK(mproc_submit(ex, hold, NULL, 0, &f[i]));
    WAIT_UNTIL(atomic_load(&sh->started) == 2, LONG_MS);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    int64_t x = 1;
    mproc_future *late;
    CHECK_RC(mproc_submit(ex, square, &x, sizeof x, &late), MPROC_ESHUTDOWN);
    atomic_store(&sh->go, 1);
    int ran = 0, cancelled = 0;
    for (int i = 0; i < 6; i++) {
        int rc = mproc_future_result(f[i], LONG_MS, NULL, NULL);
        if (rc == 0) {
            ran++;
            CHECK(result_i64(f[i]) >= 1);
        } else {
            CHECK_RC(rc, MPROC_ECANCELLED);
            cancelled++;
        }
        mproc_future_release(f[i]);
    }
    CHECK_EQ(ran, 2); /* the two running ran to the end */
    CHECK_EQ(cancelled, 4);
    mproc_executor_destroy(ex);
}

static int init_fails(void *arg)
{
    (void)arg;
    return -EIO;
}

TEST(initializer_failure_breaks_the_executor)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 2,
                                                               .initializer = init_fails }));
    int64_t x = 3;
    mproc_future *f;
    int rc = mproc_submit(ex, square, &x, sizeof x, &f);
    if (rc == 0) { /* accepted before the failure was seen: fails as broken */
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EBROKEN);
        mproc_future_release(f);
    } else {
        CHECK_RC(rc, MPROC_EBROKEN);
    }
    WAIT_UNTIL(mproc_submit(ex, square, &x, sizeof x, NULL) == MPROC_EBROKEN, LONG_MS);
    mproc_executor_destroy(ex); /* and no respawn loop: destroy returns */
}

static void count_cb(mproc_future *f, void *ud)
{
    (void)f;
    atomic_fetch_add((atomic_int *)ud, 1);
}

TEST(callbacks_and_as_completed)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    enum { N = 20 };
    int64_t in[N];
    mproc_future *f[N];
    atomic_int calls = 0;
    for (int i = 0; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, square, &in[i], sizeof in[i], &f[i]));
        CHECK_OK(mproc_future_add_done_callback(f[i], count_cb, &calls));
    }
    mproc_as_completed *it;
    CHECK_OK(mproc_as_completed_create(&it, f, N));
    int64_t sum = 0;
    mproc_future *d;
    int seen = 0;
    while (mproc_as_completed_next(it, LONG_MS, &d) == 1) {
        sum += result_i64(d);
        seen++;
    }
    mproc_as_completed_destroy(it);
    CHECK_EQ(seen, N);
    int64_t want = 0;
    for (int i = 0; i < N; i++)
        want += in[i] * in[i];
    CHECK_EQ(sum, want);
    WAIT_UNTIL(atomic_load(&calls) == N, LONG_MS);
    for (int i = 0; i < N; i++)
        mproc_future_release(f[i]);
    mproc_executor_destroy(ex);
}

/* ---- the parent's death, cycles ----------------------------------------------------- */

static int report_pid(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int slot = *(const int *)arg;
    atomic_store(&sh->pids[slot], (int)getpid());
    int64_t v = getpid();
    return mproc_return(ctx, &v, sizeof v);
}

/* In an intermediate process: an executor whose two workers report their
 * pids, then SIGKILL. */
static int pool_then_die(void *arg)
{
    (void)arg;
    mproc_executor *ex;
    if (mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                          .workers = 2 }) != 0)
        return 1;
    int slots[2] = { 0, 1 };
    mproc_future *f[2];
    for (int i = 0; i < 2; i++)
        if (mproc_submit(ex, report_pid, &slots[i], sizeof slots[i], &f[i]) != 0)
            return 1;
    for (int i = 0; i < 2; i++)
        if (mproc_future_result(f[i], LONG_MS, NULL, NULL) != 0)
            return 1;
    raise(SIGKILL);
    return 1;
}

TEST(workers_die_with_a_killed_parent)
{
    setup();
    pid_t mid = test_fork(pool_then_die, NULL);
    int st = test_wait(mid, LONG_MS);
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    for (int i = 0; i < 2; i++) {
        pid_t w = (pid_t)atomic_load(&sh->pids[i]);
        CHECK(w > 0);
        WAIT_UNTIL(mproc__task_dead(w, 0), LONG_MS);
    }
}

/* Entries of directory `path` (not . and ..). */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* 1,000 executors made and destroyed (a task in every tenth): no
 * descriptor left open, no child but the fork server, no /dev/shm entry. */
TEST_T(create_destroy_cycles_leave_nothing, 120)
{
    setup();
    mproc_forkserver_start();
    int fds = count_entries("/proc/self/fd"), shm = count_entries("/dev/shm");
    long n = test_scaled_stress(1000);
#if defined(__SANITIZE_THREAD__)
    n = 20; /* each fork of a ThreadSanitizer process takes ~0.2 s */
#endif
    for (long i = 0; i < n; i++) {
        mproc_executor *ex = make(2, MPROC_START_DEFAULT);
        if (i % 10 == 0) {
            int64_t x = i;
            mproc_future *f;
            CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
            CHECK_EQ(result_i64(f), x * x);
            mproc_future_release(f);
        }
        mproc_executor_destroy(ex);
    }
    CHECK_EQ(count_entries("/proc/self/fd"), fds);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    FILE *c = fopen(path, "re");
    CHECK(c != NULL);
    int kids = 0, pid;
    while (fscanf(c, "%d", &pid) == 1)
        kids++;
    fclose(c);
    CHECK_EQ(kids, 1); /* the fork server only: every worker was reaped */
    /* Executors name nothing in /dev/shm (their memory is memfds); other
     * suites running beside this one may, for a moment. */
    WAIT_UNTIL(count_entries("/dev/shm") <= shm, LONG_MS);
}

/* ---- map on processes ------------------------------------------------------ */

/* x -> x*x, except: x % 97 == 13 fails with a message, x == crash_at
 * kills its worker. */
static int64_t crash_at = -1;

static int square_or_fail(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x == crash_at)
        raise(SIGKILL);
    if (x % 97 == 13)
        return mproc_fail(ctx, -EDOM, "item %lld refused", (long long)x);
    int64_t v = x * x;
    return mproc_return(ctx, &v, sizeof v);
}

TEST_T(map_general_and_fixed_size_on_processes, 90)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    enum { N = 2000 };
    static int64_t xs[N];
    for (int i = 0; i < N; i++)
        xs[i] = i;
    for (int fixed = 0; fixed < 2; fixed++) {
        mproc_results *r;
        mproc_map_opts o = { .chunksize = fixed ? 0 : 37, .result_size = fixed ? 8 : 0 };
        /* The first failure in item order: 13 (13 % 97 == 13). */
        CHECK_RC(mproc_map(ex, square_or_fail, xs, sizeof xs[0], N, &o, &r), -EDOM);
        CHECK_EQ(mproc_results_count(r), N);
        for (int i = 0; i < N; i++) {
            mproc_item it;
            int rc = mproc_results_get(r, (size_t)i, &it);
            if (i % 97 == 13) {
                CHECK_RC(rc, -EDOM);
                char want[64];
                snprintf(want, sizeof want, "item %d refused", i);
                CHECK_MSG(strcmp(it.message, want) == 0, "'%s'", it.message);
            } else {
                CHECK_OK(rc);
                CHECK_EQ(it.len, 8);
                int64_t v;
                memcpy(&v, it.data, sizeof v);
                CHECK_EQ(v, (int64_t)i * i);
            }
        }
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex);
}

TEST_T(map_chunk_whose_worker_dies_fails_alone, 90)
{
    setup();
    crash_at = 500; /* inherited by the workers (forked after this) */
    mproc_executor *ex = make(2, MPROC_START_FORK);
    enum { N = 1000 };
    static int64_t xs[N];
    for (int i = 0; i < N; i++)
        xs[i] = i * 97 + 1; /* never x % 97 == 13 */
    xs[500] = 500;
    mproc_imap_iter *it;
    CHECK_OK(mproc_imap(ex, square_or_fail, xs, sizeof xs[0], N,
                        &(mproc_map_opts){ .chunksize = 100 }, &it));
    mproc_item item;
    int rc, seen = 0;
    while ((rc = mproc_imap_next(it, LONG_MS, &item)) == 1) {
        CHECK_EQ(item.index, (size_t)seen); /* in order */
        if (item.index >= 500 && item.index < 600) {
            CHECK_RC(item.code, MPROC_EWORKERDIED);
        } else {
            CHECK_OK(item.code);
            int64_t v;
            memcpy(&v, item.data, sizeof v);
            CHECK_EQ(v, xs[item.index] * xs[item.index]);
        }
        seen++;
    }
    CHECK_OK(rc);
    CHECK_EQ(seen, N);
    mproc_imap_destroy(it);
    mproc_executor_destroy(ex);
    crash_at = -1;
}

/* ---- deadlines ------------------------------------------------------------- */

static int forever(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    for (;;)
        pause();
    return 0;
}

static int forever_ignoring_sigterm(const void *arg, size_t len, mproc_ctx *ctx)
{
    signal(SIGTERM, SIG_IGN);
    return forever(arg, len, ctx);
}

static int nap_then_answer(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    mproc_sleep_ms(300); /* the workload: longer than the executor's deadline */
    int64_t v = 42;
    return mproc_return(ctx, &v, sizeof v);
}

static void expect_timeout(mproc_future *f, int64_t ms, const char *signal_name)
{
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ETASKTIMEOUT);
    const char *msg;
    int code;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    char want[64];
    snprintf(want, sizeof want, "task ran past its %lld ms deadline; worker ", (long long)ms);
    CHECK_MSG(strncmp(msg, want, strlen(want)) == 0, "'%s'", msg);
    CHECK_MSG(strstr(msg, signal_name) != NULL, "'%s'", msg);
}

TEST(task_past_its_deadline_is_stopped)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .task_timeout_ms = 100 }));
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, forever, NULL, 0, &f));
    expect_timeout(f, 100, "SIGTERM");
    mproc_future_release(f);
    CHECK_OK(mproc_submit(ex, forever_ignoring_sigterm, NULL, 0, &f));
    expect_timeout(f, 100, "SIGKILL"); /* SIGTERM ignored: SIGKILL after the grace */
    mproc_future_release(f);
    /* A per-task -1 lifts the executor's limit; a per-task limit sets one. */
    CHECK_OK(mproc_submit_ex(ex, nap_then_answer, NULL, 0,
                             &(mproc_submit_opts){ .timeout_ms = -1 }, &f));
    CHECK_EQ(result_i64(f), 42);
    mproc_future_release(f);
    CHECK_OK(mproc_submit_ex(ex, forever, NULL, 0, &(mproc_submit_opts){ .timeout_ms = 50 },
                             &f));
    expect_timeout(f, 50, "SIGTERM");
    mproc_future_release(f);
    int64_t x = 9; /* and the replaced worker serves on */
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 81);
    mproc_future_release(f);
    CHECK_RC(mproc_submit_ex(ex, square, &x, sizeof x, &(mproc_submit_opts){ .timeout_ms = -2 },
                             NULL), -EINVAL);
    mproc_executor_destroy(ex);
}

TEST(thread_executors_reject_deadlines)
{
    mproc_executor *ex;
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .task_timeout_ms = 10 }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .task_timeout_ms = -5 }),
             -EINVAL);
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = 1 }));
    int64_t x = 2;
    CHECK_RC(mproc_submit_ex(ex, square, &x, sizeof x, &(mproc_submit_opts){ .timeout_ms = 5 },
                             NULL), -EINVAL);
    mproc_executor_destroy(ex);
}

/* ---- initializers that fail or crash ---------------------------------------- */

static int init_crashes(void *arg)
{
    (void)arg;
    raise(SIGKILL);
    return 0;
}

/* Fails the first two times (across workers), then works. */
static int init_flaky(void *arg)
{
    (void)arg;
    return atomic_fetch_add(&sh->started, 1) < 2 ? -EIO : 0;
}

TEST(crashing_initializer_breaks_after_bounded_retries)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .initializer = init_crashes }));
    int64_t x = 3;
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EBROKEN);
    const char *msg;
    int code;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    CHECK_MSG(strstr(msg, "initializer crashed 4 times in a row") && strstr(msg, "SIGKILL"),
              "'%s'", msg);
    mproc_future_release(f);
    CHECK_RC(mproc_submit(ex, square, &x, sizeof x, NULL), MPROC_EBROKEN);
    mproc_executor_destroy(ex);
}

TEST(flaky_initializer_is_retried)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .initializer = init_flaky }));
    int64_t x = 6;
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 36);
    mproc_future_release(f);
    CHECK_EQ(atomic_load(&sh->started), 3); /* two failures, then one success */
    mproc_executor_destroy(ex);
}

/* ---- recycling workers ----------------------------------------------------- */

static int whoami(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int64_t v = getpid();
    return mproc_return(ctx, &v, sizeof v);
}

/* Submit n whoami tasks to ex, all at once, and store each one's worker
 * pid in pid[0..n). */
static void pids_of_tasks(mproc_executor *ex, int n, int64_t *pid)
{
    mproc_future **f = calloc((size_t)n, sizeof *f);
    CHECK(f != NULL);
    for (int i = 0; i < n; i++)
        CHECK_OK(mproc_submit(ex, whoami, NULL, 0, &f[i]));
    for (int i = 0; i < n; i++) {
        pid[i] = result_i64(f[i]);
        mproc_future_release(f[i]);
    }
    free(f);
}

TEST(max_tasks_per_child_recycles_workers)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .max_tasks_per_child = 3 }));
    enum { N = 12 };
    int64_t pid[N];
    pids_of_tasks(ex, N, pid);
    /* Three tasks per process, one process at a time: 4 distinct pids. */
    for (int i = 0; i < N; i++) {
        CHECK_EQ(pid[i] == pid[i - i % 3], 1);
        if (i % 3 == 0 && i > 0)
            CHECK(pid[i] != pid[i - 1]);
    }
    mproc_executor_destroy(ex);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .max_tasks_per_child = 2 }),
             -EINVAL);
}

/* ---- counters (mproc_executor_stats) ------------------------------------------- */

static int die_now(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    raise(SIGKILL);
    return 0;
}

static mproc_executor_counters stats_of(mproc_executor *ex)
{
    mproc_executor_counters c;
    CHECK_OK(mproc_executor_stats(ex, &c));
    return c;
}

TEST(stats_count_outcomes_and_restarts)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    mproc_future *f;
    for (int i = 0; i < 5; i++) {
        int64_t x = i;
        CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
        CHECK_EQ(result_i64(f), x * x);
        mproc_future_release(f);
    }
    for (int i = 0; i < 2; i++) {
        CHECK_OK(mproc_submit(ex, fail_with_message, NULL, 0, &f));
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), -EDOM);
        mproc_future_release(f);
    }
    CHECK_OK(mproc_submit(ex, die_now, NULL, 0, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    mproc_future_release(f);
    CHECK_OK(mproc_submit_ex(ex, forever, NULL, 0, &(mproc_submit_opts){ .timeout_ms = 50 }, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ETASKTIMEOUT);
    mproc_future_release(f);
    int64_t x = 3; /* one more on the twice-replaced worker */
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 9);
    mproc_future_release(f);
    mproc_executor_counters c = stats_of(ex);
    CHECK_EQ(c.workers, 1);
    CHECK_EQ(c.queued, 0);
    CHECK_EQ(c.done, 6);
    CHECK_EQ(c.failed, 4);
    CHECK_EQ(c.worker_died, 1);
    CHECK_EQ(c.timed_out, 1);
    CHECK_EQ(c.restarts_died, 1);
    CHECK_EQ(c.restarts_timeout, 1);
    CHECK_EQ(c.restarts, 2);
    mproc_executor_destroy(ex);

    /* Thread executors count outcomes (on the worker, just after the
     * future completes: wait for the count). */
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .workers = 2 }));
    for (int i = 0; i < 10; i++)
        CHECK_OK(mproc_submit(ex, i < 7 ? square : fail_with_message, &x, sizeof x, NULL));
    WAIT_UNTIL(stats_of(ex).done == 7 && stats_of(ex).failed == 3, LONG_MS);
    CHECK_EQ(stats_of(ex).restarts, 0);
    mproc_executor_destroy(ex);
    CHECK_RC(mproc_executor_stats(NULL, &c), -EINVAL);
}

/* ---- cancelling running tasks ----------------------------------------------------- */

static int until_cancelled(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&sh->started, 1);
    while (!mproc_cancel_requested(ctx))
        usleep(200);
    int64_t v = 7;
    return mproc_return(ctx, &v, sizeof v);
}

static int forever_counted(const void *arg, size_t len, mproc_ctx *ctx)
{
    atomic_fetch_add(&sh->started, 1);
    return forever(arg, len, ctx);
}

TEST(cancel_reaches_a_running_process_task)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, until_cancelled, NULL, 0, &f));
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    CHECK_EQ(mproc_future_cancel(f), 0); /* running: it may only stop itself */
    CHECK_EQ(result_i64(f), 7);
    CHECK(!mproc_future_cancelled(f));
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

TEST(cancel_kill_stops_a_running_task)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .flags = MPROC_CANCEL_KILL }));
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, forever_counted, NULL, 0, &f));
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    CHECK_EQ(mproc_future_cancel(f), 1);
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    CHECK(mproc_future_cancelled(f));
    mproc_future_release(f);
    int64_t x = 4; /* served by the replacement */
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 16);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .flags = MPROC_CANCEL_KILL }),
             -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .flags = 0x40 }),
             -EINVAL);
}

/* ---- many tasks, a seeded 1% crashing ------------------------------------------ */

static int crash_if_marked(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t v;
    memcpy(&v, arg, sizeof v);
    if (v < 0) { /* marked: die in one of three ways */
        switch ((-v) % 3) {
        case 0: raise(SIGKILL); break;
        case 1: exit(3);
        default: raise(SIGUSR1); break;
        }
    }
    v = v * 2 + 1;
    return mproc_return(ctx, &v, sizeof v);
}

TEST_T(ten_thousand_tasks_one_percent_crash, 150)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    long n = test_scaled_stress(10000);
    int64_t *in = malloc((size_t)n * sizeof *in);
    mproc_future **f = malloc((size_t)n * sizeof *f);
    CHECK(in && f);
    uint64_t seed = 0x5eed1234;
    long marked = 0;
    for (long i = 0; i < n; i++) {
        bool crash = test_xorshift(&seed) % 100 == 0;
        in[i] = crash ? -(i + 1) : i;
        marked += crash;
        CHECK_OK(mproc_submit(ex, crash_if_marked, &in[i], sizeof in[i], &f[i]));
    }
    long failed = 0;
    for (long i = 0; i < n; i++) {
        int rc = mproc_future_result(f[i], LONG_MS, NULL, NULL);
        if (in[i] < 0) {
            CHECK_RC(rc, MPROC_EWORKERDIED);
            failed++;
        } else {
            CHECK_OK(rc);
            CHECK_EQ(result_i64(f[i]), in[i] * 2 + 1);
        }
        mproc_future_release(f[i]);
    }
    CHECK_EQ(failed, marked);
    CHECK(marked > 0);
    mproc_executor_counters c = stats_of(ex);
    CHECK_EQ(c.worker_died, (uint64_t)marked);
    CHECK_EQ(c.done, (uint64_t)(n - marked));
    mproc_executor_destroy(ex);
    free(in);
    free(f);
}

/* Fill a 1 MiB result in place with the byte (i & 0xff); tasks 3 and 7
 * die halfway through writing it (SIGKILL, SIGSEGV). */
static int fill_or_die_halfway(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int i;
    memcpy(&i, arg, sizeof i);
    enum { SIZE = 1 << 20 };
    unsigned char *p = mproc_result_buffer(ctx, SIZE);
    if (!p)
        return -ENOMEM;
    memset(p, i & 0xff, SIZE / 2);
    if (i == 3)
        raise(SIGKILL);
    if (i == 7)
        raise(SIGSEGV);
    memset(p + SIZE / 2, i & 0xff, SIZE / 2);
    return 0;
}

TEST_T(crash_while_writing_a_result_in_place, 60)
{
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    enum { N = 16 };
    int in[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, fill_or_die_halfway, &in[i], sizeof in[i], &f[i]));
    }
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t n;
        int rc = mproc_future_result(f[i], LONG_MS, &d, &n);
        if (i == 3 || i == 7) {
            CHECK_RC(rc, MPROC_EWORKERDIED);
        } else {
            CHECK_OK(rc);
            CHECK_EQ(n, (size_t)1 << 20);
            const unsigned char *b = d;
            size_t k = 0;
            while (k < n && b[k] == (i & 0xff))
                k++;
            CHECK_MSG(k == n, "task %d: byte %zu is %d", i, k, k < n ? b[k] : 0);
        }
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
}

/* ---- rings: tasks queued behind others in a worker's ring ------------------ */

/* Counts its run in sh->runs[i] and returns i * 2 + 1; i < 0 means: note
 * our pid, say we started, and wait for sh->go (or die if pause()). */
static int counted_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t i;
    memcpy(&i, arg, sizeof i);
    if (i < 0) {
        atomic_store(&sh->pids[0], (int)getpid());
        atomic_fetch_add(&sh->started, 1);
        while (!atomic_load(&sh->go))
            usleep(200);
        i = -i;
    }
    atomic_fetch_add(&sh->runs[i], 1);
    int64_t v = i * 2 + 1;
    return mproc_return(ctx, &v, sizeof v);
}

/* Every task of in[1..n] ran exactly once and returned its value. */
static void expect_each_ran_once(mproc_future **f, const int64_t *in, int n)
{
    for (int i = 1; i < n; i++) {
        CHECK_EQ(result_i64(f[i]), in[i] * 2 + 1);
        mproc_future_release(f[i]);
    }
    for (int i = 1; i < n; i++)
        CHECK_MSG(atomic_load(&sh->runs[in[i]]) == 1, "task %d ran %d times", i,
                  atomic_load(&sh->runs[in[i]]));
}

/* Regression: the tasks queued in the ring of a worker that is killed are
 * neither lost nor run twice; only its running task fails. */
TEST(worker_killed_with_tasks_queued_in_its_ring)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    enum { N = 25 };
    int64_t in[N];
    mproc_future *f[N];
    in[0] = -(N + 1); /* blocks, runs[N + 1] */
    CHECK_OK(mproc_submit(ex, counted_task, &in[0], sizeof in[0], &f[0]));
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    for (int i = 1; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, counted_task, &in[i], sizeof in[i], &f[i]));
    }
    mproc_executor_counters c;
    /* All queued behind the blocked task (in its ring: the ring has room). */
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.queued == N - 1, LONG_MS);
    CHECK(kill((pid_t)atomic_load(&sh->pids[0]), SIGKILL) == 0);
    CHECK_RC(mproc_future_result(f[0], LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    mproc_future_release(f[0]);
    expect_each_ran_once(f, in, N);
    CHECK_EQ(atomic_load(&sh->runs[N + 1]), 0);
    c = stats_of(ex);
    CHECK_EQ(c.worker_died, 1);
    CHECK_EQ(c.done, (uint64_t)(N - 1));
    mproc_executor_destroy(ex);
}

/* A task hung past its deadline fails with MPROC_ETASKTIMEOUT; the tasks
 * queued behind it in the same ring run once each, on the replacement. */
TEST(hang_past_deadline_with_tasks_queued_behind)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    enum { N = 20 };
    int64_t in[N];
    mproc_future *f[N];
    CHECK_OK(mproc_submit_ex(ex, forever_counted, NULL, 0,
                             &(mproc_submit_opts){ .timeout_ms = 100 }, &f[0]));
    for (int i = 1; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, counted_task, &in[i], sizeof in[i], &f[i]));
    }
    expect_timeout(f[0], 100, "SIGTERM");
    mproc_future_release(f[0]);
    expect_each_ran_once(f, in, N);
    CHECK_EQ(stats_of(ex).timed_out, 1);
    mproc_executor_destroy(ex);
}

/* With two workers, tasks queued behind a long task in its ring move to
 * the idle worker: they all finish while the long one still runs. */
TEST(queued_tasks_move_away_from_a_busy_worker)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 2,
                                                               .flags = MPROC_CANCEL_KILL }));
    enum { N = 64 };
    int64_t in[N];
    mproc_future *f[N];
    CHECK_OK(mproc_submit(ex, forever_counted, NULL, 0, &f[0]));
    for (int i = 1; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, counted_task, &in[i], sizeof in[i], &f[i]));
    }
    expect_each_ran_once(f, in, N);
    CHECK(!mproc_future_done(f[0])); /* still running: nothing waited for it */
    CHECK_EQ(mproc_future_cancel(f[0]), 1);
    CHECK_RC(mproc_future_result(f[0], LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    mproc_future_release(f[0]);
    mproc_executor_destroy(ex);
}

/* Many tiny tasks, submitted in one burst: every result is right. */
TEST_T(many_tiny_tasks_exact_sum, 60)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    long n = test_scaled_stress(200000);
    mproc_future **f = malloc((size_t)n * sizeof *f);
    int64_t *in = malloc((size_t)n * sizeof *in);
    CHECK(f && in);
    for (long i = 0; i < n; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, square, &in[i], sizeof in[i], &f[i]));
    }
    long long sum = 0;
    for (long i = 0; i < n; i++) {
        sum += result_i64(f[i]);
        mproc_future_release(f[i]);
    }
    CHECK_EQ(sum, (long long)(n - 1) * n * (2 * n - 1) / 6);
    mproc_executor_counters c = stats_of(ex);
    CHECK_EQ(c.done, (uint64_t)n);
    CHECK_EQ(c.queued, 0);
    /* And as a map, one item per chunk. */
    mproc_results *r;
    CHECK_OK(mproc_map(ex, square, in, sizeof in[0], (size_t)n,
                       &(mproc_map_opts){ .chunksize = 1, .result_size = 8 }, &r));
    const int64_t *d = mproc_results_data(r, NULL);
    CHECK(d != NULL);
    sum = 0;
    for (long i = 0; i < n; i++)
        sum += d[i];
    CHECK_EQ(sum, (long long)(n - 1) * n * (2 * n - 1) / 6);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(f);
    free(in);
}

/* shutdown(cancel_futures) while every ring is full and more wait: only
 * the running tasks run; every other one is cancelled and never runs. */
TEST(shutdown_cancel_futures_with_full_rings)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    enum { N = 150 };
    int64_t in[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        in[i] = i < 2 ? -(i + 1000) : i; /* two blockers, one per worker */
        CHECK_OK(mproc_submit(ex, counted_task, &in[i], sizeof in[i], &f[i]));
        if (i == 1)
            WAIT_UNTIL(atomic_load(&sh->started) == 2, LONG_MS);
    }
    mproc_executor_counters c;
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.queued == N - 2, LONG_MS);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    atomic_store(&sh->go, 1);
    int ran = 0;
    for (int i = 0; i < N; i++) {
        int rc = mproc_future_result(f[i], LONG_MS, NULL, NULL);
        if (i < 2) {
            CHECK_OK(rc);
            ran++;
        } else {
            CHECK_MSG(rc == MPROC_ECANCELLED, "task %d ended with %d (ran %d times)", i, rc,
                      atomic_load(&sh->runs[i]));
        }
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex); /* every worker has exited: nothing runs later */
    CHECK_EQ(ran, 2);
    for (int i = 2; i < N; i++)
        CHECK_MSG(atomic_load(&sh->runs[i]) == 0, "cancelled task %d ran", i);
}

/* A task queued in a ring behind a running one has not started:
 * mproc_future_cancel cancels it (returns 1) and it never runs. */
TEST(cancel_a_task_queued_in_a_ring)
{
    setup();
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    enum { N = 6 };
    int64_t in[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        in[i] = i == 0 ? -100 : i;
        CHECK_OK(mproc_submit(ex, counted_task, &in[i], sizeof in[i], &f[i]));
    }
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    CHECK_EQ(mproc_future_cancel(f[3]), 1);
    CHECK(mproc_future_cancelled(f[3]));
    CHECK_EQ(mproc_future_cancel(f[0]), 0); /* running */
    atomic_store(&sh->go, 1);
    for (int i = 0; i < N; i++) {
        int rc = mproc_future_result(f[i], LONG_MS, NULL, NULL);
        CHECK_RC(rc, i == 3 ? MPROC_ECANCELLED : 0);
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&sh->runs[3]), 0);
    for (int i = 1; i < N; i++)
        CHECK_EQ(atomic_load(&sh->runs[i]), i == 3 ? 0 : 1);
}

/* MPROC_CANCEL_KILL on a running task with tasks queued behind it: it
 * ends cancelled, they run once each (on the replacement). */
TEST(cancel_kill_with_tasks_queued_behind)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .flags = MPROC_CANCEL_KILL }));
    enum { N = 12 };
    int64_t in[N];
    mproc_future *f[N];
    CHECK_OK(mproc_submit(ex, forever_counted, NULL, 0, &f[0]));
    for (int i = 1; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, counted_task, &in[i], sizeof in[i], &f[i]));
    }
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    CHECK_EQ(mproc_future_cancel(f[0]), 1);
    CHECK_RC(mproc_future_result(f[0], LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    mproc_future_release(f[0]);
    expect_each_ran_once(f, in, N);
    mproc_executor_destroy(ex);
}

/* Arguments and results too large for a slot's own region (the big
 * area), mixed with small ones in the same rings. */
static int echo_reversed(const void *arg, size_t len, mproc_ctx *ctx)
{
    unsigned char *out = mproc_result_buffer(ctx, len * 2);
    if (!out && len)
        return -ENOMEM;
    const unsigned char *in = arg;
    for (size_t i = 0; i < len; i++)
        out[i] = out[len * 2 - 1 - i] = in[len - 1 - i];
    return 0;
}

TEST_T(big_and_small_arguments_and_results_in_one_ring, 60)
{
    setup();
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    enum { N = 60 };
    static unsigned char buf[N][200000];
    size_t len[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        len[i] = i % 3 == 0 ? 150000 + (size_t)i : i % 3 == 1 ? 40000 : (size_t)i;
        for (size_t k = 0; k < len[i]; k++)
            buf[i][k] = (unsigned char)(k * 31 + (size_t)i);
        CHECK_OK(mproc_submit(ex, echo_reversed, buf[i], len[i], &f[i]));
    }
    for (int i = 0; i < N; i++) {
        const unsigned char *d;
        size_t n;
        CHECK_OK(mproc_future_result(f[i], LONG_MS, (const void **)&d, &n));
        CHECK_EQ(n, len[i] * 2);
        for (size_t k = 0; k < len[i]; k++) {
            if (d[k] != buf[i][len[i] - 1 - k] || d[n - 1 - k] != buf[i][len[i] - 1 - k])
                CHECK_MSG(0, "task %d byte %zu", i, k);
        }
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
}

/* max_tasks_per_child with rings and two workers: no process runs more
 * than its share, and every task runs once. */
TEST(max_tasks_per_child_with_full_rings)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 2,
                                                               .max_tasks_per_child = 5 }));
    enum { N = 200 };
    int64_t pid[N];
    pids_of_tasks(ex, N, pid);
    for (int i = 0; i < N; i++) {
        int same = 0;
        for (int k = 0; k < N; k++)
            same += pid[k] == pid[i];
        CHECK_MSG(same <= 5, "pid %lld ran %d tasks", (long long)pid[i], same);
    }
    CHECK(stats_of(ex).restarts_recycled >= N / 5 - 2);
    mproc_executor_destroy(ex);
}
