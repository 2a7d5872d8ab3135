/*
 * tests/jobserver_child.c -- a helper program of test_jobserver.c, run by
 * `make -j` from a '+' recipe:
 *
 *     jobserver_child COUNTERS_FILE TASKS
 *
 * maps the js_counters at the start of COUNTERS_FILE (shared with the
 * test and the other recipes), runs TASKS tasks on a process executor
 * with MPROC_JOBSERVER and 3 workers, and counts itself in own_pool if
 * it did not join make's jobserver (MAKEFLAGS would then name a pool of
 * its own) and in failed if a task failed. Exits 0 unless it could not
 * run at all.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "jobserver_common.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s COUNTERS_FILE TASKS\n", argv[0]);
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror(argv[1]);
        return 2;
    }
    js_counters *c = mmap(NULL, sizeof *c, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (c == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    int n = atoi(argv[2]);
    mproc_executor *ex;
    int rc = mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                               .workers = 3,
                                                               .flags = MPROC_JOBSERVER });
    if (rc != 0) {
        fprintf(stderr, "executor: %s\n", mproc_strerror(rc));
        return 2;
    }
    const char *mf = getenv("MAKEFLAGS");
    if (!mf || strstr(mf, "fifo:/proc/"))
        atomic_fetch_add(&c->own_pool, 1);
    js_task_arg a = { c, 20 };
    mproc_future *f[64];
    if (n < 0 || n > 64)
        n = 64;
    for (int i = 0; i < n; i++)
        if (mproc_submit_ex(ex, js_task, &a, sizeof a, &(mproc_submit_opts){ .flags = MPROC_COPY_ARG },
                            &f[i]) != 0)
            f[i] = NULL;
    for (int i = 0; i < n; i++) {
        if (!f[i] || mproc_future_result(f[i], 60000, NULL, NULL) != 0)
            atomic_fetch_add(&c->failed, 1);
        mproc_future_release(f[i]);
    }
    mproc_executor_destroy(ex);
    return 0;
}
