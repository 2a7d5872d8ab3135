/*
 * tests/test_task.c -- what a task of a thread executor sees and hands
 * back (mproc/exec.h): its worker index, mproc_cancel_requested,
 * mproc_return and mproc_result_buffer (small inline and large results),
 * mproc_fail (code and message), and its argument, by reference or
 * copied with MPROC_COPY_ARG; submit's argument checks.
 *
 * Executors and their life cycle are in test_exec.c, futures in
 * test_future.c. Workers are held busy with tasks blocked on events
 * (exec_common.h), never with sleeps.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_common.h"
/* ------------------------------------------------------------------ */
/* the task's context                                                  */
/* ------------------------------------------------------------------ */

/* Task (arg: a barrier of `workers` parties): meet the other tasks, so
 * every worker runs one, and return the worker index. */
static int barrier_worker_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int rc = mproc_barrier_wait((mproc_barrier *)arg, LONG_MS);
    if (rc < 0)
        return mproc_fail(ctx, rc, "barrier");
    uint64_t w = (uint64_t)(int64_t)mproc_ctx_worker(ctx);
    return mproc_return(ctx, &w, sizeof w);
}

static int worker_index_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    uint64_t w = (uint64_t)(int64_t)mproc_ctx_worker(ctx);
    return mproc_return(ctx, &w, sizeof w);
}

TEST(ctx_worker_in_range)
{
    enum { W = 4 };
    mproc_executor *ex = make_ex(W);
    /* W tasks that meet at a barrier run on W different workers: their
     * indices are exactly 0 .. W-1. */
    mproc_barrier b;
    CHECK_OK(mproc_barrier_init(&b, W, 0));
    mproc_future *fs[W];
    for (int i = 0; i < W; i++)
        CHECK_OK(mproc_submit(ex, barrier_worker_task, &b, 0, &fs[i]));
    int seen[W] = { 0 };
    for (int i = 0; i < W; i++) {
        uint64_t w = result_u64(fs[i]);
        CHECK_MSG(w < W, "worker index %lld", (long long)(int64_t)w);
        seen[w]++;
        mproc_future_release(fs[i]);
    }
    for (int i = 0; i < W; i++)
        CHECK_EQ(seen[i], 1);
    /* Any task sees an index in range. */
    mproc_future *many[300];
    for (int i = 0; i < 300; i++)
        CHECK_OK(mproc_submit(ex, worker_index_task, NULL, 0, &many[i]));
    for (int i = 0; i < 300; i++) {
        uint64_t w = result_u64(many[i]);
        CHECK_MSG(w < W, "worker index %lld", (long long)(int64_t)w);
        mproc_future_release(many[i]);
    }
    mproc_executor_destroy(ex);
    CHECK_RC(mproc_ctx_worker(NULL), -EINVAL);
    CHECK_OK(mproc_barrier_destroy(&b));
}

static int cancel_flag_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    uint64_t v = mproc_cancel_requested(ctx);
    return mproc_return(ctx, &v, sizeof v);
}

TEST(cancel_requested_false_normally)
{
    mproc_executor *ex = make_ex(2);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, cancel_flag_task, NULL, 0, &f));
    CHECK_EQ(result_u64(f), 0);
    mproc_future_release(f);
    /* Shutdown without cancel_futures does not ask tasks to stop. */
    hold h;
    hold_init(&h);
    mproc_future *held;
    hold_workers(ex, &h, 1, &held);
    CHECK_OK(mproc_executor_shutdown(ex, false, false));
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_EQ(result_u64(held), HOLD_VALUE);
    CHECK_EQ(atomic_load(&h.saw_cancel), 0);
    mproc_future_release(held);
    mproc_executor_destroy(ex);
    CHECK(!mproc_cancel_requested(NULL));
}

/* ---- results --------------------------------------------------------- */

/* Task: return len bytes where byte i is (i * 7 + len) & 0xff, via
 * mproc_return (arg NULL) or mproc_result_buffer (arg non-NULL). The
 * wanted length is the submitted len; arg is not read. */
static unsigned char pattern_byte(size_t i, size_t len)
{
    return (unsigned char)((i * 7 + len) & 0xff);
}

static int pattern_return_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    unsigned char *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(i, len);
    int rc = mproc_return(ctx, buf, len);
    /* The result is a copy: scribbling on our buffer changes nothing. */
    memset(buf, 0xee, len);
    free(buf);
    return rc;
}

static int pattern_buffer_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    unsigned char *buf = mproc_result_buffer(ctx, len);
    if (!buf)
        return -errno;
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(i, len);
    return 0;
}

static void check_pattern(mproc_future *f, size_t want)
{
    const void *data = NULL;
    size_t len = 12345;
    CHECK_OK(mproc_future_result(f, LONG_MS, &data, &len));
    CHECK_EQ(len, want);
    if (want)
        CHECK(data != NULL);
    const unsigned char *c = data;
    for (size_t i = 0; i < want; i++)
        if (c[i] != pattern_byte(i, want))
            CHECK_MSG(0, "result of %zu bytes differs at %zu: %d", want, i, c[i]);
}

/* The submitted len is the wanted result length; arg must be non-NULL
 * for len > 0 but is never read, so point it at a large static area. */
static unsigned char dummy_arg[1 << 20];

TEST(return_small_and_large)
{
    static const size_t sizes[] = { 0, 1, 7, 23, 24, 25, 47, 48, 49, 64, 4096, 65536, 1 << 20 };
    enum { N = sizeof sizes / sizeof sizes[0] };
    mproc_executor *ex = make_ex(2);
    mproc_future *fr[N], *fb[N];
    for (size_t i = 0; i < N; i++) {
        CHECK_OK(mproc_submit(ex, pattern_return_task, dummy_arg, sizes[i], &fr[i]));
        CHECK_OK(mproc_submit(ex, pattern_buffer_task, dummy_arg, sizes[i], &fb[i]));
    }
    for (size_t i = 0; i < N; i++) {
        check_pattern(fr[i], sizes[i]);
        check_pattern(fb[i], sizes[i]);
    }
    /* Results belong to the futures: still readable after destroy. */
    mproc_executor_destroy(ex);
    for (size_t i = 0; i < N; i++) {
        check_pattern(fr[i], sizes[i]);
        check_pattern(fb[i], sizes[i]);
        mproc_future_release(fr[i]);
        mproc_future_release(fb[i]);
    }
}

TEST(result_pointers_may_be_null)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, pattern_return_task, dummy_arg, 100, &f));
    CHECK_OK(mproc_future_result(f, LONG_MS, NULL, NULL));
    size_t len = 0;
    CHECK_OK(mproc_future_result(f, LONG_MS, NULL, &len));
    CHECK_EQ(len, 100);
    const void *data = NULL;
    CHECK_OK(mproc_future_result(f, LONG_MS, &data, NULL));
    CHECK(data != NULL);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

static int no_return_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    return 0;
}

TEST(no_return_is_empty_result)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, no_return_task, NULL, 0, &f));
    const void *data = (const void *)1;
    size_t len = 99;
    CHECK_OK(mproc_future_result(f, LONG_MS, &data, &len));
    CHECK_EQ(len, 0);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Task: return several times; the last one counts (inline <-> heap). */
static int replace_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int mode = (int)(intptr_t)arg;
    static unsigned char big[100000];
    memset(big, 0xab, sizeof big);
    uint64_t small = 77;
    int rc = 0;
    switch (mode) {
    case 0: /* large, then small */
        rc |= mproc_return(ctx, big, sizeof big);
        rc |= mproc_return(ctx, &small, sizeof small);
        break;
    case 1: /* small, then large, then a larger one */
        rc |= mproc_return(ctx, &small, sizeof small);
        rc |= mproc_return(ctx, big, 5000);
        rc |= mproc_return(ctx, big, sizeof big);
        break;
    case 2: /* small, then empty */
        rc |= mproc_return(ctx, &small, sizeof small);
        rc |= mproc_return(ctx, NULL, 0);
        break;
    }
    return rc;
}

TEST(return_replaces_earlier)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f[3];
    for (int m = 0; m < 3; m++)
        CHECK_OK(mproc_submit(ex, replace_task, NUM(m), 0, &f[m]));
    CHECK_EQ(result_u64(f[0]), 77);
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(f[1], LONG_MS, &data, &len));
    CHECK_EQ(len, 100000);
    CHECK(test_all_bytes(data, len, 0xab));
    CHECK_OK(mproc_future_result(f[2], LONG_MS, &data, &len));
    CHECK_EQ(len, 0);
    for (int m = 0; m < 3; m++)
        mproc_future_release(f[m]);
    mproc_executor_destroy(ex);
}

/* Task: check mproc_return's and mproc_result_buffer's refusals. */
static int return_bad_args_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    if (mproc_return(ctx, NULL, 5) != -EINVAL)
        return mproc_fail(ctx, -EPROTO, "mproc_return(ctx, NULL, 5) accepted");
    uint64_t v = 9;
    return mproc_return(ctx, &v, sizeof v);
}

TEST(return_bad_args)
{
    uint64_t v = 1;
    CHECK_RC(mproc_return(NULL, &v, sizeof v), -EINVAL);
    CHECK_RC(mproc_return(NULL, NULL, 0), -EINVAL);
    errno = 0;
    CHECK(mproc_result_buffer(NULL, 16) == NULL);
    CHECK_EQ(errno, EINVAL);
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, return_bad_args_task, NULL, 0, &f));
    CHECK_EQ(result_u64(f), 9);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Many large results at once: no mix-up between futures. */
TEST(many_large_results_concurrently)
{
    enum { N = 32 };
    mproc_executor *ex = make_ex(4);
    mproc_future *fs[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(mproc_submit(ex, i % 2 ? pattern_buffer_task : pattern_return_task,
                              dummy_arg, 200000 + (size_t)i * 1000, &fs[i]));
    for (int i = 0; i < N; i++) {
        check_pattern(fs[i], 200000 + (size_t)i * 1000);
        mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(ex);
}

/* ---- failures -------------------------------------------------------- */

static int fail_row_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    return mproc_fail(ctx, -EINVAL, "bad row %d", 7);
}

static int plain_error_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    return -ENOENT;
}

static int long_message_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    char big[1000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    return mproc_fail(ctx, -EIO, "%s", big);
}

/* Task: mproc_fail with codes >= 0 returns them and keeps no message. */
static int fail_nonneg_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    if (mproc_fail(ctx, 5, "positivo") != 5)
        return -EPROTO;
    if (mproc_fail(ctx, 0, "nada %d", 1) != 0)
        return -EPROTO;
    return 0; /* succeeds after all */
}

static void check_failure(mproc_future *f, int code, const char *message)
{
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), code);
    int got = 1;
    const char *msg = NULL;
    CHECK_OK(mproc_future_error(f, &got, &msg));
    CHECK_EQ(got, code);
    CHECK(msg != NULL);
    CHECK_MSG(strcmp(msg, message) == 0, "message \"%s\", want \"%s\"", msg, message);
}

TEST(fail_message_and_code)
{
    mproc_executor *ex = make_ex(2);
    mproc_future *f1, *f2, *f3, *f4;
    CHECK_OK(mproc_submit(ex, fail_row_task, NULL, 0, &f1));
    CHECK_OK(mproc_submit(ex, plain_error_task, NULL, 0, &f2));
    CHECK_OK(mproc_submit(ex, fail_task, NUM(-EDOM), 0, &f3));
    CHECK_OK(mproc_submit(ex, long_message_task, NULL, 0, &f4));
    check_failure(f1, -EINVAL, "bad row 7");
    check_failure(f2, -ENOENT, "");
    check_failure(f3, -EDOM, "failed on purpose");
    /* The message is cut to 255 bytes. */
    int code;
    const char *msg;
    CHECK_RC(mproc_future_result(f4, LONG_MS, NULL, NULL), -EIO);
    CHECK_OK(mproc_future_error(f4, &code, &msg));
    CHECK_EQ(code, -EIO);
    CHECK_EQ(strlen(msg), 255);
    CHECK(test_all_bytes(msg, 255, 'm'));
    CHECK(!mproc_future_cancelled(f1));
    CHECK(mproc_future_done(f1));
    mproc_future_release(f1);
    mproc_future_release(f2);
    mproc_future_release(f3);
    mproc_future_release(f4);
    mproc_executor_destroy(ex);
}

TEST(fail_nonnegative_code_keeps_no_message)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, fail_nonneg_task, NULL, 0, &f));
    CHECK_OK(mproc_future_result(f, LONG_MS, NULL, NULL));
    int code = 1;
    const char *msg = NULL;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    CHECK_EQ(code, 0);
    CHECK(msg != NULL && msg[0] == '\0');
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* ------------------------------------------------------------------ */
/* submit                                                              */
/* ------------------------------------------------------------------ */

TEST(submit_bad_args)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f = NULL;
    char buf[4] = "abc";
    CHECK_RC(mproc_submit(NULL, echo_task, NULL, 0, &f), -EINVAL);
    CHECK_RC(mproc_submit(ex, NULL, NULL, 0, &f), -EINVAL);
    CHECK_RC(mproc_submit(ex, echo_task, NULL, 4, &f), -EINVAL);
    CHECK_RC(mproc_submit_ex(NULL, echo_task, buf, 4, NULL, &f), -EINVAL);
    CHECK_RC(mproc_submit_ex(ex, NULL, buf, 4, NULL, &f), -EINVAL);
    CHECK_RC(mproc_submit_ex(ex, echo_task, NULL, 4, NULL, &f), -EINVAL);
    CHECK_RC(mproc_submit_ex(ex, echo_task, NULL, 4,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &f), -EINVAL);
    CHECK_RC(mproc_submit(ex, NULL, NULL, 0, NULL), -EINVAL);
    /* submit_ex with NULL opts is plain submit. */
    CHECK_OK(mproc_submit_ex(ex, echo_task, NUM(3), 0, NULL, &f));
    CHECK_EQ(result_u64(f), 3);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Task: return the arg's address, its length and its first bytes. */
typedef struct arg_view {
    const void *ptr;
    size_t len;
    char bytes[64];
} arg_view;

static int view_arg_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    arg_view v;
    memset(&v, 0, sizeof v);
    v.ptr = arg;
    v.len = len;
    if (len > 0)
        memcpy(v.bytes, arg, len < sizeof v.bytes ? len : sizeof v.bytes);
    return mproc_return(ctx, &v, sizeof v);
}

static arg_view get_view(mproc_future *f)
{
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(f, LONG_MS, &data, &len));
    CHECK_EQ(len, sizeof(arg_view));
    arg_view v;
    memcpy(&v, data, sizeof v);
    return v;
}

/* By reference: the task reads the caller's buffer when it runs. */
TEST(arg_by_reference)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *held;
    hold_workers(ex, &h, 1, &held);
    char buf[16] = "original";
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, view_arg_task, buf, sizeof buf, &f));
    memcpy(buf, "changed", 8); /* before the task runs: it sees this */
    CHECK_OK(mproc_event_set(&h.go));
    arg_view v = get_view(f);
    CHECK(v.ptr == buf);
    CHECK_EQ(v.len, sizeof buf);
    CHECK_EQ(strcmp(v.bytes, "changed"), 0);
    mproc_future_release(f);
    mproc_future_release(held);
    mproc_executor_destroy(ex);
}

/* Task (arg: copied bytes): check them against the pattern. */
static int check_copy_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    const unsigned char *c = arg;
    for (size_t i = 0; i < len; i++)
        if (c[i] != pattern_byte(i, len))
            return mproc_fail(ctx, -EPROTO, "byte %zu of %zu differs", i, len);
    return 0;
}

/* MPROC_COPY_ARG: the caller may overwrite its buffer right after submit. */
TEST(arg_copy)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    mproc_future *held;
    hold_workers(ex, &h, 1, &held);
    char buf[40] = "the caller's original bytes";
    mproc_future *f, *fe, *fbig;
    CHECK_OK(mproc_submit_ex(ex, view_arg_task, buf, sizeof buf,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &f));
    memset(buf, 'X', sizeof buf);
    /* Copying nothing. */
    CHECK_OK(mproc_submit_ex(ex, view_arg_task, NULL, 0,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &fe));
    /* A large copy, whose source is freed at once. */
    size_t big_len = 1 << 20;
    unsigned char *big = malloc(big_len);
    CHECK(big != NULL);
    for (size_t i = 0; i < big_len; i++)
        big[i] = pattern_byte(i, big_len);
    CHECK_OK(mproc_submit_ex(ex, check_copy_task, big, big_len,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &fbig));
    free(big);
    CHECK_OK(mproc_event_set(&h.go));
    arg_view v = get_view(f);
    CHECK(v.ptr != buf);
    CHECK_EQ(v.len, sizeof buf);
    CHECK_EQ(strcmp(v.bytes, "the caller's original bytes"), 0);
    v = get_view(fe);
    CHECK_EQ(v.len, 0);
    CHECK_OK(mproc_future_result(fbig, LONG_MS, NULL, NULL));
    mproc_future_release(f);
    mproc_future_release(fe);
    mproc_future_release(fbig);
    mproc_future_release(held);
    mproc_executor_destroy(ex);
}

/* Copied args of all sizes, the source reused for the next submit. */
TEST(arg_copy_many_sizes)
{
    mproc_executor *ex = make_ex(2);
    enum { N = 200 };
    mproc_future *fs[N];
    unsigned char buf[3000];
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)i * 15;
        for (size_t j = 0; j < len; j++)
            buf[j] = pattern_byte(j, len);
        CHECK_OK(mproc_submit_ex(ex, check_copy_task, buf, len,
                                 &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &fs[i]));
        memset(buf, 0x5a, sizeof buf);
    }
    for (int i = 0; i < N; i++) {
        CHECK_OK(mproc_future_result(fs[i], LONG_MS, NULL, NULL));
        mproc_future_release(fs[i]);
    }
    mproc_executor_destroy(ex);
}

TEST(fire_and_forget_out_null)
{
    mproc_executor *ex = make_ex(2);
    atomic_long c = 0;
    long n = test_scaled_stress(20000);
    for (long i = 0; i < n; i++)
        CHECK_OK(mproc_submit(ex, count_task, &c, 0, NULL));
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c), n);
}
