/*
 * exec/pool.c -- recycled memory for futures.
 *
 * Every submit needs a future and every release frees one; with malloc
 * that was a fifth of a tiny task's cost, most of it glibc handing the
 * pages of a burst back to the kernel and faulting them in again. Freed
 * futures are kept instead, in magazines of BATCH blocks:
 *
 *   - each thread has a current magazine (0..BATCH blocks) and a spare
 *     (full or absent), touched by that thread only, without atomics;
 *   - a thread whose magazines are both full hands the spare to a depot
 *     (a short list of full magazines under an internal mutex), and one
 *     whose magazines are empty takes one from there: the lock is taken
 *     once per BATCH frees or allocations, never per task, so futures
 *     freed by workers (a caller that asked for no future) come back to
 *     the submitting thread;
 *   - the depot holds at most DEPOT_MAX magazines; beyond that, and for
 *     the partial magazine of an exiting thread, blocks go back to free().
 *
 * So at most DEPOT_MAX * BATCH blocks plus two magazines per thread are
 * kept: 16 MiB of 128-byte futures, returned only at exit. Builds
 * with AddressSanitizer bypass the pool, so that a use of a released
 * future is still reported there.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "exec/exec_internal.h"
#include "os/sys.h"
#include "sync/mutex.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL_OFF 1
#endif
#endif
#ifndef POOL_OFF
#define POOL_OFF 0
#endif

#define BATCH 256
#define DEPOT_MAX 512

/* A pooled block: its first bytes link it into a magazine, and the first
 * block of a magazine in the depot links the next magazine. */
struct block {
    struct block *next;
    struct block *next_magazine;
};

struct magazines {
    struct block *cur;
    unsigned ncur;
    struct block *spare; /* BATCH blocks or NULL */
    bool registered;     /* the thread-exit destructor will run */
};

static _Thread_local struct magazines tls MPROC__TLS_IE;

static struct {
    uint32_t lock; /* sync/mutex.h */
    struct block *full;
    unsigned nfull;
} depot;

static pthread_key_t exit_key;
static bool exit_key_ok;

static void free_chain(struct block *b)
{
    while (b) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
}

/* Give a full magazine to the depot, or back to free() if it is full. */
static void depot_put(struct block *m)
{
    mproc__mutex_lock(&depot.lock);
    bool kept = depot.nfull < DEPOT_MAX;
    if (kept) {
        m->next_magazine = depot.full;
        depot.full = m;
        __atomic_store_n(&depot.nfull, depot.nfull + 1, __ATOMIC_RELAXED);
    }
    mproc__mutex_unlock(&depot.lock);
    if (!kept)
        free_chain(m);
}

static struct block *depot_take(void)
{
    /* An unlocked peek: a stale zero only means one more malloc. */
    if (__atomic_load_n(&depot.nfull, __ATOMIC_RELAXED) == 0)
        return NULL;
    mproc__mutex_lock(&depot.lock);
    struct block *m = depot.full;
    if (m) {
        depot.full = m->next_magazine;
        __atomic_store_n(&depot.nfull, depot.nfull - 1, __ATOMIC_RELAXED);
    }
    mproc__mutex_unlock(&depot.lock);
    return m;
}

/* A thread exits: its full spare goes to the depot, the rest is freed. */
static void thread_exit(void *unused)
{
    (void)unused;
    struct magazines *t = &tls;
    if (t->spare)
        depot_put(t->spare);
    free_chain(t->cur);
    *t = (struct magazines){ 0 };
}

/* fork: the child must not inherit the depot's lock held by a thread
 * that does not exist there. */
static void fork_prepare(void)
{
    mproc__mutex_lock(&depot.lock);
}

static void fork_release(void)
{
    mproc__mutex_unlock(&depot.lock);
}

static void fork_child(void)
{
    depot.lock = MPROC__MUTEX_INIT;
}

/* Set up when the library is loaded, before the program can have threads
 * or fork: a lazy pthread_once here could be caught in progress by a fork
 * from another thread, and ThreadSanitizer's pthread_once (unlike glibc's)
 * then blocks the child for ever. */
MPROC__EARLY_INIT static void pool_init(void)
{
    exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
    pthread_atfork(fork_prepare, fork_release, fork_child);
}

void *mproc__future_alloc(void)
{
    if (POOL_OFF)
        return malloc(sizeof(mproc_future));
    struct magazines *t = &tls;
    if (t->ncur == 0) {
        if (t->spare) {
            t->cur = t->spare;
            t->spare = NULL;
        } else if (!(t->cur = depot_take())) {
            return malloc(sizeof(mproc_future));
        }
        t->ncur = BATCH;
    }
    struct block *b = t->cur;
    t->cur = b->next;
    t->ncur--;
    return b;
}

void mproc__future_recycle(void *p)
{
    if (POOL_OFF) {
        free(p);
        return;
    }
    struct magazines *t = &tls;
    if (!t->registered) {
        /* Without a destructor this thread's blocks would leak at its
         * exit: then it does not keep any. */
        t->registered = exit_key_ok && pthread_setspecific(exit_key, t) == 0;
        if (!t->registered) {
            free(p);
            return;
        }
    }
    if (t->ncur == BATCH) {
        if (t->spare)
            depot_put(t->spare);
        t->spare = t->cur;
        t->cur = NULL;
        t->ncur = 0;
    }
    struct block *b = p;
    b->next = t->cur;
    t->cur = b;
    t->ncur++;
}
