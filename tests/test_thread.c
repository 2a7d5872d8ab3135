/*
 * tests/test_thread.c -- mproc threads (mproc/workers.h): life cycle,
 * join, registry, names, excepthook, exit-time join, fork.
 *
 * Threads are held in a known state with events, never with sleeps: a
 * test waits on an event or polls a condition against a generous deadline.
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "runner.h"
#include "helpers.h"

#define LONG_MS 10000 /* generous deadline for things that must happen */

/* ---- helpers ---------------------------------------------------------- */

/* A thread body's shared state: it waits for `go`, records what it sees,
 * then returns `ret`. */
typedef struct gate {
    mproc_event ready; /* set by the thread when it is running */
    mproc_event go;    /* set by the test to let the thread finish */
    int ret;
    pid_t tid;         /* gettid() seen by the thread */
    pid_t native;      /* native_id(current()) seen by the thread */
    mproc_thread *self;
    int ran;           /* atomic: times the body ran */
} gate;

static void gate_init(gate *g, int ret)
{
    memset(g, 0, sizeof *g);
    CHECK_OK(mproc_event_init(&g->ready, 0));
    CHECK_OK(mproc_event_init(&g->go, 0));
    g->ret = ret;
}

static int gate_body(void *arg)
{
    gate *g = arg;
    g->tid = gettid();
    g->self = mproc_thread_current();
    g->native = mproc_thread_native_id(g->self);
    __atomic_fetch_add(&g->ran, 1, __ATOMIC_RELAXED);
    mproc_event_set(&g->ready);
    if (mproc_event_wait(&g->go, LONG_MS) != 0)
        return -ETIMEDOUT;
    return g->ret;
}

static mproc_thread *start_gate(gate *g, const char *name, bool daemon)
{
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = gate_body, .arg = g, .name = name, .daemon = daemon }));
    CHECK_OK(mproc_thread_start(t));
    return t;
}

static int return_arg(void *arg)
{
    return (int)(intptr_t)arg;
}

/* Poll until active_count() == n, or fail after LONG_MS. Needed only
 * where no join can tell us a thread has unregistered (destroyed handles,
 * raw pthreads). */
static void wait_active_count(int n)
{
    int64_t end = test_now_ms() + LONG_MS;
    int c;
    while ((c = mproc_thread_active_count()) != n) {
        CHECK_MSG(test_now_ms() < end, "active_count stays %d, want %d", c, n);
        mproc_sleep_ms(1);
    }
}

/* /proc/self/task/<tid>/comm without its newline. */
static void read_comm(pid_t tid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK_MSG(fd >= 0, "open %s: %s", path, strerror(errno));
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    CHECK(n > 0);
    buf[n] = '\0';
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
}

/* Read everything from fd until EOF (or fail after LONG_MS). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    int64_t end = test_now_ms() + LONG_MS;
    for (;;) {
        int64_t left = end - test_now_ms();
        CHECK_MSG(left > 0, "no EOF within %d ms", LONG_MS);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r >= 0);
        if (r == 0)
            continue;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        CHECK(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
        CHECK(len < cap - 1);
    }
    buf[len] = '\0';
    return len;
}

/* A hook that records what it was told (tests replace the default). */
static struct {
    int calls;
    int code;
    pid_t native_id;
    pid_t hook_tid;
    mproc_thread *thread;
    void *userdata;
    char name[MPROC_THREAD_NAME_MAX + 1];
    char message[256];
} hooked;

static void record_hook(const mproc_thread_failure *f, void *userdata)
{
    hooked.calls++;
    hooked.code = f->code;
    hooked.native_id = f->native_id;
    hooked.hook_tid = gettid();
    hooked.thread = f->thread;
    hooked.userdata = userdata;
    snprintf(hooked.name, sizeof hooked.name, "%s", f->name);
    snprintf(hooked.message, sizeof hooked.message, "%s", f->message);
}

/* ---- life cycle ------------------------------------------------------- */

TEST(create_start_join_result)
{
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = return_arg, .arg = (void *)(intptr_t)7 }));
    CHECK(!mproc_thread_is_alive(t));
    CHECK_EQ(mproc_thread_native_id(t), 0);
    CHECK_OK(mproc_thread_start(t));
    int result = -1;
    CHECK_OK(mproc_thread_join(t, -1, &result));
    CHECK_EQ(result, 7);
    CHECK(!mproc_thread_is_alive(t));
    CHECK(mproc_thread_native_id(t) > 0);
    /* A finished thread joins again at once, any number of times. */
    result = -1;
    CHECK_OK(mproc_thread_join(t, 0, &result));
    CHECK_EQ(result, 7);
    CHECK_OK(mproc_thread_join(t, -1, NULL));
    mproc_thread_destroy(t);
}

TEST(alive_while_running)
{
    gate g;
    gate_init(&g, 0);
    mproc_thread *t = start_gate(&g, NULL, false);
    /* start() returns once the thread runs: alive with a native id. */
    CHECK(mproc_thread_is_alive(t));
    CHECK(mproc_thread_native_id(t) > 0);
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, -1, NULL));
    CHECK(!mproc_thread_is_alive(t));
    mproc_thread_destroy(t);
}

TEST(join_timeout)
{
    gate g;
    gate_init(&g, 3);
    mproc_thread *t = start_gate(&g, "bloqueado", false);
    CHECK_OK(mproc_event_wait(&g.ready, LONG_MS));
    CHECK_RC(mproc_thread_join(t, 0, NULL), -ETIMEDOUT);
    int64_t t0 = test_now_ms();
    int result = -1;
    CHECK_RC(mproc_thread_join(t, 50, &result), -ETIMEDOUT);
    CHECK(test_now_ms() - t0 >= 50);
    CHECK_EQ(result, -1); /* untouched on timeout */
    CHECK(mproc_thread_is_alive(t));
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, LONG_MS, &result));
    CHECK_EQ(result, 3);
    mproc_thread_destroy(t);
}

/* Four threads join one target at the same time. */
typedef struct joiner_arg {
    mproc_thread *target;
    int rc;
    int result;
    mproc_event *arrived;
    int *count; /* atomic */
    int n;
} joiner_arg;

static int joiner_body(void *p)
{
    joiner_arg *a = p;
    if (__atomic_add_fetch(a->count, 1, __ATOMIC_ACQ_REL) == a->n)
        mproc_event_set(a->arrived);
    a->rc = mproc_thread_join(a->target, LONG_MS, &a->result);
    return 0;
}

TEST(join_from_four_threads)
{
    enum { N = 4 };
    gate g;
    gate_init(&g, 11);
    mproc_thread *target = start_gate(&g, "objetivo", false);
    mproc_event arrived;
    CHECK_OK(mproc_event_init(&arrived, 0));
    int count = 0;
    joiner_arg args[N];
    mproc_thread *joiners[N];
    for (int i = 0; i < N; i++) {
        args[i] = (joiner_arg){ .target = target, .rc = 1, .result = -1,
                                .arrived = &arrived, .count = &count, .n = N };
        CHECK_OK(mproc_thread_create(&joiners[i], &(mproc_thread_opts){
            .fn = joiner_body, .arg = &args[i] }));
        CHECK_OK(mproc_thread_start(joiners[i]));
    }
    /* Every joiner is about to join (or joining) before the target ends. */
    CHECK_OK(mproc_event_wait(&arrived, LONG_MS));
    CHECK(mproc_thread_is_alive(target));
    CHECK_OK(mproc_event_set(&g.go));
    for (int i = 0; i < N; i++) {
        CHECK_OK(mproc_thread_join(joiners[i], LONG_MS, NULL));
        CHECK_RC(args[i].rc, 0);
        CHECK_EQ(args[i].result, 11);
        mproc_thread_destroy(joiners[i]);
    }
    int result = -1;
    CHECK_OK(mproc_thread_join(target, 0, &result));
    CHECK_EQ(result, 11);
    mproc_thread_destroy(target);
}

TEST(start_twice_is_ebusy)
{
    gate g;
    gate_init(&g, 0);
    mproc_thread *t = start_gate(&g, NULL, false);
    CHECK_RC(mproc_thread_start(t), -EBUSY);
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, -1, NULL));
    CHECK_RC(mproc_thread_start(t), -EBUSY);
    CHECK_EQ(__atomic_load_n(&g.ran, __ATOMIC_RELAXED), 1);
    mproc_thread_destroy(t);
}

TEST(join_never_started_is_einval)
{
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){ .fn = return_arg }));
    CHECK_RC(mproc_thread_join(t, 0, NULL), -EINVAL);
    CHECK_RC(mproc_thread_join(t, -1, NULL), -EINVAL);
    mproc_thread_destroy(t); /* never started: freed at once */
}

typedef struct self_join {
    mproc_thread **handle;
    int rc_handle;
    int rc_current;
} self_join;

static int self_join_body(void *p)
{
    self_join *s = p;
    s->rc_handle = mproc_thread_join(*s->handle, 0, NULL);
    s->rc_current = mproc_thread_join(mproc_thread_current(), -1, NULL);
    return 0;
}

TEST(self_join_is_edeadlk)
{
    mproc_thread *t;
    self_join s = { .handle = &t };
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = self_join_body, .arg = &s }));
    CHECK_OK(mproc_thread_start(t));
    CHECK_OK(mproc_thread_join(t, LONG_MS, NULL));
    CHECK_RC(s.rc_handle, -EDEADLK);
    CHECK_RC(s.rc_current, -EDEADLK);
    mproc_thread_destroy(t);
    /* The main thread joining itself, too. */
    CHECK_RC(mproc_thread_join(mproc_thread_current(), -1, NULL), -EDEADLK);
}

TEST(native_id_is_kernel_tid)
{
    gate g;
    gate_init(&g, 0);
    mproc_thread *t = start_gate(&g, NULL, false);
    CHECK_OK(mproc_event_wait(&g.ready, LONG_MS));
    CHECK(g.tid > 0);
    CHECK(g.tid != getpid());
    CHECK_EQ(mproc_thread_native_id(t), g.tid);
    CHECK_EQ(g.native, g.tid);
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, -1, NULL));
    CHECK_EQ(mproc_thread_native_id(t), g.tid); /* kept after the end */
    mproc_thread_destroy(t);
}

TEST(current_in_thread_is_its_handle)
{
    gate g;
    gate_init(&g, 0);
    mproc_thread *t = start_gate(&g, NULL, false);
    CHECK_OK(mproc_event_wait(&g.ready, LONG_MS));
    CHECK(g.self == t);
    CHECK(mproc_thread_current() != t);
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, -1, NULL));
    mproc_thread_destroy(t);
}

TEST(main_thread)
{
    mproc_thread *m = mproc_thread_current();
    CHECK(m != NULL);
    CHECK(m == mproc_thread_current());
    char name[64];
    CHECK_EQ(mproc_thread_name(m, name, sizeof name), 10);
    CHECK(strcmp(name, "MainThread") == 0);
    CHECK_EQ(mproc_thread_native_id(m), getpid());
    CHECK(mproc_thread_is_alive(m));
    CHECK(!mproc_thread_daemon(m));
    mproc_thread_info info[4];
    CHECK_EQ(mproc_thread_enumerate(info, 4), 1);
    CHECK(info[0].main);
    CHECK(info[0].alive);
    CHECK(!info[0].daemon);
    CHECK_EQ(info[0].native_id, getpid());
    CHECK(strcmp(info[0].name, "MainThread") == 0);
    CHECK_EQ(mproc_thread_active_count(), 1);
    /* mproc owns this handle: destroy is a no-op, start is -EBUSY. */
    mproc_thread_destroy(m);
    CHECK_RC(mproc_thread_start(m), -EBUSY);
    CHECK(mproc_thread_is_alive(m));
}

/* Another thread cannot join the main thread (mproc does not see it end). */
static int join_main_body(void *p)
{
    return mproc_thread_join(p, 0, NULL) == -EINVAL ? 0 : -EPROTO;
}

TEST(join_main_from_thread_is_einval)
{
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = join_main_body, .arg = mproc_thread_current() }));
    CHECK_OK(mproc_thread_start(t));
    int result = -1;
    CHECK_OK(mproc_thread_join(t, LONG_MS, &result));
    CHECK_RC(result, 0);
    mproc_thread_destroy(t);
}

/* ---- dummy threads ------------------------------------------------------ */

typedef struct dummy_seen {
    mproc_thread *h1, *h2;
    char name[64];
    bool daemon, alive;
    pid_t native, tid;
    int count;
    bool listed_main_too;
} dummy_seen;

static void *raw_body(void *p)
{
    dummy_seen *d = p;
    d->h1 = mproc_thread_current();
    d->h2 = mproc_thread_current();
    if (d->h1 == NULL)
        return NULL;
    mproc_thread_name(d->h1, d->name, sizeof d->name);
    d->daemon = mproc_thread_daemon(d->h1);
    d->alive = mproc_thread_is_alive(d->h1);
    d->native = mproc_thread_native_id(d->h1);
    d->tid = gettid();
    mproc_thread_info info[8];
    d->count = mproc_thread_enumerate(info, 8);
    for (int i = 0; i < d->count && i < 8; i++)
        if (info[i].main && strcmp(info[i].name, "MainThread") == 0)
            d->listed_main_too = true;
    return NULL;
}

TEST(dummy_thread_from_raw_pthread)
{
    CHECK_EQ(mproc_thread_active_count(), 1);
    dummy_seen d = { 0 };
    test_on_other_thread(raw_body, &d); /* a plain pthread, not an mproc one */
    CHECK(d.h1 != NULL);
    CHECK(d.h1 == d.h2);
    CHECK_MSG(strncmp(d.name, "Dummy-", 6) == 0, "name %s", d.name);
    CHECK(d.daemon);
    CHECK(d.alive);
    CHECK_EQ(d.native, d.tid);
    CHECK_EQ(d.count, 2);
    CHECK(d.listed_main_too);
    /* The key destructor unregistered (and freed) it before pthread_join
     * returned. */
    CHECK_EQ(mproc_thread_active_count(), 1);
}

/* ---- registry ----------------------------------------------------------- */

static const mproc_thread_info *find_info(const mproc_thread_info *info,
                                          int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(info[i].name, name) == 0)
            return &info[i];
    return NULL;
}

TEST(enumerate_lists_exactly_live_threads)
{
    gate g[3];
    const char *names[3] = { "Hilo-A", "Hilo-B", "Vigilante" };
    mproc_thread *t[3];
    for (int i = 0; i < 3; i++) {
        gate_init(&g[i], 0);
        t[i] = start_gate(&g[i], names[i], i == 2);
    }
    /* A created but unstarted thread is not listed. */
    mproc_thread *idle;
    CHECK_OK(mproc_thread_create(&idle, &(mproc_thread_opts){
        .fn = return_arg, .name = "Nuevo" }));

    mproc_thread_info info[8];
    int n = mproc_thread_enumerate(info, 8);
    CHECK_EQ(n, 4);
    CHECK_EQ(mproc_thread_active_count(), 4);
    const mproc_thread_info *m = find_info(info, n, "MainThread");
    CHECK(m && m->main && m->alive);
    for (int i = 0; i < 3; i++) {
        const mproc_thread_info *e = find_info(info, n, names[i]);
        CHECK_MSG(e != NULL, "%s not listed", names[i]);
        CHECK(e->alive);
        CHECK(!e->main);
        CHECK_EQ(e->daemon, i == 2);
        CHECK_EQ(e->native_id, mproc_thread_native_id(t[i]));
    }
    CHECK(find_info(info, n, "Nuevo") == NULL);

    /* A short buffer: the full count, cap entries filled. */
    mproc_thread_info two[2];
    memset(two, 0xAB, sizeof two);
    CHECK_EQ(mproc_thread_enumerate(two, 2), 4);
    CHECK(two[0].name[0] != (char)0xAB && two[1].name[0] != (char)0xAB);
    CHECK_EQ(mproc_thread_enumerate(NULL, 0), 4);

    /* End one: it leaves the list by the time join returns. */
    CHECK_OK(mproc_event_set(&g[1].go));
    CHECK_OK(mproc_thread_join(t[1], LONG_MS, NULL));
    n = mproc_thread_enumerate(info, 8);
    CHECK_EQ(n, 3);
    CHECK(find_info(info, n, "Hilo-B") == NULL);
    CHECK(find_info(info, n, "Hilo-A") != NULL);

    for (int i = 0; i < 3; i++) {
        CHECK_OK(mproc_event_set(&g[i].go));
        CHECK_OK(mproc_thread_join(t[i], LONG_MS, NULL));
        mproc_thread_destroy(t[i]);
    }
    CHECK_EQ(mproc_thread_active_count(), 1);
    mproc_thread_destroy(idle);
}

/* ---- names ------------------------------------------------------------ */

TEST(default_names_count_from_one)
{
    mproc_thread *a, *b;
    CHECK_OK(mproc_thread_create(&a, &(mproc_thread_opts){ .fn = return_arg }));
    CHECK_OK(mproc_thread_create(&b, &(mproc_thread_opts){ .fn = return_arg }));
    char na[64], nb[64];
    CHECK(mproc_thread_name(a, na, sizeof na) > 0);
    CHECK(mproc_thread_name(b, nb, sizeof nb) > 0);
    /* Each test is a fresh process, so numbering starts here. */
    CHECK_MSG(strcmp(na, "Thread-1") == 0, "got %s", na);
    CHECK_MSG(strcmp(nb, "Thread-2") == 0, "got %s", nb);
    mproc_thread_destroy(a);
    mproc_thread_destroy(b);
}

TEST(name_set_get_and_os_name)
{
    gate g;
    gate_init(&g, 0);
    mproc_thread *t = start_gate(&g, "trabajador-de-fondo-numero-1", false);
    pid_t tid = mproc_thread_native_id(t);
    char buf[64];
    /* start() applied the OS name, cut to the kernel's 15 bytes. */
    read_comm(tid, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "trabajador-de-f") == 0, "comm %s", buf);

    CHECK_OK(mproc_thread_set_name(t, "DB-Connector"));
    CHECK_EQ(mproc_thread_name(t, buf, sizeof buf), 12);
    CHECK(strcmp(buf, "DB-Connector") == 0);
    read_comm(tid, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "DB-Connector") == 0, "comm %s", buf);

    /* Short buffers truncate; the return value is the full length. */
    char small[4];
    CHECK_EQ(mproc_thread_name(t, small, sizeof small), 12);
    CHECK(strcmp(small, "DB-") == 0);
    CHECK_EQ(mproc_thread_name(t, NULL, 0), 12);

    /* Names are kept to MPROC_THREAD_NAME_MAX bytes. */
    char longname[200];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_OK(mproc_thread_set_name(t, longname));
    CHECK_EQ(mproc_thread_name(t, buf, sizeof buf), MPROC_THREAD_NAME_MAX);

    /* The OS name never ends inside a UTF-8 character: 8 'ñ' are 16
     * bytes, the kernel keeps 15, we give it 14 (7 'ñ'). */
    CHECK_OK(mproc_thread_set_name(t, "ññññññññ"));
    read_comm(tid, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "ñññññññ") == 0, "comm %s", buf);

    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, LONG_MS, NULL));
    /* A finished thread can still be renamed (no OS thread to touch). */
    CHECK_OK(mproc_thread_set_name(t, "terminado"));
    CHECK_EQ(mproc_thread_name(t, buf, sizeof buf), 9);
    mproc_thread_destroy(t);
}

TEST(name_set_before_start_is_applied)
{
    gate g;
    gate_init(&g, 0);
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = gate_body, .arg = &g, .name = "antes" }));
    CHECK_OK(mproc_thread_set_name(t, "Hilo-1"));
    CHECK_OK(mproc_thread_start(t));
    char buf[64];
    read_comm(mproc_thread_native_id(t), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "Hilo-1") == 0, "comm %s", buf);
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(t, LONG_MS, NULL));
    mproc_thread_destroy(t);
}

TEST(main_thread_rename_sets_os_name)
{
    CHECK_OK(mproc_thread_set_name(mproc_thread_current(), "Principal"));
    char buf[64];
    read_comm(getpid(), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "Principal") == 0, "comm %s", buf);
}

/* ---- failures and the excepthook --------------------------------------- */

static int failing_body(void *arg)
{
    (void)arg;
    return mproc_thread_fail(-EIO, "no puedo leer %s", "datos.csv");
}

TEST(excepthook_replaced_gets_code_message_name)
{
    int cookie;
    mproc_thread_set_excepthook(record_hook, &cookie);
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = failing_body, .name = "Lector" }));
    CHECK_OK(mproc_thread_start(t));
    int result = 0;
    CHECK_OK(mproc_thread_join(t, LONG_MS, &result));
    CHECK_RC(result, -EIO);
    CHECK_EQ(hooked.calls, 1);
    CHECK_RC(hooked.code, -EIO);
    CHECK(strcmp(hooked.name, "Lector") == 0);
    CHECK_MSG(strcmp(hooked.message, "no puedo leer datos.csv") == 0,
              "message %s", hooked.message);
    CHECK(hooked.thread == t);
    CHECK(hooked.userdata == &cookie);
    CHECK_EQ(hooked.native_id, mproc_thread_native_id(t));
    CHECK_EQ(hooked.hook_tid, hooked.native_id); /* runs on that thread */

    /* A success does not call the hook. */
    mproc_thread *ok;
    CHECK_OK(mproc_thread_create(&ok, &(mproc_thread_opts){ .fn = return_arg }));
    CHECK_OK(mproc_thread_start(ok));
    CHECK_OK(mproc_thread_join(ok, LONG_MS, NULL));
    CHECK_EQ(hooked.calls, 1);
    mproc_thread_destroy(ok);
    mproc_thread_destroy(t);
}

TEST(thread_fail_return_values)
{
    CHECK_RC(mproc_thread_fail(-EINVAL, "x %d", 1), -EINVAL);
    CHECK_RC(mproc_thread_fail(MPROC_ECANCELLED, "cancelada"), MPROC_ECANCELLED);
    CHECK_EQ(mproc_thread_fail(0, "nada"), 0);
    CHECK_EQ(mproc_thread_fail(5, "positivo"), 5);
}

/* A failure with no message attached gets no ": message" tail. */
static int plain_failure(void *arg)
{
    (void)arg;
    return -EPERM;
}

static int long_message_failure(void *arg)
{
    (void)arg;
    char big[600];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    return mproc_thread_fail(-ENOENT, "%s", big);
}

/* Helper process: stderr to the pipe, run one failing thread. */
static int default_hook_child(void *arg)
{
    int *fds = arg;
    close(fds[0]);
    if (dup2(fds[1], STDERR_FILENO) < 0)
        return 2;
    close(fds[1]);
    mproc_thread_fn fns[] = { failing_body, plain_failure, long_message_failure };
    const char *names[] = { "Hilo-Falla", "Hilo-Plano", "Hilo-Largo" };
    for (int i = 0; i < 3; i++) {
        mproc_thread *t;
        if (mproc_thread_create(&t, &(mproc_thread_opts){
                .fn = fns[i], .name = names[i] }) != 0)
            return 3;
        if (mproc_thread_start(t) != 0)
            return 4;
        int result;
        if (mproc_thread_join(t, LONG_MS, &result) != 0)
            return 5;
        mproc_thread_destroy(t);
    }
    return 0;
}

TEST(default_excepthook_output)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t pid = test_fork(default_hook_child, fds);
    close(fds[1]);
    char out[4096];
    read_all(fds[0], out, sizeof out);
    close(fds[0]);
    int status = test_wait(pid, LONG_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child status %#x, output: %s", status, out);

    /* Three lines, one per failure, in order. */
    char *save = NULL;
    char *line1 = strtok_r(out, "\n", &save);
    char *line2 = strtok_r(NULL, "\n", &save);
    char *line3 = strtok_r(NULL, "\n", &save);
    CHECK(line1 && line2 && line3);
    CHECK(strtok_r(NULL, "\n", &save) == NULL);

    int id = 0, used = 0;
    CHECK_MSG(sscanf(line1, "Exception in thread Hilo-Falla (native id %d): %n",
                     &id, &used) == 1 && used > 0, "line: %s", line1);
    CHECK(id > 0 && id != (int)pid);
    char want[512];
    snprintf(want, sizeof want, "%s: %s: no puedo leer datos.csv",
             mproc_errname(-EIO), mproc_strerror(-EIO));
    CHECK_MSG(strcmp(line1 + used, want) == 0, "line: %s\nwant tail: %s",
              line1, want);
    CHECK(strcmp(mproc_errname(-EIO), "EIO") == 0);

    used = 0;
    CHECK_MSG(sscanf(line2, "Exception in thread Hilo-Plano (native id %d): %n",
                     &id, &used) == 1 && used > 0, "line: %s", line2);
    snprintf(want, sizeof want, "%s: %s", mproc_errname(-EPERM),
             mproc_strerror(-EPERM));
    CHECK_MSG(strcmp(line2 + used, want) == 0, "line: %s", line2);

    /* The message is cut to 255 bytes. */
    used = 0;
    CHECK_MSG(sscanf(line3, "Exception in thread Hilo-Largo (native id %d): %n",
                     &id, &used) == 1 && used > 0, "line: %s", line3);
    snprintf(want, sizeof want, "%s: %s: ", mproc_errname(-ENOENT),
             mproc_strerror(-ENOENT));
    CHECK(strncmp(line3 + used, want, strlen(want)) == 0);
    CHECK_EQ(strlen(line3 + used + strlen(want)), 255);
}

/* ---- exit: non-daemon threads are joined, daemon ones are not ---------- */

static struct {
    mproc_event exiting;
    int fd;
} at_exit;

static void release_worker_at_exit(void)
{
    mproc_event_set(&at_exit.exiting);
}

/* Runs only once exit() has begun, and makes its side effect late, so
 * the process would already be gone if exit did not wait for it. */
static int nondaemon_worker(void *arg)
{
    (void)arg;
    if (mproc_event_wait(&at_exit.exiting, LONG_MS) != 0)
        return -ETIMEDOUT;
    mproc_sleep_ms(100);
    const char msg[] = "hecho";
    return write(at_exit.fd, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : -EIO;
}

static int nondaemon_child(void *arg)
{
    int *fds = arg;
    close(fds[0]);
    at_exit.fd = fds[1];
    mproc_event_init(&at_exit.exiting, 0);
    mproc_thread *t;
    if (mproc_thread_create(&t, &(mproc_thread_opts){ .fn = nondaemon_worker }) != 0)
        return 3;
    if (mproc_thread_start(t) != 0)
        return 4;
    /* Registered after mproc's own exit handler (installed at the first
     * start), so it runs before it: the worker is released only once
     * exit() is under way. */
    atexit(release_worker_at_exit);
    mproc_thread_destroy(t); /* the handle is not needed to be joined */
    exit(0);                 /* main "returns" */
}

TEST(nondaemon_thread_joined_at_exit)
{
    int fds[2];
    CHECK_EQ(pipe(fds), 0);
    pid_t pid = test_fork(nondaemon_child, fds);
    close(fds[1]);
    char out[64];
    read_all(fds[0], out, sizeof out);
    close(fds[0]);
    int status = test_wait(pid, LONG_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    CHECK_MSG(strcmp(out, "hecho") == 0, "worker output: '%s'", out);
}

static int blocked_forever(void *arg)
{
    mproc_event *never = arg;
    mproc_event_wait(never, -1);
    return 0;
}

static int daemon_child(void *arg)
{
    (void)arg;
    static mproc_event never;
    mproc_event_init(&never, 0);
    mproc_thread *t;
    if (mproc_thread_create(&t, &(mproc_thread_opts){
            .fn = blocked_forever, .arg = &never, .daemon = true }) != 0)
        return 3;
    if (mproc_thread_start(t) != 0)
        return 4;
    if (!mproc_thread_is_alive(t))
        return 5;
    exit(0);
}

TEST(daemon_thread_not_joined_at_exit)
{
    int64_t t0 = test_now_ms();
    pid_t pid = test_fork(daemon_child, NULL);
    int status = test_wait(pid, LONG_MS);
    CHECK_MSG(status != -1, "child still running after %d ms", LONG_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    CHECK(test_now_ms() - t0 < LONG_MS);
}

/* ---- handles ------------------------------------------------------------ */

typedef struct after_destroy {
    gate g;
    mproc_event finished;
    int side_effect;
} after_destroy;

static int after_destroy_body(void *p)
{
    after_destroy *a = p;
    int rc = gate_body(&a->g);
    /* The handle was destroyed: the thread must still own its state. */
    char name[64];
    mproc_thread_name(mproc_thread_current(), name, sizeof name);
    a->side_effect = strcmp(name, "huerfano") == 0 ? 1 : 2;
    mproc_event_set(&a->finished);
    return rc;
}

TEST(destroy_while_running)
{
    after_destroy a;
    gate_init(&a.g, 0);
    CHECK_OK(mproc_event_init(&a.finished, 0));
    a.side_effect = 0;
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = after_destroy_body, .arg = &a, .name = "huerfano" }));
    CHECK_OK(mproc_thread_start(t));
    CHECK_OK(mproc_event_wait(&a.g.ready, LONG_MS));
    mproc_thread_destroy(t);
    /* Still running and listed. */
    CHECK_EQ(mproc_thread_active_count(), 2);
    CHECK_OK(mproc_event_set(&a.g.go));
    CHECK_OK(mproc_event_wait(&a.finished, LONG_MS));
    CHECK_EQ(a.side_effect, 1);
    /* It frees itself and leaves the registry (ASan checks the free). */
    wait_active_count(1);
}

static int count_body(void *arg)
{
    __atomic_fetch_add((int *)arg, 1, __ATOMIC_RELAXED);
    return 0;
}

TEST_T(start_join_1000_cycles, 120)
{
    long n = test_scaled(1000);
    int count = 0;
    for (long i = 0; i < n; i++) {
        mproc_thread *t;
        CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
            .fn = count_body, .arg = &count, .daemon = i % 2 }));
        CHECK_OK(mproc_thread_start(t));
        if (i % 10 == 9) {
            /* Some are never joined: destroy detaches them. */
            mproc_thread_destroy(t);
            continue;
        }
        CHECK_OK(mproc_thread_join(t, LONG_MS, NULL));
        mproc_thread_destroy(t);
    }
    wait_active_count(1);
    CHECK_EQ(__atomic_load_n(&count, __ATOMIC_RELAXED), n);
}

TEST(stack_size_option)
{
    size_t sizes[] = { 1, 100000, 1 << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        mproc_thread *t;
        CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
            .fn = return_arg, .arg = (void *)(intptr_t)i, .stack_size = sizes[i] }));
        CHECK_OK(mproc_thread_start(t));
        int result = -1;
        CHECK_OK(mproc_thread_join(t, LONG_MS, &result));
        CHECK_EQ(result, (int)i);
        mproc_thread_destroy(t);
    }
}

/* pthread_create failing (no address space for the stack) reports the
 * error and leaves the handle New: not started, not listed. */
TEST(start_failure_leaves_handle_new)
{
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = return_arg, .stack_size = SIZE_MAX / 2 }));
    int rc = mproc_thread_start(t);
    CHECK_MSG(rc == -EAGAIN || rc == -ENOMEM || rc == -EINVAL,
              "start returned %d (%s)", rc, mproc_errname(rc));
    CHECK(!mproc_thread_is_alive(t));
    CHECK_EQ(mproc_thread_native_id(t), 0);
    CHECK_RC(mproc_thread_join(t, 0, NULL), -EINVAL);
    CHECK_EQ(mproc_thread_active_count(), 1);
    mproc_thread_destroy(t);
}

/* Several threads race to start one handle: exactly one wins. */
typedef struct start_race {
    mproc_thread *target;
    mproc_barrier barrier;
    int rc[4];
} start_race;

typedef struct racer {
    start_race *race;
    int index;
} racer;

static int racer_body(void *p)
{
    racer *me = p;
    mproc_barrier_wait(&me->race->barrier, LONG_MS);
    me->race->rc[me->index] = mproc_thread_start(me->race->target);
    return 0;
}

TEST(concurrent_start_runs_once)
{
    int count = 0;
    start_race r;
    memset(&r, 0, sizeof r);
    CHECK_OK(mproc_barrier_init(&r.barrier, 4, 0));
    CHECK_OK(mproc_thread_create(&r.target, &(mproc_thread_opts){
        .fn = count_body, .arg = &count }));
    racer args[4];
    mproc_thread *racers[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (racer){ .race = &r, .index = i };
        CHECK_OK(mproc_thread_create(&racers[i], &(mproc_thread_opts){
            .fn = racer_body, .arg = &args[i] }));
        CHECK_OK(mproc_thread_start(racers[i]));
    }
    int ok = 0, busy = 0;
    for (int i = 0; i < 4; i++) {
        CHECK_OK(mproc_thread_join(racers[i], LONG_MS, NULL));
        mproc_thread_destroy(racers[i]);
        ok += r.rc[i] == 0;
        busy += r.rc[i] == -EBUSY;
    }
    CHECK_EQ(ok, 1);
    CHECK_EQ(busy, 3);
    CHECK_OK(mproc_thread_join(r.target, LONG_MS, NULL));
    CHECK_EQ(__atomic_load_n(&count, __ATOMIC_RELAXED), 1);
    mproc_thread_destroy(r.target);
}

TEST(daemon_flag)
{
    mproc_thread *d, *n;
    CHECK_OK(mproc_thread_create(&d, &(mproc_thread_opts){
        .fn = return_arg, .daemon = true }));
    CHECK_OK(mproc_thread_create(&n, &(mproc_thread_opts){ .fn = return_arg }));
    CHECK(mproc_thread_daemon(d));
    CHECK(!mproc_thread_daemon(n));
    mproc_thread_destroy(d);
    mproc_thread_destroy(n);
}

TEST(bad_arguments)
{
    mproc_thread *t = NULL;
    CHECK_RC(mproc_thread_create(NULL, &(mproc_thread_opts){ .fn = return_arg }), -EINVAL);
    CHECK_RC(mproc_thread_create(&t, NULL), -EINVAL);
    CHECK_RC(mproc_thread_create(&t, &(mproc_thread_opts){ .fn = NULL }), -EINVAL);
    CHECK(t == NULL);
    CHECK_RC(mproc_thread_start(NULL), -EINVAL);
    CHECK_RC(mproc_thread_join(NULL, -1, NULL), -EINVAL);
    mproc_thread_destroy(NULL);
    CHECK(!mproc_thread_is_alive(NULL));
    CHECK_EQ(mproc_thread_native_id(NULL), 0);
    CHECK(!mproc_thread_daemon(NULL));
    char buf[8];
    CHECK_RC(mproc_thread_name(NULL, buf, sizeof buf), -EINVAL);
    CHECK_RC(mproc_thread_set_name(NULL, "x"), -EINVAL);
    CHECK_RC(mproc_thread_enumerate(NULL, 1), -EINVAL);
    CHECK_EQ(mproc_thread_enumerate(NULL, 0), 1);

    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){ .fn = return_arg }));
    CHECK_RC(mproc_thread_name(t, NULL, 4), -EINVAL);
    CHECK_RC(mproc_thread_set_name(t, NULL), -EINVAL);
    CHECK_OK(mproc_thread_start(t));
    CHECK_RC(mproc_thread_join(t, -2, NULL), -EINVAL);
    CHECK_RC(mproc_thread_join(t, INT64_MIN, NULL), -EINVAL);
    CHECK_OK(mproc_thread_join(t, -1, NULL));
    mproc_thread_destroy(t);

    CHECK_RC(mproc_thread_fail(-EINVAL, NULL), -EINVAL);
    mproc_thread_set_excepthook(NULL, NULL); /* the default again */
}

/* ---- fork ------------------------------------------------------------ */

typedef struct fork_ctx {
    mproc_thread *other; /* a thread running in the parent */
} fork_ctx;

/* In the child only the forking thread exists. Exit codes name the
 * failed check. */
static int check_child_registry(fork_ctx *c, mproc_thread *self)
{
    mproc_thread_info info[8];
    if (mproc_thread_enumerate(info, 8) != 1)
        return 10;
    if (!info[0].main || !info[0].alive || info[0].native_id != getpid())
        return 11;
    if (mproc_thread_current() != self)
        return 12;
    if (mproc_thread_native_id(self) != getpid())
        return 13;
    if (c->other) {
        if (mproc_thread_is_alive(c->other))
            return 14;
        /* Joining a thread that did not survive fork returns at once. */
        if (mproc_thread_join(c->other, 0, NULL) != 0)
            return 15;
    }
    return 0;
}

static int fork_child_from_main(void *arg)
{
    return check_child_registry(arg, mproc_thread_current());
}

TEST(fork_child_sees_only_forking_thread)
{
    gate g;
    gate_init(&g, 0);
    fork_ctx c = { .other = start_gate(&g, "en-el-padre", false) };
    CHECK_EQ(mproc_thread_active_count(), 2);
    pid_t pid = test_fork(fork_child_from_main, &c);
    int status = test_wait(pid, LONG_MS);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
    /* The parent is untouched. */
    CHECK_EQ(mproc_thread_active_count(), 2);
    CHECK(mproc_thread_is_alive(c.other));
    CHECK_OK(mproc_event_set(&g.go));
    CHECK_OK(mproc_thread_join(c.other, LONG_MS, NULL));
    mproc_thread_destroy(c.other);
}

static int fork_child_from_thread(void *arg)
{
    /* This thread becomes the child's main thread, keeping its name. */
    mproc_thread *self = mproc_thread_current();
    int rc = check_child_registry(arg, self);
    if (rc)
        return rc;
    char name[64];
    mproc_thread_name(self, name, sizeof name);
    return strcmp(name, "bifurcador") == 0 ? 0 : 16;
}

static int forking_body(void *arg)
{
    fork_ctx c = { .other = NULL };
    (void)arg;
    pid_t pid = test_fork(fork_child_from_thread, &c);
    int status = test_wait(pid, LONG_MS);
    if (status == -1)
        return -ETIMEDOUT;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return mproc_thread_fail(-EPROTO, "child status %#x", status);
    return 0;
}

TEST(fork_from_thread_makes_it_main_in_child)
{
    mproc_thread_set_excepthook(record_hook, NULL);
    mproc_thread *t;
    CHECK_OK(mproc_thread_create(&t, &(mproc_thread_opts){
        .fn = forking_body, .name = "bifurcador" }));
    CHECK_OK(mproc_thread_start(t));
    int result = -1;
    CHECK_OK(mproc_thread_join(t, 2 * LONG_MS, &result));
    CHECK_MSG(result == 0, "result %d (%s) %s", result, mproc_errname(result),
              hooked.message);
    mproc_thread_destroy(t);
}
