/*
 * tests/test_top.c -- `mproc ps` and `mproc top`, run as a user runs them
 * (the built binary, MPROC_BIN), against processes the test makes for the
 * purpose: a child asleep on a pipe (state S), a child that exits and is
 * not waited for (a zombie, state Z), a child with a second thread, a
 * child that spins (CPU%), children of different sizes (RSS). Each child
 * names itself with prctl(PR_SET_NAME), so the test knows what /proc must
 * say about it.
 *
 * The JSON is read with the suites' strict reader (tests/json.h), after
 * a check that it is UTF-8, so field values are compared, not searched
 * for. The
 * live screen of `mproc top` is driven in a real terminal: a detached
 * tmux session of fixed size on a private socket (send-keys,
 * capture-pane); those tests skip, saying so, when tmux is not installed
 * (scripts/deps.sh installs it).
 *
 * The /proc parser (src/tools/procfs.c) is linked in and tested directly
 * on hostile names.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdrun.h"
#include "helpers.h"
#include "json.h"
#include "runner.h"
#include "tools/procfs.h"

#ifndef MPROC_BIN
#error "MPROC_BIN (the path of the built mproc command) must be defined"
#endif

#define MPROC(...) \
    run_with(MPROC_BIN, (char *const[]){ MPROC_BIN, __VA_ARGS__, NULL }, "")

/* ------------------------------------------------------------------ */
/* reading the JSON (tests/json.h)                                     */
/* ------------------------------------------------------------------ */

/* The JSON reader takes raw bytes in strings as they come; a document
 * must also be valid UTF-8 (RFC 8259, section 8.1). Returns the offset
 * of the first bad byte, or -1. */
static long bad_utf8_at(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; s[i] != '\0';) {
        unsigned c = s[i], cp;
        size_t n;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0)
            n = 2, cp = c & 0x1F;
        else if ((c & 0xF0) == 0xE0)
            n = 3, cp = c & 0x0F;
        else if ((c & 0xF8) == 0xF0)
            n = 4, cp = c & 0x07;
        else
            return (long)i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return (long)i;
        i += n;
    }
    return -1;
}

/* The process with this pid in an array of process objects, or NULL;
 * fails the test if it is there twice. *index: where. */
static const json *jproc(const json *arr, pid_t pid, size_t *index)
{
    CHECK_MSG(arr->kind == J_ARRAY, "not an array of processes");
    const json *found = NULL;
    for (size_t i = 0; i < arr->n; i++)
        if (json_num(arr->items[i], "pid") == (double)pid) {
            CHECK_MSG(found == NULL, "pid %d listed twice", (int)pid);
            found = arr->items[i];
            if (index != NULL)
                *index = i;
        }
    return found;
}

/* Every field each process object must have, with its type. */
static void check_proc_fields(const json *p)
{
    static const char *const numbers[] = { "pid", "ppid", "threads", "rss_kib", "nice" };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        (void)json_num(p, numbers[i]);
    CHECK(strlen(json_str(p, "state")) == 1);
    (void)json_str(p, "name");
    (void)json_str(p, "user");
    const json *cpu = json_at(p, "cpu_percent"), *uid = json_at(p, "uid");
    CHECK(cpu != NULL && (cpu->kind == J_NUMBER || cpu->kind == J_NULL));
    CHECK(uid != NULL && (uid->kind == J_NUMBER || uid->kind == J_NULL));
}

/* Parse a document mproc printed: valid UTF-8, valid JSON. */
static json *parse_output(const char *text)
{
    long bad = bad_utf8_at(text);
    CHECK_MSG(bad < 0, "not UTF-8 at byte %ld of:\n%s", bad, text);
    return json_parse(text);
}

/* Run mproc with these arguments (one of them --json), which must
 * succeed quietly; the document it printed. */
#define MPROC_JSON(...) mproc_json((char *const[]){ MPROC_BIN, __VA_ARGS__, NULL })
static json *mproc_json(char *const *argv)
{
    struct result r = run_with(MPROC_BIN, argv, "");
    expect_status(&r, 0);
    CHECK_MSG(r.err[0] == '\0', "stderr not empty:\n%s", r.err);
    json *v = parse_output(r.out);
    result_free(&r);
    return v;
}

TEST(top_utf8_check_itself)
{
    CHECK(bad_utf8_at("plain \xc3\xa9 \xf0\x9f\x98\x80") == -1);
    CHECK(bad_utf8_at("a\xff") == 1);
    CHECK(bad_utf8_at("\xc0\xaf") == 0);     /* overlong */
    CHECK(bad_utf8_at("\xed\xa0\x80") == 0); /* a surrogate */
    CHECK(bad_utf8_at("ab\xe2\x82") == 2);    /* cut short */
}

/* ------------------------------------------------------------------ */
/* children to look at                                                 */
/* ------------------------------------------------------------------ */

struct kid {
    pid_t pid;
    int release; /* closing it lets the kid finish */
};

/* The release ends of the kids alive: a kid forked later must not hold
 * them, or an earlier kid would never see its pipe close. */
static int live_releases[16];
static size_t n_live;

static void forget_release(int fd)
{
    for (size_t i = 0; i < n_live; i++)
        if (live_releases[i] == fd) {
            live_releases[i] = live_releases[--n_live];
            break;
        }
    close(fd);
}

struct kid_args {
    const char *name;
    const char *thread_name; /* non-NULL: start a thread of that name */
    size_t touch_mib;        /* memory to touch (RSS) */
    bool spin;               /* burn CPU until released */
    bool exit_now;           /* exit at once: a zombie until waited for */
    int ready_r, ready_w, hold_r, hold_w;
};

static void say_ready(int fd)
{
    char c = 'r';
    CHECK(write(fd, &c, 1) == 1);
}

/* Block until the write end of the hold pipe is closed. */
static void hold(int fd)
{
    char c;
    while (read(fd, &c, 1) != 0)
        ;
}

static void *kid_thread(void *arg)
{
    const struct kid_args *a = arg;
    prctl(PR_SET_NAME, a->thread_name, 0, 0, 0);
    say_ready(a->ready_w);
    hold(a->hold_r);
    return NULL;
}

static int kid_main(void *arg)
{
    struct kid_args *a = arg;
    close(a->ready_r);
    close(a->hold_w);
    for (size_t i = 0; i < n_live; i++)
        close(live_releases[i]);
    if (prctl(PR_SET_NAME, a->name, 0, 0, 0) != 0)
        return 3;
    if (a->touch_mib > 0) {
        size_t n = a->touch_mib << 20;
        char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return 4;
        memset(m, 1, n);
    }
    if (a->exit_now) {
        say_ready(a->ready_w);
        return 0;
    }
    if (a->thread_name != NULL) {
        pthread_t t = test_start_thread(kid_thread, a);
        test_join_thread(t);
        return 0;
    }
    say_ready(a->ready_w);
    if (a->spin) {
        struct pollfd p = { .fd = a->hold_r, .events = POLLIN };
        for (volatile unsigned long x = 0; poll(&p, 1, 0) == 0;)
            for (int i = 0; i < 1000000; i++)
                x += (unsigned long)i;
        return 0;
    }
    hold(a->hold_r);
    return 0;
}

/* Start a kid and wait until it has named itself (and its thread). */
static struct kid start_kid(struct kid_args a)
{
    int ready[2], held[2];
    CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(held, O_CLOEXEC) == 0);
    a.ready_r = ready[0];
    a.ready_w = ready[1];
    a.hold_r = held[0];
    a.hold_w = held[1];
    pid_t pid = test_fork(kid_main, &a);
    close(ready[1]);
    close(held[0]);
    char c;
    CHECK_MSG(read(ready[0], &c, 1) == 1, "kid %s did not start", a.name);
    close(ready[0]);
    CHECK(n_live < sizeof live_releases / sizeof live_releases[0]);
    live_releases[n_live++] = held[1];
    return (struct kid){ .pid = pid, .release = held[1] };
}

/* Let the kid finish, and reap it. */
static void stop_kid(struct kid *k)
{
    forget_release(k->release);
    test_expect_child_ok(k->pid);
}

/* The state letter of task `pid` in /proc, or 0 if it is gone. */
static char proc_state(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    mproc__proc p;
    if (n <= 0 || mproc__proc_parse_stat(buf, (size_t)n, &p) < 0)
        return 0;
    return p.state;
}

/* A kid that exits at once and is not waited for: a zombie, once /proc
 * says so. The caller reaps it. */
static pid_t make_zombie(const char *name)
{
    struct kid k = start_kid((struct kid_args){ .name = name, .exit_now = true });
    forget_release(k.release);
    WAIT_UNTIL(proc_state(k.pid) == 'Z', 20000);
    return k.pid;
}

static void reap(pid_t pid)
{
    int status = test_wait(pid, 20000);
    CHECK_MSG(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "kid %d: status %#x", (int)pid, status);
}

/* How many threads task `pid` has, counted in /proc/PID/task (a
 * sanitizer's runtime may add one of its own to the kids). */
static int task_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "cannot open %s", path);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static char *pid_text(pid_t pid, char *buf, size_t size)
{
    snprintf(buf, size, "%d", (int)pid);
    return buf;
}

/* The name of this process's effective user, as ps should show it. */
static void my_user(char *buf, size_t size)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw != NULL)
        snprintf(buf, size, "%s", pw->pw_name);
    else
        snprintf(buf, size, "%u", (unsigned)geteuid());
}

/* ------------------------------------------------------------------ */
/* help and usage                                                      */
/* ------------------------------------------------------------------ */

TEST(top_help)
{
    struct result all = MPROC("--help");
    expect_status(&all, 0);
    expect_has(all.out, "  ps ", "mproc --help");
    expect_has(all.out, "  top ", "mproc --help");
    result_free(&all);

    const char *cmds[] = { "ps", "top" };
    for (size_t i = 0; i < 2; i++) {
        char usage[32];
        snprintf(usage, sizeof usage, "usage: mproc %s", cmds[i]);
        struct result a = MPROC("help", (char *)cmds[i]);
        expect_status(&a, 0);
        expect_has(a.out, usage, "stdout");
        const char *options[] = { "--pid", "--name", "--user", "--state", "--sort",
                                  "--reverse", "--tree", "--threads", "--json" };
        for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
            expect_has(a.out, options[k], "stdout");
        CHECK_MSG(a.err[0] == '\0', "stderr not empty:\n%s", a.err);
        struct result b = MPROC((char *)cmds[i], "--help");
        expect_status(&b, 0);
        CHECK_MSG(strcmp(a.out, b.out) == 0, "`help %s` and `%s --help` differ", cmds[i],
                  cmds[i]);
        result_free(&a);
        result_free(&b);
    }
    struct result top = MPROC("help", "top");
    const char *top_words[] = { "--interval", "--once", "--iterations", "keys", "quit",
                                "tree", "filter" };
    for (size_t k = 0; k < sizeof top_words / sizeof top_words[0]; k++)
        expect_has(top.out, top_words[k], "mproc help top");
    result_free(&top);
    struct result ps = MPROC("help", "ps");
    expect_has(ps.out, "--no-cpu", "mproc help ps");
    result_free(&ps);
}

/* Exit status 2, the message on stderr with a pointer to the help,
 * nothing on stdout. */
static void expect_usage_error(struct result r, const char *message)
{
    expect_status(&r, 2);
    expect_has(r.err, message, "stderr");
    expect_has(r.err, "(see 'mproc help ", "stderr");
    CHECK_MSG(r.out[0] == '\0', "stdout not empty:\n%s", r.out);
    result_free(&r);
}

TEST(top_bad_options)
{
    expect_usage_error(MPROC("ps", "--frobnicate"), "unknown option '--frobnicate'");
    expect_usage_error(MPROC("ps", "extra"), "unexpected argument 'extra'");
    expect_usage_error(MPROC("ps", "--pid"), "a value must follow '--pid'");
    expect_usage_error(MPROC("ps", "--pid", "abc"), "--pid takes process ids");
    expect_usage_error(MPROC("ps", "--pid", "12,"), "--pid takes process ids");
    expect_usage_error(MPROC("ps", "--pid", "0"), "--pid takes process ids");
    expect_usage_error(MPROC("ps", "--pid=-4"), "--pid takes process ids");
    expect_usage_error(MPROC("ps", "--sort", "size"), "--sort takes pid, cpu");
    expect_usage_error(MPROC("ps", "--state", "Q"), "--state takes letters");
    expect_usage_error(MPROC("ps", "--user", "no-such-user-mproc"), "no user");
    expect_usage_error(MPROC("top", "--frobnicate"), "unknown option '--frobnicate'");
    expect_usage_error(MPROC("top", "--no-cpu"), "unknown option '--no-cpu'");
    expect_usage_error(MPROC("top", "--interval", "0"), "--interval takes seconds");
    expect_usage_error(MPROC("top", "--interval", "abc"), "--interval takes seconds");
    expect_usage_error(MPROC("top", "--interval=1e3"), "--interval takes seconds");
    expect_usage_error(MPROC("top", "--interval", "3601"), "--interval takes seconds");
    expect_usage_error(MPROC("top", "-d"), "a value must follow '-d'");
    expect_usage_error(MPROC("top", "--iterations", "0"), "--iterations takes");
    expect_usage_error(MPROC("top", "-n", "x"), "--iterations takes");
    expect_usage_error(MPROC("top", "--once", "--iterations", "3"), "--once");
}

/* ------------------------------------------------------------------ */
/* mproc ps --json: the kids, as /proc has them                        */
/* ------------------------------------------------------------------ */

TEST(ps_json_finds_sleeping_child)
{
    char name[16], pid[16], user[64];
    snprintf(name, sizeof name, "kslp%d", (int)getpid());
    struct kid k = start_kid((struct kid_args){ .name = name });
    test_wait_sleeping(k.pid, 20000);
    my_user(user, sizeof user);

    /* Everything: the kid is there once, and every object is whole. */
    json *all = MPROC_JSON("ps", "--json");
    CHECK(all->kind == J_ARRAY && all->n >= 3);
    for (size_t i = 0; i < all->n; i++)
        check_proc_fields(all->items[i]);
    const json *p = jproc(all, k.pid, NULL);
    CHECK_MSG(p != NULL, "kid %d not in `mproc ps --json`", (int)k.pid);
    CHECK(jproc(all, getpid(), NULL) != NULL);
    json_free(all);

    /* Just the kid. */
    json *one = MPROC_JSON("ps", "--json", "--pid", pid_text(k.pid, pid, sizeof pid));
    CHECK_MSG(one->kind == J_ARRAY && one->n == 1, "--pid %d gave %zu processes", (int)k.pid, one->n);
    p = one->items[0];
    CHECK_EQ(json_num(p, "pid"), k.pid);
    CHECK_EQ(json_num(p, "ppid"), getpid());
    CHECK_MSG(strcmp(json_str(p, "name"), name) == 0, "name %s, want %s", json_str(p, "name"), name);
    CHECK_MSG(strcmp(json_str(p, "state"), "S") == 0, "state %s, want S", json_str(p, "state"));
    CHECK_EQ(json_num(p, "threads"), task_count(k.pid));
    CHECK_EQ(json_num(p, "uid"), geteuid());
    CHECK_MSG(strcmp(json_str(p, "user"), user) == 0, "user %s, want %s", json_str(p, "user"), user);
    CHECK(json_num(p, "rss_kib") > 0);
    /* Asleep on a pipe the whole time: no CPU at all. */
    CHECK_MSG(json_num(p, "cpu_percent") == 0.0, "cpu_percent %.1f", json_num(p, "cpu_percent"));
    CHECK(json_at(p, "threads_list") == NULL && json_at(p, "depth") == NULL);
    json_free(one);

    /* --no-cpu: null, not a made-up 0. */
    one = MPROC_JSON("ps", "--json", "--no-cpu", "--pid", pid);
    CHECK(one->n == 1 && json_at(one->items[0], "cpu_percent")->kind == J_NULL);
    json_free(one);
    stop_kid(&k);
}

TEST(ps_json_finds_zombie)
{
    char name[16], pid[16];
    snprintf(name, sizeof name, "kzmb%d", (int)getpid());
    pid_t z = make_zombie(name);
    pid_text(z, pid, sizeof pid);

    json *one = MPROC_JSON("ps", "--json", "--pid", pid);
    CHECK_MSG(one->n == 1, "--pid %d gave %zu processes", (int)z, one->n);
    CHECK_MSG(strcmp(json_str(one->items[0], "state"), "Z") == 0, "state %s, want Z",
              json_str(one->items[0], "state"));
    CHECK_EQ(json_num(one->items[0], "ppid"), getpid());
    CHECK(strcmp(json_str(one->items[0], "name"), name) == 0);
    CHECK_EQ(json_num(one->items[0], "rss_kib"), 0);
    json_free(one);

    /* --state Z lists it, and only zombies. */
    json *zs = MPROC_JSON("ps", "--json", "--no-cpu", "--state", "Z");
    CHECK_MSG(jproc(zs, z, NULL) != NULL, "zombie %d not in --state Z", (int)z);
    for (size_t i = 0; i < zs->n; i++)
        CHECK(strcmp(json_str(zs->items[i], "state"), "Z") == 0);
    json_free(zs);

    /* The table says <defunct>, as ps does. */
    struct result r = MPROC("ps", "--no-cpu", "--pid", pid);
    expect_status(&r, 0);
    char line[64];
    snprintf(line, sizeof line, "%s <defunct>", name);
    expect_has(r.out, line, "mproc ps");
    result_free(&r);

    /* Reaped: gone. */
    reap(z);
    one = MPROC_JSON("ps", "--json", "--no-cpu", "--pid", pid);
    CHECK_MSG(one->kind == J_ARRAY && one->n == 0, "reaped zombie still listed");
    json_free(one);
}

TEST(ps_threads_lists_the_childs_thread)
{
    char name[16], tname[16], pid[16];
    snprintf(name, sizeof name, "kthr%d", (int)getpid());
    snprintf(tname, sizeof tname, "kwrk%d", (int)getpid());
    struct kid k = start_kid((struct kid_args){ .name = name, .thread_name = tname });
    pid_text(k.pid, pid, sizeof pid);

    json *one = MPROC_JSON("ps", "--json", "-T", "--pid", pid);
    CHECK(one->n == 1);
    const json *p = one->items[0];
    /* Two threads, or three where a sanitizer runs one of its own. */
    int tasks = task_count(k.pid);
    CHECK(tasks >= 2);
    CHECK_EQ(json_num(p, "threads"), tasks);
    const json *list = json_at(p, "threads_list");
    CHECK_MSG(list != NULL && list->kind == J_ARRAY && list->n == (size_t)tasks,
              "threads_list of %zu, want %d", list != NULL ? list->n : 0, tasks);
    /* The main thread (tid = pid) under the kid's name, and the thread
     * the kid started under its own. */
    const json *main_thread = NULL, *worker = NULL;
    for (size_t i = 0; i < list->n; i++) {
        if (json_num(list->items[i], "tid") == (double)k.pid)
            main_thread = list->items[i];
        if (strcmp(json_str(list->items[i], "name"), tname) == 0)
            worker = list->items[i];
        (void)json_num(list->items[i], "cpu_percent");
        if (i > 0)
            CHECK(json_num(list->items[i - 1], "tid") < json_num(list->items[i], "tid"));
    }
    CHECK_MSG(main_thread != NULL && strcmp(json_str(main_thread, "name"), name) == 0,
              "no main thread %d named %s", (int)k.pid, name);
    CHECK_MSG(worker != NULL, "no thread named %s", tname);
    double tid = json_num(worker, "tid");
    CHECK(tid != k.pid);
    /* Blocked in read(2) on the hold pipe, once it has got there. */
    test_wait_sleeping((pid_t)tid, 20000);
    json_free(one);
    one = MPROC_JSON("ps", "--json", "-T", "--pid", pid);
    list = json_at(one->items[0], "threads_list");
    for (size_t i = 0; i < list->n; i++)
        if (json_num(list->items[i], "tid") == tid)
            CHECK_MSG(strcmp(json_str(list->items[i], "state"), "S") == 0 &&
                          json_num(list->items[i], "cpu_percent") == 0.0,
                      "the sleeping thread shows %s, %.1f%%", json_str(list->items[i], "state"),
                      json_num(list->items[i], "cpu_percent"));
    json_free(one);

    /* The table: the thread on its own row, {name}, with its tid. */
    struct result r = MPROC("ps", "-T", "--no-cpu", "--pid", pid);
    expect_status(&r, 0);
    char want[32];
    snprintf(want, sizeof want, "{%s}", tname);
    const char *row = strstr(r.out, want);
    CHECK_MSG(row != NULL, "no thread row %s:\n%s", want, r.out);
    const char *bol = row;
    while (bol > r.out && bol[-1] != '\n')
        bol--;
    CHECK_MSG(strtol(bol, NULL, 10) == (long)tid, "thread row: %.*s", (int)(row - bol), bol);
    result_free(&r);
    stop_kid(&k);
}

/* The pids of `arr` in order, against `want` (n of them). */
static void expect_order(const json *arr, const pid_t *want, size_t n, const char *what)
{
    CHECK_MSG(arr->n == n, "%s: %zu processes, want %zu", what, arr->n, n);
    for (size_t i = 0; i < n; i++)
        CHECK_MSG(json_num(arr->items[i], "pid") == (double)want[i],
                  "%s: position %zu has pid %.0f, want %d", what, i,
                  json_num(arr->items[i], "pid"), (int)want[i]);
}

TEST(ps_filters_and_sort)
{
    /* Three kids, a < b < c by pid, name and size. */
    char prefix[16], upper[16], names[3][32], pids[3][16], two[40], uid[16], user[64];
    snprintf(prefix, sizeof prefix, "kf%d", (int)getpid());
    snprintf(upper, sizeof upper, "KF%d", (int)getpid());
    struct kid k[3];
    pid_t by_pid[3], by_rss[3];
    for (int i = 0; i < 3; i++) {
        snprintf(names[i], sizeof names[i], "%s%c", prefix, 'a' + i);
        k[i] = start_kid((struct kid_args){ .name = names[i], .touch_mib = 16 * (size_t)i });
        pid_text(k[i].pid, pids[i], sizeof pids[i]);
    }
    for (int i = 0; i < 3; i++) {
        by_pid[i] = k[i].pid; /* forked in order, but pids may wrap */
        by_rss[i] = k[2 - i].pid;
    }
    for (int i = 0; i < 3; i++)
        for (int j = i + 1; j < 3; j++)
            if (by_pid[j] < by_pid[i]) {
                pid_t t = by_pid[i];
                by_pid[i] = by_pid[j];
                by_pid[j] = t;
            }
    pid_t by_name[3] = { k[0].pid, k[1].pid, k[2].pid };
    pid_t by_name_rev[3] = { k[2].pid, k[1].pid, k[0].pid };
    pid_t by_rss_rev[3] = { k[0].pid, k[1].pid, k[2].pid };

    json *v = MPROC_JSON("ps", "--json", "--no-cpu", "--name", prefix);
    expect_order(v, by_pid, 3, "--name (sorted by pid)");
    json_free(v);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--name", upper, "--sort", "name");
    expect_order(v, by_name, 3, "--name in capitals --sort name");
    json_free(v);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--name", prefix, "--sort", "name", "-r");
    expect_order(v, by_name_rev, 3, "--sort name -r");
    json_free(v);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--name", prefix, "--sort=rss");
    expect_order(v, by_rss, 3, "--sort rss");
    json_free(v);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--name", prefix, "-s", "mem", "--reverse");
    expect_order(v, by_rss_rev, 3, "--sort mem --reverse");
    json_free(v);

    /* --pid: a list, repeated, or one. */
    snprintf(two, sizeof two, "%s,%s", pids[2], pids[0]);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--pid", two);
    CHECK(v->n == 2 && jproc(v, k[0].pid, NULL) != NULL && jproc(v, k[2].pid, NULL) != NULL);
    json_free(v);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "-p", pids[1], "--pid", pids[2]);
    CHECK(v->n == 2 && jproc(v, k[1].pid, NULL) != NULL && jproc(v, k[2].pid, NULL) != NULL);
    json_free(v);

    /* --user, by number and by name, with the others (AND). */
    snprintf(uid, sizeof uid, "%u", (unsigned)geteuid());
    my_user(user, sizeof user);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--user", uid, "--name", prefix);
    CHECK(v->n == 3);
    json_free(v);
    v = MPROC_JSON("ps", "--json", "--no-cpu", "-u", user, "--pid", pids[1]);
    CHECK(v->n == 1);
    json_free(v);
    /* A filter nothing passes: an empty array, still valid JSON. */
    v = MPROC_JSON("ps", "--json", "--no-cpu", "--name", prefix, "--state", "Z");
    CHECK(v->kind == J_ARRAY && v->n == 0);
    json_free(v);

    /* The table, filtered: a header line and exactly the three kids. */
    struct result r = MPROC("ps", "--no-cpu", "--name", prefix);
    expect_status(&r, 0);
    CHECK_MSG(strncmp(r.out, "    PID    PPID USER", 20) == 0, "table head:\n%s", r.out);
    int lines = 0;
    for (const char *c = r.out; *c != '\0'; c++)
        lines += *c == '\n';
    CHECK_MSG(lines == 4, "want a head and 3 rows:\n%s", r.out);
    for (int i = 0; i < 3; i++)
        expect_has(r.out, names[i], "the table");
    result_free(&r);

    for (int i = 0; i < 3; i++)
        stop_kid(&k[i]);
}

TEST(ps_tree_shows_child_under_test)
{
    char name[16], me[16], pid[16], both[40];
    snprintf(name, sizeof name, "ktre%d", (int)getpid());
    struct kid k = start_kid((struct kid_args){ .name = name });
    pid_text(getpid(), me, sizeof me);
    pid_text(k.pid, pid, sizeof pid);

    /* The whole tree: the kid comes after the test, one level deeper,
     * before anything that is not below the test. */
    json *all = MPROC_JSON("ps", "--json", "--no-cpu", "--tree");
    size_t at_me = 0, at_kid = 0;
    CHECK(jproc(all, getpid(), &at_me) != NULL);
    CHECK(jproc(all, k.pid, &at_kid) != NULL);
    double depth = json_num(all->items[at_me], "depth");
    CHECK_MSG(at_kid > at_me, "kid at %zu, test at %zu", at_kid, at_me);
    for (size_t i = at_me + 1; i < at_kid; i++)
        CHECK_MSG(json_num(all->items[i], "depth") > depth, "the kid is not below the test");
    CHECK_EQ(json_num(all->items[at_kid], "depth"), depth + 1);
    /* Every process is there once, each child after its parent. */
    for (size_t i = 0; i < all->n; i++) {
        size_t at_parent;
        const json *parent = jproc(all, (pid_t)json_num(all->items[i], "ppid"), &at_parent);
        if (parent != NULL && json_num(all->items[i], "ppid") != json_num(all->items[i], "pid"))
            CHECK_MSG(at_parent < i && json_num(all->items[i], "depth") ==
                                           json_num(parent, "depth") + 1,
                      "pid %.0f is not right under its parent", json_num(all->items[i], "pid"));
    }
    json_free(all);

    /* Filtered to the two: the test at the top level, the kid under it. */
    snprintf(both, sizeof both, "%s,%s", pid, me);
    struct result r = MPROC("ps", "--no-cpu", "--tree", "--pid", both);
    expect_status(&r, 0);
    const char *l1 = strchr(r.out, '\n');
    CHECK(l1 != NULL);
    l1++;
    CHECK_MSG(strtol(l1, NULL, 10) == getpid(), "first row is not the test:\n%s", r.out);
    const char *l2 = strchr(l1, '\n');
    CHECK(l2 != NULL);
    l2++;
    char want[32];
    snprintf(want, sizeof want, " \\_ %s\n", name);
    CHECK_MSG(strtol(l2, NULL, 10) == k.pid && strstr(l2, want) != NULL,
              "second row is not the kid, indented:\n%s", r.out);
    result_free(&r);
    stop_kid(&k);
}

TEST_T(ps_cpu_percent_of_a_spinning_child, 60)
{
    char sname[16], wname[16], both[40];
    snprintf(sname, sizeof sname, "kspn%d", (int)getpid());
    snprintf(wname, sizeof wname, "kwai%d", (int)getpid());
    struct kid spin = start_kid((struct kid_args){ .name = sname, .spin = true });
    struct kid idle = start_kid((struct kid_args){ .name = wname });
    test_wait_sleeping(idle.pid, 20000);
    snprintf(both, sizeof both, "%d,%d", (int)idle.pid, (int)spin.pid);

    /* The spinner needs a core to show CPU%; on a crowded machine a
     * 0.2 s look may catch it waiting. Look again until it shows, for
     * up to 30 s; the sleeper must show 0 every time. */
    int64_t end = test_now_ms() + 30000;
    for (int tries = 1;; tries++) {
        json *v = MPROC_JSON("ps", "--json", "--pid", both, "--sort", "cpu");
        CHECK(v->n == 2);
        const json *s = jproc(v, spin.pid, NULL), *w = jproc(v, idle.pid, NULL);
        CHECK_MSG(json_num(w, "cpu_percent") == 0.0, "sleeper at %.1f%%", json_num(w, "cpu_percent"));
        double cpu = json_num(s, "cpu_percent");
        bool first = json_num(v->items[0], "pid") == (double)spin.pid;
        json_free(v);
        CHECK_MSG(cpu <= 100.0 * (double)sysconf(_SC_NPROCESSORS_ONLN) + 5,
                  "spinner at %.1f%%", cpu);
        if (cpu > 0) {
            CHECK_MSG(first, "--sort cpu did not put the spinner first");
            break;
        }
        CHECK_MSG(test_now_ms() < end, "spinner at 0%% CPU in %d looks", tries);
    }
    stop_kid(&spin);
    stop_kid(&idle);
}

TEST(ps_json_escapes_hostile_names)
{
    /* Quotes, backslash, parentheses, a control character, a byte that
     * is not UTF-8: 15 bytes, the most a name holds. */
    static const char hostile[] = "q\"\\) (x\x01\t\xff)z";
    struct kid k = start_kid((struct kid_args){ .name = hostile });
    char pid[16];
    pid_text(k.pid, pid, sizeof pid);
    json *v = MPROC_JSON("ps", "--json", "--no-cpu", "-T", "--pid", pid);
    CHECK(v->n == 1);
    /* Decoded: the same bytes, but U+FFFD for the broken one. */
    const char *want = "q\"\\) (x\x01\t\xef\xbf\xbd)z";
    CHECK_MSG(strcmp(json_str(v->items[0], "name"), want) == 0, "name decoded as \"%s\"",
              json_str(v->items[0], "name"));
    CHECK_EQ(json_num(v->items[0], "pid"), k.pid);
    CHECK(strcmp(json_str(v->items[0], "state"), "S") == 0);
    json_free(v);
    /* The table never passes control bytes on to the terminal. */
    struct result r = MPROC("ps", "--no-cpu", "--pid", pid);
    expect_status(&r, 0);
    expect_has(r.out, "q\"\\) (x\?\?\?)z", "the table");
    for (const char *c = r.out; *c != '\0'; c++)
        CHECK_MSG(*c == '\n' || (unsigned char)*c >= 0x20, "control byte %#x in the table",
                  (unsigned)(unsigned char)*c);
    result_free(&r);
    stop_kid(&k);
}

/* ------------------------------------------------------------------ */
/* the /proc parser itself                                             */
/* ------------------------------------------------------------------ */

/* A stat line for `name`, as the kernel writes it. */
static size_t stat_line(char *buf, size_t size, const char *name, size_t name_len)
{
    int n = snprintf(buf, size, "4242 (");
    memcpy(buf + n, name, name_len);
    n += (int)name_len;
    n += snprintf(buf + n, size - (size_t)n,
                  ") Z 17 4242 4242 0 -1 4194308 1 0 0 0 31 12 0 0 20 -5 3 0 987654 0 0 "
                  "18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n");
    return (size_t)n;
}

TEST(procfs_parse_stat_names_with_parens)
{
    const char *names[] = { "plain", "Web Content", "a) b (c", ") S 99 (", "))", "",
                            "new\nline", "x) R 1 2 3" };
    char buf[512];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t len = stat_line(buf, sizeof buf, names[i], strlen(names[i]));
        mproc__proc p = { .pid = 0 };
        CHECK_OK(mproc__proc_parse_stat(buf, len, &p));
        CHECK_MSG(strcmp(p.name, names[i]) == 0, "name \"%s\", want \"%s\"", p.name, names[i]);
        CHECK_EQ(p.pid, 4242);
        CHECK_EQ(p.state, 'Z');
        CHECK_EQ(p.ppid, 17);
        CHECK_EQ(p.ticks, 43);
        CHECK_EQ(p.nice, -5);
        CHECK_EQ(p.threads, 3);
        CHECK_EQ(p.start, 987654);
    }
    /* A name longer than the buffer is cut, not overflowed. */
    char longname[200];
    memset(longname, 'n', sizeof longname);
    size_t len = stat_line(buf, sizeof buf, longname, sizeof longname);
    mproc__proc p;
    CHECK_OK(mproc__proc_parse_stat(buf, len, &p));
    CHECK_EQ(strlen(p.name), MPROC__PROC_NAME - 1);
    CHECK_EQ(p.threads, 3);
}

TEST(procfs_parse_stat_rejects_garbage)
{
    const char *bad[] = { "", "4242", "4242 (x", "4242 x) S 1", "(x) S 1 2",
                          "-3 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
                          "4242 (x) S 1 2 3",   /* cut short */
                          "4242 (x) 7 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
                          "4242 (x)  S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
                          "4242 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 "
                          "99999999999999999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mproc__proc p = { .pid = 7 };
        CHECK_MSG(mproc__proc_parse_stat(bad[i], strlen(bad[i]), &p) == -EINVAL,
                  "accepted: %s", bad[i]);
        CHECK_EQ(p.pid, 7);
    }
    CHECK_RC(mproc__proc_parse_stat(NULL, 0, NULL), -EINVAL);
}

TEST(procfs_parse_status)
{
    static const char status[] = "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\n"
                                 "Uid:\t1000\t1001\t1002\t1003\nGid:\t5\t5\t5\t5\n"
                                 "VmPeak:\t  9999 kB\nVmRSS:\t    1234 kB\nThreads:\t2\n";
    mproc__proc p = { .pid = 1 };
    mproc__proc_parse_status(status, sizeof status - 1, &p);
    CHECK_EQ(p.uid, 1001); /* the effective one */
    CHECK_EQ(p.rss_kib, 1234);
    /* A kernel thread or a zombie: no VmRSS. */
    static const char bare[] = "Name:\tkthreadd\nUid:\t0\t0\t0\t0\n";
    mproc__proc_parse_status(bare, sizeof bare - 1, &p);
    CHECK_EQ(p.uid, 0);
    CHECK_EQ(p.rss_kib, 0);
    mproc__proc_parse_status("", 0, &p);
    CHECK_EQ(p.uid, -1);
}

TEST(procfs_scan_sees_this_process)
{
    mproc__proc_list l = { .procs = NULL };
    CHECK_OK(mproc__proc_scan(&l, true));
    const mproc__proc *me = mproc__proc_find(&l, getpid());
    CHECK(me != NULL && me->ppid == getppid() && me->ntasks >= 1);
    CHECK(me->ntasks == (size_t)task_count(getpid()));
    bool main_thread = false;
    for (size_t i = 0; i < me->ntasks; i++)
        main_thread |= me->tasks[i].tid == getpid();
    CHECK(main_thread);
    for (size_t i = 1; i < l.count; i++)
        CHECK(l.procs[i - 1].pid < l.procs[i].pid);
    mproc__proc_list_free(&l);
    CHECK(l.procs == NULL && l.count == 0);
}

/* ------------------------------------------------------------------ */
/* mproc top without a terminal: snapshots                             */
/* ------------------------------------------------------------------ */

TEST(top_once_prints_header_and_table)
{
    char name[16], pid[16];
    snprintf(name, sizeof name, "kone%d", (int)getpid());
    pid_t z = make_zombie(name);
    pid_text(z, pid, sizeof pid);

    /* stdout is a file: a snapshot, not the screen. */
    struct result r = MPROC("top", "--pid", pid);
    expect_status(&r, 0);
    CHECK_MSG(strncmp(r.out, "mproc top - ", 12) == 0, "no header:\n%s", r.out);
    const char *words[] = { "load average", "Processes: ", "zombie", "threads", "CPU: ",
                            "Memory: ", "Sort: cpu", "Every: 1.0 s",
                            "    PID    PPID USER", " <defunct>" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        expect_has(r.out, words[i], "mproc top");
    CHECK_MSG(strchr(r.out, '\033') == NULL, "escape sequences in a snapshot:\n%s", r.out);
    result_free(&r);

    /* Two snapshots, --interval apart. */
    r = MPROC("top", "--iterations", "2", "--interval", "0.1", "--pid", pid, "--tree");
    expect_status(&r, 0);
    const char *second = strstr(r.out + 1, "\nmproc top - ");
    CHECK_MSG(second != NULL && strstr(second + 1, "\nmproc top - ") == NULL,
              "want two snapshots:\n%s", r.out);
    expect_has(r.out, "Every: 0.1 s", "mproc top");
    expect_has(r.out, "Tree: on", "mproc top");
    result_free(&r);

    /* JSON: the totals count the zombie; the process list has it. */
    json *v = MPROC_JSON("top", "--once", "--json", "--state", "Z", "--interval", "0.3");
    CHECK(strcmp(json_str(v, "command"), "top") == 0);
    const json *totals = json_at(v, "totals");
    CHECK(totals != NULL);
    CHECK(json_num(totals, "zombies") >= 1);
    CHECK(json_num(totals, "processes") >= json_num(totals, "zombies") + 2);
    CHECK(json_num(totals, "threads") >= json_num(totals, "processes"));
    CHECK(json_num(v, "cpus") >= 1);
    CHECK(json_num(v, "mem_total_kib") > 0);
    const json *load = json_at(v, "load_average");
    CHECK(load != NULL && load->kind == J_ARRAY && load->n == 3);
    const json *procs = json_at(v, "processes");
    CHECK(procs != NULL && jproc(procs, z, NULL) != NULL);
    for (size_t i = 0; i < procs->n; i++) {
        check_proc_fields(procs->items[i]);
        CHECK(strcmp(json_str(procs->items[i], "state"), "Z") == 0);
    }
    json_free(v);
    reap(z);
}

TEST(top_json_iterations_one_object_per_line)
{
    struct result r = MPROC("top", "--json", "-n", "3", "-d", "0.1", "--pid", "1");
    expect_status(&r, 0);
    int lines = 0;
    for (char *l = r.out, *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1, lines++) {
        *nl = '\0';
        json *v = parse_output(l);
        CHECK(json_at(v, "processes") != NULL && json_at(v, "totals") != NULL);
        json_free(v);
    }
    CHECK_MSG(lines == 3, "%d JSON lines, want 3", lines);
    result_free(&r);
}

/* ------------------------------------------------------------------ */
/* mproc top in a real terminal (tmux)                                 */
/* ------------------------------------------------------------------ */

struct tmux {
    char socket[64];
    char script[128];
};

/* Run `tmux -L socket -f /dev/null ARGS...` (NULL-terminated). */
#define TMUX(t, ...) tmux_run((t), (const char *const[]){ __VA_ARGS__, NULL })
static struct result tmux_run(const struct tmux *t, const char *const *args)
{
    const char *argv[16] = { "tmux", "-L", t->socket, "-f", "/dev/null" };
    size_t n = 5;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return run_with("tmux", (char *const *)argv, "");
}

static bool have_tmux(void)
{
    struct result r = run_with("tmux", (char *const[]){ "tmux", "-V", NULL }, "");
    bool ok = r.status == 0;
    result_free(&r);
    if (!ok)
        printf("SKIP: tmux is not installed (scripts/deps.sh installs it); the live "
               "`mproc top` screen is not tested\n");
    return ok;
}

/* What the pane shows now (malloc'd). */
static char *screen(const struct tmux *t)
{
    struct result r = TMUX(t, "capture-pane", "-p", "-t", "top");
    CHECK_MSG(r.status == 0, "capture-pane failed: %s", r.err);
    free(r.err);
    return r.out;
}

/* A pane variable, like alternate_on. */
static char *pane_var(const struct tmux *t, const char *format)
{
    struct result r = TMUX(t, "display-message", "-p", "-t", "top", format);
    CHECK_MSG(r.status == 0, "display-message failed: %s", r.err);
    free(r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    return r.out;
}

static void send_keys(const struct tmux *t, const char *keys, bool literal)
{
    struct result r = literal ? TMUX(t, "send-keys", "-t", "top", "-l", keys)
                              : TMUX(t, "send-keys", "-t", "top", keys);
    CHECK_MSG(r.status == 0, "send-keys %s failed: %s", keys, r.err);
    result_free(&r);
}

/* Wait (up to 30 s) until the screen holds every one of the texts
 * (NULL-terminated); returns that screen. */
#define WAIT_SCREEN(t, ...) wait_screen((t), (const char *const[]){ __VA_ARGS__, NULL })
static char *wait_screen(const struct tmux *t, const char *const *texts)
{
    int64_t end = test_now_ms() + 30000;
    for (;;) {
        char *s = screen(t);
        bool all = true;
        for (size_t i = 0; texts[i] != NULL && all; i++)
            all = strstr(s, texts[i]) != NULL;
        if (all)
            return s;
        if (test_now_ms() > end) {
            CHECK_MSG(0, "the screen never showed \"%s\"...; it shows:\n%s", texts[0], s);
        }
        free(s);
        usleep(50000);
    }
}

/* The table rows on a screen of mproc top: the lines after the column
 * head up to the first empty line. Returns how many; *first: the first. */
static int table_rows(const char *s, const char **first)
{
    const char *head = strstr(s, "    PID    PPID USER");
    CHECK_MSG(head != NULL, "no column head:\n%s", s);
    const char *l = strchr(head, '\n');
    int n = 0;
    *first = l != NULL ? l + 1 : NULL;
    while (l != NULL && l[1] != '\n' && l[1] != '\0' && strncmp(l + 1, "q quit", 6) != 0) {
        n++;
        l = strchr(l + 1, '\n');
    }
    return n;
}

/* The terminal modes `stty -a` printed on the screen: canonical input
 * and echo both on again. */
static void expect_sane_terminal(const char *s)
{
    bool icanon = false, echo = false;
    char *copy = strdup(s), *save = NULL;
    CHECK(copy != NULL);
    for (char *w = strtok_r(copy, " ;\n", &save); w != NULL; w = strtok_r(NULL, " ;\n", &save)) {
        CHECK_MSG(strcmp(w, "-icanon") != 0 && strcmp(w, "-echo") != 0,
                  "the terminal was left with %s:\n%s", w, s);
        icanon |= strcmp(w, "icanon") == 0;
        echo |= strcmp(w, "echo") == 0;
    }
    free(copy);
    CHECK_MSG(icanon && echo, "no icanon/echo in stty -a:\n%s", s);
}

/* Start `mproc top --interval 0.2` in a detached 120x40 session on a
 * socket of its own. After it ends, the pane prints its exit status and
 * `stty -a`, then lingers 30 s for the test to read them. */
static void tmux_start(struct tmux *t, const char *tag)
{
    snprintf(t->socket, sizeof t->socket, "mproc-test-%s-%d", tag, (int)getpid());
    snprintf(t->script, sizeof t->script, "/tmp/mproc-test-%s-%d.sh", tag, (int)getpid());
    FILE *f = fopen(t->script, "w");
    CHECK_MSG(f != NULL, "cannot write %s", t->script);
    /* --iterations bounds it (600 x 0.2 s) if the test dies midway. */
    /* The trap keeps this shell alive through Ctrl-C (it is in the
     * terminal's foreground group with top); top gets SIGINT's default. */
    fprintf(f, "trap 'true' INT\n"
               "'%s' top --interval 0.2 --iterations 600\n"
               "echo \"mproc-exit=$?\"\n"
               "stty -a\n"
               "sleep 30\n",
            MPROC_BIN);
    CHECK(fclose(f) == 0);
    char cmd[192];
    snprintf(cmd, sizeof cmd, "sh %s", t->script);
    unsetenv("TMUX"); /* tests run inside tmux too */
    struct result r = TMUX(t, "new-session", "-d", "-s", "top", "-x", "120", "-y", "40", cmd);
    CHECK_MSG(r.status == 0, "tmux new-session failed (%d): %s", r.status, r.err);
    result_free(&r);
}

/* Always: the server goes (with the session and whatever runs in it). */
static void tmux_stop(struct tmux *t)
{
    struct result r = TMUX(t, "kill-server");
    result_free(&r);
    unlink(t->script);
}

struct live_args {
    struct tmux *t;
    pid_t kid;
    const char *kid_name;
    int quit_by; /* 'q', SIGINT (Ctrl-C) or SIGTERM (kill) */
};

/* The pid of `mproc top` in the pane: the child of the pane's shell. */
static pid_t top_pid(const struct tmux *t)
{
    char *pane = pane_var(t, "#{pane_pid}");
    long sh = strtol(pane, NULL, 10);
    free(pane);
    mproc__proc_list l = { .procs = NULL };
    CHECK_OK(mproc__proc_scan(&l, false));
    pid_t pid = 0;
    for (size_t i = 0; i < l.count; i++)
        if (l.procs[i].ppid == sh && strcmp(l.procs[i].name, "mproc") == 0)
            pid = l.procs[i].pid;
    mproc__proc_list_free(&l);
    CHECK_MSG(pid > 0, "no mproc process under the pane's shell %ld", sh);
    return pid;
}

/* The live test proper, in a helper process, so the parent can always
 * stop the tmux server whatever fails here. */
static int live_main(void *arg)
{
    const struct live_args *a = arg;
    const struct tmux *t = a->t;
    char *s = WAIT_SCREEN(t, "mproc top - ", "Processes: ", "    PID    PPID USER",
                          "Every: 0.2 s", "q quit");
    free(s);
    char *alt = pane_var(t, "#{alternate_on}");
    CHECK_MSG(strcmp(alt, "1") == 0, "not on the alternate screen (%s)", alt);
    free(alt);

    /* p: by pid, so the smallest pid of /proc heads the table. */
    mproc__proc_list l = { .procs = NULL };
    CHECK_OK(mproc__proc_scan(&l, false));
    CHECK(l.count > 0);
    int lowest = l.procs[0].pid;
    mproc__proc_list_free(&l);
    send_keys(t, "p", true);
    s = WAIT_SCREEN(t, "Sort: pid (smallest first)");
    const char *first;
    CHECK_MSG(table_rows(s, &first) >= 1 && strtol(first, NULL, 10) == lowest,
              "pid %d does not head the table:\n%s", lowest, s);
    free(s);

    /* m: by memory, r: the other way. */
    send_keys(t, "m", true);
    free(WAIT_SCREEN(t, "Sort: rss (largest first)"));
    send_keys(t, "r", true);
    free(WAIT_SCREEN(t, "Sort: rss (smallest first)"));

    /* /name Enter: only the kid is left. */
    char filter[64];
    snprintf(filter, sizeof filter, "Filter: name~\"%s\"", a->kid_name);
    send_keys(t, "/", true);
    free(WAIT_SCREEN(t, "Filter by name"));
    send_keys(t, a->kid_name, true);
    send_keys(t, "Enter", false);
    s = WAIT_SCREEN(t, filter);
    int rows = table_rows(s, &first);
    CHECK_MSG(rows == 1 && strtol(first, NULL, 10) == a->kid &&
                  strstr(first, a->kid_name) != NULL,
              "want only the kid %d on the screen:\n%s", (int)a->kid, s);
    free(s);
    /* Refreshed on its own: CPU% measured (the first frame has '-'),
     * 0.0 for a kid asleep on a pipe. */
    free(WAIT_SCREEN(t, "   0.0 ", a->kid_name));
    /* + and -: the interval steps. */
    send_keys(t, "+", true);
    free(WAIT_SCREEN(t, "Every: 0.5 s"));
    send_keys(t, "-", true);
    free(WAIT_SCREEN(t, "Every: 0.2 s"));
    /* T: the tree, still only it; z: only zombies, none of them. */
    send_keys(t, "T", true);
    s = WAIT_SCREEN(t, "Tree: on");
    CHECK_MSG(table_rows(s, &first) == 1 && strtol(first, NULL, 10) == a->kid,
              "tree view:\n%s", s);
    free(s);
    send_keys(t, "z", true);
    free(WAIT_SCREEN(t, "state=Z", "(no process matches)"));
    send_keys(t, "z", true);
    int64_t end = test_now_ms() + 30000;
    for (;;) {
        s = screen(t);
        if (strstr(s, "state=Z") == NULL && table_rows(s, &first) == 1 &&
            strtol(first, NULL, 10) == a->kid)
            break;
        CHECK_MSG(test_now_ms() < end, "z did not bring the kid back:\n%s", s);
        free(s);
        usleep(50000);
    }
    free(s);

    /* Quit: the exit status, and the terminal as it was. */
    if (a->quit_by == SIGINT)
        send_keys(t, "C-c", false);
    else if (a->quit_by == SIGTERM)
        CHECK(kill(top_pid(t), SIGTERM) == 0);
    else
        send_keys(t, "q", true);
    s = WAIT_SCREEN(t, "mproc-exit=", "speed ", " iexten ");
    expect_has(s, a->quit_by == SIGINT ? "mproc-exit=130" : a->quit_by == SIGTERM
                  ? "mproc-exit=143" : "mproc-exit=0", "the pane");
    CHECK_MSG(strstr(s, "mproc top - ") == NULL, "the top screen is still there:\n%s", s);
    expect_sane_terminal(s);
    free(s);
    alt = pane_var(t, "#{alternate_on} #{cursor_flag}");
    CHECK_MSG(strcmp(alt, "0 1") == 0, "alternate screen, cursor: %s (want 0 1)", alt);
    free(alt);
    return 0;
}

static void live_test(const char *tag, int quit_by)
{
    if (!have_tmux())
        return;
    char name[16];
    snprintf(name, sizeof name, "klv%d", (int)getpid());
    struct kid k = start_kid((struct kid_args){ .name = name });
    struct tmux t;
    tmux_start(&t, tag);
    struct live_args a = { .t = &t, .kid = k.pid, .kid_name = name, .quit_by = quit_by };
    pid_t helper = test_fork(live_main, &a);
    int status = test_wait(helper, 100000);
    if (status == -1) {
        kill(helper, SIGKILL);
        waitpid(helper, &status, 0);
    }
    tmux_stop(&t);
    stop_kid(&k);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the live test failed (status %#x; see above)", status);
}

TEST_T(top_live_in_tmux_quit_with_q, 120)
{
    live_test("q", 'q');
}

TEST_T(top_live_in_tmux_ctrl_c_restores_terminal, 120)
{
    live_test("int", SIGINT);
}

TEST_T(top_live_in_tmux_sigterm_restores_terminal, 120)
{
    live_test("term", SIGTERM);
}
