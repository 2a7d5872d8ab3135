/*
 * ipc/value.c -- shared values and arrays (Value, Array, RawValue,
 * RawArray). See the section in mproc/ipc.h.
 *
 * Design. A value is an array of one item, so both are one object kind,
 * `struct obj`, told apart by their magic number. The object is entirely
 * in shared memory: a 128-byte header (the lock in its own cache line,
 * then type, sizes and flags) followed by the items (16-byte aligned).
 * It holds no pointers, so the handle the caller gets is simply the
 * object's address, which fork() preserves.
 *
 *   size <= ARENA_MAX   a block of mproc_shared_calloc (the tree's arena)
 *   larger              a memfd mapping of its own (os/shmap.h); the
 *                       descriptor is closed at once, the mapping keeps
 *                       the memory alive until the last process unmaps it
 *
 * Concurrency. Single numbers are read and written with __atomic
 * operations on their own storage and never touch the lock: get is an
 * acquire load, set a release store, add and cas acquire-release
 * read-modify-writes (so a value used as a flag publishes what was
 * written before it). f64 items are handled as their 64-bit pattern;
 * add_f64 is a CAS loop on it. The lock (a robust MPROC_SHARED
 * mproc_lock) serialises what is more than one atomic access: the bytes
 * of a MPROC_BYTES value with their length, and bulk reads and writes.
 * Those calls take the lock unless the caller already holds it, which
 * mproc_lock_acquire reports as -EDEADLK without waiting.
 *
 * The magic number is checked with a relaxed load on every call: it is
 * written once before the handle is returned (the creating thread hands
 * the handle over through some synchronisation of its own, or fork), and
 * cleared by destroy, after which use is an error the check may catch.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "mproc/os.h"
#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/shmap.h"

#define VALUE_MAGIC 0x6d76616cu /* "mval" */
#define ARRAY_MAGIC 0x6d617272u /* "marr" */

#define HDR_SIZE 128u
#define ARENA_MAX ((size_t)16 << 10) /* larger objects get a mapping */
#define HUGE_MIN ((size_t)4 << 20)   /* mappings this large ask for THP */

/* Object flags beyond the public MPROC_RAW. */
#define OBJ_MAPPED 0x100u /* in a mapping of its own, not in the arena */

struct obj {
    mproc_lock lock;   /* not initialised when MPROC_RAW */
    uint32_t magic;    /* VALUE_MAGIC or ARRAY_MAGIC; 0 once destroyed */
    uint32_t type;     /* mproc_type */
    uint32_t flags;    /* MPROC_RAW | OBJ_MAPPED */
    uint32_t elem;     /* bytes per item */
    uint64_t len;      /* items */
    uint64_t mapped;   /* bytes of the mapping when OBJ_MAPPED */
    uint64_t nbytes;   /* MPROC_BYTES value: bytes stored, under the lock */
};

_Static_assert(sizeof(struct obj) <= HDR_SIZE, "value header too large");

struct mproc_value {
    struct obj o;
};
struct mproc_array {
    struct obj o;
};

static unsigned char *obj_data(struct obj *o)
{
    return (unsigned char *)o + HDR_SIZE;
}

static size_t type_size(mproc_type t)
{
    switch (t) {
    case MPROC_I32: return 4;
    case MPROC_I64:
    case MPROC_U64:
    case MPROC_F64: return 8;
    case MPROC_BYTES: return 1;
    }
    return 0;
}

/* The object behind a handle if its magic is `magic`, else NULL. */
static struct obj *obj_check(const void *h, uint32_t magic)
{
    struct obj *o = (struct obj *)(uintptr_t)h;
    if (!o || mproc__load_relaxed(&o->magic) != magic)
        return NULL;
    return o;
}

/* ---- life cycle ----------------------------------------------------- */

static int obj_create(struct obj **out, uint32_t magic, mproc_type type, size_t elem,
                      size_t len, unsigned flags)
{
    if (len == 0 || elem == 0 || len > (SIZE_MAX - HDR_SIZE) / elem)
        return -EINVAL;
    size_t total = HDR_SIZE + elem * len;
    struct obj *o;
    uint32_t where = 0;
    uint64_t mapped = 0;
    if (total <= ARENA_MAX) {
        o = mproc_shared_calloc(total);
        if (!o)
            return errno == EINVAL ? -EINVAL : -ENOMEM;
    } else {
        mproc__shmap m;
        int rc = mproc__shmap_create(&m, magic == VALUE_MAGIC ? "mproc-value" : "mproc-array",
                                     total, total >= HUGE_MIN);
        if (rc != 0)
            return rc;
        /* The mapping keeps the memory; the descriptor is not needed. */
        close(m.fd);
        o = m.addr;
        where = OBJ_MAPPED;
        mapped = m.size;
    }
    if (!(flags & MPROC_RAW)) {
        int rc = mproc_lock_init(&o->lock, MPROC_SHARED);
        if (rc != 0) { /* cannot happen with valid arguments */
            if (where)
                munmap(o, mapped);
            else
                mproc_shared_free(o);
            return rc;
        }
    }
    o->type = (uint32_t)type;
    o->flags = flags | where;
    o->elem = (uint32_t)elem;
    o->len = len;
    o->mapped = mapped;
    o->nbytes = 0;
    mproc__store_release(&o->magic, magic);
    *out = o;
    return 0;
}

static int obj_destroy(struct obj *o)
{
    if (!(o->flags & MPROC_RAW)) {
        int rc = mproc_lock_destroy(&o->lock);
        if (rc == -EBUSY)
            return rc;
    }
    /* Later calls through stale handles in processes that still map the
     * memory see the cleared magic and fail with -EINVAL. */
    mproc__store_relaxed(&o->magic, 0u);
    if (o->flags & OBJ_MAPPED)
        munmap(o, o->mapped);
    else
        mproc_shared_free(o);
    return 0;
}

int mproc_value_create(mproc_value **out, const mproc_value_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    mproc_value_opts o = opts ? *opts : (mproc_value_opts){ 0 };
    if (o.flags & ~MPROC_RAW)
        return -EINVAL;
    size_t elem = type_size(o.type);
    if (elem == 0)
        return -EINVAL;
    if (o.type == MPROC_BYTES) {
        if (o.size == 0 || o.size > UINT32_MAX)
            return -EINVAL;
        elem = o.size;
    } else if (o.size != 0) {
        return -EINVAL;
    }
    struct obj *ob;
    int rc = obj_create(&ob, VALUE_MAGIC, o.type, elem, 1, o.flags);
    if (rc == 0)
        *out = (mproc_value *)ob;
    return rc;
}

int mproc_value_destroy(mproc_value *v)
{
    if (!v)
        return 0;
    struct obj *o = obj_check(v, VALUE_MAGIC);
    return o ? obj_destroy(o) : -EINVAL;
}

int mproc_array_create(mproc_array **out, const mproc_array_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts || (opts->flags & ~MPROC_RAW))
        return -EINVAL;
    size_t elem = type_size(opts->type);
    if (elem == 0)
        return -EINVAL;
    struct obj *ob;
    int rc = obj_create(&ob, ARRAY_MAGIC, opts->type, elem, opts->len, opts->flags);
    if (rc != 0)
        return rc;
    /* Nobody else can see the object yet: a plain copy. */
    if (opts->init)
        memcpy(obj_data(ob), opts->init, elem * opts->len);
    *out = (mproc_array *)ob;
    return 0;
}

int mproc_array_destroy(mproc_array *a)
{
    if (!a)
        return 0;
    struct obj *o = obj_check(a, ARRAY_MAGIC);
    return o ? obj_destroy(o) : -EINVAL;
}

/* ---- information ---------------------------------------------------- */

int mproc_value_type(const mproc_value *v)
{
    struct obj *o = obj_check(v, VALUE_MAGIC);
    return o ? (int)o->type : -EINVAL;
}

size_t mproc_value_size(const mproc_value *v)
{
    struct obj *o = obj_check(v, VALUE_MAGIC);
    return o ? o->elem : 0;
}

int mproc_array_type(const mproc_array *a)
{
    struct obj *o = obj_check(a, ARRAY_MAGIC);
    return o ? (int)o->type : -EINVAL;
}

size_t mproc_array_len(const mproc_array *a)
{
    struct obj *o = obj_check(a, ARRAY_MAGIC);
    return o ? (size_t)o->len : 0;
}

static mproc_lock *obj_lock(struct obj *o)
{
    return o && !(o->flags & MPROC_RAW) ? &o->lock : NULL;
}

mproc_lock *mproc_value_lock(mproc_value *v)
{
    return obj_lock(obj_check(v, VALUE_MAGIC));
}

mproc_lock *mproc_array_lock(mproc_array *a)
{
    return obj_lock(obj_check(a, ARRAY_MAGIC));
}

void *mproc_value_ptr(mproc_value *v)
{
    struct obj *o = obj_check(v, VALUE_MAGIC);
    return o ? obj_data(o) : NULL;
}

void *mproc_array_ptr(mproc_array *a)
{
    struct obj *o = obj_check(a, ARRAY_MAGIC);
    return o ? obj_data(o) : NULL;
}

/* ---- single numbers --------------------------------------------------- */

/* The storage of item `index` of an object of kind `magic` and type
 * `type`, or an error. */
static int item(const void *h, uint32_t magic, mproc_type type, size_t index, void **p)
{
    struct obj *o = obj_check(h, magic);
    if (!o || o->type != (uint32_t)type)
        return -EINVAL;
    if (index >= o->len)
        return -ERANGE;
    *p = obj_data(o) + index * o->elem;
    return 0;
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* get/set/add/cas of one integer type, on a value (index 0) and on an
 * array item. The generated functions differ only in the C type. */
#define INT_OPS(T, ctype, TYPE)                                                     \
    static int get_##T(const void *h, uint32_t magic, size_t i, ctype *out)         \
    {                                                                               \
        void *p;                                                                    \
        int rc = out ? item(h, magic, TYPE, i, &p) : -EINVAL;                       \
        if (rc == 0)                                                                \
            *out = mproc__load_acquire((ctype *)p);                                 \
        return rc;                                                                  \
    }                                                                               \
    static int set_##T(void *h, uint32_t magic, size_t i, ctype x)                  \
    {                                                                               \
        void *p;                                                                    \
        int rc = item(h, magic, TYPE, i, &p);                                       \
        if (rc == 0)                                                                \
            mproc__store_release((ctype *)p, x);                                    \
        return rc;                                                                  \
    }                                                                               \
    static int add_##T(void *h, uint32_t magic, size_t i, ctype d, ctype *old)      \
    {                                                                               \
        void *p;                                                                    \
        int rc = item(h, magic, TYPE, i, &p);                                       \
        if (rc == 0) {                                                              \
            /* __atomic arithmetic wraps (two's complement), never UB. */           \
            ctype was = mproc__fetch_add((ctype *)p, d, __ATOMIC_ACQ_REL);          \
            if (old)                                                                \
                *old = was;                                                         \
        }                                                                           \
        return rc;                                                                  \
    }                                                                               \
    static int cas_##T(void *h, uint32_t magic, size_t i, ctype *exp, ctype des)    \
    {                                                                               \
        void *p;                                                                    \
        int rc = exp ? item(h, magic, TYPE, i, &p) : -EINVAL;                       \
        if (rc == 0 && !__atomic_compare_exchange_n((ctype *)p, exp, des, false,    \
                                                    __ATOMIC_ACQ_REL,               \
                                                    __ATOMIC_ACQUIRE))              \
            rc = -EAGAIN;                                                           \
        return rc;                                                                  \
    }                                                                               \
    int mproc_value_get_##T(mproc_value *v, ctype *out)                             \
    {                                                                               \
        return get_##T(v, VALUE_MAGIC, 0, out);                                     \
    }                                                                               \
    int mproc_value_set_##T(mproc_value *v, ctype x)                                \
    {                                                                               \
        return set_##T(v, VALUE_MAGIC, 0, x);                                       \
    }                                                                               \
    int mproc_value_add_##T(mproc_value *v, ctype d, ctype *old)                    \
    {                                                                               \
        return add_##T(v, VALUE_MAGIC, 0, d, old);                                  \
    }                                                                               \
    int mproc_value_cas_##T(mproc_value *v, ctype *exp, ctype des)                  \
    {                                                                               \
        return cas_##T(v, VALUE_MAGIC, 0, exp, des);                                \
    }                                                                               \
    int mproc_array_get_##T(mproc_array *a, size_t i, ctype *out)                   \
    {                                                                               \
        return get_##T(a, ARRAY_MAGIC, i, out);                                     \
    }                                                                               \
    int mproc_array_set_##T(mproc_array *a, size_t i, ctype x)                      \
    {                                                                               \
        return set_##T(a, ARRAY_MAGIC, i, x);                                       \
    }                                                                               \
    int mproc_array_add_##T(mproc_array *a, size_t i, ctype d, ctype *old)          \
    {                                                                               \
        return add_##T(a, ARRAY_MAGIC, i, d, old);                                  \
    }                                                                               \
    int mproc_array_cas_##T(mproc_array *a, size_t i, ctype *exp, ctype des)        \
    {                                                                               \
        return cas_##T(a, ARRAY_MAGIC, i, exp, des);                                \
    }

INT_OPS(i32, int32_t, MPROC_I32)
INT_OPS(i64, int64_t, MPROC_I64)
INT_OPS(u64, uint64_t, MPROC_U64)

/* f64: the same orders, on the 64-bit pattern of the double. */
static int get_f64(const void *h, uint32_t magic, size_t i, double *out)
{
    void *p;
    int rc = out ? item(h, magic, MPROC_F64, i, &p) : -EINVAL;
    if (rc == 0)
        *out = bits_f64(mproc__load_acquire((uint64_t *)p));
    return rc;
}

static int set_f64(void *h, uint32_t magic, size_t i, double x)
{
    void *p;
    int rc = item(h, magic, MPROC_F64, i, &p);
    if (rc == 0)
        mproc__store_release((uint64_t *)p, f64_bits(x));
    return rc;
}

static int add_f64(void *h, uint32_t magic, size_t i, double d, double *old)
{
    void *p;
    int rc = item(h, magic, MPROC_F64, i, &p);
    if (rc != 0)
        return rc;
    uint64_t *u = p;
    uint64_t was = mproc__load_relaxed(u);
    /* Retry until no other writer slipped in between our load and the
     * CAS; a failed CAS refreshes `was`. */
    while (!__atomic_compare_exchange_n(u, &was, f64_bits(bits_f64(was) + d), false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
        mproc__cpu_relax();
    if (old)
        *old = bits_f64(was);
    return 0;
}

int mproc_value_get_f64(mproc_value *v, double *out)
{
    return get_f64(v, VALUE_MAGIC, 0, out);
}

int mproc_value_set_f64(mproc_value *v, double x)
{
    return set_f64(v, VALUE_MAGIC, 0, x);
}

int mproc_value_add_f64(mproc_value *v, double d, double *old)
{
    return add_f64(v, VALUE_MAGIC, 0, d, old);
}

int mproc_array_get_f64(mproc_array *a, size_t i, double *out)
{
    return get_f64(a, ARRAY_MAGIC, i, out);
}

int mproc_array_set_f64(mproc_array *a, size_t i, double x)
{
    return set_f64(a, ARRAY_MAGIC, i, x);
}

int mproc_array_add_f64(mproc_array *a, size_t i, double d, double *old)
{
    return add_f64(a, ARRAY_MAGIC, i, d, old);
}

/* ---- under the lock: bytes and bulk copies ---------------------------- */

/*
 * Take the object's lock for a bytes or bulk call. *release says whether
 * the caller must release it afterwards (false for MPROC_RAW and when the
 * calling thread already held it). Returns 0 or, after releasing again,
 * -EOWNERDEAD (the previous holder died: the data may be torn, and the
 * lock stays marked until someone repairs it) or another error.
 */
static int enter(struct obj *o, bool *release)
{
    *release = false;
    if (o->flags & MPROC_RAW)
        return 0;
    int rc = mproc_lock_acquire(&o->lock, -1);
    if (rc == -EDEADLK) /* the caller holds it: it is already protected */
        return 0;
    if (rc == -EOWNERDEAD) {
        mproc_lock_release(&o->lock);
        return rc;
    }
    if (rc == 0)
        *release = true;
    return rc;
}

static void leave(struct obj *o, bool release)
{
    if (release)
        mproc_lock_release(&o->lock);
}

int mproc_value_set_bytes(mproc_value *v, const void *data, size_t len)
{
    struct obj *o = obj_check(v, VALUE_MAGIC);
    if (!o || o->type != MPROC_BYTES || (!data && len > 0))
        return -EINVAL;
    if (len > o->elem)
        return -EMSGSIZE;
    bool rel;
    int rc = enter(o, &rel);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(obj_data(o), data, len);
    o->nbytes = len;
    leave(o, rel);
    return 0;
}

int mproc_value_get_bytes(mproc_value *v, void *buf, size_t cap, size_t *len)
{
    struct obj *o = obj_check(v, VALUE_MAGIC);
    if (!o || o->type != MPROC_BYTES || !len || (!buf && cap > 0))
        return -EINVAL;
    bool rel;
    int rc = enter(o, &rel);
    if (rc != 0)
        return rc;
    size_t n = (size_t)o->nbytes;
    *len = n;
    if (n > cap) {
        rc = -EMSGSIZE;
    } else if (n > 0) {
        memcpy(buf, obj_data(o), n);
    }
    leave(o, rel);
    return rc;
}

/* Copy `count` items between shared storage and private memory. Numbers
 * are moved with relaxed atomic accesses, since the single-item calls
 * may touch them without the lock at the same time; the lock orders the
 * rest. Private memory may be unaligned, hence the memcpy. */
static void copy_items(struct obj *o, unsigned char *shared, unsigned char *priv,
                       size_t count, bool to_shared)
{
    if (o->elem == 1) {
        if (to_shared)
            memcpy(shared, priv, count);
        else
            memcpy(priv, shared, count);
        return;
    }
    for (size_t i = 0; i < count; i++, shared += o->elem, priv += o->elem) {
        if (o->elem == 4) {
            uint32_t x;
            if (to_shared) {
                memcpy(&x, priv, 4);
                mproc__store_relaxed((uint32_t *)shared, x);
            } else {
                x = mproc__load_relaxed((uint32_t *)shared);
                memcpy(priv, &x, 4);
            }
        } else {
            uint64_t x;
            if (to_shared) {
                memcpy(&x, priv, 8);
                mproc__store_relaxed((uint64_t *)shared, x);
            } else {
                x = mproc__load_relaxed((uint64_t *)shared);
                memcpy(priv, &x, 8);
            }
        }
    }
}

static int bulk(mproc_array *a, size_t start, void *buf, size_t count, bool write)
{
    struct obj *o = obj_check(a, ARRAY_MAGIC);
    if (!o || (!buf && count > 0))
        return -EINVAL;
    if (start > o->len || count > o->len - start)
        return -ERANGE;
    if (count == 0)
        return 0;
    bool rel;
    int rc = enter(o, &rel);
    if (rc != 0)
        return rc;
    copy_items(o, obj_data(o) + start * o->elem, buf, count, write);
    leave(o, rel);
    return 0;
}

int mproc_array_read(mproc_array *a, size_t start, void *dst, size_t count)
{
    return bulk(a, start, dst, count, false);
}

int mproc_array_write(mproc_array *a, size_t start, const void *src, size_t count)
{
    /* bulk() only reads through buf when writing. */
    return bulk(a, start, (void *)(uintptr_t)src, count, true);
}
