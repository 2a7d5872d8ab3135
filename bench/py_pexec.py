#!/usr/bin/env python3
"""Python's side of bench_pexec: the same work on Python's process pools.

usage: py_pexec.py CASE N RUNS WORKERS [N2]

Every pool is created (and its workers started, by a first untimed call)
before the timed runs, as the C side creates its executor before timing.
Each figure is the median of RUNS runs, after one warm-up run. Python's
default start method is used (fork on Linux before Python 3.14). Prints
one line per figure, "NAME VALUE":

  map N RUNS WORKERS N2   x*x over range(N) with multiprocessing.Pool.map
                          (default chunking), and over range(N2) with
                          concurrent.futures.ProcessPoolExecutor.map
                          (default chunksize=1); results summed and checked.
                          pool_map / ppe_map: items per second.
  cs1 N RUNS WORKERS      N tiny tasks one per message: Pool.map with
                          chunksize=1, and ProcessPoolExecutor.submit for
                          each then result() of each. pool_map_cs1 /
                          ppe_submit: tasks per second.
  rtt N RUNS WORKERS      N submit(...).result() round trips, one after
                          another, on an idle ProcessPoolExecutor.
                          ppe_rtt_median / ppe_rtt_p99: microseconds (the
                          median over runs of each run's median / p99).
  crash N RUNS            a task SIGKILLs its worker: the pool is broken
                          (BrokenProcessPool), so serving again means a new
                          ProcessPoolExecutor(1) and its first result.
                          ppe_replace: microseconds from the failed
                          future to that result, median of N per run.
  big N RUNS SIZE         N submit(...).result() of a task returning SIZE
                          bytes, one after another, on an idle
                          ProcessPoolExecutor(1). ppe_big: microseconds
                          per result (mean of a run, median of runs).
"""
import concurrent.futures as cf
import multiprocessing as mp
import os
import signal
import statistics
import sys
import time


def sq(x):
    return x * x


def die(_):
    os.kill(os.getpid(), signal.SIGKILL)


def check(total, n, what):
    want = (n - 1) * n * (2 * n - 1) // 6
    if total != want:
        sys.exit(f"py_pexec: {what}: wrong sum {total}, expected {want}")


def median_of(runs, fn):
    fn()  # warm-up
    return statistics.median(fn() for _ in range(runs))


def rate(n, t0, t1):
    return n / ((t1 - t0) / 1e9)


def case_map(n, runs, workers, n2):
    with mp.Pool(workers) as pool:
        pool.map(sq, range(4 * workers))  # workers up

        def pool_run():
            t0 = time.perf_counter_ns()
            total = sum(pool.map(sq, range(n)))
            t1 = time.perf_counter_ns()
            check(total, n, "Pool.map")
            return rate(n, t0, t1)

        print("pool_map", median_of(runs, pool_run), flush=True)
    with cf.ProcessPoolExecutor(workers) as ex:
        list(ex.map(sq, range(4 * workers)))

        def ppe_run():
            t0 = time.perf_counter_ns()
            total = sum(ex.map(sq, range(n2)))
            t1 = time.perf_counter_ns()
            check(total, n2, "ProcessPoolExecutor.map")
            return rate(n2, t0, t1)

        print("ppe_map", median_of(runs, ppe_run), flush=True)


def case_cs1(n, runs, workers):
    with mp.Pool(workers) as pool:
        pool.map(sq, range(4 * workers))

        def pool_run():
            t0 = time.perf_counter_ns()
            total = sum(pool.map(sq, range(n), chunksize=1))
            t1 = time.perf_counter_ns()
            check(total, n, "Pool.map chunksize=1")
            return rate(n, t0, t1)

        print("pool_map_cs1", median_of(runs, pool_run), flush=True)
    with cf.ProcessPoolExecutor(workers) as ex:
        list(ex.map(sq, range(4 * workers)))

        def ppe_run():
            t0 = time.perf_counter_ns()
            futures = [ex.submit(sq, i) for i in range(n)]
            total = sum(f.result() for f in futures)
            t1 = time.perf_counter_ns()
            check(total, n, "ProcessPoolExecutor.submit")
            return rate(n, t0, t1)

        print("ppe_submit", median_of(runs, ppe_run), flush=True)


def case_rtt(n, runs, workers):
    p99s = []
    with cf.ProcessPoolExecutor(workers) as ex:
        list(ex.map(sq, range(4 * workers)))

        def one_run():
            lat = []
            for i in range(n):
                t0 = time.perf_counter_ns()
                if ex.submit(sq, i).result() != i * i:
                    sys.exit("py_pexec: rtt: wrong result")
                lat.append(time.perf_counter_ns() - t0)
            lat.sort()
            p99s.append(lat[n * 99 // 100] / 1e3)
            return lat[n // 2] / 1e3

        med = median_of(runs, one_run)
    print("ppe_rtt_median", med, flush=True)
    print("ppe_rtt_p99", statistics.median(p99s[1:]), flush=True)


def make_bytes(size):
    return b"\x01" * size


def case_big(n, runs, size):
    with cf.ProcessPoolExecutor(1) as ex:
        ex.submit(make_bytes, 1).result()

        def one_run():
            t0 = time.perf_counter_ns()
            for _ in range(n):
                b = ex.submit(make_bytes, size).result()
                if len(b) != size or b[size - 1] != 1:
                    sys.exit("py_pexec: big: wrong result")
            return (time.perf_counter_ns() - t0) / 1e3 / n

        print("ppe_big", median_of(runs, one_run), flush=True)


def case_crash(n, runs):
    def one_run():
        lat = []
        for _ in range(n):
            ex = cf.ProcessPoolExecutor(1)
            ex.submit(sq, 2).result()  # the worker is up
            try:
                ex.submit(die, 0).result()
                sys.exit("py_pexec: crash: the task did not fail")
            except cf.process.BrokenProcessPool:
                pass
            t0 = time.perf_counter_ns()
            ex2 = cf.ProcessPoolExecutor(1)
            if ex2.submit(sq, 3).result() != 9:
                sys.exit("py_pexec: crash: wrong result")
            t1 = time.perf_counter_ns()
            ex.shutdown(wait=True)
            ex2.shutdown(wait=True)
            lat.append((t1 - t0) / 1e3)
        return statistics.median(lat)

    print("ppe_replace", median_of(runs, one_run), flush=True)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    case, n, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else (os.cpu_count() or 1)
    if n < 1 or runs < 1 or workers < 1:
        sys.exit("py_pexec: N, RUNS and WORKERS must be positive")
    if case == "map":
        case_map(n, runs, workers, int(sys.argv[5]) if len(sys.argv) > 5 else n)
    elif case == "cs1":
        case_cs1(n, runs, workers)
    elif case == "rtt":
        case_rtt(n, runs, workers)
    elif case == "crash":
        case_crash(n, runs)
    elif case == "big":
        case_big(n, runs, int(sys.argv[4]) if len(sys.argv) > 4 else 1 << 20)
    else:
        sys.exit(f"py_pexec: unknown case {case!r}")


if __name__ == "__main__":
    main()
