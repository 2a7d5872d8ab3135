/*
 * ipc/queue.c -- mproc_queue: a multi-producer multi-consumer message
 * queue in shared memory, for threads and processes, that survives any
 * participant being killed at any instruction.
 *
 * Layout
 * ------
 * One memfd mapping (os/shmap.h) holds the control block (`struct
 * mproc_queue`, the handle itself: it is at the same address in every
 * forked child) and, from the next page on, the ring: a power-of-two
 * byte buffer of records. Positions in the ring are 32-bit byte counters
 * that wrap (the ring is at most 1 GiB); a record starts at a multiple of
 * 8 with an 8-byte header {len, type} and its payload padded to 8 bytes.
 * At most `limit` bytes of records (max_bytes) are in the ring at once.
 *
 * The protocol: a two-lock queue whose commits are single stores
 * ----------------------------------------------------------------------
 * Producers serialise among themselves with `plock`, consumers with
 * `clock` (both robust MPROC_SHARED mproc_locks); between the producer
 * side and the consumer side the ring is a plain single-producer
 * single-consumer ring. The producer side's whole state is one 64-bit
 * word `pstate` = tail | puts << 32 (puts: complete messages committed);
 * the consumer side's is `cstate` = head | gets << 32. The lock holder
 * writes a record beyond `tail` (memory nobody reads) and then publishes
 * it with one release store of pstate; a consumer copies a record out
 * from `head` and then frees it with one release store of cstate.
 *
 * Crash safety follows from that: everything a lock holder does before
 * its commit store is invisible, and the commit store is atomic. A
 * producer killed before its commit loses its message (the space is
 * simply reused); one killed after it has delivered it. A consumer
 * killed before its commit loses nothing (the next consumer gets the same
 * message), one killed after it loses the one message it took. The next
 * process to take the lock gets -EOWNERDEAD from mproc_lock, repairs
 * (below) and marks it consistent; waiters notice a dead holder within
 * about 100 ms (mproc_lock's liveness checks), so nobody hangs. Derived
 * figures (qsize, the bytes in use, JoinableQueue's unfinished count =
 * puts - done) are computed from the committed words, so they cannot get
 * out of step with the ring.
 *
 * Messages larger than the ring
 * -----------------------------
 * A message whose record would take more than half the ring is sent in
 * chunk records FIRST (carrying the total length), MIDDLE..., LAST: the
 * producer keeps plock for the whole message and commits each chunk as
 * soon as it is written, the consumer keeps clock and frees each chunk as
 * soon as it has copied it, so the two stream through the ring together
 * and any size up to max_message works. Failure cases:
 *  - the producer gives up (timeout, close): it commits an ABORT record.
 *    Every chunk commit leaves room for one (8 bytes), so this never
 *    waits. A consumer that sees ABORT drops the partial message.
 *  - the producer dies: `p_partial` says a chunked message was under way;
 *    the next plock holder repairs by committing the ABORT for it. A
 *    consumer waiting for the next chunk meanwhile looks every few tens
 *    of milliseconds whether the writer (`p_owner`, tid and start time)
 *    still lives, and drops the partial message itself when it does not
 *    and the ring holds nothing more (then the writer cannot have
 *    finished: see wait_chunk).
 *  - the consumer dies: the next consumer finds chunks with no FIRST
 *    before them ("orphans") and skips them, counting a LAST as a message
 *    taken. The producer, if alive, just keeps streaming into them.
 * A consumer that is not inside a message skips MIDDLE, LAST and ABORT
 * records; inside one, a FIRST or WHOLE record (possible only when a
 * dead writer's ABORT never got written) ends the partial message too.
 * puts counts WHOLE and LAST records committed, gets counts WHOLE and
 * LAST records freed, so qsize stays exact through all of this.
 *
 * Waiting
 * -------
 * Consumers sleep on `data_seq`, producers on `space_seq`, JoinableQueue
 * joiners on `join_seq`. Bit 0 of such a word means "somebody may be
 * asleep"; a waiter sets it (seq_cst RMW), then re-checks its condition
 * (seq_cst loads), then futex-waits on the value it set. A waker commits
 * its change with a seq_cst store (or RMW), then loads the word (seq_cst)
 * and, if bit 0 is set, replaces it by word + 1 (clearing the bit,
 * changing the value) and wakes everybody. In the single order of
 * seq_cst operations either the waiter's re-check comes after the commit
 * and sees it, or the waker's load comes after the waiter's RMW and sees
 * the bit; and a waiter whose re-check missed the change sleeps on a
 * value the waker then changes, so its futex wait returns at once.
 * (seq_cst accesses rather than fences: ThreadSanitizer understands
 * them; on x86 the commit becomes an XCHG, which costs what a fence
 * would.) A waiter
 * that dies while registered costs at most one spare wake-up. Waking all
 * (not one) means no wake-up can be lost to a waiter that dies or times
 * out right after being chosen. Waiters spin briefly first: the peer is
 * usually a few hundred nanoseconds away.
 *
 * close() sets `closed`, then changes all three words and wakes all.
 * Puts check `closed` under plock, so after a getter that found the
 * queue closed and empty has taken and released plock once (the
 * "barrier" in get), no put can commit any more: only then may it answer
 * -EPIPE, and it records that in `closed` (CLOSED_DRAINABLE) so later
 * getters skip the barrier.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "os/atomic.h"
#include "os/fault.h"
#include "os/shmap.h"
#include "os/sys.h"
#include "sync/lock_internal.h"

#define QUEUE_MAGIC 0x6d517565u

#define DEFAULT_BYTES   ((size_t)1 << 20)
#define MIN_BYTES       ((size_t)256)
#define MAX_BYTES       ((size_t)1 << 30)
#define DEFAULT_MESSAGE ((size_t)64 << 20)
#define CHUNK_MAX       ((uint32_t)64 << 10)

#define HDR 8u /* record header */

enum rec_type { REC_WHOLE = 1, REC_FIRST = 2, REC_MIDDLE = 3, REC_LAST = 4, REC_ABORT = 5 };

/* `closed` values. */
#define CLOSED_NO        0u
#define CLOSED_YES       1u /* no put may start */
#define CLOSED_DRAINABLE 2u /* and no put can still commit */

/* Lock holders are quick (a copy of one small record) unless they stream
 * a large message; calls that must not wait still give a lock this long. */
#define LOCK_GRACE_NS (2 * 1000000LL)

/* A consumer inside a chunked message checks its writer's liveness this
 * often (doubling up to the maximum). */
#define LIVE_FIRST_NS (5 * 1000000LL)
#define LIVE_MAX_NS   (100 * 1000000LL)

#define SPIN_ROUNDS 4096u

struct rec_hdr {
    uint32_t len;  /* payload bytes after the header */
    uint32_t type; /* enum rec_type */
};

struct mproc_queue {
    /* Constant after create. */
    uint32_t magic;
    uint32_t flags;
    uint64_t map_size;
    uint32_t mask;      /* ring size - 1 */
    uint32_t limit;     /* bytes of records allowed in the ring */
    uint32_t whole_max; /* largest payload sent as one record */
    uint32_t chunk_max; /* largest chunk payload */
    uint32_t chunk_min; /* a chunked put waits for room for this much */
    uint32_t closed;    /* CLOSED_*: written by close and the getters' barrier */
    uint64_t maxsize;   /* items, 0 = no limit */
    uint64_t max_message;

    /* Producer side. */
    _Alignas(64) mproc_lock plock;
    _Alignas(64) uint64_t pstate; /* tail | puts << 32; read by consumers */
    _Alignas(64) uint64_t p_cache; /* a cstate seen by a plock holder */
    uint64_t p_partial;            /* PARTIAL | start tail of a chunked put */
    uint64_t p_owner;              /* writer of the chunked put: tid | start32 << 32 */

    /* Consumer side. */
    _Alignas(64) mproc_lock clock;
    _Alignas(64) uint64_t cstate; /* head | gets << 32; read by producers */
    _Alignas(64) uint64_t c_cache; /* a pstate seen by a clock holder */

    /* Wake-up words. */
    _Alignas(64) uint32_t data_seq;
    _Alignas(64) uint32_t space_seq;
    _Alignas(64) uint32_t join_seq;
    uint32_t done; /* task_done calls (JoinableQueue) */
};

#define PARTIAL ((uint64_t)1 << 63)

/* The commit of a record (pstate) or of its removal (cstate): seq_cst, as
 * the wake-up protocol needs (see the top); it is also a release, which
 * publishes the record's bytes / frees them for the producer. Waiters'
 * looks at the same words are seq_cst loads (load_sc). */
#define commit_store(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define load_sc(p)         __atomic_load_n((p), __ATOMIC_SEQ_CST)

/* The ring starts on the page after the control block. */
static size_t ring_offset(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t need = sizeof(struct mproc_queue);
    return (need + page - 1) / page * page;
}

static inline char *ring(mproc_queue *q)
{
    /* The control block is below one page (static assertion below), and
     * pages are at least 4 KiB. */
    return (char *)q + q->map_size - ((size_t)q->mask + 1);
}

_Static_assert(sizeof(struct mproc_queue) <= 4096, "control block fits a page");

static inline uint32_t lo32(uint64_t v)
{
    return (uint32_t)v;
}

static inline uint32_t hi32(uint64_t v)
{
    return (uint32_t)(v >> 32);
}

static inline uint64_t pack(uint32_t pos, uint32_t count)
{
    return (uint64_t)pos | (uint64_t)count << 32;
}

static inline uint32_t rec_size(uint32_t len)
{
    return HDR + ((len + 7u) & ~7u);
}

static bool queue_valid(const mproc_queue *q)
{
    return q && mproc__load_relaxed(&q->magic) == QUEUE_MAGIC;
}

/* ------------------------------------------------------------------ */
/* ring copies                                                         */
/* ------------------------------------------------------------------ */

static inline void ring_write(mproc_queue *q, uint32_t pos, const void *src, size_t n)
{
    if (n == 0) /* src/dst may be NULL then */
        return;
    size_t off = pos & q->mask, room = (size_t)q->mask + 1 - off;
    char *r = ring(q);
    if (n <= room) {
        memcpy(r + off, src, n);
    } else {
        memcpy(r + off, src, room);
        memcpy(r, (const char *)src + room, n - room);
    }
}

static inline void ring_read(mproc_queue *q, uint32_t pos, void *dst, size_t n)
{
    if (n == 0) /* src/dst may be NULL then */
        return;
    size_t off = pos & q->mask, room = (size_t)q->mask + 1 - off;
    const char *r = ring(q);
    if (n <= room) {
        memcpy(dst, r + off, n);
    } else {
        memcpy(dst, r + off, room);
        memcpy((char *)dst + room, r, n - room);
    }
}

/* Headers sit at multiples of 8 and the ring size is one: never split. */
static inline void hdr_write(mproc_queue *q, uint32_t pos, uint32_t len, uint32_t type)
{
    struct rec_hdr h = { len, type };
    memcpy(ring(q) + (pos & q->mask), &h, sizeof h);
}

static inline struct rec_hdr hdr_read(mproc_queue *q, uint32_t pos)
{
    struct rec_hdr h;
    memcpy(&h, ring(q) + (pos & q->mask), sizeof h);
    return h;
}

/* ------------------------------------------------------------------ */
/* waiting                                                             */
/* ------------------------------------------------------------------ */

/* A lazily computed deadline: the clock is read only when a call has to
 * wait. */
typedef struct qdeadline {
    int64_t timeout_ms;
    int64_t at; /* INT64_MIN until computed */
} qdeadline;

static inline qdeadline dl_make(int64_t timeout_ms)
{
    return (qdeadline){ timeout_ms, INT64_MIN };
}

static int64_t dl_get(qdeadline *d)
{
    if (d->at == INT64_MIN)
        mproc__deadline(d->timeout_ms, &d->at); /* timeout checked by callers */
    return d->at;
}

/* The error of a wait that ran out: calls that may not wait say -EAGAIN. */
static inline int dl_expired_rc(const qdeadline *d)
{
    return d->timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
}

/* After changing what waiters on *seq wait for: wake them if any sleep.
 * The caller's change must be ordered before the look at the bit. */
static void wake_all(uint32_t *seq)
{
    uint32_t s = __atomic_load_n(seq, __ATOMIC_SEQ_CST);
    while (s & 1u) {
        if (mproc__cas(seq, &s, s + 1u, __ATOMIC_RELAXED)) {
            mproc__futex_wake(seq, INT_MAX, true);
            return;
        }
    }
}

/* Change *seq and wake everyone regardless of the bit (close). */
static void wake_all_force(uint32_t *seq)
{
    mproc__fetch_add(seq, 2u, __ATOMIC_SEQ_CST);
    mproc__futex_wake(seq, INT_MAX, true);
}

typedef bool (*ready_fn)(mproc_queue *q, const void *arg);

/*
 * Wait until ready(q, arg) or the deadline `until` (absolute ns). Spins
 * first when `spin`. Returns 0 when ready may have become true (callers
 * re-check: wake-ups can be spurious), -ETIMEDOUT when `until` passed.
 */
static int wait_on(mproc_queue *q, uint32_t *seq, ready_fn ready, const void *arg,
                   int64_t until, bool spin)
{
    if (spin) {
        unsigned delay = 1;
        for (unsigned i = 0; i < SPIN_ROUNDS; i += delay) {
            if (ready(q, arg))
                return 0;
            for (unsigned j = 0; j < delay; j++)
                mproc__cpu_relax();
            if (delay < 64)
                delay *= 2;
        }
    }
    uint32_t s = mproc__fetch_or(seq, 1u, __ATOMIC_SEQ_CST) | 1u;
    if (ready(q, arg)) /* seq_cst loads: ordered after the bit */
        return 0;
    if (until != MPROC__FOREVER && mproc__now() >= until)
        return -ETIMEDOUT;
    int r = mproc__futex_wait(seq, s, until, true);
    return r == -ETIMEDOUT ? -ETIMEDOUT : 0;
}

/* ------------------------------------------------------------------ */
/* locks and their repair                                              */
/* ------------------------------------------------------------------ */

static void commit_abort(mproc_queue *q, uint64_t ps)
{
    hdr_write(q, lo32(ps), 0, REC_ABORT);
    commit_store(&q->pstate, pack(lo32(ps) + HDR, hi32(ps)));
    wake_all(&q->data_seq);
}

/*
 * plock's holder died. Its commits are whole or absent; what remains is
 * a chunked message it had begun: end it with an ABORT (its last chunk
 * commit left room for one) so that a consumer inside it stops at once.
 * The flag is cleared first, so a repairer that dies in turn cannot make
 * the next one write a second ABORT (the consumer's liveness check
 * covers a missing one).
 */
static void repair_producer(mproc_queue *q)
{
    uint64_t part = mproc__load_relaxed(&q->p_partial);
    if (!(part & PARTIAL))
        return;
    mproc__store_relaxed(&q->p_partial, 0);
    uint64_t ps = mproc__load_relaxed(&q->pstate);
    if (lo32(ps) != lo32(part))
        commit_abort(q, ps);
}

/* A lock call returned rc: after a dead holder (-EOWNERDEAD, lock held),
 * repair what it protects and mark it consistent. clock needs no repair:
 * cstate is all of the consumer side, and orphan chunks are skipped by
 * the next reader. Returns 0 or the call's error. */
static int lock_fix(mproc_queue *q, mproc_lock *l, int rc)
{
    if (rc == -EOWNERDEAD) {
        /* A lock taken over from a dead holder orders nothing after that
         * holder's accesses, so forget the other side's state it cached:
         * the next look loads it afresh, with acquire. ("The ring is
         * full" / "the ring is empty" make room_state / data_state
         * reload.) */
        if (l == &q->plock) {
            uint64_t ps = mproc__load_relaxed(&q->pstate);
            mproc__store_relaxed(&q->p_cache, pack(lo32(ps) - q->limit, hi32(ps)));
            repair_producer(q);
        } else {
            mproc__store_relaxed(&q->c_cache, mproc__load_relaxed(&q->cstate));
        }
        mproc_lock_consistent(l);
        rc = 0;
    }
    return rc;
}

/* A lock deadline for an operation with deadline d: the holder of the
 * lock is quick, so a call that must not wait still gives it a moment. */
static int64_t lock_deadline(qdeadline *d)
{
    if (d->timeout_ms < 0)
        return MPROC__FOREVER;
    int64_t at = dl_get(d), grace = mproc__now() + LOCK_GRACE_NS;
    return at > grace ? at : grace;
}

/* Take plock or clock for an operation with deadline d. The fast path is
 * the lock's one CAS: the clock is read only when the lock is busy.
 * Returns 0, -ETIMEDOUT or -EAGAIN (dl_expired_rc). */
static int lock_qd(mproc_queue *q, mproc_lock *l, qdeadline *d)
{
    int rc;
    if (d->timeout_ms < 0) {
        rc = mproc__lock_acquire(l, MPROC__FOREVER);
    } else {
        rc = mproc__lock_try(l);
        if (rc == -EBUSY)
            rc = mproc__lock_acquire(l, lock_deadline(d));
    }
    rc = lock_fix(q, l, rc);
    return rc == -ETIMEDOUT ? dl_expired_rc(d) : rc;
}

static int lock_p(mproc_queue *q, qdeadline *d)
{
    return lock_qd(q, &q->plock, d);
}

static int lock_c(mproc_queue *q, qdeadline *d)
{
    return lock_qd(q, &q->clock, d);
}

/* ------------------------------------------------------------------ */
/* create / destroy                                                    */
/* ------------------------------------------------------------------ */

static uint32_t pow2_at_least(uint32_t v)
{
    uint32_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

int mproc_queue_create(mproc_queue **out, const mproc_queue_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    mproc_queue_opts o = opts ? *opts : (mproc_queue_opts){ 0 };
    if (o.flags & ~(unsigned)MPROC_QUEUE_JOINABLE)
        return -EINVAL;
    size_t bytes = o.max_bytes ? o.max_bytes : DEFAULT_BYTES;
    if (bytes > MAX_BYTES)
        return -EINVAL;
    if (bytes < MIN_BYTES)
        bytes = MIN_BYTES;
    bytes = (bytes + 7) & ~(size_t)7;
    size_t max_message = o.max_message ? o.max_message : DEFAULT_MESSAGE;
    if (max_message > (size_t)INT64_MAX)
        return -EINVAL;

    uint32_t limit = (uint32_t)bytes;
    uint32_t ring_size = pow2_at_least(limit);
    size_t off = ring_offset();
    mproc__shmap m;
    int rc = mproc__shmap_create(&m, "mproc-queue", off + ring_size, ring_size >= (2u << 20));
    if (rc != 0)
        return rc;
    /* The mapping alone keeps the memory; forked children inherit it. */
    close(m.fd);
    m.fd = -1;

    mproc_queue *q = m.addr; /* zeroed */
    q->flags = o.flags;
    q->map_size = off + ring_size;
    q->mask = ring_size - 1;
    q->limit = limit;
    /* Whole records take at most half the ring, so two can be in flight;
     * chunks a quarter (and no more than CHUNK_MAX, to stay in cache). */
    q->whole_max = limit / 2 - HDR;
    q->chunk_max = limit / 4 < CHUNK_MAX ? limit / 4 : CHUNK_MAX;
    q->chunk_min = q->chunk_max / 2;
    q->maxsize = o.maxsize;
    q->max_message = max_message;
    mproc_lock_init(&q->plock, MPROC_SHARED); /* cannot fail: valid args */
    mproc_lock_init(&q->clock, MPROC_SHARED);
    /* Release: whoever sees the magic sees the initialised block. */
    mproc__store_release(&q->magic, QUEUE_MAGIC);
    *out = q;
    return 0;
}

int mproc_queue_destroy(mproc_queue *q)
{
    if (!queue_valid(q))
        return -EINVAL;
    mproc__shmap m = { .addr = q, .size = (size_t)q->map_size, .fd = -1 };
    mproc__shmap_destroy(&m);
    return 0;
}

/* ------------------------------------------------------------------ */
/* put                                                                 */
/* ------------------------------------------------------------------ */

struct room_req {
    uint32_t bytes;    /* record bytes needed */
    bool check_items;  /* also wait for the item limit */
};

/* Does a record of `bytes` fit with the consumer state cs (and the item
 * limit, if asked)? */
static inline bool fits(const mproc_queue *q, uint64_t ps, uint64_t cs, uint32_t bytes,
                        bool check_items)
{
    uint32_t used = lo32(ps) - lo32(cs);
    if (q->limit - used < bytes)
        return false;
    return !check_items || q->maxsize == 0 || (uint64_t)(hi32(ps) - hi32(cs)) < q->maxsize;
}

static bool room_ready(mproc_queue *q, const void *arg)
{
    const struct room_req *r = arg;
    if (load_sc(&q->closed) != CLOSED_NO)
        return true;
    return fits(q, load_sc(&q->pstate), load_sc(&q->cstate), r->bytes, r->check_items);
}

/* Under plock: the consumer state to plan with. The cached copy is never
 * ahead of the real one, so it is safe to trust when it says "fits". */
static inline uint64_t room_state(mproc_queue *q, uint64_t ps, uint32_t bytes, bool check_items)
{
    uint64_t cs = mproc__load_relaxed(&q->p_cache);
    if (!fits(q, ps, cs, bytes, check_items)) {
        /* Acquire: the consumer's reads of the bytes we may now
         * overwrite happened before. */
        cs = mproc__load_acquire(&q->cstate);
        mproc__store_relaxed(&q->p_cache, cs);
    }
    return cs;
}

/* Wait for room without holding plock. */
static int wait_room(mproc_queue *q, qdeadline *d, uint32_t bytes, bool check_items)
{
    if (d->timeout_ms == 0)
        return -EAGAIN;
    struct room_req r = { bytes, check_items };
    int rc = wait_on(q, &q->space_seq, room_ready, &r, dl_get(d), true);
    return rc == -ETIMEDOUT ? dl_expired_rc(d) : 0;
}

static int put_whole(mproc_queue *q, const void *data, uint32_t len, qdeadline *d)
{
    uint32_t need = rec_size(len);
    for (;;) {
        int rc = lock_p(q, d);
        if (rc != 0)
            return rc;
        MPROC__FAULT_POINT("queue.put.locked");
        if (mproc__load_acquire(&q->closed) != CLOSED_NO) {
            mproc__lock_release(&q->plock);
            return -EPIPE;
        }
        uint64_t ps = mproc__load_relaxed(&q->pstate);
        uint64_t cs = room_state(q, ps, need, true);
        if (fits(q, ps, cs, need, true)) {
            uint32_t tail = lo32(ps);
            uint32_t half = len / 2;
            hdr_write(q, tail, len, REC_WHOLE);
            ring_write(q, tail + HDR, data, half);
            MPROC__FAULT_POINT("queue.put.copying");
            ring_write(q, tail + HDR + half, (const char *)data + half, len - half);
            MPROC__FAULT_POINT("queue.put.copied");
            /* The commit: the record and the count, in one release store. */
            commit_store(&q->pstate, pack(tail + need, hi32(ps) + 1));
            MPROC__FAULT_POINT("queue.put.committed");
            mproc__lock_release(&q->plock);
            wake_all(&q->data_seq);
            return 0;
        }
        mproc__lock_release(&q->plock);
        rc = wait_room(q, d, need, true);
        if (rc != 0)
            return rc;
    }
}

/* A chunked put gives up: end what it committed with an ABORT. */
static void abort_chunked(mproc_queue *q, bool committed)
{
    mproc__store_relaxed(&q->p_partial, 0);
    if (committed)
        commit_abort(q, mproc__load_relaxed(&q->pstate));
    mproc__lock_release(&q->plock);
}

static int put_chunked(mproc_queue *q, const void *data, size_t len, qdeadline *d)
{
    int rc;
    /* Start: the lock, an item slot and room for the first chunk. */
    uint32_t first_need = rec_size(8 + q->chunk_min) + HDR;
    for (;;) {
        rc = lock_p(q, d);
        if (rc != 0)
            return rc;
        if (mproc__load_acquire(&q->closed) != CLOSED_NO) {
            mproc__lock_release(&q->plock);
            return -EPIPE;
        }
        uint64_t ps = mproc__load_relaxed(&q->pstate);
        if (fits(q, ps, room_state(q, ps, first_need, true), first_need, true))
            break;
        mproc__lock_release(&q->plock);
        rc = wait_room(q, d, first_need, true);
        if (rc != 0)
            return rc;
    }
    uint64_t me = (uint64_t)(uint32_t)mproc__tid() | (uint64_t)(uint32_t)mproc__thread_start() << 32;
    /* Release: a consumer that sees our FIRST and then p_owner sees
     * this value or a later writer's (see wait_chunk). */
    mproc__store_release(&q->p_owner, me);
    mproc__store_relaxed(&q->p_partial, PARTIAL | lo32(mproc__load_relaxed(&q->pstate)));

    const char *src = data;
    size_t off = 0;
    bool first = true;
    while (off < len) {
        uint64_t ps = mproc__load_relaxed(&q->pstate);
        uint32_t extra = first ? 8u : 0u; /* FIRST carries the total */
        size_t left = len - off;
        uint32_t want = left < q->chunk_min ? (uint32_t)left : q->chunk_min;
        /* Room for this chunk plus a spare header for a later ABORT. */
        uint32_t need = rec_size(extra + want) + HDR;
        uint64_t cs = room_state(q, ps, need, false);
        if (!fits(q, ps, cs, need, false)) {
            if (mproc__load_acquire(&q->closed) != CLOSED_NO) {
                abort_chunked(q, !first);
                return -EPIPE;
            }
            rc = d->timeout_ms == 0 ? -EAGAIN : 0;
            if (rc == 0) {
                struct room_req r = { need, false };
                rc = wait_on(q, &q->space_seq, room_ready, &r, dl_get(d), true);
                rc = rc == -ETIMEDOUT ? dl_expired_rc(d) : 0;
            }
            if (rc != 0) {
                abort_chunked(q, !first);
                return rc;
            }
            continue;
        }
        if (mproc__load_acquire(&q->closed) != CLOSED_NO) {
            abort_chunked(q, !first);
            return -EPIPE;
        }
        /* As much as fits, up to chunk_max, keeping the spare header. */
        uint32_t free_bytes = q->limit - (lo32(ps) - lo32(cs));
        uint32_t n = (free_bytes - 2 * HDR - extra) & ~7u;
        if (n > q->chunk_max)
            n = q->chunk_max;
        if (n > left)
            n = (uint32_t)left;
        if (first && n == left)
            n = (uint32_t)left - 1; /* FIRST never ends the message */
        uint32_t type = first ? REC_FIRST : (off + n == len ? REC_LAST : REC_MIDDLE);
        uint32_t tail = lo32(ps);
        hdr_write(q, tail, extra + n, type);
        if (first) {
            uint64_t total = len;
            ring_write(q, tail + HDR, &total, 8);
        }
        ring_write(q, tail + HDR + extra, src + off, n);
        off += n;
        uint32_t puts = hi32(ps) + (type == REC_LAST ? 1u : 0u);
        commit_store(&q->pstate, pack(tail + rec_size(extra + n), puts));
        wake_all(&q->data_seq);
        first = false;
        if (type != REC_LAST)
            MPROC__FAULT_POINT("queue.put.chunk");
    }
    mproc__store_relaxed(&q->p_partial, 0);
    mproc__lock_release(&q->plock);
    return 0;
}

static int put_check(const mproc_queue *q, const void *data, size_t len, int64_t timeout_ms)
{
    if (!queue_valid(q) || (!data && len) || timeout_ms < -1)
        return -EINVAL;
    if (len > q->max_message)
        return -EMSGSIZE;
    if (mproc__load_acquire(&q->closed) != CLOSED_NO)
        return -EPIPE;
    return 0;
}

int mproc_queue_put(mproc_queue *q, const void *data, size_t len, int64_t timeout_ms)
{
    int rc = put_check(q, data, len, timeout_ms);
    if (rc != 0)
        return rc;
    qdeadline d = dl_make(timeout_ms);
    if (len <= q->whole_max)
        return put_whole(q, data, (uint32_t)len, &d);
    return put_chunked(q, data, len, &d);
}

int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len)
{
    return mproc_queue_put(q, data, len, 0);
}

/* put_many commits (and wakes consumers) at least this often, so that a
 * long batch streams rather than arriving all at once. */
#define BATCH_COMMIT_BYTES ((uint32_t)16 << 10)

/*
 * Under plock, not closed: write as many of msgs[*i..n) as fit as whole
 * records, committing every BATCH_COMMIT_BYTES and at the end. Each
 * commit is one store, as in put_whole: a producer killed before it loses
 * only the records written since the last one. Returns how many it put.
 */
static size_t put_batch(mproc_queue *q, const struct iovec *msgs, size_t i, size_t n)
{
    uint64_t ps = mproc__load_relaxed(&q->pstate);
    uint32_t tail = lo32(ps), puts = hi32(ps), pending = 0;
    size_t start = i;
    while (i < n && msgs[i].iov_len <= q->whole_max) {
        uint32_t len = (uint32_t)msgs[i].iov_len, need = rec_size(len);
        uint64_t now = pack(tail, puts);
        if (!fits(q, now, room_state(q, now, need, true), need, true))
            break;
        hdr_write(q, tail, len, REC_WHOLE);
        ring_write(q, tail + HDR, msgs[i].iov_base, len);
        tail += need;
        puts++;
        pending += need;
        i++;
        MPROC__FAULT_POINT("queue.put_many.copied");
        if (pending >= BATCH_COMMIT_BYTES) {
            commit_store(&q->pstate, pack(tail, puts));
            wake_all(&q->data_seq);
            pending = 0;
        }
    }
    if (pending) {
        commit_store(&q->pstate, pack(tail, puts));
        wake_all(&q->data_seq);
    }
    return i - start;
}

int mproc_queue_put_many(mproc_queue *q, const struct iovec *msgs, size_t n,
                         int64_t timeout_ms)
{
    if (!queue_valid(q) || (!msgs && n) || n > INT_MAX || timeout_ms < -1)
        return -EINVAL;
    for (size_t k = 0; k < n; k++) {
        if (!msgs[k].iov_base && msgs[k].iov_len)
            return -EINVAL;
        if (msgs[k].iov_len > q->max_message)
            return -EMSGSIZE;
    }
    if (mproc__load_acquire(&q->closed) != CLOSED_NO)
        return -EPIPE;
    qdeadline d = dl_make(timeout_ms);
    size_t i = 0;
    int rc = 0;
    while (i < n) {
        if (msgs[i].iov_len > q->whole_max) {
            rc = put_chunked(q, msgs[i].iov_base, msgs[i].iov_len, &d);
            if (rc != 0)
                break;
            i++;
            continue;
        }
        rc = lock_p(q, &d);
        if (rc != 0)
            break;
        if (mproc__load_acquire(&q->closed) != CLOSED_NO) {
            mproc__lock_release(&q->plock);
            rc = -EPIPE;
            break;
        }
        size_t k = put_batch(q, msgs, i, n);
        mproc__lock_release(&q->plock);
        i += k;
        if (k == 0 || (i < n && msgs[i].iov_len <= q->whole_max)) {
            /* The ring (or maxsize) is full: wait for room for the next. */
            rc = wait_room(q, &d, rec_size((uint32_t)msgs[i].iov_len), true);
            if (rc != 0)
                break;
        }
    }
    return i > 0 ? (int)i : rc;
}

/* ------------------------------------------------------------------ */
/* get                                                                 */
/* ------------------------------------------------------------------ */

static bool data_ready(mproc_queue *q, const void *arg)
{
    (void)arg;
    if (load_sc(&q->closed) != CLOSED_NO)
        return true;
    return lo32(load_sc(&q->pstate)) != lo32(mproc__load_relaxed(&q->cstate));
}

static bool more_ready(mproc_queue *q, const void *arg)
{
    (void)arg;
    return lo32(load_sc(&q->pstate)) != lo32(mproc__load_relaxed(&q->cstate));
}

/* Under clock: the producer state to read with, or 0 committed bytes
 * visible. The cached copy is never ahead of the real one. */
static inline uint64_t data_state(mproc_queue *q, uint32_t head)
{
    uint64_t ps = mproc__load_relaxed(&q->c_cache);
    if (lo32(ps) == head) {
        /* Acquire: the producer's writes of the record happened before. */
        ps = mproc__load_acquire(&q->pstate);
        mproc__store_relaxed(&q->c_cache, ps);
    }
    return ps;
}

/* Free the record at head (release: our reads of it are done). */
static inline void commit_get(mproc_queue *q, uint64_t cs, uint32_t bytes, uint32_t taken)
{
    commit_store(&q->cstate, pack(lo32(cs) + bytes, hi32(cs) + taken));
    wake_all(&q->space_seq);
}

/* Where a message goes: the caller's buffer, or one we allocate. */
struct sink {
    void *buf;
    size_t cap;
    void **alloc; /* non-NULL: allocate, store here */
    size_t *len;
};

/* Get a destination for a message of `total` bytes, or an error that
 * leaves the message queued. */
static int sink_open(struct sink *s, size_t total, char **dst)
{
    if (s->alloc) {
        char *p = malloc(total ? total : 1);
        if (!p)
            return -ENOMEM;
        *dst = p;
        return 0;
    }
    if (total > s->cap) {
        *s->len = total;
        return -EMSGSIZE;
    }
    *dst = s->buf;
    return 0;
}

static void sink_done(struct sink *s, char *dst, size_t total)
{
    if (s->alloc)
        *s->alloc = dst;
    *s->len = total;
}

static void sink_drop(struct sink *s, char *dst)
{
    if (s->alloc)
        free(dst);
}

/*
 * Inside a chunked message, with the ring drained up to the last commit:
 * wait for the next chunk. Returns 0 when there is one, -EPIPE when the
 * writer is dead and left nothing more (the message is to be dropped).
 * The caller's own deadline does not apply here: the writer is streaming
 * this message now, and ends it with LAST or ABORT unless it dies.
 */
static int wait_chunk(mproc_queue *q)
{
    int64_t every = LIVE_FIRST_NS;
    bool spin = true;
    for (;;) {
        int rc = wait_on(q, &q->data_seq, more_ready, NULL, mproc__now() + every, spin);
        spin = false;
        if (more_ready(q, NULL))
            return 0;
        if (rc != -ETIMEDOUT)
            continue;
        /* Acquire: if a later writer stored p_owner, the message's LAST
         * or ABORT was committed before, and the re-check below sees it. */
        uint64_t owner = mproc__load_acquire(&q->p_owner);
        if (mproc__task_dead((pid_t)lo32(owner), hi32(owner)) && !more_ready(q, NULL))
            return -EPIPE;
        if (every < LIVE_MAX_NS)
            every *= 2;
    }
}

/*
 * Receive the chunked message whose FIRST record (payload len `first_len`)
 * is at the head, holding clock. Returns 0 when delivered, 1 when it was
 * dropped (ABORT, dead writer) and the caller should look for another
 * message, or an error that left it queued (-EMSGSIZE, -ENOMEM).
 */
static int get_chunked(mproc_queue *q, uint64_t cs, uint32_t first_len, struct sink *s)
{
    uint32_t head = lo32(cs);
    uint64_t total;
    ring_read(q, head + HDR, &total, 8);
    char *dst;
    int rc = sink_open(s, (size_t)total, &dst);
    if (rc != 0)
        return rc;
    size_t got = first_len - 8;
    ring_read(q, head + HDR + 8, dst, got);
    commit_get(q, cs, rec_size(first_len), 0);
    cs = pack(head + rec_size(first_len), hi32(cs));
    for (;;) {
        MPROC__FAULT_POINT("queue.get.chunk");
        head = lo32(cs);
        uint64_t ps = data_state(q, head);
        if (lo32(ps) == head) {
            if (wait_chunk(q) != 0) {
                sink_drop(s, dst);
                return 1;
            }
            continue;
        }
        struct rec_hdr h = hdr_read(q, head);
        if (h.type == REC_FIRST || h.type == REC_WHOLE) {
            /* The writer died and its ABORT was never written: leave the
             * new message for the caller's next look. */
            sink_drop(s, dst);
            return 1;
        }
        if (h.type == REC_ABORT || got + h.len > total) {
            commit_get(q, cs, rec_size(h.len), 0);
            sink_drop(s, dst);
            return 1;
        }
        ring_read(q, head + HDR, dst + got, h.len);
        got += h.len;
        if (h.type == REC_LAST) {
            commit_get(q, cs, rec_size(h.len), 1);
            if (got != total) { /* cannot happen with a sane writer */
                sink_drop(s, dst);
                return 1;
            }
            sink_done(s, dst, (size_t)total);
            return 0;
        }
        commit_get(q, cs, rec_size(h.len), 0);
        cs = pack(head + rec_size(h.len), hi32(cs));
    }
}

/* After close: wait until no put can commit any more (see the top). */
static int close_barrier(mproc_queue *q, qdeadline *d)
{
    if (mproc__load_acquire(&q->closed) == CLOSED_DRAINABLE)
        return 0;
    int rc = lock_p(q, d);
    if (rc != 0)
        return rc;
    mproc__lock_release(&q->plock);
    uint32_t c = CLOSED_YES;
    mproc__cas(&q->closed, &c, CLOSED_DRAINABLE, __ATOMIC_RELEASE);
    return 0;
}

/*
 * A getter found nothing to take and released clock: 1 to look again, or
 * the call's result -- -EPIPE once closed and drained, -EAGAIN without a
 * timeout, the deadline's code.
 */
static int get_wait(mproc_queue *q, qdeadline *d, int64_t timeout_ms, bool *barrier_done)
{
    if (mproc__load_acquire(&q->closed) != CLOSED_NO) {
        if (*barrier_done)
            return -EPIPE;
        int rc = close_barrier(q, d);
        if (rc != 0)
            return rc;
        *barrier_done = true;
        return 1; /* look once more: a last put may have committed */
    }
    if (timeout_ms == 0)
        return -EAGAIN;
    if (wait_on(q, &q->data_seq, data_ready, NULL, dl_get(d), true) == -ETIMEDOUT)
        return dl_expired_rc(d);
    return 1;
}


static int do_get(mproc_queue *q, struct sink *s, int64_t timeout_ms)
{
    qdeadline d = dl_make(timeout_ms);
    bool barrier_done = false;
    for (;;) {
        int rc = lock_c(q, &d);
        if (rc != 0)
            return rc;
        MPROC__FAULT_POINT("queue.get.locked");
        for (;;) {
            uint64_t cs = mproc__load_relaxed(&q->cstate);
            uint32_t head = lo32(cs);
            uint64_t ps = data_state(q, head);
            if (lo32(ps) == head)
                break;
            struct rec_hdr h = hdr_read(q, head);
            if (h.type == REC_WHOLE) {
                char *dst;
                rc = sink_open(s, h.len, &dst);
                if (rc != 0) {
                    mproc__lock_release(&q->clock);
                    return rc;
                }
                uint32_t half = h.len / 2;
                ring_read(q, head + HDR, dst, half);
                MPROC__FAULT_POINT("queue.get.copying");
                ring_read(q, head + HDR + half, dst + half, h.len - half);
                MPROC__FAULT_POINT("queue.get.copied");
                commit_get(q, cs, rec_size(h.len), 1);
                MPROC__FAULT_POINT("queue.get.committed");
                mproc__lock_release(&q->clock);
                sink_done(s, dst, h.len);
                return 0;
            }
            if (h.type == REC_FIRST) {
                rc = get_chunked(q, cs, h.len, s);
                if (rc == 1)
                    continue;
                mproc__lock_release(&q->clock);
                return rc;
            }
            /* An orphan chunk or an ABORT: skip it. */
            commit_get(q, cs, rec_size(h.len), h.type == REC_LAST ? 1u : 0u);
        }
        mproc__lock_release(&q->clock);
        if ((rc = get_wait(q, &d, timeout_ms, &barrier_done)) != 1)
            return rc;
    }
}

/*
 * Under clock, with a message at the head: take whole messages into
 * buf/msgs until the ring holds no more, `max` are taken, the next does
 * not fit in what is left of buf, or the next is chunked; skipped orphan
 * chunks and ABORTs go too. One commit frees them all: a consumer killed
 * before it loses nothing. Returns how many messages it took (0 when the
 * head's message does not fit: then msgs[0].iov_len says its size), or 1
 * from get_chunked / its error (the head being chunked), or -2 when all
 * it saw were records to skip (the caller looks again).
 */
static int get_batch(mproc_queue *q, char *buf, size_t cap, struct iovec *msgs, size_t max)
{
    uint64_t cs = mproc__load_relaxed(&q->cstate);
    uint32_t head = lo32(cs), freed = 0, taken = 0;
    size_t k = 0, used = 0;
    for (;;) {
        uint64_t ps = data_state(q, head);
        if (lo32(ps) == head || k == max)
            break;
        struct rec_hdr h = hdr_read(q, head);
        if (h.type == REC_WHOLE) {
            if (h.len > cap - used) {
                if (k == 0)
                    msgs[0].iov_len = h.len;
                break;
            }
            ring_read(q, head + HDR, buf + used, h.len);
            msgs[k].iov_base = buf + used;
            msgs[k].iov_len = h.len;
            used += h.len;
            k++;
            taken++;
            MPROC__FAULT_POINT("queue.get_many.copied");
        } else if (h.type == REC_FIRST) {
            if (k > 0 || freed > 0)
                break;
            size_t len = 0;
            struct sink s = { buf, cap, NULL, &len };
            int rc = get_chunked(q, cs, h.len, &s);
            if (rc == 0) {
                msgs[0].iov_base = buf;
                msgs[0].iov_len = len;
            } else if (rc == -EMSGSIZE) {
                msgs[0].iov_len = len;
                return 0;
            }
            return rc == 1 ? -2 : rc == 0 ? 1 : rc;
        } else {
            /* An orphan chunk or an ABORT: skip it (a LAST counts as a
             * message taken, as in do_get). */
            taken += h.type == REC_LAST;
        }
        head += rec_size(h.len);
        freed += rec_size(h.len);
    }
    if (freed > 0)
        commit_get(q, cs, freed, taken);
    return k > 0 ? (int)k : freed > 0 ? -2 : 0;
}

int mproc_queue_get_many(mproc_queue *q, void *buf, size_t cap, struct iovec *msgs,
                         size_t max, int64_t timeout_ms)
{
    if (!queue_valid(q) || !msgs || max == 0 || max > INT_MAX || (!buf && cap) ||
        timeout_ms < -1)
        return -EINVAL;
    qdeadline d = dl_make(timeout_ms);
    bool barrier_done = false;
    for (;;) {
        int rc = lock_c(q, &d);
        if (rc != 0)
            return rc;
        for (;;) {
            uint64_t cs = mproc__load_relaxed(&q->cstate);
            if (lo32(data_state(q, lo32(cs))) == lo32(cs))
                break;
            rc = get_batch(q, buf, cap, msgs, max);
            if (rc == -2)
                continue;
            mproc__lock_release(&q->clock);
            return rc == 0 ? -EMSGSIZE : rc;
        }
        mproc__lock_release(&q->clock);
        if ((rc = get_wait(q, &d, timeout_ms, &barrier_done)) != 1)
            return rc;
    }
}

int mproc_queue_get(mproc_queue *q, void *buf, size_t cap, size_t *len, int64_t timeout_ms)
{
    if (!queue_valid(q) || !len || (!buf && cap) || timeout_ms < -1)
        return -EINVAL;
    struct sink s = { buf, cap, NULL, len };
    return do_get(q, &s, timeout_ms);
}

int mproc_queue_get_nowait(mproc_queue *q, void *buf, size_t cap, size_t *len)
{
    return mproc_queue_get(q, buf, cap, len, 0);
}

int mproc_queue_get_alloc(mproc_queue *q, void **data, size_t *len, int64_t timeout_ms)
{
    if (!queue_valid(q) || !data || !len || timeout_ms < -1)
        return -EINVAL;
    *data = NULL;
    struct sink s = { NULL, 0, data, len };
    return do_get(q, &s, timeout_ms);
}

/* ------------------------------------------------------------------ */
/* state                                                               */
/* ------------------------------------------------------------------ */

static uint32_t items(const mproc_queue *q)
{
    /* Consumer side first: gets never passes puts, so reading puts
     * second never shows a negative count. */
    uint64_t cs = mproc__load_acquire(&q->cstate);
    uint64_t ps = mproc__load_acquire(&q->pstate);
    return hi32(ps) - hi32(cs);
}

int mproc_queue_qsize(const mproc_queue *q)
{
    if (!queue_valid(q))
        return -EINVAL;
    uint32_t n = items(q);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int mproc_queue_empty(const mproc_queue *q)
{
    if (!queue_valid(q))
        return -EINVAL;
    return items(q) == 0;
}

int mproc_queue_full(const mproc_queue *q)
{
    if (!queue_valid(q))
        return -EINVAL;
    uint64_t cs = mproc__load_acquire(&q->cstate);
    uint64_t ps = mproc__load_acquire(&q->pstate);
    return !fits(q, ps, cs, HDR, true);
}

int mproc_queue_close(mproc_queue *q)
{
    if (!queue_valid(q))
        return -EINVAL;
    uint32_t c = CLOSED_NO;
    mproc__cas(&q->closed, &c, CLOSED_YES, __ATOMIC_SEQ_CST);
    wake_all_force(&q->data_seq);
    wake_all_force(&q->space_seq);
    return 0;
}

int mproc_queue_is_closed(const mproc_queue *q)
{
    if (!queue_valid(q))
        return -EINVAL;
    return mproc__load_acquire(&q->closed) != CLOSED_NO;
}

/* ------------------------------------------------------------------ */
/* JoinableQueue                                                       */
/* ------------------------------------------------------------------ */

int mproc_queue_task_done(mproc_queue *q)
{
    if (!queue_valid(q) || !(q->flags & MPROC_QUEUE_JOINABLE))
        return -EINVAL;
    uint32_t done = mproc__load_relaxed(&q->done);
    for (;;) {
        uint32_t puts = hi32(mproc__load_acquire(&q->pstate));
        if (puts == done)
            return -EOVERFLOW;
        if (mproc__cas(&q->done, &done, done + 1, __ATOMIC_SEQ_CST)) /* see wake_all */
            break;
    }
    wake_all(&q->join_seq);
    return 0;
}

static bool joined(mproc_queue *q, const void *arg)
{
    (void)arg;
    return load_sc(&q->done) == hi32(load_sc(&q->pstate));
}

int mproc_queue_join(mproc_queue *q, int64_t timeout_ms)
{
    if (!queue_valid(q) || !(q->flags & MPROC_QUEUE_JOINABLE) || timeout_ms < -1)
        return -EINVAL;
    qdeadline d = dl_make(timeout_ms);
    for (;;) {
        if (joined(q, NULL))
            return 0;
        if (timeout_ms == 0)
            return -ETIMEDOUT;
        if (wait_on(q, &q->join_seq, joined, NULL, dl_get(&d), false) == -ETIMEDOUT)
            return joined(q, NULL) ? 0 : -ETIMEDOUT;
    }
}
