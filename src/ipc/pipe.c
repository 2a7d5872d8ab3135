/*
 * ipc/pipe.c -- mproc_pipe / mproc_conn: Python's multiprocessing.Pipe
 * and Connection, over an AF_UNIX SOCK_SEQPACKET socket pair.
 *
 * Why a socket pair and not a shared-memory ring: the one promise that
 * matters most here is "the peer's close or death makes recv return
 * -EPIPE after the messages already sent, never hang". The kernel keeps
 * exactly that promise for a socket: when the last descriptor of the
 * peer's end is closed -- by close, exit or SIGKILL alike -- the queued
 * packets can still be read, and then recv returns 0 (end of file), and
 * send fails with EPIPE. A ring in shared memory would have to learn who
 * holds the other end (which changes with every fork) and poll its
 * liveness. SEQPACKET keeps packet boundaries, so no framing state lives
 * across calls and a half-read message cannot desynchronise the stream.
 *
 * Framing. A message is sent as one or more packets, each with a 16-byte
 * header {kind, total}: the first packet (FIRST) carries the message's
 * total length, the others (MORE) continue it; each carries up to
 * `chunk` bytes of payload (64 KiB, or less when the socket buffer is
 * small). The receiver peeks at each header before taking the packet, so
 * a message too large for the caller's buffer stays queued (-EMSGSIZE),
 * and a FIRST where a MORE was expected (a sender that died half-way
 * through a message while another process still holds its end, and then
 * sent again) starts the new message instead of corrupting the old one;
 * stray MORE packets are skipped.
 *
 * Each end has two process-private mutexes, so threads of one process
 * may send (or receive) on one end at once without interleaving packets.
 * A forked child gets its own copy of the handle and of the descriptor.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "os/sys.h"

#define CONN_MAGIC      0x6d436e6eu
#define DEFAULT_MESSAGE ((size_t)64 << 20)
#define CHUNK_MAX       ((size_t)64 << 10)

enum { PKT_FIRST = 1, PKT_MORE = 2 };

struct pkt_hdr {
    uint32_t kind;
    uint32_t reserved;
    uint64_t total; /* FIRST: the message's length */
};

struct mproc_conn {
    uint32_t magic;
    int fd; /* -1 once closed */
    bool readable;
    bool writable;
    size_t max_message;
    size_t chunk;
    pthread_mutex_t send_mu;
    pthread_mutex_t recv_mu;
};

static bool conn_valid(const mproc_conn *c)
{
    return c && c->magic == CONN_MAGIC;
}

static mproc_conn *conn_new(int fd, bool readable, bool writable, size_t max_message)
{
    mproc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    c->readable = readable;
    c->writable = writable;
    c->max_message = max_message;
    /* A packet must fit the socket's send buffer: keep it to half. */
    int sndbuf = 0;
    socklen_t sl = sizeof sndbuf;
    size_t chunk = CHUNK_MAX;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == 0 && sndbuf > 0) {
        size_t half = (size_t)sndbuf / 2;
        if (half < chunk + sizeof(struct pkt_hdr))
            chunk = half > 2048 ? half - sizeof(struct pkt_hdr) : 1024;
    }
    c->chunk = chunk;
    pthread_mutex_init(&c->send_mu, NULL);
    pthread_mutex_init(&c->recv_mu, NULL);
    c->magic = CONN_MAGIC;
    return c;
}

int mproc_pipe_create(mproc_conn **a, mproc_conn **b, bool duplex, const mproc_pipe_opts *opts)
{
    if (!a || !b)
        return -EINVAL;
    *a = *b = NULL;
    size_t max_message = opts && opts->max_message ? opts->max_message : DEFAULT_MESSAGE;
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0)
        return -errno;
    if (!duplex) {
        /* a only reads, b only writes; the kernel enforces it too. */
        shutdown(fds[0], SHUT_WR);
        shutdown(fds[1], SHUT_RD);
    }
    mproc_conn *ca = conn_new(fds[0], true, duplex, max_message);
    mproc_conn *cb = conn_new(fds[1], duplex, true, max_message);
    if (!ca || !cb) {
        free(ca);
        free(cb);
        close(fds[0]);
        close(fds[1]);
        return -ENOMEM;
    }
    *a = ca;
    *b = cb;
    return 0;
}

int mproc_pipe(mproc_conn **a, mproc_conn **b, bool duplex)
{
    return mproc_pipe_create(a, b, duplex, NULL);
}

int mproc_conn_close(mproc_conn *c)
{
    if (!conn_valid(c))
        return -EINVAL;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    return 0;
}

int mproc_conn_destroy(mproc_conn *c)
{
    if (!conn_valid(c))
        return -EINVAL;
    mproc_conn_close(c);
    c->magic = 0;
    pthread_mutex_destroy(&c->send_mu);
    pthread_mutex_destroy(&c->recv_mu);
    free(c);
    return 0;
}

int mproc_conn_fileno(const mproc_conn *c)
{
    if (!conn_valid(c))
        return -EINVAL;
    return c->fd >= 0 ? c->fd : -EBADF;
}

/* ------------------------------------------------------------------ */
/* send                                                                */
/* ------------------------------------------------------------------ */

static int send_packet(int fd, const struct pkt_hdr *h, const char *data, size_t n)
{
    struct iovec iov[2] = { { (void *)h, sizeof *h }, { (void *)data, n } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = n ? 2 : 1 };
    for (;;) {
        ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (r >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        return errno == ECONNRESET || errno == ENOTCONN ? -EPIPE : -errno;
    }
}

int mproc_conn_send(mproc_conn *c, const void *data, size_t len)
{
    if (!conn_valid(c) || (!data && len))
        return -EINVAL;
    if (c->fd < 0 || !c->writable)
        return -EBADF;
    if (len > c->max_message)
        return -EMSGSIZE;
    pthread_mutex_lock(&c->send_mu);
    const char *p = data;
    struct pkt_hdr h = { PKT_FIRST, 0, len };
    size_t off = 0;
    int rc;
    do {
        size_t n = len - off < c->chunk ? len - off : c->chunk;
        rc = send_packet(c->fd, &h, p + off, n);
        off += n;
        h.kind = PKT_MORE;
        h.total = 0;
    } while (rc == 0 && off < len);
    pthread_mutex_unlock(&c->send_mu);
    return rc;
}

/* ------------------------------------------------------------------ */
/* recv                                                                */
/* ------------------------------------------------------------------ */

/* Wait until the socket is readable or has reached end of file, at most
 * until `deadline`. Returns 1, 0 (timed out) or -errno. */
static int wait_readable(int fd, int64_t deadline)
{
    for (;;) {
        int ms = -1;
        if (deadline != MPROC__FOREVER) {
            int64_t left = deadline - mproc__now();
            if (left < 0)
                left = 0;
            left = (left + 999999) / 1000000;
            ms = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, ms);
        if (r > 0)
            return 1;
        if (r == 0) {
            if (deadline == MPROC__FOREVER || mproc__now() >= deadline)
                return 0;
            continue; /* poll rounds its timeout: not yet */
        }
        if (errno != EINTR)
            return -errno;
    }
}

/* Peek at the next packet's header without taking it. Returns 1 with *h
 * set, 0 at end of file, -EAGAIN if none is queued, or -errno. */
static int peek_header(int fd, struct pkt_hdr *h, bool wait)
{
    for (;;) {
        ssize_t r = recv(fd, h, sizeof *h, MSG_PEEK | (wait ? 0 : MSG_DONTWAIT));
        if (r == 0)
            return 0;
        if (r > 0) {
            if ((size_t)r < sizeof *h)
                h->kind = 0; /* not ours: skipped as a stray packet */
            return 1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return -EAGAIN;
        return errno == ECONNRESET ? 0 : -errno;
    }
}

/* Take the next packet: header into *h, payload (up to n bytes) into dst.
 * Returns the payload length, or -errno (0 bytes taken at end of file is
 * reported as -EPIPE). */
static ssize_t take_packet(int fd, struct pkt_hdr *h, void *dst, size_t n)
{
    struct iovec iov[2] = { { h, sizeof *h }, { dst, n } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = n ? 2 : 1 };
    for (;;) {
        ssize_t r = recvmsg(fd, &m, 0);
        if (r == 0)
            return -EPIPE;
        if (r > 0)
            return r < (ssize_t)sizeof *h ? 0 : r - (ssize_t)sizeof *h;
        if (errno != EINTR)
            return errno == ECONNRESET ? -EPIPE : -errno;
    }
}

static void skip_packet(int fd)
{
    struct pkt_hdr h;
    take_packet(fd, &h, NULL, 0);
}

/* Receive one message into buf (cap) or, with alloc, a malloc'ed buffer. */
static int do_recv(mproc_conn *c, void *buf, size_t cap, void **alloc, size_t *len,
                   int64_t timeout_ms)
{
    int64_t deadline;
    if (mproc__deadline(timeout_ms, &deadline) != 0)
        return -EINVAL;
    if (c->fd < 0 || !c->readable)
        return -EBADF;
    pthread_mutex_lock(&c->recv_mu);
    int rc;
    for (;;) {
        struct pkt_hdr h;
        rc = peek_header(c->fd, &h, false);
        if (rc == -EAGAIN) {
            rc = timeout_ms == 0 ? 0 : wait_readable(c->fd, deadline);
            if (rc == 0) {
                rc = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
                break;
            }
            if (rc < 0)
                break;
            continue;
        }
        if (rc == 0) {
            rc = -EPIPE;
            break;
        }
        if (rc < 0)
            break;
        if (h.kind != PKT_FIRST || h.total > c->max_message) {
            skip_packet(c->fd); /* the rest of a message whose start we never saw */
            continue;
        }
        size_t total = (size_t)h.total;
        char *dst = buf;
        if (alloc) {
            dst = malloc(total ? total : 1);
            if (!dst) {
                rc = -ENOMEM;
                break;
            }
        } else if (total > cap) {
            *len = total;
            rc = -EMSGSIZE;
            break;
        }
        /* The message is ours from here on: its sender is writing it now,
         * so the rest comes without the caller's timeout (or end of file
         * comes, if it dies). */
        size_t got = 0;
        bool first = true, restart = false;
        rc = 0;
        while (rc == 0 && (first || got < total)) {
            if (!first) {
                int p = peek_header(c->fd, &h, true);
                if (p <= 0) {
                    rc = p == 0 ? -EPIPE : p;
                    break;
                }
                if (h.kind == PKT_FIRST) { /* the old sender gave up: start over */
                    restart = true;
                    break;
                }
                if (h.kind != PKT_MORE) {
                    skip_packet(c->fd);
                    continue;
                }
            }
            ssize_t n = take_packet(c->fd, &h, dst + got, total - got);
            if (n < 0)
                rc = (int)n;
            else
                got += (size_t)n;
            first = false;
        }
        if (rc == 0 && !restart) {
            if (alloc)
                *alloc = dst;
            *len = total;
            break;
        }
        if (alloc)
            free(dst);
        if (rc != 0)
            break;
    }
    pthread_mutex_unlock(&c->recv_mu);
    return rc;
}

int mproc_conn_recv(mproc_conn *c, void *buf, size_t cap, size_t *len, int64_t timeout_ms)
{
    if (!conn_valid(c) || !len || (!buf && cap))
        return -EINVAL;
    return do_recv(c, buf, cap, NULL, len, timeout_ms);
}

int mproc_conn_recv_alloc(mproc_conn *c, void **data, size_t *len, int64_t timeout_ms)
{
    if (!conn_valid(c) || !data || !len)
        return -EINVAL;
    *data = NULL;
    return do_recv(c, NULL, 0, data, len, timeout_ms);
}

int mproc_conn_poll(mproc_conn *c, int64_t timeout_ms)
{
    int64_t deadline;
    if (!conn_valid(c) || mproc__deadline(timeout_ms, &deadline) != 0)
        return -EINVAL;
    if (c->fd < 0 || !c->readable)
        return -EBADF;
    for (;;) {
        struct pkt_hdr h;
        int rc = peek_header(c->fd, &h, false);
        if (rc == 1)
            return 1;
        if (rc == 0)
            return -EPIPE;
        if (rc != -EAGAIN)
            return rc;
        rc = timeout_ms == 0 ? 0 : wait_readable(c->fd, deadline);
        if (rc <= 0)
            return rc;
    }
}
