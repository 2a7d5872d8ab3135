/*
 * mproc.h -- Python's concurrency model (threading, multiprocessing,
 * concurrent.futures) for C on Linux.
 *
 * Include this header for the whole public API, or one layer's header
 * from mproc/ for that layer and the ones below it:
 *   mproc/os.h       error codes, clock, memory shared across fork
 *   mproc/sync.h     lock, rlock, condition, semaphore, event, barrier
 *   mproc/ipc.h      queues, pipes, shared values/arrays, shared memory
 *   mproc/workers.h  threads (and processes)
 *   mproc/exec.h     executors and futures
 */
#ifndef MPROC_H
#define MPROC_H

#include "mproc/os.h"
#include "mproc/sync.h"
#include "mproc/ipc.h"
#include "mproc/workers.h"
#include "mproc/exec.h"

#endif /* MPROC_H */
