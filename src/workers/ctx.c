/*
 * workers/ctx.c -- the calls a running task makes on its mproc_ctx
 * (see ctx.h), whatever runs it.
 */
#include "workers/ctx.h"

#include <errno.h>
#include <string.h>

/* Room for a len-byte result: the fixed-size slot when len fits it,
 * else what the place provides; NULL when out of memory. */
static void *room_for(mproc_ctx *ctx, size_t len)
{
    if (ctx->head.slot && len == ctx->head.slot_len)
        return ctx->head.slot;
    return ctx->ops->room(ctx, len);
}

/* The function behind the macro of the same name (workers.h): called
 * through the macro, the fixed-size slot has been tried already. */
int(mproc_return)(mproc_ctx *ctx, const void *data, size_t len)
{
    if (!ctx || (!data && len > 0))
        return -EINVAL;
    void *p = room_for(ctx, len);
    if (!p)
        return -ENOMEM;
    if (len > 0)
        memcpy(p, data, len);
    return 0;
}

void *mproc_result_buffer(mproc_ctx *ctx, size_t len)
{
    if (!ctx) {
        errno = EINVAL;
        return NULL;
    }
    void *p = room_for(ctx, len);
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
