/*
 * tests/runner.h -- mproc's test runner.
 *
 * Each TEST runs in a process of its own (forked from the runner, in its
 * own process group) with a deadline: a crash or hang fails that test
 * only, and helper processes it leaves behind are killed with it.
 * CMake registers every TEST of a suite as its own ctest case, so
 * `ctest -R sync.lock_basic` runs one.
 *
 *   TEST(name) { ... }              default deadline (30 s)
 *   TEST_T(name, seconds) { ... }   own deadline
 *
 * Usage of a suite binary:
 *   test_sync              run every test, each in its own process
 *   test_sync NAME...      run the named tests
 *   test_sync --list       print the names
 *   MPROC_TEST_NOFORK=1    run in-process (for gdb), no deadline
 */
#ifndef MPROC_TEST_RUNNER_H
#define MPROC_TEST_RUNNER_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

typedef void (*test_fn)(void);

void test_register(const char *name, test_fn fn, int seconds);
void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

#define TEST_T(name, seconds)                                            \
    static void test_##name(void);                                       \
    __attribute__((constructor)) static void test_reg_##name(void)       \
    {                                                                    \
        test_register(#name, test_##name, (seconds));                    \
    }                                                                    \
    static void test_##name(void)

#define TEST(name) TEST_T(name, 30)

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond))                                                     \
            test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);    \
    } while (0)

#define CHECK_MSG(cond, ...)                                             \
    do {                                                                 \
        if (!(cond))                                                     \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                  \
    } while (0)

/* Compare two integers (any integer type, widened to long long). */
#define CHECK_EQ(a, b)                                                   \
    do {                                                                 \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);    \
        if (test_a_ != test_b_)                                          \
            test_fail(__FILE__, __LINE__, "%s == %s failed: %lld != %lld", \
                      #a, #b, test_a_, test_b_);                         \
    } while (0)

#define CHECK_NE(a, b)                                                   \
    do {                                                                 \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);    \
        if (test_a_ == test_b_)                                          \
            test_fail(__FILE__, __LINE__, "%s != %s failed: both %lld",  \
                      #a, #b, test_a_);                                  \
    } while (0)

/* An mproc call that must return `code` (0, -errno or MPROC_E*). */
#define CHECK_RC(expr, code)                                             \
    do {                                                                 \
        int test_rc_ = (int)(expr), test_want_ = (int)(code);            \
        if (test_rc_ != test_want_)                                      \
            test_fail(__FILE__, __LINE__, "%s returned %d (%s), want %d (%s)", \
                      #expr, test_rc_, test_errname(test_rc_), test_want_, \
                      test_errname(test_want_));                         \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, 0)

/* Name of an error code, for messages (mproc_errname when linked). */
const char *test_errname(int code);

/* Fork a helper process that runs fn(arg) and _exit()s with its return
 * value. The helper is in the test's process group, so it dies with the
 * test. Returns its pid; fails the test if fork fails. */
pid_t test_fork(int (*fn)(void *arg), void *arg);

/* Wait up to timeout_ms for child pid; returns its wait status, or -1 on
 * timeout (the child is left running). Fails the test on other errors. */
int test_wait(pid_t pid, int64_t timeout_ms);

/* Wait (up to timeout_ms, failing the test after) until task `tid` (a
 * thread id or a process id) is asleep: state S in /proc on two
 * successive looks. Use it before acting on "the waiter is blocked". */
void test_wait_sleeping(pid_t tid, int64_t timeout_ms);

/* Monotonic milliseconds, for generous deadlines in polling loops. */
int64_t test_now_ms(void);

/* Scale for stress loops: 1 normally, smaller under sanitizers
 * (MPROC_TEST_SCALE=N divides iteration counts by N). */
long test_scaled(long n);

#endif /* MPROC_TEST_RUNNER_H */
