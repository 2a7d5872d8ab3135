/*
 * tests/test_pmap.c -- map, imap and their results on process executors:
 * items and fixed-size results through the pool's shared heap (written
 * in place by the workers), and the paths taken when the heap has no
 * room (items in each chunk's message, results copied back): failures
 * and their messages, wrong result lengths, results of every size, a
 * chunk whose worker dies half-way, recycled heap memory, shutdown.
 *
 * To force the fallback paths a test takes most of the heap for itself
 * (mproc__pheap_alloc through the internal header: the space is never
 * touched, so it costs no memory).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/exec_internal.h"
#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 30000
#define HEAP_BYTES ((size_t)256 << 20) /* exec/procs.c's HEAP_SIZE */

enum path { HEAP, ITEMS_ONLY, NO_HEAP }; /* what fits in the heap */
static const char *const path_name[] = { "heap", "items only", "no heap" };

static mproc_executor *make(unsigned workers)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = workers }));
    return ex;
}

/* Leave room in a new executor's heap for `room` bytes at most (0: all
 * of it); the space taken is given back by release_heap. */
static void *taken;
static size_t taken_bytes;

static void squeeze_heap(mproc_executor *ex, size_t room)
{
    struct mproc__pheap *h = ex->be->heap(ex);
    CHECK(h != NULL);
    uint64_t off;
    taken_bytes = room ? HEAP_BYTES - room : 0;
    taken = room ? mproc__pheap_alloc(h, taken_bytes, &off) : NULL;
    CHECK(room == 0 || taken != NULL);
}

static void release_heap(mproc_executor *ex)
{
    if (taken)
        mproc__pheap_free(ex->be->heap(ex), taken, taken_bytes);
    taken = NULL;
}

/* Heap room that leaves path p for a map of n items of 8 bytes with
 * 8-byte results. */
static size_t room_for(enum path p, size_t n)
{
    return p == HEAP ? 0 : p == ITEMS_ONLY ? n * 8 + (n * 8) / 2 : (n * 8) / 2;
}

static int square(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x *= x;
    return mproc_return(ctx, &x, sizeof x);
}

TEST_T(fixed_squares_every_path_and_chunksize, 120)
{
    enum { N = 100000 };
    int64_t *in = malloc(N * sizeof *in);
    CHECK(in);
    for (long i = 0; i < N; i++)
        in[i] = i - 1000;
    static const size_t cs[] = { 0, 1, 7, 1000, N };
    for (int p = HEAP; p <= NO_HEAP; p++) {
        mproc_executor *ex = make(2);
        squeeze_heap(ex, room_for((enum path)p, N));
        for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
            mproc_results *r;
            CHECK_OK(mproc_map(ex, square, in, sizeof in[0], N,
                               &(mproc_map_opts){ .chunksize = cs[c], .result_size = 8 }, &r));
            const int64_t *d = mproc_results_data(r, NULL);
            CHECK(d != NULL);
            for (long i = 0; i < N; i++)
                CHECK_MSG(d[i] == in[i] * in[i], "%s, chunksize %zu: item %ld is %lld",
                          path_name[p], cs[c], i, (long long)d[i]);
            mproc_results_destroy(r);
        }
        release_heap(ex);
        mproc_executor_destroy(ex);
    }
    free(in);
}

/* x % 97 == 13 fails with a message; x % 101 == 7 returns 4 bytes (wrong
 * length); x % 103 == 5 returns nothing; x % 107 == 3 returns the wrong
 * length and then fails with its own code. */
static int picky(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x % 97 == 13)
        return mproc_fail(ctx, -EDOM, "item %lld refused", (long long)x);
    if (x % 101 == 7) {
        int32_t small = 1;
        return mproc_return(ctx, &small, sizeof small);
    }
    if (x % 103 == 5)
        return 0;
    if (x % 107 == 3) {
        int32_t small = 1;
        mproc_return(ctx, &small, sizeof small);
        return -ERANGE;
    }
    int64_t v = x * 3 + 1;
    return mproc_return(ctx, &v, sizeof v);
}

static void check_picky_item(const mproc_item *it, int64_t x)
{
    char want[80];
    if (x % 97 == 13) {
        CHECK_RC(it->code, -EDOM);
        snprintf(want, sizeof want, "item %lld refused", (long long)x);
        CHECK_MSG(strcmp(it->message, want) == 0, "'%s'", it->message);
    } else if (x % 101 == 7 || (x % 103 != 5 && x % 107 == 3)) { /* picky's order */
        CHECK_MSG(it->code == (x % 101 == 7 ? -EMSGSIZE : -ERANGE), "item %lld: code %d",
                  (long long)x, it->code);
        CHECK_MSG(strcmp(it->message, "result of 4 bytes, but result_size is 8") == 0, "'%s'",
                  it->message);
    } else if (x % 103 == 5) {
        CHECK_OK(it->code);
        CHECK_EQ(it->len, 8);
        CHECK(test_all_bytes(it->data, 8, 0));
    } else {
        CHECK_OK(it->code);
        CHECK_EQ(it->len, 8);
        int64_t v;
        memcpy(&v, it->data, sizeof v);
        CHECK_EQ(v, x * 3 + 1);
    }
}

TEST_T(fixed_failures_wrong_lengths_and_empty_results, 120)
{
    enum { N = 20000 };
    static int64_t in[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    for (int p = HEAP; p <= NO_HEAP; p++) {
        mproc_executor *ex = make(2);
        squeeze_heap(ex, room_for((enum path)p, N));
        /* First fill the memory the map will reuse with non-zero bytes. */
        mproc_results *r;
        CHECK_OK(mproc_map(ex, square, in, sizeof in[0], N,
                           &(mproc_map_opts){ .result_size = 8 }, &r));
        mproc_results_destroy(r);
        CHECK_RC(mproc_map(ex, picky, in, sizeof in[0], N,
                           &(mproc_map_opts){ .chunksize = 33, .result_size = 8 }, &r),
                 -ERANGE); /* item 3: 3 % 107 == 3 comes first */
        const int64_t *d = mproc_results_data(r, NULL);
        CHECK(d != NULL);
        for (long i = 0; i < N; i++) {
            mproc_item it;
            mproc_results_get(r, (size_t)i, &it);
            check_picky_item(&it, in[i]);
            if (it.code != 0)
                CHECK_MSG(d[i] == 0, "%s: failed item %ld reads %lld", path_name[p], i,
                          (long long)d[i]);
        }
        mproc_results_destroy(r);
        release_heap(ex);
        mproc_executor_destroy(ex);
    }
}

/* General mode: results of every length from 0 to 300 bytes, a few of
 * 100 KiB (more than a slot's own region), and failures. */
static int sized(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x % 89 == 1)
        return mproc_fail(ctx, -EIO, "no %lld", (long long)x);
    size_t n = x % 250 == 0 ? 100000 : (size_t)(x % 301);
    unsigned char *p = mproc_result_buffer(ctx, n);
    if (!p && n)
        return -ENOMEM;
    for (size_t k = 0; k < n; k++)
        p[k] = (unsigned char)(x + (int64_t)k);
    return 0;
}

TEST_T(general_results_of_many_sizes, 120)
{
    enum { N = 3000 };
    static int64_t in[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    for (int p = HEAP; p <= NO_HEAP; p += 2) {
        mproc_executor *ex = make(2);
        squeeze_heap(ex, p == HEAP ? 0 : 8192);
        mproc_results *r;
        CHECK_RC(mproc_map(ex, sized, in, sizeof in[0], N, &(mproc_map_opts){ .chunksize = 41 },
                           &r),
                 -EIO); /* item 1 */
        for (long i = 0; i < N; i++) {
            mproc_item it;
            int rc = mproc_results_get(r, (size_t)i, &it);
            if (i % 89 == 1) {
                CHECK_RC(rc, -EIO);
                char want[32];
                snprintf(want, sizeof want, "no %ld", i);
                CHECK_MSG(strcmp(it.message, want) == 0, "'%s'", it.message);
                continue;
            }
            CHECK_OK(rc);
            size_t n = i % 250 == 0 ? 100000 : (size_t)(i % 301);
            CHECK_EQ(it.len, n);
            const unsigned char *b = it.data;
            for (size_t k = 0; k < n; k++)
                if (b[k] != (unsigned char)(i + (long)k))
                    CHECK_MSG(0, "%s: item %ld byte %zu", path_name[p], i, k);
        }
        mproc_results_destroy(r);
        release_heap(ex);
        mproc_executor_destroy(ex);
    }
}

/* Shared with the workers (allocated before the executor exists). */
typedef struct shared {
    atomic_long crash_at; /* the item whose worker dies, or -1 */
} shared;
static shared *sh;

static int square_or_die(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x == atomic_load(&sh->crash_at)) {
        atomic_store(&sh->crash_at, -1); /* once */
        raise(SIGKILL);
    }
    int64_t v = x * x + 1;
    return mproc_return(ctx, &v, sizeof v);
}

/* A worker that dies half-way through a chunk whose results it writes in
 * place: the whole chunk fails and reads as zeros (what it wrote before
 * dying is not left behind); the other chunks are whole. */
TEST_T(chunk_whose_worker_dies_half_way_reads_zero, 60)
{
    sh = mproc_shared_calloc(sizeof *sh);
    CHECK(sh != NULL);
    enum { N = 4000, CS = 500 };
    static int64_t in[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    for (int p = HEAP; p <= NO_HEAP; p += 2) {
        mproc_executor *ex = make(2);
        squeeze_heap(ex, room_for((enum path)p, N));
        atomic_store(&sh->crash_at, 1250); /* chunk 2, half-way */
        mproc_results *r;
        CHECK_RC(mproc_map(ex, square_or_die, in, sizeof in[0], N,
                           &(mproc_map_opts){ .chunksize = CS, .result_size = 8 }, &r),
                 MPROC_EWORKERDIED);
        const int64_t *d = mproc_results_data(r, NULL);
        for (long i = 0; i < N; i++) {
            mproc_item it;
            mproc_results_get(r, (size_t)i, &it);
            if (i / CS == 2) {
                CHECK_RC(it.code, MPROC_EWORKERDIED);
                CHECK_MSG(d[i] == 0, "%s: item %ld of the dead chunk reads %lld", path_name[p],
                          i, (long long)d[i]);
            } else {
                CHECK_OK(it.code);
                CHECK_EQ(d[i], in[i] * in[i] + 1);
            }
        }
        mproc_results_destroy(r);
        release_heap(ex);
        mproc_executor_destroy(ex);
    }
}

/* Results in the heap stay readable after their executor is destroyed,
 * and many maps in a row reuse the heap without mixing results up. */
TEST_T(results_outlive_executor_and_heap_is_reused, 120)
{
    enum { N = 50000 };
    static int64_t in[N];
    for (long i = 0; i < N; i++)
        in[i] = i;
    mproc_executor *ex = make(2);
    mproc_results *kept;
    CHECK_OK(mproc_map(ex, square, in, sizeof in[0], N, &(mproc_map_opts){ .result_size = 8 },
                       &kept));
    long rounds = test_scaled_stress(40);
    for (long k = 0; k < rounds; k++) {
        for (long i = 0; i < N; i++)
            in[i] = i + k;
        mproc_results *r;
        CHECK_OK(mproc_map(ex, square, in, sizeof in[0], N,
                           &(mproc_map_opts){ .chunksize = (size_t)(k % 3 == 0 ? 0 : 97 * k),
                                              .result_size = 8 },
                           &r));
        const int64_t *d = mproc_results_data(r, NULL);
        for (long i = 0; i < N; i++)
            if (d[i] != (i + k) * (i + k))
                CHECK_MSG(0, "round %ld item %ld: %lld", k, i, (long long)d[i]);
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex);
    const int64_t *d = mproc_results_data(kept, NULL);
    CHECK(d != NULL);
    for (long i = 0; i < N; i++)
        CHECK_EQ(d[i], (int64_t)i * i);
    mproc_results_destroy(kept);
}

TEST_T(imap_unordered_and_copy_arg_on_processes, 60)
{
    mproc_executor *ex = make(2);
    enum { N = 5000 };
    int64_t *in = malloc(N * sizeof *in);
    CHECK(in);
    for (long i = 0; i < N; i++)
        in[i] = i;
    mproc_imap_iter *it;
    CHECK_OK(mproc_imap_unordered(ex, square, in, sizeof in[0], N,
                                  &(mproc_map_opts){ .chunksize = 13, .result_size = 8,
                                                     .flags = MPROC_COPY_ARG },
                                  &it));
    for (long i = 0; i < N; i++)
        in[i] = -1; /* copied: the map does not see this */
    free(in);
    static unsigned char seen[N];
    mproc_item item;
    int rc, count = 0;
    while ((rc = mproc_imap_next(it, LONG_MS, &item)) == 1) {
        CHECK(item.index < N && !seen[item.index]);
        seen[item.index] = 1;
        int64_t v;
        memcpy(&v, item.data, sizeof v);
        CHECK_EQ(v, (int64_t)(item.index * item.index));
        count++;
    }
    CHECK_OK(rc);
    CHECK_EQ(count, N);
    mproc_imap_destroy(it);
    mproc_executor_destroy(ex);
}

static int slow_square(const void *arg, size_t len, mproc_ctx *ctx)
{
    usleep(200);
    return square(arg, len, ctx);
}

/* shutdown(cancel_futures) while a map's chunks wait in the rings: the
 * map still completes; cancelled chunks fail with MPROC_ECANCELLED and
 * read as zeros, the others are right. */
TEST_T(map_cancelled_by_shutdown_with_chunks_in_rings, 60)
{
    mproc_executor *ex = make(2);
    enum { N = 400 };
    static int64_t in[N];
    for (long i = 0; i < N; i++)
        in[i] = i + 1;
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, slow_square, in, sizeof in[0], N,
                             &(mproc_map_opts){ .chunksize = 2, .result_size = 8 }, NULL, NULL,
                             NULL, &r, &done));
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    int rc = mproc_future_result(done, LONG_MS, NULL, NULL);
    CHECK(rc == 0 || rc == MPROC_ECANCELLED);
    const int64_t *d = mproc_results_data(r, NULL);
    int cancelled = 0;
    for (long i = 0; i < N; i++) {
        mproc_item it;
        mproc_results_get(r, (size_t)i, &it);
        if (it.code == MPROC_ECANCELLED) {
            cancelled++;
            CHECK_EQ(d[i], 0);
        } else {
            CHECK_OK(it.code);
            CHECK_EQ(d[i], in[i] * in[i]);
        }
    }
    CHECK(cancelled > 0);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
}

/* Even items attach a message and then succeed; odd ones fail with no
 * message of their own. */
static int message_then_success(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x % 2)
        return -EIO;
    mproc_fail(ctx, -EDOM, "stale %lld", (long long)x);
    return mproc_return(ctx, &x, sizeof x);
}

/* Regression: an item's failure never carries the message an earlier
 * item of its chunk attached before succeeding. */
TEST(no_message_leaks_from_one_item_to_the_next)
{
    mproc_executor *ex = make(1);
    enum { N = 100 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mproc_results *r;
    CHECK_RC(mproc_map(ex, message_then_success, in, sizeof in[0], N,
                       &(mproc_map_opts){ .chunksize = N, .result_size = 8 }, &r),
             -EIO);
    for (int i = 0; i < N; i++) {
        mproc_item it;
        int rc = mproc_results_get(r, (size_t)i, &it);
        if (i % 2) {
            CHECK_RC(rc, -EIO);
            CHECK_MSG(it.message[0] == '\0', "item %d: '%s'", i, it.message);
        } else {
            CHECK_OK(rc);
            int64_t v;
            memcpy(&v, it.data, sizeof v);
            CHECK_EQ(v, (int64_t)i);
        }
    }
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
}

/* Byte j of item x's result. */
static unsigned char sized_byte(int64_t x, size_t j)
{
    return (unsigned char)(x * 7 + (int64_t)j + 1);
}

/* The item is { x, result size }: x % 5 == 0 returns nothing, x % 11 == 0
 * writes its result with mproc_result_buffer, x % 13 == 0 writes it and
 * then fails; the others mproc_return it. */
static int sized_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x[2];
    memcpy(x, arg, sizeof x); /* x[0]: the item, x[1]: the result size */
    size_t rs = (size_t)x[1];
    if (x[0] % 5 == 0)
        return 0;
    unsigned char buf[128];
    unsigned char *p = x[0] % 11 == 0 ? mproc_result_buffer(ctx, rs) : buf;
    if (!p)
        return -ENOMEM;
    for (size_t j = 0; j < rs; j++)
        p[j] = sized_byte(x[0], j);
    if (x[0] % 13 == 0)
        return -EIO;
    return p == buf ? mproc_return(ctx, buf, rs) : 0;
}

/* Results of sizes around the streamed ones (multiples of 8 up to 64)
 * and others, one map after another on the same heap: what an earlier
 * map left in recycled heap memory never shows through an item that
 * returned nothing or failed. */
TEST_T(fixed_results_of_many_sizes_on_recycled_heap, 60)
{
    enum { N = 3000 };
    static int64_t in[N][2];
    const size_t sizes[] = { 72, 8, 64, 16, 24, 4, 12, 40, 1, 56, 8 };
    mproc_executor *ex = make(2);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t rs = sizes[s];
        for (int cs = 0; cs < 2; cs++) {
            for (long i = 0; i < N; i++) {
                in[i][0] = i;
                in[i][1] = (int64_t)rs;
            }
            mproc_results *r;
            CHECK_RC(mproc_map(ex, sized_task, in, sizeof in[0], N,
                               &(mproc_map_opts){ .chunksize = cs ? 97 : 0, .result_size = rs },
                               &r),
                     -EIO);
            size_t got = 0;
            const unsigned char *d = mproc_results_data(r, &got);
            CHECK(d != NULL);
            CHECK_EQ(got, rs);
            for (long i = 0; i < N; i++) {
                bool zero = i % 5 == 0 || i % 13 == 0;
                mproc_item it;
                CHECK_RC(mproc_results_get(r, (size_t)i, &it), i % 5 != 0 && i % 13 == 0 ? -EIO : 0);
                for (size_t j = 0; j < rs; j++) {
                    unsigned char want = zero ? 0 : sized_byte(i, j);
                    if (d[(size_t)i * rs + j] != want)
                        CHECK_MSG(0, "size %zu chunksize %d item %ld byte %zu: %d, want %d", rs,
                                  cs ? 97 : 0, i, j, d[(size_t)i * rs + j], want);
                }
            }
            mproc_results_destroy(r);
        }
    }
    mproc_executor_destroy(ex);
}

/* More workers than CPUs: some wait, asleep, for their chunks' items
 * until the caller has copied them all (exec/map.c, copy_items), within a
 * task deadline that waiting must not come near. */
TEST_T(map_with_more_workers_than_cpus_and_a_task_timeout, 60)
{
    long n = test_scaled(200000);
    int64_t *in = malloc((size_t)n * sizeof *in);
    CHECK(in != NULL);
    for (long i = 0; i < n; i++)
        in[i] = i;
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(
        &ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                     .workers = mproc_cpu_count() + 2,
                                     .task_timeout_ms = 20000 }));
    const size_t cs[] = { 0, 1000, 7 };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        mproc_results *r;
        CHECK_OK(mproc_map(ex, square, in, sizeof in[0], (size_t)n,
                           &(mproc_map_opts){ .chunksize = cs[c], .result_size = 8 }, &r));
        const int64_t *d = mproc_results_data(r, NULL);
        CHECK(d != NULL);
        for (long i = 0; i < n; i++)
            if (d[i] != in[i] * in[i])
                CHECK_MSG(0, "chunksize %zu: item %ld is %lld", cs[c], i, (long long)d[i]);
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex);
    free(in);
}

struct racing_shutdown {
    mproc_executor *ex;
    atomic_int go;
};

static void *shut_down_when_told(void *arg)
{
    struct racing_shutdown *s = arg;
    while (!atomic_load(&s->go))
        ;
    mproc_executor_shutdown(s->ex, false, true);
    return NULL;
}

/* A shutdown that cancels queued chunks while the caller is still
 * submitting chunks or copying the map's items: every item either ran,
 * reads as cancelled (its chunk was queued), or -- from the first chunk
 * the shutdown kept out on -- as MPROC_ESHUTDOWN; the last two read as
 * zero, and the map completes. */
TEST_T(shutdown_while_the_items_are_copied, 60)
{
    long n = test_scaled(1000000);
    int64_t *in = malloc((size_t)n * sizeof *in);
    CHECK(in != NULL);
    for (long i = 0; i < n; i++)
        in[i] = i + 1;
    for (int round = 0; round < 4; round++) {
        struct racing_shutdown s = { make(2), 0 };
        pthread_t t;
        CHECK(pthread_create(&t, NULL, shut_down_when_told, &s) == 0);
        atomic_store(&s.go, 1);
        mproc_results *r = NULL;
        mproc_future *done = NULL;
        int rc = mproc_map_async(s.ex, square, in, sizeof in[0], (size_t)n,
                                 &(mproc_map_opts){ .chunksize = (size_t)n / 64 + 1,
                                                    .result_size = 8 },
                                 NULL, NULL, NULL, &r, &done);
        pthread_join(t, NULL);
        if (rc == 0) {
            rc = mproc_future_result(done, LONG_MS, NULL, NULL);
            CHECK(rc == 0 || rc == MPROC_ECANCELLED || rc == MPROC_ESHUTDOWN);
            const int64_t *d = mproc_results_data(r, NULL);
            CHECK(d != NULL);
            bool kept_out = false; /* once one chunk was, every later one is */
            for (long i = 0; i < n; i++) {
                mproc_item it;
                mproc_results_get(r, (size_t)i, &it);
                kept_out = kept_out || it.code == MPROC_ESHUTDOWN;
                bool ok = kept_out ? it.code == MPROC_ESHUTDOWN && d[i] == 0
                        : it.code == MPROC_ECANCELLED ? d[i] == 0
                        : it.code == 0 && d[i] == in[i] * in[i];
                if (!ok)
                    CHECK_MSG(0, "round %d item %ld: code %d value %lld", round, i, it.code,
                              (long long)d[i]);
            }
            mproc_future_release(done);
            mproc_results_destroy(r);
        } else {
            CHECK(r == NULL && done == NULL);
        }
        mproc_executor_destroy(s.ex);
    }
    free(in);
}
