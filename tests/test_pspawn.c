/*
 * tests/test_pspawn.c -- process executors whose workers are spawned
 * (MPROC_START_SPAWN): each worker is a fresh start of this test program,
 * which is linked without -rdynamic and whose tasks are static, so they
 * reach the workers as (object, offset) references (workers/fnref.h).
 * Results and map, crashes and replacement, initializer and its initarg
 * bytes, deadlines, cancel, recycling, initializer retries, the memory
 * limit, functions a
 * worker cannot have (an address that is not code, plugins loaded with
 * dlopen), bad arguments.
 *
 * A spawned worker shares none of the test's memory: flags it must see
 * live in a memfd that it maps through /proc, named in the environment it
 * inherits. Nothing waits by sleeping.
 *
 * Sanitizers: a spawned worker re-executes the sanitized binary, so each
 * start costs the sanitizer's start-up (about 2 ms plain, 10-20 ms under
 * ASan, around half a second under TSan, which maps its shadow memory
 * afresh): the tests start few workers, and the slowest (initializer
 * retries: seven starts) takes about 8 s under TSan. A SIGSEGV in a
 * worker is caught by ASan or TSan, which report it on stderr and exit:
 * the message then says "exited with status" instead of "killed by
 * SIGSEGV".
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 30000

/* ---- memory the workers share with the test ------------------------------ */

typedef struct shared {
    atomic_int started; /* tasks or initializers that began */
    atomic_int inits;   /* initializer calls */
} shared;

static shared *sh;

#define SHARED_ENV "MPROC_TEST_PSPAWN_SHARED"

static void setup(void)
{
    int fd = memfd_create("test-pspawn", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, sizeof *sh) == 0);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(sh != MAP_FAILED);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), fd);
    CHECK(setenv(SHARED_ENV, path, 1) == 0);
}

/* The shared block, in the test and in a spawned worker (mapped on first
 * use there). */
static shared *S(void)
{
    if (!sh) {
        const char *path = getenv(SHARED_ENV);
        int fd = path ? open(path, O_RDWR | O_CLOEXEC) : -1;
        if (fd < 0)
            _exit(100);
        sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (sh == MAP_FAILED)
            _exit(101);
    }
    return sh;
}

static mproc_executor *make(unsigned workers)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = workers,
                                                               .start = MPROC_START_SPAWN }));
    return ex;
}

static int64_t result_i64(mproc_future *f)
{
    const void *d;
    size_t n;
    CHECK_OK(mproc_future_result(f, LONG_MS, &d, &n));
    CHECK_EQ(n, sizeof(int64_t));
    int64_t v;
    memcpy(&v, d, sizeof v);
    return v;
}

/* The future's failure message (f must have failed). */
static const char *message_of(mproc_future *f)
{
    int code;
    const char *msg = NULL;
    CHECK_OK(mproc_future_error(f, &code, &msg));
    CHECK(msg != NULL);
    return msg;
}

/* ---- tasks: all static, in a program linked without -rdynamic ------------- */

/* x -> x*x (int64). */
static int square(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(int64_t))
        return mproc_fail(ctx, -EINVAL, "want 8 bytes, got %zu", len);
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x *= x;
    return mproc_return(ctx, &x, sizeof x);
}

/* Set by the test before it creates an executor: a fork worker would see
 * it, a spawned one starts from the program's own initial value. */
static int parent_mark;

static int mark_and_pid(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int64_t v = (int64_t)getpid() * 1000 + parent_mark;
    return mproc_return(ctx, &v, sizeof v);
}

static int whoami(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int64_t v = getpid();
    return mproc_return(ctx, &v, sizeof v);
}

static int segv(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    raise(SIGSEGV);
    return 0;
}

static int forever(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_fetch_add(&S()->started, 1);
    for (;;)
        pause();
    return 0;
}

static int until_cancelled(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    atomic_fetch_add(&S()->started, 1);
    while (!mproc_cancel_requested(ctx))
        usleep(200);
    int64_t v = 7;
    return mproc_return(ctx, &v, sizeof v);
}

/* ---- results and map ---------------------------------------------------- */

TEST(submit_and_map_with_static_tasks)
{
    setup();
    parent_mark = 7;
    mproc_executor *ex = make(2);
    CHECK_EQ(mproc_executor_workers(ex), 2);
    mproc_executor_details d;
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK_EQ(d.start, MPROC_START_SPAWN);
    enum { N = 100 };
    int64_t in[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        in[i] = i - 30;
        CHECK_OK(mproc_submit(ex, square, &in[i], sizeof in[i], &f[i]));
    }
    for (int i = 0; i < N; i++) {
        CHECK_EQ(result_i64(f[i]), in[i] * in[i]);
        mproc_future_release(f[i]);
    }
    /* A fresh program: another process, without the parent's memory. */
    mproc_future *g;
    CHECK_OK(mproc_submit(ex, mark_and_pid, NULL, 0, &g));
    int64_t v = result_i64(g);
    CHECK(v / 1000 != getpid());
    CHECK_EQ(v % 1000, 0);
    mproc_future_release(g);

    /* map and imap send the item function inside each chunk. */
    static int64_t xs[500];
    for (int i = 0; i < 500; i++)
        xs[i] = i;
    for (int fixed = 0; fixed < 2; fixed++) {
        mproc_results *r;
        mproc_map_opts o = { .chunksize = fixed ? 0 : 17, .result_size = fixed ? 8 : 0 };
        CHECK_OK(mproc_map(ex, square, xs, sizeof xs[0], 500, &o, &r));
        for (int i = 0; i < 500; i++) {
            mproc_item it;
            CHECK_OK(mproc_results_get(r, (size_t)i, &it));
            CHECK_EQ(it.len, 8);
            int64_t y;
            memcpy(&y, it.data, sizeof y);
            CHECK_EQ(y, (int64_t)i * i);
        }
        mproc_results_destroy(r);
    }
    mproc_imap_iter *it;
    CHECK_OK(mproc_imap(ex, square, xs, sizeof xs[0], 50, &(mproc_map_opts){ .chunksize = 7 },
                        &it));
    for (int i = 0; i < 50; i++) {
        mproc_item item;
        CHECK_EQ(mproc_imap_next(it, LONG_MS, &item), 1);
        CHECK_OK(item.code);
        int64_t y;
        memcpy(&y, item.data, sizeof y);
        CHECK_EQ(y, (int64_t)i * i);
    }
    mproc_imap_destroy(it);
    mproc_executor_destroy(ex);
}

/* ---- crashes and replacement -------------------------------------------- */

static uint64_t restarts_died(mproc_executor *ex)
{
    mproc_executor_counters c;
    CHECK_OK(mproc_executor_stats(ex, &c));
    return c.restarts_died;
}

TEST(crash_fails_only_its_task_and_the_replacement_serves)
{
    setup();
    mproc_executor *ex = make(2);
    enum { N = 20 };
    int64_t in[N];
    mproc_future *f[N];
    for (int i = 0; i < N; i++) {
        in[i] = i;
        CHECK_OK(mproc_submit(ex, i == 5 ? segv : square, &in[i], sizeof in[i], &f[i]));
    }
    for (int i = 0; i < N; i++) {
        if (i == 5) {
            CHECK_RC(mproc_future_result(f[i], LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
            const char *msg = message_of(f[i]);
            CHECK_MSG(strncmp(msg, "worker ", 7) == 0 &&
                          (strstr(msg, "killed by SIGSEGV") || strstr(msg, "exited with status")),
                      "'%s'", msg);
        } else {
            CHECK_EQ(result_i64(f[i]), in[i] * in[i]);
        }
        mproc_future_release(f[i]);
    }
    /* The replacement is a spawned worker too, and serves. */
    WAIT_UNTIL(restarts_died(ex) == 1, LONG_MS);
    for (int i = 0; i < 4; i++) {
        int64_t x = 11;
        mproc_future *g;
        CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &g));
        CHECK_EQ(result_i64(g), 121);
        mproc_future_release(g);
    }
    mproc_executor_destroy(ex);
}

/* ---- the initializer and its bytes -------------------------------------- */

/* What the initializer saw, kept by each worker process. */
static char init_seen[64];

static int init_copy(void *arg)
{
    atomic_fetch_add(&S()->inits, 1);
    memcpy(init_seen, arg, sizeof init_seen);
    ((char *)arg)[0] = '!'; /* the process's own copy: nobody else sees this */
    return 0;
}

/* Thread workers share one copy: they only read it. */
static char thread_want[64];
static atomic_int thread_matches;

static int init_compare(void *arg)
{
    atomic_fetch_add(&S()->inits, 1);
    if (memcmp(arg, thread_want, sizeof thread_want) == 0)
        atomic_fetch_add(&thread_matches, 1);
    return 0;
}

static int tell_seen(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    return mproc_return(ctx, init_seen, sizeof init_seen);
}

/* Every start method (and a thread executor) hands the initializer a copy
 * of initarg taken at create: the caller changes its buffer right after,
 * and the workers still see the original. */
TEST(initializer_gets_a_copy_of_the_initarg_bytes)
{
    setup();
    static const mproc_start_method m[] = { MPROC_START_SPAWN, MPROC_START_FORKSERVER,
                                            MPROC_START_FORK };
    for (int k = 0; k < 4; k++) {
        bool threads = k == 3;
        char bytes[64] = { 0 };
        snprintf(bytes, sizeof bytes, "hola, trabajador (%d)", k);
        char want[64];
        memcpy(want, bytes, sizeof want);
        memcpy(thread_want, bytes, sizeof want);
        atomic_store(&sh->inits, 0);
        init_seen[0] = '\0';
        mproc_executor *ex;
        CHECK_OK(mproc_executor_create(
            &ex, &(mproc_executor_opts){ .kind = threads ? MPROC_THREADS : MPROC_PROCESSES,
                                         .workers = 2,
                                         .start = threads ? MPROC_START_DEFAULT : m[k],
                                         .initializer = threads ? init_compare : init_copy,
                                         .initarg = bytes, .initarg_len = sizeof bytes }));
        memset(bytes, 'x', sizeof bytes);
        if (!threads) {
            for (int i = 0; i < 4; i++) {
                mproc_future *f;
                CHECK_OK(mproc_submit(ex, tell_seen, NULL, 0, &f));
                const void *d;
                size_t n;
                CHECK_OK(mproc_future_result(f, LONG_MS, &d, &n));
                CHECK_EQ(n, sizeof want);
                CHECK_MSG(memcmp(d, want, sizeof want) == 0, "method %d saw '%.64s'", (int)m[k],
                          (const char *)d);
                mproc_future_release(f);
            }
        }
        WAIT_UNTIL(atomic_load(&sh->inits) == 2, LONG_MS);
        mproc_executor_destroy(ex);
        if (threads)
            CHECK_EQ(atomic_load(&thread_matches), 2);
    }
}

/* Fails the first two times (across workers), then works. */
static int init_flaky(void *arg)
{
    (void)arg;
    return atomic_fetch_add(&S()->inits, 1) < 2 ? -EIO : 0;
}

static int init_fails(void *arg)
{
    (void)arg;
    atomic_fetch_add(&S()->inits, 1);
    return -EIO;
}

TEST_T(initializer_retries_and_breaking, 60)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .start = MPROC_START_SPAWN,
                                                               .initializer = init_flaky }));
    int64_t x = 6;
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 36);
    mproc_future_release(f);
    CHECK_EQ(atomic_load(&sh->inits), 3); /* two failures, then one success */
    mproc_executor_destroy(ex);

    atomic_store(&sh->inits, 0);
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .start = MPROC_START_SPAWN,
                                                               .initializer = init_fails }));
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EBROKEN);
    const char *msg = message_of(f);
    CHECK_MSG(strstr(msg, "initializer failed 4 times in a row"), "'%s'", msg);
    mproc_future_release(f);
    CHECK_EQ(atomic_load(&sh->inits), 4);
    mproc_executor_destroy(ex);
}

/* ---- deadlines, cancel, recycling ------------------------------------------ */

TEST_T(deadlines_cancel_and_recycling, 60)
{
    setup();
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .start = MPROC_START_SPAWN,
                                                               .max_tasks_per_child = 2,
                                                               .flags = MPROC_CANCEL_KILL }));
    /* Past its deadline: stopped, the future says so. */
    mproc_future *f;
    CHECK_OK(mproc_submit_ex(ex, forever, NULL, 0, &(mproc_submit_opts){ .timeout_ms = 100 },
                             &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ETASKTIMEOUT);
    const char *msg = message_of(f);
    CHECK_MSG(strstr(msg, "task ran past its 100 ms deadline; worker "), "'%s'", msg);
    mproc_future_release(f);

    /* Cancel with MPROC_CANCEL_KILL: the worker is killed and replaced. */
    atomic_store(&sh->started, 0);
    CHECK_OK(mproc_submit(ex, forever, NULL, 0, &f));
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    CHECK_EQ(mproc_future_cancel(f), 1);
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ECANCELLED);
    mproc_future_release(f);

    /* Recycling: two tasks per process. */
    enum { N = 6 };
    mproc_future *g[N];
    for (int i = 0; i < N; i++)
        CHECK_OK(mproc_submit(ex, whoami, NULL, 0, &g[i]));
    int64_t pid[N];
    for (int i = 0; i < N; i++) {
        pid[i] = result_i64(g[i]);
        mproc_future_release(g[i]);
    }
    for (int i = 0; i < N; i += 2) {
        CHECK_EQ(pid[i], pid[i + 1]);
        if (i > 0)
            CHECK(pid[i] != pid[i - 1]);
    }
    mproc_executor_destroy(ex);

    /* Without MPROC_CANCEL_KILL, a running task sees the request. */
    ex = make(1);
    atomic_store(&sh->started, 0);
    CHECK_OK(mproc_submit(ex, until_cancelled, NULL, 0, &f));
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    CHECK_EQ(mproc_future_cancel(f), 0);
    CHECK_EQ(result_i64(f), 7);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* ---- memory limit ---------------------------------------------------------- */

#define MEM_LIMIT ((size_t)64 << 20)

/* One block twice the limit, every page touched: refused (RLIMIT_AS)
 * or killed (a cgroup) under the limit. The stores go through a volatile
 * pointer: to memory freed right after they would be dead, and dropped. */
static int huge_block(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    volatile unsigned char *p = malloc(MEM_LIMIT * 2);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < MEM_LIMIT * 2; i += 4096)
        p[i] = 1;
    free((void *)p);
    return mproc_fail(ctx, -EPERM, "a block twice the limit was granted");
}

/* The limit is set up in the spawned worker's prologue as in a forked
 * one: the cgroup it moves into (where one can be made: AUTO) and
 * RLIMIT_AS. Sanitizer runtimes reserve their heaps up front, so
 * RLIMIT_AS does not bound them (test_memlimit.c): not tried there. */
TEST(memory_limit_applies_to_spawned_workers)
{
    static const int via[] = { MPROC_MEMLIMIT_AUTO, MPROC_MEMLIMIT_RLIMIT_AS };
    for (int i = 0; i < 2; i++) {
        mproc_executor *ex;
        CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
                                                .kind = MPROC_PROCESSES, .workers = 1,
                                                .start = MPROC_START_SPAWN,
                                                .worker_memory_limit = MEM_LIMIT,
                                                .memory_limit_via = via[i] }));
        mproc_executor_details d;
        CHECK_OK(mproc_executor_info(ex, &d));
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
        if (d.memory_limit == MPROC_MEMLIMIT_RLIMIT_AS) {
            mproc_executor_destroy(ex);
            continue;
        }
#endif
        mproc_future *f;
        CHECK_OK(mproc_submit(ex, huge_block, NULL, 0, &f));
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EMEMLIMIT);
        mproc_future_release(f);
        int64_t x = 8;
        CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
        CHECK_EQ(result_i64(f), 64);
        mproc_future_release(f);
        mproc_executor_destroy(ex);
    }
}

/* ---- functions a spawned worker cannot have ------------------------------- */

/* A page of data, not code: no object has it. */
static mproc_task_fn stray_task(void **page)
{
    *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(*page != MAP_FAILED);
    mproc_task_fn fn;
    memcpy(&fn, page, sizeof fn);
    return fn;
}

/* fn fails on ex with MPROC_ENOSYMBOL and a message containing `want`;
 * ex still serves afterwards. */
static void expect_not_found(mproc_executor *ex, mproc_task_fn fn, const char *want)
{
    mproc_future *f;
    int64_t x = 3;
    CHECK_OK(mproc_submit(ex, fn, &x, sizeof x, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ENOSYMBOL);
    const char *msg = message_of(f);
    CHECK_MSG(strstr(msg, want), "'%s' lacks '%s'", msg, want);
    mproc_future_release(f);
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 9);
    mproc_future_release(f);
}

static void *load_plugin(const char *path, mproc_task_fn *task, int (**init)(void *))
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK_MSG(h != NULL, "dlopen %s: %s", path, dlerror());
    void *t = dlsym(h, "pspawn_plugin_task"), *i = dlsym(h, "pspawn_plugin_init");
    CHECK(t && i);
    memcpy(task, &t, sizeof *task);
    memcpy(init, &i, sizeof *init);
    return h;
}

/* Plugin a is loaded before this process first spawns (so it is in the
 * table the workers get, and they find they lack it); plugin b after
 * (refused in the parent). Either way the future fails with
 * MPROC_ENOSYMBOL naming the plugin, and the pool serves on. */
TEST_T(functions_a_spawned_worker_cannot_have_fail_cleanly, 60)
{
    setup();
    mproc_task_fn task_a, task_b;
    int (*init_a)(void *), (*init_b)(void *);
    void *ha = load_plugin(PSPAWN_PLUGIN_A, &task_a, &init_a);
    mproc_executor *ex = make(1);
    void *hb = load_plugin(PSPAWN_PLUGIN_B, &task_b, &init_b);

    expect_not_found(ex, task_a, "libpspawn_plugin_a.so, which is not loaded in this spawned");
    expect_not_found(ex, task_b, "libpspawn_plugin_b.so, which was loaded at run time (dlopen)");
    void *page;
    mproc_task_fn stray = stray_task(&page);
    expect_not_found(ex, stray, "is in the code of no loaded object");

    /* map: refused in the parent (the call fails), or item by item in
     * the worker. */
    static int64_t xs[20];
    mproc_results *r;
    CHECK_RC(mproc_map(ex, task_b, xs, sizeof xs[0], 20, NULL, &r), MPROC_ENOSYMBOL);
    CHECK_RC(mproc_map(ex, stray, xs, sizeof xs[0], 20, NULL, &r), MPROC_ENOSYMBOL);
    CHECK_RC(mproc_map(ex, task_a, xs, sizeof xs[0], 20, &(mproc_map_opts){ .chunksize = 5 },
                       &r),
             MPROC_ENOSYMBOL);
    for (size_t i = 0; i < 20; i++) {
        mproc_item it;
        CHECK_RC(mproc_results_get(r, i, &it), MPROC_ENOSYMBOL);
    }
    mproc_results_destroy(r);
    CHECK_OK(mproc_map(ex, square, xs, sizeof xs[0], 20, NULL, &r));
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);

    /* Initializers: refused at create, or the executor breaks saying why. */
    mproc_executor_opts o = { .kind = MPROC_PROCESSES, .workers = 1,
                              .start = MPROC_START_SPAWN };
    int (*stray_init)(void *);
    memcpy(&stray_init, &page, sizeof stray_init);
    o.initializer = stray_init;
    CHECK_RC(mproc_executor_create(&ex, &o), MPROC_ENOSYMBOL);
    o.initializer = init_b;
    CHECK_RC(mproc_executor_create(&ex, &o), MPROC_ENOSYMBOL);
    o.initializer = init_a;
    CHECK_OK(mproc_executor_create(&ex, &o));
    mproc_future *f;
    int64_t x = 2;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EBROKEN);
    const char *msg = message_of(f);
    CHECK_MSG(strstr(msg, "initializer failed 4 times") &&
                  strstr(msg, "libpspawn_plugin_a.so, which is not loaded"),
              "'%s'", msg);
    mproc_future_release(f);
    mproc_executor_destroy(ex);

    munmap(page, 4096);
    dlclose(hb);
    dlclose(ha);
}

/* ---- bad arguments ------------------------------------------------------------ */

static int init_ok(void *arg)
{
    (void)arg;
    return 0;
}

TEST(bad_arguments)
{
    mproc_executor *ex = NULL;
    int v = 1;
    /* A pointer means nothing in a spawned worker: bytes are required. */
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .start = MPROC_START_SPAWN,
                                                               .initializer = init_ok,
                                                               .initarg = &v }),
             -EINVAL);
    /* Bytes need a pointer, whatever the kind. */
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .start = MPROC_START_SPAWN,
                                                               .initializer = init_ok,
                                                               .initarg_len = 4 }),
             -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .initarg_len = 4 }), -EINVAL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .start = (mproc_start_method)7 }),
             -EINVAL);
    CHECK(ex == NULL);
    /* An initializer without an argument is fine. */
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .start = MPROC_START_SPAWN,
                                                               .initializer = init_ok }));
    int64_t x = 5;
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, square, &x, sizeof x, &f));
    CHECK_EQ(result_i64(f), 25);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}
