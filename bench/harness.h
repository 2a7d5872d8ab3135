/*
 * bench/harness.h -- the small harness every mproc benchmark shares.
 *
 * A benchmark is a function that does one timed run and returns one figure
 * (nanoseconds per operation, operations per second, ...). bench_measure
 * runs it once to warm up, then `runs` times, and keeps the median: the
 * machines these run on are noisy virtual machines, and the median of a
 * few runs is steadier than the mean. bench_compare does the same for
 * figures that are compared, with their runs interleaved.
 *
 * Figures are printed one per line, as a ratio against the anchor they are
 * compared with (what a user would pick instead), and each target the
 * issue names is recorded with bench_target and printed again, with PASS
 * or MISS, in the summary at the end.
 *
 * Output goes to stdout; with --json the lines go to stderr and stdout
 * gets one JSON document with every figure and target.
 *
 * Not thread-safe: call it from the benchmark's main thread only (the
 * timed work itself may of course run on any number of threads).
 */
#ifndef MPROC_BENCH_HARNESS_H
#define MPROC_BENCH_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

/* Settings parsed from the command line by bench_init. */
typedef struct bench_config {
    int quick;  /* --quick: small counts, 3 runs (for CI) */
    int json;   /* --json: a JSON document on stdout */
    int strict; /* --strict: exit status 2 when a target is missed */
    int runs;   /* timed runs per figure (the median is kept) */
    int verbose; /* --verbose: print every run's figure */
    unsigned cases; /* --case: bit n set = run case n; 0 = all */
} bench_config;

extern bench_config bench_cfg;

/* One timed run; returns the figure it measured. */
typedef double (*bench_fn)(void *arg);

/* Which way a figure is better, for ratios and targets. */
enum bench_better { BENCH_LOWER = 0, BENCH_HIGHER = 1 };

/*
 * bench_init - parse --quick, --json, --strict, --runs N, --verbose,
 * --case LIST and --help, and
 * print the header (machine, mode). `usage_extra` is appended to --help.
 * Exits on --help or an unknown option.
 */
void bench_init(int argc, char **argv, const char *title,
                const char *usage_extra);

/* bench_case - whether case number n (1..31) is to run (--case). */
int bench_case(int n);

/* bench_scale - `full` in full mode, `quick` with --quick. */
long bench_scale(long full, long quick);

#define BENCH_MAX_RUNS    99
#define BENCH_MAX_COMPARE 8

/* bench_measure - one warm-up run, then the median of bench_cfg.runs. */
double bench_measure(bench_fn fn, void *arg);

/*
 * bench_compare - measure k (<= BENCH_MAX_COMPARE) figures side by side:
 * fn(args[i]) for each i. After one warm-up run of each, the runs are
 * interleaved -- every round runs each figure once, alternately forwards
 * and backwards -- so that the machine's slow swings (a virtual CPU moved
 * to another core, a noisy neighbour) hit all of them alike. out[i] gets
 * the median of figure i.
 */
void bench_compare(int k, bench_fn fn, void *const args[], double out[]);

/* The smallest and largest of a ratio taken round by round; NaN when not
 * known. */
typedef struct bench_range {
    double lo, hi;
} bench_range;

#define BENCH_NO_RANGE ((bench_range){NAN, NAN})

/*
 * bench_rounds - after bench_compare: the range of figure i / figure j
 * over the rounds. The runs of one round are taken back to back, so this
 * shows how steady a ratio is on a noisy machine better than the spread
 * of either figure does.
 */
bench_range bench_rounds(int i, int j);

/* bench_section - a heading for the figures that follow. */
void bench_section(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * bench_figure - print (and record) one figure: its name, value and unit,
 * and, when `anchor` is not NULL, the ratio value / anchor_value against
 * the anchor named. Returns the ratio (or 0 without an anchor).
 */
double bench_figure(const char *name, double value, const char *unit,
                    const char *anchor, double anchor_value);

/* bench_note - an indented free-form line under the figures. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * bench_target - record a target for the summary: `ratio` must be <= bound
 * (BENCH_LOWER) or >= bound (BENCH_HIGHER). A NaN ratio (not measured)
 * is reported as SKIP. `rounds` (or BENCH_NO_RANGE) is shown beside it,
 * and a result it straddles the bound of is marked "noisy". Returns 1 when
 * met.
 */
int bench_target(const char *what, double ratio, bench_range rounds,
                 enum bench_better better, double bound);

/* bench_info - a ratio shown in the summary without a target. */
void bench_info(const char *what, double ratio, bench_range rounds);

/*
 * bench_finish - print the summary table (and the JSON document with
 * --json). Returns the exit status: 0, or 2 with --strict when a target
 * was missed.
 */
int bench_finish(void);

/* bench_die - print "bench: what: <error>" and exit(1). `code` is an mproc
 * result, a -errno or an errno value. Safe in a forked child. */
void bench_die(const char *what, int code) __attribute__((noreturn));

/* bench_python - look python3 up on PATH: 1 with its path in path[size],
 * or 0. */
int bench_python(char *path, size_t size);

/*
 * bench_python_open - run `python3 'script' args` (the Python side of a
 * comparison) and return its stdout to read, to be closed with pclose.
 * NULL, after a note saying why (python3 not installed, the script
 * unusable, popen failed), when it cannot run. stdio is flushed first.
 */
FILE *bench_python_open(const char *script, const char *args);

/* bench_now_ns - the monotonic clock (mproc_now_ns). */
int64_t bench_now_ns(void);

#endif /* MPROC_BENCH_HARNESS_H */
