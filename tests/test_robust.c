/*
 * tests/test_robust.c -- MPROC_SHARED locks whose holder dies: a child
 * killed with SIGKILL (reaped first, or still a zombie), a child that
 * _exit()s holding the lock, a thread that exits holding it; waiters
 * already blocked when it happens; several waiters, of which exactly one
 * sees -EOWNERDEAD; rlocks held several levels deep; the "until someone
 * marks it consistent, everyone gets -EOWNERDEAD" rule; owner_deaths.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads): each round forks first, then starts
 * its threads, and joins them before the next fork.
 */
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mproc/sync.h"
#include "runner.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

/* "Waiters notice a dead holder within about 100 ms": allow a lot more
 * for loaded machines and sanitizers, but not forever. */
#define NOTICE_MS 3000

/* The shared state of every test: lives in mproc_shared_calloc memory. */
struct rob {
    mproc_lock lock;
    mproc_rlock rlock;
    mproc_lock clock;        /* bound to cond */
    mproc_condition cond;
    long data;               /* protected by lock */
    int flag;                /* protected by clock */
    int waiting;             /* protected by clock */
    atomic_int owner_dead;   /* acquirers that saw -EOWNERDEAD */
    atomic_int got;          /* acquirers that got the lock */
    atomic_int started;
    int depth;               /* rlock depth for the holder child */
};

static struct rob *new_rob(void)
{
    struct rob *r = mproc_shared_calloc(sizeof *r);
    CHECK(r != NULL);
    CHECK_OK(mproc_lock_init(&r->lock, MPROC_SHARED));
    CHECK_OK(mproc_rlock_init(&r->rlock, MPROC_SHARED));
    CHECK_OK(mproc_lock_init(&r->clock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init(&r->cond, &r->clock, MPROC_SHARED));
    return r;
}

/* A helper process that takes the lock (or the rlock `depth` times), says
 * so through a pipe, and then either waits to be killed or _exit()s. */
static int g_wfd = -1;
static int g_exit_holding;

static void tell_parent(void)
{
    char c = 'x';
    CHECK_EQ(write(g_wfd, &c, 1), 1);
}

static int holder_child(void *arg)
{
    struct rob *r = arg;
    if (r->depth == 0) {
        CHECK_OK(mproc_lock_acquire(&r->lock, 10000));
        r->data = -1; /* "half-updated" */
    } else {
        for (int i = 0; i < r->depth; i++)
            CHECK_OK(mproc_rlock_acquire(&r->rlock, 10000));
        CHECK_EQ(mproc_rlock_is_owned(&r->rlock), 1);
    }
    tell_parent();
    if (g_exit_holding)
        _exit(0);
    for (;;)
        pause();
}

struct holder {
    pid_t pid;
    int rfd;
};

static struct holder start_holder(struct rob *r, int depth, int exit_holding)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    g_wfd = fds[1];
    g_exit_holding = exit_holding;
    r->depth = depth;
    struct holder h = { test_fork(holder_child, r), fds[0] };
    close(fds[1]);
    /* Wait for "I hold it". */
    struct pollfd p = { .fd = h.rfd, .events = POLLIN };
    CHECK_MSG(poll(&p, 1, 20000) == 1, "holder child %d never took the lock", (int)h.pid);
    char c;
    CHECK_EQ(read(h.rfd, &c, 1), 1);
    close(h.rfd);
    return h;
}

/* SIGKILL the holder; reap it now or leave it a zombie for the caller. */
static void kill_holder(struct holder h, int reap)
{
    CHECK_EQ(kill(h.pid, SIGKILL), 0);
    if (reap)
        test_expect_child_killed(h.pid);
}

/* Acquire expecting -EOWNERDEAD within NOTICE_MS; returns the time taken. */
static int64_t acquire_owner_dead(mproc_lock *l)
{
    int64_t t0 = mproc_now_ns();
    int rc = mproc_lock_acquire(l, 20000);
    int64_t ms = (mproc_now_ns() - t0) / 1000000;
    CHECK_MSG(rc == -EOWNERDEAD, "acquire returned %d (%s) after %lld ms, want EOWNERDEAD",
              rc, mproc_errname(rc), (long long)ms);
    CHECK_MSG(ms < NOTICE_MS, "dead holder noticed only after %lld ms", (long long)ms);
    return ms;
}

/* The full recovery protocol on a lock just acquired with -EOWNERDEAD. */
static void recover(struct rob *r)
{
    CHECK_EQ(mproc_lock_locked(&r->lock), 1);
    CHECK_RC(mproc_lock_try(&r->lock), -EDEADLK);
    CHECK_EQ(r->data, -1);
    r->data = 0; /* repaired */
    CHECK_OK(mproc_lock_consistent(&r->lock));
    /* No longer marked as recovered. */
    CHECK_RC(mproc_lock_consistent(&r->lock), -EINVAL);
    CHECK_OK(mproc_lock_release(&r->lock));
    CHECK_EQ(mproc_lock_locked(&r->lock), 0);
    CHECK_OK(mproc_lock_acquire(&r->lock, 0));
    CHECK_OK(mproc_lock_release(&r->lock));
}

/* ------------------------------------------------------------------ */
/* killed holder, 20 times                                             */
/* ------------------------------------------------------------------ */

static void killed_holder_rounds(int reap_first)
{
    struct rob *r = new_rob();
    for (int i = 0; i < 20; i++) {
        struct holder h = start_holder(r, 0, 0);
        CHECK_EQ(mproc_lock_locked(&r->lock), 1);
        kill_holder(h, reap_first);
        acquire_owner_dead(&r->lock);
        if (!reap_first)
            test_expect_child_killed(h.pid);
        recover(r);
    }
    mproc_lock_counters st;
    CHECK_OK(mproc_lock_stats(&r->lock, &st));
    CHECK_EQ(st.owner_deaths, 20);
    /* Per round: the child's, the recovering one, the plain one (a holder
     * that dies may or may not have had its own counted yet). */
    CHECK_MSG(st.acquisitions >= 40 && st.acquisitions <= 60, "acquisitions %llu",
              (unsigned long long)st.acquisitions);
    CHECK(st.contended <= st.acquisitions);
    CHECK_OK(mproc_lock_destroy(&r->lock));
}

TEST_T(robust_killed_holder_reaped_20x, 60)
{
    killed_holder_rounds(1);
}

TEST_T(robust_killed_holder_zombie_20x, 60)
{
    killed_holder_rounds(0);
}

/* try on a lock whose holder is dead takes it over too. */
TEST(robust_try_takes_over)
{
    struct rob *r = new_rob();
    for (int reap = 0; reap < 2; reap++) {
        struct holder h = start_holder(r, 0, 0);
        kill_holder(h, reap);
        int rc = -EBUSY;
        int64_t end = test_now_ms() + NOTICE_MS;
        /* try never waits; the death may take a moment to be visible. */
        while (rc == -EBUSY && test_now_ms() < end) {
            rc = mproc_lock_try(&r->lock);
            if (rc == -EBUSY)
                usleep(1000);
        }
        CHECK_RC(rc, -EOWNERDEAD);
        if (!reap)
            test_expect_child_killed(h.pid);
        recover(r);
    }
}

/* Regression: a loop of acquires whose timeouts (0 ms, 1 ms) end before
 * the first holder check used to report -ETIMEDOUT forever on a dead
 * holder's lock. They must take it over like try does. */
TEST(robust_short_timeouts_take_over)
{
    struct rob *r = new_rob();
    for (int64_t tmo = 0; tmo <= 1; tmo++) {
        struct holder h = start_holder(r, 0, 0);
        kill_holder(h, 1);
        int rc = -ETIMEDOUT;
        int64_t end = test_now_ms() + NOTICE_MS;
        while (rc == -ETIMEDOUT && test_now_ms() < end)
            rc = mproc_lock_acquire(&r->lock, tmo);
        CHECK_RC(rc, -EOWNERDEAD);
        recover(r);
    }
}

/* A child that exits normally while holding the lock is a dead holder. */
TEST(robust_child_exits_holding)
{
    struct rob *r = new_rob();
    for (int i = 0; i < 5; i++) {
        struct holder h = start_holder(r, 0, 1);
        if (i % 2)
            test_expect_child_ok(h.pid);
        acquire_owner_dead(&r->lock);
        if (!(i % 2))
            test_expect_child_ok(h.pid);
        recover(r);
    }
    mproc_lock_counters st;
    CHECK_OK(mproc_lock_stats(&r->lock, &st));
    CHECK_EQ(st.owner_deaths, 5);
}

/* ------------------------------------------------------------------ */
/* waiters already blocked when the holder dies                        */
/* ------------------------------------------------------------------ */

struct waiter {
    struct rob *r;
    int64_t timeout_ms;
    int rc;
    atomic_int started;
    atomic_int finished;
};

static void *lock_waiter(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->started, 1);
    w->rc = mproc_lock_acquire(&w->r->lock, w->timeout_ms);
    if (w->rc == -EOWNERDEAD) {
        atomic_fetch_add(&w->r->owner_dead, 1);
        w->r->data = 0;
        CHECK_OK(mproc_lock_consistent(&w->r->lock));
    }
    if (w->rc == 0 || w->rc == -EOWNERDEAD) {
        atomic_fetch_add(&w->r->got, 1);
        w->r->data++;
        CHECK_OK(mproc_lock_release(&w->r->lock));
    }
    atomic_store(&w->finished, 1);
    return NULL;
}

TEST_T(robust_waiter_blocked_when_killed, 60)
{
    struct rob *r = new_rob();
    for (int i = 0; i < 10; i++) {
        struct holder h = start_holder(r, 0, 0);
        struct waiter w = { .r = r, .timeout_ms = (i % 2) ? -1 : 20000 };
        atomic_store(&r->owner_dead, 0);
        pthread_t t = test_start_thread(lock_waiter, &w);
        WAIT_UNTIL(atomic_load(&w.started), 10000);
        mproc_sleep_ms(30); /* let it block (coverage only) */
        CHECK_EQ(atomic_load(&w.finished), 0);
        int64_t t0 = test_now_ms();
        kill_holder(h, i % 3 == 0);
        WAIT_UNTIL(atomic_load(&w.finished), 20000);
        int64_t ms = test_now_ms() - t0;
        test_join_thread(t);
        if (i % 3 != 0)
            test_expect_child_killed(h.pid);
        CHECK_RC(w.rc, -EOWNERDEAD);
        CHECK_MSG(ms < NOTICE_MS, "blocked waiter noticed the death after %lld ms",
                  (long long)ms);
        CHECK_EQ(atomic_load(&r->owner_dead), 1);
        CHECK_OK(mproc_lock_acquire(&r->lock, 0));
        CHECK_OK(mproc_lock_release(&r->lock));
    }
}

/* Several waiters (two processes, three threads): exactly one gets
 * -EOWNERDEAD, all get the lock. */
static int waiter_proc(void *arg)
{
    struct waiter w = { .r = arg, .timeout_ms = 20000 };
    lock_waiter(&w);
    CHECK_MSG(w.rc == 0 || w.rc == -EOWNERDEAD, "waiter process got %d (%s)", w.rc,
              mproc_errname(w.rc));
    return 0;
}

TEST_T(robust_several_waiters_one_owner_dead, 60)
{
    enum { NPROC = 2, NTHR = 3 };
    struct rob *r = new_rob();
    for (int round = 0; round < 5; round++) {
        atomic_store(&r->owner_dead, 0);
        atomic_store(&r->got, 0);
        r->data = 0;
        struct holder h = start_holder(r, 0, 0);
        pid_t pid[NPROC];
        for (int i = 0; i < NPROC; i++)
            pid[i] = test_fork(waiter_proc, r);
        struct waiter w[NTHR];
        pthread_t t[NTHR];
        for (int i = 0; i < NTHR; i++) {
            memset(&w[i], 0, sizeof w[i]);
            w[i].r = r;
            w[i].timeout_ms = i == 0 ? -1 : 20000;
            t[i] = test_start_thread(lock_waiter, &w[i]);
        }
        for (int i = 0; i < NTHR; i++)
            WAIT_UNTIL(atomic_load(&w[i].started), 10000);
        mproc_sleep_ms(50); /* let them block (coverage only) */
        CHECK_EQ(atomic_load(&r->got), 0);
        kill_holder(h, round % 2);
        for (int i = 0; i < NTHR; i++) {
            test_join_thread(t[i]);
            CHECK_MSG(w[i].rc == 0 || w[i].rc == -EOWNERDEAD, "waiter thread got %d (%s)",
                      w[i].rc, mproc_errname(w[i].rc));
        }
        for (int i = 0; i < NPROC; i++)
            test_expect_child_ok(pid[i]);
        if (round % 2 == 0)
            test_expect_child_killed(h.pid);
        CHECK_EQ(atomic_load(&r->owner_dead), 1);
        CHECK_EQ(atomic_load(&r->got), NPROC + NTHR);
        CHECK_EQ(r->data, NPROC + NTHR);
        CHECK_EQ(mproc_lock_locked(&r->lock), 0);
    }
    mproc_lock_counters st;
    CHECK_OK(mproc_lock_stats(&r->lock, &st));
    CHECK_EQ(st.owner_deaths, 5);
}

/* ------------------------------------------------------------------ */
/* rlock held 3 deep                                                   */
/* ------------------------------------------------------------------ */

static void *rlock_take_free(void *arg)
{
    mproc_rlock *rl = arg;
    CHECK_OK(mproc_rlock_acquire(rl, 0));
    CHECK_OK(mproc_rlock_release(rl));
    return NULL;
}

static void *rlock_busy(void *arg)
{
    CHECK_RC(mproc_rlock_try(arg), -EBUSY);
    return NULL;
}

TEST(robust_rlock_three_deep)
{
    struct rob *r = new_rob();
    for (int i = 0; i < 5; i++) {
        struct holder h = start_holder(r, 3, 0);
        kill_holder(h, i % 2);
        int64_t t0 = mproc_now_ns();
        int rc = mproc_rlock_acquire(&r->rlock, 20000);
        CHECK_MSG(rc == -EOWNERDEAD, "rlock acquire: %d (%s)", rc, mproc_errname(rc));
        CHECK((mproc_now_ns() - t0) / 1000000 < NOTICE_MS);
        if (i % 2 == 0)
            test_expect_child_killed(h.pid);
        CHECK_EQ(mproc_rlock_is_owned(&r->rlock), 1);
        CHECK_OK(mproc_rlock_consistent(&r->rlock));
        CHECK_RC(mproc_rlock_consistent(&r->rlock), -EINVAL);
        /* The count starts at 1, not at the dead holder's 3. */
        if (i % 2) {
            CHECK_OK(mproc_rlock_acquire(&r->rlock, 0));
            CHECK_OK(mproc_rlock_release(&r->rlock));
            test_on_other_thread(rlock_busy, &r->rlock);
        }
        CHECK_OK(mproc_rlock_release(&r->rlock));
        CHECK_EQ(mproc_rlock_is_owned(&r->rlock), 0);
        CHECK_RC(mproc_rlock_release(&r->rlock), -EPERM);
        test_on_other_thread(rlock_take_free, &r->rlock);
    }
    mproc_lock_counters st;
    CHECK_OK(mproc_rlock_stats(&r->rlock, &st));
    CHECK_EQ(st.owner_deaths, 5);
}

/* ------------------------------------------------------------------ */
/* not marked consistent: the next acquirer is told again              */
/* ------------------------------------------------------------------ */

static void *expect_owner_dead_thread(void *arg)
{
    struct rob *r = arg;
    CHECK_RC(mproc_lock_acquire(&r->lock, 5000), -EOWNERDEAD);
    CHECK_OK(mproc_lock_release(&r->lock));
    CHECK_RC(mproc_lock_try(&r->lock), -EOWNERDEAD);
    CHECK_OK(mproc_lock_release(&r->lock));
    return NULL;
}

static int expect_owner_dead_proc(void *arg)
{
    struct rob *r = arg;
    CHECK_RC(mproc_lock_acquire(&r->lock, 5000), -EOWNERDEAD);
    CHECK_OK(mproc_lock_release(&r->lock));
    return 0;
}

static int repair_proc(void *arg)
{
    struct rob *r = arg;
    CHECK_RC(mproc_lock_acquire(&r->lock, 5000), -EOWNERDEAD);
    r->data = 0;
    CHECK_OK(mproc_lock_consistent(&r->lock));
    CHECK_OK(mproc_lock_release(&r->lock));
    return 0;
}

TEST(robust_not_consistent_stays_owner_dead)
{
    struct rob *r = new_rob();
    struct holder h = start_holder(r, 0, 0);
    kill_holder(h, 1);
    acquire_owner_dead(&r->lock);
    CHECK_OK(mproc_lock_release(&r->lock)); /* no repair */
    /* Everyone is told, again and again: this process, another process,
     * another thread (forks first: see the file comment). */
    CHECK_RC(mproc_lock_acquire(&r->lock, 5000), -EOWNERDEAD);
    CHECK_OK(mproc_lock_release(&r->lock));
    test_expect_child_ok(test_fork(expect_owner_dead_proc, r));
    CHECK_RC(mproc_lock_try(&r->lock), -EOWNERDEAD);
    CHECK_OK(mproc_lock_release(&r->lock));
    /* A repair in another process ends it for everyone. */
    test_expect_child_ok(test_fork(repair_proc, r));
    CHECK_OK(mproc_lock_acquire(&r->lock, 5000));
    CHECK_RC(mproc_lock_consistent(&r->lock), -EINVAL);
    CHECK_OK(mproc_lock_release(&r->lock));

    /* Again, with a thread as the second acquirer. */
    h = start_holder(r, 0, 0);
    kill_holder(h, 1);
    acquire_owner_dead(&r->lock);
    CHECK_OK(mproc_lock_release(&r->lock));
    test_on_other_thread(expect_owner_dead_thread, r);
    CHECK_RC(mproc_lock_acquire(&r->lock, 5000), -EOWNERDEAD);
    CHECK_OK(mproc_lock_consistent(&r->lock));
    CHECK_OK(mproc_lock_release(&r->lock));
    CHECK_OK(mproc_lock_acquire(&r->lock, 0));
    CHECK_OK(mproc_lock_release(&r->lock));
}

/* A lock held by a dead process is not "held by a live thread". */
TEST(robust_destroy_with_dead_holder)
{
    struct rob *r = new_rob();
    struct holder h = start_holder(r, 0, 0);
    kill_holder(h, 1);
    CHECK_OK(mproc_lock_destroy(&r->lock));
    CHECK_RC(mproc_lock_acquire(&r->lock, 0), -EINVAL);
}

/* ------------------------------------------------------------------ */
/* a thread that exits holding a MPROC_SHARED lock                     */
/* ------------------------------------------------------------------ */

struct th_hold {
    struct rob *r;
    int rlock_depth;        /* 0: the lock */
    atomic_int holding;
    atomic_int go;
};

static void *exit_holding_thread(void *arg)
{
    struct th_hold *t = arg;
    if (t->rlock_depth == 0) {
        CHECK_OK(mproc_lock_acquire(&t->r->lock, -1));
        t->r->data = -1;
    } else {
        for (int i = 0; i < t->rlock_depth; i++)
            CHECK_OK(mproc_rlock_acquire(&t->r->rlock, -1));
    }
    atomic_store(&t->holding, 1);
    WAIT_UNTIL(atomic_load(&t->go), 20000);
    return NULL; /* exits still holding it */
}

TEST(robust_thread_exits_holding)
{
    struct rob *r = new_rob();
    for (int i = 0; i < 5; i++) {
        struct th_hold th = { .r = r };
        pthread_t t = test_start_thread(exit_holding_thread, &th);
        WAIT_UNTIL(atomic_load(&th.holding), 10000);
        atomic_store(&th.go, 1);
        test_join_thread(t);
        acquire_owner_dead(&r->lock);
        recover(r);
    }
    /* Already waiting when the holder thread exits. */
    for (int i = 0; i < 5; i++) {
        struct th_hold th = { .r = r };
        pthread_t t = test_start_thread(exit_holding_thread, &th);
        WAIT_UNTIL(atomic_load(&th.holding), 10000);
        struct waiter w = { .r = r, .timeout_ms = i % 2 ? -1 : 20000 };
        atomic_store(&r->owner_dead, 0);
        pthread_t wt = test_start_thread(lock_waiter, &w);
        WAIT_UNTIL(atomic_load(&w.started), 10000);
        mproc_sleep_ms(30);
        int64_t t0 = test_now_ms();
        atomic_store(&th.go, 1);
        test_join_thread(t);
        WAIT_UNTIL(atomic_load(&w.finished), 20000);
        CHECK_MSG(test_now_ms() - t0 < NOTICE_MS, "noticed after %lld ms",
                  (long long)(test_now_ms() - t0));
        test_join_thread(wt);
        CHECK_RC(w.rc, -EOWNERDEAD);
        CHECK_EQ(atomic_load(&r->owner_dead), 1);
    }
    mproc_lock_counters st;
    CHECK_OK(mproc_lock_stats(&r->lock, &st));
    CHECK_EQ(st.owner_deaths, 10);
}

TEST(robust_thread_exits_holding_rlock)
{
    struct rob *r = new_rob();
    struct th_hold th = { .r = r, .rlock_depth = 2 };
    pthread_t t = test_start_thread(exit_holding_thread, &th);
    WAIT_UNTIL(atomic_load(&th.holding), 10000);
    atomic_store(&th.go, 1);
    test_join_thread(t);
    CHECK_RC(mproc_rlock_acquire(&r->rlock, 5000), -EOWNERDEAD);
    CHECK_OK(mproc_rlock_consistent(&r->rlock));
    CHECK_OK(mproc_rlock_release(&r->rlock));
    CHECK_EQ(mproc_rlock_is_owned(&r->rlock), 0);
    test_on_other_thread(rlock_take_free, &r->rlock);
}

/* ------------------------------------------------------------------ */
/* a condition wait that re-acquires from a dead holder                */
/* ------------------------------------------------------------------ */

static int g_go_rfd = -1;

static int cond_killer_child(void *arg)
{
    struct rob *r = arg;
    char c;
    CHECK_EQ(read(g_go_rfd, &c, 1), 1);
    CHECK_OK(mproc_lock_acquire(&r->clock, 10000));
    r->flag = 1;
    CHECK_OK(mproc_condition_notify_all(&r->cond));
    tell_parent(); /* and die holding clock */
    for (;;)
        pause();
}

struct cwait {
    struct rob *r;
    int rc;
};

static void *cond_waiter(void *arg)
{
    struct cwait *w = arg;
    struct rob *r = w->r;
    CHECK_OK(mproc_lock_acquire(&r->clock, -1));
    r->waiting = 1;
    int rc = 0;
    while (!r->flag && rc == 0)
        rc = mproc_condition_wait(&r->cond, 20000);
    w->rc = rc;
    if (rc == -EOWNERDEAD)
        CHECK_OK(mproc_lock_consistent(&r->clock));
    CHECK_RC(mproc_lock_try(&r->clock), -EDEADLK);
    CHECK_OK(mproc_lock_release(&r->clock));
    return NULL;
}

TEST(robust_condition_wait_owner_dead)
{
    struct rob *r = new_rob();
    int go[2], back[2];
    CHECK_EQ(pipe(go), 0);
    CHECK_EQ(pipe(back), 0);
    g_go_rfd = go[0];
    g_wfd = back[1];
    pid_t pid = test_fork(cond_killer_child, r);
    close(go[0]);
    close(back[1]);

    struct cwait w = { .r = r };
    pthread_t t = test_start_thread(cond_waiter, &w);
    /* Once we can take clock and see waiting == 1, the waiter is in wait. */
    int64_t end = test_now_ms() + 10000;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&r->clock, -1));
        int in = r->waiting;
        CHECK_OK(mproc_lock_release(&r->clock));
        if (in)
            break;
        CHECK(test_now_ms() < end);
        usleep(500);
    }
    char c = 'g';
    CHECK_EQ(write(go[1], &c, 1), 1);
    struct pollfd p = { .fd = back[0], .events = POLLIN };
    CHECK_EQ(poll(&p, 1, 20000), 1);
    CHECK_EQ(read(back[0], &c, 1), 1);
    CHECK_EQ(kill(pid, SIGKILL), 0);
    test_join_thread(t);
    test_expect_child_killed(pid);
    CHECK_MSG(w.rc == -EOWNERDEAD, "wait returned %d (%s), want EOWNERDEAD", w.rc,
              mproc_errname(w.rc));
    CHECK_OK(mproc_lock_acquire(&r->clock, 0));
    CHECK_OK(mproc_lock_release(&r->clock));
    close(go[1]);
    close(back[0]);
}

/* ------------------------------------------------------------------ */
/* processes killed while waiting (not holding)                        */
/* ------------------------------------------------------------------ */

struct waitdeath {
    mproc_lock lock;
    mproc_semaphore sem;
    mproc_condition cond;   /* bound to lock */
    atomic_int in_sem;
    int in_cond;            /* protected by lock */
};

static int blocked_on_lock(void *arg)
{
    struct waitdeath *w = arg;
    mproc_lock_acquire(&w->lock, -1);
    return 1; /* must not get here: killed first */
}

static int blocked_on_sem(void *arg)
{
    struct waitdeath *w = arg;
    atomic_fetch_add(&w->in_sem, 1);
    mproc_semaphore_acquire(&w->sem, -1);
    return 1;
}

static int blocked_on_cond(void *arg)
{
    struct waitdeath *w = arg;
    CHECK_OK(mproc_lock_acquire(&w->lock, -1));
    w->in_cond++;
    for (;;)
        mproc_condition_wait(&w->cond, -1);
}

/* Killed lock waiters leave the lock working, with no -EOWNERDEAD. */
TEST(robust_killed_lock_waiters_are_harmless)
{
    struct waitdeath *w = mproc_shared_calloc(sizeof *w);
    CHECK(w != NULL);
    CHECK_OK(mproc_lock_init(&w->lock, MPROC_SHARED));
    CHECK_OK(mproc_lock_acquire(&w->lock, -1));
    pid_t pid[3];
    for (int i = 0; i < 3; i++)
        pid[i] = test_fork(blocked_on_lock, w);
    for (int i = 0; i < 3; i++)
        test_wait_sleeping(pid[i], 10000);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(kill(pid[i], SIGKILL), 0);
        test_expect_child_killed(pid[i]);
    }
    CHECK_OK(mproc_lock_release(&w->lock));
    CHECK_OK(mproc_lock_acquire(&w->lock, 0));
    CHECK_OK(mproc_lock_release(&w->lock));
    CHECK_OK(mproc_lock_destroy(&w->lock));
}

/* A semaphore waiter process that was killed is not waiting any more:
 * the semaphore still works and can be destroyed. */
TEST(robust_killed_semaphore_waiter)
{
    struct waitdeath *w = mproc_shared_calloc(sizeof *w);
    CHECK(w != NULL);
    CHECK_OK(mproc_semaphore_init(&w->sem, 0, MPROC_SHARED));
    pid_t pid = test_fork(blocked_on_sem, w);
    WAIT_UNTIL(atomic_load(&w->in_sem) == 1, 10000);
    test_wait_sleeping(pid, 10000);
    CHECK_EQ(kill(pid, SIGKILL), 0);
    test_expect_child_killed(pid);
    CHECK_OK(mproc_semaphore_release(&w->sem, 1));
    CHECK_EQ(mproc_semaphore_value(&w->sem), 1);
    CHECK_OK(mproc_semaphore_acquire(&w->sem, 0));
    CHECK_RC(mproc_semaphore_destroy(&w->sem), 0);
}

/* Same for a condition. */
TEST(robust_killed_condition_waiter)
{
    struct waitdeath *w = mproc_shared_calloc(sizeof *w);
    CHECK(w != NULL);
    CHECK_OK(mproc_lock_init(&w->lock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init(&w->cond, &w->lock, MPROC_SHARED));
    pid_t pid = test_fork(blocked_on_cond, w);
    int64_t end = test_now_ms() + 10000;
    for (;;) { /* once in_cond is 1 under the lock, it is inside wait */
        CHECK_OK(mproc_lock_acquire(&w->lock, -1));
        int in = w->in_cond;
        CHECK_OK(mproc_lock_release(&w->lock));
        if (in)
            break;
        CHECK(test_now_ms() < end);
        usleep(500);
    }
    CHECK_EQ(kill(pid, SIGKILL), 0);
    test_expect_child_killed(pid);
    CHECK_OK(mproc_lock_acquire(&w->lock, 1000));
    CHECK_OK(mproc_condition_notify_all(&w->cond));
    CHECK_OK(mproc_lock_release(&w->lock));
    CHECK_RC(mproc_condition_destroy(&w->cond), 0);
}
