/*
 * tests/test_queue.c -- mproc_queue: order, sizes, limits, timeouts,
 * close, JoinableQueue, messages larger than the ring, bad arguments;
 * exactly-once delivery between 4 producer and 4 consumer processes (and
 * threads); producers and consumers SIGKILLed at each fault point of put
 * and get (os/fault.h), after which the queue must be consistent, lose at
 * most the victim's one message, and hang nobody.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "os/fault.h"
#include "runner.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* messages that check themselves                                      */
/* ------------------------------------------------------------------ */

/* Every test message starts with this; the rest is a pseudo-random
 * stream determined by (producer, seq), so a consumer can check every
 * byte. */
struct mhdr {
    uint32_t producer;
    uint32_t seq;
    uint32_t len; /* whole message, header included */
    uint32_t magic;
};
#define MSG_MAGIC 0x4d534721u

static void fill_msg(char *buf, uint32_t p, uint32_t seq, uint32_t len)
{
    struct mhdr h = { p, seq, len, MSG_MAGIC };
    memcpy(buf, &h, sizeof h);
    uint64_t s = ((uint64_t)p << 32 | seq) * 0x9e3779b97f4a7c15ull + 1;
    for (uint32_t i = sizeof h; i < len; i++) {
        if ((i & 7) == 0 || i == sizeof h)
            test_xorshift(&s);
        buf[i] = (char)(s >> ((i & 7) * 8));
    }
}

/* 1 if buf (n bytes) is a well-formed message; its header in *h. */
static int check_msg(const char *buf, size_t n, struct mhdr *h)
{
    if (n < sizeof *h)
        return 0;
    memcpy(h, buf, sizeof *h);
    if (h->magic != MSG_MAGIC || h->len != n)
        return 0;
    char *want = malloc(n);
    CHECK(want != NULL);
    fill_msg(want, h->producer, h->seq, (uint32_t)n);
    int ok = memcmp(want, buf, n) == 0;
    free(want);
    return ok;
}

static void put_msg(mproc_queue *q, uint32_t p, uint32_t seq, uint32_t len)
{
    char *buf = malloc(len);
    CHECK(buf != NULL);
    fill_msg(buf, p, seq, len);
    CHECK_OK(mproc_queue_put(q, buf, len, 20000));
    free(buf);
}

/* Get one message (up to 20 s) and check it; returns its header. */
static struct mhdr get_msg(mproc_queue *q)
{
    void *data;
    size_t n;
    CHECK_OK(mproc_queue_get_alloc(q, &data, &n, 20000));
    struct mhdr h;
    CHECK_MSG(check_msg(data, n, &h), "corrupt message of %zu bytes", n);
    free(data);
    return h;
}

static mproc_queue *new_queue(size_t maxsize, size_t max_bytes, unsigned flags)
{
    mproc_queue *q;
    CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){ .maxsize = maxsize,
                                                         .max_bytes = max_bytes,
                                                         .flags = flags }));
    return q;
}

/* ------------------------------------------------------------------ */
/* basics                                                              */
/* ------------------------------------------------------------------ */

TEST(queue_basic_order)
{
    mproc_queue *q;
    CHECK_OK(mproc_queue_create(&q, NULL));
    CHECK_EQ(mproc_queue_empty(q), 1);
    CHECK_EQ(mproc_queue_full(q), 0);
    CHECK_EQ(mproc_queue_qsize(q), 0);
    for (uint32_t i = 0; i < 200; i++)
        put_msg(q, 7, i, 16 + (i * 37) % 300);
    CHECK_EQ(mproc_queue_qsize(q), 200);
    CHECK_EQ(mproc_queue_empty(q), 0);
    for (uint32_t i = 0; i < 200; i++) {
        struct mhdr h = get_msg(q);
        CHECK_EQ(h.producer, 7);
        CHECK_EQ(h.seq, i);
        CHECK_EQ(mproc_queue_qsize(q), 199 - i);
    }
    CHECK_EQ(mproc_queue_empty(q), 1);
    CHECK_OK(mproc_queue_destroy(q));
}

/* Many laps around a small ring: records split at the ring's end. */
TEST(queue_wraps_around)
{
    mproc_queue *q = new_queue(0, 256, 0);
    uint64_t s = 99;
    for (uint32_t i = 0; i < 5000; i++) {
        put_msg(q, 1, i, 16 + (uint32_t)(test_xorshift(&s) % 100));
        if (i % 3 == 2) {
            put_msg(q, 1, ++i, 16);
            CHECK_EQ(get_msg(q).seq, i - 1);
        }
        CHECK_EQ(get_msg(q).seq, i);
    }
    CHECK_EQ(mproc_queue_qsize(q), 0);
    CHECK_OK(mproc_queue_destroy(q));
}

TEST(queue_empty_messages)
{
    mproc_queue *q;
    CHECK_OK(mproc_queue_create(&q, NULL));
    CHECK_OK(mproc_queue_put(q, NULL, 0, 0));
    CHECK_OK(mproc_queue_put(q, "x", 0, 0));
    size_t n = 99;
    CHECK_OK(mproc_queue_get(q, NULL, 0, &n, 0));
    CHECK_EQ(n, 0);
    void *p = NULL;
    CHECK_OK(mproc_queue_get_alloc(q, &p, &n, 0));
    CHECK(p != NULL);
    CHECK_EQ(n, 0);
    free(p);
    CHECK_OK(mproc_queue_destroy(q));
}

TEST(queue_bad_arguments)
{
    mproc_queue *q;
    char buf[128] = { 0 };
    size_t n;
    void *p;
    CHECK_RC(mproc_queue_create(NULL, NULL), -EINVAL);
    CHECK_RC(mproc_queue_create(&q, &(mproc_queue_opts){ .flags = 0x80 }), -EINVAL);
    CHECK_RC(mproc_queue_create(&q, &(mproc_queue_opts){ .max_bytes = (size_t)2 << 30 }),
             -EINVAL);
    CHECK_OK(mproc_queue_create(&q, &(mproc_queue_opts){ .max_message = 100 }));
    CHECK_RC(mproc_queue_destroy(NULL), -EINVAL);
    CHECK_RC(mproc_queue_put(NULL, "a", 1, 0), -EINVAL);
    CHECK_RC(mproc_queue_put(q, NULL, 1, 0), -EINVAL);
    CHECK_RC(mproc_queue_put(q, "a", 1, -2), -EINVAL);
    CHECK_RC(mproc_queue_put_nowait(NULL, "a", 1), -EINVAL);
    CHECK_RC(mproc_queue_put(q, buf, 101, 0), -EMSGSIZE);
    CHECK_OK(mproc_queue_put(q, buf, 100, 0));
    CHECK_RC(mproc_queue_get(NULL, buf, 8, &n, 0), -EINVAL);
    CHECK_RC(mproc_queue_get(q, buf, 8, NULL, 0), -EINVAL);
    CHECK_RC(mproc_queue_get(q, NULL, 8, &n, 0), -EINVAL);
    CHECK_RC(mproc_queue_get(q, buf, 8, &n, -5), -EINVAL);
    CHECK_RC(mproc_queue_get_nowait(NULL, buf, 8, &n), -EINVAL);
    CHECK_RC(mproc_queue_get_alloc(NULL, &p, &n, 0), -EINVAL);
    CHECK_RC(mproc_queue_get_alloc(q, NULL, &n, 0), -EINVAL);
    CHECK_RC(mproc_queue_get_alloc(q, &p, NULL, 0), -EINVAL);
    CHECK_RC(mproc_queue_get_alloc(q, &p, &n, -2), -EINVAL);
    CHECK_RC(mproc_queue_qsize(NULL), -EINVAL);
    CHECK_RC(mproc_queue_empty(NULL), -EINVAL);
    CHECK_RC(mproc_queue_full(NULL), -EINVAL);
    CHECK_RC(mproc_queue_close(NULL), -EINVAL);
    CHECK_RC(mproc_queue_is_closed(NULL), -EINVAL);
    CHECK_RC(mproc_queue_task_done(NULL), -EINVAL);
    CHECK_RC(mproc_queue_join(NULL, 0), -EINVAL);
    /* Not joinable. */
    CHECK_RC(mproc_queue_task_done(q), -EINVAL);
    CHECK_RC(mproc_queue_join(q, 0), -EINVAL);
    /* Nothing of the bad calls reached the queue. */
    CHECK_EQ(mproc_queue_qsize(q), 1);
    /* A fake handle is not a queue. */
    _Alignas(64) uint64_t fake[512] = { 0 };
    CHECK_RC(mproc_queue_put((mproc_queue *)fake, "a", 1, 0), -EINVAL);
    CHECK_OK(mproc_queue_destroy(q));
}

TEST(queue_get_buffer_too_small)
{
    mproc_queue *q;
    CHECK_OK(mproc_queue_create(&q, NULL));
    CHECK_OK(mproc_queue_put(q, "hello world", 11, 0));
    char buf[16];
    size_t n = 0;
    CHECK_RC(mproc_queue_get(q, buf, 4, &n, 0), -EMSGSIZE);
    CHECK_EQ(n, 11);
    CHECK_EQ(mproc_queue_qsize(q), 1); /* still queued */
    CHECK_OK(mproc_queue_get(q, buf, sizeof buf, &n, 0));
    CHECK_EQ(n, 11);
    CHECK(memcmp(buf, "hello world", 11) == 0);
    CHECK_OK(mproc_queue_destroy(q));
}

TEST(queue_nowait_and_timeouts)
{
    mproc_queue *q = new_queue(2, 0, 0);
    char buf[8];
    size_t n;
    CHECK_RC(mproc_queue_get_nowait(q, buf, sizeof buf, &n), -EAGAIN);
    CHECK_RC(mproc_queue_get(q, buf, sizeof buf, &n, 0), -EAGAIN);
    CHECK_TIMES_OUT(mproc_queue_get(q, buf, sizeof buf, &n, 50), 50);
    CHECK_OK(mproc_queue_put_nowait(q, "a", 1));
    CHECK_OK(mproc_queue_put_nowait(q, "b", 1));
    CHECK_EQ(mproc_queue_full(q), 1);
    CHECK_RC(mproc_queue_put_nowait(q, "c", 1), -EAGAIN);
    CHECK_TIMES_OUT(mproc_queue_put(q, "c", 1, 50), 50);
    CHECK_OK(mproc_queue_get_nowait(q, buf, sizeof buf, &n));
    CHECK_EQ(buf[0], 'a');
    CHECK_EQ(mproc_queue_full(q), 0);
    CHECK_OK(mproc_queue_put_nowait(q, "c", 1));
    CHECK_OK(mproc_queue_get_nowait(q, buf, sizeof buf, &n));
    CHECK_EQ(buf[0], 'b');
    CHECK_OK(mproc_queue_get_nowait(q, buf, sizeof buf, &n));
    CHECK_EQ(buf[0], 'c');
    CHECK_OK(mproc_queue_destroy(q));
}

/* max_bytes: 8-byte header + payload padded to 8 per message. */
TEST(queue_max_bytes)
{
    mproc_queue *q = new_queue(0, 256, 0);
    char buf[16] = { 0 };
    for (int i = 0; i < 10; i++) /* 24 bytes each: 240 of 256 */
        CHECK_OK(mproc_queue_put_nowait(q, buf, 16));
    CHECK_EQ(mproc_queue_full(q), 0); /* 16 left: an empty message fits */
    CHECK_RC(mproc_queue_put_nowait(q, buf, 16), -EAGAIN);
    CHECK_OK(mproc_queue_put_nowait(q, buf, 8));
    CHECK_EQ(mproc_queue_full(q), 1);
    CHECK_RC(mproc_queue_put_nowait(q, NULL, 0), -EAGAIN);
    CHECK_EQ(mproc_queue_qsize(q), 11);
    size_t n;
    CHECK_OK(mproc_queue_get_nowait(q, buf, sizeof buf, &n));
    CHECK_OK(mproc_queue_put_nowait(q, buf, 16));
    CHECK_OK(mproc_queue_destroy(q));
}

/* ------------------------------------------------------------------ */
/* close                                                               */
/* ------------------------------------------------------------------ */

TEST(queue_close_drains_then_epipe)
{
    mproc_queue *q;
    CHECK_OK(mproc_queue_create(&q, NULL));
    for (uint32_t i = 0; i < 3; i++)
        put_msg(q, 0, i, 32);
    CHECK_EQ(mproc_queue_is_closed(q), 0);
    CHECK_OK(mproc_queue_close(q));
    CHECK_OK(mproc_queue_close(q)); /* again: no-op */
    CHECK_EQ(mproc_queue_is_closed(q), 1);
    CHECK_RC(mproc_queue_put(q, "x", 1, -1), -EPIPE);
    CHECK_RC(mproc_queue_put_nowait(q, "x", 1), -EPIPE);
    for (uint32_t i = 0; i < 3; i++)
        CHECK_EQ(get_msg(q).seq, i);
    char buf[8];
    size_t n;
    void *p;
    CHECK_RC(mproc_queue_get(q, buf, sizeof buf, &n, -1), -EPIPE);
    CHECK_RC(mproc_queue_get_nowait(q, buf, sizeof buf, &n), -EPIPE);
    CHECK_RC(mproc_queue_get_alloc(q, &p, &n, 100), -EPIPE);
    CHECK(p == NULL);
    CHECK_OK(mproc_queue_destroy(q));
}

static int blocked_getter(void *arg)
{
    char buf[8];
    size_t n;
    return mproc_queue_get(arg, buf, sizeof buf, &n, -1) == -EPIPE ? 0 : 1;
}

static int blocked_putter(void *arg)
{
    return mproc_queue_put(arg, "x", 1, -1) == -EPIPE ? 0 : 1;
}

/* close wakes a getter blocked on an empty queue and a putter blocked on
 * a full one, in other processes. */
TEST(queue_close_wakes_blocked)
{
    mproc_queue *empty = new_queue(0, 0, 0);
    mproc_queue *full = new_queue(1, 0, 0);
    CHECK_OK(mproc_queue_put(full, "x", 1, 0));
    pid_t g = test_fork(blocked_getter, empty);
    pid_t p = test_fork(blocked_putter, full);
    test_wait_sleeping(g, 10000);
    test_wait_sleeping(p, 10000);
    CHECK_OK(mproc_queue_close(empty));
    CHECK_OK(mproc_queue_close(full));
    test_expect_child_ok(g);
    test_expect_child_ok(p);
    /* The full one still drains. */
    char buf[8];
    size_t n;
    CHECK_OK(mproc_queue_get_nowait(full, buf, sizeof buf, &n));
    CHECK_RC(mproc_queue_get_nowait(full, buf, sizeof buf, &n), -EPIPE);
    CHECK_OK(mproc_queue_destroy(empty));
    CHECK_OK(mproc_queue_destroy(full));
}

/* ------------------------------------------------------------------ */
/* JoinableQueue                                                       */
/* ------------------------------------------------------------------ */

static int joiner(void *arg)
{
    return mproc_queue_join(arg, -1) == 0 ? 0 : 1;
}

TEST(queue_joinable)
{
    mproc_queue *q = new_queue(0, 0, MPROC_QUEUE_JOINABLE);
    CHECK_OK(mproc_queue_join(q, 0)); /* nothing put */
    CHECK_RC(mproc_queue_task_done(q), -EOVERFLOW);
    for (uint32_t i = 0; i < 5; i++)
        put_msg(q, 0, i, 20);
    CHECK_RC(mproc_queue_join(q, 0), -ETIMEDOUT);
    CHECK_TIMES_OUT(mproc_queue_join(q, 30), 30);
    pid_t j = test_fork(joiner, q);
    test_wait_sleeping(j, 10000);
    for (int i = 0; i < 5; i++) {
        get_msg(q);
        CHECK_RC(mproc_queue_join(q, 0), -ETIMEDOUT);
        CHECK_OK(mproc_queue_task_done(q));
    }
    test_expect_child_ok(j);
    CHECK_OK(mproc_queue_join(q, 0));
    CHECK_RC(mproc_queue_task_done(q), -EOVERFLOW);
    /* task_done may run ahead of get, as in Python, but not of put. */
    put_msg(q, 0, 9, 20);
    CHECK_OK(mproc_queue_task_done(q));
    CHECK_RC(mproc_queue_task_done(q), -EOVERFLOW);
    CHECK_OK(mproc_queue_join(q, 0));
    CHECK_OK(mproc_queue_destroy(q));
}

/* ------------------------------------------------------------------ */
/* messages larger than the ring                                       */
/* ------------------------------------------------------------------ */

struct big_put {
    mproc_queue *q;
    uint32_t sizes[8];
    int count;
    int rc[8];
};

static void *big_putter(void *arg)
{
    struct big_put *b = arg;
    for (int i = 0; i < b->count; i++) {
        char *buf = malloc(b->sizes[i]);
        CHECK(buf != NULL);
        fill_msg(buf, 3, (uint32_t)i, b->sizes[i]);
        b->rc[i] = mproc_queue_put(b->q, buf, b->sizes[i], 20000);
        free(buf);
    }
    return NULL;
}

TEST(queue_large_messages_threads)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    struct big_put b = { q, { 3000, 100000, 1 << 20, 16, 5000, 2049 }, 6, { 0 } };
    pthread_t t = test_start_thread(big_putter, &b);
    /* The first large one with a small buffer: -EMSGSIZE, stays queued. */
    char small[64];
    size_t n = 0;
    CHECK_OK(mproc_queue_get(q, small, sizeof small, &n, 20000) == -EMSGSIZE ? 0 : -1);
    CHECK_EQ(n, 3000);
    for (int i = 0; i < b.count; i++) {
        struct mhdr h = get_msg(q);
        CHECK_EQ(h.seq, i);
        CHECK_EQ(h.len, b.sizes[i]);
    }
    test_join_thread(t);
    for (int i = 0; i < b.count; i++)
        CHECK_OK(b.rc[i]);
    CHECK_EQ(mproc_queue_qsize(q), 0);
    CHECK_OK(mproc_queue_destroy(q));
}

static int big_child(void *arg)
{
    mproc_queue *q = arg;
    for (uint32_t i = 0; i < 8; i++)
        put_msg(q, 4, i, 16 + i * 150000);
    return 0;
}

TEST(queue_large_messages_processes)
{
    mproc_queue *q = new_queue(0, 16384, 0);
    pid_t c = test_fork(big_child, q);
    for (uint32_t i = 0; i < 8; i++) {
        struct mhdr h = get_msg(q);
        CHECK_EQ(h.seq, i);
        CHECK_EQ(h.len, 16 + i * 150000);
    }
    test_expect_child_ok(c);
    CHECK_OK(mproc_queue_destroy(q));
}

/* A large put that times out half-way withdraws what it streamed. */
TEST(queue_large_put_timeout_withdraws)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    char *big = calloc(1, 100000);
    CHECK(big != NULL);
    CHECK_TIMES_OUT(mproc_queue_put(q, big, 100000, 50), 50);
    CHECK_RC(mproc_queue_put_nowait(q, big, 100000), -EAGAIN);
    CHECK_EQ(mproc_queue_qsize(q), 0);
    size_t n;
    CHECK_RC(mproc_queue_get_nowait(q, big, 100000, &n), -EAGAIN);
    put_msg(q, 0, 1, 40);
    CHECK_EQ(get_msg(q).seq, 1);
    CHECK_EQ(mproc_queue_empty(q), 1);
    free(big);
    CHECK_OK(mproc_queue_destroy(q));
}

/* ------------------------------------------------------------------ */
/* exactly once, many producers and consumers                          */
/* ------------------------------------------------------------------ */

#define NPROD 4
#define NCONS 4

struct stress {
    mproc_queue *q;
    uint32_t per_producer;
    uint32_t max_small;
    _Atomic uint32_t attempt[NPROD];    /* seq a producer is putting */
    _Atomic uint32_t received[NCONS];   /* per consumer */
    _Atomic int bad;                    /* corrupt or out-of-order messages */
    _Atomic uint8_t *seen;              /* per message: times received */
    /* Fault injection (processes only). */
    const char *kill_put_point;
    unsigned kill_put_nth;
    const char *kill_get_point;
    unsigned kill_get_nth;
};

static uint32_t msg_size(uint64_t *s, uint32_t max_small)
{
    uint64_t r = test_xorshift(s);
    if (r % 512 == 0)
        return 20000 + (uint32_t)(r >> 20) % 80000; /* streamed in chunks */
    return 16 + (uint32_t)(r >> 12) % max_small;
}

static void produce(struct stress *st, uint32_t p)
{
    uint64_t s = 0x1234567ull + p;
    char *buf = malloc(100000);
    CHECK(buf != NULL);
    for (uint32_t i = 0; i < st->per_producer; i++) {
        uint32_t len = msg_size(&s, st->max_small);
        fill_msg(buf, p, i, len);
        atomic_store(&st->attempt[p], i);
        CHECK_OK(mproc_queue_put(st->q, buf, len, 30000));
    }
    free(buf);
}

static void consume(struct stress *st, uint32_t c)
{
    int64_t last[NPROD];
    for (int p = 0; p < NPROD; p++)
        last[p] = -1;
    char *buf = malloc(100000);
    CHECK(buf != NULL);
    for (;;) {
        size_t n;
        int rc = mproc_queue_get(st->q, buf, 100000, &n, 30000);
        if (rc == -EPIPE)
            break;
        CHECK_OK(rc);
        struct mhdr h;
        if (!check_msg(buf, n, &h) || h.producer >= NPROD || h.seq >= st->per_producer ||
            (int64_t)h.seq <= last[h.producer]) {
            atomic_fetch_add(&st->bad, 1);
            continue;
        }
        last[h.producer] = h.seq;
        atomic_fetch_add(&st->seen[h.producer * st->per_producer + h.seq], 1);
        atomic_fetch_add(&st->received[c], 1);
    }
    free(buf);
}

/* The index of the next child forked: a copy of it goes with the fork. */
static uint32_t g_child_id;

static int producer_proc(void *arg)
{
    struct stress *st = arg;
    uint32_t p = g_child_id;
    if (p == 0 && st->kill_put_point)
        mproc__fault_arm(st->kill_put_point, st->kill_put_nth, mproc__fault_kill_self);
    produce(st, p);
    return 0;
}

static int consumer_proc(void *arg)
{
    struct stress *st = arg;
    uint32_t c = g_child_id;
    if (c == 0 && st->kill_get_point)
        mproc__fault_arm(st->kill_get_point, st->kill_get_nth, mproc__fault_kill_self);
    consume(st, c);
    return 0;
}

static struct stress *new_stress(uint32_t per_producer, size_t ring, uint32_t max_small)
{
    struct stress *st = test_map_shared(sizeof *st);
    st->seen = test_map_shared((size_t)NPROD * per_producer);
    st->q = new_queue(0, ring, 0);
    st->per_producer = per_producer;
    st->max_small = max_small;
    return st;
}

/* Every message of producer p below `upto` was received exactly once; the
 * others at most once. Returns the number of messages missing below. */
static long check_seen(struct stress *st, uint32_t p, uint32_t upto)
{
    long missing = 0;
    for (uint32_t i = 0; i < st->per_producer; i++) {
        uint8_t v = st->seen[p * st->per_producer + i];
        CHECK_MSG(v <= 1, "message %u/%u received %u times", p, i, v);
        if (i < upto && v == 0)
            missing++;
    }
    return missing;
}

static void run_stress_processes(struct stress *st, int expect_kills)
{
    pid_t prod[NPROD], cons[NCONS];
    for (uint32_t c = 0; c < NCONS; c++) {
        g_child_id = c;
        cons[c] = test_fork(consumer_proc, st);
    }
    for (uint32_t p = 0; p < NPROD; p++) {
        g_child_id = p;
        prod[p] = test_fork(producer_proc, st);
    }
    for (int p = 0; p < NPROD; p++) {
        if (p == 0 && expect_kills)
            test_expect_child_killed(prod[p]);
        else
            test_expect_child_ok(prod[p]);
    }
    CHECK_OK(mproc_queue_close(st->q));
    for (int c = 0; c < NCONS; c++) {
        int status = test_wait(cons[c], 60000);
        CHECK_MSG(status != -1, "consumer %d hangs", c);
        /* The victim dies unless the others left it too few messages. */
        CHECK_MSG((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                      (c == 0 && expect_kills && WIFSIGNALED(status) &&
                       WTERMSIG(status) == SIGKILL),
                  "consumer %d: status 0x%x", c, status);
    }
    CHECK_EQ(atomic_load(&st->bad), 0);
}

TEST_T(queue_exactly_once_processes, 120)
{
    uint32_t per = (uint32_t)test_scaled_stress(100000);
    struct stress *st = new_stress(per, 64 << 10, 400);
    run_stress_processes(st, 0);
    long total = 0;
    for (uint32_t p = 0; p < NPROD; p++)
        CHECK_EQ(check_seen(st, p, per), 0);
    for (int c = 0; c < NCONS; c++)
        total += st->received[c];
    CHECK_EQ(total, (long)NPROD * per);
    printf("%ld messages, each received once\n", total);
    CHECK_EQ(mproc_queue_qsize(st->q), 0);
    CHECK_OK(mproc_queue_destroy(st->q));
}

struct targ {
    struct stress *st;
    uint32_t id;
};

static void *prod_thread(void *arg)
{
    struct targ *t = arg;
    produce(t->st, t->id);
    return NULL;
}

static void *cons_thread(void *arg)
{
    struct targ *t = arg;
    consume(t->st, t->id);
    return NULL;
}

TEST_T(queue_exactly_once_threads, 120)
{
    uint32_t per = (uint32_t)test_scaled_stress(20000);
    struct stress *st = new_stress(per, 16 << 10, 200);
    pthread_t pt[NPROD], ct[NCONS];
    struct targ pa[NPROD], ca[NCONS];
    for (uint32_t c = 0; c < NCONS; c++) {
        ca[c] = (struct targ){ st, c };
        ct[c] = test_start_thread(cons_thread, &ca[c]);
    }
    for (uint32_t p = 0; p < NPROD; p++) {
        pa[p] = (struct targ){ st, p };
        pt[p] = test_start_thread(prod_thread, &pa[p]);
    }
    for (int p = 0; p < NPROD; p++)
        test_join_thread(pt[p]);
    CHECK_OK(mproc_queue_close(st->q));
    for (int c = 0; c < NCONS; c++)
        test_join_thread(ct[c]);
    CHECK_EQ(atomic_load(&st->bad), 0);
    for (uint32_t p = 0; p < NPROD; p++)
        CHECK_EQ(check_seen(st, p, per), 0);
    CHECK_OK(mproc_queue_destroy(st->q));
}

/* 4 x 4 processes again, with producer 0 and consumer 0 SIGKILLed at
 * fault points chosen at random (seeded, printed): nothing else lost. */
static const char *const put_points[] = { "queue.put.locked", "queue.put.copying",
                                          "queue.put.copied", "queue.put.committed" };
static const char *const get_points[] = { "queue.get.locked", "queue.get.copying",
                                          "queue.get.copied", "queue.get.committed" };

TEST_T(queue_exactly_once_with_kills, 120)
{
    uint32_t per = (uint32_t)test_scaled_stress(8000);
    uint64_t seed = (uint64_t)mproc_now_ns() | 1;
    for (int round = 0; round < 8; round++) {
        struct stress *st = new_stress(per, 32 << 10, 300);
        uint64_t r = test_xorshift(&seed);
        st->kill_put_point = put_points[r % 4];
        st->kill_put_nth = 1 + (uint32_t)(r >> 8) % (per / 2);
        st->kill_get_point = get_points[(r >> 40) % 4];
        st->kill_get_nth = 1 + (uint32_t)(r >> 44) % 200;
        printf("round %d: producer 0 dies at %s #%u, consumer 0 at %s #%u\n", round,
               st->kill_put_point, st->kill_put_nth, st->kill_get_point, st->kill_get_nth);
        run_stress_processes(st, 1);
        /* The victim consumer may lose the one message it took. */
        long missing = 0;
        uint32_t died_at = st->attempt[0];
        missing += check_seen(st, 0, died_at);
        for (uint32_t i = died_at + 1; i < per; i++)
            CHECK_EQ(st->seen[i], 0); /* never put */
        for (uint32_t p = 1; p < NPROD; p++)
            missing += check_seen(st, p, per);
        CHECK_MSG(missing <= 1, "%ld messages lost", missing);
        CHECK_EQ(mproc_queue_qsize(st->q), 0);
        CHECK_OK(mproc_queue_destroy(st->q));
    }
}

/* ------------------------------------------------------------------ */
/* deterministic kills at each fault point                             */
/* ------------------------------------------------------------------ */

struct victim {
    mproc_queue *q;
    const char *point;
    unsigned nth;
    uint32_t count;
};

static int victim_producer(void *arg)
{
    struct victim *v = arg;
    mproc__fault_arm(v->point, v->nth, mproc__fault_kill_self);
    for (uint32_t i = 0; i < v->count; i++)
        put_msg(v->q, 1, i, 40 + i * 8);
    return 1; /* must not get here */
}

/* A producer killed at its 5th put, at each point: messages 0..3 are
 * there, message 4 too iff it was committed, then a later put works (it
 * repairs the lock) and nothing else changed. */
TEST_T(queue_producer_killed_at_each_point, 60)
{
    for (int i = 0; i < 4; i++) {
        mproc_queue *q = new_queue(0, 1024, 0);
        struct victim v = { q, put_points[i], 5, 20 };
        pid_t c = test_fork(victim_producer, &v);
        test_expect_child_killed(c);
        int committed = i == 3;
        CHECK_EQ(mproc_queue_qsize(q), 4 + committed);
        put_msg(q, 2, 0, 100);
        for (uint32_t k = 0; k < 4u + (uint32_t)committed; k++) {
            struct mhdr h = get_msg(q);
            CHECK_EQ(h.producer, 1);
            CHECK_EQ(h.seq, k);
        }
        CHECK_EQ(get_msg(q).producer, 2);
        CHECK_EQ(mproc_queue_empty(q), 1);
        /* And it keeps working through wrap-around. */
        for (uint32_t k = 0; k < 100; k++) {
            put_msg(q, 3, k, 16 + k);
            CHECK_EQ(get_msg(q).seq, k);
        }
        CHECK_OK(mproc_queue_destroy(q));
    }
}

static int victim_consumer(void *arg)
{
    struct victim *v = arg;
    mproc__fault_arm(v->point, v->nth, mproc__fault_kill_self);
    for (int i = 0; i < 100; i++)
        get_msg(v->q);
    return 1; /* must not get here */
}

/* A consumer killed at its 5th get, at each point: message 4 is still
 * queued unless the get had committed; everything after it is intact. */
TEST_T(queue_consumer_killed_at_each_point, 60)
{
    for (int i = 0; i < 4; i++) {
        mproc_queue *q = new_queue(0, 4096, 0);
        for (uint32_t k = 0; k < 12; k++)
            put_msg(q, 1, k, 40 + k * 8);
        struct victim v = { q, get_points[i], 5, 0 };
        pid_t c = test_fork(victim_consumer, &v);
        test_expect_child_killed(c);
        int taken = 4 + (i == 3);
        CHECK_EQ(mproc_queue_qsize(q), 12 - taken);
        for (uint32_t k = (uint32_t)taken; k < 12; k++)
            CHECK_EQ(get_msg(q).seq, k);
        CHECK_EQ(mproc_queue_empty(q), 1);
        put_msg(q, 2, 0, 100);
        CHECK_EQ(get_msg(q).producer, 2);
        CHECK_OK(mproc_queue_destroy(q));
    }
}

/* A producer streaming a message larger than the ring dies half-way
 * while a consumer thread is receiving it: the consumer drops the partial
 * message (told by the repair's ABORT or by finding the writer dead) and
 * gets the next one; nobody hangs. */
static int victim_big_producer(void *arg)
{
    struct victim *v = arg;
    mproc__fault_arm(v->point, v->nth, mproc__fault_kill_self);
    put_msg(v->q, 1, 0, 200000);
    return 1;
}

struct got {
    mproc_queue *q;
    struct mhdr h;
};

static void *get_one_thread(void *arg)
{
    struct got *g = arg;
    g->h = get_msg(g->q);
    return NULL;
}

TEST(queue_large_producer_killed_midway)
{
    for (int round = 0; round < 2; round++) {
        mproc_queue *q = new_queue(0, 4096, 0);
        struct victim v = { q, "queue.put.chunk", 3, 0 };
        pid_t c = test_fork(victim_big_producer, &v);
        struct got g = { q, { 0 } };
        pthread_t t = test_start_thread(get_one_thread, &g);
        test_expect_child_killed(c);
        if (round == 1) /* let the consumer find the writer dead itself */
            usleep(300000);
        put_msg(q, 2, 7, 64);
        test_join_thread(t);
        CHECK_EQ(g.h.producer, 2);
        CHECK_EQ(g.h.seq, 7);
        CHECK_EQ(mproc_queue_qsize(q), 0);
        CHECK_OK(mproc_queue_destroy(q));
    }
}

/* A consumer dies half-way through a large message: the next consumer
 * skips the rest of it, and the producer is not stuck. */
static int victim_big_consumer(void *arg)
{
    struct victim *v = arg;
    mproc__fault_arm(v->point, v->nth, mproc__fault_kill_self);
    get_msg(v->q);
    return 1;
}

TEST(queue_large_consumer_killed_midway)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    struct victim v = { q, "queue.get.chunk", 3, 0 };
    pid_t c = test_fork(victim_big_consumer, &v);
    struct big_put b = { q, { 150000, 64 }, 2, { -1, -1 } };
    pthread_t t = test_start_thread(big_putter, &b);
    test_expect_child_killed(c);
    struct mhdr h = get_msg(q);
    CHECK_EQ(h.seq, 1);
    CHECK_EQ(h.len, 64);
    test_join_thread(t);
    CHECK_OK(b.rc[0]);
    CHECK_OK(b.rc[1]);
    CHECK_EQ(mproc_queue_qsize(q), 0);
    CHECK_OK(mproc_queue_destroy(q));
}

/* A consumer killed holding the consumer lock, while others wait for it:
 * they notice and carry on. */
static int stopped_consumer(void *arg)
{
    struct victim *v = arg;
    mproc__fault_arm(v->point, v->nth, mproc__fault_stop_self);
    get_msg(v->q);
    return 1;
}

TEST(queue_waiters_survive_dead_lock_holder)
{
    mproc_queue *q = new_queue(0, 0, 0);
    put_msg(q, 1, 0, 32);
    put_msg(q, 1, 1, 32);
    struct victim v = { q, "queue.get.copying", 1, 0 };
    pid_t c = test_fork(stopped_consumer, &v);
    /* It stops holding the lock, mid-copy. */
    int status;
    CHECK_EQ(waitpid(c, &status, WUNTRACED), c);
    CHECK(WIFSTOPPED(status));
    CHECK_EQ(mproc_queue_qsize(q), 2);
    struct got g = { q, { 0 } };
    pthread_t t = test_start_thread(get_one_thread, &g);
    usleep(20000);
    CHECK_EQ(kill(c, SIGKILL), 0);
    test_expect_child_killed(c);
    test_join_thread(t);
    CHECK_EQ(g.h.seq, 0); /* the victim's message, not lost */
    CHECK_EQ(get_msg(q).seq, 1);
    CHECK_OK(mproc_queue_destroy(q));
}

/* ------------------------------------------------------------------ */
/* batches: put_many / get_many                                        */
/* ------------------------------------------------------------------ */

/* n test messages (producer p, seqs from `first`, sizes from size_of) in
 * one allocation, with their iovecs. */
struct batch {
    struct iovec *iov;
    char *mem;
};

static uint32_t batch_size(uint32_t seq)
{
    return 16 + (seq * 37) % 200;
}

static struct batch make_batch(uint32_t p, uint32_t first, size_t n,
                               uint32_t (*size_of)(uint32_t))
{
    struct batch b = { calloc(n ? n : 1, sizeof *b.iov), NULL };
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += size_of(first + (uint32_t)i);
    b.mem = malloc(total ? total : 1);
    CHECK(b.iov != NULL && b.mem != NULL);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t len = size_of(first + (uint32_t)i);
        fill_msg(b.mem + off, p, first + (uint32_t)i, len);
        b.iov[i] = (struct iovec){ b.mem + off, len };
        off += len;
    }
    return b;
}

static void free_batch(struct batch *b)
{
    free(b->iov);
    free(b->mem);
}

/* get_many until `n` messages from producer p have come, checking each
 * and their order (seqs from `first`). */
static void get_many_expect(mproc_queue *q, uint32_t p, uint32_t first, size_t n,
                            size_t cap, size_t max)
{
    char *buf = malloc(cap);
    struct iovec *iov = calloc(max, sizeof *iov);
    CHECK(buf != NULL && iov != NULL);
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < max ? n - got : max; /* no more than n */
        int k = mproc_queue_get_many(q, buf, cap, iov, want, 20000);
        CHECK_MSG(k >= 1 && (size_t)k <= want, "get_many returned %d", k);
        for (int i = 0; i < k; i++) {
            struct mhdr h;
            CHECK_MSG(check_msg(iov[i].iov_base, iov[i].iov_len, &h),
                      "corrupt message of %zu bytes", iov[i].iov_len);
            CHECK_EQ(h.producer, p);
            CHECK_EQ(h.seq, first + (uint32_t)got);
            CHECK((char *)iov[i].iov_base >= buf &&
                  (char *)iov[i].iov_base + iov[i].iov_len <= buf + cap);
            got++;
        }
    }
    CHECK_EQ(got, n);
    free(iov);
    free(buf);
}

TEST(queue_many_basic)
{
    mproc_queue *q = new_queue(0, 0, 0);
    struct batch b = make_batch(1, 0, 300, batch_size);
    CHECK_EQ(mproc_queue_put_many(q, b.iov, 300, -1), 300);
    CHECK_EQ(mproc_queue_qsize(q), 300);
    /* A small buffer: several messages a call, never one cut. */
    get_many_expect(q, 1, 0, 100, 1000, 64);
    /* Interleaved with single puts and gets, in order. */
    put_msg(q, 1, 300, 40);
    get_many_expect(q, 1, 100, 201, 1 << 16, 500);
    CHECK_EQ(mproc_queue_empty(q), 1);

    /* Nothing queued: -EAGAIN / -ETIMEDOUT. */
    char buf[256];
    struct iovec iov[4];
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, iov, 4, 0), -EAGAIN);
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, iov, 4, 10), -ETIMEDOUT);

    /* The oldest does not fit: -EMSGSIZE with its size, and it stays. */
    put_msg(q, 2, 0, 100);
    CHECK_EQ(mproc_queue_get_many(q, buf, 50, iov, 4, 0), -EMSGSIZE);
    CHECK_EQ(iov[0].iov_len, 100);
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, iov, 4, 0), 1);
    CHECK_EQ(iov[0].iov_len, 100);

    /* Empty messages and n = 0. */
    struct iovec empty[3] = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
    CHECK_EQ(mproc_queue_put_many(q, empty, 3, 0), 3);
    CHECK_EQ(mproc_queue_put_many(q, empty, 0, 0), 0);
    CHECK_EQ(mproc_queue_get_many(q, NULL, 0, iov, 4, 0), 3);
    CHECK_EQ(iov[2].iov_len, 0);
    free_batch(&b);
    CHECK_OK(mproc_queue_destroy(q));
}

TEST(queue_many_bad_arguments_and_close)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    char buf[64];
    struct iovec iov[2] = { { buf, 8 }, { NULL, 8 } };
    CHECK_EQ(mproc_queue_put_many(NULL, iov, 1, 0), -EINVAL);
    CHECK_EQ(mproc_queue_put_many(q, NULL, 1, 0), -EINVAL);
    CHECK_EQ(mproc_queue_put_many(q, iov, 1, -2), -EINVAL);
    CHECK_EQ(mproc_queue_put_many(q, iov, 2, 0), -EINVAL); /* NULL base: nothing put */
    CHECK_EQ(mproc_queue_qsize(q), 0);
    CHECK_EQ(mproc_queue_get_many(NULL, buf, sizeof buf, iov, 2, 0), -EINVAL);
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, NULL, 2, 0), -EINVAL);
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, iov, 0, 0), -EINVAL);
    CHECK_EQ(mproc_queue_get_many(q, NULL, 8, iov, 2, 0), -EINVAL);
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, iov, 2, -2), -EINVAL);

    /* Too large: checked first, nothing put. */
    mproc_queue *small;
    CHECK_OK(mproc_queue_create(&small, &(mproc_queue_opts){ .max_message = 16 }));
    struct iovec two[2] = { { buf, 8 }, { buf, 17 } };
    CHECK_EQ(mproc_queue_put_many(small, two, 2, 0), -EMSGSIZE);
    CHECK_EQ(mproc_queue_qsize(small), 0);
    CHECK_OK(mproc_queue_destroy(small));

    /* maxsize: as many as allowed, then the next call says -EAGAIN. */
    mproc_queue *m = new_queue(10, 0, 0);
    struct batch b = make_batch(3, 0, 25, batch_size);
    CHECK_EQ(mproc_queue_put_many(m, b.iov, 25, 0), 10);
    CHECK_EQ(mproc_queue_put_many(m, b.iov + 10, 15, 0), -EAGAIN);
    CHECK_EQ(mproc_queue_put_many(m, b.iov + 10, 15, 20), -ETIMEDOUT);
    get_many_expect(m, 3, 0, 10, 4096, 3);
    free_batch(&b);
    CHECK_OK(mproc_queue_destroy(m));

    /* Closed: puts -EPIPE; gets drain, then -EPIPE. */
    iov[1].iov_base = buf;
    memset(buf, 0, sizeof buf);
    CHECK_EQ(mproc_queue_put_many(q, iov, 2, 0), 2);
    CHECK_OK(mproc_queue_close(q));
    CHECK_EQ(mproc_queue_put_many(q, iov, 2, 0), -EPIPE);
    struct iovec out[4];
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, out, 4, 0), 2);
    CHECK_EQ(mproc_queue_get_many(q, buf, sizeof buf, out, 4, -1), -EPIPE);
    CHECK_OK(mproc_queue_destroy(q));
}

/* Sizes from 16 bytes to past the ring (chunked), in one batch. */
static uint32_t mixed_size(uint32_t seq)
{
    return seq % 7 == 3 ? 9000 + seq * 13 : 16 + (seq * 53) % 900;
}

static int many_child(void *arg)
{
    mproc_queue *q = arg;
    for (uint32_t i = 0; i < 2000; i += 50) {
        struct batch b = make_batch(5, i, 50, mixed_size);
        CHECK_EQ(mproc_queue_put_many(q, b.iov, 50, 20000), 50);
        free_batch(&b);
    }
    return 0;
}

/* A producer process batching through a small ring (records wrap, large
 * ones stream) to a consumer batching too: all arrive, in order. */
TEST(queue_many_processes)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    pid_t c = test_fork(many_child, q);
    get_many_expect(q, 5, 0, 2000, 40000, 16);
    test_expect_child_ok(c);
    CHECK_EQ(mproc_queue_empty(q), 1);
    CHECK_OK(mproc_queue_destroy(q));
}

static int victim_many_producer(void *arg)
{
    struct victim *v = arg;
    struct batch b = make_batch(1, 4, 8, batch_size);
    mproc__fault_arm(v->point, v->nth, mproc__fault_kill_self);
    mproc_queue_put_many(v->q, b.iov, 8, 20000);
    return 1; /* must not get here */
}

/* A producer killed in the middle of a batch (after copying 3 of its 8
 * messages, none published): the 4 messages before it are intact, its
 * batch is gone whole, and the next put repairs the lock and works. */
TEST(queue_many_producer_killed_midway)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    for (uint32_t k = 0; k < 4; k++)
        put_msg(q, 1, k, batch_size(k));
    struct victim v = { q, "queue.put_many.copied", 3, 0 };
    pid_t c = test_fork(victim_many_producer, &v);
    test_expect_child_killed(c);
    CHECK_EQ(mproc_queue_qsize(q), 4);
    put_msg(q, 2, 0, 100);
    get_many_expect(q, 1, 0, 4, 4096, 64);
    CHECK_EQ(get_msg(q).producer, 2);
    CHECK_EQ(mproc_queue_empty(q), 1);
    for (uint32_t k = 0; k < 100; k++) { /* wraps around where it wrote */
        struct batch b = make_batch(3, k * 3, 3, batch_size);
        CHECK_EQ(mproc_queue_put_many(q, b.iov, 3, 0), 3);
        get_many_expect(q, 3, k * 3, 3, 4096, 2);
        free_batch(&b);
    }
    CHECK_OK(mproc_queue_destroy(q));
}

static int victim_many_consumer(void *arg)
{
    struct victim *v = arg;
    char buf[4096];
    struct iovec iov[16];
    mproc__fault_arm(v->point, v->nth, mproc__fault_kill_self);
    mproc_queue_get_many(v->q, buf, sizeof buf, iov, 16, 20000);
    return 1; /* must not get here */
}

/* A consumer killed in the middle of a batch, after copying 3 messages
 * but before releasing them: nothing is lost. */
TEST(queue_many_consumer_killed_midway)
{
    mproc_queue *q = new_queue(0, 4096, 0);
    struct batch b = make_batch(1, 0, 12, batch_size);
    CHECK_EQ(mproc_queue_put_many(q, b.iov, 12, 0), 12);
    struct victim v = { q, "queue.get_many.copied", 3, 0 };
    pid_t c = test_fork(victim_many_consumer, &v);
    test_expect_child_killed(c);
    CHECK_EQ(mproc_queue_qsize(q), 12);
    get_many_expect(q, 1, 0, 12, 4096, 5);
    CHECK_EQ(mproc_queue_empty(q), 1);
    put_msg(q, 2, 0, 100);
    CHECK_EQ(get_msg(q).producer, 2);
    free_batch(&b);
    CHECK_OK(mproc_queue_destroy(q));
}
