/*
 * tools/ps.c -- `mproc ps`: the processes (and threads) of the machine,
 * once, as a table or as JSON, for people and for scripts. The notes'
 * mini-htop (seed 001) done properly: procfs.c reads /proc, procview.c
 * filters, sorts and prints.
 *
 * CPU% needs two looks: /proc is scanned, then again SAMPLE_MS later,
 * and each process's CPU% is the CPU time it used in between (--no-cpu
 * scans once and skips the wait).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "procfs.h"
#include "tools.h"

/* How long ps watches the processes to measure their CPU%. */
#define SAMPLE_MS 200

void mproc__ps_usage(FILE *out)
{
    fputs("usage: mproc ps [options]\n"
          "\n"
          "Lists the processes of this machine once, read from /proc: pid, parent\n"
          "pid, user, state, nice, thread count, CPU%, resident memory and name.\n"
          "States: R running, S sleeping, D disk sleep (cannot be interrupted),\n"
          "T stopped, t traced, Z zombie (exited, not yet waited for by its\n"
          "parent; shown as 'name <defunct>'), I idle kernel thread.\n"
          "CPU% is the CPU time a process used during a 0.2 s look, over that\n"
          "time: 100 is one CPU busy all along, so a process with several threads\n"
          "can show more.\n"
          "\n",
          out);
    mproc__view_usage(out, "pid", true);
    fputs("\n"
          "JSON (--json): an array of objects, one per process, with the fields\n"
          "  pid, ppid, name, state, threads, cpu_percent (null with --no-cpu),\n"
          "  rss_kib, user, uid, nice; depth with --tree (0 at the top); and with\n"
          "  -T, threads_list: [{tid, name, state, cpu_percent}, ...], every thread\n"
          "  including the main one (tid = pid).\n"
          "In the table, -T shows the threads other than the main one, as {name}.\n"
          "\n"
          "Exit status: 0 done, 1 /proc could not be read, 2 bad usage.\n",
          out);
}

/* Scan /proc into *cur; when sample_ms > 0, once before too, sample_ms
 * earlier, so CPU% is measured. Returns 0 or -errno (reported). */
static int sample(bool threads, int64_t sample_ms, mproc__proc_list *cur)
{
    mproc__proc_list first = { .procs = NULL };
    int rc = 0;
    if (sample_ms > 0) {
        rc = mproc__proc_scan(&first, threads);
        if (rc == 0)
            mproc_sleep_ms(sample_ms);
    }
    if (rc == 0)
        rc = mproc__proc_scan(cur, threads);
    if (rc == 0 && sample_ms > 0)
        mproc__proc_cpu(cur, &first);
    mproc__proc_list_free(&first);
    if (rc < 0)
        fprintf(stderr, "mproc ps: cannot read /proc: %s\n", mproc_strerror(rc));
    return rc;
}

/* Parse argv[1..argc) into *v. Returns 0, 1 for --help, or
 * MPROC_TOOL_USAGE (message printed). */
static int parse_opts(int argc, char **argv, mproc__view *v)
{
    bool help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int rc = mproc__view_option("ps", argc, argv, &i, v);
        if (rc == 1)
            continue;
        if (rc != 0)
            return rc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = true;
            continue;
        }
        fprintf(stderr, "mproc ps: %s '%s' (see 'mproc help ps')\n",
                a[0] == '-' ? "unknown option" : "unexpected argument", a);
        return MPROC_TOOL_USAGE;
    }
    return help ? 1 : 0;
}

int mproc__ps_main(int argc, char **argv)
{
    mproc__view v = { .sort = MPROC__SORT_PID };
    int rc = parse_opts(argc, argv, &v);
    if (rc == 1) {
        mproc__ps_usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (rc != 0)
        return rc;

    mproc__proc_list l = { .procs = NULL };
    if (sample(v.threads, v.no_cpu ? 0 : SAMPLE_MS, &l) < 0)
        return MPROC_TOOL_FAILED;
    mproc__row *rows = NULL;
    size_t nrows = 0;
    mproc__buf b = { .data = NULL };
    rc = mproc__view_rows(&v, &l, &rows, &nrows);
    if (rc == 0 && v.json) {
        mproc__json_rows(&b, &v, rows, nrows, true);
        mproc__buf_puts(&b, "\n");
    } else if (rc == 0) {
        mproc__table_head(&b);
        mproc__buf_puts(&b, "\n");
        for (size_t i = 0; i < nrows; i++) {
            mproc__table_row(&b, &rows[i], !v.no_cpu);
            mproc__buf_puts(&b, "\n");
        }
    }
    if (rc == 0 && b.failed)
        rc = -ENOMEM;
    if (rc == 0)
        fwrite(b.data, 1, b.len, stdout);
    else
        fprintf(stderr, "mproc ps: %s\n", mproc_strerror(rc));
    mproc__buf_free(&b);
    free(rows);
    mproc__proc_list_free(&l);
    return rc == 0 ? MPROC_TOOL_OK : MPROC_TOOL_FAILED;
}
