/*
 * bench/harness.c -- timing, medians, one line per figure, and the summary
 * of targets (see harness.h).
 */
#include "harness.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <mproc/os.h>

bench_config bench_cfg;

#define MAX_FIGURES 64
#define MAX_TARGETS 32

typedef struct figure {
    char name[96];
    char unit[16];
    char anchor[96]; /* "" when there is none */
    double value;
    double ratio;
} figure;

typedef struct target {
    char what[96];
    double ratio;
    bench_range rounds;
    double bound;      /* NaN for an info row */
    enum bench_better better;
} target;

/* The runs of the last bench_compare, in the order they were taken. */
static double last_runs[BENCH_MAX_COMPARE][BENCH_MAX_RUNS];
static int last_k, last_n;

static figure figures[MAX_FIGURES];
static int n_figures;
static target targets[MAX_TARGETS];
static int n_targets;

/* Human-readable lines: stdout, or stderr when stdout carries JSON. */
static FILE *text_out(void)
{
    return bench_cfg.json ? stderr : stdout;
}

int64_t bench_now_ns(void)
{
    return mproc_now_ns();
}

void bench_die(const char *what, int code)
{
    fprintf(stderr, "bench: %s: %s (%s)\n", what, mproc_strerror(code),
            mproc_errname(code < 0 ? code : -code));
    exit(1);
}

/* The CPU's model name from /proc/cpuinfo, or "?" (the header only). */
static void cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "?");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon != NULL) {
            colon += 2;
            colon[strcspn(colon, "\n")] = '\0';
            snprintf(buf, size, "%s", colon);
            break;
        }
    }
    fclose(f);
}

/* The 1-minute load average, or -1. */
static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f != NULL) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    return load;
}

static void usage(const char *prog, const char *extra, FILE *f)
{
    fprintf(f,
            "usage: %s [--quick] [--json] [--strict] [--runs N] [--verbose]\n"
            "          [--case N[,N...]]\n"
            "  --quick    small counts and 3 runs per figure (CI)\n"
            "  --json     figures and targets as JSON on stdout, text on stderr\n"
            "  --strict   exit status 2 when a target is missed\n"
            "  --runs N   timed runs per figure, 1..99 (median kept; default 5, quick 3)\n"
            "  --verbose  also print every run's figure, sorted\n"
            "  --case     run only the cases numbered (default: all)\n"
            "%s",
            prog, extra != NULL ? extra : "");
}

void bench_init(int argc, char **argv, const char *title,
                const char *usage_extra)
{
    memset(&bench_cfg, 0, sizeof bench_cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            bench_cfg.quick = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            bench_cfg.json = 1;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            bench_cfg.verbose = 1;
        } else if (strcmp(argv[i], "--strict") == 0) {
            bench_cfg.strict = 1;
        } else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) {
            /* A comma-separated list of case numbers, 1..31. */
            char *end, *p = argv[++i];
            do {
                long c = strtol(p, &end, 10);
                if (end == p || c < 1 || c > 31 || (*end != ',' && *end != '\0')) {
                    usage(argv[0], usage_extra, stderr);
                    exit(1);
                }
                bench_cfg.cases |= 1u << c;
                p = end + 1;
            } while (*end == ',');
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            bench_cfg.runs = atoi(argv[++i]);
            if (bench_cfg.runs < 1 || bench_cfg.runs > BENCH_MAX_RUNS) {
                usage(argv[0], usage_extra, stderr);
                exit(1);
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(argv[0], usage_extra, stdout);
            exit(0);
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
            usage(argv[0], usage_extra, stderr);
            exit(1);
        }
    }
    if (bench_cfg.runs == 0)
        bench_cfg.runs = bench_cfg.quick ? 3 : 5;

    struct utsname u;
    char cpu[128];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_model(cpu, sizeof cpu);
    if (uname(&u) != 0)
        snprintf(u.release, sizeof u.release, "?");
    fprintf(text_out(), "%s\n", title);
    fprintf(text_out(), "machine: %ld CPUs (%s), Linux %s\n", cpus, cpu, u.release);
    fprintf(text_out(), "mode: %s, median of %d runs after one warm-up run\n",
            bench_cfg.quick ? "quick" : "full", bench_cfg.runs);
    /* Other work on the machine shows up in every figure: say so. */
    double load = load_average();
    if (load >= 0)
        fprintf(text_out(), "load average: %.2f%s\n", load,
                load > 0.5 * (double)cpus ? " -- the machine is busy: figures will be noisy"
                                          : "");
}

int bench_case(int n)
{
    return bench_cfg.cases == 0 || (n >= 1 && n <= 31 && (bench_cfg.cases >> n & 1u));
}

long bench_scale(long full, long quick)
{
    return bench_cfg.quick ? quick : full;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n-1] (sorts v); prints the runs with --verbose. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    if (bench_cfg.verbose) {
        fputs("    runs:", text_out());
        for (int i = 0; i < n; i++)
            fprintf(text_out(), " %.3f", v[i]);
        fputc('\n', text_out());
    }
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_compare(int k, bench_fn fn, void *const args[], double out[])
{
    double v[BENCH_MAX_COMPARE][BENCH_MAX_RUNS];
    int runs = bench_cfg.runs;

    if (k < 1 || k > BENCH_MAX_COMPARE) {
        fprintf(stderr, "bench_compare: %d figures (at most %d)\n", k, BENCH_MAX_COMPARE);
        exit(1);
    }
    /* Warm-up: page faults, caches, CPU frequency. */
    for (int i = 0; i < k; i++)
        (void)fn(args[i]);
    /* Round r runs the figures forwards when r is even and backwards when
     * it is odd, so that none always goes first. */
    for (int r = 0; r < runs; r++)
        for (int j = 0; j < k; j++) {
            int i = r % 2 ? k - 1 - j : j;
            v[i][r] = fn(args[i]);
        }
    memcpy(last_runs, v, sizeof v);
    last_k = k;
    last_n = runs;
    for (int i = 0; i < k; i++)
        out[i] = median(v[i], runs);
}

bench_range bench_rounds(int i, int j)
{
    bench_range r = BENCH_NO_RANGE;

    if (i < 0 || j < 0 || i >= last_k || j >= last_k)
        return r;
    for (int n = 0; n < last_n; n++) {
        double q = last_runs[i][n] / last_runs[j][n];
        if (n == 0 || q < r.lo)
            r.lo = q;
        if (n == 0 || q > r.hi)
            r.hi = q;
    }
    return r;
}

double bench_measure(bench_fn fn, void *arg)
{
    double out;
    bench_compare(1, fn, &arg, &out);
    return out;
}

void bench_section(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputc('\n', text_out());
    vfprintf(text_out(), fmt, ap);
    fputc('\n', text_out());
    va_end(ap);
    fflush(text_out());
}

void bench_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("    ", text_out());
    vfprintf(text_out(), fmt, ap);
    fputc('\n', text_out());
    va_end(ap);
    fflush(text_out());
}

double bench_figure(const char *name, double value, const char *unit,
                    const char *anchor, double anchor_value)
{
    double ratio = anchor != NULL && anchor_value > 0 ? value / anchor_value : 0;

    if (anchor != NULL)
        fprintf(text_out(), "  %-46s %10.3f %-4s %7.2fx vs %s\n", name, value,
                unit, ratio, anchor);
    else
        fprintf(text_out(), "  %-46s %10.3f %s\n", name, value, unit);
    fflush(text_out());

    if (n_figures < MAX_FIGURES) {
        figure *f = &figures[n_figures++];
        snprintf(f->name, sizeof f->name, "%s", name);
        snprintf(f->unit, sizeof f->unit, "%s", unit);
        snprintf(f->anchor, sizeof f->anchor, "%s", anchor != NULL ? anchor : "");
        f->value = value;
        f->ratio = ratio;
    }
    return ratio;
}

static void add_target(const char *what, double ratio, bench_range rounds,
                       enum bench_better better, double bound)
{
    if (n_targets >= MAX_TARGETS)
        return;
    target *t = &targets[n_targets++];
    snprintf(t->what, sizeof t->what, "%s", what);
    t->ratio = ratio;
    t->rounds = rounds;
    t->better = better;
    t->bound = bound;
}

static int meets(const target *t, double ratio)
{
    return t->better == BENCH_LOWER ? ratio <= t->bound : ratio >= t->bound;
}

static int target_met(const target *t)
{
    return meets(t, t->ratio);
}

/* Some rounds met the target and some did not. */
static int target_noisy(const target *t)
{
    return !isnan(t->rounds.lo) && meets(t, t->rounds.lo) != meets(t, t->rounds.hi);
}

int bench_target(const char *what, double ratio, bench_range rounds,
                 enum bench_better better, double bound)
{
    add_target(what, ratio, rounds, better, bound);
    return !isnan(ratio) && target_met(&targets[n_targets - 1]);
}

void bench_info(const char *what, double ratio, bench_range rounds)
{
    add_target(what, ratio, rounds, BENCH_HIGHER, NAN);
}

/* JSON string body: names are ours and ASCII; escape the two specials. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

static void json_num(double x)
{
    if (isnan(x))
        fputs("null", stdout);
    else
        printf("%.6g", x);
}

static void print_json(void)
{
    printf("{\"mode\":\"%s\",\"runs\":%d,\"figures\":[",
           bench_cfg.quick ? "quick" : "full", bench_cfg.runs);
    for (int i = 0; i < n_figures; i++) {
        const figure *f = &figures[i];
        printf("%s\n {\"name\":", i ? "," : "");
        json_str(f->name);
        printf(",\"value\":");
        json_num(f->value);
        printf(",\"unit\":");
        json_str(f->unit);
        if (f->anchor[0] != '\0') {
            printf(",\"anchor\":");
            json_str(f->anchor);
            printf(",\"ratio\":");
            json_num(f->ratio);
        }
        putchar('}');
    }
    printf("],\n\"targets\":[");
    for (int i = 0; i < n_targets; i++) {
        const target *t = &targets[i];
        const char *result = isnan(t->bound) ? "info"
                             : isnan(t->ratio) ? "skip"
                             : target_met(t) ? "pass" : "miss";
        printf("%s\n {\"what\":", i ? "," : "");
        json_str(t->what);
        printf(",\"ratio\":");
        json_num(t->ratio);
        printf(",\"rounds_lo\":");
        json_num(t->rounds.lo);
        printf(",\"rounds_hi\":");
        json_num(t->rounds.hi);
        if (!isnan(t->bound)) {
            printf(",\"op\":\"%s\",\"bound\":", t->better == BENCH_LOWER ? "<=" : ">=");
            json_num(t->bound);
        }
        printf(",\"result\":\"%s\",\"noisy\":%s}", result,
               !isnan(t->bound) && target_noisy(t) ? "true" : "false");
    }
    printf("]}\n");
}

int bench_finish(void)
{
    FILE *o = text_out();
    int missed = 0;

    fprintf(o, "\nsummary (ratios are mproc / alternative; for times lower is "
               "better, for throughputs higher;\n"
               "  rounds: the ratio's range over the rounds of interleaved runs)\n");
    fprintf(o, "  %-66s %7s %13s  %-8s %s\n", "target", "ratio", "rounds", "bound",
            "result");
    for (int i = 0; i < n_targets; i++) {
        const target *t = &targets[i];
        char bound[16] = "-", ratio[16] = "-", rounds[32] = "-";
        const char *result = "info";
        if (!isnan(t->bound)) {
            snprintf(bound, sizeof bound, "%s %.2f",
                     t->better == BENCH_LOWER ? "<=" : ">=", t->bound);
            if (isnan(t->ratio)) {
                result = "SKIP";
            } else if (target_met(t)) {
                result = target_noisy(t) ? "PASS (noisy)" : "PASS";
            } else {
                result = target_noisy(t) ? "MISS (noisy)" : "MISS";
                missed++;
            }
        }
        if (!isnan(t->ratio))
            snprintf(ratio, sizeof ratio, "%.2f", t->ratio);
        if (!isnan(t->rounds.lo))
            snprintf(rounds, sizeof rounds, "%.2f-%.2f", t->rounds.lo, t->rounds.hi);
        fprintf(o, "  %-66s %7s %13s  %-8s %s\n", t->what, ratio, rounds, bound, result);
    }
    fflush(o);
    if (bench_cfg.json)
        print_json();
    fflush(stdout);
    return bench_cfg.strict && missed > 0 ? 2 : 0;
}

int bench_python(char *path, size_t size)
{
    const char *env = getenv("PATH");
    char dirs[4096];

    snprintf(dirs, sizeof dirs, "%s", env != NULL ? env : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/python3", *d ? d : ".");
        if (access(path, X_OK) == 0)
            return 1;
    }
    return 0;
}

FILE *bench_python_open(const char *script, const char *args)
{
    char python[4096], cmd[8400];

    if (!bench_python(python, sizeof python)) {
        bench_note("python3: skipped (not installed)");
        return NULL;
    }
    if (access(script, R_OK) != 0 || strchr(script, '\'') || strchr(python, '\'')) {
        bench_note("python3: skipped (cannot use %s)", script);
        return NULL;
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' %s", python, script, args);
    fflush(NULL);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        bench_note("python3: skipped (popen: %s)", strerror(errno));
    return f;
}
