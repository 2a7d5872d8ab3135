/*
 * exec/queue.c -- Chase-Lev deque and MPMC ring (see queue.h).
 *
 * Deque memory ordering. The owner publishes a slot, then `bottom` with a
 * release store; a thief reads `top` and `bottom` with seq_cst loads and
 * the slot with acquire, so it sees the task's data. The one race that
 * matters is the last element, wanted by the owner's pop and a thief's
 * steal at once: pop first lowers `bottom` (seq_cst store) and then reads
 * `top` (seq_cst load), a thief reads `top` then `bottom`; in the single
 * order of seq_cst operations at least one of them sees the other's
 * move, and when both still think the element is theirs (top == bottom)
 * both CAS `top` and exactly one wins. (Plain seq_cst accesses instead of
 * the fences of the textbook version: same guarantees here, and
 * ThreadSanitizer understands them.)
 *
 * Ring: a cell's `seq` says whose turn it is. A producer may fill cell
 * i when seq == tail position, and claims the position by CAS on `tail`;
 * after writing the item it sets seq = pos + 1 (release). A consumer may
 * take it when seq == head position + 1, claims by CAS on `head`, reads
 * the item and sets seq = pos + capacity (release) for the producer of the
 * next lap.
 */
#include "exec/queue.h"

#include <errno.h>
#include <stdlib.h>

#include "os/atomic.h"

int mproc__deque_init(mproc__deque *d, unsigned cap_log2)
{
    d->slots = calloc((size_t)1 << cap_log2, sizeof *d->slots);
    if (!d->slots)
        return -ENOMEM;
    d->top = 0;
    d->bottom = 0;
    d->mask = ((int64_t)1 << cap_log2) - 1;
    return 0;
}

void mproc__deque_fini(mproc__deque *d)
{
    free(d->slots);
    d->slots = NULL;
}

bool mproc__deque_push(mproc__deque *d, void *item)
{
    int64_t b = mproc__load_relaxed(&d->bottom);
    int64_t t = mproc__load_acquire(&d->top);
    if (b - t > d->mask)
        return false;
    mproc__store_relaxed(&d->slots[b & d->mask], item);
    mproc__store_release(&d->bottom, b + 1);
    return true;
}

void *mproc__deque_pop(mproc__deque *d)
{
    int64_t b = mproc__load_relaxed(&d->bottom) - 1;
    __atomic_store_n(&d->bottom, b, __ATOMIC_SEQ_CST);
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_SEQ_CST);
    if (t > b) { /* empty */
        mproc__store_relaxed(&d->bottom, b + 1);
        return NULL;
    }
    void *item = mproc__load_relaxed(&d->slots[b & d->mask]);
    if (t == b) { /* the last one: race the thieves for it */
        if (!__atomic_compare_exchange_n(&d->top, &t, t + 1, false, __ATOMIC_SEQ_CST,
                                         __ATOMIC_RELAXED))
            item = NULL;
        mproc__store_relaxed(&d->bottom, b + 1);
    }
    return item;
}

void *mproc__deque_steal(mproc__deque *d)
{
    int64_t t = __atomic_load_n(&d->top, __ATOMIC_SEQ_CST);
    int64_t b = __atomic_load_n(&d->bottom, __ATOMIC_SEQ_CST);
    if (t >= b)
        return NULL;
    void *item = mproc__load_acquire(&d->slots[t & d->mask]);
    if (!__atomic_compare_exchange_n(&d->top, &t, t + 1, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_RELAXED))
        return NULL;
    return item;
}

bool mproc__deque_empty(const mproc__deque *d)
{
    return __atomic_load_n(&d->top, __ATOMIC_SEQ_CST) >=
           __atomic_load_n(&d->bottom, __ATOMIC_SEQ_CST);
}

int mproc__ring_init(mproc__ring *r, unsigned cap_log2)
{
    size_t cap = (size_t)1 << cap_log2;
    r->cells = malloc(cap * sizeof *r->cells);
    if (!r->cells)
        return -ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        r->cells[i].seq = i;
        r->cells[i].item = NULL;
    }
    r->head = 0;
    r->tail = 0;
    r->mask = cap - 1;
    return 0;
}

void mproc__ring_fini(mproc__ring *r)
{
    free(r->cells);
    r->cells = NULL;
}

bool mproc__ring_put(mproc__ring *r, void *item)
{
    uint64_t pos = mproc__load_relaxed(&r->tail);
    for (;;) {
        mproc__ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = mproc__load_acquire(&c->seq);
        int64_t dif = (int64_t)(seq - pos);
        if (dif == 0) {
            if (mproc__cas(&r->tail, &pos, pos + 1, __ATOMIC_RELAXED)) {
                mproc__store_relaxed(&c->item, item);
                mproc__store_release(&c->seq, pos + 1);
                return true;
            }
        } else if (dif < 0) {
            return false; /* full: the cell still holds last lap's item */
        } else {
            pos = mproc__load_relaxed(&r->tail);
        }
    }
}

void *mproc__ring_get(mproc__ring *r)
{
    uint64_t pos = mproc__load_relaxed(&r->head);
    for (;;) {
        mproc__ring_cell *c = &r->cells[pos & r->mask];
        uint64_t seq = mproc__load_acquire(&c->seq);
        int64_t dif = (int64_t)(seq - (pos + 1));
        if (dif == 0) {
            if (mproc__cas(&r->head, &pos, pos + 1, __ATOMIC_RELAXED)) {
                void *item = mproc__load_relaxed(&c->item);
                mproc__store_release(&c->seq, pos + r->mask + 1);
                return item;
            }
        } else if (dif < 0) {
            return NULL; /* empty */
        } else {
            pos = mproc__load_relaxed(&r->head);
        }
    }
}
