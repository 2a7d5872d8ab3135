/*
 * tools/procfs.c -- processes and threads read from /proc (proc(5)), the
 * counterpart of the notes' mini-htop (seed 001, "Laboratorio: Monitor de
 * Procesos Low-Level"), which splits /proc/PID/stat on spaces. That breaks
 * on names with spaces or parentheses ("(sd-pam)", "Web Content"): the
 * name runs from the first '(' to the LAST ')' of the line, and the fields
 * after it are counted from there.
 *
 * A scan lists /proc/[0-9]*, then reads each process's stat and status
 * (and task/TID/stat for its threads). A process may exit at any moment
 * in between: a file that cannot be opened or read, or that reads empty,
 * drops that process (or thread) from the scan, silently. Only failing
 * to list /proc itself, or to allocate, is an error.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mproc.h>

#include "procfs.h"

/* stat is a few hundred bytes; status about 1.5 KB, and Uid and VmRSS
 * come in its first kilobyte. */
#define STAT_MAX 1024
#define STATUS_MAX 4096

/* Read at most cap - 1 bytes of `path` into buf (NUL-terminated).
 * Returns the length, or -errno (ENOENT or ESRCH when the process is
 * gone). */
static ssize_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* A whole decimal number at *s (no sign unless `sign`), moving *s past
 * it. Returns false if there is none. */
static bool take_number(const char **s, const char *end, bool sign, long long *out)
{
    const char *c = *s;
    bool neg = false;
    if (sign && c < end && *c == '-') {
        neg = true;
        c++;
    }
    if (c >= end || !isdigit((unsigned char)*c))
        return false;
    unsigned long long v = 0;
    for (; c < end && isdigit((unsigned char)*c); c++) {
        unsigned d = (unsigned)(*c - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v > (unsigned long long)LLONG_MAX)
        return false;
    *out = neg ? -(long long)v : (long long)v;
    *s = c;
    return true;
}

/* The fields of stat after the name, numbered as in proc(5). */
enum {
    F_STATE = 3, F_PPID = 4, F_UTIME = 14, F_STIME = 15, F_NICE = 19,
    F_THREADS = 20, F_START = 22, F_LAST = F_START,
};

int mproc__proc_parse_stat(const char *text, size_t len, mproc__proc *p)
{
    if (text == NULL || p == NULL)
        return -EINVAL;
    const char *end = text + len, *c = text;
    long long pid;
    if (!take_number(&c, end, false, &pid) || pid <= 0 || pid > INT32_MAX)
        return -EINVAL;
    if (end - c < 2 || c[0] != ' ' || c[1] != '(')
        return -EINVAL;
    const char *name = c + 2;
    const char *close_paren = NULL;
    for (const char *k = end; k > name;)
        if (*--k == ')') {
            close_paren = k;
            break;
        }
    if (close_paren == NULL)
        return -EINVAL;

    /* The fields after the name: " S ppid ...", one space apart. */
    long long f[F_LAST + 1] = { 0 };
    char state = 0;
    c = close_paren + 1;
    for (int i = F_STATE; i <= F_LAST; i++) {
        if (c >= end || *c != ' ')
            return -EINVAL;
        c++;
        if (i == F_STATE) {
            if (c >= end || !isalpha((unsigned char)*c))
                return -EINVAL;
            state = *c++;
        } else if (!take_number(&c, end, true, &f[i])) {
            return -EINVAL;
        }
    }
    if (f[F_PPID] < 0 || f[F_UTIME] < 0 || f[F_STIME] < 0 || f[F_THREADS] < 0 ||
        f[F_START] < 0)
        return -EINVAL;

    p->pid = (int)pid;
    size_t n = (size_t)(close_paren - name);
    if (n > MPROC__PROC_NAME - 1)
        n = MPROC__PROC_NAME - 1;
    memcpy(p->name, name, n);
    p->name[n] = '\0';
    p->state = state;
    p->ppid = f[F_PPID] > INT32_MAX ? 0 : (int)f[F_PPID];
    p->ticks = (uint64_t)f[F_UTIME] + (uint64_t)f[F_STIME];
    p->nice = (int)(f[F_NICE] < -100 ? -100 : f[F_NICE] > 100 ? 100 : f[F_NICE]);
    p->threads = f[F_THREADS] > UINT32_MAX ? UINT32_MAX : (unsigned)f[F_THREADS];
    p->start = (uint64_t)f[F_START];
    return 0;
}

/* The value after "\n<key>:" in a status text, skipping blanks, or NULL. */
static const char *status_field(const char *text, size_t len, const char *key)
{
    size_t klen = strlen(key);
    for (const char *c = text; c < text + len;) {
        const char *nl = memchr(c, '\n', (size_t)(text + len - c));
        const char *line_end = nl != NULL ? nl : text + len;
        if ((size_t)(line_end - c) > klen && memcmp(c, key, klen) == 0 && c[klen] == ':') {
            const char *v = c + klen + 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            return v;
        }
        if (nl == NULL)
            break;
        c = nl + 1;
    }
    return NULL;
}

void mproc__proc_parse_status(const char *text, size_t len, mproc__proc *p)
{
    const char *end = text + len;
    long long v;
    p->uid = -1;
    p->rss_kib = 0;
    /* "Uid:\treal\teffective\tsaved\tfs": the effective one, as ps shows. */
    const char *u = status_field(text, len, "Uid");
    if (u != NULL && take_number(&u, end, false, &v)) {
        while (u < end && (*u == ' ' || *u == '\t'))
            u++;
        if (take_number(&u, end, false, &v))
            p->uid = v;
    }
    const char *r = status_field(text, len, "VmRSS");
    if (r != NULL && take_number(&r, end, false, &v))
        p->rss_kib = (uint64_t)v;
}

static int cmp_task(const void *a, const void *b)
{
    const mproc__task *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

static int cmp_proc(const void *a, const void *b)
{
    const mproc__proc *x = a, *y = b;
    return (x->pid > y->pid) - (x->pid < y->pid);
}

/* A whole positive number naming a /proc entry, or 0. */
static int entry_number(const char *s)
{
    long long v = 0;
    const char *c = s;
    if (!take_number(&c, c + strlen(c), false, &v) || *c != '\0' || v <= 0 ||
        v > INT32_MAX)
        return 0;
    return (int)v;
}

/* Read the threads of p from /proc/PID/task. Returns 0 or -ENOMEM; a
 * process that has gone just gets no threads. */
static int read_tasks(mproc__proc *p)
{
    char path[64], buf[STAT_MAX];
    snprintf(path, sizeof path, "/proc/%d/task", p->pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int tid = entry_number(e->d_name);
        if (tid == 0)
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%d/stat", p->pid, tid);
        ssize_t n = read_file(path, buf, sizeof buf);
        mproc__proc t;
        if (n <= 0 || mproc__proc_parse_stat(buf, (size_t)n, &t) < 0)
            continue; /* the thread has ended */
        if (p->ntasks == cap) {
            size_t ncap = cap == 0 ? 4 : 2 * cap;
            mproc__task *nt = realloc(p->tasks, ncap * sizeof *nt);
            if (nt == NULL) {
                rc = -ENOMEM;
                break;
            }
            p->tasks = nt;
            cap = ncap;
        }
        mproc__task *k = &p->tasks[p->ntasks++];
        *k = (mproc__task){ .tid = tid, .state = t.state, .ticks = t.ticks,
                            .start = t.start, .cpu_percent = -1.0 };
        memcpy(k->name, t.name, sizeof k->name);
    }
    closedir(d);
    if (p->ntasks > 1)
        qsort(p->tasks, p->ntasks, sizeof *p->tasks, cmp_task);
    return rc;
}

/* Read process pid into *p. Returns 1 when read, 0 when it is gone (or
 * unreadable), -ENOMEM. */
static int read_proc(int pid, bool threads, mproc__proc *p)
{
    char path[64], buf[STATUS_MAX];
    *p = (mproc__proc){ .uid = -1, .cpu_percent = -1.0 };
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    ssize_t n = read_file(path, buf, STAT_MAX);
    if (n <= 0 || mproc__proc_parse_stat(buf, (size_t)n, p) < 0 || p->pid != pid)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    n = read_file(path, buf, sizeof buf);
    if (n <= 0)
        return 0;
    mproc__proc_parse_status(buf, (size_t)n, p);
    if (threads) {
        int rc = read_tasks(p);
        if (rc < 0) {
            free(p->tasks);
            p->tasks = NULL;
            return rc;
        }
    }
    return 1;
}

int mproc__proc_scan(mproc__proc_list *out, bool threads)
{
    if (out == NULL)
        return -EINVAL;
    *out = (mproc__proc_list){ .when_ns = mproc_now_ns(), .with_threads = threads };
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -errno;
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (e == NULL)
            break;
        int pid = entry_number(e->d_name);
        if (pid == 0)
            continue;
        if (out->count == cap) {
            size_t ncap = cap == 0 ? 256 : 2 * cap;
            mproc__proc *np = realloc(out->procs, ncap * sizeof *np);
            if (np == NULL) {
                rc = -ENOMEM;
                break;
            }
            out->procs = np;
            cap = ncap;
        }
        rc = read_proc(pid, threads, &out->procs[out->count]);
        if (rc < 0)
            break;
        out->count += (size_t)rc;
        rc = 0;
    }
    if (e == NULL && errno != 0 && rc == 0)
        rc = -errno;
    closedir(d);
    if (rc < 0) {
        mproc__proc_list_free(out);
        return rc;
    }
    qsort(out->procs, out->count, sizeof *out->procs, cmp_proc);
    return 0;
}

void mproc__proc_list_free(mproc__proc_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->procs[i].tasks);
    free(l->procs);
    *l = (mproc__proc_list){ .procs = NULL };
}

const mproc__proc *mproc__proc_find(const mproc__proc_list *l, int pid)
{
    if (l == NULL || l->count == 0)
        return NULL;
    mproc__proc key = { .pid = pid };
    return bsearch(&key, l->procs, l->count, sizeof *l->procs, cmp_proc);
}

static const mproc__task *find_task(const mproc__proc *p, int tid)
{
    if (p->ntasks == 0)
        return NULL;
    mproc__task key = { .tid = tid };
    return bsearch(&key, p->tasks, p->ntasks, sizeof *p->tasks, cmp_task);
}

/* 100 x the ticks grown (now - then) over `ticks_elapsed`. */
static double percent(uint64_t now, uint64_t then, double ticks_elapsed)
{
    uint64_t used = now >= then ? now - then : 0;
    return 100.0 * (double)used / ticks_elapsed;
}

void mproc__proc_cpu(mproc__proc_list *cur, const mproc__proc_list *prev)
{
    if (cur == NULL || prev == NULL || cur->when_ns <= prev->when_ns)
        return;
    long hz = sysconf(_SC_CLK_TCK);
    double elapsed = (double)hz * (double)(cur->when_ns - prev->when_ns) / 1e9;
    if (hz <= 0 || elapsed <= 0)
        return;
    for (size_t i = 0; i < cur->count; i++) {
        mproc__proc *p = &cur->procs[i];
        const mproc__proc *q = mproc__proc_find(prev, p->pid);
        if (q != NULL && q->start != p->start)
            q = NULL; /* the pid was reused */
        p->cpu_percent = percent(p->ticks, q != NULL ? q->ticks : 0, elapsed);
        /* Threads were not read last time: nothing to compare with. */
        for (size_t k = 0; k < p->ntasks && prev->with_threads; k++) {
            mproc__task *t = &p->tasks[k];
            const mproc__task *u = q != NULL ? find_task(q, t->tid) : NULL;
            if (u != NULL && u->start != t->start)
                u = NULL;
            t->cpu_percent = percent(t->ticks, u != NULL ? u->ticks : 0, elapsed);
        }
    }
}

/* The number after "<key>:" in /proc/meminfo text, or 0. */
static uint64_t meminfo_kib(const char *text, size_t len, const char *key)
{
    const char *v = status_field(text, len, key);
    long long n;
    if (v == NULL || !take_number(&v, text + len, false, &n))
        return 0;
    return (uint64_t)n;
}

/* /proc/stat's first line, "cpu  user nice system idle iowait irq
 * softirq steal guest guest_nice": the busy ticks and all of them. Guest
 * time is already counted in user and nice. */
static void read_cpu_ticks(mproc__sysinfo *s, const char *text, size_t len)
{
    const char *c = text, *end = text + len;
    if (len < 4 || memcmp(c, "cpu ", 4) != 0)
        return;
    c += 4;
    long long f[8] = { 0 };
    for (int i = 0; i < 8; i++) {
        while (c < end && *c == ' ')
            c++;
        if (!take_number(&c, end, false, &f[i]))
            break;
    }
    uint64_t all = 0;
    for (int i = 0; i < 8; i++)
        all += (uint64_t)f[i];
    s->cpu_all = all;
    s->cpu_busy = all - (uint64_t)f[3] - (uint64_t)f[4];
}

void mproc__sysinfo_read(mproc__sysinfo *s)
{
    char buf[STATUS_MAX];
    *s = (mproc__sysinfo){ .load = { -1, -1, -1 }, .uptime_s = -1 };
    ssize_t n = read_file("/proc/loadavg", buf, sizeof buf);
    if (n > 0) {
        double a, b, c;
        if (sscanf(buf, "%lf %lf %lf", &a, &b, &c) == 3) {
            s->load[0] = a;
            s->load[1] = b;
            s->load[2] = c;
        }
    }
    n = read_file("/proc/uptime", buf, sizeof buf);
    if (n > 0 && sscanf(buf, "%lf", &s->uptime_s) != 1)
        s->uptime_s = -1;
    n = read_file("/proc/meminfo", buf, sizeof buf);
    if (n > 0) {
        s->mem_total_kib = meminfo_kib(buf, (size_t)n, "MemTotal");
        s->mem_avail_kib = meminfo_kib(buf, (size_t)n, "MemAvailable");
    }
    n = read_file("/proc/stat", buf, sizeof buf);
    if (n > 0)
        read_cpu_ticks(s, buf, (size_t)n);
}
