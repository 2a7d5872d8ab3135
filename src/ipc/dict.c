/*
 * ipc/dict.c -- the shared dict and list (Manager().dict(),
 * Manager().list() without a server). See the section in mproc/ipc.h.
 *
 * Layout. Each object is one memfd mapping of max_bytes, sized up front
 * (the file is sparse: untouched pages cost nothing), so it never has to
 * be remapped and every process forked after create sees it whole at the
 * same address. It holds no pointers, only offsets from its start:
 *
 *   [region header: lock, counters, heap state]  REGION_HDR bytes
 *   [heap: blocks of 2^c bytes, c >= MIN_CLASS]  up to `size`
 *
 * A block is a 16-byte header (its class; the next free block while
 * free) and its payload. Allocation pops the class's free list or bumps
 * `top`; freeing pushes onto the list. Blocks are never split or merged.
 *
 *   dict: `table` is a block holding the slot count and an open-
 *         addressing table of {hash, entry offset} slots (offset 0 empty,
 *         1 deleted); each entry is a block {hash, value length, key
 *         length, key, value}. Probing is linear; the table is rebuilt
 *         at 3/4 load (counting deleted slots), to twice the live count.
 *   list: `table` is a block holding the capacity and the item offsets;
 *         each item is a block {length, bytes}. `len` is the item count.
 *
 * Crash safety. Every call runs under the region's robust lock. Every
 * change is prepared where nobody looks (a fresh block) and made visible
 * by one release store of an offset or count that the lock's next holder
 * reads: a slot's entry offset, the table offset (the slot count lives in
 * the table block, so one store swaps both), a list index slot, the list
 * length. A holder killed before that store leaves only a leaked block; a
 * holder killed after it leaves the change done, with at most a leaked
 * block or a stale dict counter (`count`, `used`). So when the lock
 * reports a dead holder, the repair is a recount of the dict's slots,
 * after which the lock is marked consistent; callers never see
 * -EOWNERDEAD. The release stores order the block's contents before the
 * offset for the compiler and the CPU; the dead process's stores are all
 * visible once the next holder has the lock (the lock's acquire pairs
 * with the kernel's ordering of the death).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/fault.h"
#include "os/shmap.h"

#define DICT_MAGIC 0x6d646963u /* "mdic" */
#define LIST_MAGIC 0x6d6c7374u /* "mlst" */

#define REGION_HDR 512u
#define BLOCK_HDR 16u
#define MIN_CLASS 5 /* 32-byte blocks */
#define NCLASS 48
#define MIN_BYTES ((size_t)64 << 10)
#define DEFAULT_BYTES ((size_t)1 << 30)

#define SLOT_EMPTY 0u
#define SLOT_DELETED 1u
#define MIN_SLOTS 8u
#define MIN_ITEMS 16u

struct region {
    mproc_lock lock;
    uint32_t magic;
    uint32_t pad;
    uint64_t size;          /* bytes mapped */
    uint64_t top;           /* first never-allocated byte */
    uint64_t table;         /* dict: slot block; list: index block */
    uint64_t count;         /* dict: live keys (recounted after a death) */
    uint64_t used;          /* dict: live + deleted slots (recounted) */
    uint64_t gen;           /* dict: table rebuilds, for iterators */
    uint64_t len;           /* list: items */
    uint64_t free[NCLASS];  /* free block lists by class */
};

_Static_assert(sizeof(struct region) <= REGION_HDR, "region header too large");

struct mproc_dict {
    struct region r;
};
struct mproc_list {
    struct region r;
};

struct slot {
    uint64_t hash;
    uint64_t off; /* entry block, SLOT_EMPTY or SLOT_DELETED */
};

/* Payload of a dict entry block. */
struct entry {
    uint64_t hash;
    uint64_t vlen;
    uint32_t klen;
    uint32_t pad;
    /* key bytes, then value bytes */
};

/* Payload of a table (dict) or index (list) block: a count, then the
 * slots or item offsets. */
struct table {
    uint64_t n;
    uint64_t pad;
};

/* ---- the region and its heap -------------------------------------------- */

static void *at(struct region *r, uint64_t off)
{
    return (unsigned char *)r + off;
}

/* The payload of block `off`. */
static void *payload(struct region *r, uint64_t off)
{
    return (unsigned char *)r + off + BLOCK_HDR;
}

static struct region *region_check(const void *h, uint32_t magic)
{
    struct region *r = (struct region *)(uintptr_t)h;
    if (!r || mproc__load_relaxed(&r->magic) != magic)
        return NULL;
    return r;
}

static int region_create(struct region **out, uint32_t magic, const mproc_dict_opts *opts)
{
    size_t bytes = opts && opts->max_bytes ? opts->max_bytes : DEFAULT_BYTES;
    if (bytes < MIN_BYTES)
        bytes = MIN_BYTES;
    mproc__shmap m;
    int rc = mproc__shmap_create(&m, magic == DICT_MAGIC ? "mproc-dict" : "mproc-list", bytes, 0);
    if (rc == -EINVAL) /* too large to round to pages */
        rc = -ENOMEM;
    if (rc != 0)
        return rc;
    close(m.fd); /* the mapping keeps the memory; it never grows */
    struct region *r = m.addr;
    rc = mproc_lock_init(&r->lock, MPROC_SHARED);
    if (rc != 0) {
        munmap(m.addr, m.size);
        return rc;
    }
    r->size = m.size;
    r->top = REGION_HDR;
    *out = r;
    return 0;
}

static int region_destroy(struct region *r)
{
    int rc = mproc_lock_destroy(&r->lock);
    if (rc != 0)
        return rc;
    mproc__store_relaxed(&r->magic, 0u);
    munmap(r, r->size);
    return 0;
}

static unsigned class_of(uint64_t bytes)
{
    unsigned c = MIN_CLASS;
    while (c < NCLASS && ((uint64_t)1 << c) < bytes)
        c++;
    return c;
}

/* A block with a payload of at least n bytes; its offset in *off. The
 * payload is not zeroed. -ENOSPC when the region is full. */
static int heap_alloc(struct region *r, uint64_t n, uint64_t *off)
{
    if (n > r->size)
        return -ENOSPC;
    unsigned c = class_of(n + BLOCK_HDR);
    if (c >= NCLASS)
        return -ENOSPC;
    uint64_t b = r->free[c];
    if (b != 0) {
        uint64_t *hdr = at(r, b);
        /* One store takes it off the list: dying after it leaks it. */
        mproc__store_release(&r->free[c], hdr[1]);
    } else {
        uint64_t sz = (uint64_t)1 << c;
        if (r->top > r->size || sz > r->size - r->top)
            return -ENOSPC;
        b = r->top;
        mproc__store_release(&r->top, b + sz);
        ((uint64_t *)at(r, b))[0] = c;
    }
    *off = b;
    return 0;
}

static void heap_free(struct region *r, uint64_t b)
{
    uint64_t *hdr = at(r, b);
    unsigned c = (unsigned)hdr[0];
    hdr[1] = r->free[c];
    mproc__store_release(&r->free[c], b);
}

/* ---- locking and repair -------------------------------------------------- */

static void dict_recount(struct region *r);

/* Take the region's lock; after a holder's death, repair first. */
static int enter(struct region *r)
{
    int rc = mproc_lock_acquire(&r->lock, -1);
    if (rc == -EOWNERDEAD) {
        if (r->magic == DICT_MAGIC)
            dict_recount(r);
        /* A list needs nothing: its length is its commit point. */
        rc = mproc_lock_consistent(&r->lock);
    }
    return rc;
}

static void leave(struct region *r)
{
    mproc_lock_release(&r->lock);
}

/* ---- dict ------------------------------------------------------------ */

/* FNV-1a, then a 64-bit finaliser to spread the bits over the mask. */
static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 0x100000001b3u;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53u;
    h ^= h >> 33;
    return h;
}

static struct slot *slots(struct region *r, uint64_t table, uint64_t *n)
{
    struct table *t = payload(r, table);
    *n = t->n;
    return (struct slot *)(t + 1);
}

static void dict_recount(struct region *r)
{
    uint64_t n, live = 0, used = 0;
    struct slot *s = slots(r, r->table, &n);
    for (uint64_t i = 0; i < n; i++) {
        if (s[i].off != SLOT_EMPTY)
            used++;
        if (s[i].off > SLOT_DELETED)
            live++;
    }
    r->count = live;
    r->used = used;
}

static const char *entry_key(struct entry *e)
{
    return (const char *)(e + 1);
}

/* The slot holding key, or -1; *free_slot gets the first empty or
 * deleted slot on the probe path (for an insert), or -1. */
static int64_t find(struct region *r, const char *key, size_t klen, uint64_t h,
                    int64_t *free_slot)
{
    uint64_t n;
    struct slot *s = slots(r, r->table, &n);
    int64_t first_free = -1;
    for (uint64_t i = h & (n - 1), k = 0; k < n; i = (i + 1) & (n - 1), k++) {
        uint64_t off = s[i].off;
        if (off == SLOT_EMPTY) {
            if (first_free < 0)
                first_free = (int64_t)i;
            break;
        }
        if (off == SLOT_DELETED) {
            if (first_free < 0)
                first_free = (int64_t)i;
            continue;
        }
        struct entry *e = payload(r, off);
        if (s[i].hash == h && e->klen == klen && memcmp(entry_key(e), key, klen) == 0) {
            if (free_slot)
                *free_slot = first_free;
            return (int64_t)i;
        }
    }
    if (free_slot)
        *free_slot = first_free;
    return -1;
}

/* A fresh table of n slots (a power of two), all empty. */
static int table_new(struct region *r, uint64_t n, uint64_t *off)
{
    int rc = heap_alloc(r, sizeof(struct table) + n * sizeof(struct slot), off);
    if (rc != 0)
        return rc;
    struct table *t = payload(r, *off);
    t->n = n;
    memset(t + 1, 0, n * sizeof(struct slot));
    return 0;
}

/* Rebuild the table with room for the live keys at most half full. */
static int rehash(struct region *r)
{
    uint64_t n = MIN_SLOTS;
    while (n < (r->count + 1) * 2)
        n *= 2;
    uint64_t noff;
    int rc = table_new(r, n, &noff);
    if (rc != 0)
        return rc;
    uint64_t on;
    struct slot *os = slots(r, r->table, &on);
    struct slot *ns = (struct slot *)((struct table *)payload(r, noff) + 1);
    for (uint64_t i = 0; i < on; i++) {
        if (os[i].off <= SLOT_DELETED)
            continue;
        uint64_t j = os[i].hash & (n - 1);
        while (ns[j].off != SLOT_EMPTY)
            j = (j + 1) & (n - 1);
        ns[j] = os[i];
    }
    MPROC__FAULT_POINT("dict.rehash.built");
    uint64_t old = r->table;
    /* Iterators must notice the new table even if we die right after
     * the commit; dying before it only costs them a restart. */
    r->gen++;
    mproc__store_release(&r->table, noff); /* the commit */
    r->used = r->count;
    heap_free(r, old);
    return 0;
}

int mproc_dict_create(mproc_dict **out, const mproc_dict_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct region *r;
    int rc = region_create(&r, DICT_MAGIC, opts);
    if (rc != 0)
        return rc;
    uint64_t t;
    rc = table_new(r, MIN_SLOTS, &t);
    if (rc != 0) { /* cannot happen: MIN_BYTES has room */
        region_destroy(r);
        return rc;
    }
    r->table = t;
    mproc__store_release(&r->magic, DICT_MAGIC);
    *out = (mproc_dict *)r;
    return 0;
}

int mproc_dict_destroy(mproc_dict *d)
{
    if (!d)
        return 0;
    struct region *r = region_check(d, DICT_MAGIC);
    return r ? region_destroy(r) : -EINVAL;
}

/* Checks shared by the keyed calls. */
/* The dict's region if d and key are valid (NULL otherwise), with the
 * key's length and hash. */
static struct region *dict_args(mproc_dict *d, const char *key, size_t *klen, uint64_t *h)
{
    struct region *r = region_check(d, DICT_MAGIC);
    if (!r || !key)
        return NULL;
    *klen = strnlen(key, MPROC_DICT_KEY_MAX + 1);
    if (*klen > MPROC_DICT_KEY_MAX)
        return NULL;
    *h = hash_key(key, *klen);
    return r;
}

int mproc_dict_set(mproc_dict *d, const char *key, const void *val, size_t len)
{
    size_t klen;
    uint64_t h;
    struct region *r = dict_args(d, key, &klen, &h);
    if (!r || (!val && len > 0))
        return -EINVAL;
    if (len > UINT64_MAX - sizeof(struct entry) - klen)
        return -ENOSPC;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    uint64_t n;
    slots(r, r->table, &n);
    if ((r->used + 1) * 4 > n * 3) {
        rc = rehash(r);
        if (rc != 0 && r->used + 1 >= n) /* no room to go on without it */
            goto out;
    }
    int64_t free_slot;
    int64_t i = find(r, key, klen, h, &free_slot);
    uint64_t eoff;
    rc = heap_alloc(r, sizeof(struct entry) + klen + len, &eoff);
    if (rc != 0)
        goto out;
    struct entry *e = payload(r, eoff);
    e->hash = h;
    e->vlen = len;
    e->klen = (uint32_t)klen;
    memcpy(e + 1, key, klen);
    if (len > 0)
        memcpy((unsigned char *)(e + 1) + klen, val, len);
    MPROC__FAULT_POINT("dict.set.written");
    struct slot *s = slots(r, r->table, &n);
    if (i >= 0) {
        uint64_t old = s[i].off;
        mproc__store_release(&s[i].off, eoff); /* the commit */
        heap_free(r, old);
    } else {
        /* find() always leaves a free slot: the load is kept below 1. */
        bool was_empty = s[free_slot].off == SLOT_EMPTY;
        s[free_slot].hash = h;
        mproc__store_release(&s[free_slot].off, eoff); /* the commit */
        MPROC__FAULT_POINT("dict.set.linked");
        r->count++;
        if (was_empty)
            r->used++;
    }
out:
    leave(r);
    return rc;
}

int mproc_dict_get(mproc_dict *d, const char *key, void *buf, size_t cap, size_t *len)
{
    size_t klen;
    uint64_t h;
    struct region *r = dict_args(d, key, &klen, &h);
    if (!r || !len || (!buf && cap > 0))
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    int64_t i = find(r, key, klen, h, NULL);
    if (i < 0) {
        rc = -ENOENT;
    } else {
        uint64_t n;
        struct entry *e = payload(r, slots(r, r->table, &n)[i].off);
        *len = (size_t)e->vlen;
        if (e->vlen > cap)
            rc = -EMSGSIZE;
        else if (e->vlen > 0)
            memcpy(buf, (unsigned char *)(e + 1) + klen, (size_t)e->vlen);
    }
    leave(r);
    return rc;
}

int mproc_dict_delete(mproc_dict *d, const char *key)
{
    size_t klen;
    uint64_t h;
    struct region *r = dict_args(d, key, &klen, &h);
    if (!r)
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    int64_t i = find(r, key, klen, h, NULL);
    if (i < 0) {
        rc = -ENOENT;
    } else {
        uint64_t n;
        struct slot *s = slots(r, r->table, &n);
        uint64_t old = s[i].off;
        mproc__store_release(&s[i].off, (uint64_t)SLOT_DELETED); /* the commit */
        r->count--;
        heap_free(r, old);
    }
    leave(r);
    return rc;
}

int mproc_dict_contains(mproc_dict *d, const char *key)
{
    size_t klen;
    uint64_t h;
    struct region *r = dict_args(d, key, &klen, &h);
    if (!r)
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    rc = find(r, key, klen, h, NULL) >= 0;
    leave(r);
    return rc;
}

size_t mproc_dict_len(mproc_dict *d)
{
    struct region *r = region_check(d, DICT_MAGIC);
    if (!r || enter(r) != 0)
        return 0;
    size_t n = (size_t)r->count;
    leave(r);
    return n;
}

int mproc_dict_next(mproc_dict *d, mproc_dict_iter *it, char *key, size_t keycap, void *val,
                    size_t valcap, size_t *vlen)
{
    struct region *r = region_check(d, DICT_MAGIC);
    if (!r || !it || (!key && keycap > 0) || (!val && valcap > 0) || (val && !vlen))
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    /* _gen holds the table generation plus one, so 0 means "fresh". */
    if (it->_gen == 0) {
        it->_gen = r->gen + 1;
        it->_pos = 0;
    }
    if (it->_gen != r->gen + 1) {
        rc = -EAGAIN;
        goto out;
    }
    uint64_t n;
    struct slot *s = slots(r, r->table, &n);
    uint64_t i = it->_pos;
    while (i < n && s[i].off <= SLOT_DELETED)
        i++;
    if (i >= n) {
        it->_pos = n;
        rc = -ENOENT;
        goto out;
    }
    struct entry *e = payload(r, s[i].off);
    if (vlen)
        *vlen = (size_t)e->vlen;
    if ((size_t)e->klen + 1 > keycap || (val && e->vlen > valcap)) {
        rc = -EMSGSIZE;
        goto out;
    }
    memcpy(key, entry_key(e), e->klen);
    key[e->klen] = '\0';
    if (val && e->vlen > 0)
        memcpy(val, entry_key(e) + e->klen, (size_t)e->vlen);
    it->_pos = i + 1;
out:
    leave(r);
    return rc;
}

/* ---- list --------------------------------------------------------------- */

static uint64_t *items(struct region *r, uint64_t *cap)
{
    struct table *t = payload(r, r->table);
    *cap = t->n;
    return (uint64_t *)(t + 1);
}

/* A new item block holding a copy of data. */
static int item_new(struct region *r, const void *data, size_t len, uint64_t *off)
{
    if (len > UINT64_MAX - 8)
        return -ENOSPC;
    int rc = heap_alloc(r, 8 + (uint64_t)len, off);
    if (rc != 0)
        return rc;
    uint64_t *p = payload(r, *off);
    p[0] = len;
    if (len > 0)
        memcpy(p + 1, data, len);
    return 0;
}

/* Copy item block `off` out. */
static int item_copy(struct region *r, uint64_t off, void *buf, size_t cap, size_t *len)
{
    uint64_t *p = payload(r, off);
    *len = (size_t)p[0];
    if (p[0] > cap)
        return -EMSGSIZE;
    if (p[0] > 0)
        memcpy(buf, p + 1, (size_t)p[0]);
    return 0;
}

int mproc_list_create(mproc_list **out, const mproc_list_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    struct region *r;
    int rc = region_create(&r, LIST_MAGIC, opts);
    if (rc != 0)
        return rc;
    uint64_t t;
    rc = heap_alloc(r, sizeof(struct table) + MIN_ITEMS * 8, &t);
    if (rc != 0) { /* cannot happen: MIN_BYTES has room */
        region_destroy(r);
        return rc;
    }
    ((struct table *)payload(r, t))->n = MIN_ITEMS;
    r->table = t;
    mproc__store_release(&r->magic, LIST_MAGIC);
    *out = (mproc_list *)r;
    return 0;
}

int mproc_list_destroy(mproc_list *l)
{
    if (!l)
        return 0;
    struct region *r = region_check(l, LIST_MAGIC);
    return r ? region_destroy(r) : -EINVAL;
}

int mproc_list_append(mproc_list *l, const void *data, size_t len)
{
    struct region *r = region_check(l, LIST_MAGIC);
    if (!r || (!data && len > 0))
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    uint64_t cap;
    uint64_t *idx = items(r, &cap);
    if (r->len == cap) {
        /* A copy of the index, twice as large, swapped in with one store. */
        uint64_t t;
        rc = heap_alloc(r, sizeof(struct table) + cap * 2 * 8, &t);
        if (rc != 0)
            goto out;
        struct table *nt = payload(r, t);
        nt->n = cap * 2;
        memcpy(nt + 1, idx, cap * 8);
        uint64_t old = r->table;
        mproc__store_release(&r->table, t);
        heap_free(r, old);
        idx = items(r, &cap);
    }
    uint64_t off;
    rc = item_new(r, data, len, &off);
    if (rc != 0)
        goto out;
    idx[r->len] = off;
    MPROC__FAULT_POINT("list.append.written");
    mproc__store_release(&r->len, r->len + 1); /* the commit */
out:
    leave(r);
    return rc;
}

int mproc_list_get(mproc_list *l, size_t index, void *buf, size_t cap, size_t *len)
{
    struct region *r = region_check(l, LIST_MAGIC);
    if (!r || !len || (!buf && cap > 0))
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    if (index >= r->len) {
        rc = -ERANGE;
    } else {
        uint64_t n;
        rc = item_copy(r, items(r, &n)[index], buf, cap, len);
    }
    leave(r);
    return rc;
}

int mproc_list_set(mproc_list *l, size_t index, const void *data, size_t len)
{
    struct region *r = region_check(l, LIST_MAGIC);
    if (!r || (!data && len > 0))
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    uint64_t off;
    if (index >= r->len) {
        rc = -ERANGE;
    } else if ((rc = item_new(r, data, len, &off)) == 0) {
        uint64_t n;
        uint64_t *idx = items(r, &n);
        uint64_t old = idx[index];
        mproc__store_release(&idx[index], off); /* the commit */
        heap_free(r, old);
    }
    leave(r);
    return rc;
}

int mproc_list_pop(mproc_list *l, void *buf, size_t cap, size_t *len)
{
    struct region *r = region_check(l, LIST_MAGIC);
    if (!r || !len || (!buf && cap > 0))
        return -EINVAL;
    int rc = enter(r);
    if (rc != 0)
        return rc;
    if (r->len == 0) {
        rc = -ENOENT;
    } else {
        uint64_t n;
        uint64_t off = items(r, &n)[r->len - 1];
        rc = item_copy(r, off, buf, cap, len);
        if (rc == 0) {
            mproc__store_release(&r->len, r->len - 1); /* the commit */
            heap_free(r, off);
        }
    }
    leave(r);
    return rc;
}

size_t mproc_list_len(mproc_list *l)
{
    struct region *r = region_check(l, LIST_MAGIC);
    if (!r || enter(r) != 0)
        return 0;
    size_t n = (size_t)r->len;
    leave(r);
    return n;
}
