/*
 * exec/procs.c -- the process backend (exec_internal.h): worker
 * processes, a mailbox per worker, and a dispatcher thread.
 *
 * Mailbox. Each worker has a memfd mapping of its own (MAILBOX_SIZE bytes,
 * sparse: only the pages used cost memory), handed to it at start with an
 * eventfd (workers/process_internal.h). `state` says whose turn it is:
 *     IDLE --dispatcher writes the task, stores TASK, wakes--> TASK
 *     TASK --worker runs it, writes code/result, stores DONE,
 *            writes the eventfd--> DONE
 *     DONE --dispatcher copies the outcome out--> IDLE
 *     IDLE --dispatcher stores QUIT--> the worker exits
 * Each side writes the mailbox only in its turn, and hands the turn over
 * with a release store that the other side reads with acquire. The
 * argument sits at the start of `data`, the result right after it.
 *
 * Dispatcher. One thread per executor polls the eventfd (worker done,
 * new submission, shutdown) and every worker's end-of-process descriptor.
 * A worker that ended while it ran a task fails that task with
 * MPROC_EWORKERDIED and a message naming its pid and what ended it; the
 * worker is replaced. The dispatcher is the only thread that touches the
 * workers; submitters only append to the pending list (under a mutex: a
 * process pool's tasks are heavy enough that this is not the cost).
 *
 * Shutdown. The dispatcher leaves once shutdown is set, no submit is in
 * flight, nothing is pending and no worker is busy; then it tells every
 * worker to quit and joins it. cancel_futures cancels what is pending.
 *
 * MPROC_JOBSERVER (exec/jobserver.h). A busy worker holds one token of
 * the shared pool: the dispatcher takes it before giving an idle worker a
 * task (token_take) and gives it back once the worker has no task any
 * more, however that came about -- result collected, process died,
 * killed for a deadline or a cancel, retired -- at one place in its loop
 * (token_give), and for every worker when it leaves. With tasks pending
 * and no token free it also polls the pool's descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "exec/exec_internal.h"
#include "exec/jobserver.h"
#include "os/atomic.h"
#include "os/shmap.h"
#include "os/sys.h"
#include "sync/mutex.h"
#include "workers/fnref.h"
#include "workers/process_internal.h"

#define MAILBOX_SIZE ((size_t)64 << 20)
#define ARG_MAX_BYTES ((size_t)32 << 20)
#define MAX_PROC_WORKERS 1024
#define KILL_GRACE_NS 200000000 /* SIGTERM, then SIGKILL this much later */
#define POLL_MAX_MS 100
/* Workers whose initializer fails or crashes are started again after
 * 10, 20, 40 ms; the fourth failure in a row breaks the executor. */
#define INIT_RETRIES 3
#define INIT_BACKOFF_NS 10000000

enum { MB_IDLE, MB_TASK, MB_DONE, MB_QUIT };

struct mailbox {
    uint32_t state;   /* futex word (shared), MB_* */
    uint32_t cancel;  /* the parent asks the running task to stop */
    uint64_t fn;      /* the task: its address, or a reference (spawn; workers/fnref.h) */
    uint64_t arg_len;
    uint64_t res_off; /* where the result starts in data[] */
    uint64_t res_len;
    int32_t code;
    int32_t worker;   /* index, for mproc_ctx_worker */
    int32_t ready;    /* the worker's initializer has succeeded */
    int32_t init_failed;
    int32_t oom;      /* the running task went past the memory limit */
    char message[F_MESSAGE_MAX];
    _Alignas(64) unsigned char data[];
};

#define DATA_CAP (MAILBOX_SIZE - offsetof(struct mailbox, data))

struct pworker {
    struct ppool *pp;
    int index;
    mproc_process *proc;
    mproc__shmap map;
    struct mailbox *mb;
    mproc_future *cur; /* the task it runs, or NULL */
    int64_t deadline;  /* when cur must be done (0: never) */
    int64_t kill_at;   /* timed out: when SIGTERM turns into SIGKILL */
    int64_t limit_ms;  /* cur's deadline, for the message */
    bool timed_out;    /* cur passed its deadline and was stopped */
    int64_t restart_at; /* no new process before this (init back-off) */
    unsigned tasks;     /* run by this process (max_tasks_per_child) */
    bool retiring;      /* told to quit after max_tasks_per_child */
    bool cancel_killed; /* killed because cur was cancelled (CANCEL_KILL) */
    bool oom_retiring;  /* told to quit after a task ran out of memory */
    bool token;         /* holds a jobserver token (MPROC_JOBSERVER) */
};

struct ppool {
    mproc_executor base;
    struct pworker *w;
    mproc_start_method start;
    uint64_t init_word;     /* the initializer for the workers (workers/fnref.h) */
    int64_t task_timeout_ms;
    unsigned max_tasks;     /* per worker process, 0: no limit */
    size_t mem_limit;       /* worker_memory_limit, 0: none */
    bool cancel_kill;       /* MPROC_CANCEL_KILL */
    bool jobserver;         /* MPROC_JOBSERVER */
    bool token_wait;        /* tasks wait for a jobserver token */
    unsigned init_failures; /* in a row, across workers */
    /* Counters (mproc_executor_stats): written by the dispatcher only,
     * except `queued` (under qlock); read with relaxed loads. */
    uint64_t done, failed, worker_died, timed_out, out_of_memory;
    uint64_t r_died, r_timeout, r_recycled, r_init, r_memory;
    uint64_t queued;
    char broken_why[F_MESSAGE_MAX];
    int evfd;
    pthread_t dispatcher;
    bool dispatcher_started;
    uint32_t qlock; /* sync/mutex.h: the pending list */
    mproc_future *head, *tail;
};

static struct ppool *ppool_of(mproc_executor *ex)
{
    return (struct ppool *)ex;
}

static void poke(struct ppool *pp)
{
    uint64_t one = 1;
    ssize_t w = write(pp->evfd, &one, sizeof one);
    (void)w; /* a full counter still wakes the dispatcher */
}

/* ---- the worker process ------------------------------------------------- */

/* A worker's start argument. Functions travel as words of
 * workers/fnref.h: addresses for fork and forkserver workers, references
 * for spawned ones (`refs`). initarg_len bytes of initarg follow. */
struct worker_arg {
    int32_t index;
    uint32_t refs;
    uint64_t initializer; /* 0: none */
    uint64_t initarg;     /* the caller's pointer, when no bytes follow */
    uint64_t initarg_len;
    uint64_t mem_limit;
};

/* ---- the worker's memory limit ------------------------------------------ */

static struct mailbox *limited_mb; /* the worker's own mailbox */

/* A worker under a memory limit dies by SIGSEGV, SIGBUS or SIGABRT: if
 * the last failed call was an allocation (errno is ENOMEM), tell the
 * parent the task went past the limit, then die of the same signal. */
static void on_fatal_signal(int sig)
{
    if (errno == ENOMEM)
        mproc__store_release(&limited_mb->oom, 1);
    signal(sig, SIG_DFL);
    raise(sig); /* blocked until we return; a fault would also recur */
}

/* The size of this process's address space in bytes, or 0. */
static size_t address_space_size(void)
{
    char buf[64];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return (size_t)strtoull(buf, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

/* Let this worker map at most `limit` bytes more than it has now, and
 * watch for the signals a failed allocation usually ends in. */
static int limit_memory(struct mailbox *mb, size_t limit)
{
    static unsigned char altstack[64 << 10]; /* a fault may come from a full stack */
    size_t now = address_space_size();
    if (now == 0 || limit > RLIM_INFINITY - now)
        return -EINVAL;
    limited_mb = mb;
    stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack };
    struct sigaction sa = { .sa_handler = on_fatal_signal, .sa_flags = SA_ONSTACK };
    sigemptyset(&sa.sa_mask);
    if (sigaltstack(&ss, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0 ||
        sigaction(SIGBUS, &sa, NULL) != 0 || sigaction(SIGABRT, &sa, NULL) != 0)
        return -errno;
    struct rlimit rl = { .rlim_cur = now + limit, .rlim_max = now + limit };
    return setrlimit(RLIMIT_AS, &rl) == 0 ? 0 : -errno;
}

static void *worker_room(mproc_ctx *ctx, size_t len)
{
    struct mailbox *mb = ctx->owner;
    size_t off = (size_t)mb->res_off;
    if (len > DATA_CAP - off)
        return NULL;
    mb->res_len = len;
    return mb->data + off;
}

static void worker_message(mproc_ctx *ctx, const char *fmt, va_list ap)
{
    struct mailbox *mb = ctx->owner;
    vsnprintf(mb->message, sizeof mb->message, fmt, ap);
}

static bool worker_cancel_requested(const mproc_ctx *ctx)
{
    const struct mailbox *mb = ctx->owner;
    return mproc__load_relaxed(&mb->cancel) != 0;
}

static const struct mproc__ctx_ops worker_ctx_ops = {
    .room = worker_room,
    .message = worker_message,
    .cancel_requested = worker_cancel_requested,
};

/* The task every worker process runs: serve its mailbox until QUIT. */
static int worker_main(const void *arg, size_t len, mproc_ctx *pctx)
{
    (void)len;
    (void)pctx;
    const struct worker_arg *wa = arg;
    mproc__shmap map;
    int evfd = mproc__process_fd(1);
    if (mproc__process_fd(0) < 0 || evfd < 0 || mproc__shmap_attach(&map, mproc__process_fd(0)) != 0)
        return -EBADF;
    struct mailbox *mb = map.addr;
    uint64_t one = 1;
    bool refs = wa->refs != 0;
    bool ok = !wa->mem_limit || limit_memory(mb, (size_t)wa->mem_limit) == 0;
    if (ok && wa->initializer) {
        void *a, *initarg = wa->initarg_len ? (void *)(wa + 1) : (void *)(uintptr_t)wa->initarg;
        int (*init)(void *);
        ok = mproc__fnref_decode(wa->initializer, refs, &a, mb->message, sizeof mb->message) == 0;
        if (ok) {
            memcpy(&init, &a, sizeof init);
            ok = init(initarg) >= 0;
        }
    }
    mproc__store_release(ok ? &mb->ready : &mb->init_failed, 1);
    ssize_t wr = write(evfd, &one, sizeof one);
    (void)wr;
    if (!ok)
        return 0;
    for (;;) {
        uint32_t s;
        while ((s = mproc__load_acquire(&mb->state)) == MB_IDLE || s == MB_DONE)
            mproc__futex_wait(&mb->state, s, MPROC__FOREVER, true);
        if (s == MB_QUIT)
            return 0;
        mproc_task_fn fn;
        void *addr;
        mb->res_off = (mb->arg_len + 63) & ~(uint64_t)63;
        mb->res_len = 0;
        mb->message[0] = '\0';
        struct mproc_ctx ctx = { .ops = &worker_ctx_ops, .owner = mb, .worker = mb->worker };
        int code = MPROC_ENOSYMBOL; /* with the reason in the message */
        if (mproc__fnref_decode(mb->fn, refs, &addr, mb->message, sizeof mb->message) == 0) {
            memcpy(&fn, &addr, sizeof fn);
            code = fn(mb->arg_len ? mb->data : NULL, (size_t)mb->arg_len, &ctx);
        }
        mb->code = code > 0 ? 0 : code;
        if (wa->mem_limit && code == -ENOMEM)
            mb->oom = 1; /* the task says it ran out: under a limit, that is the limit */
        mproc__store_release(&mb->state, MB_DONE);
        ssize_t w = write(evfd, &one, sizeof one);
        (void)w;
    }
}

/* ---- the pending list ------------------------------------------------------ */

static bool pending_empty(struct ppool *pp)
{
    mproc__mutex_lock(&pp->qlock);
    bool empty = pp->head == NULL;
    mproc__mutex_unlock(&pp->qlock);
    return empty;
}

/* Add one to a counter that only the dispatcher writes. */
static void bump(uint64_t *c)
{
    mproc__store_relaxed(c, *c + 1);
}

static mproc_future *pending_pop(struct ppool *pp)
{
    mproc__mutex_lock(&pp->qlock);
    mproc_future *f = pp->head;
    if (f) {
        pp->head = f->u.next;
        if (!pp->head)
            pp->tail = NULL;
        mproc__store_relaxed(&pp->queued, pp->queued - 1);
    }
    mproc__mutex_unlock(&pp->qlock);
    return f;
}

static void cancel_pending(struct ppool *pp)
{
    mproc_future *f;
    while ((f = pending_pop(pp))) {
        mproc__future_cancel_pending(f);
        mproc_future_release(f);
    }
}

/* ---- starting and replacing workers ----------------------------------- */

static int worker_start(struct ppool *pp, struct pworker *w)
{
    if (!w->mb) {
        int rc = mproc__shmap_create(&w->map, "mproc-mailbox", MAILBOX_SIZE, 0);
        if (rc != 0)
            return rc;
        w->mb = w->map.addr;
    }
    struct mailbox *mb = w->mb;
    mb->state = MB_IDLE;
    mb->cancel = 0;
    mb->ready = 0;
    mb->init_failed = 0;
    mb->oom = 0;
    mb->worker = w->index;
    mb->message[0] = '\0'; /* an initializer that cannot be found says why here */
    w->tasks = 0;
    size_t ilen = pp->base.initarg_len;
    struct worker_arg *wa = malloc(sizeof *wa + ilen);
    if (!wa)
        return -ENOMEM;
    *wa = (struct worker_arg){ w->index, pp->base.fn_refs, pp->init_word,
                               (uint64_t)(uintptr_t)pp->base.initarg, ilen, pp->mem_limit };
    if (ilen > 0)
        memcpy(wa + 1, pp->base.initarg, ilen);
    char name[48];
    snprintf(name, sizeof name, "%s-%d", pp->base.name, w->index);
    mproc_process *p;
    int rc = mproc_process_create(&p, &(mproc_process_opts){ .fn = worker_main, .arg = wa,
                                                             .len = sizeof *wa + ilen, .name = name,
                                                             .daemon = true, .start = pp->start,
                                                             .flags = MPROC_FORK_THREADS });
    free(wa);
    if (rc != 0)
        return rc;
    int fds[2] = { w->map.fd, pp->evfd };
    if ((rc = mproc__process_set_fds(p, fds, 2)) == 0 && (rc = mproc_process_start(p)) == 0) {
        w->proc = p;
        return 0;
    }
    mproc_process_destroy(p);
    return rc;
}

/* "worker 1234 killed by SIGSEGV" / "worker 1234 exited with status 3" */
static void death_message(char *buf, size_t n, pid_t pid, int exitcode)
{
    if (exitcode < 0)
        snprintf(buf, n, "worker %d killed by SIG%s", (int)pid, sigabbrev_np(-exitcode)
                                                                   ? sigabbrev_np(-exitcode)
                                                                   : "?");
    else
        snprintf(buf, n, "worker %d exited with status %d", (int)pid, exitcode);
}

/* "task ran out of memory (worker limit 64 MiB, RLIMIT_AS)", then how
 * its worker ended if it did. */
static void oom_message(char *buf, size_t n, const struct ppool *pp, const char *how)
{
    bool mib = pp->mem_limit % (1u << 20) == 0;
    snprintf(buf, n, "task ran out of memory (worker limit %zu %s, RLIMIT_AS)%s%.160s",
             pp->mem_limit >> (mib ? 20 : 10), mib ? "MiB" : "KiB", how ? "; " : "",
             how ? how : "");
}

/* w's process has ended: fail its task, start a replacement. */
static void worker_died(struct ppool *pp, struct pworker *w)
{
    pid_t pid = mproc_process_pid(w->proc);
    int exitcode = 0;
    mproc_process_join(w->proc, -1);
    mproc_process_exitcode(w->proc, &exitcode);
    mproc_process_destroy(w->proc);
    w->proc = NULL;
    if (w->cur && w->cancel_killed) {
        mproc__future_resolve_cancelled(w->cur);
        mproc_future_release(w->cur); /* the scheduler's reference */
        w->cur = NULL;
    } else if (w->cur) {
        char msg[F_MESSAGE_MAX];
        int code = MPROC_EWORKERDIED;
        char how[96];
        death_message(how, sizeof how, pid, exitcode);
        if (w->timed_out) {
            snprintf(msg, sizeof msg, "task ran past its %lld ms deadline; %s",
                     (long long)w->limit_ms, how);
            code = MPROC_ETASKTIMEOUT;
        } else if (mproc__load_acquire(&w->mb->oom)) {
            oom_message(msg, sizeof msg, pp, how);
            code = MPROC_EMEMLIMIT;
            w->oom_retiring = true; /* counts the restart below */
        } else {
            snprintf(msg, sizeof msg, "%s", how);
        }
        bump(&pp->failed); /* counted before anyone can see the outcome */
        bump(code == MPROC_ETASKTIMEOUT ? &pp->timed_out
             : code == MPROC_EMEMLIMIT  ? &pp->out_of_memory
                                        : &pp->worker_died);
        mproc__future_resolve(w->cur, code, NULL, 0, msg);
        mproc_future_release(w->cur); /* the scheduler's reference */
        w->cur = NULL;
    }
    bool timed_out = w->timed_out, retired = w->retiring, oom = w->oom_retiring;
    w->retiring = false;
    w->oom_retiring = false;
    w->cancel_killed = false;
    w->timed_out = false;
    w->deadline = 0;
    if (!mproc__load_acquire(&w->mb->ready)) { /* it never finished starting */
        char how[96];
        death_message(how, sizeof how, pid, exitcode);
        bool failed = mproc__load_acquire(&w->mb->init_failed);
        if (++pp->init_failures > INIT_RETRIES) {
            snprintf(pp->broken_why, sizeof pp->broken_why,
                     "the worker initializer %s %u times in a row (last: %s)",
                     failed ? "failed" : "crashed", pp->init_failures, how);
            size_t at = strlen(pp->broken_why);
            if (failed && w->mb->message[0]) /* it could not be found: why */
                snprintf(pp->broken_why + at, sizeof pp->broken_why - at, ": %.*s",
                         (int)sizeof w->mb->message - 1, w->mb->message);
            mproc__store_relaxed(&pp->base.broken, 1); /* Python's BrokenProcessPool */
            return;
        }
        w->restart_at = mproc__now() + ((int64_t)INIT_BACKOFF_NS << (pp->init_failures - 1));
        bump(&pp->r_init);
        return; /* the dispatcher starts it again when the back-off is over */
    }
    if (!mproc__load_relaxed(&pp->base.broken) &&
        (!__atomic_load_n(&pp->base.shutdown, __ATOMIC_SEQ_CST) || !pending_empty(pp))) {
        bump(timed_out ? &pp->r_timeout
             : oom     ? &pp->r_memory
             : retired ? &pp->r_recycled
                       : &pp->r_died);
        worker_start(pp, w); /* on failure, the next round tries again */
    }
}

/* ---- the dispatcher -------------------------------------------------------- */

/* A worker finished its task: hand the outcome to the future. */
static void collect(struct pworker *w)
{
    struct mailbox *mb = w->mb;
    mproc_future *f = w->cur;
    w->cur = NULL;
    const char *msg = mb->code < 0 ? mb->message : NULL;
    bool oom = mb->code < 0 && mproc__load_acquire(&mb->oom);
    bump(mb->code == 0 ? &w->pp->done : &w->pp->failed);
    if (oom) {
        char text[F_MESSAGE_MAX];
        oom_message(text, sizeof text, w->pp, mb->message[0] ? mb->message : NULL);
        bump(&w->pp->out_of_memory);
        mproc__future_resolve(f, MPROC_EMEMLIMIT, NULL, 0, text);
    } else if (mb->code == 0 && mb->res_len > DATA_CAP - mb->res_off) {
        mproc__future_resolve(f, -EPROTO, NULL, 0, "bad result length from worker");
    } else {
        mproc__future_resolve(f, mb->code, mb->data + mb->res_off, (size_t)mb->res_len, msg);
    }
    mproc_future_release(f); /* the scheduler's reference */
    w->deadline = 0;
    if (w->timed_out)
        return; /* being stopped: it gets no new task */
    if (oom) {
        /* Its heap may be full of what the task left: start afresh. */
        w->oom_retiring = true;
        mproc__store_release(&mb->state, MB_QUIT);
        mproc__futex_wake(&mb->state, 1, true);
        return;
    }
    if (w->pp->max_tasks && ++w->tasks >= w->pp->max_tasks) {
        /* Retire it; its end starts a fresh one (worker_died). */
        w->retiring = true;
        mproc__store_release(&mb->state, MB_QUIT);
        mproc__futex_wake(&mb->state, 1, true);
        return;
    }
    mproc__store_release(&mb->state, MB_IDLE);
}

/* Give f to idle worker w. A task a spawned worker cannot find fails here
 * (MPROC_ENOSYMBOL) and w stays idle: look again at once. */
static void assign(struct pworker *w, mproc_future *f)
{
    uint64_t fn;
    void *addr;
    char why[MPROC__FNREF_WHY];
    memcpy(&addr, &f->fn, sizeof addr);
    int rc = mproc__fnref_encode(addr, w->pp->base.fn_refs, &fn, why, sizeof why);
    if (rc != 0) {
        bump(&w->pp->failed);
        mproc__future_resolve(f, rc, NULL, 0, why);
        mproc_future_release(f); /* the scheduler's reference */
        poke(w->pp);
        return;
    }
    int64_t limit = mproc__future_timeout(f);
    if (limit == 0)
        limit = w->pp->task_timeout_ms;
    w->limit_ms = limit > 0 ? limit : 0;
    w->deadline = limit > 0 ? mproc__now() + limit * 1000000 : 0;
    struct mailbox *mb = w->mb;
    mb->fn = fn;
    mb->arg_len = f->arg_len;
    if (f->arg_len > 0)
        memcpy(mb->data, f->arg, f->arg_len);
    mb->cancel = 0;
    w->cur = f;
    mproc__store_release(&mb->state, MB_TASK);
    mproc__futex_wake(&mb->state, 1, true);
}

/* Milliseconds until the nearest deadline or kill, at most POLL_MAX_MS. */
static int poll_ms(const struct ppool *pp)
{
    int64_t now = mproc__now(), next = now + (int64_t)POLL_MAX_MS * 1000000;
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        const struct pworker *w = &pp->w[i];
        int64_t t = w->timed_out ? w->kill_at : w->cur ? w->deadline : 0;
        if (t != 0 && t < next)
            next = t;
        if (!w->proc && w->restart_at > now && w->restart_at < next)
            next = w->restart_at;
    }
    return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

/* Pass a cancel request on to w's running task (mproc_cancel_requested),
 * or with MPROC_CANCEL_KILL stop it by killing w. */
static void pass_cancel(struct ppool *pp, struct pworker *w)
{
    if (!w->cur || w->cancel_killed)
        return;
    bool asked = mproc__load_relaxed(&w->cur->cancel_req) != 0;
    if (asked || mproc__load_relaxed(&pp->base.cancelling))
        mproc__store_relaxed(&w->mb->cancel, 1);
    if (asked && pp->cancel_kill) {
        w->cancel_killed = true;
        mproc_process_kill(w->proc);
    }
}

/* Stop w's task if it passed its deadline: SIGTERM, then SIGKILL. The
 * worker's end (worker_died) fails the task with MPROC_ETASKTIMEOUT. */
static void enforce_deadline(struct pworker *w)
{
    int64_t now = mproc__now();
    if (!w->timed_out && w->cur && w->deadline != 0 && now >= w->deadline) {
        w->timed_out = true;
        w->kill_at = now + KILL_GRACE_NS;
        mproc_process_terminate(w->proc);
    } else if (w->timed_out && now >= w->kill_at) {
        mproc_process_kill(w->proc);
        w->kill_at = INT64_MAX;
    }
}

/* May idle worker w take a task? Always without MPROC_JOBSERVER; with
 * it, once it holds a token. A pool that fails (a read error) is not
 * waited for: tasks then run without tokens rather than never. */
static bool token_take(struct ppool *pp, struct pworker *w)
{
    if (!pp->jobserver || w->token)
        return true;
    if (pending_empty(pp))
        return false; /* nothing to run: take no token */
    int rc = mproc__jobserver_try_acquire();
    w->token = rc > 0;
    pp->token_wait = rc == 0;
    return rc != 0;
}

/* w runs no task (any more): its token goes back to the pool. */
static void token_give(struct pworker *w)
{
    if (w->token) {
        w->token = false;
        mproc__jobserver_release();
    }
}

static bool time_to_leave(struct ppool *pp)
{
    if (!__atomic_load_n(&pp->base.shutdown, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&pp->base.inflight, __ATOMIC_SEQ_CST) != 0 || !pending_empty(pp))
        return false;
    for (unsigned i = 0; i < pp->base.nworkers; i++)
        if (pp->w[i].cur)
            return false;
    return true;
}

static void *dispatcher_main(void *arg)
{
    struct ppool *pp = arg;
    unsigned n = pp->base.nworkers;
    struct pollfd *pfd = calloc(n + 2, sizeof *pfd);
    if (!pfd) /* cannot watch: fail everything rather than hang */
        mproc__store_relaxed(&pp->base.broken, 1);
    for (;;) {
        if (mproc__load_relaxed(&pp->base.cancelling))
            cancel_pending(pp);
        if (mproc__load_relaxed(&pp->base.broken)) { /* Python's BrokenProcessPool */
            mproc_future *f;
            while ((f = pending_pop(pp))) {
                if (mproc__future_claim(f)) {
                    bump(&pp->failed);
                    mproc__future_resolve(f, MPROC_EBROKEN, NULL, 0, pp->broken_why);
                }
                mproc_future_release(f);
            }
        }
        /* Hand pending tasks to idle workers. */
        pp->token_wait = false;
        for (unsigned i = 0; i < n; i++) {
            struct pworker *w = &pp->w[i];
            if (w->cur || !w->proc || !mproc__load_acquire(&w->mb->ready) ||
                mproc__load_acquire(&w->mb->state) != MB_IDLE)
                continue;
            pp->init_failures = 0; /* a worker started fine */
            if (!token_take(pp, w))
                break;
            mproc_future *f;
            while ((f = pending_pop(pp)) && !mproc__future_claim(f))
                mproc_future_release(f); /* cancelled while pending */
            if (!f) {
                token_give(w);
                break;
            }
            assign(w, f);
        }
        if (time_to_leave(pp) || !pfd)
            break;
        pfd[0] = (struct pollfd){ .fd = pp->evfd, .events = POLLIN };
        for (unsigned i = 0; i < n; i++)
            pfd[i + 1] = (struct pollfd){
                .fd = pp->w[i].proc ? mproc__process_wait_fd(pp->w[i].proc) : -1,
                .events = POLLIN };
        pfd[n + 1] = (struct pollfd){ .fd = pp->token_wait ? mproc__jobserver_fd() : -1,
                                      .events = POLLIN };
        /* A replacement that could not start is tried again in 100 ms;
         * deadlines are looked at in time; a token freed by this process
         * (not through the pool's pipe) is seen within 100 ms. */
        if (poll(pfd, n + 2, poll_ms(pp)) < 0 && errno != EINTR)
            continue;
        if (pfd[0].revents) {
            uint64_t v;
            ssize_t r = read(pp->evfd, &v, sizeof v);
            (void)r;
        }
        for (unsigned i = 0; i < n; i++) {
            struct pworker *w = &pp->w[i];
            if (w->cur && mproc__load_acquire(&w->mb->state) == MB_DONE)
                collect(w);
            if (w->proc && pfd[i + 1].revents)
                worker_died(pp, w);
            else if (w->proc) {
                pass_cancel(pp, w);
                enforce_deadline(w);
            }
            else if (!w->proc && !mproc__load_relaxed(&pp->base.broken) &&
                     !__atomic_load_n(&pp->base.shutdown, __ATOMIC_SEQ_CST) &&
                     mproc__now() >= w->restart_at)
                worker_start(pp, w);
            if (!w->cur)
                token_give(w);
        }
    }
    /* Nothing left to run: let every worker go. */
    if (mproc__load_relaxed(&pp->base.broken))
        cancel_pending(pp);
    for (unsigned i = 0; i < n; i++) {
        struct pworker *w = &pp->w[i];
        if (!w->proc)
            continue;
        mproc__store_release(&w->mb->state, MB_QUIT);
        mproc__futex_wake(&w->mb->state, 1, true);
    }
    for (unsigned i = 0; i < n; i++) {
        struct pworker *w = &pp->w[i];
        if (!w->proc)
            continue;
        if (mproc_process_join(w->proc, 5000) != 0) {
            mproc_process_kill(w->proc);
            mproc_process_join(w->proc, -1);
        }
        mproc_process_destroy(w->proc);
        w->proc = NULL;
    }
    for (unsigned i = 0; i < n; i++)
        token_give(&pp->w[i]);
    free(pfd);
    return NULL;
}

/* ---- the backend's operations --------------------------------------------- */

static void procs_enqueue(mproc_executor *ex, mproc_future *f)
{
    struct ppool *pp = ppool_of(ex);
    f->u.next = NULL;
    mproc__mutex_lock(&pp->qlock);
    if (pp->tail)
        pp->tail->u.next = f;
    else
        pp->head = f;
    pp->tail = f;
    mproc__store_relaxed(&pp->queued, pp->queued + 1);
    mproc__mutex_unlock(&pp->qlock);
    poke(pp);
}

static bool procs_cancel_running(mproc_executor *ex, mproc_future *f)
{
    (void)f;
    struct ppool *pp = ppool_of(ex);
    poke(pp); /* the dispatcher passes it on */
    return pp->cancel_kill;
}

static bool procs_help(mproc_executor *ex)
{
    (void)ex;
    return false; /* the caller's threads are never workers */
}

static void procs_shutdown(mproc_executor *ex, bool wait)
{
    struct ppool *pp = ppool_of(ex);
    if (mproc__load_relaxed(&ex->cancelling))
        cancel_pending(pp);
    poke(pp);
    if (wait && pp->dispatcher_started) {
        pthread_join(pp->dispatcher, NULL);
        pp->dispatcher_started = false;
    }
}

static void free_ppool(struct ppool *pp)
{
    for (unsigned i = 0; pp->w && i < pp->base.nworkers; i++)
        mproc__shmap_destroy(&pp->w[i].map);
    free(pp->w);
    if (pp->evfd >= 0)
        close(pp->evfd);
    free(pp);
}

static int procs_create(const mproc_executor_opts *opts, mproc_executor **out)
{
    if (opts->workers > MAX_PROC_WORKERS || (unsigned)opts->start > MPROC_START_SPAWN ||
        (opts->start == MPROC_START_SPAWN && opts->initarg && !opts->initarg_len))
        return -EINVAL;
    struct ppool *pp = mproc__exec_alloc(sizeof *pp, &mproc__process_backend, opts);
    if (!pp)
        return -ENOMEM;
    pp->start = opts->start == MPROC_START_DEFAULT ? MPROC_START_FORKSERVER : opts->start;
    pp->base.fn_refs = pp->start == MPROC_START_SPAWN;
    if (opts->initializer) {
        void *addr;
        memcpy(&addr, &opts->initializer, sizeof addr);
        int rc = mproc__fnref_encode(addr, pp->base.fn_refs, &pp->init_word, NULL, 0);
        if (rc != 0) {
            free(pp);
            return rc;
        }
    }
    pp->task_timeout_ms = opts->task_timeout_ms;
    pp->max_tasks = opts->max_tasks_per_child;
    pp->mem_limit = opts->worker_memory_limit;
    pp->cancel_kill = (opts->flags & MPROC_CANCEL_KILL) != 0;
    pp->jobserver = (opts->flags & MPROC_JOBSERVER) != 0;
    pp->qlock = MPROC__MUTEX_INIT;
    pp->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = pp->evfd >= 0 ? 0 : -errno;
    if (rc == 0 && pp->jobserver) /* before the fork server copies the environment */
        rc = mproc__jobserver_init();
    if (rc == 0 && pp->start == MPROC_START_FORKSERVER)
        rc = mproc_forkserver_start();
    if (rc == 0) {
        pp->w = calloc(opts->workers, sizeof *pp->w);
        rc = pp->w ? 0 : -ENOMEM;
    }
    for (unsigned i = 0; rc == 0 && i < opts->workers; i++) {
        pp->w[i].pp = pp;
        pp->w[i].index = (int)i;
        pp->w[i].map.fd = -1;
        rc = worker_start(pp, &pp->w[i]);
    }
    if (rc == 0) {
        rc = -pthread_create(&pp->dispatcher, NULL, dispatcher_main, pp);
        pp->dispatcher_started = rc == 0;
    }
    if (rc != 0) {
        for (unsigned i = 0; pp->w && i < opts->workers; i++)
            if (pp->w[i].proc) {
                mproc_process_kill(pp->w[i].proc);
                mproc_process_join(pp->w[i].proc, -1);
                mproc_process_destroy(pp->w[i].proc);
            }
        free_ppool(pp);
        return rc;
    }
    *out = &pp->base;
    return 0;
}

static void procs_destroy(mproc_executor *ex)
{
    free_ppool(ppool_of(ex));
}

static void procs_stats(const mproc_executor *ex, mproc_executor_counters *out)
{
    const struct ppool *pp = (const struct ppool *)ex;
    out->queued = mproc__load_relaxed(&pp->queued);
    out->done = mproc__load_relaxed(&pp->done);
    out->failed = mproc__load_relaxed(&pp->failed);
    out->worker_died = mproc__load_relaxed(&pp->worker_died);
    out->timed_out = mproc__load_relaxed(&pp->timed_out);
    out->restarts_died = mproc__load_relaxed(&pp->r_died);
    out->restarts_timeout = mproc__load_relaxed(&pp->r_timeout);
    out->restarts_recycled = mproc__load_relaxed(&pp->r_recycled);
    out->restarts_init = mproc__load_relaxed(&pp->r_init);
    out->out_of_memory = mproc__load_relaxed(&pp->out_of_memory);
    out->restarts_memory = mproc__load_relaxed(&pp->r_memory);
    out->restarts = out->restarts_died + out->restarts_timeout + out->restarts_recycled +
                    out->restarts_init + out->restarts_memory;
}

static void procs_info(const mproc_executor *ex, mproc_executor_details *out)
{
    const struct ppool *pp = (const struct ppool *)ex;
    out->start = pp->start;
    out->worker_memory_limit = pp->mem_limit;
    out->jobserver = pp->jobserver;
    if (pp->mem_limit) {
        out->memory_limit = MPROC_MEMLIMIT_RLIMIT_AS;
        out->memory_limit_how = "RLIMIT_AS";
    }
}

const struct mproc__backend mproc__process_backend = {
    .kind = MPROC_PROCESSES,
    .stats = procs_stats,
    .info = procs_info,
    .cancel_running = procs_cancel_running,
    .max_arg = ARG_MAX_BYTES,
    .deadlines = true,
    .remote = true,
    .create = procs_create,
    .enqueue = procs_enqueue,
    .help = procs_help,
    .shutdown = procs_shutdown,
    .destroy = procs_destroy,
};
