/*
 * bench/bench_ipc.c -- mproc_queue and mproc_conn between two processes,
 * side by side with pipe(2), a POSIX message queue, ZeroMQ (PUSH/PULL over
 * ipc://), Boost.Interprocess message_queue, Python's multiprocessing
 * Queue and Pipe, and the machine's ceiling: a minimal single-producer
 * single-consumer byte ring in shared memory where both sides busy-spin
 * (written here; the ceiling, not a competitor).
 *
 *   1. 64-byte messages, one producer process -> one consumer process,
 *      messages per second; mproc_queue also in batches of 32
 *      (mproc_queue_put_many / get_many).
 *   2. 1 MiB messages, the same, GB/s (the POSIX queue is skipped: its
 *      default limits allow 8 KiB messages).
 *
 * Every transfer forks a producer and a consumer; the producer notes the
 * time before its first message, the consumer after its last one, and
 * checks a byte of every message so nothing can be skipped. Python's
 * figures come from py_ipc.py (next to this file), measured the same way
 * in its own processes, once per case after the C figures.
 *
 * ZeroMQ (libzmq, found with pkg-config) and Boost (headers, with a C++
 * compiler: bench_ipc_boost.cpp) are optional, as is python3: without one,
 * its lines say "skipped (not installed)" and its targets SKIP.
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef BENCH_HAVE_ZMQ
#include <zmq.h>
#endif

#include "harness.h"
#include "mproc/ipc.h"

#ifdef BENCH_HAVE_BOOST
/* bench_ipc_boost.cpp: Boost.Interprocess message_queue, by name. */
int bench_boost_create(const char *name, size_t max_msgs, size_t msg_size);
void *bench_boost_open(const char *name);
int bench_boost_send(void *h, const void *p, size_t n);
int bench_boost_recv(void *h, void *buf, size_t cap, size_t *len);
void bench_boost_close(void *h);
void bench_boost_remove(const char *name);
#endif

enum kind { SPIN, QUEUE, PIPE2, MQUEUE, CONN, ZMQ, BOOST, QMANY, NKINDS };

static const char *const kind_name[] = { "busy-spin SPSC ring (ceiling)", "mproc_queue",
                                         "pipe(2)", "POSIX mqueue", "mproc_conn (Pipe)",
                                         "ZeroMQ PUSH/PULL ipc://",
                                         "Boost.Interprocess message_queue",
                                         "mproc_queue put_many/get_many (32)" };

/* QMANY: messages per put_many / most per get_many. */
#define BATCH 32

/* Whether each kind was compiled in. */
static const int have_kind[NKINDS] = {
    [SPIN] = 1, [QUEUE] = 1, [PIPE2] = 1, [MQUEUE] = 1, [CONN] = 1, [QMANY] = 1,
#ifdef BENCH_HAVE_ZMQ
    [ZMQ] = 1,
#endif
#ifdef BENCH_HAVE_BOOST
    [BOOST] = 1,
#endif
};

/* Shared between the parent and the two children of a transfer. */
struct shared {
    _Atomic int go;
    _Atomic int ready;
    _Atomic int bound; /* ZeroMQ: the producer has bound its endpoint */
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
    char name[64]; /* ZeroMQ's endpoint, Boost's queue name */
    void *zctx, *zsock; /* ZeroMQ, in each child */
    void *bq;           /* Boost, in each child */
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

/*
 * What the alternatives may hold at once: about 1 MiB of messages, like
 * mproc_queue's default ring, and at least 4 (ZeroMQ's high-water mark on
 * each side, Boost's max_num_msg).
 */
static size_t held(size_t size)
{
    size_t k = ((size_t)1 << 20) / size;
    return k < 4 ? 4 : k;
}

#ifdef BENCH_HAVE_ZMQ
/*
 * A child's ZeroMQ socket: the producer binds a PUSH socket, the consumer
 * connects a PULL socket once it is bound, and one empty message goes
 * through before the clock starts, so connecting is not timed.
 */
static void zmq_open_side(struct xfer *x, int push)
{
    int hwm = (int)held(x->size);
    x->zctx = zmq_ctx_new();
    if (x->zctx == NULL)
        bench_die("zmq_ctx_new", errno);
    x->zsock = zmq_socket(x->zctx, push ? ZMQ_PUSH : ZMQ_PULL);
    if (x->zsock == NULL)
        bench_die("zmq_socket", errno);
    if (zmq_setsockopt(x->zsock, push ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm) != 0)
        bench_die("zmq_setsockopt", errno);
    if (push) {
        if (zmq_bind(x->zsock, x->name) != 0)
            bench_die("zmq_bind", errno);
        atomic_store(&S->bound, 1);
        if (zmq_send(x->zsock, "", 0, 0) != 0)
            bench_die("zmq_send", errno);
    } else {
        char c;
        while (!atomic_load(&S->bound))
            usleep(100);
        if (zmq_connect(x->zsock, x->name) != 0)
            bench_die("zmq_connect", errno);
        if (zmq_recv(x->zsock, &c, sizeof c, 0) != 0)
            bench_die("zmq_recv", errno);
    }
}

static void zmq_close_side(struct xfer *x)
{
    zmq_close(x->zsock);
    zmq_ctx_term(x->zctx); /* the producer's waits until all is delivered */
}
#endif

/* What each child opens for itself before the clock starts. */
static void child_open(struct xfer *x, int producing)
{
    (void)producing;
    switch (x->kind) {
    case ZMQ:
#ifdef BENCH_HAVE_ZMQ
        zmq_open_side(x, producing);
#endif
        break;
    case BOOST:
#ifdef BENCH_HAVE_BOOST
        x->bq = bench_boost_open(x->name);
        if (x->bq == NULL)
            bench_die("boost message_queue open", EIO);
#endif
        break;
    default:
        break;
    }
}

static void child_close(struct xfer *x)
{
    switch (x->kind) {
    case ZMQ:
#ifdef BENCH_HAVE_ZMQ
        zmq_close_side(x);
#endif
        break;
    case BOOST:
#ifdef BENCH_HAVE_BOOST
        bench_boost_close(x->bq);
#endif
        break;
    default:
        break;
    }
}

/* QMANY's sides: batches of BATCH messages, each in a buffer of its own. */
static void producer_many(struct xfer *x)
{
    char *msg = malloc(BATCH * x->size);
    struct iovec iov[BATCH];
    if (!msg)
        bench_die("malloc", ENOMEM);
    memset(msg, 'x', BATCH * x->size);
    wait_go();
    S->t_start = bench_now_ns();
    for (long i = 0; i < x->n; i += BATCH) {
        int k = x->n - i < BATCH ? (int)(x->n - i) : BATCH;
        for (int j = 0; j < k; j++) {
            char *m = msg + (size_t)j * x->size;
            m[0] = m[x->size - 1] = (char)(i + j);
            iov[j] = (struct iovec){ m, x->size };
        }
        int rc = mproc_queue_put_many(x->q, iov, (size_t)k, -1);
        if (rc != k)
            bench_die("mproc_queue_put_many", rc < 0 ? rc : EIO);
    }
    free(msg);
}

static void consumer_many(struct xfer *x)
{
    char *buf = malloc(BATCH * x->size);
    struct iovec iov[BATCH];
    if (!buf)
        bench_die("malloc", ENOMEM);
    wait_go();
    long bad = 0;
    for (long i = 0; i < x->n;) {
        int k = mproc_queue_get_many(x->q, buf, BATCH * x->size, iov, BATCH, -1);
        if (k < 1)
            bench_die("mproc_queue_get_many", k);
        for (int j = 0; j < k; j++, i++) {
            const char *m = iov[j].iov_base;
            bad += iov[j].iov_len != x->size || m[0] != (char)i ||
                   m[x->size - 1] != (char)i;
        }
    }
    S->t_end = bench_now_ns();
    S->bad = bad;
    free(buf);
}

static void producer(struct xfer *x)
{
    if (x->kind == QMANY) {
        producer_many(x);
        return;
    }
    char *msg = malloc(x->size);
    if (!msg)
        bench_die("malloc", ENOMEM);
    memset(msg, 'x', x->size);
    child_open(x, 1);
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
        case ZMQ:
#ifdef BENCH_HAVE_ZMQ
            rc = zmq_send(x->zsock, msg, x->size, 0) == (int)x->size ? 0 : -errno;
#endif
            break;
        case BOOST:
#ifdef BENCH_HAVE_BOOST
            rc = bench_boost_send(x->bq, msg, x->size);
#endif
            break;
        default:
            break;
        }
        if (rc != 0)
            bench_die("send", rc);
    }
    child_close(x);
    free(msg);
}

static void consumer(struct xfer *x)
{
    if (x->kind == QMANY) {
        consumer_many(x);
        return;
    }
    char *buf = malloc(x->size);
    if (!buf)
        bench_die("malloc", ENOMEM);
    child_open(x, 0);
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
        case ZMQ: {
#ifdef BENCH_HAVE_ZMQ
            int r = zmq_recv(x->zsock, buf, x->size, 0);
            rc = r < 0 ? -errno : 0;
            len = (size_t)r;
#endif
            break;
        }
        case BOOST:
#ifdef BENCH_HAVE_BOOST
            rc = bench_boost_recv(x->bq, buf, x->size, &len);
#endif
            break;
        default:
            break;
        }
        if (rc != 0)
            bench_die("receive", rc);
        bad += len != x->size || buf[0] != (char)i || buf[x->size - 1] != (char)i;
    }
    S->t_end = bench_now_ns();
    S->bad = bad;
    child_close(x);
    free(buf);
}

static void setup(struct xfer *x)
{
    atomic_store(&S->go, 0);
    atomic_store(&S->ready, 0);
    atomic_store(&S->bound, 0);
    atomic_store(&S->head, 0);
    atomic_store(&S->tail, 0);
    int rc = 0;
    switch (x->kind) {
    case SPIN:
        break;
    case QUEUE:
    case QMANY:
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
    case ZMQ:
        snprintf(x->name, sizeof x->name, "ipc:///tmp/mproc-bench-zmq-%d", (int)getpid());
        break;
    case BOOST:
#ifdef BENCH_HAVE_BOOST
        snprintf(x->name, sizeof x->name, "mproc-bench-boost-%d", (int)getpid());
        rc = bench_boost_create(x->name, held(x->size), x->size);
#endif
        break;
    default:
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
    case QMANY:
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
    case ZMQ:
        unlink(x->name + strlen("ipc://"));
        break;
    case BOOST:
#ifdef BENCH_HAVE_BOOST
        bench_boost_remove(x->name);
#endif
        break;
    default:
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

/* ---- Python's multiprocessing.Queue and Pipe (py_ipc.py) ---- */

static void skipped(const char *what)
{
    fprintf(bench_cfg.json ? stderr : stdout, "  %-46s skipped (not installed)\n", what);
}

/* Runs py_ipc.py: messages per second of Python's Queue (rate[0]) and
 * Pipe (rate[1]); 0, or -1 (with a line saying why) when not measured. */
static int python_ipc(size_t size, long n, double rate[2])
{
    char python[4096], args[96], line[128] = "";

    if (!bench_python(python, sizeof python)) {
        skipped("python3 multiprocessing.Queue and Pipe");
        return -1;
    }
    snprintf(args, sizeof args, "%zu %ld %d", size, n, bench_cfg.runs);
    FILE *p = bench_python_open(BENCH_PY_SCRIPT, args);
    if (p == NULL)
        return -1;
    char *got = fgets(line, sizeof line, p);
    int status = pclose(p);
    char *end = line, *end2 = line;
    if (got != NULL) {
        rate[0] = strtod(line, &end);
        rate[1] = strtod(end, &end2);
    }
    if (got == NULL || end == line || end2 == end || status != 0 || !(rate[0] > 0) ||
        !(rate[1] > 0)) {
        line[strcspn(line, "\n")] = '\0';
        bench_note("python3: failed (exit status %#x, output '%s')", status,
                   got != NULL ? line : "");
        return -1;
    }
    return 0;
}

/* ---- the cases ---- */

static double v[NKINDS]; /* this case's figures (NaN: not measured) */
static int pos[NKINDS];  /* where each is in bench_compare's order, or -1 */

static double ratio(enum kind a, enum kind b)
{
    return pos[a] >= 0 && pos[b] >= 0 ? v[a] / v[b] : NAN;
}

static bench_range rounds(enum kind a, enum kind b)
{
    return pos[a] >= 0 && pos[b] >= 0 ? bench_rounds(pos[a], pos[b]) : BENCH_NO_RANGE;
}

static void one_case(const char *title, const char *label, size_t size, long n, long npy,
                     double scale, const char *unit)
{
    bench_section("%s", title);
    /* The POSIX queue's default limits allow 8 KiB messages. */
    const int with_mq = size <= 8192;
    static const enum kind order[] = { SPIN, QUEUE, QMANY, PIPE2, CONN, MQUEUE, ZMQ, BOOST };
    struct xfer x[NKINDS];
    void *args[NKINDS];
    double w[NKINDS];
    int m = 0;
    for (int i = 0; i < NKINDS; i++) {
        enum kind k = order[i];
        v[k] = NAN;
        pos[k] = -1;
        if (!have_kind[k] || (k == MQUEUE && !with_mq) || (k == QMANY && size > 4096))
            continue;
        x[m] = (struct xfer){ .kind = k, .size = size, .n = n };
        args[m] = &x[m];
        pos[k] = m++;
    }
    bench_compare(m, run_xfer, args, w);
    for (int i = 0; i < NKINDS; i++)
        if (pos[i] >= 0)
            v[i] = w[pos[i]];
    const char *ceiling = kind_name[SPIN];
    for (int i = 0; i < NKINDS; i++) {
        enum kind k = order[i];
        if (pos[k] >= 0)
            bench_figure(kind_name[k], v[k] * scale, unit, k == SPIN ? NULL : ceiling,
                         v[SPIN] * scale);
        else if (k != MQUEUE && k != QMANY)
            skipped(kind_name[k]);
    }

    double py[2] = { NAN, NAN };
    if (python_ipc(size, npy, py) == 0) {
        bench_figure("python multiprocessing.Queue", py[0] * scale, unit, ceiling,
                     v[SPIN] * scale);
        bench_figure("python multiprocessing.Pipe", py[1] * scale, unit, ceiling,
                     v[SPIN] * scale);
        bench_note("python: %ld messages per run, in processes of its own after the "
                   "figures above (no rounds)", npy);
    }
    if (pos[ZMQ] >= 0 || pos[BOOST] >= 0)
        bench_note("ZeroMQ's high-water mark and Boost's queue: %zu messages (about 1 MiB, "
                   "like mproc_queue's ring)", held(size));

    char what[160];
#define WHAT(fmt) (snprintf(what, sizeof what, "%s messages: " fmt, label), what)
    const int small = size <= 64;
    bench_target(WHAT("mproc_queue / busy-spin ring"), ratio(QUEUE, SPIN),
                 rounds(QUEUE, SPIN), BENCH_HIGHER, 0.5);
    if (small)
        bench_info(WHAT("mproc_queue batches of 32 / busy-spin ring"), ratio(QMANY, SPIN),
                   rounds(QMANY, SPIN));
    if (small)
        bench_target(WHAT("mproc_queue / pipe(2)"), ratio(QUEUE, PIPE2), rounds(QUEUE, PIPE2),
                     BENCH_HIGHER, 3.0);
    else
        bench_info(WHAT("mproc_queue / pipe(2)"), ratio(QUEUE, PIPE2), rounds(QUEUE, PIPE2));
    bench_info(WHAT("mproc_conn / pipe(2)"), ratio(CONN, PIPE2), rounds(CONN, PIPE2));
    if (with_mq)
        bench_info(WHAT("mproc_queue / POSIX mqueue"), ratio(QUEUE, MQUEUE),
                   rounds(QUEUE, MQUEUE));
    if (small)
        bench_info(WHAT("mproc_queue / ZeroMQ"), ratio(QUEUE, ZMQ), rounds(QUEUE, ZMQ));
    else
        bench_target(WHAT("mproc_queue / ZeroMQ"), ratio(QUEUE, ZMQ), rounds(QUEUE, ZMQ),
                     BENCH_HIGHER, 2.0);
    if (small)
        bench_target(WHAT("mproc_queue / Boost message_queue"), ratio(QUEUE, BOOST),
                     rounds(QUEUE, BOOST), BENCH_HIGHER, 2.0);
    else
        bench_info(WHAT("mproc_queue / Boost message_queue"), ratio(QUEUE, BOOST),
                   rounds(QUEUE, BOOST));
    if (small)
        bench_target(WHAT("mproc_queue / Python Queue"), v[QUEUE] / py[0], BENCH_NO_RANGE,
                     BENCH_HIGHER, 30.0);
    else
        bench_info(WHAT("mproc_queue / Python Queue"), v[QUEUE] / py[0], BENCH_NO_RANGE);
    bench_info(WHAT("mproc_conn / Python Pipe"), v[CONN] / py[1], BENCH_NO_RANGE);
#undef WHAT
}

int main(int argc, char **argv)
{
    bench_init(argc, argv,
               "bench_ipc: mproc_queue and mproc_conn between two processes, against "
               "pipe(2), POSIX mqueue, ZeroMQ, Boost.Interprocess, Python and a busy-spin "
               "ring",
               NULL);
    S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (S == MAP_FAILED)
        bench_die("mmap", errno);
    if (bench_case(1))
        one_case("1. 64-byte messages, 1 producer process -> 1 consumer process "
                 "(million msgs/s, higher is better)",
                 "64-byte", 64, bench_scale(2000000, 200000), bench_scale(200000, 20000),
                 1e-6, "M msg/s");
    if (bench_case(2))
        one_case("2. 1 MiB messages, 1 producer process -> 1 consumer process "
                 "(GB/s, higher is better)",
                 "1 MiB", 1 << 20, bench_scale(2000, 200), bench_scale(200, 30),
                 (double)(1 << 20) * 1e-9, "GB/s");
    return bench_finish();
}
