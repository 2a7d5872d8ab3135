#!/usr/bin/env python3
"""Python's side of bench_sync case 4: two processes contending on a lock.

usage: py_value_lock.py N [RUNS]

Two multiprocessing.Process each add 1 to one multiprocessing.Value('i')
N times, each time under `with v.get_lock(): v.value += 1` -- the way the
Python documentation tells you to do it. Prints one number: increments per
second of both processes together, the median of RUNS runs (default 5)
after one shorter warm-up run.

Measured as in the C benchmark: process start-up is not timed (the workers
start together after a barrier), and a run counts only while both workers
contend, from the first start until the first worker has done its N.
"""
import multiprocessing as mp
import statistics
import sys
import time


def worker(value, barrier, starts, first, idx, n):
    barrier.wait()
    starts[idx] = time.monotonic_ns()
    for _ in range(n):
        with value.get_lock():
            value.value += 1
    end = time.monotonic_ns()
    with value.get_lock():  # also guards `first`: done?, when, counter
        if not first[0]:
            first[0], first[1], first[2] = 1, end, value.value


def one_run(n):
    """Increments per second of one run with two processes."""
    value = mp.Value("i", 0)
    barrier = mp.Barrier(2)
    starts = mp.Array("q", 2, lock=False)
    first = mp.Array("q", 3, lock=False)
    procs = [mp.Process(target=worker, args=(value, barrier, starts, first, i, n))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"py_value_lock: worker exited with {p.exitcode}")
    if value.value != 2 * n:
        sys.exit(f"py_value_lock: lost updates: {value.value} != {2 * n}")
    return first[2] / ((first[1] - min(starts)) / 1e9)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    n = int(sys.argv[1])
    runs = int(sys.argv[2]) if len(sys.argv) == 3 else 5
    if n < 1 or runs < 1:
        sys.exit("py_value_lock: N and RUNS must be positive")
    one_run(max(1, n // 10))  # warm-up
    print(f"{statistics.median(one_run(n) for _ in range(runs)):.0f}")


if __name__ == "__main__":
    main()
