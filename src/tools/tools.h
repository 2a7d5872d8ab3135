/*
 * tools/tools.h -- what the files of the `mproc` command share.
 *
 * The tools layer sits on top of the library and uses its public API only
 * (<mproc.h>); this header never leaves src/tools/. Every function here is
 * called from the command's main thread only.
 */
#ifndef MPROC_TOOLS_H
#define MPROC_TOOLS_H

#include <stddef.h>
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

#endif /* MPROC_TOOLS_H */
