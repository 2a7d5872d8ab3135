/*
 * exec/map.c -- the pool-style calls: map, map_async, imap,
 * imap_unordered, apply, apply_async.
 *
 * A map splits its n items into chunks of `chunksize` and submits one
 * ordinary task per chunk (arg = the results object, len = the chunk's
 * number). Each chunk runs its items in a loop on one worker, with one
 * context updated per item.
 *
 * Two ways to store results:
 *   - general (result_size 0): each item's outcome goes to a 16-byte
 *     slot: results of up to 8 bytes live in the slot itself, longer ones
 *     on the heap;
 *   - fixed size (result_size > 0): results lie densely in `data`, item i
 *     at i * result_size, and the item's context points there (`slot`),
 *     so mproc_return / mproc_result_buffer of that length write in place
 *     (workers/ctx.c). Codes live in `codes`, one int32 per item,
 *     written only when an item fails: on success an item costs its task
 *     call and nothing else. Both arrays come zeroed from the kernel when
 *     large (mmap), so an item that returns nothing reads as zero bytes,
 *     and workers fault in the pages of their own chunks in parallel;
 *     `codes` is never touched while nothing fails. (On a process pool,
 *     `data` may be in the pool's shared heap instead, not zeroed
 *     beforehand: see "chunks that run in another process".) A failed item's bytes
 *     are zeroed by its worker. A result of another length goes to a
 *     scratch buffer (freed at the end of its chunk) and fails the item
 *     with -EMSGSIZE unless the task fails with its own code.
 *
 * A chunk is accounted for in a done-callback on its future, not in the
 * task: the callback also runs when the chunk is cancelled (shutdown with
 * cancel_futures) or failed without running (broken executor), so a map
 * always completes. Accounting a chunk: mark it done (release), append it
 * to the completion order, bump the `progress` futex (waking iterators),
 * and if it was the last, finish the map's `done` future with the code of
 * the first failed item in item order (tracked as an atomic minimum).
 *
 * References: the caller's handle, and one held by the chunks together,
 * dropped by the last chunk after finishing `done`.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "exec/exec_internal.h"
#include "os/atomic.h"
#include "os/sys.h"
#include "workers/fnref.h"

#define SMALL_RESULT 8
#define NO_FAILURE UINT64_MAX
#define NOT_YET SIZE_MAX
/* Arrays of at least this many bytes are mmap'd (zero pages the kernel
 * provides lazily); smaller ones come from calloc. */
#define MAP_MIN ((size_t)256 << 10)
/* Result arrays (dense results, or slots) of at least this many bytes
 * ask for transparent huge pages: one 2 MiB fault instead of 512 small
 * ones, which on a VM cost far more than the zeroing itself. */
#define HUGE_MIN ((size_t)4 << 20)

struct slot {
    union {
        void *ptr;
        unsigned char small[SMALL_RESULT];
    } u;
    uint32_t len;
    int32_t code;
};

/* A result of the wrong length in fixed-size mode lands here; freed at
 * the end of its item's chunk. */
struct scratch {
    struct scratch *next;
    size_t item;
    _Alignas(16) unsigned char bytes[];
};

struct mproc_results {
    uint32_t refs;
    mproc_executor *ex;
    mproc_task_fn fn;
    const unsigned char *items;
    unsigned char *items_copy;
    size_t item_size, n, chunksize, nchunks;
    size_t result_size;      /* 0: general mode (slots), else fixed size */
    struct slot *slots;      /* general mode: per item */
    unsigned char *data;     /* fixed: n * result_size bytes (data_bytes allocated) */
    int32_t *codes;          /* fixed: per item, 0 until it fails (codes_bytes) */
    size_t slots_bytes, data_bytes, codes_bytes;
    uint32_t wrong_lengths;  /* fixed: results of the wrong length so far */
    struct scratch *scratch; /* fixed: under msg_lock */
    char **messages;         /* per item, allocated at the first failure message */
    mproc_lock msg_lock;
    uint8_t *chunk_done;     /* per chunk, set with release when accounted */
    size_t *order;           /* chunks in the order they were accounted */
    uint64_t order_tail;
    uint32_t progress;       /* futex: bumped per accounted chunk */
    uint32_t sleepers;
    uint64_t remaining;      /* chunks not accounted yet */
    uint64_t first_fail;     /* smallest failed item index */
    /* Remote backends with a shared heap (pheap.c): the items are copied
     * there at submit time, and fixed-size results are written there by
     * the workers (data is then heap memory). */
    uint64_t fn_word;           /* remote: fn as a word of workers/fnref.h */
    struct mproc__pheap *heap;  /* retained, or NULL */
    unsigned char *in_heap;     /* the items' copy, then the chunks' ready words
                                 * (freed when all chunks are in) */
    uint32_t *ready;            /* per chunk, in the heap: its items are there */
    uint64_t in_off, out_off;   /* their offsets in the heap */
    bool in_shared, out_shared; /* items / data live in the heap */
    mproc_future *done;
    mproc_future_cb callback, error_callback;
    void *userdata;
};

struct mproc_imap_iter {
    mproc_results *r;
    bool ordered;
    size_t next_chunk;  /* ordered: the chunk to wait for next */
    size_t order_head;  /* unordered: next entry of r->order */
    size_t pos, end;    /* items of the current chunk still to yield */
    size_t yielded;
};

/* ---- results ------------------------------------------------------------ */

/* bytes of zeroed memory (at least 1): mmap'd when large, with huge pages
 * if asked; NULL on failure. Freed with zfree(p, bytes). */
static void *zalloc(size_t bytes, bool huge)
{
    if (bytes < MAP_MIN)
        return calloc(1, bytes ? bytes : 1);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (huge && bytes >= HUGE_MIN)
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without it, small pages */
#else
    (void)huge;
#endif
    return p;
}

static void zfree(void *p, size_t bytes)
{
    if (!p)
        return;
    if (bytes < MAP_MIN)
        free(p);
    else
        (void)munmap(p, bytes); /* cannot fail on a mapping of ours */
}

/* In the heap, the items' copy is followed by a ready word per chunk:
 * where they start, and the bytes of both (0 if that overflows). */
static size_t ready_at(const mproc_results *r)
{
    return (r->n * r->item_size + 3) & ~(size_t)3;
}

static size_t in_heap_bytes(const mproc_results *r)
{
    size_t at = ready_at(r);
    if (at < r->n * r->item_size || r->nchunks > (SIZE_MAX - at) / sizeof(uint32_t))
        return 0;
    return at + r->nchunks * sizeof(uint32_t);
}

static void results_free(mproc_results *r)
{
    for (size_t i = 0; r->slots && i < r->n; i++)
        if (r->slots[i].len > SMALL_RESULT)
            free(r->slots[i].u.ptr);
    if (r->messages) {
        for (size_t i = 0; i < r->n; i++)
            free(r->messages[i]);
        free(r->messages);
    }
    while (r->scratch) {
        struct scratch *next = r->scratch->next;
        free(r->scratch);
        r->scratch = next;
    }
    if (r->out_shared)
        mproc__pheap_free(r->heap, r->data, r->data_bytes);
    else
        zfree(r->data, r->data_bytes);
    if (r->in_heap)
        mproc__pheap_free(r->heap, r->in_heap, in_heap_bytes(r));
    mproc__pheap_release(r->heap);
    zfree(r->codes, r->codes_bytes);
    zfree(r->slots, r->slots_bytes);
    free(r->chunk_done);
    free(r->order);
    free(r->items_copy);
    mproc_future_release(r->done);
    mproc_lock_destroy(&r->msg_lock);
    free(r);
}

static void results_release(mproc_results *r)
{
    if (r && mproc__fetch_sub(&r->refs, 1, __ATOMIC_ACQ_REL) == 1)
        results_free(r);
}

void mproc_results_destroy(mproc_results *r)
{
    results_release(r);
}

size_t mproc_results_count(const mproc_results *r)
{
    return r ? r->n : 0;
}

static bool chunk_ready(const void *results, size_t k)
{
    const mproc_results *r = results;
    return mproc__load_acquire(&r->chunk_done[k]) != 0;
}

/* Item i's code (its chunk is accounted). */
static int item_code(const mproc_results *r, size_t i)
{
    return r->result_size ? r->codes[i] : r->slots[i].code;
}

static void fill_item(const mproc_results *r, size_t i, mproc_item *item)
{
    item->index = i;
    if (r->result_size) {
        item->code = r->codes[i];
        item->len = item->code == 0 ? r->result_size : 0;
        item->data = item->code == 0 ? r->data + i * r->result_size : NULL;
    } else {
        const struct slot *s = &r->slots[i];
        item->code = s->code;
        item->len = s->len;
        item->data = s->len == 0 ? NULL
                   : s->len <= SMALL_RESULT ? (const void *)s->u.small : s->u.ptr;
    }
    const char *m = NULL;
    /* The array appears (release) at the first message of any item. */
    if (mproc__load_acquire(&r->messages)) {
        mproc_lock_acquire((mproc_lock *)&r->msg_lock, -1);
        m = r->messages[i];
        mproc_lock_release((mproc_lock *)&r->msg_lock);
    }
    item->message = m ? m : "";
}

int mproc_results_get(const mproc_results *r, size_t i, mproc_item *item)
{
    if (!r || !item || i >= r->n)
        return -EINVAL;
    if (!chunk_ready(r, i / r->chunksize))
        return -EAGAIN;
    fill_item(r, i, item);
    return item->code;
}

const void *mproc_results_data(const mproc_results *r, size_t *result_size)
{
    if (result_size)
        *result_size = 0;
    if (!r || r->result_size == 0) {
        errno = EINVAL;
        return NULL;
    }
    /* Acquire: pairs with every chunk's acq_rel decrement, so all items'
     * bytes (and codes) are visible once it reads 0. */
    if (mproc__load_acquire(&r->remaining) != 0) {
        errno = EAGAIN;
        return NULL;
    }
    if (result_size)
        *result_size = r->result_size;
    return r->data;
}

/* ---- inside an item's task (called through mproc_return & co.) ---------- */

/* One past the last item of the chunk starting at item lo. */
static size_t chunk_end(const mproc_results *r, size_t lo)
{
    return r->n - lo > r->chunksize ? lo + r->chunksize : r->n;
}

static void note_failure(mproc_results *r, size_t i)
{
    uint64_t cur = mproc__load_relaxed(&r->first_fail);
    while (i < cur && !mproc__cas(&r->first_fail, &cur, i, __ATOMIC_RELAXED))
        ;
}

static void item_vmessage(mproc_results *r, size_t i, const char *fmt, va_list ap)
{
    char *m = malloc(F_MESSAGE_MAX);
    if (!m)
        return;
    vsnprintf(m, F_MESSAGE_MAX, fmt, ap);
    mproc_lock_acquire(&r->msg_lock, -1);
    if (!r->messages)
        mproc__store_release(&r->messages, calloc(r->n, sizeof *r->messages));
    if (r->messages) {
        free(r->messages[i]);
        r->messages[i] = m;
        m = NULL;
    }
    mproc_lock_release(&r->msg_lock);
    free(m);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void item_message(mproc_results *r, size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    item_vmessage(r, i, fmt, ap);
    va_end(ap);
}

/* Fixed-size mode, a result of len != result_size for item i: the item
 * fails with -EMSGSIZE (unless its task fails with its own code, which
 * then replaces it), and the bytes go to a scratch buffer that lives until
 * the end of the chunk, where the item's dense bytes are zeroed. */
static void *wrong_length_room(mproc_results *r, size_t i, size_t len)
{
    if (r->codes[i] == 0) {
        r->codes[i] = -EMSGSIZE;
        note_failure(r, i);
    }
    /* Tells the end of this chunk, on this thread, to look for it. */
    mproc__fetch_add(&r->wrong_lengths, 1, __ATOMIC_RELAXED);
    item_message(r, i, "result of %zu bytes, but result_size is %zu", len, r->result_size);
    struct scratch *sc = len > SIZE_MAX - sizeof *sc ? NULL : malloc(sizeof *sc + len);
    if (!sc)
        return NULL;
    sc->item = i;
    mproc_lock_acquire(&r->msg_lock, -1);
    sc->next = r->scratch;
    r->scratch = sc;
    mproc_lock_release(&r->msg_lock);
    return sc->bytes;
}

static void *item_room(mproc_results *r, size_t i, size_t len)
{
    if (r->result_size) /* the right length went to ctx->head.slot directly */
        return wrong_length_room(r, i, len);
    struct slot *s = &r->slots[i];
    if (s->len > SMALL_RESULT)
        free(s->u.ptr);
    s->len = 0;
    if (len > UINT32_MAX)
        return NULL;
    void *p = s->u.small;
    if (len > SMALL_RESULT && !(p = s->u.ptr = malloc(len)))
        return NULL;
    s->len = (uint32_t)len;
    return p;
}

/* ---- the context of an item's task (workers/ctx.h) -------------------- */

static void *map_room(mproc_ctx *ctx, size_t len)
{
    return item_room(ctx->owner, ctx->item, len);
}

static void map_message(mproc_ctx *ctx, const char *fmt, va_list ap)
{
    item_vmessage(ctx->owner, ctx->item, fmt, ap);
}

static bool map_cancel_requested(const mproc_ctx *ctx)
{
    /* mproc_future_cancel on the map's done future (which is running
     * while any item is) asks every item still running to stop early. */
    const mproc_results *r = ctx->owner;
    return mproc__exec_cancelling(r->ex) || mproc__load_relaxed(&r->done->cancel_req) != 0;
}

static const struct mproc__ctx_ops map_ctx_ops = {
    .room = map_room,
    .message = map_message,
    .cancel_requested = map_cancel_requested,
};

/* ---- chunks ---------------------------------------------------------------- */

/* Fixed-size mode: item i's task failed with `code` (< 0). Its own code
 * replaces a wrong length's; its bytes read as zeros. */
static void fixed_item_failed(mproc_results *r, size_t i, int code)
{
    r->codes[i] = code;
    memset(r->data + i * r->result_size, 0, r->result_size);
    note_failure(r, i);
}

/* Fixed-size mode, end of the chunk [lo, hi) after a wrong length
 * somewhere in the map: zero the bytes of this chunk's failed items (a
 * task may have written the right length too), free its scratch buffers. */
static void fixed_chunk_cleanup(mproc_results *r, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++)
        if (r->codes[i] != 0)
            memset(r->data + i * r->result_size, 0, r->result_size);
    mproc_lock_acquire(&r->msg_lock, -1);
    for (struct scratch **p = &r->scratch; *p;) {
        struct scratch *sc = *p;
        if (sc->item >= lo && sc->item < hi) {
            *p = sc->next;
            free(sc);
        } else {
            p = &sc->next;
        }
    }
    mproc_lock_release(&r->msg_lock);
}

/* The task of chunk k: its items in a loop, with one context whose
 * item (and fixed-size slot) moves along. Success stores nothing here:
 * codes start at 0. */
static int run_chunk(const void *arg, size_t k, mproc_ctx *cctx)
{
    mproc_results *r = (mproc_results *)arg;
    const mproc_task_fn fn = r->fn;
    const size_t isz = r->item_size, rs = r->result_size;
    const size_t lo = k * r->chunksize, hi = chunk_end(r, lo);
    const unsigned char *in = r->items + lo * isz;
    struct mproc_ctx ctx = { .ops = &map_ctx_ops, .owner = r, .worker = cctx->worker };
    if (rs == 0) {
        for (size_t i = lo; i < hi; i++, in += isz) {
            ctx.item = i;
            int code = fn(in, isz, &ctx);
            if (code < 0) {
                r->slots[i].code = code;
                note_failure(r, i);
            }
        }
        return 0;
    }
    ctx.head.slot_len = rs;
    unsigned char *out = r->data + lo * rs;
    for (size_t i = lo; i < hi; i++, in += isz, out += rs) {
        ctx.item = i;
        ctx.head.slot = out;
        int code = fn(in, isz, &ctx);
        if (code < 0)
            fixed_item_failed(r, i, code);
    }
    if (mproc__load_relaxed(&r->wrong_lengths) != 0)
        fixed_chunk_cleanup(r, lo, hi);
    return 0;
}

/* One chunk (or map_start's copying, see map_start) less to wait for; the
 * last one completes the map. */
static void remaining_down(mproc_results *r)
{
    if (mproc__fetch_sub(&r->remaining, 1, __ATOMIC_ACQ_REL) != 1)
        return;
    if (r->in_heap) { /* no worker reads the items any more */
        mproc__pheap_free(r->heap, r->in_heap, in_heap_bytes(r));
        r->in_heap = NULL;
    }
    uint64_t first = mproc__load_relaxed(&r->first_fail);
    mproc__future_complete(r->done, first == NO_FAILURE ? 0 : item_code(r, first));
    results_release(r); /* the chunks' reference */
}

/* Account chunk k (see the top of the file); `code` non-zero means its
 * items did not run and all fail with it. */
static void account_chunk(mproc_results *r, size_t k, int code)
{
    if (code != 0) {
        size_t lo = k * r->chunksize, hi = chunk_end(r, lo);
        for (size_t i = lo; i < hi; i++) {
            if (r->result_size)
                r->codes[i] = code;
            else
                r->slots[i].code = code;
        }
        /* Shared data is not zeroed beforehand, and a worker that died
         * may have written part of it. */
        if (r->out_shared)
            memset(r->data + lo * r->result_size, 0, (hi - lo) * r->result_size);
        note_failure(r, lo);
    }
    mproc__store_release(&r->chunk_done[k], 1);
    uint64_t pos = mproc__fetch_add(&r->order_tail, 1, __ATOMIC_RELAXED);
    mproc__store_release(&r->order[pos], k);
    __atomic_fetch_add(&r->progress, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&r->sleepers, __ATOMIC_SEQ_CST) != 0)
        mproc__futex_wake(&r->progress, INT_MAX, false);
    remaining_down(r);
}

static void chunk_finished(mproc_future *f, void *userdata)
{
    int code = 0;
    mproc_future_error(f, &code, NULL);
    account_chunk(userdata, f->arg_len, code);
}

/* ---- chunks that run in another process --------------------------------------- */

/*
 * A backend whose workers do not share our memory (processes) runs each
 * chunk from a message that it writes straight into the worker's memory
 * (mproc__map_pack): a header and, unless they are in the pool's shared
 * heap, the chunk's item bytes. With a heap (the common case), map_start
 * submits every chunk, then copies the items there chunk by chunk; a
 * worker that takes a chunk first waits for its items (a ready word per
 * chunk, after the items' copy: await_items, copy_items). In fixed-size
 * mode the worker puts each item's result into `data`, which is heap
 * memory too (in place, or for the common sizes through one small slot
 * streamed out after each item: fixed_streamed): an item costs its task
 * call and a store or two, and no result is copied back. What comes back
 * as the chunk task's own result is only what failed: one record per
 * failed item (its index, code and message). In general mode (or with no
 * heap), the worker writes one record per item -- code, result bytes,
 * message -- into the chunk's result, or, fixed-size without a heap, the
 * dense results followed by the failure records; the chunk's
 * done-callback unpacks them.
 * A chunk whose worker died fails as a whole (MPROC_EWORKERDIED), like a
 * chunk that was cancelled.
 *
 * The worker grows the chunk's result with mproc_result_buffer as it goes:
 * a process worker keeps the bytes already written when its result room
 * grows or shrinks (exec/procs.c).
 */
#define RNONE UINT64_MAX

struct rchunk_hdr {
    uint64_t fn;          /* the item task, as a word of workers/fnref.h */
    uint64_t refs;        /* fn is a reference (spawned workers) */
    uint64_t item_size;
    uint64_t count;
    uint64_t result_size; /* 0: general mode */
    uint64_t in_off;      /* the items in the heap, or RNONE: they follow */
    uint64_t out_off;     /* fixed-size results in the heap, or RNONE */
    uint64_t ready_off;   /* with in_off: the chunk's ready word in the heap */
};

/* General mode: one per item. Fixed-size mode: one per failed item, with
 * `len` its index in the chunk. Then len result bytes (general mode) and
 * msg_len message bytes, padded to 8. */
struct rrec {
    int32_t code;
    uint32_t len;
    uint32_t msg_len;
    uint32_t pad;
};

#define RREC_ALIGN(n) (((n) + 7) & ~(size_t)7)

/* Worker side: the chunk's result as it is built, and the current item. */
struct rbuild {
    mproc_ctx *outer;     /* the chunk task's own context */
    unsigned char *base;  /* its result room */
    size_t cap, len;      /* bytes asked for, bytes used */
    size_t cur;           /* general: offset of the current item's record */
    size_t res_len;       /* general: the current item's result length */
    size_t result_size;   /* 0: general mode */
    bool wrong;           /* fixed: a result of the wrong length */
    bool has_msg;
    unsigned char *scratch; /* fixed: where wrong-length results go */
    size_t scratch_cap;
    char message[F_MESSAGE_MAX];
};

/* Room for `need` bytes of the chunk's result; base may move. */
static bool rbuild_reserve(struct rbuild *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    unsigned char *p = mproc_result_buffer(b->outer, cap);
    if (!p)
        return false;
    b->base = p;
    b->cap = cap;
    return true;
}

static void *rbuild_room(mproc_ctx *ctx, size_t len)
{
    struct rbuild *b = ctx->owner;
    if (b->result_size) { /* the right length went to ctx->head.slot directly */
        b->wrong = true;
        b->has_msg = true;
        snprintf(b->message, sizeof b->message, "result of %zu bytes, but result_size is %zu",
                 len, b->result_size);
        if (len > b->scratch_cap) {
            unsigned char *p = realloc(b->scratch, len);
            if (!p)
                return NULL;
            b->scratch = p;
            b->scratch_cap = len;
        }
        return b->scratch;
    }
    if (len > UINT32_MAX || len > SIZE_MAX - b->cur - sizeof(struct rrec) ||
        !rbuild_reserve(b, b->cur + sizeof(struct rrec) + len))
        return NULL;
    b->res_len = len;
    return b->base + b->cur + sizeof(struct rrec);
}

static void rbuild_message(mproc_ctx *ctx, const char *fmt, va_list ap)
{
    struct rbuild *b = ctx->owner;
    vsnprintf(b->message, sizeof b->message, fmt, ap);
    b->has_msg = true;
}

static bool rbuild_cancel_requested(const mproc_ctx *ctx)
{
    const struct rbuild *b = ctx->owner;
    return mproc_cancel_requested(b->outer);
}

static const struct mproc__ctx_ops rbuild_ops = {
    .room = rbuild_room,
    .message = rbuild_message,
    .cancel_requested = rbuild_cancel_requested,
};

/* Append a record (code, len, message) at b->len; false if out of room. */
static bool rbuild_fail(struct rbuild *b, int code, uint32_t index)
{
    size_t mlen = b->has_msg ? strnlen(b->message, sizeof b->message - 1) : 0;
    size_t at = b->len, end = RREC_ALIGN(at + sizeof(struct rrec) + mlen);
    if (!rbuild_reserve(b, end))
        return false;
    struct rrec rec = { code, index, (uint32_t)mlen, 0 };
    memcpy(b->base + at, &rec, sizeof rec);
    memcpy(b->base + at + sizeof rec, b->message, mlen);
    b->len = end;
    return true;
}

/* After fixed-size item i's task returned `code` with code < 0 or a flag
 * set: a message on a success is dropped; otherwise the item failed
 * (-EMSGSIZE for a wrong length, unless it has its own code), its result
 * bytes at slot read as zeros and it gets a record. 0 or -ENOMEM. */
static int fixed_settle(struct rbuild *b, int code, size_t i, unsigned char *slot)
{
    if (code >= 0 && !b->wrong) { /* a message, but it succeeded */
        b->has_msg = false;
        return 0;
    }
    if (code >= 0)
        code = -EMSGSIZE;
    memset(slot, 0, b->result_size); /* a failed item reads as zeros */
    if (!rbuild_fail(b, code, (uint32_t)i))
        return -ENOMEM;
    b->wrong = b->has_msg = false;
    return 0;
}

#if defined(__SSE2__) && defined(__x86_64__)
/* Results of up to this many bytes (a multiple of 8) are streamed. */
#define STREAM_MAX 64

/*
 * Items [0, count) whose results go to the heap at out, 8-byte aligned,
 * rs a multiple of 8 up to STREAM_MAX (a constant where inlined). Every
 * item's context points at the same small slot, hot in the cache; after
 * each item its bytes go to out with non-temporal stores. Written in
 * place instead, each result line would first be read from memory (its
 * pages were last touched by other processes), and memory bandwidth is
 * what a map of small items runs short of first; the slot's address also
 * stays put, so the item loop stores one pointer fewer.
 */
static inline int fixed_streamed(struct rbuild *b, mproc_task_fn fn, const unsigned char *in,
                                 size_t isz, size_t count, unsigned char *out, size_t rs,
                                 mproc_ctx *ctx)
{
    _Alignas(64) unsigned char slot[STREAM_MAX];
    int rc = 0;
    ctx->head.slot = slot;
    for (size_t i = 0; i < count; i++, in += isz, out += rs) {
        memset(slot, 0, rs); /* an item that returns nothing reads as zeros */
        int code = fn(in, isz, ctx);
        /* The flags are reset only when set: an item costs its call. */
        if (__builtin_expect(code < 0 || b->wrong || b->has_msg, 0) &&
            (rc = fixed_settle(b, code, i, slot)) != 0)
            break;
        for (size_t k = 0; k < rs; k += 8) {
            long long v;
            memcpy(&v, slot + k, 8);
            _mm_stream_si64((long long *)(void *)(out + k), v);
        }
    }
    _mm_sfence(); /* the results are visible before the chunk's completion */
    return rc;
}
#endif

/* Fixed-size items [0, count) with results at out (the heap), or in the
 * chunk's result when out is NULL. */
static int remote_fixed(struct rbuild *b, mproc_task_fn fn, const unsigned char *in,
                        size_t isz, size_t count, unsigned char *out, mproc_ctx *ctx)
{
    size_t rs = b->result_size, dense = count * rs;
    ctx->head.slot_len = rs;
    b->wrong = b->has_msg = false;
#ifdef STREAM_MAX
    if (out && rs % 8 == 0 && rs <= STREAM_MAX && (uintptr_t)out % 8 == 0)
        return rs == 8 ? fixed_streamed(b, fn, in, isz, count, out, 8, ctx)
                       : fixed_streamed(b, fn, in, isz, count, out, rs, ctx);
#endif
    if (!out) {
        if (!rbuild_reserve(b, RREC_ALIGN(dense)))
            return -ENOMEM;
        b->len = RREC_ALIGN(dense);
    }
    for (size_t i = 0; i < count; i++, in += isz) {
        unsigned char *slot = (out ? out : b->base) + i * rs; /* base moves as it grows */
        /* An item that returns nothing reads as zeros. Zeroed here, not
         * in a pass before the loop: the line is then written once. */
        switch (rs) {
        case 4: memset(slot, 0, 4); break;
        case 8: memset(slot, 0, 8); break;
        case 16: memset(slot, 0, 16); break;
        default: memset(slot, 0, rs); break;
        }
        ctx->head.slot = slot;
        int code = fn(in, isz, ctx);
        /* The flags are reset only when set: an item costs its call. */
        if (__builtin_expect(code < 0 || b->wrong || b->has_msg, 0)) {
            int rc = fixed_settle(b, code, i, (out ? out : b->base) + i * rs);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* General-mode items [0, count): one record each. */
static int remote_general(struct rbuild *b, mproc_task_fn fn, const unsigned char *in,
                          size_t isz, size_t count, mproc_ctx *ctx)
{
    for (size_t i = 0; i < count; i++, in += isz) {
        b->cur = b->len;
        b->res_len = 0;
        b->has_msg = false;
        if (!rbuild_reserve(b, b->cur + sizeof(struct rrec)))
            return -ENOMEM;
        ctx->item = i;
        int code = fn(in, isz, ctx);
        if (code > 0)
            code = 0;
        struct rrec rec = { code, code < 0 ? 0 : (uint32_t)b->res_len, 0, 0 };
        size_t mlen = code < 0 && b->has_msg ? strnlen(b->message, sizeof b->message - 1) : 0;
        size_t end = b->cur + sizeof rec + rec.len;
        if (!rbuild_reserve(b, RREC_ALIGN(end + mlen)))
            return -ENOMEM;
        rec.msg_len = (uint32_t)mlen;
        memcpy(b->base + b->cur, &rec, sizeof rec);
        memcpy(b->base + end, b->message, mlen);
        b->len = RREC_ALIGN(end + mlen);
    }
    return 0;
}

/* A chunk's ready word (in the heap): its items are not there yet, they
 * are, or they are not and its worker sleeps on the word. */
enum { ITEMS_COMING, ITEMS_THERE, ITEMS_AWAITED };
/* Looks at the word before sleeping on it: copying a chunk's items takes
 * a fraction of a millisecond. */
#define READY_SPIN 1024

/* Worker side: wait until the parent has copied the chunk's items. */
static void await_items(uint32_t *word)
{
    for (unsigned i = 0; i < READY_SPIN; i++) {
        if (mproc__load_acquire(word) == ITEMS_THERE)
            return;
        mproc__cpu_relax();
    }
    for (;;) {
        uint32_t v = ITEMS_COMING;
        if (!__atomic_compare_exchange_n(word, &v, ITEMS_AWAITED, false, __ATOMIC_ACQUIRE,
                                         __ATOMIC_ACQUIRE) &&
            v == ITEMS_THERE)
            return;
        mproc__futex_wait(word, ITEMS_AWAITED, MPROC__FOREVER, true);
    }
}

/* Parent side: chunk k's items are in the heap; true if its worker slept
 * and was woken. */
static bool items_there(mproc_results *r, size_t k)
{
    /* Release: the items (copy_out fenced its streaming stores) before
     * the word. */
    if (__atomic_exchange_n(&r->ready[k], ITEMS_THERE, __ATOMIC_ACQ_REL) != ITEMS_AWAITED)
        return false;
    mproc__futex_wake(&r->ready[k], INT_MAX, true);
    return true;
}

/* The chunk task, run by a worker process on the message of
 * mproc__map_pack. */
int mproc__map_remote_chunk(const void *msg, size_t len, mproc_ctx *outer)
{
    struct rchunk_hdr h;
    if (len < sizeof h)
        return -EPROTO;
    memcpy(&h, msg, sizeof h);
    size_t hsize = 0;
    unsigned char *heap = mproc__pheap_worker_base(&hsize);
    if (h.item_size == 0 || h.count > SIZE_MAX / h.item_size ||
        (h.result_size && h.count > SIZE_MAX / h.result_size))
        return -EPROTO;
    size_t in_bytes = (size_t)(h.count * h.item_size), out_bytes = (size_t)(h.count * h.result_size);
    const unsigned char *in = (const unsigned char *)msg + sizeof h;
    unsigned char *out = NULL;
    if (h.in_off == RNONE ? in_bytes > len - sizeof h
                          : !heap || h.in_off > hsize || in_bytes > hsize - h.in_off)
        return -EPROTO;
    uint32_t *ready = NULL;
    if (h.in_off != RNONE) {
        if (h.ready_off > hsize - sizeof *ready || h.ready_off % sizeof *ready)
            return -EPROTO;
        in = heap + h.in_off;
        ready = (uint32_t *)(void *)(heap + h.ready_off);
    }
    if (h.out_off != RNONE) {
        if (!h.result_size || !heap || h.out_off > hsize || out_bytes > hsize - h.out_off)
            return -EPROTO;
        out = heap + h.out_off;
    }
    mproc_task_fn fn;
    void *addr;
    char why[MPROC__FNREF_WHY];
    if (mproc__fnref_decode(h.fn, h.refs != 0, &addr, why, sizeof why) != 0)
        return mproc_fail(outer, MPROC_ENOSYMBOL, "%s", why);
    memcpy(&fn, &addr, sizeof fn);
    struct rbuild b = { .outer = outer, .result_size = (size_t)h.result_size };
    struct mproc_ctx ctx = { .ops = &rbuild_ops, .owner = &b, .worker = mproc_ctx_worker(outer) };
    if (ready)
        await_items(ready);
    int rc = h.result_size ? remote_fixed(&b, fn, in, (size_t)h.item_size, (size_t)h.count, out, &ctx)
                           : remote_general(&b, fn, in, (size_t)h.item_size, (size_t)h.count, &ctx);
    free(b.scratch);
    if (rc == 0 && b.cap && !mproc_result_buffer(outer, b.len)) /* its final length */
        rc = -ENOMEM;
    return rc;
}

size_t mproc__map_pack_len(const mproc_future *f)
{
    const mproc_results *r = f->arg;
    size_t lo = f->arg_len * r->chunksize, hi = chunk_end(r, lo);
    return sizeof(struct rchunk_hdr) + (r->in_shared ? 0 : (hi - lo) * r->item_size);
}

void mproc__map_pack(const mproc_future *f, void *dst)
{
    const mproc_results *r = f->arg;
    size_t lo = f->arg_len * r->chunksize, hi = chunk_end(r, lo);
    struct rchunk_hdr h = { r->fn_word, r->ex->fn_refs, r->item_size, hi - lo, r->result_size,
                            r->in_shared ? r->in_off + lo * r->item_size : RNONE,
                            r->out_shared ? r->out_off + lo * r->result_size : RNONE,
                            r->in_shared ? r->in_off + ready_at(r) + f->arg_len * sizeof *r->ready
                                         : RNONE };
    memcpy(dst, &h, sizeof h);
    if (!r->in_shared)
        memcpy((unsigned char *)dst + sizeof h, r->items + lo * r->item_size,
               (hi - lo) * r->item_size);
}

/* Parent side, general mode: store one unpacked record as item i's outcome. */
static void store_record(mproc_results *r, size_t i, const struct rrec *rec,
                         const unsigned char *bytes, const char *msg)
{
    int code = rec->code;
    if (code == 0) {
        void *p = rec->len ? item_room(r, i, rec->len) : NULL;
        if (rec->len && !p)
            code = -ENOMEM;
        else if (p)
            memcpy(p, bytes, rec->len);
    }
    if (code < 0) {
        r->slots[i].code = code;
        if (rec->msg_len)
            item_message(r, i, "%.*s", (int)rec->msg_len, msg);
        note_failure(r, i);
    }
}

/* Parent side: unpack chunk [lo, hi)'s result d[0..n); 0 or -EPROTO. */
static int unpack_chunk(mproc_results *r, size_t lo, size_t hi, const unsigned char *d, size_t n)
{
    size_t off = 0, count = hi - lo, rs = r->result_size;
    if (rs && !r->out_shared) { /* the dense results first */
        if (n < count * rs)
            return -EPROTO;
        memcpy(r->data + lo * rs, d, count * rs);
        off = RREC_ALIGN(count * rs);
    }
    for (size_t i = lo; (rs ? off < n : i < hi);) {
        struct rrec rec;
        if (n - off < sizeof rec)
            return -EPROTO;
        memcpy(&rec, d + off, sizeof rec);
        size_t body = sizeof rec + (rs ? 0 : (size_t)rec.len) + rec.msg_len;
        if (n - off < body || (rs && (rec.len >= count || rec.code >= 0)))
            return -EPROTO;
        const char *msg = (const char *)d + off + sizeof rec + (rs ? 0 : rec.len);
        if (rs) { /* a failed item: its bytes were zeroed by the worker */
            size_t item = lo + rec.len;
            r->codes[item] = rec.code;
            if (rec.msg_len)
                item_message(r, item, "%.*s", (int)rec.msg_len, msg);
            note_failure(r, item);
        } else {
            store_record(r, i++, &rec, d + off + sizeof rec, msg);
        }
        off += RREC_ALIGN(body);
    }
    return 0;
}

static void remote_chunk_finished(mproc_future *f, void *userdata)
{
    mproc_results *r = userdata;
    size_t k = f->arg_len, lo = k * r->chunksize, hi = chunk_end(r, lo);
    int code = 0;
    const unsigned char *d = NULL;
    size_t n = 0;
    if (mproc_future_error(f, &code, NULL) == 0 && code == 0) {
        mproc_future_result(f, 0, (const void **)&d, &n);
        code = unpack_chunk(r, lo, hi, d, n);
    }
    account_chunk(r, k, code);
}

/* Copy items into the heap, bypassing our cache when large: a worker on
 * another core reads them next, from memory rather than from our cache. */
static void copy_out(unsigned char *dst, const unsigned char *src, size_t n)
{
#if defined(__SSE2__)
    if (n >= ((size_t)64 << 10)) {
        while (((uintptr_t)dst & 15) && n) {
            *dst++ = *src++;
            n--;
        }
        size_t k = n / 64;
        for (size_t i = 0; i < k; i++, dst += 64, src += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(src + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + 48));
            _mm_stream_si128((__m128i *)dst, a);
            _mm_stream_si128((__m128i *)(dst + 16), b);
            _mm_stream_si128((__m128i *)(dst + 32), c);
            _mm_stream_si128((__m128i *)(dst + 48), d);
        }
        _mm_sfence();
        n -= k * 64;
    }
#endif
    memcpy(dst, src, n);
}

/* Parent side: copy the items of chunks [0, submitted) to the heap, one
 * chunk after the other, telling each chunk's worker. While we copy, a
 * CPU is ours: of the workers that went to sleep waiting for their items,
 * only as many as there are other CPUs are woken at once, and the others
 * once everything is copied -- woken earlier, they would share our CPU
 * and slow the copying that every later chunk waits for. A worker still
 * looking at its word, or running another chunk, finds its items as soon
 * as they are there. */
static void copy_items(mproc_results *r, size_t submitted)
{
    unsigned cpus = mproc_cpu_count(), woken = 0, room = cpus > 1 ? cpus - 1 : 1;
    size_t isz = r->item_size;
    for (size_t k = 0; k < submitted; k++) {
        size_t lo = k * r->chunksize, hi = chunk_end(r, lo);
        copy_out(r->in_heap + lo * isz, r->items + lo * isz, (hi - lo) * isz);
        if (woken >= room && mproc__load_acquire(&r->ready[k]) == ITEMS_AWAITED)
            continue; /* only we change it from here on */
        woken += items_there(r, k);
    }
    for (size_t k = 0; k < submitted; k++)
        if (mproc__load_relaxed(&r->ready[k]) != ITEMS_THERE)
            items_there(r, k);
}

/* Submit chunk k of r to a remote backend; 0 or the submit's error. */
static int submit_remote_chunk(mproc_results *r, size_t k)
{
    size_t lo = k * r->chunksize, hi = chunk_end(r, lo);
    size_t bytes = (hi - lo) * r->item_size;
    if (!r->in_shared && bytes > r->ex->be->max_arg - sizeof(struct rchunk_hdr))
        return -E2BIG;
    mproc_future *cf;
    int rc = mproc__submit_internal(r->ex, mproc__map_remote_chunk, r, k, &cf);
    if (rc != 0)
        return rc;
    mproc_future_add_done_callback(cf, remote_chunk_finished, r); /* first: cannot fail */
    mproc_future_release(cf);
    return 0;
}

/* Wait until ready(r, arg) or the deadline: 0 or -ETIMEDOUT. */
static int wait_progress(mproc_results *r, bool (*ready)(const void *, size_t), size_t arg,
                         int64_t deadline)
{
    return mproc__exec_await(r->ex, &r->progress, &r->sleepers, ready, r, arg, deadline);
}

/* ---- starting a map ------------------------------------------------------------ */

static void dispatch_done(mproc_future *f, void *userdata)
{
    mproc_results *r = userdata;
    int code = 0;
    mproc_future_error(f, &code, NULL);
    mproc_future_cb cb = code == 0 ? r->callback : r->error_callback;
    if (cb)
        cb(f, r->userdata);
    results_release(r); /* taken when the dispatcher was registered */
}

static mproc_results *results_new(mproc_executor *ex, mproc_task_fn fn, const void *items,
                                  size_t item_size, size_t n, const mproc_map_opts *opts)
{
    mproc_results *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    mproc_lock_init(&r->msg_lock, 0);
    r->ex = ex;
    r->fn = fn;
    r->items = items;
    r->item_size = item_size;
    r->n = n;
    size_t cs = opts ? opts->chunksize : 0;
    if (cs == 0) { /* Python's Pool: divmod(n, 4 * workers), rounded up */
        size_t per = 4 * (size_t)mproc_executor_workers(ex);
        cs = n / per + (n % per != 0);
    }
    r->chunksize = cs ? cs : 1;
    r->nchunks = n / r->chunksize + (n % r->chunksize != 0);
    r->first_fail = NO_FAILURE;
    r->refs = 1;
    size_t nc = r->nchunks ? r->nchunks : 1;
    bool fixed = opts && opts->result_size > 0;
    struct mproc__pheap *heap = ex->be->heap && n > 0 ? ex->be->heap(ex) : NULL;
    if (heap) { /* the items go to the pool's shared heap; else in messages */
        r->in_heap = in_heap_bytes(r) == 0 ? NULL
                   : mproc__pheap_alloc(heap, in_heap_bytes(r), &r->in_off);
        r->in_shared = r->in_heap != NULL;
        if (r->in_shared) { /* no chunk's items are there yet */
            r->ready = (uint32_t *)(void *)(r->in_heap + ready_at(r));
            memset(r->ready, 0, r->nchunks * sizeof *r->ready);
        }
        r->heap = mproc__pheap_retain(heap);
    }
    if (fixed) { /* map_start checked n * result_size */
        r->result_size = opts->result_size;
        r->data_bytes = n * r->result_size;
        if (r->in_shared)
            r->data = mproc__pheap_alloc(heap, r->data_bytes, &r->out_off);
        r->out_shared = r->data != NULL;
        if (!r->data)
            r->data = zalloc(r->data_bytes, true);
        if (n <= SIZE_MAX / sizeof *r->codes) {
            r->codes_bytes = n * sizeof *r->codes;
            r->codes = zalloc(r->codes_bytes, false);
        }
    } else if (n <= SIZE_MAX / sizeof *r->slots) {
        r->slots_bytes = n * sizeof *r->slots;
        r->slots = zalloc(r->slots_bytes, true);
    }
    r->chunk_done = calloc(nc, 1);
    r->order = malloc(nc * sizeof *r->order);
    r->done = mproc__future_manual(ex, 1);
    if (opts && (opts->flags & MPROC_COPY_ARG) && n > 0 && !r->in_shared) {
        r->items_copy = malloc(n * item_size);
        if (r->items_copy) {
            memcpy(r->items_copy, items, n * item_size);
            r->items = r->items_copy;
        }
    }
    if ((fixed ? !r->data || !r->codes : !r->slots) || !r->chunk_done || !r->order || !r->done ||
        (opts && (opts->flags & MPROC_COPY_ARG) && n > 0 && !r->in_shared && !r->items_copy)) {
        results_free(r);
        return NULL;
    }
    for (size_t k = 0; k < nc; k++)
        r->order[k] = NOT_YET;
    return r;
}

static int map_start(mproc_executor *ex, mproc_task_fn fn, const void *items, size_t item_size,
                     size_t n, const mproc_map_opts *opts, mproc_results **out)
{
    size_t rs = opts ? opts->result_size : 0;
    if (!ex || !fn || !out || (n > 0 && (!items || item_size == 0)) ||
        (n > 0 && item_size > SIZE_MAX / n) || (n > 0 && rs > SIZE_MAX / n))
        return -EINVAL;
    uint64_t fn_word = 0;
    if (ex->be->remote && n > 0) { /* one that a spawned worker cannot find fails the call */
        void *addr;
        memcpy(&addr, &fn, sizeof addr);
        int rc = mproc__fnref_encode(addr, ex->fn_refs, &fn_word, NULL, 0);
        if (rc != 0)
            return rc;
    }
    mproc_results *r = results_new(ex, fn, items, item_size, n, opts);
    if (!r)
        return -ENOMEM;
    r->fn_word = fn_word;
    r->remaining = r->nchunks;
    if (r->nchunks == 0) {
        mproc__future_complete(r->done, 0);
        *out = r;
        return 0;
    }
    r->refs = 2; /* the caller's and the chunks' */
    /* Items that go to the pool's heap are copied there after every chunk
     * is submitted, chunk by chunk, and each chunk's worker waits for its
     * items (await_items): the dispatcher places all chunks at once, and
     * the workers need it no more until they finish, rather than once per
     * chunk while we copy -- on a small machine it then competes for a
     * CPU with us and the workers, and a worker ran dry waiting for it.
     * The copying counts as one more chunk in `remaining`, so that the
     * items' copy (freed with the last chunk) outlives it even if chunks
     * are cancelled meanwhile. */
    bool copy_after = ex->be->remote && r->in_shared;
    if (copy_after)
        r->remaining++;
    size_t submitted = r->nchunks;
    for (size_t k = 0; k < r->nchunks; k++) {
        mproc_future *cf = NULL;
        int rc = ex->be->remote ? submit_remote_chunk(r, k)
                                : mproc__submit_internal(ex, run_chunk, r, k, &cf);
        if (rc != 0) {
            if (k == 0) { /* nothing started: a plain call error */
                r->refs = 1;
                results_free(r);
                return rc;
            }
            for (submitted = k; k < r->nchunks; k++)
                account_chunk(r, k, rc);
            break;
        }
        if (cf) {
            mproc_future_add_done_callback(cf, chunk_finished, r); /* first: cannot fail */
            mproc_future_release(cf);
        }
    }
    if (copy_after) {
        copy_items(r, submitted);
        remaining_down(r);
    }
    *out = r;
    return 0;
}

int mproc_map_async(mproc_executor *ex, mproc_task_fn fn, const void *items, size_t item_size,
                    size_t n, const mproc_map_opts *opts, mproc_future_cb callback,
                    mproc_future_cb error_callback, void *userdata, mproc_results **out,
                    mproc_future **done)
{
    if (done)
        *done = NULL;
    if (out)
        *out = NULL;
    mproc_results *r;
    int rc = map_start(ex, fn, items, item_size, n, opts, &r);
    if (rc != 0)
        return rc;
    r->callback = callback;
    r->error_callback = error_callback;
    r->userdata = userdata;
    if (done)
        *done = mproc_future_retain(r->done);
    /* Registered after start: if the map already finished, it runs now.
     * The dispatcher reads r: it holds a reference until it has run. */
    if (callback || error_callback) {
        mproc__fetch_add(&r->refs, 1, __ATOMIC_RELAXED);
        mproc_future_add_done_callback(r->done, dispatch_done, r);
    }
    if (out)
        *out = r;
    else
        results_release(r);
    return 0;
}

int mproc_map(mproc_executor *ex, mproc_task_fn fn, const void *items, size_t item_size,
              size_t n, const mproc_map_opts *opts, mproc_results **out)
{
    if (!out)
        return -EINVAL;
    mproc_future *done;
    int rc = mproc_map_async(ex, fn, items, item_size, n, opts, NULL, NULL, NULL, out, &done);
    if (rc != 0)
        return rc;
    rc = mproc_future_result(done, -1, NULL, NULL);
    mproc_future_release(done);
    return rc;
}

/* ---- imap ------------------------------------------------------------------ */

static bool order_ready(const void *results, size_t pos)
{
    const mproc_results *r = results;
    return mproc__load_acquire(&r->order[pos]) != NOT_YET;
}

static int imap_start(mproc_executor *ex, mproc_task_fn fn, const void *items,
                      size_t item_size, size_t n, const mproc_map_opts *opts, bool ordered,
                      mproc_imap_iter **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    mproc_imap_iter *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    int rc = map_start(ex, fn, items, item_size, n, opts, &it->r);
    if (rc != 0) {
        free(it);
        return rc;
    }
    it->ordered = ordered;
    *out = it;
    return 0;
}

int mproc_imap(mproc_executor *ex, mproc_task_fn fn, const void *items, size_t item_size,
               size_t n, const mproc_map_opts *opts, mproc_imap_iter **out)
{
    return imap_start(ex, fn, items, item_size, n, opts, true, out);
}

int mproc_imap_unordered(mproc_executor *ex, mproc_task_fn fn, const void *items,
                         size_t item_size, size_t n, const mproc_map_opts *opts,
                         mproc_imap_iter **out)
{
    return imap_start(ex, fn, items, item_size, n, opts, false, out);
}

int mproc_imap_next(mproc_imap_iter *it, int64_t timeout_ms, mproc_item *item)
{
    if (!it || !item)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    mproc_results *r = it->r;
    if (it->yielded == r->n)
        return 0;
    if (it->pos == it->end) { /* on to the next chunk */
        size_t k;
        if (it->ordered) {
            if ((rc = wait_progress(r, chunk_ready, it->next_chunk, deadline)) != 0)
                return rc;
            k = it->next_chunk++;
        } else {
            if ((rc = wait_progress(r, order_ready, it->order_head, deadline)) != 0)
                return rc;
            k = mproc__load_acquire(&r->order[it->order_head++]);
        }
        it->pos = k * r->chunksize;
        it->end = chunk_end(r, it->pos);
    }
    fill_item(r, it->pos++, item);
    it->yielded++;
    return 1;
}

void mproc_imap_destroy(mproc_imap_iter *it)
{
    if (!it)
        return;
    results_release(it->r);
    free(it);
}

/* ---- apply ------------------------------------------------------------------ */

int mproc_apply(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                mproc_future **out)
{
    if (out)
        *out = NULL;
    mproc_future *f;
    int rc = mproc_submit(ex, fn, arg, len, &f);
    if (rc != 0)
        return rc;
    rc = mproc_future_result(f, -1, NULL, NULL);
    if (out)
        *out = f;
    else
        mproc_future_release(f);
    return rc;
}

struct apply_cbs {
    mproc_future_cb callback, error_callback;
    void *userdata;
};

static void apply_dispatch(mproc_future *f, void *userdata)
{
    struct apply_cbs *c = userdata;
    int code = 0;
    mproc_future_error(f, &code, NULL);
    mproc_future_cb cb = code == 0 ? c->callback : c->error_callback;
    void *ud = c->userdata;
    free(c);
    if (cb)
        cb(f, ud);
}

int mproc_apply_async(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                      mproc_future_cb callback, mproc_future_cb error_callback,
                      void *userdata, mproc_future **out)
{
    if (out)
        *out = NULL;
    if (!callback && !error_callback)
        return mproc_submit(ex, fn, arg, len, out);
    struct apply_cbs *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (struct apply_cbs){ callback, error_callback, userdata };
    mproc_future *f;
    int rc = mproc_submit(ex, fn, arg, len, &f);
    if (rc != 0) {
        free(c);
        return rc;
    }
    mproc_future_add_done_callback(f, apply_dispatch, c); /* first: cannot fail */
    if (out)
        *out = f;
    else
        mproc_future_release(f);
    return 0;
}
