/*
 * tests/helpers.c -- helpers shared by the test suites. See helpers.h.
 */
#include "helpers.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>

/* Start a pthread running fn(arg). */
pthread_t test_start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, fn, arg), 0);
    return t;
}

/* Join a pthread, ignoring its result. */
void test_join_thread(pthread_t t)
{
    CHECK_EQ(pthread_join(t, NULL), 0);
}

/* Run fn(arg) on a fresh thread and wait for it. */
void test_on_other_thread(void *(*fn)(void *), void *arg)
{
    test_join_thread(test_start_thread(fn, arg));
}

/* Child pid must exit with status 0 within 60 s. */
void test_expect_child_ok(pid_t pid)
{
    int st = test_wait(pid, 60000);
    CHECK_MSG(st != -1, "child %d did not exit in time", (int)pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child %d failed (status 0x%x)", (int)pid, st);
}

/* Child pid must die of SIGKILL within 20 s. */
void test_expect_child_killed(pid_t pid)
{
    int st = test_wait(pid, 20000);
    CHECK_MSG(st != -1, "child %d did not die", (int)pid);
    CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child %d: status 0x%x",
              (int)pid, st);
}

/* Anonymous shared memory, inherited by children. */
void *test_map_shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

/* 1 if each of the n bytes at p is v. */
int test_all_bytes(const void *p, size_t n, unsigned char v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != v)
            return 0;
    return 1;
}

/* test_scaled, divided by 4 more under sanitizers. */
long test_scaled_stress(long n)
{
    /* This file is built with the same sanitizer flags as the suites. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    n /= 4;
#endif
    return test_scaled(n);
}

/* One xorshift64 step. */
uint64_t test_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* SIGALRMs counted by on_sigalrm. */
atomic_int test_sigalrm_count;

/* The SIGALRM handler of test_sigalrm_every: count the signal. */
static void on_sigalrm(int sig)
{
    (void)sig;
    atomic_fetch_add(&test_sigalrm_count, 1);
}

/* Install the counting handler (no SA_RESTART) and arm the timer. */
void test_sigalrm_every(long period_us)
{
    if (period_us) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigalrm; /* no SA_RESTART */
        sigemptyset(&sa.sa_mask);
        CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
    }
    struct itimerval it = { { 0, period_us }, { 0, period_us } };
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
}

/* Block SIGALRM in this thread. */
void test_block_sigalrm(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}
