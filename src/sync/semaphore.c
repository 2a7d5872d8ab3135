/*
 * sync/semaphore.c -- mproc_semaphore: counting (and bounded) semaphore.
 *
 * `_value` (free permits) is the futex word. Acquire decrements it with a
 * CAS when positive; otherwise it registers in `_waiters` and sleeps
 * while the value is 0. Release adds to the value, then wakes if anyone
 * is registered. The two sides are a Dekker pair (seq_cst on both the
 * waiter's increment-then-reload and the releaser's add-then-load), so
 * either the releaser sees the waiter, or the waiter sees the new value
 * (and futex_wait refuses to sleep on a changed word).
 */
#include <errno.h>
#include <limits.h>

#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/sys.h"

#define SEM_MAGIC      0x53656d00u
#define SEM_MAGIC_MASK 0xffffff00u
#define SEM_FLAGS      (MPROC_SHARED | MPROC_BOUNDED)

static bool sem_valid(const mproc_semaphore *s)
{
    return s && (mproc__load_relaxed(&s->_magic) & SEM_MAGIC_MASK) == SEM_MAGIC;
}

static bool sem_shared(const mproc_semaphore *s)
{
    return (mproc__load_relaxed(&s->_magic) & MPROC_SHARED) != 0;
}

int mproc_semaphore_init(mproc_semaphore *s, unsigned value, unsigned flags)
{
    if (!s || (flags & ~SEM_FLAGS) || value > MPROC_SEM_VALUE_MAX)
        return -EINVAL;
    *s = (mproc_semaphore){ 0 };
    s->_value = value;
    s->_max = (flags & MPROC_BOUNDED) ? value : MPROC_SEM_VALUE_MAX;
    mproc__store_release(&s->_magic, SEM_MAGIC | flags);
    return 0;
}

int mproc_semaphore_destroy(mproc_semaphore *s)
{
    if (!sem_valid(s))
        return -EINVAL;
    /* A waiter killed inside acquire leaves its count behind, so a count
     * alone does not prove anyone waits: wake the futex and refuse only
     * if a sleeper was there (it re-checks and sleeps again). */
    if (mproc__load_relaxed(&s->_waiters) != 0 &&
        mproc__futex_wake(&s->_value, INT_MAX, sem_shared(s)) > 0)
        return -EBUSY;
    mproc__store_release(&s->_magic, 0);
    return 0;
}

/* One permit if there is one; true on success. Acquire order: what the
 * releaser did before releasing is visible to us. */
static bool take(mproc_semaphore *s)
{
    uint32_t v = mproc__load_relaxed(&s->_value);
    while (v > 0)
        if (mproc__cas(&s->_value, &v, v - 1, __ATOMIC_ACQUIRE))
            return true;
    return false;
}

int mproc_semaphore_try(mproc_semaphore *s)
{
    if (!sem_valid(s))
        return -EINVAL;
    return take(s) ? 0 : -EAGAIN;
}

int mproc_semaphore_acquire(mproc_semaphore *s, int64_t timeout_ms)
{
    if (!sem_valid(s))
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    /* A short spin catches a release that is about to happen. */
    for (int i = 0; i < 100; i++) {
        if (take(s))
            return 0;
        if (deadline != MPROC__FOREVER && i == 0 && mproc__now() >= deadline)
            return -ETIMEDOUT;
        mproc__cpu_relax();
    }
    bool shared = sem_shared(s);
    for (;;) {
        mproc__fetch_add(&s->_waiters, 1, __ATOMIC_SEQ_CST);
        int r = 0;
        if (__atomic_load_n(&s->_value, __ATOMIC_SEQ_CST) == 0)
            r = mproc__futex_wait(&s->_value, 0, deadline, shared);
        mproc__fetch_sub(&s->_waiters, 1, __ATOMIC_RELAXED);
        if (take(s))
            return 0;
        if (r == -ETIMEDOUT || mproc__expired(deadline))
            return -ETIMEDOUT;
    }
}

int mproc_semaphore_release(mproc_semaphore *s, unsigned n)
{
    if (!sem_valid(s) || n == 0)
        return -EINVAL;
    uint32_t v = mproc__load_relaxed(&s->_value);
    do {
        if (n > s->_max || v > s->_max - n)
            return -EOVERFLOW;
    } while (!__atomic_compare_exchange_n(&s->_value, &v, v + n, false,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    if (__atomic_load_n(&s->_waiters, __ATOMIC_SEQ_CST) != 0)
        mproc__futex_wake(&s->_value, n > INT_MAX ? INT_MAX : (int)n, sem_shared(s));
    return 0;
}

int mproc_semaphore_value(const mproc_semaphore *s)
{
    if (!sem_valid(s))
        return -EINVAL;
    return (int)mproc__load_relaxed(&s->_value);
}
