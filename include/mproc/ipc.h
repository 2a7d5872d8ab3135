/*
 * mproc/ipc.h -- communication and shared state between processes
 * (Python's multiprocessing Queue, Pipe, Value, Array, shared_memory and
 * Manager dict/list).
 *
 * Every object here lives in shared memory of its own (a memfd mapping,
 * or a named segment for mproc_shm), so a handle created before fork()
 * is valid in the children at the same address, and the memory goes away
 * when the last process using it unmaps it or exits. Every object works
 * between threads of one process and between processes alike, and
 * survives a participant dying at any point: the most a dead process can
 * lose is the one message it was putting or getting.
 */
#ifndef MPROC_IPC_H
#define MPROC_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- queues: Queue, SimpleQueue, JoinableQueue ---------------------- */

/* ---- pipes: Pipe and Connection -------------------------------------- */

/* ---- shared values and arrays: Value, Array, RawValue, RawArray ------ */

/* ---- shared memory segments: shared_memory.SharedMemory -------------- */

#ifdef __cplusplus
}
#endif
#endif /* MPROC_IPC_H */
