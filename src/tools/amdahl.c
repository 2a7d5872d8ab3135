/*
 * tools/amdahl.c -- fitting Amdahl's law to measured speed-ups.
 *
 * Amdahl's law (seed 001, "La Ley de Amdahl"): a program whose parallel
 * fraction is P runs on N processors
 *
 *     S(N) = 1 / ((1-P) + P/N)
 *
 * times faster than on one. Written for the time per unit of work,
 * 1/S = 1 - P (1 - 1/N), so with y = 1/S and x = 1 - 1/N the law is the
 * straight line 1 - y = P x through the origin. The P that minimises the
 * squared error  sum (1 - y_i - P x_i)^2  (set its derivative in P to zero)
 * is the closed form
 *
 *     P = sum x_i (1 - y_i) / sum x_i^2.
 *
 * A point with N = 1 has x = 0 and weighs nothing: one processor says
 * nothing about P. Measured speed-ups may come out a hair above N (timer
 * noise) or below 1 (a loaded machine), which would give P > 1 or P < 0;
 * P is clamped to [0, 1], where the law has a meaning.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>

#include "tools.h"

/* Whether (n, s) is a usable measurement. */
static int point_ok(double n, double s)
{
    return isfinite(n) && isfinite(s) && n >= 1.0 && s > 0.0;
}

int mproc__amdahl_fit(const double *n, const double *s, size_t count, double *p)
{
    if ((count > 0 && (n == NULL || s == NULL)) || p == NULL)
        return -EINVAL;
    double sxy = 0.0, sxx = 0.0;
    for (size_t i = 0; i < count; i++) {
        if (!point_ok(n[i], s[i]))
            return -EINVAL;
        double x = 1.0 - 1.0 / n[i];
        double y = 1.0 / s[i];
        sxy += x * (1.0 - y);
        sxx += x * x;
    }
    if (sxx <= 0.0)
        return -EINVAL;
    double fit = sxy / sxx;
    *p = fit < 0.0 ? 0.0 : fit > 1.0 ? 1.0 : fit;
    return 0;
}

double mproc__amdahl_speedup(double p, double n)
{
    return 1.0 / ((1.0 - p) + p / n);
}

double mproc__amdahl_bound(double p)
{
    return p >= 1.0 ? INFINITY : 1.0 / (1.0 - p);
}
