/*
 * tools/lab_create.c -- `mproc lab create`: what it costs to create a
 * thread and a process.
 *
 * Part 1: one after another, N times each, this process makes a worker
 * that runs a tiny function and ends, and joins it:
 *   - a thread (mproc_thread: create, start, join);
 *   - a process with raw fork() + _exit() + waitpid();
 *   - an mproc_process started with MPROC_START_FORK, FORKSERVER and
 *     SPAWN (create, start, join).
 * The function's first instruction reads the monotonic clock (one clock
 * for every process of the machine) and stores the time in a named
 * shared-memory segment (mproc_shm) in the slot of its sample, and counts
 * itself there: so "started" is the time from just before create to that
 * first instruction, "joined" the time until join returned. Forkserver
 * and spawn children do not inherit the segment (they are forked by the
 * server, or run a fresh copy of the program), so they attach it by name
 * after reading the clock: their "joined" includes that attach. The
 * medians are reported.
 *
 * Part 2: copy-on-write. This process maps and fills an array (32 MiB
 * with --quick, 256 MiB without), in 4 KiB pages (huge pages are turned
 * off for it with madvise, the worst case for fork), and times raw
 * fork() + _exit() + waitpid() again, against a memcpy of the array: if
 * fork copied the memory, it would take at least that long.
 *
 * Spawn re-executes the program (/proc/self/exe) and finds the child's
 * function by its symbol name, so the mproc command is linked with its
 * symbols exported (ENABLE_EXPORTS, -rdynamic, in CMakeLists.txt) and
 * the function is not static.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "tools.h"

#define MAX_SAMPLES 1000
#define WAIT_MS 60000

/* The segment every worker reports to. */
struct create_shared {
    atomic_uint_fast64_t ran;       /* workers that ran, this method */
    _Atomic int64_t first_ns[MAX_SAMPLES]; /* each one's first instruction */
};

/* What a process child gets as its argument. */
struct child_arg {
    uint32_t index;
    uint32_t attach;                /* open the segment by name */
    char name[MPROC_SHM_NAME_MAX + 1];
};

/* The segment, as mapped in this process (and in fork children). */
static struct create_shared *shared;

static void report(struct create_shared *sh, uint32_t index, int64_t now)
{
    if (index < MAX_SAMPLES)
        atomic_store_explicit(&sh->first_ns[index], now, memory_order_relaxed);
    atomic_fetch_add(&sh->ran, 1);
}

/* The process children's task. Not static, and exported from the mproc
 * command: a spawned child finds it by this name. */
int mproc__lab_create_child(const void *arg, size_t len, mproc_ctx *ctx);

int mproc__lab_create_child(const void *arg, size_t len, mproc_ctx *ctx)
{
    int64_t now = mproc_now_ns(); /* the first thing the child does */
    struct child_arg a;
    if (len != sizeof a)
        return mproc_fail(ctx, -EINVAL, "argument of %zu bytes", len);
    memcpy(&a, arg, sizeof a);
    if (!a.attach) {
        report(shared, a.index, now);
        return 0;
    }
    mproc_shm *h;
    int rc = mproc_shm_attach(&h, a.name);
    if (rc != 0)
        return mproc_fail(ctx, rc, "cannot attach %s", a.name);
    report(mproc_shm_addr(h), a.index, now);
    mproc_shm_destroy(h);
    return 0;
}

static int thread_child(void *arg)
{
    report(shared, (uint32_t)(uintptr_t)arg, mproc_now_ns());
    return 0;
}

enum { M_THREAD, M_RAW_FORK, M_FORK, M_FORKSERVER, M_SPAWN, M_BIG_FORK, N_METHODS };

static const struct {
    const char *key, *text;
} methods[N_METHODS] = {
    { "thread", "thread (mproc_thread)" },
    { "raw_fork", "raw fork + _exit + waitpid" },
    { "fork", "mproc_process, fork" },
    { "forkserver", "mproc_process, forkserver" },
    { "spawn", "mproc_process, spawn" },
    { "big_fork", "raw fork, with the big array mapped" },
};

/* One worker of method m, sample i: *started / *joined in ns from just
 * before create. 0, or a negative code. */
static int one(int m, uint32_t i, const char *name, double *started, double *joined)
{
    int rc = 0;
    int64_t t0 = mproc_now_ns();
    if (m == M_THREAD) {
        mproc_thread *t;
        rc = mproc_thread_create(&t, &(mproc_thread_opts){ .fn = thread_child,
                                                            .arg = (void *)(uintptr_t)i,
                                                            .name = "lab-create" });
        if (rc != 0)
            return rc;
        if ((rc = mproc_thread_start(t)) == 0)
            rc = mproc_thread_join(t, WAIT_MS, NULL);
        mproc_thread_destroy(t);
    } else if (m == M_RAW_FORK || m == M_BIG_FORK) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            return -errno;
        if (pid == 0) {
            report(shared, i, mproc_now_ns());
            _exit(0);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                return -errno;
        rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -ECHILD;
    } else {
        struct child_arg a = { .index = i, .attach = m != M_FORK };
        snprintf(a.name, sizeof a.name, "%s", name);
        static const mproc_start_method how[N_METHODS] = {
            [M_FORK] = MPROC_START_FORK, [M_FORKSERVER] = MPROC_START_FORKSERVER,
            [M_SPAWN] = MPROC_START_SPAWN
        };
        mproc_process *p;
        rc = mproc__lab_process(&p, how[m], mproc__lab_create_child, &a, sizeof a);
        if (rc != 0)
            return rc;
        rc = mproc__lab_join(p, WAIT_MS);
        mproc_process_destroy(p);
    }
    int64_t t1 = mproc_now_ns();
    int64_t first = atomic_load_explicit(&shared->first_ns[i], memory_order_relaxed);
    if (rc == 0 && first == 0)
        rc = -EPROTO; /* ended without reporting */
    *started = (double)(first - t0);
    *joined = (double)(t1 - t0);
    return rc;
}

struct figures {
    unsigned samples;
    uint64_t ran;
    double started_us, joined_us; /* medians */
    int rc;
};

static void run_method(int m, unsigned n, const char *name, struct figures *f)
{
    double *st = calloc(n, sizeof *st), *jn = calloc(n, sizeof *jn);
    *f = (struct figures){ .samples = n };
    if (!st || !jn) {
        f->rc = -ENOMEM;
    } else {
        atomic_store(&shared->ran, 0);
        for (unsigned i = 0; i < MAX_SAMPLES; i++)
            atomic_store_explicit(&shared->first_ns[i], 0, memory_order_relaxed);
        for (unsigned i = 0; i < n && f->rc == 0; i++)
            f->rc = one(m, i, name, &st[i], &jn[i]);
        f->ran = atomic_load(&shared->ran);
        if (f->rc == 0) {
            f->started_us = mproc__lab_median(st, n) / 1e3;
            f->joined_us = mproc__lab_median(jn, n) / 1e3;
        }
    }
    free(st);
    free(jn);
}

/* Map and fill `size` bytes in 4 KiB pages; the ms a memcpy of it into
 * another (already touched) mapping takes in *copy_ms. NULL on failure. */
static unsigned char *big_array(size_t size, double *copy_ms)
{
    unsigned char *a = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    unsigned char *b = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    if (a == MAP_FAILED || b == MAP_FAILED) {
        if (a != MAP_FAILED)
            munmap(a, size);
        if (b != MAP_FAILED)
            munmap(b, size);
        return NULL;
    }
    madvise(a, size, MADV_NOHUGEPAGE); /* may fail (no THP): fine */
    madvise(b, size, MADV_NOHUGEPAGE);
    memset(a, 1, size);
    memset(b, 2, size);
    int64_t t0 = mproc_now_ns();
    memcpy(b, a, size);
    *copy_ms = (double)(mproc_now_ns() - t0) / 1e6;
    munmap(b, size);
    return a;
}

int mproc__lab_create(const mproc__lab_opts *o, mproc__lab_report *r)
{
    static const unsigned quick_n[N_METHODS] = { 200, 50, 50, 50, 10, 20 };
    static const unsigned full_n[N_METHODS] = { 1000, 300, 300, 300, 50, 100 };
    const unsigned *n = o->quick ? quick_n : full_n;
    size_t big = (o->quick ? 32 : 256) << 20;

    char name[64];
    snprintf(name, sizeof name, "mproc-lab-create-%d", (int)getpid());
    mproc_shm *shm;
    int rc = mproc_shm_create(&shm, &(mproc_shm_opts){ .name = name,
                                                       .size = sizeof(struct create_shared) });
    if (rc != 0) {
        mproc__lab_note(r, "cannot create the shared segment %s: %s", name, mproc_strerror(rc));
        return rc;
    }
    shared = mproc_shm_addr(shm);
    /* Started here if nothing started it before: a fork of this process
     * as it is now (one thread), not timed. */
    rc = mproc_forkserver_start();
    if (rc != 0)
        mproc__lab_note(r, "cannot start the fork server: %s", mproc_strerror(rc));

    struct figures f[N_METHODS];
    memset(f, 0, sizeof f);
    double copy_ms = 0;
    /* Processes first (fork wants this process to run one thread), then
     * the threads; the big array last. */
    static const int order[N_METHODS] = { M_RAW_FORK, M_FORK, M_FORKSERVER, M_SPAWN,
                                          M_THREAD, M_BIG_FORK };
    for (int k = 0; k < N_METHODS && rc == 0; k++) {
        int m = order[k];
        mproc__progress("lab create: %u x %s", n[m], methods[m].text);
        unsigned char *array = NULL;
        if (m == M_BIG_FORK && !(array = big_array(big, &copy_ms))) {
            rc = -ENOMEM;
            break;
        }
        run_method(m, n[m], name, &f[m]);
        if (array)
            munmap(array, big);
        if (f[m].rc != 0 && m != M_SPAWN) {
            rc = f[m].rc;
            mproc__lab_note(r, "%s failed: %s", methods[m].text, mproc_strerror(rc));
        }
    }
    mproc_shm_unlink(shm);
    mproc_shm_destroy(shm);
    shared = NULL;
    if (rc != 0)
        return rc;

    bool spawn_ok = f[M_SPAWN].rc == 0;
    bool all_ran = true;
    for (int m = 0; m < N_METHODS; m++) {
        if (m == M_SPAWN && !spawn_ok)
            continue;
        all_ran = all_ran && f[m].ran == f[m].samples;
    }
    for (int m = 0; m < N_METHODS; m++) {
        char key[48], text[64];
        if (m == M_SPAWN && !spawn_ok)
            continue;
        snprintf(key, sizeof key, "%s_started_us", methods[m].key);
        mproc__lab_metric(r, key, f[m].started_us, "us", methods[m].text);
        snprintf(key, sizeof key, "%s_joined_us", methods[m].key);
        mproc__lab_metric(r, key, f[m].joined_us, "us", "  to joined");
        snprintf(key, sizeof key, "%s_samples", methods[m].key);
        mproc__lab_metric(r, key, f[m].samples, "count", "  workers created");
        snprintf(key, sizeof key, "%s_ran", methods[m].key);
        snprintf(text, sizeof text, "  of which ran%s", m == M_THREAD ? "" : " (counted in shm)");
        mproc__lab_metric(r, key, (double)f[m].ran, "count", text);
    }
    mproc__lab_metric(r, "spawn_ok", spawn_ok, "bool", "spawn worked");
    double mib = (double)(big >> 20);
    double fork_extra_us = f[M_BIG_FORK].started_us - f[M_RAW_FORK].started_us;
    mproc__lab_metric(r, "big_array_mib", mib, "MiB", "big array, 4 KiB pages");
    mproc__lab_metric(r, "big_copy_us", copy_ms * 1e3, "us", "  memcpy of it");
    mproc__lab_metric(r, "fork_ms_per_gib", fork_extra_us / mib * 1024 / 1e3, "ms",
                      "  fork: extra time to start, per GiB mapped");
    mproc__lab_metric(r, "copy_ms_per_gib", copy_ms / mib * 1024, "ms",
                      "  memcpy, per GiB");
    /* Processes against threads: the cheapest process method. */
    double cheapest = f[M_RAW_FORK].joined_us;
    int cheapest_m = M_RAW_FORK;
    for (int m = M_FORK; m <= M_SPAWN; m++)
        if ((m != M_SPAWN || spawn_ok) && f[m].joined_us < cheapest) {
            cheapest = f[m].joined_us;
            cheapest_m = m;
        }
    mproc__lab_metric(r, "process_over_thread", cheapest / f[M_THREAD].joined_us, "x",
                      "cheapest process / thread, to joined");
    if (spawn_ok)
        mproc__lab_metric(r, "spawn_over_fork", f[M_SPAWN].joined_us / f[M_FORK].joined_us, "x",
                          "spawn / fork, to joined");
    double cow_ratio = copy_ms * 1e3 / f[M_BIG_FORK].started_us;
    mproc__lab_metric(r, "copy_over_big_fork", cow_ratio, "x",
                      "memcpy of the array / fork (to started)");

    mproc__lab_note(r, "Medians. 'started': from just before create to the worker's first "
                       "instruction; 'joined': until join (or waitpid) returned.");
    mproc__lab_note(r, "Forkserver and spawn children open the shared segment by name after "
                       "reading the clock: 'joined' includes it.");
    if (!spawn_ok)
        mproc__lab_note(r, "spawn did not work here: %s (the program must export the "
                           "task's symbol: -rdynamic)", mproc_strerror(f[M_SPAWN].rc));
    mproc__lab_note(r, "With %.0f MiB mapped and touched, the child started %.0f us later than "
                       "without: fork copies page tables, not pages (a memcpy takes %.0f us).",
                    mib, fork_extra_us, copy_ms * 1e3);
    mproc__lab_note(r, "So fork is not free: about %.0f ms per GiB mapped here, against %.0f ms "
                       "per GiB to copy.",
                    fork_extra_us / mib * 1024 / 1e3, copy_ms / mib * 1024);

    bool cheaper = cheapest > f[M_THREAD].joined_us;
    bool cow = cow_ratio >= 2;
    if (!all_ran)
        mproc__lab_verdict(r, false, "a worker did not run (see the counts)");
    else
        mproc__lab_verdict(r, cheaper && cow,
                           "a thread is created, run and joined in %.0f us, %.1fx %s than the "
                           "cheapest process (%s, %.0f us); fork with %.0f MiB mapped started "
                           "its child in %.0f us, %.1fx less than a copy takes (criterion: 2x)",
                           f[M_THREAD].joined_us,
                           cheaper ? cheapest / f[M_THREAD].joined_us
                                   : f[M_THREAD].joined_us / cheapest,
                           cheaper ? "cheaper" : "dearer", methods[cheapest_m].text, cheapest,
                           mib, f[M_BIG_FORK].started_us, cow_ratio);
    return 0;
}
