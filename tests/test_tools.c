/*
 * tests/test_tools.c -- the `mproc` command, run as a user runs it: the
 * built binary (MPROC_BIN, set by tests/CMakeLists.txt) with arguments;
 * its exit status, and what it prints on stdout and stderr.
 *
 * `mproc bench --quick` measures for real, so the checks on its figures
 * are only those that must hold on any machine: sleeping tasks overlap on
 * many threads (the best speed-up with 8 or more workers for 64 tasks > 2).
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
#include "xml.h"

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
    expect_has(a.out, "--svg FILE", "stdout");
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
    expect_usage_error(MPROC("bench", "--svg"), "a file name must follow");
    expect_usage_error(MPROC("bench", "--svg="), "--svg needs a file name");
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

/* The best io-bound run with 8 or more workers has a speed-up above 2
 * (64 sleeping tasks overlap on threads: 8x in theory, so a loaded
 * sanitizer run that stalls one run for 200 ms still passes with the
 * others); returns how many such runs were seen. */
static int check_io_speedups(const char *json)
{
    const char *io = strstr(json, "\"name\": \"io-bound\"");
    CHECK_MSG(io != NULL, "no io-bound workload:\n%s", json);
    int seen = 0;
    double workers, speedup, best = 0;
    for (const char *p = io; json_number_after(p, "workers", &workers, &p);) {
        CHECK_MSG(json_number_after(p, "speedup", &speedup, &p), "run without speedup");
        if (workers >= 8) {
            best = speedup > best ? speedup : best;
            seen++;
        }
    }
    CHECK_MSG(seen == 0 || best > 2.0, "best io-bound speed-up %.2f with 8+ workers:\n%s",
              best, json);
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

/* ------------------------------------------------------------------ */
/* charts: the SVG writer (src/tools/svg.c) and mproc bench --svg      */
/* ------------------------------------------------------------------ */

/* A fresh file name in the temporary directory (the file exists, empty). */
static void temp_svg(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/mproc-test-XXXXXX.svg");
    int fd = mkstemps(path, 4);
    CHECK_MSG(fd >= 0, "mkstemps failed");
    close(fd);
}

/* Write chart c with mproc__svg_write into memory and parse it. */
static xml_node *chart_doc(const mproc__svg_chart *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    CHECK_OK(mproc__svg_write(f, c));
    CHECK(fclose(f) == 0);
    xml_node *doc = xml_parse(text);
    free(text);
    return doc;
}

TEST(tools_svg_chart_is_well_formed)
{
    const double x[] = { 1, 2, 3, 4 }, y1[] = { 1, 1.8, 2.4, 2.9 };
    const double y2[] = { 1, NAN, 3, 4 }; /* the NaN point is left out */
    const char *odd = "a <b> & \"c\" 'd'\x01";
    mproc__svg_series series[] = {
        { .name = "measured", .x = x, .y = y1, .n = 4, .markers = true },
        { .name = odd, .x = x, .y = y2, .n = 4, .style = MPROC__SVG_DASHED },
        { .name = "empty", .x = NULL, .y = NULL, .n = 0 },
    };
    mproc__svg_chart c = { .title = "T <1> & \"2\"", .x_label = "x & y", .y_label = "<y>",
                           .series = series, .nseries = 3, .x_min = NAN, .x_max = NAN,
                           .y_min = 0, .y_max = NAN, .x_whole = true };
    xml_node *doc = chart_doc(&c);
    CHECK(strcmp(doc->name, "svg") == 0);
    CHECK(strcmp(xml_attr(doc, "xmlns"), "http://www.w3.org/2000/svg") == 0);
    const xml_node *title = xml_find(doc, "title", NULL, NULL);
    CHECK(title != NULL && strcmp(title->text, "T <1> & \"2\"") == 0);
    CHECK(xml_find(doc, "text", "class", "x-label") != NULL);
    CHECK(strcmp(xml_find(doc, "text", "class", "x-label")->text, "x & y") == 0);
    CHECK(strcmp(xml_find(doc, "text", "class", "y-label")->text, "<y>") == 0);
    /* Each series: its points, by name (escaped, control character dropped). */
    CHECK_EQ(svg_series_points(doc, "measured"), 4);
    CHECK_EQ(svg_series_points(doc, "a <b> & \"c\" 'd'"), 3);
    CHECK_EQ(svg_series_points(doc, "empty"), 0);
    CHECK_EQ(svg_series_points(doc, "absent"), -1);
    CHECK_EQ(xml_count(doc, "polyline"), 3);
    CHECK_EQ(xml_count(doc, "circle"), 4); /* markers on "measured" only */
    /* The legend names every series. */
    const xml_node *legend = xml_find(doc, "g", "class", "legend");
    CHECK(legend != NULL && xml_count(legend, "text") == 3);
    CHECK(strcmp(legend->children[1 * 2 + 1]->text, "a <b> & \"c\" 'd'") == 0);
    /* Whole-number x ticks: 1, 2, 3, 4 and nothing in between. */
    const xml_node *xt = xml_find(doc, "g", "class", "x-ticks");
    CHECK(xt != NULL);
    CHECK_EQ(xml_count(xt, "text"), 4);
    CHECK(strcmp(xml_find(xt, "text", NULL, NULL)->text, "1") == 0);
    /* Nothing the document would fetch or run. */
    CHECK_EQ(xml_count(doc, "script") + xml_count(doc, "image") + xml_count(doc, "use"), 0);
    xml_free(doc);
}

TEST(tools_svg_bad_input)
{
    const double x[] = { 1 };
    mproc__svg_series bad_series = { .name = "s", .x = x, .y = NULL, .n = 1 };
    mproc__svg_chart c = { .series = &bad_series, .nseries = 1, .x_min = NAN, .x_max = NAN,
                           .y_min = NAN, .y_max = NAN };
    CHECK_RC(mproc__svg_write(stdout, &c), -EINVAL);
    CHECK_RC(mproc__svg_write(stdout, NULL), -EINVAL);
    CHECK_RC(mproc__svg_write(NULL, &c), -EINVAL);
    mproc__svg_chart inverted = { .x_min = 2, .x_max = 1, .y_min = NAN, .y_max = NAN };
    CHECK_RC(mproc__svg_write(stdout, &inverted), -EINVAL);
    mproc__svg_chart infinite = { .x_min = NAN, .x_max = INFINITY, .y_min = NAN, .y_max = NAN };
    CHECK_RC(mproc__svg_write(stdout, &infinite), -EINVAL);
    mproc__svg_chart none = { .x_min = NAN, .x_max = NAN, .y_min = NAN, .y_max = NAN };
    CHECK_RC(mproc__svg_save("/nonexistent-dir/x.svg", &none), -ENOENT);
    CHECK_RC(mproc__svg_save("", &none), -EINVAL);
    /* No series, or one point only: still a whole chart. */
    xml_node *doc = chart_doc(&none);
    CHECK_EQ(xml_count(doc, "polyline"), 0);
    xml_free(doc);
    mproc__svg_series one = { .name = "one", .x = x, .y = x, .n = 1 };
    mproc__svg_chart single = { .series = &one, .nseries = 1, .x_min = NAN, .x_max = NAN,
                                .y_min = NAN, .y_max = NAN };
    doc = chart_doc(&single);
    CHECK_EQ(svg_series_points(doc, "one"), 1);
    xml_free(doc);
}

/* In a child: parse text (a failure ends the child with a non-zero
 * status); its complaint goes nowhere. */
static int xml_parse_quietly(void *text)
{
    if (!freopen("/dev/null", "w", stderr) || !freopen("/dev/null", "w", stdout))
        return 0;
    xml_free(xml_parse(text));
    return 0;
}

/* The XML checker the chart tests rely on refuses what is not
 * well-formed. */
TEST(tools_xml_checker_is_strict)
{
    xml_node *v = xml_parse("<?xml version=\"1.0\"?>\n<!-- c --><a x='1' y=\"&lt;&#65;&#x42;\">"
                            "t&amp;<b/><![CDATA[<raw>]]><c k=\"v\"></c ></a>\n");
    CHECK(strcmp(v->name, "a") == 0 && v->n == 2);
    CHECK(strcmp(xml_attr(v, "y"), "<AB") == 0);
    CHECK(strcmp(v->text, "t&<raw>") == 0);
    CHECK(xml_find(v, "c", "k", "v") != NULL && xml_find(v, "c", "k", "w") == NULL);
    xml_free(v);
    const char *bad[] = {
        "", "text", "<a>", "<a></b>", "<a><b></a></b>", "<a x=1/>", "<a x=\"1/>",
        "<a x=\"<\"/>", "<a x=\"1\" x=\"2\"/>", "<a x=\"1\"y=\"2\"/>", "<a>&nbsp;</a>",
        "<a>& b</a>", "<a>&#0;</a>", "<a>x < y</a>", "<a/><b/>", "<a/>text",
        "<a>\x01</a>", "<!-- a -- b --><a/>", "<!DOCTYPE a><a/>", "<1a/>", "<a>]]></a>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int status = test_wait(test_fork(xml_parse_quietly, (void *)bad[i]), 10000);
        CHECK_MSG(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0,
                  "'%s' was accepted as XML", bad[i]);
    }
}

TEST_T(tools_bench_svg, 60)
{
    char path[64];
    temp_svg(path, sizeof path);
    struct result r = MPROC("bench", "--quick", "--workers", "2", "--svg", path);
    expect_status(&r, 0);
    result_free(&r);
    char *text = xml_read_file(path);
    unlink(path);
    xml_node *doc = xml_parse(text);
    free(text);
    CHECK(strcmp(doc->name, "svg") == 0);
    expect_has(xml_find(doc, "title", NULL, NULL)->text, "CPU-bound speed-up", "the title");
    /* One point per CPU-bound run: 1 and 2 workers. */
    CHECK_EQ(svg_series_points(doc, "measured speed-up"), 2);
    CHECK_EQ(svg_series_points(doc, "ideal (N x)"), 2);
    /* The fit needs a run with 2 workers on 2 CPUs or more. */
    CHECK_EQ(svg_series_points(doc, "fitted Amdahl curve"), cpus() >= 2 ? 2 : -1);
    xml_free(doc);

    /* A file that cannot be written: the measurement runs, then exit 1. */
    r = MPROC("bench", "--quick", "--workers", "1", "--svg", "/nonexistent-dir/x.svg");
    expect_status(&r, 1);
    expect_has(r.err, "cannot write the chart to /nonexistent-dir/x.svg", "stderr");
    result_free(&r);
}
