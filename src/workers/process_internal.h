/*
 * workers/process_internal.h -- what the exec layer's process backend
 * needs from processes beyond the public API (internal).
 */
#ifndef MPROC_WORKERS_PROCESS_INTERNAL_H
#define MPROC_WORKERS_PROCESS_INTERNAL_H

#include "mproc/workers.h"

#define MPROC__PROCESS_MAX_FDS 4

/*
 * Before start: hand the child copies of fds[0..n) (n <= 4; the caller
 * keeps its own). Fork children inherit them, forkserver children get
 * them through the server (SCM_RIGHTS), spawned ones keep them open
 * across exec. The child finds them with mproc__process_fd(i), whatever
 * their numbers are there. Returns 0, -EINVAL (bad n, started), -EBADF.
 */
int mproc__process_set_fds(mproc_process *p, const int *fds, int n);

/* In a child started by mproc_process: the i-th descriptor its parent
 * handed it, or -1. */
int mproc__process_fd(int i);

/* A descriptor that becomes readable once the started process p has
 * ended (then mproc_process_join(p, 0) reaps it), or -1 before start. */
int mproc__process_wait_fd(const mproc_process *p);

#endif /* MPROC_WORKERS_PROCESS_INTERNAL_H */
