/*
 * tools/lab_zombie.c -- `mproc lab zombie`: a child nobody waits for is
 * a zombie; mproc waits for its own.
 *
 * 1. The notes' demo: raw fork(), the child calls _exit(0) at once, the
 *    parent does not wait. The parent polls /proc/CHILD/stat (deadline
 *    10 s) until the state is Z, checks that it is still Z a while later
 *    (nobody reaps it), then calls waitpid and checks that the entry is
 *    gone.
 * 2. mproc_process children, started with fork and with forkserver, that
 *    end at once and are joined: right after join, /proc has no entry for
 *    them (join reaps; a forkserver child is reaped by the server before
 *    it reports the status join waits for).
 * 3. Children whose handle the program destroyed without joining, which
 *    workers.h promises mproc still reaps. A fork child that ends after
 *    its handle was destroyed is reaped at mproc's next process start (or
 *    at exit): the lab looks for it in /proc as Z, starts and joins one
 *    more process, and checks it is gone. A forkserver child is reaped by
 *    the server as soon as it ends: the lab waits (deadline 10 s) for its
 *    entry to disappear.
 * 4. Finally /proc is scanned (procfs.c) for zombies among this
 *    process's children (at once) and grandchildren (a forkserver's,
 *    given a moment to be reaped).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "procfs.h"
#include "tools.h"

#define SEEN_WAIT_MS 10000 /* for a state to show up in /proc */
#define WAIT_MS 60000

/* Gone from the process table: no entry, or the pid now belongs to a
 * process of another parent (reused). parent 0: any parent. */
static bool gone(pid_t pid, pid_t parent)
{
    pid_t ppid = 0;
    char s = mproc__lab_proc_state(pid, &ppid);
    return s == 0 || (parent != 0 && ppid != parent);
}

/* Poll until pid's state is `want` (0: gone). Returns the ms it took, or
 * -1 past the deadline. */
static double poll_state(pid_t pid, char want, pid_t parent)
{
    int64_t t0 = mproc_now_ns(), deadline = t0 + (int64_t)SEEN_WAIT_MS * 1000000;
    for (;;) {
        bool ok = want ? mproc__lab_proc_state(pid, NULL) == want : gone(pid, parent);
        int64_t now = mproc_now_ns();
        if (ok)
            return (double)(now - t0) / 1e6;
        if (now >= deadline)
            return -1;
        usleep(200);
    }
}

/* Zombies among this process's children, and (unless NULL) among their
 * children; or a negative code. */
static int count_zombies(int *grand)
{
    mproc__proc_list l = { 0 };
    int rc = mproc__proc_scan(&l, false);
    if (rc != 0)
        return rc;
    int me = (int)getpid(), z = 0;
    if (grand)
        *grand = 0;
    for (size_t i = 0; i < l.count; i++) {
        const mproc__proc *p = &l.procs[i];
        if (p->ppid == me && p->state == 'Z') {
            z++;
        } else if (grand && p->state == 'Z') {
            const mproc__proc *parent = mproc__proc_find(&l, p->ppid);
            *grand += parent && parent->ppid == me;
        }
    }
    mproc__proc_list_free(&l);
    return z;
}

/* Ends at once. */
static int quick_child(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    return 0;
}

/* Waits until the parent closes the pipe (fds[0] to read, fds[1] the
 * parent's end, closed here). */
static int pipe_child(const void *arg, size_t len, mproc_ctx *ctx)
{
    int fds[2];
    if (len != sizeof fds)
        return mproc_fail(ctx, -EINVAL, "argument of %zu bytes", len);
    memcpy(fds, arg, sizeof fds);
    close(fds[1]);
    char b;
    mproc__lab_read_full(fds[0], &b, 1); /* end of file: our cue */
    return 0;
}

/* Sleeps `ms` (a forkserver child inherits none of our descriptors). */
static int sleep_child(const void *arg, size_t len, mproc_ctx *ctx)
{
    int ms;
    if (len != sizeof ms)
        return mproc_fail(ctx, -EINVAL, "argument of %zu bytes", len);
    memcpy(&ms, arg, sizeof ms);
    mproc_sleep_ms(ms);
    return 0;
}

/* Start an mproc child of method how that ends at once, join it; its
 * pid in *pid. */
static int start_join(mproc_start_method how, pid_t *pid)
{
    mproc_process *p;
    int rc = mproc__lab_process(&p, how, quick_child, NULL, 0);
    if (rc != 0)
        return rc;
    *pid = mproc_process_pid(p);
    rc = mproc__lab_join(p, WAIT_MS);
    mproc_process_destroy(p);
    return rc;
}

struct findings {
    bool raw_seen, raw_still, raw_gone;
    double raw_seen_ms;
    bool fork_gone, forkserver_gone;
    bool detached_fork_zombie, detached_fork_gone;
    bool detached_fs_gone;
    double detached_fs_ms;
    int zombies, grand_zombies;
};

/* Part 1: the notes' zombie. */
static int raw_zombie(int hold_ms, struct findings *f)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(0); /* the child dies at once; the parent does not wait */
    f->raw_seen_ms = poll_state(pid, 'Z', 0);
    f->raw_seen = f->raw_seen_ms >= 0;
    if (f->raw_seen) {
        mproc_sleep_ms(hold_ms);
        f->raw_still = mproc__lab_proc_state(pid, NULL) == 'Z';
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    f->raw_gone = gone(pid, getpid());
    return 0;
}

/* Part 3: handles destroyed before their child ended. */
static int detached(int hold_ms, struct findings *f)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    mproc_process *p;
    int rc = mproc__lab_process(&p, MPROC_START_FORK, pipe_child, fds, sizeof fds);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        return rc;
    }
    pid_t pid = mproc_process_pid(p);
    mproc_process_destroy(p); /* never joined through this handle */
    close(fds[1]);            /* the child ends now */
    /* Z until mproc reaps it; or gone, if it reaps at once. */
    int64_t deadline = mproc_now_ns() + (int64_t)SEEN_WAIT_MS * 1000000;
    char s;
    while ((s = mproc__lab_proc_state(pid, NULL)) != 'Z' && !gone(pid, getpid()) &&
           mproc_now_ns() < deadline)
        usleep(200);
    f->detached_fork_zombie = s == 'Z';
    if (f->detached_fork_zombie)
        mproc_sleep_ms(hold_ms);
    pid_t next;
    if ((rc = start_join(MPROC_START_FORK, &next)) != 0) /* reaps the detached */
        return rc;
    f->detached_fork_gone = gone(pid, getpid());

    int ms = 10;
    if ((rc = mproc__lab_process(&p, MPROC_START_FORKSERVER, sleep_child, &ms, sizeof ms)) != 0)
        return rc;
    pid = mproc_process_pid(p);
    mproc_process_destroy(p);
    f->detached_fs_ms = poll_state(pid, 0, 0);
    f->detached_fs_gone = f->detached_fs_ms >= 0;
    return 0;
}

int mproc__lab_zombie(const mproc__lab_opts *o, mproc__lab_report *r)
{
    int hold_ms = o->quick ? 20 : 500;
    struct findings f;
    memset(&f, 0, sizeof f);
    /* With SIGCHLD ignored the kernel reaps every child itself (and no
     * zombie can be made): undo that for the lab, if someone set it. */
    struct sigaction dfl = { .sa_handler = SIG_DFL }, old;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &old);
    if (old.sa_handler == SIG_IGN)
        mproc__lab_note(r, "SIGCHLD was ignored (children reaped by the kernel); the lab "
                           "restored the default while it ran.");
    mproc__progress("lab zombie: a child nobody waits for");
    int rc = raw_zombie(hold_ms, &f);
    pid_t pid = 0;
    if (rc == 0) {
        mproc__progress("lab zombie: mproc children, joined");
        if ((rc = start_join(MPROC_START_FORK, &pid)) == 0)
            f.fork_gone = gone(pid, getpid());
    }
    if (rc == 0 && (rc = start_join(MPROC_START_FORKSERVER, &pid)) == 0)
        f.forkserver_gone = gone(pid, 0);
    if (rc == 0) {
        mproc__progress("lab zombie: mproc children, handles destroyed");
        rc = detached(hold_ms, &f);
    }
    if (rc == 0) {
        f.zombies = count_zombies(NULL);
        /* A forkserver child that just ended is Z until the server wakes. */
        int64_t deadline = mproc_now_ns() + (int64_t)SEEN_WAIT_MS * 1000000;
        while (count_zombies(&f.grand_zombies) >= 0 && f.grand_zombies > 0 &&
               mproc_now_ns() < deadline)
            usleep(1000);
        if (f.zombies < 0)
            rc = f.zombies;
    }
    sigaction(SIGCHLD, &old, NULL);
    if (rc != 0) {
        mproc__lab_note(r, "a child could not be started or waited for: %s", mproc_strerror(rc));
        return rc;
    }

    mproc__lab_metric(r, "raw_zombie_seen", f.raw_seen, "bool",
                      "raw fork, not waited for: state Z seen");
    mproc__lab_metric(r, "raw_zombie_seen_ms", f.raw_seen_ms, "ms", "  after");
    mproc__lab_metric(r, "hold_ms", hold_ms, "ms", "  then waited");
    mproc__lab_metric(r, "raw_still_zombie", f.raw_still, "bool", "  still Z after that");
    mproc__lab_metric(r, "raw_gone_after_waitpid", f.raw_gone, "bool", "  gone after waitpid");
    mproc__lab_metric(r, "fork_joined_gone", f.fork_gone, "bool",
                      "mproc_process fork: gone after join");
    mproc__lab_metric(r, "forkserver_joined_gone", f.forkserver_gone, "bool",
                      "mproc_process forkserver: gone after join");
    mproc__lab_metric(r, "detached_fork_zombie_seen", f.detached_fork_zombie, "bool",
                      "fork, handle destroyed: Z until mproc reaps");
    mproc__lab_metric(r, "detached_fork_gone", f.detached_fork_gone, "bool",
                      "  gone after mproc's next start");
    mproc__lab_metric(r, "detached_forkserver_gone", f.detached_fs_gone, "bool",
                      "forkserver, handle destroyed: gone");
    mproc__lab_metric(r, "detached_forkserver_gone_ms", f.detached_fs_ms, "ms", "  after");
    mproc__lab_metric(r, "zombie_children", f.zombies, "count", "zombie children left at the end");
    mproc__lab_metric(r, "zombie_grandchildren", f.grand_zombies, "count",
                      "zombie grandchildren left");

    mproc__lab_note(r, "A zombie is a process that ended and whose parent has not read its exit "
                       "status (waitpid): it holds a slot in the process table, no memory.");
    if (f.detached_fork_zombie)
        mproc__lab_note(r, "mproc reaps the child of a destroyed fork handle at its next process "
                           "create, start or destroy, or at exit: until then it was a zombie, "
                           "as the notes predict.");
    else
        mproc__lab_note(r, "The child of a destroyed fork handle was reaped as soon as it ended.");

    bool notes = f.raw_seen && f.raw_still && f.raw_gone;
    bool mproc_clean = f.fork_gone && f.forkserver_gone && f.detached_fork_gone &&
                       f.detached_fs_gone && f.zombies == 0 && f.grand_zombies == 0;
    if (!f.raw_seen)
        mproc__lab_verdict(r, false, "the raw child was never seen as Z within %d s (is /proc "
                           "mounted? is SIGCHLD ignored?)", SEEN_WAIT_MS / 1000);
    else
        mproc__lab_verdict(r, notes && mproc_clean,
                           "the raw child was Z after %.1f ms and %s %d ms later, gone after "
                           "waitpid: %s; mproc left %d zombie children, %d grandchildren "
                           "(joined: %s; destroyed handles: %s)",
                           f.raw_seen_ms, f.raw_still ? "still" : "no longer", hold_ms,
                           f.raw_gone ? "yes" : "no", f.zombies, f.grand_zombies,
                           f.fork_gone && f.forkserver_gone ? "reaped" : "NOT reaped",
                           f.detached_fork_gone && f.detached_fs_gone ? "reaped" : "NOT reaped");
    return 0;
}
