/*
 * sync/mutex.h -- a 4-byte private futex mutex for mproc's own short
 * critical sections (internal).
 *
 * For internal bookkeeping that does not need what mproc_lock offers
 * (owner checks, statistics, recovery from dead holders, sharing between
 * processes), at a sixteenth of its size. The word is 0 (free), 1 (held)
 * or 2 (held, maybe with sleepers); a thread that sleeps takes the lock
 * as 2, so the release that follows wakes the next sleeper.
 */
#ifndef MPROC_SYNC_MUTEX_H
#define MPROC_SYNC_MUTEX_H

#include <stdint.h>

#include "os/atomic.h"
#include "os/sys.h"

#define MPROC__MUTEX_INIT 0u

static inline void mproc__mutex_lock(uint32_t *w)
{
    uint32_t c = 0;
    if (__builtin_expect(mproc__cas(w, &c, 1, __ATOMIC_ACQUIRE), 1))
        return;
    for (int i = 0; i < 100 && c != 2; i++) { /* holders leave quickly */
        mproc__cpu_relax();
        c = 0;
        if (mproc__cas(w, &c, 1, __ATOMIC_ACQUIRE))
            return;
    }
    while (mproc__xchg(w, 2, __ATOMIC_ACQUIRE) != 0)
        mproc__futex_wait(w, 2, MPROC__FOREVER, false);
}

static inline void mproc__mutex_unlock(uint32_t *w)
{
    if (mproc__xchg(w, 0, __ATOMIC_RELEASE) == 2)
        mproc__futex_wake(w, 1, false);
}

#endif /* MPROC_SYNC_MUTEX_H */
