/*
 * tools/lab.h -- `mproc lab`: each lab turns one claim of the notes into
 * a measurement on this machine, with a verdict.
 *
 * A lab is a run() function and a line in the table of lab.c. run() gets
 * the options and a report; it records what it measured with
 * mproc__lab_metric, free text with mproc__lab_note, and ends with exactly
 * one mproc__lab_verdict. lab.c prints the report as text or JSON, so a
 * lab never prints to stdout itself (progress goes through
 * mproc__progress, which writes to stderr only when it is a terminal).
 *
 * Everything here runs on the command's main thread, except what a lab
 * starts itself.
 */
#ifndef MPROC_TOOLS_LAB_H
#define MPROC_TOOLS_LAB_H

#include <stdbool.h>
#include <stddef.h>

/* Options a lab may accept beyond --quick and --json (mproc__lab.accepts). */
enum {
    LAB_OPT_WORKERS = 1 << 0, /* --workers N */
    LAB_OPT_SVG = 1 << 1,     /* --svg FILE */
    LAB_OPT_SERIAL = 1 << 2,  /* --serial F (0 <= F < 1) */
};

typedef struct mproc__lab_opts {
    bool quick;         /* small sizes: seconds at most, for tests and CI */
    bool json;
    unsigned workers;   /* 0: the lab's default (usually the CPU count) */
    const char *svg;    /* a file to write a chart to, or NULL */
    double serial;      /* the serial fraction asked for, or -1 */
} mproc__lab_opts;

typedef struct mproc__lab_report mproc__lab_report;

typedef struct mproc__lab {
    const char *name;    /* as typed: `mproc lab NAME` */
    const char *summary; /* one line, for `mproc lab list` */
    const char *claim;   /* what the notes say, one or two sentences */
    unsigned accepts;    /* LAB_OPT_* */
    /* Measure; 0, or a negative error code after a note saying what
     * failed (the report is still printed, with no verdict). */
    int (*run)(const mproc__lab_opts *o, mproc__lab_report *r);
} mproc__lab;

/*
 * mproc__lab_metric - record one measured figure: key is a short
 * identifier (letters, digits, '_': it is the JSON field name), unit a
 * short unit ("ns", "ms", "x", "count", "MiB"...), text a human label.
 * At most 48 per report; more are dropped with a note.
 */
void mproc__lab_metric(mproc__lab_report *r, const char *key, double value, const char *unit,
                       const char *text);

/* mproc__lab_note - a line of explanation, printed under the figures
 * (and in the JSON "notes" array). At most 16 per report. */
void mproc__lab_note(mproc__lab_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* mproc__lab_verdict - whether the claim holds on this machine, and why,
 * in one line. The last call wins. */
void mproc__lab_verdict(mproc__lab_report *r, bool holds, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The labs (one file each, lab_NAME.c). */
int mproc__lab_race(const mproc__lab_opts *o, mproc__lab_report *r);

#endif /* MPROC_TOOLS_LAB_H */
