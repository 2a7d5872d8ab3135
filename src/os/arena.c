/*
 * os/arena.c -- lock-free shared-memory allocator (design in arena.h).
 *
 * Memory ordering: a free list head is popped with an acquire CAS and
 * pushed with a release CAS, so whatever a process wrote to a block
 * before freeing it (its `next` link included) is visible to the process
 * that pops it. The `next` link is read before the pop's CAS with a
 * relaxed load; if another process popped and reused the block in the
 * meantime the value is garbage, but then the head's tag changed too and
 * the CAS fails, so the garbage is never installed (tagged-pointer ABA
 * defence; a wrap of the 32-bit tag between one load and its CAS is not a
 * practical concern).
 */
#include "os/arena.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mproc/os.h"
#include "os/atomic.h"

#define ARENA_MAGIC 0x6d70726f63617265ull /* "mprocare" */
#define BLOCK_LIVE 0x4c495645u          /* "LIVE" */
#define BLOCK_FREE 0x46524545u          /* "FREE" */
#define NCLASS 50                       /* 32 B .. 768 MiB, steps of 4/3 and 3/2 */
#define HDR 16u                         /* block header, keeps 16-byte alignment */
#define UNIT 16u                        /* offsets are stored in 16-byte units */

struct mproc__arena {
    uint64_t magic;
    uint64_t size;          /* bytes mapped */
    uint64_t bump;          /* first never-used offset */
    uint64_t heads[NCLASS]; /* tag << 32 | offset / UNIT; offset 0 = empty */
};

struct block {
    uint32_t magic; /* BLOCK_LIVE or BLOCK_FREE */
    uint32_t cls;
    uint64_t next;  /* free list link, in UNITs */
};

/* Block sizes, header included: 32, 48, 64, 96, 128, 192, ... Two
 * classes per power of two keep the waste under a third (a 64-byte lock
 * plus its header fits a 96-byte block) while staying multiples of 16. */
static size_t class_total(unsigned cls)
{
    return (size_t)(cls % 2 == 0 ? 32 : 48) << (cls / 2);
}

/* Smallest class whose blocks hold `need` bytes. */
static int class_of(size_t need, unsigned *cls)
{
    for (unsigned c = 0; c < NCLASS; c++)
        if (class_total(c) >= need) {
            *cls = c;
            return 0;
        }
    return -1;
}

static size_t first_offset(void)
{
    return (sizeof(struct mproc__arena) + 63) & ~(size_t)63;
}

int mproc__arena_create(size_t size, mproc__arena **out, int *fd_out)
{
    long page = sysconf(_SC_PAGESIZE);
    if (size < first_offset() + 4096)
        return -EINVAL;
    size = (size + (size_t)page - 1) & ~((size_t)page - 1);
    int fd = memfd_create("mproc-arena", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        int e = errno;
        close(fd);
        return -e;
    }
    mproc__arena *a = m;
    /* Fresh memfd pages are zero: heads are empty already. */
    a->size = size;
    a->bump = first_offset();
    mproc__store_release(&a->magic, ARENA_MAGIC);
    *out = a;
    *fd_out = fd;
    return 0;
}

int mproc__arena_attach(int fd, mproc__arena **out)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if ((size_t)st.st_size < first_offset())
        return -EINVAL;
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    mproc__arena *a = m;
    if (mproc__load_acquire(&a->magic) != ARENA_MAGIC || a->size != (uint64_t)st.st_size) {
        munmap(m, (size_t)st.st_size);
        return -EINVAL;
    }
    *out = a;
    return 0;
}

void mproc__arena_detach(mproc__arena *a)
{
    if (a)
        munmap(a, a->size);
}

uint64_t mproc__arena_off(const mproc__arena *a, const void *p)
{
    return (uint64_t)((const char *)p - (const char *)a);
}

void *mproc__arena_ptr(const mproc__arena *a, uint64_t off)
{
    return (char *)a + off;
}

static struct block *pop(mproc__arena *a, unsigned cls)
{
    uint64_t h = mproc__load_acquire(&a->heads[cls]);
    for (;;) {
        uint64_t units = h & 0xffffffffu;
        if (units == 0)
            return NULL;
        struct block *b = mproc__arena_ptr(a, units * UNIT);
        uint64_t next = mproc__load_relaxed(&b->next);
        uint64_t nh = (((h >> 32) + 1) << 32) | (next & 0xffffffffu);
        if (__atomic_compare_exchange_n(&a->heads[cls], &h, nh, false,
                                        __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
            return b;
    }
}

static void push(mproc__arena *a, unsigned cls, struct block *b)
{
    uint64_t units = mproc__arena_off(a, b) / UNIT;
    uint64_t h = mproc__load_relaxed(&a->heads[cls]);
    uint64_t nh;
    do {
        mproc__store_relaxed(&b->next, h & 0xffffffffu);
        nh = (((h >> 32) + 1) << 32) | units;
    } while (!__atomic_compare_exchange_n(&a->heads[cls], &h, nh, false,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* Carve a new block from the never-used tail; NULL when full. */
static struct block *carve(mproc__arena *a, unsigned cls)
{
    uint64_t total = class_total(cls);
    uint64_t off = mproc__load_relaxed(&a->bump);
    do {
        if (off + total > a->size || (off + total) / UNIT > 0xffffffffu)
            return NULL;
    } while (!mproc__cas(&a->bump, &off, off + total, __ATOMIC_RELAXED));
    return mproc__arena_ptr(a, off);
}

/* Give [off, off + len) back as free blocks of the largest classes that
 * fit, greedily (a remainder under 32 bytes is lost). */
static void give_back(mproc__arena *a, uint64_t off, uint64_t len)
{
    for (int c = NCLASS - 1; c >= 0 && len >= class_total(0); c--) {
        while (len >= class_total((unsigned)c)) {
            struct block *b = mproc__arena_ptr(a, off);
            b->cls = (uint32_t)c;
            mproc__store_relaxed(&b->magic, BLOCK_FREE);
            push(a, (unsigned)c, b);
            off += class_total((unsigned)c);
            len -= class_total((unsigned)c);
        }
    }
}

/* No block of class cls and no fresh space: cut one out of the smallest
 * larger free block, and return the rest of it to the free lists. */
static struct block *split_larger(mproc__arena *a, unsigned cls)
{
    for (unsigned c = cls + 1; c < NCLASS; c++) {
        struct block *b = pop(a, c);
        if (b) {
            uint64_t off = mproc__arena_off(a, b);
            give_back(a, off + class_total(cls), class_total(c) - class_total(cls));
            return b;
        }
    }
    return NULL;
}

void *mproc__arena_alloc(mproc__arena *a, size_t size)
{
    unsigned cls;
    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    if (size > SIZE_MAX - HDR || class_of(size + HDR, &cls) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    struct block *b = pop(a, cls);
    bool reused = b != NULL;
    if (!b)
        b = carve(a, cls);
    if (!b) {
        b = split_larger(a, cls);
        reused = b != NULL;
    }
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    b->cls = cls;
    mproc__store_relaxed(&b->magic, BLOCK_LIVE);
    void *p = (char *)b + HDR;
    if (reused) /* fresh memfd pages are already zero */
        memset(p, 0, class_total(cls) - HDR);
    return p;
}

int mproc__arena_free(mproc__arena *a, void *p)
{
    uint64_t off = mproc__arena_off(a, p);
    if ((char *)p < (char *)a || off < first_offset() + HDR ||
        off >= mproc__load_relaxed(&a->bump) || off % UNIT != 0)
        return -EINVAL;
    struct block *b = (struct block *)((char *)p - HDR);
    uint32_t live = BLOCK_LIVE;
    /* The CAS makes a double free (even a racing one) fail cleanly. */
    if (b->cls >= NCLASS ||
        !mproc__cas(&b->magic, &live, BLOCK_FREE, __ATOMIC_RELAXED))
        return -EINVAL;
    push(a, b->cls, b);
    return 0;
}

/* ---- the default arena ----------------------------------------------- */

static mproc__arena *default_arena;
static int default_error;
static pthread_once_t default_once = PTHREAD_ONCE_INIT;

static void create_default(void)
{
    int fd;
    int r = mproc__arena_create(MPROC_SHARED_ARENA_SIZE, &default_arena, &fd);
    if (r != 0) {
        default_error = -r;
        default_arena = NULL;
    }
    /* fd stays open (close-on-exec) for spawned children to inherit
     * explicitly in a later layer. */
}

mproc__arena *mproc__shared_arena(void)
{
    pthread_once(&default_once, create_default);
    if (!default_arena)
        errno = default_error;
    return default_arena;
}

void *mproc_shared_calloc(size_t size)
{
    mproc__arena *a = mproc__shared_arena();
    return a ? mproc__arena_alloc(a, size) : NULL;
}

int mproc_shared_free(void *p)
{
    if (!p)
        return 0;
    mproc__arena *a = mproc__shared_arena();
    return a ? mproc__arena_free(a, p) : -EINVAL;
}
