/*
 * sync/event.c -- mproc_event: a flag threads and processes wait on.
 *
 * The futex word holds SET (bit 0), WAITERS (bit 1) and, above them, a
 * generation that every clear-to-set transition bumps. A waiter that
 * finds the flag clear notes the generation, sets WAITERS and sleeps on
 * the exact value it installed; set() installs SET with the next
 * generation and wakes everyone if WAITERS was there. A waiter returns
 * when it sees SET *or* a newer generation, so a set() immediately
 * followed by clear() still releases everyone who was waiting, as
 * Python's Event does. clear() drops SET only, keeping WAITERS for
 * sleepers (at worst one spare wake-up later).
 */
#include <errno.h>
#include <limits.h>

#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/sys.h"

#define EV_SET     1u
#define EV_WAITERS 2u
#define EV_GEN     4u /* one generation */
#define EV_GEN_MASK (~3u)
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
    uint32_t old = mproc__load_relaxed(&e->_word);
    uint32_t next;
    do {
        if (old & EV_SET)
            return 0; /* already set: its waiters were released then */
        next = ((old & EV_GEN_MASK) + EV_GEN) | EV_SET;
        /* Release: what the setter did before set() is visible to the
         * waiters it releases. */
    } while (!mproc__cas(&e->_word, &old, next, __ATOMIC_RELEASE));
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

/* Released: the flag is set, or was set since generation `gen`. */
static bool released(uint32_t w, uint32_t gen)
{
    return (w & EV_SET) || (w & EV_GEN_MASK) != gen;
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
    uint32_t w = mproc__load_acquire(&e->_word);
    uint32_t gen = w & EV_GEN_MASK;
    for (;;) {
        if (released(w, gen))
            return 0;
        if (mproc__expired(deadline))
            return -ETIMEDOUT;
        if (!(w & EV_WAITERS) &&
            !__atomic_compare_exchange_n(&e->_word, &w, w | EV_WAITERS, false,
                                         __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            continue;
        w |= EV_WAITERS;
        int r = mproc__futex_wait(&e->_word, w, deadline, shared);
        w = mproc__load_acquire(&e->_word);
        if (r == -ETIMEDOUT)
            return released(w, gen) ? 0 : -ETIMEDOUT;
    }
}
