/*
 * tests/test_pipe.c -- mproc_pipe / mproc_conn: messages across fork in
 * both directions, one-way pipes, poll, timeouts, large messages,
 * -EMSGSIZE, -EPIPE after the peer's close and after its SIGKILL (once
 * what it sent has been received), a sender killed half-way through a
 * large message, threads sharing an end, bad arguments.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "runner.h"
#include "helpers.h"

static mproc_conn *g_a, *g_b;

static void make_pipe(bool duplex)
{
    CHECK_OK(mproc_pipe(&g_a, &g_b, duplex));
}

static void fill(char *p, size_t n, uint32_t seed)
{
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0)
            test_xorshift(&s);
        p[i] = (char)(s >> ((i & 7) * 8));
    }
}

static int same(const char *p, size_t n, uint32_t seed)
{
    char *w = malloc(n ? n : 1);
    CHECK(w != NULL);
    fill(w, n, seed);
    int ok = memcmp(w, p, n) == 0;
    free(w);
    return ok;
}

static void send_pattern(mproc_conn *c, size_t n, uint32_t seed)
{
    char *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    fill(p, n, seed);
    CHECK_OK(mproc_conn_send(c, p, n));
    free(p);
}

static void recv_pattern(mproc_conn *c, size_t n, uint32_t seed)
{
    void *p;
    size_t len;
    CHECK_OK(mproc_conn_recv_alloc(c, &p, &len, 20000));
    CHECK_EQ(len, n);
    CHECK(same(p, n, seed));
    free(p);
}

TEST(pipe_basic_same_process)
{
    make_pipe(true);
    CHECK_OK(mproc_conn_send(g_b, "hola", 4));
    CHECK_OK(mproc_conn_send(g_b, NULL, 0));
    CHECK_OK(mproc_conn_send(g_a, "adios", 5));
    char buf[16];
    size_t n;
    CHECK_EQ(mproc_conn_poll(g_a, 0), 1);
    CHECK_OK(mproc_conn_recv(g_a, buf, sizeof buf, &n, 0));
    CHECK_EQ(n, 4);
    CHECK(memcmp(buf, "hola", 4) == 0);
    CHECK_OK(mproc_conn_recv(g_a, buf, sizeof buf, &n, 0));
    CHECK_EQ(n, 0);
    CHECK_EQ(mproc_conn_poll(g_a, 0), 0);
    CHECK_RC(mproc_conn_recv(g_a, buf, sizeof buf, &n, 0), -EAGAIN);
    CHECK_TIMES_OUT(mproc_conn_recv(g_a, buf, sizeof buf, &n, 30), 30);
    CHECK_EQ(mproc_conn_poll(g_a, 20), 0);
    CHECK_OK(mproc_conn_recv(g_b, buf, sizeof buf, &n, -1));
    CHECK_EQ(n, 5);
    CHECK(memcmp(buf, "adios", 5) == 0);
    CHECK(mproc_conn_fileno(g_a) >= 0);
    CHECK_OK(mproc_conn_destroy(g_a));
    CHECK_OK(mproc_conn_destroy(g_b));
}

static int echo_child(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_conn_destroy(g_a)); /* the parent's end */
    for (;;) {
        void *p;
        size_t n;
        int rc = mproc_conn_recv_alloc(g_b, &p, &n, 20000);
        if (rc == -EPIPE)
            return 0;
        CHECK_OK(rc);
        CHECK_OK(mproc_conn_send(g_b, p, n));
        free(p);
    }
}

/* Both directions across fork, messages of many sizes (some far larger
 * than a socket buffer). */
TEST(pipe_duplex_across_fork)
{
    make_pipe(true);
    pid_t c = test_fork(echo_child, NULL);
    CHECK_OK(mproc_conn_destroy(g_b));
    size_t sizes[] = { 0, 1, 100, 65536 - 16, 65536, 65537, 300000, 3 << 20, 7 };
    for (uint32_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        send_pattern(g_a, sizes[i], i);
        recv_pattern(g_a, sizes[i], i);
    }
    /* Many small ones in flight at once. */
    for (uint32_t i = 0; i < 200; i++)
        send_pattern(g_a, 64, 1000 + i);
    for (uint32_t i = 0; i < 200; i++)
        recv_pattern(g_a, 64, 1000 + i);
    CHECK_OK(mproc_conn_close(g_a));
    test_expect_child_ok(c);
    CHECK_OK(mproc_conn_destroy(g_a));
}

static int writer_child(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_conn_destroy(g_a));
    for (uint32_t i = 0; i < 20; i++) /* small: all fit the socket buffer */
        send_pattern(g_b, 10 + i * 100, i);
    return 0; /* exit closes the end: the reader drains, then -EPIPE */
}

/* Pipe(duplex=False): a reads, b writes; the reader sees -EPIPE after
 * the last message once the writer is gone. */
TEST(pipe_one_way_and_eof)
{
    make_pipe(false);
    char buf[8];
    size_t n;
    CHECK_RC(mproc_conn_send(g_a, "x", 1), -EBADF);
    CHECK_RC(mproc_conn_recv(g_b, buf, sizeof buf, &n, 0), -EBADF);
    CHECK_RC(mproc_conn_poll(g_b, 0), -EBADF);
    pid_t c = test_fork(writer_child, NULL);
    CHECK_OK(mproc_conn_destroy(g_b));
    test_expect_child_ok(c); /* everything is sent before we read */
    for (uint32_t i = 0; i < 20; i++) {
        CHECK_EQ(mproc_conn_poll(g_a, 0), 1);
        recv_pattern(g_a, 10 + i * 100, i);
    }
    CHECK_RC(mproc_conn_poll(g_a, -1), -EPIPE);
    CHECK_RC(mproc_conn_recv(g_a, buf, sizeof buf, &n, -1), -EPIPE);
    CHECK_RC(mproc_conn_recv(g_a, buf, sizeof buf, &n, 0), -EPIPE);
    CHECK_OK(mproc_conn_destroy(g_a));
}

static int killed_writer(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_conn_destroy(g_a));
    send_pattern(g_b, 1000, 1);
    send_pattern(g_b, 2000, 2);
    /* A message far larger than the socket buffer: blocks half-way, and
     * the parent kills us there. */
    send_pattern(g_b, 8 << 20, 3);
    return 1;
}

/* The writer is SIGKILLed while sending a large message: the reader gets
 * the two whole messages, then -EPIPE -- never part of the large one, and
 * never a hang. */
TEST(pipe_peer_killed)
{
    make_pipe(true);
    pid_t c = test_fork(killed_writer, NULL);
    CHECK_OK(mproc_conn_destroy(g_b));
    recv_pattern(g_a, 1000, 1);
    recv_pattern(g_a, 2000, 2);
    /* Wait until the large message has begun (a first packet queued) and
     * the writer is blocked on the full socket. */
    CHECK_EQ(mproc_conn_poll(g_a, 20000), 1);
    test_wait_sleeping(c, 20000);
    CHECK_EQ(kill(c, SIGKILL), 0);
    test_expect_child_killed(c);
    void *p = (void *)1;
    size_t n;
    CHECK_RC(mproc_conn_recv_alloc(g_a, &p, &n, -1), -EPIPE);
    CHECK(p == NULL);
    CHECK_RC(mproc_conn_send(g_a, "x", 1), -EPIPE);
    CHECK_OK(mproc_conn_destroy(g_a));
}

static int blocked_reader(void *arg)
{
    (void)arg;
    CHECK_OK(mproc_conn_destroy(g_b));
    char buf[8];
    size_t n;
    return mproc_conn_recv(g_a, buf, sizeof buf, &n, -1) == -EPIPE ? 0 : 1;
}

/* A reader blocked with no timeout wakes with -EPIPE when the peer dies
 * (here: the only holder of the peer end closes it). */
TEST(pipe_blocked_reader_wakes_on_peer_close)
{
    make_pipe(true);
    pid_t c = test_fork(blocked_reader, NULL);
    CHECK_OK(mproc_conn_destroy(g_a));
    test_wait_sleeping(c, 10000);
    CHECK_OK(mproc_conn_close(g_b));
    test_expect_child_ok(c);
    CHECK_RC(mproc_conn_send(g_b, "x", 1), -EBADF);
    CHECK_OK(mproc_conn_destroy(g_b));
}

TEST(pipe_msgsize)
{
    mproc_conn *a, *b;
    CHECK_OK(mproc_pipe_create(&a, &b, true, &(mproc_pipe_opts){ .max_message = 100 }));
    char buf[200] = { 0 };
    size_t n = 0;
    CHECK_RC(mproc_conn_send(a, buf, 101), -EMSGSIZE);
    CHECK_OK(mproc_conn_send(a, buf, 100));
    CHECK_RC(mproc_conn_recv(b, buf, 10, &n, 1000), -EMSGSIZE);
    CHECK_EQ(n, 100);
    CHECK_EQ(mproc_conn_poll(b, 0), 1); /* still queued */
    CHECK_OK(mproc_conn_recv(b, buf, sizeof buf, &n, 0));
    CHECK_EQ(n, 100);
    CHECK_OK(mproc_conn_destroy(a));
    CHECK_OK(mproc_conn_destroy(b));
}

TEST(pipe_bad_arguments)
{
    mproc_conn *a, *b;
    char buf[8];
    size_t n;
    void *p;
    CHECK_RC(mproc_pipe(NULL, &b, true), -EINVAL);
    CHECK_RC(mproc_pipe(&a, NULL, true), -EINVAL);
    CHECK_RC(mproc_pipe_create(NULL, NULL, false, NULL), -EINVAL);
    CHECK_OK(mproc_pipe(&a, &b, true));
    CHECK_RC(mproc_conn_send(NULL, "x", 1), -EINVAL);
    CHECK_RC(mproc_conn_send(a, NULL, 1), -EINVAL);
    CHECK_RC(mproc_conn_recv(NULL, buf, 8, &n, 0), -EINVAL);
    CHECK_RC(mproc_conn_recv(a, buf, 8, NULL, 0), -EINVAL);
    CHECK_RC(mproc_conn_recv(a, NULL, 8, &n, 0), -EINVAL);
    CHECK_RC(mproc_conn_recv(a, buf, 8, &n, -2), -EINVAL);
    CHECK_RC(mproc_conn_recv_alloc(NULL, &p, &n, 0), -EINVAL);
    CHECK_RC(mproc_conn_recv_alloc(a, NULL, &n, 0), -EINVAL);
    CHECK_RC(mproc_conn_recv_alloc(a, &p, NULL, 0), -EINVAL);
    CHECK_RC(mproc_conn_recv_alloc(a, &p, &n, -7), -EINVAL);
    CHECK_RC(mproc_conn_poll(NULL, 0), -EINVAL);
    CHECK_RC(mproc_conn_poll(a, -2), -EINVAL);
    CHECK_RC(mproc_conn_fileno(NULL), -EINVAL);
    CHECK_RC(mproc_conn_close(NULL), -EINVAL);
    CHECK_RC(mproc_conn_destroy(NULL), -EINVAL);
    /* Closed here. */
    CHECK_OK(mproc_conn_close(a));
    CHECK_OK(mproc_conn_close(a));
    CHECK_RC(mproc_conn_send(a, "x", 1), -EBADF);
    CHECK_RC(mproc_conn_recv(a, buf, 8, &n, 0), -EBADF);
    CHECK_RC(mproc_conn_poll(a, 0), -EBADF);
    CHECK_RC(mproc_conn_fileno(a), -EBADF);
    /* ... which the other end sees as the peer gone. */
    CHECK_RC(mproc_conn_send(b, "x", 1), -EPIPE);
    CHECK_RC(mproc_conn_poll(b, 0), -EPIPE);
    CHECK_OK(mproc_conn_destroy(a));
    CHECK_OK(mproc_conn_destroy(b));
}

/* Threads sending large messages on one end at once: each arrives whole. */
struct tsend {
    mproc_conn *c;
    uint32_t id;
};

static void *sender_thread(void *arg)
{
    struct tsend *t = arg;
    for (uint32_t i = 0; i < 20; i++)
        send_pattern(t->c, 100000 + t->id, t->id * 1000 + i);
    return NULL;
}

TEST(pipe_threads_share_an_end)
{
    make_pipe(true);
    pthread_t th[3];
    struct tsend ts[3];
    for (uint32_t i = 0; i < 3; i++) {
        ts[i] = (struct tsend){ g_b, i };
        th[i] = test_start_thread(sender_thread, &ts[i]);
    }
    uint32_t next[3] = { 0 };
    for (int k = 0; k < 60; k++) {
        void *p;
        size_t n;
        CHECK_OK(mproc_conn_recv_alloc(g_a, &p, &n, 20000));
        CHECK(n >= 100000 && n < 100003);
        uint32_t id = (uint32_t)(n - 100000);
        CHECK(same(p, n, id * 1000 + next[id]));
        next[id]++;
        free(p);
    }
    for (int i = 0; i < 3; i++)
        test_join_thread(th[i]);
    CHECK_OK(mproc_conn_destroy(g_a));
    CHECK_OK(mproc_conn_destroy(g_b));
}
