/*
 * bench/bench_ipc.c -- mproc_queue and mproc_conn between two processes,
 * side by side with pipe(2), a POSIX message queue and the machine's
 * ceiling: a minimal single-producer single-consumer byte ring in shared
 * memory where both sides busy-spin (written here; the ceiling, not a
 * competitor).
 *
 *   1. 64-byte messages, one producer process -> one consumer process,
 *      messages per second.
 *   2. 1 MiB messages, the same, GB/s (the POSIX queue is skipped: its
 *      default limits allow 8 KiB messages).
 *
 * Every transfer forks a producer and a consumer; the producer notes the
 * time before its first message, the consumer after its last one, and
 * checks a byte of every message so nothing can be skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "mproc/ipc.h"

enum kind { SPIN, QUEUE, PIPE2, MQUEUE, CONN };

static const char *const kind_name[] = { "busy-spin SPSC ring (ceiling)", "mproc_queue",
                                         "pipe(2)", "POSIX mqueue", "mproc_conn (Pipe)" };

/* Shared between the parent and the two children of a transfer. */
struct shared {
    _Atomic int go;
    _Atomic int ready;
    int64_t t_start, t_end;
    _Atomic long bad;
    /* The spin ring: 1 MiB of bytes, like mproc_queue's default ring. */
    _Alignas(64) _Atomic uint64_t tail;
    _Alignas(64) _Atomic uint64_t head;
    _Alignas(64) char ring[1 << 20];
};

#define RING_SIZE ((uint64_t)1 << 20)

static struct shared *S;

struct xfer {
    enum kind kind;
    size_t size;
    long n;
    /* per transfer */
    mproc_queue *q;
    mproc_conn *ca, *cb;
    int pfd[2];
    mqd_t mq;
};

/* ---- the ceiling: a byte stream through a ring, both sides spinning ---- */

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void spin_write(const char *p, size_t n)
{
    uint64_t t = atomic_load_explicit(&S->tail, memory_order_relaxed);
    while (n > 0) {
        uint64_t h;
        while (RING_SIZE - (t - (h = atomic_load_explicit(&S->head, memory_order_acquire))) == 0)
            relax();
        size_t room = (size_t)(RING_SIZE - (t - h));
        size_t off = (size_t)(t & (RING_SIZE - 1));
        size_t k = n < room ? n : room;
        if (k > RING_SIZE - off)
            k = RING_SIZE - off;
        if (k > (64 << 10))
            k = 64 << 10; /* pieces, so the consumer can start early */
        memcpy(S->ring + off, p, k);
        t += k;
        p += k;
        n -= k;
        atomic_store_explicit(&S->tail, t, memory_order_release);
    }
}

static void spin_read(char *p, size_t n)
{
    uint64_t h = atomic_load_explicit(&S->head, memory_order_relaxed);
    while (n > 0) {
        uint64_t t;
        while ((t = atomic_load_explicit(&S->tail, memory_order_acquire)) == h)
            relax();
        size_t off = (size_t)(h & (RING_SIZE - 1));
        size_t k = (size_t)(t - h) < n ? (size_t)(t - h) : n;
        if (k > RING_SIZE - off)
            k = RING_SIZE - off;
        memcpy(p, S->ring + off, k);
        h += k;
        p += k;
        n -= k;
        atomic_store_explicit(&S->head, h, memory_order_release);
    }
}

/* ---- the two sides ---- */

static void full_write(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            bench_die("write", errno);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void full_read(int fd, char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            bench_die("read", r < 0 ? errno : EPIPE);
        }
        p += r;
        n -= (size_t)r;
    }
}

static void wait_go(void)
{
    atomic_fetch_add(&S->ready, 1);
    while (!atomic_load(&S->go))
        relax();
}

static void producer(struct xfer *x)
{
    char *msg = malloc(x->size);
    if (!msg)
        bench_die("malloc", ENOMEM);
    memset(msg, 'x', x->size);
    wait_go();
    S->t_start = bench_now_ns();
    for (long i = 0; i < x->n; i++) {
        msg[0] = (char)i;
        msg[x->size - 1] = (char)i;
        int rc = 0;
        switch (x->kind) {
        case SPIN:
            spin_write(msg, x->size);
            break;
        case QUEUE:
            rc = mproc_queue_put(x->q, msg, x->size, -1);
            break;
        case PIPE2:
            full_write(x->pfd[1], msg, x->size);
            break;
        case MQUEUE:
            rc = mq_send(x->mq, msg, x->size, 0) == 0 ? 0 : -errno;
            break;
        case CONN:
            rc = mproc_conn_send(x->cb, msg, x->size);
            break;
        }
        if (rc != 0)
            bench_die("send", rc);
    }
    free(msg);
}

static void consumer(struct xfer *x)
{
    char *buf = malloc(x->size);
    if (!buf)
        bench_die("malloc", ENOMEM);
    wait_go();
    long bad = 0;
    for (long i = 0; i < x->n; i++) {
        int rc = 0;
        size_t len = x->size;
        switch (x->kind) {
        case SPIN:
            spin_read(buf, x->size);
            break;
        case QUEUE:
            rc = mproc_queue_get(x->q, buf, x->size, &len, -1);
            break;
        case PIPE2:
            full_read(x->pfd[0], buf, x->size);
            break;
        case MQUEUE: {
            ssize_t r = mq_receive(x->mq, buf, x->size, NULL);
            rc = r < 0 ? -errno : 0;
            len = (size_t)r;
            break;
        }
        case CONN:
            rc = mproc_conn_recv(x->ca, buf, x->size, &len, -1);
            break;
        }
        if (rc != 0)
            bench_die("receive", rc);
        bad += len != x->size || buf[0] != (char)i || buf[x->size - 1] != (char)i;
    }
    S->t_end = bench_now_ns();
    S->bad = bad;
    free(buf);
}

static void setup(struct xfer *x)
{
    atomic_store(&S->go, 0);
    atomic_store(&S->ready, 0);
    atomic_store(&S->head, 0);
    atomic_store(&S->tail, 0);
    int rc = 0;
    switch (x->kind) {
    case SPIN:
        break;
    case QUEUE:
        rc = mproc_queue_create(&x->q, NULL);
        break;
    case PIPE2:
        rc = pipe(x->pfd) == 0 ? 0 : -errno;
        break;
    case MQUEUE: {
        struct mq_attr a = { .mq_maxmsg = 10, .mq_msgsize = (long)x->size };
        char name[64];
        snprintf(name, sizeof name, "/mproc-bench-%d", (int)getpid());
        x->mq = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
        rc = x->mq == (mqd_t)-1 ? -errno : 0;
        mq_unlink(name);
        break;
    }
    case CONN:
        rc = mproc_pipe(&x->ca, &x->cb, true);
        break;
    }
    if (rc != 0)
        bench_die(kind_name[x->kind], rc);
}

static void teardown(struct xfer *x)
{
    switch (x->kind) {
    case SPIN:
        break;
    case QUEUE:
        mproc_queue_destroy(x->q);
        break;
    case PIPE2:
        close(x->pfd[0]);
        close(x->pfd[1]);
        break;
    case MQUEUE:
        mq_close(x->mq);
        break;
    case CONN:
        mproc_conn_destroy(x->ca);
        mproc_conn_destroy(x->cb);
        break;
    }
}

/* One transfer; returns messages per second. */
static double run_xfer(void *arg)
{
    struct xfer *x = arg;
    setup(x);
    pid_t c = fork();
    if (c == 0) {
        consumer(x);
        _exit(0);
    }
    pid_t p = fork();
    if (p == 0) {
        producer(x);
        _exit(0);
    }
    if (c < 0 || p < 0)
        bench_die("fork", errno);
    while (atomic_load(&S->ready) < 2)
        usleep(100);
    atomic_store(&S->go, 1);
    int st1, st2;
    waitpid(p, &st1, 0);
    waitpid(c, &st2, 0);
    if (!WIFEXITED(st1) || WEXITSTATUS(st1) || !WIFEXITED(st2) || WEXITSTATUS(st2))
        bench_die("child failed", EIO);
    if (S->bad)
        bench_die("messages lost or corrupt", EIO);
    teardown(x);
    return (double)x->n * 1e9 / (double)(S->t_end - S->t_start);
}

static void one_case(const char *title, size_t size, long n, int with_mq, double scale,
                     const char *unit)
{
    bench_section("%s", title);
    enum kind kinds[] = { SPIN, QUEUE, PIPE2, CONN, MQUEUE };
    int k = with_mq ? 5 : 4;
    struct xfer x[5];
    void *args[5];
    for (int i = 0; i < k; i++) {
        x[i] = (struct xfer){ .kind = kinds[i], .size = size, .n = n };
        args[i] = &x[i];
    }
    double v[5];
    bench_compare(k, run_xfer, args, v);
    for (int i = 0; i < k; i++)
        bench_figure(kind_name[kinds[i]], v[i] * scale, unit, i ? kind_name[SPIN] : NULL,
                     v[0] * scale);
    char what[160];
    snprintf(what, sizeof what, "%zu-byte messages: mproc_queue / busy-spin ring", size);
    bench_target(what, v[1] / v[0], bench_rounds(1, 0), BENCH_HIGHER, 0.5);
    snprintf(what, sizeof what, "%zu-byte messages: mproc_queue / pipe(2)", size);
    if (size <= 64)
        bench_target(what, v[1] / v[2], bench_rounds(1, 2), BENCH_HIGHER, 3.0);
    else
        bench_info(what, v[1] / v[2], bench_rounds(1, 2));
    snprintf(what, sizeof what, "%zu-byte messages: mproc_conn / pipe(2)", size);
    bench_info(what, v[3] / v[2], bench_rounds(3, 2));
    if (with_mq) {
        snprintf(what, sizeof what, "%zu-byte messages: mproc_queue / POSIX mqueue", size);
        bench_info(what, v[1] / v[4], bench_rounds(1, 4));
    }
}

int main(int argc, char **argv)
{
    bench_init(argc, argv,
               "bench_ipc: mproc_queue and mproc_conn between two processes, against "
               "pipe(2), POSIX mqueue and a busy-spin ring",
               NULL);
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED)
        bench_die("mmap", errno);
    if (bench_case(1))
        one_case("1. 64-byte messages, 1 producer process -> 1 consumer process "
                 "(million msgs/s, higher is better)",
                 64, bench_scale(2000000, 200000), 1, 1e-6, "M msg/s");
    if (bench_case(2))
        one_case("2. 1 MiB messages, 1 producer process -> 1 consumer process "
                 "(GB/s, higher is better)",
                 1 << 20, bench_scale(2000, 200), 0, (double)(1 << 20) * 1e-9, "GB/s");
    return bench_finish();
}
