/*
 * sync/barrier.c -- mproc_barrier: a cyclic barrier.
 *
 * State (`_count`, `_broken`, `_ok_gen`) changes under the internal lock;
 * `_gen` is the futex word, bumped (with release) whenever a round ends,
 * normally or broken. A waiter of round g sleeps while `_gen` == g, then
 * learns its round's outcome from bit g % 32 of `_ok_gen` (set when the
 * round ended by everyone arriving, cleared when it ended broken). The
 * bit of round g is only rewritten when round g + 32 ends; a waiter of
 * round g is one of the parties that round g + 1 needs unless more
 * threads than parties use the barrier, so in practice it always reads
 * its own round's bit.
 */
#include <errno.h>
#include <limits.h>

#include "os/atomic.h"
#include "os/sys.h"
#include "sync/lock_internal.h"

#define BAR_MAGIC      0x42617200u
#define BAR_MAGIC_MASK 0xffffff00u

static bool bar_valid(const mproc_barrier *b)
{
    return b && (mproc__load_relaxed(&b->_magic) & BAR_MAGIC_MASK) == BAR_MAGIC;
}

static bool bar_shared(const mproc_barrier *b)
{
    return (mproc__load_relaxed(&b->_magic) & MPROC_SHARED) != 0;
}

int mproc_barrier_init(mproc_barrier *b, unsigned parties, unsigned flags)
{
    if (!b || parties == 0 || parties > INT_MAX || (flags & ~MPROC_SHARED))
        return -EINVAL;
    *b = (mproc_barrier){ 0 };
    int rc = mproc_lock_init(&b->_lock, flags);
    if (rc != 0)
        return rc;
    b->_parties = parties;
    mproc__store_release(&b->_magic, BAR_MAGIC | flags);
    return 0;
}

/* The internal critical sections are a few stores; if a process died in
 * one, carry on with what it left. */
static void lock(mproc_barrier *b)
{
    if (mproc__lock_acquire(&b->_lock, MPROC__FOREVER) == -EOWNERDEAD)
        mproc_lock_consistent(&b->_lock);
}

static void unlock(mproc_barrier *b)
{
    mproc__lock_release(&b->_lock);
}

/* End the current round (lock held): record its outcome, wake sleepers. */
static void end_round(mproc_barrier *b, bool ok)
{
    uint32_t g = mproc__load_relaxed(&b->_gen);
    uint32_t bit = 1u << (g % 32);
    uint32_t mask = mproc__load_relaxed(&b->_ok_gen);
    mproc__store_relaxed(&b->_ok_gen, ok ? mask | bit : mask & ~bit);
    mproc__store_relaxed(&b->_count, 0);
    mproc__store_release(&b->_gen, g + 1);
    mproc__futex_wake(&b->_gen, INT_MAX, bar_shared(b));
}

static int outcome(mproc_barrier *b, uint32_t g, int index)
{
    uint32_t mask = mproc__load_acquire(&b->_ok_gen);
    return (mask & (1u << (g % 32))) ? index : -EPIPE;
}

int mproc_barrier_wait(mproc_barrier *b, int64_t timeout_ms)
{
    if (!bar_valid(b))
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;

    lock(b);
    if (b->_broken) {
        unlock(b);
        return -EPIPE;
    }
    uint32_t g = mproc__load_relaxed(&b->_gen);
    uint32_t index = mproc__load_relaxed(&b->_count);
    if (index + 1 == b->_parties) {
        end_round(b, true);
        unlock(b);
        return (int)index;
    }
    mproc__store_relaxed(&b->_count, index + 1);
    unlock(b);

    bool shared = bar_shared(b);
    while (mproc__load_acquire(&b->_gen) == g) {
        if (mproc__futex_wait(&b->_gen, g, deadline, shared) != -ETIMEDOUT)
            continue;
        lock(b);
        if (mproc__load_relaxed(&b->_gen) == g) {
            /* Still our round: time is up for us, and the round breaks
             * for everyone (as Python does). */
            b->_broken = 1;
            end_round(b, false);
            unlock(b);
            return -ETIMEDOUT;
        }
        unlock(b);
    }
    return outcome(b, g, (int)index);
}

int mproc_barrier_abort(mproc_barrier *b)
{
    if (!bar_valid(b))
        return -EINVAL;
    lock(b);
    b->_broken = 1;
    if (mproc__load_relaxed(&b->_count) > 0)
        end_round(b, false);
    unlock(b);
    return 0;
}

int mproc_barrier_reset(mproc_barrier *b)
{
    if (!bar_valid(b))
        return -EINVAL;
    lock(b);
    if (mproc__load_relaxed(&b->_count) > 0)
        end_round(b, false);
    b->_broken = 0;
    unlock(b);
    return 0;
}

int mproc_barrier_destroy(mproc_barrier *b)
{
    if (!bar_valid(b))
        return -EINVAL;
    if (mproc__load_relaxed(&b->_count) > 0)
        return -EBUSY;
    int rc = mproc_lock_destroy(&b->_lock);
    if (rc != 0)
        return rc;
    mproc__store_release(&b->_magic, 0);
    return 0;
}

int mproc_barrier_parties(const mproc_barrier *b)
{
    return bar_valid(b) ? (int)b->_parties : -EINVAL;
}

int mproc_barrier_n_waiting(const mproc_barrier *b)
{
    return bar_valid(b) ? (int)mproc__load_relaxed(&b->_count) : -EINVAL;
}

int mproc_barrier_broken(const mproc_barrier *b)
{
    return bar_valid(b) ? (mproc__load_relaxed(&b->_broken) != 0) : -EINVAL;
}
