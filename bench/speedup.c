/*
 * bench/speedup.c -- the CPU-bound speed-up case (see speedup.h).
 */
#include "speedup.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#define NTASKS 64
#define TASK_MS 2.0

/* k rounds of an LCG: pure arithmetic the compiler cannot drop. */
static inline uint64_t busy(long k)
{
    uint64_t x = (uint64_t)k;
    for (long j = 0; j < k; j++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    __asm__ __volatile__("" : "+r"(x)); /* keep x (and the loop) alive */
    return x;
}

static int busy_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    long k;
    memcpy(&k, arg, sizeof k);
    uint64_t x = busy(k);
    return mproc_return(ctx, &x, sizeof x);
}

typedef struct speed_arg {
    mproc_executor *ex;
    long rounds;
    int settle_ms;
    mproc_future *futs[NTASKS];
} speed_arg;

static void check(int rc, const char *what)
{
    if (rc != 0)
        bench_die(what, rc);
}

/* One run: milliseconds for every task, submitted then awaited. */
static double run_speed(void *p)
{
    speed_arg *c = p;
    mproc_sleep_ms(c->settle_ms);
    int64_t t0 = bench_now_ns();
    for (int i = 0; i < NTASKS; i++)
        check(mproc_submit(c->ex, busy_task, &c->rounds, sizeof c->rounds, &c->futs[i]),
              "mproc_submit");
    for (int i = 0; i < NTASKS; i++) {
        check(mproc_future_result(c->futs[i], -1, NULL, NULL), "mproc_future_result");
        mproc_future_release(c->futs[i]);
    }
    return (double)(bench_now_ns() - t0) / 1e6;
}

static mproc_executor *make(mproc_executor_kind kind, unsigned workers)
{
    mproc_executor *ex;
    check(mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = kind, .workers = workers,
                                                            .name = "bench" }),
          "mproc_executor_create");
    return ex;
}

void bench_speedup_case(int number, mproc_executor_kind kind, const char *what, int ncpu,
                        int settle_ms)
{
    bench_section("%d. CPU-bound speed-up: %d tasks of ~%.0f ms of arithmetic, 1 worker "
                  "vs 2 workers (ms, lower is better)", number, NTASKS, TASK_MS);
    if (ncpu < 2) {
        bench_note("skipped: this process may use only %d CPU", ncpu);
        bench_target("speed-up: 2 workers / 1 worker", NAN, BENCH_NO_RANGE, BENCH_HIGHER,
                     1.85);
        return;
    }
    /* Calibrate: busy() rounds per ms, the best of 3 tries. */
    double rate = 0;
    for (int i = 0; i < 3; i++) {
        const long k = 2000000;
        int64_t t0 = bench_now_ns();
        busy(k);
        double r = (double)k / ((double)(bench_now_ns() - t0) / 1e6);
        rate = r > rate ? r : rate;
    }
    static speed_arg a[2];
    for (int i = 0; i < 2; i++)
        a[i] = (speed_arg){ make(kind, (unsigned)i + 1), (long)(rate * TASK_MS), settle_ms, { 0 } };
    void *args[2] = { &a[0], &a[1] };
    double v[2];

    bench_compare(2, run_speed, args, v);
    bench_range q = bench_rounds(0, 1);
    mproc_executor_destroy(a[0].ex);
    mproc_executor_destroy(a[1].ex);

    char name[96];
    snprintf(name, sizeof name, "%s, 1 worker", what);
    bench_figure(name, v[0], "ms", NULL, 0);
    snprintf(name, sizeof name, "%s, 2 workers", what);
    bench_figure(name, v[1], "ms", NULL, 0);
    double s = v[0] / v[1];
    bench_note("speed-up %.2fx (ideal 2.00x); %ld busy() rounds per task; timed: "
               "submitting all, awaiting all", s, a[0].rounds);
    bench_target("speed-up: 2 workers / 1 worker (time 1 / time 2)", s, q, BENCH_HIGHER, 1.85);
}
