/*
 * workers/ctx.h -- what a running task sees: the mproc_ctx behind
 * mproc_return, mproc_result_buffer, mproc_fail and mproc_cancel_requested
 * (internal).
 *
 * A task runs in different places: a future of an executor, an item of a
 * map, a process of its own. Each place fills an mproc_ctx with its
 * operations and their object; the public calls (workers/ctx.c) dispatch
 * through them. A fixed-size result slot, when the place has one, is
 * written directly without a call.
 */
#ifndef MPROC_WORKERS_CTX_H
#define MPROC_WORKERS_CTX_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "mproc/workers.h"

struct mproc__ctx_ops {
    /* Room for a len-byte result, replacing any earlier one; NULL when
     * out of memory. */
    void *(*room)(mproc_ctx *ctx, size_t len);
    /* Attach a failure message (printf-style). */
    void (*message)(mproc_ctx *ctx, const char *fmt, va_list ap);
    /* Has someone asked this task to stop early? */
    bool (*cancel_requested)(const mproc_ctx *ctx);
};

struct mproc_ctx {
    /* First: the part mproc_return's inline path reads (workers.h):
     * where a result of exactly slot_len bytes goes, or NULL. */
    struct mproc__ctx_head head;
    const struct mproc__ctx_ops *ops;
    void *owner;     /* the operations' object: a future, a map, a process */
    size_t item;     /* a map's item index */
    int worker;      /* what mproc_ctx_worker returns */
};

#endif /* MPROC_WORKERS_CTX_H */
