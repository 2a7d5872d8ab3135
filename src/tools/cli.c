/*
 * tools/cli.c -- small command-line helpers: numbers in arguments, and the
 * progress line on stderr.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

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
