/*
 * tests/test_lab.c -- `mproc lab`, run as a user runs it: every lab in
 * --quick mode with its JSON parsed and its figures checked for what must
 * hold on any machine; usage errors exit with status 2.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdrun.h"
#include "json.h"
#include "runner.h"
#include "xml.h"

#ifndef MPROC_BIN
#error "MPROC_BIN (the path of the built mproc command) must be defined"
#endif

#define MPROC(...) run_with(MPROC_BIN, (char *const[]){ MPROC_BIN, __VA_ARGS__, NULL }, "")

/* Run `mproc lab NAME --quick --json`, expect success, parse stdout. */
static json *lab_json(const char *name)
{
    struct result r = MPROC("lab", (char *)name, "--quick", "--json");
    expect_status(&r, 0);
    json *doc = json_parse(r.out);
    result_free(&r);
    CHECK(strcmp(json_str(doc, "lab"), name) == 0);
    CHECK(json_bool(doc, "quick"));
    CHECK(strlen(json_str(doc, "claim")) > 20);
    CHECK(strlen(json_str(doc, "verdict")) > 10);
    CHECK(json_at(doc, "error")->kind == J_NULL);
    (void)json_bool(doc, "holds");
    return doc;
}

/* Run `mproc lab NAME --quick --json` with extra arguments (up to 6),
 * expect success, parse stdout. */
#define LAB_JSON_WITH(name, ...) lab_json_argv(name, (char *[]){ __VA_ARGS__, NULL })
static json *lab_json_argv(const char *name, char **extra)
{
    char *argv[12] = { MPROC_BIN, "lab", (char *)name, "--quick", "--json" };
    size_t n = 5;
    for (; *extra && n < 11; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    struct result r = run_with(MPROC_BIN, argv, "");
    expect_status(&r, 0);
    json *doc = json_parse(r.out);
    result_free(&r);
    CHECK(strcmp(json_str(doc, "lab"), name) == 0);
    CHECK(strlen(json_str(doc, "verdict")) > 10);
    CHECK(json_at(doc, "error")->kind == J_NULL);
    return doc;
}

static double metric(const json *doc, const char *key)
{
    char path[96];
    snprintf(path, sizeof path, "metrics.%s.value", key);
    return json_num(doc, path);
}

TEST(list_names_every_lab)
{
    struct result r = MPROC("lab", "list");
    expect_status(&r, 0);
    expect_has(r.out, "race ", "lab list");
    expect_has(r.out, "io-vs-cpu ", "lab list");
    expect_has(r.out, "gil ", "lab list");
    expect_has(r.out, "amdahl ", "lab list");
    expect_has(r.out, "deadlock ", "lab list");
    expect_has(r.out, "c10k ", "lab list");
    result_free(&r);
}

TEST(race_counts)
{
    json *doc = lab_json("race");
    double want = metric(doc, "expected");
    CHECK(want > 0);
    CHECK_EQ(metric(doc, "locked_total"), want); /* the lock makes it exact */
    CHECK(metric(doc, "unlocked_total") <= want); /* lost, never invented */
    CHECK(metric(doc, "unlocked_total") > 0);
    CHECK_EQ(metric(doc, "unlocked_lost"), want - metric(doc, "unlocked_total"));
    CHECK_EQ(metric(doc, "lock_acquisitions"), want);
    CHECK(metric(doc, "lock_contended") <= metric(doc, "lock_acquisitions"));
    CHECK(metric(doc, "spin_macq_per_s") > 0 && metric(doc, "backoff_macq_per_s") > 0);
    /* The verdict follows from the figures. */
    CHECK_EQ(json_bool(doc, "holds"), metric(doc, "unlocked_lost") > 0);
    json_free(doc);
}

TEST(text_report_has_claim_figures_and_verdict)
{
    struct result r = MPROC("lab", "race", "--quick", "--workers", "2");
    expect_status(&r, 0);
    expect_has(r.out, "lab race:", "stdout");
    expect_has(r.out, "the notes:", "stdout");
    expect_has(r.out, "counter with mproc_lock", "stdout");
    expect_has(r.out, "verdict: ", "stdout");
    result_free(&r);
}

/* Every lab in one run, as `mproc lab all` prints them. Sanitizer builds
 * skip it: each lab has its own test above, and eleven labs in a row
 * there take longer than run_with waits. */
TEST_T(all_quick_json, 120)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    return;
#endif
    struct result r = MPROC("lab", "all", "--quick", "--json");
    expect_status(&r, 0);
    json *doc = json_parse(r.out);
    result_free(&r);
    CHECK(strcmp(json_str(doc, "command"), "lab") == 0);
    const json *labs = json_at(doc, "labs");
    CHECK(labs && labs->kind == J_ARRAY && labs->n >= 1);
    for (size_t i = 0; i < labs->n; i++) {
        CHECK(json_at(labs->items[i], "holds")->kind == J_BOOL);
        CHECK(json_at(labs->items[i], "error")->kind == J_NULL);
    }
    json_free(doc);
}

TEST(bad_usage_exits_2)
{
    struct result r = MPROC("lab");
    expect_status(&r, 2);
    expect_has(r.err, "usage: mproc lab", "stderr");
    result_free(&r);
    r = MPROC("lab", "no-such-lab");
    expect_status(&r, 2);
    expect_has(r.err, "no lab named 'no-such-lab'", "stderr");
    result_free(&r);
    r = MPROC("lab", "race", "--svg", "x.svg"); /* race draws nothing */
    expect_status(&r, 2);
    expect_has(r.err, "does not take the option '--svg'", "stderr");
    result_free(&r);
    r = MPROC("lab", "race", "--workers", "0");
    expect_status(&r, 2);
    expect_has(r.err, "--workers takes", "stderr");
    result_free(&r);
    r = MPROC("lab", "race", "--workers");
    expect_status(&r, 2);
    result_free(&r);
    r = MPROC("lab", "list", "extra");
    expect_status(&r, 2);
    result_free(&r);
    r = MPROC("lab", "race", "extra");
    expect_status(&r, 2);
    expect_has(r.err, "unexpected argument 'extra'", "stderr");
    result_free(&r);
}

TEST(help_lists_the_labs)
{
    struct result r = MPROC("help", "lab");
    expect_status(&r, 0);
    expect_has(r.out, "usage: mproc lab", "stdout");
    expect_has(r.out, "race", "stdout");
    result_free(&r);
    r = MPROC("lab", "race", "--help");
    expect_status(&r, 0);
    expect_has(r.out, "usage: mproc lab", "stdout");
    result_free(&r);
}

/* In a child: parse text (a failure ends the child with a non-zero
 * status); its complaint goes nowhere. */
static int parse_quietly(void *text)
{
    if (!freopen("/dev/null", "w", stderr))
        return 0;
    json_free(json_parse(text));
    return 0;
}

/* The JSON reader the lab tests rely on rejects what is not JSON. */
TEST(json_reader_is_strict)
{
    json *v = json_parse(" {\"a\": [1, -2.5e3, true, null, \"x\\u00e9\\n\"], \"b\": {}} ");
    CHECK_EQ(json_num(v, "a.0"), 1);
    CHECK_EQ(json_num(v, "a.1"), -2500);
    CHECK(json_bool(v, "a.2"));
    CHECK(json_at(v, "a.3")->kind == J_NULL);
    CHECK(strcmp(json_str(v, "a.4"), "x\xc3\xa9\n") == 0);
    CHECK(json_at(v, "b")->kind == J_OBJECT && json_at(v, "b")->n == 0);
    CHECK(json_at(v, "a.5") == NULL && json_at(v, "c") == NULL);
    json_free(v);
    const char *bad[] = { "", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"\\x\"", "[1] 2",
                          "nul", "{1: 2}", "\"a\nb\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int status = test_wait(test_fork(parse_quietly, (void *)bad[i]), 10000);
        CHECK_MSG(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) != 0,
                  "'%s' was accepted as JSON", bad[i]);
    }
}

/* `mproc lab switch`: every round trip and every tiny task is counted
 * exactly; pinned to one CPU, each round trip really switched. */
TEST(switch_counts)
{
    json *doc = lab_json("switch");
    double rounds = metric(doc, "round_trips");
    CHECK(rounds > 0);
    static const char *const variants[] = { "thread_sem", "thread_sem_pinned",
                                            "process_pipe", "process_pipe_pinned",
                                            "process_sem", "process_sem_pinned" };
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char key[64];
        CHECK_MSG(metric(doc, variants[i]) > 0, "%s: no time", variants[i]);
        snprintf(key, sizeof key, "%s_done", variants[i]);
        CHECK_MSG(metric(doc, key) == rounds, "%s: %.0f of %.0f round trips", variants[i],
                  metric(doc, key), rounds);
        snprintf(key, sizeof key, "%s_switches", variants[i]);
        CHECK(metric(doc, key) >= 0);
        /* On one CPU the token moves only when the CPU switches from one
         * party to the other and back: at least 2 per round trip. */
        if (strstr(variants[i], "pinned"))
            CHECK_MSG(metric(doc, key) >= 1.9, "%s: %.2f switches per round trip",
                      variants[i], metric(doc, key));
    }
    double tasks = metric(doc, "tasks");
    CHECK_EQ(tasks, 1000);
    CHECK_EQ(metric(doc, "threads_tasks_done"), tasks);
    CHECK_EQ(metric(doc, "pool_tasks_done"), tasks);
    CHECK(metric(doc, "threads_ms") > 0 && metric(doc, "pool_ms") > 0);
    CHECK(metric(doc, "pool_work_ms") <= metric(doc, "pool_ms"));
    CHECK(metric(doc, "tiny_call_ns") > 0);
    json_free(doc);
}

/* `mproc lab create`: every worker of every method ran (each counted
 * itself in shared memory), spawn found its task, and the times are in
 * order: a worker starts after it was created and is joined after. */
TEST(create_every_worker_ran)
{
    json *doc = lab_json("create");
    CHECK_EQ(metric(doc, "spawn_ok"), 1);
    static const char *const methods[] = { "thread", "raw_fork", "fork",
                                           "forkserver", "spawn", "big_fork" };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s_samples", methods[i]);
        double n = metric(doc, key);
        CHECK(n > 0);
        snprintf(key, sizeof key, "%s_ran", methods[i]);
        CHECK_MSG(metric(doc, key) == n, "%s: %.0f of %.0f ran", methods[i], metric(doc, key),
                  n);
        snprintf(key, sizeof key, "%s_started_us", methods[i]);
        double started = metric(doc, key);
        snprintf(key, sizeof key, "%s_joined_us", methods[i]);
        CHECK_MSG(started > 0 && metric(doc, key) >= started, "%s: started %.1f, joined %.1f",
                  methods[i], started, metric(doc, key));
    }
    CHECK_EQ(metric(doc, "big_array_mib"), 32);
    CHECK(metric(doc, "big_copy_us") > 0);
    json_free(doc);
}

/* `mproc lab cow`: page counts are exact, whatever the machine: a child
 * that reads the parent's array shares all of it, one that writes every
 * page owns a copy of each, one that writes every 8th page owns those. */
TEST(cow_pages_shared_then_copied)
{
    json *doc = lab_json("cow");
    double size = metric(doc, "array_mib"), pages = metric(doc, "pages");
    CHECK(size >= 32);
    CHECK_EQ(pages * metric(doc, "page_kib"), size * 1024);
    CHECK_EQ(metric(doc, "reader"), pages);
    CHECK_EQ(metric(doc, "writer"), pages);
    CHECK(metric(doc, "reader_sum_ok") == 1);
    CHECK(metric(doc, "parent_data_intact") == 1);
    /* The array's own mapping (sanitizer shadow memory is elsewhere). */
    CHECK_MSG(metric(doc, "reader_array_private_dirty_mib") < size / 10,
              "the reader owns %.1f MiB of the %.0f MiB array",
              metric(doc, "reader_array_private_dirty_mib"), size);
    CHECK(metric(doc, "reader_array_shared_mib") >= size * 0.9);
    CHECK_MSG(metric(doc, "writer_array_private_dirty_mib") >= size * 0.9,
              "the writer owns only %.1f MiB of the %.0f MiB array",
              metric(doc, "writer_array_private_dirty_mib"), size);
    CHECK(metric(doc, "writer_private_dirty_mib") >= metric(doc, "writer_array_private_dirty_mib"));
    double written = metric(doc, "sparse_pages_written");
    CHECK_EQ(written, (pages + 7) / 8);
    CHECK_MSG(metric(doc, "sparse_pages_copied") >= written * 0.9 &&
                  metric(doc, "sparse_pages_copied") <= written * 1.1,
              "%.0f pages written, %.0f copied", written, metric(doc, "sparse_pages_copied"));
    CHECK(json_bool(doc, "holds"));
    json_free(doc);
}

/* `mproc lab zombie`: the raw child was seen as Z, stayed Z while nobody
 * waited, and was gone after waitpid; mproc's children, joined or with
 * their handle destroyed, leave no zombie behind. */
TEST(zombie_seen_then_reaped)
{
    json *doc = lab_json("zombie");
    CHECK(metric(doc, "raw_zombie_seen") == 1);
    CHECK(metric(doc, "raw_zombie_seen_ms") >= 0);
    CHECK(metric(doc, "raw_still_zombie") == 1);
    CHECK(metric(doc, "raw_gone_after_waitpid") == 1);
    CHECK(metric(doc, "fork_joined_gone") == 1);
    CHECK(metric(doc, "forkserver_joined_gone") == 1);
    CHECK(metric(doc, "detached_fork_gone") == 1);
    CHECK(metric(doc, "detached_forkserver_gone") == 1);
    CHECK_EQ(metric(doc, "zombie_children"), 0);
    CHECK_EQ(metric(doc, "zombie_grandchildren"), 0);
    CHECK(json_bool(doc, "holds"));
    json_free(doc);
}

/* `mproc lab ipc`: every message arrived, in order and intact (count and
 * checksum), over every channel and size; the shared value is exact with
 * its lock and with atomic adds. */
TEST(ipc_every_message_arrived)
{
    json *doc = lab_json("ipc");
    static const char *const chans[] = { "raw_pipe", "conn", "queue", "queue_batch" };
    double small = metric(doc, "small_messages"), large = metric(doc, "large_messages");
    CHECK(small > 0 && large > 0);
    for (size_t i = 0; i < sizeof chans / sizeof chans[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s_small_received", chans[i]);
        CHECK_MSG(metric(doc, key) == small, "%s: %.0f of %.0f", key, metric(doc, key), small);
        snprintf(key, sizeof key, "%s_small_checksum_ok", chans[i]);
        CHECK_MSG(metric(doc, key) == 1, "%s", key);
        snprintf(key, sizeof key, "%s_small_msgs_per_s", chans[i]);
        CHECK(metric(doc, key) > 0);
        if (strcmp(chans[i], "queue_batch") == 0)
            continue; /* small messages only */
        snprintf(key, sizeof key, "%s_large_received", chans[i]);
        CHECK_MSG(metric(doc, key) == large, "%s: %.0f of %.0f", key, metric(doc, key), large);
        snprintf(key, sizeof key, "%s_large_checksum_ok", chans[i]);
        CHECK_MSG(metric(doc, key) == 1, "%s", key);
        snprintf(key, sizeof key, "%s_large_mb_per_s", chans[i]);
        CHECK(metric(doc, key) > 0);
    }
    double updates = metric(doc, "value_updates");
    CHECK(updates > 0);
    CHECK_EQ(metric(doc, "value_locked_total"), updates);
    CHECK_EQ(metric(doc, "value_atomic_total"), updates);
    /* The verdict compares Pipe and Queue, and nothing else can fail it. */
    CHECK_EQ(json_bool(doc, "holds"), metric(doc, "pipe_over_queue") > 1);
    json_free(doc);
}

/* The labs of processes and switches are listed, and take no options
 * beyond --quick and --json: anything else is a usage error (status 2). */
TEST(process_labs_listed_and_strict)
{
    static const char *const labs[] = { "switch", "create", "cow", "zombie", "ipc" };
    struct result r = MPROC("lab", "list");
    expect_status(&r, 0);
    for (size_t i = 0; i < sizeof labs / sizeof labs[0]; i++) {
        char line[32];
        snprintf(line, sizeof line, "%s ", labs[i]);
        expect_has(r.out, line, "lab list");
    }
    result_free(&r);
    for (size_t i = 0; i < sizeof labs / sizeof labs[0]; i++) {
        r = MPROC("lab", (char *)labs[i], "--workers", "2");
        expect_status(&r, 2);
        expect_has(r.err, "does not take the option '--workers'", "stderr");
        result_free(&r);
        r = MPROC("lab", (char *)labs[i], "--quick", "--bogus");
        expect_status(&r, 2);
        result_free(&r);
        r = MPROC("lab", (char *)labs[i], "extra");
        expect_status(&r, 2);
        expect_has(r.err, "unexpected argument 'extra'", "stderr");
        result_free(&r);
    }
}
/* ---- io-vs-cpu ------------------------------------------------------ */

TEST_T(io_vs_cpu_figures, 60)
{
    json *doc = lab_json("io-vs-cpu");
    double cpus = metric(doc, "cpus"), requests = metric(doc, "io_requests");
    CHECK(cpus >= 1 && requests >= 32);
    /* Every answer came back intact, from every run (a warm-up pass on
     * each executor, then 1 round: sequential, threads, processes), and
     * the server sent each once. */
    CHECK_EQ(metric(doc, "io_answers"), 5 * requests);
    CHECK_EQ(metric(doc, "io_intact"), metric(doc, "io_answers"));
    CHECK_EQ(metric(doc, "server_answered"), metric(doc, "io_answers"));
    CHECK_EQ(metric(doc, "cpu_runs"), 8); /* warm-ups + 3 rounds, threads and processes */
    CHECK_EQ(metric(doc, "cpu_runs_matched"), metric(doc, "cpu_runs"));
    /* Sleep-bound: 32+ requests that each wait 10 ms overlap on 8+ workers
     * whatever the load (the ideal is the worker count, 16 or more). */
    CHECK(metric(doc, "io_workers") >= 8);
    CHECK_MSG(metric(doc, "io_threads_speedup") > 2, "I/O on threads: %.2fx",
              metric(doc, "io_threads_speedup"));
    CHECK_MSG(metric(doc, "io_processes_speedup") > 2, "I/O on processes: %.2fx",
              metric(doc, "io_processes_speedup"));
    /* The verdict follows from the figures, by the lab's stated rule. */
    double cores = metric(doc, "cpu_workers") < cpus ? metric(doc, "cpu_workers") : cpus;
    double thr = metric(doc, "cpu_threads_speedup"), proc = metric(doc, "cpu_processes_speedup");
    bool holds = metric(doc, "io_threads_speedup") > cpus &&
                 (thr > proc ? thr : proc) <= 1.1 * cores &&
                 (cores < 2 || (thr > 1.2 && proc > 1.2));
    CHECK_EQ(json_bool(doc, "holds"), holds);
    json_free(doc);
}

/* ---- gil ------------------------------------------------------------ */

TEST_T(gil_figures, 60)
{
    json *doc = lab_json("gil");
    /* All the work was done, in every run (3 rounds x 2 modes x 2-3
     * thread counts). */
    CHECK(metric(doc, "runs") >= 12);
    CHECK_EQ(metric(doc, "runs_exact"), metric(doc, "runs"));
    /* The GIL lets one thread compute at a time: an invariant. */
    CHECK_EQ(metric(doc, "gil_most_at_once"), 1);
    /* On dedicated cores (the CPU time of the run's critical path, which
     * other load does not change) the GIL run cannot gain from a second
     * thread, and the run without it halves its critical path; timings by
     * the wall clock depend on the machine's load and are not checked. */
    CHECK_MSG(metric(doc, "gil_cpu_speedup_2") < 1.3, "GIL, 2 threads: %.2fx",
              metric(doc, "gil_cpu_speedup_2"));
    CHECK_MSG(metric(doc, "nogil_cpu_speedup_2") > 1.3, "no GIL, 2 threads: %.2fx",
              metric(doc, "nogil_cpu_speedup_2"));
    /* The verdict follows from the figures, by the lab's stated rule. */
    CHECK_EQ(json_bool(doc, "holds"), metric(doc, "nogil_speedup_2") >= 1.3);
    json_free(doc);
}

/* ---- amdahl --------------------------------------------------------- */

/* Whether metric `key` is null (a fit that could not be made). */
static bool metric_null(const json *doc, const char *key)
{
    char path[96];
    snprintf(path, sizeof path, "metrics.%s.value", key);
    const json *v = json_at(doc, path);
    CHECK_MSG(v != NULL, "no metric %s", key);
    return v->kind == J_NULL;
}

TEST_T(amdahl_fits_the_chosen_fraction, 60)
{
    json *doc = LAB_JSON_WITH("amdahl", "--serial", "0.5", "--workers", "2");
    CHECK(fabs(metric(doc, "serial") - 0.5) < 1e-9);
    CHECK(fabs(metric(doc, "p_chosen") - 0.5) < 1e-9);
    CHECK_EQ(metric(doc, "max_workers"), 2);
    /* Waiting work (each part sleeps its share) needs no CPU, so other
     * load cannot stretch it: its fit finds the chosen P on any machine.
     * Computing needs two free CPUs, which a loaded VM or a sanitizer run
     * does not give: its figures are not checked, only the verdict's rule. */
    CHECK_MSG(fabs(metric(doc, "p_fitted_waiting") - 0.5) <= 0.1, "P fitted, waiting: %.3f",
              metric(doc, "p_fitted_waiting"));
    CHECK(metric(doc, "waiting_speedup_2") > 1.0 && metric(doc, "waiting_speedup_2") < 2.0);
    bool holds = !metric_null(doc, "p_fitted") && metric(doc, "p_error") <= 0.1 &&
                 metric(doc, "speedup_2") <= 1.05 * metric(doc, "bound");
    CHECK_EQ(json_bool(doc, "holds"), holds);
    json_free(doc);
}

TEST_T(amdahl_svg_chart, 60)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/mproc-lab-XXXXXX.svg");
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0);
    close(fd);
    struct result r = MPROC("lab", "amdahl", "--quick", "--workers", "3", "--serial", "0.25",
                            "--svg", path);
    expect_status(&r, 0);
    expect_has(r.out, "Chart written to", "stdout");
    expect_has(r.out, "verdict: ", "stdout");
    result_free(&r);
    char *text = xml_read_file(path);
    unlink(path);
    xml_node *svg = xml_parse(text);
    free(text);
    CHECK(strcmp(svg->name, "svg") == 0);
    expect_has(xml_find(svg, "title", NULL, NULL)->text, "serial fraction 0.25", "the title");
    /* One point per worker count, 1..3, in every series. */
    CHECK_EQ(svg_series_points(svg, "measured speed-up"), 3);
    CHECK_EQ(svg_series_points(svg, "waiting work, measured"), 3);
    CHECK_EQ(svg_series_points(svg, "Amdahl's law, chosen P"), 3);
    CHECK_EQ(svg_series_points(svg, "ideal (N x)"), 3);
    /* The computing fit uses the runs with at most one worker per CPU:
     * none beyond 1 worker on a 1-CPU machine, and then no curve. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ(svg_series_points(svg, "fitted Amdahl curve"), cpus >= 2 ? 3 : 0);
    xml_free(svg);
}

TEST(amdahl_bad_options)
{
    const char *bad_serial[] = { "1", "1.5", "-0.1", "x", "0.5x", "" };
    for (size_t i = 0; i < sizeof bad_serial / sizeof bad_serial[0]; i++) {
        struct result r = MPROC("lab", "amdahl", "--serial", (char *)bad_serial[i]);
        expect_status(&r, 2);
        expect_has(r.err, "--serial takes a fraction", "stderr");
        result_free(&r);
    }
    struct result r = MPROC("lab", "amdahl", "--svg");
    expect_status(&r, 2);
    result_free(&r);
    r = MPROC("lab", "gil", "--serial", "0.5"); /* only amdahl takes it */
    expect_status(&r, 2);
    expect_has(r.err, "does not take the option '--serial'", "stderr");
    result_free(&r);
    r = MPROC("lab", "io-vs-cpu", "--svg", "x.svg");
    expect_status(&r, 2);
    result_free(&r);
    /* A chart that cannot be written: the lab fails (exit 1) and says why. */
    r = MPROC("lab", "amdahl", "--quick", "--workers", "2", "--svg", "/nonexistent-dir/a.svg");
    expect_status(&r, 1);
    expect_has(r.out, "cannot write the chart to /nonexistent-dir/a.svg", "stdout");
    result_free(&r);
}

/* ---- deadlock ------------------------------------------------------- */

TEST_T(deadlock_detected_and_avoided, 60)
{
    json *doc = lab_json("deadlock");
    double iterations = metric(doc, "iterations"); /* both threads together */
    CHECK(iterations >= 2);
    /* Every iteration was done in both modes: the counter is exact. */
    CHECK_EQ(metric(doc, "opposite_done"), iterations);
    CHECK_EQ(metric(doc, "ordered_done"), iterations);
    /* Opposite orders: a barrier makes each thread hold its first lock
     * before it asks for the second, so every iteration deadlocks once and
     * at least one of the two threads sees the cycle when its wait times
     * out. */
    CHECK(metric(doc, "opposite_timeouts") >= iterations / 2);
    CHECK(metric(doc, "opposite_deadlocks") >= iterations / 2);
    CHECK(metric(doc, "opposite_deadlocks") <= metric(doc, "opposite_timeouts"));
    /* One global order: no cycle can form (a timeout may: a preempted
     * holder is slow, not deadlocked). */
    CHECK_EQ(metric(doc, "ordered_deadlocks"), 0);
    CHECK(json_bool(doc, "holds"));
    json_free(doc);
}

/* ---- c10k ----------------------------------------------------------- */

TEST_T(c10k_every_connection_served, 60)
{
    json *doc = lab_json("c10k");
    double n = metric(doc, "connections");
    CHECK(n >= 8); /* 200 in --quick, fewer only with a low open-files limit */
    CHECK_EQ(metric(doc, "thread_stack_kib"), 64);
    /* Every connection was established and answered, by both servers. */
    CHECK_EQ(metric(doc, "threads_established"), n);
    CHECK_EQ(metric(doc, "threads_served"), n);
    CHECK_EQ(metric(doc, "epoll_established"), n);
    CHECK_EQ(metric(doc, "epoll_served"), n);
    /* Threads this process gained: one per connection plus the acceptor,
     * against the single epoll loop. */
    CHECK_EQ(metric(doc, "threads_threads"), n + 1);
    CHECK_EQ(metric(doc, "epoll_threads"), 1);
    CHECK(metric(doc, "threads_rtt_median_us") > 0 && metric(doc, "epoll_rtt_median_us") > 0);
    /* The verdict follows from the figures, by the lab's stated rule. */
    double ep = metric(doc, "epoll_rss_kib_per_conn");
    CHECK_EQ(json_bool(doc, "holds"),
             metric(doc, "threads_rss_kib_per_conn") > 2 * (ep > 0.1 ? ep : 0.1));
    json_free(doc);
}
