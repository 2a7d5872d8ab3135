/*
 * tools/lab_c10k.c -- `mproc lab c10k`: many idle connections, served by
 * a thread each or by one epoll loop (seed 001, "El Problema C10k" and
 * "select vs poll vs epoll").
 *
 * The lab opens N loopback TCP connections to a server of its own (N =
 * 2,000; 200 with --quick) and keeps them open; the protocol is an echo
 * of 8-byte messages. Two servers, one after the other, in this process:
 *
 *   threads  an acceptor thread starts one mproc_thread per connection,
 *            which blocks in recv() and answers what it reads: N+1
 *            threads. Their stacks are 64 KiB (mproc_thread_opts
 *            .stack_size) instead of the default 8 MiB (ulimit -s): a
 *            connection thread needs a few KiB, and 64 KiB keeps N of
 *            them within a few hundred MiB of address space.
 *   epoll    one thread with an epoll loop over the listening socket and
 *            every connection (non-blocking): 1 thread.
 *
 * For each: the lab connects N clients (in batches of 64, waiting for
 * the server to accept each batch, so the listen backlog never
 * overflows), waits until the server runs all of them, then sends one
 * request on every connection and checks the echo ("served"). It reads
 * this process's resident memory (/proc/self/smaps_rollup), address
 * space (VmSize, /proc/self/status) and the server's threads (those
 * named "c10k-..." in /proc/self/task: a runtime's own threads, such as
 * a sanitizer's, do not count) before the server starts and once every
 * connection has been served: the differences,
 * per connection, are the server's cost (the clients' share is the same
 * for both). Kernel socket buffers are not in either figure. Then, with
 * the other N-4 connections idle, 4 of them make request/response round
 * trips one after another, timed one by one: the median and the 99th
 * percentile.
 *
 * Each connection takes two descriptors here (client and server side):
 * the soft RLIMIT_NOFILE is raised towards 2N + 64, up to the hard
 * limit; if that is still too low, N is scaled down and a note says so.
 *
 * Verdict: holds when both servers served every connection, the epoll
 * server used 1 thread and the threaded one N+1, and the threaded one
 * used more than twice the resident memory per connection.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define MSG 8                   /* bytes per request and per answer */
#define STACK_SIZE (64 * 1024)  /* connection threads */
#define BATCH 64                /* connections opened before waiting for the server */
#define ACTIVE 4                /* connections that make round trips */
#define WAIT_MS 20000           /* the most the lab waits for the server */
#define IO_TIMEOUT_MS 10000

/* ---- the servers ---------------------------------------------------- */

struct server {
    bool threaded;
    int listen_fd, stop_fd;
    unsigned cap;                /* connections it takes, at most */
    mproc_thread *main;          /* the acceptor, or the epoll loop */
    mproc_thread **conn_threads; /* threaded: written by the acceptor, read after joining it */
    atomic_uint accepted;        /* connections accepted */
    atomic_uint running;         /* served from now on: threads started / in the epoll set */
    atomic_uint refused;         /* accepted and closed: no thread could be started */
    int error;                   /* the loop's failure, read after joining it */
};

struct conn_arg {
    struct server *s;
    int fd;
};

/* A connection's thread: echo MSG-byte messages until the client closes. */
static int conn_main(void *arg)
{
    struct conn_arg *c = arg;
    struct server *s = c->s;
    int fd = c->fd;
    free(c);
    atomic_fetch_add(&s->running, 1);
    for (;;) {
        char buf[MSG];
        size_t got = 0;
        while (got < MSG) {
            ssize_t n = mproc__recv_some(fd, buf + got, MSG - got);
            if (n <= 0)
                goto out;
            got += (size_t)n;
        }
        if (mproc__send_all(fd, buf, MSG) != 0)
            break;
    }
out:
    close(fd);
    return 0;
}

static void start_conn_thread(struct server *s, int fd)
{
    unsigned i = atomic_load(&s->accepted);
    struct conn_arg *c = malloc(sizeof *c);
    int rc = c ? 0 : -ENOMEM;
    mproc_thread *t = NULL;
    if (rc == 0 && i < s->cap) {
        *c = (struct conn_arg){ .s = s, .fd = fd };
        rc = mproc__lab_thread(&t, &(mproc_thread_opts){ .fn = conn_main, .arg = c,
                                                          .name = "c10k-conn",
                                                          .stack_size = STACK_SIZE });
    } else if (rc == 0) {
        rc = -ENOSPC;
    }
    if (rc != 0) {
        free(c);
        close(fd);
        atomic_fetch_add(&s->refused, 1);
        return;
    }
    s->conn_threads[i] = t;
    atomic_store(&s->accepted, i + 1);
}

static int acceptor_main(void *arg)
{
    struct server *s = arg;
    struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN },
                           { .fd = s->stop_fd, .events = POLLIN } };
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            s->error = -errno;
            return s->error;
        }
        if (p[1].revents)
            return 0;
        int fd;
        while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
            start_conn_thread(s, fd);
    }
}

/* The epoll server's connections. */
struct econn {
    int fd;
    size_t have;
    char buf[MSG];
    struct econn *prev, *next;
};

static void econn_close(struct econn **all, struct econn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        *all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    close(c->fd);
    free(c);
}

/* Read what is there; answer every whole message. False: closed. */
static bool econn_serve(struct econn *c)
{
    for (;;) {
        ssize_t n = mproc__recv_some(c->fd, c->buf + c->have, MSG - c->have);
        if (n == -ETIMEDOUT)
            return true; /* nothing more for now */
        if (n <= 0)
            return false;
        c->have += (size_t)n;
        if (c->have == MSG) {
            c->have = 0;
            if (mproc__send_all(c->fd, c->buf, MSG) != 0)
                return false;
        }
    }
}

static void epoll_accept(struct server *s, int epfd, struct econn **all)
{
    int fd;
    while ((fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        struct econn *c = atomic_load(&s->accepted) < s->cap ? calloc(1, sizeof *c) : NULL;
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (c == NULL || epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(c);
            close(fd);
            atomic_fetch_add(&s->refused, 1);
            continue;
        }
        c->fd = fd;
        c->next = *all;
        if (*all)
            (*all)->prev = c;
        *all = c;
        atomic_fetch_add(&s->accepted, 1);
        atomic_fetch_add(&s->running, 1);
    }
}

static int epoll_main(void *arg)
{
    struct server *s = arg;
    struct econn *all = NULL;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event a = { .events = EPOLLIN, .data.ptr = &s->listen_fd };
    struct epoll_event b = { .events = EPOLLIN, .data.ptr = &s->stop_fd };
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, s->listen_fd, &a) != 0 ||
        epoll_ctl(epfd, EPOLL_CTL_ADD, s->stop_fd, &b) != 0) {
        s->error = -errno;
        if (epfd >= 0)
            close(epfd);
        return s->error;
    }
    struct epoll_event ev[256];
    for (bool stop = false; !stop;) {
        int n = epoll_wait(epfd, ev, 256, -1);
        if (n < 0 && errno != EINTR) {
            s->error = -errno;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &s->listen_fd)
                epoll_accept(s, epfd, &all);
            else if (ev[i].data.ptr == &s->stop_fd)
                stop = true;
            else if (!econn_serve(ev[i].data.ptr))
                econn_close(&all, ev[i].data.ptr); /* closing removes it from the set */
        }
    }
    while (all)
        econn_close(&all, all);
    close(epfd);
    return s->error;
}

static void server_free(struct server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->stop_fd >= 0)
        close(s->stop_fd);
    free(s->conn_threads);
    free(s);
}

static int server_start(struct server **out, bool threaded, unsigned cap, uint16_t *port)
{
    struct server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->threaded = threaded;
    s->cap = cap;
    s->listen_fd = mproc__tcp_listen(port, true);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = s->listen_fd < 0 ? s->listen_fd : s->stop_fd < 0 ? -errno : 0;
    if (rc == 0 && threaded && (s->conn_threads = calloc(cap, sizeof *s->conn_threads)) == NULL)
        rc = -ENOMEM;
    if (rc == 0)
        rc = mproc__lab_thread(&s->main,
                               &(mproc_thread_opts){ .fn = threaded ? acceptor_main : epoll_main,
                                                     .arg = s, .name = "c10k-server" });
    if (rc != 0) {
        server_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Stop the server (its clients closed already) and join its threads. */
static int server_stop(struct server *s)
{
    uint64_t one = 1;
    if (write(s->stop_fd, &one, sizeof one) != (ssize_t)sizeof one)
        return -errno; /* cannot happen with a valid eventfd */
    mproc_thread_join(s->main, -1, NULL);
    mproc_thread_destroy(s->main);
    unsigned n = atomic_load(&s->accepted);
    for (unsigned i = 0; s->threaded && i < n; i++) {
        mproc_thread_join(s->conn_threads[i], -1, NULL); /* ends on the client's EOF */
        mproc_thread_destroy(s->conn_threads[i]);
    }
    return s->error;
}

/* ---- the clients and the measurement -------------------------------- */

struct figures {
    unsigned established, served;
    long threads;             /* threads added to this process */
    double rss_kib, vsz_kib;  /* added, per connection */
    double median_us, p99_us; /* round trips over the active connections */
    unsigned refused;
};

/* One request/answer on fd; true if the echo came back. */
static bool round_trip(int fd, uint32_t tag)
{
    char out[MSG], in[MSG];
    memset(out, 0, sizeof out);
    memcpy(out, &tag, sizeof tag);
    if (mproc__send_all(fd, out, MSG) != 0)
        return false;
    size_t got = 0;
    while (got < MSG) {
        ssize_t n = mproc__recv_some(fd, in + got, MSG - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return memcmp(in, out, MSG) == 0;
}

/* Wait until *counter + *refused reaches want (or WAIT_MS passes). */
static bool wait_for(atomic_uint *counter, atomic_uint *refused, unsigned want)
{
    int64_t deadline = mproc_now_ns() + (int64_t)WAIT_MS * 1000000;
    while (atomic_load(counter) + atomic_load(refused) < want) {
        if (mproc_now_ns() > deadline)
            return false;
        mproc_sleep_ms(1);
    }
    return true;
}

/* Open up to n connections to the server, BATCH at a time, waiting for
 * it to accept each batch. Returns how many were opened. */
static unsigned connect_all(struct server *s, uint16_t port, unsigned n, int *clients)
{
    unsigned opened = 0;
    while (opened < n) {
        unsigned batch = n - opened < BATCH ? n - opened : BATCH;
        for (unsigned i = 0; i < batch; i++) {
            int fd = mproc__tcp_connect(port, IO_TIMEOUT_MS);
            if (fd < 0)
                return opened;
            clients[opened++] = fd;
        }
        if (!wait_for(&s->accepted, &s->refused, opened))
            return opened;
    }
    return opened;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int measure(bool threaded, unsigned n, unsigned trips, int *clients, double *samples,
                   struct figures *f)
{
    memset(f, 0, sizeof *f);
    long rss0 = mproc__self_rss_kib(), vsz0 = mproc__self_status("VmSize");
    long threads0 = mproc__self_threads_named("c10k-");
    struct server *s = NULL;
    uint16_t port = 0;
    int rc = server_start(&s, threaded, n, &port);
    if (rc < 0)
        return rc;
    unsigned opened = connect_all(s, port, n, clients);
    f->established = opened;
    wait_for(&s->running, &s->refused, opened);
    for (unsigned i = 0; i < opened; i++)
        f->served += round_trip(clients[i], i);
    long rss1 = mproc__self_rss_kib(), vsz1 = mproc__self_status("VmSize");
    long threads1 = mproc__self_threads_named("c10k-");

    size_t k = 0;
    unsigned active = opened < ACTIVE ? opened : ACTIVE;
    for (unsigned t = 0; t < trips && active > 0; t++) {
        for (unsigned a = 0; a < active; a++) {
            int fd = clients[(size_t)a * opened / active]; /* spread over the connections */
            int64_t t0 = mproc_now_ns();
            bool ok = round_trip(fd, t);
            if (ok)
                samples[k++] = (double)(mproc_now_ns() - t0) / 1e3;
        }
    }
    for (unsigned i = 0; i < opened; i++)
        close(clients[i]);
    rc = server_stop(s);
    f->refused = atomic_load(&s->refused);
    server_free(s);

    f->threads = threads1 - threads0;
    f->rss_kib = opened ? (double)(rss1 - rss0) / opened : 0;
    f->vsz_kib = opened ? (double)(vsz1 - vsz0) / opened : 0;
    qsort(samples, k, sizeof *samples, compare_doubles);
    f->median_us = k ? samples[k / 2] : 0;
    f->p99_us = k ? samples[k * 99 / 100 < k ? k * 99 / 100 : k - 1] : 0;
    return rc;
}

/* The figures of one server, as metrics named <prefix>_..., the first
 * line titled `title`. */
static void report_server(mproc__lab_report *r, const char *prefix, const char *title,
                          const struct figures *f)
{
    char key[64], text[64];
    const struct {
        const char *key, *unit, *text;
        double value;
    } m[] = {
        { "established", "count", NULL, f->established },
        { "served", "count", "  served", f->served },
        { "threads", "count", "  threads it used", (double)f->threads },
        { "rss_kib_per_conn", "KiB", "  resident memory per connection", f->rss_kib },
        { "vsz_kib_per_conn", "KiB", "  address space per connection", f->vsz_kib },
        { "rtt_median_us", "us", "  round trip, median (4 active)", f->median_us },
        { "rtt_p99_us", "us", "  round trip, 99th percentile", f->p99_us },
    };
    snprintf(text, sizeof text, "%s: established", title);
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        snprintf(key, sizeof key, "%s_%s", prefix, m[i].key);
        mproc__lab_metric(r, key, m[i].value, m[i].unit, m[i].text ? m[i].text : text);
    }
}

int mproc__lab_c10k(const mproc__lab_opts *o, mproc__lab_report *r)
{
    unsigned want = o->quick ? 200 : 2000, trips = o->quick ? 100 : 1000;
    long limit = mproc__raise_nofile(2 * (long)want + 64);
    unsigned n = want;
    if (limit < 0) {
        mproc__lab_note(r, "cannot read the open-files limit: %s", mproc_strerror((int)limit));
        return (int)limit;
    }
    if (limit < 2 * (long)want + 64) {
        n = limit > 64 + 2 * 8 ? (unsigned)((limit - 64) / 2) : 8;
        mproc__lab_note(r, "The open-files limit is %ld (hard limit reached): %u connections "
                           "instead of %u (each takes 2 descriptors here).",
                        limit, n, want);
    }
    int *clients = calloc(n, sizeof *clients);
    double *samples = calloc((size_t)trips * ACTIVE, sizeof *samples);
    if (clients == NULL || samples == NULL) {
        free(clients);
        free(samples);
        return -ENOMEM;
    }
    struct figures thr, ep;
    mproc__progress("lab c10k: %u connections, a thread each", n);
    int rc = measure(true, n, trips, clients, samples, &thr);
    if (rc == 0) {
        mproc__progress("lab c10k: %u connections, one epoll loop", n);
        rc = measure(false, n, trips, clients, samples, &ep);
    }
    free(clients);
    free(samples);
    if (rc < 0) {
        mproc__lab_note(r, "a server failed: %s", mproc_strerror(rc));
        return rc;
    }

    struct rlimit stack;
    double default_stack_mib = getrlimit(RLIMIT_STACK, &stack) == 0 &&
                                       stack.rlim_cur != RLIM_INFINITY
                                   ? (double)stack.rlim_cur / (1024.0 * 1024.0)
                                   : 8.0;
    mproc__lab_metric(r, "connections", n, "count", "connections (kept open, idle)");
    mproc__lab_metric(r, "nofile_limit", (double)limit, "count", "  open-files limit (soft)");
    mproc__lab_metric(r, "thread_stack_kib", STACK_SIZE / 1024, "KiB",
                      "  stack of a connection thread");
    report_server(r, "threads", "thread per connection", &thr);
    report_server(r, "epoll", "one epoll loop", &ep);

    mproc__lab_note(r, "Memory figures are this process's growth (both ends of every "
                       "connection live here); kernel socket buffers are in neither.");
    mproc__lab_note(r, "Connection threads have %d KiB stacks; with the default %.0f MiB "
                       "stack, %u threads would reserve %.1f GiB of address space.",
                    STACK_SIZE / 1024, default_stack_mib, n,
                    default_stack_mib * n / 1024.0);
    mproc__lab_note(r, "Address space also counts the malloc arenas glibc gives threads "
                       "that allocate (64 MiB reserved each, up to 8 per CPU): reserved, not "
                       "resident.");
    mproc__lab_note(r, "Round trips: %u on each of 4 connections while the other %u stay "
                       "idle; at this size the scheduler copes with %u sleeping threads.",
                    trips, n - 4, n);
    if (thr.refused || ep.refused)
        mproc__lab_note(r, "Refused connections (no thread could be started): %u threaded, %u "
                           "epoll.",
                        thr.refused, ep.refused);

    bool all = thr.established == n && thr.served == n && ep.established == n && ep.served == n;
    bool threads_ok = thr.threads == (long)n + 1 && ep.threads == 1;
    double floor_kib = ep.rss_kib > 0.1 ? ep.rss_kib : 0.1;
    bool heavier = thr.rss_kib > 2 * floor_kib;
    if (!all)
        mproc__lab_verdict(r, false,
                           "not every connection was served: %u/%u threaded, %u/%u epoll",
                           thr.served, n, ep.served, n);
    else if (!threads_ok)
        mproc__lab_verdict(r, false, "threads used: %ld threaded, %ld epoll (expected %u and 1)",
                           thr.threads, ep.threads, n + 1);
    else if (heavier)
        mproc__lab_verdict(r, true,
                           "%u connections: a thread each took %ld threads and %.1f KiB per "
                           "connection (%.0f KiB of address space); one epoll loop, 1 thread "
                           "and %.2f KiB",
                           n, thr.threads, thr.rss_kib, thr.vsz_kib, ep.rss_kib);
    else
        mproc__lab_verdict(r, false,
                           "a thread per connection used %.2f KiB per connection, epoll %.2f "
                           "KiB: not the difference the notes describe",
                           thr.rss_kib, ep.rss_kib);
    return 0;
}
