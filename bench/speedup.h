/*
 * bench/speedup.h -- the CPU-bound speed-up case that bench_exec (thread
 * executors) and bench_pexec (process executors) both run.
 */
#ifndef MPROC_BENCH_SPEEDUP_H
#define MPROC_BENCH_SPEEDUP_H

#include "mproc.h"

/*
 * bench_speedup_case - section `number`: 64 tasks of ~2 ms of arithmetic
 * on an executor of `kind` with 1 worker and with 2 (`what` names them in
 * the figures, e.g. "mproc processes"), side by side; prints both times
 * and records the target speed-up >= 1.85. `ncpu` is the CPUs this
 * process may use (skipped below 2); `settle_ms` is slept before each
 * run, so that the other figure's workers have gone idle.
 */
void bench_speedup_case(int number, mproc_executor_kind kind, const char *what, int ncpu,
                        int settle_ms);

#endif /* MPROC_BENCH_SPEEDUP_H */
