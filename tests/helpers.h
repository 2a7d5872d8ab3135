/*
 * tests/helpers.h -- small helpers shared by the test suites: threads,
 * helper processes, shared memory, polling, stress-loop counts and the
 * SIGALRM storm of the "waits are not interrupted by signals" tests.
 *
 * Every helper fails the test (through runner.h's CHECK*) when the call
 * it wraps fails, so a test never has to check them.
 */
#ifndef MPROC_TEST_HELPERS_H
#define MPROC_TEST_HELPERS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "mproc/os.h"
#include "runner.h"

/* ---- threads ---------------------------------------------------------- */

/* Start a pthread running fn(arg) (default attributes). */
pthread_t test_start_thread(void *(*fn)(void *), void *arg);

/* Join a pthread, ignoring its result. */
void test_join_thread(pthread_t t);

/* Run fn(arg) on a fresh thread and wait for it: checks made "from
 * another thread". */
void test_on_other_thread(void *(*fn)(void *), void *arg);

/* ---- helper processes (see test_fork and test_wait in runner.h) -------- */

/* Wait up to 60 s for child pid, which must exit with status 0. */
void test_expect_child_ok(pid_t pid);

/* Wait up to 20 s for child pid, which must die of SIGKILL. */
void test_expect_child_killed(pid_t pid);

/* ---- memory ----------------------------------------------------------- */

/* n bytes of anonymous MAP_SHARED memory (zeroed), shared with children
 * forked after the call. */
void *test_map_shared(size_t n);

/* 1 if each of the n bytes at p is v, else 0. */
int test_all_bytes(const void *p, size_t n, unsigned char v);

/* ---- numbers ---------------------------------------------------------- */

/* Stress loop count: test_scaled(n), after a division by 4 when built
 * with ThreadSanitizer or AddressSanitizer. */
long test_scaled_stress(long n);

/* Next number of the xorshift64 generator with state *s (seed it with a
 * nonzero value). */
uint64_t test_xorshift(uint64_t *s);

/* ---- polling ---------------------------------------------------------- */

/* Poll `cond` every 200 us until true, failing the test after `ms`
 * milliseconds. */
#define WAIT_UNTIL(cond, ms)                                                \
    do {                                                                    \
        int64_t wu_end_ = test_now_ms() + (ms);                             \
        while (!(cond)) {                                                   \
            if (test_now_ms() > wu_end_)                                    \
                test_fail(__FILE__, __LINE__, "timed out waiting for %s",   \
                          #cond);                                           \
            usleep(200);                                                    \
        }                                                                   \
    } while (0)

/* ---- signal storm ----------------------------------------------------- */

/* SIGALRMs handled so far (the handler of test_sigalrm_every counts
 * them); a test resets it to 0 before its storm. */
extern atomic_int test_sigalrm_count;

/* SIGALRM every period_us microseconds (0: stop the timer; at most
 * 999999), with a
 * counting handler installed without SA_RESTART, so every blocking
 * system call of the thread that receives one returns EINTR. Helper
 * threads call test_block_sigalrm() first so the signals land on the
 * waiting (main) thread. */
void test_sigalrm_every(long period_us);

/* Block SIGALRM in the calling thread. */
void test_block_sigalrm(void);

/* Time a call that must return -ETIMEDOUT, and no earlier than `ms`
 * milliseconds after it began (despite any signals). */
#define CHECK_TIMES_OUT(call, ms)                                          \
    do {                                                                   \
        int64_t ct_t0_ = mproc_now_ns();                                   \
        int ct_rc_ = (call);                                               \
        int64_t ct_dt_ = mproc_now_ns() - ct_t0_;                          \
        CHECK_MSG(ct_rc_ == -ETIMEDOUT, "%s returned %d (%s) after %lld ns", #call, \
                  ct_rc_, mproc_errname(ct_rc_), (long long)ct_dt_);       \
        CHECK_MSG(ct_dt_ >= (int64_t)(ms) * 1000000, "%s timed out after %lld ns", \
                  #call, (long long)ct_dt_);                               \
    } while (0)

#endif /* MPROC_TEST_HELPERS_H */
