/*
 * exec/pheap.c -- a process pool's shared heap (exec_internal.h): one
 * memfd that the pool's process and all its workers map, so that a map's
 * items and dense results cross between them without a message per item
 * and without a copy back.
 *
 * The parent allocates and frees (page-granular first fit over a list of
 * free extents sorted by offset, under a mutex); workers only read and
 * write the ranges a chunk's descriptor names, by offset. Freed extents
 * keep their pages up to PHEAP_KEEP bytes in all, so the next map reuses
 * warm pages (no page faults, which on a VM cost more than the copying
 * they would replace); beyond that, freed pages go back to the system
 * (a hole punched in the memfd). Allocation prefers extents that still
 * have pages. Mapped sparse: only pages touched cost memory.
 *
 * References: the pool holds one, and so does every results object that
 * keeps memory here, so results outlive their executor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>

#include "exec/exec_internal.h"
#include "os/atomic.h"
#include "os/shmap.h"
#include "sync/mutex.h"

#define PHEAP_PAGE ((size_t)4096)
#define PHEAP_KEEP ((size_t)32 << 20)

struct ext {
    size_t off, len;
    bool backed; /* its pages are still there */
    struct ext *next;
};

struct mproc__pheap {
    uint32_t refs;
    uint32_t lock;      /* sync/mutex.h: free, kept */
    mproc__shmap map;
    struct ext *free;   /* by offset */
    size_t kept;        /* bytes of free extents that have pages */
};

int mproc__pheap_create(struct mproc__pheap **out, size_t size)
{
    struct mproc__pheap *h = calloc(1, sizeof *h);
    struct ext *e = malloc(sizeof *e);
    int rc = h && e ? mproc__shmap_create(&h->map, "mproc-heap", size, 0) : -ENOMEM;
    if (rc != 0) {
        free(h);
        free(e);
        return rc;
    }
    *e = (struct ext){ 0, h->map.size, false, NULL };
    h->free = e;
    h->refs = 1;
    h->lock = MPROC__MUTEX_INIT;
    *out = h;
    return 0;
}

int mproc__pheap_fd(const struct mproc__pheap *h)
{
    return h->map.fd;
}

struct mproc__pheap *mproc__pheap_retain(struct mproc__pheap *h)
{
    mproc__fetch_add(&h->refs, 1, __ATOMIC_RELAXED);
    return h;
}

void mproc__pheap_release(struct mproc__pheap *h)
{
    /* acq_rel: every use by an earlier holder before the unmap. */
    if (!h || mproc__fetch_sub(&h->refs, 1, __ATOMIC_ACQ_REL) != 1)
        return;
    while (h->free) {
        struct ext *next = h->free->next;
        free(h->free);
        h->free = next;
    }
    mproc__shmap_destroy(&h->map);
    free(h);
}

static size_t page_up(size_t n)
{
    return n > SIZE_MAX - PHEAP_PAGE ? 0 : (n + PHEAP_PAGE - 1) & ~(PHEAP_PAGE - 1);
}

void *mproc__pheap_alloc(struct mproc__pheap *h, size_t bytes, uint64_t *off)
{
    size_t need = page_up(bytes ? bytes : 1);
    if (need == 0)
        return NULL;
    mproc__mutex_lock(&h->lock);
    struct ext **pick = NULL;
    for (int pass = 0; pass < 2 && !pick; pass++)
        for (struct ext **p = &h->free; *p && !pick; p = &(*p)->next)
            if ((*p)->len >= need && (pass == 1 || (*p)->backed))
                pick = p;
    void *addr = NULL;
    if (pick) {
        struct ext *e = *pick;
        *off = e->off;
        addr = (unsigned char *)h->map.addr + e->off;
        if (e->backed)
            h->kept -= need;
        e->off += need;
        e->len -= need;
        if (e->len == 0) {
            *pick = e->next;
            free(e);
        }
    }
    mproc__mutex_unlock(&h->lock);
    return addr;
}

void mproc__pheap_free(struct mproc__pheap *h, void *p, size_t bytes)
{
    if (!p)
        return;
    size_t off = (size_t)((unsigned char *)p - (unsigned char *)h->map.addr);
    size_t len = page_up(bytes ? bytes : 1);
    mproc__mutex_lock(&h->lock);
    bool backed = h->kept + len <= PHEAP_KEEP;
    if (backed)
        h->kept += len;
    else /* give the pages back; the range then reads as zeros */
        (void)fallocate(h->map.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                        (off_t)len);
    struct ext **p2 = &h->free, *prev = NULL;
    while (*p2 && (*p2)->off < off) {
        prev = *p2;
        p2 = &(*p2)->next;
    }
    struct ext *next = *p2;
    bool with_prev = prev && prev->backed == backed && prev->off + prev->len == off;
    bool with_next = next && next->backed == backed && off + len == next->off;
    if (with_prev && with_next) {
        prev->len += len + next->len;
        prev->next = next->next;
        free(next);
    } else if (with_prev) {
        prev->len += len;
    } else if (with_next) {
        next->off = off;
        next->len += len;
    } else {
        struct ext *e = malloc(sizeof *e);
        if (e) { /* else the range is lost to later maps, not leaked */
            *e = (struct ext){ off, len, backed, next };
            *p2 = e;
        } else if (backed) {
            h->kept -= len;
        }
    }
    mproc__mutex_unlock(&h->lock);
}

/* ---- in a worker process ----------------------------------------------------- */

static mproc__shmap worker_map; /* the pool's heap as this worker maps it */

int mproc__pheap_worker_attach(int fd)
{
    return mproc__shmap_attach(&worker_map, fd);
}

unsigned char *mproc__pheap_worker_base(size_t *size)
{
    *size = worker_map.size;
    return worker_map.addr;
}
