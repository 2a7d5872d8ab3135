/*
 * tests/test_barrier.c -- mproc_barrier: cycles whose indices are exactly
 * {0..N-1}, arrival order, abort / reset / timeout breaking it, the
 * snapshots, errors, and a barrier shared between processes.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads).
 */
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
/* cycles                                                              */
/* ------------------------------------------------------------------ */

enum { MAXP = 8, MAXROUNDS = 4000 };

struct cyc {
    mproc_barrier b;
    int parties;
    long rounds;
    atomic_int next_id;
    atomic_int arrived[MAXROUNDS];
    signed char idx[MAXROUNDS][MAXP]; /* written by party p only */
};

static void cyc_party(struct cyc *c, int me)
{
    for (long r = 0; r < c->rounds; r++) {
        atomic_fetch_add(&c->arrived[r], 1);
        int rc = mproc_barrier_wait(&c->b, 30000);
        CHECK_MSG(rc >= 0 && rc < c->parties, "round %ld: wait returned %d (%s)", r, rc,
                  mproc_errname(rc));
        /* Nobody passes before everyone arrived. */
        CHECK_EQ(atomic_load(&c->arrived[r]), c->parties);
        c->idx[r][me] = (signed char)rc;
    }
}

static void *cyc_thread(void *arg)
{
    struct cyc *c = arg;
    cyc_party(c, atomic_fetch_add(&c->next_id, 1));
    return NULL;
}

static int cyc_proc(void *arg)
{
    struct cyc *c = arg;
    cyc_party(c, atomic_fetch_add(&c->next_id, 1));
    return 0;
}

static void check_rounds(struct cyc *c)
{
    for (long r = 0; r < c->rounds; r++) {
        unsigned seen = 0;
        for (int p = 0; p < c->parties; p++) {
            int i = c->idx[r][p];
            CHECK_MSG(i >= 0 && i < c->parties && !(seen & (1u << i)),
                      "round %ld: index %d repeated or out of range", r, i);
            seen |= 1u << i;
        }
        CHECK_EQ(seen, (1u << c->parties) - 1);
    }
}

TEST_T(barrier_cycles_threads, 60)
{
    static const int parties[] = { 2, 3, 5 };
    for (size_t k = 0; k < sizeof parties / sizeof parties[0]; k++) {
        for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
            struct cyc *c = calloc(1, sizeof *c);
            CHECK(c != NULL);
            c->parties = parties[k];
            c->rounds = test_scaled_stress(MAXROUNDS / 2);
            CHECK_OK(mproc_barrier_init(&c->b, (unsigned)c->parties, flags));
            CHECK_EQ(mproc_barrier_parties(&c->b), c->parties);
            pthread_t t[MAXP];
            for (int i = 0; i < c->parties; i++)
                t[i] = test_start_thread(cyc_thread, c);
            for (int i = 0; i < c->parties; i++)
                test_join_thread(t[i]);
            check_rounds(c);
            CHECK_EQ(mproc_barrier_n_waiting(&c->b), 0);
            CHECK_EQ(mproc_barrier_broken(&c->b), 0);
            CHECK_OK(mproc_barrier_destroy(&c->b));
            free(c);
        }
    }
}

TEST_T(barrier_cycles_processes, 60)
{
    for (int own_map = 0; own_map < 2; own_map++) {
        struct cyc *c = own_map ? test_map_shared(sizeof *c) : mproc_shared_calloc(sizeof *c);
        CHECK(c != NULL);
        c->parties = 4;
        c->rounds = test_scaled_stress(1000);
        CHECK_OK(mproc_barrier_init(&c->b, (unsigned)c->parties, MPROC_SHARED));
        pid_t pid[MAXP];
        for (int i = 1; i < c->parties; i++)
            pid[i] = test_fork(cyc_proc, c);
        cyc_proc(c);
        for (int i = 1; i < c->parties; i++)
            test_expect_child_ok(pid[i]);
        check_rounds(c);
        CHECK_EQ(mproc_barrier_broken(&c->b), 0);
        CHECK_EQ(mproc_barrier_n_waiting(&c->b), 0);
        CHECK_OK(mproc_barrier_destroy(&c->b));
        if (!own_map)
            CHECK_OK(mproc_shared_free(c));
    }
}

TEST(barrier_one_party)
{
    mproc_barrier b;
    CHECK_OK(mproc_barrier_init(&b, 1, 0));
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(mproc_barrier_wait(&b, 0), 0);
        CHECK_EQ(mproc_barrier_wait(&b, -1), 0);
    }
    CHECK_EQ(mproc_barrier_parties(&b), 1);
    CHECK_EQ(mproc_barrier_n_waiting(&b), 0);
    CHECK_OK(mproc_barrier_destroy(&b));
}

/* ------------------------------------------------------------------ */
/* arrival order, snapshots                                            */
/* ------------------------------------------------------------------ */

struct party {
    mproc_barrier *b;
    int64_t timeout_ms;
    int rc;
    int64_t elapsed_ns;
    atomic_int done;
};

static void *party_thread(void *arg)
{
    struct party *p = arg;
    int64_t t0 = mproc_now_ns();
    p->rc = mproc_barrier_wait(p->b, p->timeout_ms);
    p->elapsed_ns = mproc_now_ns() - t0;
    atomic_store(&p->done, 1);
    return NULL;
}

TEST(barrier_arrival_order_and_snapshots)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_barrier b;
        CHECK_OK(mproc_barrier_init(&b, 4, flags));
        for (int round = 0; round < 3; round++) {
            struct party p[3];
            pthread_t t[3];
            CHECK_EQ(mproc_barrier_n_waiting(&b), 0);
            for (int i = 0; i < 3; i++) {
                memset(&p[i], 0, sizeof p[i]);
                p[i].b = &b;
                p[i].timeout_ms = 30000;
                t[i] = test_start_thread(party_thread, &p[i]);
                WAIT_UNTIL(mproc_barrier_n_waiting(&b) == i + 1, 10000);
            }
            CHECK_EQ(mproc_barrier_broken(&b), 0);
            CHECK_EQ(mproc_barrier_parties(&b), 4);
            for (int i = 0; i < 3; i++)
                CHECK_EQ(atomic_load(&p[i].done), 0);
            /* Last to arrive gets parties-1; the others their arrival order. */
            CHECK_EQ(mproc_barrier_wait(&b, 30000), 3);
            for (int i = 0; i < 3; i++) {
                test_join_thread(t[i]);
                CHECK_EQ(p[i].rc, i);
            }
            CHECK_EQ(mproc_barrier_n_waiting(&b), 0);
        }
        CHECK_OK(mproc_barrier_destroy(&b));
    }
}

/* ------------------------------------------------------------------ */
/* breaking: abort, reset, timeout                                     */
/* ------------------------------------------------------------------ */

/* Start k parties and return once all k are counted as waiting. */
static void start_waiters(mproc_barrier *b, struct party *p, pthread_t *t, int k,
                          int64_t timeout_ms)
{
    int base = mproc_barrier_n_waiting(b);
    for (int i = 0; i < k; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].b = b;
        p[i].timeout_ms = timeout_ms;
        t[i] = test_start_thread(party_thread, &p[i]);
        WAIT_UNTIL(mproc_barrier_n_waiting(b) == base + i + 1, 10000);
    }
}

/* After a break and a reset, a full round works. */
static void full_round(mproc_barrier *b, int parties)
{
    struct party p[MAXP];
    pthread_t t[MAXP];
    start_waiters(b, p, t, parties - 1, 30000);
    CHECK_EQ(mproc_barrier_wait(b, 30000), parties - 1);
    for (int i = 0; i < parties - 1; i++) {
        test_join_thread(t[i]);
        CHECK_EQ(p[i].rc, i);
    }
    CHECK_EQ(mproc_barrier_broken(b), 0);
}

TEST(barrier_abort)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_barrier b;
        struct party p[2];
        pthread_t t[2];
        CHECK_OK(mproc_barrier_init(&b, 3, flags));
        start_waiters(&b, p, t, 2, -1);
        CHECK_OK(mproc_barrier_abort(&b));
        for (int i = 0; i < 2; i++) {
            test_join_thread(t[i]);
            CHECK_RC(p[i].rc, -EPIPE);
        }
        CHECK_EQ(mproc_barrier_broken(&b), 1);
        /* Stays broken: later waits fail at once, whatever the timeout. */
        int64_t t0 = mproc_now_ns();
        CHECK_RC(mproc_barrier_wait(&b, -1), -EPIPE);
        CHECK_RC(mproc_barrier_wait(&b, 0), -EPIPE);
        CHECK_RC(mproc_barrier_wait(&b, 5000), -EPIPE);
        CHECK(mproc_now_ns() - t0 < 1000 * 1000000LL);
        CHECK_OK(mproc_barrier_abort(&b));
        CHECK_EQ(mproc_barrier_broken(&b), 1);
        CHECK_OK(mproc_barrier_reset(&b));
        CHECK_EQ(mproc_barrier_broken(&b), 0);
        CHECK_EQ(mproc_barrier_n_waiting(&b), 0);
        full_round(&b, 3);
        full_round(&b, 3);

        /* Abort with nobody waiting also breaks it. */
        CHECK_OK(mproc_barrier_abort(&b));
        CHECK_RC(mproc_barrier_wait(&b, -1), -EPIPE);
        CHECK_OK(mproc_barrier_reset(&b));
        full_round(&b, 3);
        CHECK_OK(mproc_barrier_destroy(&b));
    }
}

TEST(barrier_reset_while_waiting)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_barrier b;
        struct party p[2];
        pthread_t t[2];
        CHECK_OK(mproc_barrier_init(&b, 3, flags));
        start_waiters(&b, p, t, 1, -1);
        CHECK_OK(mproc_barrier_reset(&b));
        test_join_thread(t[0]);
        CHECK_RC(p[0].rc, -EPIPE);
        CHECK_EQ(mproc_barrier_broken(&b), 0);
        CHECK_EQ(mproc_barrier_n_waiting(&b), 0);
        full_round(&b, 3);

        start_waiters(&b, p, t, 2, 30000);
        CHECK_OK(mproc_barrier_reset(&b));
        for (int i = 0; i < 2; i++) {
            test_join_thread(t[i]);
            CHECK_RC(p[i].rc, -EPIPE);
        }
        full_round(&b, 3);
        full_round(&b, 3);
        /* Reset of an idle barrier is harmless. */
        CHECK_OK(mproc_barrier_reset(&b));
        full_round(&b, 3);
        CHECK_OK(mproc_barrier_destroy(&b));
    }
}

TEST(barrier_timeout_breaks)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_barrier b;
        struct party p[1];
        pthread_t t[1];
        CHECK_OK(mproc_barrier_init(&b, 3, flags));
        start_waiters(&b, p, t, 1, 30000);
        int64_t t0 = mproc_now_ns();
        CHECK_RC(mproc_barrier_wait(&b, 150), -ETIMEDOUT);
        CHECK(mproc_now_ns() - t0 >= 150 * 1000000LL);
        test_join_thread(t[0]);
        CHECK_RC(p[0].rc, -EPIPE);
        CHECK(p[0].elapsed_ns < 20000 * 1000000LL);
        CHECK_EQ(mproc_barrier_broken(&b), 1);
        CHECK_RC(mproc_barrier_wait(&b, 30000), -EPIPE);
        CHECK_OK(mproc_barrier_reset(&b));
        full_round(&b, 3);

        /* Timeout 0 with others missing: times out at once and breaks. */
        CHECK_RC(mproc_barrier_wait(&b, 0), -ETIMEDOUT);
        CHECK_EQ(mproc_barrier_broken(&b), 1);
        CHECK_OK(mproc_barrier_reset(&b));

        /* The party that times out is a thread; the main one gets -EPIPE. */
        start_waiters(&b, p, t, 1, 100);
        int rc = mproc_barrier_wait(&b, 30000);
        test_join_thread(t[0]);
        /* Whether we arrive before or after it times out, the barrier
         * breaks under us: -EPIPE. */
        CHECK_RC(rc, -EPIPE);
        CHECK_RC(p[0].rc, -ETIMEDOUT);
        CHECK(p[0].elapsed_ns >= 100 * 1000000LL);
        CHECK_OK(mproc_barrier_reset(&b));
        full_round(&b, 3);
        CHECK_OK(mproc_barrier_destroy(&b));
    }
}

/* Every waiter is told, not just one. */
TEST(barrier_abort_many_waiters)
{
    enum { K = 7 };
    mproc_barrier b;
    struct party p[K];
    pthread_t t[K];
    CHECK_OK(mproc_barrier_init(&b, K + 1, 0));
    start_waiters(&b, p, t, K, 30000);
    CHECK_RC(mproc_barrier_destroy(&b), -EBUSY);
    CHECK_OK(mproc_barrier_abort(&b));
    for (int i = 0; i < K; i++) {
        test_join_thread(t[i]);
        CHECK_RC(p[i].rc, -EPIPE);
    }
    CHECK_OK(mproc_barrier_reset(&b));
    full_round(&b, K + 1);
    CHECK_OK(mproc_barrier_destroy(&b));
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

TEST(barrier_invalid)
{
    mproc_barrier b;
    CHECK_RC(mproc_barrier_init(NULL, 2, 0), -EINVAL);
    CHECK_RC(mproc_barrier_init(&b, 0, 0), -EINVAL);
    CHECK_RC(mproc_barrier_init(&b, 2, 0x40), -EINVAL);
    for (int fill = 0; fill < 3; fill++) {
        if (fill < 2) {
            memset(&b, fill ? 0xa5 : 0, sizeof b);
        } else {
            CHECK_OK(mproc_barrier_init(&b, 2, 0));
            CHECK_OK(mproc_barrier_destroy(&b));
        }
        CHECK_RC(mproc_barrier_wait(&b, 0), -EINVAL);
        CHECK_RC(mproc_barrier_wait(&b, -1), -EINVAL);
        CHECK_RC(mproc_barrier_abort(&b), -EINVAL);
        CHECK_RC(mproc_barrier_reset(&b), -EINVAL);
        CHECK_RC(mproc_barrier_parties(&b), -EINVAL);
        CHECK_RC(mproc_barrier_n_waiting(&b), -EINVAL);
        CHECK_RC(mproc_barrier_broken(&b), -EINVAL);
        CHECK_RC(mproc_barrier_destroy(&b), -EINVAL);
    }
    CHECK_RC(mproc_barrier_wait(NULL, 0), -EINVAL);
    CHECK_RC(mproc_barrier_abort(NULL), -EINVAL);
    CHECK_RC(mproc_barrier_reset(NULL), -EINVAL);
    CHECK_RC(mproc_barrier_parties(NULL), -EINVAL);
    CHECK_RC(mproc_barrier_n_waiting(NULL), -EINVAL);
    CHECK_RC(mproc_barrier_broken(NULL), -EINVAL);
    CHECK_RC(mproc_barrier_destroy(NULL), -EINVAL);

    /* A bad timeout is refused before arriving: the barrier is neither
     * counted into nor broken. */
    CHECK_OK(mproc_barrier_init(&b, 2, 0));
    CHECK_RC(mproc_barrier_wait(&b, -2), -EINVAL);
    CHECK_RC(mproc_barrier_wait(&b, INT64_MIN), -EINVAL);
    CHECK_EQ(mproc_barrier_n_waiting(&b), 0);
    CHECK_EQ(mproc_barrier_broken(&b), 0);
    full_round(&b, 2);
    CHECK_OK(mproc_barrier_destroy(&b));
}

/* Between processes: a party in a child is released by abort in the
 * parent, and the parent times out against children that never come. */
static int abort_child(void *arg)
{
    mproc_barrier *b = arg;
    CHECK_RC(mproc_barrier_wait(b, 30000), -EPIPE);
    return 0;
}

TEST(barrier_abort_between_processes)
{
    mproc_barrier *b = mproc_shared_calloc(sizeof *b);
    CHECK(b != NULL);
    CHECK_OK(mproc_barrier_init(b, 4, MPROC_SHARED));
    pid_t pid[3];
    for (int i = 0; i < 3; i++)
        pid[i] = test_fork(abort_child, b);
    WAIT_UNTIL(mproc_barrier_n_waiting(b) == 3, 10000);
    CHECK_OK(mproc_barrier_abort(b));
    for (int i = 0; i < 3; i++)
        test_expect_child_ok(pid[i]);
    CHECK_EQ(mproc_barrier_broken(b), 1);
    CHECK_OK(mproc_barrier_reset(b));
    CHECK_EQ(mproc_barrier_broken(b), 0);
    CHECK_EQ(mproc_barrier_n_waiting(b), 0);
    CHECK_OK(mproc_barrier_destroy(b));
    CHECK_OK(mproc_shared_free(b));
}

/* ------------------------------------------------------------------ */
/* waits are not interrupted by signals                                */
/* ------------------------------------------------------------------ */

static int g_sig_party_rc;

static void *sig_party(void *arg)
{
    test_block_sigalrm();
    mproc_sleep_ms(100);
    g_sig_party_rc = mproc_barrier_wait(arg, 20000);
    return NULL;
}

TEST(barrier_waits_not_interrupted_by_signals)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_barrier b;
        CHECK_OK(mproc_barrier_init(&b, 2, flags));
        atomic_store(&test_sigalrm_count, 0);
        test_sigalrm_every(1000);
        CHECK_TIMES_OUT(mproc_barrier_wait(&b, 150), 150);
        CHECK_OK(mproc_barrier_reset(&b));
        pthread_t t = test_start_thread(sig_party, &b);
        int rc = mproc_barrier_wait(&b, -1);
        test_sigalrm_every(0);
        test_join_thread(t);
        CHECK_MSG((rc == 0 && g_sig_party_rc == 1) || (rc == 1 && g_sig_party_rc == 0),
                  "indices %d and %d", rc, g_sig_party_rc);
        CHECK_MSG(atomic_load(&test_sigalrm_count) >= 20, "only %d signals",
                  atomic_load(&test_sigalrm_count));
        CHECK_OK(mproc_barrier_destroy(&b));
    }
}
