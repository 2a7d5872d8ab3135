/*
 * tests/test_presult.c -- results of process tasks written in place.
 *
 * A process worker writes a result of ZONE_MIN (4 KiB) bytes or more into
 * its zone, memory the parent maps too, and the future reads it there:
 * no copy back. These tests check that (the result's bytes lie in the
 * parent's mapping of the worker's mailbox), that a result the caller
 * still holds is never overwritten however many results follow (the zone
 * is a ring; a full one falls back to copying), that results outlive
 * their executor and their worker, that a result that grows, shrinks
 * and moves keeps its bytes, and that an idle worker gives the zone's
 * pages back.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 60000
#define MAILBOX "memfd:mproc-mailbox"
#define ZONE_KEEP ((size_t)8 << 20) /* exec/procs.c */

/* What a task is asked to produce: `size` bytes stamped with `seed`. */
struct ask {
    uint32_t seed;
    uint32_t size;
    int32_t die;    /* raise this signal halfway through writing */
    uint32_t pad;
};

/* The byte at offset i of seed's result: every 4 KiB page begins with
 * the seed and its page number, so a result overwritten by another shows
 * whose bytes it holds. */
static unsigned char expected(uint32_t seed, size_t i)
{
    size_t in_page = i % 4096;
    if (in_page < 4)
        return (unsigned char)(seed >> (8 * in_page));
    if (in_page < 8)
        return (unsigned char)((i / 4096) >> (8 * (in_page - 4)));
    return (unsigned char)(seed * 131 + i * 7);
}

static void stamp(unsigned char *p, uint32_t seed, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        p[i] = expected(seed, i);
}

/* The first wrong byte of seed's result at p, or n. `step` > 1 looks at
 * each page's first 16 bytes only (for the many results of a stress). */
static size_t first_wrong(const unsigned char *p, size_t n, uint32_t seed, size_t step)
{
    for (size_t i = 0; i < n; i += step) {
        size_t end = step > 1 && i + 16 < n ? i + 16 : (step > 1 ? n : i + 1);
        for (size_t k = i; k < end; k++)
            if (p[k] != expected(seed, k))
                return k;
    }
    return n;
}

static int produce(const void *arg, size_t len, mproc_ctx *ctx)
{
    struct ask a;
    if (len != sizeof a)
        return -EINVAL;
    memcpy(&a, arg, sizeof a);
    unsigned char *p = mproc_result_buffer(ctx, a.size);
    if (!p)
        return -ENOMEM;
    stamp(p, a.seed, 0, a.size / 2);
    if (a.die)
        raise(a.die);
    stamp(p, a.seed, a.size / 2, a.size);
    return 0;
}

static mproc_future *submit(mproc_executor *ex, uint32_t seed, uint32_t size, int die)
{
    struct ask a = { seed, size, die, 0 };
    mproc_future *f;
    CHECK_OK(mproc_submit_ex(ex, produce, &a, sizeof a,
                             &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &f));
    return f;
}

/* f's result, checked to be seed's `size` bytes. */
static const unsigned char *result_of(mproc_future *f, uint32_t seed, uint32_t size, size_t step)
{
    const void *d;
    size_t n;
    CHECK_OK(mproc_future_result(f, LONG_MS, &d, &n));
    CHECK_EQ(n, size);
    size_t k = first_wrong(d, n, seed, step);
    CHECK_MSG(k == n, "result %u: byte %zu of %zu is wrong", seed, k, n);
    return d;
}

/* Does p lie in a mapping of the file `name` (from /proc/self/maps)? */
static bool mapped_from(const void *p, const char *name)
{
    FILE *m = fopen("/proc/self/maps", "r");
    CHECK(m != NULL);
    char line[512];
    bool found = false;
    uintptr_t a = (uintptr_t)p;
    while (!found && fgets(line, sizeof line, m)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
            found = strstr(line, name) != NULL;
    }
    fclose(m);
    return found;
}

static mproc_executor *make(unsigned workers, mproc_start_method start)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = workers,
                                                               .start = start }));
    return ex;
}

TEST(big_results_are_read_where_the_worker_wrote_them)
{
    static const mproc_start_method how[] = { MPROC_START_DEFAULT, MPROC_START_FORK };
    static const uint32_t size[] = { 100, 4095, 4096, 65536, 1u << 20, 16u << 20 };
    enum { NS = sizeof size / sizeof size[0] };
    for (int k = 0; k < 2; k++) {
        mproc_executor *ex = make(2, how[k]);
        mproc_future *f[NS];
        for (int i = 0; i < NS; i++)
            f[i] = submit(ex, (uint32_t)i + 1, size[i], 0);
        for (int i = 0; i < NS; i++) {
            const unsigned char *d = result_of(f[i], (uint32_t)i + 1, size[i], 1);
            bool in_place = mapped_from(d, MAILBOX);
            CHECK_MSG(in_place == (size[i] >= 4096), "%u-byte result %s", size[i],
                      in_place ? "in the mailbox" : "copied");
        }
        for (int i = 0; i < NS; i++)
            mproc_future_release(f[i]);
        mproc_executor_destroy(ex);
    }
}

TEST_T(held_results_survive_many_later_ones, 120)
{
    /* One worker, so that every result goes through the same zone: three
     * held from the start, then more than a zone's worth (256 MiB) of
     * others, each released once checked. The zone fills up behind the
     * held ones (the rest are copied), then, released out of order, the
     * held ones make room again. */
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    enum { HELD = 3, MIB = 1u << 20 };
    mproc_future *held[HELD];
    for (uint32_t i = 0; i < HELD; i++)
        held[i] = submit(ex, 1000 + i, MIB + 4096 * i, 0);
    for (uint32_t i = 0; i < HELD; i++)
        result_of(held[i], 1000 + i, MIB + 4096 * i, 1);
    long n = test_scaled_stress(320);
    int copied = 0;
    for (long round = 0; round < n; round += 8) {
        mproc_future *f[8];
        for (int j = 0; j < 8; j++)
            f[j] = submit(ex, (uint32_t)(round + j), MIB, 0);
        for (int j = 0; j < 8; j++) {
            const unsigned char *d = result_of(f[j], (uint32_t)(round + j), MIB, 4096);
            copied += !mapped_from(d, MAILBOX);
            mproc_future_release(f[j]);
        }
    }
    /* Not one byte of the held results changed. */
    for (uint32_t i = 0; i < HELD; i++)
        result_of(held[i], 1000 + i, MIB + 4096 * i, 1);
    if (n >= 256) /* more than the zone holds passed through it */
        CHECK_MSG(copied > 0, "a full zone should have made some results copies");
    mproc_future_release(held[1]);
    mproc_future_release(held[0]);
    mproc_future_release(held[2]);
    /* With nothing held the zone serves in place again. */
    mproc_future *f = submit(ex, 7, 8 * MIB, 0);
    CHECK(mapped_from(result_of(f, 7, 8 * MIB, 1), MAILBOX));
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

TEST(results_outlive_their_executor)
{
    mproc_executor *ex = make(2, MPROC_START_DEFAULT);
    mproc_future *f[4];
    for (uint32_t i = 0; i < 4; i++)
        f[i] = submit(ex, 50 + i, (1u << 20) + 777 * i, 0);
    for (uint32_t i = 0; i < 4; i++)
        result_of(f[i], 50 + i, (1u << 20) + 777 * i, 1);
    mproc_executor_destroy(ex); /* workers gone; the results stay */
    for (uint32_t i = 0; i < 4; i++) {
        result_of(f[i], 50 + i, (1u << 20) + 777 * i, 1);
        mproc_future_release(f[i]);
    }
}

TEST(held_result_survives_its_worker_and_the_replacement)
{
    /* A worker leaves a result in its zone, then dies writing the next
     * one; the replacement writes after the held result, never over it. */
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    mproc_future *keep = submit(ex, 77, 3u << 20, 0);
    result_of(keep, 77, 3u << 20, 1);
    mproc_future *dies = submit(ex, 78, 3u << 20, SIGKILL);
    CHECK_RC(mproc_future_result(dies, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    mproc_future_release(dies);
    for (uint32_t i = 0; i < 40; i++) {
        mproc_future *f = submit(ex, 100 + i, 2u << 20, 0);
        CHECK(mapped_from(result_of(f, 100 + i, 2u << 20, 4096), MAILBOX));
        mproc_future_release(f);
    }
    result_of(keep, 77, 3u << 20, 1);
    mproc_future_release(keep);
    mproc_executor_destroy(ex);
}

/* Grows its result through every area -- region, zone, back -- checking
 * that the bytes written so far are kept at each move; the final result
 * is `final` bytes. */
static int grow_and_shrink(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    static const size_t steps[] = { 100, 5000, 3u << 20, 200000, 64, 9000, 1u << 20 };
    size_t have = 0;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        unsigned char *p = mproc_result_buffer(ctx, steps[s]);
        if (!p)
            return -ENOMEM;
        size_t keep = have < steps[s] ? have : steps[s];
        if (first_wrong(p, keep, 9, 1) != keep)
            return mproc_fail(ctx, -EIO, "step %zu lost a byte", s);
        stamp(p, 9, keep, steps[s]);
        have = steps[s];
    }
    return 0;
}

/* A result in the zone for an argument in the big area (> 64 KiB). */
static int echo_big(const void *arg, size_t len, mproc_ctx *ctx)
{
    unsigned char *p = mproc_result_buffer(ctx, len);
    if (!p)
        return -ENOMEM;
    memcpy(p, arg, len);
    return 0;
}

TEST(result_that_grows_shrinks_and_moves_keeps_its_bytes)
{
    /* The same on threads, where the result is the future's memory. */
    mproc_executor *ex;
    mproc_future *f;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_THREADS,
                                                               .workers = 1 }));
    CHECK_OK(mproc_submit(ex, grow_and_shrink, NULL, 0, &f));
    CHECK(!mapped_from(result_of(f, 9, 1u << 20, 1), MAILBOX));
    mproc_future_release(f);
    mproc_executor_destroy(ex);

    ex = make(1, MPROC_START_DEFAULT);
    CHECK_OK(mproc_submit(ex, grow_and_shrink, NULL, 0, &f));
    CHECK(mapped_from(result_of(f, 9, 1u << 20, 1), MAILBOX));
    mproc_future_release(f);

    size_t n = 5u << 20;
    unsigned char *arg = malloc(n);
    CHECK(arg != NULL);
    stamp(arg, 31, 0, n);
    CHECK_OK(mproc_submit(ex, echo_big, arg, n, &f));
    CHECK(mapped_from(result_of(f, 31, (uint32_t)n, 1), MAILBOX));
    mproc_future_release(f);
    free(arg);
    mproc_executor_destroy(ex);
}

/* Bytes of memory behind the parent's descriptor of the (one) worker
 * mailbox, or -1 if there is none. */
static long long mailbox_bytes(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    long long bytes = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], link[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(path, link, sizeof link - 1);
        if (k <= 0)
            continue;
        link[k] = '\0';
        struct stat st;
        if (strstr(link, "/memfd:mproc-mailbox") == link && stat(path, &st) == 0)
            bytes = (long long)st.st_blocks * 512;
    }
    closedir(d);
    return bytes;
}

TEST(idle_worker_gives_zone_pages_back)
{
    mproc_executor *ex = make(1, MPROC_START_DEFAULT);
    mproc_future *f = submit(ex, 5, 48u << 20, 0);
    result_of(f, 5, 48u << 20, 4096);
    CHECK(mailbox_bytes() >= (48ll << 20));
    mproc_future_release(f); /* the worker, idle, may now trim */
    /* What stays: the slot regions used and ZONE_KEEP of the zone. */
    WAIT_UNTIL(mailbox_bytes() <= (long long)(ZONE_KEEP + (4u << 20)), 20000);
    /* And the zone still works. */
    f = submit(ex, 6, 20u << 20, 0);
    CHECK(mapped_from(result_of(f, 6, 20u << 20, 1), MAILBOX));
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}
