/*
 * tools/cli.c -- small helpers of the commands: numbers in arguments, the
 * progress line on stderr, and the CPU-bound loop that bench and the labs
 * time.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

#include "tools.h"

/* Width of the progress line: it is padded to this many columns so a
 * shorter line fully covers a longer one. */
#define PROGRESS_WIDTH 72

int mproc__parse_count(const char *text, unsigned max, unsigned *out)
{
    if (text == NULL || *text == '\0')
        return -EINVAL;
    unsigned long long v = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return -EINVAL;
        v = v * 10 + (unsigned)(*c - '0');
        if (v > max)
            return -EINVAL;
    }
    if (v < 1)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

void mproc__progress(const char *fmt, ...)
{
    if (!isatty(STDERR_FILENO))
        return;
    char line[PROGRESS_WIDTH + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r%-*s", PROGRESS_WIDTH, line);
    fflush(stderr);
}

void mproc__progress_clear(void)
{
    if (!isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r%*s\r", PROGRESS_WIDTH, "");
    fflush(stderr);
}

uint64_t mproc__spin(uint64_t steps, uint64_t seed)
{
    /* xorshift64: each step needs the one before, so the loop can be
     * neither vectorised nor skipped, and it touches no memory. */
    uint64_t x = (seed * UINT64_C(0x9E3779B97F4A7C15)) | 1;
    for (uint64_t i = 0; i < steps; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

double mproc__spin_rate(int64_t min_ms)
{
    volatile uint64_t sink = 0;
    double best = 0;
    for (uint64_t steps = UINT64_C(1) << 14;; steps *= 2) {
        int64_t t0 = mproc_now_ns();
        sink += mproc__spin(steps, steps);
        double us = (double)(mproc_now_ns() - t0) / 1e3;
        if (us > 0 && (double)steps / us > best)
            best = (double)steps / us;
        if (us >= (double)min_ms * 1e3 || steps >= (UINT64_C(1) << 40))
            return best;
    }
}
