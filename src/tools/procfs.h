/*
 * tools/procfs.h -- reading processes and threads from /proc, for
 * `mproc ps` and `mproc top` (procfs.c), and the view both commands
 * share: filters, sort keys, the tree, the table and the JSON
 * (procview.c).
 *
 * What a process shows (proc(5)):
 *   /proc/PID/stat          pid, name (comm), state, ppid, nice, threads,
 *                           utime + stime, start time
 *   /proc/PID/status        Uid (the effective one), VmRSS
 *   /proc/PID/task/TID/stat the same line for each thread
 * CPU% is the growth of utime + stime between two scans over the time
 * between them: 100% is one CPU busy all the time (as in top), so a
 * process with several threads can show more.
 *
 * Processes come and go while /proc is read: one that vanishes between
 * listing and reading is left out without a word. Every function here is
 * for the command's main thread; none keeps state between calls except
 * what its arguments hold.
 */
#ifndef MPROC_TOOLS_PROCFS_H
#define MPROC_TOOLS_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Longest name kept, NUL included: comm is at most 15 bytes for a task,
 * but some kernel threads show longer names (kworker/u8:3-events). */
#define MPROC__PROC_NAME 64

/* One thread (a task of a process). */
typedef struct mproc__task {
    int tid;
    char name[MPROC__PROC_NAME];
    char state;          /* R S D Z T t I X ... as in stat */
    uint64_t ticks;      /* utime + stime, in clock ticks */
    uint64_t start;      /* start time, ticks after boot */
    double cpu_percent;  /* < 0: not measured */
} mproc__task;

/* One process. */
typedef struct mproc__proc {
    int pid;
    int ppid;
    char name[MPROC__PROC_NAME]; /* comm, raw bytes (any but NUL) */
    char state;
    int nice;
    unsigned threads;     /* num_threads of stat */
    uint64_t ticks;       /* utime + stime of all its threads */
    uint64_t start;       /* start time: tells a reused pid apart */
    uint64_t rss_kib;     /* VmRSS; 0 for zombies and kernel threads */
    long long uid;        /* effective uid; -1 if unknown */
    double cpu_percent;   /* < 0: not measured */
    mproc__task *tasks;   /* sorted by tid; only when threads were read */
    size_t ntasks;
} mproc__proc;

/* The processes of one scan, sorted by pid. */
typedef struct mproc__proc_list {
    mproc__proc *procs;
    size_t count;
    int64_t when_ns;      /* mproc_now_ns() when the scan began */
    bool with_threads;
} mproc__proc_list;

/* The machine as a whole, for top's header. */
typedef struct mproc__sysinfo {
    double load[3];           /* 1, 5, 15 minutes; -1 unknown */
    double uptime_s;          /* -1 unknown */
    uint64_t mem_total_kib;   /* 0 unknown */
    uint64_t mem_avail_kib;
    uint64_t cpu_busy;        /* /proc/stat "cpu" ticks: all but idle+iowait */
    uint64_t cpu_all;         /* all of them; 0 unknown */
} mproc__sysinfo;

/*
 * mproc__proc_parse_stat - parse one /proc/PID/stat text of `len` bytes
 * (not NUL-terminated; the name may hold spaces, parentheses, even
 * newlines: it runs from the first '(' to the LAST ')'). Fills pid,
 * name, state, ppid, nice, threads, ticks and start of *p; leaves the
 * other fields. Returns 0, or -EINVAL when the text is not such a line.
 */
int mproc__proc_parse_stat(const char *text, size_t len, mproc__proc *p);

/*
 * mproc__proc_parse_status - take Uid (effective) and VmRSS from a
 * /proc/PID/status text of `len` bytes into p->uid and p->rss_kib (-1
 * and 0 when absent). Never fails.
 */
void mproc__proc_parse_status(const char *text, size_t len, mproc__proc *p);

/*
 * mproc__proc_scan - read every process in /proc into *out (and, when
 * `threads`, each one's threads), cpu_percent set to -1. *out must be
 * zeroed or freed before. Returns 0, -ENOMEM, or -errno when /proc
 * cannot be listed. Free with mproc__proc_list_free.
 */
int mproc__proc_scan(mproc__proc_list *out, bool threads);

/* mproc__proc_list_free - free what a scan allocated; *l is zeroed.
 * NULL and zeroed lists are fine. */
void mproc__proc_list_free(mproc__proc_list *l);

/*
 * mproc__proc_cpu - set cpu_percent of every process (and thread) of
 * `cur` from its ticks and those it had in `prev`, an earlier scan: a
 * process with no match in prev (same pid and start time) started
 * since, and all its ticks count. Does nothing when prev is no earlier.
 */
void mproc__proc_cpu(mproc__proc_list *cur, const mproc__proc_list *prev);

/* mproc__proc_find - the process `pid` of l, or NULL. */
const mproc__proc *mproc__proc_find(const mproc__proc_list *l, int pid);

/*
 * mproc__sysinfo_read - load average, uptime, memory and CPU ticks from
 * /proc; what cannot be read is marked unknown. Never fails.
 */
void mproc__sysinfo_read(mproc__sysinfo *s);

/* ---- the view both commands share (procview.c) -------------------- */

typedef enum mproc__sort_key {
    MPROC__SORT_PID,
    MPROC__SORT_CPU,
    MPROC__SORT_RSS,
    MPROC__SORT_THREADS,
    MPROC__SORT_NAME,
    MPROC__SORT_STATE,
    MPROC__SORT_USER,
} mproc__sort_key;

#define MPROC__VIEW_MAX_PIDS 64

/* What to show and in which order; the zero value shows everything,
 * sorted by pid. */
typedef struct mproc__view {
    int pids[MPROC__VIEW_MAX_PIDS]; /* --pid: only these (npids > 0) */
    size_t npids;
    char name[MPROC__PROC_NAME];    /* --name: a substring, any case */
    bool by_user;                   /* --user */
    long long uid;
    char states[16];                /* --state: only these letters */
    mproc__sort_key sort;
    bool reverse;                   /* -r: the other order */
    bool tree;                      /* children under their parents */
    bool threads;                   /* -T: each process's threads */
    bool no_cpu;                    /* --no-cpu: CPU% not measured */
    bool json;
} mproc__view;

/* One line of the table: a process, or (p->tasks[task]) one of its
 * threads. */
typedef struct mproc__row {
    const mproc__proc *p;
    const mproc__task *t; /* NULL: the process itself */
    int depth;            /* tree depth, 0 at the top */
} mproc__row;

/* Totals over a whole scan, for top's header. */
typedef struct mproc__totals {
    size_t processes, threads, running, sleeping, disk_sleep, stopped, zombies;
} mproc__totals;

/*
 * mproc__view_option - if argv[*i] is an option shared by ps and top,
 * parse it (and its value, argv[*i + 1] or after '=') into *v, moving *i
 * past what it used. Returns 1 when it was one, 0 when not, or
 * MPROC_TOOL_USAGE after printing "mproc <cmd>: ..." on stderr.
 */
int mproc__view_option(const char *cmd, int argc, char **argv, int *i, mproc__view *v);

/* mproc__view_usage - the help on the options of mproc__view_option
 * (--no-cpu only when `no_cpu`). */
void mproc__view_usage(FILE *out, const char *default_sort, bool no_cpu);

/* mproc__sort_name - the name of a sort key, as --sort takes it. */
const char *mproc__sort_name(mproc__sort_key k);

/*
 * mproc__view_rows - the rows of l that v selects, in v's order (and
 * tree), into a malloc'd array *rows of *nrows. Returns 0 or -ENOMEM.
 * The rows point into l.
 */
int mproc__view_rows(const mproc__view *v, const mproc__proc_list *l, mproc__row **rows,
                     size_t *nrows);

/* mproc__view_totals - count processes, threads and states of l. */
mproc__totals mproc__view_totals(const mproc__proc_list *l);

/* A growing text buffer; every append keeps it NUL-terminated. After a
 * failed allocation `failed` is set and later appends do nothing. */
typedef struct mproc__buf {
    char *data;
    size_t len, cap;
    bool failed;
} mproc__buf;

void mproc__buf_put(mproc__buf *b, const char *s, size_t n);
void mproc__buf_puts(mproc__buf *b, const char *s);
void mproc__buf_printf(mproc__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mproc__buf_free(mproc__buf *b);

/* mproc__json_string - append s (len bytes) as a JSON string: quoted,
 * escaped, invalid UTF-8 replaced by U+FFFD. */
void mproc__json_string(mproc__buf *b, const char *s, size_t len);

/* mproc__user_name - the name of user `uid` ("?" for -1; the number
 * when the user database has no name for it). Names are cached: the
 * string stays valid until the program exits. */
const char *mproc__user_name(long long uid);

/* mproc__table_head - the column titles of the table (no newline). */
void mproc__table_head(mproc__buf *b);

/*
 * mproc__table_row - one row of the table (no newline). Control bytes
 * of names are shown as '?', so a name cannot drive the terminal; a
 * zombie's name gets " <defunct>", as ps shows it.
 */
void mproc__table_row(mproc__buf *b, const mproc__row *r, bool cpu_measured);

/* mproc__json_rows - the rows as a JSON array of objects (one line
 * each when `pretty`, else all on one line). */
void mproc__json_rows(mproc__buf *b, const mproc__view *v, const mproc__row *rows,
                      size_t nrows, bool pretty);

/*
 * mproc__write_all - write b to fd, resuming after EINTR and short
 * writes. Returns 0 or -errno.
 */
int mproc__write_all(int fd, const char *data, size_t len);

#endif /* MPROC_TOOLS_PROCFS_H */
