/*
 * workers/ctx.c -- the calls a running task makes on its mproc_ctx
 * (see ctx.h), whatever runs it.
 */
#include "workers/ctx.h"

#include <errno.h>
#include <string.h>

/* mproc_return's general case, out of line so that the fixed-size
 * slot's path below needs no stack frame (a map item costs a few ns). */
__attribute__((noinline)) static int return_to_room(mproc_ctx *ctx, const void *data,
                                                    size_t len)
{
    if (!ctx || (!data && len > 0))
        return -EINVAL;
    if (ctx->head.slot && len == ctx->head.slot_len) { /* data is NULL, len 0 */
        memcpy(ctx->head.slot, data, len);
        return 0;
    }
    void *p = ctx->ops->room(ctx, len);
    if (!p)
        return -ENOMEM;
    if (len > 0)
        memcpy(p, data, len);
    return 0;
}

/* The function behind the macro of the same name (workers.h). */
int(mproc_return)(mproc_ctx *ctx, const void *data, size_t len)
{
    /* A map item's fixed-size slot: the common sizes copy in one move. */
    if (__builtin_expect(ctx && ctx->head.slot && len == ctx->head.slot_len && data, 1)) {
        switch (len) {
        case 4: memcpy(ctx->head.slot, data, 4); break;
        case 8: memcpy(ctx->head.slot, data, 8); break;
        case 16: memcpy(ctx->head.slot, data, 16); break;
        default: memcpy(ctx->head.slot, data, len); break;
        }
        return 0;
    }
    return return_to_room(ctx, data, len);
}

void *mproc_result_buffer(mproc_ctx *ctx, size_t len)
{
    if (!ctx) {
        errno = EINVAL;
        return NULL;
    }
    if (ctx->head.slot && len == ctx->head.slot_len)
        return ctx->head.slot;
    void *p = ctx->ops->room(ctx, len);
    if (!p)
        errno = ENOMEM;
    return p;
}

int mproc_fail(mproc_ctx *ctx, int code, const char *fmt, ...)
{
    if (!ctx || code >= 0 || !fmt)
        return code;
    va_list ap;
    va_start(ap, fmt);
    ctx->ops->message(ctx, fmt, ap);
    va_end(ap);
    return code;
}

bool mproc_cancel_requested(const mproc_ctx *ctx)
{
    return ctx && ctx->ops->cancel_requested(ctx);
}

int mproc_ctx_worker(const mproc_ctx *ctx)
{
    return ctx ? ctx->worker : -EINVAL;
}
