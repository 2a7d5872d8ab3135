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
#include <unistd.h>

#include "mproc/sync.h"
#include "runner.h"
#include "helpers.h"

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
            t[i] = test_start_thread(event_waiter, w);
        WAIT_UNTIL(atomic_load(&w->started) == EW, 10000);
        mproc_sleep_ms(30); /* let them block (coverage only) */
        CHECK_EQ(atomic_load(&w->woke), 0);
        CHECK_OK(mproc_event_set(&w->ev));
        WAIT_UNTIL(atomic_load(&w->woke) == EW, 20000);
        for (int i = 0; i < EW; i++)
            test_join_thread(t[i]);
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
            t[i] = test_start_thread(event_waiter, w);
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
            test_join_thread(t[i]);
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
        test_expect_child_ok(pid[i]);
}

TEST(event_set_wakes_all_processes)
{
    struct xev *x = mproc_shared_calloc(sizeof *x);
    CHECK(x != NULL);
    xev_run(x);
    CHECK_OK(mproc_shared_free(x));
    struct xev *y = test_map_shared(sizeof *y);
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
    p->rounds = test_scaled_stress(20000);
    pthread_t t = test_start_thread(epp_thread, p);
    CHECK_OK(mproc_event_set(&p->a));
    epp_side(p, &p->a, &p->b, 0);
    test_join_thread(t);
    CHECK_EQ(p->ball, 2 * p->rounds);
    free(p);
}

TEST_T(event_ping_pong_processes, 60)
{
    struct epp *p = mproc_shared_calloc(sizeof *p);
    CHECK(p != NULL);
    CHECK_OK(mproc_event_init(&p->a, MPROC_SHARED));
    CHECK_OK(mproc_event_init(&p->b, MPROC_SHARED));
    p->rounds = test_scaled_stress(20000);
    pid_t pid = test_fork(epp_proc, p);
    CHECK_OK(mproc_event_set(&p->a));
    epp_side(p, &p->a, &p->b, 0);
    test_expect_child_ok(pid);
    CHECK_EQ(p->ball, 2 * p->rounds);
    CHECK_OK(mproc_shared_free(p));
}

/* ------------------------------------------------------------------ */
/* waits are not interrupted by signals                                */
/* ------------------------------------------------------------------ */

static void *sig_setter(void *arg)
{
    test_block_sigalrm();
    mproc_sleep_ms(100);
    CHECK_OK(mproc_event_set(arg));
    return NULL;
}

TEST(event_waits_not_interrupted_by_signals)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_event e;
        CHECK_OK(mproc_event_init(&e, flags));
        atomic_store(&test_sigalrm_count, 0);
        test_sigalrm_every(1000);
        CHECK_TIMES_OUT(mproc_event_wait(&e, 150), 150);
        pthread_t t = test_start_thread(sig_setter, &e);
        CHECK_OK(mproc_event_wait(&e, -1));
        test_sigalrm_every(0);
        test_join_thread(t);
        CHECK_MSG(atomic_load(&test_sigalrm_count) >= 20, "only %d signals",
                  atomic_load(&test_sigalrm_count));
        CHECK_OK(mproc_event_destroy(&e));
    }
}
