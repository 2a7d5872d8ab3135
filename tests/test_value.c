/*
 * tests/test_value.c -- shared values and arrays: every typed call, type
 * and bounds errors, bytes values, bulk copies, raw variants, objects in
 * the arena and in mappings of their own, many processes adding to one
 * value (exact totals, with add and with lock + get + set), a holder of a
 * value's lock SIGKILLed (-EOWNERDEAD through the value API, then
 * consistent again), bad arguments.
 *
 * Children are forked while the test process is single-threaded.
 */
#include <float.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "runner.h"
#include "helpers.h"

#define NPROC 4

/* ------------------------------------------------------------------ */
/* single-process behaviour                                            */
/* ------------------------------------------------------------------ */

TEST(value_defaults)
{
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, NULL));
    CHECK_EQ(mproc_value_type(v), MPROC_I32);
    CHECK_EQ(mproc_value_size(v), 4);
    CHECK(mproc_value_lock(v) != NULL);
    CHECK(mproc_value_ptr(v) != NULL);
    CHECK_EQ((uintptr_t)mproc_value_ptr(v) % 8, 0);
    int32_t x = -1;
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, 0);
    CHECK_OK(mproc_value_destroy(v));
    CHECK_OK(mproc_value_destroy(NULL));
}

TEST(value_i32)
{
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I32 }));
    int32_t x, old;
    CHECK_OK(mproc_value_set_i32(v, 41));
    CHECK_OK(mproc_value_add_i32(v, 1, &old));
    CHECK_EQ(old, 41);
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, 42);
    CHECK_OK(mproc_value_add_i32(v, -50, NULL));
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, -8);
    /* Wraps around, two's complement. */
    CHECK_OK(mproc_value_set_i32(v, INT32_MAX));
    CHECK_OK(mproc_value_add_i32(v, 1, NULL));
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, INT32_MIN);
    int32_t exp = 5;
    CHECK_RC(mproc_value_cas_i32(v, &exp, 6), -EAGAIN);
    CHECK_EQ(exp, INT32_MIN);
    CHECK_OK(mproc_value_cas_i32(v, &exp, 6));
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, 6);
    /* Through the pointer. */
    *(int32_t *)mproc_value_ptr(v) = 7;
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, 7);
    CHECK_OK(mproc_value_destroy(v));
}

TEST(value_i64_u64)
{
    mproc_value *v, *u;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I64 }));
    CHECK_OK(mproc_value_create(&u, &(mproc_value_opts){ .type = MPROC_U64 }));
    CHECK_EQ(mproc_value_size(v), 8);
    int64_t x, old, exp;
    CHECK_OK(mproc_value_set_i64(v, (int64_t)1 << 40));
    CHECK_OK(mproc_value_add_i64(v, -1, &old));
    CHECK_EQ(old, (int64_t)1 << 40);
    CHECK_OK(mproc_value_get_i64(v, &x));
    CHECK_EQ(x, ((int64_t)1 << 40) - 1);
    exp = x;
    CHECK_OK(mproc_value_cas_i64(v, &exp, INT64_MIN));
    CHECK_OK(mproc_value_get_i64(v, &x));
    CHECK_EQ(x, INT64_MIN);
    exp = 0;
    CHECK_RC(mproc_value_cas_i64(v, &exp, 1), -EAGAIN);
    CHECK_EQ(exp, INT64_MIN);

    uint64_t y, uold, uexp = 1;
    CHECK_OK(mproc_value_set_u64(u, UINT64_MAX));
    CHECK_OK(mproc_value_add_u64(u, 2, &uold));
    CHECK(uold == UINT64_MAX);
    CHECK_OK(mproc_value_get_u64(u, &y));
    CHECK(y == 1);
    CHECK_OK(mproc_value_cas_u64(u, &uexp, UINT64_MAX - 1));
    CHECK_OK(mproc_value_get_u64(u, &y));
    CHECK(y == UINT64_MAX - 1);
    uexp = 3;
    CHECK_RC(mproc_value_cas_u64(u, &uexp, 4), -EAGAIN);
    CHECK(uexp == UINT64_MAX - 1);
    CHECK_OK(mproc_value_destroy(v));
    CHECK_OK(mproc_value_destroy(u));
}

TEST(value_f64)
{
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_F64 }));
    double d = -1, old;
    CHECK_OK(mproc_value_get_f64(v, &d));
    CHECK(d == 0.0);
    CHECK_OK(mproc_value_set_f64(v, 2.5));
    CHECK_OK(mproc_value_add_f64(v, 0.25, &old));
    CHECK(old == 2.5);
    CHECK_OK(mproc_value_get_f64(v, &d));
    CHECK(d == 2.75);
    CHECK_OK(mproc_value_set_f64(v, DBL_MAX));
    CHECK_OK(mproc_value_get_f64(v, &d));
    CHECK(d == DBL_MAX);
    CHECK_OK(mproc_value_destroy(v));
}

TEST(value_type_mismatch)
{
    mproc_value *v, *f, *b;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I64 }));
    CHECK_OK(mproc_value_create(&f, &(mproc_value_opts){ .type = MPROC_F64 }));
    CHECK_OK(mproc_value_create(&b, &(mproc_value_opts){ .type = MPROC_BYTES, .size = 8 }));
    int32_t i32 = 0;
    int64_t i64 = 0;
    uint64_t u64 = 0;
    double d = 0;
    size_t n;
    char buf[8];
    CHECK_RC(mproc_value_get_f64(v, &d), -EINVAL);
    CHECK_RC(mproc_value_set_f64(v, 1.0), -EINVAL);
    CHECK_RC(mproc_value_add_f64(v, 1.0, NULL), -EINVAL);
    CHECK_RC(mproc_value_get_i32(v, &i32), -EINVAL);
    CHECK_RC(mproc_value_set_u64(v, 1), -EINVAL);
    CHECK_RC(mproc_value_add_u64(v, 1, NULL), -EINVAL);
    CHECK_RC(mproc_value_cas_i32(v, &i32, 1), -EINVAL);
    CHECK_RC(mproc_value_get_i64(f, &i64), -EINVAL);
    CHECK_RC(mproc_value_cas_u64(f, &u64, 1), -EINVAL);
    CHECK_RC(mproc_value_get_bytes(v, buf, sizeof buf, &n), -EINVAL);
    CHECK_RC(mproc_value_set_bytes(f, "x", 1), -EINVAL);
    CHECK_RC(mproc_value_get_i64(b, &i64), -EINVAL);
    CHECK_RC(mproc_value_add_i64(b, 1, NULL), -EINVAL);
    /* Nothing changed. */
    CHECK_OK(mproc_value_get_i64(v, &i64));
    CHECK_EQ(i64, 0);
    CHECK_OK(mproc_value_destroy(v));
    CHECK_OK(mproc_value_destroy(f));
    CHECK_OK(mproc_value_destroy(b));
}

TEST(value_bytes)
{
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_BYTES, .size = 16 }));
    CHECK_EQ(mproc_value_size(v), 16);
    char buf[32];
    size_t n = 99;
    CHECK_OK(mproc_value_get_bytes(v, buf, sizeof buf, &n));
    CHECK_EQ(n, 0);
    CHECK_OK(mproc_value_get_bytes(v, NULL, 0, &n)); /* empty fits anywhere */
    CHECK_OK(mproc_value_set_bytes(v, "hola", 4));
    CHECK_OK(mproc_value_get_bytes(v, buf, sizeof buf, &n));
    CHECK_EQ(n, 4);
    CHECK(memcmp(buf, "hola", 4) == 0);
    /* Too small a buffer: the length is reported, nothing copied. */
    memset(buf, 0, sizeof buf);
    CHECK_RC(mproc_value_get_bytes(v, buf, 3, &n), -EMSGSIZE);
    CHECK_EQ(n, 4);
    CHECK_EQ(buf[0], 0);
    /* Exactly the capacity, then one more. */
    CHECK_OK(mproc_value_set_bytes(v, "0123456789abcdef", 16));
    CHECK_RC(mproc_value_set_bytes(v, "0123456789abcdefg", 17), -EMSGSIZE);
    CHECK_OK(mproc_value_get_bytes(v, buf, 16, &n));
    CHECK_EQ(n, 16);
    CHECK(memcmp(buf, "0123456789abcdef", 16) == 0);
    /* While holding the lock (Python's `with v.get_lock(): v.value = ...`). */
    CHECK_OK(mproc_lock_acquire(mproc_value_lock(v), -1));
    CHECK_OK(mproc_value_set_bytes(v, "adios", 5));
    CHECK_OK(mproc_value_get_bytes(v, buf, sizeof buf, &n));
    CHECK_EQ(mproc_lock_locked(mproc_value_lock(v)), 1);
    CHECK_OK(mproc_lock_release(mproc_value_lock(v)));
    CHECK_EQ(n, 5);
    CHECK(memcmp(buf, "adios", 5) == 0);
    CHECK_OK(mproc_value_set_bytes(v, NULL, 0));
    CHECK_OK(mproc_value_get_bytes(v, buf, sizeof buf, &n));
    CHECK_EQ(n, 0);
    CHECK_OK(mproc_value_destroy(v));
}

/* A bytes value above the arena limit lives in a mapping of its own. */
TEST(value_bytes_large)
{
    size_t big = 1 << 20;
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_BYTES, .size = big }));
    char *src = malloc(big), *dst = malloc(big);
    CHECK(src && dst);
    for (size_t i = 0; i < big; i++)
        src[i] = (char)(i * 7);
    CHECK_OK(mproc_value_set_bytes(v, src, big));
    size_t n;
    CHECK_OK(mproc_value_get_bytes(v, dst, big, &n));
    CHECK_EQ(n, big);
    CHECK(memcmp(src, dst, big) == 0);
    free(src);
    free(dst);
    CHECK_OK(mproc_value_destroy(v));
}

TEST(value_raw)
{
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I64, .flags = MPROC_RAW }));
    CHECK(mproc_value_lock(v) == NULL);
    int64_t x;
    CHECK_OK(mproc_value_add_i64(v, 3, NULL));
    CHECK_OK(mproc_value_get_i64(v, &x));
    CHECK_EQ(x, 3);
    CHECK_OK(mproc_value_destroy(v));

    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_BYTES, .size = 4,
                                                         .flags = MPROC_RAW }));
    CHECK(mproc_value_lock(v) == NULL);
    char buf[4];
    size_t n;
    CHECK_OK(mproc_value_set_bytes(v, "abc", 3));
    CHECK_OK(mproc_value_get_bytes(v, buf, sizeof buf, &n));
    CHECK_EQ(n, 3);
    CHECK(memcmp(buf, "abc", 3) == 0);
    CHECK_OK(mproc_value_destroy(v));
}

TEST(value_bad_args)
{
    mproc_value *v = (mproc_value *)1;
    int32_t i32;
    size_t n;
    CHECK_RC(mproc_value_create(NULL, NULL), -EINVAL);
    CHECK_RC(mproc_value_create(&v, &(mproc_value_opts){ .flags = 0x80 }), -EINVAL);
    CHECK(v == NULL);
    CHECK_RC(mproc_value_create(&v, &(mproc_value_opts){ .type = (mproc_type)77 }), -EINVAL);
    CHECK_RC(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_BYTES }), -EINVAL);
    CHECK_RC(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I64, .size = 8 }), -EINVAL);
    CHECK_RC(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_BYTES,
                                                         .size = SIZE_MAX }), -EINVAL);
    CHECK_RC(mproc_value_get_i32(NULL, &i32), -EINVAL);
    CHECK_RC(mproc_value_set_i32(NULL, 1), -EINVAL);
    CHECK_RC(mproc_value_add_i64(NULL, 1, NULL), -EINVAL);
    CHECK_RC(mproc_value_set_bytes(NULL, "x", 1), -EINVAL);
    CHECK_RC(mproc_value_type(NULL), -EINVAL);
    CHECK_EQ(mproc_value_size(NULL), 0);
    CHECK(mproc_value_lock(NULL) == NULL);
    CHECK(mproc_value_ptr(NULL) == NULL);

    CHECK_OK(mproc_value_create(&v, NULL));
    CHECK_RC(mproc_value_get_i32(v, NULL), -EINVAL);
    CHECK_RC(mproc_value_cas_i32(v, NULL, 1), -EINVAL);
    mproc_value *b;
    CHECK_OK(mproc_value_create(&b, &(mproc_value_opts){ .type = MPROC_BYTES, .size = 4 }));
    CHECK_RC(mproc_value_get_bytes(b, NULL, 4, &n), -EINVAL);
    CHECK_RC(mproc_value_get_bytes(b, &i32, 4, NULL), -EINVAL);
    CHECK_RC(mproc_value_set_bytes(b, NULL, 1), -EINVAL);
    /* An array handle is not a value, and the other way round. */
    mproc_array *a;
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .len = 1 }));
    CHECK_RC(mproc_value_get_i32((mproc_value *)a, &i32), -EINVAL);
    CHECK_RC(mproc_array_get_i32((mproc_array *)v, 0, &i32), -EINVAL);
    CHECK_RC(mproc_value_destroy((mproc_value *)a), -EINVAL);
    CHECK_OK(mproc_array_destroy(a));
    /* Destroy while this thread holds the lock: busy, nothing freed. */
    CHECK_OK(mproc_lock_acquire(mproc_value_lock(v), -1));
    CHECK_RC(mproc_value_destroy(v), -EBUSY);
    CHECK_OK(mproc_lock_release(mproc_value_lock(v)));
    CHECK_OK(mproc_value_destroy(v));
    /* A destroyed arena value is detected (its block stays mapped). */
    CHECK_RC(mproc_value_get_i32(v, &i32), -EINVAL);
    CHECK_RC(mproc_value_destroy(v), -EINVAL);
    CHECK_OK(mproc_value_destroy(b));
}

/* ------------------------------------------------------------------ */
/* many processes                                                      */
/* ------------------------------------------------------------------ */

static long g_iters;

static int add_child(void *arg)
{
    mproc_value *v = arg;
    for (long i = 0; i < g_iters; i++)
        if (mproc_value_add_i64(v, 1, NULL) != 0)
            return 1;
    return 0;
}

TEST(value_add_processes)
{
    g_iters = test_scaled_stress(200000);
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I64, .flags = MPROC_RAW }));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = test_fork(add_child, v);
    for (int i = 0; i < NPROC; i++)
        test_expect_child_ok(pids[i]);
    int64_t x;
    CHECK_OK(mproc_value_get_i64(v, &x));
    CHECK_EQ(x, NPROC * g_iters);
    CHECK_OK(mproc_value_destroy(v));
}

/* `with v.get_lock(): v.value += 1` */
static int locked_child(void *arg)
{
    mproc_value *v = arg;
    mproc_lock *l = mproc_value_lock(v);
    for (long i = 0; i < g_iters; i++) {
        int32_t x;
        if (mproc_lock_acquire(l, -1) != 0 || mproc_value_get_i32(v, &x) != 0 ||
            mproc_value_set_i32(v, x + 1) != 0 || mproc_lock_release(l) != 0)
            return 1;
    }
    return 0;
}

TEST(value_lock_processes)
{
    g_iters = test_scaled_stress(50000);
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, NULL));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = test_fork(locked_child, v);
    for (int i = 0; i < NPROC; i++)
        test_expect_child_ok(pids[i]);
    int32_t x;
    CHECK_OK(mproc_value_get_i32(v, &x));
    CHECK_EQ(x, NPROC * g_iters);
    CHECK_OK(mproc_value_destroy(v));
}

/* A RawValue read-modify-written without a lock loses updates; the point
 * is only that nothing breaks (the total is not asserted). */
static int raw_child(void *arg)
{
    mproc_value *v = arg;
    for (long i = 0; i < g_iters; i++) {
        double d;
        if (mproc_value_get_f64(v, &d) != 0 || mproc_value_set_f64(v, d + 1) != 0)
            return 1;
    }
    return 0;
}

TEST(value_raw_processes)
{
    g_iters = test_scaled_stress(50000);
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_F64, .flags = MPROC_RAW }));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = test_fork(raw_child, v);
    for (int i = 0; i < NPROC; i++)
        test_expect_child_ok(pids[i]);
    double d;
    CHECK_OK(mproc_value_get_f64(v, &d));
    CHECK(d >= 1 && d <= (double)(NPROC * g_iters));
    CHECK_OK(mproc_value_destroy(v));
}

static int f64_child(void *arg)
{
    for (long i = 0; i < g_iters; i++)
        if (mproc_value_add_f64(arg, 1.0, NULL) != 0)
            return 1;
    return 0;
}

TEST(value_add_f64_processes)
{
    g_iters = test_scaled_stress(50000);
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_F64 }));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = test_fork(f64_child, v);
    for (int i = 0; i < NPROC; i++)
        test_expect_child_ok(pids[i]);
    double d;
    CHECK_OK(mproc_value_get_f64(v, &d));
    CHECK(d == (double)(NPROC * g_iters)); /* integers below 2^53: exact */
    CHECK_OK(mproc_value_destroy(v));
}

/* ------------------------------------------------------------------ */
/* a holder of the lock dies                                           */
/* ------------------------------------------------------------------ */

static int g_wfd = -1;

static int holder_child(void *arg)
{
    mproc_value *v = arg;
    if (mproc_lock_acquire(mproc_value_lock(v), 10000) != 0)
        return 1;
    /* Half an update, as a process killed mid-write leaves it. */
    memcpy(mproc_value_ptr(v), "XXXX", 4);
    char c = 'x';
    if (write(g_wfd, &c, 1) != 1)
        return 1;
    for (;;)
        pause();
}

TEST(value_owner_dead)
{
    mproc_value *v;
    CHECK_OK(mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_BYTES, .size = 8 }));
    CHECK_OK(mproc_value_set_bytes(v, "good", 4));
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    g_wfd = fds[1];
    pid_t pid = test_fork(holder_child, v);
    close(fds[1]);
    struct pollfd p = { .fd = fds[0], .events = POLLIN };
    CHECK_MSG(poll(&p, 1, 20000) == 1, "holder never took the lock");
    char c;
    CHECK_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    CHECK_EQ(kill(pid, SIGKILL), 0);
    test_expect_child_killed(pid);

    /* The bytes calls refuse to read or write torn data... */
    char buf[8];
    size_t n;
    CHECK_RC(mproc_value_get_bytes(v, buf, sizeof buf, &n), -EOWNERDEAD);
    CHECK_RC(mproc_value_set_bytes(v, "new", 3), -EOWNERDEAD);
    /* ...until a lock holder repairs the value and says so. Until then
     * every acquirer is told. */
    mproc_lock *l = mproc_value_lock(v);
    CHECK_RC(mproc_lock_acquire(l, 10000), -EOWNERDEAD);
    CHECK_OK(mproc_lock_release(l));
    CHECK_RC(mproc_lock_acquire(l, 10000), -EOWNERDEAD);
    CHECK(memcmp(mproc_value_ptr(v), "XXXX", 4) == 0);
    CHECK_OK(mproc_value_set_bytes(v, "fixed", 5)); /* held by us: no re-acquire */
    CHECK_OK(mproc_lock_consistent(l));
    CHECK_OK(mproc_lock_release(l));
    CHECK_OK(mproc_value_get_bytes(v, buf, sizeof buf, &n));
    CHECK_EQ(n, 5);
    CHECK(memcmp(buf, "fixed", 5) == 0);
    CHECK_OK(mproc_lock_acquire(l, 0));
    CHECK_OK(mproc_lock_release(l));
    mproc_lock_counters s;
    CHECK_OK(mproc_lock_stats(l, &s));
    CHECK_EQ(s.owner_deaths, 1);
    CHECK_OK(mproc_value_destroy(v));
}

/* ------------------------------------------------------------------ */
/* arrays                                                              */
/* ------------------------------------------------------------------ */

TEST(array_basic)
{
    mproc_array *a;
    int32_t init[5] = { 1, 2, 3, 4, 5 };
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .len = 5, .init = init }));
    CHECK_EQ(mproc_array_len(a), 5);
    CHECK_EQ(mproc_array_type(a), MPROC_I32);
    CHECK(mproc_array_lock(a) != NULL);
    int32_t x, old, exp;
    for (size_t i = 0; i < 5; i++) {
        CHECK_OK(mproc_array_get_i32(a, i, &x));
        CHECK_EQ(x, init[i]);
    }
    CHECK_OK(mproc_array_set_i32(a, 4, 50));
    CHECK_OK(mproc_array_add_i32(a, 0, 10, &old));
    CHECK_EQ(old, 1);
    exp = 3;
    CHECK_OK(mproc_array_cas_i32(a, 2, &exp, 30));
    exp = 3;
    CHECK_RC(mproc_array_cas_i32(a, 2, &exp, 31), -EAGAIN);
    CHECK_EQ(exp, 30);
    int32_t all[5];
    CHECK_OK(mproc_array_read(a, 0, all, 5));
    CHECK_EQ(all[0], 11);
    CHECK_EQ(all[1], 2);
    CHECK_EQ(all[2], 30);
    CHECK_EQ(all[3], 4);
    CHECK_EQ(all[4], 50);
    CHECK(memcmp(mproc_array_ptr(a), all, sizeof all) == 0);
    /* Bounds. */
    CHECK_RC(mproc_array_get_i32(a, 5, &x), -ERANGE);
    CHECK_RC(mproc_array_set_i32(a, 5, 0), -ERANGE);
    CHECK_RC(mproc_array_add_i32(a, SIZE_MAX, 1, NULL), -ERANGE);
    CHECK_RC(mproc_array_cas_i32(a, 99, &exp, 1), -ERANGE);
    CHECK_RC(mproc_array_read(a, 4, all, 2), -ERANGE);
    CHECK_RC(mproc_array_read(a, 6, all, 0), -ERANGE);
    CHECK_RC(mproc_array_write(a, 1, all, SIZE_MAX), -ERANGE);
    CHECK_OK(mproc_array_read(a, 5, all, 0)); /* empty slice at the end */
    /* Slice write. */
    int32_t two[2] = { -1, -2 };
    CHECK_OK(mproc_array_write(a, 3, two, 2));
    CHECK_OK(mproc_array_get_i32(a, 4, &x));
    CHECK_EQ(x, -2);
    /* Type mismatch. */
    int64_t i64;
    double d;
    CHECK_RC(mproc_array_get_i64(a, 0, &i64), -EINVAL);
    CHECK_RC(mproc_array_set_f64(a, 0, 1.0), -EINVAL);
    CHECK_RC(mproc_array_get_f64(a, 0, &d), -EINVAL);
    CHECK_OK(mproc_array_destroy(a));
}

TEST(array_types)
{
    mproc_array *a;
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .type = MPROC_I64, .len = 3 }));
    int64_t x, exp = 0;
    CHECK_OK(mproc_array_set_i64(a, 2, -7));
    CHECK_OK(mproc_array_add_i64(a, 2, -1, NULL));
    CHECK_OK(mproc_array_get_i64(a, 2, &x));
    CHECK_EQ(x, -8);
    CHECK_OK(mproc_array_cas_i64(a, 1, &exp, 9));
    CHECK_OK(mproc_array_get_i64(a, 1, &x));
    CHECK_EQ(x, 9);
    CHECK_OK(mproc_array_destroy(a));

    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .type = MPROC_U64, .len = 3 }));
    uint64_t u, uold, uexp = 0;
    CHECK_OK(mproc_array_set_u64(a, 0, 5));
    CHECK_OK(mproc_array_add_u64(a, 0, 5, &uold));
    CHECK(uold == 5);
    CHECK_OK(mproc_array_get_u64(a, 0, &u));
    CHECK(u == 10);
    CHECK_OK(mproc_array_cas_u64(a, 2, &uexp, UINT64_MAX));
    CHECK_OK(mproc_array_get_u64(a, 2, &u));
    CHECK(u == UINT64_MAX);
    CHECK_OK(mproc_array_destroy(a));

    double init[2] = { 0.5, 1.5 };
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .type = MPROC_F64, .len = 2,
                                                         .init = init }));
    double d, dold;
    CHECK_OK(mproc_array_add_f64(a, 1, 1.0, &dold));
    CHECK(dold == 1.5);
    CHECK_OK(mproc_array_set_f64(a, 0, -0.5));
    CHECK_OK(mproc_array_get_f64(a, 0, &d));
    CHECK(d == -0.5);
    CHECK_OK(mproc_array_get_f64(a, 1, &d));
    CHECK(d == 2.5);
    CHECK_OK(mproc_array_destroy(a));

    /* Bytes: Array('c', 8). */
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .type = MPROC_BYTES, .len = 8,
                                                         .init = "abcdefgh" }));
    char buf[8];
    CHECK_OK(mproc_array_write(a, 2, "XY", 2));
    CHECK_OK(mproc_array_read(a, 0, buf, 8));
    CHECK(memcmp(buf, "abXYefgh", 8) == 0);
    int32_t i32;
    CHECK_RC(mproc_array_get_i32(a, 0, &i32), -EINVAL);
    CHECK_OK(mproc_array_destroy(a));

    /* Raw. */
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .len = 2, .flags = MPROC_RAW }));
    CHECK(mproc_array_lock(a) == NULL);
    int32_t two[2] = { 8, 9 }, back[2];
    CHECK_OK(mproc_array_write(a, 0, two, 2));
    CHECK_OK(mproc_array_read(a, 0, back, 2));
    CHECK(memcmp(two, back, sizeof two) == 0);
    CHECK_OK(mproc_array_destroy(a));
}

TEST(array_bad_args)
{
    mproc_array *a = (mproc_array *)1;
    CHECK_RC(mproc_array_create(NULL, &(mproc_array_opts){ .len = 1 }), -EINVAL);
    CHECK_RC(mproc_array_create(&a, NULL), -EINVAL);
    CHECK(a == NULL);
    CHECK_RC(mproc_array_create(&a, &(mproc_array_opts){ .len = 0 }), -EINVAL);
    CHECK_RC(mproc_array_create(&a, &(mproc_array_opts){ .len = 1, .flags = 2 }), -EINVAL);
    CHECK_RC(mproc_array_create(&a, &(mproc_array_opts){ .len = 1, .type = (mproc_type)-1 }),
             -EINVAL);
    CHECK_RC(mproc_array_create(&a, &(mproc_array_opts){ .len = SIZE_MAX / 4,
                                                         .type = MPROC_I64 }), -EINVAL);
    int32_t x;
    CHECK_RC(mproc_array_get_i32(NULL, 0, &x), -EINVAL);
    CHECK_RC(mproc_array_read(NULL, 0, &x, 1), -EINVAL);
    CHECK_EQ(mproc_array_len(NULL), 0);
    CHECK_RC(mproc_array_type(NULL), -EINVAL);
    CHECK(mproc_array_ptr(NULL) == NULL);
    CHECK(mproc_array_lock(NULL) == NULL);
    CHECK_OK(mproc_array_destroy(NULL));
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .len = 2 }));
    CHECK_RC(mproc_array_read(a, 0, NULL, 1), -EINVAL);
    CHECK_RC(mproc_array_write(a, 0, NULL, 1), -EINVAL);
    CHECK_OK(mproc_array_read(a, 0, NULL, 0));
    CHECK_RC(mproc_array_get_i32(a, 0, NULL), -EINVAL);
    CHECK_OK(mproc_array_destroy(a));
}

/* Every process adds its number to every item of a large array (in a
 * mapping of its own) and of a small one (in the arena). */
static int array_child(void *arg)
{
    mproc_array *a = arg;
    size_t len = mproc_array_len(a);
    for (long r = 0; r < g_iters; r++)
        for (size_t i = 0; i < len; i++)
            if (mproc_array_add_u64(a, i, 1, NULL) != 0)
                return 1;
    return 0;
}

TEST(array_processes)
{
    size_t lens[2] = { 5, 100000 };
    long iters[2] = { test_scaled_stress(100000), test_scaled_stress(20) };
    for (int k = 0; k < 2; k++) {
        g_iters = iters[k] < 1 ? 1 : iters[k];
        mproc_array *a;
        CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .type = MPROC_U64,
                                                             .len = lens[k] }));
        pid_t pids[NPROC];
        for (int i = 0; i < NPROC; i++)
            pids[i] = test_fork(array_child, a);
        for (int i = 0; i < NPROC; i++)
            test_expect_child_ok(pids[i]);
        uint64_t *all = malloc(lens[k] * sizeof *all);
        CHECK(all != NULL);
        CHECK_OK(mproc_array_read(a, 0, all, lens[k]));
        for (size_t i = 0; i < lens[k]; i++)
            CHECK_EQ(all[i], NPROC * g_iters);
        free(all);
        CHECK_OK(mproc_array_destroy(a));
    }
}

/* A child writes a whole slice under the lock while the parent reads
 * slices: every read sees one writer's complete pattern. */
static int slice_writer(void *arg)
{
    mproc_array *a = arg;
    int64_t buf[64];
    for (long r = 1; r <= g_iters; r++) {
        for (int i = 0; i < 64; i++)
            buf[i] = r;
        if (mproc_array_write(a, 0, buf, 64) != 0)
            return 1;
    }
    return 0;
}

TEST(array_slices_consistent)
{
    g_iters = test_scaled_stress(20000);
    mproc_array *a;
    CHECK_OK(mproc_array_create(&a, &(mproc_array_opts){ .type = MPROC_I64, .len = 64 }));
    pid_t pid = test_fork(slice_writer, a);
    int64_t buf[64];
    for (;;) {
        CHECK_OK(mproc_array_read(a, 0, buf, 64));
        for (int i = 1; i < 64; i++)
            CHECK_EQ(buf[i], buf[0]);
        if (buf[0] == g_iters)
            break;
    }
    test_expect_child_ok(pid);
    CHECK_OK(mproc_array_destroy(a));
}

/* ------------------------------------------------------------------ */
/* threads (also run under ThreadSanitizer)                            */
/* ------------------------------------------------------------------ */

struct thr {
    mproc_value *bytes;
    mproc_value *count;
    int writer;
    int bad;
};

/* Writers store "aaaa..." / "bbbb..." of varying lengths; readers check
 * that what they get is one writer's whole string. */
static void *bytes_thread(void *arg)
{
    struct thr *t = arg;
    char buf[64];
    long n = test_scaled_stress(20000);
    for (long i = 0; i < n; i++) {
        mproc_value_add_i64(t->count, 1, NULL);
        if (t->writer) {
            size_t len = 1 + (size_t)(i % 63);
            memset(buf, 'a' + t->writer, len);
            if (mproc_value_set_bytes(t->bytes, buf, len) != 0)
                t->bad++;
        } else {
            size_t len;
            if (mproc_value_get_bytes(t->bytes, buf, sizeof buf, &len) != 0) {
                t->bad++;
                continue;
            }
            for (size_t k = 1; k < len; k++)
                if (buf[k] != buf[0])
                    t->bad++;
        }
    }
    return NULL;
}

TEST(value_threads)
{
    mproc_value *b, *c;
    CHECK_OK(mproc_value_create(&b, &(mproc_value_opts){ .type = MPROC_BYTES, .size = 64 }));
    CHECK_OK(mproc_value_create(&c, &(mproc_value_opts){ .type = MPROC_I64 }));
    struct thr t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){ .bytes = b, .count = c, .writer = i < 2 ? i + 1 : 0 };
        th[i] = test_start_thread(bytes_thread, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        test_join_thread(th[i]);
        CHECK_EQ(t[i].bad, 0);
    }
    int64_t x;
    CHECK_OK(mproc_value_get_i64(c, &x));
    CHECK_EQ(x, 4 * test_scaled_stress(20000));
    CHECK_OK(mproc_value_destroy(b));
    CHECK_OK(mproc_value_destroy(c));
}
