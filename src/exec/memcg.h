/*
 * exec/memcg.h -- a memory cgroup per process worker, for
 * worker_memory_limit (internal).
 *
 * A cgroup limits what a worker has resident, where RLIMIT_AS can only
 * limit what it maps. Each worker of a pool gets a cgroup of its own,
 * made next to the caller's (a sibling directory named
 * mproc-<pid>-<pool>-<worker> in the caller's cgroup), with its memory
 * limit set; the worker moves itself into it first thing, through a
 * descriptor of the cgroup's cgroup.procs that it is handed at start.
 * Memory it had before stays charged where it was: the limit counts what
 * it allocates after (its initializer's included) and the pages it
 * touches first, in shared memory too. Past the limit the kernel kills
 * it (SIGKILL), and the cgroup's oom_kill count says that is why.
 *
 * cgroup v2 is used when the caller's cgroup has the memory controller
 * and may hand it down (it is the namespace's root, or holds no
 * processes itself); else cgroup v1's memory hierarchy when this process
 * may make cgroups in it (root, usually); else neither, and the caller
 * falls back to RLIMIT_AS. A cgroup left behind by a pool whose process
 * was killed is removed by the next pool made in the same cgroup.
 */
#ifndef MPROC_EXEC_MEMCG_H
#define MPROC_EXEC_MEMCG_H

#include <stddef.h>
#include <stdint.h>

#include "mproc/exec.h"

#define MPROC__MEMCG_PATH 512

/* A pool's cgroups: where they go and how they are named. */
struct mproc__memcg {
    mproc_memory_limit_kind kind; /* MPROC_MEMLIMIT_CGROUP2 / _CGROUP1 */
    int dirfd;                    /* the caller's cgroup directory */
    unsigned pool;                /* this pool's number in the process */
    size_t limit;
    char dir[MPROC__MEMCG_PATH];  /* its path, for messages */
};

/* Set cg up for a pool whose workers may each have `limit` bytes, using
 * `want` (MPROC_MEMLIMIT_CGROUP2 or _CGROUP1) or, for
 * MPROC_MEMLIMIT_AUTO, the first of the two this process may use.
 * Returns 0, or -ENOTSUP (no such hierarchy, or no memory controller
 * there), -EACCES/-EPERM/-EROFS (not allowed to make cgroups), -EBUSY
 * (cgroup v2: the caller's cgroup holds processes and cannot hand the
 * controller down), -ENOMEM. */
int mproc__memcg_open(struct mproc__memcg *cg, mproc_memory_limit_kind want, size_t limit);

/* Make (or reuse) worker `index`'s cgroup with the limit set, and open
 * its cgroup.procs for writing (close-on-exec): the descriptor to hand
 * the worker. *oom_kills receives the cgroup's kill count so far.
 * Returns the descriptor or -errno. */
int mproc__memcg_worker(struct mproc__memcg *cg, int index, uint64_t *oom_kills);

/* How many times the kernel killed a process of worker `index`'s cgroup
 * for going past its limit (0 if unknown). */
uint64_t mproc__memcg_oom_kills(const struct mproc__memcg *cg, int index);

/* In a worker: move the calling process into the cgroup whose
 * cgroup.procs descriptor it was handed. Returns 0 or -errno. */
int mproc__memcg_join(int procs_fd);

/* Remove the workers' cgroups (nworkers of them; their processes have
 * ended) and close cg. */
void mproc__memcg_close(struct mproc__memcg *cg, unsigned nworkers);

#endif /* MPROC_EXEC_MEMCG_H */
