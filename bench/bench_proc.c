/*
 * bench_proc.c -- starting processes: mproc_process against raw
 * fork()+waitpid() and Python's multiprocessing.Process, in one run.
 *
 *   1. start + join of a process that does nothing, one after another
 *      (microseconds per process, lower is better): raw fork + waitpid,
 *      raw posix_spawn of /bin/true + waitpid, and mproc_process with
 *      each start method; Python's Process with each start method.
 *      Target (issue 4): mproc fork start+join <= 1.3 x raw fork+waitpid.
 *
 * Usage: bench_proc [--quick] [--json] [--strict] [--runs N] [--verbose]
 */
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mproc.h"

#ifndef BENCH_PY_SCRIPT
#define BENCH_PY_SCRIPT "bench/py_process.py"
#endif

extern char **environ;

/* Exported: the spawn start method finds it by name. */
int bench_nothing(const void *arg, size_t len, mproc_ctx *ctx);

int bench_nothing(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    return 0;
}

enum way { RAW_FORK, RAW_SPAWN, MPROC_FORK, MPROC_FORKSERVER, MPROC_SPAWN };

typedef struct start_arg {
    enum way way;
    long n;
} start_arg;

static void raw_fork_once(void)
{
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork", errno);
    if (pid == 0)
        _exit(0);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("waitpid", ECHILD);
}

static void raw_spawn_once(void)
{
    pid_t pid;
    char *argv[] = { "true", NULL };
    int rc = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
    if (rc != 0)
        bench_die("posix_spawn", rc);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("waitpid", ECHILD);
}

static void mproc_once(mproc_start_method m)
{
    mproc_process *p;
    int rc = mproc_process_create(&p, &(mproc_process_opts){ .fn = bench_nothing, .start = m });
    if (rc == 0)
        rc = mproc_process_start(p);
    if (rc == 0)
        rc = mproc_process_join(p, -1);
    int code = -1;
    if (rc == 0)
        rc = mproc_process_exitcode(p, &code);
    if (rc != 0 || code != 0)
        bench_die("mproc_process", rc != 0 ? rc : ECHILD);
    mproc_process_destroy(p);
}

/* One run: microseconds per start+join. */
static double run_start(void *p)
{
    const start_arg *a = p;
    fflush(NULL);
    int64_t t0 = bench_now_ns();
    for (long i = 0; i < a->n; i++) {
        switch (a->way) {
        case RAW_FORK: raw_fork_once(); break;
        case RAW_SPAWN: raw_spawn_once(); break;
        case MPROC_FORK: mproc_once(MPROC_START_FORK); break;
        case MPROC_FORKSERVER: mproc_once(MPROC_START_FORKSERVER); break;
        case MPROC_SPAWN: mproc_once(MPROC_START_SPAWN); break;
        }
    }
    return (double)(bench_now_ns() - t0) / (double)a->n / 1e3;
}

/* Runs py_process.py; fills us[0..2] (fork, forkserver, spawn) or NAN. */
static void python_starts(long n, double us[3])
{
    us[0] = us[1] = us[2] = NAN;
    char args[64];
    snprintf(args, sizeof args, "%ld %d", n, bench_cfg.runs);
    FILE *f = bench_python_open(BENCH_PY_SCRIPT, args);
    if (!f)
        return;
    char line[128], method[32];
    double v;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%31s %lf", method, &v) == 2) {
            if (strcmp(method, "fork") == 0)
                us[0] = v;
            else if (strcmp(method, "forkserver") == 0)
                us[1] = v;
            else if (strcmp(method, "spawn") == 0)
                us[2] = v;
        }
    int st = pclose(f);
    if (st != 0)
        bench_note("python3: exit status %#x", st);
}

static void case_start(void)
{
    long n = bench_scale(400, 60);
    start_arg a[5] = { { RAW_FORK, n }, { RAW_SPAWN, n }, { MPROC_FORK, n },
                       { MPROC_FORKSERVER, n }, { MPROC_SPAWN, n / 4 > 0 ? n / 4 : 1 } };
    void *args[5] = { &a[0], &a[1], &a[2], &a[3], &a[4] };
    double v[5];
    int rc = mproc_forkserver_start(); /* started once, before timing */
    if (rc != 0)
        bench_die("mproc_forkserver_start", rc);

    bench_section("1. start + join of a process that does nothing, one after another "
                  "(us per process, lower is better)");
    bench_compare(5, run_start, args, v);
    bench_range q = bench_rounds(2, 0);
    bench_figure("raw fork + waitpid", v[0], "us", NULL, 0);
    bench_figure("raw posix_spawn(/bin/true) + waitpid", v[1], "us", NULL, 0);
    double r = bench_figure("mproc_process, fork", v[2], "us", "raw fork", v[0]);
    double rfs = bench_figure("mproc_process, forkserver", v[3], "us", "raw fork", v[0]);
    double rsp = bench_figure("mproc_process, spawn", v[4], "us", "posix_spawn", v[1]);
    double py[3];
    python_starts(bench_scale(200, 30), py);
    double pf = NAN, pfs = NAN, psp = NAN;
    if (!isnan(py[0])) {
        bench_figure("Python Process, fork", py[0], "us", NULL, 0);
        bench_figure("Python Process, forkserver", py[1], "us", NULL, 0);
        bench_figure("Python Process, spawn", py[2], "us", NULL, 0);
        pf = v[2] / py[0];
        pfs = v[3] / py[1];
        psp = v[4] / py[2];
    }
    bench_note("%ld processes per run (spawn: %ld); the fork server is started before "
               "timing; mproc's children are reaped through pidfds", n, a[4].n);
    bench_target("start+join: mproc fork / raw fork+waitpid (time)", r, q, BENCH_LOWER, 1.3);
    bench_info("start+join: mproc forkserver / raw fork+waitpid (time)", rfs, bench_rounds(3, 0));
    bench_info("start+join: mproc spawn / posix_spawn of /bin/true (time)", rsp,
               bench_rounds(4, 1));
    bench_info("start+join: mproc fork / Python fork (time)", pf, BENCH_NO_RANGE);
    bench_info("start+join: mproc forkserver / Python forkserver (time)", pfs, BENCH_NO_RANGE);
    bench_info("start+join: mproc spawn / Python spawn (time)", psp, BENCH_NO_RANGE);
}

int main(int argc, char **argv)
{
    bench_init(argc, argv, "bench_proc: starting processes with mproc against raw "
                           "fork/posix_spawn and Python's multiprocessing", "cases: 1 start+join\n");
    if (bench_case(1))
        case_start();
    return bench_finish();
}
