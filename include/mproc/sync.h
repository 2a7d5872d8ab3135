/*
 * mproc/sync.h -- synchronization primitives for threads and processes:
 * lock, rlock, condition, semaphore, event, barrier, and exponential
 * back-off.
 *
 * Each primitive is a small fixed-size struct the caller embeds anywhere:
 * on the stack, in a struct, in memory from mproc_shared_calloc, or in a
 * mapping of the caller's own (mmap MAP_SHARED, shm_open, memfd). Set one
 * up with `mproc_X_init(&x, flags)` and tear it down with
 * `mproc_X_destroy(&x)`. The fields are private: read them only through
 * these functions.
 *
 * Flags:
 *   0              the primitive is used by the threads of one process;
 *   MPROC_SHARED   the primitive lives in memory shared between processes
 *                  and may be used from all of them (and their threads).
 *                  It holds no pointers and no per-process data, so the
 *                  mapping may sit at different addresses in each process.
 *                  Processes sharing a primitive must share a PID
 *                  namespace (owners are recorded by thread id).
 *
 * Every wait takes `int64_t timeout_ms`: -1 waits forever, 0 does not wait,
 * a positive value waits at most that long on CLOCK_MONOTONIC; values below
 * -1 are -EINVAL. A wait that runs out returns -ETIMEDOUT, never before its
 * deadline. Waits are not interrupted by signals.
 *
 * Calls on a NULL, never-initialised or destroyed primitive return -EINVAL
 * (detected by a magic number, so a destroyed primitive is caught unless
 * its memory was reused).
 *
 * Robustness: a MPROC_SHARED lock or rlock whose holder dies (the thread
 * exits, or its process is killed) is recovered by the next acquirer, which
 * gets -EOWNERDEAD while holding the lock. The data the lock protects may
 * be half-updated; the acquirer repairs it and calls mproc_lock_consistent
 * (or mproc_rlock_consistent). Until someone does, every acquirer gets
 * -EOWNERDEAD (and the lock), so a repair is never silently skipped. No
 * waiter hangs forever because a holder died: waiters notice a dead holder
 * within about 100 ms even when no further release happens, and a thread
 * that keeps trying (mproc_lock_try, or acquires with timeouts too short
 * to sleep through a check) notices after a few milliseconds of seeing
 * the same holder. Locks without
 * MPROC_SHARED are not checked for dead holders (a thread that exits while
 * holding one leaves it held, as with Python's threading.Lock).
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stdint.h>

#include "os.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MPROC_SHARED  0x1u /* usable between processes */
#define MPROC_BOUNDED 0x2u /* semaphore: release past the initial value fails */

/* ------------------------------------------------------------------ */
/* Lock                                                                */
/* ------------------------------------------------------------------ */

/* A mutual-exclusion lock, owned by the thread that acquired it (Python's
 * threading.Lock / multiprocessing.Lock, with an owner check). Spins
 * briefly and adaptively, then sleeps on a futex. 64 bytes. */
typedef struct mproc_lock {
    uint32_t _word;        /* futex: owner tid | WAITERS | OWNER_DIED */
    uint32_t _magic;       /* initialised marker and flags */
    uint32_t _spin;        /* adaptive spin estimate */
    uint32_t _pad;
    uint64_t _owner_id;    /* holder tid and start time (MPROC_SHARED) */
    uint64_t _acquisitions;
    uint64_t _contended;
    uint64_t _wait_ns;
    uint64_t _owner_deaths;
    uint64_t _reserved;
} mproc_lock;

/* Counters kept by every lock, updated by the holder (so they cost no
 * atomic operation) and read with mproc_lock_stats. */
typedef struct mproc_lock_counters {
    uint64_t acquisitions; /* successful acquisitions */
    uint64_t contended;    /* of those, how many found the lock held */
    uint64_t wait_ns;      /* total time contended ones spent asleep */
    uint64_t owner_deaths; /* times the lock was taken over from a dead holder */
} mproc_lock_counters;

/*
 * mproc_lock_init - set up a lock, unlocked.
 * flags: 0 or MPROC_SHARED. Errors: -EINVAL (NULL, unknown flags).
 * Must not race with any other call on the same lock.
 */
MPROC_API int mproc_lock_init(mproc_lock *l, unsigned flags);

/*
 * mproc_lock_destroy - tear a lock down. Afterwards every call on it
 * returns -EINVAL until it is initialised again.
 * Errors: -EINVAL (NULL or not initialised), -EBUSY (held by a live
 * thread; the lock is left intact).
 */
MPROC_API int mproc_lock_destroy(mproc_lock *l);

/*
 * mproc_lock_acquire - take the lock, waiting at most timeout_ms.
 * Returns 0 when acquired; -EOWNERDEAD when acquired from a dead holder
 * (see the header comment); -ETIMEDOUT when the timeout ran out (also for
 * timeout 0 on a held lock); -EDEADLK when the calling thread already
 * holds it (a plain lock is not reentrant: use mproc_rlock); -EINVAL.
 * Thread-safe and process-safe (MPROC_SHARED). Blocks.
 */
MPROC_API int mproc_lock_acquire(mproc_lock *l, int64_t timeout_ms);

/*
 * mproc_lock_try - take the lock only if it is free. Never blocks.
 * Returns 0, -EOWNERDEAD (see mproc_lock_acquire), -EBUSY when held,
 * -EDEADLK when held by the caller, -EINVAL. On a MPROC_SHARED lock, a
 * thread that keeps trying while the same holder keeps it checks every
 * few milliseconds whether that holder died, and takes the lock over
 * (-EOWNERDEAD) if so.
 */
MPROC_API int mproc_lock_try(mproc_lock *l);

/*
 * mproc_lock_release - release a lock the calling thread holds, waking
 * one waiter if there is any.
 * Errors: -EPERM when the caller is not the holder (nothing changes),
 * -EINVAL. Never blocks.
 */
MPROC_API int mproc_lock_release(mproc_lock *l);

/*
 * mproc_lock_locked - 1 if the lock is held by anyone, 0 if free,
 * -EINVAL. A snapshot: it may change as soon as it is read.
 */
MPROC_API int mproc_lock_locked(const mproc_lock *l);

/*
 * mproc_lock_consistent - after an acquire returned -EOWNERDEAD and the
 * caller repaired the protected data, mark the lock consistent so later
 * acquirers get plain 0 again. The caller keeps holding the lock.
 * Errors: -EPERM (caller is not the holder), -EINVAL (not initialised, or
 * the lock is not marked as recovered from a dead holder).
 */
MPROC_API int mproc_lock_consistent(mproc_lock *l);

/*
 * mproc_lock_stats - copy the lock's contention counters into *out.
 * Readable at any time from any thread or process; the values are
 * consistent with each other only when the lock is not being acquired
 * concurrently. Errors: -EINVAL.
 */
MPROC_API int mproc_lock_stats(const mproc_lock *l, mproc_lock_counters *out);

/*
 * mproc_lock_stats_reset - zero the contention counters. The caller must
 * hold the lock (so no acquisition races with the reset).
 * Errors: -EPERM (not the holder), -EINVAL.
 */
MPROC_API int mproc_lock_stats_reset(mproc_lock *l);

/* ------------------------------------------------------------------ */
/* Reentrant lock                                                      */
/* ------------------------------------------------------------------ */

/* A lock its holder may acquire again; it is released when every
 * acquisition has been matched by a release (Python's threading.RLock).
 * 80 bytes. */
typedef struct mproc_rlock {
    mproc_lock _lock;
    uint32_t _count;
    uint32_t _magic;
    uint64_t _reserved;
} mproc_rlock;

/* mproc_rlock_init - set up a reentrant lock. As mproc_lock_init. */
MPROC_API int mproc_rlock_init(mproc_rlock *r, unsigned flags);

/* mproc_rlock_destroy - as mproc_lock_destroy (-EBUSY while held). */
MPROC_API int mproc_rlock_destroy(mproc_rlock *r);

/*
 * mproc_rlock_acquire - take the lock, or take it once more if the caller
 * already holds it (never blocks then). Returns 0, -EOWNERDEAD (the
 * previous holder died; the caller now holds it once), -ETIMEDOUT,
 * -EOVERFLOW (held 2^32-1 times already), -EINVAL. Blocks.
 */
MPROC_API int mproc_rlock_acquire(mproc_rlock *r, int64_t timeout_ms);

/* mproc_rlock_try - as mproc_rlock_acquire without waiting; -EBUSY when
 * another thread holds it. */
MPROC_API int mproc_rlock_try(mproc_rlock *r);

/*
 * mproc_rlock_release - undo one acquisition; the lock is freed when the
 * count reaches zero. Errors: -EPERM (caller is not the holder), -EINVAL.
 */
MPROC_API int mproc_rlock_release(mproc_rlock *r);

/* mproc_rlock_is_owned - 1 if the calling thread holds it, 0 if not,
 * -EINVAL. */
MPROC_API int mproc_rlock_is_owned(const mproc_rlock *r);

/* mproc_rlock_consistent - as mproc_lock_consistent. */
MPROC_API int mproc_rlock_consistent(mproc_rlock *r);

/* mproc_rlock_stats - as mproc_lock_stats (counts outermost acquisitions). */
MPROC_API int mproc_rlock_stats(const mproc_rlock *r, mproc_lock_counters *out);

/* ------------------------------------------------------------------ */
/* Condition                                                           */
/* ------------------------------------------------------------------ */

/* A condition variable bound to a lock or rlock (Python's
 * threading.Condition). 112 bytes. */
typedef struct mproc_condition {
    uint32_t _seq;      /* futex: bumped by every notify */
    uint32_t _magic;
    int64_t _lock_off;  /* bound lock, as an offset from this struct */
    uint32_t _waiters;  /* threads inside wait */
    uint32_t _kind;     /* plain lock or rlock */
    uint64_t _reserved;
    mproc_rlock _own;   /* the lock used when none is given */
} mproc_condition;

/*
 * mproc_condition_init - set up a condition bound to `lock`, or, when lock
 * is NULL, to an rlock of its own (as Python's Condition()).
 *
 * The binding is stored as the distance from the condition to the lock,
 * so with MPROC_SHARED the lock must live in the same shared mapping as
 * the condition (typically both in one shared struct). flags must match
 * the lock's MPROC_SHARED flag. The lock must outlive the condition.
 * Errors: -EINVAL (NULL condition, lock not initialised, flags mismatch).
 */
MPROC_API int mproc_condition_init(mproc_condition *c, mproc_lock *lock,
                                   unsigned flags);

/* mproc_condition_init_rlock - as mproc_condition_init, bound to an
 * rlock (wait releases every level of it and restores them after). */
MPROC_API int mproc_condition_init_rlock(mproc_condition *c, mproc_rlock *lock,
                                         unsigned flags);

/* mproc_condition_destroy - tear down; -EBUSY while threads sleep in it
 * (waiters that were killed do not count), -EINVAL. Does not destroy a
 * lock given at init. */
MPROC_API int mproc_condition_destroy(mproc_condition *c);

/* mproc_condition_acquire - acquire the bound lock (Python's
 * `with cond:`). Results as mproc_lock_acquire / mproc_rlock_acquire. */
MPROC_API int mproc_condition_acquire(mproc_condition *c, int64_t timeout_ms);

/* mproc_condition_release - release the bound lock; -EPERM if the caller
 * does not hold it. */
MPROC_API int mproc_condition_release(mproc_condition *c);

/*
 * mproc_condition_wait - atomically release the bound lock and sleep
 * until notified or timed out, then re-acquire the lock before returning
 * (also on timeout). The caller must hold the lock.
 * Returns 0 when woken, -ETIMEDOUT, -EOWNERDEAD (woken, and the lock was
 * re-acquired from a dead holder), -EPERM (caller does not hold the lock;
 * nothing happens), -EINVAL. Wake-ups may be spurious: wait in a loop
 * that re-checks the predicate, or use mproc_condition_wait_for.
 */
MPROC_API int mproc_condition_wait(mproc_condition *c, int64_t timeout_ms);

/*
 * mproc_condition_wait_for - wait until pred(arg) returns non-zero,
 * evaluating it with the lock held, first before any wait (Python's
 * wait_for). Returns 0 once pred is true, -ETIMEDOUT when the timeout ran
 * out with pred still false, or an error of mproc_condition_wait.
 */
MPROC_API int mproc_condition_wait_for(mproc_condition *c,
                                       int (*pred)(void *arg), void *arg,
                                       int64_t timeout_ms);

/*
 * mproc_condition_notify - wake up to n threads waiting on the condition.
 * The caller must hold the lock (-EPERM otherwise). n = 0 is a no-op.
 * Errors: -EPERM, -EINVAL.
 */
MPROC_API int mproc_condition_notify(mproc_condition *c, unsigned n);

/* mproc_condition_notify_all - wake every waiter; as notify. */
MPROC_API int mproc_condition_notify_all(mproc_condition *c);

/* ------------------------------------------------------------------ */
/* Semaphore                                                           */
/* ------------------------------------------------------------------ */

/* A counting semaphore (Python's Semaphore; with MPROC_BOUNDED, its
 * BoundedSemaphore). 32 bytes. */
typedef struct mproc_semaphore {
    uint32_t _value;   /* futex */
    uint32_t _magic;
    uint32_t _max;     /* bound (MPROC_BOUNDED) or MPROC_SEM_VALUE_MAX */
    uint32_t _waiters;
    uint64_t _reserved[2];
} mproc_semaphore;

#define MPROC_SEM_VALUE_MAX 0x7fffffffu

/*
 * mproc_semaphore_init - set up a semaphore with `value` permits.
 * flags: MPROC_SHARED, MPROC_BOUNDED (releases past `value` fail).
 * Errors: -EINVAL (NULL, unknown flags, value > MPROC_SEM_VALUE_MAX).
 */
MPROC_API int mproc_semaphore_init(mproc_semaphore *s, unsigned value,
                                   unsigned flags);

/* mproc_semaphore_destroy - -EBUSY while threads sleep on it (waiters
 * that were killed do not count), -EINVAL. */
MPROC_API int mproc_semaphore_destroy(mproc_semaphore *s);

/*
 * mproc_semaphore_acquire - take one permit, waiting at most timeout_ms
 * for one to be released. Returns 0, -ETIMEDOUT, -EINVAL. Blocks.
 * Waiters are not served in strict FIFO order.
 */
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *s, int64_t timeout_ms);

/* mproc_semaphore_try - take a permit if one is free: 0, -EAGAIN,
 * -EINVAL. Never blocks. */
MPROC_API int mproc_semaphore_try(mproc_semaphore *s);

/*
 * mproc_semaphore_release - return n permits (n >= 1), waking up to n
 * waiters. Errors: -EOVERFLOW (the value would pass the bound, or
 * MPROC_SEM_VALUE_MAX; nothing is released), -EINVAL (n == 0). Any
 * thread or process may release, not only one that acquired.
 */
MPROC_API int mproc_semaphore_release(mproc_semaphore *s, unsigned n);

/* mproc_semaphore_value - the current number of free permits (>= 0), or
 * -EINVAL. A snapshot. */
MPROC_API int mproc_semaphore_value(const mproc_semaphore *s);

/* ------------------------------------------------------------------ */
/* Event                                                               */
/* ------------------------------------------------------------------ */

/* A flag threads wait on (Python's threading.Event). 16 bytes. */
typedef struct mproc_event {
    uint32_t _word;   /* futex: SET | WAITERS */
    uint32_t _magic;
    uint64_t _reserved;
} mproc_event;

/* mproc_event_init - set up an event, not set. -EINVAL on bad input. */
MPROC_API int mproc_event_init(mproc_event *e, unsigned flags);

/* mproc_event_destroy - -EINVAL if not initialised. Waiters must be gone. */
MPROC_API int mproc_event_destroy(mproc_event *e);

/* mproc_event_set - set the flag and wake every waiter. Never blocks.
 * Returns 0 or -EINVAL. */
MPROC_API int mproc_event_set(mproc_event *e);

/* mproc_event_clear - reset the flag. Returns 0 or -EINVAL. */
MPROC_API int mproc_event_clear(mproc_event *e);

/* mproc_event_is_set - 1 if set, 0 if not, -EINVAL. Never blocks. */
MPROC_API int mproc_event_is_set(const mproc_event *e);

/*
 * mproc_event_wait - wait until the flag is set. Returns 0 at once if it
 * is already set, 0 when it gets set (also if it is cleared again before
 * the waiter gets to run, as in Python), -ETIMEDOUT (never before the
 * deadline), -EINVAL. Blocks.
 */
MPROC_API int mproc_event_wait(mproc_event *e, int64_t timeout_ms);

/* ------------------------------------------------------------------ */
/* Barrier                                                             */
/* ------------------------------------------------------------------ */

/* A cyclic barrier for a fixed number of parties (Python's
 * threading.Barrier). 96 bytes. */
typedef struct mproc_barrier {
    uint32_t _gen;     /* futex: bumped when a round ends */
    uint32_t _magic;
    uint32_t _parties;
    uint32_t _count;   /* arrived in this round */
    uint32_t _ok_gen;  /* last round that ended by everyone arriving */
    uint32_t _broken;
    uint64_t _reserved;
    mproc_lock _lock;
} mproc_barrier;

/* mproc_barrier_init - set up a barrier for `parties` (>= 1) parties.
 * Errors: -EINVAL. */
MPROC_API int mproc_barrier_init(mproc_barrier *b, unsigned parties,
                                 unsigned flags);

/* mproc_barrier_destroy - -EBUSY while parties wait, -EINVAL. */
MPROC_API int mproc_barrier_destroy(mproc_barrier *b);

/*
 * mproc_barrier_wait - wait until `parties` callers have arrived, then all
 * go on. Returns the caller's arrival index in this round, 0 ..
 * parties-1 (exactly one caller gets each index, the last to arrive gets
 * parties-1), or:
 *   -EPIPE      the barrier is broken (aborted, reset while the caller
 *               waited, or another party timed out);
 *   -ETIMEDOUT  the caller's timeout ran out; the barrier breaks, so the
 *               other parties get -EPIPE (as in Python);
 *   -EINVAL.
 * A broken barrier stays broken until mproc_barrier_reset. Blocks.
 */
MPROC_API int mproc_barrier_wait(mproc_barrier *b, int64_t timeout_ms);

/* mproc_barrier_abort - break the barrier: current and future waiters get
 * -EPIPE until a reset. Returns 0 or -EINVAL. */
MPROC_API int mproc_barrier_abort(mproc_barrier *b);

/* mproc_barrier_reset - return the barrier to its empty, unbroken state;
 * parties waiting at that moment get -EPIPE. Returns 0 or -EINVAL. */
MPROC_API int mproc_barrier_reset(mproc_barrier *b);

/* mproc_barrier_parties - the number of parties, or -EINVAL. */
MPROC_API int mproc_barrier_parties(const mproc_barrier *b);

/* mproc_barrier_n_waiting - parties waiting in the current round, or
 * -EINVAL. A snapshot. */
MPROC_API int mproc_barrier_n_waiting(const mproc_barrier *b);

/* mproc_barrier_broken - 1 if broken, 0 if not, -EINVAL. */
MPROC_API int mproc_barrier_broken(const mproc_barrier *b);

/* ------------------------------------------------------------------ */
/* Exponential back-off                                                */
/* ------------------------------------------------------------------ */

/* Retry pacing for contended work (the notes' "back-off exponencial"):
 * each wait lasts a random time in [d/2, d], and d doubles after each
 * wait, from min_ns up to max_ns. Short waits spin with the CPU's pause
 * instruction; waits of 50 us or more sleep. Per-thread state: one
 * mproc_backoff must not be used by two threads at once. */
typedef struct mproc_backoff {
    uint64_t _delay_ns;
    uint64_t _min_ns;
    uint64_t _max_ns;
    uint64_t _rng;
    uint32_t _attempts;
    uint32_t _pad;
} mproc_backoff;

/*
 * mproc_backoff_init - start at min_ns, cap at max_ns. 0 picks the
 * defaults (min 100 ns, max 1 ms). Errors: -EINVAL (NULL, min > max).
 */
MPROC_API int mproc_backoff_init(mproc_backoff *b, uint64_t min_ns,
                                 uint64_t max_ns);

/* mproc_backoff_wait - wait the current delay, then double it.
 * Returns the nanoseconds chosen for this wait. */
MPROC_API uint64_t mproc_backoff_wait(mproc_backoff *b);

/* mproc_backoff_reset - back to min_ns (call after a success). */
MPROC_API void mproc_backoff_reset(mproc_backoff *b);

/* mproc_backoff_attempts - waits done since init or the last reset. */
MPROC_API uint32_t mproc_backoff_attempts(const mproc_backoff *b);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_SYNC_H */
