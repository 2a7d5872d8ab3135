/*
 * tools/lab_io_vs_cpu.c -- `mproc lab io-vs-cpu`: the notes' concurrent
 * download lab (seed 001, "Laboratorio: Simulador de Descargas
 * Concurrentes") done locally, next to a CPU-bound batch, each run
 * sequentially, on threads and on processes.
 *
 * I/O-bound: the lab starts a small HTTP server on 127.0.0.1 (a port the
 * kernel picks) that answers every "GET /N HTTP/1.0" after a fixed delay
 * (10 ms, 20 ms in full mode) with a 256-byte body computed from N. The
 * server is one thread with an epoll loop: it reads requests, queues each
 * with its due time (arrivals are in order and the delay is the same, so
 * the queue is sorted), and answers when the time comes -- so it serves
 * any number of waiting clients at once and only the clients' own
 * concurrency decides how many requests overlap. A request is a real
 * client: connect, send the request, read until the server closes, check
 * the status line, the Content-Length and every byte of the body.
 *
 * CPU-bound: tasks of an arithmetic loop (60 ms in all, 400 ms in full
 * mode, calibrated at start-up), whose results are summed and must equal
 * the sequential sum.
 *
 * Each batch runs in the calling thread (sequential), then on an mproc
 * executor of threads (MPROC_THREADS) and one of processes
 * (MPROC_PROCESSES, started by the fork server), with the same task
 * function. I/O uses many workers (default max(16, 2 x CPUs), at most
 * 64), CPU-bound as many as CPUs. A run is timed from the first submit
 * to the last result; starting executors is not timed, nor is a first
 * warm-up pass on each (its results are checked all the same). The CPU-bound
 * runs are made three times, interleaved, and each keeps its fastest
 * time (load elsewhere only ever slows a run down); the I/O-bound ones
 * once: waiting is hardly disturbed by load. A full run takes about 6 s
 * on an idle 2-CPU machine (2.6 s of it the sequential requests), twice
 * that at load 8.
 * Speed-up = sequential time / run time.
 *
 * Verdict: the claim holds when every answer came back intact and every
 * CPU-bound sum matched, threads sped the I/O-bound batch up beyond the
 * CPU count, and CPU-bound work gained at most the CPU count (10% slack
 * for timer noise) -- and did gain (> 1.2x) on both threads and processes
 * when there are 2 CPUs or more: C threads have no GIL.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define BODY_LEN 256
#define REQ_MAX 512     /* a longer request is refused */
#define IO_TIMEOUT_MS 10000
#define MAX_WORKERS 256 /* per executor, whatever --workers says */

/* ---- the HTTP server ------------------------------------------------ */

struct conn {
    int fd;
    size_t len;
    char req[REQ_MAX];
    unsigned item;
    int64_t due_ns;
    struct conn *prev, *next; /* every open connection */
    struct conn *queued;      /* the next answer due */
};

/* Owned by the server thread while it runs (the lab reads the counters
 * after joining it). */
struct server {
    int listen_fd, epfd, stop_fd;
    uint16_t port;
    int64_t delay_ns;
    mproc_thread *thread;
    struct conn *all;         /* open connections */
    struct conn *head, *tail; /* answers due, oldest first */
    uint64_t answered, refused;
};

/* The body of item n: BODY_LEN letters from a generator seeded with n,
 * ending in a newline. */
static void make_body(unsigned item, char *out)
{
    uint64_t x = ((uint64_t)item + 1) * UINT64_C(0x9E3779B97F4A7C15) | 1;
    for (int i = 0; i < BODY_LEN - 1; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out[i] = (char)('a' + x % 26);
    }
    out[BODY_LEN - 1] = '\n';
}

static void conn_close(struct server *s, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    free(c);
}

static void accept_all(struct server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN: no more for now; others: the client gave up */
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (c == NULL || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(c);
            close(fd);
            s->refused++;
            continue;
        }
        c->fd = fd;
        c->next = s->all;
        if (s->all)
            s->all->prev = c;
        s->all = c;
    }
}

/* Whether req is "GET /N HTTP/1.x" and more header lines; N in *item. */
static bool parse_request(const char *req, unsigned *item)
{
    if (strncmp(req, "GET /", 5) != 0 || req[5] < '0' || req[5] > '9')
        return false;
    char *end;
    unsigned long n = strtoul(req + 5, &end, 10);
    if (n > UINT32_MAX || strncmp(end, " HTTP/1.", 8) != 0)
        return false;
    *item = (unsigned)n;
    return true;
}

static void refuse(struct server *s, struct conn *c)
{
    static const char bad[] = "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    (void)mproc__send_all(c->fd, bad, sizeof bad - 1);
    s->refused++;
    conn_close(s, c);
}

static void read_request(struct server *s, struct conn *c)
{
    ssize_t n = mproc__recv_some(c->fd, c->req + c->len, sizeof c->req - 1 - c->len);
    if (n == -ETIMEDOUT)
        return; /* spurious wake-up */
    if (n <= 0) {
        conn_close(s, c); /* the client went away */
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") == NULL) {
        if (c->len == sizeof c->req - 1)
            refuse(s, c);
        return;
    }
    if (!parse_request(c->req, &c->item)) {
        refuse(s, c);
        return;
    }
    /* Complete: stop watching it and queue its answer. */
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    c->due_ns = mproc_now_ns() + s->delay_ns;
    c->queued = NULL;
    if (s->tail)
        s->tail->queued = c;
    else
        s->head = c;
    s->tail = c;
}

static void answer_due(struct server *s)
{
    int64_t now = mproc_now_ns();
    while (s->head && s->head->due_ns <= now) {
        struct conn *c = s->head;
        s->head = c->queued;
        if (s->head == NULL)
            s->tail = NULL;
        char out[128 + BODY_LEN];
        int len = snprintf(out, sizeof out,
                           "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: %d\r\n\r\n",
                           BODY_LEN);
        make_body(c->item, out + len);
        if (mproc__send_all(c->fd, out, (size_t)len + BODY_LEN) == 0)
            s->answered++;
        conn_close(s, c);
    }
}

static int server_main(void *arg)
{
    struct server *s = arg;
    struct epoll_event ev[64];
    int rc = 0;
    for (bool stop = false; !stop;) {
        int timeout = -1;
        if (s->head) {
            int64_t left = s->head->due_ns - mproc_now_ns();
            timeout = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        }
        int n = epoll_wait(s->epfd, ev, 64, timeout);
        if (n < 0 && errno != EINTR) {
            rc = -errno;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &s->listen_fd)
                accept_all(s);
            else if (ev[i].data.ptr == &s->stop_fd)
                stop = true;
            else
                read_request(s, ev[i].data.ptr);
        }
        answer_due(s);
    }
    while (s->all)
        conn_close(s, s->all);
    return rc;
}

static void server_free(struct server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->epfd >= 0)
        close(s->epfd);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    free(s);
}

static int server_start(struct server **out, int delay_ms)
{
    struct server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->delay_ns = (int64_t)delay_ms * 1000000;
    s->listen_fd = mproc__tcp_listen(&s->port, true);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = s->listen_fd < 0 ? s->listen_fd : 0;
    if (rc == 0 && (s->epfd < 0 || s->stop_fd < 0))
        rc = -errno;
    struct epoll_event a = { .events = EPOLLIN, .data.ptr = &s->listen_fd };
    struct epoll_event b = { .events = EPOLLIN, .data.ptr = &s->stop_fd };
    if (rc == 0 && (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &a) != 0 ||
                    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->stop_fd, &b) != 0))
        rc = -errno;
    if (rc == 0)
        rc = mproc__lab_thread(&s->thread, &(mproc_thread_opts){ .fn = server_main, .arg = s,
                                                                  .name = "lab-http" });
    if (rc != 0) {
        server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Stop the server; its thread's result (0 or -errno). */
static int server_stop(struct server *s)
{
    uint64_t one = 1;
    int result = 0;
    if (write(s->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
        result = -errno;
    else
        mproc_thread_join(s->thread, -1, &result);
    mproc_thread_destroy(s->thread);
    return result;
}

/* ---- the client ----------------------------------------------------- */

/* Whether the answer (len bytes) is a 200 with the body of `item`. */
static bool answer_ok(const char *buf, size_t len, unsigned item)
{
    static const char status[] = "HTTP/1.0 200 OK\r\n";
    if (len < sizeof status - 1 || memcmp(buf, status, sizeof status - 1) != 0)
        return false;
    const char *end = strstr(buf, "\r\n\r\n");
    const char *cl = strstr(buf, "\r\nContent-Length: ");
    if (end == NULL || cl == NULL || cl > end)
        return false;
    if (strtol(cl + 18, NULL, 10) != BODY_LEN)
        return false;
    const char *body = end + 4;
    char want[BODY_LEN];
    make_body(item, want);
    return (size_t)(buf + len - body) == BODY_LEN && memcmp(body, want, BODY_LEN) == 0;
}

/* GET /item: 1 if the answer came back intact, 0 if it did not (or the
 * request failed). */
static uint64_t fetch(uint16_t port, unsigned item)
{
    int fd = mproc__tcp_connect(port, IO_TIMEOUT_MS);
    if (fd < 0)
        return 0;
    char req[64];
    int len = snprintf(req, sizeof req, "GET /%u HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", item);
    char buf[1024];
    size_t got = 0;
    int rc = mproc__send_all(fd, req, (size_t)len);
    while (rc == 0 && got < sizeof buf - 1) {
        ssize_t n = mproc__recv_some(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return rc == 0 && answer_ok(buf, got, item);
}

/* ---- the batches ---------------------------------------------------- */

enum { IO, CPU };

/* One task, copied to the worker (also to a worker process). */
struct job {
    int kind;
    uint16_t port;  /* IO */
    unsigned item;  /* IO */
    uint64_t steps; /* CPU */
};

static uint64_t run_job(const struct job *j)
{
    return j->kind == IO ? fetch(j->port, j->item) : mproc__spin(j->steps, j->item);
}

static int job_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(struct job))
        return mproc_fail(ctx, -EINVAL, "job of %zu bytes", len);
    struct job j;
    memcpy(&j, arg, sizeof j);
    uint64_t v = run_job(&j);
    return mproc_return(ctx, &v, sizeof v);
}

/* Run the n jobs on ex (NULL: one after another here); their results'
 * sum in *sum, the time in *seconds (kept if faster than before). */
static int run_batch(mproc_executor *ex, const struct job *jobs, size_t n, uint64_t *sum,
                     double *seconds)
{
    mproc_future **fs = NULL;
    if (ex && (fs = calloc(n, sizeof *fs)) == NULL)
        return -ENOMEM;
    uint64_t total = 0;
    int rc = 0;
    size_t submitted = 0;
    int64_t t0 = mproc_now_ns();
    if (ex == NULL) {
        for (size_t i = 0; i < n; i++)
            total += run_job(&jobs[i]);
    } else {
        for (; submitted < n && rc == 0; submitted++)
            rc = mproc_submit(ex, job_task, &jobs[submitted], sizeof jobs[submitted],
                              &fs[submitted]);
        if (rc != 0)
            submitted--;
        for (size_t i = 0; i < submitted; i++) {
            const void *data;
            size_t len;
            int frc = mproc_future_result(fs[i], -1, &data, &len);
            if (frc == 0 && len == sizeof(uint64_t)) {
                uint64_t v;
                memcpy(&v, data, sizeof v);
                total += v;
            } else if (rc == 0) {
                rc = frc < 0 ? frc : -EPROTO;
            }
            mproc_future_release(fs[i]);
        }
    }
    double t = (double)(mproc_now_ns() - t0) / 1e9;
    free(fs);
    if (t < *seconds)
        *seconds = t;
    *sum = total;
    return rc;
}

/* A batch and its three runs. */
struct batch {
    const char *name;
    struct job *jobs;
    size_t n;
    unsigned workers;
    double seconds[3]; /* sequential, threads, processes */
    uint64_t sums[3];  /* of the last round */
    uint64_t good;     /* IO: intact answers in all runs; CPU: runs whose sum matched */
    uint64_t runs;     /* IO: requests made; CPU: runs compared */
};

/* Count the results of one pass of b (k: 0 sequential, 1 threads, 2
 * processes) into b->good and b->runs. */
static void tally(struct batch *b, int kind, int k)
{
    if (kind == IO) {
        b->good += b->sums[k];
        b->runs += b->n;
    } else if (k > 0) {
        b->good += b->sums[k] == b->sums[0];
        b->runs++;
    }
}

/* Run b sequentially, on threads and on processes, `rounds` times with
 * the runs interleaved (a burst of load elsewhere hits one pass of each,
 * not every pass of one); each time is the fastest of its passes. Each
 * executor first runs one untimed pass: a worker process gets ready for
 * its first task only after it has been forked and set up (hundreds of
 * milliseconds under ASan on a busy machine), and that is start-up, not
 * the work. */
static int measure(struct batch *b, int kind, unsigned rounds, mproc__lab_report *r)
{
    static const char *const how[3] = { "sequential", "threads", "processes" };
    mproc_executor *ex[3] = { NULL, NULL, NULL };
    int rc = 0;
    for (int k = 0; k < 3; k++)
        b->seconds[k] = 1e300;
    if (kind == CPU) { /* the sequential sum, to check the warm-up passes against */
        double ignored = 1e300;
        rc = run_batch(NULL, b->jobs, b->n, &b->sums[0], &ignored);
    }
    for (int k = 1; k < 3 && rc == 0; k++) {
        rc = mproc_executor_create(&ex[k], &(mproc_executor_opts){
                                              .kind = k == 1 ? MPROC_THREADS : MPROC_PROCESSES,
                                              .workers = b->workers, .name = "lab" });
        if (rc < 0) {
            mproc__lab_note(r, "cannot start an executor of %u %s: %s", b->workers, how[k],
                            mproc_strerror(rc));
            break;
        }
        mproc__progress("lab io-vs-cpu: %s, starting %u %s", b->name, b->workers, how[k]);
        double ignored = 1e300;
        rc = run_batch(ex[k], b->jobs, b->n, &b->sums[k], &ignored);
        if (rc < 0)
            mproc__lab_note(r, "%s on %s: a task failed: %s", b->name, how[k],
                            mproc_strerror(rc));
        else
            tally(b, kind, k);
    }
    for (unsigned round = 0; round < rounds && rc == 0; round++) {
        for (int k = 0; k < 3 && rc == 0; k++) {
            mproc__progress("lab io-vs-cpu: %s, %s", b->name, how[k]);
            rc = run_batch(ex[k], b->jobs, b->n, &b->sums[k], &b->seconds[k]);
            if (rc < 0)
                mproc__lab_note(r, "%s on %s: a task failed: %s", b->name, how[k],
                                mproc_strerror(rc));
            else
                tally(b, kind, k);
        }
    }
    mproc_executor_destroy(ex[1]);
    mproc_executor_destroy(ex[2]);
    return rc;
}

static unsigned clamp_workers(unsigned w, mproc__lab_report *r, const char *what)
{
    if (w <= MAX_WORKERS)
        return w;
    mproc__lab_note(r, "%s: %u workers asked for, %d used (the lab's limit).", what, w,
                    MAX_WORKERS);
    return MAX_WORKERS;
}

int mproc__lab_io_vs_cpu(const mproc__lab_opts *o, mproc__lab_report *r)
{
    unsigned cpus = mproc_cpu_count();
    /* The fork server first, while this process holds no sockets and
     * runs no thread of this lab: the workers it forks inherit nothing. */
    int rc = mproc_forkserver_start();
    if (rc < 0) {
        mproc__lab_note(r, "cannot start the fork server: %s", mproc_strerror(rc));
        return rc;
    }
    unsigned io_default = 2 * cpus < 16 ? 16 : 2 * cpus > 64 ? 64 : 2 * cpus;
    struct batch io = { .name = "I/O-bound" }, cpu = { .name = "CPU-bound" };
    io.workers = clamp_workers(o->workers ? o->workers : io_default, r, "I/O-bound");
    cpu.workers = clamp_workers(o->workers ? o->workers : cpus, r, "CPU-bound");
    int delay_ms = o->quick ? 10 : 20;
    unsigned io_rounds = 1, cpu_rounds = 3;
    io.n = 2 * io.workers < (o->quick ? 32u : 128u) ? (o->quick ? 32u : 128u) : 2 * io.workers;
    cpu.n = 4 * cpu.workers < 16 ? 16 : 4 * cpu.workers;
    double cpu_total_ms = o->quick ? 60 : 400;

    struct server *srv = NULL;
    io.jobs = calloc(io.n, sizeof *io.jobs);
    cpu.jobs = calloc(cpu.n, sizeof *cpu.jobs);
    rc = io.jobs && cpu.jobs ? server_start(&srv, delay_ms) : -ENOMEM;
    if (rc < 0) {
        mproc__lab_note(r, "cannot start the HTTP server: %s", mproc_strerror(rc));
        free(io.jobs);
        free(cpu.jobs);
        return rc;
    }
    mproc__progress("lab io-vs-cpu: calibrating the arithmetic loop");
    double rate = mproc__spin_rate(o->quick ? 10 : 50);
    uint64_t steps = (uint64_t)(rate * cpu_total_ms * 1e3 / (double)cpu.n) + 1;
    for (size_t i = 0; i < io.n; i++)
        io.jobs[i] = (struct job){ .kind = IO, .port = srv->port, .item = (unsigned)i };
    for (size_t i = 0; i < cpu.n; i++)
        cpu.jobs[i] = (struct job){ .kind = CPU, .item = (unsigned)i + 1, .steps = steps };

    rc = measure(&io, IO, io_rounds, r);
    if (rc == 0)
        rc = measure(&cpu, CPU, cpu_rounds, r);
    int src = server_stop(srv);
    uint64_t answered = srv->answered, refused = srv->refused;
    server_free(srv);
    free(io.jobs);
    free(cpu.jobs);
    if (rc == 0 && src < 0) {
        mproc__lab_note(r, "the HTTP server failed: %s", mproc_strerror(src));
        rc = src;
    }
    if (rc < 0)
        return rc;

    double s_io[3], s_cpu[3];
    for (int k = 0; k < 3; k++) {
        s_io[k] = io.seconds[0] / io.seconds[k];
        s_cpu[k] = cpu.seconds[0] / cpu.seconds[k];
    }
    mproc__lab_metric(r, "cpus", cpus, "count", "CPUs");
    mproc__lab_metric(r, "io_requests", (double)io.n, "count", "I/O-bound: HTTP requests per run");
    mproc__lab_metric(r, "io_delay_ms", delay_ms, "ms", "  the server's delay per request");
    mproc__lab_metric(r, "io_workers", io.workers, "count", "  workers (threads or processes)");
    mproc__lab_metric(r, "io_sequential_s", io.seconds[0], "s", "  sequential");
    mproc__lab_metric(r, "io_threads_s", io.seconds[1], "s", "  on threads");
    mproc__lab_metric(r, "io_processes_s", io.seconds[2], "s", "  on processes");
    mproc__lab_metric(r, "io_threads_speedup", s_io[1], "x", "  speed-up on threads");
    mproc__lab_metric(r, "io_processes_speedup", s_io[2], "x", "  speed-up on processes");
    mproc__lab_metric(r, "io_answers", (double)io.runs, "count",
                      "  requests made in all (with warm-ups)");
    mproc__lab_metric(r, "io_intact", (double)io.good, "count", "  answers received intact");
    mproc__lab_metric(r, "server_answered", (double)answered, "count",
                      "  answers the server sent");
    mproc__lab_metric(r, "cpu_tasks", (double)cpu.n, "count", "CPU-bound: tasks per run");
    mproc__lab_metric(r, "cpu_task_ms", cpu.seconds[0] * 1e3 / (double)cpu.n, "ms",
                      "  time per task");
    mproc__lab_metric(r, "cpu_workers", cpu.workers, "count", "  workers (threads or processes)");
    mproc__lab_metric(r, "cpu_sequential_s", cpu.seconds[0], "s", "  sequential");
    mproc__lab_metric(r, "cpu_threads_s", cpu.seconds[1], "s", "  on threads");
    mproc__lab_metric(r, "cpu_processes_s", cpu.seconds[2], "s", "  on processes");
    mproc__lab_metric(r, "cpu_threads_speedup", s_cpu[1], "x", "  speed-up on threads");
    mproc__lab_metric(r, "cpu_processes_speedup", s_cpu[2], "x", "  speed-up on processes");
    mproc__lab_metric(r, "cpu_runs_matched", (double)cpu.good, "count",
                      "  runs whose results matched sequential");
    mproc__lab_metric(r, "cpu_runs", (double)cpu.runs, "count", "  runs compared (with warm-ups)");

    mproc__lab_note(r, "The server (one thread, epoll) answers each request %d ms after it "
                       "arrives; a waiting client needs no CPU, so %u of them overlap.",
                    delay_ms, io.workers);
    mproc__lab_note(r, "In CPython the CPU-bound threads would stay near 1x: the GIL lets one "
                       "thread compute at a time (see 'mproc lab gil'). C threads have no such "
                       "lock and scale like processes.");
    if (refused)
        mproc__lab_note(r, "The server refused %llu connections or requests.",
                        (unsigned long long)refused);

    unsigned cores = cpu.workers < cpus ? cpu.workers : cpus;
    double cpu_best = s_cpu[1] > s_cpu[2] ? s_cpu[1] : s_cpu[2];
    bool intact = io.good == io.runs && cpu.good == cpu.runs;
    bool io_beyond = s_io[1] > cpus;
    bool cpu_bounded = cpu_best <= 1.1 * cores;
    bool cpu_gained = cores < 2 || (s_cpu[1] > 1.2 && s_cpu[2] > 1.2);
    if (!intact)
        mproc__lab_verdict(r, false,
                           "%llu of %llu answers intact, %llu of %llu CPU-bound runs matched: "
                           "work was lost",
                           (unsigned long long)io.good, (unsigned long long)io.runs,
                           (unsigned long long)cpu.good, (unsigned long long)cpu.runs);
    else if (io_beyond && cpu_bounded && cpu_gained)
        mproc__lab_verdict(r, true,
                           "I/O-bound: %.1fx on %u threads, %.1fx on processes, beyond the %u "
                           "CPU%s; CPU-bound: %.2fx on threads, %.2fx on processes, at most "
                           "the cores",
                           s_io[1], io.workers, s_io[2], cpus, cpus == 1 ? "" : "s", s_cpu[1],
                           s_cpu[2]);
    else if (!io_beyond)
        mproc__lab_verdict(r, false,
                           "I/O-bound on %u threads: %.2fx, not beyond the %u CPU%s%s",
                           io.workers, s_io[1], cpus, cpus == 1 ? "" : "s",
                           io.workers <= cpus ? " (no more workers than CPUs: try --workers 16)"
                                              : " (a busy machine?)");
    else if (!cpu_bounded)
        mproc__lab_verdict(r, false,
                           "CPU-bound: %.2fx with %u cores to use, more than they can give "
                           "(the sequential run was slowed by other load?)",
                           cpu_best, cores);
    else
        mproc__lab_verdict(r, false,
                           "CPU-bound: %.2fx on threads, %.2fx on processes with %u cores: "
                           "no gain from the cores here (a busy machine?)",
                           s_cpu[1], s_cpu[2], cores);
    return 0;
}
