/*
 * sync/condition.c -- mproc_condition: a sequence-counter condition
 * variable bound to an mproc_lock or mproc_rlock.
 *
 * `_seq` is the futex word. A waiter reads it while holding the lock,
 * releases the lock, and sleeps while `_seq` still has that value; a
 * notifier (also holding the lock) bumps `_seq` and wakes n sleepers.
 * Because the waiter read `_seq` before releasing the lock and the
 * notifier bumps it after acquiring it, a notify that follows the
 * waiter's release always changes the value the waiter compares, so no
 * wake-up is lost. A waiter that has not gone to sleep yet when a notify
 * lands returns at once: that is the spurious wake-up the API allows.
 *
 * Notifying more than one waiter wakes one and requeues the others onto
 * the lock's futex (FUTEX_CMP_REQUEUE): they would only wake to queue up
 * behind the notifier's lock anyway, and now the lock's releases hand
 * them on one at a time instead of a thundering herd. The notifier sets
 * the lock's WAITERS bit first, and every thread leaving a wait
 * re-acquires with WAITERS set (mproc__lock_acquire_requeued), so each
 * release wakes the next of them. A requeued waiter no longer runs the
 * lock's dead-holder checks, so waiters of a shared condition wake every
 * REQUEUE_CHECK_NS to see whether they were notified (seq changed) and,
 * if so, continue into the lock's own acquire, which does.
 *
 * `_waiters` counts threads between "about to release" and "woken";
 * incremented under the lock, so a notifier holding the lock that reads
 * 0 knows nobody can miss its (skipped) wake.
 *
 * The bound lock is stored as its distance from the condition, so the
 * pair works at any address in every process that maps them.
 */
#include <errno.h>
#include <limits.h>

#include "os/atomic.h"
#include "os/sys.h"
#include "sync/lock_internal.h"

#define COND_MAGIC      0x436f6e00u /* low byte: flags */
#define COND_MAGIC_MASK 0xffffff00u
#define REQUEUE_CHECK_NS (100 * 1000000LL)
#define KIND_LOCK  1u
#define KIND_RLOCK 2u

static bool cond_valid(const mproc_condition *c)
{
    return c && (mproc__load_relaxed(&c->_magic) & COND_MAGIC_MASK) == COND_MAGIC;
}

static bool cond_shared(const mproc_condition *c)
{
    return (mproc__load_relaxed(&c->_magic) & MPROC_SHARED) != 0;
}

static void *bound(const mproc_condition *c)
{
    return (char *)c + c->_lock_off;
}

static mproc_lock *bound_lock(const mproc_condition *c)
{
    return c->_kind == KIND_RLOCK ? &((mproc_rlock *)bound(c))->_lock
                                  : (mproc_lock *)bound(c);
}

static int bind(mproc_condition *c, void *lock, uint32_t kind, unsigned flags)
{
    c->_seq = 0;
    c->_waiters = 0;
    c->_kind = kind;
    c->_lock_off = (int64_t)((char *)lock - (char *)c);
    c->_reserved = 0;
    mproc__store_release(&c->_magic, COND_MAGIC | flags);
    return 0;
}

static bool flags_match(const mproc_lock *l, unsigned flags)
{
    return mproc__lock_is_shared(l) == ((flags & MPROC_SHARED) != 0);
}

int mproc_condition_init(mproc_condition *c, mproc_lock *lock, unsigned flags)
{
    if (!c || (flags & ~MPROC_SHARED))
        return -EINVAL;
    if (!lock) {
        int rc = mproc_rlock_init(&c->_own, flags);
        return rc != 0 ? rc : bind(c, &c->_own, KIND_RLOCK, flags);
    }
    if (!mproc__lock_valid(lock) || !flags_match(lock, flags))
        return -EINVAL;
    return bind(c, lock, KIND_LOCK, flags);
}

int mproc_condition_init_rlock(mproc_condition *c, mproc_rlock *lock, unsigned flags)
{
    if (!c || !lock || (flags & ~MPROC_SHARED))
        return -EINVAL;
    if (mproc_rlock_is_owned(lock) < 0 || !flags_match(&lock->_lock, flags))
        return -EINVAL;
    return bind(c, lock, KIND_RLOCK, flags);
}

int mproc_condition_destroy(mproc_condition *c)
{
    if (!cond_valid(c))
        return -EINVAL;
    /* As for semaphores: a waiter killed inside wait leaves its count
     * behind, so refuse only if waking the futex finds a sleeper (a live
     * one treats it as a spurious wake-up). */
    if (mproc__load_relaxed(&c->_waiters) != 0 &&
        mproc__futex_wake(&c->_seq, INT_MAX, cond_shared(c)) > 0)
        return -EBUSY;
    if (bound(c) == (void *)&c->_own) {
        int rc = mproc_rlock_destroy(&c->_own);
        if (rc != 0)
            return rc;
    }
    mproc__store_release(&c->_magic, 0);
    return 0;
}

int mproc_condition_acquire(mproc_condition *c, int64_t timeout_ms)
{
    if (!cond_valid(c))
        return -EINVAL;
    return c->_kind == KIND_RLOCK ? mproc_rlock_acquire(bound(c), timeout_ms)
                                  : mproc_lock_acquire(bound(c), timeout_ms);
}

int mproc_condition_release(mproc_condition *c)
{
    if (!cond_valid(c))
        return -EINVAL;
    return c->_kind == KIND_RLOCK ? mproc_rlock_release(bound(c))
                                  : mproc_lock_release(bound(c));
}

/* Wait by absolute deadline; the caller holds the lock (checked). */
static int wait_until(mproc_condition *c, int64_t deadline)
{
    if (!mproc__lock_owned(bound_lock(c)))
        return -EPERM;
    bool shared = cond_shared(c);
    uint32_t seq = mproc__load_relaxed(&c->_seq);
    mproc__fetch_add(&c->_waiters, 1, __ATOMIC_RELAXED);

    uint32_t levels = 0;
    if (c->_kind == KIND_RLOCK)
        levels = mproc__rlock_save(bound(c));
    else
        mproc__lock_release(bound(c));

    bool timed_out = false;
    while (mproc__load_acquire(&c->_seq) == seq) {
        int64_t until = deadline;
        if (shared && deadline - mproc__now() > REQUEUE_CHECK_NS)
            until = mproc__now() + REQUEUE_CHECK_NS;
        if (mproc__futex_wait(&c->_seq, seq, until, shared) == -ETIMEDOUT &&
            until == deadline) {
            timed_out = mproc__load_acquire(&c->_seq) == seq;
            break;
        }
    }
    mproc__fetch_sub(&c->_waiters, 1, __ATOMIC_RELAXED);

    /* Python re-acquires without a timeout, even after a timed-out wait. */
    int rc = c->_kind == KIND_RLOCK ? mproc__rlock_restore(bound(c), levels)
                                    : mproc__lock_acquire_requeued(bound(c));
    if (rc == -EOWNERDEAD)
        return rc;
    return timed_out ? -ETIMEDOUT : 0;
}

int mproc_condition_wait(mproc_condition *c, int64_t timeout_ms)
{
    if (!cond_valid(c))
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    return rc != 0 ? rc : wait_until(c, deadline);
}

int mproc_condition_wait_for(mproc_condition *c, int (*pred)(void *arg), void *arg,
                             int64_t timeout_ms)
{
    if (!cond_valid(c) || !pred)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    if (!mproc__lock_owned(bound_lock(c)))
        return -EPERM;
    while (!pred(arg)) {
        if (mproc__expired(deadline))
            return -ETIMEDOUT;
        rc = wait_until(c, deadline);
        if (rc == -ETIMEDOUT)
            return pred(arg) ? 0 : -ETIMEDOUT;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int notify(mproc_condition *c, int n)
{
    if (!cond_valid(c))
        return -EINVAL;
    if (!mproc__lock_owned(bound_lock(c)))
        return -EPERM;
    if (n == 0 || mproc__load_relaxed(&c->_waiters) == 0)
        return 0;
    bool shared = cond_shared(c);
    uint32_t seq = mproc__fetch_add(&c->_seq, 1, __ATOMIC_RELEASE) + 1;
    if (n == 1) {
        mproc__futex_wake(&c->_seq, 1, shared);
        return 0;
    }
    uint32_t *lock_word = mproc__lock_prepare_requeue(bound_lock(c));
    /* -EAGAIN cannot happen (seq changes only under the lock we hold);
     * on any failure fall back to waking them all. */
    if (mproc__futex_requeue(&c->_seq, 1, lock_word, n - 1, seq, shared) < 0)
        mproc__futex_wake(&c->_seq, n, shared);
    return 0;
}

int mproc_condition_notify(mproc_condition *c, unsigned n)
{
    return notify(c, n > INT_MAX ? INT_MAX : (int)n);
}

int mproc_condition_notify_all(mproc_condition *c)
{
    return notify(c, INT_MAX);
}
