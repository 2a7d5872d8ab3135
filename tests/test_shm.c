/*
 * tests/test_shm.c -- shared memory segments: anonymous ones shared with
 * fork children and through their descriptor; named ones created,
 * attached from a child, unlinked; name validation, -EEXIST, -ENOENT, bad
 * arguments; and the tracker: a creator SIGKILLed (its segments vanish
 * from /dev/shm, MPROC_SHM_KEEP ones stay), a tree kept alive by a
 * grandchild, an exec'd child that does not keep it, crashes just before
 * and just after a name is linked (fault points), a name unlinked and
 * reused; 1,000 create/destroy cycles leave no /dev/shm entry and no
 * descriptor behind.
 *
 * Names carry the test process's pid, so parallel test runs do not
 * collide. /dev/shm is polled with deadlines, never slept on.
 */
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/shm_internal.h"
#include "mproc/ipc.h"
#include "os/fault.h"
#include "runner.h"
#include "helpers.h"

/* The tracker works after its tree is gone; give it plenty of time on a
 * loaded machine, but not forever. */
#define CLEANUP_MS 20000

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

static const char *tname(const char *tag)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    /* The test's process group: the same in its children. */
    snprintf(b, 128, "mproc-t-%d-%s", (int)getpgrp(), tag);
    return b;
}

static int shm_exists(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "/dev/shm/%s", name);
    return access(path, F_OK) == 0;
}

/* The process is gone (or a zombie nobody reaped yet). */
static int proc_gone(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return !p || p[1] == '\0' || p[2] == 'Z' || p[2] == 'X';
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Entries of /dev/shm whose name starts with this test's prefix. */
static int count_ours(void)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "mproc-t-%d-", (int)getpgrp());
    DIR *d = opendir("/dev/shm");
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

/* Remove a leftover segment by name (attach + unlink). */
static void unlink_name(const char *name)
{
    mproc_shm *s;
    CHECK_OK(mproc_shm_attach(&s, name));
    CHECK_OK(mproc_shm_unlink(s));
    CHECK_OK(mproc_shm_destroy(s));
}

/* Children report numbers through a pipe. */
static int g_pipe[2];

static void open_report(void)
{
    CHECK_EQ(pipe(g_pipe), 0);
}

static void report(long x)
{
    CHECK_EQ(write(g_pipe[1], &x, sizeof x), (ssize_t)sizeof x);
}

static long read_report(void)
{
    struct pollfd p = { .fd = g_pipe[0], .events = POLLIN };
    CHECK_MSG(poll(&p, 1, 20000) == 1, "child did not report");
    long x;
    CHECK_EQ(read(g_pipe[0], &x, sizeof x), (ssize_t)sizeof x);
    return x;
}

static mproc_shm *create_named(const char *name, size_t size, unsigned flags)
{
    mproc_shm *s;
    CHECK_OK(mproc_shm_create(&s, &(mproc_shm_opts){ .name = name, .size = size,
                                                      .flags = flags }));
    return s;
}

/* ------------------------------------------------------------------ */
/* anonymous segments                                                  */
/* ------------------------------------------------------------------ */

static int anon_child(void *arg)
{
    mproc_shm *s = arg;
    memset(mproc_shm_addr(s), 0x5a, mproc_shm_size(s));
    return mproc_shm_destroy(s); /* the child's own copy of the handle */
}

TEST(shm_anon_fork)
{
    mproc_shm *s;
    CHECK_OK(mproc_shm_create(&s, &(mproc_shm_opts){ .size = 10000 }));
    CHECK(mproc_shm_addr(s) != NULL);
    CHECK_EQ((uintptr_t)mproc_shm_addr(s) % 4096, 0);
    CHECK_EQ(mproc_shm_size(s), 10000);
    CHECK(mproc_shm_name(s) == NULL);
    CHECK(mproc_shm_fd(s) >= 0);
    CHECK(test_all_bytes(mproc_shm_addr(s), 10000, 0));
    CHECK_RC(mproc_shm_unlink(s), -EINVAL);
    test_expect_child_ok(test_fork(anon_child, s));
    CHECK(test_all_bytes(mproc_shm_addr(s), 10000, 0x5a));
    CHECK_OK(mproc_shm_destroy(s));
}

TEST(shm_attach_fd)
{
    mproc_shm *s, *t;
    CHECK_OK(mproc_shm_create(&s, &(mproc_shm_opts){ .size = 3 }));
    CHECK_OK(mproc_shm_attach_fd(&t, mproc_shm_fd(s)));
    CHECK(mproc_shm_fd(t) != mproc_shm_fd(s));
    CHECK_EQ(mproc_shm_size(t), 3);
    CHECK(mproc_shm_name(t) == NULL);
    memcpy(mproc_shm_addr(s), "ab", 3);
    CHECK(memcmp(mproc_shm_addr(t), "ab", 3) == 0);
    /* The original may go first. */
    CHECK_OK(mproc_shm_destroy(s));
    CHECK(memcmp(mproc_shm_addr(t), "ab", 3) == 0);
    CHECK_OK(mproc_shm_destroy(t));
}

/* ------------------------------------------------------------------ */
/* named segments                                                      */
/* ------------------------------------------------------------------ */

static const char *g_name;

static int attach_child(void *arg)
{
    (void)arg;
    mproc_shm *s;
    if (mproc_shm_attach(&s, g_name) != 0 || mproc_shm_size(s) != 5000)
        return 1;
    memcpy(mproc_shm_addr(s), "hola", 5);
    return mproc_shm_destroy(s);
}

TEST(shm_named_basic)
{
    const char *name = tname("basic");
    mproc_shm *s = create_named(name, 5000, 0);
    CHECK(shm_exists(name));
    CHECK(strcmp(mproc_shm_name(s), name) == 0);
    CHECK_EQ(mproc_shm_size(s), 5000);
    CHECK(test_all_bytes(mproc_shm_addr(s), 5000, 0));
    struct stat st;
    CHECK_EQ(fstat(mproc_shm_fd(s), &st), 0);
    CHECK_EQ(st.st_size, 5000);
    CHECK_EQ(st.st_mode & 0777, 0600);
    /* O_EXCL semantics, also for a KEEP create. */
    mproc_shm *t;
    CHECK_RC(mproc_shm_create(&t, &(mproc_shm_opts){ .name = name, .size = 1 }), -EEXIST);
    CHECK_RC(mproc_shm_create(&t, &(mproc_shm_opts){ .name = name, .size = 1,
                                                      .flags = MPROC_SHM_KEEP }), -EEXIST);
    CHECK(t == NULL);
    /* A child attaches by name and writes. */
    g_name = name;
    test_expect_child_ok(test_fork(attach_child, NULL));
    CHECK(memcmp(mproc_shm_addr(s), "hola", 5) == 0);
    /* So does this process, at another address. */
    CHECK_OK(mproc_shm_attach(&t, name));
    CHECK(mproc_shm_addr(t) != mproc_shm_addr(s));
    CHECK(memcmp(mproc_shm_addr(t), "hola", 5) == 0);
    /* Unlink: the name goes, the mappings stay. */
    CHECK_OK(mproc_shm_unlink(t));
    CHECK(!shm_exists(name));
    CHECK_RC(mproc_shm_unlink(s), -ENOENT);
    mproc_shm *u;
    CHECK_RC(mproc_shm_attach(&u, name), -ENOENT);
    CHECK(u == NULL);
    ((char *)mproc_shm_addr(s))[0] = 'H';
    CHECK(memcmp(mproc_shm_addr(t), "Hola", 5) == 0);
    CHECK_OK(mproc_shm_destroy(t));
    CHECK_OK(mproc_shm_destroy(s));
    /* The name is free again. */
    s = create_named(name, 1, 0);
    CHECK_OK(mproc_shm_unlink(s));
    CHECK_OK(mproc_shm_destroy(s));
}

TEST(shm_mode)
{
    const char *name = tname("mode");
    mode_t old = umask(0);
    mproc_shm *s;
    CHECK_OK(mproc_shm_create(&s, &(mproc_shm_opts){ .name = name, .size = 1, .mode = 0640 }));
    umask(old);
    struct stat st;
    CHECK_EQ(fstat(mproc_shm_fd(s), &st), 0);
    CHECK_EQ(st.st_mode & 0777, 0640);
    CHECK_OK(mproc_shm_unlink(s));
    CHECK_OK(mproc_shm_destroy(s));
}

TEST(shm_names)
{
    mproc_shm *s;
    const char *bad[] = { "", "a/b", "/abc", "abc/", ".", "..", "//" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .name = bad[i], .size = 1 }), -EINVAL);
        CHECK_RC(mproc_shm_attach(&s, bad[i]), -EINVAL);
    }
    char longest[MPROC_SHM_NAME_MAX + 2];
    int pre = snprintf(longest, sizeof longest, "mproc-t-%d-", (int)getpgrp());
    memset(longest + pre, 'x', MPROC_SHM_NAME_MAX - (size_t)pre);
    longest[MPROC_SHM_NAME_MAX] = '\0';
    s = create_named(longest, 1, 0);
    CHECK(shm_exists(longest));
    CHECK_OK(mproc_shm_unlink(s));
    CHECK_OK(mproc_shm_destroy(s));
    longest[MPROC_SHM_NAME_MAX] = 'x';
    longest[MPROC_SHM_NAME_MAX + 1] = '\0';
    CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .name = longest, .size = 1 }), -EINVAL);
    CHECK_RC(mproc_shm_attach(&s, longest), -EINVAL);
    /* Dots inside a name are fine. */
    s = create_named(tname("a.b"), 1, 0);
    CHECK_OK(mproc_shm_unlink(s));
    CHECK_OK(mproc_shm_destroy(s));
}

TEST(shm_bad_args)
{
    mproc_shm *s = (mproc_shm *)1;
    CHECK_RC(mproc_shm_create(NULL, &(mproc_shm_opts){ .size = 1 }), -EINVAL);
    CHECK_RC(mproc_shm_create(&s, NULL), -EINVAL);
    CHECK(s == NULL);
    CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .size = 0 }), -EINVAL);
    CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .name = tname("z"), .size = 0 }), -EINVAL);
    CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .size = 1, .flags = 4 }), -EINVAL);
    CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .size = 1, .flags = MPROC_SHM_KEEP }),
             -EINVAL);
    CHECK_RC(mproc_shm_create(&s, &(mproc_shm_opts){ .name = tname("m"), .size = 1,
                                                      .mode = 010000 }), -EINVAL);
    CHECK(!shm_exists(tname("z")) && !shm_exists(tname("m")));
    CHECK_RC(mproc_shm_attach(NULL, "x"), -EINVAL);
    CHECK_RC(mproc_shm_attach(&s, NULL), -EINVAL);
    CHECK_RC(mproc_shm_attach(&s, tname("missing")), -ENOENT);
    CHECK_RC(mproc_shm_attach_fd(NULL, 0), -EINVAL);
    CHECK_RC(mproc_shm_attach_fd(&s, -1), -EBADF);
    CHECK_RC(mproc_shm_attach_fd(&s, 999999), -EBADF);
    int p[2];
    CHECK_EQ(pipe(p), 0);
    CHECK_RC(mproc_shm_attach_fd(&s, p[0]), -EINVAL); /* not a file */
    close(p[0]);
    close(p[1]);
    int fd = memfd_create("empty", MFD_CLOEXEC);
    CHECK(fd >= 0);
    CHECK_RC(mproc_shm_attach_fd(&s, fd), -EINVAL); /* empty */
    close(fd);
    CHECK(mproc_shm_addr(NULL) == NULL);
    CHECK_EQ(mproc_shm_size(NULL), 0);
    CHECK(mproc_shm_name(NULL) == NULL);
    CHECK_RC(mproc_shm_fd(NULL), -EINVAL);
    CHECK_RC(mproc_shm_unlink(NULL), -EINVAL);
    CHECK_OK(mproc_shm_destroy(NULL));
}

/* Unlinking through a stale handle never removes a newer segment that
 * took the name. */
TEST(shm_unlink_only_own)
{
    const char *name = tname("own");
    mproc_shm *a = create_named(name, 1, 0), *b;
    CHECK_OK(mproc_shm_attach(&b, name));
    CHECK_OK(mproc_shm_unlink(b));
    mproc_shm *c = create_named(name, 2, 0);
    CHECK_RC(mproc_shm_unlink(a), -ENOENT);
    CHECK(shm_exists(name));
    CHECK_OK(mproc_shm_unlink(c));
    CHECK(!shm_exists(name));
    CHECK_OK(mproc_shm_destroy(a));
    CHECK_OK(mproc_shm_destroy(b));
    CHECK_OK(mproc_shm_destroy(c));
}

/* ------------------------------------------------------------------ */
/* the tracker                                                         */
/* ------------------------------------------------------------------ */

static __attribute__((noreturn)) int creator_child(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        char tag[16];
        snprintf(tag, sizeof tag, "killed%d", i);
        create_named(tname(tag), 4096 * (size_t)(i + 1), 0);
    }
    create_named(tname("kept"), 100, MPROC_SHM_KEEP);
    report(mproc__shm_tracker_pid());
    for (;;)
        pause();
}

TEST(shm_creator_killed)
{
    open_report();
    pid_t pid = test_fork(creator_child, NULL);
    pid_t tracker = (pid_t)read_report();
    CHECK(tracker > 0 && tracker != pid);
    CHECK(!proc_gone(tracker));
    const char *names[3] = { tname("killed0"), tname("killed1"), tname("killed2") };
    for (int i = 0; i < 3; i++)
        CHECK(shm_exists(names[i]));
    CHECK(shm_exists(tname("kept")));
    /* The name lives in the child's tree, not ours. */
    CHECK_EQ(mproc__shm_tracker_pid(), 0);

    CHECK_EQ(kill(pid, SIGKILL), 0);
    test_expect_child_killed(pid);
    WAIT_UNTIL(!shm_exists(names[0]) && !shm_exists(names[1]) && !shm_exists(names[2]),
               CLEANUP_MS);
    WAIT_UNTIL(proc_gone(tracker), CLEANUP_MS);
    /* The tracker has finished: what it left is left for good. */
    CHECK(shm_exists(tname("kept")));
    unlink_name(tname("kept"));
}

/* The creator's fork keeps the tree alive after the creator is gone. */
static __attribute__((noreturn)) int grandchild(void *arg)
{
    (void)arg;
    for (;;)
        pause();
}

static int tree_child(void *arg)
{
    (void)arg;
    create_named(tname("tree"), 1, 0);
    report(mproc__shm_tracker_pid());
    report(test_fork(grandchild, NULL));
    return 0; /* exits, leaving the grandchild */
}

TEST(shm_tree_outlives_creator)
{
    open_report();
    pid_t pid = test_fork(tree_child, NULL);
    pid_t tracker = (pid_t)read_report();
    pid_t grand = (pid_t)read_report();
    test_expect_child_ok(pid);
    CHECK(shm_exists(tname("tree")));
    CHECK(!proc_gone(tracker));
    CHECK_EQ(kill(grand, SIGKILL), 0);
    WAIT_UNTIL(!shm_exists(tname("tree")), CLEANUP_MS);
    WAIT_UNTIL(proc_gone(tracker), CLEANUP_MS);
}

/* A child that execs another program leaves the tree. */
static __attribute__((noreturn)) int exec_child(void *arg)
{
    (void)arg;
    create_named(tname("exec"), 1, 0);
    pid_t g = fork();
    if (g == 0) {
        execl("/bin/sh", "sh", "-c", "sleep 60", (char *)NULL);
        _exit(127);
    }
    report(g);
    for (;;)
        pause();
}

TEST(shm_exec_leaves_tree)
{
    open_report();
    pid_t pid = test_fork(exec_child, NULL);
    pid_t grand = (pid_t)read_report();
    CHECK(shm_exists(tname("exec")));
    CHECK_EQ(kill(pid, SIGKILL), 0);
    test_expect_child_killed(pid);
    WAIT_UNTIL(!shm_exists(tname("exec")), CLEANUP_MS);
    CHECK(!proc_gone(grand));
    CHECK_EQ(kill(grand, SIGKILL), 0);
}

/* Killed right after the name was linked: it is the tree's, so it goes. */
static int crash_linked_child(void *arg)
{
    (void)arg;
    create_named(tname("first"), 1, 0); /* the tracker starts here */
    report(mproc__shm_tracker_pid());
    mproc__fault_arm("shm.create.linked", 1, mproc__fault_kill_self);
    create_named(tname("linked"), 1, 0);
    return 1; /* not reached */
}

TEST(shm_crash_after_link)
{
    open_report();
    pid_t pid = test_fork(crash_linked_child, NULL);
    pid_t tracker = (pid_t)read_report();
    test_expect_child_killed(pid);
    WAIT_UNTIL(proc_gone(tracker), CLEANUP_MS);
    CHECK(!shm_exists(tname("linked")));
    CHECK(!shm_exists(tname("first")));
}

/* Killed after recording a name but before linking it: the name was
 * never the tree's. Once with the name free (nothing must appear) and
 * once with the name held by another segment (which must survive). */
static int crash_recorded_child(void *arg)
{
    create_named(tname("first"), 1, 0);
    report(mproc__shm_tracker_pid());
    mproc__fault_arm("shm.create.recorded", 1, mproc__fault_kill_self);
    create_named(arg, 1, 0);
    return 1; /* not reached */
}

TEST(shm_crash_before_link)
{
    for (int taken = 0; taken < 2; taken++) {
        const char *name = tname("recorded");
        mproc_shm *other = taken ? create_named(name, 7, MPROC_SHM_KEEP) : NULL;
        open_report();
        pid_t pid = test_fork(crash_recorded_child, (void *)name);
        pid_t tracker = (pid_t)read_report();
        test_expect_child_killed(pid);
        WAIT_UNTIL(proc_gone(tracker), CLEANUP_MS);
        CHECK(!shm_exists(tname("first")));
        CHECK_EQ(shm_exists(name), taken);
        if (other) {
            CHECK_OK(mproc_shm_unlink(other));
            CHECK_OK(mproc_shm_destroy(other));
        }
        close(g_pipe[0]);
        close(g_pipe[1]);
    }
}

/* A name unlinked by the tree and created again with MPROC_SHM_KEEP is
 * not the tracked one any more. */
static int reuse_child(void *arg)
{
    (void)arg;
    mproc_shm *s = create_named(tname("reuse"), 1, 0);
    CHECK_OK(mproc_shm_unlink(s));
    create_named(tname("reuse"), 1, MPROC_SHM_KEEP);
    report(mproc__shm_tracker_pid());
    return 0;
}

TEST(shm_reused_name_survives)
{
    open_report();
    pid_t pid = test_fork(reuse_child, NULL);
    pid_t tracker = (pid_t)read_report();
    test_expect_child_ok(pid);
    WAIT_UNTIL(proc_gone(tracker), CLEANUP_MS);
    CHECK(shm_exists(tname("reuse")));
    unlink_name(tname("reuse"));
}

/* The tracker also cleans up after a normal exit, and after a tree
 * whose processes each made segments of their own. */
static int many_child(void *arg)
{
    char tag[32];
    snprintf(tag, sizeof tag, "many%ld", (long)(intptr_t)arg);
    create_named(tname(tag), 1, 0);
    return 0;
}

static int root_child(void *arg)
{
    (void)arg;
    create_named(tname("root"), 1, 0);
    for (long i = 0; i < 4; i++)
        test_expect_child_ok(test_fork(many_child, (void *)(intptr_t)i));
    /* The children's segments are the tree's: they stay while it lives. */
    CHECK_EQ(count_ours(), 5);
    report(mproc__shm_tracker_pid());
    return 0;
}

TEST(shm_tree_of_creators)
{
    open_report();
    pid_t pid = test_fork(root_child, NULL);
    pid_t tracker = (pid_t)read_report();
    test_expect_child_ok(pid);
    WAIT_UNTIL(count_ours() == 0, CLEANUP_MS);
    WAIT_UNTIL(proc_gone(tracker), CLEANUP_MS);
}

/* ------------------------------------------------------------------ */
/* leaks                                                               */
/* ------------------------------------------------------------------ */

TEST_T(shm_cycles, 60)
{
    /* Warm up: the tracker's socket is opened once per process. */
    mproc_shm *s = create_named(tname("warm"), 1, 0);
    CHECK_OK(mproc_shm_unlink(s));
    CHECK_OK(mproc_shm_destroy(s));
    int fds = count_fds();
    CHECK_EQ(count_ours(), 0);
    for (int i = 0; i < 1000; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "cycle%d", i % 7);
        const char *name = tname(tag);
        s = create_named(name, 4096 + (size_t)i, i % 3 == 0 ? MPROC_SHM_KEEP : 0);
        mproc_shm *t;
        CHECK_OK(mproc_shm_attach(&t, name));
        CHECK_EQ(mproc_shm_size(t), 4096 + (size_t)i);
        ((char *)mproc_shm_addr(s))[i] = 1;
        CHECK_EQ(((char *)mproc_shm_addr(t))[i], 1);
        CHECK_OK(mproc_shm_unlink(s));
        CHECK_OK(mproc_shm_destroy(t));
        CHECK_OK(mproc_shm_destroy(s));
        CHECK_OK(mproc_shm_create(&s, &(mproc_shm_opts){ .size = 1 + (size_t)i }));
        CHECK_OK(mproc_shm_destroy(s));
    }
    CHECK_EQ(count_fds(), fds);
    CHECK_EQ(count_ours(), 0);
}
