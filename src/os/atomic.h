/*
 * os/atomic.h -- atomic operations on plain integers (internal).
 *
 * Public structs (mproc_lock, ...) hold plain uint32_t/uint64_t fields so
 * that their headers stay valid C and C++; the implementation touches them
 * only through these wrappers around the GCC/Clang __atomic builtins,
 * which ThreadSanitizer understands. Each call names its memory order:
 * use the weakest one that is correct and say why at the call site.
 */
#ifndef MPROC_OS_ATOMIC_H
#define MPROC_OS_ATOMIC_H

#include <stdbool.h>
#include <stdint.h>

#define mproc__load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define mproc__load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define mproc__store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define mproc__store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define mproc__xchg(p, v, mo)      __atomic_exchange_n((p), (v), (mo))
#define mproc__fetch_add(p, v, mo) __atomic_fetch_add((p), (v), (mo))
#define mproc__fetch_sub(p, v, mo) __atomic_fetch_sub((p), (v), (mo))
#define mproc__fetch_or(p, v, mo)  __atomic_fetch_or((p), (v), (mo))
#define mproc__fetch_and(p, v, mo) __atomic_fetch_and((p), (v), (mo))

/* Strong compare-and-swap; on failure *expected receives the current
 * value. `ok` orders success, failure is relaxed. */
#define mproc__cas(p, expected, desired, ok)                               \
    __atomic_compare_exchange_n((p), (expected), (desired), false, (ok),   \
                                __ATOMIC_RELAXED)

/* Holder-only counter bump: the field is written only by the thread that
 * holds the object's lock, and read racily by anyone, so a relaxed load
 * and store (no read-modify-write instruction) is enough. */
#define mproc__bump(p, v) mproc__store_relaxed((p), mproc__load_relaxed(p) + (v))

/* Tell the CPU we are spinning (saves power, frees the sibling
 * hyper-thread, avoids a memory-order mis-speculation on exit). */
static inline void mproc__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif /* MPROC_OS_ATOMIC_H */
