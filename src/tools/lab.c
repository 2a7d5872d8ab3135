/*
 * tools/lab.c -- `mproc lab`: the table of labs, their command line, and
 * the report every lab fills (lab.h), printed as text or JSON.
 *
 *   mproc lab list                 the labs, a line each
 *   mproc lab NAME [options]       run one
 *   mproc lab all [options]        run every lab, one after another
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define MAX_METRICS 48
#define MAX_NOTES 16
#define TEXT_MAX 240

static const mproc__lab lab_table[] = {
    { "race", "a shared counter with and without a lock; back-off under contention",
      "Two threads that update a variable at the same time without synchronisation "
      "lose updates (a race condition); a lock makes the result exact; under contention, "
      "exponential back-off is the strategy for retrying.",
      LAB_OPT_WORKERS, mproc__lab_race },
    { "switch", "the cost of a thread and a process switch; 1,000 threads vs a pool",
      "Switching from one thread to another is not free: the OS saves the registers, runs "
      "the scheduler, loads the other's state, and caches go cold. With 1,000 threads doing "
      "very little, the CPU spends more time switching than working: do not create threads "
      "indiscriminately, use a thread pool, which reuses its threads instead of creating "
      "and destroying them (costly).",
      0, mproc__lab_switch },
    { "create", "creating a thread vs a process (fork, forkserver, spawn); fork and CoW",
      "Creating a process is costly (the OS must allocate memory, page tables, a PID); "
      "creating a thread is cheap. fork() is nearly instant even with gigabytes of memory, "
      "because it does not copy it: parent and child share the pages (copy-on-write).",
      0, mproc__lab_create },
    { "cow", "copy-on-write: what children that read or write the parent's array own",
      "fork() does not copy memory: parent and child share the same physical pages, marked "
      "read-only; only when the child writes does the kernel copy that one page (4 KB). Load "
      "large data in the parent before creating the children: they read it for free.",
      0, mproc__lab_cow },
    { "zombie", "a child nobody waits for is a zombie (Z) until reaped; mproc reaps its own",
      "A process that has died but whose parent has not read its exit code (waitpid) is a "
      "zombie (TASK_ZOMBIE): it uses no RAM but holds a slot in the process table. A parent "
      "that forks a child which exits at once, and never calls wait(), leaves it <defunct> "
      "(state Z in ps).",
      0, mproc__lab_zombie },
    { "ipc", "Pipe vs Queue vs a shared Value between two processes: msg/s, MB/s",
      "Processes do not share memory, so they communicate through IPC. A Pipe connects "
      "exactly two processes: simple and fast. A Queue serves many producers and consumers "
      "safely, but with more overhead. Value and Array share simple data (a number, a small "
      "array) between processes; access to them must be synchronised with a Lock.",
      0, mproc__lab_ipc },
    { "io-vs-cpu", "HTTP requests and arithmetic: sequential, threads, processes (full: ~6 s)",
      "I/O-bound tasks improve with concurrency such as threads, because while one operation "
      "waits another can advance (the threaded downloader 'will be 10x-50x faster'); CPU-bound "
      "tasks improve only with real parallelism on several cores (in Python, processes).",
      LAB_OPT_WORKERS, mproc__lab_io_vs_cpu },
    { "gil", "CPU-bound threads with and without a simulated global interpreter lock",
      "In C++ or Java, 4 threads on a 4-core CPU use all 4 cores (real parallelism); in "
      "CPython, no: the GIL lets only one thread run bytecode at a time, so the threads take "
      "turns and never run in real parallel, even with 128 cores.",
      LAB_OPT_WORKERS, mproc__lab_gil },
    { "amdahl", "speed-ups of a job with a chosen serial fraction, P fitted (full: ~6 s)",
      "The speed-up of a parallel program is limited by its sequential part: with a parallel "
      "fraction P on N processors, Speedup = 1 / ((1-P) + P/N); if 10% must run sequentially, "
      "even a million processors give at most 10x.",
      LAB_OPT_WORKERS | LAB_OPT_SVG | LAB_OPT_SERIAL, mproc__lab_amdahl },
    { "deadlock", "two locks in opposite orders deadlock (timeouts catch it); one order does not",
      "Deadlock: a mutual block, when two or more processes wait indefinitely for a resource "
      "(each holds what the other waits for); keep critical sections short to avoid it.",
      0, mproc__lab_deadlock },
    { "c10k", "idle connections: a thread each vs one epoll loop (memory, threads, latency)",
      "C10k: a server creating one process or thread per connection collapses at 10,000 "
      "clients (8 MB of stack x 10k = 80 GB, and a scheduler switching among 10k threads); "
      "one thread with an event loop and non-blocking calls (epoll) handles 100,000.",
      0, mproc__lab_c10k },
};

#define N_LABS (sizeof lab_table / sizeof lab_table[0])

struct metric {
    char key[32];
    char unit[16];
    char text[64];
    double value;
};

struct mproc__lab_report {
    const mproc__lab *lab;
    struct metric metrics[MAX_METRICS];
    size_t nmetrics;
    bool dropped;
    char notes[MAX_NOTES][TEXT_MAX];
    size_t nnotes;
    bool has_verdict;
    bool holds;
    char verdict[TEXT_MAX];
};

void mproc__lab_metric(mproc__lab_report *r, const char *key, double value, const char *unit,
                       const char *text)
{
    if (r->nmetrics == MAX_METRICS) {
        r->dropped = true;
        return;
    }
    struct metric *m = &r->metrics[r->nmetrics++];
    snprintf(m->key, sizeof m->key, "%s", key);
    snprintf(m->unit, sizeof m->unit, "%s", unit);
    snprintf(m->text, sizeof m->text, "%s", text);
    m->value = value;
}

void mproc__lab_note(mproc__lab_report *r, const char *fmt, ...)
{
    if (r->nnotes == MAX_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes[r->nnotes++], TEXT_MAX, fmt, ap);
    va_end(ap);
}

void mproc__lab_verdict(mproc__lab_report *r, bool holds, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->verdict, sizeof r->verdict, fmt, ap);
    va_end(ap);
    r->holds = holds;
    r->has_verdict = true;
}

/* ---- printing ------------------------------------------------------- */

/* s as a JSON string, quotes included. */
static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if (*c == '\n')
            fputs("\\n", stdout);
        else if (*c < 0x20)
            printf("\\u%04x", *c);
        else
            putchar(*c);
    }
    putchar('"');
}

/* Counts exactly, other figures to 6 significant digits; null for
 * infinities and NaN (JSON has neither). */
static void json_number(double v)
{
    if (!isfinite(v))
        fputs("null", stdout);
    else if (fabs(v) < 1e15 && v == floor(v))
        printf("%.0f", v);
    else
        printf("%.6g", v);
}

static void print_json(const mproc__lab_report *r, const mproc__lab_opts *o, int rc,
                       const char *indent)
{
    printf("%s{\n%s  \"lab\": ", indent, indent);
    json_string(r->lab->name);
    printf(",\n%s  \"summary\": ", indent);
    json_string(r->lab->summary);
    printf(",\n%s  \"claim\": ", indent);
    json_string(r->lab->claim);
    printf(",\n%s  \"quick\": %s,\n%s  \"metrics\": {", indent, o->quick ? "true" : "false",
           indent);
    for (size_t i = 0; i < r->nmetrics; i++) {
        const struct metric *m = &r->metrics[i];
        printf("%s\n%s    ", i ? "," : "", indent);
        json_string(m->key);
        printf(": { \"value\": ");
        json_number(m->value);
        printf(", \"unit\": ");
        json_string(m->unit);
        printf(", \"text\": ");
        json_string(m->text);
        printf(" }");
    }
    printf("%s},\n%s  \"notes\": [", r->nmetrics ? "\n  " : "", indent);
    for (size_t i = 0; i < r->nnotes; i++) {
        printf("%s\n%s    ", i ? "," : "", indent);
        json_string(r->notes[i]);
    }
    printf("%s],\n%s  \"holds\": %s,\n%s  \"verdict\": ", r->nnotes ? "\n  " : "", indent,
           r->has_verdict ? (r->holds ? "true" : "false") : "null", indent);
    if (r->has_verdict)
        json_string(r->verdict);
    else
        fputs("null", stdout);
    printf(",\n%s  \"error\": ", indent);
    if (rc < 0)
        json_string(mproc_strerror(rc));
    else
        fputs("null", stdout);
    printf("\n%s}", indent);
}

static void print_text(const mproc__lab_report *r, int rc)
{
    printf("lab %s: %s\n", r->lab->name, r->lab->summary);
    printf("the notes: %s\n\n", r->lab->claim);
    for (size_t i = 0; i < r->nmetrics; i++) {
        const struct metric *m = &r->metrics[i];
        if (fabs(m->value) < 1e15 && m->value == floor(m->value))
            printf("  %-46s %12.0f %s\n", m->text, m->value, m->unit);
        else
            printf("  %-46s %12.4g %s\n", m->text, m->value, m->unit);
    }
    if (r->dropped)
        printf("  (more figures were measured than fit in a report)\n");
    if (r->nnotes)
        putchar('\n');
    for (size_t i = 0; i < r->nnotes; i++)
        printf("  %s\n", r->notes[i]);
    if (rc < 0)
        printf("\nthe lab failed: %s\n", mproc_strerror(rc));
    else if (r->has_verdict)
        printf("\nverdict: %s here: %s\n", r->holds ? "holds" : "does not hold", r->verdict);
    putchar('\n');
}

/* ---- running -------------------------------------------------------- */

static const mproc__lab *find_lab(const char *name)
{
    for (size_t i = 0; i < N_LABS; i++)
        if (strcmp(lab_table[i].name, name) == 0)
            return &lab_table[i];
    return NULL;
}

/* Run one lab; rc < 0 if it failed. The report is printed unless JSON
 * output is collected by the caller (then it is returned in *out). */
static int run_lab(const mproc__lab *lab, const mproc__lab_opts *o, mproc__lab_report *r)
{
    memset(r, 0, sizeof *r);
    r->lab = lab;
    mproc__progress("lab %s ...", lab->name);
    int rc = lab->run(o, r);
    mproc__progress_clear();
    if (rc >= 0 && !r->has_verdict)
        rc = -EPROTO; /* a lab must conclude */
    return rc;
}

void mproc__lab_usage(FILE *out)
{
    fputs("usage: mproc lab list\n"
          "       mproc lab NAME [--quick] [--json] [options]\n"
          "       mproc lab all [--quick] [--json]\n"
          "\n"
          "Each lab measures one claim of the notes on this machine, prints what\n"
          "it measured and the claim, and ends with a verdict: the claim holds\n"
          "here, or does not, and why.\n"
          "\n"
          "labs:\n",
          out);
    for (size_t i = 0; i < N_LABS; i++)
        fprintf(out, "  %-10s %s\n", lab_table[i].name, lab_table[i].summary);
    fputs("\n"
          "options:\n"
          "  --quick       small sizes (a few seconds at most), for tests and CI\n"
          "  --json        one JSON document on stdout instead of text\n"
          "  --workers N   the most threads or processes a lab uses (labs that\n"
          "                compare worker counts; default: the CPU count)\n"
          "  --svg FILE    write a chart as SVG (labs that plot: amdahl)\n"
          "  --serial F    the serial fraction of the workload, 0 <= F < 1 (amdahl)\n"
          "  -h, --help    print this help\n"
          "\n"
          "Progress is shown on stderr when it is a terminal. Exit status: 0 the\n"
          "labs ran (whatever their verdicts), 1 a lab failed to measure, 2 bad\n"
          "usage.\n",
          out);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "mproc lab: %s '%s' (see 'mproc help lab')\n", what, arg);
    return MPROC_TOOL_USAGE;
}

/* The value of option argv[*i] ("--name=V" or the next argument). */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (a[n] == '=')
        return a + n + 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static bool is_option(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

/* Parse the options after the lab's name. Returns 0, 1 for --help, or
 * MPROC_TOOL_USAGE (message printed). `accepts` is what the lab takes
 * (all labs together for `all`, which only passes on what each takes). */
static int parse_opts(int argc, char **argv, unsigned accepts, mproc__lab_opts *o)
{
    *o = (mproc__lab_opts){ .serial = -1 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--quick") == 0) {
            o->quick = true;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        } else if (is_option(a, "--workers") && (accepts & LAB_OPT_WORKERS)) {
            const char *v = option_value(argc, argv, &i, "--workers");
            if (!v || mproc__parse_count(v, 4096, &o->workers) < 0)
                return usage_error("--workers takes a whole number from 1 to 4096, not",
                                   v ? v : "nothing");
        } else if (is_option(a, "--svg") && (accepts & LAB_OPT_SVG)) {
            o->svg = option_value(argc, argv, &i, "--svg");
            if (!o->svg || !*o->svg)
                return usage_error("--svg needs a file name, not", o->svg ? o->svg : "nothing");
        } else if (is_option(a, "--serial") && (accepts & LAB_OPT_SERIAL)) {
            const char *v = option_value(argc, argv, &i, "--serial");
            char *end = NULL;
            double f = v ? strtod(v, &end) : -1;
            if (!v || end == v || *end || !(f >= 0 && f < 1))
                return usage_error("--serial takes a fraction 0 <= F < 1, not",
                                   v ? v : "nothing");
            o->serial = f;
        } else {
            return usage_error(a[0] == '-' ? "this lab does not take the option"
                                           : "unexpected argument",
                               a);
        }
    }
    return 0;
}

static int list_labs(int argc, char **argv)
{
    if (argc > 1)
        return usage_error("'lab list' takes no arguments, not", argv[1]);
    for (size_t i = 0; i < N_LABS; i++)
        printf("%-10s %s\n", lab_table[i].name, lab_table[i].summary);
    return MPROC_TOOL_OK;
}

/* Run `only`, or every lab when it is NULL (`mproc lab all`: a lab gets
 * --workers only if it takes it), and print the reports. */
static int run_labs(const mproc__lab *only, int argc, char **argv)
{
    mproc__lab_opts o;
    int rc = parse_opts(argc, argv, only ? only->accepts : LAB_OPT_WORKERS, &o);
    if (rc == 1) {
        mproc__lab_usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (rc != 0)
        return rc;
    mproc__lab_report *r = malloc(sizeof *r);
    if (!r) {
        fprintf(stderr, "mproc lab: out of memory\n");
        return MPROC_TOOL_FAILED;
    }
    const mproc__lab *labs = only ? only : lab_table;
    size_t count = only ? 1 : N_LABS;
    if (o.json && !only)
        printf("{\n  \"command\": \"lab\",\n  \"quick\": %s,\n  \"labs\": [\n",
               o.quick ? "true" : "false");
    int failed = 0;
    for (size_t i = 0; i < count; i++) {
        mproc__lab_opts mine = o;
        if (!(labs[i].accepts & LAB_OPT_WORKERS))
            mine.workers = 0;
        rc = run_lab(&labs[i], &mine, r);
        failed += rc < 0;
        if (o.json) {
            print_json(r, &mine, rc, only ? "" : "    ");
            printf("%s\n", only || i + 1 == count ? "" : ",");
        } else {
            print_text(r, rc);
        }
        fflush(stdout);
    }
    if (o.json && !only)
        printf("  ]\n}\n");
    free(r);
    return failed ? MPROC_TOOL_FAILED : MPROC_TOOL_OK;
}

int mproc__lab_main(int argc, char **argv)
{
    if (argc < 2) {
        mproc__lab_usage(stderr);
        return MPROC_TOOL_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        mproc__lab_usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (strcmp(name, "list") == 0)
        return list_labs(argc - 1, argv + 1);
    if (strcmp(name, "all") == 0)
        return run_labs(NULL, argc - 1, argv + 1);
    const mproc__lab *lab = find_lab(name);
    if (!lab) {
        fprintf(stderr, "mproc lab: no lab named '%s' (see 'mproc lab list')\n", name);
        return MPROC_TOOL_USAGE;
    }
    return run_labs(lab, argc - 1, argv + 1);
}
