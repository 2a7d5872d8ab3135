/*
 * tools/lab_ipc.c -- `mproc lab ipc`: Pipe, Queue and Value between two
 * processes, measured side by side.
 *
 * A child (mproc_process, fork) sends N messages of one size to this
 * process over:
 *   - a raw pipe(2) (write/read of exactly the message's bytes: a pipe is
 *     a byte stream, the size is known to both sides);
 *   - an mproc_pipe (mproc_conn, the notes' Pipe: whole messages);
 *   - an mproc_queue (the notes' Queue), one put and one get per message,
 *     and, for small messages, in batches (put_many / get_many of 64).
 * Small messages (64 B) give messages/s; large ones (64 KiB) MB/s. Both
 * sides start together (an MPROC_SHARED barrier), and the receiver's
 * time from there to the last message is the one measured. Each message
 * carries its sequence number at the start and, transformed, at the end;
 * the receiver checks the length, the order and both ends of every
 * message (and every byte of one message in 256) and sums the sequence
 * numbers: the count and the sum must be exact.
 *
 * Then shared state: the child and this process each add 1 to an
 * mproc_value N times, once under the value's lock (acquire, get, set,
 * release: the notes' `with lock: v.value += 1`) and once with the
 * atomic mproc_value_add; the total must be exactly 2N both ways.
 * Updates/s count both processes' updates. A value is one number, not a
 * channel: it has no "large message" figure.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "procfs.h"
#include "tools.h"

#define WAIT_MS 60000
#define SMALL 64
#define LARGE (64 * 1024)
#define BATCH 64
#define TAIL_MAGIC 0x9e3779b97f4a7c15ull

enum { RAW_PIPE, CONN, QUEUE, QUEUE_BATCH, N_CHANNELS };

static const char *const chan_key[N_CHANNELS] = { "raw_pipe", "conn", "queue", "queue_batch" };
static const char *const chan_text[N_CHANNELS] = {
    "raw pipe(2)", "mproc_pipe (Pipe)", "mproc_queue (Queue)", "mproc_queue, batches of 64"
};

/* Shared by both processes (mproc_shared_calloc). */
struct ctl {
    mproc_barrier start;
};

struct chan {
    int kind;
    int fds[2];           /* RAW_PIPE: [0] read, [1] write */
    mproc_conn *rx, *tx;  /* CONN */
    mproc_queue *q;       /* QUEUE, QUEUE_BATCH */
};

/* What the producing child gets (copied into it). */
struct producer_arg {
    struct ctl *ctl;
    struct chan c;
    size_t size;
    uint64_t n;
};

/* Message `seq` into buf (whose middle bytes hold the pattern already). */
static void stamp(unsigned char *buf, size_t size, uint64_t seq)
{
    uint64_t tail = seq ^ TAIL_MAGIC;
    memcpy(buf, &seq, sizeof seq);
    memcpy(buf + size - sizeof tail, &tail, sizeof tail);
}

static void pattern(unsigned char *buf, size_t size)
{
    for (size_t i = 0; i < size; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
}

static int producer(const void *arg, size_t len, mproc_ctx *ctx)
{
    struct producer_arg a;
    if (len != sizeof a)
        return mproc_fail(ctx, -EINVAL, "argument of %zu bytes", len);
    memcpy(&a, arg, sizeof a);
    struct chan *c = &a.c;
    if (c->kind == RAW_PIPE)
        close(c->fds[0]); /* the reader's end */
    else if (c->kind == CONN)
        mproc_conn_destroy(c->rx);
    size_t slots = c->kind == QUEUE_BATCH ? BATCH : 1;
    unsigned char *buf = malloc(a.size * slots);
    struct iovec iov[BATCH];
    if (!buf)
        return -ENOMEM;
    for (size_t k = 0; k < slots; k++) {
        pattern(buf + k * a.size, a.size);
        iov[k] = (struct iovec){ buf + k * a.size, a.size };
    }
    int rc = mproc_barrier_wait(&a.ctl->start, WAIT_MS);
    rc = rc < 0 ? rc : 0;
    for (uint64_t seq = 0; seq < a.n && rc == 0;) {
        if (c->kind == QUEUE_BATCH) {
            size_t k = a.n - seq < BATCH ? (size_t)(a.n - seq) : BATCH;
            for (size_t i = 0; i < k; i++)
                stamp(buf + i * a.size, a.size, seq + i);
            int put = mproc_queue_put_many(c->q, iov, k, WAIT_MS);
            rc = put < 0 ? put : 0;
            seq += put > 0 ? (uint64_t)put : 0;
            continue;
        }
        stamp(buf, a.size, seq);
        if (c->kind == RAW_PIPE)
            rc = mproc__write_all(c->fds[1], (const char *)buf, a.size);
        else if (c->kind == CONN)
            rc = mproc_conn_send(c->tx, buf, a.size);
        else
            rc = mproc_queue_put(c->q, buf, a.size, WAIT_MS);
        seq++;
    }
    free(buf);
    return rc;
}

struct received {
    uint64_t count, sum;
    bool intact;  /* lengths, order, ends and sampled bodies all right */
    double seconds;
};

/* Check message `want` in msg (of len bytes) against the pattern. */
static bool check(const unsigned char *msg, size_t len, size_t size, uint64_t want,
                  const unsigned char *ref)
{
    uint64_t seq, tail;
    if (len != size)
        return false;
    memcpy(&seq, msg, sizeof seq);
    memcpy(&tail, msg + size - sizeof tail, sizeof tail);
    if (seq != want || tail != (want ^ TAIL_MAGIC))
        return false;
    return want % 256 != 0 ||
           memcmp(msg + sizeof seq, ref + sizeof seq, size - 2 * sizeof seq) == 0;
}

/* Receive n messages of `size` on c. 0 or a negative code. */
static int consume(struct ctl *ctl, struct chan *c, size_t size, uint64_t n, struct received *out)
{
    size_t cap = c->kind == QUEUE_BATCH ? size * BATCH : size;
    unsigned char *buf = malloc(cap), *ref = malloc(size);
    if (!buf || !ref) {
        free(buf);
        free(ref);
        return -ENOMEM;
    }
    pattern(ref, size);
    *out = (struct received){ .intact = true };
    int rc = mproc_barrier_wait(&ctl->start, WAIT_MS);
    rc = rc < 0 ? rc : 0;
    int64_t t0 = mproc_now_ns();
    while (out->count < n && rc == 0) {
        size_t len = 0;
        if (c->kind == QUEUE_BATCH) {
            struct iovec msgs[BATCH];
            int got = mproc_queue_get_many(c->q, buf, cap, msgs, BATCH, WAIT_MS);
            if (got < 0) {
                rc = got;
                break;
            }
            for (int i = 0; i < got; i++) {
                out->intact = out->intact && check(msgs[i].iov_base, msgs[i].iov_len, size,
                                                   out->count, ref);
                out->sum += out->count++;
            }
            continue;
        }
        if (c->kind == RAW_PIPE) {
            rc = mproc__lab_read_full(c->fds[0], buf, size);
            len = size;
        } else if (c->kind == CONN) {
            rc = mproc_conn_recv(c->rx, buf, cap, &len, WAIT_MS);
        } else {
            rc = mproc_queue_get(c->q, buf, cap, &len, WAIT_MS);
        }
        if (rc != 0)
            break;
        out->intact = out->intact && check(buf, len, size, out->count, ref);
        out->sum += out->count++;
    }
    out->seconds = (double)(mproc_now_ns() - t0) / 1e9;
    free(buf);
    free(ref);
    return rc;
}

static int chan_open(struct chan *c, int kind)
{
    *c = (struct chan){ .kind = kind, .fds = { -1, -1 } };
    switch (kind) {
    case RAW_PIPE: return pipe2(c->fds, O_CLOEXEC) == 0 ? 0 : -errno;
    case CONN: return mproc_pipe(&c->rx, &c->tx, false);
    default: return mproc_queue_create(&c->q, NULL);
    }
}

/* Close what is left of c here (close_tx: the sender's end too). */
static void chan_close(struct chan *c, bool close_tx)
{
    if (c->fds[0] >= 0)
        close(c->fds[0]);
    if (close_tx && c->fds[1] >= 0)
        close(c->fds[1]);
    if (c->rx)
        mproc_conn_destroy(c->rx);
    if (close_tx && c->tx)
        mproc_conn_destroy(c->tx);
    if (c->q)
        mproc_queue_destroy(c->q);
}

/* One run: n messages of `size` over a fresh channel of `kind`. */
static int transfer(struct ctl *ctl, int kind, size_t size, uint64_t n, struct received *out)
{
    struct chan c;
    int rc = chan_open(&c, kind);
    if (rc != 0)
        return rc;
    mproc_barrier_reset(&ctl->start);
    struct producer_arg a = { ctl, c, size, n };
    mproc_process *p;
    rc = mproc__lab_process(&p, MPROC_START_FORK, producer, &a, sizeof a);
    /* The sender's end is the child's now: its death is our end of file. */
    if (c.fds[1] >= 0)
        close(c.fds[1]);
    if (c.tx)
        mproc_conn_destroy(c.tx);
    c.fds[1] = -1;
    c.tx = NULL;
    if (rc != 0) {
        chan_close(&c, true);
        return rc;
    }
    rc = consume(ctl, &c, size, n, out);
    if (rc != 0) {
        mproc_barrier_abort(&ctl->start);
        mproc_process_kill(p);
    }
    if (mproc__lab_join(p, WAIT_MS) != 0 && rc == 0)
        rc = -ECHILD;
    mproc_process_destroy(p);
    chan_close(&c, true);
    return rc;
}

/* ---- shared value ------------------------------------------------------ */

struct adder_arg {
    struct ctl *ctl;
    mproc_value *v;
    uint64_t n;
    bool locked;
};

static int add_n(const struct adder_arg *a)
{
    int rc = mproc_barrier_wait(&a->ctl->start, WAIT_MS);
    if (rc < 0)
        return rc;
    mproc_lock *l = mproc_value_lock(a->v);
    for (uint64_t i = 0; i < a->n; i++) {
        if (!a->locked) {
            if ((rc = mproc_value_add_i64(a->v, 1, NULL)) != 0)
                return rc;
            continue;
        }
        if ((rc = mproc_lock_acquire(l, WAIT_MS)) != 0)
            return rc;
        int64_t x;
        mproc_value_get_i64(a->v, &x);
        mproc_value_set_i64(a->v, x + 1);
        mproc_lock_release(l);
    }
    return 0;
}

static int adder(const void *arg, size_t len, mproc_ctx *ctx)
{
    struct adder_arg a;
    if (len != sizeof a)
        return mproc_fail(ctx, -EINVAL, "argument of %zu bytes", len);
    memcpy(&a, arg, sizeof a);
    return add_n(&a);
}

/* Both processes add n; the total in *total, updates/s in *rate. */
static int share_value(struct ctl *ctl, bool locked, uint64_t n, int64_t *total, double *rate)
{
    mproc_value *v;
    int rc = mproc_value_create(&v, &(mproc_value_opts){ .type = MPROC_I64 });
    if (rc != 0)
        return rc;
    mproc_barrier_reset(&ctl->start);
    struct adder_arg a = { ctl, v, n, locked };
    mproc_process *p;
    if ((rc = mproc__lab_process(&p, MPROC_START_FORK, adder, &a, sizeof a)) != 0) {
        mproc_value_destroy(v);
        return rc;
    }
    int64_t t0 = mproc_now_ns();
    rc = add_n(&a);
    if (rc != 0) {
        mproc_barrier_abort(&ctl->start);
        mproc_process_kill(p);
    }
    if (mproc__lab_join(p, WAIT_MS) != 0 && rc == 0)
        rc = -ECHILD;
    double s = (double)(mproc_now_ns() - t0) / 1e9;
    mproc_process_destroy(p);
    mproc_value_get_i64(v, total);
    mproc_value_destroy(v);
    *rate = (double)(2 * n) / s;
    return rc;
}

static int lab_ipc(const mproc__lab_opts *o, mproc__lab_report *r)
{
    uint64_t n_small = o->quick ? 20000 : 200000, n_large = o->quick ? 400 : 4000;
    uint64_t n_value = o->quick ? 20000 : 200000;
    struct ctl *ctl = mproc_shared_calloc(sizeof *ctl);
    if (!ctl)
        return -ENOMEM;
    mproc_barrier_init(&ctl->start, 2, MPROC_SHARED);

    struct received small[N_CHANNELS], large[N_CHANNELS];
    int rc = 0;
    for (int k = 0; k < N_CHANNELS && rc == 0; k++) {
        mproc__progress("lab ipc: %s, %d B messages", chan_text[k], SMALL);
        rc = transfer(ctl, k, SMALL, n_small, &small[k]);
        if (rc == 0 && k != QUEUE_BATCH) {
            mproc__progress("lab ipc: %s, %d KiB messages", chan_text[k], LARGE / 1024);
            rc = transfer(ctl, k, LARGE, n_large, &large[k]);
        }
        if (rc != 0)
            mproc__lab_note(r, "%s failed: %s", chan_text[k], mproc_strerror(rc));
    }
    int64_t total[2] = { 0, 0 };
    double rate[2] = { 0, 0 };
    for (int locked = 1; locked >= 0 && rc == 0; locked--) {
        mproc__progress("lab ipc: mproc_value, %s", locked ? "locked" : "atomic add");
        rc = share_value(ctl, locked, n_value, &total[locked], &rate[locked]);
        if (rc != 0)
            mproc__lab_note(r, "the shared value failed: %s", mproc_strerror(rc));
    }
    mproc_barrier_destroy(&ctl->start);
    mproc_shared_free(ctl);
    if (rc != 0)
        return rc;

    uint64_t want_small = n_small * (n_small - 1) / 2, want_large = n_large * (n_large - 1) / 2;
    bool exact = true;
    mproc__lab_metric(r, "small_bytes", SMALL, "B", "small message");
    mproc__lab_metric(r, "small_messages", (double)n_small, "count", "  messages sent each way");
    for (int k = 0; k < N_CHANNELS; k++) {
        char key[48];
        snprintf(key, sizeof key, "%s_small_msgs_per_s", chan_key[k]);
        mproc__lab_metric(r, key, (double)small[k].count / small[k].seconds, "msg/s",
                          chan_text[k]);
        snprintf(key, sizeof key, "%s_small_received", chan_key[k]);
        mproc__lab_metric(r, key, (double)small[k].count, "count", "  received");
        snprintf(key, sizeof key, "%s_small_checksum_ok", chan_key[k]);
        bool ok = small[k].sum == want_small && small[k].intact;
        mproc__lab_metric(r, key, ok, "bool", "  checksum and contents right");
        exact = exact && ok && small[k].count == n_small;
    }
    mproc__lab_metric(r, "large_bytes", LARGE, "B", "large message");
    mproc__lab_metric(r, "large_messages", (double)n_large, "count", "  messages sent each way");
    for (int k = 0; k < QUEUE_BATCH; k++) {
        char key[48];
        snprintf(key, sizeof key, "%s_large_mb_per_s", chan_key[k]);
        mproc__lab_metric(r, key, (double)large[k].count * LARGE / large[k].seconds / 1e6,
                          "MB/s", chan_text[k]);
        snprintf(key, sizeof key, "%s_large_received", chan_key[k]);
        mproc__lab_metric(r, key, (double)large[k].count, "count", "  received");
        snprintf(key, sizeof key, "%s_large_checksum_ok", chan_key[k]);
        bool ok = large[k].sum == want_large && large[k].intact;
        mproc__lab_metric(r, key, ok, "bool", "  checksum and contents right");
        exact = exact && ok && large[k].count == n_large;
    }
    mproc__lab_metric(r, "value_updates", (double)(2 * n_value), "count",
                      "mproc_value: updates, both processes");
    mproc__lab_metric(r, "value_locked_total", (double)total[1], "count", "  total, with its lock");
    mproc__lab_metric(r, "value_locked_per_s", rate[1], "upd/s", "  updates/s, with its lock");
    mproc__lab_metric(r, "value_atomic_total", (double)total[0], "count", "  total, atomic add");
    mproc__lab_metric(r, "value_atomic_per_s", rate[0], "upd/s", "  updates/s, atomic add");
    bool value_exact = total[0] == (int64_t)(2 * n_value) && total[1] == (int64_t)(2 * n_value);

    double pipe_rate = (double)small[CONN].count / small[CONN].seconds;
    double queue_rate = (double)small[QUEUE].count / small[QUEUE].seconds;
    mproc__lab_metric(r, "pipe_over_queue", pipe_rate / queue_rate, "x",
                      "Pipe / Queue, small messages");
    mproc__lab_note(r, "Rates are the receiver's, from a barrier both processes pass to the "
                       "last message; a child made with fork sends.");
    mproc__lab_note(r, "mproc's Queue is a ring in shared memory (no pipe, no feeder thread, "
                       "unlike Python's); its Pipe is a socket: two system calls a message.");

    if (!exact || !value_exact)
        mproc__lab_verdict(r, false, "a message or an update was lost or damaged (see the "
                           "counts): a broken channel, not a measurement");
    else
        mproc__lab_verdict(r, pipe_rate > queue_rate,
                           "every message arrived intact; for %d B messages the Pipe moved "
                           "%.0f msg/s, the Queue %.0f msg/s (criterion: Pipe faster): %s; the "
                           "shared value counted exactly %lld with its lock",
                           SMALL, pipe_rate, queue_rate,
                           pipe_rate > queue_rate ? "the Pipe is the faster"
                                                  : "here the Queue is the faster",
                           (long long)total[1]);
    return 0;
}

int mproc__lab_ipc(const mproc__lab_opts *o, mproc__lab_report *r)
{
    /* A child that dies would make our next write to its pipe raise
     * SIGPIPE: let the write fail instead, and the lab say so. */
    struct sigaction old;
    int rc = mproc__lab_ignore_sigpipe(&old);
    if (rc != 0)
        return rc;
    rc = lab_ipc(o, r);
    mproc__lab_restore_sigpipe(&old);
    return rc;
}
