/*
 * bench/bench_exec_tbb.cpp -- oneTBB's side of bench_exec (cases 2 and 3),
 * compiled only when CMake finds oneTBB and a C++ compiler. Everything runs
 * in one task_arena with as many slots as bench_exec has workers (the
 * calling thread takes one of them, as it does in an OpenMP team).
 */
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>

#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

extern "C" {
int64_t bench_sum_sq(const int64_t *x, size_t n); /* bench_exec.c */
int bench_tbb_init(int threads);
long bench_tbb_fib(int n);
int64_t bench_tbb_sum_sq(const int64_t *x, size_t n);
}

namespace {

tbb::task_arena *arena;

/* One task per call, as in the mproc version: both children are tasks,
 * and wait() runs other tasks of the arena meanwhile. */
long fib(int n)
{
    if (n < 2)
        return n;
    long x = 0, y = 0;
    tbb::task_group g;
    g.run([&] { x = fib(n - 1); });
    g.run([&] { y = fib(n - 2); });
    g.wait();
    return x + y;
}

} // namespace

/* Returns 0, or -ENOMEM (12) when the arena cannot be made. */
int bench_tbb_init(int threads)
{
    arena = new (std::nothrow) tbb::task_arena(threads);
    if (arena == nullptr)
        return -12;
    arena->initialize();
    return 0;
}

long bench_tbb_fib(int n)
{
    return arena->execute([n] { return fib(n); });
}

int64_t bench_tbb_sum_sq(const int64_t *x, size_t n)
{
    return arena->execute([x, n] {
        return tbb::parallel_reduce(
            tbb::blocked_range<size_t>(0, n), int64_t{0},
            [x](const tbb::blocked_range<size_t> &r, int64_t acc) {
                return acc + bench_sum_sq(x + r.begin(), r.size());
            },
            std::plus<int64_t>());
    });
}
