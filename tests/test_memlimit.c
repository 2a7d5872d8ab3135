/*
 * tests/test_memlimit.c -- worker_memory_limit on process executors: a
 * task that allocates past the limit fails alone with MPROC_EMEMLIMIT,
 * however it reacts to the failed allocation (returns -ENOMEM, writes
 * through NULL, aborts); its worker is replaced and every other task's
 * result is complete; a task under the limit is not disturbed; another
 * kind of crash is not mistaken for the limit. Both ways of enforcing it:
 * RLIMIT_AS, and a memory cgroup per worker where this process may make
 * them (as root on this project's machines: cgroup v1; the cgroup tests
 * say so and stop where there is none), whose kernel-side kill must be
 * told from a kill from outside, and whose cgroups must not outlive
 * their executor, or a killed process.
 *
 * Every bomb stops at BOMB_CAP whatever happens, so an unenforced limit
 * fails the test instead of eating the machine's memory.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 30000
#define LIMIT ((size_t)64 << 20)
#define CHUNK ((size_t)1 << 20)
#define BOMB_CAP ((size_t)1 << 30)

/* Sanitizer runtimes reserve terabytes of address space up front and
 * serve allocations from it, so RLIMIT_AS does not bound their heaps. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

enum { B_RETURN, B_WRITE_NULL, B_ABORT, B_ONE_HUGE };

/* Allocate CHUNKs (touching them) until malloc fails, then react as the
 * argument says. Returns 1 if BOMB_CAP was reached without a failure. */
static int bomb(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int how = *(const int *)arg;
    if (how == B_ONE_HUGE) {
        void *p = malloc(LIMIT * 2);
        if (!p)
            return -ENOMEM;
        free(p);
        return mproc_fail(ctx, -EPERM, "a block twice the limit was granted");
    }
    enum { MAXN = BOMB_CAP / CHUNK };
    static char *held[MAXN];
    size_t n = 0;
    for (; n < MAXN; n++) {
        held[n] = malloc(CHUNK);
        if (!held[n])
            break;
        memset(held[n], 0x5a, CHUNK);
    }
    if (n == MAXN)
        return mproc_fail(ctx, -EPERM, "allocated %zu MiB under a %zu MiB limit",
                          BOMB_CAP >> 20, LIMIT >> 20);
    switch (how) {
    case B_WRITE_NULL:
        memset(held[n], 1, CHUNK); /* held[n] is NULL: SIGSEGV */
        break;
    case B_ABORT:
        abort();
    default:
        break;
    }
    for (size_t i = 0; i < n; i++)
        free(held[i]);
    return -ENOMEM;
}

/* Use half the limit, then give it back: must succeed. Under a
 * sanitizer an eighth: in a cgroup its shadow memory counts too (as much
 * again for ThreadSanitizer). */
static int half_limit(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    size_t n = SANITIZED ? LIMIT / 8 : LIMIT / 2;
    volatile char *p = malloc(n); /* volatile: the stores stay */
    if (!p)
        return mproc_fail(ctx, -ENOMEM, "half the limit was refused");
    for (size_t i = 0; i < n; i += 4096)
        p[i] = 1;
    free((void *)p);
    return 0;
}

static int plus_one(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int64_t x;
    memcpy(&x, arg, sizeof x);
    x += 1;
    return mproc_return(ctx, &x, sizeof x);
}

/* A crash that has nothing to do with memory. */
static int plain_crash(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    errno = 0;
    raise(SIGSEGV);
    return 0;
}

static mproc_executor *limited_via(unsigned workers, int via)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .kind = MPROC_PROCESSES, .workers = workers,
                                            .worker_memory_limit = LIMIT,
                                            .memory_limit_via = via }));
    return ex;
}

static mproc_executor *limited(unsigned workers)
{
    return limited_via(workers, MPROC_MEMLIMIT_RLIMIT_AS);
}

/* Submit 20 plus_one tasks around bomb `how` on an executor limited
 * `via`; check the bomb failed with MPROC_EMEMLIMIT and a message naming
 * the limit and containing `want`, and all others are right; then the
 * replacement serves. */
static void bomb_among_others_via(int via, int how, const char *want)
{
    mproc_executor *ex = limited_via(2, via);
    mproc_executor_details det;
    CHECK_OK(mproc_executor_info(ex, &det));
    char limit_text[80];
    snprintf(limit_text, sizeof limit_text, "ran out of memory (worker limit 64 MiB, %s)",
             det.memory_limit_how);
    enum { N = 20 };
    int64_t in[N];
    mproc_future *f[N], *b;
    for (int i = 0; i < N; i++) {
        in[i] = i * 10;
        CHECK_OK(mproc_submit(ex, plus_one, &in[i], sizeof in[i], &f[i]));
        if (i == N / 2)
            CHECK_OK(mproc_submit_ex(ex, bomb, &how, sizeof how,
                                     &(mproc_submit_opts){ .flags = MPROC_COPY_ARG }, &b));
    }
    CHECK_RC(mproc_future_result(b, LONG_MS, NULL, NULL), MPROC_EMEMLIMIT);
    int code;
    const char *msg;
    CHECK_OK(mproc_future_error(b, &code, &msg));
    CHECK_EQ(code, MPROC_EMEMLIMIT);
    CHECK_MSG(strstr(msg, limit_text), "'%s' lacks '%s'", msg, limit_text);
    CHECK_MSG(!want || strstr(msg, want), "'%s' lacks '%s'", msg, want);
    mproc_future_release(b);
    for (int i = 0; i < N; i++) {
        const void *d;
        size_t n;
        CHECK_OK(mproc_future_result(f[i], LONG_MS, &d, &n));
        int64_t v;
        CHECK_EQ(n, sizeof v);
        memcpy(&v, d, sizeof v);
        CHECK_EQ(v, in[i] + 1);
        mproc_future_release(f[i]);
    }
    mproc_executor_counters c;
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.restarts_memory == 1, LONG_MS);
    CHECK_EQ(c.out_of_memory, 1);
    CHECK_EQ(c.failed, 1);
    CHECK_EQ(c.done, N);
    /* The replaced worker still works under the limit. (Once only under
     * a sanitizer: its allocator keeps freed memory in quarantine, and a
     * cgroup counts it.) */
    for (int i = 0; i < (SANITIZED ? 1 : 4); i++) {
        mproc_future *g;
        CHECK_OK(mproc_submit(ex, half_limit, NULL, 0, &g));
        CHECK_OK(mproc_future_result(g, LONG_MS, NULL, NULL));
        mproc_future_release(g);
    }
    mproc_executor_destroy(ex);
}

static void bomb_among_others(int how, const char *want)
{
    bomb_among_others_via(MPROC_MEMLIMIT_RLIMIT_AS, how, want);
}

TEST_T(bomb_that_returns_enomem, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_RETURN, NULL);
}

TEST_T(bomb_that_writes_through_null, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_WRITE_NULL, "killed by SIGSEGV");
}

TEST_T(bomb_that_aborts, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_ABORT, "killed by SIGABRT");
}

TEST_T(one_block_past_the_limit, 60)
{
    if (SANITIZED)
        return;
    bomb_among_others(B_ONE_HUGE, NULL);
}

/* A crash right after a successful call is a crash, not the limit. */
TEST(other_crash_is_not_the_limit)
{
    if (SANITIZED)
        return;
    mproc_executor *ex = limited(1);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, plain_crash, NULL, 0, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    mproc_future_release(f);
    mproc_executor_counters c;
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.restarts_died == 1, LONG_MS);
    CHECK_EQ(c.out_of_memory, 0);
    CHECK_EQ(c.restarts_memory, 0);
    mproc_executor_destroy(ex);
}

/* Unlimited tasks keep working as before; the limit leaves room. */
TEST(limit_leaves_room_under_it)
{
    if (SANITIZED)
        return;
    mproc_executor *ex = limited(2);
    mproc_future *f[8];
    for (int i = 0; i < 8; i++)
        CHECK_OK(mproc_submit(ex, half_limit, NULL, 0, &f[i]));
    for (int i = 0; i < 8; i++) {
        CHECK_OK(mproc_future_result(f[i], LONG_MS, NULL, NULL));
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
}

TEST(info_says_how_memory_is_limited)
{
    mproc_executor *ex = limited(1);
    mproc_executor_details d;
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK_EQ(d.kind, MPROC_PROCESSES);
    CHECK_EQ(d.workers, 1);
    CHECK_EQ(d.start, MPROC_START_FORKSERVER);
    CHECK_EQ(d.worker_memory_limit, LIMIT);
    CHECK_EQ(d.memory_limit, MPROC_MEMLIMIT_RLIMIT_AS);
    CHECK(strcmp(d.memory_limit_how, "RLIMIT_AS") == 0);
    CHECK(strcmp(d.name, "mproc") == 0);
    CHECK(!d.jobserver);
    mproc_executor_destroy(ex);

    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_THREADS,
                                                               .workers = 2, .name = "t" }));
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK_EQ(d.kind, MPROC_THREADS);
    CHECK_EQ(d.workers, 2);
    CHECK_EQ(d.start, MPROC_START_DEFAULT);
    CHECK_EQ(d.memory_limit, MPROC_MEMLIMIT_NONE);
    CHECK(strcmp(d.memory_limit_how, "none") == 0);
    CHECK(strcmp(d.name, "t") == 0);
    CHECK_RC(mproc_executor_info(ex, NULL), -EINVAL);
    CHECK_RC(mproc_executor_info(NULL, &d), -EINVAL);
    mproc_executor_destroy(ex);

    /* Asked for, RLIMIT_AS is what it gets; a bad choice is refused. */
    ex = limited_via(1, MPROC_MEMLIMIT_RLIMIT_AS);
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK_EQ(d.memory_limit, MPROC_MEMLIMIT_RLIMIT_AS);
    mproc_executor_destroy(ex);
    ex = NULL;
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .kind = MPROC_PROCESSES, .workers = 1,
                                            .worker_memory_limit = LIMIT,
                                            .memory_limit_via = 7 }),
             -EINVAL);
    CHECK(ex == NULL);
}

TEST(thread_executors_reject_a_memory_limit)
{
    mproc_executor *ex = NULL;
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){
                                            .kind = MPROC_THREADS, .workers = 1,
                                            .worker_memory_limit = LIMIT }),
             -EINVAL);
    CHECK(ex == NULL);
}

/* ---- memory cgroups ------------------------------------------------------ */

/* The cgroup kind AUTO picks here (MPROC_MEMLIMIT_RLIMIT_AS: none can be
 * made; the caller then says so and stops). */
static mproc_memory_limit_kind auto_kind(void)
{
    mproc_executor *ex = limited_via(1, MPROC_MEMLIMIT_AUTO);
    mproc_executor_details d;
    CHECK_OK(mproc_executor_info(ex, &d));
    mproc_executor_destroy(ex);
    if (d.memory_limit == MPROC_MEMLIMIT_RLIMIT_AS)
        printf("no memory cgroup can be made here (not root, or no memory controller): "
               "the cgroup cases are not run\n");
    return d.memory_limit;
}

TEST_T(bomb_in_a_cgroup_is_killed_and_named, 90)
{
    mproc_memory_limit_kind k = auto_kind();
    if (k == MPROC_MEMLIMIT_RLIMIT_AS)
        return;
    /* malloc does not fail under a cgroup: the kernel kills the worker
     * as it touches the memory past the limit. */
    bomb_among_others_via(k, B_RETURN, "killed by SIGKILL");
    bomb_among_others_via(k, B_WRITE_NULL, "killed by SIGKILL");
}

TEST_T(cgroup_counts_resident_memory_not_reservations, 60)
{
    mproc_memory_limit_kind k = auto_kind();
    if (k == MPROC_MEMLIMIT_RLIMIT_AS)
        return;
    mproc_executor *ex = limited_via(1, k);
    /* Twice the limit, reserved but never touched: fine in a cgroup
     * (the task then fails with its own -EPERM, not the limit); half of
     * it, touched: fine too. */
    int how = B_ONE_HUGE;
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, bomb, &how, sizeof how, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), -EPERM);
    mproc_future_release(f);
    CHECK_OK(mproc_submit(ex, half_limit, NULL, 0, &f));
    CHECK_OK(mproc_future_result(f, LONG_MS, NULL, NULL));
    mproc_future_release(f);
    mproc_executor_destroy(ex);
}

/* Shared with the workers (allocated before the fork server starts). */
static atomic_int *running;

/* Says it runs, then waits for the SIGKILL the test sends. */
static int wait_to_be_killed(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_store(running, 1);
    for (;;)
        pause();
    return 0;
}

static int report_pid(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int64_t pid = getpid();
    return mproc_return(ctx, &pid, sizeof pid);
}

TEST_T(kill_from_outside_is_not_the_cgroup_limit, 60)
{
    running = mproc_shared_calloc(sizeof *running);
    CHECK(running != NULL);
    mproc_memory_limit_kind k = auto_kind();
    if (k == MPROC_MEMLIMIT_RLIMIT_AS)
        return;
    mproc_executor *ex = limited_via(1, k);
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, report_pid, NULL, 0, &f));
    const void *d;
    size_t n;
    CHECK_OK(mproc_future_result(f, LONG_MS, &d, &n));
    int64_t pid;
    memcpy(&pid, d, sizeof pid);
    mproc_future_release(f);
    CHECK_OK(mproc_submit(ex, wait_to_be_killed, NULL, 0, &f));
    WAIT_UNTIL(atomic_load(running), LONG_MS);
    CHECK_OK(kill((pid_t)pid, SIGKILL));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
    mproc_future_release(f);
    mproc_executor_counters c;
    WAIT_UNTIL(mproc_executor_stats(ex, &c) == 0 && c.restarts_died == 1, LONG_MS);
    CHECK_EQ(c.out_of_memory, 0);
    mproc_executor_destroy(ex);
}

/* The directory of this process's cgroup in hierarchy k (v1: the one
 * with the memory controller), found as mproc does, into buf. */
static void own_cgroup_dir(mproc_memory_limit_kind k, char *buf, size_t n)
{
    bool v2 = k == MPROC_MEMLIMIT_CGROUP2;
    FILE *f = fopen("/proc/self/mountinfo", "r");
    CHECK(f != NULL);
    char line[1024], mnt[512] = "", path[512] = "";
    while (!mnt[0] && fgets(line, sizeof line, f)) {
        char m[512], type[64], opts[512];
        const char *dash = strstr(line, " - ");
        if (dash && sscanf(line, "%*s %*s %*s %*s %511s", m) == 1 &&
            sscanf(dash + 3, "%63s %*s %511s", type, opts) == 2 &&
            (v2 ? strcmp(type, "cgroup2") == 0
                : strcmp(type, "cgroup") == 0 && strstr(opts, "memory")))
            snprintf(mnt, sizeof mnt, "%s", m);
    }
    fclose(f);
    f = fopen("/proc/self/cgroup", "r");
    CHECK(f != NULL);
    while (!path[0] && fgets(line, sizeof line, f)) {
        char *c2 = strchr(strchr(line, ':') + 1, ':');
        bool match = v2 ? strncmp(line, "0::", 3) == 0 : strstr(line, "memory") < c2 &&
                                                           strstr(line, "memory") != NULL;
        if (match) {
            c2[strcspn(c2, "\n")] = '\0';
            snprintf(path, sizeof path, "%s", c2 + 1);
        }
    }
    fclose(f);
    CHECK(mnt[0] && path[0]);
    snprintf(buf, n, "%s%s", mnt, strcmp(path, "/") == 0 ? "" : path);
}

/* How many cgroups named mproc-<pid>-... are in dir (with `busy`: only
 * those that still hold a process). */
static int cgroups_of_ex(const char *dir, pid_t pid, bool busy)
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "mproc-%d-", (int)pid);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char procs[1400], pids[64] = "";
        snprintf(procs, sizeof procs, "%s/%s/cgroup.procs", dir, e->d_name);
        FILE *f = busy ? fopen(procs, "r") : NULL;
        if (f) {
            if (!fgets(pids, sizeof pids, f))
                pids[0] = '\0';
            fclose(f);
        }
        n += !busy || pids[0] != '\0';
    }
    closedir(d);
    return n;
}

static int cgroups_of(const char *dir, pid_t pid)
{
    return cgroups_of_ex(dir, pid, false);
}

/* Does making an executor here remove pid's cgroups? */
static bool sweep_removes(const char *dir, pid_t pid, mproc_memory_limit_kind k)
{
    mproc_executor *ex = limited_via(1, k);
    int n = cgroups_of(dir, pid);
    mproc_executor_destroy(ex);
    return n == 0;
}

TEST_T(cgroups_go_with_their_executor_or_killed_process, 60)
{
    mproc_memory_limit_kind k = auto_kind();
    if (k == MPROC_MEMLIMIT_RLIMIT_AS)
        return;
    char dir[1024];
    own_cgroup_dir(k, dir, sizeof dir);
    mproc_executor *ex = limited_via(3, k);
    CHECK_EQ(cgroups_of(dir, getpid()), 3);
    mproc_executor_destroy(ex);
    CHECK_EQ(cgroups_of(dir, getpid()), 0);

    /* A process killed with its executor leaves its cgroups behind; the
     * next executor made here removes them. */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        mproc_executor *e2;
        if (mproc_executor_create(&e2, &(mproc_executor_opts){
                                           .kind = MPROC_PROCESSES, .workers = 2,
                                           .start = MPROC_START_FORK,
                                           .worker_memory_limit = LIMIT,
                                           .memory_limit_via = k }) != 0)
            _exit(3);
        raise(SIGKILL);
    }
    test_expect_child_killed(pid);
    /* Its workers die with it (daemon children): wait until they have. */
    CHECK_EQ(cgroups_of(dir, pid), 2);
    WAIT_UNTIL(cgroups_of_ex(dir, pid, true) == 0, LONG_MS);
    /* Until the orphaned workers are reaped (by init) a cgroup v1 may
     * still count them; the sweep then leaves it for the next one. */
    WAIT_UNTIL(sweep_removes(dir, pid, k), LONG_MS);
}

/* Asked for by name, a cgroup kind either works (and info says so) or
 * create fails with one of the documented codes (on this project's
 * machines cgroup v2 has no memory controller: -ENOTSUP). */
TEST(named_cgroup_kind_works_or_fails_cleanly)
{
    static const mproc_memory_limit_kind kinds[] = { MPROC_MEMLIMIT_CGROUP2,
                                                     MPROC_MEMLIMIT_CGROUP1 };
    for (int i = 0; i < 2; i++) {
        mproc_executor *ex = NULL;
        int rc = mproc_executor_create(&ex, &(mproc_executor_opts){
                                                .kind = MPROC_PROCESSES, .workers = 1,
                                                .worker_memory_limit = LIMIT,
                                                .memory_limit_via = kinds[i] });
        if (rc != 0) {
            CHECK_MSG(rc == -ENOTSUP || rc == -EACCES || rc == -EPERM || rc == -EROFS ||
                          rc == -EBUSY,
                      "kind %d: %s", kinds[i], mproc_strerror(rc));
            CHECK(ex == NULL);
            continue;
        }
        mproc_executor_details d;
        CHECK_OK(mproc_executor_info(ex, &d));
        CHECK_EQ(d.memory_limit, kinds[i]);
        CHECK(strcmp(d.memory_limit_how, i == 0 ? "cgroup v2" : "cgroup v1") == 0);
        mproc_executor_destroy(ex);
    }
}
