/*
 * tools/lab_switch.c -- `mproc lab switch`: what a context switch costs,
 * and what a pool saves over short-lived threads.
 *
 * Part 1: ping-pong. Two parties hand a token back and forth R times;
 * each waits (blocks) until the other has answered, so a round trip is
 * two hand-overs, and round trip / 2 is the cost of one switch from one
 * party to the other:
 *   - two threads of this process, over a pair of mproc_semaphores
 *     (futexes);
 *   - two processes (mproc_process, fork), over a pair of pipes (a byte
 *     each way), and over a pair of MPROC_SHARED mproc_semaphores in
 *     mproc_shared_calloc memory.
 * Each runs twice: unpinned (the scheduler may put the parties on two
 * CPUs: the waker does not give up its CPU, and the mproc semaphore's
 * short spin may catch the token without sleeping at all, so this is a
 * hand-over latency, not always a switch), and with both parties pinned
 * to one CPU (sched_setaffinity) -- the "true switch": one party must
 * stop for the other to run. getrusage counts the voluntary and
 * involuntary context switches of both parties, so the report says how
 * many real switches each round trip took.
 *
 * Part 2: 1,000 short-lived threads, each created, started and joined
 * one after another to run a tiny task (two atomic additions), against
 * a thread executor (MPROC_THREADS, one worker per CPU) running the same
 * 1,000 tasks -- its creation and shutdown included in its time. Both
 * must count every task exactly. The cost of the tiny task itself, run
 * as a plain call, sets the scale: the notes' warning is that with many
 * threads doing little, more time goes to switching than to work.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "procfs.h"
#include "tools.h"

#define WAIT_MS 60000 /* a party that does not answer within this has failed */
#define TINY_TASKS 1000

enum { BY_SEM, BY_PIPE };
enum { IN_THREAD, IN_PROCESS };

/* One ping-pong. For processes it lives in mproc_shared_calloc memory,
 * at the same address in the child. */
struct pingpong {
    mproc_semaphore ping, pong; /* BY_SEM: main releases ping, the partner pong */
    int mode;
    int who;                    /* RUSAGE_THREAD or RUSAGE_SELF for the partner */
    uint64_t warm, rounds;      /* round trips: warm-up, then timed */
    int to_partner[2], to_main[2]; /* BY_PIPE */
    /* Written by the partner before it ends. */
    uint64_t done;              /* round trips it completed, warm-up included */
    long switches;              /* its context switches in the timed part */
};

static long switches_of(int who)
{
    struct rusage ru;
    if (getrusage(who, &ru) != 0)
        return 0;
    return ru.ru_nvcsw + ru.ru_nivcsw;
}

/* The partner's side: take the token, give it back. */
static int partner(struct pingpong *s)
{
    long before = 0;
    uint64_t total = s->warm + s->rounds, i;
    int in = s->to_partner[0], out = s->to_main[1];
    char b;
    for (i = 0; i < total; i++) {
        if (i == s->warm)
            before = switches_of(s->who);
        if (s->mode == BY_SEM) {
            if (mproc_semaphore_acquire(&s->ping, WAIT_MS) != 0)
                break;
            mproc_semaphore_release(&s->pong, 1);
        } else if (mproc__lab_read_full(in, &b, 1) != 0 ||
                   mproc__write_all(out, &b, 1) != 0) {
            break;
        }
    }
    s->switches = switches_of(s->who) - before;
    s->done = i;
    return i == total ? 0 : -EIO;
}

static int partner_thread(void *arg)
{
    return partner(arg);
}

static int partner_process(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)ctx;
    struct pingpong *s;
    if (len != sizeof s)
        return -EINVAL;
    memcpy(&s, arg, sizeof s);
    if (s->mode == BY_PIPE) { /* the parent's ends: so its death is our end of file */
        close(s->to_partner[1]);
        close(s->to_main[0]);
    }
    return partner(s);
}

/* The main side of one round trip. */
static int round_trip(struct pingpong *s)
{
    char b = 'x';
    if (s->mode == BY_SEM) {
        mproc_semaphore_release(&s->ping, 1);
        return mproc_semaphore_acquire(&s->pong, WAIT_MS);
    }
    int rc = mproc__write_all(s->to_partner[1], &b, 1);
    return rc ? rc : mproc__lab_read_full(s->to_main[0], &b, 1);
}

/* Close the ends fds[] (two pipes' worth, -1 for none). */
static void close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

struct pp_result {
    double ns_per_switch;     /* round trip / 2 */
    double switches_per_trip; /* context switches of both parties, per round trip */
    uint64_t done;            /* round trips the partner completed */
    int cpu;                  /* pinned to this CPU, or -1 */
};

/* Drive the timed part; ns per round trip, or < 0. */
static double drive(struct pingpong *s, long *switches)
{
    for (uint64_t i = 0; i < s->warm; i++)
        if (round_trip(s) != 0)
            return -EIO;
    long before = switches_of(RUSAGE_THREAD);
    int64_t t0 = mproc_now_ns();
    for (uint64_t i = 0; i < s->rounds; i++)
        if (round_trip(s) != 0)
            return -EIO;
    int64_t t1 = mproc_now_ns();
    *switches = switches_of(RUSAGE_THREAD) - before;
    return (double)(t1 - t0) / (double)s->rounds;
}

/* One ping-pong between a thread or a process and this thread. */
static int ping_pong(int in, int mode, bool pin, uint64_t warm, uint64_t rounds,
                     struct pp_result *res)
{
    struct pingpong *s = mproc_shared_calloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    unsigned flags = in == IN_PROCESS ? MPROC_SHARED : 0;
    mproc_semaphore_init(&s->ping, 0, flags);
    mproc_semaphore_init(&s->pong, 0, flags);
    s->mode = mode;
    s->who = in == IN_PROCESS ? RUSAGE_SELF : RUSAGE_THREAD;
    s->warm = warm;
    s->rounds = rounds;
    s->to_partner[0] = s->to_partner[1] = s->to_main[0] = s->to_main[1] = -1;
    int rc = 0;
    if (mode == BY_PIPE && (pipe(s->to_partner) != 0 || pipe(s->to_main) != 0))
        rc = -errno;
    cpu_set_t saved;
    res->cpu = -1;
    if (rc == 0 && pin)
        rc = mproc__lab_pin(&res->cpu, &saved); /* the partner inherits it */

    mproc_thread *t = NULL;
    mproc_process *p = NULL;
    bool child_ends_closed = false; /* the fields stay as they are: the child reads them */
    if (rc == 0 && in == IN_THREAD) {
        rc = mproc__lab_thread(&t, &(mproc_thread_opts){ .fn = partner_thread, .arg = s,
                                                          .name = "lab-pong" });
    } else if (rc == 0) {
        rc = mproc__lab_process(&p, MPROC_START_FORK, partner_process, &s, sizeof s);
        if (rc == 0 && mode == BY_PIPE) { /* the child's ends: its death is our EOF */
            close_fds((int[]){ s->to_partner[0], s->to_main[1] }, 2);
            child_ends_closed = true;
        }
    }
    long mine = 0;
    double ns = rc == 0 ? drive(s, &mine) : rc;
    if (ns < 0 && rc == 0)
        rc = (int)ns;
    if (t) {
        int result = 0;
        if (mproc_thread_join(t, rc ? 0 : WAIT_MS, &result) == 0 && result != 0 && rc == 0)
            rc = result;
        /* a partner left waiting (on failure) times out on its own */
        mproc_thread_destroy(t);
    }
    if (p) {
        if (rc != 0)
            mproc_process_kill(p);
        if (mproc__lab_join(p, WAIT_MS) != 0 && rc == 0)
            rc = -ECHILD;
        mproc_process_destroy(p);
    }
    if (res->cpu >= 0)
        mproc__lab_unpin(&saved);
    close_fds((int[]){ s->to_partner[1], s->to_main[0] }, 2);
    if (!child_ends_closed)
        close_fds((int[]){ s->to_partner[0], s->to_main[1] }, 2);
    if (rc == 0) {
        res->ns_per_switch = ns / 2;
        res->switches_per_trip = (double)(mine + s->switches) / (double)rounds;
        res->done = s->done >= warm ? s->done - warm : 0;
    }
    if (t && rc != 0)
        return rc; /* the thread may still use s: leave it */
    mproc_semaphore_destroy(&s->ping);
    mproc_semaphore_destroy(&s->pong);
    mproc_shared_free(s);
    return rc;
}

/* ---- part 2: 1,000 threads against a pool ------------------------------- */

struct tiny {
    atomic_uint_fast64_t sum, count;
};

struct tiny_arg {
    struct tiny *t;
    uint64_t i;
};

static int tiny_work(struct tiny *t, uint64_t i)
{
    atomic_fetch_add_explicit(&t->sum, i, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->count, 1, memory_order_relaxed);
    return 0;
}

static int tiny_thread(void *arg)
{
    const struct tiny_arg *a = arg;
    return tiny_work(a->t, a->i);
}

static int tiny_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    const struct tiny_arg *a = arg;
    return tiny_work(a->t, a->i);
}

static bool tiny_exact(struct tiny *t, unsigned n)
{
    return atomic_load(&t->count) == n &&
           atomic_load(&t->sum) == (uint64_t)n * (n - 1) / 2;
}

/* n threads, one after another: create, start, join. Seconds, or < 0. */
static double short_lived(struct tiny_arg *args, unsigned n)
{
    int64_t t0 = mproc_now_ns();
    for (unsigned i = 0; i < n; i++) {
        mproc_thread *t;
        int rc = mproc_thread_create(&t, &(mproc_thread_opts){ .fn = tiny_thread,
                                                                .arg = &args[i],
                                                                .name = "lab-tiny" });
        if (rc != 0)
            return rc;
        if ((rc = mproc_thread_start(t)) == 0)
            rc = mproc_thread_join(t, WAIT_MS, NULL);
        mproc_thread_destroy(t);
        if (rc != 0)
            return rc;
    }
    return (double)(mproc_now_ns() - t0) / 1e9;
}

/* The same n tasks on a thread executor, its start and shutdown
 * included; *work gets the seconds from the first submit to the last
 * result. Seconds, or < 0. */
static double pooled(struct tiny_arg *args, unsigned n, unsigned workers, double *work)
{
    mproc_future **f = calloc(n, sizeof *f);
    if (!f)
        return -ENOMEM;
    int64_t t0 = mproc_now_ns();
    mproc_executor *ex;
    int rc = mproc_executor_create(&ex, &(mproc_executor_opts){ .kind = MPROC_THREADS,
                                                                 .workers = workers,
                                                                 .name = "lab-pool" });
    if (rc != 0) {
        free(f);
        return rc;
    }
    int64_t t1 = mproc_now_ns();
    unsigned submitted = 0;
    for (; submitted < n && rc == 0; submitted++)
        rc = mproc_submit(ex, tiny_task, &args[submitted], sizeof args[submitted], &f[submitted]);
    if (rc != 0)
        submitted--; /* the failed one has no future */
    for (unsigned i = 0; i < submitted; i++) {
        int r = mproc_future_result(f[i], WAIT_MS, NULL, NULL);
        if (r != 0 && rc == 0)
            rc = r;
        mproc_future_release(f[i]);
    }
    int64_t t2 = mproc_now_ns();
    mproc_executor_destroy(ex);
    int64_t t3 = mproc_now_ns();
    free(f);
    *work = (double)(t2 - t1) / 1e9;
    return rc != 0 ? rc : (double)(t3 - t0) / 1e9;
}

/* The tiny task as a plain call, through a pointer the compiler cannot
 * see through: ns per call. */
static double tiny_call_ns(void)
{
    struct tiny t = { 0 };
    int (*volatile fn)(struct tiny *, uint64_t) = tiny_work;
    enum { CALLS = 200000 };
    int64_t t0 = mproc_now_ns();
    for (uint64_t i = 0; i < CALLS; i++)
        fn(&t, i);
    return (double)(mproc_now_ns() - t0) / CALLS;
}

/* ---- the lab --------------------------------------------------------------- */

struct variant {
    int in, mode;
    bool pin;
    const char *key, *text;
};

static const struct variant variants[] = {
    { IN_THREAD, BY_SEM, false, "thread_sem", "threads, semaphores, unpinned" },
    { IN_THREAD, BY_SEM, true, "thread_sem_pinned", "threads, semaphores, one CPU" },
    { IN_PROCESS, BY_PIPE, false, "process_pipe", "processes, pipes, unpinned" },
    { IN_PROCESS, BY_PIPE, true, "process_pipe_pinned", "processes, pipes, one CPU" },
    { IN_PROCESS, BY_SEM, false, "process_sem", "processes, shared semaphores, unpinned" },
    { IN_PROCESS, BY_SEM, true, "process_sem_pinned", "processes, shared sems, one CPU" },
};

#define N_VARIANTS (sizeof variants / sizeof variants[0])

static int lab_switch(const mproc__lab_opts *o, mproc__lab_report *r)
{
    uint64_t warm = o->quick ? 200 : 2000, rounds = o->quick ? 2000 : 50000;
    unsigned repeat = o->quick ? 1 : 3; /* part 2: the best of this many runs */
    unsigned cpus = mproc_cpu_count();
    struct pp_result res[N_VARIANTS];
    bool all_done = true;

    /* Processes first: fork wants this process to run one thread, and a
     * thread joined a moment ago may take a while to leave. */
    static const int order[N_VARIANTS] = { 2, 3, 4, 5, 0, 1 };
    for (size_t k = 0; k < N_VARIANTS; k++) {
        const struct variant *v = &variants[order[k]];
        mproc__progress("lab switch: ping-pong, %s", v->text);
        int rc = ping_pong(v->in, v->mode, v->pin, warm, rounds, &res[order[k]]);
        if (rc != 0) {
            mproc__lab_note(r, "the ping-pong of %s failed: %s", v->text, mproc_strerror(rc));
            return rc;
        }
        all_done = all_done && res[order[k]].done == rounds;
    }

    mproc__progress("lab switch: %d short-lived threads", TINY_TASKS);
    struct tiny_arg *args = calloc(TINY_TASKS, sizeof *args);
    struct tiny *tt = calloc(1, sizeof *tt), *tp = calloc(1, sizeof *tp);
    if (!args || !tt || !tp) {
        free(args);
        free(tt);
        free(tp);
        return -ENOMEM;
    }
    double threads_s = -1, pool_s = -1, pool_work_s = -1;
    bool exact = true;
    int rc = 0;
    for (unsigned k = 0; k < repeat && rc == 0; k++) {
        atomic_store(&tt->sum, 0);
        atomic_store(&tt->count, 0);
        for (unsigned i = 0; i < TINY_TASKS; i++)
            args[i] = (struct tiny_arg){ tt, i };
        double s = short_lived(args, TINY_TASKS);
        if (s < 0) {
            rc = (int)s;
            break;
        }
        exact = exact && tiny_exact(tt, TINY_TASKS);
        threads_s = threads_s < 0 || s < threads_s ? s : threads_s;

        mproc__progress("lab switch: the same tasks on a pool");
        atomic_store(&tp->sum, 0);
        atomic_store(&tp->count, 0);
        for (unsigned i = 0; i < TINY_TASKS; i++)
            args[i] = (struct tiny_arg){ tp, i };
        double w = 0;
        s = pooled(args, TINY_TASKS, cpus, &w);
        if (s < 0) {
            rc = (int)s;
            break;
        }
        exact = exact && tiny_exact(tp, TINY_TASKS);
        if (pool_s < 0 || s < pool_s) {
            pool_s = s;
            pool_work_s = w;
        }
    }
    uint64_t thread_count = atomic_load(&tt->count), pool_count = atomic_load(&tp->count);
    free(args);
    free(tt);
    free(tp);
    if (rc != 0) {
        mproc__lab_note(r, "1,000 threads against a pool failed: %s", mproc_strerror(rc));
        return rc;
    }
    double call_ns = tiny_call_ns();

    mproc__lab_metric(r, "cpus", cpus, "count", "CPUs this process may use");
    mproc__lab_metric(r, "round_trips", (double)rounds, "count", "round trips per ping-pong");
    for (size_t i = 0; i < N_VARIANTS; i++) {
        char key[32], text[64];
        mproc__lab_metric(r, variants[i].key, res[i].ns_per_switch, "ns", variants[i].text);
        snprintf(key, sizeof key, "%s_switches", variants[i].key);
        snprintf(text, sizeof text, "  context switches per round trip");
        mproc__lab_metric(r, key, res[i].switches_per_trip, "count", text);
        snprintf(key, sizeof key, "%s_done", variants[i].key);
        mproc__lab_metric(r, key, (double)res[i].done, "count", "  round trips completed");
    }
    mproc__lab_metric(r, "tasks", TINY_TASKS, "count", "tiny tasks, each way");
    mproc__lab_metric(r, "threads_ms", threads_s * 1e3, "ms", "1,000 threads: create+start+join");
    mproc__lab_metric(r, "threads_us_per_task", threads_s * 1e6 / TINY_TASKS, "us",
                      "  per thread");
    mproc__lab_metric(r, "threads_tasks_done", (double)thread_count, "count", "  tasks counted");
    mproc__lab_metric(r, "pool_workers", cpus, "count", "thread executor workers");
    mproc__lab_metric(r, "pool_ms", pool_s * 1e3, "ms", "pool: start, 1,000 tasks, shutdown");
    mproc__lab_metric(r, "pool_work_ms", pool_work_s * 1e3, "ms", "  of which submit to last result");
    mproc__lab_metric(r, "pool_us_per_task", pool_s * 1e6 / TINY_TASKS, "us", "  per task");
    mproc__lab_metric(r, "pool_tasks_done", (double)pool_count, "count", "  tasks counted");
    mproc__lab_metric(r, "threads_over_pool", threads_s / pool_s, "x", "threads time / pool time");
    mproc__lab_metric(r, "tiny_call_ns", call_ns, "ns", "the tiny task as a plain call");

    const struct pp_result *pinned = &res[1];
    mproc__lab_note(r, "A switch is half a round trip. Unpinned, the parties may sit on two "
                       "CPUs: a hand-over, often without a switch (see the switch counts).");
    mproc__lab_note(r, "Pinned to CPU %d, each round trip makes the parties switch: "
                       "%.1f switches per round trip between threads.",
                    pinned->cpu, pinned->switches_per_trip);
    if (cpus < 2)
        mproc__lab_note(r, "Only 1 CPU here: unpinned and pinned are the same situation.");
    if (!o->quick)
        mproc__lab_note(r, "Part 2 kept the best of %u runs.", repeat);

    bool expensive = pinned->ns_per_switch > call_ns;
    bool amortised = pool_s < threads_s;
    if (!all_done || !exact)
        mproc__lab_verdict(r, false, "a count is wrong (round trips %s, tasks %s): a broken "
                           "primitive, not a measurement", all_done ? "exact" : "short",
                           exact ? "exact" : "wrong");
    else
        mproc__lab_verdict(r, expensive && amortised,
                           "a switch between threads on one CPU costs %.2f us, %.0fx the tiny "
                           "task it would run (%s); the pool ran 1,000 tasks %.1fx %s than "
                           "1,000 threads (%.2f vs %.2f ms)",
                           pinned->ns_per_switch / 1e3, pinned->ns_per_switch / call_ns,
                           expensive ? "more switching than work" : "cheaper than the work",
                           amortised ? threads_s / pool_s : pool_s / threads_s,
                           amortised ? "faster" : "slower", pool_s * 1e3, threads_s * 1e3);
    return 0;
}

int mproc__lab_switch(const mproc__lab_opts *o, mproc__lab_report *r)
{
    /* A child that dies would make our next write to its pipe raise
     * SIGPIPE: let the write fail instead, and the lab say so. */
    struct sigaction old;
    int rc = mproc__lab_ignore_sigpipe(&old);
    if (rc != 0)
        return rc;
    rc = lab_switch(o, r);
    mproc__lab_restore_sigpipe(&old);
    return rc;
}
