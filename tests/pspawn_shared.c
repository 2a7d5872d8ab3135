/*
 * tests/pspawn_shared.c -- spawned process workers of a program linked
 * with the shared libmproc (ctest case pspawn.shared_library). There the
 * workers' entry is a hidden function of libmproc.so, which a spawned
 * worker finds by its place in that library, as it finds this program's
 * static tasks by their place in the program (workers/fnref.h).
 *
 * Standalone, without the test runner (which links the static library):
 * prints what went wrong and exits 1, or exits 0.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc.h"

#define FAIL(...)                                                  \
    do {                                                           \
        fprintf(stderr, "pspawn_shared: " __VA_ARGS__);            \
        fputc('\n', stderr);                                       \
        exit(1);                                                   \
    } while (0)

static char seen[16];

static int init(void *arg)
{
    memcpy(seen, arg, sizeof seen);
    return 0;
}

static int triple(const void *arg, size_t len, mproc_ctx *ctx)
{
    int64_t x;
    if (len != sizeof x)
        return mproc_fail(ctx, -EINVAL, "bad length %zu", len);
    memcpy(&x, arg, sizeof x);
    x *= 3;
    return mproc_return(ctx, &x, sizeof x);
}

static int tell_seen(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    return mproc_return(ctx, seen, sizeof seen);
}

int main(void)
{
    alarm(120); /* a hang is a failure, not a stuck test */
    char bytes[16] = "desde el padre";
    mproc_executor *ex;
    int rc = mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 2,
                                                               .start = MPROC_START_SPAWN,
                                                               .initializer = init,
                                                               .initarg = bytes,
                                                               .initarg_len = sizeof bytes });
    if (rc != 0)
        FAIL("create: %s", mproc_strerror(rc));
    memset(bytes, 0, sizeof bytes);
    mproc_future *f;
    const void *d;
    size_t n;
    if ((rc = mproc_submit(ex, tell_seen, NULL, 0, &f)) != 0 ||
        (rc = mproc_future_result(f, 60000, &d, &n)) != 0)
        FAIL("tell_seen: %s", mproc_strerror(rc));
    if (n != sizeof bytes || strcmp(d, "desde el padre") != 0)
        FAIL("the initializer saw '%.*s'", (int)n, (const char *)d);
    mproc_future_release(f);
    int64_t xs[100];
    for (int i = 0; i < 100; i++)
        xs[i] = i;
    mproc_results *r;
    if ((rc = mproc_map(ex, triple, xs, sizeof xs[0], 100,
                        &(mproc_map_opts){ .result_size = sizeof(int64_t) }, &r)) != 0)
        FAIL("map: %s", mproc_strerror(rc));
    const int64_t *out = mproc_results_data(r, NULL);
    for (int i = 0; i < 100; i++)
        if (out[i] != 3 * i)
            FAIL("item %d: %lld", i, (long long)out[i]);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    return 0;
}
