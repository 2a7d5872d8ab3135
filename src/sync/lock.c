/*
 * sync/lock.c -- mproc_lock: an owned, adaptive, robust futex mutex.
 *
 * The futex word
 * --------------
 *   bits 0-29  TID         kernel id of the holder, 0 when free
 *   bit 30     OWNER_DIED  the data may be inconsistent: a holder died
 *   bit 31     WAITERS     somebody may sleep on the word
 * (the same layout the kernel uses for robust futexes).
 *
 * States and transitions (T = a tid, W = WAITERS, D = OWNER_DIED):
 *   0 / D          free             --acquire (CAS)-->  T | (D)
 *   T | (D)        held, no sleeper --waiter sets W-->  T | W | (D)
 *   T | W | (D)    held, sleepers   --release (XCHG)--> 0 / D, wake one
 *   T(dead) | ...  holder died      --takeover (CAS)--> T' | W | D
 * D survives releases until mproc_lock_consistent clears it, so every
 * acquirer learns about the dead holder until someone repairs the data.
 *
 * Acquire: one CAS 0 -> T on the fast path. Otherwise spin (waking a
 * sleeper on another core costs tens of microseconds on a VM, far more
 * than most critical sections), then set W and futex-wait. The spinner
 * looks at the word after pauses that double up to SPIN_DELAY_MAX, and
 * tries a CAS only when the word shows no holder: a holder that releases
 * and re-takes the lock in a loop keeps its cache line for a while
 * instead of losing it to every look (bench_sync: the bare-counter case
 * went from 0.8x to about 1.2-1.3x pthread's throughput). The budget is
 * adaptive: `_spin` moves 1/8 towards the rounds a successful spin took
 * and decays by 1/8 when spinning failed, so a lock held for long
 * stops costing its waiters CPU. A
 * thread that slept takes the lock with W set, because it cannot know
 * whether others still sleep; the cost is at most one spare wake-up.
 * Every sleep compares against a word value with W set, so a release
 * (which wakes when W was set) can never be missed.
 *
 * Dead holders (MPROC_SHARED only): a sleeping waiter wakes up every few
 * milliseconds (2 ms doubling to 100 ms) and asks /proc whether the
 * holder's thread still exists. `_owner_id` records the holder's tid and
 * the low 32 bits of its start time, so a recycled tid is recognised.
 * The holder writes `_owner_id` after its CAS and clears it before its
 * release store; a waiter loads the word with acquire before reading it,
 * so through the release sequence it sees either 0 or the current
 * holder's id, never a stale one (see read_owner_id). Only the waiter
 * whose CAS replaces the exact dead word wins the takeover.
 *
 * Counters are written only by the holder (relaxed load + store, no
 * atomic RMW) and read racily by mproc_lock_stats.
 */
#include "sync/lock_internal.h"

#include <errno.h>
#include <limits.h>

#include "os/atomic.h"
#include "os/sys.h"

#define LOCK_WAITERS    0x80000000u
#define LOCK_OWNER_DIED 0x40000000u
#define LOCK_TID_MASK   0x3fffffffu

#define LOCK_MAGIC      0x6d4c6b00u /* low byte holds the flags */
#define LOCK_MAGIC_MASK 0xffffff00u
#define LOCK_FLAGS      (MPROC_SHARED)

/* Liveness checks of a shared lock's holder, while asleep. */
#define CHECK_FIRST_NS  (2 * 1000000LL)
#define CHECK_MAX_NS    (100 * 1000000LL)

unsigned mproc__lock_spin_max = 2000;

/* Longest pause between two looks at the word while spinning. */
#define SPIN_DELAY_MAX 128u

static bool lock_valid(const mproc_lock *l)
{
    return l && (mproc__load_relaxed(&l->_magic) & LOCK_MAGIC_MASK) == LOCK_MAGIC;
}

static bool lock_shared(const mproc_lock *l)
{
    return (mproc__load_relaxed(&l->_magic) & MPROC_SHARED) != 0;
}

bool mproc__lock_valid(const mproc_lock *l)
{
    return lock_valid(l);
}

bool mproc__lock_is_shared(const mproc_lock *l)
{
    return lock_shared(l);
}

int mproc_lock_init(mproc_lock *l, unsigned flags)
{
    if (!l || (flags & ~LOCK_FLAGS))
        return -EINVAL;
    *l = (mproc_lock){ 0 };
    l->_spin = 8;
    /* Release: a thread that sees the magic sees the zeroed fields. */
    mproc__store_release(&l->_magic, LOCK_MAGIC | flags);
    return 0;
}

/* Who holds it, as far as the word says. */
static uint32_t holder(const mproc_lock *l)
{
    return mproc__load_relaxed(&l->_word) & LOCK_TID_MASK;
}

bool mproc__lock_owned(const mproc_lock *l)
{
    return holder(l) == (uint32_t)mproc__tid();
}

static uint64_t my_owner_id(uint32_t tid)
{
    return (mproc__thread_start() << 32) | tid;
}

/* Read the holder id recorded for word value w (loaded with acquire). If
 * the recorded tid is not w's holder (not published yet) the start time
 * is unknown: return just the tid. */
static uint64_t read_owner_id(const mproc_lock *l, uint32_t w)
{
    uint64_t id = mproc__load_relaxed(&l->_owner_id);
    uint32_t tid = w & LOCK_TID_MASK;
    return (uint32_t)id == tid ? id : tid;
}

static bool holder_dead(const mproc_lock *l, uint32_t w)
{
    uint64_t id = read_owner_id(l, w);
    return mproc__task_dead((pid_t)(uint32_t)id, (uint32_t)(id >> 32));
}

/* Bookkeeping once the lock is ours; `magic` as the caller loaded it. */
static inline void acquired(mproc_lock *l, uint32_t tid, uint32_t magic)
{
    if (magic & MPROC_SHARED)
        mproc__store_relaxed(&l->_owner_id, my_owner_id(tid));
    mproc__bump(&l->_acquisitions, 1);
}

/* Take a free word w (tid field 0) as ours; `extra` is WAITERS for a
 * thread that has slept. Returns 1 on success, 0 if w changed, and sets
 * *rc to 0 or -EOWNERDEAD. */
static int take_free(mproc_lock *l, uint32_t *w, uint32_t tid, uint32_t extra, int *rc)
{
    uint32_t want = tid | (*w & LOCK_OWNER_DIED) | extra;
    if (!mproc__cas(&l->_word, w, want, __ATOMIC_ACQUIRE))
        return 0;
    *rc = (want & LOCK_OWNER_DIED) ? -EOWNERDEAD : 0;
    return 1;
}

/* Replace dead holder's word w by ours; 1 on success. */
static int take_over(mproc_lock *l, uint32_t *w, uint32_t tid)
{
    uint32_t want = tid | LOCK_OWNER_DIED | LOCK_WAITERS;
    if (!mproc__cas(&l->_word, w, want, __ATOMIC_ACQUIRE))
        return 0;
    mproc__bump(&l->_owner_deaths, 1);
    return 1;
}

static unsigned spin_limit(unsigned est)
{
    unsigned max = est * 2 + 16;
    unsigned cap = mproc__load_relaxed(&mproc__lock_spin_max);
    return max < cap ? max : cap;
}

/* Spin phase: up to a bounded, adaptive number of rounds, reading the
 * word and trying a CAS only when it shows no holder. No clock reads:
 * they cost more than the critical sections spinning is for. Returns 1
 * with *rc set if the lock was taken. */
static int spin_acquire(mproc_lock *l, uint32_t tid, uint32_t extra, int *rc)
{
    unsigned est = mproc__load_relaxed(&l->_spin);
    unsigned max = spin_limit(est);
    unsigned delay = 1;
    for (unsigned i = 0; i < max; i += delay) {
        for (unsigned j = 0; j < delay; j++)
            mproc__cpu_relax();
        uint32_t w = mproc__load_relaxed(&l->_word);
        if ((w & LOCK_TID_MASK) == 0 && take_free(l, &w, tid, extra, rc)) {
            /* Holder-only update of the estimate: move 1/8 towards i. */
            mproc__store_relaxed(&l->_spin, est + ((int)i - (int)est) / 8);
            return 1;
        }
        if (delay < SPIN_DELAY_MAX)
            delay *= 2;
    }
    return 0;
}

/*
 * A call that gives up on a busy lock (a try, an acquire whose timeout ran
 * out) must not leave a loop of such calls spinning forever on a dead
 * holder's shared lock; but asking /proc costs microseconds. So each
 * thread remembers the last busy (lock, word) it gave up on, and asks only
 * once the same word has stayed busy for CHECK_FIRST_NS. A failed try
 * costs one clock read in addition to its CAS.
 */
static _Thread_local struct {
    const mproc_lock *lock;
    uint32_t word;
    int64_t check_at;
} busy_seen;

static bool busy_should_check(const mproc_lock *l, uint32_t w)
{
    int64_t now = mproc__now();
    if (busy_seen.lock != l || busy_seen.word != w) {
        busy_seen.lock = l;
        busy_seen.word = w;
        busy_seen.check_at = now + CHECK_FIRST_NS;
        return false;
    }
    if (now < busy_seen.check_at)
        return false;
    busy_seen.check_at = now + CHECK_FIRST_NS;
    return true;
}

/* About to give up on l: take it over if its holder died (rate-limited as
 * above; shared locks only). True if the caller now holds it. */
static bool give_up_check(mproc_lock *l, uint32_t tid)
{
    if (!lock_shared(l))
        return false;
    uint32_t w = mproc__load_acquire(&l->_word);
    return (w & LOCK_TID_MASK) != 0 && busy_should_check(l, w) && holder_dead(l, w) &&
           take_over(l, &w, tid);
}

/* Sleep phase. Returns 0 / -EOWNERDEAD (holding) or -ETIMEDOUT, and adds
 * the time spent from the first sleep to the last wake-up to *waited
 * (clock reads happen only around sleeps, never while holding). */
static int sleep_acquire(mproc_lock *l, uint32_t tid, int64_t deadline, int64_t *waited)
{
    bool shared = lock_shared(l);
    int64_t check_every = CHECK_FIRST_NS;
    int64_t first = 0, last = 0;
    int rc;
    for (;;) {
        uint32_t w = mproc__load_acquire(&l->_word);
        if ((w & LOCK_TID_MASK) == 0) {
            if (take_free(l, &w, tid, LOCK_WAITERS, &rc)) {
                *waited += last - first;
                return rc;
            }
            continue;
        }
        if (!(w & LOCK_WAITERS)) {
            uint32_t ww = w | LOCK_WAITERS;
            if (!mproc__cas(&l->_word, &w, ww, __ATOMIC_RELAXED))
                continue;
            w = ww;
        }
        int64_t now = mproc__now();
        if (first == 0)
            first = now;
        int64_t until = deadline;
        if (shared && now + check_every < until)
            until = now + check_every;
        int r = mproc__futex_wait(&l->_word, w, until, shared);
        last = mproc__now();
        if (r == -ETIMEDOUT) {
            if (until == deadline) {
                if (!give_up_check(l, tid))
                    return -ETIMEDOUT;
                *waited += last - first;
                return -EOWNERDEAD;
            }
            /* Time to check on the holder (shared locks only). */
            w = mproc__load_acquire(&l->_word);
            if ((w & LOCK_TID_MASK) != 0 && holder_dead(l, w) && take_over(l, &w, tid)) {
                *waited += last - first;
                return -EOWNERDEAD;
            }
            if (check_every < CHECK_MAX_NS)
                check_every *= 2;
        }
    }
}

/* Contended path: spin, then sleep; counts the wait. */
static int acquire_contended(mproc_lock *l, uint32_t tid, uint32_t extra, int64_t deadline)
{
    int rc;
    int64_t waited = 0;
    unsigned est = mproc__load_relaxed(&l->_spin);
    if (!spin_acquire(l, tid, extra, &rc)) {
        rc = sleep_acquire(l, tid, deadline, &waited);
        if (rc == -ETIMEDOUT)
            return rc;
        /* We hold it now. Spinning did not pay: spin less next time, so
         * a lock held for long stops costing its waiters CPU (the limit
         * never drops below 16 rounds, so short holds are found again). */
        mproc__store_relaxed(&l->_spin, est - est / 8);
    }
    acquired(l, tid, mproc__load_relaxed(&l->_magic));
    mproc__bump(&l->_contended, 1);
    if (waited > 0)
        mproc__bump(&l->_wait_ns, (uint64_t)waited);
    return rc;
}

/* Everything after a failed fast-path CAS that saw word w. */
static __attribute__((noinline)) int acquire_slow(mproc_lock *l, uint32_t tid, uint32_t w,
                                                  int64_t deadline)
{
    if ((w & LOCK_TID_MASK) == tid)
        return -EDEADLK;
    int rc;
    if ((w & LOCK_TID_MASK) == 0 && take_free(l, &w, tid, 0, &rc)) {
        acquired(l, tid, mproc__load_relaxed(&l->_magic)); /* free but OWNER_DIED */
        return rc;
    }
    if (deadline != MPROC__FOREVER && mproc__now() >= deadline) {
        if (!give_up_check(l, tid))
            return -ETIMEDOUT;
        acquired(l, tid, mproc__load_relaxed(&l->_magic));
        return -EOWNERDEAD;
    }
    return acquire_contended(l, tid, 0, deadline);
}

/* The fast path: one CAS from free to ours. */
static inline bool take_fast(mproc_lock *l, uint32_t tid, uint32_t magic, uint32_t *w)
{
    *w = 0;
    if (!__builtin_expect(mproc__cas(&l->_word, w, tid, __ATOMIC_ACQUIRE), 1))
        return false;
    acquired(l, tid, magic);
    return true;
}

int mproc__lock_acquire(mproc_lock *l, int64_t deadline)
{
    uint32_t tid = (uint32_t)mproc__tid();
    uint32_t w;
    if (take_fast(l, tid, mproc__load_relaxed(&l->_magic), &w))
        return 0;
    return acquire_slow(l, tid, w, deadline);
}

int mproc__lock_acquire_requeued(mproc_lock *l)
{
    return acquire_contended(l, (uint32_t)mproc__tid(), LOCK_WAITERS, MPROC__FOREVER);
}

uint32_t *mproc__lock_prepare_requeue(mproc_lock *l)
{
    mproc__fetch_or(&l->_word, LOCK_WAITERS, __ATOMIC_RELAXED);
    return &l->_word;
}

int mproc__lock_try(mproc_lock *l)
{
    /* An acquire whose deadline has passed: it takes a free lock (or a
     * dead holder's), never waits, and says -EBUSY rather than
     * -ETIMEDOUT when the lock stays held. */
    int rc = mproc__lock_acquire(l, 0);
    return rc == -ETIMEDOUT ? -EBUSY : rc;
}

static inline int release(mproc_lock *l, uint32_t magic)
{
    uint32_t tid = (uint32_t)mproc__tid();
    uint32_t w = mproc__load_relaxed(&l->_word);
    if ((w & LOCK_TID_MASK) != tid)
        return -EPERM;
    bool shared = (magic & MPROC_SHARED) != 0;
    if (shared) /* ordered before the word by the release below */
        mproc__store_relaxed(&l->_owner_id, 0);
    /* OWNER_DIED is only changed by the holder: keep it. */
    uint32_t old = mproc__xchg(&l->_word, w & LOCK_OWNER_DIED, __ATOMIC_RELEASE);
    if (old & LOCK_WAITERS)
        mproc__futex_wake(&l->_word, 1, shared);
    return 0;
}

int mproc__lock_release(mproc_lock *l)
{
    return release(l, mproc__load_relaxed(&l->_magic));
}

int mproc_lock_acquire(mproc_lock *l, int64_t timeout_ms)
{
    if (!l)
        return -EINVAL;
    uint32_t magic = mproc__load_relaxed(&l->_magic);
    if ((magic & LOCK_MAGIC_MASK) != LOCK_MAGIC || timeout_ms < -1)
        return -EINVAL;
    uint32_t tid = (uint32_t)mproc__tid();
    uint32_t w;
    if (take_fast(l, tid, magic, &w))
        return 0;
    int64_t deadline;
    mproc__deadline(timeout_ms, &deadline); /* cannot fail: checked above */
    return acquire_slow(l, tid, w, deadline);
}

int mproc_lock_try(mproc_lock *l)
{
    if (!lock_valid(l))
        return -EINVAL;
    return mproc__lock_try(l);
}

int mproc_lock_release(mproc_lock *l)
{
    if (!l)
        return -EINVAL;
    uint32_t magic = mproc__load_relaxed(&l->_magic);
    if ((magic & LOCK_MAGIC_MASK) != LOCK_MAGIC)
        return -EINVAL;
    return release(l, magic);
}

int mproc_lock_locked(const mproc_lock *l)
{
    if (!lock_valid(l))
        return -EINVAL;
    return holder(l) != 0;
}

int mproc_lock_consistent(mproc_lock *l)
{
    if (!lock_valid(l))
        return -EINVAL;
    uint32_t w = mproc__load_relaxed(&l->_word);
    if ((w & LOCK_TID_MASK) != (uint32_t)mproc__tid())
        return -EPERM;
    if (!(w & LOCK_OWNER_DIED))
        return -EINVAL;
    /* Only we change D; waiters may set W concurrently, hence the RMW. */
    mproc__fetch_and(&l->_word, ~LOCK_OWNER_DIED, __ATOMIC_RELAXED);
    return 0;
}

int mproc_lock_destroy(mproc_lock *l)
{
    if (!lock_valid(l))
        return -EINVAL;
    uint32_t w = mproc__load_acquire(&l->_word);
    if ((w & LOCK_TID_MASK) != 0 && !(lock_shared(l) && holder_dead(l, w)))
        return -EBUSY;
    mproc__store_release(&l->_magic, 0);
    return 0;
}

int mproc_lock_stats(const mproc_lock *l, mproc_lock_counters *out)
{
    if (!lock_valid(l) || !out)
        return -EINVAL;
    out->acquisitions = mproc__load_relaxed(&l->_acquisitions);
    out->contended = mproc__load_relaxed(&l->_contended);
    out->wait_ns = mproc__load_relaxed(&l->_wait_ns);
    out->owner_deaths = mproc__load_relaxed(&l->_owner_deaths);
    return 0;
}

int mproc_lock_stats_reset(mproc_lock *l)
{
    if (!lock_valid(l))
        return -EINVAL;
    if (!mproc__lock_owned(l))
        return -EPERM;
    mproc__store_relaxed(&l->_acquisitions, 0);
    mproc__store_relaxed(&l->_contended, 0);
    mproc__store_relaxed(&l->_wait_ns, 0);
    mproc__store_relaxed(&l->_owner_deaths, 0);
    return 0;
}
