/*
 * tools/labkit.c -- what several labs need and none owns: starting an
 * mproc process when a thread the lab joined is still leaving, a
 * process's state from /proc (parsed by procfs.c), pinning the calling
 * thread to one CPU, whole reads on pipes (procview.c's mproc__write_all
 * writes), SIGPIPE out of the way, and the median of a sample.
 *
 * Called from the command's main thread (and, for the pipe helpers, from
 * the children the labs start).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "procfs.h"

/* How long a start is retried while mproc refuses to fork because this
 * process still runs another thread. */
#define THREADS_GRACE_MS 3000

int mproc__lab_start(mproc_process *p)
{
    int64_t deadline = mproc_now_ns() + (int64_t)THREADS_GRACE_MS * 1000000;
    for (;;) {
        int rc = mproc_process_start(p);
        /* A thread joined a moment ago may still be listed by the kernel
         * while it finishes exiting; fork refuses until it is gone. */
        if (rc != MPROC_ETHREADS || mproc_now_ns() >= deadline)
            return rc;
        mproc_sleep_ms(1);
    }
}

int mproc__lab_process(mproc_process **out, mproc_start_method how, mproc_task_fn fn,
                       const void *arg, size_t len)
{
    int rc = mproc_process_create(out, &(mproc_process_opts){ .fn = fn, .arg = arg, .len = len,
                                                               .start = how, .name = "lab" });
    if (rc != 0)
        return rc;
    rc = mproc__lab_start(*out);
    if (rc != 0) {
        mproc_process_destroy(*out);
        *out = NULL;
    }
    return rc;
}

int mproc__lab_join(mproc_process *p, int64_t timeout_ms)
{
    int code = -1;
    int rc = mproc_process_join(p, timeout_ms);
    if (rc == 0)
        rc = mproc_process_exitcode(p, &code);
    return rc != 0 ? rc : code != 0 ? -ECHILD : 0;
}

int mproc__lab_thread(mproc_thread **out, const mproc_thread_opts *o)
{
    int rc = mproc_thread_create(out, o);
    if (rc != 0)
        return rc;
    rc = mproc_thread_start(*out);
    if (rc != 0) {
        mproc_thread_destroy(*out);
        *out = NULL;
    }
    return rc;
}

char mproc__lab_proc_state(pid_t pid, pid_t *ppid)
{
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n;
    while ((n = read(fd, text, sizeof text)) < 0 && errno == EINTR)
        ;
    close(fd);
    mproc__proc p;
    if (n <= 0 || mproc__proc_parse_stat(text, (size_t)n, &p) != 0)
        return 0; /* gone (a zombie's stat still reads) */
    if (ppid)
        *ppid = (pid_t)p.ppid;
    return p.state;
}

int mproc__lab_pin(int *cpu, cpu_set_t *saved)
{
    if (sched_getaffinity(0, sizeof *saved, saved) != 0)
        return -errno;
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, saved))
            first = c;
    if (first < 0)
        return -ENOENT;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (sched_setaffinity(0, sizeof one, &one) != 0)
        return -errno;
    *cpu = first;
    return 0;
}

void mproc__lab_unpin(const cpu_set_t *saved)
{
    sched_setaffinity(0, sizeof *saved, saved);
}

int mproc__lab_read_full(int fd, void *buf, size_t n)
{
    char *b = buf;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

int mproc__lab_ignore_sigpipe(struct sigaction *old)
{
    struct sigaction ign = { .sa_handler = SIG_IGN };
    sigemptyset(&ign.sa_mask);
    return sigaction(SIGPIPE, &ign, old) == 0 ? 0 : -errno;
}

void mproc__lab_restore_sigpipe(const struct sigaction *old)
{
    sigaction(SIGPIPE, old, NULL);
}

int mproc__lab_wait_readable(int fd, int64_t timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int64_t deadline = mproc_now_ns() + timeout_ms * 1000000;
    for (;;) {
        int64_t left = (deadline - mproc_now_ns()) / 1000000;
        int n = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double mproc__lab_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
