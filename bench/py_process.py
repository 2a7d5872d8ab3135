#!/usr/bin/env python3
"""Python's side of bench_proc case 1: start and join a Process that does nothing.

usage: py_process.py N [RUNS]

For each start method (fork, forkserver, spawn) prints one line
"METHOD MICROSECONDS": the median over RUNS runs (default 5, after one
warm-up run) of the mean time of N start()+join() pairs, run one after
another. The target does nothing (pass).
"""
import multiprocessing as mp
import statistics
import sys
import time


def nothing():
    pass


def one_run(ctx, n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
    return (time.perf_counter_ns() - t0) / n / 1000.0


def main():
    n = int(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)
        m = n if method != "spawn" else max(1, n // 10)
        one_run(ctx, max(1, m // 4))
        print(method, statistics.median(one_run(ctx, m) for _ in range(runs)), flush=True)


if __name__ == "__main__":
    main()
