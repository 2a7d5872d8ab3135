/*
 * tools/lab.h -- `mproc lab`: each lab turns one claim of the notes into
 * a measurement on this machine, with a verdict.
 *
 * A lab is a run() function and a line in the table of lab.c. run() gets
 * the options and a report; it records what it measured with
 * mproc__lab_metric, free text with mproc__lab_note, and ends with exactly
 * one mproc__lab_verdict. lab.c prints the report as text or JSON, so a
 * lab never prints to stdout itself (progress goes through
 * mproc__progress, which writes to stderr only when it is a terminal).
 *
 * Everything here runs on the command's main thread, except what a lab
 * starts itself.
 */
#ifndef MPROC_TOOLS_LAB_H
#define MPROC_TOOLS_LAB_H

#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mproc.h>

/* Options a lab may accept beyond --quick and --json (mproc__lab.accepts). */
enum {
    LAB_OPT_WORKERS = 1 << 0, /* --workers N */
    LAB_OPT_SVG = 1 << 1,     /* --svg FILE */
    LAB_OPT_SERIAL = 1 << 2,  /* --serial F (0 <= F < 1) */
};

typedef struct mproc__lab_opts {
    bool quick;         /* small sizes: seconds at most, for tests and CI */
    bool json;
    unsigned workers;   /* 0: the lab's default (usually the CPU count) */
    const char *svg;    /* a file to write a chart to, or NULL */
    double serial;      /* the serial fraction asked for, or -1 */
} mproc__lab_opts;

typedef struct mproc__lab_report mproc__lab_report;

typedef struct mproc__lab {
    const char *name;    /* as typed: `mproc lab NAME` */
    const char *summary; /* one line, for `mproc lab list` */
    const char *claim;   /* what the notes say, one or two sentences */
    unsigned accepts;    /* LAB_OPT_* */
    /* Measure; 0, or a negative error code after a note saying what
     * failed (the report is still printed, with no verdict). */
    int (*run)(const mproc__lab_opts *o, mproc__lab_report *r);
} mproc__lab;

/*
 * mproc__lab_metric - record one measured figure: key is a short
 * identifier (letters, digits, '_': it is the JSON field name), unit a
 * short unit ("ns", "ms", "x", "count", "MiB"...), text a human label.
 * At most 48 per report; more are dropped with a note.
 */
void mproc__lab_metric(mproc__lab_report *r, const char *key, double value, const char *unit,
                       const char *text);

/* mproc__lab_note - a line of explanation, printed under the figures
 * (and in the JSON "notes" array). At most 16 per report. */
void mproc__lab_note(mproc__lab_report *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* mproc__lab_verdict - whether the claim holds on this machine, and why,
 * in one line. The last call wins. */
void mproc__lab_verdict(mproc__lab_report *r, bool holds, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- what labs need from the system (labsys.c) --------------------- */

/* mproc__tcp_listen - a TCP socket listening on 127.0.0.1 at a port the
 * kernel picks (stored in *port), backlog SOMAXCONN, close-on-exec,
 * non-blocking if asked. Returns the socket or -errno. */
int mproc__tcp_listen(uint16_t *port, bool nonblocking);

/* mproc__tcp_connect - a blocking TCP connection to 127.0.0.1:port with
 * TCP_NODELAY; sends and receives on it give up after timeout_ms (0: no
 * limit). Returns the socket or -errno. */
int mproc__tcp_connect(uint16_t port, int64_t timeout_ms);

/* mproc__send_all - send all of buf (retrying short sends and EINTR,
 * never raising SIGPIPE). Returns 0, -ETIMEDOUT (the socket's send
 * timeout ran out, or it is non-blocking and full) or -errno. */
int mproc__send_all(int fd, const void *buf, size_t len);

/* mproc__recv_some - one recv (EINTR retried): the bytes received, 0 at
 * end of stream, -ETIMEDOUT (timeout, or nothing there on a non-blocking
 * socket) or -errno. */
ssize_t mproc__recv_some(int fd, void *buf, size_t cap);

/* mproc__self_status - the number after "FIELD:" in /proc/self/status
 * (e.g. "VmRSS" in KiB, "Threads"), or -errno (-ENOENT: no such field). */
long mproc__self_status(const char *field);

/* mproc__self_threads_named - how many threads of this process have an
 * OS name (/proc/self/task/TID/comm) starting with prefix, or -errno. */
long mproc__self_threads_named(const char *prefix);

/* mproc__self_rss_kib - this process's resident memory in KiB, from
 * /proc/self/smaps_rollup (exact), else /proc/self/status; or -errno. */
long mproc__self_rss_kib(void);

/* mproc__raise_nofile - make sure this process may open `want` files:
 * raise the soft RLIMIT_NOFILE towards `want`, no higher than the hard
 * limit. Returns the soft limit now in effect (may be below want), or
 * -errno. */
long mproc__raise_nofile(long want);

/* The labs (one file each, lab_NAME.c). */
int mproc__lab_race(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_switch(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_create(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_cow(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_zombie(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_ipc(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_io_vs_cpu(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_gil(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_amdahl(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_deadlock(const mproc__lab_opts *o, mproc__lab_report *r);
int mproc__lab_c10k(const mproc__lab_opts *o, mproc__lab_report *r);

/* ---- helpers several labs share (labkit.c) -------------------------- */

/*
 * mproc__lab_start - mproc_process_start, retried for up to 3 s while it
 * returns MPROC_ETHREADS: a thread that a lab (or the lab before it)
 * joined may still be listed by the kernel for a moment while it exits.
 * Returns what mproc_process_start returned last.
 */
int mproc__lab_start(mproc_process *p);

/* mproc__lab_process - create a process named "lab" running fn(arg, len)
 * with start method `how` and start it (mproc__lab_start). On failure
 * *out is NULL and the handle is destroyed. */
int mproc__lab_process(mproc_process **out, mproc_start_method how, mproc_task_fn fn,
                       const void *arg, size_t len);

/* mproc__lab_join - wait up to timeout_ms for process p to end. 0 if it
 * exited with status 0; what join (or exitcode) returned if that failed
 * (-ETIMEDOUT: still running); -ECHILD if it ended any other way. */
int mproc__lab_join(mproc_process *p, int64_t timeout_ms);

/* mproc__lab_thread - create a thread as `o` says and start it. On
 * failure *out is NULL and the handle is destroyed. 0 or what create or
 * start returned. */
int mproc__lab_thread(mproc_thread **out, const mproc_thread_opts *o);

/* mproc__lab_proc_state - the state letter of process pid in
 * /proc/PID/stat (R, S, D, Z, ...) and its parent in *ppid (may be NULL);
 * 0 when there is no such process (any more). */
char mproc__lab_proc_state(pid_t pid, pid_t *ppid);

/* mproc__lab_pin - pin the calling thread to the first CPU it may run on
 * (its number in *cpu), saving its affinity in *saved for
 * mproc__lab_unpin. Threads and processes it starts afterwards inherit
 * the pin. Returns 0 or -errno. */
int mproc__lab_pin(int *cpu, cpu_set_t *saved);
void mproc__lab_unpin(const cpu_set_t *saved);

/* mproc__lab_read_full - exactly n bytes from a pipe or socket, resuming
 * after signals and short reads. 0, -EPIPE (end of file: the other end
 * is closed), or -errno. Blocks. (Writes: mproc__write_all, procfs.h.) */
int mproc__lab_read_full(int fd, void *buf, size_t n);

/* mproc__lab_ignore_sigpipe - ignore SIGPIPE, so that writing to a pipe
 * whose reader died fails with -EPIPE instead of killing the command
 * (children forked meanwhile inherit it); the old action in *old, for
 * mproc__lab_restore_sigpipe. 0 or -errno. */
int mproc__lab_ignore_sigpipe(struct sigaction *old);
void mproc__lab_restore_sigpipe(const struct sigaction *old);

/* mproc__lab_wait_readable - wait at most timeout_ms until fd is readable
 * (or at end of file). 0, -ETIMEDOUT or -errno. */
int mproc__lab_wait_readable(int fd, int64_t timeout_ms);

/* mproc__lab_median - the median of v[0..n) (sorts v); 0 when n is 0. */
double mproc__lab_median(double *v, size_t n);

#endif /* MPROC_TOOLS_LAB_H */
