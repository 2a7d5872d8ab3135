#!/usr/bin/env python3
"""Python's side of bench_ipc: one producer process -> one consumer process.

usage: py_ipc.py SIZE N [RUNS]

Sends N messages of SIZE bytes from one multiprocessing.Process to another,
first through a multiprocessing.Queue (put/get of bytes objects), then
through a multiprocessing.Pipe(duplex=False) (send_bytes/recv_bytes, its
fastest way for bytes). Prints one line: messages per second of the Queue
and of the Pipe, each the median of RUNS runs (default 5) after one shorter
warm-up run.

Measured as in the C benchmark: process start-up is not timed (both start
after a barrier); a run lasts from the producer's first message to the
consumer's last, and the consumer checks the first and last byte of every
message so none can be skipped. The Queue is unbounded for small messages
(the common use, and its fastest); for messages of 64 KiB and more it holds
at most 16 of them, or the producer would buffer them all in memory.
"""
import multiprocessing as mp
import statistics
import sys
import time


def message(size, i):
    b = bytearray(size)
    b[0] = b[-1] = i & 0xFF
    return bytes(b)


def producer(kind, chan, barrier, times, size, n):
    # Messages are made beforehand (256 distinct ones) so that the timing
    # is the channel's, not bytes() construction.
    msgs = [message(size, i) for i in range(min(n, 256))]
    barrier.wait()
    times[0] = time.monotonic_ns()
    if kind == "queue":
        put = chan.put
        for i in range(n):
            put(msgs[i & 0xFF])
        chan.close()
        chan.join_thread()  # every message handed to the pipe
    else:
        send = chan.send_bytes
        for i in range(n):
            send(msgs[i & 0xFF])


def consumer(kind, chan, barrier, times, bad, size, n):
    barrier.wait()
    get = chan.get if kind == "queue" else chan.recv_bytes
    errors = 0
    for i in range(n):
        m = get()
        if len(m) != size or m[0] != i & 0xFF or m[-1] != i & 0xFF:
            errors += 1
    times[1] = time.monotonic_ns()
    bad.value = errors


def one_run(kind, size, n):
    """Messages per second of one run."""
    if kind == "queue":
        q = mp.Queue() if size < 65536 else mp.Queue(16)
        ends = (q, q)
    else:
        r, w = mp.Pipe(duplex=False)
        ends = (w, r)
    barrier = mp.Barrier(2)
    times = mp.Array("q", 2, lock=False)
    bad = mp.Value("q", 0, lock=False)
    procs = [mp.Process(target=producer, args=(kind, ends[0], barrier, times, size, n)),
             mp.Process(target=consumer, args=(kind, ends[1], barrier, times, bad, size, n))]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"py_ipc: {kind} worker exited with {p.exitcode}")
    if bad.value:
        sys.exit(f"py_ipc: {kind}: {bad.value} messages lost or corrupt")
    return n / ((times[1] - times[0]) / 1e9)


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    size, n = int(sys.argv[1]), int(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) == 4 else 5
    if size < 1 or n < 1 or runs < 1:
        sys.exit("py_ipc: SIZE, N and RUNS must be positive")
    rates = []
    for kind in ("queue", "pipe"):
        one_run(kind, size, max(1, n // 10))  # warm-up
        rates.append(statistics.median(one_run(kind, size, n) for _ in range(runs)))
    print(f"{rates[0]:.1f} {rates[1]:.1f}")


if __name__ == "__main__":
    main()
