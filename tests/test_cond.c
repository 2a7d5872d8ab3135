/*
 * tests/test_cond.c -- mproc_condition (bound to a lock, an rlock, or its
 * own rlock; between threads and between processes) and mproc_backoff.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads).
 */
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mproc/sync.h"
#include "runner.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* producer / consumer over a bounded buffer                           */
/* ------------------------------------------------------------------ */

enum { PC_CAP = 8, PC_PRODUCERS = 2, PC_CONSUMERS = 2 };

struct pc {
    mproc_lock lock;
    mproc_condition not_full, not_empty;
    long buf[PC_CAP];
    int head, count;      /* protected by lock */
    int producers_done;   /* protected by lock */
    long per_producer;
    atomic_int next_producer;
    atomic_uchar *seen;   /* seen[item] counts consumptions */
    atomic_long consumed;
};

static void *pc_producer(void *arg)
{
    struct pc *p = arg;
    int me = atomic_fetch_add(&p->next_producer, 1);
    for (long i = 0; i < p->per_producer; i++) {
        long item = me * p->per_producer + i;
        CHECK_OK(mproc_condition_acquire(&p->not_full, -1));
        while (p->count == PC_CAP)
            CHECK_OK(mproc_condition_wait(&p->not_full, -1));
        p->buf[(p->head + p->count) % PC_CAP] = item;
        p->count++;
        CHECK_OK(mproc_condition_notify(&p->not_empty, 1));
        CHECK_OK(mproc_condition_release(&p->not_full));
    }
    CHECK_OK(mproc_lock_acquire(&p->lock, -1));
    p->producers_done++;
    CHECK_OK(mproc_condition_notify_all(&p->not_empty));
    CHECK_OK(mproc_lock_release(&p->lock));
    return NULL;
}

static void *pc_consumer(void *arg)
{
    struct pc *p = arg;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&p->lock, -1));
        while (p->count == 0 && p->producers_done < PC_PRODUCERS)
            CHECK_OK(mproc_condition_wait(&p->not_empty, -1));
        if (p->count == 0) {
            CHECK_OK(mproc_lock_release(&p->lock));
            return NULL;
        }
        long item = p->buf[p->head];
        p->head = (p->head + 1) % PC_CAP;
        p->count--;
        CHECK_OK(mproc_condition_notify(&p->not_full, 1));
        CHECK_OK(mproc_lock_release(&p->lock));
        CHECK(item >= 0 && item < PC_PRODUCERS * p->per_producer);
        atomic_fetch_add(&p->seen[item], 1);
        atomic_fetch_add(&p->consumed, 1);
    }
}

TEST_T(cond_producer_consumer, 60)
{
    struct pc *p = calloc(1, sizeof *p);
    CHECK(p != NULL);
    p->per_producer = test_scaled_stress(50000);
    long total = PC_PRODUCERS * p->per_producer;
    p->seen = calloc((size_t)total, sizeof *p->seen);
    CHECK(p->seen != NULL);
    CHECK_OK(mproc_lock_init(&p->lock, 0));
    CHECK_OK(mproc_condition_init(&p->not_full, &p->lock, 0));
    CHECK_OK(mproc_condition_init(&p->not_empty, &p->lock, 0));
    pthread_t t[PC_PRODUCERS + PC_CONSUMERS];
    for (int i = 0; i < PC_CONSUMERS; i++)
        t[i] = test_start_thread(pc_consumer, p);
    for (int i = 0; i < PC_PRODUCERS; i++)
        t[PC_CONSUMERS + i] = test_start_thread(pc_producer, p);
    for (int i = 0; i < PC_PRODUCERS + PC_CONSUMERS; i++)
        test_join_thread(t[i]);
    CHECK_EQ(atomic_load(&p->consumed), total);
    for (long i = 0; i < total; i++)
        CHECK_MSG(atomic_load(&p->seen[i]) == 1, "item %ld consumed %d times", i,
                  (int)atomic_load(&p->seen[i]));
    CHECK_EQ(p->count, 0);
    CHECK_OK(mproc_condition_destroy(&p->not_full));
    CHECK_OK(mproc_condition_destroy(&p->not_empty));
    CHECK_OK(mproc_lock_destroy(&p->lock));
    free(p->seen);
    free(p);
}

/* ------------------------------------------------------------------ */
/* wait_for                                                            */
/* ------------------------------------------------------------------ */

struct wf {
    mproc_lock lock;
    mproc_condition cond;
    int value;            /* protected by lock */
    atomic_int pred_calls;
    atomic_int waiting;
};

static int wf_pred(void *arg)
{
    struct wf *w = arg;
    atomic_fetch_add(&w->pred_calls, 1);
    /* Evaluated with the lock held by the caller. */
    CHECK_RC(mproc_lock_try(&w->lock), -EDEADLK);
    return w->value >= 3;
}

static void *wf_setter(void *arg)
{
    struct wf *w = arg;
    WAIT_UNTIL(atomic_load(&w->waiting), 10000);
    for (int i = 0; i < 3; i++) {
        mproc_sleep_ms(10);
        CHECK_OK(mproc_lock_acquire(&w->lock, -1));
        w->value++;
        CHECK_OK(mproc_condition_notify_all(&w->cond));
        CHECK_OK(mproc_lock_release(&w->lock));
    }
    return NULL;
}

static void *try_expect_busy(void *arg)
{
    CHECK_RC(mproc_lock_try(arg), -EBUSY);
    return NULL;
}

TEST(cond_wait_for_predicate)
{
    struct wf w;
    memset(&w, 0, sizeof w);
    CHECK_OK(mproc_lock_init(&w.lock, 0));
    CHECK_OK(mproc_condition_init(&w.cond, &w.lock, 0));

    /* True at once: no waiting even with timeout 0. */
    w.value = 5;
    CHECK_OK(mproc_lock_acquire(&w.lock, -1));
    CHECK_OK(mproc_condition_wait_for(&w.cond, wf_pred, &w, 0));
    CHECK_EQ(atomic_load(&w.pred_calls), 1);

    /* Never true: -ETIMEDOUT after the deadline, lock held again. */
    w.value = 0;
    atomic_store(&w.pred_calls, 0);
    int64_t t0 = mproc_now_ns();
    CHECK_RC(mproc_condition_wait_for(&w.cond, wf_pred, &w, 120), -ETIMEDOUT);
    CHECK(mproc_now_ns() - t0 >= 120 * 1000000LL);
    CHECK(atomic_load(&w.pred_calls) >= 1);
    test_on_other_thread(try_expect_busy, &w.lock);
    CHECK_RC(mproc_condition_wait_for(&w.cond, wf_pred, &w, 0), -ETIMEDOUT);

    /* Becomes true after three notifications. */
    atomic_store(&w.waiting, 1);
    pthread_t t = test_start_thread(wf_setter, &w);
    CHECK_OK(mproc_condition_wait_for(&w.cond, wf_pred, &w, 20000));
    CHECK(w.value >= 3);
    test_on_other_thread(try_expect_busy, &w.lock);
    CHECK_OK(mproc_lock_release(&w.lock));
    test_join_thread(t);
    CHECK_OK(mproc_condition_destroy(&w.cond));
    CHECK_OK(mproc_lock_destroy(&w.lock));
}

/* ------------------------------------------------------------------ */
/* errors                                                              */
/* ------------------------------------------------------------------ */

static int true_pred(void *arg)
{
    (void)arg;
    return 1;
}

static mproc_lock *g_lock;
static mproc_condition *g_cond;

static void *other_thread_not_holder(void *arg)
{
    (void)arg;
    int64_t t0 = mproc_now_ns();
    CHECK_RC(mproc_condition_wait(g_cond, -1), -EPERM);
    CHECK_RC(mproc_condition_wait(g_cond, 100), -EPERM);
    CHECK(mproc_now_ns() - t0 < 100 * 1000000LL);
    CHECK_RC(mproc_condition_notify(g_cond, 1), -EPERM);
    CHECK_RC(mproc_condition_notify_all(g_cond), -EPERM);
    CHECK_RC(mproc_condition_release(g_cond), -EPERM);
    CHECK_RC(mproc_lock_try(g_lock), -EBUSY);
    return NULL;
}

TEST(cond_without_lock_eperm)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        mproc_condition c;
        g_lock = &l;
        g_cond = &c;
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_condition_init(&c, &l, flags));
        /* Nobody holds it. */
        int64_t t0 = mproc_now_ns();
        CHECK_RC(mproc_condition_wait(&c, -1), -EPERM);
        CHECK_RC(mproc_condition_wait(&c, 200), -EPERM);
        CHECK(mproc_now_ns() - t0 < 200 * 1000000LL);
        CHECK_RC(mproc_condition_wait_for(&c, true_pred, NULL, 0), -EPERM);
        CHECK_RC(mproc_condition_notify(&c, 1), -EPERM);
        CHECK_RC(mproc_condition_notify_all(&c), -EPERM);
        CHECK_RC(mproc_condition_release(&c), -EPERM);
        CHECK_EQ(mproc_lock_locked(&l), 0);
        /* Another thread holds it. */
        CHECK_OK(mproc_condition_acquire(&c, -1));
        CHECK_EQ(mproc_lock_locked(&l), 1);
        test_on_other_thread(other_thread_not_holder, NULL);
        /* notify with nobody waiting, and n = 0, are fine for the holder. */
        CHECK_OK(mproc_condition_notify(&c, 0));
        CHECK_OK(mproc_condition_notify(&c, 1));
        CHECK_OK(mproc_condition_notify(&c, UINT_MAX));
        CHECK_OK(mproc_condition_notify_all(&c));
        CHECK_OK(mproc_condition_release(&c));
        CHECK_EQ(mproc_lock_locked(&l), 0);
        CHECK_OK(mproc_condition_destroy(&c));
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

TEST(cond_invalid)
{
    mproc_lock l, shared_l, bad;
    mproc_rlock r;
    mproc_condition c;
    CHECK_OK(mproc_lock_init(&l, 0));
    CHECK_OK(mproc_lock_init(&shared_l, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&r, 0));
    memset(&bad, 0, sizeof bad);

    CHECK_RC(mproc_condition_init(NULL, &l, 0), -EINVAL);
    CHECK_RC(mproc_condition_init_rlock(NULL, &r, 0), -EINVAL);
    CHECK_RC(mproc_condition_init(&c, &bad, 0), -EINVAL);
    memset(&bad, 0xa5, sizeof bad);
    CHECK_RC(mproc_condition_init(&c, &bad, 0), -EINVAL);
    /* Flags must match the lock's MPROC_SHARED flag. */
    CHECK_RC(mproc_condition_init(&c, &l, MPROC_SHARED), -EINVAL);
    CHECK_RC(mproc_condition_init(&c, &shared_l, 0), -EINVAL);
    CHECK_RC(mproc_condition_init_rlock(&c, &r, MPROC_SHARED), -EINVAL);
    CHECK_RC(mproc_condition_init(&c, &l, 0x40), -EINVAL);

    /* Never initialised (zero and garbage), or destroyed. */
    for (int fill = 0; fill < 3; fill++) {
        if (fill < 2) {
            memset(&c, fill ? 0xa5 : 0, sizeof c);
        } else {
            CHECK_OK(mproc_condition_init(&c, &l, 0));
            CHECK_OK(mproc_condition_destroy(&c));
        }
        CHECK_RC(mproc_condition_acquire(&c, -1), -EINVAL);
        CHECK_RC(mproc_condition_release(&c), -EINVAL);
        CHECK_RC(mproc_condition_wait(&c, 0), -EINVAL);
        CHECK_RC(mproc_condition_wait_for(&c, true_pred, NULL, 0), -EINVAL);
        CHECK_RC(mproc_condition_notify(&c, 1), -EINVAL);
        CHECK_RC(mproc_condition_notify_all(&c), -EINVAL);
        CHECK_RC(mproc_condition_destroy(&c), -EINVAL);
    }
    CHECK_RC(mproc_condition_acquire(NULL, -1), -EINVAL);
    CHECK_RC(mproc_condition_release(NULL), -EINVAL);
    CHECK_RC(mproc_condition_wait(NULL, 0), -EINVAL);
    CHECK_RC(mproc_condition_wait_for(NULL, true_pred, NULL, 0), -EINVAL);
    CHECK_RC(mproc_condition_notify(NULL, 1), -EINVAL);
    CHECK_RC(mproc_condition_notify_all(NULL), -EINVAL);
    CHECK_RC(mproc_condition_destroy(NULL), -EINVAL);

    /* Bad timeouts, with the lock held: nothing happens, still held. */
    CHECK_OK(mproc_condition_init(&c, &l, 0));
    CHECK_OK(mproc_condition_acquire(&c, -1));
    CHECK_RC(mproc_condition_wait(&c, -2), -EINVAL);
    CHECK_RC(mproc_condition_wait(&c, INT64_MIN), -EINVAL);
    CHECK_RC(mproc_condition_wait_for(&c, true_pred, NULL, -5), -EINVAL);
    CHECK_RC(mproc_condition_wait_for(&c, NULL, NULL, 0), -EINVAL);
    CHECK_RC(mproc_lock_try(&l), -EDEADLK);
    CHECK_OK(mproc_condition_release(&c));
    CHECK_RC(mproc_condition_acquire(&c, -7), -EINVAL);
    CHECK_EQ(mproc_lock_locked(&l), 0);
    CHECK_OK(mproc_condition_destroy(&c));
    /* Destroying the condition leaves the lock alone. */
    CHECK_OK(mproc_lock_acquire(&l, 0));
    CHECK_OK(mproc_lock_release(&l));
    CHECK_OK(mproc_lock_destroy(&l));
    CHECK_OK(mproc_lock_destroy(&shared_l));
    CHECK_OK(mproc_rlock_destroy(&r));
}

/* ------------------------------------------------------------------ */
/* timeouts                                                            */
/* ------------------------------------------------------------------ */

TEST(cond_wait_timeout_reacquires)
{
    static const int64_t tmo[] = { 0, 1, 50, 150 };
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        mproc_lock l;
        mproc_condition c;
        CHECK_OK(mproc_lock_init(&l, flags));
        CHECK_OK(mproc_condition_init(&c, &l, flags));
        CHECK_OK(mproc_condition_acquire(&c, -1));
        for (size_t i = 0; i < sizeof tmo / sizeof tmo[0]; i++) {
            int64_t t0 = mproc_now_ns();
            int rc = mproc_condition_wait(&c, tmo[i]);
            int64_t dt = mproc_now_ns() - t0;
            /* A spurious wake-up may return 0 early; a timeout never. */
            CHECK_MSG(rc == -ETIMEDOUT || rc == 0, "wait returned %d", rc);
            if (rc == -ETIMEDOUT)
                CHECK_MSG(dt >= tmo[i] * 1000000, "wait(%lld) timed out after %lld ns",
                          (long long)tmo[i], (long long)dt);
            /* Held again, by us. */
            CHECK_RC(mproc_lock_try(&l), -EDEADLK);
            test_on_other_thread(try_expect_busy, &l);
        }
        CHECK_OK(mproc_condition_release(&c));
        CHECK_OK(mproc_condition_destroy(&c));
        CHECK_OK(mproc_lock_destroy(&l));
    }
}

/* ------------------------------------------------------------------ */
/* rlock held several levels deep                                      */
/* ------------------------------------------------------------------ */

struct rl_cond {
    mproc_rlock r;
    mproc_condition c;
    int ready;           /* protected by r */
    atomic_int holding;  /* waiter holds r 3 deep */
    atomic_int done;
    int wait_rc;
};

static void *rl_waiter(void *arg)
{
    struct rl_cond *s = arg;
    for (int i = 0; i < 3; i++)
        CHECK_OK(mproc_rlock_acquire(&s->r, -1));
    atomic_store(&s->holding, 1);
    while (!s->ready)
        CHECK_OK(mproc_condition_wait(&s->c, 20000));
    /* All three levels are back. */
    CHECK_EQ(mproc_rlock_is_owned(&s->r), 1);
    CHECK_OK(mproc_rlock_release(&s->r));
    CHECK_OK(mproc_rlock_release(&s->r));
    CHECK_EQ(mproc_rlock_is_owned(&s->r), 1);
    atomic_store(&s->done, 1);
    /* Still held one level: the main thread checks it cannot take it. */
    WAIT_UNTIL(atomic_load(&s->done) == 2, 10000);
    CHECK_OK(mproc_rlock_release(&s->r));
    CHECK_EQ(mproc_rlock_is_owned(&s->r), 0);
    CHECK_RC(mproc_rlock_release(&s->r), -EPERM);
    return NULL;
}

TEST(cond_rlock_three_levels)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        struct rl_cond *s = calloc(1, sizeof *s);
        CHECK(s != NULL);
        CHECK_OK(mproc_rlock_init(&s->r, flags));
        CHECK_OK(mproc_condition_init_rlock(&s->c, &s->r, flags));
        pthread_t t = test_start_thread(rl_waiter, s);
        WAIT_UNTIL(atomic_load(&s->holding), 10000);
        /* Only possible once wait has released all three levels. */
        CHECK_OK(mproc_rlock_acquire(&s->r, 20000));
        CHECK_OK(mproc_condition_acquire(&s->c, 0)); /* reentrant: depth 2 */
        s->ready = 1;
        CHECK_OK(mproc_condition_notify(&s->c, 1));
        CHECK_OK(mproc_condition_release(&s->c));
        CHECK_OK(mproc_rlock_release(&s->r));
        WAIT_UNTIL(atomic_load(&s->done) == 1, 20000);
        CHECK_RC(mproc_rlock_try(&s->r), -EBUSY);
        CHECK_RC(mproc_condition_acquire(&s->c, 0), -ETIMEDOUT);
        atomic_store(&s->done, 2);
        test_join_thread(t);
        CHECK_OK(mproc_rlock_acquire(&s->r, 0));
        CHECK_OK(mproc_rlock_release(&s->r));
        CHECK_OK(mproc_condition_destroy(&s->c));
        CHECK_OK(mproc_rlock_destroy(&s->r));
        free(s);
    }
}

/* A wait on an rlock-bound condition that times out also restores every
 * level. */
static void *rlock_try_busy(void *arg)
{
    CHECK_RC(mproc_rlock_try(arg), -EBUSY);
    return NULL;
}

TEST(cond_rlock_timeout_restores_levels)
{
    mproc_rlock r;
    mproc_condition c;
    CHECK_OK(mproc_rlock_init(&r, 0));
    CHECK_OK(mproc_condition_init_rlock(&c, &r, 0));
    for (int i = 0; i < 3; i++)
        CHECK_OK(mproc_rlock_acquire(&r, -1));
    int64_t t0 = mproc_now_ns();
    int rc = mproc_condition_wait(&c, 60);
    CHECK(rc == -ETIMEDOUT || rc == 0);
    if (rc == -ETIMEDOUT)
        CHECK(mproc_now_ns() - t0 >= 60 * 1000000LL);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(mproc_rlock_release(&r));
        test_on_other_thread(rlock_try_busy, &r);
    }
    CHECK_OK(mproc_rlock_release(&r));
    CHECK_EQ(mproc_rlock_is_owned(&r), 0);
    CHECK_RC(mproc_condition_wait(&c, 0), -EPERM);
    CHECK_OK(mproc_condition_destroy(&c));
    CHECK_OK(mproc_rlock_destroy(&r));
}

/* ------------------------------------------------------------------ */
/* notify(1) / notify(n) / notify_all                                  */
/* ------------------------------------------------------------------ */

enum { NW = 3 };

struct notif {
    mproc_lock lock;
    mproc_condition c;
    int waiting;           /* protected by lock: waiters inside wait */
    atomic_int woke;
    atomic_int bad_rc;
};

static void *notif_waiter(void *arg)
{
    struct notif *n = arg;
    CHECK_OK(mproc_lock_acquire(&n->lock, -1));
    n->waiting++;
    int rc = mproc_condition_wait(&n->c, 30000);
    if (rc != 0)
        atomic_store(&n->bad_rc, rc);
    /* Holding the lock again. */
    CHECK_RC(mproc_lock_try(&n->lock), -EDEADLK);
    n->waiting--;
    atomic_fetch_add(&n->woke, 1);
    CHECK_OK(mproc_lock_release(&n->lock));
    return NULL;
}

/* Acquire the lock once all `want` waiters are inside wait (they bumped
 * `waiting` under the lock and only wait releases it). */
static void lock_when_waiting(struct notif *n, int want)
{
    int64_t end = test_now_ms() + 20000;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&n->lock, -1));
        if (n->waiting >= want)
            return;
        CHECK_OK(mproc_lock_release(&n->lock));
        CHECK_MSG(test_now_ms() < end, "only %d of %d waiters arrived", n->waiting, want);
        usleep(500);
    }
}

static void notify_rounds(unsigned flags)
{
    struct notif *n = calloc(1, sizeof *n);
    CHECK(n != NULL);
    CHECK_OK(mproc_lock_init(&n->lock, flags));
    CHECK_OK(mproc_condition_init(&n->c, &n->lock, flags));
    pthread_t t[NW];
    for (int i = 0; i < NW; i++)
        t[i] = test_start_thread(notif_waiter, n);

    lock_when_waiting(n, NW);
    /* Cannot destroy a condition with waiters. */
    CHECK_RC(mproc_condition_destroy(&n->c), -EBUSY);
    CHECK_OK(mproc_condition_notify(&n->c, 1));
    CHECK_OK(mproc_lock_release(&n->lock));
    WAIT_UNTIL(atomic_load(&n->woke) >= 1, 20000);

    /* notify(n) with n >= 1 waiting: at least min(n, waiting). */
    lock_when_waiting(n, 0);
    int left = n->waiting;
    CHECK_OK(mproc_lock_release(&n->lock));
    if (left >= 2) {
        lock_when_waiting(n, left); /* they are all inside wait */
        int before = atomic_load(&n->woke);
        CHECK_OK(mproc_condition_notify(&n->c, 2));
        CHECK_OK(mproc_lock_release(&n->lock));
        WAIT_UNTIL(atomic_load(&n->woke) >= before + 2, 20000);
    }
    lock_when_waiting(n, 0);
    CHECK_OK(mproc_condition_notify_all(&n->c));
    CHECK_OK(mproc_lock_release(&n->lock));
    WAIT_UNTIL(atomic_load(&n->woke) == NW, 20000);
    for (int i = 0; i < NW; i++)
        test_join_thread(t[i]);
    CHECK_OK(atomic_load(&n->bad_rc));
    CHECK_OK(mproc_condition_destroy(&n->c));
    CHECK_OK(mproc_lock_destroy(&n->lock));
    free(n);
}

TEST(cond_notify_one_and_all)
{
    notify_rounds(0);
}

TEST(cond_notify_one_and_all_shared_flag)
{
    notify_rounds(MPROC_SHARED);
}

/* notify_all wakes every waiter of a large group at once. */
TEST(cond_notify_all_many)
{
    enum { MANY = 16 };
    struct notif *n = calloc(1, sizeof *n);
    CHECK(n != NULL);
    CHECK_OK(mproc_lock_init(&n->lock, 0));
    CHECK_OK(mproc_condition_init(&n->c, &n->lock, 0));
    for (int round = 0; round < 5; round++) {
        pthread_t t[MANY];
        atomic_store(&n->woke, 0);
        for (int i = 0; i < MANY; i++)
            t[i] = test_start_thread(notif_waiter, n);
        lock_when_waiting(n, MANY);
        CHECK_OK(mproc_condition_notify_all(&n->c));
        CHECK_OK(mproc_lock_release(&n->lock));
        WAIT_UNTIL(atomic_load(&n->woke) == MANY, 20000);
        for (int i = 0; i < MANY; i++)
            test_join_thread(t[i]);
    }
    CHECK_OK(atomic_load(&n->bad_rc));
    CHECK_OK(mproc_condition_destroy(&n->c));
    CHECK_OK(mproc_lock_destroy(&n->lock));
    free(n);
}

/* A cyclic barrier built from a condition: every round ends with
 * notify_all (which may move waiters onto the lock's futex), while
 * intruder threads hammer the same lock through its fast path. A waiter
 * stranded on the lock's futex shows up as a round that never ends. */
enum { GB_PARTIES = 4, GB_INTRUDERS = 2 };

struct genbar {
    mproc_lock lock;
    mproc_rlock rlock;
    mproc_condition c;
    int use_rlock;
    long rounds;
    long gen;        /* protected by the lock */
    int arrived;     /* protected by the lock */
    atomic_long progress;
    atomic_int stop;
    long intrusions; /* protected by the lock */
};

static void gb_lock(struct genbar *g)
{
    CHECK_OK(mproc_condition_acquire(&g->c, -1));
    if (g->use_rlock)
        CHECK_OK(mproc_rlock_acquire(&g->rlock, -1)); /* two levels deep */
}

static void gb_unlock(struct genbar *g)
{
    if (g->use_rlock)
        CHECK_OK(mproc_rlock_release(&g->rlock));
    CHECK_OK(mproc_condition_release(&g->c));
}

static void *gb_party(void *arg)
{
    struct genbar *g = arg;
    for (long r = 0; r < g->rounds; r++) {
        gb_lock(g);
        long my_gen = g->gen;
        if (++g->arrived == GB_PARTIES) {
            g->arrived = 0;
            g->gen++;
            CHECK_OK(mproc_condition_notify_all(&g->c));
        } else {
            while (g->gen == my_gen) {
                int rc = mproc_condition_wait(&g->c, (r % 3 == 0) ? 5 : -1);
                CHECK(rc == 0 || rc == -ETIMEDOUT);
            }
        }
        gb_unlock(g);
        atomic_fetch_add(&g->progress, 1);
    }
    return NULL;
}

static void *gb_intruder(void *arg)
{
    struct genbar *g = arg;
    while (!atomic_load(&g->stop)) {
        gb_lock(g);
        long n = ++g->intrusions;
        gb_unlock(g);
        if (n % 16 == 0)
            sched_yield();
    }
    return NULL;
}

static void genbar_run(int use_rlock, unsigned flags)
{
    struct genbar *g = calloc(1, sizeof *g);
    CHECK(g != NULL);
    g->use_rlock = use_rlock;
    g->rounds = test_scaled_stress(4000);
    CHECK_OK(mproc_lock_init(&g->lock, flags));
    CHECK_OK(mproc_rlock_init(&g->rlock, flags));
    if (use_rlock)
        CHECK_OK(mproc_condition_init_rlock(&g->c, &g->rlock, flags));
    else
        CHECK_OK(mproc_condition_init(&g->c, &g->lock, flags));
    pthread_t t[GB_PARTIES + GB_INTRUDERS];
    for (int i = 0; i < GB_PARTIES; i++)
        t[i] = test_start_thread(gb_party, g);
    for (int i = 0; i < GB_INTRUDERS; i++)
        t[GB_PARTIES + i] = test_start_thread(gb_intruder, g);
    /* Watchdog: the rounds must keep moving. */
    long want = GB_PARTIES * g->rounds, last = -1;
    int64_t last_change = test_now_ms();
    for (;;) {
        long p = atomic_load(&g->progress);
        if (p == want)
            break;
        if (p != last) {
            last = p;
            last_change = test_now_ms();
        }
        CHECK_MSG(test_now_ms() - last_change < 10000,
                  "no progress for 10 s at %ld of %ld passes (gen %ld): a lost wake-up", p,
                  want, g->gen);
        usleep(1000);
    }
    atomic_store(&g->stop, 1);
    for (int i = 0; i < GB_PARTIES + GB_INTRUDERS; i++)
        test_join_thread(t[i]);
    CHECK_EQ(g->gen, g->rounds);
    CHECK_OK(mproc_condition_destroy(&g->c));
    CHECK_OK(mproc_lock_destroy(&g->lock));
    CHECK_OK(mproc_rlock_destroy(&g->rlock));
    free(g);
}

TEST_T(cond_notify_all_rounds_with_intruders, 60)
{
    genbar_run(0, 0);
    genbar_run(0, MPROC_SHARED);
}

TEST_T(cond_notify_all_rounds_with_intruders_rlock, 60)
{
    genbar_run(1, 0);
    genbar_run(1, MPROC_SHARED);
}

/* ------------------------------------------------------------------ */
/* a condition with its own rlock                                      */
/* ------------------------------------------------------------------ */

struct own {
    mproc_condition c;
    int flag;            /* protected by c's lock */
    atomic_int started;
};

static void *own_setter(void *arg)
{
    struct own *o = arg;
    WAIT_UNTIL(atomic_load(&o->started), 10000);
    CHECK_OK(mproc_condition_acquire(&o->c, 20000));
    o->flag = 1;
    CHECK_OK(mproc_condition_notify_all(&o->c));
    CHECK_OK(mproc_condition_release(&o->c));
    return NULL;
}

static void *own_busy(void *arg)
{
    struct own *o = arg;
    CHECK_RC(mproc_condition_acquire(&o->c, 0), -ETIMEDOUT);
    CHECK_RC(mproc_condition_release(&o->c), -EPERM);
    CHECK_RC(mproc_condition_notify(&o->c, 1), -EPERM);
    return NULL;
}

static int own_pred(void *arg)
{
    return ((struct own *)arg)->flag;
}

TEST(cond_own_rlock)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        struct own *o = calloc(1, sizeof *o);
        CHECK(o != NULL);
        CHECK_OK(mproc_condition_init(&o->c, NULL, flags));
        CHECK_RC(mproc_condition_release(&o->c), -EPERM);
        CHECK_OK(mproc_condition_acquire(&o->c, -1));
        CHECK_OK(mproc_condition_acquire(&o->c, -1)); /* an rlock: reentrant */
        /* Its own lock is held: it cannot be destroyed, and stays usable. */
        CHECK_RC(mproc_condition_destroy(&o->c), -EBUSY);
        test_on_other_thread(own_busy, o);
        int64_t t0 = mproc_now_ns();
        CHECK_RC(mproc_condition_wait_for(&o->c, own_pred, o, 50), -ETIMEDOUT);
        CHECK(mproc_now_ns() - t0 >= 50 * 1000000LL);
        test_on_other_thread(own_busy, o);
        pthread_t t = test_start_thread(own_setter, o);
        atomic_store(&o->started, 1);
        CHECK_OK(mproc_condition_wait_for(&o->c, own_pred, o, 20000));
        CHECK_EQ(o->flag, 1);
        CHECK_OK(mproc_condition_release(&o->c));
        test_on_other_thread(own_busy, o);
        CHECK_OK(mproc_condition_release(&o->c));
        CHECK_RC(mproc_condition_release(&o->c), -EPERM);
        test_join_thread(t);
        CHECK_OK(mproc_condition_destroy(&o->c));
        CHECK_RC(mproc_condition_acquire(&o->c, 0), -EINVAL);
        free(o);
    }
}

/* ------------------------------------------------------------------ */
/* between processes                                                   */
/* ------------------------------------------------------------------ */

struct xcond {
    mproc_lock lock;
    mproc_condition c;
    mproc_rlock rlock;
    mproc_condition rc;
    long turn;          /* protected by lock: who may go (0 parent, 1..) */
    long rounds;
    long count;         /* protected by lock */
    int use_rlock;
};

/* Ping-pong: party `me` of `parties` waits for its turn, bumps count and
 * passes the turn on. */
static void xcond_play(struct xcond *x, long me, long parties)
{
    mproc_condition *c = x->use_rlock ? &x->rc : &x->c;
    for (long i = 0; i < x->rounds; i++) {
        CHECK_OK(mproc_condition_acquire(c, -1));
        while (x->turn != me)
            CHECK_OK(mproc_condition_wait(c, 30000));
        x->count++;
        x->turn = (me + 1) % parties;
        CHECK_OK(mproc_condition_notify_all(c));
        CHECK_OK(mproc_condition_release(c));
    }
}

static long g_me, g_parties;

static int xcond_child(void *arg)
{
    xcond_play(arg, g_me, g_parties);
    return 0;
}

static void xcond_run(struct xcond *x, int use_rlock, long parties)
{
    CHECK_OK(mproc_lock_init(&x->lock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init(&x->c, &x->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&x->rlock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init_rlock(&x->rc, &x->rlock, MPROC_SHARED));
    x->rounds = test_scaled_stress(4000);
    x->turn = 0;
    x->count = 0;
    x->use_rlock = use_rlock;
    g_parties = parties;
    pid_t pid[8];
    for (long i = 1; i < parties; i++) {
        g_me = i;
        pid[i] = test_fork(xcond_child, x);
    }
    xcond_play(x, 0, parties);
    for (long i = 1; i < parties; i++)
        test_expect_child_ok(pid[i]);
    CHECK_EQ(x->count, parties * x->rounds);
    CHECK_OK(mproc_condition_destroy(&x->c));
    CHECK_OK(mproc_condition_destroy(&x->rc));
    CHECK_OK(mproc_lock_destroy(&x->lock));
    CHECK_OK(mproc_rlock_destroy(&x->rlock));
}

TEST_T(cond_shared_between_processes, 60)
{
    struct xcond *x = mproc_shared_calloc(sizeof *x);
    CHECK(x != NULL);
    xcond_run(x, 0, 2);
    xcond_run(x, 1, 3);
    CHECK_OK(mproc_shared_free(x));
}

TEST_T(cond_shared_own_mmap, 60)
{
    struct xcond *x = test_map_shared(sizeof *x);
    xcond_run(x, 0, 3);
    xcond_run(x, 1, 2);
}

/* The condition finds its lock by offset: a child that maps the same
 * memfd at another address uses the same pair. */
static int xcond_remap_child(void *arg)
{
    int fd = *(int *)arg;
    struct xcond *x = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(x != MAP_FAILED);
    xcond_play(x, 1, 2);
    return 0;
}

TEST_T(cond_shared_mapped_at_two_addresses, 60)
{
    int fd = memfd_create("mproc-test-cond", 0);
    CHECK(fd >= 0);
    CHECK_EQ(ftruncate(fd, 4096), 0);
    struct xcond *a = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(a != MAP_FAILED);
    CHECK_OK(mproc_lock_init(&a->lock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init(&a->c, &a->lock, MPROC_SHARED));
    a->rounds = test_scaled_stress(2000);
    pid_t pid = test_fork(xcond_remap_child, &fd);
    xcond_play(a, 0, 2);
    test_expect_child_ok(pid);
    CHECK_EQ(a->count, 2 * a->rounds);

    /* Same in one process: a second view of the pair, used by a thread. */
    struct xcond *b = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(b != MAP_FAILED && b != a);
    CHECK_OK(mproc_condition_acquire(&b->c, -1));
    CHECK_EQ(mproc_lock_locked(&a->lock), 1);
    CHECK_RC(mproc_lock_try(&a->lock), -EDEADLK);
    CHECK_OK(mproc_condition_release(&a->c));
    CHECK_EQ(mproc_lock_locked(&b->lock), 0);
    munmap(b, 4096);
    munmap(a, 4096);
    close(fd);
}

/* A shared condition where the children wait and the parent notifies
 * all of them at once. */
struct gate {
    mproc_lock lock;
    mproc_condition c;
    int open;      /* protected by lock */
    int waiting;   /* protected by lock */
};

static int gate_child(void *arg)
{
    struct gate *g = arg;
    CHECK_OK(mproc_lock_acquire(&g->lock, -1));
    g->waiting++;
    while (!g->open)
        CHECK_OK(mproc_condition_wait(&g->c, 30000));
    g->waiting--;
    CHECK_OK(mproc_lock_release(&g->lock));
    return 0;
}

TEST(cond_shared_notify_all_processes)
{
    enum { P = 4 };
    struct gate *g = mproc_shared_calloc(sizeof *g);
    CHECK(g != NULL);
    CHECK_OK(mproc_lock_init(&g->lock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init(&g->c, &g->lock, MPROC_SHARED));
    pid_t pid[P];
    for (int i = 0; i < P; i++)
        pid[i] = test_fork(gate_child, g);
    int64_t end = test_now_ms() + 20000;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&g->lock, -1));
        if (g->waiting == P)
            break;
        CHECK_OK(mproc_lock_release(&g->lock));
        CHECK(test_now_ms() < end);
        usleep(1000);
    }
    CHECK_RC(mproc_condition_destroy(&g->c), -EBUSY);
    g->open = 1;
    CHECK_OK(mproc_condition_notify_all(&g->c));
    CHECK_OK(mproc_lock_release(&g->lock));
    for (int i = 0; i < P; i++)
        test_expect_child_ok(pid[i]);
    CHECK_EQ(g->waiting, 0);
    CHECK_OK(mproc_condition_destroy(&g->c));
    CHECK_OK(mproc_lock_destroy(&g->lock));
    CHECK_OK(mproc_shared_free(g));
}

/* ------------------------------------------------------------------ */
/* back-off                                                            */
/* ------------------------------------------------------------------ */

TEST(backoff_doubling_and_bounds)
{
    mproc_backoff b;
    CHECK_RC(mproc_backoff_init(NULL, 0, 0), -EINVAL);
    CHECK_RC(mproc_backoff_init(&b, 2000, 1000), -EINVAL);
    CHECK_OK(mproc_backoff_init(&b, 1000, 64000));
    CHECK_EQ(mproc_backoff_attempts(&b), 0);
    for (int round = 0; round < 2; round++) {
        uint64_t d = 1000;
        for (uint32_t i = 0; i < 12; i++) {
            int64_t t0 = mproc_now_ns();
            uint64_t got = mproc_backoff_wait(&b);
            int64_t dt = mproc_now_ns() - t0;
            CHECK_MSG(got >= d / 2 && got <= d, "wait %u: %llu ns, want [%llu, %llu]", i,
                      (unsigned long long)got, (unsigned long long)d / 2,
                      (unsigned long long)d);
            CHECK_MSG(dt >= (int64_t)got, "waited %lld ns for a chosen %llu", (long long)dt,
                      (unsigned long long)got);
            CHECK_EQ(mproc_backoff_attempts(&b), i + 1);
            if (d < 64000)
                d *= 2;
        }
        mproc_backoff_reset(&b);
        CHECK_EQ(mproc_backoff_attempts(&b), 0);
    }
}

TEST(backoff_defaults_and_randomness)
{
    mproc_backoff b;
    CHECK_OK(mproc_backoff_init(&b, 0, 0));
    uint64_t first = mproc_backoff_wait(&b);
    CHECK(first >= 50 && first <= 100);
    uint64_t last = 0, lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 40; i++) {
        last = mproc_backoff_wait(&b);
        CHECK(last <= 1000000);
        if (i >= 20) {
            lo = last < lo ? last : lo;
            hi = last > hi ? last : hi;
        }
    }
    /* At the cap: random in [max/2, max], and not always the same. */
    CHECK(lo >= 500000 && hi <= 1000000);
    CHECK_MSG(lo != hi, "20 waits at the cap all chose %llu ns", (unsigned long long)lo);
    CHECK_EQ(mproc_backoff_attempts(&b), 41);

    /* min == max: always in [min/2, min]. */
    CHECK_OK(mproc_backoff_init(&b, 5000, 5000));
    for (int i = 0; i < 10; i++) {
        uint64_t w = mproc_backoff_wait(&b);
        CHECK(w >= 2500 && w <= 5000);
    }
    /* Only a max: min defaults to 100 ns. */
    CHECK_OK(mproc_backoff_init(&b, 0, 400));
    uint64_t w = mproc_backoff_wait(&b);
    CHECK(w >= 50 && w <= 100);
    for (int i = 0; i < 10; i++)
        w = mproc_backoff_wait(&b);
    CHECK(w >= 200 && w <= 400);
}

/* ------------------------------------------------------------------ */
/* waits are not interrupted by signals                                */
/* ------------------------------------------------------------------ */

struct sig_cond {
    mproc_lock lock;
    mproc_condition c;
    int flag; /* protected by lock */
};

static void *sig_notifier(void *arg)
{
    struct sig_cond *s = arg;
    test_block_sigalrm();
    mproc_sleep_ms(100);
    CHECK_OK(mproc_lock_acquire(&s->lock, -1));
    s->flag = 1;
    CHECK_OK(mproc_condition_notify_all(&s->c));
    CHECK_OK(mproc_lock_release(&s->lock));
    return NULL;
}

TEST(cond_waits_not_interrupted_by_signals)
{
    for (unsigned flags = 0; flags <= MPROC_SHARED; flags += MPROC_SHARED) {
        struct sig_cond s;
        memset(&s, 0, sizeof s);
        CHECK_OK(mproc_lock_init(&s.lock, flags));
        CHECK_OK(mproc_condition_init(&s.c, &s.lock, flags));
        CHECK_OK(mproc_lock_acquire(&s.lock, -1));
        atomic_store(&test_sigalrm_count, 0);
        test_sigalrm_every(1000);
        /* wait may wake spuriously, but never report a timeout early */
        int64_t t0 = mproc_now_ns();
        int rc;
        while ((rc = mproc_condition_wait(&s.c, 150)) == 0)
            ;
        CHECK_RC(rc, -ETIMEDOUT);
        CHECK(mproc_now_ns() - t0 >= 150 * 1000000LL);
        pthread_t t = test_start_thread(sig_notifier, &s);
        while (!s.flag)
            CHECK_OK(mproc_condition_wait(&s.c, -1));
        test_sigalrm_every(0);
        CHECK_OK(mproc_lock_release(&s.lock));
        test_join_thread(t);
        CHECK_MSG(atomic_load(&test_sigalrm_count) >= 20, "only %d signals",
                  atomic_load(&test_sigalrm_count));
        CHECK_OK(mproc_condition_destroy(&s.c));
        CHECK_OK(mproc_lock_destroy(&s.lock));
    }
}
