/*
 * sync/event.c -- mproc_event: a flag threads and processes wait on.
 *
 * The futex word holds SET (bit 0) and WAITERS (bit 1). A waiter that
 * finds the flag clear sets WAITERS and sleeps on the exact value it
 * installed; set() swaps in SET alone and wakes everyone if WAITERS was
 * there. clear() drops SET only, keeping WAITERS for sleepers (at worst
 * one spare wake-up later).
 */
#include <errno.h>
#include <limits.h>

#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/sys.h"

#define EV_SET     1u
#define EV_WAITERS 2u
#define EV_MAGIC      0x45760000u
#define EV_MAGIC_MASK 0xffffff00u

static bool ev_valid(const mproc_event *e)
{
    return e && (mproc__load_relaxed(&e->_magic) & EV_MAGIC_MASK) == EV_MAGIC;
}

static bool ev_shared(const mproc_event *e)
{
    return (mproc__load_relaxed(&e->_magic) & MPROC_SHARED) != 0;
}

int mproc_event_init(mproc_event *e, unsigned flags)
{
    if (!e || (flags & ~MPROC_SHARED))
        return -EINVAL;
    *e = (mproc_event){ 0 };
    mproc__store_release(&e->_magic, EV_MAGIC | flags);
    return 0;
}

int mproc_event_destroy(mproc_event *e)
{
    if (!ev_valid(e))
        return -EINVAL;
    mproc__store_release(&e->_magic, 0);
    return 0;
}

int mproc_event_set(mproc_event *e)
{
    if (!ev_valid(e))
        return -EINVAL;
    /* Release: what the setter did before set() is visible to waiters. */
    uint32_t old = mproc__xchg(&e->_word, EV_SET, __ATOMIC_RELEASE);
    if (old & EV_WAITERS)
        mproc__futex_wake(&e->_word, INT_MAX, ev_shared(e));
    return 0;
}

int mproc_event_clear(mproc_event *e)
{
    if (!ev_valid(e))
        return -EINVAL;
    mproc__fetch_and(&e->_word, ~EV_SET, __ATOMIC_RELAXED);
    return 0;
}

int mproc_event_is_set(const mproc_event *e)
{
    if (!ev_valid(e))
        return -EINVAL;
    return (mproc__load_acquire(&e->_word) & EV_SET) != 0;
}

int mproc_event_wait(mproc_event *e, int64_t timeout_ms)
{
    if (!ev_valid(e))
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    bool shared = ev_shared(e);
    for (;;) {
        uint32_t w = mproc__load_acquire(&e->_word);
        if (w & EV_SET)
            return 0;
        if (mproc__expired(deadline))
            return -ETIMEDOUT;
        if (!(w & EV_WAITERS) &&
            !mproc__cas(&e->_word, &w, w | EV_WAITERS, __ATOMIC_RELAXED))
            continue;
        if (mproc__futex_wait(&e->_word, w | EV_WAITERS, deadline, shared) == -ETIMEDOUT)
            return (mproc__load_acquire(&e->_word) & EV_SET) ? 0 : -ETIMEDOUT;
    }
}
