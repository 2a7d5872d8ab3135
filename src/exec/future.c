/*
 * exec/future.c -- futures: creation, running a task, completion,
 * callbacks, waiting for one result, cancellation, references.
 *
 * Completion (finish) runs in three steps, in this order:
 *   1. publish code/result and store the final state (seq_cst), then
 *      wake result() sleepers if any registered (`sleepers`, a Dekker
 *      pair with the state: a sleeper increments it before re-reading
 *      the state inside futex_wait, so either we see it or it sees us);
 *   2. under the future's lock: mark `finished`, notify waiters, take
 *      the callback list;
 *   3. with no lock held, run the callbacks in order.
 * A callback added before step 2 runs in step 3; one added after runs at
 * once in the adding thread: each runs exactly once.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/exec_internal.h"
#include "os/atomic.h"
#include "os/sys.h"
#include "sync/mutex.h"

/* Spin this many rounds on an unfinished future before sleeping: a tiny
 * task's result usually arrives well before a futex wake-up (~30 us on a
 * VM) would. */
#define RESULT_SPIN 2000

static void *result_room(mproc_future *f, size_t len);

mproc_future *mproc__future_new(mproc_executor *ex, mproc_task_fn fn, const void *arg,
                                size_t len, bool copy, unsigned refs)
{
    mproc_future *f = mproc__future_alloc();
    if (!f)
        return NULL;
    f->state = F_PENDING;
    f->sleepers = 0;
    f->refs = refs;
    f->cancel_req = 0;
    f->lock = MPROC__MUTEX_INIT;
    f->code = 0;
    f->ncb = 0;
    f->finished = false;
    f->owns_arg = false;
    f->fn = fn;
    f->arg = arg;
    f->arg_len = len;
    if (copy && len > 0) {
        void *c = malloc(len);
        if (!c) {
            mproc__future_recycle(f);
            return NULL;
        }
        memcpy(c, arg, len);
        f->arg = c;
        f->owns_arg = true;
    }
    f->ex = ex;
    f->len = 0;
    f->waiters = NULL;
    f->rare = NULL;
    f->u.next = NULL;
    return f;
}

/* Let go of f's result: free our copy, or give a borrowed one back. */
static void drop_result(mproc_future *f)
{
    struct mproc__future_rare *r = f->rare;
    if (r && r->drop) {
        mproc__result_drop drop = r->drop;
        r->drop = NULL;
        drop(r->drop_owner, r->drop_cookie);
    } else if (f->len > F_INLINE_RESULT) {
        free(f->u.heap);
    }
    f->len = 0;
}

static void future_free(mproc_future *f)
{
    drop_result(f);
    if (f->owns_arg)
        free((void *)f->arg);
    if (f->rare) {
        free(f->rare->message);
        free(f->rare->cb_more);
        free(f->rare);
    }
    mproc__future_recycle(f);
}

/* f's rare part, created if needed (NULL if out of memory); under the
 * future's lock. */
static struct mproc__future_rare *rare_of(mproc_future *f)
{
    if (!f->rare)
        f->rare = calloc(1, sizeof *f->rare);
    return f->rare;
}

/* Set f's failure message. Only whoever finishes f writes it, and readers
 * wait for the final state; the lock is for creating `rare`. */
static void set_message(mproc_future *f, const char *fmt, va_list ap)
{
    mproc__mutex_lock(&f->lock);
    struct mproc__future_rare *r = rare_of(f);
    mproc__mutex_unlock(&f->lock);
    if (r && !r->message)
        r->message = malloc(F_MESSAGE_MAX);
    if (r && r->message)
        vsnprintf(r->message, F_MESSAGE_MAX, fmt, ap);
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void set_messagef(mproc_future *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(f, fmt, ap);
    va_end(ap);
}

mproc_future *mproc_future_retain(mproc_future *f)
{
    if (f)
        mproc__fetch_add(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

void mproc_future_release(mproc_future *f)
{
    /* acq_rel: every use of f by an earlier holder happens before the
     * free by the last one. */
    if (f && mproc__fetch_sub(&f->refs, 1, __ATOMIC_ACQ_REL) == 1)
        future_free(f);
}

/* Steps 2 and 3 of completion (see the top of the file). */
static void tell_everyone(mproc_future *f)
{
    mproc__mutex_lock(&f->lock);
    f->finished = true;
    for (struct mproc__waiter *w = f->waiters; w; w = w->next)
        w->notify(w, f);
    struct mproc__cb first = f->cb_first, *more = NULL;
    unsigned n = f->ncb;
    f->ncb = 0;
    if (f->rare) {
        more = f->rare->cb_more;
        f->rare->cb_more = NULL;
        f->rare->cb_cap = 0;
    }
    mproc__mutex_unlock(&f->lock);
    for (unsigned i = 0; i < n; i++) {
        struct mproc__cb *cb = i == 0 ? &first : &more[i - 1];
        cb->fn(f, cb->userdata);
    }
    free(more);
}

/* Step 1 for a final state reached by a plain store (DONE). */
static void wake_sleepers(mproc_future *f)
{
    if (__atomic_load_n(&f->sleepers, __ATOMIC_SEQ_CST) != 0)
        mproc__futex_wake(&f->state, INT_MAX, false);
}

static void finish(mproc_future *f, int code)
{
    f->code = code;
    __atomic_store_n(&f->state, F_DONE, __ATOMIC_SEQ_CST);
    wake_sleepers(f);
    tell_everyone(f);
}

mproc_future *mproc__future_manual(mproc_executor *ex, unsigned refs)
{
    mproc_future *f = mproc__future_new(ex, NULL, NULL, 0, false, refs);
    if (f)
        f->state = F_RUNNING;
    return f;
}

void mproc__future_complete(mproc_future *f, int code)
{
    finish(f, code);
}

int mproc__future_set_timeout(mproc_future *f, int64_t timeout_ms)
{
    mproc__mutex_lock(&f->lock);
    struct mproc__future_rare *r = rare_of(f);
    if (r)
        r->timeout_ms = timeout_ms;
    mproc__mutex_unlock(&f->lock);
    return r ? 0 : -ENOMEM;
}

int64_t mproc__future_timeout(const mproc_future *f)
{
    return f->rare ? f->rare->timeout_ms : 0;
}

bool mproc__future_claim(mproc_future *f)
{
    uint32_t pending = F_PENDING;
    return __atomic_compare_exchange_n(&f->state, &pending, F_RUNNING, false, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

void mproc__future_resolve(mproc_future *f, int code, const void *data, size_t len,
                           const char *message)
{
    if (code == 0 && len > 0) {
        void *p = result_room(f, len);
        if (p)
            memcpy(p, data, len);
        else
            code = -ENOMEM;
    }
    if (code < 0 && message && message[0])
        set_messagef(f, "%s", message);
    finish(f, code > 0 ? 0 : code);
}

bool mproc__future_resolve_shared(mproc_future *f, const void *data, size_t len,
                                  mproc__result_drop drop, void *owner, uint64_t cookie)
{
    mproc__mutex_lock(&f->lock);
    struct mproc__future_rare *r = rare_of(f);
    mproc__mutex_unlock(&f->lock);
    if (!r || len <= F_INLINE_RESULT)
        return false;
    r->drop = drop;
    r->drop_owner = owner;
    r->drop_cookie = cookie;
    f->u.heap = (void *)data; /* read-only for the future's readers */
    f->len = len;
    finish(f, 0);
    return true;
}

void mproc__future_resolve_cancelled(mproc_future *f)
{
    __atomic_store_n(&f->state, F_CANCELLED, __ATOMIC_SEQ_CST);
    wake_sleepers(f);
    tell_everyone(f);
}

bool mproc__future_cancel_pending(mproc_future *f)
{
    uint32_t pending = F_PENDING;
    if (!__atomic_compare_exchange_n(&f->state, &pending, F_CANCELLED, false,
                                     __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
        return false;
    wake_sleepers(f);
    tell_everyone(f);
    return true;
}

int mproc_future_cancel(mproc_future *f)
{
    if (!f)
        return -EINVAL;
    /* Our own reference while the callbacks run here: the caller's may
     * be released by one of them, and the scheduler's by a worker that
     * pops the cancelled task meanwhile. */
    mproc_future_retain(f);
    bool cancelled = mproc__future_cancel_pending(f);
    mproc_future_release(f);
    if (cancelled)
        return 1;
    uint32_t s = mproc__load_acquire(&f->state);
    if (s == F_RUNNING) { /* too late to cancel; the task may still look */
        mproc__store_relaxed(&f->cancel_req, 1);
        /* A task (not a map's manual future) of a live executor: it runs
         * while the executor cannot be destroyed. */
        if (f->fn && f->ex->be->cancel_running && f->ex->be->cancel_running(f->ex, f))
            return 1;
    }
    return s == F_CANCELLED;
}

bool mproc_future_done(const mproc_future *f)
{
    return f && mproc__future_final(mproc__load_acquire(&f->state));
}

bool mproc_future_running(const mproc_future *f)
{
    return f && mproc__load_acquire(&f->state) == F_RUNNING;
}

bool mproc_future_cancelled(const mproc_future *f)
{
    return f && mproc__load_acquire(&f->state) == F_CANCELLED;
}

/* The outcome of a final future: 0 or its error. */
static int outcome(const mproc_future *f, uint32_t state)
{
    return state == F_CANCELLED ? MPROC_ECANCELLED : f->code;
}

static bool is_final(const void *f, size_t unused)
{
    (void)unused;
    return mproc__future_final(mproc__load_acquire(&((const mproc_future *)f)->state));
}

/* Wait until f is final or the deadline passes; returns the state seen.
 * A worker of f's executor runs other tasks meanwhile. */
static uint32_t await_final(mproc_future *f, int64_t deadline)
{
    uint32_t s = mproc__load_acquire(&f->state);
    if (mproc__future_final(s) || (deadline != MPROC__FOREVER && mproc__now() >= deadline))
        return s;
    bool helper = mproc__exec_on_worker(f->ex);
    for (unsigned spin = 0; spin < RESULT_SPIN; spin++) {
        if (helper && mproc__exec_help(f->ex))
            spin = 0; /* made progress: keep helping */
        else if (spin % 64 == 63)
            sched_yield(); /* the worker we woke may share our CPU */
        else
            mproc__cpu_relax();
        s = mproc__load_acquire(&f->state);
        if (mproc__future_final(s))
            return s;
    }
    mproc__exec_await(f->ex, &f->state, &f->sleepers, is_final, f, 0, deadline);
    return mproc__load_acquire(&f->state);
}

int mproc_future_result(mproc_future *f, int64_t timeout_ms, const void **data, size_t *len)
{
    if (!f)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    uint32_t s = await_final(f, deadline);
    if (!mproc__future_final(s))
        return -ETIMEDOUT;
    rc = outcome(f, s);
    if (rc == 0) {
        if (data)
            *data = f->len == 0                 ? NULL
                    : f->len > F_INLINE_RESULT ? f->u.heap
                                               : f->u.inline_result;
        if (len)
            *len = f->len;
    }
    return rc;
}

int mproc_future_error(mproc_future *f, int *code, const char **message)
{
    if (!f)
        return -EINVAL;
    uint32_t s = mproc__load_acquire(&f->state);
    if (!mproc__future_final(s))
        return -EAGAIN;
    if (code)
        *code = outcome(f, s);
    if (message)
        *message = f->rare && f->rare->message ? f->rare->message : "";
    return 0;
}

int mproc_future_add_done_callback(mproc_future *f, mproc_future_cb cb, void *userdata)
{
    if (!f || !cb)
        return -EINVAL;
    mproc__mutex_lock(&f->lock);
    if (f->finished) {
        mproc__mutex_unlock(&f->lock);
        cb(f, userdata);
        return 0;
    }
    if (f->ncb == 0) {
        f->cb_first = (struct mproc__cb){ cb, userdata };
    } else {
        struct mproc__future_rare *r = rare_of(f);
        if (r && f->ncb - 1 == r->cb_cap) {
            unsigned cap = r->cb_cap ? r->cb_cap * 2 : 4;
            struct mproc__cb *more = realloc(r->cb_more, cap * sizeof *more);
            if (more) {
                r->cb_more = more;
                r->cb_cap = cap;
            } else {
                r = NULL;
            }
        }
        if (!r) {
            mproc__mutex_unlock(&f->lock);
            return -ENOMEM;
        }
        r->cb_more[f->ncb - 1] = (struct mproc__cb){ cb, userdata };
    }
    f->ncb++;
    mproc__mutex_unlock(&f->lock);
    return 0;
}

bool mproc__future_watch(mproc_future *f, struct mproc__waiter *w)
{
    mproc__mutex_lock(&f->lock);
    bool done = f->finished;
    if (!done) {
        w->prev = NULL;
        w->next = f->waiters;
        if (f->waiters)
            f->waiters->prev = w;
        f->waiters = w;
    }
    mproc__mutex_unlock(&f->lock);
    return done;
}

void mproc__future_unwatch(mproc_future *f, struct mproc__waiter *w)
{
    mproc__mutex_lock(&f->lock);
    /* Still listed unless the future finished: then tell_everyone ran
     * (and notified us) under this lock, and the list is dead anyway. */
    if (!f->finished) {
        if (w->prev)
            w->prev->next = w->next;
        else
            f->waiters = w->next;
        if (w->next)
            w->next->prev = w->prev;
    }
    mproc__mutex_unlock(&f->lock);
}

/* ---- inside a task ---------------------------------------------------- */

/* Room for a len-byte result in f, replacing any earlier one but keeping
 * its first bytes (up to the smaller length); NULL when out of memory
 * (f then has no result). Never a borrowed result here: those belong to
 * tasks run elsewhere (and `rare` is not read: it may be being created). */
static void *result_room(mproc_future *f, size_t len)
{
    size_t old = f->len;
    unsigned char *was = old > F_INLINE_RESULT ? f->u.heap : f->u.inline_result;
    if (len <= F_INLINE_RESULT) {
        if (old > F_INLINE_RESULT) {
            unsigned char keep[F_INLINE_RESULT];
            memcpy(keep, was, len);
            free(was);
            memcpy(f->u.inline_result, keep, len);
        }
        f->len = len;
        return f->u.inline_result;
    }
    unsigned char *p;
    if (old > F_INLINE_RESULT) {
        if (!(p = realloc(was, len)))
            free(was);
    } else if ((p = malloc(len)) != NULL) {
        memcpy(p, was, old);
    }
    f->len = p ? len : 0;
    if (p)
        f->u.heap = p;
    return p;
}

/* ---- the context of a future's task (workers/ctx.h) ------------------ */

static void *future_room(mproc_ctx *ctx, size_t len)
{
    return result_room(ctx->owner, len);
}

static void future_message(mproc_ctx *ctx, const char *fmt, va_list ap)
{
    set_message(ctx->owner, fmt, ap);
}

static bool future_cancel_requested(const mproc_ctx *ctx)
{
    const mproc_future *f = ctx->owner;
    return mproc__exec_cancelling(f->ex) || mproc__load_relaxed(&f->cancel_req) != 0;
}

static const struct mproc__ctx_ops future_ctx_ops = {
    .room = future_room,
    .message = future_message,
    .cancel_requested = future_cancel_requested,
};

int mproc__future_run(mproc_future *f, int worker, int fail_code)
{
    uint32_t pending = F_PENDING;
    if (!__atomic_compare_exchange_n(&f->state, &pending, F_RUNNING, false,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 1; /* cancelled while queued */
    int code = fail_code;
    if (code == 0) {
        struct mproc_ctx ctx = { .ops = &future_ctx_ops, .owner = f, .worker = worker };
        code = f->fn(f->arg, f->arg_len, &ctx);
        if (code > 0)
            code = 0; /* positive returns are success, as 0 */
    }
    finish(f, code);
    return code;
}
