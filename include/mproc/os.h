/*
 * mproc/os.h -- the public face of the os layer: error codes, the
 * monotonic clock, and memory shared across fork.
 *
 * Everything else in the os layer (futexes, the fault-injectable system
 * call table, arenas) is internal and lives in src/os/.
 *
 * Error convention (used by every mproc call that can fail):
 *   0                 success
 *   -errno            a system error: -EINVAL, -ETIMEDOUT, -EAGAIN, ...
 *   MPROC_E*          mproc's own errors, negative and below MPROC_EBASE,
 *                     so they never collide with an errno value.
 */
#ifndef MPROC_OS_H
#define MPROC_OS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Visibility of the public API when built as a shared library. */
#if defined(__GNUC__)
#define MPROC_API __attribute__((visibility("default")))
#else
#define MPROC_API
#endif

/* Version of the library this header belongs to. */
#define MPROC_VERSION_MAJOR 0
#define MPROC_VERSION_MINOR 1
#define MPROC_VERSION_PATCH 0

/* mproc's own error codes. All are below MPROC_EBASE (errno values on Linux
 * are below 4096), so `code <= MPROC_EBASE` tells them from -errno. */
#define MPROC_EBASE         (-10000)
#define MPROC_ECANCELLED    (-10001) /* the task or future was cancelled */
#define MPROC_EWORKERDIED   (-10002) /* the worker running the task died */
#define MPROC_ETASKTIMEOUT  (-10003) /* the task ran past its own deadline */
#define MPROC_EBROKEN       (-10004) /* the executor is broken */
#define MPROC_ESHUTDOWN     (-10005) /* the executor or pool was shut down */
#define MPROC_EMEMLIMIT     (-10006) /* the worker exceeded its memory limit */
#define MPROC_ETHREADS      (-10007) /* fork refused: the process runs threads */
#define MPROC_ENOSYMBOL     (-10008) /* spawn: task function not found there */
#define MPROC_ELAST         (-10008)

/*
 * mproc_strerror - a human-readable text for an mproc result code.
 *
 * Accepts 0, any -errno value and every MPROC_E* code; unknown codes get a
 * generic text. Positive values are read as errno values, so
 * mproc_strerror(EINVAL) and mproc_strerror(-EINVAL) agree.
 * Returns a pointer to a static, immutable string; never NULL.
 * Thread-safe and async-signal-safe.
 */
MPROC_API const char *mproc_strerror(int code);

/*
 * mproc_errname - the symbolic name of a result code ("EINVAL",
 * "MPROC_EWORKERDIED", "OK" for 0, "UNKNOWN" otherwise).
 * Returns a static string; never NULL. Thread-safe and async-signal-safe.
 */
MPROC_API const char *mproc_errname(int code);

/*
 * mproc_now_ns - nanoseconds on CLOCK_MONOTONIC, the clock every mproc
 * timeout is measured against. Cannot fail. Thread-safe.
 */
MPROC_API int64_t mproc_now_ns(void);

/*
 * mproc_cpu_count - the number of CPUs this process may run on (its
 * affinity mask; the online CPUs if that cannot be read). At least 1.
 * Thread-safe.
 */
MPROC_API unsigned mproc_cpu_count(void);

/*
 * mproc_sleep_ms - sleep for at least `ms` milliseconds on the monotonic
 * clock, resuming after signals. ms <= 0 returns at once.
 * Returns 0. Thread-safe.
 */
MPROC_API int mproc_sleep_ms(int64_t ms);

/*
 * mproc_shared_calloc - `size` zeroed bytes of memory shared with every
 * process forked from this one afterwards (and with the forks of those).
 *
 * The memory comes from a process-tree arena backed by a memfd: it stays
 * mapped at the same address in forked children, so pointers into it are
 * valid in parent and child alike, and it disappears when the last process
 * holding it exits (it cannot leak into /dev/shm). It is the natural home
 * for an `mproc_lock` or `mproc_event` initialised with MPROC_SHARED.
 *
 * Blocks are 16-byte aligned. The arena is created by the first call in a
 * process; every process forked from that one afterwards shares it (it is
 * one mapping), so a block allocated by any of them, at any time, is seen
 * at the same address by all of them. Processes forked before the first
 * call get an arena of their own.
 *
 * Meant for small objects: primitives, counters, small structs. Freed
 * memory is reused for blocks of the same size or, split, smaller ones;
 * free blocks are not merged back into larger ones, so large buffers
 * belong in a shared mapping of their own.
 *
 * Returns NULL with errno set: EINVAL for size 0, ENOMEM when the arena
 * (MPROC_SHARED_ARENA_SIZE bytes of address space) is exhausted or cannot
 * be created. Thread-safe and process-safe (lock-free); a process killed
 * in the middle of a call can leak at most the block it was allocating.
 */
MPROC_API void *mproc_shared_calloc(size_t size);

/*
 * mproc_shared_free - return a block from mproc_shared_calloc. NULL is a
 * no-op. Freeing a pointer that did not come from mproc_shared_calloc is
 * detected when possible and ignored (returns -EINVAL).
 * Any process sharing the arena may free a block another allocated.
 * Returns 0 or -EINVAL. Thread-safe and process-safe.
 */
MPROC_API int mproc_shared_free(void *p);

/* Address space reserved for the shared arena. Pages are only backed by
 * memory once touched. */
#define MPROC_SHARED_ARENA_SIZE ((size_t)256 << 20)

#ifdef __cplusplus
}
#endif
#endif /* MPROC_OS_H */
