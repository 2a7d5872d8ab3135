/*
 * sync/lock_internal.h -- lock operations shared by the sync layer's
 * files (rlock, condition, barrier). Arguments are already validated.
 */
#ifndef MPROC_SYNC_LOCK_INTERNAL_H
#define MPROC_SYNC_LOCK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "mproc/sync.h"

/* Upper bound on spin rounds before sleeping (adaptive below it); 0
 * turns spinning off. A tuning knob for benchmarks, not an API. */
extern unsigned mproc__lock_spin_max;

bool mproc__lock_valid(const mproc_lock *l);
bool mproc__lock_is_shared(const mproc_lock *l);
/* True if the calling thread holds l. */
bool mproc__lock_owned(const mproc_lock *l);
/* Acquire by absolute deadline (os/sys.h); results as mproc_lock_acquire. */
int mproc__lock_acquire(mproc_lock *l, int64_t deadline);
int mproc__lock_try(mproc_lock *l);
/* Re-acquire after a condition wait, as a thread that may have been
 * requeued onto the lock's futex: always leaves WAITERS set, so the
 * release wakes the next requeued sleeper. No timeout. */
int mproc__lock_acquire_requeued(mproc_lock *l);
/* The holder prepares to requeue condition waiters onto its lock: sets
 * WAITERS (so its release wakes one of them) and returns the futex word. */
uint32_t *mproc__lock_prepare_requeue(mproc_lock *l);
int mproc__lock_release(mproc_lock *l);

/* rlock: acquire by deadline; drop all levels and restore them (for
 * condition waits; the caller holds the rlock). */
int mproc__rlock_acquire(mproc_rlock *r, int64_t deadline);
uint32_t mproc__rlock_save(mproc_rlock *r);
int mproc__rlock_restore(mproc_rlock *r, uint32_t count); /* requeue-aware */

#endif /* MPROC_SYNC_LOCK_INTERNAL_H */
