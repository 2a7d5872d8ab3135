/*
 * tests/test_event.c -- mproc_event: set / clear / is_set, waits that
 * return at once or time out (lower bound), set waking every waiter
 * thread and process, ping-pong without lost wake-ups, errors.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads).
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc/sync.h"
#include "runner.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static void *map_shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED);
    return p;
}

static pthread_t start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    CHECK_EQ(pthread_create(&t, NULL, fn, arg), 0);
    return t;
}

static void join_thread(pthread_t t)
{
    CHECK_EQ(pthread_join(t, NULL), 0);
}

static void expect_child_ok(pid_t pid)
{
    int st = test_wait(pid, 60000);
    CHECK_MSG(st != -1, "child %d did not exit in time", (int)pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child %d failed (status 0x%x)", (int)pid, st);
}

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

static long scaled(long n)
{
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
    n /= 4;
#endif
    return test_scaled(n);
}

/* ------------------------------------------------------------------ */
/* basics                                                              */
/* ------------------------------------------------------------------ */

TEST(event_set_clear_is_set)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_event e;
        memset(&e, 0xa5, sizeof e);
        CHECK_OK(mproc_event_init(&e, flags));
        CHECK_EQ(mproc_event_is_set(&e), 0);
        CHECK_OK(mproc_event_clear(&e));
        CHECK_EQ(mproc_event_is_set(&e), 0);
        CHECK_OK(mproc_event_set(&e));
        CHECK_EQ(mproc_event_is_set(&e), 1);
        CHECK_OK(mproc_event_set(&e)); /* idempotent */
        CHECK_EQ(mproc_event_is_set(&e), 1);
        /* Set: every wait returns at once, and the flag stays set. */
        int64_t t0 = mproc_now_ns();
        CHECK_OK(mproc_event_wait(&e, 0));
        CHECK_OK(mproc_event_wait(&e, -1));
        CHECK_OK(mproc_event_wait(&e, 10000));
        CHECK_OK(mproc_event_wait(&e, INT64_MAX));
        CHECK(mproc_now_ns() - t0 < 1000 * 1000000LL);
        CHECK_EQ(mproc_event_is_set(&e), 1);
        CHECK_OK(mproc_event_clear(&e));
        CHECK_EQ(mproc_event_is_set(&e), 0);
        CHECK_OK(mproc_event_clear(&e));
        CHECK_EQ(mproc_event_is_set(&e), 0);
        CHECK_RC(mproc_event_wait(&e, 0), -ETIMEDOUT);
        CHECK_OK(mproc_event_destroy(&e));
    }
}

TEST(event_wait_timeout_lower_bound)
{
    static const int64_t tmo[] = { 0, 1, 30, 150 };
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_event e;
        CHECK_OK(mproc_event_init(&e, flags));
        for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
            int64_t t0 = mproc_now_ns();
            CHECK_RC(mproc_event_wait(&e, tmo[i]), -ETIMEDOUT);
            int64_t dt = mproc_now_ns() - t0;
            CHECK_MSG(dt >= tmo[i] * 1000000, "wait(%lld) gave up after %lld ns",
                      (long long)tmo[i], (long long)dt);
        }
        CHECK_EQ(mproc_event_is_set(&e), 0);
        CHECK_OK(mproc_event_destroy(&e));
    }
}

TEST(event_invalid)
{
    mproc_event e;
    CHECK_RC(mproc_event_init(NULL, 0), -EINVAL);
    CHECK_RC(mproc_event_init(&e, 0x20), -EINVAL);
    CHECK_RC(mproc_event_init(&e, ~0u), -EINVAL);
    for (int fill = 0; fill < 3; fill++) {
        if (fill < 2) {
            memset(&e, fill ? 0xa5 : 0, sizeof e);
        } else {
            CHECK_OK(mproc_event_init(&e, 0));
            CHECK_OK(mproc_event_set(&e));
            CHECK_OK(mproc_event_destroy(&e));
        }
        CHECK_RC(mproc_event_set(&e), -EINVAL);
        CHECK_RC(mproc_event_clear(&e), -EINVAL);
        CHECK_RC(mproc_event_is_set(&e), -EINVAL);
        CHECK_RC(mproc_event_wait(&e, 0), -EINVAL);
        CHECK_RC(mproc_event_wait(&e, -1), -EINVAL);
        CHECK_RC(mproc_event_destroy(&e), -EINVAL);
    }
    CHECK_RC(mproc_event_set(NULL), -EINVAL);
    CHECK_RC(mproc_event_clear(NULL), -EINVAL);
    CHECK_RC(mproc_event_is_set(NULL), -EINVAL);
    CHECK_RC(mproc_event_wait(NULL, 0), -EINVAL);
    CHECK_RC(mproc_event_destroy(NULL), -EINVAL);

    CHECK_OK(mproc_event_init(&e, 0));
    CHECK_RC(mproc_event_wait(&e, -2), -EINVAL);
    CHECK_RC(mproc_event_wait(&e, INT64_MIN), -EINVAL);
    CHECK_OK(mproc_event_set(&e));
    CHECK_RC(mproc_event_wait(&e, -2), -EINVAL);
    CHECK_OK(mproc_event_destroy(&e));
}

/* ------------------------------------------------------------------ */
/* set wakes every waiter                                              */
/* ------------------------------------------------------------------ */

enum { EW = 6 };

struct ewait {
    mproc_event ev;
    int64_t timeout_ms;
    atomic_int tids[EW];
    atomic_int started;
    atomic_int woke;
    atomic_int bad_rc;
};

static void *event_waiter(void *arg)
{
    struct ewait *w = arg;
    atomic_store(&w->tids[atomic_fetch_add(&w->started, 1)], gettid());
    int rc = mproc_event_wait(&w->ev, w->timeout_ms);
    if (rc != 0)
        atomic_store(&w->bad_rc, rc);
    atomic_fetch_add(&w->woke, 1);
    return NULL;
}

static void set_wakes_all_threads(unsigned flags, int64_t timeout_ms)
{
    struct ewait *w = calloc(1, sizeof *w);
    CHECK(w != NULL);
    w->timeout_ms = timeout_ms;
    CHECK_OK(mproc_event_init(&w->ev, flags));
    for (int round = 0; round < 3; round++) {
        atomic_store(&w->started, 0);
        atomic_store(&w->woke, 0);
        for (int i = 0; i < EW; i++)
            atomic_store(&w->tids[i], 0);
        pthread_t t[EW];
        for (int i = 0; i < EW; i++)
            t[i] = start_thread(event_waiter, w);
        WAIT_UNTIL(atomic_load(&w->started) == EW, 10000);
        mproc_sleep_ms(30); /* let them block (coverage only) */
        CHECK_EQ(atomic_load(&w->woke), 0);
        CHECK_OK(mproc_event_set(&w->ev));
        WAIT_UNTIL(atomic_load(&w->woke) == EW, 20000);
        for (int i = 0; i < EW; i++)
            join_thread(t[i]);
        CHECK_OK(atomic_load(&w->bad_rc));
        CHECK_EQ(mproc_event_is_set(&w->ev), 1);
        CHECK_OK(mproc_event_clear(&w->ev));
    }
    CHECK_OK(mproc_event_destroy(&w->ev));
    free(w);
}

TEST(event_set_wakes_all_threads)
{
    set_wakes_all_threads(0, -1);
    set_wakes_all_threads(MPROC_SHARED, 30000);
    set_wakes_all_threads(0, INT64_MAX);
}

/* Python's Event: threads waiting when set() is called are released even
 * if clear() follows at once ("set the flag and wake every waiter"). */
TEST(event_set_then_clear_releases_waiters)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        struct ewait *w = calloc(1, sizeof *w);
        CHECK(w != NULL);
        w->timeout_ms = 30000;
        CHECK_OK(mproc_event_init(&w->ev, flags));
        pthread_t t[EW];
        for (int i = 0; i < EW; i++)
            t[i] = start_thread(event_waiter, w);
        WAIT_UNTIL(atomic_load(&w->started) == EW, 10000);
        /* They must be inside wait for this test. */
        for (int i = 0; i < EW; i++) {
            WAIT_UNTIL(atomic_load(&w->tids[i]) != 0, 10000);
            test_wait_sleeping(atomic_load(&w->tids[i]), 10000);
        }
        CHECK_OK(mproc_event_set(&w->ev));
        CHECK_OK(mproc_event_clear(&w->ev));
        WAIT_UNTIL(atomic_load(&w->woke) == EW, 20000);
        for (int i = 0; i < EW; i++)
            join_thread(t[i]);
        CHECK_MSG(atomic_load(&w->bad_rc) == 0, "a waiter got %d (%s)",
                  atomic_load(&w->bad_rc), mproc_errname(atomic_load(&w->bad_rc)));
        CHECK_OK(mproc_event_destroy(&w->ev));
        free(w);
    }
}

/* Children wait on a shared event; one set releases all of them. */
struct xev {
    mproc_event go;
    mproc_event ready[4];
};

static int g_child;

static int xev_child(void *arg)
{
    struct xev *x = arg;
    CHECK_OK(mproc_event_set(&x->ready[g_child]));
    CHECK_OK(mproc_event_wait(&x->go, 30000));
    CHECK_EQ(mproc_event_is_set(&x->go), 1);
    return 0;
}

static void xev_run(struct xev *x)
{
    CHECK_OK(mproc_event_init(&x->go, MPROC_SHARED));
    for (int i = 0; i < 4; i++)
        CHECK_OK(mproc_event_init(&x->ready[i], MPROC_SHARED));
    pid_t pid[4];
    for (int i = 0; i < 4; i++) {
        g_child = i;
        pid[i] = test_fork(xev_child, x);
    }
    for (int i = 0; i < 4; i++)
        CHECK_OK(mproc_event_wait(&x->ready[i], 30000));
    mproc_sleep_ms(30); /* let them block (coverage only) */
    CHECK_OK(mproc_event_set(&x->go));
    for (int i = 0; i < 4; i++)
        expect_child_ok(pid[i]);
}

TEST(event_set_wakes_all_processes)
{
    struct xev *x = mproc_shared_calloc(sizeof *x);
    CHECK(x != NULL);
    xev_run(x);
    CHECK_OK(mproc_shared_free(x));
    struct xev *y = map_shared(sizeof *y);
    xev_run(y);
}

/* ------------------------------------------------------------------ */
/* ping-pong: no lost wake-ups                                         */
/* ------------------------------------------------------------------ */

struct epp {
    mproc_event a, b;
    long rounds;
    long ball;
};

static void epp_side(struct epp *p, mproc_event *mine, mproc_event *theirs, long parity)
{
    for (long i = 0; i < p->rounds; i++) {
        int rc = mproc_event_wait(mine, 30000);
        CHECK_MSG(rc == 0, "round %ld: wait returned %d (%s)", i, rc, mproc_errname(rc));
        CHECK_OK(mproc_event_clear(mine));
        CHECK_EQ(p->ball, 2 * i + parity);
        p->ball++;
        CHECK_OK(mproc_event_set(theirs));
    }
}

static void *epp_thread(void *arg)
{
    struct epp *p = arg;
    epp_side(p, &p->b, &p->a, 1);
    return NULL;
}

static int epp_proc(void *arg)
{
    struct epp *p = arg;
    epp_side(p, &p->b, &p->a, 1);
    return 0;
}

TEST_T(event_ping_pong_threads, 60)
{
    struct epp *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    CHECK_OK(mproc_event_init(&p->a, 0));
    CHECK_OK(mproc_event_init(&p->b, 0));
    p->rounds = scaled(20000);
    pthread_t t = start_thread(epp_thread, p);
    CHECK_OK(mproc_event_set(&p->a));
    epp_side(p, &p->a, &p->b, 0);
    join_thread(t);
    CHECK_EQ(p->ball, 2 * p->rounds);
    free(p);
}

TEST_T(event_ping_pong_processes, 60)
{
    struct epp *p = mproc_shared_calloc(sizeof *p);
    CHECK(p != NULL);
    CHECK_OK(mproc_event_init(&p->a, MPROC_SHARED));
    CHECK_OK(mproc_event_init(&p->b, MPROC_SHARED));
    p->rounds = scaled(20000);
    pid_t pid = test_fork(epp_proc, p);
    CHECK_OK(mproc_event_set(&p->a));
    epp_side(p, &p->a, &p->b, 0);
    expect_child_ok(pid);
    CHECK_EQ(p->ball, 2 * p->rounds);
    CHECK_OK(mproc_shared_free(p));
}

/* ------------------------------------------------------------------ */
/* waits are not interrupted by signals                                */
/* ------------------------------------------------------------------ */

static atomic_int g_sigs;

static void on_sigalrm(int sig)
{
    (void)sig;
    atomic_fetch_add(&g_sigs, 1);
}

/* SIGALRM every millisecond, with a handler installed without
 * SA_RESTART, so every blocking system call of the thread that receives
 * it returns EINTR. Helper threads call block_sigalrm() first so the
 * signals land on the waiting (main) thread. */
static void signal_storm(int on)
{
    if (on) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_sigalrm;
        sigemptyset(&sa.sa_mask);
        CHECK_EQ(sigaction(SIGALRM, &sa, NULL), 0);
    }
    struct itimerval it = { { 0, on ? 1000 : 0 }, { 0, on ? 1000 : 0 } };
    CHECK_EQ(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void block_sigalrm(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    CHECK_EQ(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
}

/* Time a call that must time out after `ms` despite the signals. */
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

static void *sig_setter(void *arg)
{
    block_sigalrm();
    mproc_sleep_ms(100);
    CHECK_OK(mproc_event_set(arg));
    return NULL;
}

TEST(event_waits_not_interrupted_by_signals)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_event e;
        CHECK_OK(mproc_event_init(&e, flags));
        atomic_store(&g_sigs, 0);
        signal_storm(1);
        CHECK_TIMES_OUT(mproc_event_wait(&e, 150), 150);
        pthread_t t = start_thread(sig_setter, &e);
        CHECK_OK(mproc_event_wait(&e, -1));
        signal_storm(0);
        join_thread(t);
        CHECK_MSG(atomic_load(&g_sigs) >= 20, "only %d signals", atomic_load(&g_sigs));
        CHECK_OK(mproc_event_destroy(&e));
    }
}
