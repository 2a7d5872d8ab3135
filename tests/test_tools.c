/*
 * tests/test_tools.c -- the `mproc` command, run as a user runs it: the
 * built binary (MPROC_BIN, set by tests/CMakeLists.txt) with arguments;
 * its exit status, and what it prints on stdout and stderr.
 *
 * `mproc bench --quick` measures for real, so the checks on its figures
 * are only those that must hold on any machine: sleeping tasks overlap on
 * many threads (speed-up > 2 with 8 or more workers for 64 tasks).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdrun.h"
#include "runner.h"
#include "tools/tools.h"

#ifndef MPROC_BIN
#error "MPROC_BIN (the path of the built mproc command) must be defined"
#endif

/* Run `mproc` with the arguments given (NULL-terminated). */
#define MPROC(...) run_mproc((char *const[]){ MPROC_BIN, __VA_ARGS__, NULL })
static struct result run_mproc(char *const *argv)
{
    return run_with(MPROC_BIN, argv, "");
}


/* The CPUs this process may use (as `mproc bench` counts them). */
static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    return 1;
}

/* ------------------------------------------------------------------ */
/* the Amdahl fit                                                      */
/* ------------------------------------------------------------------ */

static bool near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

TEST(tools_amdahl_exact_points)
{
    /* Speed-ups straight from the law are fitted back exactly. */
    const double ps[] = { 0.0, 0.5, 0.9, 0.97, 1.0 };
    const double n[] = { 1, 2, 3, 4, 8, 16 };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        double s[6], p = -1.0;
        for (size_t k = 0; k < 6; k++)
            s[k] = mproc__amdahl_speedup(ps[i], n[k]);
        CHECK_OK(mproc__amdahl_fit(n, s, 6, &p));
        CHECK_MSG(near(p, ps[i]), "fitted P = %.12f, want %.2f", p, ps[i]);
    }
    CHECK(near(mproc__amdahl_speedup(0.9, 1), 1.0));
    CHECK(near(mproc__amdahl_speedup(0.5, 2), 4.0 / 3.0));
    CHECK(near(mproc__amdahl_bound(0.97), 1.0 / 0.03));
    CHECK(near(mproc__amdahl_bound(0.0), 1.0));
    CHECK(isinf(mproc__amdahl_bound(1.0)));
}

TEST(tools_amdahl_least_squares_and_clamp)
{
    /* Two points: x = 1/2 and 3/4, 1 - 1/S = 0.45 and 0.7; the closed form
     * gives P = (0.5*0.45 + 0.75*0.7) / (0.25 + 0.5625) = 0.923077. */
    double p;
    CHECK_OK(mproc__amdahl_fit((const double[]){ 2, 4 },
                               (const double[]){ 1 / 0.55, 1 / 0.3 }, 2, &p));
    CHECK_MSG(near(p, 0.75 / 0.8125), "P = %.12f", p);
    /* Better than linear (noise): clamped to 1. Slower with more workers
     * (a loaded machine): clamped to 0. */
    CHECK_OK(mproc__amdahl_fit((const double[]){ 2 }, (const double[]){ 2.1 }, 1, &p));
    CHECK(p == 1.0);
    CHECK_OK(mproc__amdahl_fit((const double[]){ 1, 2 }, (const double[]){ 1, 0.8 }, 2, &p));
    CHECK(p == 0.0);
}

TEST(tools_amdahl_bad_input)
{
    double p = 0.5;
    /* One processor says nothing about P. */
    CHECK_RC(mproc__amdahl_fit((const double[]){ 1, 1 }, (const double[]){ 1, 0.9 }, 2, &p),
             -EINVAL);
    CHECK_RC(mproc__amdahl_fit(NULL, NULL, 0, &p), -EINVAL);
    CHECK_RC(mproc__amdahl_fit((const double[]){ 2 }, (const double[]){ 0 }, 1, &p), -EINVAL);
    CHECK_RC(mproc__amdahl_fit((const double[]){ 0.5 }, (const double[]){ 1 }, 1, &p), -EINVAL);
    CHECK_RC(mproc__amdahl_fit((const double[]){ 2 }, (const double[]){ NAN }, 1, &p), -EINVAL);
    CHECK_RC(mproc__amdahl_fit((const double[]){ 2 }, (const double[]){ 1.5 }, 1, NULL), -EINVAL);
    CHECK(p == 0.5); /* untouched on failure */
}

/* ------------------------------------------------------------------ */
/* the command and its help                                            */
/* ------------------------------------------------------------------ */

TEST(tools_help)
{
    const char *forms[][2] = { { "--help", NULL }, { "-h", NULL }, { "help", NULL } };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        struct result r = MPROC((char *)forms[i][0]);
        expect_status(&r, 0);
        expect_has(r.out, "usage: mproc <command>", "stdout");
        expect_has(r.out, "bench", "stdout");
        CHECK_MSG(r.err[0] == '\0', "stderr not empty:\n%s", r.err);
        result_free(&r);
    }
}

TEST(tools_version)
{
    struct result r = MPROC("--version");
    expect_status(&r, 0);
    CHECK_MSG(strncmp(r.out, "mproc ", 6) == 0 && isdigit((unsigned char)r.out[6]),
              "version line: %s", r.out);
    result_free(&r);
}

TEST(tools_help_bench)
{
    struct result a = MPROC("help", "bench");
    expect_status(&a, 0);
    expect_has(a.out, "usage: mproc bench", "stdout");
    expect_has(a.out, "--quick", "stdout");
    expect_has(a.out, "--json", "stdout");
    expect_has(a.out, "--workers N", "stdout");
    struct result b = MPROC("bench", "--help");
    expect_status(&b, 0);
    CHECK_MSG(strcmp(a.out, b.out) == 0, "`mproc help bench` and `mproc bench --help` differ");
    result_free(&a);
    result_free(&b);
}

/* Usage errors: exit status 2, a message on stderr, nothing on stdout. */
static void expect_usage_error(struct result r, const char *message)
{
    expect_status(&r, 2);
    expect_has(r.err, message, "stderr");
    CHECK_MSG(r.out[0] == '\0', "stdout not empty:\n%s", r.out);
    result_free(&r);
}

TEST(tools_unknown_command)
{
    expect_usage_error(MPROC("frobnicate"), "unknown command 'frobnicate'");
    expect_usage_error(MPROC("help", "frobnicate"), "unknown command 'frobnicate'");
    expect_usage_error(MPROC("--frobnicate"), "unknown option '--frobnicate'");
    /* No command at all: the usage, on stderr. */
    expect_usage_error(run_mproc((char *const[]){ MPROC_BIN, NULL }), "usage: mproc");
}

TEST(tools_bench_bad_options)
{
    expect_usage_error(MPROC("bench", "--frobnicate"), "unknown option '--frobnicate'");
    expect_usage_error(MPROC("bench", "extra"), "unexpected argument 'extra'");
    expect_usage_error(MPROC("bench", "--workers"), "a number must follow");
    expect_usage_error(MPROC("bench", "--workers", "0"), "--workers takes");
    expect_usage_error(MPROC("bench", "--workers=4097"), "--workers takes");
    expect_usage_error(MPROC("bench", "--workers", "2x"), "--workers takes");
    expect_usage_error(MPROC("bench", "--workers", "-3"), "--workers takes");
}

/* ------------------------------------------------------------------ */
/* mproc bench --quick: tables                                         */
/* ------------------------------------------------------------------ */

/* The line starting with `prefix` in the section of `text` that begins
 * with `title` and ends at the next empty line, or NULL. */
static const char *line_starting(const char *text, const char *title, const char *prefix)
{
    const char *l = strstr(text, title);
    if (l == NULL)
        return NULL;
    const char *end = strstr(l, "\n\n");
    for (; l != NULL && (end == NULL || l < end); l = strchr(l, '\n')) {
        l += *l == '\n';
        if (strncmp(l, prefix, strlen(prefix)) == 0)
            return l;
    }
    return NULL;
}

/* Whether the table of section `title` has a row for `workers` ("4" or,
 * with more workers than CPUs, "4*"). */
static bool has_row(const char *text, const char *title, unsigned workers)
{
    char row[16];
    snprintf(row, sizeof row, "  %u", workers);
    const char *l = line_starting(text, title, row);
    return l != NULL && (l[strlen(row)] == ' ' || l[strlen(row)] == '*') &&
           strstr(l, " s ") != NULL;
}

TEST_T(tools_bench_quick, 60)
{
    struct result r = MPROC("bench", "--quick");
    expect_status(&r, 0);
    /* Progress is shown only on a terminal; here stderr is a file. */
    CHECK_MSG(r.err[0] == '\0', "stderr not empty:\n%s", r.err);
    expect_has(r.out, "CPU-bound:", "stdout");
    expect_has(r.out, "I/O-bound:", "stdout");
    CHECK(line_starting(r.out, "CPU-bound:", "  sequential ") != NULL);
    CHECK(line_starting(r.out, "I/O-bound:", "  sequential ") != NULL);
    for (unsigned w = 1; w <= cpus(); w++)
        CHECK_MSG(has_row(r.out, "CPU-bound:", w), "no CPU-bound row for %u workers:\n%s", w,
                  r.out);
    /* io-bound: 1, 2, 4, ... 64 workers (or the CPUs, if more). */
    for (unsigned w = 1; w <= 64; w *= 2)
        CHECK_MSG(has_row(r.out, "I/O-bound:", w), "no I/O-bound row for %u workers:\n%s", w,
                  r.out);
    /* The Amdahl fit: a line with P, and the bound. */
    if (cpus() >= 2) {
        const char *p = line_starting(r.out, "CPU-bound:", "  P = ");
        CHECK_MSG(p != NULL && isdigit((unsigned char)p[6]), "no fitted P:\n%s", r.out);
        CHECK_MSG(strstr(r.out, "no number of cores beats") != NULL ||
                      strstr(r.out, "bound: none seen") != NULL,
                  "no bound:\n%s", r.out);
    } else {
        expect_has(r.out, "P = ?", "stdout");
    }
    result_free(&r);
}

TEST_T(tools_bench_quick_workers, 60)
{
    struct result r = MPROC("bench", "--quick", "--workers", "3");
    expect_status(&r, 0);
    /* Exactly 1, 2, 3 workers for CPU-bound; 1, 2, 3 for I/O-bound. */
    for (unsigned w = 1; w <= 3; w++) {
        CHECK_MSG(has_row(r.out, "CPU-bound:", w), "no CPU-bound row for %u:\n%s", w, r.out);
        CHECK_MSG(has_row(r.out, "I/O-bound:", w), "no I/O-bound row for %u:\n%s", w, r.out);
    }
    CHECK_MSG(!has_row(r.out, "CPU-bound:", 4), "a CPU-bound row for 4:\n%s", r.out);
    CHECK_MSG(!has_row(r.out, "I/O-bound:", 4), "an I/O-bound row for 4:\n%s", r.out);
    result_free(&r);
}

/* ------------------------------------------------------------------ */
/* mproc bench --quick --json                                          */
/* ------------------------------------------------------------------ */

/* Brackets and braces balance outside strings, and the document is one
 * object with nothing but white space after it. */
static bool json_balanced(const char *s)
{
    char stack[64];
    int depth = 0;
    bool in_string = false, started = false;
    for (; *s != '\0'; s++) {
        if (in_string) {
            if (*s == '\\' && s[1] != '\0')
                s++;
            else if (*s == '"')
                in_string = false;
        } else if (*s == '"') {
            in_string = true;
        } else if (*s == '{' || *s == '[') {
            if (depth == (int)sizeof stack || (depth == 0 && (started || *s != '{')))
                return false;
            stack[depth++] = *s == '{' ? '}' : ']';
            started = true;
        } else if (*s == '}' || *s == ']') {
            if (depth == 0 || stack[--depth] != *s)
                return false;
        } else if (depth == 0 && !isspace((unsigned char)*s)) {
            return false;
        }
    }
    return started && depth == 0 && !in_string;
}

/* The number after `"key": ` at or after `from`; *next points past it. */
static bool json_number_after(const char *from, const char *key, double *v, const char **next)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *k = strstr(from, pattern);
    if (k == NULL)
        return false;
    char *end;
    *v = strtod(k + strlen(pattern), &end);
    *next = end;
    return end != k + strlen(pattern);
}

/* Every io-bound run with 8 or more workers has a speed-up above 2
 * (64 sleeping tasks overlap on threads); returns how many were seen. */
static int check_io_speedups(const char *json)
{
    const char *io = strstr(json, "\"name\": \"io-bound\"");
    CHECK_MSG(io != NULL, "no io-bound workload:\n%s", json);
    int seen = 0;
    double workers, speedup;
    for (const char *p = io; json_number_after(p, "workers", &workers, &p);) {
        CHECK_MSG(json_number_after(p, "speedup", &speedup, &p), "run without speedup");
        if (workers >= 8) {
            CHECK_MSG(speedup > 2.0, "io-bound speed-up %.2f with %.0f workers:\n%s",
                      speedup, workers, json);
            seen++;
        }
    }
    return seen;
}

/* python3's json module, when there is a python3: the document parses and
 * has the structure the README describes. */
static const char python_check[] =
    "import json, sys\n"
    "d = json.load(sys.stdin)\n"
    "assert d['command'] == 'bench' and d['quick'] is True and d['cpus'] >= 1\n"
    "w = {x['name']: x for x in d['workloads']}\n"
    "assert sorted(w) == ['cpu-bound', 'io-bound'], sorted(w)\n"
    "for x in w.values():\n"
    "    assert x['tasks'] > 0 and x['sequential_s'] > 0 and x['runs']\n"
    "    for r in x['runs']:\n"
    "        assert r['workers'] >= 1 and r['time_s'] > 0 and r['speedup'] > 0\n"
    "a = w['cpu-bound']['amdahl']\n"
    "assert 'p' in a and 'bound' in a\n"
    "assert d['cpus'] < 2 or 0 <= a['p'] <= 1\n";

TEST_T(tools_bench_quick_json, 60)
{
    struct result r = MPROC("bench", "--quick", "--json");
    expect_status(&r, 0);
    CHECK_MSG(r.err[0] == '\0', "stderr not empty:\n%s", r.err);
    CHECK_MSG(json_balanced(r.out), "not one balanced JSON object:\n%s", r.out);
    const char *keys[] = { "\"workloads\"", "\"cpu-bound\"", "\"io-bound\"", "\"runs\"",
                           "\"workers\"", "\"time_s\"", "\"speedup\"", "\"amdahl\"",
                           "\"p\"", "\"bound\"", "\"cpus\"" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        expect_has(r.out, keys[i], "the JSON");
    CHECK_MSG(check_io_speedups(r.out) >= 1, "no io-bound run with 8+ workers");
    if (cpus() >= 2)
        CHECK_MSG(strstr(r.out, "\"p\": null") == NULL, "P not fitted on %u CPUs", cpus());

    struct result py = run_with("python3", (char *const[]){ "python3", "-c",
                                                            (char *)python_check, NULL },
                                r.out);
    if (py.status == 127)
        printf("python3 not found: json.load check skipped\n");
    else
        CHECK_MSG(py.status == 0, "python3's json check failed:\n%s\non:\n%s", py.err, r.out);
    result_free(&py);
    result_free(&r);
}
