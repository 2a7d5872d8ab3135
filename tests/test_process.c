/*
 * tests/test_process.c -- mproc_process: the three start methods, exit
 * codes as Python reports them, join with a timeout, signals, daemon
 * children dying with their parent, reaping (no zombies), bad arguments.
 *
 * Children report through anonymous shared memory (test_map_shared) and
 * wait on shared flags; nothing relies on sleeping.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "os/sys.h"
#include "workers/process_internal.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 20000

/* Shared between the test and its children. */
typedef struct shared {
    atomic_int go;        /* children waiting for it proceed */
    atomic_int started;   /* children that began */
    atomic_int done;      /* children that finished their work */
    atomic_int pid;       /* a child's pid, reported by itself */
    char seen[64];        /* argument bytes a child saw */
} shared;

static shared *sh;

/* A spawned child starts afresh, without the test's memory: it maps the
 * test's memfd through /proc, named in the environment it inherits. */
#define SHARED_ENV "MPROC_TEST_PROCESS_SHARED"

static void setup(void)
{
    int fd = memfd_create("test-process", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, sizeof *sh) == 0);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(sh != MAP_FAILED);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), fd);
    CHECK(setenv(SHARED_ENV, path, 1) == 0);
}

/* The shared block, in the test process and in any child. */
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

static void wait_go(void)
{
    while (!atomic_load(&S()->go))
        usleep(100);
}

/* Exported (not static): spawn finds tasks by name. */
int proc_ok(const void *arg, size_t len, mproc_ctx *ctx);
int proc_fail(const void *arg, size_t len, mproc_ctx *ctx);
int proc_exit3(const void *arg, size_t len, mproc_ctx *ctx);
int proc_signal(const void *arg, size_t len, mproc_ctx *ctx);
int proc_copy_arg(const void *arg, size_t len, mproc_ctx *ctx);
int proc_wait_go(const void *arg, size_t len, mproc_ctx *ctx);
int proc_forever(const void *arg, size_t len, mproc_ctx *ctx);

int proc_ok(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    int v = 1;
    mproc_return(ctx, &v, sizeof v); /* accepted and dropped */
    atomic_fetch_add(&S()->done, 1);
    return 0;
}

int proc_fail(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    return mproc_fail(ctx, -EIO, "failed on purpose");
}

int proc_exit3(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    exit(3);
}

/* Dies of a signal (SIGUSR1: the sanitizers catch SIGSEGV themselves). */
int proc_signal(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    raise(SIGUSR1);
    return 0;
}

int proc_copy_arg(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)ctx;
    memcpy(S()->seen, arg, len < sizeof S()->seen ? len : sizeof S()->seen);
    atomic_store(&S()->pid, (int)getpid());
    return 0;
}

int proc_wait_go(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_store(&S()->pid, (int)getpid());
    atomic_fetch_add(&S()->started, 1);
    wait_go();
    atomic_fetch_add(&S()->done, 1);
    return 0;
}

int proc_forever(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    atomic_store(&S()->pid, (int)getpid());
    atomic_fetch_add(&S()->started, 1);
    for (;;)
        pause();
}

/* Not exported: spawn finds it by its place in the program. */
static int static_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)ctx;
    if (len == sizeof(int)) {
        int v;
        memcpy(&v, arg, sizeof v);
        atomic_store(&S()->pid, v);
    }
    return 0;
}

static const mproc_start_method methods[] = { MPROC_START_FORK, MPROC_START_FORKSERVER,
                                               MPROC_START_SPAWN };

/* Start fn with method m, join it, return its exit code. */
static int run_one(mproc_start_method m, mproc_task_fn fn, const void *arg, size_t len)
{
    mproc_process *p;
    CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = fn, .arg = arg, .len = len,
                                                             .start = m }));
    CHECK_OK(mproc_process_start(p));
    CHECK(mproc_process_pid(p) > 0);
    CHECK_OK(mproc_process_join(p, LONG_MS));
    CHECK(!mproc_process_is_alive(p));
    int code = 12345;
    CHECK_OK(mproc_process_exitcode(p, &code));
    mproc_process_destroy(p);
    return code;
}

TEST(exit_codes_as_python_every_method)
{
    setup();
    for (int i = 0; i < 3; i++) {
        mproc_start_method m = methods[i];
        CHECK_EQ(run_one(m, proc_ok, NULL, 0), 0);
        CHECK_EQ(run_one(m, proc_fail, NULL, 0), 1);
        CHECK_EQ(run_one(m, proc_exit3, NULL, 0), 3);
        CHECK_EQ(run_one(m, proc_signal, NULL, 0), -SIGUSR1);
    }
    CHECK_EQ(atomic_load(&sh->done), 3);
}

TEST(argument_bytes_reach_the_child_every_method)
{
    setup();
    for (int i = 0; i < 3; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "hola desde %d", i);
        memset(sh->seen, 0, sizeof sh->seen);
        CHECK_EQ(run_one(methods[i], proc_copy_arg, msg, strlen(msg) + 1), 0);
        CHECK(strcmp(sh->seen, msg) == 0);
        CHECK(atomic_load(&sh->pid) != (int)getpid());
    }
}

TEST(join_timeout_then_end)
{
    setup();
    for (int i = 0; i < 3; i++) {
        atomic_store(&sh->go, 0);
        mproc_process *p;
        CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_wait_go,
                                                                 .start = methods[i] }));
        CHECK_RC(mproc_process_join(p, 10), -EINVAL); /* not started */
        int code;
        CHECK_RC(mproc_process_exitcode(p, &code), -EAGAIN);
        CHECK_OK(mproc_process_start(p));
        CHECK_RC(mproc_process_start(p), -EINVAL); /* once only */
        CHECK(mproc_process_is_alive(p));
        CHECK_RC(mproc_process_join(p, 20), -ETIMEDOUT);
        CHECK_RC(mproc_process_join(p, 0), -ETIMEDOUT);
        CHECK_RC(mproc_process_exitcode(p, &code), -EAGAIN);
        atomic_store(&sh->go, 1);
        CHECK_OK(mproc_process_join(p, LONG_MS));
        CHECK_OK(mproc_process_join(p, 0)); /* again: still ended */
        CHECK_OK(mproc_process_exitcode(p, &code));
        CHECK_EQ(code, 0);
        mproc_process_destroy(p);
    }
}

TEST(terminate_and_kill_every_method)
{
    setup();
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 2; k++) {
            int before = atomic_load(&sh->started);
            mproc_process *p;
            CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_forever,
                                                                     .start = methods[i] }));
            CHECK_OK(mproc_process_start(p));
            WAIT_UNTIL(atomic_load(&sh->started) > before, LONG_MS);
            CHECK_OK(k == 0 ? mproc_process_terminate(p) : mproc_process_kill(p));
            CHECK_OK(mproc_process_join(p, LONG_MS));
            int code;
            CHECK_OK(mproc_process_exitcode(p, &code));
            CHECK_EQ(code, k == 0 ? -SIGTERM : -SIGKILL);
            CHECK_OK(mproc_process_kill(p)); /* ended: a no-op */
            mproc_process_destroy(p);
        }
    }
}

TEST(names)
{
    mproc_process *a, *b;
    CHECK_OK(mproc_process_create(&a, &(mproc_process_opts){ .fn = proc_ok }));
    CHECK_OK(mproc_process_create(&b, &(mproc_process_opts){ .fn = proc_ok, .name = "saludo" }));
    CHECK(strncmp(mproc_process_name(a), "Process-", 8) == 0);
    CHECK(strcmp(mproc_process_name(b), "saludo") == 0);
    CHECK(strcmp(mproc_process_name(NULL), "") == 0);
    CHECK_EQ(mproc_process_pid(a), 0);
    mproc_process_destroy(a);
    mproc_process_destroy(b);
}

TEST(bad_arguments)
{
    mproc_process *p = (mproc_process *)1;
    CHECK_RC(mproc_process_create(NULL, &(mproc_process_opts){ .fn = proc_ok }), -EINVAL);
    CHECK_RC(mproc_process_create(&p, NULL), -EINVAL);
    CHECK(p == NULL);
    CHECK_RC(mproc_process_create(&p, &(mproc_process_opts){ 0 }), -EINVAL);
    CHECK_RC(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_ok, .len = 3 }),
             -EINVAL);
    CHECK_RC(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_ok, .start = 99 }),
             -EINVAL);
    CHECK_RC(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_ok, .flags = 0x80 }),
             -EINVAL);
    CHECK_RC(mproc_process_start(NULL), -EINVAL);
    CHECK_RC(mproc_process_join(NULL, 0), -EINVAL);
    CHECK(!mproc_process_is_alive(NULL));
    CHECK_RC(mproc_process_terminate(NULL), -EINVAL);
    CHECK_RC(mproc_process_kill(NULL), -EINVAL);
    int code;
    CHECK_RC(mproc_process_exitcode(NULL, &code), -EINVAL);
    CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_ok }));
    CHECK_RC(mproc_process_exitcode(p, NULL), -EINVAL);
    CHECK_RC(mproc_process_join(p, -2), -EINVAL);
    CHECK_RC(mproc_process_terminate(p), -EINVAL); /* not started */
    mproc_process_destroy(p);
    mproc_process_destroy(NULL);
}

/* A static task runs in a spawned child (found by its place in the
 * program, not by name); an address in no object's code is refused
 * before anything starts. */
TEST(spawn_runs_static_tasks_and_refuses_stray_addresses)
{
    setup();
    int v = 4242;
    CHECK_EQ(run_one(MPROC_START_SPAWN, static_task, &v, sizeof v), 0);
    CHECK_EQ(atomic_load(&sh->pid), 4242);

    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED);
    mproc_task_fn stray;
    memcpy(&stray, &page, sizeof stray);
    mproc_process *p;
    CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = stray,
                                                             .start = MPROC_START_SPAWN }));
    CHECK_RC(mproc_process_start(p), MPROC_ENOSYMBOL);
    CHECK_EQ(mproc_process_pid(p), 0);
    mproc_process_destroy(p);
    munmap(page, 4096);
}

static int idle_thread(void *arg)
{
    (void)arg;
    wait_go();
    return 0;
}

/* With a second thread running, fork is refused unless asked for;
 * forkserver and spawn are fine. */
TEST(fork_with_threads_refused_unless_opted_in)
{
    setup();
    mproc_forkserver_start(); /* while single-threaded, as documented */
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){ .fn = idle_thread }));
    CHECK_OK(mproc_thread_start(t));
    mproc_process *p;
    CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_ok }));
    CHECK_RC(mproc_process_start(p), MPROC_ETHREADS);
    mproc_process_destroy(p);
    CHECK_EQ(run_one(MPROC_START_FORKSERVER, proc_ok, NULL, 0), 0);
    CHECK_EQ(run_one(MPROC_START_SPAWN, proc_ok, NULL, 0), 0);
    CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_ok,
                                                             .flags = MPROC_FORK_THREADS }));
    CHECK_OK(mproc_process_start(p));
    CHECK_OK(mproc_process_join(p, LONG_MS));
    mproc_process_destroy(p);
    atomic_store(&sh->go, 1);
    CHECK_OK(mproc_thread_join(t, LONG_MS, NULL));
    mproc_thread_destroy(t);
    CHECK_EQ(atomic_load(&sh->done), 3);
}

/* ---- zombies and reaping -------------------------------------------------- */

/* Descriptors open in this process. */
static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Our children in state Z, from /proc. */
static int count_zombie_children(void)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    FILE *f = fopen(path, "re");
    CHECK(f != NULL);
    int pid, zombies = 0;
    while (fscanf(f, "%d", &pid) == 1) {
        char st[64], buf[512];
        snprintf(st, sizeof st, "/proc/%d/stat", pid);
        FILE *s = fopen(st, "re");
        if (!s)
            continue;
        if (fgets(buf, sizeof buf, s)) {
            char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ' && rp[2] == 'Z')
                zombies++;
        }
        fclose(s);
    }
    fclose(f);
    return zombies;
}

static char proc_state(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *s = fopen(path, "re");
    if (!s)
        return 0;
    char state = 0;
    if (fgets(buf, sizeof buf, s)) {
        char *rp = strrchr(buf, ')');
        if (rp && rp[1] == ' ')
            state = rp[2];
    }
    fclose(s);
    return state;
}

/* Entries in /dev/shm (process starts must not add any). */
static int count_dev_shm(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* 1,000 start/join cycles per method (spawn: 100, it execs): no zombie,
 * no new /dev/shm entry, no descriptor left open. */
TEST_T(many_cycles_leave_no_zombie, 120)
{
    setup();
    mproc_forkserver_start();
    int fds_before = count_open_fds(), shm_before = count_dev_shm();
    long n = test_scaled_stress(1000);
    for (int i = 0; i < 3; i++)
        for (long k = 0; k < (i == 2 ? n / 10 : n); k++)
            CHECK_EQ(run_one(methods[i], proc_ok, NULL, 0), 0);
    CHECK_EQ(count_zombie_children(), 0);
    CHECK_EQ(count_open_fds(), fds_before);
    CHECK_EQ(count_dev_shm(), shm_before);
}

/* A handle destroyed while its child runs: the child is reaped by a later
 * start, never left a zombie. */
TEST(destroyed_handle_child_still_reaped)
{
    setup();
    mproc_process *p;
    CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_wait_go }));
    CHECK_OK(mproc_process_start(p));
    pid_t pid = mproc_process_pid(p);
    WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
    mproc_process_destroy(p);
    atomic_store(&sh->go, 1);
    WAIT_UNTIL(proc_state(pid) == 'Z', LONG_MS); /* ended, not reaped yet */
    /* A later start reaps it (once its last thread is gone: under the
     * sanitizers a runtime thread may still be exiting after the main
     * thread shows Z). */
    WAIT_UNTIL(run_one(MPROC_START_FORK, proc_ok, NULL, 0) == 0 && proc_state(pid) == 0, LONG_MS);
}

/* ---- daemon children ------------------------------------------------------- */

/* In an intermediate process: start a daemon child, report its pid, then
 * die by SIGKILL (no exit handler runs). */
static int start_daemon_then_die(void *arg)
{
    mproc_start_method m = *(const mproc_start_method *)arg;
    if (m == MPROC_START_FORKSERVER && mproc_forkserver_start() != 0)
        return 1;
    mproc_process *p;
    if (mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_forever, .daemon = true,
                                                        .start = m }) != 0 ||
        mproc_process_start(p) != 0)
        return 1;
    while (atomic_load(&sh->started) == 0)
        usleep(100);
    raise(SIGKILL);
    return 1;
}

TEST(daemon_children_die_with_a_killed_parent)
{
    setup();
    for (int i = 0; i < 3; i++) {
        atomic_store(&sh->started, 0);
        atomic_store(&sh->pid, 0);
        mproc_start_method m = methods[i];
        pid_t mid = test_fork(start_daemon_then_die, &m);
        int st = test_wait(mid, LONG_MS);
        CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        pid_t d = (pid_t)atomic_load(&sh->pid);
        CHECK(d > 0);
        WAIT_UNTIL(mproc__task_dead(d, 0), LONG_MS);
    }
}

struct starter {
    mproc_process *p;
};

static void *start_from_thread(void *arg)
{
    struct starter *s = arg;
    CHECK_OK(mproc_process_start(s->p));
    return NULL; /* the starting thread ends here */
}

/* The thread that started a daemon child ending does not end the child
 * (prctl(PR_SET_PDEATHSIG) alone would). */
TEST(daemon_child_outlives_the_thread_that_started_it)
{
    setup();
    mproc_forkserver_start();
    for (int i = 0; i < 3; i++) {
#if defined(__SANITIZE_THREAD__)
        /* ThreadSanitizer cannot start the child's watcher thread after
         * a fork of a threaded process; forkserver and spawn children
         * are forked from single-threaded processes. */
        if (methods[i] == MPROC_START_FORK)
            continue;
#endif
        atomic_store(&sh->started, 0);
        atomic_store(&sh->done, 0);
        atomic_store(&sh->go, 0);
        struct starter st;
        CHECK_OK(mproc_process_create(&st.p, &(mproc_process_opts){
                                                 .fn = proc_wait_go, .daemon = true,
                                                 .start = methods[i],
                                                 .flags = MPROC_FORK_THREADS }));
        test_join_thread(test_start_thread(start_from_thread, &st));
        WAIT_UNTIL(atomic_load(&sh->started) == 1, LONG_MS);
        CHECK(mproc_process_is_alive(st.p));
        atomic_store(&sh->go, 1);
        CHECK_OK(mproc_process_join(st.p, LONG_MS));
        int code;
        CHECK_OK(mproc_process_exitcode(st.p, &code));
        CHECK_EQ(code, 0); /* it finished its work: nobody killed it */
        CHECK_EQ(atomic_load(&sh->done), 1);
        mproc_process_destroy(st.p);
    }
}

/* In an intermediate process: start a non-daemon child that waits for
 * `go` and a daemon child that never ends, then exit normally. */
static int start_children_then_exit(void *arg)
{
    (void)arg;
    mproc_process *nd, *d;
    if (mproc_process_create(&nd, &(mproc_process_opts){ .fn = proc_wait_go }) != 0 ||
        mproc_process_start(nd) != 0 ||
        mproc_process_create(&d, &(mproc_process_opts){ .fn = proc_forever, .daemon = true }) != 0 ||
        mproc_process_start(d) != 0)
        return 1;
    atomic_store(&sh->pid, (int)mproc_process_pid(d));
    while (atomic_load(&sh->started) < 2) /* both run their task */
        usleep(100);
    exit(0); /* the exit handler terminates d and joins nd */
}

TEST(normal_exit_joins_children_and_terminates_daemons)
{
    setup();
    pid_t mid = test_fork(start_children_then_exit, NULL);
    WAIT_UNTIL(atomic_load(&sh->started) == 2, LONG_MS);
    pid_t d = (pid_t)atomic_load(&sh->pid);
    /* The daemon is terminated while the other child still waits. */
    WAIT_UNTIL(mproc__task_dead(d, 0), LONG_MS);
    CHECK_EQ(atomic_load(&sh->done), 0);
    CHECK(test_wait(mid, 0) == -1); /* still joining its child */
    atomic_store(&sh->go, 1);
    int st = test_wait(mid, LONG_MS);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(atomic_load(&sh->done), 1); /* it ended only after its child */
}

/* ---- descriptors handed to the child (workers/process_internal.h) ------- */

int proc_write_fd(const void *arg, size_t len, mproc_ctx *ctx);

int proc_write_fd(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)ctx;
    int fd = mproc__process_fd(1);
    if (fd < 0 || mproc__process_fd(2) != -1)
        return -EBADF;
    return write(fd, arg, len) == (ssize_t)len ? 0 : -EIO;
}

TEST(descriptors_reach_the_child_every_method)
{
    setup();
    mproc_forkserver_start();
    for (int i = 0; i < 3; i++) {
        int pfd[2], other[2];
        CHECK(pipe2(pfd, O_CLOEXEC) == 0 && pipe2(other, O_CLOEXEC) == 0);
        mproc_process *p;
        const char msg[] = "por el descriptor";
        CHECK_OK(mproc_process_create(&p, &(mproc_process_opts){ .fn = proc_write_fd, .arg = msg,
                                                                 .len = sizeof msg,
                                                                 .start = methods[i] }));
        int fds[2] = { other[0], pfd[1] };
        CHECK_RC(mproc__process_set_fds(p, fds, 5), -EINVAL);
        int bad[1] = { -1 };
        CHECK_RC(mproc__process_set_fds(p, bad, 1), -EBADF);
        CHECK_OK(mproc__process_set_fds(p, fds, 2));
        CHECK_OK(mproc_process_start(p));
        CHECK_RC(mproc__process_set_fds(p, fds, 2), -EINVAL); /* started */
        CHECK_OK(mproc_process_join(p, LONG_MS));
        int code;
        CHECK_OK(mproc_process_exitcode(p, &code));
        CHECK_EQ(code, 0);
        char buf[64] = "";
        CHECK_EQ(read(pfd[0], buf, sizeof buf), (ssize_t)sizeof msg);
        CHECK(strcmp(buf, msg) == 0);
        mproc_process_destroy(p);
        close(pfd[0]);
        close(pfd[1]);
        close(other[0]);
        close(other[1]);
    }
}
