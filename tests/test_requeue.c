/*
 * tests/test_requeue.c -- condition notifies that requeue waiters onto
 * the lock's futex (see sync/condition.c): everyone notified must get the
 * lock in turn, and a notifier that dies holding the lock after
 * requeueing must not strand the waiters it moved.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define WAITERS 8

static struct {
    mproc_lock lock;
    mproc_condition cond;
    int go;
    int waiting;
    int done;
} s;

static void *waiter(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_lock_acquire(&s.lock, -1));
    s.waiting++;
    while (!s.go)
        CHECK_OK(mproc_condition_wait(&s.cond, -1));
    s.done++;
    CHECK_OK(mproc_lock_release(&s.lock));
    return NULL;
}

static int all_waiting(void *arg)
{
    (void)arg;
    return s.waiting == WAITERS;
}

/* notify_all with 8 sleepers: all of them leave the wait, one at a time
 * through the lock. Repeated, to go through many requeue hand-offs. */
TEST(notify_all_hands_lock_to_everyone)
{
    for (int round = 0; round < 50; round++) {
        pthread_t t[WAITERS];
        s.go = s.waiting = s.done = 0;
        CHECK_OK(mproc_lock_init(&s.lock, 0));
        CHECK_OK(mproc_condition_init(&s.cond, &s.lock, 0));
        for (int i = 0; i < WAITERS; i++)
            t[i] = test_start_thread(waiter, NULL);
        mproc_condition pace;
        CHECK_OK(mproc_condition_init(&pace, &s.lock, 0));
        CHECK_OK(mproc_lock_acquire(&s.lock, -1));
        /* Poll until every waiter is inside wait (they cannot notify
         * `pace`, so this is a timed re-check, bounded at 10 s). */
        int64_t end = test_now_ms() + 10000;
        while (!all_waiting(NULL) && test_now_ms() < end)
            mproc_condition_wait(&pace, 1);
        CHECK(all_waiting(NULL));
        s.go = 1;
        CHECK_OK(mproc_condition_notify_all(&s.cond));
        CHECK_OK(mproc_lock_release(&s.lock));
        for (int i = 0; i < WAITERS; i++)
            pthread_join(t[i], NULL);
        CHECK_EQ(s.done, WAITERS);
        CHECK_OK(mproc_condition_destroy(&s.cond));
        CHECK_OK(mproc_condition_destroy(&pace));
        CHECK_OK(mproc_lock_destroy(&s.lock));
    }
}

/* notify(3) of 8: at least 3 leave; notify_all then frees the rest. */
TEST(notify_n_requeues_n)
{
    pthread_t t[WAITERS];
    s.go = s.waiting = s.done = 0;
    CHECK_OK(mproc_lock_init(&s.lock, 0));
    CHECK_OK(mproc_condition_init(&s.cond, &s.lock, 0));
    for (int i = 0; i < WAITERS; i++)
        t[i] = test_start_thread(waiter, NULL);
    CHECK_OK(mproc_lock_acquire(&s.lock, -1));
    int64_t end = test_now_ms() + 10000;
    while (!all_waiting(NULL) && test_now_ms() < end) {
        CHECK_OK(mproc_lock_release(&s.lock));
        mproc_sleep_ms(1);
        CHECK_OK(mproc_lock_acquire(&s.lock, -1));
    }
    CHECK(all_waiting(NULL));
    s.go = 1;
    CHECK_OK(mproc_condition_notify(&s.cond, 3));
    CHECK_OK(mproc_lock_release(&s.lock));
    end = test_now_ms() + 10000;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&s.lock, -1));
        int done = s.done;
        CHECK_OK(mproc_lock_release(&s.lock));
        if (done >= 3)
            break;
        CHECK(test_now_ms() < end);
        mproc_sleep_ms(1);
    }
    CHECK_OK(mproc_lock_acquire(&s.lock, -1));
    CHECK_OK(mproc_condition_notify_all(&s.cond));
    CHECK_OK(mproc_lock_release(&s.lock));
    for (int i = 0; i < WAITERS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(s.done, WAITERS);
}

/* Shared state for the process test. */
struct shared {
    mproc_lock lock;
    mproc_condition cond;
    mproc_event notifier_holding;
    int waiting;
    int go;
};

static struct shared *sh;

static int proc_waiter(void *arg)
{
    (void)arg;
    int rc = mproc_lock_acquire(&sh->lock, -1);
    if (rc == -EOWNERDEAD)
        mproc_lock_consistent(&sh->lock);
    sh->waiting++;
    while (!sh->go) {
        rc = mproc_condition_wait(&sh->cond, -1);
        if (rc == -EOWNERDEAD)
            mproc_lock_consistent(&sh->lock);
        else if (rc != 0)
            return 10;
    }
    mproc_lock_release(&sh->lock);
    return 0;
}

static int proc_notifier_dies(void *arg)
{
    (void)arg;
    mproc_lock_acquire(&sh->lock, -1);
    sh->go = 1;
    mproc_condition_notify_all(&sh->cond);
    mproc_event_set(&sh->notifier_holding);
    pause(); /* killed while holding the lock */
    return 0;
}

/* Three processes wait on a shared condition; a fourth notifies all
 * (requeueing them onto the lock) and is killed while holding the lock.
 * The waiters must all get out (one of them through -EOWNERDEAD). */
TEST_T(requeued_waiters_survive_dead_notifier, 60)
{
    sh = test_map_shared(sizeof *sh);
    CHECK_OK(mproc_lock_init(&sh->lock, MPROC_SHARED));
    CHECK_OK(mproc_condition_init(&sh->cond, &sh->lock, MPROC_SHARED));
    CHECK_OK(mproc_event_init(&sh->notifier_holding, MPROC_SHARED));
    pid_t w[3];
    for (int i = 0; i < 3; i++)
        w[i] = test_fork(proc_waiter, NULL);
    int64_t end = test_now_ms() + 10000;
    for (;;) {
        CHECK_OK(mproc_lock_acquire(&sh->lock, -1));
        int n = sh->waiting;
        CHECK_OK(mproc_lock_release(&sh->lock));
        if (n == 3)
            break;
        CHECK(test_now_ms() < end);
        mproc_sleep_ms(1);
    }
    pid_t n = test_fork(proc_notifier_dies, NULL);
    CHECK_OK(mproc_event_wait(&sh->notifier_holding, 10000));
    CHECK_EQ(kill(n, SIGKILL), 0);
    for (int i = 0; i < 3; i++) {
        int st = test_wait(w[i], 20000);
        CHECK_MSG(st != -1, "waiter %d still stuck 20 s after the notifier died", i);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    test_wait(n, 5000);
    mproc_lock_counters c;
    CHECK_OK(mproc_lock_stats(&sh->lock, &c));
    CHECK_EQ(c.owner_deaths, 1);
}
