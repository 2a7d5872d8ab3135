/*
 * tests/test_map.c -- the pool-style calls of mproc/exec.h: map,
 * map_async and the results object, imap and imap_unordered, apply and
 * apply_async; and all of the map family with fixed-size results
 * (mproc_map_opts.result_size, mproc_results_data).
 *
 * Most items are `job`s that say what their task does: wait on an event
 * (to hold a chunk in a known state), sleep a little (random durations),
 * fail with a message, or return x * x. Chunks are held with events and
 * observed with atomics or mproc_results_get, never with sleeps; there
 * are no timing asserts beyond "a timeout does not return early".
 * Under AddressSanitizer the runner checks every test for leaks, which
 * matters for the tests that drop results and iterators while chunks
 * still run.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec_common.h"

/* A pointer that is not NULL, to see that a failing call clears *out. */
#define NOT_NULL(type) ((type *)(uintptr_t)0x1000)

/* ------------------------------------------------------------------ */
/* tasks and checks                                                    */
/* ------------------------------------------------------------------ */

/* The value of item i of the int64 arrays below. */
static int64_t val(size_t i)
{
    return (int64_t)i * 7 - 1000;
}

static int64_t *make_values(size_t n)
{
    int64_t *v = malloc((n ? n : 1) * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = val(i);
    return v;
}

/* Task: an int64_t x in, x * x out. */
static int square_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(int64_t))
        return mproc_fail(ctx, -EINVAL, "square_task: len %zu", len);
    int64_t x;
    memcpy(&x, arg, sizeof x);
    int64_t y = x * x;
    return mproc_return(ctx, &y, sizeof y);
}

/* Task that must not run. */
static atomic_int never_ran;
static int never_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_fetch_add(&never_ran, 1);
    return 0;
}

/* Item i of r succeeded with the int64_t result `want`. */
static void check_i64_item(const mproc_results *r, size_t i, int64_t want)
{
    mproc_item it;
    memset(&it, 0xa5, sizeof it);
    int rc = mproc_results_get(r, i, &it);
    CHECK_MSG(rc == 0, "item %zu: %d (%s)", i, rc, test_errname(rc));
    CHECK_EQ(it.index, i);
    CHECK_EQ(it.code, 0);
    CHECK_EQ(it.len, sizeof(int64_t));
    CHECK(it.data != NULL);
    CHECK(it.message != NULL && it.message[0] == '\0');
    int64_t got;
    memcpy(&got, it.data, sizeof got);
    CHECK_MSG(got == want, "item %zu: %lld, want %lld", i, (long long)got, (long long)want);
}

/* Every item of r is val(i)^2. */
static void check_squares(const mproc_results *r, size_t n)
{
    CHECK_EQ(mproc_results_count(r), n);
    for (size_t i = 0; i < n; i++)
        check_i64_item(r, i, val(i) * val(i));
}

/* An imap item that succeeded with val(i)^2 (or, for jobs, x^2 = i^2). */
static void check_i64_yield(const mproc_item *it, int64_t want)
{
    CHECK_MSG(it->code == 0, "item %zu: code %d", it->index, it->code);
    CHECK_EQ(it->len, sizeof(int64_t));
    CHECK(it->data != NULL);
    CHECK(it->message != NULL && it->message[0] == '\0');
    int64_t got;
    memcpy(&got, it->data, sizeof got);
    CHECK_MSG(got == want, "item %zu: %lld, want %lld", it->index, (long long)got,
              (long long)want);
}

/* What a job's task does, in this order: count itself started, wait for
 * `wait`, sleep, note whether cancel was requested, fail (or return
 * x * x, or result_len pattern bytes), count itself finished, set
 * `signal`. */
typedef struct job {
    int64_t x;
    int fail;               /* < 0: fail with it, message "job <x> failed" */
    unsigned sleep_us;
    unsigned result_len;    /* > 0: return pattern_bytes(x, result_len) */
    mproc_event *wait;
    mproc_event *signal;
    atomic_int *started;
    atomic_int *finished;
    atomic_int *stamp;      /* on failure: its place in the failure order (1, 2, ...) */
    atomic_int *saw_cancel; /* counts mproc_cancel_requested after `wait` */
} job;

static atomic_int fail_seq;

/* Byte k of the pattern result of job x. */
static unsigned char pattern_byte(int64_t x, size_t k)
{
    return (unsigned char)('a' + (size_t)(x * 13 + (int64_t)k) % 26);
}

static int job_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    CHECK_EQ(len, sizeof(job));
    const job *j = arg;
    if (j->started)
        atomic_fetch_add(j->started, 1);
    if (j->wait) {
        int rc = mproc_event_wait(j->wait, 6 * LONG_MS);
        CHECK_MSG(rc == 0, "job %lld: nobody let it go", (long long)j->x);
    }
    if (j->sleep_us)
        usleep(j->sleep_us);
    if (j->saw_cancel && mproc_cancel_requested(ctx))
        atomic_fetch_add(j->saw_cancel, 1);
    int rc;
    if (j->fail < 0) {
        if (j->stamp)
            atomic_store(j->stamp, atomic_fetch_add(&fail_seq, 1) + 1);
        rc = mproc_fail(ctx, j->fail, "job %lld failed", (long long)j->x);
    } else if (j->result_len > 0) {
        unsigned char *p = mproc_result_buffer(ctx, j->result_len);
        CHECK(p != NULL);
        for (size_t k = 0; k < j->result_len; k++)
            p[k] = pattern_byte(j->x, k);
        rc = 0;
    } else {
        int64_t y = j->x * j->x;
        rc = mproc_return(ctx, &y, sizeof y);
    }
    if (j->finished)
        atomic_fetch_add(j->finished, 1);
    if (j->signal)
        CHECK_OK(mproc_event_set(j->signal));
    return rc;
}

/* n jobs with x = i that just return i * i. */
static job *make_jobs(size_t n)
{
    job *jobs = calloc(n ? n : 1, sizeof *jobs);
    CHECK(jobs != NULL);
    for (size_t i = 0; i < n; i++)
        jobs[i].x = (int64_t)i;
    return jobs;
}

/* Job item i of r succeeded with i * i. */
static void check_job_ok(const mproc_results *r, size_t i)
{
    check_i64_item(r, i, (int64_t)i * (int64_t)i);
}

/* Item i of r failed with `code` and message `msg`. */
static void check_item_failed(const mproc_results *r, size_t i, int code, const char *msg)
{
    mproc_item it;
    int rc = mproc_results_get(r, i, &it);
    CHECK_MSG(rc == code, "item %zu: %d (%s), want %d (%s)", i, rc, test_errname(rc), code,
              test_errname(code));
    CHECK_EQ(it.index, i);
    CHECK_EQ(it.code, code);
    CHECK(it.message != NULL);
    CHECK_MSG(strcmp(it.message, msg) == 0, "item %zu: message \"%s\", want \"%s\"", i,
              it.message, msg);
}

/* Wait until item i's chunk has been accounted. */
static void wait_item_ready(const mproc_results *r, size_t i)
{
    mproc_item it;
    WAIT_UNTIL(mproc_results_get(r, i, &it) != -EAGAIN, LONG_MS);
}

/* Callbacks of map_async/apply_async: which ran, how often, with what. */
typedef struct cbinfo {
    atomic_int ok, err;
    atomic_int bad_userdata;
    _Atomic(mproc_future *) f_seen;
    atomic_int code_seen;
    atomic_int tid_seen;
} cbinfo;

static void cb_note(mproc_future *f, cbinfo *c)
{
    int code = 12345;
    CHECK_OK(mproc_future_error(f, &code, NULL)); /* finished when called */
    atomic_store(&c->code_seen, code);
    atomic_store(&c->f_seen, f);
    atomic_store(&c->tid_seen, (int)gettid());
}

static void ok_cb(mproc_future *f, void *userdata)
{
    cbinfo *c = userdata;
    cb_note(f, c);
    atomic_fetch_add(&c->ok, 1);
}

static void err_cb(mproc_future *f, void *userdata)
{
    cbinfo *c = userdata;
    cb_note(f, c);
    atomic_fetch_add(&c->err, 1);
}

/* Callbacks that only count (for stress loops sharing one cbinfo). */
static void ok_count_cb(mproc_future *f, void *userdata)
{
    (void)f;
    atomic_fetch_add(&((cbinfo *)userdata)->ok, 1);
}

static void err_count_cb(mproc_future *f, void *userdata)
{
    (void)f;
    atomic_fetch_add(&((cbinfo *)userdata)->err, 1);
}

/* ------------------------------------------------------------------ */
/* map: results in order, chunk sizes, n == 0                          */
/* ------------------------------------------------------------------ */

TEST(map_squares_chunksizes)
{
    const size_t n = 10000;
    int64_t *v = make_values(n);
    const size_t sizes[] = { 0, 1, 7, 1000, n - 1, n, n + 1, SIZE_MAX };
    for (unsigned workers = 1; workers <= 3; workers++) {
        mproc_executor *ex = make_ex(workers);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            mproc_results *r = NULL;
            mproc_map_opts o = { .chunksize = sizes[s] };
            CHECK_OK(mproc_map(ex, square_task, v, sizeof *v, n, &o, &r));
            CHECK(r != NULL);
            check_squares(r, n);
            mproc_results_destroy(r);
        }
        mproc_results *r = NULL;
        CHECK_OK(mproc_map(ex, square_task, v, sizeof *v, n, NULL, &r)); /* opts NULL */
        check_squares(r, n);
        mproc_results_destroy(r);
        mproc_executor_destroy(ex);
    }
    free(v);
}

/* Items of an odd size (25 bytes, unaligned): item i is at i * 25. */
typedef struct odd_item {
    char pad[13];
    char x[8];   /* an int64_t, unaligned */
    char tail[4];
} odd_item;

static int odd_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    CHECK_EQ(len, sizeof(odd_item));
    const odd_item *o = arg;
    CHECK(o->pad[0] == 'p' && o->tail[3] == 't');
    int64_t x;
    memcpy(&x, o->x, sizeof x);
    x *= x;
    return mproc_return(ctx, &x, sizeof x);
}

TEST(map_odd_sized_items)
{
    CHECK_EQ(sizeof(odd_item), 25);
    const size_t n = 777;
    odd_item *items = calloc(n, sizeof *items);
    CHECK(items != NULL);
    for (size_t i = 0; i < n; i++) {
        int64_t x = val(i);
        items[i].pad[0] = 'p';
        items[i].tail[3] = 't';
        memcpy(items[i].x, &x, sizeof x);
    }
    mproc_executor *ex = make_ex(2);
    const size_t sizes[] = { 0, 1, 5, 776 };
    for (size_t s = 0; s < 4; s++) {
        mproc_results *r;
        CHECK_OK(mproc_map(ex, odd_task, items, sizeof *items, n,
                           &(mproc_map_opts){ .chunksize = sizes[s] }, &r));
        check_squares(r, n);
        mproc_results_destroy(r);
    }
    free(items);
    mproc_executor_destroy(ex);
}

/* chunksize 0 picks ceil(n / (4 x workers)): observed through which
 * items become available while one chunk is held. */
static void check_auto_chunk(unsigned workers, size_t n, size_t held)
{
    size_t per = 4 * (size_t)workers;
    size_t cs = n / per + (n % per != 0);
    size_t lo = held / cs * cs, hi = lo + cs < n ? lo + cs : n;
    mproc_executor *ex = make_ex(workers);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0;
    job *jobs = make_jobs(n);
    jobs[held].wait = &go;
    jobs[held].started = &started;
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n, NULL, NULL, NULL, NULL, &r,
                             &done));
    WAIT_UNTIL(atomic_load(&started) == 1, LONG_MS);
    /* Every other chunk finishes (with one worker: those before it). */
    for (size_t i = 0; i < n; i++)
        if ((i < lo || i >= hi) && (workers > 1 || i < lo))
            wait_item_ready(r, i);
    mproc_item it;
    for (size_t i = lo; i < hi; i++)
        CHECK_RC(mproc_results_get(r, i, &it), -EAGAIN);
    if (lo > 0)
        CHECK_OK(mproc_results_get(r, lo - 1, &it));
    if (workers > 1 && hi < n)
        CHECK_OK(mproc_results_get(r, hi, &it));
    CHECK_OK(mproc_event_set(&go));
    CHECK_OK(mproc_future_result(done, LONG_MS, NULL, NULL));
    for (size_t i = 0; i < n; i++)
        check_job_ok(r, i);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(jobs);
}

TEST(map_auto_chunksize_like_python)
{
    check_auto_chunk(1, 10, 4);    /* chunks of 3: 3..5 held */
    check_auto_chunk(2, 100, 20);  /* chunks of 13: 13..25 held */
    check_auto_chunk(3, 7, 3);     /* chunks of 1 */
    check_auto_chunk(2, 64, 8);    /* chunks of 8: exactly 8..15 */
}

TEST(map_zero_items)
{
    mproc_executor *ex = make_ex(2);
    int64_t v[1] = { 3 };
    mproc_results *r = NOT_NULL(mproc_results);
    CHECK_OK(mproc_map(ex, never_task, NULL, sizeof(int64_t), 0, NULL, &r));
    CHECK(r != NULL && r != NOT_NULL(mproc_results));
    CHECK_EQ(mproc_results_count(r), 0);
    mproc_item it;
    CHECK_RC(mproc_results_get(r, 0, &it), -EINVAL);
    mproc_results_destroy(r);
    /* item_size 0 and an explicit chunk size are fine with no items. */
    CHECK_OK(mproc_map(ex, never_task, NULL, 0, 0, &(mproc_map_opts){ .chunksize = 5 }, &r));
    CHECK_EQ(mproc_results_count(r), 0);
    mproc_results_destroy(r);
    CHECK_OK(mproc_map(ex, never_task, v, sizeof v[0], 0,
                       &(mproc_map_opts){ .flags = MPROC_COPY_ARG }, &r));
    CHECK_EQ(mproc_results_count(r), 0);
    mproc_results_destroy(r);

    /* map_async: done already, callback exactly once. */
    cbinfo c = { 0 };
    mproc_future *done = NULL;
    CHECK_OK(mproc_map_async(ex, never_task, NULL, 8, 0, NULL, ok_cb, err_cb, &c, &r, &done));
    CHECK(done != NULL);
    CHECK(mproc_future_done(done));
    CHECK_OK(mproc_future_result(done, 0, NULL, NULL));
    WAIT_UNTIL(atomic_load(&c.ok) == 1, LONG_MS);
    CHECK(atomic_load(&c.f_seen) == done);
    mproc_future_release(done);
    mproc_results_destroy(r);

    /* imap / imap_unordered: over at once. */
    for (int ordered = 0; ordered < 2; ordered++) {
        mproc_imap_iter *iter = NOT_NULL(mproc_imap_iter);
        CHECK_OK(ordered ? mproc_imap(ex, never_task, NULL, 8, 0, NULL, &iter)
                         : mproc_imap_unordered(ex, never_task, NULL, 8, 0, NULL, &iter));
        CHECK(iter != NULL && iter != NOT_NULL(mproc_imap_iter));
        CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
        CHECK_RC(mproc_imap_next(iter, -1, &it), 0);
        mproc_imap_destroy(iter);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok), 1);
    CHECK_EQ(atomic_load(&c.err), 0);
    CHECK_EQ(atomic_load(&never_ran), 0);
}

/* ------------------------------------------------------------------ */
/* failures                                                            */
/* ------------------------------------------------------------------ */

TEST(map_item_fails_in_the_middle)
{
    const size_t n = 1000, bad = 500;
    job *jobs = make_jobs(n);
    jobs[bad].fail = -EIO;
    mproc_executor *ex = make_ex(2);
    const size_t sizes[] = { 0, 1, 7, n };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        mproc_results *r = NULL;
        CHECK_RC(mproc_map(ex, job_task, jobs, sizeof *jobs, n,
                           &(mproc_map_opts){ .chunksize = sizes[s] }, &r),
                 -EIO);
        CHECK(r != NULL);
        CHECK_EQ(mproc_results_count(r), n);
        check_item_failed(r, bad, -EIO, "job 500 failed");
        for (size_t i = 0; i < n; i++)
            if (i != bad)
                check_job_ok(r, i);
        mproc_results_destroy(r);
    }
    /* The same through map_async's done future. */
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n, NULL, NULL, NULL, NULL, &r,
                             &done));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), -EIO);
    int code = 0;
    CHECK_OK(mproc_future_error(done, &code, NULL));
    CHECK_EQ(code, -EIO);
    check_item_failed(r, bad, -EIO, "job 500 failed");
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(jobs);
}

/* What counts as failure, and what the message holds. */
static int variety_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    char longmsg[400];
    switch (x % 6) {
    case 0: /* plain failure, no message */
        return -EPERM;
    case 1: /* positive return: success */
        return mproc_return(ctx, &x, sizeof x) == 0 ? 7 : -1;
    case 2: /* a message longer than the 255 bytes kept */
        memset(longmsg, 'm', sizeof longmsg - 1);
        longmsg[sizeof longmsg - 1] = '\0';
        return mproc_fail(ctx, -E2BIG, "%s", longmsg);
    case 3: /* mproc_fail with a code >= 0 is no failure and keeps no message */
        return mproc_fail(ctx, 0, "not a failure %lld", (long long)x);
    case 4: /* an mproc error code */
        return mproc_fail(ctx, MPROC_ECANCELLED, "gave up on %lld", (long long)x);
    default:
        return mproc_return(ctx, &x, sizeof x);
    }
}

TEST(map_failure_codes_and_messages)
{
    const size_t n = 600;
    int64_t *v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    mproc_executor *ex = make_ex(2);
    mproc_results *r;
    /* Item 0 is the first failure (-EPERM). */
    CHECK_RC(mproc_map(ex, variety_task, v, sizeof *v, n, &(mproc_map_opts){ .chunksize = 4 },
                       &r),
             -EPERM);
    char longmsg[256];
    memset(longmsg, 'm', 255);
    longmsg[255] = '\0';
    for (size_t i = 0; i < n; i++) {
        mproc_item it;
        int rc = mproc_results_get(r, i, &it);
        char buf[64];
        switch (i % 6) {
        case 0:
            check_item_failed(r, i, -EPERM, "");
            break;
        case 2:
            check_item_failed(r, i, -E2BIG, longmsg);
            break;
        case 4:
            snprintf(buf, sizeof buf, "gave up on %zu", i);
            check_item_failed(r, i, MPROC_ECANCELLED, buf);
            break;
        case 3:
            CHECK_EQ(rc, 0);
            CHECK_EQ(it.len, 0);
            CHECK_MSG(strcmp(it.message, "") == 0, "item %zu: message \"%s\"", i, it.message);
            break;
        default:
            check_i64_item(r, i, (int64_t)i);
            break;
        }
    }
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(v);
}

/* Several failures: the code of the first in item order wins, even when
 * a later item failed first in time. */
static void check_first_failure_order(size_t chunksize)
{
    const size_t n = 100, early = 10, late = 60, later = 80;
    mproc_event late_failed;
    CHECK_OK(mproc_event_init(&late_failed, 0));
    atomic_int stamp_early = 0, stamp_late = 0;
    job *jobs = make_jobs(n);
    jobs[early] = (job){ .x = early, .fail = -EIO, .wait = &late_failed, .stamp = &stamp_early };
    jobs[late] = (job){ .x = late, .fail = -EPERM, .signal = &late_failed, .stamp = &stamp_late };
    jobs[later] = (job){ .x = later, .fail = -ENOENT };
    mproc_executor *ex = make_ex(2);
    cbinfo c = { 0 };
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = chunksize }, ok_cb, err_cb, &c, &r,
                             &done));
    CHECK_RC(mproc_future_result(done, 6 * LONG_MS, NULL, NULL), -EIO);
    /* The later item did fail first. */
    CHECK(atomic_load(&stamp_late) > 0);
    CHECK(atomic_load(&stamp_early) > atomic_load(&stamp_late));
    check_item_failed(r, early, -EIO, "job 10 failed");
    check_item_failed(r, late, -EPERM, "job 60 failed");
    check_item_failed(r, later, -ENOENT, "job 80 failed");
    for (size_t i = 0; i < n; i++)
        if (i != early && i != late && i != later)
            check_job_ok(r, i);
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    CHECK_EQ(atomic_load(&c.code_seen), -EIO);
    mproc_future_release(done);
    mproc_results_destroy(r);

    /* And the blocking call returns the same code. */
    CHECK_OK(mproc_event_clear(&late_failed));
    CHECK_RC(mproc_map(ex, job_task, jobs, sizeof *jobs, n,
                       &(mproc_map_opts){ .chunksize = chunksize }, &r),
             -EIO);
    check_item_failed(r, late, -EPERM, "job 60 failed");
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok), 0);
    CHECK_EQ(atomic_load(&c.err), 1);
    free(jobs);
}

TEST(map_first_failure_in_item_order_chunks_of_1)
{
    check_first_failure_order(1);
}

TEST(map_first_failure_in_item_order_chunks_of_7)
{
    check_first_failure_order(7);
}

/* ------------------------------------------------------------------ */
/* result sizes                                                        */
/* ------------------------------------------------------------------ */

/* The result of item x of bytes_task: 1 KiB strings for x % 3 == 0,
 * else x % 20 bytes (across the 8-byte inline limit, and 0). */
static size_t bytes_len(int64_t x)
{
    return x % 3 == 0 ? 1024 : (size_t)(x % 20);
}

static void bytes_fill(int64_t x, unsigned char *p, size_t len)
{
    if (len == 1024) {
        int k = snprintf((char *)p, len, "item %lld: ", (long long)x);
        for (size_t i = (size_t)k; i < len - 1; i++)
            p[i] = pattern_byte(x, i);
        p[len - 1] = '\0';
    } else {
        for (size_t i = 0; i < len; i++)
            p[i] = pattern_byte(x, i);
    }
}

/* Task: an int64_t x in, bytes_len(x) bytes out; some items first set
 * another result that the final one replaces. */
static int bytes_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    unsigned char junk[100];
    memset(junk, 'j', sizeof junk);
    if (x % 5 == 1) /* a long result first, replaced */
        CHECK_OK(mproc_return(ctx, junk, sizeof junk));
    else if (x % 5 == 2) /* a short one first, replaced */
        CHECK_OK(mproc_return(ctx, junk, 3));
    size_t n = bytes_len(x);
    unsigned char *p = mproc_result_buffer(ctx, n);
    CHECK(p != NULL || n == 0);
    if (n > 0)
        bytes_fill(x, p, n);
    return 0;
}

TEST(map_results_of_many_sizes)
{
    const size_t n = 3000;
    int64_t *v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    unsigned char want[1024];
    mproc_executor *ex = make_ex(2);
    const size_t sizes[] = { 0, 1, 5 };
    for (size_t s = 0; s < 3; s++) {
        mproc_results *r;
        CHECK_OK(mproc_map(ex, bytes_task, v, sizeof *v, n,
                           &(mproc_map_opts){ .chunksize = sizes[s] }, &r));
        for (size_t i = 0; i < n; i++) {
            mproc_item it;
            CHECK_OK(mproc_results_get(r, i, &it));
            size_t len = bytes_len((int64_t)i);
            CHECK_EQ(it.len, len);
            if (len > 0) {
                CHECK(it.data != NULL);
                bytes_fill((int64_t)i, want, len);
                CHECK_MSG(memcmp(it.data, want, len) == 0, "item %zu: wrong bytes", i);
            }
            if (len == 1024)
                CHECK_EQ(strlen(it.data), 1023);
        }
        mproc_results_destroy(r);
    }
    /* The same through imap: yields point into the iterator. */
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(ex, bytes_task, v, sizeof *v, n, &(mproc_map_opts){ .chunksize = 3 },
                        &iter));
    mproc_item it;
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK_EQ(it.index, i);
        size_t len = bytes_len((int64_t)i);
        CHECK_EQ(it.len, len);
        bytes_fill((int64_t)i, want, len);
        CHECK(len == 0 || memcmp(it.data, want, len) == 0);
    }
    CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
    mproc_imap_destroy(iter);
    mproc_executor_destroy(ex);
    free(v);
}

/* Task: no result at all, or an empty one. */
static int empty_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    if (x % 3 == 1)
        return mproc_return(ctx, NULL, 0);
    if (x % 3 == 2)
        return mproc_result_buffer(ctx, 0) ? 0 : -ENOMEM;
    /* NULL data with a length is refused, and leaves no result. */
    return mproc_return(ctx, NULL, 5) == -EINVAL ? 0 : -EPROTO;
}

TEST(map_results_of_size_zero)
{
    const size_t n = 300;
    int64_t *v = make_values(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    mproc_executor *ex = make_ex(2);
    mproc_results *r;
    CHECK_OK(mproc_map(ex, empty_task, v, sizeof *v, n, &(mproc_map_opts){ .chunksize = 2 }, &r));
    for (size_t i = 0; i < n; i++) {
        mproc_item it;
        CHECK_OK(mproc_results_get(r, i, &it));
        CHECK_EQ(it.index, i);
        CHECK_EQ(it.len, 0);
        CHECK_EQ(it.code, 0);
    }
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(v);
}

/* ------------------------------------------------------------------ */
/* map_async                                                           */
/* ------------------------------------------------------------------ */

/* MPROC_COPY_ARG: the caller may overwrite (and free) its array as soon
 * as map_async returns. The workers are held, so no chunk has started. */
TEST(map_async_copy_arg)
{
    const size_t n = 2000;
    mproc_executor *ex = make_ex(2);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 2, NULL);
    int64_t *v = make_values(n);
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n,
                             &(mproc_map_opts){ .chunksize = 7, .flags = MPROC_COPY_ARG }, NULL,
                             NULL, NULL, &r, &done));
    int64_t *w = make_values(n);
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(ex, square_task, w, sizeof *w, n,
                        &(mproc_map_opts){ .flags = MPROC_COPY_ARG }, &iter));
    for (size_t i = 0; i < n; i++)
        v[i] = w[i] = -1;
    free(v);
    free(w);
    CHECK_RC(mproc_future_result(done, 0, NULL, NULL), -ETIMEDOUT);
    CHECK_OK(mproc_event_set(&h.go));
    CHECK_OK(mproc_future_result(done, LONG_MS, NULL, NULL));
    check_squares(r, n);
    mproc_item it;
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK_EQ(it.index, i);
        check_i64_yield(&it, val(i) * val(i));
    }
    CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 0);
    mproc_imap_destroy(iter);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
}

TEST(map_async_callback_on_success)
{
    const size_t n = 500;
    int64_t *v = make_values(n);
    mproc_executor *ex = make_ex(2);
    cbinfo c = { 0 };
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n,
                             &(mproc_map_opts){ .chunksize = 7 }, ok_cb, err_cb, &c, &r, &done));
    CHECK_OK(mproc_future_result(done, LONG_MS, NULL, NULL));
    WAIT_UNTIL(atomic_load(&c.ok) == 1, LONG_MS);
    CHECK(atomic_load(&c.f_seen) == done);
    CHECK_EQ(atomic_load(&c.code_seen), 0);
    check_squares(r, n);
    /* error_callback alone on success, callback alone: only what fits runs. */
    cbinfo c2 = { 0 }, c3 = { 0 };
    mproc_future *d2, *d3;
    mproc_results *r2, *r3;
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n, NULL, NULL, err_cb, &c2, &r2,
                             &d2));
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n, NULL, ok_cb, NULL, &c3, &r3,
                             &d3));
    CHECK_OK(mproc_future_result(d2, LONG_MS, NULL, NULL));
    CHECK_OK(mproc_future_result(d3, LONG_MS, NULL, NULL));
    WAIT_UNTIL(atomic_load(&c3.ok) == 1, LONG_MS);
    mproc_future_release(d2);
    mproc_future_release(d3);
    mproc_results_destroy(r2);
    mproc_results_destroy(r3);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok), 1);
    CHECK_EQ(atomic_load(&c.err), 0);
    CHECK_EQ(atomic_load(&c2.ok) + atomic_load(&c2.err), 0);
    CHECK_EQ(atomic_load(&c3.ok), 1);
    CHECK_EQ(atomic_load(&c3.err), 0);
    free(v);
}

TEST(map_async_error_callback_on_failure)
{
    const size_t n = 500;
    job *jobs = make_jobs(n);
    jobs[123].fail = -EIO;
    jobs[321].fail = -EPERM;
    mproc_executor *ex = make_ex(2);
    cbinfo c = { 0 }, c2 = { 0 };
    mproc_results *r, *r2;
    mproc_future *done, *d2;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = 3 }, ok_cb, err_cb, &c, &r, &done));
    /* Only a callback: nothing runs on failure. */
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n, NULL, ok_cb, NULL, &c2, &r2,
                             &d2));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), -EIO);
    CHECK_RC(mproc_future_result(d2, LONG_MS, NULL, NULL), -EIO);
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    CHECK(atomic_load(&c.f_seen) == done);
    CHECK_EQ(atomic_load(&c.code_seen), -EIO);
    check_item_failed(r, 123, -EIO, "job 123 failed");
    check_item_failed(r, 321, -EPERM, "job 321 failed");
    mproc_future_release(done);
    mproc_future_release(d2);
    mproc_results_destroy(r);
    mproc_results_destroy(r2);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok), 0);
    CHECK_EQ(atomic_load(&c.err), 1);
    CHECK_EQ(atomic_load(&c2.ok) + atomic_load(&c2.err), 0);
    free(jobs);
}

/* Items whose chunk is not finished report -EAGAIN; the others are there
 * already. */
TEST(map_async_results_pending_chunk)
{
    const size_t n = 40, cs = 4, held = 5; /* chunk 1: items 4..7 */
    mproc_executor *ex = make_ex(2);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0;
    job *jobs = make_jobs(n);
    jobs[held].wait = &go;
    jobs[held].started = &started;
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = cs }, NULL, NULL, NULL, &r, &done));
    WAIT_UNTIL(atomic_load(&started) == 1, LONG_MS);
    for (size_t i = 0; i < n; i++)
        if (i / cs != held / cs)
            wait_item_ready(r, i);
    for (size_t i = 0; i < n; i++)
        if (i / cs != held / cs)
            check_job_ok(r, i);
    mproc_item it;
    for (size_t i = 4; i < 8; i++) /* item 4 ran, but its chunk did not finish */
        CHECK_RC(mproc_results_get(r, i, &it), -EAGAIN);
    CHECK(!mproc_future_done(done));
    CHECK_RC(mproc_future_result(done, 0, NULL, NULL), -ETIMEDOUT);
    CHECK_RC(mproc_future_error(done, NULL, NULL), -EAGAIN);
    CHECK_OK(mproc_event_set(&go));
    CHECK_OK(mproc_future_result(done, LONG_MS, NULL, NULL));
    for (size_t i = 0; i < n; i++)
        check_job_ok(r, i);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(jobs);
}

/* Reading finished items (some with messages) while other chunks are
 * still failing and attaching messages. */
TEST(map_async_read_while_others_fail)
{
    const size_t n = 400;
    mproc_executor *ex = make_ex(3);
    long rounds = test_scaled_stress(40);
    for (long round = 0; round < rounds; round++) {
        job *jobs = make_jobs(n);
        for (size_t i = 1; i < n; i += 2)
            jobs[i].fail = -EIO;
        mproc_results *r;
        mproc_future *done;
        CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                                 &(mproc_map_opts){ .chunksize = 1 }, NULL, NULL, NULL, &r,
                                 &done));
        bool *seen = calloc(n, sizeof *seen);
        CHECK(seen != NULL);
        size_t nseen = 0;
        char buf[64];
        int64_t end = test_now_ms() + 6 * LONG_MS;
        while (nseen < n) {
            CHECK_MSG(test_now_ms() < end, "round %ld: only %zu items finished", round, nseen);
            for (size_t i = 0; i < n; i++) {
                mproc_item it;
                int rc = mproc_results_get(r, i, &it);
                if (rc == -EAGAIN)
                    continue;
                if (i % 2) {
                    snprintf(buf, sizeof buf, "job %zu failed", i);
                    CHECK_EQ(rc, -EIO);
                    CHECK(strcmp(it.message, buf) == 0);
                } else {
                    CHECK_EQ(rc, 0);
                    CHECK(it.message[0] == '\0');
                }
                if (!seen[i]) {
                    seen[i] = true;
                    nseen++;
                }
            }
        }
        CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), -EIO);
        mproc_future_release(done);
        mproc_results_destroy(r);
        free(seen);
        free(jobs);
    }
    mproc_executor_destroy(ex);
}

/* The first message of a map is attached (item 1 fails) while the
 * caller keeps reading item 0, which finished before: results_get must
 * not race with it (a ThreadSanitizer check). */
TEST(map_async_read_while_first_message_attached)
{
    mproc_executor *ex = make_ex(2);
    long rounds = test_scaled_stress(400);
    for (long round = 0; round < rounds; round++) {
        mproc_event go;
        CHECK_OK(mproc_event_init(&go, 0));
        /* The sleep only widens the window in which a race shows. */
        job jobs[2] = { { .x = 0 }, { .x = 1, .fail = -EIO, .wait = &go, .sleep_us = 300 } };
        mproc_results *r;
        mproc_future *done;
        CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof jobs[0], 2,
                                 &(mproc_map_opts){ .chunksize = 1 }, NULL, NULL, NULL, &r,
                                 &done));
        wait_item_ready(r, 0);
        check_job_ok(r, 0);
        CHECK_OK(mproc_event_set(&go));
        mproc_item it;
        int64_t end = test_now_ms() + LONG_MS;
        do {
            CHECK_MSG(test_now_ms() < end, "item 1 never finished");
            check_job_ok(r, 0);
        } while (mproc_results_get(r, 1, &it) == -EAGAIN);
        check_item_failed(r, 1, -EIO, "job 1 failed");
        CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), -EIO);
        mproc_future_release(done);
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex);
}

/* Many small maps with callbacks; the caller drops its results and done
 * future at once, often before the map finishes. Each map calls exactly
 * one of its callbacks, exactly once. */
TEST(map_async_callbacks_stress)
{
    mproc_executor *ex = make_ex(2);
    cbinfo c = { 0 };
    long loops = test_scaled_stress(10000);
    int want_ok = 0, want_err = 0;
    for (long i = 0; i < loops; i++) {
        size_t n = (size_t)(i % 5);
        job jobs[4];
        for (size_t k = 0; k < 4; k++)
            jobs[k] = (job){ .x = (int64_t)k, .result_len = k == 2 ? 40 : 0 };
        bool fails = n > 0 && i % 3 == 0;
        if (fails)
            jobs[n - 1].fail = -EIO;
        fails ? want_err++ : want_ok++;
        mproc_results *r;
        mproc_future *done;
        CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof jobs[0], n,
                                 &(mproc_map_opts){ .chunksize = 1 + (size_t)(i % 2),
                                                    .flags = MPROC_COPY_ARG },
                                 ok_count_cb, err_count_cb, &c, &r, &done));
        if (i % 4 == 0)
            CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), fails ? -EIO : 0);
        mproc_future_release(done);
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex); /* waits for every chunk and callback */
    CHECK_EQ(atomic_load(&c.ok), want_ok);
    CHECK_EQ(atomic_load(&c.err), want_err);
}

/* The callback of map_async sees every result (all chunks are accounted
 * before it runs) and may drop the results itself. */
typedef struct consumer {
    _Atomic(mproc_results *) r;
    size_t n;
    atomic_int calls, complete;
} consumer;

static void consume_cb(mproc_future *f, void *userdata)
{
    (void)f;
    consumer *c = userdata;
    mproc_results *r = atomic_exchange(&c->r, NULL);
    CHECK(r != NULL);
    int ok = 1;
    for (size_t i = 0; i < c->n; i++) {
        mproc_item it;
        if (mproc_results_get(r, i, &it) != 0 || it.len != sizeof(int64_t) ||
            memcmp(it.data, &(int64_t){ val(i) * val(i) }, sizeof(int64_t)) != 0)
            ok = 0;
    }
    mproc_results_destroy(r);
    atomic_store(&c->complete, ok);
    atomic_fetch_add(&c->calls, 1);
}

TEST(map_async_callback_reads_and_drops_results)
{
    const size_t n = 1000;
    int64_t *v = make_values(n);
    mproc_executor *ex = make_ex(2);
    for (int round = 0; round < 20; round++) {
        hold h;
        hold_init(&h);
        hold_workers(ex, &h, 2, NULL); /* so r is stored before the map ends */
        consumer c = { .n = n };
        mproc_results *r;
        CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n,
                                 &(mproc_map_opts){ .chunksize = (size_t)round + 1 }, consume_cb,
                                 NULL, &c, &r, NULL));
        atomic_store(&c.r, r);
        CHECK_OK(mproc_event_set(&h.go));
        WAIT_UNTIL(atomic_load(&c.calls) == 1, LONG_MS);
        CHECK(atomic_load(&c.complete));
        WAIT_UNTIL(atomic_load(&h.finished) == 2, LONG_MS);
    }
    mproc_executor_destroy(ex);
    free(v);
}

/* Destroying the executor runs the queued map to the end; its results,
 * done future and iterators stay usable after. */
TEST(results_outlive_executor)
{
    const size_t n = 300;
    int64_t *v = make_values(n);
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 1, NULL);
    mproc_results *r;
    mproc_future *done;
    mproc_imap_iter *iter, *uiter;
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n, &(mproc_map_opts){ .chunksize = 7 },
                             NULL, NULL, NULL, &r, &done));
    CHECK_OK(mproc_imap(ex, square_task, v, sizeof *v, n, NULL, &iter));
    CHECK_OK(mproc_imap_unordered(ex, square_task, v, sizeof *v, n, NULL, &uiter));
    waker w = { .tid = gettid(), .ev = &h.go };
    pthread_t t = test_start_thread(waker_main, &w);
    mproc_executor_destroy(ex); /* waits for the held task and the maps */
    test_join_thread(t);
    CHECK(mproc_future_done(done));
    CHECK_OK(mproc_future_result(done, 0, NULL, NULL));
    check_squares(r, n);
    mproc_item it;
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(mproc_imap_next(iter, 0, &it), 1);
        CHECK_EQ(it.index, i);
        check_i64_yield(&it, val(i) * val(i));
        CHECK_RC(mproc_imap_next(uiter, 0, &it), 1);
        check_i64_yield(&it, val(it.index) * val(it.index));
    }
    CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
    CHECK_RC(mproc_imap_next(uiter, 0, &it), 0);
    mproc_imap_destroy(iter);
    mproc_imap_destroy(uiter);
    mproc_future_release(done);
    mproc_results_destroy(r);
    free(v);
}

/* More chunks than the injection ring holds (65536): the rest go to the
 * overflow list, in order; shutdown(cancel_futures) reaches them too. */
TEST_T(map_more_chunks_than_the_ring, 60)
{
    const size_t n = 80000;
    int64_t *v = make_values(n);
    for (int cancel = 0; cancel < 2; cancel++) {
        mproc_executor *ex = make_ex(2);
        hold h;
        hold_init(&h);
        hold_workers(ex, &h, 2, NULL);
        mproc_results *r;
        mproc_future *done;
        mproc_imap_iter *iter;
        mproc_map_opts o = { .chunksize = 1 };
        CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n, &o, NULL, NULL, NULL, &r,
                                 &done));
        CHECK_OK(mproc_imap(ex, square_task, v, sizeof *v, n, &o, &iter));
        if (cancel)
            CHECK_OK(mproc_executor_shutdown(ex, false, true));
        CHECK_OK(mproc_event_set(&h.go));
        CHECK_RC(mproc_future_result(done, 6 * LONG_MS, NULL, NULL),
                 cancel ? MPROC_ECANCELLED : 0);
        mproc_item it;
        for (size_t i = 0; i < n; i++) {
            if (cancel) {
                CHECK_RC(mproc_results_get(r, i, &it), MPROC_ECANCELLED);
            } else {
                check_i64_item(r, i, val(i) * val(i));
            }
            CHECK_RC(mproc_imap_next(iter, 6 * LONG_MS, &it), 1);
            CHECK_EQ(it.index, i);
            CHECK_EQ(it.code, cancel ? MPROC_ECANCELLED : 0);
        }
        CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
        mproc_imap_destroy(iter);
        mproc_future_release(done);
        mproc_results_destroy(r);
        mproc_executor_destroy(ex);
    }
    free(v);
}

/* ------------------------------------------------------------------ */
/* imap / imap_unordered                                               */
/* ------------------------------------------------------------------ */

/* n jobs that sleep 0-2 ms each. */
static job *random_jobs(size_t n, uint64_t seed)
{
    job *jobs = make_jobs(n);
    for (size_t i = 0; i < n; i++)
        jobs[i].sleep_us = (unsigned)(test_xorshift(&seed) % 2001);
    return jobs;
}

TEST(imap_in_order_under_random_durations)
{
    const size_t n = (size_t)test_scaled(240);
    job *jobs = random_jobs(n, 0x1234567);
    mproc_executor *ex = make_ex(3);
    const size_t sizes[] = { 1, 4, 0 };
    for (size_t s = 0; s < 3; s++) {
        mproc_imap_iter *iter;
        CHECK_OK(mproc_imap(ex, job_task, jobs, sizeof *jobs, n,
                            &(mproc_map_opts){ .chunksize = sizes[s] }, &iter));
        mproc_item it;
        for (size_t i = 0; i < n; i++) {
            CHECK_RC(mproc_imap_next(iter, 6 * LONG_MS, &it), 1);
            CHECK_EQ(it.index, i);
            check_i64_yield(&it, (int64_t)i * (int64_t)i);
        }
        CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
        CHECK_RC(mproc_imap_next(iter, -1, &it), 0);
        mproc_imap_destroy(iter);
    }
    mproc_executor_destroy(ex);
    free(jobs);
}

TEST(imap_unordered_yields_each_once)
{
    const size_t n = (size_t)test_scaled(240);
    job *jobs = random_jobs(n, 0x7654321);
    mproc_executor *ex = make_ex(3);
    const size_t sizes[] = { 1, 4, 0 };
    for (size_t s = 0; s < 3; s++) {
        mproc_imap_iter *iter;
        CHECK_OK(mproc_imap_unordered(ex, job_task, jobs, sizeof *jobs, n,
                                      &(mproc_map_opts){ .chunksize = sizes[s] }, &iter));
        bool *seen = calloc(n, sizeof *seen);
        CHECK(seen != NULL);
        mproc_item it;
        for (size_t k = 0; k < n; k++) {
            CHECK_RC(mproc_imap_next(iter, 6 * LONG_MS, &it), 1);
            CHECK(it.index < n);
            CHECK_MSG(!seen[it.index], "item %zu yielded twice", it.index);
            seen[it.index] = true;
            check_i64_yield(&it, (int64_t)it.index * (int64_t)it.index);
        }
        CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
        CHECK_RC(mproc_imap_next(iter, -1, &it), 0);
        mproc_imap_destroy(iter);
        free(seen);
    }
    mproc_executor_destroy(ex);
    free(jobs);
}

/* imap_unordered yields finished chunks first: item 0 is held, the rest
 * come out, then the iterator times out, then item 0 arrives. */
TEST(imap_unordered_yields_in_completion_order)
{
    const size_t n = 5;
    mproc_executor *ex = make_ex(2);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    job *jobs = make_jobs(n);
    jobs[0].wait = &go;
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap_unordered(ex, job_task, jobs, sizeof *jobs, n,
                                  &(mproc_map_opts){ .chunksize = 1 }, &iter));
    bool seen[5] = { false };
    mproc_item it;
    for (size_t k = 1; k < n; k++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK(it.index >= 1 && it.index < n);
        CHECK(!seen[it.index]);
        seen[it.index] = true;
        check_i64_yield(&it, (int64_t)it.index * (int64_t)it.index);
    }
    CHECK_TIMES_OUT(mproc_imap_next(iter, 0, &it), 0);
    CHECK_TIMES_OUT(mproc_imap_next(iter, 20, &it), 20);
    CHECK_OK(mproc_event_set(&go));
    CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
    CHECK_EQ(it.index, 0);
    check_i64_yield(&it, 0);
    CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
    mproc_imap_destroy(iter);
    mproc_executor_destroy(ex);
    free(jobs);
}

/* imap waits for the held chunk even though later ones are done: it times
 * out, then a blocking next is woken when the chunk arrives. */
TEST(imap_next_timeout_then_arrives)
{
    const size_t n = 9, cs = 3;
    mproc_executor *ex = make_ex(2);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int finished = 0;
    job *jobs = make_jobs(n);
    for (size_t i = 0; i < n; i++)
        jobs[i].finished = &finished;
    jobs[4].wait = &go; /* chunk 1 */
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(ex, job_task, jobs, sizeof *jobs, n, &(mproc_map_opts){ .chunksize = cs },
                        &iter));
    mproc_item it;
    for (size_t i = 0; i < 3; i++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK_EQ(it.index, i);
    }
    WAIT_UNTIL(atomic_load(&finished) == (int)n - 2, LONG_MS); /* all but 4 and 5 */
    CHECK_TIMES_OUT(mproc_imap_next(iter, 0, &it), 0);
    CHECK_TIMES_OUT(mproc_imap_next(iter, 30, &it), 30);
    CHECK_RC(mproc_imap_next(iter, -2, &it), -EINVAL);
    /* Blocked in next(-1) when the chunk arrives. */
    waker w = { .tid = gettid(), .ev = &go };
    pthread_t t = test_start_thread(waker_main, &w);
    CHECK_RC(mproc_imap_next(iter, -1, &it), 1);
    test_join_thread(t);
    CHECK_EQ(it.index, 3);
    check_i64_yield(&it, 9);
    for (size_t i = 4; i < n; i++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK_EQ(it.index, i);
        check_i64_yield(&it, (int64_t)(i * i));
    }
    CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 0);
    mproc_imap_destroy(iter);
    mproc_executor_destroy(ex);
    free(jobs);
}

/* A failed item is yielded in its place and iteration goes on. */
TEST(imap_yields_failed_items)
{
    const size_t n = 50;
    job *jobs = make_jobs(n);
    jobs[17].fail = -EIO;
    jobs[30].fail = -EPERM;
    mproc_executor *ex = make_ex(2);
    for (int ordered = 0; ordered < 2; ordered++) {
        mproc_imap_iter *iter;
        mproc_map_opts o = { .chunksize = 4 };
        CHECK_OK(ordered ? mproc_imap(ex, job_task, jobs, sizeof *jobs, n, &o, &iter)
                         : mproc_imap_unordered(ex, job_task, jobs, sizeof *jobs, n, &o, &iter));
        bool seen[50] = { false };
        mproc_item it;
        for (size_t k = 0; k < n; k++) {
            CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
            if (ordered)
                CHECK_EQ(it.index, k);
            CHECK(it.index < n && !seen[it.index]);
            seen[it.index] = true;
            if (it.index == 17) {
                CHECK_EQ(it.code, -EIO);
                CHECK(strcmp(it.message, "job 17 failed") == 0);
            } else if (it.index == 30) {
                CHECK_EQ(it.code, -EPERM);
                CHECK(strcmp(it.message, "job 30 failed") == 0);
            } else {
                check_i64_yield(&it, (int64_t)(it.index * it.index));
            }
        }
        CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
        mproc_imap_destroy(iter);
    }
    mproc_executor_destroy(ex);
    free(jobs);
}

/* ------------------------------------------------------------------ */
/* dropping results and iterators while chunks run                     */
/* ------------------------------------------------------------------ */

/* Jobs that make heap results and messages, chunk 2 (items 8..11) held. */
static job *held_jobs(size_t n, mproc_event *go, atomic_int *started)
{
    job *jobs = make_jobs(n);
    for (size_t i = 0; i < n; i++)
        jobs[i].result_len = i % 2 ? 100 : 4;
    jobs[3].fail = -EIO;
    jobs[40].fail = -EPERM;
    jobs[9].wait = go;
    jobs[9].started = started;
    return jobs;
}

TEST(results_destroyed_while_chunks_run)
{
    const size_t n = 64;
    mproc_executor *ex = make_ex(2);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0;
    job *jobs = held_jobs(n, &go, &started);
    cbinfo c = { 0 };
    /* 1: results dropped early, done future kept. */
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = 4 }, ok_cb, err_cb, &c, &r, &done));
    WAIT_UNTIL(atomic_load(&started) == 1, LONG_MS);
    mproc_results_destroy(r);
    CHECK_OK(mproc_event_set(&go));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), -EIO);
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    mproc_future_release(done);
    /* 2: results and done future dropped early, callbacks still run. */
    CHECK_OK(mproc_event_clear(&go));
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = 4 }, ok_cb, err_cb, &c, &r, &done));
    WAIT_UNTIL(atomic_load(&started) == 2, LONG_MS);
    mproc_future_release(done);
    mproc_results_destroy(r);
    CHECK_OK(mproc_event_set(&go));
    WAIT_UNTIL(atomic_load(&c.err) == 2, LONG_MS);
    /* 3: nothing kept at all. */
    CHECK_OK(mproc_event_clear(&go));
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = 4 }, NULL, NULL, NULL, &r, NULL));
    WAIT_UNTIL(atomic_load(&started) == 3, LONG_MS);
    mproc_results_destroy(r);
    CHECK_OK(mproc_event_set(&go));
    mproc_executor_destroy(ex); /* waits for the chunks */
    CHECK_EQ(atomic_load(&c.err), 2);
    CHECK_EQ(atomic_load(&c.ok), 0);
    free(jobs);
}

/* An iterator dropped after a few items, the rest still held: the map's
 * chunks finish on their own. One worker: a second map, queued behind
 * them, proves they are done. */
TEST(imap_destroyed_while_chunks_run)
{
    const size_t n = 64;
    mproc_executor *ex = make_ex(1);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0;
    job *jobs = held_jobs(n, &go, &started);
    int64_t *v = make_values(100);
    for (int ordered = 0; ordered < 2; ordered++) {
        for (int consume = 0; consume < 2; consume++) {
            CHECK_OK(mproc_event_clear(&go));
            int base = atomic_load(&started);
            mproc_imap_iter *iter;
            mproc_map_opts o = { .chunksize = 4 };
            CHECK_OK(ordered ? mproc_imap(ex, job_task, jobs, sizeof *jobs, n, &o, &iter)
                             : mproc_imap_unordered(ex, job_task, jobs, sizeof *jobs, n, &o,
                                                    &iter));
            mproc_item it;
            if (consume)
                for (int k = 0; k < 8; k++)
                    CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
            WAIT_UNTIL(atomic_load(&started) == base + 1, LONG_MS);
            mproc_imap_destroy(iter);
            CHECK_OK(mproc_event_set(&go));
            mproc_results *r;
            CHECK_OK(mproc_map(ex, square_task, v, sizeof *v, 100, NULL, &r));
            check_squares(r, 100);
            mproc_results_destroy(r);
                }
    }
    mproc_executor_destroy(ex);
    free(v);
    free(jobs);
}

/* ------------------------------------------------------------------ */
/* map from inside a task                                              */
/* ------------------------------------------------------------------ */

typedef struct inner_args {
    mproc_executor *ex;
    size_t n;
    size_t chunksize;
} inner_args;

/* Task: map, imap and map_async over n values on ex, from a worker;
 * returns the sum of the squares. */
static int mapping_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    const inner_args *a = arg;
    int64_t *v = make_values(a->n);
    int64_t want = 0;
    for (size_t i = 0; i < a->n; i++)
        want += val(i) * val(i);
    mproc_map_opts o = { .chunksize = a->chunksize };
    mproc_results *r;
    CHECK_OK(mproc_map(a->ex, square_task, v, sizeof *v, a->n, &o, &r));
    check_squares(r, a->n);
    mproc_results_destroy(r);

    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(a->ex, square_task, v, sizeof *v, a->n, &o, &iter));
    int64_t sum = 0;
    mproc_item it;
    int rc;
    while ((rc = mproc_imap_next(iter, -1, &it)) == 1) {
        CHECK_EQ(it.code, 0);
        int64_t y;
        memcpy(&y, it.data, sizeof y);
        sum += y;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(sum, want);
    mproc_imap_destroy(iter);

    CHECK_OK(mproc_imap_unordered(a->ex, square_task, v, sizeof *v, a->n, &o, &iter));
    sum = 0;
    while ((rc = mproc_imap_next(iter, LONG_MS, &it)) == 1) {
        int64_t y;
        memcpy(&y, it.data, sizeof y);
        sum += y;
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ(sum, want);
    mproc_imap_destroy(iter);

    mproc_future *done;
    CHECK_OK(mproc_map_async(a->ex, square_task, v, sizeof *v, a->n, &o, NULL, NULL, NULL, &r,
                             &done));
    CHECK_OK(mproc_future_result(done, -1, NULL, NULL));
    check_squares(r, a->n);
    mproc_future_release(done);
    mproc_results_destroy(r);

    mproc_future *f;
    int64_t x = 12;
    CHECK_OK(mproc_apply(a->ex, square_task, &x, sizeof x, &f));
    CHECK_EQ(result_u64(f), 144);
    mproc_future_release(f);
    free(v);
    return mproc_return(ctx, &sum, sizeof sum);
}

TEST(map_inside_task_one_worker)
{
    mproc_executor *ex = make_ex(1);
    const size_t sizes[] = { 1, 3, 0, 1000, 1 };
    for (size_t s = 0; s < 5; s++) {
        /* The last: more chunks than a worker's deque holds (8192). */
        inner_args a = { .ex = ex, .n = s == 4 ? 20000 : 200, .chunksize = sizes[s] };
        mproc_future *f;
        CHECK_OK(mproc_apply(ex, mapping_task, &a, sizeof a, &f));
        int64_t want = 0;
        for (size_t i = 0; i < a.n; i++)
            want += val(i) * val(i);
        CHECK_EQ((int64_t)result_u64(f), want);
        mproc_future_release(f);
    }
    mproc_executor_destroy(ex);
}

/* Items that map: each outer item maps over 20 inner values (two levels
 * of maps waiting from workers). */
TEST(map_of_maps_one_and_two_workers)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        mproc_executor *ex = make_ex(workers);
        const size_t n = 30;
        inner_args *outer = calloc(n, sizeof *outer);
        CHECK(outer != NULL);
        for (size_t i = 0; i < n; i++)
            outer[i] = (inner_args){ .ex = ex, .n = 20 + i % 3, .chunksize = i % 4 };
        mproc_results *r;
        CHECK_OK(mproc_map(ex, mapping_task, outer, sizeof *outer, n,
                           &(mproc_map_opts){ .chunksize = 1 }, &r));
        for (size_t i = 0; i < n; i++) {
            int64_t want = 0;
            for (size_t k = 0; k < outer[i].n; k++)
                want += val(k) * val(k);
            check_i64_item(r, i, want);
        }
        mproc_results_destroy(r);
        free(outer);
        mproc_executor_destroy(ex);
    }
}

/* ------------------------------------------------------------------ */
/* shutdown, broken executors                                          */
/* ------------------------------------------------------------------ */

/* The whole map is queued behind a held worker: shutdown(cancel_futures)
 * finishes it with MPROC_ECANCELLED at once, while the worker is still
 * held. */
TEST(map_cancelled_by_shutdown_while_queued)
{
    const size_t n = 50;
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 1, NULL);
    int64_t *v = make_values(n);
    cbinfo c = { 0 };
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n,
                             &(mproc_map_opts){ .chunksize = 5 }, ok_cb, err_cb, &c, &r, &done));
    mproc_imap_iter *iter[2];
    CHECK_OK(mproc_imap(ex, square_task, v, sizeof *v, n, &(mproc_map_opts){ .chunksize = 3 },
                        &iter[0]));
    CHECK_OK(mproc_imap_unordered(ex, square_task, v, sizeof *v, n, NULL, &iter[1]));
    CHECK_RC(mproc_future_result(done, 0, NULL, NULL), -ETIMEDOUT);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    CHECK_EQ(atomic_load(&c.code_seen), MPROC_ECANCELLED);
    for (size_t i = 0; i < n; i++)
        check_item_failed(r, i, MPROC_ECANCELLED, "");
    /* The iterators yield every item, cancelled. */
    for (int k = 0; k < 2; k++) {
        bool seen[50] = { false };
        mproc_item it;
        for (size_t i = 0; i < n; i++) {
            CHECK_RC(mproc_imap_next(iter[k], LONG_MS, &it), 1);
            if (k == 0)
                CHECK_EQ(it.index, i);
            CHECK(it.index < n && !seen[it.index]);
            seen[it.index] = true;
            CHECK_EQ(it.code, MPROC_ECANCELLED);
        }
        CHECK_RC(mproc_imap_next(iter[k], 0, &it), 0);
        mproc_imap_destroy(iter[k]);
    }
    CHECK_OK(mproc_event_set(&h.go));
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&h.saw_cancel), 1);
    CHECK_EQ(atomic_load(&c.ok), 0);
    CHECK_EQ(atomic_load(&c.err), 1);
    free(v);
}

/* The map's first chunk runs (held) when shutdown(cancel_futures) comes:
 * the queued chunks are cancelled at once, the running one finishes,
 * and the map fails with MPROC_ECANCELLED (its first failed item is the
 * first item of chunk 1). */
TEST(map_partly_cancelled_by_shutdown)
{
    const size_t n = 50, cs = 5;
    mproc_executor *ex = make_ex(1);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0, saw_cancel = 0;
    job *jobs = make_jobs(n);
    jobs[2].wait = &go;
    jobs[2].started = &started;
    jobs[2].saw_cancel = &saw_cancel;
    jobs[20].fail = -EIO; /* cancelled before it could fail */
    cbinfo c = { 0 };
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n,
                             &(mproc_map_opts){ .chunksize = cs }, ok_cb, err_cb, &c, &r, &done));
    WAIT_UNTIL(atomic_load(&started) == 1, LONG_MS);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    mproc_item it;
    for (size_t i = cs; i < n; i++) /* cancelled during the shutdown call */
        check_item_failed(r, i, MPROC_ECANCELLED, "");
    for (size_t i = 0; i < cs; i++)
        CHECK_RC(mproc_results_get(r, i, &it), -EAGAIN);
    CHECK_RC(mproc_future_result(done, 0, NULL, NULL), -ETIMEDOUT);
    CHECK_EQ(atomic_load(&c.ok) + atomic_load(&c.err), 0);
    CHECK_OK(mproc_event_set(&go));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    for (size_t i = 0; i < cs; i++)
        check_job_ok(r, i);
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    CHECK_EQ(atomic_load(&saw_cancel), 1);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok), 0);
    free(jobs);
}

typedef struct blocking_map {
    mproc_executor *ex;
    int64_t *v;
    size_t n;
    atomic_int tid;
    int rc;
    mproc_results *r;
} blocking_map;

static void *blocking_map_main(void *p)
{
    blocking_map *b = p;
    atomic_store(&b->tid, (int)gettid());
    b->rc = mproc_map(b->ex, square_task, b->v, sizeof *b->v, b->n, NULL, &b->r);
    return NULL;
}

/* A thread blocked in mproc_map returns MPROC_ECANCELLED when the
 * executor is shut down with cancel_futures. */
TEST(blocking_map_cancelled_by_shutdown)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 1, NULL);
    blocking_map b = { .ex = ex, .n = 20 };
    b.v = make_values(b.n);
    pthread_t t = test_start_thread(blocking_map_main, &b);
    WAIT_UNTIL(atomic_load(&b.tid) != 0, LONG_MS);
    test_wait_sleeping((pid_t)atomic_load(&b.tid), LONG_MS);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    test_join_thread(t);
    CHECK_RC(b.rc, MPROC_ECANCELLED);
    CHECK(b.r != NULL);
    for (size_t i = 0; i < b.n; i++)
        check_item_failed(b.r, i, MPROC_ECANCELLED, "");
    mproc_results_destroy(b.r);
    CHECK_OK(mproc_event_set(&h.go));
    mproc_executor_destroy(ex);
    free(b.v);
}

typedef struct racing_map {
    mproc_executor *ex;
    atomic_int ready, go;
    long delay;          /* spins before the shutdown */
    bool cancel;
} racing_map;

static void spin(long n)
{
    for (volatile long i = 0; i < n; i++)
        ;
}

static void *racing_shutdown_main(void *p)
{
    racing_map *m = p;
    atomic_store(&m->ready, 1);
    while (!atomic_load(&m->go))
        ;
    spin(m->delay);
    CHECK_OK(mproc_executor_shutdown(m->ex, false, m->cancel));
    return NULL;
}

/* map racing shutdown: never hangs; it is a call error (ESHUTDOWN, no
 * results), or its code is that of its first failed item, each item
 * being done (and right), cancelled or refused. */
static void map_racing_shutdown(bool cancel)
{
    long rounds = test_scaled_stress(300);
    const size_t n = 3000;
    int64_t *v = make_values(n);
    int outcomes[3] = { 0 };
    long cancelled = 0, refused = 0;
    uint64_t seed = 0x5eed;
    for (long round = 0; round < rounds; round++) {
        /* Either side waits up to ~100 us or so before it goes. */
        long d = (long)(test_xorshift(&seed) % 40001) - 20000;
        racing_map m = { .ex = make_ex(2), .cancel = cancel, .delay = d > 0 ? d : 0 };
        pthread_t t = test_start_thread(racing_shutdown_main, &m);
        WAIT_UNTIL(atomic_load(&m.ready), LONG_MS);
        atomic_store(&m.go, 1);
        spin(d < 0 ? -d : 0);
        mproc_results *r = NOT_NULL(mproc_results);
        int rc = mproc_map(m.ex, square_task, v, sizeof *v, n,
                           &(mproc_map_opts){ .chunksize = 1 + (size_t)round % 3 }, &r);
        test_join_thread(t);
        if (rc == MPROC_ESHUTDOWN && r == NULL) {
            outcomes[0]++;
        } else {
            CHECK(r != NULL);
            CHECK_EQ(mproc_results_count(r), n);
            int first = 0;
            for (size_t i = 0; i < n; i++) {
                mproc_item it;
                int code = mproc_results_get(r, i, &it);
                if (code == 0)
                    check_i64_item(r, i, val(i) * val(i));
                else
                    CHECK_MSG(code == MPROC_ECANCELLED || code == MPROC_ESHUTDOWN,
                              "item %zu: %d", i, code);
                if (code != 0 && first == 0)
                    first = code;
                cancelled += code == MPROC_ECANCELLED;
                refused += code == MPROC_ESHUTDOWN;
            }
            CHECK_EQ(rc, first);
            outcomes[rc == 0 ? 1 : 2]++;
            mproc_results_destroy(r);
        }
        mproc_executor_destroy(m.ex);
    }
    printf("map racing shutdown%s: %d maps refused, %d done, %d partly "
           "(%ld items cancelled, %ld refused)\n",
           cancel ? "(cancel)" : "", outcomes[0], outcomes[1], outcomes[2], cancelled, refused);
    free(v);
}

TEST_T(map_racing_shutdown, 60)
{
    map_racing_shutdown(false);
}

TEST_T(map_racing_shutdown_cancel, 60)
{
    map_racing_shutdown(true);
}

TEST(map_after_shutdown)
{
    for (int wait = 0; wait < 2; wait++) {
        mproc_executor *ex = make_ex(2);
        CHECK_OK(mproc_executor_shutdown(ex, wait, false));
        int64_t v[4] = { 1, 2, 3, 4 };
        cbinfo c = { 0 };
        mproc_results *r = NOT_NULL(mproc_results);
        CHECK_RC(mproc_map(ex, never_task, v, sizeof v[0], 4, NULL, &r), MPROC_ESHUTDOWN);
        CHECK(r == NULL);
        mproc_future *done = NOT_NULL(mproc_future);
        r = NOT_NULL(mproc_results);
        CHECK_RC(mproc_map_async(ex, never_task, v, sizeof v[0], 4, NULL, ok_cb, err_cb, &c, &r,
                                 &done),
                 MPROC_ESHUTDOWN);
        CHECK(r == NULL);
        CHECK(done == NULL);
        mproc_imap_iter *iter = NOT_NULL(mproc_imap_iter);
        CHECK_RC(mproc_imap(ex, never_task, v, sizeof v[0], 4, NULL, &iter), MPROC_ESHUTDOWN);
        CHECK(iter == NULL);
        iter = NOT_NULL(mproc_imap_iter);
        CHECK_RC(mproc_imap_unordered(ex, never_task, v, sizeof v[0], 4, NULL, &iter),
                 MPROC_ESHUTDOWN);
        CHECK(iter == NULL);
        mproc_future *f = NOT_NULL(mproc_future);
        CHECK_RC(mproc_apply(ex, never_task, v, sizeof v, &f), MPROC_ESHUTDOWN);
        CHECK(f == NULL);
        f = NOT_NULL(mproc_future);
        CHECK_RC(mproc_apply_async(ex, never_task, v, sizeof v, ok_cb, err_cb, &c, &f),
                 MPROC_ESHUTDOWN);
        CHECK(f == NULL);
        CHECK_RC(mproc_apply_async(ex, never_task, v, sizeof v, NULL, NULL, NULL, NULL),
                 MPROC_ESHUTDOWN);
        mproc_executor_destroy(ex);
        CHECK_EQ(atomic_load(&c.ok) + atomic_load(&c.err), 0);
    }
    CHECK_EQ(atomic_load(&never_ran), 0);
}

static mproc_event init_go;

static int failing_initializer(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_event_wait(&init_go, 6 * LONG_MS));
    return -1;
}

/* Chunks accepted before the executor broke fail with MPROC_EBROKEN;
 * calls after it broke are refused. */
TEST(map_on_broken_executor)
{
    CHECK_OK(mproc_event_init(&init_go, 0));
    mproc_executor *ex = NULL;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .workers = 1, .initializer = failing_initializer }));
    const size_t n = 12;
    int64_t *v = make_values(n);
    cbinfo c = { 0 };
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, never_task, v, sizeof *v, n, &(mproc_map_opts){ .chunksize = 4 },
                             ok_cb, err_cb, &c, &r, &done));
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(ex, never_task, v, sizeof *v, n, NULL, &iter));
    CHECK_OK(mproc_event_set(&init_go));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), MPROC_EBROKEN);
    for (size_t i = 0; i < n; i++)
        check_item_failed(r, i, MPROC_EBROKEN, "");
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    mproc_item it;
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK_EQ(it.index, i);
        CHECK_EQ(it.code, MPROC_EBROKEN);
    }
    CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 0);
    mproc_imap_destroy(iter);
    mproc_future_release(done);
    mproc_results_destroy(r);
    /* Now refused outright. */
    r = NOT_NULL(mproc_results);
    CHECK_RC(mproc_map(ex, never_task, v, sizeof *v, n, NULL, &r), MPROC_EBROKEN);
    CHECK(r == NULL);
    CHECK_RC(mproc_apply(ex, never_task, NULL, 0, NULL), MPROC_EBROKEN);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&never_ran), 0);
    CHECK_EQ(atomic_load(&c.ok), 0);
    CHECK_EQ(atomic_load(&c.err), 1);
    free(v);
}

/* ------------------------------------------------------------------ */
/* apply / apply_async                                                 */
/* ------------------------------------------------------------------ */

TEST(apply_returns_code_and_future)
{
    mproc_executor *ex = make_ex(2);
    mproc_future *f = NOT_NULL(mproc_future);
    CHECK_OK(mproc_apply(ex, echo_task, NUM(77), 0, &f));
    CHECK(f != NULL && f != NOT_NULL(mproc_future));
    CHECK(mproc_future_done(f));
    CHECK_EQ(result_u64(f), 77);
    mproc_future_release(f);
    int64_t x = -9;
    CHECK_OK(mproc_apply(ex, square_task, &x, sizeof x, &f));
    const void *data;
    size_t len;
    CHECK_OK(mproc_future_result(f, 0, &data, &len));
    CHECK_EQ(len, sizeof(int64_t));
    CHECK_EQ(*(const int64_t *)data, 81);
    mproc_future_release(f);
    /* A failure: the code, and the future carries the message. */
    CHECK_RC(mproc_apply(ex, fail_task, NUM(-EIO), 0, &f), -EIO);
    CHECK(f != NULL);
    int code = 0;
    const char *msg = NULL;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    CHECK_EQ(code, -EIO);
    CHECK(strcmp(msg, "failed on purpose") == 0);
    CHECK_RC(mproc_future_result(f, 0, NULL, NULL), -EIO);
    mproc_future_release(f);
    /* out may be NULL. */
    CHECK_OK(mproc_apply(ex, echo_task, NUM(1), 0, NULL));
    CHECK_RC(mproc_apply(ex, fail_task, NUM(-EPERM), 0, NULL), -EPERM);
    mproc_executor_destroy(ex);
}

/* Task (arg: the executor): apply from a worker of a 1-worker executor. */
static int applying_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    mproc_executor *ex = (mproc_executor *)arg;
    mproc_future *f;
    CHECK_OK(mproc_apply(ex, echo_task, NUM(31), 0, &f));
    uint64_t v = result_u64(f);
    mproc_future_release(f);
    v += 1;
    return mproc_return(ctx, &v, sizeof v);
}

TEST(apply_inside_task_one_worker)
{
    mproc_executor *ex = make_ex(1);
    mproc_future *f;
    CHECK_OK(mproc_apply(ex, applying_task, ex, 0, &f));
    CHECK_EQ(result_u64(f), 32);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

TEST(apply_async_callbacks)
{
    mproc_executor *ex = make_ex(2);
    /* Success. */
    cbinfo ok = { 0 };
    mproc_future *f;
    CHECK_OK(mproc_apply_async(ex, echo_task, NUM(5), 0, ok_cb, err_cb, &ok, &f));
    CHECK_EQ(result_u64(f), 5);
    WAIT_UNTIL(atomic_load(&ok.ok) == 1, LONG_MS);
    CHECK(atomic_load(&ok.f_seen) == f);
    CHECK_EQ(atomic_load(&ok.code_seen), 0);
    mproc_future_release(f);
    /* Failure. */
    cbinfo bad = { 0 };
    CHECK_OK(mproc_apply_async(ex, fail_task, NUM(-EIO), 0, ok_cb, err_cb, &bad, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), -EIO);
    WAIT_UNTIL(atomic_load(&bad.err) == 1, LONG_MS);
    CHECK(atomic_load(&bad.f_seen) == f);
    CHECK_EQ(atomic_load(&bad.code_seen), -EIO);
    mproc_future_release(f);
    /* Only the other callback: none runs. */
    cbinfo none = { 0 };
    mproc_future *f2, *f3;
    CHECK_OK(mproc_apply_async(ex, echo_task, NUM(1), 0, NULL, err_cb, &none, &f2));
    CHECK_OK(mproc_apply_async(ex, fail_task, NUM(-EIO), 0, ok_cb, NULL, &none, &f3));
    CHECK_OK(mproc_future_result(f2, LONG_MS, NULL, NULL));
    CHECK_RC(mproc_future_result(f3, LONG_MS, NULL, NULL), -EIO);
    mproc_future_release(f2);
    mproc_future_release(f3);
    /* out NULL: fire and forget, the callback still runs. */
    cbinfo ff = { 0 };
    CHECK_OK(mproc_apply_async(ex, echo_task, NUM(2), 0, ok_cb, err_cb, &ff, NULL));
    WAIT_UNTIL(atomic_load(&ff.ok) == 1, LONG_MS);
    /* No callbacks: a plain submit. */
    atomic_long count = 0;
    CHECK_OK(mproc_apply_async(ex, count_task, &count, 0, NULL, NULL, NULL, &f));
    CHECK_OK(mproc_future_result(f, LONG_MS, NULL, NULL));
    CHECK_EQ(atomic_load(&count), 1);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&ok.ok), 1);
    CHECK_EQ(atomic_load(&ok.err), 0);
    CHECK_EQ(atomic_load(&bad.ok), 0);
    CHECK_EQ(atomic_load(&bad.err), 1);
    CHECK_EQ(atomic_load(&none.ok) + atomic_load(&none.err), 0);
    CHECK_EQ(atomic_load(&ff.ok), 1);
    CHECK_EQ(atomic_load(&ff.err), 0);
}

/* Cancelled before it started (the only worker is held): error_callback
 * runs once, in the cancelling thread; so it does on shutdown(cancel). */
TEST(apply_async_cancelled_before_start)
{
    mproc_executor *ex = make_ex(1);
    hold h;
    hold_init(&h);
    hold_workers(ex, &h, 1, NULL);
    atomic_long count = 0;
    cbinfo c = { 0 }, s = { 0 };
    mproc_future *f, *g;
    CHECK_OK(mproc_apply_async(ex, count_task, &count, 0, ok_cb, err_cb, &c, &f));
    CHECK_OK(mproc_apply_async(ex, count_task, &count, 0, ok_cb, err_cb, &s, &g));
    CHECK_RC(mproc_future_cancel(f), 1);
    CHECK_EQ(atomic_load(&c.err), 1);
    CHECK_EQ(atomic_load(&c.tid_seen), (int)gettid());
    CHECK(atomic_load(&c.f_seen) == f);
    CHECK_EQ(atomic_load(&c.code_seen), MPROC_ECANCELLED);
    CHECK_RC(mproc_future_result(f, 0, NULL, NULL), MPROC_ECANCELLED);
    CHECK_RC(mproc_future_cancel(f), 1); /* again: no second callback */
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    CHECK_EQ(atomic_load(&s.err), 1);
    CHECK_EQ(atomic_load(&s.code_seen), MPROC_ECANCELLED);
    CHECK_OK(mproc_event_set(&h.go));
    mproc_future_release(f);
    mproc_future_release(g);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&count), 0);
    CHECK_EQ(atomic_load(&c.ok), 0);
    CHECK_EQ(atomic_load(&c.err), 1);
    CHECK_EQ(atomic_load(&s.ok), 0);
    CHECK_EQ(atomic_load(&s.err), 1);
}

TEST(apply_async_stress)
{
    mproc_executor *ex = make_ex(2);
    cbinfo c = { 0 };
    long loops = test_scaled_stress(50000);
    for (long i = 0; i < loops; i++) {
        mproc_future *f = NULL;
        if (i % 3 == 0)
            CHECK_OK(mproc_apply_async(ex, fail_task, NUM(-EIO), 0, ok_count_cb, err_count_cb,
                                       &c, i % 2 ? &f : NULL));
        else
            CHECK_OK(mproc_apply_async(ex, echo_task, NUM(i), 0, ok_count_cb, err_count_cb, &c,
                                       i % 2 ? &f : NULL));
        if (f && i % 4 == 1)
            mproc_future_cancel(f);
        mproc_future_release(f);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok) + atomic_load(&c.err), loops);
    CHECK(atomic_load(&c.err) >= (loops + 2) / 3);
}

/* ------------------------------------------------------------------ */
/* several callers at once                                             */
/* ------------------------------------------------------------------ */

typedef struct caller {
    mproc_executor *ex;
    uint64_t seed;
    long loops;
} caller;

static void *caller_main(void *p)
{
    caller *c = p;
    int64_t *v = make_values(400);
    for (long l = 0; l < c->loops; l++) {
        size_t n = (size_t)(test_xorshift(&c->seed) % 401);
        const size_t sizes[] = { 0, 1, 3, 64, 1000 };
        mproc_map_opts o = { .chunksize = sizes[test_xorshift(&c->seed) % 5] };
        mproc_results *r;
        mproc_imap_iter *iter;
        mproc_future *done;
        mproc_item it;
        switch (test_xorshift(&c->seed) % 4) {
        case 0:
            CHECK_OK(mproc_map(c->ex, square_task, v, sizeof *v, n, &o, &r));
            check_squares(r, n);
            mproc_results_destroy(r);
            break;
        case 1:
            CHECK_OK(mproc_map_async(c->ex, square_task, v, sizeof *v, n, &o, NULL, NULL, NULL,
                                     &r, &done));
            CHECK_OK(mproc_future_result(done, 6 * LONG_MS, NULL, NULL));
            check_squares(r, n);
            mproc_future_release(done);
            mproc_results_destroy(r);
            break;
        case 2:
            CHECK_OK(mproc_imap(c->ex, square_task, v, sizeof *v, n, &o, &iter));
            for (size_t i = 0; i < n; i++) {
                CHECK_RC(mproc_imap_next(iter, 6 * LONG_MS, &it), 1);
                CHECK_EQ(it.index, i);
                check_i64_yield(&it, val(i) * val(i));
            }
            CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
            mproc_imap_destroy(iter);
            break;
        default: {
            CHECK_OK(mproc_imap_unordered(c->ex, square_task, v, sizeof *v, n, &o, &iter));
            uint8_t seen[400] = { 0 };
            for (size_t i = 0; i < n; i++) {
                CHECK_RC(mproc_imap_next(iter, 6 * LONG_MS, &it), 1);
                CHECK(it.index < n && !seen[it.index]);
                seen[it.index] = 1;
                check_i64_yield(&it, val(it.index) * val(it.index));
            }
            CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
            mproc_imap_destroy(iter);
            break;
        }
        }
    }
    free(v);
    return NULL;
}

TEST_T(concurrent_callers, 60)
{
    enum { T = 4 };
    mproc_executor *ex = make_ex(2);
    caller c[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        c[i] = (caller){ .ex = ex, .seed = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1),
                         .loops = test_scaled_stress(800) };
        t[i] = test_start_thread(caller_main, &c[i]);
    }
    for (int i = 0; i < T; i++)
        test_join_thread(t[i]);
    mproc_executor_destroy(ex);
}

/* ------------------------------------------------------------------ */
/* fixed-size results (mproc_map_opts.result_size)                     */
/* ------------------------------------------------------------------ */

/* Task: an int64_t x in, x * x written in place (mproc_result_buffer). */
static int square_in_place_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    CHECK_EQ(len, sizeof(int64_t));
    int64_t x;
    memcpy(&x, arg, sizeof x);
    int64_t *p = mproc_result_buffer(ctx, sizeof *p);
    if (p == NULL)
        return mproc_fail(ctx, -ENOMEM, "no buffer");
    *p = x * x;
    return 0;
}

static const mproc_map_opts *fixed8(mproc_map_opts *o, size_t chunksize)
{
    *o = (mproc_map_opts){ .chunksize = chunksize, .result_size = sizeof(int64_t) };
    return o;
}

/* The dense array of a finished fixed-size map of n int64 results. */
static const int64_t *dense_i64(const mproc_results *r, size_t n)
{
    size_t rs = 12345;
    errno = 0;
    const int64_t *y = mproc_results_data(r, &rs);
    CHECK_MSG(y != NULL, "mproc_results_data: errno %d", errno);
    CHECK_EQ(rs, sizeof(int64_t));
    CHECK_EQ(mproc_results_count(r), n);
    CHECK_EQ((uintptr_t)y % _Alignof(max_align_t), 0);
    CHECK(mproc_results_data(r, NULL) == y); /* result_size may be NULL */
    return y;
}

/* Every item of a fixed-size map is val(i)^2, both through
 * mproc_results_get (pointing into the dense array) and the array. */
static void check_dense_squares(const mproc_results *r, size_t n)
{
    const int64_t *y = dense_i64(r, n);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(y[i] == val(i) * val(i), "item %zu: %lld", i, (long long)y[i]);
    check_squares(r, n);
    mproc_item it;
    CHECK_OK(mproc_results_get(r, n - 1, &it));
    CHECK(it.data == &y[n - 1]);
}

TEST(fixed_squares_chunksizes)
{
    const size_t n = 10000;
    int64_t *v = make_values(n);
    const size_t sizes[] = { 0, 1, 7, 1000, n - 1, n, n + 1, SIZE_MAX };
    for (unsigned workers = 1; workers <= 3; workers++) {
        mproc_executor *ex = make_ex(workers);
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            for (int in_place = 0; in_place < 2; in_place++) {
                mproc_results *r = NULL;
                mproc_map_opts o;
                CHECK_OK(mproc_map(ex, in_place ? square_in_place_task : square_task, v,
                                   sizeof *v, n, fixed8(&o, sizes[s]), &r));
                CHECK(r != NULL);
                check_dense_squares(r, n);
                mproc_results_destroy(r);
            }
        }
        mproc_executor_destroy(ex);
    }
    free(v);
}

/* Large enough for the array to be mmap'd (and ask for huge pages), with
 * MPROC_COPY_ARG: the caller's array is overwritten once map_async
 * returns. */
TEST(fixed_large_copy_arg)
{
    const size_t n = 600000; /* 4.8 MB of results */
    int64_t *v = make_values(n);
    mproc_executor *ex = make_ex(2);
    mproc_results *r;
    mproc_future *done;
    CHECK_OK(mproc_map_async(ex, square_task, v, sizeof *v, n,
                             &(mproc_map_opts){ .result_size = 8, .flags = MPROC_COPY_ARG },
                             NULL, NULL, NULL, &r, &done));
    memset(v, 0x5a, n * sizeof *v);
    CHECK_OK(mproc_future_result(done, -1, NULL, NULL));
    const int64_t *y = dense_i64(r, n);
    int64_t sum = 0, want = 0;
    for (size_t i = 0; i < n; i++) {
        sum += y[i];
        want += val(i) * val(i);
    }
    CHECK_EQ(sum, want);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(v);
}

/* A result size that is not a power of two: item i's 3 bytes at 3 * i. */
static int three_bytes_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    unsigned char b[3] = { pattern_byte(x, 0), pattern_byte(x, 1), pattern_byte(x, 2) };
    return mproc_return(ctx, b, sizeof b);
}

TEST(fixed_odd_result_size)
{
    const size_t n = 1001;
    int64_t *v = make_values(n);
    mproc_executor *ex = make_ex(2);
    mproc_results *r;
    CHECK_OK(mproc_map(ex, three_bytes_task, v, sizeof *v, n,
                       &(mproc_map_opts){ .chunksize = 10, .result_size = 3 }, &r));
    size_t rs = 0;
    const unsigned char *d = mproc_results_data(r, &rs);
    CHECK(d != NULL);
    CHECK_EQ(rs, 3);
    for (size_t i = 0; i < n; i++) {
        mproc_item it;
        CHECK_OK(mproc_results_get(r, i, &it));
        CHECK_EQ(it.len, 3);
        CHECK(it.data == d + 3 * i);
        for (size_t k = 0; k < 3; k++)
            CHECK_EQ(d[3 * i + k], pattern_byte(val(i), k));
    }
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(v);
}

/* Task: x % 4 == 0 returns nothing, 1 returns 7 (positive: success), 2
 * writes a buffer and returns 0 without touching it, 3 returns x * x. */
static int sometimes_nothing_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    switch (x % 4) {
    case 0: return 0;
    case 1: return 7;
    case 2: return mproc_result_buffer(ctx, sizeof x) ? 0 : -ENOMEM;
    default: {
        int64_t y = x * x;
        return mproc_return(ctx, &y, sizeof y);
    }
    }
}

/* An item that hands back nothing succeeds with result_size zero bytes. */
TEST(fixed_item_without_result_reads_zero)
{
    const size_t n = 400;
    int64_t *v = make_values(n);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    mproc_executor *ex = make_ex(2);
    mproc_results *r;
    mproc_map_opts o;
    CHECK_OK(mproc_map(ex, sometimes_nothing_task, v, sizeof *v, n, fixed8(&o, 3), &r));
    const int64_t *y = dense_i64(r, n);
    for (size_t i = 0; i < n; i++) {
        int64_t want = i % 4 == 3 ? (int64_t)(i * i) : 0;
        CHECK_EQ(y[i], want);
        check_i64_item(r, i, want);
    }
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(v);
}

/* Item i of a fixed-size map failed: `code`, `msg`, no data, and zero
 * bytes in the dense array. */
static void check_fixed_failed(const mproc_results *r, size_t i, int code, const char *msg)
{
    check_item_failed(r, i, code, msg);
    mproc_item it;
    mproc_results_get(r, i, &it);
    CHECK(it.data == NULL);
    CHECK_EQ(it.len, 0);
    size_t rs;
    const unsigned char *d = mproc_results_data(r, &rs);
    CHECK(d != NULL);
    for (size_t k = 0; k < rs; k++)
        CHECK_MSG(d[i * rs + k] == 0, "item %zu: byte %zu is %d", i, k, d[i * rs + k]);
}

TEST(fixed_item_fails_in_the_middle)
{
    const size_t n = 1000, bad = 500;
    job *jobs = make_jobs(n);
    jobs[bad].fail = -EIO;
    mproc_executor *ex = make_ex(2);
    const size_t sizes[] = { 0, 1, 7, n };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        mproc_results *r = NULL;
        mproc_map_opts o;
        CHECK_RC(mproc_map(ex, job_task, jobs, sizeof *jobs, n, fixed8(&o, sizes[s]), &r), -EIO);
        CHECK(r != NULL);
        check_fixed_failed(r, bad, -EIO, "job 500 failed");
        const int64_t *y = dense_i64(r, n);
        for (size_t i = 0; i < n; i++) {
            if (i != bad) {
                check_job_ok(r, i);
                CHECK_EQ(y[i], (int64_t)(i * i));
            }
        }
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex);
    free(jobs);
}

/* Task: x % 5 == 0 writes its result, then fails (its bytes must not
 * survive); x % 5 == 1 fails with -EPERM and no message; otherwise x * x.
 * Items 700 and 300 fail too (with chunks of 7, out of order). */
static int write_then_fail_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    int64_t y = x * x;
    if (x % 5 == 0) {
        CHECK_OK(mproc_return(ctx, &y, sizeof y));
        return mproc_fail(ctx, -EIO, "item %lld wrote, then failed", (long long)x);
    }
    if (x % 5 == 1)
        return -EPERM;
    return mproc_return(ctx, &y, sizeof y);
}

TEST(fixed_failed_items_read_zero)
{
    const size_t n = 1000;
    int64_t *v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i + 1; /* item 0 is x = 1: the first failure is -EPERM */
    mproc_executor *ex = make_ex(3);
    mproc_results *r;
    mproc_map_opts o;
    CHECK_RC(mproc_map(ex, write_then_fail_task, v, sizeof *v, n, fixed8(&o, 7), &r), -EPERM);
    const int64_t *y = dense_i64(r, n);
    char msg[64];
    for (size_t i = 0; i < n; i++) {
        int64_t x = v[i];
        if (x % 5 == 0) {
            snprintf(msg, sizeof msg, "item %lld wrote, then failed", (long long)x);
            check_fixed_failed(r, i, -EIO, msg);
        } else if (x % 5 == 1) {
            check_fixed_failed(r, i, -EPERM, "");
        } else {
            CHECK_EQ(y[i], x * x);
            check_i64_item(r, i, x * x);
        }
    }
    mproc_results_destroy(r);
    /* The first failure in item order is the map's code. */
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)(i % 5 == 0 || i % 5 == 1 ? i + 2 : i);
    v[700] = 5;
    v[300] = 6;
    CHECK_RC(mproc_map(ex, write_then_fail_task, v, sizeof *v, n, fixed8(&o, 7), &r), -EPERM);
    check_fixed_failed(r, 300, -EPERM, "");
    check_fixed_failed(r, 700, -EIO, "item 5 wrote, then failed");
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(v);
}

/* Task: hands back a result of the wrong length in one of several ways
 * (the call succeeds: the bytes go nowhere), by x % 8:
 *   0 mproc_return of 4 bytes             -> -EMSGSIZE
 *   1 mproc_return of 0 bytes             -> -EMSGSIZE
 *   2 mproc_result_buffer of 100 bytes    -> -EMSGSIZE (buffer writable)
 *   3 wrong length, then the right one    -> -EMSGSIZE, zero bytes
 *   4 wrong length, then fails with -EIO and a message -> -EIO, its message
 *   5 wrong length, then fails with -EIO, no message -> -EIO, the length message
 *   6, 7 the right length                  -> x * x */
static atomic_int wrong_calls_ok;

static int wrong_length_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    int64_t y = x * x;
    int rc = 0;
    switch (x % 8) {
    case 0: rc = mproc_return(ctx, &y, 4); break;
    case 1: rc = mproc_return(ctx, NULL, 0); break;
    case 2: {
        unsigned char *p = mproc_result_buffer(ctx, 100);
        if (p == NULL)
            return -ENOMEM;
        memset(p, 0xee, 100);
        break;
    }
    case 3: {
        unsigned char nine[9] = { 0 };
        rc = mproc_return(ctx, nine, sizeof nine);
        if (rc == 0)
            rc = mproc_return(ctx, &y, sizeof y);
        break;
    }
    case 4:
        rc = mproc_return(ctx, &y, 7);
        atomic_fetch_add(&wrong_calls_ok, rc == 0);
        return mproc_fail(ctx, -EIO, "own failure %lld", (long long)x);
    case 5:
        rc = mproc_return(ctx, &y, 2);
        atomic_fetch_add(&wrong_calls_ok, rc == 0);
        return -EIO;
    default:
        return mproc_return(ctx, &y, sizeof y);
    }
    atomic_fetch_add(&wrong_calls_ok, rc == 0);
    return rc;
}

TEST(fixed_wrong_length_fails_only_that_item)
{
    const size_t n = 800;
    int64_t *v = malloc(n * sizeof *v);
    CHECK(v != NULL);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i + 6; /* item 2 (x = 8) is the first failure: -EMSGSIZE */
    mproc_executor *ex = make_ex(2);
    const size_t sizes[] = { 1, 6, 0 };
    for (size_t s = 0; s < 3; s++) {
        atomic_store(&wrong_calls_ok, 0);
        mproc_results *r;
        mproc_map_opts o;
        CHECK_RC(mproc_map(ex, wrong_length_task, v, sizeof *v, n, fixed8(&o, sizes[s]), &r),
                 -EMSGSIZE);
        CHECK_EQ(atomic_load(&wrong_calls_ok), n / 8 * 6);
        const int64_t *y = dense_i64(r, n);
        char msg[80];
        for (size_t i = 0; i < n; i++) {
            int64_t x = v[i];
            switch (x % 8) {
            case 0:
                check_fixed_failed(r, i, -EMSGSIZE, "result of 4 bytes, but result_size is 8");
                break;
            case 1:
                check_fixed_failed(r, i, -EMSGSIZE, "result of 0 bytes, but result_size is 8");
                break;
            case 2:
                check_fixed_failed(r, i, -EMSGSIZE, "result of 100 bytes, but result_size is 8");
                break;
            case 3:
                check_fixed_failed(r, i, -EMSGSIZE, "result of 9 bytes, but result_size is 8");
                break;
            case 4:
                snprintf(msg, sizeof msg, "own failure %lld", (long long)x);
                check_fixed_failed(r, i, -EIO, msg);
                break;
            case 5:
                check_fixed_failed(r, i, -EIO, "result of 2 bytes, but result_size is 8");
                break;
            default:
                CHECK_EQ(y[i], x * x);
                check_i64_item(r, i, x * x);
            }
        }
        mproc_results_destroy(r);
    }
    mproc_executor_destroy(ex);
    free(v);
}

/* The contract of mproc_results_data: NULL with EINVAL for NULL or a
 * general-mode map, EAGAIN while an item is unfinished, then the array. */
TEST(fixed_results_data_contract)
{
    mproc_executor *ex = make_ex(2);
    int64_t *v = make_values(10);
    size_t rs = 99;
    errno = 0;
    CHECK(mproc_results_data(NULL, &rs) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(rs, 0);

    mproc_results *r;
    CHECK_OK(mproc_map(ex, square_task, v, sizeof *v, 10, NULL, &r));
    rs = 99;
    errno = 0;
    CHECK(mproc_results_data(r, &rs) == NULL);
    CHECK_EQ(errno, EINVAL);
    CHECK_EQ(rs, 0);
    mproc_results_destroy(r);
    CHECK_OK(mproc_map(ex, square_task, v, sizeof *v, 10, &(mproc_map_opts){ .chunksize = 3 },
                       &r));
    errno = 0;
    CHECK(mproc_results_data(r, NULL) == NULL);
    CHECK_EQ(errno, EINVAL);
    mproc_results_destroy(r);

    /* Item 4 held: EAGAIN until it finishes, though other chunks are done. */
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0;
    job *jobs = make_jobs(10);
    jobs[4].wait = &go;
    jobs[4].started = &started;
    mproc_future *done;
    mproc_map_opts o;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, 10, fixed8(&o, 2), NULL, NULL,
                             NULL, &r, &done));
    WAIT_UNTIL(atomic_load(&started) == 1, LONG_MS);
    wait_item_ready(r, 9);
    rs = 99;
    errno = 0;
    CHECK(mproc_results_data(r, &rs) == NULL);
    CHECK_EQ(errno, EAGAIN);
    CHECK_EQ(rs, 0);
    check_job_ok(r, 9);
    mproc_item it;
    CHECK_RC(mproc_results_get(r, 4, &it), -EAGAIN);
    CHECK_OK(mproc_event_set(&go));
    CHECK_OK(mproc_future_result(done, LONG_MS, NULL, NULL));
    const int64_t *y = dense_i64(r, 10);
    for (size_t i = 0; i < 10; i++)
        CHECK_EQ(y[i], (int64_t)(i * i));
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    free(jobs);
    free(v);
}

TEST(fixed_zero_items)
{
    mproc_executor *ex = make_ex(2);
    mproc_results *r = NOT_NULL(mproc_results);
    CHECK_OK(mproc_map(ex, never_task, NULL, sizeof(int64_t), 0,
                       &(mproc_map_opts){ .result_size = 8 }, &r));
    CHECK(r != NULL && r != NOT_NULL(mproc_results));
    CHECK_EQ(mproc_results_count(r), 0);
    size_t rs = 0;
    CHECK(mproc_results_data(r, &rs) != NULL);
    CHECK_EQ(rs, 8);
    mproc_item it;
    CHECK_RC(mproc_results_get(r, 0, &it), -EINVAL);
    mproc_results_destroy(r);
    /* Any result_size is fine with no items, even one that would overflow. */
    CHECK_OK(mproc_map(ex, never_task, NULL, 0, 0, &(mproc_map_opts){ .result_size = SIZE_MAX },
                       &r));
    CHECK(mproc_results_data(r, &rs) != NULL);
    CHECK_EQ(rs, SIZE_MAX);
    mproc_results_destroy(r);
    for (int ordered = 0; ordered < 2; ordered++) {
        mproc_imap_iter *iter;
        mproc_map_opts o = { .result_size = 8 };
        CHECK_OK(ordered ? mproc_imap(ex, never_task, NULL, 8, 0, &o, &iter)
                         : mproc_imap_unordered(ex, never_task, NULL, 8, 0, &o, &iter));
        CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
        mproc_imap_destroy(iter);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&never_ran), 0);
}

/* n * result_size overflowing a size_t is -EINVAL; a size that fits but
 * cannot be allocated is -ENOMEM; neither starts an item. */
TEST(fixed_result_size_too_large)
{
    mproc_executor *ex = make_ex(1);
    int64_t v[4] = { 1, 2, 3, 4 };
    struct {
        size_t n, result_size;
        int code;
    } cases[] = {
        { 2, SIZE_MAX / 2 + 1, -EINVAL },
        { 4, SIZE_MAX, -EINVAL },
        { 3, SIZE_MAX / 3 + 1, -EINVAL },
        { 4, SIZE_MAX / 4, -ENOMEM },     /* 4 EiB: more than any address space */
        { 1, SIZE_MAX, -ENOMEM },
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        mproc_map_opts o = { .result_size = cases[k].result_size };
        size_t n = cases[k].n;
        int code = cases[k].code;
        mproc_results *r = NOT_NULL(mproc_results);
        CHECK_RC(mproc_map(ex, never_task, v, sizeof v[0], n, &o, &r), code);
        CHECK(r == NULL);
        mproc_future *done = NOT_NULL(mproc_future);
        r = NOT_NULL(mproc_results);
        CHECK_RC(mproc_map_async(ex, never_task, v, sizeof v[0], n, &o, NULL, NULL, NULL, &r,
                                 &done),
                 code);
        CHECK(r == NULL && done == NULL);
        mproc_imap_iter *iter = NOT_NULL(mproc_imap_iter);
        CHECK_RC(mproc_imap(ex, never_task, v, sizeof v[0], n, &o, &iter), code);
        CHECK(iter == NULL);
        iter = NOT_NULL(mproc_imap_iter);
        CHECK_RC(mproc_imap_unordered(ex, never_task, v, sizeof v[0], n, &o, &iter), code);
        CHECK(iter == NULL);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&never_ran), 0);
}

TEST(fixed_imap_and_imap_unordered)
{
    const size_t n = (size_t)test_scaled(240);
    job *jobs = random_jobs(n, 0x2468ace);
    jobs[n / 2].fail = -EIO;
    mproc_executor *ex = make_ex(3);
    const size_t sizes[] = { 1, 4, 0 };
    for (size_t s = 0; s < 3; s++) {
        for (int ordered = 0; ordered < 2; ordered++) {
            mproc_imap_iter *iter;
            mproc_map_opts o;
            CHECK_OK(ordered ? mproc_imap(ex, job_task, jobs, sizeof *jobs, n,
                                          fixed8(&o, sizes[s]), &iter)
                             : mproc_imap_unordered(ex, job_task, jobs, sizeof *jobs, n,
                                                    fixed8(&o, sizes[s]), &iter));
            bool *seen = calloc(n, sizeof *seen);
            CHECK(seen != NULL);
            char msg[40];
            snprintf(msg, sizeof msg, "job %zu failed", n / 2);
            mproc_item it;
            for (size_t k = 0; k < n; k++) {
                CHECK_RC(mproc_imap_next(iter, 6 * LONG_MS, &it), 1);
                CHECK(it.index < n);
                if (ordered)
                    CHECK_EQ(it.index, k);
                CHECK_MSG(!seen[it.index], "item %zu yielded twice", it.index);
                seen[it.index] = true;
                if (it.index == n / 2) {
                    CHECK_EQ(it.code, -EIO);
                    CHECK(it.data == NULL && it.len == 0);
                    CHECK_MSG(strcmp(it.message, msg) == 0, "message \"%s\"", it.message);
                } else {
                    check_i64_yield(&it, (int64_t)it.index * (int64_t)it.index);
                }
            }
            CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
            CHECK_RC(mproc_imap_next(iter, -1, &it), 0);
            mproc_imap_destroy(iter);
            free(seen);
        }
    }
    mproc_executor_destroy(ex);
    free(jobs);
}

TEST(fixed_map_async_callbacks)
{
    const size_t n = 500;
    job *jobs = make_jobs(n);
    mproc_executor *ex = make_ex(2);
    for (int fail = 0; fail < 2; fail++) {
        jobs[n - 1].fail = fail ? -EIO : 0;
        cbinfo c = { 0 };
        mproc_results *r;
        mproc_future *done;
        mproc_map_opts o;
        CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n, fixed8(&o, 9), ok_cb,
                                 err_cb, &c, &r, &done));
        CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), fail ? -EIO : 0);
        WAIT_UNTIL(atomic_load(&c.ok) + atomic_load(&c.err) == 1, LONG_MS);
        CHECK_EQ(atomic_load(fail ? &c.err : &c.ok), 1);
        CHECK_EQ(atomic_load(&c.code_seen), fail ? -EIO : 0);
        CHECK(atomic_load(&c.f_seen) == done);
        const int64_t *y = dense_i64(r, n);
        for (size_t i = 0; i + 1 < n; i++) {
            CHECK_EQ(y[i], (int64_t)(i * i));
            check_job_ok(r, i);
        }
        if (fail)
            check_fixed_failed(r, n - 1, -EIO, "job 499 failed");
        else
            check_job_ok(r, n - 1);
        mproc_future_release(done);
        mproc_results_destroy(r);
    }
    /* Results dropped at once (out == NULL): the callback still runs. */
    cbinfo c = { 0 };
    mproc_map_opts o;
    jobs[n - 1].fail = 0;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n, fixed8(&o, 0), ok_cb, err_cb,
                             &c, NULL, NULL));
    WAIT_UNTIL(atomic_load(&c.ok) == 1, LONG_MS);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.err), 0);
    free(jobs);
}

/* The map's first chunk runs (held) when shutdown(cancel_futures) comes:
 * the items of the queued chunks report MPROC_ECANCELLED with zero bytes,
 * the running chunk's items their results. */
TEST(fixed_partly_cancelled_by_shutdown)
{
    const size_t n = 50, cs = 5;
    mproc_executor *ex = make_ex(1);
    mproc_event go;
    CHECK_OK(mproc_event_init(&go, 0));
    atomic_int started = 0;
    job *jobs = make_jobs(n);
    jobs[2].wait = &go;
    jobs[2].started = &started;
    cbinfo c = { 0 };
    mproc_results *r;
    mproc_future *done;
    mproc_map_opts o;
    CHECK_OK(mproc_map_async(ex, job_task, jobs, sizeof *jobs, n, fixed8(&o, cs), ok_cb, err_cb,
                             &c, &r, &done));
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(ex, job_task, jobs, sizeof *jobs, n, fixed8(&o, 3), &iter));
    WAIT_UNTIL(atomic_load(&started) == 1, LONG_MS);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    for (size_t i = cs; i < n; i++) /* cancelled during the shutdown call */
        check_item_failed(r, i, MPROC_ECANCELLED, "");
    errno = 0;
    CHECK(mproc_results_data(r, NULL) == NULL);
    CHECK_EQ(errno, EAGAIN);
    CHECK_OK(mproc_event_set(&go));
    CHECK_RC(mproc_future_result(done, LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    WAIT_UNTIL(atomic_load(&c.err) == 1, LONG_MS);
    const int64_t *y = dense_i64(r, n);
    for (size_t i = 0; i < cs; i++) {
        check_job_ok(r, i);
        CHECK_EQ(y[i], (int64_t)(i * i));
    }
    for (size_t i = cs; i < n; i++)
        check_fixed_failed(r, i, MPROC_ECANCELLED, "");
    /* The iterator's map was queued entirely: every item cancelled. */
    mproc_item it;
    for (size_t i = 0; i < n; i++) {
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
        CHECK_EQ(it.index, i);
        CHECK_EQ(it.code, MPROC_ECANCELLED);
        CHECK(it.data == NULL && it.len == 0);
    }
    CHECK_RC(mproc_imap_next(iter, 0, &it), 0);
    mproc_imap_destroy(iter);
    mproc_future_release(done);
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c.ok), 0);
    free(jobs);
}

/* Task (arg: inner_args): a fixed-size map of its own from inside an item
 * of a fixed-size map, summed from the dense array. */
static int fixed_mapping_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    CHECK_EQ(len, sizeof(inner_args));
    const inner_args *a = arg;
    int64_t *v = make_values(a->n);
    mproc_results *r;
    mproc_map_opts o;
    CHECK_OK(mproc_map(a->ex, square_task, v, sizeof *v, a->n, fixed8(&o, a->chunksize), &r));
    const int64_t *y = dense_i64(r, a->n);
    int64_t sum = 0;
    for (size_t i = 0; i < a->n; i++)
        sum += y[i];
    mproc_results_destroy(r);
    free(v);
    return mproc_return(ctx, &sum, sizeof sum);
}

/* A worker waiting for an inner map runs other chunks (of both maps) on
 * the same thread as the outer item: each keeps its own context. */
TEST(fixed_map_of_maps_one_and_two_workers)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        mproc_executor *ex = make_ex(workers);
        const size_t n = 30;
        inner_args *outer = calloc(n, sizeof *outer);
        CHECK(outer != NULL);
        for (size_t i = 0; i < n; i++)
            outer[i] = (inner_args){ .ex = ex, .n = 20 + i % 3, .chunksize = i % 4 };
        mproc_results *r;
        mproc_map_opts o;
        CHECK_OK(mproc_map(ex, fixed_mapping_task, outer, sizeof *outer, n, fixed8(&o, 2), &r));
        const int64_t *y = dense_i64(r, n);
        for (size_t i = 0; i < n; i++) {
            int64_t want = 0;
            for (size_t k = 0; k < outer[i].n; k++)
                want += val(k) * val(k);
            CHECK_EQ(y[i], want);
            check_i64_item(r, i, want);
        }
        mproc_results_destroy(r);
        free(outer);
        mproc_executor_destroy(ex);
    }
}

/* ------------------------------------------------------------------ */
/* bad arguments                                                       */
/* ------------------------------------------------------------------ */

TEST(bad_args)
{
    mproc_executor *ex = make_ex(1);
    int64_t v[4] = { 1, 2, 3, 4 };
    const size_t big = SIZE_MAX / 2 + 1;
    struct {
        mproc_executor *ex;
        mproc_task_fn fn;
        const void *items;
        size_t item_size, n;
    } bad[] = {
        { NULL, never_task, v, 8, 4 },
        { ex, NULL, v, 8, 4 },
        { ex, never_task, NULL, 8, 4 },
        { ex, never_task, v, 0, 4 },
        { ex, never_task, v, big, 2 },             /* n * item_size overflows */
        { ex, never_task, v, 2, big },
        { ex, never_task, v, SIZE_MAX, SIZE_MAX },
        { ex, never_task, v, SIZE_MAX / 3 + 1, 3 },
    };
    cbinfo c = { 0 };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        mproc_results *r = NOT_NULL(mproc_results);
        CHECK_RC(mproc_map(bad[k].ex, bad[k].fn, bad[k].items, bad[k].item_size, bad[k].n, NULL,
                           &r),
                 -EINVAL);
        CHECK(r == NULL);
        mproc_future *done = NOT_NULL(mproc_future);
        r = NOT_NULL(mproc_results);
        CHECK_RC(mproc_map_async(bad[k].ex, bad[k].fn, bad[k].items, bad[k].item_size, bad[k].n,
                                 NULL, ok_cb, err_cb, &c, &r, &done),
                 -EINVAL);
        CHECK(r == NULL && done == NULL);
        mproc_imap_iter *iter = NOT_NULL(mproc_imap_iter);
        CHECK_RC(mproc_imap(bad[k].ex, bad[k].fn, bad[k].items, bad[k].item_size, bad[k].n, NULL,
                            &iter),
                 -EINVAL);
        CHECK(iter == NULL);
        iter = NOT_NULL(mproc_imap_iter);
        CHECK_RC(mproc_imap_unordered(bad[k].ex, bad[k].fn, bad[k].items, bad[k].item_size,
                                      bad[k].n, NULL, &iter),
                 -EINVAL);
        CHECK(iter == NULL);
    }
    /* NULL out. */
    CHECK_RC(mproc_map(ex, never_task, v, 8, 4, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_imap(ex, never_task, v, 8, 4, NULL, NULL), -EINVAL);
    CHECK_RC(mproc_imap_unordered(ex, never_task, v, 8, 4, NULL, NULL), -EINVAL);

    /* Results and iterators. */
    mproc_results *r;
    CHECK_OK(mproc_map(ex, square_task, v, 8, 4, NULL, &r));
    mproc_item it;
    CHECK_RC(mproc_results_get(NULL, 0, &it), -EINVAL);
    CHECK_RC(mproc_results_get(r, 4, &it), -EINVAL);
    CHECK_RC(mproc_results_get(r, SIZE_MAX, &it), -EINVAL);
    CHECK_RC(mproc_results_get(r, 0, NULL), -EINVAL);
    CHECK_EQ(mproc_results_count(NULL), 0);
    CHECK_EQ(mproc_results_count(r), 4);
    mproc_results_destroy(r);
    mproc_results_destroy(NULL);
    mproc_imap_iter *iter;
    CHECK_OK(mproc_imap(ex, square_task, v, 8, 4, NULL, &iter));
    CHECK_RC(mproc_imap_next(NULL, 0, &it), -EINVAL);
    CHECK_RC(mproc_imap_next(iter, 0, NULL), -EINVAL);
    CHECK_RC(mproc_imap_next(iter, -2, &it), -EINVAL);
    for (int i = 0; i < 4; i++)
        CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 1);
    CHECK_RC(mproc_imap_next(iter, LONG_MS, &it), 0);
    mproc_imap_destroy(iter);
    mproc_imap_destroy(NULL);

    /* apply / apply_async. */
    mproc_future *f = NOT_NULL(mproc_future);
    CHECK_RC(mproc_apply(NULL, never_task, v, 8, &f), -EINVAL);
    CHECK(f == NULL);
    f = NOT_NULL(mproc_future);
    CHECK_RC(mproc_apply(ex, NULL, v, 8, &f), -EINVAL);
    CHECK(f == NULL);
    f = NOT_NULL(mproc_future);
    CHECK_RC(mproc_apply(ex, never_task, NULL, 8, &f), -EINVAL);
    CHECK(f == NULL);
    f = NOT_NULL(mproc_future);
    CHECK_RC(mproc_apply_async(NULL, never_task, v, 8, ok_cb, err_cb, &c, &f), -EINVAL);
    CHECK(f == NULL);
    f = NOT_NULL(mproc_future);
    CHECK_RC(mproc_apply_async(ex, NULL, v, 8, ok_cb, err_cb, &c, &f), -EINVAL);
    CHECK(f == NULL);
    f = NOT_NULL(mproc_future);
    CHECK_RC(mproc_apply_async(ex, never_task, NULL, 8, ok_cb, NULL, &c, &f), -EINVAL);
    CHECK(f == NULL);
    CHECK_RC(mproc_apply_async(ex, never_task, NULL, 8, NULL, NULL, NULL, NULL), -EINVAL);
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&never_ran), 0);
    CHECK_EQ(atomic_load(&c.ok) + atomic_load(&c.err), 0);
}

/* ---- mproc_return: the macro and the function ------------------------ */

static atomic_int arg_evaluations;

static const int64_t *counted(const int64_t *p)
{
    atomic_fetch_add(&arg_evaluations, 1);
    return p;
}

/* Even items through the macro (its data argument counted, to see it is
 * evaluated once), odd ones through a pointer to the function. */
static int square_both_ways(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    int64_t y = x * x;
    if (x % 2 == 0)
        return mproc_return(ctx, counted(&y), sizeof y);
    int (*fn)(mproc_ctx *, const void *, size_t) = &mproc_return;
    return fn(ctx, &y, sizeof y);
}

TEST(return_macro_and_function_agree)
{
    for (int dense = 0; dense < 2; dense++) {
        mproc_executor *ex = make_ex(2);
        enum { N = 1000 };
        int64_t in[N];
        for (int i = 0; i < N; i++)
            in[i] = i;
        atomic_store(&arg_evaluations, 0);
        mproc_results *r;
        mproc_map_opts o = { .result_size = dense ? sizeof(int64_t) : 0 };
        CHECK_OK(mproc_map(ex, square_both_ways, in, sizeof in[0], N, &o, &r));
        for (int i = 0; i < N; i++) {
            mproc_item it;
            CHECK_OK(mproc_results_get(r, (size_t)i, &it));
            int64_t v;
            CHECK_EQ(it.len, sizeof v);
            memcpy(&v, it.data, sizeof v);
            CHECK_EQ(v, (int64_t)i * i);
        }
        CHECK_EQ(atomic_load(&arg_evaluations), N / 2);
        mproc_results_destroy(r);
        mproc_executor_destroy(ex);
    }
}
