/*
 * sync/rlock.c -- mproc_rlock: a reentrant lock on top of mproc_lock.
 *
 * The inner lock's word names the holder; `_count` (levels held) is read
 * and written only by the holder, so it needs no atomics: the inner
 * lock's acquire/release order it between successive holders. A holder
 * that dies leaves a stale count; the next holder resets it to 1.
 */
#include <errno.h>

#include "os/atomic.h"
#include "os/sys.h"
#include "sync/lock_internal.h"

#define RLOCK_MAGIC 0x724c6b21u

static bool rlock_valid(const mproc_rlock *r)
{
    return r && mproc__load_relaxed(&r->_magic) == RLOCK_MAGIC &&
           mproc__lock_valid(&r->_lock);
}

int mproc_rlock_init(mproc_rlock *r, unsigned flags)
{
    if (!r)
        return -EINVAL;
    int rc = mproc_lock_init(&r->_lock, flags);
    if (rc != 0)
        return rc;
    r->_count = 0;
    r->_reserved = 0;
    mproc__store_release(&r->_magic, RLOCK_MAGIC);
    return 0;
}

int mproc_rlock_destroy(mproc_rlock *r)
{
    if (!rlock_valid(r))
        return -EINVAL;
    int rc = mproc_lock_destroy(&r->_lock);
    if (rc == 0)
        mproc__store_release(&r->_magic, 0);
    return rc;
}

/* Called by the holder only: one more level, or the first. */
static int enter(mproc_rlock *r, int rc)
{
    if (rc == 0 || rc == -EOWNERDEAD)
        r->_count = 1;
    return rc;
}

int mproc__rlock_acquire(mproc_rlock *r, int64_t deadline)
{
    if (mproc__lock_owned(&r->_lock)) {
        if (r->_count == UINT32_MAX)
            return -EOVERFLOW;
        r->_count++;
        return 0;
    }
    return enter(r, mproc__lock_acquire(&r->_lock, deadline));
}

int mproc_rlock_acquire(mproc_rlock *r, int64_t timeout_ms)
{
    if (!rlock_valid(r))
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    return rc != 0 ? rc : mproc__rlock_acquire(r, deadline);
}

int mproc_rlock_try(mproc_rlock *r)
{
    if (!rlock_valid(r))
        return -EINVAL;
    /* As for locks: an acquire whose deadline has passed. */
    int rc = mproc__rlock_acquire(r, 0);
    return rc == -ETIMEDOUT ? -EBUSY : rc;
}

int mproc_rlock_release(mproc_rlock *r)
{
    if (!rlock_valid(r))
        return -EINVAL;
    if (!mproc__lock_owned(&r->_lock))
        return -EPERM;
    if (--r->_count > 0)
        return 0;
    return mproc__lock_release(&r->_lock);
}

int mproc_rlock_is_owned(const mproc_rlock *r)
{
    if (!rlock_valid(r))
        return -EINVAL;
    return mproc__lock_owned(&r->_lock);
}

int mproc_rlock_consistent(mproc_rlock *r)
{
    if (!rlock_valid(r))
        return -EINVAL;
    return mproc_lock_consistent(&r->_lock);
}

int mproc_rlock_stats(const mproc_rlock *r, mproc_lock_counters *out)
{
    if (!rlock_valid(r))
        return -EINVAL;
    return mproc_lock_stats(&r->_lock, out);
}

/* For the condition: drop every level (returning how many) and take
 * them back. The caller holds the lock. */
uint32_t mproc__rlock_save(mproc_rlock *r)
{
    uint32_t n = r->_count;
    r->_count = 0;
    mproc__lock_release(&r->_lock);
    return n;
}

int mproc__rlock_restore(mproc_rlock *r, uint32_t count)
{
    int rc = mproc__lock_acquire_requeued(&r->_lock);
    r->_count = count;
    return rc;
}
