#!/usr/bin/env python3
"""Python's side of bench_exec case 1: many tiny tasks on an executor.

usage: py_executor.py N [RUNS [WORKERS]]

Submits N tiny tasks (each returns 2*x+1 of its int argument) from one
thread to a concurrent.futures.ThreadPoolExecutor of WORKERS threads
(default: os.cpu_count()), then waits for every result, sums and checks
them -- the same work as the C side. Prints one number: tasks per second,
the median of RUNS runs (default 5) after one shorter warm-up run.

Timed as in the C benchmark: from creating the pool to its shutdown
(threads started, every result awaited, threads joined).
"""
import concurrent.futures as cf
import os
import statistics
import sys
import time


def tiny(x):
    return 2 * x + 1


def one_run(n, workers):
    """Tasks per second of one run."""
    t0 = time.perf_counter_ns()
    with cf.ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(tiny, i) for i in range(n)]
        total = sum(f.result() for f in futures)
    t1 = time.perf_counter_ns()
    if total != n * n:
        sys.exit(f"py_executor: wrong sum {total}, expected {n * n}")
    return n / ((t1 - t0) / 1e9)


def main():
    if len(sys.argv) not in (2, 3, 4):
        sys.exit(__doc__)
    n = int(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) >= 3 else 5
    workers = int(sys.argv[3]) if len(sys.argv) >= 4 else (os.cpu_count() or 1)
    if n < 1 or runs < 1 or workers < 1:
        sys.exit("py_executor: N, RUNS and WORKERS must be positive")
    one_run(max(1, n // 10), workers)  # warm-up
    print(f"{statistics.median(one_run(n, workers) for _ in range(runs)):.0f}")


if __name__ == "__main__":
    main()
