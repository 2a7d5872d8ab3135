/*
 * tests/test_jobserver.c -- the GNU make jobserver client
 * (src/exec/jobserver.c) and MPROC_JOBSERVER process executors: a pool
 * of our own, joining make's pipe and make 4.4's fifo, descriptors that
 * must be ignored, fork, an executor held to the pool's size with every
 * token back afterwards on every path, and a real `make -j3`.
 *
 * Each test runs in its own process (the runner forks), so each finds
 * the pool afresh; a test sets MAKEFLAGS itself (ctest may run under
 * make) and then calls mproc__jobserver_note_fds, standing in for the
 * look the library takes when a program inherits make's descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec/jobserver.h"
#include "jobserver_common.h"
#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 30000

static void clean_env(void)
{
    unsetenv("MAKEFLAGS");
    unsetenv("MFLAGS");
    unsetenv("MAKELEVEL");
    unsetenv("MPROC_JOBSERVER_ID");
}

/* Bytes waiting in a pipe. */
static int in_pipe(int fd)
{
    int n = -1;
    CHECK_OK(ioctl(fd, FIONREAD, &n) == 0 ? 0 : -errno);
    return n;
}

static bool readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Take tokens until none is left; how many were taken. */
static int acquire_all(void)
{
    int n = 0, rc;
    while ((rc = mproc__jobserver_try_acquire()) == 1)
        CHECK(++n < 100000);
    CHECK_EQ(rc, 0);
    return n;
}

static void release_n(int n)
{
    for (int i = 0; i < n; i++)
        CHECK_OK(mproc__jobserver_release());
}

/* make's side of a pipe pool holding `tokens` (blocking, inheritable, as
 * make leaves them for a '+' recipe), named in MAKEFLAGS. */
static void make_pipe_pool(int p[2], const char *tokens)
{
    CHECK_OK(pipe(p) == 0 ? 0 : -errno);
    size_t n = strlen(tokens);
    CHECK_EQ(write(p[1], tokens, n), (ssize_t)n);
    char mf[96];
    snprintf(mf, sizeof mf, " -j%zu --jobserver-auth=%d,%d", n + 1, p[0], p[1]);
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", mf, 1));
    mproc__jobserver_note_fds();
}

/* Read all n bytes from make's (blocking) end and sort them. */
static void drain_sorted(int fd, char *out, int n)
{
    CHECK_EQ(in_pipe(fd), n);
    CHECK_EQ(read(fd, out, (size_t)n), (ssize_t)n);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && out[j - 1] > out[j]; j--) {
            char t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
}

/* MAKEFLAGS names a pool this process made ("fifo:/proc/<us>/fd/"). */
static bool own_pool_exported(void)
{
    char want[64];
    snprintf(want, sizeof want, "--jobserver-auth=fifo:/proc/%d/fd/", (int)getpid());
    const char *mf = getenv("MAKEFLAGS");
    return mf && strstr(mf, want) != NULL;
}

/* ---- a pool of our own ----------------------------------------------------- */

TEST_T(own_pool_holds_cpu_count_tokens, 10)
{
    clean_env();
    mproc__jobserver_note_fds();
    CHECK_RC(mproc__jobserver_try_acquire(), -EINVAL); /* not set up */
    CHECK_EQ(mproc__jobserver_fd(), -1);
    CHECK_OK(mproc__jobserver_init());
    CHECK_OK(mproc__jobserver_init()); /* once */
    int n = (int)mproc_cpu_count();
    char want[96];
    snprintf(want, sizeof want, "-j%d --jobserver-auth=fifo:/proc/%d/fd/", n, (int)getpid());
    CHECK_MSG(strstr(getenv("MAKEFLAGS"), want) != NULL, "MAKEFLAGS=%s", getenv("MAKEFLAGS"));
    CHECK(getenv("MPROC_JOBSERVER_ID") != NULL);
    int fd = mproc__jobserver_fd();
    CHECK(fd >= 0);

    /* Exactly n: the implicit one and n - 1 bytes. */
    CHECK_EQ(acquire_all(), n);
    CHECK(!readable(fd));
    CHECK_RC(mproc__jobserver_try_acquire(), 0);
    if (n > 1) {
        CHECK_OK(mproc__jobserver_release()); /* a byte goes back... */
        CHECK(readable(fd));                  /* ...and wakes pollers */
        CHECK_EQ(mproc__jobserver_try_acquire(), 1);
        CHECK(!readable(fd));
    }
    release_n(n);
    CHECK_RC(mproc__jobserver_release(), -EINVAL); /* nothing held */

    /* Another process opens the exported path: a description of its own
     * of the same pipe, holding the n - 1 free bytes. */
    const char *path = strstr(getenv("MAKEFLAGS"), "fifo:") + 5;
    int other = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    CHECK(other >= 0);
    char buf[4096];
    ssize_t got = read(other, buf, sizeof buf);
    CHECK_EQ(got, (ssize_t)(n - 1 > 0 ? n - 1 : -1));
    CHECK_EQ(mproc__jobserver_try_acquire(), 1); /* the implicit one */
    CHECK_RC(mproc__jobserver_try_acquire(), 0); /* the other has the rest */
    if (got > 0)
        CHECK_EQ(write(other, buf, (size_t)got), got);
    close(other);
    CHECK_EQ(acquire_all(), n - 1);
    release_n(n);
}

TEST_T(own_pool_keeps_other_makeflags, 10)
{
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", "k -- FOO=bar", 1));
    mproc__jobserver_note_fds();
    CHECK_OK(mproc__jobserver_init());
    char want[128];
    snprintf(want, sizeof want, "k -j%u --jobserver-auth=fifo:/proc/%d/fd/", mproc_cpu_count(),
             (int)getpid());
    const char *mf = getenv("MAKEFLAGS");
    CHECK_MSG(strncmp(mf, want, strlen(want)) == 0, "MAKEFLAGS=%s", mf);
    size_t len = strlen(mf);
    CHECK_MSG(len > 11 && strcmp(mf + len - 11, " -- FOO=bar") == 0, "MAKEFLAGS=%s", mf);
}

/* ---- joining make's pool --------------------------------------------------- */

TEST_T(pipe_auth_allows_tokens_plus_one, 10)
{
    int p[2];
    make_pipe_pool(p, "cab");
    CHECK_OK(mproc__jobserver_init());
    CHECK(!own_pool_exported());
    /* make's description stays blocking: we read through our own. */
    CHECK_EQ(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    CHECK_EQ(acquire_all(), 4); /* implicit + 3 */
    CHECK_EQ(in_pipe(p[0]), 0);
    CHECK_RC(mproc__jobserver_try_acquire(), 0);
    release_n(4);
    char b[3];
    drain_sorted(p[0], b, 3); /* the same bytes, none more */
    CHECK(memcmp(b, "abc", 3) == 0);
}

/* At most tokens + 1 tasks of a MPROC_JOBSERVER executor at once; all
 * of them run; every byte back after destroy. */
static void run_tasks_under_pool(unsigned workers, int tasks, int spin_ms, int *max_seen)
{
    js_counters *c = test_map_shared(sizeof *c); /* before the fork server */
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = workers,
                                                               .flags = MPROC_JOBSERVER }));
    js_task_arg a = { c, spin_ms };
    mproc_future *f[64];
    CHECK(tasks <= 64);
    for (int i = 0; i < tasks; i++)
        CHECK_OK(mproc_submit(ex, js_task, &a, sizeof a, &f[i]));
    for (int i = 0; i < tasks; i++) {
        CHECK_OK(mproc_future_result(f[i], LONG_MS, NULL, NULL));
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
    CHECK_EQ(atomic_load(&c->total), tasks);
    CHECK_EQ(atomic_load(&c->busy), 0);
    *max_seen = atomic_load(&c->max);
}

TEST_T(executor_under_pipe_pool_of_four, 20)
{
    int p[2];
    make_pipe_pool(p, "+++");
    int max;
    run_tasks_under_pool(6, 24, 5, &max);
    CHECK_MSG(max >= 1 && max <= 4, "max %d at once", max);
    char b[3];
    drain_sorted(p[0], b, 3);
    CHECK(memcmp(b, "+++", 3) == 0);
}

TEST_T(executor_under_pool_of_one_runs_one_at_a_time, 20)
{
    int p[2];
    make_pipe_pool(p, ""); /* only the implicit token */
    int max;
    run_tasks_under_pool(4, 16, 3, &max);
    CHECK_EQ(max, 1);
    CHECK_EQ(in_pipe(p[0]), 0);
    /* The implicit token is free again. */
    CHECK_EQ(mproc__jobserver_try_acquire(), 1);
    CHECK_RC(mproc__jobserver_try_acquire(), 0);
}

TEST_T(fifo_auth_and_the_last_option_counts, 10)
{
    char dir[] = "/tmp/mproc-js-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK_OK(mkfifo(path, 0600) == 0 ? 0 : -errno);
    int mk = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC); /* make's side */
    CHECK(mk >= 0);
    CHECK_EQ(write(mk, "yx", 2), 2);
    char mf[160];
    snprintf(mf, sizeof mf, "-j9 --jobserver-auth=97,98 --jobserver-auth=fifo:%s -- X=1", path);
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", mf, 1));
    mproc__jobserver_note_fds();
    CHECK_OK(mproc__jobserver_init());
    CHECK_EQ(strcmp(getenv("MAKEFLAGS"), mf), 0); /* joined, changed nothing */
    CHECK_EQ(acquire_all(), 3);
    CHECK(!readable(mk));
    release_n(3);
    char b[3] = { 0 };
    CHECK_EQ(read(mk, b, sizeof b), 2);
    CHECK(strcmp(b, "xy") == 0 || strcmp(b, "yx") == 0);
    close(mk);
    CHECK_OK(unlink(path));
    CHECK_OK(rmdir(dir));
}

/* ---- pools that must not be used ------------------------------------------ */

static char bad_makeflags[256];

/* In a fresh child: MAKEFLAGS = bad_makeflags; the pool must be our own. */
static int falls_back(void *arg)
{
    (void)arg;
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", bad_makeflags, 1));
    mproc__jobserver_note_fds();
    CHECK_OK(mproc__jobserver_init());
    CHECK_MSG(own_pool_exported(), "MAKEFLAGS=%s", getenv("MAKEFLAGS"));
    CHECK_EQ(acquire_all(), (int)mproc_cpu_count());
    return 0;
}

static void expect_fallback(const char *makeflags)
{
    snprintf(bad_makeflags, sizeof bad_makeflags, "%s", makeflags);
    test_expect_child_ok(test_fork(falls_back, NULL));
}

TEST_T(unusable_pools_are_ignored, 20)
{
    expect_fallback("-j3 --jobserver-auth=97,98");   /* closed descriptors */
    expect_fallback("-j3 --jobserver-fds=97,98");    /* the old spelling */
    expect_fallback("-j3 --jobserver-auth=0,1");     /* open, but not a pipe */
    expect_fallback("-j3 --jobserver-auth=3x,4");
    expect_fallback("-j3 --jobserver-auth=-1,4");
    expect_fallback("-j3 --jobserver-auth=fifo:/nonexistent/fifo");
    expect_fallback("-j3 --jobserver-auth=fifo:/dev/null"); /* not a fifo */
    expect_fallback("-j3 -- --jobserver-auth=fifo:/x");     /* a variable's text */
}

/* make closed its descriptors for a non-recursive recipe, and the
 * program made a pipe that got the same numbers: not a jobserver. */
TEST_T(descriptors_reused_after_load_are_not_joined, 10)
{
    int r = 60, w = 61;
    close(r);
    close(w);
    char mf[64];
    snprintf(mf, sizeof mf, "-j3 --jobserver-auth=%d,%d", r, w);
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", mf, 1));
    mproc__jobserver_note_fds(); /* as at load: closed */
    int p[2];
    CHECK_OK(pipe(p) == 0 ? 0 : -errno);
    CHECK_EQ(dup2(p[0], r), r);
    CHECK_EQ(dup2(p[1], w), w);
    CHECK_EQ(write(w, "data", 4), 4);
    CHECK_OK(mproc__jobserver_init());
    CHECK(own_pool_exported());
    acquire_all();
    CHECK_EQ(in_pipe(r), 4); /* the program's bytes are untouched */
}

/* A pool whose creator has ended cannot be opened: the next process
 * makes its own. */
static int make_pool_and_report(void *arg)
{
    int fd = *(int *)arg;
    clean_env();
    mproc__jobserver_note_fds();
    CHECK_OK(mproc__jobserver_init());
    const char *mf = getenv("MAKEFLAGS"), *id = getenv("MPROC_JOBSERVER_ID");
    CHECK(mf && id);
    dprintf(fd, "%s\n%s\n", mf, id);
    return 0;
}

TEST_T(pool_of_an_ended_creator_is_not_joined, 20)
{
    int p[2];
    CHECK_OK(pipe(p) == 0 ? 0 : -errno);
    pid_t pid = test_fork(make_pool_and_report, &p[1]);
    test_expect_child_ok(pid);
    close(p[1]);
    char buf[1024] = { 0 };
    CHECK(read(p[0], buf, sizeof buf - 1) > 0);
    char *nl = strchr(buf, '\n');
    CHECK(nl != NULL);
    *nl = '\0';
    char *id = nl + 1;
    CHECK((nl = strchr(id, '\n')) != NULL);
    *nl = '\0';
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", buf, 1));
    CHECK_OK(setenv("MPROC_JOBSERVER_ID", id, 1));
    mproc__jobserver_note_fds();
    CHECK_OK(mproc__jobserver_init());
    CHECK_MSG(own_pool_exported(), "MAKEFLAGS=%s", getenv("MAKEFLAGS"));
}

/* A path that now leads to another pipe than MPROC_JOBSERVER_ID names
 * (a reused pid) is treated as gone. */
TEST_T(fifo_that_is_not_the_named_pipe_is_not_joined, 10)
{
    char dir[] = "/tmp/mproc-js-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], mf[128], id[128];
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK_OK(mkfifo(path, 0600) == 0 ? 0 : -errno);
    struct stat st;
    CHECK_OK(stat(path, &st));
    snprintf(mf, sizeof mf, "-j2 --jobserver-auth=fifo:%s", path);
    snprintf(id, sizeof id, "%llu:%llu:%s", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1, path);
    clean_env();
    CHECK_OK(setenv("MAKEFLAGS", mf, 1));
    CHECK_OK(setenv("MPROC_JOBSERVER_ID", id, 1));
    mproc__jobserver_note_fds();
    CHECK_OK(mproc__jobserver_init());
    CHECK(own_pool_exported());
    CHECK_OK(unlink(path));
    CHECK_OK(rmdir(dir));
}

/* ---- fork ------------------------------------------------------------------ */

static int child_takes(void *arg)
{
    int want = *(int *)arg;
    CHECK_RC(mproc__jobserver_release(), -EINVAL); /* holds nothing */
    CHECK_EQ(acquire_all(), want);
    release_n(want);
    return 0;
}

TEST_T(fork_child_cannot_take_what_the_parent_holds, 20)
{
    int p[2];
    make_pipe_pool(p, "++");
    CHECK_OK(mproc__jobserver_init());
    CHECK_EQ(acquire_all(), 3);
    int one = 1; /* its own implicit token, nothing from the pipe */
    test_expect_child_ok(test_fork(child_takes, &one));
    CHECK_OK(mproc__jobserver_release()); /* one byte back */
    int two = 2;
    test_expect_child_ok(test_fork(child_takes, &two));
    CHECK_EQ(in_pipe(p[0]), 1); /* the child gave it back */
    release_n(2);
    CHECK_EQ(in_pipe(p[0]), 2);
    CHECK_EQ(acquire_all(), 3);
}

/* ---- the executor gives every token back ------------------------------------ */

typedef struct paths {
    atomic_int started;
    atomic_int go;
} paths;

static int crash_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg, (void)len, (void)ctx;
    raise(SIGKILL);
    return 0;
}

static int block_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len, (void)ctx;
    paths *s = *(paths *const *)arg;
    atomic_fetch_add(&s->started, 1);
    while (!atomic_load(&s->go))
        usleep(1000);
    return 0;
}

static int spin_forever_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg, (void)len, (void)ctx;
    for (int i = 0; i < 600000; i++) /* ten minutes: its deadline comes first */
        usleep(1000);
    return 0;
}

static int quick_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg, (void)len, (void)ctx;
    return 0;
}

static void quick_rounds(mproc_executor *ex, int n)
{
    for (int i = 0; i < n; i++)
        CHECK_OK(mproc_apply(ex, quick_task, NULL, 0, NULL));
}

/* Is the pool whole again -- the byte in make's pipe (rfd) and this
 * process's implicit token free? Called while the executor is idle. */
static bool pool_whole(int rfd)
{
    if (in_pipe(rfd) != 1)
        return false;
    CHECK_EQ(mproc__jobserver_try_acquire(), 1);
    bool implicit = in_pipe(rfd) == 1; /* it was not the byte we got */
    CHECK_OK(mproc__jobserver_release());
    return implicit;
}

enum { CRASH, DEADLINE, CANCEL_KILL, NPATHS };

/* Run one task that ends by `path`; with `beside`, a task holding the
 * other token runs meanwhile, so this one has the pipe's byte. */
static void end_by(mproc_executor *ex, paths *s, int path, bool beside)
{
    paths *sp = s;
    mproc_future *b = NULL, *f;
    atomic_store(&s->started, 0);
    atomic_store(&s->go, 0);
    if (beside) {
        CHECK_OK(mproc_submit(ex, block_task, &sp, sizeof sp, &b));
        WAIT_UNTIL(atomic_load(&s->started) == 1, LONG_MS);
    }
    switch (path) {
    case CRASH:
        CHECK_OK(mproc_submit(ex, crash_task, NULL, 0, &f));
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EWORKERDIED);
        break;
    case DEADLINE:
        CHECK_OK(mproc_submit_ex(ex, spin_forever_task, NULL, 0,
                                 &(mproc_submit_opts){ .timeout_ms = 50 }, &f));
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ETASKTIMEOUT);
        break;
    default:
        CHECK_OK(mproc_submit(ex, block_task, &sp, sizeof sp, &f));
        WAIT_UNTIL(atomic_load(&s->started) == 1 + beside, LONG_MS);
        CHECK_EQ(mproc_future_cancel(f), 1);
        CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_ECANCELLED);
        break;
    }
    mproc_future_release(f);
    atomic_store(&s->go, 1);
    if (b) {
        CHECK_OK(mproc_future_result(b, LONG_MS, NULL, NULL));
        mproc_future_release(b);
    }
}

TEST_T(executor_returns_tokens_on_every_path, 40)
{
    int p[2];
    make_pipe_pool(p, "z"); /* two tokens: the implicit one and 'z' */
    paths *s = test_map_shared(sizeof *s);
    paths *sp = s;
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(
        &ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES, .workers = 3,
                                     .max_tasks_per_child = 2,
                                     .flags = MPROC_JOBSERVER | MPROC_CANCEL_KILL }));
    for (int path = 0; path < NPATHS; path++)
        for (int beside = 0; beside < 2; beside++) {
            end_by(ex, s, path, beside);
            WAIT_UNTIL(pool_whole(p[0]), LONG_MS);
            quick_rounds(ex, 3); /* also retires workers (2 tasks each) */
            WAIT_UNTIL(pool_whole(p[0]), LONG_MS);
        }
    /* Shutdown that cancels what is pending while tasks run. */
    atomic_store(&s->started, 0);
    atomic_store(&s->go, 0);
    mproc_future *run[2], *pend[4];
    for (int i = 0; i < 2; i++)
        CHECK_OK(mproc_submit(ex, block_task, &sp, sizeof sp, &run[i]));
    for (int i = 0; i < 4; i++)
        CHECK_OK(mproc_submit(ex, quick_task, NULL, 0, &pend[i]));
    WAIT_UNTIL(atomic_load(&s->started) == 2, LONG_MS);
    CHECK_EQ(in_pipe(p[0]), 0); /* two running, both tokens out */
    CHECK_RC(mproc__jobserver_try_acquire(), 0);
    CHECK_OK(mproc_executor_shutdown(ex, false, true));
    atomic_store(&s->go, 1);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(mproc_future_result(run[i], LONG_MS, NULL, NULL));
        mproc_future_release(run[i]);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_RC(mproc_future_result(pend[i], LONG_MS, NULL, NULL), MPROC_ECANCELLED);
        mproc_future_release(pend[i]);
    }
    mproc_executor_destroy(ex);
    CHECK(pool_whole(p[0]));
    char b;
    drain_sorted(p[0], &b, 1);
    CHECK_EQ(b, 'z');
}

static int failing_init(void *arg)
{
    (void)arg;
    return -1;
}

TEST_T(broken_executor_holds_no_token, 20)
{
    int p[2];
    make_pipe_pool(p, "q");
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 2,
                                                               .initializer = failing_init,
                                                               .flags = MPROC_JOBSERVER }));
    mproc_future *f;
    CHECK_OK(mproc_submit(ex, quick_task, NULL, 0, &f));
    CHECK_RC(mproc_future_result(f, LONG_MS, NULL, NULL), MPROC_EBROKEN);
    mproc_future_release(f);
    mproc_executor_destroy(ex);
    CHECK_EQ(in_pipe(p[0]), 1);
    CHECK_EQ(acquire_all(), 2);
}

TEST_T(thread_executors_reject_the_flag, 10)
{
    clean_env();
    mproc_executor *ex = NULL;
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_THREADS,
                                                               .flags = MPROC_JOBSERVER }),
             -EINVAL);
    CHECK(ex == NULL);
    CHECK_RC(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .flags = 0x80 }),
             -EINVAL);
    CHECK_EQ(mproc__jobserver_fd(), -1); /* nothing was set up */
}

/* ---- under a real make -j3 --------------------------------------------------- */

/* The make on PATH, or NULL. */
static const char *find_make(char *buf, size_t n)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        snprintf(buf, n, "%.*s/make", (int)len, path);
        if (len > 0 && access(buf, X_OK) == 0)
            return buf;
        path += len + (path[len] == ':');
    }
    return NULL;
}

#define RECIPES 4
#define TASKS_EACH 6

TEST_T(make_j3_caps_every_recipe_together, 60)
{
    char make[512];
    if (!find_make(make, sizeof make)) {
        printf("SKIP: no `make` on PATH; the make -j3 test did not run\n");
        return;
    }
    char dir[] = "/tmp/mproc-js-XXXXXX", path[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/counters", dir);
    int cfd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(cfd >= 0);
    CHECK_OK(ftruncate(cfd, 4096));
    js_counters *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    CHECK(c != MAP_FAILED);
    close(cfd);
    char mk[128];
    snprintf(mk, sizeof mk, "%s/Makefile", dir);
    FILE *m = fopen(mk, "w");
    CHECK(m != NULL);
    fprintf(m, "all:");
    for (int i = 0; i < RECIPES; i++)
        fprintf(m, " r%d", i);
    fprintf(m, "\n");
    for (int i = 0; i < RECIPES; i++)
        fprintf(m, "r%d:\n\t+@%s %s %d\n", i, JOBSERVER_CHILD, path, TASKS_EACH);
    CHECK_OK(fclose(m));
    char err[128];
    snprintf(err, sizeof err, "%s/stderr", dir);

    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        clean_env(); /* a top-level make, whatever runs the tests */
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (e < 0 || dup2(e, 2) < 0)
            _exit(126);
        execl(make, "make", "-s", "-j3", "-C", dir, (char *)NULL);
        _exit(127);
    }
    int st = test_wait(pid, 50000);
    CHECK_MSG(st != -1, "make -j3 did not finish in time");
    char text[1024] = { 0 };
    int e = open(err, O_RDONLY | O_CLOEXEC);
    if (e >= 0) {
        ssize_t r = read(e, text, sizeof text - 1);
        (void)r;
        close(e);
    }
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "make: status 0x%x: %s", st, text);
    CHECK_MSG(text[0] == '\0', "make complained: %s", text); /* e.g. tokens lost */
    CHECK_EQ(atomic_load(&c->own_pool), 0);
    CHECK_EQ(atomic_load(&c->failed), 0);
    CHECK_EQ(atomic_load(&c->total), RECIPES * TASKS_EACH);
    int max = atomic_load(&c->max);
    CHECK_MSG(max >= 1 && max <= 3, "%d tasks ran at once under make -j3", max);
    printf("make -j3: %d recipes x %d tasks, at most %d at once\n", RECIPES, TASKS_EACH, max);
    munmap(c, sizeof *c);
    CHECK_OK(unlink(path));
    CHECK_OK(unlink(mk));
    CHECK_OK(unlink(err));
    CHECK_OK(rmdir(dir));
}

TEST_T(info_says_the_executor_shares_the_pool, 20)
{
    mproc_executor *ex;
    CHECK_OK(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 1,
                                                               .flags = MPROC_JOBSERVER }));
    mproc_executor_details d;
    CHECK_OK(mproc_executor_info(ex, &d));
    CHECK(d.jobserver);
    mproc_executor_destroy(ex);
}
