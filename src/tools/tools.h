/*
 * tools/tools.h -- what the files of the `mproc` command share.
 *
 * The tools layer sits on top of the library and uses its public API only
 * (<mproc.h>); this header never leaves src/tools/. Every function here is
 * called from the command's main thread only.
 */
#ifndef MPROC_TOOLS_H
#define MPROC_TOOLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of `mproc` and of every subcommand. */
enum {
    MPROC_TOOL_OK = 0,     /* done */
    MPROC_TOOL_FAILED = 1, /* the work failed (message on stderr) */
    MPROC_TOOL_USAGE = 2,  /* bad command line (message on stderr) */
};

/* A subcommand. main() gets argv with argv[0] = the subcommand's name and
 * returns an exit status; usage() prints its help to `out`. */
typedef struct mproc__command {
    const char *name;
    const char *summary; /* one line, for `mproc --help` */
    int (*main)(int argc, char **argv);
    void (*usage)(FILE *out);
} mproc__command;

/* ---- subcommands (one file each) ---------------------------------- */

/* `mproc bench` (bench.c). */
int mproc__bench_main(int argc, char **argv);
void mproc__bench_usage(FILE *out);

/* `mproc lab` (lab.c; the labs themselves are lab_*.c, see lab.h). */
int mproc__lab_main(int argc, char **argv);
void mproc__lab_usage(FILE *out);

/* `mproc ps` and `mproc top` (ps.c, top.c; /proc in procfs.h). */
int mproc__ps_main(int argc, char **argv);
void mproc__ps_usage(FILE *out);
int mproc__top_main(int argc, char **argv);
void mproc__top_usage(FILE *out);

/* ---- Amdahl's law (amdahl.c) -------------------------------------- */

/*
 * mproc__amdahl_fit - least-squares fit of Amdahl's law
 * 1/S = (1-P) + P/N to `count` measured points (n[i] processors, speed-up
 * s[i]). Stores the parallel fraction, clamped to [0, 1], in *p.
 * Returns 0, or -EINVAL when an input is not finite, n[i] < 1 or
 * s[i] <= 0, or no point has n[i] > 1 (one processor says nothing of P).
 */
int mproc__amdahl_fit(const double *n, const double *s, size_t count, double *p);

/* mproc__amdahl_speedup - the speed-up Amdahl's law predicts on n
 * processors for parallel fraction p. */
double mproc__amdahl_speedup(double p, double n);

/* mproc__amdahl_bound - the largest speed-up any number of processors can
 * give for parallel fraction p, 1/(1-p); INFINITY when p >= 1. */
double mproc__amdahl_bound(double p);

/* ---- SVG line charts (svg.c) -------------------------------------- */

/* How a series' line is drawn. */
enum { MPROC__SVG_SOLID = 0, MPROC__SVG_DASHED, MPROC__SVG_DOTTED };

/* One named line: n points (x[i], y[i]), drawn in order; points with a
 * coordinate that is not finite are left out. */
typedef struct mproc__svg_series {
    const char *name;    /* the legend's text (escaped when written) */
    const double *x, *y; /* n values each; borrowed, not copied */
    size_t n;
    int style;           /* MPROC__SVG_SOLID / _DASHED / _DOTTED */
    bool markers;        /* a dot on each point (for measured data) */
} mproc__svg_series;

/* A chart: title, axis labels, series. An axis bound that is NaN is
 * taken from the data; ranges are then widened to whole ticks. */
typedef struct mproc__svg_chart {
    const char *title, *x_label, *y_label; /* NULL: empty */
    const mproc__svg_series *series;
    size_t nseries;
    double x_min, x_max, y_min, y_max;
    bool x_whole;        /* x ticks on whole numbers only (counts) */
} mproc__svg_chart;

/*
 * mproc__svg_write - write chart c to `out` as one self-contained,
 * well-formed SVG document (a line chart with axes, ticks, labels,
 * title and a legend; every text escaped for XML). Each series is a
 * <g class="series" data-series="NAME"> holding one <polyline> with its
 * finite points. Returns 0, -EINVAL (NULL out or chart, a series with
 * points but no arrays, min > max on an axis) or -EIO (a write failed).
 */
int mproc__svg_write(FILE *out, const mproc__svg_chart *c);

/* mproc__svg_save - mproc__svg_write into the file at `path` (created or
 * truncated). Returns 0, -EINVAL, or -errno of the failed open, write or
 * close. */
int mproc__svg_save(const char *path, const mproc__svg_chart *c);

/* ---- command-line helpers (cli.c) --------------------------------- */

/*
 * mproc__parse_count - read `text` as a whole decimal number from 1 to
 * max (no sign, no spaces, nothing after it) into *out. Returns 0 or
 * -EINVAL (*out unchanged).
 */
int mproc__parse_count(const char *text, unsigned max, unsigned *out);

/*
 * mproc__progress - show a one-line status (printf format) on stderr,
 * replacing the previous one, when stderr is a terminal; nothing
 * otherwise. mproc__progress_clear erases it (call it before printing
 * anything else to the terminal).
 */
void mproc__progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mproc__progress_clear(void);

/* ---- CPU-bound work (cli.c) ---------------------------------------- */

/* mproc__spin - `steps` steps of an arithmetic loop (xorshift64)
 * from `seed`: CPU-bound work that touches no memory; returns its last
 * value (use it, or the loop may be optimised away). */
uint64_t mproc__spin(uint64_t steps, uint64_t seed);

/* mproc__spin_rate - mproc__spin steps per microsecond on this
 * machine: the fastest of ever longer loops, timed until one lasts
 * min_ms. */
double mproc__spin_rate(int64_t min_ms);

#endif /* MPROC_TOOLS_H */
