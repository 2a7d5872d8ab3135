/*
 * exec/queue.h -- the two lock-free queues of the thread scheduler
 * (internal).
 *
 * mproc__deque: a Chase-Lev work-stealing deque of fixed capacity. Its
 * owner pushes and pops at the bottom (LIFO: a task's children run first,
 * while their data is in cache); any thread steals from the top (FIFO:
 * thieves take the oldest, usually largest, pieces of work).
 *
 * mproc__ring: a bounded multi-producer multi-consumer ring with a
 * sequence number per cell, for tasks submitted from outside the pool.
 *
 * Both store `void *` and hold no locks; neither allocates after init.
 */
#ifndef MPROC_EXEC_QUEUE_H
#define MPROC_EXEC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each queue keeps its read-only fields, the index consumers write and
 * the index producers write on three separate cache lines: a field read
 * on every poll must not share a line with an index written on every
 * operation (bench_exec measured the ring's put missing on every call
 * when `cells` sat beside `tail`). */
typedef struct mproc__deque {
    void **slots;
    int64_t mask;                /* capacity - 1 (a power of two) */
    _Alignas(64) int64_t top;    /* next to steal; only ever grows */
    _Alignas(64) int64_t bottom; /* next free slot; owner only writes */
} mproc__deque;

/* Returns 0 or -ENOMEM. cap_log2: capacity is 1 << cap_log2. */
int mproc__deque_init(mproc__deque *d, unsigned cap_log2);
void mproc__deque_fini(mproc__deque *d);
/* Owner only. false when full (nothing pushed). */
bool mproc__deque_push(mproc__deque *d, void *item);
/* Owner only. NULL when empty. */
void *mproc__deque_pop(mproc__deque *d);
/* Any thread. NULL when empty or when it lost a race (try again later). */
void *mproc__deque_steal(mproc__deque *d);
/* Any thread; a snapshot. */
bool mproc__deque_empty(const mproc__deque *d);

typedef struct mproc__ring_cell {
    uint64_t seq;
    void *item;
} mproc__ring_cell;

typedef struct mproc__ring {
    mproc__ring_cell *cells;
    uint64_t mask;
    _Alignas(64) uint64_t head;  /* next to dequeue */
    _Alignas(64) uint64_t tail;  /* next to enqueue */
} mproc__ring;

int mproc__ring_init(mproc__ring *r, unsigned cap_log2);
void mproc__ring_fini(mproc__ring *r);
/* Any thread. false when full. */
bool mproc__ring_put(mproc__ring *r, void *item);
/* Any thread. NULL when empty. */
void *mproc__ring_get(mproc__ring *r);

#endif /* MPROC_EXEC_QUEUE_H */
