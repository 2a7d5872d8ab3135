/*
 * tests/test_memlimit.c -- worker_memory_limit on process executors: a
 * task that allocates past the limit fails alone with MPROC_EMEMLIMIT,
 * however it reacts to the failed allocation (returns -ENOMEM, writes
 * through NULL, aborts); its worker is replaced and every other task's
 * result is complete; a task under the limit is not disturbed; another
 * kind of crash is not mistaken for the limit.
 *
 * Every bomb stops at BOMB_CAP whatever happens, so an unenforced limit
 * fails the test instead of eating the machine's memory.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 30000
#define LIMIT ((size_t)64 << 20)
#define CHUNK ((size_t)1 << 20)
#define BOMB_CAP ((size_t)1 << 30)

/* Sanitizer runtimes reserve terabytes of address space up front and
 * serve allocations from it, so RLIMIT_AS does not bound their heaps. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

enum { B_RETURN, B_WRITE_NULL, B_ABORT, B_ONE_HUGE };

/* Allocate CHUNKs (touching them) until malloc fails, then react as the
 * argument says. Returns 1 if BOMB_CAP was reached without a failure. */
static int bomb(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int how = *(const int *)arg;
    if (how == B_ONE_HUGE) {
        void *p = malloc(LIMIT * 2);
        if (!p)
            return -ENOMEM;
        free(p);
        return mproc_fail(ctx, -EPERM, "a block twice the limit was granted");
    }
    enum { MAXN = BOMB_CAP / CHUNK };
    static char *held[MAXN];
    size_t n = 0;
    for (; n < MAXN; n++) {
        held[n] = malloc(CHUNK);
        if (!held[n])
            break;
        memset(held[n], 0x5a, CHUNK);
    }
    if (n == MAXN)
        return mproc_fail(ctx, -EPERM, "allocated %zu MiB under a %zu MiB limit",
                          BOMB_CAP >> 20, LIMIT >> 20);
    switch (how) {
    case B_WRITE_NULL:
        memset(held[n], 1, CHUNK); /* held[n] is NULL: SIGSEGV */
        break;
    case B_ABORT:
        abort();
    default:
        break;
    }
    for (size_t i = 0; i < n; i++)
        free(held[i]);
    return -ENOMEM;
}

/* Use half the limit, then give it back: must succeed. */
static int half_limit(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    char *p = malloc(LIMIT / 2);
    if (!p)
        return mproc_fail(ctx, -ENOMEM, "half the limit was refused");
    memset(p, 1, LIMIT / 2);
    free(p);
    return 0;
}

static int plus_one(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x += 1;
    return mproc_return(ctx, &x, sizeof x);
}

/* A crash that has nothing to do with memory. */
static int plain_crash(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    errno = 0;
    raise(SIGSEGV);
    return 0;
}

static mproc_executor *limited(unsigned workers)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .kind = MPROC_PROCESSES, .workers = workers,
                                            .worker_memory_limit = LIMIT }));
    return ex;
}

/* Submit 20 plus_one tasks around bomb `how`; check the bomb failed with
 * MPROC_EMEMLIMIT and a message containing `want`, and all others are
 * right; then the replacement serves. */
static void bomb_among_others(int how, const char *want)
{
    mproc_executor *ex = limited(2);
    enum { N = 20 };
    int64_t in[N];
    mproc_future *f[N], *b;
    for (int i = 0; i < N; i++) {
        in[i] = i * 10;
        CHECK_OK(mproc_submit(ex, plus_one, &in[i], sizeof in[i], &f[i]));
        if (i == N / 2)
            CHECK_OK(mproc_submit_ex(ex, bomb, &how, sizeof how,
                                     &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &b));
    }
    CHECK_RC(mproc_future_result(b, LONG_MS, NULL, NULL), MPROC_EMEMLIMIT);
    int code;
    const char *msg;
    CHECK_OK(mproc_future_error(b, &code, &msg));
    CHECK_EQ(code, MPROC_EMEMLIMIT);
    CHECK_MSG(strstr(msg, "ran out of memory (worker limit 64 MiB, RLIMIT_AS)"), "'%s'", msg);
    CHECK_MSG(!want || strstr(msg, want), "'%s' lacks '%s'", msg, want);
    mproc_future_release(b);
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t n;
        CHECK_OK(mproc_future_result(f[i], LONG_MS, &d, &n));
        int64_t v;
        CHECK_EQ(n, sizeof v);
        memcpy(&v, d, sizeof v);
        CHECK_EQ(v, in[i] + 1);
        mproc_future_release(f[i]);
    }
    mproc_executor_counters c;
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.restarts_memory == 1, LONG_MS);
    CHECK_EQ(c.out_of_memory, 1);
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(c.done, N);
    /* The replaced worker still works under the limit. */
    for (int i = 0; i < 4; i++) {
        mproc_future *g;
        CHECK_OK(mproc_submit(ex, half_limit, NULL, 0, &g));
        CHECK_OK(mproc_future_result(g, LONG_MS, NULL, NULL));
        mproc_future_release(g);
    }
    mproc_executor_destroy(ex);
}

TEST_T(bomb_that_returns_enomem, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_RETURN, NULL);
}

TEST_T(bomb_that_writes_through_null, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_WRITE_NULL, "killed by SIGSEGV");
}

TEST_T(bomb_that_aborts, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_ABORT, "killed by SIGABRT");
}

TEST_T(one_block_past_the_limit, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_ONE_HUGE, NULL);
}

/* A crash right after a successful call is a crash, not the limit. */
TEST(other_crash_is_not_the_limit)
{
    if (SANITIZED)
        return;
    mproc_executor *ex = limited(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, plain_crash, NULL, 0, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    mproc_future_release(f);
    mproc_executor_counters c;
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.restarts_died == 1, LONG_MS);
    CHECK_EQ(c.out_of_memory, 0);
    CHECK_EQ(c.restarts_memory, 0);
    mproc_executor_destroy(ex);
}

/* Unlimited tasks keep working as before; the limit leaves room. */
TEST(limit_leaves_room_under_it)
{
    if (SANITIZED)
        return;
    mproc_executor *ex = limited(2);
    mproc_future *f[8];
    for (int i = 0; i < 8; i++)
        CHECK_OK(mproc_submit(ex, half_limit, NULL, 0, &f[i]));
    for (int i = 0; i < 8; i++) {
        CHECK_OK(mproc_future_result(f[i], LONG_MS, NULL, NULL));
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
}

TEST(info_says_how_memory_is_limited)
{
    mproc_executor *ex = limited(1);
    mproc_executor_details d;
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK_EQ(d.kind, MPROC_PROCESSES);
    CHECK_EQ(d.workers, 1);
    CHECK_EQ(d.start, MPROC_START_FORKSERVER);
    CHECK_EQ(d.worker_memory_limit, LIMIT);
    CHECK_EQ(d.memory_limit, MPROC_MEMLIMIT_RLIMIT_AS);
    CHECK(strcmp(d.memory_limit_how, "RLIMIT_AS") == 0);
    CHECK(strcmp(d.name, "mproc") == 0);
    CHECK(!d.jobserver);
    mproc_executor_destroy(ex);

    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_THREADS,
                                                               .workers = 2, .name = "t" }));
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK_EQ(d.kind, MPROC_THREADS);
    CHECK_EQ(d.workers, 2);
    CHECK_EQ(d.start, MPROC_START_DEFAULT);
    CHECK_EQ(d.memory_limit, MPROC_MEMLIMIT_NONE);
    CHECK(strcmp(d.memory_limit_how, "none") == 0);
    CHECK(strcmp(d.name, "t") == 0);
    CHECK_RC(mproc_executor_info(ex, NULL), -EINVAL);
    CHECK_RC(mproc_executor_info(NULL, &d), -EINVAL);
    mproc_executor_destroy(ex);
}

TEST(thread_executors_reject_a_memory_limit)
{
    mproc_executor *ex = NULL;
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .kind = MPROC_THREADS, .workers = 1,
                                            .worker_memory_limit = LIMIT }),
             -EINVAL);
    CHECK(ex == NULL);
}
