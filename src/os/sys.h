/*
 * os/sys.h -- the os layer's internal interface: the replaceable system
 * call table, futexes, deadlines, thread identity and liveness.
 *
 * Every OS call that a test may want to fault or delay (the clock, futex
 * wait/wake, fork, kill) goes through `mproc__sys`, a table of function
 * pointers that tests swap with mproc__sys_set(). The hot paths of the
 * sync layer never reach it: an uncontended lock is one CAS.
 */
#ifndef MPROC_OS_SYS_H
#define MPROC_OS_SYS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/os.h"

/* A deadline is an absolute CLOCK_MONOTONIC time in ns; this one never
 * comes. */
#define MPROC__FOREVER INT64_MAX

typedef struct mproc__sysops {
    /* CLOCK_MONOTONIC in ns. */
    int64_t (*now_ns)(void);
    /* Sleep while *addr == val, until woken or `deadline` (absolute ns,
     * MPROC__FOREVER for none). shared=false adds FUTEX_PRIVATE_FLAG.
     * Returns 0 (woken, maybe spuriously), -EAGAIN (*addr != val),
     * -ETIMEDOUT, -EINTR. */
    int (*futex_wait)(uint32_t *addr, uint32_t val, int64_t deadline, bool shared);
    /* Wake up to n sleepers on addr; returns how many woke, or -errno. */
    int (*futex_wake)(uint32_t *addr, int n, bool shared);
    /* If *addr == val: wake up to `wake` sleepers on addr and move up to
     * `requeue` others to sleep on addr2 (FUTEX_CMP_REQUEUE). Returns the
     * number woken plus moved, -EAGAIN if *addr != val, or -errno. */
    int (*futex_requeue)(uint32_t *addr, int wake, uint32_t *addr2, int requeue,
                         uint32_t val, bool shared);
    /* fork(2): child pid, 0 in the child, -errno. */
    pid_t (*fork)(void);
    /* kill(2): 0 or -errno. */
    int (*kill)(pid_t pid, int sig);
} mproc__sysops;

/* The real system calls. */
extern const mproc__sysops mproc__sys_real;

/* The table in use (read with an atomic load: tests may swap it). */
const mproc__sysops *mproc__sys(void);

/* Swap in a table (NULL restores mproc__sys_real); returns the old one.
 * For tests: swap while no other thread is inside a futex call. */
const mproc__sysops *mproc__sys_set(const mproc__sysops *ops);

static inline int64_t mproc__now(void)
{
    return mproc__sys()->now_ns();
}

static inline int mproc__futex_wait(uint32_t *addr, uint32_t val,
                                    int64_t deadline, bool shared)
{
    return mproc__sys()->futex_wait(addr, val, deadline, shared);
}

static inline int mproc__futex_wake(uint32_t *addr, int n, bool shared)
{
    return mproc__sys()->futex_wake(addr, n, shared);
}

static inline int mproc__futex_requeue(uint32_t *addr, int wake, uint32_t *addr2,
                                       int requeue, uint32_t val, bool shared)
{
    return mproc__sys()->futex_requeue(addr, wake, addr2, requeue, val, shared);
}

/*
 * mproc__deadline - turn a timeout_ms argument into a deadline.
 * -1 gives MPROC__FOREVER, 0 gives "now" (already passed), a positive
 * value now + timeout (saturating to MPROC__FOREVER). Returns 0, or
 * -EINVAL for timeout_ms < -1.
 */
int mproc__deadline(int64_t timeout_ms, int64_t *deadline);

/* True if the deadline has passed. */
static inline bool mproc__expired(int64_t deadline)
{
    return deadline != MPROC__FOREVER && mproc__now() >= deadline;
}

/* Per-thread identity cache (sys.c explains the fork epoch). Initial-exec
 * TLS: reading it is one %fs-relative load, also inside libmproc.so. */
#define MPROC__TLS_IE __attribute__((tls_model("initial-exec")))

/* Library set-up that must run at load time, before a spawned child's
 * entry (workers/process.c), which runs the child's task from its own
 * constructor and never returns to the loader: prioritised constructors
 * run before all default ones, whatever the link order. */
#define MPROC__EARLY_INIT __attribute__((constructor(150)))

extern _Thread_local pid_t mproc__cached_tid MPROC__TLS_IE;
extern _Thread_local uint32_t mproc__cached_epoch MPROC__TLS_IE;
extern uint32_t *mproc__epoch_word;
pid_t mproc__tid_refresh(void);

/* The calling thread's kernel id, cached per thread and refreshed in the
 * child of any fork. */
static inline pid_t mproc__tid(void)
{
    /* mproc__epoch_word is set before any thread's cached tid is
     * (pthread_once orders it), so it is read only when the tid is set. */
    pid_t t = mproc__cached_tid;
    if (__builtin_expect(t != 0, 1) &&
        __builtin_expect(mproc__cached_epoch ==
                             __atomic_load_n(mproc__epoch_word, __ATOMIC_RELAXED), 1))
        return t;
    return mproc__tid_refresh();
}

/* The calling thread's start time (field 22 of /proc/thread-self/stat,
 * in clock ticks since boot), cached per thread; 0 if /proc is
 * unreadable. Used with a tid to tell a thread from a later one that
 * reused its id. */
uint64_t mproc__thread_start(void);

/*
 * mproc__task_dead - is the task (thread) `tid` gone? It is if it does
 * not exist, is a zombie, or is a different task than the one whose start
 * time's low 32 bits are `start32` (0 = unknown, not compared). Reads
 * /proc/<tid>/stat; without /proc falls back to kill(tid, 0).
 * Slow (a few syscalls): call it only when already about to sleep.
 */
bool mproc__task_dead(pid_t tid, uint32_t start32);

/* The next number of the xorshift64 generator with state *s (never
 * seeded with 0): cheap randomness for back-off and victim choice. */
static inline uint64_t mproc__xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

#endif /* MPROC_OS_SYS_H */
