/*
 * ipc/shm_internal.h -- what the shared memory segments show to tests
 * (internal).
 */
#ifndef MPROC_IPC_SHM_INTERNAL_H
#define MPROC_IPC_SHM_INTERNAL_H

#include <sys/types.h>

/* The pid of the tracker this process sends its named segments to, or 0
 * if it has none yet (no tracked create in this process or before its
 * fork). The tracker is no child of the caller: watch it through /proc. */
pid_t mproc__shm_tracker_pid(void);

#endif /* MPROC_IPC_SHM_INTERNAL_H */
